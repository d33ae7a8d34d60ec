"""evloop.aio: an asyncio event loop on evloop's libev loop (uvloop's names).

Why it exists: asyncio code (aiohttp, asyncpg, anything written with ``async def``) should
run on evloop without a second event loop in the thread. ``Loop`` is an asyncio event loop
whose ready queue, handles, timers, readers/writers and ``call_soon_threadsafe`` are C
(``csrc/evloop_aio.c``) and whose polling is the libev loop of the thread's evloop hub —
the very loop greenlets wait on, so greenlets and coroutines interleave. Its socket
and pipe transports are its own (``StreamTransport``, ``DatagramTransport``,
``ReadPipeTransport``, ``WritePipeTransport``: real subclasses of asyncio's public
transport classes whose I/O is C, ``csrc/evloop_transport.c``); everything else above the
event-loop core (``sock_*``, ``create_connection``, servers, ``connect_*_pipe``,
subprocesses, signal handlers, SSL) is asyncio's own selector-loop code, inherited
unchanged, which makes evloop's transports through the loop's transport hooks.

What it must not do: change what asyncio's transports do as seen by a protocol (the order
of protocol calls, flow control, error messages and exception-handler contexts are
asyncio's; ``EVLOOP_AIO_TRANSPORTS=asyncio`` gives asyncio's own transports, whose read
methods are asyncio's with the receive call replaced: see ``_SocketTransport``),
run asyncio callbacks outside ``run_forever()`` (the hub may iterate for greenlets while
the asyncio loop is stopped; its callbacks wait), or reach a private name of asyncio other
than through evloop/_stdlib_asyncio.py, where each is listed with the CPythons it was
checked on. Design and limits: docs/asyncio.md.

    import evloop.aio
    evloop.aio.run(main())                         # like asyncio.run / uvloop.run
    asyncio.run(main(), loop_factory=evloop.aio.new_event_loop)   # Python 3.12+
    asyncio.Runner(loop_factory=evloop.aio.new_event_loop)        # Python 3.11+
"""
import asyncio
import collections
import contextvars
import errno
import logging
import os
import selectors
import socket
import stat
import sys
import warnings
import weakref
from asyncio import trsock
from typing import Any, Awaitable, Deque, Dict, List, Mapping, Optional, TypeVar

from evloop import _stdlib_asyncio as _stdlib
from evloop._config import get_config
from evloop import core
from evloop import hub as _hub  # noqa: F401 - the hub must be configured before a Loop binds

__all__ = ["Loop", "new_event_loop", "run", "install", "Handle", "TimerHandle"]

_T = TypeVar("_T")

#: The handle types call_soon/call_later return. They have asyncio.Handle's and
#: asyncio.TimerHandle's interface (cancel, cancelled, when, get_context, ...) but are C
#: types, not subclasses of asyncio's classes (as with uvloop).
Handle = core._AioHandle
TimerHandle = core._AioTimerHandle

logger = logging.getLogger("asyncio")   # asyncio's own logger (asyncio.log.logger)


# -- helpers the C core calls (error paths, debug mode, reprs) ----------------------------

def _on_error(loop: "Loop", handle: Any, exc: BaseException, callback: Any,
              args: Any) -> None:
    """A callback raised: the report asyncio's Handle._run makes."""
    source = _stdlib.format_callback_source(callback, args, loop.get_debug())
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
        loop = handle._loop
        info.append(_stdlib.format_callback_source(handle._callback, handle._args,
                                                   loop is not None and loop.get_debug()))
    if handle._source_traceback:
        frame = handle._source_traceback[-1]
        info.append(f"created at {frame[0]}:{frame[1]}")
    return "<{}>".format(" ".join(info))


def _extract_stack() -> Any:
    # called from C: frame 1 is the Python code that called loop.call_soon & co.
    return _stdlib.extract_stack(sys._getframe(1))


