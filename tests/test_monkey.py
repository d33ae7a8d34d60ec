"""Tests for evloop.monkey (and evloop.threading, which patch_thread installs).

Patching is process-wide and cannot be undone, so every test that patches runs a small
program in a fresh interpreter (``run_python``) and checks its output and exit status;
only the query functions on an unpatched process run in the pytest process itself.

Timing rules (a busy 2-core machine): lower bounds, or upper bounds with a wide margin.
"""
import textwrap

import pytest

from evloop import monkey

from _helpers import lines, run_command, run_python


# evloop's own code must not emit DeprecationWarning (3.12+: fork() in a process with
# threads, ...): the patched programs below that fork and use threads run with it an error
NO_DEPRECATION = ("-W", "error::DeprecationWarning")


# -------------------------------------------------------------------------------------
# the query API, in this (unpatched) process
# -------------------------------------------------------------------------------------

def test_query_functions_without_patching():
    import socket
    import time
    assert not monkey.is_module_patched("socket")
    assert not monkey.is_object_patched("socket", "socket")
    assert monkey.get_original("socket", "socket") is socket.socket
    assert monkey.get_original("time", ["sleep", "time"]) == [time.sleep, time.time]
    # a sequence of module names: the first importable one supplies the items
    assert monkey.get_original(["no_such_module_xyz", "time"], "sleep") is time.sleep
    with pytest.raises(ImportError):
        monkey.get_original(["no_such_module_xyz", "no_such_module_abc"], "x")
    with pytest.raises(AttributeError):
        monkey.get_original("time", "no_such_attribute")
    assert issubclass(monkey.MonkeyPatchWarning, RuntimeWarning)


def test_patch_all_signature_is_gevents():
    import inspect
    params = inspect.signature(monkey.patch_all).parameters
    for name in ("socket", "dns", "time", "select", "thread", "os", "ssl", "subprocess",
                 "signal", "queue", "selectors"):
        assert name in params, name
    # gevent's positional order for the first ones
    assert list(params)[:8] == ["socket", "dns", "time", "select", "thread", "os", "ssl",
                                "subprocess"]


# -------------------------------------------------------------------------------------
# patch_all: what it replaces, what it keeps
# -------------------------------------------------------------------------------------

