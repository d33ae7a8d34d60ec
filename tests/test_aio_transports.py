"""evloop.aio's own transports (StreamTransport, DatagramTransport, ReadPipeTransport,
WritePipeTransport: csrc/evloop_transport.c).

Each test runs on a Loop with its own transports switched on (the loop's
``_own_transports``, which EVLOOP_AIO_TRANSPORTS sets for new loops), against raw sockets
or a second transport, and checks what asyncio documents: the protocol calls and their
order, flow control, reading paused and resumed, write_eof, close and abort, BufferedProtocol,
writelines, extra info, the errors (their types and messages, asyncio's), and the
exception-handler contexts.
"""
import asyncio
import gc
import os
import socket
import sys
import warnings
from asyncio import trsock

import pytest

import evloop.aio


@pytest.fixture
def loop():
    loop = evloop.aio.new_event_loop()
    loop._own_transports = True
    yield loop
    if loop.is_running():
        loop.stop()
    loop.close()


def run(loop, coro, timeout=20.0):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


class Recorder(asyncio.Protocol):
    """Records every protocol call; done resolves at connection_lost."""

    def __init__(self, loop, eof_keep_open=False):
        self.calls = []
        self.data = bytearray()
        self.done = loop.create_future()
        self.eof = loop.create_future()
        self.eof_keep_open = eof_keep_open
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.calls.append("made")

    def data_received(self, data):
        assert type(data) is bytes
        self.data += data
        if not self.calls or self.calls[-1] != "data":
            self.calls.append("data")

    def eof_received(self):
        self.calls.append("eof")
        if not self.eof.done():
            self.eof.set_result(None)
        return self.eof_keep_open

    def pause_writing(self):
        self.calls.append("pause")

    def resume_writing(self):
        self.calls.append("resume")

    def connection_lost(self, exc):
        self.calls.append(("lost", exc))
        if not self.done.done():
            self.done.set_result(exc)


async def accepted_pair(loop, proto_factory):
    """(transport, protocol, raw peer socket): a transport over one end of a TCP pair."""
    lsock = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(lsock.getsockname())
    conn, _ = lsock.accept()
    lsock.close()
    transport, protocol = await loop.connect_accepted_socket(proto_factory, conn)
    peer.setblocking(False)
    return transport, protocol, peer


