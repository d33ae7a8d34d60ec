"""Benchmark harness: evloop against its peers, interleaved, medians and ratios.

This machine is shared and noisy, so an absolute time alone means little: every
implementation runs every workload in the same session, runs are interleaved (repeat ->
workload -> impl, the impl order rotating each repeat) so drift hits all of them alike,
and the table reports per-workload medians and evloop/peer ratios. Each run is a fresh
subprocess (``workloads/<name>.py <impl>``) in the impl's own interpreter and environment;
the workload times its hot part itself and prints ``{"ops": N, "seconds": T}``.

    python benchmarks/run.py [--repeat N] [--only NAME,...] [--impls evloop,gevent,...] [--markdown]
                             [--metric wall|cpu] [--json FILE [--update]]

An impl is a name the workloads dispatch on, an interpreter and extra environment: add a
row to IMPLS (and a branch where ``_common`` imports it) for a new peer.
"""

import argparse
import datetime
import importlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "workloads"
PEERS_PYTHON = str(HERE / ".peers" / "bin" / "python")
RUN_TIMEOUT = 120  # seconds, per subprocess


@dataclass(frozen=True)
class Impl:
    name: str  # the impl's name in tables; passed to the workload as argv[1] unless `arg`
    python: str  # interpreter to run the workload with
    module: str  # imported once before the runs, to fail early and clearly
    dist: str  # distribution whose version is reported ("" for the standard library)
    env: dict = field(default_factory=dict)  # added to the environment
    arg: str = ""  # the workload's impl argument, when not `name` (--before impls)

    @property
    def workload_impl(self):
        return self.arg or self.name


IMPLS = {
    impl.name: impl
    for impl in [
        # the distribution is "pyevloop"; builds from before the rename are "evloop"
        Impl("evloop", sys.executable, "evloop.core", "pyevloop|evloop"),
        Impl("gevent", PEERS_PYTHON, "gevent.core", "gevent", {"GEVENT_LOOP": "libev-cext"}),
        # gevent's hub on evloop's loop (docs/gevent.md): evloop's interpreter, with gevent
        Impl("gevent-evloop", sys.executable, "evloop.integrations.gevent", "gevent",
             {"GEVENT_LOOP": "evloop.integrations.gevent.loop"}),
        Impl("uvloop", PEERS_PYTHON, "uvloop", "uvloop"),
        # the stdlib loop, with evloop's interpreter (which need not have uvloop)
        Impl("asyncio", sys.executable, "asyncio", ""),
        # evloop's asyncio event loop
        Impl("evloop.aio", sys.executable, "evloop.aio", "pyevloop|evloop"),
    ]
}
# ratio columns: each baseline against the peers it is compared with
BASELINES = {"evloop": ("gevent", "uvloop", "asyncio"), "evloop.aio": ("uvloop", "asyncio"),
             "gevent-evloop": ("gevent",)}
# the impls run when --impls is not given (gevent-evloop needs gevent in evloop's interpreter)
DEFAULT_IMPLS = [name for name in IMPLS if name != "gevent-evloop"]


def discover_workloads():
    """{name: impl names it supports} for every workloads/<name>.py not starting with _."""
    sys.path.insert(0, str(WORKLOADS))
    names = sorted(p.stem for p in WORKLOADS.glob("*.py") if not p.stem.startswith("_"))
    return {name: tuple(importlib.import_module(name).IMPLS) for name in names}


def environ(impl):
    return {**os.environ, **impl.env}


def probe(impl):
    """Python and package version of an impl; exits if it cannot be imported."""
    # the first of the '|'-separated distribution names that is installed
    version = (f"next(md.version(d) for d in {impl.dist.split('|')!r} "
               f"if list(md.distributions(name=d)))" if impl.dist else "'(stdlib)'")
    code = (
        f"import sys, importlib.metadata as md, {impl.module}\n"
        f"print(sys.version.split()[0], {version})"
    )
    try:
        proc = subprocess.run([impl.python, "-c", code], env=environ(impl), cwd=WORKLOADS,
                              capture_output=True, text=True)
    except OSError as exc:
        proc = subprocess.CompletedProcess([], 1, "", str(exc))
    if proc.returncode:
        hint = ("run benchmarks/setup_peers.sh" if impl.python == PEERS_PYTHON
                else f"install {impl.dist.split('|')[0] or impl.module} there")
        hint += f", or leave {impl.name} out of --impls"
        detail = (proc.stderr.strip().splitlines() or [proc.stdout.strip()])[-1]
        sys.exit(f"{impl.name}: cannot import {impl.module} with {impl.python}: {detail}\n"
                 f"({hint})")
    python, version = proc.stdout.split()
    return python, version


