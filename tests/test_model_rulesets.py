"""Rule sets of model families on models that have those layers: every variance checked
against its source's formula with a tolerance from the sample size (5 standard errors of
the sample variance, SE = σ²·sqrt((κ − 1)/n) with κ the law's kurtosis), and torch's own
defaults compared with a two-sample KS test on pooled draws where torch is installed."""

import math

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit

KURTOSIS = {"normal": 3.0, "uniform": 1.8, "triangular": 2.4}


def assert_var(x, var, law="normal", mean=0.0):
    """Sample variance (about the known mean) within 5 SE of ``var``; SE from n and κ."""
    x = np.asarray(x, np.float64).ravel()
    se = var * math.sqrt((KURTOSIS[law] - 1) / x.size)
    got = float(np.mean((x - mean) ** 2))
    assert abs(got - var) < 5 * se, f"variance {got:.4g}, expected {var:.4g} ± {5 * se:.2g}"


def assert_bound(x, b, frac=0.9):
    """|x| <= b, and for n >= 100 draws the largest near b: for a uniform law max|x| <=
    0.9 b has probability 0.9^n < 3e-5; for the triangular sum use frac=0.8
    (P(|x| > 0.8 b) = 0.04, so 0.96^n < 2e-2 at n = 100 and far less for the pools here)."""
    x = np.asarray(x)
    m = float(np.max(np.abs(x)))
    assert m <= b * (1 + 1e-6), (m, b)
    if x.size >= 100:
        assert m > frac * b, (m, b)


def _zeros_like_init(module, *args):
    """The module's variables as zeros, shapes from ``jax.eval_shape`` (no init program to
    compile: every parameter is redrawn by the rules under test)."""
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), *args))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


# --------------------------------------------------------------------------- ViT


class ViT(nn.Module):
    """timm's names: patch_embed/proj, cls_token, pos_embed, blocks_i/{attn,mlp}, head."""

    d: int = 64
    classes: int = 10

    @nn.compact
    def __call__(self, img):
        x = nn.Conv(self.d, (4, 4), strides=4, name="patch_embed_proj")(img)
        x = x.reshape(x.shape[0], -1, self.d)
        cls = self.param("cls_token", nn.initializers.zeros, (1, 1, self.d))
        pos = self.param("pos_embed", nn.initializers.zeros, (1, 65, self.d))
        x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.d)), x], 1) + pos
        for i in range(2):
            x = BlockNamed(self.d, name=f"blocks_{i}")(x)
        return nn.Dense(self.classes, name="head")(x[:, 0])


class BlockNamed(nn.Module):
    d: int

    @nn.compact
    def __call__(self, x):
        y = nn.LayerNorm(name="norm1")(x)
        y = Attn(self.d, name="attn")(y)
        x = x + y
        return x + Mlp(self.d, name="mlp")(nn.LayerNorm(name="norm2")(x))


class Attn(nn.Module):
    d: int

    @nn.compact
    def __call__(self, x):
        q = nn.Dense(3 * self.d, name="qkv")(x)[..., : self.d]
        return nn.Dense(self.d, name="proj")(q)


class Mlp(nn.Module):
    d: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.d, name="fc2")(nn.gelu(nn.Dense(4 * self.d, name="fc1")(x)))


IMG = jnp.ones((1, 32, 32, 3))


@pytest.fixture(scope="module")
def vit_params():
    return _zeros_like_init(ViT(), IMG)


def _vit_rules(mode, **kw):
    return jaxinit.vit(mode, patch_embed="patch_embed_proj", **kw)


def _vit_reinit(params, rules, key):
    """Linen variables with their module: the rank-4 patch kernel's fans come from its layer."""
    return jaxinit.reinit(params, rules, key, module=ViT(), sample=IMG)["params"]


def test_vit_timm_mode(vit_params):
    # without the module the rank-4 patch conv kernel is ambiguous (conv, DenseGeneral or
    # stack?), and torch's default bound depends on its fan_in: the error says what to pass
    with pytest.raises(ValueError, match="module=model, sample=x"):
        jaxinit.reinit(vit_params, _vit_rules("timm"), jax.random.key(1))
    p = _vit_reinit(vit_params, _vit_rules("timm"), jax.random.key(1))
    b = p["blocks_0"]
    for w in (b["attn"]["qkv"]["kernel"], b["mlp"]["fc1"]["kernel"], p["head"]["kernel"]):
        assert_var(w, 0.02**2)
    assert float(jnp.abs(b["mlp"]["fc1"]["bias"]).max()) == 0.0
    assert_var(p["pos_embed"], 0.02**2)
    assert float(jnp.std(p["cls_token"])) < 5e-6 and float(jnp.abs(p["cls_token"]).max()) > 0
    np.testing.assert_array_equal(b["norm1"]["scale"], 1.0)
    # the patch conv: torch's Conv2d default, U[±1/sqrt(fan_in)], fan_in = 4*4*3
    fan_in = 48
    assert_bound(p["patch_embed_proj"]["kernel"], 1 / math.sqrt(fan_in))
    assert_var(p["patch_embed_proj"]["kernel"], 1 / (3 * fan_in), "uniform")
    assert float(jnp.abs(p["patch_embed_proj"]["bias"]).max()) <= 1 / math.sqrt(fan_in)


