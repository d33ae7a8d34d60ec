"""evloop._stdlib_threading: every private detail of CPython's ``threading`` and ``_thread``
modules (and of the two stdlib modules that hold threading locks) that evloop relies on,
per CPython version, in one place.

Why it exists: making threads greenlets (``evloop.threading``, installed by
``evloop.monkey.patch_thread``) cannot be done through public APIs alone. A green Thread
must be marked finished the way the interpreter marks a real one (a "tstate lock" up to
3.12, a ``_thread._ThreadHandle`` since 3.13, kept in an attribute that 3.14 renamed); the
main thread must become joinable from a greenlet; ``threading._shutdown`` must wait for
green threads; the stand-in Thread of a plain greenlet must carry the state
``Thread.__init__`` would have set. Every name that takes is here, each with the CPython
versions it was checked on and why evloop needs it. ``DETAILS`` lists them all;
tests/test_stdlib_threading.py asserts each one on the running interpreter (and that
``threading`` binds no ``_thread`` function this module does not know about), so a CPython
that changes one fails there, naming the detail and the version, instead of somewhere
inside a patched program.

What it must not do: patch anything, import evloop (it sits below ``evloop.threading`` and
``evloop.monkey``), or detect features by reading code objects: what a version has follows
from ``sys.version_info``, checked against the versions below.

Checked on (``sys.version``): 3.10.13, 3.11.7, 3.12.1, 3.13.0 (pyenv builds);
"3.14.10 (main, Oct 26 2026, 15:12:11) [GCC 16.2.0]" and
"3.15.2 (main, Oct 26 2026, 15:10:10) [GCC 16.2.0]" (Debian unstable's python3.14 and
python3.15). In the comments, "all" means those six.
"""
import _thread
import sys
import threading as _threading
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

PY = sys.version_info[:2]

# -- the era of a Thread's OS-level bookkeeping --------------------------------------------

#: 3.13+ (checked 3.13.0, 3.14.10, 3.15.2): a Thread owns a ``_thread._ThreadHandle``,
#: started by ``_thread.start_joinable_thread(function, handle=, daemon=)`` and marked done by
#: the interpreter when the OS thread ends; ``threading._shutdown`` waits for the native
#: non-daemon handles (``_thread._shutdown``). Up to 3.12 (checked 3.10.13, 3.11.7, 3.12.1):
#: a "tstate lock" from ``_set_sentinel()``, held while the thread runs, put in
#: ``threading._shutdown_locks`` when the thread is not a daemon, and ``_shutdown`` acquires
#: each of those locks, so green threads whose lock is evloop's are waited for cooperatively.
THREAD_HANDLES = PY >= (3, 13)

#: The Thread attribute holding that handle: ``_handle`` in 3.13 (checked 3.13.0),
#: ``_os_thread_handle`` since 3.14 (checked 3.14.10, 3.15.2).
_HANDLE_ATTR = "_os_thread_handle" if PY >= (3, 14) else "_handle"

#: The Thread attribute a joiner waits on: the tstate lock up to 3.12, the handle since.
_JOIN_ATTR = _HANDLE_ATTR if THREAD_HANDLES else "_tstate_lock"

# -- the names patch_thread replaces -------------------------------------------------------

#: In ``_thread`` (the green versions are evloop.threading's names of the same spelling).
#: All: ``allocate_lock``, ``get_ident``, ``LockType``, ``start_new_thread`` and ``_local``
#: (the C ``threading.local``). 3.13+ (checked 3.13.0, 3.14.10, 3.15.2): ``lock`` (the lock
#: type's new name), ``start_joinable_thread``, ``_ThreadHandle``, ``_make_thread_handle``
#: (what threading's Thread, _MainThread and _DummyThread use).
THREAD_NAMES: Tuple[str, ...] = (
    ("allocate_lock", "get_ident", "LockType", "start_new_thread", "_local")
    + (("lock", "start_joinable_thread", "_ThreadHandle", "_make_thread_handle")
       if THREAD_HANDLES else ()))

