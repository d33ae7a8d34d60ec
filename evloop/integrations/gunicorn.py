"""evloop.integrations.gunicorn: a gunicorn worker class that serves WSGI apps on evloop.

Why it exists: gunicorn's arbiter forks worker processes, one or more per core, and
replaces, reloads and stops them; the worker class decides how one process serves
connections. ``gunicorn -k evloop.integrations.gunicorn.Worker app:app`` makes each worker
a single-threaded evloop process: the standard library is monkey-patched after the fork,
each listener is served by an ``evloop.server.StreamServer`` whose ``evloop.pool.Pool``
holds at most ``worker_connections`` connections, and every connection runs gunicorn's own
HTTP/1.1 code (its parser, ``AsyncWorker.handle`` and ``handle_request``: keep-alive,
chunked bodies, ``wsgi.file_wrapper`` through ``sendfile``, ``max_requests``, hooks and
access log) in its own greenlet, as gunicorn's gevent worker does.

Signals (gunicorn's meaning, evloop's delivery): SIGTERM stops gracefully (stop
accepting, let connections in flight finish within ``graceful_timeout``, then kill what
is left and exit); SIGQUIT and SIGINT stop at once; SIGUSR1 reopens the log files. They
run as greenlets started from the loop, so they may block cooperatively. SIGABRT, which
the arbiter sends when the heartbeat stopped (something holds the loop), is the exception:
it is a plain Python handler, so it still runs in whatever greenlet is stuck.

What it must not do: touch the arbiter's process. The arbiter imports this module to find
the class, so importing it must not patch anything, create a hub or start a loop; all of
that happens in ``init_process``, in the forked worker. It must not heartbeat while the
loop is blocked (the arbiter's timeout exists to catch that), nor drop a connection it
accepted before a graceful stop.
"""
import os
import signal as _stdlib_signal
import time
import warnings
from functools import partial
from typing import Any, Dict, List, Optional

from gunicorn.sock import ssl_context as _gunicorn_ssl_context
from gunicorn.workers.base_async import AsyncWorker

from evloop.exceptions import GreenletExit
from evloop.greenlet import getcurrent
from evloop.hub import get_hub, get_hub_if_exists, reinit
from evloop.timeout import Timeout

__all__ = ["Worker"]

# What the arbiter imported before the worker could patch, and that is right as it is:
# gunicorn's code reloader (--reload only) derives from the original threading.Thread,
# so it keeps being a real thread that watches files while the loop serves.
_GUNICORN_INTERNALS = frozenset({
    "gunicorn.reloader.ReloaderBase (subclass of threading.Thread)",  # gunicorn 27
    "gunicorn.reloader.Reloader (subclass of threading.Thread)",  # gunicorn 23 (3.9)
})


def _without_gunicorn_internals(message: str) -> Optional[str]:
    """A MonkeyPatchWarning's text from patch_all() without ``_GUNICORN_INTERNALS`` in
    its "Classes derived before patching: a; b." part, or None if nothing else is left
    to report."""
    head, found, classes = message.partition(" Classes derived before patching: ")
    if not found:
        return message
    kept = [item for item in classes.rstrip(".").split("; ")
            if item not in _GUNICORN_INTERNALS]
    if kept:
        return f"{head}{found}{'; '.join(kept)}."
    return head if "Names imported before patching" in head else None


class _KeepaliveExpired(BaseException):
    """Thrown into a connection's greenlet when its keep-alive wait is over; the
    ``with`` block of that wait swallows it (a BaseException, so that gunicorn's parser,
    which catches Exception, lets it through)."""


class _Keepalive:
    """The keep-alive wait of one connection, as a context manager reused for each of its
    requests: ``AsyncWorker.handle`` reads every request under ``with
    self.timeout_ctx()``, and a fresh ``Timeout`` (an exception object and a libev timer)
    per request costs more than the wait needs. One timer, restarted on entry and stopped
    on exit. On expiry the hub throws ``_KeepaliveExpired`` into the greenlet, wherever it
    waits; leaving the block stops the timer (libev also drops it if it was pending), so
    it never fires into a later wait."""

    __slots__ = ("timer", "glet", "expired")

    def __init__(self, loop: Any, seconds: float, glet: Any) -> None:
        # libev resumes a stopped timer with the time it had left (ev_timer_stop keeps
        # it), so each wait restarts it with ev_timer_again, from `repeat`
        self.timer = loop.timer(seconds, seconds)
        self.glet = glet
        self.expired = _KeepaliveExpired()

    def __enter__(self) -> "_Keepalive":
        # update: the loop's clock may be stale after a request that ran long
        self.timer.again(self._expire, update=True)
        return self

    def __exit__(self, typ: Any, value: Any, tb: Any) -> bool:
        self.timer.stop()
        return value is self.expired

    def _expire(self) -> None:
        # in the hub, from the timer; once (it repeats only to serve again())
        self.timer.stop()
        if not self.glet.dead:
            self.glet.throw(self.expired)

    def close(self) -> None:
        self.timer.close()


