"""evloop.threading: what ``evloop.monkey.patch_thread`` puts into ``threading`` and
``_thread`` so that threads are greenlets (gevent's ``gevent.threading`` and
``gevent.thread`` in one module).

Why it exists: code written for threads (``threading.Thread``, ``Lock``, ``RLock``,
``Condition``, ``threading.local``, ``concurrent.futures``, ``socketserver``'s threading
servers) runs unchanged with each "thread" a greenlet: ``start_new_thread`` (3.13+:
``start_joinable_thread``) spawns a Greenlet, a contended lock waits through the hub, and
thread identity is greenlet identity. A thread's *main* greenlet keeps the native thread's
ident, so the main thread (and every real thread) stays the ``Thread`` object it was
before patching, and the interpreter still waits for non-daemon green threads at exit.

The standard library's own Thread family keeps making real threads: after patching, the
methods of the original ``threading.Thread`` (``monkey.get_original('threading',
'Thread')``), ``Timer``, ``Event``, ``_MainThread`` and ``_DummyThread`` read the original
natives (``_start_new_thread``, ``_set_sentinel``, ``_ThreadHandle``, ``Event``, locks)
through a namespace made by ``_keep_originals_native``, while ``threading.Thread`` is this
module's green subclass, whose methods are the standard library's code reading the patched
module. Every private detail of ``threading`` and ``_thread`` used here (besides the names
this module provides for them, listed in ``_stdlib_threading.THREAD_NAMES`` and
``THREADING_NAMES``) goes through ``evloop._stdlib_threading``.

What it must not do: patch anything by being imported (only ``evloop.monkey`` patches), or
let a real thread that waits on a green lock die with LoopExit while another thread can
still release it: a thread with no hub of its own waits for a green lock by polling it.
"""
import _thread
import sys
import threading as __threading__
import weakref
from time import monotonic as _monotonic
from types import FunctionType
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from greenlet import getcurrent

from evloop import _originals
from evloop import _stdlib_threading as _stdlib
from evloop.exceptions import InvalidThreadUseError, LoopExit
from evloop.greenlet import Greenlet
from evloop.hub import get_hub_if_exists
from evloop.hub import sleep as _green_sleep
from evloop.local import local
from evloop.lock import Lock as _GreenLock

__all__ = ["get_ident", "start_new_thread", "allocate_lock", "LockType", "Lock", "local",
           "Thread", "Timer", "main_native_thread"]

# The natives, whatever was patched before this module was imported.
_native_get_ident: Callable[[], int] = _originals.get_original("_thread", "get_ident")
_native_count: Callable[[], int] = _stdlib.native_thread_count
_TIMEOUT_MAX = _thread.TIMEOUT_MAX
_HANDLES = _stdlib.THREAD_HANDLES
_MAIN_IDENT = __threading__.main_thread().ident

_StdThread = __threading__.Thread
_StdTimer = __threading__.Timer
_StdDummyThread = _stdlib.DummyThread
_StdMainThread = _stdlib.MainThread
_StdEvent = __threading__.Event
_StdCondition = __threading__.Condition

_METHOD_TYPES = (FunctionType, property, staticmethod, classmethod)


def _own_methods(cls: type) -> Dict[str, Any]:
    """The functions, properties, static and class methods defined by ``cls`` itself, as
    the standard library wrote them (before ``_keep_originals_native`` rebound them)."""
    saved = cls.__dict__.get("_evloop_live_methods")
    if saved is not None:
        return dict(saved)
    return {name: value for name, value in cls.__dict__.items()
            if isinstance(value, _METHOD_TYPES)}


# Captured now, before any patching can rebind them.
_LIVE: Dict[type, Dict[str, Any]] = {
    cls: _own_methods(cls)
    for cls in (_StdThread, _StdTimer, _StdDummyThread, _StdMainThread, _StdEvent,
                _StdCondition)
}


def _install_live_methods(green: type, std_chain: Iterable[type]) -> None:
    """Give ``green`` its own copy of every method of ``std_chain`` (first class wins) that
    it does not define: the standard library's code, reading the live (patched) module."""
    for std in std_chain:
        for name, value in _LIVE[std].items():
            if name not in green.__dict__:
                setattr(green, name, value)


