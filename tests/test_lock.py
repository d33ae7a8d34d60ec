"""Tests for evloop.lock: Semaphore, BoundedSemaphore, Lock, RLock, DummySemaphore.

Each test leaves no greenlet blocked and no waiter, link or timer behind. Timing
assertions use lower bounds and generous (>= 10x) upper bounds.

tests/test_gevent_contract.py checks what evloop shares with gevent against both
libraries; the cases here go further on evloop alone (timings, bad arguments, threads).
"""
import threading
import time

import pytest
from _helpers import in_thread

import evloop
from evloop.exceptions import BlockingSwitchOutError, LoopExit
from evloop.lock import BoundedSemaphore, DummySemaphore, Lock, RLock, Semaphore
from evloop.timeout import Timeout


# -- Semaphore: basics --------------------------------------------------------------------------


def test_semaphore_counts(hub):
    s = Semaphore(2)
    assert s.counter == 2 and not s.locked() and s.ready()
    assert s.acquire() is True
    assert s.acquire(blocking=False) is True
    assert s.counter == 0 and s.locked() and not s.ready()
    assert s.acquire(blocking=False) is False
    assert s.acquire(timeout=0) is False
    s.release()
    s.release()
    s.release()  # over-release is allowed for a plain Semaphore
    assert s.counter == 3
    assert "counter=3" in repr(s)


def test_semaphore_default_and_bad_values(hub):
    assert Semaphore().counter == 1
    assert Semaphore(0).counter == 0
    bound = Semaphore(0, hub=hub)  # gevent's hub argument
    evloop.spawn_later(0.01, bound.release)
    assert bound.acquire(timeout=5) is True
    assert RLock(hub=hub).acquire() is True
    with pytest.raises(ValueError, match=">= 0"):
        Semaphore(-1)
    with pytest.raises(TypeError):
        Semaphore("1")
    with pytest.raises(TypeError):
        Semaphore(1.5)
    with pytest.raises(TypeError):
        Semaphore(None)         # as gevent ("an integer is required") and threading
    with pytest.raises(TypeError):
        BoundedSemaphore(None)


@pytest.mark.parametrize("timeout, exc", [
    (float("nan"), ValueError), ("1", TypeError), (True, TypeError), (object(), TypeError),
])
def test_lock_and_rlock_check_the_timeout_even_when_free(hub, timeout, exc):
    # threading.Lock/RLock raise there too (gevent's RLock returns True)
    lock, rlock = Lock(), RLock()
    with pytest.raises(exc):
        lock.acquire(timeout=timeout)
    with pytest.raises(exc):
        rlock.acquire(timeout=timeout)
    assert not lock.locked() and not rlock.locked()
    assert rlock.acquire()
    with pytest.raises(exc):
        rlock.acquire(timeout=timeout)           # held by us: still checked
    rlock.release()
    assert not rlock.locked()


def test_semaphore_context_manager(hub):
    s = Semaphore(1)
    with s as entered:
        assert entered is True and s.locked()
    assert not s.locked()
    with pytest.raises(KeyError):
        with s:
            raise KeyError
    assert s.counter == 1


def test_blocked_acquire_woken_by_release(hub):
    s = Semaphore(0)
    g = evloop.spawn(s.acquire)
    evloop.sleep(0)
    assert not g.ready() and s.linkcount() == 1
    s.release()
    assert g.get(timeout=5) is True
    assert s.counter == 0 and s.linkcount() == 0


def test_waiters_are_served_fifo(hub):
    s = Semaphore(0)
    order = []

    def worker(i):
        with s:
            order.append(i)
            evloop.sleep(0.001)

    greenlets = [evloop.spawn(worker, i) for i in range(6)]
    evloop.sleep(0)
    for _ in range(2):
        s.release()
    evloop.joinall(greenlets, timeout=10)
    assert order == list(range(6))
    assert s.counter == 2 and s.linkcount() == 0


def test_blocking_acquire_does_not_overtake_waiters(hub):
    s = Semaphore(0)
    order = []
    first = evloop.spawn(lambda: (s.acquire(), order.append("first")))
    evloop.sleep(0)
    s.release()  # the permit is free now, but `first` is in line for it
    assert s.counter == 1
    late = evloop.spawn(lambda: (s.acquire(), order.append("late")))
    evloop.sleep(0)
    assert order == ["first"]
    s.release()
    evloop.joinall([first, late], timeout=5)
    assert order == ["first", "late"] and s.counter == 0


