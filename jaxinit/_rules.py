"""Re-initialise parameters of whole models by rule: path pattern -> initializer.

One function, :func:`reinit`, works on any pytree of parameters — flax.linen variable
dicts, flax.nnx ``State`` and modules, Equinox modules, plain dicts — because every
parameter has a path (``"Dense_0/kernel"``, ``"layers/0/weight"``) and rules are matched
against it.
"""

from __future__ import annotations

import fnmatch
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp

from jaxinit._core import Initializer

Pattern: TypeAlias = str | re.Pattern
Rules: TypeAlias = Mapping[Pattern, Any] | Sequence[tuple[Pattern, Any]]


@dataclass(frozen=True)
class LeafInfo:
    """What a context-aware rule sees of one parameter.

    Attributes:
      path: the "/"-joined path, e.g. ``"Dense_0/bias"``.
      shape, dtype: the parameter's.
      layout: ``"flax"`` for flax trees, ``"torch"`` for Equinox modules (``(out, in)``).
      siblings: shapes of the other parameters in the same layer (same parent path), by
        name — e.g. ``{"kernel": (64, 32)}`` for a bias, which is how a bias rule learns
        its layer's fan_in.
    """

    path: str
    shape: tuple[int, ...]
    dtype: Any
    layout: str
    siblings: Mapping[str, tuple[int, ...]]


class ContextRule:
    """Wrap ``build(info: LeafInfo) -> Initializer`` for rules that need more than a shape."""

    def __init__(self, build: Callable[[LeafInfo], Initializer], name: str = "context rule"):
        self.build = build
        self.name = name

    def __repr__(self) -> str:
        return f"ContextRule({self.name})"


def _key_name(k: Any) -> str | None:
    if isinstance(k, jax.tree_util.DictKey):
        return str(k.key)
    if isinstance(k, jax.tree_util.SequenceKey):
        return str(k.idx)
    if isinstance(k, jax.tree_util.GetAttrKey):
        return None if k.name == "value" else k.name  # nnx Variable wrappers
    if isinstance(k, jax.tree_util.FlattenedIndexKey):
        return str(k.key)
    return str(k)


def path_str(keypath: Sequence[Any]) -> str:
    """``"Dense_0/kernel"`` for a jax key path; nnx ``.value`` wrappers are dropped."""
    return "/".join(n for n in (_key_name(k) for k in keypath) if n is not None)


def path_key(key: jax.Array, path: str) -> jax.Array:
    """The leaf's own key: the base key folded with a stable hash (CRC32) of its path,
    so adding or removing a layer never changes the values of the others."""
    return jax.random.fold_in(key, zlib.crc32(path.encode()) & 0x7FFFFFFF)


def _matches(pattern: Pattern, path: str) -> bool:
    if isinstance(pattern, re.Pattern):
        return pattern.fullmatch(path) is not None
    return fnmatch.fnmatchcase(path, pattern)


def _rule_list(rules: Rules) -> list[tuple[Pattern, Any]]:
    items = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    if not items:
        raise ValueError("reinit: rules is empty; give at least one (pattern, initializer)")
    out = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(f"reinit: a rule must be a (pattern, initializer) pair, got {item!r}")
        pattern, init = item
        if not isinstance(pattern, str | re.Pattern):
            raise TypeError(f"reinit: pattern must be a glob string or re.Pattern, got {pattern!r}")
        if isinstance(init, str):
            from jaxinit._registry import get

            init = get(init)
        elif not callable(init) and init is not None:
            raise TypeError(f"reinit: rule {pattern!r} maps to {init!r}, not an initializer")
        out.append((pattern, init))
    return out


def _framework(tree: Any) -> str:
    mod = type(tree).__module__
    if mod.startswith("equinox") or any(
        c.__module__.startswith("equinox") for c in type(tree).__mro__
    ):
        return "equinox"
    if mod.startswith("flax.nnx"):
        from flax import nnx

        return "nnx" if isinstance(tree, nnx.Module) else "pytree"  # State is a pytree
    return "pytree"


def reinit(params: Any, rules: Rules, key: jax.Array, *, layout: str | None = None) -> Any:
    """Return ``params`` with every leaf that a rule matches drawn anew.

    Args:
      params: a pytree of arrays — a flax.linen variables/params dict, an nnx ``State``,
        an nnx ``Module`` (a new module is returned; the input is not modified), an Equinox
        module, or any nested dict/list.
      rules: ``{pattern: initializer}`` (or a sequence of pairs), tried in order, first
        match wins. A pattern is a glob over the "/"-joined path (``"*kernel"``,
        ``"Dense_*/bias"``; ``*`` also crosses ``/``) or a compiled ``re.Pattern``
        (full match). An initializer is a callable ``init(key, shape, dtype)``, a registry
        name, ``None`` (keep the leaf as it is), or a :class:`ContextRule`.
      key: the base PRNG key; each leaf uses ``fold_in(key, crc32(path))``.
      layout: fan layout given to context rules; by default ``"torch"`` for Equinox
        modules (weights ``(out, in)``) and ``"flax"`` otherwise. Plain initializers get
        the layout via :class:`ContextRule` only: for Equinox, use
        ``jaxinit.he_normal(layout="torch")`` or a rule set that does it for you.

    Raises:
      ValueError: a rule matches no parameter (the message lists the existing paths).
    """
    framework = _framework(params)
    if framework == "nnx":
        from flax import nnx

        graphdef, state = nnx.split(params)
        return nnx.merge(graphdef, reinit(state, rules, key, layout=layout))
    layout = layout or ("torch" if framework == "equinox" else "flax")
    rule_list = _rule_list(rules)

    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [path_str(kp) for kp, _ in leaves]
    shapes = {p: tuple(jnp.shape(v)) for p, (_, v) in zip(paths, leaves, strict=True)}
    used = [False] * len(rule_list)
    new_leaves = []
    for path, (_, value) in zip(paths, leaves, strict=True):
        for i, (pattern, init) in enumerate(rule_list):
            if _matches(pattern, path):
                used[i] = True
                if init is not None:
                    value = _apply(init, path, value, layout, shapes, key)
                break
        new_leaves.append(value)
    unused = [repr(p) for (p, _), u in zip(rule_list, used, strict=True) if not u]
    if unused:
        listing = ", ".join(paths[:40]) + (" ..." if len(paths) > 40 else "")
        raise ValueError(f"reinit: rule {', '.join(unused)} matches no parameter; paths: {listing}")
    return jax.tree_util.tree_unflatten(treedef, new_leaves)


def _apply(init: Any, path: str, value: Any, layout: str, shapes: dict, key: jax.Array):
    if not hasattr(value, "shape"):
        raise TypeError(f"reinit: {path} is {type(value).__name__}, not an array")
    shape, dtype = tuple(value.shape), value.dtype
    if isinstance(init, ContextRule):
        parent = path.rpartition("/")[0]
        siblings = {
            p.rpartition("/")[2]: s
            for p, s in shapes.items()
            if p.rpartition("/")[0] == parent and p != path
        }
        init = init.build(LeafInfo(path, shape, dtype, layout, siblings))
    new = init(path_key(key, path), shape, dtype)
    if new.shape != shape or new.dtype != dtype:
        raise ValueError(
            f"reinit: the initializer for {path} returned {new.shape} {new.dtype},"
            f" expected {shape} {dtype}"
        )
    return new
