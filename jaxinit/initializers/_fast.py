"""The opt-in fast sampling path: a cheap counter-based generator and cheap transforms.

On the CPU, ``jax.random.normal`` spends ~3/4 of its time in threefry (20 rounds of a block
cipher per pair of words) and the rest in ``erf_inv`` (XLA's, with a generic ``log``).
The fast path replaces both, keeping the *distribution* and changing the *values*:

* **Bits**: a keyed counter hash. Element ``i`` of a draw gets
  ``mix(mix(i + k0) ^ k1)`` with ``mix`` the "lowbias32" integer finaliser
  (C. Wellons; 2 multiplies, 3 xor-shifts) and ``(k0, k1)`` the key's two words. It is a
  keyed bijection of the 32-bit counter, fully vectorised, shard-local (each device hashes
  its own slice of counters) and ~30× cheaper than threefry on the CPU. It is *not* a
  cryptographic generator: fine for initial weights, not for anything adversarial.
  It is registered as a JAX PRNG implementation (``jax.extend.random.define_prng_impl``),
  so ``split``/``fold_in``/``jax.random.*`` all accept a fast key; split and fold_in use
  threefry on the two key words, as jax does.
* **Transforms**: normal and truncated normal by the inverse CDF
  :math:`z = \\sqrt2\\,\\mathrm{erf}^{-1}(x)` with Giles' (2010) single-precision
  polynomial (the one XLA uses) but a bit-level ``log`` (exponent + a 5-term atanh series),
  and, for truncated draws inside ±2.9σ, only the central branch. Normal draws get their
  tails from 31 bits (|z| up to 6.5σ; jax's 24-bit uniform reaches 5.4σ). Uniform keeps
  jax's 23-bit mantissa construction. bfloat16/float16 are generated in float32 and cast.
  float64 (x64) falls back to jax's transforms on the fast bits.
* **Orthogonal**: no QR. The Householder reflectors that would factorise a Gaussian matrix
  are drawn directly (Stewart 1980) and Q is formed from them in blocked matrix products:
  half a QR's flops, at matmul speed, partitionable by XLA (see :func:`orthogonal`).

Use ``jaxinit.fast(init)`` for any initializer, or pass ``jaxinit.fast_key(key)`` to one:
the core's draws dispatch on the key's PRNG implementation (``jaxinit.initializers._core._rng``), so
every scheme is the same code on both paths.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import define_prng_impl, threefry_2x32

from jaxinit._checks import check_key
from jaxinit._values import initializer
from jaxinit.initializers._protocol import call_init

_U32 = jnp.uint32
_MAX_ELEMENTS = 2**32


# --------------------------------------------------------------------------- generator


def _mix(x: jax.Array) -> jax.Array:
    """lowbias32 (Wellons): a 32-bit bijection with near-ideal avalanche."""
    x = x ^ (x >> 16)
    x = x * _U32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * _U32(0x846CA68B)
    return x ^ (x >> 16)


def _hash_words(
    key_data: jax.Array,
    shape: tuple[int, ...],
    start: tuple[int, ...] | None = None,
    within: tuple[int, ...] | None = None,
) -> jax.Array:
    """uint32 words of ``shape``; word i (row-major) is mix(mix(i + k0) ^ k1).

    With ``start`` and ``within``: the block of ``shape`` at ``start`` of a draw of shape
    ``within`` (the same words as slicing the whole draw, without computing the rest).
    """
    within = shape if within is None else within
    start = (0,) * len(shape) if start is None else start
    n = math.prod(within)
    if n > _MAX_ELEMENTS:
        raise ValueError(
            f"fast generator: a single draw of shape {within} has {n} elements; at most 2**32"
        )
    # a row-major counter built from broadcasted iotas keeps the shape, so under
    # out_shardings each device computes only the counters of its own shard
    counter = jnp.zeros(shape, _U32)
    stride = 1
    for axis in reversed(range(len(shape))):
        index = jax.lax.broadcasted_iota(_U32, shape, axis) + _U32(start[axis])
        counter = counter + index * _U32(stride % 2**32)
        stride *= within[axis]
    return _mix(_mix(counter + key_data[0]) ^ key_data[1])


def _seed(seed: int | jax.Array) -> jax.Array:
    seed = jnp.asarray(seed)
    lo = jax.lax.convert_element_type(seed, _U32)
    if seed.dtype.itemsize == 8:
        hi = jax.lax.convert_element_type(jax.lax.shift_right_logical(seed, 32), _U32)
    else:
        hi = jnp.zeros_like(lo)
    return jnp.stack([hi, lo])


def _split(key_data: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    n = math.prod(shape)
    words = threefry_2x32(key_data, jax.lax.iota(_U32, 2 * n))
    return words.reshape((*shape, 2))


def _fold_in(key_data: jax.Array, data: int | jax.Array) -> jax.Array:
    return threefry_2x32(key_data, _seed(data))


def _random_bits(key_data: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    if bit_width == 32:
        return _hash_words(key_data, shape)
    if bit_width in (8, 16):
        words = _hash_words(key_data, shape) >> (32 - bit_width)  # the best-mixed top bits
        return words.astype(jnp.dtype(f"uint{bit_width}"))
    if bit_width == 64:
        words = _hash_words(key_data, (*shape, 2))
        hi = words[..., 0].astype(jnp.uint64) << 32
        return hi | words[..., 1].astype(jnp.uint64)
    raise ValueError(f"fast generator: bit_width={bit_width} is not one of 8, 16, 32, 64")


FAST_IMPL = define_prng_impl(
    key_shape=(2,),
    seed=_seed,
    split=_split,
    random_bits=_random_bits,
    fold_in=_fold_in,
    name="jaxinit_hash32",
    tag="jh",
)


def is_fast_key(key: Any) -> bool:
    """True for a typed key of jaxinit's fast PRNG implementation (decided at trace time).

    Example:
      >>> jaxinit.is_fast_key(jaxinit.fast_key(jax.random.key(0)))
      True
      >>> jaxinit.is_fast_key(jax.random.key(0)), jaxinit.is_fast_key(jax.random.PRNGKey(0))
      (False, False)
    """
    dtype = getattr(key, "dtype", None)
    if dtype is None or not jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return False
    return jax.random.key_impl(key) == FAST_IMPL


def fast_key(key: jax.Array) -> jax.Array:
    """A fast-generator key derived from any PRNG key (typed or legacy uint32).

    The two key words are threefry bits of ``key`` (one tiny draw), so different keys give
    independent fast streams; a fast key is returned unchanged. Works under jit and vmap.

    Example:
      >>> key = jaxinit.fast_key(jax.random.key(0))
      >>> jaxinit.is_fast_key(key), jaxinit.is_fast_key(jax.random.key(0))
      (True, False)
      >>> jaxinit.fast_key(key) is key  # a fast key is returned unchanged
      True
    """
    check_key("fast_key", key)
    if is_fast_key(key):
        return key
    if not jax.dtypes.issubdtype(getattr(key, "dtype", np.uint8), jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)  # legacy uint32[2] key
    words = jax.random.bits(key, (2,), _U32)
    return jax.random.wrap_key_data(words, impl=FAST_IMPL)


@initializer
def fast(init: Any) -> Any:
    """Wrap an initializer so that it draws with the fast generator and transforms.

    ``jaxinit.fast(jaxinit.he_normal())`` has the same distribution as ``he_normal()``
    (same variance, same truncation) but different values for the same key, and on the
    CPU is several times faster (see experiments/bench_sampling.py). Works with any
    ``init(key, shape, dtype)``: jaxinit's schemes also get the cheaper transforms,
    other initializers (``jax.nn.initializers``) get the cheaper bits.

    Example:
      >>> init = jaxinit.fast(jaxinit.he_normal())
      >>> w = init(jax.random.key(0), (256, 128))  # other values than he_normal()'s, same law
      >>> w.shape, w.dtype, round(float(w.var() * 256 / 2), 1)
      ((256, 128), dtype('float32'), 1.0)
    """
    if not callable(init):
        raise TypeError(f"fast: expected an initializer init(key, shape, dtype), got {init!r}")

    @functools.wraps(init)
    def wrapped(
        key: jax.Array, shape: Any, dtype: Any = None, out_sharding: Any = None
    ) -> jax.Array:
        check_key("fast", key)
        key = fast_key(key)
        args = (key, shape) if dtype is None else (key, shape, dtype)
        out = call_init("fast", init, args, out_sharding)
        if not (hasattr(out, "shape") and hasattr(out, "dtype")):
            name = getattr(init, "__name__", repr(init))
            raise TypeError(
                f"fast: the wrapped initializer {name} returned {type(out).__name__}, not an"
                f" array; an initializer is init(key, shape, dtype) -> jax.Array (shape {shape})"
            )
        return out

    return wrapped


# --------------------------------------------------------------------------- transforms

_LN2 = np.float32(math.log(2.0))


def _neg_log(y: jax.Array) -> jax.Array:
    """-log(y) for float32 y in [2**-64, 1]: exponent plus an atanh series on the mantissa.

    XLA's generic log handles every edge case and costs ~3x more on the CPU; here the input
    is a normal positive float by construction, and the error is below 2 ulp.
    """
    bits = jax.lax.bitcast_convert_type(y, jnp.int32)
    e = (bits >> 23) - 127
    m = jax.lax.bitcast_convert_type((bits & 0x7FFFFF) | 0x3F800000, jnp.float32)  # [1, 2)
    big = m > np.float32(math.sqrt(2.0))
    m = jnp.where(big, m * np.float32(0.5), m)
    e = e + big.astype(jnp.int32)
    s = (m - np.float32(1)) / (m + np.float32(1))  # |s| <= 0.1716
    s2 = s * s
    series = np.float32(1 / 9)
    for c in (1 / 7, 1 / 5, 1 / 3, 1.0):
        series = series * s2 + np.float32(c)
    return -(e.astype(jnp.float32) * _LN2 + np.float32(2) * s * series)


# Giles (2010), "Approximating the erfinv function", single precision, as in XLA.
_CENTRAL = (
    2.81022636e-08,
    3.43273939e-07,
    -3.5233877e-06,
    -4.39150654e-06,
    0.00021858087,
    -0.00125372503,
    -0.00417768164,
    0.246640727,
    1.50140941,
)
_TAIL = (
    -0.000200214257,
    0.000100950558,
    0.00134934322,
    -0.00367342844,
    0.00573950773,
    -0.0076224613,
    0.00943887047,
    1.00167406,
    2.83297682,
)
# |x| below which w = -log(1 - x^2) < 5, i.e. only the central polynomial is needed
_CENTRAL_LIMIT = math.sqrt(1 - math.exp(-5.0))


def _poly(coeffs: tuple[float, ...], w: jax.Array) -> jax.Array:
    p = jnp.full_like(w, np.float32(coeffs[0]))
    for c in coeffs[1:]:
        p = p * w + np.float32(c)
    return p


def _erfinv_from(x: jax.Array, one_minus_x2: jax.Array, central_only: bool) -> jax.Array:
    """erf⁻¹(x) given x and 1 − x² (computed by the caller as precisely as it can)."""
    w = _neg_log(one_minus_x2)
    p = _poly(_CENTRAL, w - np.float32(2.5))
    if not central_only:
        tail = _poly(_TAIL, jnp.sqrt(w) - np.float32(3))
        p = jnp.where(w < np.float32(5), p, tail)
    return p * x


def _float_dtype(dtype: Any) -> tuple[np.dtype, bool]:
    """(dtype, fast): the fast transforms run in float32 for float32 and narrower floats;
    float64 and complex dtypes go through jax.random's transforms on the fast bits."""
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(dtype))
    return dtype, bool(jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize <= 4)


