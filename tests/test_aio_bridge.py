"""Tests for evloop.aio_bridge: greenlets and coroutines waiting on each other on one loop.

Real sockets both ways first — a greenlet server on evloop sockets with asyncio stream
clients, an ``asyncio.start_server`` server with greenlet clients on evloop sockets, and
both at once — then results and exceptions crossing the boundary, cancellation both ways
(a cancelled task kills or detaches its greenlet; a killed greenlet cancels what it
awaited), timeouts, contexts, and the errors for misuse. A module fixture checks that every
test leaves no greenlet, watcher, fd or task behind.
"""
import asyncio
import contextvars
import gc
import inspect
import io
import math
import os
import threading
import time
import traceback

import pytest

import evloop
import evloop.aio
from evloop import aio_bridge
from evloop import socket as evsocket
from evloop.aio_bridge import await_, run_in_greenlet, wrap_greenlet
from evloop.greenlet import Greenlet

from _helpers import run_py as _run_py


def run_py(code: str, timeout: float = 60) -> str:
    return _run_py(code, timeout, faulthandler=True)


# evloop's own code emits no DeprecationWarning on any supported CPython
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning:evloop")
LOCALHOST = "127.0.0.1"


def _live_greenlets():
    return {id(o): o for o in gc.get_objects()
            if isinstance(o, Greenlet) and not o.dead and bool(o)}


