"""Truncated normal draws from windows far in one tail, by the inverse CDF in log space.

``jax.random.truncated_normal`` maps a uniform through ``erf``/``erfinv``. In float32,
``erf(x/√2)`` is 1 to within rounding beyond about 5σ, so a window like (6, 7) collapses
to its upper edge (every draw 6.9999995, where the true mean is 6.16). Windows that lie
entirely beyond ``TAIL`` standard deviations on one side are drawn here instead, as scipy's
``truncnorm`` does for its tails: the target survival probability is formed in log space,

    log S = log Q(a) + log1p(-u · (1 - Q(b)/Q(a))),    Q(x) = P(Z > x) = ndtr(-x),

and ``x = Q⁻¹(S)`` is found by Newton's method on ``log Q(x) - log S`` (``log_ndtr`` is
accurate far into the tail). ``log Q`` is concave, and the start
``x₀ = √(a² - 2 (log S - log Q(a)))`` lies at or beyond the root, so the iterates decrease
monotonically to it; a few steps reach float32/float64 precision at any distance
(tested out to 30σ). Windows in the left tail are mirrored. Other windows keep jax's
algorithm, so those results stay bit-identical to jax.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr
from scipy import special

# Windows with lower >= TAIL (or upper <= -TAIL) are drawn here: at 3σ jax's erf-based
# transform is still accurate, and the log-space one is accurate everywhere beyond.
TAIL = 3.0
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def is_far(lower: float, upper: float) -> bool:
    """True when the window ``[lower, upper]`` (in σ units) lies beyond ``TAIL`` on one side."""
    return lower >= TAIL or upper <= -TAIL


@jax.jit
def _transform(u: jax.Array, a: jax.Array, b: jax.Array, log_qa: jax.Array, frac: jax.Array):
    """Map uniforms ``u`` in [0, 1) to N(0, 1) truncated to [a, b], a >= TAIL.

    The window enters as data (scalars of ``u``'s dtype): one compilation per shape.
    """
    dt = u.dtype
    log_s = log_qa + jnp.log1p(-u * frac)
    x = jnp.sqrt(a * a - 2 * (log_s - log_qa))
    steps = 6 if dt == jnp.float64 else 4
    for _ in range(steps):
        log_q = log_ndtr(-x)
        log_phi = -0.5 * x * x - jnp.array(_HALF_LOG_2PI, dt)
        x = x + (log_q - log_s) * jnp.exp(log_q - log_phi)
    return jnp.clip(x, a, b)


def far_tail(
    uniform: Callable[..., jax.Array],
    key: jax.Array,
    lower: float,
    upper: float,
    shape: tuple[int, ...],
    dtype: Any,
) -> jax.Array:
    """N(0, 1) truncated to ``[lower, upper]`` (a window with :func:`is_far`), of ``dtype``.

    ``uniform`` is the generator's ``uniform(key, shape, dtype)`` (jax.random's or the fast
    path's), so the key decides the bits as everywhere else. Half precision is computed in
    float32 and rounded.
    """
    flip = upper <= -TAIL
    a, b = (-float(upper), -float(lower)) if flip else (float(lower), float(upper))
    log_qa = float(special.log_ndtr(-a))
    log_qb = float(special.log_ndtr(-b))
    frac = float(-np.expm1(log_qb - log_qa))  # 1 - Q(b)/Q(a), without cancellation
    dt = jnp.dtype(dtype)
    compute = jax.dtypes.canonicalize_dtype(jnp.float64 if dt == jnp.float64 else jnp.float32)
    consts = (np.asarray(v, compute) for v in (a, b, log_qa, frac))
    x = _transform(uniform(key, shape, compute), *consts)
    return (-x if flip else x).astype(dt)
