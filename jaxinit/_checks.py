"""Argument checks shared by every layer (initializers, rules, study, theory): a bottom module.

Options are checked when a factory is called, shapes and dtypes when the initializer is
called (shapes are static under jit, so these checks never see a tracer). Every message
names the initializer, the argument, the value and what is allowed.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def default_float() -> np.dtype:
    """The float dtype jax uses by default (float32, or float64 with jax_enable_x64)."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def check_choice(fn: str, arg: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(
            f"{fn}: {arg}={value!r} is not supported; allowed: {', '.join(map(repr, allowed))}"
        )
    return value


def check_positive(fn: str, arg: str, value: Any, *, allow_zero: bool = False) -> None:
    """Reject non-finite or non-positive numbers; traced values are left to the caller.

    Python and numpy scalars and 0-d arrays are accepted; strings, bools, complex numbers
    and arrays with elements are a TypeError.
    """
    if isinstance(value, jax.core.Tracer):
        return
    try:
        x = as_real(fn, arg, value)
    except ValueError:  # NaN or infinity
        x = math.nan
    ok = math.isfinite(x) and (x >= 0 if allow_zero else x > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{fn}: {arg} must be finite and {bound}, got {_show(value)}")


def check_finite(fn: str, arg: str, value: Any, *, array: bool = False) -> None:
    """A finite real number (numpy scalars and 0-d arrays included); with ``array``, also
    an array of numbers (bools count as 0 and 1)."""
    if isinstance(value, jax.core.Tracer):
        return
    if not array:
        as_real(fn, arg, value)
        return
    x = np.asarray(value)
    if x.dtype == object or not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == np.bool_):
        raise TypeError(f"{fn}: {arg} must be a number, got {value!r}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{fn}: {arg} must be a finite number, got {_show(value)}")


def squared(fn: str, arg: str, value: Any) -> float:
    """``value**2`` as a float, or a ValueError naming ``arg`` when it overflows float64."""
    x = as_real(fn, arg, value)
    if abs(x) > 1e150:
        raise ValueError(f"{fn}: {arg}={value!r} is too large: {arg}**2 overflows float64")
    if x != 0 and x * x == 0:
        raise ValueError(f"{fn}: {arg}={value!r} is too small: {arg}**2 rounds to 0")
    return x * x


def _legacy_key_shapes() -> tuple[tuple[int, ...], ...]:
    """Shapes of legacy uint32 keys: threefry's (2,), and the default implementation's."""
    shapes = {(2,)}
    impl = getattr(jax.config, "jax_default_prng_impl", "threefry2x32")
    if impl == "rbg" or impl == "unsafe_rbg":
        shapes.add((4,))
    return tuple(sorted(shapes))


def _is_int_seed(key: Any) -> bool:
    """A Python or numpy int, or a concrete 0-d integer array (``jnp.int32(0)``)."""
    if isinstance(key, bool | jax.core.Tracer):
        return False
    if isinstance(key, int | np.integer):
        return True
    dtype = getattr(key, "dtype", None)
    return (
        getattr(key, "shape", None) == ()
        and dtype is not None
        and np.issubdtype(
            np.dtype(dtype) if not jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) else float,
            np.integer,
        )
    )


def check_key(fn: str, key: Any, arg: str = "key", *, allow_int: bool = False) -> None:
    """Accept one typed key (``jax.random.key``) or one legacy uint32 key (``PRNGKey``).

    A legacy key is a uint32 array of shape (2,) (threefry, jax's default); any other
    uint32 array, a batch of keys, a Python int or a float array is refused with a message
    naming ``fn`` and ``arg``. With ``allow_int``, an int seed (Python or numpy, as
    ``jax.random.key`` takes it: in [-2**63, 2**63)) is accepted too.
    """
    if allow_int and _is_int_seed(key):
        if not -(2**63) <= int(key) < 2**63:
            raise ValueError(
                f"{fn}: {arg}={key!r} is not a valid seed; an int seed must be in"
                " [-2**63, 2**63) (jax.random.key's range)"
            )
        return
    if isinstance(key, jax.core.Tracer) and not hasattr(key, "dtype"):
        return
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(
                f"{fn}: {arg} must be a single PRNG key of shape (), got a batch of shape"
                f" {shape}; use jax.vmap to initialize several members"
            )
        return
    need = "a PRNG key from jax.random.key(seed) or jax.random.PRNGKey(seed)"
    if allow_int:
        need = "an int seed or " + need
    if dtype == jnp.uint32 and shape is not None:
        shape = tuple(shape)
        if shape in _legacy_key_shapes():
            return
        if len(shape) >= 2 and shape[-1:] == (2,):
            got = f"a batch of legacy keys of shape {shape}; use jax.vmap to initialize several"
        else:
            got = f"a uint32 array of shape {shape} (a legacy key has shape (2,))"
        raise TypeError(f"{fn}: {arg} must be {need}, got {got}")
    got = f"{type(key).__name__}" + (f" with dtype {dtype} and shape {shape}" if dtype else "")
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        got += f" {key!r} (pass jax.random.key({key!r}) instead)"
    raise TypeError(f"{fn}: {arg} must be {need}, got {got}")


