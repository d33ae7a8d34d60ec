"""Tests for evloop.socket: the stdlib socket API, blocking only the calling greenlet.

The API surface is covered here (timeouts, non-blocking mode, makefile, sendall/sendfile,
datagrams, ancillary data, accept/connect, dup/detach/close, the module functions, name
resolution on literals and 'localhost', the re-exported names); real clients after
monkey-patching and the network fault list live in test_clients.py.

Each test closes what it opens and kills what it spawns; no_leaked_watchers checks that
the hub's loop has no more active watchers after a test than before it, another restores
the default timeout.

Timing rules (a busy 2-core machine): lower bounds, or upper bounds with a wide margin.
"""
import array
import errno
import hashlib
import io
import os
import pickle
import socket as stdlib_socket
import time
import types

import pytest

import evloop
from evloop import socket as evsocket
from evloop.hub import get_hub, sleep

# the hub's loop has no more active watchers after a test than before it
pytestmark = pytest.mark.usefixtures("no_leaked_watchers")

# timers may fire a hair early relative to time.monotonic (libev rounds its clock)
EPS = 0.005
# an upper bound for "at once" / "about the timeout" on a busy machine
SLACK = 5.0


@pytest.fixture(autouse=True)
def restore_default_timeout():
    saved = stdlib_socket.getdefaulttimeout()
    yield
    stdlib_socket.setdefaulttimeout(saved)


@pytest.fixture
def green_pair(closing):
    """A connected AF_UNIX stream pair of evloop sockets (conftest's ``pair`` is the
    stdlib's)."""
    return closing(*evsocket.socketpair())


@pytest.fixture
def tcp_pair(closing):
    """(client, server side) of a TCP connection over 127.0.0.1."""
    with evsocket.create_server(("127.0.0.1", 0)) as listener:
        client = closing(evsocket.create_connection(listener.getsockname()))
        server, _ = listener.accept()
        closing(server)
    return client, server


@pytest.fixture
def udp(closing):
    """Two bound UDP evloop sockets on 127.0.0.1."""
    a = closing(evsocket.socket(evsocket.AF_INET, evsocket.SOCK_DGRAM))
    b = closing(evsocket.socket(evsocket.AF_INET, evsocket.SOCK_DGRAM))
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    return a, b


