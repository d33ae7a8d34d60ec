"""evloop.server: StreamServer and DatagramServer, gevent's names and semantics.

Why it exists: a server accepts connections and runs a handler per connection in its own
greenlet. Accepting happens in the hub, in the listening socket's io-watcher callback (up
to ``max_accept`` connections per wake-up, no acceptor greenlet to switch to); each client
is handed to ``spawn`` (a Pool bounds concurrency: while it is full the server stops
accepting, and the kernel's backlog holds new connections). Running out of fds (EMFILE)
pauses accepting briefly instead of spinning or dying.

What it must not do: run user code in the hub (handlers, and the TLS handshake, run in the
handler's greenlet), or lose a connection in flight on ``stop(timeout)``: handlers already
running get up to ``timeout`` seconds to finish before they are killed.
"""
import errno
import sys
from typing import Any, Callable, Optional, Tuple, Union

from evloop import core
from evloop import socket as _socket
from evloop.event import Event
from evloop.greenlet import Greenlet
from evloop.hub import get_hub
from evloop.pool import Group, Pool

__all__ = ["StreamServer", "DatagramServer", "BaseServer"]

# accept() errors that mean "out of resources for now": pause accepting, then retry
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# errors a single failed connection causes; just go on accepting
_CONNECTION_ERRORS = {errno.ECONNABORTED, errno.EPROTO, errno.ECONNRESET, errno.EPERM,
                      errno.EINTR, errno.EAGAIN}
# the listener itself is unusable (closed, not listening, not a socket): stop the server
_FATAL_ERRORS = {errno.EBADF, errno.EINVAL, errno.ENOTSOCK, errno.EOPNOTSUPP}


def _parse_address(address: Any) -> Tuple[int, Any]:
    """(family, sockaddr) from ('host', port), 'host:port', ':port' or a port number."""
    if isinstance(address, tuple):
        host = address[0]
        if ":" in str(host):
            return _socket.AF_INET6, address
        return _socket.AF_INET, address
    if isinstance(address, int):
        return _socket.AF_INET, ("", address)
    if isinstance(address, str):
        if address.startswith("[") and "]:" in address:
            host, port = address[1:].rsplit("]:", 1)
            return _socket.AF_INET6, (host, int(port))
        if ":" in address:
            host, port = address.rsplit(":", 1)
            return _socket.AF_INET, (host, int(port))
        return _socket.AF_INET, ("", int(address))
    raise TypeError(f"expected a socket, an address tuple or 'host:port', not {address!r}")


def _check_socket_type(sock: Any, kind: int, what: str) -> None:
    if sock is None:
        return
    try:
        actual = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_TYPE)
    except (OSError, AttributeError):
        return
    if actual != kind:
        raise ValueError(f"{what} needs a {'SOCK_STREAM' if kind == _socket.SOCK_STREAM else 'SOCK_DGRAM'}"
                         f" socket, got {sock!r}")


