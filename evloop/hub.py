"""evloop.hub: one hub greenlet per thread, and the one way to block.

Why it exists: the hub greenlet runs the thread's ``evloop.core`` loop. A greenlet that must
wait starts a watcher whose event resumes it and switches to the hub (``Hub.wait`` /
``Waiter.get`` — both in C, ``csrc/evloop_hub.c``); the hub resumes it from inside libev's
dispatch. Everything blocking in evloop goes through that path.

What it must not do: block itself (a blocking call made from the hub raises
BlockingSwitchOutError), import anything above it (its thread pool and resolver classes
are named by strings, imported at first use), or run user code except through loop
callbacks and ``handle_error``.
"""
import importlib
import os
import sys
import threading
import time
from threading import Event as _RealEvent, Thread as _RealThread
import traceback
from collections import namedtuple
from _thread import get_ident, get_native_id
from typing import Any, Callable, Dict, Optional

from greenlet import GreenletExit, getcurrent, greenlet
from greenlet import error as greenlet_error

from evloop import core
from evloop import events as _events
from evloop._config import THREADPOOL_CLASS, get_config, resolver_class_name
from evloop.exceptions import (BlockingSwitchOutError, ConcurrentObjectUseError,
                               HubDestroyed, InvalidSwitchError, LoopExit)

__all__ = ["Hub", "Waiter", "get_hub", "get_hub_if_exists", "set_hub", "sleep", "idle",
           "reinit", "spawn_raw", "kill", "signal_handler", "fork", "getcurrent",
           "GreenletExit", "LoopExit", "BlockingSwitchOutError", "ConcurrentObjectUseError",
           "InvalidSwitchError", "HubDestroyed"]


#: A one-shot rendezvous: ``get()`` blocks the current greenlet until the hub calls
#: ``switch(value)`` or ``throw(exc)`` (either may come first). Implemented in C.
Waiter = core.Waiter

_hub_wait = core._hub_wait
_sleep = core._sleep
# The thread's hub lives in the thread state's dict (per OS thread, shared by its greenlets,
# released when the thread ends; monkey-patching cannot make it greenlet-local), read by
# these two C functions and by the C sleep().
_get_hub_if_exists = core._get_hub_if_exists
_set_hub = core._set_hub
_main_thread_ident = threading.main_thread().ident


# -- the OS threads evloop runs for itself, and fork() ------------------------------------

#: native id -> busy, of each OS thread evloop started for itself (thread-pool workers, the
#: blocking monitor). Busy: running a task, which may hold a C library's lock.
_own_threads: Dict[int, bool] = {}
_FORK_WARNING = (r"This process \(pid=[0-9]+\) is multi-threaded, use of fork(pty)?\(\) "
                 r"may lead to deadlocks in the child")


def _own_thread_state(busy: Optional[bool]) -> None:
    """Called by the thread itself: it is one of evloop's, ``busy`` or idle; None: it ends."""
    if busy is None:
        _own_threads.pop(get_native_id(), None)
    else:
        _own_threads[get_native_id()] = busy


def _only_idle_own_threads() -> bool:
    """True when every other OS thread of this process is one of evloop's, idle (waiting
    for work or for its interval: nothing in it that the child could inherit locked).
    Linux (``/proc/self/task``) only; elsewhere False."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    me = get_native_id()
    own = dict(_own_threads)
    for task in tasks:
        native = int(task)
        if native != me and own.get(native, True):
            return False  # the program's own thread, or one of evloop's that is busy
    return True


def _fork_quietly(real_fork: Callable[[], Any]) -> Any:
    """``real_fork()`` (``os.fork`` or ``os.forkpty``). CPython 3.12+ warns
    (DeprecationWarning) when fork() runs in a process with several OS threads. When the
    others are only evloop's idle workers, that is evloop's doing, not the caller's, and
    harmless (the child's hub starts its own): the warning is left out then. A thread of
    the program's, or a worker running a task, keeps it."""
    if sys.version_info < (3, 12) or not _only_idle_own_threads():
        return real_fork()
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_FORK_WARNING, category=DeprecationWarning)
        return real_fork()


def _thread_main_greenlet() -> greenlet:
    g = getcurrent()
    while g.parent is not None:
        g = g.parent
    return g


