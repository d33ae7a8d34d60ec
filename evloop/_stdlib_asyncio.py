"""evloop._stdlib_asyncio: every private detail of CPython's asyncio that evloop.aio uses.

Why it exists: ``evloop.aio.Loop`` is asyncio's selector loop with its core (ready queue,
timers, readers/writers, run_forever's loop) replaced by C, so it inherits asyncio's
transports and servers and has to meet them at private seams: the ``_make_*_transport``
hooks, the transports' read methods, run_forever's setup and cleanup, the event-loop
policy classes, the debug-mode formatting helpers. Each such detail is named here, once,
with the CPython versions it was read on and why evloop needs it; evloop/aio.py and
evloop/aio_bridge.py reach asyncio's private names only through this module, and
tests/test_stdlib_asyncio.py fails, naming the detail and the CPython, when a new CPython
changes one.

Checked on: CPython 3.10.13, 3.11.7, 3.12.1, 3.13.0 (pyenv) and 3.14.10, 3.15.2 (Debian
unstable). "3.12+" below means "read on 3.12.1, 3.13.0, 3.14.10 and 3.15.2"; a version
range always names the first version whose asyncio has the detail, found by reading each
version's asyncio source, never by inspecting code objects at run time.

What it must not do: hold evloop's own behaviour (the Loop and its transports live in
evloop/aio.py; the few functions here do what the running version's asyncio does, no
more), import anything from evloop (it sits under evloop.aio), or detect asyncio's
behaviour by reading ``__code__``; a detail that differs between versions is chosen by
``sys.version_info`` or by ``hasattr`` on the documented object.
"""
import asyncio
import sys
import threading
from asyncio import base_events, constants, events, format_helpers, runners, \
    selector_events, unix_events
import asyncio.futures
import asyncio.tasks
from typing import Any, Callable, Dict, Optional

#: The CPythons every detail below was read on (tests/test_stdlib_asyncio.py prints them
#: when a check fails).
CHECKED_ON = ("3.10.13", "3.11.7", "3.12.1", "3.13.0", "3.14.10", "3.15.2")


# -- hooks asyncio's own code calls on the loop, which evloop.aio.Loop overrides -----------
#
# asyncio's selector-loop code (transports, servers, signal handling, BaseEventLoop.close)
# reaches the loop's core through these private methods and attributes; Loop provides each
# one from C or Python. If asyncio renamed one, Loop's version would silently stop being
# used (or asyncio's would run against state the C core does not keep), so the test checks
# that every name still exists on asyncio's own selector loop. 3.10-3.15.
LOOP_HOOKS = (
    "_run_once",                # one iteration (Loop: a poll and one batch, in C)
    "_process_events",          # the selector loop's I/O dispatch (Loop: libev dispatches)
    "_add_reader", "_add_writer", "_remove_reader", "_remove_writer",   # transports' I/O
    "_add_callback", "_add_callback_signalsafe",    # the signal self-pipe's handles
    "_make_socket_transport", "_make_datagram_transport",
    "_sendfile_fallback",       # loop.sendfile()'s copy loop (Loop: its own for its transports)
    # the Unix loop's (unix_events._UnixSelectorEventLoop, asyncio.SelectorEventLoop on
    # Unix): connect_read_pipe, connect_write_pipe and the subprocess transport's pipes
    # (base_subprocess connects them with loop.connect_*_pipe) make their transports here
    "_make_read_pipe_transport", "_make_write_pipe_transport",
)
#: Instance attributes of asyncio's loops that the C core keeps instead (``_ready`` and
#: ``_scheduled`` as read-only snapshots); BaseEventLoop.__init__ and close() assign them.
LOOP_STATE = ("_ready", "_scheduled", "_stopping", "_closed", "_debug", "_task_factory",
              "_selector", "_thread_id", "_current_handle")


# -- transports: the _make_*_transport hooks -----------------------------------------------

#: asyncio's stream transport, which evloop.aio subclasses to replace its read method.
SocketTransport: Any = selector_events._SelectorSocketTransport
#: asyncio's datagram transport, subclassed likewise.
DatagramTransport: Any = selector_events._SelectorDatagramTransport

# 3.12+ (GH-88968): _make_socket_transport and _make_datagram_transport refuse a socket
# that another transport of the loop still uses (loop._ensure_fd_no_transport); 3.10 and
# 3.11 do not. Loop's overrides make the transport themselves, so they do what the running
# version's asyncio does.
MAKE_TRANSPORT_CHECKS_FD = sys.version_info >= (3, 12)

