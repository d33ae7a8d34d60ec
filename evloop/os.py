"""evloop.os: cooperative versions of the ``os`` functions that block on children or fds.

Why it exists: ``os.read``/``os.write`` on a pipe and ``os.waitpid`` block the whole thread,
and ``os.fork`` leaves the child with the parent's hub state. Here ``nb_read``/``nb_write``
wait for a non-blocking fd through the hub, ``fork``/``forkpty`` reinitialise the hub in
the child, and ``waitpid`` waits through a child watcher on the default loop (polling in
threads that run another loop). Every other name of ``os`` is re-exported unchanged.

Children are waited for through the default loop's child watchers, which reap per pid
(``waitpid(pid, WNOHANG)`` after SIGCHLD, csrc/evloop_signals.c): one watcher per pid somebody here
waits for, so a child that others wait for (asyncio's child watchers, ``subprocess`` in
other threads, the program's own ``os.waitpid``) keeps its status for them. Only a
``waitpid(-1)`` waiting here reaps any child, as ``os.waitpid(-1)`` itself would. A status
reaped here is recorded: a later ``waitpid`` still gets it, for 60 s, as in gevent. While
evloop's SIGCHLD handler is installed it displaces the Python-level one, which the C core
then calls (through a hook) in a new greenlet for each SIGCHLD received.

What it must not do: reap a child nobody here waits for (the stdlib ``subprocess``,
``multiprocessing`` and asyncio rely on getting their children's statuses); keep evloop's
SIGCHLD handler installed when nobody waits for a child; touch the default loop's watchers from another thread; change an fd's blocking
mode behind the caller's back; block the thread in ``waitpid`` for a child pid (process
groups and WUNTRACED/WCONTINUED go to the OS unchanged and may).
"""
import os as _os
import signal as _signal
import sys as _sys
import time as _time
from os import *  # noqa: F401,F403 - evloop.os is a drop-in for os
from typing import Any, Callable, Dict, List, Optional, Tuple

from greenlet import greenlet as _greenlet

from evloop import core as _core
from evloop.hub import Hub, Waiter, _fork_quietly, get_hub, get_hub_if_exists, reinit, sleep

__all__ = ["make_nonblocking", "nb_read", "nb_write", "fork", "fork_gevent",
           "fork_and_watch", "waitpid", "wait"]
if hasattr(_os, "forkpty"):
    __all__ += ["forkpty", "forkpty_gevent", "forkpty_and_watch"]

# The originals, taken at import: evloop.monkey may replace the module attributes with
# this module's functions.
_real_fork = _os.fork
_real_forkpty = getattr(_os, "forkpty", None)
_real_waitpid = _os.waitpid
_signal_signal = _signal.signal
_signal_getsignal = _signal.getsignal

_WNOHANG = _os.WNOHANG
_SIGCHLD = getattr(_signal, "SIGCHLD", None)
#: how long the status of a child reaped by a child watcher is kept for a later ``waitpid``
_STATUS_KEEP_SECONDS = 60.0
#: polling interval bounds where no child watcher can be used (threads without the
#: default loop)
_POLL_MIN, _POLL_MAX = 0.001, 0.05
#: a greenlet waiting for a child through a child watcher also asks the OS this often: the
#: child watchers hear nothing if some code installs a SIGCHLD handler over evloop's
SAFETY_POLL = 1.0


# -- non-blocking fds ----------------------------------------------------------------------


def make_nonblocking(fd: int) -> bool:
    """Put ``fd`` in non-blocking mode; True if it was blocking before."""
    if _os.get_blocking(fd):
        _os.set_blocking(fd, False)
        return True
    return False


def nb_read(fd: int, n: int) -> bytes:
    """Read up to ``n`` bytes from the non-blocking ``fd``, waiting (only this greenlet)
    until it is readable. ``b""`` at end of file. On a blocking fd this blocks the thread,
    as ``os.read`` would."""
    watcher = None
    try:
        while True:
            try:
                return _os.read(fd, n)
            except BlockingIOError:
                pass
            if watcher is None:
                hub = get_hub()
                watcher = hub.loop.io(fd, _core.READ)
            hub.wait(watcher)
    finally:
        if watcher is not None:
            watcher.close()


