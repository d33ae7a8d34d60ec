"""Real clients and servers over loopback after ``evloop.monkey.patch_all()``.

Nothing is mocked: urllib.request, http.client and http.server from the standard library,
``requests`` and ``urllib3``, a TLS server on a certificate made for the test, an
evloop StreamServer with 1,000 concurrent echo connections, and the faults a network
client meets (refused, timed out, reset, stalled, closed under a waiting greenlet, fd
numbers reused, unknown host names).

Each scenario is a program run in a fresh interpreter (patching is process-wide and cannot
be undone) by ``run_python`` from test_monkey.py, which checks its exit status and output.

Timing rules (a busy 2-core machine): lower bounds, or upper bounds with a wide margin.
"""
import datetime
import ipaddress
import shutil
import subprocess
import textwrap

import pytest

from _helpers import lines, run_python

# The programs below start with this: patch first, then a small threaded HTTP server
# (http.server's ThreadingHTTPServer: one green thread per request) whose handler sleeps
# on /sleep/<seconds>, echoes POST bodies reversed and reports what it saw as JSON.
SERVER = textwrap.dedent('''
    from evloop import monkey
    monkey.patch_all()
    import http.server, json, socket, ssl, sys, threading, time
    import evloop

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def reply(self, body, ctype="application/json"):
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.startswith("/sleep/"):
                time.sleep(float(self.path.split("/")[2]))
            self.reply(json.dumps({"path": self.path,
                                   "thread": threading.current_thread().name,
                                   "ua": self.headers.get("User-Agent", "")}).encode())

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.reply(body[::-1], "application/octet-stream")

        def log_message(self, *args):
            pass

    def serve(server_class=http.server.ThreadingHTTPServer, context=None):
        server = server_class(("127.0.0.1", 0), Handler)
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, server.server_address[1]

    def timed(func, *args):
        """Run func(*args) in 3 greenlets at once; (results, seconds)."""
        start = time.monotonic()
        glets = [evloop.spawn(func, *args) for _ in range(3)]
        evloop.joinall(glets, raise_error=True, timeout=30)
        return [g.value for g in glets], time.monotonic() - start
''')


def run_program(code: str, *args: str) -> list:
    return lines(run_python(SERVER + textwrap.dedent(code), *args))


# -------------------------------------------------------------------------------------
# the reference case, and the standard library's clients
# -------------------------------------------------------------------------------------

def test_three_urlopen_calls_take_the_time_of_the_slowest():
    out = run_program("""
        import urllib.request
        server, port = serve()

        def fetch():
            url = f"http://127.0.0.1:{port}/sleep/0.3"
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())

        fetch()                                 # warm up (imports, first connection)
        results, elapsed = timed(fetch)
        assert 0.25 < elapsed < 0.8, elapsed    # the slowest (0.3 s), not the sum (0.9 s)
        assert len({r["thread"] for r in results}) == 3, results   # 3 server threads
        print("ok", round(elapsed, 2))
        server.shutdown()
    """)
    assert out[0].startswith("ok"), out


def test_http_client_get_post_keepalive_on_a_plain_http_server():
    out = run_program("""
        import http.client, http.server, os
        # a non-threading HTTPServer, its serve_forever in a greenlet
        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        evloop.spawn(server.serve_forever)
        port = server.server_address[1]

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/hello?x=1", headers={"User-Agent": "evloop-test"})
        response = conn.getresponse()
        assert response.status == 200
        seen = json.loads(response.read())
        assert seen["path"] == "/hello?x=1" and seen["ua"] == "evloop-test", seen
        body = os.urandom(300_000)
        conn.request("POST", "/echo", body=body)      # same connection (keep-alive)
        response = conn.getresponse()
        assert response.status == 200 and response.read() == body[::-1]
        conn.close()
        server.shutdown()
        server.server_close()

        # and against the threading server, three connections at once
        server, port = serve()
        def get():
            conn = http.client.HTTPConnection("localhost", port, timeout=10)
            conn.request("GET", "/sleep/0.3")
            data = conn.getresponse().read()
            conn.close()
            return json.loads(data)["path"]
        results, elapsed = timed(get)
        assert results == ["/sleep/0.3"] * 3 and elapsed < 0.8, (results, elapsed)
        print("ok")
    """)
    assert out == ["ok"]


