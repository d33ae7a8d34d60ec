#!/usr/bin/env python3
"""Run CPython's own asyncio tests against evloop.aio.Loop, with the stdlib loop as baseline.

Why it exists: asyncio's test suite is the most complete description of what an asyncio
event loop must do. This script runs the parts of it that take a loop factory against
``evloop.aio.Loop`` and, in the same run, against the stdlib loop
(``asyncio.SelectorEventLoop`` with epoll), and prints both sets of counts and every test
that fails on evloop (docs/asyncio.md explains each one). It needs the interpreter's
``test`` package (``test.test_asyncio``); it does not modify it.

How each module gets the loop under test (the same way for both variants):

* Modules with a test class per selector (test_events, test_sock_lowlevel, test_server,
  test_sendfile, test_buffered_proto, test_sslproto): their epoll (or default selector)
  class is subclassed here with ``create_event_loop``/``new_loop`` returning the variant's
  loop. For test_events that is all that runs ("the loop test classes").
* Everything else (test_streams, test_subprocess, test_tasks, test_futures, the
  ``IsolatedAsyncioTestCase`` modules, ...) and anything above that calls
  ``asyncio.new_event_loop()``: the variant's event loop policy is installed before every
  test (evloop: ``evloop.aio.EventLoopPolicy``).
* ``test_utils.TestCase.new_test_loop()`` without a time generator (what test_tasks and
  test_futures use for most tests) returns the variant's real loop instead of asyncio's
  mock ``TestLoop``. With a generator the test needs TestLoop's virtual clock, and keeps it:
  such tests are counted in the ``virtual`` column (they do not exercise the loop under
  test beyond ``call_soon``-level Future/Task machinery).

Every test records which loop classes it created; the ``loop`` column counts the tests
that created at least one loop of the variant's class.

Each (module, variant) runs in its own subprocess, so a crash or hang is contained and
reported; a per-test watchdog (--timeout) dumps the stacks and ends a hung test's process,
and a new one runs the rest of the module.

    python tools/asyncio_tests.py                       # everything, both variants
    python tools/asyncio_tests.py --modules test_tasks --variants evloop -k gather
    python tools/asyncio_tests.py --verbose             # every failure's traceback
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# module -> (its concrete epoll/selector test classes, whose loop factory is replaced;
#            whether its other test classes run too, under the variant's policy)
PLAN = {
    # the modules the acceptance criterion names
    "test_events": (["EPollEventLoopTests"], False),  # the loop test classes only
    "test_sock_lowlevel": (["EPollEventLoopTests"], False),
    "test_streams": ([], True),
    "test_server": (["SelectorStartServerTests"], True),
    "test_subprocess": ([], True),
    "test_tasks": ([], True),
    "test_futures": ([], True),
    # more of CPython's asyncio tests that run on a real loop
    "test_sendfile": (["EPollEventLoopTests"], False),
    "test_buffered_proto": (["BufferedProtocolSelectorTests"], False),
    "test_sslproto": (["SelectorStartTLSTests"], True),
    "test_ssl": ([], True),
    "test_locks": ([], True),
    "test_queues": ([], True),
    "test_taskgroups": ([], True),
    "test_timeouts": ([], True),
    "test_waitfor": ([], True),
    "test_threads": ([], True),
    "test_server_context": ([], True),   # 3.15+: the Context transports' callbacks run in
}
REQUIRED = ["test_events", "test_sock_lowlevel", "test_streams", "test_server",
            "test_subprocess", "test_tasks", "test_futures"]
MODULES = list(PLAN)
VARIANTS = ["stdlib", "evloop"]


# --------------------------------------------------------------------------------------
# child: run one module under one variant, write one JSON line per test

def _policies():
    """(get, set) of asyncio's event loop policy. CPython 3.14 and 3.15 deprecate the public
    functions (each call warns DeprecationWarning) while asyncio's own code, and its tests'
    tearDownModule, use events._get_event_loop_policy/_set_event_loop_policy, which do
    not warn: this harness uses those there, as asyncio's tests do."""
    import asyncio
    from asyncio import events

    if sys.version_info >= (3, 14):
        return events._get_event_loop_policy, events._set_event_loop_policy
    return asyncio.get_event_loop_policy, asyncio.set_event_loop_policy


def _variant(name):
    """(loop factory, loop class, policy factory) of a variant."""
    import asyncio
    import selectors

    if name == "stdlib":
        def factory():
            return asyncio.SelectorEventLoop(selectors.EpollSelector())
        with warnings.catch_warnings():
            # 3.14+: the public name of the default policy class warns DeprecationWarning
            warnings.simplefilter("ignore", DeprecationWarning)
            return factory, asyncio.SelectorEventLoop, asyncio.DefaultEventLoopPolicy
    if name == "evloop":
        sys.path.insert(0, ROOT)
        import evloop.aio

        return evloop.aio.Loop, evloop.aio.Loop, evloop.aio.EventLoopPolicy
    raise SystemExit(f"unknown variant {name!r}")