def _run_debug(loop: "Loop", handle: Any) -> None:
    """Debug mode: run a handle the way asyncio's _run_once does, logging slow ones."""
    try:
        loop._current_handle = handle
        t0 = loop.time()
        handle._run()
        dt = loop.time() - t0
        if dt >= loop.slow_callback_duration:
            logger.warning("Executing %s took %.3f seconds",
                           _stdlib.format_handle(handle), dt)
    finally:
        loop._current_handle = None


core._aio_configure(_on_error, _handle_repr, _extract_stack, _stdlib.debug_checks, _run_debug,
                    _stdlib.TASKS_NAMESPACE, _stdlib.FUTURES_NAMESPACE,
                    _stdlib.base_create_task)


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


class _SocketTransport(_stdlib.SocketTransport):  # type: ignore[misc]
    """asyncio's socket transport, reading through ``core._recv``.

    asyncio's transport reads with ``sock.recv(256 KiB)``: a 256 KiB allocation per read,
    which glibc serves with mmap/mremap/munmap and page faults however little arrives
    (csrc/evloop_io.c, ``evloop_recv_use_scratch``). ``core._recv`` receives into a
    reused buffer and copies out what arrived. The method below is asyncio's own
    ``_read_ready__data_received`` (the same in CPython 3.10 to 3.15) with that one call
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


class _DatagramTransport(_stdlib.DatagramTransport):  # type: ignore[misc]
    """asyncio's datagram transport, receiving into the loop's reused buffer.

    asyncio's ``_read_ready`` does ``sock.recvfrom(256 KiB)``, the same 256 KiB allocation
    per datagram as the socket transport's reads. This is that method (the same in CPython
    3.10 to 3.15) with ``recvfrom_into`` a buffer the loop keeps, and the datagram copied
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


# The transport classes: C types made with asyncio's public transport classes as bases (the
# datagram transport is also an asyncio.Transport, as asyncio's own is: its class derives
# from both, and CPython's test_events checks it). Their once-per-connection methods are
# Python, written in the namespaces below and set on the C types (_add_methods): a Python
# subclass would do the same, but a method call on an instance of a Python subclass of a C
# type does not specialise in CPython 3.11's interpreter (callgrind: 366 instructions per
# transport.is_closing() call instead of 186), and transport.write() is the hot call of
# stream code.
StreamTransport, DatagramTransport = core._aio_transport_types(
    (asyncio.Transport,), (asyncio.DatagramTransport, asyncio.Transport),
    asyncio.BufferedProtocol, logger,
    _stdlib.DGRAM_SENDS_EMPTY, _stdlib.DGRAM_HEADER_SIZE)
# The pipe transports: the stream transport's C with read()/write() (asyncio's own pipe
# transports are a ReadTransport and a Transport-derived WriteTransport; these are exactly
# asyncio.ReadTransport and asyncio.WriteTransport)
ReadPipeTransport, WritePipeTransport = core._aio_pipe_types(
    (asyncio.ReadTransport,), (asyncio.WriteTransport,))


def _set_nodelay(sock: socket.socket) -> None:
    # as asyncio's and uvloop's transports: small writes go out without waiting for an ACK
    if (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
            and sock.proto == socket.IPPROTO_TCP):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _add_methods(cls: Any, namespace: type) -> None:
    """Set the functions and class attributes of ``namespace`` on the C type ``cls``."""
    for name, value in vars(namespace).items():
        if name not in ("__module__", "__qualname__", "__dict__", "__weakref__"):
            setattr(cls, name, value)


