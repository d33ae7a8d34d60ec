"""evloop.ssl: the stdlib ssl API over evloop's cooperative sockets.

Why it exists: TLS on a non-blocking fd raises SSLWantReadError/SSLWantWriteError whenever
OpenSSL needs the network; this module turns each of those into a wait on the fd through
the hub, so handshakes, reads, writes and unwrap block only their greenlet. SSLSocket is
the stdlib's SSLSocket on top of ``evloop.socket.socket`` (so the stdlib's own connect,
accept and wrapping logic runs unchanged) with the OpenSSL calls retried after waiting;
``SSLContext.wrap_socket`` builds it.

What it must not do: change ssl's errors (SSLCertVerificationError, SSLEOFError, ... are
raised as the stdlib raises them) or block the thread.
"""
import os as _os
import ssl as __ssl__
import sys as _sys
from ssl import *  # noqa: F401,F403 - every stdlib name, then ours below
from ssl import (CERT_NONE, CERT_REQUIRED, PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER,
                 SSL_ERROR_EOF, Purpose, SSLError, SSLWantReadError, SSLWantWriteError)
from typing import Any, Optional

from evloop import socket as _evsocket

__all__ = [name for name in dir(__ssl__) if not name.startswith("_")]
for _name in ("SSLContext", "SSLSocket", "create_default_context", "get_server_certificate"):
    if _name not in __all__:
        __all__.append(_name)

_std_SSLSocket = __ssl__.SSLSocket
_std_SSLContext = __ssl__.SSLContext


class SSLSocket(_std_SSLSocket, _evsocket.socket):
    """An SSL socket whose handshake, reads and writes wait cooperatively."""

    def _ssl_wait(self, exc: BaseException) -> None:
        if self._io.timeout == 0.0:
            raise exc
        if isinstance(exc, SSLWantReadError):
            self._io.wait_read()
        else:
            self._io.wait_write()

    def do_handshake(self, block: bool = False) -> None:
        self._check_connected()
        while True:
            try:
                self._sslobj.do_handshake()
                return
            except (SSLWantReadError, SSLWantWriteError) as exc:
                if self._io.timeout == 0.0 and not block:
                    raise
                if isinstance(exc, SSLWantReadError):
                    self._io.wait_read()
                else:
                    self._io.wait_write()

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        self._checkClosed()
        if self._sslobj is None:
            raise ValueError("Read on closed or unwrapped SSL socket.")
        while True:
            try:
                if buffer is not None:
                    return self._sslobj.read(len, buffer)
                return self._sslobj.read(len)
            except (SSLWantReadError, SSLWantWriteError) as exc:
                self._ssl_wait(exc)
            except SSLError as exc:
                if exc.args[0] == SSL_ERROR_EOF and self.suppress_ragged_eofs:
                    return 0 if buffer is not None else b""
                raise

    def write(self, data: Any) -> int:
        self._checkClosed()
        if self._sslobj is None:
            raise ValueError("Write on closed or unwrapped SSL socket.")
        while True:
            try:
                return self._sslobj.write(data)
            except (SSLWantReadError, SSLWantWriteError) as exc:
                self._ssl_wait(exc)

    def unwrap(self) -> Any:
        if not self._sslobj:
            raise ValueError("No SSL wrapper around " + str(self))
        while True:
            try:
                sock = self._sslobj.shutdown()
                break
            except (SSLWantReadError, SSLWantWriteError) as exc:
                self._ssl_wait(exc)
            except SSLError as exc:
                if exc.args[0] == SSL_ERROR_EOF or "unexpected eof" in str(exc).lower():
                    sock = self  # the peer closed without close_notify: done anyway
                    break
                raise
        self._sslobj = None
        return sock

    def send(self, data: Any, flags: int = 0) -> int:
        # the stdlib's send calls self._sslobj.write directly, which on our non-blocking fd
        # raises SSLWantWriteError when the socket buffer is full: go through write()
        self._checkClosed()
        if self._sslobj is not None:
            if flags != 0:
                raise ValueError(
                    f"non-zero flags not allowed in calls to send() on {self.__class__}")
            return self.write(data)
        return _evsocket.socket.send(self, data, flags)

    # stdlib SSLSocket.sendall (which calls send) and recv/recv_into (which call read) now
    # wait cooperatively; with the TLS layer removed (unwrap) they fall back to the
    # cooperative socket's versions.


class SSLContext(_std_SSLContext):
    """ssl.SSLContext whose wrap_socket returns evloop's cooperative SSLSocket."""

    sslsocket_class = SSLSocket


def create_default_context(purpose: Any = Purpose.SERVER_AUTH, *, cafile: Optional[str] = None,
                           capath: Optional[str] = None, cadata: Any = None) -> SSLContext:
    """ssl.create_default_context, returning evloop's SSLContext."""
    if not isinstance(purpose, __ssl__._ASN1Object):
        raise TypeError(purpose)
    if purpose == Purpose.SERVER_AUTH:
        context = SSLContext(PROTOCOL_TLS_CLIENT)
        context.verify_mode = CERT_REQUIRED
        context.check_hostname = True
    elif purpose == Purpose.CLIENT_AUTH:
        context = SSLContext(PROTOCOL_TLS_SERVER)
    else:
        raise ValueError(purpose)
    if cafile or capath or cadata:
        context.load_verify_locations(cafile, capath, cadata)
    elif context.verify_mode != CERT_NONE:
        context.load_default_certs(purpose)
    keylogfile = _os.environ.get("SSLKEYLOGFILE")
    if hasattr(context, "keylog_filename") and keylogfile and not _sys.flags.ignore_environment:
        context.keylog_filename = keylogfile
    return context


def _create_unverified_context(protocol: Optional[int] = None, *, cert_reqs: int = CERT_NONE,
                               check_hostname: bool = False, purpose: Any = Purpose.SERVER_AUTH,
                               certfile: Optional[str] = None, keyfile: Optional[str] = None,
                               cafile: Optional[str] = None, capath: Optional[str] = None,
                               cadata: Any = None) -> SSLContext:
    if protocol is None:
        protocol = PROTOCOL_TLS_CLIENT if purpose == Purpose.SERVER_AUTH else PROTOCOL_TLS_SERVER
    context = SSLContext(protocol)
    context.check_hostname = check_hostname
    if cert_reqs is not None:
        context.verify_mode = cert_reqs
    if keyfile and not certfile:
        raise ValueError("certfile must be specified")
    if certfile or keyfile:
        context.load_cert_chain(certfile, keyfile)
    if cafile or capath or cadata:
        context.load_verify_locations(cafile, capath, cadata)
    elif context.verify_mode != CERT_NONE:
        context.load_default_certs(purpose)
    return context


_create_default_https_context = create_default_context
_create_stdlib_context = _create_unverified_context


def get_server_certificate(addr: Any, ssl_version: int = PROTOCOL_TLS_CLIENT,
                           ca_certs: Optional[str] = None, timeout: Any = None) -> str:
    """Fetch the PEM certificate of the server at ``addr`` (host, port)."""
    host, port = addr
    if ca_certs is not None:
        cert_reqs = CERT_REQUIRED
    else:
        cert_reqs = CERT_NONE
    context = _create_unverified_context(ssl_version, cert_reqs=cert_reqs, cafile=ca_certs)
    kwargs = {} if timeout is None else {"timeout": timeout}
    with _evsocket.create_connection(addr, **kwargs) as sock:
        with context.wrap_socket(sock, server_hostname=host) as sslsock:
            dercert = sslsock.getpeercert(True)
    return __ssl__.DER_cert_to_PEM_cert(dercert)
