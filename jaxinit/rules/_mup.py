"""μP end to end (Yang, Hu et al. 2021, "Tensor Programs V", and microsoft/mup): base
shapes, width multipliers, μP optimizers for optax, the readout and attention multipliers,
and the coordinate check.

Part 1 — shapes. A *base shape* records, for every parameter, which dimensions are
"infinite" (they grow with the model's width) and their size in the base model. As in
microsoft/mup's ``make_base_shapes(base, delta)``, a dimension is infinite exactly when it
differs between a base model and a *delta* model (the same model at another width).
:func:`infshapes` pairs the base shapes with a target model's shapes; each
:class:`InfShape` knows its width multiplier as mup's ``InfShape`` defines it.

Part 2 — optimizers. :func:`scale_by_mup` is an optax transform that multiplies every
parameter's update by its μP learning-rate multiplier (mup's ``MuAdam`` / ``MuSGD`` rules);
:func:`mup_adam` and :func:`mup_sgd` chain it into complete optimizers.

Part 3 — forward multipliers: :func:`readout_multiplier` (mup's ``MuReadout``) and
:func:`mup_attention_fn` / :func:`mup_process_heads` (attention logits :math:`q\\cdot k/d`
instead of :math:`q\\cdot k/\\sqrt d`, for flax and Equinox).

Part 4 — :func:`coord_check`: the mean absolute coordinate of every layer's output over a
few training steps at several widths, with a plot; flat in μP, growing in standard
parametrization.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._checks import as_int, as_real, check_batch, check_choice, check_positive
from jaxinit._types import flax_to_torch_axes
from jaxinit.rules._rules import _is_equinox, _is_param, _owner, path_str

# --------------------------------------------------------------------------- Part 1: shapes


@dataclass(frozen=True)
class BaseShape:
    """One parameter's base shape: its shape in the base model, which dimensions are
    infinite (grow with width) and its weight layout (``"flax"``: ``(..., in, out)``;
    ``"torch"``: ``(out, in, ...)``, as Equinox stores weights)."""

    shape: tuple[int, ...]
    infinite: tuple[bool, ...]
    layout: str
    fan_axes: tuple[tuple[int, ...], tuple[int, ...]] | None = None


@dataclass(frozen=True)
class InfShape:
    """A parameter's shape against its base shape (microsoft/mup's ``InfShape``).

    Attributes:
      shape: the parameter's shape.
      base: per dimension, its size in the base model if the dimension is infinite, else
        ``None`` (finite).
      layout: ``"flax"`` or ``"torch"``; decides which axes are fan-in and fan-out.
      fan_axes: ``(in_axes, out_axes)``, the stored axes that make up the layer's fan-in
        and fan-out when its layer says so (a ``DenseGeneral`` / ``LinearGeneral`` kernel
        ``(in, heads, head_dim)`` is ``((0,), (1, 2))``, its output kernel ``(heads,
        head_dim, out)`` ``((0, 1), (2,))``, its bias ``(heads, head_dim)`` ``((), (0,
        1))``: a vector); ``None``: the layout's last two axes
        (``(..., in, out)`` in flax, ``(out, in, ...)`` in torch), as for Linear and Conv.
        The multiplier of a group of axes is the product of its axes' multipliers.
    """

    shape: tuple[int, ...]
    base: tuple[int | None, ...]
    layout: str
    fan_axes: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    def _torch_order(self) -> list[int]:
        """Axes in torch's order (out, in, *rest), the order mup reasons in."""
        r = len(self.shape)
        if r < 2:
            return list(range(r))
        if self.layout == "torch":
            return list(range(r))
        return list(flax_to_torch_axes(r))

    def _groups(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(out axes, in axes) of a rank >= 2 parameter."""
        if self.fan_axes is not None:
            return self.fan_axes[1], self.fan_axes[0]
        out_axis, in_axis = self._torch_order()[:2]
        return (out_axis,), (in_axis,)

    def _group_mult(self, axes: tuple[int, ...]) -> float:
        return math.prod(self.dim_mult(a) for a in axes)

    def _group_inf(self, axes: tuple[int, ...]) -> bool:
        return any(self.base[a] is not None for a in axes)

    def ninf_fans(self) -> int:
        """The number of infinite dimensions counting a fan group (``fan_axes``) as one:
        what μP's rules see (``ninf()`` when no fan group has several axes)."""
        if self.fan_axes is None or len(self.shape) < 2:
            return self.ninf()
        grouped = set(self.fan_axes[0]) | set(self.fan_axes[1])
        rest = sum(self.base[a] is not None for a in range(len(self.shape)) if a not in grouped)
        return rest + sum(self._group_inf(g) for g in self.fan_axes)

    def dim_mult(self, axis: int) -> float:
        """``dim / base_dim`` for an infinite axis, 1 for a finite one."""
        b = self.base[axis]
        return 1.0 if b is None else self.shape[axis] / b

    def ninf(self) -> int:
        """The number of infinite dimensions."""
        return sum(b is not None for b in self.base)

    def width_mult(self) -> float:
        """mup's ``InfShape.width_mult``: the multiplier of the *last* infinite dimension in
        torch order ``(out, in, ...)`` — the fan-in when it is infinite — or 1."""
        if self.fan_axes is not None and len(self.shape) >= 2:
            out_axes, in_axes = self._groups()
            for axes in (in_axes, out_axes):
                if self._group_inf(axes):
                    return self._group_mult(axes)
        inf = [a for a in self._torch_order() if self.base[a] is not None]
        return self.dim_mult(inf[-1]) if inf else 1.0

    def fanin_fanout_mult_ratio(self) -> float:
        """mup's ratio fan_in multiplier / fan_out multiplier (rank >= 2)."""
        if len(self.shape) < 2:
            raise ValueError(
                f"InfShape.fanin_fanout_mult_ratio: shape {self.shape} has rank"
                f" {len(self.shape)}; fan-in and fan-out need rank >= 2"
            )
        out_axes, in_axes = self._groups()
        return self._group_mult(in_axes) / self._group_mult(out_axes)

    @property
    def kind(self) -> str:
        """μP's parameter class: ``"hidden"`` (two infinite dims), ``"input"`` (weights with
        only fan-out infinite), ``"output"`` (weights with only fan-in infinite),
        ``"vector"`` (rank-1 with an infinite dim: biases, norm scales) or ``"fixed"`` (no
        infinite dim)."""
        n = self.ninf_fans()
        if n == 0:
            return "fixed"
        if n >= 2:
            return "hidden"
        if len(self.shape) < 2 or (self.fan_axes is not None and not self.fan_axes[0]):
            return "vector"
        out_axes, in_axes = self._groups()
        if self._group_inf(out_axes):
            return "input"
        if self._group_inf(in_axes):
            return "output"
        return "vector"


def _fan_split(shape: tuple[int, ...], layer: Any) -> tuple[tuple[int, ...], ...] | None:
    """``(in_axes, out_axes)`` of a flax-layout parameter from its layer's call
    (``LayerFans``): the trailing axes of one layer's slice whose sizes multiply to the
    call's fan-out, then those before them that multiply to its fan-in (stack axes lead).
    ``None`` when that is the default (the last two axes) or cannot be told."""
    if layer is None or len(shape) < 2 or not layer.call_shape:
        return None
    per, call = layer.per_layer, layer.call_shape
    if len(call) == 1:  # a bias (heads, head_dim): one vector, no fan-in
        return (), tuple(range(len(shape) - len(per), len(shape)))

    def take(end: int, n: int) -> int | None:  # fewest axes ending at `end` with product n
        return next((j for j in range(1, end + 1) if math.prod(per[end - j : end]) == n), None)

    j_out = take(len(per), call[-1])
    j_in = None if j_out is None else take(len(per) - j_out, call[-2])
    if j_out is None or j_in is None:
        return None
    end = len(shape)  # one layer's slice is the stored shape's tail
    split = (tuple(range(end - j_out - j_in, end - j_out)), tuple(range(end - j_out, end)))
    return None if split == ((end - 2,), (end - 1,)) else split


def _param_leaves(tree: Any, recorded: Mapping | None = None) -> list[tuple]:
    """(path, shape, layout, fan_axes) of every floating-point leaf of a model / pytree /
    abstract pytree (``jax.ShapeDtypeStruct`` leaves count). ``fan_axes`` come from the
    layers: nnx modules' classes, or ``recorded`` linen layer calls."""
    from jaxinit.rules import _layers

    specs: dict = {}
    try:
        from flax import nnx

        if isinstance(tree, nnx.Module):
            specs = _layers.nnx_specs(tree)
            tree = nnx.state(tree)
    except ImportError:  # pragma: no cover - flax is a dependency
        pass
    equinox = _is_equinox(type(tree))
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    out = []
    for kp, v in leaves:
        if not _is_param(v):
            continue
        path = path_str(kp, drop_value=not equinox)
        owner = _owner(tree, kp)
        layout = "torch" if (equinox or _is_equinox(owner)) else "flax"
        shape = tuple(v.shape)
        layer = None
        if path in specs:
            layer = _layers.stacked(specs[path], shape)
        elif recorded:
            rec = recorded.get(path) or recorded.get(path.split("/", 1)[-1])
            layer = None if rec is None else _layers.linen_spec(rec[0], rec[1], shape)
        fans = _fan_split(shape, layer) if layout == "flax" else None
        out.append((path, shape, layout, fans))
    return out


def _linen_model(fn: str, arg: str, model: Any, sample: Any) -> tuple[Any, Mapping] | None:
    """A linen Module's abstract variables and recorded layer calls, or ``None``."""
    import sys

    if "flax" not in sys.modules:
        return None
    import flax.linen as nn

    if not isinstance(model, nn.Module):
        return None
    from jaxinit.rules import _layers

    if sample is None:
        raise ValueError(
            f"{fn}: {arg} is the linen module {type(model).__name__}; give sample= (an"
            " input, or a tuple of inputs, as for module.init(key, sample)) so its layers"
            " are seen"
        )
    args = sample if isinstance(sample, tuple) else (sample,)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), *args))
    return variables, _layers.record_linen(fn, model, sample)


