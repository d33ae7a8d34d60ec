"""evloop.lock: Semaphore, BoundedSemaphore, DummySemaphore, Lock, RLock — gevent's names.

Why it exists: greenlets sharing a limited resource (a connection, a slot in a pool) take
turns through these. A greenlet that cannot acquire blocks through a ``Waiter`` (the hub's
one way to block) and is woken from the hub, strictly in the order the greenlets started
waiting: a blocking ``acquire()`` never overtakes greenlets already waiting, even when a
permit is free at that moment (non-blocking acquires may take a free permit). gevent's
blocking ``acquire()`` takes a free permit, overtaking the greenlets that wait.

What it must not do: lose or duplicate a permit. A woken greenlet takes its permit itself,
in the same step in which the hub resumes it, so there is no moment at which a permit
belongs to a greenlet that has not run yet; a greenlet killed or timed out while waiting
just leaves the queue, and the permit goes to the next waiter. ``release()`` may be
called from another thread (it wakes the hub's loop); waiters must all belong to one hub
at a time (InvalidThreadUseError otherwise). The line of waiters, its hub binding, its
wake-up from other threads and its timeouts are the parking lot's (``evloop._waiters``).
"""
import sys
from collections import deque
from typing import Any, Callable, Optional, Tuple

from greenlet import getcurrent

from evloop._waiters import (TIMEOUT, ParkingLot, current_hub, discard, new_waiter,
                             timeout_seconds)
from evloop.hub import Waiter, get_hub

__all__ = ["Semaphore", "BoundedSemaphore", "DummySemaphore", "Lock", "RLock"]


