"""Database clients under ``evloop.monkey.patch_all()``, against real servers
(tests/_services.py): psycopg 3 with no setting at all (evloop._library_checks answers
the question it asks gevent), psycopg2 with ``evloop.integrations.psycopg``'s wait
callback, redis-py, and python-socketio's Redis manager, whose gevent check evloop answers.

Each program runs in a fresh interpreter (patching is process-wide), once as the suite's
environment has it (gevent installed: evloop must leave gevent's ``gevent.monkey`` alone
and tell psycopg directly) and, where the answer differs, once with gevent made
unimportable by a ``sys.meta_path`` finder (evloop then registers its ``gevent.monkey``
answer). Concurrency is proved by time (50 queries of 0.2 s each: 10 s one after the
other; the bound is generous for a loaded 2-core machine) and by a greenlet ticking every
10 ms during the queries, which a blocked thread would stop.
"""
import pytest

from _helpers import run_json

# the measurement every concurrency test shares: measure(work, n) spawns work(i) for i < n in
# greenlets while a ticker greenlet counts 10 ms sleeps; prints the figures as JSON
MEASURE = """
import json, time, evloop
def measure(work, n, **extra):
    ticks = [0]
    stop = [False]
    def ticker():
        while not stop[0]:
            time.sleep(0.01)
            ticks[0] += 1
    t = evloop.spawn(ticker)
    time.sleep(0.02)
    ticks[0] = 0
    start = time.monotonic()
    greenlets = [evloop.spawn(work, i) for i in range(n)]
    evloop.joinall(greenlets, raise_error=True)
    elapsed = time.monotonic() - start
    stop[0] = True
    t.join()
    print(json.dumps(dict(elapsed=elapsed, ticks=ticks[0],
                          results=[g.value for g in greenlets], **extra)))
"""

N = 50
# 50 x 0.2 s one after the other is 10 s; concurrent, 0.2 s plus overheads
CONCURRENT_BOUND = 2.5


def assert_concurrent(figures, n=N):
    assert figures["elapsed"] < CONCURRENT_BOUND, figures
    # 0.2 s at 10 ms a tick is ~20 ticks; a blocked thread gives 0
    assert figures["ticks"] >= 5, figures


# -- psycopg 3 ------------------------------------------------------------------------------

PSYCOPG3 = """
import evloop.monkey
evloop.monkey.patch_all()
""" + MEASURE + """
import sys
import psycopg, psycopg.waiting
dsn = sys.argv[1]
conns = [None] * {n}
def connect(i):
    conns[i] = psycopg.connect(dsn, autocommit=True)
def query(i):
    return conns[i].execute("SELECT pg_sleep(0.2), %s::int", (i,)).fetchone()[1]
evloop.joinall([evloop.spawn(connect, i) for i in range({n})], raise_error=True)
measure(query, {n}, wait=psycopg.waiting.wait.__name__,
        impl=psycopg.pq.__impl__)
for c in conns:
    c.close()
"""


@pytest.mark.parametrize("gevent", [True, False], ids=["gevent-installed", "gevent-absent"])
def test_psycopg3_queries_run_concurrently_without_setting(postgres_dsn, gevent):
    figures, _ = run_json(PSYCOPG3.format(n=N), postgres_dsn, gevent=gevent)
    assert figures["results"] == list(range(N))
    # the C wait (wait_c) blocks the thread: psycopg must use its wait over select.poll
    assert figures["wait"] == "wait_poll", figures
    assert_concurrent(figures)


def test_psycopg3_c_wait_blocks_the_thread(postgres_dsn):
    """The measure can fail: with the C wait chosen explicitly (PSYCOPG_WAIT_FUNC, which
    evloop leaves alone), the queries run one after the other and the ticker stops."""
    n = 8
    figures, _ = run_json(PSYCOPG3.format(n=n), postgres_dsn,
                          env={"PSYCOPG_WAIT_FUNC": "wait_c"})
    if figures["impl"] == "python":
        pytest.skip("psycopg runs its pure-Python implementation here: there is no C wait")
    assert figures["wait"] == "wait_c"
    assert figures["elapsed"] >= n * 0.2 * 0.9, figures
    # a running ticker would tick ~100 times a second; blocked, it ticks only between
    # the queries' greenlet switches (2 here, for 8 or for 50 queries)
    assert figures["ticks"] < figures["elapsed"] * 10, figures


