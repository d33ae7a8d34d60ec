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
  the stdlib loop (``asyncio``), on uvloop (``uvloop``) and on evloop's asyncio loop
  (``evloop.aio``).
* ``aio_*`` (``run_aio``): asyncio-only workloads (loop.call_later, asyncio streams) on
  the three asyncio loops.

The I/O workloads (``io_*``, ``tcp_echo``, ``urllib100``) use ``run_io``: like ``run_hub``
but their setup (sockets, idle greenlets, a server) is untimed and they time their hot
part themselves (``timed_result``, ``timed_await``), or let the C load generator
(``loadgen/echo_client.c``, built by ``loadgen_command``) measure it.
"""

import gc
import json
import os
import sys
import time

N = 1_000_000  # default number of operations for callback-dispatch workloads
CORE_IMPLS = ("evloop", "gevent")  # the impls with a gevent.core-shaped loop
# the impls with gevent's greenlet API; gevent-evloop is gevent's hub on evloop's loop
# (GEVENT_LOOP=evloop.integrations.gevent.loop, docs/gevent.md)
GREENLET_IMPLS = ("evloop", "gevent", "gevent-evloop")
# asyncio's API: the stdlib loop, uvloop's loop, evloop's asyncio loop (evloop.aio)
ASYNCIO_IMPLS = ("asyncio", "uvloop", "evloop.aio")
HUB_IMPLS = GREENLET_IMPLS + ASYNCIO_IMPLS


GEVENT_LOOPS = {  # impl: (GEVENT_LOOP, the module gevent.core.loop must come from)
    "gevent": ("libev-cext", "gevent.libev.corecext"),
    "gevent-evloop": ("evloop.integrations.gevent.loop", "evloop.integrations.gevent"),
}


def _import_gevent(impl="gevent"):
    """gevent, after making sure its loop is the impl's: the Cython libev one for
    ``gevent`` (not libev-cffi or libuv), evloop's for ``gevent-evloop``."""
    setting, module = GEVENT_LOOPS[impl]
    if os.environ.get("GEVENT_LOOP") != setting:
        raise SystemExit(f"{impl} must run with GEVENT_LOOP={setting}")
    import gevent
    from gevent import core

    if gevent.config.loop is not core.loop or core.loop.__module__ != module:
        raise SystemExit(f"{impl}: gevent is not using {module}: {core.loop!r}")
    return gevent


def load_core(impl):
    """The ``core`` module (gevent.core's API) of a loop implementation."""
    if impl == "evloop":
        from evloop import core

        return core
    if impl == "gevent":
        return _import_gevent().core
    raise SystemExit(f"impl {impl!r} has no gevent.core-shaped core")


def load_greenlet_api(impl, submodules=()):
    """The top-level module of a greenlet implementation: ``spawn``, ``sleep``, ``joinall``
    and ``event.Event``, and any ``submodules`` (``"socket"``, ``"server"``) imported now,
    untimed, so that they are attributes of it."""
    if impl == "evloop":
        import evloop as api

        try:  # imported now, untimed (``import gevent`` imports gevent.event too)
            import evloop.event  # noqa: F401
        except ModuleNotFoundError as exc:  # only workloads using Event need it
            if exc.name != "evloop.event":
                raise
    elif impl in GEVENT_LOOPS:
        api = _import_gevent(impl)
        import gevent.event  # noqa: F401 - so that gevent.event is an attribute
    else:
        raise SystemExit(f"impl {impl!r} has no greenlet API")
    for name in submodules:
        __import__(f"{api.__name__}.{name}")
    return api


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
    if impl == "evloop.aio":
        import evloop.aio

        return evloop.aio.new_event_loop, evloop.aio.Loop
    raise SystemExit(f"impl {impl!r} has no asyncio loop")


# CPU time (user + system, all threads) of the last timed part: reported next to the wall
# time, for comparisons on a machine other processes keep busy (run.py --metric cpu)
_last_cpu = None


def timed_result(func, *args):
    """``(seconds, result)`` of ``func(*args)``; garbage from setup is collected first."""
    global _last_cpu
    gc.collect()
    cpu = time.process_time()
    start = time.perf_counter()
    result = func(*args)
    seconds = time.perf_counter() - start
    _last_cpu = time.process_time() - cpu
    return seconds, result


def timed(func, *args):
    """Seconds taken by ``func(*args)``; garbage from setup is collected first."""
    return timed_result(func, *args)[0]


