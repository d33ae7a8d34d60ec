"""Stress the cross-thread wake-up paths: Semaphore.release() and Queue.put() from threads.

Why it exists: a lost wake-up between another thread and the hub shows up only when the
GIL changes hands at one exact bytecode, which an idle machine almost never does (the
suite's test_many_releases_from_a_thread failed once, under load, with 199 of 200). This
script makes such switches frequent — a tiny ``sys.setswitchinterval``, several
producer threads, optional busy-loop processes — and counts the acquires/gets that time
out although the producers gave enough. It must not be part of the test suite (it is
slow and load-dependent); the suite has deterministic tests that force the interleaving.

    python3 tools/stress_cross_thread.py [--rounds 20] [--n 2000] [--threads 3]
                                          [--switch 1e-6] [--hogs 0] [--timeout 2] [--sleep 0.0002]

Exit status 1 if any wait timed out with permits/items outstanding.
"""
import argparse
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import evloop  # noqa: E402
from evloop.lock import Semaphore  # noqa: E402
from evloop.queue import Empty, Queue  # noqa: E402


SLEEP = 0.0002


def _producers(count: int, n: int, give) -> list:
    # each producer sleeps after every give, so the consumer is usually blocked (in the
    # hub's poll) when the next one comes: every give then has to wake the hub
    def body(k: int) -> None:
        for i in range(k, n, count):
            give(i)
            time.sleep(SLEEP)

    threads = [threading.Thread(target=body, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    return threads


def semaphore_round(n: int, threads: int, timeout: float) -> int:
    s = Semaphore(0)
    ts = _producers(threads, n, lambda i: s.release())
    lost = 0
    try:
        for _ in range(n):
            if not s.acquire(timeout=timeout):
                # the producers finish in well under the timeout: a permit free now was
                # there, unannounced, for a long time
                lost += 1
                print(f"  semaphore: acquire timed out with counter={s.counter}")
    finally:
        for t in ts:
            t.join()
    return lost


def queue_round(n: int, threads: int, timeout: float) -> int:
    q = Queue()
    ts = _producers(threads, n, q.put)
    lost = 0
    try:
        for _ in range(n):
            try:
                q.get(timeout=timeout)
            except Empty:
                lost += 1
                print(f"  queue: get timed out with {q.qsize()} items queued")
    finally:
        for t in ts:
            t.join()
    return lost


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--switch", type=float, default=1e-6, help="sys.setswitchinterval")
    ap.add_argument("--hogs", type=int, default=0, help="busy-loop processes to start")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--sleep", type=float, default=SLEEP, help="after each give")
    args = ap.parse_args()
    globals()["SLEEP"] = args.sleep
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"])
            for _ in range(args.hogs)]
    try:
        sys.setswitchinterval(args.switch)
        evloop.get_hub()
        totals = {"semaphore": 0, "queue": 0}
        start = time.monotonic()
        for r in range(args.rounds):
            totals["semaphore"] += semaphore_round(args.n, args.threads, args.timeout)
            totals["queue"] += queue_round(args.n, args.threads, args.timeout)
        print(f"rounds={args.rounds} n={args.n} threads={args.threads} "
              f"switch={args.switch} hogs={args.hogs}: timed-out waits {totals} "
              f"in {time.monotonic() - start:.1f}s")
        return 1 if any(totals.values()) else 0
    finally:
        for p in hogs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    sys.exit(main())
