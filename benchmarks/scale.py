"""TCP echo at scale: 1 to 10,000 connections, 1 KiB to 1 MiB messages, five servers.

Why it exists: tcp_echo (32 connections x 1 KiB) is one point; how a server holds up as
connections and message sizes grow is a curve. This harness runs each server in its own
process on 127.0.0.1 and drives it with the C load generator (``loadgen/echo_client.c``:
one thread, epoll, non-blocking, closed loop: each connection sends a message and waits
for all of its echo), and reports round trips/s, MB/s (echoed bytes), p50/p99 round-trip
latency, the server's CPU time per round trip (sampled over exactly the counted part,
and much less disturbed by other load on the machine than the rate) and the CPU the
server and the client used. Runs are interleaved (repeat ->
point -> server, the server order rotating each repeat); medians of the repeats.

    python benchmarks/scale.py [--conns 1,32,1000,10000] [--sizes 1024,65536,1048576]
                               [--servers evloop,gevent,uvloop,evloop.aio,c-epoll]
                               [--repeat 3] [--warmup 0.5] [--duration 2] [--markdown] [--json FILE]

Servers (each the same echo: read what arrived, write it back):

* ``evloop``: ``evloop.server.StreamServer``, a greenlet per connection looping
  ``recv(65536)`` / ``sendall`` (TCP_NODELAY), evloop's interpreter (the one running this);
* ``gevent``: the same code on ``gevent.server.StreamServer`` (libev-cext), the peers venv;
* ``uvloop``: an ``asyncio.Protocol`` whose ``data_received`` calls ``transport.write``
  (pausing reads while the transport's write buffer is above its high-water mark), peers venv;
* ``evloop.aio``: the same Protocol on ``evloop.aio``'s loop, evloop's interpreter;
* ``c-epoll``: ``loadgen/echo_server.c``, one C thread on epoll: the floor (no Python).

Points whose bytes in flight (connections x message size) exceed ``--max-inflight``
(64 MiB by default) are left out: 10,000 x 64 KiB would hold 640 MB in socket buffers,
which measures the kernel's memory pressure, not the server. On a 2-core machine the
client and the server share the cores: a server near the C floor is under-measured.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "workloads"
sys.path.insert(0, str(WORKLOADS))

from _common import loadgen_command, raise_fd_limit  # noqa: E402

PEERS_PYTHON = str(HERE / ".peers" / "bin" / "python")
#: server -> (interpreter or None for the C server, extra environment)
SERVERS = {
    "evloop": (sys.executable, {}),
    "gevent": (PEERS_PYTHON, {"GEVENT_LOOP": "libev-cext"}),
    "uvloop": (PEERS_PYTHON, {}),
    "evloop.aio": (sys.executable, {}),
    "c-epoll": (None, {}),
}
RATIOS = (("evloop", "gevent"), ("evloop", "uvloop"), ("evloop.aio", "uvloop"),
          ("evloop", "c-epoll"))
BACKLOG = 4096


# -- the servers (run as ``scale.py --serve NAME``) ------------------------------------------

def serve_green(name):
    import socket

    from _common import load_greenlet_api

    api = load_greenlet_api(name, ("socket", "server"))

    def handle(conn, address):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        recv, sendall = conn.recv, conn.sendall
        try:
            while True:
                data = recv(65536)
                if not data:
                    break
                sendall(data)
        except OSError:  # the client exits with echoes in flight
            pass
        conn.close()

    server = api.server.StreamServer(("127.0.0.1", 0), handle, backlog=BACKLOG)
    server.start()
    print(server.server_port, flush=True)
    server.serve_forever()


def serve_aio(name):
    import asyncio

    from _common import load_asyncio_loop_factory

    new_event_loop, loop_class = load_asyncio_loop_factory(name)

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.write = transport.write

        def data_received(self, data):
            self.write(data)

        # flow control: a client that stops reading stops this connection's reads
        def pause_writing(self):
            self.transport.pause_reading()

        def resume_writing(self):
            self.transport.resume_reading()

    async def main():
        loop = asyncio.get_running_loop()
        if not isinstance(loop, loop_class):
            raise SystemExit(f"{name}: the loop is a {type(loop)!r}")
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=BACKLOG)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

    loop = new_event_loop()
    loop.run_until_complete(main())


# -- the harness -----------------------------------------------------------------------------

def cpu_seconds(pid):
    """user + system CPU seconds of a live process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(name):
    python, env = SERVERS[name]
    if python is None:
        cmd = loadgen_command("echo_server")
    else:
        cmd = [python, __file__, "--serve", name]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **env}, cwd=WORKLOADS)
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{name}: the server did not start (printed {line!r})")
    return proc, int(line)


