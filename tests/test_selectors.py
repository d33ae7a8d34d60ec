"""Tests for evloop.selectors: a DefaultSelector whose select() waits through the hub.

Each test closes what it opens and kills what it spawns; no_leaked_watchers checks that
the hub's loop has no more active watchers after a test than before it.
"""
import errno
import os
import resource
import selectors as stdlib_selectors
import socket
import socketserver
import subprocess
import sys
import threading
import time

import pytest

import evloop
from evloop import selectors as evselectors
from evloop import select as evselect
from evloop.exceptions import GreenletExit
from evloop.greenlet import spawn
from evloop.hub import get_hub, sleep
from evloop.timeout import Timeout

from _helpers import Ticker

# the hub's loop has no more active watchers after a test than before it
pytestmark = pytest.mark.usefixtures("no_leaked_watchers")

EVENT_READ = stdlib_selectors.EVENT_READ
EVENT_WRITE = stdlib_selectors.EVENT_WRITE
EPS = 0.002


@pytest.fixture
def sel():
    s = evselectors.DefaultSelector()
    yield s
    s.close()


def summary(events):
    return sorted((key.fd, key.data, ev) for key, ev in events)


# -- the module -------------------------------------------------------------------------------

def test_module_surface():
    assert evselectors.DefaultSelector is evselectors.EvloopSelector
    assert issubclass(evselectors.EvloopSelector, stdlib_selectors.BaseSelector)
    assert evselectors.EVENT_READ == EVENT_READ and evselectors.EVENT_WRITE == EVENT_WRITE
    assert evselectors.SelectorKey is stdlib_selectors.SelectorKey
    assert evselectors.BaseSelector is stdlib_selectors.BaseSelector
    # the stdlib's selectors, as originals
    for name in ("SelectSelector", "PollSelector", "EpollSelector", "KqueueSelector",
                 "DevpollSelector"):
        if hasattr(stdlib_selectors, name):
            assert getattr(evselectors, name) is getattr(stdlib_selectors, name)
            assert name in evselectors.__all__
    for name in evselectors.__all__:
        assert hasattr(evselectors, name)
    assert evloop.selectors is evselectors
    assert evselectors.__doc__.strip()


# -- registration ----------------------------------------------------------------------------

def test_registration_like_stdlib(pair, sel):
    a, b = pair
    with stdlib_selectors.DefaultSelector() as ref:
        for s in (sel, ref):
            key = s.register(a, EVENT_READ, "data")
            assert (key.fileobj, key.fd, key.events, key.data) == (a, a.fileno(), EVENT_READ,
                                                                   "data")
            assert s.get_key(a) == key and s.get_map()[a] == key and len(s.get_map()) == 1
            for bad in (0, 4, EVENT_READ | 8):
                with pytest.raises(ValueError):
                    s.register(b, bad)
            with pytest.raises(KeyError):
                s.register(a, EVENT_WRITE)
            with pytest.raises(ValueError):
                s.register(-1, EVENT_READ)
            with pytest.raises(ValueError):
                s.register(object(), EVENT_READ)
            with pytest.raises(KeyError):
                s.modify(b, EVENT_READ)
            key2 = s.modify(a, EVENT_READ, "other")
            assert key2.data == "other" and s.get_key(a) is key2
            key3 = s.modify(a, EVENT_READ | EVENT_WRITE, "other")
            assert key3.events == EVENT_READ | EVENT_WRITE
            assert s.unregister(a) == key3
            with pytest.raises(KeyError):
                s.unregister(a)
            with pytest.raises(KeyError):
                s.get_key(a)
            assert len(s.get_map()) == 0


def test_modify_validates_events(pair, sel):
    # as register() and SelectSelector.modify() do (EpollSelector.modify does not check)
    a, b = pair
    sel.register(a, EVENT_READ)
    for bad in (0, 4, EVENT_READ | 8):
        with pytest.raises(ValueError):
            sel.modify(a, bad)
    assert sel.get_key(a).events == EVENT_READ


def test_register_closed_fd_raises_ebadf_and_registers_nothing(sel):
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as info:
        sel.register(r, EVENT_READ)
    assert info.value.errno == errno.EBADF
    assert len(sel.get_map()) == 0


def test_unregister_after_close_of_the_file(sel):
    a, b = socket.socketpair()
    sel.register(a, EVENT_READ)
    sel.register(b, EVENT_WRITE)
    assert [key.fileobj for key, ev in sel.select(0)] == [b]
    a.close()
    b.close()
    sel.unregister(a)  # found by object although its fileno() is now -1
    sel.unregister(b)
    assert len(sel.get_map()) == 0


def test_close(pair):
    a, b = pair
    s = evselectors.EvloopSelector()
    s.register(a, EVENT_WRITE)
    s.close()
    s.close()  # idempotent
    assert s.get_map() is None
    with pytest.raises(ValueError):
        s.select(0)
    with pytest.raises(ValueError):
        s.register(b, EVENT_READ)
    with evselectors.EvloopSelector() as s2:
        s2.register(a, EVENT_WRITE)
    assert s2.get_map() is None


