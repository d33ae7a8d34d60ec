"""The callback queue: a chain of N callbacks, each queueing the next with
``loop.run_callback``. Measures the queue's append and drain (and how callbacks queued by
callbacks are batched within an iteration), without any watcher dispatch.
"""

from _common import CORE_IMPLS, N, run_core, timed

IMPLS = CORE_IMPLS


def run_callback(core, n=N):
    loop = core.loop(default=False)
    count = 0

    def callback():
        nonlocal count
        count += 1
        if count < n:
            loop.run_callback(callback)

    loop.run_callback(callback)
    seconds = timed(loop.run)
    assert count == n, count
    return count, seconds


if __name__ == "__main__":
    run_core(run_callback)
