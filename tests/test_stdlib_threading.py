"""Tests for evloop._stdlib_threading: every private detail of threading/_thread that evloop
relies on still has, on the running CPython, the shape the module says it has.

A failure names the detail, the running CPython and the versions the detail was checked on:
that is the place to look when a new CPython changes threading's internals (before
anything fails deep inside a monkey-patched program). The checks run in the pytest
process, which never patches (tests/test_monkey.py patches in subprocesses), except those
that must change threading's state, which run in a fresh interpreter.
"""
import _thread
import inspect
import subprocess
import sys
import textwrap
import threading
from typing import Callable, Dict, List

import pytest

from evloop import _stdlib_threading as stdlib_threading
from evloop import monkey

PY = sys.version.split()[0]


def _params(func: Callable) -> List[str]:
    return [f"{p.name}={p.default!r}" if p.default is not p.empty else p.name
            for p in inspect.signature(func).parameters.values()]


def _expect_params(func: Callable, expected: List[str]) -> None:
    got = _params(func)
    assert got == expected, f"signature ({', '.join(got)}), expected ({', '.join(expected)})"


def _same(a: object, b: object, what: str) -> None:
    assert a is b, f"{what}: {a!r} is not {b!r}"


def _run_fresh(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"in a fresh interpreter: {proc.stderr.strip()}"


def _fresh_thread() -> threading.Thread:
    return threading.Thread(target=lambda: None)


# -- one check per detail (an AssertionError says what changed) ------------------------------

def _check_count() -> None:
    assert isinstance(_thread._count(), int) and _thread._count() >= 0


def _check_local() -> None:
    _same(threading.local, _thread._local, "threading.local")


def _check_start_joinable_thread() -> None:
    _expect_params(_thread.start_joinable_thread, ["function", "handle=None", "daemon=True"])
    ran = []
    handle = _thread._ThreadHandle()
    got = _thread.start_joinable_thread(lambda: ran.append(1), handle=handle, daemon=True)
    _same(got, handle, "start_joinable_thread(handle=h) returns")
    handle.join(10)
    assert ran == [1] and handle.is_done(), "the thread did not run or is not done"


def _check_thread_handle() -> None:
    handle = _thread._ThreadHandle()
    for name in ("ident", "join", "is_done", "_set_done"):
        assert hasattr(handle, name), f"_ThreadHandle has no {name}"
    assert not handle.is_done()


def _check_make_thread_handle() -> None:
    _expect_params(_thread._make_thread_handle, ["ident"])
    handle = _thread._make_thread_handle(_thread.get_ident())
    assert isinstance(handle, _thread._ThreadHandle), type(handle)
    assert handle.ident == _thread.get_ident() and not handle.is_done()


def _check_lock_at_fork_reinit() -> None:
    lock = _thread.allocate_lock()
    assert callable(getattr(lock, "_at_fork_reinit", None)), "no _at_fork_reinit"
    lock.acquire()
    lock._at_fork_reinit()
    assert not lock.locked(), "_at_fork_reinit() leaves the lock locked"


def _bound_to(name: str, value: object) -> Callable[[], None]:
    def check() -> None:
        assert hasattr(threading, name), "missing"
        _same(getattr(threading, name), value, f"threading.{name}")
    return check


def _check_pyrlock() -> None:
    assert isinstance(threading._PyRLock, type)
    _run_fresh("""
        import threading
        threading._CRLock = None
        lock = threading.RLock()
        assert type(lock) is threading._PyRLock, type(lock)
        with lock:
            with lock:
                pass
    """)


def _check_set_sentinel() -> None:
    _same(threading._set_sentinel, _thread._set_sentinel, "threading._set_sentinel")
    assert isinstance(_thread._set_sentinel(), _thread.LockType)


def _check_shutdown_locks() -> None:
    assert isinstance(threading._shutdown_locks, set), type(threading._shutdown_locks)
    _run_fresh("""
        import threading
        event = threading.Event()
        t = threading.Thread(target=event.wait)
        t.start()
        assert t._tstate_lock in threading._shutdown_locks, "a non-daemon thread's lock"
        event.set(); t.join()
        assert t._tstate_lock is None
    """)


def _check_active() -> None:
    assert isinstance(threading._active, dict)
    _same(threading._active.get(threading.main_thread().ident), threading.main_thread(),
          "threading._active[main ident]")


def _check_newname() -> None:
    _expect_params(threading._newname, ["name_template"])
    name = stdlib_threading.new_dummy_name()
    assert name.startswith("Dummy-") and name[6:].isdigit(), name


def _check_main_thread_class() -> None:
    _same(type(threading.main_thread()), threading._MainThread, "type(main_thread())")
    _same(stdlib_threading.MainThread, threading._MainThread, "_stdlib_threading.MainThread")


def _check_dummy_thread_class() -> None:
    assert issubclass(threading._DummyThread, threading.Thread)
    _same(stdlib_threading.DummyThread, threading._DummyThread,
          "_stdlib_threading.DummyThread")
    seen = []
    done = _thread.allocate_lock()
    done.acquire()

    def record() -> None:
        seen.append(type(threading.current_thread()))
        done.release()
    _thread.start_new_thread(record, ())
    assert done.acquire(True, 10)
    _same(seen[0], threading._DummyThread, "current_thread() in a _thread thread")


def _check_dummy_after_fork() -> None:
    _expect_params(threading._DummyThread._after_fork, ["self", "new_ident=None"])


def _check_shutdown() -> None:
    assert inspect.isfunction(threading._shutdown)
    _expect_params(threading._shutdown, [])


def _check_shutting_down() -> None:
    assert threading._SHUTTING_DOWN is False, repr(threading._SHUTTING_DOWN)


def _check_threading_atexits() -> None:
    atexits = threading._threading_atexits
    assert isinstance(atexits, list), type(atexits)
    before = len(atexits)
    threading._register_atexit(lambda: None)
    try:
        assert len(atexits) == before + 1, "_register_atexit does not append to it"
    finally:
        del atexits[before:]
    _run_fresh("""
        import threading
        from evloop import _stdlib_threading
        calls = []
        threading._register_atexit(calls.append, 1)
        threading._register_atexit(calls.append, 2)
        _stdlib_threading.run_threading_atexits()
        assert calls == [2, 1], calls
        assert threading._threading_atexits == []
        try:
            threading._register_atexit(calls.append, 3)
        except RuntimeError:
            pass
        else:
            raise AssertionError("_register_atexit after _SHUTTING_DOWN")
    """)


def _method(name: str, expected: List[str]) -> Callable[[], None]:
    def check() -> None:
        method = vars(threading.Thread).get(name)
        assert inspect.isfunction(method), f"Thread.{name} is {method!r}"
        _expect_params(method, expected)
    return check


def _check_tstate_lock() -> None:
    thread = _fresh_thread()
    assert "_tstate_lock" in vars(thread) and thread._tstate_lock is None
    thread.start()
    thread.join()
    assert thread._tstate_lock is None and thread._is_stopped


def _check_is_stopped() -> None:
    thread = _fresh_thread()
    assert vars(thread).get("_is_stopped") is False
    threading.main_thread()._is_stopped  # noqa: B018 - the attribute is there


def _check_handle(attr: str) -> Callable[[], None]:
    def check() -> None:
        thread = _fresh_thread()
        assert isinstance(vars(thread).get(attr), _thread._ThreadHandle), vars(thread)
        _same(stdlib_threading.thread_handle(thread), vars(thread)[attr], "thread_handle()")
        _same(stdlib_threading.join_state(thread), vars(thread)[attr], "join_state()")
        main_handle = stdlib_threading.thread_handle(threading.main_thread())
        assert main_handle.ident == threading.main_thread().ident
        thread.start()
        thread.join()
        assert vars(thread)[attr].is_done()
    return check


def _check_started() -> None:
    assert isinstance(vars(_fresh_thread()).get("_started"), threading.Event)


def _check_init_state() -> None:
    provided = {name for name, value in stdlib_threading.dummy_thread_state(None).items()
                if not callable(value)}
    provided |= set(stdlib_threading.DUMMY_THREAD_OWN_STATE)
    provided |= set(stdlib_threading.THREAD_STATE_NOT_FOR_DUMMY)
    state = set(vars(_fresh_thread()))
    missing = sorted(state - provided)
    assert not missing, (f"Thread.__init__ sets {missing}, which evloop's stand-in "
                         f"_DummyThread (dummy_thread_state) does not provide")
    stale = sorted(provided - state)
    assert not stale, f"Thread.__init__ no longer sets {stale}"


def _check_cf_lock() -> None:
    import concurrent.futures.thread as cf_thread
    assert isinstance(cf_thread._global_shutdown_lock, _thread.LockType)
    held = stdlib_threading.held_across_thread_start()
    assert held == ((cf_thread, "_global_shutdown_lock"),), held


def _check_logging_lock() -> None:
    import logging
    assert hasattr(logging._lock, "acquire") and hasattr(logging._lock, "release")
    assert stdlib_threading.logging_locks(logging)[0] == "_lock"


def _check_logging_handlers() -> None:
    import logging
    handler = logging.StreamHandler()
    try:
        assert handler in stdlib_threading.logging_locks(logging)[1], "a live handler"
    finally:
        handler.close()


CHECKS: Dict[str, Callable[[], None]] = {
    "_thread._count": _check_count,
    "_thread._local": _check_local,
    "_thread.start_joinable_thread": _check_start_joinable_thread,
    "_thread._ThreadHandle": _check_thread_handle,
    "_thread._make_thread_handle": _check_make_thread_handle,
    "_thread.LockType._at_fork_reinit": _check_lock_at_fork_reinit,
    "threading._allocate_lock": _bound_to("_allocate_lock", _thread.allocate_lock),
    "threading._CRLock": _bound_to("_CRLock", getattr(_thread, "RLock", None)),
    "threading._PyRLock": _check_pyrlock,
    "threading._start_new_thread": _bound_to("_start_new_thread", _thread.start_new_thread),
    "threading._set_sentinel": _check_set_sentinel,
    "threading._shutdown_locks": _check_shutdown_locks,
    "threading._LockType": _bound_to("_LockType", _thread.LockType),
    "threading._start_joinable_thread": _bound_to(
        "_start_joinable_thread", getattr(_thread, "start_joinable_thread", None)),
    "threading._ThreadHandle": _bound_to("_ThreadHandle",
                                         getattr(_thread, "_ThreadHandle", None)),
    "threading._make_thread_handle": _bound_to(
        "_make_thread_handle", getattr(_thread, "_make_thread_handle", None)),
    "threading._set_name": _bound_to("_set_name", getattr(_thread, "set_name", None)),
    "threading._active": _check_active,
    "threading._newname": _check_newname,
    "threading._MainThread": _check_main_thread_class,
    "threading._DummyThread": _check_dummy_thread_class,
    "threading._DummyThread._after_fork": _check_dummy_after_fork,
    "threading._shutdown": _check_shutdown,
    "threading._SHUTTING_DOWN": _check_shutting_down,
    "threading._threading_atexits": _check_threading_atexits,
    "threading.Thread._bootstrap_inner": _method("_bootstrap_inner", ["self"]),
    "threading.Thread._reset_internal_locks": _method("_reset_internal_locks",
                                                      ["self", "is_alive"]),
    "threading.Thread._after_fork": _method("_after_fork", ["self", "new_ident=None"]),
    "threading.Thread._stop": _method("_stop", ["self"]),
    "threading.Thread._wait_for_tstate_lock": _method("_wait_for_tstate_lock",
                                                      ["self", "block=True", "timeout=-1"]),
    "threading.Thread._tstate_lock": _check_tstate_lock,
    "threading.Thread._is_stopped": _check_is_stopped,
    "threading.Thread._handle": _check_handle("_handle"),
    "threading.Thread._os_thread_handle": _check_handle("_os_thread_handle"),
    "threading.Thread._started": _check_started,
    "threading.Thread.__init__ state": _check_init_state,
    "concurrent.futures.thread._global_shutdown_lock": _check_cf_lock,
    "logging._lock": _check_logging_lock,
    "logging._handlerList": _check_logging_handlers,
}


def _removed(detail: stdlib_threading.Detail) -> Callable[[], None]:
    """A detail whose last version is before the running one must be gone: if it is still
    there, the version range in _stdlib_threading is wrong."""
    def check() -> None:
        owner_name, _, attr = detail.name.rpartition(".")
        if owner_name == "threading.Thread":
            assert attr not in vars(_fresh_thread()) and not hasattr(threading.Thread, attr), \
                f"still there after {detail.until}"
        else:
            owner = sys.modules[owner_name] if owner_name in sys.modules else \
                __import__(owner_name)
            assert not hasattr(owner, attr), f"still there after {detail.until}"
    return check


def _cases() -> List[object]:
    cases = []
    for detail in stdlib_threading.DETAILS:
        if detail.applies():
            cases.append(pytest.param(detail, CHECKS.get(detail.name), id=detail.name))
        elif detail.until is not None and detail.until < sys.version_info[:2]:
            cases.append(pytest.param(detail, _removed(detail), id=f"{detail.name} (gone)"))
    return cases


@pytest.fixture(autouse=True)
def _unpatched():
    # these checks read the live modules: they mean something only unpatched
    assert not monkey.is_module_patched("threading"), "the pytest process was patched"


@pytest.mark.parametrize("detail, check", _cases())
def test_private_detail_has_its_expected_shape(detail, check):
    assert check is not None, f"no check for {detail.name}"
    try:
        check()
    except AssertionError as exc:
        pytest.fail(f"CPython {PY} changed a private detail of threading that evloop relies "
                    f"on: {detail.name} ({detail.why}; checked on {detail.checked}): {exc}. "
                    f"Update evloop/_stdlib_threading.py for this version.", pytrace=False)
    except Exception as exc:  # noqa: BLE001 - AttributeError, TypeError, ...: a change too
        pytest.fail(f"CPython {PY} changed a private detail of threading that evloop relies "
                    f"on: {detail.name} ({detail.why}; checked on {detail.checked}): "
                    f"{type(exc).__name__}: {exc}. Update evloop/_stdlib_threading.py for "
                    f"this version.", pytrace=False)


def test_every_detail_has_a_check_and_every_check_a_detail():
    names = [d.name for d in stdlib_threading.DETAILS]
    assert len(names) == len(set(names)), "a detail listed twice"
    assert sorted(set(names) ^ set(CHECKS)) == []


def test_the_names_patched_exist_on_this_cpython():
    missing = [f"_thread.{n}" for n in stdlib_threading.THREAD_NAMES if not hasattr(_thread, n)]
    missing += [f"threading.{n}" for n in stdlib_threading.THREADING_NAMES
                if not hasattr(threading, n)]
    assert not missing, f"CPython {PY} has no {missing} (see THREAD_NAMES, THREADING_NAMES)"


def test_evloop_threading_provides_every_name_patched():
    import evloop.threading as green
    names = set(stdlib_threading.THREAD_NAMES) | set(stdlib_threading.THREADING_NAMES)
    assert not [n for n in names if not hasattr(green, n)]


def test_threading_binds_no_thread_function_evloop_does_not_know():
    """A new CPython that makes threading's classes call a new ``_thread`` function (as
    3.13 did with start_joinable_thread, 3.14 with set_name) fails here, naming it. (In a
    fresh interpreter: pytest replaces ``threading.excepthook``.)"""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import _thread, threading
        natives = {id(v) for v in vars(_thread).values() if callable(v)}
        print(" ".join(sorted(n for n, v in vars(threading).items() if id(v) in natives)))
    """)], capture_output=True, text=True, timeout=60, check=True)
    bound = set(proc.stdout.split())
    known = set(stdlib_threading.THREADING_NAMES) | set(stdlib_threading.THREADING_NATIVE_NAMES)
    unknown = sorted(bound - known)
    assert not unknown, (f"CPython {PY}: threading binds _thread's {unknown}, which "
                         f"evloop/_stdlib_threading.py neither patches (THREADING_NAMES) nor "
                         f"lists as left native (THREADING_NATIVE_NAMES)")
    stale = sorted(n for n in stdlib_threading.THREADING_NATIVE_NAMES if n not in bound)
    assert not stale, f"CPython {PY}: threading no longer binds {stale} to _thread"