class Worker(AsyncWorker):
    """gunicorn's ``AsyncWorker`` on evloop: one StreamServer per listener, a Pool of
    ``worker_connections`` greenlets each, gunicorn's HTTP handling in each greenlet."""

    #: the longest pause between two heartbeats (shorter when gunicorn's timeout is)
    notify_interval = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # (in the arbiter, before the fork: nothing of evloop's may be created here)
        super().__init__(*args, **kwargs)
        # connection greenlet -> its _Keepalive, while handle() runs
        self._keepalives: Dict[Any, _Keepalive] = {}

    # set by run(), in the worker process: wakes the main greenlet when ``alive`` drops
    _wakeup: Any = None
    _hub: Any = None
    _alive = True

    @property  # type: ignore[override]
    def alive(self) -> bool:
        """gunicorn sets it False to stop the worker (SIGTERM, max_requests, the code
        reloader, a parent that went away); that wakes the run loop at once."""
        return self._alive

    @alive.setter
    def alive(self, value: bool) -> None:
        self._alive = value
        if not value and self._wakeup is not None:
            if get_hub_if_exists() is self._hub:
                self._wakeup.set()
            else:
                # another OS thread: gunicorn's code reloader (--reload) runs in one
                self._hub.loop.run_callback_threadsafe(self._wakeup.set)

    # -- process setup (in the forked worker) ---------------------------------------------

    def init_process(self) -> None:
        self.patch()
        # the child of a fork: a loop the arbiter may have made must not share its
        # backend (epoll) fd with the parent
        reinit()
        super().init_process()

    def patch(self) -> None:
        """Monkey-patch the standard library, then make the inherited listeners evloop
        sockets. Before the app is imported (unless ``--preload``), so its modules see
        the cooperative socket, ssl, time, threading, ..."""
        from evloop import monkey  # noqa: PLC0415 - imported in the worker only
        from evloop import socket as evsocket  # noqa: PLC0415
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", monkey.MonkeyPatchWarning)
            monkey.patch_all()
        for warning in caught:
            message: Any = warning.message
            if issubclass(warning.category, monkey.MonkeyPatchWarning):
                message = _without_gunicorn_internals(str(message))
                if message is None:
                    continue
            warnings.warn_explicit(message, warning.category, warning.filename,
                                   warning.lineno)
        sockets: List[Any] = []
        for listener in self.sockets:
            # gunicorn's listener wraps a stdlib socket: take its fd over
            sockets.append(evsocket.socket(listener.FAMILY, evsocket.SOCK_STREAM,
                                           fileno=listener.sock.detach()))
        self.sockets = sockets

    def init_signals(self) -> None:
        # gunicorn's handlers, installed through the patched signal module: each runs in
        # a new greenlet started by a libev signal watcher
        super().init_signals()
        # ...except SIGABRT: the arbiter sends it when the heartbeat stopped, that is when
        # something blocks the loop, so a handler waiting for the loop would never run.
        # A plain Python handler runs in whatever greenlet holds the thread.
        from evloop import monkey  # noqa: PLC0415
        # (signal.signal is evloop's by now: this drops its watcher for SIGABRT)
        _stdlib_signal.signal(_stdlib_signal.SIGABRT, _stdlib_signal.SIG_DFL)
        monkey.get_original("signal", "signal")(_stdlib_signal.SIGABRT, self.handle_abort)

    def handle_abort(self, sig: int, frame: Any) -> None:
        """SIGABRT (heartbeat timeout): run the ``worker_abort`` hook and exit with status
        1. The handler interrupts whichever greenlet was running; the exit itself is
        raised in the main greenlet, through the hub when the handler ran elsewhere."""
        self.alive = False
        self.cfg.worker_abort(self)
        hub = get_hub()
        current = getcurrent()
        if current is not hub and current is not hub.parent:
            hub.handle_system_error(SystemExit, SystemExit(1), None)
        raise SystemExit(1)

    def notify(self) -> None:
        super().notify()
        if self.alive and self.ppid != os.getppid():
            # the arbiter is gone: nobody will stop us, so stop ourselves (gracefully)
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False

    def timeout_ctx(self) -> Any:
        """How long a kept-alive connection may wait for its next request: on expiry the
        ``with`` block ends quietly and AsyncWorker.handle closes the connection."""
        keepalive = self._keepalives.get(getcurrent())
        if keepalive is not None:
            return keepalive
        return Timeout(self.cfg.keepalive, False)  # outside handle(): a subclass's use

    # -- serving --------------------------------------------------------------------------

    def _heartbeat_interval(self) -> float:
        # self.timeout is half of gunicorn's --timeout (0: no timeout); beat at least four
        # times per timeout, so that a worker descheduled for a while on a busy machine
        # is not taken for a stuck one
        if self.timeout and self.timeout > 0:
            return min(self.notify_interval, self.timeout / 2)
        return self.notify_interval

    def run(self) -> None:
        from evloop.event import Event  # noqa: PLC0415
        from evloop.pool import Pool  # noqa: PLC0415
        from evloop.server import StreamServer  # noqa: PLC0415

        self._hub = get_hub()
        self._wakeup = Event()
        if not self.alive:
            self._wakeup.set()
        self._ssl_context = _gunicorn_ssl_context(self.cfg) if self.cfg.is_ssl else None
        servers = []
        for listener in self.sockets:
            server = StreamServer(listener, handle=partial(self.handle, listener),
                                  spawn=Pool(self.worker_connections))
            if self.cfg.workers > 1:
                # one connection per wake-up, so that the other workers woken for the
                # same backlog get their share
                server.max_accept = 1
            server.start()
            servers.append(server)

        interval = self._heartbeat_interval()
        try:
            while self.alive:
                self.notify()
                self._wakeup.wait(interval)
            self._drain(servers, interval)
        finally:
            # after a graceful stop, or at once on SystemExit (SIGQUIT, SIGINT) or an
            # error: close the listeners and kill the connections still open
            for server in servers:
                server.stop(timeout=0)

    def _drain(self, servers: List[Any], interval: float) -> None:
        """Stop accepting; wait up to ``graceful_timeout`` for the connections in flight
        to finish, heartbeating meanwhile."""
        for server in servers:
            # the listener stays open: connections queued in its backlog are left to the
            # other workers (and to the new ones after a reload)
            server.stop_accepting()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        busy = [server.pool for server in servers if len(server.pool)]
        while busy:
            left = deadline - time.monotonic()
            if left <= 0:
                self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                return
            self.notify()
            busy[0].join(timeout=min(interval, left))
            busy = [pool for pool in busy if len(pool)]

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        # a connected socket starts with socket.getdefaulttimeout(); gunicorn's code
        # expects blocking sockets (its own timeouts are the keep-alive Timeout)
        client.setblocking(True)
        if self._ssl_context is not None:
            client = self._wrap_tls(client, addr)
            if client is None:
                return
        if not self.cfg.keepalive:
            super().handle(listener, client, addr)
            return
        current = getcurrent()
        keepalive = self._keepalives[current] = _Keepalive(self._hub.loop,
                                                           self.cfg.keepalive, current)
        try:
            super().handle(listener, client, addr)
        finally:
            del self._keepalives[current]
            keepalive.close()

    _ssl_context: Any = None

    def _wrap_tls(self, client: Any, addr: Any) -> Optional[Any]:
        """The TLS server side of ``client`` (the handshake runs here, in the
        connection's greenlet, when ``do_handshake_on_connect``), or None if it
        failed."""
        import ssl  # noqa: PLC0415 - patched by now: evloop's SSLContext and errors
        try:
            return self._ssl_context.wrap_socket(
                client, server_side=True,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                do_handshake_on_connect=self.cfg.do_handshake_on_connect)
        except ssl.SSLError as ex:
            if ex.args and ex.args[0] == ssl.SSL_ERROR_EOF:
                self.log.debug("ssl connection closed")
            else:
                self.handle_error(None, client, addr, ex)
        except OSError as ex:
            self.log.debug("TLS handshake with %s failed: %s", addr, ex)
        client.close()
        return None

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        try:
            return super().handle_request(listener_name, req, sock, addr)
        except (GreenletExit, SystemExit):
            # killed (the end of a stop) or interrupted by SIGABRT while the process
            # exits: close this connection, which is what StopIteration tells handle()
            raise StopIteration() from None

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, (GreenletExit, SystemExit)):
            # killed while reading a request (an idle keep-alive connection at the end of
            # a stop): nothing went wrong with the request, there is nobody to answer
            self.log.debug("Closing connection at worker exit: %r", exc)
            return
        super().handle_error(req, client, addr, exc)
