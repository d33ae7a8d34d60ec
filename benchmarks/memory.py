"""Memory per idle connection: a cooperative socket plus a greenlet blocked in recv on it.

Why it exists: a greenlet server's cost at 10,000 or 100,000 mostly idle clients is
memory, not CPU. This measures, for evloop and gevent (libev-cext), what one more idle
connection costs: N TCP connections over 127.0.0.1 from another process (which holds
them open and idle), each accepted, wrapped in the impl's cooperative ``socket`` and given
a greenlet blocked in ``recv(1024)`` on it; measured after every greenlet has blocked,
minus the same process before the first accept. Each figure comes from a fresh child
process:

* ``RSS``: the growth of ``VmRSS`` (/proc/self/status): everything, C allocations (libev's
  fd table, greenlet stack copies) included, in whole pages;
* ``traced``: the growth of ``tracemalloc``'s traced memory, in a separate child (tracing
  slows allocation and adds its own memory): what Python's allocators handed out.

    python benchmarks/memory.py [--counts 1000,10000,100000] [--impls evloop,gevent] [--repeat 1]

N connections need N fds in the measured process and in the client's: each raises its
RLIMIT_NOFILE to what it needs (above the hard limit only with CAP_SYS_RESOURCE; without
it, a count above the hard limit exits saying so).
"""

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import shlex
import socket as stdlib_socket
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


def hold(port, n):
    """The client side (another process): open ``n`` connections, keep them idle until
    stdin closes."""
    ensure_fds(n + 50)
    conns = [stdlib_socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    print("connected", flush=True)
    sys.stdin.read()
    for conn in conns:
        conn.close()


def child(impl, n, method):
    """Measure in this process; print {"bytes_per_conn": ..., ...}."""
    import tracemalloc

    sys.path.insert(0, str(WORKLOADS))
    from _common import load_greenlet_api

    ensure_fds(n + 50)
    api = load_greenlet_api(impl, ("socket",))
    api.sleep(0)  # the hub and its loop exist before the first measurement
    listener = stdlib_socket.create_server(("127.0.0.1", 0), backlog=4096)
    holder = subprocess.Popen([sys.executable, __file__, "--hold",
                               str(listener.getsockname()[1]), str(n)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    # allocated before the first measurement: the list is not part of a connection
    greenlets = [None] * n
    gc.collect()
    if method == "traced":
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if method == "traced" else rss_bytes()

    cooperative = api.socket.socket
    for i in range(n):
        conn, _ = listener.accept()  # blocking: the holder connects as fast as it can
        own = cooperative(fileno=conn.detach())
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

    if holder.stdout.readline().strip() != "connected":
        raise SystemExit("the client process failed")
    holder.stdin.close()  # it closes its ends: each recv returns b"" and its greenlet ends
    api.joinall(greenlets, raise_error=True)
    holder.wait()
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
    parser.add_argument("--hold", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--counts", default="1000,10000,100000")
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    if args.hold:
        hold(*args.hold)
        return 0
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

    samples, failed = {}, {}
    for r in range(args.repeat):
        for n in counts:
            for method in ("rss", "traced"):
                for impl in impls:
                    try:
                        value = measure(impl, n, method)
                    except RuntimeError as exc:  # e.g. more fds than the hard limit
                        failed[(impl, n, method)] = str(exc).splitlines()[-1]
                        print(f"{impl} {n} {method}: {failed[(impl, n, method)]}",
                              file=sys.stderr, flush=True)
                        continue
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
        row += [f"{medians[(impl, n, m)]:,.0f}" if (impl, n, m) in medians else "-"
                for m in ("rss", "traced") for impl in impls]
        if "evloop" in impls and "gevent" in impls:
            row += [f"{medians[('evloop', n, m)] / medians[('gevent', n, m)]:.2f}"
                    if ("evloop", n, m) in medians and ("gevent", n, m) in medians else "-"
                    for m in ("rss", "traced")]
        rows.append(row)
    for (impl, n, method), error in failed.items():
        context.append(f"not measured: {impl} at {n:,} ({method}): {error}")
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
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
