"""reinit: rules by path on linen, nnx, Equinox and plain pytrees; torch default rules."""

import functools
import re
import zlib

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit
from jaxinit.rules._rules import matches


class Named(nn.Module):
    """An MLP whose layers have explicit names, so one can be added without renaming."""

    names: tuple[str, ...]
    width: int = 64

    @nn.compact
    def __call__(self, x):
        for name in self.names:
            x = jax.nn.relu(nn.Dense(self.width, name=name)(x))
        return nn.Dense(3, name="head")(x)


def _init(model, key=0, shape=(2, 16)):
    return model.init(jax.random.key(key), jnp.ones(shape))


def _shapes(tree):
    return jax.tree.map(lambda x: (x.shape, x.dtype), tree)


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("kernel", "params/Dense_0/kernel", True),
        ("*/kernel", "params/Dense_0/kernel", True),
        ("Dense_*/bias", "params/Dense_0/bias", True),
        ("Dense_*", "params/Dense_0/bias", False),  # * stays inside one segment
        ("Dense_0/**", "params/Dense_0/bias", True),
        ("/Dense_0/kernel", "params/Dense_0/kernel", False),  # a leading / anchors
        ("/params/Dense_0/kernel", "params/Dense_0/kernel", True),
        ("**", "a/b/c", True),
        ("block_*/**/kernel", "params/block_0/kernel", True),
        ("block_*/**/kernel", "params/block_0/a/b/kernel", True),
        ("{kernel,weight}", "layers/0/weight", True),
        ("{attn/out,mlp/proj}/kernel", "block_1/mlp/proj/kernel", True),
        ("{attn/out,mlp/proj}/kernel", "block_1/mlp/fc/kernel", False),
        ("ernel", "Dense_0/kernel", False),  # whole segments only
        ("Dense_[01]/kernel", "Dense_1/kernel", True),
        ("Dense_[!01]/kernel", "Dense_1/kernel", False),
        ("Dense_?/kernel", "Dense_12/kernel", False),
        (re.compile(r".*Dense_\d+/kernel"), "params/Dense_12/kernel", True),
        (re.compile(r"Dense_\d+/kernel"), "params/Dense_12/kernel", False),  # fullmatch
    ],
)
def test_pattern_semantics(pattern, path, hit):
    assert matches(pattern, path) is hit


def test_linen_first_match_wins_and_rest_unchanged():
    v = _init(Named(("a", "b")))
    new = jaxinit.reinit(v, {"a/kernel": "zeros", "kernel": jaxinit.he_normal()}, jax.random.key(1))
    assert _shapes(new) == _shapes(v)
    p, q = new["params"], v["params"]
    assert not np.any(p["a"]["kernel"])
    assert not np.array_equal(p["b"]["kernel"], q["b"]["kernel"])
    for layer in ("a", "b", "head"):  # no rule for biases: the very same arrays
        assert p[layer]["bias"] is q[layer]["bias"]
    np.testing.assert_allclose(np.std(p["b"]["kernel"]), np.sqrt(2 / 64), rtol=0.1)


def test_none_excludes_and_pairs_and_regex():
    v = _init(Named(("a", "b")))
    rules = [("head/kernel", None), (re.compile(r".*/kernel"), "ones")]
    new = jaxinit.reinit(v, rules, jax.random.key(0))
    assert new["params"]["head"]["kernel"] is v["params"]["head"]["kernel"]
    assert np.all(new["params"]["a"]["kernel"] == 1)
    assert np.all(new["params"]["b"]["kernel"] == 1)


def test_input_is_not_modified():
    v = _init(Named(("a",)))
    copy = jax.tree.map(np.array, v)
    jaxinit.reinit(v, {"kernel": "zeros"}, jax.random.key(0))
    jax.tree.map(np.testing.assert_array_equal, v, copy)


