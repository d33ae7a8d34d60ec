"""Children's exit statuses reach whoever waits for them, whichever API started the child.

evloop's child watchers reap per pid (csrc/evloop_signals.c, evloop_children_reap): asyncio's child
watchers, evloop.subprocess, evloop.os.waitpid, ``loop.child(pid)`` watchers, the stdlib
``subprocess`` in real threads and the program's own ``os.waitpid`` all get their
children's statuses in one process. Every test runs in a fresh interpreter (SIGCHLD
dispositions and children are process-wide).
"""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_py(code: str, timeout: float = 120) -> str:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"exit {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    assert r.stdout.strip().endswith("OK"), r.stdout
    return r.stdout


def test_asyncio_and_greenlet_subprocesses_all_get_their_returncodes():
    # asyncio's child watching (ThreadedChildWatcher on 3.10/3.11, pidfd or threads later)
    # on evloop.aio, and greenlets running evloop.subprocess.run on the same libev loop
    run_py("""
        import asyncio, evloop, evloop.aio, evloop.subprocess as esp

        def green(k):
            return [esp.run(["sh", "-c", f"exit {(k + j) % 5 + 10}"]).returncode
                    for j in range(4)]

        async def one(i):
            p = await asyncio.create_subprocess_exec(
                "sh", "-c", f"sleep 0.0{i % 4}; exit {i % 7 + 1}")
            return await p.wait()

        async def main():
            gs = [evloop.spawn(green, k) for k in range(5)]
            codes = await asyncio.gather(*(one(i) for i in range(20)))
            while not all(g.dead for g in gs):
                await asyncio.sleep(0.01)
            return codes, [g.value for g in gs]

        for _ in range(3):
            codes, green_codes = evloop.aio.run(main())
            assert codes == [i % 7 + 1 for i in range(20)], codes
            assert green_codes == [[(k + j) % 5 + 10 for j in range(4)] for k in range(5)], \\
                green_codes
        print("OK")
    """)


def test_stdlib_subprocess_in_a_real_thread_keeps_its_status():
    run_py("""
        import threading, subprocess, evloop, evloop.subprocess as esp
        hub = evloop.get_hub()
        # evloop child watchers active the whole time: a greenlet waits for a long child
        long = esp.Popen(["sleep", "2"])
        waiter = evloop.spawn(long.wait)
        evloop.sleep(0.05)
        assert hub.loop.sigchld_installed
        results = []
        def worker():
            for _ in range(10):
                results.append(subprocess.run(["sh", "-c", "exit 3"]).returncode)
        t = threading.Thread(target=worker)
        t.start()
        while t.is_alive():
            evloop.sleep(0.01)
        t.join()
        assert results == [3] * 10, results
        waiter.join(timeout=10)
        assert waiter.value == 0, waiter.value
        print("OK")
    """)


def test_program_waitpid_while_a_watcher_for_another_pid_exists():
    run_py("""
        import os, time, evloop.core as core
        loop = core.loop(default=True)
        r, w = os.pipe()
        a = os.fork()
        if a == 0:
            os.read(r, 1)
            os._exit(7)
        res = []
        wa = loop.child(a)
        wa.start(lambda: (res.append((wa.rpid, wa.rstatus)), wa.stop()))
        b = os.fork()
        if b == 0:
            os._exit(4)
        t = loop.timer(0.2)
        t.start(loop.break_)
        loop.run()                      # b exits meanwhile; evloop's handler sees SIGCHLD
        assert not res
        pid, status = os.waitpid(b, 0)  # the program's own waitpid gets b
        assert (pid, os.waitstatus_to_exitcode(status)) == (b, 4)
        os.write(w, b"x")
        g = loop.timer(20, ref=False)
        g.start(loop.break_)
        loop.run()
        assert len(res) == 1 and res[0][0] == a, res
        assert os.waitstatus_to_exitcode(res[0][1]) == 7
        print("OK")
    """)


