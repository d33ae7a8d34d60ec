"""evloop.greenlet: Greenlet, spawn, joinall, killall, wait, iwait — gevent's names.

Why it exists: it is the unit of concurrency users touch. A Greenlet runs a function in its
own greenlet whose parent is the hub, records its value or exception, and notifies links
(callbacks, other greenlets waiting in join/get/joinall) from the hub when it finishes.
Waiting goes through Waiter (the hub's one way to block).

What it must not do: lose a result or a link. A greenlet killed before it started still
finishes (with GreenletExit as its value) and runs its links; exceptions raised by links
go to the hub's handle_error and never stop the other links.
"""
import sys
from collections import deque
from itertools import count as _count
from weakref import WeakKeyDictionary as _WeakKeyDictionary
from weakref import ref as _wref
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence

from greenlet import GreenletExit, getcurrent, greenlet

from evloop._config import get_config
from evloop.core import _greenlet_enter, _greenlet_leave
from evloop.exceptions import InvalidSwitchError
from evloop.hub import Waiter, _check_throwable, _seconds, _wait_within, get_hub
from evloop.hub import Hub, _get_hub_if_exists
from evloop.timeout import Timeout

__all__ = ["Greenlet", "spawn", "spawn_later", "joinall", "killall", "wait", "iwait",
           "GreenletExit", "getcurrent"]

_next_ident = _count(1).__next__
_TIMEOUT = object()
_NOT_STARTED = None
# _start_event after the greenlet began running, or after kill() cancelled its start
_STARTED = object()
_CANCELLED = object()
_EMPTY_KWARGS: dict = {}


#: Greenlet -> its spawn_tree_locals dict, for the greenlets whose dict was asked for
_tree_locals: "_WeakKeyDictionary[Any, dict]" = _WeakKeyDictionary()
#: Greenlet -> a weak reference to the Greenlet that spawned it (none for greenlets spawned
#: by plain greenlets: the hub, a thread's main greenlet)
_spawners: "_WeakKeyDictionary[Any, Any]" = _WeakKeyDictionary()
#: the types of the plain greenlets that spawn without being recorded: a thread's main
#: greenlet and the hub
_UNRECORDED_SPAWNERS = frozenset((greenlet, Hub))


def _no_spawner() -> None:
    return None


#: EVLOOP_TRACK_GREENLET_TREE (gevent's config.track_greenlet_tree): read from the
#: configuration at the first spawn (not at import, which must not read the environment;
#: until then it is _UNREAD, which is true so that the first spawn reads it)
_UNREAD: Any = object()
_track_tree: Any = _UNREAD
#: Greenlet -> its spawning stack (the newest _Frame), when the tree is tracked
_spawn_stacks: "_WeakKeyDictionary[Any, Any]" = _WeakKeyDictionary()


class _Frame:
    """One frame of a recorded spawning stack: what ``traceback.format_stack`` reads of a
    frame, without keeping the frame (and its locals) alive."""

    __slots__ = ("f_code", "f_lineno", "f_back")

    f_globals = None  # linecache then reads the file by its name

    def __init__(self, frame: Any) -> None:
        self.f_code = frame.f_code
        self.f_lineno = frame.f_lineno
        self.f_back = None


def _record_spawn(glet: "Greenlet") -> None:
    """Record at spawn what gevent's track_greenlet_tree records: the spawning stack (from
    the caller of Greenlet(...), at most ``spawning_stack_limit`` frames) and the
    spawn_tree_locals shared with the spawner."""
    global _track_tree
    if _track_tree is _UNREAD:
        _track_tree = get_config().track_greenlet_tree
        if not _track_tree:
            return
    limit = glet.spawning_stack_limit
    frame: Any = sys._getframe(2)  # the caller of Greenlet.__init__ (as gevent's)
    newest = older = None
    while limit > 0 and frame is not None:
        limit -= 1
        entry = _Frame(frame)
        if older is None:
            newest = entry
        else:
            older.f_back = entry
        older = entry
        frame = frame.f_back
    _spawn_stacks[glet] = newest
    glet.spawn_tree_locals  # taken now, as gevent does, not at first use


def _kill(glet: "Greenlet", exception: Any, waiter: Optional[Waiter]) -> None:
    # runs in the hub
    try:
        if not glet.dead:
            glet.throw(exception)
    except BaseException:  # noqa: BLE001 - report, never break the hub
        glet.parent.handle_error(glet, *sys.exc_info())
    if waiter is not None:
        waiter.switch(None)


