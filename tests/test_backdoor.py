"""Tests for evloop.backdoor: the interactive console per connection. The client side is
the same for evloop and gevent (the ``impl`` fixture, tests/conftest.py); the per-greenlet
redirection of sys streams is evloop's (gevent redirects the interpreter-wide streams while
the console's greenlet has most recently been switched into)."""
import importlib
import os
import socket as stdlib_socket
import sys
import tempfile

import pytest

import evloop
from evloop import backdoor

from _helpers import run_python


@pytest.fixture
def api(impl):
    return importlib.import_module(impl) if impl else None


@pytest.fixture
def bd(impl):
    return importlib.import_module(f"{impl}.backdoor") if impl else None


@pytest.fixture
def green_socket(impl):
    return importlib.import_module(f"{impl}.socket") if impl else None


def read_until(conn, postfix=b">>> "):
    data = b""
    while not data.endswith(postfix):
        chunk = conn.recv(1)
        if not chunk:
            raise AssertionError(f"connection ended before {postfix!r}; read {data!r}")
        data += chunk
    return data.decode()


def read_to_end(conn):
    data = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            return data.decode()
        data += chunk


def connect(green_socket, server):
    conn = green_socket.create_connection(("127.0.0.1", server.server_port))
    conn.settimeout(10)
    banner = read_until(conn)
    return conn, banner


@pytest.fixture
def server(bd):
    if bd is None:
        yield None
        return
    srv = bd.BackdoorServer(("127.0.0.1", 0), banner="Welcome stranger!",
                            locals={"foo": "From defined scope!"})
    srv.start()
    yield srv
    srv.stop()


def test_banner_locals_and_expressions(server, green_socket):
    conn, banner = connect(green_socket, server)
    try:
        assert banner.startswith("Welcome stranger!")
        conn.sendall(b"print(foo)\r\n")
        assert read_until(conn) == "From defined scope!\n>>> "
        conn.sendall(b"2 + 2\r\n")
        assert read_until(conn) == "4\n>>> "
        conn.sendall(b"def f():\r\n    return 7\r\n\r\n")
        assert read_until(conn).endswith(">>> ")
        conn.sendall(b"f()\r\n")
        assert read_until(conn) == "7\n>>> "
        conn.sendall(b"1/0\r\n")
        out = read_until(conn)
        assert "ZeroDivisionError" in out and out.endswith(">>> ")
        conn.sendall(b'locals()["__builtins__"]\r\n')
        assert len(read_until(conn)) < 300  # the module, not a huge dict
        conn.sendall(b"quit()\r\n")
        assert read_to_end(conn) == ""
    finally:
        conn.close()


@pytest.mark.parametrize("command", [b"quit()\r\n", b"exit()\r\n",
                                     b"import sys; sys.exit(0)\r\n"],
                         ids=["quit", "exit", "sys.exit"])
def test_quit_exit_and_sys_exit_close_the_connection(server, green_socket, command):
    conn, _ = connect(green_socket, server)
    try:
        conn.sendall(command)
        assert read_to_end(conn) == ""
    finally:
        conn.close()


def test_each_connection_has_its_own_locals(server, green_socket, api):
    a, _ = connect(green_socket, server)
    b, _ = connect(green_socket, server)
    try:
        a.sendall(b"x = 'mine'\r\n")
        read_until(a)
        b.sendall(b"x\r\n")
        assert "NameError" in read_until(b)
        a.sendall(b"x\r\n")
        assert read_until(a) == "'mine'\n>>> "
    finally:
        a.close()
        b.close()


def test_several_connections_at_once(server, green_socket, api):
    def session(n):
        conn, _ = connect(green_socket, server)
        try:
            conn.sendall(f"{n} * 2\r\n".encode())
            assert read_until(conn) == f"{n * 2}\n>>> "
            conn.sendall(b"quit()\r\n")
            return read_to_end(conn)
        finally:
            conn.close()

    jobs = [api.spawn(session, n) for n in range(8)]
    api.joinall(jobs, raise_error=True)
    assert [j.value for j in jobs] == [""] * 8


