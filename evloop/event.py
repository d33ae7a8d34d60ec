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
the hub gets to it.
"""
from collections import deque
from typing import Any, Callable, Optional

from evloop.exceptions import InvalidSwitchError, InvalidThreadUseError, LoopExit
from evloop.hub import Waiter, _seconds, _wait_within, get_hub
from evloop.timeout import Timeout

try:  # this thread's hub or None, straight from C (get_hub() adds a Python frame)
    from evloop.hub import _get_hub_if_exists as _current_hub
except ImportError:  # pragma: no cover - older hub module
    from evloop.hub import get_hub_if_exists as _current_hub
try:  # Waiter(hub) without argument parsing
    from evloop.core import _new_waiter
except ImportError:  # pragma: no cover - older core
    _new_waiter = Waiter

__all__ = ["Event", "AsyncResult"]

_TIMEOUT = object()  # what a wait's timer switches in with
# Waiter.switch unbound: run_callback(_switch, waiter, value) needs no bound-method object
_switch = Waiter.switch
_NONE = object()     # AsyncResult: no value yet


def _timeout_seconds(timeout: Any) -> float:
    """A wait's timeout in seconds (None is handled by the caller): a real number, not
    NaN; negative means 0 (as in gevent)."""
    if isinstance(timeout, (str, bytes, bool)):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    return _seconds(timeout, "timeout")


def _discard(links: deque, item: Any) -> None:
    try:
        links.remove(item)
    except ValueError:
        pass


def _explain_loopexit(exc: LoopExit, obj: Any) -> LoopExit:
    """A LoopExit naming ``obj``, for waits whose Waiter does not name what it waits for
    (setting ``waiter.what`` costs time on the hot path; this runs only on failure)."""
    orig = exc.__cause__ if isinstance(exc.__cause__, LoopExit) else exc
    hub = orig.args[1] if len(orig.args) > 1 else None
    return LoopExit(f"This operation would block forever: the current greenlet waits on "
                    f"{obj!r} and the hub has no active watcher or queued callback left "
                    f"that could wake it (hub: {hub!r})")


def _check_rebind(obj: Any, hub: Any, busy: bool) -> None:
    """``obj`` (bound to ``obj._hub``) is about to be used by a greenlet of ``hub``.
    Rebinding is allowed when nothing of the old hub waits on it (``busy`` False) or the
    old hub is gone; otherwise the object would have waiters in two threads."""
    old = obj._hub
    if old is not None and busy and old.loop is not None and not old.dead:
        raise InvalidThreadUseError(
            f"{obj!r} has waiters in the hub {old!r} of another thread; an evloop "
            f"synchronisation object serves the greenlets of one hub at a time "
            f"(other threads may only set/release it)")


class _Linkable:
    """Shared part of Event and AsyncResult: links, waiting, hub binding."""

    __slots__ = ("_flag", "_links", "_hub", "_loop", "_schedule", "__weakref__")

    def __init__(self) -> None:
        self._flag = False
        self._links: deque = deque()
        self._hub: Any = None
        self._loop: Any = None
        self._schedule: Any = None  # the hub loop's run_callback_threadsafe, bound once

    # -- hub binding -----------------------------------------------------------------------

    def _bind(self, hub: Any) -> None:
        _check_rebind(self, hub, bool(self._links))
        if self._hub is not None and self._hub.loop is None:
            self._links.clear()  # waiters of a destroyed hub will never run again
        self._hub = hub
        self._loop = hub.loop
        self._schedule = hub.loop.run_callback_threadsafe

    # -- links -------------------------------------------------------------------------------

    def rawlink(self, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(self)`` from the hub once this object is ready (at once — at the
        hub's next turn — if it already is). One-shot."""
        if not callable(callback):
            raise TypeError(f"Expected callable: {callback!r}")
        hub = get_hub()
        if hub is not self._hub:
            self._bind(hub)
        self._links.append(callback)
        if self._flag:
            self._notify()

    def unlink(self, callback: Callable[[Any], Any]) -> None:
        """Remove a callback added by rawlink (no error if it is not linked)."""
        _discard(self._links, callback)

    def linkcount(self) -> int:
        return len(self._links)

    def _notify(self) -> None:
        """Queue every current link on the hub's loop, in order (any thread)."""
        links = self._links
        try:
            schedule = self._schedule
            while links:
                link = links.popleft()
                if type(link) is Waiter:
                    schedule(_switch, link, self)
                else:
                    schedule(link, self)
        except IndexError:
            pass  # another thread emptied the deque between the test and the pop
        except ValueError:
            if self._loop is None or not self._loop.destroyed:
                raise
            links.clear()  # the hub's loop was destroyed: nobody left to wake

    # -- waiting -------------------------------------------------------------------------------

    def _wait(self, timeout: Any) -> bool:
        """Block until ready (True) or ``timeout`` seconds passed (returns the flag then)."""
        if timeout is not None:
            return self._wait_timeout(timeout)
        hub = _current_hub()
        if hub is None:
            hub = get_hub()
        if hub is not self._hub:
            self._bind(hub)
        waiter = _new_waiter(hub)
        links = self._links
        links.append(waiter)
        if self._flag:
            # set() in another thread between the caller's test and the append
            _discard(links, waiter)
            return True
        try:
            result = waiter.get()
        except LoopExit as ex:
            _discard(links, waiter)
            raise _explain_loopexit(ex, self) from ex
        except BaseException:
            _discard(links, waiter)
            raise
        if result is not self:
            _discard(links, waiter)
            raise InvalidSwitchError(f"Invalid switch into {type(self).__name__}.wait(): "
                                     f"{result!r}")
        return True

    def _wait_timeout(self, timeout: Any) -> bool:
        seconds = _timeout_seconds(timeout)
        if self._flag:
            return True
        if seconds == 0:
            return False
        hub = get_hub()
        if hub is not self._hub:
            self._bind(hub)
        waiter = _new_waiter(hub)
        waiter.what = self
        links = self._links
        links.append(waiter)
        if self._flag:
            _discard(links, waiter)
            return True
        try:
            result = _wait_within(waiter, seconds, _TIMEOUT)
        except BaseException:
            _discard(links, waiter)
            raise
        if result is self:
            return True
        _discard(links, waiter)
        if result is _TIMEOUT:
            return self._flag
        raise InvalidSwitchError(f"Invalid switch into {type(self).__name__}.wait(): "
                                 f"{result!r}")


