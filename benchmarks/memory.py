"""Memory per idle connection: a cooperative socket plus a greenlet blocked in recv on it.

Why it exists: a greenlet server's cost at 10,000 or 100,000 mostly idle clients is
memory, not CPU. This measures, for evloop and gevent (libev-cext), what one more idle
connection costs: N loopback ``socketpair()``s, one end of each wrapped in the impl's
cooperative ``socket`` with a greenlet blocked in ``recv(1024)`` on it (the other end kept
as a bare fd number, the same for both impls), measured after every greenlet has blocked,
minus the same process before. Each figure comes from a fresh child process:

* ``RSS``: the growth of ``VmRSS`` (/proc/self/status): everything, C allocations (libev's
  fd table, greenlet stack copies) included, in whole pages;
* ``traced``: the growth of ``tracemalloc``'s traced memory, in a separate child (tracing
  slows allocation and adds its own memory): what Python's allocators handed out.

    python benchmarks/memory.py [--counts 10000,100000] [--impls evloop,gevent] [--repeat 1]

100,000 connections need 200,000 fds: the child raises RLIMIT_NOFILE to what it needs
(the hard limit too, which needs root or CAP_SYS_RESOURCE; otherwise it exits saying so).
"""

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "workloads"
PEERS_PYTHON = str(HERE / ".peers" / "bin" / "python")
IMPLS = {"evloop": (sys.executable, {}),
         "gevent": (PEERS_PYTHON, {"GEVENT_LOOP": "libev-cext"})}


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def ensure_fds(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
    except (ValueError, OSError) as exc:
        raise SystemExit(f"needs {needed} fds; RLIMIT_NOFILE is {soft}/{hard} and cannot be "
                         f"raised ({exc})")


def child(impl, n, method):
    """Measure in this process; print {"bytes_per_conn": ..., ...}."""
    import socket as stdlib_socket
    import tracemalloc

    sys.path.insert(0, str(WORKLOADS))
    from _common import load_greenlet_api

    ensure_fds(2 * n + 100)
    api = load_greenlet_api(impl, ("socket",))
    api.sleep(0)  # the hub and its loop exist before the first measurement
    # allocated before the first measurement: the lists are not part of a connection
    peers = [0] * n
    greenlets = [None] * n
    gc.collect()
    if method == "traced":
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if method == "traced" else rss_bytes()

    cooperative = api.socket.socket
    for i in range(n):
        a, b = stdlib_socket.socketpair()
        peers[i] = b.detach()
        own = cooperative(fileno=a.detach())
        greenlets[i] = api.spawn(own.recv, 1024)
    for _ in range(3):
        api.sleep(0)  # every greenlet starts and blocks in recv
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if method == "traced" else rss_bytes()
    blocked = sum(1 for g in greenlets if not g.ready())
    if blocked != n:
        raise SystemExit(f"only {blocked} of {n} greenlets blocked in recv")
    if method == "traced":
        tracemalloc.stop()

    for fd in peers:  # each recv returns b"" and its greenlet ends
        os.close(fd)
    api.joinall(greenlets, raise_error=True)
    if any(g.value != b"" for g in greenlets):
        raise SystemExit("a greenlet's recv returned data")
    print(json.dumps({"bytes_per_conn": (after - before) / n, "total": after - before}))


def measure(impl, n, method):
    python, env = IMPLS[impl]
    proc = subprocess.run([python, __file__, "--child", impl, str(n), method],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env}, cwd=WORKLOADS)
    if proc.returncode:
        raise RuntimeError(f"{impl} {n} {method}: exit {proc.returncode}: "
                           f"{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["bytes_per_conn"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--counts", default="10000,100000")
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    if args.child:
        impl, n, method = args.child
        child(impl, int(n), method)
        return 0
    impls = args.impls.split(",")
    unknown = set(impls) - set(IMPLS)
    if unknown:
        parser.error(f"unknown impls {sorted(unknown)}; choose from {list(IMPLS)}")
    try:
        counts = [int(c) for c in args.counts.split(",")]
    except ValueError:
        parser.error("--counts takes comma-separated integers")
    if args.repeat < 1 or min(counts) < 1:
        parser.error("--repeat and --counts must be at least 1")

    samples = {}
    for r in range(args.repeat):
        for n in counts:
            for method in ("rss", "traced"):
                for impl in impls:
                    value = measure(impl, n, method)
                    samples.setdefault((impl, n, method), []).append(value)
                    print(f"[{r + 1}/{args.repeat}] {impl:<7} {n:>7} connections "
                          f"{method:<6} {value:8.0f} bytes each", file=sys.stderr,
                          flush=True)
    medians = {key: statistics.median(v) for key, v in samples.items()}
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    context = [f"command: `{Path(sys.executable).name} {shlex.join(sys.argv)}`",
               f"date: {date}; {platform.system()} {platform.release()} "
               f"{platform.machine()}; Python {platform.python_version()}",
               f"bytes per idle connection (socket + greenlet blocked in recv), median of "
               f"{args.repeat}"]
    header = ["connections"] + [f"{impl} {m}" for m in ("RSS", "traced") for impl in impls]
    if "evloop" in impls and "gevent" in impls:
        header += ["evloop/gevent RSS", "evloop/gevent traced"]
    rows = []
    for n in counts:
        row = [f"{n:,}"]
        row += [f"{medians[(impl, n, m)]:,.0f}" for m in ("rss", "traced") for impl in impls]
        if "evloop" in impls and "gevent" in impls:
            row += [f"{medians[('evloop', n, m)] / medians[('gevent', n, m)]:.2f}"
                    for m in ("rss", "traced")]
        rows.append(row)
    prefix = "- " if args.markdown else ""
    print("\n".join(prefix + line for line in context) + "\n")
    if args.markdown:
        lines = [header, ["---:"] * len(header)] + rows
        print("\n".join("| " + " | ".join(line) + " |" for line in lines))
    else:
        widths = [max(len(line[i]) for line in [header] + rows) for i in range(len(header))]
        print("\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths))
                        for line in [header] + rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"date": date, "context": context,
                       "bytes_per_conn": [{"impl": i, "connections": n, "method": m,
                                           "median": v, "runs": samples[(i, n, m)]}
                                          for (i, n, m), v in medians.items()]}, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
