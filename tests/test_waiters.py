"""Tests for evloop._waiters: the parking lot under every blocking primitive.

The lot is tested through ``Permits``, the smallest primitive on it (a counter whose
``take`` waits in a served line), so that a failure here is the lot's and not one
primitive's. The cross-thread wake-up that must not be lost (mark, then schedule) is one
scenario, run on ``Permits`` and then, thinly, on each primitive that wakes through
``_wake``. Each test leaves no greenlet blocked and no waiter or timer behind.
"""
import threading
import time
from collections import deque

import pytest
from _helpers import in_thread

import evloop
from evloop._waiters import (TIMEOUT, FlagLot, ParkingLot, ThreadLot, current_hub,
                             discard, new_waiter, timeout_seconds)
from evloop.event import Event
from evloop.exceptions import InvalidThreadUseError, LoopExit
from evloop.lock import BoundedSemaphore, Lock, Semaphore
from evloop.queue import Empty, LifoQueue, PriorityQueue, Queue, SimpleQueue

WAIT = 10.0  # an upper bound that only a lost wake-up reaches


class Permits(ParkingLot):
    """A counter of permits on the lot: ``take`` waits in line, ``give`` adds one."""

    __slots__ = ("count", "line", "served")

    def __init__(self, count: int = 0) -> None:
        self.count = count
        self.line: deque = deque()
        self.served = 0  # _serve calls
        self._init_lot()

    def _lines(self):
        return (self.line,)

    def _serve_needed(self):
        return self.count > 0 and bool(self.line)

    def _serve(self):
        self.served += 1
        while self.line and self.count > 0:
            self.line.popleft().switch(self)

    def take(self, timeout=None):
        if self.count > 0 and not self.line:  # fast path 1
            self.count -= 1
            return True
        waiter = new_waiter(current_hub() or evloop.get_hub())
        result = self._park(self.line, waiter, None if timeout is None else timeout_seconds(timeout))
        if result is self:
            self.count -= 1
            return True
        assert result is TIMEOUT
        self._leave(self.line, waiter)
        return False

    def give(self):
        self.count += 1
        if self.line and self._notifier is None:  # fast path 2
            self._wake()


def _wait_for(predicate, seconds=WAIT):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


# -- the lot ------------------------------------------------------------------------------------


def test_waiters_are_served_in_order(hub):
    p = Permits()
    order = []
    greenlets = [evloop.spawn(lambda i=i: order.append(i) if p.take() else None)
                 for i in range(5)]
    evloop.sleep(0)
    assert len(p.line) == 5
    for _ in range(5):
        p.give()
    evloop.joinall(greenlets, timeout=5)
    assert order == [0, 1, 2, 3, 4] and p.count == 0 and not p.line


def test_one_wake_up_serves_every_waiter_it_can(hub):
    p = Permits()
    greenlets = [evloop.spawn(p.take) for _ in range(3)]
    evloop.sleep(0)
    p.give()
    p.give()  # a wake-up is queued already: no second one
    assert p._notifier is True
    evloop.sleep(0)
    assert p.served == 1 and p._notifier is None and len(p.line) == 1
    p.give()
    evloop.joinall(greenlets, timeout=5)
    assert all(g.value is True for g in greenlets)


def test_timeout_leaves_the_line_and_no_timer(hub):
    p = Permits()
    before = hub.loop.activecnt
    start = time.monotonic()
    assert p.take(timeout=0.02) is False
    assert time.monotonic() - start >= 0.015
    assert not p.line and hub.loop.activecnt == before


def test_a_killed_waiter_hands_its_turn_on(hub):
    p = Permits()
    first = evloop.spawn(p.take)
    second = evloop.spawn(p.take)
    evloop.sleep(0)
    p.count = 1  # a permit there, but no wake-up queued: the leaving waiter must start one
    first.kill()
    assert second.get(timeout=5) is True
    assert not p.line and p.count == 0


