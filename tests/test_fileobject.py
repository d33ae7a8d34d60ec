"""Tests for evloop.fileobject: FileObjectThread, FileObjectPosix, FileObjectBlock and the
default FileObject. Where the behaviour is gevent's the same test runs against
gevent.fileobject (the ``impl`` fixture, tests/conftest.py)."""
import importlib
import io
import os
import sys
import time

import pytest

import evloop
from evloop import fileobject
from evloop.lock import Semaphore

from _helpers import run_python


@pytest.fixture
def api(impl):
    return importlib.import_module(impl) if impl else None


@pytest.fixture
def fo(impl):
    return importlib.import_module(f"{impl}.fileobject") if impl else None


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_bytes(b"first\nsecond\r\nthird\n")
    return str(path)


KINDS = ["FileObjectThread", "FileObjectPosix", "FileObjectBlock"]


# -- what all kinds share ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_read_a_file_in_text_and_binary_modes(fo, kind, text_file):
    cls = getattr(fo, kind)
    with cls(text_file, "rb") as f:
        assert f.read() == b"first\nsecond\r\nthird\n"
        assert f.mode == "rb" and f.name == text_file
        f.seek(0)
        assert f.readline() == b"first\n"
        assert f.tell() == 6
        assert f.readlines() == [b"second\r\n", b"third\n"]
        assert not f.closed
    assert f.closed
    with cls(text_file) as f:  # text, universal newlines
        assert list(f) == ["first\n", "second\n", "third\n"]
        assert f.mode == "r"
    with cls(text_file, "r", newline="") as f:
        assert f.readlines() == ["first\n", "second\r\n", "third\n"]


@pytest.mark.parametrize("kind", KINDS)
def test_write_with_encoding_and_errors(fo, kind, tmp_path):
    cls = getattr(fo, kind)
    path = str(tmp_path / "out.txt")
    with cls(path, "w", encoding="latin-1", errors="replace") as f:
        f.write("caf\u00e9 \u20ac\n")
        f.writelines(["a\n", "b\n"])
        f.flush()
        assert f.fileno() >= 0
    with open(path, "rb") as raw:
        assert raw.read() == b"caf\xe9 ?\na\nb\n"
    with cls(path, "ab") as f:
        assert f.write(b"tail") == 4
    with open(path, "rb") as raw:
        assert raw.read().endswith(b"tail")


@pytest.mark.parametrize("kind", KINDS)
def test_closefd_false_leaves_the_fd_open(fo, kind, text_file):
    cls = getattr(fo, kind)
    fd = os.open(text_file, os.O_RDONLY)
    try:
        f = cls(fd, "rb", closefd=False)
        assert f.read(5) == b"first"
        f.close()
        assert f.closed
        os.fstat(fd)  # still open
        g = cls(fd, "rb", close=False)  # gevent's older spelling
        g.close()
        os.fstat(fd)
    finally:
        os.close(fd)
    fd = os.open(text_file, os.O_RDONLY)
    cls(fd, "rb").close()  # closefd defaults to True
    with pytest.raises(OSError):
        os.fstat(fd)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["rw", "rr", "z", "rbt", "", "U+", "wU"])
def test_bad_mode_is_a_value_error(fo, kind, mode, text_file):
    with pytest.raises(ValueError):
        getattr(fo, kind)(text_file, mode)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_arguments_raise_as_io_open(fo, kind, text_file):
    cls = getattr(fo, kind)
    with pytest.raises(TypeError):
        cls(text_file, 1)                        # mode not a str
    with pytest.raises(TypeError):
        cls(text_file, "r", buffering="big")
    with pytest.raises(TypeError):
        cls(text_file, "r", encoding=8)
    with pytest.raises(TypeError):
        cls(3.5, "r")                            # not a file
    with pytest.raises(ValueError):
        cls(text_file, "rb", encoding="utf-8")   # binary takes no encoding
    with pytest.raises(ValueError):
        cls(text_file, "rb", newline="\n")
    with pytest.raises(TypeError):
        cls(text_file, "r", closefd=True, close=True)  # both spellings at once
    with pytest.raises(FileNotFoundError):
        cls(text_file + ".missing", "r")


