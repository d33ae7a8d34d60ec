"""Hostile input at ``evloop.core``: every public entry point given malformed arguments.

Why it exists: the C glue sits between Python and libev, whose asserts are compiled out, so
a value that slips through (a truncated int, a name cut at an embedded NUL, a handler that
is not callable) becomes a wrong backend, memory corruption or a failure long after the
call. Each case below says what the call must do: raise a clear exception of the type the
nearest standard-library analogue raises — TypeError for a wrong type, ValueError for a bad
value, OverflowError for an int outside the C range (as ``os.fstat``, ``signal.signal``,
``os.waitpid`` do), OSError where the system refuses — or accept the value and keep
working (timers at infinity, negative delays). Never a crash, a hang or a silent
truncation.

What it must not do: install signal handlers, watch children or fork in the test process:
those cases run in one subprocess (``SUBPROCESS_CASES``), whose results the parametrised
test reads.
"""
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from evloop import core
from test_core import PKG_PARENT, _env

from _helpers import closed_fd

BIG = 2**64          # beyond every C integer type
INT_BEYOND = 2**31   # beyond a C int (fds, signal numbers, pids)


class Ctx:
    """What a case works on: a private loop, an open fd, a path, a watcher of each kind."""

    def __init__(self, tmp_path):
        self.loop = core.loop(default=False)
        self.a, self.b = socket.socketpair()
        self.fd = self.a.fileno()
        self.path = str(tmp_path / "watched")

    def close(self):
        self.loop.destroy()
        self.a.close()
        self.b.close()

    def watcher(self, kind):
        lp = self.loop
        return {"io": lambda: lp.io(self.fd, core.READ), "timer": lambda: lp.timer(1),
                "signal": lambda: lp.signal(signal.SIGUSR1), "idle": lp.idle,
                "prepare": lp.prepare, "check": lp.check, "async_": lp.async_,
                "stat": lambda: lp.stat(self.path), "fork": lp.fork}[kind]()


def _set_then_start(w, name, value):
    if name is not None:
        setattr(w, name, value)
    w.start(print)
    return w


class _RaisingBool:
    def __bool__(self):
        raise ZeroDivisionError("no truth here")


class _HandlerAttrNotCallable:
    handle_error = 5


class _Handler:
    def handle_error(self, context, type, value, tb):
        pass


KINDS = ["io", "timer", "signal", "idle", "prepare", "check", "async_", "stat", "fork"]
GLIBC_RESERVED = list(range(32, signal.SIGRTMIN)) if sys.platform.startswith("linux") else []