def test_requests_and_urllib3_after_patch_all():
    pytest.importorskip("requests")
    pytest.importorskip("urllib3")
    out = run_program("""
        import os
        import requests, urllib3
        server, port = serve()
        base = f"http://127.0.0.1:{port}"

        r = requests.get(base + "/r", timeout=10)
        assert r.status_code == 200 and r.json()["path"] == "/r"
        payload = os.urandom(100_000)
        r = requests.post(base + "/p", data=payload, timeout=10)
        assert r.content == payload[::-1]
        with requests.Session() as session:
            paths = [session.get(f"{base}/s{i}", timeout=10).json()["path"] for i in range(3)]
        assert paths == ["/s0", "/s1", "/s2"]
        results, elapsed = timed(lambda: requests.get(base + "/sleep/0.3", timeout=10).json())
        assert elapsed < 0.8 and len({r["thread"] for r in results}) == 3, (elapsed, results)

        http = urllib3.PoolManager(maxsize=3, block=True)
        r = http.request("GET", base + "/u")
        assert r.status == 200 and json.loads(r.data)["path"] == "/u"
        results, elapsed = timed(lambda: http.request("GET", base + "/sleep/0.3").status)
        assert results == [200] * 3 and elapsed < 0.8, (results, elapsed)
        # the pool (a patched LifoQueue) made at most 3 connections
        pool = http.connection_from_url(base)
        assert pool.num_connections <= 3, pool.num_connections
        print("ok")
    """)
    assert out == ["ok"]


# -------------------------------------------------------------------------------------
# TLS: a server on a certificate made for the test
# -------------------------------------------------------------------------------------

def _make_certificates(directory) -> dict:
    """A CA, a server certificate it signs (localhost, 127.0.0.1) and an unrelated CA;
    PEM files in ``directory``. With the ``cryptography`` package, else ``openssl``."""
    try:
        return _make_certificates_cryptography(directory)
    except ImportError:
        pass
    if shutil.which("openssl") is None:
        pytest.skip("neither the cryptography package nor the openssl command")
    return _make_certificates_openssl(directory)


def _make_certificates_cryptography(directory) -> dict:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def pem_key(key):
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def ca(common_name):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(common_name))
                .issuer_name(name(common_name)).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               False)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = ca("evloop test CA")
    _other_key, other_cert = ca("evloop unrelated CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost"))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256()))
    files = {
        "ca": ca_cert.public_bytes(serialization.Encoding.PEM),
        "other_ca": other_cert.public_bytes(serialization.Encoding.PEM),
        "cert": cert.public_bytes(serialization.Encoding.PEM),
        "key": pem_key(key),
    }
    paths = {}
    for label, data in files.items():
        path = directory / f"{label}.pem"
        path.write_bytes(data)
        paths[label] = str(path)
    return paths


def _make_certificates_openssl(directory) -> dict:
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    for label in ("ca", "other_ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", "2", "-subj", f"/CN=evloop {label}",
                "-keyout", f"{label}.key", "-out", f"{label}.pem")
    (directory / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "server.csr")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "cert.pem")
    return {label: str(directory / f"{label}.pem")
            for label in ("ca", "other_ca", "cert", "key")}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return _make_certificates(tmp_path_factory.mktemp("tls"))


_TLS_SERVER = """
    ca, other_ca, certfile, keyfile = sys.argv[1:5]
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certfile, keyfile)
    server, port = serve(context=server_context)
    base = f"https://127.0.0.1:{port}"
"""


def _with_tls_server(code: str) -> str:
    return textwrap.dedent(_TLS_SERVER) + textwrap.dedent(code)


def _tls_args(certificates):
    return (certificates["ca"], certificates["other_ca"], certificates["cert"],
            certificates["key"])


