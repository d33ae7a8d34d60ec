"""Tests for evloop.pywsgi: real clients over loopback against a real server.

The server runs in its own thread (with that thread's hub); the clients are the
standard library's sockets, ``requests`` and ``urllib3`` in the test's thread, so nothing
is mocked on either side. Where gevent.pywsgi behaves the same, a test runs against both
(``impl``: "evloop" or "gevent", gevent's server in its own thread on its own hub); what
gevent.pywsgi does differently or lacks (413, 431, 408, ``wsgi.file_wrapper``, one send
per small response) is tested on evloop's only.

Timing rules (a busy 2-core machine): lower bounds, or upper bounds with a wide margin.
"""
import json
import os
import select
import socket
import sys
import threading
import time

import pytest
import requests
import urllib3

from _helpers import run_python

HELLO = b"Hello, world!"


def hello_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [HELLO]


def echo_app(environ, start_response):
    """Reports the environ (JSON-safe values) and the body it read."""
    body = environ["wsgi.input"].read()
    report = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int))}
    report["body"] = body.decode("latin-1")
    report["after_end"] = environ["wsgi.input"].read(10).decode("latin-1")
    out = json.dumps(report).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]


class Served:
    """A WSGIServer of ``impl`` serving in a thread of its own until ``close()``."""

    def __init__(self, impl, app, configure=None, **kwargs):
        self.impl = impl
        self.errors = []
        self._ready = threading.Event()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, args=(app, configure, kwargs),
                                        daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "the server did not start"
        if self.errors:
            raise self.errors[0]

    def _run(self, app, configure, kwargs):
        try:
            if self.impl == "evloop":
                import evloop as api
                from evloop import pywsgi
                from evloop.socket import wait_read
            else:
                import gevent as api
                from gevent import pywsgi
                from gevent.socket import wait_read
            kwargs.setdefault("log", None)
            server = pywsgi.WSGIServer(("127.0.0.1", 0), app, **kwargs)
            if configure is not None:
                configure(server)
            server.start()
            self.server = server
            self.port = server.server_port
        except BaseException as ex:  # noqa: BLE001 - reported to the test's thread
            self.errors.append(ex)
            self._ready.set()
            return
        self._ready.set()
        try:
            wait_read(self._stop_r)
            server.stop(timeout=2)
        finally:
            os.close(self._stop_r)
            if self.impl == "gevent":
                # gevent's handler keeps its socket's makefile() in a reference cycle:
                # finalize those sockets while their hub and loop still exist
                import gc
                gc.collect()
                api.get_hub().destroy(destroy_loop=True)

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        os.write(self._stop_w, b"x")
        os.close(self._stop_w)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the server thread did not end"


@pytest.fixture(params=["evloop", "gevent"])
def impl(request):
    return request.param


@pytest.fixture
def serve():
    started = []

    def start(impl, app, configure=None, **kwargs):
        served = Served(impl, app, configure, **kwargs)
        started.append(served)
        return served

    yield start
    for served in started:
        served.close()


def read_response(sock, buffered=b"", head_request=False):
    """One HTTP/1.x response from ``sock``: (status line, {lower-case header: value},
    body, bytes read past it). Understands Content-Length and chunked bodies."""
    data = buffered
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError(f"closed inside a response head: {data!r}")
        data += more
    head, data = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    if head_request or lines[0].split()[1].startswith("1"):
        return lines[0], headers, b"", data
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in data:
                data += sock.recv(65536)
            size_line, data = data.split(b"\r\n", 1)
            size = int(size_line, 16)
            while len(data) < size + 2:
                data += sock.recv(65536)
            body += data[:size]
            data = data[size + 2:]
            if size == 0:
                return lines[0], headers, body, data
    length = int(headers.get("content-length", -1))
    if length < 0:
        while True:
            more = sock.recv(65536)
            if not more:
                return lines[0], headers, data, b""
            data += more
    while len(data) < length:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("closed inside a response body")
        data += more
    return lines[0], headers, data[:length], data[length:]


def recv_until_closed(sock, limit=10.0):
    sock.settimeout(limit)
    data = b""
    while True:
        try:
            more = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not more:
            return data
        data += more


# -- requests, urllib3, keep-alive ---------------------------------------------------------

