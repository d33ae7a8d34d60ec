"""evloop.subprocess: ``subprocess`` whose waits block only the calling greenlet.

Why it exists: the stdlib's ``Popen.wait`` blocks in ``waitpid``, ``communicate`` in
``select``, and its pipe file objects in ``read``/``write``: each would stop every greenlet
of the thread. ``Popen`` here is the stdlib class (same arguments, errors, attributes and
exit-status rules: it starts the child) with the waiting replaced: the child is watched
through evloop.os's child watcher on the default loop (polled, in threads that run
another loop), ``communicate`` multiplexes the pipes with io watchers, and ``stdin``,
``stdout`` and ``stderr`` are file objects whose reads and writes wait through the hub.
``run``, ``call``, ``check_call``, ``check_output``, ``getoutput``, ``getstatusoutput`` use
this ``Popen``; the exceptions and constants are the stdlib's own objects.

What it must not do: change O_NONBLOCK on the pipes (an fd handed to another child, as in
a pipeline, must stay blocking), reap a child it did not start, leave evloop's SIGCHLD
handler installed once its children are reaped (so the stdlib ``subprocess`` and a
user's SIGCHLD handler keep working; see evloop.os), or use a private name of the stdlib's
``Popen`` (they change between CPython versions: what it relies on in that class is
recorded, and tested, in evloop._stdlib_subprocess).
"""
import errno as _errno
import io as _io
import os as _os
import select as _select
import subprocess as _subprocess
import time as _time_mod
from _thread import allocate_lock as _allocate_lock
from subprocess import (DEVNULL, PIPE, STDOUT, CalledProcessError, CompletedProcess,
                        SubprocessError, TimeoutExpired, list2cmdline)
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from evloop import core as _core
from evloop import os as _evos
from evloop.hub import Hub, Waiter, get_hub, sleep

__all__ = ["Popen", "PIPE", "STDOUT", "DEVNULL", "CalledProcessError", "CompletedProcess",
           "SubprocessError", "TimeoutExpired", "call", "check_call", "check_output",
           "getoutput", "getstatusoutput", "list2cmdline", "run"]

_time = _time_mod.monotonic
_PIPE_BUF = getattr(_select, "PIPE_BUF", 512)
_READ_CHUNK = 32768


# -- cooperative pipe file objects ---------------------------------------------------------


class _GreenPipe(_io.RawIOBase):
    """A raw binary file over one end of a pipe whose reads and writes wait through the
    hub. It owns the stdlib ``FileIO`` it wraps (which owns the fd) and never changes the
    fd's blocking mode: on a blocking fd it waits for readiness first and then reads what
    is there or writes at most PIPE_BUF bytes at a time (which a ready pipe takes whole);
    on a non-blocking fd it tries first and waits on EAGAIN. ``write`` writes everything,
    as a blocking ``FileIO`` does."""

    def __init__(self, raw: _io.FileIO) -> None:
        super().__init__()
        self._raw = raw
        self._fd = raw.fileno()
        self._sockio: Any = None  # waits for the hub of the thread that first waited

    @property
    def name(self) -> Any:
        return self._raw.name

    @property
    def mode(self) -> str:
        return self._raw.mode

    def readable(self) -> bool:
        return self._raw.readable()

    def writable(self) -> bool:
        return self._raw.writable()

    def seekable(self) -> bool:
        return False

    def isatty(self) -> bool:
        return self._raw.isatty()

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _wait(self, write: bool) -> None:
        hub = get_hub()
        sio = self._sockio
        if sio is None or sio.hub is not hub:
            sio = _core.SockIO(self._fd, None, hub)
            if self._sockio is None:
                self._sockio = sio
        if write:
            sio.wait_write()
        else:
            sio.wait_read()

    def readinto(self, buffer: Any) -> int:
        self._check_open()
        if _os.get_blocking(self._fd):
            self._wait(False)
            return self._raw.readinto(buffer)
        while True:
            n = self._raw.readinto(buffer)
            if n is not None:
                return n
            self._wait(False)

    def write(self, data: Any) -> int:
        self._check_open()
        view = memoryview(data)
        if view.itemsize != 1 or view.ndim != 1:
            view = view.cast("B")
        total = view.nbytes
        done = 0
        blocking = _os.get_blocking(self._fd)
        while done < total:
            if blocking:
                self._wait(True)
                done += _os.write(self._fd, view[done:done + _PIPE_BUF])
                continue
            try:
                done += _os.write(self._fd, view[done:])
            except BlockingIOError:
                self._wait(True)
        return total

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
        finally:
            if self._sockio is not None:
                self._sockio.close()  # wakes a greenlet still waiting on the fd (EBADF)
            self._raw.close()


