"""evloop.core: the low-level libev loop, shaped like ``gevent.core``.

Why it exists: it is the one module that imports the compiled extension (``evloop._ev``);
everything above it (the hub, the integrations) uses the loop through these names. The
types are C types defined in ``csrc/`` (docs/architecture.md, "The C glue's rooms") — a
watcher's callback is called directly from libev's dispatch, with no Python or cffi frame
in between.

What it must not do: add Python-level wrappers around the hot paths (``start``,
``run_callback``, dispatch); anything here runs at import time or on error paths only.
See docs/core.md for the semantics.
"""
import atexit as _atexit
import os as _os

from evloop._ev import lib as _lib

if _lib.evloop_bootstrap() != 0:  # pragma: no cover - only on interpreter-level failure
    raise ImportError("evloop: could not initialise the C core")

from evloop._cext import (  # noqa: E402  (the bootstrap above creates this module)
    ASYNC, CHECK, CHILD, CLEANUP, CUSTOM, EMBED, ERROR, EVBACKEND_EPOLL, EVBACKEND_KQUEUE,
    EVBACKEND_POLL, EVBACKEND_PORT, EVBACKEND_SELECT, EVBREAK_ALL, EVBREAK_CANCEL,
    EVBREAK_ONE, EVFLAG_AUTO, EVFLAG_FORKCHECK, EVFLAG_NOENV, EVFLAG_NOINOTIFY,
    EVFLAG_NOSIGMASK, EVFLAG_SIGNALFD, FORK, IDLE, MAXPRI, MINPRI, NONE, PERIODIC, PREPARE,
    READ, SIGNAL, STAT, TIMER, UNDEF, WRITE, async_, callback, check, child,
    embeddable_backends, fork, get_header_version, get_version, idle, io, loop, prepare,
    recommended_backends, signal, stat, supported_backends, time, timer, watcher,
    _after_fork_child, Waiter, _hub_wait, _sleep, _hub_configure, getcurrent,
    sleep as _c_sleep, _get_hub_if_exists, _set_hub, SockIO, _io_configure,
    _sock_install, _new_waiter,
    _greenlet_enter, _greenlet_leave, _greenlets_running,
    AioLoop as _AioLoop, AioHandle as _AioHandle, AioTimerHandle as _AioTimerHandle,
    _aio_configure, _aio_transport_types, _aio_pipe_types, _recv, _park_hub_threads,
    _set_sigchld_hook,
)

# A loop inherited through fork shares its epoll and wake-up fds with the parent: mark
# every live loop for reinitialisation in the child (what ``loop.reinit()`` does).
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_child)

# At exit (after non-daemon threads were joined, before the interpreter is finalized),
# threads still running an evloop loop stop taking the GIL: CPython would otherwise end
# them with pthread_exit() under the finalizing garbage collector, which crashes with
# greenlets (csrc/evloop_errors.c, evloop_park_if_exiting). Waits at most 0.25 s for them.
_atexit.register(_park_hub_threads, 0.25)

#: Fake event passed by gevent-style code; io watchers started with ``pass_events=True``
#: receive the real event mask as their first argument instead.
GEVENT_CORE_EVENTS = object()

__all__ = [
    "loop", "watcher", "io", "timer", "signal", "idle", "prepare", "check", "async_",
    "child", "stat", "fork", "callback",
    "get_version", "get_header_version", "supported_backends", "recommended_backends",
    "embeddable_backends", "time",
    "UNDEF", "NONE", "READ", "WRITE", "TIMER", "PERIODIC", "SIGNAL", "CHILD", "STAT",
    "IDLE", "PREPARE", "CHECK", "EMBED", "FORK", "CLEANUP", "ASYNC", "CUSTOM", "ERROR",
    "MINPRI", "MAXPRI", "EVBREAK_CANCEL", "EVBREAK_ONE", "EVBREAK_ALL",
    "EVFLAG_AUTO", "EVFLAG_NOENV", "EVFLAG_FORKCHECK", "EVFLAG_NOINOTIFY",
    "EVFLAG_SIGNALFD", "EVFLAG_NOSIGMASK",
    "EVBACKEND_SELECT", "EVBACKEND_POLL", "EVBACKEND_EPOLL", "EVBACKEND_KQUEUE",
    "EVBACKEND_PORT",
]