def nb_write(fd: int, buf: Any) -> int:
    """Write ``buf`` (or as much of it as the fd takes at once) to the non-blocking ``fd``,
    waiting (only this greenlet) until it is writable; returns the number of bytes
    written, as ``os.write``."""
    watcher = None
    try:
        while True:
            try:
                return _os.write(fd, buf)
            except BlockingIOError:
                pass
            if watcher is None:
                hub = get_hub()
                watcher = hub.loop.io(fd, _core.WRITE)
            hub.wait(watcher)
    finally:
        if watcher is not None:
            watcher.close()


# -- fork ----------------------------------------------------------------------------------


def fork_gevent() -> int:
    """``os.fork()``; in the child, reinitialise the hub (loop and thread pool)."""
    pid = _fork_quietly(_real_fork)
    if pid == 0:
        reinit()
    return pid


#: evloop's ``fork``: ``os.fork`` that reinitialises the hub in the child. Unlike gevent's
#: default it does not start a child watcher in the parent (that would keep evloop's
#: SIGCHLD handler installed for the child's whole life);
#: ``waitpid`` watches the child when it is called. ``fork_and_watch`` is gevent's variant.
fork = fork_gevent


class ChildStatus:
    """What ``fork_and_watch`` callbacks receive: the shape of a child watcher after
    it fired (``pid``, ``rpid``, ``rstatus``)."""

    __slots__ = ("pid", "rpid", "rstatus")

    def __init__(self, pid: int, rstatus: int) -> None:
        self.pid = self.rpid = pid
        self.rstatus = rstatus

    def __repr__(self) -> str:
        return f"<ChildStatus pid={self.pid} rstatus={self.rstatus}>"


def fork_and_watch(callback: Optional[Callable[[ChildStatus], Any]] = None,
                   loop: Any = None, ref: bool = False,
                   fork: Callable[[], int] = fork_gevent) -> int:
    """Fork, and in the parent watch the child until it exits: its status is recorded
    for ``waitpid`` and ``callback(status)`` (a ``ChildStatus``) is called from the hub.
    ``ref=True`` keeps the loop running until the child exits. Watching needs the default
    loop (the main thread's hub); elsewhere the child is not watched."""
    if loop is not None and not getattr(loop, "default", False):
        raise TypeError("child watchers are only available on the default loop")
    pid = fork()
    if pid:
        _watch(pid, None if callback is None else _StatusCallback(callback), ref=ref,
               new_child=True)
    return pid


class _StatusCallback:
    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[ChildStatus], Any]) -> None:
        self.callback = callback

    def __call__(self, rpid: int, status: int) -> None:
        self.callback(ChildStatus(rpid, status))


if hasattr(_os, "forkpty"):
    def forkpty_gevent() -> Tuple[int, int]:
        """``os.forkpty()``; in the child, reinitialise the hub. The master fd is left
        blocking."""
        pid, master_fd = _fork_quietly(_real_forkpty)
        if pid == 0:
            reinit()
        return pid, master_fd

    forkpty = forkpty_gevent

    def forkpty_and_watch(callback: Optional[Callable[[ChildStatus], Any]] = None,
                          loop: Any = None, ref: bool = False,
                          forkpty: Callable[[], Tuple[int, int]] = forkpty_gevent
                          ) -> Tuple[int, int]:
        """``fork_and_watch`` with ``forkpty``: returns ``(pid, master_fd)``."""
        result: List[Tuple[int, int]] = []

        def _fork() -> int:
            result.append(forkpty())
            return result[0][0]

        fork_and_watch(callback, loop, ref, _fork)
        return result[0]


# -- child registry ------------------------------------------------------------------------
# pid -> watches waiting for that child (pid -1: "any child"); only changed, and the child
# watchers only touched, in the thread of the default loop's hub (the main thread).
_watches: Dict[int, List["_Watch"]] = {}
# pid -> (wait status, time.monotonic() when reaped, consumed): reaped, not yet returned by
# waitpid. ``consumed``: an owner (a Popen) got it, so ``waitpid(-1)`` skips it; a
# ``waitpid`` for the pid still returns it (gevent's rule).
_statuses: Dict[int, Tuple[int, float, bool]] = {}
# pid -> the default loop's child watcher for it, active while the pid has active watches
# (-1: a child(0) watcher, which reaps any child: only while a waitpid(-1) waits)
_watchers: Dict[int, Any] = {}
_reaper_hub: Optional[Hub] = None
_stop_queued = False         # a loop callback will stop the idle child watchers