def _abstract(fn: str, arg: str, model: Any) -> Any:
    if callable(model) and not hasattr(model, "shape") and not _is_module(model):
        try:
            import equinox as eqx

            return eqx.filter_eval_shape(model)
        except ImportError:  # pragma: no cover
            return jax.eval_shape(model)
    return model


def _is_module(x: Any) -> bool:
    if _is_equinox(type(x)):
        return True
    mod = type(x).__module__
    return mod.startswith("flax")


def base_shapes(base: Any, delta: Any, *, sample: Any = None) -> dict[str, BaseShape]:
    """The base shapes of a model, from a base model and a delta model (microsoft/mup's
    ``make_base_shapes``): a dimension is *infinite* when its size differs between them.

    Args:
      base: the model at its base width, as a pytree of parameters (flax.linen variables,
        an nnx ``State``), an nnx or Equinox module (abstract ones from ``nnx.eval_shape``
        / ``eqx.filter_eval_shape`` are fine), or a zero-argument callable that builds
        one, evaluated with ``eqx.filter_eval_shape`` (``jax.eval_shape``), so nothing is
        allocated; or a linen Module with ``sample=``.
      delta: the model at another width, in any of the forms ``base`` takes.
      sample: for linen Modules, an input (or a tuple of inputs) as for
        ``module.init(key, sample)``: the modules are initialised abstractly and each
        layer's call is recorded.

    Each parameter also records its layer's fan axes where the layer tells them (nnx
    modules; linen Modules with ``sample=``), so that a ``DenseGeneral`` /
    ``LinearGeneral`` kernel such as attention's ``(d, heads, head_dim)`` has fan-in
    ``d`` and fan-out ``heads·head_dim`` (:attr:`InfShape.fan_axes`). Given linen
    *variables*, a kernel's last two axes are taken as ``(in, out)`` (right for Dense and
    Conv): for rank > 2 ``DenseGeneral`` kernels the SGD multiplier
    (``fanin_fanout_mult_ratio``) is then wrong, so pass the modules and ``sample=``.

    Returns:
      ``{path: BaseShape}`` for every floating-point parameter, paths as :func:`reinit`
      writes them (``"params/Dense_0/kernel"``, ``"layers/0/weight"``).

    Example:
      >>> import flax.linen as nn
      >>> make = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> x = jnp.ones((1, 8))
      >>> bsh = jaxinit.base_shapes(lambda: make(64).init(jax.random.key(0), x),
      ...                           lambda: make(128).init(jax.random.key(0), x))
      >>> bsh["params/layers_0/kernel"]  # (in, out): the output width is infinite
      BaseShape(shape=(8, 64), infinite=(False, True), layout='flax', fan_axes=None)
    """
    fn = "base_shapes"

    def leaves(arg: str, model: Any) -> list[tuple]:
        linen = _linen_model(fn, arg, model, sample)
        if linen is not None:
            return _param_leaves(*linen)
        return _param_leaves(_abstract(fn, arg, model))

    b = leaves("base", base)
    d = {p: (s, lay) for p, s, lay, _ in leaves("delta", delta)}
    if not b:
        raise ValueError(f"{fn}: base has no floating-point parameters")
    bp = {p for p, _, _, _ in b}
    if bp != set(d):
        raise ValueError(
            f"{fn}: base and delta have different parameters: only in base"
            f" {sorted(bp - set(d))[:5]}, only in delta {sorted(set(d) - bp)[:5]}"
        )
    out = {}
    for path, shape, layout, fans in b:
        dshape = d[path][0]
        if len(dshape) != len(shape):
            raise ValueError(
                f"{fn}: parameter {path} has shape {shape} in base and {dshape} in delta;"
                " the ranks must agree"
            )
        out[path] = BaseShape(
            shape, tuple(a != c for a, c in zip(shape, dshape, strict=True)), layout, fans
        )
    return out


