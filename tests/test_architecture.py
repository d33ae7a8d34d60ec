"""Tests for evloop's layering (docs/architecture.md, "Layers" and "The C glue's rooms"): no
import cycles among evloop's modules, no module importing a layer above its own, and no C
room (csrc/evloop_*.c) using another room's function or variable that
csrc/evloop_internal.h does not declare.

The imports are read from the source with ``ast``, not by importing: every ``import`` and
``from ... import`` statement anywhere in a module (at the top, inside functions, under
``if``), relative ones resolved, and ``importlib.import_module("evloop.x")`` /
``__import__("evloop.x")`` calls with a literal name. A name kept in a string and imported
later (``Hub.threadpool_class = "evloop.threadpool.ThreadPool"``) is configuration, not an
edge. Importing ``evloop.x`` runs ``evloop/__init__.py`` first; that is Python's package
machinery, not an import of the package by ``evloop.x``, and is not counted.

``LAYERS`` is the one definition of the layers, lowest first; docs/architecture.md shows
the same table (checked here), and every module under evloop/ is in exactly one layer.
"""
import ast
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import pytest

import evloop

PACKAGE_DIR = Path(evloop.__file__).resolve().parent
DOC = PACKAGE_DIR.parent / "docs" / "architecture.md"

#: the layers, lowest first; a module may import modules of its own layer or below
LAYERS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("base", ("evloop.exceptions", "evloop._config", "evloop._originals", "evloop.events",
              "evloop._stdlib_asyncio", "evloop._stdlib_selectors", "evloop._stdlib_socket",
              "evloop._stdlib_subprocess", "evloop._stdlib_threading")),
    ("binding", ("evloop._build", "evloop._ev", "evloop._cext")),
    ("core", ("evloop.core",)),
    ("hub", ("evloop.hub",)),
    ("greenlet API", ("evloop", "evloop.greenlet", "evloop.timeout", "evloop._waiters",
                      "evloop.event", "evloop.lock", "evloop.queue", "evloop.pool",
                      "evloop.local", "evloop.threadpool", "evloop.util")),
    ("I/O", ("evloop.resolver", "evloop.socket", "evloop.ssl", "evloop.select",
             "evloop.selectors", "evloop.os", "evloop.signal", "evloop.subprocess",
             "evloop.server", "evloop.threading", "evloop._stdlib_multiprocessing",
             "evloop.aio", "evloop.aio_bridge", "evloop.pywsgi", "evloop.time",
             "evloop.fileobject", "evloop.backdoor")),
    ("monkey", ("evloop.monkey", "evloop._library_checks")),
    ("integrations", ("evloop.integrations", "evloop.integrations.gevent",
                      "evloop.integrations.gunicorn", "evloop.integrations.psycopg")),
    ("command line", ("evloop.__main__", "evloop._bench")),
)

#: compiled modules (no .py file): the cffi binding and the module its bootstrap creates
EXTENSIONS = ("evloop._ev", "evloop._cext")

#: an import edge: (line number, whether it is inside a function)
Site = Tuple[int, bool]
Graph = Dict[str, Dict[str, List[Site]]]


# -- reading the imports -------------------------------------------------------------------

def find_modules(package_dir: Path, package: str) -> Dict[str, Path]:
    """Dotted module name -> source file, for every .py file under ``package_dir``."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _known(name: str, known: Set[str]) -> Optional[str]:
    """The longest prefix of ``name`` that is one of the ``known`` modules."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(node: ast.AST, module: str, is_package: bool, known: Set[str]) -> List[str]:
    if isinstance(node, ast.Import):
        return [t for t in (_known(a.name, known) for a in node.names) if t]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        found = []
        for alias in node.names:
            # ``from evloop import core``: the submodule; ``from evloop.hub import sleep``:
            # the module
            target = _known(f"{source}.{alias.name}", known) if alias.name != "*" else None
            if target != f"{source}.{alias.name}":
                target = _known(source, known)
            if target:
                found.append(target)
        return found
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        name = (func.attr if isinstance(func, ast.Attribute)
                else func.id if isinstance(func, ast.Name) else None)
        arg = node.args[0]
        if (name in ("import_module", "__import__") and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)):
            target = _known(arg.value, known)
            return [target] if target else []
    return []


