"""evloop._library_checks: what evloop answers to libraries that ask gevent, by name,
whether the standard library was made cooperative.

Why it exists: some libraries choose how to block by asking gevent. psycopg 3, when
``psycopg.waiting`` is imported, picks its C wait (``poll()`` called in C: it blocks the
thread, and every greenlet with it) unless ``sys.modules["gevent.monkey"]`` says
``is_module_patched("select")``; then it picks a wait written over the ``select`` module,
which ``evloop.monkey`` made cooperative. python-socketio's Redis manager does ``from
gevent.monkey import is_module_patched`` the same way. Under ``evloop.monkey.patch_all()``
nothing answered: psycopg chose its blocking wait without a word (50 concurrent
``pg_sleep(0.2)`` took 10 s). ``evloop.monkey.patch_all()`` calls ``answer()`` after it
patched; docs/gevent.md, "Libraries that check for gevent", gives the reasoning.

* gevent absent: a small module is registered as ``sys.modules["gevent.monkey"]`` (and
  nothing as ``gevent``) that answers gevent's questions (``is_module_patched``,
  ``is_object_patched``, ``is_anything_patched``, ``get_original``, ``saved``) from
  evloop's own record of its patches. Any other attribute raises an AttributeError that
  says what the module is.
* gevent installed: its ``gevent.monkey`` is left alone and nothing is registered in its
  place. psycopg 3 is told directly: when ``psycopg.waiting`` is imported (or at once, if
  it was imported before patching) and it chose its C wait, ``wait`` is rebound to its
  ``poll()``-based wait, which the patched ``select.poll`` makes cooperative.

What it must not do: speak for gevent when gevent is installed (its ``gevent.monkey``
describes gevent's own hub, which does not run evloop's greenlets: a library in a gevent
mode told "patched" would hang instead of failing), register a ``gevent`` package
(``import gevent`` must keep failing when gevent is absent, so that no library switches
to a gevent mode), import a library the program has not imported, or override a wait
function the user chose (``PSYCOPG_WAIT_FUNC``).
"""
import os
import sys
import types
from typing import Any, Callable, Dict, List, Optional

#: the name libraries look up
GEVENT_MONKEY = "gevent.monkey"

#: gevent's query API, as the answer module offers it (the functions come from
#: evloop.monkey, which passes them: this module does not import it)
QUERIES = ("is_module_patched", "is_object_patched", "is_anything_patched",
           "get_original", "saved")

# psycopg 3's wait choice (psycopg/waiting.py). Checked in the source of psycopg 3.1.14
# (the first release that asks gevent, per psycogreen's README), 3.2.0 and 3.2.10, and
# run with 3.3.9 (the tests): the module global
# ``wait`` is what ``Connection.wait`` calls (``waiting.wait(...)``, looked up at each
# call), ``wait_c`` exists when the C extension (psycopg-binary / psycopg-c) is loaded,
# ``wait_poll`` is the Python wait over ``select.poll()`` (looked up at each call, so the
# patched one), and ``PSYCOPG_WAIT_FUNC`` is the user's explicit choice.
# tests/test_integrations_db.py fails when a psycopg release changes any of these.
PSYCOPG_WAITING = "psycopg.waiting"
PSYCOPG_WAIT_ENV = "PSYCOPG_WAIT_FUNC"


def gevent_installed() -> bool:
    """Whether ``import gevent`` could find the real gevent (without importing it)."""
    if "gevent" in sys.modules:
        return sys.modules["gevent"] is not None
    import importlib.util
    try:
        return importlib.util.find_spec("gevent") is not None
    except (ImportError, ValueError):
        # a finder that refuses gevent (ImportError), or a broken entry in sys.modules
        return False


class _AnswerModule(types.ModuleType):
    """``sys.modules["gevent.monkey"]`` while gevent is not installed."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"gevent.monkey has no attribute {name!r} here: gevent is not installed; this "
            f"is evloop's answer to gevent's monkey-patching questions ({', '.join(QUERIES)}"
            f"), registered by evloop.monkey.patch_all() for libraries that ask them")


def install_gevent_monkey_answer(queries: Dict[str, Any]) -> Optional[types.ModuleType]:
    """Register the answer module as ``gevent.monkey`` if gevent is not installed and
    nothing has that name yet; return it (None when nothing was registered)."""
    if GEVENT_MONKEY in sys.modules or gevent_installed():
        return None
    module = _AnswerModule(GEVENT_MONKEY, (
        "evloop's answer to gevent's monkey-patching questions (gevent is not installed): "
        "evloop.monkey.patch_all() made the standard library cooperative."))
    module.__evloop__ = True
    for name in QUERIES:
        setattr(module, name, queries[name])
    sys.modules[GEVENT_MONKEY] = module
    return module


def psycopg_waits_cooperatively(waiting: types.ModuleType) -> bool:
    """If psycopg 3 chose its C wait, make it use its ``poll()``-based one; return whether
    ``wait`` was rebound."""
    if PSYCOPG_WAIT_ENV in os.environ:
        return False
    wait_c = getattr(waiting, "wait_c", None)
    wait_poll = getattr(waiting, "wait_poll", None)
    if wait_c is None or wait_poll is None or getattr(waiting, "wait", None) is not wait_c:
        return False
    waiting.wait = wait_poll
    return True


# -- running code right after a module is imported ---------------------------------------

class _ThenLoader:
    """Wraps a module's loader: executes the module, then the actions."""

    def __init__(self, loader: Any, actions: List[Callable[[types.ModuleType], Any]]) -> None:
        self._loader = loader
        self._actions = actions

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        for action in self._actions:
            action(module)

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename, is_package, resource readers: the real loader's
        return getattr(self._loader, name)


class _AfterImport:
    """A meta path finder that never finds a module itself: for a name with actions it
    asks the finders after it, and wraps the loader they return."""

    def __init__(self) -> None:
        self.actions: Dict[str, List[Callable[[types.ModuleType], Any]]] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        actions = self.actions.get(fullname)
        if not actions:
            return None
        for finder in list(sys.meta_path):
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _ThenLoader(spec.loader, self.actions.pop(fullname))
            return spec
        return None


_after_import = _AfterImport()


def after_import(name: str, action: Callable[[types.ModuleType], Any]) -> None:
    """Call ``action(module)`` once module ``name`` is imported: now if it already is,
    else right after its code has run."""
    module = sys.modules.get(name)
    if module is not None:
        action(module)
        return
    actions = _after_import.actions.setdefault(name, [])
    if action not in actions:  # patch_all() called again
        actions.append(action)
    if _after_import not in sys.meta_path:
        sys.meta_path.insert(0, _after_import)


def answer(queries: Dict[str, Any], select_patched: bool) -> None:
    """What ``evloop.monkey.patch_all()`` calls once it has patched: ``queries`` maps the
    names in ``QUERIES`` to evloop.monkey's functions."""
    install_gevent_monkey_answer(queries)
    if select_patched:
        after_import(PSYCOPG_WAITING, psycopg_waits_cooperatively)