def _suite(module_name, factory, loop_class):
    import asyncio
    import unittest
    from importlib import import_module

    # asyncio.EventLoop (3.13+) is the platform's loop class; test classes that name it as
    # their IsolatedAsyncioTestCase.loop_factory (3.14+: test_taskgroups), directly or in a
    # function called per test, get the loop under test instead
    stdlib_classes = [c for c in (asyncio.SelectorEventLoop, getattr(asyncio, "EventLoop", None))
                      if c is not None]
    if hasattr(asyncio, "EventLoop"):
        asyncio.EventLoop = loop_class
    mod = import_module(f"test.test_asyncio.{module_name}")
    loader = unittest.TestLoader()
    concrete, others = PLAN[module_name]
    suite = unittest.TestSuite()
    mixins = []
    for name in concrete:
        cls = getattr(mod, name)
        mixins.append(cls.__bases__[0])
        sub = type(f"{name}_LoopUnderTest", (cls,),
                   {"create_event_loop": lambda self: factory(),
                    "new_loop": lambda self: factory(), "__module__": mod.__name__})
        suite.addTests(loader.loadTestsFromTestCase(sub))
    if others:
        # the module's other test classes, minus the platform variants of the above
        for name in sorted(dir(mod)):
            obj = getattr(mod, name)
            if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                    and obj.__module__ == mod.__name__
                    and not any(issubclass(obj, m) for m in mixins)):
                if any(vars(obj).get("loop_factory") is c for c in stdlib_classes):
                    obj.loop_factory = staticmethod(factory)
                suite.addTests(loader.loadTestsFromTestCase(obj))
    return suite


def child(args):
    import asyncio
    import faulthandler
    import traceback
    import unittest
    from asyncio import base_events

    from test.test_asyncio import utils as test_utils

    factory, loop_class, policy_factory = _variant(args.variant)
    get_policy, set_policy = _policies()
    out = open(args.out, "a", buffering=1)

    # which loop classes does each test create?
    created = []
    real_init = base_events.BaseEventLoop.__init__

    def init(self, *a, **kw):
        created.append(type(self))
        real_init(self, *a, **kw)

    base_events.BaseEventLoop.__init__ = init

    # a real loop instead of the mock TestLoop unless the test needs its virtual clock
    virtual = []
    real_new_test_loop = test_utils.TestCase.new_test_loop

    def new_test_loop(self, gen=None):
        if gen is not None:
            virtual.append(True)
            return real_new_test_loop(self, gen)
        loop = factory()
        self.set_event_loop(loop)
        return loop

    test_utils.TestCase.new_test_loop = new_test_loop

    class Result(unittest.TextTestResult):
        def startTest(self, test):
            created.clear()
            virtual.clear()
            if not isinstance(get_policy(), policy_factory):
                set_policy(policy_factory())
            out.write(json.dumps({"start": test.id()}) + "\n")
            faulthandler.dump_traceback_later(args.timeout, exit=True)
            self._outcome_ = ("passed", "")
            super().startTest(test)

        def _record(self, outcome, detail=""):
            self._outcome_ = (outcome, detail)

        def addError(self, test, err):
            super().addError(test, err)
            self._record("error", "".join(traceback.format_exception(*err)))

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self._record("failed", "".join(traceback.format_exception(*err)))

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self._record("skipped", reason)

        def addExpectedFailure(self, test, err):
            super().addExpectedFailure(test, err)
            self._record("xfail")

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            self._record("failed", "unexpected success")

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                kind = "failed" if issubclass(err[0], test.failureException) else "error"
                self._record(kind, f"{subtest}: " + "".join(traceback.format_exception(*err)))

        def stopTest(self, test):
            super().stopTest(test)
            faulthandler.cancel_dump_traceback_later()
            outcome, detail = self._outcome_
            out.write(json.dumps({
                "test": test.id(), "outcome": outcome, "detail": detail,
                "on_loop": any(issubclass(c, loop_class) for c in created),
                "virtual": bool(virtual),
            }) + "\n")

        def _exc_info_to_string(self, err, test):
            return ""

    suite = _suite(args.module, factory, loop_class)
    done_before = set()
    if args.skip_file:
        with open(args.skip_file) as f:
            done_before = set(f.read().split())
    if args.k or done_before:
        def keep(test):
            return test.id() not in done_before and (
                not args.k or any(k in test.id() for k in args.k))

        def filtered(s):
            picked = unittest.TestSuite()
            for t in s:
                if isinstance(t, unittest.TestSuite):
                    picked.addTests(filtered(t))
                elif keep(t):
                    picked.addTest(t)
            return picked

        suite = filtered(suite)
    runner = unittest.TextTestRunner(stream=open(os.devnull, "w"), resultclass=Result,
                                     failfast=args.failfast)
    runner.run(suite)
    out.write(json.dumps({"done": True}) + "\n")
    out.close()
    # threads or child processes left behind by a test must not keep the child alive
    os._exit(0)