# -- _thread ------------------------------------------------------------------------------

def get_ident(gr: Any = None) -> int:
    """The current "thread"'s ident: a greenlet's ``id()``, except that a thread's main
    greenlet answers the native thread ident (so the main thread, and real threads, keep
    the ident they had before patching)."""
    if gr is None:
        try:
            gr = getcurrent()
        except Exception:  # noqa: BLE001 - interpreter shutdown: no greenlet state left
            return _native_get_ident()
        if gr.parent is None:
            return _native_get_ident()
        return id(gr)
    if gr.parent is None and gr is getcurrent():
        return _native_get_ident()
    return id(gr)


def _thread_main(function: Callable[..., Any], args: Tuple[Any, ...],
                 kwargs: Dict[str, Any]) -> None:
    try:
        function(*args, **kwargs)
    except SystemExit:
        pass  # as in a real thread: SystemExit ends the thread quietly


def start_new_thread(function: Callable[..., Any], args: Tuple[Any, ...] = (),
                     kwargs: Optional[Dict[str, Any]] = None) -> int:
    """``_thread.start_new_thread``: run ``function(*args, **kwargs)`` in a new greenlet;
    return its ident."""
    if not callable(function):
        raise TypeError("first arg must be callable")
    if not isinstance(args, tuple):
        raise TypeError("2nd arg must be a tuple")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError("optional 3rd arg must be a dictionary")
    glet = Greenlet(_thread_main, function, args, kwargs or {})
    glet.start()
    return id(glet)


