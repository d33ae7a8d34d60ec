"""What the gunicorn_* workloads share: run a real gunicorn (one worker of the impl's
worker class) on a listening socket made here, drive it with wrk, stop it.

The arbiter runs in a child process with the impl's own interpreter (``sys.executable``:
the peers venv for gevent), ``-k gevent`` or ``-k evloop.integrations.gunicorn.Worker``,
``-w 1``, serving ``_gunicorn_app:app``. The listener is bound here and handed over as
``fd://N`` so that no port is picked twice. wrk (a C load generator: Debian's ``wrk``
package) runs one thread and CONNS connections: first 1 s of warm-up, untimed, then
DURATION seconds whose request count and elapsed time it reports are the result. Any
non-2xx response or socket error fails the run.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

from _common import impl_argument, report

IMPLS = ("evloop", "gevent")
WORKERS = {"evloop": "evloop.integrations.gunicorn.Worker", "gevent": "gevent"}
CONNS, WARMUP, DURATION = 50, 1, 3
HERE = os.path.dirname(os.path.abspath(__file__))


def _environment(impl):
    env = dict(os.environ)
    if impl == "evloop":
        # the gunicorn child must import the same evloop as this interpreter
        import evloop

        root = os.path.dirname(os.path.dirname(os.path.abspath(evloop.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(
            [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _gunicorn_flags():
    from gunicorn.config import KNOWN_SETTINGS

    names = {setting.name for setting in KNOWN_SETTINGS}
    # gunicorn >= 24 opens a control socket at a fixed path: not wanted here
    return ["--no-control-socket"] if "control_socket_disable" in names else []


def _wait_ready(port, proc, timeout=30.0):
    request = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited ({proc.returncode}) before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(request)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("gunicorn did not answer within 30 s")
        time.sleep(0.1)


def _wrk(port, seconds, headers):
    command = ["wrk", "-t1", f"-c{CONNS}", f"-d{seconds}s"]
    for header in headers:
        command += ["-H", header]
    command.append(f"http://127.0.0.1:{port}/")
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode:
        raise SystemExit(f"wrk failed ({out.returncode}): {out.stderr}")
    text = out.stdout
    if "Non-2xx" in text or "Socket errors" in text:
        raise SystemExit(f"wrk saw errors:\n{text}")
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", text)
    if not match:
        raise SystemExit(f"cannot read wrk's output:\n{text}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(3)]
    return int(match.group(1)), float(match.group(2)) * scale


def _children(pid):
    """pids of the processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _cpu_seconds(pid):
    """user + system CPU seconds used so far by process ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[11], fields[12]: utime, stime (stat fields 14 and 15), in clock ticks
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(headers=(), metric="wall"):
    """Entry point: serve with the impl's worker, measure with wrk ``headers``.
    ``metric`` "wall": requests / wrk's elapsed time; "cpu": requests / the CPU time
    (user + system) the worker process used meanwhile, which the other processes of a
    busy machine disturb much less than the wall time."""
    impl = impl_argument()
    if impl not in IMPLS:
        raise SystemExit(f"unsupported impl {impl!r}; choose from {IMPLS}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found (Debian/Ubuntu: apt-get install wrk)")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    command = [sys.executable, "-m", "gunicorn", "-k", WORKERS[impl], "-w", "1",
               "-b", f"fd://{fd}", "--log-level", "warning", *_gunicorn_flags(),
               "_gunicorn_app:app"]
    proc = subprocess.Popen(command, cwd=HERE, env=_environment(impl), pass_fds=(fd,),
                            stdout=subprocess.DEVNULL)
    try:
        listener.close()
        _wait_ready(port, proc)
        _wrk(port, WARMUP, headers)
        workers = _children(proc.pid)
        if len(workers) != 1:
            raise SystemExit(f"expected one gunicorn worker, found {workers}")
        cpu = _cpu_seconds(workers[0])
        ops, seconds = _wrk(port, DURATION, headers)
        if metric == "cpu":
            seconds = _cpu_seconds(workers[0]) - cpu
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    report(ops, seconds)
