"""Timer dispatch: a ``timer(0)`` whose callback starts it again, N times in all.

Each restart goes through ``timer.start`` from Python (argument parsing, ev_timer_start
into libev's heap) and each expiry through a loop iteration and a C -> Python callback, so
this is the cost of the pattern behind ``sleep(0)``-like timeouts. ``core_timer100`` runs
100 such timers at once, sharing each iteration among 100 expiries.
"""

from _common import CORE_IMPLS, N, run_core, timed

IMPLS = CORE_IMPLS


def timer0(core, timers=1, n=N):
    loop = core.loop(default=False)
    count = 0
    restarts = n - timers  # every started timer fires once: timers + restarts == n

    def callback(timer):
        nonlocal count
        count += 1
        if count <= restarts:
            timer.start(callback, timer)

    for _ in range(timers):
        timer = loop.timer(0)
        timer.start(callback, timer)
    seconds = timed(loop.run)
    assert count == n, count
    return count, seconds


if __name__ == "__main__":
    run_core(timer0)