def test_requests_get_and_environ(impl, serve):
    served = serve(impl, echo_app)
    r = requests.get(served.url + "/a%20b/c?x=1&y=2", headers={"X-Custom": "v"}, timeout=10)
    assert r.status_code == 200
    env = r.json()
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/a b/c"
    assert env["QUERY_STRING"] == "x=1&y=2"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(served.port)
    assert env["SERVER_NAME"]
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert int(env["REMOTE_PORT"]) > 0
    assert env["HTTP_X_CUSTOM"] == "v"
    assert env["HTTP_HOST"] == f"127.0.0.1:{served.port}"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["body"] == "" and env["after_end"] == ""
    assert "CONTENT_LENGTH" not in env


def test_post_body_content_type_and_reading_past_the_end(impl, serve):
    served = serve(impl, echo_app)
    r = requests.post(served.url + "/p", data=b"abc=1", timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    env = r.json()
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["CONTENT_LENGTH"] == "5"
    assert env["body"] == "abc=1"
    assert env["after_end"] == ""  # reading past Content-Length gives b''


def test_keepalive_connection_is_reused(impl, serve):
    seen = []

    def app(environ, start_response):
        seen.append(environ["REMOTE_PORT"])
        return hello_app(environ, start_response)

    served = serve(impl, app)
    with requests.Session() as session:
        for _ in range(5):
            r = session.get(served.url + "/", timeout=10)
            assert r.content == HELLO
    assert len(seen) == 5 and len(set(seen)) == 1, seen


def test_urllib3_pool_keepalive_and_post(impl, serve):
    served = serve(impl, echo_app)
    with urllib3.PoolManager(maxsize=1) as pool:
        ports = set()
        for i in range(4):
            r = pool.request("POST", served.url + f"/u{i}", body=b"x" * (1000 * i),
                             headers={"Content-Type": "text/plain"})
            env = json.loads(r.data)
            assert env["body"] == "x" * (1000 * i)
            ports.add(env["REMOTE_PORT"])
        assert len(ports) == 1


def test_duplicate_headers_and_cookies_joined_underscored_dropped(impl, serve):
    served = serve(impl, echo_app)
    with served.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\nCookie: a=1\r\n"
                  b"Cookie: b=2\r\nX_Under: bad\r\n\r\n")
        _, _, body, _ = read_response(s)
    env = json.loads(body)
    assert env["HTTP_X_A"] == "1,2"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_X_UNDER" not in env


# -- pipelining, HTTP/1.0 --------------------------------------------------------------------

def test_pipelined_requests_answered_in_order(impl, serve):
    served = serve(impl, echo_app)
    with served.connect() as s:
        s.sendall(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                  b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                  b"POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"2\r\nxy\r\n0\r\n\r\n"
                  b"GET /4 HTTP/1.1\r\nHost: h\r\n\r\n")
        rest = b""
        got = []
        for _ in range(4):
            status, _, body, rest = read_response(s, rest)
            assert status == "HTTP/1.1 200 OK"
            env = json.loads(body)
            got.append((env["PATH_INFO"], env["body"]))
    assert got == [("/1", ""), ("/2", "abc"), ("/3", "xy"), ("/4", "")]


def test_requests_split_at_every_size_are_answered_the_same(serve):
    """The pipelined requests of the test above, sent in pieces of 1, 2, 3, 7 and 50
    bytes with pauses: the URL, headers, bodies and chunk framing split anywhere."""
    served = serve("evloop", echo_app)
    payload = (b"GET /first%20path?q=1 HTTP/1.1\r\nHost: h\r\nX-Long: " + b"v" * 300 +
               b"\r\n\r\n"
               b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
               b"POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    for size in (1, 2, 3, 7, 50):
        with served.connect() as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(payload), size):
                s.sendall(payload[i:i + size])
                if i % (size * 40) == 0:
                    time.sleep(0.001)
            rest = b""
            got = []
            for _ in range(3):
                _, _, body, rest = read_response(s, rest)
                env = json.loads(body)
                got.append((env["PATH_INFO"], env["QUERY_STRING"], env["body"],
                            len(env.get("HTTP_X_LONG", ""))))
        assert got == [("/first path", "q=1", "", 300), ("/2", "", "hello world", 0),
                       ("/3", "", "hello world", 0)], size


