"""Leak checks: the per-test check of conftest.py, and repeated operations that must not grow.

Why it exists: a leak in an event loop shows up late (a server that runs for a week, an fd
limit reached after a million connections). Two nets catch them early:

* conftest.py's autouse check fails any test that leaves fds open, watchers started,
  greenlets running, callbacks queued or threads alive. The first tests below run small
  pytest sessions in a subprocess to show that it reports each kind and stays quiet about
  what is not a leak (the hub's own fds, garbage the collector frees, failed tests).
* ``@pytest.mark.leakcheck`` tests repeat one operation (watcher start/stop, spawn/join,
  socket open/close, Timeout, TLS handshake) thousands of times after a warm-up and compare
  two later rounds: Python allocations (tracemalloc, which also sees memory our C code gets
  from the Python allocators), objects tracked by the GC, and the process's RSS. A leak of
  one object or a few bytes per operation grows every round; noise does not.

What it must not do: take long (the marked tests run in the normal suite; a few seconds in
all) or depend on timing.
"""
import gc
import os
import socket
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

import evloop
from evloop import core

TESTS = Path(__file__).resolve().parent
PKG_PARENT = str(TESTS.parent)


# --------------------------------------------------------------------------------------
# the per-test check (tests/conftest.py)
# --------------------------------------------------------------------------------------

def run_pytest(tmp_path, body):
    """Run ``body`` as a test file under a copy of this suite's conftest.py; return the
    completed process (its output is pytest's, -rA so every outcome is listed)."""
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(body))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    allow_leftovers: test\n    leakcheck: test\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVLOOP_")}
    env["PYTHONPATH"] = PKG_PARENT
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
         "--strict-markers", "test_inner.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def outcomes(proc):
    """{test name: "PASSED" | "ERROR" | "FAILED"} from -rA's short summary."""
    found = {}
    for line in proc.stdout.splitlines():
        for word in ("PASSED", "ERROR", "FAILED"):
            prefix = word + " test_inner.py::"
            if line.startswith(prefix):
                name = line[len(prefix):].split(" ")[0]
                found.setdefault(name, word)  # a test can pass, then error at teardown
                if word == "ERROR":
                    found[name] = word
    return found


def test_the_check_reports_each_kind_of_leftover(tmp_path):
    proc = run_pytest(tmp_path, """
        import socket, threading
        import evloop
        from evloop import core
        from evloop.event import Event

        cleanups = []  # run by the last test: what each test left, and how to undo it

        def test_fd():
            sock = socket.socket()
            cleanups.append(sock.close)

        def test_watcher():
            t = evloop.get_hub().loop.timer(100)
            t.start(print)
            cleanups.append(t.close)

        def test_greenlet():
            never = Event()
            cleanups.append(evloop.spawn(never.wait).kill)
            evloop.sleep(0)

        def test_greenlet_blocked_on_a_watcher():
            cleanups.append(evloop.spawn(evloop.sleep, 100).kill)
            evloop.sleep(0)

        def test_private_loop():
            cleanups.append(core.loop(default=False).destroy)

        def test_callback():
            spinning = [True]
            def again():
                if spinning:
                    evloop.get_hub().loop.run_callback(again)
            again()
            cleanups.append(spinning.clear)

        def test_thread():
            stop = threading.Event()
            threading.Thread(target=stop.wait, name="left-running", daemon=True).start()
            cleanups.append(stop.set)

        def test_last_to_clean_up():
            for cleanup in cleanups:
                cleanup()
            evloop.sleep(0)
    """)
    result = outcomes(proc)
    out = proc.stdout
    assert result == {"test_fd": "ERROR", "test_watcher": "ERROR", "test_greenlet": "ERROR",
                      "test_greenlet_blocked_on_a_watcher": "ERROR",
                      "test_private_loop": "ERROR", "test_callback": "ERROR",
                      "test_thread": "ERROR", "test_last_to_clean_up": "PASSED"}, out
    assert "test_inner.py::test_fd left behind:" in out
    assert "-> socket:[" in out
    assert "<evloop.core.timer at" in out and "callback=<built-in function print>" in out
    assert "1 running" in out and 'started: Event.wait()>' in out
    assert "(a greenlet waits on it: <Greenlet" in out and "sleep(100)" in out
    assert "-> anon_inode:[eventpoll]" in out
    assert "callbacks:\n    1 queued" in out
    assert "left-running" in out


def test_the_check_is_quiet_about_what_is_not_a_leak(tmp_path):
    proc = run_pytest(tmp_path, """
        import gc, socket
        import pytest
        import evloop
        from evloop import core
        from evloop.event import Event

        def test_the_hubs_lazily_opened_fds(tmp_path):
            # the first stat watcher makes libev open inotify's fd, which the loop keeps
            w = evloop.get_hub().loop.stat(str(tmp_path))
            w.start(print)
            w.close()

        def test_a_socket_only_the_collector_frees():
            class Cycle:
                pass
            c = Cycle()
            c.self, c.sock = c, socket.socket()

        def test_a_greenlet_that_finishes_a_moment_later():
            evloop.spawn(evloop.sleep, 0)
            evloop.sleep(0)

        def test_a_killed_greenlet_leaves_no_frame_holding_its_socket():
            def serve(sock):
                sock.recv(1)
            a, b = evloop.socket.socketpair()
            g = evloop.spawn(serve, a)
            evloop.sleep(0)
            del a
            g.kill()
            b.close()
            globals()["killed"] = g  # the Greenlet lives on; its dead frame must not

        def test_a_failing_test_is_not_also_reported():
            keep = socket.socket()
            globals()["leaked"] = keep
            assert False, "boom"

        @pytest.mark.allow_leftovers("fds", reason="testing the opt-out")
        def test_opted_out():
            globals()["opted"] = socket.socket()

        @pytest.mark.allow_leftovers("watchers", reason="only watchers are allowed")
        def test_opt_out_is_per_kind():
            globals()["not_allowed"] = socket.socket()

        @pytest.mark.allow_leftovers("fds")
        def test_opt_out_needs_a_reason():
            pass
    """)
    result = outcomes(proc)
    out = proc.stdout
    assert result == {"test_the_hubs_lazily_opened_fds": "PASSED",
                      "test_a_socket_only_the_collector_frees": "PASSED",
                      "test_a_greenlet_that_finishes_a_moment_later": "PASSED",
                      "test_a_killed_greenlet_leaves_no_frame_holding_its_socket": "PASSED",
                      "test_a_failing_test_is_not_also_reported": "FAILED",
                      "test_opted_out": "PASSED",
                      "test_opt_out_is_per_kind": "ERROR",
                      "test_opt_out_needs_a_reason": "ERROR"}, out
    assert "allow_leftovers needs reason=" in out
    assert out.count("left behind") == 1, out