def _open_fds():
    return set(int(n) for n in os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """After each test: no Greenlet still running, no new active watcher on the hub's loop,
    no new fd, no new thread. (Set up before ``loop`` so it checks after the loop closed.)"""
    hub = evloop.get_hub()
    greenlets = set(_live_greenlets())
    watchers = {id(w) for w in hub.loop.watchers() if w.active}
    fds = _open_fds()
    threads = set(threading.enumerate())
    yield
    for _ in range(3):  # let kills and links that are in flight finish
        evloop.sleep(0)
    gc.collect()
    left = [g for i, g in _live_greenlets().items() if i not in greenlets]
    assert not left, f"greenlets still running: {left}"
    active = [w for w in hub.loop.watchers() if w.active and id(w) not in watchers]
    assert not active, f"watchers still active: {active}"
    new_fds = sorted(fd for fd in _open_fds() - fds if os.path.exists(f"/proc/self/fd/{fd}"))
    assert not new_fds, f"fds left open: {[os.readlink(f'/proc/self/fd/{fd}') for fd in new_fds]}"
    new_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
    assert not new_threads, f"threads left running: {new_threads}"


@pytest.fixture
def loop():
    loop = evloop.aio.new_event_loop()
    yield loop
    assert not loop.is_running()
    pending = asyncio.all_tasks(loop)
    assert not pending, f"tasks left pending: {pending}"
    loop.close()


def run(loop, coro, timeout=20.0):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def listener():
    sock = evsocket.socket()
    sock.bind((LOCALHOST, 0))
    sock.listen(128)
    return sock


def refused_port():
    """A loopback port nothing listens on (bound, never listening, then closed)."""
    with evsocket.socket() as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------
# real sockets both ways


def test_greenlet_server_on_evloop_sockets_with_asyncio_stream_clients(loop):
    n_clients, rounds = 40, 5
    srv = listener()
    port = srv.getsockname()[1]
    handlers = []
    active = [0, 0]  # now, most at once

    def handle(conn):
        active[0] += 1
        active[1] = max(active)
        try:
            with conn, conn.makefile("rwb") as f:
                for line in f:
                    evloop.sleep(0.001)  # blocking style, yields to everyone else
                    f.write(b"echo:" + line.upper())
                    f.flush()
        finally:
            active[0] -= 1

    def serve():
        while True:
            conn, _ = srv.accept()
            handlers.append(evloop.spawn(handle, conn))

    acceptor = evloop.spawn(serve)
    log = []

    async def client(i):
        reader, writer = await asyncio.open_connection(LOCALHOST, port)
        try:
            for r in range(rounds):
                writer.write(b"c%d-r%d\n" % (i, r))
                await writer.drain()
                assert await reader.readline() == b"echo:C%d-R%d\n" % (i, r)
                log.append(i)
        finally:
            writer.close()
            await writer.wait_closed()

    async def main():
        await asyncio.gather(*[client(i) for i in range(n_clients)])

    try:
        run(loop, main())
    finally:
        acceptor.kill()
        srv.close()
        evloop.joinall(handlers, timeout=10)
    assert sorted(log) == sorted(list(range(n_clients)) * rounds)
    assert len(handlers) == n_clients and all(h.successful() for h in handlers)
    # the exchanges interleaved: handlers overlapped and no client ran its rounds alone
    assert active[1] > 1
    first_done = log.index(0) if 0 in log else 0
    assert len(set(log[:rounds * 2])) > 1, log[:rounds * 2]
    assert first_done < len(log) - rounds


def test_asyncio_server_with_greenlet_clients_on_evloop_sockets(loop):
    n_clients, rounds = 40, 5
    log = []

    async def handle(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                await asyncio.sleep(0.001)
                writer.write(b"echo:" + line.upper())
                await writer.drain()
        finally:
            writer.close()

    def client(i, port):
        sock = evsocket.socket()
        try:
            sock.connect((LOCALHOST, port))
            f = sock.makefile("rwb")
            with f:
                for r in range(rounds):
                    f.write(b"g%d-r%d\n" % (i, r))
                    f.flush()
                    assert f.readline() == b"echo:G%d-R%d\n" % (i, r)
                    log.append(i)
        finally:
            sock.close()
        return i

    async def main():
        server = await asyncio.start_server(handle, LOCALHOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            greenlets = [evloop.spawn(client, i, port) for i in range(n_clients)]
            results = await asyncio.gather(*[wrap_greenlet(g) for g in greenlets])
        finally:
            server.close()
            await server.wait_closed()
        return results

    assert run(loop, main()) == list(range(n_clients))
    assert sorted(log) == sorted(list(range(n_clients)) * rounds)
    assert len(set(log[:rounds * 2])) > 1, log[:rounds * 2]


def test_both_servers_and_both_kinds_of_clients_at_once(loop):
    """Greenlet clients of the asyncio server and coroutine clients of the greenlet server,
    all on one loop, each side also waiting across the boundary on every round."""
    n, rounds = 20, 4
    srv = listener()
    gport = srv.getsockname()[1]
    handlers = []
    kinds = []

    def ghandle(conn):
        with conn:
            while True:
                data = conn.recv(100)
                if not data:
                    return
                # the greenlet handler asks a coroutine for the reply
                conn.sendall(await_(reply_later(data)))

    async def reply_later(data):
        await asyncio.sleep(0)
        return data[::-1]

    def gserve():
        while True:
            conn, _ = srv.accept()
            handlers.append(evloop.spawn(ghandle, conn))

    async def ahandle(reader, writer):
        try:
            while True:
                data = await reader.read(100)
                if not data:
                    break
                # the asyncio handler runs a blocking-style step in a greenlet
                writer.write(await run_in_greenlet(lambda d: (evloop.sleep(0), d.upper())[1],
                                                   data))
                await writer.drain()
        finally:
            writer.close()

    def greenlet_client(i, port):
        with evsocket.socket() as sock:
            sock.connect((LOCALHOST, port))
            for r in range(rounds):
                sock.sendall(b"g%d.%d" % (i, r))
                assert sock.recv(100) == b"G%d.%d" % (i, r)
                kinds.append("g")
                await_(asyncio.sleep(0))
        return "g"

    async def coroutine_client(i):
        reader, writer = await asyncio.open_connection(LOCALHOST, gport)
        try:
            for r in range(rounds):
                msg = b"c%d.%d" % (i, r)
                writer.write(msg)
                await writer.drain()
                assert await reader.read(100) == msg[::-1]
                kinds.append("c")
                await run_in_greenlet(evloop.sleep, 0)
        finally:
            writer.close()
            await writer.wait_closed()
        return "c"

    async def main():
        server = await asyncio.start_server(ahandle, LOCALHOST, 0)
        aport = server.sockets[0].getsockname()[1]
        try:
            gs = [evloop.spawn(greenlet_client, i, aport) for i in range(n)]
            return await asyncio.gather(*[wrap_greenlet(g) for g in gs],
                                        *[coroutine_client(i) for i in range(n)])
        finally:
            server.close()
            await server.wait_closed()

    acceptor = evloop.spawn(gserve)
    try:
        assert run(loop, main()) == ["g"] * n + ["c"] * n
    finally:
        acceptor.kill()
        srv.close()
        evloop.joinall(handlers, timeout=10)
    assert kinds.count("g") == kinds.count("c") == n * rounds
    # interleaved: neither kind finished all its rounds before the other started
    half = len(kinds) // 2
    assert "g" in kinds[:half] and "c" in kinds[:half]


def test_connection_errors_cross_both_ways(loop):
    port = refused_port()

    def greenlet_side():
        with pytest.raises(ConnectionRefusedError):
            await_(asyncio.open_connection(LOCALHOST, port))
        return "greenlet saw it"

    def blocking_connect():
        sock = evsocket.socket()
        try:
            sock.connect((LOCALHOST, port))
        finally:
            sock.close()

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await run_in_greenlet(blocking_connect)
        return await wrap_greenlet(evloop.spawn(greenlet_side))

    assert run(loop, main()) == "greenlet saw it"


# ------------------------------------------------------------------------------------
# await_: a greenlet waits for an awaitable


class Awaitable:
    def __init__(self, value):
        self.value = value

    def __await__(self):
        yield from asyncio.sleep(0.001).__await__()
        return self.value


def test_await_returns_results_of_coroutines_futures_and_awaitables(loop):
    async def double(x):
        await asyncio.sleep(0.001)
        return 2 * x

    def greenlet_side(fut, done_fut, task):
        return [await_(double(21)), await_(fut), await_(Awaitable("aw")), await_(done_fut),
                await_(task), await_(double(1), loop=loop)]

    async def main():
        fut = loop.create_future()
        done_fut = loop.create_future()
        done_fut.set_result("already")
        task = asyncio.ensure_future(double(5))
        g = evloop.spawn(greenlet_side, fut, done_fut, task)
        await asyncio.sleep(0.01)
        fut.set_result("fut")
        return await wrap_greenlet(g)

    assert run(loop, main()) == [42, "fut", "aw", "already", 10, 2]


def test_many_greenlets_await_at_once(loop):
    async def slow(i):
        await asyncio.sleep(0.001 * (i % 7))
        return i

    async def main():
        gs = [evloop.spawn(lambda i=i: await_(slow(i)) + 1000) for i in range(300)]
        return await asyncio.gather(*[wrap_greenlet(g) for g in gs])

    assert run(loop, main()) == [i + 1000 for i in range(300)]


def test_await_raises_the_coroutines_exception_with_its_traceback(loop):
    async def failing_coroutine():
        await asyncio.sleep(0)
        raise KeyError("from the coroutine")

    def greenlet_side():
        try:
            await_(failing_coroutine())
        except KeyError as exc:
            names = [f.name for f in traceback.extract_tb(exc.__traceback__)]
            return exc.args[0], "failing_coroutine" in names, "greenlet_side" in names
        return None

    async def main():
        return await wrap_greenlet(evloop.spawn(greenlet_side))

    assert run(loop, main()) == ("from the coroutine", True, True)


def test_await_of_a_future_cancelled_by_asyncio_raises_cancelled_error(loop):
    def greenlet_side(task):
        try:
            await_(task)
        except asyncio.CancelledError:
            return "cancelled"
        return "not cancelled"

    async def main():
        task = asyncio.ensure_future(asyncio.sleep(10))
        g = evloop.spawn(greenlet_side, task)
        await asyncio.sleep(0.01)
        task.cancel()
        return await wrap_greenlet(g)

    assert run(loop, main()) == "cancelled"


def test_killing_a_greenlet_that_awaits_cancels_its_task(loop):
    seen = []

    async def long_coroutine():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("coroutine cancelled")
            raise

    def waiting():
        try:
            await_(long_coroutine())
        except evloop.GreenletExit:
            seen.append("greenlet killed")
            raise

    async def main():
        before = asyncio.all_tasks()
        g = evloop.spawn(waiting)
        await asyncio.sleep(0.01)
        assert len(asyncio.all_tasks() - before) == 1  # the one await_ made
        killer = evloop.spawn(g.kill)  # blocks (in its greenlet) until g is dead
        await wrap_greenlet(killer)
        assert g.dead and isinstance(g.value, evloop.GreenletExit)
        for _ in range(5):
            await asyncio.sleep(0)
        return asyncio.all_tasks() - before

    assert run(loop, main()) == set()
    assert seen == ["greenlet killed", "coroutine cancelled"]


def test_an_exception_thrown_into_the_waiting_greenlet_cancels_a_passed_future(loop):
    async def main():
        fut = loop.create_future()
        shielded = loop.create_future()

        def waiting(f):
            try:
                await_(f)
            except ZeroDivisionError:
                return "thrown"

        g1 = evloop.spawn(waiting, fut)
        g2 = evloop.spawn(waiting, asyncio.shield(shielded))
        await asyncio.sleep(0.01)
        g1.kill(ZeroDivisionError, block=False)
        g2.kill(ZeroDivisionError, block=False)
        assert await wrap_greenlet(g1) == "thrown"
        assert await wrap_greenlet(g2) == "thrown"
        assert fut.cancelled()  # as asyncio.wait_for: the abandoned future is cancelled
        assert not shielded.done()  # asyncio.shield() keeps it
        shielded.set_result("still usable")
        return await shielded

    assert run(loop, main()) == "still usable"


def test_a_wake_up_after_the_wait_ended_does_not_resume_the_greenlet(loop):
    """The future completes, and before its done callback runs (next batch) an exception
    is thrown into the waiting greenlet, which then sleeps: the late wake-up must not cut
    that sleep short."""
    async def main():
        fut = loop.create_future()

        def waiting():
            try:
                await_(fut)
            except KeyError:
                pass
            t0 = time.monotonic()
            evloop.sleep(0.1)
            return time.monotonic() - t0

        g = evloop.spawn(waiting)
        await asyncio.sleep(0.01)
        fut.set_result("done")  # queues the done callback (await_'s wake-up)
        g.throw(KeyError)  # switches into g now: it leaves await_ and sleeps
        return await wrap_greenlet(g)

    assert run(loop, main()) >= 0.09


def test_await_timeout_cancels_the_task(loop):
    seen = []

    async def long_coroutine():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    def greenlet_side():
        t0 = time.monotonic()
        with pytest.raises(evloop.Timeout):
            await_(long_coroutine(), timeout=0.05)
        elapsed = time.monotonic() - t0
        with evloop.Timeout(0.02, False):  # a greenlet-level timeout is a kill too
            await_(long_coroutine())
        done = loop.create_future()
        done.set_result("done")
        return elapsed, await_(done, timeout=0), await_(asyncio.sleep(0, "quick"), timeout=5)

    async def main():
        result = await wrap_greenlet(evloop.spawn(greenlet_side))
        await asyncio.sleep(0)  # the cancellation runs in the next batch
        return result

    elapsed, done, quick = run(loop, main())
    assert 0.045 <= elapsed < 5
    assert (done, quick, seen) == ("done", "quick", ["cancelled", "cancelled"])


def test_greenlet_first_program_runs_the_loop_in_a_greenlet(loop):
    """The main greenlet is plain blocking code; the asyncio loop runs in a greenlet of
    its own, and the main greenlet awaits coroutines on it."""
    runner = evloop.spawn(loop.run_forever)
    evloop.sleep(0)  # the runner starts: the loop is running
    try:
        assert asyncio._get_running_loop() is loop
        assert await_(asyncio.sleep(0.001, "from main")) == "from main"
        a, b = evsocket.socketpair()
        with a, b:
            async def read_with_asyncio():
                return await loop.sock_recv(b, 10)

            task = loop.create_task(read_with_asyncio())
            a.sendall(b"ping")  # blocking-style send in the main greenlet
            assert await_(task, timeout=5) == b"ping"
    finally:
        loop.stop()
        runner.join(5)
    assert runner.successful() and not loop.is_running()


def test_await_on_a_loop_that_is_not_running_yet(loop):
    """An explicit loop of this thread may start running after the greenlet waits."""
    g = evloop.spawn(lambda: await_(asyncio.sleep(0.001, "later"), loop=loop))
    evloop.sleep(0.01)  # g starts and waits; the loop is not running
    assert not g.ready()
    run(loop, asyncio.sleep(0.01))
    assert g.get(timeout=5) == "later"


def test_await_on_a_stopped_loop_from_the_main_greenlet_ends_with_loop_exit():
    out = run_py("""
        import asyncio, evloop, evloop.aio
        loop = evloop.aio.new_event_loop()
        try:
            evloop.aio.await_(asyncio.sleep(0), loop=loop)
        except evloop.LoopExit as exc:
            print("LoopExit", "Task" in str(exc))
        loop.run_until_complete(asyncio.sleep(0))  # the cancelled task finishes
        print(asyncio.all_tasks(loop))
        loop.close()
    """)
    assert out.split("\n")[:2] == ["LoopExit True", "set()"]


# ------------------------------------------------------------------------------------
# wrap_greenlet / run_in_greenlet: a coroutine waits for a greenlet


def test_wrap_greenlet_results_exceptions_and_kills(loop):
    hub = evloop.get_hub()
    stream, hub.exception_stream = hub.exception_stream, io.StringIO()

    def fail():
        evloop.sleep(0.001)
        raise ValueError("from the greenlet")

    async def main():
        out = [await wrap_greenlet(evloop.spawn(lambda: evloop.sleep(0.001) or "value"))]
        with pytest.raises(ValueError, match="from the greenlet"):
            await wrap_greenlet(evloop.spawn(fail))
        finished = evloop.spawn(lambda: "early")
        await asyncio.sleep(0.01)
        assert finished.dead
        out.append(await wrap_greenlet(finished))  # already finished
        sleeper = evloop.spawn(evloop.sleep, 10)
        fut = wrap_greenlet(sleeper)
        await asyncio.sleep(0.01)
        sleeper.kill(block=False)
        with pytest.raises(asyncio.CancelledError):
            await fut  # killed with GreenletExit: cancelled, like a cancelled task
        assert fut.cancelled() and isinstance(sleeper.value, evloop.GreenletExit)
        other = evloop.spawn(evloop.sleep, 10)
        fut = wrap_greenlet(other)
        other.kill(OSError("killed with an error"), block=False)
        with pytest.raises(OSError, match="killed with an error"):
            await fut
        never_started = Greenlet(lambda: None)
        fut = wrap_greenlet(never_started)
        never_started.kill()
        with pytest.raises(asyncio.CancelledError):
            await fut
        return out

    try:
        assert run(loop, main()) == ["value", "early"]
    finally:
        printed, hub.exception_stream = hub.exception_stream.getvalue(), stream
    # a plain greenlet's failure is still the hub's to report (gevent's behaviour)
    assert "from the greenlet" in printed and "killed with an error" in printed


def test_cancelling_the_awaiting_task_kills_the_greenlet_blocked_on_a_socket(loop):
    a, b = evsocket.socketpair()
    unwound = []

    def blocked_reader():
        try:
            return a.recv(10)
        finally:
            unwound.append("finally ran")

    async def main():
        g = evloop.spawn(blocked_reader)
        task = asyncio.ensure_future(wrap_greenlet(g))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # wrap_greenlet kills without waiting: GreenletExit is on its way
        while not g.dead:
            await asyncio.sleep(0.001)
        return g.value

    try:
        value = run(loop, main())
    finally:
        a.close()
        b.close()
    assert isinstance(value, evloop.GreenletExit) and unwound == ["finally ran"]


def test_cancel_with_detach_leaves_the_greenlet_running(loop):
    a, b = evsocket.socketpair()

    async def main():
        g = evloop.spawn(a.recv, 10)
        task = asyncio.ensure_future(wrap_greenlet(g, on_cancel="detach"))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)
        assert not g.ready()  # still blocked in recv
        b.sendall(b"later")
        return await wrap_greenlet(g)

    try:
        assert run(loop, main()) == b"later"
    finally:
        a.close()
        b.close()


def test_run_in_greenlet_results_exceptions_and_no_hub_report(loop):
    hub = evloop.get_hub()
    stream, hub.exception_stream = hub.exception_stream, io.StringIO()

    def blocking(x, *, y):
        evloop.sleep(0.001)
        return x + y

    def failing():
        evloop.sleep(0.001)
        raise LookupError("blocking code failed")

    async def main():
        assert await run_in_greenlet(blocking, 1, y=2) == 3
        with pytest.raises(LookupError, match="blocking code failed"):
            await evloop.aio.run_in_greenlet(failing)
        with pytest.raises(TypeError):
            await run_in_greenlet("not callable")
        return "ok"

    try:
        assert run(loop, main()) == "ok"
    finally:
        printed, hub.exception_stream = hub.exception_stream.getvalue(), stream
    assert printed == ""  # the coroutine got the exception; the hub did not print it too


def test_cancelling_run_in_greenlet_waits_for_the_greenlet_to_unwind(loop):
    a, b = evsocket.socketpair()
    unwound = []

    def blocked_reader():
        try:
            return a.recv(10)
        finally:
            evloop.sleep(0.01)  # cleanup that blocks, as closing a connection may
            unwound.append("finally ran")

    async def main():
        task = asyncio.ensure_future(run_in_greenlet(blocked_reader))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return list(unwound)  # at the moment CancelledError arrived

    try:
        assert run(loop, main()) == ["finally ran"]
    finally:
        a.close()
        b.close()


def test_cancel_crosses_coroutine_greenlet_coroutine(loop):
    """A task runs blocking code in a greenlet that awaits another coroutine: cancelling
    the outer task kills the greenlet, which cancels the inner task."""
    seen = []

    async def inner():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("inner cancelled")
            raise

    def middle():
        try:
            return await_(inner())
        except evloop.GreenletExit:
            seen.append("greenlet killed")
            raise

    async def main():
        outer = asyncio.ensure_future(run_in_greenlet(middle))
        await asyncio.sleep(0.01)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        seen.append("outer cancelled")
        for _ in range(5):
            await asyncio.sleep(0)

    run(loop, main())
    # the inner task's cancellation may run before or after the outer task resumes
    assert seen[0] == "greenlet killed"
    assert sorted(seen[1:]) == ["inner cancelled", "outer cancelled"]


def test_killing_a_greenlet_waiting_on_a_stream_leaves_the_stream_usable(loop):
    """A greenlet blocked on an asyncio stream read is killed, and another times out: both
    reads are cancelled, and the stream then reads normally."""
    async def main():
        got = asyncio.Queue()

        async def handle(reader, writer):
            await got.put((reader, writer))

        server = await asyncio.start_server(handle, LOCALHOST, 0)
        port = server.sockets[0].getsockname()[1]
        creader, cwriter = await asyncio.open_connection(LOCALHOST, port)
        sreader, swriter = await got.get()
        try:
            g = evloop.spawn(await_, creader.readline())
            await asyncio.sleep(0.01)
            g.kill(block=False)
            with pytest.raises(asyncio.CancelledError):
                await wrap_greenlet(g)
            t = evloop.spawn(lambda: await_(creader.readline(), timeout=0.02))
            with pytest.raises(evloop.Timeout):
                await wrap_greenlet(t)
            swriter.write(b"after the kill\n")
            reader_g = evloop.spawn(lambda: await_(creader.readline()))
            return await wrap_greenlet(reader_g)
        finally:
            for w in (cwriter, swriter):
                w.close()
            server.close()
            await server.wait_closed()

    assert run(loop, main()) == b"after the kill\n"


# ------------------------------------------------------------------------------------
# contexts


def test_contexts_seen_across_the_boundary(loop):
    var = contextvars.ContextVar("var", default="default")

    async def read_and_set():
        seen = var.get()
        var.set("set by the task")
        return seen

    def greenlet_side():
        var.set("greenlet")
        seen_by_task = await_(read_and_set())
        # a greenlet sees the running loop (per thread), and is no task
        assert asyncio.get_running_loop() is loop and asyncio.current_task() is None
        return seen_by_task, var.get()  # the task ran in a copy: its set() stays there

    def in_run_in_greenlet():
        seen = var.get()
        var.set("set by the greenlet")
        return seen

    async def main():
        var.set("coroutine")
        # run_in_greenlet: a copy of the coroutine's context, as asyncio.to_thread
        assert await run_in_greenlet(in_run_in_greenlet) == "coroutine"
        assert var.get() == "coroutine"
        # evloop.spawn: a greenlet starts in an empty context (greenlet's rule)
        spawned = await wrap_greenlet(evloop.spawn(var.get))
        given = Greenlet(var.get)  # unless given a context before it starts
        given.gr_context = contextvars.copy_context()
        given.start()
        assert await wrap_greenlet(given) == "coroutine"
        # await_: the task runs in a copy of the greenlet's context
        crossed = await wrap_greenlet(evloop.spawn(greenlet_side))
        return spawned, crossed

    assert run(loop, main()) == ("default", ("greenlet", "greenlet"))


# ------------------------------------------------------------------------------------
# misuse


def test_await_from_the_hub_is_refused_and_closes_the_coroutine(loop):
    async def main():
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="hub greenlet.*use `await`"):
            await_(coro)
        return inspect.getcoroutinestate(coro)

    assert run(loop, main()) == inspect.CORO_CLOSED


def test_await_without_a_running_loop_is_refused(loop):
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="none is running"):
        await_(coro)  # from the main greenlet, no loop running
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED

    def in_a_greenlet():
        with pytest.raises(RuntimeError, match="none is running"):
            await_(asyncio.sleep(0))
        return "refused"

    assert evloop.spawn(in_a_greenlet).get(timeout=5) == "refused"


