"""evloop._stdlib_multiprocessing: every private detail of ``multiprocessing`` that
``evloop.monkey.patch_multiprocessing`` relies on, with the CPython versions it was checked
on, and the cooperative pieces built on them.

Why it exists: ``multiprocessing.Pool`` (and ``concurrent.futures.ProcessPoolExecutor``)
run handler threads in the parent, which are greenlets once threading is patched. They talk
to the workers through ``multiprocessing.connection.Connection`` objects (pipes), whose
reads and writes are plain blocking ``os.read``/``os.write`` calls: the first handler that
waits for a worker's result blocks the whole OS thread, every other greenlet (the task
handler that would feed the workers, the caller) with it, and the pool hangs. The waits of
``multiprocessing.connection.wait`` already go through evloop (its selector is the stdlib
``PollSelector``, patched by ``patch_selectors``); what remains is the I/O of a Connection,
which has no public hook. And the child of a fork inherits the parent's hub with the
parent's greenlets (the pool's handlers among them): left alone they would run in the
worker the first time it waits, and steal the results meant for the parent.

The details (checked on 3.10.13, 3.11.7, 3.12.1, 3.13.0, 3.14.10 and 3.15.2; asserted per
version by tests/test_multiprocessing.py, which fails loudly when a new CPython changes
them):

* ``Connection._recv(self, size, read=_read)`` and ``Connection._send(self, buf,
  write=_write)`` (POSIX): every read and write of a Connection goes through them, and they
  take the function that does the I/O as their second parameter (os.read/os.write on POSIX),
  so a cooperative read/write can be passed in without copying their code.
* ``multiprocessing.synchronize.SemLock._make_methods(self)`` binds ``self.acquire`` to the
  ``_multiprocessing.SemLock`` in ``self._semlock`` (at creation and after unpickling), and
  ``SemLock.__enter__`` acquires through ``self._semlock`` too: a pool's queues hold such
  locks across their pipe I/O (``_rlock``, ``_wlock``), and ``Pool.terminate()`` takes one
  that a worker holds until the parent's task handler (a greenlet) feeds it.
* ``multiprocessing.util.register_after_fork(obj, func)``: ``func(obj)`` runs in the child
  of every process ``multiprocessing`` starts, from ``Process._bootstrap`` before the
  target runs (undocumented, but public by name and used that way by the stdlib itself).

What it must not do: change a Connection's file descriptor (it is shared with other
processes: making it non-blocking here would change it for them too), run the parent's
greenlets in a child, or be imported before ``evloop.monkey`` decides to patch.
"""
import os
import select as _select
from typing import Any, Callable, List

from greenlet import getcurrent

from evloop import core as _core
from evloop._originals import get_original
from evloop.hub import Hub, get_hub, get_hub_if_exists, set_hub, sleep

#: where each detail was checked
CHECKED_ON = ("3.10.13", "3.11.7", "3.12.1", "3.13.0", "3.14.10", "3.15.2")

#: the Connection methods that do its I/O, with the name of the parameter that receives the
#: I/O function (checked on every version in CHECKED_ON)
CONNECTION_IO = {"_recv": "read", "_send": "write"}
#: SemLock's method that binds acquire/release, and the attribute holding the C semaphore
#: (checked on every version in CHECKED_ON)
SEMLOCK_MAKE_METHODS = "_make_methods"
SEMLOCK_NATIVE = "_semlock"
#: multiprocessing.util's after-fork registry (checked on every version in CHECKED_ON)
REGISTER_AFTER_FORK = "register_after_fork"

# The originals: os.read/os.write may be patched later by others; select.poll is patched by
# patch_select (a zero-timeout poll of the original never blocks).
_real_read = get_original("os", "read")
_real_write = get_original("os", "write")
_real_poll = get_original("select", "poll")
# A write of at most PIPE_BUF bytes to a pipe that polls writable does not block (Linux:
# POLLOUT means a free page in the pipe); larger ones might, until a reader drains it.
_CHUNK = getattr(_select, "PIPE_BUF", 512)


def _ready(fd: int, events: int) -> bool:
    poller = _real_poll()
    poller.register(fd, events)
    return bool(poller.poll(0))


def _wait(fd: int, flags: int) -> None:
    hub = get_hub()
    watcher = hub.loop.io(fd, flags)
    try:
        hub.wait(watcher)
    finally:
        watcher.close()


def green_read(fd: int, size: int) -> bytes:
    """``os.read`` that waits for the fd through the hub first. The fd may also be
    non-blocking (a socket accepted by a patched ``socket``, as the fork server's are):
    EAGAIN waits again."""
    if not _ready(fd, _select.POLLIN | _select.POLLHUP | _select.POLLERR):
        _wait(fd, _core.READ)
    while True:
        try:
            return _real_read(fd, size)
        except BlockingIOError:
            _wait(fd, _core.READ)