class Greenlet(greenlet):
    """A greenlet running ``run(*args, **kwargs)`` with a result, links and kill/join.

    Subclasses may define ``_run`` instead of passing ``run``.
    """

    # Slots, not an instance dict: cheaper attributes, and one object less per greenlet
    # for the cycle collector (subclasses without __slots__ still get a __dict__).
    __slots__ = ("_run", "args", "kwargs", "_links", "_hub", "value", "_exc_info",
                 "_notifier", "_start_event", "_ident", "_name")

    #: how many frames of the spawning stack are recorded when the spawn tree is tracked
    #: (gevent's attribute and default)
    spawning_stack_limit = 10

    def __init__(self, run: Optional[Callable[..., Any]] = None, *args: Any,
                 **kwargs: Any) -> None:
        hub = _get_hub_if_exists()
        if hub is None:
            hub = get_hub()
        greenlet.__init__(self, None, hub)
        if run is not None:
            if not callable(run):
                raise TypeError(f"The run argument must be callable, not {type(run).__name__}")
            self._run = run
        elif not callable(getattr(self, "_run", None)):
            raise TypeError("The run argument or self._run must be callable")
        self.args = args
        self.kwargs = kwargs
        self._links: List[Callable[..., Any]] = []
        self._hub = hub
        self.value = None
        self._exc_info: Optional[tuple] = None
        self._notifier: Any = None
        self._start_event: Any = _NOT_STARTED
        self._ident: Optional[int] = None
        self._name: Optional[str] = None
        # The Greenlet that created this one, weakly, beside the greenlet (not in a slot):
        # only when it is a Greenlet. One spawned by the hub or a thread's main greenlet
        # (servers, callbacks, the program's top level) costs one getcurrent() and
        # nothing is stored: a slot on every greenlet cost 1.7% of a spawn-to-join, a
        # weak reference in it 4% (callgrind, benchmarks/workloads/hub_spawn_join.py).
        spawner = getcurrent()
        if type(spawner) not in _UNRECORDED_SPAWNERS:  # isinstance() costs 1% more
            _spawners[self] = _wref(spawner)
        if _track_tree:  # off, it costs a spawn one global lookup (0.2%)
            _record_spawn(self)

    # -- state -------------------------------------------------------------------------

    @property
    def spawning_greenlet(self) -> Callable[[], Optional[greenlet]]:
        """As gevent's attribute, a weak reference (call it) to the greenlet that created
        this one; it gives None once this greenlet has finished (evloop forgets the
        spawner then) or when the spawner is gone."""
        return _spawners.get(self, _no_spawner)

    @property
    def spawn_tree_locals(self) -> dict:
        """A dict shared by a tree of greenlets: the one of the Greenlet that spawned this
        one, or a new one for a greenlet spawned by a plain greenlet (the hub, the main
        greenlet), as in gevent. Taken at first use (gevent takes it at spawn): a greenlet
        whose spawner is gone by then starts a dict of its own."""
        # kept beside the greenlet, not in a slot: a slot costs every greenlet a visit by
        # each garbage collection, for a feature few programs use
        tree_locals = _tree_locals.get(self)
        if tree_locals is None:
            spawner = self.spawning_greenlet()
            shared = spawner.spawn_tree_locals if isinstance(spawner, Greenlet) else None
            tree_locals = _tree_locals[self] = shared if shared is not None else {}
        return tree_locals

    @spawn_tree_locals.setter
    def spawn_tree_locals(self, value: dict) -> None:
        _tree_locals[self] = value

    @property
    def spawning_stack(self) -> Any:
        """The stack that spawned this greenlet (its newest ``spawning_stack_limit``
        frames, as frame-like objects ``traceback.format_stack`` takes), recorded only when
        ``EVLOOP_TRACK_GREENLET_TREE`` is on (gevent records it by default); else None."""
        return _spawn_stacks.get(self)

    @property
    def loop(self):
        return self._hub.loop

    @property
    def minimal_ident(self) -> int:
        """A small integer naming this greenlet (unique in the process)."""
        if self._ident is None:
            self._ident = _next_ident()
        return self._ident

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = f"Greenlet-{self.minimal_ident}"
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def __bool__(self) -> bool:
        # scheduled or running, and not finished
        return self._start_event is not _NOT_STARTED and self._exc_info is None \
            and self._start_event is not _CANCELLED

    @property
    def started(self) -> bool:
        """As in gevent: ``bool(self)`` — scheduled or running, and not finished."""
        return bool(self)

    @property
    def dead(self) -> bool:
        """Finished running, or killed before it could start."""
        if self._start_event is _CANCELLED:
            return True
        return greenlet.dead.__get__(self)

    def ready(self) -> bool:
        """Finished: it returned, raised, or was killed."""
        return self._exc_info is not None or self.dead

    def successful(self) -> bool:
        """Finished without an exception (being killed with GreenletExit counts as success,
        as in gevent)."""
        return self._exc_info is not None and self._exc_info[1] is None

    @property
    def exception(self) -> Optional[BaseException]:
        """The exception it finished with, or None."""
        return self._exc_info[1] if self._exc_info is not None else None

    @property
    def exc_info(self) -> Optional[tuple]:
        """(type, value, traceback) if it finished with an exception, else None."""
        ei = self._exc_info
        if ei is not None and ei[0] is not None:
            return ei
        return None

    def __repr__(self) -> str:
        func = getattr(self, "_run", None)
        if func is not None:
            fname = getattr(func, "__qualname__", None) or repr(func)
            parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
            desc = f": {fname}({', '.join(parts)})"
        else:
            desc = ""
        state = []
        if self.dead:
            state.append("dead")
        elif self:
            state.append("started")
        return (f'<{type(self).__name__} "{self.name}" at {id(self):#x}'
                f'{" " + ",".join(state) if state else ""}{desc}>')

    # -- starting ------------------------------------------------------------------------

    def start(self) -> None:
        """Schedule the greenlet to run at the hub's next iteration (idempotent)."""
        if self._start_event is _NOT_STARTED:
            self._start_event = self._hub.loop.run_callback(self.switch)

    def start_later(self, seconds: float) -> None:
        """Schedule the greenlet to run after ``seconds``."""
        if self._start_event is _NOT_STARTED:
            timer = self._hub.loop.timer(_seconds(seconds))
            timer.start(self.switch, update=True)
            self._start_event = timer

    @classmethod
    def spawn(cls, *args: Any, **kwargs: Any) -> "Greenlet":
        """Create and start a greenlet: ``Greenlet.spawn(func, *args, **kwargs)``."""
        g = cls(*args, **kwargs)
        g.start()
        return g

    @classmethod
    def spawn_later(cls, seconds: float, *args: Any, **kwargs: Any) -> "Greenlet":
        g = cls(*args, **kwargs)
        g.start_later(seconds)
        return g

    def _cancel_start(self) -> None:
        event = self._start_event
        if event is not _NOT_STARTED and event is not _STARTED and event is not _CANCELLED:
            event.stop()
            if hasattr(event, "close"):
                event.close()

    # -- running -------------------------------------------------------------------------

    def run(self) -> None:
        _greenlet_enter()  # counted while running: core._greenlets_running()
        try:
            event = self._start_event
            if event is not _NOT_STARTED and event is not _STARTED and event is not _CANCELLED:
                event.stop()  # switched into before the scheduled start: cancel it
            self._start_event = _STARTED
            try:
                result = self._run(*self.args, **self.kwargs)
            except BaseException:  # noqa: BLE001 - reported through _report_error
                self._report_error(sys.exc_info())
            else:
                self._exc_info = (None, None, None)
                self.value = result
                if self._links and self._notifier is None:
                    self._notifier = self._hub.loop.run_callback(self._notify_links)
        finally:
            _greenlet_leave()
            try:
                del self._run  # the instance's function (a subclass's method stays)
            except AttributeError:
                pass
            self.args = ()
            self.kwargs = _EMPTY_KWARGS

    def _report_result(self, result: Any) -> None:
        self._exc_info = (None, None, None)
        self.value = result
        if self._links and self._notifier is None:
            self._notifier = self._hub.loop.run_callback(self._notify_links)

    def _report_error(self, exc_info: tuple) -> None:
        if isinstance(exc_info[1], GreenletExit):
            # the value of a killed greenlet: its traceback would keep the dead frames, and
            # every socket or file their locals held, alive as long as this object
            exc_info[1].__traceback__ = None
            self._report_result(exc_info[1])
            return
        self._exc_info = exc_info
        if self._links and self._notifier is None:
            self._notifier = self._hub.loop.run_callback(self._notify_links)
        try:
            self._hub.handle_error(self, *exc_info)
        finally:
            del exc_info

    def _raise_exception(self) -> None:
        ei = self._exc_info
        raise ei[1].with_traceback(ei[2])

    # -- links ---------------------------------------------------------------------------

    def rawlink(self, callback: Callable[["Greenlet"], Any]) -> None:
        """Call ``callback(self)`` from the hub when this greenlet finishes."""
        if not callable(callback):
            raise TypeError(f"Expected callable: {callback!r}")
        self._links.append(callback)
        if (self._exc_info is not None or self.dead) and self._notifier is None:
            self._notifier = self._hub.loop.run_callback(self._notify_links)

    def link(self, callback: Any, SpawnedLink: Any = None) -> None:
        """Run ``callback(self)`` in a new greenlet when this one finishes. ``callback`` may
        also be a greenlet, which is switched to with this greenlet as the value."""
        if isinstance(callback, greenlet):
            target = callback
            self.rawlink(lambda source: _switch_link(target, source))
            return
        if not callable(callback):
            raise TypeError(f"Expected callable: {callback!r}")
        self.rawlink(_SpawnedLink(callback))

    def link_value(self, callback: Any) -> None:
        """Like link(), but only if the greenlet finished successfully."""
        self.rawlink(_SpawnedLink(callback, only=True))

    def link_exception(self, callback: Any) -> None:
        """Like link(), but only if the greenlet finished with an exception."""
        self.rawlink(_SpawnedLink(callback, only=False))

    def unlink(self, callback: Callable[..., Any]) -> None:
        """Remove a callback added by link/rawlink (links compare by equality)."""
        try:
            self._links.remove(callback)
        except ValueError:
            pass

    def unlink_all(self) -> None:
        del self._links[:]

    def has_links(self) -> bool:
        return bool(self._links)

    def _notify_links(self) -> None:
        # runs in the hub; a link may add more links
        links = self._links
        while links:
            link = links.pop(0)
            try:
                link(self)
            except BaseException:  # noqa: BLE001 - one bad link must not stop the others
                self._hub.handle_error((link, self), *sys.exc_info())
        self._notifier = None

    # -- waiting and killing ---------------------------------------------------------------

    def _wait_ready(self, timeout: Optional[float]) -> bool:
        """Block until ready (True) or timeout (False)."""
        if self.ready():
            return True
        hub = self._hub
        waiter = Waiter(hub)
        waiter.what = self
        switch = waiter.switch
        self.rawlink(switch)
        seconds = None if timeout is None else _seconds(timeout, "timeout")
        try:
            result = (waiter.get() if seconds is None
                      else _wait_within(waiter, seconds, _TIMEOUT))
        finally:
            self.unlink(switch)
        if result is _TIMEOUT:
            return False
        if result is not self:
            raise InvalidSwitchError(f"Invalid switch into Greenlet.join(): {result!r}")
        return True

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait until the greenlet finishes or ``timeout`` seconds pass; never raises its
        exception."""
        self._wait_ready(timeout)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """The greenlet's return value, or raise its exception. ``block=False`` raises
        Timeout if it has not finished; ``timeout`` bounds the wait (Timeout on expiry)."""
        if self.ready():
            if self.successful():
                return self.value
            self._raise_exception()
        if not block:
            raise Timeout()
        if not self._wait_ready(timeout):
            raise Timeout(timeout)
        if self.successful():
            return self.value
        self._raise_exception()

    def kill(self, exception: Any = GreenletExit, block: bool = True,
             timeout: Optional[float] = None) -> None:
        """Raise ``exception`` in the greenlet (from the hub) and, if ``block``, wait for it
        to finish (up to ``timeout``). A greenlet that never started is marked dead with
        ``exception`` as its result and its links run; killing a dead greenlet does nothing.
        ``exception`` must be an exception class or instance and ``timeout`` a number or
        None (TypeError at the call otherwise).
        """
        _check_throwable(exception)
        if timeout is not None:
            _seconds(timeout, "timeout")
        self._cancel_start()
        if self.dead:
            return
        if not greenlet.__bool__(self) and not greenlet.dead.__get__(self):
            # never ran: finish it here, without switching into it
            self._start_event = _CANCELLED
            exc = exception() if isinstance(exception, type) else exception
            self._report_error((type(exc), exc, None))
            return
        waiter = Waiter(self._hub) if block else None
        self._hub.loop.run_callback(_kill, self, exception, waiter)
        if block:
            waiter.get()
            self.join(timeout)

    def throw(self, *args: Any) -> Any:
        """Raise an exception in the greenlet now (switching into it); prefer kill().
        On a finished greenlet it does nothing (a plain greenlet would pass the exception
        to its parent, the hub); one that never ran finishes with the exception as its
        result, without running."""
        if args:
            _check_throwable(args[0])
        self._cancel_start()
        if greenlet.dead.__get__(self) or self._start_event is _CANCELLED:
            return None
        if not greenlet.__bool__(self):
            self._start_event = _CANCELLED
            exc = args[0] if args else GreenletExit
            if isinstance(exc, type):
                exc = exc(*args[1:2])
            self._report_error((type(exc), exc, args[2] if len(args) > 2 else None))
            return None
        return greenlet.throw(self, *args)


def _switch_link(target: greenlet, source: Greenlet) -> None:
    target.switch(source)


class _SpawnedLink:
    """A link that runs its callback in a new greenlet (``only``: True = on success,
    False = on failure, None = always)."""

    __slots__ = ("callback", "only")

    def __init__(self, callback: Callable[..., Any], only: Optional[bool] = None) -> None:
        if not callable(callback):
            raise TypeError(f"Expected callable: {callback!r}")
        self.callback = callback
        self.only = only

    def __call__(self, source: Greenlet) -> None:
        if self.only is not None and source.successful() is not self.only:
            return
        g = greenlet(self.callback, get_hub())
        g.switch(source)

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, _SpawnedLink):
            return self.callback == other.callback and self.only == other.only
        return self.callback == other

    def __hash__(self) -> int:
        return hash(self.callback)


def spawn(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Greenlet:
    """Create a Greenlet running ``function(*args, **kwargs)`` and start it."""
    g = Greenlet(function, *args, **kwargs)
    g._start_event = g._hub.loop.run_callback(g.switch)
    return g


def spawn_later(seconds: float, function: Callable[..., Any], *args: Any,
                **kwargs: Any) -> Greenlet:
    """Create a Greenlet and start it after ``seconds``."""
    g = Greenlet(function, *args, **kwargs)
    g.start_later(seconds)
    return g


# -- waiting on several objects --------------------------------------------------------------

def _check_waitable(objects: Iterable[Any]) -> List[Any]:
    objects = list(objects)
    for obj in objects:
        if not callable(getattr(obj, "rawlink", None)):
            raise TypeError(f"cannot wait on {obj!r}: it is not a Greenlet or another object "
                            f"with rawlink() (Event, AsyncResult, ...)")
    return objects


class _Collector:
    """Receives ready objects from links (in the hub) and wakes the waiting greenlet once
    ``count`` have arrived (or on every arrival for iwait)."""

    def __init__(self, hub: Any, wanted: int) -> None:
        self.waiter = Waiter(hub)
        self.ready: deque = deque()
        self.wanted = wanted

    def __call__(self, obj: Any) -> None:
        ready = self.ready
        ready.append(obj)
        if len(ready) == self.wanted:
            self.waiter.switch(None)

    def timeout(self) -> None:
        if not self.waiter.ready():
            self.waiter.switch(_TIMEOUT)


def iwait(objects: Optional[Sequence[Any]], timeout: Optional[float] = None,
          count: Optional[int] = None) -> Iterator[Any]:
    """Yield objects (greenlets, events, ...) as they become ready, at most ``count`` of
    them, until ``timeout`` seconds have passed. ``objects=None``: wait for the hub's loop
    to have nothing left to do, yielding nothing. The arguments are checked at the call;
    the waiting starts with the iteration."""
    if timeout is not None:
        timeout = _seconds(timeout, "timeout")
    if objects is None:
        return _iwait(None, timeout, 0)
    objects = _check_waitable(objects)
    total = len(objects) if count is None else min(max(count, 0), len(objects))
    return _iwait(objects, timeout, total)


def _iwait(objects: Optional[List[Any]], timeout: Optional[float],
           total: int) -> Iterator[Any]:
    hub = get_hub()
    if objects is None:
        hub.join(timeout=timeout)
        return
    if total == 0:
        return
    collector = _Collector(hub, 1)
    collector.waiter.what = objects
    timer = None
    if timeout is not None:
        timer = hub.loop.timer(timeout, priority=-1)
        timer.start(collector.timeout, update=True)
    try:
        for obj in objects:
            obj.rawlink(collector)
        done = 0
        while done < total:
            if not collector.ready:
                if collector.waiter.get() is _TIMEOUT:
                    return
                collector.waiter.clear()
            while collector.ready and done < total:
                done += 1
                yield collector.ready.popleft()
    finally:
        if timer is not None:
            timer.close()
        for obj in objects:
            unlink = getattr(obj, "unlink", None)
            if unlink is not None:
                unlink(collector)


def wait(objects: Optional[Sequence[Any]] = None, timeout: Optional[float] = None,
         count: Optional[int] = None) -> Any:
    """Wait until ``count`` (default: all) of ``objects`` are ready or ``timeout`` passes;
    return the list of those that are ready, in the order they became so.
    ``objects=None``: wait for the loop to run out of work; return True if it did."""
    hub = get_hub()
    if objects is None:
        return hub.join(timeout=timeout)
    objects = _check_waitable(objects)
    if timeout is not None:
        timeout = _seconds(timeout, "timeout")
    total = len(objects) if count is None else min(max(count, 0), len(objects))
    if total == 0:
        return []
    collector = _Collector(hub, total)
    collector.waiter.what = objects
    timer = None
    if timeout is not None:
        timer = hub.loop.timer(timeout, priority=-1)
        timer.start(collector.timeout, update=True)
    ready = collector.ready
    try:
        for obj in objects:
            obj.rawlink(collector)
        if len(ready) < total:
            collector.waiter.get()
        return list(ready)[:total]
    finally:
        if timer is not None:
            timer.close()
        if len(ready) < len(objects):
            # the links of objects that did not finish must not fire later
            done = set(map(id, ready))
            for obj in objects:
                if id(obj) not in done:
                    unlink = getattr(obj, "unlink", None)
                    if unlink is not None:
                        unlink(collector)


def joinall(greenlets: Sequence[Any], timeout: Optional[float] = None,
            raise_error: bool = False, count: Optional[int] = None) -> List[Any]:
    """Wait for ``greenlets`` to finish (at most ``timeout`` seconds, at most ``count`` of
    them); return those that finished. ``raise_error``: raise the first exception one of
    them finished with."""
    if not raise_error:
        return wait(greenlets, timeout=timeout, count=count)
    done = []
    for obj in iwait(greenlets, timeout=timeout, count=count):
        if getattr(obj, "exception", None) is not None:
            if hasattr(obj, "_raise_exception"):
                obj._raise_exception()
            raise obj.exception
        done.append(obj)
    return done


def _killall(greenlets: List[Any], exception: Any, waiter: Optional[Waiter]) -> None:
    # runs in the hub
    for g in greenlets:
        if g.dead:
            continue
        try:
            if isinstance(g, Greenlet) and not greenlet.__bool__(g) and not g.dead:
                g.kill(exception, block=False)  # never ran: finished without a switch
            else:
                g.throw(exception)
        except BaseException:  # noqa: BLE001
            get_hub().handle_error(g, *sys.exc_info())
    if waiter is not None:
        waiter.switch(None)


def killall(greenlets: Sequence[Any], exception: Any = GreenletExit, block: bool = True,
            timeout: Optional[float] = None) -> None:
    """Kill every greenlet (raising ``exception`` in each, from the hub) and, if ``block``,
    wait up to ``timeout`` for them to finish (Timeout if some are still alive then).
    Everything is checked before anything is killed: ``greenlets`` must hold greenlets,
    ``exception`` be an exception class or instance, ``timeout`` a number or None."""
    _check_throwable(exception)
    if timeout is not None:
        _seconds(timeout, "timeout")
    greenlets = list(greenlets)
    for g in greenlets:
        if not isinstance(g, greenlet):
            raise TypeError(f"killall() needs greenlets, not {g!r}")
    if not greenlets:
        return
    # a greenlet scheduled but not yet running is finished here and now: it must not get
    # to run just because its start callback is queued before the killing one
    for g in greenlets:
        if isinstance(g, Greenlet) and not greenlet.__bool__(g) and not g.dead:
            g.kill(exception, block=False)
    hub = get_hub()
    if block:
        waiter = Waiter(hub)
        hub.loop.run_callback(_killall, greenlets, exception, waiter)
        waiter.get()
        done = joinall(greenlets, timeout=timeout)
        if timeout is not None and len(done) < len(greenlets):
            # as gevent: some survived the exception for longer than the timeout
            raise Timeout(timeout)
    else:
        hub.loop.run_callback(_killall, greenlets, exception, None)
