"""Tests for ``evloop.local``: greenlet-local attributes, subclasses with ``__init__``,
descriptors, ``__slots__``, and the release of a greenlet's data when it dies.

Nothing here depends on timing: greenlets interleave through ``sleep(0)`` and joins.
"""
import copy
import gc
import pickle
import threading
import weakref

import pytest
from greenlet import greenlet as raw_greenlet

import evloop
from evloop import getcurrent, joinall, sleep, spawn, spawn_raw
from evloop.local import local


class Value:
    """Something weakly referenceable to store in a local."""


def collect():
    for _ in range(3):
        gc.collect()


# -- isolation -----------------------------------------------------------------------------

def test_attributes_are_per_greenlet():
    data = local()
    data.x = "main"

    def worker(i):
        assert not hasattr(data, "x")
        data.x = i
        sleep(0)            # the others set theirs meanwhile
        sleep(0)
        return data.x

    gs = [spawn(worker, i) for i in range(50)]
    joinall(gs, timeout=10)
    assert [g.value for g in gs] == list(range(50))
    assert data.x == "main"


def test_dict_is_per_greenlet():
    data = local()
    data.a = 1
    assert data.__dict__ == {"a": 1}
    data.__dict__.setdefault("b", []).append(2)
    assert data.b == [2]
    g = spawn(lambda: (dict(data.__dict__), data.__dict__.setdefault("c", 3), data.c))
    assert g.get(timeout=10) == ({}, 3, 3)
    assert data.__dict__ == {"a": 1, "b": [2]}
    with pytest.raises(AttributeError, match="read-only"):
        data.__dict__ = {}
    with pytest.raises(AttributeError, match="read-only"):
        del data.__dict__


def test_delete_and_missing_attribute():
    data = local()
    data.x = 1
    del data.x
    with pytest.raises(AttributeError, match="'local' object has no attribute 'x'"):
        data.x
    with pytest.raises(AttributeError):
        del data.x
    assert getattr(data, "x", None) is None
    g = spawn(lambda: hasattr(data, "x"))
    data.x = 2
    assert g.get(timeout=10) is False


def test_hub_and_raw_greenlets_have_their_own_data():
    data = local()
    data.who = "main"
    seen = []

    def in_raw():
        seen.append(getattr(data, "who", None))
        data.who = "raw"
        seen.append(data.who)

    spawn_raw(in_raw)
    sleep(0.01)
    # a loop callback runs in the hub greenlet
    evloop.get_hub().loop.run_callback(lambda: seen.append(getattr(data, "who", None)))
    sleep(0.01)
    assert seen == [None, "raw", None]
    assert data.who == "main"


def test_plain_greenlet_switching():
    data = local()
    data.v = 0

    def child():
        data.v = "child"
        getcurrent().parent.switch(data.v)
        return data.v

    g = raw_greenlet(child)
    assert g.switch() == "child"
    assert data.v == 0
    assert g.switch() == "child"


def test_threads_have_separate_data():
    data = local()
    data.v = "main"
    out = []

    def in_thread():
        out.append(hasattr(data, "v"))
        data.v = "thread"
        out.append(data.v)

    t = threading.Thread(target=in_thread)
    t.start()
    t.join(10)
    assert out == [False, "thread"]
    assert data.v == "main"


def test_new_greenlet_never_sees_a_dead_greenlets_data():
    # greenlet ids get reused once the objects are freed; the data must not be
    data = local()
    for i in range(300):
        g = spawn(lambda i=i: (getattr(data, "v", None), setattr(data, "v", i)))
        assert g.get(timeout=10)[0] is None
        del g


# -- constructor arguments and __init__ ----------------------------------------------------------

def test_init_runs_once_per_greenlet_with_constructor_args():
    calls = []

    class MyLocal(local):
        def __init__(self, a, b=0, **kw):
            calls.append((getcurrent(), a, b, kw))
            self.a = a
            self.b = b

    data = MyLocal(1, b=2, c=3)
    assert len(calls) == 1 and calls[0][0] is getcurrent()
    assert (data.a, data.b) == (1, 2)
    data.a = "changed"
    assert len(calls) == 1

    def worker():
        first = (data.a, data.b)
        data.b = "mine"
        return first, data.b, data.a

    gs = [spawn(worker) for _ in range(3)]
    joinall(gs, timeout=10)
    assert [g.value for g in gs] == [((1, 2), "mine", 1)] * 3
    assert len(calls) == 4
    assert {c[0] for c in calls[1:]} == set(gs)
    assert all(c[1:] == (1, 2, {"c": 3}) for c in calls)
    assert data.a == "changed"


