"""evloop.monkey: make the standard library cooperative, in place (gevent's
``gevent.monkey``).

Why it exists: programs and libraries written for blocking I/O and threads (urllib,
http.client, requests, socketserver, concurrent.futures, ...) import ``socket``, ``ssl``,
``time``, ``threading`` themselves; replacing the blocking attributes of those modules with
evloop's makes them cooperative without changing their code. ``patch_all()`` does all of
it; ``patch_socket()``, ``patch_ssl()``, ... one module at a time; the originals are kept
(``get_original``), and ``python -m evloop.monkey script.py args...`` runs a script
patched. Patching should come first, before other imports: a module that captured an
original (``from time import sleep``, ``from ssl import SSLContext``) or a class that
subclassed one keeps the standard library's behaviour, and patching then warns
(``MonkeyPatchWarning``), as it does when real threads were already running.

What it must not do: create a hub or start a loop (patching only rebinds attributes), patch
anything it was not asked to, or lose an original: patching twice is harmless and the first
original is the one kept. It is process-wide and cannot be undone.
"""
import sys

# Keep imports few and local: this module is imported before the program's own imports,
# and whatever it imports at the top is imported unpatched.
from typing import Any, Dict, Iterable, List, Optional, Tuple

# The originals live one layer down (evloop.threading and evloop._stdlib_multiprocessing
# need them too, and must not import this module); ``saved`` and ``get_original`` are
# this module's public API.
from evloop._originals import OverlayGlobals as _OverlayGlobals
from evloop._originals import get_original, saved
from evloop._originals import rebind as _rebind

__all__ = [
    "patch_all", "patch_socket", "patch_dns", "patch_ssl", "patch_time", "patch_thread",
    "patch_select", "patch_selectors", "patch_os", "patch_subprocess", "patch_signal",
    "patch_queue", "patch_multiprocessing", "patch_sys", "patch_builtins", "get_original", "is_module_patched",
    "is_object_patched", "is_anything_patched", "patch_item", "remove_item",
    "patch_module", "main", "MonkeyPatchWarning",
]


class MonkeyPatchWarning(RuntimeWarning):
    """Patching came too late (or was done in a way) to fully take effect."""


_MISSING = object()


# -- querying ---------------------------------------------------------------------------

def is_module_patched(mod_name: str) -> bool:
    """True if anything in the standard module ``mod_name`` (e.g. ``'socket'``) was
    replaced."""
    return mod_name in saved


def is_object_patched(mod_name: str, item_name: str) -> bool:
    """True if attribute ``item_name`` of module ``mod_name`` was replaced."""
    return mod_name in saved and item_name in saved[mod_name]


def is_anything_patched() -> bool:
    return bool(saved)


# -- the patching primitives ------------------------------------------------------------

def patch_item(module: Any, attr: str, newitem: Any) -> None:
    """Set ``module.attr`` to ``newitem``, keeping the original for ``get_original``."""
    olditem = getattr(module, attr, _MISSING)
    if olditem is not _MISSING:
        saved.setdefault(module.__name__, {}).setdefault(attr, olditem)
    setattr(module, attr, newitem)


def remove_item(module: Any, attr: str) -> None:
    """Delete ``module.attr`` (a blocking API evloop has no cooperative version of),
    keeping the original."""
    olditem = getattr(module, attr, _MISSING)
    if olditem is _MISSING:
        return
    saved.setdefault(module.__name__, {}).setdefault(attr, olditem)
    delattr(module, attr)


def patch_module(target_module: Any, source_module: Any,
                 items: Optional[Iterable[str]] = None) -> List[str]:
    """Replace each attribute named in ``items`` (default: ``source_module.__implements__``)
    of ``target_module`` with ``source_module``'s; return the names replaced."""
    if items is None:
        items = getattr(source_module, "__implements__", None)
        if items is None:
            raise AttributeError(f"{source_module.__name__} has no __implements__; "
                                 f"pass items=")
    done = []
    for attr in items:
        patch_item(target_module, attr, getattr(source_module, attr))
        done.append(attr)
    return done