# XLA aborts the process (C++ terminate) when an array's byte size overflows int64, before
# any allocation is tried. 2**58 elements of the widest dtype (complex128, 16 bytes) plus
# an intermediate of the same size stay below 2**63 bytes; anything smaller but too large
# for the device fails with jax's ordinary out-of-memory error.
MAX_ELEMENTS = 2**58


def check_shape(fn: str, shape: Any) -> tuple[int, ...]:
    """A tuple of non-negative ints (numpy ints and 0-d int arrays accepted), not too large."""
    if isinstance(shape, int | np.integer) or (isinstance(shape, np.ndarray) and shape.ndim == 0):
        shape = (shape,)
    if isinstance(shape, str | bytes) or (isinstance(shape, np.ndarray) and shape.ndim != 1):
        raise TypeError(f"{fn}: shape must be a sequence of ints, got {shape!r}")
    try:
        out = tuple(operator.index(d) for d in shape)
    except TypeError as e:
        raise TypeError(f"{fn}: shape must be a sequence of ints, got {shape!r}") from e
    if any(isinstance(d, bool | np.bool_) for d in shape):
        raise TypeError(f"{fn}: shape must be a sequence of ints, got {shape!r}")
    if any(d < 0 for d in out):
        raise ValueError(f"{fn}: shape {out} has a negative dimension")
    size = math.prod(out)
    if size > MAX_ELEMENTS or max(out, default=0) > MAX_ELEMENTS:
        raise ValueError(
            f"{fn}: shape {out} has {size:.3g} elements; at most 2**58 ({MAX_ELEMENTS:.3g})"
            " are supported (XLA cannot address larger arrays)"
        )
    return out


def check_dtype(
    fn: str, dtype: Any, *, allow_complex: bool = True, allow_any: bool = False
) -> np.dtype:
    """Resolve ``None`` to jax's default float and reject integer, bool and unknown dtypes
    (with ``allow_any``, only unknown ones: for constants, which any dtype can hold)."""
    if dtype is None:
        return default_float()
    try:
        dt = jnp.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{fn}: dtype {dtype!r} is not a dtype") from e
    if allow_any:
        return dt
    allowed = "a floating dtype (float32, bfloat16, float16, float64)"
    if allow_complex:
        allowed += " or a complex dtype"
    if jnp.issubdtype(dt, jnp.floating):
        if float(jnp.finfo(dt).min) > 0:  # float8_e8m0fnu: powers of two only, no sign, no 0
            raise ValueError(
                f"{fn}: dtype={dt} cannot hold these values (no sign and no zero); allowed:"
                " float64, float32, bfloat16, float16 and the signed float8 types"
                " (float8_e4m3fn, float8_e5m2, float8_e4m3fnuz, float8_e5m2fnuz,"
                " float8_e4m3b11fnuz, float8_e3m4, float8_e4m3), drawn in float32 and rounded"
            )
        return dt
    if allow_complex and jnp.issubdtype(dt, jnp.complexfloating):
        return dt
    raise TypeError(f"{fn}: dtype={dt} is not supported; a random initializer needs {allowed}")


# --------------------------------------------------------------------------- numbers


def as_real(fn: str, arg: str, value: Any) -> float:
    """A Python float from a real number: Python/numpy scalars and 0-d arrays accepted.

    Raises TypeError for anything else (strings, bools, complex, arrays with elements) and
    ValueError for NaN or infinity, naming ``fn`` and ``arg``.
    """
    x = _scalar(fn, arg, value, "a real number")
    if isinstance(x, bool | np.bool_) or not (isinstance(x, int | float) or _real_dtype(x)):
        raise TypeError(f"{fn}: {arg} must be a real number, got {value!r}")
    try:
        f = float(x)
    except OverflowError:  # a Python int beyond float range
        f = math.inf if x > 0 else -math.inf  # (copysign would convert x too)
    if not math.isfinite(f):
        raise ValueError(f"{fn}: {arg} must be a finite number, got {_show(value)}")
    return f


def as_int(fn: str, arg: str, value: Any, *, minimum: int | None = None) -> int:
    """A Python int from an int, a numpy integer or a 0-d integer array (not a bool)."""
    x = _scalar(fn, arg, value, "an int")
    if isinstance(x, bool | np.bool_) or not (
        isinstance(x, int) or jnp.issubdtype(getattr(x, "dtype", object), jnp.integer)
    ):
        raise TypeError(f"{fn}: {arg} must be an int, got {value!r}")
    n = int(x)
    if minimum is not None and n < minimum:
        raise ValueError(f"{fn}: {arg} must be >= {minimum}, got {n}")
    return n


def _real_dtype(x: Any) -> bool:
    """A numpy/ml_dtypes scalar of an integer or floating dtype (bfloat16 included)."""
    dt = getattr(x, "dtype", None)
    return dt is not None and (jnp.issubdtype(dt, jnp.integer) or jnp.issubdtype(dt, jnp.floating))


