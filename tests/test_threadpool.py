"""Tests for ``evloop.threadpool``: ThreadPool (spawn/apply/map/imap, sizes, kill, join,
fork) and ThreadPoolExecutor (concurrent.futures futures that greenlets wait on).

Timing rules (a busy 2-core machine): a thread that must still be running waits on a
real ``threading.Event`` the test sets, never on a guess; elapsed times are checked
against generous bounds only; every pool a test creates is killed at teardown (the
``pools`` fixture) and tests wait for its threads to be gone where that matters.
"""
import concurrent.futures as cf
import os
import subprocess
import sys
import threading
import time
import traceback
from _thread import get_ident
from pathlib import Path

import pytest

import evloop
from evloop import Timeout, sleep, spawn
from evloop.event import AsyncResult
from evloop.hub import get_hub
from evloop import threadpool as tp
from evloop.threadpool import BrokenThreadPool, ThreadPool, ThreadPoolExecutor

from _helpers import Boom, ticking

PKG_PARENT = str(Path(evloop.__file__).resolve().parent.parent)
WAIT = 10.0   # the longest any condition may take to become true
LONG = 60.0   # a blocked task: longer than any wait in a test, so a bug cannot hide


@pytest.fixture
def pools():
    made = []

    def make(*args, **kwargs):
        pool = ThreadPool(*args, **kwargs)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.kill()
    for pool in made:
        wait_until(lambda: pool._alive == 0)
    wait_until(lambda: keepalive_count() == 0)  # every task gave its loop back


@pytest.fixture
def executors():
    made = []

    def make(*args, **kwargs):
        ex = ThreadPoolExecutor(*args, **kwargs)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.shutdown(wait=False, cancel_futures=True)
        ex._pool.kill()
    for ex in made:
        wait_until(lambda: ex._pool._alive == 0)
    wait_until(lambda: keepalive_count() == 0)