def test_non_blocking_acquire_takes_a_free_permit(hub):
    s = Semaphore(0)
    waiter = evloop.spawn(s.acquire, timeout=0.05)
    evloop.sleep(0)
    s.release()
    assert s.acquire(blocking=False) is True  # takes it before the waiter is woken
    assert waiter.get(timeout=5) is False     # which goes back to waiting, then times out
    assert s.counter == 0 and s.linkcount() == 0


# -- timeouts ------------------------------------------------------------------------------------------


def test_acquire_timeout(hub):
    s = Semaphore(0)
    base = hub.loop.activecnt
    seen = []
    hub.loop.run_callback(lambda: seen.append((hub.loop.activecnt, s.linkcount())))
    start = time.monotonic()
    assert s.acquire(timeout=0.1) is False
    assert 0.09 <= time.monotonic() - start < 2.0
    assert seen == [(base + 1, 1)]
    assert hub.loop.activecnt == base and s.linkcount() == 0 and s.counter == 0


def test_acquire_timeout_woken_in_time(hub):
    s = Semaphore(0)
    releaser = evloop.spawn_later(0.02, s.release)
    assert s.acquire(timeout=5) is True
    releaser.join(5)
    assert s.counter == 0 and s.linkcount() == 0 and hub.loop.activecnt == 0


@pytest.mark.parametrize("timeout", [0, -1, -0.1])
def test_zero_or_negative_timeout_does_not_wait(hub, timeout):
    s = Semaphore(0)
    start = time.monotonic()
    assert s.acquire(timeout=timeout) is False
    assert time.monotonic() - start < 0.5
    s.release()
    assert s.acquire(timeout=timeout) is True
    assert s.linkcount() == 0


@pytest.mark.parametrize("timeout, exc", [
    (float("nan"), ValueError), ("1", TypeError), (True, TypeError), (object(), TypeError),
])
def test_bad_timeouts(hub, timeout, exc):
    s = Semaphore(0)
    with pytest.raises(exc):
        s.acquire(timeout=timeout)
    with pytest.raises(exc):
        s.wait(timeout)
    assert s.linkcount() == 0


def test_timeout_exception_while_waiting(hub):
    s = Semaphore(0)
    with pytest.raises(Timeout):
        with Timeout(0.05):
            s.acquire()
    assert s.linkcount() == 0 and hub.loop.activecnt == 0
    s.release()
    assert s.counter == 1


# -- faults ---------------------------------------------------------------------------------------------


def _held(kind):
    """A lock-like object of ``kind`` with its only permit taken by the caller."""
    obj = {"Semaphore": lambda: Semaphore(0), "BoundedSemaphore": lambda: BoundedSemaphore(1),
           "Lock": Lock, "RLock": RLock}[kind]()
    if kind != "Semaphore":
        assert obj.acquire()
    return obj


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore", "Lock", "RLock"])
def test_killed_waiter_leaves_the_line(hub, kind):
    s = _held(kind)
    got = []
    a = evloop.spawn(lambda: (s.acquire(), got.append("a")))
    b = evloop.spawn(lambda: (s.acquire(), got.append("b")))
    evloop.sleep(0)
    a.kill()
    assert a.dead
    s.release()
    b.join(5)
    assert got == ["b"]
    block = s._block if kind == "RLock" else s
    assert block.counter == 0 and block.linkcount() == 0


@pytest.mark.parametrize("kill_first", [True, False])
def test_waiter_killed_around_release(hub, kill_first):
    # the kill and the release's wake-up both queued before the hub runs: the permit
    # must end with exactly one holder or back in the semaphore, never lost
    s = Semaphore(0)
    got = []

    def worker(name):
        with s:
            got.append(name)
            evloop.sleep(0.01)

    a = evloop.spawn(worker, "a")
    b = evloop.spawn(worker, "b")
    evloop.sleep(0)
    if kill_first:
        a.kill(block=False)
        s.release()
    else:
        s.release()
        a.kill(block=False)
    evloop.joinall([a, b], timeout=5)
    assert got == (["b"] if kill_first else ["a", "b"])
    assert s.counter == 1 and s.linkcount() == 0


