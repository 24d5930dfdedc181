"""Argument checks shared by every initializer.

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
    """Reject non-finite or non-positive numbers; traced values are left to the caller."""
    if isinstance(value, jax.core.Tracer):
        return
    try:
        x = float(np.asarray(value))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: {arg} must be a real number, got {value!r}") from e
    ok = math.isfinite(x) and (x >= 0 if allow_zero else x > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{fn}: {arg} must be finite and {bound}, got {value!r}")


def check_finite(fn: str, arg: str, value: Any) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    x = np.asarray(value)
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise ValueError(f"{fn}: {arg} must be a finite number, got {value!r}")


def check_key(fn: str, key: Any) -> None:
    """Accept typed keys (``jax.random.key``) and legacy uint32 keys (``PRNGKey``)."""
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(
                f"{fn}: key must be a single PRNG key of shape (), got a batch of shape {shape};"
                " use jax.vmap to initialize several members"
            )
        return
    if dtype == jnp.uint32 and shape is not None and len(shape) == 1:
        return
    got = f"{type(key).__name__}" + (f" with dtype {dtype} and shape {shape}" if dtype else "")
    raise TypeError(
        f"{fn}: key must be a PRNG key from jax.random.key(seed) or jax.random.PRNGKey(seed),"
        f" got {got}"
    )


def check_shape(fn: str, shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int | np.integer):
        shape = (shape,)
    try:
        out = tuple(operator.index(d) for d in shape)
    except TypeError as e:
        raise TypeError(f"{fn}: shape must be a sequence of ints, got {shape!r}") from e
    if any(d < 0 for d in out):
        raise ValueError(f"{fn}: shape {out} has a negative dimension")
    return out


def check_dtype(fn: str, dtype: Any, *, allow_complex: bool = True) -> np.dtype:
    """Resolve ``None`` to jax's default float and reject integer, bool and unknown dtypes."""
    if dtype is None:
        return default_float()
    try:
        dt = jnp.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{fn}: dtype {dtype!r} is not a dtype") from e
    allowed = "a floating dtype (float32, bfloat16, float16, float64)"
    if allow_complex:
        allowed += " or a complex dtype"
    if jnp.issubdtype(dt, jnp.floating):
        return dt
    if allow_complex and jnp.issubdtype(dt, jnp.complexfloating):
        return dt
    raise TypeError(f"{fn}: dtype={dt} is not supported; a random initializer needs {allowed}")