def test_tls_urllib_and_http_client_verify_the_test_ca(certificates):
    out = run_program(_with_tls_server("""
        import http.client, os, urllib.error, urllib.request
        import evloop.ssl

        context = ssl.create_default_context(cafile=ca)
        assert isinstance(context, evloop.ssl.SSLContext)
        with urllib.request.urlopen(base + "/tls", context=context, timeout=10) as response:
            assert json.loads(response.read())["path"] == "/tls"
        # the host name is checked against the certificate (DNS name, resolved by evloop)
        url = f"https://localhost:{port}/name"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            assert json.loads(response.read())["path"] == "/name"
        # http.client's default context (ssl._create_default_https_context, patched)
        os.environ["SSL_CERT_FILE"] = ca
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/default")
        assert json.loads(conn.getresponse().read())["path"] == "/default"
        assert isinstance(conn.sock, evloop.ssl.SSLSocket)
        conn.close()
        # three TLS requests at once take the time of one
        def fetch():
            with urllib.request.urlopen(base + "/sleep/0.3", context=context,
                                        timeout=10) as response:
                return response.status
        results, elapsed = timed(fetch)
        assert results == [200] * 3 and elapsed < 0.8, (results, elapsed)

        # the wrong CA: the certificate does not verify
        wrong = ssl.create_default_context(cafile=other_ca)
        try:
            urllib.request.urlopen(base + "/", context=wrong, timeout=10)
        except urllib.error.URLError as ex:
            assert isinstance(ex.reason, ssl.SSLCertVerificationError), repr(ex.reason)
        else:
            raise AssertionError("verified with the wrong CA")
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            wrong.wrap_socket(raw, server_hostname="127.0.0.1")
        except ssl.SSLCertVerificationError as ex:
            assert ex.verify_message, ex
        else:
            raise AssertionError("verified with the wrong CA")
        finally:
            raw.close()
        print("ok")
    """), *_tls_args(certificates))
    assert out == ["ok"]


def test_tls_requests_verify_the_test_ca(certificates):
    pytest.importorskip("requests")
    out = run_program(_with_tls_server("""
        import requests
        r = requests.get(base + "/req", verify=ca, timeout=10)
        assert r.status_code == 200 and r.json()["path"] == "/req"
        results, elapsed = timed(
            lambda: requests.get(base + "/sleep/0.3", verify=ca, timeout=10).status_code)
        assert results == [200] * 3 and elapsed < 0.8, (results, elapsed)
        try:
            requests.get(base + "/", verify=other_ca, timeout=10)
        except requests.exceptions.SSLError as ex:
            chain, cause = [], ex
            while cause is not None:
                chain.append(cause)
                cause = cause.__cause__ or cause.__context__ or (
                    cause.args[0] if cause.args and isinstance(cause.args[0], BaseException)
                    else None)
                if cause in chain:
                    break
            assert any(isinstance(c, ssl.SSLCertVerificationError) for c in chain), chain
        else:
            raise AssertionError("verified with the wrong CA")
        print("ok")
    """), *_tls_args(certificates))
    assert out == ["ok"]


def test_tls_requests_imported_before_patching(certificates):
    pytest.importorskip("requests")
    # urllib3 captured the original ssl.SSLContext: patching warns, and its contexts
    # still wrap sockets cooperatively
    prologue = textwrap.dedent("""
        import warnings
        import requests
        recording = warnings.catch_warnings(record=True)
        caught = recording.__enter__()
        warnings.simplefilter("always")
    """)
    test = textwrap.dedent("""
        recording.__exit__(None, None, None)
        assert any("urllib3" in str(w.message) for w in caught), [str(w) for w in caught]
        results, elapsed = timed(
            lambda: requests.get(base + "/sleep/0.3", verify=ca, timeout=10).status_code)
        assert results == [200] * 3 and elapsed < 0.8, (results, elapsed)
        print("ok")
    """)
    proc = run_python(prologue + SERVER + textwrap.dedent(_TLS_SERVER) + test,
                      *_tls_args(certificates))
    assert lines(proc) == ["ok"]


# -------------------------------------------------------------------------------------
# 1,000 concurrent connections to a StreamServer
# -------------------------------------------------------------------------------------