def test_http10_closes_by_default(impl, serve):
    served = serve(impl, hello_app)
    with served.connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in data
    assert data.endswith(HELLO)


def test_http10_keepalive(impl, serve):
    served = serve(impl, echo_app)
    with served.connect() as s:
        rest = b""
        for i in range(3):
            s.sendall(b"GET /k%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
            status, headers, body, rest = read_response(s, rest)
            assert headers["connection"].lower() == "keep-alive"
            assert json.loads(body)["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_http10_generator_without_length_ends_with_the_connection(serve):
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"part1"
        yield b"part2"

    served = serve("evloop", app)
    with served.connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = recv_until_closed(s)
    assert b"Connection: close\r\n" in data and b"chunked" not in data
    assert data.endswith(b"part1part2")


# -- chunked -------------------------------------------------------------------------------

def test_chunked_request_decoded(impl, serve):
    served = serve(impl, echo_app)

    def body():
        yield b"hello "
        yield b"chunked "
        yield b"world"

    r = requests.post(served.url + "/c", data=body(), timeout=10)
    env = r.json()
    assert env["body"] == "hello chunked world"
    assert env["HTTP_TRANSFER_ENCODING"] == "chunked"


def test_chunked_response_when_no_length(impl, serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(3):
            yield b"chunk%d;" % i

    served = serve(impl, app)
    with served.connect() as s:
        rest = b""
        for _ in range(2):  # and the connection stays usable
            s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            status, headers, body, rest = read_response(s, rest)
            assert headers["transfer-encoding"] == "chunked"
            assert body == b"chunk0;chunk1;chunk2;"
    r = requests.get(served.url, timeout=10)
    assert r.content == b"chunk0;chunk1;chunk2;"


def test_readline_with_size_and_iteration(impl, serve):
    def app(environ, start_response):
        inp = environ["wsgi.input"]
        parts = [inp.readline(4), inp.readline(), inp.readline(100)]
        parts += list(inp)
        out = json.dumps([p.decode() for p in parts]).encode()
        start_response("200 OK", [("Content-Length", str(len(out)))])
        return [out]

    served = serve(impl, app)
    for chunked in (False, True):
        data = b"line one\nline two\nthree\nfour\n"
        body = iter([data[:7], data[7:]]) if chunked else data
        r = requests.post(served.url, data=body, timeout=10)
        assert r.json() == ["line", " one\n", "line two\n", "three\n", "four\n"], chunked


# -- Expect: 100-continue --------------------------------------------------------------------

def test_expect_100_continue_sent_when_the_app_reads(impl, serve):
    served = serve(impl, echo_app)
    with served.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        s.settimeout(10)
        interim = s.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        status, _, body, _ = read_response(s, interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):])
    assert status == "HTTP/1.1 200 OK"
    assert json.loads(body)["body"] == "hello"


def test_expect_100_continue_not_sent_when_the_app_does_not_read(serve):
    served = serve("evloop", hello_app)
    with served.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        data = recv_until_closed(s)
    # straight to the final answer, and the connection closes (the body never came)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"100 Continue" not in data
    assert b"Connection: close\r\n" in data


def test_no_100_continue_after_the_response_started(serve):
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"first;"
        yield environ["wsgi.input"].read()

    served = serve("evloop", app)
    with served.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        data = b""
        while b"first;" not in data:
            data += s.recv(65536)
        s.sendall(b"body")
        status, _, body, _ = read_response(s, data)
    assert status == "HTTP/1.1 200 OK"
    assert body == b"first;body"


def test_unread_body_is_discarded_and_the_connection_kept(impl, serve):
    served = serve(impl, hello_app)
    with served.connect() as s:
        rest = b""
        for i in range(3):
            s.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10000\r\n\r\n" +
                      b"z" * 10000)
            status, _, body, rest = read_response(s, rest)
            assert body == HELLO


