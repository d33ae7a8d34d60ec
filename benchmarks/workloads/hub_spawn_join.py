"""Spawn and join 100,000 greenlets that do nothing: the life cycle of a greenlet.

``spawn`` (create the greenlet, queue its start) 100,000 times, then one ``joinall`` of all
of them: both are timed, so an op is one greenlet created, started, run to its end and
reported to the joiner (in the hub: start, switch in, return, notify links). asyncio and
uvloop: ``create_task`` of a no-op coroutine 100,000 times, then ``gather`` of the tasks.
"""

from _common import HUB_IMPLS, run_hub

IMPLS = HUB_IMPLS
N = 100_000


def noop():
    pass


async def anoop():
    pass


def green(api, n=N):
    spawn = api.spawn
    greenlets = [spawn(noop) for _ in range(n)]
    api.joinall(greenlets)
    return greenlets


async def aio(asyncio, n=N):
    create_task = asyncio.create_task
    return await asyncio.gather(*[create_task(anoop()) for _ in range(n)])


def count(values):
    assert len(values) == N and not any(values)
    return N


if __name__ == "__main__":
    run_hub(green, aio, count)
