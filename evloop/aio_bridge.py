"""evloop.aio_bridge: greenlets and coroutines waiting on each other on one loop.

Why it exists: an evloop.aio loop polls with the hub's libev loop, so greenlets (blocking
style: ``sock.recv()``, ``evloop.sleep()``) and asyncio coroutines already run side by side
in one thread. This module lets each wait for the other: a greenlet blocks on an awaitable
(``await_``), a coroutine awaits a greenlet (``wrap_greenlet``, ``run_in_greenlet``), and
results, exceptions and cancellation cross in both directions.

Where it sits: above the greenlet API (it uses ``Greenlet``, ``Waiter``, ``Timeout``) and
next to ``evloop.aio`` among the integrations; named ``aio_bridge`` because the other side
is asyncio in particular (a greenlet can already wait on any evloop object). It recognises
an evloop.aio loop by its C base type (``evloop.core._AioLoop``) and does not import
``evloop.aio``, so that ``evloop.aio`` can re-export these names without an import cycle
(``evloop.aio.await_`` and friends).

What it must not do: block the hub greenlet (asyncio callbacks and coroutines run there, so
``await_`` refuses to run there), leave a task or a greenlet running for a wait that was
abandoned (a killed or timed-out ``await_`` cancels what it waited on; a cancelled
``wrap_greenlet`` future kills its greenlet unless told to detach), or wake a greenlet twice
(a wake-up that arrives after the wait ended is only stored in the finished Waiter).

Contexts (``contextvars``): the task ``await_`` creates runs in a copy of the calling
greenlet's context (``loop.create_task``'s rule); ``run_in_greenlet`` runs its function in
a copy of the calling coroutine's context (``asyncio.to_thread``'s rule). A greenlet
started any other way (``evloop.spawn`` from a coroutine included) starts in an empty
context, as every greenlet does. Details and examples: docs/asyncio.md.
"""
import asyncio
import contextvars
import inspect
from threading import get_ident
from typing import Any, Awaitable, Callable, Optional, TypeVar

from greenlet import GreenletExit, getcurrent

from evloop import _stdlib_asyncio as _stdlib
from evloop import core
from evloop.exceptions import InvalidSwitchError
from evloop.greenlet import Greenlet
from evloop.hub import Hub, Waiter, _get_hub_if_exists, _seconds, _wait_within
from evloop.timeout import Timeout

__all__ = ["await_", "wrap_greenlet", "run_in_greenlet"]

_T = TypeVar("_T")
_TIMEOUT = object()
_ON_CANCEL = ("kill", "detach")


def _is_evloop_loop(loop: Any) -> bool:
    """An evloop.aio loop (its C base type; ``evloop.aio.Loop`` subclasses it)."""
    return isinstance(loop, core._AioLoop)


# -- a greenlet waits for an awaitable ------------------------------------------------------

def _refuse(awaitable: Any, error: BaseException) -> BaseException:
    """The error for an await_() that will not wait. A coroutine object handed to us is
    closed: no one else will run it, and Python would warn that it was never awaited."""
    if inspect.iscoroutine(awaitable):
        awaitable.close()
    return error


def _loop_for_wait(loop: Any, hub: Optional[Hub]) -> Any:
    """The evloop.aio loop a greenlet of this thread may wait on, or a RuntimeError/TypeError
    saying why there is none."""
    if loop is None:
        loop = _stdlib.get_running_loop_or_none()
        if loop is None:
            raise RuntimeError(
                "await_() needs a running evloop.aio event loop in this thread: none is "
                "running (call it from a greenlet while evloop.aio.run()/run_until_complete()"
                " runs, or pass loop=)")
        if not _is_evloop_loop(loop):
            raise RuntimeError(f"await_() needs an evloop.aio event loop; the running loop "
                               f"is {type(loop).__module__}.{type(loop).__qualname__}")
        return loop
    if not _is_evloop_loop(loop):
        raise TypeError(f"loop must be an evloop.aio event loop, not "
                        f"{type(loop).__module__}.{type(loop).__qualname__}")
    if loop.is_closed():
        raise RuntimeError("await_(): the event loop is closed")
    if loop.is_running():
        if _stdlib.loop_thread_id(loop) != get_ident():
            raise RuntimeError("await_(): the event loop runs in another thread; from there, "
                               "use asyncio.run_coroutine_threadsafe()")
    elif hub is None or loop._hub is not hub:
        # its callbacks (and so the end of our wait) would run on another thread's hub
        raise RuntimeError("await_(): the event loop is not running and is bound to another "
                           "thread's hub")
    return loop


