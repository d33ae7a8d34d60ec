"""Idle-watcher dispatch: the cost of one libev iteration plus one C -> Python callback.

One idle watcher is pending on every loop iteration, so this measures a whole loop
iteration (prepare/check bookkeeping, a non-blocking poll, dispatch) per callback. The
callback counts and stops its watcher once the total reaches N. ``core_idle100`` reuses
this with 100 watchers, where the per-iteration cost is shared by 100 callbacks.
"""

from _common import CORE_IMPLS, N, run_core, timed

IMPLS = CORE_IMPLS


def idle(core, watchers=1, n=N):
    loop = core.loop(default=False)
    count = 0
    keep = n - watchers  # after this many callbacks, each callback stops its own watcher

    def callback(watcher):
        nonlocal count
        count += 1
        if count > keep:
            watcher.stop()

    for _ in range(watchers):
        watcher = loop.idle()
        watcher.start(callback, watcher)
    seconds = timed(loop.run)
    assert count == n, count
    return count, seconds


if __name__ == "__main__":
    run_core(idle)
