"""evloop.time: the standard library's ``time`` module with a cooperative ``sleep``
(gevent's ``gevent.time``).

Why it exists: ``from evloop import time`` (or ``from evloop.time import sleep``) gives code
a ``time`` module whose ``sleep`` blocks only the calling greenlet, without monkey-patching
the real ``time`` module; ``evloop.monkey.patch_time`` puts the same ``sleep`` into it.
Every other name is the standard library's own object.

What it must not do: change the standard ``time`` module or any of its functions; ``sleep``
is ``evloop.hub.sleep`` (negative seconds count as 0, NaN raises ValueError, a non-number
TypeError), nothing else here switches greenlets.
"""
import time as __time__
from time import *  # noqa: F401,F403 - evloop.time is a drop-in for time

from evloop.hub import sleep

#: the names this module replaces in the standard ``time`` module (gevent's attribute)
__implements__ = ["sleep"]

# every public name of the standard module (``from time import *`` covers the same, but the
# module has no ``__all__`` and a name added in a new CPython must be here too)
for _name in dir(__time__):
    if not _name.startswith("__") and _name not in __implements__:
        globals()[_name] = getattr(__time__, _name)
del _name

__all__ = ["sleep"] + [name for name in dir(__time__)
                       if not name.startswith("_") and name != "sleep"]
