"""evloop.socket: the stdlib socket API, cooperative.

Why it exists: code written for ``socket`` (and everything built on it: http.client,
urllib, requests) blocks only its own greenlet when it uses this module. The ``socket``
class is a subclass of the stdlib one whose fd is always non-blocking; the socket's timeout
(``settimeout``, ``setblocking``, the default timeout) is honoured by waiting on the fd's io
watcher through the hub. recv/recv_into/send/sendall are bound straight to the C fast path
(``core.SockIO``): one C call tries the system call and waits on EAGAIN.

What it must not do: block the thread (names are resolved through ``evloop.resolver``,
never by a blocking ``getaddrinfo`` inside ``connect``), or leave a greenlet waiting on a
closed fd (``close`` wakes it with EBADF first).
"""
import os as _os
import socket as __socket__
from errno import EAGAIN, EALREADY, EINPROGRESS, EISCONN, EWOULDBLOCK
from socket import *  # noqa: F401,F403 - every stdlib constant, exception and function
from socket import (_GLOBAL_DEFAULT_TIMEOUT, AF_INET, AF_INET6, SO_ERROR, SOL_SOCKET,
                    error, getdefaulttimeout, inet_pton)
from socket import timeout as _timeout_exc
from typing import Any, List, Optional, Tuple

from evloop import core
from evloop.hub import get_hub

# the rest of the stdlib module's public names (EBADF, SocketIO, AddressInfo, MsgFlag, ...)
# that its __all__ leaves out; the ones this module defines below replace them
for _name in dir(__socket__):
    if not _name.startswith("_") and _name not in globals():
        globals()[_name] = getattr(__socket__, _name)

__all__ = list(__socket__.__all__)
for _name in ("socket", "SocketType", "socketpair", "fromfd", "create_connection",
              "create_server", "getaddrinfo", "gethostbyname", "gethostbyname_ex",
              "gethostbyaddr", "getnameinfo", "getfqdn", "wait_read", "wait_write",
              "timeout", "error", "gaierror", "herror"):
    if _name not in __all__:
        __all__.append(_name)

core._io_configure(_timeout_exc)
_SockIO = core.SockIO
_original_socket = __socket__.socket
_std_socket = __import__("_socket").socket
_CONNECT_WAIT = (EINPROGRESS, EALREADY, EWOULDBLOCK, EAGAIN)


def _check_timeout(value: Any) -> Optional[float]:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError("Timeout value must be int, float or None") from None
    if value != value or value < 0.0:
        raise ValueError("Timeout value out of range")
    return value


