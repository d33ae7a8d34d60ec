"""Tests for evloop.ssl: the stdlib ssl API over evloop's cooperative sockets.

Client and server run in one process over loopback (the server side in a greenlet), on a
certificate chain made for the session: a test CA, a server certificate for 'localhost'
and 127.0.0.1, and a client certificate. TLS clients after monkey-patching (urllib,
requests) and the untrusted-certificate fault are in test_clients.py.

Each test closes what it opens and kills what it spawns; no_leaked_watchers checks that
the hub's loop has no more active watchers after a test than before it.

Timing rules (a busy 2-core machine): lower bounds, or upper bounds with a wide margin.
"""
import errno
import hashlib
import os
import socket as stdlib_socket
import ssl as stdlib_ssl
import time

import pytest

import evloop
from evloop import socket as evsocket
from evloop import ssl as evssl
from evloop.hub import get_hub, sleep

from _helpers import client_context, server_context

# the hub's loop has no more active watchers after a test than before it
pytestmark = pytest.mark.usefixtures("no_leaked_watchers")

EPS = 0.005
SLACK = 5.0
MiB = 1 << 20


# -------------------------------------------------------------------------------------
# certificates (one set per session)
# -------------------------------------------------------------------------------------

# -------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------

def outcome(func, *args, **kwargs):
    try:
        return "ok", func(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        return "raised", exc


def connect_tls(certs, closing, *, server_ctx=None, client_ctx=None,
                server_hostname="localhost", server_delay=0.0, **client_kwargs):
    """(client, server) SSLSockets over 127.0.0.1; the server side handshakes in a
    greenlet. Raises the client's handshake error; the server's is in the greenlet."""
    server_ctx = server_ctx or server_context(certs)
    client_ctx = client_ctx or client_context(certs)
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))

    def serve():
        conn, _ = listener.accept()
        closing(conn)
        if server_delay:
            sleep(server_delay)
        return closing(server_ctx.wrap_socket(conn, server_side=True))

    acceptor = closing(evloop.spawn(outcome, serve))
    raw = closing(evsocket.create_connection(listener.getsockname(), timeout=10))
    try:
        client = closing(client_ctx.wrap_socket(raw, server_hostname=server_hostname,
                                                **client_kwargs))
    except BaseException:
        acceptor.join(timeout=5)
        raise
    kind, server = acceptor.get(timeout=10)
    if kind == "raised":
        raise server
    return client, server


@pytest.fixture
def tls(certs, closing):
    return connect_tls(certs, closing)


def recv_exactly(sock, n):
    chunks, left = [], n
    while left:
        data = sock.recv(min(left, 65536))
        if not data:
            break
        chunks.append(data)
        left -= len(data)
    return b"".join(chunks)


# -------------------------------------------------------------------------------------
# handshake and connection facts
# -------------------------------------------------------------------------------------

def test_handshake_over_loopback(tls, certs):
    client, server = tls
    for sock in (client, server):
        assert type(sock) is evssl.SSLSocket
        assert isinstance(sock, stdlib_ssl.SSLSocket)
        assert isinstance(sock, evsocket.socket)
        assert os.get_blocking(sock.fileno()) is False
    assert client.server_side is False and server.server_side is True
    assert client.server_hostname == "localhost"
    assert client.version() in ("TLSv1.2", "TLSv1.3")
    assert client.version() == server.version()
    name, protocol, bits = client.cipher()
    assert isinstance(name, str) and protocol == client.version() and bits >= 128
    assert server.cipher()[0] == name
    assert server.shared_ciphers()
    assert client.compression() is None


def test_write_and_read(tls):
    client, server = tls
    assert client.write(b"hello tls") == 9
    assert server.read(1024) == b"hello tls"
    server.write(b"0123456789")
    buf = bytearray(20)
    n = client.read(4, buf)
    assert n == 4 and buf[:4] == b"0123"
    assert client.read() == b"456789"
    assert client.pending() == 0


def test_sendall_and_recv_1mib_each_way(tls):
    client, server = tls
    up = os.urandom(MiB)
    down = os.urandom(MiB)
    sender = evloop.spawn(client.sendall, up)
    assert recv_exactly(server, MiB) == up
    sender.get(timeout=10)

    def receive_into():
        buf = bytearray(MiB)
        view = memoryview(buf)
        got = 0
        while got < MiB:
            n = client.recv_into(view[got:], min(65536, MiB - got))
            assert n > 0
            got += n
        return bytes(buf)

    receiver = evloop.spawn(receive_into)
    sent = 0
    while sent < MiB:
        sent += server.send(down[sent:sent + 200_000])
    assert receiver.get(timeout=10) == down