def test_init_runs_on_first_access_of_any_kind():
    calls = []

    class MyLocal(local):
        def __init__(self):
            calls.append(1)

    data = MyLocal()
    spawn(lambda: setattr(data, "x", 1)).join()
    spawn(lambda: hasattr(data, "x")).join()
    spawn(lambda: data.__dict__).join()
    assert len(calls) == 4


def test_gevent_doc_example():
    class MyLocal(local):
        number = 2
        initialized = False

        def __init__(self, **kw):
            if self.initialized:
                raise SystemError("__init__ called too many times")
            self.initialized = True
            self.__dict__.update(kw)

        def squared(self):
            return self.number ** 2

    mydata = MyLocal(color="red")
    assert mydata.number == 2
    assert mydata.color == "red"
    del mydata.color
    assert mydata.squared() == 4
    log = []

    def f():
        log.append(sorted(mydata.__dict__.items()))
        mydata.number = 11
        log.append(mydata.number)

    spawn(f).join()
    assert log == [[("color", "red"), ("initialized", True)], 11]
    assert mydata.number == 2
    with pytest.raises(AttributeError):
        mydata.color


def test_arguments_without_init_are_refused():
    with pytest.raises(TypeError, match="not supported"):
        local(1)
    with pytest.raises(TypeError, match="not supported"):
        local(x=1)

    class NoInit(local):
        pass

    with pytest.raises(TypeError):
        NoInit(1)


def test_failed_init_is_retried_on_next_access():
    attempts = []

    class Flaky(local):
        def __init__(self):
            attempts.append(getcurrent())
            if len(attempts) == 2:
                raise RuntimeError("first try in the greenlet fails")
            self.ok = True

    data = Flaky()

    def worker():
        with pytest.raises(RuntimeError):
            data.ok
        return data.ok

    assert spawn(worker).get(timeout=10) is True
    assert len(attempts) == 3


# -- class attributes, descriptors, slots ------------------------------------------------------

def test_descriptors():
    class MyLocal(local):
        default = "class"

        @property
        def prop(self):
            return ("prop", self.__dict__.get("_p"))

        @prop.setter
        def prop(self, value):
            self._p = value

        @prop.deleter
        def prop(self):
            del self._p

        @staticmethod
        def static(x):
            return ("static", x)

        @classmethod
        def klass(cls):
            return cls

        def method(self):
            return self.default

    data = MyLocal()
    assert data.default == "class"
    data.default = "instance"          # plain class attribute: shadowed per greenlet
    assert data.method() == "instance"
    assert spawn(data.method).get(timeout=10) == "class"
    data.prop = 5
    assert data.prop == ("prop", 5) and data._p == 5
    assert spawn(lambda: data.prop).get(timeout=10) == ("prop", None)
    del data.prop
    assert data.prop == ("prop", None)
    assert data.static(1) == ("static", 1)
    assert data.klass() is MyLocal
    assert data.__class__ is MyLocal and isinstance(data, local)
    # a data descriptor wins over an entry of the same name in the dict
    data.__dict__["prop"] = "shadow"
    assert data.prop == ("prop", None)
    # a non-data descriptor (a method) loses to the dict
    data.method = lambda: "replaced"
    assert data.method() == "replaced"
    assert spawn(lambda: data.method()).get(timeout=10) == "class"


def test_read_only_property():
    class MyLocal(local):
        @property
        def ro(self):
            return 1

    data = MyLocal()
    with pytest.raises(AttributeError):
        data.ro = 2
    assert data.ro == 1 and "ro" not in data.__dict__


def test_custom_descriptor():
    class Counted:
        def __init__(self):
            self.gets = 0

        def __get__(self, obj, owner):
            if obj is None:
                return self
            self.gets += 1
            return obj.__dict__.get("_c", 0)

        def __set__(self, obj, value):
            obj.__dict__["_c"] = value * 10

    class MyLocal(local):
        c = Counted()

    data = MyLocal()
    data.c = 2
    assert data.c == 20
    assert spawn(lambda: data.c).get(timeout=10) == 0
    assert MyLocal.__dict__["c"].gets == 2


