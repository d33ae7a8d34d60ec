"""Tests for evloop.event: Event and AsyncResult.

Every test leaves the hub as it found it: greenlets it spawned are finished or killed,
and no waiter, link or timer is left behind (checked through ``loop.activecnt`` and the
objects' link counts where it matters). Timing assertions use lower bounds and generous
(>= 10x) upper bounds: the machine may be busy.

tests/test_gevent_contract.py checks what evloop shares with gevent against both
libraries; the cases here go further on evloop alone (timings, bad arguments, threads).
"""
import sys
import threading
import time

import pytest

import evloop
from evloop.event import AsyncResult, Event
from evloop.exceptions import BlockingSwitchOutError, LoopExit
from evloop.timeout import Timeout


def _kill_all(greenlets):
    evloop.killall([g for g in greenlets if not g.dead])


# -- Event: basics -----------------------------------------------------------------------------


def test_event_flag_methods(hub):
    e = Event()
    assert not e.is_set() and not e.isSet() and not e.ready()
    e.set()
    assert e.is_set() and e.isSet() and e.ready()
    assert e.wait() is True
    assert e.wait(0) is True
    e.clear()
    assert not e.is_set()
    assert "unset" in repr(e)


def test_set_from_the_hub_callback(hub):
    e = Event()
    g = evloop.spawn(e.wait)
    evloop.sleep(0)
    hub.loop.run_callback(e.set)
    assert g.get(timeout=5) is True


def test_set_twice_wakes_once(hub):
    e = Event()
    g = evloop.spawn(e.wait)
    evloop.sleep(0)
    e.set()
    e.set()
    assert g.get(timeout=5) is True
    assert e.linkcount() == 0


# -- Event: timeouts -----------------------------------------------------------------------------


def test_wait_timeout_returns_false_and_cleans_up(hub):
    e = Event()
    base = hub.loop.activecnt
    seen = []
    hub.loop.run_callback(lambda: seen.append(hub.loop.activecnt))  # while we wait
    start = time.monotonic()
    assert e.wait(0.1) is False
    elapsed = time.monotonic() - start
    assert 0.09 <= elapsed < 2.0
    assert seen == [base + 1]  # the wait's timer was active ...
    assert hub.loop.activecnt == base  # ... and is gone
    assert e.linkcount() == 0


def test_wait_timeout_woken_early(hub):
    e = Event()
    base = hub.loop.activecnt
    setter = evloop.spawn_later(0.05, e.set)
    start = time.monotonic()
    assert e.wait(5) is True
    assert time.monotonic() - start < 2.5
    setter.join(5)
    assert hub.loop.activecnt == base  # the 5 s timer of the wait is gone
    assert e.linkcount() == 0


@pytest.mark.parametrize("timeout", [0, -1, -0.5, 0.0])
def test_wait_zero_or_negative_timeout_does_not_block(hub, timeout):
    e = Event()
    start = time.monotonic()
    assert e.wait(timeout) is False
    assert time.monotonic() - start < 0.5
    e.set()
    assert e.wait(timeout) is True
    assert e.linkcount() == 0


@pytest.mark.parametrize("timeout, exc", [
    (float("nan"), ValueError), ("1", TypeError), (b"1", TypeError), (True, TypeError),
    (object(), TypeError), ([1], TypeError),
])
def test_wait_bad_timeout(hub, timeout, exc):
    e = Event()
    with pytest.raises(exc):
        e.wait(timeout)
    assert e.linkcount() == 0
    r = AsyncResult()
    with pytest.raises(exc):
        r.get(timeout=timeout)
    assert r.linkcount() == 0


# -- Event: faults ---------------------------------------------------------------------------------


def test_killed_waiter_leaves_the_event_consistent(hub):
    e = Event()
    woken = []
    a = evloop.spawn(lambda: woken.append(("a", e.wait())))
    b = evloop.spawn(lambda: woken.append(("b", e.wait())))
    evloop.sleep(0)
    assert e.linkcount() == 2
    a.kill()
    assert a.dead and e.linkcount() == 1
    e.set()
    b.join(5)
    assert woken == [("b", True)]
    assert e.linkcount() == 0


@pytest.mark.parametrize("kill_first", [True, False])
def test_waiter_killed_around_set(hub, kill_first):
    # the kill and set()'s wake-up are both queued before the hub runs: whichever runs
    # first wins for ``a``; nothing is left behind and ``b`` wakes either way
    e = Event()
    woken = []
    a = evloop.spawn(lambda: woken.append(("a", e.wait())))
    b = evloop.spawn(lambda: woken.append(("b", e.wait())))
    evloop.sleep(0)
    if kill_first:
        a.kill(block=False)  # a dies before set()'s wake-up (already taken from the
        e.set()              # event's links) reaches it; the stale wake-up is harmless
    else:
        e.set()
        a.kill(block=False)  # a has finished by the time the kill runs
    evloop.joinall([a, b], timeout=5)
    assert woken == ([("b", True)] if kill_first else [("a", True), ("b", True)])
    assert e.linkcount() == 0


