"""evloop._waiters: the parking lot — the one waiter line under every blocking primitive.

Why it exists: Event, AsyncResult, the Semaphore family, the Queue family, Channel and
Pool's slots all keep greenlets waiting in FIFO lines and wake them from the hub. The line
has subtle parts that must exist once: binding to the hub of the greenlets that wait (and
refusing a second hub while the first has waiters), waking from another thread without
losing the wake-up, the timeout (through ``evloop.hub._wait_within``, the one timer on a
``Waiter``), and leaving the line cleanly when a wait ends by timeout, kill or LoopExit.
In the spirit of trio's ``ParkingLot`` and gevent's ``AbstractLinkable``; our own code.

Two ways to wake, both here:

* served lines (``ParkingLot``): a primitive whose waiters take something (a permit, an
  item, a hand-over) defines ``_serve`` (runs in the hub, wakes waiters in order while
  what they wait for is there) and ``_serve_needed``. ``_wake`` queues one ``_unpark``
  (which calls ``_serve``) on the hub's loop from any thread: *mark, then schedule*.
* a flag (``FlagLot``): Event and AsyncResult wake every waiter present when the flag goes
  up, each queued on the hub's loop on its own (``_raise_flag``).

``ThreadLot`` is the same line for real OS threads, which must never block through a hub
(the thread pool's condition, shared by its workers and by plain threads): each parked
thread waits on a native lock of its own.

The fast paths a primitive may inline (and the only parts of this module it may):

1. "what the caller wants is there and nobody waits: take it without touching the lot"
   (``if self.counter > 0 and not self._links: ...``; ``if self._flag: return True``);
2. "after making something available, wake the lot only if somebody waits and no
   wake-up is queued" (``if line and self._notifier is None: self._wake()``).

What it must not do: switch to a waiter outside the hub, lose or duplicate a wake-up, or
leave a waiter, link or timer behind when a wait ends in any way. Other threads may only
wake (set/release/put); waiting belongs to the greenlets of one hub at a time
(InvalidThreadUseError otherwise). It imports nothing above the hub.
"""
import sys
import types
from collections import deque
from typing import Any, Callable, Optional, Tuple

from evloop._originals import get_original
from evloop.exceptions import InvalidSwitchError, InvalidThreadUseError, LoopExit
from evloop.hub import Waiter, _seconds, _wait_within, get_hub

# this thread's hub or None, straight from C (get_hub() adds a Python frame)
from evloop.hub import _get_hub_if_exists as current_hub
# Waiter(hub) without argument parsing
from evloop.core import _new_waiter as new_waiter

__all__ = ["ParkingLot", "FlagLot", "ThreadLot", "TIMEOUT", "as_method", "current_hub",
           "new_waiter", "discard", "timeout_seconds"]

# the native lock, as before monkey-patching: ThreadLot parks real threads
_allocate_lock = get_original("_thread", "allocate_lock")

#: what a wait's timer switches in with: ``_park`` returns it when the wait timed out
TIMEOUT = object()
# Waiter.switch unbound: schedule(_switch, waiter, value) needs no bound-method object
_switch = Waiter.switch


def timeout_seconds(timeout: Any) -> float:
    """A wait's timeout in seconds (None is handled by the caller): a real number, not
    NaN; negative means 0 (as in gevent)."""
    if isinstance(timeout, (str, bytes, bool)):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    return _seconds(timeout, "timeout")


def discard(line: deque, item: Any) -> None:
    """Remove ``item`` from ``line`` if it is there."""
    try:
        line.remove(item)
    except ValueError:
        pass


