"""Tests for evloop.events: subscribers and notify, the event classes (gevent's names
are aliases of evloop's), the patch events of evloop.monkey, the hub's events and the
blocking monitor's EventLoopBlocked. Where the behaviour is gevent's the same test runs
against gevent.events (the ``impl`` fixture, tests/conftest.py); patching and the monitor
run in subprocesses (patching is for good, the monitor is configured at hub creation)."""
import importlib
import json
import sys

import pytest

import evloop
from evloop import events

from _helpers import run_python


@pytest.fixture
def ev(impl):
    return importlib.import_module(f"{impl}.events") if impl else None


@pytest.fixture
def subscribed(ev):
    if ev is None:  # the gevent side, run in its own process
        yield None
        return
    got = []
    ev.subscribers.append(got.append)
    yield got
    ev.subscribers.remove(got.append)


def test_notify_calls_every_subscriber_in_order(ev):
    calls = []
    first, second = (lambda e: calls.append(("first", e))), (lambda e: calls.append(("2", e)))
    ev.subscribers.extend([first, second])
    try:
        ev.notify("event")
    finally:
        ev.subscribers.remove(first)
        ev.subscribers.remove(second)
    assert calls == [("first", "event"), ("2", "event")]


def test_a_subscribers_exception_reaches_the_publisher(ev):
    after = []

    def bad(event):
        raise ev.DoNotPatch()
    ev.subscribers.extend([bad, after.append])
    try:
        with pytest.raises(ev.DoNotPatch):
            ev.notify(object())
    finally:
        ev.subscribers.remove(bad)
        ev.subscribers.remove(after.append)
    assert after == []
    assert issubclass(ev.DoNotPatch, BaseException)
    assert not issubclass(ev.DoNotPatch, Exception)


def test_event_loop_blocked_attributes(ev):
    g = object()
    event = ev.EventLoopBlocked(g, 0.5, ["line"], hub="hub")
    assert (event.greenlet, event.blocking_time, event.info, event.hub) == \
        (g, 0.5, ["line"], "hub")
    assert ev.EventLoopBlocked(g, 1, []).hub is None


def test_patch_all_events_carry_the_arguments(ev):
    event = ev.GeventWillPatchAllEvent({"socket": True, "ssl": False}, {"plugin": 1})
    assert event.will_patch_module("socket") is True
    assert event.will_patch_module("ssl") is False
    assert event.will_patch_module("nonesuch") is None
    args = event.patch_all_arguments
    args["socket"] = False  # a copy
    assert event.patch_all_arguments["socket"] is True
    assert event.patch_all_kwargs == {"plugin": 1}
    assert event.source is None and event.target is None
    module_event = ev.GeventWillPatchModuleEvent("socket", "src", "tgt", ["a"])
    assert (module_event.module_name, module_event.source, module_event.target,
            module_event.target_item_names) == ("socket", "src", "tgt", ["a"])
    assert isinstance(module_event, ev.GeventWillPatchEvent)
    assert isinstance(ev.GeventDidPatchAllEvent({}, {}), ev.GeventDidPatchEvent)


def test_gevent_names_are_evloops_classes():
    pairs = [("GeventPatchEvent", "EvloopPatchEvent"),
             ("GeventWillPatchEvent", "EvloopWillPatchEvent"),
             ("GeventDidPatchEvent", "EvloopDidPatchEvent"),
             ("GeventWillPatchModuleEvent", "EvloopWillPatchModuleEvent"),
             ("GeventDidPatchModuleEvent", "EvloopDidPatchModuleEvent"),
             ("GeventWillPatchAllEvent", "EvloopWillPatchAllEvent"),
             ("GeventDidPatchBuiltinModulesEvent", "EvloopDidPatchBuiltinModulesEvent"),
             ("GeventDidPatchAllEvent", "EvloopDidPatchAllEvent")]
    for gevent_name, evloop_name in pairs:
        assert getattr(events, gevent_name) is getattr(events, evloop_name)
        assert getattr(events, "I" + gevent_name) is getattr(events, "I" + evloop_name)
        assert isinstance(getattr(events, evloop_name).__new__(getattr(events, evloop_name)),
                          getattr(events, "I" + gevent_name))
    for name in events.__all__:
        assert hasattr(events, name), name


