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
| EVLOOP_FILE | the kind ``evloop.fileobject.FileObject`` is: posix, thread, block, or a "module.Class" name (read when evloop.fileobject is first imported) | posix (thread without fcntl) |
| EVLOOP_TRACK_GREENLET_TREE | 1/true/yes/on: each Greenlet records its spawning stack and takes its spawn_tree_locals at spawn, as gevent's ``config.track_greenlet_tree`` (read at the first spawn) | off |
| EVLOOP_MAX_MEMORY_USAGE | bytes of RSS above which the monitor thread (when started) publishes MemoryUsageThresholdExceeded, as gevent's ``config.max_memory_usage`` | none |
| EVLOOP_MEMORY_MONITOR_PERIOD | seconds between the monitor's memory checks | 5 |
| EVLOOP_AIO_TRANSPORTS | evloop.aio's socket transports: evloop (its own, C) or asyncio (asyncio's selector transports) | evloop |
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
#: every variable read here and the ``Config`` attribute holding its value (for
#: ``python -m evloop``, which prints each with where it came from)
VARIABLES = (("EVLOOP_BACKEND", "backend"),
             ("EVLOOP_MONITOR_THREAD", "monitor_thread"),
             ("EVLOOP_MAX_BLOCKING_TIME", "max_blocking_time"),
             ("EVLOOP_THREADPOOL_SIZE", "threadpool_size"),
             ("EVLOOP_RESOLVER", "resolver"),
             ("EVLOOP_FILE", "fileobject"),
             ("EVLOOP_AIO_TRANSPORTS", "aio_transports"),
             ("EVLOOP_TRACK_GREENLET_TREE", "track_greenlet_tree"),
             ("EVLOOP_MAX_MEMORY_USAGE", "max_memory_usage"),
             ("EVLOOP_MEMORY_MONITOR_PERIOD", "memory_monitor_period"))

_FILEOBJECTS = ("posix", "thread", "block")


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
        self.fileobject: str = self._fileobject(env.get("EVLOOP_FILE"))
        self.track_greenlet_tree: bool = self._bool("EVLOOP_TRACK_GREENLET_TREE",
                                                    env.get("EVLOOP_TRACK_GREENLET_TREE"))
        raw = env.get("EVLOOP_MAX_MEMORY_USAGE")
        self.max_memory_usage: Optional[int] = None if raw is None or not raw.strip() else \
            int(self._positive("EVLOOP_MAX_MEMORY_USAGE", raw, 0, integer=True))
        self.memory_monitor_period: float = self._positive(
            "EVLOOP_MEMORY_MONITOR_PERIOD", env.get("EVLOOP_MEMORY_MONITOR_PERIOD"), 5.0)
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

    @staticmethod
    def _fileobject(raw: Optional[str]) -> str:
        if raw is None or not raw.strip():
            return "posix"
        name = raw.strip()
        if name.lower() in _FILEOBJECTS:
            return name.lower()
        module, _, cls = name.rpartition(".")
        if not module or not cls.isidentifier() or \
                not all(part.isidentifier() for part in module.split(".")):
            raise ValueError(f"EVLOOP_FILE={raw!r}: expected one of "
                             f"{', '.join(_FILEOBJECTS)} or a 'module.Class' name")
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
