"""The reinit planner: which rule, layer and initializer each parameter of a model gets.

One function, :func:`reinit`, works on any pytree of parameters — flax.linen variable
dicts, flax.nnx ``State`` and modules, Equinox modules, plain dicts — because every
parameter has a path (``"params/Dense_0/kernel"``, ``"layers/0/weight"``) and rules are
matched against it (:mod:`jaxinit.rules._paths`: the pattern syntax; rule types in
:mod:`jaxinit.rules._context`). The plan resolves paths, layers and rules in Python —
checking everything, shadowed rules included, before anything is drawn — and then draws
every parameter as its own layer draws its ``kernel_init`` (:mod:`jaxinit.rules._layers`):
the layer's fans, not the stored shape's. :func:`explain` prints the plan.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._checks import check_key
from jaxinit._types import Pattern, Rules, check_layout
from jaxinit.rules import _explain
from jaxinit.rules._context import ContextRule, FanAxes, LeafInfo, _init_name, _resolve
from jaxinit.rules._layers import _PerLayer
from jaxinit.rules._paths import (
    _alternatives,
    _glob_regex,
    _path_layers,
    matches,
    path_key,
    path_str,
    pattern_label,
)


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
        if isinstance(pattern, str):
            for alt in _alternatives(pattern):
                _glob_regex(alt)
        out.append((pattern, _resolve(f"reinit: rule {pattern_label(pattern)}", init)))
    return out


def _framework(tree: Any) -> str:
    if _is_equinox(type(tree)):
        return "equinox"
    if any(c.__module__.startswith("flax.nnx") for c in type(tree).__mro__):
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
    obj = _owner_obj(tree, keypath)
    return None if obj is None else type(obj)


def reinit(
    params: Any,
    rules: Rules,
    key: jax.Array,
    *,
    layout: str | None = None,
    module: Any = None,
    sample: Any = None,
    explain: bool = False,
) -> Any:
    """Return ``params`` with every parameter that a rule matches drawn anew, with the
    distribution its own layer would give with that initializer as its ``kernel_init``.

    Each rule is ``pattern -> initializer``; for every parameter the rules are tried in
    order and the first whose pattern matches the parameter's path wins; parameters no rule
    matches keep their values. Structure, shapes and dtypes are preserved; the input is
    never modified.

    Fans come from the layer, not from the stored shape (see "Fans in real models",
    docs/guide/fans.md): a linen ``DenseGeneral``/attention kernel ``(in, heads, head_dim)`` is drawn
    as the layer draws it, ``(in, heads * head_dim)`` reshaped; each layer of an
    ``nn.scan`` / ``nn.vmap`` / ``nnx.vmap`` stack is an independent draw (the stack axis
    is neither fan-in nor fan-out); Equinox weights ``(out, in, *k)`` are drawn in flax's
    ``(*k, in, out)`` and transposed, a GRU/LSTM cell's gates one by one.

    Args:
      params: a pytree of arrays — a flax.linen variables or params dict (give
        ``module=`` and ``sample=`` so the layers can be seen), an nnx ``State`` (give
        ``module=`` the nnx module for its layers), an nnx ``Module`` (a **new module**
        is returned via ``nnx.split`` / ``nnx.merge``; the input module is untouched), an
        Equinox module (a new module), or any nested dict/list/tuple. Only floating-point
        arrays are parameters (nnx RNG keys and counters, integer buffers and non-array
        leaves are left alone).
      rules: ``{pattern: initializer}`` or a sequence of ``(pattern, initializer)`` pairs.
        Patterns are globs or ``re.Pattern`` (see the module docs: ``*`` stays in one
        segment, ``**`` spans segments, ``{a,b}`` alternatives — each of which must match
        a parameter; :func:`any_of` for "any one of these names" — an unanchored pattern
        matches any trailing segments of the path). An
        initializer is a callable ``init(key, shape, dtype)``, a registry name
        (``"he_normal"``), ``None`` (keep the parameter: useful to exclude a path before a
        broader rule), a :class:`ContextRule`, :func:`optional` of one of these, or
        :func:`jaxinit.fan_axes` (name the axes of the stored array explicitly).
      key: the base PRNG key. Each parameter uses ``fold_in(key, crc32(path))``, so its
        value depends only on the key and its own path: adding a layer changes nothing
        else. Stacked layers split that key, one per layer.
      layout: the weight layout of parameters no layer describes: ``"flax"``
        (``(*k, in, out)``) or ``"torch"`` / ``"equinox"`` (``(out, in, *k)``). By default
        torch for parameters of Equinox modules and flax otherwise. Given explicitly
        against the layer's own (``layout="flax"`` on an Equinox model), the stored shape
        is taken in that layout. An initializer that carries its own layout
        (``he_normal(layout="torch")``) is called on the stored torch shape and never
        transposed a second time.
      module: the flax.linen module, as for ``module.init(key, sample)``: the module is
        initialised abstractly (nothing is computed) to see the shape each layer hands its
        initializer. For an nnx ``State``, ``module`` is the nnx module it came from.
      sample: an input (or tuple of inputs) of ``module``.
      explain: print :func:`explain`'s table and return ``params`` unchanged (nothing is
        drawn).

    Returns:
      The same kind of object as ``params`` with the matched parameters replaced.

    Raises:
      ValueError: a (non-optional) rule or an alternative of its ``{a,b}`` pattern
        matches no parameter — the message lists the parameter paths that exist —, a
        linen kernel of rank >= 3 whose fans depend on its layer was given without
        ``module=``/``sample=``, a bad ``layout``, or an initializer returns the wrong
        shape/dtype. Nothing is drawn before every parameter has been checked.
      TypeError: malformed rules, an initializer factory passed uncalled
        (``jaxinit.torch_normal`` for ``jaxinit.torch_normal()``), a linen Module passed
        as ``params``.

    ``reinit`` resolves paths, layers and rules in Python and only calls the initializers
    on arrays, so it traces into one program: ``jax.jit(lambda k: jaxinit.reinit(p,
    rules, k))`` or ``jax.vmap`` over keys for many seeds.

    Example:
      >>> import flax.linen as nn
      >>> model, x = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(3)]), jnp.ones((1, 8))
      >>> variables = model.init(jax.random.key(0), x)
      >>> variables = jaxinit.reinit(variables, {
      ...     "layers_2/kernel": "zeros",       # first match wins ...
      ...     "kernel": jaxinit.he_normal(),    # ... so this is every other kernel
      ... }, jax.random.key(1), module=model, sample=x)
      >>> float(jnp.abs(variables["params"]["layers_2"]["kernel"]).max())
      0.0
    """
    check_key("reinit", key)
    plan = _plan("reinit", params, rules, layout, module, sample)
    if explain:
        print(plan.table())
        return params
    return plan.run(key)


def explain(
    params: Any,
    rules: Rules,
    *,
    layout: str | None = None,
    module: Any = None,
    sample: Any = None,
) -> str:
    """A dry run of :func:`reinit`: the table of what it would do, drawing nothing.

    One row per parameter: its path, stored shape, owning layer (with ``xN`` for N
    stacked layers), the rule that matches it, the initializer, the fans it uses (those
    of one layer's call) and the resulting standard deviation or uniform bound. The same
    errors as :func:`reinit` are raised (a rule matching nothing, a missing module).

    Example:
      >>> import flax.linen as nn
      >>> model, x = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(3)]), jnp.ones((1, 8))
      >>> variables = model.init(jax.random.key(0), x)
      >>> print(jaxinit.explain(variables, {"kernel": jaxinit.he_normal()}, module=model, sample=x))
      path                   | shape   | layer | rule   | initializer | fans (in, out) | std / bound
      -----------------------+---------+-------+--------+-------------+----------------+------------
      params/layers_0/bias   | (16,)   | Dense | -      | (kept)      | -              | -
      params/layers_0/kernel | (8, 16) | Dense | kernel | he_normal() | 8, 16          | std 0.5
      params/layers_2/bias   | (3,)    | Dense | -      | (kept)      | -              | -
      params/layers_2/kernel | (16, 3) | Dense | kernel | he_normal() | 16, 3          | std 0.3536
    """
    return _plan("explain", params, rules, layout, module, sample).table()


def _is_equinox(cls: type | None) -> bool:
    return cls is not None and any(c.__module__.startswith("equinox") for c in cls.__mro__)


def _owner_obj(tree: Any, keypath: Sequence[Any]) -> Any:
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
    return obj


def _layer_stack(layer: Any, shape: tuple[int, ...]) -> int | None:
    """The length of a parameter's leading layer-stack axis (scan/vmap layers, not a
    cell's gate blocks), or ``None``."""
    if layer is None:
        return None
    n_layers = len(layer.stack_shape) - layer.gate_axes
    if n_layers < 1 or layer.stack_pos[0] != 0 or not shape or shape[0] != layer.stack_shape[0]:
        return None
    return layer.stack_shape[0]