class socket(_original_socket):
    """A stdlib socket whose blocking operations wait cooperatively."""

    # no __slots__: recv/recv_into/send/sendall are bound per instance to the C fast path
    # (a subclass that reimplements them, like evloop.ssl.SSLSocket, turns that off)
    _evloop_fastpath = True

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1,
                 fileno: Optional[int] = None) -> None:
        _original_socket.__init__(self, family, type, proto, fileno)
        # the stdlib applied the default timeout; keep it as ours, the fd non-blocking
        timeout = _original_socket.gettimeout(self)
        _original_socket.setblocking(self, False)
        io = _SockIO(_original_socket.fileno(self), timeout)
        self._io = io
        if self._evloop_fastpath:
            self.recv = io.recv
            self.recv_into = io.recv_into
            self.send = io.send
            self.sendall = io.sendall

    # the same operations for subclasses without the per-instance binding
    def recv(self, *args: Any) -> bytes:  # type: ignore[override]
        return self._io.recv(*args)

    def recv_into(self, *args: Any) -> int:  # type: ignore[override]
        return self._io.recv_into(*args)

    def send(self, *args: Any) -> int:  # type: ignore[override]
        return self._io.send(*args)

    def sendall(self, *args: Any) -> None:  # type: ignore[override]
        return self._io.sendall(*args)

    # -- timeouts ---------------------------------------------------------------------------

    def gettimeout(self) -> Optional[float]:
        return self._io.timeout

    def settimeout(self, value: Optional[float]) -> None:
        self._io.timeout = _check_timeout(value)

    def setblocking(self, flag: bool) -> None:
        self._io.timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._io.timeout != 0.0

    @property
    def timeout(self) -> Optional[float]:
        return self._io.timeout

    # -- waiting helpers ----------------------------------------------------------------------

    def _wait_read(self) -> None:
        if self._io.timeout == 0.0:
            raise BlockingIOError(EAGAIN, "Resource temporarily unavailable")
        self._io.wait_read()

    def _wait_write(self) -> None:
        if self._io.timeout == 0.0:
            raise BlockingIOError(EAGAIN, "Resource temporarily unavailable")
        self._io.wait_write()

    # -- the rest of the I/O API: try, and on EAGAIN wait for readiness ---------------------

    def recvfrom(self, *args: Any) -> Tuple[bytes, Any]:
        while True:
            try:
                return _original_socket.recvfrom(self, *args)
            except BlockingIOError:
                self._wait_read()

    def recvfrom_into(self, *args: Any) -> Tuple[int, Any]:
        while True:
            try:
                return _original_socket.recvfrom_into(self, *args)
            except BlockingIOError:
                self._wait_read()

    def recvmsg(self, *args: Any) -> Any:
        while True:
            try:
                return _original_socket.recvmsg(self, *args)
            except BlockingIOError:
                self._wait_read()

    def recvmsg_into(self, *args: Any) -> Any:
        while True:
            try:
                return _original_socket.recvmsg_into(self, *args)
            except BlockingIOError:
                self._wait_read()

    def sendto(self, *args: Any) -> int:
        while True:
            try:
                return _original_socket.sendto(self, *args)
            except BlockingIOError:
                self._wait_write()

    def sendmsg(self, *args: Any) -> int:
        while True:
            try:
                return _original_socket.sendmsg(self, *args)
            except BlockingIOError:
                self._wait_write()

    def accept(self) -> Tuple["socket", Any]:
        while True:
            try:
                fd, addr = self._accept()
                break
            except BlockingIOError:
                self._wait_read()
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        # as the stdlib: a listening socket with a timeout hands out blocking sockets
        # when there is no default timeout
        if getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, addr

    def connect(self, address: Any) -> None:
        if self._io.timeout == 0.0:
            return _original_socket.connect(self, address)
        address = _resolve_for_connect(self, address)
        err = _original_socket.connect_ex(self, address)
        if err == 0 or err == EISCONN:
            return None
        if err not in _CONNECT_WAIT:
            raise error(err, _os.strerror(err))
        self._io.wait_write()  # socket.timeout on expiry
        err = self.getsockopt(SOL_SOCKET, SO_ERROR)
        if err:
            raise error(err, _os.strerror(err))
        return None

    def connect_ex(self, address: Any) -> int:
        try:
            self.connect(address)
        except _timeout_exc:
            return EAGAIN
        except gaierror:  # noqa: F405 - as the stdlib, name errors are raised
            raise
        except OSError as ex:
            if ex.errno:
                return ex.errno
            raise
        return 0

    def sendfile(self, file: Any, offset: int = 0, count: Optional[int] = None) -> int:
        """Send a file with os.sendfile, waiting cooperatively when the socket is full."""
        self._check_sendfile_params(file, offset, count)
        if self._io.timeout == 0.0:
            raise ValueError("non-blocking sockets are not supported")
        try:
            fileno = file.fileno()
        except (AttributeError, OSError, __import__("io").UnsupportedOperation):
            return self._sendfile_use_send(file, offset, count)
        try:
            fsize = _os.fstat(fileno).st_size
        except OSError:
            return self._sendfile_use_send(file, offset, count)
        if not fsize:
            return 0
        blocksize = min(count or fsize, 2 ** 30)
        total_sent = 0
        sockno = self.fileno()
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                try:
                    sent = _os.sendfile(sockno, fileno, offset, blocksize)
                except BlockingIOError:
                    self._wait_write()
                    continue
                if sent == 0:
                    break
                offset += sent
                total_sent += sent
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset)
        return total_sent

    # -- closing ----------------------------------------------------------------------------

    def _real_close(self, _ss: Any = _std_socket) -> None:
        # wake greenlets waiting on this fd before the fd number can be reused
        self._io.close()
        _ss.close(self)

    def detach(self) -> int:
        self._io.close(detach=True)  # the fd lives on: only this socket's waiters get EBADF
        return _original_socket.detach(self)

    def dup(self) -> "socket":
        fd = _os.dup(self.fileno())
        sock = self.__class__(self.family, self.type, self.proto, fileno=fd)
        sock.settimeout(self.gettimeout())
        return sock

    def __getstate__(self) -> Any:
        raise TypeError(f"cannot pickle {self.__class__.__name__!r} object")


SocketType = socket


