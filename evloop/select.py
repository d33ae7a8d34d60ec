"""evloop.select: ``select()`` and ``poll()`` that block only the calling greenlet.

Why it exists: code written against the stdlib ``select`` module must wait through the hub
so that other greenlets run meanwhile. Both functions first ask the kernel without
blocking (the real ``select``/``poll`` with a zero timeout: exact stdlib answers and
errors, and an already-ready fd returns at once); only when nothing is ready do they start
one io watcher per fd plus a timer and wait on a Waiter. When a watcher fires, the kernel
is asked again, so the answer is as complete and as exact as the stdlib's.

What it must not do: block the thread, or leave a watcher behind. Every watcher and timer
it starts is closed before it returns, whatever ends the wait (readiness, timeout, kill,
``Timeout``). It never keeps watchers between calls either: the caller may close an fd the
moment the call returns.

Differences from the stdlib, on purpose:

* ``select()`` accepts fds >= FD_SETSIZE (it falls back to ``poll`` for its kernel checks,
  with ``select``'s readiness rules) instead of raising ``ValueError``.
* ``xlist`` (exceptional conditions, e.g. TCP urgent data) is checked with the kernel when
  the call starts and every time it wakes, but libev cannot watch for it, so an fd that is
  only in ``xlist`` does not by itself wake a blocked ``select()`` (gevent ignores xlist
  altogether).
* ``poll()`` is woken by ``POLLIN``/``POLLRDNORM``/``POLLRDBAND`` (a read watcher) and
  ``POLLOUT``/``POLLWRNORM``/``POLLWRBAND`` (a write watcher). An fd registered only for
  ``POLLPRI`` (or for nothing) is reported when the poll wakes for another reason, but does
  not wake it. ``POLLHUP``/``POLLERR``/``POLLNVAL`` are reported exactly as the kernel
  reports them.
* A call that returns without waiting (something ready, or a zero timeout) still yields
  once to the hub (``sleep(0)``), as gevent does: a greenlet polling in a loop must not
  starve the others. Called from the hub itself (a loop callback), it does not yield.
* With nothing to wait for and no timeout (``select([], [], [])``, an empty ``poll()``),
  the stdlib blocks forever; here, as in gevent, the hub raises ``LoopExit`` when no other
  watcher or greenlet could ever wake the caller.
* A closed fd makes ``select()`` raise ``OSError(EBADF)`` and ``poll()`` report
  ``POLLNVAL``, as the stdlib does — when the fd is closed before the call. An evloop
  socket closed by another greenlet *while* the call waits wakes it (``select()`` then
  reports the socket ready, ``poll()`` reports ``POLLNVAL``); an fd closed behind evloop's
  back (``os.close``) is not noticed until something else wakes the call.
* ``epoll``, ``kqueue``, ``kevent`` and ``devpoll`` (and their ``EPOLL*``/``KQ_*``
  constants) are not cooperative and are deliberately absent, so feature tests such as
  ``hasattr(select, "epoll")`` pick ``poll``; use the stdlib ``select`` module for them.

The other public names of the stdlib module (``error``, the ``POLL*`` constants,
``PIPE_BUF``) are re-exported unchanged; ``__implements__`` lists the names this module
replaces and ``__imports__`` the ones it copies.
"""
import errno as _errno
import operator as _operator
import os as _os
import select as __select__
from typing import (Any, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple, Union,
                    runtime_checkable)

from greenlet import getcurrent as _getcurrent

from evloop import core as _core
from evloop.hub import Waiter as _Waiter
from evloop.hub import _get_hub_if_exists, get_hub
from evloop.hub import sleep as _sleep

__implements__ = ["select", "poll"]

_stdlib_select = __select__.select
_stdlib_poll = __select__.poll

# Not cooperative: not copied from the stdlib module (see the module docstring).
_NOT_COPIED_NAMES = frozenset({"epoll", "kqueue", "kevent", "devpoll"})
_NOT_COPIED_PREFIXES = ("EPOLL", "KQ_")

__imports__: List[str] = []
for _name in dir(__select__):
    if (_name.startswith("_") or _name in __implements__ or _name in _NOT_COPIED_NAMES
            or _name.startswith(_NOT_COPIED_PREFIXES)):
        continue
    globals()[_name] = getattr(__select__, _name)
    __imports__.append(_name)
del _name

#: ``select.error`` (an alias of ``OSError`` since Python 3.3).
error = __select__.error

POLLIN: int = __select__.POLLIN
POLLPRI: int = __select__.POLLPRI
POLLOUT: int = __select__.POLLOUT
POLLERR: int = __select__.POLLERR
POLLHUP: int = __select__.POLLHUP
POLLNVAL: int = __select__.POLLNVAL
POLLRDNORM: int = __select__.POLLRDNORM
POLLRDBAND: int = __select__.POLLRDBAND
POLLWRNORM: int = __select__.POLLWRNORM
POLLWRBAND: int = __select__.POLLWRBAND