async def recv_until_eof(loop, sock):
    chunks = []
    while True:
        data = await loop.sock_recv(sock, 1 << 20)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def test_is_an_asyncio_transport_with_extra_info(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        await asyncio.sleep(0)
        assert type(tr) is evloop.aio.StreamTransport
        assert isinstance(tr, asyncio.Transport)
        assert isinstance(tr, asyncio.ReadTransport) and isinstance(tr, asyncio.WriteTransport)
        sock = tr.get_extra_info("socket")
        assert isinstance(sock, trsock.TransportSocket)
        assert sock.fileno() == tr._sock_fd
        assert tr.get_extra_info("sockname") == sock.getsockname()
        assert tr.get_extra_info("peername") == peer.getsockname()
        assert tr.get_extra_info("nothing") is None
        assert tr.get_extra_info("nothing", 42) == 42
        assert tr.get_extra_info(name="nothing", default=7) == 7
        assert tr._extra["peername"] == peer.getsockname()   # asyncio's attribute too
        assert tr.get_protocol() is proto
        assert proto.calls == ["made"]
        assert tr.can_write_eof() is True
        assert tr.is_reading() and not tr.is_closing()
        assert "StreamTransport" in repr(tr) and "read=polling" in repr(tr)
        tr.close()
        assert tr.is_closing() and not tr.is_reading()
        await proto.done
        assert tr.get_protocol() is None and tr._sock is None
        assert "closed" in repr(tr)
        peer.close()
        return proto.calls

    assert run(loop, main()) == ["made", ("lost", None)]


def test_bad_input_raises_what_asyncio_raises(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        with pytest.raises(TypeError,
                           match=r"^data argument must be a bytes-like object, not 'str'$"):
            tr.write("text")
        with pytest.raises(TypeError, match="not 'int'"):
            tr.write(1)
        with pytest.raises(TypeError):
            tr.writelines([b"ok", "text"])
        with pytest.raises(TypeError):
            tr.writelines(None)
        with pytest.raises(ValueError, match=r"high \(1\) must be >= low \(2\) must be >= 0"):
            tr.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(low=-1)
        with pytest.raises(TypeError):
            tr.set_write_buffer_limits(high="big")
        with pytest.raises(TypeError):
            tr.get_extra_info()
        tr.write(b"")                      # nothing to do
        assert tr.get_write_buffer_size() == 0
        tr.write_eof()
        with pytest.raises(RuntimeError, match=r"^Cannot call write\(\) after write_eof\(\)$"):
            tr.write(b"x")
        with pytest.raises(RuntimeError, match=r"writelines\(\) after write_eof\(\)"):
            tr.writelines([b"x"])
        assert await recv_until_eof(loop, peer) == b""
        tr.close()
        await proto.done
        peer.close()

    run(loop, main())


def test_echo_large_messages_and_mutable_buffers(loop):
    big = bytes(range(256)) * 4096         # 1 MiB

    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        await loop.sock_sendall(peer, big)
        while len(proto.data) < len(big):
            await asyncio.sleep(0.005)
        assert bytes(proto.data) == big
        # write() of a bytearray that changes right after: what was queued is a copy
        buf = bytearray(big)
        tr.write(buf)
        tr.write(memoryview(big)[:10])
        buf[:] = b"\0" * len(buf)
        tr.close()                        # flushes the queue, then connection_lost
        got = await recv_until_eof(loop, peer)
        assert got == big + big[:10]
        assert await proto.done is None
        peer.close()

    run(loop, main())


def test_flow_control_pause_and_resume_writing(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        tr.set_write_buffer_limits(high=4096)
        assert tr.get_write_buffer_limits() == (1024, 4096)
        tr.set_write_buffer_limits(low=100)
        assert tr.get_write_buffer_limits() == (100, 400)
        tr.set_write_buffer_limits(high=8192, low=1024)
        # the peer does not read: the kernel buffers fill, then the transport's
        chunk = b"x" * 65536
        while "pause" not in proto.calls:
            tr.write(chunk)
        size = tr.get_write_buffer_size()
        assert size > 8192
        assert proto.calls.count("pause") == 1
        tr.write(chunk)                   # still above: pause_writing is not repeated
        assert proto.calls.count("pause") == 1
        # drain: resume_writing once the queue is at or below low
        total = 0
        while "resume" not in proto.calls:
            data = await loop.sock_recv(peer, 1 << 20)
            total += len(data)
        assert tr.get_write_buffer_size() <= 1024
        tr.close()
        total += len(await recv_until_eof(loop, peer))
        await proto.done
        peer.close()
        return proto.calls

    calls = run(loop, main())
    assert calls[:3] == ["made", "pause", "resume"]


def test_set_limits_below_the_queue_pauses_at_once(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        chunk = b"y" * 65536
        while tr.get_write_buffer_size() == 0:
            tr.write(chunk)
        assert "pause" not in proto.calls or tr.get_write_buffer_size() > 65536
        tr.set_write_buffer_limits(high=0)
        assert "pause" in proto.calls
        tr.abort()
        await proto.done
        peer.close()

    run(loop, main())


def test_pause_and_resume_reading(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        await asyncio.sleep(0)
        tr.pause_reading()
        assert not tr.is_reading()
        tr.pause_reading()                # idempotent
        peer.send(b"while paused")
        await asyncio.sleep(0.05)
        assert proto.data == b""
        tr.resume_reading()
        assert tr.is_reading()
        tr.resume_reading()
        while proto.data != b"while paused":
            await asyncio.sleep(0.005)
        tr.close()
        tr.resume_reading()               # closing: no effect, no error
        assert not tr.is_reading()
        await proto.done
        peer.close()

    run(loop, main())


def test_eof_closes_unless_eof_received_keeps_it_open(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        peer.shutdown(socket.SHUT_WR)
        assert await proto.done is None
        assert proto.calls == ["made", "eof", ("lost", None)]
        peer.close()

        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop, eof_keep_open=True))
        peer.send(b"question")
        peer.shutdown(socket.SHUT_WR)
        await proto.eof
        assert not tr.is_closing()
        tr.write(b"answer")               # the write side is still open
        tr.write_eof()
        assert await recv_until_eof(loop, peer) == b"answer"
        tr.close()
        await proto.done
        peer.close()
        return proto.calls

    assert run(loop, main()) == ["made", "data", "eof", ("lost", None)]


def test_write_eof_waits_for_the_queue(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        big = b"z" * (4 << 20)
        tr.write(big)
        assert tr.get_write_buffer_size() > 0
        tr.write_eof()
        tr.write_eof()                    # once only
        assert await recv_until_eof(loop, peer) == big
        tr.close()
        await proto.done
        peer.close()

    run(loop, main())


def test_abort_drops_the_queue(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        tr.write(b"q" * (8 << 20))
        assert tr.get_write_buffer_size() > 0
        tr.abort()
        assert tr.is_closing() and tr.get_write_buffer_size() == 0
        assert await proto.done is None
        got = await recv_until_eof(loop, peer)
        assert len(got) < 8 << 20
        # writes after the connection was lost are dropped (asyncio logs past 5)
        for _ in range(3):
            tr.write(b"late")
        peer.close()

    run(loop, main())


def test_writelines_is_one_send_in_order(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        parts = [b"a", bytearray(b"bc"), memoryview(b"def"), b"", b"g" * 100000]
        tr.writelines(parts)
        many = [bytes([65 + i % 26]) * 10 for i in range(200)]  # more than one sendmsg
        tr.writelines(many)
        tr.writelines(iter([b"tail"]))    # any iterable, as WriteTransport.writelines
        tr.writelines([])
        tr.close()
        got = await recv_until_eof(loop, peer)
        assert got == b"".join(bytes(p) for p in parts) + b"".join(many) + b"tail"
        await proto.done
        peer.close()

    run(loop, main())


class Buffered(asyncio.BufferedProtocol):
    def __init__(self, loop, size=65536, empty=False):
        self.buf = bytearray(size)
        self.got = bytearray()
        self.empty = empty
        self.done = loop.create_future()
        self.calls = 0

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        assert sizehint == -1
        return bytearray() if self.empty else self.buf

    def buffer_updated(self, nbytes):
        self.calls += 1
        self.got += self.buf[:nbytes]

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.done.set_result(exc)


def test_buffered_protocol_receives_into_its_buffer(loop):
    big = bytes(range(251)) * 4177          # ~1 MiB

    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Buffered(loop))
        await loop.sock_sendall(peer, big)
        peer.shutdown(socket.SHUT_WR)
        assert await proto.done is None
        assert bytes(proto.got) == big
        assert proto.calls >= len(big) // 65536
        peer.close()

    run(loop, main())


def test_buffered_protocol_empty_buffer_is_a_fatal_error(loop):
    errors = []
    loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))

    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Buffered(loop, empty=True))
        peer.send(b"data")
        exc = await proto.done
        peer.close()
        return tr, proto, exc

    tr, proto, exc = run(loop, main())
    assert isinstance(exc, RuntimeError) and "empty buffer" in str(exc)
    assert len(errors) == 1
    ctx = errors[0]
    assert ctx["message"] == "Fatal error: protocol.get_buffer() call failed."
    assert ctx["exception"] is exc and ctx["transport"] is tr and ctx["protocol"] is proto


def test_set_protocol_switches_between_plain_and_buffered(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        buffered = Buffered(loop)
        tr.set_protocol(buffered)
        assert tr.get_protocol() is buffered
        peer.send(b"to the buffer")
        while buffered.got != b"to the buffer":
            await asyncio.sleep(0.005)
        assert proto.data == b""
        tr.close()
        await buffered.done
        peer.close()

    run(loop, main())


def test_protocol_errors_go_to_the_exception_handler_and_connection_lost(loop):
    errors = []
    loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))

    class Boom(Recorder):
        def data_received(self, data):
            raise ZeroDivisionError("boom")

    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Boom(loop))
        peer.send(b"x")
        exc = await proto.done
        peer.close()
        return tr, proto, exc

    tr, proto, exc = run(loop, main())
    assert isinstance(exc, ZeroDivisionError)
    assert [c["message"] for c in errors] == \
        ["Fatal error: protocol.data_received() call failed."]
    assert errors[0]["exception"] is exc and errors[0]["transport"] is tr
    assert errors[0]["protocol"] is proto


def test_pause_writing_errors_are_reported_not_raised(loop):
    errors = []
    loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))

    class BadPause(Recorder):
        def pause_writing(self):
            raise ValueError("no pause")

    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: BadPause(loop))
        tr.set_write_buffer_limits(high=0)
        while not errors:
            tr.write(b"p" * 65536)
        assert errors[0]["message"] == "protocol.pause_writing() failed"
        assert isinstance(errors[0]["exception"], ValueError)
        tr.abort()
        await proto.done
        peer.close()

    run(loop, main())