def test_await_bad_arguments(loop):
    for bad in (42, None, lambda: 1, "text"):
        with pytest.raises(TypeError, match="coroutine, an asyncio Future or an awaitable"):
            await_(bad)
    other = asyncio.new_event_loop()  # a stdlib loop
    try:
        with pytest.raises(TypeError, match="evloop.aio event loop"):
            await_(asyncio.sleep(0), loop=other)
    finally:
        other.close()
    closed = evloop.aio.new_event_loop()
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        await_(asyncio.sleep(0), loop=closed)
    for bad_timeout, exc in (("1", TypeError), (math.nan, ValueError)):
        coro = asyncio.sleep(0)
        with pytest.raises(exc):
            await_(coro, loop=loop, timeout=bad_timeout)
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_await_on_a_loop_running_in_another_thread_is_refused():
    started = threading.Event()
    box = {}

    def thread_main():
        loop = box["loop"] = evloop.aio.new_event_loop()
        loop.call_soon(started.set)
        loop.run_forever()
        loop.close()
        evloop.get_hub().destroy()

    t = threading.Thread(target=thread_main)
    t.start()
    try:
        assert started.wait(10)
        with pytest.raises(RuntimeError, match="another thread"):
            await_(asyncio.sleep(0), loop=box["loop"])
    finally:
        box["loop"].call_soon_threadsafe(box["loop"].stop)
        t.join(10)
    assert not t.is_alive()


