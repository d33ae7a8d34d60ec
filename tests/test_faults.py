"""Fault injection (issue 6): what evloop does when the environment misbehaves.

Why it exists: the unit tests exercise each API on its happy and error paths; these put a
running program — greenlets doing I/O, timers, thread pool work — under a fault and check
that nothing crashes, no data is lost or misdelivered, and errors are clear:

* fds closed under waiting greenlets (while their numbers are reused for new sockets);
* a storm of signals, one every millisecond, while large transfers run (EINTR everywhere);
* fork() while greenlets, thread-pool threads and another thread's hub are busy;
* many threads calling the thread-safe APIs at once;
* the hub destroyed while greenlets wait on everything a greenlet can wait on;
* KeyboardInterrupt (SIGINT) at random moments;
* running out of fds (EMFILE) in accept(): the server waits and serves once fds free up.

What it must not do: take long (about 25 s in all) or depend on timing: every bound is
generous and every random choice is seeded. The crash-prone cases run in subprocesses.
The regression tests for the bugs these found live next to the code they fixed
(test_hub.py, test_lock.py, test_queue.py, test_socket.py, test_core.py).
"""
import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import zlib

import pytest

import evloop
from evloop import socket as evsocket
from evloop.event import AsyncResult, Event
from evloop.hub import get_hub
from evloop.lock import Semaphore
from evloop.queue import Queue
from _helpers import ROOT, lines, run_python

SLACK = 5.0   # "promptly", on a busy 2-core machine


def _outcome(func, *args):
    try:
        return "ok", func(*args)
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        return "raised", exc


# -------------------------------------------------------------------------------------
# fds closed under waiting greenlets
# -------------------------------------------------------------------------------------

def _stream_transfer(a, b, blob):
    """Send ``blob`` over a->b in a greenlet, receive it here; the received bytes."""
    sender = evloop.spawn(a.sendall, blob)
    got = bytearray()
    while len(got) < len(blob):
        data = b.recv(65536)
        if not data:
            break
        got += data
    sender.get(timeout=SLACK)
    return bytes(got)