# -- refused requests ------------------------------------------------------------------------

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
]
# gevent.pywsgi answers these (http.client's header parser skips the line; gevent's
# Input takes a hex digit string as it is): evloop's llhttp refuses them
MALFORMED_FOR_LLHTTP = [
    b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", MALFORMED)
def test_malformed_request_gets_400_and_close(impl, serve, request_bytes):
    served = serve(impl, hello_app)
    with served.connect() as s:
        s.sendall(request_bytes)
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 400 "), data


@pytest.mark.parametrize("request_bytes", MALFORMED_FOR_LLHTTP)
def test_malformed_for_llhttp_gets_400_and_close(serve, request_bytes):
    served = serve("evloop", hello_app)
    with served.connect() as s:
        s.sendall(request_bytes)
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 400 "), data


def test_request_after_good_pipelined_ones_400_in_order(serve):
    served = serve("evloop", echo_app)
    with served.connect() as s:
        s.sendall(b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\nNOT HTTP AT ALL\r\n\r\n")
        status, _, body, rest = read_response(s)
        assert json.loads(body)["PATH_INFO"] == "/ok"
        rest += recv_until_closed(s)
    assert rest.startswith(b"HTTP/1.1 400 ")


def test_too_long_request_line_414(impl, serve):
    served = serve(impl, hello_app)
    with served.connect() as s:
        s.sendall(b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 414 "), data[:100]


def test_too_large_headers_431(serve):
    served = serve("evloop", hello_app)
    with served.connect() as s:  # one huge header
        s.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n")
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 431 "), data[:100]
    with served.connect() as s:  # too many headers
        s.sendall(b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150))
                  + b"\r\n")
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 431 "), data[:100]
    with served.connect() as s:  # a head that never ends, trickled in
        s.sendall(b"GET / HTTP/1.1\r\nX-Endless: ")
        data = b""
        try:
            for _ in range(200):
                s.sendall(b"e" * 1000)
        except OSError:
            pass
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 431 "), data[:100]


def test_body_over_max_body_size_413(serve):
    served = serve("evloop", echo_app, max_body_size=1000)
    ok = requests.post(served.url, data=b"a" * 1000, timeout=10)
    assert ok.json()["body"] == "a" * 1000
    with served.connect() as s:  # refused from Content-Length, before the app runs
        s.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + b"a" * 5000)
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 413 "), data[:100]
    with served.connect() as s:  # chunked: found while the app reads
        s.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  b"".join(b"200\r\n" + b"c" * 0x200 + b"\r\n" for _ in range(4)) +
                  b"0\r\n\r\n")
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 413 "), data[:100]


def test_slow_request_head_times_out(serve):
    def configure(server):
        server.header_timeout = 1.0

    served = serve("evloop", hello_app, configure)
    with served.connect() as s:
        start = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        # one byte every 0.1 s: each recv is quick, the whole head is not
        for _ in range(60):
            s.sendall(b"X")
            if select.select([s], [], [], 0.1)[0]:
                break
        elapsed = time.monotonic() - start
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert 0.9 < elapsed < 3.0, elapsed
    with served.connect() as s:  # part of a head, then silence: 408 when the time is up
        start = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        time.sleep(0.8)
        s.sendall(b"Host: h\r\n")
        data = recv_until_closed(s)
        elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert 0.9 < elapsed < 1.6, elapsed  # not 0.8 + a whole 1.0 after the second part
    with served.connect() as s:  # an idle connection is closed without a response
        assert recv_until_closed(s) == b""
    # a request in time is served
    assert requests.get(served.url, timeout=10).content == HELLO


# -- the response path ------------------------------------------------------------------------

def test_small_response_is_one_send(serve):
    """Status line, headers and a small body leave in one send: each response arrives in
    one recv (a second send would be a second segment), also for a chunked response's
    first chunk."""
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/gen":
            return (x for x in [HELLO])
        return [b"Hello, ", b"world!"]

    served = serve("evloop", app)
    with served.connect() as s:
        for i in range(20):
            s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            first = s.recv(65536)
            assert first.endswith(b"\r\n\r\n" + HELLO), first
            s.sendall(b"GET /gen HTTP/1.1\r\nHost: h\r\n\r\n")
            first = s.recv(65536)
            assert b"\r\n\r\nd\r\nHello, world!\r\n" in first, first
            while not first.endswith(b"0\r\n\r\n"):
                first += s.recv(65536)


