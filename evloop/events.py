"""evloop.events: publish/subscribe of things that happen in the process (gevent's
``gevent.events``).

Why it exists: monitoring and plugins want to hear when the event loop is blocked, when
the process's memory passes a limit (and drops back), when a hub or its monitor thread
starts, and before/after ``evloop.monkey`` patches something
(a will-patch subscriber may veto with ``DoNotPatch``). evloop publishes an event object by
calling every callable in ``subscribers`` with it (``notify``); patch events also go to the
functions registered under the event's ``ENTRY_POINT_NAME`` entry-point group
(``notify_and_call_entry_points``). The patch events have evloop names
(``EvloopWillPatchAllEvent``, ...) and gevent's names as aliases of the same classes
(``GeventWillPatchAllEvent is EvloopWillPatchAllEvent``), so a subscriber written for
gevent that checks ``isinstance(event, GeventWillPatchAllEvent)`` against this module works.
The ``I...`` classes are plain base classes naming the attributes of each kind of event
(gevent's are ``zope.interface`` interfaces; evloop does not depend on zope).

``subscribers`` is evloop's own list, not ``zope.event.subscribers``: gevent's events and
evloop's are different objects, and a subscriber registered with gevent hears gevent only.

What it must not do: import anything but the standard library (the hub and the monkey
module publish through it), or do anything when nobody subscribed beyond one empty loop.
``notify`` lets a subscriber's exception propagate to the publisher, as zope.event does:
``DoNotPatch`` relies on that; the blocking monitor catches and reports what its
subscribers raise.
"""
import sys
from typing import Any, Callable, Dict, List, Optional

__all__ = [
    "subscribers", "notify", "notify_and_call_entry_points",
    "IEventLoopBlocked", "EventLoopBlocked",
    "IPeriodicMonitorThreadStartedEvent", "PeriodicMonitorThreadStartedEvent",
    "IHubCreatedEvent", "HubCreatedEvent",
    "DoNotPatch",
    "IEvloopPatchEvent", "EvloopPatchEvent",
    "IEvloopWillPatchEvent", "EvloopWillPatchEvent",
    "IEvloopDidPatchEvent", "EvloopDidPatchEvent",
    "IEvloopWillPatchModuleEvent", "EvloopWillPatchModuleEvent",
    "IEvloopDidPatchModuleEvent", "EvloopDidPatchModuleEvent",
    "IEvloopWillPatchAllEvent", "EvloopWillPatchAllEvent",
    "IEvloopDidPatchBuiltinModulesEvent", "EvloopDidPatchBuiltinModulesEvent",
    "IEvloopDidPatchAllEvent", "EvloopDidPatchAllEvent",
    "IMemoryUsageThresholdExceeded", "MemoryUsageThresholdExceeded",
    "IMemoryUsageUnderThreshold", "MemoryUsageUnderThreshold",
    # gevent's names for the same classes
    "IGeventPatchEvent", "GeventPatchEvent",
    "IGeventWillPatchEvent", "GeventWillPatchEvent",
    "IGeventDidPatchEvent", "GeventDidPatchEvent",
    "IGeventWillPatchModuleEvent", "GeventWillPatchModuleEvent",
    "IGeventDidPatchModuleEvent", "GeventDidPatchModuleEvent",
    "IGeventWillPatchAllEvent", "GeventWillPatchAllEvent",
    "IGeventDidPatchBuiltinModulesEvent", "GeventDidPatchBuiltinModulesEvent",
    "IGeventDidPatchAllEvent", "GeventDidPatchAllEvent",
]

#: the callables ``notify`` calls, in order, with each event (append or remove freely)
subscribers: List[Callable[[Any], Any]] = []


def notify(event: Any) -> None:
    """Call every subscriber with ``event``; a subscriber's exception propagates (the
    remaining subscribers are not called), as in zope.event."""
    for subscriber in list(subscribers):
        subscriber(event)


def notify_and_call_entry_points(event: Any) -> None:
    """``notify(event)``, then load each entry point registered in the group named by
    ``event.ENTRY_POINT_NAME`` (``importlib.metadata``) and call it with ``event``."""
    notify(event)
    group = getattr(event, "ENTRY_POINT_NAME", None)
    if not group:
        return
    from importlib import metadata
    for plugin in metadata.entry_points(group=group):
        plugin.load()(event)


# -- the hub and its monitor ------------------------------------------------------------

class IEventLoopBlocked:
    """Emitted (in the monitor thread) when a hub has not returned to its loop for longer
    than ``max_blocking_time``. Attributes: ``greenlet`` (the greenlet that appeared to
    block the loop, or None when it could not be told), ``blocking_time`` (seconds, about),
    ``info`` (a list of text lines, the blocked stack; subscribers may add to it), ``hub``
    (the blocked hub)."""

    greenlet: Any
    blocking_time: float
    info: List[str]
    hub: Any


