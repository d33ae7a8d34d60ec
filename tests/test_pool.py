"""Tests for ``evloop.pool``: Group, Pool, PoolFull and the apply/map/imap family.

Timing rules (a busy 2-core machine): elapsed times are checked only against lower bounds;
"still running" is made certain by sleeping for LONG, far beyond any wait in the test, and
every test kills what it started. Failing greenlets are reported by the hub to its
exception stream, which the ``errors`` fixture captures (so the output stays clean and the
reports can be checked).

tests/test_gevent_contract.py checks what evloop shares with gevent against both
libraries; the cases here go further on evloop alone (timings, bad arguments, threads).
"""
import time

import pytest

import evloop
from evloop import Greenlet, GreenletExit, getcurrent, sleep, spawn
from evloop.pool import Group, IMap, IMapUnordered, Pool, PoolFull

from _helpers import Boom

LONG = 30.0     # a sleep that never ends during a test
SHORT = 0.05    # a timeout that must expire


@pytest.fixture(autouse=True)
def _no_leftovers():
    groups = []
    yield groups
    for g in groups:
        g.kill(block=True, timeout=5)


def track(groups, group):
    groups.append(group)
    return group


def fail(x=None):
    raise Boom(x)


def identity(x):
    return x


# -- Group: membership ---------------------------------------------------------------------

def test_group_spawn_tracks_until_finished(_no_leftovers):
    group = track(_no_leftovers, Group())
    assert len(group) == 0 and not group
    g1 = group.spawn(sleep, 0.01)
    g2 = group.spawn(identity, 5)
    assert isinstance(g1, Greenlet)
    assert len(group) == 2 and group
    assert g1 in group and g2 in group
    assert set(group) == {g1, g2} == group.greenlets
    assert group.join() is True
    assert len(group) == 0 and g1 not in group
    assert g2.value == 5


def test_group_add_start_discard(_no_leftovers):
    group = track(_no_leftovers, Group())
    g = Greenlet(sleep, LONG)
    group.add(g)
    assert g in group and not g.started
    g.start()
    g2 = Greenlet(identity, 1)
    group.start(g2)
    assert g2.started and g2 in group
    group.discard(g)        # untracked, still running
    assert g not in group and not g.dead
    group.discard(Greenlet(identity, 1))   # unknown: nothing happens
    assert group.join(timeout=5) is True   # g2 finishes; g is no longer waited for
    assert not g.dead
    g.kill()
    # a discarded greenlet's finish does not touch the group
    assert len(group) == 0


def test_group_add_finished_greenlet_is_discarded(_no_leftovers):
    group = track(_no_leftovers, Group())
    g = spawn(identity, 1)
    g.join()
    group.add(g)
    assert group.join(timeout=5) is True
    assert g not in group


def test_group_from_iterable_is_joined(_no_leftovers):
    a = spawn(sleep, 0.02)
    b = spawn(sleep, 0.03)
    group = track(_no_leftovers, Group([a, b]))
    assert len(group) == 2
    # gevent returns at once here (its empty flag starts set); evloop waits for them
    assert group.join(timeout=10) is True
    assert a.dead and b.dead and len(group) == 0
    with pytest.raises(TypeError):
        Group([a], [b])


def test_group_repr_and_class(_no_leftovers):
    class MyGreenlet(Greenlet):
        pass

    group = track(_no_leftovers, Group())
    group.greenlet_class = MyGreenlet
    g = group.spawn(identity, 1)
    assert type(g) is MyGreenlet
    assert "Group" in repr(group)
    group.join()


def test_group_full_and_wait_available(_no_leftovers):
    group = track(_no_leftovers, Group())
    for _ in range(10):
        group.spawn(sleep, LONG)
    assert group.full() is False
    assert group.wait_available() is None
    assert group.wait_available(timeout=0) is None


# -- Group: join and kill ------------------------------------------------------------------

def test_join_timeout_returns_false_while_running(_no_leftovers):
    group = track(_no_leftovers, Group())
    gs = [group.spawn(sleep, LONG) for _ in range(3)]
    start = time.monotonic()
    assert group.join(timeout=SHORT) is False
    assert time.monotonic() - start >= SHORT * 0.9
    assert len(group) == 3 and not any(g.dead for g in gs)
    assert group.join(timeout=0) is False
    group.kill()
    assert group.join(timeout=0) is True