# What each standard module gets from its evloop module. A name the evloop module does
# not define is left alone, and so is one the standard module does not have; an evloop
# module may list its names itself in ``__implements__``.
_ITEMS: Dict[str, List[str]] = {
    "socket": ["socket", "SocketType", "create_connection", "socketpair", "fromfd"],
    "dns": ["getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
            "getnameinfo", "getfqdn"],
    "ssl": ["SSLContext", "SSLSocket", "create_default_context",
            "_create_default_https_context", "_create_unverified_context",
            "_create_stdlib_context", "get_server_certificate", "wrap_socket"],
    "time": ["sleep"],
    "select": ["select", "poll"],
    "selectors": ["DefaultSelector"],
    "os": ["fork", "forkpty", "waitpid", "wait", "posix_spawn", "posix_spawnp"],
    "subprocess": ["Popen", "call", "check_call", "check_output", "run",
                   "getoutput", "getstatusoutput"],
    "signal": ["signal", "getsignal"],
    "queue": ["SimpleQueue", "Queue", "LifoQueue", "PriorityQueue"],
}
# Removed when ``aggressive``: blocking APIs with no cooperative version.
_AGGRESSIVE_REMOVALS: Dict[str, List[str]] = {
    "select": ["epoll", "kqueue", "kevent", "devpoll"],
    "selectors": ["EpollSelector", "KqueueSelector", "DevpollSelector"],
}


def _source_items(key: str, source: Any, target: Any) -> List[str]:
    implements = getattr(source, "__implements__", None)
    if key == "dns":
        implements = getattr(source, "__dns__", None)
    elif key == "socket" and implements is not None:
        implements = [n for n in implements if n not in _ITEMS["dns"]]
    names = list(implements) if implements is not None else _ITEMS[key]
    # a name evloop re-exports unchanged (``from os import *``) is not a patch
    return [n for n in names if hasattr(source, n) and hasattr(target, n)
            and getattr(source, n) is not getattr(target, n)]


def _patch(key: str, target_name: Optional[str] = None, evloop_name: Optional[str] = None,
           items: Optional[Iterable[str]] = None) -> Tuple[Any, Any, List[str]]:
    """Import evloop's module first (it captures the originals it needs), then patch."""
    import importlib
    from evloop import events
    target_name = target_name or key
    source = importlib.import_module(f"evloop.{evloop_name or target_name}")
    target = importlib.import_module(target_name)
    names = list(items) if items is not None else _source_items(key, source, target)
    will = events.EvloopWillPatchModuleEvent(target.__name__, source, target, names)
    try:
        events.notify_and_call_entry_points(will)
    except events.DoNotPatch:
        return source, target, []
    names = list(will.target_item_names)  # a subscriber may have changed the list
    patch_module(target, source, names)
    events.notify_and_call_entry_points(
        events.EvloopDidPatchModuleEvent(target.__name__, source, target))
    return source, target, names


# -- keeping the originals' own code working --------------------------------------------

def _functions_of(value: Any) -> List[Any]:
    import types
    if isinstance(value, types.FunctionType):
        return [value]
    if isinstance(value, property):
        return [f for f in (value.fget, value.fset, value.fdel) if f is not None]
    if isinstance(value, (staticmethod, classmethod)):
        return [value.__func__]
    return []