def await_(awaitable: Awaitable[_T], *, loop: Any = None,
           timeout: Optional[float] = None) -> _T:
    """Block the current greenlet until ``awaitable`` completes; return its result or raise
    its exception.

    ``awaitable`` is a coroutine (run as a new Task of the loop, in a copy of this greenlet's
    context), an asyncio Future or Task of the loop, or any object with ``__await__``.
    ``loop``: the evloop.aio loop; default, the one running in this thread. A loop passed
    explicitly may also be one of this thread that is not running yet: the wait ends once
    it runs.

    If the wait ends early the awaited future is cancelled, as ``asyncio.wait_for`` does —
    including a Future or Task the caller passed in (wrap it in ``asyncio.shield()`` to
    keep it running): when ``timeout`` seconds pass first, ``evloop.Timeout`` is raised;
    when the greenlet is killed (or any exception is thrown into it) while it waits, that
    exception propagates. In both cases ``await_`` returns at once: the cancellation runs in
    the loop's next batch. A future already done when the timeout fires counts as done.

    If the awaited future is cancelled by someone else (``task.cancel()``, asyncio.run()
    ending), ``asyncio.CancelledError`` is raised in the greenlet.

    Errors: RuntimeError from the hub greenlet (a coroutine or a loop callback: use
    ``await`` there), when no evloop.aio loop is running in this thread, for a closed loop
    or one running in another thread; TypeError for an object that is not awaitable or a
    loop that is not an evloop.aio loop. A coroutine that is refused is closed.
    """
    hub = _get_hub_if_exists()
    if hub is not None and getcurrent() is hub:
        raise _refuse(awaitable, RuntimeError(
            "await_() cannot block the evloop hub greenlet, where coroutines and loop "
            "callbacks run: in a coroutine, use `await`; from a callback, add a done "
            "callback to a future"))
    if not (asyncio.isfuture(awaitable) or inspect.isawaitable(awaitable)):
        raise TypeError(f"await_() needs a coroutine, an asyncio Future or an awaitable, "
                        f"not {type(awaitable).__name__}")
    try:
        seconds = None if timeout is None else _seconds(timeout, "timeout")
        loop = _loop_for_wait(loop, hub)
    except BaseException as exc:
        raise _refuse(awaitable, exc) from None
    future = asyncio.ensure_future(awaitable, loop=loop)
    if future.done():
        return future.result()
    hub = loop._hub  # this thread's hub: a running loop is rebound to it, else checked
    waiter = Waiter(hub)
    waiter.what = future  # named in a LoopExit's message
    wake = waiter.switch  # one bound method: remove_done_callback compares with ==
    # The done callback runs in the hub (asyncio callbacks do), where Waiter.switch is
    # legal; a switch that comes after get() returned is only stored, so a late wake-up
    # (the future finished in the same iteration as the timeout) cannot resume us later.
    future.add_done_callback(wake)
    try:
        result = waiter.get() if seconds is None else _wait_within(waiter, seconds, _TIMEOUT)
    except BaseException:
        # killed, or another exception thrown into the waiting greenlet: abandon the wait
        future.remove_done_callback(wake)
        future.cancel()
        raise
    if result is _TIMEOUT:
        future.remove_done_callback(wake)
        if not future.done():
            future.cancel()
            raise Timeout(timeout)
    elif result is not future:
        future.remove_done_callback(wake)
        future.cancel()
        raise InvalidSwitchError(f"Invalid switch into await_(): {result!r}")
    return future.result()


# -- a coroutine waits for a greenlet -------------------------------------------------------

def _check_loop_for_greenlet(g: Greenlet, loop: Any) -> Any:
    if loop is None:
        loop = asyncio.get_running_loop()  # RuntimeError: "no running event loop"
    if not _is_evloop_loop(loop):
        raise TypeError(f"loop must be an evloop.aio event loop (greenlets run on its hub), "
                        f"not {type(loop).__module__}.{type(loop).__qualname__}")
    if loop.is_closed():
        raise RuntimeError("the event loop is closed")
    if g._hub is not loop._hub:
        raise ValueError(f"{g!r} belongs to another thread's hub than the event loop")
    return loop


def _resolve(future: "asyncio.Future[Any]", g: Greenlet) -> None:
    """Give ``future`` the outcome of the finished greenlet ``g`` (runs in the hub)."""
    if future.done():
        return
    if g.successful():
        value = g.value
        if isinstance(value, GreenletExit):
            # killed: a greenlet that did not finish its work, as a cancelled task
            future.cancel(f"the greenlet was killed: {value!r}")
        else:
            future.set_result(value)
    else:
        exc = g.exception
        if exc is None:  # dead without a recorded outcome (should not happen)
            exc = RuntimeError(f"{g!r} finished without a result")
        future.set_exception(exc)


class _Link:
    """``g.rawlink`` callback: resolve the future when the greenlet finishes (in the hub)."""

    __slots__ = ("future",)

    def __init__(self, future: "asyncio.Future[Any]") -> None:
        self.future = future

    def __call__(self, g: Greenlet) -> None:
        _resolve(self.future, g)