def test_join_empty_group_returns_true_at_once():
    assert Group().join() is True
    assert Group().join(timeout=0) is True


def test_join_raise_error(_no_leftovers, errors):
    group = track(_no_leftovers, Group())
    group.spawn(identity, 1)
    group.spawn(fail, "x")
    with pytest.raises(Boom):
        group.join(raise_error=True)
    assert "Boom" in errors.getvalue()
    # without raise_error, failures are not raised
    group.spawn(fail, "y")
    assert group.join() is True


def test_join_bad_timeout():
    group = Group()
    group.spawn(sleep, 0.01)
    with pytest.raises(TypeError):
        group.join(timeout="soon")
    group.join()


def test_several_joiners_all_wake(_no_leftovers):
    group = track(_no_leftovers, Group())
    group.spawn(sleep, 0.02)
    joiners = [spawn(group.join) for _ in range(3)]
    evloop.joinall(joiners, timeout=10)
    assert [j.value for j in joiners] == [True, True, True]


def test_kill_whole_group(_no_leftovers):
    group = track(_no_leftovers, Group())
    running = [group.spawn(sleep, LONG) for _ in range(5)]
    sleep(0)  # they are running now
    unstarted = Greenlet(sleep, LONG)
    group.add(unstarted)
    group.kill()
    assert len(group) == 0
    for g in running + [unstarted]:
        assert g.dead
        assert isinstance(g.value, GreenletExit)


def test_kill_custom_exception_and_nonblocking(_no_leftovers, errors):
    group = track(_no_leftovers, Group())
    gs = [group.spawn(sleep, LONG) for _ in range(3)]
    sleep(0)
    group.kill(Boom, block=False)
    assert len(group) == 3      # not yet: the kills run from the hub
    assert group.join(timeout=10) is True
    assert all(isinstance(g.exception, Boom) for g in gs)


def test_kill_with_timeout_when_greenlet_resists(_no_leftovers):
    group = track(_no_leftovers, Group())
    stop = []

    def stubborn():
        while not stop:
            try:
                sleep(LONG)
            except GreenletExit:
                pass

    g = group.spawn(stubborn)
    sleep(0)
    start = time.monotonic()
    group.kill(timeout=SHORT)
    assert time.monotonic() - start >= SHORT * 0.9
    assert g in group and not g.dead
    stop.append(1)
    g.kill(block=False)    # the group kills each greenlet once; kill it directly
    assert group.join(timeout=10) is True


def test_kill_from_inside_the_group(_no_leftovers):
    group = track(_no_leftovers, Group())
    others = [group.spawn(sleep, LONG) for _ in range(3)]
    reached = []

    def killer():
        group.kill()
        reached.append(1)   # never: the killer is killed too

    k = group.spawn(killer)
    k.join(timeout=10)
    assert k.dead and not reached
    assert group.join(timeout=10) is True
    assert all(g.dead for g in others)


def test_killone(_no_leftovers):
    group = track(_no_leftovers, Group())
    a = group.spawn(sleep, LONG)
    b = group.spawn(sleep, LONG)
    sleep(0)
    group.killone(a)
    assert a.dead and a not in group
    assert not b.dead and b in group
    outsider = spawn(sleep, LONG)
    group.killone(outsider)          # not tracked: untouched
    sleep(0)
    assert not outsider.dead
    outsider.kill()
    group.killone(b, block=False)
    assert b in group                # kill under way
    group.killone(b)                 # already dying: not killed twice, no wait
    assert group.join(timeout=10) is True and b.dead


def test_killone_timeout(_no_leftovers):
    group = track(_no_leftovers, Group())
    stop = []

    def stubborn():
        while not stop:
            try:
                sleep(LONG)
            except GreenletExit:
                pass

    g = group.spawn(stubborn)
    sleep(0)
    start = time.monotonic()
    group.killone(g, timeout=SHORT)
    assert time.monotonic() - start >= SHORT * 0.9
    assert not g.dead
    stop.append(1)
    g.kill()


# -- apply and map ---------------------------------------------------------------------------

@pytest.fixture(params=["group", "pool"])
def container(request, _no_leftovers):
    return track(_no_leftovers, Group() if request.param == "group" else Pool(3))


def test_apply(container, errors):
    assert container.apply(identity, (4,)) == 4
    assert container.apply(lambda a, b=0: a + b, [1], {"b": 2}) == 3
    assert container.apply(lambda: 7) == 7
    with pytest.raises(Boom):
        container.apply(fail, ("x",))