class LockType(_GreenLock):
    """``_thread.LockType`` (``threading.Lock``) as a greenlet lock.

    ``acquire(blocking=True, timeout=-1)`` validates its arguments as the native lock does.
    A failed non-blocking acquire yields to the hub once (so that spin loops such as
    ``while not lock.acquire(False)`` let the holder run). A real thread without a running
    hub, or a wait that would end in LoopExit while other native threads exist, waits by
    polling the lock, so locks shared with real threads never deadlock the hub.
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: Optional[float] = -1) -> bool:
        if timeout is None:
            timeout = -1
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            if self.counter > 0:
                self.counter -= 1
                return True
            hub = get_hub_if_exists()
            if hub is not None and hub.loop is not None and getcurrent() is not hub:
                _green_sleep(0)  # let the holder run (spin loops), as gevent does
            return False
        if timeout != -1:
            if timeout < 0:
                raise ValueError("timeout value must be a non-negative number")
            if timeout > _TIMEOUT_MAX:
                raise OverflowError("timeout value is too large")
        if self.counter > 0 and not self._links:
            self.counter -= 1
            return True
        deadline = None if timeout == -1 else _monotonic() + timeout
        hub = get_hub_if_exists()
        if hub is None and _native_get_ident() != _MAIN_IDENT:
            # a real thread that never used evloop: do not give it a hub just to wait
            return self._acquire_polling(deadline)
        try:
            return _GreenLock.acquire(self, True, None if timeout == -1 else timeout)
        except InvalidThreadUseError:
            pass  # greenlets of another thread's hub wait on it
        except LoopExit:
            if _native_count() == 0 and _native_get_ident() == _MAIN_IDENT:
                raise  # nobody else could ever release it: a deadlock
        return self._acquire_polling(deadline)

    def _acquire_polling(self, deadline: Optional[float]) -> bool:
        sleep = _originals.get_original("time", "sleep")
        delay = 0.0005
        while True:
            if self.counter > 0:
                self.counter -= 1
                return True
            if deadline is not None:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    return False
                delay = min(delay, remaining)
            sleep(delay)
            delay = min(delay * 2, 0.02)

    def __enter__(self) -> bool:
        return self.acquire()

    def _at_fork_reinit(self) -> None:
        # as the native lock's: unlocked, nobody waiting
        _GreenLock._at_fork_reinit(self)
        self.counter = 1

    acquire_lock = acquire

    def release_lock(self) -> None:
        self.release()

    def locked_lock(self) -> bool:
        return self.locked()


allocate_lock = LockType
lock = LockType
Lock = LockType
_LockType = LockType
_allocate_lock = LockType
_set_sentinel = LockType
_start_new_thread = start_new_thread
_CRLock = None  # threading.RLock() then builds threading._PyRLock over our locks
_local = local
_set_name = None  # 3.14+: a green thread must not rename the OS thread it runs in


class _ThreadHandle:
    """``_thread._ThreadHandle`` (Python 3.13+) of a green thread: ``join()`` waits for
    the greenlet cooperatively (a real thread waiting on it polls)."""

    __slots__ = ("_ident", "_started", "_done", "_lock", "__weakref__")

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        self._ident: Optional[int] = None
        self._started = False
        self._done = False
        self._lock = LockType()
        self._lock.acquire()

    def __repr__(self) -> str:
        state = "done" if self._done else ("running" if self._started else "not started")
        return f"<{type(self).__name__} ident={self._ident} {state} at {id(self):#x}>"

    @property
    def ident(self) -> Optional[int]:
        return self._ident

    def _set_started(self, ident: int) -> None:
        self._ident = ident
        self._started = True

    def is_done(self) -> bool:
        return self._done

    def _set_done(self) -> None:
        if not self._done:
            self._done = True
            self._lock.release()

    def join(self, timeout: Optional[float] = None) -> None:
        if not self._started:
            raise RuntimeError("thread not started")
        if self._done:
            return
        if self._ident == get_ident():
            raise RuntimeError("Cannot join current thread")
        if timeout is not None and timeout < 0:
            timeout = None
        if self._lock.acquire(True, -1 if timeout is None else timeout):
            self._lock.release()


def _make_thread_handle(ident: int) -> _ThreadHandle:
    """A handle for a thread that is already running (the current greenlet)."""
    handle = _ThreadHandle()
    handle._set_started(ident)
    return handle


def _joinable_main(function: Callable[[], Any], handle: _ThreadHandle) -> None:
    try:
        function()
    except SystemExit:
        pass
    finally:
        handle._set_done()


def start_joinable_thread(function: Callable[[], Any], handle: Optional[_ThreadHandle] = None,
                          daemon: bool = True) -> _ThreadHandle:
    """``_thread.start_joinable_thread`` (Python 3.13+): run ``function()`` in a new
    greenlet; return its handle. (``daemon`` is honoured by ``threading._shutdown``.)"""
    if not callable(function):
        raise TypeError("thread function must be callable")
    if handle is None:
        handle = _ThreadHandle()
    elif not isinstance(handle, _ThreadHandle):
        raise TypeError(f"handle must be an evloop _ThreadHandle, not {type(handle)!r}")
    elif handle._started:
        raise RuntimeError("thread already started")
    glet = Greenlet(_joinable_main, function, handle)
    handle._set_started(id(glet))
    # also when it is killed before it could run
    glet.rawlink(lambda _glet, handle=handle: handle._set_done())
    glet.start()
    return handle


_start_joinable_thread = start_joinable_thread


# -- threading ----------------------------------------------------------------------------

def main_native_thread() -> Any:
    """The Thread object of the process's main (native) thread."""
    return __threading__.main_thread()


class _NoReinit:
    """Stands in for an evloop Event during ``Thread._reset_internal_locks`` after fork
    (evloop's Event has no ``_at_fork_reinit``; it holds no OS lock to reset)."""

    @staticmethod
    def _at_fork_reinit() -> None:
        return None


class Thread(_StdThread):
    """``threading.Thread`` after patching: ``start()`` runs ``run()`` in a greenlet; ``join``
    waits cooperatively. The standard library's methods, reading the patched module."""


def _green_bootstrap_inner(self: Thread) -> None:
    try:
        _LIVE[_StdThread][_stdlib.BOOTSTRAP_INNER](self)
    finally:
        # a real thread is marked finished by the interpreter when the OS thread ends;
        # a greenlet, here: this wakes join()
        _stdlib.mark_finished(self)