def test_psycopg3_imported_before_patching_is_told_at_patch_time(postgres_dsn):
    figures, proc = run_json("""
import warnings
warnings.simplefilter("always")
import psycopg, psycopg.waiting
chosen_before = psycopg.waiting.wait.__name__
import evloop.monkey
evloop.monkey.patch_all()
""" + MEASURE + """
import sys
conns = [psycopg.connect(sys.argv[1], autocommit=True) for i in range(10)]
def query(i):
    return conns[i].execute("SELECT pg_sleep(0.2), %s::int", (i,)).fetchone()[1]
measure(query, 10, before=chosen_before, wait=psycopg.waiting.wait.__name__,
        impl=psycopg.pq.__impl__)
for c in conns:
    c.close()
""", postgres_dsn, gevent=False)
    if figures["impl"] != "python":
        assert figures["before"] == "wait_c"
    assert figures["wait"] == "wait_poll"
    assert figures["results"] == list(range(10))
    assert_concurrent(figures)
    # connecting still uses the selector psycopg captured before patching: said loudly
    assert "MonkeyPatchWarning" in proc.stderr and "psycopg.waiting" in proc.stderr, \
        proc.stderr


def test_psycopg3_wait_functions_evloop_relies_on():
    """evloop._library_checks relies on these names of psycopg.waiting (checked on
    psycopg 3.1.14-3.3.9): a release that changes them fails here first."""
    figures, _ = run_json("""
import json
import psycopg, psycopg.waiting as w
print(json.dumps(dict(impl=psycopg.pq.__impl__, wait=hasattr(w, "wait"),
                      wait_poll=callable(getattr(w, "wait_poll", None)),
                      wait_c=callable(getattr(w, "wait_c", None)),
                      chosen=w.wait.__name__)))
""")
    assert figures["wait"] and figures["wait_poll"]
    if figures["impl"] != "python":
        # unpatched, the C implementation waits in C: the wait evloop replaces
        assert figures["wait_c"] and figures["chosen"] == "wait_c", figures


# -- psycopg2 ---------------------------------------------------------------------------------

PSYCOPG2 = """
import evloop.monkey
evloop.monkey.patch_all()
from evloop.integrations.psycopg import make_psycopg_green
make_psycopg_green()
""" + MEASURE + """
import sys
import psycopg2
dsn = sys.argv[1]
conns = [None] * {n}
def connect(i):
    conns[i] = psycopg2.connect(dsn)
    conns[i].autocommit = True
def query(i):
    with conns[i].cursor() as cur:
        cur.execute("SELECT pg_sleep(0.2), %s::int", (i,))
        return cur.fetchone()[1]
evloop.joinall([evloop.spawn(connect, i) for i in range({n})], raise_error=True)
measure(query, {n})
for c in conns:
    c.close()
"""


def test_psycopg2_with_the_wait_callback_runs_queries_concurrently(postgres_dsn):
    figures, _ = run_json(PSYCOPG2.format(n=N), postgres_dsn)
    assert figures["results"] == list(range(N))
    assert_concurrent(figures)


def test_psycopg2_wait_callback_errors_and_interruptions(postgres_dsn):
    figures, _ = run_json("""
import evloop.monkey
evloop.monkey.patch_all()
import json, sys, time
import evloop, psycopg2, psycopg2.extensions
from evloop.integrations.psycopg import evloop_wait_callback, make_psycopg_green
make_psycopg_green()
installed = psycopg2.extensions.get_wait_callback() is evloop_wait_callback
dsn = sys.argv[1]
conn = psycopg2.connect(dsn)
conn.autocommit = True
cur = conn.cursor()
try:
    cur.execute("SELECT 1/0")
except psycopg2.errors.DivisionByZero:
    error = "DivisionByZero"
cur.execute("SELECT 7")
after_error = cur.fetchone()[0]
# a Timeout cuts a query short: the wait raises, psycopg2 closes that connection
start = time.monotonic()
try:
    with evloop.Timeout(0.3):
        cur.execute("SELECT pg_sleep(10)")
except evloop.Timeout:
    timed_out = time.monotonic() - start
closed = conn.closed
other = psycopg2.connect(dsn)
with other.cursor() as c2:
    c2.execute("SELECT 8")
    fresh = c2.fetchone()[0]
other.close()
conn.close()
try:
    psycopg2.connect("host=127.0.0.1 port=1 user=nobody dbname=none connect_timeout=5")
except psycopg2.OperationalError:
    refused = True
print(json.dumps(dict(installed=installed, error=error, after_error=after_error,
                      timed_out=timed_out, closed=closed, fresh=fresh, refused=refused)))
""", postgres_dsn)
    assert figures["installed"]
    assert figures["error"] == "DivisionByZero" and figures["after_error"] == 7
    assert figures["timed_out"] < 3.0, figures
    assert figures["closed"], figures
    assert figures["fresh"] == 8 and figures["refused"]


