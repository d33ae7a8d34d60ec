"""evloop.fileobject: file objects whose blocking operations let other greenlets run
(gevent's ``gevent.fileobject``).

Why it exists: reading a pipe, a tty or a socket's file, or a slow disk, through a normal
file object blocks the thread and every greenlet in it. ``FileObjectPosix`` puts the fd in
non-blocking mode and waits for it through the hub (pipes, sockets, ttys: fds that
``select`` can wait for); ``FileObjectThread`` runs each blocking call of an ordinary file
object in the hub's thread pool (regular files, whose reads never report "would block");
``FileObjectBlock`` is a plain synchronous wrapper (for tests and debugging). ``FileObject``
is the default kind: ``FileObjectPosix`` where ``fcntl`` exists, unless ``EVLOOP_FILE``
(posix, thread, block, or a "module.Class" name) says otherwise, as ``GEVENT_FILE`` does
for gevent. All take ``io.open``'s arguments: ``(fobj, mode='r', buffering=-1,
closefd=None, encoding=None, errors=None, newline=None)``, where ``fobj`` is a fd, a path
or an object with ``fileno()``; and gevent's old ``bufsize=``/``close=`` spellings.

What it must not do: block the hub (a ``FileObjectPosix`` read on an fd that is not ready
waits in the calling greenlet; a ``FileObjectThread`` call waits for the worker
cooperatively), or close what it does not own: ``closefd=False`` (``close=False``) leaves
the fd or the wrapped object open, and a ``FileObjectPosix`` over an object with
``fileno()`` closes the object (which owns the fd) rather than the fd. Bad arguments
raise what ``io.open`` raises (ValueError for a bad mode, TypeError for a wrong type);
I/O on a closed file raises ValueError. ``FileObjectPosix`` leaves the fd non-blocking.
"""
import functools
import io
import os
import sys
from errno import EBADF
from typing import Any, Callable, List, Optional

from evloop import core as _core
from evloop._config import get_config
from evloop.hub import get_hub
from evloop.lock import DummySemaphore, Semaphore

__all__ = ["FileObjectPosix", "FileObjectThread", "FileObjectBlock", "FileObject",
           "FileObjectClosed"]

try:
    import fcntl as _fcntl  # noqa: F401 - only whether it exists: POSIX non-blocking fds
except ImportError:  # pragma: no cover - not POSIX
    _HAVE_POSIX = False
    __all__.remove("FileObjectPosix")
else:
    _HAVE_POSIX = True
    del _fcntl


#: the mode characters io.open accepts on the running CPython ("U" up to 3.10)
_MODE_CHARS = "axrwb+tU" if sys.version_info < (3, 11) else "axrwb+t"


class FileObjectClosed(OSError, ValueError):
    """I/O on a FileObject after close(): gevent raises an OSError (EBADF) there, a
    closed stdlib file ValueError; this is both (as ``io.UnsupportedOperation`` is), so
    code written for either catches it."""

    def __init__(self) -> None:
        OSError.__init__(self, EBADF, "Bad file descriptor (FileObject was closed)")