def _socket_extra(sock: socket.socket, extra: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A socket transport's extra info, as asyncio's selector transports give it: the
    socket (wrapped), sockname and peername (None when the socket has none)."""
    extra = {} if extra is None else extra
    extra["socket"] = trsock.TransportSocket(sock)
    try:
        extra["sockname"] = sock.getsockname()
    except OSError:
        extra["sockname"] = None
    if "peername" not in extra:
        try:
            extra["peername"] = sock.getpeername()
        except OSError:
            extra["peername"] = None
    return extra


class _StreamTransportPy:
    """evloop.aio's own transport for a connected TCP or Unix stream socket.

    An ``asyncio.Transport`` whose I/O is C (csrc/evloop_transport.c): reading calls the
    protocol's ``data_received`` (or, for an ``asyncio.BufferedProtocol``, ``get_buffer``
    and ``buffer_updated``) straight from the loop's reader; ``write`` sends at once and
    queues the rest; flow control, pause/resume reading, ``write_eof``, ``close`` and
    ``abort`` behave as asyncio documents them, with asyncio's error messages and
    exception-handler contexts. This class holds the parts that run once per connection:
    setup (extra info, the Server's bookkeeping, scheduling ``connection_made``) and the
    ``connection_lost`` call.
    """

    _start_tls_compatible = True     # loop.start_tls() may wrap it (asyncio's SSLProtocol)
    _sendfile_compatible = _stdlib.SENDFILE_TRY_NATIVE   # loop.sendfile(): os.sendfile
    max_size = 256 * 1024            # one read receives at most this (as asyncio's)

    def __init__(self, loop: "Loop", sock: socket.socket, protocol: asyncio.BaseProtocol,
                 waiter: Optional[asyncio.Future] = None,  # type: ignore[type-arg]
                 extra: Optional[Dict[str, Any]] = None, server: Any = None,
                 context: Optional[contextvars.Context] = None) -> None:
        extra = _socket_extra(sock, extra)
        fd = sock.fileno()
        self._setup(loop, sock, fd, protocol, extra, context)
        self._server = server
        _set_nodelay(sock)
        if server is not None:
            _stdlib.server_attach(server, self)
        _stdlib.register_transport(loop, fd, self)
        kw = {} if context is None else {"context": context}
        loop.call_soon(protocol.connection_made, self, **kw)
        # reading starts once connection_made() has run
        loop.call_soon(self._start_reading, **kw)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None, **kw)

    def __repr__(self) -> str:
        info = [type(self).__name__]
        sock = self._sock
        if sock is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._sock_fd}")
        loop = self._loop
        if loop is not None and not loop.is_closed():
            key = loop._fd_key(self._sock_fd)
            events = key[0] if key is not None else 0
            info.append("read=polling" if events & selectors.EVENT_READ else "read=idle")
            state = "polling" if events & selectors.EVENT_WRITE else "idle"
            info.append(f"write=<{state}, bufsize={self.get_write_buffer_size()}>")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn: Any = warnings.warn) -> None:
        sock = self._sock
        if sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            sock.close()

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport"
                     ) -> None:
        # asyncio's: an OSError (the peer reset, ...) is only logged in debug mode; anything
        # else goes to the exception handler; both close the transport.
        loop = self._loop
        if isinstance(exc, OSError):
            if loop is not None and loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        elif loop is not None:
            loop.call_exception_handler({"message": message, "exception": exc,
                                         "transport": self, "protocol": self._protocol})
        self._force_close(exc)

    def _call_connection_lost(self, exc: Optional[BaseException]) -> None:
        try:
            if self._protocol_connected and self._protocol is not None:
                self._protocol.connection_lost(exc)
        finally:
            sock = self._detach()
            if sock is not None:
                sock.close()
            server, self._server = self._server, None
            if server is not None:
                _stdlib.server_detach(server, self)
            waiter = self._empty_waiter
            if waiter is not None:
                waiter.set_exception(ConnectionError("Connection is closed by peer"))

    # loop.sendfile() (asyncio's selector loop, _sendfile_native) waits for the write queue
    # to drain with these, and write() refuses data meanwhile.
    def _make_empty_waiter(self) -> asyncio.Future:  # type: ignore[type-arg]
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        waiter = self._loop.create_future()
        if not self.get_write_buffer_size():
            waiter.set_result(None)
        self._empty_waiter = waiter
        return waiter

    def _reset_empty_waiter(self) -> None:
        self._empty_waiter = None


class _DatagramTransportPy:
    """evloop.aio's own transport for a UDP or Unix datagram socket.

    An ``asyncio.DatagramTransport`` whose I/O is C (csrc/evloop_transport.c): each
    readable event is one ``recvfrom`` into a reused buffer and one
    ``protocol.datagram_received(data, addr)``; ``sendto`` sends at once, queueing the
    datagram only when the socket would block; an OSError from either goes to
    ``protocol.error_received``. Flow control, ``close`` and ``abort`` as asyncio's."""

    max_size = 256 * 1024

    def __init__(self, loop: "Loop", sock: socket.socket, protocol: asyncio.BaseProtocol,
                 address: Any = None,
                 waiter: Optional[asyncio.Future] = None,  # type: ignore[type-arg]
                 extra: Optional[Dict[str, Any]] = None) -> None:
        extra = _socket_extra(sock, extra)
        fd = sock.fileno()
        self._setup(loop, sock, fd, protocol, extra, None)
        self._dgram_setup(sock.family, address, bool(extra["peername"]))
        self._server = None
        _stdlib.register_transport(loop, fd, self)
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)

    __repr__ = _StreamTransportPy.__repr__
    __del__ = _StreamTransportPy.__del__
    _fatal_error = _StreamTransportPy._fatal_error

    def _call_connection_lost(self, exc: Optional[BaseException]) -> None:
        try:
            if self._protocol_connected and self._protocol is not None:
                self._protocol.connection_lost(exc)
        finally:
            sock = self._detach()
            if sock is not None:
                sock.close()


