"""Tests for evloop._stdlib_multiprocessing (what evloop.monkey.patch_multiprocessing, part of
patch_all, relies on): the private details of multiprocessing it uses still hold on the
running CPython, and after patch_all() multiprocessing.Pool, ProcessPoolExecutor and
Process + Queue work with the fork, spawn and forkserver start methods while the parent's
other greenlets keep running.

Every patched program runs in a fresh interpreter (tests/_mp_program.py) with a timeout: a
hang fails the test with the child's stacks instead of blocking the suite.
"""
import inspect
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import multiprocessing.util
import os
import signal
import subprocess
import sys

import pytest

from evloop import _stdlib_multiprocessing as details

PY = sys.version.split()[0]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROGRAM = os.path.join(HERE, "_mp_program.py")
METHODS = ["fork", "spawn", "forkserver"]
TIMEOUT = 90.0


# -- the private details, on this CPython ---------------------------------------------------

@pytest.mark.parametrize("name, param", sorted(details.CONNECTION_IO.items()))
def test_connection_io_detail_holds(name, param):
    cls = multiprocessing.connection.Connection
    method = vars(cls).get(name)
    method = getattr(method, "__evloop_original__", method)
    assert method is not None, (
        f"multiprocessing.connection.Connection.{name} is gone on CPython {PY}: "
        f"evloop.monkey.patch_multiprocessing can no longer make pipes cooperative "
        f"(evloop/_stdlib_multiprocessing.py)")
    params = list(inspect.signature(method).parameters)
    assert params[:3] == ["self", params[1], param] and len(params) == 3, (
        f"Connection.{name}{inspect.signature(method)} on CPython {PY}: evloop passes the "
        f"I/O function as the parameter {param!r} (evloop/_stdlib_multiprocessing.py)")
    default = inspect.signature(method).parameters[param].default
    assert default is getattr(os, param), (
        f"Connection.{name} no longer does its I/O with os.{param} on CPython {PY} "
        f"(evloop/_stdlib_multiprocessing.py)")


def test_semlock_detail_holds():
    cls = multiprocessing.synchronize.SemLock
    make = vars(cls).get(details.SEMLOCK_MAKE_METHODS)
    make = getattr(make, "__evloop_original__", make)
    assert callable(make), (
        f"multiprocessing.synchronize.SemLock.{details.SEMLOCK_MAKE_METHODS} is gone on "
        f"CPython {PY} (evloop/_stdlib_multiprocessing.py)")
    lock = multiprocessing.get_context("fork").Lock()
    native = getattr(lock, details.SEMLOCK_NATIVE)
    make(lock)
    assert lock.acquire == native.acquire and lock.release == native.release, (
        f"SemLock.{details.SEMLOCK_MAKE_METHODS} no longer binds acquire/release to "
        f"{details.SEMLOCK_NATIVE} on CPython {PY} (evloop/_stdlib_multiprocessing.py)")
    # the cooperative acquire keeps the native semantics when uncontended / non-blocking
    green = details.cooperative_acquire(native)
    assert green() is True and green(False) is False and green(True, 0.01) is False
    lock.release()


def test_after_fork_registry_detail_holds():
    register = getattr(multiprocessing.util, details.REGISTER_AFTER_FORK, None)
    assert callable(register), (
        f"multiprocessing.util.{details.REGISTER_AFTER_FORK} is gone on CPython {PY} "
        f"(evloop/_stdlib_multiprocessing.py)")
    assert list(inspect.signature(register).parameters) == ["obj", "func"]


# -- patched programs -----------------------------------------------------------------------

def run_program(scenario, method, env=None):
    environ = dict(os.environ)
    environ["PYTHONPATH"] = ROOT + (os.pathsep + environ["PYTHONPATH"]
                                    if environ.get("PYTHONPATH") else "")
    environ["PYTHONFAULTHANDLER"] = "1"
    environ.pop("PYTHONWARNINGS", None)
    environ.update(env or {})
    # evloop emits no DeprecationWarning; the -W options reach spawn and forkserver children
    # too, where CPython 3.15's linecache warns about the main module's globals (imported
    # as __mp_main__) while a worker formats a task's traceback: not evloop's
    cmd = [sys.executable, "-W", "error::DeprecationWarning",
           "-W", "ignore:Module globals is missing a __spec__.loader:DeprecationWarning",
           PROGRAM, scenario, method]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=ROOT, env=environ, start_new_session=True) as child:
        try:
            out, err = child.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: dump the stacks
            try:
                out, err = child.communicate(timeout=5)
            finally:
                os.killpg(child.pid, signal.SIGKILL)   # the pool's workers too
            pytest.fail(f"{scenario} with {method}: hung for {TIMEOUT}s\n--- stdout ---\n"
                        f"{out}\n--- stderr ---\n{err}")
    assert child.returncode == 0 and out.split()[:1] == ["ok"], (
        f"{scenario} with {method}: exit status {child.returncode}\n--- stdout ---\n{out}\n"
        f"--- stderr ---\n{err}")
    assert "Traceback" not in err and "parent greenlet ran in a child" not in err, err
    return out


SCENARIOS = ["pool", "close_join", "terminate", "raise", "initializer",
             "maxtasksperchild", "big", "ticker", "executor", "process_queue"]


@pytest.mark.slow  # 30 programs in fresh interpreters: ~25 s
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_patched(scenario, method):
    run_program(scenario, method)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
@pytest.mark.parametrize("scenario", ["pool", "executor"])
def test_patched_parent_unpatched_children(scenario, method):
    run_program(scenario, method, env={"EVLOOP_TEST_PATCH_MAIN_ONLY": "1"})


def test_default_start_method():
    # 3.14+ on Linux: forkserver; before: fork
    out = run_program("pool", "default")
    expected = "forkserver" if sys.version_info >= (3, 14) else "fork"
    assert out.split() == ["ok", expected], out
