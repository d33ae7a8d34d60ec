"""Tests for evloop.subprocess: cooperative Popen (wait, poll, communicate, pipes), run,
call, check_call, check_output, getoutput, parity with the stdlib's errors, and the
SIGCHLD interplay.

Each test reaps every child it starts; afterwards no child watch is left and libev's
SIGCHLD handler is down (the ``hub`` fixture checks). Tests that install a SIGCHLD handler
run in a fresh interpreter. Timing assertions use lower bounds and generous upper bounds.
"""
import array
import gc
import os
import signal
import stat
import subprocess
import threading
import time
import warnings
import weakref

import pytest

import evloop
import evloop.os as evos
import evloop.subprocess as esp

from _helpers import run_py as _run_py


def run_py(code: str, timeout: float = 60) -> str:
    """Run ``code`` in a new interpreter; it must exit 0 and leave no child unreaped."""
    return _run_py(code, timeout, no_children_left=True)


pytestmark = pytest.mark.usefixtures("no_child_watches")


class Ticker:
    """A greenlet that counts 10 ms ticks: proof that the hub ran meanwhile."""

    def __init__(self):
        self.ticks = 0
        self.g = evloop.spawn(self._run)

    def _run(self):
        while True:
            self.ticks += 1
            evloop.sleep(0.01)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.g.kill()


# -- the module ----------------------------------------------------------------------------


def test_reexports_are_the_stdlib_objects():
    assert issubclass(esp.Popen, subprocess.Popen)
    for name in ("PIPE", "STDOUT", "DEVNULL", "CalledProcessError", "TimeoutExpired",
                 "CompletedProcess", "SubprocessError", "list2cmdline"):
        assert getattr(esp, name) is getattr(subprocess, name), name
    for name in esp.__all__:
        assert hasattr(esp, name), name


# -- run / call / check_* ------------------------------------------------------------------


def test_run_capture_output(hub):
    r = esp.run(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True)
    assert isinstance(r, subprocess.CompletedProcess)
    assert (r.returncode, r.stdout, r.stderr) == (3, b"out\n", b"err\n")
    assert r.args == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    r = esp.run(["true"])
    assert (r.returncode, r.stdout, r.stderr) == (0, None, None)


def test_run_check_and_input(hub):
    with pytest.raises(subprocess.CalledProcessError) as info:
        esp.run(["sh", "-c", "cat; echo bad >&2; exit 2"], input=b"data", capture_output=True,
                check=True)
    e = info.value
    assert (e.returncode, e.output, e.stderr) == (2, b"data", b"bad\n")
    with pytest.raises(ValueError):
        esp.run(["cat"], input=b"x", stdin=esp.PIPE)
    with pytest.raises(ValueError):
        esp.run(["true"], capture_output=True, stdout=esp.PIPE)


def test_run_timeout_kills_and_reaps(hub):
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as info:
        esp.run(["sh", "-c", "echo started; exec sleep 10"], stdout=esp.PIPE, timeout=0.3)
    elapsed = time.monotonic() - t0
    assert 0.25 <= elapsed < 5
    assert info.value.timeout == 0.3
    assert info.value.output == b"started\n"


def test_call_and_check_call(hub):
    assert esp.call(["sh", "-c", "exit 4"]) == 4
    assert esp.call("exit 5", shell=True) == 5
    assert esp.check_call(["true"]) == 0
    with pytest.raises(subprocess.CalledProcessError) as info:
        esp.check_call(["sh", "-c", "exit 6"])
    assert info.value.returncode == 6 and info.value.cmd == ["sh", "-c", "exit 6"]
    with pytest.raises(subprocess.TimeoutExpired):
        esp.call(["sleep", "10"], timeout=0.1)


def test_check_output(hub):
    assert esp.check_output(["echo", "hi"]) == b"hi\n"
    assert esp.check_output(["sh", "-c", "echo a; echo b >&2"], stderr=esp.STDOUT) == b"a\nb\n"
    assert esp.check_output(["cat"], input=b"in") == b"in"
    assert esp.check_output(["cat"], input=None, text=True) == ""
    assert esp.check_output(["printf", "x\\r\\ny"], text=True) == "x\ny"
    with pytest.raises(subprocess.CalledProcessError) as info:
        esp.check_output(["sh", "-c", "echo partial; exit 1"])
    assert info.value.output == b"partial\n"
    with pytest.raises(ValueError):
        esp.check_output(["true"], stdout=esp.PIPE)


