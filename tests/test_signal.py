"""Tests for evloop.signal: handlers that run in greenlets, getsignal, SIG_DFL/SIG_IGN, the
stdlib's errors, and SIGCHLD's special handling.

Everything that installs a handler or sends a signal runs in a fresh interpreter
(``run_py``), which must exit 0 and leave no child unreaped.
"""
import signal

import evloop.signal as esig

from _helpers import run_py as _run_py


def run_py(code: str, timeout: float = 60, expect_rc: int = 0) -> str:
    return _run_py(code, timeout, expect_rc, no_children_left=True)


def test_reexports_signal_module():
    assert esig.SIGUSR1 == signal.SIGUSR1
    assert esig.SIG_DFL is signal.SIG_DFL and esig.Signals is signal.Signals
    assert esig.signal is not signal.signal and esig.getsignal is not signal.getsignal
    # importing installs nothing
    assert esig.getsignal(signal.SIGUSR1) == signal.getsignal(signal.SIGUSR1)


def test_handler_runs_in_a_new_greenlet_and_may_block():
    out = run_py("""
        import signal, time, evloop, evloop.signal as esig
        from greenlet import getcurrent
        main = getcurrent()
        hub = evloop.get_hub()
        calls = []
        def handler(signum, frame):
            g = getcurrent()
            evloop.sleep(0.05)  # cooperative wait inside the handler
            calls.append((signum, frame, g))
        assert esig.signal(signal.SIGUSR1, handler) == signal.SIG_DFL
        assert esig.getsignal(signal.SIGUSR1) is handler
        assert signal.getsignal(signal.SIGUSR1) is handler  # the stdlib agrees
        ticks = []
        def tick():
            while True:
                ticks.append(1); evloop.sleep(0.01)
        t = evloop.spawn(tick)
        os.kill(os.getpid(), signal.SIGUSR1)
        evloop.sleep(0.2)
        t.kill()
        assert len(calls) == 1, calls
        signum, frame, g = calls[0]
        assert signum == signal.SIGUSR1 and type(signum) is int and frame is None
        assert g is not main and g is not hub
        assert len(ticks) >= 3  # ~20 when the loop is not starved
        # twice more: one greenlet per delivery
        os.kill(os.getpid(), signal.SIGUSR1)
        evloop.sleep(0.1)
        os.kill(os.getpid(), signal.SIGUSR1)
        evloop.sleep(0.1)
        assert len(calls) == 3 and len({id(c[2]) for c in calls}) >= 2, calls
        print("ok")
    """)
    assert "ok" in out


def test_handler_waits_for_the_hub():
    # the signal arrives while the main greenlet does not yield: the handler runs once the
    # hub gets control, not in the middle of the main greenlet's code
    out = run_py("""
        import signal, time, evloop, evloop.signal as esig
        calls = []
        esig.signal(signal.SIGUSR2, lambda s, f: calls.append(s))
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(0.05)  # not evloop.sleep: the hub does not run
        assert calls == [], calls
        evloop.sleep(0.05)
        assert calls == [signal.SIGUSR2], calls
        print("ok")
    """)
    assert "ok" in out


def test_replace_handler_and_restore_default():
    out = run_py("""
        import signal, evloop, evloop.signal as esig
        a, b = [], []
        ha = lambda s, f: a.append(s)
        hb = lambda s, f: b.append(s)
        assert esig.signal(signal.SIGUSR1, ha) == signal.SIG_DFL
        assert esig.signal(signal.SIGUSR1, hb) is ha
        os.kill(os.getpid(), signal.SIGUSR1)
        evloop.sleep(0.1)
        assert a == [] and b == [signal.SIGUSR1], (a, b)
        assert esig.signal(signal.SIGUSR1, signal.SIG_IGN) is hb
        assert esig.getsignal(signal.SIGUSR1) == signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGUSR1)  # ignored
        evloop.sleep(0.1)
        assert b == [signal.SIGUSR1]
        assert esig.signal(signal.SIGUSR1, signal.SIG_DFL) == signal.SIG_IGN
        assert esig.getsignal(signal.SIGUSR1) == signal.SIG_DFL
        print("ok", flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)  # the default action: terminate
        evloop.sleep(1)
        print("survived")
    """, expect_rc=-signal.SIGUSR1)
    assert "ok" in out and "survived" not in out