def test_keepalive_round_trips_do_not_wait_for_delayed_acks(serve):
    """200 sequential requests on one keep-alive connection: with Nagle's algorithm meeting
    the client's delayed ACK each would take ~40 ms (8 s in all)."""
    def app(environ, start_response):
        start_response("200 OK", [])
        return (x for x in [b"a", b"b"])  # chunked: head+chunk, chunk, terminator

    served = serve("evloop", app)
    with served.connect() as s:
        rest = b""
        start = time.monotonic()
        for _ in range(200):
            s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            _, _, body, rest = read_response(s, rest)
            assert body == b"ab"
        elapsed = time.monotonic() - start
    assert elapsed < 4.0, elapsed


def test_file_wrapper_uses_sendfile(serve, tmp_path, monkeypatch):
    path = tmp_path / "data.bin"
    payload = os.urandom(300000)
    path.write_bytes(payload)
    calls = []
    from evloop import socket as evsocket
    original = evsocket.socket.sendfile

    def spy(self, file, offset=0, count=None):
        calls.append((offset, count))
        return original(self, file, offset, count)

    monkeypatch.setattr(evsocket.socket, "sendfile", spy)

    def app(environ, start_response):
        f = open(path, "rb")
        if environ["PATH_INFO"] == "/offset":
            f.seek(1000)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 32768)

    served = serve("evloop", app)
    with requests.Session() as session:
        r = session.get(served.url + "/", timeout=10)
        assert r.content == payload
        assert r.headers["Content-Length"] == str(len(payload))
        r = session.get(served.url + "/offset", timeout=10)
        assert r.content == payload[1000:]
        r = session.head(served.url + "/", timeout=10)
        assert r.headers["Content-Length"] == str(len(payload)) and r.content == b""
    assert calls == [(0, 300000), (1000, 299000)]


def test_file_wrapper_of_a_non_file_is_iterated(serve):
    import io

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 50000), 4096)

    served = serve("evloop", app)
    assert requests.get(served.url, timeout=10).content == b"x" * 50000


def test_head_response_has_no_body(serve):
    served = serve("evloop", hello_app)
    with served.connect() as s:
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        status, headers, _, rest = read_response(s, head_request=True)
        assert headers["content-length"] == str(len(HELLO))
        # no body after the HEAD answer: what follows it is the GET's answer
        _, _, body, _ = read_response(s, rest)
    assert body == HELLO


def test_application_error_500_then_connection_closed(impl, serve):
    def app(environ, start_response):
        raise RuntimeError("boom in app")

    served = serve(impl, app)
    with served.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert data.endswith(b"Internal Server Error")


def test_header_injection_refused(impl, serve):
    def app(environ, start_response):
        try:
            start_response("200 OK", [("X-Bad", "a\r\nSet-Cookie: x=1")])
        except ValueError:
            start_response("200 OK", [("X-Refused", "yes")])
        return [b""]

    served = serve(impl, app)
    r = requests.get(served.url, timeout=10)
    assert r.headers["X-Refused"] == "yes" and "Set-Cookie" not in r.headers


# -- logs --------------------------------------------------------------------------------------

def test_access_log_format(impl, serve):
    import io
    import re

    log = io.StringIO()
    served = serve(impl, hello_app, log=log)
    requests.get(served.url + "/logged?q=1", timeout=10)
    deadline = time.monotonic() + 5
    while "logged" not in log.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    line = log.getvalue().strip()
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] '
                        r'"GET /logged\?q=1 HTTP/1\.1" 200 \d+ \d+\.\d{6}', line), line


def test_logging_logger_wrapped(impl, serve):
    import logging

    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger(f"evloop-test-pywsgi-{impl}")
    logger.addHandler(Collect())
    logger.setLevel(logging.INFO)
    served = serve(impl, hello_app, log=logger)
    requests.get(served.url, timeout=10)
    deadline = time.monotonic() + 5
    while not records and time.monotonic() < deadline:
        time.sleep(0.01)
    assert records and records[0].levelno == logging.INFO
    assert '"GET / HTTP/1.1" 200' in records[0].getMessage()
    assert type(served.server.log).__name__ == "LoggingLogAdapter"