__all__ = sorted(set(__implements__) | set(__imports__))

_READ = _core.READ
_WRITE = _core.WRITE
_EV_ERROR = _core.ERROR

# How select(2) on Linux turns poll bits into its three sets (fs/select.c).
_SELECT_READ_BITS = POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR
_SELECT_WRITE_BITS = POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR
_SELECT_EXCEPT_BITS = POLLPRI

# Which poll bits a read / write io watcher can wake for.
_POLL_READ_BITS = POLLIN | POLLRDNORM | POLLRDBAND
_POLL_WRITE_BITS = POLLOUT | POLLWRNORM | POLLWRBAND
_POLL_DEFAULT_MASK = POLLIN | POLLPRI | POLLOUT

_C_INT_MAX = 2 ** 31 - 1

# Timeouts are converted by the stdlib's own code, so that every CPython's rules and error
# messages apply as they are on that version (3.15, for one, takes any real number of
# milliseconds in poll() and clamps what an int cannot hold, where 3.10-3.14 raise
# OverflowError). Common values take a fast path whose result is the same on every
# supported version (3.10-3.15); anything else is first handed to the stdlib function with
# arguments that make it return or raise at once, never wait:
# * select(): the timeout is converted before the fd lists are read; a list that raises
#   _TimeoutAccepted when iterated ends the call right after the conversion succeeded.
# * poll(): a poll object whose only fd is one no process can have open (Linux caps fds
#   below fs.nr_open <= 2**30; so do the BSDs and macOS) gets POLLNVAL for it from the
#   kernel at once, whatever the timeout.
_NEVER_OPEN_FD = _C_INT_MAX


class _TimeoutAccepted(Exception):
    pass


class _StopAfterTimeout:
    def __iter__(self) -> Any:
        raise _TimeoutAccepted


def _as_number(timeout: Any) -> float:
    """A timeout the stdlib accepted, as a float."""
    try:
        return float(_operator.index(timeout))
    except TypeError:
        return float(timeout)


def _select_timeout(timeout: Any) -> Optional[float]:
    """``select``'s timeout in seconds, validated as the running stdlib does; None: no
    limit."""
    if timeout is None:
        return None
    if type(timeout) in (int, float) and 0 <= timeout < 1e9:  # NaN fails the comparison
        return float(timeout)
    try:
        _stdlib_select(_StopAfterTimeout(), [], [], timeout)
    except _TimeoutAccepted:
        return _as_number(timeout)
    raise AssertionError("select() returned without reading its fd lists")


def _poll_timeout(timeout: Any) -> Optional[float]:
    """``poll``'s timeout in milliseconds, validated as the running stdlib does; return
    seconds, None for no limit (None or negative)."""
    if timeout is None:
        return None
    if not (type(timeout) in (int, float) and -_C_INT_MAX - 1 <= timeout <= _C_INT_MAX):
        checker = _stdlib_poll()
        checker.register(_NEVER_OPEN_FD, POLLIN)
        checker.poll(timeout)
        timeout = _as_number(timeout)
    if timeout < 0:
        return None
    return timeout / 1000.0


_WOKEN_BY_IO = object()
_WOKEN_BY_TIMER = object()


@runtime_checkable
class HasFileno(Protocol):
    def fileno(self) -> int: ...


FileDescriptorLike = Union[int, HasFileno]
_SelectResult = Tuple[List[Any], List[Any], List[Any]]


def _fileno(obj: Any) -> int:
    """An fd from an int or an object with ``fileno()``, with the stdlib's errors
    (``PyObject_AsFileDescriptor``)."""
    if isinstance(obj, int):
        fd = obj
    else:
        meth = getattr(obj, "fileno", None)
        if meth is None:
            raise TypeError("argument must be an int, or have a fileno() method.")
        fd = meth()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if fd > _C_INT_MAX or fd < -_C_INT_MAX - 1:
        raise OverflowError("Python int too large to convert to C int")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return int(fd)


def _yield() -> None:
    """sleep(0), except in the hub (a loop callback), which cannot block."""
    hub = _get_hub_if_exists()
    if hub is not None and _getcurrent() is hub:
        return
    _sleep(0)


def _as_sequence(objs: Iterable[Any]) -> Sequence[Any]:
    return objs if isinstance(objs, (list, tuple)) else list(objs)


