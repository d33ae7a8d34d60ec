"""evloop.threadpool: run blocking functions in real OS threads, wait for them cooperatively.

Why it exists: some work cannot be made cooperative — a C library call, ``getaddrinfo``,
CPU-bound code that releases the GIL. ``ThreadPool.spawn(func)`` runs it in a worker
thread and returns an ``AsyncResult`` whose ``get()`` blocks only the calling greenlet:
the hub keeps running the others. The worker hands the outcome back to the hub of the
thread that called ``spawn`` with ``loop.run_callback_threadsafe`` (which wakes the loop
from its poll), and while a task is outstanding that hub's loop is kept alive by a
referenced (never sent) ``async_`` watcher, so a greenlet waiting for a thread never gets
LoopExit. ``ThreadPoolExecutor`` offers the same pool as a ``concurrent.futures``
executor whose futures greenlets can wait on.

What it must not do: block the hub, use monkey-patched primitives, or lose a result.
Workers are real threads started with the ``_thread`` functions captured when this module
is imported (or the originals kept by ``evloop.monkey``), and they never touch a hub or a
loop except through ``run_callback_threadsafe``/``async_.send``. Every task's result is
delivered exactly once: its value or exception, ``CancelledError`` if ``kill()`` dropped
it before it started, ``BrokenThreadPool`` if a thread initializer failed, or
``RuntimeError`` in the child of a ``fork()`` for a task the parent's threads had.

Differences from gevent: ``spawn`` never blocks (tasks queue when all ``maxsize`` threads
are busy); threads start on demand and an idle thread above ``size`` exits after
``idle_timeout`` seconds.
"""
import os
import sys
import weakref
from collections import deque
from concurrent import futures as _cf
from concurrent.futures.thread import BrokenThreadPool
from typing import (Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Set,
                    Tuple)

from greenlet import getcurrent

from evloop._originals import get_original
from evloop._waiters import ThreadLot
from evloop.event import AsyncResult
from evloop.hub import (Waiter, _get_hub_if_exists, _main_thread_ident, _own_thread_state,
                        get_hub)

__all__ = ["ThreadPool", "ThreadPoolExecutor", "BrokenThreadPool", "CancelledError"]

CancelledError = _cf.CancelledError


# The natives, as they were before monkey-patching (this module is imported before patching
# replaces anything, and its workers must stay real threads).
_start_new_thread = get_original("_thread", "start_new_thread")
_allocate_lock = get_original("_thread", "allocate_lock")
_get_ident = get_original("_thread", "get_ident")

#: seconds an idle worker above ``size`` waits for work before its thread exits
DEFAULT_IDLE_TIMEOUT = 5.0


# -- keeping a waiting hub's loop alive ---------------------------------------------------

def _noop() -> None:  # pragma: no cover - the keep-alive watcher is never sent
    pass


class _KeepAlive:
    """A referenced ``async_`` watcher on one hub's loop, active while that hub has thread
    tasks outstanding. Touched only from the hub's own thread."""

    __slots__ = ("loop", "watcher", "count", "__weakref__")

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.watcher = loop.async_()
        self.count = 0

    def acquire(self) -> None:
        self.count += 1
        if self.count == 1:
            self.watcher.start(_noop)

    def release(self) -> None:
        self.count -= 1
        if self.count <= 0:
            self.count = 0
            self.watcher.stop()


_keepalives: "weakref.WeakKeyDictionary[Any, _KeepAlive]" = weakref.WeakKeyDictionary()


def _keepalive_for(hub: Any) -> Optional[_KeepAlive]:
    loop = hub.loop
    if loop is None or loop.destroyed:
        return None
    keep = _keepalives.get(hub)
    if keep is None or keep.loop is not loop:
        keep = _keepalives[hub] = _KeepAlive(loop)
    return keep


# -- tasks ---------------------------------------------------------------------------------

def _deliver(task: "_SpawnTask", ok: bool, outcome: Any) -> None:
    """In the hub that spawned the task: store the outcome, then let the loop go."""
    keep = task.keep
    task.keep = None
    try:
        if ok:
            task.result.set(outcome)
        else:
            task.result.set_exception(outcome[1], outcome)
    finally:
        if keep is not None:
            keep.release()