def test_hub_created_event():
    got = []
    events.subscribers.append(got.append)
    try:
        hub = evloop.hub.Hub()
    finally:
        events.subscribers.remove(got.append)
    try:
        assert [type(e) for e in got] == [events.HubCreatedEvent]
        assert got[0].hub is hub and got[0].hub.loop is hub.loop
    finally:
        hub.destroy()


def test_monitor_start_publishes_its_event():
    hub = evloop.hub.Hub()
    got = []
    events.subscribers.append(got.append)
    try:
        monitor = hub.start_monitor(5)
        assert hub.start_monitor(5) is monitor  # started once, published once
    finally:
        events.subscribers.remove(got.append)
        hub.destroy()
    assert [type(e) for e in got] == [events.PeriodicMonitorThreadStartedEvent]
    assert got[0].monitor is monitor


def test_notify_and_call_entry_points_without_plugins(ev, subscribed):
    event = ev.GeventDidPatchAllEvent({}, {})
    ev.notify_and_call_entry_points(event)
    assert subscribed == [event]


# -- patching (subprocesses) ------------------------------------------------------------------

_PATCH_PROGRAM = """
import json, sys
impl, veto_all, veto_module = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
events = __import__(impl + ".events", fromlist=["x"])
monkey = __import__(impl + ".monkey", fromlist=["x"])
seen = []
def subscriber(event):
    kind = None
    for name in ("GeventWillPatchAllEvent", "GeventDidPatchBuiltinModulesEvent",
                 "GeventDidPatchAllEvent", "GeventWillPatchModuleEvent",
                 "GeventDidPatchModuleEvent"):
        if isinstance(event, getattr(events, name)):
            kind = name
            break
    if kind is None:
        return
    seen.append([kind, getattr(event, "module_name", None)])
    if kind == "GeventWillPatchAllEvent" and veto_all:
        raise events.DoNotPatch()
    if kind == "GeventWillPatchModuleEvent" and event.module_name == veto_module:
        raise events.DoNotPatch()
events.subscribers.append(subscriber)
monkey.patch_all(thread=False, subprocess=False, signal=False)
import time, socket
print(json.dumps({"seen": seen,
                  "socket": monkey.is_module_patched("socket"),
                  "time": monkey.is_module_patched("time")}))
"""


def _patch_run(impl, veto_all=False, veto_module="-"):
    out = run_python(_PATCH_PROGRAM, impl, "1" if veto_all else "0", veto_module).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("impl_name", ["evloop", "gevent"])
def test_patch_all_publishes_will_and_did_events(impl_name):
    result = _patch_run(impl_name)
    kinds = [kind for kind, _ in result["seen"]]
    assert kinds[0] == "GeventWillPatchAllEvent"
    assert kinds[-2:] == ["GeventDidPatchBuiltinModulesEvent", "GeventDidPatchAllEvent"]
    modules = [name for kind, name in result["seen"] if kind == "GeventWillPatchModuleEvent"]
    done = [name for kind, name in result["seen"] if kind == "GeventDidPatchModuleEvent"]
    assert "socket" in modules and "time" in modules
    assert modules == done  # a did event follows each will event
    assert result["socket"] and result["time"]


@pytest.mark.parametrize("impl_name", ["evloop", "gevent"])
def test_do_not_patch_from_will_patch_all_stops_everything(impl_name):
    result = _patch_run(impl_name, veto_all=True)
    assert [kind for kind, _ in result["seen"]] == ["GeventWillPatchAllEvent"]
    assert not result["socket"] and not result["time"]


@pytest.mark.parametrize("impl_name", ["evloop", "gevent"])
def test_do_not_patch_from_a_module_event_skips_that_module(impl_name):
    result = _patch_run(impl_name, veto_module="socket")
    assert not result["socket"]
    assert result["time"]
    done = [name for kind, name in result["seen"] if kind == "GeventDidPatchModuleEvent"]
    assert "socket" not in done and "time" in done


