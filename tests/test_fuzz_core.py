"""Stateful fuzzing of evloop.core: loops and watchers driven in random orders.

Why it exists: the C glue promises that no sequence of calls on loops, watchers and
callback handles crashes the process, hangs, or raises anything but an ordinary Python
exception with a message — including calls made from inside callbacks while libev is
dispatching (stop/close/start other watchers, feed, break, destroy the running loop, run
a loop re-entrantly). A hypothesis RuleBasedStateMachine keeps a model of what every
watcher, loop and queued callback should be doing and checks the real objects against it
after every step and inside every callback.

What it must not do: depend on timing for its verdicts (timers are checked for "never
early", never for "on time"), leave loops, fds, threads, processes or signal handlers
behind, or touch the thread's hub (the machines use private loops; the one that uses the
default loop runs in a fresh interpreter).

Runs: a small derandomized CI profile by default; EVLOOP_FUZZ_EXAMPLES=N raises the
number of examples per machine for long local runs (see docs/reliability.md).
"""
import faulthandler
import gc
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, rule,
                                 run_state_machine_as_test)

from evloop import core

# each machine runs for seconds: skipped by -m "not slow" (conftest.py)
pytestmark = pytest.mark.slow

# -- settings ---------------------------------------------------------------------------------

_LONG = int(os.environ.get("EVLOOP_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(ci_examples: int, steps: int) -> settings:
    """The CI profile: derandomized, no example database, a fixed modest count;
    EVLOOP_FUZZ_EXAMPLES=N for a long run (EVLOOP_FUZZ_RANDOM=1: a fresh random seed)."""
    return settings(
        max_examples=_LONG or ci_examples,
        stateful_step_count=steps,
        derandomize=not os.environ.get("EVLOOP_FUZZ_RANDOM"),
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


# An example must finish well within this; re-armed per example, so a long run is not cut
# by the conftest's per-test watchdog, while a hang still dumps every stack and exits.
EXAMPLE_WATCHDOG = 60


def arm_stderr_watchdog(seconds: float) -> None:
    """The watchdog of the __main__ runners; under pytest the machines use conftest's,
    which writes where pytest's output capture cannot swallow the dump."""
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)


# What the machines did, summed over examples (printed by the __main__ runner).
STATS = Counter()


class FuzzError(Exception):
    """Raised on purpose by fuzzed callbacks (and error handlers)."""


CLEAR_ERRORS = (ValueError, TypeError, OSError, RuntimeError, OverflowError)


def check_clear(exc: BaseException, what: str) -> None:
    """An error evloop raised must be an ordinary exception type with a message."""
    if isinstance(exc, SystemError) or not isinstance(exc, CLEAR_ERRORS):
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc!r}") from exc
    if not str(exc):
        raise AssertionError(f"{what} raised {type(exc).__name__} without a message") from exc


SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
READ, WRITE = core.READ, core.WRITE
# Slack for "a timer never fires early": loop.now() is wall-clock time, which libev derives
# from the monotonic clock with an offset it re-reads now and then (two clock reads that a
# busy machine can pull milliseconds apart). Catches timers firing grossly early.
EPS = 0.05

LOOP_FLAGS = [None, "epoll", "poll", "select", "noinotify", "epoll,forkcheck", "bogus",
              "linuxaio", core.EVBACKEND_POLL, -1, ["poll", "noenv"], 3.5]
TIMER_AFTER = [0.0, 0.0005, 0.002, 0.01, 1000.0, -1.0, float("inf")]
TIMER_REPEAT = [0.0, 0.0005, 0.003, float("inf")]
PRIORITIES = [None, -2, -1, 0, 1, 2, 3, -3, "1"]  # the new op draws None most often


# -- the model --------------------------------------------------------------------------------

class LoopRec:
    def __init__(self, loop, default):
        self.loop = loop
        self.default = default
        self.state = "alive"          # alive | destroy_pending | destroyed
        self.handler = "record"       # record | raise | callable
        self.ref_offset = 0           # loop.ref() minus loop.unref() calls
        self.reinit = False           # reinit() called: fork watchers may fire here
        self.guards = set()           # ids of the fuzzer's own guard timers

    @property
    def usable(self):
        return self.state != "destroyed"


class WRec:
    """What one watcher should be doing."""

    def __init__(self, kind, w, lr):
        self.kind = kind
        self.w = w
        self.loop = lr
        self.active = False
        self.fed = False               # pending because of feed()
        self.sent = False              # async: send() not yet handled (None: unknown)
        self.closed = False
        self.tainted = False           # io whose fd was closed under it: state unknown
        self.fd_closed = False         # io: start() may raise OSError(EBADF)
        self.racy = False              # async: sent from a thread at an unknown moment
        self.expired_restarted = False # timer: see _start
        self.has_callback = False
        self.pass_events = False
        self.fires = 0
        self.cancels = 0               # stop/close/destroy count, for liveness checks
        self.actions = ()
        self.due = None                # timer: loop time before which it must not fire
        self.sock = None               # io: the watched socket/fd and its peer
        self.peer = None
        self.fd = None

    def __repr__(self):
        return f"<WRec {self.kind} active={self.active} fed={self.fed} closed={self.closed}>"


class CbRec:
    def __init__(self, handle, lr, actions):
        self.handle = handle
        self.loop = lr
        self.actions = actions
        self.pending = True
        self.ran = 0
        self.cancels = 0


# -- strategies -------------------------------------------------------------------------------

IDX = st.integers(0, 15)


def op_strategy(kinds, depth, top_level, fork=False):
    """One operation. depth > 0: start/run_callback carry callback actions. Weights (the
    repeat counts) favour making, starting, feeding and running watchers, so that most
    examples have callbacks firing and acting."""
    actions = st.lists(op_strategy(kinds, depth - 1, False), max_size=3) if depth > 0 \
        else st.just([])
    new = st.tuples(st.just("new"), st.sampled_from(kinds), IDX, IDX, st.integers(0, 7),
                    st.booleans(), st.sampled_from(PRIORITIES))
    start = st.tuples(st.just("start"), IDX, actions, st.integers(0, 3))
    run = st.tuples(st.just("run"), IDX, st.sampled_from(["nowait", "once", "nowait", "once",
                                                          "full"]))
    feed = st.tuples(st.just("feed"), IDX, st.sampled_from([None, core.CUSTOM, READ, 0,
                                                             1 << 40]))
    ops = {
        "new": (4, new), "start": (6, start), "run": (4, run), "feed": (2, feed),
        "stop": (1, st.tuples(st.just("stop"), IDX)),
        "close": (1, st.tuples(st.just("close"), IDX)),
        "priority": (1, st.tuples(st.just("priority"), IDX, st.sampled_from(PRIORITIES[1:]))),
        "ref": (1, st.tuples(st.just("ref"), IDX, st.booleans())),
        "again": (1, st.tuples(st.just("again"), IDX, st.booleans())),
        "repeat": (1, st.tuples(st.just("repeat"), IDX, st.sampled_from(TIMER_REPEAT + [-1.0]))),
        "events": (1, st.tuples(st.just("events"), IDX,
                                st.sampled_from([0, READ, WRITE, READ | WRITE, 4]))),
        "set_callback": (1, st.tuples(st.just("set_callback"), IDX, st.integers(0, 2))),
        "set_args": (1, st.tuples(st.just("set_args"), IDX, st.integers(0, 2))),
        "send": (3, st.tuples(st.just("send"), IDX, st.booleans())),
        "run_callback": (2, st.tuples(st.just("run_callback"), IDX, actions, st.booleans())),
        "cb_stop": (1, st.tuples(st.just("cb_stop"), IDX)),
        "readable": (2, st.tuples(st.just("readable"), IDX)),
        "drain": (1, st.tuples(st.just("drain"), IDX)),
        "close_fd": (1, st.tuples(st.just("close_fd"), IDX)),
        "raise_signal": (1, st.tuples(st.just("raise_signal"), st.integers(0, 1))),
        "touch": (1, st.tuples(st.just("touch"), st.integers(0, 2))),
        "break": (1, st.tuples(st.just("break"), IDX,
                               st.sampled_from([core.EVBREAK_ONE, core.EVBREAK_ALL,
                                                core.EVBREAK_CANCEL, 7]))),
        "loop_ref": (1, st.tuples(st.just("loop_ref"), IDX, st.booleans())),
        "handler": (1, st.tuples(st.just("handler"), IDX,
                                 st.sampled_from(["record", "raise", "callable", "meddle"]))),
        "poke": (1, st.tuples(st.just("poke"), IDX)),
        "forget": (1, st.tuples(st.just("forget"), IDX)),
        "with": (1, st.tuples(st.just("with"), IDX)),
        "reinit": (1, st.tuples(st.just("reinit"), IDX)),
        "destroy": (1, st.tuples(st.just("destroy"), IDX)),
        "thread": (2, st.tuples(st.just("thread"), st.sampled_from(["send", "callback", "run"]),
                                IDX, st.integers(0, 2))),
    }
    if top_level:
        ops["new_loop"] = (1, st.tuples(st.just("new_loop"),
                                        st.sampled_from(range(len(LOOP_FLAGS))), st.booleans()))
        ops["gc"] = (1, st.tuples(st.just("gc")))
        if fork:
            ops["fork"] = (1, st.tuples(st.just("fork")))
    else:
        ops["raise"] = (2, st.tuples(st.just("raise")))
    # sampled_from over a weighted list of names, then that op's arguments (st.one_of does
    # not weight its branches evenly, and merges repeated ones)
    names = [name for name, (weight, _) in ops.items() for _ in range(weight)]
    return st.sampled_from(names).flatmap(lambda name: ops[name][1])


def seed_strategy(kinds):
    """Watchers made and started on the first loop before the steps, so that most examples
    have callbacks firing from their first run."""
    return st.lists(st.tuples(st.sampled_from(kinds), IDX,
                              st.lists(op_strategy(kinds, 1, False), max_size=3),
                              st.integers(0, 3)), min_size=1, max_size=6)


# -- the machine ------------------------------------------------------------------------------

class CoreMachine(RuleBasedStateMachine):
    """Base: private loops only. Subclasses set the kinds and what the default loop may do."""

    USE_DEFAULT = False
    arm_watchdog = staticmethod(arm_stderr_watchdog)
    MAX_LOOPS = 4
    MAX_WATCHERS = 16
    MAX_CALLBACKS = 24

    def __init__(self):
        super().__init__()
        self.arm_watchdog(EXAMPLE_WATCHDOG)
        self.loops = []           # LoopRec, destroyed ones included (ops on them must fail)
        self.all_loops = []       # every loop ever made, for teardown
        self.watchers = []        # WRec
        self.forgotten = []       # WRec no longer addressable (still checked when they fire)
        self.callbacks = []       # CbRec
        self.failures = []        # assertion failures caught where they cannot propagate
        self.running = []         # LoopRec of each run() in progress, outermost first
        self.depth = 0            # callback nesting
        self.threads = []         # (thread, box of its exception)
        self.model_lock = threading.Lock()
        self.fds = []             # raw fds (pipes) to close at teardown
        self.socks = []
        self.children = []
        self.in_child = False
        self.spent = 0
        self.meddled = 0
        self.history = []         # ops applied, for a forked child's failure report
        self.sig_owner = {}       # signum -> (LoopRec, active watcher count)
        self.sig_seen = {s: 0 for s in SIGNALS}
        self.tmpdir = tempfile.mkdtemp(prefix="evloop-fuzz-")
        self.path = os.path.join(self.tmpdir, "watched")
        with open(self.path, "wb") as f:
            f.write(b"0")
        self.saved_handlers = {s: signal.signal(s, self._py_signal) for s in SIGNALS}
        # a raising error handler stops run() with the first exception of a batch; later
        # ones are reported as unraisable: they must be ours too
        self.saved_unraisablehook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        if self.USE_DEFAULT:
            # first, so that seeded watchers (child ones too) live on the default loop
            self._add_loop(core.loop(default=True), True)
        self._add_loop(core.loop(default=False), False)

    # -- helpers ------------------------------------------------------------------------------

    def _unraisable(self, info):
        STATS["unraisable " + info.exc_type.__name__] += 1
        if info.exc_type is not FuzzError:
            self.failures.append(AssertionError(f"unraisable {info.exc_type.__name__}: "
                                                f"{info.exc_value!r} in {info.object!r}"))

    def _py_signal(self, signum, frame):
        # Python's handler, in place whenever no libev watcher owns the signal
        self.sig_seen[signum] += 1

    def _add_loop(self, loop, default):
        for lr in self.loops:
            if lr.loop is loop:
                return lr
        lr = LoopRec(loop, default)
        loop.error_handler = self._make_handler(lr)
        self.loops.append(lr)
        self.all_loops.append(lr)
        return lr

    def _make_handler(self, lr):
        machine = self

        def handle(context, typ, value, tb):
            if typ is not FuzzError:
                machine.failures.append(value if value is not None else typ)
                return
            # an io watcher whose callback raised is stopped after this report (its fd
            # would stay ready and fail again on every iteration; docs/core.md)
            for rec in machine.watchers + machine.forgotten:
                if rec.w is context and rec.kind == "io":
                    machine._deactivate(rec)
            if lr.handler == "raise":
                raise value
            if lr.handler == "meddle":
                try:
                    machine._meddle(context)
                except AssertionError as exc:
                    machine.failures.append(exc)

        class Handler:
            def handle_error(self, context, typ, value, tb):
                handle(context, typ, value, tb)

        return handle if lr.handler == "callable" else Handler()

    def _meddle(self, context):
        """An error handler that changes what failed: stop, close or re-arg the watcher,
        or stop / re-arg the run_callback handle it is given as context."""
        self.meddled += 1
        how = self.meddled % 3
        if isinstance(context, core.callback):
            if how == 0:
                self.call("context.stop()", context.stop)
            else:
                args = context.args
                if not isinstance(args, tuple) or not args or not isinstance(args[-1], CbRec):
                    self.fail(f"the failed callback's handle shows args {args!r}")
                self.call("context.args = ...", lambda: setattr(context, "args", args))
            return
        for rec in self.watchers + self.forgotten:
            if rec.w is context:
                break
        else:
            self.fail(f"error reported for an unknown context {context!r}")
        if how == 0:
            self.call("context.stop()", context.stop)
            self._deactivate(rec)
        elif how == 1:
            self.call("context.close()", context.close)
            self._deactivate(rec)
            rec.closed = True
            rec.has_callback = False
        elif rec.has_callback:
            self.call("context.args = ...", lambda: setattr(context, "args", ("m", rec)))

    def pick(self, seq, i):
        return seq[i % len(seq)] if seq else None

    # Selectors: small indices (what hypothesis draws most) address live objects; the
    # largest ones address any, so closed watchers and destroyed loops are used too.
    def pick_l(self, i):
        live = [lr for lr in self.loops if lr.usable]
        return self.pick(live if live and i < 13 else self.loops, i)

    def pick_w(self, i):
        live = [r for r in self.watchers if not r.closed and r.loop.usable]
        return self.pick(live if live and i < 13 else self.watchers, i)

    def fail(self, msg):
        raise AssertionError(msg)

    def call(self, what, fn, must=None, may=()):
        """Run fn(). must: an exception class it has to raise; may: classes it may raise.
        Returns (True, result) or (False, exception)."""
        try:
            res = fn()
        except FuzzError:
            raise
        except AssertionError:
            raise
        except BaseException as exc:  # noqa: BLE001 - judged below
            STATS["raised " + type(exc).__name__] += 1
            check_clear(exc, what)
            if must is not None and isinstance(exc, must):
                return False, exc
            if may and isinstance(exc, may):
                return False, exc
            raise AssertionError(f"{what} raised unexpected {type(exc).__name__}: {exc}") \
                from exc
        if must is not None:
            self.fail(f"{what} succeeded but should have raised {must.__name__}")
        return True, res

    def _deactivate(self, rec, cancel=True):
        if rec.kind == "signal" and rec.active:
            lr, n = self.sig_owner[rec.signum]
            if n <= 1:
                del self.sig_owner[rec.signum]
            else:
                self.sig_owner[rec.signum] = (lr, n - 1)
        rec.active = False
        rec.fed = False
        rec.expired_restarted = False
        rec.tainted = rec.tainted and not cancel
        if cancel:
            rec.cancels += 1
            rec.tainted = False

    def _mark_destroyed(self, lr):
        if lr.state == "destroyed":
            return
        lr.state = "destroyed"
        for rec in self.watchers + self.forgotten:
            if rec.loop is lr:
                self._deactivate(rec)
                rec.sent = False
        with self.model_lock:
            for cb in self.callbacks:
                if cb.loop is lr and cb.pending:
                    cb.pending = False
                    cb.cancels += 1

    def _after_run(self, lr):
        if lr.state == "destroy_pending" and lr not in self.running:
            if not lr.loop.destroyed:
                self.fail("destroy() inside run() was not carried out when run() returned")
            self._mark_destroyed(lr)

    # -- callbacks ----------------------------------------------------------------------------

    def _fire(self, *args):
        """Every fuzzed watcher's callback: args end with its WRec."""
        rec = args[-1]
        try:
            self._check_fire(rec, args)
        except AssertionError as exc:
            self.failures.append(exc)
            return
        self._run_actions(rec.actions)

    # Callbacks that feed or restart each other can keep libev dispatching forever (a
    # livelock of the fuzzed program, not of evloop): past this many callbacks in one
    # step they only record that they ran.
    BUDGET = 300

    def _check_fire(self, rec, args):
        lr = rec.loop
        w = rec.w
        if lr.state == "destroyed" or lr.loop.destroyed:
            self.fail(f"{rec.kind} watcher fired on a destroyed loop")
        if rec.closed:
            self.fail(f"closed {rec.kind} watcher fired")
        if rec.kind == "fork":
            allowed = rec.fed or (rec.active and (lr.reinit or self.in_child))
        elif rec.kind == "async":
            allowed = rec.fed or (rec.active and (rec.sent is not False or rec.racy))
        else:
            allowed = rec.active or rec.fed or rec.tainted
        if not allowed:
            self.fail(f"{rec.kind} watcher fired while neither active nor fed: {rec}")
        if rec.pass_events and rec.kind == "io":
            events = args[0]
            if not isinstance(events, int) or events & ~(READ | WRITE | core.ERROR
                                                         | core.CUSTOM) and not rec.fed:
                self.fail(f"io callback got events {events!r}")
        was_fed = rec.fed
        rec.fed = False
        rec.fires += 1
        STATS["fired " + rec.kind] += 1
        if rec.kind == "timer":
            now = lr.loop.now()
            restarted = rec.expired_restarted
            rec.expired_restarted = False
            if not was_fed and not restarted and rec.due is not None and now < rec.due - EPS:
                self.fail(f"timer fired early: now={now} due={rec.due}")
            if was_fed:
                rec.active = w.active  # the feed, or the expiry too: either may be
            elif restarted:
                pass                   # the old expiry's callback; active again since
            elif w.repeat == 0:
                rec.active = False
            elif rec.due is not None:
                rec.due += w.repeat    # libev: at += repeat, or now if that is past
        if rec.kind == "async":
            # fired by the feed, a send() may still be pending (libev then calls it again)
            # or have been handled in the same call: unknown until the next send/start
            rec.sent = None if was_fed and rec.sent is not False else False
        if rec.tainted:
            rec.active = w.active
        if w.active != rec.active:
            self.fail(f"{rec.kind}.active is {w.active} in its callback, model {rec.active}")

    def _callback(self, cb):
        if cb.loop.state == "destroyed":
            self.failures.append(AssertionError("queued callback ran on a destroyed loop"))
            return
        if not cb.pending:
            self.failures.append(AssertionError("stopped or spent callback ran"))
            return
        cb.pending = False
        cb.ran += 1
        STATS["ran queued callback"] += 1
        self._run_actions(cb.actions)

    def _run_actions(self, actions):
        self.spent += 1
        if self.spent > self.BUDGET:
            return
        self.depth += 1
        try:
            for op in actions:
                if op[0] == "raise":
                    raise FuzzError("raised on purpose by a fuzzed callback")
                try:
                    self.apply(op)
                except AssertionError as exc:
                    self.failures.append(exc)
                    return
        finally:
            self.depth -= 1

    # -- the rule ---------------------------------------------------------------------------

    def apply(self, op):
        STATS[("in callback: " if self.depth else "") + op[0]] += 1
        self.history.append(("  " * self.depth) + repr(op)[:200])
        # gevent's contract: a watcher that stops (stop(), or libev stopping a one-shot
        # timer or an io watcher whose callback raised) forgets its callback and args;
        # tests/test_core.py checks that rule, the model follows the watcher here
        for r in self.watchers:
            if not r.closed:
                r.has_callback = r.w.callback is not None
        getattr(self, "op_" + op[0])(*op[1:])

    def op_new_loop(self, flags_i, default):
        if len(self.loops) >= self.MAX_LOOPS:
            return
        default = default and self.USE_DEFAULT
        flags = LOOP_FLAGS[flags_i]
        bad = flags in ("bogus", "linuxaio", -1)
        wrong_type = isinstance(flags, float)
        must = ValueError if bad else TypeError if wrong_type else None
        ok, loop = self.call(f"loop({flags!r}, default={default})",
                             lambda: core.loop(flags, default=default), must=must)
        if ok:
            if loop.default != default:
                self.fail("loop(default=...) ignored")
            self._add_loop(loop, default)

    def op_new(self, kind, li, a, bad, ref, priority):
        """Make a watcher of `kind`; `bad` == 7 passes an invalid argument of that kind."""
        if len(self.watchers) >= self.MAX_WATCHERS:
            return
        self._new(kind, self.pick_l(li), a, bad == 7, ref, priority)

    def _new(self, kind, lr, a, bad, ref=True, priority=None):
        loop = lr.loop
        extra = {}
        if priority is not None:
            extra["priority"] = priority
        if not ref:
            extra["ref"] = False
        prio_must = None
        if priority == "1":
            prio_must = TypeError
        elif priority is not None and not -2 <= priority <= 2:
            prio_must = ValueError
        must = None  # what the kind's own arguments make it raise (checked first)
        rec_extra = {}
        if kind == "io":
            variant = a % 7
            tainted = False
            if variant in (0, 3):
                s1, s2 = socket.socketpair()
                s1.setblocking(False)
                s2.setblocking(False)
                self.socks += [s1, s2]
                fd, sock, peer = s1.fileno(), s1, s2
            elif variant in (1, 2):
                r, wfd = os.pipe()
                os.set_blocking(r, False)
                os.set_blocking(wfd, False)
                self.fds += [r, wfd]
                fd, sock, peer = (r, r, wfd) if variant == 1 else (wfd, wfd, r)
            elif variant == 4 or not lr.usable:
                # a regular file: epoll refuses it (EPERM) and libev reports it always ready
                fd = os.open(self.path if os.path.exists(self.path) else os.devnull,
                             os.O_RDONLY)
                self.fds.append(fd)
                sock = peer = None
            else:
                # a loop's own epoll fd (epoll_ctl: EINVAL, libev kills the watcher) or
                # another loop's (nested epoll): the watcher may stop by itself, and the
                # fd goes away when that loop is destroyed
                others = [o for o in self.loops if o.usable and o is not lr]
                target = lr if variant == 5 or not others else others[a % len(others)]
                fd = target.loop.fileno()
                if fd is None:
                    fd = os.open(os.devnull, os.O_RDONLY)
                    self.fds.append(fd)
                sock = peer = None
                tainted = True
            events = 8 if bad else [READ, WRITE, READ | WRITE, READ, 0][(a // 7) % 5]
            if bad:
                must = ValueError
            rec_extra = dict(sock=sock, peer=peer, fd=fd, tainted=tainted, fd_closed=tainted)
            make = lambda: loop.io(fd, events, **extra)  # noqa: E731
        elif kind == "timer":
            after = TIMER_AFTER[a % len(TIMER_AFTER)]
            repeat = TIMER_REPEAT[(a // 3) % len(TIMER_REPEAT)]
            if bad:
                after, repeat = [("1", 0.0), (float("nan"), 0.0), (0.0, -1.0)][a % 3]
                must = TypeError if after == "1" else ValueError
            make = lambda: loop.timer(after, repeat, **extra)  # noqa: E731
            rec_extra = dict(after=after)
        elif kind == "signal":
            signum = [signal.SIGKILL, 0, 100000][a % 3] if bad else SIGNALS[a % 2]
            if bad:
                must = ValueError
            make = lambda: loop.signal(signum, **extra)  # noqa: E731
            rec_extra = dict(signum=signum)
        elif kind == "stat":
            path = [self.path, self.path + ".missing", self.tmpdir][a % 3]
            interval = [0.0, 0.01][(a // 3) % 2]
            if bad:
                # (a negative interval is libev's minimum, as in gevent: not bad)
                path, interval = [("bad\0path", 0.0), ("bad\0path", 0.01)][a % 2]
                must = ValueError
            make = lambda: loop.stat(path, interval, **extra)  # noqa: E731
        elif kind == "child":
            pid = self._spawn_child(a) if a % 4 else 0
            if not lr.default:
                must = TypeError
            make = lambda: loop.child(pid, **extra)  # noqa: E731
        else:
            factory = {"async": loop.async_, "prepare": loop.prepare, "check": loop.check,
                       "idle": loop.idle, "fork": loop.fork}[kind]
            make = lambda: factory(**extra)  # noqa: E731
        may = ()
        if not lr.usable:
            must = ValueError  # the loop is checked before anything else
        elif must is None:
            must = prio_must
        elif prio_must is not None:
            may = (prio_must,)
        ok, w = self.call(f"loop.{kind}(...)", make, must=must, may=may)
        if not ok:
            return None
        rec = WRec(kind, w, lr)
        STATS["created " + kind] += 1
        for k, v in rec_extra.items():
            setattr(rec, k, v)
        if w.active or w.pending or w.closed:
            self.fail(f"new {kind} watcher not idle: {w!r}")
        if w.ref != ref:
            self.fail("ref= not applied")
        self.watchers.append(rec)
        return rec

    def _spawn_child(self, code):
        pid = os.fork()
        if pid == 0:
            os._exit(code % 3)
        self.children.append(pid)
        return pid

    def op_start(self, wi, actions, variant):
        rec = self.pick_w(wi)
        if rec is not None:
            self._start(rec, actions, variant)

    def _start(self, rec, actions, variant):
        w = rec.w
        lr = rec.loop
        kwargs = {}
        if rec.kind == "io" and variant:
            kwargs["pass_events"] = variant == 1
        if rec.kind == "timer" and variant:
            kwargs["update"] = [None, True, False][variant - 1]
        must = None
        may = ()
        if rec.closed or not lr.usable:
            must = ValueError
        elif rec.kind == "io" and rec.fd_closed:
            may = (OSError,)  # EBADF, unless the fd number was reused meanwhile
        elif rec.kind == "signal" and not rec.active:
            owner = self.sig_owner.get(rec.signum)
            if owner is not None and owner[0] is not lr:
                must = ValueError
        args = (rec,) if variant != 3 or rec.kind == "timer" else ("extra", rec)
        actually_active = lr.usable and w.active
        ok, _ = self.call(f"{rec.kind}.start()", lambda: w.start(self._fire, *args, **kwargs),
                          must=must, may=may)
        if not ok:
            return
        was_active = rec.active
        if rec.fd_closed:
            # its fd number was closed once: reused or closed again, libev may kill it
            rec.tainted = True
        if rec.kind == "timer" and was_active and not actually_active and not rec.tainted:
            # inside a dispatch: libev stopped this one-shot timer when it expired and its
            # callback is still pending; restarted now, it runs that callback while active
            rec.expired_restarted = True
        STATS["started " + rec.kind] += 1
        rec.actions = tuple(actions)
        rec.has_callback = True
        if "pass_events" in kwargs:
            rec.pass_events = kwargs["pass_events"]
        if rec.kind == "signal" and not was_active:
            owner = self.sig_owner.get(rec.signum)
            self.sig_owner[rec.signum] = (lr, (owner[1] if owner else 0) + 1)
        if rec.kind == "async" and not was_active:
            rec.sent = False
        if rec.kind == "timer" and not actually_active:
            rec.due = lr.loop.now() + rec.after
        rec.active = True

    def op_stop(self, wi):
        rec = self.pick_w(wi)
        if rec is None:
            return
        self.call(f"{rec.kind}.stop()", rec.w.stop)
        self._deactivate(rec)

    def op_close(self, wi):
        rec = self.pick_w(wi)
        if rec is None:
            return
        self.call(f"{rec.kind}.close()", rec.w.close)
        self._deactivate(rec)
        rec.closed = True
        rec.has_callback = False
        if rec.w.callback is not None or rec.w.args is not None:
            self.fail("close() kept the callback")

    def op_with(self, wi):
        rec = self.pick_w(wi)
        if rec is None:
            return
        with rec.w as same:
            if same is not rec.w:
                self.fail("watcher.__enter__ returned another object")
        self._deactivate(rec)
        rec.closed = True
        rec.has_callback = False

    def op_feed(self, wi, revents):
        rec = self.pick_w(wi)
        if rec is None:
            return
        must = None
        if revents is not None and revents >= 1 << 31:
            must = OverflowError  # argument parsing comes first
        elif rec.closed or not rec.loop.usable or not rec.has_callback:
            must = ValueError
        args = () if revents is None else (revents,)
        ok, _ = self.call(f"{rec.kind}.feed()", lambda: rec.w.feed(*args), must=must)
        if ok:
            rec.fed = True

    def op_priority(self, wi, p):
        rec = self.pick_w(wi)
        if rec is None:
            return
        w = rec.w
        busy = rec.loop.usable and (rec.active or rec.fed)
        may = ()
        if isinstance(p, str):
            must = TypeError
        elif not -2 <= p <= 2:
            must = ValueError
        elif self.depth or rec.tainted:
            # inside a callback other watchers may be pending on their own events
            must = None
            may = (ValueError,)
        elif busy:
            must = ValueError
        else:
            must = None
        ok, _ = self.call(f"{rec.kind}.priority = {p!r}", lambda: setattr(w, "priority", p),
                          must=must, may=may)
        if ok and w.priority != p:
            self.fail("priority not set")

    def op_ref(self, wi, value):
        rec = self.pick_w(wi)
        if rec is None:
            return
        self.call(f"{rec.kind}.ref = {value}", lambda: setattr(rec.w, "ref", value))
        if rec.w.ref != value:
            self.fail("ref not set")

    def op_again(self, wi, with_cb):
        rec = self.pick_w(wi)
        if rec is None or rec.kind != "timer":
            return
        w = rec.w
        must = None
        if rec.closed or not rec.loop.usable:
            must = ValueError
        elif not with_cb and not rec.has_callback:
            must = TypeError
        call = (lambda: w.again(self._fire, rec)) if with_cb else w.again
        ok, _ = self.call("timer.again()", call, must=must)
        if not ok:
            return
        if with_cb:
            rec.has_callback = True
            rec.actions = ()
        rec.fed = False  # ev_timer_again clears a pending event (an expiry's too)
        rec.expired_restarted = False
        if w.repeat > 0:
            rec.active = True
            rec.due = rec.loop.loop.now() + w.repeat
        else:
            self._deactivate(rec)

    def op_repeat(self, wi, value):
        rec = self.pick_w(wi)
        if rec is None or rec.kind != "timer":
            return
        must = ValueError if value < 0 else None
        ok, _ = self.call(f"timer.repeat = {value}", lambda: setattr(rec.w, "repeat", value),
                          must=must)
        if ok:
            rec.due = None  # libev may already have used the old repeat

    def op_events(self, wi, events):
        rec = self.pick_w(wi)
        if rec is None or rec.kind != "io":
            return
        must = ValueError if events & ~(READ | WRITE) else None
        ok, _ = self.call(f"io.events = {events}", lambda: setattr(rec.w, "events", events),
                          must=must)
        if ok and rec.w.events != events:
            self.fail("io.events not set")

    def op_set_callback(self, wi, choice):
        rec = self.pick_w(wi)
        if rec is None:
            return
        w = rec.w
        active = rec.loop.usable and w.active
        if choice == 0:
            must = ValueError if active else None
            ok, _ = self.call("watcher.callback = None", lambda: setattr(w, "callback", None),
                              must=must)
            if ok:
                rec.has_callback = False
        elif choice == 1:
            ok, _ = self.call("watcher.callback = f", lambda: setattr(w, "callback", self._fire))
            if ok:
                rec.has_callback = True
                if w.args is None or w.args[-1:] != (rec,):
                    w.args = (rec,)
        else:
            self.call("watcher.callback = 42", lambda: setattr(w, "callback", 42),
                      must=TypeError)

    def op_set_args(self, wi, choice):
        rec = self.pick_w(wi)
        if rec is None:
            return
        if choice == 2:
            self.call("watcher.args = [...]", lambda: setattr(rec.w, "args", [rec]),
                      must=TypeError)
        elif rec.has_callback:
            args = (rec,) if choice == 0 else ("x", rec)
            self.call("watcher.args = (...)", lambda: setattr(rec.w, "args", args))

    def op_send(self, wi, from_thread):
        rec = self.pick_w(wi)
        if rec is None or rec.kind != "async":
            return
        must = None if rec.loop.usable else ValueError
        if not from_thread:
            ok, _ = self.call("async.send()", rec.w.send, must=must)
        else:
            box = []

            def send():
                try:
                    rec.w.send()
                except BaseException as exc:  # noqa: BLE001 - judged in the main thread
                    box.append(exc)

            t = threading.Thread(target=send)
            t.start()
            t.join()
            ok = not box
            if box:
                check_clear(box[0], "async.send() from a thread")
                if must is None or not isinstance(box[0], must):
                    self.fail(f"async.send() from a thread raised {box[0]!r}")
            elif must is not None:
                self.fail("async.send() from a thread on a destroyed loop succeeded")
        if ok:
            rec.sent = True

    def op_thread(self, what, i, delay):
        """From another thread, after `delay` seconds (while the main thread may be running
        or destroying the loop): async.send(), run_callback_threadsafe(), or run() of a
        loop the main thread is running (RuntimeError)."""
        delay = [0.0, 0.001, 0.003][delay]
        if what == "run":
            if not self.running:
                return
            lr = self.pick(self.running, i)
            box = []
            t = threading.Thread(target=self._in_thread, args=(box, lr.loop.run, True))
            t.start()
            t.join()
            if not box or not isinstance(box[0], RuntimeError):
                self.fail(f"run() of a loop running in another thread gave {box!r}")
            check_clear(box[0], "run() from a second thread")
            return
        if what == "send":
            rec = self.pick_w(i)
            if rec is None or rec.kind != "async":
                return
            rec.racy = True  # sent at an unknown moment: pending is not modelled any more
            fn = rec.w.send
        else:
            if sum(cb.pending for cb in self.callbacks) >= self.MAX_CALLBACKS:
                return
            lr = self.pick_l(i)
            cb = CbRec(None, lr, ())

            def fn():
                with self.model_lock:  # queued and listed together (see _mark_destroyed)
                    cb.handle = lr.loop.run_callback_threadsafe(self._callback, cb)
                    self.callbacks.append(cb)
        box = []
        t = threading.Thread(target=self._in_thread, args=(box, fn, False, delay))
        t.start()
        self.threads.append((t, box))

    @staticmethod
    def _in_thread(box, fn, nowait, delay=0.0):
        if delay:
            time.sleep(delay)
        try:
            fn(nowait) if nowait else fn()
        except BaseException as exc:  # noqa: BLE001 - judged in the main thread
            box.append(exc)

    def op_run_callback(self, li, actions, threadsafe):
        if sum(cb.pending for cb in self.callbacks) >= self.MAX_CALLBACKS:
            return
        lr = self.pick_l(li)
        must = None if lr.usable else ValueError
        cb = CbRec(None, lr, tuple(actions))
        meth = lr.loop.run_callback_threadsafe if threadsafe else lr.loop.run_callback
        ok, handle = self.call("loop.run_callback()", lambda: meth(self._callback, cb),
                               must=must)
        if ok:
            cb.handle = handle
            self.callbacks.append(cb)
            if not handle.pending:
                self.fail("a new callback handle is not pending")
        self.call("loop.run_callback(42)", lambda: meth(42), must=TypeError if lr.usable
                  else ValueError)

    def op_cb_stop(self, ci):
        cb = self.pick(self.callbacks, ci)
        if cb is None:
            return
        self.call("callback.stop()", cb.handle.stop)
        if cb.pending:
            cb.pending = False
            cb.cancels += 1
        if cb.handle.pending:
            self.fail("callback still pending after stop()")

    def _io_rec(self, wi):
        recs = [r for r in self.watchers if r.kind == "io"]
        return self.pick(recs, wi)

    def op_readable(self, wi):
        rec = self._io_rec(wi)
        if rec is None or rec.peer is None:
            return
        try:
            if isinstance(rec.peer, socket.socket):
                rec.peer.send(b"x")
            else:
                os.write(rec.peer, b"x")
        except OSError:
            pass  # closed or full: irrelevant here

    def op_drain(self, wi):
        rec = self._io_rec(wi)
        if rec is None or rec.sock is None:
            return
        try:
            if isinstance(rec.sock, socket.socket):
                rec.sock.recv(65536)
            else:
                os.read(rec.sock, 65536)
        except OSError:
            pass

    def op_close_fd(self, wi):
        rec = self._io_rec(wi)
        if rec is None or rec.sock is None:
            return
        if isinstance(rec.sock, socket.socket):
            rec.sock.close()
        else:
            os.close(rec.sock)
            self.fds.remove(rec.sock)
        rec.sock = rec.peer = None
        for other in self.watchers + self.forgotten:
            if other.kind == "io" and other.fd == rec.fd:
                other.tainted = other.fd_closed = True
                other.sock = other.peer = None

    def op_raise_signal(self, si):
        signal.raise_signal(SIGNALS[si])

    def op_touch(self, how):
        try:
            if how == 0:
                with open(self.path, "ab") as f:
                    f.write(b"x")
            elif how == 1:
                os.unlink(self.path)
            else:
                with open(self.path, "wb") as f:
                    f.write(b"y")
        except OSError:
            pass

    def op_break(self, li, how):
        lr = self.pick_l(li)
        must = ValueError if not lr.usable or how not in (0, 1, 2) else None
        self.call(f"loop.break_({how})", lambda: lr.loop.break_(how), must=must)

    def op_destroy(self, li):
        lr = self.pick_l(li)
        self.call("loop.destroy()", lr.loop.destroy)
        if lr.state == "destroyed":
            return
        if lr in self.running:
            lr.state = "destroy_pending"
            if lr.loop.destroyed:
                self.fail("destroy() inside run() freed the loop at once")
        else:
            if not lr.loop.destroyed:
                self.fail("destroy() left the loop alive")
            self._mark_destroyed(lr)
            for rec in self.watchers + self.forgotten:
                if rec.loop is lr and (rec.w.active or rec.w.pending):
                    self.fail(f"{rec.kind} watcher active after its loop was destroyed")
            if lr.loop.watcher_count != 0:
                self.fail("destroyed loop still holds watchers")

    def op_run(self, li, mode):
        self._run_loop(self.pick_l(li), mode)

    def _run_loop(self, lr, mode):
        if self.depth:
            if self.depth > 3:
                return
            mode = "nowait"
        loop = lr.loop
        if not lr.usable:
            self.call("loop.run()", loop.run, must=ValueError)
            return
        guard = None
        if mode != "nowait":
            # a run that nothing ends would hang: a repeating unreferenced timer breaks it
            guard = loop.timer(0.003, 0.003, ref=False)
            guard.start(loop.break_, core.EVBREAK_ALL)
            lr.guards.add(id(guard))
        expect_watchers = [(r, r.fires, r.cancels) for r in self.watchers + self.forgotten
                           if r.loop is lr and r.fed and r.has_callback]
        expect_cbs = [(c, c.cancels) for c in self.callbacks if c.loop is lr and c.pending]
        self.running.append(lr)
        raised = None
        try:
            loop.run(nowait=mode == "nowait", once=mode == "once")
        except FuzzError as exc:
            raised = exc
        except AssertionError:
            raise
        except BaseException as exc:  # noqa: BLE001
            check_clear(exc, "loop.run()")
            self.fail(f"loop.run() raised {exc!r}")
        finally:
            self.running.pop()
            if guard is not None:
                guard.close()
                lr.guards.discard(id(guard))
        self._after_run(lr)
        for r in self.watchers + self.forgotten:
            if r.loop is lr and r.fed and not r.has_callback:
                r.fed = False  # its event was dispatched to no callback
        if raised is not None:
            if self.depth:
                raise raised
            return
        if self.depth == 0 and lr.usable:
            # everything pending when run() started has run unless cancelled meanwhile
            for r, fires, cancels in expect_watchers:
                if r.cancels == cancels and r.fires == fires and not r.closed \
                        and r.has_callback and r.loop.usable:
                    self.fail(f"fed {r.kind} watcher did not fire during run({mode})")
            for c, cancels in expect_cbs:
                if c.cancels == cancels and c.pending and c.loop.usable:
                    self.fail(f"queued callback did not run during run({mode})")

    def op_loop_ref(self, li, up):
        lr = self.pick_l(li)
        if lr.usable and abs(lr.ref_offset + (1 if up else -1)) > 2:
            return
        must = None if lr.usable else ValueError
        ok, _ = self.call("loop.ref()/unref()", lr.loop.ref if up else lr.loop.unref, must=must)
        if ok:
            lr.ref_offset += 1 if up else -1

    def op_handler(self, li, mode):
        lr = self.pick_l(li)
        lr.handler = mode
        lr.loop.error_handler = self._make_handler(lr)

    def op_reinit(self, li):
        lr = self.pick_l(li)
        ok, _ = self.call("loop.reinit()", lr.loop.reinit,
                          must=None if lr.usable else ValueError)
        if ok:
            lr.reinit = True

    def op_poke(self, i):
        """Read every attribute and repr of a watcher, a loop and a callback handle."""
        rec = self.pick_w(i)
        if rec is not None:
            w = rec.w
            names = ["active", "pending", "closed", "priority", "ref", "callback", "args",
                     "loop"] + {
                "io": ["fd", "events", "events_str"],
                "timer": ["at", "remaining", "after", "repeat"],
                "signal": ["signum"], "child": ["pid", "rpid", "rstatus"],
                "stat": ["path", "interval", "attr", "prev"]}.get(rec.kind, [])
            for name in names:
                must = ValueError if name == "remaining" and not rec.loop.usable else None
                self.call(f"{rec.kind}.{name}", lambda: getattr(w, name), must=must)
            self.call("repr(watcher)", lambda: repr(w))
        lr = self.pick_l(i)
        for name in ["default", "destroyed", "polling", "sigchld_installed", "callback_count",
                     "watcher_count", "error_handler"]:
            self.call(f"loop.{name}", lambda: getattr(lr.loop, name))
        for name in ["iteration", "depth", "activecnt", "pendingcnt", "backend",
                     "backend_int"]:
            self.call(f"loop.{name}", lambda: getattr(lr.loop, name),
                      must=None if lr.usable else ValueError)
        for meth in ["now", "update_now", "fileno", "verify"]:
            self.call(f"loop.{meth}()", getattr(lr.loop, meth),
                      must=None if lr.usable else ValueError)
        self.call("loop.watchers()", lr.loop.watchers)
        self.call("repr(loop)", lambda: repr(lr.loop))
        cb = self.pick(self.callbacks, i)
        if cb is not None:
            self.call("repr(callback)", lambda: repr(cb.handle))
            self.call("callback.args", lambda: cb.handle.args)
            # gevent's contract: args stay set while the call runs, and may be replaced
            self.call("callback.args = ()", lambda: setattr(cb.handle, "args", (cb,)),
                      must=None if cb.handle.args is not None else ValueError)

    def op_forget(self, i):
        if self.watchers:
            rec = self.watchers.pop(i % len(self.watchers))
            self.forgotten.append(rec)

    def op_gc(self):
        gc.collect()

    def op_fork(self):
        if not self.USE_DEFAULT or self.depth:
            return  # only in the machine that runs in its own interpreter, between steps
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.alarm(20)
                self.in_child = True
                for lr in list(self.loops):
                    if lr.state == "alive":
                        self._run_loop(lr, "nowait")
                if self.failures:
                    raise self.failures[0]
                code = 0
            except BaseException:  # noqa: BLE001 - reported by the exit code
                traceback.print_exc()
                # the parent's falsifying example does not show what the child did
                print("forked child's ops (parent's, then its own):", *self.history[-80:],
                      sep="\n  ", file=sys.stderr)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            self.fail(f"forked child failed: wait status {status:#x}")

    def op_raise(self):
        raise FuzzError("raise outside a callback")  # never drawn at top level

    def seed_watchers(self, seed):
        self.spent = 0
        for kind, a, actions, variant in seed:
            rec = self._new(kind, self.loops[0], a, False)
            if rec is not None:
                self._start(rec, actions, variant)

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def no_failures(self):
        if self.failures:
            raise self.failures[0]

    @invariant()
    def model_matches(self):
        for rec in self.watchers + self.forgotten:
            w = rec.w
            if w.closed != rec.closed:
                self.fail(f"{rec.kind}.closed is {w.closed}, model {rec.closed}")
            if rec.tainted:
                continue
            if w.active != rec.active:
                self.fail(f"{rec.kind}.active is {w.active}, model {rec.active}: {w!r}")
            pending = rec.fed or (rec.kind == "async" and rec.sent and rec.loop.usable)
            if w.pending != pending and not rec.racy and rec.sent is not None:
                self.fail(f"{rec.kind}.pending is {w.pending}, model {pending}: {w!r}")
        for cb in self.callbacks:
            if cb.handle.pending != cb.pending:
                self.fail(f"callback.pending is {cb.handle.pending}, model {cb.pending}")
            if cb.ran > 1:
                self.fail("a queued callback ran twice")
        for lr in self.loops:
            if lr.loop.destroyed != (lr.state == "destroyed"):
                self.fail(f"loop.destroyed is {lr.loop.destroyed}, model {lr.state}")

    @invariant()
    def loop_bookkeeping(self):
        for lr in self.loops:
            if not lr.usable:
                if lr.loop.watcher_count or lr.loop.watchers():
                    self.fail("a destroyed loop lists watchers")
                continue
            listed = lr.loop.watchers()
            if len(listed) != lr.loop.watcher_count:
                self.fail("loop.watchers() and watcher_count disagree")
            for w in listed:
                if not (w.active or w.pending):
                    self.fail(f"the loop keeps a watcher that is neither active nor pending: "
                              f"{w!r}")
            ids = set(map(id, listed))
            for rec in self.watchers + self.forgotten:
                # (an async watcher's `pending` also covers a send() not yet handled, which
                # needs no reference)
                if rec.loop is lr and (rec.w.active or rec.fed) and id(rec.w) not in ids:
                    self.fail(f"active {rec.kind} watcher not kept by its loop")
            referenced = sum(1 for w in listed
                             if w.active and w.ref and id(w) not in lr.guards)
            if lr.loop.activecnt != referenced + lr.ref_offset:
                self.fail(f"loop.activecnt is {lr.loop.activecnt}, but {referenced} referenced "
                          f"watchers are active (ref offset {lr.ref_offset}): {listed}")

    # -- teardown -----------------------------------------------------------------------------

    def teardown(self):
        try:
            for t, box in self.threads:
                t.join()
                for exc in box:
                    check_clear(exc, "a call from another thread")
                    if not (isinstance(exc, ValueError) and "destroyed" in str(exc)):
                        self.fail(f"a call from another thread raised {exc!r}")
            for lr in self.all_loops:
                lr.loop.destroy()
                if not lr.loop.destroyed or lr.loop.watcher_count:
                    self.fail("teardown: destroy() left the loop alive")
            for rec in self.watchers + self.forgotten:
                if rec.w.active or rec.w.pending:
                    self.fail(f"teardown: {rec.kind} watcher active after destroy")
            if self.failures:
                raise self.failures[0]
        finally:
            for s in self.socks:
                s.close()
            for fd in self.fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            for pid in self.children:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass  # reaped by a child watcher
            for s, h in self.saved_handlers.items():
                signal.signal(s, h)
            sys.unraisablehook = self.saved_unraisablehook
            for name in os.listdir(self.tmpdir):
                os.unlink(os.path.join(self.tmpdir, name))
            os.rmdir(self.tmpdir)
            self.watchers = self.forgotten = self.callbacks = self.loops = []
            self.all_loops = []
            gc.collect()


KINDS = ["io", "timer", "prepare", "check", "idle", "async", "signal", "stat", "fork"]


class PrivateLoopMachine(CoreMachine):
    """Private loops in the test process: every watcher kind but child."""

    @initialize(seed=seed_strategy(KINDS))
    def seed(self, seed):
        self.seed_watchers(seed)

    @rule(op=op_strategy(KINDS, 2, True))
    def step(self, op):
        self.spent = 0
        self.apply(op)


class DefaultLoopMachine(CoreMachine):
    """Also the default loop (destroyed and recreated), child watchers and fork: run in a
    fresh interpreter, where no hub owns the default loop."""

    USE_DEFAULT = True

    @initialize(seed=seed_strategy(KINDS + ["child"]))
    def seed(self, seed):
        self.seed_watchers(seed)

    @rule(op=op_strategy(KINDS + ["child"], 2, True, fork=True))
    def step(self, op):
        self.spent = 0
        self.apply(op)


def test_private_loops_fuzz(_hang_watchdog, monkeypatch):
    monkeypatch.setattr(CoreMachine, "arm_watchdog", staticmethod(_hang_watchdog))
    run_state_machine_as_test(PrivateLoopMachine, settings=fuzz_settings(60, 40))


def test_default_loop_fuzz(_hang_watchdog):
    # its own interpreter: the default loop is destroyed and children are forked. The
    # child has its own per-example watchdog; this process waits at most `timeout`.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    timeout = None if _LONG else 300
    if timeout is None:
        faulthandler.cancel_dump_traceback_later()
    else:
        _hang_watchdog(timeout + 60)
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", __file__, "default"],
        capture_output=True, text=True, timeout=timeout, cwd=root, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "default"
    machine = {"default": DefaultLoopMachine, "private": PrivateLoopMachine}[which]
    t0 = time.monotonic()
    run_state_machine_as_test(machine, settings=fuzz_settings(30, 40))
    print(f"{machine.__name__}: {_LONG or 30} examples in {time.monotonic() - t0:.1f}s")
    if os.environ.get("EVLOOP_FUZZ_STATS"):
        for key, n in sorted(STATS.items()):
            print(f"  {key}: {n}")