def test_bad_server_arguments_raise():
    from evloop import pywsgi

    with pytest.raises(TypeError, match="unexpected keyword"):
        pywsgi.WSGIServer(("127.0.0.1", 0), hello_app, max_body=5)
    with pytest.raises(TypeError, match="application="):
        pywsgi.WSGIServer(("127.0.0.1", 0), handle=hello_app)
    with pytest.raises(ValueError, match="header_timeout"):
        pywsgi.WSGIServer(("127.0.0.1", 0), hello_app, header_timeout=0)
    with pytest.raises(TypeError, match="header_timeout"):
        pywsgi.WSGIServer(("127.0.0.1", 0), hello_app, header_timeout="5")
    with pytest.raises(ValueError, match="max_body_size"):
        pywsgi.WSGIServer(("127.0.0.1", 0), hello_app, max_body_size=-1)
    with pytest.raises(TypeError, match="max_body_size"):
        pywsgi.WSGIServer(("127.0.0.1", 0), hello_app, max_body_size=1.5)
    server = pywsgi.WSGIServer(("127.0.0.1", 0), hello_app, max_body_size=10,
                               header_timeout=2.5)
    assert (server.max_body_size, server.header_timeout) == (10, 2.5)
    assert pywsgi.WSGIServer.max_body_size is None  # the class default is untouched


def test_secure_environ_repr():
    from evloop import pywsgi

    env = pywsgi.WSGISecureEnviron(REMOTE_ADDR="::1", HTTP_AUTHORIZATION="secret")
    assert repr(env) == "{'REMOTE_ADDR': '::1', (hidden keys: 1)}"
    assert "keys: 0" in repr(pywsgi.SecureEnviron())
    plain = pywsgi.SecureEnviron(a=1)
    plain.secure_repr = False
    assert repr(plain) == "{'a': 1}"


# -- frameworks, spawn, TLS ----------------------------------------------------------------------

def test_flask_app(impl, serve):
    flask = pytest.importorskip("flask")
    app = flask.Flask("evloop_pywsgi_test")

    @app.route("/hello/<name>")
    def hello(name):
        return {"hello": name, "args": flask.request.args.to_dict()}

    @app.route("/upload", methods=["POST"])
    def upload():
        f = flask.request.files["file"]
        return {"name": f.filename, "size": len(f.read()), "field": flask.request.form["f"]}

    @app.route("/stream")
    def stream():
        return flask.Response((b"%d," % i for i in range(5)), mimetype="text/plain")

    served = serve(impl, app)
    with requests.Session() as session:
        r = session.get(served.url + "/hello/world?x=1", timeout=10)
        assert r.json() == {"hello": "world", "args": {"x": "1"}}
        r = session.post(served.url + "/upload", files={"file": ("a.bin", b"q" * 70000)},
                         data={"f": "v"}, timeout=10)
        assert r.json() == {"name": "a.bin", "size": 70000, "field": "v"}
        r = session.get(served.url + "/stream", timeout=10)
        assert r.text == "0,1,2,3,4,"
        assert session.get(served.url + "/missing", timeout=10).status_code == 404


def test_spawn_pool_bounds_concurrency(serve):
    from evloop.pool import Pool

    active = []
    peak = []

    def app(environ, start_response):
        import evloop
        active.append(1)
        peak.append(len(active))
        evloop.sleep(0.05)
        active.pop()
        return hello_app(environ, start_response)

    holder = {}

    def configure(server):
        holder["pool"] = server.pool

    served = serve("evloop", app, configure, spawn=Pool(2))
    results = []

    def client():
        results.append(requests.get(served.url, timeout=10,
                                    headers={"Connection": "close"}).content)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [HELLO] * 6
    assert max(peak) <= 2
    assert holder["pool"].size == 2


def test_tls_with_ssl_context(serve, certs):
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["cert"], certs["key"])
    served = serve("evloop", echo_app, ssl_context=context)
    r = requests.get(f"https://localhost:{served.port}/tls", verify=certs["ca"], timeout=10)
    assert r.json()["wsgi.url_scheme"] == "https"
    r = requests.post(f"https://localhost:{served.port}/tls", data=b"secret", verify=certs["ca"],
                      timeout=10)
    assert r.json()["body"] == "secret"


def test_tls_with_certfile_keyfile(serve, certs):
    served = serve("evloop", hello_app, certfile=certs["cert"], keyfile=certs["key"])
    r = requests.get(f"https://localhost:{served.port}/", verify=certs["ca"], timeout=10)
    assert r.content == HELLO


