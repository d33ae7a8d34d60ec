"""evloop.resolver: name resolution that never blocks the loop.

Why it exists: ``getaddrinfo`` and friends are blocking C calls that can take seconds
(a slow DNS server); made from a greenlet they would freeze every greenlet of the thread.
A resolver answers them for the greenlet that asks while the hub keeps running the
others:

* ``ThreadResolver`` (the default, ``EVLOOP_RESOLVER=thread``) runs the stdlib ``_socket``
  functions in the hub's thread pool, so answers and errors (``socket.gaierror``,
  ``socket.herror``, ...) are exactly the system's;
* ``AresResolver`` (``EVLOOP_RESOLVER=ares``) uses c-ares through the optional ``pycares``
  package (``pip install evloop[ares]``), its sockets watched by the hub's loop; it reads
  /etc/hosts and DNS itself (not nsswitch), so some answers differ from the system's
  (e.g. ``localhost`` also resolves to ``::1``, ``gethostbyaddr`` lists every /etc/hosts
  alias, ``gethostbyname_ex`` reports no aliases); errors are mapped to the same
  exception types and messages as glibc's;
* ``BlockingResolver`` (``EVLOOP_RESOLVER=block``) calls the ``_socket`` functions
  directly, blocking the loop (for debugging, or where threads are unwanted).

Every resolver answers literal addresses (and ``host=None``) at once, without a thread or
a query. The module functions (``getaddrinfo``, ``gethostbyname``, ...) use the current
thread's hub's resolver (``get_hub().resolver``) and return what the ``socket`` module's
functions of the same name return (``getaddrinfo`` converts families and socket types to
``socket.AddressFamily``/``socket.SocketKind``), so ``evloop.socket`` can use them as they
are.

What it must not do: block the hub (except ``BlockingResolver``, by request), change the
meaning of the system's answers or errors (thread resolver), or let a query outlive
``close()`` with a watcher left on the loop.
"""
import _socket
import os
from _thread import get_ident as _get_ident
import socket as _stdlib_socket
from typing import Any, Callable, List, Optional, Tuple, Type

from evloop.exceptions import InvalidThreadUseError
from evloop.hub import Waiter, get_hub

__all__ = ["ThreadResolver", "BlockingResolver", "AresResolver", "Resolver",
           "resolver_class", "getaddrinfo", "gethostbyname", "gethostbyname_ex",
           "gethostbyaddr", "getnameinfo"]

_getaddrinfo = _socket.getaddrinfo
_gethostbyname = _socket.gethostbyname
_gethostbyname_ex = _socket.gethostbyname_ex
_gethostbyaddr = _socket.gethostbyaddr
_getnameinfo = _socket.getnameinfo
_inet_pton = _socket.inet_pton

AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
AF_UNSPEC = _socket.AF_UNSPEC
AI_NUMERICHOST = _socket.AI_NUMERICHOST
AI_CANONNAME = _socket.AI_CANONNAME
NI_NUMERICHOST = _socket.NI_NUMERICHOST
NI_NUMERICSERV = _socket.NI_NUMERICSERV
NI_NOFQDN = _socket.NI_NOFQDN
NI_NAMEREQD = _socket.NI_NAMEREQD
NI_DGRAM = _socket.NI_DGRAM

AddrInfo = Tuple[int, int, int, str, tuple]


def _numeric_port(port: Any) -> bool:
    if port is None or isinstance(port, int):
        return True
    if isinstance(port, (str, bytes)):
        return port.isdigit()
    return False


def _numeric_getaddrinfo(host: Any, port: Any, family: int, type: int, proto: int,
                         flags: int) -> Optional[List[AddrInfo]]:
    """The answer for a literal address or ``host=None``, without any lookup (glibc
    answers AI_NUMERICHOST queries from the string alone); None when a lookup is needed.
    Errors other than gaierror (bad argument types) are raised as the stdlib raises them."""
    if not isinstance(flags, int) or flags & AI_CANONNAME or not _numeric_port(port):
        return None  # (a bad flags: the stdlib's getaddrinfo says what is wrong)
    try:
        return _getaddrinfo(host, port, family, type, proto, flags | AI_NUMERICHOST)
    except _socket.gaierror:
        return None


