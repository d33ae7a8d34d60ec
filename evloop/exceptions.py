"""Exceptions of the greenlet layer, with gevent's names.

Why it exists: the hub, the C hot path and the synchronisation primitives raise these, and
user code catches them by these names (``from evloop.exceptions import LoopExit``).

What it must not do: import anything but greenlet (the C core receives these classes from
evloop.hub, so this module sits below the hub).
"""
from greenlet import GreenletExit

__all__ = ["LoopExit", "BlockingSwitchOutError", "InvalidSwitchError",
           "ConcurrentObjectUseError", "HubDestroyed", "GreenletExit", "InvalidThreadUseError"]


class LoopExit(Exception):
    """The current greenlet blocked and nothing can ever wake it: the hub's loop has no
    active referenced watcher or queued callback left."""


class BlockingSwitchOutError(AssertionError):
    """A blocking call was made from the hub itself (inside a loop callback), where it
    would deadlock."""


class InvalidSwitchError(AssertionError):
    """A greenlet waiting on a watcher was resumed by something else."""


class ConcurrentObjectUseError(AssertionError):
    """Two greenlets used an object meant for one at a time (a Waiter, a socket's read)."""


class InvalidThreadUseError(RuntimeError):
    """An object bound to one thread's hub was used from another thread."""


class HubDestroyed(GreenletExit):
    """Thrown into a hub greenlet to make it leave its loop when it is destroyed."""