# -- Upgrade hand-off --------------------------------------------------------------------------

def _upgrade_handler_class(pywsgi):
    class EchoUpgradeHandler(pywsgi.WSGIHandler):
        """After ``101``, echo lines upper-cased over the raw connection (what
        gevent-websocket does with ``rfile``/``socket``)."""

        def run_application(self):
            if self.environ.get("HTTP_UPGRADE", "").lower() != "echo":
                return super().run_application()
            self.start_response("101 Switching Protocols",
                                [("Upgrade", "echo"), ("Connection", "Upgrade")])
            self.provided_content_length = False  # as gevent-websocket
            self.response_use_chunked = False
            self.close_connection = True
            self.write("")
            while True:
                line = self.rfile.readline()
                if not line or line == b"quit\n":
                    break
                self.socket.sendall(line.upper())

    return EchoUpgradeHandler


def test_upgrade_leaves_the_raw_socket_to_the_handler(impl, serve):
    if impl == "evloop":
        from evloop import pywsgi
    else:
        from gevent import pywsgi
    served = serve(impl, hello_app, handler_class=_upgrade_handler_class(pywsgi))
    with served.connect() as s:
        # the first protocol line arrives with the request head
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
                  b"first\n")
        status, headers, _, rest = read_response(s)
        assert status == "HTTP/1.1 101 Switching Protocols"
        while rest.count(b"\n") < 1:
            rest += s.recv(100)
        assert rest == b"FIRST\n"
        s.sendall(b"second\n")
        assert s.recv(100) == b"SECOND\n"
        s.sendall(b"quit\n")
        assert recv_until_closed(s) == b""
    # a plain request on that server still works
    assert requests.get(served.url, timeout=10).content == HELLO


@pytest.mark.parametrize("header", [b"Connection: upgrade", b"Upgrade: websocket"])
def test_one_header_upgrade_is_an_upgrade_as_in_gevent(impl, serve, header):
    # gevent takes either header alone for an Upgrade (llhttp needs both): wsgi.input is
    # the raw connection, not terminated; what the client sends next is the application's
    seen = {}

    def app(environ, start_response):
        seen["terminated"] = environ["wsgi.input_terminated"]
        seen["next"] = environ["wsgi.input"].readline()
        start_response("101 Switching Protocols", [("Upgrade", "websocket")])
        return []

    served = serve(impl, app)
    with served.connect() as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: h\r\n" + header + b"\r\n\r\n")
        time.sleep(0.2)  # the head arrives alone, as a client waiting for 101 sends it
        s.sendall(b"raw protocol line\n")
        status, _, _, _ = read_response(s)
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert seen == {"terminated": False, "next": b"raw protocol line\n"}


