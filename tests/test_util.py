"""Tests for evloop.util (run info, greenlet trees, assert_switches, wrap_errors) and the
spawning greenlet a Greenlet records. Where the behaviour is gevent's the same test runs
against gevent.util (the ``impl`` fixture, tests/conftest.py)."""
import importlib
import io
import sys
import time

import pytest

import evloop
import evloop.local
from evloop import util
from evloop.greenlet import Greenlet


@pytest.fixture
def api(impl):
    return importlib.import_module(impl) if impl else None


@pytest.fixture
def gutil(impl):
    return importlib.import_module(f"{impl}.util") if impl else None


@pytest.fixture
def gevent_event(impl):
    return importlib.import_module(f"{impl}.event") if impl else None


# -- wrap_errors -------------------------------------------------------------------------------

def test_wrap_errors_returns_the_chosen_exceptions(gutil):
    def div(a, b):
        """divides"""
        return a / b
    wrapped = gutil.wrap_errors(ZeroDivisionError, div)
    assert wrapped(6, 3) == 2
    result = wrapped(1, 0)
    assert isinstance(result, ZeroDivisionError)
    with pytest.raises(TypeError):
        wrapped(1, "x")
    assert str(wrapped) == str(div) and repr(wrapped) == repr(div)
    assert wrapped.__doc__ == "divides" and wrapped.__name__ == "div"
    both = gutil.wrap_errors((ZeroDivisionError, TypeError), div)
    assert isinstance(both(1, "x"), TypeError)


# -- run info ------------------------------------------------------------------------------------

def test_format_run_info_shows_threads_and_greenlets(api, gutil, gevent_event):
    ready = gevent_event.Event()

    def waiting_here():
        ready.wait()

    g = api.spawn(waiting_here)
    api.sleep(0)
    try:
        lines = gutil.format_run_info()
        text = "\n".join(lines)
        assert "* Threads" in text and "* Greenlets" in text
        assert "(CURRENT" in text
        assert "MainThread" in text
        assert repr(g) in text
        assert "in waiting_here" in text   # the suspended greenlet's running stack
        assert "test_format_run_info_shows_threads_and_greenlets" in text  # this thread's
        short = "\n".join(gutil.format_run_info(thread_stacks=False, greenlet_stacks=False))
        assert "in waiting_here" not in short
        assert "...stack elided..." in short
    finally:
        ready.set()
        g.join()


def test_print_run_info_writes_to_the_file(gutil):
    out = io.StringIO()
    gutil.print_run_info(file=out)
    assert "* Greenlets" in out.getvalue()
    limited = "\n".join(gutil.format_run_info(limit=1))
    assert "* Threads" in limited


def test_run_info_names_idle_threadpool_workers():
    pool = evloop.get_hub().threadpool
    pool.apply(time.sleep, (0,))  # a worker exists, then idles
    text = "\n".join(util.format_run_info())
    assert "idle threadpool worker" in text


# -- GreenletTree ---------------------------------------------------------------------------------

def test_greenlet_tree_follows_the_spawning_greenlet(api, gutil, gevent_event):
    done = gevent_event.Event()
    children = []

    def child():
        done.wait()

    def parent():
        children.append(api.spawn(child))
        done.wait()

    p = api.spawn(parent)
    api.sleep(0)
    api.sleep(0)
    try:
        assert children[0].spawning_greenlet() is p
        tree = gutil.GreenletTree.current_tree()
        assert tree.is_current_tree and tree.root
        text = str(tree)
        lines = text.splitlines()
        parent_line = next(i for i, line in enumerate(lines) if repr(p) in line)
        child_line = next(i for i, line in enumerate(lines) if repr(children[0]) in line)
        assert child_line > parent_line
        # the child is drawn one level deeper than the parent
        indent = lambda line: len(line) - len(line.lstrip(" |+-"))  # noqa: E731
        assert indent(lines[child_line]) > indent(lines[parent_line])
        detailed = tree.format(details=True)
        assert "Parent: " in detailed and "Running:" in detailed
        forest = gutil.GreenletTree.forest()
        assert any(t.is_current_tree for t in forest)
    finally:
        done.set()
        api.joinall([p] + children)


def test_spawn_tree_locals_are_shared_down_the_tree(api, gevent_event):
    done = gevent_event.Event()
    seen = {}

    def child():
        seen["child"] = api.getcurrent().spawn_tree_locals
        done.wait()

    def parent():
        seen["parent"] = api.getcurrent().spawn_tree_locals
        seen["parent"]["request"] = 42
        api.spawn(child).join()

    p = api.spawn(parent)
    done.set()
    p.join()
    assert seen["child"] is seen["parent"]
    assert seen["child"]["request"] == 42
    other = api.spawn(lambda: None)
    assert other.spawn_tree_locals is not seen["parent"]  # another tree
    other.join()


