"""Statistical tests: each would fail if a scheme's formula were wrong.

200k draws per test; variance tolerances are 6 standard errors of the sample variance
(SE ≈ σ²·√(κ−1)/√n with κ the kurtosis), so a deterministic key never flakes and a wrong
factor (e.g. fan_out for fan_in, √6 for √2) is far outside.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxinit

N = 200_000
KEY = jax.random.key(42)
TRUNC_VAR = 0.87962566103423978**2  # variance of N(0,1) cut to ±2


def _var_tol(variance, kurtosis):
    return 6 * variance * math.sqrt((kurtosis - 1) / N)


def _draw(init, shape):
    w = np.asarray(init(KEY, shape), dtype=np.float64).ravel()
    assert w.size >= N
    return w


# (name, shape, expected variance, distribution, kurtosis); shapes are (…, in, out).
FLAX_CONV = (3, 3, 160, 320)  # fan_in 1440, fan_out 2880, 460 800 draws
DENSE = (500, 400)
CASES = [
    ("glorot_uniform", DENSE, 2 / 900, "uniform", 1.8),
    ("glorot_normal", DENSE, 2 / 900, "truncnorm", 2.36),
    ("he_uniform", FLAX_CONV, 2 / 1440, "uniform", 1.8),
    ("he_normal", FLAX_CONV, 2 / 1440, "truncnorm", 2.36),
    ("lecun_uniform", DENSE, 1 / 500, "uniform", 1.8),
    ("lecun_normal", FLAX_CONV, 1 / 1440, "truncnorm", 2.36),
    ("glorot_bengio_standard", DENSE, 1 / (3 * 500), "uniform", 1.8),
    ("torch_default_kernel", FLAX_CONV, 1 / (3 * 1440), "uniform", 1.8),
    ("torch_kaiming_normal", DENSE, 2 / 500, "norm", 3.0),
    ("torch_xavier_normal", DENSE, 2 / 900, "norm", 3.0),
    ("torch_xavier_uniform", DENSE, 2 / 900, "uniform", 1.8),
]


def _check(w, variance, dist, kurtosis):
    assert abs(w.mean()) < 6 * math.sqrt(variance / len(w))
    assert abs(w.var() - variance) < _var_tol(variance, kurtosis), (w.var(), variance)
    sd = math.sqrt(variance)
    if dist == "uniform":
        bound = math.sqrt(3 * variance)
        assert np.abs(w).max() <= bound * (1 + 1e-6)
        assert np.abs(w).max() > 0.999 * bound
        ref = stats.uniform(-bound, 2 * bound)
    elif dist == "truncnorm":
        scale = sd / math.sqrt(TRUNC_VAR)  # σ of the untruncated normal
        assert np.abs(w).max() <= 2 * scale * (1 + 1e-6)
        assert np.abs(w).max() > 0.99 * 2 * scale
        ref = stats.truncnorm(-2, 2, scale=scale)
    else:
        ref = stats.norm(scale=sd)
        assert np.abs(w).max() > 4 * sd  # not truncated
    assert stats.kstest(w[:N], ref.cdf).pvalue > 1e-4


@pytest.mark.parametrize(("name", "shape", "variance", "dist", "kurt"), CASES, ids=lambda x: str(x))
def test_variance_bounds_and_fit(name, shape, variance, dist, kurt):
    _check(_draw(jaxinit.get(name), shape), variance, dist, kurt)


@pytest.mark.parametrize("name", ["he_uniform", "he_normal", "glorot_uniform", "lecun_normal"])
def test_torch_layout_conv_kernel(name):
    flax_w = _draw(jaxinit.get(name), FLAX_CONV)
    torch_w = _draw(jaxinit.get(name, layout="torch"), (320, 160, 3, 3))
    assert abs(flax_w.var() - torch_w.var()) < 2 * _var_tol(flax_w.var(), 2.4)


@pytest.mark.parametrize(
    ("mode", "denominator"),
    [("fan_in", 500), ("fan_out", 400), ("fan_avg", 450), ("fan_geo_avg", math.sqrt(500 * 400))],
)
@pytest.mark.parametrize(
    "distribution", ["normal", "untruncated_normal", "uniform", "truncated_normal"]
)
def test_variance_scaling_modes(mode, denominator, distribution):
    w = _draw(jaxinit.variance_scaling(3.0, mode, distribution), DENSE)
    dist = {"uniform": "uniform", "truncated_normal": "truncnorm"}.get(distribution, "norm")
    kurt = {"uniform": 1.8, "truncnorm": 2.36, "norm": 3.0}[dist]
    _check(w, 3.0 / denominator, dist, kurt)


@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
def test_complex_variance(distribution):
    w = np.asarray(jaxinit.variance_scaling(2.0, "fan_in", distribution)(KEY, DENSE, jnp.complex64))
    expected = 2.0 / 500  # E|w|² = scale / fan
    assert abs(np.mean(np.abs(w) ** 2) - expected) < 0.02 * expected
    assert abs(w.mean()) < 0.01 * math.sqrt(expected)


def test_plain_random_schemes():
    cases = [
        (jaxinit.normal(0.3), 0.09, "norm", 0.0),
        (jaxinit.random_normal(1.5, 0.2), 0.04, "norm", 1.5),
        (jaxinit.torch_normal(-1.0, 0.5), 0.25, "norm", -1.0),
    ]
    for init, var, _, mean in cases:
        w = _draw(init, DENSE)
        assert abs(w.mean() - mean) < 6 * math.sqrt(var / N)
        assert abs(w.var() - var) < _var_tol(var, 3.0)
        assert stats.kstest(w[:N], stats.norm(mean, math.sqrt(var)).cdf).pvalue > 1e-4


def test_uniform_ranges():
    w = _draw(jaxinit.uniform(0.5), DENSE)  # jax: [0, scale)
    assert w.min() >= 0 and w.max() < 0.5 and w.max() > 0.499
    assert stats.kstest(w[:N], stats.uniform(0, 0.5).cdf).pvalue > 1e-4
    w = _draw(jaxinit.random_uniform(), DENSE)  # Keras: [-0.05, 0.05)
    assert w.min() >= -0.05 and w.max() < 0.05 and w.min() < -0.0499
    w = _draw(jaxinit.torch_uniform(2.0, 3.0), DENSE)
    assert stats.kstest(w[:N], stats.uniform(2.0, 1.0).cdf).pvalue > 1e-4


def test_truncated_normals_bounds():
    # jax: bounds in σ units, no variance correction.
    w = _draw(jaxinit.truncated_normal(0.1), DENSE)
    assert np.abs(w).max() <= 0.2 and np.abs(w).max() > 0.199
    assert abs(w.var() - 0.01 * TRUNC_VAR) < _var_tol(0.01 * TRUNC_VAR, 2.36)
    # Keras: mean ± 2σ.
    w = _draw(jaxinit.random_truncated_normal(1.0, 0.05), DENSE)
    assert w.min() >= 0.9 and w.max() <= 1.1
    # torch: absolute bounds; std 0.02 with a=-2, b=2 cuts nothing.
    w = _draw(jaxinit.torch_trunc_normal(std=0.02), DENSE)
    assert abs(w.var() - 0.0004) < _var_tol(0.0004, 3.0)
    w = _draw(jaxinit.torch_trunc_normal(0.0, 1.0, a=-0.5, b=1.0), DENSE)
    assert w.min() >= -0.5 and w.max() <= 1.0
    assert stats.kstest(w[:N], stats.truncnorm(-0.5, 1.0).cdf).pvalue > 1e-4


def test_torch_default_bias_uses_weight_fan_in():
    conv_bias = _draw(jaxinit.torch_default_bias(kernel_shape=(3, 3, 16, 64)), (N,))
    assert np.abs(conv_bias).max() <= 1 / math.sqrt(144) and np.abs(conv_bias).max() > 0.999 / 12
    torch_bias = _draw(
        jaxinit.torch_default_bias(kernel_shape=(64, 16, 3, 3), layout="torch"), (N,)
    )
    assert np.abs(torch_bias).max() <= 1 / 12


# The seed documents' mistakes (REFERENCE.md §1): each would be caught.
def test_he_uniform_upper_bound_uses_fan_in_not_fan_out():
    w = _draw(jaxinit.he_uniform(), (1000, 250))  # fan_in 1000, fan_out 250
    assert w.max() <= math.sqrt(6 / 1000) * (1 + 1e-6)  # the seed's √(6/fan_out) is 2× larger
    assert w.max() > 0.999 * math.sqrt(6 / 1000)
    assert abs(w.max() + w.min()) < 1e-3 * w.max()  # symmetric


def test_glorot_uniform_bound_is_sqrt6_not_sigma():
    w = _draw(jaxinit.glorot_uniform(), DENSE)
    assert w.max() > 0.999 * math.sqrt(6 / 900)


def test_glorot_normal_sigma_is_sqrt2_not_sqrt6():
    w = _draw(jaxinit.glorot_normal(), DENSE)
    assert abs(w.std() - math.sqrt(2 / 900)) < 0.01 * math.sqrt(2 / 900)