# (id, case(ctx), expected): an exception type the call must raise, or None when the
# value is valid and the call must succeed.
CASES = [
    # -- module functions ----------------------------------------------------------------
    (f"core.{name}(1)", lambda c, name=name: getattr(core, name)(1), TypeError)
    for name in ("time", "get_version", "get_header_version", "supported_backends",
                 "recommended_backends", "embeddable_backends")
] + [
    # -- core.loop(flags) --------------------------------------------------------------
    ("loop flags 2**32+2 (was: truncated to poll)", lambda c: core.loop(2**32 + 2), OverflowError),
    ("loop flags 2**64", lambda c: core.loop(BIG), OverflowError),
    ("loop flags 2**100", lambda c: core.loop(2**100), OverflowError),
    ("loop flags -1", lambda c: core.loop(-1), ValueError),
    ("loop flags -2**70", lambda c: core.loop(-(2**70)), ValueError),
    ("loop flags unknown bit 1<<30", lambda c: core.loop(1 << 30), ValueError),
    ("loop flags unknown bit 1<<31", lambda c: core.loop(1 << 31), ValueError),
    ("loop flags unknown backend bit 0x100", lambda c: core.loop(0x100), ValueError),
    ("loop flags 'poll\\0bogus' (was: poll)", lambda c: core.loop("poll\x00bogus"), ValueError),
    ("loop flags '\\0'", lambda c: core.loop("\x00"), ValueError),
    ("loop flags ['poll\\0x']", lambda c: core.loop(["poll\x00x"]), ValueError),
    ("loop flags 'bogus'", lambda c: core.loop("bogus"), ValueError),
    ("loop flags 'poll,bogus'", lambda c: core.loop("poll,bogus"), ValueError),
    ("loop flags ['poll', 'bogus']", lambda c: core.loop(["poll", "bogus"]), ValueError),
    ("loop flags lone surrogate", lambda c: core.loop("\ud800"), ValueError),
    ("loop flags b'poll'", lambda c: core.loop(b"poll"), TypeError),
    ("loop flags bytearray", lambda c: core.loop(bytearray(b"poll")), TypeError),
    ("loop flags 1.5", lambda c: core.loop(1.5), TypeError),
    ("loop flags ['poll', 5]", lambda c: core.loop(["poll", 5]), TypeError),
    ("loop flags object()", lambda c: core.loop(object()), TypeError),
    ("loop default raising __bool__", lambda c: core.loop(default=_RaisingBool()),
     ZeroDivisionError),
    ("loop extra argument", lambda c: core.loop(None, False, 3), TypeError),
    ("loop flags 'poll' (valid)", lambda c: core.loop("poll", default=False).destroy(), None),
    ("loop flags EVBACKEND_POLL|EVFLAG_NOINOTIFY (valid)",
     lambda c: core.loop(core.EVBACKEND_POLL | core.EVFLAG_NOINOTIFY, default=False).destroy(),
     None),
    # -- loop attributes and methods ---------------------------------------------------
    ("error_handler = 5 (was: TypeError later, inside run())",
     lambda c: setattr(c.loop, "error_handler", 5), TypeError),
    ("error_handler = 'x'", lambda c: setattr(c.loop, "error_handler", "x"), TypeError),
    ("error_handler = object()", lambda c: setattr(c.loop, "error_handler", object()),
     TypeError),
    ("error_handler with handle_error = 5",
     lambda c: setattr(c.loop, "error_handler", _HandlerAttrNotCallable()), TypeError),
    ("error_handler = callable (valid)", lambda c: setattr(c.loop, "error_handler", print),
     None),
    ("error_handler = handler object (valid)",
     lambda c: setattr(c.loop, "error_handler", _Handler()), None),
    ("error_handler = None (valid)", lambda c: setattr(c.loop, "error_handler", None), None),
    ("run(1, 2, 3)", lambda c: c.loop.run(1, 2, 3), TypeError),
    ("run(bogus=1)", lambda c: c.loop.run(bogus=1), TypeError),
    ("run(nowait=raising __bool__)", lambda c: c.loop.run(nowait=_RaisingBool()),
     ZeroDivisionError),
    ("break_('x')", lambda c: c.loop.break_("x"), TypeError),
    ("break_(2**64)", lambda c: c.loop.break_(BIG), OverflowError),
    ("break_(7)", lambda c: c.loop.break_(7), ValueError),
    ("break_(-1)", lambda c: c.loop.break_(-1), ValueError),
    ("now(1)", lambda c: c.loop.now(1), TypeError),
    ("update_now(1)", lambda c: c.loop.update_now(1), TypeError),
    ("ref(1)", lambda c: c.loop.ref(1), TypeError),
    ("reinit(1)", lambda c: c.loop.reinit(1), TypeError),
    ("handle_error(1)", lambda c: c.loop.handle_error(1), TypeError),
    ("closing_fd('3')", lambda c: c.loop.closing_fd("3"), TypeError),
    ("closing_fd(None)", lambda c: c.loop.closing_fd(None), TypeError),
    ("closing_fd(1.5)", lambda c: c.loop.closing_fd(1.5), TypeError),
    ("closing_fd()", lambda c: c.loop.closing_fd(), TypeError),
    ("run_callback()", lambda c: c.loop.run_callback(), TypeError),
    ("run_callback(5)", lambda c: c.loop.run_callback(5), TypeError),
    ("run_callback(None)", lambda c: c.loop.run_callback(None), TypeError),
    ("run_callback(f, kw=1)", lambda c: c.loop.run_callback(print, kw=1), TypeError),
    ("run_callback_threadsafe()", lambda c: c.loop.run_callback_threadsafe(), TypeError),
    ("run_callback_threadsafe(5)", lambda c: c.loop.run_callback_threadsafe(5), TypeError),
    ("callback handle args = 5", lambda c: setattr(c.loop.run_callback(print), "args", 5),
     TypeError),
    ("callback handle args = [1]",
     lambda c: setattr(c.loop.run_callback(print), "args", [1]), TypeError),
    ("del callback handle args", lambda c: delattr(c.loop.run_callback(print), "args"),
     AttributeError),
    # -- io ------------------------------------------------------------------------------
    ("io fd 'x'", lambda c: c.loop.io("x", core.READ), TypeError),
    ("io fd 1.0", lambda c: c.loop.io(1.0, core.READ), TypeError),
    ("io fd None", lambda c: c.loop.io(None, core.READ), TypeError),
    ("io fd b'3'", lambda c: c.loop.io(b"3", core.READ), TypeError),
    ("io fd -1", lambda c: c.loop.io(-1, core.READ), ValueError),
    ("io fd 2**31", lambda c: c.loop.io(INT_BEYOND, core.READ), OverflowError),
    ("io fd 2**40", lambda c: c.loop.io(2**40, core.READ), OverflowError),
    ("io fd 2**64", lambda c: c.loop.io(BIG, core.READ), OverflowError),
    ("io fd closed", lambda c: c.loop.io(closed_fd(), core.READ), OSError),
    ("io events 4", lambda c: c.loop.io(c.fd, 4), ValueError),
    ("io events -1", lambda c: c.loop.io(c.fd, -1), ValueError),
    ("io events 2**32+1", lambda c: c.loop.io(c.fd, 2**32 + 1), ValueError),
    ("io events 2**64", lambda c: c.loop.io(c.fd, BIG), OverflowError),
    ("io events 'r'", lambda c: c.loop.io(c.fd, "r"), TypeError),
    ("io events 1.0", lambda c: c.loop.io(c.fd, 1.0), TypeError),
    ("io events None", lambda c: c.loop.io(c.fd, None), TypeError),
    ("io.fd = 'x'", lambda c: setattr(c.watcher("io"), "fd", "x"), TypeError),
    ("io.fd = -3", lambda c: setattr(c.watcher("io"), "fd", -3), ValueError),
    ("io.fd = 2**40", lambda c: setattr(c.watcher("io"), "fd", 2**40), OverflowError),
    ("io.fd = closed, then start (checked there, as at io())",
     lambda c: _set_then_start(c.watcher("io"), "fd", closed_fd()), OSError),
    ("io.fd = on an active watcher", lambda c: _set_then_start(c.watcher("io"), None, None)
     .__setattr__("fd", c.fd), ValueError),
    ("io.events = 4", lambda c: setattr(c.watcher("io"), "events", 4), ValueError),
    ("io.events = 'x'", lambda c: setattr(c.watcher("io"), "events", "x"), TypeError),
    ("io.events = 2**64", lambda c: setattr(c.watcher("io"), "events", BIG), OverflowError),
    ("del io.events", lambda c: delattr(c.watcher("io"), "events"), AttributeError),
    ("io.start(f, pass_events=raising __bool__)",
     lambda c: c.watcher("io").start(print, pass_events=_RaisingBool()), ZeroDivisionError),
    # -- timer ---------------------------------------------------------------------------
    ("timer after 'x'", lambda c: c.loop.timer("x"), TypeError),
    ("timer after '1'", lambda c: c.loop.timer("1"), TypeError),
    ("timer after None", lambda c: c.loop.timer(None), TypeError),
    ("timer after 1j", lambda c: c.loop.timer(1j), TypeError),
    ("timer after NaN", lambda c: c.loop.timer(math.nan), ValueError),
    ("timer after 2**1024", lambda c: c.loop.timer(2**1024), OverflowError),
    ("timer repeat NaN", lambda c: c.loop.timer(0, math.nan), ValueError),
    ("timer repeat -1", lambda c: c.loop.timer(0, -1), ValueError),
    ("timer repeat -inf", lambda c: c.loop.timer(0, -math.inf), ValueError),
    ("timer repeat 'x'", lambda c: c.loop.timer(0, "x"), TypeError),
    ("timer.repeat = NaN", lambda c: setattr(c.watcher("timer"), "repeat", math.nan),
     ValueError),
    ("timer.repeat = -1", lambda c: setattr(c.watcher("timer"), "repeat", -1), ValueError),
    ("timer.repeat = 'x'", lambda c: setattr(c.watcher("timer"), "repeat", "x"), TypeError),
    ("del timer.repeat", lambda c: delattr(c.watcher("timer"), "repeat"), AttributeError),
    ("timer.after = 2 (read-only)", lambda c: setattr(c.watcher("timer"), "after", 2),
     AttributeError),
    ("timer.again(5)", lambda c: c.watcher("timer").again(5), TypeError),
    ("timer.start(f, update=raising __bool__)",
     lambda c: c.watcher("timer").start(print, update=_RaisingBool()), ZeroDivisionError),
    ("timer after inf (valid: never fires)", lambda c: c.loop.timer(math.inf), None),
    ("timer after -inf (valid: fires at once)", lambda c: c.loop.timer(-math.inf), None),
    ("timer after 1e308 (valid)", lambda c: c.loop.timer(1e308), None),
    ("timer repeat inf (valid)", lambda c: c.loop.timer(0, math.inf), None),
    # -- signal (constructors only: nothing is installed) ----------------------------------
    ("signal 'x'", lambda c: c.loop.signal("x"), TypeError),
    ("signal 1.0", lambda c: c.loop.signal(1.0), TypeError),
    ("signal None", lambda c: c.loop.signal(None), TypeError),
    ("signal 0", lambda c: c.loop.signal(0), ValueError),
    ("signal -1", lambda c: c.loop.signal(-1), ValueError),
    ("signal NSIG", lambda c: c.loop.signal(signal.NSIG), ValueError),
    ("signal 100000", lambda c: c.loop.signal(100000), ValueError),
    ("signal SIGKILL", lambda c: c.loop.signal(signal.SIGKILL), ValueError),
    ("signal SIGSTOP", lambda c: c.loop.signal(signal.SIGSTOP), ValueError),
    ("signal 2**31", lambda c: c.loop.signal(INT_BEYOND), OverflowError),
    ("signal 2**64", lambda c: c.loop.signal(BIG), OverflowError),
    ("signal -2**64", lambda c: c.loop.signal(-BIG), OverflowError),
] + [
    (f"signal {n} (reserved by the C library: the watcher would never fire)",
     lambda c, n=n: c.loop.signal(n), OSError) for n in GLIBC_RESERVED
] + [
    # -- child: only on the default loop (the default-loop cases run in the subprocess) --
    ("child on a private loop", lambda c: c.loop.child(os.getpid()), TypeError),
    # -- stat ----------------------------------------------------------------------------
    ("stat None", lambda c: c.loop.stat(None), TypeError),
    ("stat 5", lambda c: c.loop.stat(5), TypeError),
    ("stat 'a\\0b'", lambda c: c.loop.stat("a\x00b"), ValueError),
    ("stat b'a\\0b'", lambda c: c.loop.stat(b"a\x00b"), ValueError),
    ("stat lone surrogate", lambda c: c.loop.stat("\ud800"), ValueError),
    ("stat interval 'x'", lambda c: c.loop.stat(c.path, "x"), TypeError),
    ("stat interval NaN", lambda c: c.loop.stat(c.path, math.nan), ValueError),
    ("stat interval inf (valid)", lambda c: c.loop.stat(c.path, math.inf).start(print), None),
    ("stat interval -1 (valid: libev's minimum)",
     lambda c: c.loop.stat(c.path, -1).start(print), None),
    ("stat path of 100000 chars (valid: does not exist)",
     lambda c: c.loop.stat("x" * 100000).start(print), None),
]

