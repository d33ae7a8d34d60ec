"""Soak test: 10,000 concurrent loopback connections echoing random payloads (issue 6).

Why it exists: the unit tests open a handful of sockets; a server that leaks a few bytes or
a watcher per message, loses a message under load, or reorders a stream only shows it when
thousands of connections run for a while. Here an evloop StreamServer (one process) echoes
for 10,000 evloop client greenlets (another process) that are all connected at the same
time and each send framed random payloads (connection id, sequence number, length,
CRC-32) and check every byte that comes back, in order.

The two sides run in subprocesses of their own: each needs ~10,000 fds (the soft
RLIMIT_NOFILE is raised in the child, up to the hard limit; a hard limit that is too low
fails the test with a message, it never quietly tests fewer connections) and the RSS of
each is read from /proc while traffic flows, once after warm-up and once at the end.

What it must not do: take long in CI (EVLOOP_SOAK_SECONDS, default 8 s of traffic after
the connections are up; set it higher for a local soak), or judge memory tightly: RSS may
grow by a generous margin, only a leak per message or per connection trips it.

Run directly for a local soak (prints the figures):
    EVLOOP_SOAK_SECONDS=180 python3 -m pytest -q -s tests/test_soak.py
"""
import faulthandler
import json
import os
import resource
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONNECTIONS = int(os.environ.get("EVLOOP_SOAK_CONNECTIONS", "10000"))
SECONDS = float(os.environ.get("EVLOOP_SOAK_SECONDS", "8"))
FD_SLACK = 200            # fds each process needs besides the connections
HEADER = 16               # conn id, sequence number, payload length, CRC-32: 4 x uint32
PAYLOAD_BITS = 13        # payloads of 1 B .. 8 KiB (log-uniform)
CONNECT_CONCURRENCY = 256  # connects in flight at once: keep under the listen backlog
IO_TIMEOUT = 60.0          # a lost message fails with socket.timeout, never hangs
# RSS after warm-up may grow by this much until the end (allocator noise, buffers of
# whatever payload sizes were in flight), not by anything proportional to the traffic:
# with ~300,000 messages after warm-up, a leak of ~130 bytes per message trips it
RSS_SLACK_BYTES = 24 * 1024 * 1024
RSS_SLACK_RATIO = 0.05
# Under AddressSanitizer (tools/sanitize.sh sets EVLOOP_SANITIZED=1 and preloads the ASan
# runtime) freed blocks wait in ASan's quarantine before they are reused, so RSS grows with
# the traffic until the quarantine is full: 256 MiB per process by default, which would
# hide any leak. The two processes then run with a small quarantine (ASAN_OPTIONS'
# quarantine_size_mb; a later option overrides an earlier one), and the bound allows it,
# plus each thread's own quarantine (thread_local_quarantine_size_kb, 1 MiB by default),
# to fill between the two readings. Normal runs keep the bound above unchanged.
SANITIZED = bool(os.environ.get("EVLOOP_SANITIZED"))
ASAN_QUARANTINE_MB = 16
ASAN_SLACK_BYTES = (ASAN_QUARANTINE_MB + 4) * 1024 * 1024 if SANITIZED else 0


def _raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.stderr.write(f"SOAK-NOFILE: the hard RLIMIT_NOFILE is {hard}, the soak needs "
                         f"{need} fds per process; raise it (ulimit -Hn) or lower "
                         f"EVLOOP_SOAK_CONNECTIONS\n")
        sys.exit(3)
    if soft == resource.RLIM_INFINITY or soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# -------------------------------------------------------------------------------------
# the two programs (run as ``python tests/test_soak.py server|client ...``)
# -------------------------------------------------------------------------------------