def _global_names(code: Any) -> set:
    """The global names ``code`` (and the code nested in it) reads: which methods of a class
    name that class through module globals, so that ``_pin_class_names`` rebinds only
    those (rebinding all of them would route every global lookup of the hot ones through
    ``_OverlayGlobals.__getitem__``). Not feature detection: what it finds decides what the
    rebinding covers, never which CPython or library behaviour to assume."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _global_names(const)
    return names


def _pin_class_names(module: Any, classes: Dict[str, type]) -> None:
    """The standard library's classes name themselves through module globals
    (``super(SSLContext, SSLContext)``, ``super(SSLSocket, self)`` in ssl). Once patching
    binds those globals to evloop's subclasses, that recurses or fails, for the originals'
    instances (made by code that captured the original class) and for evloop's alike.
    Rebind each such method of the original classes to a namespace in which those names
    still mean the originals (kept as ``get_original(module, 'Class.method')``)."""
    namespace = _OverlayGlobals(vars(module), dict(classes))
    wanted = set(classes)
    for cls in classes.values():
        for attr, value in list(vars(cls).items()):
            functions = _functions_of(value)
            if not functions or any(hasattr(f, "__evloop_live__") for f in functions):
                continue
            if any(wanted & _global_names(f.__code__) for f in functions):
                _patch_class_attr(module, cls, attr, _rebind(value, namespace))


def _patch_class_attr(module: Any, cls: type, attr: str, value: Any) -> None:
    """Set ``cls.attr`` (a class of ``module``), keeping the original under
    ``get_original(module, 'Class.attr')``."""
    originals = saved.setdefault(module.__name__, {})
    originals.setdefault(f"{cls.__name__}.{attr}", vars(cls)[attr])
    setattr(cls, attr, value)


# -- warnings ---------------------------------------------------------------------------

def _queue_warning(message: str, _warnings: Optional[List[str]]) -> None:
    if _warnings is None:
        _process_warnings([message])
    else:
        _warnings.append(message)


def _process_warnings(_warnings: List[str]) -> None:
    import warnings
    # point at the first caller outside this module
    level = 1
    frame = sys._getframe(0)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        level += 1
        frame = frame.f_back
    for message in _warnings:
        warnings.warn(message, MonkeyPatchWarning, stacklevel=level)


_stdlib_paths: List[str] = []


def _is_stdlib_module(name: str) -> bool:
    top = name.partition(".")[0]
    if top in sys.builtin_module_names:
        return True
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return top in names
    # Python 3.9: by location
    if not _stdlib_paths:
        import sysconfig
        _stdlib_paths.append(sysconfig.get_paths()["stdlib"])
    path = getattr(sys.modules.get(name), "__file__", None) or ""
    return path.startswith(_stdlib_paths[0]) and "-packages" not in path


def _ours(name: str) -> bool:
    return name == "evloop" or name.startswith("evloop.")


def _check_captured(patched: Dict[str, List[str]], _warnings: Optional[List[str]]) -> None:
    """Warn about what patching cannot reach: module globals bound to an original
    (``from time import sleep``) and subclasses of an original class, made before
    patching, outside the standard library and evloop."""
    originals: Dict[int, str] = {}
    classes = []
    for mod_name, names in patched.items():
        for attr in names:
            value = saved.get(mod_name, {}).get(attr, _MISSING)
            if value is _MISSING or value is None or isinstance(value, (int, str, bool)):
                continue
            if getattr(sys.modules.get(mod_name), attr, _MISSING) is value:
                continue  # not replaced after all
            originals[id(value)] = f"{mod_name}.{attr}"
            if isinstance(value, type):
                classes.append((f"{mod_name}.{attr}", value))
    if not originals:
        return
    holders: Dict[str, List[str]] = {}
    seen = set()
    for name, module in list(sys.modules.items()):
        if module is None or id(module) in seen or _ours(name) or name in patched \
                or _not_reported(name):
            continue
        seen.add(id(module))
        try:
            namespace = vars(module)
        except TypeError:
            continue
        for attr, value in list(namespace.items()):
            what = originals.get(id(value))
            if what is not None and attr[:2] != "__":
                holders.setdefault(what, []).append(f"{name}.{attr}")
    subclasses = []
    for what, cls in classes:
        try:
            subs = cls.__subclasses__()
        except TypeError:
            continue
        for sub in subs:
            mod = getattr(sub, "__module__", "") or ""
            if not _ours(mod) and not _is_stdlib_module(mod):
                subclasses.append(f"{mod}.{sub.__qualname__} (subclass of {what})")
    if not holders and not subclasses:
        return
    parts = ["Patching came too late for some code, which still uses the standard "
             "library's originals and may block the thread (patch before importing it: "
             "call evloop.monkey.patch_all() first, or run the program with "
             "`python -m evloop.monkey`)."]
    if holders:
        parts.append("Names imported before patching: " + "; ".join(
            f"{what} as {', '.join(sorted(where))}" for what, where in sorted(holders.items())
        ) + ".")
    if subclasses:
        parts.append("Classes derived before patching: " + "; ".join(sorted(subclasses))
                     + ".")
    _queue_warning(" ".join(parts), _warnings)


def _not_reported(name: str) -> bool:
    """Standard-library modules are not reported: they either read the patched module at
    call time or are patched themselves."""
    return name == "__mp_main__" or _is_stdlib_module(name)


# -- the patch functions ----------------------------------------------------------------

def patch_os() -> None:
    """Replace ``os.fork`` (the hub is reinitialised in the child) and ``os.waitpid``
    with evloop.os's cooperative versions."""
    _patch("os")


