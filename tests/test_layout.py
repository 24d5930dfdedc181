"""The package's layers: every import points down, and private names stay home.

cli -> theory -> study -> rules -> initializers (-> the shared top-level private modules,
``jaxinit/_<name>.py``: types, checks, fans, values, activations). The initializers layer is
jax + numpy only: it imports, and draws, with flax, optax, pandas and matplotlib absent.
No private name (a module or name with a leading underscore) is imported across a
subpackage boundary, and experiments/ and notebooks/ use the public API only.
"""

import ast
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

import jaxinit

PACKAGE = pathlib.Path(jaxinit.__file__).parent
REPO = PACKAGE.parent
# Higher layers may import lower ones, never the reverse. Rank 0: jaxinit/_<name>.py, the
# shared private modules any layer may use.
RANK = {"initializers": 1, "rules": 2, "stats": 3, "study": 4, "theory": 5, "cli": 6}
HEAVY = ("flax", "optax", "pandas", "matplotlib")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the file, function-level ones included;
    ``from jaxinit.x import y`` counts as importing ``jaxinit.x.y`` (y may be a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    package = package or _module_name(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _layer(module: str) -> str | None:
    """The layer a ``jaxinit...`` module (or name in it) belongs to; None for the shared
    private modules; "top" for the top-level namespace ``jaxinit`` itself."""
    parts = module.split(".")
    if parts[0] != "jaxinit":
        return None
    if len(parts) == 1:
        return "top"
    if parts[1] in RANK:
        return parts[1]
    if parts[1].startswith("_"):
        return None
    return "top"  # ``from jaxinit import he_normal``: the public namespace above every layer


def _layer_files():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        layer = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if layer in RANK:
            yield layer, path


def test_layers_import_only_downwards():
    """No module of a layer imports (even inside a function) from a layer above it, or from
    the top-level ``jaxinit`` namespace that re-exports every layer."""
    files = list(_layer_files())
    assert {layer for layer, _ in files} == set(RANK)
    assert len(files) > 25
    bad = []
    for layer, path in files:
        for line, module in _imports(path):
            target = _layer(module)
            if target is None:
                continue
            if target == "top" or RANK[target] > RANK[layer]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({layer}) imports {module}")
    assert not bad, "imports pointing up:\n" + "\n".join(bad)


def test_initializers_import_nothing_above_them():
    """The explicit form of the rule for the bottom layer: nothing under
    jaxinit/initializers imports rules, study, theory or the CLI."""
    paths = sorted((PACKAGE / "initializers").glob("*.py"))
    assert {p.stem for p in paths} >= {"__init__", "_core", "_registry", "_torch", "_structured"}
    upper = ("jaxinit.rules", "jaxinit.stats", "jaxinit.study", "jaxinit.theory", "jaxinit.cli")
    bad = [
        f"{p.name}:{line} imports {module}"
        for p in paths
        for line, module in _imports(p)
        if module.startswith(upper)
    ]
    assert not bad, bad


def test_checker_sees_function_level_and_relative_imports(tmp_path):
    """The import walk above would catch the ways an upward import hides."""
    sub = tmp_path / "jaxinit" / "initializers"
    sub.mkdir(parents=True)
    src = sub / "_probe.py"
    src.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from ..rules import _rules
            def f():
                from jaxinit.study._engine import Study
                import jaxinit.theory
            """
        )
    )
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "jaxinit"
    try:
        modules = [m for _, m in _imports(src)]
    finally:
        PACKAGE = saved
    assert modules == ["numpy", "jaxinit.rules._rules", "jaxinit.study._engine.Study",
                       "jaxinit.theory"]  # fmt: skip
    assert [_layer(m) for m in modules] == [None, "rules", "study", "theory"]


# --------------------------------------------------------------------------- private names


def _notebook_source(path: pathlib.Path) -> str:
    """The code cells of a notebook as one module (IPython magics and shell lines dropped)."""
    cells = json.loads(path.read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = cell["source"]
        source = "".join(source) if isinstance(source, list) else source
        lines += [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        lines.append("")
    return "\n".join(lines)


def _references(path: pathlib.Path, source: str, package: str | None) -> list[tuple[int, str]]:
    """(line, dotted path) of every ``jaxinit...`` import in ``source`` (function-level and
    relative ones included, ``from a import b`` as ``a.b``) and of every attribute chain
    ``jaxinit.x.y`` used in the code."""
    tree = ast.parse(source, filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = (package or "").split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Attribute) and not isinstance(
            getattr(node, "_parent_attr", None), ast.Attribute
        ):
            chain, inner = [], node
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                for child in ast.iter_child_nodes(inner):
                    child._parent_attr = inner  # type: ignore[attr-defined]
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "jaxinit":
                found.append((node.lineno, ".".join(["jaxinit", *reversed(chain)])))
    return [(line, m) for line, m in found if m == "jaxinit" or m.startswith("jaxinit.")]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_crossing(owner: str | None, target: str) -> str | None:
    """Why importing ``target`` from a file of ``owner`` breaks the rule, or None.

    ``owner``: the subpackage (``"initializers"``, ...), ``"cli"``, ``"_<bottom module>"``
    or ``"jaxinit"`` (the package's ``__init__``) for a file in the package; None for
    experiments and notebooks (public API only)."""
    parts = target.split(".")[1:]
    if not parts:
        return None
    head, rest = parts[0], parts[1:]
    if owner is None and _private(head):
        return f"imports the private module jaxinit.{head} (use the public API)"
    if owner == head:
        return None  # a subpackage's (or module's) own private names
    private = [p for p in rest if _private(p)]
    if private:
        where = "a private module" if _private(head) else f"jaxinit.{head}"
        return f"uses the private name {private[0]!r} of {where} from outside it"
    return None


def _boundary_violations(files: list[tuple[str | None, pathlib.Path]]) -> list[str]:
    bad = []
    for owner, path in files:
        if path.suffix == ".ipynb":
            source, package = _notebook_source(path), None
        else:
            source = path.read_text()
            package = _module_name(path) if path.is_relative_to(PACKAGE) else None
            if package and path.name != "__init__.py":
                package = package.rsplit(".", 1)[0]
        for line, target in _references(path, source, package):
            why = _private_crossing(owner, target)
            if why:
                where = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
                bad.append(f"{where}:{line} {why}: {target}")
    return bad


def _owner(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return "jaxinit" if rel.stem == "__init__" else rel.stem


def test_no_private_name_crosses_a_boundary():
    """Inside the package, a subpackage's private modules and names (``jaxinit.study._models``,
    ``from jaxinit.initializers._core import ...``) are used only by that subpackage; the
    shared bottom modules ``jaxinit/_<name>.py`` are used by every layer, by their public
    names. experiments/ and notebooks/ import (and reach through attributes) only public
    names: nothing with a leading underscore after ``jaxinit.``. tests/ may."""
    files: list[tuple[str | None, pathlib.Path]] = [
        (_owner(p), p) for p in sorted(PACKAGE.rglob("*.py"))
    ]
    outside = sorted((REPO / "experiments").glob("*.py")) + sorted(
        (REPO / "notebooks").glob("*.ipynb")
    )
    assert len(outside) >= 10 and any(p.suffix == ".ipynb" for p in outside)
    files += [(None, p) for p in outside]
    bad = _boundary_violations(files)
    assert not bad, "private names across boundaries:\n" + "\n".join(bad)


def test_bottom_modules_import_no_layer():
    """``jaxinit/_<name>.py`` sit below every layer: they import jax, numpy, the standard
    library and each other, never a subpackage, the CLI or the top-level namespace."""
    bottom = [p for p in sorted(PACKAGE.glob("_*.py")) if p.name != "__init__.py"]
    assert {p.stem for p in bottom} >= {"_types", "_checks", "_fans", "_values", "_activations"}
    bad = [
        f"{p.name}:{line} imports {module}"
        for p in bottom
        for line, module in _imports(p)
        if module.split(".")[0] == "jaxinit" and not module.split(".")[1].startswith("_")
    ]
    assert not bad, bad


def test_boundary_checker_catches_each_form(tmp_path):
    """The checker above flags every way a private name crosses: a private module of another
    subpackage (absolute, relative, function-level), a private name of a bottom module,
    ``from jaxinit.study import _stats``, an attribute chain, and in a notebook cell."""
    global PACKAGE
    pkg = tmp_path / "jaxinit"
    (pkg / "rules").mkdir(parents=True)
    probe = pkg / "rules" / "_probe.py"
    probe.write_text(
        textwrap.dedent(
            """
            from jaxinit.initializers._core import he_normal
            from ..study import _stats
            from jaxinit._values import _build, from_config
            from jaxinit.rules._rules import reinit   # its own subpackage: fine
            from jaxinit._checks import check_key     # a bottom module's public name: fine
            def f():
                import jaxinit.theory._meanfield
                return jaxinit.study._models.MLP
            """
        )
    )
    nb = tmp_path / "nb.ipynb"
    cell = {"cell_type": "code", "source": ["%matplotlib inline\n", "import jaxinit._fans\n"]}
    nb.write_text(json.dumps({"cells": [cell, {"cell_type": "markdown", "source": "_x"}]}))
    saved, PACKAGE = PACKAGE, pkg
    try:
        bad = _boundary_violations([("rules", probe), (None, nb)])
    finally:
        PACKAGE = saved
    got = [b.split(": ")[-1] for b in bad]
    assert got == [
        "jaxinit.initializers._core.he_normal",
        "jaxinit.study._stats",
        "jaxinit._values._build",
        "jaxinit.theory._meanfield",
        "jaxinit.study._models.MLP",
        "jaxinit._fans",
    ], bad


_BLOCK_AND_IMPORT = """
import importlib.abc, sys

HEAVY = {heavy!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"{{name}} is not installed (blocked by test_layout)")
        return None

if "--block" in sys.argv:
    sys.meta_path.insert(0, Block())

import jax
import jaxinit.initializers as ji

key = jax.random.key(0)
w = ji.he_normal(layout="torch")(key, (8, 4))
v = ji.get("VarianceScaling", scale=2.0)(key, (4, 8))
o = ji.orthogonal()(key, (6, 6))
assert w.shape == (8, 4) and v.shape == (4, 8) and o.shape == (6, 6)
assert ji.from_config(ji.he_normal(layout="torch").get_config()) == ji.he_normal(layout="torch")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
upper = sorted(m for m in sys.modules
              if m.startswith(("jaxinit.study", "jaxinit.theory", "jaxinit.cli")))
print("LOADED", loaded, "UPPER", upper)
"""


@pytest.mark.parametrize("mode", ["absent", "present"])
def test_initializers_need_no_flax_optax_pandas_matplotlib(mode):
    """``import jaxinit.initializers`` (which runs ``jaxinit/__init__.py`` first) imports none
    of flax, optax, pandas, matplotlib — and works when they cannot be imported at all."""
    code = _BLOCK_AND_IMPORT.format(heavy=HEAVY)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    argv = [sys.executable, "-c", code] + (["--block"] if mode == "absent" else [])
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED [] UPPER []" in out.stdout, out.stdout
    if mode == "present":  # the heavy layers still load on first use of one of their names
        code = "import sys, jaxinit; jaxinit.Study; jaxinit.mean_field; print(sorted(" + (
            "m for m in ('flax', 'optax') if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        assert "['flax', 'optax']" in out.stdout


def test_public_names():
    """Every name in each ``__all__`` exists, the top level lists every subpackage's names,
    and ``jaxinit.<name>`` is the very object of ``jaxinit.<layer>.<name>``."""
    import jaxinit.initializers
    import jaxinit.rules
    import jaxinit.stats
    import jaxinit.study
    import jaxinit.theory

    subpackages = [
        jaxinit.initializers,
        jaxinit.rules,
        jaxinit.stats,
        jaxinit.study,
        jaxinit.theory,
    ]
    assert len(jaxinit.__all__) == len(set(jaxinit.__all__))
    union = set()
    for sub in subpackages:
        assert sub.__all__, sub.__name__
        for name in sub.__all__:
            assert getattr(jaxinit, name) is getattr(sub, name), (sub.__name__, name)
            assert not name.startswith("_")
        union |= set(sub.__all__)
    cli = {"CompareConfig", "format_summary", "run_compare", "use_cpu_cores"}
    assert set(jaxinit.__all__) == union | cli
    for name in cli:  # the command line's names, loaded on first use
        assert getattr(jaxinit, name) is getattr(jaxinit.cli, name), name
    assert set(jaxinit.__all__) <= set(dir(jaxinit))
    documented = set(re.findall(r"\w+", jaxinit.__doc__))
    for name in jaxinit.__all__:
        assert name in documented, f"{name} missing from jaxinit's grouped docstring"
    assert jaxinit.theory.mean_field is jaxinit.mean_field
    assert jaxinit.study.Study is jaxinit.Study
    assert jaxinit.use_cpu_cores is jaxinit.cli.use_cpu_cores
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        jaxinit.no_such_name  # noqa: B018