def test_wrap_greenlet_and_run_in_greenlet_bad_arguments(loop):
    g = evloop.spawn(lambda: None)
    with pytest.raises(RuntimeError, match="no running event loop"):
        wrap_greenlet(g)
    other = asyncio.new_event_loop()  # a stdlib loop: the hub would not run under it
    try:
        with pytest.raises(TypeError, match="evloop.aio event loop"):
            wrap_greenlet(g, loop=other)
    finally:
        other.close()
    with pytest.raises(ValueError, match="on_cancel"):
        wrap_greenlet(g, loop=loop, on_cancel="ignore")
    with pytest.raises(TypeError, match="evloop.Greenlet"):
        wrap_greenlet(evloop.spawn_raw(lambda: None), loop=loop)
    closed = evloop.aio.new_event_loop()
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        wrap_greenlet(g, loop=closed)
    g.join()

    box = {}
    t = threading.Thread(target=lambda: box.setdefault("g", Greenlet(lambda: None)))
    t.start()
    t.join()
    with pytest.raises(ValueError, match="another thread's hub"):
        wrap_greenlet(box.pop("g"), loop=loop)

    async def on_stdlib_loop():
        with pytest.raises(RuntimeError, match="needs an evloop.aio event loop"):
            await run_in_greenlet(print)
        return "refused"

    assert asyncio.run(on_stdlib_loop()) == "refused"
    evloop.sleep(0)  # the spawn_raw greenlet ran


def test_module_names():
    assert aio_bridge.__all__ == ["await_", "wrap_greenlet", "run_in_greenlet"]
    for name in aio_bridge.__all__:
        assert getattr(evloop.aio, name) is getattr(aio_bridge, name)
        assert name in evloop.aio.__all__
