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
* Every alternative of a ``{a,b}`` group must match some parameter (``"{attn/out,mlp/proj}
  /kernel"`` fails if the MLP has no ``proj``): it names parameters that must all exist.
  For "whichever of these names the model uses" (flax's ``kernel`` or Equinox's
  ``weight``) use :func:`any_of` (``any_of("{kernel,weight}")``), which needs only one of
  them; :func:`optional` lets a rule match nothing at all.

Every parameter is drawn as its own layer draws its ``kernel_init`` (see
:mod:`jaxinit.rules._layers`): the layer's fans, not the stored shape's.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._checks import check_key
from jaxinit._types import Initializer, Pattern, Rules, check_layout
from jaxinit._values import (
    RULE_TYPES,
    build_value,
    config_dict,
    freeze,
    frozen_options,
    initializer,
)


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
      layer: how the owning layer makes the parameter (:class:`jaxinit.LayerFans`): the
        shape it hands its initializer (``layer.call_shape``, flax convention), stack
        axes, the owning class. An initializer the rule returns is drawn there, as the
        layer would draw it (unless the rule is ``native``).
      sibling_layers: the same for the other parameters of the layer, by name.
      layer_index: the parameter's layer number (0-based), or ``None`` (see below).
      depth: the number of layers it is one of, or ``None``.
      module: the module object that holds the parameter (nnx and Equinox), for what
        shapes do not tell (an Equinox ``ConvTranspose``'s ``groups``); ``None`` for
        plain dicts and linen variables.

    ``layer_index`` and ``depth``:

    * a parameter of a layer **stack** (``nn.scan``, ``nn.vmap``, ``nnx.vmap``,
      ``eqx.filter_vmap``: the layer's leading stack axis; ``fan_axes(...,
      stack_axes=0)``) is many layers: a rule that reads ``info.layer_index`` is built
      once per layer of the stack, with ``layer_index`` its position along the stack axis
      and ``depth`` the stack axis's length, and each layer's slice is drawn with its own
      initializer. A rule that never reads ``layer_index`` is built once, as before.
    * otherwise the index is the integer in the path: a segment ``layers_3``,
      ``blocks.3``, or ``3`` after a named one (``layers/3``, ``h/3``: an nnx or Equinox
      list), and ``depth`` is one more than the largest index of that name under the same
      parent (``layers_0`` ... ``layers_11``: 12). With several indexed segments, the
      outermost one that has indexed siblings wins (``encoder/layers_3/mlp/Dense_1``: 3;
      linen's ``Encoder_0/EncoderBlock_3``: 3); with none, both are ``None``.

    So a depth-dependent rule is one line, for listed and stacked layers alike, e.g.
    torchtitan's ``ContextRule(lambda i: jaxinit.normal(0.02 / (2 * (i.layer_index + 1))
    ** 0.5))``.
    """

    path: str
    shape: tuple[int, ...]
    dtype: Any
    layout: str
    siblings: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    owner: type | None = None
    layer: Any = None
    sibling_layers: Mapping[str, Any] = field(default_factory=dict)
    _index: int | None = field(default=None, repr=False)
    depth: int | None = None
    module: Any = field(default=None, repr=False, compare=False)
    _reads: list = field(default_factory=list, repr=False, compare=False)

    @property
    def layer_index(self) -> int | None:
        """The layer number (0-based) of this parameter, or ``None``."""
        self._reads.append("layer_index")  # a stacked leaf is then built once per layer
        return self._index

    @property
    def name(self) -> str:
        """The last path segment (``"kernel"``, ``"bias"``, ``"weight"``)."""
        return self.path.rpartition("/")[2]

    @property
    def fan_in(self) -> float:
        """Fan-in of one layer's call (the layer's, not the stored shape's)."""
        return self.layer.fans[0]

    @property
    def fan_out(self) -> float:
        """Fan-out of one layer's call."""
        return self.layer.fans[1]