def test_loopexit_when_nobody_releases(hub):
    s = Semaphore(0)
    with pytest.raises(LoopExit) as info:
        s.acquire()
    assert "Semaphore" in str(info.value)
    assert s.linkcount() == 0


def test_blocking_acquire_in_the_hub_raises(hub):
    s = Semaphore(0)
    errors = []

    def in_hub():
        try:
            s.acquire()
        except BlockingSwitchOutError as ex:
            errors.append(ex)

    hub.loop.run_callback(in_hub)
    evloop.sleep(0.01)
    assert len(errors) == 1 and s.linkcount() == 0
    # a non-blocking acquire works there
    hub.loop.run_callback(lambda: errors.append(s.acquire(blocking=False)))
    evloop.sleep(0)
    assert errors[1] is False


# -- links --------------------------------------------------------------------------------------------


def test_rawlink_called_when_a_permit_is_free(hub):
    s = Semaphore(0)
    calls = []
    s.rawlink(calls.append)
    evloop.sleep(0)
    assert calls == []
    s.release()
    evloop.sleep(0)
    assert calls == [s] and s.counter == 1  # the link does not take the permit
    s.rawlink(calls.append)  # free now: called at the next turn
    evloop.sleep(0)
    assert calls == [s, s]
    s.rawlink(calls.append)
    s.unlink(calls.append)
    evloop.sleep(0)
    assert calls == [s, s]
    with pytest.raises(TypeError):
        s.rawlink(None)


def test_link_exception_goes_to_handle_error(hub, monkeypatch):
    s = Semaphore(0)
    reported = []
    monkeypatch.setattr(hub, "handle_error",
                        lambda context, t, v, tb: reported.append((context, t)))

    def bad(sem):
        raise ZeroDivisionError

    calls = []
    s.rawlink(bad)
    s.rawlink(calls.append)
    g = evloop.spawn(s.acquire)
    evloop.sleep(0)
    s.release()
    assert g.get(timeout=5) is True
    assert calls == [s]
    assert [t for _, t in reported] == [ZeroDivisionError]
    assert reported[0][0] == (bad, s)


def test_evloop_wait_on_a_semaphore(hub):
    s = Semaphore(0)
    evloop.spawn_later(0.02, s.release)
    assert evloop.wait([s], timeout=5) == [s]
    assert s.linkcount() == 0 and s.counter == 1


# -- threads -------------------------------------------------------------------------------------------


def test_release_from_another_thread(hub):
    s = Semaphore(0)
    t = threading.Timer(0.1, s.release)
    start = time.monotonic()
    t.start()
    try:
        assert s.acquire(timeout=10) is True
        assert 0.09 <= time.monotonic() - start < 5
    finally:
        t.join()
    assert s.counter == 0 and s.linkcount() == 0


def test_many_releases_from_a_thread(hub):
    s = Semaphore(0)
    n = 200

    def releaser():
        for _ in range(n):
            s.release()
            time.sleep(0.0005)

    t = threading.Thread(target=releaser)
    t.start()
    try:
        got = sum(1 for _ in range(n) if s.acquire(timeout=10))
    finally:
        t.join()
    assert got == n and s.counter == 0


@pytest.mark.parametrize("make", [lambda: Semaphore(0), lambda: BoundedSemaphore(1),
                                  Lock, RLock], ids=["Semaphore", "BoundedSemaphore",
                                                     "Lock", "RLock"])
@pytest.mark.allow_leftovers("greenlets", reason="the waiter's greenlet belongs to the destroyed "
                             "hub and stays suspended for ever; that is the point")
def test_release_after_the_waiters_hub_was_destroyed(hub, make):
    # A thread's hub is destroyed with its loop while a greenlet waits on the lock; the
    # thread's next hub releases it. That used to raise ValueError("operation on destroyed
    # loop"): the lock still queued its wake-up on the dead loop.
    def body():
        lock = make()
        if type(lock) is not Semaphore:
            lock.acquire()                  # held by this thread's main greenlet
        evloop.spawn(lock.acquire)          # waits, then is orphaned
        evloop.sleep(0.001)
        evloop.get_hub().destroy()
        new = evloop.get_hub()
        try:
            lock.release()
            evloop.sleep(0.001)
            assert lock.acquire(timeout=1) is True   # the permit went to nobody else
            lock.release()
            return "ok"
        finally:
            new.destroy()

    assert in_thread(body) == "ok"


