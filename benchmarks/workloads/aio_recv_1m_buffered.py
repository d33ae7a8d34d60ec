"""``aio_recv_1m`` with an ``asyncio.BufferedProtocol``: each 1 MiB message is received
straight into its buffer (``get_buffer`` returns the rest of it, ``buffer_updated``
advances), with no ``bytes`` object per read and no reassembly copy."""
from _common import ASYNCIO_IMPLS, run_aio
from aio_recv_1m import receive

IMPLS = ASYNCIO_IMPLS


async def aio(asyncio):
    return await receive(asyncio, buffered=True)


if __name__ == "__main__":
    run_aio(aio)