def _green_file(f: Any, bufsize: int) -> Any:
    """Rebuild a pipe file object made by the stdlib's Popen over a ``_GreenPipe``: the
    same layers (text, buffer), encoding, errors and buffering."""
    if f is None:
        return None
    text = None
    if isinstance(f, _io.TextIOWrapper):
        text = dict(encoding=f.encoding, errors=f.errors, line_buffering=f.line_buffering,
                    write_through=f.write_through)
        f = f.detach()
    if isinstance(f, _io.FileIO):
        raw, buffered = f, False
    else:
        raw, buffered = f.detach(), True
    result: Any = _GreenPipe(raw)
    if buffered:
        size = bufsize if bufsize is not None and bufsize > 1 else _io.DEFAULT_BUFFER_SIZE
        if result.writable():
            result = _io.BufferedWriter(result, size)
        else:
            result = _io.BufferedReader(result, size)
    if text is not None:
        result = _io.TextIOWrapper(result, **text)
    return result


def _wait_any(hub: Hub, wanted: Sequence[Tuple[int, int]], timeout: Optional[float]
              ) -> Optional[int]:
    """Block until one of ``(fd, events)`` is ready (its fd) or ``timeout`` passes (None)."""
    waiter = Waiter(hub)
    watchers: List[Any] = []
    try:
        for fd, events in wanted:
            w = hub.loop.io(fd, events)
            watchers.append(w)
            w.start(waiter.switch, fd)
        if timeout is not None:
            t = hub.loop.timer(max(timeout, 0.0))
            watchers.append(t)
            t.start(waiter.switch, None)
        return waiter.get()
    finally:
        for w in watchers:
            w.close()


# -- Popen ---------------------------------------------------------------------------------

#: how long ``wait``/``communicate``/``__exit__`` give a child to exit after a
#: KeyboardInterrupt (the stdlib's bpo-25942 rule: Ctrl-C went to the child too), once
_SIGINT_WAIT = 0.25


def _returncode(status: int) -> int:
    """A wait status as ``Popen.returncode``: the stdlib's rule (a stopped child's is
    ``-signal``; ``waitstatus_to_exitcode`` refuses stop statuses)."""
    if _os.WIFSTOPPED(status):
        return -_os.WSTOPSIG(status)
    return _os.waitstatus_to_exitcode(status)


def _ignore_broken_pipe(call: Any, *args: Any) -> None:
    """``call(*args)``, ignoring what ``communicate`` must ignore: the child closed its end
    of the pipe (EPIPE; EINVAL on some platforms)."""
    try:
        call(*args)
    except BrokenPipeError:
        pass
    except OSError as exc:
        if exc.errno != _errno.EINVAL:
            raise


class _Communication:
    """What ``communicate`` keeps between calls, so a call after ``TimeoutExpired`` resumes:
    the input (bytes) and how much of it went out, and the output read so far."""

    __slots__ = ("input", "offset", "output")

    def __init__(self) -> None:
        self.input: Optional[memoryview] = None
        self.offset = 0
        self.output: Dict[Any, List[bytes]] = {}