def test_peer_reset_is_connection_lost_without_the_exception_handler(loop):
    errors = []
    loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))

    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        await asyncio.sleep(0)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        peer.close()
        return await proto.done

    exc = run(loop, main())
    assert isinstance(exc, ConnectionResetError)
    assert errors == []                      # an OSError is only logged in debug mode


def test_write_error_is_connection_lost(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        tr.pause_reading()                    # only the write can see the reset
        await asyncio.sleep(0)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        peer.close()
        await asyncio.sleep(0.05)
        for _ in range(10):
            tr.write(b"w" * 1000)
            await asyncio.sleep(0.01)
        return await proto.done

    exc = run(loop, main())
    assert isinstance(exc, (BrokenPipeError, ConnectionResetError))


def test_create_connection_and_server_unix(loop, tmp_path):
    path = str(tmp_path / "s")

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    async def main():
        server = await loop.create_unix_server(Echo, path)
        tr, proto = await loop.create_unix_connection(lambda: Recorder(loop), path)
        assert type(tr) is evloop.aio.StreamTransport
        assert tr.get_extra_info("peername") == path
        tr.write(b"over unix")
        while proto.data != b"over unix":
            await asyncio.sleep(0.005)
        tr.close()
        await proto.done
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_streams_over_tcp(loop):
    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert type(writer.transport) is evloop.aio.StreamTransport
        # TCP_NODELAY, as asyncio's transports set it on IPPROTO_TCP sockets
        sock = writer.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        payload = b"s" * (3 << 20)
        writer.write(payload)
        got = await reader.readexactly(len(payload))
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return got == payload

    assert run(loop, main())


@pytest.mark.skipif(sys.version_info < (3, 13),
                    reason="Server.close_clients/abort_clients are new in CPython 3.13")
def test_server_close_clients_and_abort_clients(loop):
    async def main():
        protos = []

        def factory():
            protos.append(Recorder(loop))
            return protos[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        a = socket.create_connection(addr)
        b = socket.create_connection(addr)
        while len(protos) < 2 or any(p.transport is None for p in protos):
            await asyncio.sleep(0.005)
        protos[0].transport.write(b"x" * (8 << 20))     # queued: close() flushes it
        server.close()
        server.abort_clients()
        for p in protos:
            assert await p.done is None
        await server.wait_closed()
        a.close()
        b.close()

        server = await loop.create_server(factory, "127.0.0.1", 0)
        c = socket.create_connection(server.sockets[0].getsockname())
        while len(protos) < 3 or protos[2].transport is None:
            await asyncio.sleep(0.005)
        server.close()
        server.close_clients()
        assert await protos[2].done is None
        await server.wait_closed()
        c.close()

    run(loop, main())


def test_unclosed_transport_warns(loop):
    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        await asyncio.sleep(0)
        peer.close()
        return tr

    tr = run(loop, main())
    tr._force_close(None)   # drop the reader; connection_lost stays queued
    loop._ready            # (the queue is C; this is a snapshot)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = tr
        del tr
        loop.close()       # drops the queued connection_lost: the last reference goes
        del ref
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) and "unclosed transport" in
               str(w.message) for w in caught), caught


