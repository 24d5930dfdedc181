"""Half precision: draw in float32, round once.

A random draw made directly in bfloat16 or float16 quantises the *uniform* bits before the
transform, so the sample has far fewer distinct values than the dtype can hold and loses its
tails: ``jax.random.normal(key, (100_000,), jnp.bfloat16)`` never exceeds ~2.9σ, while the
float32 draw rounded to bfloat16 reaches ~4.3σ as torch's does. jaxinit's own schemes, its
PyTorch names (``torch_*``) and its Keras names therefore draw in float32 and round the
result once to the requested dtype: the half-precision sample is the float32 sample rounded,
tails included.

The names that jaxinit shares with ``jax.nn.initializers`` (``normal``, ``uniform``,
``truncated_normal``, ``variance_scaling``, ``glorot_*``, ``he_*``, ``lecun_*``) keep bit
parity with jax, also in half precision; wrap one in :func:`draw_in_float32` to get the
float32-then-round draw for it (or for any other initializer).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._law import law_of
from jaxinit._values import declare, initializer


def wide_dtype(dtype: Any, *, parity: bool = False) -> np.dtype:
    """The dtype to draw in for output ``dtype``: float32 for real floats narrower than 32 bits.

    With ``parity`` (the names jaxinit shares with jax), bfloat16 and float16 stay (bit
    parity with jax) and only the narrower types (float8_*, float4_e2m1fn) are widened:
    jax's own draws there are NaN (truncated normals, QR has no kernel) or coarse, so
    there is no parity to keep.
    """
    dt = jnp.dtype(dtype)
    if jnp.issubdtype(dt, jnp.floating) and jnp.finfo(dt).bits < (16 if parity else 32):
        return jnp.dtype(jnp.float32)
    return dt


@initializer
def draw_in_float32(init: Any) -> Any:
    """Wrap an initializer so that half-precision outputs are drawn in float32 and rounded once.

    For an output dtype narrower than float32 (bfloat16, float16, the float8 types) the
    wrapped ``init`` is called with ``float32`` and its result is cast to the requested dtype;
    other dtypes pass through unchanged (same values). Use it for the jax-shared names, which
    draw in the target dtype as ``jax.nn.initializers`` does (bit parity with jax):

    >>> init = jaxinit.draw_in_float32(jaxinit.he_normal())
    >>> w = init(jax.random.key(0), (256, 128), jnp.bfloat16)   # = he_normal() float32, rounded

    Works with any ``init(key, shape, dtype, **kwargs)`` (``jax.nn.initializers`` included);
    when no dtype is passed, the wrapped initializer's own default dtype is the target.
    """
    if not callable(init):
        raise TypeError(
            f"draw_in_float32: expected an initializer init(key, shape, dtype), got {init!r}"
        )

    @functools.wraps(init)
    def wrapped(key: jax.Array, shape: Any, dtype: Any = None, **kwargs: Any) -> jax.Array:
        if dtype is None:
            # The wrapped initializer's default dtype, found without drawing anything.
            dtype = jax.eval_shape(lambda k: init(k, shape, **kwargs), key).dtype
        work = wide_dtype(dtype)
        if work == jnp.dtype(dtype):
            return init(key, shape, dtype, **kwargs)
        return init(key, shape, work, **kwargs).astype(dtype)

    return declare(wrapped, law_of(init))  # the same law, rounded once