# the same for every kind of watcher
for _kind in KINDS:
    def _factory(c, kind=_kind, **kw):
        if kind == "io":
            return c.loop.io(c.fd, core.READ, **kw)
        if kind == "stat":
            return c.loop.stat(c.path, **kw)
        if kind == "signal":
            return c.loop.signal(signal.SIGUSR1, **kw)
        return getattr(c.loop, kind)(**kw)
    CASES += [
        (f"{_kind}(priority='x')", lambda c, f=_factory: f(c, priority="x"), TypeError),
        (f"{_kind}(priority=1.5)", lambda c, f=_factory: f(c, priority=1.5), TypeError),
        (f"{_kind}(priority=3)", lambda c, f=_factory: f(c, priority=3), ValueError),
        (f"{_kind}(priority=-3)", lambda c, f=_factory: f(c, priority=-3), ValueError),
        (f"{_kind}(priority=2**64)", lambda c, f=_factory: f(c, priority=BIG), OverflowError),
        (f"{_kind}(ref=raising __bool__)", lambda c, f=_factory: f(c, ref=_RaisingBool()),
         ZeroDivisionError),
        (f"{_kind}(bogus=1)", lambda c, f=_factory: f(c, bogus=1), TypeError),
        (f"{_kind}.priority = 'x'",
         lambda c, k=_kind: setattr(c.watcher(k), "priority", "x"), TypeError),
        (f"{_kind}.priority = 3", lambda c, k=_kind: setattr(c.watcher(k), "priority", 3),
         ValueError),
        (f"{_kind}.priority = 2**64",
         lambda c, k=_kind: setattr(c.watcher(k), "priority", BIG), OverflowError),
        (f"del {_kind}.priority", lambda c, k=_kind: delattr(c.watcher(k), "priority"),
         AttributeError),
        (f"{_kind}.ref = raising __bool__",
         lambda c, k=_kind: setattr(c.watcher(k), "ref", _RaisingBool()), ZeroDivisionError),
        (f"del {_kind}.ref", lambda c, k=_kind: delattr(c.watcher(k), "ref"), AttributeError),
        (f"{_kind}.callback = 5", lambda c, k=_kind: setattr(c.watcher(k), "callback", 5),
         TypeError),
        (f"{_kind}.args = 5", lambda c, k=_kind: setattr(c.watcher(k), "args", 5), TypeError),
        (f"{_kind}.args = [1]", lambda c, k=_kind: setattr(c.watcher(k), "args", [1]),
         TypeError),
        (f"{_kind}.feed('x')", lambda c, k=_kind: c.watcher(k).feed("x"), TypeError),
        (f"{_kind}.feed(2**64)", lambda c, k=_kind: c.watcher(k).feed(BIG), OverflowError),
        (f"{_kind}.feed() without a callback", lambda c, k=_kind: c.watcher(k).feed(),
         ValueError),
        (f"{_kind}.stop(1)", lambda c, k=_kind: c.watcher(k).stop(1), TypeError),
    ]
    if _kind != "signal":   # starting a signal watcher installs a handler: subprocess
        CASES += [
            (f"{_kind}.start(5)", lambda c, k=_kind: c.watcher(k).start(5), TypeError),
            (f"{_kind}.start()", lambda c, k=_kind: c.watcher(k).start(), TypeError),
            (f"{_kind}.start(None)", lambda c, k=_kind: c.watcher(k).start(None), TypeError),
        ]