# ------------------------------------------------------------------------------------
# datagram transports


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.got = asyncio.Queue()
        self.errors = []
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        assert type(data) is bytes
        self.got.put_nowait((data, addr))

    def error_received(self, exc):
        self.errors.append(exc)
        self.got.put_nowait(("error", exc))

    def connection_lost(self, exc):
        self.done.set_result(exc)


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


def test_udp_endpoints_send_receive_and_addresses(loop):
    async def main():
        st, sp = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        assert type(st) is evloop.aio.DatagramTransport
        assert isinstance(st, asyncio.DatagramTransport) and isinstance(st, asyncio.Transport)
        addr = st.get_extra_info("sockname")
        assert isinstance(st.get_extra_info("socket"), trsock.TransportSocket)
        assert st.get_extra_info("peername") is None
        # unconnected: each sendto names its destination; the source comes back as a tuple
        ut, up = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                     local_addr=("127.0.0.1", 0))
        mine = addr                           # echoed: the source is the server
        for payload in (b"one", bytearray(b"two"), memoryview(b"three")):
            ut.sendto(payload, addr)
            assert await up.got.get() == (bytes(payload), mine)
        ut.sendto(b"by name", ("localhost", addr[1]))   # converted by the socket module
        assert await up.got.get() == (b"by name", mine)
        big = b"\x01" * 60000
        ut.sendto(big, addr)
        assert await up.got.get() == (big, mine)
        with pytest.raises(TypeError, match="data argument must be a bytes-like object, "
                                            "not 'str'"):
            ut.sendto("text", addr)
        # connected: addr may be omitted, or must be the peer's
        ct, cp = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                     remote_addr=addr)
        assert ct.get_extra_info("peername") == addr
        ct.sendto(b"connected")
        assert (await cp.got.get())[0] == b"connected"
        ct.sendto(b"same", addr)
        assert (await cp.got.get())[0] == b"same"
        with pytest.raises(ValueError, match="Invalid address: must be None or"):
            ct.sendto(b"x", ("127.0.0.1", 9))
        assert ct.get_write_buffer_size() == 0
        for t in (st, ut, ct):
            t.close()
            assert t.is_closing()
        assert await up.done is None and await cp.done is None

    run(loop, main())


def test_udp_empty_datagram_as_the_running_cpython(loop):
    async def main():
        st, sp = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                     local_addr=("127.0.0.1", 0))
        ct, cp = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), remote_addr=st.get_extra_info("sockname"))
        ct.sendto(b"")
        ct.sendto(b"after")
        first = (await sp.got.get())[0]
        st.close()
        ct.close()
        return first

    # asyncio 3.10-3.12 drop an empty datagram, 3.13+ send it
    assert run(loop, main()) == (b"" if sys.version_info >= (3, 13) else b"after")


def test_udp_refused_goes_to_error_received(loop):
    async def main():
        dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dead.bind(("127.0.0.1", 0))
        addr = dead.getsockname()
        dead.close()                          # nothing listens there: ICMP port unreachable
        ct, cp = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                     remote_addr=addr)
        for _ in range(50):
            ct.sendto(b"anyone?")
            await asyncio.sleep(0.01)
            if cp.errors:
                break
        assert cp.errors and isinstance(cp.errors[0], ConnectionRefusedError)
        assert not ct.is_closing()            # error_received does not close
        ct.close()
        assert await cp.done is None

    run(loop, main())


