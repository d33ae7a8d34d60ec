"""Pipe throughput with asyncio's pipe transports: 512 MiB through one os.pipe().

Both ends are connected to the loop under test in the workload's process:
``loop.connect_write_pipe`` with a protocol that waits on pause_writing/resume_writing (a
drain, as asyncio's StreamWriter does) and ``loop.connect_read_pipe`` with a protocol that
counts what ``data_received`` gets. The writer writes 64 KiB blocks (the same bytes
object each time), draining whenever the transport's flow control pauses it. One op is one
64 KiB block written and read (a pipe holds 64 KiB: each block is at least one write()
and one read() system call and a loop iteration for each side). The pipe and the
transports are set up untimed; the timed part ends when the reader has everything.
"""

from _common import ASYNCIO_IMPLS, run_aio, timed_await

IMPLS = ASYNCIO_IMPLS
BLOCK, BLOCKS = 64 * 1024, 8192


async def aio(asyncio):
    import os

    loop = asyncio.get_running_loop()
    total = BLOCK * BLOCKS
    done = loop.create_future()

    class Reader(asyncio.Protocol):
        received = 0

        def data_received(self, data):
            self.received += len(data)
            if self.received >= total and not done.done():
                done.set_result(self.received)

        def connection_lost(self, exc):
            if not done.done():
                done.set_exception(exc or EOFError(f"EOF after {self.received} bytes"))

    class Writer(asyncio.Protocol):
        def __init__(self):
            self.resumed = None

        def pause_writing(self):
            self.resumed = loop.create_future()

        def resume_writing(self):
            self.resumed.set_result(None)
            self.resumed = None

    r, w = os.pipe()
    rt, _ = await loop.connect_read_pipe(Reader, os.fdopen(r, "rb", 0))
    wt, writer = await loop.connect_write_pipe(Writer, os.fdopen(w, "wb", 0))
    block = b"x" * BLOCK

    async def timed():
        for _ in range(BLOCKS):
            wt.write(block)
            if writer.resumed is not None:
                await writer.resumed
        return await done

    seconds, received = await timed_await(timed)
    assert received == total, received
    wt.close()
    rt.close()
    await asyncio.sleep(0)
    return BLOCKS, seconds


if __name__ == "__main__":
    run_aio(aio)
