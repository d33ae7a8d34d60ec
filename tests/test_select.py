"""Tests for evloop.select: select() and poll() that block only the calling greenlet.

Each test closes what it opens and kills what it spawns; no_leaked_watchers checks that
the hub's loop has no more active watchers after a test than before it.
"""
import decimal
import errno
import fcntl
import os
import resource
import select as stdlib_select
import selectors as stdlib_selectors
import socket
import threading
import time

import pytest

import evloop
from evloop import select as evselect
from evloop.exceptions import GreenletExit
from evloop.greenlet import spawn
from evloop.hub import get_hub, sleep
from evloop.timeout import Timeout

from _helpers import Ticker, closed_fd

# the hub's loop has no more active watchers after a test than before it
pytestmark = pytest.mark.usefixtures("no_leaked_watchers")

# timers may fire a hair early relative to time.monotonic (libev rounds its clock)
EPS = 0.002


def raised(func, *args):
    try:
        func(*args)
    except Exception as exc:  # noqa: BLE001 - the test compares exceptions
        return type(exc), str(exc)
    return None


# -- the module -------------------------------------------------------------------------------

def test_module_surface():
    assert evselect.error is OSError is stdlib_select.error
    for name in ("POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL",
                 "POLLRDNORM", "POLLWRNORM", "PIPE_BUF"):
        assert getattr(evselect, name) == getattr(stdlib_select, name)
        assert name in evselect.__all__
    # not cooperative: absent, so feature tests fall back to poll
    for name in ("epoll", "kqueue", "kevent", "devpoll", "EPOLLIN"):
        assert not hasattr(evselect, name)
    assert set(evselect.__implements__) == {"select", "poll"}
    for name in evselect.__all__:
        assert hasattr(evselect, name)
    assert evloop.select is evselect
    assert evselect.select is not stdlib_select.select
    assert evselect.__doc__.strip()


# -- select(): readiness --------------------------------------------------------------------

def test_select_ready_at_once(pair):
    a, b = pair
    assert evselect.select([b], [a], [], None) == ([], [a], [])
    a.send(b"x")
    assert evselect.select([b], [], [], None) == ([b], [], [])
    assert evselect.select([b, a], [a, b], [], 0) == ([b], [a, b], [])


def test_select_accepts_ints_iterables_and_duplicates(pair):
    a, b = pair
    a.send(b"x")
    r, w, x = evselect.select(iter([b.fileno(), b]), (a, a), [], 0)
    assert (r, w, x) == ([b.fileno(), b], [a, a], [])
    # the same as the stdlib, duplicates included
    assert (r, w, x) == stdlib_select.select([b.fileno(), b], [a, a], [], 0)


def test_select_waits_for_readable(pair):
    a, b = pair
    steps = []

    def writer():
        for i in range(5):
            sleep(0.001)
            steps.append(i)
        a.send(b"x")

    g = spawn(writer)
    start = time.monotonic()
    assert evselect.select([b], [], [], 10) == ([b], [], [])
    # the writer ran all its steps while select waited
    assert steps == [0, 1, 2, 3, 4]
    assert time.monotonic() - start >= 0.005 - EPS
    g.join()


def test_select_waits_for_writable(pair):
    a, b = pair
    a.setblocking(False)
    try:
        while True:
            a.send(b"x" * 65536)
    except BlockingIOError:
        pass
    assert evselect.select([], [a], [], 0) == ([], [], [])

    def drain():
        sleep(0.01)
        while True:
            try:
                b.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return

    g = spawn(drain)
    try:
        assert evselect.select([], [a], [], 10) == ([], [a], [])
    finally:
        g.kill()


def test_select_reports_everything_ready_in_one_wake(pair):
    a, b = pair
    c, d = socket.socketpair()
    try:
        def writer():
            sleep(0.01)
            a.send(b"x")
            c.send(b"y")

        g = spawn(writer)
        assert evselect.select([b, d], [], [], 10) == ([b, d], [], [])
        g.join()
    finally:
        c.close()
        d.close()


