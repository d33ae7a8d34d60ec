"""The gevent contract: one suite, run against evloop and against gevent itself.

evloop promises gevent's greenlet API (``import evloop as gevent``). Each test here is
written once, against the names of the ``impl`` fixture (``impl.Event``, ``impl.Queue``,
``impl.spawn``, ``impl.Timeout``, ...), and runs twice: with evloop's objects and with
gevent's (gevent 26.9, from the test extras). A test compares what a program can observe —
results, return values, exception types, the order in which waiters wake up — with the
same expected values for both. Where evloop differs from gevent on purpose and says so in
its module docstrings, the one test asserts each side's documented behaviour explicitly
(``if impl.name == "evloop"``), so that a change on either side shows up here.

Both hubs live in the main thread of this one process: each library keeps its hub in its
own per-thread state, the evloop and gevent cases run one after the other (the module-
scoped ``impl`` fixture groups them), and a test only ever blocks through one library's
hub. The gevent hub is created by the fixture, before the per-test leak check of
tests/conftest.py takes its first look, and a gevent case must leave no active watcher in
gevent's loop either (``_settled`` below).

Timing rule (busy 2-core machine): waits end by events, not by elapsed time; timeouts that
must expire are short (10-50 ms) and the ones that must not are >= 10x longer.
"""
import io
import queue as stdlib_queue
import sys
import warnings
from types import SimpleNamespace

import greenlet
import pytest

# A wait that must not time out.
LONG = 10.0
# A wait that must time out.
SHORT = 0.02


def _evloop_impl():
    import evloop
    import evloop.event
    import evloop.exceptions
    import evloop.lock
    import evloop.pool
    import evloop.queue

    return SimpleNamespace(
        name="evloop", mod=evloop,
        Event=evloop.event.Event, AsyncResult=evloop.event.AsyncResult,
        Queue=evloop.queue.Queue, SimpleQueue=evloop.queue.SimpleQueue,
        LifoQueue=evloop.queue.LifoQueue, PriorityQueue=evloop.queue.PriorityQueue,
        JoinableQueue=evloop.queue.JoinableQueue, Channel=evloop.queue.Channel,
        Empty=evloop.queue.Empty, Full=evloop.queue.Full,
        ShutDown=evloop.queue.ShutDown,
        Semaphore=evloop.lock.Semaphore, BoundedSemaphore=evloop.lock.BoundedSemaphore,
        Lock=evloop.lock.Lock, RLock=evloop.lock.RLock,
        Pool=evloop.pool.Pool, Group=evloop.pool.Group, PoolFull=evloop.pool.PoolFull,
        Timeout=evloop.Timeout, with_timeout=evloop.with_timeout,
        Greenlet=evloop.Greenlet, GreenletExit=evloop.GreenletExit,
        LoopExit=evloop.LoopExit, BlockingSwitchOutError=evloop.BlockingSwitchOutError,
        spawn=evloop.spawn, spawn_later=evloop.spawn_later, sleep=evloop.sleep,
        joinall=evloop.joinall, killall=evloop.killall, kill=evloop.kill,
        wait=evloop.wait, iwait=evloop.iwait, getcurrent=evloop.getcurrent,
        get_hub=evloop.get_hub,
    )


def _gevent_impl():
    import gevent  # in the test extras on every supported CPython
    import gevent.event
    import gevent.exceptions
    import gevent.lock
    import gevent.pool
    import gevent.queue
    import gevent.thread

    return SimpleNamespace(
        name="gevent", mod=gevent,
        Event=gevent.event.Event, AsyncResult=gevent.event.AsyncResult,
        Queue=gevent.queue.Queue, SimpleQueue=gevent.queue.SimpleQueue,
        LifoQueue=gevent.queue.LifoQueue, PriorityQueue=gevent.queue.PriorityQueue,
        JoinableQueue=gevent.queue.JoinableQueue, Channel=gevent.queue.Channel,
        Empty=gevent.queue.Empty, Full=gevent.queue.Full,
        ShutDown=gevent.queue.ShutDown,
        Semaphore=gevent.lock.Semaphore, BoundedSemaphore=gevent.lock.BoundedSemaphore,
        # gevent's Lock is the one monkey-patching puts in threading/_thread
        Lock=gevent.thread.LockType, RLock=gevent.lock.RLock,
        Pool=gevent.pool.Pool, Group=gevent.pool.Group, PoolFull=gevent.pool.PoolFull,
        Timeout=gevent.Timeout, with_timeout=gevent.with_timeout,
        Greenlet=gevent.Greenlet, GreenletExit=gevent.GreenletExit,
        LoopExit=gevent.exceptions.LoopExit,
        BlockingSwitchOutError=gevent.exceptions.BlockingSwitchOutError,
        spawn=gevent.spawn, spawn_later=gevent.spawn_later, sleep=gevent.sleep,
        joinall=gevent.joinall, killall=gevent.killall, kill=gevent.kill,
        wait=gevent.wait, iwait=gevent.iwait, getcurrent=gevent.getcurrent,
        get_hub=gevent.get_hub,
    )


@pytest.fixture(scope="module", params=["evloop", "gevent"])
def impl(request):
    ns = _evloop_impl() if request.param == "evloop" else _gevent_impl()
    ns.get_hub()  # the hub (its loop's fds) exists before the first leak check
    ns.sleep(0)
    return ns


@pytest.fixture(autouse=True)
def _settled(impl):
    """Each case leaves its library's hub as it found it: no active watcher (a timer of a
    Timeout not cancelled, a greenlet still blocked)."""
    loop = impl.get_hub().loop
    before = loop.activecnt
    yield
    impl.sleep(0)
    impl.sleep(0)
    assert loop.activecnt == before, f"{impl.name}: a watcher was left active"


@pytest.fixture
def reported(impl):
    """The impl's hub's error reports (a greenlet that fails is reported there)."""
    hub = impl.get_hub()
    old = hub.__dict__.get("exception_stream", None)
    hub.exception_stream = stream = io.StringIO()
    yield stream
    if old is None:
        del hub.exception_stream
    else:
        hub.exception_stream = old


class Boom(Exception):
    pass


def run_all(impl, *greenlets):
    """Join the greenlets; re-raise the first one's exception. (Not ``joinall(timeout=,
    raise_error=True)``: gevent's leaves its iwait timer running until the garbage
    collector finds the abandoned generator.)"""
    impl.joinall(greenlets, timeout=LONG)
    assert all(g.dead for g in greenlets)
    for g in greenlets:
        if g.exception is not None:
            raise g.exception


# ======================================================================================
# Event
# ======================================================================================

def test_event_set_wait_is_set(impl):
    e = impl.Event()
    assert not e.is_set() and not e.isSet() and not e.ready()
    e.set()
    assert e.is_set() and e.isSet() and e.ready()
    assert e.wait() is True
    assert e.wait(0) is True
    assert e.wait(timeout=LONG) is True