def _pipe_repr(self: Any) -> str:
    info = [type(self).__name__]
    if self._pipe is None:
        info.append("closed")
    elif self._closing:
        info.append("closing")
    info.append(f"fd={self._fileno}")
    loop = self._loop
    # asyncio's: polling/idle while the loop is open, "open" once it is closed
    if self._pipe is not None and loop is not None and not loop.is_closed():
        key = loop._fd_key(self._fileno)
        events = key[0] if key is not None else 0
        if isinstance(self, ReadPipeTransport):
            info.append("polling" if events & selectors.EVENT_READ else "idle")
        else:
            info.append("polling" if events & selectors.EVENT_WRITE else "idle")
            info.append(f"bufsize={self.get_write_buffer_size()}")
    elif self._pipe is not None:
        info.append("open")
    else:
        info.append("closed")
    return "<{}>".format(" ".join(info))


def _pipe_call_connection_lost(self: Any, exc: Optional[BaseException]) -> None:
    # asyncio's: connection_lost, then the pipe is closed and the loop and protocol dropped
    try:
        if self._protocol is not None:
            self._protocol.connection_lost(exc)
    finally:
        pipe = self._detach()
        if pipe is not None:
            pipe.close()


class _ReadPipeTransportPy:
    """evloop.aio's transport for the read end of a pipe (``loop.connect_read_pipe``, a
    subprocess's stdout/stderr): an ``asyncio.ReadTransport`` whose reading is the stream
    transport's C with ``read()``; EOF calls ``eof_received`` and then ``connection_lost``,
    as asyncio's _UnixReadPipeTransport does."""

    max_size = 256 * 1024

    def __init__(self, loop: "Loop", pipe: Any, protocol: asyncio.BaseProtocol,
                 waiter: Optional[asyncio.Future] = None,  # type: ignore[type-arg]
                 extra: Optional[Dict[str, Any]] = None) -> None:
        extra = {} if extra is None else extra
        extra["pipe"] = pipe
        fileno = pipe.fileno()
        mode = os.fstat(fileno).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            raise ValueError("Pipe transport is for pipes/sockets only.")
        os.set_blocking(fileno, False)
        self._setup(loop, pipe, fileno, protocol, extra, None)
        self._pipe_setup(1)
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start_reading)   # once connection_made() has run
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)

    __repr__ = _pipe_repr

    def __del__(self, _warn: Any = warnings.warn) -> None:
        pipe = self._pipe
        if pipe is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            pipe.close()

    def _pipe_eof(self) -> None:
        loop = self._loop
        if loop.get_debug():
            logger.info("%r was closed by peer", self)
        loop.call_soon(self._protocol.eof_received)
        self._force_close(None)      # stops reading; connection_lost(None) after eof_received

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on pipe transport"
                     ) -> None:
        loop = self._loop
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            if loop is not None and loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        elif loop is not None:
            loop.call_exception_handler({"message": message, "exception": exc,
                                         "transport": self, "protocol": self._protocol})
        self._force_close(exc)

    _call_connection_lost = _pipe_call_connection_lost


