"""What every workload shares, so the workloads themselves hold only their hot loop.

A workload is a script run as ``python workloads/<name>.py <impl>`` by ``run.py``, once per
measurement, in the interpreter and environment of that implementation. It imports the
implementation through this module (one place that knows how each impl is imported and
checked), times only its hot part with ``time.perf_counter`` and prints one JSON line
``{"ops": N, "seconds": T}`` on stdout.

A workload module declares ``IMPLS`` (the implementation names it can run) and must not
import any implementation at import time: ``run.py`` imports it to read ``IMPLS``.

Two families share an entry point here:

* ``core_*`` (``run_core``): the ``gevent.core`` loop API, evloop and gevent.
* ``hub_*`` (``run_hub``): the greenlet API (``spawn``, ``sleep``, ``joinall``,
  ``event.Event``) on evloop and gevent, and the same work written with asyncio's API on
  the stdlib loop (``asyncio``) and on uvloop (``uvloop``).
"""

import gc
import json
import os
import sys
import time

N = 1_000_000  # default number of operations for callback-dispatch workloads
CORE_IMPLS = ("evloop", "gevent")  # the impls with a gevent.core-shaped loop
GREENLET_IMPLS = ("evloop", "gevent")  # the impls with gevent's greenlet API
ASYNCIO_IMPLS = ("asyncio", "uvloop")  # asyncio's API: the stdlib loop, uvloop's loop
HUB_IMPLS = GREENLET_IMPLS + ASYNCIO_IMPLS


def _import_gevent():
    """gevent, after making sure its loop is the Cython libev one (not libev-cffi or libuv)."""
    if os.environ.get("GEVENT_LOOP") != "libev-cext":
        raise SystemExit("gevent must run with GEVENT_LOOP=libev-cext")
    import gevent
    from gevent import core

    if gevent.config.loop is not core.loop or core.loop.__module__ != "gevent.libev.corecext":
        raise SystemExit(f"gevent is not using libev-cext: {core.loop!r}")
    return gevent


def load_core(impl):
    """The ``core`` module (gevent.core's API) of a loop implementation."""
    if impl == "evloop":
        from evloop import core

        return core
    if impl == "gevent":
        return _import_gevent().core
    raise SystemExit(f"impl {impl!r} has no gevent.core-shaped core")


def load_greenlet_api(impl):
    """The top-level module of a greenlet implementation: ``spawn``, ``sleep``, ``joinall``
    and ``event.Event``."""
    if impl == "evloop":
        import evloop

        try:  # imported now, untimed (``import gevent`` imports gevent.event too)
            import evloop.event  # noqa: F401
        except ModuleNotFoundError as exc:  # only workloads using Event need it
            if exc.name != "evloop.event":
                raise
        return evloop
    if impl == "gevent":
        gevent = _import_gevent()
        import gevent.event  # noqa: F401 - so that gevent.event is an attribute

        return gevent
    raise SystemExit(f"impl {impl!r} has no greenlet API")


def load_asyncio_loop_factory(impl):
    """``(new_event_loop, loop class)`` of an asyncio implementation."""
    import asyncio

    if impl == "asyncio":
        # The stdlib loop, whatever the policy says (evloop's interpreter has no uvloop,
        # but nothing must install one behind our back).
        return asyncio.new_event_loop, asyncio.SelectorEventLoop
    if impl == "uvloop":
        import uvloop

        return uvloop.new_event_loop, uvloop.Loop
    raise SystemExit(f"impl {impl!r} has no asyncio loop")


def timed_result(func, *args):
    """``(seconds, result)`` of ``func(*args)``; garbage from setup is collected first."""
    gc.collect()
    start = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - start, result


def timed(func, *args):
    """Seconds taken by ``func(*args)``; garbage from setup is collected first."""
    return timed_result(func, *args)[0]


async def _timed_await(aio, asyncio):
    """``timed_result`` for a coroutine function, inside the running loop."""
    gc.collect()
    start = time.perf_counter()
    result = await aio(asyncio)
    return time.perf_counter() - start, result


def report(ops, seconds):
    print(json.dumps({"ops": ops, "seconds": seconds}), flush=True)


def impl_argument():
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} IMPL")
    return sys.argv[1]


def run_core(workload, **kwargs):
    """Entry point of a ``core_*`` workload: ``workload(core, **kwargs) -> (ops, seconds)``."""
    report(*workload(load_core(impl_argument()), **kwargs))


def run_hub(green, aio, count):
    """Entry point of a ``hub_*`` workload: the same work on a greenlet or an asyncio impl.

    ``green(api)`` runs in the main greenlet with ``api`` the ``evloop`` or ``gevent`` module
    (its hub already created and its loop entered once, untimed) and returns the greenlets
    it waited for, or None. ``aio(asyncio)`` is a coroutine function run as the main task of
    a fresh loop (``asyncio.Runner``, debug off) and returns the tasks' results (what
    ``gather`` returns), or None. Only the call is timed. Then ``count(values)`` checks the
    outcome and returns the number of operations: ``values`` is the list of the greenlets'
    values (a greenlet that failed re-raises here) or the tasks' results, or None.
    """
    impl = impl_argument()
    if impl in GREENLET_IMPLS:
        api = load_greenlet_api(impl)
        api.sleep(0)  # create and start the hub, run one loop iteration: untimed
        seconds, greenlets = timed_result(green, api)
        values = None if greenlets is None else [g.get(block=False) for g in greenlets]
    elif impl in ASYNCIO_IMPLS:
        import asyncio

        new_event_loop, loop_class = load_asyncio_loop_factory(impl)
        with asyncio.Runner(debug=False, loop_factory=new_event_loop) as runner:
            loop = runner.get_loop()
            if not isinstance(loop, loop_class):
                raise SystemExit(f"{impl}: the loop is a {type(loop)!r}, not a {loop_class!r}")
            seconds, values = runner.run(_timed_await(aio, asyncio))
    else:
        raise SystemExit(f"unknown impl {impl!r}")
    report(count(values), seconds)
