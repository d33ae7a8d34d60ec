"""What every workload shares, so the workloads themselves hold only their hot loop.

A workload is a script run as ``python workloads/<name>.py <impl>`` by ``run.py``, once per
measurement, in the interpreter and environment of that implementation. It imports the
implementation through this module (one place that knows how each impl is imported and
checked), times only its hot part with ``time.perf_counter`` and prints one JSON line
``{"ops": N, "seconds": T}`` on stdout.

A workload module declares ``IMPLS`` (the implementation names it can run) and must not
import any implementation at import time: ``run.py`` imports it to read ``IMPLS``.
"""

import gc
import json
import os
import sys
import time

N = 1_000_000  # default number of operations for callback-dispatch workloads
CORE_IMPLS = ("evloop", "gevent")  # the impls with a gevent.core-shaped loop


def load_core(impl):
    """The ``core`` module (gevent.core's API) of a loop implementation."""
    if impl == "evloop":
        from evloop import core

        return core
    if impl == "gevent":
        if os.environ.get("GEVENT_LOOP") != "libev-cext":
            raise SystemExit("gevent must run with GEVENT_LOOP=libev-cext")
        import gevent
        from gevent import core

        # Make sure the loop we measure is the Cython libev one, not libev-cffi or libuv.
        if gevent.config.loop is not core.loop or core.loop.__module__ != "gevent.libev.corecext":
            raise SystemExit(f"gevent is not using libev-cext: {core.loop!r}")
        return core
    raise SystemExit(f"impl {impl!r} has no gevent.core-shaped core")


def timed(func, *args):
    """Seconds taken by ``func(*args)``; garbage from setup is collected first."""
    gc.collect()
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def report(ops, seconds):
    print(json.dumps({"ops": ops, "seconds": seconds}), flush=True)


def run_core(workload, **kwargs):
    """Entry point of a ``core_*`` workload: ``workload(core, **kwargs) -> (ops, seconds)``."""
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} IMPL")
    report(*workload(load_core(sys.argv[1]), **kwargs))
