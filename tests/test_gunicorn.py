"""Tests for evloop.integrations.gunicorn: the worker class, under a real gunicorn.

Each test starts ``python -m gunicorn -k evloop.integrations.gunicorn.Worker`` as a
subprocess (its own process group, killed whole in teardown) serving a small WSGI app
written into tmp_path, and talks to it with real HTTP over sockets (http.client, raw
sockets for the framing): GET and POST with bodies, keep-alive (and its timeout),
pipelining, ``Expect: 100-continue``, chunked requests and responses,
``wsgi.file_wrapper`` (sendfile, which must not block the worker for a slow reader), TLS;
many slow requests served concurrently by one worker; ``worker_connections`` bounding
that; two workers sharing a listener; a unix socket; ``--preload``; and the process
lifecycle gunicorn drives through signals: SIGTERM (graceful: in-flight requests finish,
within ``graceful_timeout``), SIGQUIT and SIGINT (at once), SIGHUP (new workers with the
new code replace the old ones, which finish their requests), SIGUSR1, a killed or
crashed worker replaced, ``max_requests``, the heartbeat (an idle worker is not timed
out; one that blocks the loop is aborted, its ``worker_abort`` hook run), the code
reloader, and a worker whose arbiter died.

The client side runs in plain threads of the test process (nothing here is patched).
Timing rules (a busy 2-core machine): lower bounds, or upper bounds with a wide margin.
"""
import errno
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("gunicorn")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = "evloop.integrations.gunicorn.Worker"
START = 60.0      # seconds for gunicorn to start and for its events to show in its log
LONG = 30.0       # socket timeouts: far more than any request here should take

APP = r'''
import os
import socket
import time

VERSION = b"%(version)s"
state = {"now": 0, "max": 0}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    headers = [("Content-Type", "text/plain")]
    if path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/version":
        body = VERSION
    elif path == "/patched":
        body = socket.socket.__module__.encode() + b" " + time.sleep.__module__.encode()
    elif path == "/echo":
        data = environ["wsgi.input"].read()
        body = environ["REQUEST_METHOD"].encode() + b" " + data
    elif path == "/peer":
        body = environ["REMOTE_PORT"].encode()
    elif path == "/slow":
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        marker = environ.get("HTTP_X_MARKER")
        if marker:
            open(marker, "w").close()
        try:
            time.sleep(float(query))
        finally:
            state["now"] -= 1
        body = b"slept " + query.encode()
    elif path == "/slowpid":
        time.sleep(float(query))
        body = str(os.getpid()).encode()
    elif path == "/max":
        body = str(state["max"]).encode()
        state["max"] = 0
    elif path == "/chunked":
        start_response("200 OK", headers)

        def chunks():
            for i in range(int(query)):
                time.sleep(0)
                yield b"chunk%%d;" %% i
        return chunks()
    elif path == "/file":
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](open(query, "rb"), 65536)
    elif path == "/crash":
        os._exit(13)   # (3 and 4 would tell the arbiter that booting failed)
    elif path == "/spin":
        end = time.monotonic() + float(query)
        while time.monotonic() < end:
            pass
        body = b"spun"
    else:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    start_response("200 OK", headers + [("Content-Length", str(len(body)))])
    return [body]
'''


def _write_app(directory, version="1"):
    (directory / "app.py").write_text(APP % {"version": version})
    # A rewrite within the second of the last import, of the same size, would pass the
    # cached bytecode's (mtime, size) check: the new workers would run the old version.
    shutil.rmtree(directory / "__pycache__", ignore_errors=True)


def _gunicorn_flags():
    """Flags every run needs: gunicorn >= 24 opens a control socket at a fixed path,
    which concurrent runs would fight over."""
    from gunicorn.config import KNOWN_SETTINGS
    names = {setting.name for setting in KNOWN_SETTINGS}
    return ["--no-control-socket"] if "control_socket_disable" in names else []