#: In ``threading``: the public ``local``, ``Lock``, ``get_ident``, ``Thread``, ``Timer``, and
#: the private copies threading made of ``_thread``'s functions at import, which its classes
#: read as module globals. All: ``_allocate_lock``, ``_CRLock`` (evloop's is None, so
#: ``RLock()`` builds ``threading._PyRLock`` over green locks), ``_DummyThread`` (what
#: ``current_thread()`` makes for a thread threading did not start: per greenlet after
#: patching). Up to 3.12 (checked 3.10.13, 3.11.7, 3.12.1): ``_start_new_thread``,
#: ``_set_sentinel`` (the tstate lock's factory). 3.13+ (checked 3.13.0, 3.14.10, 3.15.2):
#: ``_LockType``, ``_start_joinable_thread``, ``_ThreadHandle``, ``_make_thread_handle``.
#: 3.14+ (checked 3.14.10, 3.15.2): ``_set_name`` (``_thread.set_name``, which
#: ``Thread._bootstrap_inner`` and the ``name`` setter call to name the OS thread: a green
#: thread must not rename the OS thread it shares, so evloop's is None, which threading
#: treats as "the platform cannot").
THREADING_NAMES: Tuple[str, ...] = (
    ("local", "_allocate_lock", "Lock", "get_ident", "_CRLock", "Thread", "Timer",
     "_DummyThread")
    + (("_LockType", "_start_joinable_thread", "_ThreadHandle", "_make_thread_handle")
       if THREAD_HANDLES else ("_start_new_thread", "_set_sentinel"))
    + (("_set_name",) if PY >= (3, 14) else ()))

#: The ``threading`` names bound to ``_thread`` functions or types that patching leaves
#: native, and why (tests/test_stdlib_threading.py checks that every such binding is here
#: or in THREADING_NAMES). All: ``ThreadError`` (an exception type), ``stack_size`` (of
#: real threads), ``get_native_id`` (green threads share their OS thread's),
#: ``excepthook``/``__excepthook__``/``ExceptHookArgs`` (reporting, thread-agnostic).
#: 3.12+ (checked 3.12.1, 3.13.0, 3.14.10, 3.15.2): ``_daemon_threads_allowed`` and
#: ``_is_main_interpreter`` (interpreter settings). 3.13+ (checked 3.13.0, 3.14.10,
#: 3.15.2): ``_get_main_thread_ident`` (the main greenlet keeps the native ident) and
#: ``_thread_shutdown`` (waits for the native non-daemon threads; evloop's ``_shutdown``
#: waits for the green ones first).
THREADING_NATIVE_NAMES: Tuple[str, ...] = (
    ("ThreadError", "stack_size", "get_native_id", "excepthook", "__excepthook__",
     "ExceptHookArgs")
    + (("_daemon_threads_allowed", "_is_main_interpreter") if PY >= (3, 12) else ())
    + (("_get_main_thread_ident", "_thread_shutdown") if THREAD_HANDLES else ()))

#: ``threading._shutdown``: called by the interpreter at exit (all), replaced by evloop's.
SHUTDOWN_NAME = "_shutdown"

#: ``threading._CRLock``: the C RLock (or None), all. Kept native for the native classes.
NATIVE_RLOCK_NAME = "_CRLock"

# -- the standard classes ---------------------------------------------------------------

#: ``threading._MainThread`` and ``threading._DummyThread``: the classes of the main
#: thread's object and of a thread's stand-in (all). Read when evloop.threading is imported,
#: i.e. before patching.
MainThread: type = _threading._MainThread
DummyThread: type = _threading._DummyThread


def native_thread_count() -> int:
    """``_thread._count()`` (all): how many OS threads started by ``_thread`` are alive."""
    return _thread._count()


def new_dummy_name() -> str:
    """The name ``_DummyThread.__init__`` gives itself: ``threading._newname("Dummy-%d")``
    (all)."""
    return _threading._newname("Dummy-%d")


def register_thread(ident: int, thread: Any) -> None:
    """Enter ``thread`` in ``threading._active`` (ident -> Thread, all: what
    ``current_thread()`` and ``enumerate()`` read). Green threads do not take
    ``_active_limbo_lock``: only the hub's thread touches their entries."""
    _threading._active[ident] = thread


def forget_thread(ident: int) -> None:
    """Remove ``ident`` from ``threading._active`` (all)."""
    _threading._active.pop(ident, None)


# -- a Thread's handle or tstate lock ------------------------------------------------------

def thread_handle(thread: Any) -> Any:
    """3.13+: the Thread's ``_thread._ThreadHandle`` (or evloop's green one)."""
    return getattr(thread, _HANDLE_ATTR)