def test_vit_jax_and_moco_modes(vit_params):
    key = jax.random.key(2)
    p = _vit_reinit(vit_params, _vit_rules("jax_nlhb", num_classes=10), key)
    b = p["blocks_1"]
    np.testing.assert_array_equal(p["head"]["kernel"], 0.0)
    np.testing.assert_allclose(p["head"]["bias"], -math.log(10), rtol=1e-6)
    assert_var(b["attn"]["qkv"]["kernel"], 2 / (64 + 192), "uniform")  # Xavier uniform
    assert_var(b["mlp"]["fc1"]["kernel"], 2 / (64 + 256), "uniform")
    assert 0 < float(jnp.std(b["mlp"]["fc1"]["bias"])) < 5e-6  # N(0, 1e-12)
    np.testing.assert_array_equal(b["attn"]["qkv"]["bias"], 0.0)
    fan_in = 48  # LeCun normal (truncated at 2σ, variance-corrected)
    assert_var(p["patch_embed_proj"]["kernel"], 1 / fan_in)
    np.testing.assert_array_equal(p["patch_embed_proj"]["bias"], 0.0)
    p = _vit_reinit(vit_params, _vit_rules("jax", head_bias=0.5), key)
    np.testing.assert_allclose(p["head"]["bias"], 0.5)
    p = _vit_reinit(vit_params, _vit_rules("moco"), key)
    b = p["blocks_0"]
    bound = math.sqrt(6 / (192 / 3 + 64))  # Q, K, V as separate 64x64 Xavier matrices
    assert_bound(b["attn"]["qkv"]["kernel"], bound)
    assert_var(b["attn"]["qkv"]["kernel"], bound**2 / 3, "uniform")
    assert_var(b["attn"]["proj"]["kernel"], 2 / 128, "uniform")
    np.testing.assert_array_equal(b["mlp"]["fc1"]["bias"], 0.0)
    assert_var(p["patch_embed_proj"]["kernel"], 1 / (3 * 48), "uniform")


# --------------------------------------------------------------------------- BERT, depth


class Encoder(nn.Module):
    @nn.compact
    def __call__(self, tok):
        x = nn.Embed(300, 64, name="word_embeddings")(tok)
        x = nn.LayerNorm(name="LayerNorm")(x)
        return nn.Dense(64, name="intermediate")(x)


def test_bert_initializer_range_and_padding():
    v = Encoder().init(jax.random.key(0), jnp.ones((1, 3), jnp.int32))
    p = jaxinit.reinit(v, jaxinit.bert(0.05, padding_idx=0), jax.random.key(1))["params"]
    table = p["word_embeddings"]["embedding"]
    np.testing.assert_array_equal(table[0], 0.0)
    assert_var(table[1:], 0.05**2)
    assert_var(p["intermediate"]["kernel"], 0.05**2)
    np.testing.assert_array_equal(p["intermediate"]["bias"], 0.0)
    np.testing.assert_array_equal(p["LayerNorm"]["scale"], 1.0)


def _llama(n=4, d=64):
    """A parameter tree in torchtitan's Llama naming (tok_embeddings, layers/<i>/attention/w*,
    layers/<i>/feed_forward/w*, norms, output); flax layout."""
    z = jnp.zeros
    layer = {
        "attention": {w: {"kernel": z((d, d))} for w in ("wq", "wk", "wv", "wo")},
        "feed_forward": {w: {"kernel": z((d, d))} for w in ("w1", "w2", "w3")},
        "attention_norm": {"scale": z(d)},
    }
    return {"tok_embeddings": {"embedding": z((100, d))}, "output": {"kernel": z((d, 100))},
            **{f"layers_{i}": layer for i in range(n)}}  # fmt: skip