class Semaphore(ParkingLot):
    """A counter of permits: ``acquire()`` takes one (blocking while there is none),
    ``release()`` gives one back and wakes the longest-waiting greenlet.

    ``Semaphore(value=1, hub=None)``; ``value`` < 0 raises ValueError, a ``value`` that is
    not an int (None included, as in gevent and threading) TypeError; ``hub`` (gevent's
    argument) binds it to that hub at once instead of to the hub of its first waiter.
    Releasing more than was acquired is allowed (use BoundedSemaphore to forbid it). A
    context manager (``with sem:``).
    """

    __slots__ = ("counter", "_links")

    def __init__(self, value: int = 1, hub: Any = None) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"semaphore initial value must be an int, not "
                            f"{type(value).__name__}")
        if value < 0:
            raise ValueError(f"semaphore initial value must be >= 0, not {value}")
        self.counter = value
        self._links: deque = deque()  # Waiters of blocked greenlets and rawlink callbacks
        # gevent's ``hub`` argument binds it now; otherwise the hub of the first waiter
        self._init_lot(hub)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} at {id(self):#x} counter={self.counter} "
                f"_links[{len(self._links)}]>")

    # -- state --------------------------------------------------------------------------

    def locked(self) -> bool:
        """True if no permit is free (``acquire(blocking=False)`` would fail)."""
        return self.counter <= 0

    def ready(self) -> bool:
        """True if a permit is free."""
        return self.counter > 0

    def linkcount(self) -> int:
        return len(self._links)

    # -- acquire / release ----------------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Take a permit. Blocking (the default), wait for one — at most ``timeout``
        seconds if given (0 or negative: do not wait) — behind greenlets already waiting;
        return False on timeout. ``blocking=False``: take a free permit or return False
        at once (``timeout`` is then ignored)."""
        if self.counter > 0 and (not blocking or not self._links):
            self.counter -= 1
            return True
        if not blocking:
            return False
        return self._block(timeout, True)

    def release(self) -> None:
        """Give a permit back and wake the longest-waiting greenlet (from the hub). May be
        called from any greenlet, a loop callback or another thread."""
        self.counter += 1
        if self._links and self._notifier is None:
            self._wake()

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait until a permit is free (without taking it) or ``timeout`` passes; return
        the number of free permits then (which may be 0)."""
        if self.counter > 0:
            return self.counter
        self._block(timeout, take=False)
        return self.counter

    def __enter__(self) -> bool:
        # acquire(), inlined
        if self.counter > 0 and not self._links:
            self.counter -= 1
            return True
        return self._block(None, True)

    def __exit__(self, typ: Any, value: Any, tb: Any) -> None:
        # release(), inlined
        self.counter += 1
        if self._links and self._notifier is None:
            self._wake()

    # -- links ----------------------------------------------------------------------------

    def rawlink(self, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(self)`` from the hub when a permit is free (at the hub's next
        turn if one is free now). One-shot; the callback does not take the permit."""
        if not callable(callback):
            raise TypeError(f"Expected callable: {callback!r}")
        self._bind_current()
        self._links.append(callback)
        if self.counter > 0 and self._notifier is None:
            self._wake()

    def unlink(self, callback: Callable[[Any], Any]) -> None:
        """Remove a callback added by rawlink (no error if it is not linked)."""
        discard(self._links, callback)

    # -- the parking lot's part ----------------------------------------------------------

    def _lines(self) -> Tuple[deque, ...]:
        return (self._links,)

    def _serve_needed(self) -> bool:
        return self.counter > 0 and bool(self._links)

    def _serve(self) -> None:
        # in the hub: wake links in order while a permit is free. A woken acquirer takes
        # its permit before this loop goes on (the switch runs it until it blocks again),
        # so the test of the counter stays exact.
        links = self._links
        while links and self.counter > 0:
            link = links.popleft()
            try:
                if type(link) is Waiter:
                    link.switch(self)
                else:
                    link(self)
            except BaseException:  # noqa: BLE001 - one bad link must not stop the others
                self._hub.handle_error((link, self), *sys.exc_info())

    def _acquire_slow(self, blocking: bool, timeout: Any) -> bool:
        if not blocking:
            return False
        return self._block(timeout, take=True)

    def _block(self, timeout: Any, take: bool) -> bool:
        """Wait in line until woken with a free permit (taking it if ``take``); False on
        timeout. 0 or negative timeouts do not wait."""
        seconds = None
        if timeout is not None:
            seconds = timeout_seconds(timeout)
            if seconds == 0:
                if self.counter > 0:
                    if take:
                        self.counter -= 1
                    return True
                return False
        waiter = new_waiter(current_hub() or get_hub())
        waiter.what = self
        result = self._park(self._links, waiter, seconds)
        if result is self:
            if take:
                self.counter -= 1
            return True
        if result is TIMEOUT:
            self._leave(self._links, waiter)
            return False
        self._invalid_switch(self._links, waiter, "acquire", result)
        return False  # not reached

    def _at_fork_reinit(self) -> None:
        self._reset_lot()


class BoundedSemaphore(Semaphore):
    """A Semaphore that refuses to be released above its initial value: ``release()``
    then raises ValueError (a sign of a bug: releasing what was never acquired)."""

    __slots__ = ("_initial_value",)

    _OVER_RELEASE_ERROR: type = ValueError
    _OVER_RELEASE_MESSAGE = "Semaphore released too many times"

    def __init__(self, value: int = 1, hub: Any = None) -> None:
        Semaphore.__init__(self, value, hub)
        self._initial_value = self.counter

    def release(self) -> None:
        """Give a permit back; raises ValueError if all permits are already free."""
        if self.counter >= self._initial_value:
            raise self._OVER_RELEASE_ERROR(self._OVER_RELEASE_MESSAGE)
        self.counter += 1
        if self._links and self._notifier is None:
            self._wake()

    def __exit__(self, typ: Any, value: Any, tb: Any) -> None:
        # release(), inlined
        if self.counter >= self._initial_value:
            raise self._OVER_RELEASE_ERROR(self._OVER_RELEASE_MESSAGE)
        self.counter += 1
        if self._links and self._notifier is None:
            self._wake()


class Lock(BoundedSemaphore):
    """A mutex: a BoundedSemaphore(1) with ``threading.Lock``'s signature —
    ``acquire(blocking=True, timeout=-1)`` (-1: no timeout) — whose ``release()`` when
    unlocked raises RuntimeError("release unlocked lock"). Not owned: any greenlet may
    release it."""

    __slots__ = ()

    _OVER_RELEASE_ERROR = RuntimeError
    _OVER_RELEASE_MESSAGE = "release unlocked lock"

    def __init__(self) -> None:
        BoundedSemaphore.__init__(self, 1)

    def acquire(self, blocking: bool = True, timeout: Optional[float] = -1) -> bool:
        """Lock it; see Semaphore.acquire. ``timeout=-1`` (the default) or None waits
        forever; a timeout with ``blocking=False`` raises ValueError, as in threading, and
        one that is not a number TypeError, even when the lock is free."""
        if timeout != -1 and timeout is not None:
            timeout_seconds(timeout)
        if self.counter > 0 and (not blocking or not self._links):
            if not blocking and timeout is not None and timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            self.counter -= 1
            return True
        if timeout is not None and timeout == -1:
            timeout = None
        elif not blocking and timeout is not None:
            raise ValueError("can't specify a timeout for a non-blocking call")
        return self._acquire_slow(blocking, timeout)


class DummySemaphore:
    """The Semaphore API with an infinite number of permits: nothing ever blocks.
    ``DummySemaphore(value=None)`` (the value is ignored)."""

    __slots__ = ()

    counter = 1

    def __init__(self, value: Any = None) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def locked(self) -> bool:
        return False

    def ready(self) -> bool:
        return True

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        return True

    def release(self) -> None:
        pass

    def wait(self, timeout: Optional[float] = None) -> int:
        return 1

    def rawlink(self, callback: Callable[[Any], Any]) -> None:
        pass

    def unlink(self, callback: Callable[[Any], Any]) -> None:
        pass

    def __enter__(self) -> bool:
        return True

    def __exit__(self, typ: Any, value: Any, tb: Any) -> None:
        pass


class RLock:
    """A re-entrant mutex owned by a greenlet: its owner may acquire it again (each
    acquire needs a release); releasing it from another greenlet, or when not held,
    raises RuntimeError. Waiters are served in FIFO order."""

    __slots__ = ("_block", "_owner", "_count", "__weakref__")

    def __init__(self, hub: Any = None) -> None:
        self._block = Semaphore(1, hub)
        self._owner: Any = None
        self._count = 0

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} at {id(self):#x} count={self._count} "
                f"owner={self._owner!r}>")

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Take the lock, or count one more acquire by its owner. ``timeout``: as in
        Semaphore.acquire; one that is not a number is a TypeError even when the lock is
        free or already held (threading.RLock's behaviour)."""
        if timeout is not None:
            timeout_seconds(timeout)
        me = getcurrent()
        if self._owner is me:
            self._count += 1
            return True
        if not self._block.acquire(blocking, timeout):
            return False
        self._owner = me
        self._count = 1
        return True

    def release(self) -> None:
        if self._owner is not getcurrent():
            raise RuntimeError(f"cannot release un-acquired lock (owner: {self._owner!r}, "
                               f"current: {getcurrent()!r})")
        self._count -= 1
        if not self._count:
            self._owner = None
            self._block.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, typ: Any, value: Any, tb: Any) -> None:
        self.release()

    def locked(self) -> bool:
        return self._count > 0

    def _is_owned(self) -> bool:
        return self._owner is getcurrent()

    # threading.Condition support
    def _release_save(self) -> Tuple[int, Any]:
        count, owner = self._count, self._owner
        self._count = 0
        self._owner = None
        self._block.release()
        return count, owner

    def _acquire_restore(self, state: Tuple[int, Any]) -> None:
        self._block.acquire()
        self._count, self._owner = state
