"""Keras names with Keras' meaning: ``jaxinit.get("<Keras class name>", **keras_kwargs)``.

Every name ``keras.initializers`` registers resolves here with Keras 3's arguments, defaults
and fan rules (``keras/src/initializers/random_initializers.py`` and
``constant_initializers.py``), returning the usual ``init(key, shape, dtype)``:

* ``VarianceScaling(scale=1.0, mode="fan_in", distribution="truncated_normal",
  seed=None, input_axes=None, output_axes=None)``: modes ``fan_in``/``fan_out``/``fan_avg``,
  ``"normal"`` means the *truncated* normal (Keras' legacy spelling), and a bad scale, mode
  or distribution is a ValueError when the initializer is built.
* ``GlorotUniform``, ``GlorotNormal``, ``HeUniform``, ``HeNormal``, ``LecunUniform``,
  ``LecunNormal`` (``seed=None, input_axes=None, output_axes=None``).
* Keras' fans: rank 0 → 1, rank 1 → fan_in = fan_out = size, rank 2 → ``(in, out)``,
  higher ranks ``(*receptive field, in, out)``; with ``input_axes`` and ``output_axes`` (Keras
  3, e.g. ``EinsumDense`` kernels) the fans are the products of those axes' sizes. A fan of
  zero counts as 1 (``max(1, fan)``), so an empty shape gives an empty array.
* ``Orthogonal(gain=1.0)`` (alias ``OrthogonalInitializer``), ``RandomNormal``,
  ``RandomUniform``, ``TruncatedNormal`` (``mean``/``stddev``, ``minval``/``maxval``),
  ``Constant(value=0.0)``, ``Zeros``, ``Ones`` (``zero``, ``one``), ``Identity(gain=1.0)``
  (``IdentityInitializer``), ``STFT`` (``STFTInitializer``, ``stft``).

Half precision: every draw is made in float32 and rounded once to the requested dtype.
For a float32 output and a shape of rank >= 2 without axes, ``get("HeNormal")`` gives the
same bits as ``jaxinit.he_normal()`` for the same key.

Keras' ``seed=`` is accepted only as ``None``: a jaxinit initializer receives its key when
it is called, ``init(jax.random.key(seed), shape)``. Keras' snake_case spellings that are
also jax names (``glorot_uniform``, ``orthogonal``, ``normal``, ``uniform``,
``truncated_normal``, ``variance_scaling``...) keep jax's meaning; see "Same
name, same numbers" (docs/guide/parity.md) for the differences that remain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxinit._checks import (
    check_choice,
    check_dtype,
    check_finite,
    check_positive,
    check_shape,
)
from jaxinit._fans import check_axes, normalize_axes
from jaxinit._law import Structured
from jaxinit._types import Array, Axes, DTypeLike, Initializer, Shape
from jaxinit._values import declare, initializer
from jaxinit.initializers import _core, _registry
from jaxinit.initializers._core import _variance_scaling
from jaxinit.initializers._protocol import with_out_sharding
from jaxinit.initializers._registry import Scheme, register
from jaxinit.initializers._structured import identity, orthogonal

KERAS_MODES = ("fan_in", "fan_out", "fan_avg")
KERAS_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


def _check_seed(fn: str, seed: Any) -> None:
    if seed is not None:
        raise TypeError(
            f"{fn}: seed={seed!r} is not taken; a jaxinit initializer gets its key when called:"
            " init(jax.random.key(seed), shape, dtype)"
        )


def keras_fans(
    fn: str, input_axes: Axes | None = None, output_axes: Axes | None = None
) -> Callable[[Shape], tuple[float, float]]:
    """Keras 3's ``compute_fans(shape, input_axes, output_axes)``, each fan at least 1."""
    if (input_axes is None) != (output_axes is None):
        given = "input_axes" if output_axes is None else "output_axes"
        raise ValueError(
            f"{fn}: {given} is given without {'output_axes' if output_axes is None else 'input_axes'};"
            " give both (the fans are the products of those axes' sizes) or neither"
        )
    if input_axes is not None:
        input_axes = check_axes(fn, "input_axes", input_axes)
        output_axes = check_axes(fn, "output_axes", output_axes)

    def fans(shape: Shape) -> tuple[float, float]:
        if input_axes is not None and output_axes is not None:  # both or neither
            ins = normalize_axes(fn, "input_axes", input_axes, shape)
            outs = normalize_axes(fn, "output_axes", output_axes, shape)
            fan_in = math.prod(shape[a] for a in ins)
            fan_out = math.prod(shape[a] for a in outs)
        elif len(shape) == 0:
            fan_in = fan_out = 1
        elif len(shape) == 1:
            fan_in = fan_out = shape[0]
        else:
            receptive = math.prod(shape[:-2])
            fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        return float(max(1, fan_in)), float(max(1, fan_out))

    return fans


