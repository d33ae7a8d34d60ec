"""evloop.pywsgi: a WSGI server with gevent.pywsgi's interface, on evloop's StreamServer.

Why it exists: programs written for ``gevent.pywsgi`` (``WSGIServer(listener, app)``, a
``handler_class`` subclass such as gevent-websocket's, ``log``/``error_log``, ``spawn``, TLS
arguments) run on evloop by changing the import. Requests are parsed by httptools (llhttp,
the parser uvicorn uses), not by reading lines in Python; a response's status line, headers
and first body chunk leave in one ``send`` on a TCP_NODELAY socket, so keep-alive clients
never wait for Nagle's algorithm and the peer's delayed ACK (gevent.pywsgi sends the head
and the body separately and, on a keep-alive connection, answers ~1 k requests/s there).

What it must not do: read a request's body before the application asks for it (that is
when ``100 Continue`` is sent), hand the application more body than the request has, answer
pipelined requests out of order, let a client hold a connection by sending its request head
slowly (``header_timeout``), or buffer an unbounded head (414, 431) or body
(``max_body_size``: 413). A connection whose state is unknown after an error is closed, never
reused.
"""
import errno
import os
import stat
import sys
import time
import traceback
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import unquote

import httptools

from evloop import socket as _socket
from evloop.exceptions import GreenletExit
from evloop.server import StreamServer

__all__ = [
    "WSGIServer",
    "WSGIHandler",
    "Input",
    "FileWrapper",
    "LoggingLogAdapter",
    "Environ",
    "SecureEnviron",
    "WSGISecureEnviron",
]

#: the longest request target (URL) taken, as in gevent.pywsgi; longer ones get 414
MAX_REQUEST_LINE = 8192
#: the most bytes of request head (request line and headers) taken; more gets 431
MAX_HEADER_SIZE = 65536
#: the most header fields in one request; more gets 431 (http.client's limit, which
#: gevent.pywsgi inherits)
MAX_HEADERS = 100
#: bytes asked of the socket per recv
_RECV_SIZE = 65536
#: a response body up to this size is joined to the head and sent in the same send
_JOIN_LIMIT = 65536
#: after a response, at most this much of a body the application did not read is read
#: and dropped to keep the connection; with more left the connection is closed instead
_DISCARD_LIMIT = 1 << 20
#: closing with request bytes unread, read and drop up to this much for up to this long
_LINGER_BYTES = 1 << 20
_LINGER_SECONDS = 1.0

_WEEKDAYNAME = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHNAME = (None, "Jan", "Feb", "Mar", "Apr", "May", "Jun",
              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS_TEXT = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}
_INTERNAL_ERROR_BODY = b"Internal Server Error"


def _error_response(code: int) -> bytes:
    return (f"HTTP/1.1 {code} {_STATUS_TEXT[code]}\r\nConnection: close\r\n"
            f"Content-Length: 0\r\n\r\n").encode("latin-1")


_REQUEST_TOO_LONG_RESPONSE = _error_response(414)
_BAD_REQUEST_RESPONSE = _error_response(400)


def format_date_time(timestamp: float) -> bytes:
    """An HTTP date (RFC 9110 IMF-fixdate) as bytes, as gevent.pywsgi's function."""
    year, month, day, hh, mm, ss, wd, _y, _z = time.gmtime(timestamp)
    return ("%s, %02d %3s %4d %02d:%02d:%02d GMT" % (
        _WEEKDAYNAME[wd], day, _MONTHNAME[month], year, hh, mm, ss)).encode("latin-1")


_date_cache: List[Any] = [0, b""]


def _date_header() -> bytes:
    # one formatting per second, not per response
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[1] = format_date_time(now)
        _date_cache[0] = now
    return _date_cache[1]


def unquote_latin1(string: str) -> str:
    return unquote(string, encoding="latin-1")


class _ClientError(Exception):
    """The client sent something this server refuses; ``code`` is the HTTP status."""

    def __init__(self, code: int, message: str) -> None:
        Exception.__init__(self, message)
        self.code = code


class _InvalidClientInput(IOError):
    """The request body's framing is broken (raised by ``Input`` reads): the connection
    cannot be resynchronised, so it is answered 400 (if nothing was sent yet) and closed."""


class RequestTooLarge(IOError):
    """A chunked request body grew past the server's ``max_body_size`` while the
    application read it; the response is 413 if nothing was sent yet, and the connection
    is closed."""


class _Request:
    """One request whose head the parser has completed."""

    __slots__ = ("method", "url", "version", "headers", "keep_alive", "upgrade",
                 "body", "body_size", "complete", "content_length", "chunked",
                 "expect_continue", "too_large", "discard", "error")

    def __init__(self) -> None:
        self.body = bytearray()
        self.body_size = 0
        self.complete = False
        self.too_large = False
        self.discard = False
        self.expect_continue = False
        self.content_length: Optional[int] = None
        self.chunked = False
        self.error: Optional[BaseException] = None


