"""evloop.signal: ``signal.signal`` whose handlers run in greenlets, through the hub.

Why it exists: a handler installed with the stdlib ``signal.signal`` runs synchronously in
whatever greenlet the main thread is executing, often the hub itself, where it must not
block. A handler installed through this module runs in a new greenlet when the signal
arrives, started by a signal watcher on the main thread's loop, so it may wait
cooperatively (sleep, I/O, join). Every other name of ``signal`` is re-exported unchanged.

SIGCHLD is special, as in gevent, because evloop's child watchers own it while evloop
waits for children (evloop.os, evloop.subprocess): no signal watcher is used for it. The
handler is installed at the Python level wrapped in a trampoline that runs it in a new
greenlet, and, while evloop's SIGCHLD handler displaces Python's, the C core calls it
(through evloop.os's hook) for each SIGCHLD it receives. ``SIG_DFL``/``SIG_IGN`` become
the process's disposition again as soon as no child watcher needs evloop's handler (at
once if none does).

What it must not do: install anything when imported; run a handler inside the hub or
with the stdlib's synchronous semantics while the hub's watcher is active; break child
watchers that are running when the SIGCHLD disposition changes.
"""
import signal as _signal
import threading as _threading
from signal import *  # noqa: F401,F403 - evloop.signal is a drop-in for signal
from types import FrameType
from typing import Any, Callable, Dict, Optional, Union

from evloop import os as _evos
from evloop.hub import get_hub_if_exists, signal_handler as _signal_handler

__all__ = ["signal", "getsignal"]

_Handler = Union[Callable[[int, Optional[FrameType]], Any], int, _signal.Handlers, None]

# the originals, taken at import (evloop.monkey may put this module's in their place)
_signal_signal = _signal.signal
_signal_getsignal = _signal.getsignal

_SIGCHLD = getattr(_signal, "SIGCHLD", None)
_SPECIAL = (_signal.SIG_DFL, _signal.SIG_IGN)

#: signum -> the hub signal watcher running the handler installed for it here
_watched: Dict[int, _signal_handler] = {}


class _GreenTrampoline:
    """The Python-level SIGCHLD handler installed for ``handler``: Python calls it
    synchronously; it starts ``handler(signum, None)`` in a new greenlet from the hub."""

    __slots__ = ("__evloop_handler__",)

    def __init__(self, handler: Callable[..., Any]) -> None:
        self.__evloop_handler__ = handler

    def __call__(self, signum: int, frame: Optional[FrameType]) -> None:
        hub = get_hub_if_exists()  # Python runs signal handlers in the main thread
        if hub is None or hub.loop is None or hub.loop.destroyed:
            self.__evloop_handler__(signum, frame)  # no hub: the stdlib's way
            return
        hub.loop.run_callback_threadsafe(_evos._run_handler, hub, self.__evloop_handler__,
                                         signum)

    def __repr__(self) -> str:
        return f"<evloop.signal trampoline for {self.__evloop_handler__!r}>"


def getsignal(signalnum: int) -> _Handler:
    """``signal.getsignal``: the handler installed for ``signalnum`` (through this module
    or the stdlib), ``SIG_DFL``, ``SIG_IGN`` or None."""
    handler = _signal_getsignal(signalnum)
    return getattr(handler, "__evloop_handler__", handler)


_real_get_ident = __import__("_thread").get_ident  # captured before any monkey-patching


def _check_main_thread() -> None:
    # compare OS thread ids: after monkey-patching, current_thread() is per greenlet
    if _real_get_ident() != _threading.main_thread().ident:
        raise ValueError("signal only works in main thread of the main interpreter")


def signal(signalnum: int, handler: _Handler) -> _Handler:
    """Install ``handler`` for ``signalnum``; returns the previous handler.

    A callable runs as ``handler(signalnum, None)`` in a new greenlet each time the signal
    arrives, once the hub gets control (a main greenlet that never yields delays it).
    ``SIG_DFL``/``SIG_IGN`` restore the default or ignore the signal. Errors are the
    stdlib's: ValueError outside the main thread or for a bad number, OSError for a signal
    that cannot be caught, TypeError for a handler that is neither callable nor special.
    """
    _check_main_thread()
    if _SIGCHLD is not None and signalnum == _SIGCHLD:
        return _sigchld(handler)
    old = getsignal(signalnum)
    old_py = _signal_getsignal(signalnum)
    entry = _watched.pop(signalnum, None)
    if entry is not None:
        # the watcher's stop puts back the C handler it displaced: Python's, which holds
        # `old_py`
        entry.cancel()
    try:
        # the stdlib validates, and holds the handler (getsignal; the fallback if the
        # hub's loop goes away)
        _signal_signal(signalnum, handler)
        if callable(handler):
            _install_watcher(signalnum, handler)
    except BaseException:
        if old_py is not None:
            _signal_signal(signalnum, old_py)
            if entry is not None:
                _install_watcher(signalnum, old_py)
        raise
    return old


def _install_watcher(signalnum: int, handler: Any) -> None:
    watcher = _signal_handler(signalnum, handler, int(signalnum), None)
    _watched[signalnum] = watcher


def _sigchld(handler: _Handler) -> _Handler:
    if handler not in _SPECIAL and not callable(handler):
        raise TypeError("signal handler must be signal.SIG_IGN, signal.SIG_DFL, or a "
                        "callable object")
    old = getsignal(_SIGCHLD)
    installed = _GreenTrampoline(handler) if callable(handler) else handler
    _evos._set_sigchld(installed)
    return old
