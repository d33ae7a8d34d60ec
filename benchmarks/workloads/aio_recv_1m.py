"""Receiving 1 MiB messages over loopback TCP with an ``asyncio.Protocol``: 300 messages
sent by a thread (blocking ``sendall``), reassembled by ``data_received`` into one
``bytearray`` per message. One op is one whole message received. Compare with
``aio_recv_1m_buffered``, the same with an ``asyncio.BufferedProtocol`` that receives
straight into the message's buffer (``get_buffer``/``buffer_updated``).

The connection is set up untimed; the timed part runs from the first send to the
connection's EOF.
"""
import socket
import threading

from _common import ASYNCIO_IMPLS, run_aio, timed_await

IMPLS = ASYNCIO_IMPLS
MESSAGES, SIZE = 300, 1 << 20


def protocols(asyncio, done):
    class Plain(asyncio.Protocol):
        def __init__(self):
            self.buf, self.messages = bytearray(), 0

        def data_received(self, data):
            self.buf += data
            while len(self.buf) >= SIZE:
                del self.buf[:SIZE]
                self.messages += 1

        def connection_lost(self, exc):
            done.set_result(self.messages)

    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.view, self.pos, self.messages = memoryview(bytearray(SIZE)), 0, 0

        def get_buffer(self, sizehint):
            return self.view[self.pos:]

        def buffer_updated(self, nbytes):
            self.pos += nbytes
            if self.pos == SIZE:
                self.pos = 0
                self.messages += 1

        def connection_lost(self, exc):
            done.set_result(self.messages)

    return Plain, Buffered


async def receive(asyncio, buffered):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    plain_cls, buffered_cls = protocols(asyncio, done)
    lsock = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(lsock.getsockname())
    conn, _ = lsock.accept()
    lsock.close()
    await loop.connect_accepted_socket(buffered_cls if buffered else plain_cls, conn)
    message = b"m" * SIZE

    def send():
        for _ in range(MESSAGES):
            sender.sendall(message)
        sender.close()

    async def timed():
        thread = threading.Thread(target=send)
        thread.start()
        got = await done
        thread.join()
        return got

    seconds, got = await timed_await(timed)
    assert got == MESSAGES, got
    return MESSAGES, seconds


async def aio(asyncio):
    return await receive(asyncio, buffered=False)


if __name__ == "__main__":
    run_aio(aio)
