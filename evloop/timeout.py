"""evloop.timeout: Timeout and with_timeout, with gevent's semantics.

Why it exists: a Timeout bounds any blocking section of one greenlet — on expiry the hub
raises the Timeout (or a chosen exception) in the greenlet that started it, wherever it is
waiting. It must not outlive its section: leaving the ``with`` block (or ``cancel()``)
stops the timer, so a Timeout never fires into an unrelated later wait.
"""
from typing import Any, Callable, Optional

from greenlet import getcurrent

from evloop.hub import _seconds, get_hub

__all__ = ["Timeout", "with_timeout"]

_NONE = object()


def _check_timeout_exception(exception: Any) -> None:
    if exception is None or exception is False or isinstance(exception, str):
        return
    if isinstance(exception, BaseException) or (isinstance(exception, type)
                                                and issubclass(exception, BaseException)):
        return
    raise TypeError(f"a Timeout's exception must be None, False, a message (str), or an "
                    f"exception class or instance, not {exception!r}")


def _expire(glet: Any, exception: BaseException) -> None:
    # from the hub, when the timer fires; a finished greenlet has nothing to interrupt
    if not glet.dead:
        glet.throw(exception)


class Timeout(BaseException):
    """Raise an exception in the current greenlet after ``seconds``.

    ``Timeout(seconds=None)`` never fires. ``exception``: None raises the Timeout itself;
    an exception class or instance raises that; ``False`` raises the Timeout but a ``with``
    block swallows it (the block just ends); a str is the Timeout's message (gevent's
    form). Anything else is a TypeError at the call (and at ``start()``, if ``exception``
    was replaced meanwhile): raised later by the hub, it would not interrupt anything.
    Negative seconds fire at once; NaN raises ValueError; a non-number TypeError.

    Use as a context manager (starts on entry, cancels on exit), or ``start()`` /
    ``cancel()``; ``Timeout.start_new(seconds)`` makes and starts one.
    """

    def __init__(self, seconds: Optional[float] = None, exception: Any = None,
                 ref: bool = True, priority: int = -1) -> None:
        BaseException.__init__(self)
        if seconds is not None:
            seconds = _seconds(seconds, "timeout")
        _check_timeout_exception(exception)
        self.seconds = seconds
        self.exception = exception
        self.ref = ref
        self._priority = priority
        self.timer = None

    def start(self) -> "Timeout":
        if self.pending:
            raise AssertionError(f"{self!r} is already started; to restart it, cancel it first")
        if self.seconds is None:
            return self  # infinite: nothing to schedule
        _check_timeout_exception(self.exception)
        if self.exception is None or self.exception is False or isinstance(self.exception, str):
            throws: Any = self
        else:
            throws = self.exception
        if self.timer is None:
            self.timer = get_hub().loop.timer(self.seconds, ref=self.ref,
                                              priority=self._priority)
        self.timer.start(_expire, getcurrent(), throws, update=True)
        return self

    @classmethod
    def start_new(cls, timeout: Any = None, exception: Any = None,
                  ref: bool = True) -> "Timeout":
        if isinstance(timeout, Timeout):
            if not timeout.pending:
                timeout.start()
            return timeout
        return cls(timeout, exception, ref=ref).start()

    @staticmethod
    def _start_new_or_dummy(timeout: Any, exception: Any = None,
                            ref: bool = True) -> "Timeout":
        return Timeout.start_new(timeout, exception, ref)

    @property
    def pending(self) -> bool:
        timer = self.timer
        return timer is not None and (timer.active or timer.pending)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.stop()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.close()
            self.timer = None

    def __enter__(self) -> "Timeout":
        if not self.pending:
            self.start()
        return self

    def __exit__(self, typ: Any, value: Any, tb: Any) -> Optional[bool]:
        self.close()
        if value is self and self.exception is False:
            return True
        return None

    def __repr__(self) -> str:
        state = " pending" if self.pending else ""
        exc = "" if self.exception is None else f" exception={self.exception!r}"
        return f"<Timeout at {id(self):#x} seconds={self.seconds}{exc}{state}>"

    def __str__(self) -> str:
        if self.seconds is None:
            return ""
        suffix = "" if self.seconds == 1 else "s"
        if self.exception is None:
            return f"{self.seconds:g} second{suffix}"
        if self.exception is False:
            return f"{self.seconds:g} second{suffix} (silent)"
        return f"{self.seconds:g} second{suffix}: {self.exception}"


def with_timeout(seconds: Optional[float], function: Callable[..., Any], *args: Any,
                 **kwds: Any) -> Any:
    """Call ``function(*args, **kwds)``; if it takes longer than ``seconds``, raise Timeout,
    or return ``timeout_value`` when that keyword is given."""
    timeout_value = kwds.pop("timeout_value", _NONE)
    timeout = Timeout.start_new(seconds)
    try:
        try:
            return function(*args, **kwds)
        except Timeout as ex:
            if ex is timeout and timeout_value is not _NONE:
                return timeout_value
            raise
    finally:
        timeout.close()