def test_apply_from_member_runs_inline(container):
    def outer():
        me = getcurrent()
        return container.apply(lambda: getcurrent() is me)

    assert container.apply(outer) is True


def test_apply_cb(container, errors):
    got = []
    assert container.apply_cb(identity, (3,), callback=got.append) == 3
    sleep(0.01)
    assert got == [3]
    with pytest.raises(Boom):
        container.apply_cb(fail, callback=got.append)
    sleep(0.01)
    assert got == [3]


def test_apply_async(container, errors):
    got = []
    g = container.apply_async(identity, (5,), callback=got.append)
    assert isinstance(g, Greenlet)
    assert g.get(timeout=10) == 5
    sleep(0.01)
    assert got == [5]
    bad = container.apply_async(fail, ("z",), callback=got.append)
    with pytest.raises(Boom):
        bad.get(timeout=10)
    sleep(0.01)
    assert got == [5]    # no callback on failure


def test_map(container, errors):
    def slow_square(x):
        sleep(0.001 * ((7 * x) % 5))
        return x * x

    assert container.map(slow_square, range(20)) == [x * x for x in range(20)]
    assert container.map(slow_square, []) == []

    def maybe_fail(x):
        if x == 3:
            raise Boom(x)
        return x

    with pytest.raises(Boom):
        container.map(maybe_fail, range(6))


def test_map_cb_and_map_async(container):
    got = []
    assert container.map_cb(identity, [1, 2], callback=got.append) == [1, 2]
    assert got == [[1, 2]]          # map_cb calls back in the caller
    g = container.map_async(identity, "abc", callback=got.append)
    assert isinstance(g, Greenlet) and g not in container
    assert g.get(timeout=10) == ["a", "b", "c"]
    assert got[-1] == ["a", "b", "c"]


def test_imap_is_ordered(container):
    def slow(x):
        sleep(0.002 * (10 - x))     # later items finish first
        return x * 10

    it = container.imap(slow, range(10))
    assert isinstance(it, IMap)
    assert iter(it) is it
    assert list(it) == [x * 10 for x in range(10)]
    with pytest.raises(StopIteration):    # exhausted stays exhausted
        next(it)


def test_imap_several_iterables(container):
    assert list(container.imap(lambda a, b: a + b, [1, 2, 3], [10, 20, 30, 40])) == \
        [11, 22, 33]
    assert list(container.imap(identity, [])) == []
    assert list(container.imap_unordered(identity, [])) == []


def test_imap_unordered_complete(container):
    def slow(x):
        sleep(0.002 * (10 - x))
        return x

    it = container.imap_unordered(slow, range(30))
    assert isinstance(it, IMapUnordered)
    out = list(it)
    assert sorted(out) == list(range(30))


def test_imap_unordered_yields_in_finish_order(_no_leftovers):
    group = track(_no_leftovers, Group())
    out = list(group.imap_unordered(lambda d: sleep(d) or d, [0.3, 0.0, 0.15]))
    assert out == [0.0, 0.15, 0.3]


def test_imap_raises_at_the_failing_item(container, errors):
    def maybe_fail(x):
        sleep(0.001 * (5 - x))
        if x == 3:
            raise Boom(x)
        return x

    it = container.imap(maybe_fail, range(6))
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(Boom) as info:
        next(it)
    assert info.value.args == (3,)
    assert list(it) == [4, 5]     # iteration goes on after the failed item


def test_imap_unordered_failure(container, errors):
    out, failures = [], []
    it = container.imap_unordered(lambda x: fail(x) if x % 4 == 0 else x, range(10))
    while True:
        try:
            out.append(next(it))
        except StopIteration:
            break
        except Boom as exc:
            failures.append(exc.args[0])
    assert sorted(out) == [x for x in range(10) if x % 4]
    assert sorted(failures) == [0, 4, 8]


def test_imap_input_failure_after_results(container, errors):
    def source():
        yield 1
        yield 2
        raise KeyError("input")

    it = container.imap(identity, source())
    assert next(it) == 1
    assert next(it) == 2
    with pytest.raises(KeyError):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_imap_maxsize_bounds_unconsumed_results(_no_leftovers):
    group = track(_no_leftovers, Group())
    started = []

    def task(x):
        started.append(x)
        return x

    it = group.imap(task, range(20), maxsize=3)
    sleep(0.05)
    assert len(started) == 3    # nothing consumed yet: at most maxsize started
    assert next(it) == 0
    sleep(0.05)
    assert len(started) == 4
    assert list(it) == list(range(1, 20))
    with pytest.raises(ValueError):
        group.imap(task, range(3), maxsize=-1)