def _normal_from_words(words: jax.Array) -> jax.Array:
    """float32 standard normals from uint32 words by the inverse CDF."""
    # v in (0, 1) from the low 31 bits: x = ±(1 - v), and 1 - x² = v (2 - v) keeps full
    # precision in the tails; the top bit is the sign
    v = ((words & _U32(0x7FFFFFFF)).astype(jnp.float32) + np.float32(0.5)) * np.float32(2**-31)
    v = jnp.minimum(v, np.float32(1))  # the float conversion can round up to 1
    x = np.float32(1) - v
    x = jnp.where(words >= _U32(2**31), -x, x)
    return np.float32(math.sqrt(2.0)) * _erfinv_from(x, v * (np.float32(2) - v), central_only=False)


def normal(key: jax.Array, shape: tuple[int, ...] = (), dtype: Any = float) -> jax.Array:
    """Standard normal from a fast key; the signature of ``jax.random.normal``."""
    dtype, ok = _float_dtype(dtype)
    if not ok:
        return jax.random.normal(key, shape, dtype)
    words = _hash_words(jax.random.key_data(key), tuple(shape))
    return _normal_from_words(words).astype(dtype)


def _unit_uniform(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """float32 uniform on [0, 1) from the top 23 bits (jax's mantissa construction)."""
    words = _hash_words(jax.random.key_data(key), tuple(shape))
    one_two = jax.lax.bitcast_convert_type((words >> 9) | _U32(0x3F800000), jnp.float32)
    return one_two - np.float32(1)


def uniform(
    key: jax.Array,
    shape: tuple[int, ...] = (),
    dtype: Any = float,
    minval: Any = 0.0,
    maxval: Any = 1.0,
) -> jax.Array:
    """Uniform on [minval, maxval) from a fast key; the signature of ``jax.random.uniform``."""
    dtype, ok = _float_dtype(dtype)
    if not ok:
        return jax.random.uniform(key, shape, dtype, minval, maxval)
    lo = jnp.asarray(minval, jnp.float32)
    hi = jnp.asarray(maxval, jnp.float32)
    u = lo + (hi - lo) * _unit_uniform(key, shape)
    # rounding can reach maxval; keep the half-open interval as jax does
    u = jnp.minimum(u, jnp.nextafter(hi, lo))
    return u.astype(dtype)


def truncated_normal(
    key: jax.Array, lower: Any, upper: Any, shape: tuple[int, ...] = (), dtype: Any = float
) -> jax.Array:
    """Standard normal cut to (lower, upper) by the inverse CDF on a restricted uniform.

    :math:`z = \\sqrt2\\,\\mathrm{erf}^{-1}(U[\\mathrm{erf}(a/\\sqrt2), \\mathrm{erf}(b/\\sqrt2)])`,
    the signature of ``jax.random.truncated_normal``. Only the central branch of the erf⁻¹
    polynomial is evaluated when both bounds are static and inside ±2.9σ (all the
    ``*_normal`` schemes: ±2σ).
    """
    dtype, ok = _float_dtype(dtype)
    if not ok:
        return jax.random.truncated_normal(key, lower, upper, shape, dtype)
    static = not any(isinstance(b, jax.core.Tracer) for b in (lower, upper))
    central_only = False
    ea: float | np.float32 | jax.Array
    eb: float | np.float32 | jax.Array
    if static:
        a, b = float(np.asarray(lower)), float(np.asarray(upper))
        ea, eb = math.erf(a / math.sqrt(2)), math.erf(b / math.sqrt(2))
        central_only = max(abs(ea), abs(eb)) < _CENTRAL_LIMIT
        ea, eb = np.float32(ea), np.float32(eb)
    else:
        ea = jax.lax.erf(jnp.asarray(lower, jnp.float32) / np.float32(math.sqrt(2)))
        eb = jax.lax.erf(jnp.asarray(upper, jnp.float32) / np.float32(math.sqrt(2)))
    x = ea + (eb - ea) * _unit_uniform(key, shape)
    z = np.float32(math.sqrt(2.0)) * _erfinv_from(
        x, (np.float32(1) - x) * (np.float32(1) + x), central_only
    )
    # float rounding may put a value a hair outside; clip like jax does
    lo = jnp.asarray(lower, jnp.float32)
    hi = jnp.asarray(upper, jnp.float32)
    z = jnp.clip(z, jnp.nextafter(lo, hi), jnp.nextafter(hi, lo))
    return z.astype(dtype)


# --------------------------------------------------------------------------- orthogonal


def _householder_vectors(g: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The reflectors (V, τ) and the sign of diag(R) that QR would give for a Gaussian g.

    Stewart (1980): Householder QR of a Gaussian m×n matrix builds reflector k from column
    k of the partly reduced matrix, whose entries from row k down are again independent
    Gaussians (the earlier reflectors are orthogonal and independent of them). So the raw
    column ``g[k:, k]`` is a reflector with the right distribution: no factorisation is
    needed, only LAPACK's ``larfg`` formulas. V has a unit diagonal and zeros above it.
    """
    m, n = g.shape
    rows = jax.lax.broadcasted_iota(jnp.int32, (m, n), 0)
    cols = jax.lax.broadcasted_iota(jnp.int32, (m, n), 1)
    below = rows > cols
    alpha = jnp.diagonal(g)
    norm = jnp.sqrt(alpha * alpha + jnp.sum(jnp.where(below, g * g, 0), axis=0))
    norm = jnp.where(norm > 0, norm, 1)  # an all-zero column (probability ~0) reflects e_k
    sign = jnp.where(alpha >= 0, 1, -1).astype(g.dtype)
    beta = -sign * norm  # the diagonal of R
    tau = (beta - alpha) / beta  # in [1, 2]: every column reflects, the last one too
    v = jnp.where(below, g / (alpha - beta)[None, :], jnp.where(rows == cols, 1, 0).astype(g.dtype))
    return v, tau, -sign


def orthogonal(key: jax.Array, n_rows: int, n_cols: int, dtype: Any = float) -> jax.Array:
    """Haar-random (semi-)orthogonal n_rows × n_cols matrix from a fast key.

    The distribution of ``jax.random.orthogonal`` (QR of a Gaussian matrix, sign-fixed by
    diag(R)) without a QR: the reflectors are drawn directly (Stewart 1980) and only Q is
    formed, a block of b reflectors at a time, right to left on the trailing submatrix
    (LAPACK orgqr's order). Each block is one compact-WY reflector I − V T Vᵀ with
    T⁻¹ = diag(1/τ) + striu(VᵀV) (Schreiber & Van Loan 1989). Cost: ~(4/3)n³ flops for a
    square matrix (a QR's half), all in matrix products; memory: the output plus one
    block of reflectors, whose Gaussian columns are hashed from the key where they are
    used. Under ``out_shardings`` XLA partitions it (same values as unsharded), but it
    gathers the trailing submatrix for each block's update: sharding splits the result,
    not the update's working memory. About 16 blocks keep the unrolled program short and
    the products large.
    The Gaussians are float32 (as every fast draw); float64 output is orthogonalised in
    float64. Complex dtypes use jax's QR on the fast bits.
    """
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(dtype))
    if not jnp.issubdtype(dtype, jnp.floating):
        return jax.random.orthogonal(key, n_rows, (), dtype, n_cols)
    m, n = max(n_rows, n_cols), min(n_rows, n_cols)
    key_data = jax.random.key_data(key)
    b = int(np.clip(n // 16, 64, 256))
    q = jnp.eye(m, n, dtype=dtype)
    signs = []
    for c0 in reversed(range(0, n, b)):
        c1 = min(c0 + b, n)
        # rows c0: of Gaussian columns c0:c1 (the entries above are never used)
        words = _hash_words(key_data, (m - c0, c1 - c0), start=(c0, c0), within=(m, n))
        v, tau, sign = _householder_vectors(_normal_from_words(words).astype(dtype))
        t_inv = jnp.triu(v.T @ v, 1) + jnp.diag(1 / tau)
        t = jax.lax.linalg.triangular_solve(
            t_inv, jnp.eye(c1 - c0, dtype=dtype), left_side=True, lower=False
        )
        sub = q[c0:, c0:]
        q = q.at[c0:, c0:].set(sub - v @ (t @ (v.T @ sub)))
        signs.append(sign)
    q = q * jnp.concatenate(signs[::-1])[None, :]
    return q if n_rows >= n_cols else q.T