def _green_fork_hook(self: Thread, *args: Any, **kwargs: Any) -> Any:
    # after fork: the stdlib resets ``self._started`` with ``_at_fork_reinit()``, which an
    # evloop Event (no OS lock inside) does not have
    return _stdlib.call_without_started_reinit(self, _NoReinit,
                                               _LIVE[_StdThread][_stdlib.FORK_HOOK],
                                               *args, **kwargs)


for _name, _method in ((_stdlib.BOOTSTRAP_INNER, _green_bootstrap_inner),
                       (_stdlib.FORK_HOOK, _green_fork_hook)):
    _method.__name__ = _name
    _method.__qualname__ = f"Thread.{_name}"
    setattr(Thread, _name, _method)
del _name, _method

_install_live_methods(Thread, [_StdThread])


class Timer(Thread, _StdTimer):
    """``threading.Timer`` after patching: a green Thread."""


_install_live_methods(Timer, [_StdTimer])


def _cleanup(glet: Any) -> None:
    _stdlib.forget_thread(id(glet))


def _make_cleanup_id(gid: int, handle: Optional["_ThreadHandle"]) -> Callable[[Any], None]:
    def cleanup(_ref: Any) -> None:
        _stdlib.forget_thread(gid)
        if handle is not None:
            handle._set_done()
    return cleanup


_started_event = _StdEvent()
_started_event.set()


class _DummyThread(_StdDummyThread):
    """What ``threading.current_thread()`` returns in a greenlet that is not a Thread's:
    a cheap daemon Thread registered under the greenlet's ident until it finishes."""

    # the state Thread.__init__ would set is class attributes (``_stdlib.dummy_thread_state``,
    # set below); gevent does the same: this object is made for every greenlet that asks
    # for its thread, e.g. to log

    def __init__(self) -> None:  # noqa: super-init-not-called (see the class attributes)
        self._name = _stdlib.new_dummy_name()
        glet = getcurrent()
        gid = get_ident(glet)
        self._ident = gid
        if hasattr(_thread, "get_native_id"):
            self._native_id = _thread.get_native_id()
        handle = None
        if _HANDLES:
            handle = _make_thread_handle(gid)
            _stdlib.set_thread_handle(self, handle)
        _stdlib.register_thread(gid, self)
        rawlink = getattr(glet, "rawlink", None)
        if rawlink is not None:
            rawlink(_cleanup)
            if handle is not None:
                rawlink(lambda _glet: handle._set_done())
        elif glet.parent is not None:
            self._evloop_ref = weakref.ref(glet, _make_cleanup_id(gid, handle))

    # Python 3.11.8+/3.12.2+: threading._after_fork turns a _DummyThread that forked into
    # a _MainThread by assigning __class__; ours lacks a real thread's state, so the child
    # gets a fresh _MainThread instead (as gevent does).
    def _get_class(self) -> type:
        return type(self)

    def _set_class(self, new_class: type) -> None:
        if new_class is not _StdMainThread:
            object.__dict__["__class__"].__set__(self, new_class)

    __class__ = property(_get_class, _set_class)  # type: ignore[assignment]
    del _get_class, _set_class


for _name, _value in _stdlib.dummy_thread_state(_started_event).items():
    setattr(_DummyThread, _name, _value)
del _name, _value

_install_live_methods(_DummyThread, [_StdDummyThread, _StdThread])


# -- keeping the standard library's own classes native --------------------------------------

def _clone_class(cls: type, namespace: Dict[str, Any]) -> type:
    """A copy of ``cls`` (a subclass, so isinstance still holds) whose methods read
    ``namespace``."""
    body = {name: _originals.rebind(value, namespace)
            for name, value in _LIVE[cls].items()}
    body["__module__"] = cls.__module__
    body["__qualname__"] = cls.__qualname__
    clone = type(cls.__name__, (cls,), body)
    return clone


