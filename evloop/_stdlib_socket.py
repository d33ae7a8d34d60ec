"""The private details of CPython's ``_socket`` that evloop.socket relies on, in one place.

Why it exists: evloop's socket must refuse exactly what the stdlib's refuses, with the same
exception and message, on every supported CPython — and those differ between versions
(3.13 made ``setblocking`` take any object; 3.14 and 3.15 reworded the timeout errors; 3.15
moved ``send``/``sendall`` to Argument Clinic). Rather than copy each version's rules, the
stdlib judges: its own method is called with the caller's arguments on a socket that has
no fd (``fdless``), so it validates them and then fails at the system call with EBADF.
The C fast path (csrc/evloop_io.c) does the same for whatever it does not take itself.

What it must not do: touch an fd (the fd-less socket has none: -1) or keep state between
calls (each timeout and blocking flag is parsed on a fresh fd-less socket, so threads do not
race). tests/test_socket_hostile.py ``test_stdlib_details`` fails loudly if a CPython
changes a detail below.
"""
import _socket
import math
import socket as _stdsocket
from errno import EBADF
from typing import Any, Optional

_std = _socket.socket


def fdless() -> _socket.socket:
    """A ``_socket.socket`` made by its ``__new__`` without ``__init__``: its fd is -1 and its
    timeout None. Its methods check their arguments as on any socket, then the system call
    fails with EBADF (``settimeout``/``setblocking`` store the new value first, then fail
    setting the fd's mode). Checked on CPython 3.10, 3.11, 3.12, 3.13, 3.14, 3.15."""
    return _std.__new__(_std)


def _judged(method: Any, value: Any) -> _socket.socket:
    probe = fdless()
    try:
        method(probe, value)
    except OSError as exc:
        if exc.errno != EBADF:
            raise
    return probe


def parse_timeout(value: Any) -> Optional[float]:
    """``settimeout(value)``'s value as the stdlib stores it (None, or seconds as a float
    rounded up to the nanosecond, which its ``gettimeout()`` returns), or its exception."""
    if value is None:
        return None
    # the common cases without the probe: CPython converts to integer nanoseconds rounding
    # up (_PyTime_ROUND_TIMEOUT, 3.10-3.15) and gettimeout() divides back
    if type(value) is float and 0.0 <= value < 1e9:  # also refuses NaN
        ns = math.ceil(value * 1e9)
        return float(ns // 1_000_000_000) if ns % 1_000_000_000 == 0 else ns / 1e9
    if type(value) is int and 0 <= value < 10 ** 9:
        return float(value)
    return _judged(_std.settimeout, value).gettimeout()


def parse_blocking(flag: Any) -> bool:
    """``setblocking(flag)``'s flag as the stdlib takes it (an int on 3.10-3.12, any object's
    truth on 3.13+), or its exception."""
    if flag is True or flag is False:
        return flag
    return _judged(_std.setblocking, flag).getblocking()


# socket.socket's own helpers for sendfile, which evloop's sendfile shares so that its
# arguments are checked and its send() fallback runs as the stdlib's (3.10-3.15: the
# checks raise TypeError/ValueError for a text or non-file object, a negative offset or
# count; the fallback reads the file in blocks and sends them with self.send)
check_sendfile_params = _stdsocket.socket._check_sendfile_params
sendfile_use_send = _stdsocket.socket._sendfile_use_send