def test_patch_all_replaces_the_blocking_apis():
    proc = run_python("""
        import warnings
        warnings.simplefilter("error")           # a clean, early patch_all warns nothing
        from evloop import monkey
        assert monkey.patch_all() is True
        import _thread, os, queue, select, selectors, signal, socket, ssl, subprocess
        import threading, time
        import evloop, evloop.socket, evloop.ssl, evloop.select, evloop.selectors
        import evloop.os, evloop.subprocess, evloop.signal, evloop.queue, evloop.event
        import evloop.threading, evloop.local

        expected = {
            "socket": {"socket": evloop.socket.socket, "SocketType": evloop.socket.socket,
                       "create_connection": evloop.socket.create_connection,
                       "socketpair": evloop.socket.socketpair,
                       "fromfd": evloop.socket.fromfd,
                       "getaddrinfo": evloop.socket.getaddrinfo,
                       "gethostbyname": evloop.socket.gethostbyname,
                       "getfqdn": evloop.socket.getfqdn},
            "ssl": {"SSLContext": evloop.ssl.SSLContext, "SSLSocket": evloop.ssl.SSLSocket,
                    "create_default_context": evloop.ssl.create_default_context,
                    "_create_default_https_context":
                        evloop.ssl._create_default_https_context},
            "time": {"sleep": evloop.sleep},
            "select": {"select": evloop.select.select},
            "selectors": {"DefaultSelector": evloop.selectors.DefaultSelector},
            "os": {"fork": evloop.os.fork, "waitpid": evloop.os.waitpid},
            "subprocess": {"Popen": evloop.subprocess.Popen,
                           "check_output": evloop.subprocess.check_output,
                           "run": evloop.subprocess.run},
            "signal": {"signal": evloop.signal.signal, "getsignal": evloop.signal.getsignal},
            "queue": {"SimpleQueue": evloop.queue.SimpleQueue, "Queue": evloop.queue.Queue,
                      "LifoQueue": evloop.queue.LifoQueue,
                      "PriorityQueue": evloop.queue.PriorityQueue},
            "_thread": {"start_new_thread": evloop.threading.start_new_thread,
                        "allocate_lock": evloop.threading.allocate_lock,
                        "get_ident": evloop.threading.get_ident,
                        "_local": evloop.local.local},
            "threading": {"Thread": evloop.threading.Thread, "Lock": evloop.threading.Lock,
                          "Event": evloop.event.Event, "local": evloop.local.local,
                          "get_ident": evloop.threading.get_ident,
                          "Timer": evloop.threading.Timer},
        }
        for mod_name, items in expected.items():
            module = __import__(mod_name)
            assert monkey.is_module_patched(mod_name), mod_name
            for name, value in items.items():
                assert getattr(module, name) is value, (mod_name, name)
                assert monkey.is_object_patched(mod_name, name), (mod_name, name)
                original = monkey.get_original(mod_name, name)
                assert original is not value, (mod_name, name)
        # the originals are the standard library's own objects
        import _socket
        assert monkey.get_original("socket", "socket").__module__ == "socket"
        assert monkey.get_original("socket", "getaddrinfo").__module__ == "socket"
        assert monkey.get_original("time", "sleep").__module__ == "time"
        assert monkey.get_original("ssl", "SSLContext").__module__ == "ssl"
        assert monkey.get_original("queue", "SimpleQueue").__module__ == "_queue"
        assert monkey.get_original("threading", "Thread").__module__ == "threading"
        assert monkey.get_original("threading", "Thread") is evloop.threading._StdThread
        assert monkey.get_original("select", "select").__module__ == "select"
        # aggressive: blocking APIs without a cooperative version are gone
        assert not hasattr(select, "epoll")
        assert not hasattr(selectors, "EpollSelector")
        assert monkey.get_original("select", "epoll").__name__ == "epoll"
        # patching created no hub
        assert evloop.hub.get_hub_if_exists() is None
        # patch_all again with the same arguments: nothing to do, no warning
        assert monkey.patch_all() is None
        print("ok")
    """)
    assert lines(proc) == ["ok"], proc.stderr


def test_patch_all_leaves_what_it_is_told_to_leave():
    proc = run_python("""
        import warnings
        warnings.simplefilter("error")
        from evloop import monkey
        monkey.patch_all(thread=False, ssl=False, time=False, dns=False, select=False,
                         queue=False)
        import socket, ssl, threading, time, select, selectors, queue, _thread
        for mod in ("ssl", "threading", "_thread", "time", "select", "selectors", "queue"):
            assert not monkey.is_module_patched(mod), mod
        assert monkey.is_object_patched("socket", "socket")
        assert not monkey.is_object_patched("socket", "getaddrinfo")
        assert socket.getaddrinfo is monkey.get_original("socket", "getaddrinfo")
        assert threading.Thread is monkey.get_original("threading", "Thread")
        assert not hasattr(threading.Thread, "_evloop_live_methods")
        assert hasattr(select, "epoll")
        # a later call adds patches (a union), with a warning
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert monkey.patch_all(time=True, thread=False, ssl=False, dns=False,
                                    select=False, queue=True) is True
        assert monkey.is_object_patched("time", "sleep")
        assert monkey.is_object_patched("queue", "SimpleQueue")
        assert not monkey.is_module_patched("ssl")
        messages = [str(w.message) for w in caught
                    if issubclass(w.category, monkey.MonkeyPatchWarning)]
        assert any("union" in m for m in messages), messages
        print("ok")
    """)
    assert lines(proc) == ["ok"]