class _Watch:
    """One party waiting for a child: ``callback(pid, status)`` once, from the hub.
    ``claims``: a ``waitpid`` that returns the status (which the OS gives to one waiter
    only); ``consumes``: the child's owner (a Popen), after which ``waitpid(-1)`` does not
    hand the status out again."""

    __slots__ = ("pid", "callback", "ref", "claims", "consumes", "active")

    def __init__(self, pid: int, callback: Optional[Callable[[int, int], Any]],
                 ref: bool, claims: bool = False, consumes: bool = False) -> None:
        self.pid = pid
        self.callback = callback
        self.ref = ref
        self.claims = claims
        self.consumes = consumes
        self.active = True

    def cancel(self) -> None:
        if not self.active:
            return
        self.active = False
        lst = _watches.get(self.pid)
        if lst is not None:
            try:
                lst.remove(self)
            except ValueError:
                pass
            if not lst and _watches.get(self.pid) is lst:
                del _watches[self.pid]
        _schedule_update(self.pid)


def _default_hub() -> Optional[Hub]:
    """This thread's hub if it runs the default loop (the only one with child watchers)."""
    hub = get_hub()
    loop = hub.loop
    if loop is None or loop.destroyed or not loop.default:
        return None
    return hub


def _watch(pid: int, callback: Optional[Callable[[int, int], Any]], ref: bool,
           new_child: bool = False, claims: bool = False, consumes: bool = False
           ) -> Optional[_Watch]:
    """Call ``callback(pid, status)`` (from the hub) when child ``pid`` (-1: any child)
    exits. None (nothing registered) unless this thread runs the default loop.
    ``new_child``: ``pid`` was just created, so a status recorded under it is stale."""
    global _reaper_hub
    if new_child:
        _statuses.pop(pid, None)
    hub = _default_hub()
    if hub is None:
        return None
    _reaper_hub = hub
    w = _Watch(pid, callback, ref, claims, consumes)
    _watches.setdefault(pid, []).append(w)
    _update_watcher(pid)
    return w


def _in_reaper_thread() -> bool:
    hub = _reaper_hub
    return hub is not None and get_hub_if_exists() is hub


def _schedule_update(pid: int) -> None:
    if _in_reaper_thread():
        _update_watcher(pid)
        return
    hub = _reaper_hub
    if hub is not None and hub.loop is not None and not hub.loop.destroyed:
        hub.loop.run_callback_threadsafe(_update_watcher, pid)


def _update_watcher(pid: int) -> None:
    """Run the child watcher of ``pid`` while it has an active watch (referenced if one of
    them is). An idle one is stopped at the next loop iteration, and not while it holds a
    report (a child it reaped: the status is delivered first)."""
    global _stop_queued
    hub = _reaper_hub
    if hub is None or get_hub_if_exists() is not hub:
        return
    loop = hub.loop
    if loop is None or loop.destroyed:
        return
    live = [w for w in _watches.get(pid, ()) if w.active]
    cw = _watchers.get(pid)
    if not live:
        if cw is not None:
            cw.ref = False
            if not _stop_queued:
                _stop_queued = True
                loop.run_callback(_stop_idle_watchers)
        return
    ref = any(w.ref for w in live)
    if cw is None or cw.closed or cw.loop is not loop:
        if cw is not None:
            cw.close()
        # pid -1 (waitpid(-1)): an any-child watcher, which reaps with waitpid(-1)
        cw = _watchers[pid] = loop.child(pid if pid > 0 else 0, ref=ref)
    else:
        cw.ref = ref
    if not cw.active:
        # starting also makes the loop look for a child that exited before
        # (csrc/evloop_signals.c, evloop_sigchld_install)
        cw.start(_on_reaped, cw)


def _stop_idle_watchers() -> None:
    global _stop_queued
    _stop_queued = False
    for pid, cw in list(_watchers.items()):
        if any(w.active for w in _watches.get(pid, ())) or cw.pending:
            continue  # in use, or its report is still to come (it updates again)
        del _watchers[pid]
        cw.close()


def _on_reaped(watcher: Any) -> None:
    """A child watcher reaped ``watcher.rpid`` (the C pass reports it to the pid's watcher
    and to the any-child watcher: the second report of the same child is dropped)."""
    rpid, status = watcher.rpid, watcher.rstatus
    other = _watchers.get(rpid if watcher.pid == 0 else -1)
    if other is not None and other is not watcher and other.pending and other.rpid == rpid:
        other.stop()
        _schedule_update(-1 if watcher.pid != 0 else rpid)
    _child_exited(rpid, status)