class Gunicorn:
    """A gunicorn arbiter in its own process group, its output in a log file."""

    def __init__(self, directory, *args, workers=1, app="app:app", bind="127.0.0.1:0"):
        self.directory = directory
        self.log_path = directory / f"gunicorn-{time.monotonic_ns()}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env["PYTHONUNBUFFERED"] = "1"
        command = [sys.executable, "-m", "gunicorn", "-k", WORKER, "-b", bind,
                   "-w", str(workers), "--graceful-timeout", "20", *_gunicorn_flags(),
                   *args, app]
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(command, cwd=directory, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        match = self.wait_log(r"Listening at: (?:https?://127\.0\.0\.1:(\d+)|unix:)")
        self.port = int(match.group(1)) if match.group(1) else None
        self.wait_log(r"Booting worker with pid: (\d+)")

    @property
    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern, count=1, timeout=START):
        """The ``count``-th match of ``pattern`` in the log, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            matches = list(re.finditer(pattern, self.log))
            if len(matches) >= count:
                return matches[count - 1]
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} x{count} not in the log:\n{self.log}")
            if self.proc.poll() is not None and len(matches) < count:
                # one last look: the log may have been written just before exiting
                matches = list(re.finditer(pattern, self.log))
                if len(matches) >= count:
                    return matches[count - 1]
                raise AssertionError(f"gunicorn exited ({self.proc.returncode}) before "
                                     f"{pattern!r} x{count}:\n{self.log}")
            time.sleep(0.05)

    def booted(self):
        return [int(m) for m in re.findall(r"Booting worker with pid: (\d+)", self.log)]

    def signal(self, signum):
        os.kill(self.proc.pid, signum)

    def wait_exit(self, timeout=START):
        return self.proc.wait(timeout)

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the arbiter and its workers
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.log_file.close()


@pytest.fixture
def app_dir(tmp_path):
    _write_app(tmp_path)
    return tmp_path


@pytest.fixture
def start(app_dir):
    started = []

    def start(*args, **kwargs):
        server = Gunicorn(app_dir, *args, **kwargs)
        started.append(server)
        return server
    yield start
    for server in started:
        server.kill()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One worker for the tests that only make requests."""
    directory = tmp_path_factory.mktemp("gunicorn-shared")
    _write_app(directory)
    server = Gunicorn(directory, "--keep-alive", "5")
    yield server
    server.kill()


def request(port, method="GET", path="/", body=None, headers=None, timeout=LONG,
            conn=None):
    """(status, headers dict, body) of one request (on ``conn`` if given)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        if own:
            conn.close()


def get(port, path, **kwargs):
    status, _headers, body = request(port, "GET", path, **kwargs)
    assert status == 200, (path, status, body)
    return body


def pid_of(server):
    return int(get(server.port, "/pid"))


def pid_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped by the arbiter) has exited already
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(predicate, timeout=START, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_new_pid(server, old_pid):
    """Ask /pid until another worker than ``old_pid`` answers (every request must
    succeed meanwhile); return its pid."""
    deadline = time.monotonic() + START
    while True:
        pid = pid_of(server)
        if pid != old_pid:
            return pid
        if time.monotonic() > deadline:
            raise AssertionError(f"worker {old_pid} was not replaced:\n{server.log}")
        time.sleep(0.05)


def in_thread(func, *args, **kwargs):
    """Run ``func`` in a thread; return a function giving its result (or raising)."""
    result = {}

    def run():
        try:
            result["value"] = func(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def outcome(timeout=START):
        thread.join(timeout)
        assert not thread.is_alive(), "the request did not finish"
        if "error" in result:
            raise result["error"]
        return result["value"]
    return outcome


def raw_exchange(port, data, timeout=LONG):
    """Send ``data`` on a new connection, half-close, return all the server sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def clean_log(server):
    """No traceback, no MonkeyPatchWarning in the log."""
    log = server.log
    assert "Traceback" not in log, log
    assert "MonkeyPatchWarning" not in log, log


# -------------------------------------------------------------------------------------
# HTTP through gunicorn's own handling, on one shared worker
# -------------------------------------------------------------------------------------

def test_get_in_a_patched_worker(shared):
    status, headers, body = request(shared.port, "GET", "/patched")
    assert status == 200
    assert body.startswith(b"evloop.socket evloop.")   # imported after patching
    assert headers["content-length"] == str(len(body))
    assert "gunicorn" in headers["server"].lower()
    status, _headers, _body = request(shared.port, "GET", "/missing")
    assert status == 404
    clean_log(shared)


