"""What the pywsgi_hello workloads share: start ``_pywsgi_server.py IMPL FD`` (the impl's
own interpreter) on a listener bound here, drive it with wrk as the gunicorn workloads do
(one thread, 50 keep-alive connections, 1 s warm-up, 3 s measured; any non-2xx or socket
error fails the run), stop it."""

import os
import signal
import socket
import subprocess
import sys

from _common import impl_argument, report
from _gunicorn import DURATION, WARMUP, _cpu_seconds, _environment, _wait_ready, _wrk

IMPLS = ("evloop", "gevent", "uvloop")
HERE = os.path.dirname(os.path.abspath(__file__))


def run(metric="wall"):
    impl = impl_argument()
    if impl not in IMPLS:
        raise SystemExit(f"unsupported impl {impl!r}; choose from {IMPLS}")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "_pywsgi_server.py"), impl,
                             str(fd)], env=_environment(impl), pass_fds=(fd,))
    try:
        listener.close()
        _wait_ready(port, proc)
        _wrk(port, WARMUP, ())
        cpu = _cpu_seconds(proc.pid)
        ops, seconds = _wrk(port, DURATION, ())
        if metric == "cpu":
            seconds = _cpu_seconds(proc.pid) - cpu
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    report(ops, seconds)