def _scalar(fn: str, arg: str, value: Any, what: str) -> Any:
    if isinstance(value, jax.core.Tracer):
        raise TypeError(f"{fn}: {arg} must be {what} known before tracing, got a traced value")
    if isinstance(value, np.ndarray | jax.Array):
        if np.ndim(value) != 0:
            raise TypeError(f"{fn}: {arg} must be {what}, got an array of shape {np.shape(value)}")
        return np.asarray(value)[()]
    return value


def _show(value: Any) -> str:
    """``nan`` for NaN (never "inf"), else the repr."""
    try:
        x = np.asarray(value)
        if x.ndim == 0 and jnp.issubdtype(x.dtype, jnp.inexact) and np.isnan(x):
            return "nan"
    except (TypeError, ValueError):
        pass
    return repr(value)


def check_in_dtype(
    fn: str,
    arg: str,
    value: Any,
    dtype: Any,
    *,
    allow_underflow: bool = True,
    label: str | None = None,
    reach: float = 1.0,
) -> None:
    """``value`` (a number or array) must be representable in the output ``dtype``.

    Floating and complex dtypes: finite after rounding to ``dtype`` (``1e39`` overflows
    float32, ``1e5`` float16) and, unless ``allow_underflow``, not rounded from nonzero to 0.
    Integer dtypes: integer values within the dtype's range. bool: 0 or 1. Traced values are
    left alone. ``label`` replaces ``arg=value`` in messages (for a value derived from ``arg``).
    ``reach``: draws reach ``reach`` times the value (7 for a normal's stddev: the largest
    normal draw of jax's and the fast generator is below 7σ), and that must be finite too.
    """
    if isinstance(value, jax.core.Tracer):
        return
    dt = jnp.dtype(dtype)
    x = np.asarray(value)
    if x.dtype == object or not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == np.bool_):
        raise TypeError(f"{fn}: {arg} must be a number, got {value!r}")
    if jnp.issubdtype(x.dtype, jnp.inexact) and not np.all(np.isfinite(x)):
        raise ValueError(f"{fn}: {arg} must be finite, got {_show(value)}")
    if np.iscomplexobj(x) and not jnp.issubdtype(dt, jnp.complexfloating):
        raise ValueError(f"{fn}: {arg}={value!r} is complex; dtype {dt} is real")
    if jnp.issubdtype(dt, jnp.inexact):
        info = jnp.finfo(dt)
        mags = np.abs(x.astype(np.complex128 if np.iscomplexobj(x) else np.float64))
        if mags.size and mags.max() * reach > float(info.max):
            draws = (
                f": draws reach {reach:g}·{arg} = {mags.max() * reach:.4g}" if reach != 1 else ""
            )
            raise ValueError(
                f"{fn}: {label or f'{arg}={_show(value)}'} overflows {dt}{draws} (largest"
                f" finite value {float(info.max):.4g}); use a wider dtype"
            )
        if not allow_underflow and mags.size:
            tiny = float(info.smallest_subnormal)
            if np.any((mags > 0) & (mags < tiny)):
                raise ValueError(
                    f"{fn}: {label or f'{arg}={_show(value)}'} rounds to 0 in {dt} (smallest positive value"
                    f" {tiny:.4g}); use a wider dtype"
                )
        return
    if dt == jnp.bool_:
        if not np.all((x == 0) | (x == 1)):
            raise ValueError(f"{fn}: {arg}={value!r} is not 0 or 1 (or a bool); dtype is bool")
        return
    if jnp.issubdtype(dt, jnp.integer):
        if jnp.issubdtype(x.dtype, jnp.floating) and not np.all(np.floor(x) == x):
            raise ValueError(
                f"{fn}: {arg}={value!r} is not an integer; dtype {dt} would truncate it"
            )
        iinfo = jnp.iinfo(dt)
        lo, hi = (x.min(), x.max()) if x.size else (0, 0)
        if lo < int(iinfo.min) or hi > int(iinfo.max):
            raise ValueError(
                f"{fn}: {arg}={value!r} is out of range for {dt} ([{iinfo.min}, {iinfo.max}])"
            )


# --------------------------------------------------------------------------- data


def check_batch(fn: str, arg: str, x: Any) -> jax.Array:
    """A non-empty, finite, numeric array with a leading batch axis, as a jax array."""
    if isinstance(x, jax.core.Tracer):
        return x
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: {arg} must be an array of inputs, got {type(x).__name__}") from e
    if a.dtype == object or not (jnp.issubdtype(a.dtype, jnp.number) or a.dtype == np.bool_):
        raise TypeError(f"{fn}: {arg} must be a numeric array, got dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError(f"{fn}: {arg} is a scalar; it needs a leading batch axis")
    if a.size == 0:
        raise ValueError(f"{fn}: {arg} of shape {a.shape} is empty; it needs >= 1 example")
    if jnp.issubdtype(a.dtype, jnp.inexact):
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise ValueError(
                f"{fn}: {arg} of shape {a.shape} has {bad} NaN or infinite values; clean the"
                " data first"
            )
    return jnp.asarray(x)