def test_post_bodies(shared):
    assert get(shared.port, "/echo") == b"GET "
    for size in (1, 1000, 300_000, 3_000_000):
        payload = os.urandom(size)
        status, _h, body = request(shared.port, "POST", "/echo", body=payload)
        assert status == 200 and body == b"POST " + payload


def test_chunked_request_body(shared):
    raw = raw_exchange(shared.port,
                       b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n"
                       b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    assert body == b"POST hello, world"


def test_chunked_response(shared):
    raw = raw_exchange(shared.port, b"GET /chunked?3 HTTP/1.1\r\nHost: x\r\n"
                                    b"Connection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head, head
    assert body == b"7\r\nchunk0;\r\n7\r\nchunk1;\r\n7\r\nchunk2;\r\n0\r\n\r\n"
    # and decoded by a client, on a long one
    status, headers, body = request(shared.port, "GET", "/chunked?5000")
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body == b"".join(b"chunk%d;" % i for i in range(5000))


def test_expect_100_continue(shared):
    with socket.create_connection(("127.0.0.1", shared.port), timeout=LONG) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"body")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nPOST body")


def test_sigusr1_reopens_logs_and_the_worker_keeps_serving(shared):
    pid = pid_of(shared)
    os.kill(pid, signal.SIGUSR1)
    time.sleep(0.5)
    assert pid_of(shared) == pid
    assert get(shared.port, "/version") == b"1"
    clean_log(shared)


def test_http10_response_is_closed_and_not_chunked(shared):
    raw = raw_exchange(shared.port, b"GET /chunked?2 HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and b"chunked" not in head
    assert body == b"chunk0;chunk1;"


def test_keep_alive_reuses_the_connection(shared):
    conn = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=LONG)
    try:
        peers = set()
        for i in range(30):
            status, headers, body = request(shared.port, "POST", "/echo",
                                            body=b"%d" % i, conn=conn)
            assert status == 200 and body == b"POST %d" % i
            assert headers.get("connection", "keep-alive").lower() != "close"
            peers.add(get(shared.port, "/peer", conn=conn))
        assert len(peers) == 1    # the same client port: one TCP connection throughout
    finally:
        conn.close()


def test_pipelined_requests(shared):
    one = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    raw = raw_exchange(shared.port, one * 3 + last)
    assert raw.count(b"HTTP/1.1 200 OK") == 4
    assert raw.endswith(b"\r\n\r\n1")


@pytest.mark.slow  # waits out the keep-alive timeout
def test_keep_alive_timeout_closes_idle_connections(start):
    server = start("--keep-alive", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=LONG) as sock:
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        data = b""
        while not data.endswith(b"\r\n\r\n1"):
            data += sock.recv(4096)
        assert sock.recv(4096) == b""     # closed by the server once idle for 1 s
        elapsed = time.monotonic() - t0
    assert 0.8 < elapsed < 15
    # a busy connection is kept however long it lives: the timeout is per idle wait
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=LONG)
    try:
        peer = get(server.port, "/peer", conn=conn)
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            time.sleep(0.3)
            assert get(server.port, "/peer", conn=conn) == peer
    finally:
        conn.close()
    # the idle time counts from the end of the last response, even when that request
    # held the loop for longer than the keep-alive timeout (the loop's clock was stale)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=LONG)
    try:
        assert get(server.port, "/spin?1.5", conn=conn) == b"spun"
        peer = get(server.port, "/peer", conn=conn)
        time.sleep(0.3)
        assert get(server.port, "/peer", conn=conn) == peer     # the same connection
    finally:
        conn.close()


def test_file_wrapper_is_sent_whole(shared, tmp_path):
    path = tmp_path / "blob"
    payload = os.urandom(5_000_000 + 17)
    path.write_bytes(payload)
    status, headers, body = request(shared.port, "GET", f"/file?{path}")
    assert status == 200 and body == payload
    # HTTP/1.0: the connection is closed after the body, no chunking
    raw = raw_exchange(shared.port, f"GET /file?{path} HTTP/1.0\r\n\r\n".encode())
    assert raw.partition(b"\r\n\r\n")[2] == payload


