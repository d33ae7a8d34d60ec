"""Leak checks: the per-test check of conftest.py, and repeated operations that must not grow.

Why it exists: a leak in an event loop shows up late (a server that runs for a week, an fd
limit reached after a million connections). Two nets catch them early:

* conftest.py's autouse check fails any test that leaves fds open, watchers started,
  greenlets running, callbacks queued or threads alive. The first tests below run small
  pytest sessions in a subprocess to show that it reports each kind and stays quiet about
  what is not a leak (the hub's own fds, garbage the collector frees, failed tests).
* ``@pytest.mark.leakcheck`` tests repeat one operation (watcher start/stop, dispatch and
  callback errors, loop create/destroy or drop, spawn/join/kill, Event/Queue/lock waits,
  socket open/close, would-block and timeouts, Timeout, TLS handshake, threads that use a
  hub) hundreds to thousands of times after a warm-up and compare two later rounds: Python
  allocations (tracemalloc, which also sees what our C code gets from the Python
  allocators), objects tracked by the GC, the process's RSS (libev's and OpenSSL's malloc),
  open fds, and the refcounts of objects passed through (a reference leaked in C). A leak
  of one object or a few bytes per operation grows every round; noise does not.

What it must not do: depend on timing. The file takes a minute on a busy 2-core machine
(two subprocess batteries of ~10 s, thousands of repeats per leak check), so all of it is
marked ``slow``: ``-m "not slow"`` skips it for a quick local run; CI runs it.
"""
import ctypes
import gc
import os
import signal as stdlib_signal
import socket
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path

import pytest

import evloop
from evloop import core

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
PKG_PARENT = str(TESTS.parent)


# --------------------------------------------------------------------------------------
# the per-test check (tests/conftest.py)
# --------------------------------------------------------------------------------------

def run_pytest(tmp_path, body):
    """Run ``body`` as a test file under a copy of this suite's conftest.py (and the
    _helpers.py and _services.py it imports); return the completed process (its output is
    pytest's, -rA so every outcome is listed)."""
    for name in ("conftest.py", "_helpers.py", "_services.py"):
        (tmp_path / name).write_text((TESTS / name).read_text())
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(body))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    allow_leftovers: test\n    leakcheck: test\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVLOOP_")}
    # pytest prints untruncated short-summary lines when CI or BUILD_NUMBER is set (as on
    # CI), which repeats each message there; the assertions below count messages
    env.pop("CI", None)
    env.pop("BUILD_NUMBER", None)
    env["PYTHONPATH"] = PKG_PARENT
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
         "--strict-markers", "test_inner.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def outcomes(proc):
    """{test name: "PASSED" | "ERROR" | "FAILED"} from -rA's short summary."""
    found = {}
    for line in proc.stdout.splitlines():
        for word in ("PASSED", "ERROR", "FAILED"):
            prefix = word + " test_inner.py::"
            if line.startswith(prefix):
                name = line[len(prefix):].split(" ")[0]
                found.setdefault(name, word)  # a test can pass, then error at teardown
                if word == "ERROR":
                    found[name] = word
    return found


def test_the_check_reports_each_kind_of_leftover(tmp_path):
    proc = run_pytest(tmp_path, """
        import socket, threading
        import evloop
        from evloop import core
        from evloop.event import Event

        cleanups = []  # run by the last test: what each test left, and how to undo it

        def test_fd():
            sock = socket.socket()
            cleanups.append(sock.close)

        def test_watcher():
            t = evloop.get_hub().loop.timer(100)
            t.start(print)
            cleanups.append(t.close)

        def test_greenlet():
            never = Event()
            cleanups.append(evloop.spawn(never.wait).kill)
            evloop.sleep(0)

        def test_greenlet_blocked_on_a_watcher():
            cleanups.append(evloop.spawn(evloop.sleep, 100).kill)
            evloop.sleep(0)

        def test_private_loop():
            cleanups.append(core.loop(default=False).destroy)

        def test_callback():
            spinning = [True]
            def again():
                if spinning:
                    evloop.get_hub().loop.run_callback(again)
            again()
            cleanups.append(spinning.clear)

        def test_thread():
            stop = threading.Event()
            threading.Thread(target=stop.wait, name="left-running", daemon=True).start()
            cleanups.append(stop.set)

        def test_last_to_clean_up():
            for cleanup in cleanups:
                cleanup()
            evloop.sleep(0)
    """)
    result = outcomes(proc)
    out = proc.stdout
    assert result == {"test_fd": "ERROR", "test_watcher": "ERROR", "test_greenlet": "ERROR",
                      "test_greenlet_blocked_on_a_watcher": "ERROR",
                      "test_private_loop": "ERROR", "test_callback": "ERROR",
                      "test_thread": "ERROR", "test_last_to_clean_up": "PASSED"}, out
    assert "test_inner.py::test_fd left behind:" in out
    assert "-> socket:[" in out
    assert "<evloop.core.timer at" in out and "callback=<built-in function print>" in out
    assert "1 running" in out and 'started: Event.wait()>' in out
    assert "(a greenlet waits on it: <Greenlet" in out and "sleep(100)" in out
    assert "-> anon_inode:[eventpoll]" in out
    assert "callbacks:\n    1 queued" in out
    assert "left-running" in out