def test_greenlet_tree_details_of_finished_greenlets(api, gutil):
    g = api.spawn(lambda: "the value")
    g.join()
    label = gutil.GreenletTree(g).format_lines(details=False)[0]
    assert "finished with value 'the value'" in label


def test_spawning_greenlet_is_dropped_for_plain_spawners():
    # evloop records only Greenlet spawners (cheap spawns from the hub and main greenlet)
    g = evloop.spawn(lambda: None)
    assert g.spawning_greenlet() is None
    assert g.spawning_stack is None
    g.join()


def test_spawning_greenlet_does_not_keep_a_finished_spawner_alive():
    import gc
    import weakref
    hold = evloop.event.Event()
    kids = []

    def spawner():
        kids.append(evloop.spawn(hold.wait))

    s = evloop.spawn(spawner)
    s.join()
    ref = weakref.ref(s)
    assert kids[0].spawning_greenlet() is s
    del s
    evloop.sleep(0)  # the hub's queued link notification lets go of it
    gc.collect()
    assert ref() is None  # the child's record is weak
    assert kids[0].spawning_greenlet() is None
    hold.set()
    kids[0].join()


@pytest.fixture
def tracking(impl, monkeypatch):
    """The spawn tree tracked: evloop's EVLOOP_TRACK_GREENLET_TREE (off by default, read
    at the first spawn; set here on evloop.greenlet), gevent's config.track_greenlet_tree
    (on by default)."""
    if impl == "evloop":
        import evloop.greenlet
        monkeypatch.setattr(evloop.greenlet, "_track_tree", True)
    return impl


def test_tracked_tree_records_the_spawning_stack(api, gutil, tracking):
    import traceback

    def child():
        pass

    def spawn_the_child():
        return api.spawn(child)

    def root():
        api.getcurrent().spawn_tree_locals["request"] = 7
        kid = spawn_the_child()
        kid.join()
        return kid, "\n".join(gutil.format_run_info())

    g = api.spawn(root)
    g.join()
    kid, info = g.value
    stack = "".join(traceback.format_stack(kid.spawning_stack))
    assert "in spawn_the_child" in stack and "in root" in stack
    assert "return api.spawn(child)" in stack   # source lines, from the file
    assert len(traceback.extract_stack(kid.spawning_stack)) <= kid.spawning_stack_limit
    assert kid.spawn_tree_locals == {"request": 7}
    assert "Spawned at:" in info and "in root" in info


def test_tracked_tree_takes_spawn_tree_locals_at_spawn(api, tracking):
    # taken at spawn: a child whose spawner finished before the child looked still shares
    # the tree's dict
    kids = []

    def parent():
        api.getcurrent().spawn_tree_locals["k"] = 1
        kids.append(api.spawn(lambda: None))

    p = api.spawn(parent)
    p.join()
    tree = p.spawn_tree_locals
    del p
    import gc
    gc.collect()
    assert kids[0].spawn_tree_locals is tree
    kids[0].join()


def test_untracked_spawn_records_no_stack():
    import evloop.greenlet
    evloop.spawn(lambda: None).join()  # the first spawn has read the setting
    assert evloop.greenlet._track_tree is False  # EVLOOP_TRACK_GREENLET_TREE's default

    def root():
        kid = evloop.spawn(lambda: None)
        kid.join()
        return kid, "\n".join(util.format_run_info())

    g = evloop.spawn(root)
    g.join()
    kid, info = g.value
    assert kid.spawning_stack is None and g.spawning_stack is None
    assert "Spawned at:" not in info


def test_track_greenlet_tree_from_the_environment():
    from _helpers import run_python
    out = run_python("""
        import evloop, evloop.greenlet
        def spawner():
            return evloop.spawn(lambda: None)
        g = evloop.spawn(spawner)
        g.join()
        print(evloop.greenlet._track_tree, g.value.spawning_stack is not None,
              g.spawning_stack is not None)
    """, env={"EVLOOP_TRACK_GREENLET_TREE": "1"}).stdout
    assert out.split() == ["True", "True", "True"]


# -- assert_switches -------------------------------------------------------------------------------

def test_assert_switches_passes_when_the_block_yields(api, gutil):
    with gutil.assert_switches():
        api.sleep(0)