def test_patch_functions_one_by_one():
    proc = run_python("""
        import warnings
        warnings.simplefilter("error")
        from evloop import monkey
        import evloop, evloop.socket, evloop.select, evloop.selectors, evloop.queue

        def patched():
            return sorted(monkey.saved)

        monkey.patch_time()
        import time
        assert time.sleep is evloop.sleep and patched() == ["time"]
        monkey.patch_socket(dns=False)
        import socket
        assert socket.socket is evloop.socket.socket
        assert not monkey.is_object_patched("socket", "getaddrinfo")
        monkey.patch_dns()
        assert socket.getaddrinfo is evloop.socket.getaddrinfo
        assert socket.gethostbyname_ex is evloop.socket.gethostbyname_ex
        monkey.patch_select(aggressive=False)
        import select
        assert select.select is evloop.select.select and hasattr(select, "epoll")
        monkey.patch_selectors()
        import selectors
        assert selectors.DefaultSelector is evloop.selectors.DefaultSelector
        monkey.patch_queue()
        import queue
        assert queue.SimpleQueue is evloop.queue.SimpleQueue
        monkey.patch_os()
        monkey.patch_subprocess()
        monkey.patch_signal()
        import os, subprocess, signal
        assert monkey.is_object_patched("os", "waitpid")
        assert monkey.is_object_patched("subprocess", "Popen")
        assert monkey.is_object_patched("signal", "signal")
        monkey.patch_ssl()
        import ssl, evloop.ssl
        assert ssl.SSLContext is evloop.ssl.SSLContext
        monkey.patch_thread()
        import threading, evloop.threading
        assert threading.Thread is evloop.threading.Thread
        assert monkey.is_object_patched("threading", "Thread")
        # patching twice keeps the first original
        original = monkey.get_original("time", "sleep")
        monkey.patch_time()
        assert monkey.get_original("time", "sleep") is original
        assert original is not evloop.sleep
        monkey.patch_sys(); monkey.patch_builtins()   # accepted, as in gevent: no-ops
        print(" ".join(patched()))
    """)
    patched = lines(proc)[0].split()
    assert {"_thread", "_threading_local", "os", "queue", "select", "selectors", "signal",
            "socket", "ssl", "subprocess", "threading", "time"} <= set(patched), patched


def test_patched_time_sleep_and_socket_cooperate():
    proc = run_python("""
        from evloop import monkey
        monkey.patch_all()
        import socket, time
        import evloop
        # time.sleep blocks only its greenlet
        start = time.monotonic()
        evloop.joinall([evloop.spawn(time.sleep, 0.3) for _ in range(5)])
        elapsed = time.monotonic() - start
        assert 0.25 < elapsed < 1.2, elapsed
        # stdlib code creating sockets gets cooperative ones
        a, b = socket.socketpair()
        assert type(a) is socket.socket
        got = []
        reader = evloop.spawn(lambda: got.append(b.recv(10)))
        evloop.sleep(0.05)
        assert not got                       # waiting, but not blocking the thread
        a.sendall(b"hi")
        reader.join(5)
        assert got == [b"hi"], got
        print("ok")
    """)
    assert lines(proc) == ["ok"]


def test_patched_select_subprocess_signal_and_fork_cooperate():
    proc = run_python("""
        from evloop import monkey
        monkey.patch_all()
        import os, select, selectors, signal, socket, subprocess, sys, threading, time
        import evloop

        def together(func, *args):
            start = time.monotonic()
            glets = [evloop.spawn(func, *args) for _ in range(3)]
            evloop.joinall(glets, raise_error=True, timeout=20)
            return [g.value for g in glets], time.monotonic() - start

        a, b = socket.socketpair()
        results, elapsed = together(select.select, [a], [], [], 0.3)
        assert results == [([], [], [])] * 3 and 0.25 < elapsed < 1.0, (results, elapsed)
        def wait_selector():
            with selectors.DefaultSelector() as sel:
                sel.register(a, selectors.EVENT_READ)
                return len(sel.select(0.3))
        results, elapsed = together(wait_selector)
        assert results == [0] * 3 and 0.25 < elapsed < 1.0, (results, elapsed)

        sleeper = [sys.executable, "-c", "import time; time.sleep(0.3)"]
        results, elapsed = together(lambda: subprocess.run(sleeper).returncode)
        assert results == [0] * 3 and 0.25 < elapsed < 2.5, (results, elapsed)
        out = subprocess.check_output([sys.executable, "-c", "print('child')"], text=True)
        assert out == "child\\n"

        got = []
        signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [signal.SIGUSR1], got

        # fork with a green thread running: the child has one thread, the main one
        worker = threading.Thread(target=time.sleep, args=(1,), daemon=True)
        worker.start()
        # (the prelude's faulthandler watchdog is an OS thread: 3.15 would warn about it;
        # cancelling it only asks the thread to exit, so wait until the kernel has one
        # thread fewer)
        import faulthandler
        tasks = len(os.listdir("/proc/self/task"))
        faulthandler.cancel_dump_traceback_later()
        deadline = time.monotonic() + 5
        while len(os.listdir("/proc/self/task")) >= tasks and time.monotonic() < deadline:
            time.sleep(0.001)
        pid = os.fork()
        faulthandler.dump_traceback_later(50, exit=True, file=sys.__stderr__)
        if pid == 0:
            ok = (threading.current_thread() is threading.main_thread()
                  and threading.enumerate() == [threading.main_thread()])
            t = threading.Thread(target=time.sleep, args=(0.01,))
            t.start(); t.join()
            os._exit(0 if ok and not t.is_alive() else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert worker.is_alive()
        print("ok")
    """, python_args=NO_DEPRECATION)
    assert lines(proc) == ["ok"]