def test_unix_datagram_paths(loop, tmp_path):
    async def main():
        spath, cpath = str(tmp_path / "srv"), str(tmp_path / "cli")
        ssock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ssock.bind(spath)
        st, sp = await loop.create_datagram_endpoint(Echo, sock=ssock)
        csock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        csock.bind(cpath)
        ct, cp = await loop.create_datagram_endpoint(lambda: Datagrams(loop), sock=csock)
        assert type(ct) is evloop.aio.DatagramTransport
        ct.sendto(b"unix", spath)
        assert await cp.got.get() == (b"unix", spath)
        ct.sendto(b"bytes path", spath.encode())
        assert await cp.got.get() == (b"bytes path", spath)
        # Linux's abstract namespace: addresses are bytes
        asock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        asock.bind(b"\0evloop-test-%d" % id(asock))
        at, ap = await loop.create_datagram_endpoint(lambda: Datagrams(loop), sock=asock)
        at.sendto(b"abstract", spath)
        assert await ap.got.get() == (b"abstract", spath)
        ct.sendto(b"to abstract", asock.getsockname())
        assert await ap.got.get() == (b"to abstract", cpath)
        for t in (st, ct, at):
            t.close()
        await cp.done

    run(loop, main())


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 in this Python")
def test_udp_ipv6(loop):
    async def main():
        try:
            st, sp = await loop.create_datagram_endpoint(Echo, local_addr=("::1", 0))
        except OSError as exc:
            pytest.skip(f"no IPv6 loopback on this machine: {exc}")
        addr = st.get_extra_info("sockname")
        ut, up = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                     local_addr=("::1", 0))
        ut.sendto(b"six", addr)
        ut.sendto(b"short form", addr[:2])
        got = [await up.got.get(), await up.got.get()]
        assert got == [(b"six", addr), (b"short form", addr)]
        st.close()
        ut.close()
        await up.done

    run(loop, main())


def test_datagram_received_errors_are_reported_by_the_loop(loop):
    errors = []
    loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))

    class Bad(Datagrams):
        def datagram_received(self, data, addr):
            raise ZeroDivisionError("bad datagram")

    async def main():
        st, sp = await loop.create_datagram_endpoint(lambda: Bad(loop),
                                                     local_addr=("127.0.0.1", 0))
        ut, up = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                     local_addr=("127.0.0.1", 0))
        ut.sendto(b"x", st.get_extra_info("sockname"))
        while not errors:
            await asyncio.sleep(0.005)
        st.close()
        ut.close()

    run(loop, main())
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    assert errors[0]["message"].startswith("Exception in callback")


def test_udp_bad_address_is_a_fatal_error_as_in_asyncio(loop):
    # asyncio: socket.sendto's TypeError is a fatal write error (exception handler, then
    # the transport closes); an address equal to a good one but of another type (a float
    # port) is judged afresh, not taken for the good one
    errors = []
    loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))

    async def main():
        st, sp = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                     local_addr=("127.0.0.1", 0))
        host, port = st.get_extra_info("sockname")
        ut, up = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                     local_addr=("127.0.0.1", 0))
        ut.sendto(b"good", (host, port))
        assert (await sp.got.get())[0] == b"good"
        ut.sendto(b"bad", (host, float(port)))
        exc = await up.done
        st.close()
        return ut, exc

    ut, exc = run(loop, main())
    assert isinstance(exc, TypeError)
    assert [c["message"] for c in errors] == ["Fatal write error on datagram transport"]
    assert errors[0]["transport"] is ut and errors[0]["exception"] is exc


def test_tls_over_evloops_transport(loop, certs):
    # asyncio's SSLProtocol (ssl.MemoryBIO) over StreamTransport: ssl= on create_server and
    # open_connection, and start_tls on a plain connection
    import ssl
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs["cert"], certs["key"])
    client_ctx = ssl.create_default_context(cafile=certs["ca"])
    raw = []

    async def handle(reader, writer):
        raw.append(writer.transport.get_extra_info("ssl_object"))
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                       server_hostname="localhost")
        assert writer.get_extra_info("ssl_object") is not None
        payload = b"t" * (2 << 20)
        writer.write(payload)
        assert await reader.readexactly(len(payload)) == payload
        writer.close()
        await writer.wait_closed()
        # start_tls upgrades a connection made by create_connection
        tr, proto = await loop.create_connection(lambda: Recorder(loop), "127.0.0.1", port)
        assert type(tr) is evloop.aio.StreamTransport
        tls_tr = await loop.start_tls(tr, proto, client_ctx, server_hostname="localhost")
        tls_tr.write(b"upgraded")
        while proto.data != b"upgraded":
            await asyncio.sleep(0.005)
        tls_tr.close()
        await proto.done
        server.close()
        await server.wait_closed()

    run(loop, main())
    assert raw and all(obj is not None for obj in raw)


def test_debug_mode_logs_and_lost_writes_warn(loop, caplog):
    import logging
    loop.set_debug(True)

    async def main():
        tr, proto, peer = await accepted_pair(loop, lambda: Recorder(loop))
        await asyncio.sleep(0)
        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            tr.pause_reading()
            tr.resume_reading()
            peer.shutdown(socket.SHUT_WR)
            await proto.done
            for _ in range(6):
                tr.write(b"after the connection was lost")
        peer.close()

    run(loop, main())
    text = caplog.text
    assert "pauses reading" in text and "resumes reading" in text
    assert "received EOF" in text
    assert "socket.send() raised exception." in text   # from the fifth lost write on


