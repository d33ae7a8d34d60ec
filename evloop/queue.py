"""evloop.queue: queues between greenlets — SimpleQueue, Queue (joinable), LifoQueue,
PriorityQueue, JoinableQueue, Channel — with gevent's names and semantics.

Why it exists: producers and consumers in different greenlets hand items over through
these; a ``get`` on an empty queue or a ``put`` on a full one blocks through a ``Waiter``
(the hub's one way to block). Blocked getters and putters are served strictly in the order
they started waiting, by one callback on the hub (``_serve``, through the parking lot of ``evloop._waiters``) that moves a waiting
putter's item into the queue and resumes it, or resumes a waiting getter, which takes its
item before the hub goes on. A blocking call never overtakes greenlets already waiting
(non-blocking calls take what is there).

What it must not do: lose or duplicate an item. No item is ever handed to a greenlet that
has not resumed yet: a getter killed or timed out while waiting leaves the line, and the
item stays in the queue for the next getter; a putter that gives up leaves with its item
(it was never put). ``Channel`` hands items over directly; a putter whose item was taken
by a ``get`` counts as done even if its timeout expires before it resumes (an exception
thrown into it in that moment — kill, an enclosing Timeout — still propagates out of
``put``, as in gevent, although the item was delivered).

Semantics chosen where gevent's differ or are unclear:

* ``maxsize``: None, 0 or a negative int mean unbounded (as in the standard library, which
  ``patch_queue`` replaces, and in gevent, which warns on 0); a non-integer raises
  TypeError at once. ``maxsize`` reads None for an unbounded queue.
* ``Queue`` is joinable (``task_done``, ``join``, ``unfinished_tasks``), as in gevent 25.4+
  and the standard library; ``JoinableQueue`` is the same class. ``SimpleQueue`` is the
  plain one. ``LifoQueue`` and ``PriorityQueue`` are joinable.
* Order: a blocking ``get``/``put``/``peek`` that finds an item (a free slot) while
  other greenlets wait for one gets in line behind them; gevent's takes what is there,
  overtaking the waiting greenlets. Non-blocking calls take what is there in both.
* Timeouts: None waits forever; a negative timeout on a blocking call raises ValueError
  (as ``queue.Queue`` does; gevent does too, except for a ``put`` on a full queue, where
  it raises Full); NaN ValueError; non-numbers TypeError. A timeout of 0 does not wait.
  ``block=False`` ignores ``timeout``.
* Raising ``maxsize`` lets waiting putters in at once (gevent's wait for the next
  ``get``).
* Iteration (``for item in q``) blocks for each next item and ends when it gets the
  ``StopIteration`` class (gevent's sentinel) or a ``StopIteration`` instance.
* Called from the hub itself (a loop callback), a ``get``/``put`` that would block first
  serves the waiting greenlets, then raises Empty/Full instead of blocking (gevent).
* ``Empty`` and ``Full`` are the standard library's ``queue.Empty`` and ``queue.Full``
  (as in gevent), so ``except evloop.queue.Empty`` also catches a ``multiprocessing`` or
  ``queue.Queue`` timeout. ``ShutDown`` is ``queue.ShutDown`` on Python 3.13+ and
  evloop's own ``Exception`` subclass before (gevent does the same).
* ``Queue.shutdown(immediate=False)`` is Python 3.13's (and gevent's since 24.10): after
  it ``put`` raises ShutDown; ``get`` takes what is left, then raises ShutDown instead of
  waiting; greenlets blocked in ``put``/``get``/``peek`` get ShutDown thrown in (from the
  hub). ``immediate=True`` first drops the items, each counting as a ``task_done()``.
  ``SimpleQueue`` and ``Channel`` have no ``shutdown`` (neither have gevent's).
* A queue serves the greenlets of one hub. ``put`` on an unbounded queue may also be
  called from another thread (the hub's loop is woken); nothing else is thread-safe.
"""
import operator
import sys
from collections import deque
from heapq import heapify, heappop, heappush
import queue as _stdlib_queue
from types import GenericAlias
from typing import Any, Iterable, Iterator, Optional, Tuple

from greenlet import getcurrent

from evloop._waiters import TIMEOUT, ParkingLot, current_hub, discard, new_waiter
from evloop.event import Event
from evloop.exceptions import BlockingSwitchOutError
from evloop.hub import Waiter, _seconds, get_hub

