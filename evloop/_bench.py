"""``python -m evloop bench``: evloop against the peers this interpreter has, in a minute.

Why it exists: the installed package does not ship the repository's benchmarks/ directory
(its harness, C load generator and peers venv), yet a user should be able to see on their
own machine what evloop is worth against gevent, uvloop and the stdlib's asyncio loop.
These are small self-contained versions of benchmarks/workloads: sleep(0), spawn+join,
timers, Event ping-pong, socketpair ping-pong and TCP echo (a stdlib Python client in a
child process). Honest by construction: every run is a fresh child process
(``python -m evloop._bench worker IMPL WORKLOAD SECONDS``), runs are interleaved (repeat ->
workload -> implementation, the order rotating each repeat) and the table shows the median
of the runs and the largest deviation from it. It must not be imported by the library
(only by evloop/__main__.py), and must not import a peer in the parent process.
"""
import argparse
import datetime
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import selectors
import socket
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

#: implementation -> (module that must be importable, distribution for its version)
IMPLS: Dict[str, Tuple[str, str]] = {
    "evloop": ("evloop", "pyevloop"),  # the greenlet API
    "evloop.aio": ("evloop.aio", "pyevloop"),  # evloop's asyncio loop
    "gevent": ("gevent", "gevent"),
    "uvloop": ("uvloop", "uvloop"),
    "asyncio": ("asyncio", ""),  # the stdlib's selector loop
}
GREENLET_IMPLS = ("evloop", "gevent")
#: ratio columns: each of evloop's two faces against the peers doing the same work
RATIOS = (("evloop", "gevent"), ("evloop", "uvloop"), ("evloop", "asyncio"),
          ("evloop.aio", "uvloop"), ("evloop.aio", "asyncio"))

#: workload -> one line saying what one op is
WORKLOADS: Dict[str, str] = {
    "sleep0": "one greenlet (task) yielding with sleep(0), nothing else ready",
    "spawn_join": "spawn + join of a no-op greenlet (create_task + gather), 1,000 a batch",
    "timers": "1,000 greenlets (tasks) each sleeping 0-1 ms, spawned and joined",
    "event_pingpong": "round trip between two greenlets (tasks) through two Events",
    "socketpair_pingpong": "1-byte round trip over a socketpair between two greenlets (tasks)",
    "tcp_echo": "1 KiB echoed by a server in the process to a stdlib Python client "
                "(child process, 16 connections; the client can be the limit)",
}
#: ops per batch: a batch is repeated until the run's duration has passed
BATCH = {"sleep0": 2000, "spawn_join": 1000, "timers": 1000, "event_pingpong": 1000,
         "socketpair_pingpong": 1000}
ECHO_CONNS, ECHO_SIZE = 16, 1024

DEFAULT_SECONDS, DEFAULT_REPEAT = 0.4, 3
QUICK_SECONDS, QUICK_REPEAT = 0.05, 1


# -- the workloads, greenlet style (api: the evloop or gevent module) -----------------------

def _noop() -> None:
    pass


def green_sleep0(api: Any, n: int) -> int:
    sleep = api.sleep
    for _ in range(n):
        sleep(0)
    return n


def green_spawn_join(api: Any, n: int) -> int:
    greenlets = [api.spawn(_noop) for _ in range(n)]
    api.joinall(greenlets, raise_error=True)
    return n


def _delays(n: int) -> List[float]:
    return [(i * 7919 % 1000) / 1e6 for i in range(n)]  # 0-1 ms, the same for every impl


def green_timers(api: Any, n: int) -> int:
    greenlets = [api.spawn(api.sleep, d) for d in _delays(n)]
    api.joinall(greenlets, raise_error=True)
    return n


def green_event_pingpong(api: Any, n: int) -> int:
    Event = api.event.Event
    ping, pong = Event(), Event()

    def responder() -> None:
        for _ in range(n):
            ping.wait()
            ping.clear()
            pong.set()

    g = api.spawn(responder)
    for _ in range(n):
        ping.set()
        pong.wait()
        pong.clear()
    g.get()
    return n


def green_socketpair_pingpong(api: Any, n: int) -> int:
    a, b = api.socket.socketpair()

    def echo() -> None:
        for _ in range(n):
            b.sendall(b.recv(1))

    g = api.spawn(echo)
    try:
        for _ in range(n):
            a.sendall(b"x")
            if a.recv(1) != b"x":
                raise AssertionError("socketpair echo lost its byte")
        g.get()
    finally:
        a.close()
        b.close()
    return n


# -- the same workloads, asyncio style -------------------------------------------------------

