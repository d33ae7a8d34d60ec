"""evloop.aio: an asyncio event loop on evloop's libev loop (uvloop's names).

Why it exists: asyncio code (aiohttp, asyncpg, anything written with ``async def``) should
run on evloop without a second event loop in the thread. ``Loop`` is an asyncio event loop
whose ready queue, handles, timers, readers/writers and ``call_soon_threadsafe`` are C
(``csrc/evloop_aio.c``) and whose polling is the libev loop of the thread's evloop hub —
the very loop greenlets wait on, so greenlets and coroutines interleave. Everything above
the event-loop core (transports, ``sock_*``, ``create_connection``, servers, pipes,
subprocesses, signal handlers) is asyncio's own selector-loop code, inherited unchanged.

What it must not do: re-implement asyncio's transports or protocols (the transports'
read methods are asyncio's own with the receive call replaced: see ``_SocketTransport``),
or run asyncio callbacks outside ``run_forever()`` (the hub may iterate for greenlets
while the asyncio loop is stopped; its callbacks wait). Design and limits: docs/asyncio.md.

    import evloop.aio
    evloop.aio.run(main())                         # like asyncio.run / uvloop.run
    asyncio.Runner(loop_factory=evloop.aio.new_event_loop)   # Python 3.11+
    evloop.aio.install()                           # asyncio.new_event_loop() -> Loop
"""
import asyncio
import collections
import selectors
import socket
import sys
import threading
import warnings
import weakref
from asyncio import base_events, events, format_helpers, selector_events, unix_events
import asyncio.futures
import asyncio.tasks
from typing import Any, Awaitable, Callable, Deque, Dict, List, Mapping, Optional, TypeVar

from evloop import core
from evloop import hub as _hub  # noqa: F401 - the hub must be configured before a Loop binds

__all__ = ["Loop", "new_event_loop", "run", "EventLoopPolicy", "install", "Handle",
           "TimerHandle"]

_T = TypeVar("_T")

#: The handle types call_soon/call_later return. They have asyncio.Handle's and
#: asyncio.TimerHandle's interface (cancel, cancelled, when, get_context, ...) but are C
#: types, not subclasses of asyncio's classes (as with uvloop).
Handle = core._AioHandle
TimerHandle = core._AioTimerHandle

logger = base_events.logger
# 3.12+: run_forever is split into a setup and a cleanup this loop can call around its core
_HAVE_RUN_FOREVER_SETUP = hasattr(base_events.BaseEventLoop, "_run_forever_setup")


# -- helpers the C core calls (error paths, debug mode, reprs) ----------------------------

def _on_error(loop: "Loop", handle: Any, exc: BaseException, callback: Any,
              args: Any) -> None:
    """A callback raised: the report asyncio's Handle._run makes."""
    source = format_helpers._format_callback_source(callback, args)
    context: Dict[str, Any] = {"message": f"Exception in callback {source}",
                               "exception": exc, "handle": handle}
    if handle._source_traceback:
        context["source_traceback"] = handle._source_traceback
    loop.call_exception_handler(context)


def _handle_repr(handle: Any) -> str:
    info = [type(handle).__name__]
    if handle._cancelled:
        info.append("cancelled")
    if isinstance(handle, TimerHandle):
        info.append(f"when={handle._when}")
    if handle._callback is not None:
        info.append(format_helpers._format_callback_source(handle._callback, handle._args))
    if handle._source_traceback:
        frame = handle._source_traceback[-1]
        info.append(f"created at {frame[0]}:{frame[1]}")
    return "<{}>".format(" ".join(info))


def _extract_stack() -> Any:
    # called from C: frame 1 is the Python code that called loop.call_soon & co.
    return format_helpers.extract_stack(sys._getframe(1))


def _debug_check(loop: "Loop", callback: Any, method: str, check_thread: bool) -> None:
    if check_thread:
        loop._check_thread()
    loop._check_callback(callback, method)