# -------------------------------------------------------------------------------------
# warnings: patching too late
# -------------------------------------------------------------------------------------

_RECORD = """
    import warnings
    warnings.simplefilter("always")
    def patch_and_record(**kwargs):
        from evloop import monkey
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            monkey.patch_all(**kwargs)
        found = [w for w in caught if issubclass(w.category, monkey.MonkeyPatchWarning)]
        for w in found:
            print("WARNING", w.filename.endswith(("<string>", "-c")) or w.filename, w.message)
        return found
"""


def _with_record(code: str) -> str:
    return textwrap.dedent(_RECORD) + textwrap.dedent(code)


def test_ssl_imported_and_captured_before_patching_warns():
    proc = run_python(_with_record("""
        import ssl, socket
        from ssl import SSLContext                  # captured: patching cannot reach it
        context = ssl.create_default_context()      # made before patching
        found = patch_and_record()
        assert len(found) == 1, found
        message = str(found[0].message)
        assert "ssl.SSLContext as __main__.SSLContext" in message, message
        import evloop.ssl
        assert ssl.SSLContext is evloop.ssl.SSLContext    # patched all the same
        # the original class still works (its property setters name ``SSLContext``,
        # which is now evloop's) and wraps sockets cooperatively
        for ctx in (context, SSLContext(ssl.PROTOCOL_TLS_CLIENT),
                    ssl.create_default_context()):
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.options |= ssl.OP_NO_COMPRESSION
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            a, b = socket.socketpair()
            wrapped = ctx.wrap_socket(a, do_handshake_on_connect=False)
            assert type(wrapped) is evloop.ssl.SSLSocket, type(wrapped)
            wrapped.close(); b.close()
    """))
    assert "WARNING True" in proc.stdout       # reported at the caller of patch_all


def test_requests_imported_before_patching_warns():
    pytest.importorskip("requests")
    proc = run_python(_with_record("""
        import requests                  # urllib3 does `from ssl import SSLContext`
        found = patch_and_record()
        assert found and "urllib3" in str(found[0].message), found
    """))
    assert "urllib3" in proc.stdout


def test_names_and_subclasses_from_before_patching_warn():
    proc = run_python(_with_record("""
        from time import sleep
        import threading
        class Worker(threading.Thread):
            pass
        found = patch_and_record()
        message = " ".join(str(w.message) for w in found)
        assert "time.sleep as __main__.sleep" in message, message
        assert "__main__.Worker (subclass of threading.Thread)" in message, message
        # such a subclass keeps making real threads
        import _thread
        from evloop import monkey
        idents = []
        w = Worker(target=lambda: idents.append(monkey.get_original("_thread", "get_ident")()))
        w.start(); w.join()
        assert idents[0] != monkey.get_original("_thread", "get_ident")()
        print("ok")
    """))
    assert "ok" in lines(proc)


def test_threads_running_before_patching_warn():
    proc = run_python(_with_record("""
        import threading
        stop = threading.Event()
        t = threading.Thread(target=stop.wait, name="early-bird")
        t.start()
        found = patch_and_record()
        message = " ".join(str(w.message) for w in found)
        assert "real thread" in message and "early-bird" in message, message
        stop.set()       # the original Event: the real thread is still a real thread
        t.join()
        print("ok")
    """))
    assert "ok" in lines(proc)


def test_early_patch_is_silent_even_with_python_W_error():
    run_python("""
        from evloop import monkey
        monkey.patch_all()
        import urllib.request, http.client, http.server, socketserver, logging
        import concurrent.futures
    """, python_args=["-W", "error"])


