"""evloop.local: greenlet-local storage, ``threading.local`` for greenlets (gevent's
``gevent.local.local``).

Why it exists: code written for threads keeps per-request state in ``threading.local``;
with greenlets each request is a greenlet, so the state must be per greenlet. A ``local``
keeps one attribute dict per greenlet (looked up by the current greenlet's id — one dict
lookup per access); a subclass's ``__init__`` runs once per greenlet, on its first access,
with the arguments given to the constructor; class attributes, properties and other
descriptors work as on a normal object, and names in a subclass's ``__slots__`` are shared
by all greenlets (as in gevent).

What it must not do: keep a greenlet's data alive after the greenlet: the data of an
evloop Greenlet is dropped when it finishes (from its link, in the hub), that of any other
greenlet when the greenlet object is freed; dropping the ``local`` drops every greenlet's
data and leaves nothing attached to the greenlets. It never blocks or switches by itself.
"""
from copy import copy
from typing import Any, Dict, Tuple
from weakref import ref

from greenlet import getcurrent

__all__ = ["local"]

_oga = object.__getattribute__
_osa = object.__setattr__
_oda = object.__delattr__


class _wrefdict(dict):
    """A dict that can be weakly referenced."""

    __slots__ = ("__weakref__",)


class _GreenletGone:
    """Drops one greenlet's dict from one local: the greenlet's link (Greenlet) or its
    weakref callback (any greenlet). Holds the local's dicts weakly."""

    __slots__ = ("idg", "wrdicts", "wrrefs")

    def __init__(self, idg: int, wrdicts: Any, wrrefs: Any) -> None:
        self.idg = idg
        self.wrdicts = wrdicts
        self.wrrefs = wrrefs

    def __call__(self, _unused: Any) -> None:
        dicts = self.wrdicts()
        if dicts is not None:
            dicts.pop(self.idg, None)
        refs = self.wrrefs()
        if refs is not None:
            refs.pop(self.idg, None)


class _LocalImpl:
    """Per-local state: {id(greenlet): attribute dict}, the constructor arguments, and what
    the type defines (computed once per instance, as gevent does)."""

    __slots__ = ("dicts", "refs", "args", "kwargs", "data_descr", "__weakref__")

    def __init__(self, args: Tuple[Any, ...], kwargs: Dict[str, Any], cls: type) -> None:
        self.dicts: Dict[int, Dict[str, Any]] = _wrefdict()
        # {id(greenlet): (weakref to the greenlet, _GreenletGone)}
        self.refs: Dict[int, Tuple[Any, Any]] = _wrefdict()
        self.args = args
        self.kwargs = kwargs
        self.data_descr = _find_descriptors(cls)

    def create_dict(self, greenlet: Any) -> Dict[str, Any]:
        idg = id(greenlet)
        localdict: Dict[str, Any] = {}
        gone = _GreenletGone(idg, ref(self.dicts), ref(self.refs))
        # the weakref callback covers any greenlet (and a Greenlet whose links never run);
        # the link releases a Greenlet's data as soon as it finishes
        wrgreenlet = ref(greenlet, gone)
        rawlink = getattr(greenlet, "rawlink", None)
        if rawlink is not None:
            rawlink(gone)
        self.refs[idg] = (wrgreenlet, gone)
        self.dicts[idg] = localdict
        return localdict

    def __del__(self) -> None:
        # the local is gone: take our links off the greenlets still alive
        try:
            entries = list(self.refs.values())
        except Exception:  # noqa: BLE001 - interpreter shutdown
            return
        for wrgreenlet, gone in entries:
            greenlet = wrgreenlet()
            unlink = getattr(greenlet, "unlink", None)
            if unlink is not None:
                try:
                    unlink(gone)
                except Exception:  # noqa: BLE001
                    pass


def _find_descriptors(cls: type) -> frozenset:
    """Names whose class attribute is a data descriptor (defines __set__ or __delete__:
    it wins over the per-greenlet dict, as on a normal object). ``__dict__`` counts as one
    so that it never resolves through the dict."""
    data = {"__dict__"}
    for name in dir(cls):
        for base in cls.__mro__:
            if name in base.__dict__:
                attr = base.__dict__[name]
                break
        else:
            continue
        kind = type(attr)
        if hasattr(kind, "__set__") or hasattr(kind, "__delete__"):
            data.add(name)
    return frozenset(data)


def _get_dict(self: "local", impl: _LocalImpl) -> Dict[str, Any]:
    """The current greenlet's dict, created (and ``__init__`` run) on first use."""
    greenlet = getcurrent()
    try:
        return impl.dicts[id(greenlet)]
    except KeyError:
        pass
    dct = impl.create_dict(greenlet)
    init = type(self).__init__
    if init is not object.__init__:
        try:
            init(self, *impl.args, **impl.kwargs)
        except BaseException:
            # as threading.local: a failed __init__ leaves no dict, the next access retries
            _GreenletGone(id(greenlet), ref(impl.dicts), ref(impl.refs))(None)
            raise
    return dct


class local:
    """An object whose attributes are local to the current greenlet.

    Subclasses may define ``__init__``; it is called with the constructor's arguments once
    in each greenlet that uses the object (first in the creating one, by the constructor).
    Without an ``__init__``, constructor arguments raise TypeError.
    """

    __slots__ = ("_local__impl", "__weakref__")

    def __new__(cls, *args: Any, **kwargs: Any) -> "local":
        if (args or kwargs) and cls.__init__ is object.__init__:
            raise TypeError("Initialization arguments are not supported", args, kwargs)
        self = object.__new__(cls)
        impl = _LocalImpl(args, kwargs, cls)
        _osa(self, "_local__impl", impl)
        # the creating greenlet's dict exists before the constructor runs __init__, so
        # __init__ is not run a second time by the first attribute access
        impl.create_dict(getcurrent())
        return self

    def __getattribute__(self, name: str) -> Any:
        impl = _oga(self, "_local__impl")
        try:
            dct = impl.dicts[id(getcurrent())]
        except KeyError:
            dct = _get_dict(self, impl)
        if name in dct and name not in impl.data_descr:
            return dct[name]
        if name == "__dict__":
            return dct
        # class attributes, methods, properties, slots; AttributeError lets Python try
        # the class's __getattr__
        return _oga(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "__dict__":
            raise AttributeError(f"{type(self).__name__!r} object attribute '__dict__' is "
                                 f"read-only")
        impl = _oga(self, "_local__impl")
        try:
            dct = impl.dicts[id(getcurrent())]
        except KeyError:
            dct = _get_dict(self, impl)
        if name in impl.data_descr:
            _osa(self, name, value)  # a property setter, a slot, ...
        else:
            dct[name] = value

    def __delattr__(self, name: str) -> None:
        if name == "__dict__":
            raise AttributeError(f"{type(self).__name__!r} object attribute '__dict__' is "
                                 f"read-only")
        impl = _oga(self, "_local__impl")
        try:
            dct = impl.dicts[id(getcurrent())]
        except KeyError:
            dct = _get_dict(self, impl)
        if name in impl.data_descr:
            _oda(self, name)
            return
        try:
            del dct[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute "
                                 f"{name!r}") from None

    def __copy__(self) -> "local":
        """A new local of the same type and constructor arguments whose dict, in the
        current greenlet, is a shallow copy of this one's."""
        impl = _oga(self, "_local__impl")
        current = _get_dict(self, impl)
        duplicate = copy(current)
        new = type(self)(*impl.args, **impl.kwargs)
        new_impl = _oga(new, "_local__impl")
        new_impl.dicts[id(getcurrent())] = duplicate
        return new

    def __reduce__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")