def test_will_patch_module_subscribers_may_change_the_names():
    out = run_python("""
        import time
        from evloop import events, monkey
        def only_nothing(event):
            if isinstance(event, events.EvloopWillPatchModuleEvent) and \\
                    event.module_name == "time":
                event.target_item_names[:] = []
        events.subscribers.append(only_nothing)
        real = time.sleep
        monkey.patch_time()
        print(time.sleep is real)
    """).stdout
    assert out.strip() == "True"


# -- the blocking monitor ---------------------------------------------------------------------

_BLOCKED_PROGRAM = """
import json, sys, time
impl = sys.argv[1]
api = __import__(impl)
events = __import__(impl + ".events", fromlist=["x"])
blocked = []
events.subscribers.append(
    lambda e: blocked.append(e) if isinstance(e, events.EventLoopBlocked) else None)
def blocker():
    time.sleep(1.0)   # the real sleep: the loop is blocked
g = api.spawn(blocker)
g.join()
api.sleep(0.3)
print(json.dumps({"count": len(blocked),
                  "is_blocker": [e.greenlet is g for e in blocked],
                  "time": [e.blocking_time for e in blocked],
                  "info": ["blocker" in "".join(e.info) for e in blocked]}))
"""


@pytest.mark.parametrize("impl_name", ["evloop", "gevent"])
def test_monitor_publishes_event_loop_blocked(impl_name):
    env = {"EVLOOP_MONITOR_THREAD": "1", "EVLOOP_MAX_BLOCKING_TIME": "0.1",
           "GEVENT_MONITOR_THREAD_ENABLE": "1", "GEVENT_MAX_BLOCKING_TIME": "0.1"}
    run = run_python(_BLOCKED_PROGRAM, impl_name, env=env)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["count"] >= 1, run.stderr
    assert result["is_blocker"][0] is True
    assert 0.05 <= result["time"][0] <= 1.5
    assert result["info"][0] is True  # the blocked stack names the blocking function
    assert "blocker" in run.stderr      # and it is reported on stderr


def test_monitor_subscriber_errors_do_not_stop_the_monitor():
    run = run_python("""
        import time
        import evloop
        from evloop import events
        seen = []
        def bad(event):
            if isinstance(event, events.EventLoopBlocked):
                seen.append(event)
                raise RuntimeError("subscriber bug")
        events.subscribers.append(bad)
        evloop.get_hub().start_monitor(0.05)
        for _ in range(2):
            evloop.spawn(time.sleep, 0.3).join()
            evloop.sleep(0.1)
        print(len(seen))
    """)
    assert int(run.stdout.strip()) == 2
    assert "RuntimeError: subscriber bug" in run.stderr


def test_no_monitor_no_thread_by_default():
    run = run_python("""
        import threading, evloop
        evloop.sleep(0.01)
        print(evloop.get_hub()._monitor, [t.name for t in threading.enumerate()])
    """, env={"EVLOOP_MONITOR_THREAD": ""})
    assert run.stdout.strip() == "None ['MainThread']"


def test_monitor_report_runs_no_code_of_other_objects():
    # finding the blocked greenlet scans the heap; isinstance() there would read the
    # __class__ of an evloop.local through its own lookup, which runs its __init__ in the
    # monitor thread
    run = run_python("""
        import threading, time
        import evloop, evloop.local
        from evloop import events
        inits = []
        class Counting(evloop.local.local):
            def __init__(self):
                inits.append(threading.current_thread().name)
        holder = Counting()
        blocked = []
        events.subscribers.append(blocked.append)
        evloop.get_hub().start_monitor(0.05)
        evloop.spawn(time.sleep, 0.3).join()
        evloop.sleep(0.1)
        print(sum(isinstance(e, events.EventLoopBlocked) for e in blocked), inits)
    """)
    assert run.stdout.strip() == "1 ['MainThread']"


# -- memory usage (the monitor thread) -------------------------------------------------------