def _run_debug(loop: "Loop", handle: Any) -> None:
    """Debug mode: run a handle the way asyncio's _run_once does, logging slow ones."""
    try:
        loop._current_handle = handle
        t0 = loop.time()
        handle._run()
        dt = loop.time() - t0
        if dt >= loop.slow_callback_duration:
            logger.warning("Executing %s took %.3f seconds",
                           base_events._format_handle(handle), dt)
    finally:
        loop._current_handle = None


core._aio_configure(_on_error, _handle_repr, _extract_stack, _debug_check, _run_debug,
                    asyncio.tasks.__dict__, asyncio.futures.__dict__,
                    base_events.BaseEventLoop.create_task)


def _fileobj_to_fd(fileobj: Any) -> int:
    if isinstance(fileobj, int):
        return fileobj
    try:
        return int(fileobj.fileno())
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"Invalid file object: {fileobj!r}") from None


class _SelectorView(selectors.BaseSelector):
    """``loop._selector``: a read-only view of the loop's readers and writers.

    asyncio's transports read it for their repr (is the fd polled?), and so do some tests.
    The loop does not poll through it — libev does — so registering through it or calling
    select() is refused."""

    def __init__(self, loop: "Loop") -> None:
        self._loop = weakref.ref(loop)

    def _key(self, fileobj: Any) -> Optional[selectors.SelectorKey]:
        loop = self._loop()
        if loop is None or loop.is_closed():
            return None
        found = loop._fd_key(fileobj)
        if found is None:
            return None
        events, reader, writer = found
        return selectors.SelectorKey(fileobj, _fileobj_to_fd(fileobj), events,
                                     (reader, writer))

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        key = self._key(fileobj)
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        return key

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        loop = self._loop()
        fds = [] if loop is None or loop.is_closed() else loop._fds()
        return {fd: key for fd in fds for key in [self._key(fd)] if key is not None}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        raise RuntimeError("evloop.aio polls with libev: use loop.add_reader/add_writer")

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        raise RuntimeError("evloop.aio polls with libev: use loop.remove_reader/remove_writer")

    def select(self, timeout: Optional[float] = None) -> List[Any]:
        raise RuntimeError("evloop.aio polls with libev; its selector is a read-only view")

    def close(self) -> None:
        pass


_recv = core._recv