# -- select: readiness -----------------------------------------------------------------------

def test_select_ready(pair, sel):
    a, b = pair
    sel.register(a, EVENT_READ | EVENT_WRITE, "a")
    sel.register(b, EVENT_READ, "b")
    assert summary(sel.select(0)) == [(a.fileno(), "a", EVENT_WRITE)]
    a.send(b"x")
    assert summary(sel.select()) == [(a.fileno(), "a", EVENT_WRITE),
                                     (b.fileno(), "b", EVENT_READ)]
    b.send(b"y")
    assert summary(sel.select(1)) == [(a.fileno(), "a", EVENT_READ | EVENT_WRITE),
                                      (b.fileno(), "b", EVENT_READ)]


def test_select_waits_while_others_run(pair, sel):
    a, b = pair
    sel.register(b, EVENT_READ)
    steps = []

    def writer():
        for i in range(5):
            sleep(0.001)
            steps.append(i)
        a.send(b"x")

    g = spawn(writer)
    assert [(key.fileobj, ev) for key, ev in sel.select()] == [(b, EVENT_READ)]
    assert steps == [0, 1, 2, 3, 4]
    g.join()


def test_select_timeout(pair, sel):
    a, b = pair
    sel.register(b, EVENT_READ)
    with Ticker(0.005) as ticker:
        start = time.monotonic()
        assert sel.select(0.1) == []
        assert time.monotonic() - start >= 0.1 - EPS
        assert ticker.ticks >= 1
    start = time.monotonic()
    assert sel.select(0) == []
    assert sel.select(-1) == []
    assert time.monotonic() - start < 1.0


def test_select_zero_timeout_yields(pair, sel):
    a, b = pair
    sel.register(b, EVENT_READ)
    flag = []
    spawn(flag.append, 1)
    assert sel.select(0) == []
    assert flag == [1]


def test_watchers_started_only_during_select(pair, sel):
    a, b = pair
    loop = get_hub().loop
    before = loop.activecnt
    a.send(b"x")  # b stays readable: a started watcher would fire on every iteration
    sel.register(b, EVENT_READ)
    sel.register(a, EVENT_WRITE)
    assert loop.activecnt == before
    for _ in range(3):
        assert len(sel.select(0)) == 2
        assert loop.activecnt == before
    iteration = loop.iteration
    sleep(0.02)  # nothing fires meanwhile: the loop sleeps instead of spinning
    assert loop.iteration - iteration < 5


def test_modify_changes_events(pair, sel):
    a, b = pair
    sel.register(a, EVENT_READ)
    assert sel.select(0) == []
    sel.modify(a, EVENT_WRITE, "w")
    assert [(key.data, ev) for key, ev in sel.select(0)] == [("w", EVENT_WRITE)]


def test_register_during_select_is_watched(pair, sel):
    a, b = pair
    c, d = socket.socketpair()
    try:
        sel.register(d, EVENT_READ)
        a.send(b"x")

        def other():
            sleep(0.01)
            sel.register(b, EVENT_READ, "late")

        g = spawn(other)
        events = sel.select(10)
        assert [(key.data, ev) for key, ev in events] == [("late", EVENT_READ)]
        g.join()
    finally:
        c.close()
        d.close()


def test_unregister_during_select(pair, sel):
    a, b = pair
    sel.register(b, EVENT_READ)

    def other():
        sleep(0.01)
        sel.unregister(b)
        a.send(b"x")

    g = spawn(other)
    assert sel.select(0.1) == []
    g.join()


def test_close_during_select_wakes_it(pair, sel):
    a, b = pair
    sel.register(b, EVENT_READ)
    g = spawn(lambda: (sleep(0.01), sel.close()))
    assert sel.select() == []
    g.join()


def test_concurrent_select_is_refused(pair, sel):
    a, b = pair
    sel.register(b, EVENT_READ)
    g = spawn(sel.select)
    sleep(0)
    with pytest.raises(RuntimeError):
        sel.select(0)
    a.send(b"x")
    assert [key.fileobj for key, ev in g.get()] == [b]


def test_fd_closed_while_registered_behaves_like_epollselector(sel):
    # a caller bug: the fd is closed without unregistering it. The stdlib's DefaultSelector
    # on Linux (EpollSelector) never reports such an fd (epoll drops closed fds); evloop's
    # armed watchers do the same: select() times out with nothing, it does not hang or raise
    r, w = os.pipe()
    sel.register(r, EVENT_READ, "r")
    os.close(r)
    os.close(w)
    try:
        # reported ready (libev meets EBADF when it first hands the fd to epoll, as
        # PollSelector reports POLLNVAL) or not at all (as EpollSelector): either way the
        # call returns by its timeout and raises nothing
        start = time.monotonic()
        result = [(key.data, ev) for key, ev in sel.select(0.05)]
        assert result in ([], [("r", EVENT_READ)])
        assert time.monotonic() - start < 5
    finally:
        sel.unregister(r)