class _OpenDescriptor:
    """Interprets ``io.open``'s arguments (checked as ``io.open`` checks them, after the
    stdlib's _pyio) and builds the stack of io objects: raw, buffer, text."""

    @staticmethod
    def _collapse_arg(pref_name: str, preferred: Any, old_name: str, old: Any,
                      default: Any) -> Any:
        if preferred is not None and old is not None:
            raise TypeError(f"Cannot specify both {pref_name}={preferred} and "
                            f"{old_name}={old}")
        if preferred is None and old is None:
            return default
        return preferred if preferred is not None else old

    def __init__(self, fobj: Any, mode: str = "r", bufsize: Optional[int] = None,
                 close: Optional[bool] = None, encoding: Optional[str] = None,
                 errors: Optional[str] = None, newline: Optional[str] = None,
                 buffering: Optional[int] = None, closefd: Optional[bool] = None) -> None:
        closefd = self._collapse_arg("closefd", closefd, "close", close, True)
        buffering = self._collapse_arg("buffering", buffering, "bufsize", bufsize, -1)
        if not hasattr(fobj, "fileno"):
            if not isinstance(fobj, int):
                fobj = os.fspath(fobj)  # TypeError for anything else, as io.open
            if isinstance(fobj, (str, bytes)):
                closefd = True  # a file we open is ours to close
        if not isinstance(mode, str):
            raise TypeError(f"invalid mode: {mode!r}")
        if isinstance(buffering, bool) or not isinstance(buffering, int):
            raise TypeError(f"invalid buffering: {buffering!r}")
        if encoding is not None and not isinstance(encoding, str):
            raise TypeError(f"invalid encoding: {encoding!r}")
        if errors is not None and not isinstance(errors, str):
            raise TypeError(f"invalid errors: {errors!r}")
        if newline is not None and not isinstance(newline, str):
            raise TypeError(f"invalid newline: {newline!r}")
        if newline not in (None, "", "\n", "\r", "\r\n"):
            raise ValueError(f"illegal newline value: {newline!r}")
        modes = set(mode)
        if modes - set(_MODE_CHARS) or len(mode) > len(modes):
            raise ValueError(f"invalid mode: {mode!r}")
        creating, reading = "x" in modes, "r" in modes
        writing, appending = "w" in modes, "a" in modes
        updating, text, binary = "+" in modes, "t" in modes, "b" in modes
        if "U" in modes:
            # CPython 3.10's open() still takes "U" (reading, universal newlines: what text
            # mode does anyway; no effect in binary mode); 3.11 removed it
            if creating or writing or appending or updating:
                raise ValueError("mode U cannot be combined with 'x', 'w', 'a', or '+'")
            reading = True
        if text and binary:
            raise ValueError("can't have text and binary mode at once")
        if creating + reading + writing + appending > 1:
            raise ValueError("must have exactly one of create/read/write/append mode")
        if not (creating or reading or writing or appending):
            raise ValueError("Must have exactly one of create/read/write/append mode and "
                             "at most one plus")
        if binary and encoding is not None:
            raise ValueError("binary mode doesn't take an encoding argument")
        if binary and errors is not None:
            raise ValueError("binary mode doesn't take an errors argument")
        if binary and newline is not None:
            raise ValueError("binary mode doesn't take a newline argument")
        if binary and buffering == 1:
            import warnings
            warnings.warn("line buffering (buffering=1) isn't supported in binary mode, "
                          "the default buffer size will be used", RuntimeWarning, 4)
        self._fobj = fobj
        self.fileio_mode = ((creating and "x" or "") + (reading and "r" or "")
                            + (writing and "w" or "") + (appending and "a" or "")
                            + (updating and "+" or ""))
        self.mode = self.fileio_mode + ("t" if text else "") + ("b" if binary else "")
        self.creating, self.reading, self.writing = creating, reading, writing
        self.appending, self.updating = appending, updating
        self.text, self.binary = text, binary
        self.can_write = creating or writing or appending or updating
        self.can_read = reading or updating
        self.buffering = buffering
        self.encoding, self.errors, self.newline = encoding, errors, newline
        self.closefd = closefd
        self._opened: Any = None
        self._opened_raw: Any = None

    def is_fd(self) -> bool:
        return isinstance(self._fobj, int)

    def opened(self) -> Any:
        """The wrapped (buffered, decoded) file object."""
        if self._opened is None:
            raw = self.opened_raw()
            try:
                self._opened = self._wrapped(raw)
            except BaseException:
                raw.close()
                raise
        return self._opened

    def opened_raw(self) -> Any:
        if self._opened_raw is None:
            self._opened_raw = self._do_open_raw()
        return self._opened_raw

    def _raw_object_is_new(self, raw: Any) -> bool:
        return self._fobj is not raw

    def _do_open_raw(self) -> Any:
        if hasattr(self._fobj, "fileno"):
            return self._fobj
        return io.FileIO(self._fobj, self.fileio_mode, self.closefd)

    @staticmethod
    def is_buffered(stream: Any) -> bool:
        return (isinstance(stream, (io.BufferedIOBase, io.TextIOBase))
                or getattr(stream, "buffer", None) is not None)

    @staticmethod
    def buffer_size_for_stream(stream: Any) -> int:
        try:
            size = os.fstat(stream.fileno()).st_blksize
        except (OSError, AttributeError, ValueError):
            return io.DEFAULT_BUFFER_SIZE
        return size if size > 1 else io.DEFAULT_BUFFER_SIZE

    def _buffered(self, stream: Any, buffering: int) -> Any:
        if self.updating:
            return io.BufferedRandom(stream, buffering)
        if self.creating or self.writing or self.appending:
            return io.BufferedWriter(stream, buffering)
        return io.BufferedReader(stream, buffering)

    def _wrapped(self, raw: Any) -> Any:
        if self.binary and isinstance(raw, io.TextIOBase):
            raise ValueError("Unable to perform binary IO on top of text IO stream")
        result = raw
        buffering = self.buffering
        line_buffering = False
        if buffering == 1 or (buffering < 0 and raw.isatty()):
            buffering = -1
            line_buffering = True
        if buffering < 0:
            buffering = self.buffer_size_for_stream(result)
        if buffering == 0 and not self.binary:
            raise ValueError("can't have unbuffered text I/O")
        if buffering != 0 and not self.is_buffered(result):
            result = self._buffered(result, buffering)
        if not self.binary and not isinstance(raw, io.TextIOBase):
            result = io.TextIOWrapper(result, self.encoding, self.errors, self.newline,
                                      line_buffering)
        if result is not raw or self._raw_object_is_new(raw):
            try:
                result.mode = self.mode
            except (AttributeError, TypeError):
                pass
        return result