def set_thread_handle(thread: Any, handle: Any) -> None:
    setattr(thread, _HANDLE_ATTR, handle)


def join_state(thread: Any) -> Any:
    """What ``thread.join()`` waits on: its handle (3.13+) or its tstate lock (up to 3.12;
    None once the thread stopped)."""
    return getattr(thread, _JOIN_ATTR)


def set_join_state(thread: Any, value: Any) -> None:
    setattr(thread, _JOIN_ATTR, value)


def unmark_stopped(thread: Any) -> None:
    """Up to 3.12: ``Thread._stop()`` (run by a joiner that saw the tstate lock released)
    sets ``_is_stopped``; evloop uses it when it hands the main thread its native lock
    back, before the main thread really stops. (3.13+ has no such flag: the handle is the
    state.)"""
    if not THREAD_HANDLES:
        thread._is_stopped = False


def mark_finished(thread: Any) -> None:
    """What the interpreter does when a real thread's OS thread ends, for a green Thread:
    3.13+ marks its handle done; up to 3.12 releases its tstate lock and runs
    ``Thread._stop()`` (which also drops the lock from ``_shutdown_locks``)."""
    if THREAD_HANDLES:
        thread_handle(thread)._set_done()
    else:
        lock = thread._tstate_lock
        if lock is not None and lock.locked():
            lock.release()
        thread._stop()


# -- a Thread subclass's hooks ------------------------------------------------------------

#: The Thread method that starts a thread's life in the new thread (all:
#: ``_bootstrap_inner(self)``); evloop's green Thread wraps it to ``mark_finished``.
BOOTSTRAP_INNER = "_bootstrap_inner"

#: The Thread method ``threading._after_fork`` calls on every Thread in the child (3.13+:
#: ``_after_fork(self, new_ident=None)``; up to 3.12: ``_reset_internal_locks(self,
#: is_alive)``). Either calls ``self._started._at_fork_reinit()``, which evloop's Event
#: (no OS lock inside) does not have.
FORK_HOOK = "_after_fork" if THREAD_HANDLES else "_reset_internal_locks"

#: The Event a Thread sets once running (all: ``Thread._started``).
_STARTED_ATTR = "_started"


def call_without_started_reinit(thread: Any, stand_in: Any, method: Callable[..., Any],
                                *args: Any, **kwargs: Any) -> Any:
    """Run the stdlib's FORK_HOOK ``method`` on ``thread`` with ``_started`` replaced by
    ``stand_in`` (whose ``_at_fork_reinit`` does nothing) when that Event has no
    ``_at_fork_reinit``."""
    started = getattr(thread, _STARTED_ATTR)
    if hasattr(started, "_at_fork_reinit"):
        return method(thread, *args, **kwargs)
    setattr(thread, _STARTED_ATTR, stand_in)
    try:
        return method(thread, *args, **kwargs)
    finally:
        setattr(thread, _STARTED_ATTR, started)


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


def dummy_thread_state(started: Any) -> Dict[str, Any]:
    """Class attributes for a stand-in Thread whose ``__init__`` does not call
    ``Thread.__init__`` (evloop makes one for every greenlet that asks for its thread, so it
    must be cheap, as gevent's is): the instance state ``Thread.__init__`` sets that the
    methods a stand-in runs (``name``, ``ident``, ``daemon``, ``is_alive``, ``__repr__``,
    ``_after_fork``) read. ``started`` is an Event that is set. The stand-in sets
    ``_name``, ``_ident``, ``_native_id`` and (3.13+) its handle itself.

    All: ``_initialized``, ``_daemonic``, ``_args``, ``_kwargs``, ``_target``, ``_ident``,
    ``_started``, ``_native_id``. Up to 3.12 (checked 3.10.13, 3.11.7, 3.12.1):
    ``_is_stopped``, ``_tstate_lock`` (None: no lock to wait for), and the stdlib's
    ``_stop``/``_wait_for_tstate_lock`` as no-ops. 3.14+ (checked 3.14.10, 3.15.2):
    ``_context`` (the contextvars Context ``run()`` runs in: None, a stand-in never runs).
    The rest of what ``Thread.__init__`` sets (``_stderr``, ``_invoke_excepthook``) is read
    only by ``_bootstrap_inner``, which a stand-in never runs."""
    state: Dict[str, Any] = {
        "_initialized": True, "_daemonic": True, "_args": (), "_kwargs": None,
        "_target": None, "_ident": None, _STARTED_ATTR: started, "_native_id": None,
    }
    if not THREAD_HANDLES:
        state.update(_is_stopped=False, _tstate_lock=None, _stop=_nothing,
                     _wait_for_tstate_lock=_nothing)
    if PY >= (3, 14):
        state["_context"] = None
    return state