def test_the_console_can_wait_cooperatively(server, green_socket, api):
    conn, _ = connect(green_socket, server)
    try:
        conn.sendall(b"import " + api.__name__.encode() + b" as g\r\n")
        read_until(conn)
        conn.sendall(b"print('before'); g.sleep(0.05); print('after')\r\n")
        assert read_until(conn) == "before\nafter\n>>> "
    finally:
        conn.close()


def test_client_closing_ends_the_console(server, green_socket, api):
    conn, _ = connect(green_socket, server)
    conn.close()
    api.sleep(0.05)
    conn, _ = connect(green_socket, server)  # the server still serves
    conn.close()


def test_unix_socket_listener(bd, green_socket, api):
    path = tempfile.mktemp()
    listener = green_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(5)
    srv = bd.BackdoorServer(listener)
    srv.start()
    try:
        conn = green_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        conn.connect(path)
        conn.settimeout(10)
        read_until(conn)
        conn.sendall(b"40 + 2\r\n")
        assert read_until(conn) == "42\n>>> "
        conn.sendall(b"quit()\r\n")
        assert read_to_end(conn) == ""
        conn.close()
    finally:
        srv.stop()
        os.unlink(path)


# -- evloop's own ---------------------------------------------------------------------------------

@pytest.fixture
def evserver():
    srv = backdoor.BackdoorServer(("127.0.0.1", 0), locals={"evloop": evloop})
    srv.start()
    yield srv
    srv.stop()


def test_ctrl_d_line_ends_the_console(evserver):
    conn, _ = connect(evloop.socket, evserver)
    try:
        conn.sendall(b"\x04\r\n")
        assert read_to_end(conn) == "\n"  # the console ends the line at end of input
    finally:
        conn.close()


def test_only_the_console_greenlets_output_goes_to_the_connection(evserver, capsys):
    conn, _ = connect(evloop.socket, evserver)
    printed_elsewhere = []

    def elsewhere():
        evloop.sleep(0.05)  # while the console greenlet waits for input
        print("not for the console")
        printed_elsewhere.append(sys.stdout)

    g = evloop.spawn(elsewhere)
    try:
        conn.sendall(b"print('for the console'); evloop.spawn(print, 'spawned').join()\r\n")
        assert read_until(conn) == "for the console\n>>> "
        g.join()
        conn.sendall(b"import sys; sys.stderr.write('err\\n')\r\n")
        out = read_until(conn)
        assert out.startswith("err\n")
        conn.sendall(b"quit()\r\n")
        read_to_end(conn)
    finally:
        conn.close()
    evloop.sleep(0.05)
    captured = capsys.readouterr()
    assert "not for the console" in captured.out
    assert "spawned" in captured.out
    # the proxies are gone with the last console
    assert not isinstance(sys.stdout, backdoor._StreamProxy)
    assert not isinstance(sys.stdin, backdoor._StreamProxy)


def test_stopping_the_server_kills_the_consoles(evserver):
    conn, _ = connect(evloop.socket, evserver)
    try:
        evserver.stop()
        assert read_to_end(conn) == ""
    finally:
        conn.close()
    assert not isinstance(sys.stdout, backdoor._StreamProxy)


def test_main_serves_on_the_given_port():
    # python -m evloop.backdoor PORT: started, answers, then killed
    run = run_python("""
        import socket, subprocess, sys, time
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        child = subprocess.Popen([sys.executable, "-m", "evloop.backdoor", str(port), "hi"])
        try:
            for _ in range(200):
                try:
                    c = socket.create_connection(("127.0.0.1", port))
                    break
                except OSError:
                    time.sleep(0.05)
            c.settimeout(10)
            data = b""
            while not data.endswith(b">>> "):
                data += c.recv(1)
            c.sendall(b"hello\\r\\n")
            answer = b""
            while not answer.endswith(b">>> "):
                answer += c.recv(1)
            print(data.decode().splitlines()[0], answer.decode().splitlines()[0])
            c.close()
        finally:
            child.kill(); child.wait()
    """)
    assert run.stdout.split() == ["hi", "'world'"]


def test_server_args_pass_through():
    with pytest.raises(TypeError):
        backdoor.BackdoorServer(("127.0.0.1", 0), spawn=10)  # the server chooses its spawn
    srv = backdoor.BackdoorServer(("127.0.0.1", 0), backlog=5)
    assert srv.backlog == 5