_OWN_LAYOUT = (
    "the model's own layout: flax for linen, nnx and plain pytrees, torch for Equinox modules"
)

_AMBIGUOUS = (
    "{fn}: {path} has shape {shape}, and its fans depend on the layer that made it: a Conv"
    " kernel (*window, in, out), a DenseGeneral/attention kernel (in, heads, head_dim) or a"
    " scan/vmap stack (layers, in, out) all look alike. Pass the module and an input,"
    " {fn}(variables, rules, key, module=model, sample=x), so each layer is seen; or"
    " layout='flax' to take the stored shape as (*window, in, out); or name the axes in the"
    " rule with jaxinit.fan_axes(init, in_axis=..., out_axis=..., stack_axes=...)"
)


@dataclass
class _Item:
    index: int
    path: str
    shape: tuple[int, ...]
    dtype: Any
    layer: Any  # LayerFans or None
    problem: str | None = None
    rule: Any = None  # the matching pattern
    init: Any = None  # the initializer to draw with (None: keep)
    native: bool = False
    matched: bool = False


@dataclass
class _Plan:
    fn: str
    leaves: list
    treedef: Any
    items: list
    rebuild: Callable[[Any], Any]

    def run(self, key: jax.Array) -> Any:
        from jaxinit.rules import _layers

        new = list(self.leaves)
        for it in self.items:  # before anything is drawn
            if it.init is not None and jax.dtypes.canonicalize_dtype(it.dtype) != it.dtype:
                raise ValueError(
                    f"{self.fn}: parameter {it.path} is {np.dtype(it.dtype)}, which jax cannot"
                    " produce with jax_enable_x64 off; cast the tree to"
                    f" {jax.dtypes.canonicalize_dtype(it.dtype)} or enable x64"
                )
        for it in self.items:
            if it.init is None:
                continue
            k = path_key(key, it.path)
            if isinstance(it.init, _PerLayer):
                out = self._per_layer(it, k)
            elif it.native:
                out = it.init(k, it.shape, it.dtype)
            else:
                where = f"{self.fn}: the initializer for {it.path}"
                out = _layers.draw(it.layer, it.init, k, it.dtype, where)
            if not hasattr(out, "shape") or not hasattr(out, "dtype"):
                raise TypeError(
                    f"{self.fn}: the initializer for {it.path} returned"
                    f" {type(out).__name__}, not an array of shape {it.shape}"
                )
            if tuple(out.shape) != it.shape or out.dtype != it.dtype:
                raise ValueError(
                    f"{self.fn}: the initializer for {it.path} returned shape"
                    f" {tuple(out.shape)} dtype {out.dtype}, expected {it.shape}"
                    f" {np.dtype(it.dtype)}"
                )
            new[it.index] = out
        return self.rebuild(jax.tree_util.tree_unflatten(self.treedef, new))

    def _per_layer(self, it: _Item, key: jax.Array) -> jax.Array:
        """Each layer of a stack drawn with its own initializer (its slice kept for None)."""
        from jaxinit.rules import _layers

        old = self.leaves[it.index]
        slices = []
        for i, init in enumerate(it.init.inits):
            k = jax.random.fold_in(key, i)
            where = f"{self.fn}: the initializer for {it.path} (layer {i} of its stack)"
            if init is None:
                slices.append(jnp.asarray(old[i]))
                continue
            out = (
                init(k, it.shape[1:], it.dtype)
                if it.native
                else _layers.draw(it.init.sub, init, k, it.dtype, where)
            )
            if tuple(getattr(out, "shape", ())) != it.shape[1:] or out.dtype != it.dtype:
                raise ValueError(
                    f"{where} returned shape {tuple(getattr(out, 'shape', ()))} dtype"
                    f" {getattr(out, 'dtype', None)}, expected {it.shape[1:]} {np.dtype(it.dtype)}"
                )
            slices.append(out)
        return jnp.stack(slices)

    def table(self) -> str:
        return _explain.table(self.items)


