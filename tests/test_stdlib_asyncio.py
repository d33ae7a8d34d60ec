"""Tests for evloop/_stdlib_asyncio.py: asyncio's private details evloop.aio relies on.

Each test checks one detail against the running CPython's asyncio, by behaviour where it
can (what asyncio's own selector loop does, compared with what evloop.aio does), by
signature or source text where evloop copies or overrides code. A failure names the
detail and the CPython: read that version's asyncio, then update evloop/_stdlib_asyncio.py
(and evloop/aio.py where it copies code) and the versions its comments name.
"""
import asyncio
import contextvars
import inspect
import selectors
import socket
import sys
import threading
import warnings
from asyncio import base_events, selector_events

import pytest

import evloop.aio
from evloop import _stdlib_asyncio as stdlib

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning:evloop")

PY = sys.version.split()[0]


def changed(detail, what):
    return (f"CPython {PY} changed asyncio's {detail}: {what}. evloop/_stdlib_asyncio.py "
            f"was checked on {', '.join(stdlib.CHECKED_ON)}; read this version's asyncio "
            f"and update it.")


@pytest.fixture
def stdlib_loop():
    loop = asyncio.SelectorEventLoop(selectors.DefaultSelector())
    yield loop
    loop.close()


@pytest.fixture
def evloop_loop():
    loop = evloop.aio.new_event_loop()
    yield loop
    loop.close()


def test_this_cpython_was_checked():
    checked = {v.rsplit(".", 1)[0] for v in stdlib.CHECKED_ON}
    here = "%d.%d" % sys.version_info[:2]
    assert here in checked, (
        f"evloop/_stdlib_asyncio.py was not checked on CPython {here} (only on "
        f"{', '.join(stdlib.CHECKED_ON)}): read its asyncio against every detail there")


# -- the loop's hooks ----------------------------------------------------------------------

@pytest.mark.parametrize("name", stdlib.LOOP_HOOKS)
def test_loop_hook_is_asyncios_and_overridden(name):
    assert hasattr(asyncio.SelectorEventLoop, name), changed(
        f"selector loop hook {name}", "it no longer exists, so evloop.aio.Loop's override "
        "is never called")
    assert getattr(evloop.aio.Loop, name) is not getattr(asyncio.SelectorEventLoop, name), \
        f"evloop.aio.Loop does not override {name}"


@pytest.mark.parametrize("name", stdlib.LOOP_STATE)
def test_loop_state_is_asyncios(name, stdlib_loop, evloop_loop):
    assert hasattr(stdlib_loop, name), changed(
        f"event loop attribute {name}", "its selector loop no longer has it")
    assert hasattr(evloop_loop, name)


# -- transports ----------------------------------------------------------------------------

@pytest.mark.parametrize("obj, attr, expected", [
    (selector_events.BaseSelectorEventLoop, "_make_socket_transport",
     "MAKE_SOCKET_TRANSPORT_SIGNATURE"),
    (selector_events.BaseSelectorEventLoop, "_make_datagram_transport",
     "MAKE_DATAGRAM_TRANSPORT_SIGNATURE"),
    (selector_events._SelectorSocketTransport, "__init__", "SOCKET_TRANSPORT_INIT_SIGNATURE"),
    (selector_events._SelectorDatagramTransport, "__init__",
     "DATAGRAM_TRANSPORT_INIT_SIGNATURE"),
    (selector_events.BaseSelectorEventLoop, "_add_reader", "ADD_READER_SIGNATURE"),
    (selector_events.BaseSelectorEventLoop, "_add_writer", "ADD_READER_SIGNATURE"),
    (asyncio.SelectorEventLoop, "_make_read_pipe_transport", "MAKE_PIPE_TRANSPORT_SIGNATURE"),
    (asyncio.SelectorEventLoop, "_make_write_pipe_transport", "MAKE_PIPE_TRANSPORT_SIGNATURE"),
])
def test_transport_signatures(obj, attr, expected):
    got = str(inspect.signature(getattr(obj, attr)))
    assert got == getattr(stdlib, expected), changed(
        f"{obj.__name__}.{attr} signature", f"{got}, evloop expects "
        f"{getattr(stdlib, expected)} ({expected})")


