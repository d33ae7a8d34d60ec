"""evloop.event: Event and AsyncResult — wake the greenlets waiting for something to happen.

Why it exists: it is how one greenlet tells others "it happened" (Event) or "here is the
result" (AsyncResult), with gevent's names and semantics. A waiter blocks through a
``Waiter`` (the hub's one way to block); ``set()`` wakes every waiter present at that
moment, in the order they started waiting, by queueing ``waiter.switch`` on the hub's
loop with ``run_callback_threadsafe`` — so ``set()`` may be called from a loop callback,
from any greenlet, or from another OS thread (the loop is woken from its poll).

What it must not do: switch to a waiter outside the hub, lose a wake-up when ``set()`` in
another thread races with ``wait()``, or leave a link, waiter or timer behind when a wait
ends in any way (woken, timed out, killed, LoopExit). It serves the greenlets of one hub
at a time: waiting from greenlets of two threads' hubs at once raises
InvalidThreadUseError (setting from any thread is fine).

Links (``rawlink``) are one-shot, as in gevent: each is called once, from the hub, with
this object as argument, when the object is (or becomes) ready, and is then removed. A
link's exception goes to the hub's ``handle_error`` and never stops the other links.
Unlike gevent, a link already scheduled by ``set()`` still runs if it is unlinked before
the hub gets to it. The line of waiters and links, its hub binding and the waiting itself
are the parking lot's (``evloop._waiters.FlagLot``).
"""
from typing import Any, Optional

from evloop._waiters import FlagLot, as_method
from evloop.timeout import Timeout

__all__ = ["Event", "AsyncResult"]

_NONE = object()     # AsyncResult: no value yet


class Event(FlagLot):
    """A flag greenlets can wait for: ``set()`` raises it and wakes every waiter,
    ``clear()`` lowers it, ``wait()`` blocks while it is down.

    ``set()`` may be called from any greenlet, from a loop callback or from another
    thread. ``wait()`` must be called from a greenlet (not the hub). A greenlet waiting
    for another thread's ``set()`` needs something keeping its loop alive (a timeout on
    the wait is enough); otherwise it gets LoopExit, as in gevent.
    """

    __slots__ = ()

    def __init__(self) -> None:
        self._init_lot()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} at {id(self):#x} "
                f"{'set' if self._flag else 'unset'} _links[{len(self._links)}]>")

    def is_set(self) -> bool:
        """True if the flag is set."""
        return self._flag

    isSet = is_set
    ready = is_set

    def clear(self) -> None:
        """Reset the flag: later ``wait()`` calls block until the next ``set()``. Greenlets
        already woken by a ``set()`` still return True."""
        self._flag = False

    def _reset_internal_locks(self) -> None:  # threading.Event compatibility (fork)
        pass

    def _at_fork_reinit(self) -> None:
        """threading calls this on a Thread's events in the child after fork: nobody is
        waiting there any more."""
        self._reset_lot()


# Event.set and Event.wait are the parking lot's own functions (FlagLot._raise_flag,
# FlagLot._wait_flag), not wrappers: each is the hot path of every hand-off, where a
# wrapper's Python call would cost about as much as the rest of the method.
Event.set = as_method(FlagLot._raise_flag, Event, "set")  # type: ignore[method-assign]
Event.wait = as_method(FlagLot._wait_flag, Event, "wait")  # type: ignore[method-assign]