def run_point(name, conns, size, warmup, duration):
    """One run: a fresh server, the load generator against it; a dict of figures."""
    server, port = start_server(name)
    try:
        cmd = loadgen_command("echo_client", "127.0.0.1", port, conns, size, warmup,
                              duration, "mark")
        server_cpu = cpu_seconds(server.pid)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        # the client says when its counted part begins; it ends when the client exits
        marked = client.stderr.readline() == "counting\n"
        counted_cpu = cpu_seconds(server.pid)
        try:
            stdout, stderr = client.communicate(timeout=120 + warmup + duration)
        except subprocess.TimeoutExpired:
            client.kill()
            client.communicate()
            raise
        counted_cpu = cpu_seconds(server.pid) - counted_cpu
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the client only: the
        server_cpu = cpu_seconds(server.pid) - server_cpu     # server is not reaped yet
    finally:
        server.kill()
        server.wait()
    if client.returncode or not marked:
        raise RuntimeError(f"{name}: echo_client failed ({client.returncode}): "
                           f"{stderr.strip()}")
    result = json.loads(stdout.strip().splitlines()[-1])
    client_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return {"rate": result["ops"] / result["seconds"],
            "mbps": result["bytes"] / result["seconds"] / 1e6,
            "p50_us": result["p50_us"], "p99_us": result["p99_us"],
            # the server's CPU per round trip over the counted part: what a round trip
            # costs it, much less disturbed by other load than the rate
            "server_us_per_rt": counted_cpu / max(result["ops"], 1) * 1e6,
            # share of one core over the client's whole run (connects and warm-up too)
            "server_cpu": server_cpu / wall, "client_cpu": client_cpu / wall}


def human(value, unit=""):
    for suffix, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f} {suffix}{unit}"
    return f"{value:.0f}{' ' + unit if unit else ''}"


def latency(us):
    return f"{us / 1e3:.1f} ms" if us >= 1000 else f"{us:.0f} µs"


