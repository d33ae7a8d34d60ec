"""evloop's loop under gevent: ``GEVENT_LOOP=evloop.integrations.gevent.loop``.

Why it exists: gevent's hub runs on any loop class that meets its ``ILoop``/``IWatcher``
contract, chosen by the ``GEVENT_LOOP`` setting (a dotted path to the class); ``gevent.core``
then copies the globals and ``__all__`` of the module that defines the class. ``evloop.core``
already has gevent's loop, watcher and callback API (it is modelled on it), so this module
is thin. It holds the three parts of gevent's contract that would bend the core's own
design if they lived there:

* the error policy: gevent's loops print an exception raised by the error handler (the hub)
  and keep running, and a loop without an error handler prints and breaks; evloop's core
  stops ``run()`` with such an exception instead, which evloop's own hub relies on;
* ``HubDestroyed``: when gevent destroys a hub it throws that exception into the hub
  greenlet; the loop must drop its queued callbacks and break, not report it;
* the ``zope.interface`` declarations of gevent's interfaces (the core imports neither
  gevent nor zope).

What it must not do: wrap the hot paths. The subclass only adds ``handle_error`` (called on
errors only) and ``_format`` (gevent's hub repr); watchers, ``run_callback`` and dispatch are
the core's C code unchanged.
"""
import sys
import traceback
from types import TracebackType
from typing import Any, Optional, Type

from zope.interface import classImplements

from gevent._interfaces import ICallback, ILoop, IWatcher
from gevent.exceptions import HubDestroyed

from evloop import core as _core
from evloop.core import *  # noqa: F401,F403  (gevent.core copies this module's names)
from evloop.core import GEVENT_CORE_EVENTS

#: gevent's name for the marker that io watchers replace with the event mask
EVENTS = GEVENT_CORE_EVENTS


class loop(_core.loop):
    """``evloop.core.loop`` with gevent's error policy; see the module docstring."""

    __slots__ = ()

    def _format(self) -> str:
        # what gevent's Hub.__repr__ (and so its LoopExit and InvalidSwitchError messages)
        # shows for its loop
        if self.destroyed:
            return "destroyed"
        msg = str(self.backend)
        if self.default:
            msg += " default"
        msg += " pending=%d ref=%d" % (self.pendingcnt, self.activecnt)
        fileno = self.fileno()
        if fileno is not None:
            msg += " fileno=%d" % fileno
        return msg + " callbacks=%d" % self.callback_count

    def handle_error(self, context: Any, type: Optional[Type[BaseException]],
                     value: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if type is HubDestroyed:
            # Hub.destroy() threw this into the hub greenlet, which is suspended in one of
            # our callbacks: end run() so the hub can exit, and let nothing queued for the
            # dead hub run later (the default loop outlives its hub)
            self.clear_callbacks()
            self.break_()
            return
        error_handler = self.error_handler
        if error_handler is None:
            # gevent's loops without a hub: print, and stop this run()
            traceback.print_exception(type, value, tb)
            self.break_()
            return
        handle_error = getattr(error_handler, "handle_error", error_handler)
        try:
            handle_error(context, type, value, tb)
        except:  # noqa: E722 - gevent's contract: nothing raised here stops the loop
            try:
                print("evloop: exception in the error handler %r" % (handle_error,),
                      file=sys.stderr)
                traceback.print_exc()
            except:  # noqa: E722 - stderr itself may be gone (interpreter shutdown)
                pass


classImplements(loop, ILoop)
classImplements(_core.callback, ICallback)
classImplements(_core.watcher, IWatcher)

__all__ = list(_core.__all__) + ["EVENTS", "GEVENT_CORE_EVENTS"]
