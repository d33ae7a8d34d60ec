"""evloop.util: debugging helpers — what is running, where greenlets came from, and
whether a block of code yields (gevent's ``gevent.util``).

Why it exists: a stuck or slow greenlet program is understood by looking at every
thread's stack, every greenlet's stack and who spawned it (``format_run_info``,
``print_run_info``, ``GreenletTree``), and a test can insist that code cooperates
(``assert_switches``). ``wrap_errors`` turns chosen exceptions into return values.

What it must not do: change what it inspects (no switch, no wait; it reads frames and the
greenlets the garbage collector can reach), or cost anything when unused:
``assert_switches`` installs a greenlet trace function only inside its ``with`` block and
restores the previous one. The spawning greenlet comes from ``Greenlet.spawning_greenlet``
(a weak reference kept by ``evloop.greenlet``); the "Spawned at" lines only when
``EVLOOP_TRACK_GREENLET_TREE`` is on (recording a stack costs on every spawn, so it is off
by default, unlike gevent's ``track_greenlet_tree``); the "Greenlet Locals"
lines come from a scan of the ``evloop.local`` objects when formatting.
"""
import functools
import gc
import pprint
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, Union

from greenlet import getcurrent, greenlet, settrace

from evloop._originals import get_original
from evloop.hub import get_hub

__all__ = ["format_run_info", "print_run_info", "GreenletTree", "wrap_errors",
           "assert_switches"]
# also here, as in gevent, outside __all__: clear_stack_frames


class wrap_errors:
    """``wrap_errors(errors, func)``: a callable that calls ``func`` and returns the
    exception instead of raising it when it is one of ``errors`` (an exception class or
    a tuple of them). ``str``, ``repr`` and other attributes are ``func``'s."""

    def __init__(self, errors: Union[Type[BaseException], Tuple[Type[BaseException], ...]],
                 func: Callable[..., Any]) -> None:
        self.__errors = errors
        self.__func = func
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.__func(*args, **kwargs)
        except self.__errors as ex:
            return ex

    def __str__(self) -> str:
        return str(self.__func)

    def __repr__(self) -> str:
        return repr(self.__func)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__func, name)


# -- run info -----------------------------------------------------------------------------

def print_run_info(thread_stacks: bool = True, greenlet_stacks: bool = True,
                   limit: Optional[int] = None, file: Any = None) -> None:
    """Print ``format_run_info(...)`` to ``file`` (default ``sys.stderr``)."""
    lines = format_run_info(thread_stacks=thread_stacks, greenlet_stacks=greenlet_stacks,
                            limit=limit)
    file = sys.stderr if file is None else file
    for line in lines:
        print(line, file=file)


