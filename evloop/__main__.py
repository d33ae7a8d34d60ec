"""``python -m evloop``: what this installation is, and ``python -m evloop bench``: how fast.

Why it exists: a user who installed evloop (or is reporting a bug) needs one command that
says which evloop, libev, backend, CPython and configuration are in force and which
optional packages evloop would meet, and one that shows, on their own machine, evloop
against whichever peers (gevent, uvloop, the stdlib's asyncio) their interpreter has.
It must not change anything: it only reads the environment and the installed packages
(``bench`` runs its workloads in child processes, evloop/_bench.py).
"""
import argparse
import importlib.metadata
import os
import platform
import sys
from typing import List, Optional, Sequence, Tuple

#: optional packages evloop works with or is compared with: (distribution, why it matters)
INTEGRATIONS: Tuple[Tuple[str, str], ...] = (
    ("greenlet", "required: the greenlets"),
    ("cffi", "required: the build of the C extension"),
    ("gevent", "evloop.integrations.gevent; a peer for `bench`"),
    ("uvloop", "a peer for `bench` (asyncio loop)"),
    ("aiohttp", "runs on evloop.aio"),
    ("uvicorn", "runs on evloop.aio"),
    ("gunicorn", "evloop.integrations.gunicorn.Worker"),
    ("httptools", "uvicorn's HTTP parser"),
    ("psycopg", "PostgreSQL driver (green with evloop.monkey)"),
    ("redis", "Redis client (green with evloop.monkey)"),
    ("pycares", "EVLOOP_RESOLVER=ares"),
)


def distribution_version(name: str) -> Optional[str]:
    """The installed version of distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def evloop_version() -> str:
    import evloop

    # the distribution is "pyevloop"; an uninstalled tree (PYTHONPATH) has only __version__
    dist = distribution_version("pyevloop")
    where = os.path.dirname(os.path.abspath(evloop.__file__))
    if dist is None:
        return f"{evloop.__version__} (not installed as a distribution; {where})"
    return f"{dist} ({where})"


def info_lines(problems: Optional[List[str]] = None) -> List[str]:
    """The report ``python -m evloop`` prints, one line per fact; what would stop evloop
    from working (a backend that cannot be created) is appended to ``problems`` too."""
    from evloop import _config, core

    if problems is None:
        problems = []

    config = _config.get_config()
    lines = ["evloop", f"  version:           {evloop_version()}"]
    runtime, header = core.get_version(), core.get_header_version()
    libev = runtime if runtime == header else f"{runtime} (compiled against {header})"
    lines.append(f"  libev:             {libev}")
    try:
        loop = core.loop(flags=config.backend, default=False)
    except ValueError as exc:  # EVLOOP_BACKEND names backends this build lacks
        problems.append(f"EVLOOP_BACKEND={config.backend}: {exc}")
        lines.append(f"  backend in use:    none: a hub cannot start ({exc})")
    else:
        try:
            backend = loop.backend
        finally:
            loop.destroy()
        lines.append(f"  backend in use:    {backend}"
                     + ("" if config.backend else " (libev's choice)"))
    lines.append(f"  backends:          supported {', '.join(core.supported_backends())}; "
                 f"recommended {', '.join(core.recommended_backends())}")
    lines += ["", "Python",
              f"  version:           {platform.python_version()} "
              f"({platform.python_implementation()}, {sys.implementation.name})",
              f"  executable:        {sys.executable}",
              f"  platform:          {platform.platform()}"]
    lines += ["", "configuration (EVLOOP_* environment variables)"]
    width = max(len(name) for name, _ in _config.VARIABLES)
    for name, attribute in _config.VARIABLES:
        value = getattr(config, attribute)
        source = "from the environment" if os.environ.get(name, "").strip() else "default"
        shown = "(libev's choice)" if value is None else value
        lines.append(f"  {name:<{width}}  {shown}  [{source}]")
    lines += ["", "packages"]
    width = max(len(name) for name, _ in INTEGRATIONS)
    for name, why in INTEGRATIONS:
        version = distribution_version(name) or "not installed"
        lines.append(f"  {name:<{width}}  {version:<14} {why}")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evloop",
        description="Print evloop's version, libev's, the backend, CPython, the EVLOOP_* "
                    "configuration in force and the optional packages installed; "
                    "`bench` compares evloop with the peers this interpreter has.")
    commands = parser.add_subparsers(dest="command", metavar="{bench}")
    bench = commands.add_parser(
        "bench", help="about a minute of workloads: evloop against gevent, uvloop and "
                      "asyncio, whichever are importable here",
        description="Small workloads (sleep(0), spawn+join, timers, Event ping-pong, "
                    "socketpair ping-pong, TCP echo), each run in a fresh child process "
                    "per implementation, interleaved, median of the runs; prints ops/s "
                    "and evloop/peer ratios (> 1: evloop is faster).")
    from evloop import _bench

    _bench.add_arguments(bench)
    args = parser.parse_args(argv)
    from evloop import _config

    try:
        _config.get_config()
    except ValueError as exc:  # a bad EVLOOP_* value: say which, without a traceback
        print(f"python -m evloop: {exc}", file=sys.stderr)
        return 1
    if args.command == "bench":
        return _bench.main(args, parser=bench)
    problems: List[str] = []
    print("\n".join(info_lines(problems)))
    for problem in problems:
        print(f"python -m evloop: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