def server_main(connections: int) -> None:
    _raise_nofile(connections + FD_SLACK)
    from evloop import socket as evsocket
    from evloop.server import StreamServer

    stats = {"accepted": 0, "open": 0, "peak_open": 0, "bytes": 0, "errors": 0}

    def echo(sock, address):
        stats["accepted"] += 1
        stats["open"] += 1
        stats["peak_open"] = max(stats["peak_open"], stats["open"])
        sock.settimeout(IO_TIMEOUT * 2)
        buf = bytearray(16384)
        view = memoryview(buf)
        try:
            while True:
                n = sock.recv_into(buf)
                if not n:
                    return
                sock.sendall(view[:n])
                stats["bytes"] += n
        except OSError as exc:
            stats["errors"] += 1
            sys.stderr.write(f"server: {address}: {exc!r}\n")
        finally:
            stats["open"] -= 1

    server = StreamServer(("127.0.0.1", 0), echo, backlog=4096)
    server.start()
    print(server.server_port, flush=True)
    # run until the parent closes our stdin
    evsocket.wait_read(sys.stdin.fileno())
    server.stop(timeout=10)
    print(json.dumps(stats), flush=True)


def client_main(connections: int, port: int, seconds: float) -> None:
    _raise_nofile(connections + FD_SLACK)
    import random
    import struct
    import zlib

    import evloop
    from evloop import socket as evsocket
    from evloop.event import Event
    from evloop.lock import Semaphore

    pack = struct.Struct("!IIII")
    all_connected = Event()
    stop = Event()
    connecting = Semaphore(CONNECT_CONCURRENCY)
    stats = {"connected": 0, "messages": 0, "bytes": 0, "failures": []}

    def fail(i, what):
        stats["failures"].append(f"connection {i}: {what}")

    def read_exactly(sock, n):
        chunks = []
        while n:
            data = sock.recv(min(n, 65536))
            if not data:
                raise EOFError("server closed the connection")
            chunks.append(data)
            n -= len(data)
        return b"".join(chunks)

    def client(i):
        rng = random.Random(i)
        try:
            with connecting:
                sock = evsocket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        except OSError as exc:
            fail(i, f"connect: {exc!r}")
            return
        try:
            stats["connected"] += 1
            if stats["connected"] == connections:
                all_connected.set()
            all_connected.wait()
            seq = 0
            while not stop.is_set():
                # a pipelined batch of 1-3 frames; log-uniform sizes 1 B .. 8 KiB
                batch = []
                for _ in range(rng.randint(1, 3)):
                    payload = rng.randbytes(int(2 ** rng.uniform(0, PAYLOAD_BITS)))
                    batch.append(pack.pack(i, seq, len(payload), zlib.crc32(payload))
                                 + payload)
                    seq += 1
                sock.sendall(b"".join(batch))
                for frame in batch:
                    head = read_exactly(sock, HEADER)
                    conn, got_seq, size, crc = pack.unpack(head)
                    want_conn, want_seq, want_size, _ = pack.unpack_from(frame)
                    if (conn, got_seq, size) != (want_conn, want_seq, want_size):
                        fail(i, f"expected frame {want_seq} of {want_conn} ({want_size} B), "
                                f"got frame {got_seq} of {conn} ({size} B)")
                        return
                    payload = read_exactly(sock, size)
                    if zlib.crc32(payload) != crc or head + payload != frame:
                        fail(i, f"frame {got_seq}: payload corrupted")
                        return
                    stats["messages"] += 1
                    stats["bytes"] += len(frame)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            fail(i, repr(exc))
        finally:
            sock.close()

    started = time.monotonic()
    greenlets = [evloop.spawn(client, i) for i in range(connections)]
    while not all_connected.wait(1.0):
        if stats["failures"]:
            break
    connect_seconds = time.monotonic() - started
    print("connected", stats["connected"], round(connect_seconds, 2), flush=True)
    warm_up = max(1.0, seconds / 4)
    evloop.sleep(warm_up)
    warm_messages = stats["messages"]
    print("warm", warm_messages, flush=True)
    evloop.sleep(seconds - warm_up)
    print("end", stats["messages"], flush=True)
    # traffic goes on while the parent measures both processes' RSS; then every
    # connection finishes its batch and closes
    evsocket.wait_read(sys.stdin.fileno())
    stop.set()
    evloop.joinall(greenlets, timeout=IO_TIMEOUT)
    stats["alive"] = sum(not g.dead for g in greenlets)
    stats["connect_seconds"] = round(connect_seconds, 2)
    stats["traffic_seconds"] = seconds
    stats["failures"] = stats["failures"][:20] + (
        [f"... {len(stats['failures']) - 20} more"] if len(stats["failures"]) > 20 else [])
    print(json.dumps(stats), flush=True)