class _SocketTransport(selector_events._SelectorSocketTransport):  # type: ignore[misc, name-defined]
    """asyncio's socket transport, reading through ``core._recv``.

    asyncio's transport reads with ``sock.recv(256 KiB)``: a 256 KiB allocation per read,
    which glibc serves with mmap/mremap/munmap and page faults however little arrives
    (csrc/evloop_io.c, ``evloop_recv_use_scratch``). ``core._recv`` receives into a
    reused buffer and copies out what arrived. The method below is asyncio's own
    ``_read_ready__data_received`` (the same in CPython 3.9 to 3.13) with that one call
    changed; everything else is asyncio's class. Only exact ``socket.socket`` objects take
    this path (a subclass may have its own recv).
    """

    def _read_ready__data_received(self) -> None:
        if self._conn_lost:
            return
        try:
            data = _recv(self._sock, self.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal read error on socket transport')
            return

        if not data:
            self._read_ready__on_eof()
            return

        try:
            self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(
                exc, 'Fatal error: protocol.data_received() call failed.')


class _DatagramTransport(selector_events._SelectorDatagramTransport):  # type: ignore[misc, name-defined]
    """asyncio's datagram transport, receiving into the loop's reused buffer.

    asyncio's ``_read_ready`` does ``sock.recvfrom(256 KiB)``, the same 256 KiB allocation
    per datagram as the socket transport's reads. This is that method (the same in CPython
    3.9 to 3.13) with ``recvfrom_into`` a buffer the loop keeps, and the datagram copied
    out. The buffer is the loop's, so only the loop's thread uses it, and nothing runs
    between the receive and the copy. Exact ``socket.socket`` objects only.
    """

    _evloop_view: memoryview    # the loop's buffer, set by Loop._make_datagram_transport

    def _read_ready(self) -> None:
        if self._conn_lost:
            return
        try:
            size = self.max_size
            view = self._evloop_view
            if 0 < size <= len(view):
                nbytes, addr = self._sock.recvfrom_into(view, size)
                data = bytes(view[:nbytes])
            else:                               # a max_size changed by the user
                data, addr = self._sock.recvfrom(size)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._protocol.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal read error on datagram transport')
        else:
            self._protocol.datagram_received(data, addr)


# Newer CPythons refuse a second transport on an fd in _make_*_transport itself; the
# overrides below do what the running version's do.
_CHECK_FD_IN_MAKE = "_ensure_fd_no_transport" in \
    selector_events.BaseSelectorEventLoop._make_socket_transport.__code__.co_names
_CHECK_FD_IN_MAKE_DGRAM = "_ensure_fd_no_transport" in \
    selector_events.BaseSelectorEventLoop._make_datagram_transport.__code__.co_names


def _only_empty(value: Any, name: str) -> None:
    if value:
        raise ValueError(f"evloop.aio.Loop keeps {name} in C; it can only be set empty")


class Loop(core._AioLoop, unix_events._UnixSelectorEventLoop):  # type: ignore[misc]
    """An asyncio event loop on the libev loop of the current thread's evloop hub.

    call_soon, call_later/call_at, time, stop, call_soon_threadsafe and the reader/writer
    primitives are the C methods of ``evloop.core.AioLoop``; run_forever switches from the
    calling greenlet into the hub, which runs one batch of ready callbacks after each poll
    (asyncio's iteration) until stop() is called. Transports, sockets, servers, pipes,
    subprocesses and signal handlers are asyncio's selector-loop code.

    A loop is bound to the hub of the thread that made it and moves, with its timers and
    readers, to the thread that runs it. run_forever()/run_until_complete() cannot be
    called from the hub greenlet itself (from a loop callback): RuntimeError.
    """

    def __init__(self) -> None:
        # asyncio's own constructors, so that every version's attributes exist; given a
        # selector, they make no poller of their own. They also make asyncio's self-pipe:
        # signal.set_wakeup_fd() writes signal numbers to it, and its reader (a libev io
        # watcher) runs the handlers added by add_signal_handler().
        unix_events._UnixSelectorEventLoop.__init__(self, selector=_SelectorView(self))

    # -- views of the C state, for code that inspects asyncio's internals ----------------

    @property
    def _ready(self) -> Deque[Any]:
        """A snapshot of the ready queue (the queue itself is C)."""
        return collections.deque(self._ready_handles())

    @_ready.setter
    def _ready(self, value: Any) -> None:
        _only_empty(value, "_ready")

    @property
    def _scheduled(self) -> List[Any]:
        """A snapshot of the armed timers, by deadline (they live in libev's heap)."""
        return self._scheduled_handles()

    @_scheduled.setter
    def _scheduled(self, value: Any) -> None:
        _only_empty(value, "_scheduled")

    # -- running -------------------------------------------------------------------------

    def run_forever(self) -> None:
        """Run until stop() is called: the calling greenlet waits while the hub runs the
        loop's callbacks (and everything else on the hub's libev loop)."""
        self._check_not_hub()
        if _HAVE_RUN_FOREVER_SETUP:
            self._run_forever_setup()
            try:
                self._run(False)
            finally:
                self._run_forever_cleanup()
            return
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            events._set_running_loop(self)
            self._run(False)
        finally:
            self._stopping = False
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def _run_once(self) -> None:
        """One iteration: poll (blocking unless callbacks are ready), then run the batch
        of callbacks that were ready, as asyncio's _run_once."""
        self._check_not_hub()
        self._run(True)

    def _make_socket_transport(self, sock: Any, protocol: Any, waiter: Any = None, *,
                               extra: Any = None, server: Any = None) -> Any:
        if type(sock) is not socket.socket:
            return super()._make_socket_transport(sock, protocol, waiter, extra=extra,
                                                  server=server)
        if _CHECK_FD_IN_MAKE:
            self._ensure_fd_no_transport(sock)
        return _SocketTransport(self, sock, protocol, waiter, extra, server)

    def _make_datagram_transport(self, sock: Any, protocol: Any, address: Any = None,
                                 waiter: Any = None, extra: Any = None) -> Any:
        if type(sock) is not socket.socket:
            return super()._make_datagram_transport(sock, protocol, address, waiter, extra)
        if _CHECK_FD_IN_MAKE_DGRAM:
            self._ensure_fd_no_transport(sock)
        transport = _DatagramTransport(self, sock, protocol, address, waiter, extra)
        # set before the reader can fire: the constructor only schedules add_reader
        transport._evloop_view = self._dgram_buffer()
        return transport

    def _dgram_buffer(self) -> memoryview:
        """The buffer this loop's datagram transports receive into (made on first use)."""
        view = self.__dict__.get("_evloop_dgram_view")
        if view is None:
            view = memoryview(bytearray(selector_events._SelectorDatagramTransport.max_size))
            self.__dict__["_evloop_dgram_view"] = view
        return view

    def _process_events(self, event_list: Any) -> None:
        raise RuntimeError("evloop.aio dispatches I/O events in C; nothing to process")

    def close(self) -> None:
        """Close the loop: drop queued callbacks, stop timers, readers and writers, remove
        signal handlers, shut the default executor down (without waiting)."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if getattr(self, "_ssock", None) is not None:
            self._close_self_pipe()
        base_events.BaseEventLoop.close(self)
        self._close_watchers()
        self._selector = None  # as asyncio's selector loop: transports' reprs read it
        if not sys.is_finalizing():
            for sig in list(self._signal_handlers):
                self.remove_signal_handler(sig)
        elif self._signal_handlers:
            warnings.warn(f"Closing the loop {self!r} on interpreter shutdown stage, "
                          f"skipping signal handlers removal", ResourceWarning, source=self)
            self._signal_handlers.clear()


def new_event_loop() -> Loop:
    """A new evloop.aio event loop (uvloop.new_event_loop)."""
    return Loop()


def run(main: Awaitable[_T], *, debug: Optional[bool] = None) -> _T:
    """Run coroutine ``main`` on a new evloop.aio loop and return its result, like
    ``asyncio.run`` (``uvloop.run``): the loop is closed afterwards, remaining tasks are
    cancelled, async generators and the default executor shut down."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=new_event_loop, debug=debug) as runner:
            return runner.run(main)
    if events._get_running_loop() is not None:
        raise RuntimeError("evloop.aio.run() cannot be called from a running event loop")
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = new_event_loop()
    try:
        events.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            asyncio.runners._cancel_all_tasks(loop)  # type: ignore[attr-defined]
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            events.set_event_loop(None)
            loop.close()


_BasePolicy: Any = getattr(unix_events, "_UnixDefaultEventLoopPolicy",
                           getattr(asyncio, "DefaultEventLoopPolicy", None))


class EventLoopPolicy(_BasePolicy):  # type: ignore[misc, valid-type]
    """asyncio's default Unix policy (child watchers included) whose new_event_loop()
    returns an evloop.aio.Loop (uvloop.EventLoopPolicy)."""

    def _loop_factory(self) -> Loop:  # type: ignore[override]
        return Loop()


def install() -> None:
    """Make evloop.aio asyncio's default: asyncio.set_event_loop_policy(EventLoopPolicy())."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


# The greenlet <-> coroutine bridge lives in evloop/aio_bridge.py (it sits above the greenlet
# API); its names are offered here too: evloop.aio.await_(...), evloop.aio.run_in_greenlet.
from evloop.aio_bridge import await_, run_in_greenlet, wrap_greenlet  # noqa: E402

__all__ += ["await_", "run_in_greenlet", "wrap_greenlet"]
