"""Event ping-pong between two greenlets: ``Event.set`` waking an ``Event.wait``.

Two Events, e1 and e2. Greenlet A waits on e1, clears it and sets e2; greenlet B waits on
e2, clears it and sets e1; the main greenlet sets e1 once to start and joins both. One op
is one round trip (A -> B -> A: two set/wait hand-offs, each a notification queued by
``set`` and run by the hub, and two greenlet switches through it). asyncio and uvloop do
the same with two ``asyncio.Event`` in two tasks, for reference.
"""

from _common import HUB_IMPLS, run_hub

IMPLS = HUB_IMPLS
N = 100_000


def green(api, n=N):
    Event = api.event.Event
    e1, e2 = Event(), Event()

    def player(mine, other):
        for _ in range(n):
            mine.wait()
            mine.clear()
            other.set()
        return n

    greenlets = [api.spawn(player, e1, e2), api.spawn(player, e2, e1)]
    e1.set()
    api.joinall(greenlets)
    return greenlets


async def aio(asyncio, n=N):
    e1, e2 = asyncio.Event(), asyncio.Event()

    async def player(mine, other):
        for _ in range(n):
            await mine.wait()
            mine.clear()
            other.set()
        return n

    tasks = [asyncio.create_task(player(e1, e2)), asyncio.create_task(player(e2, e1))]
    e1.set()
    return await asyncio.gather(*tasks)


def count(values):
    assert values == [N, N], values
    return N


if __name__ == "__main__":
    run_hub(green, aio, count)