def test_the_check_is_quiet_about_what_is_not_a_leak(tmp_path):
    proc = run_pytest(tmp_path, """
        import gc, socket
        import pytest
        import evloop
        from evloop import core
        from evloop.event import Event

        def test_the_hubs_lazily_opened_fds(tmp_path):
            # the first stat watcher makes libev open inotify's fd, which the loop keeps
            w = evloop.get_hub().loop.stat(str(tmp_path))
            w.start(print)
            w.close()

        def test_a_socket_only_the_collector_frees():
            class Cycle:
                pass
            c = Cycle()
            c.self, c.sock = c, socket.socket()

        def test_a_greenlet_that_finishes_a_moment_later():
            evloop.spawn(evloop.sleep, 0)
            evloop.sleep(0)

        def test_a_killed_greenlet_leaves_no_frame_holding_its_socket():
            def serve(sock):
                sock.recv(1)
            a, b = evloop.socket.socketpair()
            g = evloop.spawn(serve, a)
            evloop.sleep(0)
            del a
            g.kill()
            b.close()
            globals()["killed"] = g  # the Greenlet lives on; its dead frame must not

        def test_a_failing_test_is_not_also_reported():
            keep = socket.socket()
            globals()["leaked"] = keep
            assert False, "boom"

        @pytest.mark.allow_leftovers("fds", reason="testing the opt-out")
        def test_opted_out():
            globals()["opted"] = socket.socket()

        @pytest.mark.allow_leftovers("watchers", reason="only watchers are allowed")
        def test_opt_out_is_per_kind():
            globals()["not_allowed"] = socket.socket()

        @pytest.mark.allow_leftovers("fds")
        def test_opt_out_needs_a_reason():
            pass
    """)
    result = outcomes(proc)
    out = proc.stdout
    assert result == {"test_the_hubs_lazily_opened_fds": "PASSED",
                      "test_a_socket_only_the_collector_frees": "PASSED",
                      "test_a_greenlet_that_finishes_a_moment_later": "PASSED",
                      "test_a_killed_greenlet_leaves_no_frame_holding_its_socket": "PASSED",
                      "test_a_failing_test_is_not_also_reported": "FAILED",
                      "test_opted_out": "PASSED",
                      "test_opt_out_is_per_kind": "ERROR",
                      "test_opt_out_needs_a_reason": "ERROR"}, out
    assert "allow_leftovers needs reason=" in out
    assert out.count("left behind") == 1, out


# --------------------------------------------------------------------------------------
# repeated operations must not grow (@pytest.mark.leakcheck)
# --------------------------------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


# Under AddressSanitizer (tools/sanitize.sh sets EVLOOP_SANITIZED=1 and preloads the ASan
# runtime) the RSS says nothing about leaks: freed blocks wait in ASan's quarantine (up to
# 256 MiB) before they are reused, so the RSS grows with every free. There the "RSS"
# figure is ASan's own count of bytes allocated and not yet freed (blocks in quarantine
# are freed), which a leaked malloc grows and a free does not.
_ASAN_ALLOCATED = None
if os.environ.get("EVLOOP_SANITIZED"):
    _ASAN_ALLOCATED = ctypes.CDLL(None).__sanitizer_get_current_allocated_bytes
    _ASAN_ALLOCATED.restype = ctypes.c_size_t
    _ASAN_ALLOCATED.argtypes = []


