"""Tests for ``evloop._config``: the EVLOOP_* environment variables, parsed by
``Config(environ={...})``, and their effect on new hubs (in subprocesses, so that this
process's configuration is left alone).

| variable | accepted | default |
|---|---|---|
| EVLOOP_BACKEND | epoll, poll, select, kqueue; comma-separated; case-insensitive | None |
| EVLOOP_MONITOR_THREAD | 1/0, true/false, yes/no, on/off (case-insensitive); empty = off | off |
| EVLOOP_MAX_BLOCKING_TIME | a finite number of seconds > 0 | 0.1 |
| EVLOOP_THREADPOOL_SIZE | an integer > 0 | 10 |
| EVLOOP_AIO_TRANSPORTS | evloop, asyncio (case-insensitive) | evloop |

Invalid values raise ValueError naming the variable.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import evloop
from evloop import _config
from evloop._config import Config, get_config

PKG_PARENT = str(Path(evloop.__file__).resolve().parent.parent)


def run_script(code, env=None, timeout=60, expect_rc=0):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EVLOOP_")}
    full_env["PYTHONPATH"] = PKG_PARENT + (os.pathsep + full_env["PYTHONPATH"]
                                           if full_env.get("PYTHONPATH") else "")
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=PKG_PARENT, env=full_env)
    if expect_rc is not None:
        assert proc.returncode == expect_rc, (
            f"exit code {proc.returncode} (expected {expect_rc})\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return proc


# --------------------------------------------------------------------------------------
# defaults
# --------------------------------------------------------------------------------------

def test_defaults():
    c = Config(environ={})
    assert c.backend is None
    assert c.monitor_thread is False
    assert c.max_blocking_time == 0.1
    assert c.threadpool_size == 10
    assert isinstance(c.threadpool_size, int)


def test_unrelated_variables_are_ignored():
    c = Config(environ={"GEVENT_LOOP": "libuv", "EVLOOP_UNKNOWN": "x", "PATH": "/bin"})
    assert c.backend is None and c.monitor_thread is False


def test_explicit_environ_does_not_read_os_environ(monkeypatch):
    monkeypatch.setenv("EVLOOP_BACKEND", "poll")
    monkeypatch.setenv("EVLOOP_THREADPOOL_SIZE", "3")
    c = Config(environ={})
    assert c.backend is None
    assert c.threadpool_size == 10


def test_default_environ_is_os_environ(monkeypatch):
    monkeypatch.setenv("EVLOOP_BACKEND", "select")
    monkeypatch.setenv("EVLOOP_MAX_BLOCKING_TIME", "0.25")
    c = Config()
    assert c.backend == "select"
    assert c.max_blocking_time == 0.25


def test_empty_values_mean_default():
    c = Config(environ={"EVLOOP_BACKEND": "", "EVLOOP_MONITOR_THREAD": "",
                        "EVLOOP_MAX_BLOCKING_TIME": "", "EVLOOP_THREADPOOL_SIZE": "  "})
    assert c.backend is None
    assert c.monitor_thread is False
    assert c.max_blocking_time == 0.1
    assert c.threadpool_size == 10


# --------------------------------------------------------------------------------------
# EVLOOP_BACKEND
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [
    ("epoll", "epoll"), ("poll", "poll"), ("select", "select"), ("kqueue", "kqueue"),
    ("POLL", "poll"), (" Epoll ", "epoll"), ("epoll,poll", "epoll,poll"),
    (" epoll , select ", "epoll,select"), ("poll,", "poll"),
])
def test_backend(raw, expected):
    assert Config(environ={"EVLOOP_BACKEND": raw}).backend == expected


@pytest.mark.parametrize("raw", ["libuv", "epol", "epoll,bogus", "io_uring", "1", "default"])
def test_backend_invalid(raw):
    with pytest.raises(ValueError) as info:
        Config(environ={"EVLOOP_BACKEND": raw})
    assert "EVLOOP_BACKEND" in str(info.value)
    assert "epoll" in str(info.value)  # it lists what is accepted


# --------------------------------------------------------------------------------------
# EVLOOP_MONITOR_THREAD
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["1", "true", "True", "TRUE", "yes", "on", "ON", " 1 "])
def test_monitor_thread_on(raw):
    assert Config(environ={"EVLOOP_MONITOR_THREAD": raw}).monitor_thread is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off", "OFF", ""])
def test_monitor_thread_off(raw):
    assert Config(environ={"EVLOOP_MONITOR_THREAD": raw}).monitor_thread is False


@pytest.mark.parametrize("raw", ["2", "maybe", "y", "enabled", "-1"])
def test_monitor_thread_invalid(raw):
    with pytest.raises(ValueError) as info:
        Config(environ={"EVLOOP_MONITOR_THREAD": raw})
    assert "EVLOOP_MONITOR_THREAD" in str(info.value)


# --------------------------------------------------------------------------------------
# EVLOOP_MAX_BLOCKING_TIME
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [("0.5", 0.5), ("2", 2.0), (" 0.25 ", 0.25),
                                          ("1e-3", 0.001)])
def test_max_blocking_time(raw, expected):
    assert Config(environ={"EVLOOP_MAX_BLOCKING_TIME": raw}).max_blocking_time == expected


@pytest.mark.parametrize("raw", ["0", "-1", "-0.5", "nan", "inf", "-inf", "abc", "0.1s",
                                 "1,5"])
def test_max_blocking_time_invalid(raw):
    with pytest.raises(ValueError) as info:
        Config(environ={"EVLOOP_MAX_BLOCKING_TIME": raw})
    assert "EVLOOP_MAX_BLOCKING_TIME" in str(info.value)


# --------------------------------------------------------------------------------------
# EVLOOP_THREADPOOL_SIZE
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [("1", 1), ("4", 4), (" 32 ", 32), ("100", 100)])
def test_threadpool_size(raw, expected):
    size = Config(environ={"EVLOOP_THREADPOOL_SIZE": raw}).threadpool_size
    assert size == expected
    assert isinstance(size, int)


@pytest.mark.parametrize("raw", ["0", "-2", "1.5", "x", "inf", "nan", "ten"])
def test_threadpool_size_invalid(raw):
    with pytest.raises(ValueError) as info:
        Config(environ={"EVLOOP_THREADPOOL_SIZE": raw})
    assert "EVLOOP_THREADPOOL_SIZE" in str(info.value)


def test_every_invalid_variable_is_named():
    # the first bad variable is reported, whichever it is
    for name in ("EVLOOP_BACKEND", "EVLOOP_MONITOR_THREAD", "EVLOOP_MAX_BLOCKING_TIME",
                 "EVLOOP_THREADPOOL_SIZE"):
        with pytest.raises(ValueError, match=name):
            Config(environ={name: "definitely-not-valid"})


# --------------------------------------------------------------------------------------
# get_config, and the effect on hubs (subprocesses)
# --------------------------------------------------------------------------------------

def test_get_config_is_read_once():
    assert get_config() is get_config()
    assert isinstance(get_config(), Config)


def test_get_config_reads_the_environment_once():
    proc = run_script("""
        import os
        from evloop._config import get_config
        c = get_config()
        os.environ["EVLOOP_THREADPOOL_SIZE"] = "99"
        print("size", get_config().threadpool_size, get_config() is c)
    """, env={"EVLOOP_THREADPOOL_SIZE": "3"})
    assert "size 3 True" in proc.stdout


def test_importing_evloop_does_not_validate_the_environment():
    # the configuration is read at first use (the first hub), not at import
    proc = run_script("""
        import evloop
        print("imported")
        try:
            evloop.get_hub()
        except ValueError as ex:
            print("ValueError", ex)
    """, env={"EVLOOP_BACKEND": "bogus"})
    assert "imported" in proc.stdout
    assert "ValueError" in proc.stdout and "EVLOOP_BACKEND" in proc.stdout


@pytest.mark.parametrize("backend", ["poll", "select", "epoll"])
def test_backend_selects_the_hubs_loop_backend(backend):
    proc = run_script("""
        import evloop
        hub = evloop.get_hub()
        evloop.sleep(0.01)
        g = evloop.spawn(lambda: "ran")
        print("backend", hub.loop.backend, g.get())
    """, env={"EVLOOP_BACKEND": backend})
    assert f"backend {backend} ran" in proc.stdout


def test_backend_applies_to_thread_hubs_too():
    proc = run_script("""
        import threading, evloop
        out = []
        def body():
            hub = evloop.get_hub()
            evloop.sleep(0.001)
            out.append(hub.loop.backend)
            hub.destroy()
        t = threading.Thread(target=body); t.start(); t.join()
        print("thread backend", out[0])
    """, env={"EVLOOP_BACKEND": "poll"})
    assert "thread backend poll" in proc.stdout


def test_invalid_backend_fails_at_first_hub():
    proc = run_script("""
        import evloop
        evloop.sleep(0)
    """, env={"EVLOOP_BACKEND": "bogus"}, expect_rc=None)
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr
    assert "EVLOOP_BACKEND" in proc.stderr


def test_monitor_thread_variable_starts_the_monitor():
    proc = run_script("""
        import evloop
        hub = evloop.get_hub()
        m = hub._monitor
        print("monitor", m is not None, m.max_blocking_time if m else None)
    """, env={"EVLOOP_MONITOR_THREAD": "yes", "EVLOOP_MAX_BLOCKING_TIME": "0.3"})
    assert "monitor True 0.3" in proc.stdout


def test_monitor_thread_off_starts_no_monitor():
    proc = run_script("""
        import threading, evloop
        hub = evloop.get_hub()
        evloop.sleep(0.01)
        names = [t.name for t in threading.enumerate()]
        print("monitor", hub._monitor, "evloop-monitor" in names)
    """, env={"EVLOOP_MONITOR_THREAD": "0"})
    assert "monitor None False" in proc.stdout


def test_config_attributes_may_be_changed_before_the_first_hub():
    proc = run_script("""
        from evloop._config import get_config
        get_config().backend = "poll"
        import evloop
        print("backend", evloop.get_hub().loop.backend)
    """)
    assert "backend poll" in proc.stdout


def test_config_module_does_not_import_the_hub():
    proc = run_script("""
        import sys
        import evloop._config
        print("hub imported", "evloop.hub" in sys.modules and
              sys.modules["evloop.hub"].get_hub_if_exists() is not None)
    """)
    assert "hub imported False" in proc.stdout
    assert _config.__doc__ and "EVLOOP_BACKEND" in _config.__doc__


@pytest.mark.parametrize("raw, value", [(None, "posix"), ("", "posix"), ("thread", "thread"),
                                        (" Block ", "block"), ("POSIX", "posix"),
                                        ("my_pkg.files.MyFile", "my_pkg.files.MyFile")])
def test_evloop_file(raw, value):
    env = {} if raw is None else {"EVLOOP_FILE": raw}
    assert Config(environ=env).fileobject == value


@pytest.mark.parametrize("raw", ["nonsense", "a.", ".Cls", "a b.C", "pkg.1Class"])
def test_evloop_file_rejects_what_names_no_kind_or_class(raw):
    with pytest.raises(ValueError, match="EVLOOP_FILE"):
        Config(environ={"EVLOOP_FILE": raw})


@pytest.mark.parametrize("raw, value", [(None, False), ("1", True), ("on", True),
                                        ("no", False)])
def test_evloop_track_greenlet_tree(raw, value):
    env = {} if raw is None else {"EVLOOP_TRACK_GREENLET_TREE": raw}
    assert Config(environ=env).track_greenlet_tree is value


def test_evloop_track_greenlet_tree_rejects_a_bad_value():
    with pytest.raises(ValueError, match="EVLOOP_TRACK_GREENLET_TREE"):
        Config(environ={"EVLOOP_TRACK_GREENLET_TREE": "maybe"})


@pytest.mark.parametrize("raw, value", [(None, None), ("", None), ("1000000", 1000000)])
def test_evloop_max_memory_usage(raw, value):
    env = {} if raw is None else {"EVLOOP_MAX_MEMORY_USAGE": raw}
    assert Config(environ=env).max_memory_usage == value


@pytest.mark.parametrize("raw", ["-5", "0", "1.5", "lots"])
def test_evloop_max_memory_usage_rejects_what_is_no_positive_integer(raw):
    with pytest.raises(ValueError, match="EVLOOP_MAX_MEMORY_USAGE"):
        Config(environ={"EVLOOP_MAX_MEMORY_USAGE": raw})


@pytest.mark.parametrize("raw, value", [(None, 5.0), ("0.5", 0.5)])
def test_evloop_memory_monitor_period(raw, value):
    env = {} if raw is None else {"EVLOOP_MEMORY_MONITOR_PERIOD": raw}
    assert Config(environ=env).memory_monitor_period == value


@pytest.mark.parametrize("raw", ["0", "-1", "inf", "soon"])
def test_evloop_memory_monitor_period_rejects_a_bad_value(raw):
    with pytest.raises(ValueError, match="EVLOOP_MEMORY_MONITOR_PERIOD"):
        Config(environ={"EVLOOP_MEMORY_MONITOR_PERIOD": raw})


# --------------------------------------------------------------------------------------
# EVLOOP_AIO_TRANSPORTS
# --------------------------------------------------------------------------------------

def test_aio_transports_values():
    assert Config(environ={}).aio_transports == "evloop"
    assert Config(environ={"EVLOOP_AIO_TRANSPORTS": " AsyncIO "}).aio_transports == "asyncio"
    assert Config(environ={"EVLOOP_AIO_TRANSPORTS": "evloop"}).aio_transports == "evloop"
    with pytest.raises(ValueError, match="EVLOOP_AIO_TRANSPORTS='uv'"):
        Config(environ={"EVLOOP_AIO_TRANSPORTS": "uv"})


@pytest.mark.parametrize("value, expected", [("", "StreamTransport"),
                                             ("asyncio", "_SocketTransport")])
def test_aio_transports_choose_the_loops_transport(value, expected):
    proc = run_script("""
        import asyncio, socket, evloop.aio
        async def main():
            a, b = socket.socketpair()
            tr, _ = await asyncio.get_running_loop().connect_accepted_socket(
                asyncio.Protocol, a)
            print(type(tr).__name__)
            tr.close()
            b.close()
        evloop.aio.run(main())
    """, env={"EVLOOP_AIO_TRANSPORTS": value})
    assert proc.stdout.split() == [expected]