# 3.15+: _make_socket_transport(..., context=None) and the socket transport's
# constructor take the contextvars.Context the transport's callbacks run in (asyncio
# passes the Context of create_connection/create_server's caller); the transport passes
# it on to loop._add_reader/_add_writer(..., context=) and call_soon. 3.10-3.14 have no
# such parameter. The signatures, exactly (tests/test_stdlib_asyncio.py compares them):
if sys.version_info >= (3, 15):
    MAKE_SOCKET_TRANSPORT_SIGNATURE = \
        "(self, sock, protocol, waiter=None, *, extra=None, server=None, context=None)"
    SOCKET_TRANSPORT_INIT_SIGNATURE = \
        "(self, loop, sock, protocol, waiter=None, extra=None, server=None, context=None)"
    ADD_READER_SIGNATURE = "(self, fd, callback, *args, context=None)"
else:
    MAKE_SOCKET_TRANSPORT_SIGNATURE = \
        "(self, sock, protocol, waiter=None, *, extra=None, server=None)"
    SOCKET_TRANSPORT_INIT_SIGNATURE = \
        "(self, loop, sock, protocol, waiter=None, extra=None, server=None)"
    ADD_READER_SIGNATURE = "(self, fd, callback, *args)"
# unchanged 3.10-3.15: unix_events._UnixSelectorEventLoop's two pipe hooks (each returns
# its transport class called with (self, pipe, protocol, waiter, extra), nothing else)
MAKE_PIPE_TRANSPORT_SIGNATURE = "(self, pipe, protocol, waiter=None, extra=None)"
# unchanged 3.10-3.15
MAKE_DATAGRAM_TRANSPORT_SIGNATURE = \
    "(self, sock, protocol, address=None, waiter=None, extra=None)"
DATAGRAM_TRANSPORT_INIT_SIGNATURE = \
    "(self, loop, sock, protocol, address=None, waiter=None, extra=None)"


def new_socket_transport(cls: Any, loop: Any, sock: Any, protocol: Any, waiter: Any,
                         extra: Any, server: Any, context: Any) -> Any:
    """What BaseSelectorEventLoop._make_socket_transport does, with ``cls`` (a subclass of
    ``SocketTransport``) as the transport class."""
    if MAKE_TRANSPORT_CHECKS_FD:
        loop._ensure_fd_no_transport(sock)
    if sys.version_info >= (3, 15):
        return cls(loop, sock, protocol, waiter, extra, server, context=context)
    if context is not None:
        raise TypeError("_make_socket_transport() got an unexpected keyword argument "
                        "'context' (asyncio takes it from Python 3.15)")
    return cls(loop, sock, protocol, waiter, extra, server)


def new_datagram_transport(cls: Any, loop: Any, sock: Any, protocol: Any, address: Any,
                           waiter: Any, extra: Any) -> Any:
    """What BaseSelectorEventLoop._make_datagram_transport does, with ``cls``."""
    if MAKE_TRANSPORT_CHECKS_FD:
        loop._ensure_fd_no_transport(sock)
    return cls(loop, sock, protocol, address, waiter, extra)


# -- evloop.aio's own stream transport: what it shares with asyncio's Server and loop ------
#
# asyncio's Server counts the transports of its connections: the selector transport calls
# server._attach() when made and server._detach() after connection_lost (wait_closed waits
# for the count to reach zero). 3.13+ (gh-113538, close_clients/abort_clients) passes the
# transport and keeps them in server._clients (a WeakSet); 3.10-3.12 take no argument.
SERVER_ATTACH_TAKES_TRANSPORT = sys.version_info >= (3, 13)


def server_attach(server: Any, transport: Any) -> None:
    """What asyncio's transport constructor does with its Server (3.10-3.15)."""
    if SERVER_ATTACH_TAKES_TRANSPORT:
        server._attach(transport)
    else:
        server._attach()


def server_detach(server: Any, transport: Any) -> None:
    """What asyncio's transport does with its Server after connection_lost (3.10-3.15)."""
    if SERVER_ATTACH_TAKES_TRANSPORT:
        server._detach(transport)
    else:
        server._detach()


# BaseEventLoop.sendfile() reads transport._sendfile_compatible (an asyncio.constants.
# _SendfileMode; absent: UNSUPPORTED, RuntimeError). TRY_NATIVE makes it call the selector
# loop's _sendfile_native(transport, ...), which uses the transport's _sock, _sock_fd,
# pause/resume_reading and _make_empty_waiter/_reset_empty_waiter, and sock_sendfile();
# on SendfileNotAvailableError, loop._sendfile_fallback(). 3.10-3.15.
SENDFILE_TRY_NATIVE: Any = constants._SendfileMode.TRY_NATIVE