def green_write(fd: int, data: Any) -> int:
    """``os.write`` that waits for the fd through the hub first and writes at most PIPE_BUF
    bytes (the caller, ``Connection._send``, writes the rest); EAGAIN (a non-blocking fd)
    waits again."""
    if not _ready(fd, _select.POLLOUT | _select.POLLHUP | _select.POLLERR):
        _wait(fd, _core.WRITE)
    chunk = data[:_CHUNK] if len(data) > _CHUNK else data
    while True:
        try:
            return _real_write(fd, chunk)
        except BlockingIOError:
            _wait(fd, _core.WRITE)


def cooperative_io(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """A replacement for ``Connection.<name>`` (one of CONNECTION_IO) that calls the
    original with the cooperative read/write. Used only where the original default is
    os.read/os.write (POSIX)."""
    io = green_read if name == "_recv" else green_write

    def method(self: Any, arg: Any, *_ignored: Any) -> Any:
        return original(self, arg, io)
    method.__name__ = name
    method.__qualname__ = f"Connection.{name}"
    method.__doc__ = original.__doc__
    method.__evloop_original__ = original  # type: ignore[attr-defined]
    return method


# -- multiprocessing's locks ------------------------------------------------------------

#: polling bounds for a contended multiprocessing lock (a POSIX semaphore has no fd to wait
#: on through the hub)
_POLL_MIN, _POLL_MAX = 0.0005, 0.01


def _others_may_run(hub: Any) -> bool:
    """Whether another greenlet of this thread could need to run while the caller waits: the
    hub has watchers or queued callbacks. When nothing can wake anything (a worker process
    waiting for its turn at the task queue), a plain blocking wait loses nothing."""
    loop = hub.loop
    return loop is not None and (loop.watcher_count > 0 or loop.callback_count > 0)


def cooperative_acquire(native: Any) -> Callable[..., bool]:
    """``acquire(block=True, timeout=None)`` for the ``_multiprocessing.SemLock``
    ``native``: a contended lock is polled with sleeps through the hub while other greenlets
    of the thread may need to run (the holder may be waiting for one of them)."""
    acquire = native.acquire

    def green_acquire(block: bool = True, timeout: Any = None) -> bool:
        if not block:
            return acquire(False)
        if acquire(False):
            return True
        hub = get_hub_if_exists()
        if hub is None or hub is getcurrent() or not _others_may_run(hub):
            return acquire(True, timeout)
        from time import monotonic
        deadline = None if timeout is None else monotonic() + max(0.0, float(timeout))
        delay = _POLL_MIN
        while True:
            sleep(delay if deadline is None else max(0.0, min(delay, deadline - monotonic())))
            if acquire(False):
                return True
            if deadline is not None and monotonic() >= deadline:
                return False
            delay = min(delay * 2, _POLL_MAX)
    green_acquire.__evloop_original__ = acquire  # type: ignore[attr-defined]
    return green_acquire


def cooperative_make_methods(original: Callable[[Any], None]) -> Callable[[Any], None]:
    """A replacement for ``SemLock._make_methods`` that binds the cooperative acquire."""
    def _make_methods(self: Any) -> None:
        original(self)
        self.acquire = cooperative_acquire(getattr(self, SEMLOCK_NATIVE))
    _make_methods.__evloop_original__ = original  # type: ignore[attr-defined]
    return _make_methods


def cooperative_enter(self: Any) -> bool:
    """``SemLock.__enter__`` through the (cooperative) ``acquire``."""
    return self.acquire()


# -- the child of a fork ------------------------------------------------------------------

_forked = [False]
#: the hubs the parent left to a forked child: never run again, kept so that the greenlets
#: waiting in them are not collected (collecting a suspended greenlet raises GreenletExit in
#: it, which would run the parent's cleanup code in the child)
_abandoned: List[Any] = []


def _note_fork() -> None:
    _forked[0] = True


class _Token:
    """What ``register_after_fork`` keys its weak registry on (kept by the module)."""


_TOKEN = _Token()


def fresh_hub_in_child(_token: Any = None) -> None:
    """In a process started by ``multiprocessing`` from a fork (directly, or from the fork
    server): give the process a hub of its own. The inherited one is left as it is, never
    run again; the greenlet that forked continues alone, as the one thread that forked does
    in a real child. Nothing happens in a process that did not fork (spawn)."""
    if not _forked[0]:
        return
    _forked[0] = False
    old = get_hub_if_exists()
    if old is None:
        return
    _abandoned.append(old)
    set_hub(None)
    # A new loop: the default one belongs to the abandoned hub, suspended inside its run().
    hub = Hub(default=False)
    current = getcurrent()
    if current.parent is not None:
        # forked from a greenlet (a pool's worker handler): the new hub returns to it, not to
        # the parent's main greenlet, which is suspended in the parent's code
        hub.parent = current
    set_hub(hub)


_registered = [False]


def install_after_fork() -> None:
    """Register ``fresh_hub_in_child`` (once)."""
    if _registered[0]:
        return
    _registered[0] = True
    from multiprocessing import util
    os.register_at_fork(after_in_child=_note_fork)
    getattr(util, REGISTER_AFTER_FORK)(_TOKEN, fresh_hub_in_child)