#: Set by the stand-in's ``__init__`` itself (see ``dummy_thread_state``).
DUMMY_THREAD_OWN_STATE: Tuple[str, ...] = (
    ("_name", "_ident", "_native_id") + ((_HANDLE_ATTR,) if THREAD_HANDLES else ()))

#: The state of a fresh ``threading.Thread()`` that a stand-in never reads (only
#: ``_bootstrap_inner`` does), all.
THREAD_STATE_NOT_FOR_DUMMY: Tuple[str, ...] = ("_stderr", "_invoke_excepthook")


# -- threading._shutdown --------------------------------------------------------------------

def run_threading_atexits() -> None:
    """The first half of ``threading._shutdown`` (all; evloop calls it on 3.13+, where the
    native half waits for native threads only): ``_SHUTTING_DOWN = True`` (after which
    ``threading._register_atexit`` refuses), then the ``_threading_atexits`` calls in
    reverse order (``concurrent.futures`` stops its workers there), emptied so that the
    original ``_shutdown`` does not run them again."""
    _threading._SHUTTING_DOWN = True
    atexits = _threading._threading_atexits
    for atexit_call in reversed(atexits):
        atexit_call()
    del atexits[:]


# -- locks other modules made with threading before patching ---------------------------------

def held_across_thread_start() -> Tuple[Tuple[Any, str], ...]:
    """(module, attribute) of the module-level locks that stdlib code holds across
    ``Thread.start()``, which switches greenlets once threads are green: a native lock there
    blocks the whole OS thread (gevent issue 1865). All:
    ``concurrent.futures.thread._global_shutdown_lock`` (held by
    ``ThreadPoolExecutor.submit``), when that module is imported."""
    module = sys.modules.get("concurrent.futures.thread")
    if module is not None and hasattr(module, "_global_shutdown_lock"):
        return ((module, "_global_shutdown_lock"),)
    return ()


def logging_locks(logging: Any) -> Tuple[Optional[str], Tuple[Any, ...]]:
    """The module-level lock attribute of ``logging`` and its live handlers (whose
    ``.lock`` is public): all, ``logging._lock`` (an RLock) and ``logging._handlerList``
    (weak references to every handler)."""
    name = "_lock" if hasattr(logging, "_lock") else None
    handlers = []
    for ref in list(getattr(logging, "_handlerList", ())):
        handler = ref() if callable(ref) else ref
        if handler is not None:
            handlers.append(handler)
    return name, tuple(handlers)


# -- the list the test checks ---------------------------------------------------------------

class Detail(NamedTuple):
    """One private detail: ``name`` (dotted, as the test looks it up), the first and last
    CPython it applies to (``until`` None: still current), the versions it was checked on,
    and why evloop needs it."""
    name: str
    since: Tuple[int, int]
    until: Optional[Tuple[int, int]]
    checked: str
    why: str

    def applies(self, version: Tuple[int, int] = PY) -> bool:
        return self.since <= version and (self.until is None or version <= self.until)


_ALL = "3.10.13 3.11.7 3.12.1 3.13.0 3.14.10 3.15.2"
_TO_312 = "3.10.13 3.11.7 3.12.1"
_FROM_313 = "3.13.0 3.14.10 3.15.2"
_FROM_314 = "3.14.10 3.15.2"