def test_a_client_reading_a_file_slowly_does_not_block_the_worker(shared, tmp_path):
    path = tmp_path / "big"
    payload = os.urandom(32_000_000)     # far more than the socket buffers hold
    path.write_bytes(payload)
    with socket.create_connection(("127.0.0.1", shared.port), timeout=LONG) as slow:
        slow.sendall(f"GET /file?{path} HTTP/1.0\r\n\r\n".encode())
        first = slow.recv(65536)
        assert first.startswith(b"HTTP/1.0 200")
        # the worker's sendfile now waits for the socket to drain: others are served
        for _ in range(5):
            assert get(shared.port, "/version", timeout=10) == b"1"
        chunks = [first]
        while True:
            chunk = slow.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    assert b"".join(chunks).partition(b"\r\n\r\n")[2] == payload


def test_bad_request_gets_a_400_and_the_worker_keeps_serving(shared):
    raw = raw_exchange(shared.port, b"NOT A REQUEST\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400"), raw
    assert get(shared.port, "/version") == b"1"


def test_one_worker_serves_slow_requests_concurrently(shared):
    pid = pid_of(shared)
    get(shared.port, "/max")            # reset the high-water mark
    n = 60
    t0 = time.monotonic()
    with ThreadPoolExecutor(n) as executor:
        bodies = list(executor.map(lambda _: get(shared.port, "/slow?1"), range(n)))
    elapsed = time.monotonic() - t0
    assert bodies == [b"slept 1"] * n
    # one after another would take 60 s
    assert elapsed < 20, elapsed
    assert int(get(shared.port, "/max")) >= n // 2
    assert pid_of(shared) == pid


def test_a_client_that_disconnects_mid_request_does_not_hurt(shared):
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", shared.port), timeout=LONG) as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                         b"\r\npartial")
        with socket.create_connection(("127.0.0.1", shared.port), timeout=LONG) as sock:
            sock.sendall(b"GET /slow?0.2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert get(shared.port, "/version") == b"1"
    clean_log(shared)


def test_two_workers_share_the_listener(start):
    server = start(workers=2)
    server.wait_log(r"Booting worker with pid: (\d+)", count=2)
    seen = set()
    for _ in range(10):                 # a burst of slow requests reaches both workers
        with ThreadPoolExecutor(20) as executor:
            seen |= set(executor.map(lambda _: int(get(server.port, "/slowpid?0.3")),
                                     range(20)))
        if len(seen) == 2:
            break
    assert seen == set(server.booted())
    clean_log(server)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=LONG)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(LONG)
        self.sock.connect(self.path)


def test_unix_socket_listener(start, tmp_path):
    path = str(tmp_path / "g.sock")
    start(bind=f"unix:{path}")
    conn = UnixHTTPConnection(path)
    try:
        for size in (0, 100_000):
            payload = os.urandom(size)
            status, _h, body = request(None, "POST", "/echo", body=payload, conn=conn)
            assert status == 200 and body == b"POST " + payload
    finally:
        conn.close()
    with ThreadPoolExecutor(10) as executor:
        def slow(_):
            c = UnixHTTPConnection(path)
            try:
                return request(None, "GET", "/slow?1", conn=c)[2]
            finally:
                c.close()
        t0 = time.monotonic()
        assert list(executor.map(slow, range(10))) == [b"slept 1"] * 10
        assert time.monotonic() - t0 < 8


# -------------------------------------------------------------------------------------
# worker_connections
# -------------------------------------------------------------------------------------

def test_worker_connections_bounds_the_connections_served_at_once(start):
    server = start("--worker-connections", "3")
    n = 9
    t0 = time.monotonic()
    with ThreadPoolExecutor(n) as executor:
        bodies = list(executor.map(lambda _: get(server.port, "/slow?0.5"), range(n)))
    elapsed = time.monotonic() - t0
    assert bodies == [b"slept 0.5"] * n      # the rest waited in the backlog
    assert int(get(server.port, "/max")) == 3
    assert elapsed >= 1.4                    # three rounds of three
    clean_log(server)


# -------------------------------------------------------------------------------------
# stopping
# -------------------------------------------------------------------------------------

def test_sigterm_lets_the_request_in_flight_finish(start, app_dir):
    server = start()
    marker = app_dir / "started"
    pending = in_thread(request, server.port, "GET", "/slow?2",
                        headers={"X-Marker": str(marker)})
    wait_until(marker.exists, what="the slow request to start")
    t0 = time.monotonic()
    server.signal(signal.SIGTERM)             # the arbiter passes it on to the worker
    status, headers, body = pending()
    assert (status, body) == (200, b"slept 2")
    assert server.wait_exit() == 0
    assert time.monotonic() - t0 < 15
    # the listener is gone
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    assert "Worker graceful timeout" not in server.log
    clean_log(server)