def test_assert_switches_fails_when_the_block_does_not_yield(gutil):
    with pytest.raises(AssertionError) as info:
        with gutil.assert_switches():
            sum(range(10))
    assert "To any greenlet" in str(info.value)


def test_assert_switches_lets_the_blocks_exception_through(gutil):
    with pytest.raises(KeyError):
        with gutil.assert_switches():
            raise KeyError("mine")


def test_assert_switches_max_blocking_time(api, gutil):
    with gutil.assert_switches(max_blocking_time=5):
        time.sleep(0.01)      # blocked, but for less than allowed
        api.sleep(0)
    with pytest.raises(AssertionError) as info:
        with gutil.assert_switches(max_blocking_time=0.05):
            time.sleep(0.2)   # blocked for longer
            api.sleep(0)
    assert "max allowed 0.0500 seconds" in str(info.value)


def test_assert_switches_hub_only(api, gutil):
    with pytest.raises(AssertionError) as info:
        with gutil.assert_switches(max_blocking_time=0.05, hub_only=True):
            time.sleep(0.2)
    assert "To the hub" in str(info.value)
    with pytest.raises(AssertionError):
        with gutil.assert_switches(max_blocking_time=1, hub_only=True):
            pass  # quick, but it never went to the hub
    with gutil.assert_switches(max_blocking_time=1, hub_only=True):
        api.sleep(0)


def test_assert_switches_restores_the_previous_trace_function():
    import greenlet
    calls = []
    previous = greenlet.settrace(lambda event, args: calls.append(event))
    try:
        with util.assert_switches():
            evloop.sleep(0)
        assert calls  # chained while inside
        assert greenlet.gettrace() is not None
        n = len(calls)
        evloop.sleep(0)
        assert len(calls) > n  # and back in place after
    finally:
        greenlet.settrace(previous)


@pytest.mark.parametrize("bad, exc", [("1", TypeError), (float("nan"), ValueError)])
def test_assert_switches_rejects_bad_max_blocking_time(bad, exc):
    with pytest.raises(exc):
        util.assert_switches(max_blocking_time=bad)


def test_assert_switches_nests(gutil):
    import greenlet
    with gutil.assert_switches() as outer:
        assert greenlet.gettrace() is outer.tracer
        with gutil.assert_switches() as inner:
            assert inner.tracer.previous_trace_function is outer.tracer
            inner.tracer("switch", (None, outer))  # passed down the chain
            assert outer.tracer.active_greenlet is outer
            gutil.__name__  # noqa: B018
            importlib.import_module(gutil.__name__.split(".")[0]).sleep(0)
        assert greenlet.gettrace() is outer.tracer


def test_clear_stack_frames_in_a_thread(gutil):
    import inspect
    import threading
    done = []

    def run():
        local_value = object()  # noqa: F841 - what is cleared
        gutil.clear_stack_frames(inspect.currentframe())
        done.append(1)

    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    assert done == [1]


def test_format_run_info_rejects_a_bad_limit():
    with pytest.raises(TypeError):
        util.format_run_info(limit="3")


def test_util_names():
    assert set(util.__all__) == {"format_run_info", "print_run_info", "GreenletTree",
                                 "wrap_errors", "assert_switches"}
    assert Greenlet.spawning_stack_limit == 10  # gevent's


def test_greenlet_tree_shows_greenlet_locals(api, gutil):
    local_mod = importlib.import_module(api.__name__ + ".local")

    class MyLocal(local_mod.local):
        pass

    holder = MyLocal()
    seen = {}

    def body():
        holder.foo = 42
        seen["tree"] = gutil.GreenletTree.current_tree().format()

    api.spawn(body).join()
    text = seen["tree"]
    assert "Greenlet Locals:" in text
    assert "MyLocal" in text and "{'foo': 42}" in text


def test_formatting_does_not_touch_greenlet_locals():
    # isinstance() on an evloop.local reads its __class__ through the local's own attribute
    # lookup, which makes the current greenlet a dict (and runs __init__): the tree scan
    # must not do that
    inits = []

    class Counting(evloop.local.local):
        def __init__(self):
            inits.append(evloop.getcurrent())

    holder = Counting()  # noqa: F841 - found by the scan
    impl = object.__getattribute__(holder, "_local__impl")

    def body():
        util.format_run_info()
        util.GreenletTree.current_tree().format()
        return len(impl.dicts)

    assert evloop.spawn(body).get() == 1
    assert len(inits) == 1
