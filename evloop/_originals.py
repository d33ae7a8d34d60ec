"""evloop._originals: the standard library's objects as they were before ``evloop.monkey``
replaced them, and the means to run the standard library's own code against them.

Why it exists: ``evloop.monkey`` patches and keeps each original it replaces (``saved``);
modules below it (``evloop.threading``, ``evloop.threadpool``,
``evloop._stdlib_multiprocessing``) need those originals (``get_original``), and
``evloop.threading`` the rebinding of a standard-library function to a namespace where
patched names mean the originals again (``rebind``, ``OverlayGlobals``). Kept here, below
them all, so that nothing imports ``evloop.monkey`` from a layer under it:
``evloop.monkey`` re-exports ``saved`` and ``get_original`` as its public API.

What it must not do: import anything of evloop or patch anything (only ``evloop.monkey``
writes to ``saved``), or import more of the standard library than it needs: ``evloop.monkey``
imports it before the program's own imports, and whatever it imports then is imported
unpatched.
"""
import types
from typing import Any, Dict, List, Sequence, Union

__all__ = ["saved", "get_original", "OverlayGlobals", "rebind"]

#: module name -> {attribute name: original object}; the first original is kept
saved: Dict[str, Dict[str, Any]] = {}


def _get_original(mod_name: str, items: Sequence[str]) -> List[Any]:
    originals = saved.get(mod_name, {})
    module = None
    values = []
    for item in items:
        if item in originals:
            values.append(originals[item])
        else:
            if module is None:
                module = __import__(mod_name, fromlist=["_"])
            values.append(getattr(module, item))
    return values


def get_original(mod_name: Union[str, Sequence[str]],
                 item_name: Union[str, Sequence[str]]) -> Any:
    """The object that ``mod_name.item_name`` was before patching (the current one if it
    was not patched). ``item_name`` may be a sequence of names: a list of originals is
    returned. ``mod_name`` may be a sequence of module names to try in turn (the first
    importable one supplies all the items)."""
    mod_names = [mod_name] if isinstance(mod_name, str) else list(mod_name)
    if isinstance(item_name, str):
        item_names: Sequence[str] = [item_name]
        unpack = True
    else:
        item_names = list(item_name)
        unpack = False
    for i, mod in enumerate(mod_names):
        try:
            result = _get_original(mod, item_names)
        except ImportError:
            if i == len(mod_names) - 1:
                raise
        else:
            return result[0] if unpack else result
    raise ImportError("no module name given")


# -- keeping the originals' own code working --------------------------------------------

class OverlayGlobals(dict):
    """Globals for a copy of a standard-library function: the objects in ``overlay`` for
    the names it holds (the originals of what patching replaced), the live module for
    every other name. (CPython looks globals up through ``__getitem__`` when they are not
    an exact dict.)"""

    __slots__ = ("_overlay", "_module")

    def __init__(self, module_dict: Dict[str, Any], overlay: Dict[str, Any]) -> None:
        dict.__init__(self, __builtins__=module_dict["__builtins__"],
                      __name__=module_dict["__name__"])
        self._overlay = overlay
        self._module = module_dict

    def __getitem__(self, name: str) -> Any:
        try:
            return self._overlay[name]
        except KeyError:
            return self._module[name]

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return name in self._overlay or name in self._module


def rebind(value: Any, namespace: Dict[str, Any]) -> Any:
    """A copy of the function (or property, static or class method) ``value`` whose
    globals are ``namespace``; the copy remembers the original as ``__evloop_live__``."""
    if isinstance(value, types.FunctionType):
        new = types.FunctionType(value.__code__, namespace, value.__name__,
                                 value.__defaults__, value.__closure__)
        new.__kwdefaults__ = value.__kwdefaults__
        new.__qualname__ = value.__qualname__
        new.__doc__ = value.__doc__
        new.__module__ = value.__module__
        new.__dict__.update(value.__dict__)
        new.__evloop_live__ = value  # type: ignore[attr-defined]
        return new
    if isinstance(value, property):
        return property(*(rebind(f, namespace) if f is not None else None
                          for f in (value.fget, value.fset, value.fdel)), value.__doc__)
    if isinstance(value, staticmethod):
        return staticmethod(rebind(value.__func__, namespace))
    if isinstance(value, classmethod):
        return classmethod(rebind(value.__func__, namespace))
    return value