def patch_time() -> None:
    """Replace ``time.sleep`` with ``evloop.sleep`` (from evloop.time, as gevent patches
    from gevent.time)."""
    _patch("time")


def patch_queue() -> None:
    """Replace ``queue.SimpleQueue``, ``Queue``, ``LifoQueue`` and ``PriorityQueue`` with
    evloop.queue's (``queue.Empty``/``Full`` still catch their errors)."""
    _patch("queue")


def patch_sys(stdin: bool = True, stdout: bool = True, stderr: bool = True) -> None:
    """Does nothing (as in gevent on Python 3): kept for compatibility."""


def patch_builtins() -> None:
    """Does nothing (as in gevent on Python 3): kept for compatibility."""


def patch_socket(dns: bool = True, aggressive: bool = True) -> None:
    """Replace ``socket.socket`` (and ``SocketType``, ``create_connection``,
    ``socketpair``, ``fromfd``) with evloop.socket's cooperative ones; with ``dns`` also
    the name-resolution functions (``getaddrinfo``, ``gethostbyname``, ...)."""
    _patch("socket")
    if dns:
        patch_dns()


def patch_dns() -> None:
    """Replace ``socket.getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``,
    ``gethostbyaddr``, ``getnameinfo`` and ``getfqdn`` with evloop's, which resolve
    through the hub's resolver."""
    _patch("dns", target_name="socket", evloop_name="socket")


def patch_ssl(_warnings: Optional[List[str]] = None) -> None:
    """Replace ``ssl.SSLContext``, ``SSLSocket``, ``create_default_context``,
    ``_create_default_https_context`` (what http.client and urllib use), ... with
    evloop.ssl's. The original ``SSLContext`` keeps working (its methods that name
    ``SSLContext``/``SSLSocket`` still mean the originals) and its ``wrap_socket`` makes
    evloop SSLSockets too, so contexts made before patching cooperate. Call it before
    ``ssl`` is imported by anything else all the same: a MonkeyPatchWarning names the
    modules that imported ssl names, and the classes derived from them, first."""
    own_warnings = _warnings is None
    _warnings = [] if own_warnings else _warnings
    source, target, names = _patch("ssl")
    originals = saved.get("ssl", {})
    _pin_class_names(target, {name: originals[name] for name in ("SSLContext", "SSLSocket")
                              if name in originals})
    # contexts of the original class (made before patching, or by code that imported
    # ssl.SSLContext first) wrap sockets in evloop's SSLSocket too
    std_context = originals.get("SSLContext")
    if std_context is not None and "SSLSocket" in originals and \
            vars(std_context).get("sslsocket_class") is originals["SSLSocket"]:
        _patch_class_attr(target, std_context, "sslsocket_class", source.SSLSocket)
    if own_warnings:
        _check_captured({"ssl": names}, _warnings)
        _process_warnings(_warnings)


def patch_select(aggressive: bool = True) -> None:
    """Replace ``select.select`` and ``select.poll`` with evloop.select's; with
    ``aggressive``, remove ``select.epoll``, ``kqueue``, ``kevent`` and ``devpoll``."""
    _source, target, _names = _patch("select")
    if aggressive:
        for name in _AGGRESSIVE_REMOVALS["select"]:
            remove_item(target, name)