def test_event_wait_timeout_returns_false(impl):
    e = impl.Event()
    assert e.wait(SHORT) is False
    assert e.wait(0) is False
    assert e.wait(timeout=-1) is False  # negative: no wait
    e.set()
    e.clear()
    assert not e.is_set()
    assert e.wait(SHORT) is False


def test_event_wakes_waiters_in_order_with_true(impl):
    e = impl.Event()
    woken = []

    def waiter(n):
        woken.append((n, e.wait()))

    gs = [impl.spawn(waiter, n) for n in range(4)]
    impl.sleep(0)
    assert woken == [] and e.linkcount() == 4
    e.set()
    run_all(impl, *gs)
    assert woken == [(0, True), (1, True), (2, True), (3, True)]
    assert e.linkcount() == 0


def test_event_waiter_woken_by_set_returns_true_after_clear(impl):
    # set() wakes the waiters present; a clear() before they run does not take it back
    e = impl.Event()
    g = impl.spawn(e.wait)
    impl.sleep(0)
    e.set()
    e.clear()
    run_all(impl, g)
    assert g.value is True
    assert not e.is_set()


def test_event_wait_timeout_from_greenlets(impl):
    e = impl.Event()
    gs = [impl.spawn(e.wait, SHORT), impl.spawn(e.wait, LONG)]
    impl.sleep(SHORT * 3)
    e.set()
    run_all(impl, *gs)
    assert [g.value for g in gs] == [False, True]


def test_event_rawlink_unlink(impl):
    e = impl.Event()
    calls = []
    def link(ev):
        calls.append(("a", ev))
    def other(ev):
        calls.append(("b", ev))
    e.rawlink(link)
    e.rawlink(other)
    assert e.linkcount() == 2
    e.unlink(other)
    e.unlink(other)  # unknown link: nothing
    assert e.linkcount() == 1
    e.set()
    assert calls == []  # links run from the hub, not inside set()
    impl.sleep(0)
    assert calls == [("a", e)]
    with pytest.raises(TypeError):
        e.rawlink(42)


def test_event_links_and_waiters_run_in_registration_order(impl):
    e = impl.Event()
    log = []
    e.rawlink(lambda _: log.append("link1"))
    g = impl.spawn(lambda: (e.wait(), log.append("waiter")))
    impl.sleep(0)
    e.rawlink(lambda _: log.append("link2"))
    e.set()
    run_all(impl, g)
    impl.sleep(0)
    assert log == ["link1", "waiter", "link2"]


def test_event_rawlink_on_set_event_runs_soon(impl):
    e = impl.Event()
    e.set()
    calls = []
    e.rawlink(calls.append)
    assert calls == []
    impl.sleep(0)
    assert calls == [e]


# ======================================================================================
# AsyncResult
# ======================================================================================

def test_asyncresult_set_get(impl):
    r = impl.AsyncResult()
    assert not r.ready() and not r.successful()
    assert r.value is None and r.exception is None
    g = impl.spawn(r.get)
    impl.sleep(0)
    r.set(42)
    run_all(impl, g)
    assert g.value == 42
    assert r.ready() and r.successful() and r.value == 42 and r.exception is None
    assert r.get() == 42 and r.get(block=False) == 42 and r.get_nowait() == 42
    assert r.wait() == 42 and r.wait(0) == 42


def test_asyncresult_set_without_value(impl):
    r = impl.AsyncResult()
    r.set()
    assert r.ready() and r.successful() and r.value is None and r.get() is None


def test_asyncresult_get_not_ready_raises_timeout(impl):
    r = impl.AsyncResult()
    with pytest.raises(impl.Timeout):
        r.get(block=False)
    with pytest.raises(impl.Timeout):
        r.get_nowait()
    with pytest.raises(impl.Timeout):
        r.get(timeout=SHORT)
    with pytest.raises(impl.Timeout):
        r.get(True, 0)


def test_asyncresult_wait_returns_value_or_none(impl):
    r = impl.AsyncResult()
    assert r.wait(SHORT) is None
    assert r.wait(0) is None
    g = impl.spawn(r.wait)
    impl.sleep(0)
    r.set("v")
    run_all(impl, g)
    assert g.value == "v"


def test_asyncresult_set_exception(impl):
    r = impl.AsyncResult()
    waiters = [impl.spawn(r.wait), impl.spawn(r.get)]
    impl.sleep(0)
    exc = Boom("bad")
    r.set_exception(exc)
    impl.joinall(waiters, timeout=LONG)
    assert r.ready() and not r.successful()
    assert r.exception is exc and r.value is None
    with pytest.raises(Boom) as info:
        r.get()
    assert info.value is exc
    assert waiters[0].successful() and waiters[0].value is None  # wait() does not raise
    assert waiters[1].exception is exc
    assert r.exc_info[1] is exc


def test_asyncresult_set_exception_with_exc_info(impl):
    r = impl.AsyncResult()
    try:
        raise Boom("tb")
    except Boom as exc:
        r.set_exception(exc, exc_info=sys.exc_info())
    with pytest.raises(Boom) as info:
        r.get()
    assert info.value.__traceback__ is not None
    assert r.exc_info[0] is Boom and r.exc_info[2] is not None


def test_asyncresult_rawlink_and_future_api(impl):
    r = impl.AsyncResult()
    calls = []
    r.rawlink(calls.append)
    assert not r.done() and not r.cancelled() and r.cancel() is False
    r.set_result(7)
    impl.sleep(0)
    assert calls == [r]
    assert r.done() and r.result() == 7 and r.result(0) == 7
    r2 = impl.AsyncResult()
    r2.set_exception(Boom())
    with pytest.raises(Boom):
        r2.result()


def test_asyncresult_waiters_woken_in_order(impl):
    r = impl.AsyncResult()
    got = []
    gs = [impl.spawn(lambda n=n: got.append((n, r.get()))) for n in range(3)]
    impl.sleep(0)
    r.set("x")
    run_all(impl, *gs)
    assert got == [(0, "x"), (1, "x"), (2, "x")]


# ======================================================================================
# Queues
# ======================================================================================

@pytest.mark.parametrize("kind, order", [
    ("Queue", [3, 1, 2]), ("SimpleQueue", [3, 1, 2]), ("JoinableQueue", [3, 1, 2]),
    ("LifoQueue", [2, 1, 3]), ("PriorityQueue", [1, 2, 3]),
])
def test_queue_order_and_sizes(impl, kind, order):
    q = getattr(impl, kind)()
    assert q.empty() and not q.full() and q.qsize() == 0 and len(q) == 0
    assert bool(q) is True
    for item in (3, 1, 2):
        q.put(item)
    assert q.qsize() == len(q) == 3 and not q.empty() and not q.full()
    assert q.peek() == order[0] and q.peek_nowait() == order[0] and q.qsize() == 3
    assert [q.get(), q.get_nowait(), q.get(block=False)] == order
    assert q.empty()