def _lookup(fn: str, bsh: Mapping[str, BaseShape], path: str) -> BaseShape:
    return bsh[path] if path in bsh else bsh[_key_of(fn, bsh, path)]


def _key_of(fn: str, bsh: Mapping[str, BaseShape], path: str) -> str:
    if path in bsh:
        return path
    # Trees may be nested differently (a linen variables dict vs its "params" subtree):
    # match whole trailing segments, and require the match to be unique.
    hits = [k for k in bsh if k.endswith("/" + path) or path.endswith("/" + k)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        known = ", ".join(sorted(bsh)[:20])
        raise ValueError(
            f"{fn}: parameter {path!r} has no base shape; the base shapes are for: {known}"
        )
    raise ValueError(f"{fn}: parameter {path!r} matches several base shapes: {hits}")


def infshape_of(path: str, shape: Sequence[int], bsh: Mapping[str, BaseShape]) -> InfShape:
    """The :class:`InfShape` of one parameter (``path``, ``shape``) under base shapes."""
    fn = "infshape_of"
    b = _lookup(fn, bsh, path)
    shape = tuple(int(s) for s in shape)
    if len(shape) != len(b.shape):
        raise ValueError(
            f"{fn}: parameter {path} has shape {shape} but its base shape {b.shape} has"
            f" rank {len(b.shape)}"
        )
    for a, (s, bs, inf) in enumerate(zip(shape, b.shape, b.infinite, strict=True)):
        if not inf and s != bs:
            raise ValueError(
                f"{fn}: parameter {path} has shape {shape}; axis {a} is finite (not a width"
                f" dimension) in the base shapes, so it must stay {bs}, got {s}"
            )
    base = tuple(bs if inf else None for bs, inf in zip(b.shape, b.infinite, strict=True))
    return InfShape(shape, base, b.layout, b.fan_axes)


def infshapes(params: Any, bsh: Mapping[str, BaseShape]) -> dict[str, InfShape]:
    """``{path: InfShape}`` for every floating-point parameter of ``params`` (any model or
    pytree :func:`base_shapes` accepts) under the base shapes ``bsh`` (mup's
    ``set_base_shapes``, without mutating anything). The base shapes must be those of this
    model: the same parameters, each with its own base shape.

    Example:
      >>> import flax.linen as nn
      >>> make = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> x = jnp.ones((1, 8))
      >>> bsh = jaxinit.base_shapes(lambda: make(64).init(jax.random.key(0), x),
      ...                           lambda: make(128).init(jax.random.key(0), x))
      >>> shapes = jax.eval_shape(lambda: make(256).init(jax.random.key(0), x))  # 4 × the base
      >>> inf = jaxinit.infshapes(shapes, bsh)
      >>> inf["params/layers_2/kernel"]  # hidden: both dims infinite
      InfShape(shape=(256, 256), base=(64, 64), layout='flax', fan_axes=None)
      >>> inf["params/layers_2/kernel"].width_mult()
      4.0
    """
    leaves = _param_leaves(_abstract("infshapes", "params", params))
    check_same_model("infshapes", [p for p, _, _, _ in leaves], bsh)
    return {p: infshape_of(p, s, bsh) for p, s, _, _ in leaves}


def check_same_model(fn: str, paths: Sequence[str], bsh: Mapping[str, BaseShape]) -> None:
    """Refuse base shapes made for another model: every parameter must find its own base
    shape, and every base shape its parameter (base shapes of a 2-hidden-layer MLP applied
    to a 1-hidden-layer one would take its readout for a hidden layer)."""
    owner: dict[str, str] = {}
    for path in paths:
        key = path if path in bsh else _key_of(fn, bsh, path)
        if key in owner:
            raise ValueError(
                f"{fn}: parameters {owner[key]!r} and {path!r} both take the base shape of"
                f" {key!r}; the base shapes were made for another model"
            )
        owner[key] = path
    missing = sorted(set(bsh) - set(owner))
    if missing:
        raise ValueError(
            f"{fn}: the base shapes were made for another model: they have parameters this"
            f" one lacks ({', '.join(map(repr, missing[:5]))}{', ...' if len(missing) > 5 else ''});"
            " μP's roles (input, hidden, readout) would be wrong. Make them with"
            " jaxinit.base_shapes(base, delta) from this model; for an optimizer of part of the"
            " model (optax.masked / multi_transform), keep only that part's entries"
        )


# --------------------------------------------------------------------------- Part 2: optax


Optimizer = Literal["adam", "sgd"]


def lr_multiplier(infshape: InfShape, optimizer: Optimizer) -> float:
    r"""μP's learning-rate multiplier of one parameter, exactly microsoft/mup's rules.

    * ``"adam"`` (``MuAdam``; any entrywise-normalised optimizer): matrix-like parameters
      (two infinite dims) get :math:`1/\mathrm{width\_mult}` (the fan-in multiplier),
      everything else 1;
    * ``"sgd"`` (``MuSGD``): vector-like parameters (one infinite dim: input weights,
      biases, the readout weight) get :math:`\mathrm{width\_mult}`, matrix-like ones
      :math:`m_{out}/m_{in}` (1 for square hidden layers), finite ones 1.

    With mup's readout multiplier (:func:`readout_multiplier`) in the forward pass these are
    the paper's Table 8; without it, Table 3 (readout init and Adam LR both :math:`1/n`).

    Example:
      >>> import flax.linen as nn
      >>> make = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> x = jnp.ones((1, 8))
      >>> bsh = jaxinit.base_shapes(lambda: make(64).init(jax.random.key(0), x),
      ...                           lambda: make(128).init(jax.random.key(0), x))
      >>> inf = jaxinit.infshapes(jax.eval_shape(lambda: make(256).init(jax.random.key(0), x)), bsh)
      >>> [(path.split("/")[1], jaxinit.lr_multiplier(s, "adam"), jaxinit.lr_multiplier(s, "sgd"))
      ...  for path, s in inf.items() if path.endswith("kernel")]  # input, hidden, readout
      [('layers_0', 1.0, 4.0), ('layers_2', 0.25, 1.0), ('layers_4', 1.0, 4.0)]
    """
    check_choice("lr_multiplier", "optimizer", optimizer, ["adam", "sgd"])
    n = infshape.ninf_fans()
    if n > 2:
        raise ValueError(
            f"lr_multiplier: shape {infshape.shape} has {n} infinite dimensions (base"
            f" {infshape.base}); μP defines at most 2"
        )
    if optimizer == "adam":
        return 1.0 / infshape.width_mult() if n == 2 else 1.0
    if n == 1:
        return infshape.width_mult()
    if n == 2:
        return 1.0 / infshape.fanin_fanout_mult_ratio()
    return 1.0


def _multipliers(fn: str, tree: Any, bsh, optimizer: Optimizer, how) -> Any:
    def leaf(kp, x):
        if x is None or not hasattr(x, "shape"):
            return x
        path = path_str(kp)
        return how(x, lr_multiplier(infshape_of(path, x.shape, bsh), optimizer))

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    check_same_model(fn, [path_str(kp) for kp, x in leaves if hasattr(x, "shape")], bsh)
    try:
        return jax.tree_util.tree_map_with_path(leaf, tree)
    except ValueError as e:
        raise ValueError(f"{fn}: {e}") from None


def scale_by_mup(bsh: Mapping[str, BaseShape], optimizer: Optimizer):
    """An optax transform that multiplies every update by its parameter's μP learning-rate
    multiplier (:func:`lr_multiplier`). The multipliers are computed from the updates'
    paths and (static) shapes, so one transform serves every width; it keeps no state.

    Place it after the optimizer's normalisation and before ``scale_by_learning_rate``;
    :func:`mup_adam` and :func:`mup_sgd` do that.

    Example:
      >>> import flax.linen as nn
      >>> make = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> x = jnp.ones((1, 8))
      >>> bsh = jaxinit.base_shapes(lambda: make(64).init(jax.random.key(0), x),
      ...                           lambda: make(128).init(jax.random.key(0), x))
      >>> import optax
      >>> tx = optax.chain(optax.scale_by_adam(), jaxinit.scale_by_mup(bsh, "adam"),
      ...                  optax.scale_by_learning_rate(1e-3))
    """
    import optax

    check_choice("scale_by_mup", "optimizer", optimizer, ["adam", "sgd"])
    _check_bsh("scale_by_mup", bsh)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        scaled = _multipliers(
            "scale_by_mup", updates, bsh, optimizer, lambda u, m: u * jnp.asarray(m, u.dtype)
        )
        return scaled, state

    return optax.GradientTransformation(init_fn, update_fn)


def _check_bsh(fn: str, bsh: Any) -> None:
    if not isinstance(bsh, Mapping) or not all(isinstance(v, BaseShape) for v in bsh.values()):
        raise TypeError(
            f"{fn}: bsh must be the dict returned by jaxinit.base_shapes(base, delta), got"
            f" {type(bsh).__name__}"
        )


def _check_learning_rate(fn: str, learning_rate: Any) -> None:
    """A finite positive number, or a schedule (a callable ``step -> rate``)."""
    if callable(learning_rate):
        return
    check_positive(fn, "learning_rate", learning_rate)


def _check_decay(fn: str, arg: str, value: Any) -> None:
    """A moment's decay rate in [0, 1): 1 never forgets the first value (Adam's bias
    correction divides by 1 - b**t = 0)."""
    x = as_real(fn, arg, value)
    if not 0.0 <= x < 1.0:
        raise ValueError(f"{fn}: {arg} must be in [0, 1), got {value!r}")


def _sgd_decay(bsh, weight_decay: float):
    """torch SGD's coupled decay g + wd·p with mup's per-group wd / multiplier."""
    import optax

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("mup_sgd: weight_decay needs params in update(grads, state, params)")
        decays = _multipliers("mup_sgd", params, bsh, "sgd", lambda p, m: p * (weight_decay / m))
        return jax.tree_util.tree_map(lambda u, d: u + d.astype(u.dtype), updates, decays), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update_fn)