def test_getoutput(hub):
    assert esp.getoutput("echo hello") == "hello"
    assert esp.getstatusoutput("echo oops; exit 3") == (3, "oops")


# -- Popen: wait / poll --------------------------------------------------------------------


def test_wait_blocks_only_the_greenlet(hub):
    with Ticker() as ticker:
        p = esp.Popen(["sleep", "0.3"])
        t0 = time.monotonic()
        assert p.wait() == 0
        elapsed = time.monotonic() - t0
    assert 0.25 <= elapsed < 3
    assert ticker.ticks >= 3  # ~30 when the loop is not starved
    assert p.returncode == 0


def test_three_children_in_three_greenlets_run_in_parallel(hub):
    spans = []

    def child():
        start = time.monotonic()
        rc = esp.call(["sleep", "0.3"])
        spans.append((start, time.monotonic()))
        return rc

    t0 = time.monotonic()
    gs = [evloop.spawn(child) for _ in range(3)]
    evloop.joinall(gs, timeout=20)
    elapsed = time.monotonic() - t0
    assert [g.value for g in gs] == [0, 0, 0]
    # the three ran at the same time: each started before any finished (a blocking wait
    # would start the second child only after the first ended)
    assert max(s for s, _e in spans) < min(e for _s, e in spans)
    assert 0.3 <= elapsed < 3  # ~0.3 s, not 0.9 s


def test_wait_timeout(hub):
    p = esp.Popen(["sleep", "10"])
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as info:
        p.wait(timeout=0.2)
    assert 0.18 <= time.monotonic() - t0 < 3
    assert info.value.timeout == 0.2 and info.value.cmd == ["sleep", "10"]
    assert p.returncode is None and p.poll() is None
    p.kill()
    assert p.wait(timeout=10) == -signal.SIGKILL
    assert p.wait() == -signal.SIGKILL


def test_poll_and_returncode(hub):
    p = esp.Popen(["sh", "-c", "sleep 0.2; exit 9"])
    assert p.poll() is None and p.returncode is None
    deadline = time.monotonic() + 10
    while p.poll() is None and time.monotonic() < deadline:
        evloop.sleep(0.02)
    assert p.returncode == 9 and p.poll() == 9 and p.wait() == 9


def test_poll_without_the_loop_running(hub):
    # poll() asks the OS as well: right after the child exits it knows, with no loop turn
    p = esp.Popen(["true"])
    time.sleep(0.2)  # the hub does not run
    assert p.poll() == 0


def test_wait_from_two_greenlets(hub):
    p = esp.Popen(["sh", "-c", "sleep 0.2; exit 3"])
    gs = [evloop.spawn(p.wait) for _ in range(2)]
    evloop.joinall(gs, timeout=10)
    assert [g.value for g in gs] == [3, 3]


def test_signals_and_returncode(hub):
    p = esp.Popen(["sleep", "10"])
    p.terminate()
    assert p.wait(timeout=10) == -signal.SIGTERM
    p.send_signal(signal.SIGKILL)  # already dead: nothing is sent
    p = esp.Popen(["sleep", "10"])
    os.kill(p.pid, signal.SIGKILL)  # killed from outside
    assert p.wait(timeout=10) == -signal.SIGKILL


def test_context_manager_waits_and_closes(hub):
    with esp.Popen(["sh", "-c", "echo hi; sleep 0.1"], stdout=esp.PIPE) as p:
        assert p.stdout.read() == b"hi\n"
    assert p.returncode == 0 and p.stdout.closed


def test_context_manager_after_keyboard_interrupt_waits_a_moment_only(hub):
    # the stdlib's rule: Ctrl-C reached the child too; give it a moment, not forever
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with esp.Popen(["sleep", "10"]) as p:
            raise KeyboardInterrupt
    assert 0.2 <= time.monotonic() - t0 < 3
    assert p.returncode is None
    p.kill()
    assert p.wait(timeout=10) == -signal.SIGKILL
    with pytest.raises(KeyboardInterrupt):
        with esp.Popen(["sleep", "10"]) as p:
            os.kill(p.pid, signal.SIGINT)
            raise KeyboardInterrupt
    assert p.returncode == -signal.SIGINT  # it exited within the moment: reaped