def patch_selectors(aggressive: bool = True) -> None:
    """Replace ``selectors.DefaultSelector`` with evloop.selectors'; make the stdlib's
    ``PollSelector`` and ``SelectSelector`` (which captured ``select.poll`` and
    ``select.select`` when imported; socketserver and subprocess use them) wait through
    evloop.select; with ``aggressive``, remove ``EpollSelector``, ``KqueueSelector`` and
    ``DevpollSelector``."""
    import importlib
    green_select = importlib.import_module("evloop.select")
    _source, target, _names = _patch("selectors")
    if aggressive:
        for name in _AGGRESSIVE_REMOVALS["selectors"]:
            remove_item(target, name)
    # The stdlib's own selector classes captured select.poll / select.select when
    # ``selectors`` was imported (and socketserver captured PollSelector): make them wait
    # through the hub too.
    from evloop import _stdlib_selectors as details
    poll_selector = getattr(target, "PollSelector", None)
    if poll_selector is not None and details.POLL_SELECTOR_FACTORY in vars(poll_selector):
        _patch_class_attr(target, poll_selector, details.POLL_SELECTOR_FACTORY,
                          green_select.poll)
    select_selector = getattr(target, "SelectSelector", None)
    if select_selector is not None and details.SELECT_SELECTOR_CALL in vars(select_selector) \
            and isinstance(vars(select_selector)[details.SELECT_SELECTOR_CALL], type(len)):
        green = green_select.select

        def _select(self: Any, rlist: Any, wlist: Any, xlist: Any,
                    timeout: Optional[float] = None) -> Any:
            return green(rlist, wlist, xlist, timeout)
        _patch_class_attr(target, select_selector, details.SELECT_SELECTOR_CALL, _select)


def patch_subprocess() -> None:
    """Replace ``subprocess.Popen`` and the functions built on it with evloop.subprocess's
    (waiting for a child and for its pipes is cooperative)."""
    _patch("subprocess")


def patch_signal() -> None:
    """Replace ``signal.signal`` and ``signal.getsignal`` with evloop.signal's (handlers
    run in the hub's loop; SIGCHLD keeps working with patched os and subprocess)."""
    _patch("signal")


def patch_multiprocessing() -> None:
    """Make ``multiprocessing``'s pipes cooperative, so that ``multiprocessing.Pool`` and
    ``concurrent.futures.ProcessPoolExecutor`` work with their handler threads as
    greenlets: a ``multiprocessing.connection.Connection`` waits for its fd through the hub
    before it reads or writes (the fd itself stays blocking: other processes share it), a
    contended ``multiprocessing`` lock (``Lock``, ``Semaphore``, ... made after patching)
    lets the thread's other greenlets run while it waits, and
    a process ``multiprocessing`` starts by forking gets a hub of its own (the parent's
    greenlets never run in it). ``patch_all`` does this when it patches threading. The
    private details involved live in ``evloop._stdlib_multiprocessing``."""
    import multiprocessing.connection as connection
    from evloop import _stdlib_multiprocessing as details
    cls = connection.Connection
    for name in details.CONNECTION_IO:
        original = vars(cls).get(name)
        if original is None or hasattr(original, "__evloop_original__"):
            continue
        _patch_class_attr(connection, cls, name, details.cooperative_io(name, original))
    import multiprocessing.synchronize as synchronize
    semlock = synchronize.SemLock
    make_methods = vars(semlock).get(details.SEMLOCK_MAKE_METHODS)
    if make_methods is not None and not hasattr(make_methods, "__evloop_original__"):
        _patch_class_attr(synchronize, semlock, details.SEMLOCK_MAKE_METHODS,
                          details.cooperative_make_methods(make_methods))
        _patch_class_attr(synchronize, semlock, "__enter__", details.cooperative_enter)
    details.install_after_fork()


# threading / _thread ---------------------------------------------------------------------

