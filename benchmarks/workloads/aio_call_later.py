"""200,000 ``loop.call_later`` callbacks with small delays: the cost of a timer.

The delays are drawn from ``random.Random(SEED)`` in [0, 2 ms) (the same list on every
implementation). All 200,000 are scheduled from the main task, which then waits on a
future the last callback resolves; both parts are timed. One op is one timer: a handle
created, inserted in the loop's timer heap, expired, moved to the ready queue and run.
The 2 ms floor is ~1% of a run, so the rate is overhead-bound, unlike ``hub_sleep_many``.
"""

import random

from _common import ASYNCIO_IMPLS, run_aio, timed_await

IMPLS = ASYNCIO_IMPLS
N = 200_000
SEED = 200_000
_rng = random.Random(SEED)
DELAYS = [_rng.randrange(2000) / 1e6 for _ in range(N)]


async def aio(asyncio, delays=DELAYS):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = [len(delays)]

    def fire():
        left[0] -= 1
        if not left[0]:
            done.set_result(None)

    async def timed():
        call_later = loop.call_later
        for delay in delays:
            call_later(delay, fire)
        await done
        return len(delays) - left[0]

    seconds, fired = await timed_await(timed)
    assert fired == len(delays)
    return fired, seconds


if __name__ == "__main__":
    run_aio(aio)