def test_imap_unordered_maxsize(_no_leftovers):
    pool = track(_no_leftovers, Pool(2))
    assert sorted(pool.imap_unordered(identity, range(50), maxsize=1)) == list(range(50))


@pytest.mark.parametrize("ordered", [False, True])
def test_imap_the_end_reaches_every_waiting_consumer(_no_leftovers, ordered):
    # both consumers wait when the only result arrives: it wakes one, which then takes
    # the end; the other must end too, not wait for a result that never comes
    group = track(_no_leftovers, Group())
    imap = group.imap if ordered else group.imap_unordered
    it = imap(lambda x: sleep(0.01) or x, range(1))
    results = [[], []]

    def consume(i):
        for v in it:
            results[i].append(v)

    consumers = [spawn(consume, 0), spawn(consume, 1)]
    evloop.joinall(consumers, timeout=5)
    assert [c.dead for c in consumers] == [True, True]
    assert sorted(results[0] + results[1]) == [0]
    with pytest.raises(StopIteration):
        next(it)


def test_imap_two_consumers(_no_leftovers):
    group = track(_no_leftovers, Group())
    it = group.imap_unordered(lambda x: sleep(0.001 * (x % 3)) or x, range(40))
    results = [[], []]

    def consume(i):
        for v in it:
            results[i].append(v)
            sleep(0)

    consumers = [spawn(consume, 0), spawn(consume, 1)]
    evloop.joinall(consumers, timeout=10)
    assert all(c.dead for c in consumers)
    assert sorted(results[0] + results[1]) == list(range(40))


# -- Pool --------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [-1, -100])
def test_pool_negative_size_rejected(size):
    with pytest.raises(ValueError, match="must not be negative"):
        Pool(size)


@pytest.mark.parametrize("size", [2.5, "3", object()])
def test_pool_size_must_be_an_integer(size):
    with pytest.raises(TypeError, match="integer"):
        Pool(size)


def test_pool_size_zero_never_admits(_no_leftovers):
    pool = track(_no_leftovers, Pool(0))
    assert pool.size == 0 and pool.full() and pool.free_count() == 0
    start = time.monotonic()
    assert pool.wait_available(timeout=SHORT) == 0
    assert time.monotonic() - start >= SHORT * 0.9
    with pytest.raises(PoolFull):
        pool.add(Greenlet(identity, 1), blocking=False)
    with pytest.raises(PoolFull):
        pool.start(Greenlet(identity, 1), timeout=SHORT)


def test_pool_unbounded(_no_leftovers):
    pool = track(_no_leftovers, Pool())
    assert pool.size is None
    gs = [pool.spawn(sleep, LONG) for _ in range(200)]
    assert len(pool) == 200
    assert pool.free_count() == 1 and not pool.full()
    assert pool.wait_available() == 1
    pool.kill()
    assert all(g.dead for g in gs)


def test_pool_100_jobs_never_exceed_size(_no_leftovers):
    size = 7
    pool = track(_no_leftovers, Pool(size))
    state = {"now": 0, "max": 0, "done": 0}

    def job(i):
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        assert len(pool) <= size
        sleep(0.001 * (i % 4))
        state["now"] -= 1
        state["done"] += 1
        return i

    gs = [pool.spawn(job, i) for i in range(100)]
    assert pool.join(timeout=30) is True
    assert state["done"] == 100
    assert state["max"] == size
    assert [g.value for g in gs] == list(range(100))
    assert pool.free_count() == size


def test_pool_map_and_imap_respect_size(_no_leftovers):
    pool = track(_no_leftovers, Pool(3))
    state = {"now": 0, "max": 0}

    def job(i):
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        sleep(0.001)
        state["now"] -= 1
        return -i

    assert pool.map(job, range(30)) == [-i for i in range(30)]
    assert list(pool.imap(job, range(30))) == [-i for i in range(30)]
    assert sorted(pool.imap_unordered(job, range(30))) == sorted(-i for i in range(30))
    assert state["max"] == 3