def test_queue_items_argument(impl):
    assert list(impl.PriorityQueue(items=[5, 1, 3]).queue) == [1, 5, 3]
    q = impl.Queue(items=[1, 2])
    assert q.qsize() == 2 and q.get() == 1


def test_queue_exceptions_are_the_stdlib_ones(impl):
    assert issubclass(impl.Empty, stdlib_queue.Empty)
    assert issubclass(impl.Full, stdlib_queue.Full)
    assert impl.Empty is stdlib_queue.Empty and impl.Full is stdlib_queue.Full
    if sys.version_info >= (3, 13):
        assert impl.ShutDown is stdlib_queue.ShutDown
    else:
        assert issubclass(impl.ShutDown, Exception)
    assert impl.JoinableQueue is impl.Queue
    assert issubclass(impl.LifoQueue, impl.Queue)
    assert issubclass(impl.PriorityQueue, impl.Queue)


def test_queue_maxsize_full_and_nonblocking(impl):
    q = impl.Queue(2)
    assert q.maxsize == 2
    q.put(1)
    q.put_nowait(2)
    assert q.full() and q.qsize() == 2
    with pytest.raises(impl.Full):
        q.put_nowait(3)
    with pytest.raises(impl.Full):
        q.put(3, block=False)
    with pytest.raises(impl.Full):
        q.put(3, timeout=SHORT)
    with pytest.raises(impl.Full):
        q.put(3, True, 0)
    assert [q.get(), q.get()] == [1, 2]
    with pytest.raises(impl.Empty):
        q.get_nowait()
    with pytest.raises(impl.Empty):
        q.get(block=False)
    with pytest.raises(impl.Empty):
        q.get(timeout=SHORT)
    with pytest.raises(impl.Empty):
        q.peek_nowait()
    with pytest.raises(impl.Empty):
        q.peek(timeout=SHORT)


def test_queue_unbounded_maxsize(impl):
    assert impl.Queue().maxsize is None
    assert impl.Queue(None).maxsize is None
    assert impl.Queue(-1).maxsize is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = impl.Queue(0)
    assert q.maxsize is None
    for i in range(100):
        q.put_nowait(i)
    assert not q.full()
    warned = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    # evloop.queue's docstring: 0 means unbounded as in the standard library and gevent,
    # "which warns on 0"; evloop does not warn (the stdlib does not either)
    assert len(warned) == (1 if impl.name == "gevent" else 0)


def test_queue_negative_timeout_is_valueerror(impl):
    q = impl.Queue(1)
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    q.put(1)
    q.get(block=False, timeout=-1)  # non-blocking ignores the timeout
    q.put(1)
    if impl.name == "evloop":
        # evloop.queue's docstring: a negative timeout on a blocking call raises
        # ValueError, as queue.Queue does
        with pytest.raises(ValueError):
            q.put(2, timeout=-1)
    else:
        # gevent checks only when there is room; on a full queue it waits no time
        with pytest.raises(impl.Full):
            q.put(2, timeout=-1)
    q = impl.Queue(1)
    with pytest.raises(ValueError):  # both, when there is room
        q.put(2, timeout=-1)


def test_queue_blocked_getters_served_in_order(impl):
    q = impl.Queue()
    got = []
    gs = [impl.spawn(lambda n=n: got.append((n, q.get()))) for n in range(3)]
    impl.sleep(0)
    for item in "abc":
        q.put(item)
    run_all(impl, *gs)
    assert got == [(0, "a"), (1, "b"), (2, "c")]


def test_queue_blocked_putters_served_in_order(impl):
    q = impl.Queue(1)
    q.put("first")
    gs = [impl.spawn(q.put, n) for n in range(3)]
    impl.sleep(0)
    assert q.qsize() == 1
    got = [q.get() for _ in range(4)]
    run_all(impl, *gs)
    assert got == ["first", 0, 1, 2]


def test_queue_blocking_calls_and_waiting_greenlets(impl):
    # evloop.queue's docstring ("Order"): a blocking get/put gets in line behind the
    # greenlets already waiting; gevent's takes what is there. Non-blocking: both take it.
    q = impl.Queue()
    g = impl.spawn(q.get)
    impl.sleep(0)
    q.put(1)
    if impl.name == "evloop":
        with pytest.raises(impl.Empty):
            q.get(timeout=SHORT)
        assert g.dead and g.value == 1
    else:
        assert q.get(timeout=SHORT) == 1
        impl.sleep(0)
        assert not g.dead
        g.kill()
    g = impl.spawn(q.get)
    impl.sleep(0)
    q.put(2)
    assert q.get_nowait() == 2  # both
    impl.sleep(0)
    assert not g.dead
    g.kill()

    q = impl.Queue(1)
    q.put(0)
    p = impl.spawn(q.put, 1)
    impl.sleep(0)
    assert q.get() == 0
    if impl.name == "evloop":
        with pytest.raises(impl.Full):
            q.put(2, timeout=SHORT)
        assert list(q.queue) == [1] and p.dead
    else:
        q.put(2, timeout=SHORT)
        impl.sleep(0)
        assert list(q.queue) == [2] and not p.dead
        p.kill()


def test_queue_raising_maxsize(impl):
    q = impl.Queue(1)
    q.put(1)
    p = impl.spawn(q.put, 2)
    impl.sleep(0)
    q.maxsize = 2
    assert q.maxsize == 2
    impl.sleep(0)
    impl.sleep(0)
    if impl.name == "evloop":
        # evloop.queue's docstring: raising maxsize lets waiting putters in at once
        assert p.dead and q.qsize() == 2
    else:
        # gevent's putter waits for the next get()
        assert not p.dead and q.qsize() == 1
        assert q.get() == 1
        run_all(impl, p)
        assert list(q.queue) == [2]


def test_queue_get_wakes_when_item_put_later(impl):
    q = impl.Queue()
    g = impl.spawn(q.get, timeout=LONG)
    impl.sleep(0)
    assert not g.ready()
    q.put("late")
    run_all(impl, g)
    assert g.value == "late"


def test_queue_peek_blocks_until_put_and_keeps_item(impl):
    q = impl.Queue()
    g = impl.spawn(q.peek)
    impl.sleep(0)
    q.put("p")
    run_all(impl, g)
    assert g.value == "p" and q.qsize() == 1 and q.get() == "p"


def test_queue_copy(impl):
    q = impl.Queue(3, items=[1, 2])
    c = q.copy()
    assert c is not q and type(c) is type(q)
    assert c.maxsize == 3 and list(c.queue) == [1, 2] and c.unfinished_tasks == 2
    c.get()
    assert q.qsize() == 2