def wait_until(predicate, timeout=WAIT):
    """Poll ``predicate`` cooperatively until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        sleep(0.005)


def keepalive_count():
    keep = tp._keepalives.get(get_hub())
    return 0 if keep is None else keep.count


def explode(x=None):
    raise Boom(x)


# -- spawn / apply ---------------------------------------------------------------------------

def test_spawn_returns_asyncresult_with_value(pools):
    pool = pools(3)
    result = pool.spawn(lambda a, b=0: a + b, 2, b=3)
    assert isinstance(result, AsyncResult)
    assert result.get(timeout=WAIT) == 5
    assert result.successful()


def test_spawn_runs_in_another_os_thread(pools):
    pool = pools(2)
    assert pool.spawn(get_ident).get() != get_ident()


def test_apply_args_and_kwds(pools):
    pool = pools(2)
    assert pool.apply(divmod, (17, 5)) == (3, 2)
    assert pool.apply(dict, kwds={"a": 1}) == {"a": 1}
    assert pool.apply(tuple) == ()


def test_spawn_rejects_non_callable(pools):
    with pytest.raises(TypeError):
        pools(1).spawn(42)


def test_exception_reraised_with_worker_traceback(pools):
    pool = pools(2)
    with pytest.raises(Boom) as info:
        pool.apply(explode, ("x",))
    assert info.value.args == ("x",)
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "explode" in names
    result = pool.spawn(explode, 1)
    result.wait(WAIT)
    assert not result.successful() and isinstance(result.exception, Boom)


def test_base_exception_is_delivered(pools):
    pool = pools(1)

    def leave():
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        pool.apply(leave)
    assert pool.apply(lambda: "still works") == "still works"


def test_waiting_greenlet_lets_others_run(pools):
    pool = pools(2)
    start = time.monotonic()
    value, ticks = ticking(lambda: pool.apply(lambda: (time.sleep(0.3), "done")[1]))
    assert value == "done"
    assert time.monotonic() - start >= 0.3
    assert ticks >= 10


def test_cross_thread_wake_without_other_watchers(pools):
    # nothing else is active on the loop: the result alone must wake it (and the loop
    # must be kept alive meanwhile: no LoopExit)
    pool = pools(1)
    for _ in range(3):
        start = time.monotonic()
        assert pool.spawn(lambda: (time.sleep(0.05), 7)[1]).get() == 7
        assert time.monotonic() - start < WAIT
    assert keepalive_count() == 0


def test_keepalive_released_after_results(pools):
    wait_until(lambda: keepalive_count() == 0)
    pool = pools(4)
    results = [pool.spawn(time.sleep, 0.01) for _ in range(20)]
    assert keepalive_count() == 20
    for r in results:
        r.get()
    wait_until(lambda: keepalive_count() == 0)
    assert get_hub().join(timeout=WAIT)


def test_killed_waiter_does_not_break_delivery(pools):
    pool = pools(1)
    release = threading.Event()
    result = pool.spawn(release.wait, LONG)
    waiter = spawn(result.get)
    sleep(0.01)
    waiter.kill()
    assert waiter.dead
    release.set()
    assert result.get() is True
    wait_until(lambda: keepalive_count() == 0)


def test_timeout_on_get(pools):
    pool = pools(1)
    release = threading.Event()
    result = pool.spawn(release.wait, LONG)
    with pytest.raises(Timeout):
        result.get(timeout=0.05)
    release.set()
    assert result.get() is True


def test_apply_from_hub_runs_inline(pools):
    pool = pools(2)
    seen = AsyncResult()
    get_hub().loop.run_callback(lambda: seen.set(pool.apply(get_ident)))
    assert seen.get(timeout=WAIT) == get_ident()


def test_apply_from_worker_runs_inline(pools):
    pool = pools(1)  # a nested apply in a full pool would deadlock if it queued

    def outer():
        return get_ident(), pool.apply(get_ident)

    a, b = pool.apply(outer)
    assert a == b != get_ident()


def test_spawn_from_another_thread_with_its_own_hub(pools):
    pool = pools(2)
    out = []

    def other_thread():
        try:
            out.append(pool.spawn(lambda: 41 + 1).get())
        except BaseException as exc:  # noqa: BLE001
            out.append(exc)
        finally:
            get_hub().destroy()

    t = threading.Thread(target=other_thread)
    t.start()
    wait_until(lambda: not t.is_alive())
    assert out == [42]


def test_result_links_run_in_hub(pools):
    pool = pools(1)
    seen = []
    result = pool.spawn(lambda: 5)
    result.rawlink(lambda r: seen.append((r.value, get_ident())))
    evloop.wait([result], timeout=WAIT)
    wait_until(lambda: seen)
    assert seen == [(5, get_ident())]


def test_apply_async_callback(pools):
    pool = pools(1)
    got = AsyncResult()
    result = pool.apply_async(pow, (2, 10), callback=got.set)
    assert result.get() == 1024
    assert got.get(timeout=WAIT) == 1024


# -- map / imap ------------------------------------------------------------------------------

def slow_identity(x):
    time.sleep(0.002 * (10 - x % 10))  # later items tend to finish first
    return x


def test_map_keeps_input_order(pools):
    pool = pools(4)
    assert pool.map(slow_identity, range(30)) == list(range(30))


def test_map_raises_first_failure(pools):
    pool = pools(3)

    def f(x):
        if x in (3, 7):
            raise Boom(x)
        return x

    with pytest.raises(Boom) as info:
        pool.map(f, range(10))
    assert info.value.args == (3,)


def test_imap_ordered_and_lazy(pools):
    pool = pools(3)
    consumed = []

    def source():
        for i in range(40):
            consumed.append(i)
            yield i

    it = pool.imap(slow_identity, source(), maxsize=5)
    assert consumed == []  # nothing read before the first next()
    assert next(it) == 0
    assert len(consumed) <= 6
    assert list(it) == list(range(1, 40))


def test_imap_several_iterables(pools):
    pool = pools(2)
    assert list(pool.imap(pow, [2, 3, 4], [2, 2, 2, 99])) == [4, 9, 16]


def test_imap_failure_then_continue(pools):
    pool = pools(2)

    def f(x):
        if x == 2:
            raise Boom(x)
        return x

    it = pool.imap(f, range(5))
    assert [next(it), next(it)] == [0, 1]
    with pytest.raises(Boom):
        next(it)
    assert list(it) == [3, 4]


def test_imap_unordered_yields_everything_as_finished(pools):
    pool = pools(3)
    release = threading.Event()

    def f(x):
        if x == 0:
            release.wait(LONG)
        return x

    it = pool.imap_unordered(f, range(6))
    first = [next(it) for _ in range(5)]
    assert sorted(first) == [1, 2, 3, 4, 5]  # item 0 is still blocked
    release.set()
    assert list(it) == [0]


def test_imap_unordered_many(pools):
    pool = pools(4)
    assert sorted(pool.imap_unordered(slow_identity, range(50), maxsize=7)) == list(range(50))


# -- sizes, len, join, kill -------------------------------------------------------------------

def test_threads_start_lazily_up_to_maxsize(pools):
    pool = pools(3)
    assert pool.size == 0 and pool.maxsize == 3
    running = [0]
    peak = [0]
    lock = threading.Lock()
    release = threading.Event()

    def task():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(LONG)
        with lock:
            running[0] -= 1

    results = [pool.spawn(task) for _ in range(8)]
    assert len(pool) == 8
    wait_until(lambda: running[0] == 3)
    sleep(0.1)
    assert peak[0] == 3 and pool.size == 3  # never more than maxsize
    release.set()
    for r in results:
        r.get()
    assert peak[0] == 3
    assert pool.join(timeout=WAIT)
    assert len(pool) == 0


def test_idle_workers_are_reused(pools):
    pool = pools(4)
    idents = {pool.apply(get_ident) for _ in range(10)}
    assert len(idents) == 1


def test_idle_workers_exit_after_idle_timeout(pools):
    pool = pools(3, idle_timeout=0.05)
    pool.map(time.sleep, [0.01] * 3)
    wait_until(lambda: pool.size == 0 and pool._alive == 0)
    assert pool.apply(lambda: 1) == 1  # and new work starts a new thread


def test_size_setter_prestarts_and_keeps_threads(pools):
    pool = pools(4, idle_timeout=0.05)
    pool.size = 2
    assert pool.size == 2
    sleep(0.3)  # several idle timeouts
    assert pool.size == 2
    pool.size = 0
    wait_until(lambda: pool.size == 0 and pool._alive == 0)
    with pytest.raises(ValueError):
        pool.size = 5
    with pytest.raises(ValueError):
        pool.size = -1
    with pytest.raises(TypeError):
        pool.size = "2"


def test_maxsize_adjustable(pools):
    pool = pools(1)
    release = threading.Event()
    running = [0]
    lock = threading.Lock()

    def task():
        with lock:
            running[0] += 1
        release.wait(LONG)

    results = [pool.spawn(task) for _ in range(3)]
    wait_until(lambda: running[0] == 1)
    pool.maxsize = 3           # the queued tasks get their threads now
    wait_until(lambda: running[0] == 3)
    release.set()
    for r in results:
        r.get()
    pool.size = 3
    pool.maxsize = 1           # idle surplus threads leave at once
    wait_until(lambda: pool.size == 1)
    assert pool.size <= pool.maxsize == 1
    for bad in (0, -3):
        with pytest.raises(ValueError):
            pool.maxsize = bad
    with pytest.raises(ValueError):
        ThreadPool(0)


def test_adjust_is_idempotent(pools):
    pool = pools(2)
    pool.adjust()
    assert pool.size == 0
    pool.size = 2
    pool.adjust()
    assert pool.size == 2


def test_join_waits_for_all_tasks(pools):
    pool = pools(2)
    done = []
    for i in range(6):
        pool.spawn(lambda i=i: (time.sleep(0.02), done.append(i)))
    assert pool.join(timeout=WAIT)
    assert sorted(done) == list(range(6))
    assert len(pool) == 0


def test_join_timeout(pools):
    pool = pools(1)
    release = threading.Event()
    pool.spawn(release.wait, LONG)
    assert pool.join(timeout=0.05) is False
    release.set()
    assert pool.join(timeout=WAIT) is True


def test_join_from_plain_thread(pools):
    pool = pools(1)
    pool.spawn(time.sleep, 0.05)
    out = []
    t = threading.Thread(target=lambda: out.append(pool.join(timeout=WAIT)))
    t.start()
    wait_until(lambda: not t.is_alive())
    assert out == [True]


def test_kill_cancels_queued_and_stops_threads(pools):
    pool = pools(1)
    release = threading.Event()
    started = threading.Event()

    def first():
        started.set()
        release.wait(LONG)
        return "first"

    running = pool.spawn(first)
    queued = [pool.spawn(lambda: "never") for _ in range(3)]
    assert started.wait(WAIT)
    pool.kill()
    assert pool.size == 0
    for r in queued:
        with pytest.raises(cf.CancelledError):
            r.get(timeout=WAIT)
    release.set()
    assert running.get(timeout=WAIT) == "first"  # the running task still delivers
    wait_until(lambda: pool._alive == 0)
    assert len(pool) == 0
    assert pool.apply(lambda: "again") == "again"  # still usable


def test_kill_idle_pool_threads_exit(pools):
    pool = pools(3)
    pool.size = 3
    pool.kill()
    wait_until(lambda: pool._alive == 0)


def test_hub_threadpool(pools):
    hub = get_hub()
    pool = hub.threadpool
    assert isinstance(pool, ThreadPool)
    assert pool is hub.threadpool and pool.hub is hub
    from evloop._config import get_config
    assert pool.maxsize == get_config().threadpool_size
    assert pool.apply(lambda: 3) == 3


def test_hub_threadpool_class_setting():
    # the hub names its pool's class (evloop.threadpool is a layer above the hub): a name or
    # a class, imported at first use
    from evloop._config import get_config
    from evloop.hub import Hub
    assert Hub.threadpool_class == "evloop.threadpool.ThreadPool"

    class CountingPool(ThreadPool):
        made = 0

        def __init__(self, *args, **kwargs):
            CountingPool.made += 1
            super().__init__(*args, **kwargs)

    hub = get_hub()
    old = hub._threadpool
    made = []
    try:
        for setting in (CountingPool, "evloop.threadpool.ThreadPool"):
            hub._threadpool = None
            hub.threadpool_class = setting
            pool = hub.threadpool
            made.append(pool)
            assert pool is hub.threadpool and pool.hub is hub
            assert pool.maxsize == get_config().threadpool_size
            assert pool.apply(lambda: 3) == 3
        assert type(made[0]) is CountingPool and CountingPool.made == 1
        assert type(made[1]) is ThreadPool
        for bad, error in (("evloop.threadpool.NoSuchPool", AttributeError),
                           ("evloop.no_such_module.Pool", ImportError),
                           ("ThreadPool", ValueError)):
            hub._threadpool = None
            hub.threadpool_class = bad
            with pytest.raises(error):
                hub.threadpool
    finally:
        del hub.threadpool_class
        hub._threadpool = old
        for pool in made:
            pool.kill()
        for pool in made:
            wait_until(lambda: pool._alive == 0)


def test_many_tasks_from_many_greenlets(pools):
    pool = pools(4)

    def worker(n):
        return sum(pool.apply(lambda x: x * x, (i,)) for i in range(n))

    greenlets = [spawn(worker, 20) for _ in range(10)]
    evloop.joinall(greenlets, timeout=WAIT, raise_error=True)
    assert [g.value for g in greenlets] == [sum(i * i for i in range(20))] * 10


# -- fork --------------------------------------------------------------------------------

FORK_SCRIPT = r"""
import os, sys, time, threading
import evloop
from evloop.threadpool import ThreadPool