def test_fds_closed_under_waiting_greenlets_while_their_numbers_are_reused():
    """200 greenlets wait on 100 sockets in nine different ways (two per socket); another greenlet closes
    the sockets in random order and at once opens new sockets, which reuse the fd numbers
    and carry checksummed data. Every waiter ends promptly with EBADF (or, for
    select-like waits, a "ready" answer for the closed socket), no new socket's data goes
    to a waiter of an old one, and no watcher is left behind."""
    from evloop import os as evos
    from evloop import select, selectors

    hub = get_hub()
    before = hub.loop.activecnt
    rng = random.Random(6)
    listener = evsocket.create_server(("127.0.0.1", 0))
    udp = evsocket.socket(evsocket.AF_INET, evsocket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    keep = []                 # peers of the closed sockets: their end stays open

    def full(sock):
        sock.setblocking(False)
        try:
            while True:
                sock.send(b"f" * 65536)
        except BlockingIOError:
            pass
        sock.setblocking(True)
        return sock

    def sel(sock):
        with selectors.DefaultSelector() as s:
            s.register(sock, selectors.EVENT_READ)
            return [events for _key, events in s.select()]

    def poll(sock):
        p = select.poll()
        p.register(sock, select.POLLIN)
        return p.poll()

    ways = {
        "recv": lambda s: s.recv(10),
        "recv_into": lambda s: s.recv_into(bytearray(10)),
        "sendall": lambda s: full(s).sendall(b"x" * 1000000),
        "recv with timeout": lambda s: (s.settimeout(60), s.recv(10))[1],
        "wait_read(fileno)": lambda s: evsocket.wait_read(s.fileno()),
        "nb_read": lambda s: evos.nb_read(s.fileno(), 10),
        "select": lambda s: select.select([s], [], []),
        "poll": poll,
        "selectors": sel,
    }
    expect_ebadf = {"recv", "recv_into", "sendall", "recv with timeout", "wait_read(fileno)",
                    "nb_read"}
    # per socket, one greenlet in one of its own methods (one greenlet per direction at
    # a time, as in gevent) and one waiting on its fd by other means
    own = ["recv", "recv_into", "sendall", "recv with timeout"]
    other = ["wait_read(fileno)", "nb_read", "select", "poll", "selectors"]
    socks, waiters = [], []
    for i in range(100):
        a, b = evsocket.socketpair()
        keep.append(b)
        socks.append(a)
        for way in (rng.choice(own), rng.choice(other)):
            waiters.append((way, a, evloop.spawn(_outcome, ways[way], a)))
    acceptor = evloop.spawn(_outcome, listener.accept)
    receiver = evloop.spawn(_outcome, udp.recvfrom, 10)
    evloop.sleep(0.05)
    assert [(way, g.value) for way, _, g in waiters if g.dead] == []

    transfers = []

    def closer():
        order = list(socks)
        rng.shuffle(order)
        for n, sock in enumerate(order):
            sock.close()
            if n % 10 == 9:
                # new sockets right away: they take the freed fd numbers
                c, d = evsocket.socketpair()
                blob = rng.randbytes(rng.randint(1, 300000))
                transfers.append((zlib.crc32(blob), len(blob),
                                  zlib.crc32(_stream_transfer(c, d, blob))))
                c.close()
                d.close()
        listener.close()
        udp.close()

    start = time.monotonic()
    evloop.spawn(closer).get(timeout=30)
    for way, _sock, glet in waiters:
        kind, result = glet.get(timeout=SLACK)
        if way in expect_ebadf:
            assert kind == "raised" and isinstance(result, OSError), (way, result)
            assert result.errno == errno.EBADF, (way, result)
        else:
            assert kind == "ok", (way, result)
    for glet in (acceptor, receiver):
        kind, result = glet.get(timeout=SLACK)
        assert kind == "raised" and result.errno == errno.EBADF, result
    assert time.monotonic() - start < 30
    assert len(transfers) == 10
    for sent_crc, size, got_crc in transfers:
        assert got_crc == sent_crc, size           # nothing stolen by a stale waiter
    for b in keep:
        b.close()
    evloop.sleep(0)
    assert hub.loop.activecnt == before


# -------------------------------------------------------------------------------------
# a storm of signals
# -------------------------------------------------------------------------------------

SIGNAL_STORM = r'''
import hashlib, os, random, signal, subprocess, sys, time
import evloop
from evloop import os as evos, select as evselect, signal as evsignal, socket
from evloop import subprocess as evsub

counts = {"stdlib": 0, "evloop": 0}
def stdlib_handler(signum, frame):      # no SA_RESTART: system calls fail with EINTR
    counts["stdlib"] += 1
def evloop_handler(signum, frame):       # runs in a greenlet, through the hub
    counts["evloop"] += 1
signal.signal(signal.SIGUSR1, stdlib_handler)
evsignal.signal(signal.SIGUSR2, evloop_handler)

SIZE = 24 << 20
blob = random.Random(1).randbytes(SIZE)
want = (SIZE, hashlib.sha256(blob).hexdigest())

def digest_stream(read):
    h, n = hashlib.sha256(), 0
    while True:
        data = read()
        if not data:
            return n, h.hexdigest()
        h.update(data)
        n += len(data)

def socketpair(chunk):
    a, b = socket.socketpair()
    def send():
        view = memoryview(blob)
        for i in range(0, SIZE, chunk):
            a.sendall(view[i:i + chunk])
        a.close()
    g = evloop.spawn(send)
    got = digest_stream(lambda: b.recv(65536))
    g.get()
    b.close()
    return got

def tcp():
    srv = socket.create_server(("127.0.0.1", 0))
    def serve():
        conn, _ = srv.accept()
        conn.sendall(repr(digest_stream(lambda: conn.recv(65536))).encode())
        conn.close()
    g = evloop.spawn(serve)
    c = socket.create_connection(srv.getsockname())
    c.sendall(blob)
    c.shutdown(socket.SHUT_WR)
    got = eval(c.recv(1000).decode())
    g.get(); c.close(); srv.close()
    return got

def pipe():
    r, w = os.pipe()
    evos.make_nonblocking(r); evos.make_nonblocking(w)
    def send():
        view, off = memoryview(blob), 0
        while off < SIZE:
            off += evos.nb_write(w, view[off:off + 65536])
        os.close(w)
    g = evloop.spawn(send)
    got = digest_stream(lambda: evos.nb_read(r, 65536))
    g.get(); os.close(r)
    return got

def child_process():
    p = evsub.Popen(["cat"], stdin=evsub.PIPE, stdout=evsub.PIPE)
    out, _ = p.communicate(blob)
    return len(out), hashlib.sha256(out).hexdigest()

def selecting():
    a, b = socket.socketpair()
    a.setblocking(False); b.setblocking(False)
    view, off, h, n = memoryview(blob), 0, hashlib.sha256(), 0
    while n < SIZE:
        r, w, _ = evselect.select([b], [a] if off < SIZE else [], [], 10)
        if w:
            try:
                off += a.send(view[off:off + 65536])
            except BlockingIOError:
                pass
        if r:
            try:
                data = b.recv(65536)
                h.update(data); n += len(data)
            except BlockingIOError:
                pass
    a.close(); b.close()
    return n, h.hexdigest()

def threads():
    pool = evloop.get_hub().threadpool
    parts = [pool.spawn(lambda i=i: hashlib.sha256(blob[i::16]).hexdigest()) for i in range(16)]
    return [r.get() for r in parts] == [hashlib.sha256(blob[i::16]).hexdigest()
                                        for i in range(16)]

def sleeps():
    for _ in range(300):
        t = time.monotonic()
        evloop.sleep(0.002)
        if time.monotonic() - t < 0.0019:
            return "early"
    return "ok"

# a separate process sends SIGUSR1 and SIGUSR2 in turn, about one every millisecond
# (sleep(0.0005) plus the kernel's timer slack)
sender = subprocess.Popen([sys.executable, "-c", """if 1:
    import os, signal, sys, time
    pid, n = int(sys.argv[1]), 0
    while True:
        try:
            os.kill(pid, signal.SIGUSR1 if n % 2 else signal.SIGUSR2)
        except ProcessLookupError:
            break
        n += 1
        time.sleep(0.0005)
""", str(os.getpid())])
while counts["stdlib"] == 0:
    evloop.sleep(0.01)
jobs = {name: evloop.spawn(f) for name, f in [
    ("socketpair small chunks", lambda: socketpair(1000)),
    ("socketpair large chunks", lambda: socketpair(1 << 20)),
    ("tcp", tcp), ("pipe", pipe), ("subprocess", child_process), ("select", selecting),
    ("threadpool", threads), ("sleep", sleeps)]}
evloop.joinall(list(jobs.values()), timeout=90)
sender.kill(); sender.wait()
for name, g in jobs.items():
    if not g.successful():
        print(name, "FAILED", repr(g.exception))
    elif g.value not in (want, True, "ok"):
        print(name, "MISMATCH", g.value)
    else:
        print(name, "ok")
print("signals", counts["stdlib"], counts["evloop"])
'''


def test_signal_storm_during_io():
    out = lines(run_python(SIGNAL_STORM, timeout=120))
    signals = out.pop()
    for line in out:
        assert line.endswith(" ok"), out
    assert len(out) == 8
    _, stdlib_count, evloop_count = signals.split()
    # both kinds of handler ran throughout (each gets every other signal)
    assert int(stdlib_count) >= 50 and int(evloop_count) >= 50, signals


# -------------------------------------------------------------------------------------
# fork while busy
# -------------------------------------------------------------------------------------

FORK_WHILE_BUSY = r'''
import hashlib, os, sys, threading, time
import evloop
from evloop import socket
from evloop.event import Event

hub = evloop.get_hub()
pool = hub.threadpool
stop = Event()
counts = {"bytes": 0, "ticks": 0}
a, b = socket.socketpair()

def pinger():
    while not stop.is_set():
        a.sendall(b"p" * 4096)
        evloop.sleep(0)
def ponger():
    while True:
        data = b.recv(65536)
        if not data:
            return
        counts["bytes"] += len(data)
def ticker():
    while not stop.is_set():
        evloop.sleep(0.001)
        counts["ticks"] += 1
greenlets = [evloop.spawn(pinger), evloop.spawn(ponger)] + [evloop.spawn(ticker)
                                                            for _ in range(10)]
lock = threading.Lock()
def busy(i):                  # thread-pool threads holding a lock and burning CPU
    end = time.monotonic() + 0.4
    while time.monotonic() < end:
        with lock:
            hashlib.sha256(b"x" * 20000).digest()
    return i
results = [pool.spawn(busy, i) for i in range(6)]
def other_hub():              # another thread running its own hub
    for _ in range(400):
        evloop.sleep(0.001)
other = threading.Thread(target=other_hub)
other.start()
evloop.sleep(0.05)

def child_checks(where, main_thread):
    # the hub, greenlets, I/O and a fresh thread pool all work in the child
    c, d = socket.socketpair()
    evloop.spawn(d.sendall, b"child")
    assert c.recv(5) == b"child"
    assert evloop.get_hub().threadpool.spawn(pow, 6, 2).get(timeout=10) == 36
    if main_thread:
        # forked by the main thread: its greenlets were inherited and go on running
        ticks = counts["ticks"]
        evloop.sleep(0.05)
        assert counts["ticks"] > ticks, "the inherited greenlets do not run"
        for r in results:      # tasks the parent's threads ran: a clear error, or done
            try:
                r.get(timeout=10)
            except RuntimeError as exc:
                assert "did not survive fork" in str(exc), exc
    # (forked by a pool thread, the child's only thread is that one: the main thread's
    # hub and greenlets are not there to run, and this thread got a hub of its own)
    # one write() per line: the children run at once and share stderr, and print() makes
    # separate writes for the text and the newline, which interleave between processes
    os.write(2, ("child %s ok\n" % where).encode())

def fork_and_check(where, main_thread=True):
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child_checks(where, main_thread)
            code = 0
        except BaseException:
            import traceback
            traceback.print_exc()
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    return pid

pids = [fork_and_check("main greenlet")]
pids.append(evloop.spawn(fork_and_check, "a greenlet").get())
evloop.sleep(0.02)
pids.append(pool.spawn(fork_and_check, "a pool thread", False).get(timeout=10))
pids.append(fork_and_check("main greenlet, again"))
for pid in pids:
    _, status = os.waitpid(pid, 0)
    print("child exit", os.waitstatus_to_exitcode(status))
print("parent results", [r.get(timeout=10) for r in results])
stop.set()
evloop.joinall(greenlets[:1] + greenlets[2:], timeout=10)
a.close()                     # the ponger reads to the end
evloop.joinall(greenlets, timeout=10)
other.join()
print("parent ok", counts["bytes"] > 0, counts["ticks"] > 0)
'''


def test_fork_while_greenlets_and_threads_are_busy():
    proc = run_python(FORK_WHILE_BUSY, timeout=120)
    out = lines(proc)
    assert out.count("child exit 0") == 4, proc.stdout + proc.stderr
    assert "parent results [0, 1, 2, 3, 4, 5]" in out
    assert out[-1] == "parent ok True True"
    assert proc.stderr.count(" ok\n") == 4, proc.stderr


# -------------------------------------------------------------------------------------
# many threads at once on the thread-safe APIs
# -------------------------------------------------------------------------------------

def test_many_threads_call_the_thread_safe_apis_at_once():
    """16 threads, started together, each make 1,500 rounds of: run_callback_threadsafe,
    async_.send, Queue.put, Semaphore.release and, now and then, a thread-pool task and
    an AsyncResult/Event set; meanwhile greenlets consume everything and do I/O. Every
    callback runs exactly once and in each thread's order, every item and permit
    arrives, every result is right."""
    hub = get_hub()
    loop = hub.loop
    threads_n, rounds = 16, 1500
    seen = {t: [] for t in range(threads_n)}
    wakeups = []
    asy = loop.async_()
    asy.start(wakeups.append, 1)
    q = Queue()
    sem = Semaphore(0)
    done = [Event() for _ in range(threads_n)]
    answers = [AsyncResult() for _ in range(threads_n)]
    barrier = threading.Barrier(threads_n)
    failures = []

    def worker(t):
        try:
            barrier.wait()
            pending = []
            for i in range(rounds):
                loop.run_callback_threadsafe(seen[t].append, i)
                if i % 3 == 0:
                    asy.send()
                q.put((t, i))
                sem.release()
                if i % 300 == 0:
                    # from this thread: the result comes back to this thread's own hub
                    pending.append(hub.threadpool.spawn(pow, t, 2))
            assert [r.get(timeout=30) for r in pending] == [t * t] * len(pending)
            answers[t].set(t)
            done[t].set()
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    def consume():
        per = {t: [] for t in range(threads_n)}
        for _ in range(threads_n * rounds):
            t, i = q.get(timeout=60)
            per[t].append(i)
        return per

    def acquire():
        for _ in range(threads_n * rounds):
            assert sem.acquire(timeout=60)
        return True

    a, b = evsocket.socketpair()

    def io():
        for _ in range(500):
            a.sendall(b"y" * 1000)
            assert len(b.recv(1000)) > 0
        return True

    greenlets = [evloop.spawn(consume), evloop.spawn(acquire), evloop.spawn(io)]
    greenlets += [evloop.spawn(e.wait, 60) for e in done]
    greenlets += [evloop.spawn(r.get, timeout=60) for r in answers]
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    try:
        evloop.joinall(greenlets, timeout=120, raise_error=True)
    finally:
        for th in threads:
            th.join(60)
        evloop.sleep(0.01)          # a send after the last poll: one more iteration
        # seen failing once (2026-12-07, full suite, not reproduced in 30 runs since):
        # the async watcher had never run; what it looked like then, for the report
        asy_state = (f"async active={asy.active} pending={asy.pending} "
                     f"loop pendingcnt={loop.pendingcnt} iteration={loop.iteration}")
        asy.stop()
        a.close()
        b.close()
    evloop.sleep(0.01)
    assert failures == []
    per = greenlets[0].value
    assert all(per[t] == list(range(rounds)) for t in range(threads_n))
    assert all(seen[t] == list(range(rounds)) for t in range(threads_n))
    assert greenlets[1].value and greenlets[2].value
    assert wakeups, asy_state
    assert [g.value for g in greenlets[3 + threads_n:]] == list(range(threads_n))
    assert sem.counter == 0 and q.qsize() == 0


# -------------------------------------------------------------------------------------
# work queued from other threads (or by a self-requeuing chain) never starves the loop
# -------------------------------------------------------------------------------------

# In a child process: `threads` threads flood the loop with thread-safe callbacks (or, with
# threads=0, one callback chain re-queues itself on the loop's own thread), while the main
# thread measures what must keep working: timers, yields, greenlet start/join, I/O, events
# (hub) or sleeps, call_later, a chain of sleep(0), socket reads (evloop.aio). Before the
# fix, with 8 threads: ten sleep(0) never returned, a spawn+join took 9 s,
# run_until_complete(asyncio.sleep(0.01)) 5-17 s, and the queue grew by millions.
# Afterwards every flooded callback must have run once, in its thread's order.
STARVE = r'''
import asyncio, json, socket, sys, threading, time
import evloop
from evloop.event import Event
from evloop.hub import get_hub

side, threads_n = sys.argv[1], int(sys.argv[2])
ROUNDS = 5
report = {"probes": {}, "max_backlog": 0}
seen = [[] for _ in range(threads_n)]
queued = [0] * threads_n
stop = False
hub = get_hub()

if side == "aio":
    import evloop.aio
    aloop = evloop.aio.new_event_loop()
    asyncio.set_event_loop(aloop)
    post = aloop.call_soon_threadsafe
    backlog = lambda: aloop._ready_count
else:
    post = hub.loop.run_callback_threadsafe
    backlog = lambda: hub.loop.callback_count

def flood(t):
    mine = seen[t].append
    i = 0
    while not stop:
        post(mine, i)
        i += 1
        queued[t] = i

links = [0]
def chain():
    links[0] += 1
    if not stop:
        if side == "aio":
            aloop.call_soon(chain)
        else:
            hub.loop.run_callback(chain)

def timed(name, func):
    t0 = time.monotonic()
    for _ in range(ROUNDS):
        func()
        report["max_backlog"] = max(report["max_backlog"], backlog())
    report["probes"][name] = round(time.monotonic() - t0, 3)

threads = [threading.Thread(target=flood, args=(t,), daemon=True) for t in range(threads_n)]
for th in threads:
    th.start()
if threads_n == 0:
    (aloop.call_soon if side == "aio" else hub.loop.run_callback)(chain)

if side == "hub":
    a, b = evloop.socket.socketpair()
    def yields():
        for _ in range(10):
            evloop.sleep(0)
            report["max_backlog"] = max(report["max_backlog"], backlog())
    def io():
        g = evloop.spawn(a.sendall, b"x")
        assert b.recv(1) == b"x"
        g.join()
    def event():
        e = Event()
        g = evloop.spawn(e.wait)
        evloop.sleep(0)
        e.set()
        g.join()
    timed("sleep(0.01)", lambda: evloop.sleep(0.01))
    timed("10 x sleep(0)", yields)
    timed("spawn+join", lambda: evloop.spawn(lambda: 1).join())
    timed("recv", io)
    timed("event", event)
    stop = True
    for th in threads:
        th.join()
    while hub.loop.callback_count:
        evloop.sleep(0)
    a.close()
    b.close()
else:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    async def yields():
        for _ in range(10):
            await asyncio.sleep(0)
            report["max_backlog"] = max(report["max_backlog"], backlog())
    async def later():
        f = aloop.create_future()
        aloop.call_later(0.01, f.set_result, 1)
        await f
    async def recv():
        aloop.call_soon(a.send, b"x")
        assert await aloop.sock_recv(b, 1) == b"x"
    run = aloop.run_until_complete
    timed("asyncio.sleep(0.01)", lambda: run(asyncio.sleep(0.01)))
    timed("10 x asyncio.sleep(0)", lambda: run(yields()))
    timed("call_later(0.01)", lambda: run(later()))
    timed("sock_recv", lambda: run(recv()))
    stop = True
    for th in threads:
        th.join()
    while aloop._ready_count:
        run(asyncio.sleep(0))
    a.close()
    b.close()
    aloop.close()
report["all_ran_in_order"] = all(seen[t] == list(range(queued[t])) for t in range(threads_n))
report["queued"] = sum(queued)
report["chain_links"] = links[0]
print(json.dumps(report), flush=True)
'''


@pytest.mark.parametrize("side", ["hub", "aio"])
@pytest.mark.parametrize("threads_n", [8, 2, 0])
def test_threadsafe_floods_and_callback_chains_do_not_starve_the_loop(side, threads_n):
    report = json.loads(lines(run_python(STARVE, side, str(threads_n), timeout=120))[-1])
    # each probe is 5 rounds of 10 ms or much less: about 0.05 s with the fix, 1.5-4 s
    # per probe without it (evloop.aio, 8 threads; the hub's probes vary more)
    slow = {name: t for name, t in report["probes"].items() if t > 1.0}
    assert not slow, report
    assert report["all_ran_in_order"], report
    if threads_n:
        assert report["queued"] > 0, report
        # backpressure: other threads cannot pile up an unbounded backlog
        assert report["max_backlog"] < 100_000, report
    else:
        assert report["chain_links"] > 0, report


# -------------------------------------------------------------------------------------
# the hub destroyed with greenlets waiting
# -------------------------------------------------------------------------------------

HUB_DESTROYED = r'''
import gc, io, sys, threading, time
from greenlet import GreenletExit
import evloop
from evloop import select, selectors, socket, subprocess as evsub
from evloop.event import AsyncResult, Event
from evloop.hub import get_hub
from evloop.lock import Semaphore
from evloop.queue import Queue
from evloop.timeout import Timeout

def round_(tag, n):
    hub = get_hub()
    a, b = socket.socketpair()
    listener = socket.create_server(("127.0.0.1", 0))
    ev, ar, sem, q = Event(), AsyncResult(), Semaphore(0), Queue()
    resumed = []
    def waiting(name, func):
        try:
            func()
        except GreenletExit:
            pass        # the orphan was garbage-collected: greenlet kills it, fine
        except BaseException as exc:
            resumed.append((name, repr(exc)))
        else:
            resumed.append(name)         # woken: must never happen to an orphan
    def with_timeout():
        with Timeout(0.5):
            evloop.sleep(10)
    def sel():
        with selectors.DefaultSelector() as s:
            s.register(a, selectors.EVENT_READ)
            s.select()
    waits = {"recv": lambda: a.recv(10), "accept": listener.accept, "event": ev.wait,
             "asyncresult": ar.get, "semaphore": sem.acquire, "queue": q.get,
             "sleep": lambda: evloop.sleep(0.5), "timeout": with_timeout,
             "select": lambda: select.select([a], [], []), "selectors": sel,
             "join": lambda: evloop.spawn(evloop.sleep, 10).join(),
             "thread pool": lambda: hub.threadpool.spawn(time.sleep, 0.5).get(),
             "child": lambda: evsub.Popen(["sleep", "0.5"]).wait(),
             "sleep(0) loop": lambda: [evloop.sleep(0) for _ in iter(int, 1)]}
    for name, func in waits.items():
        evloop.spawn(waiting, name, func)
    evloop.sleep(0.02)
    hub.destroy()
    hub2 = get_hub()
    hub2.exception_stream = errors = io.StringIO()
    # everything the orphans waited for happens now
    b.sendall(b"data")
    socket.create_connection(listener.getsockname()).close()
    ev.set(); ar.set(1); sem.release(); q.put(1)
    cpu = time.process_time()
    evloop.sleep(0.8)                    # their timers (0.5 s) expire meanwhile
    cpu = time.process_time() - cpu
    # the same objects and fds serve the new hub's greenlets
    got = evloop.spawn(lambda: (a.recv(10), ev.wait(1), ar.get(timeout=1),
                                sem.acquire(timeout=1), q.get(timeout=1))).get(timeout=5)
    c, d = socket.socketpair()
    d.sendall(b"new")
    assert c.recv(3) == b"new"
    assert got == (b"data", True, 1, True, 1), got
    assert resumed == [], resumed
    assert errors.getvalue().count("failed with") == 0, errors.getvalue()
    assert cpu < 0.25, cpu
    for s in (a, b, c, d, listener):
        s.close()
    del waits
    gc.collect()
    return "ok"

for n in range(2):
    print("main", round_("main", n))
box = {}
def in_thread():
    try:
        for n in range(2):
            box.setdefault("rounds", []).append(round_("thread", n))
    except BaseException as exc:
        import traceback; traceback.print_exc()
        box["error"] = repr(exc)
t = threading.Thread(target=in_thread)
t.start(); t.join()
print("thread", box)
'''


def test_hub_destroyed_with_greenlets_waiting():
    """The main hub (which keeps the default loop) and a thread's hub (which destroys its
    loop) are destroyed, twice each, while greenlets wait on sockets, accept, Event,
    AsyncResult, Semaphore, Queue, sleep, Timeout, select, selectors, join, the thread
    pool, a child process and sleep(0). Then what they waited for happens: no crash, no
    orphan resumed, no error report, no busy loop, and the next hub uses the same objects
    and fds."""
    proc = run_python(HUB_DESTROYED, timeout=120)
    assert lines(proc) == ["main ok"] * 2 + ["thread {'rounds': ['ok', 'ok']}"], (
        proc.stdout + proc.stderr)


# -------------------------------------------------------------------------------------
# KeyboardInterrupt at random points
# -------------------------------------------------------------------------------------

KEYBOARD_INTERRUPT = r'''
import os, queue, random, signal, sys, threading, time
import evloop
from evloop import socket
from evloop.queue import Queue

rng = random.Random(int(sys.argv[1]))
uncaught = sys.argv[2] == "uncaught"

def pinger(a):
    while True:
        a.sendall(b"x" * rng.randint(1, 5000))
        evloop.sleep(0)
def ponger(b):
    while True:
        b.recv(65536)
def timers():
    while True:
        evloop.sleep(rng.random() / 1000)
def queuer(q):
    while True:
        q.put(1)
        q.get()
        evloop.sleep(0)
def pool_user():
    pool = evloop.get_hub().threadpool
    while True:
        pool.spawn(time.sleep, 0.001).get()

def start_work():
    glets = []
    for _ in range(10):
        a, b = socket.socketpair()
        glets += [evloop.spawn(pinger, a), evloop.spawn(ponger, b)]
    q = Queue()
    glets += [evloop.spawn(timers) for _ in range(10)]
    glets += [evloop.spawn(queuer, q) for _ in range(3)] + [evloop.spawn(pool_user)]
    return glets

# one thread sends SIGINT a given delay after it is asked to (queue.SimpleQueue: put()
# never blocks, so the request is made inside the try block below). CPython loses a
# KeyboardInterrupt raised inside a weakref callback or __del__ ("Exception ignored in"):
# if the round is not over 15 s later, the signal is sent again, and counted (6 of these
# processes share a loaded 2-core machine: a delivered signal can take seconds to be seen).
requests = queue.SimpleQueue()
resent = 0
def interrupter():
    global resent
    while True:
        delay, over = requests.get()
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGINT)
        while not over.wait(15):
            resent += 1
            os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=interrupter, daemon=True).start()

rounds = 1 if uncaught else 8
for n in range(rounds):
    glets = start_work()
    delay = rng.uniform(0.005, 0.15)
    how = rng.choice(["joinall", "sleep", "busy"])
    over = threading.Event()
    try:
        requests.put((delay, over))
        if how == "joinall":
            evloop.joinall(glets)
        elif how == "sleep":
            while True:
                evloop.sleep(0.001)
        else:
            while True:
                evloop.sleep(0)
                sum(range(200))
    except KeyboardInterrupt:
        over.set()
        if uncaught:
            raise
        print("interrupted", n, how, flush=True)
    else:
        print("not interrupted", n, how, flush=True)
    evloop.killall(glets, timeout=5)
    assert all(g.dead for g in glets)
print("done", resent, flush=True)
'''


def test_keyboard_interrupt_at_random_points():
    """SIGINT at a random moment, while 35 greenlets do I/O, timers, queue hand-offs and
    thread-pool calls and the main greenlet waits (joinall, sleep, or a busy loop with
    sleep(0)). The main greenlet gets KeyboardInterrupt wherever it lands (the main
    greenlet, a greenlet, a hub callback, the poll), the program can go on (8 rounds per
    process) or, uncaught, ends with the usual traceback and exit status: never a crash
    or a "Fatal Python error". 6 processes with different seeds, run in parallel."""
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONFAULTHANDLER="1")
    procs = []
    for seed in range(6):
        mode = "uncaught" if seed % 3 == 2 else "caught"
        procs.append((seed, mode, subprocess.Popen(
            [sys.executable, "-c", KEYBOARD_INTERRUPT, str(seed), mode],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            cwd=ROOT)))
    for seed, mode, proc in procs:
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"seed {seed}: hung\n{out}\n{err}")
        assert "Fatal Python error" not in err and "Segmentation" not in err, err
        if mode == "uncaught":
            # Python ends an uncaught KeyboardInterrupt by dying of SIGINT
            assert proc.returncode in (-signal.SIGINT, 128 + signal.SIGINT), (seed, err)
            assert err.rstrip().endswith("KeyboardInterrupt"), err
        else:
            assert proc.returncode == 0, (seed, out, err)
            got = out.splitlines()
            assert got[-1].startswith("done ") and len(got) == 9, out
            assert all(line.startswith("interrupted ") for line in got[:-1]), out
            # a signal was sent again only for one that CPython itself lost
            lost = err.count("Exception ignored in") if "KeyboardInterrupt" in err else 0
            assert int(got[-1].split()[1]) <= lost, err