def test_a_transport_made_without_its_constructor_refuses_io():
    # cls.__new__(cls) gives an object with no socket: I/O is refused, nothing is sent to
    # whatever fd 0 is
    for cls in (evloop.aio.StreamTransport, evloop.aio.DatagramTransport):
        tr = cls.__new__(cls)
        assert tr.get_write_buffer_size() == 0 and not tr.is_closing()
        assert tr.get_extra_info("socket") is None and tr.get_protocol() is None
    tr = evloop.aio.StreamTransport.__new__(evloop.aio.StreamTransport)
    with pytest.raises(RuntimeError, match="never set up"):
        tr.write(b"x")
    with pytest.raises(RuntimeError, match="never set up"):
        tr.writelines([b"x"])
    tr.write_eof()
    tr._read_ready()
    tr._write_ready()
    dg = evloop.aio.DatagramTransport.__new__(evloop.aio.DatagramTransport)
    with pytest.raises(RuntimeError, match="never set up"):
        dg.sendto(b"x", ("127.0.0.1", 9))
    with pytest.raises(TypeError):
        evloop.aio.StreamTransport()


def test_unclosed_transport_warns_without_the_garbage_collector():
    # freed by reference count (no cycle): __del__ still warns and closes the socket
    loop = evloop.aio.new_event_loop()
    loop._own_transports = True
    a, b = socket.socketpair()
    u = None

    async def main():
        nonlocal u
        tr, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        u, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                   local_addr=("127.0.0.1", 0))
        return tr

    tr = loop.run_until_complete(main())
    loop.close()                      # drops the reader handles that referenced them
    gc.disable()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del tr
            u = None
    finally:
        gc.enable()
    messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any("unclosed transport <StreamTransport" in m for m in messages), messages
    assert any("unclosed transport <DatagramTransport" in m for m in messages), messages
    assert a.fileno() == -1           # the transport closed its socket
    assert b.recv(1) == b""           # the peer sees EOF: the socket was closed
    b.close()


# ------------------------------------------------------------------------------------
# pipe transports (evloop.aio.ReadPipeTransport / WritePipeTransport): connect_read_pipe,
# connect_write_pipe and subprocess pipes. Each behaviour is also run on asyncio's own
# loop where the test compares (stdlib_loop), so that "as asyncio does" is checked, not
# assumed.


@pytest.fixture
def stdlib_loop():
    import selectors
    loop = asyncio.SelectorEventLoop(selectors.DefaultSelector())
    yield loop
    loop.close()


def pipe_files():
    r, w = os.pipe()
    return os.fdopen(r, "rb", 0), os.fdopen(w, "wb", 0)


def test_pipe_transports_are_asyncios_classes_with_extra_info(loop):
    async def main():
        rf, wf = pipe_files()
        rt, rp = await loop.connect_read_pipe(lambda: Recorder(loop), rf)
        wt, wp = await loop.connect_write_pipe(lambda: Recorder(loop), wf)
        assert type(rt) is evloop.aio.ReadPipeTransport
        assert type(wt) is evloop.aio.WritePipeTransport
        assert isinstance(rt, asyncio.ReadTransport) and not isinstance(rt, asyncio.WriteTransport)
        assert isinstance(wt, asyncio.WriteTransport)
        assert rt.get_extra_info("pipe") is rf and wt.get_extra_info("pipe") is wf
        assert rt.get_extra_info("socket") is None and wt.get_extra_info("nope", 5) == 5
        assert rt.get_protocol() is rp and wt.get_protocol() is wp
        assert not os.get_blocking(rf.fileno()) and not os.get_blocking(wf.fileno())
        assert rt.is_reading() and not rt.is_closing() and not wt.is_closing()
        assert wt.can_write_eof() and wt.get_write_buffer_size() == 0
        assert f"fd={rf.fileno()}" in repr(rt) and "polling" in repr(rt)
        assert "bufsize=0" in repr(wt)
        wt.write(b"hello")
        wt.writelines([b" ", bytearray(b"pipe"), memoryview(b"!")])
        wt.close()
        assert wt.is_closing()
        assert (await wp.done) is None
        assert wf.closed                            # the transport closes its pipe
        assert (await rp.done) is None
        assert bytes(rp.data) == b"hello pipe!"
        assert rp.calls == ["made", "data", "eof", ("lost", None)]
        assert rf.closed and "closed" in repr(rt)
        assert rt.get_protocol() is None     # dropped after connection_lost, as asyncio's
    run(loop, main())


def test_pipe_transports_refuse_what_asyncio_refuses(loop, tmp_path):
    async def main():
        path = tmp_path / "regular"
        path.write_bytes(b"x")
        with open(path, "rb") as f:
            with pytest.raises(ValueError, match="Pipe transport is for pipes/sockets only"):
                await loop.connect_read_pipe(asyncio.Protocol, f)
        with open(path, "wb") as f:
            with pytest.raises(ValueError, match="only for pipes, sockets and character"):
                await loop.connect_write_pipe(asyncio.Protocol, f)
        rf, wf = pipe_files()
        wt, wp = await loop.connect_write_pipe(lambda: Recorder(loop), wf)
        with pytest.raises(TypeError, match="bytes-like"):
            wt.write("text")
        with pytest.raises(TypeError):
            wt.writelines([b"ok", 3])
        assert not hasattr(wt, "pause_reading") and not hasattr(
            loop.connect_read_pipe, "write")
        wt.close()
        await wp.done
        rf.close()
    run(loop, main())