class _Wait:
    """One blocking wait: io watchers for ``fd -> READ|WRITE``, an optional timer, and a
    Waiter that the first event resumes directly from the hub. ``seen`` collects the
    events libev reported; ``close()`` closes everything."""

    __slots__ = ("waiter", "seen", "watchers", "timer")

    def __init__(self, fd_events: Dict[int, int], seconds: Optional[float],
                 what: str) -> None:
        hub = get_hub()
        loop = hub.loop
        self.waiter = _Waiter(hub)
        self.waiter.what = what  # for the LoopExit message
        self.seen: Dict[int, int] = {}
        self.watchers: List[Any] = []
        self.timer: Any = None
        try:
            on_io = self._on_io
            io = loop.io
            add = self.watchers.append
            for fd, events in fd_events.items():
                watcher = io(fd, events)
                add(watcher)
                watcher.start(on_io, fd, pass_events=True)
            if seconds is not None:
                self.timer = loop.timer(seconds)
                self.timer.start(self.waiter.switch, _WOKEN_BY_TIMER, update=True)
        except BaseException:
            self.close()
            raise

    def _on_io(self, events: int, fd: int) -> None:
        # in the hub; the woken greenlet closes every watcher before it yields again, so
        # this resumes it at most once
        seen = self.seen
        first = not seen
        seen[fd] = seen.get(fd, 0) | events
        if first:
            self.waiter.switch(_WOKEN_BY_IO)

    def get(self) -> Any:
        return self.waiter.get()

    def close(self) -> None:
        for watcher in self.watchers:
            watcher.close()
        self.watchers = []
        if self.timer is not None:
            self.timer.close()
            self.timer = None


# -- select --------------------------------------------------------------------------------

def _select_by_poll(rlist: Sequence[Any], wlist: Sequence[Any],
                    xlist: Sequence[Any]) -> _SelectResult:
    """A non-blocking ``select`` done with ``poll`` (no FD_SETSIZE limit), with Linux
    select's readiness rules and errors."""
    rfds = [_fileno(obj) for obj in rlist]
    wfds = [_fileno(obj) for obj in wlist]
    xfds = [_fileno(obj) for obj in xlist]
    masks: Dict[int, int] = {}
    for fds, bits in ((rfds, POLLIN), (wfds, POLLOUT), (xfds, POLLPRI)):
        for fd in fds:
            masks[fd] = masks.get(fd, 0) | bits
    poller = _stdlib_poll()
    for fd, mask in masks.items():
        poller.register(fd, mask)
    revents = dict(poller.poll(0))
    for fd, ev in revents.items():
        if ev & POLLNVAL:
            raise OSError(_errno.EBADF, _os.strerror(_errno.EBADF))
    return ([obj for obj, fd in zip(rlist, rfds) if revents.get(fd, 0) & _SELECT_READ_BITS],
            [obj for obj, fd in zip(wlist, wfds) if revents.get(fd, 0) & _SELECT_WRITE_BITS],
            [obj for obj, fd in zip(xlist, xfds)
             if revents.get(fd, 0) & _SELECT_EXCEPT_BITS])


def _select_now(rlist: Sequence[Any], wlist: Sequence[Any], xlist: Sequence[Any],
                by_poll: bool) -> Tuple[_SelectResult, bool]:
    """The kernel's answer right now: (result, by_poll)."""
    if not by_poll:
        try:
            result = _stdlib_select(rlist, wlist, xlist, 0)
            return (result[0], result[1], result[2]), False
        except ValueError:
            # "filedescriptor out of range in select()" (an fd >= FD_SETSIZE): poll has no
            # such limit. A negative fd or a closed file object raises the same
            # ValueError again from _select_by_poll.
            pass
    return _select_by_poll(rlist, wlist, xlist), True


def select(rlist: Iterable[FileDescriptorLike], wlist: Iterable[FileDescriptorLike],
           xlist: Iterable[FileDescriptorLike],
           timeout: Optional[float] = None) -> _SelectResult:
    """``select.select`` that blocks only the current greenlet.

    Returns three lists of the ready objects (in the order given) after at most
    ``timeout`` seconds (None: no limit; 0: do not wait). Errors as the stdlib's:
    ``ValueError`` for a negative timeout or fd, ``OSError(EBADF)`` for a closed fd,
    ``TypeError`` for an object that is not an fd. See the module docstring for xlist.
    """
    seconds = _select_timeout(timeout)
    rlist = _as_sequence(rlist)
    wlist = _as_sequence(wlist)
    xlist = _as_sequence(xlist)
    result, by_poll = _select_now(rlist, wlist, xlist, False)
    if result[0] or result[1] or result[2] or seconds == 0:
        _yield()
        return result

    # every object passed the kernel check above: its fileno() is a valid fd
    fd_events: Dict[int, int] = {}
    for obj in rlist:
        fd_events[int(obj) if isinstance(obj, int) else obj.fileno()] = _READ
    for obj in wlist:
        fd = int(obj) if isinstance(obj, int) else obj.fileno()
        fd_events[fd] = fd_events.get(fd, 0) | _WRITE
    wait = _Wait(fd_events, seconds, "evloop.select.select()")
    try:
        why = wait.get()
        seen = wait.seen
    finally:
        wait.close()
    if not fd_events and not xlist:
        return [], [], []  # a plain sleep
    if why is _WOKEN_BY_IO and len(fd_events) == 1 and not xlist:
        events = next(iter(seen.values()))
        if not events & _EV_ERROR:
            # one fd: libev's report is the answer (skip a second system call)
            return ([obj for obj in rlist] if events & _READ else [],
                    [obj for obj in wlist] if events & _WRITE else [], [])
    result, by_poll = _select_now(rlist, wlist, xlist, by_poll)
    if result[0] or result[1] or result[2] or why is not _WOKEN_BY_IO:
        return result
    # libev saw an event the kernel's select rules do not count (e.g. a hang-up on an fd
    # watched for writing only): report what libev saw rather than wait again on a
    # level-triggered event that would wake us at once, forever
    return _from_libev(rlist, _READ, seen), _from_libev(wlist, _WRITE, seen), []