@pytest.mark.parametrize("kind", KINDS)
def test_bad_fds_raise_as_io_open(kind, tmp_path):
    cls = getattr(fileobject, kind)
    with pytest.raises(ValueError):
        cls(-1, "rb")                   # io.open: "negative file descriptor"
    fd = os.open(str(tmp_path), os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError) as failed:
        cls(fd, "rb")                   # closed: EBADF
    # the failed object (kept alive by the traceback) must not close that number when it
    # is finalized: by then it is another file's
    r, w = os.pipe()
    try:
        if r != fd:
            os.dup2(r, fd)
        del failed
        import gc
        gc.collect()
        os.fstat(fd)
    finally:
        for n in {r, w, fd}:
            os.close(n)


@pytest.mark.parametrize("kind", KINDS)
def test_io_on_a_closed_file(fo, kind, text_file):
    f = getattr(fo, kind)(text_file, "rb")
    f.close()
    f.close()  # twice is fine
    for call in (lambda: f.read(), lambda: f.readline(), lambda: f.fileno()):
        with pytest.raises((OSError, ValueError)):
            call()


@pytest.mark.parametrize("kind", KINDS)
def test_universal_mode_as_the_running_cpython(kind, text_file):
    cls = getattr(fileobject, kind)
    if sys.version_info >= (3, 11):  # "U" was removed from open() in 3.11
        with pytest.raises(ValueError):
            cls(text_file, "rU")
        return
    with cls(text_file, "rU") as f:
        assert f.readlines() == ["first\n", "second\n", "third\n"]


@pytest.mark.parametrize("kind", KINDS)
def test_io_on_a_closed_file_is_a_value_error_too(kind, text_file):
    # gevent raises OSError(EBADF); a closed stdlib file ValueError: evloop's is both
    f = getattr(fileobject, kind)(text_file, "rb")
    f.close()
    with pytest.raises(ValueError):
        f.read()
    with pytest.raises(OSError):
        f.read()
    with pytest.raises(ValueError):
        iter(f)
    assert f.name == text_file  # the name survives close


def test_default_file_object_is_posix(fo):
    assert fo.FileObject is fo.FileObjectPosix


@pytest.mark.parametrize("value, name", [("thread", "FileObjectThread"),
                                         ("block", "FileObjectBlock"),
                                         ("posix", "FileObjectPosix"),
                                         ("evloop.fileobject.FileObjectBlock",
                                          "FileObjectBlock")])
def test_evloop_file_chooses_the_default(value, name):
    out = run_python("import evloop.fileobject as f; print(f.FileObject.__name__)",
                     env={"EVLOOP_FILE": value}).stdout
    assert out.strip() == name


def test_evloop_file_rejects_nonsense():
    run = run_python("import evloop.fileobject", env={"EVLOOP_FILE": "nonsense"},
                     expect_rc=1)
    assert "EVLOOP_FILE='nonsense'" in run.stderr


# -- FileObjectThread ---------------------------------------------------------------------------

def test_thread_runs_blocking_calls_in_the_threadpool(api, fo):
    r, w = os.pipe()  # a blocking pipe: a read that waits would block the thread
    reader = fo.FileObjectThread(r, "rb", buffering=0)
    ticks = []

    def ticker():
        for _ in range(5):
            ticks.append(1)
            api.sleep(0.01)
        os.write(w, b"done")

    t = api.spawn(ticker)
    try:
        assert reader.read(4) == b"done"  # waited in a worker; the ticker kept running
        assert len(ticks) == 5
    finally:
        t.join()
        reader.close()
        os.close(w)


def test_thread_lock_argument(api, fo, text_file):
    with fo.FileObjectThread(text_file, "rb", lock=False) as f:
        assert f.read(5) == b"first"
    sem = importlib.import_module(api.__name__ + ".lock").Semaphore()
    with fo.FileObjectThread(text_file, "rb", lock=sem) as f:
        assert f.lock is sem
        assert f.read(5) == b"first"
    with pytest.raises(TypeError):
        fo.FileObjectThread(text_file, "rb", lock=object())