def test_adding_a_layer_changes_no_other_layer():
    rules = {"kernel": jaxinit.he_normal(), "bias": jaxinit.normal(0.1)}
    small = jaxinit.reinit(_init(Named(("a", "b"))), rules, jax.random.key(3))
    large = jaxinit.reinit(_init(Named(("a", "new", "b"))), rules, jax.random.key(3))
    for layer in ("a", "b", "head"):
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(
                small["params"][layer][leaf], large["params"][layer][leaf]
            )


def test_leaf_key_is_fold_in_of_crc32_of_path():
    # A stable hash: the value is the same in every process (Python's hash() is salted).
    v = _init(Named(("a",)))
    key = jax.random.key(7)
    new = jaxinit.reinit(v, {"a/kernel": jaxinit.he_normal()}, key)
    leaf_key = jax.random.fold_in(key, zlib.crc32(b"params/a/kernel") & 0x7FFFFFFF)
    expect = jaxinit.he_normal()(leaf_key, (16, 64), jnp.float32)
    np.testing.assert_array_equal(new["params"]["a"]["kernel"], expect)


def test_dtypes_preserved_bf16():
    v = jax.tree.map(lambda x: x.astype(jnp.bfloat16), _init(Named(("a",))))
    new = jaxinit.reinit(v, {"kernel": "glorot_uniform", "bias": "ones"}, jax.random.key(0))
    assert _shapes(new) == _shapes(v)


def test_unmatched_rule_lists_paths():
    v = _init(Named(("a",)))
    with pytest.raises(ValueError, match=r"'Conv_\*/kernel' matches no parameter.*params/a/kernel"):
        jaxinit.reinit(v, {"kernel": "zeros", "Conv_*/kernel": "zeros"}, jax.random.key(0))


def test_optional_rule_may_match_nothing():
    v = _init(Named(("a",)))
    new = jaxinit.reinit(v, {"alpha": jaxinit.optional("zeros")}, jax.random.key(0))
    jax.tree.map(np.testing.assert_array_equal, new, v)


def test_jit_and_vmap():
    v = _init(Named(("a", "b")))
    rules = {"kernel": jaxinit.he_uniform()}
    f = jax.jit(functools.partial(jaxinit.reinit, rules=rules))
    eager = jaxinit.reinit(v, rules, jax.random.key(2))
    jitted = f(v, key=jax.random.key(2))
    jax.tree.map(np.testing.assert_array_equal, eager, jitted)
    many = jax.vmap(lambda k: jaxinit.reinit(v, rules, k))(jax.random.split(jax.random.key(0), 3))
    a = many["params"]["a"]["kernel"]
    assert a.shape == (3, 16, 64) and not np.array_equal(a[0], a[1])


def test_nnx_module_returns_new_module_and_keeps_rng_state():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(16, 32, rngs=rngs)
            self.drop = nnx.Dropout(0.1, rngs=rngs)
            self.out = nnx.Linear(32, 3, rngs=rngs)

        def __call__(self, x):
            return self.out(self.drop(jax.nn.relu(self.fc(x)), deterministic=True))

    model = Net(nnx.Rngs(0))
    before = np.array(model.fc.kernel[...])
    new = jaxinit.reinit(model, {"out/kernel": "zeros", "**": jaxinit.ones}, jax.random.key(1))
    assert isinstance(new, Net) and new is not model
    np.testing.assert_array_equal(model.fc.kernel[...], before)  # input untouched
    assert np.all(new.fc.kernel[...] == 1) and np.all(new.fc.bias[...] == 1)
    assert not np.any(new.out.kernel[...])
    # RNG keys and counts are not parameters: untouched by "**"
    assert new.drop.rngs.count[...] == model.drop.rngs.count[...]
    assert new.drop.rngs.key[...] == model.drop.rngs.key[...]
    np.testing.assert_array_equal(new(jnp.ones((2, 16))), jnp.ones((2, 3)))
    # nnx.State in, State out
    state = nnx.state(model, nnx.Param)
    new_state = jaxinit.reinit(state, {"kernel": "zeros"}, jax.random.key(0))
    assert isinstance(new_state, nnx.State)
    assert not np.any(new_state["fc"]["kernel"][...])