@pytest.fixture
def ctx(tmp_path):
    c = Ctx(tmp_path)
    yield c
    c.close()


def _check(outcome, expected):
    """outcome: None (returned) or (exception type name, its MRO names, message)."""
    if expected is None:
        assert outcome is None, f"must be accepted, raised {outcome}"
        return
    assert outcome is not None, f"accepted; must raise {expected.__name__}"
    name, mro, message = outcome
    assert expected.__name__ in mro, f"raised {name}: {message}; must raise {expected.__name__}"
    assert message, f"{name} without a message"


def _outcome(func, *args):
    try:
        func(*args)
    except Exception as exc:  # noqa: BLE001 - the point is to see what comes out
        return (type(exc).__name__, [k.__name__ for k in type(exc).__mro__], str(exc))
    return None


@pytest.mark.parametrize("case, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(ctx, case, expected):
    _check(_outcome(case, ctx), expected)


def test_bad_input_on_a_destroyed_loop(ctx):
    # the loop check comes first: whatever else is wrong, a destroyed loop says so
    w = ctx.watcher("timer")
    ctx.loop.destroy()
    for func in (lambda: ctx.loop.io(-1, 4), lambda: ctx.loop.timer(math.nan),
                 lambda: ctx.loop.signal(0), lambda: ctx.loop.run_callback(5),
                 lambda: ctx.loop.run(), lambda: w.start(print)):
        with pytest.raises(ValueError, match="destroyed"):
            func()


def test_error_handler_refused_at_assignment_keeps_the_previous_one(ctx):
    handler = _Handler()
    ctx.loop.error_handler = handler
    with pytest.raises(TypeError, match="error_handler"):
        ctx.loop.error_handler = 5
    assert ctx.loop.error_handler is handler


def test_timers_at_the_edges_run_and_never_hang(ctx):
    lp = ctx.loop
    fired = []
    never = lp.timer(math.inf)
    never.start(fired.append, "inf")
    at_once = lp.timer(-math.inf)
    at_once.start(fired.append, "-inf")
    once_then_never = lp.timer(0, math.inf)
    once_then_never.start(fired.append, "repeat inf")
    guard = lp.timer(0.2, ref=False)
    guard.start(lp.break_, core.EVBREAK_ALL)
    lp.run()                        # only the guard ends it: the inf timers stay active
    assert sorted(fired) == ["-inf", "repeat inf"]
    assert never.active and once_then_never.active and not at_once.active
    assert never.remaining == math.inf
    never.stop()
    once_then_never.stop()
    guard.stop()


# -- what needs a subprocess: signal handlers, the default loop's children, fork -----------

SUBPROCESS_CASES = r'''
import json, math, os, signal, sys
from evloop import core
BIG = 2**64
results = {}
def outcome(name, func):
    try:
        func()
    except Exception as exc:
        results[name] = (type(exc).__name__, [k.__name__ for k in type(exc).__mro__], str(exc))
    else:
        results[name] = None
lp = core.loop(default=False)
w = lp.signal(signal.SIGUSR1)
outcome("signal.start(5)", lambda: w.start(5))
outcome("signal.start()", lambda: w.start())
outcome("signal.start(None)", lambda: w.start(None))
outcome("signal handler untouched", lambda: None if signal.getsignal(signal.SIGUSR1)
        is signal.SIG_DFL else 1 / 0)
dl = core.loop(default=True)
outcome("child 'x'", lambda: dl.child("x"))
outcome("child 1.0", lambda: dl.child(1.0))
outcome("child -1", lambda: dl.child(-1))
outcome("child 2**31", lambda: dl.child(2**31))
outcome("child 2**64", lambda: dl.child(BIG))
outcome("child trace raising __bool__", lambda: dl.child(0, Raising()))
c = dl.child(0)
outcome("child.start(5)", lambda: c.start(5))
outcome("child.rpid = 'x'", lambda: setattr(c, "rpid", "x"))
outcome("child.rpid = 2**40 (was: truncated)", lambda: setattr(c, "rpid", 2**40))
outcome("child.rstatus = 2**40 (was: truncated)", lambda: setattr(c, "rstatus", 2**40))
outcome("del child.rpid (was: set to -1)", lambda: delattr(c, "rpid"))
outcome("child.rpid = 5 (valid)", lambda: setattr(c, "rpid", 5))
f = dl.fork()
outcome("fork.start(5)", lambda: f.start(5))
outcome("fork(priority=9)", lambda: dl.fork(priority=9))
# a fork with bad input pending in the parent: the child's loop still works
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    t = dl.timer(0.01)
    t.start(lambda: None)
    dl.run()
    os._exit(0)
_, status = os.waitpid(pid, 0)
outcome("child of fork runs its loop", lambda: None if os.waitstatus_to_exitcode(status) == 0
        else 1 / 0)
print(json.dumps(results))
'''.replace("Raising()", "type('R', (), {'__bool__': lambda s: 1 / 0})()")

SUBPROCESS_EXPECTED = {
    "signal.start(5)": TypeError,
    "signal.start()": TypeError,
    "signal.start(None)": TypeError,
    "signal handler untouched": None,
    "child 'x'": TypeError,
    "child 1.0": TypeError,
    "child -1": ValueError,
    "child 2**31": OverflowError,
    "child 2**64": OverflowError,
    "child trace raising __bool__": ZeroDivisionError,
    "child.start(5)": TypeError,
    "child.rpid = 'x'": TypeError,
    "child.rpid = 2**40 (was: truncated)": OverflowError,
    "child.rstatus = 2**40 (was: truncated)": OverflowError,
    "del child.rpid (was: set to -1)": AttributeError,
    "child.rpid = 5 (valid)": None,
    "fork.start(5)": TypeError,
    "fork(priority=9)": ValueError,
    "child of fork runs its loop": None,
}


@pytest.fixture(scope="module")
def subprocess_results():
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c",
                           textwrap.dedent(SUBPROCESS_CASES)], capture_output=True, text=True,
                          timeout=60, cwd=PKG_PARENT, env=_env())
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", list(SUBPROCESS_EXPECTED))
def test_bad_input_in_a_subprocess(subprocess_results, name):
    _check(subprocess_results[name], SUBPROCESS_EXPECTED[name])

