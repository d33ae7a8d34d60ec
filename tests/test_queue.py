"""Tests for evloop.queue: SimpleQueue, Queue (joinable), LifoQueue, PriorityQueue,
JoinableQueue and Channel.

Each test leaves no greenlet blocked and no waiter or timer behind. Timing assertions use
lower bounds and generous (>= 10x) upper bounds.

tests/test_gevent_contract.py checks what evloop shares with gevent against both
libraries; the cases here go further on evloop alone (timings, bad arguments, threads).
"""
import threading
import time

import pytest

import evloop
from evloop.exceptions import LoopExit
from evloop.queue import (Channel, Empty, Full, JoinableQueue, LifoQueue, PriorityQueue,
                          Queue, SimpleQueue)
from evloop.timeout import Timeout

QUEUE_CLASSES = [SimpleQueue, Queue, LifoQueue, PriorityQueue]


# -- basics -----------------------------------------------------------------------------------


def test_items_argument(hub):
    pq = PriorityQueue(items=[3, 1, 2])
    assert [pq.get() for _ in range(3)] == [1, 2, 3]
    assert LifoQueue(items=[1, 2]).get() == 2
    q = Queue(items=[1, 2])
    assert q.unfinished_tasks == 2 and q.get() == 1
    c = q.copy()
    assert list(c.queue) == [2] and c.unfinished_tasks == 2


@pytest.mark.parametrize("maxsize", [None, 0, -1, -100])
def test_unbounded(hub, maxsize):
    # a negative maxsize is unbounded, as in queue.Queue (which patch_queue replaces) and
    # gevent
    q = Queue(maxsize)
    assert q.maxsize is None
    for i in range(1000):
        q.put_nowait(i)
    assert not q.full() and q.qsize() == 1000


def test_bounded_full_and_maxsize(hub):
    q = Queue(2)
    assert q.maxsize == 2
    q.put(1)
    q.put(2)
    assert q.full()
    with pytest.raises(Full):
        q.put_nowait(3)
    with pytest.raises(Full):
        q.put(3, block=False)
    q.maxsize = 3
    q.put_nowait(3)
    assert q.full() and q.qsize() == 3
    assert "maxsize=3" in repr(q)


@pytest.mark.parametrize("cls", QUEUE_CLASSES)
def test_bad_maxsize(cls):
    with pytest.raises(TypeError):
        cls("3")
    with pytest.raises(TypeError):
        cls(2.5)
    with pytest.raises(TypeError):
        cls(True)


def test_nowait_on_empty(hub):
    q = Queue()
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.peek_nowait()
    with pytest.raises(Empty):
        q.get(block=False, timeout=5)  # timeout ignored without block


# -- blocking ------------------------------------------------------------------------------------


def test_get_blocks_until_put(hub):
    q = Queue()
    g = evloop.spawn(q.get)
    evloop.sleep(0)
    assert not g.ready() and len(q.getters) == 1
    q.put("x")
    assert g.get(timeout=5) == "x"
    assert q.empty() and not q.getters


def test_put_blocks_until_get(hub):
    q = Queue(1)
    q.put(1)
    g = evloop.spawn(q.put, 2)
    evloop.sleep(0)
    assert not g.ready() and len(q.putters) == 1
    assert q.get() == 1
    g.join(5)
    assert g.successful() and list(q.queue) == [2] and not q.putters


def test_putters_served_fifo(hub):
    q = Queue(1)
    q.put("first")
    greenlets = [evloop.spawn(q.put, i) for i in range(5)]
    evloop.sleep(0)
    assert len(q.putters) == 5
    got = [q.get() for _ in range(6)]
    evloop.joinall(greenlets, timeout=5)
    assert got == ["first", 0, 1, 2, 3, 4]


def test_blocking_get_does_not_overtake_waiting_getters(hub):
    q = Queue()
    got = []
    first = evloop.spawn(lambda: got.append(("first", q.get())))
    evloop.sleep(0)
    q.put(1)  # the item is there, but `first` is in line for it
    late = evloop.spawn(lambda: got.append(("late", q.get())))
    evloop.sleep(0)
    q.put(2)
    evloop.joinall([first, late], timeout=5)
    assert got == [("first", 1), ("late", 2)]