def test_queue_called_from_the_hub_does_not_block(impl):
    # a loop callback runs in the hub, which cannot wait: Full / Empty instead
    q = impl.Queue(1)
    q.put(1)
    got = []

    def callback():
        for op in (lambda: q.put(2, timeout=LONG), lambda: q.get(), lambda: q.get()):
            try:
                got.append(op())
            except (impl.Full, impl.Empty) as exc:
                got.append(type(exc))

    impl.get_hub().loop.run_callback(callback)
    impl.sleep(0)
    impl.sleep(0)
    assert got == [impl.Full, 1, impl.Empty]


def test_queue_task_done_and_join(impl):
    q = impl.JoinableQueue()
    assert q.join(0) is True
    done = []
    for i in range(5):
        q.put(i)
    assert q.unfinished_tasks == 5
    assert q.join(SHORT) is False

    def worker():
        while True:
            item = q.get()
            impl.sleep(0)
            done.append(item)
            q.task_done()

    w = impl.spawn(worker)
    assert q.join(LONG) is True
    assert done == [0, 1, 2, 3, 4] and q.unfinished_tasks == 0
    w.kill()
    with pytest.raises(ValueError):
        q.task_done()


def test_queue_iteration_ends_at_stopiteration(impl):
    q = impl.Queue()
    for item in (1, 2, StopIteration):
        q.put(item)
    assert list(q) == [1, 2]
    q.put(3)
    q.put(StopIteration)
    it = iter(q)
    assert next(it) == 3
    with pytest.raises(StopIteration):
        next(it)


def test_queue_iteration_blocks_for_items(impl):
    q = impl.Queue()
    got = []
    g = impl.spawn(lambda: got.extend(q))
    for item in ("a", "b"):
        impl.sleep(0)
        q.put(item)
    q.put(StopIteration)
    run_all(impl, g)
    assert got == ["a", "b"]


@pytest.mark.parametrize("kind", ["Queue", "LifoQueue", "PriorityQueue"])
def test_queue_shutdown(impl, kind):
    q = getattr(impl, kind)()
    assert q.is_shutdown is False
    q.put(1)
    q.put(1)
    blocked = getattr(impl, kind)(1)
    blocked.put("x")
    putter = impl.spawn(blocked.put, "y")
    empty = getattr(impl, kind)()
    getters = [impl.spawn(empty.get), impl.spawn(empty.get, timeout=LONG),
               impl.spawn(empty.peek)]
    impl.sleep(0)
    q.shutdown()
    blocked.shutdown()
    empty.shutdown()
    assert q.is_shutdown is True
    with pytest.raises(impl.ShutDown):
        q.put(3)
    with pytest.raises(impl.ShutDown):
        q.put_nowait(3)
    assert q.get() == 1 and q.get_nowait() == 1  # what is in it can still be taken
    with pytest.raises(impl.ShutDown):
        q.get()
    with pytest.raises(impl.ShutDown):
        q.get_nowait()
    with pytest.raises(impl.ShutDown):
        q.peek(timeout=LONG)
    impl.joinall([putter] + getters, timeout=LONG)
    assert isinstance(putter.exception, impl.ShutDown)
    assert all(isinstance(g.exception, impl.ShutDown) for g in getters)
    assert blocked.qsize() == 1 and blocked.get() == "x"


def test_queue_shutdown_immediate_drains_and_finishes_tasks(impl):
    q = impl.Queue()
    for i in range(3):
        q.put(i)
    joiner = impl.spawn(q.join)
    impl.sleep(0)
    q.shutdown(immediate=True)
    assert q.qsize() == 0 and q.unfinished_tasks == 0
    with pytest.raises(impl.ShutDown):
        q.get()
    run_all(impl, joiner)
    assert joiner.value is True


# ======================================================================================
# Channel
# ======================================================================================

def test_channel_put_waits_for_getter(impl):
    ch = impl.Channel()
    log = []

    def putter():
        for item in ("a", "b"):
            ch.put(item)
            log.append(("put", item))

    p = impl.spawn(putter)
    impl.sleep(0)
    assert ch.balance == 1 and log == []
    log.append(("get", ch.get()))
    log.append(("get", ch.get()))
    run_all(impl, p)
    assert sorted(log) == [("get", "a"), ("get", "b"), ("put", "a"), ("put", "b")]
    assert log[0] == ("get", "a")
    assert ch.balance == 0 and ch.qsize() == 0
    assert ch.empty() and ch.full()


def test_channel_get_waits_for_putter(impl):
    ch = impl.Channel()
    getters = [impl.spawn(ch.get) for _ in range(2)]
    impl.sleep(0)
    assert ch.balance == -2
    ch.put(1)
    ch.put(2)
    run_all(impl, *getters)
    assert [g.value for g in getters] == [1, 2]


def test_channel_nonblocking_and_timeouts(impl):
    ch = impl.Channel()
    with pytest.raises(impl.Full):
        ch.put_nowait(1)
    with pytest.raises(impl.Full):
        ch.put(1, timeout=SHORT)
    with pytest.raises(impl.Empty):
        ch.get_nowait()
    with pytest.raises(impl.Empty):
        ch.get(timeout=SHORT)
    assert ch.balance == 0
    p = impl.spawn(ch.put, "x")
    impl.sleep(0)
    assert ch.get_nowait() == "x"
    run_all(impl, p)
    g = impl.spawn(ch.get)
    impl.sleep(0)
    ch.put_nowait("y")
    run_all(impl, g)
    assert g.value == "y"


def test_channel_iteration(impl):
    ch = impl.Channel()

    def producer():
        for item in (1, 2, StopIteration):
            ch.put(item)

    p = impl.spawn(producer)
    assert list(ch) == [1, 2]
    run_all(impl, p)


# ======================================================================================
# Semaphore, BoundedSemaphore, Lock, RLock
# ======================================================================================

def test_semaphore_acquire_release_counter(impl):
    s = impl.Semaphore(2)
    assert s.counter == 2 and not s.locked() and s.ready()
    assert s.acquire() is True
    assert s.acquire(blocking=True, timeout=LONG) is True
    assert s.counter == 0 and s.locked() and not s.ready()
    assert s.acquire(blocking=False) is False
    assert s.acquire(timeout=SHORT) is False
    assert s.acquire(True, 0) is False
    s.release()
    assert s.counter == 1 and not s.locked()
    s.release()
    s.release()  # a plain Semaphore may go above its initial value
    assert s.counter == 3


def test_semaphore_bad_value(impl):
    with pytest.raises(ValueError):
        impl.Semaphore(-1)
    assert impl.Semaphore(0).locked()


def test_bounded_semaphore_over_release(impl):
    s = impl.BoundedSemaphore(2)
    s.acquire()
    s.release()
    with pytest.raises(ValueError):
        s.release()
    assert s.counter == 2


