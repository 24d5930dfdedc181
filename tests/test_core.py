"""Contract tests: every registered scheme, driven by the registry."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scheme_cases import CASES, GENERIC_SHAPES

import jaxinit


def _cases():
    for s in jaxinit.schemes():
        for options, shapes in CASES.get(s.name, [({}, GENERIC_SHAPES)]):
            for shape in shapes:
                yield pytest.param(s, options, shape, id=f"{s.name}-{shape}")


def _build(s, options, shape):
    try:
        return s.factory(**options)
    except Exception as e:  # pragma: no cover - a message for scheme authors
        pytest.fail(f"{s.name}: add a working case to tests/scheme_cases.py ({e})")


@pytest.mark.parametrize(("s", "options", "shape"), list(_cases()))
def test_contract(s, options, shape):
    init = _build(s, options, shape)
    key = jax.random.key(1)
    for dtype in (jnp.float32, jnp.bfloat16, jnp.float16):
        out = init(key, shape, dtype)
        assert out.shape == shape and out.dtype == dtype, (s.name, dtype)
        assert bool(jnp.all(jnp.isfinite(out.astype(jnp.float32))))
    default = init(key, shape)
    assert default.dtype == jnp.float32
    # Deterministic per key, typed and legacy keys give the same values.
    np.testing.assert_array_equal(default, init(jax.random.key(1), shape))
    np.testing.assert_array_equal(default, init(jax.random.PRNGKey(1), shape))
    if s.keyed:
        assert not np.array_equal(default, init(jax.random.key(2), shape)), "keys must matter"
    # jit (shape static) and vmap over keys.
    jitted = jax.jit(lambda k: init(k, shape))(key)
    np.testing.assert_allclose(jitted, default, rtol=1e-6, atol=1e-7)
    batch = jax.vmap(lambda k: init(k, shape))(jax.random.split(key, 3))
    assert batch.shape == (3, *shape)
    np.testing.assert_allclose(batch[0], init(jax.random.split(key, 3)[0], shape), rtol=1e-6)


KERNEL_SCHEMES = [
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "torch_default_kernel", "torch_kaiming_uniform", "torch_xavier_normal",
    "normal", "zeros",
]  # fmt: skip


@pytest.mark.parametrize("name", KERNEL_SCHEMES)
def test_flax_linen_layers_accept(name):
    init = jaxinit.get(name)
    x = jnp.ones((2, 5, 5, 3))
    for layer in (
        nn.Dense(4, kernel_init=init, bias_init=jaxinit.zeros),
        nn.Conv(4, (3, 3), kernel_init=init),
        nn.DenseGeneral((2, 3), axis=(-2, -1), kernel_init=init),
    ):
        params = layer.init(jax.random.key(0), x)
        assert layer.apply(params, x).dtype == jnp.float32
    embed = nn.Embed(10, 4, embedding_init=init)
    ids = jnp.array([1, 2])
    assert embed.apply(embed.init(jax.random.key(0), ids), ids).shape == (2, 4)


@pytest.mark.parametrize("name", KERNEL_SCHEMES)
def test_flax_nnx_layers_accept(name):
    init = jaxinit.get(name)
    rngs = nnx.Rngs(0)
    lin = nnx.Linear(3, 4, kernel_init=init, rngs=rngs)
    conv = nnx.Conv(3, 4, (3, 3), kernel_init=init, rngs=rngs)
    emb = nnx.Embed(10, 4, embedding_init=init, rngs=rngs)
    assert lin(jnp.ones((2, 3))).shape == (2, 4)
    assert conv(jnp.ones((1, 5, 5, 3))).shape == (1, 5, 5, 4)
    assert emb(jnp.array([3])).shape == (1, 4)


def test_bf16_is_not_upcast_inside_a_model():
    layer = nn.Dense(8, kernel_init=jaxinit.he_normal(), param_dtype=jnp.bfloat16)
    params = layer.init(jax.random.key(0), jnp.ones((1, 4), jnp.bfloat16))
    assert params["params"]["kernel"].dtype == jnp.bfloat16


@pytest.mark.parametrize("name", ["glorot_uniform", "he_normal", "lecun_uniform", "normal"])
def test_complex_dtypes(name):
    out = jaxinit.get(name)(jax.random.key(0), (64, 32), jnp.complex64)
    assert out.dtype == jnp.complex64
    assert float(jnp.abs(out.imag).max()) > 0


def test_layouts_give_the_same_fans():
    assert jaxinit.compute_fans((3, 3, 16, 32)) == (144.0, 288.0)
    assert jaxinit.compute_fans((32, 16, 3, 3), layout="torch") == (144.0, 288.0)
    assert jaxinit.compute_fans((32, 16), layout="equinox") == (16.0, 32.0)
    assert jaxinit.compute_fans((2, 16, 32), batch_axis=0) == (16.0, 32.0)
    assert jaxinit.compute_fans((4, 5, 6), in_axis=(0, 1), out_axis=2) == (20.0, 6.0)


def test_torch_layout_matches_flax_layout_statistically():
    # The same weight stored (in, out) and (out, in) gets the same bound.
    flax_w = jaxinit.he_uniform()(jax.random.key(0), (300, 50))
    torch_w = jaxinit.he_uniform(layout="torch")(jax.random.key(0), (50, 300))
    bound = np.sqrt(6 / 300)
    for w in (flax_w, torch_w):
        assert float(jnp.abs(w).max()) <= bound
        assert float(jnp.abs(w).max()) > 0.99 * bound