def _check_params_arg(fn: str, params: Any) -> None:
    mod = type(params).__module__
    if mod.startswith("flax.linen") or ("flax" in sys.modules and _is_linen_module(params)):
        name = type(params).__name__
        raise TypeError(
            f"{fn}: params is the linen module {name} itself, which holds no arrays; pass its"
            f" variables and the module: {fn}(model.init(key, x), rules, key, module=model,"
            " sample=x)"
        )


def _is_linen_module(x: Any) -> bool:
    import flax.linen as nn

    return isinstance(x, nn.Module)


def reinit_recorded(params: Any, rules: Rules, key: jax.Array, recorded: dict) -> Any:
    """:func:`reinit` with linen layers recorded by ``_layers.linen_recording`` while the
    parameters were made (``init_params(target, rules=...)``)."""
    return _plan("reinit", params, rules, None, None, None, recorded).run(key)


def _plan(
    fn: str,
    params: Any,
    rules: Rules,
    layout: str | None,
    module: Any,
    sample: Any,
    recorded: dict | None = None,
) -> _Plan:
    from jaxinit.rules import _layers

    layout = check_layout(fn, layout, none=_OWN_LAYOUT)  # "equinox" is "torch" from here on
    _check_params_arg(fn, params)
    rule_list = _rule_list(rules)
    framework = _framework(params)
    rebuild: Callable[[Any], Any] = lambda tree: tree
    tree = params
    recorded = dict(recorded or {})
    specs: dict = {}
    owners: dict | None = None
    if framework == "nnx":
        from flax import nnx

        graphdef, tree = nnx.split(params)
        owners = {"/".join(map(str, p)): m for p, m in nnx.iter_modules(params) if p}
        specs = _layers.nnx_specs(params)
        rebuild = lambda state: nnx.merge(graphdef, state)
    elif module is not None:
        if "flax" in sys.modules and _is_linen_module(module):
            recorded = _layers.record_linen(fn, module, sample)
        elif any(c.__module__.startswith("flax.nnx.module") for c in type(module).__mro__):
            from flax import nnx

            specs = _layers.nnx_specs(module)
            owners = {"/".join(map(str, p)): m for p, m in nnx.iter_modules(module) if p}
        else:
            raise TypeError(
                f"{fn}: module= must be the flax.linen Module (with sample=) that made the"
                f" variables, or the nnx Module of an nnx State; got {type(module).__name__}"
            )
    knows_layers = bool(recorded or specs) or framework == "nnx"
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    drop_value = framework != "equinox"
    items: list[_Item] = []
    for i, (kp, v) in enumerate(leaves):
        if not _is_param(v):
            continue
        path = path_str(kp, drop_value=drop_value)
        shape = tuple(v.shape)
        parent, _, name = path.rpartition("/")
        obj = owners.get(parent) if owners is not None else _owner_obj(tree, kp)
        owner = type(obj) if obj is not None else None
        natural = "torch" if _is_equinox(owner) else "flax"
        given = layout
        item = _Item(i, path, shape, v.dtype, None)
        if given is not None and given != natural:
            item.layer = _layers.plain("array", shape, given)
        elif natural == "torch":
            item.layer = _layers.eqx_spec(obj, name, shape) if obj is not None else None
            if item.layer is None:
                item.layer = _layers.plain(f"eqx.{type(obj).__name__}", shape, "torch")
        else:
            rec = recorded.get(path)
            if rec is None and "/" in path:
                rec = recorded.get(path.split("/", 1)[1])  # linen: drop "params/"
            one = specs.get(path)
            if rec is not None:
                item.layer = _layers.linen_spec(rec[0], rec[1], shape)
                if item.layer is None:
                    item.problem = (
                        f"{fn}: {path} has shape {shape}, but its layer {rec[0]} hands its"
                        f" initializer shape {rec[1]}; name the axes with jaxinit.fan_axes"
                    )
            elif one is not None:
                item.layer = _layers.stacked(one, shape)
                if item.layer is None:
                    item.problem = (
                        f"{fn}: {path} has shape {shape}, but one {one.layer} makes"
                        f" {one.per_layer} (only leading stack axes are understood); name the"
                        " axes with jaxinit.fan_axes(init, in_axis=..., out_axis=...,"
                        " stack_axes=...)"
                    )
            else:
                known = owners is not None and owner is not None  # an nnx layer class
                owner_name = owner.__name__ if known and owner else "array"
                item.layer = _layers.plain(owner_name, shape, "flax")
                if given is None and len(shape) >= 3 and not knows_layers:
                    item.problem = _AMBIGUOUS.format(fn=fn, path=path, shape=shape)
        items.append(item)

    by_parent: dict[str, list[_Item]] = {}
    for it in items:
        by_parent.setdefault(it.path.rpartition("/")[0], []).append(it)
    alts = [_alternatives(p) for p, _ in rule_list]
    used = [[False] * len(a) for a in alts]
    # rule -> {the earlier rule that took them: the paths this rule matches but lost}
    lost: list[dict[int, list[str]]] = [{} for _ in rule_list]
    path_layers = _path_layers([it.path for it in items])
    for it in items:
        winner = None
        for r, (pattern, init) in enumerate(rule_list):
            if not matches(pattern, it.path):
                continue
            if winner is not None:
                lost[r].setdefault(winner, []).append(it.path)
                continue
            winner = r
            for a, alt in enumerate(alts[r]):
                used[r][a] = used[r][a] or matches(alt, it.path)
            it.matched, it.rule = True, pattern
            _bind(fn, it, init, by_parent, owners, tree, leaves, layout, path_layers)
    missing = []
    for r, ((pattern, init), options, u) in enumerate(zip(rule_list, alts, used, strict=True)):
        optional = isinstance(init, ContextRule | FanAxes) and init.optional
        if not any(u) and lost[r]:
            message = _shadowed(fn, pattern, init, lost[r], rule_list)
            if not optional:
                missing.append(message)
                continue
            if getattr(init, "_rule_set", None) is None:  # a rule of one's own
                warnings.warn(
                    f"{fn}: {message} (the rule is optional, so this is a warning; an error"
                    " for a rule that is not)",
                    ShadowedRuleWarning,
                    stacklevel=3,
                )
        if optional:
            continue
        if not any(u):
            missing.append(f"rule {pattern_label(pattern)} matches no parameter")
        elif not all(u):
            bad = ", ".join(repr(a) for a, ok in zip(options, u, strict=True) if not ok)
            missing.append(
                f"rule {pattern_label(pattern)}: its alternative {bad} matches no parameter"
                " (every alternative of a {a,b} pattern must; mark the rule"
                " jaxinit.optional(...) if that is intended)"
            )
    if missing:
        listing = ", ".join(f"{it.path} {it.shape}" for it in items[:60])
        more = f" ... ({len(items)} in all)" if len(items) > 60 else ""
        hint = ""
        if not items:
            hint = (
                " (no floating-point array in params: pass the variables of a linen model,"
                " model.init(key, x), an nnx Module or State, or an Equinox module)"
            )
        raise ValueError(
            f"{fn}: {'; '.join(missing)}; the parameters are: {listing or '(none)'}{more}{hint}"
        )
    return _Plan(fn, [v for _, v in leaves], treedef, items, rebuild)


