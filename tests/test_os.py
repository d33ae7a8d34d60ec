"""Tests for evloop.os: nb_read/nb_write/make_nonblocking, fork/forkpty, waitpid.

Forks run in a fresh interpreter (``run_py``); the in-process tests only start children
through ``subprocess``/``evloop.subprocess`` and reap every one of them. After each test
no child watch is left and libev's SIGCHLD handler is down again. Timing assertions use
lower bounds and generous upper bounds.
"""
import os
import subprocess
import threading
import time

import pytest

import evloop
import evloop.os as evos

from _helpers import run_py as _run_py


def run_py(code: str, timeout: float = 60) -> str:
    """Run ``code`` in a new interpreter; it must exit 0 and leave no child unreaped.
    Returns its stdout."""
    return _run_py(code, timeout, no_children_left=True)


pytestmark = pytest.mark.usefixtures("no_child_watches")


def _ticker(ticks):
    while True:
        ticks.append(time.monotonic())
        evloop.sleep(0.01)


# -- re-exports ----------------------------------------------------------------------------


def test_reexports_os():
    assert evos.getpid() == os.getpid()
    assert evos.WNOHANG == os.WNOHANG
    assert evos.path is os.path
    assert evos.waitpid is not os.waitpid and evos.fork is not os.fork
    for name in evos.__all__:
        assert callable(getattr(evos, name))


# -- non-blocking fds ----------------------------------------------------------------------


def test_make_nonblocking():
    r, w = os.pipe()
    try:
        assert os.get_blocking(r)
        assert evos.make_nonblocking(r) is True
        assert not os.get_blocking(r)
        assert evos.make_nonblocking(r) is False
        assert not os.get_blocking(r)
        assert os.get_blocking(w)  # the other end is another open file description
    finally:
        os.close(r)
        os.close(w)


def test_nb_read_waits_only_the_greenlet(hub):
    r, w = os.pipe()
    evos.make_nonblocking(r)
    evos.make_nonblocking(w)
    ticks = []
    ticker = evloop.spawn(_ticker, ticks)
    try:
        writer = evloop.spawn_later(0.15, evos.nb_write, w, b"hello")
        t0 = time.monotonic()
        data = evos.nb_read(r, 100)
        elapsed = time.monotonic() - t0
        assert data == b"hello"
        assert writer.get(timeout=5) == 5
        assert elapsed >= 0.1
        assert len(ticks) >= 3  # the ticker ran while nb_read waited (~15 ticks)
        os.close(w)
        assert evos.nb_read(r, 100) == b""  # end of file
    finally:
        ticker.kill()
        os.close(r)
        try:
            os.close(w)
        except OSError:
            pass


def test_nb_write_waits_for_room(hub):
    r, w = os.pipe()
    evos.make_nonblocking(r)
    evos.make_nonblocking(w)
    try:
        # fill the pipe until a write would block
        chunk = b"x" * 65536
        filled = 0
        while True:
            try:
                filled += os.write(w, chunk)
            except BlockingIOError:
                break
        drained = []

        def drain():
            evloop.sleep(0.1)
            total = 0
            while total < filled + 10:
                total += len(evos.nb_read(r, 1 << 20))
            drained.append(total)

        g = evloop.spawn(drain)
        t0 = time.monotonic()
        n = evos.nb_write(w, b"0123456789")
        assert time.monotonic() - t0 >= 0.05
        assert n == 10
        g.join(timeout=10)
        assert drained == [filled + 10]
    finally:
        os.close(r)
        os.close(w)


def test_nb_read_bad_fd(hub):
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError):
        evos.nb_read(r, 10)
    with pytest.raises(OSError):
        evos.nb_write(w, b"x")


# -- waitpid, in process (children from subprocess.Popen) ----------------------------------


def test_waitpid_blocks_only_the_greenlet(hub):
    p = subprocess.Popen(["sh", "-c", "sleep 0.3; exit 7"])
    ticks = []
    ticker = evloop.spawn(_ticker, ticks)
    try:
        t0 = time.monotonic()
        pid, status = evos.waitpid(p.pid, 0)
        elapsed = time.monotonic() - t0
    finally:
        ticker.kill()
    assert pid == p.pid
    assert os.waitstatus_to_exitcode(status) == 7
    assert 0.25 <= elapsed < 5
    assert len(ticks) >= 3  # ~30 when the loop is not starved
    # the child is gone: the OS has no status left either
    with pytest.raises(ChildProcessError):
        os.waitpid(p.pid, os.WNOHANG)
    p.returncode = 7  # stop the stdlib object from polling a reaped pid


