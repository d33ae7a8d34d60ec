"""Tests for evloop.time: the standard ``time`` module with a cooperative ``sleep``; the
same tests run against gevent.time (the ``impl`` fixture, tests/conftest.py)."""
import importlib
import time as stdlib_time

import pytest

import evloop
import evloop.time


@pytest.fixture
def api(impl):
    return importlib.import_module(impl) if impl else None


@pytest.fixture
def green_time(impl):
    return importlib.import_module(f"{impl}.time") if impl else None


def test_sleep_lets_other_greenlets_run(api, green_time):
    order = []

    def sleeper(name, seconds):
        green_time.sleep(seconds)
        order.append(name)

    start = stdlib_time.monotonic()
    greenlets = [api.spawn(sleeper, "slow", 0.2), api.spawn(sleeper, "fast", 0.05)]
    api.joinall(greenlets)
    elapsed = stdlib_time.monotonic() - start
    assert order == ["fast", "slow"]
    assert elapsed < 0.35  # they slept at the same time, not one after the other


def test_sleep_is_the_hubs(api, green_time):
    assert green_time.sleep is api.sleep
    assert green_time.__implements__ == ["sleep"]


def test_every_other_name_is_the_stdlibs(green_time):
    for name in dir(stdlib_time):
        if name.startswith("__") or name == "sleep":
            continue
        assert getattr(green_time, name) is getattr(stdlib_time, name), name
    assert green_time.sleep is not stdlib_time.sleep
    # and they work: the module is usable as ``time``
    assert isinstance(green_time.monotonic(), float)
    assert green_time.strftime("%Y", green_time.gmtime(0)) == "1970"


def test_sleep_zero_and_negative_yield(api, green_time):
    ran = []
    api.spawn(ran.append, 1)
    green_time.sleep(0)
    assert ran == [1]
    api.spawn(ran.append, 2)
    green_time.sleep(-1)
    assert ran == [1, 2]


def test_all_lists_the_stdlib_names():
    public = {name for name in dir(stdlib_time) if not name.startswith("_")}
    assert set(evloop.time.__all__) == public
    assert evloop.time.sleep is evloop.sleep


@pytest.mark.parametrize("bad, exc", [("1", TypeError), (None, TypeError),
                                      (float("nan"), ValueError)])
def test_sleep_rejects_bad_durations(bad, exc):
    with pytest.raises(exc):
        evloop.time.sleep(bad)


def test_patch_time_puts_this_sleep_in_time():
    from _helpers import run_py
    out = run_py("""
        import time
        import evloop.monkey, evloop.time
        evloop.monkey.patch_time()
        print(time.sleep is evloop.time.sleep, evloop.monkey.is_object_patched('time', 'sleep'))
    """)
    assert out.split() == ["True", "True"]