class ShadowedRuleWarning(UserWarning):
    """An optional rule of one's own lost every parameter it matches to earlier rules
    (first match wins), so it takes no effect: :func:`reinit` warns (for a rule that is not
    optional, it raises a ValueError naming both rules). Put the rule before the ones that
    take its parameters, or narrow theirs. The optional rules of a ready-made rule set
    (:func:`jaxinit.gpt2`, ...) are layered under its other rules by design (a bias rule
    after an attention-bias rule) and are not warned about."""


def _rule_name(init: Any) -> str:
    """A rule's initializer, briefly: a ContextRule's name, a value's repr."""
    if isinstance(init, ContextRule):
        return init.name
    if init is None:
        return "None (keep)"
    return repr(init) if hasattr(init, "law") else _init_name(init)


def _shadowed(
    fn: str, pattern: Pattern, init: Any, lost: Mapping[int, list[str]], rule_list: Sequence[tuple]
) -> str:
    """``rule X is shadowed by rule Y (it takes a, b, ...)``."""
    parts = []
    for w, paths in lost.items():
        shown = ", ".join(paths[:3]) + (f", ... ({len(paths)} in all)" if len(paths) > 3 else "")
        taker, taker_init = rule_list[w]
        parts.append(f"rule {pattern_label(taker)}: {_rule_name(taker_init)} (which takes {shown})")
    return (
        f"rule {pattern_label(pattern)}: {_rule_name(init)} is shadowed: every parameter it"
        " matches is taken by the"
        f" earlier {' and '.join(parts)}, since the first matching rule wins; put it before"
        " them or narrow their patterns"
    )