class _WritePipeTransportPy:
    """evloop.aio's transport for the write end of a pipe (``loop.connect_write_pipe``, a
    subprocess's stdin): an ``asyncio.WriteTransport`` whose writing, write buffer and flow
    control are the stream transport's C with ``write()``/``writev()``. As asyncio's
    _UnixWritePipeTransport: it watches the pipe for its reader's close (then
    ``connection_lost``, with BrokenPipeError if data was still queued), and ``write_eof``
    closes the pipe once the queue is flushed."""

    def __init__(self, loop: "Loop", pipe: Any, protocol: asyncio.BaseProtocol,
                 waiter: Optional[asyncio.Future] = None,  # type: ignore[type-arg]
                 extra: Optional[Dict[str, Any]] = None) -> None:
        extra = {} if extra is None else extra
        extra["pipe"] = pipe
        fileno = pipe.fileno()
        st = os.fstat(fileno)
        is_fifo, is_socket = stat.S_ISFIFO(st.st_mode), stat.S_ISSOCK(st.st_mode)
        if not (stat.S_ISCHR(st.st_mode) or is_fifo or is_socket):
            raise ValueError("Pipe transport is only for pipes, sockets and character devices")
        os.set_blocking(fileno, False)
        self._setup(loop, pipe, fileno, protocol, extra, None)
        self._pipe_setup(2)
        loop.call_soon(protocol.connection_made, self)
        # The reader's close makes the write end readable (a pipe or a socket), as asyncio
        # relies on: not on AIX (sockets only there), nor for a named FIFO on macOS and
        # Solaris, which polls readable while unread data sits in it (asyncio 3.15's
        # gh-145030; an os.pipe() has st_nlink 0).
        named_fifo_no_close_event = (
            sys.platform in ("darwin", "ios", "tvos", "watchos", "sunos5")
            and is_fifo and st.st_nlink > 0)
        if is_socket or (is_fifo and not sys.platform.startswith("aix")
                         and not named_fifo_no_close_event):
            loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)

    __repr__ = _pipe_repr
    __del__ = _ReadPipeTransportPy.__del__

    def _pipe_peer_closed(self) -> None:
        loop = self._loop
        if loop.get_debug():
            logger.info("%r was closed by peer", self)
        self._force_close(BrokenPipeError() if self.get_write_buffer_size() else None)

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on pipe transport"
                     ) -> None:
        loop = self._loop
        if isinstance(exc, OSError):
            if loop is not None and loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        elif loop is not None:
            loop.call_exception_handler({"message": message, "exception": exc,
                                         "transport": self, "protocol": self._protocol})
        self._force_close(exc)

    _call_connection_lost = _pipe_call_connection_lost


_add_methods(StreamTransport, _StreamTransportPy)
_add_methods(DatagramTransport, _DatagramTransportPy)
_add_methods(ReadPipeTransport, _ReadPipeTransportPy)
_add_methods(WritePipeTransport, _WritePipeTransportPy)