class _SpawnTask:
    """``ThreadPool.spawn``: run in a worker, deliver to an AsyncResult in the hub."""

    __slots__ = ("func", "args", "kwargs", "result", "keep")

    def __init__(self, func: Callable[..., Any], args: tuple, kwargs: dict,
                 result: AsyncResult, keep: Optional[_KeepAlive]) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.result = result
        self.keep = keep

    def run(self) -> None:
        func, args, kwargs = self.func, self.args, self.kwargs
        self.func = self.args = self.kwargs = None
        try:
            value = func(*args, **kwargs)
        except BaseException:  # noqa: BLE001 - handed to the waiting greenlet
            self.finish(False, sys.exc_info())
        else:
            self.finish(True, value)

    def abandon(self, exc: BaseException) -> None:
        self.func = self.args = self.kwargs = None
        self.finish(False, (type(exc), exc, None))

    def finish(self, ok: bool, outcome: Any) -> None:
        keep = self.keep
        if keep is not None:
            try:
                keep.loop.run_callback_threadsafe(_deliver, self, ok, outcome)
                return
            except Exception:  # noqa: BLE001 - the hub's loop is gone: nobody to keep alive
                self.keep = None
        if ok:
            self.result.set(outcome)
        else:
            self.result.set_exception(outcome[1], outcome)


class _Condition:
    """The part of ``threading.Condition`` that ``concurrent.futures`` uses, built on the
    original ``_thread`` lock so that it works between real threads after monkey-patching;
    its waiting threads park in the lot's ``ThreadLot``."""

    __slots__ = ("_lock", "_waiters", "acquire", "release")

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self._waiters = ThreadLot()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._waiters.park(self._lock.release, self._lock.acquire, timeout)

    def wait_for(self, predicate: Callable[[], Any], timeout: Optional[float] = None) -> Any:
        result = predicate()
        while not result:
            self.wait(timeout)
            result = predicate()
            if timeout is not None:
                break
        return result

    def notify(self, n: int = 1) -> None:
        self._waiters.unpark(n)

    def notify_all(self) -> None:
        self._waiters.unpark(len(self._waiters))

    notifyAll = notify_all


def _cooperative() -> Any:
    """The current thread's hub when the caller may wait cooperatively (a greenlet other
    than the hub, in a thread whose hub is alive), else None."""
    hub = _get_hub_if_exists()
    if hub is None or hub.loop is None or getcurrent() is hub:
        return None
    return hub


def _wait_notified(subscribe: Callable[[Callable[[], None]], None],
                   timeout: Optional[float]) -> bool:
    """Block until the ``notify`` callable passed to ``subscribe(notify)`` is called (from
    any thread, possibly at once inside ``subscribe``); False if ``timeout`` passed first.
    In a greenlet this blocks only the greenlet; elsewhere (a plain thread, the hub) it
    blocks the thread."""
    hub = _cooperative()
    if hub is None:
        lock = _allocate_lock()
        lock.acquire()

        def notify_thread() -> None:
            try:
                lock.release()
            except RuntimeError:  # already released: notified twice
                pass

        subscribe(notify_thread)
        if timeout is None:
            return lock.acquire()
        return lock.acquire(True, max(0.0, timeout))

    loop = hub.loop
    waiter = Waiter(hub)
    watcher = loop.async_()
    watcher.start(waiter.switch, True)
    timer = None
    if timeout is not None:
        timer = loop.timer(max(0.0, timeout))
        timer.start(waiter.switch, False, update=True)

    def notify() -> None:
        try:
            watcher.send()
        except Exception:  # noqa: BLE001 - the loop was destroyed meanwhile
            pass

    try:
        subscribe(notify)
        return bool(waiter.get())
    finally:
        watcher.close()
        if timer is not None:
            timer.close()


def _release_later(keep: Optional[_KeepAlive]) -> None:
    """From any thread: give back a keep-alive reference in its hub's thread."""
    if keep is not None:
        try:
            keep.loop.run_callback_threadsafe(keep.release)
        except Exception:  # noqa: BLE001 - the loop is gone
            pass