def _walk(node: ast.AST, in_function: bool = False) -> Iterable[Tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, in_function
        yield from _walk(child, in_function or isinstance(
            child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))


def import_graph(modules: Dict[str, Path], extensions: Sequence[str] = ()) -> Graph:
    """module -> {imported module: [sites]} over ``modules`` (and ``extensions``, which
    are imported but have no source)."""
    known = set(modules) | set(extensions)
    graph: Graph = {name: {} for name in known}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node, in_function in _walk(tree):
            for target in _targets(node, module, is_package, known):
                if target != module:
                    graph[module].setdefault(target, []).append((node.lineno, in_function))
    return graph


# -- cycles and layers ---------------------------------------------------------------------

def _strongly_connected(graph: Graph) -> List[List[str]]:
    """Tarjan's algorithm (iterative); components of more than one module, sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def _cycle_in(graph: Graph, component: List[str]) -> List[str]:
    """One cycle through the first module of a strongly connected ``component``."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:  # breadth first: the shortest way back to ``start``
        node = queue.pop(0)
        for child in sorted(graph[node]):
            if child == start:
                return paths[node] + [start]
            if child in members and child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    raise AssertionError(f"no cycle through {start} in {component}")


def _site(graph: Graph, modules: Dict[str, Path], source: str, target: str) -> str:
    line, in_function = graph[source][target][0]
    where = source.replace(".", "/")
    where += "/__init__.py" if modules[source].name == "__init__.py" else ".py"
    return f"{where}:{line}{', inside a function' if in_function else ''}"


def import_cycles(graph: Graph, modules: Dict[str, Path]) -> List[str]:
    """Each import cycle, written as ``a -> b (a.py:12) -> a (b.py:3, inside a function)``."""
    described = []
    for component in _strongly_connected(graph):
        cycle = _cycle_in(graph, component)
        text = cycle[0]
        for source, target in zip(cycle, cycle[1:]):
            text += f" -> {target} ({_site(graph, modules, source, target)})"
        described.append(f"{text}   [modules in the cycle: {', '.join(component)}]")
    return described


def layer_violations(graph: Graph, modules: Dict[str, Path],
                     layers: Sequence[Tuple[str, Sequence[str]]]) -> List[str]:
    """Each import of a module in a layer above the importer's."""
    rank = {module: (i, name) for i, (name, members) in enumerate(layers)
            for module in members}
    found = []
    for source in sorted(graph):
        for target in sorted(graph[source]):
            if source in rank and target in rank and rank[target][0] > rank[source][0]:
                found.append(f"{source} (layer {rank[source][1]!r}) imports {target} (layer "
                             f"{rank[target][1]!r}, above it) at "
                             f"{_site(graph, modules, source, target)}")
    return found


# -- evloop itself ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def evloop_modules():
    return find_modules(PACKAGE_DIR, "evloop")


@pytest.fixture(scope="module")
def evloop_graph(evloop_modules):
    return import_graph(evloop_modules, EXTENSIONS)


def test_no_import_cycles(evloop_modules, evloop_graph):
    cycles = import_cycles(evloop_graph, evloop_modules)
    assert not cycles, "import cycles among evloop's modules:\n" + "\n".join(cycles)


def test_every_module_in_exactly_one_layer(evloop_modules):
    placed: Dict[str, List[str]] = {}
    for name, members in LAYERS:
        for module in members:
            placed.setdefault(module, []).append(name)
    twice = {m: names for m, names in placed.items() if len(names) > 1}
    assert not twice, f"modules in more than one layer: {twice}"
    missing = sorted(set(evloop_modules) - set(placed))
    assert not missing, (f"modules in no layer (add them to LAYERS here and to the table in "
                         f"docs/architecture.md): {missing}")
    gone = sorted(set(placed) - set(evloop_modules) - set(EXTENSIONS))
    assert not gone, f"LAYERS names modules that do not exist: {gone}"


def test_no_module_imports_a_layer_above(evloop_modules, evloop_graph):
    violations = layer_violations(evloop_graph, evloop_modules, LAYERS)
    assert not violations, "imports of a layer above:\n" + "\n".join(violations)


def test_only_core_imports_the_binding(evloop_graph):
    for extension in EXTENSIONS:
        importers = sorted(m for m, targets in evloop_graph.items() if extension in targets)
        assert importers == ["evloop.core"], f"{extension} imported by {importers}"


#: modules whose private names no other module may import: the blocking primitives share
#: their machinery through evloop._waiters (the parking lot), not through each other
PRIMITIVES = ("evloop.event", "evloop.lock", "evloop.queue", "evloop.pool")


def private_imports_of(modules: Dict[str, Path], sources: Sequence[str]) -> List[str]:
    """``from <source> import _name`` statements, anywhere in ``modules``, for each of
    ``sources`` (the module itself excepted), as "module:line: name"."""
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, _ in _walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level \
                    and node.module in sources and node.module != module:
                found += [f"{module}:{node.lineno}: {node.module}.{alias.name}"
                          for alias in node.names if alias.name.startswith("_")]
    return found


def test_no_module_imports_private_names_of_a_primitive(evloop_modules):
    assert private_imports_of(evloop_modules, PRIMITIVES) == []


def test_private_import_checker_finds_one(tmp_path):
    modules = _package(tmp_path, {"__init__.py": "", "event.py": "_x = 1\n",
                                  "lock.py": "from pkg.event import Event, _x\n"})
    assert private_imports_of(modules, ("pkg.event",)) == ["pkg.lock:1: pkg.event._x"]


def _doc_layers() -> List[Tuple[str, Set[str]]]:
    """The rows of docs/architecture.md's layer table that name Python modules: (layer,
    the dotted names in backquotes in its second column)."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not line.lstrip().startswith("|"):
            continue
        names = set(re.findall(r"`(evloop(?:\.\w+)*)`", cells[1]))
        if names:
            rows.append((cells[0], names))
    return rows


def test_doc_table_is_this_table():
    expected = [(name, set(members)) for name, members in LAYERS]
    assert _doc_layers() == expected, (
        "docs/architecture.md's layer table (the layers naming Python modules, in order, "
        "with the dotted names in their second column) differs from LAYERS in "
        "tests/test_architecture.py")


# -- the checker finds what it is meant to find ------------------------------------------------

def _package(tmp_path: Path, files: Dict[str, str]) -> Dict[str, Path]:
    root = tmp_path / "pkg"
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return find_modules(root, "pkg")


def test_checker_finds_a_cycle_through_a_function_import(tmp_path):
    modules = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "import os\n\ndef later():\n    from pkg.b import thing\n",
        "b.py": "from . import c\n",
        "c.py": "import pkg.a as a\n",
        "d.py": "from pkg import a\n",
    })
    cycles = import_cycles(import_graph(modules), modules)
    assert cycles == ["pkg.a -> pkg.b (pkg/a.py:4, inside a function) -> pkg.c (pkg/b.py:1) "
                      "-> pkg.a (pkg/c.py:1)   [modules in the cycle: pkg.a, pkg.b, pkg.c]"]


def test_checker_finds_literal_import_module_and_relative_imports(tmp_path):
    modules = _package(tmp_path, {
        "__init__.py": "",
        "low.py": "import importlib\nx = importlib.import_module('pkg.sub.high')\n",
        "sub/__init__.py": "from .. import low\n",
        "sub/high.py": "from ..low import x\nname = 'pkg.sub'  # a string, not an import\n",
    })
    graph = import_graph(modules)
    assert graph["pkg.low"] == {"pkg.sub.high": [(2, False)]}
    assert graph["pkg.sub"] == {"pkg.low": [(1, False)]}
    assert graph["pkg.sub.high"] == {"pkg.low": [(1, False)]}
    layers = (("low", ("pkg.low",)), ("high", ("pkg", "pkg.sub", "pkg.sub.high")))
    assert layer_violations(graph, modules, layers) == [
        "pkg.low (layer 'low') imports pkg.sub.high (layer 'high', above it) at pkg/low.py:2"]
    assert import_cycles(graph, modules) == [
        "pkg.low -> pkg.sub.high (pkg/low.py:2) -> pkg.low (pkg/sub/high.py:1)   "
        "[modules in the cycle: pkg.low, pkg.sub.high]"]


# -- the C glue's rooms (docs/architecture.md, "The C glue's rooms") --------------------------
#
# The glue is one translation unit (csrc/evloop_unity.c includes the rooms), so the compiler
# lets a room call any static function of a room included before it. These tests read the
# sources instead: a function or file-scope variable defined in one room and named in
# another must be declared in csrc/evloop_internal.h. Definitions are found by the layout
# every room follows: the return type alone on one line, `name(` at the start of the next
# (and file-scope `static` variables, and the watcher types EVLOOP_WATCHER_TYPE defines).
# Comments and string literals are blanked first, so a name in a comment is not a use.

CSRC = PACKAGE_DIR.parent / "csrc"
UNITY = "evloop_unity.c"
HEADER = "evloop_internal.h"
#: the rooms of the loop and below: they must not know hubs, greenlets or asyncio
LOOP_ROOMS = ("evloop_errors.c", "evloop_signals.c", "evloop_watcher.c", "evloop_watchers.c",
              "evloop_callbacks.c", "evloop_loop.c", "evloop_arena.c")
#: the rooms above the loop, which reach its dispatch only through evloop_hooks
UPPER_ROOMS = ("evloop_hub.c", "evloop_io.c", "evloop_aio.c")

_C_RETURN_TYPE = re.compile(
    r"^(?:(?:static|inline|const|struct|unsigned|EVLOOP_HOT)\s+)*[A-Za-z_]\w*[\s*]*$")
_C_DEFINITION = re.compile(r"^([A-Za-z_]\w*)\(")
_C_IDENT = re.compile(r"\b[A-Za-z_]\w*\b")


def c_strip(text: str) -> str:
    """C source with comments and string/char literals blanked (line numbers kept)."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group().count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)
    return re.sub(r"'(?:\\.|[^'\\\n])*'", "''", text)


def c_functions(text: str) -> Dict[str, str]:
    """{name: its return-type line} of the functions a room defines."""
    lines = c_strip(text).split("\n")
    found = {}
    for before, line in zip(lines, lines[1:]):
        match = _C_DEFINITION.match(line)
        before = before.strip()
        if match and before and _C_RETURN_TYPE.match(before):
            found[match.group(1)] = before
    return found


def c_variables(text: str) -> Set[str]:
    """The file-scope static variables (and EVLOOP_WATCHER_TYPE types) a room defines."""
    text = c_strip(text)
    found = set()
    for match in re.finditer(r"^static\s+([^;{(]*?)(?:=[^;]*)?;|^static\s+([^;{(=]*?)=\s*\{",
                             text, re.M):
        for piece in (match.group(1) or match.group(2)).split(","):
            names = re.findall(r"[A-Za-z_]\w*", re.sub(r"\[[^\]]*\]", "", piece))
            if names:
                found.add(names[-1])
    found.update(re.findall(r"^EVLOOP_WATCHER_TYPE\((\w+)", text, re.M))
    return found


def c_rooms(csrc: Path) -> Dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(csrc.glob("*.c"))
            if path.name != UNITY}


