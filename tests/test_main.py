"""Tests for ``python -m evloop`` (evloop/__main__.py) and its ``bench`` subcommand
(evloop/_bench.py): the report names the right versions, backend and configuration, the
benchmark runs and prints its table, and bad arguments are argparse errors (exit 2).
Everything runs in a child interpreter, as a user would run it."""
import importlib.metadata
import json
import platform
import re

from evloop import _bench, _config, core
from evloop.__main__ import INTEGRATIONS

from _helpers import run_command


def info(env=None, expect_rc=0):
    return run_command(["-m", "evloop"], env=env, expect_rc=expect_rc)


def field(stdout, name):
    """The value after ``name:`` on the report's line for it."""
    match = re.search(rf"^\s+{re.escape(name)}:\s+(.*)$", stdout, re.M)
    assert match, f"no {name!r} line in:\n{stdout}"
    return match.group(1)


def test_info_reports_versions_backend_and_python():
    import evloop

    out = info().stdout
    assert field(out, "version").startswith(evloop.__version__)
    assert field(out, "libev") == core.get_version()
    backend = field(out, "backend in use").split()[0]
    assert backend in core.supported_backends()
    assert field(out, "backends") == (
        f"supported {', '.join(core.supported_backends())}; "
        f"recommended {', '.join(core.recommended_backends())}")
    python = re.findall(r"^\s+version:\s+(.*)$", out, re.M)[1]
    assert python.startswith(f"{platform.python_version()} ({platform.python_implementation()}")


def test_info_lists_every_setting_with_its_source():
    out = info(env={"EVLOOP_BACKEND": "poll", "EVLOOP_THREADPOOL_SIZE": "3"}).stdout
    assert field(out, "backend in use") == "poll"
    rows = {m.group(1): (m.group(2), m.group(3))
            for m in re.finditer(r"^\s+(EVLOOP_\w+)\s+(.*?)\s+\[(.*)\]$", out, re.M)}
    assert list(rows) == [name for name, _ in _config.VARIABLES]
    assert rows["EVLOOP_BACKEND"] == ("poll", "from the environment")
    assert rows["EVLOOP_THREADPOOL_SIZE"] == ("3", "from the environment")
    assert rows["EVLOOP_RESOLVER"] == ("thread", "default")
    assert rows["EVLOOP_MAX_BLOCKING_TIME"] == ("0.1", "default")


def test_variables_cover_every_setting_config_reads():
    source = open(_config.__file__, encoding="utf-8").read()
    read = set(re.findall(r'env\.get\("(EVLOOP_\w+)"\)', source))
    assert read == {name for name, _ in _config.VARIABLES}
    config = _config.Config({})
    for _, attribute in _config.VARIABLES:
        assert hasattr(config, attribute)


def test_info_names_each_optional_package_with_its_version():
    out = info().stdout
    for name, _ in INTEGRATIONS:
        match = re.search(rf"^\s+{name}\s+(\S+(?: installed)?)", out, re.M)
        assert match, f"no line for {name}:\n{out}"
        try:
            expected = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            expected = "not installed"
        assert match.group(1) == expected


def test_a_bad_setting_is_reported_not_a_traceback():
    proc = info(env={"EVLOOP_RESOLVER": "carrier-pigeon"}, expect_rc=1)
    assert "EVLOOP_RESOLVER='carrier-pigeon'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unavailable_backend_is_reported_and_the_report_still_printed():
    unavailable = next(b for b in ("kqueue", "epoll", "poll", "select")
                       if b not in core.supported_backends())
    proc = info(env={"EVLOOP_BACKEND": unavailable}, expect_rc=1)
    assert field(proc.stdout, "backend in use").startswith("none: a hub cannot start")
    assert f"EVLOOP_BACKEND={unavailable}:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(r"^\s+greenlet\s+\S", proc.stdout, re.M)  # the rest of the report


def test_bench_quick_prints_a_table_and_writes_json(tmp_path):
    out_file = tmp_path / "bench.json"
    proc = run_command(["-m", "evloop", "bench", "--quick", "--only", "sleep0,tcp_echo",
                        "--impls", "evloop,evloop.aio,asyncio", "--json", str(out_file)],
                       timeout=120)
    header = next(line for line in proc.stdout.splitlines() if line.startswith("workload"))
    assert header.split() == ["workload", "evloop", "ops/s", "evloop.aio", "ops/s",
                              "asyncio", "ops/s", "evloop/asyncio", "evloop.aio/asyncio"]
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()
            if line.split()[:1] in (["sleep0"], ["tcp_echo"])}
    assert set(rows) == {"sleep0", "tcp_echo"}
    for row in rows.values():
        ratio = float(row.split()[-1])
        assert ratio > 0
    progress = [line for line in proc.stderr.splitlines() if line.startswith("[1/1]")]
    assert len(progress) == 2, proc.stderr
    document = json.loads(out_file.read_text())
    assert document["repeat"] == 1 and document["seconds"] == _bench.QUICK_SECONDS
    sleep0 = document["workloads"]["sleep0"]
    assert set(sleep0["impls"]) == {"evloop", "evloop.aio", "asyncio"}
    assert sleep0["impls"]["evloop"]["median"] > 0
    assert sleep0["ratios"]["evloop/asyncio"] == (
        sleep0["impls"]["evloop"]["median"] / sleep0["impls"]["asyncio"]["median"])


def test_bench_runs_against_gevent_when_it_is_importable():
    # gevent is in the [test] extra, so it is importable here
    proc = run_command(["-m", "evloop", "bench", "--quick", "--only", "event_pingpong",
                        "--impls", "evloop,gevent"], timeout=120)
    row = next(line for line in proc.stdout.splitlines() if line.startswith("event_pingpong"))
    assert float(row.split()[-1]) > 0
    assert f"gevent {importlib.metadata.version('gevent')}" in proc.stdout


def test_bad_arguments_exit_2():
    for args in (["frobnicate"], ["bench", "--repeat", "x"], ["bench", "--repeat", "0"],
                 ["bench", "--only", "nope"], ["bench", "--impls", "evloop,nope"],
                 ["bench", "--seconds", "-1"], ["--bogus"]):
        proc = run_command(["-m", "evloop", *args], expect_rc=2)
        assert "usage:" in proc.stderr, args
        assert "Traceback" not in proc.stderr, args


def test_bench_child_entry_point_rejects_bad_arguments():
    proc = run_command(["-m", "evloop._bench", "worker", "evloop"], expect_rc=2)
    assert "usage:" in proc.stderr