def _traceback_without_source(type: Any, value: Any, tb: Any, why: BaseException) -> str:
    """A traceback report built from the traceback and exception objects alone, for when
    the ``traceback`` module fails (see ``Hub.print_exception``): file, line and function
    per frame, the exception and its notes, and the chained exceptions the same way. It
    opens no file and imports nothing."""
    lines = []
    seen = set()
    while True:
        seen.add(id(value))
        part = [f"Traceback (most recent call last; source lines unavailable: "
                f"{why.__class__.__name__}):\n"] if tb is not None else []
        while tb is not None:
            code = tb.tb_frame.f_code
            part.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, '
                        f'in {code.co_name}\n')
            tb = tb.tb_next
        part.append(_exception_line(type, value))
        lines[:0] = part
        cause = getattr(value, "__cause__", None)
        context = getattr(value, "__context__", None)
        if cause is not None and id(cause) not in seen:
            link, value = ("\nThe above exception was the direct cause of the following "
                           "exception:\n\n"), cause
        elif (context is not None and id(context) not in seen
              and not getattr(value, "__suppress_context__", False)):
            link, value = ("\nDuring handling of the above exception, another exception "
                           "occurred:\n\n"), context
        else:
            return "".join(lines)
        lines.insert(0, link)
        type, tb = value.__class__, value.__traceback__


def _exception_line(type: Any, value: Any) -> str:
    """``Module.Name: message`` and the notes, as ``traceback`` writes them."""
    name = getattr(type, "__qualname__", None) or repr(type)
    module = getattr(type, "__module__", None)
    if module not in (None, "builtins", "__main__"):
        name = f"{module}.{name}"
    try:
        text = str(value)
    except Exception:  # noqa: BLE001
        text = "<exception str() failed>"
    line = f"{name}: {text}\n" if text else f"{name}\n"
    notes = getattr(value, "__notes__", None)
    if isinstance(notes, (list, tuple)):
        for note in notes:
            try:
                line += f"{note}\n"
            except Exception:  # noqa: BLE001
                line += "<note str() failed>\n"
    return line


def _class_named(value: Any) -> Any:
    """``value`` itself, or the object a "module.Class" name names (imported now)."""
    if not isinstance(value, str):
        return value
    module, _, name = value.rpartition(".")
    if not module:
        raise ValueError(f"{value!r}: expected a class or a 'module.Class' name")
    return getattr(importlib.import_module(module), name)


