"""Whole-model init in one compiled program, sharded over the 4 forced host CPU devices."""

import zlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jaxinit

SHAPES = {
    "wte": jax.ShapeDtypeStruct((64, 32), jnp.float32),
    "h_0": {
        "attn": {"kernel": jax.ShapeDtypeStruct((32, 96), jnp.float32)},
        "mlp": {"kernel": jax.ShapeDtypeStruct((32, 128), jnp.float32)},
        "ln": {"scale": jax.ShapeDtypeStruct((32,), jnp.float32)},
    },
}
RULES = {"wte": jaxinit.normal(0.02), "*kernel": jaxinit.he_normal(), "*scale": jaxinit.ones}
PARTITION = {"wte": P("model", None), "*kernel": P(None, "model")}


@pytest.fixture
def mesh():
    assert jax.device_count() == 4
    return jax.make_mesh((4,), ("model",))


def _leaves(tree):
    return jax.tree_util.tree_leaves(tree)


@pytest.mark.parametrize("fast", [False, True])
def test_sharded_equals_unsharded_and_no_device_holds_the_full_array(key, mesh, fast):
    sharded = jaxinit.init_params(
        SHAPES, key, rules=RULES, mesh=mesh, partition=PARTITION, fast=fast
    )
    plain = jaxinit.init_params(SHAPES, key, rules=RULES, fast=fast)
    # bit-for-bit: threefry is partitionable (jax default) and the fast hash is per element
    assert jax.config.jax_threefry_partitionable
    for s, p in zip(_leaves(sharded), _leaves(plain), strict=True):
        np.testing.assert_array_equal(np.asarray(s), np.asarray(p))
    kernel = sharded["h_0"]["attn"]["kernel"]
    assert {sh.data.shape for sh in kernel.addressable_shards} == {(32, 24)}
    assert {sh.data.shape for sh in sharded["wte"].addressable_shards} == {(16, 32)}
    # the replicated leaf is whole on every device
    assert {sh.data.shape for sh in sharded["h_0"]["ln"]["scale"].addressable_shards} == {(32,)}
    # the leaf's key is fold_in(key, crc32(path)) (eager vs jit may differ by an ulp)
    # (with fast=True the base key is made fast first, then folded)
    base = jaxinit.fast_key(key) if fast else key
    leaf_key = jax.random.fold_in(base, zlib.crc32(b"wte") & 0x7FFFFFFF)
    np.testing.assert_allclose(
        np.asarray(plain["wte"]), RULES["wte"](leaf_key, (64, 32)), rtol=1e-6
    )


def test_compiled_program_is_per_shard(key, mesh):
    init = jaxinit.make_init(SHAPES, rules=RULES, mesh=mesh, partition=PARTITION)
    compiled = init.lower(key).compile()
    shard_bytes = 4 * (16 * 32 + 32 * 24 + 32 * 32 + 32)
    full_bytes = 4 * (64 * 32 + 32 * 96 + 32 * 128 + 32)
    mem = compiled.memory_analysis()
    if mem is not None:
        # the shards plus the output tuple's pointer table (8 bytes a leaf)
        assert shard_bytes <= mem.output_size_in_bytes <= shard_bytes + 8 * 4 < full_bytes
    # the per-device HLO only ever produces the shard shapes
    hlo = compiled.as_text()
    assert "f32[32,24]" in hlo and "f32[16,32]" in hlo
    assert "f32[32,96]" not in hlo and "f32[64,32]" not in hlo


class _Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(16, kernel_init=jaxinit.lecun_normal())(x)
        return nn.Dense(8, kernel_init=jaxinit.glorot_uniform())(x)


def test_flax_model_init_sharded(key, mesh):
    model = _Tiny()
    x = jnp.ones((2, 12))
    target = lambda k: model.init(k, x)
    part = {"*kernel": P(None, "model"), "*bias": P("model")}
    sharded = jaxinit.init_params(target, key, mesh=mesh, partition=part)
    plain = model.init(key, x)
    for s, p in zip(_leaves(sharded), _leaves(plain), strict=True):
        np.testing.assert_array_equal(np.asarray(s), np.asarray(p))
    k0 = sharded["params"]["Dense_0"]["kernel"]
    assert {sh.data.shape for sh in k0.addressable_shards} == {(12, 4)}
    # fast flax init: same shapes and variance scale, other values
    fast = jaxinit.init_params(target, key, mesh=mesh, partition=part, fast=True)
    fk = np.asarray(fast["params"]["Dense_0"]["kernel"])
    assert fk.shape == (12, 16) and not np.array_equal(fk, np.asarray(k0))
    assert float(np.max(np.abs(fk))) < 2 / np.sqrt(12) / 0.8796 * 1.001


def test_callable_with_rules_redraws_matches(key):
    model = _Tiny()
    x = jnp.ones((2, 12))
    out = jaxinit.init_params(lambda k: model.init(k, x), key, rules={"*bias": jaxinit.ones})
    assert np.all(np.asarray(out["params"]["Dense_1"]["bias"]) == 1)


def test_errors(key, mesh):
    with pytest.raises(ValueError, match="needs rules"):
        jaxinit.init_params(SHAPES, key)
    with pytest.raises(ValueError, match="does not divide"):
        odd = {"b": jax.ShapeDtypeStruct((6,), jnp.float32)}
        jaxinit.init_params(
            odd, key, rules={"b": jaxinit.zeros}, mesh=mesh, partition={"b": P("model")}
        )
    with pytest.raises(ValueError, match="no rule matches"):
        jaxinit.init_params(SHAPES, key, rules={"wte": jaxinit.normal(), "*kernel": jaxinit.ones})
    with pytest.raises(ValueError, match="need a mesh"):
        jaxinit.init_params(SHAPES, key, rules=RULES, partition=PARTITION)
    with pytest.raises(TypeError, match="not a PartitionSpec"):
        jaxinit.init_params(SHAPES, key, rules=RULES, mesh=mesh, partition={"wte": "model"})


def test_sharded_fast_orthogonal_equals_unsharded(key, mesh):
    # the fast orthogonal is built from matrix products (no QR), so XLA partitions it
    shapes = {"w": jax.ShapeDtypeStruct((256, 128), jnp.float32)}
    rules = {"w": jaxinit.orthogonal()}
    part = {"w": P(None, "model")}
    sharded = jaxinit.init_params(shapes, key, rules=rules, mesh=mesh, partition=part, fast=True)
    plain = jaxinit.init_params(shapes, key, rules=rules, fast=True)
    assert {sh.data.shape for sh in sharded["w"].addressable_shards} == {(256, 32)}
    np.testing.assert_allclose(np.asarray(sharded["w"]), np.asarray(plain["w"]), atol=1e-6)
    w = np.asarray(sharded["w"], np.float64)
    np.testing.assert_allclose(w.T @ w, np.eye(128), atol=1e-5)