def test_select_reports_hangup_as_readable(pair):
    a, b = pair

    def closer():
        sleep(0.01)
        a.close()

    g = spawn(closer)
    assert evselect.select([b], [], [], 10) == ([b], [], [])
    assert b.recv(10) == b""
    g.join()


# -- select(): timeouts ------------------------------------------------------------------------

def test_select_timeout_returns_empty_lists(pair):
    a, b = pair
    start = time.monotonic()
    assert evselect.select([b], [], [], 0.1) == ([], [], [])
    assert time.monotonic() - start >= 0.1 - EPS


def test_select_zero_timeout_does_not_wait(pair):
    a, b = pair
    start = time.monotonic()
    assert evselect.select([b], [], [], 0) == ([], [], [])
    assert evselect.select([b], [], [], 0.0) == ([], [], [])
    assert time.monotonic() - start < 1.0


def test_select_with_no_fds_sleeps():
    start = time.monotonic()
    assert evselect.select([], [], [], 0.05) == ([], [], [])
    assert time.monotonic() - start >= 0.05 - EPS


def test_select_timeout_lets_others_run(pair):
    a, b = pair
    with Ticker(0.005) as ticker:
        assert evselect.select([b], [], [], 0.1) == ([], [], [])
        assert ticker.ticks >= 1


def test_select_zero_timeout_yields(pair):
    # a greenlet polling with timeout 0 in a loop must not starve the others
    a, b = pair
    flag = []
    spawn(flag.append, 1)
    for _ in range(1000):
        if flag:
            break
        evselect.select([b], [], [], 0)
    assert flag == [1]


@pytest.mark.parametrize("timeout", [
    -1, -0.5, float("nan"), float("inf"), -float("inf"), 1e300, 2 ** 70, "1",
    decimal.Decimal("0.01"), [], object()])
def test_select_bad_timeout_like_stdlib(pair, timeout):
    # The same exception and message as the running CPython's select (3.15 accepts more
    # than 3.10-3.14 did). With a writable socket in wlist, a timeout the stdlib accepts
    # returns at once on both.
    a, _ = pair
    expected = raised(stdlib_select.select, [], [a], [], timeout)
    if isinstance(timeout, (str, list)) or type(timeout) is object or timeout != timeout:
        assert expected is not None  # refused by every supported CPython
    assert raised(evselect.select, [], [a], [], timeout) == expected


# -- select(): bad fds -------------------------------------------------------------------------

def test_select_bad_fds_like_stdlib(pair):
    a, b = pair
    dead = socket.socket()
    dead.close()

    class BadFileno:
        def fileno(self):
            return "3"

    cases = [[-1], [object()], ["x"], [3.0], [2 ** 40], [dead], [BadFileno()],
             [b, closed_fd()]]
    for fds in cases:
        expected = raised(stdlib_select.select, fds, [], [], 0)
        assert expected is not None, fds
        for args in ((fds, [], []), ([], fds, []), ([], [], fds)):
            assert raised(evselect.select, *args, 0) == expected, args
            assert raised(evselect.select, *args, 1) == expected, args


def test_select_closed_fd_is_ebadf():
    with pytest.raises(OSError) as info:
        evselect.select([closed_fd()], [], [], None)
    assert info.value.errno == errno.EBADF