def test_send_waits_cooperatively_while_the_peer_does_not_read(tls, closing, ticker):
    # a full socket buffer means "wait for the fd", never SSLWantWriteError on a
    # blocking SSLSocket (the stdlib's SSLSocket.send calls _sslobj.write directly)
    client, server = tls
    reader = closing(evloop.spawn_later(0.2, recv_exactly, server, 8 * MiB))
    start = time.monotonic()
    sent = 0
    while sent < 8 * MiB:
        sent += client.send(b"s" * (8 * MiB - sent))
    assert time.monotonic() - start >= 0.2 - EPS
    assert reader.get(timeout=30) == b"s" * (8 * MiB)
    assert ticker.ticks > 0


def test_sendall_timeout_to_a_peer_that_does_not_read(tls):
    client, _server = tls
    client.settimeout(0.2)
    start = time.monotonic()
    with pytest.raises(stdlib_socket.timeout):
        client.sendall(b"t" * (16 * MiB))
    assert 0.2 - EPS <= time.monotonic() - start < 0.2 + SLACK


def test_ssl_listening_socket_accept_handshakes(certs, closing):
    listener = closing(server_context(certs).wrap_socket(
        evsocket.create_server(("127.0.0.1", 0)), server_side=True))
    assert type(listener) is evssl.SSLSocket
    acceptor = closing(evloop.spawn(listener.accept))
    sleep(0.02)
    assert not acceptor.dead
    raw = closing(evsocket.create_connection(listener.getsockname(), timeout=10))
    client = closing(client_context(certs).wrap_socket(raw, server_hostname="localhost"))
    conn, addr = acceptor.get(timeout=10)
    closing(conn)
    assert type(conn) is evssl.SSLSocket and conn.server_side
    assert addr == client.getsockname()
    conn.sendall(b"accepted over tls")
    assert recv_exactly(client, 17) == b"accepted over tls"


def test_send_returns_a_count_and_recv_returns_what_is_there(tls):
    client, server = tls
    assert 0 < client.send(b"x" * 100) <= 100
    assert server.recv(1000) == b"x" * 100
    server.sendall(memoryview(b"abcdef")[1:4])
    assert client.recv(10) == b"bcd"


def test_large_transfer_keeps_other_greenlets_running(tls, ticker):
    client, server = tls
    data = os.urandom(4 * MiB)

    def slow_reader():
        digest, total = hashlib.sha256(), 0
        while total < len(data):
            chunk = server.recv(65536)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
            sleep(0.001)
        return total, digest.hexdigest()

    reader = evloop.spawn(slow_reader)
    before = ticker.ticks
    client.sendall(data)
    assert reader.get(timeout=30) == (len(data), hashlib.sha256(data).hexdigest())
    assert ticker.ticks > before


def test_handshake_waits_cooperatively(certs, closing, ticker):
    start = time.monotonic()
    client, server = connect_tls(certs, closing, server_delay=0.2)
    assert time.monotonic() - start >= 0.2 - EPS
    assert ticker.ticks >= 3           # the hub ran other greenlets during the handshake
    client.sendall(b"ok")
    assert server.recv(2) == b"ok"


def test_makefile(tls):
    client, server = tls
    srw = server.makefile("rwb")
    crw = client.makefile("rwb")
    try:
        crw.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        crw.flush()
        assert srw.readline() == b"GET / HTTP/1.0\r\n"
        assert srw.readline() == b"Host: x\r\n"
        assert srw.readline() == b"\r\n"
        srw.write(b"HTTP/1.0 200 OK\r\n\r\nbody")
        srw.flush()
        assert crw.readline() == b"HTTP/1.0 200 OK\r\n"
        assert crw.read(6) == b"\r\nbody"
    finally:
        srw.close()
        crw.close()
    text = client.makefile("w", encoding="utf-8")
    try:
        text.write("ünïcode line\n")
        text.flush()
    finally:
        text.close()
    rtext = server.makefile("r", encoding="utf-8")
    try:
        assert rtext.readline() == "ünïcode line\n"
    finally:
        rtext.close()


def test_sendfile_over_tls(tls, tmp_path):
    client, server = tls
    data = os.urandom(MiB)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    reader = evloop.spawn(recv_exactly, server, MiB)
    with open(path, "rb") as f:
        assert client.sendfile(f) == MiB
    assert reader.get(timeout=10) == data