def test_loopexit_names_the_object_and_leaves_the_line(hub):
    p = Permits()
    with pytest.raises(LoopExit) as info:
        p.take()
    assert "Permits" in str(info.value) and not p.line


class FailingOnce(Permits):
    __slots__ = ()

    def _serve(self):
        if not self.served:
            self.served += 1
            raise ZeroDivisionError("in serve")
        Permits._serve(self)


def test_a_failing_serve_goes_to_handle_error_and_the_lot_serves_again(hub, errors):
    p = FailingOnce()
    g = evloop.spawn(p.take)
    evloop.sleep(0)
    p.give()
    assert g.get(timeout=5) is True  # the look after clearing the mark queued a new one
    assert "ZeroDivisionError: in serve" in errors.getvalue()
    assert p._notifier is None and p.served == 2


def test_waiters_of_two_hubs_are_refused_and_rebinding_when_idle_works(hub):
    p = Permits()
    g = evloop.spawn(p.take)
    evloop.sleep(0)

    def other_thread():
        try:
            return p.take(timeout=0.01)
        except InvalidThreadUseError as exc:
            return exc
        finally:
            evloop.get_hub().destroy()

    assert isinstance(in_thread(other_thread), InvalidThreadUseError)
    p.give()
    assert g.get(timeout=5) is True
    assert in_thread(other_thread) is False  # idle: rebound to the thread's hub, timed out
    assert p._hub is not hub


@pytest.mark.allow_leftovers("greenlets", reason="the waiter's greenlet belongs to the destroyed "
                             "hub and stays suspended for ever; that is the point")
def test_waiters_of_a_destroyed_hub_are_dropped(hub):
    def body():
        p = Permits()
        evloop.spawn(p.take)                # waits, then is orphaned
        evloop.sleep(0.001)
        evloop.get_hub().destroy()
        new = evloop.get_hub()
        try:
            p.give()                        # wakes nothing on the dead loop, raises nothing
            evloop.sleep(0.001)
            assert p.take(timeout=1) is True and not p.line
            return "ok"
        finally:
            new.destroy()

    assert in_thread(body) == "ok"


def test_event_set_and_wait_are_the_lots_own_code_under_events_names(hub):
    # no wrapper (a Python call on the hot path of every hand-off), but reprs and help()
    # name Event's methods
    assert Event.wait.__code__ is FlagLot._wait_flag.__code__
    assert Event.set.__code__ is FlagLot._raise_flag.__code__
    assert (Event.wait.__qualname__, Event.set.__qualname__) == ("Event.wait", "Event.set")
    assert Event.wait.__module__ == "evloop.event"
    e = Event()
    g = evloop.spawn(e.wait)
    assert "Event.wait" in repr(g)
    e.set()
    assert g.get(timeout=5) is True


def test_discard_is_quiet():
    line = deque([1, 2])
    discard(line, 3)
    discard(line, 1)
    assert list(line) == [2]


# -- the cross-thread wake-up: mark, then schedule --------------------------------------------


def _hub_runs_first_wakeup_before_schedule_returns(obj):
    """Replace ``obj._schedule`` so that its first call, from a waking thread, returns only
    after the hub has run the whole queued callback: the interleaving in which the thread
    loses the GIL right after queueing the wake-up and before its next bytecode (seen on
    a loaded machine). Returns the threading.Event set when that callback ended."""
    real = obj._schedule
    ran = threading.Event()
    calls = []

    def schedule(func, *args):
        calls.append(func)
        if len(calls) > 1:
            return real(func, *args)

        def whole(*a):
            try:
                func(*a)
            finally:
                ran.set()

        handle = real(whole, *args)
        ran.wait(WAIT)
        return handle

    obj._schedule = schedule
    return ran


