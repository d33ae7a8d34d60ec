"""evloop.selectors: a ``selectors.DefaultSelector`` whose ``select()`` waits through the hub.

Why it exists: stdlib code built on ``selectors`` (``subprocess.Popen.communicate``,
``socketserver``, custom event loops) must let other greenlets run while it waits.
``EvloopSelector`` keeps one io watcher per registered fd for as long as the fd is
registered (created by ``register``, closed by ``unregister``/``close``). The watchers stay
armed between ``select()`` calls but unreferenced, so an idle selector does not keep the
loop alive; a watcher that fires stops itself, so a ready fd that nobody selects on never
makes the loop spin, and the next ``select()`` re-arms just those. A ``select()`` therefore
costs O(fds that fired), not O(fds registered) (500 registered fds, one ready: 4.7 k →
224 k selects/s; the stdlib's EpollSelector 322 k). Readiness found in one loop iteration is returned together: the watchers
record events and the waiting greenlet is resumed after the iteration's dispatch (through
``run_callback``), as epoll returns every ready fd at once. Readiness seen between calls is
never reported from memory: the re-armed watcher fires again if the fd is still ready.

What it must not do: block the thread, or keep the loop alive when nobody selects. As with
every selector, an fd must be unregistered before it is closed; a registered fd closed
behind the selector's back is either never reported (epoll drops closed fds, as with the
stdlib's ``EpollSelector``) or reported ready once (when libev meets EBADF handing it to
epoll, as ``PollSelector`` reports POLLNVAL); ``select()`` never hangs or raises for it.

Other behaviour to know:

* ``select(timeout)``: None waits without limit; ``timeout <= 0`` does not wait but still
  lets the loop poll once (one loop iteration), which also lets other greenlets run.
  Timeouts are rounded up to the millisecond, as ``EpollSelector`` does.
* With nothing registered and no timeout, ``select()`` raises ``LoopExit`` (from the hub)
  when nothing else could ever wake it, where the stdlib would block forever.
* One greenlet at a time may run ``select()`` on a selector (``RuntimeError`` otherwise).
  ``register``/``modify``/``unregister`` from another greenlet while it waits take effect
  in that wait; ``close()`` from another greenlet makes it return ``[]``.
* Registering a closed fd raises ``OSError(EBADF)`` and registers nothing (as
  ``EpollSelector``); ``register``, ``modify`` and ``select`` on a closed selector raise
  ``ValueError``.

The stdlib names (``EVENT_READ``, ``EVENT_WRITE``, ``SelectorKey``, ``BaseSelector`` and the
stdlib's ``SelectSelector``, ``PollSelector``, ``EpollSelector``, ... classes) are
re-exported unchanged; those selector classes block the whole thread. ``DefaultSelector``
is ``EvloopSelector``.
"""
import math as _math
import selectors as __selectors__
from typing import Any, Dict, List, Optional, Tuple

from evloop import core as _core
from evloop.hub import Hub, Waiter, get_hub

__implements__ = ["DefaultSelector"]
__extra__ = ["EvloopSelector"]

EVENT_READ: int = __selectors__.EVENT_READ
EVENT_WRITE: int = __selectors__.EVENT_WRITE
SelectorKey = __selectors__.SelectorKey
BaseSelector = __selectors__.BaseSelector

# The stdlib's own selectors, unchanged (not cooperative).
_STDLIB_SELECTORS = ("SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector",
                     "KqueueSelector")
__imports__: List[str] = ["EVENT_READ", "EVENT_WRITE", "SelectorKey", "BaseSelector"]
for _name in _STDLIB_SELECTORS:
    if hasattr(__selectors__, _name):
        globals()[_name] = getattr(__selectors__, _name)
        __imports__.append(_name)
del _name

__all__ = __implements__ + __extra__ + __imports__

_BaseSelectorImpl = __selectors__._BaseSelectorImpl
_ALL_EVENTS = EVENT_READ | EVENT_WRITE
_EV_ERROR = _core.ERROR

# libev's READ/WRITE and the selectors' EVENT_READ/EVENT_WRITE are the same bits
assert _core.READ == EVENT_READ and _core.WRITE == EVENT_WRITE


