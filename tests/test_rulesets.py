"""Rule sets demonstrated on small real models: a residual MLP (Fixup, ReZero), a tiny pre-LN
transformer (GPT-2, T-Fixup) and MLPs of two widths (muP)."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxinit


class ResBlock(nn.Module):
    """x + scale·F(x), F = m Dense layers (the last named ``out``), with Fixup's scalar
    biases before every layer and activation, or a ReZero gate ``alpha``."""

    width: int
    m: int = 2
    gate: str = "fixup"  # "fixup" | "rezero"

    @nn.compact
    def __call__(self, x):
        h = x
        for j in range(self.m):
            if self.gate == "fixup":
                h = h + self.param(f"fixup_bias_{2 * j}", nn.initializers.zeros, ())
            last = j == self.m - 1
            h = nn.Dense(self.width, name="out" if last else f"fc_{j}")(h)
            if not last:
                if self.gate == "fixup":
                    h = h + self.param(f"fixup_bias_{2 * j + 1}", nn.initializers.zeros, ())
                h = jax.nn.relu(h)
        if self.gate == "fixup":
            h = h * self.param("fixup_scale", nn.initializers.ones, ())
        else:
            h = h * self.param("alpha", nn.initializers.ones, ())  # reinit sets it to 0
        return x + h


class ResMLP(nn.Module):
    width: int = 64
    blocks: int = 4
    m: int = 2
    gate: str = "fixup"

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.width, name="stem")(x.reshape(x.shape[0], -1))
        for i in range(self.blocks):
            x = ResBlock(self.width, self.m, self.gate, name=f"block_{i}")(jax.nn.relu(x))
        return nn.Dense(10, name="head")(jax.nn.relu(x))


class Transformer(nn.Module):
    vocab: int = 32
    d: int = 64
    n_layer: int = 2
    use_ln: bool = True

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(self.vocab, self.d, name="embed")(tokens)
        for i in range(self.n_layer):
            x = _Scoped(self.d, self.use_ln, name=f"block_{i}")(x)
        if self.use_ln:
            x = nn.LayerNorm(name="ln_f")(x)
        return nn.Dense(self.vocab, name="head")(x)


class _Scoped(nn.Module):
    """Block with its layers grouped as attn/* and mlp/* (GPT-2's naming)."""

    d: int
    use_ln: bool

    def setup(self):
        self.attn = _Group(("query", "key", "value", "out"), (self.d,) * 4)
        self.mlp = _Group(("fc", "proj"), (4 * self.d, self.d))
        if self.use_ln:
            self.ln_1, self.ln_2 = nn.LayerNorm(), nn.LayerNorm()

    def __call__(self, x, heads=4):
        b, t, d = x.shape
        ln1 = self.ln_1 if self.use_ln else (lambda y: y)
        ln2 = self.ln_2 if self.use_ln else (lambda y: y)
        h = ln1(x)
        split = lambda y: y.reshape(b, t, heads, d // heads)
        att = nn.dot_product_attention(
            split(self.attn.query(h)), split(self.attn.key(h)), split(self.attn.value(h))
        )
        x = x + self.attn.out(att.reshape(b, t, d))
        return x + self.mlp.proj(jax.nn.gelu(self.mlp.fc(ln2(x))))


class _Group(nn.Module):
    names: tuple[str, ...]
    widths: tuple[int, ...]

    def setup(self):
        for n, w in zip(self.names, self.widths, strict=True):
            setattr(self, n, nn.Dense(w))


def _std(x):
    return float(np.std(np.asarray(x, np.float64)))


@pytest.fixture(scope="module")
def digits():
    d = jaxinit.digits()
    return jnp.asarray(d.x_train[:256]), jnp.asarray(d.y_train[:256])


def _sgd_loss_drop(model, variables, x, y, steps=30, lr=0.05):
    opt = optax.sgd(lr, momentum=0.9)
    params = variables["params"]
    state = opt.init(params)

    def loss(p):
        logits = model.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(p, s):
        value, g = jax.value_and_grad(loss)(p)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, value

    first = None
    for _ in range(steps):
        params, state, value = step(params, state)
        first = value if first is None else first
    return float(first), float(loss(params))


@pytest.mark.parametrize("m", [2, 3])
def test_fixup_on_residual_mlp(m, digits):
    x, y = digits
    L = 4
    model = ResMLP(width=64, blocks=L, m=m)
    v0 = jax.jit(model.init)(jax.random.key(0), x[:2])
    v = jaxinit.reinit(v0, jaxinit.fixup(L, m), jax.random.key(1))
    p = v["params"]
    assert not np.any(p["head"]["kernel"]) and not np.any(p["head"]["bias"])
    hidden = []
    for i in range(L):
        blk = p[f"block_{i}"]
        assert not np.any(blk["out"]["kernel"])
        assert float(blk["fixup_scale"]) == 1.0
        assert all(float(blk[f"fixup_bias_{j}"]) == 0.0 for j in range(2 * m - 1))
        hidden += [np.ravel(blk[f"fc_{j}"]["kernel"]) for j in range(m - 1)]
    # branch layers: He std times L^(-1/(2m-2)); the stem: plain He
    np.testing.assert_allclose(
        _std(np.concatenate(hidden)), math.sqrt(2 / 64) * L ** (-1 / (2 * m - 2)), rtol=0.05
    )
    np.testing.assert_allclose(_std(p["stem"]["kernel"]), math.sqrt(2 / 64), rtol=0.05)
    # every branch is zero at init, so the logits are exactly 0 ...
    assert not np.any(model.apply(v, x))
    # ... and the network still trains (the zero layers get gradients).
    if m == 3:
        return  # one training run is enough
    first, last = _sgd_loss_drop(model, v, x, y)
    assert first == pytest.approx(math.log(10), rel=1e-5) and last < 0.5 * first


def test_fixup_needs_two_layers_per_branch():
    with pytest.raises(ValueError, match="layers_per_branch must be an int >= 2"):
        jaxinit.fixup(4, 1)
    with pytest.raises(ValueError, match="num_blocks must be an int >= 1"):
        jaxinit.fixup(0)


def test_rezero_blocks_start_as_identity(digits):
    x, _ = digits
    model = ResMLP(width=32, blocks=3, gate="rezero")
    v = jaxinit.reinit(
        jax.jit(model.init)(jax.random.key(0), x[:2]), jaxinit.rezero(), jax.random.key(1)
    )
    assert all(float(v["params"][f"block_{i}"]["alpha"]) == 0.0 for i in range(3))
    # with every gate at 0 the network is stem -> relu^(blocks+1) -> head
    shallow = ResMLP(width=32, blocks=0, gate="rezero")
    sp = {"params": {k: v["params"][k] for k in ("stem", "head")}}
    np.testing.assert_allclose(model.apply(v, x), shallow.apply(sp, x), rtol=1e-6, atol=1e-6)

    def loss(p):
        return jnp.sum(model.apply({"params": p}, x) ** 2)

    g = jax.grad(loss)(v["params"])
    assert all(abs(float(g[f"block_{i}"]["alpha"])) > 0 for i in range(3))  # gates learn


def test_rezero_on_nnx_gate():
    class Gated(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(8, 8, rngs=rngs)
            self.alpha = nnx.Param(jnp.ones(()))

        def __call__(self, x):
            return x + self.alpha[...] * self.fc(x)

    m = jaxinit.reinit(Gated(nnx.Rngs(0)), jaxinit.skipinit(), jax.random.key(0))
    x = jnp.arange(16.0).reshape(2, 8)
    np.testing.assert_array_equal(m(x), x)


def _transformer(use_ln=True, n_layer=2, d=64):
    model = Transformer(d=d, n_layer=n_layer, use_ln=use_ln)
    tokens = jax.random.randint(jax.random.key(0), (4, 8), 0, 32)
    return model, tokens, jax.jit(model.init)(jax.random.key(0), tokens)


def test_gpt2_on_transformer():
    n = 3
    model, tokens, v0 = _transformer(n_layer=n)
    v = jaxinit.reinit(v0, jaxinit.gpt2(n), jax.random.key(1))
    p = v["params"]
    proj = [p[f"block_{i}"][g][n_]["kernel"] for i in range(n) for g, n_ in
            (("attn", "out"), ("mlp", "proj"))]  # fmt: skip
    other = [p[f"block_{i}"]["attn"][n_]["kernel"] for i in range(n) for n_ in ("query", "key")]
    np.testing.assert_allclose(
        _std(np.concatenate([np.ravel(a) for a in proj])), 0.02 / math.sqrt(2 * n), rtol=0.05
    )
    np.testing.assert_allclose(_std(np.concatenate([np.ravel(a) for a in other])), 0.02, rtol=0.05)
    np.testing.assert_allclose(_std(p["embed"]["embedding"]), 0.02, rtol=0.05)
    assert not np.any(p["block_0"]["mlp"]["fc"]["bias"])
    np.testing.assert_array_equal(p["block_0"]["ln_1"]["scale"], 1.0)  # LayerNorm untouched
    assert np.isfinite(model.apply(v, tokens)).all()


@pytest.mark.parametrize("role", ["encoder", "decoder"])
def test_t_fixup_on_transformer_without_layernorm(role):
    n, d = 2, 64
    model, tokens, v0 = _transformer(use_ln=False, n_layer=n, d=d)
    assert "ln_1" not in v0["params"]["block_0"]
    v = jaxinit.reinit(v0, jaxinit.t_fixup(n, role=role), jax.random.key(1))
    p = v["params"]
    s = 0.67 * n**-0.25 if role == "encoder" else (9 * n) ** -0.25
    blk = p["block_0"]
    xavier = lambda k: math.sqrt(2 / sum(k.shape))
    for kernel in (blk["attn"]["value"]["kernel"], blk["attn"]["out"]["kernel"]):
        np.testing.assert_allclose(_std(kernel), s * xavier(kernel), rtol=0.06)
    for kernel in (blk["mlp"]["fc"]["kernel"], blk["mlp"]["proj"]["kernel"]):
        np.testing.assert_allclose(_std(kernel), s * xavier(kernel), rtol=0.05)
    q = blk["attn"]["query"]["kernel"]
    np.testing.assert_allclose(_std(q), xavier(q), rtol=0.06)  # not scaled
    np.testing.assert_allclose(_std(p["embed"]["embedding"]), s / math.sqrt(d), rtol=0.06)
    out = model.apply(v, tokens)
    assert np.isfinite(out).all() and _std(out) > 0


def _mlp_logits(width, rules, x, classes=10):
    model = jaxinit.MLP((width, width, classes), "relu")
    v = jax.jit(model.init)(jax.random.key(0), x[:2])
    head = sorted(v["params"])[-1]  # Dense_2: the readout
    rules = rules(f"{head}/kernel")
    v = jaxinit.reinit(v, rules, jax.random.key(1))
    return v["params"], model.apply(v, x)


def test_mup_hidden_fan_in_and_zero_readout(digits):
    x, _ = digits
    p, logits = _mlp_logits(256, lambda r: jaxinit.mup(readout=r), x)
    np.testing.assert_allclose(_std(p["Dense_1"]["kernel"]), 1 / math.sqrt(256), rtol=0.05)
    np.testing.assert_allclose(_std(p["Dense_0"]["kernel"]), 1 / math.sqrt(64), rtol=0.05)
    assert not np.any(logits)


def test_mup_readout_one_over_width_shrinks_logits(digits):
    x, _ = digits
    rule = lambda r: jaxinit.mup(readout=r, readout_init="mup")
    stds = {}
    for width in (64, 1024):
        # many readout units, so that the logit scale is estimated to a few percent
        p, logits = _mlp_logits(width, rule, x, classes=256)
        np.testing.assert_allclose(_std(p["Dense_2"]["kernel"]), 1 / width, rtol=0.1)
        stds[width] = _std(logits)
    # logits ~ 1/sqrt(width): 16x the width, about 1/4 the logit scale
    assert 3.0 < stds[64] / stds[1024] < 5.3


def test_ruleset_errors():
    with pytest.raises(ValueError, match="readout_init='xavier' is not supported"):
        jaxinit.mup(readout_init="xavier")
    with pytest.raises(ValueError, match="n_layer must be an int >= 1"):
        jaxinit.gpt2(0)
    with pytest.raises(ValueError, match="role='middle' is not supported"):
        jaxinit.t_fixup(2, role="middle")
