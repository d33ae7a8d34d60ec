"""Tests for ``evloop.core``, the low-level libev loop (spec: docs/core.md).

Timing rules (the CI box is a busy 2-core machine): elapsed times are only checked against
lower bounds, or against upper bounds with a >= 10x margin ("the loop woke up long before its
30 s keep-alive timer").  Anything that can take down the interpreter (signals, fork, SIGINT,
garbage collection of live watchers, the default loop's SIGCHLD handling) runs in a
subprocess.
"""

import errno
import gc
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest

from evloop import core

LINUX = sys.platform.startswith("linux")
# The directory holding the `evloop` package that this process imported; subprocesses import
# the very same one.
PKG_PARENT = str(Path(core.__file__).resolve().parent.parent)

# How long a guard timer waits before giving up on an event that should come much sooner.
GUARD = 10.0
# A keep-alive timer that should never fire during a test.
LONG = 30.0


# --------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------


def noop(*args):
    pass


@pytest.fixture
def loop():
    lp = core.loop(default=False)
    yield lp
    lp.destroy()


@pytest.fixture
def make_loop():
    """Factory for extra private loops; all destroyed at teardown."""
    loops = []

    def make(*args, **kwargs):
        kwargs.setdefault("default", False)
        lp = core.loop(*args, **kwargs)
        loops.append(lp)
        return lp

    yield make
    for lp in loops:
        lp.destroy()


@pytest.fixture
def sockpair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def guard(lp, seconds=GUARD):
    """A ref=False timer that breaks every run() of ``lp`` after ``seconds``.

    It keeps a test from hanging when an expected event never comes; the test's own
    assertions then fail.  Being unreferenced it never keeps run() alive by itself.
    """
    def on_timeout():
        lp.break_(core.EVBREAK_ALL)

    g = lp.timer(seconds, ref=False)
    g.start(on_timeout)
    return g


def keep_alive(lp, seconds=LONG):
    """A referenced timer that keeps run() blocked; it should never fire in a test."""
    k = lp.timer(seconds)
    k.start(noop)
    return k


PRELUDE = """\
import errno, gc, os, signal, socket, sys, threading, time, traceback, weakref
from evloop import core
def noop(*args):
    pass
"""


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONWARNINGS", None)
    return env


def script_argv(code, argv=()):
    return [sys.executable, "-X", "faulthandler", "-c", PRELUDE + textwrap.dedent(code),
            *argv]