class AsyncResult(FlagLot):
    """A one-shot result: ``set(value)`` or ``set_exception(exc)`` makes it ready and
    wakes every waiter; ``get()`` returns the value or raises the exception.

    Setting again replaces the stored outcome (the last ``set``/``set_exception`` wins;
    waiters already woken see the outcome stored when they run). ``set`` and
    ``set_exception`` may be called from any greenlet, a loop callback or another
    thread. An AsyncResult is a valid link target: ``greenlet.link(result)`` stores the
    greenlet's value or exception.
    """

    __slots__ = ("_value", "_exc_info")

    def __init__(self) -> None:
        self._init_lot()
        self._value: Any = _NONE
        self._exc_info: Optional[tuple] = None

    def __repr__(self) -> str:
        if self._exc_info is not None:
            state = f"exception={self._exc_info[1]!r}"
        elif self._value is not _NONE:
            state = f"value={self._value!r}"
        else:
            state = "unset"
        return f"<{type(self).__name__} at {id(self):#x} {state} _links[{len(self._links)}]>"

    # -- state ---------------------------------------------------------------------------------

    def ready(self) -> bool:
        """True once a value or an exception is stored."""
        return self._flag

    done = ready  # concurrent.futures compatibility

    def successful(self) -> bool:
        """True if ready with a value (not an exception)."""
        return self._flag and self._exc_info is None

    @property
    def value(self) -> Any:
        """The value passed to ``set()``, or None."""
        value = self._value
        return None if value is _NONE else value

    @property
    def exception(self) -> Optional[BaseException]:
        """The exception passed to ``set_exception()``, or None."""
        return self._exc_info[1] if self._exc_info is not None else None

    @property
    def exc_info(self) -> tuple:
        """``(type, value, traceback)`` of the stored exception, or ``()``."""
        return self._exc_info if self._exc_info is not None else ()

    # -- setting ---------------------------------------------------------------------------------

    def set(self, value: Any = None) -> None:
        """Store ``value`` and wake every waiter."""
        self._value = value
        self._exc_info = None
        self._raise_flag()

    set_result = set

    def set_exception(self, exception: BaseException, exc_info: Optional[tuple] = None) -> None:
        """Store ``exception`` (``get()`` will raise it, with the traceback of ``exc_info``
        if given) and wake every waiter."""
        if exc_info:
            info = (exc_info[0], exc_info[1], exc_info[2])
        else:
            if isinstance(exception, type) and issubclass(exception, BaseException):
                exception = exception()
            if not isinstance(exception, BaseException):
                raise TypeError(f"exception must be a BaseException instance or class, "
                                f"not {type(exception).__name__}")
            info = (type(exception), exception, exception.__traceback__)
        self._value = _NONE
        self._exc_info = info
        self._raise_flag()

    def __call__(self, source: Any) -> None:
        """Link target: store ``source``'s value or exception (a finished Greenlet)."""
        if source.successful():
            self.set(source.value)
        else:
            self.set_exception(source.exception, getattr(source, "exc_info", None))

    # -- getting ---------------------------------------------------------------------------------

    def _outcome(self) -> Any:
        info = self._exc_info
        if info is not None:
            raise info[1].with_traceback(info[2])
        return self._value

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Return the value or raise the stored exception, waiting for it if needed:
        ``block=False`` raises Timeout if not ready; ``timeout`` seconds without a result
        raise Timeout."""
        if self._flag:
            return self._outcome()
        if not block:
            raise Timeout()
        if timeout is None:
            self._wait_flag(None)
        elif not self._wait_flag_within(timeout):
            raise Timeout(timeout)
        return self._outcome()

    def get_nowait(self) -> Any:
        """``get(block=False)``: the value, the exception raised, or Timeout."""
        return self.get(block=False)

    def result(self, timeout: Optional[float] = None) -> Any:
        """concurrent.futures compatibility: ``get(timeout=timeout)``."""
        return self.get(timeout=timeout)

    def wait(self, timeout: Optional[float] = None) -> Any:
        """Block until ready or ``timeout`` seconds pass; return the value (None if the
        outcome is an exception or the wait timed out). Never raises the exception."""
        if not self._flag:
            if timeout is None:
                self._wait_flag(None)
            else:
                self._wait_flag_within(timeout)
        return self.value

    def cancel(self) -> bool:
        """concurrent.futures compatibility: an AsyncResult cannot be cancelled."""
        return False

    def cancelled(self) -> bool:
        return False