def test_waitpid_wnohang(hub):
    p = subprocess.Popen(["sleep", "0.2"])
    assert evos.waitpid(p.pid, os.WNOHANG) == (0, 0)
    pid, status = evos.waitpid(p.pid, 0)
    assert (pid, os.waitstatus_to_exitcode(status)) == (p.pid, 0)
    p.returncode = 0


def test_waitpid_already_exited_child(hub):
    p = subprocess.Popen(["true"])
    time.sleep(0.2)  # a zombie now
    pid, status = evos.waitpid(p.pid, 0)
    assert pid == p.pid and os.waitstatus_to_exitcode(status) == 0
    p.returncode = 0


def test_waitpid_signalled_child(hub):
    p = subprocess.Popen(["sleep", "10"])
    evloop.spawn_later(0.05, os.kill, p.pid, 9)
    pid, status = evos.waitpid(p.pid, 0)
    assert pid == p.pid
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
    p.returncode = -9


def test_waitpid_not_a_child(hub):
    with pytest.raises(ChildProcessError):
        evos.waitpid(1, 0)
    with pytest.raises(ChildProcessError):
        evos.waitpid(1, os.WNOHANG)


def test_waitpid_concurrent_greenlets(hub):
    ps = [subprocess.Popen(["sleep", "0.3"]) for _ in range(3)]
    entered, returned = [], []

    def wait(pid):
        entered.append(time.monotonic())
        try:
            return evos.waitpid(pid, 0)
        finally:
            returned.append(time.monotonic())

    t0 = time.monotonic()
    gs = [evloop.spawn(wait, p.pid) for p in ps]
    evloop.joinall(gs, timeout=10)
    assert [g.value[0] for g in gs] == [p.pid for p in ps]
    # all three waited at the same time (a blocking waitpid would return before the next
    # greenlet even starts)
    assert max(entered) < min(returned)
    assert time.monotonic() - t0 < 3
    for p in ps:
        p.returncode = 0


def test_waitpid_leaves_other_children_to_their_waiters(hub):
    # While evloop waits for one child, its SIGCHLD handler reaps that pid only: a child
    # exiting meanwhile keeps its status for whoever waits for it (here the program's own
    # os.waitpid, a real one)
    other = subprocess.Popen(["sh", "-c", "exit 5"])
    waited = subprocess.Popen(["sleep", "0.3"])
    waiting = evloop.spawn(evos.waitpid, waited.pid, 0)
    evloop.sleep(0.15)  # `other` exits meanwhile; evloop's handler gets its SIGCHLD
    assert hub.loop.sigchld_installed
    pid, status = os.waitpid(other.pid, 0)
    assert (pid, os.waitstatus_to_exitcode(status)) == (other.pid, 5)
    waiting.join(timeout=10)
    assert waiting.value[0] == waited.pid
    assert os.waitstatus_to_exitcode(waiting.value[1]) == 0
    other.returncode = 5
    waited.returncode = 0


def test_waitpid_any_child_status_recorded_for_its_pid(hub):
    # a waitpid(-1) waiting here reaps any child (as os.waitpid(-1) does); a child it took
    # is recorded for a later waitpid(pid) only when nobody claimed it
    p = subprocess.Popen(["sh", "-c", "sleep 0.1; exit 6"])
    pid, status = evos.waitpid(-1, 0)
    assert (pid, os.waitstatus_to_exitcode(status)) == (p.pid, 6)
    with pytest.raises(ChildProcessError):
        evos.waitpid(p.pid, 0)  # claimed by the waitpid(-1)
    p.returncode = 6


def test_waitpid_killed_waiter_leaves_nothing_behind(hub):
    p = subprocess.Popen(["sleep", "10"])
    g = evloop.spawn(evos.waitpid, p.pid, 0)
    evloop.sleep(0.05)
    assert evos._watches and hub.loop.sigchld_installed
    g.kill()
    evloop.sleep(0)
    assert not evos._watches and not hub.loop.sigchld_installed
    p.kill()
    assert p.wait() == -9  # the stdlib's waitpid gets the status: nobody else reaped it


def test_waitpid_from_another_thread_polls(hub):
    p = subprocess.Popen(["sh", "-c", "sleep 0.2; exit 4"])
    result = []

    def in_thread():
        result.append(evos.waitpid(p.pid, 0))
        evloop.get_hub().destroy()

    t = threading.Thread(target=in_thread)
    t.start()
    t.join(10)
    assert not t.is_alive()
    (pid, status), = result
    assert pid == p.pid and os.waitstatus_to_exitcode(status) == 4
    p.returncode = 4


