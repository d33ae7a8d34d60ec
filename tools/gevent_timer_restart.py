#!/usr/bin/env python3
"""Why gevent's ``test__core_timer`` ``TestTimerResolution.test_resolution`` fails on evloop.

Why it exists: it is the one test of gevent's acceptance modules that fails on evloop's
loop and passes on gevent's libev-cffi loop (docs/gevent.md). This script reruns that
test's loop body -- 150 times: start an io watcher that is ready at once and a 1 ms timer,
``run(once=True)``, stop both -- on each loop, in a subprocess per loop, optionally with a
busy-wait added to every iteration to make the loop as slow as a slower one, and prints
per loop and busy-wait: the time an iteration took, in how many iterations the 1 ms timer
fired, and how long after its ``start()`` it fired (median).

What it shows (docs/gevent.md has a recorded run): on gevent's libev loops, ``stop()``
keeps libev's "time that was left", and once that is used up (the iterations add up to
1 ms) every later ``start()`` fires at the next iteration, microseconds after it -- a
1 ms timer firing early, gevent issue #1890. The gevent test passes because of that,
given iterations slow enough to use up the first millisecond within 150 of them.
evloop's ``start()`` of a stopped timer waits its full ``after``, so the timer fires only
when a single iteration takes 1 ms, however slow the iterations are.

What it must not do: judge. It prints what it measured; it changes no loop.

    python tools/gevent_timer_restart.py                          # spins 0, 30, 200 us
    python tools/gevent_timer_restart.py --spins 0 --loops evloop
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOOPS = {
    "libev-cffi": "libev-cffi",
    "libev-cext": "libev-cext",
    "evloop": "evloop.integrations.gevent.loop",
}

# The body of gevent's test_resolution (gevent/tests/test__core_timer.py), with a
# busy-wait of SPIN seconds added after each iteration; prints one line of results.
CHILD = r"""
import socket, sys, time
from gevent import config
spin = float(sys.argv[1]) * 1e-6
loop = config.loop(default=False)
timer = loop.timer(0.001)
s = socket.socket()
fired, hits, delays = [], [], []
begin = time.perf_counter()
for i in range(150):
    io = loop.io(s.fileno(), 1)
    io.start(lambda events=None: None)
    now = time.perf_counter()
    del fired[:]
    timer.start(lambda: fired.append(time.perf_counter()))
    loop.run(once=True)
    io.stop()
    io.close()
    timer.stop()
    end = time.perf_counter() + spin
    while time.perf_counter() < end:
        pass
    if fired:
        hits.append(i)
        delays.append(fired[0] - now)
per_iter = (time.perf_counter() - begin) / 150
delays.sort()
median = "%.1f" % (delays[len(delays) // 2] * 1e6) if delays else "-"
print("%.1f %d %s %s" % (per_iter * 1e6, len(hits), hits[0] if hits else "-", median))
s.close()
loop.destroy()
"""


def run(loop: str, spin: int) -> str:
    env = dict(os.environ)
    env["GEVENT_LOOP"] = LOOPS[loop]
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(spin)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        sys.exit("%s failed:\n%s" % (loop, proc.stderr))
    return proc.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", default="libev-cffi,libev-cext,evloop")
    parser.add_argument("--spins", default="0,30,200",
                        help="busy-wait added to each iteration, microseconds")
    args = parser.parse_args()
    loops = [x.strip() for x in args.loops.split(",") if x.strip()]
    for name in loops:
        if name not in LOOPS:
            sys.exit("unknown loop %r (one of %s)" % (name, ", ".join(LOOPS)))
    spins = [int(x) for x in args.spins.split(",")]
    print("| loop | busy-wait per iteration | iteration | iterations in which the 1 ms timer "
          "fired (of 150) | first | fired after start() (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    for spin in spins:
        for loop in loops:
            per_iter, count, first, median = run(loop, spin).split()
            print("| %s | %d µs | %s µs | %s | %s | %s |"
                  % (loop, spin, per_iter, count, first,
                     median + " µs" if median != "-" else "-"))


if __name__ == "__main__":
    main()
