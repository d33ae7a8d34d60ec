#!/usr/bin/env python3
"""Run evloop's checks on every supported CPython and print one line per version.

Why it exists: evloop leans on details of ``threading``, ``asyncio`` and ``subprocess``
that change from one CPython release to the next, so "it passes" means "it passes on 3.10,
3.11, 3.12, 3.13, 3.14 and 3.15". This script finds each interpreter, gives it a venv with
``pip install -e '.[test]'`` (rebuilt when pyproject.toml or the C sources change), runs
the chosen suite there, one version after the other (never concurrently: many tests
measure time on a 2-core machine), and prints a table.

What it must not do: judge more than the suites do. It reports their counts and their
exit status; it skips no test and retries nothing.

Where each interpreter comes from, first match wins:
  1. ``pythonX.Y`` on PATH (a real interpreter, not a pyenv shim that cannot run);
  2. pyenv: ``$PYENV_ROOT/versions/X.Y.*/bin/python3`` (the newest patch release);
  3. 3.14 and 3.15: ``../shared/tools/sid-python.sh`` (a Debian-unstable chroot; see its
     header), or the script named by ``$SID_PYTHON``.
A version with none of these is reported as "no interpreter" and fails the run.

Suites (``--suite``, comma-separated):
  pytest   the project's test suite (``python -m pytest -q``; extra args after ``--``)
  asyncio  ``tools/asyncio_tests.py``: CPython's asyncio tests on evloop.aio and on the
           stdlib loop; fails when a test fails on evloop.aio only (3.14/3.15 in the
           chroot need Debian's libpython3.X-testsuite: installed there when missing)
  gevent   ``tools/gevent_tests.py``: gevent's own tests on libev-cffi and on evloop's
           loop; fails when a test fails on evloop's loop only
  sdist    builds the sdist, installs it into a fresh venv (no editable install, built
           from source) and runs a smoke program from outside the tree

Usage::

    python3 tools/matrix.py                              # pytest on all six versions
    python3 tools/matrix.py --versions 3.10,3.15 -- -x tests/test_select.py
    python3 tools/matrix.py --suite asyncio,gevent,sdist

Venvs live in ``build/matrix/`` (git-ignored). Logs: ``build/matrix/<suite>-<version>.log``.
Exit status 0 when every line is OK.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "build" / "matrix"
VERSIONS = ["3.10", "3.11", "3.12", "3.13", "3.14", "3.15"]
SID_VERSIONS = {"3.14", "3.15"}

SMOKE = r"""
import sys, time, evloop, evloop.core, evloop.aio, asyncio
assert not evloop.__file__.startswith(sys.argv[1]), evloop.__file__
loop = evloop.core.loop(default=False)
t0 = time.monotonic()
jobs = [evloop.spawn(lambda n: (evloop.sleep(0.05), n * n)[1], n) for n in range(5)]
done = evloop.joinall(jobs, timeout=2)
assert [g.value for g in done] == [0, 1, 4, 9, 16]
assert time.monotonic() - t0 < 1.0
async def main():
    await asyncio.sleep(0.01)
    return type(asyncio.get_running_loop()).__name__
