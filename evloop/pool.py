"""evloop.pool: Group and Pool — sets of greenlets, optionally bounded, with gevent's names.

Why it exists: programs track the greenlets they start (join them all, kill them all) and
bound how many run at once (a server handling at most N connections, a crawler fetching N
pages at a time). A Group tracks greenlets and forgets each one when it finishes (through a
``rawlink``, from the hub); a Pool is a Group whose ``spawn``/``add`` block while ``size``
greenlets are tracked. Both offer the ``apply``/``map``/``imap`` family on top.

What it must not do: lose a slot or a wakeup. A finished, killed or discarded greenlet
gives its slot back exactly once and never a slot it did not take; a greenlet waiting for a
slot is served in FIFO order and stops waiting (giving up its place) when it is killed or
times out; no result of ``imap`` is lost or delivered twice. It blocks only through
``Waiter`` (the hub's one way to block) and never blocks in the hub.
"""
import sys
from collections import deque
from queue import Full as _QueueFull
from typing import (Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Set,
                    Tuple)

from greenlet import GreenletExit, getcurrent, greenlet as _greenlet

from evloop.greenlet import Greenlet, joinall
from evloop.lock import Semaphore
from evloop.hub import Waiter, _check_throwable, _seconds, _wait_within, get_hub

__all__ = ["Group", "Pool", "PoolFull"]

_TIMEOUT = object()
_UNBOUNDED = sys.maxsize


# Bad arguments are refused at the call: what the group runs later (in another greenlet, or
# in the hub) could only report them to the hub, against an innocent greenlet.
def _check_callable(func: Any) -> None:
    if not callable(func):
        raise TypeError(f"func must be callable, not {type(func).__name__}")


def _check_greenlet(obj: Any) -> None:
    if not isinstance(obj, _greenlet):
        raise TypeError(f"a Group tracks greenlets, not {type(obj).__name__}")


def _check_timeout(timeout: Any) -> None:
    if timeout is not None:
        _seconds(timeout, "timeout")


