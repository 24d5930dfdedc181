"""Re-initialise the parameters of whole models by rule: path pattern -> initializer.

One function, :func:`reinit`, works on any pytree of parameters — flax.linen variable
dicts, flax.nnx ``State`` and modules, Equinox modules, plain dicts — because every
parameter has a path (``"params/Dense_0/kernel"``, ``"layers/0/weight"``) and rules are
matched against it.

Patterns (a string is a glob over the "/"-joined path):

* ``*`` matches within one path segment, ``?`` one character, ``[ab]`` a class,
  ``{kernel,weight}`` either alternative, and a whole segment ``**`` any number of segments
  (zero included).
* A pattern matches the whole path *or any trailing run of its segments*, so ``"kernel"``
  is every kernel, ``"Dense_*/bias"`` matches ``"params/Dense_0/bias"`` in a linen
  variables dict, and ``"block_*/**/kernel"`` every kernel inside any block. A leading
  ``/`` anchors the pattern at the root (``"/Dense_0/kernel"``).
* A compiled ``re.Pattern`` is matched against the whole path (``fullmatch``).
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._checks import check_key
from jaxinit._core import Initializer

Pattern: TypeAlias = str | re.Pattern
Rules: TypeAlias = Mapping[Pattern, Any] | Sequence[tuple[Pattern, Any]]


@dataclass(frozen=True)
class LeafInfo:
    """What a context-aware rule sees of one parameter.

    Attributes:
      path: the "/"-joined path, e.g. ``"params/Dense_0/bias"``.
      shape, dtype: the parameter's, in the framework's own layout.
      layout: ``"torch"`` (``(out, in, *spatial)``) for Equinox modules, ``"flax"``
        (``(*spatial, in, out)``) otherwise, unless :func:`reinit` was given ``layout=``.
      siblings: shapes of the other parameters of the same layer (same parent path), by
        name — e.g. ``{"kernel": (64, 32)}`` for a bias: how a bias rule learns its
        layer's fan_in.
      owner: the class of the module that holds the parameter, when the tree knows it
        (nnx and Equinox modules); ``None`` for plain dicts and linen variables.
    """

    path: str
    shape: tuple[int, ...]
    dtype: Any
    layout: str
    siblings: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    owner: type | None = None

    @property
    def name(self) -> str:
        """The last path segment (``"kernel"``, ``"bias"``, ``"weight"``)."""
        return self.path.rpartition("/")[2]


class ContextRule:
    """A rule value that needs more than the shape: ``build(info: LeafInfo)`` returns the
    initializer for that leaf (called with the leaf's own shape and layout, no
    transposition), or ``None`` to keep the leaf as it is.

    Args:
      build: ``LeafInfo -> Initializer | None``.
      name: shown in ``repr`` and errors.
      optional: if True, matching no parameter is not an error (for rule sets whose
        parameters may be absent, e.g. biases).

    Example — torch's bias rule, which needs the sibling kernel's fan_in::

      >>> def bias(info):
      ...     return jaxinit.torch_default_bias(kernel_shape=info.siblings["kernel"])
      >>> jaxinit.reinit(params, {"bias": jaxinit.ContextRule(bias)}, key)
    """

    def __init__(
        self,
        build: Callable[[LeafInfo], Initializer | None],
        name: str = "context rule",
        *,
        optional: bool = False,
    ):
        if not callable(build):
            raise TypeError(f"ContextRule: build must be callable, got {build!r}")
        self.build = build
        self.name = name
        self.optional = optional

    def __repr__(self) -> str:
        return f"ContextRule({self.name}{', optional' if self.optional else ''})"


def optional(init: Any) -> ContextRule:
    """Mark a rule's initializer (or registry name) as optional: a pattern that matches no
    parameter is then not an error. Used by rule sets for parameters a model may lack
    (biases, scalar gates). Plain initializers keep their layout adaptation."""
    if isinstance(init, ContextRule):
        return ContextRule(init.build, init.name, optional=True)
    resolved = _resolve("optional", init)
    return ContextRule(
        lambda info: None if resolved is None else in_layout(resolved, info.layout),
        name=getattr(resolved, "__name__", repr(resolved)),
        optional=True,
    )


# --------------------------------------------------------------------------- paths


def _key_name(k: Any) -> str:
    if isinstance(k, jax.tree_util.DictKey):
        return str(k.key)
    if isinstance(k, jax.tree_util.SequenceKey):
        return str(k.idx)
    if isinstance(k, jax.tree_util.GetAttrKey):
        return k.name
    if isinstance(k, jax.tree_util.FlattenedIndexKey):
        return str(k.key)
    return str(k)


def path_str(keypath: Sequence[Any], *, drop_value: bool = True) -> str:
    """``"Dense_0/kernel"`` for a jax key path. A trailing ``.value`` attribute (nnx
    ``Variable`` and linen ``Partitioned`` boxes) is dropped unless ``drop_value=False``."""
    keypath = list(keypath)
    if (
        drop_value
        and keypath
        and isinstance(keypath[-1], jax.tree_util.GetAttrKey)
        and keypath[-1].name == "value"
    ):
        keypath = keypath[:-1]
    return "/".join(_key_name(k) for k in keypath)


def path_key(key: jax.Array, path: str) -> jax.Array:
    """The leaf's own key: the base key folded with a stable hash (CRC32) of its path — not
    Python's per-process ``hash`` — so adding or removing a layer never changes the values
    of the others, in any process."""
    return jax.random.fold_in(key, zlib.crc32(path.encode()) & 0x7FFFFFFF)


@functools.lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> re.Pattern:
    anchored = pattern.startswith("/")
    body = _translate(pattern.lstrip("/") if anchored else pattern, pattern)
    try:
        return re.compile(body if anchored else f"(?:.*/)?{body}")
    except re.error as e:  # e.g. a character class [z-a] with a reversed range
        raise ValueError(f"reinit: pattern {pattern!r} is not a valid glob: {e}") from None


def _translate(pat: str, whole: str) -> str:
    out, i, n = [], 0, len(pat)
    while i < n:
        c = pat[i]
        if pat.startswith("**/", i) and (i == 0 or pat[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i) and (i == 0 or pat[i - 1] == "/") and i + 2 == n:
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = pat.find("]", i + 2)
            if j < 0:
                raise ValueError(f"reinit: pattern {whole!r} has an unclosed '['")
            inner = pat[i + 1 : j]
            inner = "^" + inner[1:] if inner.startswith("!") else inner
            out.append(f"[{inner.replace(chr(92), chr(92) * 2)}]")
            i = j + 1
        elif c == "{":
            j = pat.find("}", i)
            if j < 0:
                raise ValueError(f"reinit: pattern {whole!r} has an unclosed '{{'")
            alts = pat[i + 1 : j].split(",")
            out.append("(?:" + "|".join(_translate(a, whole) for a in alts) + ")")
            i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def matches(pattern: Pattern, path: str) -> bool:
    """Whether a rule pattern (glob or ``re.Pattern``) matches a "/"-joined path."""
    regex = pattern if isinstance(pattern, re.Pattern) else _glob_regex(pattern)
    return regex.fullmatch(path) is not None


# --------------------------------------------------------------------------- rules


def _resolve(where: str, init: Any) -> Any:
    if init is None or isinstance(init, ContextRule):
        return init
    if isinstance(init, str):
        from jaxinit._registry import get

        return get(init)
    if not callable(init):
        raise TypeError(f"{where}: {init!r} is not an initializer, registry name or None")
    return init


def _rule_list(rules: Rules) -> list[tuple[Pattern, Any]]:
    if isinstance(rules, str | bytes) or not isinstance(rules, Mapping | Sequence):
        raise TypeError(
            "reinit: rules must be a mapping {pattern: initializer} or a sequence of"
            f" (pattern, initializer) pairs, got {type(rules).__name__}"
        )
    items = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    if not items:
        raise ValueError("reinit: rules is empty; give at least one (pattern, initializer)")
    out = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(f"reinit: a rule must be a (pattern, initializer) pair, got {item!r}")
        pattern, init = item
        if isinstance(pattern, str):
            _glob_regex(pattern)  # syntax errors now, with the pattern named
        elif not isinstance(pattern, re.Pattern):
            raise TypeError(
                f"reinit: a pattern must be a glob string or a re.Pattern, got {pattern!r}"
            )
        out.append((pattern, _resolve(f"reinit: rule {pattern!r}", init)))
    return out


def in_layout(init: Initializer, layout: str) -> Initializer:
    """Adapt an initializer written for flax's ``(*spatial, in, out)`` layout to
    ``layout``: for ``"torch"``/``"equinox"`` a weight of shape ``(out, in, *spatial)`` is
    drawn as ``(*spatial, in, out)`` and transposed, so fans come out right. Rank < 2
    shapes are unchanged."""
    if layout == "flax":
        return init

    def adapted(key: jax.Array, shape: Sequence[int], dtype: Any = None) -> jax.Array:
        shape = tuple(shape)
        if len(shape) < 2:
            return init(key, shape, dtype)
        r = len(shape)
        flax_shape = (*shape[2:], shape[1], shape[0])
        return jnp.transpose(init(key, flax_shape, dtype), (r - 1, r - 2, *range(r - 2)))

    return adapted


def _framework(tree: Any) -> str:
    if _is_equinox(type(tree)):
        return "equinox"
    if type(tree).__module__.startswith("flax.nnx"):
        from flax import nnx

        return "nnx" if isinstance(tree, nnx.Module) else "pytree"  # State is a pytree
    return "pytree"


def _is_param(x: Any) -> bool:
    """Only floating/complex arrays are parameters: RNG keys and counters are skipped."""
    dtype = getattr(x, "dtype", None)
    return (
        hasattr(x, "shape")
        and dtype is not None
        and not jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
        and jnp.issubdtype(dtype, jnp.inexact)
    )


def _owner(tree: Any, keypath: Sequence[Any]) -> type | None:
    """The class of the object holding the leaf (for Equinox modules)."""
    obj = tree
    try:
        for k in keypath[:-1]:
            if isinstance(k, jax.tree_util.GetAttrKey):
                obj = getattr(obj, k.name)
            elif isinstance(k, jax.tree_util.SequenceKey):
                obj = obj[k.idx]
            elif isinstance(k, jax.tree_util.DictKey):
                obj = obj[k.key]
            else:
                return None
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    return type(obj)


def reinit(params: Any, rules: Rules, key: jax.Array, *, layout: str | None = None) -> Any:
    """Return ``params`` with every parameter that a rule matches drawn anew.

    Each rule is ``pattern -> initializer``; for every parameter the rules are tried in
    order and the first whose pattern matches the parameter's path wins; parameters no rule
    matches keep their values. Structure, shapes and dtypes are preserved; the input is
    never modified.

    Args:
      params: a pytree of arrays — a flax.linen variables or params dict, an nnx
        ``State``, an nnx ``Module`` (a **new module** is returned via ``nnx.split`` /
        ``nnx.merge``; the input module is untouched), an Equinox module (a new module),
        or any nested dict/list/tuple. Only floating-point arrays are parameters (nnx RNG
        keys and counters, integer buffers and non-array leaves are left alone).
      rules: ``{pattern: initializer}`` or a sequence of ``(pattern, initializer)`` pairs.
        Patterns are globs or ``re.Pattern`` (see the module docs: ``*`` stays in one
        segment, ``**`` spans segments, ``{a,b}`` alternatives, an unanchored pattern
        matches any trailing segments of the path). An initializer is a callable
        ``init(key, shape, dtype)``, a registry name (``"he_normal"``), ``None`` (keep the
        parameter: useful to exclude a path before a broader rule), a
        :class:`ContextRule`, or :func:`optional` of one of these.
      key: the base PRNG key. Each parameter uses ``fold_in(key, crc32(path))``, so its
        value depends only on the key and its own path: adding a layer changes nothing
        else.
      layout: the weight layout of the tree. By default, per parameter: ``"torch"``
        (``(out, in, ...)``) for parameters held by an Equinox module (anywhere in the
        tree) and ``"flax"`` (``(..., in, out)``) otherwise. Plain
        initializers are written for the flax layout; for a torch-layout tree a weight of
        rank >= 2 is drawn in the flax layout and transposed, so
        ``{"weight": jaxinit.he_normal()}`` gives an Equinox ``Linear`` the right fan_in.
        A :class:`ContextRule` gets the native shape and ``LeafInfo.layout`` instead.

    Returns:
      The same kind of object as ``params`` with the matched parameters replaced.

    Raises:
      ValueError: a (non-optional) rule matches no parameter — the message lists the
        parameter paths that exist — or an initializer returns the wrong shape/dtype.
      TypeError: malformed rules.

    ``reinit`` resolves paths and rules in Python and only calls the initializers on
    arrays, so it traces into one program: ``jax.jit(lambda k: jaxinit.reinit(p, rules,
    k))`` or ``jax.vmap`` over keys for many seeds.

    Example:
      >>> variables = model.init(key, x)
      >>> variables = jaxinit.reinit(variables, {
      ...     "head/kernel": "zeros",           # first match wins ...
      ...     "kernel": jaxinit.he_normal(),    # ... so this is every other kernel
      ... }, jax.random.key(1))
    """
    check_key("reinit", key)
    framework = _framework(params)
    if framework == "nnx":
        from flax import nnx

        graphdef, state = nnx.split(params)
        owners = {"/".join(map(str, p)): type(m) for p, m in nnx.iter_modules(params) if p}
        new_state = _reinit_tree(state, rules, key, layout or "flax", "nnx", owners)
        return nnx.merge(graphdef, new_state)
    if layout is not None and layout not in ("flax", "torch", "equinox"):
        raise ValueError(f"reinit: layout must be 'flax', 'torch' or 'equinox', got {layout!r}")
    return _reinit_tree(params, rules, key, layout, framework, None)


def _is_equinox(cls: type | None) -> bool:
    return cls is not None and any(c.__module__.startswith("equinox") for c in cls.__mro__)


def _reinit_tree(
    params: Any,
    rules: Rules,
    key: jax.Array,
    layout: str | None,
    framework: str,
    owners: dict | None,
) -> Any:
    rule_list = _rule_list(rules)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    drop_value = framework != "equinox"
    walk = owners is None  # Equinox modules may sit anywhere in a plain container
    entries = []  # (index, path, keypath) of the parameters
    for i, (kp, v) in enumerate(leaves):
        if _is_param(v):
            entries.append((i, path_str(kp, drop_value=drop_value), kp))
    shapes = {p: tuple(leaves[i][1].shape) for i, p, _ in entries}
    used = [False] * len(rule_list)
    new = [v for _, v in leaves]
    for i, path, kp in entries:
        for r, (pattern, init) in enumerate(rule_list):
            if matches(pattern, path):
                used[r] = True
                if init is not None:
                    parent = path.rpartition("/")[0]
                    owner = _owner(params, kp) if walk else owners.get(parent)
                    # Equinox weights are (out, in, ...): the torch layout, per leaf.
                    leaf_layout = layout or ("torch" if _is_equinox(owner) else "flax")
                    new[i] = _apply(init, path, new[i], leaf_layout, shapes, owner, key)
                break
    unused = [
        repr(p)
        for (p, init), u in zip(rule_list, used, strict=True)
        if not u and not (isinstance(init, ContextRule) and init.optional)
    ]
    if unused:
        listing = ", ".join(f"{p} {shapes[p]}" for _, p, _ in entries[:60])
        more = f" ... ({len(entries)} in all)" if len(entries) > 60 else ""
        raise ValueError(
            f"reinit: rule {', '.join(unused)} matches no parameter; the parameters are: "
            f"{listing or '(none)'}{more}"
        )
    return jax.tree_util.tree_unflatten(treedef, new)


def _apply(
    init: Any,
    path: str,
    value: Any,
    layout: str,
    shapes: dict,
    owner: type | None,
    key: jax.Array,
) -> Any:
    shape, dtype = tuple(value.shape), value.dtype
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise ValueError(
            f"reinit: parameter {path} is {np.dtype(dtype)}, which jax cannot produce with"
            f" jax_enable_x64 off; cast the tree to {jax.dtypes.canonicalize_dtype(dtype)}"
            " or enable x64"
        )
    if isinstance(init, ContextRule):
        parent, _, _ = path.rpartition("/")
        siblings = {
            p.rpartition("/")[2]: s
            for p, s in shapes.items()
            if p.rpartition("/")[0] == parent and p != path
        }
        built = init.build(LeafInfo(path, shape, dtype, layout, siblings, owner))
        if built is None:
            return value
        built = _resolve(f"reinit: {init!r} for {path}", built)
    else:
        built = in_layout(init, layout)
    out = built(path_key(key, path), shape, dtype)
    if not hasattr(out, "shape") or not hasattr(out, "dtype"):
        raise TypeError(
            f"reinit: the initializer for {path} returned {type(out).__name__}, not an array"
            f" of shape {shape}"
        )
    if tuple(out.shape) != shape or out.dtype != dtype:
        raise ValueError(
            f"reinit: the initializer for {path} returned shape {tuple(out.shape)} dtype "
            f"{out.dtype}, expected {shape} {np.dtype(dtype)}"
        )
    return out
