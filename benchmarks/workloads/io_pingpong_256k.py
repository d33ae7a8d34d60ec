"""``io_pingpong`` with ``recv(262144)`` instead of ``recv(1)``: the same 1-byte round
trips, but each recv asks for 256 KiB, as code reading "whatever is there" in big chunks
does (asyncio's transports read 256 KiB at a time).

CPython's ``socket.recv(n)`` allocates n bytes and shrinks the result; from 128 KiB glibc
does that with ``mmap``/``mremap``/``munmap`` and page faults on every call. evloop's
``SockIO.recv`` receives such sizes into a reused buffer (csrc/evloop_io.c). Greenlet impls
only: asyncio's ``loop.sock_recv`` is the stdlib's on every asyncio loop here.
"""

import io_pingpong
from _common import GREENLET_IMPLS, run_io

IMPLS = GREENLET_IMPLS

if __name__ == "__main__":
    run_io(lambda api: io_pingpong.green(api, bufsize=256 * 1024), impls=IMPLS)