# -- fork, waitpid and SIGCHLD in a fresh interpreter --------------------------------------


def test_fork_reinitialises_hub_in_child():
    out = run_py("""
        import os, time, evloop, evloop.os as evos
        evloop.sleep(0.01)  # the parent's hub exists and ran
        pid = evos.fork()
        if pid == 0:
            # the hub works in the child: timers, greenlets
            g = evloop.spawn(lambda: (evloop.sleep(0.05), 42)[1])
            t0 = time.monotonic()
            ok = g.get(timeout=5) == 42 and time.monotonic() - t0 >= 0.04
            os._exit(0 if ok else 1)
        ticks = []
        def tick():
            while True:
                ticks.append(1); evloop.sleep(0.01)
        t = evloop.spawn(tick)
        rpid, status = evos.waitpid(pid, 0)
        t.kill()
        assert rpid == pid and os.waitstatus_to_exitcode(status) == 0, status
        assert ticks, "the parent's greenlets ran while waitpid waited"
        print("ok")
    """)
    assert "ok" in out


def test_fork_warns_about_threads_only_when_they_are_not_evloops_idle_ones():
    # CPython 3.12+ warns (DeprecationWarning) at fork() in a process with several OS
    # threads. evloop's idle thread-pool workers must not cause it; a busy worker (which
    # may hold a C library's lock) or a thread of the program's still does. Before 3.12
    # there is no warning at all.
    out = run_py("""
        import os, sys, threading, time, warnings
        import evloop, evloop.os as evos
        def fork_warnings(fork):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = fork()
                pid = result[0] if isinstance(result, tuple) else result
                if pid == 0:
                    os._exit(0)
                evos.waitpid(pid, 0)
                if isinstance(result, tuple):
                    os.close(result[1])
            return [str(w.message) for w in caught if w.category is DeprecationWarning]
        forks = [evos.fork, evloop.hub.fork] + ([evos.forkpty] if hasattr(evos, "forkpty")
                                                else [])
        pool = evloop.get_hub().threadpool
        assert pool.spawn(lambda: 42).get() == 42           # a worker now waits for work
        assert threading.active_count() == 1 and len(os.listdir("/proc/self/task")) > 1
        for fork in forks:
            assert fork_warnings(fork) == [], fork
        expect = 1 if sys.version_info >= (3, 12) else 0
        busy = pool.spawn(time.sleep, 0.5)
        time.sleep(0.1)
        found = fork_warnings(evos.fork)
        assert len(found) == expect and (not found or "multi-threaded" in found[0]), found
        busy.get()
        stop = threading.Event()
        mine = threading.Thread(target=stop.wait)
        mine.start()
        found = fork_warnings(evos.fork)
        assert len(found) == expect and (not found or "multi-threaded" in found[0]), found
        stop.set(); mine.join()
        print("ok")
    """)
    assert "ok" in out


def test_fork_and_watch_records_status_and_calls_back():
    out = run_py("""
        import os, evloop, evloop.os as evos
        seen = []
        pid = evos.fork_and_watch(lambda w: seen.append((w.pid, w.rpid, w.rstatus)))
        if pid == 0:
            os._exit(3)
        evloop.sleep(0.3)  # the watcher reaps it while we sleep
        assert seen and seen[0][:2] == (pid, pid), seen
        assert os.waitstatus_to_exitcode(seen[0][2]) == 3
        rpid, status = evos.waitpid(pid, 0)  # the recorded status
        assert rpid == pid and os.waitstatus_to_exitcode(status) == 3
        evloop.sleep(0)
        assert not evloop.get_hub().loop.sigchld_installed
        print("ok")
    """)
    assert "ok" in out


def test_forkpty():
    out = run_py("""
        import os, evloop, evloop.os as evos
        pid, fd = evos.forkpty()
        if pid == 0:
            os.write(1, b"from-the-pty")
            os._exit(0)
        evos.make_nonblocking(fd)
        data = b""
        while b"from-the-pty" not in data:
            try:
                chunk = evos.nb_read(fd, 100)
            except OSError:  # EIO once the child side closed
                break
            if not chunk:
                break
            data += chunk
        rpid, status = evos.waitpid(pid, 0)
        os.close(fd)
        assert b"from-the-pty" in data, data
        assert rpid == pid and os.waitstatus_to_exitcode(status) == 0
        print("ok")
    """)
    assert "ok" in out