def _standard_promotion(tx):
    """``tx`` with its init/update traced under standard dtype promotion: optax's Adam
    raises a Python float to an int32 count, which strict promotion rejects (the engine
    does the same for every optimizer). Scoped to the call; the global mode is untouched."""
    import optax

    def init_fn(params):
        with jax.numpy_dtype_promotion("standard"):
            return tx.init(params)

    def update_fn(updates, state, params=None):
        with jax.numpy_dtype_promotion("standard"):
            return tx.update(updates, state, params)

    return optax.GradientTransformation(init_fn, update_fn)


def mup_adam(
    learning_rate: float | Callable,
    bsh: Mapping[str, BaseShape],
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
):
    r"""Adam(W) with μP learning rates (microsoft/mup's ``MuAdam`` / ``MuAdamW``).

    The update of a hidden (matrix-like) parameter is scaled by :math:`1/\mathrm{width\_mult}`;
    input weights, biases and the readout keep ``learning_rate``. Weight decay is decoupled
    (AdamW) and, as mup's (its group weight decay is multiplied by width_mult while the LR
    is divided), the decay step :math:`\eta\lambda\,w` is the same for every parameter.

    Args:
      learning_rate: the base model's LR (a float or an optax schedule).
      bsh: base shapes from :func:`base_shapes`.
      b1: Adam's first-moment decay.
      b2: Adam's second-moment decay.
      eps: Adam's epsilon.
      weight_decay: :math:`\lambda` (0: plain Adam).

    Example:
      >>> import flax.linen as nn
      >>> make = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> x = jnp.ones((1, 8))
      >>> bsh = jaxinit.base_shapes(lambda: make(64).init(jax.random.key(0), x),
      ...                           lambda: make(128).init(jax.random.key(0), x))
      >>> params = make(1024).init(jax.random.key(0), x)  # 16 times the base width
      >>> tx = jaxinit.mup_adam(3e-3, bsh)
      >>> opt_state = tx.init(params)
    """
    import optax

    fn = "mup_adam"
    _check_bsh(fn, bsh)
    _check_learning_rate(fn, learning_rate)
    for arg, v in (("b1", b1), ("b2", b2)):
        _check_decay(fn, arg, v)
    check_positive(fn, "eps", eps)  # eps = 0: a zero gradient's update is 0/0
    check_positive(fn, "weight_decay", weight_decay, allow_zero=True)
    parts = [optax.scale_by_adam(b1=b1, b2=b2, eps=eps), scale_by_mup(bsh, "adam")]
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay))
    parts.append(optax.scale_by_learning_rate(learning_rate))
    return _standard_promotion(optax.chain(*parts))


