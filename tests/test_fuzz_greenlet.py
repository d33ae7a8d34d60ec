"""Stateful fuzzing of evloop's greenlet API: spawn, kill, join, Timeout, Event, Queue.

Why it exists: the greenlet layer promises that no order of spawning, killing (blocking or
not, with any exception), joining with or without timeouts, Timeout blocks, Event set/clear
and Queue put/get (blocking, non-blocking, with timeouts) crashes, hangs, loses or
duplicates a value, or raises anything but the documented exceptions. A hypothesis
RuleBasedStateMachine spawns greenlets that run random scripts of those operations on
shared Events and Queues while the test's main greenlet does the same between steps, and
checks after every step: dead greenlets stay dead with the same result, every greenlet
finishes with its own return value or an exception it was given (never a stray Timeout,
an AssertionError from the hub or a SystemError), queue items are delivered exactly once,
and errors reported to the hub are only the ones the scripts raised.

What it must not do: leave a greenlet, a watcher or a queued callback of its own behind
(teardown kills every greenlet and checks the hub's loop is back to where it was), or
depend on timing for a verdict (sleeps and timeouts are a few milliseconds, and only their
outcomes' consistency is checked).

Runs: a small derandomized CI profile by default; EVLOOP_FUZZ_EXAMPLES=N raises the
number of examples for long local runs (see docs/reliability.md).
"""
import faulthandler
import itertools
import os
import sys
import time
from collections import Counter

import pytest
from greenlet import GreenletExit, getcurrent
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, rule,
                                 run_state_machine_as_test)

import evloop
from evloop.event import AsyncResult, Event
from evloop.lock import BoundedSemaphore, Lock, Semaphore
from evloop.exceptions import ConcurrentObjectUseError, InvalidSwitchError, LoopExit
from evloop.hub import get_hub
from evloop.queue import Channel, Empty, Full, Queue
from evloop.timeout import Timeout

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


EXAMPLE_WATCHDOG = 60   # per example (re-armed), so long runs outlive conftest's watchdog


def arm_stderr_watchdog(seconds: float) -> None:
    """The watchdog of the __main__ runner; under pytest the machine uses conftest's,
    which writes where pytest's output capture cannot swallow the dump."""
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
MAIN_GUARD = 10.0       # the main greenlet never blocks longer than this in one step
STATS = Counter()


class FuzzError(Exception):
    """Raised on purpose by a fuzzed greenlet."""


class KillError(Exception):
    """Thrown into greenlets by kill()."""


class FuzzTimeout(Exception):
    """Base of the exceptions fuzzed Timeouts raise (a subclass per Timeout)."""


class GuardTimeout(BaseException):
    """The main greenlet blocked for MAIN_GUARD seconds: a hang."""


SLEEPS = [0, 0, 0.0005, 0.002, -1]
TIMEOUTS = [None, 0, 0.001, 0.003, -1]
QUEUES = [lambda: Queue(), lambda: Queue(1), lambda: Queue(2), lambda: Channel()]
# ref=False: a greenlet waiting on one must not keep the loop (and so the main greenlet's
# blocking calls) from ending with LoopExit
WATCHER_KINDS = ["timer", "idle", "async"]
LINKS = ["rawlink", "link", "link_value", "link_exception", "unlink"]
WATCHER_OPS = ["start", "stop", "close", "callback", "args", "feed", "send", "new"]


# -- the model --------------------------------------------------------------------------------

class GRec:
    """One spawned greenlet and what it may finish with."""

    _ids = itertools.count()

    def __init__(self, script):
        self.id = next(self._ids)
        self.script = script
        self.g = None
        self.marker = ("returned", self.id)
        self.raised = None            # the FuzzError its script raised
        self.kills = []               # exceptions (or classes) thrown at it by kill()
        self.seen_dead = False
        self.outcome = None           # (value, exception) once dead
        self.finished_script = False


# -- strategies -------------------------------------------------------------------------------

IDX = st.integers(0, 7)
WIDX = st.integers(0, 2)  # one of the raw watchers (WATCHER_KINDS)