def test_lock_release_unlocked_is_runtimeerror(impl):
    lock = impl.Lock()
    assert lock.acquire() is True and lock.locked()
    assert lock.acquire(False) is False
    assert lock.acquire(True, SHORT) is False
    lock.release()
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()
    with pytest.raises(ValueError):
        lock.acquire(False, 1)  # threading.Lock: no timeout on a non-blocking call


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore", "Lock", "RLock"])
def test_lock_context_manager(impl, kind):
    lock = getattr(impl, kind)()
    with lock as entered:
        assert lock.locked()
        assert entered in (True, None)  # what __enter__ returns is not part of it
    assert not lock.locked()
    with pytest.raises(Boom):
        with lock:
            raise Boom
    assert not lock.locked()


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore", "Lock"])
def test_semaphore_waiters_woken_in_order(impl, kind):
    s = getattr(impl, kind)()
    s.acquire()
    order = []

    def waiter(n):
        with s:
            order.append(n)
            impl.sleep(0)

    gs = [impl.spawn(waiter, n) for n in range(4)]
    impl.sleep(0)
    s.release()
    run_all(impl, *gs)
    assert order == [0, 1, 2, 3]
    assert not s.locked()


def test_semaphore_blocking_acquire_and_waiting_greenlets(impl):
    # evloop.lock's docstring: a blocking acquire() never overtakes greenlets already
    # waiting; gevent's takes a free permit. Non-blocking acquires take it in both.
    s = impl.Semaphore(0)
    g = impl.spawn(s.acquire)
    impl.sleep(0)
    s.release()
    if impl.name == "evloop":
        assert s.acquire(timeout=SHORT) is False
        assert g.dead and g.value is True
    else:
        assert s.acquire(timeout=SHORT) is True
        impl.sleep(0)
        assert not g.dead
        g.kill()
    g = impl.spawn(s.acquire)
    impl.sleep(0)
    s.release()
    assert s.acquire(blocking=False) is True  # both
    impl.sleep(0)
    assert not g.dead
    g.kill()


def test_semaphore_acquire_timeout_in_greenlet(impl):
    s = impl.Semaphore(0)
    gs = [impl.spawn(s.acquire, timeout=SHORT), impl.spawn(s.acquire, timeout=LONG)]
    impl.sleep(SHORT * 3)
    s.release()
    run_all(impl, *gs)
    assert [g.value for g in gs] == [False, True]
    assert s.counter == 0


def test_semaphore_wait_returns_counter(impl):
    s = impl.Semaphore(2)
    assert s.wait() == 2
    assert s.wait(0) == 2
    s.acquire()
    s.acquire()
    assert s.wait(SHORT) == 0
    g = impl.spawn(s.wait)
    impl.sleep(0)
    s.release()
    run_all(impl, g)
    assert g.value == 1 and s.counter == 1  # wait() takes no permit
    assert s.wait() == 1


def test_waiting_in_the_hub_raises_blockingswitchouterror(impl):
    got = []

    def callback():
        for block in (impl.Event().wait, impl.Semaphore(0).acquire,
                      lambda: impl.sleep(SHORT)):
            try:
                block()
            except impl.BlockingSwitchOutError:
                got.append(True)

    impl.get_hub().loop.run_callback(callback)
    impl.sleep(0)
    impl.sleep(0)
    assert got == [True, True, True]
    assert issubclass(impl.BlockingSwitchOutError, AssertionError)


def test_semaphore_rawlink(impl):
    s = impl.Semaphore(0)
    calls = []
    s.rawlink(calls.append)
    impl.sleep(0)
    assert calls == []
    s.release()
    impl.sleep(0)
    assert calls == [s]
    s.unlink(calls.append)


def test_rlock_is_reentrant_and_owned(impl, reported):
    lock = impl.RLock()
    assert lock.acquire() and lock.acquire()
    assert lock.locked()
    other = impl.spawn(lock.acquire, blocking=False)
    run_all(impl, other)
    assert other.value is False
    with pytest.raises(RuntimeError):
        run_all(impl, impl.spawn(lock.release))
    lock.release()
    assert lock.locked()
    lock.release()
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()


def test_rlock_waiter_gets_it_after_full_release(impl):
    lock = impl.RLock()
    lock.acquire()
    lock.acquire()
    log = []

    def other():
        with lock:
            log.append("other")

    g = impl.spawn(other)
    impl.sleep(0)
    lock.release()
    impl.sleep(0)
    assert log == []
    lock.release()
    run_all(impl, g)
    assert log == ["other"]


# ======================================================================================
# Group and Pool
# ======================================================================================

def test_group_spawn_join_and_membership(impl):
    group = impl.Group()
    gs = [group.spawn(impl.sleep, 0) for _ in range(3)]
    assert len(group) == 3 and all(g in group for g in gs)
    assert group.join(timeout=LONG) is True
    assert len(group) == 0 and all(g.dead for g in gs)
    assert not group.full()


def test_group_add_discard(impl):
    group = impl.Group()
    g = impl.spawn(impl.sleep, LONG)
    group.add(g)
    assert g in group
    group.discard(g)
    assert g not in group and len(group) == 0
    group.add(g)
    group.kill()
    assert g.dead and len(group) == 0


def test_group_join_timeout_and_kill(impl):
    group = impl.Group()
    gs = [group.spawn(impl.sleep, LONG) for _ in range(2)]
    assert group.join(timeout=SHORT) is False
    assert len(group) == 2
    group.kill(timeout=LONG)
    assert len(group) == 0
    assert all(g.dead and isinstance(g.value, impl.GreenletExit) for g in gs)


def test_group_join_raise_error(impl, reported):
    group = impl.Group()

    def fail():
        raise Boom("x")

    group.spawn(fail)
    with pytest.raises(Boom):
        group.join(timeout=LONG, raise_error=True)


def test_group_killone(impl):
    group = impl.Group()
    a = group.spawn(impl.sleep, LONG)
    b = group.spawn(impl.sleep, LONG)
    group.killone(a)
    assert a.dead and b in group
    impl.sleep(0)  # the group forgets a finished greenlet from the hub
    assert a not in group and len(group) == 1
    group.kill()


def test_pool_size_limits_free_count_and_full(impl):
    pool = impl.Pool(2)
    assert pool.size == 2 and pool.free_count() == 2 and not pool.full()
    e = impl.Event()
    a = pool.spawn(e.wait)
    assert pool.free_count() == 1
    b = pool.spawn(e.wait)
    assert pool.free_count() == 0 and pool.full()
    log = []
    third = impl.spawn(lambda: log.append(pool.spawn(log.append, "ran")))
    impl.sleep(0)
    assert log == [] and len(pool) == 2  # the third spawn waits for a slot
    e.set()
    run_all(impl, third)
    assert pool.join(timeout=LONG) is True
    assert log[1] == "ran" and log[0].dead and a.dead and b.dead
    assert pool.free_count() == 2


def test_pool_wait_available(impl):
    pool = impl.Pool(1)
    assert pool.wait_available() == 1
    e = impl.Event()
    pool.spawn(e.wait)
    assert pool.wait_available(timeout=SHORT) == 0
    waiter = impl.spawn(pool.wait_available)
    impl.sleep(0)
    e.set()
    run_all(impl, waiter)
    assert waiter.value == 1 and pool.free_count() == 1