def _reaper_pending(pid: int = -1) -> bool:
    """A child watcher reaped ``pid`` (-1: any child) and has not reported it yet."""
    for cw in list(_watchers.values()):
        if not cw.closed and cw.pending and (pid == -1 or cw.rpid == pid):
            return True
    return False


def _child_exited(pid: int, status: int, claimed: bool = False,
                  consumed: bool = False) -> None:
    """Child ``pid`` was reaped with ``status`` (by a child watcher, or by a ``waitpid`` of
    ours): record it (unless the reaping ``waitpid`` returns it: ``claimed``; ``consumed``:
    its owner has it) and tell its watches and one "any child" watch."""
    now = _time.monotonic()
    if _statuses:
        old = now - _STATUS_KEEP_SECONDS
        for p in [p for p, entry in _statuses.items() if entry[1] < old]:
            _statuses.pop(p, None)
    fired = [w for w in _watches.pop(pid, ()) if w.active]
    if not claimed:
        consumed = consumed or any(w.consumes for w in fired)
        _statuses[pid] = (status, now, consumed)
    anyw = _watches.get(-1)
    # one "any child" waitpid gets this child, unless a waitpid for its pid takes it
    while anyw and not claimed and not any(w.claims for w in fired):
        w = anyw.pop(0)
        if w.active:
            fired.append(w)
            break
    if anyw is not None and not anyw:
        _watches.pop(-1, None)
    for w in fired:
        w.active = False
        if w.callback is not None:
            try:
                w.callback(pid, status)
            except Exception:  # noqa: BLE001 - one bad callback must not stop the others
                _report_error(w)
    _schedule_update(pid)
    _schedule_update(-1)


def _report_error(context: Any) -> None:
    hub = _reaper_hub or get_hub_if_exists()
    if hub is not None:
        hub.handle_error(context, *_sys.exc_info())


def _sigchld_handler() -> Optional[Callable[..., Any]]:
    """The Python-level SIGCHLD handler (evloop.signal's wrapper unwrapped), if callable."""
    if _SIGCHLD is None:
        return None
    handler = _signal_getsignal(_SIGCHLD)
    handler = getattr(handler, "__evloop_handler__", handler)
    return handler if callable(handler) else None


def _chain_sigchld() -> None:
    """evloop's SIGCHLD handler (csrc/evloop_signals.c) displaced Python's and received a SIGCHLD:
    call the Python handler ourselves, in a new greenlet (it may block cooperatively), from
    the hub. The C core calls this once per SIGCHLD, from the default loop."""
    handler = _sigchld_handler()
    hub = _reaper_hub
    if hub is None or get_hub_if_exists() is not hub:
        hub = get_hub_if_exists()
    if handler is None or hub is None or hub.loop is None or hub.loop.destroyed:
        return
    hub.loop.run_callback_threadsafe(_run_handler, hub, handler, int(_SIGCHLD))


_core._set_sigchld_hook(_chain_sigchld)


def _run_handler(hub: Hub, handler: Callable[..., Any], signum: int) -> None:
    # runs as a loop callback in the hub: an exception goes to hub.handle_error
    _greenlet(handler, hub).switch(signum, None)


def _set_sigchld(handler: Any) -> None:
    """``signal.signal(SIGCHLD, handler)`` without breaking active child watchers: while
    evloop's handler is installed, the new handler becomes the one put back when the last
    child watcher stops (used by evloop.signal)."""
    hub = _reaper_hub
    if hub is None or get_hub_if_exists() is not hub:
        hub = get_hub_if_exists()
    loop = hub.loop if hub is not None else None
    if loop is None or loop.destroyed or not loop.default or not loop.sigchld_installed:
        _signal_signal(_SIGCHLD, handler)
        return
    loop.reset_sigchld()
    try:
        _signal_signal(_SIGCHLD, handler)
    finally:
        # put evloop's handler back; installing also makes the loop look for children
        # that exited in between
        loop.install_sigchld()


def _forget_children() -> None:
    """In a forked child: the parent's children are not ours; drop the registry and the
    child watchers (os.register_at_fork)."""
    global _reaper_hub, _stop_queued
    _stop_queued = False
    _watches.clear()
    _statuses.clear()
    watchers = list(_watchers.values())
    _watchers.clear()
    _reaper_hub = None
    for cw in watchers:
        try:
            cw.close()
        except Exception:  # noqa: BLE001 - never fail a fork
            pass


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_forget_children)


# -- waitpid -------------------------------------------------------------------------------