def test_equinox_weights_use_out_in_layout():
    key = jax.random.key(0)
    mlp = eqx.nn.MLP(1000, 20, 20, depth=1, key=key)  # weights (20, 1000) and (20, 20)
    conv = eqx.nn.Conv2d(50, 20, 3, key=key)  # weight (20, 50, 3, 3): fan_in 450
    model = (mlp, conv)
    new = jaxinit.reinit(model, {"weight": jaxinit.he_normal(), "bias": "zeros"}, key)
    w0 = new[0].layers[0].weight
    assert w0.shape == (20, 1000)
    np.testing.assert_allclose(np.std(w0), np.sqrt(2 / 1000), rtol=0.05)  # not 2/20
    np.testing.assert_allclose(np.std(new[1].weight), np.sqrt(2 / 450), rtol=0.05)
    assert not np.any(new[0].layers[0].bias)
    assert new[0](jnp.ones(1000)).shape == (20,)  # the model still runs
    # the escape hatch: a layout given explicitly wins
    flax_like = jaxinit.reinit(mlp, {"layers/0/weight": jaxinit.he_normal()}, key, layout="flax")
    np.testing.assert_allclose(np.std(flax_like.layers[0].weight), np.sqrt(2 / 20), rtol=0.1)


def _bound(x):
    return float(np.max(np.abs(x)))


def test_torch_default_rules_linen_nnx_equinox():
    rules = jaxinit.torch_default_rules()
    key = jax.random.key(0)

    # linen: Dense 1000 -> 50 and Conv 3x3, 20 -> 30 (fan_in 180)
    class Lin(nn.Module):
        @nn.compact
        def __call__(self, x, img):
            return nn.Dense(50)(x), nn.Conv(30, (3, 3))(img)

    sample = (jnp.ones((1, 1000)), jnp.ones((1, 5, 5, 20)))
    v = Lin().init(key, *sample)
    # a rank-4 linen kernel needs its module to know its fans (conv or stack?)
    with pytest.raises(ValueError, match="module=model, sample=x"):
        jaxinit.reinit(v, rules, key)
    v = jaxinit.reinit(v, rules, key, module=Lin(), sample=sample)["params"]
    lin = [(v["Dense_0"]["kernel"], v["Dense_0"]["bias"], 1000),
           (v["Conv_0"]["kernel"], v["Conv_0"]["bias"], 180)]  # fmt: skip
    # nnx, with an Embed that gets torch's N(0, 1) (flax's default std is 1/sqrt(D))
    m = nnx.Sequential(nnx.Linear(1000, 50, rngs=nnx.Rngs(0)))
    m.emb = nnx.Embed(100, 4, rngs=nnx.Rngs(0))
    m2 = jaxinit.reinit(m, rules, key)
    assert 0.85 < float(np.std(m2.emb.embedding[...])) < 1.15  # 400 draws: SE of std 0.035
    lin.append((m2.layers[0].kernel[...], m2.layers[0].bias[...], 1000))
    # equinox: (out, in) weights, LayerNorm weight/bias untouched
    e = (eqx.nn.Linear(1000, 50, key=key), eqx.nn.Conv2d(20, 30, 3, key=key), eqx.nn.LayerNorm(7))
    e2 = jaxinit.reinit(e, rules, key)
    np.testing.assert_array_equal(e2[2].weight, e[2].weight)
    lin += [(e2[0].weight, e2[0].bias, 1000), (e2[1].weight, e2[1].bias.ravel(), 180)]
    for kernel, bias, fan_in in lin:
        b = 1 / np.sqrt(fan_in)
        assert 0.95 * b < _bound(kernel) <= b
        assert 0.6 * b < _bound(bias) <= b  # the kernel's fan_in, not the bias's own shape
    np.testing.assert_allclose(np.var(lin[0][0]), 1 / (3 * 1000), rtol=0.05)


