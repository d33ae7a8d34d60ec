"""Round trips across the greenlet/coroutine boundary, against the stdlib's thread tools.

Why it exists: ``evloop.aio_bridge`` is how blocking-style code and coroutines wait on
each other in one thread; the stdlib's answer to the same need is a thread
(``asyncio.to_thread`` one way, ``run_coroutine_threadsafe(...).result()`` the other). No
peer in ``run.py``'s table has a greenlet <-> coroutine bridge, so this is a standalone
script rather than a harness workload: one process, one evloop.aio loop, the four
operations interleaved round by round, medians. It is never part of the test run.

    python3 benchmarks/bridge_vs_threads.py [--rounds 7] [--n 5000]
"""
import argparse
import asyncio
import statistics
import time

import evloop.aio
from evloop.aio import await_, run_in_greenlet


async def noop_coro() -> int:
    return 1


def noop() -> int:
    return 1


async def run_in_greenlet_noop(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await run_in_greenlet(noop)
    return time.perf_counter() - t0


async def to_thread_noop(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await asyncio.to_thread(noop)
    return time.perf_counter() - t0


async def await_from_greenlet(n: int) -> float:
    def body() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await_(noop_coro())
        return time.perf_counter() - t0
    return await run_in_greenlet(body)


async def threadsafe_from_thread(n: int) -> float:
    loop = asyncio.get_running_loop()

    def body() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            asyncio.run_coroutine_threadsafe(noop_coro(), loop).result()
        return time.perf_counter() - t0
    return await asyncio.to_thread(body)


BENCHES = {
    "await run_in_greenlet(noop)": run_in_greenlet_noop,
    "await asyncio.to_thread(noop)": to_thread_noop,
    "await_(coro()) from a greenlet": await_from_greenlet,
    "run_coroutine_threadsafe(coro(), loop).result() from a thread": threadsafe_from_thread,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    times = {name: [] for name in BENCHES}

    async def run_all() -> None:
        for _ in range(args.rounds):
            for name, bench in BENCHES.items():
                times[name].append(await bench(args.n))

    evloop.aio.run(run_all())
    print(f"| operation | µs per round trip | round trips/s |  (median of {args.rounds} "
          f"rounds of {args.n})")
    print("|---|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| `{name}` | {med / args.n * 1e6:.1f} | {args.n / med:,.0f} |")


if __name__ == "__main__":
    main()
