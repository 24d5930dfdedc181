"""The fast sampling path: same distributions as the default path, other values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxinit
from jaxinit.initializers import _fast

N = 100_000  # KS on 1e5 draws detects a CDF error of ~0.006


@pytest.fixture
def fkey():
    return jaxinit.fast_key(jax.random.key(0))


def _ks(x, cdf):
    return stats.kstest(np.asarray(x, np.float64).ravel(), cdf).pvalue


def test_fast_key_is_a_jax_prng_impl(fkey):
    assert jaxinit.is_fast_key(fkey)
    assert not jaxinit.is_fast_key(jax.random.key(0))
    assert jaxinit.fast_key(fkey) is fkey
    # split / fold_in / jax.random.* all accept it and stay fast keys
    k1, k2 = jax.random.split(fkey)
    assert jaxinit.is_fast_key(k1)
    assert not np.array_equal(jax.random.key_data(k1), jax.random.key_data(k2))
    assert jaxinit.is_fast_key(jax.random.fold_in(fkey, 3))
    bits = jax.random.bits(fkey, (1000,), jnp.uint32)
    assert len(np.unique(np.asarray(bits))) == 1000  # a bijection of the counter
    assert jax.random.normal(fkey, (4,)).shape == (4,)
    # legacy uint32 keys work too
    assert jaxinit.is_fast_key(jaxinit.fast_key(jax.random.PRNGKey(0)))


def test_bits_are_uniform_and_independent_across_bits(fkey):
    bits = np.asarray(jax.random.bits(fkey, (N,), jnp.uint32), dtype=np.uint64)
    per_bit = np.stack([(bits >> b) & 1 for b in range(32)]).mean(axis=1)
    assert np.all(np.abs(per_bit - 0.5) < 5 * 0.5 / math.sqrt(N))
    # neighbouring counters are uncorrelated
    u = bits.astype(np.float64) / 2**32
    r = np.corrcoef(u[:-1], u[1:])[0, 1]
    assert abs(r) < 5 / math.sqrt(N)
    assert _ks(u, "uniform") > 1e-3


def test_different_keys_give_unrelated_streams():
    a = jaxinit.fast(jaxinit.normal(1.0))(jax.random.key(0), (N,))
    b = jaxinit.fast(jaxinit.normal(1.0))(jax.random.key(1), (N,))
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(N)
    c = jaxinit.fast(jaxinit.normal(1.0))(jax.random.key(0), (N,))
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("seed", [0, 1])
def test_normal_distribution(seed):
    key = jaxinit.fast_key(jax.random.key(seed))
    z = np.asarray(_fast.normal(key, (N,), jnp.float32), np.float64)
    assert abs(z.mean()) < 5 / math.sqrt(N)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / N)
    assert _ks(z, "norm") > 1e-3
    # the tails are there (31-bit construction): P(|z| > 4) = 6.3e-5 -> ~6 of 1e5
    assert 1 <= np.sum(np.abs(z) > 4) <= 25


@pytest.mark.parametrize(("lo", "hi"), [(-2.0, 2.0), (-4.0, 1.0), (0.5, 3.5)])
def test_truncated_normal_distribution(fkey, lo, hi):
    z = np.asarray(_fast.truncated_normal(fkey, lo, hi, (N,), jnp.float32), np.float64)
    assert z.min() > lo and z.max() < hi
    assert _ks(z, stats.truncnorm(lo, hi).cdf) > 1e-3


def test_uniform_distribution(fkey):
    u = np.asarray(_fast.uniform(fkey, (N,), jnp.float32, -3.0, 5.0), np.float64)
    assert u.min() >= -3 and u.max() < 5
    assert _ks(u, stats.uniform(-3, 8).cdf) > 1e-3


def test_erfinv_matches_xla():
    x = jnp.linspace(-0.99999, 0.99999, 10001, dtype=jnp.float32)
    mine = _fast._erfinv_from(x, (1 - x) * (1 + x), central_only=False)
    np.testing.assert_allclose(mine, jax.lax.erf_inv(x), rtol=2e-5, atol=1e-6)
    y = jnp.linspace(1e-30, 1, 1001, dtype=jnp.float32)
    np.testing.assert_allclose(_fast._neg_log(y), -jnp.log(y), rtol=1e-6, atol=1e-6)


SCHEMES = {
    "normal": (jaxinit.normal(0.5), 0.25),
    "uniform": (jaxinit.uniform(2.0), 4 / 12),
    "truncated_normal": (jaxinit.truncated_normal(1.0), 0.87962566103423978**2),
    "glorot_uniform": (jaxinit.glorot_uniform(), 2 / (256 + 512)),
    "glorot_normal": (jaxinit.glorot_normal(), 2 / (256 + 512)),
    "he_normal": (jaxinit.he_normal(), 2 / 256),
    "he_uniform": (jaxinit.he_uniform(), 2 / 256),
    "lecun_normal": (jaxinit.lecun_normal(), 1 / 256),
    "variance_scaling_normal": (jaxinit.variance_scaling(3.0, "fan_out", "normal"), 3 / 512),
    "random_normal": (jaxinit.random_normal(1.0, 0.05), 0.05**2),
    "random_truncated_normal": (
        jaxinit.random_truncated_normal(0.0, 0.05),
        (0.05 * 0.87962566103423978) ** 2,
    ),
    "random_uniform": (jaxinit.random_uniform(-0.05, 0.05), 0.1**2 / 12),
}


@pytest.mark.parametrize("name", list(SCHEMES))
def test_fast_scheme_variance_and_values_differ(key, name):
    init, var = SCHEMES[name]
    shape = (256, 512)
    w = np.asarray(jaxinit.fast(init)(key, shape), np.float64)
    assert w.shape == shape
    # sample variance vs formula within 5 standard errors (kurtosis <= 3: SE <= sqrt(2/n) var)
    assert abs(w.var() - var) < 5 * math.sqrt(2 / w.size) * var, (w.var(), var)
    # same distribution as the default path (two-sample KS), different values
    d = np.asarray(init(key, shape), np.float64)
    assert stats.ks_2samp(w.ravel(), d.ravel()).pvalue > 1e-3
    assert not np.array_equal(w, d)


def test_bounds_of_fast_schemes(key):
    shape = (128, 64)
    w = jaxinit.fast(jaxinit.he_uniform())(key, shape)
    assert float(jnp.max(jnp.abs(w))) <= math.sqrt(6 / 128)
    w = jaxinit.fast(jaxinit.he_normal())(key, shape)
    assert float(jnp.max(jnp.abs(w))) <= 2 * math.sqrt(2 / 128) / 0.87962566103423978 * 1.0001


def test_bfloat16_generated_in_float32_then_cast(key):
    init = jaxinit.fast(jaxinit.normal(1.0))
    b = init(key, (1000,), jnp.bfloat16)
    f = init(key, (1000,), jnp.float32)
    assert b.dtype == jnp.bfloat16
    np.testing.assert_array_equal(b, f.astype(jnp.bfloat16))


def test_fast_under_jit_and_vmap(key):
    init = jaxinit.fast(jaxinit.glorot_uniform())
    eager = init(key, (8, 4))
    np.testing.assert_array_equal(jax.jit(init, static_argnums=1)(key, (8, 4)), eager)
    batch = jax.vmap(lambda k: init(k, (8, 4)))(jax.random.split(key, 3))
    assert batch.shape == (3, 8, 4)
    np.testing.assert_array_equal(batch[0], init(jax.random.split(key, 3)[0], (8, 4)))
    assert not np.array_equal(batch[0], batch[1])


def test_fast_wraps_foreign_initializers_and_keeps_default_dtype(key):
    w = jaxinit.fast(jax.nn.initializers.lecun_normal())(key, (64, 32))
    assert w.dtype == jnp.float32 and w.shape == (64, 32)
    w16 = jaxinit.fast(jaxinit.normal(1.0, dtype=jnp.bfloat16))(key, (4,))
    assert w16.dtype == jnp.bfloat16
    with pytest.raises(TypeError, match="fast: expected an initializer"):
        jaxinit.fast(3)


def test_complex_and_float64_fall_back_to_jax_transforms(key):
    w = jaxinit.fast(jaxinit.normal(1.0))(key, (1000,), jnp.complex64)
    assert w.dtype == jnp.complex64
    assert abs(float(jnp.var(w)) - 1) < 0.2


def test_default_path_untouched(key):
    """The hook leaves ordinary keys on jax.random: still bit-identical to jax.nn."""
    for mine, ref in [
        (jaxinit.he_normal(), jax.nn.initializers.he_normal()),
        (jaxinit.normal(), jax.nn.initializers.normal()),
        (jaxinit.glorot_uniform(), jax.nn.initializers.glorot_uniform()),
    ]:
        np.testing.assert_array_equal(mine(key, (32, 16)), ref(key, (32, 16)))


def test_too_large_draw_is_refused(fkey):
    with pytest.raises(ValueError, match="at most 2\\*\\*32"):
        jax.eval_shape(lambda k: _fast.normal(k, (2**17, 2**16)), fkey)


# --------------------------------------------------------------------------- orthogonal


@pytest.mark.parametrize(
    "shape",
    [
        (3, 3),
        (7, 3),
        (3, 7),
        (129, 129),
        *(pytest.param(s, marks=pytest.mark.slow) for s in ((150, 100), (100, 150))),
    ],
)
def test_fast_orthogonal_is_orthonormal_and_scaled(key, shape):
    w = np.asarray(jaxinit.fast(jaxinit.orthogonal(1.7))(key, shape), np.float64)
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
    np.testing.assert_allclose(gram, 1.7**2 * np.eye(len(gram)), atol=1e-5)
    assert not np.array_equal(w, jaxinit.orthogonal(1.7)(key, shape))  # other values


def _haar_draws(shape, n=3000):
    keys = jax.random.split(jax.random.key(3), n)
    init = jaxinit.fast(jaxinit.orthogonal())
    return np.asarray(jax.vmap(lambda k: init(k, shape))(keys), np.float64)


def test_fast_orthogonal_is_haar_distributed():
    # Haar on O(3): every entry is Uniform(-1, 1), and det = ±1 with equal probability
    # (a missing diag(R) sign fix gives det = -1 always; wrong reflectors break uniformity)
    q = _haar_draws((3, 3))
    for i in range(3):
        for j in range(3):
            assert _ks(q[:, i, j], stats.uniform(-1, 2).cdf) > 1e-3, (i, j)
    assert abs(np.linalg.det(q).mean()) < 5 / math.sqrt(len(q))
    # a column of a Haar 5×2 (and a row of its 2×5 transpose) is uniform on the sphere
    # S⁴: each squared entry is Beta(1/2, 2)
    for shape, entries in [((5, 2), lambda q: q), ((2, 5), lambda q: q.swapaxes(1, 2))]:
        q = entries(_haar_draws(shape))
        for i in range(5):
            for j in range(2):
                assert _ks(q[:, i, j] ** 2, stats.beta(0.5, 2).cdf) > 1e-3, (shape, i, j)


@pytest.mark.slow  # ~12 s; every scheme under vmap: tests/test_core.py
def test_fast_orthogonal_under_vmap_equals_per_key(key):
    init = jaxinit.fast(jaxinit.orthogonal())
    keys = jax.random.split(key, 3)
    batch = jax.jit(jax.vmap(lambda k: init(k, (96, 80))))(keys)
    for i in range(3):
        np.testing.assert_allclose(batch[i], init(keys[i], (96, 80)), atol=1e-6)
