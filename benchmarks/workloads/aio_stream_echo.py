"""Echo over loopback TCP with asyncio streams: 16 connections x 2,000 round trips of 1 KiB.

The server (``asyncio.start_server``) and the clients (``asyncio.open_connection``) run in
the workload's process on the loop under test: the server handler loops
``reader.read(65536)`` / ``writer.write`` / ``await writer.drain()``; each client task
writes 1 KiB and ``readexactly``s the echo, 2,000 times. One op is one round trip (two
transport writes, two reads, four protocol/stream wake-ups). The server and the
connections are set up untimed; the 16 client loops are timed, gathered.
"""

from _common import ASYNCIO_IMPLS, run_aio, timed_await

IMPLS = ASYNCIO_IMPLS
CONNS, ROUNDS, SIZE = 16, 2_000, 1024


async def aio(asyncio):
    handlers = []

    async def handle(reader, writer):
        handlers.append(asyncio.current_task())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(CONNS)]
    message = b"x" * SIZE

    async def client(reader, writer):
        for _ in range(ROUNDS):
            writer.write(message)
            if await reader.readexactly(SIZE) != message:
                raise AssertionError("bad echo")
        return ROUNDS

    async def timed():
        return await asyncio.gather(*[client(r, w) for r, w in conns])

    seconds, rounds = await timed_await(timed)
    for _, writer in conns:
        writer.close()
        await writer.wait_closed()
    # the handlers end on EOF; left running, the runner would cancel them, and CPython
    # 3.11's start_server then logs each one's CancelledError (fixed in 3.12)
    await asyncio.gather(*handlers)
    server.close()
    await server.wait_closed()
    assert sum(rounds) == CONNS * ROUNDS
    return CONNS * ROUNDS, seconds


if __name__ == "__main__":
    run_aio(aio)
