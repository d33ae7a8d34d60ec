"""UDP echo over loopback with asyncio datagram endpoints: 8 datagrams of 512 bytes in
flight between a client endpoint and an echo server endpoint, 40,000 round trips.

Both endpoints run in the workload's process on the loop under test
(``loop.create_datagram_endpoint``): the server's ``datagram_received`` sends each datagram
back with ``transport.sendto(data, addr)``; the client's sends it again until 40,000 have
come back. One op is one round trip (two ``sendto``, two datagrams received). Loopback UDP
drops nothing at this depth (8 in flight); a lost datagram would stall the run, so it is
bounded by a timeout and fails instead.
"""

from _common import ASYNCIO_IMPLS, run_aio, timed_await

IMPLS = ASYNCIO_IMPLS
IN_FLIGHT, ROUNDS, SIZE = 8, 40_000, 512


async def aio(asyncio):
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self):
            self.left = ROUNDS
            self.done = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.left -= 1
            if self.left <= 0:
                if not self.done.done():
                    self.done.set_result(ROUNDS)
            elif self.left >= IN_FLIGHT:  # ROUNDS sent in all
                self.transport.sendto(data)

    server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    client, proto = await loop.create_datagram_endpoint(
        Client, remote_addr=server.get_extra_info("sockname"))
    message = b"u" * SIZE

    async def timed():
        for _ in range(IN_FLIGHT):
            client.sendto(message)
        return await asyncio.wait_for(proto.done, 60)

    seconds, rounds = await timed_await(timed)
    client.close()
    server.close()
    return rounds, seconds


if __name__ == "__main__":
    run_aio(aio)