# -------------------------------------------------------------------------------------
# threading: threads are greenlets; the originals are real threads
# -------------------------------------------------------------------------------------

def test_patched_threading_runs_threads_as_greenlets():
    proc = run_python("""
        from evloop import monkey
        monkey.patch_all()
        import _thread, threading, time
        import evloop
        from greenlet import getcurrent

        native_ident = monkey.get_original("_thread", "get_ident")
        main = threading.main_thread()
        # the main thread stays the main thread, with its native ident
        assert threading.current_thread() is main
        assert threading.get_ident() == main.ident == native_ident()

        seen = {}
        def work(n):
            seen[n] = (threading.get_ident(), id(getcurrent()), native_ident(),
                       threading.current_thread().name)
            time.sleep(0.3)          # patched: only this greenlet sleeps
        threads = [threading.Thread(target=work, args=(n,), name=f"w{n}") for n in range(4)]
        start = time.monotonic()
        for t in threads:
            t.start()
        assert all(t.is_alive() for t in threads)
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        assert 0.25 < elapsed < 1.0, elapsed                 # together, not 1.2 s
        assert not any(t.is_alive() for t in threads)
        for n, (ident, glet_id, native, name) in seen.items():
            assert ident == glet_id == threads[n].ident, (ident, glet_id)
            assert native == native_ident()                   # all in one OS thread
            assert name == f"w{n}"
        assert len({ident for ident, *_ in seen.values()}) == 4
        assert threading.active_count() == 1, threading.enumerate()

        # join(timeout) on a thread that is still running
        t = threading.Thread(target=time.sleep, args=(5,), daemon=True)
        t.start()
        start = time.monotonic()
        t.join(0.2)
        assert t.is_alive() and 0.15 < time.monotonic() - start < 2.0

        # a greenlet that is not a Thread's gets a dummy Thread, gone when it ends
        glet = evloop.spawn(threading.current_thread)
        dummy = glet.get()
        assert dummy.daemon and dummy.ident == id(glet)
        evloop.sleep(0.01)
        assert id(glet) not in threading._active

        # _thread.start_new_thread spawns a greenlet
        done = threading.Event()
        ident = _thread.start_new_thread(lambda: done.set(), ())
        assert done.wait(5) and ident != native_ident()
        print("ok")
    """, python_args=NO_DEPRECATION)
    assert lines(proc) == ["ok"]


def test_green_threads_do_not_rename_the_os_thread():
    # 3.14+ names the OS thread after the Thread (threading._set_name): a green thread
    # shares its OS thread with the hub and every other greenlet, so it must not; a real
    # thread still is named (where the CPython does it)
    proc = run_python("""
        from evloop import monkey
        monkey.patch_all()
        import sys, threading
        def os_name(native_id):
            with open(f"/proc/self/task/{native_id}/comm") as f:
                return f.read().strip()
        main_name = os_name(threading.get_native_id())
        t = threading.Thread(target=lambda: None, name="green-worker")
        t.start(); t.join()
        t = threading.Thread(target=lambda: setattr(threading.current_thread(), "name",
                                                    "renamed-green"))
        t.start(); t.join()
        now = os_name(threading.get_native_id())
        assert now == main_name, (now, main_name)
        seen = []
        RealThread = monkey.get_original("threading", "Thread")
        real = RealThread(target=lambda: seen.append(os_name(threading.get_native_id())),
                          name="real-worker")
        real.start(); real.join()
        if sys.version_info >= (3, 14):
            assert seen == ["real-worker"], seen
        print("ok", main_name, seen)
    """)
    assert lines(proc)[0].startswith("ok")


