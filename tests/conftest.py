"""Shared test configuration: a hang watchdog and a leak check around every test.

Watchdog: a test that hangs (e.g. a loop that never wakes up) must not block the whole run
forever. After WATCHDOG_SECONDS faulthandler dumps every thread's traceback and exits the
process, so the hang is visible in the output. The dump goes to a duplicate of the real
stderr taken in pytest_configure, while pytest's output capture is suspended: during a
test, fd 2 is pytest's capture file, and a process that exits from the watchdog never shows
what was captured. Long tests re-arm it through the fixture's value (for example per
hypothesis example: tests/test_fuzz_core.py).

Leak check (autouse, every test): before the test it notes the open fds, the active
watchers of the thread's hub's loop, the number of running ``Greenlet``s and of queued loop
callbacks; after a passing test it fails (an error at teardown) listing whatever is left
over: the fd with its ``/proc/self/fd`` target, the watcher's repr, the greenlet's repr.
It must stay cheap (the suite runs it ~1400 times): the greenlet count is a C counter kept
by ``Greenlet.run`` (``evloop.core._greenlets_running``), not a ``gc.get_objects()`` scan,
and only when a first look finds something does it let the hub run a few iterations and
collect garbage (a dropped socket in a reference cycle is closed by the collector, a
greenlet blocked forever on an unreachable Event is killed by it) before looking again.

What belongs to the hub is not a leak: the hub is created before the first look (so its
loop's epoll and wake-up fds predate it), and the fds libev opens lazily for the loop
(``loop.internal_fds()``: inotify for stat watchers, the timerfd) are ignored. New
``threading`` threads still alive are leftovers too, except the ones that stay by design
(``_persistent_thread``); thread-pool workers are not ``threading`` threads.

A test whose point is to leave state behind says so: ``@pytest.mark.allow_leftovers(
"greenlets", reason="...")`` (kinds: fds, watchers, greenlets, callbacks, threads; none
named = all). A test that failed is not checked: its leftovers are not the news.

Shared fixtures (below the leak check): ``no_leaked_watchers`` (a file opts in with
``pytestmark = pytest.mark.usefixtures("no_leaked_watchers")``), ``kill_after`` (the same
check, after killing the greenlets the test lists in it), ``no_child_watches`` (no child
watch or SIGCHLD handler of evloop.os left), ``hub``, ``errors``, ``pair``, ``closing``,
``ticker``, the session's TLS ``certs``, and the session's database servers
``postgres_dsn`` and ``redis_url`` (started by tests/_services.py). Plain helpers that
several files share (``Ticker``, ``Closer``, ``run_python``, ``run_py``, ...) are in
tests/_helpers.py.

Tests of behaviour evloop shares with gevent take the ``impl`` fixture (ids "evloop" and
"gevent") and run the same body against ``evloop.<module>`` and ``gevent.<module>``. gevent's
hub, its loop's fds and its threads stay for the life of the process, which the leak check
would report after every test, so the "gevent" items of a test file run together in one
subprocess (``python -m pytest <file>`` with EVLOOP_TESTS_GEVENT_SIDE=1, which selects only
them and exempts them from the leak check); each "gevent" item here passes or fails with
its outcome there (``pytest_pyfunc_call`` below), and its fixture value is None here.

Slow tests (soak, fuzz, long subprocess batteries, single tests over ~5 s) carry
``@pytest.mark.slow``; ``python -m pytest -m "not slow"`` skips them for a quick
local run (CI runs everything).
"""

import faulthandler
import gc
import io
import os
import signal
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

import evloop
from evloop import core
from evloop.greenlet import Greenlet
from evloop.hub import get_hub, get_hub_if_exists

import _services
from _helpers import Closer, Ticker, make_certs

WATCHDOG_SECONDS = 120

LEFTOVER_KINDS = ("fds", "watchers", "greenlets", "callbacks", "threads")
# rounds of "let the hub run, collect garbage, look again" before a leftover counts
SETTLE_ROUNDS = 3
_FD_DIR = "/proc/self/fd"


_watchdog_fd = None  # the real stderr, duplicated while capture is off


