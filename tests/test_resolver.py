"""Tests for ``evloop.resolver``: the thread, blocking and c-ares resolvers, the module
functions, ``Hub.resolver`` and EVLOOP_RESOLVER.

There is no internet here: names come from /etc/hosts (``localhost``, this machine's
hostname) and literal addresses. The thread and blocking resolvers must give exactly the
system's answers and errors, so every expectation is computed with ``_socket`` in the
test itself. The c-ares tests (skipped without ``pycares``) check what c-ares can answer
offline. A "slow lookup" is a real lookup made slow by a resolver subclass that sleeps in
the worker thread first.
"""
import _socket
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import evloop
from evloop import spawn
from evloop import resolver as R
from evloop._config import Config
from evloop.exceptions import InvalidThreadUseError
from evloop.hub import get_hub
from evloop.resolver import (AresResolver, BlockingResolver, Resolver, ThreadResolver,
                             resolver_class)
from evloop.threadpool import ThreadPool

from _helpers import ticking

PKG_PARENT = str(Path(evloop.__file__).resolve().parent.parent)
WAIT = 10.0
HOSTNAME = socket.gethostname()
BAD_NAME = "nonexistent-name.invalid"


def outcome(func, *args):
    """``("ok", value)`` or ``("error", type, args)``: what a call gives, to compare."""
    try:
        return ("ok", func(*args))
    except Exception as exc:  # noqa: BLE001
        return ("error", type(exc), exc.args)


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


@pytest.fixture
def thread_resolver(pools):
    return ThreadResolver(get_hub(), pool=pools(4))


class NoPool:
    """A pool that must not be used: literal addresses are answered without a thread."""

    def apply(self, func, args=(), kwds=None):
        raise AssertionError(f"the thread pool was used for {func.__name__}{args}")


class SlowResolver(ThreadResolver):
    """Every lookup sleeps ``delay`` seconds in the worker thread first."""

    delay = 0.3

    def _run(self, func, *args):
        def slow(*a):
            time.sleep(self.delay)
            return func(*a)
        return super()._run(slow, *args)


QUERIES = [
    ("getaddrinfo", ("localhost", 80)),
    ("getaddrinfo", ("localhost", "http", 0, socket.SOCK_STREAM)),
    ("getaddrinfo", (HOSTNAME, 443, socket.AF_INET)),
    ("getaddrinfo", (HOSTNAME, None, 0, 0, 0, socket.AI_CANONNAME)),
    ("getaddrinfo", ("localhost", 80, socket.AF_INET6)),
    ("getaddrinfo", (BAD_NAME, 80)),
    ("getaddrinfo", ("a..b", 80)),                      # UnicodeError, as the stdlib
    ("getaddrinfo", ("localhost", "no-such-service")),
    ("gethostbyname", ("localhost",)),
    ("gethostbyname", (HOSTNAME,)),
    ("gethostbyname", (BAD_NAME,)),
    ("gethostbyname", ("127.1",)),
    ("gethostbyname_ex", ("localhost",)),
    ("gethostbyname_ex", (HOSTNAME,)),
    ("gethostbyname_ex", (BAD_NAME,)),
    ("gethostbyaddr", ("127.0.0.1",)),
    ("gethostbyaddr", ("localhost",)),
    ("gethostbyaddr", ("192.0.2.1",)),                  # TEST-NET: herror
    ("getnameinfo", (("127.0.0.1", 80), 0)),
    ("getnameinfo", (("127.0.0.1", 80), socket.NI_NUMERICSERV)),
    ("getnameinfo", (("::1", 22, 0, 0), socket.NI_NUMERICHOST)),
    ("getnameinfo", (("localhost", 80), 0)),            # gaierror: must be numeric
    ("getnameinfo", (("127.0.0.1", 80, 0, 0), 0)),      # OSError: IPv4 needs a 2-tuple
]


# -- the thread resolver: the system's answers and errors ------------------------------------

@pytest.mark.parametrize("name,args", QUERIES, ids=[f"{n}{a}" for n, a in QUERIES])
def test_thread_resolver_matches_system(thread_resolver, name, args):
    expected = outcome(getattr(_socket, name), *args)
    assert outcome(getattr(thread_resolver, name), *args) == expected


@pytest.mark.parametrize("name,args", QUERIES, ids=[f"{n}{a}" for n, a in QUERIES])
def test_blocking_resolver_matches_system(name, args):
    expected = outcome(getattr(_socket, name), *args)
    assert outcome(getattr(BlockingResolver(get_hub()), name), *args) == expected


def test_bad_name_raises_gaierror(thread_resolver):
    with pytest.raises(socket.gaierror) as info:
        thread_resolver.getaddrinfo(BAD_NAME, 80)
    assert info.value.errno == outcome(_socket.getaddrinfo, BAD_NAME, 80)[2][0]


