"""Instruction counts of the hot paths, two builds side by side (the refactor speed guard).

Why it exists: wall-clock figures on a shared 2-core machine move by tens of percent;
callgrind's instruction counts of the same run repeat to ~0.05%. This runs each hot-path
workload of benchmarks/workloads under ``valgrind --tool=callgrind`` twice per build, with
a small fixed N and with 2N, and prints the instructions per operation, (I(2N) - I(N)) / N:
start-up, imports and the workload's set-up cancel out, whatever each build imports.

Usage::

    python benchmarks/callgrind_guard.py BEFORE_PYTHON AFTER_PYTHON [--only a,b]

Each PYTHON is an interpreter with that build of evloop installed (e.g. a venv made from
``git archive <commit>``). Runs use PYTHONHASHSEED=0. What it must not do: compare builds
made with different compilers or flags, or report a figure it did not measure.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")
# name: N (small enough for a run under valgrind to take well under a minute)
GUARDED = {"core_idle": 100_000, "core_run_callback": 100_000, "hub_sleep0": 25_000,
           "hub_spawn_join": 10_000, "hub_event_pingpong": 15_000, "io_pingpong": 5_000}

DRIVER = r'''
import re, sys
workloads, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, workloads)
if name == "none":
    import evloop, evloop.core, evloop.hub, evloop.socket  # start-up cost only
    raise SystemExit(0)
import _common
_common.N = n
path = f"{workloads}/{name}.py"
src = open(path).read()
src = re.sub(r"^N = [0-9_]+$", f"N = {n}", src, flags=re.M)
sys.argv = [path, "evloop"]
exec(compile(src, path, "exec"), {"__name__": "__main__", "__file__": path})
'''


def instructions(python, name, n, tmp):
    out = os.path.join(tmp, f"{abs(hash(python))}-{name}.out")
    driver = os.path.join(tmp, "drive.py")
    with open(driver, "w") as f:
        f.write(DRIVER)
    env = dict(os.environ, PYTHONHASHSEED="0")
    run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          python, driver, WORKLOADS, name, str(n)],
                         env=env, capture_output=True, text=True, timeout=900)
    m = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or m is None:
        raise SystemExit(f"{name} under {python} failed:\n{run.stdout}\n{run.stderr}")
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--only", help="comma-separated workload names")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(GUARDED)
    for name in names:
        if name not in GUARDED:
            ap.error(f"unknown workload {name!r}; one of {', '.join(GUARDED)}")
    with tempfile.TemporaryDirectory() as tmp:
        print("| workload | N | before (instr/op) | after (instr/op) | change |")
        print("|---|---:|---:|---:|---:|")
        for name in names:
            n = GUARDED[name]
            per_op = []
            for python in (args.before, args.after):
                one = instructions(python, name, n, tmp)
                two = instructions(python, name, 2 * n, tmp)
                per_op.append((two - one) / n)
            b, a = per_op
            print(f"| {name} | {n:,} | {b:,.1f} | {a:,.1f} | {(a / b - 1) * 100:+.2f}% |",
                  flush=True)

if __name__ == "__main__":
    sys.exit(main())