class _ClosedIO:
    """Stands in for the io object of a closed FileObject: keeps its name; anything else
    raises FileObjectClosed (a ValueError, as from a closed file, and an OSError, as
    from gevent)."""

    __slots__ = ("name",)

    def __init__(self, io_obj: Any) -> None:
        try:
            self.name = io_obj.name
        except (AttributeError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        if name == "name":
            raise AttributeError(name)
        raise FileObjectClosed

    def __bool__(self) -> bool:
        return False


class FileObjectBase:
    """What the three kinds share: the io object (``io``), the delegated file methods,
    ``close``/``closed``, iteration and the context manager."""

    #: methods taken from the io object when it has them (and the class does not)
    _delegate_methods = ("flush", "fileno", "writable", "readable", "seek", "seekable",
                         "tell", "read", "readline", "readlines", "read1", "readinto",
                         "readinto1", "write", "writeall", "writelines", "truncate")

    _io: Any = None

    def __init__(self, descriptor: _OpenDescriptor) -> None:
        self._io = descriptor.opened()
        self._close = descriptor.closefd
        self._do_delegate_methods()

    @property
    def io(self) -> Any:
        """The wrapped io object."""
        return self._io

    @io.setter
    def io(self, value: Any) -> None:
        self._io = value
        self._do_delegate_methods()

    def _do_delegate_methods(self) -> None:
        for name in self._delegate_methods:
            meth = getattr(self._io, name, None)
            by_class = hasattr(type(self), name)
            if meth is not None and not by_class:
                setattr(self, name, self._wrap_method(meth))
            elif name in self.__dict__ and not by_class:
                delattr(self, name)

    def _wrap_method(self, method: Callable[..., Any]) -> Callable[..., Any]:
        return method

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return isinstance(self._io, _ClosedIO)

    def close(self) -> None:
        """Flush and close (the underlying file too unless ``closefd`` was False).
        Closing twice does nothing."""
        if isinstance(self._io, _ClosedIO):
            return
        fobj = self._io
        self._io = _ClosedIO(fobj)
        try:
            self._do_close(fobj, self._close)
        finally:
            fobj = None
            for name in self._delegate_methods:
                self.__dict__.pop(name, None)

    def _do_close(self, fobj: Any, closefd: bool) -> None:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        if name == "_io":
            raise AttributeError(name)
        return getattr(self._io, name)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} at {id(self):#x} "
                f"{'closed' if self.closed else ''}_fobj={self.io!r}{self._extra_repr()}>")

    def _extra_repr(self) -> str:
        return ""

    def __enter__(self) -> "FileObjectBase":
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()

    def __iter__(self) -> "FileObjectBase":
        if self.closed:
            raise FileObjectClosed
        return self

    def __next__(self) -> Any:
        line = self.readline()  # type: ignore[attr-defined]
        if not line:
            raise StopIteration
        return line

    def __bool__(self) -> bool:
        return True


class FileObjectBlock(FileObjectBase):
    """A plain synchronous wrapper: every call blocks the thread (for tests, debugging)."""

    def __init__(self, fobj: Any, *args: Any, **kwargs: Any) -> None:
        FileObjectBase.__init__(self, _OpenDescriptor(fobj, *args, **kwargs))

    def _do_close(self, fobj: Any, closefd: bool) -> None:
        if closefd:
            fobj.close()
        else:
            fobj.flush()


