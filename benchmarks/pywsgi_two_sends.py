"""evloop.pywsgi as it is, against itself with its two send-path measures undone.

Why it exists: evloop.pywsgi sends a response's head and first body chunk in one ``send``
and sets TCP_NODELAY on each connection; gevent.pywsgi does neither and serves ~1 k
requests/s to keep-alive clients (the body waits for the client's delayed ACK of the head,
~40 ms). This script shows that those two measures are what makes the difference, with
everything else equal: the ``two-sends`` server is evloop.pywsgi with a handler subclass
that sends the head and the body apart and leaves NODELAY off. Each run is a fresh server
process driven by wrk (one thread, 50 keep-alive connections, 1 s warm-up, 3 s measured,
as ``workloads/pywsgi_hello.py``), the two variants interleaved, medians printed. It is
never part of the test run.

    python3 benchmarks/pywsgi_two_sends.py [--rounds 3]
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "workloads"))

from _gunicorn import DURATION, WARMUP, _environment, _wait_ready, _wrk  # noqa: E402

SERVER = r'''
import signal, socket, sys
import evloop
from evloop import pywsgi
from evloop import socket as evsocket

class TwoSends(pywsgi.WSGIHandler):
    def handle(self):
        setsockopt = self.socket.setsockopt
        def keep_nagle(level, option, value):
            if option != socket.TCP_NODELAY:
                setsockopt(level, option, value)
        self.socket.setsockopt = keep_nagle
        super().handle()

    def _write_with_headers(self, data):
        self.headers_sent = True
        self.finalize_headers()
        self._sendall(self._head())
        self._write(data)

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]

variant, fd = sys.argv[1], int(sys.argv[2])
handler = TwoSends if variant == "two-sends" else pywsgi.WSGIHandler
server = pywsgi.WSGIServer(evsocket.socket(fileno=fd), app, log=None, handler_class=handler)
evloop.signal_handler(signal.SIGTERM, server.stop)
server.serve_forever()
'''


def measure(variant):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port, fd = listener.getsockname()[1], listener.fileno()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, variant, str(fd)], pass_fds=(fd,),
                            env=_environment("evloop"))
    try:
        listener.close()
        _wait_ready(port, proc)
        _wrk(port, WARMUP, ())
        ops, seconds = _wrk(port, DURATION, ())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return ops / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {"one-send": [], "two-sends": []}
    for r in range(args.rounds):
        for variant in results:
            rate = measure(variant)
            results[variant].append(rate)
            print(f"[{r + 1}/{args.rounds}] {variant:<10} {rate:10.0f} requests/s", file=sys.stderr)
    for variant, rates in results.items():
        print(f"{variant:<10} median {statistics.median(rates):10.0f} requests/s "
              f"(runs: {', '.join(f'{x:.0f}' for x in rates)})")


if __name__ == "__main__":
    main()