def test_original_thread_is_a_real_thread():
    proc = run_python("""
        from evloop import monkey
        monkey.patch_all()
        import _thread, threading, time
        import evloop

        RealThread = monkey.get_original("threading", "Thread")
        native_ident = monkey.get_original("_thread", "get_ident")
        assert RealThread is not threading.Thread
        assert issubclass(threading.Thread, RealThread)
        seen = []
        ticks = [0]
        def work():
            t = threading.current_thread()
            seen.append((native_ident(), _thread.get_ident(), t.name, t.ident))
            # blocks this real thread only: it sleeps in the OS until the hub has ticked 5
            # times (or 30 s, then the assertion below fails), however loaded the machine
            real_sleep = monkey.get_original("time", "sleep")
            deadline = time.monotonic() + 30
            while ticks[0] < 5 and time.monotonic() < deadline:
                real_sleep(0.01)
        t = RealThread(target=work, name="real")
        t.start()
        while t.is_alive():           # the hub keeps running while the thread works
            evloop.sleep(0.01)
            ticks[0] += 1
        t.join()
        assert ticks[0] >= 5, ticks
        (native, patched, name, ident), = seen
        assert native != native_ident()        # a different OS thread
        assert patched == native == ident      # its main greenlet keeps its native ident
        assert name == "real"
        assert not t.is_alive() and t not in threading.enumerate()

        # real threads and greenlets share a patched lock (the real one waits by polling)
        lock = threading.Lock()
        lock.acquire()
        got = []
        def contend():
            got.append(lock.acquire(timeout=10))
            lock.release()
        t = RealThread(target=contend)
        t.start()
        evloop.sleep(0.2)
        assert not got
        lock.release()
        t.join(10)
        assert got == [True]
        # the original Timer and Event are real too
        RealTimer = monkey.get_original("threading", "Timer")
        RealEvent = monkey.get_original("threading", "Event")
        fired = RealEvent()
        RealTimer(0.05, fired.set).start()
        assert fired.wait(5)
        print("ok")
    """)
    assert lines(proc) == ["ok"]


def test_patched_threading_primitives_and_executor():
    proc = run_python("""
        from evloop import monkey
        monkey.patch_all()
        import concurrent.futures, queue, threading, time
        import evloop

        # Lock, RLock, Condition, Semaphore, Event, Barrier, local: per greenlet
        lock, rlock = threading.Lock(), threading.RLock()
        cond = threading.Condition()
        sem = threading.BoundedSemaphore(2)
        barrier = threading.Barrier(3)
        data = threading.local()
        order, inside, peak = [], [0], [0]
        def worker(n):
            data.n = n
            with rlock:
                with rlock:
                    order.append(n)
            with sem:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
                time.sleep(0.05)
                inside[0] -= 1
            barrier.wait(5)
            with cond:
                cond.wait_for(lambda: len(order) >= 3, timeout=5)
            assert data.n == n
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
        for t in threads: t.start()
        for t in threads: t.join(10)
        assert sorted(order) == [0, 1, 2] and peak[0] == 2, (order, peak)
        assert not hasattr(data, "n")
        assert lock.acquire() and not lock.acquire(False)
        lock.release()
        try:
            lock.release()
        except RuntimeError:
            pass
        else:
            raise AssertionError("released an unlocked lock")

        # concurrent.futures runs its workers as greenlets
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            start = time.monotonic()
            results = list(pool.map(lambda n: (time.sleep(0.3), n * n)[1], range(8)))
            elapsed = time.monotonic() - start
        assert results == [n * n for n in range(8)]
        assert 0.25 < elapsed < 1.2, elapsed

        # queue.Queue between green threads
        q = queue.Queue(maxsize=2)
        out = []
        consumer = threading.Thread(target=lambda: [out.append(q.get()) for _ in range(5)])
        consumer.start()
        for i in range(5):
            q.put(i)
        consumer.join(5)
        assert out == list(range(5))
        # Timer
        fired = []
        timer = threading.Timer(0.05, fired.append, args=(1,))
        timer.start(); timer.join(5)
        assert fired == [1]
        print("ok")
    """, python_args=NO_DEPRECATION)
    assert lines(proc) == ["ok"]


def test_exit_waits_for_non_daemon_green_threads():
    proc = run_python("""
        from evloop import monkey
        monkey.patch_all()
        import threading, time

        def late():
            time.sleep(0.2)
            print("non-daemon finished", flush=True)
        def forever():
            time.sleep(60)
            print("daemon finished?!", flush=True)
        def join_main():
            threading.main_thread().join()
            print("main thread joined", flush=True)
        threading.Thread(target=late).start()
        threading.Thread(target=forever, daemon=True).start()
        threading.Thread(target=join_main, daemon=True).start()
        def failing():
            raise ValueError("boom in a thread")
        t = threading.Thread(target=failing)
        t.start(); t.join()
        print("main done", flush=True)
    """, python_args=NO_DEPRECATION)
    assert lines(proc) == ["main done", "main thread joined", "non-daemon finished"], proc
    assert "Exception in thread" in proc.stderr and "boom in a thread" in proc.stderr