@initializer(name="VarianceScaling")
def keras_variance_scaling(
    scale: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "truncated_normal",
    seed: None = None,
    input_axes: Sequence[int] | None = None,
    output_axes: Sequence[int] | None = None,
    *,
    dtype: DTypeLike = None,
) -> Initializer:
    r"""Keras 3 ``VarianceScaling``: zero-mean draws of variance :math:`\mathrm{scale}/n`.

    ``n`` is fan_in, fan_out or their mean, by Keras' fan rule (rank 1: the size;
    ``input_axes``/``output_axes``: products of those axes). ``distribution`` is
    ``"truncated_normal"`` (cut at ±2σ, rescaled to the variance; ``"normal"`` is Keras'
    alias of it), ``"untruncated_normal"`` or ``"uniform"`` (``U[±√(3·scale/n)]``).

    >>> init = jaxinit.get("VarianceScaling")                       # scale 1, fan_in, truncated
    >>> init = jaxinit.get("VarianceScaling", input_axes=[0], output_axes=[1, 2])
    >>> w = init(jax.random.key(0), (512, 8, 64))                    # fan_in 512
    """
    fn = "VarianceScaling"
    _check_seed(fn, seed)
    check_positive(fn, "scale", scale)
    check_choice(fn, "mode", mode, KERAS_MODES)
    if not isinstance(distribution, str):
        raise TypeError(f"{fn}: distribution must be a string, got {distribution!r}")
    distribution = distribution.lower()
    if distribution == "normal":  # Keras: "normal" is the truncated normal
        distribution = "truncated_normal"
    check_choice(fn, "distribution", distribution, KERAS_DISTRIBUTIONS)
    fans = keras_fans(fn, input_axes, output_axes)
    return _variance_scaling(fn, scale, mode, distribution, dtype=dtype, fans=fans, wide=True)


def _keras_fixed(fn: str, scale: float, mode: str, distribution: str) -> Callable[..., Initializer]:
    def factory(
        seed: None = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
        *,
        dtype: DTypeLike = None,
    ) -> Initializer:
        _check_seed(fn, seed)
        fans = keras_fans(fn, input_axes, output_axes)
        return _variance_scaling(fn, scale, mode, distribution, dtype=dtype, fans=fans, wide=True)

    factory.__name__ = factory.__qualname__ = fn
    factory.__doc__ = (
        f"Keras ``{fn}``: ``VarianceScaling(scale={scale}, mode={mode!r},"
        f" distribution={distribution!r})`` with Keras' fans; half precision via float32."
    )
    return initializer(factory)


@initializer(name="Orthogonal")
def keras_orthogonal(gain: float = 1.0, seed: None = None, *, dtype: DTypeLike = None):
    """Keras ``Orthogonal(gain)``: rows = all axes but the last, flattened; times ``gain``;
    its config names the option ``gain``, as Keras' does.

    >>> jaxinit.get("Orthogonal", gain=2.0).get_config()["config"]
    {'gain': 2.0}
    """
    _check_seed("Orthogonal", seed)
    return orthogonal(scale=gain, column_axis=-1, dtype=dtype)


def _keras_random(fn: str, factory: Callable[..., Initializer]) -> Callable[..., Initializer]:
    def keras_factory(*args: Any, seed: None = None, **kwargs: Any) -> Initializer:
        _check_seed(fn, seed)
        return factory(*args, **kwargs)

    keras_factory.__name__ = keras_factory.__qualname__ = fn
    keras_factory.__doc__ = f"Keras ``{fn}``: :func:`jaxinit.{factory.__name__}` (Keras' defaults)."
    return keras_factory


def keras_constant(value: Any = 0.0, *, dtype: DTypeLike = None) -> Initializer:
    """Keras ``Constant(value=0.0)``: every entry ``value`` (a scalar or broadcastable array)."""
    return _core.constant(value, dtype)


# --------------------------------------------------------------------------- STFT

_SIDES = ("real", "imag")
_SCALINGS = ("density", "spectrum")


def _scipy_window(fn: str, window: str, n: int, periodic: bool) -> np.ndarray:
    try:
        import scipy.signal
    except ImportError as e:  # pragma: no cover - scipy is a test dependency
        raise ImportError(
            f"{fn}: window={window!r} needs scipy (scipy.signal.get_window); install scipy or"
            " pass the window's values as a 1-D array"
        ) from e
    try:
        return np.asarray(scipy.signal.get_window(window, n, fftbins=periodic), np.float64)
    except ValueError as e:
        raise ValueError(
            f"{fn}: window={window!r} is not a scipy.signal.windows window ({e})"
        ) from e