pool = ThreadPool(3)
assert pool.map(lambda x: x + 1, range(5)) == [1, 2, 3, 4, 5]
assert pool.size >= 1
release = threading.Event()
inflight = pool.spawn(release.wait, 30)   # running in the parent at fork time

def child(fork):
    pid = fork()
    if pid:
        return pid
    code = 1
    try:
        assert pool.size == 0, pool.size
        assert len(pool) == 0, len(pool)
        try:
            inflight.get(timeout=10)
        except RuntimeError as exc:
            assert "fork" in str(exc), exc
        else:
            raise AssertionError("the lost task did not fail")
        assert pool.apply(os.getpid) == os.getpid()
        assert pool.map(lambda x: x * 2, range(6)) == [0, 2, 4, 6, 8, 10]
        assert pool.size >= 1
        code = 0
    except BaseException:
        import traceback; traceback.print_exc()
    finally:
        os._exit(code)

for fork in (evloop.fork, os.fork):
    pid = child(fork)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, (fork, status)
release.set()
assert inflight.get(timeout=10) is True
assert pool.apply(lambda: "parent ok") == "parent ok"
pool.kill()
print("OK")
"""


def test_fork_child_starts_fresh():
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVLOOP_")}
    env["PYTHONPATH"] = PKG_PARENT
    proc = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True,
                          text=True, timeout=60, cwd=PKG_PARENT, env=env)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr


def test_on_fork_without_fork_is_harmless(pools):
    pool = pools(2)
    assert pool.apply(lambda: 1) == 1
    size = pool.size
    pool._on_fork()
    assert pool.size == size
    assert pool.apply(lambda: 2) == 2


# -- ThreadPoolExecutor ----------------------------------------------------------------------

def test_executor_is_a_concurrent_futures_executor(executors):
    ex = executors(2)
    assert isinstance(ex, cf.ThreadPoolExecutor) and isinstance(ex, cf.Executor)
    f = ex.submit(pow, 2, 8)
    assert isinstance(f, cf.Future)
    assert f.result(timeout=WAIT) == 256
    assert f.done() and not f.cancelled() and f.exception() is None


def test_executor_result_waits_cooperatively(executors):
    ex = executors(2)
    f = ex.submit(lambda: (time.sleep(0.3), "slow")[1])
    value, ticks = ticking(lambda: f.result())
    assert value == "slow"
    assert ticks >= 10


def test_executor_result_timeout_cooperative(executors):
    ex = executors(1)
    release = threading.Event()
    f = ex.submit(release.wait, LONG)
    start = time.monotonic()
    _, ticks = ticking(lambda: pytest.raises(cf.TimeoutError, f.result, 0.2))
    assert time.monotonic() - start >= 0.2
    assert ticks >= 5
    release.set()
    assert f.result(timeout=WAIT) is True


def test_executor_exception(executors):
    ex = executors(1)
    f = ex.submit(explode, "e")
    assert isinstance(f.exception(timeout=WAIT), Boom)
    with pytest.raises(Boom):
        f.result()


def test_executor_futures_from_many_greenlets(executors):
    ex = executors(3)

    def worker(i):
        return ex.submit(lambda: i * 10).result(timeout=WAIT)

    greenlets = [spawn(worker, i) for i in range(20)]
    evloop.joinall(greenlets, timeout=WAIT, raise_error=True)
    assert [g.value for g in greenlets] == [i * 10 for i in range(20)]


def test_executor_wait_and_as_completed_from_plain_thread(executors):
    ex = executors(3)
    out = {}

    def plain():
        fs = [ex.submit(slow_identity, i) for i in range(9)]
        done, not_done = cf.wait(fs, timeout=WAIT)
        out["wait"] = (len(done), len(not_done))
        fs2 = [ex.submit(slow_identity, i) for i in range(9)]
        out["as_completed"] = sorted(f.result() for f in cf.as_completed(fs2, timeout=WAIT))
        out["result"] = ex.submit(get_ident).result(timeout=WAIT) != get_ident()

    t = threading.Thread(target=plain)
    t.start()
    wait_until(lambda: not t.is_alive())
    assert out == {"wait": (9, 0), "as_completed": list(range(9)), "result": True}


def test_executor_wait_first_completed_from_greenlet(executors):
    # concurrent.futures.wait blocks its thread (it is the stdlib's); keep it short
    ex = executors(2)
    release = threading.Event()
    slow = ex.submit(release.wait, LONG)
    fast = ex.submit(lambda: 1)
    done, pending = cf.wait([slow, fast], timeout=WAIT, return_when=cf.FIRST_COMPLETED)
    assert fast in done and slow in pending
    release.set()
    assert slow.result(timeout=WAIT) is True


def test_executor_map(executors):
    ex = executors(3)
    assert list(ex.map(slow_identity, range(20))) == list(range(20))
    assert list(ex.map(pow, [2, 3], [3, 2])) == [8, 9]


def test_executor_shutdown_waits(executors):
    ex = executors(2)
    done = []
    for i in range(4):
        ex.submit(lambda i=i: (time.sleep(0.05), done.append(i)))
    ex.shutdown(wait=True)
    assert sorted(done) == [0, 1, 2, 3]
    with pytest.raises(RuntimeError):
        ex.submit(lambda: 1)
    wait_until(lambda: ex._pool._alive == 0)


def test_executor_context_manager(executors):
    with executors(2) as ex:
        f = ex.submit(lambda: "ctx")
    assert f.done() and f.result() == "ctx"


def test_executor_shutdown_cancel_futures(executors):
    ex = executors(1)
    release = threading.Event()
    started = threading.Event()

    def first():
        started.set()
        return release.wait(LONG)

    running = ex.submit(first)
    queued = [ex.submit(lambda: "never") for _ in range(3)]
    assert started.wait(WAIT)
    ex.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    done, _ = cf.wait(queued, timeout=WAIT)
    assert len(done) == 3
    release.set()
    assert running.result(timeout=WAIT) is True


def test_executor_cancel_pending_future(executors):
    ex = executors(1)
    release = threading.Event()
    ex.submit(release.wait, LONG)
    pending = ex.submit(lambda: "never")
    assert pending.cancel()
    release.set()
    with pytest.raises(cf.CancelledError):
        pending.result(timeout=WAIT)


def test_executor_initializer(executors):
    seen = []
    ex = executors(2, initializer=seen.append, initargs=("init",))
    assert ex.submit(lambda: 1).result(timeout=WAIT) == 1
    assert "init" in seen


def test_executor_broken_initializer(executors, capsys):
    def bad_init():
        raise Boom("init")

    ex = executors(1, initializer=bad_init)
    f = ex.submit(lambda: 1)
    with pytest.raises(BrokenThreadPool):
        f.result(timeout=WAIT)
    with pytest.raises(BrokenThreadPool):
        ex.submit(lambda: 2)
    assert "Boom" in capsys.readouterr().err


def test_executor_keeps_submitting_loop_alive(executors):
    wait_until(lambda: keepalive_count() == 0)  # earlier tests' releases have run
    ex = executors(2)
    fs = [ex.submit(time.sleep, 0.02) for _ in range(5)]
    assert keepalive_count() == 5
    for f in fs:
        f.result(timeout=WAIT)
    wait_until(lambda: keepalive_count() == 0)


def test_executor_submit_from_plain_thread_creates_no_hub(executors):
    ex = executors(1)
    out = []

    def plain():
        out.append(ex.submit(lambda: 3).result(timeout=WAIT))
        out.append(evloop.hub.get_hub_if_exists())

    t = threading.Thread(target=plain)
    t.start()
    wait_until(lambda: not t.is_alive())
    assert out == [3, None]


MONKEY_SCRIPT = r"""
from evloop import monkey
monkey.patch_all()
import concurrent.futures as cf, threading, time
from evloop import sleep, spawn
from evloop.hub import get_hub
from evloop.threadpool import ThreadPool, ThreadPoolExecutor

