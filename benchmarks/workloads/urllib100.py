"""100 concurrent ``urllib.request.urlopen`` calls after ``monkey.patch_all()``: does
unmodified blocking stdlib code run concurrently on greenlets?

The impl's ``monkey.patch_all()`` comes first; then a tiny HTTP/1.0 responder on the impl's
``StreamServer`` (127.0.0.1, same process) reads each request's headers, sleeps 0.2 s and
answers ``200 OK`` with a 2-byte body; 100 greenlets each ``urlopen`` it once and read the
body. Timed: spawning the 100 greenlets and joining them. One op is one request, so the
total is 100 / (ops/s) seconds; fully concurrent, that is just over 0.2 s. Goal: < 0.5 s
(> 200 ops/s). evloop and gevent only.
"""

import sys

from _common import GREENLET_IMPLS, impl_argument, report, timed_result

IMPLS = GREENLET_IMPLS
CLIENTS, DELAY = 100, 0.2
RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def main():
    impl = impl_argument()
    if impl not in IMPLS:
        raise SystemExit(f"impl {impl!r} not supported here (only {IMPLS})")
    # patch before anything imports urllib (and, through it, socket, ssl, ...)
    package = "gevent" if impl == "gevent-evloop" else impl  # gevent on evloop's loop
    __import__(f"{package}.monkey").monkey.patch_all()
    from _common import load_greenlet_api

    api = load_greenlet_api(impl, ("server",))
    import urllib.request

    def respond(conn, address):
        request = b""
        while b"\r\n\r\n" not in request:
            data = conn.recv(4096)
            if not data:
                return
            request += data
        api.sleep(DELAY)
        conn.sendall(RESPONSE)

    server = api.server.StreamServer(("127.0.0.1", 0), respond)
    server.start()
    url = f"http://127.0.0.1:{server.server_port}/"

    def fetch():
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    fetch()  # warm up (imports, the first connection), untimed

    def run():
        greenlets = [api.spawn(fetch) for _ in range(CLIENTS)]
        api.joinall(greenlets)
        return [g.get(block=False) for g in greenlets]

    seconds, bodies = timed_result(run)
    server.stop()
    assert bodies == [b"ok"] * CLIENTS, bodies
    print(f"{CLIENTS} requests in {seconds:.3f} s", file=sys.stderr)
    report(CLIENTS, seconds)


if __name__ == "__main__":
    main()