def test_select_in_another_thread(pair):
    a, b = pair
    out = []

    def run():
        with evselectors.DefaultSelector() as s:
            s.register(b, EVENT_READ)
            g = spawn(lambda: (sleep(0.01), a.send(b"x")))
            out.append([key.fileobj for key, ev in s.select(10)])
            g.join()
        get_hub().destroy()

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert out == [[b]]


# -- select: cleanup -------------------------------------------------------------------------

def test_kill_during_select_leaves_no_watcher(pair, sel):
    a, b = pair
    loop = get_hub().loop
    before = loop.activecnt
    sel.register(b, EVENT_READ)
    sel.register(a, EVENT_READ)
    for timeout in (None, 30):
        g = spawn(sel.select, timeout)
        sleep(0)
        assert loop.activecnt > before
        g.kill()
        assert isinstance(g.value, GreenletExit)
        assert loop.activecnt == before
    a.send(b"x")
    assert [key.fileobj for key, ev in sel.select(1)] == [b]  # still usable


def test_timeout_exception_during_select(pair, sel):
    a, b = pair
    loop = get_hub().loop
    before = loop.activecnt
    sel.register(b, EVENT_READ)
    with pytest.raises(Timeout):
        with Timeout(0.02):
            sel.select()
    assert loop.activecnt == before


# -- many fds ----------------------------------------------------------------------------------

def test_many_fds_few_ready(sel):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1100:
        pytest.skip("RLIMIT_NOFILE too low for 500 socketpairs")
    pairs = []
    try:
        for i in range(500):
            pairs.append(socket.socketpair())
            sel.register(pairs[-1][1], EVENT_READ, i)
        chosen = [0, 111, 499]

        def writer():
            sleep(0.01)
            for i in chosen:
                pairs[i][0].send(b"x")

        with Ticker(0.001) as ticker:
            g = spawn(writer)
            events = sel.select(10)
            assert ticker.ticks >= 1
        # everything that became ready in one loop iteration comes back together
        assert sorted(key.data for key, ev in events) == chosen
        assert all(ev == EVENT_READ for key, ev in events)
        g.join()
        assert sorted(key.data for key, ev in sel.select(0)) == chosen
    finally:
        for a, b in pairs:
            sel.unregister(b)
            a.close()
            b.close()


# -- under stdlib code -------------------------------------------------------------------------

def test_echo_over_socketpair(pair):
    a, b = pair
    rounds = 50

    def server():
        with evselectors.DefaultSelector() as s:
            s.register(b, EVENT_READ)
            while True:
                for key, ev in s.select():
                    data = key.fileobj.recv(1024)
                    if not data:
                        return
                    key.fileobj.sendall(data)

    with Ticker(0) as ticker:
        srv = spawn(server)
        with evselectors.DefaultSelector() as s:
            s.register(a, EVENT_READ)
            for i in range(rounds):
                msg = b"ping %d" % i
                a.sendall(msg)
                assert s.select(10)
                assert a.recv(1024) == msg
        a.shutdown(socket.SHUT_WR)
        srv.get(timeout=10)
        assert ticker.ticks >= 10


def test_socketserver(monkeypatch):
    monkeypatch.setattr(socketserver, "_ServerSelector", evselectors.DefaultSelector)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())

    with socketserver.TCPServer(("127.0.0.1", 0), Handler) as server:
        srv = spawn(server.serve_forever, 0.02)
        replies = []
        with Ticker(0) as ticker:
            for i in range(3):
                with socket.create_connection(server.server_address) as c:
                    c.sendall(b"hello %d\n" % i)  # before the handler reads: it never waits
                    assert evselect.select([c], [], [], 10)[0] == [c]
                    replies.append(c.recv(100))
            ticks = ticker.ticks
        server._BaseServer__shutdown_request = True  # shutdown() would block the thread
        srv.get(timeout=10)
    assert replies == [b"HELLO %d\n" % i for i in range(3)]
    assert ticks >= 1


def test_subprocess_communicate(monkeypatch):
    monkeypatch.setattr(subprocess, "_PopenSelector", evselectors.DefaultSelector)
    payload = b"x" * 300_000  # more than a pipe buffer: communicate waits to write too
    code = ("import sys, time; d = sys.stdin.buffer.read(); time.sleep(0.2); "
            "sys.stdout.buffer.write(d.upper()); sys.stderr.write(str(len(d)))")

    def run():
        with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
            before = ticker.ticks
            out, err = p.communicate(payload, timeout=30)
            return out, err, ticker.ticks - before

    with Ticker(0.005) as ticker:
        out, err, ticks = spawn(run).get(timeout=60)
    assert out == payload.upper()
    assert err == b"300000"
    # the ticker ran while communicate() waited for the child's 0.2 s sleep
    assert ticks >= 2