@pytest.mark.parametrize("name", ["_make_socket_transport", "_make_datagram_transport",
                                  "_make_read_pipe_transport", "_make_write_pipe_transport"])
def test_loop_overrides_take_every_parameter(name):
    theirs = inspect.signature(getattr(asyncio.SelectorEventLoop, name))
    ours = inspect.signature(getattr(evloop.aio.Loop, name)).parameters
    for p in theirs.parameters.values():
        assert p.name in ours and ours[p.name].kind == p.kind \
            and ours[p.name].default == p.default, changed(
                f"{name} parameters", f"evloop.aio.Loop.{name} lacks {p} of {theirs}")


def test_add_reader_takes_context(evloop_loop):
    # 3.15's transports pass context= to loop._add_reader/_add_writer: evloop's C methods
    # take it on every version, and the callback runs in that context
    var = contextvars.ContextVar("var", default="unset")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "transport's")
    a, b = socket.socketpair()
    seen = []
    try:
        def on_readable(sock):
            seen.append((var.get(), sock.recv(10)))
            evloop_loop._remove_reader(sock.fileno())
            if len(seen) == 2:
                evloop_loop.stop()

        def on_writable(sock):
            seen.append((var.get(), "writable"))
            evloop_loop._remove_writer(sock.fileno())
            if len(seen) == 2:
                evloop_loop.stop()

        evloop_loop._add_reader(a.fileno(), on_readable, a, context=ctx)
        evloop_loop._add_writer(b.fileno(), on_writable, b, context=ctx)
        b.send(b"x")
        evloop_loop.call_later(5, evloop_loop.stop)
        evloop_loop.run_forever()
        assert set(seen) == {("transport's", b"x"), ("transport's", "writable")}
        with pytest.raises(TypeError, match="context must be a contextvars.Context"):
            evloop_loop._add_reader(a.fileno(), on_readable, a, context="no")
        with pytest.raises(TypeError, match="unexpected keyword argument 'ctx'"):
            evloop_loop._add_reader(a.fileno(), on_readable, a, ctx=ctx)
    finally:
        a.close()
        b.close()


def _second_transport_refused(loop, make):
    """Does loop refuse a second transport on a socket a transport already uses?"""
    a, b = socket.socketpair()
    protocol = asyncio.Protocol()
    first = make(loop, a, protocol)
    try:
        make(loop, a, protocol)
    except RuntimeError as e:
        assert "is used by transport" in str(e), e
        refused = True
    else:
        refused = False
    first.close()
    loop.run_until_complete(asyncio.sleep(0.01))
    b.close()
    return refused


@pytest.mark.parametrize("kind", ["socket", "datagram"])
def test_make_transport_refuses_a_used_socket_on_the_versions_named(kind, stdlib_loop,
                                                                    evloop_loop):
    if kind == "socket":
        def make(loop, sock, protocol):
            return loop._make_socket_transport(sock, protocol)
    else:
        def make(loop, sock, protocol):
            return loop._make_datagram_transport(sock, protocol)
    assert _second_transport_refused(stdlib_loop, make) == stdlib.MAKE_TRANSPORT_CHECKS_FD, \
        changed(f"_make_{kind}_transport", "it "
                + ("no longer" if stdlib.MAKE_TRANSPORT_CHECKS_FD else "now")
                + " refuses a socket another transport uses (MAKE_TRANSPORT_CHECKS_FD)")
    assert _second_transport_refused(evloop_loop, make) == stdlib.MAKE_TRANSPORT_CHECKS_FD