class ContextRule:
    """A rule value that needs more than the shape: ``build(info: LeafInfo)`` returns the
    initializer for that leaf, or ``None`` to keep the leaf as it is. The initializer is
    drawn as the owning layer would draw its ``kernel_init`` (on ``info.layer.call_shape``
    in flax's ``(..., in, out)`` convention, once per stacked layer, transposed for
    torch-layout weights), like a plain rule; with ``native=True`` it is called once on
    the stored shape ``info.shape`` instead.

    Args:
      build: ``LeafInfo -> Initializer | None``.
      name: shown in ``repr`` and errors.
      optional: if True, matching no parameter is not an error (for rule sets whose
        parameters may be absent, e.g. biases).
      native: draw on the stored shape, no layer replay.

    Example — torch's bias rule, which needs the sibling kernel's fan_in::

      >>> params = {"dense": {"kernel": jnp.zeros((32, 64)), "bias": jnp.zeros(64)}}
      >>> def bias(info):
      ...     return jaxinit.torch_default_bias(kernel_shape=info.siblings["kernel"])
      >>> params = jaxinit.reinit(params, {"bias": jaxinit.ContextRule(bias)}, jax.random.key(0))
      >>> bool(jnp.abs(params["dense"]["bias"]).max() <= 1 / 32**0.5)  # U[±1/√fan_in]
      True
    """

    def __init__(
        self,
        build: Callable[[LeafInfo], Initializer | None],
        name: str = "context rule",
        *,
        optional: bool = False,
        native: bool = False,
    ):
        if not callable(build):
            raise TypeError(f"ContextRule: build must be callable, got {build!r}")
        self.build = build
        self.name = name
        self.optional = optional
        self.native = native

    # The rule set that made this rule (set by jaxinit._values when a rule-set factory
    # returns it): a rule set's optional rules are layered under its others by design, so
    # reinit does not warn when one of them is shadowed.
    _rule_set: str | None = None

    # A value (jaxinit._values): equal when made by the same factory call (``optional(x)``
    # twice) or, without one, from equal build functions (same code, equal captured values).
    _spec: tuple[str, Mapping[str, Any]] | None = None

    def _key(self) -> Any:
        if self._spec is not None:
            return ("spec", self._spec[0], frozen_options(self._spec[1]))
        return ("rule", freeze(self.build), self.name, self.optional)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContextRule):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        if self._spec is not None:
            name, options = self._spec
            return f"{name}({', '.join(f'{k}={v!r}' for k, v in options.items())})"
        return f"ContextRule({self.name}{', optional' if self.optional else ''})"

    def get_config(self) -> dict[str, Any]:
        """JSON-able ``{"class_name", "config"}`` (``optional(init)``'s, or, for a rule of a
        module-level build function, ``ContextRule``'s own arguments)."""
        if self._spec is not None:
            return config_dict(*self._spec)
        options = {"build": self.build, "name": self.name, "optional": self.optional}
        return config_dict("ContextRule", options)

    def __reduce__(self) -> tuple[Any, ...]:
        if self._spec is not None:
            return (build_value, (self._spec[0], dict(self._spec[1])))
        return (ContextRule, (self.build, self.name), {"optional": self.optional})


RULE_TYPES["ContextRule"] = ContextRule


@initializer
def optional(init: Any) -> ContextRule:
    """Mark a rule's initializer (or registry name) as optional: a pattern that matches no
    parameter is then not an error. Used by rule sets for parameters a model may lack
    (biases, scalar gates). Plain initializers are drawn as the layer draws them."""
    if isinstance(init, ContextRule):
        return ContextRule(init.build, init.name, optional=True, native=init.native)
    from jaxinit.rules._layers import FanAxes

    if isinstance(init, FanAxes):
        raise TypeError("optional: for fan_axes, pass fan_axes(init, ..., optional=True)")
    resolved = _resolve("optional", init)
    return ContextRule(
        lambda info: resolved,
        name=_init_name(resolved),
        optional=True,
    )


