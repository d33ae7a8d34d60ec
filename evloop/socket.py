"""evloop.socket: the stdlib socket API, cooperative.

Why it exists: code written for ``socket`` (and everything built on it: http.client,
urllib, requests) blocks only its own greenlet when it uses this module. The ``socket``
class is a subclass of the stdlib one whose fd is always non-blocking; the socket's timeout
(``settimeout``, ``setblocking``, the default timeout) is honoured by waiting on the fd's io
watcher through the hub of the calling thread. recv/recv_into/send/sendall are the C fast
path (``core.SockIO``, put in the class as C methods by ``core._sock_install``): one C
call tries the system call and waits on EAGAIN; a bound ``sock.recv`` keeps its socket
alive, as the stdlib's does.

What it must not do: block the thread (names are resolved through ``evloop.resolver``,
never by a blocking ``getaddrinfo`` inside ``connect``), leave a greenlet waiting on a
closed fd (``close`` and the finalizer wake it with EBADF first), use an fd after its
socket let go of it, or accept arguments the stdlib's socket refuses (the stdlib's own
methods judge them: evloop/_stdlib_socket.py).
"""
import os as _os
import socket as __socket__
from errno import EAGAIN, EALREADY, EBADF, EINPROGRESS, EISCONN, EWOULDBLOCK
from socket import *  # noqa: F401,F403 - every stdlib constant, exception and function
from socket import (_GLOBAL_DEFAULT_TIMEOUT, AF_INET, AF_INET6, SO_ERROR, SOL_SOCKET,
                    error, getdefaulttimeout, inet_pton)
from socket import timeout as _timeout_exc
from typing import Any, List, Optional, Tuple

from evloop import _stdlib_socket, core

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

core._io_configure(_timeout_exc, _stdlib_socket.fdless())
_SockIO = core.SockIO
_original_socket = __socket__.socket
_std_socket = __import__("_socket").socket
_socketpair = __import__("_socket").socketpair
_dup = __import__("_socket").dup
_CONNECT_WAIT = (EINPROGRESS, EALREADY, EWOULDBLOCK, EAGAIN)


class _GiveUpOnSendfile(Exception):
    """os.sendfile cannot send this file: socket.sendfile falls back to send()."""