# -------------------------------------------------------------------------------------
# python -m evloop.monkey
# -------------------------------------------------------------------------------------

_SCRIPT = """\
import sys
import socket
import helper                         # a module next to the script
from evloop import monkey
print("name", __name__)
print("argv", sys.argv[1:])
print("script", sys.argv[0].endswith("script.py"))
print("patched", monkey.is_module_patched("socket"), monkey.is_module_patched("threading"))
print("cooperative", socket.socket.__module__)
print("helper", helper.VALUE)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0)
"""


@pytest.fixture
def script_dir(tmp_path):
    (tmp_path / "script.py").write_text(_SCRIPT)
    (tmp_path / "helper.py").write_text("VALUE = 42\n")
    pkg = tmp_path / "mymod"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        "import sys, socket\nfrom evloop import monkey\n"
        "print('module', __name__, sys.argv[1:], monkey.is_module_patched('socket'), "
        "socket.socket.__module__)\n")
    return tmp_path


def test_main_runs_a_script_patched(script_dir):
    proc = run_command(["-m", "evloop.monkey", str(script_dir / "script.py"), "a", "--b"],
                       cwd=str(script_dir.parent))
    assert lines(proc) == ["name __main__", "argv ['a', '--b']", "script True",
                           "patched True True", "cooperative evloop.socket", "helper 42"]
    # the script's exit status is the program's
    run_command(["-m", "evloop.monkey", str(script_dir / "script.py"), "3"], expect_rc=3)


@pytest.mark.slow  # nine interpreters: ~8 s on a busy 2-core machine
def test_main_options(script_dir):
    script = str(script_dir / "script.py")
    proc = run_command(["-m", "evloop.monkey", "--no-thread", script])
    assert "patched True False" in lines(proc)
    proc = run_command(["-m", "evloop.monkey", "--thread", script])   # only threading
    assert "patched False True" in lines(proc)
    proc = run_command(["-m", "evloop.monkey", "--verbose", script])
    assert proc.stdout.startswith("evloop.monkey.patch_all(")
    proc = run_command(["-m", "evloop.monkey", "-m", "mymod", "x", "y"], cwd=str(script_dir))
    assert lines(proc) == ["module __main__ ['x', 'y'] True evloop.socket"]
    proc = run_command(["-m", "evloop.monkey", "--module", "mymod"], cwd=str(script_dir))
    assert lines(proc) == ["module __main__ [] True evloop.socket"]
    proc = run_command(["-m", "evloop.monkey", "--help"])
    assert "usage: python -m evloop.monkey" in proc.stdout
    proc = run_command(["-m", "evloop.monkey"], expect_rc=2)
    assert "no script" in proc.stderr
    proc = run_command(["-m", "evloop.monkey", "--no-such-thing", script], expect_rc=2)
    assert "unknown option" in proc.stderr


def test_main_script_failure_is_reported(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    raise KeyError('nope')\nf()\n")
    proc = run_command(["-m", "evloop.monkey", str(bad)], expect_rc=1)
    assert "KeyError: 'nope'" in proc.stderr and "bad.py" in proc.stderr


def test_main_runs_a_threaded_server_script(tmp_path):
    # the use case: an unmodified blocking program, run patched
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent("""
        import http.server, threading, time, urllib.request
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                time.sleep(0.3)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = "http://127.0.0.1:%d/" % server.server_address[1]
        results = []
        def fetch():
            with urllib.request.urlopen(url, timeout=10) as response:
                results.append(response.read())
        start = time.monotonic()
        clients = [threading.Thread(target=fetch) for _ in range(3)]
        for c in clients: c.start()
        for c in clients: c.join()
        elapsed = time.monotonic() - start
        server.shutdown()
        print(results, 0.25 < elapsed < 0.8, round(elapsed, 2))
    """))
    # evloop's own code must not warn about anything deprecated on the running CPython
    proc = run_command(["-W", "error::DeprecationWarning", "-m", "evloop.monkey", str(script)])
    assert proc.stdout.startswith("[b'ok', b'ok', b'ok'] True"), proc.stdout