def test_transport_context_is_asyncios(stdlib_loop, evloop_loop):
    # the Context a connection's protocol callbacks run in (3.15: create_connection's
    # caller's, passed to _make_socket_transport(context=)): the same on both loops
    var = contextvars.ContextVar("var", default="unset")

    class Proto(asyncio.Protocol):
        def __init__(self):
            self.seen = []
            self.done = asyncio.get_running_loop().create_future()

        def connection_made(self, transport):
            self.seen.append(("made", var.get()))

        def data_received(self, data):
            self.seen.append(("data", var.get()))
            var.set("changed in data_received")

        def connection_lost(self, exc):
            self.seen.append(("lost", var.get()))
            self.done.set_result(None)

    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with b:
            var.set("caller's")
            transport, proto = await loop.create_connection(Proto, sock=a)
            var.set("after")
            b.send(b"x")
            await asyncio.sleep(0.01)
            b.send(b"y")
            await asyncio.sleep(0.01)
            transport.close()
            await proto.done
        return proto.seen

    async def guarded():
        return await asyncio.wait_for(main(), 10)

    ours = evloop_loop.run_until_complete(guarded())
    theirs = stdlib_loop.run_until_complete(guarded())
    assert ours == theirs
    assert evloop.aio._SocketTransport.__mro__[1] is selector_events._SelectorSocketTransport


# The read methods evloop.aio's transports copy, with the lines evloop changed: evloop's
# copy, with its lines replaced by asyncio's, must be asyncio's method exactly.
READ_METHOD_CHANGES = {
    ("_SocketTransport", stdlib.SOCKET_READ_METHOD): [
        ("(self) -> None:", "(self):"),
        ("data = _recv(self._sock, self.max_size)", "data = self._sock.recv(self.max_size)"),
    ],
    ("_DatagramTransport", stdlib.DATAGRAM_READ_METHOD): [
        ("(self) -> None:", "(self):"),
        ("""\
            size = self.max_size
            view = self._evloop_view
            if 0 < size <= len(view):
                nbytes, addr = self._sock.recvfrom_into(view, size)
                data = bytes(view[:nbytes])
            else:                               # a max_size changed by the user
                data, addr = self._sock.recvfrom(size)
""", """\
            data, addr = self._sock.recvfrom(self.max_size)
"""),
    ],
}


@pytest.mark.parametrize("cls, method", list(READ_METHOD_CHANGES))
def test_copied_read_methods_are_asyncios(cls, method):
    ours_cls = getattr(evloop.aio, cls)
    base = ours_cls.__mro__[1]
    assert base in (stdlib.SocketTransport, stdlib.DatagramTransport)
    assert method in vars(ours_cls), f"evloop.aio.{cls} no longer replaces {method}"
    assert hasattr(base, method), changed(f"{base.__name__}.{method}", "it no longer exists")
    ours = inspect.getsource(getattr(ours_cls, method))
    for evloops, asyncios in READ_METHOD_CHANGES[cls, method]:
        assert ours.count(evloops) == 1, f"evloop.aio.{cls}.{method} changed: {evloops!r}"
        ours = ours.replace(evloops, asyncios)
    theirs = inspect.getsource(getattr(base, method))
    assert ours == theirs, changed(
        f"{base.__name__}.{method}", "it is no longer the code evloop.aio copied; "
        f"asyncio's is now:\n{theirs}")


def test_thread_safe_handle(stdlib_loop, evloop_loop):
    has = hasattr(asyncio.events, "_ThreadSafeHandle")
    assert has == (stdlib.ThreadSafeHandle is not None), changed(
        "events._ThreadSafeHandle", "it " + ("now exists" if has else "no longer exists"))
    theirs = stdlib_loop.call_soon_threadsafe(print)
    ours = evloop_loop.call_soon_threadsafe(print)
    theirs.cancel()
    ours.cancel()
    if not has:
        assert type(theirs) is asyncio.Handle and type(ours) is evloop.aio.Handle
        return
    cls = stdlib.ThreadSafeHandle
    assert issubclass(cls, asyncio.Handle)
    sig = str(inspect.signature(cls))
    assert sig == "(callback, args, loop, context=None)", changed(
        "events._ThreadSafeHandle", f"its constructor is now {sig}")
    assert type(theirs) is cls, changed(
        "call_soon_threadsafe", f"it returns {type(theirs)}, not _ThreadSafeHandle")
    assert type(ours) is cls


# -- running -------------------------------------------------------------------------------