class socket(_original_socket):
    """A stdlib socket whose blocking operations wait cooperatively."""

    # _io: the fd's SockIO, which the C methods below read through this slot
    # __dict__: evloop's sockets always took attributes (the stdlib's do not)
    __slots__ = ("_io", "__dict__")

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1,
                 fileno: Optional[int] = None) -> None:
        _original_socket.__init__(self, family, type, proto, fileno)
        # the stdlib applied the default timeout; keep it as ours, the fd non-blocking
        timeout = _original_socket.gettimeout(self)
        _original_socket.setblocking(self, False)
        self._io = _SockIO(_original_socket.fileno(self), timeout)

    # recv, recv_into, send, sendall: the fast path, put in this class by
    # core._sock_install below as C methods (`sock.recv` holds the socket, and so its fd,
    # for as long as it lives); subclasses may override them (evloop.ssl.SSLSocket does).
    # __del__ too: the stdlib's finalizer (which closes the fd of a socket never closed),
    # after what close() does first: the SockIO refuses the fd, every waiter on it gets
    # EBADF.

    # -- timeouts ---------------------------------------------------------------------------

    def gettimeout(self) -> Optional[float]:
        return self._io.timeout

    def settimeout(self, value: Optional[float], /) -> None:
        timeout = _stdlib_socket.parse_timeout(value)
        if self._io.fd < 0:  # as the stdlib: the value is checked, then the fd
            raise error(EBADF, "Bad file descriptor")
        self._io.timeout = timeout

    def setblocking(self, flag: bool, /) -> None:
        blocking = _stdlib_socket.parse_blocking(flag)
        if self._io.fd < 0:
            raise error(EBADF, "Bad file descriptor")
        self._io.timeout = None if blocking else 0.0

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

    def recvfrom(self, *args: Any, **kwargs: Any) -> Tuple[bytes, Any]:
        while True:
            try:
                return _original_socket.recvfrom(self, *args, **kwargs)
            except BlockingIOError:
                self._wait_read()

    def recvfrom_into(self, *args: Any, **kwargs: Any) -> Tuple[int, Any]:
        while True:
            try:
                return _original_socket.recvfrom_into(self, *args, **kwargs)
            except BlockingIOError:
                self._wait_read()

    def recvmsg(self, *args: Any, **kwargs: Any) -> Any:
        while True:
            try:
                return _original_socket.recvmsg(self, *args, **kwargs)
            except BlockingIOError:
                self._wait_read()

    def recvmsg_into(self, *args: Any, **kwargs: Any) -> Any:
        while True:
            try:
                return _original_socket.recvmsg_into(self, *args, **kwargs)
            except BlockingIOError:
                self._wait_read()

    def sendto(self, *args: Any, **kwargs: Any) -> int:
        while True:
            try:
                return _original_socket.sendto(self, *args, **kwargs)
            except BlockingIOError:
                self._wait_write()

    def sendmsg(self, *args: Any, **kwargs: Any) -> int:
        while True:
            try:
                return _original_socket.sendmsg(self, *args, **kwargs)
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

    def connect(self, address: Any, /) -> None:
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

    def connect_ex(self, address: Any, /) -> int:
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
        """Send a file with os.sendfile, waiting cooperatively when the socket is full (or
        with send() when the file is not one os.sendfile takes), as the stdlib does."""
        try:
            return self._sendfile_with_os(file, offset, count)
        except _GiveUpOnSendfile:
            return _stdlib_socket.sendfile_use_send(self, file, offset, count)

    def _sendfile_with_os(self, file: Any, offset: int, count: Optional[int]) -> int:
        # the stdlib's os.sendfile path, step for step (so that bad arguments and states
        # fail as there), but waiting through the hub instead of in a selector
        _stdlib_socket.check_sendfile_params(self, file, offset, count)
        sockno = self.fileno()
        try:
            fileno = file.fileno()
        except (AttributeError, __import__("io").UnsupportedOperation) as exc:
            raise _GiveUpOnSendfile(exc) from None  # not a regular file
        try:
            fsize = _os.fstat(fileno).st_size
        except OSError as exc:
            raise _GiveUpOnSendfile(exc) from None
        if not fsize:
            return 0
        blocksize = min(count or fsize, 2 ** 30)
        if self._io.timeout == 0.0:
            raise ValueError("non-blocking sockets are not supported")
        if sockno < 0:  # where the stdlib's selector refuses the socket's fd
            raise ValueError(f"Invalid file descriptor: {sockno}")
        total_sent = 0
        try:
            while True:
                if count:
                    # (CPython before 3.11.8/3.12.2 raised OverflowError here for a count
                    # of 2**63 or more: gh-114077)
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                try:
                    sent = _os.sendfile(sockno, fileno, offset, blocksize)
                except BlockingIOError:
                    self._io.wait_write()  # socket.timeout after the socket's timeout
                    continue
                except OSError as exc:
                    if total_sent == 0:
                        raise _GiveUpOnSendfile(exc) from None  # e.g. not mmap-able
                    raise
                if sent == 0:
                    break  # EOF
                offset += sent
                total_sent += sent
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset)

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


core._sock_install(socket)
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


def socketpair(family: Optional[int] = None, type: int = __socket__.SOCK_STREAM,
               proto: int = 0) -> Tuple[socket, socket]:
    if family is None:
        family = getattr(__socket__, "AF_UNIX", AF_INET)
    # _socket's, not socket.socketpair: after monkey-patching that one is this function
    a, b = _socketpair(family, type, proto)
    return socket(family, type, proto, a.detach()), socket(family, type, proto, b.detach())


def fromfd(fd: int, family: int, type: int, proto: int = 0) -> socket:
    nfd = _dup(fd)  # socket.dup: takes fd as the stdlib's fromfd does
    try:
        return socket(family, type, proto, nfd)
    except BaseException:
        _os.close(nfd)  # (the stdlib's leaks it)
        raise


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
