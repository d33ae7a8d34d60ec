"""Tests for evloop._stdlib_subprocess: what evloop.subprocess relies on in the stdlib's
``subprocess.Popen`` still holds on the running CPython.

A failure names the member or detail, the running CPython and the versions the record was
checked on: the place to look when a new CPython changes ``subprocess.Popen`` (before a
program that waits for a child hangs or loses its exit status).
"""
import io
import subprocess
import sys
import textwrap

import pytest

import evloop.subprocess as esp
from evloop import _stdlib_subprocess as record

PY = sys.version.split()[0]
WHERE = f"CPython {PY} (evloop._stdlib_subprocess was checked on {record.CHECKED})"


def _public_members(cls: type) -> set:
    """The public members ``cls`` itself defines: functions, properties, classmethods and
    staticmethods, dunders included."""
    return {name for name, value in vars(cls).items()
            if (not name.startswith("_") or (name.startswith("__") and name.endswith("__")))
            and (callable(value) or isinstance(value, (property, classmethod, staticmethod)))}


def _layers(f: object) -> tuple:
    names = []
    while f is not None:
        names.append(type(f).__name__)
        f = getattr(f, "buffer", None) or getattr(f, "raw", None) or getattr(f, "_raw", None)
    return tuple(names)


def test_every_public_member_of_popen_is_overridden_or_recorded_as_inherited():
    members = _public_members(subprocess.Popen)
    known = set(record.OVERRIDDEN) | set(record.INHERITED)
    new = sorted(members - known)
    assert not new, (
        f"{WHERE}: subprocess.Popen has {new}, which evloop.subprocess.Popen inherits "
        "unchecked: see whether it waits for the child, reaps it or reads the pipes, then "
        "override it or record it in _stdlib_subprocess.INHERITED")
    gone = sorted(known - members - {"__init__"})
    assert not gone, f"{WHERE}: subprocess.Popen no longer defines {gone}"


def test_overridden_members_are_evloops_and_inherited_ones_the_stdlibs():
    ours = _public_members(esp.Popen)
    assert ours == set(record.OVERRIDDEN), (
        f"evloop.subprocess.Popen defines {sorted(ours)}; _stdlib_subprocess.OVERRIDDEN "
        f"says {sorted(record.OVERRIDDEN)}")
    for name in record.INHERITED:
        assert name not in vars(esp.Popen), name


@pytest.mark.parametrize("bufsize,text", sorted(record.PIPE_LAYERS))
def test_the_stdlibs_pipe_files_have_the_recorded_layers(bufsize, text):
    stdin_layers, stdout_layers = record.PIPE_LAYERS[(bufsize, text)]
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, bufsize=bufsize, text=text)
    try:
        got = (_layers(p.stdin), _layers(p.stdout), _layers(p.stderr))
        assert got == (stdin_layers, stdout_layers, stdout_layers), (
            f"{WHERE}: Popen(bufsize={bufsize}, text={text}) makes pipe files {got}, "
            f"recorded {stdin_layers}, {stdout_layers}: evloop.subprocess._green_file "
            "rebuilds these layers")
        if text:
            assert p.stdin.line_buffering is (bufsize == 1), WHERE
    finally:
        for f in (p.stdin, p.stdout, p.stderr):
            f.close()
        p.wait()


@pytest.mark.parametrize("bufsize,text", sorted(record.PIPE_LAYERS))
def test_evloops_pipe_files_keep_the_layers_over_green_raw_files(bufsize, text):
    stdin_layers, stdout_layers = record.PIPE_LAYERS[(bufsize, text)]
    green = lambda layers: layers[:-1] + ("_GreenPipe", "FileIO")  # noqa: E731
    p = esp.Popen(["cat"], stdin=esp.PIPE, stdout=esp.PIPE, bufsize=bufsize, text=text)
    try:
        assert (_layers(p.stdin), _layers(p.stdout)) == (green(stdin_layers),
                                                          green(stdout_layers))
        data = "x\n" if text else b"x\n"
        p.stdin.write(data)
        p.stdin.flush()
        assert p.stdout.readline() == data
    finally:
        p.stdin.close()
        p.stdout.close()
        p.wait()
    assert isinstance(p.stdout, io.IOBase)


def test_inherited_members_do_not_wait_for_a_running_child():
    # os.waitpid spied on before subprocess binds it (3.12+ keeps a copy for __del__)
    code = textwrap.dedent("""
        import gc, os, signal, time
        calls = []
        real_waitpid = os.waitpid
        def spy(pid, options):
            calls.append((pid, options))
            return real_waitpid(pid, options)
        os.waitpid = spy
        import subprocess

        class Recording(subprocess.Popen):
            signals = []
            def send_signal(self, sig):
                self.signals.append(sig)

        p = Recording(["sleep", "10"])
        assert calls == [], ("__init__", calls)
        assert p.__enter__() is p and repr(p) and not p.universal_newlines
        p.terminate()
        p.kill()
        assert p.signals == [signal.SIGTERM, signal.SIGKILL], ("kill/terminate", p.signals)
        assert calls == [], ("__enter__/repr/universal_newlines/kill/terminate", calls)
        os.kill(p.pid, signal.SIGKILL)
        real_waitpid(p.pid, 0)
        p.returncode = -signal.SIGKILL  # as evloop's watch sets it
        del p
        gc.collect()
        assert calls == [], ("__del__ with the returncode set", calls)

        # __del__ of a child whose returncode is unset polls it (without blocking): why
        # evloop's watch keeps a watched Popen alive until the child is reaped
        p = subprocess.Popen(["sleep", "10"])
        pid = p.pid
        import warnings
        warnings.simplefilter("ignore", ResourceWarning)
        del p
        gc.collect()
        assert calls == [(pid, os.WNOHANG)], ("__del__ of a running child", calls)
        os.kill(pid, signal.SIGKILL)
        real_waitpid(pid, 0)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "ok" in proc.stdout, (
        f"{WHERE}: an inherited member of subprocess.Popen no longer does what "
        f"_stdlib_subprocess.INHERITED says:\n{proc.stderr.strip()}")