def mup_sgd(
    learning_rate: float | Callable,
    bsh: Mapping[str, BaseShape],
    *,
    momentum: float | None = None,
    nesterov: bool = False,
    weight_decay: float = 0.0,
):
    r"""SGD (with optional momentum and coupled weight decay, as torch's) with μP learning
    rates (microsoft/mup's ``MuSGD``): vector-like parameters (input weights, biases, the
    readout weight) :math:`\times\,\mathrm{width\_mult}`, hidden weights
    :math:`\times\,m_{out}/m_{in}`; the weight decay of each group is divided by its LR
    multiplier, as mup does, so :math:`\eta\lambda` stays the base model's.

    Example:
      >>> import flax.linen as nn
      >>> make = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> x = jnp.ones((1, 8))
      >>> bsh = jaxinit.base_shapes(lambda: make(64).init(jax.random.key(0), x),
      ...                           lambda: make(128).init(jax.random.key(0), x))
      >>> tx = jaxinit.mup_sgd(0.1, bsh, momentum=0.9)
    """
    import optax

    fn = "mup_sgd"
    _check_bsh(fn, bsh)
    _check_learning_rate(fn, learning_rate)
    check_positive(fn, "weight_decay", weight_decay, allow_zero=True)
    if not isinstance(nesterov, bool):
        raise TypeError(f"{fn}: nesterov must be True or False, got {nesterov!r}")
    parts = []
    if weight_decay:
        parts.append(_sgd_decay(bsh, weight_decay))
    if momentum is not None:
        _check_decay(fn, "momentum", momentum)
        parts.append(optax.trace(decay=momentum, nesterov=nesterov))
    parts += [scale_by_mup(bsh, "sgd"), optax.scale_by_learning_rate(learning_rate)]
    return _standard_promotion(optax.chain(*parts))