class Popen(_subprocess.Popen):
    """``subprocess.Popen`` with cooperative ``wait``, ``communicate``, ``poll`` and pipes.

    Arguments, attributes, exceptions and context-manager behaviour are the stdlib's
    (the stdlib code starts the child). ``wait(timeout)`` blocks only the calling greenlet
    until the child exits (``TimeoutExpired`` after ``timeout`` seconds);
    ``communicate(input, timeout)`` likewise while it feeds stdin and drains stdout and
    stderr; reads and writes on ``stdin``/``stdout``/``stderr`` wait through the hub.
    Every public method that waits for the child or reads its pipes is overridden here
    and none uses a private name of the stdlib class: what the inherited ones do is in
    evloop._stdlib_subprocess.
    """

    def __init__(self, args: Any, *popenargs: Any, **kwargs: Any) -> None:
        self._evloop_watch: Any = None
        self._evloop_waiters: List[Tuple[Hub, Any]] = []
        self._evloop_lock = _allocate_lock()  # one waitpid for the child at a time
        self._evloop_comm: Optional[_Communication] = None
        self._evloop_sigint_wait = _SIGINT_WAIT
        bufsize = kwargs.get("bufsize", popenargs[0] if popenargs else -1)
        super().__init__(args, *popenargs, **kwargs)
        # The child runs (exec succeeded; on failure the stdlib reaped it and raised) and
        # nothing has yielded to the loop since it was created: watch it now. The watch
        # references this object until the child is reaped, so the stdlib's __del__ never
        # sees a running watched child.
        self._evloop_watch = _evos._watch(self.pid, self._evloop_exited, ref=True,
                                          new_child=True, consumes=True)
        if bufsize in (None, 1):  # 1: line buffering (text) at the text layer
            bufsize = -1
        self.stdin = _green_file(self.stdin, bufsize)
        self.stdout = _green_file(self.stdout, bufsize)
        self.stderr = _green_file(self.stderr, bufsize)

    # -- the child's exit ------------------------------------------------------------------

    def _evloop_exited(self, pid: int, status: int) -> None:
        """The child's wait status is known: set returncode, wake the waiting greenlets."""
        if self.returncode is None:
            self.returncode = _returncode(status)
        self._evloop_unwatch()

    def _evloop_unwatch(self) -> None:
        """The returncode is set: drop the child watch and wake the waiting greenlets."""
        watch, self._evloop_watch = self._evloop_watch, None
        if watch is not None:
            watch.cancel()
        for hub, waiter in list(self._evloop_waiters):
            hub.loop.run_callback_threadsafe(waiter.switch, None)

    def poll(self) -> Optional[int]:
        """Set and return ``returncode`` if the child exited (None if it runs); never
        blocks."""
        if self.returncode is not None:
            if self._evloop_watch is not None:
                self._evloop_unwatch()
            return self.returncode
        pid = self.pid
        status = _evos._owner_status(pid)  # reaped by a child watcher, e.g. a waitpid(-1)
        if status is not None:
            self._evloop_exited(pid, status)
            return self.returncode
        if not self._evloop_lock.acquire(False):
            return None  # another thread is reaping it
        try:
            if self.returncode is not None:
                return self.returncode
            try:
                rpid, status = _evos._real_waitpid(pid, _os.WNOHANG)
            except ChildProcessError:
                status = _evos._owner_status(pid)
                if status is not None:
                    self._evloop_exited(pid, status)
                elif not _evos._reaper_pending(pid):
                    # reaped behind our back (os.waitpid elsewhere, SIGCHLD ignored): the
                    # status is lost; the stdlib's rule
                    self.returncode = 0
                    self._evloop_unwatch()
            else:
                if rpid == pid:
                    # tells our watch and the others; recorded for waitpid(pid)
                    _evos._child_exited(pid, status, consumed=True)
                    if self.returncode is None:
                        self._evloop_exited(pid, status)
        finally:
            self._evloop_lock.release()
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait (this greenlet only) for the child to exit and return ``returncode``;
        ``TimeoutExpired`` after ``timeout`` seconds."""
        endtime = None if timeout is None else _time() + timeout
        try:
            return self._evloop_wait(timeout, endtime)
        except KeyboardInterrupt:
            self._evloop_after_interrupt(endtime)
            raise

    def _evloop_wait(self, timeout: Optional[float], endtime: Optional[float]) -> int:
        delay = _evos._POLL_MIN
        while self.poll() is None:
            remaining = None if endtime is None else endtime - _time()
            if remaining is not None and remaining <= 0:
                raise TimeoutExpired(self.args, timeout)
            hub = get_hub()
            watch = self._evloop_watch
            if watch is not None and watch.active and hub is _evos._reaper_hub:
                self._evloop_block(hub, remaining)
            else:  # not watched from this thread: poll
                sleep(delay if remaining is None else min(delay, remaining))
                delay = min(delay * 2, _evos._POLL_MAX)
        return self.returncode

    def _evloop_block(self, hub: Hub, timeout: Optional[float]) -> None:
        waiter = Waiter(hub)
        entry = (hub, waiter)
        self._evloop_waiters.append(entry)
        timer = None
        try:
            # SAFETY_POLL: _evloop_wait() polls the OS now and then (see evloop.os)
            wait = _evos.SAFETY_POLL if timeout is None else min(timeout, _evos.SAFETY_POLL)
            timer = hub.loop.timer(wait, ref=False)
            timer.start(waiter.switch, None, update=True)
            waiter.get()
        finally:
            self._evloop_waiters.remove(entry)
            if timer is not None:
                timer.close()

    def _evloop_after_interrupt(self, endtime: Optional[float]) -> None:
        """KeyboardInterrupt while waiting: the first time, give the child (which got the
        SIGINT too) a moment to exit so it is reaped, as the stdlib does."""
        wait = self._evloop_sigint_wait
        self._evloop_sigint_wait = 0
        if endtime is not None:
            wait = min(wait, endtime - _time())
        if wait > 0:
            try:
                self._evloop_wait(wait, _time() + wait)
            except TimeoutExpired:
                pass

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child, unless it is known to have exited (polled first, so
        a reaped child's pid, maybe reused, is not signalled)."""
        self.poll()
        if self.returncode is not None:
            return
        try:
            _os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def __exit__(self, exc_type: Any, value: Any, traceback: Any) -> None:
        # the stdlib's: close the pipes, then reap the child (after Ctrl-C: a moment only)
        if self.stdout:
            self.stdout.close()
        if self.stderr:
            self.stderr.close()
        try:
            if self.stdin:
                self.stdin.close()
        finally:
            if exc_type is KeyboardInterrupt:
                self._evloop_after_interrupt(None)
            else:
                self.wait()

    # -- communicate ---------------------------------------------------------------------

    def communicate(self, input: Any = None, timeout: Optional[float] = None
                    ) -> Tuple[Any, Any]:
        """Send ``input`` to stdin and close it, read stdout and stderr to their end, wait
        for the child: ``(stdout, stderr)``, blocking only this greenlet. After
        ``TimeoutExpired`` (which carries the output so far) a new call resumes."""
        comm = self._evloop_comm
        if comm is not None and input:
            raise ValueError("Cannot send input after starting communication")
        if (timeout is None and comm is None
                and [self.stdin, self.stdout, self.stderr].count(None) >= 2):
            # one pipe at most, no timeout: the stdlib's shortcut, through the green files
            stdout = stderr = None
            if self.stdin:
                if input:
                    _ignore_broken_pipe(self.stdin.write, input)
                _ignore_broken_pipe(self.stdin.close)
            elif self.stdout:
                stdout = self.stdout.read()
                self.stdout.close()
            elif self.stderr:
                stderr = self.stderr.read()
                self.stderr.close()
            self.wait()
            return stdout, stderr
        endtime = None if timeout is None else _time() + timeout
        try:
            stdout, stderr = self._evloop_communicate(input, endtime, timeout)
        except KeyboardInterrupt:
            self._evloop_after_interrupt(endtime)
            raise
        try:
            self.wait(timeout=None if endtime is None else endtime - _time())
        except TimeoutExpired as exc:
            exc.timeout = timeout
            raise
        return stdout, stderr

    def _evloop_communicate(self, input: Any, endtime: Optional[float],
                            orig_timeout: Optional[float]) -> Tuple[Any, Any]:
        # The stdlib's algorithm (as of 3.15), with the select() replaced by io watchers.
        comm = self._evloop_comm
        if comm is None:
            comm = _Communication()
            if self.stdin:
                # bad input (str for a binary pipe...) raises here, before anything starts
                if not input:
                    pass
                elif isinstance(self.stdin, _io.TextIOWrapper):
                    comm.input = memoryview(input.encode(self.stdin.encoding,
                                                         self.stdin.errors))
                else:
                    comm.input = memoryview(input).cast("B")
                try:
                    self.stdin.flush()  # what the caller wrote before
                except BrokenPipeError:
                    pass
                except ValueError:  # closed by the caller
                    if not self.stdin.closed:
                        raise
                if not input:
                    _ignore_broken_pipe(self.stdin.close)
            for f in (self.stdout, self.stderr):
                if f:
                    comm.output[f] = []
            self._evloop_comm = comm
        stdout = comm.output.get(self.stdout) if self.stdout else None
        stderr = comm.output.get(self.stderr) if self.stderr else None

        fds: Dict[int, Tuple[Any, int]] = {}  # fd -> (file object, READ/WRITE)
        view = comm.input
        if (self.stdin and not self.stdin.closed and view is not None
                and comm.offset < len(view)):
            fds[self.stdin.fileno()] = (self.stdin, _core.WRITE)
        for f in (self.stdout, self.stderr):
            if f and not f.closed:
                fds[f.fileno()] = (f, _core.READ)

        hub = get_hub()
        while fds:
            remaining = None if endtime is None else endtime - _time()
            if remaining is not None and remaining <= 0:
                break
            fd = _wait_any(hub, [(fd, ev) for fd, (_f, ev) in fds.items()], remaining)
            if endtime is not None and _time() > endtime:
                break
            if fd is None:
                continue
            f, events = fds[fd]
            if events == _core.WRITE:
                chunk = view[comm.offset:comm.offset + _PIPE_BUF]
                try:
                    comm.offset += _os.write(fd, chunk)
                except BrokenPipeError:
                    del fds[fd]
                    _ignore_broken_pipe(f.close)
                else:
                    if comm.offset >= len(view):
                        del fds[fd]
                        _ignore_broken_pipe(f.close)
            else:
                data = _os.read(fd, _READ_CHUNK)
                if data:
                    comm.output[f].append(data)
                else:
                    del fds[fd]
                    f.close()
        if fds:
            raise TimeoutExpired(self.args, orig_timeout,
                                 output=b"".join(stdout) if stdout else None,
                                 stderr=b"".join(stderr) if stderr else None)

        try:
            self.wait(timeout=None if endtime is None else endtime - _time())
        except TimeoutExpired as exc:
            exc.timeout = orig_timeout
            raise

        out = b"".join(stdout) if stdout is not None else None
        err = b"".join(stderr) if stderr is not None else None
        # text mode: the stdlib decodes the whole output and translates newlines
        if out is not None and isinstance(self.stdout, _io.TextIOWrapper):
            out = _decode(out, self.stdout.encoding, self.stdout.errors)
        if err is not None and isinstance(self.stderr, _io.TextIOWrapper):
            err = _decode(err, self.stderr.encoding, self.stderr.errors)
        return out, err