def test_dropped_popen_is_reaped_and_collected_without_a_warning(hub):
    # the child watch keeps the Popen until the child is reaped, so the stdlib's __del__
    # finds the returncode set (no "still running" warning, no waitpid of its own)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = esp.Popen(["sleep", "0.2"])
        ref = weakref.ref(p)
        del p
        gc.collect()
        assert ref() is not None
        deadline = time.monotonic() + 10
        while evos._watches and time.monotonic() < deadline:
            evloop.sleep(0.01)
        gc.collect()
        assert ref() is None
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_many_children(hub):
    ps = [esp.Popen(["sh", "-c", f"exit {i % 7}"]) for i in range(30)]
    assert [p.wait(timeout=20) for p in ps] == [i % 7 for i in range(30)]


def test_popen_in_another_thread(hub):
    # a thread's hub runs its own loop (no child watchers there): waits poll the OS
    result = []

    def in_thread():
        try:
            p = esp.Popen(["sh", "-c", "sleep 0.1; cat; exit 2"], stdin=esp.PIPE,
                          stdout=esp.PIPE)
            out, _ = p.communicate(b"threaded", timeout=10)
            result.append((out, p.returncode))
            result.append(esp.call(["sleep", "0.1"]))
        finally:
            evloop.get_hub().destroy()

    with Ticker() as ticker:
        t = threading.Thread(target=in_thread)
        t.start()
        while t.is_alive():
            evloop.sleep(0.01)
    assert result == [(b"threaded", 2), 0]
    assert ticker.ticks >= 3


@pytest.mark.parametrize("main_runs_the_loop", [True, False])
def test_wait_from_another_thread(hub, main_runs_the_loop):
    # created (and watched) in the main thread, waited for in another one: that thread
    # polls, so it needs neither the main loop running nor a child watcher of its own
    p = esp.Popen(["sh", "-c", "sleep 0.2; exit 5"])
    result = []

    def in_thread():
        try:
            result.append(p.wait(timeout=20))
        finally:
            evloop.get_hub().destroy()

    t = threading.Thread(target=in_thread)
    t.start()
    if main_runs_the_loop:
        while t.is_alive():
            evloop.sleep(0.01)
    t.join(20)  # the main thread's loop does not run meanwhile
    assert result == [5] and p.returncode == 5


def test_os_waitpid_after_wait_returns_the_status(hub):
    # gevent's rule: a Popen's status stays available to evloop.os.waitpid
    p = esp.Popen(["sh", "-c", "exit 12"])
    assert p.wait() == 12
    pid, status = evos.waitpid(p.pid, 0)
    assert pid == p.pid and os.waitstatus_to_exitcode(status) == 12
    with pytest.raises(ChildProcessError):
        evos.waitpid(p.pid, 0)