DETAILS: Tuple[Detail, ...] = (
    Detail("_thread._count", (3, 10), None, _ALL,
           "a green lock's wait may poll instead of raising LoopExit while OS threads live"),
    Detail("_thread._local", (3, 10), None, _ALL, "replaced by evloop.local"),
    Detail("_thread.start_joinable_thread", (3, 13), None, _FROM_313,
           "Thread.start() calls it as (function, handle=, daemon=); evloop's replaces it"),
    Detail("_thread._ThreadHandle", (3, 13), None, _FROM_313,
           "ident, join(timeout), is_done(), _set_done(): evloop's green handle mirrors it"),
    Detail("_thread._make_thread_handle", (3, 13), None, _FROM_313,
           "(ident) -> a handle of a running thread: _MainThread, _DummyThread"),
    Detail("_thread.LockType._at_fork_reinit", (3, 10), None, _ALL,
           "threading resets locks with it after fork; evloop's LockType has one"),
    Detail("threading._allocate_lock", (3, 10), None, _ALL, "THREADING_NAMES"),
    Detail("threading._CRLock", (3, 10), None, _ALL,
           "None makes RLock() build threading._PyRLock over green locks"),
    Detail("threading._PyRLock", (3, 10), None, _ALL, "the RLock built when _CRLock is None"),
    Detail("threading._start_new_thread", (3, 10), (3, 12), _TO_312, "THREADING_NAMES"),
    Detail("threading._set_sentinel", (3, 10), (3, 12), _TO_312,
           "the tstate lock's factory: a green Thread's tstate lock is evloop's"),
    Detail("threading._shutdown_locks", (3, 10), (3, 12), _TO_312,
           "_shutdown waits on each non-daemon Thread's tstate lock in it"),
    Detail("threading._LockType", (3, 13), None, _FROM_313, "THREADING_NAMES"),
    Detail("threading._start_joinable_thread", (3, 13), None, _FROM_313, "THREADING_NAMES"),
    Detail("threading._ThreadHandle", (3, 13), None, _FROM_313, "THREADING_NAMES"),
    Detail("threading._make_thread_handle", (3, 13), None, _FROM_313, "THREADING_NAMES"),
    Detail("threading._set_name", (3, 14), None, _FROM_314,
           "names the OS thread; None for green threads"),
    Detail("threading._active", (3, 10), None, _ALL,
           "ident -> Thread: stand-ins of greenlets are entered and removed there"),
    Detail("threading._newname", (3, 10), None, _ALL, "(name_template): a stand-in's name"),
    Detail("threading._MainThread", (3, 10), None, _ALL,
           "the main thread's class: kept native, made joinable from greenlets"),
    Detail("threading._DummyThread", (3, 10), None, _ALL,
           "a stand-in's class: replaced by evloop's, which skips Thread.__init__"),
    Detail("threading._DummyThread._after_fork", (3, 13), None, _FROM_313,
           "turns a forking stand-in into a _MainThread by assigning __class__ "
           "(also 3.11.8+/3.12.2+); evloop's stand-in refuses and gets a fresh one"),
    Detail("threading._shutdown", (3, 10), None, _ALL,
           "called by the interpreter at exit: evloop's waits for green threads first"),
    Detail("threading._SHUTTING_DOWN", (3, 10), None, _ALL, "run_threading_atexits"),
    Detail("threading._threading_atexits", (3, 10), None, _ALL, "run_threading_atexits"),
    Detail("threading.Thread._bootstrap_inner", (3, 10), None, _ALL, "BOOTSTRAP_INNER"),
    Detail("threading.Thread._reset_internal_locks", (3, 10), (3, 12), _TO_312, "FORK_HOOK"),
    Detail("threading.Thread._after_fork", (3, 13), None, _FROM_313, "FORK_HOOK"),
    Detail("threading.Thread._stop", (3, 10), (3, 12), _TO_312, "mark_finished"),
    Detail("threading.Thread._wait_for_tstate_lock", (3, 10), (3, 12), _TO_312,
           "a no-op on a stand-in"),
    Detail("threading.Thread._tstate_lock", (3, 10), (3, 12), _TO_312,
           "mark_finished, join_state"),
    Detail("threading.Thread._is_stopped", (3, 10), (3, 12), _TO_312, "unmark_stopped"),
    Detail("threading.Thread._handle", (3, 13), (3, 13), "3.13.0", "thread_handle"),
    Detail("threading.Thread._os_thread_handle", (3, 14), None, _FROM_314, "thread_handle"),
    Detail("threading.Thread._started", (3, 10), None, _ALL,
           "call_without_started_reinit; a stand-in's is set"),
    Detail("threading.Thread.__init__ state", (3, 10), None, _ALL,
           "dummy_thread_state supplies what a stand-in reads"),
    Detail("concurrent.futures.thread._global_shutdown_lock", (3, 10), None, _ALL,
           "held_across_thread_start"),
    Detail("logging._lock", (3, 10), None, _ALL, "logging_locks"),
    Detail("logging._handlerList", (3, 10), None, _ALL, "logging_locks"),
)