def test_peek_waiter_does_not_consume(hub):
    q = Queue()
    p = evloop.spawn(q.peek)
    g = evloop.spawn(q.get)
    evloop.sleep(0)
    q.put("only")
    assert p.get(timeout=5) == "only" and g.get(timeout=5) == "only"
    assert q.empty()


def test_producer_consumer(hub):
    q = Queue(3)
    n = 500
    received = []

    def producer():
        for i in range(n):
            q.put(i)

    def consumer():
        for _ in range(n // 2):
            received.append(q.get())

    greenlets = [evloop.spawn(consumer), evloop.spawn(producer), evloop.spawn(consumer)]
    evloop.joinall(greenlets, timeout=10)
    assert all(g.successful() for g in greenlets)
    assert received == list(range(n))  # FIFO across both consumers
    assert q.empty() and not q.getters and not q.putters


# -- timeouts --------------------------------------------------------------------------------------


def test_get_timeout(hub):
    q = Queue()
    base = hub.loop.activecnt
    seen = []
    hub.loop.run_callback(lambda: seen.append((hub.loop.activecnt, len(q.getters))))
    start = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.1)
    assert 0.09 <= time.monotonic() - start < 2.0
    assert seen == [(base + 1, 1)]
    assert hub.loop.activecnt == base and not q.getters
    with pytest.raises(Empty):
        q.peek(timeout=0.01)
    assert not q.getters


def test_put_timeout(hub):
    q = Queue(1)
    q.put("a")
    base = hub.loop.activecnt
    start = time.monotonic()
    with pytest.raises(Full):
        q.put("b", timeout=0.1)
    assert 0.09 <= time.monotonic() - start < 2.0
    assert hub.loop.activecnt == base and not q.putters
    assert list(q.queue) == ["a"] and q.unfinished_tasks == 1


def test_timeout_zero_does_not_wait(hub):
    q = Queue(1)
    start = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0)
    q.put(1, timeout=0)
    with pytest.raises(Full):
        q.put(2, timeout=0)
    assert q.get(timeout=0) == 1
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize("timeout, exc", [
    (-1, ValueError), (float("nan"), ValueError), ("1", TypeError), (True, TypeError),
    (object(), TypeError),
])
def test_bad_timeouts(hub, timeout, exc):
    q = Queue(1)
    with pytest.raises(exc):
        q.get(timeout=timeout)
    q.put(1)
    with pytest.raises(exc):
        q.put(2, timeout=timeout)
    assert not q.getters and not q.putters and list(q.queue) == [1]
    c = Channel()
    with pytest.raises(exc):
        c.get(timeout=timeout)
    with pytest.raises(exc):
        c.put(1, timeout=timeout)


def test_negative_timeout_raises_even_when_not_blocking_is_needed(hub):
    q = Queue()
    q.put(1)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    assert q.qsize() == 1


def test_timeout_exception_while_waiting(hub):
    q = Queue()
    with pytest.raises(Timeout):
        with Timeout(0.05):
            q.get()
    assert not q.getters and hub.loop.activecnt == 0


# -- faults ----------------------------------------------------------------------------------------


def test_killed_getter_leaves_the_line(hub):
    q = Queue()
    got = []
    a = evloop.spawn(lambda: got.append(("a", q.get())))
    b = evloop.spawn(lambda: got.append(("b", q.get())))
    evloop.sleep(0)
    a.kill()
    assert len(q.getters) == 1
    q.put(1)
    b.join(5)
    assert got == [("b", 1)] and q.empty() and not q.getters


@pytest.mark.parametrize("kill_first", [True, False])
def test_getter_killed_around_put_loses_no_item(hub, kill_first):
    q = Queue()
    got = []

    def getter(name):
        item = q.get()
        got.append((name, item))
        evloop.sleep(0.01)  # killed here, after taking the item, when kill_first=False

    a = evloop.spawn(getter, "a")
    b = evloop.spawn(getter, "b")
    evloop.sleep(0)
    if kill_first:
        a.kill(block=False)
        q.put("item")
    else:
        q.put("item")
        a.kill(block=False)
    evloop.joinall([a, b], timeout=0.5)
    # the item went to exactly one getter, or is still in the queue: never lost
    taken = [item for _, item in got]
    assert taken + list(q.queue) == ["item"]
    assert got == ([("b", "item")] if kill_first else [("a", "item")])
    b.kill()
    assert not q.getters