native_ident = monkey.get_original("_thread", "get_ident")
pool = ThreadPool(2)
assert pool.apply(native_ident) != native_ident()       # a real OS thread
result = pool.spawn(time.sleep, 0.2)                    # time.sleep is the real one there
ticks = [0]
def tick():
    while not result.ready():
        sleep(0.01)
        ticks[0] += 1
g = spawn(tick)
result.get()
g.join()
assert ticks[0] >= 5, ticks
ex = ThreadPoolExecutor(2)
fs = [ex.submit(time.sleep, 0.02) for _ in range(4)]
done, _ = cf.wait(fs, timeout=10)                       # patched Event, from a greenlet
assert len(done) == 4
assert sorted(f.result() is None for f in cf.as_completed(fs)) == [True] * 4
ex.shutdown()
pool.kill()
print("OK")
"""


def test_real_threads_after_monkey_patching():
    pytest.importorskip("evloop.monkey")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVLOOP_")}
    env["PYTHONPATH"] = PKG_PARENT
    # -W error: neither patching nor evloop's threads may warn (DeprecationWarning included)
    proc = subprocess.run([sys.executable, "-W", "error", "-c", MONKEY_SCRIPT],
                          capture_output=True, text=True, timeout=60, cwd=PKG_PARENT, env=env)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr


@pytest.fixture
def hub_api(impl):
    import importlib
    return (importlib.import_module(impl), importlib.import_module(f"{impl}.threadpool")) \
        if impl else None


def test_hub_threadpool_is_assignable(hub_api):
    # gevent's Hub.threadpool property: assign a pool (the old one is left to its holder),
    # or delete it to get a new default one at next use
    api, threadpool = hub_api
    hub = api.get_hub()
    old = hub.threadpool
    mine = threadpool.ThreadPool(2)
    try:
        hub.threadpool = mine
        assert hub.threadpool is mine
        assert api.get_hub().threadpool.apply(pow, (2, 5)) == 32
        assert old.apply(pow, (2, 3)) == 8  # not killed by the replacement
        del hub.threadpool
        fresh = hub.threadpool
        assert fresh is not mine and fresh is not old
        assert fresh.apply(pow, (3, 2)) == 9
    finally:
        mine.kill()
        old.kill()