def test_pool_add_when_full(impl):
    pool = impl.Pool(1)
    pool.spawn(impl.sleep, LONG)
    g = impl.Greenlet(impl.sleep, 0)
    with pytest.raises(impl.PoolFull):
        pool.add(g, blocking=False)
    with pytest.raises(impl.PoolFull):
        pool.add(g, timeout=SHORT)
    assert issubclass(impl.PoolFull, stdlib_queue.Full)
    pool.kill()
    assert pool.free_count() == 1
    g.kill()


def test_pool_bad_size(impl):
    with pytest.raises(ValueError):
        impl.Pool(-1)
    empty = impl.Pool(0)
    assert empty.free_count() == 0 and empty.full()
    with pytest.raises(impl.PoolFull):
        empty.add(impl.Greenlet(impl.sleep, 0), blocking=False)
    assert impl.Pool().size is None and impl.Pool(None).free_count() >= 1


def _staggered(impl, n, items):
    """f(x) finishes after ``items - x`` trips through the hub: later items first."""
    def f(x):
        for _ in range(items - x):
            impl.sleep(0)
        return x * 10
    return f


@pytest.mark.parametrize("kind", ["Group", "Pool"])
def test_map_imap_keep_order(impl, kind):
    pool = getattr(impl, kind)()
    f = _staggered(impl, 0, 6)
    assert pool.map(f, range(6)) == [0, 10, 20, 30, 40, 50]
    assert list(pool.imap(f, range(6))) == [0, 10, 20, 30, 40, 50]
    assert list(pool.imap(lambda a, b: a + b, [1, 2], [10, 20])) == [11, 22]
    assert pool.map(f, []) == []


@pytest.mark.parametrize("kind", ["Group", "Pool"])
def test_imap_unordered_yields_in_completion_order(impl, kind):
    pool = getattr(impl, kind)()
    f = _staggered(impl, 0, 6)
    assert list(pool.imap_unordered(f, range(6))) == [50, 40, 30, 20, 10, 0]


def test_pool_imap_with_size_limit(impl):
    pool = impl.Pool(2)
    running = []
    peak = []

    def f(x):
        running.append(x)
        peak.append(len(running))
        impl.sleep(0)
        running.remove(x)
        return x

    assert list(pool.imap(f, range(8))) == list(range(8))
    assert max(peak) == 2
    assert list(pool.imap(f, range(8), maxsize=1)) == list(range(8))


def test_imap_raises_the_functions_exception(impl, reported):
    pool = impl.Pool(3)

    def f(x):
        if x == 2:
            raise Boom(x)
        return x

    it = pool.imap(f, range(5))
    assert next(it) == 0 and next(it) == 1
    with pytest.raises(Boom):
        next(it)
    pool.kill()


def test_pool_slot_freed_by_a_failing_greenlet(impl, reported):
    pool = impl.Pool(1)

    def fail():
        raise Boom

    g = pool.spawn(fail)
    pool.join(timeout=LONG)
    assert isinstance(g.exception, Boom) and pool.free_count() == 1 and len(pool) == 0
    with pytest.raises(ZeroDivisionError):
        pool.map(lambda x: 1 / x, [1, 0])
    pool.join(timeout=LONG)
    assert pool.free_count() == 1


def test_pool_apply_from_inside_a_full_pool_runs_directly(impl):
    pool = impl.Pool(1)
    g = pool.spawn(lambda: pool.apply(lambda: impl.getcurrent()))
    assert g.get(timeout=LONG) is g  # no deadlock: run in the calling greenlet


def test_apply_family(impl):
    pool = impl.Pool(2)
    assert pool.apply(pow, (2, 5)) == 32
    assert pool.apply(dict, (), {"a": 1}) == {"a": 1}
    got = []
    g = pool.apply_async(pow, (3, 2), callback=got.append)
    assert isinstance(g, impl.Greenlet)
    assert g.get(timeout=LONG) == 9
    pool.join(timeout=LONG)
    impl.sleep(0)
    assert got == [9]
    m = pool.map_async(abs, [-1, -2])
    assert m.get(timeout=LONG) == [1, 2]
    got = []
    pool.map_cb(abs, [-3], callback=got.append)
    pool.join(timeout=LONG)
    impl.sleep(0)
    assert got == [[3]]


# ======================================================================================
# Timeout
# ======================================================================================

def test_timeout_type(impl):
    assert issubclass(impl.Timeout, BaseException)
    assert not issubclass(impl.Timeout, Exception)
    t = impl.Timeout(1.5)
    assert t.seconds == 1.5 and not t.pending
    t.cancel()  # not started: nothing


def test_timeout_context_manager_raises_itself(impl):
    with pytest.raises(impl.Timeout) as info:
        with impl.Timeout(SHORT) as t:
            impl.sleep(LONG)
    assert info.value is t
    assert not t.pending


def test_timeout_false_swallows(impl):
    reached = []
    with impl.Timeout(SHORT, False):
        impl.sleep(LONG)
        reached.append("no")
    assert reached == []


def test_timeout_exception_class_and_instance(impl):
    with pytest.raises(Boom):
        with impl.Timeout(SHORT, Boom):
            impl.sleep(LONG)
    exc = Boom("mine")
    with pytest.raises(Boom) as info:
        with impl.Timeout(SHORT, exc):
            impl.sleep(LONG)
    assert info.value is exc


def test_timeout_subclass_raises_exact_type(impl):
    class MyTimeout(impl.Timeout):
        pass

    with pytest.raises(MyTimeout) as info:
        with MyTimeout(SHORT):
            impl.sleep(LONG)
    assert type(info.value) is MyTimeout


def test_timeout_none_never_fires(impl):
    with impl.Timeout(None) as t:
        assert not t.pending
        impl.sleep(SHORT)
    t = impl.Timeout(None)
    t.start()
    assert not t.pending
    t.cancel()


def test_timeout_start_new_false_still_raises_it(impl):
    # exception=False is for the with statement; started by hand, it raises itself
    t = impl.Timeout.start_new(SHORT, False)
    with pytest.raises(impl.Timeout) as info:
        impl.sleep(LONG)
    assert info.value is t and not t.pending


def test_timeout_start_cancel(impl):
    t = impl.Timeout(SHORT)
    t.start()
    assert t.pending
    t.cancel()
    assert not t.pending
    impl.sleep(SHORT * 2)  # a cancelled Timeout never fires


def test_timeout_start_new(impl):
    t = impl.Timeout.start_new(SHORT)
    assert isinstance(t, impl.Timeout) and t.pending
    with pytest.raises(impl.Timeout) as info:
        impl.sleep(LONG)
    assert info.value is t and not t.pending
    t2 = impl.Timeout.start_new(LONG, Boom)
    t2.cancel()
    assert not t2.pending
    t3 = impl.Timeout.start_new(t2)  # a Timeout instance is started as it is
    assert t3 is t2 and t2.pending
    t2.cancel()