# --------------------------------------------------------------------------- Part 3: forward


def readout_multiplier(width: int, base_width: int, output_mult: float = 1.0) -> float:
    r"""mup's ``MuReadout`` multiplier: the readout computes
    :math:`W(\alpha\,x/m)` with :math:`m = \mathrm{width}/\mathrm{base\_width}` (the
    readout's fan-in multiplier) and :math:`\alpha` = ``output_mult``. Multiply the
    readout's input (or its output, before the bias) by this number.

    >>> jaxinit.readout_multiplier(1024, 256)
    0.25
    """
    fn = "readout_multiplier"
    for arg, v in (("width", width), ("base_width", base_width)):
        try:  # Python and numpy integers (np.int64(128)) alike
            as_int(fn, arg, v, minimum=1)
        except (TypeError, ValueError):
            raise ValueError(f"{fn}: {arg} must be an int >= 1, got {v!r}") from None
    check_positive(fn, "output_mult", output_mult)
    return float(output_mult) * int(base_width) / int(width)


def mup_attention_fn(
    attn_mult: float = 1.0, attention_fn: Callable[..., jax.Array] | None = None
) -> Callable[..., jax.Array]:
    r"""An ``attention_fn`` for flax.linen / flax.nnx multi-head attention with μP's logits
    :math:`\alpha\,q\cdot k/d` (``attn_mult`` :math:`\alpha`, head dim :math:`d`) instead
    of :math:`q\cdot k/\sqrt d`: under μP, ``q`` and ``k`` become correlated during
    training, so their dot product grows like :math:`d`.

    flax's dot-product attention divides the query by :math:`\sqrt d`; the returned function
    multiplies it by :math:`\alpha/\sqrt d` first and calls ``attention_fn`` (default
    ``flax.linen.dot_product_attention``; pass ``flax.nnx.dot_product_attention`` for nnx).
    Equinox: :func:`mup_process_heads`.

    >>> import flax.linen as nn
    >>> attn = nn.MultiHeadDotProductAttention(4, attention_fn=jaxinit.mup_attention_fn())
    >>> q = jnp.ones((1, 3, 16))
    >>> out, variables = attn.init_with_output(jax.random.key(0), q)
    >>> out.shape
    (1, 3, 16)
    """
    check_positive("mup_attention_fn", "attn_mult", attn_mult)
    if attention_fn is not None and not callable(attention_fn):
        raise TypeError(f"mup_attention_fn: attention_fn must be callable, got {attention_fn!r}")

    if attention_fn is None:
        import flax.linen as nn

        attention_fn = nn.dot_product_attention

    # functools.wraps: inspect.signature then reports attention_fn's parameters, which
    # linen's attention uses to choose the keyword arguments it passes (mask among them)
    @functools.wraps(attention_fn)
    def mup_attention(query, key, value, *args, **kwargs):
        scale = jnp.asarray(attn_mult / math.sqrt(query.shape[-1]), query.dtype)
        return attention_fn(query * scale, key, value, *args, **kwargs)

    return mup_attention


def mup_process_heads(
    attn_mult: float = 1.0, process_heads: Callable[..., tuple] | None = None
) -> Callable[..., tuple]:
    r"""μP's attention logits :math:`\alpha\,q\cdot k/d` for Equinox: a ``process_heads``
    for ``eqx.nn.MultiheadAttention.__call__``.

    Equinox's attention divides the query heads by :math:`\sqrt d` (``qk_size``); the
    returned function multiplies them by :math:`\alpha/\sqrt d` first, so the logits are
    :math:`\alpha\,q\cdot k/d`. ``process_heads`` (e.g. rotary embeddings) is applied
    before the scaling.

    Example:
      >>> import equinox as eqx
      >>> mha = eqx.nn.MultiheadAttention(4, 64, key=jax.random.key(0))
      >>> x = jnp.ones((10, 64))
      >>> mha(x, x, x, process_heads=jaxinit.mup_process_heads()).shape
      (10, 64)
    """
    fn = "mup_process_heads"
    check_positive(fn, "attn_mult", attn_mult)
    if process_heads is not None and not callable(process_heads):
        raise TypeError(f"{fn}: process_heads must be callable, got {process_heads!r}")

    def mup_heads(query_heads, key_heads, value_heads):
        if process_heads is not None:
            query_heads, key_heads, value_heads = process_heads(query_heads, key_heads, value_heads)
        scale = jnp.asarray(attn_mult / math.sqrt(query_heads.shape[-1]), query_heads.dtype)
        return query_heads * scale, key_heads, value_heads

    return mup_heads


