#!/usr/bin/env python3
"""Run gevent's own tests of gevent.fileobject, gevent.backdoor and gevent.util (shipped in
the gevent wheel: gevent/tests/test__fileobject.py, test__backdoor.py, test__util.py) against
evloop's modules of the same names; print the counts and each failing test.

Why it exists: evloop.fileobject, evloop.backdoor and evloop.util take gevent's names and
semantics; gevent's own tests of them are the independent check. Each test module runs in
a fresh interpreter where ``gevent.fileobject``/``gevent.backdoor``/``gevent.util`` are
evloop's modules and the greenlet API those tests call through the ``gevent`` package
(``spawn``, ``sleep``, ``get_hub``, ``Greenlet``, ``socket``, ...) is evloop's, so that the
tests, the modules under test and the greenlets they start all run on evloop's hub.
gevent's test support (``gevent.testing``: base classes, timeouts, leak checks) stays
gevent's and is imported before the switch.

What it must not do: judge. Tests that exercise gevent's private classes
(``gevent._fileobjectcommon.OpenDescriptor``), its configuration object or its tracing
internals test gevent, not evloop, and fail or pass as they do; the report says which.

Usage: python tools/gevent_module_tests.py [fileobject] [backdoor] [util]
"""
import os
import re
import subprocess
import sys

SHIM = r'''
import sys, runpy
import gevent, gevent.testing            # gevent's test support, with gevent's own modules
import evloop, evloop.fileobject, evloop.backdoor, evloop.util, evloop.socket, evloop.event
import evloop.queue, evloop.local, evloop.lock, evloop.pool, evloop.server, evloop.time
for name in ("fileobject", "backdoor", "util", "socket", "event", "queue", "local", "lock",
             "pool", "server", "time"):
    module = sys.modules["evloop." + name]
    sys.modules["gevent." + name] = module
    setattr(gevent, name, module)
# not Timeout: gevent.testing's per-test timeout subclasses gevent's Timeout and calls
# gevent.Timeout.__init__ through the package; it stays gevent's, on gevent's hub, which
# never runs here, so those timeouts never fire (this script's own timeout bounds a run)
for name in ("spawn", "spawn_later", "sleep", "Greenlet", "joinall", "killall", "get_hub",
             "getcurrent", "wait", "iwait", "idle", "kill"):
    setattr(gevent, name, getattr(evloop, name))
sys.argv = [sys.argv[0], "-v"]
runpy.run_module("gevent.tests." + MODULE, run_name="__main__", alter_sys=True)
'''

MODULES = {"fileobject": "test__fileobject", "backdoor": "test__backdoor",
           "util": "test__util"}


def run(module: str) -> int:
    code = SHIM.replace("MODULE", repr(module))
    # gevent's tests expect gevent's default config.track_greenlet_tree = True ("Spawned
    # at" lines); evloop's counterpart is off by default
    env = dict(os.environ, EVLOOP_TRACK_GREENLET_TREE="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env=env)
    out = proc.stdout + proc.stderr
    ran = re.search(r"^Ran (\d+) tests?", out, re.M)
    outcomes = {}
    for line in out.splitlines():
        m = re.match(r"^(test\w*) \(([\w.]+)\)(?:\n)?.*\.\.\. (ok|FAIL|ERROR|skipped.*|"
                     r"expected failure|unexpected success)", line)
        if m:
            outcomes[f"{m.group(2)}.{m.group(1)}"] = m.group(3)
    counts: dict = {}
    for outcome in outcomes.values():
        key = "skipped" if outcome.startswith("skipped") else outcome
        counts[key] = counts.get(key, 0) + 1
    summary = re.search(r"^(OK|FAILED)\b.*$", out, re.M)
    print(f"== {module}: ran {ran.group(1) if ran else '?'}: "
          f"{summary.group(0) if summary else 'no summary'}; named outcomes: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f" (exit {proc.returncode})")
    for name, outcome in sorted(outcomes.items()):
        if outcome in ("FAIL", "ERROR"):
            print(f"   {outcome}: {name}")
    if "-v" in sys.argv[1:] or not ran:
        print(out)
    return proc.returncode


def main() -> int:
    names = [a for a in sys.argv[1:] if not a.startswith("-")] or list(MODULES)
    worst = 0
    for name in names:
        worst = max(worst, run(MODULES[name]))
    return worst


if __name__ == "__main__":
    sys.exit(main())