async def aio_sleep0(asyncio: Any, n: int) -> int:
    sleep = asyncio.sleep
    for _ in range(n):
        await sleep(0)
    return n


async def _anoop() -> None:
    pass


async def aio_spawn_join(asyncio: Any, n: int) -> int:
    tasks = [asyncio.create_task(_anoop()) for _ in range(n)]
    await asyncio.gather(*tasks)
    return n


async def aio_timers(asyncio: Any, n: int) -> int:
    tasks = [asyncio.create_task(asyncio.sleep(d)) for d in _delays(n)]
    await asyncio.gather(*tasks)
    return n


async def aio_event_pingpong(asyncio: Any, n: int) -> int:
    ping, pong = asyncio.Event(), asyncio.Event()

    async def responder() -> None:
        for _ in range(n):
            await ping.wait()
            ping.clear()
            pong.set()

    task = asyncio.create_task(responder())
    for _ in range(n):
        ping.set()
        await pong.wait()
        pong.clear()
    await task
    return n


async def aio_socketpair_pingpong(asyncio: Any, n: int) -> int:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def echo() -> None:
        for _ in range(n):
            await loop.sock_sendall(b, await loop.sock_recv(b, 1))

    task = asyncio.create_task(echo())
    try:
        for _ in range(n):
            await loop.sock_sendall(a, b"x")
            if await loop.sock_recv(a, 1) != b"x":
                raise AssertionError("socketpair echo lost its byte")
        await task
    finally:
        a.close()
        b.close()
    return n


GREEN: Dict[str, Callable[[Any, int], int]] = {
    "sleep0": green_sleep0, "spawn_join": green_spawn_join, "timers": green_timers,
    "event_pingpong": green_event_pingpong, "socketpair_pingpong": green_socketpair_pingpong}
AIO: Dict[str, Callable[..., Any]] = {
    "sleep0": aio_sleep0, "spawn_join": aio_spawn_join, "timers": aio_timers,
    "event_pingpong": aio_event_pingpong, "socketpair_pingpong": aio_socketpair_pingpong}


# -- TCP echo: a server here, the client a child process ------------------------------------

def echo_client_command(port: int, seconds: float) -> List[str]:
    return [sys.executable, "-m", "evloop._bench", "echo-client", str(port),
            str(ECHO_CONNS), str(ECHO_SIZE), str(seconds)]


def echo_client(port: int, conns: int, size: int, seconds: float) -> Tuple[int, float]:
    """A closed-loop echo client (stdlib only): ``conns`` connections each send ``size``
    bytes and wait for all of them back; counts round trips for ``seconds`` after a
    warm-up of a fifth of that. Returns (round trips, seconds counted)."""
    message = b"x" * size
    sel = selectors.DefaultSelector()
    got: Dict[socket.socket, int] = {}
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(message)
        s.setblocking(False)
        got[s] = 0
        sel.register(s, selectors.EVENT_READ)
    start = time.perf_counter()
    counting_from = start + seconds / 5
    stop = counting_from + seconds
    counted, now = 0, start
    while now < stop:
        for key, _ in sel.select(0.5):
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                raise ConnectionError("the echo server closed a connection")
            got[s] += len(data)
            if got[s] == size:
                got[s] = 0
                if now >= counting_from:
                    counted += 1
                s.setblocking(True)
                s.sendall(message)
                s.setblocking(False)
        now = time.perf_counter()
    for s in got:
        s.close()
    return counted, now - counting_from