def fill(sock):
    """Fill sock's send buffer (and the peer's receive buffer); leave sock's timeout as it
    was."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    for size in (65536, 4096, 1):
        chunk = b"f" * size
        try:
            while True:
                sock.send(chunk)
        except BlockingIOError:
            pass
    sock.settimeout(timeout)


def outcome(func, *args):
    """func(*args) -> ('ok', value) or ('raised', exception): for greenlets expected to fail
    (their exception would otherwise be printed by the hub)."""
    try:
        return "ok", func(*args)
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        return "raised", exc


def recv_exactly(sock, n):
    chunks = []
    while n:
        data = sock.recv(min(n, 1 << 20))
        if not data:
            break
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


# -------------------------------------------------------------------------------------
# the class, timeouts, blocking mode
# -------------------------------------------------------------------------------------

def test_socket_is_a_stdlib_socket_subclass_with_a_non_blocking_fd(closing):
    sock = closing(evsocket.socket())
    assert isinstance(sock, stdlib_socket.socket)
    assert evsocket.SocketType is evsocket.socket
    assert sock.family == stdlib_socket.AF_INET
    assert sock.type == stdlib_socket.SOCK_STREAM  # no SOCK_NONBLOCK bit leaks into .type
    assert sock.gettimeout() is None
    assert sock.timeout is None
    assert sock.getblocking() is True
    assert os.get_blocking(sock.fileno()) is False


def test_settimeout_gettimeout_setblocking_getblocking(closing):
    sock = closing(evsocket.socket())
    sock.settimeout(1.5)
    assert sock.gettimeout() == 1.5 and sock.timeout == 1.5
    assert sock.getblocking() is True
    sock.settimeout(2)
    assert sock.gettimeout() == 2.0 and isinstance(sock.gettimeout(), float)
    sock.settimeout(0)
    assert sock.gettimeout() == 0.0
    assert sock.getblocking() is False
    sock.setblocking(True)
    assert sock.gettimeout() is None and sock.getblocking() is True
    sock.setblocking(False)
    assert sock.gettimeout() == 0.0 and sock.getblocking() is False
    sock.settimeout(None)
    assert sock.gettimeout() is None
    # whatever the mode, the fd itself stays non-blocking (the hub does the waiting)
    assert os.get_blocking(sock.fileno()) is False


@pytest.mark.parametrize("value, exc", [(-1, ValueError), (-0.5, ValueError),
                                        (float("nan"), ValueError), ("x", TypeError),
                                        (1j, TypeError)])
def test_settimeout_rejects_what_the_stdlib_rejects(closing, value, exc):
    sock = closing(evsocket.socket())
    sock.settimeout(3.0)
    with pytest.raises(exc):
        closing(stdlib_socket.socket()).settimeout(value)
    with pytest.raises(exc):
        sock.settimeout(value)
    assert sock.gettimeout() == 3.0


def test_default_timeout_applies_to_new_sockets(closing):
    assert evsocket.setdefaulttimeout is stdlib_socket.setdefaulttimeout
    assert evsocket.getdefaulttimeout is stdlib_socket.getdefaulttimeout
    before = closing(evsocket.socket())
    evsocket.setdefaulttimeout(2.5)
    assert closing(evsocket.socket()).gettimeout() == 2.5
    assert closing(evsocket.socket(evsocket.AF_INET, evsocket.SOCK_DGRAM)).gettimeout() == 2.5
    a, b = closing(*evsocket.socketpair())
    assert a.gettimeout() == 2.5 and b.gettimeout() == 2.5
    assert before.gettimeout() is None  # existing sockets keep theirs
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    client = closing(evsocket.create_connection(listener.getsockname()))
    conn, _ = listener.accept()
    closing(conn)
    assert client.gettimeout() == 2.5 and conn.gettimeout() == 2.5
    # a default timeout still means "wait cooperatively", not "non-blocking"
    assert os.get_blocking(conn.fileno()) is False
    evsocket.setdefaulttimeout(None)
    assert closing(evsocket.socket()).gettimeout() is None
    evsocket.setdefaulttimeout(0)
    assert closing(evsocket.socket()).getblocking() is False


def test_accepted_socket_is_blocking_when_the_listener_has_a_timeout(closing):
    # the stdlib's rule (bpo-7995): with no default timeout, a listener's timeout is not
    # inherited by the accepted socket
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    listener.settimeout(5.0)
    client = closing(evsocket.create_connection(listener.getsockname()))
    conn, addr = listener.accept()
    closing(conn)
    assert conn.gettimeout() is None
    assert addr == client.getsockname()


# the blocking operations, each on a socket where it has to wait
def _stream(closing):
    a, b = closing(*evsocket.socketpair())
    return a


def _stream_full(closing):
    a, b = closing(*evsocket.socketpair())
    fill(a)
    return a


def _dgram(closing):
    s = closing(evsocket.socket(evsocket.AF_INET, evsocket.SOCK_DGRAM))
    s.bind(("127.0.0.1", 0))
    return s


def _listener(closing):
    return closing(evsocket.create_server(("127.0.0.1", 0)))


WAITING_OPS = {
    "recv": (_stream, lambda s: s.recv(10)),
    "recv_into": (_stream, lambda s: s.recv_into(bytearray(10))),
    "recvmsg": (_stream, lambda s: s.recvmsg(10)),
    "recvmsg_into": (_stream, lambda s: s.recvmsg_into([bytearray(10)])),
    "recvfrom": (_dgram, lambda s: s.recvfrom(10)),
    "recvfrom_into": (_dgram, lambda s: s.recvfrom_into(bytearray(10))),
    "accept": (_listener, lambda s: s.accept()),
    "send": (_stream_full, lambda s: s.send(b"x" * 65536)),
    "sendmsg": (_stream_full, lambda s: s.sendmsg([b"x" * 65536])),
    "makefile.read": (_stream, lambda s: s.makefile("rb", buffering=0).read(10)),
}


@pytest.mark.parametrize("op", sorted(WAITING_OPS))
def test_timeout_raises_socket_timeout_after_the_timeout(closing, ticker, op):
    setup, call = WAITING_OPS[op]
    sock = setup(closing)
    sock.settimeout(0.2)
    start = time.monotonic()
    with pytest.raises(stdlib_socket.timeout) as info:
        call(sock)
    elapsed = time.monotonic() - start
    assert isinstance(info.value, TimeoutError)  # socket.timeout is an alias of it
    assert evsocket.timeout is stdlib_socket.timeout
    assert 0.2 - EPS <= elapsed < 0.2 + SLACK
    assert ticker.ticks > 0  # the wait blocked only this greenlet


@pytest.mark.parametrize("op", sorted(set(WAITING_OPS) - {"makefile.read"}) + ["sendall"])
def test_non_blocking_socket_raises_blocking_io_error_at_once(closing, op):
    if op == "sendall":
        setup, call = _stream_full, lambda s: s.sendall(b"x" * 65536)
    else:
        setup, call = WAITING_OPS[op]
    sock = setup(closing)
    sock.setblocking(False)
    start = time.monotonic()
    with pytest.raises(BlockingIOError) as info:
        call(sock)
    assert info.value.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
    assert time.monotonic() - start < SLACK


def test_non_blocking_makefile_read_returns_none(green_pair):
    a, _b = green_pair
    a.setblocking(False)
    assert a.makefile("rb", buffering=0).read(10) is None  # as the stdlib's SocketIO


def test_socket_is_usable_after_a_timeout(green_pair):
    a, b = green_pair
    a.settimeout(0.05)
    with pytest.raises(stdlib_socket.timeout):
        a.recv(10)
    b.sendall(b"late")
    assert a.recv(10) == b"late"


def test_timeout_is_per_operation_and_data_arriving_in_time_wins(green_pair):
    a, b = green_pair
    a.settimeout(5.0)
    evloop.spawn_later(0.05, b.sendall, b"soon")
    start = time.monotonic()
    assert a.recv(10) == b"soon"
    assert 0.05 - EPS <= time.monotonic() - start < SLACK


def test_blocked_recv_lets_other_greenlets_run(green_pair, ticker):
    a, b = green_pair
    evloop.spawn_later(0.1, b.sendall, b"x")
    start = time.monotonic()
    assert a.recv(10) == b"x"  # no timeout: waits as long as needed, cooperatively
    assert time.monotonic() - start >= 0.1 - EPS
    assert ticker.ticks >= 3


def _enter_wait_first(a, b):
    """Make a's next recv wait before trying (evloop_io.c's wait-first): a recv that had
    to wait, then a send."""
    evloop.spawn_later(0.01, b.sendall, b"q")
    assert a.recv(10) == b"q"
    a.sendall(b"r")
    assert b.recv(10) == b"r"


def yields(func, *args):
    """(func(*args), whether the calling greenlet went through the hub meanwhile)."""
    other = evloop.spawn(lambda: None)
    value = func(*args)
    went = other.dead
    other.kill()
    return value, went


def test_a_recv_after_a_send_waits_first_and_still_gets_data_already_there(green_pair):
    a, b = green_pair
    _enter_wait_first(a, b)
    b.sendall(b"there")  # already readable when a asks
    value, went = yields(a.recv, 10)
    assert value == b"there"
    assert went  # waited for readability first (the loop's next poll found it)


def test_a_pipelining_peer_turns_wait_first_off(green_pair):
    a, b = green_pair
    _enter_wait_first(a, b)
    went_through_hub = 0
    for i in range(100):
        b.sendall(b"%03d" % i)  # the answer is there before a asks, every time
        value, went = yields(a.recv, 3)
        assert value == b"%03d" % i
        went_through_hub += went
        a.sendall(b"k")
        assert b.recv(1) == b"k"
    # at most one probe period (16 recvs) of needless trips through the hub
    assert went_through_hub <= 16


def test_wait_first_keeps_the_timeout_semantics(green_pair):
    a, b = green_pair
    a.settimeout(0.05)
    _enter_wait_first(a, b)
    b.sendall(b"ready")
    assert a.recv(10) == b"ready"  # data there: no timeout, however short
    a.sendall(b"x")
    assert b.recv(1) == b"x"
    start = time.monotonic()
    with pytest.raises(stdlib_socket.timeout):
        a.recv(10)
    assert time.monotonic() - start >= 0.05 - EPS


def test_a_recv_in_the_hub_greenlet_tries_first_in_wait_first_mode(green_pair):
    # a callback run by the hub must never wait; one reading a socket it knows is
    # readable gets the data, as it did before wait-first
    a, b = green_pair
    _enter_wait_first(a, b)
    b.sendall(b"cb")
    got = []
    done = evloop.event.Event()

    def callback():
        got.append(a.recv(10))
        done.set()

    get_hub().loop.run_callback(callback)
    assert done.wait(timeout=10)
    assert got == [b"cb"]
    b.sendall(b"next")
    assert a.recv(10) == b"next"


def test_recv_into_waits_first_too_and_gets_the_data(green_pair):
    a, b = green_pair
    _enter_wait_first(a, b)
    b.sendall(b"into")
    buf = bytearray(10)
    n, went = yields(a.recv_into, buf)
    assert buf[:n] == b"into" and went


def test_many_greenlets_blocked_in_recv_on_different_sockets(closing):
    pairs = [closing(*evsocket.socketpair()) for _ in range(20)]
    glets = [closing(evloop.spawn(a.recv, 10)) for a, _ in pairs]
    sleep(0.01)
    assert not any(g.dead for g in glets)
    for i, (_, b) in enumerate(reversed(pairs)):
        b.sendall(b"%d" % i)
    evloop.joinall(glets, timeout=10, raise_error=True)
    assert [g.value for g in reversed(glets)] == [b"%d" % i for i in range(20)]


def test_large_recv_sizes_share_one_scratch_buffer_safely(closing):
    # recv(n) for 32 KiB < n <= 256 KiB goes through one process-wide scratch buffer (no
    # n-byte allocation per call): greenlets blocked in such recvs on different sockets,
    # woken in any order, each get exactly their own bytes; flags and sizes outside that
    # range keep CPython's direct path
    pairs = [closing(*evsocket.socketpair()) for _ in range(8)]
    sizes = [65536, 100_000, 256 * 1024, 40_000, 256 * 1024 + 1, 4 << 20, 32 * 1024 + 1,
             1 << 20]
    glets = [closing(evloop.spawn(a.recv, n)) for (a, _), n in zip(pairs, sizes)]
    sleep(0.01)
    assert not any(g.dead for g in glets)
    payloads = [os.urandom(1 + i * 4001) for i in range(len(pairs))]  # each < its size
    for (_, b), data in reversed(list(zip(pairs, payloads))):
        b.sendall(data)
        sleep(0)
    evloop.joinall(glets, timeout=10, raise_error=True)
    assert [g.value for g in glets] == payloads
    a, b = pairs[0]
    b.sendall(b"peeked")
    assert a.recv(65536, evsocket.MSG_PEEK) == b"peeked"
    assert a.recv(65536) == b"peeked"
    big = os.urandom(3 << 20)
    evloop.spawn(b.sendall, big)
    assert hashlib.sha256(recv_exactly(a, len(big))).digest() == hashlib.sha256(big).digest()


# -------------------------------------------------------------------------------------
# makefile
# -------------------------------------------------------------------------------------

def test_makefile_binary_lines_read_and_write(tcp_pair):
    client, server = tcp_pair
    rfile = server.makefile("rb")
    wfile = server.makefile("wb")
    cfile = client.makefile("rwb")
    try:
        cfile.write(b"first line\nsecond line\nrest without newline")
        cfile.flush()
        client.shutdown(stdlib_socket.SHUT_WR)
        assert rfile.readline() == b"first line\n"
        assert rfile.read(7) == b"second "
        assert list(rfile) == [b"line\n", b"rest without newline"]
        assert rfile.read() == b""
        wfile.write(b"reply 1\n")
        wfile.writelines([b"reply 2\n", b"reply 3\n"])
        wfile.flush()
        assert cfile.readline() == b"reply 1\n"
        server.shutdown(stdlib_socket.SHUT_WR)
        assert cfile.readlines() == [b"reply 2\n", b"reply 3\n"]
    finally:
        rfile.close()
        wfile.close()
        cfile.close()


def test_makefile_readline_waits_cooperatively_for_the_rest_of_the_line(green_pair, ticker):
    a, b = green_pair
    rfile = a.makefile("rb")
    try:
        b.sendall(b"hel")
        evloop.spawn_later(0.05, b.sendall, b"lo\nworld\n")
        start = time.monotonic()
        assert rfile.readline() == b"hello\n"
        assert time.monotonic() - start >= 0.05 - EPS
        assert rfile.readline() == b"world\n"
        assert ticker.ticks > 0
    finally:
        rfile.close()


def test_makefile_text_mode(green_pair):
    a, b = green_pair
    writer = b.makefile("w", encoding="utf-8", newline="")
    reader = a.makefile("r", encoding="utf-8", newline="")
    try:
        writer.write("héllo wörld\r\nΣ line two\n")
        writer.write("✓ last\n")
        writer.flush()
        b.shutdown(stdlib_socket.SHUT_WR)
        assert reader.readline() == "héllo wörld\r\n"
        assert reader.readlines() == ["Σ line two\n", "✓ last\n"]
        assert reader.read() == ""
    finally:
        reader.close()
        writer.close()


def test_makefile_keeps_the_fd_open_until_the_file_is_closed(green_pair):
    a, b = green_pair
    rfile = a.makefile("rb")
    a.close()                      # the file still holds a reference
    assert a.fileno() != -1
    b.sendall(b"still open\n")
    assert rfile.readline() == b"still open\n"
    rfile.close()                  # now the socket really closes
    assert a.fileno() == -1


def test_makefile_after_a_timeout_refuses_to_read(green_pair):
    a, _b = green_pair
    a.settimeout(0.05)
    rfile = a.makefile("rb", buffering=0)
    try:
        with pytest.raises(stdlib_socket.timeout):
            rfile.read(1)
        with pytest.raises(OSError, match="timed out"):
            rfile.read(1)          # stdlib SocketIO: a timed-out stream is unusable
    finally:
        rfile.close()


# -------------------------------------------------------------------------------------
# sendall, sendfile, recv_into
# -------------------------------------------------------------------------------------

def test_sendall_4mib_to_a_slow_reader(tcp_pair, ticker):
    client, server = tcp_pair
    data = os.urandom(4 << 20)

    def slow_reader():
        digest, total = hashlib.sha256(), 0
        while True:
            chunk = server.recv(65536)
            if not chunk:
                return total, digest.hexdigest()
            digest.update(chunk)
            total += len(chunk)
            sleep(0.001)

    reader = evloop.spawn(slow_reader)
    ticks_before = ticker.ticks
    client.sendall(data)
    client.shutdown(stdlib_socket.SHUT_WR)
    assert reader.get(timeout=30) == (len(data), hashlib.sha256(data).hexdigest())
    assert ticker.ticks > ticks_before


def test_sendall_accepts_any_buffer(green_pair):
    a, b = green_pair
    a.sendall(memoryview(b"abcdef")[2:])
    a.sendall(bytearray(b"gh"))
    a.sendall(array.array("b", [105, 106]))
    assert recv_exactly(b, 8) == b"cdefghij"
    assert a.sendall(b"") is None


def test_send_returns_the_number_of_bytes_sent(green_pair, closing):
    a, b = green_pair
    assert a.send(b"hello") == 5
    assert b.recv(5) == b"hello"
    fill(a)
    evloop.spawn_later(0.05, drainer, b, closing)
    sent = a.send(b"y" * (4 << 20))   # waits for room, then sends what fits
    assert 0 < sent <= 4 << 20


@pytest.fixture
def big_file(tmp_path):
    data = os.urandom(1 << 20)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    return path, data


def drainer(sock, closing):
    """A greenlet reading and discarding everything sock receives (killed at the end)."""
    def drain():
        while sock.recv(1 << 20):
            pass
    return closing(evloop.spawn(outcome, drain))


def _read_all_in(sock):
    return evloop.spawn(recv_exactly, sock, 1 << 30)


def test_sendfile_1mib(tcp_pair, big_file, ticker):
    client, server = tcp_pair
    path, data = big_file
    reader = _read_all_in(server)
    with open(path, "rb") as f:
        assert client.sendfile(f) == len(data)
        assert f.tell() == len(data)
    client.shutdown(stdlib_socket.SHUT_WR)
    assert reader.get(timeout=30) == data


def test_sendfile_with_offset_and_count(tcp_pair, big_file):
    client, server = tcp_pair
    path, data = big_file
    reader = _read_all_in(server)
    with open(path, "rb") as f:
        assert client.sendfile(f, offset=1000, count=300_000) == 300_000
        assert f.tell() == 301_000
        assert client.sendfile(f, offset=len(data) - 10) == 10  # to the end
        assert f.tell() == len(data)
    client.shutdown(stdlib_socket.SHUT_WR)
    assert reader.get(timeout=30) == data[1000:301_000] + data[-10:]


def test_sendfile_from_a_non_regular_file_falls_back_to_send(tcp_pair):
    client, server = tcp_pair
    data = os.urandom(1 << 20)
    reader = _read_all_in(server)
    buf = io.BytesIO(data)
    assert client.sendfile(buf, offset=5, count=500_000) == 500_000
    assert buf.tell() == 500_005
    client.shutdown(stdlib_socket.SHUT_WR)
    assert reader.get(timeout=30) == data[5:500_005]


def test_sendfile_empty_file_and_bad_arguments(tcp_pair, udp, tmp_path):
    client, _server = tcp_pair
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with open(empty, "rb") as f:
        assert client.sendfile(f) == 0
    with open(empty, "r") as f, pytest.raises(ValueError):
        client.sendfile(f)                      # text mode
    with open(empty, "rb") as f:
        with pytest.raises(ValueError):
            udp[0].sendfile(f)                  # not SOCK_STREAM
        with pytest.raises(ValueError):
            client.sendfile(f, count=0)
        client.setblocking(False)
        assert client.sendfile(f) == 0          # as the stdlib: empty, nothing to refuse
    full = tmp_path / "full"
    full.write_bytes(b"x")
    with open(full, "rb") as f, pytest.raises(ValueError):
        client.sendfile(f)                      # the stdlib refuses non-blocking sockets


def test_recv_into_variants(green_pair):
    a, b = green_pair
    b.sendall(b"0123456789abcdef")
    buf = bytearray(4)
    assert a.recv_into(buf) == 4 and buf == b"0123"
    buf = bytearray(10)
    assert a.recv_into(buf, 3) == 3 and buf[:3] == b"456" and buf[3:] == bytes(7)
    view = memoryview(bytearray(10))
    assert a.recv_into(view[6:]) == 4 and bytes(view[6:]) == b"789a"
    with pytest.raises(ValueError):
        a.recv_into(bytearray(2), 5)            # buffer too small
    with pytest.raises(ValueError):
        a.recv_into(bytearray(2), -1)
    arr = array.array("b", bytes(5))
    assert a.recv_into(arr) == 5 and arr.tobytes() == b"bcdef"
    # MSG_PEEK leaves the data queued
    b.sendall(b"peek")
    assert a.recv(4, stdlib_socket.MSG_PEEK) == b"peek"
    assert a.recv(4) == b"peek"
    assert a.recv(0) == b""
    with pytest.raises(ValueError):
        a.recv(-1)


def test_recv_into_a_read_only_buffer_raises_type_error(green_pair):
    a, b = green_pair
    b.sendall(b"data")
    # the stdlib: TypeError("recv_into() argument 'buffer' must be read-write bytes-like
    # object, not bytes")
    with pytest.raises(TypeError):
        stdlib_socket.socket.recv_into(a, b"immutable")
    with pytest.raises(TypeError):
        a.recv_into(b"immutable")
    with pytest.raises(TypeError):
        a.recvfrom_into(b"immutable")
    assert a.recv(10) == b"data"


@pytest.mark.parametrize("timeout", [None, 5.0, 0.0])
def test_zero_length_reads_return_at_once_on_an_empty_socket(green_pair, timeout):
    # CPython answers these without waiting, whatever the timeout
    a, _b = green_pair
    a.settimeout(timeout)
    start = time.monotonic()
    assert a.recv(0) == b""
    assert a.recv_into(bytearray()) == 0
    assert time.monotonic() - start < SLACK


def test_a_second_reader_on_the_same_socket_gets_concurrent_object_use_error(green_pair):
    from evloop.exceptions import ConcurrentObjectUseError
    a, b = green_pair
    first = evloop.spawn(outcome, a.recv, 10)
    second = evloop.spawn(outcome, a.recv, 10)
    sleep(0.02)
    assert not first.dead
    kind, exc = second.get(timeout=5)
    assert kind == "raised" and isinstance(exc, ConcurrentObjectUseError)
    b.sendall(b"for the first")
    assert first.get(timeout=5) == ("ok", b"for the fi")


def test_recv_returns_empty_at_eof(green_pair):
    a, b = green_pair
    b.sendall(b"last")
    b.close()
    assert a.recv(10) == b"last"
    assert a.recv(10) == b""
    assert a.recv_into(bytearray(10)) == 0


# -------------------------------------------------------------------------------------
# datagrams, ancillary data
# -------------------------------------------------------------------------------------

def test_udp_sendto_recvfrom(udp):
    a, b = udp
    assert a.sendto(b"hello", b.getsockname()) == 5
    assert b.recvfrom(100) == (b"hello", a.getsockname())
    # recvfrom waits cooperatively for a datagram sent later
    evloop.spawn_later(0.05, b.sendto, b"later", a.getsockname())
    start = time.monotonic()
    assert a.recvfrom(100) == (b"later", b.getsockname())
    assert time.monotonic() - start >= 0.05 - EPS
    # flags form, and a datagram larger than the buffer is truncated
    assert a.sendto(b"0123456789", 0, b.getsockname()) == 10
    assert b.recvfrom(4) == (b"0123", a.getsockname())


def test_udp_recvfrom_into(udp):
    a, b = udp
    a.sendto(b"abcdef", b.getsockname())
    buf = bytearray(10)
    assert b.recvfrom_into(buf) == (6, a.getsockname())
    assert buf[:6] == b"abcdef"
    a.sendto(b"ghijkl", b.getsockname())
    buf = bytearray(10)
    n, addr = b.recvfrom_into(buf, 3)
    assert (n, addr) == (3, a.getsockname()) and buf[:3] == b"ghi"


def test_udp_connected_send_recv(udp):
    a, b = udp
    a.connect(b.getsockname())
    b.connect(a.getsockname())
    assert a.send(b"ping") == 4
    assert b.recv(10) == b"ping"
    b.sendall(b"pong")
    buf = bytearray(10)
    assert a.recv_into(buf) == 4 and buf[:4] == b"pong"


def test_recvmsg_sendmsg_pass_a_file_descriptor(green_pair, closing):
    a, b = green_pair
    r, w = os.pipe()
    closing(r, w)
    fd_size = array.array("i").itemsize
    receiver = evloop.spawn(b.recvmsg, 16, stdlib_socket.CMSG_SPACE(fd_size))
    sleep(0.01)
    assert not receiver.dead  # waiting for the message, cooperatively
    sent = a.sendmsg([b"fd", b"!"], [(stdlib_socket.SOL_SOCKET, stdlib_socket.SCM_RIGHTS,
                                       array.array("i", [r]).tobytes())])
    assert sent == 3
    msg, ancdata, flags, _addr = receiver.get(timeout=5)
    assert msg == b"fd!"
    assert flags & stdlib_socket.MSG_CTRUNC == 0
    assert len(ancdata) == 1
    level, kind, data = ancdata[0]
    assert (level, kind) == (stdlib_socket.SOL_SOCKET, stdlib_socket.SCM_RIGHTS)
    fds = array.array("i")
    fds.frombytes(data[:len(data) - len(data) % fd_size])
    received = fds[0]
    closing(received)
    assert received != r
    os.write(w, b"through the passed fd")
    assert os.read(received, 100) == b"through the passed fd"


def test_recvmsg_into_and_sendmsg_with_several_buffers(green_pair):
    a, b = green_pair
    receiver = evloop.spawn(b.recvmsg_into, [bytearray(3), bytearray(10)])
    sleep(0.01)
    assert not receiver.dead
    assert a.sendmsg([b"ab", memoryview(b"cdef"), bytearray(b"g")]) == 7
    nbytes, ancdata, flags, _addr = receiver.get(timeout=5)
    assert nbytes == 7 and ancdata == [] and flags == 0


# -------------------------------------------------------------------------------------
# accept, connect, shutdown, dup, detach, close
# -------------------------------------------------------------------------------------

def test_accept_waits_cooperatively_and_returns_an_evloop_socket(closing, ticker):
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    acceptor = evloop.spawn(listener.accept)
    sleep(0.05)
    assert not acceptor.dead
    client = closing(evsocket.socket())
    client.connect(listener.getsockname())
    conn, addr = acceptor.get(timeout=5)
    closing(conn)
    assert type(conn) is evsocket.socket
    assert addr == client.getsockname()
    assert conn.getpeername() == client.getsockname()
    assert conn.gettimeout() is None
    conn.sendall(b"welcome")
    assert client.recv(100) == b"welcome"
    assert ticker.ticks > 0


def test_connect_to_a_host_name_and_with_a_timeout(closing):
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    port = listener.getsockname()[1]
    client = closing(evsocket.socket())
    client.settimeout(5.0)
    client.connect(("localhost", port))   # resolved through the cooperative resolver
    conn, _ = listener.accept()
    closing(conn)
    assert conn.getpeername() == client.getsockname()
    assert client.gettimeout() == 5.0


def test_connect_ex_returns_zero_or_an_errno(closing):
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    client = closing(evsocket.socket())
    assert client.connect_ex(listener.getsockname()) == 0
    # a port nothing listens on: the errno, not an exception
    probe = closing(evsocket.socket())
    probe.bind(("127.0.0.1", 0))
    free_port = probe.getsockname()[1]
    probe.close()
    other = closing(evsocket.socket())
    assert other.connect_ex(("127.0.0.1", free_port)) == errno.ECONNREFUSED


def test_non_blocking_connect_then_wait_write(closing):
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    client = closing(evsocket.socket())
    client.setblocking(False)
    try:
        client.connect(listener.getsockname())
    except BlockingIOError as exc:
        assert exc.errno == errno.EINPROGRESS
    evsocket.wait_write(client.fileno(), timeout=5)
    assert client.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_ERROR) == 0
    assert client.getpeername() == listener.getsockname()


def test_shutdown(tcp_pair):
    client, server = tcp_pair
    client.shutdown(stdlib_socket.SHUT_WR)
    assert server.recv(10) == b""           # EOF for the peer...
    server.sendall(b"still flowing")        # ...while the other direction still works
    assert client.recv(100) == b"still flowing"
    server.shutdown(stdlib_socket.SHUT_RDWR)
    assert client.recv(10) == b""
    with pytest.raises(OSError):
        client.sendall(b"x" * 100000)


def test_dup_keeps_the_timeout_and_is_independent(green_pair):
    a, b = green_pair
    a.settimeout(0.7)
    d = a.dup()
    try:
        assert type(d) is evsocket.socket
        assert d.gettimeout() == 0.7
        assert d.fileno() != a.fileno()
        assert os.get_blocking(d.fileno()) is False
        a.close()
        b.sendall(b"via the dup")
        assert d.recv(100) == b"via the dup"
        d.setblocking(False)
        d2 = d.dup()
        assert d2.gettimeout() == 0.0
        d2.close()
    finally:
        d.close()


def test_detach_returns_the_fd_and_closes_the_object(green_pair, closing):
    a, b = green_pair
    a.settimeout(1.0)
    fd = a.detach()
    closing(fd)
    assert fd >= 0
    assert a.fileno() == -1
    assert "[closed]" in repr(a)
    with pytest.raises(OSError) as info:
        a.recv(1)
    assert info.value.errno == errno.EBADF
    a.close()                               # closing the detached object leaves the fd
    os.fstat(fd)
    again = evsocket.socket(fileno=fd)      # family and type detected from the fd
    assert again.family == stdlib_socket.AF_UNIX
    b.sendall(b"after detach")
    assert again.recv(100) == b"after detach"
    again.detach()


def test_close_is_idempotent_and_fileno_becomes_minus_one(closing):
    sock = evsocket.socket()
    fd = sock.fileno()
    assert fd >= 0
    sock.close()
    sock.close()
    assert sock.fileno() == -1
    with pytest.raises(OSError):
        sock.getsockname()
    for call in (lambda: sock.recv(1), lambda: sock.send(b"x"), lambda: sock.sendall(b"x"),
                 lambda: sock.recv_into(bytearray(1))):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF
    with evsocket.socket() as other:
        pass
    assert other.fileno() == -1


def test_socketpair(closing):
    a, b = closing(*evsocket.socketpair())
    assert type(a) is evsocket.socket and type(b) is evsocket.socket
    assert a.family == stdlib_socket.AF_UNIX and a.type == stdlib_socket.SOCK_STREAM
    a.sendall(b"ab")
    assert b.recv(10) == b"ab"
    c, d = closing(*evsocket.socketpair(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_DGRAM))
    assert c.type == stdlib_socket.SOCK_DGRAM
    c.send(b"one")
    c.send(b"two")
    assert d.recv(10) == b"one" and d.recv(10) == b"two"


def test_fromfd_duplicates_the_fd(green_pair, closing):
    a, b = green_pair
    a.settimeout(3.0)
    f = closing(evsocket.fromfd(a.fileno(), stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM))
    assert type(f) is evsocket.socket
    assert f.fileno() != a.fileno()
    assert os.get_blocking(f.fileno()) is False
    b.sendall(b"x")
    assert f.recv(1) == b"x"
    f.close()
    b.sendall(b"y")
    assert a.recv(1) == b"y"            # the original is untouched


def test_wrapping_a_stdlib_socket_fd(closing):
    std_a, std_b = stdlib_socket.socketpair()
    closing(std_b)
    ev_a = closing(evsocket.socket(fileno=std_a.detach()))
    assert ev_a.gettimeout() is None and os.get_blocking(ev_a.fileno()) is False
    evloop.spawn_later(0.02, std_b.sendall, b"from stdlib")
    assert ev_a.recv(100) == b"from stdlib"


# -------------------------------------------------------------------------------------
# create_connection, create_server
# -------------------------------------------------------------------------------------

def test_create_connection_timeouts(closing):
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    addr = listener.getsockname()
    c1 = closing(evsocket.create_connection(addr))
    assert type(c1) is evsocket.socket and c1.gettimeout() is None
    c2 = closing(evsocket.create_connection(addr, timeout=2.0))
    assert c2.gettimeout() == 2.0
    c3 = closing(evsocket.create_connection(addr, 3))
    assert c3.gettimeout() == 3.0
    evsocket.setdefaulttimeout(4.0)
    c4 = closing(evsocket.create_connection(addr))
    assert c4.gettimeout() == 4.0
    c5 = closing(evsocket.create_connection(addr, timeout=None))
    assert c5.gettimeout() is None
    evsocket.setdefaulttimeout(None)
    c6 = closing(evsocket.create_connection(("localhost", addr[1]), timeout=5))
    for client in (c1, c2, c3, c4, c5, c6):
        conn, peer = listener.accept()
        closing(conn)
        assert peer == client.getsockname()


def test_create_connection_source_address(closing):
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    client = closing(evsocket.create_connection(listener.getsockname(),
                                                source_address=("127.0.0.1", 0)))
    assert client.getsockname()[0] == "127.0.0.1"
    probe = evsocket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    client2 = closing(evsocket.create_connection(listener.getsockname(), timeout=5,
                                                 source_address=("127.0.0.1", port)))
    assert client2.getsockname() == ("127.0.0.1", port)
    peers = set()
    for _ in range(2):
        conn, peer = listener.accept()
        closing(conn)
        peers.add(peer)
    assert peers == {client.getsockname(), ("127.0.0.1", port)}


def test_create_server_ipv4(closing):
    listener = closing(evsocket.create_server(("127.0.0.1", 0), backlog=5))
    assert type(listener) is evsocket.socket
    assert listener.family == stdlib_socket.AF_INET
    assert listener.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_ACCEPTCONN) == 1
    assert listener.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR) != 0
    assert os.get_blocking(listener.fileno()) is False
    client = closing(evsocket.create_connection(listener.getsockname()))
    conn, _ = listener.accept()
    closing(conn)
    client.sendall(b"v4")
    assert conn.recv(10) == b"v4"


def _has_ipv6_loopback():
    if not stdlib_socket.has_ipv6:
        return False
    try:
        with stdlib_socket.socket(stdlib_socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_create_server_ipv6(closing):
    listener = closing(evsocket.create_server(("::1", 0), family=stdlib_socket.AF_INET6))
    assert listener.family == stdlib_socket.AF_INET6
    port = listener.getsockname()[1]
    client = closing(evsocket.create_connection(("::1", port), timeout=5))
    assert client.family == stdlib_socket.AF_INET6
    conn, addr = listener.accept()
    closing(conn)
    assert addr[0] == "::1"
    conn.sendall(b"v6")
    assert client.recv(10) == b"v6"
    if stdlib_socket.has_dualstack_ipv6():
        dual = closing(evsocket.create_server(("", 0), family=stdlib_socket.AF_INET6,
                                              dualstack_ipv6=True))
        v4 = closing(evsocket.create_connection(("127.0.0.1", dual.getsockname()[1])))
        conn4, _ = dual.accept()
        closing(conn4)
        v4.sendall(b"mapped")
        assert conn4.recv(10) == b"mapped"


# -------------------------------------------------------------------------------------
# name resolution (literals and 'localhost' only: no network)
# -------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("127.0.0.1", 80),
    ("127.0.0.1", "80", stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM),
    ("localhost", 8080, stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM),
    ("localhost", None, stdlib_socket.AF_INET),
    ("::1", 443, stdlib_socket.AF_INET6),
    (None, 0, stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM, 0, stdlib_socket.AI_PASSIVE),
])
def test_getaddrinfo_matches_the_stdlib(args):
    ours = evsocket.getaddrinfo(*args)
    theirs = stdlib_socket.getaddrinfo(*args)
    assert sorted(ours) == sorted(theirs)
    for family, kind, _proto, _canon, _addr in ours:
        assert isinstance(family, stdlib_socket.AddressFamily)
        assert isinstance(kind, stdlib_socket.SocketKind)


def test_host_lookups_match_the_stdlib():
    assert evsocket.gethostbyname("127.0.0.1") == "127.0.0.1"
    assert evsocket.gethostbyname("localhost") == stdlib_socket.gethostbyname("localhost")
    assert evsocket.gethostbyname_ex("localhost") == stdlib_socket.gethostbyname_ex("localhost")
    assert (evsocket.gethostbyname_ex("127.0.0.1")
            == stdlib_socket.gethostbyname_ex("127.0.0.1"))
    assert evsocket.gethostbyaddr("127.0.0.1") == stdlib_socket.gethostbyaddr("127.0.0.1")
    flags = stdlib_socket.NI_NUMERICHOST | stdlib_socket.NI_NUMERICSERV
    assert evsocket.getnameinfo(("127.0.0.1", 80), flags) == ("127.0.0.1", "80")
    assert (evsocket.getnameinfo(("127.0.0.1", 80), 0)
            == stdlib_socket.getnameinfo(("127.0.0.1", 80), 0))
    assert evsocket.getfqdn() == stdlib_socket.getfqdn()
    assert evsocket.getfqdn("127.0.0.1") == stdlib_socket.getfqdn("127.0.0.1")
    assert evsocket.getfqdn("localhost") == stdlib_socket.getfqdn("localhost")


def test_name_lookups_block_only_the_calling_greenlet(ticker):
    for _ in range(5):
        evsocket.getaddrinfo("localhost", 80, stdlib_socket.AF_INET)
        evsocket.gethostbyname("localhost")
    sleep(0.01)
    assert ticker.ticks > 0


# -------------------------------------------------------------------------------------
# the module's names
# -------------------------------------------------------------------------------------

# names the stdlib module merely imports for its own use (modules, enum bases)
_STDLIB_IMPORTS = {"IntEnum", "IntFlag"}


def _stdlib_public_names():
    return {name for name in dir(stdlib_socket)
            if not name.startswith("_") and name not in _STDLIB_IMPORTS
            and not isinstance(getattr(stdlib_socket, name), types.ModuleType)}


def test_every_stdlib_constant_and_exception_is_re_exported():
    missing = []
    for name in sorted(_stdlib_public_names()):
        value = getattr(stdlib_socket, name)
        if isinstance(value, int) or (isinstance(value, type)
                                      and issubclass(value, BaseException)):
            if not hasattr(evsocket, name):
                missing.append(name)
            else:
                assert getattr(evsocket, name) == value, name
    assert missing == []
    for name in ("error", "herror", "gaierror", "timeout"):
        assert getattr(evsocket, name) is getattr(stdlib_socket, name)


def test_every_stdlib_public_name_is_present():
    missing = sorted(name for name in _stdlib_public_names() if not hasattr(evsocket, name))
    assert missing == []
    assert set(stdlib_socket.__all__) <= set(evsocket.__all__)
    for name in ("wait_read", "wait_write", "socket", "create_connection", "getaddrinfo"):
        assert name in evsocket.__all__


def test_cooperative_functions_are_evloop_s_own():
    for name in ("socket", "SocketType", "socketpair", "fromfd", "create_connection",
                 "create_server", "getaddrinfo", "gethostbyname", "gethostbyname_ex",
                 "gethostbyaddr", "getnameinfo", "getfqdn"):
        assert getattr(evsocket, name) is not getattr(stdlib_socket, name), name


def test_pickling_a_socket_raises_type_error(green_pair):
    a, _b = green_pair
    with pytest.raises(TypeError):
        pickle.dumps(a)
    listener = evsocket.socket()
    try:
        with pytest.raises(TypeError):
            pickle.dumps(listener, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        listener.close()


# -------------------------------------------------------------------------------------
# wait_read / wait_write
# -------------------------------------------------------------------------------------

def test_wait_read_returns_when_data_arrives(green_pair, ticker):
    a, b = green_pair
    evloop.spawn_later(0.05, b.sendall, b"x")
    start = time.monotonic()
    evsocket.wait_read(a.fileno())
    assert time.monotonic() - start >= 0.05 - EPS
    assert a.recv(1) == b"x"
    assert ticker.ticks > 0


def test_wait_read_and_wait_write_timeouts(green_pair, closing):
    a, b = green_pair
    start = time.monotonic()
    with pytest.raises(stdlib_socket.timeout):
        evsocket.wait_read(a.fileno(), timeout=0.1)
    assert 0.1 - EPS <= time.monotonic() - start < SLACK
    evsocket.wait_write(a.fileno(), timeout=5)  # writable at once
    fill(a)
    start = time.monotonic()
    with pytest.raises(stdlib_socket.timeout):
        evsocket.wait_write(a.fileno(), timeout=0.1)
    assert 0.1 - EPS <= time.monotonic() - start < SLACK
    evloop.spawn_later(0.02, drainer, b, closing)
    start = time.monotonic()
    evsocket.wait_write(a.fileno(), timeout=5)
    assert 0.02 - EPS <= time.monotonic() - start < SLACK


@pytest.mark.parametrize("func", [evsocket.wait_read, evsocket.wait_write])
@pytest.mark.parametrize("timeout", [None, 1.0])
def test_wait_on_a_closed_fd_raises_ebadf(func, timeout):
    # README: bad input raises a clear exception before libev sees it (closed fd ->
    # OSError(EBADF)); gevent aborts in libev's assert here.
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    start = time.monotonic()
    with pytest.raises(OSError) as info:
        func(r, timeout) if timeout is not None else func(r)
    assert info.value.errno == errno.EBADF
    assert time.monotonic() - start < 0.5


# -------------------------------------------------------------------------------------
# closing a socket another greenlet waits on
# -------------------------------------------------------------------------------------

def _blocked_recv(closing):
    a, b = closing(*evsocket.socketpair())
    return a, lambda: a.recv(10)


def _blocked_recv_into(closing):
    a, b = closing(*evsocket.socketpair())
    return a, lambda: a.recv_into(bytearray(10))


def _blocked_recvfrom(closing):
    s = _dgram(closing)
    return s, lambda: s.recvfrom(10)


def _blocked_recvmsg(closing):
    a, b = closing(*evsocket.socketpair())
    return a, lambda: a.recvmsg(10)


def _blocked_accept(closing):
    s = _listener(closing)
    return s, s.accept


def _blocked_sendall(closing):
    a, b = closing(*evsocket.socketpair())
    return a, lambda: a.sendall(b"x" * (8 << 20))


def _blocked_with_timeout(closing):
    a, b = closing(*evsocket.socketpair())
    a.settimeout(30)
    return a, lambda: a.recv(10)


BLOCKED = {"recv": _blocked_recv, "recv_into": _blocked_recv_into,
           "recvfrom": _blocked_recvfrom, "recvmsg": _blocked_recvmsg,
           "accept": _blocked_accept, "sendall": _blocked_sendall,
           "recv with a timeout": _blocked_with_timeout}


@pytest.mark.parametrize("op", sorted(BLOCKED))
def test_close_wakes_a_greenlet_blocked_on_the_socket_with_ebadf(closing, op):
    loop = get_hub().loop
    before = loop.activecnt
    sock, call = BLOCKED[op](closing)
    waiter = evloop.spawn(outcome, call)
    sleep(0.05)
    assert not waiter.dead
    assert loop.activecnt > before       # the wait's io watcher
    start = time.monotonic()
    sock.close()
    kind, exc = waiter.get(timeout=5)
    assert time.monotonic() - start < SLACK
    assert kind == "raised" and isinstance(exc, OSError), exc
    assert exc.errno == errno.EBADF
    assert loop.activecnt == before      # the watcher (and any timer) is gone
    assert sock.fileno() == -1


def test_close_wakes_every_greenlet_waiting_on_the_socket(closing):
    loop = get_hub().loop
    before = loop.activecnt
    a, b = closing(*evsocket.socketpair())
    fill(a)
    reader = evloop.spawn(outcome, a.recv, 10)
    writer = evloop.spawn(outcome, a.sendall, b"x" * 100000)
    sleep(0.05)
    assert not reader.dead and not writer.dead
    a.close()
    for glet in (reader, writer):
        kind, exc = glet.get(timeout=5)
        assert kind == "raised" and exc.errno == errno.EBADF
    assert loop.activecnt == before


def test_detach_wakes_a_waiting_greenlet_and_leaves_no_watcher(closing):
    loop = get_hub().loop
    before = loop.activecnt
    a, b = closing(*evsocket.socketpair())
    waiter = evloop.spawn(outcome, a.recv, 10)
    sleep(0.05)
    fd = a.detach()
    closing(fd)
    kind, exc = waiter.get(timeout=5)
    assert kind == "raised" and exc.errno == errno.EBADF
    assert loop.activecnt == before
    b.sendall(b"fd still open")
    assert os.read(fd, 100) == b"fd still open"


def _wait_read_fileno(sock):
    evsocket.wait_read(sock.fileno())


def _nb_read(sock):
    from evloop import os as evos
    return evos.nb_read(sock.fileno(), 10)


def _select(sock):
    from evloop import select
    return select.select([sock], [], [])


def _poll(sock):
    from evloop import select
    p = select.poll()
    p.register(sock, select.POLLIN)
    return p.poll()


def _selector(sock):
    from evloop import selectors
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ)
        return [(key.fd, events) for key, events in sel.select()]


# waits on the socket's fd that do not go through the socket's own methods; the first two
# block in the hub like recv (EBADF, as the socket's own waiters get), the others have a
# callback that finds the closed fd when it runs
OTHER_WAITS = {"wait_read(fileno)": (_wait_read_fileno, "ebadf"),
               "os.nb_read": (_nb_read, "ebadf"), "select": (_select, "returns"),
               "poll": (_poll, "returns"), "selectors": (_selector, "returns")}


@pytest.mark.parametrize("op", sorted(OTHER_WAITS))
def test_close_wakes_greenlets_waiting_on_the_fd_by_other_means(closing, op):
    # These waited on an fd that epoll had silently forgotten (close() only woke the
    # socket's own waiters): without a timeout they never returned.
    call, expect = OTHER_WAITS[op]
    a, b = closing(*evsocket.socketpair())
    waiter = evloop.spawn(outcome, call, a)
    sleep(0.05)
    assert not waiter.dead
    start = time.monotonic()
    a.close()
    kind, result = waiter.get(timeout=5)
    assert time.monotonic() - start < SLACK
    if expect == "ebadf":
        assert kind == "raised" and isinstance(result, OSError), result
        assert result.errno == errno.EBADF
    else:
        assert kind == "ok", result   # what a closed fd looks like to each (ready, POLLNVAL)


def test_detach_leaves_other_waiters_on_the_fd_waiting(closing):
    # detach() hands the fd on: only the socket's own waiters are woken
    a, b = closing(*evsocket.socketpair())
    waiter = evloop.spawn(outcome, _wait_read_fileno, a)
    sleep(0.05)
    fd = closing(a.detach())
    sleep(0.05)
    assert not waiter.dead
    b.sendall(b"ready")
    assert waiter.get(timeout=5) == ("ok", None)
    assert os.read(fd, 100) == b"ready"


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_an_evloop_timeout_interrupts_a_blocked_operation_and_cleans_up(closing, timeout):
    loop = get_hub().loop
    before = loop.activecnt
    a, b = closing(*evsocket.socketpair())
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    a.settimeout(timeout)
    listener.settimeout(timeout)
    for call in (lambda: a.recv(10), listener.accept, lambda: a.recvfrom(10)):
        start = time.monotonic()
        with pytest.raises(evloop.Timeout):
            with evloop.Timeout(0.05):
                call()
        assert time.monotonic() - start >= 0.05 - EPS
        assert loop.activecnt == before
    b.sendall(b"ok")
    assert a.recv(10) == b"ok"


def test_killing_a_blocked_greenlet_removes_its_watcher(closing):
    loop = get_hub().loop
    before = loop.activecnt
    a, b = closing(*evsocket.socketpair())
    a.settimeout(30)
    waiter = evloop.spawn(a.recv, 10)
    sleep(0.02)
    assert loop.activecnt > before
    waiter.kill(block=True, timeout=5)
    assert loop.activecnt == before
    b.sendall(b"after kill")          # the socket is still fine for the next reader
    assert a.recv(100) == b"after kill"