# --------------------------------------------------------------------------------------
# parent: run every (module, variant), print the table and the failures

def run_one(module, variant, args):
    """Run one module under one variant. A child that dies (a crash, or the watchdog ending
    a hung test) has that test recorded as an error and a new child runs the module's
    remaining tests, so one hang does not hide the rest of the module."""
    records = []
    t0 = time.monotonic()
    while True:
        fd, path = tempfile.mkstemp(prefix=f"aiotests-{module}-{variant}-", suffix=".jsonl")
        os.close(fd)
        fd, skip = tempfile.mkstemp(prefix=f"aiotests-{module}-{variant}-", suffix=".skip")
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(r["test"] for r in records))
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--variant", variant,
               "--module", module, "--out", path, "--timeout", str(args.timeout),
               "--skip-file", skip]
        for k in args.k or ():
            cmd += ["-k", k]
        if args.failfast:
            cmd.append("--failfast")
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": ROOT})
        started, done = None, False
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if "start" in rec:
                    started = rec["start"]
                elif "test" in rec:
                    records.append(rec)
                    started = None
                elif rec.get("done"):
                    done = True
        os.unlink(path)
        os.unlink(skip)
        if done:
            break
        # the child died (crash, or the watchdog ended a hung test)
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-40:])
        records.append({"test": started or f"{module} (unknown test)", "outcome": "error",
                        "detail": f"the test process ended (status {proc.returncode}) "
                                  f"during this test:\n{tail}",
                        "on_loop": False, "virtual": False})
        if started is None or args.failfast:
            break   # it died outside a test: running it again would do the same
    return records, time.monotonic() - t0


COLUMNS = ["run", "passed", "failed", "errors", "skipped", "xfail", "loop", "virtual"]


def counts(records):
    c = dict.fromkeys(COLUMNS, 0)
    for r in records:
        c["run"] += 1
        c[{"passed": "passed", "failed": "failed", "error": "errors", "skipped": "skipped",
           "xfail": "xfail"}[r["outcome"]]] += 1
        c["loop"] += r["on_loop"] and r["outcome"] != "skipped"
        c["virtual"] += r["virtual"]
    return c


def parent(args):
    from importlib.util import find_spec

    results = {}
    missing = [m for m in args.modules if find_spec(f"test.test_asyncio.{m}") is None]
    if missing:
        print(f"not in this Python's test package (skipped): {', '.join(missing)}",
              file=sys.stderr)
        args.modules = [m for m in args.modules if m not in missing]
    for module in args.modules:
        for variant in args.variants:
            print(f"running {module} on {variant} ...", file=sys.stderr, flush=True)
            results[module, variant] = run_one(module, variant, args)
    python = sys.version.split()[0]
    print(f"\nCPython {python} asyncio tests; 'loop': tests that ran on a loop of the "
          f"variant's class; 'virtual': tests that used TestLoop's virtual clock\n")
    header = ["module", "variant"] + COLUMNS + ["seconds"]
    rows = []
    groups = [("required", [m for m in args.modules if m in REQUIRED]),
              ("more", [m for m in args.modules if m not in REQUIRED])]
    for label, modules in groups:
        if not modules:
            continue
        totals = {v: dict.fromkeys(COLUMNS, 0) for v in args.variants}
        for module in modules:
            for variant in args.variants:
                records, elapsed = results[module, variant]
                c = counts(records)
                for k in COLUMNS:
                    totals[variant][k] += c[k]
                rows.append([module, variant] + [str(c[k]) for k in COLUMNS]
                            + [f"{elapsed:.0f}"])
        for variant in args.variants:
            rows.append([f"TOTAL {label}", variant]
                        + [str(totals[variant][k]) for k in COLUMNS] + [""])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(r, widths))))
    status = 0
    for variant in args.variants:
        bad = [(m, r) for (m, v), (records, _) in results.items() if v == variant
               for r in records if r["outcome"] in ("failed", "error")]
        print(f"\n{len(bad)} failures/errors on {variant}:")
        for module, r in bad:
            detail = r["detail"].strip().splitlines()
            last = detail[-1] if detail else ""
            print(f"  [{r['outcome']}] {r['test']}: {last[:200]}")
            if args.verbose:
                print("    " + "\n    ".join(detail))
        if bad and variant == "evloop":
            status = 1
    return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", default=",".join(MODULES),
                        help="comma-separated (default: %(default)s)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated: stdlib, evloop (default: both)")
    parser.add_argument("-k", action="append", help="only tests whose id contains this")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds a single test may take before it counts as hung")
    parser.add_argument("--failfast", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print each failure's full traceback")
    # internal: the per-module subprocess
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--module", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--skip-file", help=argparse.SUPPRESS)  # ids of tests already run
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    args.modules = [m for m in args.modules.split(",") if m]
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = (set(args.modules) - set(MODULES)) | (set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown modules or variants: {sorted(unknown)}")
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