def test_sigterm_to_one_worker_drains_it_and_the_arbiter_replaces_it(start, app_dir):
    server = start()
    old = pid_of(server)
    marker = app_dir / "started"
    pending = in_thread(request, server.port, "GET", "/slow?2",
                        headers={"X-Marker": str(marker)})
    wait_until(marker.exists, what="the slow request to start")
    os.kill(old, signal.SIGTERM)
    new = wait_new_pid(server, old)        # new connections go to the new worker
    assert pending()[2] == b"slept 2"      # while the old one finishes its request
    wait_until(lambda: not pid_exists(old), what="the old worker to exit")
    assert new in server.booted()
    clean_log(server)


def test_graceful_timeout_bounds_the_wait(start, app_dir):
    server = start("--graceful-timeout", "1")
    marker = app_dir / "started"
    pending = in_thread(request, server.port, "GET", "/slow?60",
                        headers={"X-Marker": str(marker)})
    wait_until(marker.exists, what="the slow request to start")
    t0 = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert time.monotonic() - t0 < 20
    with pytest.raises((http.client.HTTPException, OSError)):
        pending()                            # cut off: no response
    # (no log line is checked: when the arbiter's SIGKILL at the end of the grace period
    # beats the worker's own cut-off, which happens on a loaded machine, neither
    # "Worker graceful timeout" nor "Worker exiting" is written)


def test_sigquit_stops_at_once(start, app_dir):
    server = start()
    marker = app_dir / "started"
    pending = in_thread(request, server.port, "GET", "/slow?60",
                        headers={"X-Marker": str(marker)})
    wait_until(marker.exists, what="the slow request to start")
    t0 = time.monotonic()
    server.signal(signal.SIGQUIT)
    assert server.wait_exit() == 0
    assert time.monotonic() - t0 < 15        # far from the 60 s request or 20 s grace
    with pytest.raises((http.client.HTTPException, OSError)):
        pending()


def test_sigint_to_the_worker_stops_it_at_once_and_it_is_replaced(start, app_dir):
    server = start()
    old = pid_of(server)
    marker = app_dir / "started"
    pending = in_thread(request, server.port, "GET", "/slow?60",
                        headers={"X-Marker": str(marker)})
    wait_until(marker.exists, what="the slow request to start")
    os.kill(old, signal.SIGINT)
    with pytest.raises((http.client.HTTPException, OSError)):
        pending(timeout=20)
    assert wait_new_pid(server, old) != old


def test_a_dead_arbiter_makes_the_worker_exit(start):
    server = start("--timeout", "4")
    pid = pid_of(server)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    # the worker, now an orphan, sees its parent change at its next heartbeat
    wait_until(lambda: not pid_exists(pid), timeout=30, what="the orphaned worker to exit")
    server.wait_log(r"Parent changed, shutting down")


# -------------------------------------------------------------------------------------
# reloading and replacing workers
# -------------------------------------------------------------------------------------

def test_sighup_replaces_the_worker_without_dropping_requests(start, app_dir):
    server = start()
    old = pid_of(server)
    assert get(server.port, "/version") == b"1"
    marker = app_dir / "started"
    in_flight = in_thread(request, server.port, "GET", "/slow?2",
                          headers={"X-Marker": str(marker)})
    wait_until(marker.exists, what="the slow request to start")
    _write_app(app_dir, version="2")         # the new workers import the new code
    server.signal(signal.SIGHUP)
    # keep asking throughout the reload: every request must be answered
    versions = []
    deadline = time.monotonic() + START
    while not versions or versions[-1] != b"2":
        assert time.monotonic() < deadline, server.log
        versions.append(get(server.port, "/version"))
        time.sleep(0.02)
    assert pid_of(server) != old
    assert in_flight()[2] == b"slept 2"      # the old worker finished it first
    wait_until(lambda: not pid_exists(old), what="the old worker to exit")
    server.wait_log(r"Hang up")
    clean_log(server)