__all__ = ["Queue", "SimpleQueue", "LifoQueue", "PriorityQueue", "JoinableQueue",
           "Channel", "Empty", "Full", "ShutDown"]

#: Raised by ``get``/``peek`` when no item arrives (non-blocking, or timed out).
Empty = _stdlib_queue.Empty
#: Raised by ``put`` when no slot frees up (non-blocking, or timed out).
Full = _stdlib_queue.Full

# queue.ShutDown is new in 3.13 (present on 3.13.0, 3.14.10, 3.15.2; absent on 3.10.13,
# 3.11.7, 3.12.1): a patched queue.Queue must raise the class the stdlib's code catches
if sys.version_info >= (3, 13):
    #: Raised by ``put``/``get`` on a queue that was shut down (3.13+: the stdlib's).
    ShutDown = _stdlib_queue.ShutDown
else:
    class ShutDown(Exception):
        """Raised by ``put``/``get`` on a queue that was shut down (``queue.ShutDown``
        from Python 3.13 on)."""


def _check_maxsize(maxsize: Any) -> int:
    """Internal maxsize: 0 for unbounded."""
    if maxsize is None:
        return 0
    if isinstance(maxsize, bool):
        raise TypeError("maxsize must be an int or None, not bool")
    try:
        maxsize = operator.index(maxsize)
    except TypeError:
        raise TypeError(f"maxsize must be an int or None, not "
                        f"{type(maxsize).__name__}") from None
    return maxsize if maxsize > 0 else 0


def _queue_seconds(timeout: Any) -> float:
    """A blocking call's timeout (not None): negative raises ValueError, like queue.Queue."""
    if isinstance(timeout, (str, bytes, bool)):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    seconds = _seconds(timeout, "timeout")
    if seconds == 0 and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return seconds


_FAILED = object()  # Channel: a non-blocking put found no getter left at the hand-over


class _PutWaiter(Waiter):
    """A blocked putter's Waiter, carrying its item (and, in a Channel, whether the put
    may wait for a getter)."""

    __slots__ = ("item", "block")