def test_os_waitpid_before_wait(hub):
    p = esp.Popen(["sh", "-c", "sleep 0.1; exit 13"])
    pid, status = evos.waitpid(p.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 13
    assert p.wait(timeout=10) == 13  # told by the same report


def test_child_reaped_behind_popen_back(hub):
    # as in the stdlib: a status someone else took is lost, and the returncode is 0
    p = esp.Popen(["sh", "-c", "exit 3"])
    os.waitpid(p.pid, 0)
    assert p.wait(timeout=10) == 0


def test_stdlib_subprocess_unaffected_afterwards(hub):
    assert esp.call(["true"]) == 0
    evloop.sleep(0)
    assert subprocess.run(["sh", "-c", "exit 7"]).returncode == 7
    p = subprocess.Popen(["sh", "-c", "sleep 0.1; exit 8"])
    assert p.wait() == 8


# -- communicate ---------------------------------------------------------------------------


def test_communicate_large_both_ways(hub):
    data = os.urandom(1 << 20)
    with Ticker() as ticker:
        p = esp.Popen(["sh", "-c", "cat; cat /dev/null >&2; head -c 300000 /dev/zero >&2"],
                      stdin=esp.PIPE, stdout=esp.PIPE, stderr=esp.PIPE)
        out, err = p.communicate(data, timeout=30)
    assert out == data and err == b"\0" * 300000
    assert p.returncode == 0
    assert ticker.ticks >= 1


def test_communicate_text_mode(hub):
    p = esp.Popen(["sh", "-c", "cat; printf 'e\\r\\n' >&2"], stdin=esp.PIPE, stdout=esp.PIPE,
                  stderr=esp.PIPE, text=True, encoding="utf-8")
    out, err = p.communicate("héllo\r\nwörld\n")
    assert (out, err) == ("héllo\nwörld\n", "e\n")


def test_communicate_single_pipe_fast_paths(hub):
    p = esp.Popen(["cat"], stdin=esp.PIPE)  # stdin only: the stdlib's write-and-close path
    assert p.communicate(b"to-nowhere") == (None, None)
    p = esp.Popen(["echo", "only-out"], stdout=esp.PIPE)
    assert p.communicate() == (b"only-out\n", None)
    p = esp.Popen(["sh", "-c", "echo only-err >&2"], stderr=esp.PIPE)
    assert p.communicate() == (None, b"only-err\n")
    p = esp.Popen(["true"])
    assert p.communicate() == (None, None) and p.returncode == 0


def test_communicate_timeout_then_resume(hub):
    p = esp.Popen(["sh", "-c", "echo first; sleep 0.4; echo second"], stdout=esp.PIPE,
                  stderr=esp.PIPE)
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as info:
        p.communicate(timeout=0.2)
    assert 0.18 <= time.monotonic() - t0 < 3
    assert info.value.output == b"first\n"
    out, err = p.communicate(timeout=10)
    assert (out, err) == (b"first\nsecond\n", b"")
    assert p.returncode == 0


def test_communicate_timeout_with_input_then_resume(hub):
    data = b"z" * 300000  # more than a pipe holds: the writing is interrupted
    p = esp.Popen(["sh", "-c", "sleep 0.3; cat"], stdin=esp.PIPE, stdout=esp.PIPE)
    with pytest.raises(subprocess.TimeoutExpired):
        p.communicate(data, timeout=0.1)
    with pytest.raises(ValueError):
        p.communicate(b"more")  # as the stdlib: no new input once started
    out, _ = p.communicate(timeout=10)  # the rest of the input is sent
    assert out == data


def test_communicate_child_not_reading_stdin(hub):
    p = esp.Popen(["true"], stdin=esp.PIPE, stdout=esp.PIPE)
    out, _ = p.communicate(b"x" * 1000000, timeout=10)  # EPIPE ignored
    assert out == b"" and p.returncode == 0


def test_communicate_timeout_while_waiting_for_the_exit(hub):
    # the pipes reach their end, the child goes on: TimeoutExpired from the final wait
    # carries the caller's timeout (as 3.15's stdlib; earlier ones gave what was left)
    p = esp.Popen(["sh", "-c", "exec >&- 2>&-; exec sleep 10"], stdout=esp.PIPE,
                  stderr=esp.PIPE)
    with pytest.raises(subprocess.TimeoutExpired) as info:
        p.communicate(timeout=0.3)
    assert info.value.timeout == 0.3
    p.kill()
    assert p.communicate() == (b"", b"") and p.returncode == -signal.SIGKILL


def test_communicate_input_of_any_buffer(hub):
    # a buffer of 4-byte items goes out whole (3.15's stdlib casts to bytes; so does evloop)
    data = array.array("i", range(50000))
    p = esp.Popen(["cat"], stdin=esp.PIPE, stdout=esp.PIPE, stderr=esp.PIPE)
    out, err = p.communicate(memoryview(data), timeout=30)
    assert out == data.tobytes() and err == b""
    p = esp.Popen(["cat"], stdin=esp.PIPE, stdout=esp.PIPE)
    with pytest.raises(TypeError):
        p.communicate("text in a binary pipe", timeout=10)  # the stdlib's error
    assert p.communicate(b"bytes", timeout=10) == (b"bytes", None)  # nothing had started


def test_communicate_kill_then_communicate(hub):
    p = esp.Popen(["sh", "-c", "echo a; exec sleep 10"], stdout=esp.PIPE)
    with pytest.raises(subprocess.TimeoutExpired):
        p.communicate(timeout=0.2)
    p.kill()
    out, _ = p.communicate()
    assert out == b"a\n" and p.returncode == -signal.SIGKILL


# -- the pipes -----------------------------------------------------------------------------


def test_pipe_reads_are_cooperative(hub):
    p = esp.Popen(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done"],
                  stdout=esp.PIPE, text=True)
    with Ticker() as ticker:
        lines = list(p.stdout)
    assert lines == ["1\n", "2\n", "3\n"]
    assert ticker.ticks >= 3  # ~30 when the loop is not starved
    assert p.wait() == 0
    p.stdout.close()


def test_pipe_writes_are_cooperative(hub):
    p = esp.Popen(["sh", "-c", "sleep 0.3; cat >/dev/null"], stdin=esp.PIPE)
    with Ticker() as ticker:
        t0 = time.monotonic()
        p.stdin.write(b"y" * (1 << 20))  # more than the pipe holds: waits for the reader
        p.stdin.close()
        assert time.monotonic() - t0 >= 0.25
    assert ticker.ticks >= 3  # ~30 when the loop is not starved
    assert p.wait() == 0


def test_pipe_files_keep_their_stdlib_shape(hub):
    p = esp.Popen(["cat"], stdin=esp.PIPE, stdout=esp.PIPE, bufsize=0)
    assert os.get_blocking(p.stdin.fileno())  # left blocking
    p.stdin.write(b"raw")
    assert p.stdout.read(3) == b"raw"
    p.stdin.close()
    assert p.stdout.read() == b""
    p.stdout.close()
    p.wait()
    p = esp.Popen(["cat"], stdin=esp.PIPE, stdout=esp.PIPE, text=True, bufsize=1,
                  encoding="latin-1", errors="replace")
    assert p.stdin.line_buffering and p.stdout.encoding == "latin-1"
    assert p.stdout.errors == "replace"
    p.stdin.write("line\n")  # line buffered: flushed at once
    assert p.stdout.readline() == "line\n"
    p.stdin.close()
    p.stdout.close()
    p.wait()
    p = esp.Popen(["cat"], stdin=esp.PIPE, stdout=esp.PIPE)
    assert os.get_blocking(p.stdout.fileno()) and os.get_blocking(p.stdin.fileno())
    p.stdin.write(b"buffered")
    p.stdin.flush()
    assert p.stdout.read1(100) == b"buffered"
    p.stdin.close()
    assert p.stdout.read() == b""
    p.stdout.close()
    p.wait()


def test_pipeline(hub):
    # the first child's stdout, handed to the second child, must stay a blocking fd
    p1 = esp.Popen(["sh", "-c", "sleep 0.1; echo one two three"], stdout=esp.PIPE)
    p2 = esp.Popen(["wc", "-w"], stdin=p1.stdout, stdout=esp.PIPE)
    p1.stdout.close()
    out, _ = p2.communicate(timeout=10)
    assert out.strip() == b"3"
    assert p1.wait() == 0 and p2.returncode == 0


def test_closing_a_pipe_wakes_its_reader(hub):
    p = esp.Popen(["sleep", "10"], stdout=esp.PIPE, bufsize=0)
    reader = evloop.spawn(p.stdout.read, 10)
    evloop.sleep(0.05)
    p.stdout.close()
    reader.join(timeout=5)
    assert isinstance(reader.exception, OSError)
    p.kill()
    p.wait()


# -- errors: the stdlib's ------------------------------------------------------------------


def _popen_error(cls, *args, **kwargs):
    try:
        p = cls(*args, **kwargs)
    except Exception as e:  # noqa: BLE001
        return type(e), str(e)
    p.kill()
    p.wait()
    return None


def test_bad_arguments_raise_what_the_stdlib_raises(hub, tmp_path):
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\necho hi\n")
    plain.chmod(stat.S_IRUSR | stat.S_IWUSR)
    cases = [
        ((["/nonexistent/program"],), {}),
        ((["evloop-no-such-program-x"],), {}),
        ((["true"],), {"cwd": "/nonexistent/dir"}),
        ((["true"],), {"executable": "/nonexistent/exe"}),
        (([str(tmp_path)],), {}),
        (([str(plain)],), {}),
        ((123,), {}),
        (([],), {}),
        ((["true"],), {"env": {"A": "x\0y"}}),
        ((["tr\0ue"],), {}),
        ((["true"],), {"stdin": "bogus"}),
        ((["true"],), {"bufsize": "x"}),
        ((["true"],), {"no_such_keyword": 1}),
        ((["true"],), {"text": True, "universal_newlines": False}),
        ((["true"],), {"startupinfo": object()}),
    ]
    for args, kwargs in cases:
        ours = _popen_error(esp.Popen, *args, **kwargs)
        theirs = _popen_error(subprocess.Popen, *args, **kwargs)
        assert theirs is not None, (args, kwargs)
        assert ours == theirs, (args, kwargs, ours, theirs)
    with pytest.raises(FileNotFoundError):
        esp.run(["/nonexistent/program"])
    with pytest.raises(FileNotFoundError):
        esp.check_output(["/nonexistent/program"])


# -- SIGCHLD -------------------------------------------------------------------------------


def test_users_sigchld_handler_still_works():
    out = run_py("""
        import signal, subprocess, time, evloop, evloop.subprocess as esp
        calls = []
        def handler(signum, frame):
            calls.append(signum)
        signal.signal(signal.SIGCHLD, handler)  # the user's own, before evloop
        t0 = time.monotonic()
        gs = [evloop.spawn(esp.call, ["sleep", "0.2"]) for _ in range(3)]
        evloop.joinall(gs)
        assert [g.value for g in gs] == [0, 0, 0]
        assert time.monotonic() - t0 < 5
        evloop.sleep(0.05)
        assert calls and set(calls) == {signal.SIGCHLD}, calls
        # the handler is the process's again: the stdlib's children reach it directly
        hub = evloop.get_hub()
        assert not hub.loop.sigchld_installed
        assert signal.getsignal(signal.SIGCHLD) is handler
        n = len(calls)
        assert subprocess.run(["sh", "-c", "exit 4"]).returncode == 4
        time.sleep(0.05)  # a plain Python handler runs without the hub
        assert len(calls) > n
        print("ok")
    """)
    assert "ok" in out


def test_sigchld_ignored_by_user():
    out = run_py("""
        import signal, evloop, evloop.subprocess as esp
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        # while evloop waits, libev's handler replaces SIG_IGN: real statuses
        assert esp.call(["sh", "-c", "sleep 0.1; exit 3"]) == 3
        evloop.sleep(0)
        assert signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN
        print("ok")
    """)
    assert "ok" in out


def test_works_with_the_stdlib_names_patched():
    # what evloop.monkey does: the stdlib's names replaced by evloop's, which must keep
    # calling the originals (no recursion) and cooperate with each other
    out = run_py("""
        import signal, subprocess, time
        import evloop, evloop.os as evos, evloop.signal as esig, evloop.subprocess as esp
        os.fork, os.waitpid, os.wait = evos.fork, evos.waitpid, evos.wait
        signal.signal, signal.getsignal = esig.signal, esig.getsignal
        for name in ("Popen", "run", "call", "check_call", "check_output"):
            setattr(subprocess, name, getattr(esp, name))
        calls = []
        signal.signal(signal.SIGCHLD, lambda s, f: calls.append(s))
        with_ticks = []
        def tick():
            while True:
                with_ticks.append(1); evloop.sleep(0.01)
        t = evloop.spawn(tick)
        assert subprocess.run(["sh", "-c", "sleep 0.2; exit 3"]).returncode == 3
        assert subprocess.check_output(["echo", "x"]) == b"x\\n"
        try:
            subprocess.Popen(["/nonexistent/program"])
        except FileNotFoundError:
            pass
        pid = os.fork()
        if pid == 0:
            time.sleep(0.1)
            os._exit(4)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 4
        pid = os.fork()
        if pid == 0:
            os._exit(5)
        rpid, status = os.wait()
        assert rpid == pid and os.waitstatus_to_exitcode(status) == 5
        t.kill()
        assert len(with_ticks) >= 3
        evloop.sleep(0.05)
        assert calls, "SIGCHLD handler called"
        print("ok")
    """)
    assert "ok" in out
