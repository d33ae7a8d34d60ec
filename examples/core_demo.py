"""evloop demo: one evloop.core loop serving timers, a socket, a signal and callbacks.

Run: python examples/core_demo.py — prints what each watcher saw and how long it took.
Everything here happens on one thread: the loop waits in epoll and calls each callback
straight from C when its event arrives.
"""
import os
import signal
import socket
import threading
import time

from evloop import core


def main() -> None:
    loop = core.loop(default=True)
    t0 = time.perf_counter()
    log = []

    def note(what: str) -> None:
        log.append(what)
        print(f"{(time.perf_counter() - t0) * 1000:7.1f} ms  {what}")

    # a repeating timer and a one-shot timer that stops it
    ticks = loop.timer(0.05, 0.05)
    ticks.start(lambda: note("tick"))
    loop.timer(0.22).start(lambda: (ticks.stop(), note("stopped the ticker")))

    # an io watcher on a socket pair, fed by another timer
    a, b = socket.socketpair()
    a.setblocking(False)
    reader = loop.io(a.fileno(), core.READ)

    def on_readable() -> None:
        data = a.recv(100)
        note(f"io: read {data!r}")
        reader.stop()

    reader.start(on_readable)
    loop.timer(0.1).start(b.send, b"hello from the socket")

    # a signal watcher: the process signals itself
    usr1 = loop.signal(signal.SIGUSR1)
    usr1.start(lambda: (note("signal: got SIGUSR1"), usr1.stop()))
    loop.timer(0.15).start(os.kill, os.getpid(), signal.SIGUSR1)

    # another thread wakes the loop through run_callback_threadsafe
    keepalive = loop.async_()
    keepalive.start(lambda: None)

    def from_thread() -> None:
        time.sleep(0.18)
        loop.run_callback_threadsafe(lambda: (note("callback from another thread"),
                                              keepalive.stop()))

    threading.Thread(target=from_thread).start()

    # callbacks scheduled by callbacks run in the same batch, FIFO
    chain = []

    def link(n: int) -> None:
        chain.append(n)
        if n < 100_000:
            loop.run_callback(link, n + 1)
        else:
            note(f"run_callback chain: {len(chain):,} callbacks done")

    loop.run_callback(link, 1)

    loop.run()
    elapsed = time.perf_counter() - t0
    a.close()
    b.close()
    print(f"loop.run() returned after {elapsed * 1000:.0f} ms: no watcher left; "
          f"{len(log)} events on backend {loop.backend!r}, {core.get_version()}")


if __name__ == "__main__":
    main()