class _FutureTask:
    """``ThreadPoolExecutor.submit``: run in a worker, complete a concurrent Future. While
    it is outstanding it keeps the submitting thread's loop alive (if that thread has a
    hub), so greenlets waiting through any means (``result()``, ``concurrent.futures.wait``
    on monkey-patched events) never get LoopExit."""

    __slots__ = ("func", "args", "kwargs", "future", "keep")

    def __init__(self, func: Callable[..., Any], args: tuple, kwargs: dict,
                 future: "_cf.Future", keep: Optional[_KeepAlive]) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.future = future
        self.keep = keep

    def run(self) -> None:
        func, args, kwargs = self.func, self.args, self.kwargs
        self.func = self.args = self.kwargs = None
        try:
            if not self.future.set_running_or_notify_cancel():
                return
            try:
                value = func(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - stored in the future
                self.future.set_exception(exc)
                del exc
            else:
                self.future.set_result(value)
        finally:
            keep, self.keep = self.keep, None
            _release_later(keep)

    def abandon(self, exc: BaseException) -> None:
        self.func = self.args = self.kwargs = None
        future = self.future
        future._condition = _Condition()  # after fork the old one may be held forever
        try:
            if isinstance(exc, CancelledError) and future.cancel():
                future.set_running_or_notify_cancel()
                return
            try:
                future.set_exception(exc)
            except _cf.InvalidStateError:
                pass
        finally:
            keep, self.keep = self.keep, None
            _release_later(keep)


class _Idle:
    """An idle worker: it sleeps on ``lock`` until released (``reason`` says why)."""

    __slots__ = ("lock", "reason")

    def __init__(self) -> None:
        self.lock = _allocate_lock()
        self.lock.acquire()
        self.reason = None


_TASK = "task"
_CHECK = "check"   # re-evaluate: maybe exit (shrink, kill)

_pools: "weakref.WeakSet[ThreadPool]" = weakref.WeakSet()


def _check_maxsize(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"maxsize must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"maxsize must be >= 1, not {value}")
    return value


class ThreadPool:
    """A pool of at most ``maxsize`` worker threads, started on demand.

    ``spawn(func, *args, **kwargs)`` queues the call and returns an ``AsyncResult``:
    ``get()`` waits for it cooperatively and returns its value or re-raises its exception
    (with the worker's traceback). Tasks run in FIFO order. ``size`` is the number of
    worker threads alive; setting it starts threads now and keeps that many even when
    idle (others exit after ``idle_timeout`` seconds without work). ``len(pool)`` is the
    number of tasks queued or running.

    ``hub`` (default: the current thread's hub, if any) is informational: results are
    delivered to the hub of whichever thread calls ``spawn``.
    """

    def __init__(self, maxsize: int = 10, hub: Any = None,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 initializer: Optional[Callable[..., Any]] = None,
                 initargs: Tuple[Any, ...] = ()) -> None:
        self._maxsize = _check_maxsize(maxsize)
        self.hub = hub if hub is not None else _get_hub_if_exists()
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0, not {idle_timeout!r}")
        self.idle_timeout = float(idle_timeout)
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be callable")
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._broken: Optional[str] = None
        self._reset_state()
        _pools.add(self)

    def _reset_state(self) -> None:
        self._pid = os.getpid()
        self._mutex = _allocate_lock()
        self._queue: Deque[Any] = deque()
        self._running: Set[Any] = set()
        self._idle: List[_Idle] = []
        self._nthreads = 0       # workers of the current generation
        self._alive = 0          # all worker threads still running (any generation)
        self._keep = 0           # workers kept even when idle (the ``size`` setter)
        self._generation = getattr(self, "_generation", 0) + 1
        self._unfinished = 0
        self._join_callbacks: List[Callable[[], None]] = []
        self._worker_idents: Set[int] = set()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} at {id(self):#x} tasks={self._unfinished} "
                f"size={self._nthreads} maxsize={self._maxsize} hub={self.hub!r}>")

    # -- sizes -------------------------------------------------------------------------

    @property
    def maxsize(self) -> int:
        """The most worker threads this pool runs at once."""
        return self._maxsize

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        value = _check_maxsize(value)
        self._check_fork()
        with self._mutex:
            self._maxsize = value
            if self._keep > value:
                self._keep = value
            if self._nthreads > value:
                self._wake_idle_locked(_CHECK)  # the surplus idle ones exit now
        self.adjust()

    @property
    def size(self) -> int:
        """The number of worker threads now alive (idle or busy)."""
        return self._nthreads

    @size.setter
    def size(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"size must be an int, not {type(value).__name__}")
        if value < 0 or value > self._maxsize:
            raise ValueError(f"size must be between 0 and maxsize ({self._maxsize}), "
                             f"not {value}")
        self._check_fork()
        with self._mutex:
            self._keep = value
            if self._nthreads > value:
                self._wake_idle_locked(_CHECK)
        self.adjust()

    def __len__(self) -> int:
        """Tasks queued or running."""
        return self._unfinished

    def adjust(self) -> None:
        """Start the threads that queued tasks and ``size`` call for (idempotent)."""
        self._check_fork()
        with self._mutex:
            # one thread per queued task no idle worker will take, up to maxsize; at
            # least ``size`` threads
            need = len(self._queue) - len(self._idle)
            start = max(0, min(need, self._maxsize - self._nthreads),
                        self._keep - self._nthreads)
            self._nthreads += start
            self._alive += start
            generation = self._generation
        for _ in range(start):
            self._start_thread(generation)

    # -- submitting ----------------------------------------------------------------------

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self._on_fork()

    def _submit(self, task: Any) -> None:
        if self._pid != os.getpid():
            self._on_fork()
        mutex = self._mutex
        with mutex:
            if self._broken is not None:
                raise BrokenThreadPool(self._broken)
            self._queue.append(task)
            self._unfinished += 1
            if self._idle:
                idle = self._idle.pop()
                idle.reason = _TASK
                idle.lock.release()
                return
            if self._nthreads >= self._maxsize:
                return
            self._nthreads += 1
            self._alive += 1
            generation = self._generation
        try:
            self._start_thread(generation)
        except BaseException:
            with mutex:
                stranded = self._nthreads == 0 and task in self._queue
                if stranded:
                    self._queue.remove(task)
                    self._unfinished -= 1
            if stranded:
                raise

    def _start_thread(self, generation: int) -> None:
        try:
            _start_new_thread(self._worker, (generation,))
        except BaseException:
            with self._mutex:
                if generation == self._generation:
                    self._nthreads -= 1
                self._alive -= 1
            raise

    def spawn(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> AsyncResult:
        """Run ``func(*args, **kwargs)`` in a worker thread; return an AsyncResult that
        receives its value or exception (in the hub of the calling thread)."""
        if not callable(func):
            raise TypeError(f"func must be callable, not {type(func).__name__}")
        result = AsyncResult()
        keep = _keepalive_for(get_hub())
        task = _SpawnTask(func, args, kwargs, result, keep)
        if keep is not None:
            keep.acquire()
        try:
            self._submit(task)
        except BaseException:
            if keep is not None:
                keep.release()
            raise
        return result

    def _apply_immediately(self) -> bool:
        # from the hub (which must not block) or from one of our own workers (which
        # could deadlock a full pool): run inline
        if _get_ident() in self._worker_idents:
            return True
        hub = _get_hub_if_exists()
        return hub is not None and getcurrent() is hub

    def apply(self, func: Callable[..., Any], args: Optional[Iterable[Any]] = None,
              kwds: Optional[Dict[str, Any]] = None) -> Any:
        """``func(*args, **kwds)`` run in a worker thread; wait (cooperatively) and return
        its result or raise its exception. From the hub or a worker of this pool it runs
        inline."""
        args = () if args is None else tuple(args)
        kwds = {} if kwds is None else kwds
        if self._apply_immediately():
            return func(*args, **kwds)
        return self.spawn(func, *args, **kwds).get()

    def apply_async(self, func: Callable[..., Any], args: Optional[Iterable[Any]] = None,
                    kwds: Optional[Dict[str, Any]] = None,
                    callback: Optional[Callable[[Any], Any]] = None) -> AsyncResult:
        """``spawn`` with gevent's apply_async signature; ``callback(value)`` runs in the
        hub if the call succeeds."""
        args = () if args is None else tuple(args)
        kwds = {} if kwds is None else kwds
        result = self.spawn(func, *args, **kwds)
        if callback is not None:
            def _on_ready(res: AsyncResult) -> None:
                if res.successful():
                    callback(res.value)
            result.rawlink(_on_ready)
        return result

    def map(self, func: Callable[[Any], Any], iterable: Iterable[Any]) -> List[Any]:
        """``[func(x) for x in iterable]`` computed in worker threads; results in input
        order; the first failed item (in input order) raises its exception."""
        results = [self.spawn(func, item) for item in iterable]
        return [r.get() for r in results]

    def imap(self, func: Callable[..., Any], *iterables: Iterable[Any],
             maxsize: Optional[int] = None) -> "_IMap":
        """An iterator of ``func(*items)`` over the zipped ``iterables``, computed in
        worker threads, yielded in input order. A failed item raises its exception when
        reached; iteration may continue after it. At most ``maxsize`` (default: twice the
        pool's ``maxsize``) calls are in flight or unconsumed; input is read lazily."""
        return _IMap(self, func, zip(*iterables), maxsize, ordered=True)

    def imap_unordered(self, func: Callable[..., Any], *iterables: Iterable[Any],
                       maxsize: Optional[int] = None) -> "_IMap":
        """Like ``imap``, but yields results as they finish."""
        return _IMap(self, func, zip(*iterables), maxsize, ordered=False)

    # -- waiting and stopping --------------------------------------------------------------

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until no task is queued or running (True) or ``timeout`` passed (False).
        Waits cooperatively in a greenlet, blocking elsewhere."""
        self._check_fork()
        if self._unfinished == 0:
            return True

        def subscribe(notify: Callable[[], None]) -> None:
            with self._mutex:
                if self._unfinished:
                    self._join_callbacks.append(notify)
                    return
            notify()

        return _wait_notified(subscribe, timeout) or self._unfinished == 0

    def kill(self) -> None:
        """Drop the tasks not yet started (their results raise ``CancelledError``) and make
        every worker exit: idle ones now, busy ones once their current task is done (its
        result is still delivered). Does not wait. The pool stays usable: later tasks start
        new threads."""
        self._check_fork()
        with self._mutex:
            dropped = list(self._queue)
            self._queue.clear()
            self._unfinished -= len(dropped)
            self._keep = 0
            self._generation += 1
            self._nthreads = 0
            self._wake_idle_locked(_CHECK)
            callbacks = self._take_join_callbacks_locked()
        for task in dropped:
            task.abandon(CancelledError("the thread pool was killed before this task ran"))
        for notify in callbacks:
            notify()

    def _wake_idle_locked(self, reason: str) -> None:
        idle, self._idle = self._idle, []
        for entry in idle:
            entry.reason = reason
            entry.lock.release()

    def _take_join_callbacks_locked(self) -> List[Callable[[], None]]:
        if self._unfinished == 0 and self._join_callbacks:
            callbacks, self._join_callbacks = self._join_callbacks, []
            return callbacks
        return []

    # -- fork ------------------------------------------------------------------------------

    def _on_fork(self) -> None:
        """In the child of ``fork()``: the workers are gone. Start afresh (new locks, no
        threads); tasks queued or running at the fork fail with RuntimeError so nobody
        waits for them forever. Harmless when the process did not fork."""
        if self._pid == os.getpid():
            return
        lost = list(self._queue) + list(self._running)
        joiners = self._join_callbacks
        keep = self._keep
        self._reset_state()
        self._keep = keep
        for task in lost:
            task.abandon(RuntimeError(
                "the worker thread running this task did not survive fork()"))
        for notify in joiners:
            notify()

    # -- the worker thread -------------------------------------------------------------------

    def _worker(self, generation: int) -> None:
        _own_thread_state(False)
        try:
            self._work(generation)
        finally:
            _own_thread_state(None)

    def _work(self, generation: int) -> None:
        mutex = self._mutex
        ident = _get_ident()
        with mutex:
            self._worker_idents.add(ident)
        exited = False  # True when the loop below already gave back its thread count
        try:
            if self._initializer is not None:
                try:
                    self._initializer(*self._initargs)
                except BaseException:  # noqa: BLE001 - the pool is broken
                    self._initializer_failed(generation)
                    return
            while True:
                task = None
                with mutex:
                    if generation != self._generation or self._nthreads > self._maxsize:
                        if generation == self._generation:
                            self._nthreads -= 1
                        exited = True
                        break
                    if self._queue:
                        task = self._queue.popleft()
                        self._running.add(task)
                    else:
                        idle = _Idle()
                        self._idle.append(idle)
                        wait = self.idle_timeout if self._nthreads > self._keep else -1
                if task is not None:
                    _own_thread_state(True)
                    try:
                        task.run()
                    except BaseException:  # noqa: BLE001 - a task's own bug: report it
                        self._report_error(task)
                    _own_thread_state(False)
                    with mutex:
                        self._running.discard(task)
                        self._unfinished -= 1
                        callbacks = self._take_join_callbacks_locked()
                    task = None
                    for notify in callbacks:
                        notify()
                    continue
                woken = idle.lock.acquire(True, wait)
                with mutex:
                    if not woken:
                        try:
                            self._idle.remove(idle)
                        except ValueError:
                            continue  # released as we timed out: a wake is on its way
                        if (not self._queue and generation == self._generation
                                and self._nthreads > self._keep):
                            self._nthreads -= 1
                            exited = True
                            break
                        continue
                    if (idle.reason == _CHECK and not self._queue
                            and generation == self._generation
                            and self._nthreads > self._keep):
                        self._nthreads -= 1
                        exited = True
                        break
        finally:
            start = False
            with mutex:
                if not exited and generation == self._generation:
                    self._nthreads -= 1
                self._alive -= 1
                self._worker_idents.discard(ident)
                # never strand queued work: hand it to an idle worker or a new thread
                if self._queue and generation == self._generation:
                    if self._idle:
                        entry = self._idle.pop()
                        entry.reason = _TASK
                        entry.lock.release()
                    elif self._nthreads < self._maxsize and self._broken is None:
                        self._nthreads += 1
                        self._alive += 1
                        start = True
                        new_generation = self._generation
            if start:
                try:
                    self._start_thread(new_generation)
                except BaseException:  # noqa: BLE001 - nothing left to run them
                    pass

    def _initializer_failed(self, generation: int) -> None:
        exc_info = sys.exc_info()
        self._report_error(None, exc_info)
        with self._mutex:
            self._broken = ("A thread initializer failed, the thread pool is not usable "
                            "anymore")
            dropped = list(self._queue)
            self._queue.clear()
            self._unfinished -= len(dropped)
            self._wake_idle_locked(_CHECK)
            callbacks = self._take_join_callbacks_locked()
        for task in dropped:
            task.abandon(BrokenThreadPool(self._broken))
        for notify in callbacks:
            notify()

    @staticmethod
    def _report_error(task: Any, exc_info: Optional[tuple] = None) -> None:
        import traceback  # noqa: PLC0415 - error path only
        info = exc_info or sys.exc_info()
        try:
            sys.stderr.write(f"evloop.threadpool: error in worker thread ({task!r}):\n")
            traceback.print_exception(*info, file=sys.stderr)
        except Exception:  # noqa: BLE001
            pass


class _IMap:
    """The iterator returned by ``ThreadPool.imap``/``imap_unordered``."""

    def __init__(self, pool: ThreadPool, func: Callable[..., Any],
                 items: Iterator[Tuple[Any, ...]], maxsize: Optional[int],
                 ordered: bool) -> None:
        if maxsize is None:
            maxsize = 2 * pool.maxsize
        elif isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int or None, not {maxsize!r}")
        self._pool = pool
        self._func = func
        self._items: Optional[Iterator[Tuple[Any, ...]]] = items
        self._window = maxsize
        self._ordered = ordered
        self._inflight: Deque[AsyncResult] = deque()   # in input order
        self._done: Deque[AsyncResult] = deque()       # imap_unordered: finished first
        self._waiter: Optional[Waiter] = None

    def __iter__(self) -> "_IMap":
        return self

    def _fill(self) -> None:
        while self._items is not None and len(self._inflight) + len(self._done) < self._window:
            try:
                args = next(self._items)
            except StopIteration:
                self._items = None
                break
            result = self._pool.spawn(self._func, *args)
            self._inflight.append(result)
            if not self._ordered:
                result.rawlink(self._on_ready)

    def _on_ready(self, result: AsyncResult) -> None:
        # in the hub
        try:
            self._inflight.remove(result)
        except ValueError:
            return
        self._done.append(result)
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.switch(None)

    def __next__(self) -> Any:
        self._fill()
        if self._ordered:
            if not self._inflight:
                raise StopIteration
            return self._inflight.popleft().get()
        if not self._done:
            if not self._inflight:
                raise StopIteration
            waiter = self._waiter = Waiter(get_hub())
            try:
                waiter.get()
            finally:
                self._waiter = None
        return self._done.popleft().get()

    next = __next__


def _after_fork_in_child() -> None:
    for pool in list(_pools):
        try:
            pool._on_fork()
        except Exception:  # noqa: BLE001 - never break the child of a fork
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- concurrent.futures ------------------------------------------------------------------------

class Future(_cf.Future):
    """A ``concurrent.futures.Future`` whose ``result()`` and ``exception()`` wait
    cooperatively when called from a greenlet (only that greenlet blocks); from a plain
    thread they block as usual. ``concurrent.futures.wait``/``as_completed`` work from
    plain threads."""

    def __init__(self) -> None:
        super().__init__()
        self._condition = _Condition()

    def _wait_cooperatively(self, timeout: Optional[float]) -> None:
        if self.done() or _cooperative() is None:
            return

        def subscribe(notify: Callable[[], None]) -> None:
            self.add_done_callback(lambda _f: notify())

        _wait_notified(subscribe, timeout)

    def result(self, timeout: Optional[float] = None) -> Any:
        self._wait_cooperatively(timeout)
        if _cooperative() is not None:
            return super().result(0)  # done, or TimeoutError / CancelledError
        return super().result(timeout)

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        self._wait_cooperatively(timeout)
        if _cooperative() is not None:
            return super().exception(0)
        return super().exception(timeout)


class ThreadPoolExecutor(_cf.ThreadPoolExecutor):
    """``concurrent.futures.ThreadPoolExecutor`` on an evloop ``ThreadPool``: ``submit``
    returns a ``Future`` (a ``concurrent.futures.Future``) that greenlets can wait on
    without blocking the loop; ``map`` and ``shutdown(wait=True)`` wait cooperatively too
    when called from a greenlet. Worker threads are real threads even after
    monkey-patching."""

    def __init__(self, max_workers: Optional[int] = None, thread_name_prefix: str = "",
                 initializer: Optional[Callable[..., Any]] = None,
                 initargs: Tuple[Any, ...] = ()) -> None:
        super().__init__(max_workers, thread_name_prefix, initializer, initargs)
        self._shutdown_lock = _allocate_lock()
        self._pool = ThreadPool(self._max_workers, initializer=initializer,
                                initargs=initargs)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if not callable(fn):
            raise TypeError(f"fn must be callable, not {type(fn).__name__}")
        with self._shutdown_lock:
            if self._pool._broken is not None:
                raise BrokenThreadPool(self._pool._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future = Future()
            # keep the submitter's loop alive: an evloop thread's (the main thread always
            # counts as one); a plain thread without a hub gets none
            hub = _get_hub_if_exists()
            if hub is None and _get_ident() == _main_thread_ident:
                hub = get_hub()
            keep = _keepalive_for(hub) if hub is not None else None
            if keep is not None:
                keep.acquire()
            try:
                self._pool._submit(_FutureTask(fn, args, kwargs, future, keep))
            except BaseException:
                if keep is not None:
                    keep.release()
                raise
            return future

    submit.__doc__ = _cf.Executor.submit.__doc__

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work; with ``cancel_futures`` cancel the queued calls; with ``wait``
        wait (cooperatively in a greenlet) for the rest to finish. Idle worker threads
        exit; busy ones exit when their call is done."""
        with self._shutdown_lock:
            self._shutdown = True
        pool = self._pool
        if cancel_futures:
            with pool._mutex:
                dropped = list(pool._queue)
                pool._queue.clear()
                pool._unfinished -= len(dropped)
                callbacks = pool._take_join_callbacks_locked()
            for task in dropped:
                task.abandon(CancelledError())
            for notify in callbacks:
                notify()
        if wait:
            pool.join()
            pool.kill()
        else:
            # let the workers finish the queue, then leave as they go idle
            with pool._mutex:
                pool._keep = 0
                pool._wake_idle_locked(_CHECK)

    def _adjust_thread_count(self) -> None:  # the stdlib's; our pool starts its own threads
        pass