def test_pool_spawn_blocks_while_full(_no_leftovers):
    pool = track(_no_leftovers, Pool(2))
    a = pool.spawn(sleep, LONG)
    b = pool.spawn(sleep, LONG)
    assert pool.full() and pool.free_count() == 0
    spawned = []
    spawner = spawn(lambda: spawned.append(pool.spawn(identity, 3)))
    sleep(SHORT)
    assert not spawned and not spawner.dead     # waiting for a slot
    a.kill()
    spawner.join(timeout=10)
    assert len(spawned) == 1
    assert spawned[0].get(timeout=10) == 3
    sleep(0.01)     # its links (which discard it from the pool) run from the hub
    assert b in pool and pool.free_count() == 1


def test_killing_member_frees_slot_for_waiters(_no_leftovers):
    pool = track(_no_leftovers, Pool(2))
    members = [pool.spawn(sleep, LONG) for _ in range(2)]
    sleep(0)
    order = []

    def waiter(name):
        g = pool.spawn(sleep, LONG)
        order.append(name)
        return g

    waiters = [spawn(waiter, i) for i in range(3)]
    sleep(SHORT)
    assert order == []
    pool.killone(members[0])
    sleep(SHORT)
    assert order == [0]            # one slot: the first waiter got it
    members[1].kill()
    sleep(SHORT)
    assert order == [0, 1]         # FIFO
    assert len(pool) == 2 and pool.free_count() == 0
    pool.kill()                    # kills the members; waiter 2 then gets a slot
    evloop.joinall(waiters, timeout=10)
    assert order == [0, 1, 2]
    pool.kill()
    assert len(pool) == 0 and pool.free_count() == 2


def test_killed_waiter_gives_up_its_place(_no_leftovers):
    pool = track(_no_leftovers, Pool(1))
    member = pool.spawn(sleep, LONG)
    got = []
    w1 = spawn(lambda: got.append(pool.spawn(identity, "w1")))
    w2 = spawn(lambda: got.append(pool.spawn(identity, "w2")))
    sleep(SHORT)
    w1.kill()
    assert w1.dead and not got
    member.kill()
    w2.join(timeout=10)
    assert [g.get(timeout=10) for g in got] == ["w2"]
    assert pool.join(timeout=10) is True
    assert pool.free_count() == 1


def test_add_nonblocking_and_timeout(_no_leftovers):
    pool = track(_no_leftovers, Pool(1))
    pool.spawn(sleep, LONG)
    g = Greenlet(identity, 1)
    with pytest.raises(PoolFull):
        pool.add(g, blocking=False)
    start = time.monotonic()
    with pytest.raises(PoolFull):
        pool.add(g, timeout=SHORT)
    assert time.monotonic() - start >= SHORT * 0.9
    assert g not in pool and len(pool) == 1
    pool.kill()
    pool.add(g, blocking=False)
    assert g in pool and pool.full()
    pool.add(g)                    # already tracked: no second slot taken
    assert len(pool) == 1
    g.start()
    assert pool.join(timeout=10) is True
    assert pool.free_count() == 1


def test_timed_out_adder_does_not_take_a_slot(_no_leftovers):
    pool = track(_no_leftovers, Pool(1))
    member = pool.spawn(sleep, LONG)
    results = []

    def adder(timeout):
        try:
            pool.add(Greenlet(identity, 1), timeout=timeout)
            results.append(("added", timeout))
        except PoolFull:
            results.append(("full", timeout))

    a = spawn(adder, SHORT)
    b = spawn(adder, None)
    a.join(timeout=10)
    assert results == [("full", SHORT)]
    member.kill()
    b.join(timeout=10)
    assert results == [("full", SHORT), ("added", None)]
    pool.kill()   # the added greenlet never started: killing it frees the slot
    assert pool.free_count() == 1


def test_wait_available(_no_leftovers):
    pool = track(_no_leftovers, Pool(2))
    assert pool.wait_available() == 2
    a = pool.spawn(sleep, LONG)
    assert pool.wait_available(timeout=0) == 1
    pool.spawn(sleep, LONG)
    start = time.monotonic()
    assert pool.wait_available(timeout=SHORT) == 0
    assert time.monotonic() - start >= SHORT * 0.9
    spawn(a.kill)
    assert pool.wait_available(timeout=10) == 1
    assert pool.free_count() == 1      # waiting took no slot