def as_method(func: Callable[..., Any], owner: type, name: str) -> Callable[..., Any]:
    """``func``, a lot's function that a primitive takes as its method ``name`` as it is
    (a wrapper would cost a Python call on the hot path), under the primitive's name:
    reprs (a greenlet started on it) and ``help()`` show ``Event.wait``, not the lot's."""
    method = types.FunctionType(func.__code__, func.__globals__, name, func.__defaults__,
                                func.__closure__)
    method.__kwdefaults__ = func.__kwdefaults__
    method.__annotations__ = dict(func.__annotations__)
    method.__doc__ = func.__doc__
    method.__module__ = owner.__module__
    method.__qualname__ = f"{owner.__qualname__}.{name}"
    return method


def _explain_loopexit(exc: LoopExit, obj: Any) -> LoopExit:
    """A LoopExit naming ``obj``, for waits whose Waiter does not name what it waits for
    (setting ``waiter.what`` costs time on the hot path; this runs only on failure)."""
    orig = exc.__cause__ if isinstance(exc.__cause__, LoopExit) else exc
    hub = orig.args[1] if len(orig.args) > 1 else None
    return LoopExit(f"This operation would block forever: the current greenlet waits on "
                    f"{obj!r} and the hub has no active watcher or queued callback left "
                    f"that could wake it (hub: {hub!r})")


class ParkingLot:
    """Base of the blocking primitives: hub binding, parking in a line, waking.

    A subclass keeps its lines (deques of ``Waiter`` objects and, where it has
    ``rawlink``, callbacks) in slots of its own and says which they are in ``_lines``;
    it defines ``_serve`` and ``_serve_needed``. ``_notifier`` is True while an
    ``_unpark`` is queued on the hub's loop.
    """

    __slots__ = ("_hub", "_schedule", "_notifier", "__weakref__")

    def _init_lot(self, hub: Any = None) -> None:
        self._hub: Any = None
        # the bound hub loop's _run_callback_if_alive: run_callback_threadsafe, except that
        # once the loop is destroyed (with its hub) it queues nothing and returns None — the
        # waiters still in line are orphans of that hub, and a wake-up from the next hub
        # must not fail because of them
        self._schedule: Any = None
        self._notifier: Any = None
        if hub is not None:  # gevent's ``hub`` argument: bound now, not by the first waiter
            self._hub = hub
            self._schedule = hub.loop._run_callback_if_alive

    # -- what a subclass defines ---------------------------------------------------------

    def _lines(self) -> Tuple[deque, ...]:
        raise NotImplementedError

    def _serve(self) -> None:
        """In the hub: wake waiters, in order, while what they wait for is there."""
        raise NotImplementedError

    def _serve_needed(self) -> bool:
        """True if a waiter in line could be served now."""
        raise NotImplementedError

    # -- hub binding -----------------------------------------------------------------------

    def _bind(self, hub: Any) -> None:
        """Bind to ``hub``, whose greenlet is about to wait (or link). Allowed when nothing
        of the old hub waits (and no wake-up is queued there) or the old hub is gone;
        otherwise the object would have waiters in two threads."""
        old = self._hub
        if old is not None:
            lines = self._lines()
            if (any(lines) or self._notifier is not None) and old.loop is not None \
                    and not old.dead:
                raise InvalidThreadUseError(
                    f"{self!r} has waiters in the hub {old!r} of another thread; an evloop "
                    f"synchronisation object serves the greenlets of one hub at a time "
                    f"(other threads may only set/release it)")
            if old.loop is None:
                for line in lines:
                    line.clear()  # waiters of a destroyed hub will never run again
        self._hub = hub
        self._schedule = hub.loop._run_callback_if_alive
        self._notifier = None

    def _bind_current(self) -> Any:
        """The current thread's hub, bound (rebinding checked)."""
        hub = current_hub()
        if hub is None:
            hub = get_hub()
        if hub is not self._hub:
            self._bind(hub)
        return hub

    # -- waking ------------------------------------------------------------------------------

    def _wake(self) -> None:
        """Queue ``_unpark`` on the hub's loop (from any thread) and mark it queued.

        The mark goes up *before* the callback is queued, never after: once queued, the
        hub's thread may run the whole callback — whose ``finally`` clears the mark —
        before a waking thread gets the GIL back (CPython may switch threads right after
        the call returns). A mark set after the call would then stand with nothing queued
        behind it, and every later wake-up would be skipped: a permit or item there, its
        waiter never woken. A mark cleared too early only costs a spare ``_unpark``."""
        self._notifier = True
        try:
            if self._schedule(self._unpark) is None:
                self._notifier = None  # the loop is destroyed: nothing was queued
        except BaseException:
            self._notifier = None
            raise

    def _unpark(self) -> None:
        """In the hub: serve the lines, then clear the mark. A waking thread may have seen
        the mark still up just now and skipped its wake-up: look again after clearing."""
        try:
            self._serve()
        except BaseException:  # noqa: BLE001 - never break the hub
            self._hub.handle_error(self, *sys.exc_info())
        finally:
            self._notifier = None
        if self._serve_needed():
            self._wake()

    # -- parking -----------------------------------------------------------------------------

    def _park(self, line: deque, waiter: Any, seconds: Optional[float]) -> Any:
        """Put ``waiter`` (made for the current thread's hub: ``new_waiter(current_hub() or
        get_hub())``) at the end of ``line`` and block until it is switched: return what
        it was switched with, or ``TIMEOUT`` once ``seconds`` passed (None: no limit).
        Binds this object to the waiter's hub first (rebinding checked). If the wait
        raises (kill, Timeout, LoopExit — which then names this object —,
        BlockingSwitchOutError in the hub), the waiter leaves the line first. A waiter
        that returns normally but was not served must ``_leave``."""
        hub = waiter.hub
        if hub is not self._hub:
            self._bind(hub)
        line.append(waiter)
        if self._notifier is None and self._serve_needed():
            # what it waits for is there but others were in line, or another thread made
            # it available between the caller's test and the append
            self._wake()
        try:
            if seconds is None:
                return waiter.get()
            return _wait_within(waiter, seconds, TIMEOUT)
        except LoopExit as ex:
            self._leave(line, waiter)
            raise _explain_loopexit(ex, self) from ex
        except BaseException:
            self._leave(line, waiter)
            raise

    def _leave(self, line: deque, waiter: Any) -> None:
        """A waiter gives up (timeout, kill, LoopExit): leave the line; if what it waited
        for is there, make sure the next in line hears of it."""
        discard(line, waiter)
        if self._notifier is None and self._serve_needed():
            self._wake()

    def _invalid_switch(self, line: deque, waiter: Any, what: str, result: Any) -> None:
        """A waiter resumed with a value nobody sends: leave, and raise."""
        self._leave(line, waiter)
        raise InvalidSwitchError(f"Invalid switch into {type(self).__name__}.{what}(): "
                                 f"{result!r}")

    def _reset_lot(self) -> None:
        """After fork, in the child: nobody is waiting there."""
        for line in self._lines():
            line.clear()
        self._hub = self._schedule = self._notifier = None