assert evloop.aio.run(main()) == "Loop"
print("smoke ok", sys.version.split()[0], evloop.__file__)
"""


def _works(python: str, version: str) -> bool:
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == version


def _sid_script() -> Optional[str]:
    path = os.environ.get("SID_PYTHON") or str(REPO.parent / "shared" / "tools" / "sid-python.sh")
    return path if os.path.isfile(path) else None


def find_interpreter(version: str) -> Tuple[str, Optional[str]]:
    """("native", path) / ("sid", script) / ("none", None)."""
    on_path = shutil.which(f"python{version}")
    if on_path and _works(on_path, version):
        return "native", on_path
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python3"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("/versions/")[1].split("/")[0])])
    for path in reversed(found):
        if _works(path, version):
            return "native", path
    if version in SID_VERSIONS and _sid_script():
        return "sid", _sid_script()
    return "none", None


def _newest_source_mtime() -> float:
    paths = [REPO / "pyproject.toml", REPO / "setup.py", REPO / "evloop" / "_build.py"]
    paths += list((REPO / "csrc").glob("*")) + list((REPO / "vendor" / "libev").glob("*"))
    return max(p.stat().st_mtime for p in paths if p.exists())


def native_venv(version: str, python: str, log) -> Path:
    venv = WORK / f"venv{version}"
    marker = venv / ".evloop-installed"
    if not (venv / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True, stdout=log, stderr=log)
    if not marker.exists() or marker.stat().st_mtime < _newest_source_mtime():
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-e",
                        ".[test]"], cwd=REPO, check=True, stdout=log, stderr=log)
        marker.touch()
    return venv / "bin" / "python"


def run_in(kind: str, where: str, version: str, argv: List[str], log) -> Tuple[int, str]:
    """Run ``python argv...`` for ``version``; return (status, output)."""
    if kind == "native":
        python = str(native_venv(version, where, log))
        cmd = [python] + argv
    else:
        cmd = ["bash", where, "run", version, "--", "python"] + argv
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", stdin=subprocess.DEVNULL)
    log.write(proc.stdout)
    return proc.returncode, proc.stdout


_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")


def summarize_pytest(status: int, out: str) -> Tuple[bool, str]:
    last = [l for l in out.splitlines() if re.search(r"\b(passed|failed|error|no tests ran)\b", l)]
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    if last:
        for n, word in _PYTEST_COUNT.findall(last[-1]):
            key = "error" if word.startswith("error") else word
            if key in counts:
                counts[key] += int(n)
    text = (f"{counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped, {counts['error']} errors")
    return status == 0 and counts["passed"] > 0, text


def _failing(out: str, variant: str) -> List[str]:
    """Test ids listed under 'N failures/errors on VARIANT:' by asyncio_tests.py."""
    names: List[str] = []
    grab = False
    for line in out.splitlines():
        m = re.match(r"^(\d+) failures/errors on (\w+):", line)
        if m:
            grab = m.group(2) == variant
            continue
        if grab:
            m = re.match(r"^\s+\[(?:failed|error)\] (\S+?):", line)
            if m:
                names.append(m.group(1))
            elif line.strip():
                grab = False
    return names


def summarize_asyncio(status: int, out: str) -> Tuple[bool, str]:
    if "failures/errors on evloop" not in out:
        return False, f"did not finish (exit {status})"
    ours, theirs = _failing(out, "evloop"), _failing(out, "stdlib")
    only = sorted(set(ours) - set(theirs))
    text = (f"evloop.aio {len(ours)} failing, stdlib loop {len(theirs)} failing, "
            f"only on evloop.aio: {len(only)}" + (f" ({', '.join(only[:5])})" if only else ""))
    return not only, text


def summarize_gevent(status: int, out: str) -> Tuple[bool, str]:
    m = re.search(r"^RESULT: (.*)$", out, re.M)
    only = re.search(r"^failing only with evloop: (\d+)", out, re.M)
    if not m:
        return False, f"did not finish (exit {status})"
    return status == 0, m.group(1) + (f"; only on evloop's loop: {only.group(1)}" if only else "")


def summarize_sdist(status: int, out: str) -> Tuple[bool, str]:
    m = re.search(r"^smoke ok (\S+)", out, re.M)
    return status == 0 and bool(m), ("sdist installed, smoke ok" if m else f"failed (exit {status})")


SDIST_SCRIPT = """set -e
python -m pip install -q build
rm -rf "$1" && mkdir -p "$1"
python -m build --sdist --outdir "$1/dist" . >/dev/null
python -m venv "$1/venv"
"$1/venv/bin/python" -m pip install -q "$1"/dist/*.tar.gz
cd "$1" && "$1/venv/bin/python" -c "$2" "$3"
"""


def run_suite(suite: str, version: str, kind: str, where: str, extra: List[str],
              log) -> Tuple[bool, str]:
    if suite == "pytest":
        status, out = run_in(kind, where, version,
                             ["-m", "pytest", "-q", "-p", "no:cacheprovider"] + extra, log)
        return summarize_pytest(status, out)
    if suite == "asyncio":
        if kind == "sid":
            subprocess.run(["bash", where, "apt", f"libpython{version}-testsuite"],
                           stdout=log, stderr=log)
        status, out = run_in(kind, where, version, ["tools/asyncio_tests.py"] + extra, log)
        return summarize_asyncio(status, out)
    if suite == "gevent":
        status, out = run_in(kind, where, version, ["tools/gevent_tests.py"] + extra, log)
        return summarize_gevent(status, out)
    if suite == "sdist":
        scratch = f"/tmp/evloop-sdist-{version}"
        argv = ["-c", "import subprocess, sys; sys.exit(subprocess.call(['bash', '-c', "
                      "sys.argv[1], 'sdist'] + sys.argv[2:]))",
                SDIST_SCRIPT, scratch, SMOKE, str(REPO if kind == "native" else "/src")]
        status, out = run_in(kind, where, version, argv, log)
        return summarize_sdist(status, out)
    raise SystemExit(f"unknown suite {suite!r}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", default=",".join(VERSIONS))
    parser.add_argument("--suite", default="pytest",
                        help="comma-separated: pytest, asyncio, gevent, sdist")
    parser.add_argument("extra", nargs="*", help="arguments for the suite (after --)")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    rows = []
    ok_all = True
    for suite in args.suite.split(","):
        for version in args.versions.split(","):
            kind, where = find_interpreter(version)
            logpath = WORK / f"{suite}-{version}.log"
            started = time.monotonic()
            if kind == "none":
                ok, text = False, "no interpreter"
            else:
                print(f"[matrix] {suite} on {version} ({kind}: {where}) ... log {logpath}",
                      file=sys.stderr, flush=True)
                with open(logpath, "w") as log:
                    try:
                        ok, text = run_suite(suite, version, kind, where, args.extra, log)
                    except subprocess.CalledProcessError as exc:
                        ok, text = False, f"setup failed: {exc}"
            elapsed = time.monotonic() - started
            ok_all &= ok
            line = f"{version:<5} {suite:<8} {'OK  ' if ok else 'FAIL'} {text}  ({elapsed:.0f} s)"
            rows.append(line)
            print(line, flush=True)
    print("\n" + "\n".join(rows))
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
