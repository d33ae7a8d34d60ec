"""Real gevent-style programs, written with gevent's names only.

Each test is a small program as a gevent user would write it: a producer/consumer pipeline
over ``gevent.queue.Queue``, a bounded ``gevent.pool.Pool`` working through jobs, a
timeout-bounded set of workers (``gevent.Timeout``, ``joinall(timeout=)``), a greenlet-local
request context (``gevent.local.local``), and a few more. They run against evloop
(``import evloop as gevent``) by default, and against real gevent with::

    IMPL=gevent GEVENT_LOOP=libev-cext benchmarks/.peers/bin/python -m pytest tests/test_programs.py

so that the same programs show that the semantics match.

Timing rules (a busy 2-core machine): lower bounds, or upper bounds with a >= 10x margin.
"""
import os
import time

import pytest

IMPL = os.environ.get("IMPL", "evloop")
if IMPL == "gevent":
    import gevent
    import gevent.event
    import gevent.local
    import gevent.pool
    import gevent.queue
else:
    # the submodules load on first attribute access (gevent.queue, gevent.pool, ...)
    import evloop as gevent

LONG = 30.0
GUARD = 10.0


@pytest.fixture(autouse=True)
def _clean_hub():
    hub = gevent.get_hub()
    before = hub.loop.activecnt
    yield
    gevent.sleep(0)
    assert hub.loop.activecnt == before, "a program left a watcher running"


def test_implementation_under_test():
    assert gevent.__name__ == IMPL


# --------------------------------------------------------------------------------------
# producer / consumer pipeline over gevent.queue.Queue
# --------------------------------------------------------------------------------------

def test_pipeline_producer_transformers_consumer():
    raw = gevent.queue.Queue(maxsize=5)       # bounded: the producer is held back
    cooked = gevent.queue.Queue()
    results = []
    high_water = []
    STOP = object()

    def producer(n):
        for i in range(n):
            raw.put(i)
            high_water.append(raw.qsize())
        for _ in range(3):
            raw.put(STOP)

    def transformer(name):
        count = 0
        while True:
            item = raw.get()
            if item is STOP:
                cooked.put(STOP)
                return count
            gevent.sleep(0.001)             # some cooperative work
            cooked.put((item, item * item, name))
            count += 1

    def consumer():
        stops = 0
        while stops < 3:
            item = cooked.get()
            if item is STOP:
                stops += 1
                continue
            results.append(item)

    workers = [gevent.spawn(transformer, f"t{i}") for i in range(3)]
    prod = gevent.spawn(producer, 100)
    cons = gevent.spawn(consumer)
    gevent.joinall([prod, cons] + workers, timeout=GUARD * 2, raise_error=True)
    assert all(g.dead for g in [prod, cons] + workers)
    assert sorted(r[0] for r in results) == list(range(100))
    assert all(sq == i * i for i, sq, _ in results)
    assert max(high_water) <= 5
    # the work was shared by the three transformers
    assert sum(w.value for w in workers) == 100
    assert sum(1 for w in workers if w.value > 0) >= 2
    assert raw.empty() and cooked.empty()


def test_work_queue_with_task_done_and_join():
    tasks = gevent.queue.Queue()
    done = []

    def worker():
        while True:
            item = tasks.get()
            try:
                gevent.sleep(0.001 * (item % 3))
                done.append(item)
            finally:
                tasks.task_done()

    workers = [gevent.spawn(worker) for _ in range(4)]
    for i in range(40):
        tasks.put(i)
    tasks.join()
    assert sorted(done) == list(range(40))
    gevent.killall(workers)
    assert all(w.dead for w in workers)


def test_queue_get_with_timeout_ends_an_idle_consumer():
    q = gevent.queue.Queue()
    got = []

    def consumer():
        while True:
            try:
                got.append(q.get(timeout=0.3))
            except gevent.queue.Empty:
                return "idle"

    c = gevent.spawn(consumer)
    for i in range(3):
        q.put(i)
        gevent.sleep(0.001)
    assert c.get(timeout=GUARD) == "idle"
    assert got == [0, 1, 2]