def test_killed_putter_takes_its_item_away(hub):
    q = Queue(1)
    q.put("kept")
    a = evloop.spawn(q.put, "killed")
    b = evloop.spawn(q.put, "next")
    evloop.sleep(0)
    a.kill()
    assert len(q.putters) == 1
    assert q.get() == "kept"
    assert q.get(timeout=5) == "next"
    b.join(5)
    assert q.empty() and not q.putters and q.unfinished_tasks == 2


def test_loopexit_when_nobody_puts(hub):
    q = Queue()
    with pytest.raises(LoopExit) as info:
        q.get()
    assert "Queue" in str(info.value)
    assert not q.getters


def test_unorderable_item_fails_the_blocked_putter(hub):
    q = PriorityQueue(1)
    q.put(1)
    h = evloop.spawn(q.put, "x")
    evloop.sleep(0)
    q.maxsize = 2  # room now, but "x" cannot be compared with 1: the putter gets the error
    h.join(5)
    assert isinstance(h.exception, TypeError)
    assert not q.putters and list(q.queue) == [1]


# -- from the hub, from other threads ----------------------------------------------------------------


def test_calls_from_the_hub(hub):
    q = Queue(1)
    results = []

    def in_hub():
        q.put("x")
        try:
            q.put("y")
        except Full:
            results.append("full")
        results.append(q.get())
        try:
            q.get()
        except Empty:
            results.append("empty")

    hub.loop.run_callback(in_hub)
    evloop.sleep(0)
    assert results == ["full", "x", "empty"]


def test_hub_put_serves_blocked_getters(hub):
    q = Queue()
    g = evloop.spawn(q.get)
    evloop.sleep(0)
    hub.loop.run_callback(q.put, "from hub")
    assert g.get(timeout=5) == "from hub"


@pytest.mark.parametrize("cls", [SimpleQueue, Queue])
def test_put_from_another_thread_on_an_unbounded_queue(hub, cls):
    q = cls()
    n = 200

    def producer():
        for i in range(n):
            q.put(i)
            if i % 20 == 0:
                time.sleep(0.001)

    t = threading.Thread(target=producer)
    t.start()
    try:
        got = [q.get(timeout=10) for _ in range(n)]
    finally:
        t.join()
    assert got == list(range(n))


@pytest.mark.parametrize("cls", [Queue, LifoQueue, PriorityQueue, SimpleQueue])
@pytest.mark.allow_leftovers("greenlets", reason="the waiter's greenlet belongs to the destroyed "
                             "hub and stays suspended for ever; that is the point")
def test_put_and_get_after_the_waiters_hub_was_destroyed(hub, cls):
    # A thread's hub is destroyed with its loop while greenlets wait in get() and put();
    # the thread's next hub uses the queue. put()/get() used to raise ValueError
    # ("operation on destroyed loop"): the queue still queued its wake-up on the dead loop.
    box = {}

    def body():
        q, full = cls(), cls(1) if cls is not SimpleQueue else None
        evloop.spawn(q.get)                  # waits, then is orphaned
        if full is not None:
            full.put(0)
            evloop.spawn(full.put, 1)        # waits for room, then is orphaned
        evloop.sleep(0.001)
        evloop.get_hub().destroy()
        new = evloop.get_hub()
        try:
            q.put(5)
            evloop.sleep(0.001)
            box["q"] = q.get(timeout=1)       # the item went to nobody else
            if full is not None:
                box["full"] = (full.get(timeout=1), full.qsize())
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc
        finally:
            new.destroy()

    t = threading.Thread(target=body)
    t.start()
    t.join(30)
    assert "error" not in box, box["error"]
    assert box["q"] == 5
    if cls is not SimpleQueue:
        assert box["full"] == (0, 0)


# -- iteration, joining --------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [StopIteration, StopIteration()])
def test_iteration_ends_at_stopiteration(hub, stop):
    q = Queue()
    evloop.spawn(lambda: [q.put(i) for i in (1, 2, 3)] + [q.put(stop)])
    assert list(q) == [1, 2, 3]