def _keep_originals_native(originals: Dict[str, Any]) -> None:
    """Called by ``evloop.monkey.patch_thread`` after ``threading`` was patched:
    ``originals`` maps each name replaced in ``threading`` to its original object. Rebind
    the methods of the original Thread family to a namespace where those names mean the
    originals again, so that ``get_original('threading', 'Thread')`` (and code that
    captured ``threading.Thread`` before patching) still starts real threads."""
    module_dict = __threading__.__dict__
    overlay: Dict[str, Any] = dict(originals)
    namespace = _originals.OverlayGlobals(module_dict, overlay)
    # what the native classes build internally, native too: Condition (its waits use
    # _allocate_lock), RLock (the C one) and, when threading.Event was not replaced, Event
    overlay["Condition"] = _clone_class(_StdCondition, namespace)
    native_rlock = (originals.get(_stdlib.NATIVE_RLOCK_NAME)
                    or module_dict.get(_stdlib.NATIVE_RLOCK_NAME))
    if native_rlock is not None:
        overlay["RLock"] = native_rlock
    if "Event" not in originals:
        overlay["Event"] = _clone_class(_StdEvent, namespace)
    in_place = [_StdThread, _StdMainThread]
    for cls in (_StdTimer, _StdDummyThread, _StdEvent):
        if originals.get(cls.__name__) is cls:
            in_place.append(cls)
    for cls in in_place:
        if "_evloop_live_methods" in cls.__dict__:
            continue  # already done (patch_thread called twice)
        live = _LIVE[cls]
        for name, value in live.items():
            setattr(cls, name, _originals.rebind(value, namespace))
        cls._evloop_live_methods = live


# -- threading._shutdown and the main thread ------------------------------------------------

def _make_shutdown(orig_shutdown: Callable[[], None], main_thread: Any) -> Callable[[], None]:
    """``threading._shutdown`` after patching (called by the interpreter at exit, in the
    main greenlet): release greenlets that join() the main thread, give it back its native
    tstate lock (or handle), make sure the non-daemon green threads finish, then run the
    original."""
    threading_mod = __threading__

    def _shutdown() -> None:
        green = getattr(main_thread, "_evloop_green_state", None)
        if green is not None:
            main_thread._evloop_green_state = None
            native = main_thread._evloop_native_state
            if _HANDLES:
                green._set_done()
            elif green.locked():
                green.release()
            hub = get_hub_if_exists()
            if hub is not None and hub.loop is not None and getcurrent() is hub.parent:
                try:
                    _green_sleep(0)  # let the joiners run
                except BaseException:  # noqa: BLE001 - nowhere to raise it to
                    hub.print_exception(getcurrent(), *sys.exc_info())
            # a joiner marked the main thread stopped; it is not, yet
            _stdlib.unmark_stopped(main_thread)
            _stdlib.set_join_state(main_thread, native)
        try:
            if _HANDLES:
                # the native _shutdown waits for native threads only: run the atexit
                # calls first (concurrent.futures stops its workers there), then wait for
                # the non-daemon green threads
                _stdlib.run_threading_atexits()
                while True:
                    pending = [t for t in threading_mod.enumerate()
                               if not t.daemon and t is not main_thread
                               and isinstance(_stdlib.thread_handle(t), _ThreadHandle)
                               and not _stdlib.thread_handle(t).is_done()]
                    if not pending:
                        break
                    for thread in pending:
                        _stdlib.thread_handle(thread).join()
            orig_shutdown()
        except LoopExit:
            pass  # a non-daemon green thread waits for something that can never happen
    _shutdown.__module__ = "threading"
    _shutdown.__qualname__ = _stdlib.SHUTDOWN_NAME
    return _shutdown


def _make_main_thread_joinable(main_thread: Any) -> None:
    """Give the main thread a green tstate lock (up to 3.12) or handle (3.13+) until
    ``_shutdown``, so that a greenlet can ``join()`` it (the native one would block the
    whole thread)."""
    if getattr(main_thread, "_evloop_green_state", None) is not None:
        return
    native = _stdlib.join_state(main_thread)
    if _HANDLES:
        green: Any = _make_thread_handle(main_thread.ident)
    else:
        if native is None:
            return  # stopped already
        green = LockType()
        green.acquire()
    main_thread._evloop_native_state = native
    main_thread._evloop_green_state = green
    _stdlib.set_join_state(main_thread, green)