def pytest_configure(config):
    global _watchdog_fd
    try:
        _watchdog_fd = os.dup(sys.__stderr__.fileno())
    except (AttributeError, OSError, ValueError):
        _watchdog_fd = None  # no usable stderr: fall back to sys.__stderr__


def pytest_unconfigure(config):
    global _watchdog_fd
    if _watchdog_fd is not None:
        os.close(_watchdog_fd)
        _watchdog_fd = None


def arm_watchdog(seconds=WATCHDOG_SECONDS):
    """(Re)start the countdown: after `seconds`, dump every stack and exit."""
    target = _watchdog_fd if _watchdog_fd is not None else sys.__stderr__
    faulthandler.dump_traceback_later(seconds, exit=True, file=target)


@pytest.fixture(autouse=True)
def _hang_watchdog():
    arm_watchdog()
    try:
        yield arm_watchdog
    finally:
        faulthandler.cancel_dump_traceback_later()


# -- leak check ----------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item._leak_check_passed = report.passed  # a failed test's leftovers are no news


def _open_fds():
    """The open fds; the one listdir used for the directory is closed again by now (or,
    if another thread reused its number, a real fd)."""
    fds = set()
    for name in os.listdir(_FD_DIR):
        fd = int(name)
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.add(fd)
    return fds


def _fd_target(fd):
    try:
        return os.readlink(f"{_FD_DIR}/{fd}")
    except OSError as exc:
        return f"? ({exc.strerror})"


def _live_loop(hub):
    loop = getattr(hub, "loop", None) if hub is not None else None
    if loop is None or loop.destroyed:
        return None
    return loop


class _Snapshot:
    __slots__ = ("hub", "fds", "watchers", "greenlets", "callbacks", "threads")

    def __init__(self, hub):
        self.hub = hub
        loop = _live_loop(hub)
        self.fds = _open_fds()
        # strong references: an id reused by a new watcher must not hide it
        self.watchers = [w for w in loop.watchers() if w.active] if loop is not None else []
        self.greenlets = core._greenlets_running()
        self.callbacks = loop.callback_count if loop is not None else 0
        self.threads = set(threading.enumerate())


def _leftovers(before, allowed):
    """{kind: [description, ...]} of what is there now and was not before."""
    found = {}
    hub = get_hub_if_exists()
    loop = _live_loop(hub)
    if "fds" not in allowed:
        owned = set()
        for h in {id(before.hub): before.hub, id(hub): hub}.values():
            lp = _live_loop(h)
            if lp is not None:
                owned.update(lp.internal_fds())
        new = sorted(_open_fds() - before.fds - owned)
        if new:
            found["fds"] = [f"fd {fd} -> {_fd_target(fd)}" for fd in new]
    if "watchers" not in allowed and loop is not None:
        old = {id(w) for w in before.watchers}
        new = [w for w in loop.watchers() if w.active and id(w) not in old]
        if new:
            found["watchers"] = [_describe_watcher(w) for w in new]
    if "greenlets" not in allowed:
        extra = core._greenlets_running() - before.greenlets
        if extra > 0:
            found["greenlets"] = [f"{extra} running"]
    if "callbacks" not in allowed and loop is not None:
        extra = loop.callback_count - (before.callbacks if hub is before.hub else 0)
        if extra > 0:
            found["callbacks"] = [f"{extra} queued"]
    if "threads" not in allowed:
        new = [t for t in threading.enumerate()
               if t not in before.threads and t.is_alive() and not _persistent_thread(t)]
        if new:
            found["threads"] = [repr(t) for t in new]
    return found


def _persistent_thread(t):
    """Threads that stay by design once started: threads the threading module did not
    start (thread-pool workers are ``_thread`` threads; one that calls ``current_thread()``
    gets a ``_DummyThread`` that never leaves ``enumerate()``), and pycares' single daemon
    thread that destroys closed channels."""
    if isinstance(t, threading._DummyThread):
        return True
    owner = getattr(getattr(t, "_target", None), "__self__", None)
    return type(owner).__name__ == "_ChannelShutdownManager"


def _describe_watcher(w):
    text = repr(w)
    cb = w.callback
    if isinstance(cb, core.Waiter):
        # hub.wait(): the watcher's callback is the Waiter of the greenlet blocked on it
        text += f" (a greenlet waits on it: {cb.greenlet!r})"
    elif cb is not None:
        text += f" callback={cb!r}"
    return text