# -------------------------------------------------------------------------------------
# the test
# -------------------------------------------------------------------------------------

def _spawn(*args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                else "")
    env["PYTHONFAULTHANDLER"] = "1"
    if SANITIZED:
        env["ASAN_OPTIONS"] = ":".join(filter(None, [
            env.get("ASAN_OPTIONS"), f"quarantine_size_mb={ASAN_QUARANTINE_MB}"]))
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _line(proc: subprocess.Popen, what: str) -> str:
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        err = proc.stderr.read()
        if "SOAK-NOFILE" in err:
            pytest.fail(err.strip())
        pytest.fail(f"{what}: the process exited with {proc.returncode}\n{err}")
    return line.strip()


@pytest.mark.slow
def test_soak_10k_connections_echo_random_payloads():
    # a long local soak outlives conftest's per-test watchdog: give it its own
    faulthandler.dump_traceback_later(SECONDS + 180, exit=True, file=sys.__stderr__)
    # the soak holds ~2 x CONNECTIONS fds in two processes; say plainly when it cannot
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    need = CONNECTIONS + FD_SLACK
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.fail(f"the hard RLIMIT_NOFILE is {hard}; the soak needs {need} fds in each "
                    f"of its two processes (raise `ulimit -Hn`, or set "
                    f"EVLOOP_SOAK_CONNECTIONS lower for a smaller local run)")
    server = _spawn("server", str(CONNECTIONS))
    client = None
    try:
        port = int(_line(server, "server start"))
        client = _spawn("client", str(CONNECTIONS), str(port), str(SECONDS))
        connected = _line(client, "client connect").split()
        assert connected[0] == "connected", connected
        assert int(connected[1]) == CONNECTIONS, connected
        warm = _line(client, "client warm-up").split()
        assert warm[0] == "warm"
        rss_warm = {"server": _rss(server.pid), "client": _rss(client.pid)}
        end = _line(client, "client end").split()
        assert end[0] == "end"
        rss_end = {"server": _rss(server.pid), "client": _rss(client.pid)}
        client.stdin.close()            # let the clients close
        stats = json.loads(_line(client, "client stats"))
        assert client.wait(timeout=60) == 0, client.stderr.read()
        server.stdin.close()
        server_stats = json.loads(_line(server, "server stats"))
        assert server.wait(timeout=60) == 0, server.stderr.read()
    finally:
        for proc in (client, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    report = {
        "connections": CONNECTIONS, "traffic_seconds": SECONDS,
        "connect_seconds": stats["connect_seconds"],
        "messages": stats["messages"], "bytes": stats["bytes"],
        "messages_after_warmup": int(end[1]) - int(warm[1]),
        "server": server_stats,
        "rss_warm_MiB": {k: round(v / 2**20, 1) for k, v in rss_warm.items()},
        "rss_end_MiB": {k: round(v / 2**20, 1) for k, v in rss_end.items()},
    }
    print("\nsoak:", json.dumps(report))
    assert stats["failures"] == [], stats["failures"]
    assert stats["alive"] == 0
    assert stats["connected"] == CONNECTIONS
    assert server_stats["peak_open"] == CONNECTIONS     # all held open at the same time
    assert server_stats["accepted"] == CONNECTIONS
    assert server_stats["errors"] == 0
    assert server_stats["bytes"] == stats["bytes"]      # every byte sent came back
    assert int(end[1]) > int(warm[1]) > 0               # traffic flowed throughout
    for side in ("server", "client"):
        limit = rss_warm[side] * (1 + RSS_SLACK_RATIO) + RSS_SLACK_BYTES + ASAN_SLACK_BYTES
        assert rss_end[side] <= limit, (side, rss_warm[side], rss_end[side])


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server_main(int(sys.argv[2]))
    else:
        client_main(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