def _take_status(pid: int) -> Optional[Tuple[int, int]]:
    """Claim a recorded status: of ``pid``, or for -1 the oldest one."""
    if pid == -1:
        unconsumed = [(entry[1], p) for p, entry in list(_statuses.items()) if not entry[2]]
        if not unconsumed:
            return None
        pid = min(unconsumed)[1]
    entry = _statuses.pop(pid, None)
    return None if entry is None else (pid, entry[0])


def _owner_status(pid: int) -> Optional[int]:
    """For a child's owner (a Popen): the recorded status of ``pid``, now marked
    consumed (still there for ``waitpid(pid)``)."""
    entry = _statuses.get(pid)
    if entry is None:
        return None
    if not entry[2]:
        _statuses[pid] = (entry[0], entry[1], True)
    return entry[0]


def waitpid(pid: int, options: int) -> Tuple[int, int]:
    """``os.waitpid`` that blocks only the calling greenlet.

    ``pid > 0`` and ``pid == -1`` with options 0 or WNOHANG are cooperative: a status
    a child watcher already reaped is returned from the record; otherwise the OS is asked without
    blocking and, if the child still runs, the greenlet waits through a child watcher on
    the default loop (polling, in threads that run another loop). ``pid == 0``/``< -1``
    (process groups) and other options go to the OS as they are (and may block).
    ``ChildProcessError`` as from ``os.waitpid`` when there is no such child.
    """
    if pid > 0 and pid in _statuses:
        # recorded; unless the pid now belongs to a newer child (pids are reused)
        try:
            rpid, status = _real_waitpid(pid, _WNOHANG)
        except ChildProcessError:
            got = _take_status(pid)
            if got is not None:
                return got
        else:
            _statuses.pop(pid, None)  # stale
            if rpid:
                _child_exited(rpid, status, claimed=True)
                return rpid, status
    elif pid == -1:
        got = _take_status(pid)
        if got is not None:
            return got
    if (pid <= 0 and pid != -1) or options & ~_WNOHANG:
        return _real_waitpid(pid, options)
    try:
        rpid, status = _real_waitpid(pid, _WNOHANG)
    except ChildProcessError:
        # a child watcher may have reaped it, its report not yet delivered (or recorded meanwhile)
        got = _take_status(pid)
        if got is not None:
            return got
        if not _reaper_pending(pid):
            raise
        rpid, status = 0, 0
    if rpid:
        _child_exited(rpid, status, claimed=True)
        return rpid, status
    if options & _WNOHANG:
        return 0, 0
    return _wait_child(pid)


def wait() -> Tuple[int, int]:
    """``os.wait()``: ``waitpid(-1, 0)``, blocking only the calling greenlet."""
    return waitpid(-1, 0)


def _wait_child(pid: int) -> Tuple[int, int]:
    hub = get_hub()
    watched = _default_hub() is hub
    delay = _POLL_MIN
    while True:
        if watched:
            got = _wait_watched(hub, pid)
            if got is not None:
                _statuses.pop(got[0], None)  # claimed by this waitpid
                return got
        else:  # a thread without the default loop: poll, cooperatively
            sleep(delay)
            delay = min(delay * 2, _POLL_MAX)
        # no report (yet): ask the OS itself; after SAFETY_POLL seconds, this also covers
        # a SIGCHLD handler installed over evloop's, which would keep the watchers silent
        got = _take_status(pid)
        if got is not None:
            return got
        try:
            rpid, status = _real_waitpid(pid, _WNOHANG)
        except ChildProcessError:
            got = _take_status(pid)
            if got is not None:
                return got
            if watched and _reaper_pending(pid):
                continue  # a child watcher reaped it; the report comes at once
            raise
        if rpid:
            _child_exited(rpid, status, claimed=True)
            return rpid, status


def _wait_watched(hub: Hub, pid: int) -> Optional[Tuple[int, int]]:
    """Wait for a child watcher to report ``pid`` (-1: any child): ``(pid, status)``, or None
    after SAFETY_POLL seconds."""
    waiter = Waiter(hub)
    loop = hub.loop

    def _done(rpid: int, status: int) -> None:
        loop.run_callback_threadsafe(waiter.switch, (rpid, status))

    w = _watch(pid, _done, ref=True, claims=True)
    timer = loop.timer(SAFETY_POLL, ref=False)
    timer.start(waiter.switch, None, update=True)
    try:
        return waiter.get()
    finally:
        timer.close()
        if w is not None:
            w.cancel()