def test_read_pipe_pause_resume_and_large_data(loop):
    async def main():
        rf, wf = pipe_files()
        rt, rp = await loop.connect_read_pipe(lambda: Recorder(loop), rf)
        wt, wp = await loop.connect_write_pipe(lambda: Recorder(loop), wf)
        rt.pause_reading()
        assert not rt.is_reading() and "idle" in repr(rt)
        rt.pause_reading()                            # twice: nothing
        data = os.urandom(3 * 1024 * 1024)
        wt.write(data)
        await asyncio.sleep(0.05)
        assert rp.data == b""                         # paused: nothing read
        assert wt.get_write_buffer_size() > 0         # the pipe (64 KiB) is full
        assert "pause" in wp.calls                    # ... over the high-water mark
        rt.resume_reading()
        assert rt.is_reading()
        wt.write_eof()                                # closes once flushed
        assert wt.is_closing()
        wt.write(b"after")                            # ignored, counted: asyncio's
        await wp.done
        assert wp.calls[-2:] == ["resume", ("lost", None)]
        await rp.done
        assert bytes(rp.data) == data
        assert rp.calls[-2:] == ["eof", ("lost", None)]
    run(loop, main())


@pytest.mark.parametrize("which", ["evloop", "asyncio"])
def test_write_pipe_flow_control_limits(loop, stdlib_loop, which):
    lp = loop if which == "evloop" else stdlib_loop

    async def main():
        rf, wf = pipe_files()
        wt, wp = await lp.connect_write_pipe(lambda: Recorder(lp), wf)
        wt.set_write_buffer_limits(high=1000, low=100)
        assert wt.get_write_buffer_limits() == (100, 1000)
        with pytest.raises(ValueError):
            wt.set_write_buffer_limits(high=10, low=100)
        wt.write(b"x" * 200_000)                      # more than the pipe takes
        assert wp.calls == ["made", "pause"]
        size = wt.get_write_buffer_size()
        assert 1000 < size < 200_000
        os.set_blocking(rf.fileno(), False)
        got = 0
        while got < 200_000:         # read it all, letting the loop write between reads
            await asyncio.sleep(0.001)
            try:
                got += len(os.read(rf.fileno(), 1 << 20))
            except BlockingIOError:
                pass
        for _ in range(100):
            if wt.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.001)
        assert wp.calls == ["made", "pause", "resume"]
        wt.abort()
        assert (await wp.done) is None
        rf.close()
    lp.run_until_complete(asyncio.wait_for(main(), 20))


@pytest.mark.parametrize("which", ["evloop", "asyncio"])
@pytest.mark.parametrize("queued", [False, True])
def test_reader_closing_is_connection_lost_as_asyncio(loop, stdlib_loop, which, queued):
    # asyncio's write pipe watches for its reader's close: connection_lost(None), or
    # connection_lost(BrokenPipeError) when data was still queued
    lp = loop if which == "evloop" else stdlib_loop

    async def main():
        rf, wf = pipe_files()
        wt, wp = await lp.connect_write_pipe(lambda: Recorder(lp), wf)
        if queued:
            wt.write(b"x" * 1024 * 1024)
            assert wt.get_write_buffer_size() > 0
        rf.close()
        exc = await wp.done
        if queued:
            assert isinstance(exc, BrokenPipeError)
        else:
            assert exc is None
        assert wt.is_closing() and wf.closed
        for _ in range(6):
            wt.write(b"lost")                       # counted, no exception
        return wp.calls
    calls = lp.run_until_complete(asyncio.wait_for(main(), 20))
    assert calls[0] == "made" and calls[-1][0] == "lost"


def test_write_pipe_closed_by_reader_while_closing_is_broken_pipe(loop):
    async def main():
        rf, wf = pipe_files()
        wt, wp = await loop.connect_write_pipe(lambda: Recorder(loop), wf)
        wt.write(b"x" * 1024 * 1024)
        wt.close()                                  # waits for the queue to flush ...
        await asyncio.sleep(0.01)
        assert wp.done.done() is False
        rf.close()                                  # ... which its reader never reads
        assert isinstance(await wp.done, BrokenPipeError)
        assert wf.closed
    run(loop, main())


@pytest.mark.parametrize("which", ["evloop", "asyncio"])
def test_read_pipe_protocol_errors_as_asyncio(loop, stdlib_loop, which):
    # asyncio's read pipe does not catch the protocol's exception: the loop reports it as
    # an exception in the reader's callback, and the pipe stays open and reading
    lp = loop if which == "evloop" else stdlib_loop
    contexts = []
    lp.set_exception_handler(lambda _, ctx: contexts.append(ctx))

    class Failing(Recorder):
        def data_received(self, data):
            super().data_received(data)
            if data == b"bad":
                raise RuntimeError("boom")

    async def main():
        rf, wf = pipe_files()
        rt, rp = await lp.connect_read_pipe(lambda: Failing(lp), rf)
        wf.write(b"bad")
        for _ in range(200):
            if contexts:
                break
            await asyncio.sleep(0.005)
        assert not rt.is_closing()    # (asyncio's read pipe has is_reading() from 3.11)
        wf.write(b"good")
        wf.close()
        assert (await rp.done) is None
        return rp
    rp = lp.run_until_complete(asyncio.wait_for(main(), 20))
    assert bytes(rp.data) == b"badgood"
    assert len(contexts) == 1, contexts
    assert contexts[0]["message"].startswith("Exception in callback")
    assert isinstance(contexts[0]["exception"], RuntimeError)