def test_one_header_upgrade_followed_by_a_request_in_the_same_read_is_ordinary(serve):
    # evloop only: the bytes after the head were already parsed as HTTP by llhttp, so the
    # request is answered as an ordinary one and the next request too (gevent would hand
    # the second request's bytes to the first as its raw stream)
    served = serve("evloop", hello_app)
    with served.connect() as s:
        s.sendall(b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n"
                  b"GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = recv_until_closed(s)
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.count(HELLO) == 2


def test_gevent_websocket_handler_runs_on_evloop():
    """gevent-websocket's own WebSocketHandler (it subclasses gevent.pywsgi.WSGIHandler,
    so the program maps that module to evloop.pywsgi before importing it) serving an echo
    WebSocket on evloop.pywsgi, with a hand-made WebSocket client."""
    pytest.importorskip("geventwebsocket")
    proc = run_python('''
        import base64, os, socket, struct, sys, threading
        import evloop.pywsgi
        sys.modules["gevent.pywsgi"] = evloop.pywsgi
        from geventwebsocket.handler import WebSocketHandler
        assert WebSocketHandler.__mro__[1] is evloop.pywsgi.WSGIHandler

        def app(environ, start_response):
            ws = environ["wsgi.websocket"]
            while True:
                message = ws.receive()
                if message is None:
                    break
                ws.send("echo:" + message)
            return []

        server = evloop.pywsgi.WSGIServer(("127.0.0.1", 0), app, log=None,
                                          handler_class=WebSocketHandler)
        server.start()
        port = server.server_port

        def frame(text):
            payload = text.encode()
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            return bytes([0x81, 0x80 | len(payload)]) + mask + masked

        def client():
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(("GET /ws HTTP/1.1\\r\\nHost: h\\r\\nUpgrade: websocket\\r\\n"
                       "Connection: Upgrade\\r\\nSec-WebSocket-Key: " + key + "\\r\\n"
                       "Sec-WebSocket-Version: 13\\r\\n\\r\\n").encode() + frame("one"))
            data = b""
            while b"\\r\\n\\r\\n" not in data:
                data += s.recv(4096)
            head, data = data.split(b"\\r\\n\\r\\n", 1)
            print(head.split(b"\\r\\n")[0].decode())
            for text in ("two",):
                s.sendall(frame(text))
            for _ in range(2):
                while len(data) < 2 or len(data) < 2 + data[1]:
                    data += s.recv(4096)
                n = data[1]
                print(data[2:2 + n].decode())
                data = data[2 + n:]
            s.sendall(bytes([0x88, 0x80]) + os.urandom(4))  # close
            s.close()

        done = []
        t = threading.Thread(target=lambda: (client(), done.append(1)))
        t.start()
        import evloop
        while not done:
            evloop.sleep(0.01)
        t.join()
        server.stop()
    ''')
    assert proc.stdout.splitlines() == ["HTTP/1.1 101 Switching Protocols", "echo:one",
                                        "echo:two"]


# -- Input(rfile, content_length, socket=None, chunked_input=False): gevent's constructor ---

@pytest.fixture
def Input(impl):
    if impl is None:
        return None
    import importlib
    return importlib.import_module(f"{impl}.pywsgi").Input


def _chunked(*parts, tail=b"0\r\n\r\n"):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + tail


def test_input_from_rfile_content_length_stops_at_the_body_end(Input):
    import io
    rfile = io.BytesIO(b"line1\nline2\nNEXT REQUEST")
    body = Input(rfile, 12)
    assert body.readline() == b"line1\n"
    assert list(body) == [b"line2\n"]
    assert body.read() == b""
    assert rfile.read() == b"NEXT REQUEST"


def test_input_from_rfile_short_body_raises_ioerror(Input):
    import io
    for call in (lambda i: i.read(), lambda i: i.read(5), lambda i: i.readline()):
        with pytest.raises(IOError):
            call(Input(io.BytesIO(b"abc"), 5))


def test_input_from_rfile_chunked_decodes_and_stops_at_the_body_end(Input):
    import io
    rfile = io.BytesIO(_chunked(b"ab\ncd", b"ef", tail=b"0;ext=1\r\nX-Trailer: v\r\n\r\n")
                       + b"NEXT")
    body = Input(rfile, None, chunked_input=True)
    assert body.readline() == b"ab\n"
    assert body.read(3) == b"cde"
    assert body.read() == b"f"
    assert body.read() == b""
    assert rfile.read() == b"NEXT"


@pytest.mark.parametrize("data", [
    _chunked(b"12", tail=b""),                  # no last chunk
    b"5\r\nab",                                 # a chunk cut short
    b"zz\r\nab\r\n0\r\n\r\n",                   # not a hex size
    b"2;" + b"x" * 20000 + b"\r\nab\r\n0\r\n\r\n",  # a chunk extension over 8 KiB
    b"0\r\nTrailer: " + b"t" * 9000,            # a trailer line over 8 KiB, unterminated
])
def test_input_from_rfile_bad_chunked_body_raises_ioerror(Input, data):
    import io
    with pytest.raises(IOError):
        Input(io.BytesIO(data), None, chunked_input=True).read()


def test_input_from_rfile_sends_100_continue_once_at_first_read(Input):
    import io

    class Sock:
        sent = []

        def sendall(self, data):
            self.sent.append(data)

    sock = Sock()
    body = Input(io.BytesIO(b"hello"), 5, socket=sock)
    assert sock.sent == []
    assert body.read(2) == b"he"
    assert body.read() == b"llo"
    assert sock.sent == [b"HTTP/1.1 100 Continue\r\n\r\n"]