def test_loopexit_when_nobody_can_set(hub):
    e = Event()
    with pytest.raises(LoopExit) as info:
        e.wait()
    assert "Event" in str(info.value)
    assert e.linkcount() == 0
    # the hub still works afterwards
    evloop.spawn_later(0.01, e.set)
    assert e.wait(5) is True


def test_wait_in_the_hub_raises(hub):
    e = Event()
    errors = []

    def in_hub():
        try:
            e.wait()
        except BlockingSwitchOutError as ex:
            errors.append(ex)

    hub.loop.run_callback(in_hub)
    evloop.sleep(0.01)
    assert len(errors) == 1
    assert e.linkcount() == 0


def test_timeout_exception_while_waiting(hub):
    e = Event()
    with pytest.raises(Timeout):
        with Timeout(0.05):
            e.wait()
    assert e.linkcount() == 0
    assert hub.loop.activecnt == 0


# -- Event: links ------------------------------------------------------------------------------------


def test_rawlink_is_called_once_from_the_hub(hub):
    e = Event()
    calls = []
    e.rawlink(lambda ev: calls.append((ev, evloop.getcurrent() is hub)))
    evloop.sleep(0)
    assert calls == []
    e.set()
    evloop.sleep(0)
    assert calls == [(e, True)]
    e.clear()
    e.set()
    evloop.sleep(0)
    assert len(calls) == 1  # one-shot


def test_link_exception_goes_to_handle_error_and_other_links_run(hub, monkeypatch):
    e = Event()
    reported = []
    monkeypatch.setattr(hub, "handle_error",
                        lambda context, t, v, tb: reported.append((t, v)))
    calls = []

    def bad(ev):
        raise ZeroDivisionError("bad link")

    e.rawlink(calls.append)
    e.rawlink(bad)
    e.rawlink(lambda ev: calls.append("third"))
    waiter = evloop.spawn(e.wait)
    evloop.sleep(0)
    e.set()
    assert waiter.get(timeout=5) is True
    evloop.sleep(0)
    assert calls == [e, "third"]
    assert [t for t, v in reported] == [ZeroDivisionError]


def test_evloop_wait_and_iwait_on_events(hub):
    e1, e2, e3 = Event(), Event(), Event()
    evloop.spawn_later(0.02, e2.set)
    evloop.spawn_later(0.06, e1.set)
    assert evloop.wait([e1, e2, e3], count=1, timeout=5) == [e2]
    ready = list(evloop.iwait([e1, e2, e3], count=2, timeout=5))
    assert ready[0] is e2 and ready[1] is e1
    assert evloop.wait([e3], timeout=0.02) == []
    for ev in (e1, e2, e3):
        assert ev.linkcount() == 0


# -- Event: threads --------------------------------------------------------------------------------------


def test_set_from_another_thread_wakes_the_waiter(hub):
    e = Event()

    def setter():
        time.sleep(0.1)
        e.set()

    t = threading.Thread(target=setter)
    start = time.monotonic()
    t.start()
    try:
        assert e.wait(10) is True  # the timeout keeps the loop alive; set() ends the wait
        elapsed = time.monotonic() - start
        assert 0.09 <= elapsed < 5
    finally:
        t.join()
    assert e.linkcount() == 0


def test_set_from_another_thread_wakes_a_spawned_greenlet(hub):
    e = Event()
    g = evloop.spawn(e.wait)
    evloop.sleep(0)
    t = threading.Timer(0.1, e.set)
    t.start()
    try:
        assert g.get(timeout=10) is True
    finally:
        t.join()


def test_many_cross_thread_hand_offs_lose_no_wake_up(hub):
    # ping-pong between a thread and a greenlet: a lost wake-up shows as a False wait
    ping, pong = Event(), Event()
    rounds = 200
    failures = []

    def thread_side():
        for _ in range(rounds):
            if not ping_thread.wait(10):
                failures.append("thread timed out")
                return
            ping_thread.clear()
            pong.set()

    ping_thread = threading.Event()
    t = threading.Thread(target=thread_side)
    t.start()
    try:
        for i in range(rounds):
            ping_thread.set()
            if not pong.wait(10):
                failures.append(f"greenlet timed out at {i}")
                break
            pong.clear()
    finally:
        ping_thread.set()
        t.join()
    assert failures == []


# -- AsyncResult -------------------------------------------------------------------------------------------


def test_asyncresult_value(hub):
    r = AsyncResult()
    assert not r.ready() and not r.successful() and r.value is None
    assert r.exception is None and r.exc_info == ()
    assert "unset" in repr(r)
    g = evloop.spawn(r.get)
    w = evloop.spawn(r.wait)
    evloop.sleep(0)
    r.set(42)
    assert g.get(timeout=5) == 42 and w.get(timeout=5) == 42
    assert r.ready() and r.successful() and r.value == 42 and r.get() == 42
    assert r.get_nowait() == 42 and r.result() == 42 and r.done()
    assert r.linkcount() == 0
    assert not r.cancel() and not r.cancelled()