def test_plain_python_handler_back_after_evloop_handler():
    # a handler installed with the stdlib before is what evloop.signal returns, and it
    # works again (synchronously, as the stdlib's) once evloop's is replaced by it
    out = run_py("""
        import signal, evloop, evloop.signal as esig
        plain = []
        def p(s, f):
            plain.append(s)
        signal.signal(signal.SIGUSR1, p)
        green = []
        assert esig.signal(signal.SIGUSR1, lambda s, f: green.append(s)) is p
        os.kill(os.getpid(), signal.SIGUSR1)
        evloop.sleep(0.1)
        assert green == [signal.SIGUSR1] and plain == []
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # stdlib, then evloop again
        esig.signal(signal.SIGUSR1, p)
        os.kill(os.getpid(), signal.SIGUSR1)
        evloop.sleep(0.1)
        assert plain == [signal.SIGUSR1], plain
        print("ok")
    """)
    assert "ok" in out


def test_handler_exception_is_reported_and_loop_goes_on():
    out = run_py("""
        import signal, sys, io, evloop, evloop.signal as esig
        hub = evloop.get_hub()
        hub.exception_stream = io.StringIO()
        calls = []
        def bad(s, f):
            calls.append(s)
            raise ValueError("boom")
        esig.signal(signal.SIGUSR1, bad)
        os.kill(os.getpid(), signal.SIGUSR1)
        evloop.sleep(0.1)
        os.kill(os.getpid(), signal.SIGUSR1)
        evloop.sleep(0.1)
        assert len(calls) == 2
        assert "ValueError: boom" in hub.exception_stream.getvalue()
        print("ok")
    """)
    assert "ok" in out


def test_keyboard_interrupt_from_handler_reaches_main():
    out = run_py("""
        import signal, evloop, evloop.signal as esig
        esig.signal(signal.SIGINT, signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGINT)
        try:
            evloop.sleep(1)
        except KeyboardInterrupt:
            print("ok")
    """)
    assert "ok" in out


def test_errors_are_the_stdlib_ones():
    out = run_py("""
        import signal, threading, evloop.signal as esig
        def errors(fn, *args):
            try:
                fn(*args)
            except Exception as e:
                return type(e), str(e)
            return None
        cases = [(signal.SIGKILL, lambda s, f: None), (0, lambda s, f: None),
                 (10000, signal.SIG_DFL), (signal.SIGUSR1, "not callable"),
                 (signal.SIGUSR1, None), (signal.SIGCHLD, 42)]
        for args in cases:
            ours, theirs = errors(esig.signal, *args), errors(signal.signal, *args)
            assert ours is not None and ours[0] is theirs[0], (args, ours, theirs)
        result = []
        t = threading.Thread(target=lambda: result.append(
            (errors(esig.signal, signal.SIGUSR1, signal.SIG_IGN),
             errors(signal.signal, signal.SIGUSR1, signal.SIG_IGN))))
        t.start(); t.join()
        (ours, theirs), = result
        assert ours == theirs and ours[0] is ValueError, result
        assert esig.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # nothing changed
        print("ok")
    """)
    assert "ok" in out


def test_sigchld_handler_in_greenlet_for_all_children():
    # SIGCHLD: a trampoline at the Python level (children nobody watches) plus the C core's
    # hook while evloop's handler is installed (children evloop waits for)
    out = run_py("""
        import signal, subprocess, evloop, evloop.signal as esig, evloop.subprocess as esp
        from greenlet import getcurrent
        hub = evloop.get_hub()
        calls = []
        def handler(signum, frame):
            evloop.sleep(0.001)
            calls.append((signum, getcurrent()))
        assert esig.signal(signal.SIGCHLD, handler) == signal.SIG_DFL
        assert esig.getsignal(signal.SIGCHLD) is handler
        # a child evloop does not watch (stdlib): Python delivers, we run it in a greenlet
        assert subprocess.run(["true"]).returncode == 0
        evloop.sleep(0.05)
        assert calls and all(s == signal.SIGCHLD and g not in (hub, hub.parent)
                             for s, g in calls), calls
        n = len(calls)
        # children evloop waits for: evloop's handler gets SIGCHLD and passes it on (once
        # per signal delivered: signals that arrive together coalesce, as in any program)
        assert [esp.call(["sh", "-c", f"exit {i}"]) for i in range(3)] == [0, 1, 2]
        evloop.sleep(0.05)
        assert len(calls) >= n + 1, calls
        assert all(s == signal.SIGCHLD and g not in (hub, hub.parent) for s, g in calls)
        assert not hub.loop.sigchld_installed
        print("ok")
    """)
    assert "ok" in out


