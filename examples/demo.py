"""evloop demo: greenlets in plain blocking style, running concurrently on one thread.

Run: python examples/demo.py — four scenes, each printing what happened and how long it
took:
1. five greenlets sleep 0.1-0.5 s each: together they take the longest sleep, not the sum;
2. a producer and two consumers pass 20 items through a bounded Queue;
3. joinall with a timeout: the fast workers' values are collected, the slow one is killed;
4. after monkey.patch_all(), three urllib.request.urlopen calls to a local HTTP server
   whose handler takes 0.3 s finish in the time of one, not three.
"""
from evloop import monkey

monkey.patch_all()  # first, before the stdlib modules it patches are used

import http.server  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

import evloop  # noqa: E402
from evloop.queue import Queue  # noqa: E402


def scene(title: str) -> float:
    print(f"\n== {title}")
    return time.perf_counter()


def overlapping_sleeps() -> None:
    t0 = scene("overlapping sleeps")

    def nap(seconds: float) -> float:
        evloop.sleep(seconds)
        return seconds

    greenlets = [evloop.spawn(nap, s / 10) for s in (3, 1, 5, 2, 4)]
    evloop.joinall(greenlets)
    took = time.perf_counter() - t0
    total = sum(g.value for g in greenlets)
    print(f"5 greenlets slept {total:.1f} s in all; wall time {took:.2f} s "
          f"(the longest sleep is 0.5 s)")


def producer_consumer() -> None:
    t0 = scene("producer/consumer over a Queue(maxsize=3)")
    queue: Queue = Queue(maxsize=3)
    eaten = {"alice": [], "bob": []}

    def producer() -> None:
        for item in range(20):
            queue.put(item)        # blocks while 3 items wait
        for _ in eaten:
            queue.put(StopIteration)

    def consumer(name: str) -> None:
        for item in queue:         # blocks for the next item; StopIteration ends it
            eaten[name].append(item)
            evloop.sleep(0.01)     # pretend to work

    evloop.joinall([evloop.spawn(producer)] + [evloop.spawn(consumer, n) for n in eaten])
    took = time.perf_counter() - t0
    for name, items in eaten.items():
        print(f"{name} ate {len(items)} items: {items}")
    print(f"20 items, 2 consumers x 10 ms each: {took:.2f} s (one consumer would take 0.2 s)")


def joinall_with_timeout() -> None:
    t0 = scene("joinall(timeout=0.3) over workers of 0.1, 0.2 and 2.0 s")

    def worker(name: str, seconds: float) -> str:
        evloop.sleep(seconds)
        return f"{name} done after {seconds} s"

    workers = [evloop.spawn(worker, n, s) for n, s in (("fast", 0.1), ("medium", 0.2),
                                                       ("slow", 2.0))]
    done = evloop.joinall(workers, timeout=0.3)
    print("finished in time:", [g.value for g in done])
    late = [g for g in workers if not g.ready()]
    evloop.killall(late)
    print(f"killed {len(late)} late worker(s); dead now: {[g.dead for g in late]}")
    print(f"took {time.perf_counter() - t0:.2f} s")


def patched_urllib() -> None:
    t0 = scene("monkey-patched urllib: 3 requests to a server that takes 0.3 s each")

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(0.3)  # patched: blocks only this request's greenlet
            body = f"hello from {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    # ThreadingHTTPServer: after patching, each "thread" is a greenlet
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    def fetch(path: str) -> str:
        with urllib.request.urlopen(url + path) as response:
            return response.read().decode()

    pages = [evloop.spawn(fetch, f"/page{i}") for i in range(3)]
    evloop.joinall(pages, raise_error=True)
    took = time.perf_counter() - t0
    for page in pages:
        print(page.value)
    print(f"3 requests x 0.3 s each: {took:.2f} s (one at a time would take 0.9 s)")
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    start = time.perf_counter()
    overlapping_sleeps()
    producer_consumer()
    joinall_with_timeout()
    patched_urllib()
    print(f"\nall scenes: {time.perf_counter() - start:.2f} s on one thread, "
          f"loop backend {evloop.get_hub().loop.backend!r}")