def test_discard_frees_slot_once(_no_leftovers):
    pool = track(_no_leftovers, Pool(2))
    a = pool.spawn(sleep, LONG)
    assert pool.free_count() == 1
    pool.discard(a)
    assert pool.free_count() == 2 and a not in pool
    pool.discard(a)                # not tracked any more: no extra slot
    pool.discard(spawn(identity, 1))
    assert pool.free_count() == 2
    a.kill()
    sleep(0.01)
    assert pool.free_count() == 2


def test_pool_size_can_change(_no_leftovers):
    pool = track(_no_leftovers, Pool(1))
    pool.spawn(sleep, LONG)
    admitted = []
    waiters = [spawn(lambda i=i: admitted.append(pool.spawn(sleep, LONG)) or i)
               for i in range(3)]
    sleep(SHORT)
    assert admitted == []
    pool.size = 3
    sleep(SHORT)
    assert len(admitted) == 2 and pool.full()
    pool.size = 1                  # 3 tracked, bound 1: nobody admitted until 2 finish
    assert pool.full() and pool.free_count() == 0
    for g in list(pool)[:1]:
        g.kill()
    sleep(SHORT)
    assert len(admitted) == 2
    pool.size = None               # unbounded: the last waiter gets in
    evloop.joinall(waiters, timeout=10)
    assert len(admitted) == 3 and pool.free_count() == 1
    pool.size = 5
    assert pool.free_count() == 5 - len(pool)
    with pytest.raises(ValueError):
        pool.size = -1


def test_pool_apply_inside_full_pool_does_not_deadlock(_no_leftovers):
    pool = track(_no_leftovers, Pool(1))

    def outer(x):
        return pool.apply(identity, (x + 1,))   # would deadlock if it spawned

    assert pool.apply(outer, (1,)) == 2
    assert pool.map(lambda x: pool.apply(identity, (x,)), range(5)) == list(range(5))


def test_pool_apply_async_when_full_does_not_block(_no_leftovers):
    pool = track(_no_leftovers, Pool(1))
    member = pool.spawn(sleep, LONG)
    got = []
    start = time.monotonic()
    g = pool.apply_async(identity, ("late",), callback=got.append)
    assert time.monotonic() - start < LONG
    assert g not in pool           # an untracked greenlet waiting for a slot itself
    sleep(SHORT)
    assert not g.ready()
    member.kill()
    assert g.get(timeout=10) == "late"
    sleep(0.01)
    assert got == ["late"]


def test_pool_greenlet_class(_no_leftovers):
    class Mine(Greenlet):
        pass

    pool = track(_no_leftovers, Pool(2, greenlet_class=Mine))
    assert type(pool.spawn(identity, 1)) is Mine
    assert Pool(2).greenlet_class is Greenlet
    pool.join()


def test_pool_kill_releases_all_slots(_no_leftovers):
    pool = track(_no_leftovers, Pool(3))
    for _ in range(3):
        pool.spawn(sleep, LONG)
    pool.kill()
    assert len(pool) == 0 and pool.free_count() == 3
    assert pool.map(identity, range(9)) == list(range(9))


def test_pool_bad_timeout(_no_leftovers):
    pool = track(_no_leftovers, Pool(1))
    pool.spawn(sleep, LONG)
    with pytest.raises(TypeError):
        pool.add(Greenlet(identity, 1), timeout="x")
    with pytest.raises(TypeError):
        pool.wait_available(timeout="x")
    assert len(pool) == 1 and pool.free_count() == 0
    # the failed calls left no waiter behind that could swallow a slot
    pool.kill()
    assert pool.free_count() == 1
    g = Greenlet(identity, 1)
    pool.add(g, blocking=False)
    assert g in pool
    pool.kill()
    assert pool.free_count() == 1


def test_timeout_while_waiting_for_a_slot(_no_leftovers):
    pool = track(_no_leftovers, Pool(1))
    member = pool.spawn(sleep, LONG)
    start = time.monotonic()
    with pytest.raises(evloop.Timeout):
        with evloop.Timeout(SHORT):
            pool.spawn(identity, 1)
    assert time.monotonic() - start >= SHORT * 0.9
    later = spawn(pool.spawn, identity, 2)
    sleep(SHORT)
    member.kill()
    assert later.get(timeout=10).get(timeout=10) == 2
    assert pool.join(timeout=10) is True
    assert pool.free_count() == 1


def test_module_exports():
    import evloop.pool as mod
    assert {"Group", "Pool", "PoolFull"} <= set(mod.__all__)
    assert evloop.pool is mod