class _SendfileFallback(asyncio.Protocol):
    """loop.sendfile()'s fallback for a StreamTransport: the protocol the transport has
    while the file is read and written, so that the write buffer's pause/resume_writing
    pace the copy (asyncio's own such protocol accepts only asyncio's transports)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._proto = transport.get_protocol()
        self._should_resume_reading = transport.is_reading()
        self._should_resume_writing = transport._protocol_paused
        transport.pause_reading()
        transport.set_protocol(self)
        self._write_ready: Optional[asyncio.Future] = (  # type: ignore[type-arg]
            transport._loop.create_future() if self._should_resume_writing else None)

    async def drain(self) -> None:
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        if self._write_ready is not None:
            await self._write_ready

    def connection_made(self, transport: Any) -> None:
        raise RuntimeError("Invalid state: connection should have been established already.")

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._write_ready is not None:
            self._write_ready.set_exception(
                exc if exc is not None else ConnectionError("Connection is closed by peer"))
        self._proto.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._write_ready is None:
            self._write_ready = self._transport._loop.create_future()

    def resume_writing(self) -> None:
        if self._write_ready is not None:
            self._write_ready.set_result(False)
            self._write_ready = None

    def data_received(self, data: bytes) -> None:
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self) -> None:
        raise RuntimeError("Invalid state: reading should be paused")

    async def restore(self) -> None:
        self._transport.set_protocol(self._proto)
        if self._should_resume_reading:
            self._transport.resume_reading()
        if self._write_ready is not None:
            self._write_ready.cancel()
        if self._should_resume_writing:
            self._proto.resume_writing()


_SENDFILE_BLOCK = 256 * 1024   # asyncio's read size for sendfile's fallback


def _set_result_unless_cancelled(fut: Any, result: Any) -> None:
    if not fut.cancelled():
        fut.set_result(result)


def _only_empty(value: Any, name: str) -> None:
    if value:
        raise ValueError(f"evloop.aio.Loop keeps {name} in C; it can only be set empty")


class Loop(core._AioLoop, asyncio.SelectorEventLoop):  # type: ignore[misc, valid-type]
    """An asyncio event loop on the libev loop of the current thread's evloop hub.

    call_soon, call_later/call_at, time, stop, call_soon_threadsafe and the reader/writer
    primitives are the C methods of ``evloop.core.AioLoop`` (on CPython 3.14+,
    call_soon_threadsafe makes asyncio's thread-safe handle in Python and queues it through
    the C method); run_forever switches from the calling greenlet into the hub, which runs
    one batch of ready callbacks after each poll (asyncio's iteration) until stop() is
    called. Transports, sockets, servers, pipes, subprocesses and signal handlers are
    asyncio's selector-loop code.

    A loop is bound to the hub of the thread that made it and moves, with its timers and
    readers, to the thread that runs it. run_forever()/run_until_complete() cannot be
    called from the hub greenlet itself (from a loop callback): RuntimeError.
    """

    def __init__(self) -> None:
        # asyncio's own constructors, so that every version's attributes exist; given a
        # selector, they make no poller of their own. They also make asyncio's self-pipe:
        # signal.set_wakeup_fd() writes signal numbers to it, and its reader (a libev io
        # watcher) runs the handlers added by add_signal_handler().
        asyncio.SelectorEventLoop.__init__(self, selector=_SelectorView(self))
        #: stream sockets get evloop's own transport (StreamTransport) rather than
        #: asyncio's (EVLOOP_AIO_TRANSPORTS)
        self._own_transports = get_config().aio_transports == "evloop"

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
        _stdlib.run_forever_setup(self)
        try:
            self._run(False)
        finally:
            _stdlib.run_forever_cleanup(self)

    if _stdlib.ThreadSafeHandle is not None:
        def call_soon_threadsafe(self, callback: Any, *args: Any,
                                 context: Optional[contextvars.Context] = None) -> Any:
            """Like call_soon(), from any thread. CPython 3.14+: returns asyncio's own
            thread-safe handle (cancel()/cancelled() from another thread wait while its
            callback runs), whose _run() the C core queues and runs."""
            if context is not None and type(context) is not contextvars.Context:
                raise TypeError(f"context must be a contextvars.Context, not "
                                f"{type(context).__name__}")
            if self.is_closed():
                raise RuntimeError("Event loop is closed")
            if self.get_debug():
                _stdlib.debug_checks(self, callback, "call_soon_threadsafe", False)
            if not callable(callback):
                raise TypeError(f"a callable object was expected by call_soon_threadsafe(), "
                                f"got {callback!r}")
            handle = _stdlib.ThreadSafeHandle(callback, args, self, context)
            if handle._source_traceback:
                del handle._source_traceback[-1]
            core._AioLoop.call_soon_threadsafe(self, handle._run)
            return handle

    def _run_once(self) -> None:
        """One iteration: poll (blocking unless callbacks are ready), then run the batch
        of callbacks that were ready, as asyncio's _run_once."""
        self._check_not_hub()
        self._run(True)

    # asyncio's hooks for making transports (their signatures per CPython version, and what
    # they do besides constructing the transport: evloop/_stdlib_asyncio.py). context= is
    # passed by asyncio from 3.15 only.
    def _make_socket_transport(self, sock: Any, protocol: Any, waiter: Any = None, *,
                               extra: Any = None, server: Any = None,
                               context: Any = None) -> Any:
        if self._own_transports and type(sock) is socket.socket:
            return _stdlib.new_socket_transport(StreamTransport, self, sock, protocol, waiter,
                                                extra, server, context)
        cls = _SocketTransport if type(sock) is socket.socket else _stdlib.SocketTransport
        return _stdlib.new_socket_transport(cls, self, sock, protocol, waiter, extra, server,
                                            context)

    def _make_datagram_transport(self, sock: Any, protocol: Any, address: Any = None,
                                 waiter: Any = None, extra: Any = None) -> Any:
        if self._own_transports and type(sock) is socket.socket:
            return _stdlib.new_datagram_transport(DatagramTransport, self, sock, protocol,
                                                  address, waiter, extra)
        if type(sock) is not socket.socket:
            return _stdlib.new_datagram_transport(_stdlib.DatagramTransport, self, sock,
                                                  protocol, address, waiter, extra)
        transport = _stdlib.new_datagram_transport(_DatagramTransport, self, sock, protocol,
                                                   address, waiter, extra)
        # set before the reader can fire: the constructor only schedules add_reader
        transport._evloop_view = self._dgram_buffer()
        return transport

    # asyncio's Unix loop's hooks for connect_read_pipe/connect_write_pipe and the
    # subprocess transport's pipes (evloop/_stdlib_asyncio.py, PIPE_TRANSPORT_HOOKS)
    def _make_read_pipe_transport(self, pipe: Any, protocol: Any, waiter: Any = None,
                                  extra: Any = None) -> Any:
        if self._own_transports:
            return ReadPipeTransport(self, pipe, protocol, waiter, extra)
        return super()._make_read_pipe_transport(pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(self, pipe: Any, protocol: Any, waiter: Any = None,
                                   extra: Any = None) -> Any:
        if self._own_transports:
            return WritePipeTransport(self, pipe, protocol, waiter, extra)
        return super()._make_write_pipe_transport(pipe, protocol, waiter, extra)

    def _dgram_buffer(self) -> memoryview:
        """The buffer this loop's datagram transports receive into (made on first use)."""
        view = self.__dict__.get("_evloop_dgram_view")
        if view is None:
            view = memoryview(bytearray(_DatagramTransport.max_size))
            self.__dict__["_evloop_dgram_view"] = view
        return view

    async def _sendfile_fallback(self, transp: Any, file: Any, offset: int,
                                 count: Optional[int]) -> int:
        """loop.sendfile() when os.sendfile cannot be used: read the file in blocks (in the
        executor) and write them, paced by the transport's flow control. asyncio's own
        fallback for asyncio's transports; this one for StreamTransport."""
        if not isinstance(transp, StreamTransport):
            return await super()._sendfile_fallback(transp, file, offset, count)
        if offset:
            file.seek(offset)
        blocksize = min(count, _SENDFILE_BLOCK) if count else _SENDFILE_BLOCK
        buf = bytearray(blocksize)
        total_sent = 0
        proto = _SendfileFallback(transp)
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        return total_sent
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return total_sent
                await proto.drain()
                transp.write(view[:read])
                total_sent += read
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset + total_sent)
            await proto.restore()

    def _process_events(self, event_list: Any) -> None:
        raise RuntimeError("evloop.aio dispatches I/O events in C; nothing to process")

    def close(self) -> None:
        """Close the loop: drop queued callbacks, stop timers, readers and writers, remove
        signal handlers, shut the default executor down (without waiting)."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        try:
            # asyncio's: the self-pipe, the executor, the selector (the view), the signal
            # handlers
            super().close()
        finally:
            self._close_watchers()


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
    if _stdlib.get_running_loop_or_none() is not None:
        raise RuntimeError("evloop.aio.run() cannot be called from a running event loop")
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _stdlib.cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


# -- event-loop policies (asyncio deprecates them in 3.14 and removes them in 3.16) --------

_USE_LOOP_FACTORY = ("use asyncio.run(main(), loop_factory=evloop.aio.new_event_loop) "
                     "(Python 3.12+), asyncio.Runner(loop_factory=evloop.aio.new_event_loop)"
                     " or evloop.aio.run(main()) instead")

if _stdlib.HAVE_POLICIES:
    class EventLoopPolicy(_stdlib.DefaultPolicy):  # type: ignore[misc, name-defined]
        """asyncio's default Unix policy whose new_event_loop() returns an evloop.aio.Loop
        (uvloop.EventLoopPolicy). Python 3.10-3.15: asyncio's policies are deprecated from
        3.14 (asyncio.set_event_loop_policy warns) and gone in 3.16; prefer
        ``loop_factory=evloop.aio.new_event_loop``."""

        def _loop_factory(self) -> Loop:  # type: ignore[override]
            return Loop()

    __all__.append("EventLoopPolicy")


def __getattr__(name: str) -> Any:
    # only reached on a CPython without policies, where EventLoopPolicy is not defined
    if name == "EventLoopPolicy":
        raise AttributeError("evloop.aio.EventLoopPolicy needs asyncio's event loop "
                             "policies, which this Python no longer has (removed in 3.16): "
                             + _USE_LOOP_FACTORY)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def install() -> None:
    """Make evloop.aio asyncio's default loop: set an ``EventLoopPolicy()`` as asyncio's
    event loop policy, so that asyncio.run() and asyncio.new_event_loop() make Loops.

    Python 3.10-3.13: silent. 3.14 and 3.15, which deprecate policies: warns
    DeprecationWarning (at the caller's line, naming the loop_factory replacement) instead
    of asyncio's own warning. 3.16+, which has no policies: RuntimeError."""
    if not _stdlib.HAVE_POLICIES:
        raise RuntimeError("evloop.aio.install() needs asyncio's event loop policies, which "
                           "this Python no longer has (removed in 3.16): "
                           + _USE_LOOP_FACTORY)
    if _stdlib.POLICIES_DEPRECATED:
        warnings.warn("evloop.aio.install() sets an asyncio event loop policy, and policies "
                      "are deprecated since Python 3.14 (removed in 3.16): "
                      + _USE_LOOP_FACTORY, DeprecationWarning, stacklevel=2)
    _stdlib.set_event_loop_policy(EventLoopPolicy())


# The greenlet <-> coroutine bridge lives in evloop/aio_bridge.py (it sits above the greenlet
# API); its names are offered here too: evloop.aio.await_(...), evloop.aio.run_in_greenlet.
from evloop.aio_bridge import await_, run_in_greenlet, wrap_greenlet  # noqa: E402

__all__ += ["await_", "run_in_greenlet", "wrap_greenlet"]