def any_of(*patterns: Pattern) -> re.Pattern:
    """A pattern that matches a path when any of ``patterns`` does, without requiring that
    each alternative match something: for "whichever of these names the model uses".

    A ``{a,b}`` glob given to :func:`reinit` names parameters that must *all* exist (each
    alternative has to match, or the rule is an error); inside ``any_of`` its alternatives
    are just choices. The result is a compiled ``re.Pattern`` (matched like any
    ``re.Pattern`` rule: the whole path), so it can be a rule's key. Rule sets use it for
    names that differ between frameworks (``kernel`` in flax, ``weight`` in Equinox).

    Args:
      patterns: globs (the syntax of :func:`reinit`, ``{a,b}``, ``**``, a leading ``/``)
        or ``re.Pattern`` (its flags are not kept).

    >>> jaxinit.any_of("qkv/{kernel,weight}").fullmatch("blocks_0/attn/qkv/kernel") is not None
    True
    >>> rules = {jaxinit.any_of("{kernel,weight}"): jaxinit.he_normal()}  # flax or Equinox
    """
    if not patterns:
        raise ValueError("any_of: give at least one pattern (a glob string or re.Pattern)")
    parts = []
    for p in patterns:
        if isinstance(p, re.Pattern):
            parts.append(p.pattern)
        elif isinstance(p, str):
            parts.append(_glob_regex(p).pattern)
        else:
            raise TypeError(f"any_of: a pattern must be a glob string or re.Pattern, got {p!r}")
    compiled = re.compile(parts[0] if len(parts) == 1 else "|".join(f"(?:{x})" for x in parts))
    _WRITTEN.setdefault(compiled, f"any_of({', '.join(_written(p) for p in patterns)})")
    return compiled


# The patterns any_of was given, by the compiled pattern it returned: errors and explain
# show a rule's pattern as it was written.
_WRITTEN: dict[re.Pattern, str] = {}


def _written(pattern: Pattern) -> str:
    if isinstance(pattern, re.Pattern):
        return _WRITTEN.get(pattern, f"re.compile({pattern.pattern!r})")
    return repr(pattern)


def pattern_label(pattern: Pattern) -> str:
    """A rule's pattern as written: ``'kernel'``, ``any_of('{kernel,weight}')``,
    ``re.compile('...')``."""
    return _written(pattern)


def _init_name(init: Any) -> str:
    if isinstance(getattr(init, "name", None), str):  # a jaxinit value: its scheme's name
        return init.name
    qual = getattr(init, "__qualname__", None) or repr(init)
    return qual.split(".<locals>")[0].lstrip("_")


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
    from jaxinit.rules._layers import FanAxes

    if init is None or isinstance(init, ContextRule):
        return init
    if isinstance(init, FanAxes):
        init.init = _resolve(where, init.init)
        return init
    if isinstance(init, str):
        from jaxinit.initializers import get

        return get(init)
    if not callable(init):
        raise TypeError(f"{where}: {init!r} is not an initializer, registry name or None")
    factory = _factory_name(init)
    if factory is not None:
        raise TypeError(
            f"{where}: {factory} is an initializer factory, not an initializer; call it:"
            f" {factory}() (with its arguments), which returns init(key, shape, dtype)"
        )
    return init


def _factory_name(init: Any) -> str | None:
    """``"jaxinit.torch_normal"`` when ``init`` is a factory returning an Initializer
    (``jaxinit.torch_normal`` passed instead of ``jaxinit.torch_normal()``)."""
    try:
        ret = getattr(init, "__annotations__", {}).get("return")
    except (AttributeError, TypeError):
        return None
    text = ret if isinstance(ret, str) else getattr(ret, "__name__", "")
    if not isinstance(text, str) or text.rsplit(".", 1)[-1] != "Initializer":
        return None
    mod = getattr(init, "__module__", "") or ""
    name = getattr(init, "__name__", repr(init))
    if mod.startswith("jaxinit"):
        mod = "jaxinit"
    elif mod.startswith("jax."):
        mod = "jax.nn.initializers"
    elif mod.startswith("flax"):
        mod = "flax.linen.initializers"
    return f"{mod}.{name}" if mod else name


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


def _alternatives(pattern: Pattern) -> list[Pattern]:
    """Every expansion of a glob's ``{a,b}`` groups (a pattern without one: itself)."""
    if not isinstance(pattern, str) or "{" not in pattern:
        return [pattern]
    i = pattern.index("{")
    j = pattern.find("}", i)
    if j < 0:
        return [pattern]
    return [
        alt
        for choice in pattern[i + 1 : j].split(",")
        for alt in _alternatives(pattern[:i] + choice + pattern[j + 1 :])
    ]