# --------------------------------------------------------------------------- Part 4: coord check


class CoordCheck(NamedTuple):
    """The result of :func:`coord_check`.

    Attributes:
      table: a pandas DataFrame with columns ``width, seed, step, layer, l1`` (the mean
        absolute coordinate of the layer's output after ``step`` updates).
    """

    table: Any

    def slopes(self) -> Any:
        """Per (step, layer): the slope of :math:`\\log_2` (mean over seeds of l1) against
        :math:`\\log_2` width — 0 when coordinates stay width-independent (μP), about 0.5-1
        when they blow up (standard parametrization with a width-independent LR)."""
        import pandas as pd

        g = self.table.groupby(["step", "layer", "width"], sort=True).l1.mean().reset_index()
        rows = []
        for (step, layer), h in g.groupby(["step", "layer"], sort=True):
            w, l1 = h.width.to_numpy(float), h.l1.to_numpy(float)
            ok = len(w) > 1 and bool(np.all(l1 > 0))  # a zero readout has no scale at t = 0
            slope = float(np.polyfit(np.log2(w), np.log2(l1), 1)[0]) if ok else float("nan")
            rows.append({"step": int(step), "layer": layer, "slope": slope})
        return pd.DataFrame(rows)

    def plot(self, path: str | None = None, title: str = ""):
        """One panel per step: l1 against width (log-log), one line per layer. Saves to
        ``path`` if given; returns the matplotlib figure."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        steps = sorted(self.table.step.unique())
        fig, axes = plt.subplots(1, len(steps), figsize=(3.2 * len(steps), 3.0), sharey=True)
        axes = np.atleast_1d(axes)
        g = self.table.groupby(["step", "layer", "width"], sort=True).l1.mean().reset_index()
        for ax, step in zip(axes, steps, strict=True):
            for layer, h in g[g.step == step].groupby("layer", sort=False):
                ax.plot(h.width, h.l1, marker="o", label=layer)
            ax.set(xscale="log", yscale="log", title=f"t = {step}", xlabel="width")
        axes[0].set_ylabel("mean |coordinate|")
        axes[-1].legend(fontsize=7)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
            plt.close(fig)
        return fig


def _xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _activations(module, params, x) -> tuple[jax.Array, dict[str, jax.Array]]:
    out, state = module.apply(params, x, capture_intermediates=True, mutable=["intermediates"])
    acts = {}
    for kp, v in jax.tree_util.tree_flatten_with_path(state["intermediates"])[0]:
        name = path_str(kp).removesuffix("__call__/0").rstrip("/")
        acts[name or "output"] = v
    return out, acts


def _optimizer_factory(fn: str, optimizer: Any) -> Callable[[int], Any]:
    """``width -> GradientTransformation`` from coord_check's ``optimizer`` argument."""
    import inspect

    import optax

    if isinstance(optimizer, optax.GradientTransformation):
        return lambda width: optimizer
    if not callable(optimizer):
        raise TypeError(
            f"{fn}: optimizer must be an optax GradientTransformation or a function width ->"
            f" GradientTransformation, got {type(optimizer).__name__}"
        )
    try:
        params = list(inspect.signature(optimizer).parameters)
    except (TypeError, ValueError):
        params = []
    if params and params[0] == "learning_rate":
        name = getattr(optimizer, "__qualname__", repr(optimizer))
        raise TypeError(
            f"{fn}: optimizer is {name}, an optimizer whose first argument is the learning"
            f" rate; it would be called with the width as its learning rate. Pass"
            f" {name}(rate), or a function width -> optimizer (lambda w: {name}(rate * base / w))"
        )

    def make_tx(width: int) -> Any:
        tx = optimizer(width)
        if not isinstance(tx, optax.GradientTransformation):
            raise TypeError(
                f"{fn}: optimizer({width}) must return an optax GradientTransformation, got"
                f" {type(tx).__name__}"
            )
        return tx

    return make_tx


def _check_targets(fn: str, y: Any, x: jax.Array, *, default_loss: bool) -> jax.Array:
    if not default_loss:
        return check_batch(fn, "y", y)
    a = np.asarray(y)
    if not (jnp.issubdtype(a.dtype, jnp.integer) and a.ndim == 1):
        raise TypeError(
            f"{fn}: y must be integer class labels of shape ({x.shape[0]},) for the default"
            f" loss (softmax cross-entropy), got dtype {a.dtype} and shape {a.shape}; pass"
            " loss= for other targets"
        )
    if a.shape[0] != x.shape[0]:
        raise ValueError(
            f"{fn}: y has {a.shape[0]} labels but x has {x.shape[0]} examples (axis 0)"
        )
    return jnp.asarray(a)


def _check_labels(fn: str, y: jax.Array, out_shape: tuple[int, ...], width: int) -> None:
    classes = out_shape[-1] if out_shape else 0
    a = np.asarray(y)
    bad = a[(a < 0) | (a >= classes)]
    if bad.size:
        raise ValueError(
            f"{fn}: y holds labels {sorted(set(bad.tolist()))[:5]} outside [0, {classes}): the"
            f" model made by make({width}) has {classes} outputs (output shape {out_shape})"
        )