def _running_state(loop):
    return {
        "running loop": asyncio._get_running_loop() is loop,
        "thread id": stdlib.loop_thread_id(loop),
        "asyncgen hooks": sys.get_asyncgen_hooks(),
        "origin tracking": sys.get_coroutine_origin_tracking_depth(),
        "is_running": loop.is_running(),
        "stopping": loop._stopping,
    }


@pytest.mark.parametrize("debug", [False, True])
def test_run_forever_setup_and_cleanup_do_what_run_forever_does(debug, stdlib_loop):
    assert stdlib.HAVE_RUN_FOREVER_SETUP == hasattr(base_events.BaseEventLoop,
                                                   "_run_forever_setup"), \
        changed("BaseEventLoop._run_forever_setup", "its presence (HAVE_RUN_FOREVER_SETUP)")
    stdlib_loop.set_debug(debug)
    before = _running_state(stdlib_loop)
    inside = []
    stdlib_loop.call_soon(lambda: inside.append(_running_state(stdlib_loop)))
    stdlib_loop.call_soon(stdlib_loop.stop)
    stdlib_loop.run_forever()
    after = _running_state(stdlib_loop)
    assert before == after

    stdlib.run_forever_setup(stdlib_loop)
    try:
        ours = _running_state(stdlib_loop)
        hooks = sys.get_asyncgen_hooks()
        stdlib_loop._stopping = True     # what stop() leaves for the cleanup to reset
    finally:
        stdlib.run_forever_cleanup(stdlib_loop)
    assert ours == dict(inside[0], stopping=False), changed(
        "run_forever's setup", f"run_forever sets {inside[0]}, evloop's setup {ours}")
    assert hooks.firstiter is not None and hooks.finalizer is not None
    assert _running_state(stdlib_loop) == after, changed(
        "run_forever's cleanup", f"run_forever leaves {after}, evloop's cleanup "
        f"{_running_state(stdlib_loop)}")
    with pytest.raises(RuntimeError, match="closed"):
        loop = asyncio.SelectorEventLoop(selectors.DefaultSelector())
        loop.close()
        stdlib.run_forever_setup(loop)


def test_running_loop_and_thread_id(evloop_loop):
    assert stdlib.get_running_loop_or_none() is None

    async def main():
        return stdlib.get_running_loop_or_none(), stdlib.loop_thread_id(evloop_loop)

    assert evloop_loop.run_until_complete(main()) == (evloop_loop, threading.get_ident())
    assert stdlib.loop_thread_id(evloop_loop) is None


def test_cancel_all_tasks(stdlib_loop):
    # evloop.aio.run's end on 3.10, which has no asyncio.Runner
    assert str(inspect.signature(stdlib.runners._cancel_all_tasks)) == "(loop)", changed(
        "asyncio.runners._cancel_all_tasks", "its signature")
    cancelled = []

    async def sleeper():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    task = stdlib_loop.create_task(sleeper())
    stdlib_loop.run_until_complete(asyncio.sleep(0))
    stdlib.cancel_all_tasks(stdlib_loop)
    assert task.cancelled() and cancelled == [True]


# -- what the C core and the error paths use -----------------------------------------------

def test_task_and_future_namespaces():
    assert stdlib.TASKS_NAMESPACE["Task"] is asyncio.Task, changed(
        "asyncio.tasks namespace", "asyncio.tasks.Task is not asyncio.Task")
    assert stdlib.FUTURES_NAMESPACE["Future"] is asyncio.Future, changed(
        "asyncio.futures namespace", "asyncio.futures.Future is not asyncio.Future")
    sig = inspect.signature(stdlib.base_create_task)
    assert "coro" in sig.parameters and ("name" in sig.parameters or any(
        p.kind is p.VAR_KEYWORD for p in sig.parameters.values())), changed(
        "BaseEventLoop.create_task", f"signature {sig}")