class _OnFutureDone:
    """Future done callback: if the future was cancelled, kill or detach the greenlet."""

    __slots__ = ("greenlet", "link", "kill")

    def __init__(self, g: Greenlet, link: _Link, kill: bool) -> None:
        self.greenlet = g
        self.link = link
        self.kill = kill

    def __call__(self, future: "asyncio.Future[Any]") -> None:
        g = self.greenlet
        self.greenlet = None  # type: ignore[assignment]
        if g is None or not future.cancelled():
            return
        g.unlink(self.link)
        if self.kill and not g.dead:
            g.kill(block=False)  # from the hub: raise GreenletExit in it at the next callback


def wrap_greenlet(g: Greenlet, *, loop: Any = None,
                  on_cancel: str = "kill") -> "asyncio.Future[Any]":
    """An asyncio Future of ``loop`` (default: the running loop) that resolves when the
    evloop Greenlet ``g`` finishes: with its return value, or with the exception it raised.
    A greenlet killed with ``GreenletExit`` (``g.kill()``) cancels the future — it did
    not finish its work, like a cancelled task — whereas ``g.get()`` would return the
    GreenletExit instance (gevent's rule). A greenlet killed with another exception sets
    that exception.

    Cancelling the future (e.g. cancelling the task that awaits it) with
    ``on_cancel="kill"`` (the default) kills the greenlet without waiting: GreenletExit is
    raised in it at the hub's next callback run, so its ``finally`` blocks have not run yet
    when the awaiting task sees CancelledError (``run_in_greenlet`` does wait).
    ``on_cancel="detach"`` leaves it running, unobserved.

    ``g`` is not started here: a greenlet that is never started never resolves the future.
    Its exception is also reported by the hub as usual (``run_in_greenlet``'s greenlets
    are not: their exception goes to the awaiting coroutine only).
    """
    if not isinstance(g, Greenlet):
        raise TypeError(f"wrap_greenlet() needs an evloop.Greenlet (spawn's result), not "
                        f"{type(g).__name__}")
    if on_cancel not in _ON_CANCEL:
        raise ValueError(f"on_cancel must be 'kill' or 'detach', not {on_cancel!r}")
    loop = _check_loop_for_greenlet(g, loop)
    future = loop.create_future()
    if g.ready():
        _resolve(future, g)
        return future
    link = _Link(future)
    g.rawlink(link)
    future.add_done_callback(_OnFutureDone(g, link, on_cancel == "kill"))
    return future


class _BridgedGreenlet(Greenlet):
    """The greenlet of ``run_in_greenlet``: its exception belongs to the coroutine that
    awaits it, so the hub does not also print it (SystemExit, KeyboardInterrupt and
    SystemError still go to the hub, which raises them in the main greenlet)."""

    __slots__ = ("_future",)

    def _report_error(self, exc_info: tuple) -> None:
        future = getattr(self, "_future", None)
        if (future is None or future.done() or isinstance(exc_info[1], GreenletExit)
                or issubclass(exc_info[0], self._hub.SYSTEM_ERROR)):
            Greenlet._report_error(self, exc_info)
            return
        self._exc_info = exc_info
        if self._links and self._notifier is None:
            self._notifier = self._hub.loop.run_callback(self._notify_links)


def _finished(g: Greenlet, loop: Any) -> "asyncio.Future[None]":
    """A future of ``loop`` set to None when ``g`` finishes, whatever its outcome."""
    future = loop.create_future()

    def done(_: Greenlet) -> None:
        if not future.done():
            future.set_result(None)

    g.rawlink(done)
    future.add_done_callback(lambda f: g.unlink(done))
    return future


async def run_in_greenlet(function: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """Run blocking-style evloop code from a coroutine: ``function(*args, **kwargs)`` runs
    in a new evloop Greenlet, in a copy of the calling coroutine's context (as
    ``asyncio.to_thread``); its return value is the result, its exception is raised here
    (and not also printed by the hub).

    Cancelling the awaiting task kills the greenlet and waits for it to finish (its
    ``finally`` blocks and context managers run) before CancelledError propagates — as
    ``asyncio.wait_for`` waits for the task it cancels. A greenlet killed by someone else
    raises CancelledError here.
    """
    loop = asyncio.get_running_loop()
    if not _is_evloop_loop(loop):
        raise RuntimeError(f"run_in_greenlet() needs an evloop.aio event loop; the running "
                           f"loop is {type(loop).__module__}.{type(loop).__qualname__}")
    g = _BridgedGreenlet(function, *args, **kwargs)  # TypeError if not callable
    future = wrap_greenlet(g, loop=loop)
    g._future = future
    g.gr_context = contextvars.copy_context()
    g.start()
    try:
        return await future
    except asyncio.CancelledError:
        if not g.dead:
            # killed by the cancelled future's callback; wait until it has unwound
            await _finished(g, loop)
        raise