class Hub(greenlet):
    """The greenlet that runs a thread's event loop.

    ``handle_error`` receives every exception raised by loop callbacks: ordinary errors are
    printed with their traceback (and the loop keeps running); ``SYSTEM_ERROR``
    (KeyboardInterrupt, SystemExit, SystemError) is raised in the thread's main greenlet.
    """

    SYSTEM_ERROR = (KeyboardInterrupt, SystemExit, SystemError)
    NOT_ERROR = (GreenletExit, SystemExit)

    #: the class of ``threadpool``, or its name as "module.Class" (imported at first use:
    #: evloop.threadpool is a layer above the hub, and a name is not an import)
    threadpool_class: Any = THREADPOOL_CLASS
    #: the class of ``resolver``, or its name as "module.Class"; None: the class the
    #: configured ``EVLOOP_RESOLVER`` value names (thread, ares, block)
    resolver_class: Any = None

    def __init__(self, loop: Optional[core.loop] = None, default: Optional[bool] = None):
        greenlet.__init__(self, parent=_thread_main_greenlet())
        config = get_config()
        self.thread_ident = get_ident()
        if loop is None:
            if default is None:
                default = self.thread_ident == _main_thread_ident
            loop = core.loop(flags=config.backend, default=default)
        # None only after destroy(); typed as a loop since every live use has one
        self.loop: core.loop = loop
        loop.error_handler = self
        self.exception_stream = sys.stderr
        self._threadpool = None
        self._resolver = None
        self._monitor: Optional["_BlockingMonitor"] = None
        self.name = ""
        if config.monitor_thread:
            self.start_monitor(config.max_blocking_time)
        if _events.subscribers:
            _events.notify(_events.HubCreatedEvent(self))

    def __repr__(self) -> str:
        state = "dead" if self.dead else ("running" if self else "not started")
        return (f"<{type(self).__name__} at {id(self):#x} {state} thread={self.thread_ident} "
                f"loop={self.loop!r}>")

    @property
    def main_hub(self) -> bool:
        return self.thread_ident == _main_thread_ident

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        """The hub greenlet's body: run the loop; when it runs out of work, tell the
        parent (the thread's main greenlet) with LoopExit, and run again when resumed."""
        assert self is getcurrent(), "Do not call Hub.run() directly"
        while self.loop is not None:
            loop = self.loop
            loop.error_handler = self
            try:
                loop.run()
            except GreenletExit:
                raise  # the hub is being destroyed or collected: leave
            except self.SYSTEM_ERROR:
                # a Python signal handler (SIGINT) raised while the loop polled
                self.handle_system_error(*sys.exc_info())
                continue
            except BaseException:
                # the loop's own failure (e.g. the backend fd was closed under it)
                self.parent.throw(*sys.exc_info())
                continue
            if self.loop is None:
                break
            self.parent.throw(LoopExit("This operation would block forever", self))

    def wait(self, watcher: Any) -> None:
        """Block the current greenlet until ``watcher`` fires; the watcher is stopped
        whatever happens (timeout, kill). The one way to block."""
        _hub_wait(self, watcher)

    def join(self, timeout: Optional[float] = None) -> bool:
        """From the thread's main greenlet: run the loop until it has nothing left to do
        (True) or ``timeout`` seconds passed (False)."""
        if getcurrent() is not self.parent:
            raise AssertionError("only possible from the main greenlet of the hub's thread")
        if self.dead:
            return True
        waiter = Waiter(self)
        timer = None
        if timeout is not None:
            timer = self.loop.timer(_seconds(timeout, "timeout"), ref=False)
            timer.start(waiter.switch, None, update=True)  # count from now, not the cached time
        try:
            try:
                waiter.get()
            except LoopExit:
                return True
        finally:
            if timer is not None:
                timer.close()
        return False

    # -- errors --------------------------------------------------------------------------

    def handle_error(self, context: Any, type: Any, value: Any, tb: Any) -> None:
        if type is None:
            return
        if isinstance(value, str):  # gevent compatibility: handle_error(ctx, T, "msg", tb)
            value = type(value)
        if issubclass(type, GreenletExit) and getcurrent() is self:
            # thrown into the hub itself (destroy, or the hub being collected): leave run()
            raise value
        if not issubclass(type, self.NOT_ERROR):
            self.print_exception(context, type, value, tb)
        if context is None or issubclass(type, self.SYSTEM_ERROR):
            self.handle_system_error(type, value, tb)

    def handle_system_error(self, type: Any, value: Any, tb: Any = None) -> None:
        """Raise KeyboardInterrupt/SystemExit/SystemError in the main greenlet."""
        if not issubclass(type, self.SYSTEM_ERROR):
            return
        current = getcurrent()
        if current is self or current is self.parent or self.loop is None:
            self.parent.throw(type, value, tb)
        else:
            self.loop.run_callback(self.parent.throw, type, value, tb)

    def print_exception(self, context: Any, type: Any, value: Any, tb: Any) -> None:
        stream = self.exception_stream
        if stream is None:
            return
        try:
            try:
                report = "".join(traceback.format_exception(type, value, tb))
            except Exception as exc:  # noqa: BLE001
                # Formatting can fail where the error happened, out of fds (EMFILE):
                # CPython 3.13.0's linecache raises reading the source lines; 3.15's
                # traceback imports _colorize lazily, at its first report, and the import
                # raises OSError when it cannot open the module's file. Report the frames
                # and the exception without the traceback module rather than nothing.
                report = _traceback_without_source(type, value, tb, exc)
            stream.write(report)
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            stream.write(f"{when} {self._describe(context)} failed with "
                         f"{getattr(type, '__name__', type)}\n\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - a broken stream must not break the loop
            pass

    @staticmethod
    def _describe(context: Any) -> str:
        if context is None:
            return "<hub>"
        try:
            return repr(context)
        except Exception:  # noqa: BLE001
            return f"<{type(context).__name__} object (repr failed)>"

    # -- services ------------------------------------------------------------------------

    def start_monitor(self, max_blocking_time: Optional[float] = None) -> "_BlockingMonitor":
        """Start a thread that reports when this hub has not come back to its loop for
        longer than ``max_blocking_time`` seconds (default: the configured 0.1 s)."""
        if self._monitor is None:
            if max_blocking_time is None:
                max_blocking_time = get_config().max_blocking_time
            self._monitor = _BlockingMonitor(self, _seconds(max_blocking_time,
                                                             "max_blocking_time"))
            self._monitor.start()
            if _events.subscribers:
                _events.notify(_events.PeriodicMonitorThreadStartedEvent(self._monitor))
        return self._monitor

    @property
    def threadpool(self) -> Any:
        """This hub's thread pool (a ``threadpool_class``), created on first use with
        EVLOOP_THREADPOOL_SIZE threads at most."""
        if self._threadpool is None:
            pool_class = _class_named(self.threadpool_class)
            self._threadpool = pool_class(get_config().threadpool_size, hub=self)
        return self._threadpool

    @threadpool.setter
    def threadpool(self, pool: Any) -> None:
        # as gevent: the hub uses ``pool`` from now on (None: a new default one at next
        # use); the previous pool is not killed, it may still be in use by its holder
        self._threadpool = pool

    @threadpool.deleter
    def threadpool(self) -> None:
        self._threadpool = None

    @property
    def resolver(self) -> Any:
        """This hub's resolver (a ``resolver_class``), created on first use; by default the
        one EVLOOP_RESOLVER names."""
        if self._resolver is None:
            name = self.resolver_class
            if name is None:
                name = resolver_class_name(get_config().resolver)
            self._resolver = _class_named(name)(hub=self)
        return self._resolver

    @resolver.setter
    def resolver(self, value: Any) -> None:
        self._resolver = value

    def _thread_exit(self) -> None:
        """Called from C while this hub's thread ends (the guard ``set_hub`` leaves in the
        thread's state): destroy the hub, in the only thread that can unwind it."""
        if self.loop is not None:
            self.destroy()

    def destroy(self, destroy_loop: Optional[bool] = None) -> None:
        """Stop the hub: its monitor and thread pool, its greenlet (which leaves the loop),
        and the loop itself when ``destroy_loop`` (default: unless it is the default
        loop). A loop that is kept is left empty: every watcher started on it is stopped
        and every queued callback dropped. Greenlets still waiting in this hub are never
        resumed (waking their Waiters later does nothing).

        A hub whose loop is running (suspended inside ``loop.run()``) can only be destroyed
        from its own thread, the only one that can switch into it: from another thread
        this raises ``greenlet.error`` before anything is stopped."""
        if self and not self.dead and self.thread_ident != get_ident():
            raise greenlet_error(
                f"cannot destroy {self!r} from thread {get_ident()}: the hub is running "
                f"in thread {self.thread_ident}, and only that thread can make it leave its "
                f"loop (destroy it there, or let the thread end)")
        if self._monitor is not None:
            self._monitor.stop()
            self._monitor = None
        if self._threadpool is not None:
            try:
                self._threadpool.kill()
            finally:
                self._threadpool = None
        if self._resolver is not None:
            try:
                self._resolver.close()
            finally:
                self._resolver = None
        loop = self.loop
        if self and not self.dead and getcurrent() is not self:
            # suspended inside loop.run(): make it leave (it returns to us, its parent,
            # or to its parent if we are another greenlet)
            try:
                self.throw(HubDestroyed)
            except HubDestroyed:
                pass
        self.loop = None  # type: ignore[assignment]
        if loop is not None:
            if destroy_loop is None:
                destroy_loop = not loop.default
            if destroy_loop:
                loop.destroy()
            elif not loop.destroyed:
                # The loop outlives this hub, but what is started or queued on it was set
                # up for this hub's greenlets: run by the next hub, an io watcher's Waiter
                # would fail on every iteration (a busy loop), and a queued switch would
                # resume a greenlet whose parent is gone (it would return into whatever
                # greenlet runs at the top). Leave the next hub an empty loop.
                loop._stop_all()
                if loop.error_handler is self:
                    loop.error_handler = None
        if _get_hub_if_exists() is self:
            _set_hub(None)


def get_hub_if_exists() -> Optional[Hub]:
    """This thread's hub, or None."""
    return _get_hub_if_exists()


def get_hub() -> Hub:
    """This thread's hub, created on first use (on the default loop in the main thread)."""
    hub = _get_hub_if_exists()
    if hub is None:
        hub = Hub()
        set_hub(hub)
    return hub


def set_hub(hub: Optional[Hub]) -> None:
    """Make ``hub`` this thread's hub (``None``: forget the current one). A hub of this
    thread other than the main thread's is destroyed when the thread ends, unless it was
    forgotten first: its suspended ``loop.run()`` can only be unwound from its own thread,
    and otherwise keeps the loop and its fds alive for good."""
    _set_hub(hub, hub is not None and get_ident() != _main_thread_ident
             and getattr(hub, "thread_ident", None) == get_ident())


core._hub_configure(LoopExit, BlockingSwitchOutError, ConcurrentObjectUseError,
                    InvalidSwitchError, get_hub)


def _seconds(value: Any, what: str = "seconds") -> float:
    """Validate a duration: a real number, not NaN; negative means 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, (str, bytes, bytearray, bool)):
            # float("0.5") would succeed; a duration given as text is a caller's bug
            raise TypeError(f"{what} must be a number, not {type(value).__name__}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{what} must be a number, not {type(value).__name__}") from None
    if value != value:
        raise ValueError(f"{what} must not be NaN")
    return value if value > 0 else 0.0


def _check_throwable(exception: Any, what: str = "exception") -> None:
    """What kill(), killall() and Timeout raise in a greenlet must be an exception class or
    instance: checked at the call, since the hub raises it later, in another greenlet, where
    a TypeError would only be reported against the victim (which is not interrupted)."""
    if isinstance(exception, BaseException):
        return
    if isinstance(exception, type) and issubclass(exception, BaseException):
        return
    raise TypeError(f"{what} must be an exception class or instance, not {exception!r}")


def _wait_within(waiter: Waiter, seconds: float, timed_out: Any) -> Any:
    """``waiter.get()``, or ``timed_out`` once ``seconds`` have passed: the timeout every
    blocking primitive puts on its Waiter. The timer counts from now (not the loop's cached
    time) and never outlives the wait."""
    timer = waiter.hub.loop.timer(seconds)
    timer.start(waiter.switch, timed_out, update=True)
    try:
        return waiter.get()
    finally:
        timer.close()


#: sleep(seconds=0, ref=True): block the current greenlet for ``seconds``; ``sleep(0)``
#: yields: every other ready greenlet and queued callback runs first (the loop also polls
#: for I/O at least once per batch of callbacks). Negative values count as 0 (as in
#: gevent); NaN raises ValueError, a non-number TypeError. ``ref=False``: the sleep alone
#: does not keep the loop (and so LoopExit) away. Implemented in C.
sleep = core._c_sleep


def idle(priority: int = 0) -> None:
    """Block until the loop has nothing else of this or higher priority to do."""
    hub = get_hub()
    watcher = hub.loop.idle()
    if priority:
        watcher.priority = priority
    hub.wait(watcher)


def reinit(hub: Optional[Hub] = None) -> None:
    """After fork, in the child: reinitialise the hub's loop (evloop also does this
    automatically after ``os.fork()``)."""
    hub = hub if hub is not None else get_hub_if_exists()
    if hub is None or hub.loop is None:
        return
    hub.loop.reinit()
    pool = hub._threadpool
    if pool is not None and hasattr(pool, "_on_fork"):
        pool._on_fork()


def fork() -> int:
    """``os.fork()`` that reinitialises the hub in the child."""
    pid = _fork_quietly(os.fork)
    if pid == 0:
        reinit()
    return pid


def spawn_raw(function: Callable[..., Any], *args: Any, **kwargs: Any) -> greenlet:
    """Run ``function(*args, **kwargs)`` in a new plain greenlet, started from the hub at
    its next iteration; exceptions go to the hub's handle_error."""
    if not callable(function):
        raise TypeError(f"function must be callable, not {type(function).__name__}")
    hub = get_hub()
    if kwargs:
        g = greenlet(lambda: function(*args, **kwargs), hub)
        hub.loop.run_callback(g.switch)
    else:
        g = greenlet(function, hub)
        hub.loop.run_callback(g.switch, *args)
    return g