def _running_greenlets():
    """The Greenlets started and not finished (a full heap scan: failure path only)."""
    from evloop.greenlet import Greenlet  # noqa: PLC0415

    found = []
    for obj in gc.get_objects():
        if isinstance(obj, Greenlet) and obj and not obj.dead:
            found.append(obj)
    return found


def _settle(before):
    """Let the hub finish what the test set in motion: a few loop iterations (queued
    callbacks, greenlets ending after a kill) and a garbage collection."""
    hub = get_hub_if_exists()
    if (hub is not None and _live_loop(hub) is not None and not hub.dead
            and hub.parent is not None and hub.parent is core.getcurrent()):
        for _ in range(3):
            core._c_sleep(0)
    for t in threading.enumerate():
        if t not in before.threads and t is not threading.current_thread():
            t.join(0.1)  # a thread that is finishing
    gc.collect()


@pytest.fixture(autouse=True)
def _leak_check(request):
    marker = request.node.get_closest_marker("allow_leftovers")
    allowed = set()
    if marker is not None:
        if not marker.kwargs.get("reason"):
            raise pytest.UsageError(f"{request.node.nodeid}: allow_leftovers needs reason=...")
        unknown = set(marker.args) - set(LEFTOVER_KINDS)
        if unknown:
            raise pytest.UsageError(f"{request.node.nodeid}: allow_leftovers: unknown kinds "
                                    f"{sorted(unknown)}; known: {LEFTOVER_KINDS}")
        allowed = set(marker.args or LEFTOVER_KINDS)
    if len(allowed) == len(LEFTOVER_KINDS):
        yield
        return
    before = _Snapshot(get_hub())  # the hub and its loop's fds exist before the first look
    yield
    if not getattr(request.node, "_leak_check_passed", False):
        return  # failed or skipped: its leftovers are not the news
    found = _leftovers(before, allowed)
    for _ in range(SETTLE_ROUNDS):
        if not found:
            return
        _settle(before)
        found = _leftovers(before, allowed)
    if not found:
        return
    if "greenlets" in found:
        found["greenlets"].append("running Greenlets (this test's and any older ones):")
        found["greenlets"] += [f"  {g!r}" for g in _running_greenlets()]
    lines = [f"{request.node.nodeid} left behind:"]
    for kind, items in found.items():
        lines.append(f"  {kind}:")
        lines.extend(f"    {item}" for item in items)
    pytest.fail("\n".join(lines), pytrace=False)


# -- shared fixtures -----------------------------------------------------------------------

@pytest.fixture
def no_leaked_watchers():
    """The hub's loop has no more active watchers after the test than before it."""
    loop = get_hub().loop
    before = loop.activecnt
    yield
    assert loop.activecnt == before, "a watcher was left active"


@pytest.fixture
def kill_after():
    """A list: the greenlets the test appends to it are killed after the test (raw
    greenlets too); then the thread's hub must be the same one, alive, and its loop must
    have no more active watchers than before the test."""
    hub = get_hub()
    before = hub.loop.activecnt
    started = []
    yield started
    evloop.killall([g for g in started if not g.dead], timeout=10.0)
    for g in started:
        if not isinstance(g, Greenlet) and not g.dead:
            evloop.kill(g)
    evloop.sleep(0)
    assert get_hub() is hub, "the test replaced the thread's hub"
    assert not hub.dead, "the test killed the hub"
    assert hub.loop.activecnt == before, "a watcher was left active"


@pytest.fixture
def no_child_watches():
    """After the test, evloop.os watches no child and the SIGCHLD handler is gone. A child
    still watched (a failed test) is killed and reaped first: its referenced watch would
    keep the hub's loop alive for the tests after it."""
    import evloop.os as evos  # noqa: PLC0415 - only the files about children load it

    hub = get_hub()
    evloop.sleep(0)
    yield
    evloop.sleep(0)
    evloop.sleep(0)
    left = {pid: list(watches) for pid, watches in evos._watches.items()}
    if left:
        for pid in left:
            if pid > 0:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        while evos._watches and time.monotonic() < deadline:
            evloop.sleep(0.01)
    assert not left, left
    assert not hub.loop.sigchld_installed
    evos._statuses.clear()