@initializer
def stft(
    side: str = "real",
    window: str | Sequence[float] | None = "hann",
    scaling: str | None = "density",
    periodic: bool = False,
    dtype: DTypeLike = None,
) -> Initializer:
    r"""Keras ``STFT``: a conv kernel ``(frame_length, channels, fft_bins)`` computing an STFT.

    Entry ``(t, c, f)`` is :math:`\cos(-2\pi t f / N)` (``side="real"``) or
    :math:`\sin(-2\pi t f / N)` (``side="imag"``), :math:`N = 2(\mathrm{fft\_bins} - 1)`,
    times the window :math:`w_t` divided by :math:`\sqrt{\sum w^2}` (``scaling="density"``)
    or :math:`\sum |w|` (``"spectrum"``); ``window=None`` uses no window and no scaling.
    ``window`` is a ``scipy.signal.get_window`` name (needs scipy; ``periodic=True`` gives the
    periodic window) or the window's values. Computed in float64 and rounded once. The key
    is ignored. Keras returns ``(frame_length, 1, fft_bins)`` whatever the channel count;
    here every channel gets the same kernel so the shape is the one asked for.

    >>> w = jaxinit.get("STFT", side="imag", window="hamming")(None, (256, 1, 129))
    """
    fn = "stft"
    check_choice(fn, "side", side, _SIDES)
    if scaling is not None:
        check_choice(fn, "scaling", scaling, _SCALINGS)
    if isinstance(window, str):
        _scipy_window(fn, window, 1, bool(periodic))  # an unknown window fails here
    elif window is not None:
        values = np.asarray(window, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"{fn}: window values must be 1-D, got shape {values.shape}")
        check_finite(fn, "window", values, array=True)

    def init(key: Array | None, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        shape = check_shape(fn, shape)
        dtype = check_dtype(fn, dtype, allow_complex=False)
        if len(shape) != 3 or shape[2] < 2:
            raise ValueError(
                f"{fn}: shape {shape} must be (frame_length, channels, fft_bins) with fft_bins >= 2"
            )
        frame_length, _, bins = shape
        t = np.arange(frame_length, dtype=np.float64)[:, None, None]
        f = np.arange(bins, dtype=np.float64)[None, None, :] / (2 * (bins - 1))
        angle = -2 * np.pi * t * f
        kernel = np.cos(angle) if side == "real" else np.sin(angle)
        if window is not None:
            if isinstance(window, str):
                win = _scipy_window(fn, window, frame_length, bool(periodic))
            else:
                win = np.asarray(window, dtype=np.float64)
            if win.shape != (frame_length,):
                raise ValueError(
                    f"{fn}: the window has {win.shape[0]} values; shape {shape} needs"
                    f" frame_length={frame_length}"
                )
            norm = 1.0
            if scaling == "density":
                norm = np.sqrt(np.sum(win**2))
            elif scaling == "spectrum":
                norm = np.sum(np.abs(win))
            kernel = kernel * win[:, None, None] / norm
        return jnp.asarray(np.broadcast_to(kernel, shape), dtype=dtype)

    return declare(with_out_sharding(fn, init), Structured(f"STFT {side} kernel (fixed)"))


# --------------------------------------------------------------------------- registry

register(
    Scheme(
        "stft",
        stft,
        "structured",
        "deterministic: windowed cos / sin of the DFT at each (time, frequency)",
        "0 (a fixed transform)",
        ("none",),
        "Keras keras.initializers.STFT (STFTSpectrogram)",
        aliases=("STFT", "STFTInitializer"),
        keyed=False,
    )
)

_registry._SPELLINGS.update(
    {
        "VarianceScaling": keras_variance_scaling,
        "GlorotUniform": _keras_fixed("GlorotUniform", 1.0, "fan_avg", "uniform"),
        "GlorotNormal": _keras_fixed("GlorotNormal", 1.0, "fan_avg", "truncated_normal"),
        "HeUniform": _keras_fixed("HeUniform", 2.0, "fan_in", "uniform"),
        "HeNormal": _keras_fixed("HeNormal", 2.0, "fan_in", "truncated_normal"),
        "LecunUniform": _keras_fixed("LecunUniform", 1.0, "fan_in", "uniform"),
        "LecunNormal": _keras_fixed("LecunNormal", 1.0, "fan_in", "truncated_normal"),
        "Orthogonal": keras_orthogonal,
        "OrthogonalInitializer": keras_orthogonal,
        "RandomNormal": _keras_random("RandomNormal", _core.random_normal),
        "random_normal": _keras_random("RandomNormal", _core.random_normal),
        "RandomUniform": _keras_random("RandomUniform", _core.random_uniform),
        "random_uniform": _keras_random("RandomUniform", _core.random_uniform),
        "TruncatedNormal": _keras_random("TruncatedNormal", _core.random_truncated_normal),
        "Constant": keras_constant,
        "Identity": identity,
        "IdentityInitializer": identity,
    }
)