def kill(greenlet_: Any, exception: Any = GreenletExit) -> None:
    """Kill a greenlet without waiting: a Greenlet's own ``kill(block=False)``, or for a raw
    greenlet, raise ``exception`` in it from the hub."""
    _check_throwable(exception)
    killer = getattr(greenlet_, "kill", None)
    if not isinstance(greenlet_, greenlet) and not callable(killer):
        raise TypeError(f"kill() needs a greenlet, not {type(greenlet_).__name__}")
    if getattr(greenlet_, "dead", False):
        return
    if killer is not None:
        killer(exception=exception, block=False)
    else:
        get_hub().loop.run_callback(greenlet_.throw, exception)


class signal_handler:
    """Call ``handler(*args, **kwargs)`` in a new greenlet each time signal ``signum``
    arrives; ``cancel()`` stops it. The watcher does not keep the loop alive."""

    def __init__(self, signum: int, handler: Callable[..., Any], *args: Any,
                 **kwargs: Any) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        self.hub = get_hub()
        self.signum = signum
        self.handler = handler
        self.args = args
        self.kwargs = kwargs
        self.watcher = self.hub.loop.signal(signum, ref=False)
        self.watcher.start(self._start)

    @property
    def ref(self) -> bool:
        return self.watcher.ref

    @ref.setter
    def ref(self, value: bool) -> None:
        self.watcher.ref = value

    def cancel(self) -> None:
        self.watcher.stop()
        self.watcher.close()

    def _start(self) -> None:
        greenlet(self._handle, self.hub).switch()

    def _handle(self) -> None:
        try:
            self.handler(*self.args, **self.kwargs)
        except BaseException:  # noqa: BLE001 - reported like any callback error
            self.hub.handle_error(None, *sys.exc_info())

    def __repr__(self) -> str:
        return f"<signal_handler signum={self.signum} handler={self.handler!r}>"