def test_depth_scaled_per_layer_and_global():
    params = _llama()
    p = jaxinit.reinit(params, jaxinit.depth_scaled(4), jax.random.key(1))
    for i in range(4):
        layer = p[f"layers_{i}"]
        for w in (
            layer["attention"]["wo"],
            layer["feed_forward"]["w2"],
            layer["feed_forward"]["w3"],
        ):
            assert_var(w["kernel"], 0.02**2 / (2 * (i + 1)))
        assert_var(layer["attention"]["wq"]["kernel"], 0.02**2)
        assert_var(layer["feed_forward"]["w1"]["kernel"], 0.02**2)
    assert_var(p["tok_embeddings"]["embedding"], 1.0)
    np.testing.assert_array_equal(p["layers_2"]["attention_norm"]["scale"], 1.0)
    from scipy.stats import truncnorm

    out = p["output"]["kernel"]
    assert_var(out, truncnorm.var(-3, 3) / 64)  # std d^-1/2 cut at ±3 std
    assert float(jnp.abs(out).max()) <= 3 / 8 + 1e-6
    p = jaxinit.reinit(params, jaxinit.depth_scaled(4, depth_init=False), jax.random.key(1))
    for i in range(4):
        assert_var(p[f"layers_{i}"]["attention"]["wo"]["kernel"], 0.02**2 / 8)
    # nn.scan-stacked layers: (n_layers, in, out), each slice its own std
    att = {w: {"kernel": jnp.zeros((4, 64, 64))} for w in ("wq", "wo")}
    stacked = {"layers": {"attention": att}}
    p = jaxinit.reinit(stacked, jaxinit.depth_scaled(4), jax.random.key(2))
    for i in range(4):
        assert_var(p["layers"]["attention"]["wo"]["kernel"][i], 0.02**2 / (2 * (i + 1)))
    assert_var(p["layers"]["attention"]["wq"]["kernel"], 0.02**2)


def test_layer_index():
    li = jaxinit.layer_index
    assert li("params/layers_3/attention/wo/kernel") == 3
    assert li("layers/12/feed_forward/w2/weight") == 12
    assert li("transformer/h/5/attn/c_proj/weight") == 5
    assert li("blocks_0/attn/qkv/kernel") == 0
    assert li("head/kernel") is None
    assert li("enc/stage7/kernel", r"stage(\d+)") == 7


def test_deepnet_constants_and_init():
    c = jaxinit.deepnorm_constants(n_encoder=18)
    assert c == {"encoder": pytest.approx(((36) ** 0.25, (144) ** -0.25))}
    c = jaxinit.deepnorm_constants(n_decoder=100)["decoder"]
    np.testing.assert_allclose(c, (200**0.25, 800**-0.25))
    c = jaxinit.deepnorm_constants(n_encoder=6, n_decoder=6)
    np.testing.assert_allclose(
        c["encoder"], (0.81 * (6**5) ** (1 / 16), 0.87 * (6**5) ** (-1 / 16))
    )
    np.testing.assert_allclose(c["decoder"], (18**0.25, 72**-0.25))

    params = {
        "encoder": {"layer_0": {"fc1": {"kernel": jnp.zeros((64, 128))},
                                "q_proj": {"kernel": jnp.zeros((64, 64))}}},
        "decoder": {"layer_0": {"fc1": {"kernel": jnp.zeros((64, 128))},
                                "v_proj": {"kernel": jnp.zeros((64, 64))},
                                "v_proj_b": {"bias": jnp.ones(3)}}},
    }  # fmt: skip
    p = jaxinit.reinit(params, jaxinit.deepnet(6, 6), jax.random.key(0))
    be, bd = c["encoder"][1], c["decoder"][1]
    assert_var(p["encoder"]["layer_0"]["fc1"]["kernel"], be**2 * 2 / 192)  # Xavier normal·β
    assert_var(p["decoder"]["layer_0"]["fc1"]["kernel"], bd**2 * 2 / 192)
    assert_var(p["decoder"]["layer_0"]["v_proj"]["kernel"], bd**2 * 2 / 128)
    assert_var(p["encoder"]["layer_0"]["q_proj"]["kernel"], 2 / 128)
    np.testing.assert_array_equal(p["decoder"]["layer_0"]["v_proj_b"]["bias"], 0.0)


# --------------------------------------------------------------------------- recurrent


