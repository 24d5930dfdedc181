"""PyTorch semantics under explicit ``torch_*`` names.

Where jax and torch disagree on a shared name (jax's ``kaiming_normal`` is truncated,
torch's ``kaiming_normal_`` is a plain normal), the plain jaxinit name keeps jax's meaning
and torch's meaning lives here. Every function is a specialisation of
``variance_scaling`` (gain² is its scale); layout defaults to flax's ``(..., in, out)``,
pass ``layout="torch"`` for weights stored ``(out, in, ...)`` as in torch and equinox.

Every random draw here is made in float32 for bfloat16/float16 outputs and rounded once, so
a half-precision sample keeps the float32 sample's distribution, tails included (torch's
``trunc_normal_`` test of 3,000+ distinct float16 values in 10,000 holds). A zero-element
shape given to the kaiming/xavier names (and ``torch_default_kernel``, a kaiming_uniform_)
warns, as torch does, and returns the empty array.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from jaxinit._checks import (
    as_int,
    as_real,
    check_choice,
    check_dtype,
    check_finite,
    check_in_dtype,
    check_positive,
    check_shape,
    squared,
)
from jaxinit._fans import fans_of, resolve_axes
from jaxinit._types import Array, Axes, DTypeLike, Initializer, Layout, Shape
from jaxinit._values import initializer
from jaxinit.initializers._core import (
    _shifted_normal,
    _shifted_truncated_normal,
    _uniform_between,
    _variance_scaling,
)
from jaxinit.initializers._protocol import with_out_sharding

_UNIT_GAIN = (
    "linear",
    "identity",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)
NONLINEARITIES = (*_UNIT_GAIN, "tanh", "relu", "leaky_relu", "selu")

# torch's kaiming_*/xavier_* draws: half precision drawn in float32 and rounded once, and a
# zero-element shape is a no-op with torch's warning ("Initializing zero-element tensors").
_TORCH_DRAW: dict[str, Any] = {"wide": True, "warn_empty": True}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    r"""The recommended gain for a nonlinearity, torch's table exactly.

    ============================  =======================================
    nonlinearity                  gain
    ============================  =======================================
    linear, conv*, sigmoid        1
    tanh                          5/3
    relu                          √2
    leaky_relu                    √(2 / (1 + negative_slope²)), slope 0.01 by default
    selu                          3/4 (torch's choice, not the self-normalising 1)
    ============================  =======================================

    Example:
      >>> jaxinit.calculate_gain("relu") == 2 ** 0.5, jaxinit.calculate_gain("tanh")
      (True, 1.6666666666666667)
      >>> round(jaxinit.calculate_gain("leaky_relu", 0.2), 4)  # √(2 / (1 + 0.2²))
      1.3868
    """
    check_choice("calculate_gain", "nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity in _UNIT_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 3.0 / 4
    slope = 0.01 if param is None else param
    if isinstance(slope, bool) or not isinstance(slope, int | float):
        # A ValueError, as torch raises for True, [1] or {"a": "b"}.
        raise ValueError(
            f"calculate_gain: param (the negative_slope of leaky_relu) {param!r} is not a valid"
            " number; give an int or float"
        )
    check_finite("calculate_gain", "param", slope)
    if abs(slope) > 1e150:  # slope**2 would overflow float64 (OverflowError)
        raise ValueError(
            f"calculate_gain: param (the negative_slope of leaky_relu) {param!r} is too large:"
            " param**2 overflows float64; give |param| <= 1e150"
        )
    return math.sqrt(2.0 / (1 + float(slope) ** 2))


def _kaiming(fn: str, a: float, mode: str, nonlinearity: str, distribution: str, **axes):
    check_choice(fn, "mode", mode, ("fan_in", "fan_out"))
    check_choice(fn, "nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity == "leaky_relu":  # checked here so that errors name fn and a
        a = as_real(fn, "a", a)
        squared(fn, "a", a)
    gain = calculate_gain(nonlinearity, a)
    return _variance_scaling(fn, gain**2, mode, distribution, **axes, **_TORCH_DRAW)


def _xavier(fn: str, gain: float, distribution: str, **axes):
    check_positive(fn, "gain", gain)
    return _variance_scaling(
        fn, squared(fn, "gain", gain), "fan_avg", distribution, **axes, **_TORCH_DRAW
    )


@initializer
def torch_kaiming_uniform(
    a: float = 0.0,
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    layout: Layout | None = None,
    dtype: DTypeLike = None,
) -> Initializer:
    r"""torch ``kaiming_uniform_``: :math:`U[\pm \mathrm{gain}\sqrt{3/n}]`, n = fan_in or fan_out.

    ``a`` is the negative slope of the rectifier (used when ``nonlinearity="leaky_relu"``,
    torch's default, where ``a=0`` gives ReLU's gain √2).

    Example:
      >>> init = jaxinit.torch_kaiming_uniform(nonlinearity="relu", layout="torch")
      >>> w = init(jax.random.key(0), (128, 256))  # (out, in)
      >>> bool(jnp.abs(w).max() <= (6 / 256) ** 0.5)  # gain·√(3/fan_in), gain √2
      True
    """
    axes = dict(in_axis=in_axis, out_axis=out_axis, layout=layout, dtype=dtype)
    return _kaiming("torch_kaiming_uniform", a, mode, nonlinearity, "uniform", **axes)


@initializer
def torch_kaiming_normal(
    a: float = 0.0,
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    layout: Layout | None = None,
    dtype: DTypeLike = None,
) -> Initializer:
    r"""torch ``kaiming_normal_``: plain (untruncated) :math:`\mathcal N(0, \mathrm{gain}^2/n)`.

    Example:
      >>> init = jaxinit.torch_kaiming_normal(nonlinearity="relu", layout="torch")
      >>> w = init(jax.random.key(0), (128, 256))  # (out, in)
      >>> round(float(w.var() * 256 / 2), 1)  # variance gain²/fan_in, gain √2
      1.0
    """
    axes = dict(in_axis=in_axis, out_axis=out_axis, layout=layout, dtype=dtype)
    return _kaiming("torch_kaiming_normal", a, mode, nonlinearity, "normal", **axes)


@initializer
def torch_xavier_uniform(
    gain: float = 1.0,
    *,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    layout: Layout | None = None,
    dtype: DTypeLike = None,
) -> Initializer:
    r"""torch ``xavier_uniform_``: :math:`U[\pm \mathrm{gain}\sqrt{6/(n_{in}+n_{out})}]`.

    Example:
      >>> w = jaxinit.torch_xavier_uniform(layout="torch")(jax.random.key(0), (128, 256))
      >>> bool(jnp.abs(w).max() <= (6 / (256 + 128)) ** 0.5)
      True
    """
    axes = dict(in_axis=in_axis, out_axis=out_axis, layout=layout, dtype=dtype)
    return _xavier("torch_xavier_uniform", gain, "uniform", **axes)


@initializer
def torch_xavier_normal(
    gain: float = 1.0,
    *,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    layout: Layout | None = None,
    dtype: DTypeLike = None,
) -> Initializer:
    r"""torch ``xavier_normal_``: plain :math:`\mathcal N(0, \mathrm{gain}^2\cdot 2/(n_{in}+n_{out}))`.

    Example:
      >>> w = jaxinit.torch_xavier_normal(layout="torch")(jax.random.key(0), (128, 256))
      >>> round(float(w.var() * (256 + 128) / 2), 1)  # variance 2/(n_in + n_out)
      1.0
    """
    axes = dict(in_axis=in_axis, out_axis=out_axis, layout=layout, dtype=dtype)
    return _xavier("torch_xavier_normal", gain, "normal", **axes)


@initializer
def torch_default_kernel(
    *,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    layout: Layout | None = None,
    dtype: DTypeLike = None,
) -> Initializer:
    r"""torch's default for ``nn.Linear`` / ``nn.ConvNd`` weights: :math:`U[\pm 1/\sqrt{n_{in}}]`.

    torch calls ``kaiming_uniform_(w, a=√5)``: gain² = 2/(1+5) = 1/3, so the bound is
    gain·√(3/n_in) = 1/√n_in, i.e. ``variance_scaling(1/3, "fan_in", "uniform")``.
    Pair it with :func:`torch_default_bias`.

    Example:
      >>> w = jaxinit.torch_default_kernel(layout="torch")(jax.random.key(0), (128, 256))  # (out, in)
      >>> bool(jnp.abs(w).max() <= 1 / 16)  # 1/√256
      True
    """
    axes = dict(in_axis=in_axis, out_axis=out_axis, layout=layout, dtype=dtype)
    return _kaiming("torch_default_kernel", math.sqrt(5), "fan_in", "leaky_relu", "uniform", **axes)


@initializer
def torch_default_bias(
    fan_in: int | None = None,
    *,
    kernel_shape: Shape | None = None,
    layout: Layout | None = None,
    dtype: DTypeLike = None,
) -> Initializer:
    r"""torch's default bias: :math:`U[\pm 1/\sqrt{n_{in}}]` with the **weight's** fan_in.

    A bias of shape ``(out,)`` does not know its layer's fan_in, so give it: either
    ``fan_in`` directly (``in_features``, or ``in_channels · kernel size``), or the
    ``kernel_shape`` and its ``layout``. ``jaxinit.reinit`` with
    ``jaxinit.torch_default_rules()`` finds the sibling kernel by itself.

    Example:
      >>> import flax.linen as nn
      >>> layer = nn.Dense(64, kernel_init=jaxinit.torch_default_kernel(),
      ...                  bias_init=jaxinit.torch_default_bias(fan_in=32))
      >>> params = layer.init(jax.random.key(0), jnp.ones((1, 32)))["params"]
      >>> bool(jnp.abs(params["bias"]).max() <= 1 / 32**0.5)  # U[±1/√32]
      True
    """
    fn = "torch_default_bias"
    if (fan_in is None) == (kernel_shape is None):
        raise ValueError(f"{fn}: give exactly one of fan_in or kernel_shape (the weight's shape)")
    if kernel_shape is not None:
        in_axis, out_axis = resolve_axes(fn, layout, None, None)
        fan = fans_of(fn, check_shape(fn, kernel_shape), in_axis, out_axis)[0]
        if fan != int(fan):
            raise ValueError(f"{fn}: kernel_shape {kernel_shape} gives fan_in {fan}; need an int")
        fan_in = int(fan)
    fan_in = as_int(fn, "fan_in", fan_in)
    if fan_in <= 0:
        raise ValueError(f"{fn}: fan_in must be a positive int, got {fan_in!r}")
    bound = 1 / math.sqrt(fan_in)
    draw = _uniform_between(fn, -bound, bound, dtype)

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        label = f"fan_in={fan_in} (bound 1/√fan_in = {bound:.4g})"
        out_dtype = check_dtype(fn, dtype)
        check_in_dtype(fn, "fan_in", bound, out_dtype, allow_underflow=False, label=label)
        return draw(key, shape, dtype)

    return with_out_sharding(fn, init)


@initializer
def torch_uniform(a: float = 0.0, b: float = 1.0, dtype: DTypeLike = None) -> Initializer:
    """torch ``uniform_(a=0, b=1)``: :math:`U[a, b)`.

    Example:
      >>> w = jaxinit.torch_uniform(-1.0, 1.0)(jax.random.key(0), (256, 512))
      >>> bool(w.min() >= -1.0), bool(w.max() < 1.0)
      (True, True)
    """
    return _uniform_between("torch_uniform", a, b, dtype, ("a", "b"))


@initializer
def torch_normal(mean: float = 0.0, std: float = 1.0, dtype: DTypeLike = None) -> Initializer:
    r"""torch ``normal_(mean=0, std=1)``: :math:`\mathcal N(\mathrm{mean}, \mathrm{std}^2)`.

    Example:
      >>> w = jaxinit.torch_normal(std=0.02)(jax.random.key(0), (256, 512))
      >>> w.shape, round(float(w.std()), 3)
      ((256, 512), 0.02)
    """
    return _shifted_normal("torch_normal", mean, std, dtype)


@initializer
def torch_trunc_normal(
    mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, dtype: DTypeLike = None
) -> Initializer:
    r"""torch ``trunc_normal_``: :math:`\mathcal N(\mathrm{mean}, \mathrm{std}^2)` cut to absolute [a, b].

    Unlike jax's :func:`truncated_normal`, whose bounds are in units of the standard
    deviation, torch's ``a`` and ``b`` are values: with std=0.02 the default ±2 cuts nothing.

    Example:
      >>> w = jaxinit.torch_trunc_normal(std=0.02, a=-0.04, b=0.04)(jax.random.key(0), (256, 512))
      >>> bool(w.min() >= -0.04), bool(w.max() <= 0.04)  # absolute bounds, as torch
      (True, True)
    """
    return _shifted_truncated_normal("torch_trunc_normal", mean, std, a, b, dtype, ("a", "b"))