async def timed_await(coro_func, *args):
    """``timed_result`` for a coroutine function, inside the running loop."""
    global _last_cpu
    gc.collect()
    cpu = time.process_time()
    start = time.perf_counter()
    result = await coro_func(*args)
    seconds = time.perf_counter() - start
    _last_cpu = time.process_time() - cpu
    return seconds, result


def measured_cpu(seconds):
    """Set the CPU time ``report`` gives, for a workload that measured it itself (tcp_echo:
    the process's CPU over the load generator's counted part)."""
    global _last_cpu
    _last_cpu = seconds


def report(ops, seconds):
    """Print the result line; ``cpu`` is the timed part's CPU time when it was measured
    here (not for workloads timed by a load generator)."""
    result = {"ops": ops, "seconds": seconds}
    if _last_cpu is not None:
        result["cpu"] = _last_cpu
    print(json.dumps(result), flush=True)


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

        seconds, values = run_asyncio(impl, timed_await(aio, asyncio))
    else:
        raise SystemExit(f"unknown impl {impl!r}")
    report(count(values), seconds)


def run_asyncio(impl, coro):
    """Run ``coro`` as the main task of a fresh, checked loop of ``impl``; its result."""
    import asyncio

    new_event_loop, loop_class = load_asyncio_loop_factory(impl)
    with asyncio.Runner(debug=False, loop_factory=new_event_loop) as runner:
        loop = runner.get_loop()
        if not isinstance(loop, loop_class):
            raise SystemExit(f"{impl}: the loop is a {type(loop)!r}, not a {loop_class!r}")
        return runner.run(coro)


def run_io(green, aio=None, impls=HUB_IMPLS, submodules=("socket",)):
    """Entry point of an I/O workload: ``green(api) -> (ops, seconds)`` on a greenlet impl
    (``api`` as for ``run_hub``, with ``submodules`` imported: ``api.socket``, ...), or
    ``aio(asyncio)``, a coroutine function returning ``(ops, seconds)``, run as the main
    task on an asyncio impl. The workload does its own untimed setup and times its hot part
    (``timed_result`` / ``timed_await``)."""
    impl = impl_argument()
    if impl not in impls:
        raise SystemExit(f"impl {impl!r} not supported here (only {impls})")
    if impl in GREENLET_IMPLS:
        api = load_greenlet_api(impl, submodules)
        api.sleep(0)  # create and start the hub, untimed
        ops, seconds = green(api)
    else:
        import asyncio

        ops, seconds = run_asyncio(impl, aio(asyncio))
    report(ops, seconds)


def run_aio(aio):
    """Entry point of an asyncio-only workload: ``aio(asyncio)`` is a coroutine function
    run as the main task of a fresh loop of the impl; it does its own untimed setup and
    returns ``(ops, seconds)`` of its timed part (``timed_await``)."""
    impl = impl_argument()
    if impl not in ASYNCIO_IMPLS:
        raise SystemExit(f"impl {impl!r} not supported here (only {ASYNCIO_IMPLS})")
    import asyncio

    report(*run_asyncio(impl, aio(asyncio)))


def raise_fd_limit(needed):
    """Raise RLIMIT_NOFILE's soft limit to the hard one; exit if that is below ``needed``."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"needs {needed} fds, RLIMIT_NOFILE hard limit is {hard}")


LOADGEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "loadgen")
BUILD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".build")


def loadgen_command(name, *args):
    """argv of the C load generator ``loadgen/<name>.c``, compiled with ``cc -O2`` into
    ``.build/<name>`` first if missing or older than its source."""
    import subprocess

    src = os.path.normpath(os.path.join(LOADGEN_DIR, f"{name}.c"))
    exe = os.path.normpath(os.path.join(BUILD_DIR, name))
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        os.makedirs(BUILD_DIR, exist_ok=True)
        tmp = f"{exe}.{os.getpid()}"
        subprocess.run(["cc", "-O2", "-Wall", "-o", tmp, src, "-lm"], check=True)
        os.replace(tmp, exe)
    return [exe, *map(str, args)]


def loadgen_result(returncode, stdout, stderr=""):
    """``(ops, seconds)`` printed by a load generator, which must have succeeded."""
    if returncode:
        raise SystemExit(f"load generator failed ({returncode}): {stderr}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return result["ops"], result["seconds"]