def _rss():
    if _ASAN_ALLOCATED is not None:
        return _ASAN_ALLOCATED()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


# CPython's method cache (the type attribute cache, 4096 slots per interpreter) keeps a
# reference to the name it last looked up in each slot; a slot is chosen by the type's
# version tag and the name's hash, and a name built at each lookup (PyObject_GetAttrString)
# is a new str each time. Measured in test_threads_that_ran_a_hub: one such ~61-byte str
# per thread stays in the cache (+20..80 B traced a call, gone once the cache is cleared),
# bounded by the cache's size and so not a leak, but as large as a small leak. The sample
# clears the cache first. sys._clear_internal_caches() exists from 3.13 on, where
# sys._clear_type_cache() is deprecated (checked on 3.10-3.15).
if sys.version_info >= (3, 13):
    _clear_type_cache = sys._clear_internal_caches
else:
    _clear_type_cache = sys._clear_type_cache


def _sample():
    gc.collect()
    _clear_type_cache()
    return (tracemalloc.get_traced_memory()[0], len(gc.get_objects()), _rss(),
            len(os.listdir("/proc/self/fd")))


def assert_no_growth(op, n, *, watch=(), warmup=None, bytes_per_op=4, rss_per_op=64,
                     rss_floor=512 * 1024):
    """Run ``op()`` ``warmup`` times (default ``n``), then two rounds of ``n``; fail if both
    rounds grew Python's traced memory by more than ``bytes_per_op`` a call, the number of
    GC-tracked objects by more than one in 20 calls, the RSS by more than ``rss_per_op`` a
    call (at least ``rss_floor``: malloc and the page size make RSS coarse) or the number
    of open fds at all; and fail if the refcount of any object in ``watch`` changed (a
    reference leaked in C).

    Taking the smaller of the two rounds' growth ignores one-off growth (a dict resized,
    a free list filled); a leak grows both."""
    for _ in range(n if warmup is None else warmup):
        op()
    gc.collect()  # references held by garbage cycles (exceptions, frames) are not leaks
    refs = [sys.getrefcount(obj) for obj in watch]
    tracemalloc.start()
    try:
        samples = [_sample()]
        for _ in range(2):
            for _ in range(n):
                op()
            samples.append(_sample())
    finally:
        tracemalloc.stop()
    traced, objects, rss, fds = [min(b[i] - a[i] for a, b in zip(samples, samples[1:]))
                                 for i in range(4)]
    report = (f"after {n} more calls, twice: +{traced} B traced, +{objects} objects, "
              f"+{rss} B RSS, +{fds} fds; samples (traced, objects, RSS, fds): {samples}")
    if os.environ.get("EVLOOP_LEAK_REPORT"):  # the figures, for docs/reliability.md
        sys.__stderr__.write(f"\n{os.environ.get('PYTEST_CURRENT_TEST')}: {report[:80]}\n")
    assert traced <= bytes_per_op * n, report
    assert objects <= n // 20, report
    assert rss <= max(rss_per_op * n, rss_floor), report
    assert fds <= 0, report
    assert [sys.getrefcount(obj) for obj in watch] == refs, (
        f"refcounts changed: {refs} -> {[sys.getrefcount(obj) for obj in watch]}")


def _noop(*args):
    pass


class Arg:
    """A distinct object to pass through an operation and watch the refcount of."""


@pytest.fixture
def private_loop():
    lp = core.loop(default=False)
    yield lp
    lp.destroy()


@pytest.mark.leakcheck
@pytest.mark.parametrize("kind", ["io", "timer", "idle", "prepare", "check", "async_",
                                  "fork", "stat", "signal"])
def test_watcher_start_stop(private_loop, kind, tmp_path):
    a, b = socket.socketpair()
    make = {"io": lambda: private_loop.io(a.fileno(), core.READ),
            "timer": lambda: private_loop.timer(30),
            "stat": lambda: private_loop.stat(str(tmp_path)),
            "signal": lambda: private_loop.signal(stdlib_signal.SIGUSR2)}.get(
        kind, lambda: getattr(private_loop, kind)())
    arg = Arg()
    watcher = make()

    def op():
        watcher.start(_noop, arg)
        watcher.stop()

    def op_new():
        w = make()
        w.start(_noop, arg)
        w.close()

    try:
        assert_no_growth(op, 1000, watch=(arg, _noop))
        assert_no_growth(op_new, 1000, watch=(arg, _noop))
    finally:
        watcher.close()
        a.close()
        b.close()