# asyncio's datagram transport (_SelectorDatagramTransport.sendto), per version:
# 3.10-3.12 drop an empty datagram (`if not data: return`); 3.13+ send it (read on
# 3.13.0, 3.14.10, 3.15.2). The write buffer's size counts len(data) per queued datagram
# on 3.10-3.12, len(data) + 8 (a per-datagram header estimate: a literal in 3.13, the class
# attribute `_header_size` from 3.14) on 3.13+. evloop's datagram
# transport does what the running version's does.
DGRAM_SENDS_EMPTY = sys.version_info >= (3, 13)
DGRAM_HEADER_SIZE = 8 if sys.version_info >= (3, 13) else 0


def register_transport(loop: Any, fd: int, transport: Any) -> None:
    """asyncio's selector loop maps each fd to the transport using it
    (BaseSelectorEventLoop._transports, a WeakValueDictionary, 3.10-3.15): add_reader,
    add_writer and the sock_* methods refuse an fd whose transport is not closing
    (_ensure_fd_no_transport). evloop's transport registers itself there, as asyncio's does."""
    loop._transports[fd] = transport


# The read methods evloop.aio's transports replace: _SelectorSocketTransport.
# _read_ready__data_received and _SelectorDatagramTransport._read_ready, identical in
# 3.10-3.15 (evloop's copies differ in the receive call only). The attributes those
# copies use are the transports': _conn_lost, _sock, _protocol, max_size, _fatal_error,
# _read_ready__on_eof. The test compares asyncio's source of both methods with the text
# evloop copied (tests/test_stdlib_asyncio.py, READ_METHOD_SOURCES).
SOCKET_READ_METHOD = "_read_ready__data_received"
DATAGRAM_READ_METHOD = "_read_ready"


# -- call_soon_threadsafe's handle ---------------------------------------------------------
#
# 3.14+ (gh-128340): call_soon_threadsafe returns an events._ThreadSafeHandle, an
# asyncio.Handle whose cancel() and cancelled() hold an RLock that its _run() holds while
# the callback runs (so another thread's cancel() waits for a running callback to finish),
# and whose _run() re-checks cancellation under that lock. CPython's test_events checks
# both the behaviour and the class. evloop.aio.Loop returns asyncio's own class on these
# versions, queueing its _run(); 3.10-3.13 have no such class (their handle is a plain
# asyncio.Handle, evloop's the C Handle). Constructor: (callback, args, loop, context=None).
ThreadSafeHandle: Any = None
if sys.version_info >= (3, 14):
    ThreadSafeHandle = events._ThreadSafeHandle  # type: ignore[attr-defined]


# -- running: run_forever's setup and cleanup ----------------------------------------------
#
# Loop.run_forever runs its C core between asyncio's setup (running loop, thread id,
# asyncgen hooks, coroutine origin tracking) and cleanup. 3.13+ (gh-110771) has them as
# BaseEventLoop._run_forever_setup/_run_forever_cleanup, "so that custom event loop
# subclasses ... have access to all the loop setup logic"; 3.10-3.12 inline the same steps
# in run_forever, which the functions below repeat (read on 3.10.13, 3.11.7, 3.12.1: the
# same code in all three), keeping the saved hooks where 3.13 does (loop._old_agen_hooks).
HAVE_RUN_FOREVER_SETUP = sys.version_info >= (3, 13)


def run_forever_setup(loop: Any) -> None:
    if HAVE_RUN_FOREVER_SETUP:
        loop._run_forever_setup()
        return
    loop._check_closed()
    loop._check_running()
    loop._set_coroutine_origin_tracking(loop._debug)
    loop._old_agen_hooks = sys.get_asyncgen_hooks()
    loop._thread_id = threading.get_ident()
    sys.set_asyncgen_hooks(firstiter=loop._asyncgen_firstiter_hook,
                           finalizer=loop._asyncgen_finalizer_hook)
    events._set_running_loop(loop)


def run_forever_cleanup(loop: Any) -> None:
    if HAVE_RUN_FOREVER_SETUP:
        loop._run_forever_cleanup()
        return
    loop._stopping = False
    loop._thread_id = None
    events._set_running_loop(None)
    loop._set_coroutine_origin_tracking(False)
    old = loop.__dict__.pop("_old_agen_hooks", None)
    if old is not None:
        sys.set_asyncgen_hooks(*old)


#: asyncio's running-loop getter that returns None instead of raising (exported by
#: asyncio.events as a "low-level function intended to be used by event loops"; 3.10-3.15).
#: evloop.aio_bridge asks whether this thread runs an evloop.aio loop with it.
get_running_loop_or_none: Callable[[], Any] = events._get_running_loop