def test_debug_checks_are_asyncios(stdlib_loop, evloop_loop):
    for name in ("_check_thread", "_check_callback"):
        assert hasattr(base_events.BaseEventLoop, name), changed(
            f"BaseEventLoop.{name}", "it no longer exists (evloop.aio's debug mode calls it)")

    async def coro_function():
        pass

    def from_other_thread(loop):
        errors = []
        t = threading.Thread(target=lambda: errors.append(
            _raises(lambda: stdlib.debug_checks(loop, print, "call_soon", True))))
        t.start()
        t.join()
        return errors[0]

    for loop in (stdlib_loop, evloop_loop):
        loop.set_debug(True)

        async def main():
            lp = asyncio.get_running_loop()
            return (_raises(lambda: stdlib.debug_checks(lp, coro_function, "call_soon", True)),
                    _raises(lambda: stdlib.debug_checks(lp, print, "call_soon", True)),
                    from_other_thread(lp))   # a short thread, joined here

        bad_callback, fine, other_thread = loop.run_until_complete(main())
        assert bad_callback is TypeError and fine is None and other_thread is RuntimeError, \
            changed("debug-mode checks", f"{bad_callback}, {fine}, {other_thread}")


def _raises(fn):
    try:
        fn()
    except Exception as e:
        return type(e)
    return None


@pytest.mark.parametrize("debug", [False, True])
def test_callback_formatting_is_asyncios(debug, stdlib_loop, evloop_loop):
    def callback(arg):
        pass

    stdlib_loop.set_debug(debug)
    evloop_loop.set_debug(debug)
    theirs = asyncio.Handle(callback, ("secret",), stdlib_loop)
    source = stdlib.format_callback_source(callback, ("secret",), debug)
    assert source in repr(theirs), changed(
        "format_helpers._format_callback_source", f"{source!r} is not in {theirs!r}")
    ours = evloop_loop.call_soon(callback, "secret")
    # the same repr as asyncio's Handle (but for where each was created, in debug mode)
    assert repr(ours).split(" created at")[0] == repr(theirs).split(" created at")[0]
    ours.cancel()
    assert isinstance(stdlib.format_handle(theirs), str)
    assert str(inspect.signature(stdlib.extract_stack)) == "(f=None, limit=None)", changed(
        "format_helpers.extract_stack", "its signature")


# -- policies ------------------------------------------------------------------------------

