"""Helpers shared by several test files: plain functions and classes (fixtures are in
conftest.py). Tests import them by name (``from _helpers import Ticker``); pytest puts
this directory on sys.path for the rootdir conftest.

What lives here must be generic to the tests that use it: a helper that only one file
needs stays in that file. Nothing here patches anything or starts anything at import.
"""
import datetime
import ipaddress
import os
import shutil
import signal
import ssl as stdlib_ssl
import subprocess
import sys
import textwrap
import threading
from typing import Dict, Optional, Sequence

import pytest

import evloop
from evloop import ssl as evssl
from evloop.hub import sleep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Boom(Exception):
    """Raised on purpose by a test's greenlet or task."""


def closed_fd():
    """An fd number that is not open (it was, a moment ago)."""
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    return r


# -- greenlets that prove the hub kept running -------------------------------------------

def in_thread(func):
    """Call ``func()`` in a new OS thread and wait for it (30 s at most); return its value,
    or raise its exception here."""
    box = {}

    def body():
        try:
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller
            box["error"] = exc

    t = threading.Thread(target=body)
    t.start()
    t.join(30)
    if "error" in box:
        raise box["error"]
    return box["value"]


class Ticker:
    """A greenlet counting sleeps of ``interval``: proof that the hub keeps running other
    greenlets while a test's call waits. A context manager, or ``stop()`` it."""

    def __init__(self, interval: float = 0.001) -> None:
        self.ticks = 0
        self.interval = interval
        self.glet = evloop.spawn(self._run)

    def _run(self) -> None:
        while True:
            sleep(self.interval)
            self.ticks += 1

    def stop(self) -> None:
        self.glet.kill(block=True, timeout=5)

    def __enter__(self) -> "Ticker":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def ticking(during):
    """Run ``during()`` while a greenlet counts 10 ms sleeps; return (result, ticks)."""
    ticks = [0]
    stop = [False]

    def ticker():
        while not stop[0]:
            sleep(0.01)
            ticks[0] += 1

    g = evloop.spawn(ticker)
    try:
        result = during()
    finally:
        stop[0] = True
        g.join()
    return result, ticks[0]


class Closer:
    """Collects sockets, files, fds and greenlets; closes/kills them at the end of a test
    (the ``closing`` fixture). ``None`` items are skipped."""

    def __init__(self):
        self.items = []

    def __call__(self, *items):
        self.items.extend(items)
        return items[0] if len(items) == 1 else items

    def close(self):
        for item in reversed(self.items):
            if isinstance(item, evloop.Greenlet):
                item.kill(block=True, timeout=5)
            elif isinstance(item, int):
                try:
                    os.close(item)
                except OSError:
                    pass
            elif item is not None:
                item.close()


# -- programs in a fresh interpreter -----------------------------------------------------

# appended to a child's code: it must have reaped every child it started
NO_CHILDREN_LEFT = """
try:
    _left = os.waitpid(-1, os.WNOHANG)
except ChildProcessError:
    pass
else:
    raise AssertionError(f"children left: {_left}")
"""


def run_py(code: str, timeout: float = 60, expect_rc: int = 0, *,
           faulthandler: bool = False, no_children_left: bool = False) -> str:
    """Run ``code`` with ``python -c`` (cwd: the repository); check its exit status; return
    its stdout. ``no_children_left``: with exit status 0 it must also have reaped every
    child it started."""
    code = textwrap.dedent(code)
    if no_children_left:
        code = "import os\n" + code + (NO_CHILDREN_LEFT if expect_rc == 0 else "")
    cmd = [sys.executable, *(("-X", "faulthandler") if faulthandler else ()), "-c", code]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == expect_rc, (f"exit {r.returncode}\n--- stdout\n{r.stdout}\n"
                                       f"--- stderr\n{r.stderr}")
    return r.stdout


TIMEOUT = 60.0

# every child dumps its stacks and exits before the parent's timeout if it hangs
_PRELUDE = (
    "import faulthandler, sys; faulthandler.dump_traceback_later(50, exit=True, "
    "file=sys.__stderr__)\n"
)


def _env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                else "")
    env.pop("PYTHONWARNINGS", None)
    env["PYTHONFAULTHANDLER"] = "1"
    env.update(extra or {})
    return env