def test_asyncresult_exception(hub):
    r = AsyncResult()
    g = evloop.spawn(r.get)
    w = evloop.spawn(r.wait)
    evloop.sleep(0)
    err = KeyError("k")
    r.set_exception(err)
    g.join(5)
    assert g.exception is err
    assert w.get(timeout=5) is None  # wait() never raises
    assert r.ready() and not r.successful() and r.exception is err
    assert r.exc_info[1] is err
    with pytest.raises(KeyError):
        r.get()
    with pytest.raises(KeyError):
        r.get_nowait()


def test_asyncresult_exception_keeps_traceback(hub):
    r = AsyncResult()
    try:
        raise ValueError("deep")
    except ValueError:
        r.set_exception(sys.exc_info()[1], sys.exc_info())
    with pytest.raises(ValueError) as info:
        r.get()
    assert any(entry.name == "test_asyncresult_exception_keeps_traceback"
               for entry in info.traceback)


def test_asyncresult_set_exception_class_and_bad_value(hub):
    r = AsyncResult()
    r.set_exception(KeyError)
    with pytest.raises(KeyError):
        r.get()
    for bad in ("not an exception", 5, None, object(), object, [KeyError]):
        r = AsyncResult()
        with pytest.raises(TypeError):
            r.set_exception(bad)
        assert not r.ready()            # nothing was stored


def test_asyncresult_last_set_wins(hub):
    r = AsyncResult()
    r.set_exception(KeyError())
    r.set(1)
    assert r.successful() and r.get() == 1
    r.set_exception(ValueError())
    assert not r.successful() and r.value is None


def test_asyncresult_get_timeouts(hub):
    r = AsyncResult()
    with pytest.raises(Timeout):
        r.get(block=False)
    with pytest.raises(Timeout):
        r.get_nowait()
    base = hub.loop.activecnt
    start = time.monotonic()
    with pytest.raises(Timeout):
        r.get(timeout=0.1)
    assert 0.09 <= time.monotonic() - start < 2.0
    assert r.wait(0.01) is None
    assert hub.loop.activecnt == base and r.linkcount() == 0
    with pytest.raises(Timeout):
        r.get(timeout=-1)  # negative: do not wait


def test_asyncresult_as_greenlet_link_target(hub):
    ok, bad = AsyncResult(), AsyncResult()
    evloop.spawn(lambda: "done").link(ok)
    evloop.spawn(lambda: 1 / 0).link(bad)
    assert ok.get(timeout=5) == "done"
    with pytest.raises(ZeroDivisionError):
        bad.get(timeout=5)


def test_asyncresult_killed_getter(hub):
    r = AsyncResult()
    a = evloop.spawn(r.get)
    b = evloop.spawn(r.get)
    evloop.sleep(0)
    a.kill()
    assert r.linkcount() == 1
    r.set("x")
    assert b.get(timeout=5) == "x"
    assert r.linkcount() == 0


def test_asyncresult_loopexit(hub):
    r = AsyncResult()
    with pytest.raises(LoopExit):
        r.get()
    assert r.linkcount() == 0


def test_asyncresult_set_from_another_thread(hub):
    r = AsyncResult()
    t = threading.Timer(0.1, r.set_exception, (RuntimeError("from thread"),))
    t.start()
    try:
        with pytest.raises(RuntimeError, match="from thread"):
            r.get(timeout=10)
    finally:
        t.join()
    r2 = AsyncResult()
    t = threading.Timer(0.05, r2.set, ("v",))
    t.start()
    try:
        assert r2.get(timeout=10) == "v"
    finally:
        t.join()


def test_asyncresult_in_wait(hub):
    r = AsyncResult()
    evloop.spawn_later(0.02, r.set, 3)
    assert evloop.wait([r], timeout=5) == [r]
    assert r.linkcount() == 0


def test_waiters_of_two_hubs_are_refused(hub):
    # an Event serves the greenlets of one hub at a time; once the first hub's waiters are
    # gone, another thread's hub may use it
    from evloop.exceptions import InvalidThreadUseError
    e = Event()
    g = evloop.spawn(e.wait)
    evloop.sleep(0)
    outcome = []

    def other_thread():
        thread_hub = evloop.get_hub()
        try:
            outcome.append(e.wait(0.01))
        except InvalidThreadUseError as ex:
            outcome.append(ex)
        finally:
            thread_hub.destroy()

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert isinstance(outcome[0], InvalidThreadUseError)
    assert e.linkcount() == 1
    e.set()
    assert g.get(timeout=5) is True
    e.clear()
    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert outcome[1] is False  # rebound to the thread's hub, timed out there
    assert e.linkcount() == 0
    # and back to this hub
    evloop.spawn_later(0.01, e.set)
    assert e.wait(5) is True