def _bind(
    fn: str,
    it: _Item,
    init: Any,
    by_parent: dict,
    owners: dict | None,
    tree: Any,
    leaves: list,
    layout: str | None,
    path_layers: Mapping[str, tuple[int, int]],
) -> None:
    """Resolve the initializer of a matched parameter (building a ContextRule) and check
    that its layer is known when its fans matter."""
    from jaxinit.rules import _layers

    if init is None:
        return
    where = f"{fn}: rule {pattern_label(it.rule)} for {it.path}"
    if isinstance(init, FanAxes):
        it.layer = init.spec(it.path, it.shape)
        it.problem = None
        it.init = _resolve(where, init.init)
        return
    if isinstance(init, ContextRule):
        siblings = [s for s in by_parent.get(it.path.rpartition("/")[0], []) if s is not it]
        if owners is not None:
            obj = owners.get(it.path.rpartition("/")[0])
        else:
            obj = _owner_obj(tree, leaves[it.index][0])
        owner = type(obj) if obj is not None else None
        leaf_layout = layout or ("torch" if _is_equinox(owner) else "flax")
        n_stack = _layer_stack(it.layer, it.shape)
        index, depth = (
            (0, n_stack) if n_stack is not None else path_layers.get(it.path, (None,) * 2)
        )

        def leaf_info(i: int | None) -> LeafInfo:
            return LeafInfo(
                it.path,
                it.shape,
                it.dtype,
                leaf_layout,
                {s.path.rpartition("/")[2]: s.shape for s in siblings},
                owner,
                it.layer,
                {s.path.rpartition("/")[2]: s.layer for s in siblings if s.layer is not None},
                _index=i,
                depth=depth,
                module=obj,
            )

        info = leaf_info(index)
        built = init.build(info)
        where = f"{fn}: {init!r} for {it.path}"
        it.native = init.native
        if n_stack is not None and info._reads:  # one initializer per stacked layer
            inits = [built, *(init.build(leaf_info(i)) for i in range(1, n_stack))]
            if all(b is None for b in inits):
                return
            resolved = tuple(None if b is None else _resolve(where, b) for b in inits)
            sub = dataclasses.replace(
                it.layer,
                shape=it.shape[1:],
                stack_shape=it.layer.stack_shape[1:],
                stack_pos=tuple(p - 1 for p in it.layer.stack_pos[1:]),
            )
            it.init = _PerLayer(resolved, sub)
            return
        if built is None:
            return
        it.init = _resolve(where, built)
        if it.native:
            return
    else:
        it.init = init
    if it.problem is not None and _layers.fan_dependent(it.init):
        raise ValueError(it.problem)
    if it.layer is None:  # only when a problem was found: draw on the stored shape
        it.layer = _layers.plain("array", it.shape, "flax")