def test_queue_iteration_with_stopiteration():
    q = gevent.queue.Queue()

    def producer():
        for word in "the quick brown fox".split():
            q.put(word)
            gevent.sleep(0)
        q.put(StopIteration)

    gevent.spawn(producer)
    assert list(q) == ["the", "quick", "brown", "fox"]


# --------------------------------------------------------------------------------------
# a bounded gevent.pool.Pool working through jobs
# --------------------------------------------------------------------------------------

def test_bounded_pool_works_through_jobs():
    pool = gevent.pool.Pool(3)
    running = []
    peak = []
    finished = []

    def job(n):
        running.append(n)
        peak.append(len(running))
        gevent.sleep(0.005)
        running.remove(n)
        finished.append(n)
        return n * 10

    greenlets = [pool.spawn(job, n) for n in range(20)]
    pool.join(timeout=GUARD)
    assert sorted(finished) == list(range(20))
    assert max(peak) == 3                   # never more than the pool's size at once
    assert [g.value for g in greenlets] == [n * 10 for n in range(20)]
    assert len(pool) == 0
    assert pool.free_count() == 3


def test_pool_map_and_imap_unordered():
    pool = gevent.pool.Pool(4)

    def slow_square(x):
        gevent.sleep(0.001 * (5 - x % 5))
        return x * x

    assert pool.map(slow_square, range(10)) == [x * x for x in range(10)]
    assert sorted(pool.imap_unordered(slow_square, range(10))) == [x * x for x in range(10)]
    assert list(pool.imap(slow_square, range(5))) == [0, 1, 4, 9, 16]


def test_pool_spawn_blocks_when_full():
    pool = gevent.pool.Pool(2)
    order = []

    def job(name, delay):
        gevent.sleep(delay)
        order.append(name)

    pool.spawn(job, "a", 0.05)
    pool.spawn(job, "b", 0.05)
    assert pool.full()
    t0 = time.monotonic()
    pool.spawn(job, "c", 0)                 # waits for a free slot
    assert time.monotonic() - t0 >= 0.04
    pool.join()
    assert order[-1] == "c"


def test_pool_with_failing_jobs_and_kill():
    pool = gevent.pool.Pool(5)
    hub = gevent.get_hub()
    old_stream = hub.exception_stream
    import io
    hub.exception_stream = io.StringIO()
    try:
        def job(n):
            if n % 4 == 0:
                raise ValueError(n)
            gevent.sleep(LONG if n == 7 else 0.001)
            return n

        greenlets = [pool.spawn(job, n) for n in range(10)]
        pool.join(timeout=0.2)
        failed = sorted(g.exception.args[0] for g in greenlets if g.exception is not None)
        assert failed == [0, 4, 8]
        assert not greenlets[7].dead       # still sleeping
        pool.kill()
        assert greenlets[7].dead
        assert len(pool) == 0
    finally:
        hub.exception_stream = old_stream


# --------------------------------------------------------------------------------------
# timeout-bounded workers
# --------------------------------------------------------------------------------------

def test_joinall_with_timeout_then_kill_the_stragglers():
    def worker(delay):
        gevent.sleep(delay)
        return delay

    delays = [0.01, 0.02, LONG, 0.03, LONG]
    workers = [gevent.spawn(worker, d) for d in delays]
    t0 = time.monotonic()
    done = gevent.joinall(workers, timeout=0.2)
    assert time.monotonic() - t0 >= 0.19
    assert sorted(g.value for g in done) == [0.01, 0.02, 0.03]
    stragglers = [g for g in workers if not g.ready()]
    assert len(stragglers) == 2
    gevent.killall(stragglers)
    assert all(g.dead for g in workers)
    assert all(isinstance(g.value, gevent.GreenletExit) for g in stragglers)


def test_timeout_around_a_batch_of_workers():
    results = {}

    def fetch(name, delay):
        gevent.sleep(delay)
        results[name] = delay

    workers = [gevent.spawn(fetch, f"job{i}", 0.01 * i) for i in range(5)]
    workers.append(gevent.spawn(fetch, "slow", LONG))
    timeout = gevent.Timeout(0.2)
    timeout.start()
    try:
        gevent.joinall(workers)
        timed_out = False
    except gevent.Timeout as ex:
        assert ex is timeout
        timed_out = True
    finally:
        timeout.cancel()
    assert timed_out
    assert sorted(results) == [f"job{i}" for i in range(5)]
    gevent.killall(workers)