class EventLoopBlocked(IEventLoopBlocked):
    """The event ``IEventLoopBlocked`` describes."""

    def __init__(self, greenlet: Any, blocking_time: float, info: List[str], *,
                 hub: Any = None) -> None:
        self.greenlet = greenlet
        self.blocking_time = blocking_time
        self.info = info
        self.hub = hub

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} greenlet={self.greenlet!r} "
                f"blocking_time={self.blocking_time:.3f} hub={self.hub!r}>")


class IMemoryUsageThresholdExceeded:
    """Emitted (in the monitor thread) when the process's memory usage is above
    ``EVLOOP_MAX_MEMORY_USAGE``, each check while it keeps growing. Attributes:
    ``mem_usage`` (bytes: the resident set size), ``max_allowed`` (bytes),
    ``memory_info`` (the figures read from ``/proc/self/statm``, in bytes, named as
    psutil's ``memory_info()``: ``rss``, ``vms``, ``shared``, ``text``, ``lib``, ``data``,
    ``dirty``)."""

    mem_usage: int
    max_allowed: int
    memory_info: Any


class _AbstractMemoryEvent:
    def __init__(self, mem_usage: int, max_allowed: int, memory_info: Any) -> None:
        self.mem_usage = mem_usage
        self.max_allowed = max_allowed
        self.memory_info = memory_info

    def __repr__(self) -> str:
        # gevent's format
        return (f"<{type(self).__name__} used={self.mem_usage:d} max={self.max_allowed:d} "
                f"details={self.memory_info!r}>")


class MemoryUsageThresholdExceeded(_AbstractMemoryEvent, IMemoryUsageThresholdExceeded):
    """The event ``IMemoryUsageThresholdExceeded`` describes."""


class IMemoryUsageUnderThreshold:
    """Emitted (in the monitor thread) the first check the memory usage is back under
    ``EVLOOP_MAX_MEMORY_USAGE`` after a ``MemoryUsageThresholdExceeded``. Attributes as
    that event's, and ``max_memory_usage``: the usage the last exceeded event reported."""

    mem_usage: int
    max_allowed: int
    max_memory_usage: int
    memory_info: Any


class MemoryUsageUnderThreshold(_AbstractMemoryEvent, IMemoryUsageUnderThreshold):
    """The event ``IMemoryUsageUnderThreshold`` describes."""

    def __init__(self, mem_usage: int, max_allowed: int, memory_info: Any,
                 max_usage: int) -> None:
        _AbstractMemoryEvent.__init__(self, mem_usage, max_allowed, memory_info)
        self.max_memory_usage = max_usage


class IPeriodicMonitorThreadStartedEvent:
    """Emitted when a hub starts its monitor thread; ``monitor`` is the monitor."""

    monitor: Any


class PeriodicMonitorThreadStartedEvent(IPeriodicMonitorThreadStartedEvent):
    ENTRY_POINT_NAME = "evloop.plugins.hub.periodic_monitor_thread_started"

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor


class IHubCreatedEvent:
    """Emitted at the end of ``Hub.__init__`` (in the hub's thread); ``hub`` is the new
    hub, ``hub.loop`` its loop."""

    hub: Any


class HubCreatedEvent(IHubCreatedEvent):
    def __init__(self, hub: Any) -> None:
        self.hub = hub

    def __repr__(self) -> str:
        return f"<{type(self).__name__} hub={self.hub!r}>"


# -- monkey-patching --------------------------------------------------------------------

class DoNotPatch(BaseException):
    """Raised by a subscriber to a will-patch event: do not patch this item (a module, or
    with ``EvloopWillPatchAllEvent`` anything at all)."""


class IEvloopPatchEvent:
    """The root of the patch events: ``source`` holds the patches (an evloop module),
    ``target`` is what is patched (a standard-library module)."""

    source: Any
    target: Any


class EvloopPatchEvent(IEvloopPatchEvent):
    def __init__(self, source: Any, target: Any) -> None:
        self.source = source
        self.target = target

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} source={self.source!r} target={self.target!r} "
                f"at {id(self):x}>")


class IEvloopWillPatchEvent(IEvloopPatchEvent):
    """Emitted before something is patched; ``DoNotPatch`` from a subscriber vetoes it."""


class EvloopWillPatchEvent(EvloopPatchEvent, IEvloopWillPatchEvent):
    pass


class IEvloopDidPatchEvent(IEvloopPatchEvent):
    """Emitted after something was patched."""


class EvloopDidPatchEvent(EvloopPatchEvent, IEvloopDidPatchEvent):
    pass


class IEvloopWillPatchModuleEvent(IEvloopWillPatchEvent):
    """Before one module is patched: ``module_name`` (``target.__name__``) and
    ``target_item_names``, the list of names to replace (a subscriber may change it)."""

    module_name: str
    target_item_names: List[str]