def format_run_info(thread_stacks: bool = True, greenlet_stacks: bool = True,
                    limit: Optional[int] = None,
                    current_thread_ident: Optional[int] = None) -> List[str]:
    """Lines of text describing every thread of the process (with its stack when
    ``thread_stacks``) and every greenlet, as trees by spawning greenlet, one tree per
    thread (with the running stacks of the current thread's greenlets when
    ``greenlet_stacks``). ``limit`` is passed to ``traceback.format_stack``. For people:
    the format may change."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise TypeError(f"limit must be an int or None, not {type(limit).__name__}")
    if current_thread_ident is None:
        current_thread_ident = get_original("_thread", "get_ident")()
    lines: List[str] = []
    _format_thread_info(lines, thread_stacks, limit, current_thread_ident)
    _format_greenlet_info(lines, greenlet_stacks, limit)
    return lines


def _worker_code() -> Any:
    from evloop.threadpool import ThreadPool
    return ThreadPool._work.__code__


def _thread_label(frame: Any, worker_code: Any) -> Tuple[Optional[str], bool]:
    """(a name for a thread threading does not know, whether it is idle) from its stack."""
    f = frame
    while f is not None:
        if f.f_code is worker_code:
            # an idle worker waits in _work itself (a C lock acquire), with no task
            idle = f is frame and f.f_locals.get("task") is None
            return ("idle threadpool worker" if idle else "threadpool worker"), idle
        f = f.f_back
    return None, False


def _format_thread_info(lines: List[str], thread_stacks: bool, limit: Optional[int],
                        current_thread_ident: int) -> None:
    import threading
    threads = {th.ident: th for th in threading.enumerate()}
    worker_code = _worker_code()
    lines.append("*" * 80)
    lines.append("* Threads")
    for thread_ident, frame in sys._current_frames().items():
        do_stacks = thread_stacks
        lines.append("*" * 80)
        thread = threads.get(thread_ident)
        if thread is not None:
            name = thread.name
        else:
            name, idle = _thread_label(frame, worker_code)
            if idle:
                do_stacks = False
        if current_thread_ident == thread_ident:
            name = f"{name}) (CURRENT"
        lines.append(f"Thread 0x{thread_ident:x} ({name})\n")
        if do_stacks:
            lines.append("".join(traceback.format_stack(frame, limit)))
        elif not thread_stacks:
            lines.append("\t...stack elided...")
    del frame


def _format_greenlet_info(lines: List[str], greenlet_stacks: bool,
                          limit: Optional[int]) -> None:
    lines.append("*" * 80)
    lines.append("* Greenlets")
    lines.append("*" * 80)
    for tree in sorted(GreenletTree.forest(),
                       key=lambda t: "" if t.is_current_tree else repr(t.greenlet)):
        lines.append("---- Thread boundary")
        lines.extend(tree.format_lines(details={
            "running_stacks": greenlet_stacks if tree.is_current_tree else False,
            "running_stack_limit": limit,
        }))


# -- the greenlet tree ---------------------------------------------------------------------

class _TreeFormatter:
    UP_AND_RIGHT = "+"
    HORIZONTAL = "-"
    VERTICAL = "|"
    VERTICAL_AND_RIGHT = "+"
    DATA = ":"

    label_space = 1
    horiz_width = 3
    indent = 1

    def __init__(self, details: Dict[str, Any], depth: int = 0) -> None:
        self.lines: List[Any] = []
        self.depth = depth
        self.details = details

    def deeper(self) -> "_TreeFormatter":
        return type(self)(self.details, self.depth + 1)

    def node_label(self, text: str) -> None:
        self.lines.append(text)

    def child_head(self, label: str, right: str = VERTICAL_AND_RIGHT) -> None:
        self.lines.append(" " * self.indent + right + self.HORIZONTAL * self.horiz_width
                          + " " * self.label_space + label)

    def last_child_head(self, label: str) -> None:
        self.child_head(label, self.UP_AND_RIGHT)

    def child_tail(self, line: str, vertical: str = VERTICAL) -> None:
        self.lines.append(" " * self.indent + vertical + " " * self.horiz_width + line)

    def last_child_tail(self, line: str) -> None:
        self.child_tail(line, vertical=" " * len(self.VERTICAL))

    def child_data(self, data: str, data_marker: str = DATA) -> None:
        if not self.details:
            return
        # a tuple marks a data line (not a child's line) for the parent's layout
        self.lines.append((" " * self.indent + (data_marker if not self.depth else " ")
                           + " " * self.horiz_width + " " * self.label_space + data,))

    def last_child_data(self, data: str) -> None:
        self.child_data(data, " ")

    def child_multidata(self, data: str) -> None:
        for line in data.splitlines():
            self.child_data(line)


def _local_dicts_by_greenlet() -> Dict[int, List[Tuple[type, int, Dict[str, Any]]]]:
    """id(greenlet) -> [(local's class, id(local), the greenlet's non-empty values)] for
    every ``evloop.local.local`` the garbage collector reaches (one scan per format)."""
    from evloop.local import local
    index: Dict[int, List[Tuple[type, int, Dict[str, Any]]]] = {}
    for obj in gc.get_objects():
        if not issubclass(type(obj), local):  # not isinstance(): see _forest
            continue
        impl = object.__getattribute__(obj, "_local__impl")
        for idg, (wrgreenlet, _gone) in list(impl.refs.items()):
            values = impl.dicts.get(idg)
            if values and wrgreenlet() is not None:  # (an id of a greenlet still alive)
                index.setdefault(idg, []).append((type(obj), id(obj), dict(values)))
    return index


def _spawning_parent(glet: Any) -> Any:
    ref = getattr(glet, "spawning_greenlet", None)
    return ref() if ref is not None else None


def _ready(glet: Any) -> bool:
    ready = getattr(glet, "ready", None)
    return bool(ready()) if callable(ready) else False


class GreenletTree:
    """A greenlet and the trees of the greenlets it spawned. In evloop (as in gevent) a
    greenlet's ``parent`` is usually the hub, so the tree follows ``spawning_greenlet``;
    greenlets without one hang under their thread's root (main) greenlet.

    ``str()`` shows the shape; ``format()``/``format_lines()`` add details (each
    greenlet's parent and, for running ones, stack). ``forest()`` gives one tree per
    thread, ``current_tree()`` the calling thread's."""

    greenlet: Any = None
    is_current_tree = False

    DEFAULT_DETAILS = {
        "running_stacks": True,
        "running_stack_limit": None,
        "spawning_stacks": True,
        "locals": True,
    }

    def __init__(self, greenlet: Any) -> None:
        self.greenlet = greenlet
        self.child_trees: List["GreenletTree"] = []

    def add_child(self, tree: "GreenletTree") -> None:
        if tree is not self:
            self.child_trees.append(tree)

    @property
    def root(self) -> bool:
        return self.greenlet.parent is None

    def __getattr__(self, name: str) -> Any:
        if name == "greenlet":  # not yet set (during unpickling, copying)
            raise AttributeError(name)
        return getattr(self.greenlet, name)

    def format_lines(self, details: Union[bool, Dict[str, Any]] = True) -> List[str]:
        """The tree as lines; ``details``: True (all), False (the shape only), or a dict
        updating ``DEFAULT_DETAILS``."""
        if not isinstance(details, dict):
            details = self.DEFAULT_DETAILS.copy() if details else {}
        else:
            params = details
            details = self.DEFAULT_DETAILS.copy()
            details.update(params)
        if details and details.get("locals"):
            details["_locals_index"] = _local_dicts_by_greenlet()
        tree = _TreeFormatter(details, depth=0)
        return [line[0] if isinstance(line, tuple) else line for line in self._render(tree)]

    def format(self, details: Union[bool, Dict[str, Any]] = True) -> str:
        return "\n".join(self.format_lines(details))

    def __str__(self) -> str:
        return self.format(False)

    @staticmethod
    def _render_tb(tree: _TreeFormatter, label: str, frame: Any, limit: Optional[int]) -> None:
        tree.child_data(label)
        tree.child_multidata("".join(traceback.format_stack(frame, limit)))

    def _render(self, tree: _TreeFormatter) -> List[Any]:
        glet = self.greenlet
        label = repr(glet)
        if not glet:  # not running, or dead
            if _ready(glet):
                label += "; finished"
                value = getattr(glet, "value", None)
                if value is not None:
                    label += " with value " + repr(value)[:30]
                elif getattr(glet, "exception", None) is not None:
                    label += " with exception " + repr(glet.exception)
            else:
                label += "; not running"
        tree.node_label(label)
        tree.child_data("Parent: " + repr(glet.parent))
        if glet and tree.details and tree.details["running_stacks"]:
            frame = glet.gr_frame
            if frame is None and glet is getcurrent():
                frame = sys._getframe(1)
            if frame is not None:
                self._render_tb(tree, "Running:", frame, tree.details["running_stack_limit"])
        spawning_stack = getattr(glet, "spawning_stack", None)
        if spawning_stack and tree.details and tree.details["spawning_stacks"]:
            # limited when it was recorded
            self._render_tb(tree, "Spawned at:", spawning_stack, None)
        spawning_parent = _spawning_parent(glet)
        tree_locals = getattr(glet, "spawn_tree_locals", None)
        if tree_locals and tree_locals is not getattr(spawning_parent, "spawn_tree_locals",
                                                      None):
            tree.child_data("Spawn Tree Locals")
            tree.child_multidata(pprint.pformat(tree_locals))
        index = tree.details.get("_locals_index") if tree.details else None
        gr_locals = index.get(id(glet)) if index else None
        if gr_locals:
            tree.child_data("Greenlet Locals:")
            for kind, local_id, values in gr_locals:
                tree.child_data(f"  Local {kind} at {local_id:#x}")
                tree.child_multidata("    " + pprint.pformat(values))
        self._render_children(tree)
        return tree.lines

    def _render_children(self, tree: _TreeFormatter) -> None:
        children = sorted(self.child_trees,
                          key=lambda c: (getattr(c.greenlet, "minimal_ident", -1),
                                         _ready(c.greenlet), id(c.greenlet.parent)))
        for n, child in enumerate(children):
            child_lines = child._render(tree.deeper())
            head, tail, data = tree.child_head, tree.child_tail, tree.child_data
            if n == len(children) - 1:
                head, tail, data = tree.last_child_head, tree.last_child_tail, \
                    tree.last_child_data
            head(child_lines.pop(0))
            for line in child_lines:
                if isinstance(line, tuple):
                    data(line[0])
                else:
                    tail(line)

    @staticmethod
    def _root_greenlet(glet: Any) -> Any:
        while glet.parent is not None and not getattr(glet, "greenlet_tree_is_root", False):
            glet = glet.parent
        return glet

    @classmethod
    def _forest(cls) -> Tuple[Dict[Any, "GreenletTree"], "GreenletTree"]:
        main_greenlet = cls._root_greenlet(getcurrent())
        trees: Dict[Any, GreenletTree] = {}
        roots: Dict[Any, GreenletTree] = {}
        current_tree = roots[main_greenlet] = trees[main_greenlet] = cls(main_greenlet)
        current_tree.is_current_tree = True
        root_greenlet = cls._root_greenlet
        # type(), not isinstance(): isinstance() reads ``__class__`` of objects that are not
        # greenlets, which runs code (an evloop.local makes the current greenlet a dict)
        for ob in [o for o in gc.get_objects() if issubclass(type(o), greenlet)]:
            spawn_parent = _spawning_parent(ob)
            if spawn_parent is None:
                spawn_parent = root_greenlet(ob)
            if spawn_parent is root_greenlet(spawn_parent) and spawn_parent not in roots:
                trees[spawn_parent] = roots[spawn_parent] = cls(spawn_parent)
            parent_tree = trees.get(spawn_parent)
            if parent_tree is None:
                parent_tree = trees[spawn_parent] = cls(spawn_parent)
            child_tree = trees.get(ob)
            if child_tree is None:
                child_tree = trees[ob] = cls(ob)
            parent_tree.add_child(child_tree)
        return roots, current_tree

    @classmethod
    def forest(cls) -> List["GreenletTree"]:
        """One tree per native thread that has greenlets."""
        return list(cls._forest()[0].values())

    @classmethod
    def current_tree(cls) -> "GreenletTree":
        """The calling thread's tree."""
        return cls._forest()[1]


# -- assert_switches -----------------------------------------------------------------------

class _FailedToSwitch(AssertionError):
    pass


class _SwitchTracer:
    """A greenlet trace function (``greenlet.settrace``) that counts switches and, with a
    ``max_blocking_time``, measures the longest stretch without one: between switches into
    the hub (``hub_only``; a block that never switched into the hub counts as blocked, as
    in gevent) or between any two switches. It chains to the trace function it replaced
    (``previous_trace_function``, gevent's name)."""

    def __init__(self, hub: Any, max_blocking_time: Optional[float], hub_only: bool) -> None:
        self.hub = hub
        self.max_blocking_time = max_blocking_time
        self.hub_only = hub_only
        self.switches = 0
        self.active_greenlet: Any = getcurrent()
        self.last_mark = time.perf_counter()
        self.longest = 0.0
        self.entered_hub = False
        self.previous_trace_function = settrace(self)
        self._killed = False

    def __call__(self, event: str, args: Any) -> None:
        self.switches += 1
        target = args[1] if event in ("switch", "throw") else None
        self.active_greenlet = target
        if target is self.hub:
            self.entered_hub = True
        if self.max_blocking_time is not None:
            now = time.perf_counter()
            if not self.hub_only or target is self.hub:
                self.longest = max(self.longest, now - self.last_mark)
                self.last_mark = now
        previous = self.previous_trace_function
        if previous is not None:
            previous(event, args)

    def kill(self) -> None:
        if not self._killed:
            self._killed = True
            settrace(self.previous_trace_function)
            self.previous_trace_function = None

    def blocked(self) -> bool:
        if self.max_blocking_time is None:
            return self.switches == 0
        if self.hub_only and not self.entered_hub:
            return True
        longest = max(self.longest, time.perf_counter() - self.last_mark)
        return longest > self.max_blocking_time


class assert_switches:
    """A context manager that raises AssertionError at the end of its block if the block
    did not switch greenlets (and did not raise).

    ``max_blocking_time``: the block may run up to that many seconds without switching;
    the error comes when it ran longer. ``hub_only``: with ``max_blocking_time``, count
    only switches into the hub (a switch to another greenlet does not reset the clock, and
    the block must switch into the hub at least once).

    Example::

        with assert_switches():
            evloop.sleep(0)
    """

    hub: Any = None
    tracer: Optional[_SwitchTracer] = None

    def __init__(self, max_blocking_time: Optional[float] = None,
                 hub_only: bool = False) -> None:
        if max_blocking_time is not None:
            if isinstance(max_blocking_time, bool) or \
                    not isinstance(max_blocking_time, (int, float)):
                raise TypeError(f"max_blocking_time must be a number or None, not "
                                f"{type(max_blocking_time).__name__}")
            if max_blocking_time != max_blocking_time:
                raise ValueError("max_blocking_time must not be NaN")
        self.max_blocking_time = max_blocking_time or None
        self.hub_only = hub_only
        self._entered = 0.0

    def __enter__(self) -> "assert_switches":
        self.hub = get_hub()
        self.tracer = _SwitchTracer(self.hub, self.max_blocking_time, self.hub_only)
        self._entered = time.perf_counter()
        return self

    def __exit__(self, t: Any, v: Any, tb: Any) -> None:
        tracer, self.tracer = self.tracer, None
        hub, self.hub = self.hub, None
        assert tracer is not None
        tracer.kill()
        if t is not None:
            return
        if not tracer.blocked():
            return
        elapsed = time.perf_counter() - self._entered
        message = "To the hub" if self.hub_only else "To any greenlet"
        message += f" in {elapsed:.4f} seconds"
        if self.max_blocking_time:
            message += f" (max allowed {self.max_blocking_time:.4f} seconds)"
        message += "\n" + "\n".join(_blocked_report(hub, tracer.active_greenlet))
        raise _FailedToSwitch(message)


def _blocked_report(hub: Any, active_greenlet: Any) -> List[str]:
    report = ["=" * 80,
              f"\n{time.ctime()} : Greenlet {active_greenlet} appears to be blocked"]
    frame = sys._current_frames().get(hub.thread_ident)
    if frame is None:
        stack = [f"Unknown: No thread found for hub {hub!r}\n"]
    else:
        stack = traceback.format_stack(frame)
    report.append(f"Blocked Stack (for thread id {hub.thread_ident:#x}):")
    report.append("".join(stack))
    return report


def clear_stack_frames(frame: Any) -> None:
    """Clear the local variables of ``frame`` and every frame below it, as far as CPython
    allows (a running frame cannot be cleared; its locals dict is emptied instead)."""
    while frame is not None:
        try:
            frame.clear()
        except (RuntimeError, AttributeError):
            pass
        try:
            frame.f_locals.clear()
        except (AttributeError, TypeError):
            pass  # 3.13+: f_locals of an optimised frame is a proxy without clear()
        frame = frame.f_back