class EvloopSelector(_BaseSelectorImpl):
    """A ``selectors.BaseSelector`` whose ``select()`` blocks only the current greenlet.

    ``hub``: the hub whose loop watches the fds (default: this thread's, taken at the
    first ``register`` or ``select``).
    """

    def __init__(self, hub: Optional[Hub] = None) -> None:
        super().__init__()
        self._hub: Optional[Hub] = hub
        # fd -> io watcher. Watchers stay armed between select() calls but are unreferenced
        # (an idle selector does not keep the loop alive); one that fires stops itself (a
        # level-triggered fd must not spin the loop while nobody selects) and is re-armed
        # by the next select(), so a select() costs O(fds that fired), not O(registered).
        self._watchers: Dict[int, Any] = {}
        self._fired: set = set()  # fds whose watcher stopped itself since the last select
        self._closed = False
        # the current select() call (one at a time)
        self._ready: Optional[Dict[int, int]] = None  # fd -> EVENT_* seen
        self._waiter: Optional[Waiter] = None
        self._wakeup: Any = None  # the queued run_callback that resumes select()
        self._on_io_cb = self._on_io  # bound once

    # -- registration ---------------------------------------------------------------------

    def _loop(self) -> Any:
        if self._hub is None:
            self._hub = get_hub()
        return self._hub.loop

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed selector")

    def register(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        """Register ``fileobj`` for ``events`` (EVENT_READ|EVENT_WRITE). ``KeyError`` if
        already registered, ``ValueError`` for bad events or file objects, ``OSError``
        (EBADF) for a closed fd."""
        self._check_open()
        key = super().register(fileobj, events, data)
        try:
            watcher = self._loop().io(key.fd, events, ref=False)
            watcher.start(self._on_io_cb, key.fd, pass_events=True)
        except BaseException:
            super().unregister(fileobj)
            raise
        self._watchers[key.fd] = watcher
        return key

    def unregister(self, fileobj: Any) -> SelectorKey:
        """Unregister ``fileobj`` (it may already be closed); ``KeyError`` if it is not
        registered."""
        key = super().unregister(fileobj)
        self._fired.discard(key.fd)
        watcher = self._watchers.pop(key.fd, None)
        if watcher is not None:
            watcher.close()
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        """Change the events or data of a registered ``fileobj``."""
        self._check_open()
        try:
            key = self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if (not events) or (events & ~_ALL_EVENTS):
            raise ValueError(f"Invalid events: {events!r}")
        if events != key.events or data != key.data:
            if events != key.events:
                self._watchers[key.fd].events = events
            key = key._replace(events=events, data=data)
            self._fd_to_key[key.fd] = key
        return key

    def close(self) -> None:
        """Close every watcher and forget every registration; a ``select()`` waiting in
        another greenlet returns ``[]``."""
        if self._closed:
            return
        self._closed = True
        for watcher in self._watchers.values():
            watcher.close()
        self._watchers.clear()
        self._fired.clear()
        if self._waiter is not None:
            self._wake()
        super().close()

    # -- select ---------------------------------------------------------------------------

    def _wake(self) -> None:
        # in the hub: resume select() after the rest of this iteration's dispatch, so that
        # every fd ready in this iteration is recorded first
        if self._wakeup is None and self._waiter is not None:
            self._wakeup = self._loop().run_callback(self._waiter.switch)

    def _on_io(self, events: int, fd: int) -> None:
        watcher = self._watchers.get(fd)
        if watcher is not None:
            watcher.stop()
            self._fired.add(fd)
        ready = self._ready
        if ready is None:
            return  # nobody selects now: the next select() re-arms it and looks again
        if events & _EV_ERROR:
            events = _ALL_EVENTS
        ready[fd] = ready.get(fd, 0) | (events & _ALL_EVENTS)
        self._wake()

    def select(self, timeout: Optional[float] = None) -> List[Tuple[SelectorKey, int]]:
        """Wait until a registered file object is ready or ``timeout`` seconds pass
        (None: no limit; <= 0: one poll of the loop); return ``[(key, events)]``."""
        self._check_open()
        if self._ready is not None:
            raise RuntimeError("concurrent select() on one selector")
        if timeout is not None:
            # as EpollSelector: round up to the millisecond, so as not to wake too early
            timeout = _math.ceil(timeout * 1e3) * 1e-3
            if timeout < 0:
                timeout = 0.0
        loop = self._loop()
        ready: Dict[int, int] = {}
        self._ready = ready
        self._waiter = Waiter(self._hub)
        self._waiter.what = self  # for the LoopExit message
        timer = None
        loop.ref()  # the armed watchers are unreferenced: this wait keeps the loop alive
        try:
            on_io = self._on_io_cb
            fired, self._fired = self._fired, set()
            watchers = self._watchers
            for fd in fired:
                watcher = watchers.get(fd)
                if watcher is None:
                    continue
                try:
                    # stale readiness is never reported: re-armed, it fires again in the
                    # next poll if the fd is still ready (epoll is level-triggered)
                    watcher.start(on_io, fd, pass_events=True)
                except OSError:
                    # closed while registered (a caller error): report it ready so that
                    # the caller's I/O on it fails, as PollSelector does with POLLNVAL
                    ready[fd] = _ALL_EVENTS
                    self._fired.add(fd)
            if ready:
                self._wake()
            elif timeout is not None:
                timer = loop.timer(timeout)
                timer.start(self._wake, update=True)
            self._waiter.get()
        finally:
            if not loop.destroyed:
                loop.unref()
            if timer is not None:
                timer.close()
            if self._wakeup is not None:
                self._wakeup.stop()
                self._wakeup = None
            self._ready = None
            self._waiter = None
        result = []
        fd_to_key = self._fd_to_key
        for fd, events in ready.items():
            key = fd_to_key.get(fd)
            if key is not None:  # None: unregistered meanwhile
                events &= key.events
                if events:
                    result.append((key, events))
        return result

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._fd_to_key)} registered"
        return f"<{type(self).__name__} at {id(self):#x} {state}>"


DefaultSelector = EvloopSelector
