"""No import cycle inside a subpackage: the modules of ``jaxinit/<layer>/`` import one
another in one direction only (function-level and ``TYPE_CHECKING`` imports count too),
so one module can be read, moved or replaced without the others it is tangled with."""

import pathlib
import textwrap

import jaxinit
from tests.test_layout import _imports

PACKAGE = pathlib.Path(jaxinit.__file__).parent


def _graph(package: pathlib.Path) -> dict[str, set[str]]:
    """Module -> the modules of the same subpackage it imports (``from . import x`` and
    ``from jaxinit.sub.x import y`` both count as importing ``jaxinit.sub.x``)."""
    root = package.parent
    graph: dict[str, set[str]] = {}
    for sub in sorted(p for p in package.iterdir() if (p / "__init__.py").exists()):
        modules = {
            ".".join(p.relative_to(root).with_suffix("").parts): p
            for p in sorted(sub.glob("*.py"))
            if p.name != "__init__.py"
        }
        for name, path in modules.items():
            graph[name] = set()
            for _, target in _imports(path):
                parts = target.split(".")
                for n in range(len(parts), 0, -1):
                    prefix = ".".join(parts[:n])
                    if prefix in modules:
                        if prefix != name:
                            graph[name].add(prefix)
                        break
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path(graph, g) for g in groups]


def _path(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A closed import path through ``group``'s first module (breadth-first)."""
    start, inside = group[0], set(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & inside):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError(group)  # pragma: no cover - a strongly connected group closes


def test_no_import_cycle_inside_a_subpackage():
    cycles = _cycles(_graph(PACKAGE))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_cycle_checker_catches_hidden_cycles(tmp_path):
    """A cycle through a ``TYPE_CHECKING`` import and a function-level relative import is
    found; a chain in one direction is not a cycle."""
    sub = tmp_path / "jaxinit" / "study"
    sub.mkdir(parents=True)
    (tmp_path / "jaxinit" / "__init__.py").write_text("")
    (sub / "__init__.py").write_text("from jaxinit.study._a import f\n")
    files = {
        "_a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from jaxinit.study._c import C\n",
        "_b": "from jaxinit.study._a import f\n",
        "_c": "def g():\n    from ._b import h\n",
        "_d": "from jaxinit.study import _a, _b\n",
    }
    for name, text in files.items():
        (sub / f"{name}.py").write_text(textwrap.dedent(text))
    import tests.test_layout as layout

    saved, layout.PACKAGE = layout.PACKAGE, tmp_path / "jaxinit"
    try:
        graph = _graph(tmp_path / "jaxinit")
    finally:
        layout.PACKAGE = saved
    assert graph["jaxinit.study._d"] == {"jaxinit.study._a", "jaxinit.study._b"}
    assert _cycles(graph) == [
        ["jaxinit.study._a", "jaxinit.study._c", "jaxinit.study._b", "jaxinit.study._a"]
    ]
