#!/usr/bin/env python3
"""Run gevent's own test suite on gevent's libev-cffi loop and on evloop's loop; compare.

Why it exists: the acceptance for "evloop's loop under gevent" is gevent's test suite, the
one shipped in the gevent wheel (``python -m gevent.tests``), passing with
``GEVENT_LOOP=evloop.integrations.gevent.loop`` with no more failures than gevent's own
libev-cffi loop in the same run on the same machine. This script runs the selected test
modules once per loop, one after the other (never concurrently: many of gevent's tests
measure time), and prints for each loop the number of failing tests and their names, and
the tests that fail only on evloop's loop.

What it must not do: judge anything itself beyond that comparison. It does not skip, retry
or filter tests; gevent's runner applies gevent's own ``known_failures.py`` to every loop
alike.

Usage (from a clone with ``pip install -e .[test]`` done, or with evloop built in place)::

    python tools/gevent_tests.py                    # the default modules, both loops
    python tools/gevent_tests.py --loops libev-cffi,libev-cext,evloop
    python tools/gevent_tests.py test__hub.py test__timeout.py
    python tools/gevent_tests.py --second-chance    # rerun a failed module once, every loop
    python tools/gevent_tests.py --jobs 2 -- -u-network   # extra gevent runner options

Exit status: 0 when evloop's loop has no more failures than every other loop run, else 1
(2 if a runner could not be started at all).
"""
import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent

#: the modules the acceptance names: loop, hub, timeout, event, queue, semaphore, select,
#: socket, subprocess, signal and threadpool (globs over gevent/tests/)
DEFAULT_PATTERNS = [
    "test__core*.py", "test__loop*.py", "test__hub*.py", "test__timeout.py", "test__event.py",
    "test__queue.py", "test__semaphore.py", "test__select.py", "test__socket*.py",
    "test__subprocess*.py", "test__signal.py", "test__threadpool*.py",
]

LOOPS = {
    "libev-cffi": "libev-cffi",
    "libev-cext": "libev-cext",
    "libuv": "libuv-cffi",
    "evloop": "evloop.integrations.gevent.loop",
}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# "| GEVENT_LOOP=... python -u -mgevent.tests.test__x" opens a module's captured output;
# "! <same command> [code 1] [...]" reports it failed, "- <command> [...]" that it passed.
_CMD_MODULE = re.compile(r"-m\s*gevent\.tests\.(test__\w+)")
_FAILED_CMD = re.compile(r"^! .*?\[code ([^\]]+)\]")
_TEST_LINE = re.compile(r"^\s*(FAIL|ERROR|UNEXPECTED SUCCESS): (\S+) \(([^)]*)\)")