def test_thread_lock_serialises_calls(text_file):
    busy = []
    overlap = []

    class SlowRaw(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            if busy:
                overlap.append(1)
            busy.append(1)
            time.sleep(0.02)
            busy.pop()
            b[:1] = b"x"
            return 1

        def fileno(self):
            return 0

        def isatty(self):
            return False

    f = fileobject.FileObjectThread(SlowRaw(), "rb", buffering=0, closefd=False)
    greenlets = [evloop.spawn(f.read, 1) for _ in range(4)]
    evloop.joinall(greenlets)
    assert [g.value for g in greenlets] == [b"x"] * 4
    assert overlap == []
    f.close()


def test_thread_wraps_an_open_file_object(fo, text_file):
    raw = open(text_file, "rb")
    f = fo.FileObjectThread(raw, "rb", close=False)
    assert f.read(5) == b"first"
    f.close()
    assert not raw.closed  # close=False: the object stays open
    f = fo.FileObjectThread(raw, "rb")
    f.close()
    assert raw.closed


# -- FileObjectPosix -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["r", "rb"])
def test_posix_pipe_reader_waits_cooperatively(api, fo, mode):
    r, w = os.pipe()
    reader = fo.FileObjectPosix(r, mode)
    writer = fo.FileObjectPosix(w, "w" if mode == "r" else "wb")
    assert not os.get_blocking(r) and not os.get_blocking(w)
    data = ["one\n", "two\n", "three\n"]

    def write_slowly():
        for line in data:
            writer.write(line if mode == "r" else line.encode())
            writer.flush()
            api.sleep(0.01)
        writer.close()

    g = api.spawn(write_slowly)
    lines = list(reader)
    g.join()
    reader.close()
    assert lines == (data if mode == "r" else [line.encode() for line in data])


def test_posix_writer_waits_for_a_full_pipe(api, fo):
    r, w = os.pipe()
    writer = fo.FileObjectPosix(w, "wb", buffering=0)
    reader = fo.FileObjectPosix(r, "rb", buffering=0)
    payload = b"x" * (1 << 20)  # more than a pipe holds

    def drain():
        got = 0
        while got < len(payload):
            chunk = reader.read(65536)
            assert chunk
            got += len(chunk)
        return got

    g = api.spawn(drain)
    written = 0
    while written < len(payload):
        written += writer.write(payload[written:])
    assert g.get() == len(payload)
    writer.close()
    reader.close()


def test_posix_fileio_reads_what_is_there(fo):
    r, w = os.pipe()
    f = fo.FileObjectPosix(r, "rb")
    os.write(w, b"abc")
    assert f.fileio.read(100) == b"abc"
    os.close(w)
    assert f.read() == b""
    f.close()


def test_posix_closefd_false_and_fileno(fo):
    r, w = os.pipe()
    f = fo.FileObjectPosix(r, "rb", closefd=False)
    assert f.fileno() == r
    f.close()
    os.write(w, b"z")
    assert os.read(r, 1) == b"z"  # r is still open
    os.close(r)
    os.close(w)


def test_posix_read_only_and_write_only(fo):
    r, w = os.pipe()
    reader = fo.FileObjectPosix(r, "rb")
    writer = fo.FileObjectPosix(w, "wb")
    try:
        with pytest.raises(io.UnsupportedOperation):
            reader.write(b"x")
        with pytest.raises(io.UnsupportedOperation):
            writer.read(1)
        assert reader.readable() and not reader.writable()
        assert writer.writable() and not writer.readable()
    finally:
        reader.close()
        writer.close()


def test_posix_close_wakes_a_waiting_reader():
    r, w = os.pipe()
    f = fileobject.FileObjectPosix(r, "rb", buffering=0)
    raw = f.fileio

    def read():
        try:
            return raw.read(10)
        except OSError as exc:
            return exc

    g = evloop.spawn(read)
    evloop.sleep(0.01)
    raw.close()  # from another greenlet, while the reader waits
    result = g.get(timeout=5)
    assert isinstance(result, OSError) and result.errno == 9
    f.close()
    os.close(w)


def test_posix_over_a_socket_file(api, fo):
    sock_mod = importlib.import_module(api.__name__ + ".socket")
    a, b = sock_mod.socketpair()
    f = fo.FileObjectPosix(a, "rb")

    def send():
        api.sleep(0.01)
        b.sendall(b"hello\n")

    g = api.spawn(send)
    assert f.readline() == b"hello\n"
    g.join()
    f.close()
    b.close()
    a.close()


def test_block_is_synchronous(fo, text_file):
    with fo.FileObjectBlock(text_file, "rb") as f:
        assert f.read() == b"first\nsecond\r\nthird\n"


def test_repr_and_bool(text_file):
    f = fileobject.FileObjectThread(text_file, "rb")
    assert "FileObjectThread" in repr(f) and "threadpool=" in repr(f)
    assert f
    f.close()
    assert "closed" in repr(f)
    assert f  # still true, as gevent's