def _deadline_left(hub: Any, deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    return max(0.0, deadline - hub.loop.now())


class _Slots(Semaphore):
    """The slots of a Pool (and of imap's ``maxsize``): a Semaphore bound to the hub that
    creates it, serving waiters in FIFO order, whose count (``free``) may go negative
    when the bound shrinks and may be released several at once."""

    __slots__ = ()

    def __init__(self, free: int) -> None:
        Semaphore.__init__(self, free, get_hub())

    @property
    def free(self) -> int:
        return self.counter

    def release(self, n: int = 1) -> None:  # type: ignore[override]
        self.counter += n
        if self._links and self._notifier is None:
            self._wake()

    def wait(self, timeout: Optional[float] = None) -> int:
        """Block until a slot is free (without taking it) or ``timeout``; return ``free``
        (0 if none)."""
        return max(Semaphore.wait(self, timeout), 0)


def _wake_all(hub: Any, waiters: List[Any]) -> None:
    """Switch True into each waiter, from the hub."""
    if not waiters:
        return
    batch = waiters[:]
    del waiters[:]
    if getcurrent() is hub:
        _switch_all(hub, batch)
    else:
        hub.loop.run_callback(_switch_all, hub, batch)


def _switch_all(hub: Any, batch: List[Any]) -> None:
    for waiter in batch:
        try:
            waiter.switch(True)
        except BaseException:  # noqa: BLE001
            hub.handle_error(waiter, *sys.exc_info())


class _PassValue:
    """Link calling ``callback(source.value)`` if the source finished successfully."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[Any], Any]) -> None:
        self.callback = callback

    def __call__(self, source: Any) -> None:
        if source.successful():
            self.callback(source.value)

    def __eq__(self, other: Any) -> bool:
        return self.callback == getattr(other, "callback", other)

    def __hash__(self) -> int:
        return hash(self.callback)

    def __repr__(self) -> str:
        return repr(self.callback)


class Group:
    """The greenlets still running that were added to it, without a bound.

    A finished greenlet leaves the group by itself. ``len(group)``, ``g in group`` and
    iteration see the tracked greenlets; an empty group is false. ``greenlet_class`` (an
    attribute, settable per class or instance) is what ``spawn`` creates.
    """

    greenlet_class: type = Greenlet

    def __init__(self, *args: Iterable[Any]) -> None:
        if len(args) > 1:
            raise TypeError(f"{type(self).__name__}() takes at most one iterable of "
                            f"greenlets, got {len(args)} arguments")
        self._hub = get_hub()
        self.greenlets: Set[Any] = set()
        # greenlets we already killed, so kill() never kills one twice
        self.dying: Set[Any] = set()
        self._join_waiters: List[Any] = []
        if args:
            for g in args[0]:
                Group.add(self, g)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x} {self.greenlets!r}>"

    def __len__(self) -> int:
        return len(self.greenlets)

    def __contains__(self, item: Any) -> bool:
        return item in self.greenlets

    def __iter__(self) -> Iterator[Any]:
        return iter(self.greenlets)

    # -- membership ----------------------------------------------------------------------

    def add(self, greenlet: Any) -> None:
        """Track ``greenlet`` until it finishes. A plain greenlet (without ``rawlink``) is
        tracked until discarded."""
        _check_greenlet(greenlet)
        rawlink = getattr(greenlet, "rawlink", None)
        if rawlink is not None:
            rawlink(self._discard)
        self.greenlets.add(greenlet)

    def _discard(self, greenlet: Any) -> None:
        # the link: runs in the hub when a tracked greenlet finishes; also discard()
        if greenlet not in self.greenlets:
            return
        self.greenlets.remove(greenlet)
        self.dying.discard(greenlet)
        empty = not self.greenlets
        self._released(greenlet)
        if empty and self._join_waiters:
            # it was empty, even if a slot waiter refilled it meanwhile
            _wake_all(self._hub, self._join_waiters)

    def _released(self, greenlet: Any) -> None:
        """Hook: ``greenlet`` just left the group (Pool gives its slot back here, before
        joiners wake, so they see the slot free)."""

    def discard(self, greenlet: Any) -> None:
        """Stop tracking ``greenlet`` (it keeps running)."""
        self._discard(greenlet)
        unlink = getattr(greenlet, "unlink", None)
        if unlink is not None:
            unlink(self._discard)

    def start(self, greenlet: Any) -> None:
        """Track the unstarted ``greenlet``, then start it."""
        self.add(greenlet)
        greenlet.start()

    def spawn(self, *args: Any, **kwargs: Any) -> Any:
        """Create a ``greenlet_class(*args, **kwargs)``, track it and start it."""
        greenlet = self.greenlet_class(*args, **kwargs)
        self.start(greenlet)
        return greenlet

    # -- waiting and killing -------------------------------------------------------------

    def join(self, timeout: Optional[float] = None, raise_error: bool = False) -> bool:
        """Wait until the group has been empty at least once (it may have been refilled by
        the time this returns). Return False if ``timeout`` passed first.

        ``raise_error``: afterwards, raise the exception of one of the greenlets tracked
        when join was called that finished with one."""
        _check_timeout(timeout)
        snapshot = list(self.greenlets) if raise_error else ()
        result = self._wait_empty(timeout)
        for greenlet in snapshot:
            if getattr(greenlet, "exception", None) is not None:
                if hasattr(greenlet, "_raise_exception"):
                    greenlet._raise_exception()
                raise greenlet.exception
        return result

    def _wait_empty(self, timeout: Optional[float]) -> bool:
        if not self.greenlets:
            return True
        hub = self._hub
        if timeout is not None:
            timeout = _seconds(timeout, "timeout")
        waiter = Waiter(hub)
        waiter.what = self
        self._join_waiters.append(waiter)
        try:
            return (waiter.get() if timeout is None
                    else _wait_within(waiter, timeout, _TIMEOUT)) is not _TIMEOUT
        finally:
            try:
                self._join_waiters.remove(waiter)
            except ValueError:
                pass

    def kill(self, exception: Any = GreenletExit, block: bool = True,
             timeout: Optional[float] = None) -> None:
        """Kill every tracked greenlet (each at most once) and, if ``block``, wait until
        they finished (greenlets added meanwhile are killed too), up to ``timeout``."""
        _check_throwable(exception)
        hub = self._hub
        deadline = None
        if timeout is not None:
            deadline = hub.loop.now() + _seconds(timeout, "timeout")
        while self.greenlets:
            for greenlet in list(self.greenlets):
                if greenlet in self.dying:
                    continue
                self.dying.add(greenlet)
                killer = getattr(greenlet, "kill", None)
                if killer is not None:
                    killer(exception, block=False)
                else:
                    hub.loop.run_callback(self._kill_raw, greenlet, exception)
            if not block:
                break
            linkable = [g for g in self.greenlets if hasattr(g, "rawlink")]
            if linkable:
                left = _deadline_left(hub, deadline)
                done = joinall(linkable, timeout=left)
                if len(done) < len(linkable) and deadline is not None \
                        and _deadline_left(hub, deadline) <= 0:
                    return
            elif self.greenlets:
                # only plain greenlets left: _kill_raw discards them once dead
                waiter = Waiter(hub)
                hub.loop.run_callback(waiter.switch, None)
                waiter.get()
                if deadline is not None and _deadline_left(hub, deadline) <= 0:
                    return

    def _kill_raw(self, greenlet: Any, exception: Any) -> None:
        # in the hub: a plain greenlet has no link to discard it, so do it here
        try:
            if not greenlet.dead:
                greenlet.throw(exception)
        except BaseException:  # noqa: BLE001
            self._hub.handle_error(greenlet, *sys.exc_info())
        if greenlet.dead:
            self._discard(greenlet)

    def killone(self, greenlet: Any, exception: Any = GreenletExit, block: bool = True,
                timeout: Optional[float] = None) -> None:
        """Kill ``greenlet`` if this group tracks it and did not kill it already; if
        ``block``, wait for it to finish (up to ``timeout``)."""
        _check_throwable(exception)
        _check_timeout(timeout)
        if greenlet not in self.dying and greenlet in self.greenlets:
            self.dying.add(greenlet)
            killer = getattr(greenlet, "kill", None)
            if killer is None:  # a plain greenlet
                self._hub.loop.run_callback(self._kill_raw, greenlet, exception)
                return
            killer(exception, block=False)
            if block:
                greenlet.join(timeout)

    def full(self) -> bool:
        """Whether ``add``/``spawn`` would block: never, for a Group."""
        return False

    def wait_available(self, timeout: Optional[float] = None) -> Optional[int]:
        """Block until ``spawn`` would not block: returns at once for a Group."""
        _check_timeout(timeout)
        return None

    # -- apply and map -------------------------------------------------------------------

    def _apply_immediately(self) -> bool:
        # apply() from one of our own greenlets runs inline: spawning and waiting could
        # deadlock a full pool
        return getcurrent() in self.greenlets

    def apply(self, func: Callable[..., Any], args: Optional[Iterable[Any]] = None,
              kwds: Optional[Dict[str, Any]] = None) -> Any:
        """Run ``func(*args, **kwds)`` in a greenlet of the group and return its result
        (or raise its exception). Called from a greenlet of this group, it runs ``func``
        directly."""
        _check_callable(func)
        args = () if args is None else tuple(args)
        kwds = {} if kwds is None else kwds
        if self._apply_immediately():
            return func(*args, **kwds)
        return self.spawn(func, *args, **kwds).get()

    def apply_cb(self, func: Callable[..., Any], args: Optional[Iterable[Any]] = None,
                 kwds: Optional[Dict[str, Any]] = None,
                 callback: Optional[Callable[[Any], Any]] = None) -> Any:
        """``apply``, then (if it did not raise) run ``callback(result)`` in a new
        greenlet, not tracked by the group."""
        result = self.apply(func, args, kwds)
        if callback is not None:
            Greenlet.spawn(callback, result)
        return result

    def apply_async(self, func: Callable[..., Any], args: Optional[Iterable[Any]] = None,
                    kwds: Optional[Dict[str, Any]] = None,
                    callback: Optional[Callable[[Any], Any]] = None) -> Greenlet:
        """Start ``func(*args, **kwds)`` without blocking and return its Greenlet (``get()``
        it for the result). ``callback(result)`` runs in a new greenlet if it succeeds.

        When the pool is full the returned greenlet is an untracked one that waits for a
        slot itself, so join the returned greenlet, not the group, to wait for it."""
        _check_callable(func)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        args = () if args is None else tuple(args)
        kwds = {} if kwds is None else kwds
        if self.full():
            return Greenlet.spawn(self.apply_cb, func, args, kwds, callback)
        greenlet = self.spawn(func, *args, **kwds)
        if callback is not None:
            greenlet.link(_PassValue(callback))
        return greenlet

    def map(self, func: Callable[[Any], Any], iterable: Iterable[Any]) -> List[Any]:
        """``[func(x) for x in iterable]`` computed in greenlets of the group (at most
        ``size`` at once for a Pool). Raises the exception of the first item (in input
        order) whose call failed, once that item's turn comes; the other calls go on."""
        greenlets = [self.spawn(func, item) for item in iterable]
        return [g.get() for g in greenlets]

    def map_cb(self, func: Callable[[Any], Any], iterable: Iterable[Any],
               callback: Optional[Callable[[List[Any]], Any]] = None) -> List[Any]:
        """``map``, then ``callback(results)`` in this greenlet."""
        result = self.map(func, iterable)
        if callback is not None:
            callback(result)
        return result

    def map_async(self, func: Callable[[Any], Any], iterable: Iterable[Any],
                  callback: Optional[Callable[[List[Any]], Any]] = None) -> Greenlet:
        """``map`` in a new (untracked) greenlet, returned; ``callback(results)`` runs in
        it when all are done."""
        _check_callable(func)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        return Greenlet.spawn(self.map_cb, func, iter(iterable), callback)

    def imap(self, func: Callable[..., Any], *iterables: Iterable[Any],
             maxsize: Optional[int] = None) -> "IMap":
        """An iterator of ``func(*items)`` over the zipped ``iterables``, computed in
        greenlets of the group, yielded in input order. An item whose call failed raises
        its exception when reached (iteration may continue after it).

        ``maxsize``: at most that many calls are started but not yet consumed; the feeding
        greenlet waits for the consumer beyond that."""
        _check_callable(func)
        return IMap.spawn(func, zip(*iterables), spawn=self.spawn, maxsize=maxsize)

    def imap_unordered(self, func: Callable[..., Any], *iterables: Iterable[Any],
                       maxsize: Optional[int] = None) -> "IMapUnordered":
        """Like ``imap``, but yields results as they finish."""
        _check_callable(func)
        return IMapUnordered.spawn(func, zip(*iterables), spawn=self.spawn,
                                   maxsize=maxsize)


class PoolFull(_QueueFull):
    """``Pool.add`` (or ``start``) found no free slot: non-blocking, or timed out.
    A subclass of ``queue.Full`` (as ``evloop.queue.Full`` / ``gevent.queue.Full``)."""


def _check_size(size: Any) -> Optional[int]:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int):
        try:
            size = size.__index__()
        except (AttributeError, TypeError):
            raise TypeError(f"Pool size must be an integer or None, not "
                            f"{type(size).__name__}") from None
    if size < 0:
        raise ValueError(f"Pool size must not be negative: {size!r} (use size=None for a "
                         f"pool without a bound)")
    return size