@pytest.mark.leakcheck
def test_watcher_callbacks_and_errors(private_loop):
    """Dispatch: a timer firing, an idle callback, run_callback, async send, and a callback
    that raises (the error goes to the loop's handler)."""
    arg = Arg()
    errors = []

    def boom(x):
        raise ValueError(x)

    private_loop.error_handler = lambda *exc_info: errors.append(exc_info[1])
    timer = private_loop.timer(0)
    idle = private_loop.idle()
    wake = private_loop.async_()

    def op():
        timer.start(_noop, arg)
        idle.start(idle.stop)
        private_loop.run_callback(_noop, arg)
        private_loop.run_callback(boom, arg)
        wake.start(wake.stop)
        wake.send()
        private_loop.run()
        del errors[:]

    assert_no_growth(op, 1000, watch=(arg, _noop, boom))
    assert not timer.active and not idle.active


@pytest.mark.leakcheck
def test_loop_create_destroy():
    def op():
        lp = core.loop(default=False)
        lp.timer(0).start(_noop)
        lp.run_callback_threadsafe(_noop)
        lp.run()
        lp.destroy()

    assert_no_growth(op, 500, rss_per_op=256)


@pytest.mark.leakcheck
def test_loop_dropped_with_started_watchers():
    # nothing can run or destroy it any more: the collector must free it, fds included
    a, b = socket.socketpair()

    def op():
        lp = core.loop(default=False)
        lp.timer(30).start(_noop)
        lp.io(b.fileno(), core.READ).start(_noop)
        lp.run_callback(_noop)

    try:
        assert_no_growth(op, 300, rss_per_op=256)
    finally:
        a.close()
        b.close()


@pytest.mark.leakcheck
def test_threads_that_ran_a_hub():
    # a thread's hub, suspended in loop.run() when the thread ends, is destroyed with it
    def body():
        evloop.sleep(0)
        evloop.get_hub().loop.timer(30).start(_noop)  # left active

    def op():
        t = threading.Thread(target=body)
        t.start()
        t.join()

    # a leaked hub is kilobytes (Hub, loop, frames); thread start-up itself is noisy
    assert_no_growth(op, 200, bytes_per_op=64, rss_per_op=1024)


def test_the_repeat_check_fails_on_each_kind_of_growth():
    kept = []
    with pytest.raises(AssertionError, match=r"\+\d+ B traced"):
        assert_no_growth(lambda: kept.append(bytearray(64)), 300)
    del kept[:]
    with pytest.raises(AssertionError, match=r"\+\d+ fds"):
        assert_no_growth(lambda: kept.append(socket.socket()), 50)
    for sock in kept:
        sock.close()
    del kept[:]
    # raw malloc that no Python allocator sees: only the RSS shows it
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p

    def raw():
        p = libc.malloc(8192)
        ctypes.memset(p, 1, 8192)
        kept.append(p)

    with pytest.raises(AssertionError, match=r"\+\d+ B RSS"):
        assert_no_growth(raw, 300)
    for p in kept:
        libc.free(ctypes.c_void_p(p))
    del kept[:]
    # a reference leaked in C: no memory grows, the refcount does
    arg = Arg()
    with pytest.raises(AssertionError, match="refcounts changed"):
        assert_no_growth(lambda: ctypes.pythonapi.Py_IncRef(ctypes.py_object(arg)), 300,
                         watch=(arg,))


@pytest.mark.leakcheck
def test_spawn_join_kill():
    arg = Arg()

    def body(x):
        evloop.sleep(0)
        return x

    def op():
        g = evloop.spawn(body, arg)
        assert g.get() is arg
        k = evloop.spawn(evloop.sleep, 30)
        evloop.sleep(0)
        k.kill()
        never = evloop.spawn(body, arg)
        never.kill()  # before it started
        evloop.spawn_raw(body, arg)
        evloop.sleep(0)

    assert_no_growth(op, 1000, watch=(arg, body))