class EvloopWillPatchModuleEvent(EvloopWillPatchEvent, IEvloopWillPatchModuleEvent):
    ENTRY_POINT_NAME = "evloop.plugins.monkey.will_patch_module"

    def __init__(self, module_name: str, source: Any, target: Any,
                 items: List[str]) -> None:
        super().__init__(source, target)
        self.module_name = module_name
        self.target_item_names = items


class IEvloopDidPatchModuleEvent(IEvloopDidPatchEvent):
    """After one module was patched."""

    module_name: str


class EvloopDidPatchModuleEvent(EvloopDidPatchEvent, IEvloopDidPatchModuleEvent):
    ENTRY_POINT_NAME = "evloop.plugins.monkey.did_patch_module"

    def __init__(self, module_name: str, source: Any, target: Any) -> None:
        super().__init__(source, target)
        self.module_name = module_name


class _PatchAllMixin:
    def __init__(self, patch_all_arguments: Dict[str, Any],
                 patch_all_kwargs: Dict[str, Any]) -> None:
        super().__init__(None, None)  # type: ignore[call-arg]
        self._patch_all_arguments = patch_all_arguments
        self._patch_all_kwargs = patch_all_kwargs

    @property
    def patch_all_arguments(self) -> Dict[str, Any]:
        """A copy of ``patch_all``'s arguments, by name."""
        return self._patch_all_arguments.copy()

    @property
    def patch_all_kwargs(self) -> Dict[str, Any]:
        """A copy of the extra keyword arguments given to ``patch_all`` (for plugins)."""
        return self._patch_all_kwargs.copy()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._patch_all_arguments!r} at {id(self):x}>"


class IEvloopWillPatchAllEvent(IEvloopWillPatchEvent):
    """Before ``patch_all`` patches anything (``DoNotPatch``: it patches nothing). Module
    events follow, then ``EvloopDidPatchBuiltinModulesEvent``, then
    ``EvloopDidPatchAllEvent``. ``source`` and ``target`` are None."""


class EvloopWillPatchAllEvent(_PatchAllMixin, EvloopWillPatchEvent, IEvloopWillPatchAllEvent):
    ENTRY_POINT_NAME = "evloop.plugins.monkey.will_patch_all"

    def will_patch_module(self, module_name: str) -> Optional[bool]:
        """Whether ``patch_all`` was asked to patch ``module_name`` (None: not an argument)."""
        return self._patch_all_arguments.get(module_name)


class IEvloopDidPatchBuiltinModulesEvent(IEvloopDidPatchEvent):
    """After ``patch_all`` patched the standard-library modules: the moment to patch
    third-party libraries."""


class EvloopDidPatchBuiltinModulesEvent(_PatchAllMixin, EvloopDidPatchEvent,
                                        IEvloopDidPatchBuiltinModulesEvent):
    ENTRY_POINT_NAME = "evloop.plugins.monkey.did_patch_builtins"


class IEvloopDidPatchAllEvent(IEvloopDidPatchEvent):
    """After ``patch_all`` finished."""


class EvloopDidPatchAllEvent(_PatchAllMixin, EvloopDidPatchEvent, IEvloopDidPatchAllEvent):
    ENTRY_POINT_NAME = "evloop.plugins.monkey.did_patch_all"


# gevent's names for the same classes
IGeventPatchEvent = IEvloopPatchEvent
GeventPatchEvent = EvloopPatchEvent
IGeventWillPatchEvent = IEvloopWillPatchEvent
GeventWillPatchEvent = EvloopWillPatchEvent
IGeventDidPatchEvent = IEvloopDidPatchEvent
GeventDidPatchEvent = EvloopDidPatchEvent
IGeventWillPatchModuleEvent = IEvloopWillPatchModuleEvent
GeventWillPatchModuleEvent = EvloopWillPatchModuleEvent
IGeventDidPatchModuleEvent = IEvloopDidPatchModuleEvent
GeventDidPatchModuleEvent = EvloopDidPatchModuleEvent
IGeventWillPatchAllEvent = IEvloopWillPatchAllEvent
GeventWillPatchAllEvent = EvloopWillPatchAllEvent
IGeventDidPatchBuiltinModulesEvent = IEvloopDidPatchBuiltinModulesEvent
GeventDidPatchBuiltinModulesEvent = EvloopDidPatchBuiltinModulesEvent
IGeventDidPatchAllEvent = IEvloopDidPatchAllEvent
GeventDidPatchAllEvent = EvloopDidPatchAllEvent


def _report_subscriber_error(where: str) -> None:
    """For publishers that must not fail (the monitor thread): print the exception."""
    import traceback
    try:
        sys.stderr.write(f"evloop.events: a subscriber failed on {where}:\n"
                         + traceback.format_exc())
    except Exception:  # noqa: BLE001
        pass