def test_unknown_address_raises_herror(thread_resolver):
    expected = outcome(_socket.gethostbyaddr, "192.0.2.1")
    if expected[0] == "ok":
        pytest.skip("192.0.2.1 has a name here")
    with pytest.raises(socket.herror):
        thread_resolver.gethostbyaddr("192.0.2.1")


def test_error_traceback_reaches_caller(thread_resolver):
    with pytest.raises(socket.gaierror) as info:
        thread_resolver.getaddrinfo(BAD_NAME, 80)
    assert info.traceback  # raised here, from the worker's exception


@pytest.mark.parametrize("host,port,family", [
    ("127.0.0.1", 80, 0), ("::1", 443, 0), ("::1", "8080", socket.AF_INET6),
    (None, 80, 0), ("0.0.0.0", 0, socket.AF_INET), (b"127.0.0.1", 53, 0),
    ("fe80::1%1", 80, 0),
])
def test_literal_addresses_without_thread(host, port, family):
    resolver = ThreadResolver(get_hub(), pool=NoPool())
    expected = _socket.getaddrinfo(host, port, family)
    assert resolver.getaddrinfo(host, port, family) == expected
    for type_ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        assert (resolver.getaddrinfo(host, port, family, type_)
                == _socket.getaddrinfo(host, port, family, type_))


def test_literal_gethostbyname_and_numeric_getnameinfo_without_thread():
    resolver = ThreadResolver(get_hub(), pool=NoPool())
    assert resolver.gethostbyname("10.1.2.3") == "10.1.2.3"
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    assert resolver.getnameinfo(("127.0.0.1", 80), flags) == ("127.0.0.1", "80")
    assert resolver.getnameinfo(("::1", 80, 0, 0), flags) == ("::1", "80")


def test_literal_errors_match_system():
    resolver = ThreadResolver(get_hub(), pool=NoPool())
    with pytest.raises(TypeError):
        resolver.getaddrinfo(127, 80)
    # a literal of the wrong family needs the full call: same error as the system's
    resolver = ThreadResolver(get_hub())
    assert (outcome(resolver.getaddrinfo, "::1", 80, socket.AF_INET)
            == outcome(_socket.getaddrinfo, "::1", 80, socket.AF_INET))


def test_slow_lookup_does_not_block_other_greenlets(pools):
    resolver = SlowResolver(get_hub(), pool=pools(2))
    start = time.monotonic()
    answer, ticks = ticking(lambda: resolver.getaddrinfo("localhost", 80))
    assert answer == _socket.getaddrinfo("localhost", 80)
    assert time.monotonic() - start >= 0.3
    assert ticks >= 10


def test_slow_lookups_run_concurrently(pools):
    resolver = SlowResolver(get_hub(), pool=pools(8))
    resolver.delay = 0.5
    start = time.monotonic()
    greenlets = [spawn(resolver.gethostbyname, "localhost") for _ in range(8)]
    evloop.joinall(greenlets, timeout=WAIT, raise_error=True)
    assert [g.value for g in greenlets] == ["127.0.0.1"] * 8
    assert time.monotonic() - start < 8 * 0.5  # not one after the other


def test_many_concurrent_lookups(thread_resolver):
    cases = [("localhost", 80), (HOSTNAME, 443), ("127.0.0.1", 8080), ("::1", 22),
             ("localhost", "http"), (BAD_NAME, 80)]
    expected = {case: outcome(_socket.getaddrinfo, *case) for case in cases}
    jobs = [cases[i % len(cases)] for i in range(120)]
    greenlets = [spawn(outcome, thread_resolver.getaddrinfo, *job) for job in jobs]
    evloop.joinall(greenlets, timeout=WAIT)
    assert all(g.dead for g in greenlets)
    assert [g.value for g in greenlets] == [expected[job] for job in jobs]


# -- module functions, Hub.resolver, configuration ----------------------------------------

def test_module_functions_match_socket_module():
    assert R.getaddrinfo("localhost", 80) == socket.getaddrinfo("localhost", 80)
    assert R.getaddrinfo(HOSTNAME, "http", 0, socket.SOCK_STREAM) == \
        socket.getaddrinfo(HOSTNAME, "http", 0, socket.SOCK_STREAM)
    family, kind = R.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)[0][:2]
    assert family is socket.AF_INET and kind is socket.SOCK_STREAM
    assert R.gethostbyname("localhost") == socket.gethostbyname("localhost")
    assert R.gethostbyname_ex(HOSTNAME) == socket.gethostbyname_ex(HOSTNAME)
    assert R.gethostbyaddr("127.0.0.1") == socket.gethostbyaddr("127.0.0.1")
    assert R.getnameinfo(("127.0.0.1", 80), 0) == socket.getnameinfo(("127.0.0.1", 80), 0)
    with pytest.raises(socket.gaierror):
        R.getaddrinfo(BAD_NAME, 80)