def c_owners(rooms: Dict[str, str]) -> Dict[str, List[str]]:
    """{function or variable name: the rooms that define it}"""
    owners: Dict[str, List[str]] = {}
    for room, text in rooms.items():
        for name in set(c_functions(text)) | c_variables(text):
            owners.setdefault(name, []).append(room)
    return owners


def c_undeclared_uses(csrc: Path) -> List[str]:
    """"room uses name (defined in other room)" for every use across rooms of a name that
    the internal header does not declare."""
    rooms = c_rooms(csrc)
    owners = c_owners(rooms)
    declared = set(_C_IDENT.findall(c_strip((csrc / HEADER).read_text(encoding="utf-8"))))
    problems = []
    for room, text in rooms.items():
        for name in sorted(set(_C_IDENT.findall(c_strip(text)))):
            defined_in = owners.get(name, [])
            if defined_in and room not in defined_in and name not in declared:
                problems.append(f"{room} uses {name} (defined in {', '.join(defined_in)}) "
                                f"without a declaration in csrc/{HEADER}")
    return problems


def test_c_rooms_use_only_what_the_header_declares():
    problems = c_undeclared_uses(CSRC)
    assert not problems, "\n".join(problems)


def test_c_each_name_is_defined_in_one_room():
    twice = {name: rooms for name, rooms in c_owners(c_rooms(CSRC)).items() if len(rooms) > 1}
    assert not twice, f"defined in more than one room: {twice}"


