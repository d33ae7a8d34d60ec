"""Real database servers for the tests that need one: PostgreSQL and Redis from the
machine's packages (Debian's ``postgresql`` and ``redis-server``; .ci/run installs them on
the host and in the CPython 3.14/3.15 chroot), each started in a temporary directory on a
free loopback port and removed afterwards. tests/conftest.py turns them into the
session fixtures ``postgres_dsn`` and ``redis_url``.

A missing server binary fails the test under CI (``CI`` set: .ci/run must have installed
it); locally it skips the test, naming the package to install.

PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` user that
Debian's package creates, in a directory that user owns (made under /tmp, which it can
reach: pytest's own tmp directories are private to root).
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Iterator, Optional

import pytest

STARTUP_SECONDS = 60.0


def missing(what: str, package: str) -> None:
    """Fail (under CI) or skip (locally): ``what`` is not installed."""
    message = (f"{what} not found: install Debian's {package} package "
               f"(apt-get install -y {package}; .ci/run does this)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bindir() -> Optional[str]:
    """The newest /usr/lib/postgresql/<version>/bin with initdb (not on PATH in Debian)."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        version = initdb.split("/")[4]
        try:
            found.append((float(version), os.path.dirname(initdb)))
        except ValueError:
            continue
    return max(found)[1] if found else None


def _wait_until(ready, proc: subprocess.Popen, log: str, what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}:\n"
                               f"{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start in {STARTUP_SECONDS}s:\n{_tail(log)}")
        time.sleep(0.05)


def _tail(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-4000:]
    except OSError as ex:
        return f"(no log: {ex})"


def _stop(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def postgres() -> Iterator[str]:
    """Start PostgreSQL, create the database ``evloop_test``, yield its DSN; stop the
    server and remove its directory after."""
    bindir = postgres_bindir()
    if bindir is None:
        missing("PostgreSQL's initdb (/usr/lib/postgresql/*/bin)", "postgresql")
    user_kwargs = {}
    directory = tempfile.mkdtemp(prefix="evloop-pg-")
    if os.geteuid() == 0:
        import pwd
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            missing("the postgres user (made by the package)", "postgresql")
        os.chown(directory, account.pw_uid, account.pw_gid)
        user_kwargs = dict(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
    data = os.path.join(directory, "data")
    log = os.path.join(directory, "server.log")
    port = free_port()
    proc = None
    try:
        with open(os.path.join(directory, "initdb.log"), "w") as out:
            subprocess.run([os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres",
                            "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                           stdout=out, stderr=subprocess.STDOUT, check=True, cwd=directory,
                           timeout=STARTUP_SECONDS, **user_kwargs)
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [os.path.join(bindir, "postgres"), "-D", data, "-p", str(port),
                 "-h", "127.0.0.1", "-k", directory, "-F",
                 "-c", "max_connections=150", "-c", "shared_buffers=16MB"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=directory, **user_kwargs)
        isready = [os.path.join(bindir, "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                   str(port), "-U", "postgres"]
        _wait_until(lambda: subprocess.run(isready).returncode == 0, proc, log, "postgres")
        subprocess.run([os.path.join(bindir, "createdb"), "-h", "127.0.0.1", "-p",
                        str(port), "-U", "postgres", "evloop_test"], check=True,
                       timeout=STARTUP_SECONDS)
        yield f"host=127.0.0.1 port={port} user=postgres dbname=evloop_test"
    finally:
        if proc is not None:
            _stop(proc, signal.SIGINT)  # "fast" shutdown
        shutil.rmtree(directory, ignore_errors=True)


def redis() -> Iterator[str]:
    """Start redis-server (no persistence), yield its URL; stop it after."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server", "redis-server")
    directory = tempfile.mkdtemp(prefix="evloop-redis-")
    log = os.path.join(directory, "server.log")
    port = free_port()
    proc = None
    try:
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
                 "--save", "", "--appendonly", "no", "--daemonize", "no"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=directory)
        _wait_until(lambda: _accepts(port), proc, log, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if proc is not None:
            _stop(proc, signal.SIGTERM)
        shutil.rmtree(directory, ignore_errors=True)