def _client_result(stdout: str, stderr: str, returncode: int) -> Tuple[int, float]:
    if returncode:
        raise RuntimeError(f"echo client failed ({returncode}): {stderr.strip()}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return result["ops"], result["seconds"]


def green_tcp_echo(api: Any, seconds: float) -> Tuple[int, float]:
    def handle(conn: Any, address: Any) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except ConnectionError:  # the client exits with echoes in flight
            pass
        conn.close()

    server = api.server.StreamServer(("127.0.0.1", 0), handle)
    server.start()
    try:
        proc = subprocess.Popen(echo_client_command(server.server_port, seconds),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        api.socket.wait_read(proc.stdout.fileno())  # the client prints once, when done
        stdout, stderr = proc.communicate()
    finally:
        server.stop()
    return _client_result(stdout, stderr, proc.returncode)


async def aio_tcp_echo(asyncio: Any, seconds: float) -> Tuple[int, float]:
    loop = asyncio.get_running_loop()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.write = transport.write

        def data_received(self, data: bytes) -> None:
            self.write(data)

    server = await loop.create_server(Echo, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        proc = subprocess.Popen(echo_client_command(port, seconds), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        stdout, stderr = await loop.run_in_executor(None, proc.communicate)
    finally:
        server.close()
    return _client_result(stdout, stderr, proc.returncode)


# -- one run, in a child process ------------------------------------------------------------

def _load_greenlet_api(impl: str) -> Any:
    if impl == "evloop":
        import evloop as api
        import evloop.event  # noqa: F401 - imported now, untimed
        import evloop.server  # noqa: F401
        import evloop.socket  # noqa: F401
    else:
        import gevent as api
        import gevent.event  # noqa: F401
        import gevent.server  # noqa: F401
        import gevent.socket  # noqa: F401
    api.sleep(0)  # the hub exists and its loop has run once: untimed
    return api


def _new_asyncio_loop(impl: str) -> Any:
    import asyncio

    if impl == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if impl == "evloop.aio":
        import evloop.aio

        return evloop.aio.new_event_loop()
    return asyncio.new_event_loop()


def run_worker(impl: str, workload: str, seconds: float) -> Tuple[int, float]:
    """(ops, seconds) of one run: batches of the workload repeated until ``seconds`` have
    passed, timed as a whole (setup of the implementation untimed)."""
    if impl in GREENLET_IMPLS:
        api = _load_greenlet_api(impl)
        if workload == "tcp_echo":
            return green_tcp_echo(api, seconds)
        func, n = GREEN[workload], BATCH[workload]
        func(api, n)  # one batch of warm-up
        gc.collect()
        ops, start = 0, time.perf_counter()
        while True:
            ops += func(api, n)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return ops, elapsed

    import asyncio

    async def main() -> Tuple[int, float]:
        if workload == "tcp_echo":
            return await aio_tcp_echo(asyncio, seconds)
        func, n = AIO[workload], BATCH[workload]
        await func(asyncio, n)
        gc.collect()
        ops, start = 0, time.perf_counter()
        while True:
            ops += await func(asyncio, n)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return ops, elapsed

    loop = _new_asyncio_loop(impl)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


# -- the parent: interleaved runs, medians, the table ---------------------------------------

def available_impls() -> List[str]:
    """The implementations importable in this interpreter (checked without importing)."""
    return [name for name, (module, _) in IMPLS.items()
            if importlib.util.find_spec(module.split(".")[0]) is not None]


def impl_version(name: str) -> str:
    dist = IMPLS[name][1]
    if not dist:
        return f"stdlib (Python {platform.python_version()})"
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:  # evloop from a source tree
        return "not installed (source tree)"


def run_once(impl: str, workload: str, seconds: float) -> "float | str":
    """ops/s of one run in a fresh child process, or the error as a string."""
    cmd = [sys.executable, "-m", "evloop._bench", "worker", impl, workload, str(seconds)]
    env = dict(os.environ)
    if impl == "gevent":
        env.pop("GEVENT_LOOP", None)  # gevent's default loop (libev-cext)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=60 + 20 * seconds)
    except subprocess.TimeoutExpired:
        return "timed out"
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        return f"exit status {proc.returncode}: {lines[-1] if lines else ''}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["ops"] / result["seconds"]


def human(rate: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.2f} {unit}"
    return f"{rate:.0f}"


def measure(workloads: Sequence[str], impls: Sequence[str], repeat: int, seconds: float,
            log: Callable[[str], None]) -> Tuple[Dict[Tuple[str, str], List[float]],
                                                 Dict[Tuple[str, str], str]]:
    samples: Dict[Tuple[str, str], List[float]] = {}
    failed: Dict[Tuple[str, str], str] = {}
    for r in range(repeat):
        order = list(impls[r % len(impls):]) + list(impls[:r % len(impls)])
        for workload in workloads:
            cells = []
            for impl in order:
                if (workload, impl) in failed:
                    continue
                result = run_once(impl, workload, seconds)
                if isinstance(result, str):
                    failed[(workload, impl)] = result
                    cells.append(f"{impl} failed ({result})")
                    continue
                samples.setdefault((workload, impl), []).append(result)
                cells.append(f"{impl} {human(result)}")
            log(f"[{r + 1}/{repeat}] {workload:<20} " + ", ".join(cells))
    return samples, failed


def summarize(workloads: Sequence[str], impls: Sequence[str],
              samples: Dict[Tuple[str, str], List[float]],
              failed: Dict[Tuple[str, str], str]) -> Dict[str, Any]:
    results: Dict[str, Any] = {}
    for workload in workloads:
        row: Dict[str, Any] = {}
        for impl in impls:
            runs = samples.get((workload, impl))
            if runs:
                median = statistics.median(runs)
                row[impl] = {"median": median, "runs": runs,
                             "spread": max(abs(x - median) for x in runs) / median}
            elif (workload, impl) in failed:
                row[impl] = {"error": failed[(workload, impl)]}
        ratios = {f"{a}/{b}": row[a]["median"] / row[b]["median"] for a, b in RATIOS
                  if "median" in row.get(a, {}) and "median" in row.get(b, {})}
        results[workload] = {"what": WORKLOADS[workload], "impls": row, "ratios": ratios}
    return results


def table(results: Dict[str, Any], impls: Sequence[str]) -> str:
    pairs = [f"{a}/{b}" for a, b in RATIOS if a in impls and b in impls]
    header = ["workload"] + [f"{impl} ops/s" for impl in impls] + pairs
    rows = [header]
    for workload, result in results.items():
        row = [workload]
        for impl in impls:
            cell = result["impls"].get(impl)
            if cell is None:
                row.append("-")
            elif "error" in cell:
                row.append("error")
            else:
                row.append(f"{human(cell['median'])} ±{cell['spread']:.0%}")
        row += [f"{result['ratios'][p]:.2f}" if p in result["ratios"] else "-" for p in pairs]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) for r in rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help=f"one run of {QUICK_SECONDS} s per workload and implementation "
                             f"(a smoke test; the figures are not worth comparing)")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--only", metavar="W,...",
                        help=f"comma-separated workloads (default: all: {', '.join(WORKLOADS)})")
    parser.add_argument("--impls", metavar="I,...",
                        help="comma-separated implementations (default: every one importable "
                             f"here, of {', '.join(IMPLS)})")
    parser.add_argument("--repeat", type=int,
                        help=f"runs per workload and implementation (default {DEFAULT_REPEAT})")
    parser.add_argument("--seconds", type=float,
                        help=f"timed seconds per run (default {DEFAULT_SECONDS})")


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    seconds = args.seconds
    if seconds is None:
        seconds = QUICK_SECONDS if args.quick else DEFAULT_SECONDS
    repeat = args.repeat
    if repeat is None:
        repeat = QUICK_REPEAT if args.quick else DEFAULT_REPEAT
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    if not seconds > 0 or seconds > 60:
        parser.error("--seconds must be > 0 and at most 60")
    workloads = list(WORKLOADS)
    if args.only:
        workloads = args.only.split(",")
        unknown = [w for w in workloads if w not in WORKLOADS]
        if unknown:
            parser.error(f"unknown workload {unknown[0]!r}; choose from {', '.join(WORKLOADS)}")
    here = available_impls()
    if args.impls:
        impls = args.impls.split(",")
        unknown = [i for i in impls if i not in IMPLS]
        if unknown:
            parser.error(f"unknown implementation {unknown[0]!r}; choose from "
                         f"{', '.join(IMPLS)}")
        missing = [i for i in impls if i not in here]
        if missing:
            parser.error(f"{missing[0]} is not importable in {sys.executable}")
    else:
        impls = here

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    versions = {impl: impl_version(impl) for impl in impls}
    log(f"evloop bench: {len(workloads)} workloads x {len(impls)} implementations x "
        f"{repeat} runs of {seconds} s, each in a fresh process, interleaved")
    samples, failed = measure(workloads, impls, repeat, seconds, log)
    results = summarize(workloads, impls, samples, failed)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Python {platform.python_version()} ({sys.executable}); {platform.platform()}; "
          f"{os.cpu_count()} CPUs; {date}")
    print("; ".join(f"{impl} {version}" for impl, version in versions.items()))
    print(f"median of {repeat} interleaved runs of {seconds} s; ± is the largest deviation of "
          f"a run from the median; X/Y > 1 means X is faster; '-': not run")
    print()
    print(table(results, impls))
    for (workload, impl), error in failed.items():
        print(f"{workload} on {impl} failed: {error}")
    if args.json:
        document = {"date": date, "python": platform.python_version(),
                    "executable": sys.executable, "platform": platform.platform(),
                    "repeat": repeat, "seconds": seconds, "versions": versions,
                    "workloads": results}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
    return 1 if failed else 0


def _child(argv: List[str]) -> int:
    """The child processes' entry points (not a user interface)."""
    if argv[:1] == ["worker"] and len(argv) == 4:
        ops, seconds = run_worker(argv[1], argv[2], float(argv[3]))
    elif argv[:1] == ["echo-client"] and len(argv) == 5:
        ops, seconds = echo_client(int(argv[1]), int(argv[2]), int(argv[3]), float(argv[4]))
    else:
        print("usage: python -m evloop._bench worker IMPL WORKLOAD SECONDS | "
              "echo-client PORT CONNS SIZE SECONDS", file=sys.stderr)
        return 2
    print(json.dumps({"ops": ops, "seconds": seconds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