@pytest.mark.leakcheck
def test_greenlet_that_raises():
    hub = evloop.get_hub()
    old, hub.exception_stream = hub.exception_stream, None  # no traceback printing

    def fail():
        raise ValueError("boom")

    def op():
        g = evloop.spawn(fail)
        g.join()
        assert isinstance(g.exception, ValueError)

    try:
        assert_no_growth(op, 1000, watch=(fail,))
    finally:
        hub.exception_stream = old


@pytest.mark.leakcheck
def test_timeout_cancelled_and_expired():
    from evloop.event import Event

    never = Event()

    def op():
        with evloop.Timeout(30):
            evloop.sleep(0)
        with evloop.Timeout(0, False):  # expires at the next iteration
            never.wait()
        t = evloop.Timeout.start_new(0)
        try:
            evloop.sleep(30)
        except evloop.Timeout as exc:
            assert exc is t
        try:
            evloop.with_timeout(0, never.wait)
        except evloop.Timeout:
            pass

    assert_no_growth(op, 1000, watch=(never,))


@pytest.mark.leakcheck
def test_event_queue_lock_waits():
    from evloop.event import AsyncResult, Event
    from evloop.lock import Semaphore
    from evloop.queue import Queue

    arg = Arg()
    event, result, queue, sem = Event(), AsyncResult(), Queue(), Semaphore(1)

    def op():
        g = evloop.spawn(queue.get)
        w = evloop.spawn(event.wait)
        evloop.sleep(0)
        queue.put(arg)
        event.set()
        assert g.get() is arg and w.get() is True
        event.clear()
        result.set(arg)
        assert result.get() is arg
        result.set_exception(ValueError())
        assert isinstance(result.exception, ValueError)
        with sem:
            evloop.sleep(0)
        assert event.wait(timeout=0) is False

    assert_no_growth(op, 1000, watch=(arg,))


@pytest.mark.leakcheck
def test_socket_open_send_recv_close():
    from evloop import socket as evsocket

    payload = b"x" * 100

    def op():
        a, b = evsocket.socketpair()
        a.sendall(payload)
        assert b.recv(200) == payload
        a.close()
        assert b.recv(10) == b""
        b.close()

    assert_no_growth(op, 1000, watch=(payload,))


@pytest.mark.leakcheck
def test_socket_connect_accept():
    from evloop import socket as evsocket

    listener = evsocket.create_server(("127.0.0.1", 0))
    addr = listener.getsockname()

    def op():
        c = evsocket.create_connection(addr, timeout=5)
        s, _ = listener.accept()
        s.close()
        c.close()

    try:
        assert_no_growth(op, 500)
    finally:
        listener.close()


@pytest.mark.leakcheck
def test_socket_would_block_and_timeout():
    from evloop import socket as evsocket

    a, b = evsocket.socketpair()
    a.settimeout(0)
    b.settimeout(0.000001)

    def op():
        try:  # would block at once: BlockingIOError from the C fast path
            a.recv(1)
        except BlockingIOError:
            pass
        try:  # waits, then times out: the timeout exception from the C wait
            b.recv(1)
        except evsocket.timeout:
            pass

    try:
        assert_no_growth(op, 300)
    finally:
        a.close()
        b.close()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A certificate for 'localhost' signed by its own EC key: (certfile, keyfile)."""
    import datetime

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    directory = tmp_path_factory.mktemp("leak-tls")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)


@pytest.mark.leakcheck
def test_ssl_handshake(self_signed):
    import ssl as stdlib_ssl

    from evloop import socket as evsocket
    from evloop import ssl as evssl

    certfile, keyfile = self_signed
    server_ctx = evssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certfile, keyfile)
    client_ctx = evssl.create_default_context(cafile=certfile)

    def server(sock):
        with server_ctx.wrap_socket(sock, server_side=True) as tls:
            tls.sendall(tls.recv(10))

    def op():
        a, b = evsocket.socketpair()
        g = evloop.spawn(server, b)
        with client_ctx.wrap_socket(a, server_hostname="localhost") as tls:
            tls.sendall(b"ping")
            assert tls.recv(10) == b"ping"
        g.get()

    assert_no_growth(op, 100, warmup=30, bytes_per_op=64, rss_per_op=2048)