def test_c_functions_are_static_but_the_bootstrap():
    exported = sorted(f"{room}: {name}" for room, text in c_rooms(CSRC).items()
                      for name, rtype in c_functions(text).items()
                      if not rtype.startswith(("static", "EVLOOP_HOT")))
    assert exported == ["evloop_module.c: evloop_bootstrap"]


def test_c_unity_file_includes_libev_then_every_room():
    text = (CSRC / UNITY).read_text(encoding="utf-8")
    includes = re.findall(r'^#include "([^"]+\.c)"', text, re.M)
    assert includes[0] == "ev.c", "ev.c must come first: the rooms read libev's loop fields"
    assert sorted(includes[1:]) == sorted(c_rooms(CSRC)), (
        f"{UNITY} must include every room exactly once: {includes[1:]}")
    order = includes[1:]
    for low in LOOP_ROOMS:
        for high in UPPER_ROOMS:
            assert order.index(low) < order.index(high), f"{low} must come before {high}"


def test_c_loop_rooms_know_no_hub_greenlet_or_asyncio():
    rooms = c_rooms(CSRC)
    owners = c_owners(rooms)
    problems = []
    for room in LOOP_ROOMS:
        text = rooms[room]
        if re.search(r"^#include\s+\"greenlet\.h\"", text, re.M):
            problems.append(f"{room} includes greenlet.h")
        for name in sorted(set(_C_IDENT.findall(c_strip(text)))):
            if any(owner in UPPER_ROOMS for owner in owners.get(name, [])):
                problems.append(f"{room} uses {name} of {owners[name]}")
            if re.search(r"Waiter|[Gg]reenlet|^Aio|^aio_", name):
                problems.append(f"{room} names {name}")
    assert not problems, "\n".join(problems)