def test_forked_child_drops_parent_child_registry():
    out = run_py("""
        import os, subprocess, evloop, evloop.os as evos
        p = subprocess.Popen(["sleep", "0.5"])
        g = evloop.spawn(evos.waitpid, p.pid, 0)
        evloop.sleep(0.05)
        assert evos._watches and evloop.get_hub().loop.sigchld_installed
        pid = evos.fork()
        if pid == 0:
            # not the parent's children: no watch, libev's SIGCHLD handler down, so the
            # stdlib subprocess works in the child
            import evloop.subprocess as esp
            ok = (not evos._watches and not evloop.get_hub().loop.sigchld_installed
                  and subprocess.run(["sh", "-c", "exit 6"]).returncode == 6
                  and esp.call(["sh", "-c", "sleep 0.05; exit 7"]) == 7)
            os._exit(0 if ok else 1)
        rpid, status = evos.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        g.join()
        assert g.value[0] == p.pid
        p.returncode = 0
        print("ok")
    """)
    assert "ok" in out


def test_python_sigchld_handler_chained_while_libev_reaps():
    out = run_py("""
        import os, signal, evloop, evloop.os as evos
        from greenlet import getcurrent
        calls = []
        def handler(signum, frame):
            evloop.sleep(0.001)  # may block cooperatively: runs in its own greenlet
            calls.append(signum)
        signal.signal(signal.SIGCHLD, handler)
        pids = []
        for code in (1, 2):
            pid = evos.fork()
            if pid == 0:
                import time; time.sleep(0.1); os._exit(code)
            pids.append(pid)
        got = sorted(os.waitstatus_to_exitcode(evos.waitpid(p, 0)[1]) for p in pids)
        evloop.sleep(0.05)
        assert got == [1, 2], got
        assert calls and set(calls) == {signal.SIGCHLD}, calls
        assert signal.getsignal(signal.SIGCHLD) is handler
        assert not evloop.get_hub().loop.sigchld_installed
        # the Python handler is the process's handler again
        n = len(calls)
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        evloop.sleep(0.05)
        assert len(calls) > n, calls
        print("ok")
    """)
    assert "ok" in out


def test_waitpid_any_child():
    out = run_py("""
        import os, subprocess, evloop, evloop.os as evos
        ps = [subprocess.Popen(["sh", "-c", f"sleep {d}; exit {c}"])
              for d, c in ((0.3, 3), (0.1, 1))]
        order = []
        for _ in ps:
            pid, status = evos.waitpid(-1, 0)
            order.append((pid, os.waitstatus_to_exitcode(status)))
        assert order == [(ps[1].pid, 1), (ps[0].pid, 3)], order
        for p in ps:
            p.returncode = 0
        for options in (0, os.WNOHANG):
            try:
                evos.waitpid(-1, options)
            except ChildProcessError:
                pass
            else:
                raise AssertionError("no child left: ChildProcessError expected")
        # WNOHANG with a running child; then two greenlets each get one child
        p = subprocess.Popen(["sleep", "0.2"])
        q = subprocess.Popen(["sleep", "0.1"])
        assert evos.waitpid(-1, os.WNOHANG) == (0, 0)
        gs = [evloop.spawn(evos.waitpid, -1, 0) for _ in range(2)]
        evloop.joinall(gs, timeout=10)
        assert sorted(g.value[0] for g in gs) == sorted([p.pid, q.pid]), [g.value for g in gs]
        p.returncode = q.returncode = 0
        # a child an evloop.subprocess.Popen waited for is not handed out to "any child"
        import evloop.subprocess as esp
        assert esp.call(["sh", "-c", "exit 2"]) == 2
        try:
            evos.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pass
        else:
            raise AssertionError("the Popen's child came back from waitpid(-1)")
        print("ok")
    """)
    assert "ok" in out


def test_waitpid_process_group_and_other_options_go_to_the_os():
    out = run_py("""
        import os, subprocess, time, evloop.os as evos
        p = subprocess.Popen(["true"])
        time.sleep(0.1)
        pid, status = evos.waitpid(0, 0)  # our process group: the OS's (blocking) waitpid
        assert pid == p.pid and os.waitstatus_to_exitcode(status) == 0
        p = subprocess.Popen(["sleep", "10"])
        os.kill(p.pid, 19)  # SIGSTOP
        pid, status = evos.waitpid(p.pid, os.WUNTRACED)
        assert pid == p.pid and os.WIFSTOPPED(status)
        p.kill()
        pid, status = evos.waitpid(p.pid, 0)
        assert os.WIFSIGNALED(status)
        p.returncode = -9
        print("ok")
    """)
    assert "ok" in out
