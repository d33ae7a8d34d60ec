"""Tests for ``evloop.hub``: get_hub, Hub (wait, join, handle_error, destroy, the blocking
monitor), Waiter, LoopExit, blocking calls made from the hub, spawn_raw, kill,
signal_handler, reinit/fork, and waking a greenlet from another thread.

Semantics are gevent's (checked against gevent 26.9 where unclear). Timing rules (a busy
2-core machine): elapsed times are checked against lower bounds, or upper bounds with a
>= 10x margin. Signals, fork, SystemExit/KeyboardInterrupt raised into the main greenlet,
destroying the main hub and the blocking monitor run in subprocesses. Every test kills the
greenlets it started, and the ``kill_after`` fixture checks that the hub's loop has no
more active watchers after a test than before it.
"""
import gc
import io
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import pytest
from greenlet import greenlet as raw_greenlet
from greenlet import error as greenlet_error

import evloop
import evloop.hub
from evloop import core
from evloop.exceptions import (BlockingSwitchOutError, ConcurrentObjectUseError,
                               GreenletExit, LoopExit)
from evloop.hub import Hub, Waiter, get_hub, get_hub_if_exists

PKG_PARENT = str(Path(evloop.__file__).resolve().parent.parent)
LONG = 30.0      # a wait that must never end during a test
GUARD = 10.0     # how long to wait for something that should come much sooner


# --------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------

def _env(extra=None):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("EVLOOP_"):
            del env[key]
    env["PYTHONPATH"] = PKG_PARENT + (os.pathsep + env["PYTHONPATH"]
                                      if env.get("PYTHONPATH") else "")
    env.pop("PYTHONWARNINGS", None)
    if extra:
        env.update(extra)
    return env