# -- BoundedSemaphore, Lock -----------------------------------------------------------------------------


def test_bounded_semaphore_over_release(hub):
    s = BoundedSemaphore(2)
    with pytest.raises(ValueError, match="too many"):
        s.release()
    s.acquire()
    s.release()
    with pytest.raises(ValueError):
        s.release()
    assert s.counter == 2
    g = evloop.spawn(lambda: [s.acquire() for _ in range(3)])
    evloop.sleep(0)
    s.release()
    g.join(5)
    assert s.counter == 0


def test_lock(hub):
    lock = Lock()
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()
    assert lock.acquire() is True and lock.locked()
    assert lock.acquire(False) is False
    assert lock.acquire(timeout=0.01) is False
    with pytest.raises(ValueError):
        lock.acquire(False, 1)
    lock.release()
    with lock as entered:
        assert entered is True and lock.locked()
    assert not lock.locked()


def test_lock_timeout_minus_one_waits(hub):
    lock = Lock()
    lock.acquire()
    evloop.spawn_later(0.05, lock.release)
    start = time.monotonic()
    assert lock.acquire(True, -1) is True
    assert time.monotonic() - start >= 0.04
    lock.release()


def test_lock_mutual_exclusion(hub):
    lock = Lock()
    inside = []
    overlaps = []

    def worker(i):
        for _ in range(5):
            with lock:
                if inside:
                    overlaps.append(i)
                inside.append(i)
                evloop.sleep(0)
                inside.pop()

    evloop.joinall([evloop.spawn(worker, i) for i in range(5)], timeout=10)
    assert overlaps == [] and not lock.locked() and lock.linkcount() == 0


# -- RLock ---------------------------------------------------------------------------------------------


def test_rlock_recursion(hub):
    r = RLock()
    assert r.acquire() and r.acquire()
    assert r.locked() and r._is_owned()
    r.release()
    assert r.locked()
    r.release()
    assert not r.locked() and not r._is_owned()
    with pytest.raises(RuntimeError):
        r.release()
    with r:
        with r:
            assert r._is_owned()
    assert not r.locked()


def test_rlock_other_greenlet(hub):
    r = RLock()
    r.acquire()
    errors = []

    def intruder():
        try:
            r.release()
        except RuntimeError as ex:
            errors.append(ex)
        assert r.acquire(timeout=0.01) is False
        return r.acquire()

    g = evloop.spawn(intruder)
    evloop.sleep(0.05)
    assert len(errors) == 1 and not g.ready()
    r.release()
    assert g.get(timeout=5) is True
    assert not r._is_owned() and r.locked()
    g2 = evloop.spawn(r.release)  # g is dead; another greenlet cannot release it
    g2.join(5)
    assert isinstance(g2.exception, RuntimeError)


def test_rlock_fifo(hub):
    r = RLock()
    order = []
    r.acquire()

    def worker(i):
        with r:
            order.append(i)

    greenlets = [evloop.spawn(worker, i) for i in range(4)]
    evloop.sleep(0)
    r.release()
    evloop.joinall(greenlets, timeout=5)
    assert order == [0, 1, 2, 3]


def test_rlock_condition_support(hub):
    r = RLock()
    r.acquire()
    r.acquire()
    state = r._release_save()
    assert not r.locked()
    r._acquire_restore(state)
    assert r._is_owned() and r._count == 2
    r.release()
    r.release()


# -- DummySemaphore --------------------------------------------------------------------------------------


def test_dummy_semaphore(hub):
    d = DummySemaphore(5)
    assert d.acquire() and d.acquire(False) and d.acquire(timeout=1)
    assert not d.locked() and d.ready() and d.wait() == 1
    d.release()
    d.rawlink(print)
    d.unlink(print)
    with d:
        pass
    assert repr(d) == "<DummySemaphore>"