class FlagLot(ParkingLot):
    """A lot whose waiters all wait for one flag (Event, AsyncResult): raising it wakes
    every waiter present at that moment, in order, each queued on the hub's loop with the
    object as value; links (``rawlink``) are one-shot callbacks called with the object."""

    __slots__ = ("_flag", "_links")

    def _init_lot(self, hub: Any = None) -> None:
        ParkingLot._init_lot(self, hub)
        self._flag = False
        self._links: deque = deque()

    def _lines(self) -> Tuple[deque, ...]:
        return (self._links,)

    def _serve_needed(self) -> bool:
        return self._flag and bool(self._links)

    def _raise_flag(self) -> None:
        """Raise the flag and wake every greenlet waiting now (from the hub, in the order
        they started waiting); call every link. Safe from any thread."""
        self._flag = True
        links = self._links
        if links:
            # the first link is taken before the loop and the line tested after each:
            # on the one-waiter hand-off (the common case) that is one test of the line
            # fewer than `while links:`, measured (callgrind, the Event ping-pong: 1%)
            try:
                schedule = self._schedule
                link = links.popleft()
                while True:
                    if type(link) is Waiter:
                        schedule(_switch, link, self)
                    else:
                        schedule(link, self)
                    if not links:
                        break
                    link = links.popleft()
            except IndexError:
                pass  # another thread emptied the line between the test and the pop

    _serve = _raise_flag  # for _unpark: waiters that raced with the flag going up

    # -- links -------------------------------------------------------------------------------

    def rawlink(self, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(self)`` from the hub once this object is ready (at once — at the
        hub's next turn — if it already is). One-shot."""
        if not callable(callback):
            raise TypeError(f"Expected callable: {callback!r}")
        self._bind_current()
        self._links.append(callback)
        if self._flag:
            self._raise_flag()

    def unlink(self, callback: Callable[[Any], Any]) -> None:
        """Remove a callback added by rawlink (no error if it is not linked)."""
        discard(self._links, callback)

    def linkcount(self) -> int:
        return len(self._links)

    # -- waiting -------------------------------------------------------------------------------

    def _wait_flag(self, timeout: Optional[float] = None) -> bool:
        """Block until the flag is up or ``timeout`` seconds pass; return the flag (True if
        woken by its raising, even if lowered since; on timeout, the flag's value then).
        ``timeout`` None waits forever; 0 or negative only tests the flag."""
        # Without a timeout this is the hot path of every hand-off (Event.wait is this
        # function), so it parks without a further Python call: _park's steps, with the
        # flag as the test after the append (a set() in another thread between the test
        # above and the append would otherwise wake nobody).
        if self._flag:
            return True
        if timeout is not None:
            return self._wait_flag_within(timeout)
        hub = current_hub()
        if hub is None:
            hub = get_hub()
        if hub is not self._hub:
            self._bind(hub)
        waiter = new_waiter(hub)
        links = self._links
        links.append(waiter)
        if self._flag:
            discard(links, waiter)
            return True
        try:
            result = waiter.get()
        except LoopExit as ex:
            discard(links, waiter)
            raise _explain_loopexit(ex, self) from ex
        except BaseException:
            discard(links, waiter)
            raise
        if result is not self:
            self._invalid_switch(links, waiter, "wait", result)
        return True

    def _wait_flag_within(self, timeout: Any) -> bool:
        seconds = timeout_seconds(timeout)
        if self._flag:
            return True
        if seconds == 0:
            return False
        waiter = new_waiter(current_hub() or get_hub())
        waiter.what = self
        result = self._park(self._links, waiter, seconds)
        if result is self:
            return True
        if result is TIMEOUT:
            self._leave(self._links, waiter)
            return self._flag
        self._invalid_switch(self._links, waiter, "wait", result)
        return False  # not reached


class ThreadLot:
    """A FIFO of parked OS threads. The threads share a native lock of the caller's (a
    condition's): ``park`` and ``unpark`` are called with it held."""

    __slots__ = ("_line",)

    def __init__(self) -> None:
        self._line: deque = deque()

    def __len__(self) -> int:
        return len(self._line)

    def park(self, release: Callable[[], Any], reacquire: Callable[[], Any],
             timeout: Optional[float]) -> bool:
        """Park the calling thread: once in line, ``release()`` the shared lock; block
        until unparked or ``timeout`` seconds pass (None: no limit; negative: 0); then
        ``reacquire()`` it and leave the line. True if unparked."""
        lock = _allocate_lock()
        lock.acquire()
        self._line.append(lock)
        release()
        try:
            if timeout is None:
                return lock.acquire()
            return lock.acquire(True, max(0.0, timeout))
        finally:
            reacquire()
            discard(self._line, lock)

    def unpark(self, n: int = 1) -> None:
        """Wake the first ``n`` parked threads (they leave the line now)."""
        line = self._line
        for _ in range(min(n, len(line))):
            line.popleft().release()