def test_join_and_task_done(hub):
    q = JoinableQueue()
    assert q.join() is True
    for i in range(3):
        q.put(i)
    assert q.unfinished_tasks == 3
    done = []

    def worker():
        for item in q:
            evloop.sleep(0.001)
            done.append(item)
            q.task_done()

    w = evloop.spawn(worker)
    assert q.join(timeout=5) is True
    assert done == [0, 1, 2] and q.unfinished_tasks == 0
    assert q.join(0) is True
    q.put(StopIteration)  # ends the worker's loop; it does not mark it done
    w.join(5)
    assert w.successful() and q.unfinished_tasks == 1
    q.task_done()
    q.put(3)
    start = time.monotonic()
    assert q.join(timeout=0.05) is False  # nobody takes it ...
    assert time.monotonic() - start >= 0.04
    evloop.spawn_later(0.02, lambda: (q.get(), q.task_done()))
    assert q.join(timeout=5) is True      # ... until somebody does
    with pytest.raises(ValueError, match="too many"):
        q.task_done()


def test_join_woken_by_task_done(hub):
    q = Queue()
    q.put(1)
    joiners = [evloop.spawn(q.join) for _ in range(3)]
    evloop.sleep(0)
    q.get()
    q.task_done()
    assert [j.get(timeout=5) for j in joiners] == [True, True, True]


# -- Channel -----------------------------------------------------------------------------------------------


def test_channel_rendezvous(hub):
    c = Channel()
    assert c.maxsize == 0 and c.qsize() == 0 and len(c) == 0 and c.empty() and c.full()
    log = []

    def putter():
        for i in range(3):
            c.put(i)
            log.append(("put done", i))

    p = evloop.spawn(putter)
    evloop.sleep(0)
    assert c.balance == 1 and log == []
    for i in range(3):
        log.append(("got", c.get(timeout=5)))
    p.join(5)
    assert [e for e in log if e[0] == "got"] == [("got", 0), ("got", 1), ("got", 2)]
    assert c.balance == 0


def test_channel_get_waits_for_put(hub):
    c = Channel(1)
    g = evloop.spawn(c.get)
    evloop.sleep(0)
    assert c.balance == -1
    c.put("x", timeout=5)
    assert g.get(timeout=5) == "x" and c.balance == 0


def test_channel_nowait(hub):
    c = Channel(0)
    with pytest.raises(Full):
        c.put_nowait(1)
    with pytest.raises(Empty):
        c.get_nowait()
    g = evloop.spawn(c.get)
    evloop.sleep(0)
    c.put_nowait("handed")  # a getter waits: the hand-over succeeds
    assert g.get(timeout=5) == "handed"
    p = evloop.spawn(c.put, "offered")
    evloop.sleep(0)
    assert c.get_nowait() == "offered"
    p.join(5)
    assert p.successful() and c.balance == 0


def test_channel_timeouts(hub):
    c = Channel()
    start = time.monotonic()
    with pytest.raises(Full):
        c.put(1, timeout=0.1)
    assert 0.09 <= time.monotonic() - start < 2.0
    with pytest.raises(Empty):
        c.get(timeout=0.05)
    assert c.balance == 0 and hub.loop.activecnt == 0


def test_channel_bad_maxsize():
    for bad in (2, -1, None, True):
        with pytest.raises(ValueError):
            Channel(bad)


def test_channel_killed_getter(hub):
    c = Channel()
    a = evloop.spawn(c.get)
    b = evloop.spawn(c.get)
    evloop.sleep(0)
    a.kill()
    c.put("x", timeout=5)
    assert b.get(timeout=5) == "x" and c.balance == 0


def test_channel_killed_putter(hub):
    c = Channel()
    a = evloop.spawn(c.put, "killed")
    b = evloop.spawn(c.put, "kept")
    evloop.sleep(0)
    a.kill()
    assert c.balance == 1
    assert c.get(timeout=5) == "kept"
    b.join(5)
    assert b.successful() and c.balance == 0


def test_channel_put_nowait_when_the_getter_left(hub):
    c = Channel()
    g = evloop.spawn(c.get)
    evloop.sleep(0)
    g.kill(block=False)   # queued before the hand-over: the getter is gone by then
    with pytest.raises(Full):
        c.put_nowait("nobody")
    assert c.balance == 0


def test_channel_putter_timeout_after_item_taken_counts_as_done(hub):
    c = Channel()
    p = evloop.spawn(c.put, "x", timeout=0.05)
    evloop.sleep(0)
    assert c.get_nowait() == "x"  # taken; the putter resumes at the hub's next turn
    p.join(5)
    assert p.successful() and c.balance == 0