def _two_wake_ups_from_a_thread(obj, bind, wait, wake, waiting):
    """A thread wakes ``obj`` twice, each time once a greenlet waits (``waiting(obj)``),
    the first wake-up forced through the interleaving above. A wake-up lost to a stale
    mark shows as the second ``wait`` running into its timeout."""
    bind(obj)  # a timed-out wait: binds obj to this hub
    ran = _hub_runs_first_wakeup_before_schedule_returns(obj)

    def waker():
        _wait_for(lambda: waiting(obj))
        wake(obj, 1)
        _wait_for(lambda: waiting(obj))
        wake(obj, 2)

    t = threading.Thread(target=waker)
    t.start()
    try:
        first = wait(obj)
        start = time.monotonic()
        second = wait(obj)
        elapsed = time.monotonic() - start
    finally:
        t.join()
    assert ran.is_set()
    assert first and second and elapsed < WAIT / 2, (first, second, elapsed)
    return first, second


def test_a_wake_up_from_a_thread_that_loses_the_gil_is_not_lost(hub):
    # The mark used to go up *after* the schedule call (the handle it returned): the hub
    # could run the whole callback, clearing the mark, in between; the mark set after it
    # then stood with nothing queued, and every later wake-up was skipped.
    _two_wake_ups_from_a_thread(
        Permits(), bind=lambda p: p.take(timeout=0.001), wait=lambda p: p.take(timeout=WAIT),
        wake=lambda p, _: p.give(), waiting=lambda p: len(p.line) == 1)


def _get(q):
    try:
        return q.get(timeout=WAIT)
    except Empty:
        return None


def _bind_queue(q):
    with pytest.raises(Empty):
        q.get(timeout=0.001)


def _locked(make):
    def made():
        lock = make()
        lock.acquire()
        return lock
    return made


SEMAPHORES = {
    "Semaphore": lambda: Semaphore(0),
    "BoundedSemaphore": _locked(lambda: BoundedSemaphore(1)),
    "Lock": _locked(Lock),
}
QUEUES = {"SimpleQueue": SimpleQueue, "Queue": Queue, "LifoQueue": LifoQueue,
          "PriorityQueue": PriorityQueue}


@pytest.mark.parametrize("make", SEMAPHORES.values(), ids=SEMAPHORES.keys())
def test_release_from_a_thread_that_loses_the_gil(hub, make):
    _two_wake_ups_from_a_thread(
        make(), bind=lambda s: s.acquire(timeout=0.001), wait=lambda s: s.acquire(timeout=WAIT),
        wake=lambda s, _: s.release(), waiting=lambda s: s.linkcount() == 1)


@pytest.mark.parametrize("cls", QUEUES.values(), ids=QUEUES.keys())
def test_put_from_a_thread_that_loses_the_gil(hub, cls):
    assert _two_wake_ups_from_a_thread(
        cls(), bind=_bind_queue, wait=_get, wake=lambda q, i: q.put(i),
        waiting=lambda q: len(q.getters) == 1) == (1, 2)


# -- ThreadLot: parked OS threads ---------------------------------------------------------------


def test_thread_lot_unparks_in_order_and_times_out():
    lock = threading.Lock()  # the shared lock (a real one: tests run unpatched)
    lot = ThreadLot()
    order = []

    def parked(i):
        with lock:
            if lot.park(lock.release, lock.acquire, WAIT):
                order.append(i)

    threads = []
    for i in range(3):
        t = threading.Thread(target=parked, args=(i,))
        t.start()
        threads.append(t)
        _wait_for(lambda: len(lot) == i + 1)
    with lock:
        lot.unpark(2)
    _wait_for(lambda: len(order) == 2)
    # the first two parked were unparked; which of them gets the lock back first is the
    # OS scheduler's choice
    assert sorted(order) == [0, 1] and len(lot) == 1
    with lock:
        lot.unpark(5)  # more than are parked: the rest
    for t in threads:
        t.join(WAIT)
    assert sorted(order) == [0, 1, 2] and order[2] == 2 and len(lot) == 0

    with lock:
        start = time.monotonic()
        assert lot.park(lock.release, lock.acquire, 0.02) is False
        assert time.monotonic() - start >= 0.015
        assert lock.locked() and len(lot) == 0  # reacquired, left the line