# -- redis-py ---------------------------------------------------------------------------------

def test_redis_blocking_pops_and_pings_cooperate(redis_url):
    figures, _ = run_json("""
import evloop.monkey
evloop.monkey.patch_all()
""" + MEASURE + """
import sys
import redis
url = sys.argv[1]
N = 20
def work(i):
    client = redis.Redis.from_url(url)
    try:
        if i == N:  # the pusher: the poppers must already be waiting in BLPOP
            time.sleep(0.3)
            for k in range(N):
                client.rpush(f"evloop-k{k}", k)
            return "pushed"
        if i > N:
            return [client.ping() for _ in range(20)].count(True)
        key, value = client.blpop([f"evloop-k{i}"], timeout=5)
        return int(value)
    finally:
        client.close()
measure(work, 2 * N + 1)
""", redis_url)
    n = 20
    assert figures["results"][:n] == list(range(n))
    assert figures["results"][n] == "pushed"
    assert figures["results"][n + 1:] == [20] * n
    # a BLPOP blocking the thread would stop the pusher: each pop would wait its 5 s
    assert 0.25 < figures["elapsed"] < CONCURRENT_BOUND, figures
    assert figures["ticks"] >= 5, figures


# -- python-socketio ---------------------------------------------------------------------------

SOCKETIO = """
import evloop.monkey
evloop.monkey.patch_all()
import json, logging, sys, time, types
import evloop, socketio
url = sys.argv[1]
got = []
class Recording(socketio.RedisManager):
    def _handle_emit(self, message):
        got.append((message["event"], message["data"]))
manager = Recording(url)
server = socketio.Server(client_manager=manager)
mode = server.async_mode
# socketio's own check, as it runs in its gevent mode
probe = socketio.RedisManager(url, write_only=True, logger=logging.getLogger("probe"))
probe.server = types.SimpleNamespace(async_mode="gevent")
try:
    probe.initialize()
    check = "patched"
except RuntimeError as ex:
    check = str(ex)
"""


def test_socketio_redis_manager_without_gevent_needs_no_setting(redis_url):
    figures, _ = run_json(SOCKETIO + """
ticks = [0]
def ticker():
    while True:
        time.sleep(0.01)
        ticks[0] += 1
t = evloop.spawn(ticker)
manager.initialize()              # its listener is a green thread (threading mode)
time.sleep(0.3)                   # subscribed
socketio.RedisManager(url, write_only=True).emit("hello", {"n": 1})
deadline = time.monotonic() + 10
while not got and time.monotonic() < deadline:
    time.sleep(0.01)
t.kill()
print(json.dumps(dict(mode=mode, check=check, got=got, ticks=ticks[0])))
""", redis_url, gevent=False)
    assert figures["mode"] == "threading"
    assert figures["check"] == "patched", figures["check"]
    assert figures["got"] == [["hello", [{"n": 1}]]], figures  # socketio sends a list of args
    assert figures["ticks"] >= 10, figures


def test_socketio_with_gevent_installed_needs_threading_mode(redis_url):
    """With gevent installed socketio picks its gevent mode, which runs gevent's hub:
    gevent's truthful answer (socket not patched *for gevent*) makes it fail at once
    instead of hanging; with async_mode="threading" (docs/gevent.md) it works."""
    figures, _ = run_json(SOCKETIO + """
try:
    manager.initialize()
    started = "started"
except RuntimeError as ex:
    started = str(ex)
# what docs/gevent.md tells: threading mode, whose threads are greenlets after patching
manager = Recording(url)
server = socketio.Server(client_manager=manager, async_mode="threading")
manager.initialize()
time.sleep(0.3)
socketio.RedisManager(url, write_only=True).emit("hello", {"n": 2})
deadline = time.monotonic() + 10
while not got and time.monotonic() < deadline:
    time.sleep(0.01)
print(json.dumps(dict(mode=mode, check=check, started=started, got=got)))
""", redis_url)
    assert figures["mode"] == "gevent"
    assert "Redis requires a monkey patched socket library" in figures["check"], figures
    assert "Redis requires a monkey patched socket library" in figures["started"], figures
    assert figures["got"] == [["hello", [{"n": 2}]]], figures