def test_c_each_room_opens_with_why_and_must_not():
    for room, text in sorted(c_rooms(CSRC).items()) + [(HEADER, (CSRC / HEADER).read_text())]:
        head = text.split("*/", 1)[0]
        assert text.startswith(f"/* {room} — "), f"{room} must open with a comment naming it"
        assert "Why it exists" in head and "must not" in head, (
            f"{room}'s opening comment must say why it exists and what it must not do")


def test_c_checker_finds_an_undeclared_cross_room_use(tmp_path):
    (tmp_path / HEADER).write_text("/* x */\nstatic int low_declared(int a);\n")
    (tmp_path / UNITY).write_text('#include "ev.c"\n#include "low.c"\n#include "high.c"\n')
    (tmp_path / "low.c").write_text(
        "/* low.c */\nstatic int low_count = 0;\n\nstatic int\nlow_declared(int a)\n{\n"
        "    return a;\n}\n\nstatic PyObject *\nlow_hidden(void)\n{\n    return NULL;\n}\n")
    (tmp_path / "high.c").write_text(
        "/* high.c: low_hidden() in a comment is no use */\nstatic int\nhigh(void)\n{\n"
        "    const char *s = \"low_hidden()\";\n"
        "    return low_declared(1) + (low_hidden() != NULL) + low_count;\n}\n")
    assert c_undeclared_uses(tmp_path) == [
        f"high.c uses low_count (defined in low.c) without a declaration in csrc/{HEADER}",
        f"high.c uses low_hidden (defined in low.c) without a declaration in csrc/{HEADER}",
    ]
