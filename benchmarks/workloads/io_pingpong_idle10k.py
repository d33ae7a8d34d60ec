"""``io_pingpong`` with 10,000 other idle fds: does the cost of a round trip depend on how
many fds (and waiting greenlets) the loop holds?

The same 1-byte ping-pong (N = 100,000 round trips) while 5,000 other socketpairs (10,000
fds, RLIMIT_NOFILE's soft limit raised to the hard one) are open, each socket with a
greenlet blocked in ``recv`` on it (asyncio/uvloop: a task awaiting ``loop.sock_recv``);
nothing is ever written to them. Goal: evloop here ≥ 0.9 × evloop's own ``io_pingpong``.
"""

import io_pingpong
from _common import HUB_IMPLS

IMPLS = HUB_IMPLS
IDLE_PAIRS = 5_000

if __name__ == "__main__":
    io_pingpong.main(IDLE_PAIRS)
