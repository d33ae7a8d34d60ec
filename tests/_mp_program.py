"""The program tests/test_multiprocessing.py runs: ``python _mp_program.py SCENARIO METHOD``.

It is a file (not ``python -c``) because the spawn and forkserver start methods import the
main module in the child to find the functions the pool runs. Patching comes first, at the
top, as a patched program does: the children that import this module are patched too
(unless EVLOOP_TEST_PATCH_MAIN_ONLY=1).
"""
import os
import sys

# EVLOOP_TEST_PATCH_MAIN_ONLY=1: only the parent patches (spawn and forkserver children,
# which import this module as __mp_main__, stay unpatched)
if __name__ == "__main__" or os.environ.get("EVLOOP_TEST_PATCH_MAIN_ONLY") != "1":
    from evloop import monkey
    monkey.patch_all()

import multiprocessing as mp  # noqa: E402
import time  # noqa: E402

import evloop  # noqa: E402


def square(x):
    return x * x


def add(a, b):
    return a + b


def boom(x):
    raise ValueError(f"boom {x}")


def slow(x):
    time.sleep(0.05)
    return x


def big(n):
    return bytes([n % 256]) * 300_000


def size(data):
    return len(data), data[:1]


def pid(_):
    time.sleep(0.01)
    return os.getpid()


INIT = None


def init(value):
    global INIT
    INIT = value


def get_init(_):
    return INIT


def put(q, i):
    q.put((i, os.getpid()))


def scenario_pool(ctx):
    with ctx.Pool(2) as p:
        assert p.map(square, range(10)) == [x * x for x in range(10)]
        assert list(p.imap(square, range(7))) == [x * x for x in range(7)]
        assert sorted(p.imap_unordered(square, range(7))) == [x * x for x in range(7)]
        assert p.apply_async(add, (2, 3)).get(30) == 5
        assert p.apply(add, (1, 1)) == 2
        assert p.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
        assert p.starmap_async(add, [(5, 5)]).get(30) == [10]


def scenario_close_join(ctx):
    p = ctx.Pool(2)
    r = p.map_async(square, range(50))
    p.close()
    p.join()
    assert r.ready() and r.get(0) == [x * x for x in range(50)]


def scenario_terminate(ctx):
    p = ctx.Pool(2)
    r = p.map_async(slow, range(200))
    time.sleep(0.2)
    t0 = time.monotonic()
    p.terminate()
    p.join()
    assert time.monotonic() - t0 < 20
    assert not r.ready() or not r.successful()


def scenario_raise(ctx):
    with ctx.Pool(2) as p:
        try:
            p.map(boom, range(3))
        except ValueError as ex:
            assert "boom" in str(ex), ex
        else:
            raise AssertionError("no ValueError")
        r = p.apply_async(boom, (7,))
        try:
            r.get(30)
        except ValueError as ex:
            assert str(ex) == "boom 7", ex
        else:
            raise AssertionError("no ValueError")
        assert p.map(square, [3]) == [9]   # the pool still works


def scenario_initializer(ctx):
    with ctx.Pool(2, initializer=init, initargs=(42,)) as p:
        assert p.map(get_init, range(8)) == [42] * 8


def scenario_maxtasksperchild(ctx):
    # workers are replaced by the pool's worker handler (a greenlet) while tasks are pending
    with ctx.Pool(2, maxtasksperchild=1) as p:
        assert p.map(square, range(12), chunksize=1) == [x * x for x in range(12)]
        assert len(set(p.map(pid, range(6), chunksize=1))) == 6


def scenario_big(ctx):
    # results and arguments much larger than a pipe's buffer, in both directions at once
    with ctx.Pool(2) as p:
        results = p.map(big, range(24), chunksize=1)
        assert [r[:1] for r in results] == [bytes([n]) for n in range(24)]
        assert all(len(r) == 300_000 for r in results)
        assert p.map(size, results, chunksize=1) == [(300_000, bytes([n])) for n in range(24)]


def scenario_ticker(ctx):
    ticks = []
    stop = []
    parent = os.getpid()

    def tick():
        while not stop:
            if os.getpid() != parent:
                # a forked worker must not run the parent's greenlets
                os.write(2, b"parent greenlet ran in a child\n")
                os._exit(3)
            ticks.append(time.monotonic())
            evloop.sleep(0.01)
    g = evloop.spawn(tick)
    with ctx.Pool(2) as p:
        p.map(square, range(2))
        before = len(ticks)
        t0 = time.monotonic()
        assert p.map(slow, range(20), chunksize=1) == list(range(20))
        elapsed = time.monotonic() - t0
        during = len(ticks) - before
    stop.append(1)
    g.join()
    # 20 tasks of 50 ms on 2 workers: at least 0.5 s, a tick every 10 ms
    assert elapsed >= 0.45, elapsed
    assert during >= 10, (during, elapsed)


def scenario_executor(ctx):
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        assert list(ex.map(square, range(10))) == [x * x for x in range(10)]
        assert ex.submit(add, 1, 2).result(30) == 3
        try:
            ex.submit(boom, 1).result(30)
        except ValueError as e:
            assert str(e) == "boom 1"
        else:
            raise AssertionError("no ValueError")
        assert [len(r) for r in ex.map(big, range(4))] == [300_000] * 4


def scenario_process_queue(ctx):
    q = ctx.Queue()
    procs = [ctx.Process(target=put, args=(q, i)) for i in range(3)]
    for p in procs:
        p.start()
    got = sorted(q.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0, p.exitcode
    assert [i for i, _ in got] == [0, 1, 2]
    assert len({pid for _, pid in got}) == 3


def main():
    scenario, method = sys.argv[-2:]
    ctx = mp.get_context(None if method == "default" else method)
    globals()["scenario_" + scenario](ctx)
    print("ok", ctx.get_start_method())


if __name__ == "__main__":
    main()