def _is_ip_literal(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    for family in (AF_INET, AF_INET6):
        try:
            _inet_pton(family, host)
            return True
        except (OSError, ValueError):
            pass
    return False


class _BaseResolver:
    """What every resolver offers; subclasses answer the queries that need a lookup."""

    def __init__(self, hub: Any = None) -> None:
        self.hub = hub if hub is not None else get_hub()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x} hub={self.hub!r}>"

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0,
                    proto: int = 0, flags: int = 0) -> List[AddrInfo]:
        """``_socket.getaddrinfo``: a list of ``(family, type, proto, canonname,
        sockaddr)`` with plain ints."""
        answer = _numeric_getaddrinfo(host, port, family, type, proto, flags)
        if answer is not None:
            return answer
        return self._getaddrinfo(host, port, family, type, proto, flags)

    def gethostbyname(self, hostname: str) -> str:
        """The IPv4 address of ``hostname`` as a string."""
        if isinstance(hostname, str):
            try:
                _inet_pton(AF_INET, hostname)
                return hostname
            except (OSError, ValueError):  # (not an address: the lookup says what is wrong)
                pass
        return self._gethostbyname(hostname)

    def gethostbyname_ex(self, hostname: str) -> Tuple[str, List[str], List[str]]:
        """``(name, aliases, ipv4_addresses)`` for ``hostname``."""
        return self._gethostbyname_ex(hostname)

    def gethostbyaddr(self, ip_address: str) -> Tuple[str, List[str], List[str]]:
        """``(name, aliases, addresses)`` for an address (or a name, resolved first)."""
        return self._gethostbyaddr(ip_address)

    def getnameinfo(self, sockaddr: tuple, flags: int) -> Tuple[str, str]:
        """``(host, port)`` for a numeric ``sockaddr``."""
        if isinstance(flags, int) and flags & NI_NUMERICHOST and flags & NI_NUMERICSERV:
            return _getnameinfo(sockaddr, flags)
        return self._getnameinfo(sockaddr, flags)

    def close(self) -> None:
        """Release what the resolver holds; later calls may fail."""

    # -- lookups (subclasses) ---------------------------------------------------------

    def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    def _getaddrinfo(self, host: Any, port: Any, family: int, type: int, proto: int,
                     flags: int) -> List[AddrInfo]:
        return self._run(_getaddrinfo, host, port, family, type, proto, flags)

    def _gethostbyname(self, hostname: str) -> str:
        return self._run(_gethostbyname, hostname)

    def _gethostbyname_ex(self, hostname: str) -> Tuple[str, List[str], List[str]]:
        return self._run(_gethostbyname_ex, hostname)

    def _gethostbyaddr(self, ip_address: str) -> Tuple[str, List[str], List[str]]:
        return self._run(_gethostbyaddr, ip_address)

    def _getnameinfo(self, sockaddr: tuple, flags: int) -> Tuple[str, str]:
        return self._run(_getnameinfo, sockaddr, flags)


class ThreadResolver(_BaseResolver):
    """The system's resolver (``_socket``) run in a thread pool — by default the hub's
    (``hub.threadpool``). The calling greenlet waits; the others run."""

    def __init__(self, hub: Any = None, pool: Any = None) -> None:
        super().__init__(hub)
        self._pool = pool

    @property
    def pool(self) -> Any:
        return self._pool if self._pool is not None else self.hub.threadpool

    def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        return self.pool.apply(func, args)


class BlockingResolver(_BaseResolver):
    """The system's resolver called directly: blocks the whole thread while it works."""

    def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        return func(*args)


# -- c-ares -------------------------------------------------------------------------------

def _import_pycares() -> Any:
    try:
        import pycares  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ImportError(
            "evloop's c-ares resolver (EVLOOP_RESOLVER=ares) needs the optional package "
            "'pycares', which is not installed: pip install 'evloop[ares]' (or pip install "
            "pycares), or choose EVLOOP_RESOLVER=thread") from exc
    return pycares


# glibc's gai_strerror / hstrerror texts, so that messages match the thread resolver's
_EAI_MESSAGES = {
    _socket.EAI_NONAME: "Name or service not known",
    _socket.EAI_AGAIN: "Temporary failure in name resolution",
    _socket.EAI_FAIL: "Non-recoverable failure in name resolution",
    _socket.EAI_FAMILY: "Address family for hostname not supported",
    _socket.EAI_MEMORY: "Memory allocation failure",
    _socket.EAI_SERVICE: "Servname not supported for ai_socktype",
}
_EAI_NODATA = getattr(_socket, "EAI_NODATA", _socket.EAI_NONAME)
_EAI_MESSAGES.setdefault(_EAI_NODATA, "No address associated with hostname")
_EAI_CANCELED = getattr(_socket, "EAI_CANCELED", _socket.EAI_FAIL)
_EAI_MESSAGES.setdefault(_EAI_CANCELED, "Request canceled")
_H_MESSAGES = {1: "Unknown host", 2: "Host name lookup failure", 3: "Unknown server error",
               4: "No address associated with name"}


