"""Parity: bit-identical with jax.nn.initializers for shared names; flax layer defaults;
PyTorch's formulas (bounds, gains) checked without torch installed."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit

jnn = jax.nn.initializers
KEY = jax.random.key(7)
SHAPES = [(8, 6), (3, 3, 4, 5)]
DTYPES = [jnp.float32, jnp.bfloat16]


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                                  "lecun_uniform", "lecun_normal", "xavier_uniform",
                                  "xavier_normal", "kaiming_uniform", "kaiming_normal"])  # fmt: skip
@pytest.mark.parametrize("dtype", [*DTYPES, jnp.complex64])
@pytest.mark.parametrize("shape", SHAPES)
def test_named_schemes_bit_identical(name, dtype, shape):
    _same(getattr(jaxinit, name)()(KEY, shape, dtype), getattr(jnn, name)()(KEY, shape, dtype))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg", "fan_geo_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
@pytest.mark.parametrize(
    "axes",
    [
        {},
        {"in_axis": 0, "out_axis": 1},
        {"in_axis": (0, 1), "out_axis": -1},
        {"in_axis": -2, "out_axis": -1, "batch_axis": 0},
    ],
)
def test_variance_scaling_bit_identical(mode, distribution, axes):
    args = (0.7, mode, distribution)
    _same(
        jaxinit.variance_scaling(*args, **axes)(KEY, (3, 4, 5)),
        jnn.variance_scaling(*args, **axes)(KEY, (3, 4, 5)),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_plain_random_bit_identical(dtype):
    _same(jaxinit.normal()(KEY, (5, 7), dtype), jnn.normal()(KEY, (5, 7), dtype))
    _same(jaxinit.normal(0.3)(KEY, (5, 7), dtype), jnn.normal(0.3)(KEY, (5, 7), dtype))
    _same(jaxinit.uniform(2.0)(KEY, (5, 7), dtype), jnn.uniform(2.0)(KEY, (5, 7), dtype))
    _same(
        jaxinit.truncated_normal()(KEY, (5, 7), dtype), jnn.truncated_normal()(KEY, (5, 7), dtype)
    )
    tn = dict(stddev=0.5, lower=-1.0, upper=3.0)
    _same(
        jaxinit.truncated_normal(**tn)(KEY, (5, 7), dtype),
        jnn.truncated_normal(**tn)(KEY, (5, 7), dtype),
    )


def test_constants_identical():
    _same(jaxinit.zeros(KEY, (2, 3)), jnn.zeros(KEY, (2, 3)))
    _same(jaxinit.ones(KEY, (2, 3), jnp.bfloat16), jnn.ones(KEY, (2, 3), jnp.bfloat16))
    _same(jaxinit.constant(-7.0)(KEY, (2, 3)), jnn.constant(-7.0)(KEY, (2, 3)))
    _same(jaxinit.zeros(KEY, (2,), jnp.int32), jnn.zeros(KEY, (2,), jnp.int32))


def test_legacy_keys_identical():
    k = jax.random.PRNGKey(3)
    _same(jaxinit.he_normal()(k, (6, 4)), jnn.he_normal()(k, (6, 4)))


def test_flax_linen_dense_default_is_lecun_normal():
    x = jnp.ones((1, 6))
    params = nn.Dense(4).init(KEY, x)["params"]
    ours = nn.Dense(4, kernel_init=jaxinit.lecun_normal()).init(KEY, x)["params"]
    _same(params["kernel"], ours["kernel"])


def test_flax_embed_default_reproduced():
    ids = jnp.array([0, 3])
    default = nn.Embed(11, 5).init(KEY, ids)["params"]["embedding"]
    embed_init = jaxinit.variance_scaling(1.0, "fan_in", "normal", in_axis=-1, out_axis=0)
    ours = nn.Embed(11, 5, embedding_init=embed_init).init(KEY, ids)["params"]["embedding"]
    _same(default, ours)


def test_flax_nnx_linear_default_reproduced():
    a = nnx.Linear(6, 4, rngs=nnx.Rngs(0))
    b = nnx.Linear(6, 4, kernel_init=jaxinit.lecun_normal(), rngs=nnx.Rngs(0))
    _same(a.kernel[...], b.kernel[...])


# ----------------------------------------------------------------- PyTorch semantics
def test_calculate_gain_matches_torch_table():
    assert jaxinit.calculate_gain("linear") == 1
    for name in ("conv1d", "conv2d", "conv3d", "conv_transpose2d", "sigmoid"):
        assert jaxinit.calculate_gain(name) == 1
    assert jaxinit.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert jaxinit.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert jaxinit.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert jaxinit.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert jaxinit.calculate_gain("selu") == pytest.approx(0.75)


def _max_abs(init, shape):
    return float(jnp.abs(init(KEY, shape)).max())


def test_torch_kaiming_uniform_bounds():
    # torch weight (out=64, in=32, 3, 3): fan_in = 288, fan_out = 576.
    shape = (64, 32, 3, 3)
    for a, mode, nl, fan in [
        (0.0, "fan_in", "leaky_relu", 288),
        (0.0, "fan_out", "relu", 576),
        (0.2, "fan_in", "leaky_relu", 288),
        (0.0, "fan_in", "tanh", 288),
    ]:
        init = jaxinit.torch_kaiming_uniform(a, mode, nl, layout="torch")
        bound = jaxinit.calculate_gain(nl, a) * math.sqrt(3 / fan)
        m = _max_abs(init, shape)
        assert 0.99 * bound < m <= bound * (1 + 1e-6), (a, mode, nl)


def test_torch_default_linear_bounds():
    # nn.Linear(100, 30): weight (30, 100), bound 1/√100 for weight and bias.
    w = _max_abs(jaxinit.torch_default_kernel(layout="torch"), (30, 100))
    assert 0.099 < w <= 0.1
    b = _max_abs(jaxinit.torch_default_bias(fan_in=100), (3000,))
    assert 0.099 < b <= 0.1
    b2 = _max_abs(jaxinit.torch_default_bias(kernel_shape=(30, 100), layout="torch"), (3000,))
    assert 0.099 < b2 <= 0.1


def test_torch_xavier_gain():
    m = _max_abs(jaxinit.torch_xavier_uniform(gain=5 / 3), (200, 100))
    bound = 5 / 3 * math.sqrt(6 / 300)
    assert 0.99 * bound < m <= bound * (1 + 1e-6)


def test_torch_names_resolve_to_torch_semantics():
    w = jaxinit.get("kaiming_normal_")(KEY, (400, 500))
    assert float(jnp.abs(w).max()) > 4 * math.sqrt(2 / 400)  # plain normal, not truncated
    w = jaxinit.get("kaiming_normal")(KEY, (400, 500))
    assert float(jnp.abs(w).max()) <= 2 * math.sqrt(2 / 400) / 0.87962566103423978 * 1.0001