def test_read_pipe_eof_received_then_connection_lost_whatever_it_returns(loop):
    async def main():
        rf, wf = pipe_files()
        rt, rp = await loop.connect_read_pipe(lambda: Recorder(loop, eof_keep_open=True), rf)
        wf.write(b"last")
        wf.close()
        assert (await rp.done) is None
        assert rp.calls == ["made", "data", "eof", ("lost", None)]
        assert rt.is_closing() and rf.closed
    run(loop, main())


def test_pipe_streams_and_a_socket_as_a_pipe(loop):
    # asyncio's streams over pipes (StreamReader on connect_read_pipe); a socketpair end
    # given as a "pipe" (asyncio allows sockets) is read with read() and written with write()
    async def main():
        rf, wf = pipe_files()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), rf)
        wt, wproto = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop), wf)
        writer = asyncio.StreamWriter(wt, wproto, None, loop)
        for i in range(1000):
            writer.write(b"line %d\n" % i)
        await writer.drain()
        writer.close()
        lines = [line async for line in reader]
        assert lines == [b"line %d\n" % i for i in range(1000)]

        a, b = socket.socketpair()
        with a:
            fa = a.makefile("rwb", buffering=0)
            rt, rp = await loop.connect_read_pipe(lambda: Recorder(loop), fa)
            b.sendall(b"via a socket")
            b.close()
            await rp.done
            assert bytes(rp.data) == b"via a socket"
    run(loop, main())


def test_unclosed_pipe_transport_warns(loop):
    async def main():
        rf, wf = pipe_files()
        rt, _ = await loop.connect_read_pipe(asyncio.Protocol, rf)
        return rt, wf
    rt, wf = run(loop, main())
    loop.close()
    with pytest.warns(ResourceWarning, match="unclosed transport <ReadPipeTransport"):
        del rt
        gc.collect()
    assert rf_closed_after(wf)


def rf_closed_after(wf):
    # the warning closed the read end: writing to the pipe now fails with EPIPE
    try:
        wf.write(b"x")
    except BrokenPipeError:
        return True
    finally:
        wf.close()
    return False


def test_subprocess_pipes_are_evloops(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c",
            "import sys; data = sys.stdin.buffer.read(); "
            "sys.stdout.buffer.write(data[::-1]); sys.stderr.write(str(len(data)))",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        tr = proc._transport
        assert type(tr.get_pipe_transport(0)) is evloop.aio.WritePipeTransport
        assert type(tr.get_pipe_transport(1)) is evloop.aio.ReadPipeTransport
        assert type(tr.get_pipe_transport(2)) is evloop.aio.ReadPipeTransport
        data = os.urandom(2 * 1024 * 1024)
        out, err = await proc.communicate(data)
        assert out == data[::-1] and err == str(len(data)).encode()
        assert proc.returncode == 0
        # a child that exits without reading its stdin: the write gets BrokenPipe,
        # which communicate() ignores, as on asyncio's loop
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import os; os.close(0)", stdin=asyncio.subprocess.PIPE)
        await proc.communicate(b"y" * (4 * 1024 * 1024))
        assert proc.returncode == 0
    run(loop, main(), timeout=60)


def test_pipe_transport_repr_after_the_loop_closed_and_forgetting_the_pipe(loop):
    # asyncio's pipe transports: "open" in the repr once the loop is closed, and
    # transport._pipe = None forgets the pipe (CPython's test_events does both)
    async def main():
        rf, wf = pipe_files()
        rt, _ = await loop.connect_read_pipe(asyncio.Protocol, rf)
        wt, _ = await loop.connect_write_pipe(asyncio.Protocol, wf)
        return rf, wf, rt, wt
    rf, wf, rt, wt = run(loop, main())
    loop.close()
    assert "open" in repr(rt) and "open" in repr(wt)
    with pytest.raises(AttributeError):
        rt._pipe = wf
    rt._pipe = None
    wt._pipe = None
    assert "closed" in repr(rt)
    rt.custom = 1                     # an instance __dict__, as asyncio's
    assert rt.__dict__ == {"custom": 1}
    rf.close()
    wf.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del rt, wt                    # forgotten pipes: no "unclosed transport" warning
        gc.collect()


def test_asyncio_transports_setting_gives_asyncios_pipe_transports():
    # EVLOOP_AIO_TRANSPORTS=asyncio (loop._own_transports False): asyncio's own pipes
    from asyncio import unix_events
    loop = evloop.aio.new_event_loop()
    loop._own_transports = False
    try:
        async def main():
            rf, wf = pipe_files()
            rt, rp = await loop.connect_read_pipe(lambda: Recorder(loop), rf)
            wt, _ = await loop.connect_write_pipe(asyncio.Protocol, wf)
            assert type(rt) is unix_events._UnixReadPipeTransport
            assert type(wt) is unix_events._UnixWritePipeTransport
            wt.write(b"through asyncio's pipes")
            wt.close()
            await rp.done
            assert bytes(rp.data) == b"through asyncio's pipes"
        run(loop, main())
    finally:
        loop.close()
