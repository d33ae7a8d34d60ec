"""100 greenlets taking turns: each calls ``sleep(0)`` 2,000 times (200,000 yields).

All 100 are spawned, then joined with ``joinall``; spawning 100 is negligible, so this
measures a yield when others are ready: each ``sleep(0)`` queues the greenlet behind the
99 others and switches to the next one, through the hub. asyncio and uvloop: 100 tasks
(``create_task``) each doing ``await asyncio.sleep(0)`` 2,000 times, awaited with
``gather``.
"""

from _common import HUB_IMPLS, run_hub

IMPLS = HUB_IMPLS
WORKERS = 100
YIELDS = 2_000


def green(api, workers=WORKERS, yields=YIELDS):
    sleep = api.sleep

    def worker():
        for _ in range(yields):
            sleep(0)
        return yields

    greenlets = [api.spawn(worker) for _ in range(workers)]
    api.joinall(greenlets)
    return greenlets


async def aio(asyncio, workers=WORKERS, yields=YIELDS):
    sleep = asyncio.sleep

    async def worker():
        for _ in range(yields):
            await sleep(0)
        return yields

    return await asyncio.gather(*[asyncio.create_task(worker()) for _ in range(workers)])


def count(values):
    assert values == [YIELDS] * WORKERS, values
    return WORKERS * YIELDS


if __name__ == "__main__":
    run_hub(green, aio, count)