def act_strategy(depth, in_greenlet):
    """One action of a greenlet's script (or of the main greenlet, between steps)."""
    inner = st.lists(act_strategy(depth - 1, in_greenlet), max_size=3) if depth > 0 \
        else st.just([])
    acts = {
        "sleep": (3, st.tuples(st.just("sleep"), st.sampled_from(range(len(SLEEPS))))),
        "wait_event": (3, st.tuples(st.just("wait_event"), IDX,
                                    st.sampled_from(range(len(TIMEOUTS))))),
        "set_event": (2, st.tuples(st.just("set_event"), IDX)),
        "clear_event": (1, st.tuples(st.just("clear_event"), IDX)),
        "put": (3, st.tuples(st.just("put"), IDX, st.booleans(),
                             st.sampled_from(range(len(TIMEOUTS))))),
        "get": (3, st.tuples(st.just("get"), IDX, st.booleans(),
                             st.sampled_from(range(len(TIMEOUTS))))),
        "join": (2, st.tuples(st.just("join"), IDX, st.sampled_from(range(len(TIMEOUTS))))),
        "gget": (2, st.tuples(st.just("gget"), IDX, st.booleans(),
                              st.sampled_from(range(len(TIMEOUTS))))),
        "kill": (3, st.tuples(st.just("kill"), IDX, st.sampled_from(range(4)), st.booleans(),
                              st.sampled_from(range(len(TIMEOUTS))))),
        "timeout": (2, st.tuples(st.just("timeout"), st.sampled_from(range(len(TIMEOUTS))),
                                 st.sampled_from(range(4)), inner)),
        "joinall": (1, st.tuples(st.just("joinall"), st.lists(IDX, max_size=3),
                                 st.sampled_from(range(len(TIMEOUTS))), st.booleans())),
        "killall": (1, st.tuples(st.just("killall"), st.lists(IDX, max_size=3),
                                 st.booleans())),
        "ar_set": (1, st.tuples(st.just("ar_set"), IDX, st.booleans())),
        "ar_get": (1, st.tuples(st.just("ar_get"), IDX, st.sampled_from(range(len(TIMEOUTS))))),
        "idle": (1, st.tuples(st.just("idle"))),
        "spawn": (2, st.tuples(st.just("spawn"), inner, st.sampled_from(range(3)))),
        # raw watchers of the hub's loop: greenlets block on them with hub.wait() while
        # others (and the main greenlet) start, stop, close, feed or re-target them
        "acquire": (2, st.tuples(st.just("acquire"), IDX, st.booleans(),
                                 st.sampled_from(range(len(TIMEOUTS))))),
        "release": (2, st.tuples(st.just("release"), IDX)),
        "with_sem": (1, st.tuples(st.just("with_sem"), IDX, inner)),
        "link": (2, st.tuples(st.just("link"), IDX, st.sampled_from(LINKS))),
        "iwait": (1, st.tuples(st.just("iwait"), st.lists(IDX, max_size=3),
                               st.sampled_from(range(len(TIMEOUTS))), st.integers(0, 3))),
        "with_timeout": (1, st.tuples(st.just("with_timeout"),
                                      st.sampled_from(range(len(TIMEOUTS))), st.booleans(),
                                      inner)),
        "hub_wait": (2, st.tuples(st.just("hub_wait"), WIDX)),
        "w_op": (3, st.tuples(st.just("w_op"), WIDX, st.sampled_from(WATCHER_OPS))),
    }
    if in_greenlet:
        acts["raise"] = (1, st.tuples(st.just("raise")))
    names = [name for name, (weight, _) in acts.items() for _ in range(weight)]
    return st.sampled_from(names).flatmap(lambda name: acts[name][1])


SCRIPT = st.lists(act_strategy(1, True), max_size=6)


# -- the machine ------------------------------------------------------------------------------