class _Protocol:
    """httptools' callbacks: requests whose head is complete go to ``queue`` in arrival
    order; body bytes go to the request being received (``current``)."""

    __slots__ = ("parser", "queue", "current", "url", "headers", "head_size", "in_head",
                 "max_body_size", "soft_upgrade")

    def __init__(self, max_body_size: Optional[int]) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.queue: List[_Request] = []
        self.current: Optional[_Request] = None
        self.url = b""
        self.headers: List[Tuple[bytes, bytes]] = []
        self.head_size = 0
        self.in_head = False
        self.max_body_size = max_body_size
        #: a request gevent takes for an Upgrade and llhttp does not (below)
        self.soft_upgrade: Optional[_Request] = None

    def on_message_begin(self) -> None:
        # bytes followed the one-header Upgrade request in the same read: they were parsed
        # as HTTP, so it can only be an ordinary request
        self.soft_upgrade = None
        self.in_head = True
        self.head_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_REQUEST_LINE:
            raise _ClientError(414, f"request target longer than {MAX_REQUEST_LINE} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        headers.append((name, value))
        self.head_size += len(name) + len(value) + 4
        if self.head_size > MAX_HEADER_SIZE:
            raise _ClientError(431, f"request headers larger than {MAX_HEADER_SIZE} bytes")
        if len(headers) > MAX_HEADERS:
            raise _ClientError(431, f"more than {MAX_HEADERS} request headers")

    def on_headers_complete(self) -> None:
        parser = self.parser
        req = _Request()
        req.method = parser.get_method()
        req.url = self.url
        req.version = parser.get_http_version()
        req.keep_alive = parser.should_keep_alive()
        req.upgrade = parser.should_upgrade()
        req.headers = headers = self.headers
        self.url = b""
        self.headers = []
        self.in_head = False
        soft_upgrade = False
        for name, value in headers:
            if len(name) in (6, 7, 10, 14, 17):
                lname = name.lower()
                if lname == b"content-length":
                    # llhttp has checked it is one decimal number
                    req.content_length = int(value)
                elif lname == b"transfer-encoding":
                    req.chunked = value.strip().lower().endswith(b"chunked")
                elif lname == b"expect":
                    req.expect_continue = value.strip().lower() == b"100-continue"
                elif lname == b"connection":
                    soft_upgrade = soft_upgrade or value.strip().lower() == b"upgrade"
                elif lname == b"upgrade":
                    soft_upgrade = soft_upgrade or value.strip().lower() == b"websocket"
        if soft_upgrade and not req.upgrade and req.content_length is None and \
                not req.chunked:
            # gevent takes "Connection: upgrade" or "Upgrade: websocket" alone for an
            # Upgrade; llhttp needs both and goes on parsing HTTP. It becomes one (in
            # WSGIHandler._feed) if nothing follows its head in this read.
            self.soft_upgrade = req
        limit = self.max_body_size
        if limit is not None and req.content_length is not None and req.content_length > limit:
            req.too_large = True
            req.discard = True
        if req.content_length is None and not req.chunked:
            req.complete = True  # no body (llhttp also calls on_message_complete)
        self.queue.append(req)
        self.current = req

    def on_body(self, body: bytes) -> None:
        req = self.current
        req.body_size += len(body)
        if req.discard:
            return
        limit = self.max_body_size
        if limit is not None and req.body_size > limit:
            req.too_large = True
            req.discard = True
            req.body.clear()
            return
        req.body += body

    def on_message_complete(self) -> None:
        self.current.complete = True


class _Reader:
    """``handler.rfile``: the connection's bytes past what the parser consumed. After an
    ``Upgrade`` request it holds what followed the request head, then reads the socket;
    gevent-websocket reads frames from it. Blocking reads as ``io.BufferedReader``'s."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = bytearray()
        self.closed = False

    def _fill(self) -> bool:
        data = self._sock.recv(_RECV_SIZE)
        if not data:
            return False
        self._buf += data
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        buf = self._buf
        if size is None or size < 0:
            while self._fill():
                pass
            data = bytes(buf)
            buf.clear()
            return data
        while len(buf) < size and self._fill():
            pass
        data = bytes(buf[:size])
        del buf[:size]
        return data

    def read1(self, size: int = -1) -> bytes:
        if not self._buf:
            self._fill()
        if size is None or size < 0:
            size = len(self._buf)
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def readline(self, size: Optional[int] = -1) -> bytes:
        buf = self._buf
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if size is not None and 0 <= size <= len(buf):
                end = size
                break
            start = len(buf)
            if not self._fill():
                end = len(buf)
                break
        if size is not None and 0 <= size < end:
            end = size
        data = bytes(buf[:end])
        del buf[:end]
        return data

    def close(self) -> None:
        self.closed = True


_CHUNKED_HEAD = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"


class Input:
    """``wsgi.input``: the request's body, decoded from chunked framing if it was chunked,
    ending (``b''``) where the body ends. The first read of a request that sent
    ``Expect: 100-continue`` sends ``100 Continue`` first.

    ``Input(rfile, content_length, socket=None, chunked_input=False)`` is gevent's
    constructor: the body is read from the file-like ``rfile`` (``content_length`` bytes,
    or a chunked body, whose framing llhttp decodes) and, when ``socket`` is given,
    ``100 Continue`` is sent on it at the first read. ``rfile`` is read no further than
    the body's end. The server builds its ``Input`` from the parsed request instead
    (``_for_request``): the body bytes the parser has received are read from memory."""

    __slots__ = ("_handler", "_request", "position", "send_100_continue_enabled",
                 "rfile", "content_length", "socket", "chunked_input", "_proto",
                 "_chunk_left")

    def __init__(self, rfile: Any, content_length: Optional[int], socket: Any = None,
                 chunked_input: bool = False) -> None:
        self._handler: Optional[WSGIHandler] = None
        self.rfile = rfile
        self.content_length = content_length
        self.socket = socket
        self.chunked_input = chunked_input
        self.position = 0
        self.send_100_continue_enabled = True
        self._proto: Optional[_Protocol] = None
        self._chunk_left = 0
        if chunked_input:
            # llhttp decodes the framing: it is given a request head announcing a chunked
            # body, then the body's bytes as they are read from rfile
            proto = self._proto = _Protocol(None)
            proto.parser.feed_data(_CHUNKED_HEAD)
            req = proto.current
        else:
            if content_length is not None and content_length < 0:
                raise ValueError(f"negative content_length: {content_length}")
            req = _Request()
            req.content_length = content_length
            req.complete = not content_length
        req.expect_continue = socket is not None and not req.complete
        self._request = req

    @classmethod
    def _for_request(cls, handler: "WSGIHandler", request: _Request) -> "Input":
        """The server's Input: its body comes from the handler's parser."""
        self = cls.__new__(cls)
        self._handler = handler
        self._request = request
        self.rfile = handler.rfile
        self.content_length = request.content_length
        self.chunked_input = request.chunked
        self.socket = handler.socket if request.expect_continue else None
        self.position = 0
        self.send_100_continue_enabled = True
        return self

    def _more(self, size: Optional[int] = None, line: bool = False) -> bool:
        """Receive and parse more of the body; False when it is complete. ``size`` (the
        caller wants that many bytes buffered) and ``line`` bound what is asked of rfile."""
        req = self._request
        if req.complete:
            return False
        if self._handler is not None:
            self._handler._receive_body(req)
            return True
        need = size - len(req.body) if size is not None and size >= 0 else None
        if self._proto is not None:
            self._more_chunked(req, need, line)
            return True
        want = req.content_length - req.body_size
        if need is not None and 0 < need < want:
            want = need
        if line:
            data = self.rfile.readline(want)
        else:
            # not read(huge): a buffered reader allocates what it is asked for
            data = self.rfile.read(min(want, _RECV_SIZE))
        if not data:
            self._fail("unexpected end of file while reading request at position "
                       f"{self.position + len(req.body)}")
            return True
        req.body += data
        req.body_size += len(data)
        req.complete = req.body_size >= req.content_length
        return True

    def _fail(self, message: str) -> None:
        req = self._request
        req.error = _InvalidClientInput(message)
        req.complete = True

    def _more_chunked(self, req: _Request, need: Optional[int], line: bool) -> None:
        # the chunk-size and trailer lines are read with readline, the chunk data by its
        # length: nothing past the body is taken from rfile. llhttp checks and decodes
        # what was read (extensions, CRLFs, trailers); the size is read here only to know
        # how much data follows.
        rfile = self.rfile
        last = False
        if self._chunk_left:
            want = self._chunk_left
            if need is not None and 0 < need < want:
                want = need
            if line:
                data = rfile.readline(want)
            else:
                data = rfile.read(min(want, _RECV_SIZE))
            if data:
                self._chunk_left -= len(data)
                if not self._chunk_left:
                    data += rfile.read(2)  # the CRLF after the data
        else:
            data = rfile.readline(MAX_REQUEST_LINE + 1)
            if not data.endswith(b"\n"):
                if len(data) > MAX_REQUEST_LINE:
                    return self._fail(f"chunk size line longer than {MAX_REQUEST_LINE} bytes")
                return self._fail("unexpected end of file while parsing chunked data")
            digits = data.split(b";", 1)[0].rstrip(b"\r\n")
            if not 0 < len(digits) <= 16 or digits.strip(b"0123456789abcdefABCDEF"):
                return self._fail(f"invalid chunk size line {data[:40]!r}")
            self._chunk_left = int(digits, 16)
            if not self._chunk_left:
                last = True
                # the last chunk, then trailer lines up to an empty one
                while True:
                    trailer = rfile.readline(MAX_REQUEST_LINE + 1)
                    data += trailer
                    if trailer in (b"\r\n", b"\n") or not trailer.endswith(b"\n"):
                        break
        if not data:
            return self._fail("unexpected end of file while parsing chunked data")
        try:
            self._proto.parser.feed_data(data)
        except httptools.HttpParserError as ex:
            return self._fail(f"invalid chunked body: {ex}")
        if last and not req.complete:
            # the trailer section broke off, or a line of it is too long (as gevent)
            if len(trailer) > MAX_REQUEST_LINE:
                return self._fail(f"chunk trailer line longer than {MAX_REQUEST_LINE} bytes")
            return self._fail("unexpected end of file while parsing chunked data")

    def _continue(self) -> None:
        # the first read: the client waits for 100 Continue before sending the body (as
        # gevent, sent also when the body came anyway: a client that did not wait ignores
        # an interim response)
        req = self._request
        req.expect_continue = False
        sock = self.socket
        self.socket = None
        if not self.send_100_continue_enabled or sock is None:
            return
        handler = self._handler
        if handler is None:
            sock.sendall(_CONTINUE_RESPONSE)
        elif not handler.headers_sent and (req.content_length is not None or req.chunked):
            sock.sendall(_CONTINUE_RESPONSE)

    def _check(self) -> None:
        req = self._request
        if req.too_large:
            raise RequestTooLarge(f"request body larger than {self._handler.server.max_body_size}"
                                  " bytes")
        if req.error is not None:
            raise _InvalidClientInput(str(req.error))

    def read(self, length: Optional[int] = None) -> bytes:
        req = self._request
        if req.expect_continue:
            self._continue()
        body = req.body
        # a broken or oversized body raises only when the read needs what is missing:
        # the bytes before the fault are the application's
        if length is None or length < 0:
            while self._more():
                pass
            self._check()
            data = bytes(body)
            body.clear()
        else:
            while len(body) < length and self._more(length):
                pass
            if len(body) < length:
                self._check()
            data = bytes(body[:length])
            del body[:length]
        self.position += len(data)
        return data

    def readline(self, size: Optional[int] = None) -> bytes:
        if self._request.expect_continue:
            self._continue()
        body = self._request.body
        start = 0
        while True:
            end = body.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if size is not None and 0 <= size <= len(body):
                end = size
                break
            start = len(body)
            if not self._more(size, True):
                self._check()
                end = len(body)
                break
        if size is not None and 0 <= size < end:
            end = size
        data = bytes(body[:end])
        del body[:end]
        self.position += len(data)
        return data

    def readlines(self, hint: Any = None) -> List[bytes]:
        return list(self)

    def __iter__(self) -> "Input":
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    next = __next__

    def _discard(self) -> bool:
        """Drop what is left of the body; False if the connection cannot be kept (the
        body was never asked for under ``Expect: 100-continue``, is too large, or broken)."""
        req = self._request
        req.body.clear()
        if req.complete:
            return req.error is None and not req.too_large
        if req.expect_continue or req.too_large or req.error is not None:
            return False
        self.send_100_continue_enabled = False
        if self._handler is None:
            # gevent's Input: read to the body's end
            while self._more():
                req.body.clear()
            return req.error is None
        if req.content_length is not None and \
                req.content_length - req.body_size > _DISCARD_LIMIT:
            return False
        req.discard = True
        start = req.body_size
        while not req.complete:
            if req.body_size - start > _DISCARD_LIMIT:
                return False
            self._handler._receive_body(req)
            if req.error is not None or req.too_large:
                return False
        return True


class FileWrapper:
    """``wsgi.file_wrapper``: a file the server sends with ``socket.sendfile`` (the
    kernel's ``sendfile``) when it is a regular file with a fileno; otherwise (or over TLS,
    where the stdlib's sendfile sends in blocks) it is iterated in ``blksize`` blocks."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block

    def _sendfile_span(self) -> Optional[Tuple[int, int]]:
        """(offset, bytes to the end) when os.sendfile can send the file, else None."""
        filelike = self.filelike
        try:
            fd = filelike.fileno()
            st = os.fstat(fd)
        except (AttributeError, OSError, ValueError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        try:
            offset = filelike.tell()
        except (AttributeError, OSError, ValueError):
            offset = 0
        return offset, max(0, st.st_size - offset)


class WSGIHandler:
    """Handles one connection: reads requests, calls the application, writes responses
    (keep-alive and pipelining: requests on one connection are answered in order).

    gevent.pywsgi's attributes and hooks are here for subclasses such as gevent-websocket's
    ``WebSocketHandler``: ``socket``, ``rfile``, ``client_address``, ``server``,
    ``environ``, ``application``, ``status``, ``code``, ``response_headers``,
    ``headers_sent``, ``response_use_chunked``, ``close_connection``, ``provided_date``,
    ``provided_content_length``, ``result``, ``requestline``, ``command``, ``path``,
    ``request_version``, and the methods ``handle``, ``handle_one_request``,
    ``handle_one_response``, ``run_application``, ``process_result``, ``start_response``,
    ``write``, ``finalize_headers``, ``get_environ``, ``log_request``, ``format_request``,
    ``log_error``, ``handle_error``. Parsing is httptools', so ``read_requestline`` and
    ``read_request`` (which read lines in gevent) do not exist.
    """

    protocol_version = "HTTP/1.1"

    status: Any = None
    _orig_status: Optional[str] = None
    response_headers: Any = None
    code: Any = None
    provided_date: Any = None
    provided_content_length: Any = None
    provided_connection: Any = None
    close_connection = False
    time_start = 0.0
    time_finish = 0.0
    headers_sent = False
    response_use_chunked = False
    connection_upgraded = False
    environ: Any = None
    application: Any = None
    requestline: Optional[str] = None
    response_length = 0
    result: Any = None
    wsgi_input: Any = None
    content_length: Any = 0
    request_version: Optional[str] = None
    command: Optional[str] = None
    path: Optional[str] = None
    _request: Optional[_Request] = None
    _headers_message: Any = None
    _linger = False

    ApplicationError = AssertionError
    #: how log_error reports a failure of its own (gevent's hook; tests replace it)
    _print_unexpected_exc = staticmethod(traceback.print_exc)

    #: socket errors that mean the client went away: not logged
    ignored_socket_errors = (errno.EPIPE, errno.ECONNRESET)

    def __init__(self, sock: Any, address: Any, server: "WSGIServer", rfile: Any = None) -> None:
        self.socket = sock
        self.client_address = address
        self.server = server
        self.rfile = _Reader(sock) if rfile is None else rfile
        self._proto = _Protocol(server.max_body_size)
        self._deadline = 0.0

    # -- the connection -------------------------------------------------------------------

    def handle(self) -> None:
        """Answer requests until the connection closes (keep-alive loop)."""
        sock = self.socket
        try:
            if sock.family in (_socket.AF_INET, _socket.AF_INET6):
                # the head and the first body chunk leave in one send; NODELAY keeps any
                # later send (a chunk, the chunked terminator) from waiting for an ACK
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        timeout = self.server.header_timeout
        if timeout is not None:
            sock.settimeout(timeout)
        try:
            while self.socket is not None:
                self.time_start = time.time()
                self.time_finish = 0
                result = self.handle_one_request()
                if result is None:
                    break
                if result is True:
                    continue
                self.status, response_body = result
                self._linger = True
                try:
                    self.socket.sendall(response_body)
                except OSError:
                    pass
                if self.time_finish == 0:
                    self.time_finish = time.time()
                self.log_request()
                break
        finally:
            sock = self.__dict__.pop("socket", None)
            if sock is not None:
                req = self._request
                if self._linger or (req is not None and not req.complete):
                    self._drain(sock)
                try:
                    sock.close()
                except OSError:
                    pass
            self.__dict__.pop("rfile", None)
            self.__dict__.pop("wsgi_input", None)

    @staticmethod
    def _drain(sock: Any) -> None:
        """Before closing with request bytes unread: end our side, then read and drop what
        the client still sends for a moment. Closing with unread data makes the kernel send
        RST, which can destroy the response before the client reads it."""
        try:
            sock.shutdown(_socket.SHUT_WR)
            sock.settimeout(_LINGER_SECONDS)
            left = _LINGER_BYTES
            while left > 0:
                data = sock.recv(_RECV_SIZE)
                if not data:
                    break
                left -= len(data)
        except OSError:
            pass

    def _recv(self) -> bytes:
        return self.socket.recv(_RECV_SIZE)

    def _feed(self, data: bytes) -> None:
        """Parse ``data``; errors are recorded on the request they belong to (a broken
        body) or left for ``_next_request`` (a broken head)."""
        proto = self._proto
        try:
            proto.parser.feed_data(data)
            if proto.soft_upgrade is not None:
                # as an Upgrade: no more HTTP on this connection, the rest is the rfile's
                proto.soft_upgrade.upgrade = True
                proto.soft_upgrade = None
                proto.parser = None
                if self.server.header_timeout is not None:
                    self.socket.settimeout(None)
        except httptools.HttpParserUpgrade as ex:
            # the rest belongs to the new protocol: it is the rfile's, and no more HTTP
            # is parsed on this connection
            self.rfile._buf += data[ex.args[0]:]
            proto.parser = None
            if self.server.header_timeout is not None:
                self.socket.settimeout(None)
        except httptools.HttpParserError as ex:
            cause = ex.__context__
            proto.parser = None
            proto.soft_upgrade = None
            if isinstance(cause, _ClientError):
                error: BaseException = cause
            elif proto.in_head or proto.current is None or proto.current.complete:
                error = _ClientError(400, f"invalid request: {ex}")
            else:
                error = ex
            req = proto.current
            if req is not None and not req.complete and not proto.in_head:
                req.error = error
                req.complete = True
            else:
                proto.queue.append(error)  # answered after the requests before it

    def _receive_body(self, req: _Request) -> None:
        """More of ``req``'s body (called by Input while it is incomplete)."""
        if self._proto.parser is None:
            req.error = req.error or _InvalidClientInput("connection unusable")
            req.complete = True
            return
        try:
            data = self._recv()
        except _socket.timeout:
            data = b""
        if not data:
            req.error = _InvalidClientInput("unexpected end of file while reading request")
            req.complete = True
            return
        self._feed(data)

    def _next_request(self) -> Optional[_Request]:
        """The next request whose head is complete, or None when the client is done.
        Raises _ClientError for a request to refuse."""
        proto = self._proto
        queue = proto.queue
        if not queue:
            timeout = self.server.header_timeout
            deadline = time.monotonic() + timeout if timeout is not None else None
            shortened = False
            while not queue:
                if proto.parser is None:
                    return None
                try:
                    data = self._recv()
                except _socket.timeout:
                    if proto.in_head:
                        raise _ClientError(408, "request head not received in time") from None
                    return None
                except OSError:
                    return None
                if not data:
                    return None
                was_in_head = proto.in_head
                self._feed(data)
                if proto.in_head and proto.parser is not None:
                    if was_in_head:
                        proto.head_size += len(data)
                        if proto.head_size > MAX_HEADER_SIZE:
                            raise _ClientError(431, "request head larger than "
                                               f"{MAX_HEADER_SIZE} bytes")
                    if deadline is not None:
                        # a head split over several reads: the next read may wait only
                        # for the time left (the socket's timeout is the whole allowance)
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise _ClientError(408, "request head not received in time")
                        self.socket.settimeout(left)
                        shortened = True
            if shortened and proto.parser is not None:
                self.socket.settimeout(timeout)
        req = queue.pop(0)
        if isinstance(req, BaseException):
            raise req
        return req

    # -- one request ----------------------------------------------------------------------

    def handle_one_request(self) -> Any:
        """Read one request and answer it: None (close the connection), True (read the
        next request) or (status, bytes to send before closing) for a refused request."""
        if self.rfile.closed:
            return None
        try:
            req = self._next_request()
        except _ClientError as ex:
            self.requestline = None
            self.log_error("Invalid request (from %s): %s", self.client_address, str(ex))
            return (str(ex.code), _error_response(ex.code))
        except OSError:
            return None
        if req is None:
            return None
        self._request = req
        self.response_length = 0
        self._headers_message = None
        self.command = command = req.method.decode("latin-1")
        self.path = path = req.url.decode("latin-1")
        self.request_version = version = "HTTP/" + req.version
        self.requestline = f"{command} {path} {version}"
        self.close_connection = not req.keep_alive
        self.content_length = req.content_length
        if req.too_large:
            self.log_error("Request body too large (from %s): %s bytes, the limit is %s",
                           self.client_address, req.content_length, self.server.max_body_size)
            return ("413", _error_response(413))
        self.environ = self.get_environ()
        self.application = self.server.application
        self.handle_one_response()
        if self.close_connection or self.socket is None:
            return None
        if req.upgrade:
            # the parser stopped at the Upgrade request's head; a response other than 101
            # leaves the connection in an unknown state
            return None
        return True

    @property
    def headers(self) -> Any:
        """The request's headers as an ``http.client.HTTPMessage`` (what gevent's handler
        has), built on first use."""
        if self._headers_message is None:
            from http.client import HTTPMessage  # noqa: PLC0415 - rarely needed
            message = HTTPMessage()
            if self._request is not None:
                for name, value in self._request.headers:
                    message[name.decode("latin-1")] = value.decode("latin-1")
            self._headers_message = message
        return self._headers_message

    @headers.setter
    def headers(self, value: Any) -> None:
        self._headers_message = value

    def get_environ(self) -> dict:
        """The WSGI environment of the current request: the server's base environ plus
        the request's keys, as gevent.pywsgi sets them."""
        req = self._request
        env = self.server.get_environ()
        env["REQUEST_METHOD"] = self.command
        env["SCRIPT_NAME"] = ""
        path = self.path
        if "?" in path:
            path, query = path.split("?", 1)
        else:
            query = ""
        env["PATH_INFO"] = unquote_latin1(path) if "%" in path else path
        env["QUERY_STRING"] = query
        env["SERVER_PROTOCOL"] = self.request_version
        client_address = self.client_address
        if isinstance(client_address, tuple):
            env["REMOTE_ADDR"] = str(client_address[0])
            env["REMOTE_PORT"] = str(client_address[1])
        for name, value in req.headers:
            key = name.decode("latin-1").upper()
            if "_" in key:
                continue  # as gevent: a header with "_" could pose as one with "-"
            key = key.replace("-", "_")
            svalue = value.decode("latin-1").strip()
            if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                if key in env:
                    continue
            else:
                key = "HTTP_" + key
                if key in env:
                    # as gevent: Cookie (and Cookie2) values are joined with "; "
                    env[key] += ("; " if "COOKIE" in key else ",") + svalue
                    continue
            env[key] = svalue
        if req.upgrade:
            # the connection belongs to the new protocol: the raw stream, as gevent
            env["wsgi.input"] = self.rfile
            env["wsgi.input_terminated"] = False
        else:
            self.wsgi_input = env["wsgi.input"] = Input._for_request(self, req)
            env["wsgi.input_terminated"] = True
        return env

    # -- the response ---------------------------------------------------------------------

    def start_response(self, status: str, headers: List[Tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        response_headers = []
        provided_connection = provided_date = provided_content_length = None
        header = value = None
        try:
            for header, value in headers:
                if not isinstance(header, str):
                    raise UnicodeError("The header must be a native string", header, value)
                if not isinstance(value, str):
                    raise UnicodeError("The value must be a native string", header, value)
                if "\r" in header or "\n" in header:
                    raise ValueError("carriage return or newline in header name", header)
                if "\r" in value or "\n" in value:
                    raise ValueError("carriage return or newline in header value", value)
                response_headers.append((header.encode("latin-1"), value.encode("latin-1")))
                lower = header.lower()
                if lower == "content-length":
                    provided_content_length = value
                elif lower == "date":
                    provided_date = value
                elif lower == "connection":
                    provided_connection = value
        except UnicodeEncodeError:
            raise UnicodeError("Non-latin1 header", repr(header), repr(value)) from None
        if not isinstance(status, str):
            raise UnicodeError("The status string must be a native string")
        if "\r" in status or "\n" in status:
            raise ValueError("carriage return or newline in status", status)
        code = int(status.split(" ", 1)[0])
        self.status = status.encode("latin-1")
        self._orig_status = status
        self.response_headers = response_headers
        self.code = code
        self.provided_date = provided_date
        self.provided_content_length = provided_content_length
        self.provided_connection = provided_connection
        if provided_connection is not None and provided_connection.lower() == "close":
            self.close_connection = True
        if code in (304, 204) and provided_content_length not in (None, "0"):
            # bytes, as gevent's (an application may send the message as its body)
            raise self.ApplicationError(
                f"Invalid Content-Length for {code} response: {provided_content_length!r} "
                "(must be absent or zero)".encode("latin-1"))
        return self.write

    def finalize_headers(self) -> None:
        """Add Date, Content-Length or Transfer-Encoding, and Connection as needed."""
        response_headers = self.response_headers
        if self.provided_date is None:
            response_headers.append((b"Date", _date_header()))
        self.connection_upgraded = self.code == 101
        if self.code not in (304, 204) and self.provided_content_length is None:
            result = self.result
            if hasattr(result, "__len__") and not isinstance(result, FileWrapper):
                total = 0
                for chunk in result:
                    total += len(chunk)
                response_headers.append((b"Content-Length", str(total).encode("latin-1")))
            elif self.request_version != "HTTP/1.0" and not self.connection_upgraded:
                self.response_use_chunked = True
                response_headers.append((b"Transfer-Encoding", b"chunked"))
            elif not self.connection_upgraded:
                # HTTP/1.0 without a length: the body ends where the connection does
                self.close_connection = True
        req = self._request
        if req is not None and not req.complete and req.expect_continue:
            # the client waits for 100 Continue that will not come: do not read its body
            self.close_connection = True
        if self.provided_connection is None:
            if self.request_version == "HTTP/1.0":
                response_headers.append(
                    (b"Connection", b"close" if self.close_connection else b"keep-alive"))
            elif self.close_connection and not self.connection_upgraded:
                response_headers.append((b"Connection", b"close"))

    def _head(self) -> bytes:
        parts = [b"HTTP/1.1 ", self.status, b"\r\n"]
        for header, value in self.response_headers:
            parts += (header, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def _sendall(self, data: bytes) -> None:
        try:
            self.socket.sendall(data)
        except OSError as ex:
            self.status = f"socket error: {ex}"
            if isinstance(self.code, int) and self.code > 0:
                self.code = -self.code
            raise
        self.response_length += len(data)

    def _frame(self, data: Any) -> Any:
        if self.response_use_chunked:
            return b"%x\r\n%b\r\n" % (len(data), data)
        return data

    def _body_allowed(self) -> bool:
        return self.command != "HEAD" and self.code not in (304, 204) and \
            not (isinstance(self.code, int) and 100 <= self.code < 200)

    def _write(self, data: Any) -> None:
        if not data:
            return
        if not self._body_allowed():
            return
        self._sendall(self._frame(data))

    def _write_with_headers(self, data: Any) -> None:
        self.headers_sent = True
        self.finalize_headers()
        head = self._head()
        if data and self._body_allowed():
            framed = self._frame(data)
            if len(framed) <= _JOIN_LIMIT:
                self._sendall(head + framed)
                return
            self._sendall(head)
            self._sendall(framed)
            return
        self._sendall(head)

    def write(self, data: Any) -> None:
        """The ``write`` callable start_response returns (PEP 3333)."""
        if self.code in (304, 204) and data:
            raise self.ApplicationError(f"The {self.code} response must have no body")
        if self.headers_sent:
            self._write(data)
        else:
            if not self.status:
                raise self.ApplicationError("The application did not call start_response()")
            self._write_with_headers(data)

    def _send_file(self, wrapper: FileWrapper) -> bool:
        """Send ``wrapper``'s file with socket.sendfile; False if it cannot be."""
        span = wrapper._sendfile_span()
        if span is None or not self.status or self.headers_sent:
            return False
        offset, size = span
        count = size
        if self.provided_content_length is None and self.code not in (304, 204):
            self.response_headers.append((b"Content-Length", str(size).encode("latin-1")))
            self.provided_content_length = str(size)
        else:
            try:
                count = min(size, int(self.provided_content_length))
            except (TypeError, ValueError):
                return False
        self.write(b"")
        if not self._body_allowed() or count == 0:
            return True
        try:
            sent = self.socket.sendfile(wrapper.filelike, offset, count)
        except OSError as ex:
            self.status = f"socket error: {ex}"
            raise
        self.response_length += sent
        if sent < count:
            self.close_connection = True  # the file was shorter than announced
        return True

    def process_result(self) -> None:
        result = self.result
        if isinstance(result, FileWrapper) and self._send_file(result):
            return
        if type(result) is list and len(result) > 1 and not self.headers_sent and \
                self.status and all(type(chunk) is bytes for chunk in result):
            joined = b"".join(result)
            if len(joined) <= _JOIN_LIMIT:
                result = (joined,)
        for data in result:
            if data:
                self.write(data)
        if self.status and not self.headers_sent:
            # an empty result: the headers still go out
            self.write(b"")
        if self.response_use_chunked and self._body_allowed():
            self._sendall(b"0\r\n\r\n")

    def run_application(self) -> None:
        assert self.result is None
        try:
            self.result = self.application(self.environ, self.start_response)
            self.process_result()
        finally:
            close = getattr(self.result, "close", None)
            try:
                if close is not None:
                    close()
            finally:
                close = None
                self.result = None

    def handle_one_response(self) -> None:
        """Call the application and send its response; errors become 500 (or 400, 413
        for a broken or oversized body) when nothing was sent yet."""
        self.time_start = time.time()
        self.status = None
        self.headers_sent = False
        self.result = None
        self.response_use_chunked = False
        self.connection_upgraded = False
        self.response_length = 0
        self.provided_connection = None
        try:
            try:
                self.run_application()
            finally:
                wsgi_input = self.wsgi_input
                if wsgi_input is not None and self.socket is not None and \
                        not self._request.upgrade:
                    try:
                        if not wsgi_input._discard():
                            self.close_connection = True
                    except OSError:
                        self.close_connection = True
        except RequestTooLarge as ex:
            self.log_error("Request body too large (from %s): %s", self.client_address, ex)
            self.close_connection = True
            self._send_error_response_if_possible(413)
        except _InvalidClientInput as ex:
            self.log_error("Invalid request (from %s): %s", self.client_address,
                           str(ex) or type(ex).__name__)
            self.close_connection = True
            self._send_error_response_if_possible(400)
        except OSError as ex:
            self.close_connection = True
            if ex.args and ex.args[0] in self.ignored_socket_errors:
                pass
            elif isinstance(ex, _socket.timeout):
                pass  # a body read timed out: the client stalled
            else:
                self.handle_error(*sys.exc_info())
        except BaseException:  # noqa: BLE001 - the application's errors, answered 500
            self.handle_error(*sys.exc_info())
        finally:
            self.wsgi_input = None
            self.time_finish = time.time()
            self.log_request()

    def _send_error_response_if_possible(self, error_code: int) -> None:
        if self.response_length or self.headers_sent:
            self.close_connection = True
            return
        body = _INTERNAL_ERROR_BODY if error_code == 500 else b""
        headers = [("Content-Type", "text/plain"), ("Connection", "close"),
                   ("Content-Length", str(len(body)))]
        self.result = None
        try:
            self.start_response(f"{error_code} {_STATUS_TEXT[error_code]}", headers)
            self.write(body)
        except OSError:
            self.close_connection = True

    def handle_error(self, t: Any, v: Any, tb: Any) -> None:
        """An unexpected error (not the client's): reported through the hub, answered 500."""
        if not issubclass(t, GreenletExit):
            context = self.environ
            if not isinstance(context, self.server.secure_environ_class):
                context = self.server.secure_environ_class(context or {})
            self.server.hub.handle_error(context, t, v, tb)
        t = v = tb = None
        self.close_connection = True
        self._send_error_response_if_possible(500)

    # -- logs -----------------------------------------------------------------------------

    def log_error(self, msg: str, *args: Any) -> None:
        if not args:
            message = msg
        else:
            try:
                message = msg % args
            except Exception:  # noqa: BLE001
                self._print_unexpected_exc()
                message = f"{msg!r} {args!r}"
        try:
            message = f"{self.socket}: {message}"
        except Exception:  # noqa: BLE001, S110
            pass
        try:
            self.server.error_log.write(message + "\n")
        except Exception:  # noqa: BLE001
            self._print_unexpected_exc()

    def log_request(self) -> None:
        log = self.server.log
        if type(log) is _NoopLog:
            return
        log.write(self.format_request() + "\n")

    def format_request(self) -> str:
        """gevent.pywsgi's access-log line:
        ``ADDR - - [YYYY-MM-DD HH:MM:SS] "REQUEST LINE" STATUS LENGTH SECONDS``."""
        now = datetime.now().replace(microsecond=0)
        length = self.response_length or "-"
        if self.time_finish:
            delta = "%.6f" % (self.time_finish - self.time_start)
        else:
            delta = "-"
        client_address = self.client_address[0] if isinstance(self.client_address, tuple) \
            else self.client_address
        status = self._orig_status or self.status or "000"
        if isinstance(status, bytes):
            status = status.decode("latin-1")
        return '%s - - [%s] "%s" %s %s %s' % (
            client_address or "-", now, self.requestline or "", status.split()[0],
            length, delta)


class _NoopLog:
    """log=None: a file-like object that drops everything."""

    def write(self, *args: Any, **kwargs: Any) -> None:
        return

    def flush(self) -> None:
        pass

    def writelines(self, *args: Any, **kwargs: Any) -> None:
        pass


class LoggingLogAdapter:
    """Lets a ``logging.Logger`` serve as ``log``/``error_log``: ``write`` logs each line at
    ``level`` (INFO by default); other attributes are the logger's."""

    __slots__ = ("_logger", "_level")

    def __init__(self, logger: Any, level: int = 20) -> None:
        self._logger = logger
        self._level = level

    def write(self, msg: str) -> None:
        if msg and msg.endswith("\n"):
            msg = msg[:-1]
        self._logger.log(self._level, msg)

    def flush(self) -> None:
        """A no-op: file-like objects have it."""

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in LoggingLogAdapter.__slots__:
            setattr(self._logger, name, value)
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._logger, name)


class Environ(dict):
    """A dict for WSGI environments (gevent's provisional API): ``copy`` keeps the class,
    pickling makes a plain dict."""

    __slots__ = ()

    def copy(self) -> "Environ":
        return self.__class__(self)

    def iteritems(self) -> Any:
        return self.items()

    def __reduce_ex__(self, proto: Any) -> Any:
        return (dict, (), None, None, iter(self.items()))


class SecureEnviron(Environ):
    """An environ whose repr masks the values (authorization headers, cookies) unless
    their keys are in ``whitelist_keys``; ``secure_repr = False`` shows everything."""

    default_secure_repr = True
    default_whitelist_keys: Any = ()
    default_print_masked_keys = True

    __slots__ = ("secure_repr", "whitelist_keys", "print_masked_keys")

    def __getattr__(self, name: str) -> Any:
        if name in SecureEnviron.__slots__:
            return getattr(type(self), "default_" + name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        if self.secure_repr:
            whitelist = self.whitelist_keys
            print_masked = self.print_masked_keys
            if whitelist:
                safe = {k: self[k] if k in whitelist else "<MASKED>"
                        for k in self if k in whitelist or print_masked}
                safe_repr = repr(safe)
                if not print_masked and len(safe) != len(self):
                    safe_repr = safe_repr[:-1] + ", (hidden keys: %d)}" % (len(self) - len(safe))
                return safe_repr
            return "<pywsgi.SecureEnviron dict (keys: %d) at %s>" % (len(self), id(self))
        return Environ.__repr__(self)

    __str__ = __repr__


class WSGISecureEnviron(SecureEnviron):
    """SecureEnviron that shows REMOTE_ADDR, REMOTE_PORT and HTTP_HOST."""

    default_whitelist_keys = ("REMOTE_ADDR", "REMOTE_PORT", "HTTP_HOST")
    default_print_masked_keys = False


#: the TLS keywords gevent's servers take (the ssl.wrap_socket arguments and ssl_context)
_SSL_ARGS = frozenset(("ssl_context", "keyfile", "certfile", "server_side", "cert_reqs",
                       "ssl_version", "ca_certs", "do_handshake_on_connect",
                       "suppress_ragged_eofs", "ciphers"))


class WSGIServer(StreamServer):
    """``WSGIServer(listener, application, backlog=None, spawn='default', log='default',
    error_log='default', handler_class=None, environ=None, **ssl_args)``: gevent.pywsgi's
    server. ``log`` gets one access-log line per request (default ``sys.stderr``, None: no
    log; a ``logging.Logger`` is wrapped in LoggingLogAdapter at INFO), ``error_log`` the
    errors (and is ``wsgi.errors``; a Logger is logged to at ERROR). ``ssl_args``:
    ``ssl_context``, or ``certfile``/``keyfile``.

    Beyond gevent's (class attributes, also taken as keywords): ``header_timeout`` (seconds a request head may take, counted from
    when the server starts waiting for it: the connection's start, or the previous
    response; also the longest a body read may wait; None: no limit), ``max_body_size``
    (bytes; a larger body gets 413; None: no limit)."""

    handler_class: Any = WSGIHandler
    log: Any = None
    error_log: Any = None
    environ_class: Any = dict
    secure_environ_class: Any = WSGISecureEnviron
    #: seconds a client may take to send a request head (and may stall a body read)
    header_timeout: Optional[float] = 60.0
    #: the largest request body taken, in bytes (None: no limit)
    max_body_size: Optional[int] = None
    application: Any = None

    base_env = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "evloop/0.1 Python/%d.%d" % sys.version_info[:2],
        "SCRIPT_NAME": "",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }

    def __init__(self, listener: Any, application: Optional[Callable[..., Any]] = None,
                 backlog: Optional[int] = None, spawn: Any = "default", log: Any = "default",
                 error_log: Any = "default", handler_class: Any = None,
                 environ: Optional[dict] = None, **ssl_args: Any) -> None:
        if "handle" in ssl_args:
            raise TypeError("WSGIServer takes application=, not handle=")
        if "header_timeout" in ssl_args:
            timeout = ssl_args.pop("header_timeout")
            if timeout is not None:
                if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                    raise TypeError(f"header_timeout must be a number or None, not {timeout!r}")
                if not timeout > 0:
                    raise ValueError(f"header_timeout must be > 0, not {timeout!r}")
            self.header_timeout = timeout
        if "max_body_size" in ssl_args:
            size = ssl_args.pop("max_body_size")
            if size is not None:
                if isinstance(size, bool) or not isinstance(size, int):
                    raise TypeError(f"max_body_size must be an int or None, not {size!r}")
                if size < 0:
                    raise ValueError(f"max_body_size must be >= 0, not {size!r}")
            self.max_body_size = size
        unknown = set(ssl_args) - _SSL_ARGS
        if unknown:
            # StreamServer would take any keyword as a TLS argument and serve TLS
            raise TypeError(f"WSGIServer() got unexpected keyword arguments {sorted(unknown)}")
        StreamServer.__init__(self, listener, backlog=backlog, spawn=spawn, **ssl_args)
        if application is not None:
            self.application = application
        if handler_class is not None:
            self.handler_class = handler_class

        def _make_log(log: Any, level: int = 20) -> Any:
            if log == "default":
                return sys.stderr
            if log is None:
                return _NoopLog()
            if not hasattr(log, "write") and hasattr(log, "log"):
                return LoggingLogAdapter(log, level)
            return log

        self.log = _make_log(log)
        self.error_log = _make_log(error_log, 40)
        self.set_environ(environ)
        self.set_max_accept()

    @property
    def ssl_enabled(self) -> bool:
        return self.ssl_context is not None

    @property
    def loop(self) -> Any:
        return self.hub.loop

    def set_environ(self, environ: Optional[dict] = None) -> None:
        if environ is not None:
            self.environ = environ
        environ_update = getattr(self, "environ", None)
        self.environ = self.environ_class(self.base_env)
        self.environ["wsgi.url_scheme"] = "https" if self.ssl_enabled else "http"
        if environ_update is not None:
            self.environ.update(environ_update)
        if self.environ.get("wsgi.errors") is None:
            self.environ["wsgi.errors"] = self.error_log

    def set_max_accept(self) -> None:
        if self.environ.get("wsgi.multiprocess"):
            self.max_accept = 1

    def get_environ(self) -> dict:
        return self.environ_class(self.environ)

    def init_socket(self) -> None:
        StreamServer.init_socket(self)
        self.update_environ()

    def update_environ(self) -> None:
        """SERVER_NAME and SERVER_PORT from the listening address."""
        address = self.address
        if isinstance(address, tuple):
            if "SERVER_NAME" not in self.environ:
                try:
                    name = _socket.getfqdn(address[0])
                except OSError:
                    name = str(address[0])
                self.environ["SERVER_NAME"] = name
            self.environ.setdefault("SERVER_PORT", str(address[1]))
        else:
            self.environ.setdefault("SERVER_NAME", "")
            self.environ.setdefault("SERVER_PORT", "")

    def handle(self, sock: Any, address: Any) -> None:
        """Run a ``handler_class(sock, address, self)`` for the connection."""
        handler = self.handler_class(sock, address, self)
        handler.handle()