#: what /proc/self/statm holds, in bytes, named as psutil's memory_info() on Linux
_MemoryInfo = namedtuple("_MemoryInfo", "rss vms shared text lib data dirty")
_STATM = "/proc/self/statm"


def _memory_info() -> _MemoryInfo:
    """The process's memory figures from /proc/self/statm (Linux; OSError elsewhere).
    psutil is not a dependency: RSS is what gevent falls back to where psutil has no USS."""
    with open(_STATM, "rb") as statm:
        size, resident, shared, text, lib, data, dirty = statm.read().split()[:7]
    page = os.sysconf("SC_PAGE_SIZE")
    return _MemoryInfo(int(resident) * page, int(size) * page, int(shared) * page,
                       int(text) * page, int(lib) * page, int(data) * page,
                       int(dirty) * page)


class _BlockingMonitor:
    """A thread that reports when the hub has not come back to its loop for longer than a
    threshold, printing the stack of what blocks it; and, when ``EVLOOP_MAX_MEMORY_USAGE``
    is set, checks the process's memory every ``EVLOOP_MEMORY_MONITOR_PERIOD`` seconds
    (gevent's memory events).

    It reads the loop's iteration counter and whether the loop sits in its poll (both
    under the GIL). A loop that is polling is idle, not blocked; one whose iteration has
    not moved for ``max_blocking_time`` while not polling is held by a greenlet or a
    callback that does not yield."""

    def __init__(self, hub: Hub, max_blocking_time: float) -> None:
        self.hub = hub
        self.max_blocking_time = max_blocking_time
        # captured at import: after monkey-patching threading.Thread would be a greenlet
        # (whose hub would start another monitor) and threading.Event a green one
        self._stop = _RealEvent()
        self._thread: Optional[threading.Thread] = None
        self.reports = 0
        self.stream = sys.stderr
        #: the usage the last MemoryUsageThresholdExceeded reported; 0 while under
        self._memory_exceeded = 0
        config = get_config()
        self.memory_monitor_period = config.memory_monitor_period
        self._can_read_memory = True
        if config.max_memory_usage:
            try:
                _memory_info()
            except (OSError, ValueError):
                self._can_read_memory = False
                import warnings
                warnings.warn(f"evloop: cannot read {_STATM}: EVLOOP_MAX_MEMORY_USAGE "
                              "is not monitored", RuntimeWarning, stacklevel=3)

    def start(self) -> None:
        start_new = _RealThread(target=self._run, name="evloop-monitor", daemon=True)
        self._thread = start_new
        start_new.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)

    def _run(self) -> None:
        _own_thread_state(False)
        try:
            self._watch()
        finally:
            _own_thread_state(None)

    def _watch(self) -> None:
        hub = self.hub
        interval = self.max_blocking_time / 2
        last_iteration = None
        since = time.monotonic()
        reported_for = None
        next_memory_check = since + self.memory_monitor_period
        while not self._stop.wait(interval):
            loop = hub.loop
            if loop is None or loop.destroyed:
                return
            iteration = loop.iteration
            now = time.monotonic()
            if now >= next_memory_check:
                next_memory_check = now + self.memory_monitor_period
                self.monitor_memory_usage(hub)
            if loop.polling or iteration != last_iteration or not hub:
                last_iteration = iteration
                since = now
                reported_for = None
                continue
            if now - since >= self.max_blocking_time and reported_for != iteration:
                reported_for = iteration
                self._report(now - since)

    def _report(self, blocked_for: float) -> None:
        frame = sys._current_frames().get(self.hub.thread_ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "?\n"
        del frame
        self.reports += 1
        glet = self._running_greenlet()
        try:
            self.stream.write(
                f"evloop: the hub in thread {self.hub.thread_ident} has not returned to its "
                f"loop for {blocked_for:.3f}s (threshold {self.max_blocking_time}s); "
                f"the blocking greenlet {glet!r} is at:\n{stack}\n")
            self.stream.flush()
        except Exception:  # noqa: BLE001
            pass
        if _events.subscribers:
            info = [f"Blocked stack (thread {self.hub.thread_ident:#x}):", stack]
            try:
                _events.notify(_events.EventLoopBlocked(glet, blocked_for, info,
                                                        hub=self.hub))
            except Exception:  # noqa: BLE001 - a subscriber's bug must not end the monitor
                _events._report_subscriber_error("EventLoopBlocked")

    def monitor_memory_usage(self, _hub: Any = None) -> Any:
        """One memory check, as gevent's: publish ``MemoryUsageThresholdExceeded`` when the
        resident set is above ``max_memory_usage`` (the configuration's, read at each
        check) and larger than at the last such event, ``MemoryUsageUnderThreshold`` when
        it is back under after one. Returns the event published, None, or -1 when no limit
        is set (gevent's values)."""
        max_allowed = get_config().max_memory_usage
        if not max_allowed or not self._can_read_memory:
            return -1
        try:
            info = _memory_info()
        except (OSError, ValueError):
            self._can_read_memory = False
            return -1
        mem_usage = info.rss
        event: Any = None
        if mem_usage > max_allowed:
            if mem_usage > self._memory_exceeded:  # still growing
                event = _events.MemoryUsageThresholdExceeded(mem_usage, max_allowed, info)
            self._memory_exceeded = mem_usage
        else:
            if self._memory_exceeded:
                event = _events.MemoryUsageUnderThreshold(mem_usage, max_allowed, info,
                                                          self._memory_exceeded)
            self._memory_exceeded = 0
        if event is not None and _events.subscribers:
            try:
                _events.notify(event)
            except Exception:  # noqa: BLE001 - a subscriber's bug must not end the monitor
                _events._report_subscriber_error(type(event).__name__)
        return event

    def _running_greenlet(self) -> Any:
        """The greenlet running in the hub's thread, found at report time only: a greenlet
        of this hub that has started and not finished and has no saved frame (greenlet
        saves the frame of a suspended greenlet; the running one's frame is the thread's).
        Else the hub when it runs (a loop callback blocks), else the thread's main
        greenlet. It scans what the garbage collector reaches: O(objects), but only when a
        block is reported."""
        import gc
        hub = self.hub
        for obj in gc.get_objects():
            # greenlet.__bool__: running or suspended (a Greenlet's own bool is also true
            # once it is scheduled, before it ran)
            # (type(), not isinstance(), which reads __class__ of every other object: code,
            # run in this thread, e.g. an evloop.local's per-greenlet setup)
            if (issubclass(type(obj), greenlet) and obj.parent is hub
                    and greenlet.__bool__(obj) and obj.gr_frame is None):
                return obj
        if hub and hub.gr_frame is None:
            return hub  # the hub itself: a loop callback blocks
        return hub.parent  # the thread's main greenlet