def test_thousand_concurrent_echo_connections():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard}: 1,000 connections need ~2,100 fds")
    proc = run_python("""
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

        from evloop import monkey
        monkey.patch_all()
        import hashlib, os, socket, time
        import evloop
        from evloop.event import Event
        from evloop.server import StreamServer

        N, SIZE = 1000, 64 * 1024
        active = [0]
        peak = [0]
        failures = []

        def handle(sock, address):
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            try:
                digest, received = hashlib.sha256(), 0
                while received < SIZE:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    digest.update(chunk)
                    received += len(chunk)
                    sock.sendall(chunk)
                sock.sendall(digest.digest())        # what the server saw, in order
            except Exception as ex:
                failures.append(repr(ex))
            finally:
                active[0] -= 1

        server = StreamServer(("127.0.0.1", 0), handle, backlog=1024)
        server.start()
        port = server.server_port
        go = Event()

        def client(i):
            data = os.urandom(SIZE)
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            try:
                go.wait()
                writer = evloop.spawn(sock.sendall, data)
                buf = bytearray()
                while len(buf) < SIZE + 32:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                writer.get()
            finally:
                sock.close()
            expected = hashlib.sha256(data).digest()
            echoed, server_saw = bytes(buf[:SIZE]), bytes(buf[SIZE:])
            return (len(buf) == SIZE + 32 and echoed == data and server_saw == expected
                    and hashlib.sha256(echoed).digest() == expected)

        start = time.monotonic()
        clients = [evloop.spawn(client, i) for i in range(N)]
        deadline = time.monotonic() + 30
        while active[0] < N and time.monotonic() < deadline:
            evloop.sleep(0.01)
        connected = active[0]
        go.set()                                 # all connected: now the data flows
        evloop.joinall(clients, timeout=40)
        ok = sum(1 for c in clients if c.successful() and c.value is True)
        errors = [repr(c.exception) for c in clients if c.exception is not None][:3]
        server.stop()
        print("connected", connected, "peak", peak[0], "ok", ok, "failures",
              failures[:3], errors, "seconds", round(time.monotonic() - start, 1))
    """)
    summary = lines(proc)[0]
    assert summary.split()[:6] == ["connected", "1000", "peak", "1000", "ok", "1000"], summary
    assert "failures [] []" in summary, summary


# -------------------------------------------------------------------------------------
# faults
# -------------------------------------------------------------------------------------

_FAULTS = """
    from evloop import monkey
    monkey.patch_all()
    import errno, socket, struct, sys, time
    import evloop

    def pair():
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname(), timeout=10)
        server_side, _ = listener.accept()
        listener.close()
        return client, server_side

    TIMEOUT = TimeoutError   # socket.timeout is an alias of it

    def expect(exc_types, func, *args):
        try:
            func(*args)
        except exc_types as ex:
            return ex
        raise AssertionError(f"{func} did not raise {exc_types}")
"""


def run_faults(code: str) -> list:
    return lines(run_python(textwrap.dedent(_FAULTS) + textwrap.dedent(code)))


def test_refused_and_timeouts():
    out = run_faults("""
        # connection refused
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        expect(ConnectionRefusedError, socket.create_connection, ("127.0.0.1", port), 5)
        print("refused ok")

        # recv timeout: at about the right time; the socket still works and closes
        client, server_side = pair()
        client.settimeout(0.3)
        start = time.monotonic()
        ex = expect(socket.timeout, client.recv, 10)
        elapsed = time.monotonic() - start
        assert isinstance(ex, TIMEOUT) and 0.25 <= elapsed < 3.0, (ex, elapsed)
        server_side.sendall(b"late")
        assert client.recv(10) == b"late"
        client.close()
        assert client.fileno() == -1
        assert server_side.recv(10) == b""              # the peer sees the close
        server_side.close()
        print("recv timeout ok", round(elapsed, 2))

        # sendall to a peer that stopped reading: TimeoutError, at about the timeout
        client, server_side = pair()
        client.settimeout(0.5)
        start = time.monotonic()
        ex = expect(socket.timeout, client.sendall, b"x" * (64 * 1024 * 1024))
        elapsed = time.monotonic() - start
        assert isinstance(ex, TIMEOUT) and 0.45 <= elapsed < 5.0, (ex, elapsed)
        client.close()
        server_side.close()
        print("sendall timeout ok", round(elapsed, 2))
    """)
    assert [line.rsplit(" ", 1)[0] if "timeout" in line else line for line in out] == [
        "refused ok", "recv timeout ok", "sendall timeout ok"], out