def run_once(workload, impl, metric="wall"):
    """ops/s of one run (per wall second, or per CPU second of the workload process when
    metric is "cpu" and the workload measured it), or an error string."""
    cmd = [impl.python, str(WORKLOADS / f"{workload}.py"), impl.workload_impl]
    try:
        proc = subprocess.run(cmd, env=environ(impl), cwd=WORKLOADS, capture_output=True,
                              text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"timed out after {RUN_TIMEOUT}s"
    if proc.returncode:
        return f"exit status {proc.returncode}:\n{proc.stderr.strip()}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if metric == "cpu" and result.get("cpu"):
        return result["ops"] / result["cpu"]
    return result["ops"] / result["seconds"]


def measure(workloads, impls, repeat, metric="wall"):
    """{(workload, impl): [ops/s, ...]}, runs interleaved; failing pairs are dropped."""
    samples, failed = {}, set()
    for r in range(repeat):
        order = impls[r % len(impls):] + impls[:r % len(impls)]
        for workload, supported in workloads.items():
            for name in order:
                if IMPLS[name].workload_impl not in supported or (workload, name) in failed:
                    continue
                result = run_once(workload, IMPLS[name], metric)
                if isinstance(result, str):
                    failed.add((workload, name))
                    print(f"{workload} {name}: {result}", file=sys.stderr)
                    continue
                samples.setdefault((workload, name), []).append(result)
                print(f"[{r + 1}/{repeat}] {workload:<20} {name:<8} {human(result):>8} ops/s",
                      file=sys.stderr, flush=True)
    return samples, failed


def human(rate):
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.2f} {unit}"
    return f"{rate:.0f}"


def table(workloads, impls, samples, failed):
    pairs = [(base, peer) for base, peers in BASELINES.items() if base in impls
             for peer in peers if peer in impls]
    header = ["workload"] + [f"{name} ops/s" for name in impls]
    header += [f"{base}/{peer}" for base, peer in pairs]
    rows = []
    for workload, supported in workloads.items():
        medians, row = {}, [workload]
        for name in impls:
            runs = samples.get((workload, name))
            if runs:
                medians[name] = median = statistics.median(runs)
                spread = max(abs(x - median) for x in runs) / median
                row.append(f"{human(median)} ±{spread:.0%}")
            else:
                row.append("error" if (workload, name) in failed else "-")
        for base, peer in pairs:
            ok = base in medians and peer in medians
            row.append(f"{medians[base] / medians[peer]:.2f}" if ok else "-")
        rows.append(row)
    return header, rows


def write_json(path, workloads, impls, versions, samples, failed, lines, args):
    """The figures in machine-readable form: per workload, each impl's runs, median and
    spread (or its error), and the ratios of the table (benchmarks/chart.py draws them)."""
    pairs = [(base, peer) for base, peers in BASELINES.items() if base in impls
             for peer in peers if peer in impls]
    results = {}
    for workload, supported in workloads.items():
        cells = {}
        for name in impls:
            runs = samples.get((workload, name))
            if runs:
                median = statistics.median(runs)
                cells[name] = {"median": median, "runs": runs,
                               "spread": max(abs(x - median) for x in runs) / median}
            elif (workload, name) in failed:
                cells[name] = {"error": True}
        ratios = {f"{base}/{peer}": cells[base]["median"] / cells[peer]["median"]
                  for base, peer in pairs
                  if "median" in cells.get(base, {}) and "median" in cells.get(peer, {})}
        results[workload] = {"impls": cells, "ratios": ratios}
    run = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"{Path(sys.executable).name} {shlex.join(sys.argv)}",
        "metric": args.metric,
        "repeat": args.repeat,
        "context": lines,
        "versions": {name: {"python": versions[name][0], "version": versions[name][1]}
                     for name in impls},
    }
    for result in results.values():
        result["run"] = run["date"]
    document = {**run, "runs": {run["date"]: run}, "workloads": results}
    if args.update and os.path.exists(path):
        # replace the workloads run now, keep the others with the run they came from
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        kept = {name: result for name, result in old["workloads"].items()
                if name not in results}
        document["workloads"] = {**kept, **results}
        used = {result["run"] for result in document["workloads"].values()}
        runs = {**old.get("runs", {}), run["date"]: run}
        document["runs"] = {date: r for date, r in runs.items() if date in used}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