_INDEXED_SEGMENT = re.compile(r"(.+?)[_.](\d+)")


def _indexed(path: str) -> list[tuple[tuple[str, str], int]]:
    """The indexed segments of a path, outermost first: ``((parent, name), index)`` for
    ``layers_3`` / ``h.3`` (one segment) and ``layers/3`` (a number after a name)."""
    segs = path.split("/")[:-1]  # the last segment is the parameter's own name
    out = []
    for j, seg in enumerate(segs):
        if seg.isdigit():
            parent = "/".join(segs[: max(j - 1, 0)])
            out.append(((parent, segs[j - 1] if j else ""), int(seg)))
        else:
            m = _INDEXED_SEGMENT.fullmatch(seg)
            if m is not None:
                out.append((("/".join(segs[:j]), m.group(1)), int(m.group(2))))
    return out


def _path_layers(paths: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``path -> (layer_index, depth)`` from the integers in the paths (see
    :class:`LeafInfo`): depth is one more than the largest index of the same name under the
    same parent; the outermost indexed segment with siblings wins."""
    found = {p: _indexed(p) for p in paths}
    depth: dict[tuple[str, str], int] = {}
    for segs in found.values():
        for group, i in segs:
            depth[group] = max(depth.get(group, 0), i + 1)
    out = {}
    for p, segs in found.items():
        if segs:
            group, i = next(((g, i) for g, i in segs if depth[g] > 1), segs[0])
            out[p] = (i, depth[group])
    return out


def _layer_stack(layer: Any, shape: tuple[int, ...]) -> int | None:
    """The length of a parameter's leading layer-stack axis (scan/vmap layers, not a
    cell's gate blocks), or ``None``."""
    if layer is None:
        return None
    n_layers = len(layer.stack_shape) - layer.gate_axes
    if n_layers < 1 or layer.stack_pos[0] != 0 or not shape or shape[0] != layer.stack_shape[0]:
        return None
    return layer.stack_shape[0]


@dataclass(frozen=True)
class _PerLayer:
    """One initializer per layer of a stack (``None``: keep that layer's slice)."""

    inits: tuple[Any, ...]
    sub: Any  # LayerFans of one slice (the stack axis removed)


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
        from jaxinit.rules import _layers

        header = ("path", "shape", "layer", "rule", "initializer", "fans (in, out)", "std / bound")
        rows = []
        for it in self.items:
            layer = "-" if it.layer is None else it.layer.layer + _layers.describe_stack(it.layer)
            if not it.matched:
                rows.append((it.path, str(it.shape), layer, "-", "(kept)", "-", "-"))
                continue
            rule = pattern_label(it.rule) if isinstance(it.rule, re.Pattern) else str(it.rule)
            if it.init is None:
                rows.append((it.path, str(it.shape), layer, rule, "None (kept)", "-", "-"))
                continue
            if isinstance(it.init, _PerLayer):  # first and last layer of the stack
                ends = [(i, f) for i, f in enumerate(it.init.inits) if f is not None]
                cols = []
                for _, f in (ends[0], ends[-1]):
                    shape = it.shape[1:] if it.native else _layers.draw_shape(it.init.sub, f)
                    cols.append(_layers.describe(f, shape))
                name = f"{cols[0][0]} (layer {ends[0][0]}) .. {cols[1][0]} (layer {ends[-1][0]})"
                fans, stat = cols[0][1], f"{cols[0][2]} .. {cols[1][2]}"
                rows.append((it.path, str(it.shape), layer, rule, name, fans, stat))
                continue
            shape = it.shape if it.native else _layers.draw_shape(it.layer, it.init)
            name, fans, stat = _layers.describe(it.init, shape)
            rows.append((it.path, str(it.shape), layer, rule, name, fans, stat))
        widths = [max(len(r[c]) for r in (header, *rows)) for c in range(len(header))]
        lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        lines.append("-+-".join("-" * w for w in widths))
        lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(line.rstrip() for line in lines)


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
        optional = isinstance(init, ContextRule | _layers.FanAxes) and init.optional
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
    if isinstance(init, _layers.FanAxes):
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