def test_exit_by_signal_is_a_negative_returncode():
    run_py("""
        import os, signal, evloop, evloop.subprocess as esp, evloop.os as evos
        assert esp.run(["sh", "-c", "kill -TERM $$"]).returncode == -signal.SIGTERM
        p = esp.Popen(["sleep", "10"])
        evloop.sleep(0.05)
        p.kill()
        assert p.wait() == -signal.SIGKILL
        pid = evos.fork()
        if pid == 0:
            os.kill(os.getpid(), signal.SIGABRT)
            os._exit(1)
        rpid, status = evos.waitpid(pid, 0)
        assert rpid == pid and os.WIFSIGNALED(status), status
        assert os.waitstatus_to_exitcode(status) == -signal.SIGABRT
        print("OK")
    """)


def test_many_children_exiting_at_once():
    run_py("""
        import os, evloop.core as core
        loop = core.loop(default=True)
        r, w = os.pipe()
        pids = []
        for i in range(200):
            pid = os.fork()
            if pid == 0:
                os.close(w)
                os.read(r, 1)           # end of file when the parent closes w
                os._exit(i % 250)
            pids.append(pid)
        os.close(r)
        got = {}
        def done(c):
            got[c.rpid] = os.waitstatus_to_exitcode(c.rstatus)
            c.stop()
        watchers = [loop.child(pid) for pid in pids]
        for c in watchers:
            c.start(done, c)
        os.close(w)                     # all 200 exit together
        g = loop.timer(60, ref=False)
        g.start(loop.break_)
        loop.run()
        assert got == {pid: i % 250 for i, pid in enumerate(pids)}, len(got)
        assert not loop.sigchld_installed
        print("OK")
    """)


def test_fork_in_a_callback():
    run_py("""
        import os, evloop.core as core
        loop = core.loop(default=True)
        res = []
        def start_child():
            pid = os.fork()
            if pid == 0:
                os._exit(9)
            c = loop.child(pid)
            c.start(lambda: (res.append((pid, c.rpid, c.rstatus)), c.stop()))
        cb = loop.timer(0.01)
        cb.start(start_child)
        g = loop.timer(20, ref=False)
        g.start(loop.break_)
        loop.run()
        assert len(res) == 1, res
        pid, rpid, status = res[0]
        assert rpid == pid and os.waitstatus_to_exitcode(status) == 9
        print("OK")
    """)


def test_any_child_watcher_reaps_one_child_per_report():
    # pid 0: any child, reaped with waitpid(-1); the pid's own watcher gets the same report;
    # a one-shot any-child watcher stopped in its callback leaves the other children alone
    run_py("""
        import os, time, evloop.core as core
        loop = core.loop(default=True)
        a = os.fork()
        if a == 0:
            os._exit(1)
        b = os.fork()
        if b == 0:
            os._exit(2)
        time.sleep(0.2)                 # both are zombies
        seen, own = [], []
        anyw = loop.child(0)
        anyw.start(lambda: (seen.append((anyw.rpid, anyw.rstatus)), anyw.stop()))
        wa = loop.child(a)
        wa.start(lambda: (own.append(wa.rpid), wa.stop()))
        g = loop.timer(0.3, ref=False)
        g.start(loop.break_)
        loop.run()
        assert len(seen) == 1, seen
        other = b if seen[0][0] == a else a
        if seen[0][0] == a:
            assert own == [a], own
        # the other child was left for its waiter
        pid, status = os.waitpid(other, 0)
        assert pid == other
        if own == []:
            pid, status = os.waitpid(a, 0)   # a is still there when the any-child took b
        assert not loop.sigchld_installed
        print("OK")
    """)


def test_trace_reports_stops_only_when_asked():
    run_py("""
        import os, signal, time, evloop.core as core
        loop = core.loop(default=True)
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        traced, plain = [], []
        t = loop.child(pid, True)
        t.start(lambda: traced.append(t.rstatus))
        p = loop.child(pid)
        p.start(lambda: plain.append(p.rstatus))
        os.kill(pid, signal.SIGSTOP)
        g = loop.timer(0.3, ref=False)
        g.start(loop.break_)
        loop.run()
        assert traced and os.WIFSTOPPED(traced[0]), traced
        assert not plain, plain
        os.kill(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGCONT)
        g.start(loop.break_)
        loop.run()
        assert plain and os.WIFSIGNALED(plain[-1]), plain
        assert os.WIFSIGNALED(traced[-1]), traced
        t.stop(); p.stop()
        print("OK")
    """)


def test_sigchld_hook_must_be_callable():
    from evloop import core
    import pytest
    with pytest.raises(TypeError):
        core._set_sigchld_hook(42)