def test_module_functions_use_hub_resolver():
    hub = get_hub()
    old = hub.resolver
    calls = []

    class Spy(BlockingResolver):
        def _run(self, func, *args):
            calls.append(func.__name__)
            return func(*args)

    hub.resolver = Spy(hub)
    try:
        assert R.gethostbyname("localhost") == "127.0.0.1"
        assert R.gethostbyname("127.0.0.1") == "127.0.0.1"  # literal: no lookup
    finally:
        hub.resolver = old
    assert calls == ["gethostbyname"]


def test_hub_resolver_default_is_thread_resolver():
    hub = get_hub()
    assert isinstance(hub.resolver, ThreadResolver)
    assert hub.resolver is hub.resolver and hub.resolver.hub is hub
    assert hub.resolver.pool is hub.threadpool
    assert Resolver is ThreadResolver


def test_resolver_class_names():
    assert resolver_class("thread") is ThreadResolver
    assert resolver_class("block") is BlockingResolver
    assert resolver_class("ares") is AresResolver
    with pytest.raises(ValueError):
        resolver_class("dns")


def test_config_names_the_resolver_classes():
    # the hub imports its resolver by these names (evloop.resolver is a layer above it)
    from evloop._config import RESOLVER_CLASSES, resolver_class_name
    from evloop.hub import _class_named
    assert set(RESOLVER_CLASSES) == {"thread", "block", "ares"}
    for value in RESOLVER_CLASSES:
        assert _class_named(resolver_class_name(value)) is resolver_class(value)
    message = "unknown resolver 'dns'; choose from thread, ares, block"
    with pytest.raises(ValueError, match=message):
        resolver_class_name("dns")
    with pytest.raises(ValueError, match=message):
        resolver_class("dns")


def test_hub_resolver_class_setting():
    from evloop.hub import Hub
    assert Hub.resolver_class is None   # None: the class EVLOOP_RESOLVER names

    class Spy(BlockingResolver):
        pass

    hub = get_hub()
    old = hub._resolver
    try:
        for setting, cls in (("evloop.resolver.BlockingResolver", BlockingResolver),
                             (Spy, Spy)):
            hub._resolver = None
            hub.resolver_class = setting
            resolver = hub.resolver
            assert type(resolver) is cls and resolver.hub is hub
            assert hub.resolver is resolver
            assert R.gethostbyname("127.0.0.1") == "127.0.0.1"
    finally:
        del hub.resolver_class
        hub._resolver = old


def test_config_resolver_values():
    assert Config(environ={}).resolver == "thread"
    assert Config(environ={"EVLOOP_RESOLVER": ""}).resolver == "thread"
    assert Config(environ={"EVLOOP_RESOLVER": " Ares "}).resolver == "ares"
    assert Config(environ={"EVLOOP_RESOLVER": "block"}).resolver == "block"
    with pytest.raises(ValueError, match="EVLOOP_RESOLVER"):
        Config(environ={"EVLOOP_RESOLVER": "dnspython"})


def run_script(code, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EVLOOP_")}
    full_env["PYTHONPATH"] = PKG_PARENT
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, cwd=PKG_PARENT, env=full_env)


def test_env_selects_resolver():
    code = """
        from evloop.hub import get_hub
        from evloop import resolver
        r = get_hub().resolver
        print(type(r).__name__, resolver.gethostbyname("localhost"))
    """
    for value, name in (("thread", "ThreadResolver"), ("block", "BlockingResolver")):
        proc = run_script(code, {"EVLOOP_RESOLVER": value})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [name, "127.0.0.1"]
    proc = run_script(code, {"EVLOOP_RESOLVER": "bogus"})
    assert proc.returncode != 0 and "EVLOOP_RESOLVER" in proc.stderr


def test_ares_without_pycares_is_a_clear_import_error():
    code = """
        import sys
        sys.modules["pycares"] = None   # as if not installed
        from evloop.hub import get_hub
        try:
            get_hub().resolver
        except ImportError as exc:
            print("ImportError:", exc)
    """
    proc = run_script(code, {"EVLOOP_RESOLVER": "ares"})
    assert proc.returncode == 0, proc.stderr
    assert "ImportError:" in proc.stdout and "pycares" in proc.stdout
    assert "EVLOOP_RESOLVER" in proc.stdout


# -- c-ares -------------------------------------------------------------------------------

@pytest.fixture
def ares():
    pytest.importorskip("pycares")
    resolver = AresResolver(get_hub(), timeout=1.0, tries=1)
    yield resolver
    resolver.close()