def test_unwrap_back_to_plain_text(tls):
    client, server = tls
    client.sendall(b"STARTTLS-END")
    assert server.recv(100) == b"STARTTLS-END"
    server_unwrap = evloop.spawn(server.unwrap)
    plain_client = client.unwrap()
    plain_server = server_unwrap.get(timeout=10)
    for plain in (plain_client, plain_server):
        assert isinstance(plain, evsocket.socket)
    with pytest.raises(ValueError):
        client.read(10)
    with pytest.raises(ValueError):
        client.unwrap()              # nothing left to unwrap
    # plain text now, in both directions, still cooperative
    plain_client.sendall(b"plain hello")
    assert recv_exactly(plain_server, 11) == b"plain hello"
    evloop.spawn_later(0.05, plain_server.sendall, b"plain reply")
    start = time.monotonic()
    assert recv_exactly(plain_client, 11) == b"plain reply"
    assert time.monotonic() - start >= 0.05 - EPS
    # the bytes on the wire are the plain bytes: read them with a raw stdlib recv
    plain_client.sendall(b"raw")
    evsocket.wait_read(plain_server.fileno(), timeout=5)
    assert stdlib_socket.socket.recv(plain_server, 10) == b"raw"


def test_getpeercert(tls, certs):
    client, server = tls
    cert = client.getpeercert()
    assert isinstance(cert, dict)
    assert (("commonName", "localhost"),) in cert["subject"]
    assert (("commonName", "evloop test CA"),) in cert["issuer"]
    assert ("DNS", "localhost") in cert["subjectAltName"]
    assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]
    der = client.getpeercert(binary_form=True)
    with open(certs["cert"]) as f:
        assert der == stdlib_ssl.PEM_cert_to_DER_cert(f.read())
    assert server.getpeercert() is None   # no client certificate was asked for


def test_getpeercert_with_a_client_certificate(certs, closing):
    server_ctx = server_context(certs)
    server_ctx.verify_mode = stdlib_ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(certs["ca"])
    client_ctx = client_context(certs)
    client_ctx.load_cert_chain(certs["client_cert"], certs["client_key"])
    client, server = connect_tls(certs, closing, server_ctx=server_ctx, client_ctx=client_ctx)
    assert (("commonName", "evloop client"),) in server.getpeercert()["subject"]
    assert isinstance(server.getpeercert(True), bytes)


def test_alpn_selected_on_both_ends(certs, closing):
    server_ctx = server_context(certs)
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    client_ctx = client_context(certs)
    client_ctx.set_alpn_protocols(["http/1.1", "spdy/3"])
    client, server = connect_tls(certs, closing, server_ctx=server_ctx, client_ctx=client_ctx)
    assert client.selected_alpn_protocol() == "http/1.1"
    assert server.selected_alpn_protocol() == "http/1.1"


def test_no_alpn_means_none(tls):
    client, server = tls
    assert client.selected_alpn_protocol() is None
    assert server.selected_alpn_protocol() is None


def test_ip_address_server_hostname(certs, closing):
    client, _server = connect_tls(certs, closing, server_hostname="127.0.0.1")
    assert client.getpeercert()["subject"]


def test_server_hostname_mismatch_raises_cert_verification_error(certs, closing):
    assert evssl.SSLCertVerificationError is stdlib_ssl.SSLCertVerificationError
    with pytest.raises(stdlib_ssl.SSLCertVerificationError) as info:
        connect_tls(certs, closing, server_hostname="wrong.example")
    assert info.value.verify_code == 62   # X509_V_ERR_HOSTNAME_MISMATCH
    assert "mismatch" in info.value.verify_message.lower()
    assert isinstance(info.value, stdlib_ssl.SSLError)


def test_do_handshake_on_connect_false_then_explicit_handshake(certs, closing):
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    server_ctx = server_context(certs)

    def serve():
        conn, _ = listener.accept()
        closing(conn)
        return closing(server_ctx.wrap_socket(conn, server_side=True))

    acceptor = closing(evloop.spawn(serve))
    raw = closing(evsocket.create_connection(listener.getsockname()))
    client = closing(client_context(certs).wrap_socket(
        raw, server_hostname="localhost", do_handshake_on_connect=False))
    assert client.version() is None and client.cipher() is None  # no handshake yet
    sleep(0.05)
    assert not acceptor.dead                                      # server still waits
    client.do_handshake()
    assert client.version() is not None
    server = acceptor.get(timeout=10)
    client.sendall(b"after explicit handshake")
    assert recv_exactly(server, 24) == b"after explicit handshake"