def test_policy_details():
    assert stdlib.HAVE_POLICIES == (sys.version_info < (3, 16))
    assert stdlib.POLICIES_DEPRECATED == (sys.version_info >= (3, 14))
    if not stdlib.HAVE_POLICIES:
        pytest.skip("this CPython has no event loop policies (removed in 3.16)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # 3.14+: the name warns
        default = asyncio.DefaultEventLoopPolicy
        old = asyncio.get_event_loop_policy()
    assert stdlib.DefaultPolicy is default, changed(
        "default event loop policy class", f"{default} is not {stdlib.DefaultPolicy}")
    assert stdlib.DefaultPolicy._loop_factory is asyncio.SelectorEventLoop, changed(
        "default policy's _loop_factory", "evloop.aio.EventLoopPolicy replaces it")
    # the public setter warns exactly from 3.14; evloop's setter never warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.set_event_loop_policy(old)
    warned = any(issubclass(w.category, DeprecationWarning) for w in caught)
    assert warned == stdlib.POLICIES_DEPRECATED, changed(
        "asyncio.set_event_loop_policy", f"it {'now' if warned else 'no longer'} warns")
    policy = evloop.aio.EventLoopPolicy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            stdlib.set_event_loop_policy(policy)
            loop = asyncio.new_event_loop()
        assert type(loop) is evloop.aio.Loop
        loop.close()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            stdlib.set_event_loop_policy(old)


# -- evloop's own transports: what they share with asyncio's Server, loop and sendfile -----

def test_server_attach_detach_signature():
    params = list(inspect.signature(base_events.Server._attach).parameters)
    detach = list(inspect.signature(base_events.Server._detach).parameters)
    expected = ["self", "transport"] if stdlib.SERVER_ATTACH_TAKES_TRANSPORT else ["self"]
    assert params == expected and detach == expected, changed(
        "Server._attach/_detach", f"parameters {params}, {detach}, expected {expected}")
    assert hasattr(base_events.Server, "close_clients") == \
        stdlib.SERVER_ATTACH_TAKES_TRANSPORT, changed("Server.close_clients", "presence")


def test_server_counts_evloops_transports(evloop_loop):
    # the Server waits in wait_closed() for the transports it attached to be detached: a
    # count on 3.10-3.12 (_active_count), a WeakSet of them on 3.13+ (_clients)
    def attached(server):
        if stdlib.SERVER_ATTACH_TAKES_TRANSPORT:
            return len(server._clients)
        return server._active_count

    async def main():
        server = await evloop_loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        client = socket.create_connection(server.sockets[0].getsockname())
        for _ in range(200):
            if attached(server):
                break
            await asyncio.sleep(0.005)
        first = attached(server)
        client.close()                 # EOF: the transport closes, and is detached
        server.close()
        for _ in range(400):           # (wait_closed() does not wait on 3.10 and 3.11)
            if not attached(server):
                break
            await asyncio.sleep(0.005)
        await asyncio.wait_for(server.wait_closed(), 5)
        return first, attached(server)

    assert evloop_loop.run_until_complete(main()) == (1, 0), changed(
        "Server._active_count bookkeeping", "a transport's _attach/_detach were not counted")


def test_loop_transports_map(stdlib_loop, evloop_loop):
    import weakref
    assert isinstance(stdlib_loop._transports, weakref.WeakValueDictionary), changed(
        "BaseSelectorEventLoop._transports", "no longer a WeakValueDictionary")
    a, b = socket.socketpair()

    async def main():
        tr, _ = await evloop_loop.connect_accepted_socket(asyncio.Protocol, a)
        with pytest.raises(RuntimeError, match="is used by transport"):
            evloop_loop.add_reader(a.fileno(), lambda: None)   # _ensure_fd_no_transport
        tr.close()
        await asyncio.sleep(0)

    evloop_loop.run_until_complete(main())
    b.close()


def test_sendfile_mode_and_hooks():
    from asyncio import constants
    assert stdlib.SENDFILE_TRY_NATIVE is constants._SendfileMode.TRY_NATIVE
    assert selector_events._SelectorSocketTransport._sendfile_compatible is \
        constants._SendfileMode.TRY_NATIVE, changed("_sendfile_compatible", "mode")
    for name in ("_make_empty_waiter", "_reset_empty_waiter"):
        assert hasattr(selector_events._SelectorSocketTransport, name), changed(
            "the socket transport's sendfile methods", f"{name} is gone")
        assert hasattr(evloop.aio.StreamTransport, name)
    assert hasattr(selector_events.BaseSelectorEventLoop, "_sendfile_native"), changed(
        "BaseSelectorEventLoop._sendfile_native", "gone")


def test_datagram_details_are_asyncios(stdlib_loop):
    # an empty datagram: sent on 3.13+, dropped before; the header counted per datagram
    got = []

    class Collect(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            got.append(data)

    async def main():
        rt, _ = await stdlib_loop.create_datagram_endpoint(Collect,
                                                           local_addr=("127.0.0.1", 0))
        st, _ = await stdlib_loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=rt.get_extra_info("sockname"))
        st.sendto(b"")
        st.sendto(b"end")
        for _ in range(200):
            if b"end" in got:
                break
            await asyncio.sleep(0.005)
        st.close()
        rt.close()

    stdlib_loop.run_until_complete(main())
    assert (b"" in got) == stdlib.DGRAM_SENDS_EMPTY, changed(
        "_SelectorDatagramTransport.sendto", f"empty datagram sent: {b'' in got}")
    # the header: a class attribute (_header_size) from 3.14, the literal 8 in sendto() on
    # 3.13, nothing before
    cls = selector_events._SelectorDatagramTransport
    header = getattr(cls, "_header_size", None)
    if header is None:
        header = 8 if "len(data) + 8" in inspect.getsource(cls.sendto) else 0
    assert header == stdlib.DGRAM_HEADER_SIZE, changed(
        "_SelectorDatagramTransport._header_size", f"{header}")