def patch_thread(threading: bool = True, _threading_local: bool = True, Event: bool = True,
                 logging: bool = True, existing_locks: bool = True,
                 _warnings: Optional[List[str]] = None) -> None:
    """Make threads greenlets: ``_thread.start_new_thread`` spawns a greenlet, locks wait
    cooperatively, ``threading.get_ident`` and ``threading.local`` are per greenlet; with
    ``threading`` also ``threading.Thread``/``Timer``/``Lock`` (``Event``: and
    ``threading.Event``); ``_threading_local``: its ``local``; ``logging``: the locks of
    the logging module and its existing handlers; ``existing_locks``: locks other modules
    made before patching that greenlets would block on.

    The main thread stays the main thread (``threading.main_thread()`` and
    ``current_thread()`` in the main greenlet), ``join()`` waits cooperatively, and the
    interpreter still waits for non-daemon green threads at exit.
    ``get_original('threading', 'Thread')`` and ``get_original('_thread',
    'start_new_thread')`` still start real threads.
    """
    import _thread as thread_mod
    import importlib
    import threading as threading_mod

    from evloop import events
    # the names replaced, per CPython version, and every other private detail of
    # threading used here
    from evloop import _stdlib_threading as stdlib_threading
    own_warnings = _warnings is None
    _warnings = [] if own_warnings else _warnings
    # evloop modules whose real threads must keep being real: imported before patching
    for helper in ("evloop.threadpool", "evloop.resolver"):
        try:
            importlib.import_module(helper)
        except ImportError:
            pass
    green = importlib.import_module("evloop.threading")
    will = events.EvloopWillPatchModuleEvent(threading_mod.__name__, green, threading_mod,
                                             list(stdlib_threading.THREADING_NAMES))
    try:
        events.notify_and_call_entry_points(will)
    except events.DoNotPatch:
        return

    main_thread = threading_mod.main_thread()
    native_get_ident = get_original("_thread", "get_ident")
    on_main_thread = native_get_ident() == main_thread.ident
    if not on_main_thread:
        _queue_warning("Monkey-patching threading outside the main thread: the main "
                       "thread cannot be joined from a greenlet, and the interpreter may "
                       "not wait for green threads at exit.", _warnings)
    # (threads started with _thread, such as evloop's own thread pool, are not reported)
    running = [t.name for t in threading_mod.enumerate()
               if t is not main_thread and not isinstance(t, stdlib_threading.DummyThread)]
    if running and not is_module_patched("threading"):
        _queue_warning(f"Monkey-patching threading after {len(running)} real thread(s) "
                       f"started ({', '.join(running)}): they keep running as real "
                       f"threads, and locks they hold are real locks.", _warnings)

    patch_module(thread_mod, green, stdlib_threading.THREAD_NAMES)
    if threading:
        # the names a will-patch subscriber left in the list
        patch_module(threading_mod, green, will.target_item_names)
        if Event:
            from evloop.event import Event as GreenEvent
            patch_item(threading_mod, "Event", GreenEvent)
        # the original Thread family keeps starting real threads
        green._keep_originals_native(dict(saved["threading"]))
        if existing_locks:
            _replace_existing_locks(threading_mod, stdlib_threading)
        if logging and "logging" in sys.modules:
            _replace_logging_locks(threading_mod, stdlib_threading)
        shutdown = stdlib_threading.SHUTDOWN_NAME
        if not is_object_patched("threading", shutdown):
            from greenlet import getcurrent
            if on_main_thread and getcurrent().parent is None:
                # a greenlet may then join() the main thread
                green._make_main_thread_joinable(main_thread)
            patch_item(threading_mod, shutdown,
                       green._make_shutdown(getattr(threading_mod, shutdown), main_thread))
    if _threading_local:
        import _threading_local as local_mod
        patch_item(local_mod, "local", green.local)
    events.notify_and_call_entry_points(events.EvloopDidPatchModuleEvent(
        threading_mod.__name__, green, threading_mod))
    if own_warnings:
        _process_warnings(_warnings)


def _replace_existing_locks(threading_mod: Any, stdlib_threading: Any) -> None:
    # locks held across Thread.start() (which now switches greenlets): a native lock there
    # would block the whole thread (gevent issue 1865)
    for module, attr in stdlib_threading.held_across_thread_start():
        patch_item(module, attr, threading_mod.Lock())


def _replace_logging_locks(threading_mod: Any, stdlib_threading: Any) -> None:
    import logging
    module_lock, handlers = stdlib_threading.logging_locks(logging)
    if module_lock is not None:
        patch_item(logging, module_lock, threading_mod.RLock())
    for handler in handlers:
        if getattr(handler, "lock", None) is not None:
            handler.lock = threading_mod.RLock()


# -- patch_all --------------------------------------------------------------------------

_patch_all_settings: Dict[str, bool] = {}

_EVLOOP_MODULES = ("evloop.hub", "evloop.time", "evloop.socket", "evloop.ssl",
                   "evloop.select", "evloop.selectors", "evloop.os", "evloop.subprocess", "evloop.signal",
                   "evloop.queue", "evloop.event", "evloop.threading", "evloop.threadpool",
                   "evloop.resolver")