def coord_check(
    make: Callable[[int], Any],
    widths: Sequence[int],
    x: Any,
    y: Any,
    optimizer: Any,
    *,
    steps: int = 3,
    seeds: int = 3,
    loss: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    init: Callable[[Any, jax.Array], Any] | None = None,
    key: int | jax.Array = 0,
) -> CoordCheck:
    """The coordinate check (microsoft/mup's ``get_coord_data``): train the model at each
    width for a few steps on one batch and record, before every step, the mean absolute
    coordinate (l1) of every layer's output. In μP the curves are flat in width; in
    standard parametrization with a width-independent learning rate, they grow after the
    first update.

    Args:
      make: ``width -> flax.linen.Module`` (every submodule's output is recorded, by
        ``capture_intermediates``), or, for nnx, Equinox or any model,
        ``width -> (init, apply)`` with ``init(key) -> params`` (a pytree of arrays: split
        nnx / Equinox modules with ``nnx.split`` / ``eqx.partition``) and
        ``apply(params, x) -> (output, {layer name: activation})``.
      widths: the widths to compare, e.g. ``(64, 128, 256, 512)``.
      x: one batch of inputs.
      y: the batch's targets.
      optimizer: an optax ``GradientTransformation`` (the same for every width;
        :func:`mup_adam` adapts to each width by itself), or a function ``width ->
        GradientTransformation`` (e.g. ``lambda w: optax.adam(0.02 * 64 / w)``). An optax
        alias itself (``optax.adam``, whose first argument is the learning rate) is
        refused: it would train with the width as its learning rate.
      steps: updates to take; l1 is recorded at ``t = 0 .. steps``.
      seeds: independent initialisations per width.
      loss: ``(output, y) -> scalar``; softmax cross-entropy with integer labels by
        default (then ``y`` holds one label in ``[0, classes)`` per example of ``x``).
      init: ``(variables, key) -> variables`` applied after ``module.init`` (e.g.
        ``lambda v, k: jaxinit.reinit(v, jaxinit.mup(), k)``).
      key: an int seed or a PRNG key.

    Returns:
      :class:`CoordCheck`; ``.plot(path)`` draws it, ``.slopes()`` summarises it.

    Example:
      >>> import flax.linen as nn
      >>> make = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> x = jnp.ones((1, 8))
      >>> bsh = jaxinit.base_shapes(lambda: make(64).init(jax.random.key(0), x),
      ...                           lambda: make(128).init(jax.random.key(0), x))
      >>> x, y = jax.random.normal(jax.random.key(1), (16, 8)), jnp.arange(16) % 10
      >>> cc = jaxinit.coord_check(make, (32, 64), x, y, jaxinit.mup_adam(1e-2, bsh),
      ...                          steps=2, seeds=2)
      >>> list(cc.table.columns)  # cc.plot("coord_check.png") draws it
      ['width', 'seed', 'step', 'layer', 'l1']
    """
    import optax
    import pandas as pd

    fn = "coord_check"
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"{fn}: widths must be a non-empty sequence of ints >= 1, got {widths!r}")
    for arg, v in (("steps", steps), ("seeds", seeds)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{fn}: {arg} must be an int >= 1, got {v!r}")
    if not callable(make):
        raise TypeError(f"{fn}: make must be a callable width -> flax.linen.Module or a pair")
    make_tx = _optimizer_factory(fn, optimizer)
    if loss is not None and not callable(loss):
        raise TypeError(f"{fn}: loss must be a function (output, y) -> scalar, got {loss!r}")
    key = jax.random.key(key) if isinstance(key, int) else key
    x = check_batch(fn, "x", x)
    y = _check_targets(fn, y, x, default_loss=loss is None)
    loss = loss or _xent
    rows = []
    for width in widths:
        built = make(width)
        if isinstance(built, tuple):
            if len(built) != 2 or not all(callable(f) for f in built):
                raise TypeError(
                    f"{fn}: make(width) must return a flax.linen Module or a pair"
                    f" (init(key) -> params, apply(params, x) -> (out, activations)), got"
                    f" {type(built).__name__} of length {len(built)}"
                )
            init_fn, apply_fn = built
        else:
            init_fn = lambda k, m=built: m.init(k, x)
            apply_fn = lambda v, xs, m=built: _activations(m, v, xs)
        if loss is _xent:
            out = jax.eval_shape(lambda k, i=init_fn, a=apply_fn: a(i(k), x)[0], jax.random.key(0))
            _check_labels(fn, y, out.shape, width)
        tx = _standard_promotion(make_tx(width))

        def run(k, init_fn=init_fn, apply_fn=apply_fn, tx=tx):
            k_init, k_re = jax.random.split(k)
            variables = init_fn(k_init)
            if init is not None:
                variables = init(variables, k_re)
            state = tx.init(variables)

            def step(carry, _):
                v, s = carry

                def objective(v):
                    out, acts = apply_fn(v, x)
                    return loss(out, y), acts

                (_, acts), g = jax.value_and_grad(objective, has_aux=True)(v)
                upd, s = tx.update(g, s, v)
                l1 = {n: jnp.mean(jnp.abs(a)) for n, a in acts.items()}
                return (optax.apply_updates(v, upd), s), l1

            (v, _), l1 = jax.lax.scan(step, (variables, state), None, length=steps)
            _, acts = apply_fn(v, x)
            last = {n: jnp.mean(jnp.abs(a))[None] for n, a in acts.items()}
            return {n: jnp.concatenate([l1[n], last[n]]) for n in l1}

        l1 = jax.jit(jax.vmap(run))(jax.random.split(jax.random.fold_in(key, width), seeds))
        for layer, arr in l1.items():
            arr = np.asarray(arr)
            for s in range(seeds):
                for t in range(steps + 1):
                    rows.append((width, s, t, layer, float(arr[s, t])))
    return CoordCheck(pd.DataFrame(rows, columns=["width", "seed", "step", "layer", "l1"]))
