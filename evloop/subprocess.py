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
a pipeline, must stay blocking), reap a child it did not start, or leave libev's SIGCHLD
handler installed once its children are reaped (so the stdlib ``subprocess`` and a
user's SIGCHLD handler keep working; see evloop.os).
"""
import io as _io
import os as _os
import select as _select
import subprocess as _subprocess
import time as _time_mod
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


def _remaining(endtime: Optional[float]) -> Optional[float]:
    # what Popen._remaining_time computed up to 3.14 (3.15 removed the method)
    return None if endtime is None else endtime - _time()


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


class Popen(_subprocess.Popen):
    """``subprocess.Popen`` with cooperative ``wait``, ``communicate``, ``poll`` and pipes.

    Arguments, attributes, exceptions and context-manager behaviour are the stdlib's
    (the stdlib code starts the child). ``wait(timeout)`` blocks only the calling greenlet
    until the child exits (``TimeoutExpired`` after ``timeout`` seconds);
    ``communicate(input, timeout)`` likewise while it feeds stdin and drains stdout and
    stderr; reads and writes on ``stdin``/``stdout``/``stderr`` wait through the hub.
    """

    def __init__(self, args: Any, *popenargs: Any, **kwargs: Any) -> None:
        self._evloop_watch: Any = None
        self._evloop_waiters: List[Tuple[Hub, Any]] = []
        bufsize = kwargs.get("bufsize", popenargs[0] if popenargs else -1)
        super().__init__(args, *popenargs, **kwargs)
        # The child runs (exec succeeded; on failure the stdlib reaped it and raised) and
        # nothing has yielded to the loop since it was created: watch it now.
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
            self._handle_exitstatus(status)
        watch, self._evloop_watch = self._evloop_watch, None
        if watch is not None:
            watch.cancel()
        for hub, waiter in list(self._evloop_waiters):
            hub.loop.run_callback_threadsafe(waiter.switch, None)

    def _internal_poll(self, _deadstate: Optional[int] = None, **_ignored: Any
                       ) -> Optional[int]:
        if self.returncode is not None or not self._child_created:
            return self.returncode
        try:
            return self._evloop_poll(_deadstate)
        except Exception:  # noqa: BLE001 - from __del__ at shutdown, modules half gone
            if self.returncode is not None:
                return self.returncode
            return super()._internal_poll(_deadstate=_deadstate)

    def _evloop_poll(self, deadstate: Optional[int]) -> Optional[int]:
        pid = self.pid
        status = _evos._owner_status(pid)  # reaped by libev, e.g. while not watched
        if status is not None:
            self._evloop_exited(pid, status)
            return self.returncode
        if not self._waitpid_lock.acquire(False):
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
                elif not _evos._reaper_pending():
                    # reaped behind our back (os.waitpid elsewhere, SIGCHLD ignored): the
                    # status is lost; the stdlib's rule
                    self._evloop_exited(pid, 0)
                    if deadstate is not None:
                        self.returncode = deadstate
            else:
                if rpid == pid:
                    # tells our watch and the others; recorded for waitpid(pid)
                    _evos._child_exited(pid, status, consumed=True)
                    if self.returncode is None:
                        self._evloop_exited(pid, status)
        finally:
            self._waitpid_lock.release()
        return self.returncode

    def _wait(self, timeout: Optional[float]) -> int:
        if self.returncode is not None:
            return self.returncode
        endtime = None if timeout is None else _time() + timeout
        delay = _evos._POLL_MIN
        while self._internal_poll() is None:
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
            # SAFETY_POLL: _wait() polls the OS now and then (see evloop.os)
            wait = _evos.SAFETY_POLL if timeout is None else min(timeout, _evos.SAFETY_POLL)
            timer = hub.loop.timer(wait, ref=False)
            timer.start(waiter.switch, None, update=True)
            waiter.get()
        finally:
            self._evloop_waiters.remove(entry)
            if timer is not None:
                timer.close()

    # -- communicate ---------------------------------------------------------------------

    def _communicate(self, input: Any, endtime: Optional[float], orig_timeout: Optional[float]
                     ) -> Tuple[Any, Any]:
        # The stdlib's algorithm, with the select() replaced by io watchers.
        if self.stdin and not self._communication_started:
            try:
                self.stdin.flush()
            except BrokenPipeError:
                pass
            if not input:
                try:
                    self.stdin.close()
                except BrokenPipeError:
                    pass

        if not self._communication_started:
            self._fileobj2output: Dict[Any, List[bytes]] = {}
            if self.stdout:
                self._fileobj2output[self.stdout] = []
            if self.stderr:
                self._fileobj2output[self.stderr] = []
        stdout = self._fileobj2output[self.stdout] if self.stdout else None
        stderr = self._fileobj2output[self.stderr] if self.stderr else None

        self._save_input(input)
        input_view = memoryview(self._input) if self._input else None

        fds: Dict[int, Tuple[Any, int]] = {}  # fd -> (file object, READ/WRITE)
        if (self.stdin and not self.stdin.closed and input_view is not None
                and self._input_offset < len(input_view)):
            fds[self.stdin.fileno()] = (self.stdin, _core.WRITE)
        for f in (self.stdout, self.stderr):
            if f and not f.closed:
                fds[f.fileno()] = (f, _core.READ)

        hub = get_hub()
        while fds:
            timeout = _remaining(endtime)
            if timeout is not None and timeout < 0:
                self._check_timeout(endtime, orig_timeout, stdout, stderr,
                                    skip_check_and_raise=True)
            fd = _wait_any(hub, [(fd, ev) for fd, (_f, ev) in fds.items()], timeout)
            self._check_timeout(endtime, orig_timeout, stdout, stderr)
            if fd is None:
                continue
            f, events = fds[fd]
            if events == _core.WRITE:
                chunk = input_view[self._input_offset:self._input_offset + _PIPE_BUF]
                try:
                    self._input_offset += _os.write(fd, chunk)
                except BrokenPipeError:
                    del fds[fd]
                    f.close()
                else:
                    if self._input_offset >= len(input_view):
                        del fds[fd]
                        f.close()
            else:
                data = _os.read(fd, _READ_CHUNK)
                if not data:
                    del fds[fd]
                    f.close()
                self._fileobj2output[f].append(data)

        self.wait(timeout=_remaining(endtime))

        out = b"".join(stdout) if stdout is not None else None
        err = b"".join(stderr) if stderr is not None else None
        if self.text_mode:
            if out is not None:
                out = self._translate_newlines(out, self.stdout.encoding, self.stdout.errors)
            if err is not None:
                err = self._translate_newlines(err, self.stderr.encoding, self.stderr.errors)
        return out, err


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