def test_getattr_fallback_called_once():
    calls = []

    class WithDefault(local):
        def __getattr__(self, name):
            calls.append(name)
            if name.startswith("no_"):
                raise AttributeError(name)
            return f"default-{name}"

    data = WithDefault()
    data.real = 1
    assert data.real == 1 and calls == []
    assert data.missing == "default-missing"
    assert calls == ["missing"]
    assert not hasattr(data, "no_such")
    assert calls == ["missing", "no_such"]


def test_slots_are_shared_between_greenlets():
    class MyLocal(local):
        __slots__ = ("number",)

    data = MyLocal()
    data.number = 42
    data.color = "red"

    def f():
        assert not hasattr(data, "color")
        assert data.number == 42
        data.number = 11

    spawn(f).get(timeout=10)
    assert data.number == 11
    assert data.color == "red"
    del data.number
    assert not hasattr(data, "number")


def test_subclass_without_slots_keeps_data_local():
    class Plain(local):
        pass

    data = Plain()
    data.x = 1
    assert spawn(lambda: hasattr(data, "x")).get(timeout=10) is False
    assert data.__dict__ == {"x": 1}


# -- lifetime ----------------------------------------------------------------------------------

def test_data_of_finished_greenlet_is_released():
    data = local()

    def store():
        v = Value()
        data.v = v
        return weakref.ref(v)

    g = spawn(store)
    ref = g.get(timeout=10)
    sleep(0.01)             # the greenlet's links run from the hub
    collect()
    assert ref() is None    # released although the Greenlet object is still referenced
    assert g.dead


def test_data_of_killed_greenlet_is_released():
    data = local()
    refs = []

    def store():
        v = Value()
        data.v = v
        refs.append(weakref.ref(v))
        del v
        sleep(30)

    g = spawn(store)
    sleep(0.01)
    assert refs and refs[0]() is not None
    g.kill()
    sleep(0.01)
    collect()
    assert refs[0]() is None


def test_data_of_raw_greenlet_released_when_freed():
    data = local()
    refs = []

    def store():
        v = Value()
        data.v = v
        refs.append(weakref.ref(v))

    g = raw_greenlet(store)
    g.switch()
    assert g.dead
    del g
    collect()
    assert refs[0]() is None


def test_dropping_the_local_releases_everything():
    data = local()
    v = Value()
    ref = weakref.ref(v)
    data.v = v
    del v
    wr_local = weakref.ref(data)
    ready = []

    def long_lived():
        data.mine = Value()
        ready.append(weakref.ref(data.mine))
        sleep(30)

    g = spawn(long_lived)
    sleep(0.01)
    links_with_local = len(g._links)
    del data
    collect()
    assert wr_local() is None
    assert ref() is None and ready[0]() is None
    # the local's link on the still-running greenlet is gone too
    assert len(g._links) == links_with_local - 1
    g.kill()


def test_local_in_a_reference_cycle_is_collected():
    data = local()
    data.me = data
    wr = weakref.ref(data)
    del data
    collect()
    assert wr() is None


def test_many_greenlets_leave_nothing_behind():
    data = local()
    gs = [spawn(lambda i=i: setattr(data, "v", Value())) for i in range(200)]
    joinall(gs, timeout=10)
    sleep(0.01)
    impl = object.__getattribute__(data, "_local__impl")
    assert len(impl.dicts) == 1          # only the main greenlet's (from the constructor)
    assert len(impl.refs) == 1


# -- copy, pickle --------------------------------------------------------------------------------

def test_copy():
    class MyLocal(local):
        def __init__(self, a):
            self.a = a

    data = MyLocal(1)
    data.b = [1]
    dup = copy.copy(data)
    assert type(dup) is MyLocal and dup is not data
    assert (dup.a, dup.b) == (1, [1]) and dup.b is data.b
    dup.b = 2
    assert data.b == [1]
    assert spawn(lambda: (dup.a, hasattr(dup, "b"))).get(timeout=10) == (1, False)


def test_not_picklable():
    with pytest.raises(TypeError):
        pickle.dumps(local())


def test_module_exports():
    import evloop.local as mod
    assert mod.__all__ == ["local"]
    assert evloop.local is mod
