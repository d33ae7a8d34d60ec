"""evloop.backdoor: an interactive Python console served over TCP (or a Unix socket), one
per connection, inside a running program (gevent's ``gevent.backdoor``).

Why it exists: a live process can be inspected and poked at from a telnet/nc session
(``BackdoorServer(('127.0.0.1', 5001), locals={...}).serve_forever()``). Each connection
gets its own ``code.InteractiveConsole`` in its own greenlet, with its own copy of
``locals``; what that greenlet prints (``sys.stdout``/``sys.stderr``) and reads
(``sys.stdin``) goes over its connection. ``quit()``, ``exit()``, ``sys.exit()``, the end
of input (the client closing, or a line that is just Ctrl-D) end the console and close
the connection.

The redirection is per greenlet: while a console runs, ``sys.stdin``/``stdout``/``stderr``
are proxies that send each call to the current greenlet's connection, or to the stream
that was there before for every other greenlet and thread (gevent switches the ``sys``
attributes on every switch into the console greenlet; evloop's hub switches in C, so the
proxies decide per call instead). The proxies are removed when the last console ends
(unless something replaced them meanwhile, which is then left alone).

What it must not do: authenticate (anyone who can connect can run any code: bind to
127.0.0.1 or a Unix socket), redirect other greenlets' or threads' output, or leave the
proxies behind after the last console ends.
"""
import builtins
import socket as _stdlib_socket
import sys
from code import InteractiveConsole
from typing import Any, Dict, Optional, Tuple
from weakref import WeakKeyDictionary

from greenlet import getcurrent

from evloop.pool import Group
from evloop.server import StreamServer

__all__ = ["BackdoorServer"]

# code.InteractiveConsole reads the prompts from sys; a program not started interactively
# has none
if not hasattr(sys, "ps1"):
    sys.ps1 = ">>> "
if not hasattr(sys, "ps2"):
    sys.ps2 = "... "

_STREAMS = ("stdin", "stdout", "stderr")
#: greenlet -> (stdin, stdout) of its console's connection
_consoles: "WeakKeyDictionary[Any, Tuple[Any, Any]]" = WeakKeyDictionary()
#: the sys streams the proxies replaced, while they are installed
_replaced: Dict[str, Any] = {}


class _StreamProxy:
    """Stands in for ``sys.<name>``: the current greenlet's console stream if it has one,
    else the stream the proxy replaced."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def _target(self) -> Any:
        console = _consoles.get(getcurrent())
        if console is not None:
            return console[0] if self._name == "stdin" else console[1]
        return _replaced.get(self._name, getattr(sys, f"__{self._name}__"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target(), name, value)

    def __iter__(self) -> Any:
        return iter(self._target())

    def __repr__(self) -> str:
        return f"<evloop.backdoor stream proxy for {self._target()!r}>"


def _install_proxies() -> None:
    if _replaced:
        return
    for name in _STREAMS:
        _replaced[name] = getattr(sys, name)
        setattr(sys, name, _StreamProxy(name))


def _remove_proxies() -> None:
    if _consoles or not _replaced:
        return
    for name in _STREAMS:
        current = getattr(sys, name)
        if isinstance(current, _StreamProxy):
            setattr(sys, name, _replaced[name])
    _replaced.clear()


class _ConnectionStream:
    """The console's side of the connection: text lines in (``readline``), text out
    straight to the socket (no buffer to flush)."""

    encoding = "utf-8"
    errors = "replace"
    softspace = 0

    def __init__(self, sock: Any, reader: Any) -> None:
        self.sock = sock
        self.reader = reader

    def fileno(self) -> int:
        return self.sock.fileno()

    def readline(self, *args: Any) -> str:
        try:
            line = self.reader.readline(*args)
        except (UnicodeError, OSError, ValueError):
            return ""
        if line.rstrip("\r\n") == "\x04":  # Ctrl-D typed on a line of its own: end
            return ""
        return line.replace("\r\n", "\n")

    def write(self, data: Any) -> int:
        if not isinstance(data, bytes):
            data = str(data).encode(self.encoding, self.errors)
        self.sock.sendall(data)
        return len(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        # site's quit()/exit() close sys.stdin before raising SystemExit: the connection
        # is closed by the server when the console ends
        pass

    @property
    def closed(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reader, name)


class BackdoorServer(StreamServer):
    """``BackdoorServer(listener, locals=None, banner=None, **server_args)``: a
    ``StreamServer`` whose every connection gets an interactive console.

    ``locals``: names every console starts with (each connection gets its own copy);
    ``banner``: text written when a connection opens (by default Python's own);
    ``server_args``: passed to ``StreamServer`` (``backlog``, ``ssl_context``, ...).
    Consoles still running when the server stops are killed.

    .. warning:: no authentication: bind to 127.0.0.1 or a Unix socket.
    """

    def __init__(self, listener: Any, locals: Optional[Dict[str, Any]] = None,
                 banner: Optional[str] = None, **server_args: Any) -> None:
        StreamServer.__init__(self, listener, spawn=Group(), **server_args)
        _locals: Dict[str, Any] = {"__doc__": None, "__name__": "__console__"}
        if locals:
            _locals.update(locals)
        self.locals = _locals
        self.banner = banner
        self.stderr = sys.stderr

    def _create_interactive_locals(self) -> Dict[str, Any]:
        _locals = self.locals.copy()
        _locals["builtins"] = builtins
        _locals["__builtins__"] = builtins
        return _locals

    def handle(self, conn: Any, _address: Any) -> None:  # type: ignore[override]
        """Run one console on ``conn`` until it ends; the server closes ``conn``."""
        try:
            conn.setsockopt(_stdlib_socket.IPPROTO_TCP, _stdlib_socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (a Unix socket)
        reader = conn.makefile(mode="r", encoding="utf-8", errors="replace", newline="")
        stream = _ConnectionStream(conn, reader)
        me = getcurrent()
        _consoles[me] = (stream, stream)
        _install_proxies()
        try:
            console = InteractiveConsole(self._create_interactive_locals())
            console.interact(banner=self.banner, exitmsg="")
        except SystemExit:
            pass
        finally:
            _consoles.pop(me, None)
            _remove_proxies()
            reader.close()
            conn.close()


if __name__ == "__main__":
    if not sys.argv[1:]:
        print(f"USAGE: {sys.argv[0]} PORT [banner]")
    else:
        BackdoorServer(("127.0.0.1", int(sys.argv[1])),
                       banner=(sys.argv[2] if len(sys.argv) > 2 else None),
                       locals={"hello": "world"}).serve_forever()