def _check(proc: subprocess.CompletedProcess, expect_rc: Optional[int]) -> None:
    if expect_rc is not None and proc.returncode != expect_rc:
        pytest.fail(f"exit status {proc.returncode}, expected {expect_rc}\n"
                    f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")


def run_python(code: str, *args: str, expect_rc: Optional[int] = 0,
               python_args: Sequence[str] = (), cwd: Optional[str] = None,
               env: Optional[Dict[str, str]] = None,
               timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``code`` with ``python -c`` in a fresh interpreter; fail the test (with the
    child's output) on an unexpected exit status or a timeout."""
    cmd = [sys.executable, *python_args, "-c", _PRELUDE + textwrap.dedent(code), *args]
    return _run(cmd, expect_rc, cwd, env, timeout)


def run_command(args: Sequence[str], expect_rc: Optional[int] = 0, cwd: Optional[str] = None,
                env: Optional[Dict[str, str]] = None,
                timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return _run([sys.executable, *args], expect_rc, cwd, env, timeout)


def _run(cmd: Sequence[str], expect_rc: Optional[int], cwd: Optional[str],
         env: Optional[Dict[str, str]], timeout: float) -> subprocess.CompletedProcess:
    with subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, cwd=cwd or ROOT, env=_env(env)) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGABRT)     # PYTHONFAULTHANDLER: dump the stacks
            try:
                out, err = child.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                out, err = child.communicate()
            pytest.fail(f"timed out after {timeout}s\n--- stdout ---\n{out}\n"
                        f"--- stderr ---\n{err}")
    proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    _check(proc, expect_rc)
    return proc


# prepended to a child's code: a finder, first on sys.meta_path, that makes gevent
# unimportable, as if it were not installed
NO_GEVENT = """
import sys
class _NoGevent:
    def find_spec(self, name, path=None, target=None):
        if name == "gevent" or name.startswith("gevent."):
            raise ImportError(f"No module named {name!r} (hidden by the test)", name=name)
        return None
sys.meta_path.insert(0, _NoGevent())
"""


def run_json(code: str, *args: str, gevent: bool = True,
             env: Optional[Dict[str, str]] = None, timeout: float = 120):
    """``run_python`` (with ``NO_GEVENT`` first unless ``gevent``); return the JSON the
    child printed last, and the completed process."""
    import json
    proc = run_python(("" if gevent else NO_GEVENT) + textwrap.dedent(code), *args,
                      env=env, timeout=timeout)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc


def lines(proc: subprocess.CompletedProcess) -> list:
    return proc.stdout.splitlines()


# -- TLS certificates (the session's set: the certs fixture in conftest.py) --------------

def _make_with_cryptography(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(subject, issuer, key):
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2)))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (builder("evloop test CA", "evloop test CA", ca_key)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn, usage, sans):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (builder(cn, "evloop test CA", key)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
             .add_extension(x509.ExtendedKeyUsage([usage]), False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 ca_key.public_key()), False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), False)
        return key, b.sign(ca_key, hashes.SHA256())

    server_key, server = leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH,
                              [x509.DNSName("localhost"),
                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client_key, client = leaf("evloop client", ExtendedKeyUsageOID.CLIENT_AUTH, [])

    def key_pem(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    pem = serialization.Encoding.PEM
    files = {"ca": ca.public_bytes(pem), "cert": server.public_bytes(pem),
             "key": key_pem(server_key), "client_cert": client.public_bytes(pem),
             "client_key": key_pem(client_key)}
    for label, data in files.items():
        (directory / f"{label}.pem").write_bytes(data)


def _make_with_openssl(directory):
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=evloop test CA",
            "-keyout", "ca_key.pem", "-out", "ca.pem")
    (directory / "server.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n")
    (directory / "client.cnf").write_text(
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    for label, cn in (("", "localhost"), ("client_", "evloop client")):
        ext = "server.cnf" if not label else "client.cnf"
        openssl("req", *ec, "-subj", f"/CN={cn}", "-keyout", f"{label}key.pem",
                "-out", f"{label}req.csr")
        openssl("x509", "-req", "-in", f"{label}req.csr", "-CA", "ca.pem", "-CAkey",
                "ca_key.pem", "-CAcreateserial", "-days", "2", "-extfile", ext,
                "-out", f"{label}cert.pem")


def make_certs(directory):
    """Write a test CA, a server certificate for localhost and 127.0.0.1 and a client
    certificate into ``directory``; return their paths: ca, cert, key, client_cert,
    client_key (with the cryptography package, else the openssl command, else skip)."""
    try:
        _make_with_cryptography(directory)
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command")
        _make_with_openssl(directory)
    return {label: str(directory / f"{label}.pem")
            for label in ("ca", "cert", "key", "client_cert", "client_key")}


def server_context(certs, cls=evssl.SSLContext):
    ctx = cls(stdlib_ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    return ctx


def client_context(certs):
    return evssl.create_default_context(cafile=certs["ca"])