def test_each_worker_bounded_by_its_own_timeout():
    def worker(delay):
        with gevent.Timeout(0.3, False):
            gevent.sleep(delay)
            return "finished"
        return "gave up"

    workers = [gevent.spawn(worker, d) for d in (0.001, LONG, 0.002, LONG)]
    gevent.joinall(workers, timeout=GUARD)
    assert [w.value for w in workers] == ["finished", "gave up", "finished", "gave up"]


def test_with_timeout_fallback_values():
    def lookup(key, delay):
        gevent.sleep(delay)
        return key.upper()

    jobs = [gevent.spawn(gevent.with_timeout, 0.3, lookup, k, d, timeout_value="n/a")
            for k, d in (("a", 0.001), ("b", LONG), ("c", 0.002))]
    gevent.joinall(jobs)
    assert [j.value for j in jobs] == ["A", "n/a", "C"]


# --------------------------------------------------------------------------------------
# a greenlet-local request context (gevent.local.local)
# --------------------------------------------------------------------------------------

def test_request_context_is_greenlet_local():
    class RequestContext(gevent.local.local):
        user = "anonymous"                  # class default seen by every greenlet

        def __init__(self, app):
            self.app = app                  # runs once per greenlet
            self.log = []

    ctx = RequestContext(app="shop")
    ctx.request_id = "main"

    def handle(request_id, user, delay):
        assert not hasattr(ctx, "request_id")   # nothing leaks in from other greenlets
        assert ctx.user == "anonymous"
        ctx.request_id = request_id
        ctx.user = user
        for step in range(3):
            gevent.sleep(delay)                  # other requests run meanwhile
            ctx.log.append(step)
        return ctx.app, ctx.request_id, ctx.user, ctx.log

    handlers = [gevent.spawn(handle, f"req-{i}", f"user{i}", 0.001 * (3 - i))
                for i in range(3)]
    gevent.joinall(handlers, raise_error=True)
    assert [h.value for h in handlers] == [
        ("shop", f"req-{i}", f"user{i}", [0, 1, 2]) for i in range(3)]
    assert ctx.request_id == "main"
    assert ctx.user == "anonymous"
    assert ctx.log == []


def test_request_context_not_inherited_by_spawned_greenlets():
    ctx = gevent.local.local()

    def child():
        return getattr(ctx, "trace_id", None)

    def parent():
        ctx.trace_id = "abc"
        return ctx.trace_id, gevent.spawn(child).get()

    assert gevent.spawn(parent).get() == ("abc", None)


# --------------------------------------------------------------------------------------
# a few more everyday programs
# --------------------------------------------------------------------------------------

def test_fan_out_fan_in():
    def fetch(url):
        gevent.sleep(0.001 * len(url))
        return len(url)

    urls = ["http://a", "http://bb", "http://ccc"]
    jobs = {url: gevent.spawn(fetch, url) for url in urls}
    gevent.joinall(jobs.values())
    assert {url: job.value for url, job in jobs.items()} == {u: len(u) for u in urls}


def test_supervisor_restarts_a_crashing_worker():
    hub = gevent.get_hub()
    import io
    old_stream = hub.exception_stream
    hub.exception_stream = io.StringIO()
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("crash")
        return "stable"

    def supervise():
        while True:
            g = gevent.spawn(flaky)
            g.join()
            if g.successful():
                return g.value

    try:
        assert gevent.spawn(supervise).get(timeout=GUARD) == "stable"
        assert len(attempts) == 3
    finally:
        hub.exception_stream = old_stream


def test_event_broadcast_to_waiting_workers():
    ready = gevent.event.Event()
    started = []

    def worker(i):
        ready.wait()
        started.append(i)

    workers = [gevent.spawn(worker, i) for i in range(5)]
    gevent.sleep(0.01)
    assert started == []
    ready.set()
    gevent.joinall(workers)
    assert sorted(started) == list(range(5))


def test_link_based_completion_callback():
    completed = []

    def job(x):
        gevent.sleep(0.001)
        return x + 1

    g = gevent.spawn(job, 41)
    g.link_value(lambda source: completed.append(source.value))
    g.join()
    gevent.sleep(0.01)
    assert completed == [42]