class FileObjectThread(FileObjectBase):
    """Each blocking call of the wrapped file object runs in a thread pool (the hub's,
    or ``threadpool=``); the calling greenlet waits cooperatively.

    ``lock=True`` (the default): one call at a time (a ``Semaphore``); ``lock=False``: no
    serialisation; or a Semaphore-like object of your own to share with other code.
    ``closefd``/``close``: whether ``close()`` closes the wrapped file (True by default;
    always for a path). Methods raise ``FileObjectClosed`` (an OSError, EBADF) after
    ``close()``, without a trip to the thread pool."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        lock = kwargs.pop("lock", True)
        threadpool = kwargs.pop("threadpool", None)
        descriptor = _OpenDescriptor(*args, **kwargs)
        self.threadpool = threadpool or get_hub().threadpool
        if lock is True:
            lock = Semaphore()
        elif not lock:
            lock = DummySemaphore()
        if not hasattr(lock, "__enter__"):
            raise TypeError(f"Expected a Semaphore or boolean, got {type(lock)!r}")
        self.lock = lock
        # the io object, or None once closed: what the delegated methods check (they must
        # not reference self, which would make a cycle)
        self._io_holder: List[Any] = [descriptor.opened()]
        FileObjectBase.__init__(self, descriptor)

    def _do_close(self, fobj: Any, closefd: bool) -> None:
        self._io_holder[0] = None
        try:
            with self.lock:
                self.threadpool.apply(fobj.flush)
        finally:
            if closefd:
                # without the lock, as gevent: a call stuck in a worker must not keep the
                # file from closing
                def close(_fobj: Any = fobj) -> Any:
                    try:
                        _fobj.close()
                    except BaseException:  # noqa: BLE001 - raised below, in the caller
                        return sys.exc_info()
                    return None
                del fobj
                exc_info = self.threadpool.apply(close)
                if exc_info:
                    try:
                        raise exc_info[1].with_traceback(exc_info[2])
                    finally:
                        exc_info = None

    def _do_delegate_methods(self) -> None:
        FileObjectBase._do_delegate_methods(self)
        self._io_holder[0] = self._io

    def _extra_repr(self) -> str:
        return f" threadpool={self.threadpool!r}"

    def _wrap_method(self, method: Callable[..., Any]) -> Callable[..., Any]:
        io_holder = self._io_holder
        lock = self.lock
        threadpool = self.threadpool

        @functools.wraps(method)
        def thread_method(*args: Any, **kwargs: Any) -> Any:
            if io_holder[0] is None:
                raise FileObjectClosed
            with lock:
                return threadpool.apply(method, args, kwargs)

        return thread_method


# -- FileObjectPosix ------------------------------------------------------------------------

class _GreenFileDescriptorIO(io.RawIOBase):
    """Raw I/O on a non-blocking fd: a read or write that would block waits for the fd
    through the hub (a ``core.SockIO``, which also wakes waiters with EBADF when the fd is
    closed from another greenlet)."""

    _closed = False
    _seekable: Optional[bool] = None
    _keep_alive: Any = None  # the object that owns the fd, closed with us
    _sockio: Any = None

    def __init__(self, fileno: int, descriptor: _OpenDescriptor, closefd: bool = True) -> None:
        io.RawIOBase.__init__(self)
        self._closefd = closefd
        self._fileno = fileno
        self.name = fileno
        self.mode = descriptor.mode
        self._readable = descriptor.can_read
        self._writable = descriptor.can_write
        try:
            os.set_blocking(fileno, False)
            self._sockio = _core.SockIO(fileno, None, get_hub())
        except BaseException:
            # not ours after all (a closed or bad fd): close() from __del__ must not close
            # the number, which may be another file's by then
            self._closed = True
            raise

    def isatty(self) -> bool:
        self._check_open()
        return os.isatty(self._fileno)

    def readable(self) -> bool:
        self._check_open()
        return self._readable

    def writable(self) -> bool:
        self._check_open()
        return self._writable

    def seekable(self) -> bool:
        self._check_open()
        if self._seekable is None:
            try:
                os.lseek(self._fileno, 0, os.SEEK_CUR)
            except OSError:
                self._seekable = False
            else:
                self._seekable = True
        return self._seekable

    def fileno(self) -> int:
        self._check_open()
        return self._fileno

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed file")

    def _wait(self, write: bool) -> None:
        sio = self._sockio
        hub = get_hub()
        if sio.hub is not hub:  # used from another thread: wait in that thread's hub
            sio = _core.SockIO(self._fileno, None, hub)
        if write:
            sio.wait_write()
        else:
            sio.wait_read()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            sio, self._sockio = self._sockio, None
            fileno, keep_alive = self._fileno, self._keep_alive
            self._keep_alive = None
            try:
                # wakes greenlets waiting on the fd (they get EBADF) before it is closed
                if sio is not None:
                    sio.close(detach=not self._closefd)
            finally:
                try:
                    if self._closefd:
                        os.close(fileno)
                finally:
                    if hasattr(keep_alive, "close"):
                        keep_alive.close()

    def _read(self, n: int) -> bytes:
        self._check_open()
        if not self._readable:
            raise io.UnsupportedOperation("read")
        while True:
            try:
                return os.read(self._fileno, n)
            except BlockingIOError:
                pass
            self._wait(False)

    def readall(self) -> bytes:
        chunks = []
        while True:
            try:
                data = self._read(io.DEFAULT_BUFFER_SIZE)
            except OSError as ex:
                if ex.errno != EBADF or not self._closed:
                    raise
                data = b""  # closed while reading: what was read so far, as a buffer
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self._read(len(view))
        n = len(data)
        view[:n] = data
        return n

    def write(self, b: Any) -> int:
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("write")
        while True:
            try:
                return os.write(self._fileno, b)
            except BlockingIOError:
                pass
            self._wait(True)

    def seek(self, offset: int, whence: int = 0) -> int:
        self._check_open()
        return os.lseek(self._fileno, offset, whence)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} at {id(self):#x} fileno={self._fileno} "
                f"mode={self.mode!r}>")


class _GreenOpenDescriptor(_OpenDescriptor):
    def _do_open_raw(self) -> Any:
        if self.is_fd():
            if self._fobj < 0:  # as io.open; set_blocking() would say EBADF
                raise ValueError("negative file descriptor")
            return _GreenFileDescriptorIO(self._fobj, self, closefd=self.closefd)
        # an existing file object, or a path we open: that object owns the fd
        raw = _OpenDescriptor._do_open_raw(self)
        fileio = _GreenFileDescriptorIO(raw.fileno(), self, closefd=False)
        fileio._keep_alive = raw if (self.closefd or raw is not self._fobj) else None
        try:
            fileio.name = raw.name
        except AttributeError:
            del fileio.name
        return fileio


class FileObjectPosix(FileObjectBase):
    """A file object over a non-blocking fd whose reads and writes wait cooperatively:
    for pipes, sockets, ttys (fds ``select`` can wait for). On a regular file a read or
    write still takes the time the disk takes (such fds are always "ready"); use
    ``FileObjectThread`` there.

    ``fileio`` is the raw object (``io.RawIOBase``): ``fileio.read(n)`` returns what is
    there (or waits for something), without the buffer. ``closefd=False`` leaves the fd
    (or the wrapped object) open on ``close()``."""

    default_bufsize = io.DEFAULT_BUFFER_SIZE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        descriptor = _GreenOpenDescriptor(*args, **kwargs)
        FileObjectBase.__init__(self, descriptor)
        self.fileio = descriptor.opened_raw()

    def _do_close(self, fobj: Any, closefd: bool) -> None:
        try:
            fobj.close()
            self.fileio.close()  # it knows whether to close the fd
        finally:
            self.fileio = None


def _configured_class() -> type:
    name = get_config().fileobject
    classes = {"posix": "FileObjectPosix", "thread": "FileObjectThread",
               "block": "FileObjectBlock"}
    if name in classes:
        if name == "posix" and not _HAVE_POSIX:  # pragma: no cover - not POSIX
            return FileObjectThread
        return globals()[classes[name]]
    import importlib
    module, _, cls = name.rpartition(".")
    return getattr(importlib.import_module(module), cls)


#: the default kind: FileObjectPosix on POSIX unless EVLOOP_FILE names another
FileObject = _configured_class()