def test_peer_reset_mid_transfer():
    out = run_faults("""
        LINGER_0 = struct.pack("ii", 1, 0)
        # the client is reading when the peer resets
        client, server_side = pair()
        server_side.sendall(b"x" * 1000)
        server_side.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        server_side.close()                              # RST instead of FIN
        received = 0
        try:
            while True:
                chunk = client.recv(65536)
                assert chunk, "an orderly EOF instead of a reset"
                received += len(chunk)
        except ConnectionResetError:
            pass
        client.close()
        print("reset while reading ok")

        # the client is sending when the peer resets
        client, server_side = pair()
        def reset_soon():
            server_side.recv(10)
            server_side.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
            server_side.close()
        evloop.spawn(reset_soon)
        ex = expect((ConnectionResetError, BrokenPipeError), client.sendall,
                    b"y" * (64 * 1024 * 1024))
        client.close()
        print("reset while sending ok", type(ex).__name__)
    """)
    assert out[0] == "reset while reading ok"
    assert out[1].startswith("reset while sending ok")


def test_close_wakes_waiters_and_reused_fds_wake_the_right_greenlet():
    out = run_faults("""
        # greenlet A waits in recv on X; another greenlet closes X: A gets EBADF
        x, x_peer = socket.socketpair()
        fd = x.fileno()
        result = {}
        def read(name, sock):
            try:
                result[name] = sock.recv(100)
            except OSError as ex:
                result[name] = ex
        reader_a = evloop.spawn(read, "a", x)
        evloop.sleep(0.05)
        assert "a" not in result                       # A is waiting on fd
        evloop.spawn(x.close).join()
        reader_a.join(2)
        assert reader_a.dead, "closing X did not wake its reader"
        assert isinstance(result["a"], OSError) and result["a"].errno == errno.EBADF, result
        # a new socket Y gets X's fd number; data on Y wakes Y's reader, not A
        spare = []
        for _ in range(5):        # the lowest free fd numbers are handed out first
            y, y_peer = socket.socketpair()
            if y_peer.fileno() == fd:
                y, y_peer = y_peer, y
            if y.fileno() == fd:
                break
            spare += [y, y_peer]
        assert y.fileno() == fd, (y.fileno(), fd)
        for s in spare:
            s.close()
        reader_y = evloop.spawn(read, "y", y)
        evloop.sleep(0.05)
        y_peer.sendall(b"for Y")
        reader_y.join(2)
        assert result["y"] == b"for Y", result
        assert isinstance(result["a"], OSError)         # A was not woken again
        for s in (x_peer, y, y_peer):
            s.close()
        print("fd reuse ok", fd)

        # closing a socket that another greenlet blocks on, in accept and in sendall
        listener = socket.create_server(("127.0.0.1", 0))
        acceptor = evloop.spawn(listener.accept)
        evloop.sleep(0.05)
        listener.close()
        acceptor.join(2)
        assert acceptor.dead and isinstance(acceptor.exception, OSError), acceptor
        client, server_side = pair()
        client.settimeout(None)
        sender = evloop.spawn(client.sendall, b"z" * (64 * 1024 * 1024))
        evloop.sleep(0.1)
        assert not sender.dead                          # blocked: the peer does not read
        client.close()
        sender.join(2)
        assert sender.dead and isinstance(sender.exception, OSError), sender
        server_side.close()
        print("close wakes ok")
    """)
    assert out[0].startswith("fd reuse ok") and out[1] == "close wakes ok", out


def test_bad_host_names():
    out = run_faults("""
        import urllib.error, urllib.request
        for host in ("nonexistent.invalid", "no such host"):
            expect(socket.gaierror, socket.create_connection, (host, 80), 10)
            expect(socket.gaierror, socket.getaddrinfo, host, 80)
            expect(socket.gaierror, socket.gethostbyname, host)
        try:
            urllib.request.urlopen("http://nonexistent.invalid/", timeout=10)
        except urllib.error.URLError as ex:
            assert isinstance(ex.reason, socket.gaierror), repr(ex.reason)
        else:
            raise AssertionError("resolved nonexistent.invalid")
        try:
            import requests
        except ImportError:
            pass
        else:
            expect(requests.exceptions.ConnectionError, requests.get,
                   "http://nonexistent.invalid/")
        # resolving blocks only the greenlet that resolves
        assert socket.gethostbyname("localhost").startswith("127.")
        print("ok")
    """)
    assert out == ["ok"]