def test_memory_events_carry_gevents_attributes(ev):
    info = ("rss", "details")
    exceeded = ev.MemoryUsageThresholdExceeded(2048, 1024, info)
    assert (exceeded.mem_usage, exceeded.max_allowed, exceeded.memory_info) == (2048, 1024, info)
    assert repr(exceeded) == ("<MemoryUsageThresholdExceeded used=2048 max=1024 "
                              "details=('rss', 'details')>")
    under = ev.MemoryUsageUnderThreshold(512, 1024, info, 2048)
    assert (under.mem_usage, under.max_allowed, under.memory_info,
            under.max_memory_usage) == (512, 1024, info, 2048)
    assert repr(under).startswith("<MemoryUsageUnderThreshold used=512 max=1024 ")
    assert "MemoryUsageThresholdExceeded" in ev.__all__
    assert "MemoryUsageUnderThreshold" in ev.__all__


def test_monitor_publishes_memory_events():
    # a limit of 1 byte is exceeded at once; raised far above, the usage is back under
    run = run_python("""
        import json, threading
        import evloop
        from evloop import events, _config
        got = []
        events.subscribers.append(lambda e: got.append((e, threading.current_thread().name))
                                  if "Memory" in type(e).__name__ else None)
        evloop.sleep(0.6)
        first = got[0][0]
        exceeded = len(got)
        _config.get_config().max_memory_usage = 1 << 60
        evloop.sleep(0.6)
        last = got[-1][0]
        print(json.dumps({
            "kinds": [type(e).__name__ for e, _ in got],
            "threads": sorted({name for _, name in got}),
            "first": [first.mem_usage, first.max_allowed, first.memory_info.rss,
                      first.memory_info.vms],
            "grew": all(b.mem_usage > a.mem_usage
                        for (a, _), (b, _) in zip(got[:exceeded], got[1:exceeded])),
            "last": [last.max_allowed, last.max_memory_usage, last.mem_usage],
        }))
    """, env={"EVLOOP_MONITOR_THREAD": "1", "EVLOOP_MAX_MEMORY_USAGE": "1",
              "EVLOOP_MEMORY_MONITOR_PERIOD": "0.1"})
    result = json.loads(run.stdout.strip().splitlines()[-1])
    kinds = result["kinds"]
    assert kinds[0] == "MemoryUsageThresholdExceeded"
    assert kinds[-1] == "MemoryUsageUnderThreshold" and kinds.count(kinds[-1]) == 1
    assert result["threads"] == ["evloop-monitor"]
    usage, allowed, rss, vms = result["first"]
    assert allowed == 1 and usage == rss and 1 << 20 < rss <= vms  # bytes, not pages
    assert result["grew"]  # exceeded again only while the usage grows
    assert result["last"][0] == 1 << 60 and result["last"][1] > 1 << 20
    assert result["last"][2] < 1 << 60


def test_memory_check_without_a_limit_publishes_nothing():
    run = run_python("""
        import evloop
        from evloop import events
        hub = evloop.get_hub()
        got = []
        events.subscribers.append(got.append)
        monitor = hub.start_monitor(5)
        print(monitor.monitor_memory_usage(), [type(e).__name__ for e in got])
    """)
    assert run.stdout.split()[-2:] == ["-1", "['PeriodicMonitorThreadStartedEvent']"]


def test_memory_monitor_subscriber_errors_do_not_stop_the_monitor():
    run = run_python("""
        import evloop
        from evloop import events, _config
        calls = []
        def bad(event):
            calls.append(event)
            raise RuntimeError("subscriber bug")
        monitor = evloop.get_hub().start_monitor(5)
        events.subscribers.append(bad)
        _config.get_config().max_memory_usage = 1
        first = monitor.monitor_memory_usage()
        _config.get_config().max_memory_usage = 1 << 60
        second = monitor.monitor_memory_usage()
        print(type(first).__name__, type(second).__name__, len(calls))
    """)
    assert run.stdout.split()[-3:] == ["MemoryUsageThresholdExceeded",
                                       "MemoryUsageUnderThreshold", "2"]
    assert "subscriber bug" in run.stderr