def test_timeout_fires_during_any_wait(impl):
    e = impl.Event()
    q = impl.Queue()
    for block in (e.wait, q.get, impl.Semaphore(0).acquire):
        with pytest.raises(impl.Timeout):
            with impl.Timeout(SHORT):
                block()
    q.put("x")  # the timed-out getter left the line: nobody else takes it
    assert q.get_nowait() == "x"


def test_timeout_nested_outer_fires(impl):
    with pytest.raises(impl.Timeout) as info:
        with impl.Timeout(SHORT) as outer:
            with impl.Timeout(LONG) as inner:
                impl.sleep(LONG)
    assert info.value is outer
    assert not inner.pending and not outer.pending


def test_timeout_nested_inner_fires(impl):
    caught = []
    with impl.Timeout(LONG) as outer:
        try:
            with impl.Timeout(SHORT) as inner:
                impl.sleep(LONG)
        except impl.Timeout as exc:
            caught.append(exc)
        assert outer.pending
    assert caught == [inner]


def test_timeout_restarted_after_it_fired(impl):
    # docs/gevent.md ("Differences from gevent's libev loops"): a restarted timer waits
    # its full time on evloop; gevent's libev loops resume libev's leftover time, so a
    # Timeout started again after it fired fires at once (gevent issue #1890)
    import time

    seconds = 0.3
    t = impl.Timeout(seconds)
    t.start()
    with pytest.raises(impl.Timeout):
        impl.sleep(LONG)
    t0 = time.monotonic()
    t.start()
    with pytest.raises(impl.Timeout):
        impl.sleep(LONG)
    elapsed = time.monotonic() - t0
    if impl.name == "evloop":
        assert elapsed >= seconds * 0.9
    else:
        assert elapsed < seconds / 2
    assert not t.pending


def test_timeout_str(impl):
    assert str(impl.Timeout(1)) == "1 second"
    assert str(impl.Timeout(2)) == "2 seconds"
    assert str(impl.Timeout(0.5)) == "0.5 seconds"
    assert str(impl.Timeout(None)) == ""
    assert str(impl.Timeout()) == ""
    assert str(impl.Timeout(1, False)) == "1 second (silent)"
    assert str(impl.Timeout(1, "custom")) == "1 second: custom"


def test_with_timeout(impl):
    with pytest.raises(impl.Timeout):
        impl.with_timeout(SHORT, impl.sleep, LONG)
    assert impl.with_timeout(SHORT, impl.sleep, LONG, timeout_value="tv") == "tv"
    assert impl.with_timeout(LONG, pow, 2, 3) == 8
    assert impl.with_timeout(SHORT, impl.sleep, LONG, timeout_value=None) is None


# ======================================================================================
# Greenlet
# ======================================================================================

def test_greenlet_value_and_state(impl):
    g = impl.spawn(lambda a, b=0: a + b, 1, b=2)
    assert isinstance(g, impl.Greenlet) and isinstance(g, greenlet.greenlet)
    assert not g.ready() and not g.dead and g.started and g.value is None
    assert g.args == (1,) and g.kwargs == {"b": 2}
    assert g.join() is None
    assert g.ready() and g.dead and g.successful() and g.value == 3
    assert g.exception is None and g.get() == 3
    assert g.args == () and g.kwargs == {}  # dropped once it ran


def test_spawn_order_and_round_robin(impl):
    log = []
    gs = [impl.spawn(log.append, n) for n in range(3)]
    log.append("spawned")
    impl.sleep(0)
    log.append("main")
    assert log == ["spawned", 0, 1, 2, "main"]
    assert all(g.dead for g in gs)

    log = []

    def worker(name):
        for i in range(3):
            log.append(f"{name}{i}")
            impl.sleep(0)

    a, b = impl.spawn(worker, "a"), impl.spawn(worker, "b")
    run_all(impl, a, b)
    assert log == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_greenlet_bool_and_states(impl):
    g = impl.spawn(impl.sleep, 0)
    assert bool(g) and g.started and not g.ready()
    impl.sleep(0)
    assert bool(g) and g.started and not g.ready()  # running: in its sleep
    g.join()
    assert not bool(g) and not g.started and g.ready()
    with pytest.raises(TypeError):
        impl.spawn(42)


def test_greenlet_not_started(impl):
    g = impl.Greenlet(lambda: "ran")
    assert not g.started and not g.ready() and not g.dead and not g
    g.start()
    assert g.started and not g.dead
    assert g.get(timeout=LONG) == "ran"
    assert not g.started  # "started" means scheduled or running, not finished
    g2 = impl.Greenlet.spawn(pow, 2, 2)
    assert g2.get() == 4


def test_greenlet_exception(impl, reported):
    def fail():
        raise Boom("oops")

    g = impl.spawn(fail)
    g.join()
    assert g.dead and g.ready() and not g.successful()
    assert isinstance(g.exception, Boom) and g.value is None
    with pytest.raises(Boom):
        g.get()
    assert g.exc_info[0] is Boom
    assert "Boom" in reported.getvalue()  # the hub reported it


def test_greenlet_get_timeout_and_block(impl):
    g = impl.spawn(impl.sleep, LONG)
    with pytest.raises(impl.Timeout):
        g.get(timeout=SHORT)
    with pytest.raises(impl.Timeout):
        g.get(block=False)
    g.join(timeout=SHORT)
    assert not g.dead
    g.kill()


def test_greenlet_kill_default_is_greenletexit_success(impl):
    g = impl.spawn(impl.sleep, LONG)
    impl.sleep(0)
    g.kill()
    assert g.dead and g.ready() and g.successful()
    assert isinstance(g.value, impl.GreenletExit) and g.exception is None
    assert isinstance(g.get(), impl.GreenletExit)


def test_greenlet_kill_with_exception(impl, reported):
    g = impl.spawn(impl.sleep, LONG)
    impl.sleep(0)
    g.kill(Boom)
    assert g.dead and not g.successful() and isinstance(g.exception, Boom)
    exc = Boom("instance")
    g2 = impl.spawn(impl.sleep, LONG)
    impl.sleep(0)
    g2.kill(exc)
    assert g2.exception is exc
    with pytest.raises(Boom):
        g2.get()


def test_greenlet_kill_nonblocking(impl):
    g = impl.spawn(impl.sleep, LONG)
    impl.sleep(0)
    g.kill(block=False)
    assert not g.dead
    g.join(LONG)
    assert g.dead and isinstance(g.value, impl.GreenletExit)


def test_greenlet_kill_before_start(impl):
    ran = []
    g = impl.spawn(ran.append, 1)
    g.kill()
    assert g.dead and ran == []
    assert isinstance(g.value, impl.GreenletExit) and g.successful()
    impl.sleep(0)
    assert ran == []