def run_script(code, timeout=60, expect_rc=0, argv=()):
    """Run ``code`` in a fresh interpreter (``sys.argv[1:]`` = ``argv``); check its exit
    code; return the CompletedProcess."""
    proc = subprocess.run(
        script_argv(code, argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PKG_PARENT,
        env=_env(),
    )
    if expect_rc is not None:
        assert proc.returncode == expect_rc, (
            f"exit code {proc.returncode} (expected {expect_rc})\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


def fd_count():
    return len(os.listdir("/proc/self/fd"))


# --------------------------------------------------------------------------------------
# module level
# --------------------------------------------------------------------------------------


class TestModule:
    def test_all_names_exist(self):
        assert isinstance(core.__all__, (list, tuple))
        missing = [name for name in core.__all__ if not hasattr(core, name)]
        assert missing == []

    def test_documented_names_exported(self):
        for name in ("loop", "READ", "WRITE", "MINPRI", "MAXPRI", "EVBREAK_ONE", "EVBREAK_ALL",
                     "get_version", "get_header_version", "supported_backends",
                     "recommended_backends"):
            assert hasattr(core, name), name

    def test_event_constants(self):
        assert core.READ == 1
        assert core.WRITE == 2
        assert core.READ & core.WRITE == 0

    def test_priority_constants(self):
        assert core.MINPRI == -2
        assert core.MAXPRI == 2

    def test_break_constants(self):
        assert core.EVBREAK_ONE == 1
        assert core.EVBREAK_ALL == 2

    def test_get_version(self):
        version = core.get_version()
        assert isinstance(version, str)
        assert re.search(r"\d+\.\d+", version), version
        assert "4.33" in version  # vendor/libev is libev 4.33

    def test_get_header_version(self):
        header = core.get_header_version()
        assert isinstance(header, str)
        assert re.search(r"\d+\.\d+", header), header
        # compiled from the same vendored sources: header and library agree
        assert header == core.get_version()

    def test_supported_backends(self):
        backends = core.supported_backends()
        assert isinstance(backends, list)
        assert backends and all(isinstance(b, str) for b in backends)
        assert "select" in backends or "poll" in backends
        if LINUX:
            assert {"epoll", "poll", "select"} <= set(backends)

    def test_recommended_backends(self):
        recommended = core.recommended_backends()
        assert isinstance(recommended, list)
        assert recommended and all(isinstance(b, str) for b in recommended)
        assert set(recommended) <= set(core.supported_backends())
        if LINUX:
            assert "epoll" in recommended


# --------------------------------------------------------------------------------------
# loop creation, backends, flags
# --------------------------------------------------------------------------------------


class TestLoopCreation:
    def test_private_loop(self, make_loop):
        lp = make_loop()
        assert lp.default is False
        assert lp.backend in core.supported_backends()
        assert isinstance(lp.backend_int, int) and lp.backend_int > 0

    def test_two_private_loops_are_distinct(self, make_loop):
        assert make_loop() is not make_loop()

    def test_default_flags_use_epoll_on_linux(self, make_loop):
        if not LINUX:
            pytest.skip("epoll is Linux-only")
        assert make_loop().backend == "epoll"

    def test_default_loop_identity(self):
        # in a subprocess: the default loop owns SIGCHLD handling, keep it out of pytest
        proc = run_script("""
            a = core.loop(default=True)
            b = core.loop(default=True)
            assert a is b
            assert a.default is True
            c = core.loop()                     # default=None in the main thread
            assert c is a, (c, a)
            d = core.loop(default=False)
            assert d is not a and d.default is False
            # the default loop works
            fired = []
            a.timer(0.001).start(fired.append, 1)
            a.run()
            assert fired == [1], fired
            d.destroy()
            a.destroy()                         # no longer the default loop
            assert a.default is False
            e = core.loop(default=True)         # a new default loop
            assert e is not a and e.default is True
            print("OK")
        """)
        assert proc.stdout.strip() == "OK"

    def test_default_none_in_thread_is_a_new_loop(self):
        result = {}

        def target():
            try:
                lp = core.loop()
                result["default"] = lp.default
                t = lp.timer(0.001)
                t.start(result.setdefault, "fired", True)
                lp.run()
                lp.destroy()
            except BaseException as exc:  # pragma: no cover - reported below
                result["error"] = exc

        th = threading.Thread(target=target)
        th.start()
        th.join(GUARD)
        assert not th.is_alive()
        assert "error" not in result, result
        assert result == {"default": False, "fired": True}

    @pytest.mark.parametrize("name", ["epoll", "poll", "select"])
    def test_backend_by_name_runs_io(self, make_loop, sockpair, name):
        if name not in core.supported_backends():
            pytest.skip(f"backend {name!r} not available on {sys.platform}")
        lp = make_loop(name)
        assert lp.backend == name
        a, b = sockpair
        got = []

        def on_read():
            got.append(b.recv(10))
            w.stop()

        w = lp.io(b.fileno(), core.READ)
        w.start(on_read)
        guard(lp)
        a.send(b"hi")
        lp.run()
        assert got == [b"hi"]

    def test_backend_flag_int_round_trip(self, make_loop):
        lp = make_loop("select")
        assert lp.backend == "select"
        lp2 = make_loop(lp.backend_int)
        assert lp2.backend == "select"
        assert lp2.backend_int == lp.backend_int

    def test_backend_comma_separated_with_flags(self, make_loop):
        lp = make_loop("poll,noenv")
        assert lp.backend == "poll"

    def test_backend_sequence(self, make_loop):
        assert make_loop(["select"]).backend == "select"
        assert make_loop(("poll", "noenv")).backend == "poll"

    @pytest.mark.parametrize("flag", ["noenv", "forkcheck", "noinotify", "signalfd", "nosigmask"])
    def test_non_backend_flag_names_accepted(self, make_loop, flag):
        lp = make_loop(flag)
        assert lp.backend in core.supported_backends()

    def test_unknown_backend_lists_choices(self):
        with pytest.raises(ValueError) as excinfo:
            core.loop("nosuchbackend", default=False)
        msg = str(excinfo.value)
        for name in core.supported_backends():
            assert name in msg, msg

    def test_unknown_name_in_list(self):
        with pytest.raises(ValueError):
            core.loop("select,bogus", default=False)

    def test_unavailable_backend_names_supported_ones(self):
        if "kqueue" in core.supported_backends():
            pytest.skip("kqueue is available here")
        with pytest.raises(ValueError) as excinfo:
            core.loop("kqueue", default=False)
        msg = str(excinfo.value)
        for name in core.supported_backends():
            assert name in msg, msg

    def test_fileno(self, make_loop):
        if LINUX:
            fd = make_loop("epoll").fileno()
            assert isinstance(fd, int) and fd >= 0
        assert make_loop("select").fileno() is None

    def test_internal_fds_are_the_fds_libev_opened_for_the_loop(self, make_loop, tmp_path):
        if not LINUX:
            pytest.skip("needs /proc/self/fd")
        lp = make_loop("epoll")
        fds = lp.internal_fds()
        # the epoll fd and the wake-up eventfd, opened with the loop
        assert lp.fileno() in fds and len(fds) == 2, fds
        targets = sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in fds)
        assert targets == ["anon_inode:[eventfd]", "anon_inode:[eventpoll]"]
        # the first stat watcher opens inotify's fd, which the loop keeps
        w = lp.stat(str(tmp_path))
        w.start(noop)
        w.stop()
        more = lp.internal_fds()
        assert set(fds) < set(more) and len(more) == 3
        (added,) = set(more) - set(fds)
        assert os.readlink(f"/proc/self/fd/{added}") == "anon_inode:inotify"
        lp.destroy()  # closes every one of them
        for fd in more:
            with pytest.raises(OSError):
                os.fstat(fd)
        # select() has no fd of its own: only the wake-up fd
        (wakeup,) = make_loop("select").internal_fds()
        assert os.readlink(f"/proc/self/fd/{wakeup}") == "anon_inode:[eventfd]"

    def test_destroy_releases_fds(self):
        if not LINUX:
            pytest.skip("needs /proc/self/fd")
        # warm-up: any lazily created process-wide state
        lp = core.loop(default=False)
        lp.run_callback_threadsafe(noop)
        lp.run()
        lp.destroy()
        before = fd_count()
        for _ in range(20):
            lp = core.loop(default=False)
            t = lp.timer(0.001)
            t.start(noop)
            lp.run_callback_threadsafe(noop)
            lp.async_().start(noop)
            lp.run(nowait=True)
            lp.destroy()
        assert fd_count() == before


# --------------------------------------------------------------------------------------
# running the loop
# --------------------------------------------------------------------------------------


class TestRun:
    def test_run_without_watchers_returns(self, loop):
        assert loop.run() is None

    def test_run_returns_when_last_watcher_stops(self, loop):
        fired = []
        t = loop.timer(0.001)
        t.start(fired.append, 1)
        loop.run()
        assert fired == [1]
        assert not t.active

    def test_nowait_does_not_block(self, loop):
        fired = []
        t = loop.timer(LONG)
        t.start(fired.append, 1)
        start = time.monotonic()
        loop.run(nowait=True)
        assert time.monotonic() - start < LONG / 3
        assert fired == []
        assert t.active
        t.stop()

    def test_nowait_runs_one_iteration(self, loop):
        calls = []
        i = loop.idle()
        i.start(calls.append, 1)
        before = loop.iteration
        loop.run(nowait=True)
        assert calls == [1]
        assert loop.iteration == before + 1
        i.stop()

    def test_once_returns_after_one_batch(self, loop):
        fired = []
        start = time.monotonic()
        loop.update_now()
        short = loop.timer(0.05)
        short.start(fired.append, "short")
        long_ = loop.timer(LONG)
        long_.start(fired.append, "long")
        loop.run(once=True)
        elapsed = time.monotonic() - start
        assert fired == ["short"]
        assert elapsed >= 0.04
        assert elapsed < LONG / 3
        assert long_.active
        long_.stop()

    def test_break_one(self, loop):
        count = []

        def tick():
            count.append(1)
            if len(count) == 3:
                loop.break_()

        t = loop.timer(0.001, 0.001)
        t.start(tick)
        loop.run()
        assert len(count) == 3
        assert t.active
        t.stop()

    def test_break_default_is_one_nested(self, loop):
        log = []
        keep = keep_alive(loop)

        def inner():
            log.append(("inner", loop.depth))
            loop.break_()                   # EVBREAK_ONE: only the nested run() returns

        def outer():
            log.append(("outer", loop.depth))
            loop.timer(0.001).start(inner)
            loop.run()
            log.append("nested returned")
            keep.stop()                     # now the outer run() can end

        loop.timer(0).start(outer)
        guard(loop)
        loop.run()
        log.append("outer returned")
        assert log == [("outer", 1), ("inner", 2), "nested returned", "outer returned"]
        assert loop.depth == 0

    def test_break_all_nested(self, loop):
        log = []
        keep = keep_alive(loop)

        def inner():
            log.append(("inner", loop.depth))
            loop.break_(core.EVBREAK_ALL)

        def outer():
            log.append(("outer", loop.depth))
            loop.timer(0.001).start(inner)
            loop.run()
            log.append("nested returned")

        loop.timer(0).start(outer)
        guard(loop)
        start = time.monotonic()
        loop.run()
        log.append("outer returned")
        assert time.monotonic() - start < LONG / 3
        assert log == [("outer", 1), ("inner", 2), "nested returned", "outer returned"]
        assert keep.active
        keep.stop()

    def test_depth(self, loop):
        depths = []
        assert loop.depth == 0
        loop.timer(0).start(lambda: depths.append(loop.depth))
        loop.run()
        assert depths == [1]
        assert loop.depth == 0

    def test_iteration_increments(self, loop):
        it0 = loop.iteration
        assert isinstance(it0, int)
        loop.run(nowait=True)
        it1 = loop.iteration
        loop.run(nowait=True)
        loop.run(nowait=True)
        assert it1 == it0 + 1
        assert loop.iteration == it1 + 2

    def test_now_is_cached_and_update_now_refreshes(self, loop):
        loop.update_now()
        n1 = loop.now()
        assert isinstance(n1, float)
        time.sleep(0.05)
        assert loop.now() == n1
        loop.update_now()
        n2 = loop.now()
        assert n2 - n1 >= 0.04

    def test_now_advances_with_iterations(self, loop):
        loop.update_now()
        n1 = loop.now()
        time.sleep(0.03)
        loop.run(nowait=True)
        assert loop.now() - n1 >= 0.02

    def test_activecnt(self, loop):
        assert loop.activecnt == 0
        t = loop.timer(LONG)
        t.start(noop)
        assert loop.activecnt == 1
        i = loop.idle()
        i.start(noop)
        assert loop.activecnt == 2
        u = loop.timer(LONG, ref=False)
        u.start(noop)
        assert loop.activecnt == 2
        t.stop()
        i.stop()
        u.stop()
        assert loop.activecnt == 0

    def test_pendingcnt_and_pending(self, loop):
        seen = []
        a = loop.timer(0)
        b = loop.timer(0)

        def cb(me, other):
            seen.append((me, other.pending, loop.pendingcnt))
            other.stop()                    # also cancels its pending event

        a.start(cb, "a", b)
        b.start(cb, "b", a)
        assert loop.pendingcnt == 0
        loop.run()
        # both expired in the same iteration; the first callback saw the other pending and
        # its stop() cancelled the pending event
        assert len(seen) == 1, seen
        _, other_pending, pendingcnt = seen[0]
        assert other_pending is True
        assert pendingcnt >= 1
        assert not a.pending and not b.pending
        assert loop.pendingcnt == 0

    def test_loop_ref_unref(self, loop):
        t = loop.timer(LONG)
        t.start(noop)
        loop.unref()
        assert loop.activecnt == 0
        start = time.monotonic()
        loop.run()                          # nothing referenced: returns at once
        assert time.monotonic() - start < LONG / 3
        assert t.active
        loop.ref()
        assert loop.activecnt == 1
        t.stop()
        assert loop.activecnt == 0

    def test_run_from_two_threads_raises_runtimeerror(self, loop):
        keep = keep_alive(loop)
        running = threading.Event()
        loop.run_callback(running.set)
        errors = []

        def target():
            try:
                loop.run()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        th = threading.Thread(target=target, daemon=True)
        guard(loop)
        th.start()
        try:
            assert running.wait(GUARD)
            with pytest.raises(RuntimeError):
                loop.run()
        finally:
            loop.run_callback_threadsafe(keep.stop)
            th.join(GUARD * 2)
        assert not th.is_alive()
        assert errors == []

    def test_gevent_loop_attributes(self, make_loop):
        lp = make_loop()
        assert lp.MAXPRI == core.MAXPRI and lp.MINPRI == core.MINPRI
        assert 0 < lp.approx_timer_resolution < 0.001
        assert isinstance(lp.ptr, int) and lp.ptr != 0
        assert lp.ptr != make_loop().ptr
        assert lp.sig_pending == 0
        a = getattr(lp, "async")()               # the pre-3.7 name of async_
        assert isinstance(a, core.async_)
        lp.update()                              # the old name of update_now
        assert lp.default is False
        lp.destroy()
        assert lp.ptr == 0
        with pytest.raises(ValueError):
            lp.sig_pending

    def test_reinit_without_fork_is_harmless(self, loop):
        loop.reinit()
        fired = []
        loop.timer(0.001).start(fired.append, 1)
        loop.run()
        assert fired == [1]

    def test_error_handler_default_none(self, loop):
        assert loop.error_handler is None


# --------------------------------------------------------------------------------------
# destroy
# --------------------------------------------------------------------------------------


DESTROYED_LOOP_OPS = {  # op(loop, fd_of_an_open_socket)
    "run": lambda lp, fd: lp.run(),
    "run_nowait": lambda lp, fd: lp.run(nowait=True),
    "run_once": lambda lp, fd: lp.run(once=True),
    "io": lambda lp, fd: lp.io(fd, core.READ),
    "timer": lambda lp, fd: lp.timer(1),
    "idle": lambda lp, fd: lp.idle(),
    "prepare": lambda lp, fd: lp.prepare(),
    "check": lambda lp, fd: lp.check(),
    "async_": lambda lp, fd: lp.async_(),
    "fork": lambda lp, fd: lp.fork(),
    "stat": lambda lp, fd: lp.stat("/"),
    "signal": lambda lp, fd: lp.signal(signal.SIGUSR1),
    "run_callback": lambda lp, fd: lp.run_callback(noop),
    "run_callback_threadsafe": lambda lp, fd: lp.run_callback_threadsafe(noop),
    "update_now": lambda lp, fd: lp.update_now(),
    "break_": lambda lp, fd: lp.break_(),
    "ref": lambda lp, fd: lp.ref(),
    "unref": lambda lp, fd: lp.unref(),
    "reinit": lambda lp, fd: lp.reinit(),
    "internal_fds": lambda lp, fd: lp.internal_fds(),
}


class TestDestroy:
    def test_destroy_twice(self, make_loop):
        lp = make_loop()
        lp.destroy()
        lp.destroy()

    @pytest.mark.parametrize("op", sorted(DESTROYED_LOOP_OPS))
    def test_loop_operation_after_destroy(self, make_loop, sockpair, op):
        lp = make_loop()
        lp.destroy()
        with pytest.raises(ValueError, match="destroyed"):
            DESTROYED_LOOP_OPS[op](lp, sockpair[0].fileno())

    def test_attributes_readable_after_destroy(self, make_loop):
        lp = make_loop()
        lp.destroy()
        assert lp.default is False
        repr(lp)
        lp.error_handler  # noqa: B018 - reading must not raise

    def test_destroy_stops_watchers(self, make_loop, sockpair):
        lp = make_loop()
        t = lp.timer(LONG)
        t.start(noop)
        w = lp.io(sockpair[0].fileno(), core.READ)
        w.start(noop)
        i = lp.idle()
        i.start(noop)
        lp.destroy()
        assert not t.active and not w.active and not i.active

    def test_destroy_drops_queued_callbacks(self, make_loop):
        lp = make_loop()
        called = []
        h = lp.run_callback(called.append, 1)
        assert h.pending
        lp.destroy()
        assert not h.pending
        assert called == []

    def test_watcher_start_after_destroy(self, make_loop):
        lp = make_loop()
        t = lp.timer(1)
        lp.destroy()
        with pytest.raises(ValueError, match="destroyed"):
            t.start(noop)
        assert not t.active

    def test_timer_again_after_destroy(self, make_loop):
        lp = make_loop()
        t = lp.timer(1, 1)
        lp.destroy()
        with pytest.raises(ValueError, match="destroyed"):
            t.again(noop)

    def test_async_send_after_destroy(self, make_loop):
        lp = make_loop()
        a = lp.async_()
        a.start(noop)
        lp.destroy()
        with pytest.raises(ValueError, match="destroyed"):
            a.send()

    def test_stop_close_after_destroy_do_not_raise(self, make_loop, sockpair):
        lp = make_loop()
        watchers = [lp.timer(LONG), lp.io(sockpair[0].fileno(), core.READ), lp.idle(),
                    lp.prepare(), lp.check(), lp.async_(), lp.fork()]
        for w in watchers[:4]:
            w.start(noop)
        lp.destroy()
        for w in watchers:
            w.stop()
            w.stop()
            w.close()
            w.close()
            # attributes stay readable
            assert w.active is False
            assert w.pending is False
            assert w.loop is lp
            w.priority  # noqa: B018
            w.ref  # noqa: B018
            repr(w)

    def test_default_loop_recreated_after_destroy_starts_clean(self):
        # libev's default loop is one static struct that ev_loop_destroy frees the arrays
        # of but does not clear: a loop.ref()/unref() left unbalanced (and the iteration
        # count) carried over into the next loop(default=True), whose run() with nothing to
        # do then blocked forever.
        proc = run_script("""
            signal.alarm(20)
            a = core.loop(default=True)
            a.ref()
            a.run(nowait=True)
            a.destroy()
            b = core.loop(default=True)
            assert b is not a
            assert (b.activecnt, b.iteration) == (0, 0), (b.activecnt, b.iteration)
            b.run()   # nothing to do: returns at once
            b.unref()
            b.destroy()
            c = core.loop(default=True)
            assert c.activecnt == 0, c.activecnt
            c.run()
            fired = []
            c.timer(0.001).start(fired.append, 1)
            c.run()
            assert fired == [1], fired
            print("OK")
        """)
        assert proc.stdout.strip() == "OK"

    def test_destroy_from_callback_is_deferred(self, make_loop):
        lp = make_loop()
        keep = keep_alive(lp)
        log = []

        def kill():
            lp.destroy()
            log.append("destroy returned")

        lp.timer(0).start(kill)
        start = time.monotonic()
        lp.run()
        assert time.monotonic() - start < LONG / 3
        assert log == ["destroy returned"]
        assert not keep.active
        with pytest.raises(ValueError, match="destroyed"):
            lp.run()


# --------------------------------------------------------------------------------------
# generic watcher behaviour, for every kind that can be started safely in-process
# --------------------------------------------------------------------------------------


WATCHER_KINDS = ["io", "timer", "idle", "prepare", "check", "async_", "stat", "fork"]


@pytest.fixture
def make_watcher(loop, sockpair, tmp_path):
    def make(kind, **kw):
        if kind == "io":
            return loop.io(sockpair[1].fileno(), core.READ, **kw)
        if kind == "timer":
            return loop.timer(LONG, **kw)
        if kind == "stat":
            return loop.stat(str(tmp_path / "statme"), 0.5, **kw)
        return getattr(loop, kind)(**kw)

    return make


class TestWatcherGeneric:
    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    def test_active_transitions(self, loop, make_watcher, kind):
        w = make_watcher(kind)
        assert w.loop is loop
        assert w.active is False
        assert w.pending is False
        base = loop.activecnt
        w.start(noop)
        assert w.active is True
        assert loop.activecnt == base + 1
        w.stop()
        assert w.active is False
        assert loop.activecnt == base
        w.start(noop)                       # a stopped watcher can be started again
        assert w.active is True
        w.stop()

    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    def test_stop_and_close_idempotent(self, make_watcher, kind):
        w = make_watcher(kind)
        w.stop()                            # never started
        w.start(noop)
        w.stop()
        w.stop()
        w.close()
        w.close()
        assert w.active is False

    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    def test_close_then_start_raises(self, make_watcher, kind):
        w = make_watcher(kind)
        w.start(noop)
        w.close()
        assert w.active is False
        assert w.callback is None
        with pytest.raises(ValueError):
            w.start(noop)
        assert w.active is False

    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    def test_context_manager_closes(self, make_watcher, kind):
        with make_watcher(kind) as w:
            w.start(noop)
            assert w.active
        assert not w.active
        with pytest.raises(ValueError):
            w.start(noop)

    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    @pytest.mark.parametrize("bad", [42, "not callable", None])
    def test_non_callable_callback(self, make_watcher, kind, bad):
        w = make_watcher(kind)
        with pytest.raises(TypeError):
            w.start(bad)
        assert not w.active

    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    def test_priority(self, make_watcher, kind):
        w = make_watcher(kind)
        assert w.priority == 0
        for p in range(core.MINPRI, core.MAXPRI + 1):
            w.priority = p
            assert w.priority == p
        for bad in (core.MINPRI - 1, core.MAXPRI + 1):
            with pytest.raises(ValueError):
                w.priority = bad
        w.priority = 1
        w.start(noop)
        with pytest.raises(ValueError):
            w.priority = 0
        assert w.priority == 1
        w.stop()
        w.priority = 0
        assert w.priority == 0

    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    def test_priority_keyword(self, make_watcher, kind):
        assert make_watcher(kind, priority=core.MAXPRI).priority == core.MAXPRI
        assert make_watcher(kind, priority=core.MINPRI).priority == core.MINPRI
        with pytest.raises(ValueError):
            make_watcher(kind, priority=core.MAXPRI + 1)
        with pytest.raises(ValueError):
            make_watcher(kind, priority=core.MINPRI - 1)

    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    def test_ref_keyword_and_attribute(self, loop, make_watcher, kind):
        assert make_watcher(kind).ref is True
        w = make_watcher(kind, ref=False)
        assert w.ref is False
        base = loop.activecnt
        w.start(noop)
        assert loop.activecnt == base
        w.ref = True
        assert loop.activecnt == base + 1
        w.ref = False
        assert loop.activecnt == base
        w.stop()
        assert loop.activecnt == base

    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    def test_callback_and_args_attributes(self, make_watcher, kind):
        w = make_watcher(kind)
        w.start(noop, 1, "two")
        assert w.callback is noop
        assert w.args == (1, "two")
        w.callback = print
        w.args = (3,)
        assert w.callback is print
        assert w.args == (3,)
        w.stop()

    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    def test_stop_drops_callback_and_args(self, make_watcher, kind):
        # gevent's contract: a stopped watcher is as before start(): callback and args None
        w = make_watcher(kind)
        assert w.callback is None and w.args is None
        w.start(noop, 1)
        w.stop()
        assert w.callback is None and w.args is None
        w.start(noop, 2)                     # and it starts again
        assert w.active and w.args == (2,)
        w.stop()

    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    def test_args_none(self, make_watcher, kind):
        w = make_watcher(kind)
        w.start(noop, 1)
        w.args = None
        assert w.args is None
        with pytest.raises(TypeError):
            w.args = [1]
        assert w.args is None
        assert isinstance(repr(w), str)
        w.stop()

    @pytest.mark.parametrize("kind", WATCHER_KINDS)
    def test_repr(self, make_watcher, kind):
        w = make_watcher(kind)
        assert isinstance(repr(w), str)
        w.start(noop)
        assert isinstance(repr(w), str)
        w.close()
        assert isinstance(repr(w), str)


class TestWatcherBehaviour:
    def test_ref_false_does_not_keep_run_alive(self, loop):
        fired = []
        t = loop.timer(LONG, ref=False)
        t.start(fired.append, 1)
        start = time.monotonic()
        loop.run()
        assert time.monotonic() - start < LONG / 3
        assert fired == []
        assert t.active
        t.stop()

    def test_ref_set_false_while_active(self, loop):
        t = loop.timer(LONG)
        t.start(noop)
        t.ref = False
        start = time.monotonic()
        loop.run()
        assert time.monotonic() - start < LONG / 3
        t.stop()

    def test_stop_of_unreferenced_watcher_keeps_count_right(self, loop):
        # stopping a ref=False watcher must not leave the loop's count off by one:
        # afterwards a referenced timer must still keep run() alive until it fires
        u = loop.timer(LONG, ref=False)
        u.start(noop)
        u.stop()
        u.start(noop)
        u.close()
        assert loop.activecnt == 0
        fired = []
        t = loop.timer(0.02)
        t.start(fired.append, 1)
        loop.run()
        assert fired == [1]

    def test_priority_order(self, loop):
        log = []
        lo = loop.timer(0, priority=core.MINPRI)
        mid = loop.timer(0)
        hi = loop.timer(0, priority=core.MAXPRI)
        lo.start(log.append, "lo")
        mid.start(log.append, "mid")
        hi.start(log.append, "hi")
        loop.run()
        assert log == ["hi", "mid", "lo"]

    def test_start_active_watcher_updates_callback(self, loop):
        log = []
        t = loop.timer(0.001)
        t.start(log.append, "first")
        t.start(log.append, "second")
        assert loop.activecnt == 1
        loop.run()
        assert log == ["second"]

    def test_callback_and_args_setters_take_effect(self, loop):
        log = []
        t = loop.timer(0.001)
        t.start(log.append, "old")
        t.callback = lambda *a: log.append(("new",) + a)
        t.args = (1, 2)
        loop.run()
        assert log == [("new", 1, 2)]

    def test_args_set_to_none_calls_without_arguments(self, loop):
        log = []
        t = loop.timer(0)
        t.start(lambda *a: log.append(a), 1, 2)
        t.args = None
        loop.run()
        assert log == [()]

    def test_fired_one_shot_timer_forgets_callback(self, loop):
        log = []
        t = loop.timer(0)
        t.start(log.append, "x")
        loop.run()
        assert log == ["x"]
        assert not t.active
        assert t.callback is None and t.args is None

    def test_timer_restarted_by_its_callback_keeps_it(self, loop):
        log = []
        t = loop.timer(0)

        def cb(n):
            log.append(n)
            if n < 3:
                t.start(cb, n + 1)

        t.start(cb, 1)
        loop.run()
        assert log == [1, 2, 3]
        assert t.callback is None

    def test_stop_cancels_pending_event(self, loop):
        log = []
        a = loop.timer(0, priority=core.MAXPRI)
        b = loop.timer(0)
        a.start(lambda: (log.append("a"), b.stop()))
        b.start(log.append, "b")
        loop.run()
        assert log == ["a"]

    def test_many_timers(self, loop):
        fired = []
        loop.update_now()
        for i in range(1000):
            loop.timer(0.001 * (i % 10)).start(fired.append, i)
        loop.run()
        assert sorted(fired) == list(range(1000))

    def test_unreferenced_one_shot_timer_fires(self, loop):
        fired = []
        loop.timer(0.001).start(fired.append, 1)
        gc.collect()
        loop.run()
        assert fired == [1]


# --------------------------------------------------------------------------------------
# io
# --------------------------------------------------------------------------------------


class TestIO:
    def test_read(self, loop, sockpair):
        a, b = sockpair
        got = []

        def on_read(*args):
            got.append((args, b.recv(100)))
            w.stop()

        w = loop.io(b.fileno(), core.READ)
        w.start(on_read, "x")
        guard(loop)
        a.send(b"data")
        loop.run()
        assert got == [(("x",), b"data")]

    def test_read_not_ready_does_not_fire(self, loop, sockpair):
        a, b = sockpair
        fired = []
        w = loop.io(b.fileno(), core.READ)
        w.start(fired.append, 1)
        loop.run(nowait=True)
        assert fired == []
        w.stop()

    def test_write(self, loop, sockpair):
        a, b = sockpair
        got = []

        def on_write():
            got.append(a.send(b"x"))
            w.stop()

        w = loop.io(a.fileno(), core.WRITE)
        w.start(on_write)
        guard(loop)
        loop.run()
        assert got == [1]
        assert b.recv(10) == b"x"

    def test_pass_events(self, loop, sockpair):
        a, b = sockpair
        got = []

        def cb(events, tag):
            got.append((events, tag))
            w.stop()

        w = loop.io(b.fileno(), core.READ | core.WRITE)
        w.start(cb, "tag", pass_events=True)
        a.send(b"x")
        guard(loop)
        loop.run()
        assert len(got) == 1
        events, tag = got[0]
        assert tag == "tag"
        assert events & ~(core.READ | core.WRITE) == 0
        assert events & core.WRITE          # a socket with buffer space is writable
        assert events & core.READ           # and data is waiting

    def test_pass_events_read_only(self, loop, sockpair):
        a, b = sockpair
        got = []

        def cb(events):
            got.append(events)
            b.recv(10)
            w.stop()

        w = loop.io(b.fileno(), core.READ)
        w.start(cb, pass_events=True)
        a.send(b"x")
        guard(loop)
        loop.run()
        assert got == [core.READ]

    def test_attributes(self, loop, sockpair):
        a, b = sockpair
        r = loop.io(b.fileno(), core.READ)
        assert r.fd == b.fileno()
        assert r.events == core.READ
        assert "READ" in r.events_str and "WRITE" not in r.events_str
        rw = loop.io(a.fileno(), core.READ | core.WRITE)
        assert rw.events == core.READ | core.WRITE
        assert "READ" in rw.events_str and "WRITE" in rw.events_str

    def test_events_settable_while_active(self, loop, sockpair):
        a, b = sockpair
        fired = []

        def cb():
            fired.append(w.events)
            w.stop()

        w = loop.io(a.fileno(), core.READ)   # nothing to read: would never fire
        w.start(cb)
        w.events = core.WRITE                # writable right away
        assert w.events == core.WRITE
        assert w.active
        guard(loop)
        loop.run()
        assert fired == [core.WRITE]

    def test_level_triggered_until_read(self, loop, sockpair):
        a, b = sockpair
        count = []

        def cb():
            count.append(1)
            if len(count) == 3:
                b.recv(10)
                w.stop()

        w = loop.io(b.fileno(), core.READ)
        w.start(cb)
        a.send(b"x")
        guard(loop)
        loop.run()
        assert len(count) == 3

    def test_two_watchers_same_fd(self, loop, sockpair):
        a, b = sockpair
        got = []

        def cb(tag):
            got.append(tag)
            (w1 if tag == 1 else w2).stop()

        w1 = loop.io(b.fileno(), core.READ)
        w2 = loop.io(b.fileno(), core.READ)
        w1.start(cb, 1)
        w2.start(cb, 2)
        a.send(b"x")
        guard(loop)
        loop.run()
        assert sorted(got) == [1, 2]

    def test_closing_fd_wakes_the_fd_watchers(self, loop, sockpair):
        a, b = sockpair
        log = []
        r = loop.io(b.fileno(), core.READ)
        w = loop.io(b.fileno(), core.WRITE)
        other = loop.io(a.fileno(), core.READ)

        def woken(name, watcher):
            log.append(name)
            watcher.stop()          # what the owner of a closing fd does with its watchers

        r.start(woken, "r", r)
        w.start(woken, "w", w)
        other.start(log.append, "other")
        assert loop.closing_fd(b.fileno()) is True
        assert r.pending and w.pending and not other.pending
        assert loop.closing_fd(b.fileno()) is False   # already pending: nothing new
        loop.run(nowait=True)
        assert sorted(log) == ["r", "w"]              # b is not readable, yet r was woken
        other.stop()

    def test_closing_fd_without_watchers(self, loop, sockpair):
        a, _ = sockpair
        assert loop.closing_fd(a.fileno()) is False
        assert loop.closing_fd(100000) is False       # never watched: ignored

    @pytest.mark.parametrize("bad", ["3", 1.5, None])
    def test_closing_fd_not_int(self, loop, bad):
        with pytest.raises(TypeError):
            loop.closing_fd(bad)

    @pytest.mark.parametrize("fd", [-1, -100, 2**31, 2**80])
    def test_closing_fd_out_of_range_wakes_nothing(self, loop, fd):
        # a closed socket's fileno() is -1, and gevent passes it on
        assert loop.closing_fd(fd) is False

    def test_closing_fd_after_destroy(self, make_loop):
        lp = make_loop()
        lp.destroy()
        with pytest.raises(ValueError):
            lp.closing_fd(0)

    @pytest.mark.parametrize("bad", ["3", 3.0, None, b"3"])
    def test_fd_not_int(self, loop, bad):
        with pytest.raises(TypeError):
            loop.io(bad, core.READ)

    def test_negative_fd(self, loop):
        with pytest.raises(ValueError):
            loop.io(-1, core.READ)

    def test_closed_fd_at_io(self, loop):
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        with pytest.raises(OSError) as excinfo:
            loop.io(r, core.READ)
        assert excinfo.value.errno == errno.EBADF

    def test_closed_fd_at_start(self, loop):
        r, w = os.pipe()
        watcher = loop.io(r, core.READ)
        os.close(r)
        os.close(w)
        with pytest.raises(OSError) as excinfo:
            watcher.start(noop)
        assert excinfo.value.errno == errno.EBADF
        assert not watcher.active

    def test_failed_start_leaves_the_watcher_as_it_was(self, loop):
        # found by tests/test_fuzz_core.py: start() stored the new callback before the fd
        # check failed, so a later feed() called a callback that was never started
        def first():
            pass

        a, b = socket.socketpair()
        w = loop.io(a.fileno(), core.READ)
        a.close()
        b.close()
        with pytest.raises(OSError) as info:
            w.start(noop, 1)
        assert info.value.errno == errno.EBADF
        assert (w.callback, w.args) == (None, None)   # never started: no args (gevent)
        with pytest.raises(ValueError, match="callback"):
            w.feed()
        w.callback = first
        w.args = ("x",)
        with pytest.raises(OSError):
            w.start(noop, pass_events=True)
        assert (w.callback, w.args) == (first, ("x",))
        assert not w.active

    @pytest.mark.parametrize("bad", [4, 8, 0x100, core.READ | 4, -1])
    def test_bad_events(self, loop, sockpair, bad):
        with pytest.raises(ValueError):
            loop.io(sockpair[0].fileno(), bad)

    def test_bad_events_setter(self, loop, sockpair):
        w = loop.io(sockpair[0].fileno(), core.READ)
        with pytest.raises(ValueError):
            w.events = 4
        assert w.events == core.READ


# --------------------------------------------------------------------------------------
# timer
# --------------------------------------------------------------------------------------


class TestFactoryArguments:
    """io() and timer() take their arguments by position or keyword, as gevent calls them
    (``loop.timer(seconds, ref=ref)``, ``loop.io(fd, events)``)."""

    def test_timer_by_position_and_keyword(self, loop):
        t = loop.timer(0.5, 0.25, False, 1)
        assert (t.ref, t.priority, t.repeat) == (False, 1, 0.25)
        t = loop.timer(priority=-1, after=2, ref=False)
        assert (t.ref, t.priority, t.repeat) == (False, -1, 0.0)
        assert loop.timer().repeat == 0.0

    def test_io_by_position_and_keyword(self, loop, sockpair):
        fd = sockpair[0].fileno()
        w = loop.io(fd, core.READ, False, 2)
        assert (w.fd, w.events, w.ref, w.priority) == (fd, core.READ, False, 2)
        w = loop.io(events=core.WRITE, fd=fd, priority=-2)
        assert (w.fd, w.events, w.ref, w.priority) == (fd, core.WRITE, True, -2)

    @pytest.mark.parametrize("call, message", [
        (lambda l, fd: l.timer(1, 2, True, None, 5), "at most 4 arguments"),
        (lambda l, fd: l.timer(when=1), "'when' is an invalid keyword argument for timer()"),
        (lambda l, fd: l.timer(1, after=2), "given by name ('after') and position (1)"),
        (lambda l, fd: l.io(), "missing required argument 'fd'"),
        (lambda l, fd: l.io(fd), "missing required argument 'events'"),
        (lambda l, fd: l.io(fd, core.READ, refs=False), "'refs' is an invalid keyword"),
        (lambda l, fd: l.io(fd, core.READ, **{"ref": True, "events": 1}),
         "given by name ('events') and position (2)"),
    ])
    def test_bad_arguments_raise_typeerror(self, loop, sockpair, call, message):
        with pytest.raises(TypeError) as info:
            call(loop, sockpair[0].fileno())
        assert message in str(info.value)


class TestTimer:
    def test_one_shot(self, loop):
        fired = []
        start = time.monotonic()            # taken before the loop time the timer uses
        loop.update_now()
        t = loop.timer(0.05)
        t.start(lambda *a: fired.append((time.monotonic(), a)), 1, 2)
        assert t.active
        loop.run()
        assert len(fired) == 1
        when, args = fired[0]
        assert args == (1, 2)
        assert when - start >= 0.04
        assert not t.active
        assert not t.pending

    def test_repeating(self, loop):
        stamps = []
        actives = []

        def tick():
            stamps.append(time.monotonic())
            actives.append(t.active)
            if len(stamps) == 5:
                t.stop()

        start = time.monotonic()
        loop.update_now()
        t = loop.timer(0.01, 0.02)
        t.start(tick)
        loop.run()
        assert len(stamps) == 5
        # 0.01 + 4 * 0.02 = 0.09 s at least (10 ms slack for clock granularity)
        assert stamps[-1] - start >= 0.08
        assert stamps == sorted(stamps)
        assert actives == [True] * 5        # a repeating timer stays active
        assert not t.active

    def test_order_of_expiry(self, loop):
        log = []
        loop.update_now()
        for delay in (0.06, 0.02, 0.04):
            loop.timer(delay).start(log.append, delay)
        loop.run()
        assert log == [0.02, 0.04, 0.06]

    def test_attributes(self, loop):
        t = loop.timer(1.5, 0.25)
        assert t.after == 1.5
        assert t.repeat == 0.25
        t2 = loop.timer(2)
        assert t2.after == 2.0
        assert t2.repeat == 0.0

    def test_at(self, loop):
        loop.update_now()
        t = loop.timer(5.0)
        t.start(noop)
        # 'at' is the loop time the timer fires at: now() + after
        assert abs(t.at - (loop.now() + 5.0)) < 0.5
        t.stop()

    def test_again_uses_repeat(self, loop):
        fired = []

        def cb(tag):
            fired.append((time.monotonic(), tag))
            t.stop()

        start = time.monotonic()
        loop.update_now()
        t = loop.timer(LONG, 0.05)
        t.again(cb, "again")
        assert t.active
        loop.run()
        assert len(fired) == 1
        when, tag = fired[0]
        assert tag == "again"
        assert when - start >= 0.04
        assert when - start < LONG / 3      # fired on 'repeat', not on 'after'

    def test_start_of_an_expired_or_stopped_timer_waits_after_again(self, loop):
        # found by tests/test_fuzz_core.py: libev's ev_timer_stop keeps "the time that
        # was left" in the timer, so a restarted timer resumed that remainder (none at all
        # after it had fired) instead of waiting `after` seconds as documented
        fired = []
        t = loop.timer(0.1)
        t.start(fired.append, 1, update=True)
        loop.run()
        assert fired == [1]
        start = time.monotonic()
        t.start(fired.append, 2, update=True)
        loop.run()
        assert fired == [1, 2]
        assert time.monotonic() - start >= 0.09
        # stopped half-way (the loop's time moved meanwhile), then started again
        t.start(fired.append, 3, update=True)
        half = loop.timer(0.05)
        half.start(t.stop)
        loop.run()
        start = time.monotonic()
        t.start(fired.append, 4, update=True)
        loop.run()
        assert fired == [1, 2, 4]
        assert time.monotonic() - start >= 0.09
        # after again(): a stop and a start wait `after`, not `repeat`
        t = loop.timer(0.1, 0.01)
        t.start(fired.append, 5)
        t.again()
        t.stop()
        start = time.monotonic()
        t.start(fired.append, 6, update=True)
        loop.run(once=True)
        t.stop()
        assert fired[-1] == 6
        assert time.monotonic() - start >= 0.09

    def test_start_of_an_active_timer_keeps_its_deadline(self, loop):
        fired = []
        t = loop.timer(LONG)
        t.start(fired.append, 1, update=True)
        time.sleep(0.05)
        loop.update_now()
        t.start(fired.append, 2)       # only the callback changes
        assert t.remaining <= LONG - 0.04
        assert t.callback == fired.append and t.args == (2,)
        t.stop()

    def test_again_restarts_active_timer(self, loop):
        fired = []
        t = loop.timer(LONG, 0.05)
        t.start(fired.append, "cb")
        t.again()                           # keeps the callback, switches to 'repeat'
        guard(loop)
        t2 = loop.timer(0.5)
        t2.start(t.stop)
        loop.run()
        assert fired and fired[0] == "cb"

    def test_start_update_keyword(self, loop):
        fired = []
        t = loop.timer(0.001)
        t.start(fired.append, 1, update=True)
        loop.run()
        t = loop.timer(0.001)
        t.start(fired.append, 2, update=False)
        loop.run()
        assert fired == [1, 2]

    @pytest.mark.parametrize("after,repeat", [(math.nan, 0.0), (1.0, math.nan)])
    def test_nan(self, loop, after, repeat):
        with pytest.raises(ValueError):
            loop.timer(after, repeat)

    @pytest.mark.parametrize("after,repeat", [("abc", 0.0), (1.0, "abc"), (None, 0.0), ([], 0.0)])
    def test_not_a_number(self, loop, after, repeat):
        with pytest.raises(TypeError):
            loop.timer(after, repeat)

    def test_negative_repeat(self, loop):
        with pytest.raises(ValueError):
            loop.timer(1.0, -1.0)


# --------------------------------------------------------------------------------------
# idle, prepare, check
# --------------------------------------------------------------------------------------


class TestIdlePrepareCheck:
    def test_idle_fires(self, loop):
        count = []

        def cb():
            count.append(1)
            if len(count) == 3:
                i.stop()

        i = loop.idle()
        i.start(cb)
        loop.run()
        assert len(count) == 3

    def test_idle_keeps_loop_spinning_until_timer(self, loop):
        idles = []
        i = loop.idle()
        i.start(idles.append, 1)
        t = loop.timer(0.2)
        t.start(i.stop)
        guard(loop)
        loop.run()
        assert len(idles) >= 2
        assert not i.active

    def test_prepare_check_around_io(self, loop, sockpair):
        a, b = sockpair
        log = []

        def on_read():
            log.append("io")
            b.recv(10)
            w.stop()

        p = loop.prepare(ref=False)
        c = loop.check(ref=False)
        p.start(log.append, "prepare")
        c.start(log.append, "check")
        w = loop.io(b.fileno(), core.READ)
        w.start(on_read)
        a.send(b"x")
        guard(loop)
        loop.run()
        # one iteration: prepare runs before the poll; the io event and the check watcher
        # both come out of the poll
        assert log[0] == "prepare"
        assert sorted(log[1:3]) == ["check", "io"], log
        p.stop()
        c.stop()

    def test_prepare_before_poll_check_after(self, loop):
        log = []
        p = loop.prepare(ref=False)
        c = loop.check(ref=False)
        p.start(lambda: log.append(("prepare", time.monotonic())))
        c.start(lambda: log.append(("check", time.monotonic())))
        loop.update_now()
        t = loop.timer(0.2)
        t.start(lambda: log.append(("timer", time.monotonic())))
        loop.run()
        p.stop()
        c.stop()
        names = [n for n, _ in log if n != "timer"]
        # every iteration: prepare, poll, check
        assert names[0] == "prepare"
        assert names == ["prepare", "check"] * (len(names) // 2), names
        assert any(n == "timer" for n, _ in log)
        # the poll blocked ~0.2 s; it happens between a prepare and its check
        blocked = sum(log_c[1] - log_p[1]
                      for log_p, log_c in zip(
                          [e for e in log if e[0] == "prepare"],
                          [e for e in log if e[0] == "check"]))
        assert blocked >= 0.1, log


# --------------------------------------------------------------------------------------
# async_
# --------------------------------------------------------------------------------------


class TestAsync:
    def test_send_same_thread(self, loop):
        fired = []

        def cb(tag):
            fired.append(tag)
            a.stop()

        a = loop.async_()
        a.start(cb, "t")
        a.send()
        guard(loop)
        loop.run()
        assert fired == ["t"]

    def test_send_ignoring_arg(self, loop):
        fired = []

        def cb():
            fired.append(1)
            a.stop()

        a = loop.async_()
        a.start(cb)
        a.send_ignoring_arg(object())
        guard(loop)
        loop.run()
        assert fired == [1]

    def test_send_from_thread_wakes_blocked_loop(self, loop):
        keep = keep_alive(loop)
        fired = []

        def cb():
            fired.append(time.monotonic())
            a.stop()
            keep.stop()

        a = loop.async_()
        a.start(cb)

        def sender():
            time.sleep(0.2)
            a.send()

        th = threading.Thread(target=sender, daemon=True)
        guard(loop)
        start = time.monotonic()
        th.start()
        loop.run()
        elapsed = time.monotonic() - start
        th.join(GUARD)
        assert len(fired) == 1
        assert elapsed >= 0.15              # the loop really waited for the thread
        assert elapsed < LONG / 3           # and woke long before its 30 s timer

    def test_send_from_many_threads(self, loop):
        nthreads, nsends = 8, 200
        keep = keep_alive(loop)
        lock = threading.Lock()
        done = [0]
        calls = [0]

        def cb():
            calls[0] += 1
            with lock:
                finished = done[0] == nthreads
            if finished:
                a.stop()
                keep.stop()

        a = loop.async_()
        a.start(cb)
        barrier = threading.Barrier(nthreads)

        def sender():
            barrier.wait()
            for _ in range(nsends):
                a.send()
            with lock:
                done[0] += 1
            a.send()                        # guarantees a callback after 'done' moved

        threads = [threading.Thread(target=sender, daemon=True) for _ in range(nthreads)]
        guard(loop)
        start = time.monotonic()
        for th in threads:
            th.start()
        loop.run()
        elapsed = time.monotonic() - start
        for th in threads:
            th.join(GUARD)
        assert done[0] == nthreads
        assert 1 <= calls[0] <= nthreads * (nsends + 1)
        assert not a.active
        assert elapsed < LONG / 3


# --------------------------------------------------------------------------------------
# stat
# --------------------------------------------------------------------------------------


class TestStat:
    def test_attributes(self, loop, tmp_path):
        path = str(tmp_path / "f")
        w = loop.stat(path, 0.5)
        assert w.path == path
        assert w.interval == 0.5
        assert loop.stat(path).interval == 0.0
        assert w._paths == os.fsencode(path)

    def test_negative_interval_means_libev_minimum(self, loop, tmp_path):
        # libev raises any interval below its minimum (about 0.1 s) to that minimum when
        # the watcher starts; gevent asks for the fastest polling with interval=-1
        w = loop.stat(str(tmp_path / "f"), interval=-1)
        assert w.interval == -1
        w.start(noop)
        assert 0.05 < w.interval < 0.5
        w.stop()

    def test_nan_interval(self, loop, tmp_path):
        with pytest.raises(ValueError):
            loop.stat(str(tmp_path / "f"), float("nan"))

    def test_create_file(self, loop, tmp_path):
        path = tmp_path / "created"
        fired = []

        def on_change():
            fired.append((w.prev, w.attr))
            w.stop()

        w = loop.stat(str(path), 0.01)
        w.start(on_change)
        creator = loop.timer(0.05)
        creator.start(path.write_bytes, b"hello")
        guard(loop)
        loop.run()
        assert len(fired) == 1, "stat watcher did not fire"
        prev, attr = fired[0]
        assert prev is None                 # did not exist before
        assert isinstance(attr, os.stat_result)

    def test_modify_file(self, loop, tmp_path):
        path = tmp_path / "modified"
        path.write_bytes(b"abc")
        fired = []

        def on_change():
            fired.append((w.prev, w.attr))
            w.stop()

        def append():
            with open(path, "ab") as f:
                f.write(b"defgh")

        w = loop.stat(str(path), 0.01)
        w.start(on_change)
        modifier = loop.timer(0.05)
        modifier.start(append)
        guard(loop)
        loop.run()
        assert len(fired) == 1, "stat watcher did not fire"
        prev, attr = fired[0]
        assert isinstance(prev, os.stat_result)
        assert isinstance(attr, os.stat_result)
        assert prev.st_size == 3
        assert attr.st_size == 8

    def test_missing_path_attr_none(self, loop, tmp_path):
        w = loop.stat(str(tmp_path / "missing"), 0.5)
        w.start(noop)
        assert w.attr is None
        w.stop()


# --------------------------------------------------------------------------------------
# signal (anything that installs a handler runs in a subprocess)
# --------------------------------------------------------------------------------------


class TestSignal:
    @pytest.mark.parametrize("signum", [0, 1000, -1, signal.SIGKILL, signal.SIGSTOP])
    def test_bad_signum(self, loop, signum):
        with pytest.raises(ValueError):
            loop.signal(signum)

    @pytest.mark.parametrize("default", [False, True])
    def test_sigusr1_fires_and_python_handler_is_restored(self, default):
        proc = run_script(f"""
            got = []
            def py_handler(signum, frame):
                got.append(signum)
            signal.signal(signal.SIGUSR1, py_handler)

            loop = core.loop(default={default})
            w = loop.signal(signal.SIGUSR1)
            assert w.signum == signal.SIGUSR1
            fired = []
            def on_signal(tag):
                fired.append(tag)
                w.stop()
            w.start(on_signal, "sig")
            assert w.active
            signal.getsignal(signal.SIGUSR1)     # still works while watched
            kill = loop.timer(0.01)
            kill.start(os.kill, os.getpid(), signal.SIGUSR1)
            g = loop.timer(20, ref=False)
            g.start(loop.break_, core.EVBREAK_ALL)
            loop.run()
            assert fired == ["sig"], fired
            assert got == [], got                # libev's handler replaced Python's
            assert not w.active

            # the watcher stopped: Python's handler is back
            assert signal.getsignal(signal.SIGUSR1) is py_handler
            os.kill(os.getpid(), signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                time.sleep(0.01)
            assert got == [signal.SIGUSR1], got
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_handler_restored_only_after_last_watcher_stops(self):
        proc = run_script("""
            got = []
            signal.signal(signal.SIGUSR2, lambda s, f: got.append(s))
            loop = core.loop(default=False)
            fired = []
            w1 = loop.signal(signal.SIGUSR2)
            w2 = loop.signal(signal.SIGUSR2)
            w1.start(fired.append, 1)
            w2.start(fired.append, 2)
            g = loop.timer(20, ref=False)
            g.start(loop.break_, core.EVBREAK_ALL)

            def wait_for(pred):
                deadline = time.monotonic() + 10
                while not pred() and time.monotonic() < deadline:
                    loop.run(once=True)

            os.kill(os.getpid(), signal.SIGUSR2)
            wait_for(lambda: len(fired) >= 2)
            assert sorted(fired) == [1, 2], fired

            w1.stop()                       # w2 still watches: libev keeps the signal
            del fired[:]
            os.kill(os.getpid(), signal.SIGUSR2)
            wait_for(lambda: fired)
            assert fired == [2], fired
            assert got == [], got

            w2.close()                      # last one: Python's handler is back
            os.kill(os.getpid(), signal.SIGUSR2)
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                time.sleep(0.01)
            assert got == [signal.SIGUSR2], got
            loop.destroy()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_signal_watched_by_one_loop_at_a_time(self):
        proc = run_script("""
            signal.signal(signal.SIGUSR1, lambda s, f: None)
            l1 = core.loop(default=False)
            l2 = core.loop(default=False)
            w1 = l1.signal(signal.SIGUSR1)
            w1.start(noop)
            try:
                w2 = l2.signal(signal.SIGUSR1)
                w2.start(noop)
            except ValueError as exc:
                print("ValueError", exc)
            else:
                raise AssertionError("second loop could watch SIGUSR1 too")
            w1.stop()
            # once the first loop lets go, the second can take the signal
            fired = []
            w3 = l2.signal(signal.SIGUSR1)
            def cb():
                fired.append(1)
                w3.stop()
            w3.start(cb)
            l2.timer(0.01).start(os.kill, os.getpid(), signal.SIGUSR1)
            g = l2.timer(20, ref=False)
            g.start(l2.break_, core.EVBREAK_ALL)
            l2.run()
            assert fired == [1], fired
            l1.destroy(); l2.destroy()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_destroy_restores_handler(self):
        proc = run_script("""
            got = []
            def h(s, f):
                got.append(s)
            signal.signal(signal.SIGUSR1, h)
            loop = core.loop(default=False)
            loop.signal(signal.SIGUSR1).start(noop)
            loop.destroy()
            assert signal.getsignal(signal.SIGUSR1) is h
            os.kill(os.getpid(), signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                time.sleep(0.01)
            assert got == [signal.SIGUSR1], got
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")


# --------------------------------------------------------------------------------------
# SIGINT while blocked in run()
# --------------------------------------------------------------------------------------


class TestPythonSignalHandlers:
    def test_python_handler_runs_while_loop_blocked(self):
        proc = run_script("""
            loop = core.loop(default=False)
            keep = loop.timer(30)
            keep.start(noop)
            got = []
            def handler(signum, frame):
                got.append(signum)
                keep.stop()                  # lets run() return
            signal.signal(signal.SIGUSR2, handler)
            main = threading.main_thread().ident
            def sender():
                time.sleep(0.3)
                signal.pthread_kill(main, signal.SIGUSR2)
            threading.Thread(target=sender, daemon=True).start()
            t0 = time.monotonic()
            loop.run()
            elapsed = time.monotonic() - t0
            assert got == [signal.SIGUSR2], got
            assert elapsed < 10, elapsed
            loop.destroy()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_python_handler_exception_raised_out_of_run(self):
        proc = run_script("""
            class Stop(Exception):
                pass
            loop = core.loop(default=False)
            keep = loop.timer(30)
            keep.start(noop)
            def handler(signum, frame):
                raise Stop("from signal handler")
            signal.signal(signal.SIGUSR2, handler)
            main = threading.main_thread().ident
            def sender():
                time.sleep(0.3)
                signal.pthread_kill(main, signal.SIGUSR2)
            threading.Thread(target=sender, daemon=True).start()
            t0 = time.monotonic()
            try:
                loop.run()
            except Stop as exc:
                print("raised", exc)
            else:
                raise AssertionError("run() returned normally")
            assert time.monotonic() - t0 < 10
            assert keep.active
            keep.stop()
            loop.destroy()
            print("OK")
        """)
        assert "raised from signal handler" in proc.stdout
        assert proc.stdout.strip().endswith("OK")


SIGINT_CHILD = """
signal.signal(signal.SIGINT, signal.default_int_handler)   # Python's default handler
loop = core.loop(default={default})
keep = loop.timer(30)
keep.start(noop)
loop.run_callback(lambda: print("ready", flush=True))
try:
    loop.run()
except KeyboardInterrupt:
    print("caught", repr(time.monotonic()), flush=True)
    raise
print("run() returned without KeyboardInterrupt", flush=True)
sys.exit(3)
"""


class TestSigint:
    @pytest.mark.parametrize("default", [True, False])
    def test_sigint_interrupts_blocked_run(self, default):
        proc = subprocess.Popen(
            script_argv(SIGINT_CHILD.format(default=default)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=PKG_PARENT, env=_env(),
        )
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready, "child never printed 'ready'"
            line = proc.stdout.readline()
            assert line.strip() == "ready", line + proc.stderr.read()
            time.sleep(0.3)                  # let it settle in the poll
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert "KeyboardInterrupt" in err, f"rc={proc.returncode}\n{out}\n{err}"
        assert "Traceback" in err
        assert proc.returncode != 0
        m = re.search(r"caught (\S+)", out)
        assert m, out
        # CLOCK_MONOTONIC is system-wide on Linux: both processes read the same clock
        delay = float(m.group(1)) - sent
        print(f"SIGINT -> KeyboardInterrupt out of run(): {delay * 1000:.1f} ms "
              f"(default loop={default})")
        assert delay < 1.0


# --------------------------------------------------------------------------------------
# child (default loop only, in a subprocess)
# --------------------------------------------------------------------------------------


class TestChild:
    def test_child_on_private_loop_is_typeerror(self, loop):
        with pytest.raises(TypeError):
            loop.child(os.getpid())

    def test_child_exit_code(self):
        proc = run_script("""
            loop = core.loop(default=True)
            r, w = os.pipe()
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                os.read(r, 1)               # wait until the parent watches us
                os._exit(7)
            os.close(r)
            res = []
            c = loop.child(pid)
            assert c.pid == pid
            def on_child(tag):
                res.append((tag, c.rpid, c.rstatus))
                c.stop()
            c.start(on_child, "child")
            assert c.active
            g = loop.timer(20, ref=False)
            g.start(loop.break_, core.EVBREAK_ALL)
            os.write(w, b"x")
            loop.run()
            assert len(res) == 1, res
            tag, rpid, rstatus = res[0]
            assert tag == "child"
            assert rpid == pid, (rpid, pid)
            assert os.waitstatus_to_exitcode(rstatus) == 7, rstatus
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")


    def test_sigchld_calls_on_a_private_loop_are_process_wide(self):
        proc = run_script("""
            private = core.loop(default=False)
            private.install_sigchld()               # no default loop yet: nothing to do
            assert not private.sigchld_installed
            before = signal.getsignal(signal.SIGCHLD)
            dflt = core.loop(default=True)
            private.install_sigchld()               # libev's handler, for the default loop
            assert dflt.sigchld_installed            # (a private loop never reports it)
            private.reset_sigchld()
            assert not dflt.sigchld_installed
            assert signal.getsignal(signal.SIGCHLD) == before
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_install_sigchld_catches_early_exit(self):
        # with libev's SIGCHLD handler installed up front, a child that exits before its
        # watcher is started is still reported
        proc = run_script("""
            loop = core.loop(default=True)
            loop.install_sigchld()
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                os._exit(3)
            time.sleep(0.3)                 # the child is long gone
            res = []
            c = loop.child(pid)
            def on_child():
                res.append((c.rpid, c.rstatus))
                c.stop()
            c.start(on_child)
            g = loop.timer(20, ref=False)
            g.start(loop.break_, core.EVBREAK_ALL)
            loop.run()
            assert len(res) == 1, res
            assert res[0][0] == pid
            assert os.waitstatus_to_exitcode(res[0][1]) == 3
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_reset_sigchld_restores_python_handler(self):
        proc = run_script("""
            got = []
            def h(signum, frame):
                got.append(signum)
            signal.signal(signal.SIGCHLD, h)
            loop = core.loop(default=True)
            loop.install_sigchld()
            loop.reset_sigchld()
            assert signal.getsignal(signal.SIGCHLD) is h
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                time.sleep(0.01)
            os.waitpid(pid, 0)
            assert got == [signal.SIGCHLD], got
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")


# --------------------------------------------------------------------------------------
# fork (subprocess)
# --------------------------------------------------------------------------------------


class TestFork:
    @pytest.mark.parametrize("explicit_reinit", [True, False])
    def test_fork_watcher_runs_in_child(self, explicit_reinit):
        proc = run_script(f"""
            loop = core.loop(default=False)
            fired = []
            f = loop.fork()
            def on_fork():
                fired.append(os.getpid())
                f.stop()
            f.start(on_fork)
            sys.stdout.flush(); sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    if {explicit_reinit}:
                        loop.reinit()
                    t = loop.timer(0.01)
                    t.start(noop)
                    g = loop.timer(10, ref=False)
                    g.start(loop.break_, core.EVBREAK_ALL)
                    loop.run()
                    print("child fired:", fired == [os.getpid()], flush=True)
                    code = 0 if fired == [os.getpid()] else 1
                except BaseException:
                    traceback.print_exc()
                sys.stdout.flush(); sys.stderr.flush()
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
            # not in the parent
            t = loop.timer(0.01)
            t.start(noop)
            loop.run(once=True)
            assert fired == [], fired
            assert f.active
            f.stop()
            loop.destroy()
            print("OK")
        """)
        assert "child fired: True" in proc.stdout
        assert proc.stdout.strip().endswith("OK")

    @pytest.mark.slow  # ~7 s each
    @pytest.mark.parametrize("where", ["run_callback", "timer", "fork_watcher_free"])
    def test_fork_watchers_run_once_when_forked_inside_run(self, where):
        # The child of a fork made from inside run() resumes in the middle of an
        # iteration. From a run_callback (the prepare stage) that is past the point where
        # libev queues fork watchers and before the one where it clears its fork flag:
        # the fork watchers must still run, once, in the child, and never in the parent.
        proc = run_script(f"""
            loop = core.loop(default=False)
            calls = []
            f = loop.fork()
            f.start(lambda: calls.append(os.getpid()))
            if "{where}" == "fork_watcher_free":
                f.stop()
            result = {{}}
            def do_fork():
                sys.stdout.flush(); sys.stderr.flush()
                result["pid"] = os.fork()
            if "{where}" == "timer":
                tf = loop.timer(0.001)
                tf.start(do_fork)
            else:
                loop.run_callback(do_fork)
            t = loop.timer(0.05)                  # two more iterations or so, in both
            t.start(noop)
            g = loop.timer(10, ref=False)
            g.start(loop.break_, core.EVBREAK_ALL)
            loop.run()
            if result["pid"] == 0:
                expected = [] if "{where}" == "fork_watcher_free" else [os.getpid()]
                print("child calls ok:", calls == expected, calls, flush=True)
                os._exit(0 if calls == expected else 1)
            _, status = os.waitpid(result["pid"], 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
            assert calls == [], calls
            print("OK")
        """)
        assert "child calls ok: True" in proc.stdout
        assert proc.stdout.strip().endswith("OK")

    @pytest.mark.parametrize("explicit_reinit", [True, False])
    def test_child_runs_timer_and_io_parent_unaffected(self, explicit_reinit):
        proc = run_script(f"""
            loop = core.loop(default=False)
            a, b = socket.socketpair()
            log = []
            def on_read():
                log.append(("io", b.recv(100)))
                rio.stop()
            rio = loop.io(b.fileno(), core.READ)
            rio.start(on_read)
            tm = loop.timer(0.02)
            tm.start(log.append, "timer")
            sys.stdout.flush(); sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    if {explicit_reinit}:
                        loop.reinit()
                    # a watcher created in the child, on a new fd
                    c, d = socket.socketpair()
                    cio = loop.io(d.fileno(), core.READ)
                    def on_child_read():
                        log.append(("child-io", d.recv(100)))
                        cio.stop()
                    cio.start(on_child_read)
                    c.send(b"new")
                    a.send(b"child")        # the inherited watcher, too
                    g = loop.timer(10, ref=False)
                    g.start(loop.break_, core.EVBREAK_ALL)
                    loop.run()
                    print("child log:", sorted(map(repr, log)), flush=True)
                    ok = sorted(map(repr, log)) == sorted(map(repr, [
                        ("io", b"child"), ("child-io", b"new"), "timer"]))
                    code = 0 if ok else 1
                except BaseException:
                    traceback.print_exc()
                sys.stdout.flush(); sys.stderr.flush()
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
            assert log == [], log
            # the parent's loop still works with the watchers it had before the fork
            a.send(b"parent")
            g = loop.timer(10, ref=False)
            g.start(loop.break_, core.EVBREAK_ALL)
            loop.run()
            assert sorted(map(repr, log)) == sorted(map(repr, [("io", b"parent"), "timer"])), log
            loop.destroy()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_fork_from_another_thread_while_the_loop_polls(self):
        # The main thread sits in the default loop's poll when a second thread forks. In
        # the child that run() will never return (its thread does not exist there); the
        # loop used to count as running in another thread for ever: run() raised
        # RuntimeError and destroy() was deferred without end.
        proc = run_script("""
            loop = core.loop(default=True)
            box = {}
            def fork_in_thread():
                time.sleep(0.2)                    # the main thread is in the poll now
                sys.stdout.flush(); sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        fired = []
                        t = loop.timer(0.01)
                        t.start(fired.append, "child timer")
                        loop.run()
                        print("child", fired, loop.depth, flush=True)
                        loop.destroy()
                        code = 0 if fired and loop.destroyed else 1
                    except BaseException:
                        traceback.print_exc()
                    sys.stdout.flush(); sys.stderr.flush()
                    os._exit(code)
                box["pid"] = pid
            th = threading.Thread(target=fork_in_thread)
            th.start()
            t = loop.timer(0.5)
            t.start(noop)
            loop.run()                          # the parent's loop is unaffected
            th.join()
            _, status = os.waitpid(box["pid"], 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
            print("OK")
        """)
        assert "child ['child timer'] 0" in proc.stdout
        assert proc.stdout.strip().endswith("OK")


# --------------------------------------------------------------------------------------
# run() re-entered from every kind of callback, and fork() there (subprocesses)
# --------------------------------------------------------------------------------------

# One callback of `kind` runs once; it stops its own watcher (so that only the inner timer
# keeps the loop alive), optionally forks (the child goes on below, the parent waits for
# it), then runs the loop again in `mode` with a 10 ms timer: run() and run(once=True)
# must return after that timer fired, run(nowait=True) at once without it. Before the fix,
# from a run_callback callback, run() never returned (100% CPU) and run(once=True) returned
# without the timer; a child forked there hung the same way. A ref=False guard turns a
# hang into a failure.
NESTED = """
kind, mode, do_fork = sys.argv[1], sys.argv[2], sys.argv[3] == "fork"
loop = core.loop(default=kind == "child")
guard = loop.timer(10, ref=False)
guard.start(loop.break_, core.EVBREAK_ALL)
result = {}
watcher = None

def nested():
    if watcher is not None:
        watcher.stop()
    if kind == "io":
        a.recv(1)       # else the fd stays ready: an event of libev's own for run(once)
    if do_fork:
        sys.stdout.flush(); sys.stderr.flush()
        pid = os.fork()
        if pid:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    result["child"] = os.waitstatus_to_exitcode(status)
                    return
                time.sleep(0.01)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            result["child"] = "hung"
            return
    fired = []
    # libev starts the timer from the loop's cached time, which on a loaded machine can be
    # more than 10 ms old here: a nowait run must see a timer it cannot find expired
    t = loop.timer(30 if mode == "nowait" else 0.01)
    t.start(lambda: fired.append(loop.depth))
    result["outer_depth"] = loop.depth
    t0 = time.monotonic()
    loop.run(**{"run": {}, "once": {"once": True}, "nowait": {"nowait": True}}[mode])
    result["elapsed"] = time.monotonic() - t0
    result["fired"] = bool(fired)
    result["inner_depth"] = fired[0] if fired else None
    t.stop()
    if do_fork:
        ok = result["fired"] == (mode != "nowait") and result["elapsed"] < 5
        print("child", result, flush=True)
        os._exit(0 if ok else 3)

if kind == "run_callback":
    loop.run_callback(nested)
elif kind == "timer":
    watcher = loop.timer(0.001)
    watcher.start(nested)
elif kind == "io":
    a, b = socket.socketpair()
    b.send(b"x")
    watcher = loop.io(a.fileno(), core.READ)
    watcher.start(nested)
elif kind in ("idle", "prepare", "check"):
    watcher = getattr(loop, kind)()
    watcher.start(nested)
    if kind == "check":
        keep = loop.timer(0.001)      # the first poll ends with it, then the check runs
        keep.start(noop)
elif kind == "async":
    watcher = loop.async_()
    watcher.start(nested)
    watcher.send()
elif kind == "signal":
    watcher = loop.signal(signal.SIGUSR1)
    watcher.start(nested)
    loop.run_callback(os.kill, os.getpid(), signal.SIGUSR1)
elif kind == "child":
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    watcher = loop.child(pid)
    watcher.start(nested)
elif kind == "fork":
    watcher = loop.fork()
    watcher.start(nested)
    loop.reinit()                     # the fork watchers run at the next iteration
loop.run()
guard.stop()
print("RESULT", result, flush=True)
"""

NESTED_KINDS = ["run_callback", "timer", "io", "idle", "prepare", "check", "async", "signal",
                "child", "fork"]


class TestNestedRun:
    @pytest.mark.parametrize("mode", ["run", "once", "nowait"])
    @pytest.mark.parametrize("kind", NESTED_KINDS)
    def test_run_reentered_from_a_callback(self, kind, mode):
        proc = run_script(NESTED, timeout=60, argv=[kind, mode, "-"])
        result = eval(proc.stdout.split("RESULT", 1)[1])
        assert result["outer_depth"] == 1, result
        assert result["fired"] == (mode != "nowait"), result
        if result["fired"]:
            assert result["inner_depth"] == 2, result   # it ran in the nested run()
        assert result["elapsed"] < 5, result        # 10 ms; a hang ends at the 10 s guard

    @pytest.mark.parametrize("mode", ["run", "once"])
    @pytest.mark.parametrize("kind", NESTED_KINDS)
    def test_child_forked_in_a_callback_runs_the_loop(self, kind, mode):
        proc = run_script(NESTED, timeout=60, argv=[kind, mode, "fork"])
        result = eval(proc.stdout.split("RESULT", 1)[1])
        assert result["child"] == 0, (result, proc.stdout, proc.stderr)


# --------------------------------------------------------------------------------------
# run_callback
# --------------------------------------------------------------------------------------


class TestRunCallback:
    def test_fifo_and_args(self, loop):
        log = []
        for i in range(10):
            loop.run_callback(log.append, i)
        loop.run_callback(lambda *a: log.append(a), 1, "two", None)
        loop.run()
        assert log == list(range(10)) + [(1, "two", None)]

    def test_handle_attributes(self, loop):
        h = loop.run_callback(noop, 1, 2)
        assert h.callback is noop
        assert h.args == (1, 2)
        assert h.pending is True
        loop.run()
        assert h.pending is False

    def test_stop_cancels(self, loop):
        log = []
        h1 = loop.run_callback(log.append, 1)
        h2 = loop.run_callback(log.append, 2)
        h3 = loop.run_callback(log.append, 3)
        h2.stop()
        assert h2.pending is False
        assert h1.pending and h3.pending
        h2.stop()                           # idempotent
        loop.run()
        assert log == [1, 3]

    def test_close_cancels(self, loop):
        log = []
        h = loop.run_callback(log.append, 1)
        h.close()
        h.close()
        assert not h.pending
        loop.run()
        assert log == []

    def test_handle_true_while_queued_or_running(self, loop):
        # gevent's contract: bool(handle) is "queued or running", `pending` only "queued";
        # args stay readable while the call runs (a notifier's args[0] list gets appended to)
        seen = []
        links = []
        h = None

        def notify(lst):
            seen.append((bool(h), h.pending, h.callback, h.args is not None and h.args[0] is lst))
            h.args[0].append("late")          # what gevent's linkables do to a running notifier
            links.extend(lst)

        h = loop.run_callback(notify, links_arg := ["early"])
        assert bool(h) and h.pending
        loop.run()
        assert seen == [(True, False, None, True)]
        assert links == ["early", "late"]
        assert not h and not h.pending
        assert h.callback is None and h.args is None
        assert links_arg == ["early", "late"]

    def test_stopped_handle_is_false(self, loop):
        h = loop.run_callback(noop)
        h.stop()
        assert not h
        assert h.args is None and h.callback is None

    def test_args_none_cancels(self, loop):
        log = []
        h = loop.run_callback(log.append, 1)
        loop.run_callback(log.append, 2)
        h.args = None
        assert not h and not h.pending
        loop.run()
        assert log == [2]

    def test_args_replaced_while_running(self, loop):
        log = []
        h = None

        def cb(*a):
            h.args = ("x",) * 50               # the running call keeps its own arguments
            log.append(a)

        h = loop.run_callback(cb, "a", "b")
        loop.run()
        assert log == [("a", "b")]
        assert h.args is None

    def test_none_args_of_one_handle_do_not_touch_another(self, loop):
        # gevent's sleep(0) queues run_callback(switch, None): the (None,) is shared, so
        # replacing or cancelling one handle's args must leave the other's alone
        log = []
        h1 = loop.run_callback(log.append, None)
        h2 = loop.run_callback(log.append, None)
        assert h1.args == (None,) and h2.args == (None,)
        h1.args = ("x",)
        h2.args = None
        loop.run()
        assert log == ["x"]
        h3 = loop.run_callback(log.append, None)
        assert h3.args == (None,)
        loop.run()
        assert log == ["x", None]

    def test_args_setter_rejects_non_tuple(self, loop):
        h = loop.run_callback(noop)
        with pytest.raises(TypeError):
            h.args = [1]
        h.stop()
        with pytest.raises(ValueError):
            h.args = (1,)

    def test_clear_callbacks(self, loop):
        log = []
        hs = [loop.run_callback(log.append, i) for i in range(5)]
        loop.clear_callbacks()
        assert loop.callback_count == 0
        assert not any(hs) and not any(h.pending for h in hs)
        k = loop.timer(LONG)
        k.start(noop)
        g = guard(loop, 0.05)
        loop.run()                               # the poll blocked: no callback was left
        assert log == []
        k.stop()
        g.stop()

    def test_clear_callbacks_from_a_callback(self, loop):
        log = []
        loop.run_callback(loop.clear_callbacks)
        loop.run_callback(log.append, 1)
        loop.run()
        assert log == []
        loop.run_callback(log.append, 2)         # the queue works afterwards
        loop.run()
        assert log == [2]

    def test_clear_callbacks_after_destroy(self, make_loop):
        lp = make_loop()
        lp.destroy()
        with pytest.raises(ValueError):
            lp.clear_callbacks()

    def test_stop_from_earlier_callback(self, loop):
        log = []
        h2 = None

        def first():
            log.append(1)
            h2.stop()

        loop.run_callback(first)
        h2 = loop.run_callback(log.append, 2)
        loop.run()
        assert log == [1]

    def test_chain(self, loop):
        log = []

        def step(n):
            log.append(n)
            if n < 1000:
                loop.run_callback(step, n + 1)

        loop.run_callback(step, 0)
        loop.run()
        assert log == list(range(1001))

    def test_callbacks_queued_by_callbacks_run_in_same_batch(self, loop):
        iterations = []

        def step(n):
            iterations.append(loop.iteration)
            if n < 10:
                loop.run_callback(step, n + 1)

        loop.run_callback(step, 0)
        loop.run()
        assert len(iterations) == 11
        assert len(set(iterations)) == 1, iterations

    def test_endless_callbacks_do_not_starve_io(self, loop, sockpair):
        a, b = sockpair
        state = {"spins": 0, "stop": False}
        deadline = time.monotonic() + GUARD

        def spin():
            state["spins"] += 1
            if state["stop"] or time.monotonic() > deadline:
                return
            loop.run_callback(spin)         # re-queues itself forever

        def on_read():
            b.recv(10)
            state["stop"] = True
            w.stop()

        w = loop.io(b.fileno(), core.READ)
        w.start(on_read)
        a.send(b"x")
        loop.run_callback(spin)
        loop.run()
        assert state["stop"], "the io event never got through the callback stream"
        assert not w.active

    def test_queued_callbacks_keep_run_alive(self, loop):
        # no watcher at all: the queued callback alone keeps run() going
        log = []
        loop.run_callback(log.append, "x")
        assert loop.run() is None
        assert log == ["x"]

    def test_callback_makes_poll_non_blocking(self, loop):
        keep = keep_alive(loop)
        log = []

        def from_timer():
            loop.run_callback(lambda: (log.append("cb"), keep.stop()))

        loop.timer(0).start(from_timer)
        guard(loop)
        start = time.monotonic()
        loop.run()
        assert log == ["cb"]
        assert time.monotonic() - start < LONG / 3

    def test_runs_with_nowait(self, loop):
        log = []
        loop.run_callback(log.append, 1)
        loop.run(nowait=True)
        assert log == [1]

    def test_runs_before_poll(self, loop):
        # queued before run(): it runs before a watcher whose event needs a poll
        log = []
        loop.timer(0).start(log.append, "timer")
        loop.run_callback(log.append, "callback")
        loop.run()
        assert log == ["callback", "timer"]

    @pytest.mark.parametrize("bad", [42, "nope", None])
    def test_not_callable(self, loop, bad):
        with pytest.raises(TypeError):
            loop.run_callback(bad)
        with pytest.raises(TypeError):
            loop.run_callback_threadsafe(bad)

    def test_threadsafe_from_same_thread(self, loop):
        log = []
        h = loop.run_callback_threadsafe(log.append, 5)
        assert h.args == (5,)
        loop.run()
        assert log == [5]

    def test_threadsafe_wakes_blocked_loop(self, loop):
        keep = keep_alive(loop)
        log = []

        def wake():
            log.append((threading.current_thread() is threading.main_thread(), time.monotonic()))
            keep.stop()

        def poster():
            time.sleep(0.2)
            loop.run_callback_threadsafe(wake)

        th = threading.Thread(target=poster, daemon=True)
        guard(loop)
        start = time.monotonic()
        th.start()
        loop.run()
        elapsed = time.monotonic() - start
        th.join(GUARD)
        assert len(log) == 1
        assert log[0][0] is True            # ran on the loop's thread
        assert elapsed >= 0.15
        assert elapsed < LONG / 3

    def test_threadsafe_from_many_threads(self, loop):
        nthreads, ncalls = 8, 200
        total = nthreads * ncalls
        keep = keep_alive(loop)
        seen = []

        def cb(tid, i):
            seen.append((tid, i))
            if len(seen) == total:
                keep.stop()

        barrier = threading.Barrier(nthreads)

        def poster(tid):
            barrier.wait()
            for i in range(ncalls):
                loop.run_callback_threadsafe(cb, tid, i)

        threads = [threading.Thread(target=poster, args=(t,), daemon=True)
                   for t in range(nthreads)]
        guard(loop)
        start = time.monotonic()
        for th in threads:
            th.start()
        loop.run()
        elapsed = time.monotonic() - start
        for th in threads:
            th.join(GUARD)
        assert len(seen) == total
        # every call ran exactly once, and each thread's calls in its own order
        assert sorted(seen) == [(t, i) for t in range(nthreads) for i in range(ncalls)]
        for t in range(nthreads):
            assert [i for tid, i in seen if tid == t] == list(range(ncalls))
        assert elapsed < LONG / 3


# --------------------------------------------------------------------------------------
# callback exceptions
# --------------------------------------------------------------------------------------


class RecordingHandler:
    def __init__(self):
        self.calls = []

    def handle_error(self, context, type, value, tb):
        self.calls.append((context, type, value, tb))


class TestErrors:
    def test_default_handler_prints_and_loop_continues(self, loop, capfd):
        log = []

        def bad():
            raise ValueError("boom-from-callback")

        loop.timer(0).start(bad)
        loop.timer(0.02).start(log.append, "later")
        loop.run()
        assert log == ["later"]
        err = capfd.readouterr().err
        assert "ValueError" in err
        assert "boom-from-callback" in err
        assert "Traceback" in err

    def test_io_watcher_whose_callback_raises_is_stopped(self, loop, sockpair):
        # The fd stays readable: the failing callback used to run (and be reported) on
        # every iteration, a busy loop. As in gevent, the io watcher is stopped instead.
        a, b = sockpair
        a.send(b"x")
        handler = RecordingHandler()
        loop.error_handler = handler
        calls = []

        def bad():
            calls.append(1)
            raise ValueError("io-boom")

        w = loop.io(b.fileno(), core.READ)
        w.start(bad)
        t = loop.timer(0.1)
        t.start(loop.break_)           # the end, even if the watcher stayed active
        loop.run()
        assert len(calls) == 1
        assert not w.active
        assert [(c[0], c[1]) for c in handler.calls] == [(w, ValueError)]
        w.start(bad)                   # it may be started again
        t.start(loop.break_)
        loop.run()
        assert len(calls) == 2 and not w.active
        t.stop()

    def test_io_watcher_stays_active_after_keyboard_interrupt(self, loop, sockpair):
        # a KeyboardInterrupt that lands in a callback says nothing about the callback
        a, b = sockpair
        a.send(b"x")
        calls = []

        def interrupted():
            calls.append(1)
            if len(calls) == 1:
                raise KeyboardInterrupt
            w.stop()

        w = loop.io(b.fileno(), core.READ)
        w.start(interrupted)
        with pytest.raises(KeyboardInterrupt):
            loop.run()
        assert w.active
        loop.run()
        assert calls == [1, 1]

    def test_default_handler_run_callback(self, loop, capfd):
        log = []

        def bad():
            raise KeyError("cb-boom")

        loop.run_callback(bad)
        loop.run_callback(log.append, "next")
        loop.run()
        assert log == ["next"]
        err = capfd.readouterr().err
        assert "KeyError" in err and "cb-boom" in err

    def test_handler_object_receives_watcher_context(self, loop):
        handler = RecordingHandler()
        loop.error_handler = handler
        assert loop.error_handler is handler
        log = []
        exc = ValueError("x")

        def bad():
            raise exc

        t = loop.timer(0)
        t.start(bad)
        loop.timer(0.02).start(log.append, "later")
        loop.run()
        assert log == ["later"]
        assert len(handler.calls) == 1
        context, typ, value, tb = handler.calls[0]
        assert context is t
        assert typ is ValueError
        assert value is exc
        assert isinstance(tb, types.TracebackType)

    def test_handler_object_receives_callback_handle(self, loop):
        handler = RecordingHandler()
        loop.error_handler = handler

        def bad():
            raise ZeroDivisionError

        h = loop.run_callback(bad)
        loop.run()
        assert len(handler.calls) == 1
        context, typ, value, tb = handler.calls[0]
        assert context is h
        assert typ is ZeroDivisionError
        assert isinstance(value, ZeroDivisionError)

    def test_plain_callable_handler(self, loop):
        calls = []
        loop.error_handler = lambda *a: calls.append(a)
        i = loop.idle()

        def idle_cb():
            i.stop()
            raise RuntimeError("plain")

        i.start(idle_cb)
        loop.run()
        assert len(calls) == 1
        context, typ, value, tb = calls[0]
        assert context is i
        assert typ is RuntimeError
        assert str(value) == "plain"

    def test_handle_error_attribute_preferred_over_call(self, loop):
        class Both(RecordingHandler):
            def __init__(self):
                super().__init__()
                self.called = []

            def __call__(self, *args):
                self.called.append(args)

        handler = Both()
        loop.error_handler = handler

        def bad():
            raise ValueError("which")

        loop.timer(0).start(bad)
        loop.run()
        assert len(handler.calls) == 1
        assert handler.called == []

    def test_error_handler_can_be_reset(self, loop, capfd):
        loop.error_handler = RecordingHandler()
        loop.error_handler = None
        assert loop.error_handler is None

        def bad():
            raise ValueError("after-reset")

        loop.timer(0).start(bad)
        loop.run()
        assert "after-reset" in capfd.readouterr().err

    def test_handle_error_dispatches_to_handler(self, loop):
        handler = RecordingHandler()
        loop.error_handler = handler
        value = ValueError("direct")
        loop.handle_error("ctx", ValueError, value, None)
        assert handler.calls == [("ctx", ValueError, value, None)]

    def test_handler_stopping_its_context_keeps_refcounts(self):
        # the error handler may stop() the handle or watcher it is given while the loop
        # still holds the callable: no reference may be dropped twice (that crashed once;
        # hence a subprocess)
        proc = run_script("""
            class Boom:
                def __call__(self, *args):
                    raise ValueError("boom")
            loop = core.loop(default=False)
            func = Boom()
            base = sys.getrefcount(func)
            contexts = []
            def handler(context, t, v, tb):
                contexts.append(type(context).__name__)
                context.stop()
            loop.error_handler = handler
            for _ in range(3):
                loop.run_callback(func)
                t = loop.timer(0)
                t.start(func)
                loop.run()
                del t
            gc.collect()
            assert contexts == ["callback", "timer"] * 3, contexts
            assert sys.getrefcount(func) == base, (sys.getrefcount(func), base)
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")


    def test_repr_survives_a_callback_whose_repr_changes_the_watcher(self):
        # repr() formatted the callback and args it did not own: a callback whose __repr__
        # replaced them (or stopped the handle) freed what was being formatted: a segfault
        proc = run_script("""
            loop = core.loop(default=False)
            w = loop.timer(1)

            class Meddler:
                def __init__(self, target):
                    self.target = target

                def __call__(self, *args):
                    pass

                def __repr__(self):
                    t = self.target
                    if isinstance(t, core.callback):
                        t.stop()
                    else:
                        t.args = (object(),)
                        t.callback = noop
                    junk = [tuple([object()] * 3) for _ in range(1000)]
                    return "Meddler"

            for i in range(20):
                w.callback = Meddler(w)
                w.args = (["a" * 50], {"k": i})
                assert "callback=Meddler args=([" in repr(w), repr(w)
            handle = loop.run_callback(noop, 1)
            handle.args = (["x" * 50], {"k": 1})
            for i in range(20):
                m = Meddler(handle)
                h = loop.run_callback(m, ["y" * 50], {"k": 2})
                m.target = h
                assert "callback=Meddler args=([" in repr(h), repr(h)
            print("OK")
        """)
        assert proc.stdout.strip() == "OK"

    def test_error_handler_may_stop_or_change_the_failed_callback_handle(self):
        # found by reading the code while fuzzing: the handle given as `context` showed the
        # callable and args without owning them, so an error handler calling
        # context.stop() (or setting context.args) freed what the loop still used: a
        # segfault. In a subprocess, as a regression would crash the interpreter.
        proc = run_script("""
            loop = core.loop(default=False)
            seen = []

            def bad(*args):
                raise ValueError("boom")

            item = object()

            def handler(context, typ, value, tb):
                seen.append((context.callback, context.args))
                if len(seen) == 1:
                    context.stop()
                else:
                    context.args = ("replaced",)

            loop.error_handler = handler
            before = (sys.getrefcount(bad), sys.getrefcount(item))
            h1 = loop.run_callback(bad, item)
            h2 = loop.run_callback(bad, item)
            loop.run(nowait=True)
            assert seen == [(bad, (item,)), (bad, (item,))], seen
            del seen[:]
            gc.collect()
            after = (sys.getrefcount(bad), sys.getrefcount(item))
            assert after == before, (before, after)
            assert (h1.callback, h1.args, h2.callback, h2.args) == (None,) * 4
            assert not h1.pending and not h2.pending
            print("OK")
        """)
        assert proc.stdout.strip() == "OK"

    def test_raising_error_handler_propagates_out_of_run(self, loop):
        class Boom(Exception):
            pass

        def handler(context, typ, value, tb):
            raise Boom("from handler")

        loop.error_handler = handler
        keep = keep_alive(loop)
        log = []

        def bad():
            raise ValueError("callback")

        loop.timer(0).start(bad)
        loop.timer(0).start(log.append, "same batch")
        guard(loop)
        start = time.monotonic()
        with pytest.raises(Boom, match="from handler"):
            loop.run()
        assert time.monotonic() - start < LONG / 3
        assert log == ["same batch"]        # the batch was finished first
        keep.stop()

    @pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
    def test_base_exception_propagates_without_handler(self, loop, exc_type):
        keep = keep_alive(loop)

        def bad():
            raise exc_type("stop now")

        loop.timer(0).start(bad)
        guard(loop)
        start = time.monotonic()
        with pytest.raises(exc_type):
            loop.run()
        assert time.monotonic() - start < LONG / 3
        keep.stop()

    def test_keyboardinterrupt_from_run_callback_propagates(self, loop):
        keep = keep_alive(loop)

        def bad():
            raise KeyboardInterrupt

        loop.run_callback(bad)
        guard(loop)
        with pytest.raises(KeyboardInterrupt):
            loop.run()
        keep.stop()

    def test_keyboardinterrupt_goes_to_handler_when_set(self, loop):
        handler = RecordingHandler()
        loop.error_handler = handler
        log = []

        def bad():
            raise KeyboardInterrupt

        t = loop.timer(0)
        t.start(bad)
        loop.timer(0.02).start(log.append, "later")
        loop.run()
        assert log == ["later"]
        assert [(c, ty) for c, ty, _, _ in handler.calls] == [(t, KeyboardInterrupt)]

    def test_loop_usable_after_propagated_exception(self, loop):
        def bad():
            raise KeyboardInterrupt

        loop.timer(0).start(bad)
        with pytest.raises(KeyboardInterrupt):
            loop.run()
        log = []
        loop.timer(0.001).start(log.append, "again")
        loop.run()
        assert log == ["again"]


# --------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------


class TestThreads:
    def test_loop_per_thread_concurrently(self):
        nthreads, nticks = 6, 10
        results = {}
        errors = []
        barrier = threading.Barrier(nthreads)

        def worker(n):
            try:
                lp = core.loop(default=False)
                ticks = []

                def tick():
                    ticks.append(threading.get_ident())
                    if len(ticks) == nticks:
                        t.stop()

                t = lp.timer(0.005, 0.005)
                t.start(tick)
                lp.run_callback(ticks.append, threading.get_ident())
                barrier.wait()
                lp.run()
                results[n] = ticks
                lp.destroy()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append((n, exc))

        threads = [threading.Thread(target=worker, args=(n,), daemon=True)
                   for n in range(nthreads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(GUARD * 2)
        assert not any(th.is_alive() for th in threads)
        assert errors == []
        assert sorted(results) == list(range(nthreads))
        for n, ticks in results.items():
            assert len(ticks) == nticks        # the run_callback one + stops at nticks
            assert len(set(ticks)) == 1        # all on the thread that ran the loop

    def test_thread_loops_do_not_block_each_other(self):
        # a loop blocked in its poll in one thread lets another thread's loop run
        blocker = core.loop(default=False)
        keep = keep_alive(blocker)
        started = threading.Event()
        blocker.run_callback(started.set)
        th = threading.Thread(target=blocker.run, daemon=True)
        th.start()
        try:
            assert started.wait(GUARD)
            lp = core.loop(default=False)
            ticks = []
            t = lp.timer(0.001, 0.001)

            def tick():
                ticks.append(1)
                if len(ticks) == 20:
                    t.stop()

            t.start(tick)
            guard(lp)
            start = time.monotonic()
            lp.run()
            assert len(ticks) == 20
            assert time.monotonic() - start < LONG / 3
            lp.destroy()
        finally:
            blocker.run_callback_threadsafe(keep.stop)
            th.join(GUARD * 2)
        assert not th.is_alive()
        blocker.destroy()


# --------------------------------------------------------------------------------------
# garbage collection (subprocesses: a bug here is a crash)
# --------------------------------------------------------------------------------------


class TestGC:
    def test_unreferenced_started_watchers_keep_firing(self):
        proc = run_script("""
            loop = core.loop(default=False)
            counts = {"rep": 0, "one": 0, "io": 0, "idle": 0}
            def rep():
                counts["rep"] += 1
                if counts["rep"] % 5 == 0:
                    loop.break_()
            t = loop.timer(0.001, 0.001)
            t.start(rep)
            del t
            loop.timer(0.001).start(counts.__setitem__, "one", 1)
            a, b = socket.socketpair()
            def on_read():
                b.recv(10)
                counts["io"] += 1
            loop.io(b.fileno(), core.READ).start(on_read)
            a.send(b"x")
            gc.collect(); gc.collect()
            loop.run()
            assert counts["rep"] == 5, counts
            assert counts["one"] == 1, counts
            assert counts["io"] == 1, counts
            # still running after another collection
            gc.collect()
            loop.run()
            assert counts["rep"] == 10, counts
            loop.destroy()
            gc.collect()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_gc_of_loop_with_started_watchers(self):
        proc = run_script("""
            a, b = socket.socketpair()
            def make():
                lp = core.loop(default=False)
                for _ in range(5):
                    lp.timer(10, 1).start(noop)
                    lp.io(b.fileno(), core.READ).start(noop)
                    lp.idle().start(noop)
                    lp.prepare().start(noop)
                    lp.check().start(noop)
                    lp.async_().start(noop)
                    lp.fork().start(noop)
                    lp.run_callback(noop)
                    lp.run_callback_threadsafe(noop)
                lp.run(nowait=True)
                keep = lp.timer(10)
                keep.start(lambda: keep)    # cycle through the callback
                return None
            for i in range(20):
                make()
                gc.collect()
            for i in range(5):
                lp = core.loop(default=False)
                fired = []
                lp.timer(0.001).start(fired.append, i)
                lp.run()
                assert fired == [i], fired
                lp.destroy()
            gc.collect()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_an_unreachable_loop_with_started_watchers_is_freed(self):
        # Nothing can run or destroy a loop that only its own started watchers and queued
        # callbacks refer to: the collector stops them and frees the loop (its fds too).
        # A loop still reachable through one of its started watchers is kept, running.
        proc = run_script("""
            def fds():
                return len(os.listdir("/proc/self/fd"))
            a, b = socket.socketpair()
            fired = []
            def make():
                lp = core.loop(default=False)
                lp.timer(0, 10).start(fired.append, "timer")
                lp.io(b.fileno(), core.READ).start(fired.append, "io")
                lp.idle().start(fired.append, "idle")
                lp.async_().start(fired.append, "async")
                lp.signal(signal.SIGUSR2).start(fired.append, "signal")
                lp.run_callback(fired.append, "callback")
                lp.error_handler = lp   # a cycle through the error handler too
                return weakref.ref(lp)
            before = fds()
            refs = []
            for _ in range(10):
                refs.append(make())
                gc.collect()  # frees SIGUSR2 for the next loop
            assert [r() for r in refs] == [None] * 10, "a loop survived"
            assert fds() == before, (before, fds())
            assert fired == [], fired
            # SIGUSR2's handler was put back: another loop can watch it
            lp = core.loop(default=False)
            lp.signal(signal.SIGUSR2).start(noop)
            lp.destroy()
            # kept: the loop is reachable through a started watcher someone holds
            lp = core.loop(default=False)
            kept = lp.timer(0.001)
            kept.start(fired.append, "kept")
            ref = weakref.ref(lp)
            del lp
            gc.collect()
            assert ref() is not None and kept.active
            kept.loop.run()
            assert fired == ["kept"], fired
            kept.loop.destroy()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_closing_a_watched_fd_does_not_crash(self):
        # not specified beyond "never crashes": closing an fd behind libev's back must not
        # abort the interpreter
        proc = run_script("""
            for backend in core.supported_backends():
                loop = core.loop(backend, default=False)
                a, b = socket.socketpair()
                w = loop.io(b.fileno(), core.READ)
                w.start(noop)
                b.close()
                a.close()
                for _ in range(3):
                    loop.run(nowait=True)
                w.stop(); w.close()
                loop.destroy()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_gc_of_destroyed_loop_and_watchers(self):
        proc = run_script("""
            a, b = socket.socketpair()
            survivors = []
            for i in range(20):
                lp = core.loop(default=False)
                ws = [lp.timer(10), lp.io(b.fileno(), core.READ), lp.idle(), lp.async_()]
                for w in ws:
                    w.start(noop)
                lp.run_callback(noop)
                lp.destroy()
                if i % 2:
                    survivors.append(ws[0])  # a watcher outliving its loop
                del lp, ws, w
                gc.collect()
            for w in survivors:
                w.stop(); w.close()
                assert not w.active
                repr(w)
                w.loop                       # still reachable and readable
            del survivors
            gc.collect()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_self_referencing_watcher_collected(self):
        proc = run_script("""
            class Token:
                pass
            loop = core.loop(default=False)
            token = Token()
            ref = weakref.ref(token)
            fired = []
            t = loop.timer(0.001, 0.001)
            def cb(tok):
                fired.append(1)
                t.stop()                     # the callback references its own watcher
            t.start(cb, token)
            del token
            loop.run()
            assert fired == [1], fired
            assert not t.active
            del t, cb
            gc.collect(); gc.collect()
            print("token collected:", ref() is None)
            assert ref() is None, "stopped watcher in a reference cycle was not collected"
            loop.destroy()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_watcher_started_in_callback_and_destroy_from_callback(self):
        proc = run_script("""
            a, b = socket.socketpair()
            loop = core.loop(default=False)
            log = []
            def start_more():
                loop.timer(0.001, 0.001).start(log.append, "rep")
                loop.io(a.fileno(), core.WRITE).start(noop)
                loop.idle().start(noop)
                loop.run_callback(noop)
                loop.timer(0.01).start(kill)
                log.append("started")
            def kill():
                loop.destroy()
                log.append("destroyed")
            loop.timer(0).start(start_more)
            keep = loop.timer(30)
            keep.start(noop)
            t0 = time.monotonic()
            loop.run()
            assert time.monotonic() - t0 < 10
            assert "started" in log and "destroyed" in log, log
            assert not keep.active
            try:
                loop.run()
            except ValueError as exc:
                assert "destroyed" in str(exc), exc
            else:
                raise AssertionError("run() on a destroyed loop did not raise")
            keep.stop(); keep.close()
            del loop, keep
            gc.collect()
            lp = core.loop(default=False)
            fired = []
            lp.timer(0.001).start(fired.append, 1)
            lp.run()
            assert fired == [1]
            lp.destroy()
            gc.collect()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")

    def test_loop_collected_while_watcher_callback_references_it(self):
        proc = run_script("""
            for i in range(50):
                lp = core.loop(default=False)
                t = lp.timer(0.001)
                t.start(lambda: lp.now())
                lp.run()
                t2 = lp.timer(10)
                t2.start(lambda: (lp, t2))
                del lp, t, t2
                gc.collect()
            print("OK")
        """)
        assert proc.stdout.strip().endswith("OK")