def _from_libev(objs: Sequence[Any], flag: int, seen: Dict[int, int]) -> List[Any]:
    ready = []
    for obj in objs:
        events = seen.get(int(obj) if isinstance(obj, int) else obj.fileno(), 0)
        if events & (flag | _EV_ERROR):
            ready.append(obj)
    return ready


# -- poll ----------------------------------------------------------------------------------

class poll:
    """``select.poll`` that blocks only the current greenlet.

    ``register(fd, eventmask=POLLIN|POLLPRI|POLLOUT)``, ``modify(fd, eventmask)``,
    ``unregister(fd)`` and ``poll(timeout_ms=None)`` behave as the stdlib's (same errors;
    ``poll`` returns ``[(fd, revents)]`` with the kernel's ``revents``, including
    ``POLLHUP``, ``POLLERR`` and ``POLLNVAL``). A kernel poll object mirrors the
    registrations; io watchers exist only while ``poll()`` waits.
    """

    def __init__(self) -> None:
        self._kernel = _stdlib_poll()
        self._masks: Dict[int, int] = {}  # fd -> eventmask, in registration order
        self._polling = False

    def register(self, fd: FileDescriptorLike, eventmask: int = _POLL_DEFAULT_MASK) -> None:
        """Watch ``fd`` for ``eventmask``; registering an fd again modifies it."""
        fileno = _fileno(fd)
        self._kernel.register(fileno, eventmask)
        self._masks[fileno] = _operator.index(eventmask)

    def modify(self, fd: FileDescriptorLike, eventmask: int) -> None:
        """Change the mask of a registered ``fd``; ``FileNotFoundError`` (ENOENT) if it
        is not registered."""
        fileno = _fileno(fd)
        self._kernel.modify(fileno, eventmask)
        self._masks[fileno] = _operator.index(eventmask)

    def unregister(self, fd: FileDescriptorLike) -> None:
        """Stop watching ``fd``; ``KeyError`` if it is not registered."""
        fileno = _fileno(fd)
        self._kernel.unregister(fileno)
        del self._masks[fileno]

    def poll(self, timeout: Optional[float] = None) -> List[Tuple[int, int]]:
        """Wait up to ``timeout`` milliseconds (None or negative: no limit) for a
        registered fd to be ready; return ``[(fd, revents)]``, empty on timeout."""
        seconds = _poll_timeout(timeout)
        if self._polling:
            raise RuntimeError("concurrent poll() invocation")
        self._polling = True
        try:
            result = self._kernel.poll(0)
            if not result and seconds != 0:
                return self._wait(seconds)
        finally:
            self._polling = False
        _yield()
        return result

    def _wait(self, seconds: Optional[float]) -> List[Tuple[int, int]]:
        fd_events: Dict[int, int] = {}
        for fd, mask in self._masks.items():
            events = (_READ if mask & _POLL_READ_BITS else 0) | \
                     (_WRITE if mask & _POLL_WRITE_BITS else 0)
            if events:
                fd_events[fd] = events
        wait = _Wait(fd_events, seconds, "evloop.select.poll.poll()")
        try:
            why = wait.get()
        finally:
            wait.close()
        result = self._kernel.poll(0)
        if result or why is not _WOKEN_BY_IO:
            return result
        # libev saw something the kernel's poll does not report now: report libev's view
        # rather than wait again on a level-triggered event (see select())
        masks = self._masks
        result = []
        for fd, events in wait.seen.items():
            if fd not in masks:
                continue  # unregistered meanwhile
            if events & _EV_ERROR:
                result.append((fd, POLLNVAL))
                continue
            revents = (POLLIN if events & _READ else 0) | (POLLOUT if events & _WRITE else 0)
            if revents:
                result.append((fd, revents))
        return result