def test_greenlet_kill_caught_greenletexit_keeps_return_value(impl):
    def stubborn():
        try:
            impl.sleep(LONG)
        except impl.GreenletExit:
            return "cleaned up"

    g = impl.spawn(stubborn)
    impl.sleep(0)
    g.kill()
    assert g.dead and g.successful() and g.value == "cleaned up"


def test_greenlet_kill_timeout_survivor(impl):
    def survivor():
        while True:
            try:
                impl.sleep(LONG)
            except impl.GreenletExit:
                pass

    g = impl.spawn(survivor)
    impl.sleep(0)
    g.kill(timeout=SHORT)
    assert not g.dead
    g.kill(Boom, block=False)
    impl.sleep(0)
    assert g.dead and isinstance(g.exception, Boom)


def test_greenlet_kills_itself(impl):
    def selfkill():
        impl.getcurrent().kill()
        return "not reached"

    g = impl.spawn(selfkill)
    g.join()
    assert g.successful() and isinstance(g.value, impl.GreenletExit)


def test_greenlet_links_and_joiners_in_registration_order(impl):
    log = []
    g = impl.spawn(impl.sleep, 0)
    g.rawlink(lambda _: log.append("rawlink"))
    j = impl.spawn(lambda: (g.join(), log.append("joiner")))
    impl.sleep(0)
    g.link(lambda _: log.append("link"))
    run_all(impl, g, j)
    impl.sleep(0)
    assert log == ["rawlink", "joiner", "link"]


def test_greenlet_links(impl, reported):
    calls = []
    ok = impl.spawn(lambda: 1)
    ok.link(lambda g: calls.append(("link", g.value)))
    ok.link_value(lambda g: calls.append(("value", g.value)))
    ok.link_exception(lambda g: calls.append(("exception", g.value)))
    ok.join()
    impl.sleep(0)
    assert calls == [("link", 1), ("value", 1)]

    calls.clear()

    def fail():
        raise Boom

    bad = impl.spawn(fail)
    bad.link(lambda g: calls.append(("link", type(g.exception))))
    bad.link_value(lambda g: calls.append(("value", None)))
    bad.link_exception(lambda g: calls.append(("exception", type(g.exception))))
    bad.join()
    impl.sleep(0)
    assert calls == [("link", Boom), ("exception", Boom)]


def test_greenlet_link_after_finish_and_unlink(impl):
    g = impl.spawn(lambda: "v")
    g.join()
    calls = []
    g.link(calls.append)
    assert calls == []
    impl.sleep(0)
    assert calls == [g]
    h = impl.spawn(lambda: "w")
    h.link(calls.append)
    assert h.has_links()
    h.unlink(calls.append)
    assert not h.has_links()
    h.join()
    impl.sleep(0)
    assert calls == [g]


def test_greenlet_link_to_a_greenlet(impl):
    got = []

    def receiver():
        got.append(impl.get_hub().switch())

    r = impl.spawn(receiver)
    impl.sleep(0)
    g = impl.spawn(lambda: "done")
    if impl.name == "evloop":
        # Greenlet.link's docstring: "callback may also be a greenlet, which is switched
        # to with this greenlet as the value" (older gevent's behaviour)
        g.link(r)
        r.join(LONG)
        assert got == [g]
    else:
        # gevent 26.9 takes callables only
        with pytest.raises(TypeError):
            g.link(r)
        g.join()
        r.kill()
        assert got == []


def test_joinall(impl):
    gs = [impl.spawn(lambda n=n: n) for n in range(3)]
    done = impl.joinall(gs)
    assert done == gs and [g.value for g in gs] == [0, 1, 2]
    slow = impl.spawn(impl.sleep, LONG)
    fast = impl.spawn(impl.sleep, 0)
    assert impl.joinall([slow, fast], timeout=SHORT) == [fast]
    assert impl.joinall([slow, fast], count=1) == [fast]
    slow.kill()


def test_joinall_raise_error(impl, reported):
    def fail():
        raise Boom

    gs = [impl.spawn(fail), impl.spawn(impl.sleep, LONG)]
    with pytest.raises(Boom):
        impl.joinall(gs, raise_error=True)
    assert gs[0].dead and not gs[1].dead
    gs[1].kill()


def test_killall(impl, reported):
    gs = [impl.spawn(impl.sleep, LONG) for _ in range(3)]
    impl.sleep(0)
    impl.killall(gs)
    assert all(g.dead and isinstance(g.value, impl.GreenletExit) for g in gs)
    gs = [impl.spawn(impl.sleep, LONG) for _ in range(2)]
    impl.sleep(0)
    impl.killall(gs, Boom, block=False)
    assert not any(g.dead for g in gs)
    impl.joinall(gs, timeout=LONG)
    assert all(isinstance(g.exception, Boom) for g in gs)


def test_kill_function(impl):
    g = impl.spawn(impl.sleep, LONG)
    impl.sleep(0)
    impl.kill(g)  # gevent.kill(): asynchronous
    assert not g.dead
    g.join(LONG)
    assert g.dead and isinstance(g.value, impl.GreenletExit)


def test_spawn_later(impl):
    log = []
    a = impl.spawn_later(SHORT * 2, log.append, "later")
    b = impl.spawn_later(0, log.append, "soon")
    c = impl.Greenlet.spawn_later(SHORT, log.append, "middle")
    assert a.started and not a.dead
    run_all(impl, a, b, c)
    assert log == ["soon", "middle", "later"]
    d = impl.spawn_later(LONG, log.append, "never")
    d.kill()
    assert d.dead and log == ["soon", "middle", "later"]


def test_wait_and_iwait_order(impl):
    gs = [impl.spawn(_staggered(impl, 0, 3), n) for n in range(3)]
    assert list(impl.iwait(gs)) == [gs[2], gs[1], gs[0]]
    more = [impl.spawn(impl.sleep, 0), impl.spawn(impl.sleep, LONG)]
    assert impl.wait(more, timeout=SHORT) == [more[0]]
    assert impl.wait(more, count=1) == [more[0]]
    more[1].kill()
    e = impl.Event()
    impl.spawn_later(0, e.set)
    assert impl.wait([e]) == [e]


def test_greenlet_subclass_run(impl):
    class Job(impl.Greenlet):
        def __init__(self, n):
            impl.Greenlet.__init__(self)
            self.n = n

        def _run(self):
            return self.n * 2

    job = Job(21)
    job.start()
    assert job.get(timeout=LONG) == 42


def test_exception_types(impl):
    assert impl.GreenletExit is greenlet.GreenletExit
    assert issubclass(impl.GreenletExit, BaseException)
    assert not issubclass(impl.GreenletExit, Exception)
    assert issubclass(impl.LoopExit, Exception)
    assert impl.getcurrent() is greenlet.getcurrent()


def test_blocking_forever_raises_loopexit(impl):
    with pytest.raises(impl.LoopExit):
        impl.Event().wait()
    with pytest.raises(impl.LoopExit):
        impl.Queue().get()