def gevent_tests_dir(python: str) -> Path:
    out = subprocess.run(
        [python, "-c", "import gevent.tests, os; print(os.path.dirname(gevent.tests.__file__))"],
        capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit("gevent is not importable with %s (pip install -e '.[test]'):\n%s"
                 % (python, out.stderr))
    return Path(out.stdout.strip())


def select_modules(tests_dir: Path, patterns: List[str]) -> List[str]:
    names = set()
    for pattern in patterns:
        found = [p.name for p in tests_dir.glob(pattern) if p.is_file()]
        if not found:
            sys.exit("no gevent test module matches %r in %s" % (pattern, tests_dir))
        names.update(found)
    return sorted(names)


def parse_runner_output(text: str) -> Dict[str, object]:
    """Read gevent's runner output (``--no-combine``: one process per module).

    Returns ``failures`` (names like "test__x: Class.test (FAIL)", in the last attempt of
    each module), ``failed_modules``, ``modules_run`` and ``second_chance`` (modules that
    failed once and were run again, with what failed the first time).
    """
    results: Dict[str, Tuple[bool, List[str]]] = {}   # module -> (failed, names)
    retried: Dict[str, List[str]] = {}
    current: Optional[str] = None
    names: List[str] = []
    for raw in text.splitlines():
        line = _ANSI.sub("", raw)
        if line[:2] in ("| ", "- ", "! ", "> "):
            m = _CMD_MODULE.search(line)
            module = m.group(1) if m else "?"
            kind = line[0]
            if kind == "|":                       # captured output follows
                current, names = module, []
            elif kind == ">":                     # --second-chance: run again
                failed, first = results.pop(module, (True, []))
                retried[module] = first
            else:
                if kind == "!":
                    code = _FAILED_CMD.match(line)
                    got = names if module == current else []
                    if not got:
                        # a crash, a timeout or a failure outside unittest
                        got = ["%s: [module failed, code %s]"
                               % (module, code.group(1) if code else "?")]
                    results[module] = (True, got)
                else:
                    results[module] = (False, [])
                current, names = None, []
            continue
        m = _TEST_LINE.match(line)
        if m and current is not None:
            kind, test, where = m.groups()
            cls = where.split(".")[-2] if "." in where else where
            names.append("%s: %s.%s (%s)" % (current, cls, test, kind))
    failures = [n for failed, ns in results.values() if failed for n in ns]
    return {"failures": sorted(failures),
            "failed_modules": sum(1 for failed, _ in results.values() if failed),
            "modules_run": len(results),
            "second_chance": retried}


def run_loop(python: str, loop: str, modules: List[str], jobs: int,
             extra: List[str], log_dir: Path) -> Dict[str, object]:
    env = dict(os.environ)
    env["GEVENT_LOOP"] = LOOPS.get(loop, loop)
    # the evloop of this checkout, whether installed or built in place
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    cmd = [python, "-m", "gevent.tests", "--no-combine", "-j", str(jobs)] + extra + modules
    print("== %s (GEVENT_LOOP=%s): %d modules" % (loop, env["GEVENT_LOOP"], len(modules)),
          flush=True)
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=str(REPO), capture_output=True, text=True,
                          check=False)
    elapsed = time.monotonic() - start
    text = proc.stdout + proc.stderr
    log = log_dir / ("gevent-tests-%s.log" % loop)
    log.write_text(text)
    res = parse_runner_output(text)
    if res["modules_run"] == 0:
        print(text[-3000:])
        sys.exit(2)
    res["elapsed"], res["log"] = elapsed, log
    print("   %d failing tests in %d of %d modules, %.0f s (full output: %s)"
          % (len(res["failures"]), res["failed_modules"], res["modules_run"], elapsed, log),
          flush=True)
    return res


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*",
                        help="gevent test modules or globs (default: the acceptance set)")
    parser.add_argument("--loops", default="libev-cffi,evloop",
                        help="comma-separated: %s or a dotted path (default: %%(default)s)"
                        % ", ".join(LOOPS))
    parser.add_argument("--jobs", "-j", type=int, default=1,
                        help="test processes at a time inside one loop's run (default 1)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter with gevent and evloop (default: this one)")
    parser.add_argument("--log-dir", default=str(REPO / "build"),
                        help="where each loop's full runner output goes")
    parser.add_argument("--second-chance", action="store_true",
                        help="gevent's runner option: run a failed module once more (for "
                             "every loop alike); the modules that needed it are listed")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]

    loops = [x.strip() for x in args.loops.split(",") if x.strip()]
    if "evloop" not in loops:
        loops.append("evloop")
    tests_dir = gevent_tests_dir(args.python)
    modules = select_modules(tests_dir, args.modules or DEFAULT_PATTERNS)
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    print("gevent tests from %s; %d modules: %s" % (tests_dir, len(modules), " ".join(modules)))

    if args.second_chance:
        extra = ["--second-chance"] + extra
    results = {loop: run_loop(args.python, loop, modules, args.jobs, extra, log_dir)
               for loop in loops}

    print()
    for loop in loops:
        res = results[loop]
        print("%s: %d failing tests (%d of %d modules failed)"
              % (loop, len(res["failures"]), res["failed_modules"], res["modules_run"]))
        for name in res["failures"]:
            print("    " + name)
        for module, first in sorted(res["second_chance"].items()):
            print("    (run twice: %s; the first run failed %s)"
                  % (module, ", ".join(n.split(": ", 1)[1] for n in first) or "?"))
    ours = set(results["evloop"]["failures"])
    others = set().union(*(set(results[x]["failures"]) for x in loops if x != "evloop")) \
        if len(loops) > 1 else set()
    only_ours = sorted(ours - others)
    print()
    print("failing only with evloop: %d" % len(only_ours))
    for name in only_ours:
        print("    " + name)
    n_ours = len(results["evloop"]["failures"])
    fewest_other = min((len(results[x]["failures"]) for x in loops if x != "evloop"),
                       default=n_ours)
    ok = n_ours <= fewest_other
    print("RESULT: %s (evloop %d failing, fewest among the others %d)"
          % ("PASS" if ok else "FAIL", n_ours, fewest_other))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