def render(header, rows, markdown):
    if markdown:
        lines = [header, ["---"] + ["---:"] * (len(header) - 1)] + rows
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(line[i]) for line in [header] + rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(line, widths)))
        for line in [header] + rows)


def context(args, impls, versions):
    """Lines saying what was run where: enough to reproduce or distrust a table."""
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"command: `{Path(sys.executable).name} {shlex.join(sys.argv)}`",
        f"date: {date}; nproc: {ncpu}; {platform.system()} {platform.release()} {platform.machine()}",
    ]
    for name in impls:
        impl, (python, version) = IMPLS[name], versions[name]
        env = "".join(f", {k}={v}" for k, v in impl.env.items())
        lines.append(f"{name} {version}: Python {python} ({impl.python}{env})")
    if args.metric == "cpu":
        lines.append("metric: ops per CPU second of the workload process during its timed "
                     "part (time.process_time; tcp_echo: the server's, over the load "
                     "generator's counted part); gunicorn_keepalive and gunicorn_close per "
                     "wall second")
    lines.append(f"medians of {args.repeat} interleaved runs; ± is the largest deviation of "
                 f"a run from the median; X/peer > 1 means X is faster")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per workload and impl")
    parser.add_argument("--only", help="comma-separated workloads (default: all)")
    parser.add_argument("--impls", default=",".join(DEFAULT_IMPLS),
                        help="comma-separated implementations (default: %(default)s)")
    parser.add_argument("--before", metavar="PYTHON",
                        help="an interpreter with an earlier evloop build installed: adds the "
                             "impls evloop-before and evloop.aio-before (and gevent-evloop-before "
                             "when named in --impls), run interleaved with the rest, and "
                             "after/before ratio columns")
    parser.add_argument("--markdown", action="store_true", help="print a markdown report")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the results to FILE (what benchmarks/chart.py reads)")
    parser.add_argument("--update", action="store_true",
                        help="with --json: replace only the workloads run now in an existing "
                             "FILE, keeping the others (each workload names the run, with "
                             "its date and command, that measured it)")
    parser.add_argument("--metric", choices=("wall", "cpu"), default="wall",
                        help="ops per wall-clock second (default), or per CPU second of the "
                             "workload process during its timed part: less sensitive to other "
                             "processes on a busy machine; gunicorn_keepalive and "
                             "gunicorn_close stay on wall time (their _cpu variants count "
                             "the worker's CPU)")
    args = parser.parse_args()
    if args.before:
        for name in ("evloop", "evloop.aio", "gevent-evloop"):
            base = IMPLS[name]
            IMPLS[f"{name}-before"] = Impl(f"{name}-before", args.before, base.module,
                                           base.dist, base.env, arg=name)
            BASELINES[name] = BASELINES[name] + (f"{name}-before",)
        if args.impls == parser.get_default("impls"):
            args.impls = ",".join(DEFAULT_IMPLS + [f"{n}-before" for n in ("evloop", "evloop.aio")])

    workloads = discover_workloads()
    if args.only:
        only = args.only.split(",")
        unknown = set(only) - set(workloads)
        if unknown:
            parser.error(f"unknown workloads {sorted(unknown)}; choose from {list(workloads)}")
        workloads = {name: workloads[name] for name in only}
    impls = args.impls.split(",")
    unknown = set(impls) - set(IMPLS)
    if unknown:
        parser.error(f"unknown impls {sorted(unknown)}; choose from {list(IMPLS)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.update and not args.json:
        parser.error("--update needs --json FILE")

    versions = {name: probe(IMPLS[name]) for name in impls}
    samples, failed = measure(workloads, impls, args.repeat, args.metric)
    header, rows = table(workloads, impls, samples, failed)
    lines = context(args, impls, versions)
    if args.markdown:
        print("\n".join(f"- {line}" for line in lines) + "\n")
    else:
        print("\n".join(lines) + "\n")
    print(render(header, rows, args.markdown))
    if args.json:
        write_json(args.json, workloads, impls, versions, samples, failed, lines, args)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
