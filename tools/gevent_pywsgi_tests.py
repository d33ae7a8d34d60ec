#!/usr/bin/env python3
"""Run gevent's own pywsgi tests (gevent/tests/test__pywsgi.py, shipped in the gevent wheel)
against evloop.pywsgi's HTTP code, and against gevent.pywsgi for comparison.

Why it exists: gevent's test module is the most complete description of what programs
expect from a pywsgi server. It is written for gevent's hub (gevent sockets after
``gevent.monkey.patch_all()``, errors captured through gevent's hub), so evloop's module
cannot simply be imported in its place. Instead the runner executes evloop/pywsgi.py's
source as ``gevent.pywsgi`` with its three imports of evloop pointed at gevent's
equivalents (``socket`` -> ``gevent.socket``, ``StreamServer`` -> ``gevent.server``'s,
``GreenletExit`` -> greenlet's): the request parsing, the environ, ``Input``, the
responses and the handler's hooks are evloop's code; the accept loop and the sockets are
gevent's. ``--loop evloop`` runs gevent's hub on evloop's libev loop
(``GEVENT_LOOP=evloop.integrations.gevent.loop``) as well.

What it must not do: change a test. It prints each run's counts and the tests that fail
with evloop's code but not with gevent's.

Usage::

    python tools/gevent_pywsgi_tests.py              # gevent.pywsgi, then evloop.pywsgi's code
    python tools/gevent_pywsgi_tests.py --loop evloop
    python tools/gevent_pywsgi_tests.py -v           # unittest's verbose output too
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

RUNNER = r'''
import importlib.util, os, sys, types, unittest
from gevent import monkey
monkey.patch_all()
import gevent

if sys.argv[1] == "evloop":
    src = open(os.path.join(sys.argv[2], "evloop", "pywsgi.py")).read()
    for old, new in (("from evloop import socket as _socket", "from gevent import socket as _socket"),
                     ("from evloop.exceptions import GreenletExit", "from greenlet import GreenletExit"),
                     ("from evloop.server import StreamServer", "from gevent.server import StreamServer")):
        assert old in src, old
        src = src.replace(old, new)
    mod = types.ModuleType("gevent.pywsgi")
    mod.__file__ = "evloop/pywsgi.py (imports pointed at gevent)"
    sys.modules["gevent.pywsgi"] = mod
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    # gevent's BaseServer sets .loop and has .ssl_enabled; evloop's server has .hub instead
    del mod.WSGIServer.loop
    del mod.WSGIServer.ssl_enabled
    mod.WSGIServer.hub = property(lambda self: gevent.get_hub())
    gevent.pywsgi = mod

import gevent.tests
path = os.path.join(os.path.dirname(gevent.tests.__file__), "test__pywsgi.py")
spec = importlib.util.spec_from_file_location("test__pywsgi", path)
module = importlib.util.module_from_spec(spec)
sys.modules["test__pywsgi"] = module
spec.loader.exec_module(module)
assert module.pywsgi is sys.modules["gevent.pywsgi"]
suite = unittest.defaultTestLoader.loadTestsFromModule(module)
result = unittest.TextTestRunner(verbosity=2 if "-v" in sys.argv else 1, stream=sys.stderr).run(suite)
print("RAN", result.testsRun, "FAILURES", len(result.failures), "ERRORS", len(result.errors),
      "SKIPPED", len(result.skipped))
for test, _ in result.failures + result.errors:
    print("FAILED", test.id())
'''


def run(which: str, loop: str, verbose: bool) -> tuple:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if loop == "evloop":
        env["GEVENT_LOOP"] = "evloop.integrations.gevent.loop"
    cmd = [sys.executable, "-c", RUNNER, which, str(REPO)] + (["-v"] if verbose else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if verbose:
        sys.stderr.write(proc.stderr)
    match = re.search(r"^RAN (\d+) FAILURES (\d+) ERRORS (\d+) SKIPPED (\d+)$", proc.stdout, re.M)
    if not match:
        print(f"--- {which}: the runner failed (exit {proc.returncode})\n{proc.stdout}\n"
              f"{proc.stderr[-5000:]}")
        return None, set()
    failed = set(re.findall(r"^FAILED (\S+)$", proc.stdout, re.M))
    return tuple(int(x) for x in match.groups()), failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loop", choices=("gevent", "evloop"), default="gevent",
                        help="the libev loop under gevent's hub (default: gevent's own)")
    parser.add_argument("-v", action="store_true", help="unittest's verbose output")
    args = parser.parse_args()
    results = {}
    for which in ("gevent", "evloop"):
        counts, failed = run(which, args.loop, args.v)
        if counts is None:
            return 2
        results[which] = failed
        ran, failures, errors, skipped = counts
        name = "gevent.pywsgi" if which == "gevent" else "evloop.pywsgi's code"
        print(f"{name}: ran {ran}, passed {ran - failures - errors - skipped}, failures "
              f"{failures}, errors {errors}, skipped {skipped}")
        for test in sorted(failed):
            print(f"    {test}")
    only = sorted(results["evloop"] - results["gevent"])
    print(f"failing only with evloop.pywsgi's code: {len(only)}")
    for test in only:
        print(f"    {test}")
    return 0 if not only else 1


if __name__ == "__main__":
    sys.exit(main())
