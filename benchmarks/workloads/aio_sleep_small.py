"""1,000 tasks each doing 100 ``await asyncio.sleep(d)`` with d in [0, 1 ms): timers driving
tasks, the way timeouts and pacing loops use them.

The delays come from ``random.Random(SEED)`` (the same on every implementation). Each
sleep creates a future and a ``call_later`` timer, suspends the task, and is resumed by
the timer (timer expiry -> future result -> task wake-up -> task step). One op is one
sleep; tasks are created and gathered inside the timed part.
"""

import random

from _common import ASYNCIO_IMPLS, run_aio, timed_await

IMPLS = ASYNCIO_IMPLS
TASKS, SLEEPS = 1_000, 100
SEED = 1_000
_rng = random.Random(SEED)
DELAYS = [[_rng.randrange(1000) / 1e6 for _ in range(SLEEPS)] for _ in range(TASKS)]


async def aio(asyncio, delays=DELAYS):
    sleep = asyncio.sleep

    async def sleeper(mine):
        for delay in mine:
            await sleep(delay)
        return len(mine)

    async def timed():
        return await asyncio.gather(*[asyncio.create_task(sleeper(d)) for d in delays])

    seconds, counts = await timed_await(timed)
    assert sum(counts) == TASKS * SLEEPS
    return TASKS * SLEEPS, seconds


if __name__ == "__main__":
    run_aio(aio)
