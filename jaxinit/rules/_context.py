"""Rule types: what a rule of :func:`jaxinit.reinit` may be besides an initializer.

:class:`LeafInfo` (what a context-aware rule sees of one parameter), :class:`ContextRule`
(a rule built per parameter), :func:`optional` (a rule that may match nothing),
:class:`FanAxes` / :func:`fan_axes` (a rule that names the fan axes of the stored array),
and how a rule's value is resolved (registry names, factories passed uncalled).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jaxinit._types import Initializer
from jaxinit._values import (
    RULE_TYPES,
    build_value,
    config_dict,
    freeze,
    frozen_options,
    initializer,
)
from jaxinit.rules._layers import LayerFans, from_axes


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
    (biases, scalar gates). Plain initializers are drawn as the layer draws them.

    Example:
      >>> params = {"dense": {"kernel": jnp.ones((4, 3))}}  # a layer without a bias
      >>> rules = {"*kernel": "he_normal", "*bias": jaxinit.optional("zeros")}
      >>> params = jaxinit.reinit(params, rules, jax.random.key(0))  # no error for *bias
      >>> params["dense"]["kernel"].shape
      (4, 3)
      >>> jaxinit.reinit(params, {"*bias": "zeros"}, jax.random.key(0))  # not optional
      Traceback (most recent call last):
      ValueError: reinit: rule '*bias' matches no parameter; the parameters are: dense/kernel ...
    """
    if isinstance(init, ContextRule):
        return ContextRule(init.build, init.name, optional=True, native=init.native)
    if isinstance(init, FanAxes):
        raise TypeError("optional: for fan_axes, pass fan_axes(init, ..., optional=True)")
    resolved = _resolve("optional", init)
    return ContextRule(
        lambda info: resolved,
        name=_init_name(resolved),
        optional=True,
    )


def _init_name(init: Any) -> str:
    if isinstance(getattr(init, "name", None), str):  # a jaxinit value: its scheme's name
        return init.name
    qual = getattr(init, "__qualname__", None) or repr(init)
    return qual.split(".<locals>")[0].lstrip("_")


def _resolve(where: str, init: Any) -> Any:
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


class FanAxes:
    """A rule value that names the fan axes of the stored array (see :func:`fan_axes`)."""

    def __init__(
        self, init: Any, in_axis: Any, out_axis: Any, stack_axes: Any, optional: bool = False
    ):
        if init is None or type(init).__name__ in ("ContextRule", "FanAxes"):
            raise TypeError(
                f"fan_axes: init must be an initializer or a registry name, got {init!r}"
                " (for a rule that may match nothing, pass optional=True)"
            )
        self.init = init
        self.optional = optional
        self.in_axis = _axes_tuple("fan_axes", "in_axis", in_axis)
        self.out_axis = _axes_tuple("fan_axes", "out_axis", out_axis)
        self.stack_axes = _axes_tuple("fan_axes", "stack_axes", stack_axes)

    def spec(self, path: str, shape: tuple[int, ...]) -> LayerFans:
        return from_axes(
            f"reinit: fan_axes for {path}", shape, self.in_axis, self.out_axis, self.stack_axes
        )

    def __repr__(self) -> str:
        return (
            f"fan_axes({getattr(self.init, '__name__', self.init)!s}, in_axis={self.in_axis},"
            f" out_axis={self.out_axis}, stack_axes={self.stack_axes})"
        )


def _axes_tuple(fn: str, arg: str, axes: Any) -> tuple[int, ...]:
    # numpy ints and 0-d integer arrays count as ints
    from jaxinit._fans import check_axes

    checked = check_axes(fn, arg, axes)
    return (checked,) if isinstance(checked, int) else checked


def fan_axes(
    init: Any,
    *,
    in_axis: Any = -2,
    out_axis: Any = -1,
    stack_axes: Any = (),
    optional: bool = False,
) -> FanAxes:
    """Name the axes of a stored parameter for a rule, when no layer can tell them.

    The parameter is drawn as ``prod(stack)`` independent calls of ``init`` on
    ``(*receptive, prod(in), prod(out))`` — the axes not named are receptive-field axes —
    and arranged back into the stored shape. So ``in_axis``/``out_axis`` are fan-in and
    fan-out (several axes are flattened, as flax's ``DenseGeneral`` does) and stack axes
    (``nn.scan`` layers, ensemble members) are neither.

    Args:
      init: the initializer (or registry name) of the rule.
      in_axis: fan-in axes of the stored array (an int or a sequence).
      out_axis: fan-out axes of the stored array (an int or a sequence).
      stack_axes: axes whose slices are drawn independently.
      optional: matching no parameter is not an error (as :func:`jaxinit.optional`).

    Example — a stacked ``(layers, in, heads, head_dim)`` kernel in a plain dict::

      >>> w = jnp.zeros((2, 64, 4, 16))
      >>> rules = {"kernel": jaxinit.fan_axes(jaxinit.lecun_normal(), in_axis=1,
      ...                                     out_axis=(2, 3), stack_axes=0)}
      >>> params = jaxinit.reinit({"kernel": w}, rules, jax.random.key(0))
      >>> round(float(params["kernel"].std()), 3)  # lecun_normal: 1/√fan_in = 1/√64 = 0.125
      0.124
    """
    return FanAxes(init, in_axis, out_axis, stack_axes, optional)