class BaseServer:
    """Common machinery: the listener, the spawn policy, start/stop/serve_forever."""

    #: how many connections (or datagrams) to take per wake-up of the listener
    max_accept = 100
    #: default seconds stop() waits for running handlers
    stop_timeout = 1.0
    #: pause after EMFILE and friends, doubling up to max_delay
    min_delay = 0.01
    max_delay = 1.0
    backlog = 256
    reuse_addr = True

    def __init__(self, listener: Any, handle: Optional[Callable[..., Any]] = None,
                 spawn: Union[str, int, Pool, Callable[..., Any], None] = "default",
                 backlog: Optional[int] = None) -> None:
        self._stop_event = Event()
        self._stop_event.set()
        self._watcher: Any = None
        self._timer: Any = None
        self._delay = self.min_delay
        self._handle = handle
        self.pool: Optional[Pool] = None
        self.socket: Any = None
        self.address: Any = None
        self.family = _socket.AF_INET
        self.hub = get_hub()
        if backlog is not None:
            if not isinstance(backlog, int) or backlog < 0:
                raise ValueError(f"backlog must be a non-negative int, not {backlog!r}")
            self.backlog = backlog
        self.set_spawn(spawn)
        if hasattr(listener, "accept") or hasattr(listener, "recvfrom"):
            if backlog is not None and hasattr(listener, "listen"):
                raise ValueError("backlog must be None when a listening socket is given")
            self.socket = listener
            self.address = listener.getsockname()
            self.family = listener.family
        else:
            self.family, self.address = _parse_address(listener)

    # -- configuration --------------------------------------------------------------------

    def set_spawn(self, spawn: Any) -> None:
        if spawn == "default":
            # unbounded, but tracked so that stop(timeout) can wait for handlers in flight
            self.pool = Group()
            self._spawn = self.pool.spawn
        elif hasattr(spawn, "spawn"):
            self.pool = spawn
            self._spawn = spawn.spawn
        elif isinstance(spawn, int) and not isinstance(spawn, bool):
            if spawn < 1:
                raise ValueError(f"spawn as a pool size must be >= 1, not {spawn}")
            self.pool = Pool(spawn)
            self._spawn = self.pool.spawn
        elif spawn is None:
            self.pool = None
            self._spawn = None  # handle in the hub's callback: only for trivial handlers
        elif callable(spawn):
            self.pool = None
            self._spawn = spawn
        else:
            raise TypeError(f"spawn must be 'default', a pool size, a Pool, a callable or "
                            f"None, not {spawn!r}")

    @property
    def server_host(self) -> Any:
        return self.address[0] if isinstance(self.address, tuple) else None

    @property
    def server_port(self) -> Any:
        return self.address[1] if isinstance(self.address, tuple) else None

    @property
    def started(self) -> bool:
        return not self._stop_event.is_set()

    @property
    def closed(self) -> bool:
        return self.socket is None

    def handle(self, *args: Any) -> None:
        if self._handle is None:
            raise NotImplementedError("pass handle= or override handle()")
        self._handle(*args)

    # -- lifecycle ------------------------------------------------------------------------

    def init_socket(self) -> None:
        if self.socket is None:
            self.socket = self.get_listener(self.address, self.family)
            self.address = self.socket.getsockname()

    def start(self) -> None:
        """Open the listener (if given an address) and start accepting; returns at once."""
        if self.started:
            raise ValueError(f"{self!r} is already started")
        self.init_socket()
        self._stop_event.clear()
        self._start_accepting()

    def serve_forever(self, stop_timeout: Optional[float] = None) -> None:
        """Start (if needed) and block the calling greenlet until stop() is called."""
        if not self.started:
            self.start()
        try:
            self._stop_event.wait()
        finally:
            if self.started:
                Greenlet.spawn(self.stop, timeout=stop_timeout).join()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop accepting and close the listener; let handlers in flight finish for up to
        ``timeout`` seconds (default ``stop_timeout``), then kill the rest."""
        self._stop_accepting()
        self.close()
        if timeout is None:
            timeout = self.stop_timeout
        if self.pool is not None:
            self.pool.join(timeout=timeout)
            self.pool.kill(block=True, timeout=1)
        self._stop_event.set()

    def stop_accepting(self) -> None:
        """Stop taking connections but keep the listener open (gevent's name): the kernel
        queues new connections in the listener's backlog meanwhile, where another process
        sharing the listener (a gunicorn worker) takes them, or ``start_accepting()``
        later does. Handlers already running go on."""
        self._stop_accepting()

    def start_accepting(self) -> None:
        """Take connections again after ``stop_accepting()``."""
        if not self.started or self.socket is None:
            raise ValueError(f"{self!r} is not started")
        self._start_accepting()

    def close(self) -> None:
        self._stop_accepting()
        sock, self.socket = self.socket, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self._stop_event.set()

    def __enter__(self) -> "BaseServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x} address={self.address!r}>"

    # -- accepting (runs in the hub) ----------------------------------------------------------

    def _start_accepting(self) -> None:
        if self._watcher is None:
            self._watcher = self.hub.loop.io(self.socket.fileno(), core.READ)
        if not self._watcher.active:
            self._watcher.start(self._on_readable)

    def _stop_accepting(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def _pause(self, delay: float) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        if self._timer is not None:
            self._timer.close()
        self._timer = self.hub.loop.timer(delay)
        self._timer.start(self._resume)

    def _resume(self) -> None:
        if self.started and self.socket is not None:
            self._start_accepting()

    def _on_readable(self) -> None:
        for _ in range(self.max_accept):
            if self.pool is not None and self.pool.full():
                # stop accepting until a handler finishes; the kernel's backlog holds new
                # connections meanwhile. Look again shortly (a pool has no "slot freed" hook).
                self._pause(0.005)
                return
            try:
                args = self.do_read()
            except OSError as ex:
                if ex.errno in _RESOURCE_ERRORS:
                    self._pause(self._delay)
                    self._delay = min(self.max_delay, self._delay * 2)
                    self.hub.handle_error(self, *sys.exc_info())
                    return
                if ex.errno in _CONNECTION_ERRORS:
                    continue
                self.hub.handle_error(self, *sys.exc_info())
                if ex.errno in _FATAL_ERRORS:
                    # reported once; retrying would fail the same way on every iteration
                    self.close()
                else:
                    # unknown: back off like for a resource shortage, never spin
                    self._pause(self._delay)
                    self._delay = min(self.max_delay, self._delay * 2)
                return
            if args is None:
                return  # nothing more to accept now
            self._delay = self.min_delay
            try:
                if self._spawn is None:
                    self._handle_and_close(*args)
                else:
                    self._spawn(self._handle_and_close, *args)
            except BaseException:  # noqa: BLE001 - one failed spawn must not stop the server
                self.hub.handle_error(self, *sys.exc_info())
                self._close_args(args)

    def _close_args(self, args: Tuple[Any, ...]) -> None:
        pass

    def _handle_and_close(self, *args: Any) -> None:
        raise NotImplementedError

    def do_read(self) -> Optional[Tuple[Any, ...]]:
        raise NotImplementedError

    @classmethod
    def get_listener(cls, address: Any, family: int) -> Any:
        raise NotImplementedError


class StreamServer(BaseServer):
    """``StreamServer(listener, handle, spawn='default', backlog=None, ssl_context=None)``:
    call ``handle(socket, address)`` in a new greenlet for every connection. ``listener``
    is a listening socket or an address; ``ssl_context`` wraps each connection in TLS (the
    handshake runs in the connection's greenlet)."""

    def __init__(self, listener: Any, handle: Optional[Callable[..., Any]] = None,
                 backlog: Optional[int] = None, spawn: Any = "default",
                 ssl_context: Any = None, **ssl_args: Any) -> None:
        BaseServer.__init__(self, listener, handle=handle, spawn=spawn, backlog=backlog)
        if ssl_args and ssl_context is None:
            from evloop import ssl as _ssl  # noqa: PLC0415 - only when TLS is wanted
            ssl_context = _ssl.SSLContext(_ssl.PROTOCOL_TLS_SERVER)
            if "certfile" in ssl_args:
                ssl_context.load_cert_chain(ssl_args["certfile"], ssl_args.get("keyfile"))
        self.ssl_context = ssl_context
        _check_socket_type(self.socket, _socket.SOCK_STREAM, "StreamServer")
        if self.socket is not None and not isinstance(self.socket, _socket.socket):
            # a stdlib listening socket: make it cooperative
            std = self.socket
            self.socket = _socket.socket(std.family, std.type, std.proto, std.detach())

    @classmethod
    def get_listener(cls, address: Any, family: int = _socket.AF_INET,
                     backlog: Optional[int] = None) -> Any:
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            if cls.reuse_addr:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog if backlog is not None else cls.backlog)
        except OSError as ex:
            sock.close()
            raise OSError(ex.errno, f"{ex.strerror}: could not listen on {address!r}") from ex
        sock.setblocking(False)
        return sock

    def init_socket(self) -> None:
        if self.socket is None:
            self.socket = self.get_listener(self.address, self.family, self.backlog)
            self.address = self.socket.getsockname()

    def do_read(self) -> Optional[Tuple[Any, Any]]:
        try:
            fd, address = self.socket._accept()
        except BlockingIOError:
            return None
        # the new socket starts with the default timeout (None: blocking), as the stdlib's
        # accept() gives it when the listener has no timeout
        sock = _socket.socket(self.socket.family, self.socket.type, self.socket.proto,
                              fileno=fd)
        return sock, address

    def _close_args(self, args: Tuple[Any, ...]) -> None:
        try:
            args[0].close()
        except OSError:
            pass

    def wrap_socket(self, sock: Any) -> Any:
        from evloop import ssl as _ssl  # noqa: PLC0415
        # works for evloop's SSLContext and the stdlib's alike
        return _ssl.SSLSocket._create(sock=sock, server_side=True,
                                      context=self.ssl_context)

    def _handle_and_close(self, sock: Any, address: Any) -> None:
        try:
            if self.ssl_context is not None:
                sock = self.wrap_socket(sock)
            self.handle(sock, address)
        finally:
            try:
                sock.close()
            except OSError:
                pass


class DatagramServer(BaseServer):
    """``DatagramServer(listener, handle)``: call ``handle(data, address)`` in a new greenlet
    for every datagram; ``sendto(data, address)`` answers."""

    max_accept = 100

    @classmethod
    def get_listener(cls, address: Any, family: int = _socket.AF_INET) -> Any:
        sock = _socket.socket(family, _socket.SOCK_DGRAM)
        try:
            if cls.reuse_addr:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as ex:
            sock.close()
            raise OSError(ex.errno, f"{ex.strerror}: could not bind {address!r}") from ex
        return sock

    def __init__(self, listener: Any, handle: Optional[Callable[..., Any]] = None,
                 spawn: Any = "default") -> None:
        BaseServer.__init__(self, listener, handle=handle, spawn=spawn)
        _check_socket_type(self.socket, _socket.SOCK_DGRAM, "DatagramServer")
        if self.socket is not None and not isinstance(self.socket, _socket.socket):
            std = self.socket
            self.socket = _socket.socket(std.family, std.type, std.proto, std.detach())

    def do_read(self) -> Optional[Tuple[bytes, Any]]:
        try:
            data, address = _socket._original_socket.recvfrom(self.socket, 65536)
        except BlockingIOError:
            return None
        return data, address

    def _handle_and_close(self, data: bytes, address: Any) -> None:
        self.handle(data, address)

    def sendto(self, *args: Any) -> int:
        return self.socket.sendto(*args)
