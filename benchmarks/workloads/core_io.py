"""I/O dispatch with many registered fds: 10,000 READ watchers, 100 of them ready.

5,000 socketpairs give 10,000 sockets, each with a started READ watcher (both ends are
watched: 10,000 watchers on 10,000 fds, which fits the usual 20,000-fd hard limit where
10,000 pairs = 20,000 fds plus stdio would not). One byte is written into 100 of the
sockets and never read, so their peers stay readable (level-triggered) and every
iteration epoll reports the same 100 fds; each calls a trivial Python callback, and the
callback breaks the loop after N callbacks (10,000 iterations). Measures epoll
readiness -> watcher lookup -> C -> Python dispatch, and that the 9,900 idle fds cost
nothing per iteration.
"""

import resource
import socket

from _common import CORE_IMPLS, N, run_core, timed

IMPLS = CORE_IMPLS


def raise_nofile_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} < {needed} fds needed")
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft != target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def io(core, pairs=5_000, ready=100, n=N):
    raise_nofile_limit(2 * pairs + 64)
    loop = core.loop(default=False)
    socks = [s for _ in range(pairs) for s in socket.socketpair()]
    count = 0

    def callback():
        nonlocal count
        count += 1
        if count == n:
            loop.break_()

    watchers = [loop.io(sock.fileno(), core.READ) for sock in socks]
    for watcher in watchers:
        watcher.start(callback)
    for sock in socks[0::2][:: pairs // ready]:  # one end of every 50th pair
        sock.send(b"x")
    seconds = timed(loop.run)
    return count, seconds


if __name__ == "__main__":
    run_core(io)