def _decode(data: bytes, encoding: str, errors: Optional[str]) -> str:
    return data.decode(encoding, errors).replace("\r\n", "\n").replace("\r", "\n")


# -- the convenience functions (the stdlib's, over this Popen) -----------------------------


def run(*popenargs: Any, input: Any = None, capture_output: bool = False,
        timeout: Optional[float] = None, check: bool = False, **kwargs: Any
        ) -> CompletedProcess:
    """``subprocess.run`` over the cooperative ``Popen``."""
    if input is not None:
        if kwargs.get("stdin") is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        kwargs["stdin"] = PIPE
    if capture_output:
        if kwargs.get("stdout") is not None or kwargs.get("stderr") is not None:
            raise ValueError("stdout and stderr arguments may not be used "
                             "with capture_output.")
        kwargs["stdout"] = PIPE
        kwargs["stderr"] = PIPE
    with Popen(*popenargs, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except TimeoutExpired:
            process.kill()
            process.wait()
            raise
        except BaseException:
            process.kill()
            raise
        retcode = process.poll()
        if check and retcode:
            raise CalledProcessError(retcode, process.args, output=stdout, stderr=stderr)
    return CompletedProcess(process.args, retcode, stdout, stderr)


def call(*popenargs: Any, timeout: Optional[float] = None, **kwargs: Any) -> int:
    """Run the command, wait for it (cooperatively), return its returncode."""
    with Popen(*popenargs, **kwargs) as p:
        try:
            return p.wait(timeout=timeout)
        except BaseException:
            p.kill()
            raise


def check_call(*popenargs: Any, **kwargs: Any) -> int:
    """``call``, raising CalledProcessError for a non-zero returncode."""
    retcode = call(*popenargs, **kwargs)
    if retcode:
        cmd = kwargs.get("args")
        if cmd is None:
            cmd = popenargs[0]
        raise CalledProcessError(retcode, cmd)
    return 0


def check_output(*popenargs: Any, timeout: Optional[float] = None, **kwargs: Any
                 ) -> Union[bytes, str]:
    """Run the command and return its stdout; CalledProcessError for a non-zero
    returncode."""
    for kw in ("stdout", "check"):
        if kw in kwargs:
            raise ValueError(f"{kw} argument not allowed, it will be overridden.")
    if "input" in kwargs and kwargs["input"] is None:
        if (kwargs.get("universal_newlines") or kwargs.get("text") or kwargs.get("encoding")
                or kwargs.get("errors")):
            kwargs["input"] = ""
        else:
            kwargs["input"] = b""
    return run(*popenargs, stdout=PIPE, timeout=timeout, check=True, **kwargs).stdout


def getstatusoutput(cmd: Any, *, encoding: Optional[str] = None,
                    errors: Optional[str] = None) -> Tuple[int, str]:
    """``subprocess.getstatusoutput`` over the cooperative ``Popen``."""
    try:
        data = check_output(cmd, shell=True, text=True, stderr=STDOUT, encoding=encoding,
                            errors=errors)
        exitcode = 0
    except CalledProcessError as ex:
        data = ex.output
        exitcode = ex.returncode
    if data[-1:] == "\n":
        data = data[:-1]
    return exitcode, data


def getoutput(cmd: Any, *, encoding: Optional[str] = None, errors: Optional[str] = None
              ) -> str:
    """``subprocess.getoutput`` over the cooperative ``Popen``."""
    return getstatusoutput(cmd, encoding=encoding, errors=errors)[1]