def patch_all(socket: bool = True, dns: bool = True, time: bool = True, select: bool = True,
              thread: bool = True, os: bool = True, ssl: bool = True,
              subprocess: bool = True, sys: bool = False, aggressive: bool = True,
              Event: bool = True, builtins: bool = True, signal: bool = True,
              queue: bool = True, contextvars: bool = True, *,
              selectors: Optional[bool] = None, **kwargs: Any) -> Optional[bool]:
    """Do all the default patching; the arguments (gevent's, in gevent's order) turn single
    modules off. ``selectors`` defaults to ``select``. Calling it again only adds patches
    (with a warning if the arguments differ). Returns True if it patched anything.

    Libraries that ask gevent whether the standard library is cooperative (psycopg 3,
    python-socketio) then get evloop's answer: ``evloop._library_checks``.

    It publishes gevent's patch events through ``evloop.events`` (and the entry points
    they name): ``EvloopWillPatchAllEvent`` first (a subscriber raising ``DoNotPatch``
    stops everything; ``kwargs`` are for such plugins, as in gevent), a will/did pair
    per module, then ``EvloopDidPatchBuiltinModulesEvent`` and ``EvloopDidPatchAllEvent``."""
    import importlib

    from evloop import events
    arguments = dict(socket=socket, dns=dns, time=time, select=select, thread=thread,
                     os=os, ssl=ssl, subprocess=subprocess, sys=sys, aggressive=aggressive,
                     Event=Event, builtins=builtins, signal=signal, queue=queue,
                     contextvars=contextvars, selectors=selectors)
    try:
        events.notify_and_call_entry_points(events.EvloopWillPatchAllEvent(arguments, kwargs))
    except events.DoNotPatch:
        return None
    settings = dict(socket=socket, dns=dns, time=time, select=select, thread=thread, os=os,
                    ssl=ssl, subprocess=subprocess, sys=sys, aggressive=aggressive,
                    Event=Event, builtins=builtins, signal=signal, queue=queue,
                    contextvars=contextvars,
                    selectors=select if selectors is None else selectors)
    _warnings: List[str] = []
    first_time = not _patch_all_settings
    if not first_time and _patch_all_settings != settings:
        _queue_warning("Patching more than once will result in the union of all True "
                       "parameters being patched", _warnings)
    todo = {}
    for key, value in settings.items():
        if key not in _patch_all_settings:
            todo[key] = _patch_all_settings[key] = value
        elif value and not _patch_all_settings[key]:
            todo[key] = _patch_all_settings[key] = True
    if not any(todo.get(k) for k in ("socket", "dns", "time", "select", "thread", "os",
                                     "ssl", "subprocess", "signal", "queue", "selectors")):
        _process_warnings(_warnings)
        return None
    before = {name: dict(items) for name, items in saved.items()}
    # evloop's modules capture the originals they need when imported: import them all
    # before anything is patched (a missing one is reported where it is needed)
    for name in _EVLOOP_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass

    def attempt(what: str, func: Any, *args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except ImportError as ex:
            if not (getattr(ex, "name", "") or "").startswith("evloop"):
                raise
            _queue_warning(f"{what} not patched: {ex}", _warnings)

    aggressive = bool(_patch_all_settings.get("aggressive", True))
    # the order matters (as in gevent): os before thread, thread before time
    if todo.get("os"):
        attempt("os", patch_os)
    if todo.get("thread"):
        attempt("threading", patch_thread, Event=bool(_patch_all_settings["Event"]),
                _warnings=_warnings)
    if todo.get("time"):
        attempt("time", patch_time)
    if todo.get("socket"):
        attempt("socket", patch_socket, dns=False, aggressive=aggressive)
    if (todo.get("socket") or todo.get("dns")) and _patch_all_settings["socket"] \
            and _patch_all_settings["dns"]:
        attempt("dns", patch_dns)
    if todo.get("selectors"):
        attempt("selectors", patch_selectors, aggressive=aggressive)
    if todo.get("select"):
        attempt("select", patch_select, aggressive=aggressive)
    if todo.get("ssl"):
        attempt("ssl", patch_ssl, _warnings=_warnings)
    if todo.get("subprocess"):
        attempt("subprocess", patch_subprocess)
    if todo.get("signal"):
        attempt("signal", patch_signal)
    if todo.get("queue"):
        attempt("queue", patch_queue)
    if todo.get("thread") and _patch_all_settings["select"]:
        # after select/selectors: multiprocessing.connection.wait uses the patched
        # PollSelector
        attempt("multiprocessing", patch_multiprocessing)
    patched = {name: [attr for attr in items if attr not in before.get(name, {})]
               for name, items in saved.items()}
    _check_captured({k: v for k, v in patched.items() if v}, _warnings)
    # libraries that ask gevent whether the standard library is cooperative (psycopg 3,
    # python-socketio) get evloop's answer (evloop._library_checks, docs/gevent.md)
    from evloop import _library_checks
    _library_checks.answer({name: globals()[name] for name in _library_checks.QUERIES},
                           select_patched=is_module_patched("select"))
    events.notify_and_call_entry_points(
        events.EvloopDidPatchBuiltinModulesEvent(arguments, kwargs))
    events.notify_and_call_entry_points(events.EvloopDidPatchAllEvent(arguments, kwargs))
    _process_warnings(_warnings)
    return True


# -- python -m evloop.monkey --------------------------------------------------------------

_MODULE_OPTIONS = ("socket", "dns", "time", "select", "thread", "os", "ssl", "subprocess",
                   "signal", "queue", "selectors")
_FLAG_OPTIONS = ("aggressive", "Event")

_USAGE = """\
usage: python -m evloop.monkey [MONKEY OPTIONS] [-m] (script | module) [ARGS...]

Patch the standard library (evloop.monkey.patch_all()), then run the script (or, with -m
or --module, the module) as __main__, with sys.argv set to the script and its arguments.

MONKEY OPTIONS:
  --no-<name>   do not patch <name>
  --<name>      patch only the modules named this way
                (names: {names})
  --verbose     print what is patched and the interpreter's state before running
  -h, --help    show this help
"""


def main(argv: Optional[List[str]] = None) -> Any:
    """``python -m evloop.monkey [options] script.py args...``: patch, then run the
    script (``runpy.run_path``) or, with ``-m``/``--module``, the module
    (``runpy.run_module``) as ``__main__``."""
    import os
    import runpy
    args = list(sys.argv[1:] if argv is None else argv)
    usage = _USAGE.format(names=", ".join(_MODULE_OPTIONS + _FLAG_OPTIONS))
    options: Dict[str, bool] = {}
    run_module = False
    verbose = False
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option == "--":
            break
        if option in ("-h", "--help"):
            sys.stdout.write(usage)
            return 0
        if option in ("-m", "--module"):
            run_module = True
            continue
        if option == "--verbose":
            verbose = True
            continue
        name = option[2:] if option.startswith("--") else ""
        if name.startswith("no-") and name[3:] in _MODULE_OPTIONS + _FLAG_OPTIONS:
            options[name[3:]] = False
        elif name in _MODULE_OPTIONS + _FLAG_OPTIONS:
            options[name] = True
            if name in _MODULE_OPTIONS:
                for other in _MODULE_OPTIONS:
                    options.setdefault(other, False)
        else:
            sys.stderr.write(usage + f"\nevloop.monkey: unknown option {option!r}\n")
            return 2
    if not args:
        sys.stderr.write(usage + "\nevloop.monkey: no script or module given\n")
        return 2
    patch_all(**options)
    if verbose:
        import pprint
        settings = ", ".join(f"{k}={v}" for k, v in sorted(_patch_all_settings.items()))
        print(f"evloop.monkey.patch_all({settings})")
        print("patched: " + pprint.pformat({k: sorted(v) for k, v in saved.items()}))
        print(f"sys.version={sys.version.strip()}")
        print("sys.path=" + pprint.pformat(sys.path))
        print(f"cwd={os.getcwd()}")
    sys.argv[:] = args
    target = args[0]
    if run_module:
        return runpy.run_module(target, run_name="__main__", alter_sys=True)
    # as `python script.py` does: the script's directory first on sys.path
    directory = os.path.dirname(os.path.abspath(target))
    if sys.path and os.path.isfile(target):
        sys.path[0] = directory
    return runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    # Run through the module registered as evloop.monkey, so that the program's own
    # `from evloop import monkey` sees the same state (what was patched, the originals).
    from evloop.monkey import main as _main
    _result = _main()
    if isinstance(_result, int):
        sys.exit(_result)