@pytest.fixture
def hub():
    """The thread's hub, started, with queued callbacks settled before and after the test."""
    hub = get_hub()
    evloop.sleep(0)
    yield hub
    evloop.sleep(0)


@pytest.fixture
def errors():
    """The hub's exception stream, captured (failing greenlets are reported there)."""
    hub = get_hub()
    old = hub.exception_stream
    hub.exception_stream = stream = io.StringIO()
    try:
        yield stream
    finally:
        hub.exception_stream = old


@pytest.fixture
def pair():
    """A connected AF_UNIX stream pair of stdlib sockets."""
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def closing():
    """A ``Closer``: what the test hands it is closed (greenlets killed) after the test."""
    closer = Closer()
    yield closer
    closer.close()


@pytest.fixture
def ticker():
    """A ``Ticker`` at 1 ms, stopped after the test."""
    t = Ticker()
    yield t
    t.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """Paths: ca, cert, key (server: localhost, 127.0.0.1), client_cert, client_key."""
    return make_certs(tmp_path_factory.mktemp("evloop-tls"))


@pytest.fixture(scope="session")
def postgres_dsn():
    """A PostgreSQL server for the session (tests/_services.py): the DSN of its empty
    database. Fails under CI, skips locally, when PostgreSQL is not installed."""
    yield from _services.postgres()


@pytest.fixture(scope="session")
def redis_url():
    """A redis-server for the session (tests/_services.py): ``redis://127.0.0.1:PORT/0``."""
    yield from _services.redis()


# -- the same test against evloop and gevent -------------------------------------------------

GEVENT_SIDE_ENV = "EVLOOP_TESTS_GEVENT_SIDE"
_GEVENT_SIDE_TIMEOUT = 600
_gevent_side_results = {}  # test file -> (outcome by node id, the run's output)


def _is_gevent_side(item):
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("impl") == "gevent"


@pytest.fixture(params=["evloop", "gevent"])
def impl(request):
    """The package a gevent-compatible test runs against: "evloop", or "gevent" in the
    subprocess that runs a file's gevent items (None in this process, where such an item's
    body does not run)."""
    if request.param == "gevent" and not os.environ.get(GEVENT_SIDE_ENV):
        return None
    return request.param


def pytest_collection_modifyitems(config, items):
    if not os.environ.get(GEVENT_SIDE_ENV):
        return
    keep = [item for item in items if _is_gevent_side(item)]
    dropped = [item for item in items if not _is_gevent_side(item)]
    for item in keep:
        item.add_marker(pytest.mark.allow_leftovers(
            reason="gevent's hub, loop and threads live as long as the process"))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def _gevent_side(item):
    path = str(item.path)
    if path not in _gevent_side_results:
        cmd = [sys.executable, "-m", "pytest", path, "-q", "-rA", "-p", "no:cacheprovider",
               "-p", "no:randomly"]
        env = dict(os.environ, **{GEVENT_SIDE_ENV: "1"})
        root = str(item.config.rootpath)
        try:
            run = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                                 timeout=_GEVENT_SIDE_TIMEOUT)
            output = run.stdout + run.stderr
        except subprocess.TimeoutExpired as exc:
            output = f"timed out after {_GEVENT_SIDE_TIMEOUT}s\n{exc.stdout or ''}"
        outcomes = {}
        # "OUTCOME node-id" or "OUTCOME node-id - message" (an id may hold spaces)
        for match in re.finditer(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (.+?)"
                                 r"(?: - .*)?$", output, re.M):
            outcomes.setdefault(match.group(2), match.group(1))
        _gevent_side_results[path] = (outcomes, output)
    return _gevent_side_results[path]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if not _is_gevent_side(pyfuncitem) or os.environ.get(GEVENT_SIDE_ENV):
        return None
    outcomes, output = _gevent_side(pyfuncitem)
    outcome = outcomes.get(pyfuncitem.nodeid)
    if outcome != "PASSED":
        pytest.fail(f"with gevent (in a subprocess): {outcome or 'no result'}\n{output}",
                    pytrace=False)
    return True