def test_connect_on_a_wrapped_unconnected_socket_handshakes(certs, closing):
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    server_ctx = server_context(certs)

    def serve():
        conn, _ = listener.accept()
        closing(conn)
        tls = closing(server_ctx.wrap_socket(conn, server_side=True))
        tls.sendall(b"hi " + tls.recv(10))

    server = closing(evloop.spawn(serve))
    client = closing(client_context(certs).wrap_socket(evsocket.socket(),
                                                       server_hostname="localhost"))
    assert type(client) is evssl.SSLSocket
    client.connect(listener.getsockname())
    assert client.version() is not None
    client.sendall(b"there")
    assert recv_exactly(client, 8) == b"hi there"
    server.get(timeout=10)


def test_handshake_timeout_against_a_server_that_never_speaks_tls(certs, closing, ticker):
    # the kernel completes the TCP handshake for the listener; nothing ever answers TLS
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    raw = closing(evsocket.create_connection(listener.getsockname(), timeout=0.3))
    start = time.monotonic()
    with pytest.raises(stdlib_socket.timeout):
        client_context(certs).wrap_socket(raw, server_hostname="localhost")
    assert 0.3 - EPS <= time.monotonic() - start < 0.3 + SLACK
    assert ticker.ticks > 0


def test_read_timeout(tls):
    client, server = tls
    client.settimeout(0.2)
    start = time.monotonic()
    with pytest.raises(stdlib_socket.timeout):
        client.recv(10)
    assert 0.2 - EPS <= time.monotonic() - start < 0.2 + SLACK
    server.sendall(b"late")
    assert client.recv(10) == b"late"    # still usable


def test_non_blocking_ssl_socket_raises_ssl_want_read(tls):
    client, server = tls
    client.setblocking(False)
    for call in (lambda: client.recv(10), lambda: client.read(10),
                 lambda: client.recv_into(bytearray(10))):
        with pytest.raises(stdlib_ssl.SSLWantReadError):
            call()
    server.sendall(b"now")
    evsocket.wait_read(client.fileno(), timeout=5)
    data = b""
    deadline = time.monotonic() + SLACK
    while not data and time.monotonic() < deadline:
        try:
            data = client.recv(10)
        except stdlib_ssl.SSLWantReadError:
            evsocket.wait_read(client.fileno(), timeout=5)
    assert data == b"now"


def test_non_blocking_handshake(certs, closing):
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    server_ctx = server_context(certs)

    def serve():
        conn, _ = listener.accept()
        closing(conn)
        sleep(0.05)
        return closing(server_ctx.wrap_socket(conn, server_side=True))

    acceptor = closing(evloop.spawn(serve))
    raw = closing(evsocket.create_connection(listener.getsockname()))
    raw.setblocking(False)
    ctx = client_context(certs)
    with pytest.raises(ValueError):   # the stdlib's rule for non-blocking sockets
        ctx.wrap_socket(raw.dup(), server_hostname="localhost")
    client = closing(ctx.wrap_socket(raw, server_hostname="localhost",
                                     do_handshake_on_connect=False))
    with pytest.raises(stdlib_ssl.SSLWantReadError):
        client.do_handshake()
    client.do_handshake(block=True)  # blocks (cooperatively) until done
    assert client.version() is not None
    assert client.gettimeout() == 0.0
    acceptor.get(timeout=10)


def test_close_wakes_a_greenlet_blocked_in_an_ssl_read(tls):
    loop = get_hub().loop
    client, _server = tls
    before = loop.activecnt
    reader = evloop.spawn(outcome, client.recv, 10)
    sleep(0.05)
    assert not reader.dead
    client.close()
    kind, exc = reader.get(timeout=5)
    assert kind == "raised" and isinstance(exc, OSError), exc
    assert exc.errno == errno.EBADF
    assert loop.activecnt == before


@pytest.mark.parametrize("suppress", [True, False])
def test_peer_closing_without_close_notify(certs, closing, suppress):
    client, server = connect_tls(certs, closing, suppress_ragged_eofs=suppress)
    server.sendall(b"bye")
    evloop.spawn_later(0.05, server.close)    # a TCP close, no TLS close_notify
    assert client.recv(10) == b"bye"
    if suppress:
        assert client.recv(10) == b""
        assert client.recv_into(bytearray(10)) == 0
    else:
        with pytest.raises(stdlib_ssl.SSLEOFError):
            client.recv(10)


def test_dup_is_refused_as_in_the_stdlib(tls):
    client, _server = tls
    with pytest.raises(NotImplementedError):
        client.dup()


# -------------------------------------------------------------------------------------
# contexts, module functions, names
# -------------------------------------------------------------------------------------