class GreenletMachine(RuleBasedStateMachine):
    arm_watchdog = staticmethod(arm_stderr_watchdog)
    MAX_GREENLETS = 24
    N_EVENTS = 3
    N_RESULTS = 2

    def __init__(self):
        super().__init__()
        self.arm_watchdog(EXAMPLE_WATCHDOG)
        self.hub = get_hub()
        self.loop = self.hub.loop
        # what the hub's loop holds before the example: it must hold the same after
        self.baseline = (self.loop.watcher_count, self.loop.activecnt)
        self.greenlets = []
        self.events = [Event() for _ in range(self.N_EVENTS)]
        self.event_set = [False] * self.N_EVENTS
        self.results = [AsyncResult() for _ in range(self.N_RESULTS)]
        self.result_values = [None] * self.N_RESULTS
        self.queues = []
        self.watchers = [self._new_watcher(kind) for kind in WATCHER_KINDS]
        # permits: counter == initial - held, whatever was killed or timed out
        self.sems = [Semaphore(2), BoundedSemaphore(1), Lock()]
        self.sem_initial = [2, 1, 1]
        self.held = [0] * len(self.sems)
        self.holders = Counter()      # (sem index, holder) -> permits it holds
        self.closed_watchers = []
        self.tokens = itertools.count()
        self.put_ok = set()           # tokens whose put() returned
        self.put_failed = set()       # tokens whose put() raised: never delivered
        self.put_interrupted = set()  # Channel puts interrupted: delivered at most once
        self.got = Counter()          # token -> times a get() returned it
        self.failures = []
        self.reported = []            # exception types the hub's handle_error received
        self.links = []               # (GRec, kind, calls list): see act_link
        self.saved_stream = self.hub.exception_stream
        self.hub.exception_stream = None
        self.hub.handle_error = self._handle_error

    def _handle_error(self, context, typ, value, tb):
        self.reported.append(typ)
        if typ is not None and not issubclass(typ, (FuzzError, KillError)):
            self.failures.append(AssertionError(
                f"hub.handle_error got {typ.__name__}: {value!r} from {context!r}"))
        type(self.hub).handle_error(self.hub, context, typ, value, tb)

    @initialize(queues=st.lists(st.sampled_from(range(len(QUEUES))), min_size=1, max_size=3),
                scripts=st.lists(SCRIPT, min_size=1, max_size=4))
    def setup(self, queues, scripts):
        self.queues = [QUEUES[i]() for i in queues]
        for script in scripts:
            self._spawn(script, 0)

    # -- helpers ------------------------------------------------------------------------------

    def fail(self, msg):
        raise AssertionError(msg)

    def pick(self, seq, i):
        return seq[i % len(seq)] if seq else None

    def _new_watcher(self, kind):
        loop = self.loop
        if kind == "timer":
            return loop.timer(0.001, ref=False)
        if kind == "idle":
            return loop.idle(ref=False)
        return loop.async_(ref=False)

    def _watcher_cb(self, *args):
        STATS["raw watcher callback"] += 1

    def _spawn(self, script, how):
        if len(self.greenlets) >= self.MAX_GREENLETS:
            return None
        rec = GRec(script)
        if how == 0:
            rec.g = evloop.spawn(self._body, rec)
        elif how == 1:
            rec.g = evloop.spawn_later(0.001, self._body, rec)
        else:
            rec.g = evloop.Greenlet(self._body, rec)
            rec.g.start()
        self.greenlets.append(rec)
        STATS["spawned"] += 1
        return rec

    def _body(self, rec):
        for act in rec.script:
            self.act(act, rec)
        rec.finished_script = True
        return rec.marker

    def _timeout(self, ti):
        return TIMEOUTS[ti]

    # -- actions (in a greenlet, or in the main greenlet with rec=None) -----------------------

    def act(self, act, rec):
        STATS[("main: " if rec is None else "") + act[0]] += 1
        getattr(self, "act_" + act[0])(rec, *act[1:])

    def act_sleep(self, rec, si):
        evloop.sleep(SLEEPS[si])

    def act_idle(self, rec):
        evloop.idle()

    def act_raise(self, rec):
        rec.raised = FuzzError(f"raised on purpose by greenlet {rec.id}")
        raise rec.raised

    def act_set_event(self, rec, ei):
        i = ei % self.N_EVENTS
        self.events[i].set()
        self.event_set[i] = True

    def act_clear_event(self, rec, ei):
        i = ei % self.N_EVENTS
        self.events[i].clear()
        self.event_set[i] = False

    def act_wait_event(self, rec, ei, ti):
        i = ei % self.N_EVENTS
        timeout = self._timeout(ti)
        was_set = self.event_set[i]
        res = self._blocking(rec, lambda: self.events[i].wait(timeout), timeout=timeout)
        if res is _RAISED:
            return
        if was_set and res is not True:
            self.fail(f"Event.wait() on a set event returned {res!r}")
        if res is False and timeout is None:
            self.fail("Event.wait() without a timeout returned False")
        if res not in (True, False):
            self.fail(f"Event.wait() returned {res!r}")

    def act_put(self, rec, qi, block, ti):
        if not self.queues:
            return
        q = self.pick(self.queues, qi)
        timeout = self._timeout(ti)
        token = next(self.tokens)
        try:
            res = self._blocking(rec, lambda: q.put(token, block, timeout), (Full,),
                                 timeout if block else None)
        except BaseException:
            # thrown in (kill, an enclosing Timeout). A Queue putter that gives up leaves
            # with its item; a Channel's item may have been taken by a get() before the
            # putter resumed: the exception still propagates (as in gevent)
            if isinstance(q, Channel):
                self.put_interrupted.add(token)
            else:
                self.put_failed.add(token)
            raise
        if res is _RAISED:
            self.put_failed.add(token)
        else:
            self.put_ok.add(token)

    def act_get(self, rec, qi, block, ti):
        if not self.queues:
            return
        q = self.pick(self.queues, qi)
        timeout = self._timeout(ti)
        res = self._blocking(rec, lambda: q.get(block, timeout), (Empty,),
                             timeout if block else None)
        if res is _RAISED:
            return
        if not isinstance(res, int):
            self.fail(f"get() returned {res!r}")
        self.got[res] += 1
        if self.got[res] > 1:
            self.fail(f"queue item {res} delivered twice")
        if res in self.put_failed:
            self.fail(f"queue item {res} delivered although its put() failed")

    def act_join(self, rec, gi, ti):
        target = self.pick(self.greenlets, gi)
        if target is None:
            return
        timeout = self._timeout(ti)
        res = self._blocking(rec, lambda: target.g.join(timeout), timeout=timeout)
        if res is _RAISED:
            return
        if res is not None:
            self.fail(f"join() returned {res!r}")
        if timeout is None and not target.g.dead:
            self.fail("join() without a timeout returned before the greenlet died")

    def act_gget(self, rec, gi, block, ti):
        target = self.pick(self.greenlets, gi)
        if target is None:
            return
        g = target.g
        timeout = self._timeout(ti)
        try:
            res = self._blocking(rec, lambda: g.get(block, timeout), (Timeout,),
                                 timeout if block else None)
        except (FuzzError, KillError) as exc:
            if exc is not g.exception:
                raise  # thrown into this greenlet while it waited
            return
        if res is _RAISED:
            return
        if not g.ready():
            self.fail("get() returned before the greenlet finished")
        if res is not g.value:
            self.fail(f"get() returned {res!r}, value is {g.value!r}")
        if not (res == target.marker or isinstance(res, GreenletExit)):
            self.fail(f"greenlet {target.id} returned {res!r}")

    def act_kill(self, rec, gi, ek, block, ti):
        target = self.pick(self.greenlets, gi)
        if target is None:
            return
        exc = [GreenletExit, KillError, KillError(f"kill {next(self.tokens)}"),
               GreenletExit()][ek]
        timeout = self._timeout(ti)
        target.kills.append(exc)
        was_dead = target.g.dead
        res = self._blocking(rec, lambda: target.g.kill(exc, block=block, timeout=timeout),
                             timeout=timeout)
        if res is _RAISED:
            return
        if block and timeout is None and not target.g.dead and target.g is not getcurrent():
            self.fail("kill(block=True) returned with the greenlet alive")
        if was_dead and not target.g.dead:
            self.fail("a dead greenlet came back to life after kill()")

    def act_timeout(self, rec, ti, ek, inner):
        seconds = self._timeout(ti)
        cls = type("FuzzTimeoutN", (FuzzTimeout,), {})
        exception = [None, False, cls, cls("instance")][ek]
        t = Timeout(seconds, exception)
        try:
            with t:
                for a in inner:
                    self.act(a, rec)
        except Timeout as e:
            if e is not t:
                raise
            STATS["timeout fired"] += 1
        except FuzzTimeout as e:
            if not (type(e) is cls or e is exception):
                raise
            STATS["timeout fired"] += 1
        if t.pending:
            self.fail("a Timeout is still pending after its with block")

    def act_joinall(self, rec, gis, ti, raise_error):
        targets = [self.pick(self.greenlets, i).g for i in gis if self.greenlets]
        timeout = self._timeout(ti)
        try:
            res = self._blocking(rec, lambda: evloop.joinall(targets, timeout=timeout,
                                                             raise_error=raise_error),
                                 timeout=timeout)
        except (FuzzError, KillError) as exc:
            if not raise_error or not any(exc is g.exception for g in targets):
                raise  # thrown into this greenlet while it waited
            return
        if res is _RAISED:
            return
        for g in res:
            if not g.ready():
                self.fail("joinall() returned a greenlet that is not ready")
        if timeout is None and len(res) != len(targets):
            self.fail("joinall() without a timeout returned early")

    def act_killall(self, rec, gis, block):
        targets = [self.pick(self.greenlets, i) for i in gis if self.greenlets]
        for t in targets:
            t.kills.append(GreenletExit)
        gs = [t.g for t in targets]
        res = self._blocking(rec, lambda: evloop.killall(gs, block=block))
        if res is _RAISED:
            return
        if block and getcurrent() not in gs:
            for g in gs:
                if not g.dead:
                    self.fail("killall(block=True) returned with a greenlet alive")

    def act_ar_set(self, rec, ri, exc):
        i = ri % self.N_RESULTS
        value = FuzzError("async result") if exc else ("ar", next(self.tokens))
        if exc:
            self.results[i].set_exception(value)
        else:
            self.results[i].set(value)
        self.result_values[i] = value

    def act_ar_get(self, rec, ri, ti):
        i = ri % self.N_RESULTS
        timeout = self._timeout(ti)
        ar = self.results[i]
        before = self.result_values[i]
        try:
            res = self._blocking(rec, lambda: ar.get(timeout=timeout), (Timeout,), timeout)
        except FuzzError as exc:
            if exc is not ar.exception:
                raise
            return
        if res is _RAISED:
            if before is not None:
                self.fail("AsyncResult.get() timed out on a result that was set")
            return
        if res is not ar.value:
            self.fail("AsyncResult.get() returned something else than its value")

    def _holder(self, rec):
        return "main" if rec is None else rec.id

    def act_acquire(self, rec, si, block, ti):
        i = si % len(self.sems)
        sem = self.sems[i]
        timeout = self._timeout(ti)
        may = ()
        if isinstance(sem, Lock) and not block and timeout is not None and timeout != -1:
            may = (ValueError,)  # threading's rule
        res = self._blocking(rec, lambda: sem.acquire(block, timeout), may)
        if res is _RAISED:
            return
        if res is True:
            self.held[i] += 1
            self.holders[i, self._holder(rec)] += 1
        elif res is not False:
            self.fail(f"acquire() returned {res!r}")
        elif block and (timeout is None or (isinstance(sem, Lock) and timeout == -1)):
            self.fail("acquire() without a timeout returned False")

    def act_release(self, rec, si):
        i = si % len(self.sems)
        key = (i, self._holder(rec))
        if not self.holders[key]:
            return
        self.sems[i].release()
        self.holders[key] -= 1
        self.held[i] -= 1

    def act_with_sem(self, rec, si, inner):
        i = si % len(self.sems)
        sem = self.sems[i]
        entered = False
        try:
            with sem:
                entered = True
                self.held[i] += 1
                try:
                    for a in inner:
                        self.act(a, rec)
                finally:
                    self.held[i] -= 1
        except (GreenletExit, FuzzError, KillError, FuzzTimeout, Timeout, AssertionError):
            raise
        except LoopExit:
            if rec is not None or entered:
                raise
            STATS["main: LoopExit"] += 1

    def act_link(self, rec, gi, kind):
        target = self.pick(self.greenlets, gi)
        if target is None:
            return
        g = target.g
        if kind == "unlink":
            for i, (t, k, calls, fn) in enumerate(self.links):
                if t is target and k == "rawlink" and not calls:
                    g.unlink(fn)
                    self.links[i] = (t, "unlinked", calls, fn)
                    return
            return
        calls = []

        def fn(source):
            calls.append(source)

        getattr(g, kind)(fn)
        self.links.append((target, kind, calls, fn))

    def act_iwait(self, rec, gis, ti, take):
        """Iterate iwait() over greenlets and leave early: its links must be removed."""
        targets = [self.pick(self.greenlets, i).g for i in gis if self.greenlets]
        timeout = self._timeout(ti)
        got = []

        def run():
            for obj in evloop.iwait(targets, timeout=timeout):
                if not obj.ready():
                    self.fail("iwait() yielded a greenlet that is not ready")
                got.append(obj)
                if len(got) >= take:
                    break

        self._blocking(rec, run, timeout=timeout)
        wanted = Counter(map(id, targets))
        for key, n in Counter(map(id, got)).items():
            if n > wanted[key]:  # one link per occurrence in the list, as in gevent
                self.fail("iwait() yielded a greenlet more often than it was listed")

    def act_with_timeout(self, rec, ti, with_value, inner):
        seconds = self._timeout(ti)
        marker = object()

        def body():
            for a in inner:
                self.act(a, rec)
            return "done"

        kwargs = {"timeout_value": marker} if with_value else {}
        try:
            res = evloop.with_timeout(seconds, body, **kwargs)
        except Timeout as exc:
            # with_timeout's own Timeout arrives closed (timer None); an enclosing with
            # block's is still started, and belongs to that block
            if exc.timer is not None or with_value:
                raise
            STATS["timeout fired"] += 1
            return
        if res is marker:
            STATS["timeout fired"] += 1
        elif res != "done":
            self.fail(f"with_timeout() returned {res!r}")

    def act_hub_wait(self, rec, wi):
        w = self.pick(self.watchers, wi)
        res = self._blocking(rec, lambda: self.hub.wait(w),
                             (ValueError, ConcurrentObjectUseError, InvalidSwitchError))
        if res is not _RAISED and res is not None:
            self.fail(f"hub.wait() returned {res!r}")
        if res is None and w.active:
            self.fail("hub.wait() returned with the watcher still active")

    def act_w_op(self, rec, wi, op):
        i = wi % len(self.watchers)
        w = self.watchers[i]
        try:
            if op == "start":
                w.start(self._watcher_cb, "started")
            elif op == "stop":
                w.stop()
            elif op == "close":
                w.close()
            elif op == "callback":
                w.callback = self._watcher_cb
            elif op == "args":
                w.args = ("args",)
            elif op == "feed":
                w.feed()
            elif op == "send":
                if hasattr(w, "send"):
                    w.send()
            elif op == "new":
                self.closed_watchers.append(w)
                w.close()
                self.watchers[i] = self._new_watcher(WATCHER_KINDS[i % len(WATCHER_KINDS)])
        except ValueError as exc:
            # closed watcher, or feed() without a callback
            if not str(exc):
                self.fail("ValueError without a message")

    def act_spawn(self, rec, script, how):
        self._spawn(script, how)

    def _blocking(self, rec, fn, may=(), timeout=None):
        """Run a blocking call and judge what it raised. In the main greenlet it is guarded
        (a hang fails the test) and LoopExit is allowed (nothing is left that could wake
        it). may: exceptions the call may raise (the call then returns _RAISED); a negative
        timeout may also raise ValueError. A Greenlet's own FuzzError/KillError (from get,
        joinall) and the exceptions thrown into this greenlet (kill, a fuzzed Timeout)
        propagate: the caller or an enclosing with block judges them."""
        if timeout is not None and timeout < 0:
            may = tuple(may) + (ValueError,)
        guard = None
        if rec is None:
            guard = Timeout(MAIN_GUARD, GuardTimeout, ref=False)
            guard.start()
        try:
            return fn()
        except GuardTimeout:
            raise AssertionError(f"the main greenlet blocked for {MAIN_GUARD}s") from None
        except LoopExit:
            if rec is not None:
                raise AssertionError("LoopExit raised in a spawned greenlet") from None
            STATS["main: LoopExit"] += 1
            return _RAISED
        except Timeout as exc:
            # a Timeout the call raised itself (get(block=False), get(timeout=...)) was never
            # started; a started one belongs to a with block
            if exc.timer is None and Timeout in may:
                return _RAISED
            raise
        except (GreenletExit, FuzzError, KillError, FuzzTimeout):
            raise
        except AssertionError as exc:
            # ConcurrentObjectUseError and InvalidSwitchError are AssertionErrors
            if may and isinstance(exc, may) and type(exc) is not AssertionError:
                return _RAISED
            raise
        except BaseException as exc:  # noqa: BLE001 - judged here
            if may and isinstance(exc, may):
                if not isinstance(exc, (Empty, Full)) and not str(exc):
                    raise AssertionError(f"{type(exc).__name__} without a message") from exc
                return _RAISED
            raise AssertionError(f"unexpected {type(exc).__name__}: {exc!r}") from exc
        finally:
            if guard is not None:
                guard.close()

    # -- rules --------------------------------------------------------------------------------

    @rule(act=act_strategy(2, False))
    def main_act(self, act):
        """The main greenlet performs one action (blocking ones let greenlets run)."""
        try:
            self.act(act, None)
        except Timeout as exc:
            # only a fuzzed Timeout of this action may end up here, and it was handled
            raise AssertionError(f"a stray Timeout reached the main greenlet: {exc!r}") from exc

    @rule(script=SCRIPT, how=st.sampled_from(range(3)))
    def spawn(self, script, how):
        self._spawn(script, how)

    @rule(wi=WIDX, op=st.sampled_from(WATCHER_OPS))
    def watcher_op(self, wi, op):
        """The main greenlet meddles with a raw watcher some greenlet may wait on."""
        self.act_w_op(None, wi, op)

    @rule(si=st.sampled_from(range(len(SLEEPS))))
    def let_run(self, si):
        evloop.sleep(SLEEPS[si])

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def no_failures(self):
        if self.failures:
            raise self.failures[0]

    @invariant()
    def hub_alive(self):
        if self.hub.dead or self.loop.destroyed or get_hub() is not self.hub:
            self.fail("the hub did not survive")

    @invariant()
    def greenlets_consistent(self):
        for rec in self.greenlets:
            g = rec.g
            if rec.seen_dead:
                if not g.dead:
                    self.fail(f"greenlet {rec.id} was dead and is not anymore")
                if (g.value, g.exception) != rec.outcome:
                    self.fail(f"greenlet {rec.id}'s result changed after it died")
                continue
            if not g.dead:
                continue
            rec.seen_dead = True
            rec.outcome = (g.value, g.exception)
            if not g.ready():
                self.fail("a dead greenlet is not ready()")
            self._check_outcome(rec)

    def _check_outcome(self, rec):
        g = rec.g
        exc = g.exception
        if exc is None:
            value = g.value
            if value == rec.marker:
                if not rec.finished_script:
                    self.fail(f"greenlet {rec.id} returned without finishing its script")
                return
            if isinstance(value, GreenletExit):
                if not any(k is GreenletExit or k is value for k in rec.kills):
                    self.fail(f"greenlet {rec.id} finished with {value!r}, never killed so")
                return
            self.fail(f"greenlet {rec.id} finished with value {value!r}")
        if exc is rec.raised and exc is not None:
            return
        if isinstance(exc, KillError):
            if not any(k is KillError or k is exc for k in rec.kills):
                self.fail(f"greenlet {rec.id} died of {exc!r} it was not killed with")
            return
        self.fail(f"greenlet {rec.id} died of unexpected {type(exc).__name__}: {exc!r}")

    @invariant()
    def permits_conserved(self):
        for sem, initial, held in zip(self.sems, self.sem_initial, self.held):
            if sem.counter != initial - held:
                self.fail(f"{sem!r}: counter {sem.counter}, but {held} of {initial} "
                          f"permits are held")

    @invariant()
    def events_match(self):
        for ev, model in zip(self.events, self.event_set):
            if ev.is_set() != model:
                self.fail(f"Event.is_set() is {ev.is_set()}, model {model}")

    # -- teardown -----------------------------------------------------------------------------

    def teardown(self):
        try:
            # greenlets resumed before killall's callback runs may spawn more: repeat
            for _ in range(self.MAX_GREENLETS + 1):
                alive = [rec for rec in self.greenlets if not rec.g.dead]
                if not alive:
                    break
                for rec in alive:
                    rec.kills.append(GreenletExit)
                try:
                    evloop.killall([rec.g for rec in alive], block=True, timeout=MAIN_GUARD)
                except Timeout:
                    self.fail("killall(block=True) could not kill every greenlet")
                for rec in alive:
                    if not rec.g.dead:
                        self.fail(f"greenlet {rec.id} alive after killall")
            else:
                self.fail("greenlets keep being spawned while being killed")
            self.greenlets_consistent()
            # let the hub run queued links and notifiers
            for _ in range(3):
                evloop.sleep(0)
            remaining = Counter()
            for q in self.queues:
                while True:
                    try:
                        remaining[q.get_nowait()] += 1
                    except Empty:
                        break
                if getattr(q, "getters", None) or getattr(q, "putters", None):
                    self.fail("a queue still lists waiters after every greenlet died")
            delivered = self.got + remaining
            for token, n in delivered.items():
                if n > 1:
                    self.fail(f"queue item {token} delivered {n} times")
                if token in self.put_failed:
                    self.fail(f"queue item {token} is in a queue although its put() failed")
            lost = self.put_ok - set(delivered)
            if lost:
                self.fail(f"queue items lost: {sorted(lost)}")
            for target, kind, calls, fn in self.links:
                g = target.g
                expected = {"rawlink": 1, "link": 1, "unlinked": 0,
                            "link_value": int(g.successful()),
                            "link_exception": int(not g.successful())}[kind]
                if len(calls) != expected or any(c is not g for c in calls):
                    self.fail(f"{kind} of greenlet {target.id} was called {len(calls)} "
                              f"times (expected {expected}) with {calls!r}")
                if g.has_links():
                    self.fail(f"greenlet {target.id} keeps links after it died and they ran")
            for w in self.watchers + self.closed_watchers:
                w.close()
            self.permits_conserved()
            for sem in self.sems:
                if sem.linkcount():
                    self.fail(f"{sem!r} keeps waiters after every greenlet died")
            for ev in self.events:
                if ev.linkcount():
                    self.fail("an Event keeps links after every greenlet died")
            if (self.loop.watcher_count, self.loop.activecnt) != self.baseline:
                self.fail(f"the hub's loop holds {self.loop.watchers()} after the example "
                          f"(before: {self.baseline})")
            # the hub still works
            if evloop.spawn(lambda: 42).get(timeout=MAIN_GUARD) != 42:
                self.fail("the hub does not run greenlets any more")
            self.no_failures()
        finally:
            del self.hub.handle_error
            self.hub.exception_stream = self.saved_stream


_RAISED = object()


@pytest.mark.slow
def test_greenlet_api_fuzz(_hang_watchdog, monkeypatch):
    monkeypatch.setattr(GreenletMachine, "arm_watchdog", staticmethod(_hang_watchdog))
    run_state_machine_as_test(GreenletMachine, settings=fuzz_settings(60, 30))


if __name__ == "__main__":
    t0 = time.monotonic()
    run_state_machine_as_test(GreenletMachine, settings=fuzz_settings(60, 30))
    print(f"GreenletMachine: {_LONG or 60} examples in {time.monotonic() - t0:.1f}s")
    if os.environ.get("EVLOOP_FUZZ_STATS"):
        for key, n in sorted(STATS.items()):
            print(f"  {key}: {n}")