def wait_read(fileno: int, timeout: Optional[float] = None) -> None:
    """Block the current greenlet until ``fileno`` is readable (socket.timeout after
    ``timeout`` seconds; OSError EBADF for a closed fd)."""
    _os.fstat(fileno)  # any fd may come here: refuse a closed one before libev sees it
    _SockIO(fileno).wait_read(timeout)


def wait_write(fileno: int, timeout: Optional[float] = None) -> None:
    """Block the current greenlet until ``fileno`` is writable."""
    _os.fstat(fileno)
    _SockIO(fileno).wait_write(timeout)


def socketpair(family: int = -1, type: int = __socket__.SOCK_STREAM,
               proto: int = 0) -> Tuple[socket, socket]:
    if family == -1:
        family = getattr(__socket__, "AF_UNIX", AF_INET)
    # _socket's, not socket.socketpair: after monkey-patching that one is this function
    a, b = __import__("_socket").socketpair(family, type, proto)
    return (socket(a.family, a.type, a.proto, a.detach()),
            socket(b.family, b.type, b.proto, b.detach()))


def fromfd(fd: int, family: int, type: int, proto: int = 0) -> socket:
    return socket(family, type, proto, _os.dup(fd))


# -- name resolution: through the hub's resolver (a thread pool by default) ----------------
# evloop.resolver answers literal addresses at once and sends names to the hub's resolver;
# its getaddrinfo returns AddressFamily/SocketKind members, as the stdlib's does.
from evloop.resolver import (getaddrinfo, gethostbyaddr, gethostbyname,  # noqa: E402
                             gethostbyname_ex, getnameinfo)


def getfqdn(name: str = "") -> str:
    name = name.strip()
    if not name or name in ("0.0.0.0", "::"):
        name = __socket__.gethostname()
    try:
        hostname, aliases, _ = gethostbyaddr(name)
    except error:
        return name
    for candidate in [hostname] + aliases:
        if "." in candidate:
            return candidate
    return hostname


def _is_ip_literal(host: str, family: int) -> bool:
    try:
        inet_pton(family, host.split("%", 1)[0] if family == AF_INET6 else host)
        return True
    except (OSError, ValueError, TypeError):
        return False


def _resolve_for_connect(sock: socket, address: Any) -> Any:
    """Resolve a host name through the cooperative resolver, so that the stdlib's
    ``connect`` never runs a blocking getaddrinfo."""
    family = sock.family
    if family not in (AF_INET, AF_INET6) or not isinstance(address, tuple) or len(address) < 2:
        return address
    host, port = address[0], address[1]
    if isinstance(host, bytes):
        host = host.decode("idna")
    if not isinstance(host, str) or _is_ip_literal(host, family):
        return address
    infos = getaddrinfo(host, port, family, sock.type, sock.proto)
    if not infos:
        raise gaierror(__socket__.EAI_NONAME, "Name or service not known")  # noqa: F405
    sockaddr = infos[0][4]
    if family == AF_INET6 and len(address) > 2:
        return (sockaddr[0], sockaddr[1]) + tuple(address[2:])
    return sockaddr


def create_connection(address: Tuple[Any, Any], timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
                      source_address: Optional[Tuple[Any, Any]] = None, *,
                      all_errors: bool = False) -> socket:
    """Connect to ``address`` (host, port), trying each address the name resolves to."""
    host, port = address
    exceptions = []
    for res in getaddrinfo(host, port, 0, __socket__.SOCK_STREAM):
        af, socktype, proto, _canonname, sa = res
        sock = None
        try:
            sock = socket(af, socktype, proto)
            if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sa)
            exceptions.clear()
            return sock
        except error as exc:
            if not all_errors:
                exceptions.clear()
            exceptions.append(exc)
            if sock is not None:
                sock.close()
    if exceptions:
        try:
            if not all_errors:
                raise exceptions[0]
            raise ExceptionGroup("create_connection failed", exceptions)  # noqa: F821
        finally:
            exceptions.clear()
    raise error("getaddrinfo returns an empty list")


def create_server(address: Tuple[Any, Any], *, family: int = AF_INET,
                  backlog: Optional[int] = None, reuse_port: bool = False,
                  dualstack_ipv6: bool = False) -> socket:
    """The stdlib's create_server (binding and listening never block), as an evloop
    socket."""
    std = __socket__.create_server(address, family=family, backlog=backlog,
                                   reuse_port=reuse_port, dualstack_ipv6=dualstack_ipv6)
    return socket(std.family, std.type, std.proto, std.detach())