def run_script(code, env=None, timeout=60, expect_rc=0):
    """Run ``code`` in a fresh interpreter; check its exit code; return the result."""
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, cwd=PKG_PARENT,
                          env=_env(env))
    if expect_rc is not None:
        assert proc.returncode == expect_rc, (
            f"exit code {proc.returncode} (expected {expect_rc})\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return proc


pytestmark = pytest.mark.usefixtures("kill_after")


def in_thread(func, *args):
    """Run ``func(*args)`` in a new OS thread; return its result or raise its exception."""
    box = {}

    def body():
        try:
            box["value"] = func(*args)
        except BaseException as ex:  # noqa: BLE001
            box["error"] = ex

    t = threading.Thread(target=body)
    t.start()
    t.join(GUARD * 3)
    assert not t.is_alive(), "the thread hangs"
    if "error" in box:
        raise box["error"]
    return box.get("value")


# --------------------------------------------------------------------------------------
# get_hub: one per thread, lazily created
# --------------------------------------------------------------------------------------

def test_get_hub_returns_the_same_hub_in_a_thread():
    hub = get_hub()
    assert isinstance(hub, Hub)
    assert get_hub() is hub
    assert get_hub_if_exists() is hub
    assert evloop.get_hub is get_hub


def test_main_hub_runs_the_default_loop():
    hub = get_hub()
    assert hub.loop.default is True
    assert hub.main_hub is True
    assert hub.thread_ident == threading.get_ident()
    # its parent is the thread's main greenlet
    assert hub.parent is not None and hub.parent.parent is None


def test_hub_is_created_lazily():
    proc = run_script("""
        import evloop
        from evloop.hub import get_hub_if_exists, get_hub
        from greenlet import getcurrent
        assert get_hub_if_exists() is None, "importing evloop created a hub"
        evloop.Timeout(1)          # creating a Timeout (not starting it) needs no hub
        assert get_hub_if_exists() is None
        hub = get_hub()
        assert get_hub_if_exists() is hub
        print("OK", hub.loop.default)
    """)
    assert "OK True" in proc.stdout


def test_each_thread_gets_its_own_hub_on_a_new_loop():
    main_hub = get_hub()

    def body():
        assert get_hub_if_exists() is None
        hub = get_hub()
        try:
            assert get_hub() is hub
            evloop.sleep(0.01)  # the thread's hub runs its own loop
            return hub, hub.loop, hub.loop.default, hub.main_hub, hub.thread_ident
        finally:
            hub.destroy()

    hub, loop, default, main, ident = in_thread(body)
    assert hub is not main_hub
    assert loop is not main_hub.loop
    assert default is False
    assert main is False
    assert ident != threading.get_ident()
    assert loop.destroyed  # destroy() destroys a non-default loop by default


def test_a_threads_hub_is_destroyed_when_the_thread_ends():
    # A hub that ran is a greenlet suspended inside loop.run(); only its own thread can
    # unwind that, so a thread that ends without hub.destroy() used to leave the loop (its
    # epoll and wake-up fds) and everything the frames held alive for good.
    def body():
        hub = get_hub()
        hub.loop.timer(LONG).start(print)  # an active watcher left behind as well
        evloop.sleep(0.001)
        return weakref.ref(hub), hub.loop

    results = [in_thread(body) for _ in range(5)]
    gc.collect()
    for hub_ref, loop in results:
        assert loop.destroyed  # and so its fds closed (test_leaks.py counts them)
        assert hub_ref() is None or hub_ref().dead


def test_a_thread_hub_that_never_ran_or_was_destroyed_or_handed_over():
    def never_ran():
        return get_hub().loop

    def destroyed():
        hub = get_hub()
        evloop.sleep(0.001)
        hub.destroy()
        return hub.loop

    def handed_over():
        hub = get_hub()
        evloop.hub.set_hub(None)  # no longer this thread's hub: the thread's end leaves it be
        return hub

    assert in_thread(never_ran).destroyed
    assert in_thread(destroyed) is None
    hub = in_thread(handed_over)
    assert not hub.loop.destroyed
    hub.destroy()  # it never ran: no greenlet to unwind, only the loop to free
    assert hub.loop is None


def test_two_threads_get_two_hubs():
    hubs = []
    barrier = threading.Barrier(2, timeout=GUARD)

    def body():
        hub = get_hub()
        hubs.append((hub, hub.loop))
        barrier.wait()
        evloop.sleep(0.01)
        hub.destroy()

    threads = [threading.Thread(target=body) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD * 3)
    assert len(hubs) == 2 and hubs[0][0] is not hubs[1][0]
    assert hubs[0][1] is not hubs[1][1]


# --------------------------------------------------------------------------------------
# Hub.wait
# --------------------------------------------------------------------------------------

def test_hub_wait_on_a_timer():
    hub = get_hub()
    hub.loop.update_now()  # a timer counts from the loop's cached time (as in libev/gevent)
    timer = hub.loop.timer(0.05)
    t0 = time.monotonic()
    hub.wait(timer)
    assert time.monotonic() - t0 >= 0.04
    assert not timer.active


def test_hub_wait_on_an_io_watcher():
    import socket
    a, b = socket.socketpair()
    try:
        hub = get_hub()
        evloop.spawn_later(0.02, a.send, b"x")
        watcher = hub.loop.io(b.fileno(), core.READ)
        hub.wait(watcher)
        assert b.recv(1) == b"x"
        assert not watcher.active
    finally:
        a.close()
        b.close()


def test_hub_wait_stops_the_watcher_when_killed(kill_after):
    hub = get_hub()
    before = hub.loop.activecnt
    timer = hub.loop.timer(LONG)
    g = evloop.spawn(hub.wait, timer)
    kill_after.append(g)
    evloop.sleep(0)
    assert timer.active
    assert hub.loop.activecnt == before + 1
    g.kill()
    assert g.dead
    assert not timer.active
    assert hub.loop.activecnt == before


def test_hub_wait_stops_the_watcher_on_timeout():
    hub = get_hub()
    timer = hub.loop.timer(LONG)
    with pytest.raises(evloop.Timeout):
        with evloop.Timeout(0.02):
            hub.wait(timer)
    assert not timer.active


def test_hub_wait_rejects_a_non_watcher():
    with pytest.raises(TypeError):
        get_hub().wait(object())


def test_hub_wait_on_another_loops_watcher_names_the_mismatch():
    # It used to start the watcher on the other loop (from this thread) and end in a
    # LoopExit saying "the hub has no active watcher": the watcher could never wake us.
    hub = get_hub()
    private = core.loop(default=False)
    ready, done = threading.Event(), threading.Event()
    box = {}

    def other_thread():
        h = get_hub()
        evloop.sleep(0.001)                    # its hub runs: suspended in its loop
        box["loop"], box["w"] = h.loop, h.loop.timer(0.01)
        ready.set()
        while not done.is_set():
            evloop.sleep(0.005)

    t = threading.Thread(target=other_thread)
    t.start()
    try:
        assert ready.wait(GUARD)
        for w, loop in ((box["w"], box["loop"]), (private.timer(0.01), private)):
            with pytest.raises(ValueError, match="this hub's loop") as info:
                hub.wait(w)
            assert repr(loop) in str(info.value) and repr(hub.loop) in str(info.value)
            assert not w.active and w.callback is None     # nothing was started
    finally:
        done.set()
        t.join(GUARD)
        private.destroy()


def test_destroying_a_running_hub_from_another_thread_changes_nothing():
    # destroy() used to stop the hub's monitor, thread pool and resolver, then fail with
    # greenlet.error ("cannot switch to a different thread") when making the hub leave
    # its loop; the thread was left with a hub without its services
    ready, go, done = threading.Event(), threading.Event(), threading.Event()
    box = {}

    def other_thread():
        h = get_hub()
        box["hub"] = h
        assert h.threadpool.spawn(pow, 2, 3).get(timeout=GUARD) == 8
        ready.set()
        go.wait(GUARD)
        # everything still works in its own thread, and destroy() works there
        box["after"] = h.threadpool.spawn(pow, 3, 3).get(timeout=GUARD)
        evloop.sleep(0.001)
        loop = h.loop
        h.destroy()
        box["destroyed_at_home"] = loop.destroyed
        done.set()

    t = threading.Thread(target=other_thread)
    t.start()
    try:
        assert ready.wait(GUARD)
        hub = box["hub"]
        pool, loop = hub._threadpool, hub.loop
        with pytest.raises(greenlet_error, match="only that thread"):
            hub.destroy()                      # greenlet.error, as before: checked first
        assert hub._threadpool is pool and hub.loop is loop and not loop.destroyed
        assert hub and not hub.dead
    finally:
        go.set()
        t.join(GUARD)
    assert done.is_set() and box["after"] == 27 and box["destroyed_at_home"]


def test_hub_wait_on_a_watcher_someone_else_waits_on(kill_after):
    hub = get_hub()
    timer = hub.loop.timer(LONG)
    g = evloop.spawn(lambda: hub.wait(timer))
    kill_after.append(g)
    evloop.sleep(0)
    with pytest.raises(ConcurrentObjectUseError):
        hub.wait(timer)
    g.kill()
    assert not timer.active


def test_setting_the_callback_of_a_watcher_a_greenlet_waits_on(kill_after, errors):
    # found by tests/test_fuzz_greenlet.py: the watcher kept its "switch to the Waiter"
    # flag, so the new callback was used as a Waiter (its memory read as one) when the
    # watcher fired. Now the watcher calls the new callback, as start() would make it do.
    hub = get_hub()
    timer = hub.loop.timer(0.001)
    g = evloop.spawn(hub.wait, timer)
    kill_after.append(g)
    evloop.sleep(0)
    assert timer.active
    called = []
    timer.callback = lambda *args: called.append(args)
    timer.args = ("fired",)
    evloop.sleep(0.02)
    assert called == [("fired",)]
    assert errors.getvalue() == ""
    assert not g.dead  # the watcher was taken from it: only kill or a Timeout ends the wait
    g.kill()
    assert not timer.active


def test_repr_of_a_greenlet_waiting_on_a_watcher_it_got_as_argument(kill_after):
    # the watcher's repr shows its Waiter, whose repr shows the greenlet, whose repr shows
    # its args (the watcher): repr must not recurse forever (gevent's does not)
    hub = get_hub()
    timer = hub.loop.timer(LONG)
    g = evloop.spawn(hub.wait, timer)
    kill_after.append(g)
    evloop.sleep(0)
    assert "Greenlet" in repr(g)
    assert "timer" in repr(timer)
    g.kill()


# --------------------------------------------------------------------------------------
# Waiter
# --------------------------------------------------------------------------------------

def test_waiter_fresh_state():
    w = Waiter()
    assert w.hub is get_hub()
    assert not w.ready()
    assert not w.successful()
    assert w.value is None
    assert w.exc_info is None
    assert evloop.Waiter is Waiter


def test_waiter_switch_before_get():
    w = Waiter()
    w.switch(42)
    assert w.ready() and w.successful()
    assert w.value == 42
    assert w.exc_info is None
    assert w.get() == 42


def test_waiter_switch_after_get():
    hub = get_hub()
    w = Waiter()
    hub.loop.run_callback(w.switch, "hello")
    assert w.get() == "hello"


def test_waiter_switch_after_get_from_a_timer():
    hub = get_hub()
    w = Waiter()
    timer = hub.loop.timer(0.02)
    timer.start(w.switch, "late", update=True)
    try:
        t0 = time.monotonic()
        assert w.get() == "late"
        assert time.monotonic() - t0 >= 0.015
    finally:
        timer.close()


def test_waiter_throw_before_get():
    w = Waiter()
    w.throw(ValueError, ValueError("stored"), None)
    assert w.ready()
    assert not w.successful()
    assert w.exc_info[0] is ValueError
    assert str(w.exc_info[1]) == "stored"
    with pytest.raises(ValueError, match="stored"):
        w.get()


def test_waiter_throw_class_only_before_get():
    w = Waiter()
    w.throw(KeyError)
    assert w.ready() and not w.successful()
    with pytest.raises(KeyError):
        w.get()


def test_waiter_throw_after_get():
    hub = get_hub()
    w = Waiter()
    hub.loop.run_callback(w.throw, ValueError, ValueError("thrown"))
    with pytest.raises(ValueError, match="thrown"):
        w.get()


def test_waiter_get_in_a_greenlet_switched_by_the_hub(kill_after):
    w = Waiter()
    g = evloop.spawn(w.get)
    kill_after.append(g)
    evloop.sleep(0)
    assert w.greenlet is g
    assert not w.ready()
    get_hub().loop.run_callback(w.switch, 7)
    assert g.get(timeout=GUARD) == 7
    assert w.greenlet is None


def test_waiter_get_from_the_hub_raises_blocking_switch_out_error():
    hub = get_hub()
    w = Waiter()
    caught = []

    def callback():
        try:
            w.get()
        except BaseException as ex:  # noqa: BLE001
            caught.append(ex)

    hub.loop.run_callback(callback)
    evloop.sleep(0.01)
    assert len(caught) == 1
    assert isinstance(caught[0], BlockingSwitchOutError)
    assert isinstance(caught[0], AssertionError)  # as in gevent


def test_waiter_second_concurrent_get_raises(kill_after):
    w = Waiter()
    g1 = evloop.spawn(w.get)
    g2 = evloop.spawn(w.get)
    kill_after.extend([g1, g2])
    evloop.sleep(0)
    evloop.sleep(0)
    assert g2.dead
    assert isinstance(g2.exception, ConcurrentObjectUseError)
    assert not g1.dead
    get_hub().loop.run_callback(w.switch, "first")
    assert g1.get(timeout=GUARD) == "first"


def test_waiter_switch_from_a_greenlet_other_than_the_hub_is_refused(kill_after):
    w = Waiter()
    g = evloop.spawn(w.get)
    kill_after.append(g)
    evloop.sleep(0)
    with pytest.raises(AssertionError):
        w.switch(1)  # from the main greenlet, not the hub
    assert not g.dead
    g.kill()


def test_waiter_of_a_killed_greenlet_stores_a_later_switch(kill_after):
    # switching a Waiter whose greenlet was killed must not switch into the dead greenlet
    hub = get_hub()
    w = Waiter()
    g = evloop.spawn(w.get)
    kill_after.append(g)
    evloop.sleep(0)
    g.kill()
    assert g.dead and w.greenlet is None
    results = []

    def callback():
        try:
            w.switch(3)
            results.append("ok")
        except BaseException as ex:  # noqa: BLE001
            results.append(ex)

    hub.loop.run_callback(callback)
    evloop.sleep(0.01)
    assert results == ["ok"]
    assert w.ready() and w.value == 3


def test_waiter_clear_makes_it_reusable():
    w = Waiter()
    w.switch(1)
    assert w.get() == 1
    w.clear()
    assert not w.ready()
    get_hub().loop.run_callback(w.switch, 2)
    assert w.get() == 2


def test_waiter_as_a_link_callback():
    w = Waiter()
    g = evloop.spawn(lambda: "result")
    g.rawlink(w)
    assert w.get() == "result"


def test_waiter_woken_from_another_thread(kill_after):
    hub = get_hub()
    w = Waiter()
    keepalive = hub.loop.timer(LONG)   # the main loop must not LoopExit while it waits
    keepalive.start(lambda: None)
    try:
        def other_thread():
            time.sleep(0.05)
            hub.loop.run_callback_threadsafe(w.switch, "from-thread")

        t = threading.Thread(target=other_thread)
        t.start()
        t0 = time.monotonic()
        assert w.get() == "from-thread"
        assert time.monotonic() - t0 < GUARD
        t.join(GUARD)
    finally:
        keepalive.close()


def test_greenlet_waiting_on_a_waiter_woken_from_another_thread(kill_after):
    hub = get_hub()
    w = Waiter()
    g = evloop.spawn(w.get)
    kill_after.append(g)
    evloop.sleep(0)

    def other_thread():
        time.sleep(0.05)
        hub.loop.run_callback_threadsafe(w.switch, 99)

    t = threading.Thread(target=other_thread)
    t.start()
    with evloop.Timeout(GUARD):
        # the loop has only g's wait, which references nothing: the threadsafe callback
        # has to wake the polling loop
        while not g.dead:
            evloop.sleep(0.01)
    t.join(GUARD)
    assert g.value == 99


def test_many_threads_wake_many_waiters():
    hub = get_hub()
    waiters = [Waiter() for _ in range(20)]
    glets = [evloop.spawn(w.get) for w in waiters]
    evloop.sleep(0)

    def other_thread(i):
        hub.loop.run_callback_threadsafe(waiters[i].switch, i)

    threads = [threading.Thread(target=other_thread, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    try:
        done = evloop.joinall(glets, timeout=GUARD)
        assert len(done) == 20
        assert [g.value for g in glets] == list(range(20))
    finally:
        for t in threads:
            t.join(GUARD)
        evloop.killall(glets)


# --------------------------------------------------------------------------------------
# LoopExit
# --------------------------------------------------------------------------------------

def test_loop_exit_names_the_waiters_what():
    w = Waiter()
    w.what = "the-thing-we-wait-for"
    with pytest.raises(LoopExit) as info:
        w.get()
    assert "the-thing-we-wait-for" in str(info.value)
    assert not get_hub().dead
    evloop.sleep(0.001)  # the hub still works afterwards


def test_loop_exit_names_the_watcher():
    hub = get_hub()
    timer = hub.loop.timer(LONG, ref=False)
    with pytest.raises(LoopExit) as info:
        hub.wait(timer)
    assert "timer" in str(info.value)
    assert not timer.active
    evloop.sleep(0.001)


def test_loop_exit_from_an_unreferenced_sleep():
    with pytest.raises(LoopExit):
        evloop.sleep(LONG, ref=False)
    evloop.sleep(0.001)


def test_loop_exit_when_joining_a_greenlet_that_waits_forever(kill_after):
    w = Waiter()
    g = evloop.spawn(w.get)
    kill_after.append(g)
    with pytest.raises(LoopExit) as info:
        g.join()
    # the join's waiter names the greenlet it waits for
    assert repr(g) in str(info.value) or "Greenlet" in str(info.value)
    g.kill()


def test_loop_exit_in_a_thread_hub():
    def body():
        hub = get_hub()
        try:
            w = Waiter()
            w.what = "thread-waiter"
            try:
                w.get()
            except LoopExit as ex:
                return str(ex)
            return "no LoopExit"
        finally:
            hub.destroy()

    assert "thread-waiter" in in_thread(body)


def test_garbage_collecting_greenlets_that_wait_forever():
    # a greenlet blocked on a Waiter nobody will ever switch, then dropped: collecting it
    # (GreenletExit thrown into it by greenlet's dealloc) must not crash or hang
    proc = run_script("""
        import gc, evloop
        from evloop.hub import Waiter
        def stuck():
            Waiter().get()
        gs = [evloop.spawn(stuck) for _ in range(100)]
        evloop.sleep(0)
        del gs
        for _ in range(3):
            gc.collect()
            evloop.sleep(0.01)
        print("alive", evloop.spawn(lambda: 1).get())
    """)
    assert "alive 1" in proc.stdout
    assert "Fatal" not in proc.stderr


def test_loop_exit_is_an_exception_not_a_base_exception():
    assert issubclass(LoopExit, Exception)
    assert evloop.LoopExit is LoopExit


# --------------------------------------------------------------------------------------
# handle_error
# --------------------------------------------------------------------------------------

def _fail_with_distinctive_name():
    raise ValueError("distinctive-failure-message")


def test_uncaught_greenlet_exception_is_printed_and_the_loop_keeps_going(errors):
    g = evloop.spawn(_fail_with_distinctive_name)
    g.join()
    assert isinstance(g.exception, ValueError)
    out = errors.getvalue()
    assert "Traceback" in out
    assert "_fail_with_distinctive_name" in out
    assert "distinctive-failure-message" in out
    assert "ValueError" in out
    # the loop keeps running
    g2 = evloop.spawn(lambda: 5)
    assert g2.get(timeout=GUARD) == 5


def test_uncaught_exception_printed_to_real_stderr():
    proc = run_script("""
        import evloop
        def failing_function_xyz():
            raise RuntimeError("boom-xyz")
        g = evloop.spawn(failing_function_xyz)
        g.join()
        g2 = evloop.spawn(lambda: 41 + 1)
        print("still running", g2.get())
    """)
    assert "still running 42" in proc.stdout
    assert "Traceback" in proc.stderr
    assert "failing_function_xyz" in proc.stderr
    assert "RuntimeError: boom-xyz" in proc.stderr


def test_exception_in_a_loop_callback_is_reported(errors):
    hub = get_hub()
    ran = []

    def bad_callback():
        raise KeyError("callback-failure")

    hub.loop.run_callback(bad_callback)
    hub.loop.run_callback(ran.append, "next")
    evloop.sleep(0.01)
    assert ran == ["next"]
    assert "callback-failure" in errors.getvalue()
    assert "bad_callback" in errors.getvalue()


def test_exception_in_a_timer_callback_is_reported(errors):
    hub = get_hub()
    timer = hub.loop.timer(0.001)

    def bad_timer():
        raise ZeroDivisionError("timer-failure")

    timer.start(bad_timer)
    try:
        evloop.sleep(0.05)
    finally:
        timer.close()
    assert "timer-failure" in errors.getvalue()


def test_error_report_survives_unreadable_source_lines(errors, monkeypatch):
    # out of fds (EMFILE), CPython 3.13.0's linecache raises while the traceback module
    # reads source lines: the report must still name the frames and the exception
    import linecache

    def no_fds(*args, **kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(linecache, "getline", no_fds)
    monkeypatch.setattr(linecache, "getlines", no_fds)
    monkeypatch.setattr(linecache, "updatecache", no_fds)
    monkeypatch.setattr(linecache, "checkcache", no_fds)
    ran = []

    def failing_callback():
        raise KeyError("callback-failure")

    get_hub().loop.run_callback(failing_callback)
    get_hub().loop.run_callback(ran.append, "next")
    evloop.sleep(0.01)
    monkeypatch.undo()
    text = errors.getvalue()
    assert ran == ["next"]
    assert "source lines unavailable: OSError" in text, text
    assert "in failing_callback" in text and "KeyError: 'callback-failure'" in text, text
    assert "failed with KeyError" in text, text


def test_error_report_when_out_of_fds_before_any_traceback_was_formatted():
    # the first report of the process, with no fd left: 3.15's traceback imports _colorize
    # lazily at its first report, and that import fails (OSError) without an fd. The report
    # must name the frame, the exception and its cause, and carry no half-written lines.
    proc = run_script("""
        import errno, io, os, resource, sys, evloop
        assert "_colorize" not in sys.modules or sys.version_info < (3, 15)
        hub = evloop.get_hub()
        hub.exception_stream = errors = io.StringIO()

        def failing_callback():
            try:
                os.open("/dev/null", os.O_RDONLY)
            except OSError as exc:
                raise RuntimeError("accept failed") from exc

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (len(os.listdir("/proc/self/fd")) + 8, hard))
        fillers = []
        try:
            while True:
                fillers.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as exc:
            assert exc.errno == errno.EMFILE, exc
        hub.loop.run_callback(failing_callback)
        evloop.sleep(0.01)
        for fd in fillers:
            os.close(fd)
        sys.stdout.write(errors.getvalue())
    """)
    text = proc.stdout
    assert "in failing_callback" in text, text
    assert "OSError: [Errno 24] Too many open files" in text, text
    assert "The above exception was the direct cause of the following exception" in text, text
    assert "RuntimeError: accept failed" in text, text
    assert "failed with RuntimeError" in text, text
    # one report: each "Traceback" header is followed by its frames
    assert text.count("Traceback (most recent call last") == 2, text


def test_error_report_without_the_traceback_module(errors, monkeypatch):
    # the hub's own report when the traceback module fails: frames, the exception, its
    # notes, the chain, as traceback would give them (without source lines)
    import traceback

    def broken(*args, **kwargs):
        raise MemoryError("formatting")

    monkeypatch.setattr(traceback, "format_exception", broken)

    def inner():
        raise KeyError("first")

    def failing_callback():
        try:
            inner()
        except KeyError:
            exc = ValueError("second")
            exc.add_note("a note") if hasattr(exc, "add_note") else None
            raise exc

    get_hub().loop.run_callback(failing_callback)
    evloop.sleep(0.01)
    monkeypatch.undo()
    text = errors.getvalue()
    header = "Traceback (most recent call last; source lines unavailable: MemoryError):"
    assert text.count(header) == 2, text
    first, second = text.split("During handling of the above exception, another "
                               "exception occurred:")
    assert "in inner" in first and "KeyError: 'first'" in first, text
    assert "in failing_callback" in second and "ValueError: second" in second, text
    if sys.version_info >= (3, 11):
        assert "ValueError: second\na note\n" in second, text
    assert "failed with ValueError" in second, text


def test_greenlet_exit_is_not_printed(errors):
    g = evloop.spawn(evloop.sleep, LONG)
    evloop.sleep(0)
    g.kill()
    g2 = evloop.spawn(lambda: (_ for _ in ()).throw(GreenletExit()))
    g2.join()
    assert errors.getvalue() == ""


def test_handle_error_directly(errors):
    hub = get_hub()
    try:
        raise IndexError("direct")
    except IndexError:
        hub.handle_error("some-context", *sys.exc_info())
    out = errors.getvalue()
    assert "IndexError: direct" in out
    assert "some-context" in out


def test_system_exit_in_a_greenlet_is_raised_in_the_main_greenlet():
    proc = run_script("""
        import evloop
        def quitter():
            raise SystemExit(7)
        g = evloop.spawn(quitter)
        try:
            evloop.sleep(1)
        except SystemExit as ex:
            print("main got SystemExit", ex.code)
        else:
            print("main did not get SystemExit")
        # the hub survives
        print("after", evloop.spawn(lambda: "alive").get())
    """)
    assert "main got SystemExit 7" in proc.stdout
    assert "after alive" in proc.stdout


def test_keyboard_interrupt_in_a_greenlet_is_raised_in_the_main_greenlet():
    proc = run_script("""
        import evloop
        def interrupter():
            raise KeyboardInterrupt
        g = evloop.spawn(interrupter)
        try:
            g.join()
            evloop.sleep(1)
        except KeyboardInterrupt:
            print("main got KeyboardInterrupt")
        else:
            print("main did not get KeyboardInterrupt")
        print("after", evloop.spawn(lambda: "alive").get())
    """)
    assert "main got KeyboardInterrupt" in proc.stdout
    assert "after alive" in proc.stdout


def test_system_exit_in_a_loop_callback_is_raised_in_the_main_greenlet():
    proc = run_script("""
        import sys, evloop
        evloop.get_hub().loop.run_callback(sys.exit, 4)
        try:
            evloop.sleep(1)
        except SystemExit as ex:
            print("main got SystemExit", ex.code)
        print("after", evloop.spawn(lambda: "alive").get())
    """)
    assert "main got SystemExit 4" in proc.stdout
    assert "after alive" in proc.stdout


def test_uncaught_system_exit_ends_the_process():
    proc = run_script("""
        import evloop
        evloop.spawn(lambda: (_ for _ in ()).throw(SystemExit(3)))
        evloop.sleep(5)
        print("not reached")
    """, expect_rc=3)
    assert "not reached" not in proc.stdout


def test_sigint_while_sleeping_raises_keyboard_interrupt_in_main():
    proc = run_script("""
        import os, signal, threading, time, evloop
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        t0 = time.monotonic()
        try:
            evloop.sleep(20)
        except KeyboardInterrupt:
            print("KeyboardInterrupt after %.2f" % (time.monotonic() - t0))
        print("after", evloop.spawn(lambda: "alive").get())
    """, timeout=30)
    assert "KeyboardInterrupt after" in proc.stdout
    assert "after alive" in proc.stdout


# --------------------------------------------------------------------------------------
# blocking from inside the hub
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    "sleep", "sleep0", "waiter_get", "hub_wait", "join", "get", "idle", "joinall",
    "with_timeout"])
def test_blocking_call_from_a_loop_callback_raises(call, kill_after):
    hub = get_hub()
    g = evloop.spawn(evloop.sleep, LONG)
    kill_after.append(g)
    calls = {
        "sleep": lambda: evloop.sleep(0.01),
        "sleep0": lambda: evloop.sleep(0),
        "waiter_get": lambda: Waiter().get(),
        "hub_wait": lambda: hub.wait(hub.loop.timer(0.01)),
        "join": lambda: g.join(),
        "get": lambda: g.get(),
        "idle": lambda: evloop.idle(),
        "joinall": lambda: evloop.joinall([g]),
        "with_timeout": lambda: evloop.with_timeout(1, evloop.sleep, 0.01),
    }
    caught = []

    def callback():
        try:
            calls[call]()
            caught.append("returned")
        except BaseException as ex:  # noqa: BLE001
            caught.append(ex)

    hub.loop.run_callback(callback)
    t0 = time.monotonic()
    evloop.sleep(0.02)
    assert time.monotonic() - t0 < GUARD
    assert len(caught) == 1, caught
    assert isinstance(caught[0], BlockingSwitchOutError), caught
    assert not hub.dead
    g.kill()


def test_uncaught_blocking_call_in_a_callback_is_reported_not_deadlocked(errors):
    hub = get_hub()
    hub.loop.run_callback(evloop.sleep, 1)
    t0 = time.monotonic()
    evloop.sleep(0.02)
    assert time.monotonic() - t0 < 0.9  # the callback's sleep(1) did not block the loop
    assert "BlockingSwitchOutError" in errors.getvalue()


# --------------------------------------------------------------------------------------
# Hub.join, Hub.destroy
# --------------------------------------------------------------------------------------

def test_hub_join_runs_until_nothing_is_left():
    done = []
    evloop.spawn(lambda: (evloop.sleep(0.02), done.append(1)))
    evloop.spawn(lambda: (evloop.sleep(0.15), done.append(2)))
    assert get_hub().join() is True
    assert done == [1, 2]


def test_hub_join_with_timeout(kill_after):
    g = evloop.spawn(evloop.sleep, LONG)
    kill_after.append(g)
    t0 = time.monotonic()
    assert get_hub().join(timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.04
    assert not g.dead
    g.kill()


def test_hub_join_with_nothing_to_do():
    assert get_hub().join() is True
    assert get_hub().join(timeout=1) is True


def test_wait_without_objects_is_hub_join():
    evloop.spawn(evloop.sleep, 0.01)
    assert evloop.wait() is True


def test_hub_join_from_a_greenlet_is_refused():
    g = evloop.spawn(get_hub().join)
    g.join()
    assert isinstance(g.exception, AssertionError)


def test_destroy_a_thread_hub_destroys_its_loop():
    def body():
        hub = get_hub()
        loop = hub.loop
        evloop.sleep(0.001)
        hub.destroy()
        after = get_hub_if_exists()
        new = get_hub()
        try:
            evloop.sleep(0.001)
            return loop.destroyed, hub.loop, after, new is not hub, new.loop is not loop
        finally:
            new.destroy()

    destroyed, hub_loop, after, new_hub, new_loop = in_thread(body)
    assert destroyed is True
    assert hub_loop is None
    assert after is None
    assert new_hub and new_loop


def test_destroy_with_destroy_loop_false_keeps_the_loop():
    def body():
        hub = get_hub()
        loop = hub.loop
        hub.destroy(destroy_loop=False)
        try:
            return loop.destroyed, get_hub_if_exists()
        finally:
            loop.destroy()

    destroyed, after = in_thread(body)
    assert destroyed is False
    assert after is None


def test_destroy_a_hub_that_never_ran():
    def body():
        hub = get_hub()
        hub.destroy()
        return hub.loop, get_hub_if_exists()

    assert in_thread(body) == (None, None)


def test_destroy_the_main_hub_keeps_the_default_loop():
    proc = run_script("""
        import evloop
        from evloop.hub import get_hub, get_hub_if_exists
        hub = get_hub()
        loop = hub.loop
        evloop.sleep(0.01)
        hub.destroy()
        assert not loop.destroyed, "destroy() destroyed the default loop"
        assert get_hub_if_exists() is None
        hub2 = get_hub()
        assert hub2 is not hub
        assert hub2.loop.default
        evloop.sleep(0.01)
        print("result", evloop.spawn(lambda: 5).get())
        hub2.destroy(destroy_loop=True)
        assert hub2.loop is None
        print("destroyed")
    """)
    assert "result 5" in proc.stdout
    assert "destroyed" in proc.stdout


@pytest.mark.allow_leftovers("greenlets", reason="the point: the destroyed hub never resumes "
                             "its waiting greenlet, and the thread ends with it suspended")
def test_destroy_never_resumes_waiting_greenlets():
    def body():
        hub = get_hub()
        ran = []
        evloop.spawn(lambda: (evloop.sleep(LONG), ran.append("resumed")))
        evloop.sleep(0)
        hub.destroy()
        return ran, hub.loop

    ran, loop = in_thread(body)
    assert ran == []
    assert loop is None


def test_destroy_the_main_hub_with_waiting_greenlets_leaves_the_next_hub_an_empty_loop():
    # The default loop outlives the main hub. The io watcher of a greenlet blocked in
    # recv() used to stay armed on it: once the fd was readable, the next hub called the
    # dead hub's Waiter on every iteration (an AssertionError report each time, 100% CPU).
    proc = run_script("""
        import io, time, evloop
        from evloop import select, socket
        from evloop.event import Event
        from evloop.hub import get_hub
        hub = get_hub()
        a, b = socket.socketpair()
        ev = Event()
        log = []
        def waiting(name, func):
            try:
                func()
            finally:
                log.append(name)    # runs only if the greenlet is ever resumed
        for name, func in [("recv", lambda: a.recv(10)), ("event", ev.wait),
                           ("sleep", lambda: evloop.sleep(0.2)),
                           ("select", lambda: select.select([a], [], []))]:
            evloop.spawn(waiting, name, func)
        evloop.sleep(0.01)
        hub.destroy()
        hub2 = get_hub()
        hub2.exception_stream = errors = io.StringIO()
        print("left on the loop", len(hub2.loop.watchers()), hub2.loop.callback_count)
        b.sendall(b"ready")         # the orphans' fd becomes readable
        ev.set()
        cpu = time.process_time()
        evloop.sleep(0.5)           # the orphan's sleep(0.2) timer would fire meanwhile
        print("cpu", round(time.process_time() - cpu, 3))
        print("errors", errors.getvalue().count("failed with"))
        print("resumed", log)
        c, d = socket.socketpair()
        d.sendall(b"x")
        print("io", c.recv(1))
    """)
    out = proc.stdout.splitlines()
    assert "left on the loop 0 0" in out, proc.stdout
    assert float(out[1].split()[1]) < 0.2, proc.stdout      # no busy loop
    assert "errors 0" in out, proc.stdout + proc.stderr
    assert "resumed []" in out
    assert "io b'x'" in out


def test_destroy_the_main_hub_drops_queued_resumptions_of_its_greenlets():
    # A greenlet that yielded (sleep(0)) had a "switch back" queued on the default loop;
    # the next hub used to run it: the orphan resumed, and when it ended it returned into
    # the main greenlet (its parent, the old hub, is dead), which got an InvalidSwitchError.
    proc = run_script("""
        import evloop
        from evloop.event import Event
        from evloop.hub import get_hub
        hub = get_hub()
        ev = Event()
        def yielder():
            ev.set()
            evloop.sleep(0)
            print("orphan resumed")
        evloop.spawn(yielder)
        ev.wait()                    # its sleep(0) entry is now queued behind us
        evloop.spawn(print, "orphan started")   # queued to start, never started
        hub.destroy()
        evloop.sleep(0.05)
        print("main slept")
    """)
    assert proc.stdout.splitlines() == ["main slept"], proc.stdout + proc.stderr


def test_destroy_does_not_resume_greenlets_whose_event_came_in_the_same_iteration():
    # Two timers expire in one loop iteration: the main greenlet's, then another
    # greenlet's. The main greenlet destroys the hub; while leaving its loop, the hub used
    # to dispatch the rest of the iteration and resume the other greenlet inside destroy().
    proc = run_script("""
        import time, evloop
        from evloop.hub import get_hub
        hub = get_hub()
        log = []
        def sleeper():
            evloop.sleep(0.2)
            log.append("resumed")
        def blocker():
            time.sleep(0.4)         # holds the thread while both timers expire
        evloop.spawn(sleeper)
        evloop.spawn(blocker)
        evloop.sleep(0.1)
        log.append("main woke")
        hub.destroy()
        log.append("destroyed")
        evloop.sleep(0.05)
        print(log)
    """)
    assert proc.stdout.strip() == "['main woke', 'destroyed']", proc.stdout + proc.stderr


@pytest.mark.allow_leftovers("greenlets", reason="the waiter's greenlet belongs to the destroyed "
                             "hub and stays suspended for ever; that is the point")
def test_waking_a_waiter_whose_hub_was_destroyed_does_nothing(errors):
    # A Waiter of a destroyed hub belongs to a greenlet that can never run again; waking
    # it from another hub (an Event set later, a late callback) must not raise.
    def body():
        hub = get_hub()
        waiter = Waiter(hub)
        glet = evloop.spawn(waiter.get)
        evloop.sleep(0.001)
        hub.destroy()
        new = get_hub()
        try:
            new.exception_stream = stream = io.StringIO()
            new.loop.run_callback(waiter.switch, 1)
            new.loop.run_callback(waiter.throw, ValueError)
            evloop.sleep(0.01)
            return stream.getvalue(), glet.dead, waiter.ready()
        finally:
            new.destroy()

    reports, dead, ready = in_thread(body)
    assert reports == ""
    assert not dead and not ready


# --------------------------------------------------------------------------------------
# sleep, idle, spawn_raw, kill
# --------------------------------------------------------------------------------------

def test_idle_runs_after_other_ready_greenlets():
    order = []
    evloop.spawn(order.append, "spawned")
    evloop.idle()
    order.append("idle returned")
    assert order == ["spawned", "idle returned"]


def test_idle_waits_while_callbacks_keep_coming():
    order = []

    def busy():
        for i in range(5):
            order.append(i)
            evloop.sleep(0)

    g = evloop.spawn(busy)
    evloop.idle()
    order.append("idle")
    g.join()
    assert order.index("idle") >= 1


def test_spawn_raw_runs_a_plain_greenlet():
    got = []
    g = evloop.spawn_raw(got.append, "x")
    assert isinstance(g, raw_greenlet)
    assert not isinstance(g, evloop.Greenlet)
    assert g.parent is get_hub()
    evloop.sleep(0)
    assert got == ["x"]
    assert g.dead


def test_spawn_raw_with_kwargs():
    got = []
    evloop.spawn_raw(lambda a, b=0: got.append(a + b), 1, b=2)
    evloop.sleep(0)
    assert got == [3]


def test_spawn_raw_exception_is_reported(errors):
    evloop.spawn_raw(_fail_with_distinctive_name)
    evloop.sleep(0.01)
    assert "distinctive-failure-message" in errors.getvalue()


def test_spawn_raw_not_callable():
    with pytest.raises(TypeError):
        evloop.spawn_raw(42)


def test_kill_function_on_a_raw_greenlet():
    caught = []

    def body():
        try:
            evloop.sleep(LONG)
        except GreenletExit as ex:
            caught.append(ex)

    g = evloop.spawn_raw(body)
    evloop.sleep(0)
    evloop.kill(g)
    evloop.sleep(0.01)
    assert g.dead
    assert len(caught) == 1


def test_kill_function_on_a_greenlet_does_not_block(kill_after):
    g = evloop.spawn(evloop.sleep, LONG)
    kill_after.append(g)
    evloop.sleep(0)
    evloop.kill(g)
    assert not g.dead  # kill() does not wait
    g.join(GUARD)
    assert g.dead
    assert isinstance(g.value, GreenletExit)


def test_kill_function_with_an_exception(kill_after, errors):
    g = evloop.spawn(evloop.sleep, LONG)
    kill_after.append(g)
    evloop.sleep(0)
    evloop.kill(g, ValueError)
    g.join(GUARD)
    assert isinstance(g.exception, ValueError)


def test_kill_function_on_a_dead_greenlet():
    g = evloop.spawn(lambda: 1)
    g.join()
    evloop.kill(g)
    evloop.sleep(0)
    assert g.value == 1


# --------------------------------------------------------------------------------------
# signal_handler (subprocess)
# --------------------------------------------------------------------------------------

def test_signal_handler_runs_the_handler_in_a_greenlet():
    proc = run_script("""
        import os, signal, evloop
        from greenlet import getcurrent
        main = getcurrent()
        got = []
        def handler(*args, **kwargs):
            got.append((args, kwargs, getcurrent() is not main))
        h = evloop.signal_handler(signal.SIGUSR1, handler, 1, 2, key="v")
        os.kill(os.getpid(), signal.SIGUSR1)
        with evloop.Timeout(10):
            while not got:
                evloop.sleep(0.01)
        os.kill(os.getpid(), signal.SIGUSR1)
        with evloop.Timeout(10):
            while len(got) < 2:
                evloop.sleep(0.01)
        h.cancel()
        print("GOT", got)
    """)
    assert "GOT [((1, 2), {'key': 'v'}, True), ((1, 2), {'key': 'v'}, True)]" in proc.stdout


def test_signal_handler_does_not_keep_the_loop_alive():
    proc = run_script("""
        import signal, time, evloop
        h = evloop.signal_handler(signal.SIGUSR1, print)
        t0 = time.monotonic()
        print("join", evloop.get_hub().join(timeout=20), time.monotonic() - t0 < 10)
        h.cancel()
    """)
    assert "join True True" in proc.stdout


def test_signal_handler_cancel():
    proc = run_script("""
        import os, signal, evloop
        got = []
        h = evloop.signal_handler(signal.SIGUSR1, got.append, 1)
        h.cancel()
        signal.signal(signal.SIGUSR1, lambda *a: got.append("python"))
        os.kill(os.getpid(), signal.SIGUSR1)
        evloop.sleep(0.1)
        print("GOT", got)
    """)
    assert "GOT ['python']" in proc.stdout


def test_signal_handler_exception_is_reported():
    proc = run_script("""
        import os, signal, evloop
        def bad_signal_handler():
            raise RuntimeError("from-signal-handler")
        h = evloop.signal_handler(signal.SIGUSR1, bad_signal_handler)
        os.kill(os.getpid(), signal.SIGUSR1)
        evloop.sleep(0.2)
        h.cancel()
        print("alive", evloop.spawn(lambda: 1).get())
    """)
    assert "alive 1" in proc.stdout
    assert "from-signal-handler" in proc.stderr


def test_signal_handler_not_callable():
    with pytest.raises(TypeError):
        evloop.signal_handler(10, "not callable")


# --------------------------------------------------------------------------------------
# fork, reinit (subprocess)
# --------------------------------------------------------------------------------------

def test_fork_child_runs_greenlets():
    proc = run_script("""
        import os, time, evloop
        # the parent's hub is running with a timer and a sleeping greenlet
        sleeper = evloop.spawn(evloop.sleep, 0.05)
        evloop.sleep(0)
        pid = evloop.fork()
        if pid == 0:
            try:
                t0 = time.monotonic()
                gs = [evloop.spawn(lambda i=i: (evloop.sleep(0.02), i * 2)[1]) for i in range(5)]
                evloop.joinall(gs, timeout=10)
                sleeper.join(10)
                ok = [g.value for g in gs] == [0, 2, 4, 6, 8] and sleeper.dead
                ok = ok and time.monotonic() - t0 >= 0.015
                os._exit(0 if ok else 1)
            except BaseException:
                import traceback; traceback.print_exc()
                os._exit(2)
        with evloop.Timeout(20):
            while True:
                rpid, status = os.waitpid(pid, os.WNOHANG)
                if rpid:
                    break
                evloop.sleep(0.01)
        print("child status", os.waitstatus_to_exitcode(status))
        sleeper.join()
        print("parent ok", evloop.spawn(lambda: 1).get())
    """, timeout=40)
    assert "child status 0" in proc.stdout
    assert "parent ok 1" in proc.stdout


def test_os_fork_then_reinit():
    proc = run_script("""
        import os, socket, evloop
        evloop.sleep(0.01)
        a, b = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            evloop.reinit()
            hub = evloop.get_hub()
            got = []
            def reader():
                hub.wait(hub.loop.io(b.fileno(), 1))
                got.append(b.recv(10))
            g = evloop.spawn(reader)
            evloop.spawn_later(0.02, a.send, b"child")
            g.join(10)
            os._exit(0 if got == [b"child"] else 1)
        rpid, status = os.waitpid(pid, 0)
        print("child status", os.waitstatus_to_exitcode(status))
        print("parent ok", evloop.spawn(lambda: 1).get())
    """, timeout=40)
    assert "child status 0" in proc.stdout
    assert "parent ok 1" in proc.stdout


def test_fork_and_exit_with_another_threads_hub_running():
    # in the child of fork() CPython clears the other threads' states from the forking
    # thread: their hubs' guards must leave them alone (another thread's greenlet cannot be
    # switched into); and a daemon thread still in its hub at exit is simply abandoned
    proc = run_script("""
        import os, threading, time, warnings, evloop
        # CPython 3.12+ warns about fork() in a multi-threaded process: that is the test
        warnings.filterwarnings("ignore", "This process .* is multi-threaded",
                                DeprecationWarning)
        ready, stop = threading.Event(), threading.Event()
        def body():
            evloop.get_hub()
            ready.set()
            while not stop.is_set():
                evloop.sleep(0.005)
        t = threading.Thread(target=body, daemon=True)
        t.start()
        ready.wait(10)
        pid = os.fork()
        if pid == 0:
            import gc
            gc.collect()
            evloop.sleep(0.01)
            os._exit(0)
        print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        stop.set()
        t.join(10)
        def forever():
            while True:
                evloop.sleep(0.01)
        threading.Thread(target=forever, daemon=True).start()
        time.sleep(0.05)
        print("done")
    """)
    assert proc.stdout.split() == ["child", "0", "done"]
    assert proc.stderr == ""


def test_exit_while_daemon_threads_wait_in_their_hubs():
    # the main thread finalizes the interpreter while daemon threads sit in their hubs:
    # CPython ends such a thread with pthread_exit() when it next takes the GIL, under the
    # finalizing garbage collector, and greenlet's thread-exit cleanup then crashed it
    # (SIGSEGV in green_traverse: every such exit on 3.11 before evloop parked these
    # threads at exit). Several runs: the race needs a thread to wake during the exit.
    code = """
        import threading, time, evloop
        def forever(interval):
            while True:
                evloop.sleep(interval)
        for interval in (0.001, 0.003, 0.01):
            threading.Thread(target=forever, args=(interval,), daemon=True).start()
        time.sleep(0.05)
        print("done")
    """
    for _ in range(5):
        proc = run_script(code)
        assert proc.stdout.split() == ["done"]
        assert proc.stderr == ""


def test_reinit_without_a_hub_is_harmless():
    proc = run_script("""
        import evloop
        from evloop.hub import get_hub_if_exists
        evloop.reinit()
        assert get_hub_if_exists() is None
        evloop.reinit(evloop.get_hub())
        evloop.sleep(0.01)
        print("ok")
    """)
    assert "ok" in proc.stdout


# --------------------------------------------------------------------------------------
# the blocking monitor (subprocess)
# --------------------------------------------------------------------------------------

def test_monitor_reports_a_greenlet_that_blocks_the_hub():
    proc = run_script("""
        import time, evloop
        def very_distinctive_blocking_function():
            time.sleep(0.5)
        g = evloop.spawn(very_distinctive_blocking_function)
        g.join()
        evloop.sleep(0.05)
        print("reports", evloop.get_hub()._monitor.reports)
    """, env={"EVLOOP_MONITOR_THREAD": "1"})
    assert "very_distinctive_blocking_function" in proc.stderr
    assert "has not returned to its loop" in proc.stderr
    assert "reports 1" in proc.stdout


def test_monitor_reports_the_main_greenlet_blocking():
    proc = run_script("""
        import time, evloop
        def main_blocks_here_xyz():
            time.sleep(0.5)
        evloop.sleep(0.01)
        main_blocks_here_xyz()
        evloop.sleep(0.01)
    """, env={"EVLOOP_MONITOR_THREAD": "true"})
    assert "main_blocks_here_xyz" in proc.stderr


def test_monitor_is_quiet_while_the_hub_idles_in_its_poll():
    proc = run_script("""
        import evloop
        evloop.sleep(0.5)
        gs = [evloop.spawn(evloop.sleep, 0.3) for _ in range(3)]
        evloop.joinall(gs)
        hub = evloop.get_hub()
        print("monitor", hub._monitor is not None, "reports", hub._monitor.reports)
    """, env={"EVLOOP_MONITOR_THREAD": "1"})
    assert "monitor True reports 0" in proc.stdout
    assert proc.stderr == ""


def test_monitor_is_off_by_default():
    proc = run_script("""
        import time, evloop
        def blocker_fn_abc():
            time.sleep(0.4)
        evloop.spawn(blocker_fn_abc).join()
        print("monitor", evloop.get_hub()._monitor)
    """)
    assert "monitor None" in proc.stdout
    assert "blocker_fn_abc" not in proc.stderr


def test_monitor_threshold_from_environment():
    proc = run_script("""
        import time, evloop
        def short_block_fn():
            time.sleep(0.2)
        evloop.spawn(short_block_fn).join()
        evloop.sleep(0.01)
        print("threshold", evloop.get_hub()._monitor.max_blocking_time)
    """, env={"EVLOOP_MONITOR_THREAD": "1", "EVLOOP_MAX_BLOCKING_TIME": "2"})
    assert "threshold 2.0" in proc.stdout
    assert "short_block_fn" not in proc.stderr


def test_start_monitor_explicitly():
    proc = run_script("""
        import time, evloop
        hub = evloop.get_hub()
        m = hub.start_monitor(0.05)
        assert hub.start_monitor() is m   # idempotent
        def explicit_monitor_blocker():
            time.sleep(0.4)
        evloop.spawn(explicit_monitor_blocker).join()
        evloop.sleep(0.01)
        hub.destroy()
        print("stopped")
    """)
    assert "explicit_monitor_blocker" in proc.stderr
    assert "stopped" in proc.stdout
