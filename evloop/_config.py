"""Configuration from environment variables, in gevent's style, read once.

Why it exists: behaviour that users set per deployment (backend, blocking monitor) is read
from the environment at first use, validated, and kept here; a bad value raises ValueError
naming the variable and the accepted values. It must not import the hub or anything that
starts a loop.

| variable | meaning | default |
|---|---|---|
| EVLOOP_BACKEND | libev backend(s) for new hubs' loops: epoll, poll, select, kqueue (comma-separated) | libev's choice |
| EVLOOP_MONITOR_THREAD | 1/true/yes/on: start the blocking monitor with each hub | off |
| EVLOOP_MAX_BLOCKING_TIME | seconds the hub may go without returning to its loop before the monitor reports | 0.1 |
| EVLOOP_THREADPOOL_SIZE | maximum threads in the hub's thread pool | 10 |
| EVLOOP_RESOLVER | name resolution: thread (the thread pool), ares (pycares), block | thread |
X
"""
import os
from typing import Optional

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_BACKENDS = ("epoll", "poll", "select", "kqueue")
#: the resolver class each EVLOOP_RESOLVER value chooses, by name ("module.Class"), and the
#: hub's thread pool class: the hub imports them at first use (``Hub.resolver_class``,
#: ``Hub.threadpool_class``). They are a layer above the hub, and a name is not an import.
RESOLVER_CLASSES = {"thread": "evloop.resolver.ThreadResolver",
                    "ares": "evloop.resolver.AresResolver",
                    "block": "evloop.resolver.BlockingResolver"}
THREADPOOL_CLASS = "evloop.threadpool.ThreadPool"
_RESOLVERS = tuple(RESOLVER_CLASSES)


class Config:
    """Values read once from the environment; attributes may be changed by code before the
    first hub is created."""

    def __init__(self, environ=None) -> None:
        env = os.environ if environ is None else environ
        self.backend: Optional[str] = self._backend(env.get("EVLOOP_BACKEND"))
        self.monitor_thread: bool = self._bool("EVLOOP_MONITOR_THREAD",
                                               env.get("EVLOOP_MONITOR_THREAD"))
        self.max_blocking_time: float = self._positive(
            "EVLOOP_MAX_BLOCKING_TIME", env.get("EVLOOP_MAX_BLOCKING_TIME"), 0.1)
        self.threadpool_size: int = int(self._positive(
            "EVLOOP_THREADPOOL_SIZE", env.get("EVLOOP_THREADPOOL_SIZE"), 10, integer=True))
        self.resolver: str = self._resolver(env.get("EVLOOP_RESOLVER"))
        self.aio_transports: str = self._choice("EVLOOP_AIO_TRANSPORTS",
                                                env.get("EVLOOP_AIO_TRANSPORTS"),
                                                ("asyncio", "evloop"), "evloop")

    @staticmethod
    def _bool(name: str, raw: Optional[str]) -> bool:
        if raw is None:
            return False
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f"{name}={raw!r}: expected one of 1/0, true/false, yes/no, on/off")

    @staticmethod
    def _positive(name: str, raw: Optional[str], default: float, integer: bool = False):
        if raw is None or not raw.strip():
            return default
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            kind = "an integer" if integer else "a number of seconds"
            raise ValueError(f"{name}={raw!r}: expected {kind} > 0") from None
        if not value > 0 or value != value or value == float("inf"):
            raise ValueError(f"{name}={raw!r}: must be > 0 and finite")
        return value

    @staticmethod
    def _backend(raw: Optional[str]) -> Optional[str]:
        if raw is None or not raw.strip():
            return None
        names = [part.strip().lower() for part in raw.split(",") if part.strip()]
        bad = [n for n in names if n not in _BACKENDS]
        if bad:
            raise ValueError(f"EVLOOP_BACKEND={raw!r}: unknown backend {bad[0]!r}; "
                             f"choose from {', '.join(_BACKENDS)}")
        return ",".join(names)

    @staticmethod
    def _choice(name: str, raw: Optional[str], choices: tuple, default: str) -> str:
        if raw is None or not raw.strip():
            return default
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"{name}={raw!r}: choose from {', '.join(choices)}")
        return value

    @staticmethod
    def _resolver(raw: Optional[str]) -> str:
        if raw is None or not raw.strip():
            return "thread"
        name = raw.strip().lower()
        if name not in _RESOLVERS:
            raise ValueError(f"EVLOOP_RESOLVER={raw!r}: unknown resolver {name!r}; "
                             f"choose from {', '.join(_RESOLVERS)}")
        return name


def resolver_class_name(name: str) -> str:
    """The "module.Class" name of the resolver for an ``EVLOOP_RESOLVER`` value."""
    try:
        return RESOLVER_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown resolver {name!r}; choose from "
                         f"{', '.join(RESOLVER_CLASSES)}") from None


_config: Optional[Config] = None


def get_config() -> Config:
    """The process's configuration, read from the environment on first call."""
    global _config
    if _config is None:
        _config = Config()
    return _config
