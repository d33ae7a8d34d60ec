"""20,000 greenlets each sleeping a random 0-49 ms: many timers at once, and their overhead.

The delays are whole milliseconds drawn from ``random.Random(SEED)`` (the same list on every
implementation); all 20,000 greenlets are spawned, then joined with ``joinall``, all timed.
Every greenlet starts, arms a timer, switches out, and is resumed by its timer, so the hub
holds up to 20,000 timers in its heap. asyncio and uvloop: 20,000 tasks each doing
``await asyncio.sleep(delay)``, awaited with ``gather``.

Metric: ops/s = 20,000 / total wall time (spawn to the end of the join), higher is better.
No run can take less than the longest delay, 49 ms, so the rate is at most
20,000 / 0.049 s = 408 k/s and ratios understate differences in overhead; the overhead
of a run (its time beyond the longest sleep) is 20,000 / rate - 0.049 s.
"""

import random

from _common import HUB_IMPLS, run_hub

IMPLS = HUB_IMPLS
N = 20_000
SEED = 20_000
_rng = random.Random(SEED)
DELAYS = [_rng.randrange(50) / 1000 for _ in range(N)]
assert max(DELAYS) == 0.049


def green(api, delays=DELAYS):
    spawn, sleep = api.spawn, api.sleep
    greenlets = [spawn(sleep, delay) for delay in delays]
    api.joinall(greenlets)
    return greenlets


async def aio(asyncio, delays=DELAYS):
    create_task, sleep = asyncio.create_task, asyncio.sleep
    return await asyncio.gather(*[create_task(sleep(delay)) for delay in delays])


def count(values):
    assert len(values) == N and not any(values)
    return N


if __name__ == "__main__":
    run_hub(green, aio, count)
