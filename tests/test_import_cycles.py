"""No import cycles between the modules of app/ (issue 9).

A cycle makes a module's names depend on the order in which the others were
first imported (half-initialised modules, names "missing" at import time) and
means no module of the ring can be read, tested or moved alone. This test
builds the import graph from the source with ``ast`` (no dependency, nothing
imported) and fails listing every cycle with one concrete path through it.

What counts as an edge, module A imports module B:

- an ``import`` or ``from ... import`` that runs when A is first imported: at
  module level, including inside ``if``/``try``/``with`` blocks and class
  bodies; not inside a function (a deliberate late import, run only when
  called) nor under ``if TYPE_CHECKING:`` (never run);
- ``from app.x import y`` is an edge to ``app.x.y`` when that is a module,
  else to ``app.x`` (``y`` is a name defined there);
- a submodule does *not* depend on its package's ``__init__`` merely by being
  inside it: Python loads the package first, but only names taken from the
  ``__init__`` (``from app.api import bp``) make an edge. So a package may
  import its own submodules to register them, as long as they never import
  names back from it.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

# Areas whose cycles are still to be broken: a cycle is tolerated only when every module in it
# starts with one of these prefixes. Each entry names the work that removes it; keep the list
# short. A cycle anywhere else fails the test, and so does an entry that matches no cycle any
# more (delete it then).
# Empty: none is left (services/events and services/card_pdf, being split into packages as this
# test arrived, had none either). Example entry: {"app.services.card_pdf": "split card_pdf (#9)"}.
ALLOWED_CYCLES: dict[str, str] = {}


def module_files() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``), for every .py file under app/."""
    modules = {}
    for path in sorted(APP.rglob("*.py")):
        parts = list(path.relative_to(APP.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts.pop()
        modules[".".join(parts)] = (path, package)
    return modules


def _import_statements(body: list[ast.stmt]):
    """The import statements that run at import time (see the module docstring)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _import_statements(node.orelse)
        else:
            for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                inner = getattr(node, name, None)
                if isinstance(inner, list):
                    yield from _import_statements(inner)


def import_graph() -> dict[str, set[str]]:
    """Module -> the app modules it imports at import time."""
    modules = module_files()

    def known(name: str | None) -> str | None:
        while name and name not in modules:  # app.models.Member -> app.models
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, package) in modules.items():
        targets: set[str | None] = set()
        for node in _import_statements(ast.parse(path.read_text(encoding="utf-8"), str(path)).body):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names)
                continue
            base = node.module or ""
            if node.level:  # relative: from the package this module is in
                anchor = name if package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}".rstrip(".")
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in modules else known(base))
        graph[name] = {t for t in targets if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (A, B, ..., A) through each strongly connected component of more than one module.

    Every module of such a component lies on some cycle; the path shown is
    the shortest from its first module, the component is named in full by
    ``components``.
    """
    return [_path_through(graph, component) for component in components(graph)]


def components(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def connect(node: str) -> None:  # recursive: app/ is far too shallow for the recursion limit
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _path_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle from the component's first module back to itself (breadth first)."""
    start = min(component)
    previous: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & component):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if target not in previous:
                previous[target] = node
                queue.append(target)
    raise AssertionError(f"no cycle through {sorted(component)}")


def test_the_graph_sees_module_level_imports_only():
    graph = import_graph()
    assert "app.extensions" in graph["app.database"]
    # ``from app.api import auth`` names the submodule, ``from app.database import write_aside`` the module.
    assert {"app.api.auth", "app.api.errors"} <= graph["app.api"]
    assert "app.database" in graph["app.services.exports"]
    # A late import inside a function is no edge: app/__init__.py imports the console in create_app().
    assert not any(target.startswith("app.admin") for target in graph["app"])


def test_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_no_import_cycles_in_app():
    graph = import_graph()
    found = components(graph)

    def allowed(component: set[str]) -> bool:
        return any(all(m.startswith(prefix) for m in component) for prefix in ALLOWED_CYCLES)

    unexpected = [c for c in found if not allowed(c)]
    assert not unexpected, "Import cycles in app/ (module-level imports):\n" + "\n".join(
        f"  {' -> '.join(_path_through(graph, c))}   (all of: {', '.join(sorted(c))})" for c in unexpected)
    stale = [p for p in ALLOWED_CYCLES if not any(all(m.startswith(p) for m in c) for c in found)]
    assert not stale, f"No cycle is left in {stale}: remove them from ALLOWED_CYCLES."


def test_console_cards_and_members_never_import_each_other():
    """Not even late: they share ``app.admin.widgets``, and the member list reaches the cards area by URL."""
    def imported(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.update({node.module, *(f"{node.module}.{a.name}" for a in node.names)})
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    members = sorted((APP / "admin" / "members").glob("*.py"))
    assert members, "app/admin/members/ is a package"
    assert not any(n.startswith("app.admin.members") for n in imported(APP / "admin" / "cards.py"))
    assert not any(n.startswith("app.admin.cards") for path in members for n in imported(path))