class AresResolver(_BaseResolver):
    """c-ares (``pycares``) driven by the hub's loop: its sockets are io watchers and its
    timeouts a timer, so a query costs no thread. ``channel_options`` go to
    ``pycares.Channel`` (``timeout``, ``tries``, ``servers``, ``lookups="f"`` for
    /etc/hosts only, ...). Use it from the hub's thread only."""

    def __init__(self, hub: Any = None, **channel_options: Any) -> None:
        self._pycares = pycares = _import_pycares()
        super().__init__(hub)
        self._errno = pycares.errno
        self._options = channel_options
        self._watchers: dict = {}
        self._pending = 0
        self._closed = False
        self._thread_ident = self.hub.thread_ident
        self._pid = os.getpid()
        loop = self.hub.loop
        self._timer = loop.timer(0.5, 0.5)  # c-ares' own timeouts, while queries run
        self._channel = self._new_channel()
        self._map_errors()

    def _new_channel(self) -> Any:
        return self._pycares.Channel(sock_state_cb=self._sock_state, **self._options)

    def _map_errors(self) -> None:
        e = self._errno
        eai = {}
        for name in ("ARES_ENOTFOUND", "ARES_ENONAME", "ARES_EBADNAME", "ARES_EFORMERR",
                     "ARES_EBADQUERY", "ARES_EBADSTR"):
            eai[getattr(e, name, None)] = _socket.EAI_NONAME
        for name in ("ARES_ETIMEOUT", "ARES_ECONNREFUSED", "ARES_ESERVFAIL", "ARES_EREFUSED",
                     "ARES_EOF", "ARES_EBADRESP"):
            eai[getattr(e, name, None)] = _socket.EAI_AGAIN
        eai[getattr(e, "ARES_ENODATA", None)] = _EAI_NODATA
        eai[getattr(e, "ARES_EBADFAMILY", None)] = _socket.EAI_FAMILY
        eai[getattr(e, "ARES_ENOMEM", None)] = _socket.EAI_MEMORY
        eai[getattr(e, "ARES_ESERVICE", None)] = _socket.EAI_SERVICE
        eai[getattr(e, "ARES_ECANCELLED", None)] = _EAI_CANCELED
        eai[getattr(e, "ARES_EDESTRUCTION", None)] = _EAI_CANCELED
        eai.pop(None, None)
        self._eai = eai
        herr = {}
        for name in ("ARES_ENOTFOUND", "ARES_ENONAME", "ARES_EBADNAME"):
            herr[getattr(e, name, None)] = 1
        herr[getattr(e, "ARES_ENODATA", None)] = 4
        for name in ("ARES_ETIMEOUT", "ARES_ECONNREFUSED", "ARES_ESERVFAIL", "ARES_EREFUSED"):
            herr[getattr(e, name, None)] = 2
        herr.pop(None, None)
        self._herr = herr

    def _gaierror(self, code: int) -> OSError:
        eai = self._eai.get(code, _socket.EAI_FAIL)
        return _socket.gaierror(eai, _EAI_MESSAGES.get(eai, "Unknown error"))

    def _herror(self, code: int) -> OSError:
        h = self._herr.get(code, 3)
        return _socket.herror(h, _H_MESSAGES[h])

    # -- the loop side ---------------------------------------------------------------

    def _sock_state(self, fd: int, readable: bool, writable: bool) -> None:
        # c-ares opens/closes a socket or changes interest; only our thread drives it
        # (pycares may destroy a closed channel from a thread of its own)
        if self._closed or _get_ident() != self._thread_ident:
            return
        loop = self.hub.loop
        watcher = self._watchers.get(fd)
        events = (1 if readable else 0) | (2 if writable else 0)  # READ, WRITE
        if not events:
            if watcher is not None:
                del self._watchers[fd]
                watcher.close()
            return
        if watcher is None:
            watcher = loop.io(fd, events, ref=False)
            self._watchers[fd] = watcher
            watcher.start(self._on_io, fd, pass_events=True)
        else:
            watcher.events = events

    def _on_io(self, events: int, fd: int) -> None:
        bad = self._pycares.ARES_SOCKET_BAD
        self._channel.process_fd(fd if events & 1 else bad, fd if events & 2 else bad)

    def _on_timer(self) -> None:
        bad = self._pycares.ARES_SOCKET_BAD
        self._channel.process_fd(bad, bad)

    def _answer(self, waiter: Waiter, result: Any, error: Any) -> None:
        # in the hub
        self._pending -= 1
        if self._pending <= 0:
            self._pending = 0
            self._timer.stop()
        waiter.switch((result, error))

    def _query(self, start: Callable[[Callable[[Any, Any], None]], None]) -> Any:
        """Start a query with ``start(callback)`` and wait for its answer; returns
        ``(result, error_code)``."""
        hub = self.hub
        if get_hub() is not hub:
            raise InvalidThreadUseError(f"{self!r} serves the greenlets of its hub's thread "
                                        f"only")
        if self._closed:
            raise _socket.gaierror(_EAI_CANCELED, "resolver is closed")
        if self._pid != os.getpid():
            self._after_fork()
        loop = hub.loop
        waiter = Waiter(hub)

        def callback(result: Any, error: Any) -> None:
            # from c-ares, inside one of our channel calls (or, after close(), a pycares
            # thread): resume the greenlet from the hub, never from inside c-ares
            try:
                loop.run_callback_threadsafe(self._answer, waiter, result, error)
            except Exception:  # noqa: BLE001 - the loop is gone
                pass

        self._pending += 1
        if not self._timer.active:
            self._timer.start(self._on_timer)
        try:
            start(callback)
        except BaseException:
            self._pending -= 1
            if self._pending <= 0:
                self._pending = 0
                self._timer.stop()
            raise
        return waiter.get()

    def _after_fork(self) -> None:
        # the channel's sockets are shared with the parent: start over
        for watcher in self._watchers.values():
            watcher.close()
        self._watchers.clear()
        self._pid = os.getpid()
        self._pending = 0
        self._timer.stop()
        self._channel = self._new_channel()

    def close(self) -> None:
        """Cancel running queries (they raise gaierror) and release the channel."""
        if self._closed:
            return
        channel = self._channel
        if self._pid == os.getpid():
            try:
                channel.cancel()  # the callbacks run now, in this thread
            except Exception:  # noqa: BLE001
                pass
        self._closed = True
        for watcher in self._watchers.values():
            watcher.close()
        self._watchers.clear()
        self._timer.close()
        try:
            channel.close()
        except Exception:  # noqa: BLE001
            pass

    # -- queries -----------------------------------------------------------------------

    @staticmethod
    def _host_name(host: Any) -> str:
        if isinstance(host, bytes):
            return host.decode("ascii")
        if isinstance(host, str):
            return host.encode("idna").decode("ascii")  # as the socket module does
        raise TypeError("getaddrinfo() argument 1 must be string or None")

    def _addresses(self, host: Any, family: int) -> Tuple[str, List[Tuple[int, str]]]:
        """(canonical name, [(family, address), ...]) for a host name, in c-ares' order."""
        name = self._host_name(host)
        result, error = self._query(lambda cb: self._channel.getaddrinfo(
            name, None, family=family, callback=cb))
        if error is not None:
            raise self._gaierror(error)
        seen = set()
        addresses = []
        for node in result.nodes:
            ip = node.addr[0]
            if isinstance(ip, bytes):
                ip = ip.decode("ascii")
            key = (int(node.family), ip)
            if key not in seen:
                seen.add(key)
                addresses.append(key)
        canonical = result.cnames[-1].name if getattr(result, "cnames", None) else name
        if not addresses:
            raise _socket.gaierror(_EAI_NODATA, _EAI_MESSAGES[_EAI_NODATA])
        return canonical, addresses

    def _getaddrinfo(self, host: Any, port: Any, family: int, type: int, proto: int,
                     flags: int) -> List[AddrInfo]:
        if host is None or family not in (AF_UNSPEC, AF_INET, AF_INET6):
            return _getaddrinfo(host, port, family, type, proto, flags)
        canonical, addresses = self._addresses(host, family)
        answer: List[AddrInfo] = []
        error: Optional[BaseException] = None
        numeric_flags = (flags | AI_NUMERICHOST) & ~AI_CANONNAME
        for af, ip in addresses:
            try:
                # ports, services, types and protocols exactly as the system does them
                answer.extend(_getaddrinfo(ip, port, af, type, proto, numeric_flags))
            except _socket.gaierror as exc:
                error = exc
        if not answer:
            raise error if error is not None else self._gaierror(0)
        if flags & AI_CANONNAME:
            first = answer[0]
            answer[0] = (first[0], first[1], first[2], canonical, first[4])
        return answer

    def _gethostbyname(self, hostname: str) -> str:
        return self._gethostbyname_ex(hostname)[2][0]

    def _gethostbyname_ex(self, hostname: str) -> Tuple[str, List[str], List[str]]:
        if _is_ip_literal(hostname):
            return _gethostbyname_ex(hostname)  # no lookup for a literal
        canonical, addresses = self._addresses(hostname, AF_INET)
        return canonical, [], [ip for _af, ip in addresses]

    def _gethostbyaddr(self, ip_address: str) -> Tuple[str, List[str], List[str]]:
        if not _is_ip_literal(ip_address):
            # the stdlib accepts a name: resolve it first, as gethostbyaddr(3) callers do
            # (an IPv4 address first: c-ares lists ::1 for localhost, /etc/hosts may not)
            _canonical, addresses = self._addresses(ip_address, AF_UNSPEC)
            ipv4 = [ip for af, ip in addresses if af == AF_INET]
            ip_address = ipv4[0] if ipv4 else addresses[0][1]
        result, error = self._query(lambda cb: self._channel.gethostbyaddr(
            ip_address, callback=cb))
        if error is not None:
            raise self._herror(error)
        return result.name, list(result.aliases), list(result.addresses)

    def _getnameinfo(self, sockaddr: tuple, flags: int) -> Tuple[str, str]:
        # the system checks the sockaddr (same errors) and names the service (local files)
        numeric_host, service = _getnameinfo(sockaddr, flags | NI_NUMERICHOST)
        if flags & NI_NUMERICHOST:
            return numeric_host, service
        pycares = self._pycares
        ares_flags = pycares.ARES_NI_LOOKUPHOST
        if flags & NI_NOFQDN:
            ares_flags |= pycares.ARES_NI_NOFQDN
        if flags & NI_NAMEREQD:
            ares_flags |= pycares.ARES_NI_NAMEREQD
        ip = numeric_host.split("%", 1)[0]
        if ":" in ip:
            address: tuple = (ip, 0, sockaddr[2] if len(sockaddr) > 2 else 0,
                              sockaddr[3] if len(sockaddr) > 3 else 0)
        else:
            address = (ip, 0)
        result, error = self._query(lambda cb: self._channel.getnameinfo(
            address, ares_flags, callback=cb))
        if error is not None:
            raise self._gaierror(error)
        return result.node, service