def _orthogonal_blocks(w, h, axis):
    for blk in np.split(np.asarray(w, np.float64), w.shape[axis] // h, axis=axis):
        np.testing.assert_allclose(blk @ blk.T, np.eye(h), atol=1e-5)


def test_recurrent_orthogonal_and_forget_bias():
    key, H = jax.random.key(0), 16
    cell = nn.LSTMCell(H)
    x = jnp.ones((1, 5))
    v = cell.init(key, cell.initialize_carry(key, x.shape), x)
    p = jaxinit.reinit(v, jaxinit.recurrent(), key)["params"]
    for g in "ifgo":
        _orthogonal_blocks(p[f"h{g}"]["kernel"], H, 1)
    np.testing.assert_array_equal(p["hf"]["bias"], 1.0)
    np.testing.assert_array_equal(p["ii"]["kernel"], v["params"]["ii"]["kernel"])  # untouched

    m = nnx.OptimizedLSTMCell(5, H, rngs=nnx.Rngs(0))
    m2 = jaxinit.reinit(m, jaxinit.recurrent(forget_bias=2.0), key)
    _orthogonal_blocks(m2.dense_h.kernel[...], H, 1)
    bias = np.asarray(m2.dense_h.bias[...])
    np.testing.assert_array_equal(bias[H : 2 * H], 2.0)
    np.testing.assert_array_equal(np.delete(bias, np.s_[H : 2 * H]), 0.0)

    e = (eqx.nn.LSTMCell(5, H, key=key), eqx.nn.GRUCell(5, H, key=key))
    e2 = jaxinit.reinit(e, jaxinit.recurrent(), key)
    _orthogonal_blocks(e2[0].weight_hh, H, 0)
    _orthogonal_blocks(e2[1].weight_hh, H, 0)
    np.testing.assert_array_equal(e2[0].bias[H : 2 * H], 1.0)
    np.testing.assert_array_equal(e2[1].bias, e[1].bias)  # a GRU has no forget gate


# --------------------------------------------------------------------------- torch defaults

H, D, E = 32, 10, 64


class TorchLike(nn.Module):
    """The flax counterparts of torch's Embedding, MultiheadAttention, LayerNorm, LSTM, GRU,
    RNN, ConvTranspose2d."""

    @nn.compact
    def __call__(self, tok, x):
        e = nn.Embed(200, E, name="emb")(tok)
        a = nn.MultiHeadDotProductAttention(4, name="mha")(e)
        a = nn.LayerNorm(name="ln")(a)
        a = a.sum() + nn.ConvTranspose(16, (3, 3))(jnp.ones((1, 5, 5, 8))).sum()
        lstm, gru = nn.LSTMCell(H, name="lstm"), nn.GRUCell(H, name="gru")
        (_, h1), _ = lstm(lstm.initialize_carry(jax.random.key(0), x.shape), x)
        h2, _ = gru(gru.initialize_carry(jax.random.key(0), x.shape), x)
        rnn = nn.SimpleCell(H)  # SimpleCell_0/{i,h}
        h3, _ = rnn(rnn.initialize_carry(jax.random.key(0), x.shape), x)
        return a.sum() + h1.sum() + h2.sum() + h3.sum()


@pytest.fixture(scope="module")
def torch_like():
    sample = (jnp.ones((1, 3), jnp.int32), jnp.ones((1, D)))
    v = _zeros_like_init(TorchLike(), *sample)
    rules = jaxinit.torch_default_rules()
    # linen: the module tells each layer's fans (MHA kernels (E, heads, head_dim) are one
    # (E, E) call; the ConvTranspose kernel a conv's). One compiled program for the four
    # draws (reinit traces; eager draws cost more)
    model = TorchLike()
    draw = lambda k: jaxinit.reinit(v, rules, k, module=model, sample=sample)["params"]
    stacked = jax.jit(jax.vmap(draw))(jax.random.split(jax.random.key(1), 4))
    draws = [jax.tree.map(lambda a, s=s: a[s], stacked) for s in range(4)]
    nx = nnx.Sequential(nnx.OptimizedLSTMCell(D, H, rngs=nnx.Rngs(0)))
    nx.gru = nnx.GRUCell(D, H, rngs=nnx.Rngs(0))
    nx = jaxinit.reinit(nx, jaxinit.torch_default_rules(rnn_hidden=H), jax.random.key(9))
    ex = (eqx.nn.LSTMCell(D, H, key=jax.random.key(0)), eqx.nn.GRUCell(D, H, key=jax.random.key(0)),
          eqx.nn.Embedding(200, E, key=jax.random.key(0)), eqx.nn.LayerNorm(E),
          eqx.nn.ConvTranspose2d(8, 16, 3, key=jax.random.key(0)),
          eqx.nn.ConvTranspose2d(8, 16, 3, groups=4, key=jax.random.key(0)))  # fmt: skip
    ex = jaxinit.reinit(ex, jaxinit.torch_default_rules(), jax.random.key(10))
    return draws, nx, ex


def _pool(draws, *keys):
    out = []
    for p in draws:
        for k in keys:
            node = p
            for part in k.split("/"):
                node = node[part]
            out.append(np.asarray(node).ravel())
    return np.concatenate(out)


SUMMED_LSTM = ["lstm/h" + g + "/bias" for g in "ifgo"]
LSTM_W = ["lstm/" + n + "/kernel" for n in ("ii", "if", "ig", "io", "hi", "hf", "hg", "ho")]


def test_torch_default_layers_formulas(torch_like):
    draws, nx, ex = torch_like
    b = 1 / math.sqrt(H)
    assert_var(_pool(draws, "emb/embedding"), 1.0)
    q = _pool(draws, "mha/query/kernel", "mha/key/kernel", "mha/value/kernel")
    assert_bound(q, math.sqrt(6 / (E + 3 * E)))
    assert_var(q, 6 / (4 * E) / 3, "uniform")
    assert_var(_pool(draws, "mha/out/kernel"), 1 / (3 * E), "uniform")
    assert not np.any(_pool(draws, "mha/query/bias", "mha/out/bias", "ln/bias"))
    np.testing.assert_array_equal(_pool(draws, "ln/scale"), 1.0)
    w = _pool(draws, *LSTM_W, "gru/ir/kernel", "gru/hn/kernel")
    assert_bound(w, b)
    assert_var(w, b**2 / 3, "uniform")
    s = _pool(draws, *SUMMED_LSTM, "gru/ir/bias", "gru/iz/bias")
    assert_bound(s, 2 * b, frac=0.8)
    assert_var(s, 2 * b**2 / 3, "triangular")
    single = _pool(draws, "gru/in/bias", "gru/hn/bias")
    assert_var(single, b**2 / 3, "uniform")
    # nnx fused cells and Equinox cells
    assert_var(nx.layers[0].dense_h.bias[...], 2 * b**2 / 3, "triangular")
    assert_var(nx.layers[0].dense_i.kernel[...], b**2 / 3, "uniform")
    gru_b = np.asarray(nx.gru.dense_i.bias[...])
    assert_bound(gru_b[: 2 * H], 2 * b)
    assert_bound(gru_b[2 * H :], b)
    lstm, gru, emb, ln, deconv, grouped = ex
    # ConvTranspose: torch's fan is out_channels·k (16·9), not in_channels·k
    ct = _pool(draws, "ConvTranspose_0/kernel")
    assert_bound(ct, 1 / 12)
    assert_var(np.concatenate([ct, np.asarray(deconv.weight).ravel()]), 1 / (3 * 144), "uniform")
    assert_bound(
        np.concatenate([_pool(draws, "ConvTranspose_0/bias"), deconv.bias.ravel()]), 1 / 12
    )
    # grouped (4): torch's fan is (out_channels / groups)·k = 4·9
    assert_bound(grouped.weight, 1 / 6)
    assert_var(grouped.weight, 1 / (3 * 36), "uniform")
    assert_bound(grouped.bias, 1 / 6)
    # linen SimpleCell: i, h kernels U[±1/√H]; i's bias is torch's b_ih + b_hh
    w = _pool(draws, "SimpleCell_0/i/kernel", "SimpleCell_0/h/kernel")
    assert_bound(w, b)
    assert_var(w, b**2 / 3, "uniform")
    assert_var(_pool(draws, "SimpleCell_0/i/bias"), 2 * b**2 / 3, "triangular")
    assert_var(lstm.bias, 2 * b**2 / 3, "triangular")
    assert_var(
        np.concatenate([lstm.weight_ih.ravel(), lstm.weight_hh.ravel()]), b**2 / 3, "uniform"
    )
    assert_bound(gru.bias[2 * H :], b)
    assert_bound(gru.bias_n, b)
    assert_var(emb.weight, 1.0)
    np.testing.assert_array_equal(ln.weight, 1.0)


def test_torch_default_layers_match_torch_ks(torch_like):
    """Two-sample KS on pooled draws: jaxinit's torch_default_rules vs torch's own init
    (α = 1e-3 per comparison)."""
    torch = pytest.importorskip("torch")
    from scipy.stats import ks_2samp

    draws, nx, ex = torch_like
    ref = {"emb": [], "in_proj": [], "out_proj": [], "lstm_w": [], "lstm_b": [], "gru_rz": [],
           "gru_n": [], "deconv": [], "grouped": [], "rnn_w": [], "rnn_b": []}  # fmt: skip
    for seed in range(4):
        torch.manual_seed(seed)
        emb = torch.nn.Embedding(200, E)
        mha = torch.nn.MultiheadAttention(E, 4)
        lstm = torch.nn.LSTM(D, H)
        gru = torch.nn.GRU(D, H)
        t = lambda x: x.detach().numpy().ravel()
        ref["emb"].append(t(emb.weight))
        ref["in_proj"].append(t(mha.in_proj_weight))
        ref["out_proj"].append(t(mha.out_proj.weight))
        ref["lstm_w"] += [t(lstm.weight_ih_l0), t(lstm.weight_hh_l0)]
        ref["lstm_b"].append(t(lstm.bias_ih_l0 + lstm.bias_hh_l0))
        ref["gru_rz"].append(t(gru.bias_ih_l0[: 2 * H] + gru.bias_hh_l0[: 2 * H]))
        ref["gru_n"] += [t(gru.bias_ih_l0[2 * H :]), t(gru.bias_hh_l0[2 * H :])]
        ref["deconv"].append(t(torch.nn.ConvTranspose2d(8, 16, 3).weight))
        grouped = torch.nn.ConvTranspose2d(8, 16, 3, groups=4)
        ref["grouped"] += [t(grouped.weight), t(grouped.bias)]
        rnn = torch.nn.RNN(D, H)
        ref["rnn_w"] += [t(rnn.weight_ih_l0), t(rnn.weight_hh_l0)]
        ref["rnn_b"].append(t(rnn.bias_ih_l0 + rnn.bias_hh_l0))
        assert not torch.any(mha.in_proj_bias) and not torch.any(mha.out_proj.bias)
    mine = {
        "emb": _pool(draws, "emb/embedding"),
        "in_proj": _pool(draws, "mha/query/kernel", "mha/key/kernel", "mha/value/kernel"),
        "out_proj": _pool(draws, "mha/out/kernel"),
        "lstm_w": _pool(draws, *LSTM_W),
        "lstm_b": np.concatenate([_pool(draws, *SUMMED_LSTM), np.asarray(ex[0].bias),
                                  np.asarray(nx.layers[0].dense_h.bias[...])]),
        "gru_rz": np.concatenate([_pool(draws, "gru/ir/bias", "gru/iz/bias"),
                                  np.asarray(ex[1].bias[: 2 * H])]),
        "gru_n": np.concatenate([_pool(draws, "gru/in/bias", "gru/hn/bias"),
                                 np.asarray(ex[1].bias[2 * H :]), np.asarray(ex[1].bias_n)]),
        "deconv": np.concatenate([_pool(draws, "ConvTranspose_0/kernel"),
                                  np.asarray(ex[4].weight).ravel()]),
        "grouped": np.concatenate([np.asarray(ex[5].weight).ravel(),
                                   np.asarray(ex[5].bias).ravel()]),
        "rnn_w": _pool(draws, "SimpleCell_0/i/kernel", "SimpleCell_0/h/kernel"),
        "rnn_b": _pool(draws, "SimpleCell_0/i/bias"),
    }  # fmt: skip
    for name, ours in mine.items():
        theirs = np.concatenate(ref[name])
        assert ks_2samp(ours, theirs).pvalue > 1e-3, name
    # the law must differ from what flax would do: a sum of uniforms is not one uniform
    b = 1 / math.sqrt(H)
    uniform = np.random.default_rng(0).uniform(-b, b, 4096)
    assert ks_2samp(np.concatenate(ref["lstm_b"]), uniform).pvalue < 1e-3


# --------------------------------------------------------------------------- GPT-2 naming


def test_gpt2_naming_presets():
    k = jax.random.key(0)
    n_layer = 3
    tree = {"transformer": {
        "wte": {"weight": jnp.zeros((500, 64))},
        "h": {str(i): {"ln_1": {"weight": jnp.ones(64), "bias": jnp.ones(64)},
                       "attn": {"c_attn": {"weight": jnp.zeros((64, 192))},
                                "c_proj": {"weight": jnp.zeros((64, 64)),
                                           "bias": jnp.ones(64)}},
                       "mlp": {"c_fc": {"weight": jnp.zeros((64, 256))},
                               "c_proj": {"weight": jnp.zeros((256, 64))}}}
              for i in range(n_layer)},
    }}  # fmt: skip
    for naming in ("nanogpt", "hf"):
        p = jaxinit.reinit(tree, jaxinit.gpt2(n_layer, naming=naming), k)["transformer"]
        proj = np.concatenate([np.asarray(p["h"][str(i)][m]["c_proj"]["weight"]).ravel()
                               for i in range(n_layer) for m in ("attn", "mlp")])  # fmt: skip
        assert_var(proj, 0.02**2 / (2 * n_layer))
        assert_var(p["h"]["0"]["attn"]["c_attn"]["weight"], 0.02**2)
        assert_var(p["wte"]["weight"], 0.02**2)
        np.testing.assert_array_equal(p["h"]["1"]["ln_1"]["weight"], 1.0)  # 1-D: LayerNorm
        np.testing.assert_array_equal(p["h"]["1"]["attn"]["c_proj"]["bias"], 0.0)


def test_errors_name_function_and_argument():
    with pytest.raises(ValueError, match="vit: mode='deit' is not supported"):
        jaxinit.vit("deit")
    with pytest.raises(ValueError, match="vit: num_classes must be an int >= 2"):
        jaxinit.vit("jax_nlhb")
    with pytest.raises(ValueError, match="bert: padding_idx=9 >= vocabulary size 5"):
        jaxinit.reinit({"word_embeddings": {"embedding": jnp.zeros((5, 2))}},
                       jaxinit.bert(padding_idx=9),
                       jax.random.key(0))  # fmt: skip
    with pytest.raises(ValueError, match="depth_scaled: no layer index in the path"):
        jaxinit.reinit({"attention": {"wo": {"kernel": jnp.zeros((4, 4))}}},
                       jaxinit.depth_scaled(2), jax.random.key(0))  # fmt: skip
    with pytest.raises(ValueError, match=r"depth_scaled: layer index 5 in .* >= n_layers=2"):
        jaxinit.reinit({"layers_5": {"attention": {"wo": {"kernel": jnp.zeros((4, 4))}}}},
                       jaxinit.depth_scaled(2), jax.random.key(0))  # fmt: skip
    with pytest.raises(ValueError, match="deepnorm_constants: give n_encoder or n_decoder"):
        jaxinit.deepnorm_constants()
    with pytest.raises(ValueError, match="gpt2: naming='megatron' is not supported"):
        jaxinit.gpt2(2, naming="megatron")
    not_a_cell = {"SimpleCell_0": {"h": {"kernel": jnp.zeros((4, 5))}}}
    with pytest.raises(ValueError, match="SimpleCell_0/h/kernel matched simple_cell="):
        jaxinit.reinit(not_a_cell, jaxinit.torch_default_layer_rules(), jax.random.key(0))
    m = nnx.OptimizedLSTMCell(3, 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="give rnn_hidden=H"):
        jaxinit.reinit(m, jaxinit.torch_default_rules(), jax.random.key(0))


# --------------------------------------------------------------------------- layer fans


class _AttnBlock(nn.Module):
    @nn.compact
    def __call__(self, x, _):
        return x + nn.MultiHeadDotProductAttention(4, name="attn")(x), None


class _ScannedAttn(nn.Module):
    """3 scanned attention layers: kernels (3, 64, 4, 16) and (3, 4, 16, 64), whose one
    layer call is (64, 64): the stored shape's fans would be far off."""

    @nn.compact
    def __call__(self, x):
        stack = nn.scan(_AttnBlock, variable_axes={"params": 0}, split_rngs={"params": True},
                        length=3)  # fmt: skip
        return stack(name="layers")(x, None)[0]


def test_rule_sets_use_the_layer_fans_on_a_scanned_attention_stack():
    model, x = _ScannedAttn(), jnp.ones((1, 5, 64))
    v = _zeros_like_init(model, x)
    key = jax.random.key(3)
    # DeepNet: Xavier normal on each layer's (64, 64) call, gain beta on value and out
    beta = jaxinit.deepnorm_constants(n_encoder=3)["encoder"][1]
    p = jaxinit.reinit(v, jaxinit.deepnet(3), key, module=model, sample=x)["params"]["layers"]
    for name, gain in (("value", beta), ("out", beta), ("query", 1.0), ("key", 1.0)):
        assert_var(p["attn"][name]["kernel"], gain**2 * 2 / (64 + 64))
    # depth_scaled: each stacked layer's slice its own std (layer i of the scan stack)
    rules = jaxinit.depth_scaled(
        3, scaled="attn/out/kernel", unscaled="attn/{query,key,value}/kernel"
    )
    p = jaxinit.reinit(v, rules, key, module=model, sample=x)["params"]["layers"]
    for i in range(3):
        assert_var(p["attn"]["out"]["kernel"][i], 0.02**2 / (2 * (i + 1)))
    # vit moco: the layer's fans (64 -> 64) for a qkv pattern on a stacked DenseGeneral
    rules = jaxinit.vit("moco", qkv="attn/value/kernel", weights="attn/{query,key,out}/kernel")
    p = jaxinit.reinit(v, rules, key, module=model, sample=x)["params"]["layers"]
    bound = math.sqrt(6 / (64 / 3 + 64))
    assert_bound(p["attn"]["value"]["kernel"], bound)
    assert_var(p["attn"]["value"]["kernel"], bound**2 / 3, "uniform")
    # without the module a rank-4 kernel is ambiguous for a fan-dependent rule
    with pytest.raises(ValueError, match="module=model, sample=x"):
        jaxinit.reinit(v, jaxinit.deepnet(3), key)


# --------------------------------------------------------------------------- layer index, depth


def _depth_rule(seen=None):
    """std 1/sqrt(2 (i + 1)) for layer i (torchtitan's form); records (index, depth)."""

    def build(info):
        i = info.layer_index
        if seen is not None:
            seen[(info.path, i)] = info.depth
        return jaxinit.normal(1 / math.sqrt(2 * (i + 1)))

    return jaxinit.ContextRule(build, "depth")


class _Listed(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(8, name="embed")(x)
        for i in range(4):
            x = nn.Dense(64, name=f"layers_{i}")(x)
        return x


class _Scanned(nn.Module):
    @nn.compact
    def __call__(self, x):
        blk = nn.scan(_Blk, variable_axes={"params": 0}, split_rngs={"params": True}, length=4)
        return blk(name="ScanBlocks_0")(x, None)[0]


class _Blk(nn.Module):
    @nn.compact
    def __call__(self, x, _):
        return nn.Dense(64)(x), None


def test_context_rule_sees_layer_index_and_depth():
    key = jax.random.key(0)
    # linen layers_0..3: the index in the path, depth 4; "embed" has none
    model, x = _Listed(), jnp.ones((1, 64))
    v = _zeros_like_init(model, x)
    seen = {}
    p = jaxinit.reinit(v, {"layers_*/kernel": _depth_rule(seen)}, key)["params"]
    assert seen == {(f"params/layers_{i}/kernel", i): 4 for i in range(4)}
    for i in range(4):
        assert_var(p[f"layers_{i}"]["kernel"], 1 / (2 * (i + 1)))
    infos = []
    jaxinit.reinit(v, {"kernel": jaxinit.ContextRule(lambda i: infos.append(i))}, key)
    embed = [i for i in infos if i.path == "params/embed/kernel"]
    assert [(i.layer_index, i.depth) for i in embed] == [(None, None)]
    # nnx: a list of layers, "layers/<i>"
    m = nnx.Module()
    m.layers = nnx.List([nnx.Linear(64, 64, rngs=nnx.Rngs(i)) for i in range(3)])
    seen = {}
    out = jaxinit.reinit(m, {"kernel": _depth_rule(seen)}, key)
    assert seen == {(f"layers/{i}/kernel", i): 3 for i in range(3)}
    for i in range(3):
        assert_var(out.layers[i].kernel[...], 1 / (2 * (i + 1)))
    # a linen nn.scan stack (4, 64, 64): built once per layer, each slice its own std
    model = _Scanned()
    v = _zeros_like_init(model, x)
    seen = {}
    p = jaxinit.reinit(v, {"kernel": _depth_rule(seen)}, key, module=model, sample=x)
    assert seen == {("params/ScanBlocks_0/Dense_0/kernel", i): 4 for i in range(4)}
    k = p["params"]["ScanBlocks_0"]["Dense_0"]["kernel"]
    for i in range(4):
        assert_var(k[i], 1 / (2 * (i + 1)))
    table = jaxinit.explain(v, {"kernel": _depth_rule()}, module=model, sample=x)
    assert "(layer 0) .." in table and "std 0.7071 .. std 0.3536" in table
    # depth_scaled on top of it: n_layers from the stack, or checked against it
    rules = jaxinit.depth_scaled(scaled="Dense_0/kernel", unscaled="nothing", output="none")
    rules = {k: jaxinit.optional(r) if k in ("nothing", "none") else r for k, r in rules.items()}
    k = jaxinit.reinit(v, rules, key, module=model, sample=x)["params"]["ScanBlocks_0"]
    for i in range(4):
        assert_var(k["Dense_0"]["kernel"][i], 0.02**2 / (2 * (i + 1)))
    rules["Dense_0/kernel"] = jaxinit.depth_scaled(depth_init=False, scaled="Dense_0/kernel")[
        "Dense_0/kernel"
    ]
    k = jaxinit.reinit(v, rules, key, module=model, sample=x)["params"]["ScanBlocks_0"]
    assert_var(k["Dense_0"]["kernel"], 0.02**2 / 8)
    # an Equinox stack (filter_vmap): the leading axis of its torch-layout weights
    stack = eqx.filter_vmap(lambda k: eqx.nn.Linear(64, 64, key=k))(jax.random.split(key, 3))
    out = jaxinit.reinit(stack, {"weight": _depth_rule()}, key)
    for i in range(3):
        assert_var(out.weight[i], 1 / (2 * (i + 1)))
    # a rule that does not read layer_index is built once; a cell's gates are no layers
    infos = []
    cell = eqx.nn.GRUCell(4, 8, key=key)
    jaxinit.reinit(cell, {"weight_hh": jaxinit.ContextRule(lambda i: infos.append(i))}, key)
    assert len(infos) == 1 and infos[0].layer_index is None and infos[0].depth is None