def test_create_default_context_returns_evloop_s_context(certs, closing):
    ctx = evssl.create_default_context()
    assert type(ctx) is evssl.SSLContext
    assert isinstance(ctx, stdlib_ssl.SSLContext)
    assert ctx.protocol == stdlib_ssl.PROTOCOL_TLS_CLIENT
    assert ctx.verify_mode == stdlib_ssl.CERT_REQUIRED and ctx.check_hostname is True
    assert evssl.SSLContext.sslsocket_class is evssl.SSLSocket
    assert evssl.create_default_context is not stdlib_ssl.create_default_context
    wrapped = closing(ctx.wrap_socket(evsocket.socket(), server_hostname="localhost"))
    assert type(wrapped) is evssl.SSLSocket
    # a stdlib socket handed to evloop's context comes back cooperative too
    std = stdlib_socket.socket()
    wrapped2 = closing(ctx.wrap_socket(std, server_hostname="localhost"))
    assert type(wrapped2) is evssl.SSLSocket and os.get_blocking(wrapped2.fileno()) is False
    server_side = evssl.create_default_context(stdlib_ssl.Purpose.CLIENT_AUTH)
    assert type(server_side) is evssl.SSLContext
    assert server_side.protocol == stdlib_ssl.PROTOCOL_TLS_SERVER
    with open(certs["ca"]) as f:
        cadata_ctx = evssl.create_default_context(cadata=f.read())
    assert cadata_ctx.cert_store_stats()["x509_ca"] == 1
    with pytest.raises(TypeError):
        evssl.create_default_context("not a purpose")


def test_get_server_certificate(certs, closing, ticker):
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    server_ctx = server_context(certs)

    def serve():
        while True:
            conn, _ = listener.accept()
            try:
                tls = server_ctx.wrap_socket(conn, server_side=True)
                tls.recv(10)         # until the client goes away
                tls.close()
            except OSError:
                conn.close()

    closing(evloop.spawn(serve))
    addr = listener.getsockname()
    with open(certs["cert"]) as f:
        expected = stdlib_ssl.PEM_cert_to_DER_cert(f.read())
    pem = evssl.get_server_certificate(addr)
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert stdlib_ssl.PEM_cert_to_DER_cert(pem) == expected
    pem = evssl.get_server_certificate(addr, ca_certs=certs["ca"], timeout=5)
    assert stdlib_ssl.PEM_cert_to_DER_cert(pem) == expected
    assert ticker.ticks > 0


def test_get_server_certificate_timeout(closing):
    listener = closing(evsocket.create_server(("127.0.0.1", 0)))
    start = time.monotonic()
    with pytest.raises(stdlib_socket.timeout):
        evssl.get_server_certificate(listener.getsockname(), timeout=0.2)
    assert 0.2 - EPS <= time.monotonic() - start < SLACK


def test_stdlib_context_in_stream_server_serves_cooperatively(certs, closing, ticker):
    from evloop.server import StreamServer

    seen = []

    def handle(sock, address):
        seen.append(type(sock))
        sock.sendall(b"echo:" + sock.recv(100))

    server = StreamServer(("127.0.0.1", 0), handle,
                          ssl_context=server_context(certs, cls=stdlib_ssl.SSLContext))
    server.start()
    try:
        # a client that connects and never starts TLS must not hold up the others
        stalled = closing(evsocket.create_connection(("127.0.0.1", server.server_port)))
        sleep(0.02)
        for i in range(3):
            raw = evsocket.create_connection(("127.0.0.1", server.server_port), timeout=10)
            with client_context(certs).wrap_socket(raw, server_hostname="localhost") as c:
                c.sendall(b"%d" % i)
                assert recv_exactly(c, 6) == b"echo:%d" % i
        assert seen == [evssl.SSLSocket] * 3
        assert ticker.ticks > 0
        stalled.close()
    finally:
        server.stop(timeout=1)


def test_every_stdlib_ssl_public_name_is_present():
    import types
    names = {n for n in dir(stdlib_ssl) if not n.startswith("_")
             and not isinstance(getattr(stdlib_ssl, n), types.ModuleType)}
    assert sorted(n for n in names if not hasattr(evssl, n)) == []
    for name in ("SSLError", "SSLZeroReturnError", "SSLWantReadError", "SSLWantWriteError",
                 "SSLSyscallError", "SSLEOFError", "SSLCertVerificationError",
                 "CertificateError", "PROTOCOL_TLS_CLIENT", "CERT_REQUIRED", "Purpose",
                 "TLSVersion", "DER_cert_to_PEM_cert", "HAS_ALPN", "OPENSSL_VERSION"):
        assert getattr(evssl, name) is getattr(stdlib_ssl, name), name
    for name in ("SSLContext", "SSLSocket", "create_default_context", "get_server_certificate"):
        assert getattr(evssl, name) is not getattr(stdlib_ssl, name), name
        assert name in evssl.__all__