#: gevent's name for the default resolver
Resolver = ThreadResolver

_RESOLVERS = {"thread": ThreadResolver, "ares": AresResolver, "block": BlockingResolver}


def resolver_class(name: str) -> Type[_BaseResolver]:
    """The resolver class for an ``EVLOOP_RESOLVER`` value: thread, ares or block."""
    try:
        return _RESOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown resolver {name!r}; choose from "
                         f"{', '.join(_RESOLVERS)}") from None


# -- module functions: drop-in replacements for the socket module's --------------------------

def _intenum(value: int, enum: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        return value


def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                flags: int = 0) -> List[tuple]:
    """``socket.getaddrinfo`` through the current hub's resolver: families and types as
    ``socket.AddressFamily``/``socket.SocketKind``, as the stdlib returns them."""
    AddressFamily = _stdlib_socket.AddressFamily
    SocketKind = _stdlib_socket.SocketKind
    return [(_intenum(af, AddressFamily), _intenum(st, SocketKind), pr, cn, sa)
            for af, st, pr, cn, sa in get_hub().resolver.getaddrinfo(
                host, port, family, type, proto, flags)]


def gethostbyname(hostname: str) -> str:
    """``socket.gethostbyname`` through the current hub's resolver."""
    return get_hub().resolver.gethostbyname(hostname)


def gethostbyname_ex(hostname: str) -> Tuple[str, List[str], List[str]]:
    """``socket.gethostbyname_ex`` through the current hub's resolver."""
    return get_hub().resolver.gethostbyname_ex(hostname)


def gethostbyaddr(ip_address: str) -> Tuple[str, List[str], List[str]]:
    """``socket.gethostbyaddr`` through the current hub's resolver."""
    return get_hub().resolver.gethostbyaddr(ip_address)


def getnameinfo(sockaddr: tuple, flags: int) -> Tuple[str, str]:
    """``socket.getnameinfo`` through the current hub's resolver."""
    return get_hub().resolver.getnameinfo(sockaddr, flags)
