"""evloop: a C-accelerated event loop for Python, with gevent's API.

Why it exists: it is the name programs import. libev (vendored, compiled by a cffi build)
does the polling; greenlets do the waiting. This module re-exports the greenlet API
(``spawn``, ``sleep``, ``joinall``, ``Timeout``, ...) so that ``import evloop as gevent``
runs gevent-style programs; submodules (``evloop.event``, ``evloop.queue``,
``evloop.lock``, ``evloop.pool``, ``evloop.local``, ...) load on first attribute access.

What it must not do: start a loop, touch a signal or patch anything at import; the hub is
created by the first call that needs it.
"""
import importlib as _importlib
from typing import Any

from evloop.exceptions import (BlockingSwitchOutError, ConcurrentObjectUseError,
                               GreenletExit, InvalidSwitchError, LoopExit)
from evloop.greenlet import (Greenlet, getcurrent, iwait, joinall, killall, spawn,
                             spawn_later, wait)
from evloop.hub import (Waiter, fork, get_hub, idle, kill, reinit, signal_handler, sleep,
                        spawn_raw)
from evloop.timeout import Timeout, with_timeout

__version__ = "0.1.0"

__all__ = [
    "Greenlet", "GreenletExit", "spawn", "spawn_later", "spawn_raw", "joinall", "killall",
    "sleep", "idle", "wait", "iwait", "kill", "getcurrent", "get_hub", "Timeout",
    "with_timeout", "signal_handler", "reinit", "fork", "Waiter", "LoopExit",
    "BlockingSwitchOutError", "ConcurrentObjectUseError", "InvalidSwitchError",
]

_SUBMODULES = {"core", "hub", "event", "lock", "queue", "pool", "local", "timeout",
               "greenlet", "exceptions", "socket", "ssl", "select", "selectors",
               "threadpool", "resolver", "subprocess", "os", "signal", "server", "monkey",
               "aio", "threading", "fileobject", "backdoor", "util", "events", "time"}


def __getattr__(name: str) -> Any:
    # PEP 562: ``evloop.queue`` and friends import on first use, as ``gevent.queue`` does
    if name in _SUBMODULES:
        return _importlib.import_module(f"evloop.{name}")
    raise AttributeError(f"module 'evloop' has no attribute {name!r}")