class Event(_Linkable):
    """A flag greenlets can wait for: ``set()`` raises it and wakes every waiter,
    ``clear()`` lowers it, ``wait()`` blocks while it is down.

    ``set()`` may be called from any greenlet, from a loop callback or from another
    thread. ``wait()`` must be called from a greenlet (not the hub). A greenlet waiting
    for another thread's ``set()`` needs something keeping its loop alive (a timeout on
    the wait is enough); otherwise it gets LoopExit, as in gevent.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} at {id(self):#x} "
                f"{'set' if self._flag else 'unset'} _links[{len(self._links)}]>")

    def is_set(self) -> bool:
        """True if the flag is set."""
        return self._flag

    isSet = is_set
    ready = is_set

    def set(self) -> None:
        """Set the flag and wake every greenlet waiting now (from the hub, in the order
        they started waiting). Later ``wait()`` calls return at once until ``clear()``."""
        self._flag = True
        links = self._links
        if links:
            # inlined _notify(): this is the hot path of every hand-off
            try:
                schedule = self._schedule
                link = links.popleft()
                if type(link) is Waiter:
                    schedule(_switch, link, self)
                else:
                    schedule(link, self)
                while links:
                    link = links.popleft()
                    if type(link) is Waiter:
                        schedule(_switch, link, self)
                    else:
                        schedule(link, self)
            except IndexError:
                pass
            except ValueError:
                if self._loop is None or not self._loop.destroyed:
                    raise
                links.clear()

    def clear(self) -> None:
        """Reset the flag: later ``wait()`` calls block until the next ``set()``. Greenlets
        already woken by a ``set()`` still return True."""
        self._flag = False

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the flag is set or ``timeout`` seconds pass; return the flag (True
        if woken by ``set()``, even if cleared since; on timeout, the flag's value then).
        ``timeout`` None waits forever; 0 or negative only tests the flag."""
        if self._flag:
            return True
        if timeout is not None:
            return self._wait_timeout(timeout)
        # inlined _Linkable._wait(None)
        hub = _current_hub()
        if hub is None:
            hub = get_hub()
        if hub is not self._hub:
            self._bind(hub)
        waiter = _new_waiter(hub)
        links = self._links
        links.append(waiter)
        if self._flag:
            _discard(links, waiter)
            return True
        try:
            result = waiter.get()
        except LoopExit as ex:
            _discard(links, waiter)
            raise _explain_loopexit(ex, self) from ex
        except BaseException:
            _discard(links, waiter)
            raise
        if result is not self:
            _discard(links, waiter)
            raise InvalidSwitchError(f"Invalid switch into Event.wait(): {result!r}")
        return True

    def _reset_internal_locks(self) -> None:  # threading.Event compatibility (fork)
        pass

    def _at_fork_reinit(self) -> None:
        """threading calls this on a Thread's events in the child after fork: nobody is
        waiting there any more."""
        self._links.clear()
        self._hub = self._loop = self._schedule = None


class AsyncResult(_Linkable):
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
        _Linkable.__init__(self)
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
        self._flag = True
        if self._links:
            self._notify()

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
        self._flag = True
        if self._links:
            self._notify()

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
            self._wait(None)
        elif not self._wait_timeout(timeout):
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
                self._wait(None)
            else:
                self._wait_timeout(timeout)
        return self.value

    def cancel(self) -> bool:
        """concurrent.futures compatibility: an AsyncResult cannot be cancelled."""
        return False

    def cancelled(self) -> bool:
        return False