def loop_thread_id(loop: Any) -> Optional[int]:
    """The thread a running loop runs in: BaseEventLoop._thread_id, set by run_forever's
    setup and cleared by its cleanup (3.10-3.15)."""
    return loop._thread_id


def cancel_all_tasks(loop: Any) -> None:
    """asyncio.run's end: cancel the loop's remaining tasks and wait for them
    (asyncio.runners._cancel_all_tasks, 3.10-3.15). evloop.aio.run needs it on 3.10 only,
    which has no asyncio.Runner to do it."""
    runners._cancel_all_tasks(loop)  # type: ignore[attr-defined]


# -- what the C core needs -----------------------------------------------------------------

#: The namespaces the C core reads ``Task`` and ``Future`` from on each create_task /
#: create_future (not the classes themselves, so that code replacing asyncio.tasks.Task —
#: CPython's test_tasks does, with the pure-Python Task — is followed). 3.10-3.15.
TASKS_NAMESPACE: Dict[str, Any] = asyncio.tasks.__dict__
FUTURES_NAMESPACE: Dict[str, Any] = asyncio.futures.__dict__
#: BaseEventLoop.create_task, which the C create_task calls for everything but its fast
#: path (a task factory, debug mode, keywords other than name/context: 3.14+ passes any
#: keyword on to the Task or the factory, e.g. eager_start).
base_create_task: Callable[..., Any] = base_events.BaseEventLoop.create_task


# -- error reports and debug mode: asyncio's formatting ------------------------------------

def debug_checks(loop: Any, callback: Any, method: str, check_thread: bool) -> None:
    """asyncio's debug-mode checks on call_soon & co: BaseEventLoop._check_thread (called
    from the loop's thread, else RuntimeError) and _check_callback(callback, method) (a
    callable that is not a coroutine function, else TypeError). 3.10-3.15."""
    if check_thread:
        loop._check_thread()
    loop._check_callback(callback, method)


#: asyncio's frame-stack capture for debug mode's source tracebacks (3.10-3.15)
extract_stack: Callable[..., Any] = format_helpers.extract_stack
#: asyncio's "Executing <Handle ...> took 0.123 seconds" formatting (3.10-3.15)
format_handle: Callable[[Any], str] = base_events._format_handle  # type: ignore[attr-defined]


def format_callback_source(callback: Any, args: Any, debug: bool) -> str:
    """A callback as asyncio's Handle repr and error report show it
    (format_helpers._format_callback_source). 3.13+ takes ``debug=``, and shows the
    arguments only in debug mode (they may hold sensitive data); 3.10-3.12 always show them."""
    if sys.version_info >= (3, 13):
        return format_helpers._format_callback_source(callback, args, debug=debug)
    return format_helpers._format_callback_source(callback, args)


# -- event-loop policies -------------------------------------------------------------------
#
# asyncio's policies are deprecated from 3.14 (asyncio.set_event_loop_policy,
# get_event_loop_policy and the policy classes warn DeprecationWarning) and to be removed
# in 3.16; the documented way is a loop factory (asyncio.Runner(loop_factory=...), and
# asyncio.run(..., loop_factory=...) from 3.12). HAVE_POLICIES says whether this CPython
# still has them: hasattr on the documented function, which is a plain attribute (no
# deprecation warning on access). True on 3.10-3.15.
HAVE_POLICIES = hasattr(asyncio, "set_event_loop_policy")
#: asyncio's default Unix policy (child watchers on 3.10-3.13), which
#: evloop.aio.EventLoopPolicy subclasses, replacing its ``_loop_factory`` class attribute
#: (the loop class its new_event_loop() instantiates; 3.10-3.15). Reached under its
#: private name: the public alias asyncio.DefaultEventLoopPolicy warns on 3.14+.
DefaultPolicy: Any = getattr(unix_events, "_UnixDefaultEventLoopPolicy", None) \
    if HAVE_POLICIES else None
# 3.14+: events._set_event_loop_policy is asyncio.set_event_loop_policy without the
# deprecation warning (asyncio's own code calls it). evloop.aio.install() warns once
# itself, at the caller's line, and sets the policy through it, so that the caller gets
# one warning that names the replacement (loop_factory) rather than asyncio's, which
# would point into evloop.
_set_policy: Callable[[Any], None] = getattr(events, "_set_event_loop_policy", None) \
    if sys.version_info >= (3, 14) else getattr(asyncio, "set_event_loop_policy", None)
POLICIES_DEPRECATED = sys.version_info >= (3, 14)


def set_event_loop_policy(policy: Any) -> None:
    """asyncio.set_event_loop_policy without asyncio's 3.14+ DeprecationWarning (the
    caller warns); only where HAVE_POLICIES."""
    _set_policy(policy)
