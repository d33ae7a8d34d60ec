"""1-byte ping-pong over a socketpair between two greenlets (tasks): the cooperative
socket's recv/send round trip through the loop.

An echo greenlet loops ``recv(1)`` / ``sendall`` on one end of a ``socketpair()`` (the
impl's cooperative socket module: ``evloop.socket``, ``gevent.socket``); the main greenlet
sends one byte and ``recv``s the echo, N times. One op is one round trip: two sends, two
recvs, each recv waiting for readiness (an epoll wake-up and a greenlet switch through the
hub). asyncio and uvloop do the same with ``loop.sock_sendall``/``loop.sock_recv`` on
non-blocking stdlib sockets in two tasks. Setup (sockets, the echo greenlet parked in recv)
is untimed. ``io_pingpong_idle10k`` runs the same with 10,000 idle fds, each with a waiter.
"""

from _common import HUB_IMPLS, raise_fd_limit, run_io, timed_await, timed_result

IMPLS = HUB_IMPLS
N = 100_000


def green(api, n=N, idle_pairs=0, bufsize=1):
    socketpair = api.socket.socketpair
    idle = [socketpair() for _ in range(idle_pairs)]
    # one greenlet blocked in recv on each idle socket (never woken: nothing is written)
    waiters = [api.spawn(s.recv, 1) for pair in idle for s in pair]
    a, b = socketpair()

    def echo():
        recv, sendall = b.recv, b.sendall
        for _ in range(n):
            sendall(recv(bufsize))

    def ping():
        recv, sendall = a.recv, a.sendall
        for _ in range(n):
            sendall(b"x")
            if recv(bufsize) != b"x":
                raise AssertionError("bad echo")

    echoer = api.spawn(echo)
    api.sleep(0)  # every greenlet parked in recv, untimed
    assert all(not w.ready() for w in waiters)
    seconds, _ = timed_result(ping)
    echoer.join()
    echoer.get(block=False)  # re-raises if the echo greenlet failed
    return n, seconds


async def aio(asyncio, n=N, idle_pairs=0):
    import socket

    loop = asyncio.get_running_loop()

    def pair():
        s1, s2 = socket.socketpair()
        s1.setblocking(False)
        s2.setblocking(False)
        return s1, s2

    idle = [pair() for _ in range(idle_pairs)]
    waiters = [asyncio.create_task(loop.sock_recv(s, 1)) for p in idle for s in p]
    a, b = pair()

    async def echo():
        for _ in range(n):
            await loop.sock_sendall(b, await loop.sock_recv(b, 1))

    async def ping():
        for _ in range(n):
            await loop.sock_sendall(a, b"x")
            if await loop.sock_recv(a, 1) != b"x":
                raise AssertionError("bad echo")

    echoer = asyncio.create_task(echo())
    await asyncio.sleep(0)  # every task parked in sock_recv, untimed
    assert not any(w.done() for w in waiters)
    seconds, _ = await timed_await(ping)
    await echoer
    for w in waiters:
        w.cancel()
    return n, seconds


def main(idle_pairs=0):
    if idle_pairs:
        raise_fd_limit(4 * idle_pairs)  # 2 per pair + headroom
    run_io(lambda api: green(api, idle_pairs=idle_pairs),
           lambda asyncio: aio(asyncio, idle_pairs=idle_pairs))


if __name__ == "__main__":
    main()