class Pool(Group):
    """A Group of at most ``size`` greenlets: ``spawn``, ``start`` and ``add`` block while
    it is full, until a tracked greenlet finishes (FIFO among the waiters).

    ``size=None``: no bound (a Group with Pool's methods). ``size=0``: nothing can ever be
    added (as in gevent; only useful with ``wait_available(timeout)``/``free_count``).
    Negative sizes raise ValueError. ``size`` may be changed later: growing it admits
    waiters at once; shrinking it admits no one until enough greenlets finished.
    """

    def __init__(self, size: Optional[int] = None,
                 greenlet_class: Optional[type] = None) -> None:
        size = _check_size(size)
        Group.__init__(self)
        self._size = size
        # free = capacity - tracked greenlets; an unbounded pool has a huge capacity, so
        # add() never blocks and no code path differs
        self._slots = _Slots(_UNBOUNDED if size is None else size)
        if greenlet_class is not None:
            self.greenlet_class = greenlet_class

    @property
    def size(self) -> Optional[int]:
        """The bound (None: unbounded)."""
        return self._size

    @size.setter
    def size(self, size: Optional[int]) -> None:
        size = _check_size(size)
        old = self._size
        self._size = size
        old_capacity = _UNBOUNDED if old is None else old
        new_capacity = _UNBOUNDED if size is None else size
        self._slots.release(new_capacity - old_capacity)

    def free_count(self) -> int:
        """How many more greenlets could be added now without blocking (approximately:
        waiters may take them first); 1 for an unbounded pool."""
        if self._size is None:
            return 1
        return max(0, self._slots.free)

    def full(self) -> bool:
        """True if ``add``/``spawn`` would block."""
        return self.free_count() <= 0

    def wait_available(self, timeout: Optional[float] = None) -> int:
        """Block until a slot is free (without taking it) or ``timeout`` passes; return
        ``free_count()`` (0 on timeout). With ``size=0`` this waits until the timeout."""
        _check_timeout(timeout)
        if self._size is None:
            return 1
        return self._slots.wait(timeout)

    def add(self, greenlet: Any, blocking: bool = True,
            timeout: Optional[float] = None) -> None:
        """Track the (preferably unstarted) ``greenlet``, waiting for a free slot.

        Raises PoolFull if ``blocking`` is false and the pool is full, or if ``timeout``
        seconds pass without a slot. Adding a greenlet already tracked does nothing.
        """
        _check_greenlet(greenlet)
        _check_timeout(timeout)
        if greenlet in self.greenlets:
            return
        if not self._slots.acquire(blocking, timeout):
            raise PoolFull()
        try:
            Group.add(self, greenlet)
        except BaseException:
            self._slots.release()
            raise

    def start(self, greenlet: Any, blocking: bool = True,
              timeout: Optional[float] = None) -> None:
        """``add(greenlet, blocking, timeout)``, then start it."""
        self.add(greenlet, blocking, timeout)
        greenlet.start()

    def _released(self, greenlet: Any) -> None:
        self._slots.release()


