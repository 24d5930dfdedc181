"""The core: constant and plain random initializers, and the one ``variance_scaling``.

Every named scheme (Glorot, He, LeCun, the torch flavours) is a one-line specialisation of
``variance_scaling``. Where a name exists in ``jax.nn.initializers`` the defaults are the
same and the operations are performed in the same order, so the output is bit-identical
for the same key, in every dtype: in bfloat16/float16 these names draw in the target dtype,
as jax does (``jaxinit.draw_in_float32(init)`` draws in float32 and rounds once instead).
Every other name (Keras', PyTorch's, jaxinit's own) draws half precision in float32 and
rounds once (``jaxinit.initializers._precision``). The float8 types are always drawn in
float32 and rounded once, for every name (jax's own draw there is NaN or coarse, so no
parity is lost).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._checks import (
    check_choice,
    check_dtype,
    check_finite,
    check_in_dtype,
    check_key,
    check_positive,
    check_shape,
    default_float,
)
from jaxinit._fans import check_axes, fan_of_mode, fans_of, resolve_axes
from jaxinit._types import Array, Axes, DTypeLike, Initializer, Layout, OutSharding, Shape
from jaxinit._values import initializer, plain_initializer
from jaxinit.initializers import _fast, _truncnorm
from jaxinit.initializers._precision import wide_dtype
from jaxinit.initializers._protocol import call_sharded, sampler, with_out_sharding

MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("truncated_normal", "normal", "untruncated_normal", "uniform")

# Standard deviation of N(0, 1) truncated to (-2, 2), and of the complex standard normal
# whose modulus is truncated to 2: dividing by it makes the truncated draw unit-variance.
TRUNCATED_STD = 0.87962566103423978
COMPLEX_TRUNCATED_STD = 0.95311164380491208


# --------------------------------------------------------------------------- constants


@plain_initializer
def zeros(
    key: Array | None, shape: Shape, dtype: DTypeLike = None, out_sharding: OutSharding = None
) -> Array:
    """An array of zeros (the key is ignored).

    Every unit of a layer initialised to zeros computes the same function and receives the
    same gradient, so the units never become different (the symmetry problem). Use it for
    biases, residual gates and last layers, not for whole networks.

    >>> jaxinit.zeros(jax.random.key(0), (2, 3))
    Array([[0., 0., 0.],
           [0., 0., 0.]], dtype=float32)
    """
    shape = check_shape("zeros", shape)
    dtype = check_dtype("zeros", dtype, allow_any=True)
    return call_sharded("zeros", lambda: jnp.zeros(shape, dtype), out_sharding, shape)


@plain_initializer
def ones(
    key: Array | None, shape: Shape, dtype: DTypeLike = None, out_sharding: OutSharding = None
) -> Array:
    """An array of ones (the key is ignored); the usual init of normalisation scales."""
    shape = check_shape("ones", shape)
    dtype = check_dtype("ones", dtype, allow_any=True)
    return call_sharded("ones", lambda: jnp.ones(shape, dtype), out_sharding, shape)


# zeros and ones are values (Init), where doctest does not look: run zeros' example as well.
__test__ = {"zeros": zeros._fn.__doc__}


def zeros_init() -> Initializer:
    """flax's spelling of :func:`zeros` as a factory: ``zeros_init()`` returns ``zeros``.

    >>> import flax.linen as nn
    >>> nn.Dense(8, bias_init=jaxinit.zeros_init()).bias_init
    zeros
    """
    return zeros


def ones_init() -> Initializer:
    """flax's spelling of :func:`ones` as a factory: ``ones_init()`` returns ``ones``.

    >>> import flax.linen as nn
    >>> nn.LayerNorm(scale_init=jaxinit.ones_init()).scale_init
    ones
    """
    return ones


@initializer
def constant(value: Any, dtype: DTypeLike = None) -> Initializer:
    """Initializer that fills the array with ``value`` (a scalar or a broadcastable array).

    Example:
      >>> jaxinit.constant(0.5)(jax.random.key(0), (2, 3))
      Array([[0.5, 0.5, 0.5],
             [0.5, 0.5, 0.5]], dtype=float32)
    """
    check_finite("constant", "value", value, array=True)
    value = np.asarray(value) if isinstance(value, list | tuple) else value

    def init(key: Array | None, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        shape = check_shape("constant", shape)
        dtype = default_float() if dtype is None else check_dtype("constant", dtype, allow_any=True)
        check_in_dtype("constant", "value", value, dtype)
        if np.ndim(value) and not _broadcasts_to(np.shape(value), shape):
            raise ValueError(
                f"constant: value of shape {np.shape(value)} does not broadcast to shape {shape}"
            )
        return jnp.full(shape, value, dtype=dtype)

    return with_out_sharding("constant", init)


def _broadcasts_to(src: Shape, dst: Shape) -> bool:
    try:
        return np.broadcast_shapes(src, dst) == dst
    except ValueError:
        return False


# --------------------------------------------------------------------------- plain random


def _rng(key: Array) -> Any:
    """Sampling hook: the module that draws normal/uniform/truncated_normal for ``key``.

    ``jax.random`` (bit-identical to jax.nn.initializers) for every key, except keys of
    jaxinit's fast generator (``jaxinit.fast_key`` / ``jaxinit.fast(init)``), which draw
    through ``jaxinit.initializers._fast``: same distributions, other values, several times faster.
    Decided at trace time from the key's dtype; the same signatures as jax.random.
    """
    return sampler(_fast if _fast.is_fast_key(key) else jax.random)


def _truncated_normal(key: Array, lower: float, upper: float, shape: Shape, dtype: Any) -> Array:
    """N(0, 1) cut to (lower, upper); windows far in one tail drawn in log space (exact)."""
    if _truncnorm.is_far(lower, upper):
        return _truncnorm.far_tail(_rng(key).uniform, key, lower, upper, shape, dtype)
    return _rng(key).truncated_normal(key, lower, upper, shape, dtype)


def _random_prologue(
    fn: str, key: Array, shape: Shape, dtype: DTypeLike, allow_complex: bool = False
) -> tuple[Shape, np.dtype]:
    check_key(fn, key)
    return check_shape(fn, shape), check_dtype(fn, dtype, allow_complex=allow_complex)


@initializer
def normal(stddev: float = 1e-2, dtype: DTypeLike = None) -> Initializer:
    r"""Normal :math:`\mathcal N(0, \mathrm{stddev}^2)`; same as ``jax.nn.initializers.normal``.

    Args:
      stddev: standard deviation (> 0). jax's default 0.01; Keras uses 0.05, see
        :func:`random_normal`.
      dtype: default dtype of the output (float or complex).

    Half precision: bit-identical to jax (see the module docstring).

    Example:
      >>> w = jaxinit.normal(0.02)(jax.random.key(0), (256, 512))
      >>> w.shape, w.dtype
      ((256, 512), dtype('float32'))
      >>> round(float(w.std()), 3)  # stddev
      0.02
    """
    check_positive("normal", "stddev", stddev)

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        shape, dtype = _random_prologue("normal", key, shape, dtype, allow_complex=True)
        check_in_dtype("normal", "stddev", stddev, dtype, allow_underflow=False, reach=7)
        work = wide_dtype(dtype, parity=True)  # float8: drawn in float32, rounded once
        return (_rng(key).normal(key, shape, work) * jnp.array(stddev, work)).astype(dtype)

    return with_out_sharding("normal", init)


@initializer
def uniform(scale: float = 1e-2, dtype: DTypeLike = None) -> Initializer:
    r"""Uniform on :math:`[0, \mathrm{scale})`; same as ``jax.nn.initializers.uniform``.

    Note the range is **not** symmetric (jax's convention). For :math:`U[a, b)` use
    :func:`random_uniform` (Keras) or :func:`torch_uniform`.

    Half precision: bit-identical to jax (see the module docstring).

    Example:
      >>> w = jaxinit.uniform(0.1)(jax.random.key(0), (256, 512))
      >>> bool(w.min() >= 0.0), bool(w.max() < 0.1)  # [0, scale)
      (True, True)
      >>> round(float(w.mean()), 2)  # scale / 2
      0.05
    """
    check_positive("uniform", "scale", scale)

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        shape, dtype = _random_prologue("uniform", key, shape, dtype)
        check_in_dtype("uniform", "scale", scale, dtype, allow_underflow=False)
        work = wide_dtype(dtype, parity=True)  # float8: drawn in float32, rounded once
        return (_rng(key).uniform(key, shape, work) * jnp.array(scale, work)).astype(dtype)

    return with_out_sharding("uniform", init)


@initializer
def truncated_normal(
    stddev: float = 1e-2, dtype: DTypeLike = None, lower: float = -2.0, upper: float = 2.0
) -> Initializer:
    r"""Normal truncated to :math:`(\mathrm{lower}\cdot\sigma, \mathrm{upper}\cdot\sigma)`.

    Same as ``jax.nn.initializers.truncated_normal``: ``stddev`` is the standard deviation
    of the *untruncated* normal and bounds are in units of it, so the sample standard
    deviation is smaller (0.88 σ for ±2). The variance-scaling schemes correct for this.

    Half precision: bit-identical to jax (see the module docstring).

    Example:
      >>> w = jaxinit.truncated_normal(0.02)(jax.random.key(0), (256, 512))
      >>> bool(jnp.abs(w).max() <= 2 * 0.02)  # cut at ±2 stddev
      True
      >>> round(float(w.std()), 3)  # the cut narrows it: 0.88 × stddev
      0.018
    """
    fn = "truncated_normal"
    check_positive(fn, "stddev", stddev)
    check_finite(fn, "lower", lower)
    check_finite(fn, "upper", upper)
    lower, upper = float(lower), float(upper)  # numpy values never reach jax's conversions
    if not lower < upper:
        raise ValueError(f"{fn}: lower={lower!r} must be smaller than upper={upper!r}")

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        shape, dtype = _random_prologue(fn, key, shape, dtype)
        check_in_dtype(fn, "lower", lower, dtype)
        check_in_dtype(fn, "upper", upper, dtype)
        reach = max(abs(lower), abs(upper))
        check_in_dtype(fn, "stddev", stddev, dtype, allow_underflow=False, reach=reach)
        work = wide_dtype(dtype, parity=True)  # float8: drawn in float32, rounded once
        z = _truncated_normal(key, lower, upper, shape, work)
        return (z * jnp.array(stddev, work)).astype(dtype)

    return with_out_sharding(fn, init)


def _shifted_normal(fn: str, mean: float, stddev: float, dtype: DTypeLike) -> Initializer:
    check_finite(fn, "mean", mean)
    check_positive(fn, "stddev", stddev)

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        shape, dtype = _random_prologue(fn, key, shape, dtype)
        check_in_dtype(fn, "mean", mean, dtype)
        check_in_dtype(fn, "stddev", stddev, dtype, allow_underflow=False, reach=7)
        label = f"mean ± 7·stddev = {abs(mean) + 7 * stddev:.4g}"
        check_in_dtype(fn, "stddev", abs(mean) + 7 * stddev, dtype, label=label)
        work = wide_dtype(dtype)  # half precision: drawn in float32, rounded once
        x = _rng(key).normal(key, shape, work) * jnp.array(stddev, work) + jnp.array(mean, work)
        return x.astype(dtype)

    return with_out_sharding(fn, init)


def _uniform_between(
    fn: str, lo: float, hi: float, dtype: DTypeLike, names: tuple[str, str] | None = None
) -> Initializer:
    """U[lo, hi); ``names``: the user's arguments for lo and hi (``("minval", "maxval")``)."""
    lo_arg, hi_arg = names or ("lower bound", "upper bound")
    check_finite(fn, lo_arg, lo)
    check_finite(fn, hi_arg, hi)
    if not lo < hi:
        if names:
            raise ValueError(f"{fn}: {lo_arg}={lo!r} must be smaller than {hi_arg}={hi!r}")
        raise ValueError(f"{fn}: the lower bound {lo!r} must be smaller than the upper {hi!r}")

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        shape, dtype = _random_prologue(fn, key, shape, dtype)
        check_in_dtype(fn, lo_arg, lo, dtype)
        check_in_dtype(fn, hi_arg, hi, dtype)
        width = f"the width {hi_arg} - {lo_arg}" if names else "the width upper - lower"
        check_in_dtype(fn, width, hi - lo, dtype, allow_underflow=False)
        work = wide_dtype(dtype)  # half precision: drawn in float32, rounded once
        x = _rng(key).uniform(key, shape, work, lo, hi)
        if work == dtype:
            return x
        # Rounding may reach the excluded upper bound: keep [lo, hi) in the output dtype.
        x, top = x.astype(dtype), jnp.array(hi, dtype)
        if float(np.array(hi, dtype)) < hi:  # hi rounds down: top is inside [lo, hi)
            return jnp.where(x > top, top, x)
        return jnp.where(x >= top, jnp.nextafter(top, jnp.array(lo, dtype)), x)

    return with_out_sharding(fn, init)


def _shifted_truncated_normal(
    fn: str,
    mean: float,
    stddev: float,
    lo: float,
    hi: float,
    dtype: DTypeLike,
    names: tuple[str, str] | None = None,
) -> Initializer:
    """N(mean, stddev²) cut to the absolute interval [lo, hi]; ``names``: the user's
    arguments for lo and hi (torch's ``("a", "b")``), else they are derived bounds."""
    lo_arg, hi_arg = names or ("lower bound", "upper bound")
    check_finite(fn, "mean", mean)
    check_positive(fn, "stddev", stddev)
    check_finite(fn, lo_arg, lo)
    check_finite(fn, hi_arg, hi)
    if not lo < hi:
        what = (
            f"{lo_arg}={lo!r} must be smaller than {hi_arg}={hi!r}"
            if names
            else f"the lower bound {lo!r} must be smaller than the upper {hi!r}"
        )
        raise ValueError(f"{fn}: {what} (mean={mean!r}, stddev={stddev!r})")
    lo_z, hi_z = float((lo - mean) / stddev), float((hi - mean) / stddev)

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        shape, dtype = _random_prologue(fn, key, shape, dtype)
        for arg, v in (("mean", mean), (lo_arg, lo), (hi_arg, hi),
                       (f"{lo_arg} - mean", lo - mean), (f"{hi_arg} - mean", hi - mean)):  # fmt: skip
            label = f"{arg} = {v:.4g} (mean={mean!r}, stddev={stddev!r})"
            check_in_dtype(fn, arg, v, dtype, label=label)
        for arg, v in ((lo_arg, lo_z), (hi_arg, hi_z)):
            label = f"{arg} in units of stddev = {v:.4g} (mean={mean!r}, stddev={stddev!r})"
            check_in_dtype(fn, arg, v, dtype, label=label)
        check_in_dtype(fn, "stddev", stddev, dtype, allow_underflow=False)
        work = wide_dtype(dtype)  # half precision: drawn in float32, rounded once
        z = _truncated_normal(key, lo_z, hi_z, shape, work)
        return (z * jnp.array(stddev, work) + jnp.array(mean, work)).astype(dtype)

    return with_out_sharding(fn, init)


@initializer
def random_normal(mean: float = 0.0, stddev: float = 0.05, dtype: DTypeLike = None) -> Initializer:
    r"""Keras ``RandomNormal``: :math:`\mathcal N(\mathrm{mean}, \mathrm{stddev}^2)`.

    Example:
      >>> w = jaxinit.random_normal(mean=1.0, stddev=0.05)(jax.random.key(0), (256, 512))
      >>> round(float(w.mean()), 2), round(float(w.std()), 2)
      (1.0, 0.05)
    """
    return _shifted_normal("random_normal", mean, stddev, dtype)


@initializer
def random_uniform(
    minval: float = -0.05, maxval: float = 0.05, dtype: DTypeLike = None
) -> Initializer:
    r"""Keras ``RandomUniform``: :math:`U[\mathrm{minval}, \mathrm{maxval})`.

    Example:
      >>> w = jaxinit.random_uniform(-0.1, 0.1)(jax.random.key(0), (256, 512))
      >>> bool(w.min() >= -0.1), bool(w.max() < 0.1)
      (True, True)
    """
    return _uniform_between("random_uniform", minval, maxval, dtype, ("minval", "maxval"))


@initializer
def random_truncated_normal(
    mean: float = 0.0, stddev: float = 0.05, dtype: DTypeLike = None
) -> Initializer:
    r"""Keras ``TruncatedNormal``: :math:`\mathcal N(\mathrm{mean}, \sigma^2)` cut at mean ± 2σ.

    Example:
      >>> w = jaxinit.random_truncated_normal(stddev=0.05)(jax.random.key(0), (256, 512))
      >>> bool(jnp.abs(w).max() <= 2 * 0.05)  # cut at mean ± 2 stddev
      True
    """
    fn = "random_truncated_normal"
    check_finite(fn, "mean", mean)  # before the bounds are computed from them
    check_positive(fn, "stddev", stddev)
    return _shifted_truncated_normal(fn, mean, stddev, mean - 2 * stddev, mean + 2 * stddev, dtype)


# --------------------------------------------------------------------------- variance scaling


def _complex_uniform(key: Array, shape: Shape, dtype: np.dtype) -> Array:
    """Uniform on the disk of radius √2 in the complex plane: mean 0, variance 1."""
    key_r, key_theta = jax.random.split(key)
    real = np.array(0, dtype).real.dtype
    r = jnp.sqrt(2 * jax.random.uniform(key_r, shape, real)).astype(dtype)
    theta = 2 * np.pi * jax.random.uniform(key_theta, shape, real).astype(dtype)
    return r * jnp.exp(1j * theta)


def _complex_truncated_normal(key: Array, upper: float, shape: Shape, dtype: np.dtype) -> Array:
    """Complex standard normal (variance 1) with modulus truncated to ``upper``."""
    key_r, key_theta = jax.random.split(key)
    real = np.array(0, dtype).real.dtype
    t = (1 - jnp.exp(jnp.array(-(upper**2), dtype))) * jax.random.uniform(
        key_r, shape, real
    ).astype(dtype)
    r = jnp.sqrt(-jnp.log(1 - t))
    theta = 2 * np.pi * jax.random.uniform(key_theta, shape, real).astype(dtype)
    return r * jnp.exp(1j * theta)


Mode: TypeAlias = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
Distribution: TypeAlias = Literal["truncated_normal", "normal", "untruncated_normal", "uniform"]


def _variance_scaling(
    fn: str,
    scale: float,
    mode: str,
    distribution: str,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike = None,
    layout: str | None = None,
    *,
    fans: Callable[[Shape], tuple[float, float]] | None = None,
    wide: bool = False,
    warn_empty: bool = False,
) -> Initializer:
    """The core behind every variance-scaling scheme; ``fn`` names it in error messages.

    The keyword-only options serve the names jaxinit does not share with jax: ``fans``
    replaces the axis rule (Keras' fans), ``wide`` draws half precision in float32 and rounds
    once, ``warn_empty`` makes a zero-element shape a warned no-op as in torch.
    """
    check_positive(fn, "scale", scale)
    check_choice(fn, "mode", mode, MODES)
    check_choice(fn, "distribution", distribution, DISTRIBUTIONS)
    in_axis, out_axis = resolve_axes(fn, layout, in_axis, out_axis)
    batch_axis = check_axes(fn, "batch_axis", batch_axis)

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        check_key(fn, key)
        shape = check_shape(fn, shape)
        dtype = check_dtype(fn, dtype, allow_complex=True)
        if warn_empty and 0 in shape:
            warnings.warn(
                f"{fn}: shape {shape} has no elements; initializing zero-element tensors is a"
                " no-op (as in torch), so the empty array is returned",
                UserWarning,
                stacklevel=2,
            )
            return jnp.zeros(shape, dtype)
        if fans is None:
            fan_in, fan_out = fans_of(fn, shape, in_axis, out_axis, batch_axis)
        else:
            fan_in, fan_out = fans(shape)
        var = scale / fan_of_mode(mode, fan_in, fan_out)
        label = f"scale={scale!r} (variance scale/{mode} = {var:.4g} for shape {shape})"
        reach = 3 if distribution == "uniform" else 1  # the uniform bound is √(3·variance)
        check_in_dtype(fn, "scale", var, dtype, allow_underflow=False, label=label, reach=reach)
        out_dtype, dtype = dtype, wide_dtype(dtype, parity=not wide)
        return _scaled_draw(key, shape, dtype, scale / fan_of_mode(mode, fan_in, fan_out)).astype(
            out_dtype
        )

    def _scaled_draw(key: Array, shape: Shape, dtype: np.dtype, variance: float | Array) -> Array:
        variance = jnp.array(variance, dtype=dtype)
        is_real = jnp.issubdtype(dtype, jnp.floating)
        if distribution == "truncated_normal":
            if is_real:
                stddev = jnp.sqrt(variance) / jnp.array(TRUNCATED_STD, dtype)
                return _rng(key).truncated_normal(key, -2, 2, shape, dtype) * stddev
            stddev = jnp.sqrt(variance) / jnp.array(COMPLEX_TRUNCATED_STD, dtype)
            return _complex_truncated_normal(key, 2, shape, dtype) * stddev
        if distribution in ("normal", "untruncated_normal"):
            return _rng(key).normal(key, shape, dtype) * jnp.sqrt(variance)
        if is_real:
            return _rng(key).uniform(key, shape, dtype, -1) * jnp.sqrt(3 * variance)
        return _complex_uniform(key, shape, dtype) * jnp.sqrt(variance)

    return with_out_sharding(fn, init)


@initializer
def variance_scaling(
    scale: float,
    mode: Mode,
    distribution: Distribution,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike = None,
    *,
    layout: Layout | None = None,
) -> Initializer:
    r"""Zero-mean draws with variance :math:`\mathrm{scale}/n`, where n is the chosen fan.

    The one core of every Glorot / He / LeCun / torch-Kaiming scheme, identical to
    ``jax.nn.initializers.variance_scaling`` for the same arguments and key.

    * ``mode``: :math:`n` is ``fan_in``, ``fan_out``, ``fan_avg`` = (in + out)/2 or
      ``fan_geo_avg`` = √(in·out). Fans include the receptive field (kernel spatial size).
    * ``distribution``:
      ``"truncated_normal"`` — normal cut at ±2σ, rescaled by 1/0.8796 so the *truncated*
      draw has variance scale/n; ``"normal"`` (alias ``"untruncated_normal"``, Keras'
      spelling) — plain normal; ``"uniform"`` — :math:`U[-\sqrt{3\,scale/n}, +\sqrt{3\,scale/n}]`.
      Complex dtypes draw from a disk (uniform) or a modulus-truncated complex normal.
    * Axes: ``layout="flax"`` (``(..., in, out)``, the default) or ``"torch"`` /
      ``"equinox"`` (``(out, in, ...)``); explicit ``in_axis``/``out_axis`` (ints or
      sequences) override the layout; ``batch_axis`` axes are ignored for the fans. Every
      combination jax accepts is accepted with jax's arithmetic, overlapping ones included
      (flax's embedding init: ``variance_scaling(1.0, "fan_in", "normal", out_axis=0)``).
    * ``out_sharding`` (of the returned initializer, as in jax): a ``NamedSharding`` or,
      under ``jax.set_mesh``, a ``PartitionSpec``; the same values, sharded as asked.

    Note Keras' ``VarianceScaling(distribution="normal")`` means *truncated* normal; here,
    as in jax, ``"normal"`` is the plain normal.

    Example:
      >>> init = jaxinit.variance_scaling(2.0, "fan_in", "uniform")
      >>> w = init(jax.random.key(0), (256, 128))   # U[±√(6/256)]

    Half precision: bit-identical to jax (see the module docstring).
    """
    return _variance_scaling(
        "variance_scaling", scale, mode, distribution, in_axis, out_axis, batch_axis, dtype, layout
    )


@initializer
def glorot_uniform(
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike = None,
    *,
    layout: Layout | None = None,
) -> Initializer:
    r"""Glorot & Bengio 2010 "normalized" init: :math:`U[\pm\sqrt{6/(n_{in}+n_{out})}]`.

    ``variance_scaling(1.0, "fan_avg", "uniform")``; for tanh, logistic, softmax or no
    activation. Some write-ups put σ in the numerator of the bound; the paper's bound is
    √6/√(fan_in + fan_out). Alias ``xavier_uniform``.

    Half precision: bit-identical to jax (see the module docstring).

    Example:
      >>> w = jaxinit.glorot_uniform()(jax.random.key(0), (256, 128))  # (in, out)
      >>> bool(jnp.abs(w).max() <= (6 / (256 + 128)) ** 0.5)
      True
      >>> round(float(w.var() * (256 + 128) / 2), 1)  # variance 2/(n_in + n_out)
      1.0
    """
    args = (in_axis, out_axis, batch_axis, dtype, layout)
    return _variance_scaling("glorot_uniform", 1.0, "fan_avg", "uniform", *args)


@initializer
def glorot_normal(
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike = None,
    *,
    layout: Layout | None = None,
) -> Initializer:
    r"""Glorot normal: truncated normal with σ = :math:`\sqrt{2/(n_{in}+n_{out})}`.

    ``variance_scaling(1.0, "fan_avg", "truncated_normal")``, as in jax and Keras (torch's
    ``xavier_normal_`` is a plain normal: :func:`torch_xavier_normal`). Some write-ups give
    σ = √(6/(in+out)), which is the *uniform* bound. Alias ``xavier_normal``.

    Half precision: bit-identical to jax (see the module docstring).

    Example:
      >>> w = jaxinit.glorot_normal()(jax.random.key(0), (256, 128))  # (in, out)
      >>> round(float(w.var() * (256 + 128) / 2), 1)  # variance 2/(n_in + n_out)
      1.0
    """
    args = (in_axis, out_axis, batch_axis, dtype, layout)
    return _variance_scaling("glorot_normal", 1.0, "fan_avg", "truncated_normal", *args)


@initializer
def lecun_uniform(
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike = None,
    *,
    layout: Layout | None = None,
) -> Initializer:
    r"""LeCun uniform: :math:`U[\pm\sqrt{3/n_{in}}]`, ``variance_scaling(1.0, "fan_in", "uniform")``.

    Half precision: bit-identical to jax (see the module docstring).

    Example:
      >>> w = jaxinit.lecun_uniform()(jax.random.key(0), (256, 128))  # (in, out)
      >>> bool(jnp.abs(w).max() <= (3 / 256) ** 0.5)
      True
      >>> round(float(w.var() * 256), 1)  # variance 1/n_in
      1.0
    """
    args = (in_axis, out_axis, batch_axis, dtype, layout)
    return _variance_scaling("lecun_uniform", 1.0, "fan_in", "uniform", *args)


@initializer
def lecun_normal(
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike = None,
    *,
    layout: Layout | None = None,
) -> Initializer:
    r"""LeCun normal: truncated normal with variance :math:`1/n_{in}`.

    ``variance_scaling(1.0, "fan_in", "truncated_normal")``: flax's default kernel init and
    the init that makes SELU networks self-normalising (Klambauer et al. 2017).

    Half precision: bit-identical to jax (see the module docstring).

    Example:
      >>> w = jaxinit.lecun_normal()(jax.random.key(0), (256, 128))  # (in, out)
      >>> round(float(w.var() * 256), 1)  # variance 1/n_in
      1.0
    """
    args = (in_axis, out_axis, batch_axis, dtype, layout)
    return _variance_scaling("lecun_normal", 1.0, "fan_in", "truncated_normal", *args)


@initializer
def he_uniform(
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike = None,
    *,
    layout: Layout | None = None,
) -> Initializer:
    r"""He et al. 2015 uniform: :math:`U[-\sqrt{6/n_{in}}, +\sqrt{6/n_{in}}]`.

    ``variance_scaling(2.0, "fan_in", "uniform")``, for ReLU and its variants. Both bounds
    use fan_in (a common write-up puts fan_out in the upper bound). Alias ``kaiming_uniform``.

    Half precision: bit-identical to jax (see the module docstring).

    Example:
      >>> w = jaxinit.he_uniform()(jax.random.key(0), (256, 128))  # (in, out)
      >>> bool(jnp.abs(w).max() <= (6 / 256) ** 0.5)
      True
      >>> round(float(w.var() * 256 / 2), 1)  # variance 2/n_in
      1.0
    """
    args = (in_axis, out_axis, batch_axis, dtype, layout)
    return _variance_scaling("he_uniform", 2.0, "fan_in", "uniform", *args)


@initializer
def he_normal(
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike = None,
    *,
    layout: Layout | None = None,
) -> Initializer:
    r"""He normal: truncated normal with variance :math:`2/n_{in}`.

    ``variance_scaling(2.0, "fan_in", "truncated_normal")`` as in jax and Keras; torch's
    ``kaiming_normal_`` is a plain normal (:func:`torch_kaiming_normal`). Alias
    ``kaiming_normal``.

    Half precision: bit-identical to jax (see the module docstring).

    Example:
      >>> w = jaxinit.he_normal()(jax.random.key(0), (256, 128))  # (in, out)
      >>> round(float(w.var() * 256 / 2), 1)  # variance 2/n_in
      1.0
      >>> w_t = jaxinit.he_normal(layout="torch")(jax.random.key(0), (128, 256))  # (out, in)
      >>> round(float(w_t.var() * 256 / 2), 1)
      1.0
    """
    args = (in_axis, out_axis, batch_axis, dtype, layout)
    return _variance_scaling("he_normal", 2.0, "fan_in", "truncated_normal", *args)


xavier_uniform = glorot_uniform
"""The same function as :func:`glorot_uniform` (jax's alias)."""
xavier_normal = glorot_normal
"""The same function as :func:`glorot_normal` (jax's alias)."""
kaiming_uniform = he_uniform
"""The same function as :func:`he_uniform` (jax's alias; torch's is ``torch_kaiming_uniform``)."""
kaiming_normal = he_normal
"""The same function as :func:`he_normal` (jax's alias: a truncated normal; torch's plain
normal is ``torch_kaiming_normal``)."""


@initializer
def glorot_bengio_standard(
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike = None,
    *,
    layout: Layout | None = None,
) -> Initializer:
    r"""The "standard" heuristic of Glorot & Bengio 2010 (their eq. 1): :math:`U[\pm 1/\sqrt{n_{in}}]`.

    The baseline their normalized init (:func:`glorot_uniform`) is compared against;
    variance 1/(3 n_in), i.e. ``variance_scaling(1/3, "fan_in", "uniform")``, the same
    distribution as torch's default Linear init.

    Example:
      >>> w = jaxinit.glorot_bengio_standard()(jax.random.key(0), (256, 128))  # (in, out)
      >>> bool(jnp.abs(w).max() <= 1 / 16)  # 1/√256
      True
      >>> round(float(w.var() * 256 * 3), 1)  # variance 1/(3 n_in)
      1.0
    """
    args = (in_axis, out_axis, batch_axis, dtype, layout)
    return _variance_scaling("glorot_bengio_standard", 1 / 3, "fan_in", "uniform", *args, wide=True)