def test_sigchld_changed_while_children_are_watched():
    # changing the SIGCHLD disposition while libev's handler is installed must not break
    # the children being waited for; the new disposition is restored afterwards
    out = run_py("""
        import signal, subprocess, time
        import evloop, evloop.os as evos, evloop.signal as esig, evloop.subprocess as esp
        evos.SAFETY_POLL = 10.0  # so that only the child watcher can end the waits early
        hub = evloop.get_hub()
        calls = []
        for new in (lambda s, f: calls.append(s), signal.SIG_DFL, signal.SIG_IGN,
                    signal.SIG_DFL):
            p = esp.Popen(["sleep", "0.2"])
            evloop.sleep(0.02)
            assert hub.loop.sigchld_installed
            esig.signal(signal.SIGCHLD, new)
            assert esig.getsignal(signal.SIGCHLD) == new
            assert hub.loop.sigchld_installed  # libev still reaps for p
            t0 = time.monotonic()
            assert p.wait(timeout=10) == 0
            # through the child watcher, not evloop's periodic check of the OS
            assert time.monotonic() - t0 < 5
            evloop.sleep(0)
            assert not hub.loop.sigchld_installed
            assert signal.getsignal(signal.SIGCHLD) == new or callable(new)
        assert calls, "the callable handler was called for its child"
        # SIG_DFL in place: the stdlib sees real exit statuses
        assert subprocess.run(["sh", "-c", "exit 9"]).returncode == 9
        # a child that exits while another is watched and SIGCHLD changes at that moment
        q = esp.Popen(["true"])
        p = esp.Popen(["sleep", "0.2"])
        time.sleep(0.1)  # q exits, its SIGCHLD caught by libev, not yet reaped
        esig.signal(signal.SIGCHLD, signal.SIG_DFL)
        assert q.wait(timeout=10) == 0 and p.wait(timeout=10) == 0
        print("ok")
    """)
    assert "ok" in out


def test_sigchld_sig_ign_without_watchers():
    out = run_py("""
        import signal, subprocess, evloop, evloop.signal as esig
        evloop.sleep(0)
        esig.signal(signal.SIGCHLD, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN
        # SIG_IGN: the kernel reaps; the stdlib reports 0 as it does without evloop
        assert subprocess.run(["sh", "-c", "exit 3"]).returncode == 0
        esig.signal(signal.SIGCHLD, signal.SIG_DFL)
        assert subprocess.run(["sh", "-c", "exit 3"]).returncode == 3
        print("ok")
    """)
    assert "ok" in out


def test_stdlib_sigchld_handler_installed_over_libev_does_not_hang_waits():
    # Code that calls the *stdlib* signal.signal(SIGCHLD, ...) while evloop waits for
    # children displaces libev's handler, so no child watcher fires any more; the waits
    # still end, through evloop's periodic check of the OS (SAFETY_POLL).
    out = run_py("""
        import signal, time, evloop, evloop.os as evos, evloop.subprocess as esp
        evos.SAFETY_POLL = 0.2
        p = esp.Popen(["sleep", "0.1"])
        q = esp.Popen(["sleep", "0.1"])
        g = evloop.spawn(evos.waitpid, q.pid, 0)
        evloop.sleep(0.02)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # over libev's handler
        t0 = time.monotonic()
        assert p.wait(timeout=20) == 0
        g.join(timeout=20)
        assert g.value[0] == q.pid and q.wait() == 0
        assert time.monotonic() - t0 < 5
        print("ok")
    """)
    assert "ok" in out