# -- imap ------------------------------------------------------------------------------------

class _Failure:
    __slots__ = ("exc", "raise_exception")

    def __init__(self, exc: BaseException,
                 raise_exception: Optional[Callable[[], Any]] = None) -> None:
        self.exc = exc
        self.raise_exception = raise_exception

    def reraise(self) -> None:
        if self.raise_exception is not None:
            self.raise_exception()
        raise self.exc


class IMapUnordered(Greenlet):
    """The iterator returned by ``imap_unordered``: a greenlet that feeds the input to
    ``spawn`` (blocking when the pool is full) while the consumer iterates the results as
    they finish. After the last result it raises StopIteration (every time)."""

    _ordered = False

    def __init__(self, func: Callable[..., Any], iterable: Iterable[Any],
                 spawn: Callable[..., Any], maxsize: Optional[int] = None) -> None:
        _check_callable(func)
        Greenlet.__init__(self)
        if maxsize is not None:
            if isinstance(maxsize, bool) or not isinstance(maxsize, int):
                raise TypeError(f"maxsize must be an int or None, not "
                                f"{type(maxsize).__name__}")
            if maxsize < 0:
                raise ValueError(f"maxsize must not be negative: {maxsize!r}")
        self.func = func
        self.iterable = iterable
        self.spawn_task = spawn
        self._maxsize_slots = _Slots(maxsize) if maxsize else None
        self._results: Deque[Any] = deque()  # unordered: values/_Failure in finish order
        self._by_index: Dict[int, Any] = {}   # ordered: index -> value/_Failure
        self._next_index = 0                  # ordered: next index to yield
        self._getters: Deque[Any] = deque()
        self._outstanding = 0
        self._fed = -1                        # index of the last item fed
        self._end: Optional[Tuple[int, Any]] = None  # (index, StopIteration or _Failure)
        self._exhausted = False

    # -- the feeding greenlet ------------------------------------------------------------

    def _run(self) -> None:
        try:
            func, spawn, slots = self.func, self.spawn_task, self._maxsize_slots
            for item in self.iterable:
                if slots is not None:
                    slots.acquire()
                index = self._fed + 1
                self._outstanding += 1
                try:
                    g = spawn(func, *item)
                except BaseException:
                    self._outstanding -= 1
                    if slots is not None:
                        slots.release()
                    raise
                self._fed = index
                g._imap_task_index = index
                g.rawlink(self._on_result)
            self._finish(None)
        except BaseException as exc:
            self._finish(_Failure(exc, self._raise_exception_later(exc)))
            raise
        finally:
            self.func = self.iterable = self.spawn_task = None

    def _raise_exception_later(self, exc: BaseException) -> Callable[[], Any]:
        tb = exc.__traceback__

        def reraise() -> None:
            raise exc.with_traceback(tb)
        return reraise

    def _finish(self, failure: Optional[_Failure]) -> None:
        self._end = (self._fed + 1, failure if failure is not None else StopIteration())
        self._wake_getter()

    def _on_result(self, task: Any) -> None:
        # in the hub (rawlink)
        self._outstanding -= 1
        if task.successful():
            value: Any = task.value
        else:
            value = _Failure(task.exception, task._raise_exception)
        if self._ordered:
            self._by_index[task._imap_task_index] = value
        else:
            self._results.append(value)
        self._wake_getter()

    def _wake_getter(self) -> None:
        if not self._getters:
            return
        waiter = self._getters.popleft()
        if getcurrent() is self._hub:
            waiter.switch(None)
        else:
            self._hub.loop.run_callback(waiter.switch, None)

    # -- the consumer --------------------------------------------------------------------

    def __iter__(self) -> "IMapUnordered":
        return self

    def _take(self) -> Tuple[bool, Any]:
        """(True, value) if the next result is here; (False, None) if not yet."""
        if self._ordered:
            index = self._next_index
            if index in self._by_index:
                self._next_index = index + 1
                return True, self._by_index.pop(index)
        elif self._results:
            return True, self._results.popleft()
        end = self._end
        if end is not None and self._outstanding <= 0 and \
                (not self._ordered or self._next_index >= end[0]):
            self._exhausted = True
            # every other consumer waiting on this iterator ends too: results only wake
            # one getter each, and no result will come now
            while self._getters:
                self._wake_getter()
            return True, end[1]
        return False, None

    def __next__(self) -> Any:
        while True:
            if self._exhausted:
                raise StopIteration  # (also when another consumer took the end meanwhile)
            found, value = self._take()
            if found:
                break
            waiter = Waiter(self._hub)
            waiter.what = self
            self._getters.append(waiter)
            left_normally = False
            try:
                waiter.get()
                left_normally = True
            finally:
                try:
                    self._getters.remove(waiter)
                except ValueError:
                    # we were picked to consume a result; pass the turn on if we leave
                    if not left_normally:
                        self._wake_getter()
        if isinstance(value, StopIteration):
            raise StopIteration
        if self._maxsize_slots is not None and not self._exhausted:
            self._maxsize_slots.release()  # a task's result was consumed: feed one more
        if isinstance(value, _Failure):
            value.reraise()
        return value


class IMap(IMapUnordered):
    """The iterator returned by ``imap``: results in input order."""

    _ordered = True
