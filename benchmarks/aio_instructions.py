"""Instructions per operation of the asyncio loops, counted by callgrind (deterministic).

Why it exists: on the shared 2-core machine wall-clock ratios between asyncio loops move
by tens of percent from run to run; callgrind's instruction counts do not. Each workload
runs at two sizes in a fresh interpreter under ``valgrind --tool=callgrind``; the
difference divided by the difference in size is the cost of one operation, start-up and
warm-up cancelled out. Instructions are not time (cache misses and system calls are not
weighed), so this complements ``run.py``, it does not replace it.

    python3 benchmarks/aio_instructions.py                   # all workloads, three loops
    python3 benchmarks/aio_instructions.py --impls evloop.aio,uvloop --workloads sleep0

The workloads (one op each): ``sleep0`` one task awaiting ``asyncio.sleep(0)``; ``spawn``
``create_task`` of a no-op coroutine, all gathered; ``call_later`` ``loop.call_later(d, cb)``
with d in [0, 1 ms); ``sleep_small`` ``asyncio.sleep(d)`` in tasks of 100, d in [0, 90 us].
uvloop runs in ``benchmarks/.peers`` (see run.py); evloop.aio and asyncio in this
interpreter, which must be the real binary, not a pyenv shim (valgrind would trace bash).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS_PYTHON = os.path.join(HERE, ".peers", "bin", "python")
IMPLS = ("evloop.aio", "uvloop", "asyncio")
WORKLOADS = ("sleep0", "spawn", "call_later", "sleep_small")
SMALL, LARGE = 10_000, 30_000

CHILD = r'''
import asyncio, sys
impl, n, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if impl == "uvloop":
    import uvloop; factory = uvloop.new_event_loop
elif impl == "evloop.aio":
    import evloop.aio; factory = evloop.aio.new_event_loop
else:
    factory = asyncio.new_event_loop

async def sleep0(n):
    s = asyncio.sleep
    for _ in range(n):
        await s(0)

async def noop():
    pass

async def spawn(n):
    await asyncio.gather(*[asyncio.create_task(noop()) for _ in range(n)])

async def call_later(n):
    loop = asyncio.get_running_loop()
    done, left = loop.create_future(), [n]
    def cb():
        left[0] -= 1
        if not left[0]:
            done.set_result(None)
    for i in range(n):
        loop.call_later((i % 1000) / 1e6, cb)
    await done

async def sleep_small(n):
    async def task():
        for i in range(100):
            await asyncio.sleep((i % 10) / 1e5)
    await asyncio.gather(*[task() for _ in range(n // 100)])

async def main():
    work = globals()[what]
    await work(2000)   # warm-up: caches, free lists, lazily created objects
    await work(n)

loop = factory()
try:
    loop.run_until_complete(main())
finally:
    loop.close()
'''


def python_for(impl):
    if impl == "uvloop":
        return PEERS_PYTHON
    exe = os.path.realpath(sys.executable)
    return exe


def instructions(impl, n, workload, script):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        env = {**os.environ, "PYTHONPATH": ROOT}
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                               python_for(impl), script, impl, str(n), workload],
                              capture_output=True, text=True, env=env)
        if proc.returncode:
            raise SystemExit(f"{impl} {workload} failed:\n{proc.stderr[-2000:]}")
        match = re.search(r"Collected : (\d+)", proc.stderr)
        return int(match.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    impls = args.impls.split(",")
    workloads = args.workloads.split(",")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(CHILD)
        script = f.name
    try:
        rows = []
        for workload in workloads:
            row = {}
            for impl in impls:
                small = instructions(impl, SMALL, workload, script)
                large = instructions(impl, LARGE, workload, script)
                row[impl] = (large - small) / (LARGE - SMALL)
                print(f"{workload:12} {impl:11} {row[impl]:9.0f} instructions/op",
                      file=sys.stderr, flush=True)
            rows.append((workload, row))
    finally:
        os.unlink(script)
    header = ["workload"] + impls
    if "evloop.aio" in impls and "uvloop" in impls:
        header.append("evloop.aio/uvloop")
    print("| " + " | ".join(header) + " |")
    print("| --- |" + " ---: |" * (len(header) - 1))
    for workload, row in rows:
        cells = [workload] + [f"{row[i]:,.0f}" for i in impls]
        if "evloop.aio/uvloop" in header:
            cells.append(f"{row['evloop.aio'] / row['uvloop']:.2f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