class SimpleQueue(ParkingLot):
    """A FIFO queue of at most ``maxsize`` items (None or 0: unbounded).

    ``SimpleQueue(maxsize=None, items=())``. ``len(q)`` is ``q.qsize()``; a queue is
    always true in a boolean context. Subclasses change the order by overriding
    ``_create_queue``, ``_put``, ``_get`` and ``_peek`` (items live in ``self.queue``).
    """

    __slots__ = ("_maxsize", "queue", "getters", "putters", "is_shutdown")

    __class_getitem__ = classmethod(GenericAlias)

    def __init__(self, maxsize: Optional[int] = None, items: Iterable[Any] = ()) -> None:
        self._maxsize = _check_maxsize(maxsize)
        self.queue = self._create_queue(items)
        self.getters: deque = deque()   # Waiters of blocked get/peek calls
        self.putters: deque = deque()   # _PutWaiters of blocked put calls
        self._init_lot()
        self.is_shutdown = False        # Queue.shutdown() was called

    # -- storage (override in subclasses) ---------------------------------------------------

    def _create_queue(self, items: Iterable[Any] = ()) -> Any:
        return deque(items)

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def _get(self) -> Any:
        return self.queue.popleft()

    def _peek(self) -> Any:
        return self.queue[0]

    def _qsize(self) -> int:
        return len(self.queue)

    # -- state -------------------------------------------------------------------------------

    @property
    def maxsize(self) -> Optional[int]:
        """The bound, or None for an unbounded queue."""
        return self._maxsize or None

    @maxsize.setter
    def maxsize(self, value: Optional[int]) -> None:
        self._maxsize = _check_maxsize(value)
        if self.putters and self._notifier is None:  # a larger bound may admit putters
            self._wake()

    def qsize(self) -> int:
        """The number of items in the queue."""
        return len(self.queue)

    def __len__(self) -> int:
        return len(self.queue)

    def __bool__(self) -> bool:
        return True

    def empty(self) -> bool:
        return not self.queue

    def full(self) -> bool:
        """True if a bounded queue holds ``maxsize`` items (never for unbounded)."""
        return 0 < self._maxsize <= len(self.queue)

    def copy(self) -> "SimpleQueue":
        return type(self)(self.maxsize, self.queue)

    def __repr__(self) -> str:
        parts = []
        if self._maxsize:
            parts.append(f"maxsize={self._maxsize}")
        if self.queue:
            parts.append(f"queue={self.queue!r}")
        if self.getters:
            parts.append(f"getters[{len(self.getters)}]")
        if self.putters:
            parts.append(f"putters[{len(self.putters)}]")
        return f"<{type(self).__name__} at {id(self):#x}{' ' if parts else ''}{' '.join(parts)}>"

    # -- put ---------------------------------------------------------------------------------
    # put/put_nowait/get/get_nowait/peek/peek_nowait inline the deque operations of
    # _put/_get/_peek (a method call less on the hot path); a subclass overriding one of
    # those gets the generic versions below, which call it (see __init_subclass__).

    def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Put ``item`` in the queue. If it is full, block (at most ``timeout`` seconds)
        until a slot frees up, or raise Full (``block=False``, or on timeout)."""
        maxsize = self._maxsize
        queue = self.queue
        if (not maxsize or len(queue) < maxsize) and (not block or not self.putters):
            if timeout is not None and block and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            queue.append(item)
            if self.getters and self._notifier is None:
                self._wake()
            return
        self._put_slow(item, block, timeout)

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        maxsize = self._maxsize
        queue = self.queue
        if not maxsize or len(queue) < maxsize:
            queue.append(item)
            if self.getters and self._notifier is None:
                self._wake()
            return
        self._put_slow(item, False, None)

    def _has_room(self) -> bool:
        maxsize = self._maxsize
        return not maxsize or len(self.queue) < maxsize

    def _put_slow(self, item: Any, block: bool, timeout: Any) -> None:
        """put() when it may have to wait."""
        if self.is_shutdown:
            raise ShutDown
        if not block:
            raise Full
        seconds = None
        if timeout is not None:
            seconds = _queue_seconds(timeout)
            if seconds == 0:
                return self._put_now(item)
        waiter = _PutWaiter(current_hub() or get_hub())
        waiter.item = item
        waiter.what = self
        putters = self.putters
        try:
            result = self._park(putters, waiter, seconds)
        except BlockingSwitchOutError:
            # called from the hub: it cannot wait; let the waiting getters take what they
            # can, then put the item if there is room (gevent)
            self._unpark()
            return self._put_now(item)
        if result is waiter:
            return  # _serve put the item
        if result is TIMEOUT:
            self._leave(putters, waiter)
            raise Full
        self._invalid_switch(putters, waiter, "put", result)

    def _put_now(self, item: Any) -> None:
        """Put without waiting (room permitting, even if putters are in line), or Full."""
        if not self._has_room():
            raise Full
        self._put(item)
        if self.getters and self._notifier is None:
            self._wake()

    # -- get / peek -------------------------------------------------------------------------

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Remove and return the next item. If there is none, block (at most ``timeout``
        seconds) until one arrives, or raise Empty (``block=False``, or on timeout)."""
        queue = self.queue
        if queue and (not block or not self.getters):
            if timeout is not None and block and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            item = queue.popleft()
            if self.putters and self._notifier is None:
                self._wake()
            return item
        return self._get_slow(False, block, timeout)

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        queue = self.queue
        if queue:
            item = queue.popleft()
            if self.putters and self._notifier is None:
                self._wake()
            return item
        return self._get_slow(False, False, None)

    def peek(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Return the next item without removing it; blocks like ``get``."""
        queue = self.queue
        if queue and (not block or not self.getters):
            if timeout is not None and block and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            return queue[0]
        return self._get_slow(True, block, timeout)

    def peek_nowait(self) -> Any:
        """``peek(block=False)``."""
        queue = self.queue
        if queue:
            return queue[0]
        return self._get_slow(True, False, None)

    # generic versions, for subclasses with their own _put/_get/_peek

    def _generic_put(self, item: Any, block: bool = True,
                     timeout: Optional[float] = None) -> None:
        """put() for subclasses with their own _put."""
        maxsize = self._maxsize
        if ((not maxsize or len(self.queue) < maxsize) and (not block or not self.putters)
                and not self.is_shutdown):
            if timeout is not None and block and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            self._put(item)
            if self.getters and self._notifier is None:
                self._wake()
            return
        self._put_slow(item, block, timeout)

    def _generic_put_nowait(self, item: Any) -> None:
        """put_nowait() for subclasses with their own _put."""
        self._generic_put(item, False)

    def _generic_get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """get() for subclasses with their own _get."""
        if self.queue and (not block or not self.getters):
            if timeout is not None and block and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            item = self._get()
            if self.putters and self._notifier is None:
                self._wake()
            return item
        return self._get_slow(False, block, timeout)

    def _generic_get_nowait(self) -> Any:
        """get_nowait() for subclasses with their own _get."""
        return self._generic_get(False)

    def _generic_peek(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """peek() for subclasses with their own _peek."""
        if self.queue and (not block or not self.getters):
            if timeout is not None and block and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            return self._peek()
        return self._get_slow(True, block, timeout)

    def _generic_peek_nowait(self) -> Any:
        """peek_nowait() for subclasses with their own _peek."""
        return self._generic_peek(False)

    _INLINED = (("put", "_put", "_generic_put"), ("put_nowait", "_put", "_generic_put_nowait"),
                ("get", "_get", "_generic_get"), ("get_nowait", "_get", "_generic_get_nowait"),
                ("peek", "_peek", "_generic_peek"),
                ("peek_nowait", "_peek", "_generic_peek_nowait"))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for public, storage, generic in SimpleQueue._INLINED:
            if public in cls.__dict__:
                continue
            definer = next(c for c in cls.__mro__ if public in c.__dict__)
            if getattr(cls, storage) is not getattr(definer, storage):
                setattr(cls, public, getattr(SimpleQueue, generic))

    def _get_slow(self, peek: bool, block: bool, timeout: Any) -> Any:
        """get() (``peek`` False) or peek() when it may have to wait."""
        if self.is_shutdown:
            if self.queue:
                return self._take(peek)  # nobody waits in line once it is shut down
            raise ShutDown
        if not block:
            raise Empty
        seconds = None
        if timeout is not None:
            seconds = _queue_seconds(timeout)
            if seconds == 0:
                if self.queue:
                    return self._take(peek)
                raise Empty
        waiter = new_waiter(current_hub() or get_hub())
        getters = self.getters
        try:
            result = self._park(getters, waiter, seconds)
        except BlockingSwitchOutError:
            # called from the hub (a loop callback): it cannot wait; let waiting putters
            # put what they can and take an item if there is one (gevent)
            self._unpark()
            if self.queue:
                return self._take(peek)
            raise Empty from None
        if result is self:
            # _serve resumed us because an item is there, and waits until we took it
            # (_take, inlined: a call less on the hand-off)
            item = self._peek() if peek else self._get()
            if self.putters and self._notifier is None:
                self._wake()
            return item
        if result is TIMEOUT:
            self._leave(getters, waiter)
            raise Empty
        self._invalid_switch(getters, waiter, "get", result)

    def _take(self, peek: bool) -> Any:
        item = self._peek() if peek else self._get()
        if self.putters and self._notifier is None:
            self._wake()
        return item

    # -- the hub side ------------------------------------------------------------------------

    def _lines(self) -> Tuple[deque, ...]:
        return (self.getters, self.putters)

    def _serve_needed(self) -> bool:
        return bool((self.getters and self.queue) or (self.putters and self._has_room()))

    def _serve(self) -> None:
        # runs in the hub: resume waiting getters (each takes an item before this loop goes
        # on) while there are items, and move waiting putters' items in (then resume them)
        # while there is room; both in order
        getters = self.getters
        putters = self.putters
        queue = self.queue
        while True:
            if getters and queue:
                getters.popleft().switch(self)
            elif putters and (not self._maxsize or len(queue) < self._maxsize):
                putter = putters.popleft()
                try:
                    self._put(putter.item)
                except BaseException:  # noqa: BLE001 - e.g. an unorderable item
                    putter.throw(*sys.exc_info())
                else:
                    putter.item = None
                    putter.switch(putter)
            else:
                break

    # -- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = self.get()
        if item is StopIteration or type(item) is StopIteration:
            raise StopIteration
        return item


class Queue(SimpleQueue):
    """A SimpleQueue that counts unfinished tasks: each item put adds one, each
    ``task_done()`` removes one, ``join()`` waits until none is left.

    ``Queue(maxsize=None, items=(), unfinished_tasks=None)``: the given items count as
    unfinished unless ``unfinished_tasks`` says otherwise.
    """

    __slots__ = ("unfinished_tasks", "_join_event")

    def __init__(self, maxsize: Optional[int] = None, items: Iterable[Any] = (),
                 unfinished_tasks: Optional[int] = None) -> None:
        SimpleQueue.__init__(self, maxsize, items)
        self.unfinished_tasks = (len(self.queue) if unfinished_tasks is None
                                 else unfinished_tasks)
        self._join_event: Optional[Event] = None

    def copy(self) -> "Queue":
        return type(self)(self.maxsize, self.queue, self.unfinished_tasks)

    def _put(self, item: Any) -> None:
        self.queue.append(item)
        self.unfinished_tasks += 1

    def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Put ``item`` in the queue (one more unfinished task). If it is full, block (at
        most ``timeout`` seconds) until a slot frees up, or raise Full (``block=False``,
        or on timeout)."""
        maxsize = self._maxsize
        queue = self.queue
        if ((not maxsize or len(queue) < maxsize) and (not block or not self.putters)
                and not self.is_shutdown):
            if timeout is not None and block and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            queue.append(item)
            self.unfinished_tasks += 1
            if self.getters and self._notifier is None:
                self._wake()
            return
        self._put_slow(item, block, timeout)

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        maxsize = self._maxsize
        queue = self.queue
        if (not maxsize or len(queue) < maxsize) and not self.is_shutdown:
            queue.append(item)
            self.unfinished_tasks += 1
            if self.getters and self._notifier is None:
                self._wake()
            return
        self._put_slow(item, False, None)

    def task_done(self) -> None:
        """Mark one item taken from the queue as processed; ValueError if called more
        times than items were put."""
        if self.unfinished_tasks <= 0:
            raise ValueError("task_done() called too many times")
        self.unfinished_tasks -= 1
        if self.unfinished_tasks == 0 and self._join_event is not None:
            self._join_event.set()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Block until every item put has been marked done (True), or ``timeout`` seconds
        passed (False)."""
        if self.unfinished_tasks == 0:
            return True
        event = self._join_event
        if event is None:
            event = self._join_event = Event()
        elif event.is_set():
            event.clear()  # set when the count last reached 0; it has grown since
        return event.wait(timeout)

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down: from now on ``put`` raises ShutDown, and ``get`` raises
        it once the queue is empty (with ``immediate``, at once: the items are dropped,
        each counting as ``task_done()``). Greenlets blocked in ``put``, ``get`` or
        ``peek`` get ShutDown thrown in, from the hub."""
        self.is_shutdown = True
        if immediate:
            while self.queue:
                self._get()
                self.task_done()
        waiters = list(self.getters) + list(self.putters)
        self.getters.clear()
        self.putters.clear()
        for waiter in waiters:
            # queued by _bind when it started waiting: this hub's loop, from any thread
            self._schedule(waiter.throw, ShutDown)

    def __repr__(self) -> str:
        base = SimpleQueue.__repr__(self)
        if self.unfinished_tasks:
            return f"{base[:-1]} tasks={self.unfinished_tasks}>"
        return base


JoinableQueue = Queue


class LifoQueue(Queue):
    """A Queue that returns the most recently put item first."""

    __slots__ = ()

    def _create_queue(self, items: Iterable[Any] = ()) -> Any:
        return list(items)

    def _put(self, item: Any) -> None:
        self.queue.append(item)
        self.unfinished_tasks += 1

    def _get(self) -> Any:
        return self.queue.pop()

    def _peek(self) -> Any:
        return self.queue[-1]


class PriorityQueue(Queue):
    """A Queue that returns the smallest item first (entries are typically
    ``(priority, data)`` tuples). Items given to the constructor are heapified."""

    __slots__ = ()

    def _create_queue(self, items: Iterable[Any] = ()) -> Any:
        q = list(items)
        heapify(q)
        return q

    def _put(self, item: Any) -> None:
        queue = self.queue
        try:
            heappush(queue, item)
        except BaseException:
            # heappush appended the item before failing to compare it: take it out
            for i in range(len(queue) - 1, -1, -1):
                if queue[i] is item:
                    del queue[i]
                    break
            heapify(queue)
            raise
        self.unfinished_tasks += 1

    def _get(self) -> Any:
        return heappop(self.queue)

    def _peek(self) -> Any:
        return self.queue[0]


class Channel(ParkingLot):
    """A rendezvous: holds no item; ``put`` blocks until a getter takes the item, ``get``
    blocks until a putter offers one.

    ``Channel(maxsize=1)`` takes gevent's argument for compatibility: 1 (gevent's only
    accepted value) or 0; anything else raises ValueError. ``maxsize`` reads 0,
    ``qsize()`` 0; ``empty()`` and ``full()`` are always True. ``put(block=False)``
    succeeds only if a getter is waiting to take the item (it yields to the hub once for
    the hand-over); ``get(block=False)`` takes the item of a waiting putter.
    """

    __slots__ = ("getters", "putters")

    __class_getitem__ = classmethod(GenericAlias)

    def __init__(self, maxsize: int = 1) -> None:
        if maxsize not in (0, 1) or isinstance(maxsize, bool):
            raise ValueError(f"a Channel holds no items: maxsize must be 1 (gevent's "
                             f"value) or 0, not {maxsize!r}")
        self.getters: deque = deque()   # Waiters of blocked getters
        self.putters: deque = deque()   # _PutWaiters of blocked putters (with the item)
        self._init_lot()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} at {id(self):#x} getters[{len(self.getters)}] "
                f"putters[{len(self.putters)}]>")

    maxsize = 0

    @property
    def balance(self) -> int:
        """Waiting putters minus waiting getters."""
        return len(self.putters) - len(self.getters)

    def qsize(self) -> int:
        return 0

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return True

    def empty(self) -> bool:
        return True

    def full(self) -> bool:
        return True

    def _lines(self) -> Tuple[deque, ...]:
        return (self.getters, self.putters)

    def _serve_needed(self) -> bool:
        return bool(self.putters and self.getters)

    def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Offer ``item`` and wait until a getter takes it; Full if no getter takes it
        within ``timeout`` seconds (or, with ``block=False``, if no getter is waiting)."""
        seconds = None
        if block and timeout is not None:
            seconds = _queue_seconds(timeout)
        hub = current_hub() or get_hub()
        if getcurrent() is hub:
            if self.getters and not self.putters:
                self.getters.popleft().switch(item)
                return
            raise Full
        if not block or seconds == 0:
            if not self.getters or self.putters:
                raise Full
            # a getter waits: queue for the hand-over without a timer; _serve pairs us
            # with it, or fails us with Full if it has left by then
            block = False
            seconds = None
        waiter = _PutWaiter(hub)
        waiter.item = item
        waiter.block = block
        waiter.what = self
        # an exception leaves the line; if a getter took the item already, the put
        # happened before the exception
        result = self._park(self.putters, waiter, seconds)
        if result is waiter:
            return
        if result is _FAILED:
            raise Full
        if not self._withdraw(waiter):
            return  # a get() took the item before the timeout could stop the put
        if result is TIMEOUT:
            raise Full
        self._invalid_switch(self.putters, waiter, "put", result)

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def _withdraw(self, waiter: Any) -> bool:
        """Take a putter out of the line; False if a getter took its item already."""
        try:
            self.putters.remove(waiter)
        except ValueError:
            return False
        return True

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Take the item of the longest-waiting putter, waiting for one (at most
        ``timeout`` seconds) if needed; Empty if none comes."""
        seconds = None
        if block and timeout is not None:
            seconds = _queue_seconds(timeout)
        putters = self.putters
        if putters and (not block or not self.getters):
            putter = putters.popleft()
            item = putter.item
            putter.item = None
            hub = self._hub
            if getcurrent() is hub:
                putter.switch(putter)
            else:
                self._schedule(putter.switch, putter)
            return item
        if not block or seconds == 0:
            raise Empty
        hub = current_hub() or get_hub()
        if getcurrent() is hub:
            raise Empty
        waiter = new_waiter(hub)
        waiter.what = self
        result = self._park(self.getters, waiter, seconds)
        if result is TIMEOUT:
            self._leave(self.getters, waiter)
            raise Empty
        return result  # the item, handed over by _serve

    def get_nowait(self) -> Any:
        return self.get(False)

    def _serve(self) -> None:
        # runs in the hub: pair waiting putters with waiting getters, in order; the getter
        # resumes with the item first, then the putter; non-blocking putters left without a
        # getter fail with Full
        getters = self.getters
        putters = self.putters
        while putters and getters:
            getter = getters.popleft()
            putter = putters.popleft()
            item = putter.item
            putter.item = None
            getter.switch(item)
            putter.switch(putter)
        if putters and not getters:
            for putter in [p for p in putters if not p.block]:
                discard(putters, putter)
                putter.item = None
                putter.switch(_FAILED)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = self.get()
        if item is StopIteration or type(item) is StopIteration:
            raise StopIteration
        return item