def test_context_rule_sees_siblings_owner_and_can_keep():
    seen = {}

    def build(info):
        seen[info.path] = (info.siblings, info.owner, info.layout, info.name)
        return None  # keep the leaf

    m = nnx.Sequential(nnx.Linear(4, 3, rngs=nnx.Rngs(0)))
    out = jaxinit.reinit(m, {"bias": jaxinit.ContextRule(build)}, jax.random.key(0))
    np.testing.assert_array_equal(out.layers[0].bias[...], m.layers[0].bias[...])
    siblings, owner, layout, name = seen["layers/0/bias"]
    assert siblings == {"kernel": (4, 3)} and owner is nnx.Linear
    assert layout == "flax" and name == "bias"


def _wrong_shape(key, shape, dtype=None):
    return jnp.zeros((1,), dtype)


@pytest.mark.parametrize(
    ("rules", "error", "message"),
    [
        ({}, ValueError, "rules is empty"),
        ("kernel", TypeError, "rules must be a mapping"),
        ({3: "zeros"}, TypeError, "pattern must be a glob string or a re.Pattern"),
        ({"kernel": 3}, TypeError, "3 is not an initializer"),
        ({"kernel": "he_unifrom"}, ValueError, "did you mean 'he_uniform'"),
        ({"Dense_[0/kernel": "zeros"}, ValueError, "unclosed '\\['"),
        ({"kernel": _wrong_shape}, ValueError, r"returned shape \(1,\).*expected \(16, 64\)"),
        ([("kernel",)], TypeError, "must be a \\(pattern, initializer\\) pair"),
    ],
)
def test_bad_rules(rules, error, message):
    with pytest.raises(error, match=message):
        jaxinit.reinit(_init(Named(("a",))), rules, jax.random.key(0))


def test_bad_layout():
    with pytest.raises(ValueError, match="layout must be"):
        jaxinit.reinit({"w": jnp.ones((2, 2))}, {"w": "zeros"}, jax.random.key(0), layout="tf")


def test_any_of_needs_one_alternative_a_glob_needs_each():
    import re

    params = {"fc": {"kernel": jnp.zeros((4, 3))}, "eqx": {"w": jnp.zeros((2, 2))}}
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="alternative 'weight' matches no parameter"):
        jaxinit.reinit(params, {"{kernel,weight}": "ones"}, key)
    out = jaxinit.reinit(params, {jaxinit.any_of("{kernel,weight}"): "ones"}, key)
    np.testing.assert_array_equal(out["fc"]["kernel"], 1.0)
    np.testing.assert_array_equal(out["eqx"]["w"], 0.0)
    both = jaxinit.any_of("fc/{kernel,weight}", re.compile(r".*/w"))
    assert isinstance(both, re.Pattern)
    assert _fullmatch(both, "a/fc/weight") and _fullmatch(both, "eqx/w")
    assert not _fullmatch(both, "fc/bias") and not _fullmatch(both, "fc/kernel2")
    assert _fullmatch(jaxinit.any_of("/fc/kernel"), "fc/kernel")  # anchored
    assert not _fullmatch(jaxinit.any_of("/fc/kernel"), "x/fc/kernel")
    with pytest.raises(ValueError, match="any_of: give at least one pattern"):
        jaxinit.any_of()
    with pytest.raises(TypeError, match="any_of: a pattern must be a glob string"):
        jaxinit.any_of(3)
    # nothing matched at all is still an error (any_of is not optional)
    with pytest.raises(ValueError, match="matches no parameter"):
        jaxinit.reinit(params, {jaxinit.any_of("{bias,scale}"): "ones"}, key)


def _fullmatch(pattern, path):
    return pattern.fullmatch(path) is not None