def size_name(size):
    return f"{size // 1048576} MiB" if size >= 1048576 else f"{size // 1024} KiB"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--conns", default="1,32,1000,10000")
    parser.add_argument("--sizes", default="1024,65536,1048576")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--max-inflight", type=int, default=64 << 20,
                        help="leave out points with connections x size above this many bytes")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    if args.serve:
        raise_fd_limit(0)
        if args.serve in ("evloop", "gevent"):
            serve_green(args.serve)
        else:
            serve_aio(args.serve)
        return 0

    servers = args.servers.split(",")
    unknown = set(servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; choose from {list(SERVERS)}")
    try:
        conns = [int(c) for c in args.conns.split(",")]
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error("--conns and --sizes take comma-separated integers")
    if args.repeat < 1 or min(conns + sizes) < 1:
        parser.error("--repeat, --conns and --sizes must be at least 1")
    raise_fd_limit(max(conns) + 100)  # inherited by the servers and the client
    points = [(c, s) for c in conns for s in sizes if c * s <= args.max_inflight]
    left_out = [(c, s) for c in conns for s in sizes if c * s > args.max_inflight]
    loadgen_command("echo_client")  # compile both now, not during a run
    loadgen_command("echo_server")

    samples, failed = {}, {}
    for r in range(args.repeat):
        order = servers[r % len(servers):] + servers[:r % len(servers)]
        for c, s in points:
            for name in order:
                key = (c, s, name)
                if key in failed:
                    continue
                try:
                    figures = run_point(name, c, s, args.warmup, args.duration)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    failed[key] = str(exc)
                    print(f"{c} x {size_name(s)} {name}: {exc}", file=sys.stderr, flush=True)
                    continue
                samples.setdefault(key, []).append(figures)
                print(f"[{r + 1}/{args.repeat}] {c:>6} conns x {size_name(s):>7} "
                      f"{name:<10} {human(figures['rate']):>8} rt/s "
                      f"{figures['mbps']:8.1f} MB/s p50 {latency(figures['p50_us']):>9} "
                      f"p99 {latency(figures['p99_us']):>9} server "
                      f"{figures['server_us_per_rt']:.1f} µs/rt", file=sys.stderr, flush=True)

    medians = {key: {field: statistics.median(run[field] for run in runs)
                     for field in runs[0]} for key, runs in samples.items()}
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    context = [
        f"command: `{Path(sys.executable).name} {shlex.join(sys.argv)}`",
        f"date: {date}; nproc: {os.cpu_count()}; load average at the end: "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
        f"{platform.system()} {platform.release()} {platform.machine()}",
        f"medians of {args.repeat} interleaved runs, each {args.warmup} s warm-up + "
        f"{args.duration} s counted; rt/s = round trips (messages echoed) per second; "
        f"MB/s = echoed bytes; p50/p99 = round-trip latency; server µs/rt = the server "
        f"process's CPU time (user + system) per round trip over the counted part; CPU = "
        f"share of one core over the client's whole run",
    ]
    if left_out:
        context.append("left out (connections x size > --max-inflight): "
                       + ", ".join(f"{c} x {size_name(s)}" for c, s in left_out))
    pairs = [(a, b) for a, b in RATIOS if a in servers and b in servers]
    header = ["conns", "size", "server", "rt/s", "MB/s", "p50", "p99", "server µs/rt",
              "server CPU", "client CPU"]
    rows = []
    for c, s in points:
        for name in servers:
            m = medians.get((c, s, name))
            if m is None:
                rows.append([str(c), size_name(s), name] + ["error"] + [""] * 6)
                continue
            rows.append([str(c), size_name(s), name, human(m["rate"]), f"{m['mbps']:.1f}",
                         latency(m["p50_us"]), latency(m["p99_us"]),
                         f"{m['server_us_per_rt']:.1f}",
                         f"{m['server_cpu']:.0%}", f"{m['client_cpu']:.0%}"])
    ratio_header = (["conns", "size"] + [f"rt/s {a}/{b}" for a, b in pairs]
                    + [f"CPU/rt {b}/{a}" for a, b in pairs])
    ratio_rows = []
    for c, s in points:
        row = [str(c), size_name(s)]
        for field, invert in (("rate", False), ("server_us_per_rt", True)):
            for a, b in pairs:
                ma, mb = medians.get((c, s, a)), medians.get((c, s, b))
                if not (ma and mb and ma[field] and mb[field]):
                    row.append("-")
                    continue
                ratio = mb[field] / ma[field] if invert else ma[field] / mb[field]
                row.append(f"{ratio:.2f}")
        ratio_rows.append(row)

    def render(header, rows, text_columns):
        if args.markdown:
            lines = [header, ["---"] * text_columns + ["---:"] * (len(header) - text_columns)]
            lines += rows
            return "\n".join("| " + " | ".join(line) + " |" for line in lines)
        widths = [max(len(line[i]) for line in [header] + rows) for i in range(len(header))]
        return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths))
                         for line in [header] + rows)

    prefix = "- " if args.markdown else ""
    print("\n".join(prefix + line for line in context) + "\n")
    print(render(header, rows, 3) + "\n")
    print("ratios of medians, > 1 meaning the first server is better: round trips/s, and "
          "the server's CPU time per round trip (the second's over the first's):\n")
    print(render(ratio_header, ratio_rows, 2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"date": date, "context": context,
                       "points": [{"conns": c, "size": s, "server": name, **m}
                                  for (c, s, name), m in medians.items()],
                       "failed": [{"conns": c, "size": s, "server": name, "error": e}
                                  for (c, s, name), e in failed.items()]}, f, indent=1)
            f.write("\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