# -------------------------------------------------------------------------------------
# EMFILE during accept
# -------------------------------------------------------------------------------------

EMFILE_SERVER = r'''
import io, json, os, resource, sys
import evloop
from evloop import socket
from evloop.server import StreamServer

served = []
def handle(sock, address):
    data = sock.recv(100)
    sock.sendall(data)
    while sock.recv(100):      # hold the connection (and its fd) until the client closes
        pass
    served.append(data)

hub = evloop.get_hub()
hub.exception_stream = errors = io.StringIO()
server = StreamServer(("127.0.0.1", 0), handle, backlog=128)
server.start()
# room for 8 connections: every fd beyond that makes accept() fail with EMFILE
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 7, hard))
print(server.server_port, flush=True)
socket.wait_read(sys.stdin.fileno())
for _ in range(500):           # the handlers see the last hang-ups
    if len(served) == 40:
        break
    evloop.sleep(0.01)
text = errors.getvalue()
print(json.dumps({"served": len(served), "started": server.started,
                  "emfile_reports": text.count("Too many open files"),
                  "other_reports": text.count("failed with")
                  - text.count("Too many open files")}), flush=True)
server.stop(timeout=1)
'''


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_emfile_during_accept_server_keeps_serving():
    """A server with room for 8 connections; 40 clients connect at once and each waits for
    its echo. While the server is out of fds it neither spins nor dies; as the served
    clients hang up, it serves the rest; all 40 get their echo."""
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONFAULTHANDLER="1")
    server = subprocess.Popen([sys.executable, "-c", EMFILE_SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=ROOT)
    clients = []
    try:
        port = int(server.stdout.readline())
        for i in range(40):
            c = evsocket.create_connection(("127.0.0.1", port), timeout=30)
            c.sendall(b"client %d" % i)
            clients.append(c)
        evloop.sleep(0.3)
        cpu = _cpu_seconds(server.pid)
        evloop.sleep(1.0)
        cpu = _cpu_seconds(server.pid) - cpu
        assert cpu < 0.3, cpu                 # backing off, not spinning on EMFILE
        assert server.poll() is None
        # hang up as the echoes come: the server accepts the waiting ones as fds free up
        for i, c in enumerate(clients):
            assert c.recv(100) == b"client %d" % i
            c.close()
        server.stdin.write("report\n")
        server.stdin.flush()
        report = json.loads(server.stdout.readline())
        assert server.wait(timeout=30) == 0, server.stderr.read()
    finally:
        for c in clients:
            c.close()
        if server.poll() is None:
            server.kill()
            server.wait()
    assert report["served"] == 40 and report["started"], report
    assert 1 <= report["emfile_reports"] <= 40, report
    assert report["other_reports"] == 0, report