def test_ares_hosts_names(ares):
    for host in ("localhost", HOSTNAME):
        system = {sa[0] for *_, sa in _socket.getaddrinfo(host, 80, socket.AF_INET)}
        answer = ares.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM)
        assert {sa[0] for *_, sa in answer} == system
        assert all(e[:3] == (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
                   and e[4][1] == 80 for e in answer)
        assert ares.gethostbyname(host) == _socket.gethostbyname(host)
        name, aliases, addresses = ares.gethostbyname_ex(host)
        assert addresses == _socket.gethostbyname_ex(host)[2]


def test_ares_getaddrinfo_entries_like_system(ares):
    # without a socket type the system lists STREAM, DGRAM and RAW for each address
    answer = ares.getaddrinfo(HOSTNAME, "http", socket.AF_INET)
    assert answer == _socket.getaddrinfo(HOSTNAME, "http", socket.AF_INET)
    canon = ares.getaddrinfo(HOSTNAME, 80, socket.AF_INET, socket.SOCK_STREAM, 0,
                             socket.AI_CANONNAME)
    assert canon[0][3] == HOSTNAME


def test_ares_literals_and_none(ares):
    for host, port in (("127.0.0.1", 80), ("::1", 443), (None, 80)):
        assert ares.getaddrinfo(host, port) == _socket.getaddrinfo(host, port)
    assert ares.gethostbyname("10.0.0.7") == "10.0.0.7"


def test_ares_bad_name_raises_gaierror(ares):
    with pytest.raises(socket.gaierror) as info:
        ares.getaddrinfo(BAD_NAME, 80)
    assert info.value.errno in (socket.EAI_NONAME, socket.EAI_AGAIN)
    with pytest.raises(socket.gaierror):
        ares.gethostbyname(BAD_NAME)
    with pytest.raises(UnicodeError):  # as the stdlib
        ares.getaddrinfo("a..b", 80)


def test_ares_reverse_lookups(ares):
    name, aliases, addresses = ares.gethostbyaddr("127.0.0.1")
    assert name == _socket.gethostbyaddr("127.0.0.1")[0]
    assert addresses == ["127.0.0.1"]
    assert ares.gethostbyaddr("localhost")[0] == name
    assert ares.getnameinfo(("127.0.0.1", 80), 0) == _socket.getnameinfo(("127.0.0.1", 80), 0)
    assert ares.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICSERV) == (name, "80")
    # the sockaddr is checked by the system: same errors
    for bad in ((("localhost", 80), 0), (("127.0.0.1", 80, 0, 0), 0)):
        assert outcome(ares.getnameinfo, *bad) == outcome(_socket.getnameinfo, *bad)


def test_ares_unknown_address(ares):
    with pytest.raises(socket.herror):
        ares.gethostbyaddr("192.0.2.1")
    with pytest.raises(socket.gaierror):
        ares.getnameinfo(("192.0.2.1", 80), socket.NI_NAMEREQD)


def test_ares_concurrent_lookups_and_cleanup(ares):
    hosts = ["localhost", HOSTNAME] * 25
    greenlets = [spawn(ares.gethostbyname, h) for h in hosts]
    evloop.joinall(greenlets, timeout=WAIT, raise_error=True)
    assert [g.value for g in greenlets] == [_socket.gethostbyname(h) for h in hosts]
    assert ares._pending == 0 and not ares._timer.active


def test_ares_lookup_lets_others_run(ares):
    answer, _ticks = ticking(lambda: ares.gethostbyname_ex("localhost"))
    assert "127.0.0.1" in answer[2]


def test_ares_close(ares):
    assert ares.gethostbyname("localhost") == "127.0.0.1"
    ares.close()
    assert ares._watchers == {}
    with pytest.raises(socket.gaierror):
        ares.gethostbyname("localhost")
    ares.close()  # idempotent


def test_ares_from_another_thread_is_refused(ares):
    out = []

    def other():
        try:
            ares.gethostbyname("localhost")
        except InvalidThreadUseError as exc:
            out.append(exc)
        finally:
            hub = evloop.hub.get_hub_if_exists()
            if hub is not None:
                hub.destroy()

    t = threading.Thread(target=other)
    t.start()
    t.join(WAIT)
    assert len(out) == 1


def test_ares_selected_by_env():
    pytest.importorskip("pycares")
    code = """
        from evloop.hub import get_hub
        from evloop import resolver
        r = get_hub().resolver
        print(type(r).__name__, resolver.gethostbyname("localhost"),
              resolver.getaddrinfo("127.0.0.1", 80)[0][4])
        r.close()
    """
    proc = run_script(code, {"EVLOOP_RESOLVER": "ares"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["AresResolver", "127.0.0.1", "('127.0.0.1',", "80)"]