# -- bad arguments: refused at the call, before anything is done ----------------------------
# (gevent 26.9 accepts most of these and fails later: Group.add(5) and Pool.add(5) track
# an int, Group.kill(5) reports a TypeError against each member and leaves it running,
# Pool.imap(5, ...) ends in LoopExit; it ignores a bad timeout when it need not wait)

@pytest.mark.parametrize("cls", [Group, lambda: Pool(2)], ids=["Group", "Pool"])
@pytest.mark.parametrize("bad", [5, None, "g", object()], ids=repr)
def test_add_of_a_non_greenlet(_no_leftovers, cls, bad):
    group = track(_no_leftovers, cls())
    free = group.free_count() if isinstance(group, Pool) else None
    with pytest.raises(TypeError, match="tracks greenlets"):
        group.add(bad)
    with pytest.raises(TypeError, match="tracks greenlets"):
        group.start(bad)
    assert len(group) == 0
    if free is not None:
        assert group.free_count() == free       # no slot was taken


@pytest.mark.parametrize("cls", [Group, lambda: Pool(2)], ids=["Group", "Pool"])
@pytest.mark.parametrize("bad", [5, "x", None, object, [GreenletExit]], ids=repr)
def test_kill_with_a_non_exception_kills_nothing(_no_leftovers, errors, cls, bad):
    group = track(_no_leftovers, cls())
    gs = [group.spawn(sleep, LONG) for _ in range(2)]
    sleep(0)
    with pytest.raises(TypeError, match="exception class or instance"):
        group.kill(bad)
    with pytest.raises(TypeError, match="exception class or instance"):
        group.kill(bad, block=False)
    with pytest.raises(TypeError, match="exception class or instance"):
        group.killone(gs[0], bad)
    with pytest.raises(TypeError):
        group.killone(gs[0], timeout="soon")
    sleep(0.01)
    assert not any(g.dead for g in gs) and len(group) == 2
    assert errors.getvalue() == ""


@pytest.mark.parametrize("call", ["apply", "apply_async", "apply_async when full", "map",
                                  "map_async", "imap", "imap_unordered"])
def test_a_func_that_is_not_callable(_no_leftovers, errors, call):
    pool = track(_no_leftovers, Pool(1))
    if call == "apply_async when full":
        pool.spawn(sleep, LONG)
    func = {"apply": lambda: pool.apply(5), "apply_async": lambda: pool.apply_async(5),
            "apply_async when full": lambda: pool.apply_async(5),
            "map": lambda: pool.map(5, [1]), "map_async": lambda: pool.map_async(5, [1]),
            "imap": lambda: pool.imap(5, [1]),
            "imap_unordered": lambda: pool.imap_unordered(5, [1])}[call]
    with pytest.raises(TypeError, match="callable"):
        func()
    sleep(0.01)
    assert errors.getvalue() == ""               # nothing failed later, in the hub


def test_bad_callbacks_iterables_and_maxsize_at_the_call(_no_leftovers, errors):
    pool = track(_no_leftovers, Pool(2))
    with pytest.raises(TypeError, match="callback"):
        pool.apply_async(identity, (1,), callback=5)
    with pytest.raises(TypeError, match="callback"):
        pool.map_async(identity, [1], callback=5)
    with pytest.raises(TypeError):
        pool.map_async(identity, 5)              # not iterable
    with pytest.raises(TypeError, match="maxsize"):
        pool.imap(identity, [1], maxsize="3")
    with pytest.raises(ValueError, match="maxsize"):
        pool.imap(identity, [1], maxsize=-1)
    sleep(0.01)
    assert errors.getvalue() == "" and len(pool) == 0


@pytest.mark.parametrize("cls", [Group, lambda: Pool(2), lambda: Pool(None)],
                         ids=["Group", "Pool", "unbounded Pool"])
@pytest.mark.parametrize("bad,exc", [("soon", TypeError), (float("nan"), ValueError)])
def test_bad_timeouts_even_when_nothing_must_be_waited_for(_no_leftovers, cls, bad, exc):
    group = track(_no_leftovers, cls())
    with pytest.raises(exc):
        group.join(timeout=bad)                  # empty: would return at once
    with pytest.raises(exc):
        group.wait_available(timeout=bad)        # a slot is free
    if isinstance(group, Pool):
        with pytest.raises(exc):
            group.add(Greenlet(identity, 1), timeout=bad)
    assert len(group) == 0
