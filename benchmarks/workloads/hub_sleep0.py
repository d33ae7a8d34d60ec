"""``sleep(0)`` in a loop in one greenlet: the cost of one cooperative yield.

The main greenlet calls ``sleep(0)`` 200,000 times with nothing else to run, so each call
is a whole round trip through the hub: queue the wake-up, switch to the hub, run the
loop's callbacks (and its iteration, as often as the implementation polls), switch back.
asyncio and uvloop do the same with ``await asyncio.sleep(0)`` in one task (a bare yield:
the task's next step is queued with ``call_soon``), for reference.
"""

from _common import HUB_IMPLS, run_hub

IMPLS = HUB_IMPLS
N = 200_000


def green(api, n=N):
    sleep = api.sleep
    for _ in range(n):
        sleep(0)


async def aio(asyncio, n=N):
    sleep = asyncio.sleep
    for _ in range(n):
        await sleep(0)


def count(values):
    return N


if __name__ == "__main__":
    run_hub(green, aio, count)
