"""evloop demo: greenlets in plain blocking style, running concurrently on one thread.

Run: python examples/demo.py — three scenes, each printing what happened and how long it
took:
1. five greenlets sleep 0.1-0.5 s each: together they take the longest sleep, not the sum;
2. a producer and two consumers pass 20 items through a bounded Queue;
3. joinall with a timeout: the fast workers' values are collected, the slow one is killed.
"""
import time

import evloop
from evloop.queue import Queue


def scene(title: str) -> float:
    print(f"\n== {title}")
    return time.perf_counter()


def overlapping_sleeps() -> None:
    t0 = scene("overlapping sleeps")

    def nap(seconds: float) -> float:
        evloop.sleep(seconds)
        return seconds

    greenlets = [evloop.spawn(nap, s / 10) for s in (3, 1, 5, 2, 4)]
    evloop.joinall(greenlets)
    took = time.perf_counter() - t0
    total = sum(g.value for g in greenlets)
    print(f"5 greenlets slept {total:.1f} s in all; wall time {took:.2f} s "
          f"(the longest sleep is 0.5 s)")


def producer_consumer() -> None:
    t0 = scene("producer/consumer over a Queue(maxsize=3)")
    queue: Queue = Queue(maxsize=3)
    eaten = {"alice": [], "bob": []}

    def producer() -> None:
        for item in range(20):
            queue.put(item)        # blocks while 3 items wait
        for _ in eaten:
            queue.put(StopIteration)

    def consumer(name: str) -> None:
        for item in queue:         # blocks for the next item; StopIteration ends it
            eaten[name].append(item)
            evloop.sleep(0.01)     # pretend to work

    evloop.joinall([evloop.spawn(producer)] + [evloop.spawn(consumer, n) for n in eaten])
    took = time.perf_counter() - t0
    for name, items in eaten.items():
        print(f"{name} ate {len(items)} items: {items}")
    print(f"20 items, 2 consumers x 10 ms each: {took:.2f} s (one consumer would take 0.2 s)")


def joinall_with_timeout() -> None:
    t0 = scene("joinall(timeout=0.3) over workers of 0.1, 0.2 and 2.0 s")

    def worker(name: str, seconds: float) -> str:
        evloop.sleep(seconds)
        return f"{name} done after {seconds} s"

    workers = [evloop.spawn(worker, n, s) for n, s in (("fast", 0.1), ("medium", 0.2),
                                                       ("slow", 2.0))]
    done = evloop.joinall(workers, timeout=0.3)
    print("finished in time:", [g.value for g in done])
    late = [g for g in workers if not g.ready()]
    evloop.killall(late)
    print(f"killed {len(late)} late worker(s); dead now: {[g.dead for g in late]}")
    print(f"took {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    start = time.perf_counter()
    overlapping_sleeps()
    producer_consumer()
    joinall_with_timeout()
    print(f"\nall scenes: {time.perf_counter() - start:.2f} s on one thread, "
          f"loop backend {evloop.get_hub().loop.backend!r}")