def high_fd(fd: int) -> int:
    """A duplicate of ``fd`` numbered above FD_SETSIZE (1024), or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2100:
        pytest.skip("RLIMIT_NOFILE too low for an fd above FD_SETSIZE")
    return fcntl.fcntl(fd, fcntl.F_DUPFD, 2000)


def test_select_fd_above_fd_setsize(pair):
    a, b = pair
    big = high_fd(b.fileno())
    try:
        with pytest.raises(ValueError):
            stdlib_select.select([big], [], [], 0)  # the stdlib cannot
        assert evselect.select([big], [big], [], 0) == ([], [big], [])
        g = spawn(lambda: (sleep(0.01), a.send(b"x")))
        assert evselect.select([big], [], [], 10) == ([big], [], [])
        assert evselect.select([big, b], [], [], 0) == ([big, b], [], [])
        g.join()
    finally:
        os.close(big)
    with pytest.raises(OSError) as info:
        evselect.select([big], [], [], 0)
    assert info.value.errno == errno.EBADF
    with pytest.raises(ValueError):
        evselect.select([big, -1], [], [], 0)


# -- select(): xlist ---------------------------------------------------------------------------

@pytest.fixture
def tcp_pair():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
    yield client, conn
    client.close()
    conn.close()


def test_select_xlist_reports_urgent_data(tcp_pair):
    client, conn = tcp_pair
    assert evselect.select([conn], [], [conn], 0) == ([], [], [])
    client.send(b"!", socket.MSG_OOB)
    stdlib_select.select([], [], [conn], 5)  # until it has arrived
    assert evselect.select([], [], [conn], 0) == ([], [], [conn])
    assert evselect.select([], [], [conn], None) == ([], [], [conn])
    assert conn.recv(1, socket.MSG_OOB) == b"!"

    def writer():
        sleep(0.01)
        client.send(b"data")
        client.send(b"?", socket.MSG_OOB)
        stdlib_select.select([], [], [conn], 5)  # both arrived before the hub polls

    g = spawn(writer)
    # woken by the normal data; the urgent data is reported as well
    assert evselect.select([conn], [], [conn], 10) == ([conn], [], [conn])
    g.join()


# -- select(): cleanup -------------------------------------------------------------------------

def test_select_kill_leaves_no_watcher(pair):
    a, b = pair
    loop = get_hub().loop
    before = loop.activecnt
    g = spawn(evselect.select, [b], [], [], None)
    sleep(0)  # g starts and blocks in select
    assert not g.dead
    assert loop.activecnt > before
    g.kill()
    assert isinstance(g.value, GreenletExit)
    assert loop.activecnt == before
    # and with a timer
    g = spawn(evselect.select, [b, a.fileno()], [], [], 30)
    sleep(0)
    assert loop.activecnt > before
    g.kill()
    assert loop.activecnt == before


def test_select_timeout_exception_leaves_no_watcher(pair):
    a, b = pair
    loop = get_hub().loop
    before = loop.activecnt
    start = time.monotonic()
    with pytest.raises(Timeout):
        with Timeout(0.05):
            evselect.select([b], [], [], None)
    assert time.monotonic() - start >= 0.05 - EPS
    assert loop.activecnt == before


def test_select_from_a_loop_callback(pair):
    a, b = pair
    a.send(b"x")
    results = []
    get_hub().loop.run_callback(
        lambda: results.append(evselect.select([b], [a], [], 0)))
    sleep(0.01)
    assert results == [([b], [a], [])]


def test_select_and_poll_in_another_thread(pair):
    # each thread waits through its own hub and loop
    a, b = pair
    out = []

    def run():
        g = spawn(lambda: (sleep(0.01), a.send(b"x")))
        out.append(evselect.select([b], [], [], 10))
        p = evselect.poll()
        p.register(b, evselect.POLLIN)
        out.append(p.poll(10000))
        out.append(get_hub().loop.default)
        g.join()
        get_hub().destroy()

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert out == [([b], [], []), [(b.fileno(), evselect.POLLIN)], False]


# -- many fds ----------------------------------------------------------------------------------

@pytest.fixture
def many_pairs():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1100:
        pytest.skip("RLIMIT_NOFILE too low for 500 socketpairs")
    pairs = []
    try:
        for _ in range(500):
            pairs.append(socket.socketpair())
        yield pairs
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_select_many_fds_few_ready(many_pairs):
    readers = [b for a, b in many_pairs]
    chosen = [7, 250, 499]
    assert evselect.select(readers, [], [], 0) == ([], [], [])

    def writer():
        sleep(0.01)
        for i in reversed(chosen):
            many_pairs[i][0].send(b"x")

    with Ticker(0.001) as ticker:
        g = spawn(writer)
        r, w, x = evselect.select(readers, [], [], 10)
        assert r == [readers[i] for i in chosen]  # in the order given
        assert ticker.ticks >= 1
    assert evselect.select(readers, [], [], 0)[0] == r
    g.join()


def test_poll_many_fds_few_ready(many_pairs):
    p = evselect.poll()
    for a, b in many_pairs:
        p.register(b, evselect.POLLIN)
    chosen = [3, 333]

    def writer():
        sleep(0.01)
        for i in chosen:
            many_pairs[i][0].send(b"x")

    g = spawn(writer)
    result = p.poll(10000)
    assert sorted(result) == sorted((many_pairs[i][1].fileno(), evselect.POLLIN)
                                    for i in chosen)
    g.join()


# -- poll ----------------------------------------------------------------------------------

def test_poll_ready_at_once_like_stdlib(pair):
    a, b = pair
    p, q = evselect.poll(), stdlib_select.poll()
    for poller in (p, q):
        poller.register(a)
        poller.register(b.fileno(), stdlib_select.POLLIN)
    assert p.poll() == q.poll(0) == [(a.fileno(), stdlib_select.POLLOUT)]
    a.send(b"x")
    assert p.poll(0) == q.poll(0)
    assert sorted(p.poll(0)) == [(a.fileno(), stdlib_select.POLLOUT),
                                 (b.fileno(), stdlib_select.POLLIN)]
    p.modify(a, stdlib_select.POLLIN)
    assert p.poll(None) == [(b.fileno(), stdlib_select.POLLIN)]
    p.unregister(b)
    assert p.poll(0) == []


def test_poll_waits(pair):
    a, b = pair
    p = evselect.poll()
    p.register(b, evselect.POLLIN)
    steps = []

    def writer():
        for i in range(5):
            sleep(0.001)
            steps.append(i)
        a.send(b"x")

    g = spawn(writer)
    assert p.poll() == [(b.fileno(), evselect.POLLIN)]
    assert steps == [0, 1, 2, 3, 4]
    b.recv(1)
    g = spawn(writer)
    assert p.poll(-1) == [(b.fileno(), evselect.POLLIN)]  # negative: no limit
    g.join()


def test_poll_timeout_in_milliseconds(pair):
    a, b = pair
    p = evselect.poll()
    p.register(b, evselect.POLLIN)
    with Ticker(0.005) as ticker:
        start = time.monotonic()
        assert p.poll(100) == []
        assert time.monotonic() - start >= 0.1 - EPS
        assert ticker.ticks >= 1
    start = time.monotonic()
    assert p.poll(0) == []
    assert p.poll(0.5) == []
    assert time.monotonic() - start < 1.0


def test_poll_hangup_like_stdlib(pair):
    a, b = pair
    p, q = evselect.poll(), stdlib_select.poll()
    p.register(b, evselect.POLLIN)
    q.register(b, evselect.POLLIN)
    g = spawn(lambda: (sleep(0.01), a.close()))
    result = p.poll(10000)
    assert result == q.poll(0)
    assert result[0][1] & evselect.POLLHUP
    g.join()


def test_poll_closed_fd_is_pollnval_like_stdlib():
    fd = closed_fd()
    p, q = evselect.poll(), stdlib_select.poll()
    p.register(fd)
    q.register(fd)
    assert p.poll() == q.poll(0) == [(fd, evselect.POLLNVAL)]


def test_poll_registration_errors_like_stdlib(pair):
    a, b = pair
    p, q = evselect.poll(), stdlib_select.poll()
    dead = socket.socket()
    dead.close()
    for fd in (-1, object(), 2 ** 40, dead, 3.0):
        assert raised(p.register, fd) == raised(q.register, fd) is not None
    for mask in (-1, 2 ** 16, "x", 1.0):
        assert raised(p.register, a, mask) == raised(q.register, a, mask) is not None
    assert raised(p.modify, b, 1) == raised(q.modify, b, 1) is not None
    with pytest.raises(FileNotFoundError):
        p.modify(b, 1)
    assert raised(p.unregister, b) == raised(q.unregister, b) is not None
    with pytest.raises(KeyError):
        p.unregister(b)
    assert p.poll(0) == q.poll(0) == []  # nothing was registered by the failures


@pytest.mark.parametrize("timeout", [
    float("nan"), 1e300, 2 ** 70, 2 ** 31, -2 ** 40, "1", decimal.Decimal("1"), []])
def test_poll_bad_timeout_like_stdlib(pair, timeout):
    # As for select: 3.15's poll takes any real number of milliseconds and clamps large
    # ones, where 3.10-3.14 raise; evloop follows the running version. A writable socket
    # registered for POLLOUT makes an accepted timeout return at once on both.
    a, _ = pair
    ours, theirs = evselect.poll(), stdlib_select.poll()
    ours.register(a, evselect.POLLOUT)
    theirs.register(a, evselect.POLLOUT)
    expected = raised(theirs.poll, timeout)
    if isinstance(timeout, (str, list)) or timeout != timeout or timeout == 1e300:
        assert expected is not None  # refused by every supported CPython
    assert raised(ours.poll, timeout) == expected


def test_poll_concurrent_invocation(pair):
    a, b = pair
    p = evselect.poll()
    p.register(b, evselect.POLLIN)
    g = spawn(p.poll)
    sleep(0)
    with pytest.raises(RuntimeError):
        p.poll(0)
    a.send(b"x")
    assert g.get() == [(b.fileno(), evselect.POLLIN)]
    assert p.poll(0) == [(b.fileno(), evselect.POLLIN)]


def test_poll_kill_leaves_no_watcher(pair):
    a, b = pair
    loop = get_hub().loop
    before = loop.activecnt
    p = evselect.poll()
    p.register(b, evselect.POLLIN)
    g = spawn(p.poll, 30000)
    sleep(0)
    assert loop.activecnt > before
    g.kill()
    assert loop.activecnt == before
    a.send(b"x")
    assert p.poll(1000) == [(b.fileno(), evselect.POLLIN)]  # usable again


def test_poll_pri_only_does_not_wake_but_is_reported(tcp_pair):
    client, conn = tcp_pair
    p = evselect.poll()
    p.register(conn, evselect.POLLPRI)
    p.register(client, evselect.POLLIN)
    client.send(b"!", socket.MSG_OOB)
    stdlib_select.select([], [], [conn], 5)
    assert p.poll(0) == [(conn.fileno(), evselect.POLLPRI)]


class CooperativePollSelector(stdlib_selectors.PollSelector):
    # what monkey-patching does to the stdlib's PollSelector
    _selector_cls = evselect.poll


def test_poll_under_stdlib_pollselector(pair):
    a, b = pair
    with CooperativePollSelector() as sel:
        sel.register(b, stdlib_selectors.EVENT_READ, "b")
        with Ticker(0.001) as ticker:
            g = spawn(lambda: (sleep(0.02), a.send(b"x")))
            events = sel.select(10)
            assert ticker.ticks >= 1
        assert [(key.fileobj, key.data, ev) for key, ev in events] == \
            [(b, "b", stdlib_selectors.EVENT_READ)]
        start = time.monotonic()
        b.recv(1)
        assert sel.select(0.05) == []
        assert time.monotonic() - start >= 0.05 - EPS
        g.join()