def test_killed_and_crashed_workers_are_replaced(start):
    server = start()
    first = pid_of(server)
    os.kill(first, signal.SIGKILL)
    second = wait_new_pid(server, first)
    with pytest.raises((http.client.HTTPException, OSError)):
        request(server.port, "GET", "/crash")  # os._exit in the app
    third = wait_new_pid(server, second)
    assert len({first, second, third}) == 3
    assert get(server.port, "/version") == b"1"


def test_max_requests_recycles_the_worker(start):
    server = start("--max-requests", "5", "--max-requests-jitter", "0")
    pids = [pid_of(server) for _ in range(12)]   # each on a new connection
    assert len(set(pids)) >= 2, pids
    assert pids[:5] == [pids[0]] * 5
    server.wait_log(r"Autorestarting worker after current request")
    clean_log(server)


def test_preload_works_and_what_it_imported_unpatched_is_reported(start, app_dir):
    # imported in the arbiter, before any worker patched: `sleep` is the blocking one
    (app_dir / "preloaded.py").write_text("from time import sleep\n"
                                          "from app import app\n")
    server = start("--preload", app="preloaded:app")
    assert get(server.port, "/version") == b"1"
    log = server.wait_log(r"MonkeyPatchWarning.*").group(0)
    assert "time.sleep as" in log and "preloaded.sleep" in log, log
    assert "ReloaderBase" not in log     # gunicorn's own, filtered out


def test_code_reloader_restarts_the_worker_on_change(start, app_dir):
    server = start("--reload", "--reload-engine", "poll")
    old = pid_of(server)
    time.sleep(1.5)                          # the poller has seen the first version
    _write_app(app_dir, version="2")
    wait_until(lambda: get(server.port, "/version") == b"2", what="the new code")
    assert pid_of(server) != old
    server.wait_log(r"Worker reloading: .*app\.py modified")


# -------------------------------------------------------------------------------------
# the heartbeat
# -------------------------------------------------------------------------------------

@pytest.mark.slow  # idles through several heartbeat periods
def test_an_idle_worker_keeps_its_heartbeat(start):
    server = start("--timeout", "2")
    pid = pid_of(server)
    time.sleep(5)                  # more than twice the timeout, nothing to do
    assert pid_of(server) == pid
    assert "WORKER TIMEOUT" not in server.log


def test_a_worker_blocking_its_loop_is_aborted_and_replaced(start, app_dir):
    conf = app_dir / "conf.py"
    marker = app_dir / "aborted"
    conf.write_text(f"def worker_abort(worker):\n"
                    f"    open({str(marker)!r}, 'w').write(str(worker.pid))\n")
    server = start("--timeout", "2", "-c", str(conf))
    pid = pid_of(server)
    # a CPU loop: no heartbeat while it runs; SIGABRT must still reach the worker
    with pytest.raises((http.client.HTTPException, OSError)):
        request(server.port, "GET", "/spin?40", timeout=45)
    server.wait_log(r"WORKER TIMEOUT \(pid:%d\)" % pid)
    assert marker.read_text() == str(pid)    # the worker_abort hook ran in the worker
    assert wait_new_pid(server, pid) != pid
    assert not re.search(r"Worker \(pid:%d\) was sent SIGKILL" % pid, server.log)


# -------------------------------------------------------------------------------------
# TLS
# -------------------------------------------------------------------------------------

def test_https(start, certs):  # noqa: F811 - fixture
    server = start("--certfile", certs["cert"], "--keyfile", certs["key"])
    context = ssl.create_default_context(cafile=certs["ca"])
    for _ in range(2):
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=LONG,
                                           context=context)
        try:
            payload = os.urandom(200_000)
            status, _h, body = request(server.port, "POST", "/echo", body=payload,
                                       conn=conn)
            assert status == 200 and body == b"POST " + payload
            assert get(server.port, "/version", conn=conn) == b"1"   # kept alive
        finally:
            conn.close()
    # a client that is not speaking TLS does not hurt the worker
    try:
        raw_exchange(server.port, b"GET / HTTP/1.1\r\n\r\n")
    except (ConnectionResetError, BrokenPipeError):
        pass                                 # closed with the request unread
    except OSError as exc:                   # ... before this client's shutdown(SHUT_WR)
        if exc.errno != errno.ENOTCONN:
            raise
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=LONG,
                                       context=context)
    try:
        assert get(server.port, "/version", conn=conn) == b"1"
    finally:
        conn.close()
