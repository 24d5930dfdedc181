"""μP: base shapes and width multipliers (against microsoft/mup's definitions, and against
mup itself where it is installed), the optax transforms (checked numerically, per parameter
class), the forward multipliers, and the coordinate check."""

import math

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxinit
from jaxinit.rules._mup import InfShape

D_IN, D_OUT = 8, 10


class LinenMLP(nn.Module):
    width: int
    base_width: int = 64
    readout_mult: bool = False

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(self.width, name="fc1")(x))
        h = nn.relu(nn.Dense(self.width, name="fc2")(h))
        if self.readout_mult:
            h = h * jaxinit.readout_multiplier(self.width, self.base_width)
        return nn.Dense(D_OUT, name="head")(h)


class NnxMLP(nnx.Module):
    def __init__(self, width, rngs):
        self.fc1 = nnx.Linear(D_IN, width, rngs=rngs)
        self.fc2 = nnx.Linear(width, width, rngs=rngs)
        self.head = nnx.Linear(width, D_OUT, rngs=rngs)


class EqxMLP(eqx.Module):
    fc1: eqx.nn.Linear
    fc2: eqx.nn.Linear
    head: eqx.nn.Linear

    def __init__(self, width, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.fc1 = eqx.nn.Linear(D_IN, width, key=k1)
        self.fc2 = eqx.nn.Linear(width, width, key=k2)
        self.head = eqx.nn.Linear(width, D_OUT, key=k3)


def _linen(w):
    return LinenMLP(w).init(jax.random.key(0), jnp.ones((1, D_IN)))


def _nnx(w):
    return NnxMLP(w, nnx.Rngs(0))


def _eqx(w):
    return EqxMLP(w, jax.random.key(0))


# μP's classes and multipliers for this MLP at width 256 over base 64 (m = 4), from mup's
# definitions: InfShape.width_mult is the multiplier of the last infinite dim in torch
# order (out, in); MuAdam divides the LR of 2-inf-dim parameters by it; MuSGD multiplies
# 1-inf-dim parameters' LR by it and divides 2-inf-dim ones' by fanin_mult/fanout_mult.
M = 4.0
EXPECTED = {  # layer/param: (kind, ninf, width_mult, adam, sgd)
    "fc1/w": ("input", 1, M, 1.0, M),
    "fc1/b": ("vector", 1, M, 1.0, M),
    "fc2/w": ("hidden", 2, M, 1 / M, 1.0),
    "fc2/b": ("vector", 1, M, 1.0, M),
    "head/w": ("output", 1, M, 1.0, M),
    "head/b": ("fixed", 0, 1.0, 1.0, 1.0),
}


def _short(path):
    layer = next(s for s in path.split("/") if s in ("fc1", "fc2", "head"))
    return f"{layer}/{'b' if path.endswith('bias') else 'w'}"


@pytest.mark.parametrize("make", [_linen, _nnx, _eqx], ids=["linen", "nnx", "equinox"])
def test_width_multipliers_match_mups_definitions(make):
    bsh = jaxinit.base_shapes(lambda: make(64), lambda: make(128))
    shapes = jaxinit.infshapes(jax.eval_shape(lambda: make(256)) if make is _linen else
                               eqx.filter_eval_shape(make, 256), bsh)  # fmt: skip
    assert {_short(p) for p in shapes} == set(EXPECTED)
    for path, s in shapes.items():
        kind, ninf, wm, adam, sgd = EXPECTED[_short(path)]
        assert (s.kind, s.ninf(), s.width_mult()) == (kind, ninf, wm), path
        assert jaxinit.lr_multiplier(s, "adam") == adam, path
        assert jaxinit.lr_multiplier(s, "sgd") == sgd, path
    layout = "torch" if make is _eqx else "flax"
    assert {b.layout for b in bsh.values()} == {layout}


def test_infshape_torch_order_rules():
    # A conv weight: torch (out, in, k, k) and flax (k, k, in, out) give the same answers.
    t = InfShape((128, 64, 3, 3), (32, 16, None, None), "torch")
    f = InfShape((3, 3, 64, 128), (None, None, 16, 32), "flax")
    for s in (t, f):
        assert s.ninf() == 2 and s.kind == "hidden"
        assert s.width_mult() == 4.0  # fan-in 64 / 16
        assert s.fanin_fanout_mult_ratio() == 1.0
    # Only fan-out infinite: width_mult is fan-out's (the last inf dim in torch order).
    assert InfShape((128, 7), (32, None), "torch").width_mult() == 4.0
    # Non-square: fan-in x8, fan-out x2 -> SGD LR / 4.
    s = InfShape((64, 256), (8, 128), "flax")
    assert s.fanin_fanout_mult_ratio() == 4.0 and jaxinit.lr_multiplier(s, "sgd") == 0.25


def test_attention_block_classes():
    """A linen self-attention block whose model width and head dim grow (heads fixed): all
    q/k/v/out kernels are hidden (two infinite dims), the Adam multiplier is 1/m."""

    def make(d):
        m = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=d, out_features=d)
        return lambda: m.init(jax.random.key(0), jnp.ones((1, 3, d)))

    bsh = jaxinit.base_shapes(make(32), make(64))
    shapes = jaxinit.infshapes(jax.eval_shape(make(128)), bsh)
    kernels = {p: s for p, s in shapes.items() if p.endswith("kernel")}
    assert len(kernels) == 4
    for p, s in kernels.items():
        assert s.kind == "hidden" and s.width_mult() == 4.0, p
        assert jaxinit.lr_multiplier(s, "adam") == 0.25
    heads_axis = shapes["params/query/kernel"].base[1]
    assert heads_axis is None  # num_heads is finite


def test_against_microsoft_mup():
    """The same MLP in torch with mup's set_base_shapes / MuAdam / MuSGD: infshapes and
    per-parameter learning rates equal jaxinit's on the Equinox twin."""
    torch = pytest.importorskip("torch")
    mup = pytest.importorskip("mup")

    class TorchMLP(torch.nn.Module):
        def __init__(self, w):
            super().__init__()
            self.fc1 = torch.nn.Linear(D_IN, w)
            self.fc2 = torch.nn.Linear(w, w)
            self.head = mup.MuReadout(w, D_OUT)

    model = TorchMLP(256)
    mup.set_base_shapes(model, TorchMLP(64), delta=TorchMLP(128))
    bsh = jaxinit.base_shapes(lambda: _eqx(64), lambda: _eqx(128))
    mine = jaxinit.infshapes(_eqx(256), bsh)
    lr = {}
    for name, make in (("adam", mup.MuAdam), ("sgd", mup.MuSGD)):
        for g in make(model.parameters(), lr=1.0).param_groups:
            for p in g["params"]:
                lr[name, id(p)] = g["lr"]
    for name, p in model.named_parameters():
        s = mine[name.replace(".", "/")]
        ref = p.infshape
        assert s.base == tuple(d.base_dim for d in ref)
        assert s.ninf() == ref.ninf() and s.width_mult() == ref.width_mult()
        for opt in ("adam", "sgd"):
            assert jaxinit.lr_multiplier(s, opt) == pytest.approx(lr[opt, id(p)]), (name, opt)


def _tree(seed, like):
    leaves, treedef = jax.tree.flatten(like)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(
        treedef, [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    )


def test_optax_transforms_scale_updates_per_class():
    """Two steps of mup_adam / mup_sgd (momentum, weight decay) vs the plain optax optimizer
    computed leaf by leaf with mup's per-group LR and weight decay."""
    bsh = jaxinit.base_shapes(lambda: _linen(64), lambda: _linen(128))
    params = _linen(256)
    grads = [_tree(1, params), _tree(2, params)]
    lr, wd = 0.01, 0.1
    cases = {
        # name: (tx, reference per-leaf optimizer from the multiplier m)
        "adam": (jaxinit.mup_adam(lr, bsh), lambda m: optax.adam(lr * m)),
        "adamw": (
            jaxinit.mup_adam(lr, bsh, weight_decay=wd),
            lambda m: optax.adamw(lr * m, weight_decay=wd / m),  # torch: p -= lr_g wd_g p
        ),
        "sgd": (
            jaxinit.mup_sgd(lr, bsh, momentum=0.9, weight_decay=wd),
            lambda m: optax.chain(
                optax.add_decayed_weights(wd / m), optax.sgd(lr * m, momentum=0.9)
            ),
        ),
    }
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    for name, (tx, reference) in cases.items():
        opt = "sgd" if name == "sgd" else "adam"
        state = tx.init(params)
        p = params
        for g in grads:
            upd, state = tx.update(g, state, p)
            p = optax.apply_updates(p, upd)
        for (kp, x0), (_, x1) in zip(flat, jax.tree_util.tree_flatten_with_path(p)[0], strict=True):
            path = jaxinit.rules._rules.path_str(kp)
            m = jaxinit.lr_multiplier(jaxinit.infshape_of(path, x0.shape, bsh), opt)
            ref_tx = reference(m)
            gs = [jax.tree_util.tree_flatten_with_path(g)[0] for g in grads]
            gl = [dict((jaxinit.rules._rules.path_str(k), v) for k, v in g)[path] for g in gs]
            with jax.numpy_dtype_promotion("standard"):  # optax's Adam needs it
                s, q = ref_tx.init(x0), x0
                for gg in gl:
                    u, s = ref_tx.update(gg, s, q)
                    q = q + u
            np.testing.assert_allclose(x1, q, rtol=1e-5, atol=1e-7, err_msg=f"{name} {path}")
        # The classes really get different steps: hidden moved 1/M as far as Adam's others.
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).mean()), params, p)
    assert moved["params"]["fc2"]["kernel"] < moved["params"]["fc1"]["kernel"]


def test_optax_matches_mup_adamw_step_in_torch():
    """One MuAdamW step in torch (mup) and one mup_adam step on the Equinox twin, from the
    same weights and gradients, give the same weights."""
    torch = pytest.importorskip("torch")
    mup = pytest.importorskip("mup")

    class TorchMLP(torch.nn.Module):
        def __init__(self, w):
            super().__init__()
            self.fc1 = torch.nn.Linear(D_IN, w)
            self.fc2 = torch.nn.Linear(w, w)
            self.head = torch.nn.Linear(w, D_OUT)

    torch.manual_seed(0)
    model = TorchMLP(256)
    mup.set_base_shapes(model, TorchMLP(64), delta=TorchMLP(128), do_assert=False)
    eq = _eqx(256)
    eq = jax.tree_util.tree_map_with_path(
        lambda kp, x: jnp.asarray(
            dict(model.named_parameters())[jaxinit.rules._rules.path_str(kp, drop_value=False)
                                          .replace("/", ".")].detach().numpy()
        ) if eqx.is_array(x) else x, eq)  # fmt: skip
    params = eqx.filter(eq, eqx.is_array)
    grads = _tree(3, params)
    for name, p in model.named_parameters():
        g = dict(jax.tree_util.tree_flatten_with_path(grads)[0] and [
            (jaxinit.rules._rules.path_str(k, drop_value=False), v)
            for k, v in jax.tree_util.tree_flatten_with_path(grads)[0]])  # fmt: skip
        p.grad = torch.from_numpy(np.asarray(g[name.replace(".", "/")]).copy())
    opt = mup.MuAdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    opt.step()
    bsh = jaxinit.base_shapes(lambda: _eqx(64), lambda: _eqx(128))
    tx = jaxinit.mup_adam(0.01, bsh, weight_decay=0.1)
    upd, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, upd)
    for kp, x in jax.tree_util.tree_flatten_with_path(new)[0]:
        name = jaxinit.rules._rules.path_str(kp, drop_value=False).replace("/", ".")
        ref = dict(model.named_parameters())[name].detach().numpy()
        np.testing.assert_allclose(np.asarray(x), ref, rtol=1e-5, atol=1e-6, err_msg=name)


def test_readout_and_attention_multipliers():
    assert jaxinit.readout_multiplier(1024, 256) == 0.25
    assert jaxinit.readout_multiplier(256, 256, output_mult=2.0) == 2.0
    k = jax.random.split(jax.random.key(0), 3)
    q, kk, v = (jax.random.normal(ki, (2, 5, 3, 16)) for ki in k)  # batch, len, heads, d
    out = jaxinit.mup_attention_fn(attn_mult=2.0)(q, kk, v)
    qn, kn, vn = (np.asarray(a, np.float64) for a in (q, kk, v))
    logits = 2.0 * np.einsum("bqhd,bkhd->bhqk", qn, kn) / 16  # alpha q.k / d, not / sqrt(d)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    np.testing.assert_allclose(out, np.einsum("bhqk,bkhd->bqhd", w, vn), rtol=1e-4, atol=1e-5)
    # usable as flax's attention_fn, linen and nnx
    attn = nn.MultiHeadDotProductAttention(2, attention_fn=jaxinit.mup_attention_fn())
    x = jnp.ones((1, 3, 8))
    assert attn.apply(attn.init(jax.random.key(0), x), x).shape == (1, 3, 8)
    nattn = nnx.MultiHeadAttention(
        2,
        8,
        attention_fn=jaxinit.mup_attention_fn(attention_fn=nnx.dot_product_attention),
        decode=False,
        rngs=nnx.Rngs(0),
    )
    assert nattn(x).shape == (1, 3, 8)
    # the mask reaches the logits: linen passes an attention_fn only the keyword arguments
    # its signature names, so a wrapper without them would drop the mask (and leak the
    # future). Causal self-attention: changing token 2 changes no output before it, and
    # the output equals softmax(q·k/d + mask) by hand.
    x = jax.random.normal(jax.random.key(3), (1, 4, 8))
    x2 = x.at[0, 2].add(1.0)
    causal = nn.make_causal_mask(jnp.ones((1, 4), jnp.int32))
    v = attn.init(jax.random.key(0), x)
    y, y2 = (attn.apply(v, a, mask=causal) for a in (x, x2))
    np.testing.assert_array_equal(y[0, :2], y2[0, :2])
    assert float(jnp.abs(y[0, 2:] - y2[0, 2:]).max()) > 1e-4
    nattn = nnx.MultiHeadAttention(
        2, 8, decode=False, rngs=nnx.Rngs(0),
        attention_fn=jaxinit.mup_attention_fn(attention_fn=nnx.dot_product_attention),
    )  # fmt: skip
    n, n2 = (nattn(a, mask=causal) for a in (x, x2))
    np.testing.assert_array_equal(n[0, :2], n2[0, :2])
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), v["params"])
    xn = np.asarray(x, np.float64)
    proj = lambda name: np.einsum("bld,dhk->blhk", xn, p[name]["kernel"]) + p[name]["bias"]
    q, k_, val = (proj(nm) for nm in ("query", "key", "value"))
    logits = np.einsum("bqhd,bkhd->bhqk", q, k_) / q.shape[-1]
    logits = np.where(np.asarray(causal, bool), logits, -np.inf)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    heads = np.einsum("bhqk,bkhd->bqhd", w, val)
    want = np.einsum("bqhd,hde->bqe", heads, p["out"]["kernel"]) + p["out"]["bias"]
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)


def test_coord_check_flat_in_mup_grows_in_sp(tmp_path):
    """The coordinate check on an MLP, widths 64..1024, 3 Adam steps: in μP (mup init, readout
    multiplier, mup_adam) every layer's coordinate size is flat in width (|slope| of log l1
    vs log width < 0.25); in standard parametrization (same LR for all) the output's and
    the hidden layers' grow (slope > 0.5: Δh ∝ width after one Adam step; measured 0.77 for
    the hidden layer and 1.0 for the output, against |slope| <= 0.03 in μP)."""
    widths = (64, 256, 1024)
    x = jax.random.normal(jax.random.key(1), (32, D_IN))
    y = jax.random.randint(jax.random.key(2), (32,), 0, D_OUT)
    bsh = jaxinit.base_shapes(lambda: _linen(64), lambda: _linen(128))
    mup_rules = jaxinit.mup(readout="head/kernel")
    mu = jaxinit.coord_check(
        lambda w: LinenMLP(w, readout_mult=True), widths, x, y, jaxinit.mup_adam(0.02, bsh),
        steps=3, seeds=2, init=lambda v, k: jaxinit.reinit(v, mup_rules, k),
    )  # fmt: skip
    sp = jaxinit.coord_check(
        lambda w: LinenMLP(w), widths, x, y, optax.adam(0.02), steps=3, seeds=2
    )
    assert set(mu.table.columns) == {"width", "seed", "step", "layer", "l1"}
    assert set(mu.table.layer) == {"fc1", "fc2", "head", "output"}
    mu_s, sp_s = mu.slopes(), sp.slopes()
    last = 3
    assert mu_s[mu_s.step == last].slope.abs().max() < 0.25, mu_s
    sp_last = sp_s[sp_s.step == last].set_index("layer").slope
    assert sp_last["head"] > 0.5 and sp_last["fc2"] > 0.5, sp_s
    # at t = 0 nothing has been learned: SP's coordinates are flat too
    assert (sp_s[sp_s.step == 0].slope.abs() < 0.25).all()
    mu.plot(str(tmp_path / "cc.png"), title="muP")
    assert (tmp_path / "cc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_coord_check_equinox_via_init_apply():
    """Any framework through make(width) -> (init, apply): an Equinox MLP in μP (mup init on
    its torch-layout weights, readout multiplier, mup_adam) stays flat from 64 to 1024."""
    x = jax.random.normal(jax.random.key(1), (16, D_IN))
    y = jax.random.randint(jax.random.key(2), (16,), 0, D_OUT)
    bsh = jaxinit.base_shapes(lambda: _eqx(64), lambda: _eqx(128))
    rules = jaxinit.mup(readout="head/weight", hidden="weight")

    def make(w):
        static = eqx.filter(_eqx(w), eqx.is_array, inverse=True)

        def init(k):
            return eqx.filter(jaxinit.reinit(_eqx_key(w, k), rules, k), eqx.is_array)

        def apply(p, xs):
            m = eqx.combine(p, static)
            h1 = jax.nn.relu(jax.vmap(m.fc1)(xs))
            h2 = jax.nn.relu(jax.vmap(m.fc2)(h1))
            out = jax.vmap(m.head)(h2 * jaxinit.readout_multiplier(w, 64))
            return out, {"fc1": h1, "fc2": h2, "head": out}

        return init, apply

    cc = jaxinit.coord_check(make, (64, 1024), x, y, jaxinit.mup_adam(0.02, bsh), steps=2,
                             seeds=1)  # fmt: skip
    s = cc.slopes()
    assert set(s.layer) == {"fc1", "fc2", "head"}
    assert s[s.step == 2].slope.abs().max() < 0.25, s
    with pytest.raises(TypeError, match="coord_check: make\\(width\\) must return"):
        jaxinit.coord_check(lambda w: (1, 2, 3), (8,), x, y, jaxinit.mup_adam(0.02, bsh))


def _eqx_key(w, k):
    return EqxMLP(w, k)


def test_errors_name_the_function_and_argument():
    bsh = jaxinit.base_shapes(lambda: _linen(64), lambda: _linen(128))
    with pytest.raises(ValueError, match="base_shapes: base and delta have different"):
        jaxinit.base_shapes(lambda: _linen(64), lambda: _eqx(128))
    with pytest.raises(ValueError, match=r"axis 0 is finite .* must stay 8, got 9"):
        jaxinit.infshape_of("params/fc1/kernel", (9, 256), bsh)
    with pytest.raises(ValueError, match="has no base shape"):
        jaxinit.infshape_of("params/nope/kernel", (9, 256), bsh)
    with pytest.raises(ValueError, match=r"lr_multiplier: shape .* 3 infinite"):
        jaxinit.lr_multiplier(InfShape((4, 4, 4), (2, 2, 2), "flax"), "adam")
    with pytest.raises(ValueError, match="optimizer='lion' is not supported"):
        jaxinit.lr_multiplier(InfShape((4,), (2,), "flax"), "lion")
    with pytest.raises(TypeError, match="scale_by_mup: bsh must be the dict"):
        jaxinit.scale_by_mup({"a": (1, 2)}, "adam")
    with pytest.raises(ValueError, match="readout_multiplier: width must be an int"):
        jaxinit.readout_multiplier(0, 64)
    with pytest.raises(ValueError, match="coord_check: widths"):
        jaxinit.coord_check(lambda w: LinenMLP(w), (), jnp.ones((1, 8)), jnp.zeros(1), None)
    tx = jaxinit.mup_adam(0.1, bsh)
    wrong = {"params": {"other": {"kernel": jnp.ones((2, 2))}}}
    with pytest.raises(ValueError, match=r"scale_by_mup: .*'params/other/kernel' has no base"):
        tx.update(wrong, tx.init(wrong))
    assert math.isfinite(jaxinit.readout_multiplier(64, 64))


class _AttnNet(nn.Module):
    """Dense embedding (fixed input) -> self-attention with a DenseGeneral q/k/v
    ``(d, heads, head_dim)`` and out ``(heads, head_dim, d)``; ``scan`` layers stacked."""

    d: int
    q: int
    heads: int
    scan: int = 0

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.d, name="embed")(x)
        if not self.scan:
            return _AttnLayer(self.d, self.q, self.heads, name="attn")(x, None)[0]
        stack = nn.scan(_AttnLayer, variable_axes={"params": 0}, split_rngs={"params": True},
                        length=self.scan)  # fmt: skip
        return stack(self.d, self.q, self.heads, name="layers")(x, None)[0]


class _AttnLayer(nn.Module):
    d: int
    q: int
    heads: int

    @nn.compact
    def __call__(self, x, _):
        attn = nn.MultiHeadDotProductAttention(
            self.heads, qkv_features=self.q, out_features=self.d, name="mha"
        )
        return x + attn(x), None


def _as_matrix(s):
    """The InfShape of the same parameter as a plain Linear (flax (in, out)) or bias: the
    oracle, mup's definitions on what torch's nn.MultiheadAttention holds (stack axes of a
    scan dropped: they are finite)."""
    if s.fan_axes is None:
        return s

    def group(axes):
        size = math.prod(s.shape[a] for a in axes)
        inf = any(s.base[a] is not None for a in axes)
        return size, (math.prod(s.base[a] or s.shape[a] for a in axes) if inf else None)

    ins, outs = s.fan_axes
    if not ins:  # a (heads, head_dim) bias: one vector
        return InfShape((group(outs)[0],), (group(outs)[1],), "flax")
    (ni, bi), (no, bo) = group(ins), group(outs)
    return InfShape((ni, no), (bi, bo), "flax")


@pytest.mark.parametrize("framework", ["linen", "linen_scan", "nnx"])
def test_dense_general_kernels_use_their_fan_axes(framework):
    """q/k/v (d, heads, head_dim) and out (heads, head_dim, d) kernels: multipliers equal
    those of the same parameter as a 2-D Linear (how mup sees torch's attention), for a
    model width x4 and qkv width x2 (head_dim grows, 2 heads), so fan-in and fan-out
    multipliers differ and the stored-axis reading would be wrong (q's SGD x2, not x1/2)."""
    x = jnp.ones((1, 3, 5))
    if framework == "nnx":

        def make(d, q, h):
            return lambda: nnx.MultiHeadAttention(h, d, qkv_features=q, decode=False,
                                                  rngs=nnx.Rngs(0))  # fmt: skip

        bsh = jaxinit.base_shapes(make(16, 16, 2), make(32, 32, 2))
        shapes = jaxinit.infshapes(nnx.eval_shape(make(64, 32, 2)), bsh)
        short = {p.split("/")[0] + "/" + p.split("/")[-1]: s for p, s in shapes.items()}
        general = nnx.eval_shape(lambda: nnx.LinearGeneral((2, 8), 16, axis=(-2, -1),
                                                           rngs=nnx.Rngs(0)))  # fmt: skip
        assert general.kernel.shape == (2, 8, 16)
    else:
        n = 3 if framework == "linen_scan" else 0
        bsh = jaxinit.base_shapes(_AttnNet(16, 16, 2, n), _AttnNet(32, 32, 2, n), sample=x)
        big = jax.eval_shape(lambda: _AttnNet(64, 32, 2, n).init(jax.random.key(0), x))
        shapes = jaxinit.infshapes(big, bsh)
        short = {p.split("/")[-2] + "/" + p.split("/")[-1]: s for p, s in shapes.items()
                 if "mha" in p}  # fmt: skip
        if n:
            assert short["query/kernel"].shape == (3, 64, 2, 16)
    r = len(short["query/kernel"].shape)
    assert short["query/kernel"].fan_axes == ((r - 3,), (r - 2, r - 1))
    for name, s in short.items():
        m = _as_matrix(s)
        assert (s.kind, s.width_mult()) == (m.kind, m.width_mult()), name
        for opt in ("adam", "sgd"):
            assert jaxinit.lr_multiplier(s, opt) == jaxinit.lr_multiplier(m, opt), (name, opt)
    # the numbers: q fan-in x4, fan-out x2; out fan-in x2, fan-out x4; q bias x2
    q, o, b = short["query/kernel"], short["out/kernel"], short["query/bias"]
    assert (q.kind, q.width_mult(), q.fanin_fanout_mult_ratio()) == ("hidden", 4.0, 2.0)
    assert jaxinit.lr_multiplier(q, "adam") == 0.25 and jaxinit.lr_multiplier(q, "sgd") == 0.5
    assert (o.width_mult(), jaxinit.lr_multiplier(o, "sgd")) == (2.0, 2.0)
    assert (b.kind, jaxinit.lr_multiplier(b, "adam"), jaxinit.lr_multiplier(b, "sgd")) == (
        "vector", 1.0, 2.0)  # fmt: skip
    # the stored-axis reading this replaces: q's heads axis taken as fan-in, head_dim as out
    stored = InfShape(q.shape, q.base, "flax")
    assert (stored.fanin_fanout_mult_ratio(), jaxinit.lr_multiplier(stored, "sgd")) == (0.5, 2.0)


def test_equinox_attention_logits_scale_as_one_over_d():
    """eqx.nn.MultiheadAttention with mup_process_heads: the output equals
    softmax(α q·k/d) v through the layer's own projections (computed here by hand in
    float64), and differs from Equinox's default 1/sqrt(d); a composed process_heads (a
    sign flip of the keys, as a stand-in for rotary embeddings) runs first."""
    heads, d_model, seq, alpha = 2, 32, 5, 3.0
    mha = eqx.nn.MultiheadAttention(heads, d_model, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (seq, d_model))

    def by_hand(scale, flip=1.0):
        xn = np.asarray(x, np.float64)

        def proj(lin):
            w, b = np.asarray(lin.weight, np.float64), lin.bias
            y = xn @ w.T + (0 if b is None else np.asarray(b, np.float64))
            return y.reshape(seq, heads, -1)

        q, k, v = proj(mha.query_proj), flip * proj(mha.key_proj), proj(mha.value_proj)
        logits = scale(q.shape[-1]) * np.einsum("qhd,khd->hqk", q, k)
        w = np.exp(logits - logits.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        out = np.einsum("hqk,khd->qhd", w, v).reshape(seq, -1)
        wo = np.asarray(mha.output_proj.weight, np.float64)
        bo = mha.output_proj.bias
        return out @ wo.T + (0 if bo is None else np.asarray(bo, np.float64))

    got = mha(x, x, x, process_heads=jaxinit.mup_process_heads(alpha))
    np.testing.assert_allclose(got, by_hand(lambda d: alpha / d), rtol=1e-4, atol=1e-5)
    default = mha(x, x, x)
    np.testing.assert_allclose(default, by_hand(lambda d: d**-0.5), rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(got - default).max()) > 1e-2
    flip = jaxinit.mup_process_heads(alpha, process_heads=lambda q, k, v: (q, -k, v))
    np.testing.assert_allclose(
        mha(x, x, x, process_heads=flip), by_hand(lambda d: alpha / d, -1.0), rtol=1e-4, atol=1e-5
    )
    with pytest.raises(ValueError, match="mup_process_heads: attn_mult"):
        jaxinit.mup_process_heads(0.0)
    with pytest.raises(TypeError, match="mup_process_heads: process_heads must be callable"):
        jaxinit.mup_process_heads(1.0, process_heads=3)


def _mlp(*hidden):
    def make(w):
        layers = []
        for _ in hidden:
            layers += [nn.Dense(w), nn.relu]
        return nn.Sequential([*layers, nn.Dense(D_OUT)])

    return make


def test_coord_check_takes_an_optimizer_factory_never_the_width_as_a_rate():
    """``coord_check(make, widths, x, y, optax.adam)`` used to train with learning rate =
    width: an optax alias is refused by name; ``width -> optimizer`` is called per width and
    must return a transformation."""
    x = jax.random.normal(jax.random.key(1), (8, D_IN))
    y = jnp.arange(8) % D_OUT
    make = _mlp(1)
    for alias in (optax.adam, optax.sgd, jaxinit.mup_adam):
        with pytest.raises(TypeError, match=r"first argument is the learning\s+rate"):
            jaxinit.coord_check(make, (16,), x, y, alias, steps=1, seeds=1)
    seen = []

    def per_width(w):
        seen.append(w)
        return optax.sgd(0.1 * 16 / w)

    cc = jaxinit.coord_check(make, (16, 32), x, y, per_width, steps=1, seeds=1)
    assert seen == [16, 32] and np.isfinite(cc.table.l1).all()
    with pytest.raises(TypeError, match=r"optimizer\(16\) must return an optax"):
        jaxinit.coord_check(make, (16,), x, y, lambda w: 0.1, steps=1, seeds=1)
    with pytest.raises(TypeError, match="optimizer must be an optax GradientTransformation"):
        jaxinit.coord_check(make, (16,), x, y, 0.1, steps=1, seeds=1)


def test_coord_check_refuses_bad_batches_by_name():
    x = jax.random.normal(jax.random.key(1), (8, D_IN))
    y = jnp.arange(8) % D_OUT
    tx = optax.sgd(0.1)
    make = _mlp(1)
    with pytest.raises(
        ValueError, match=r"coord_check: y holds labels \[10, 11\] outside \[0, 10\)"
    ):
        jaxinit.coord_check(make, (16,), x, y + 4, tx, steps=1, seeds=1)
    with pytest.raises(ValueError, match=r"coord_check: y holds labels \[-1\]"):
        jaxinit.coord_check(make, (16,), x, y - 1, tx, steps=1, seeds=1)
    with pytest.raises(ValueError, match=r"coord_check: x of shape .* has 1 NaN"):
        jaxinit.coord_check(make, (16,), x.at[0, 0].set(jnp.nan), y, tx, steps=1, seeds=1)
    with pytest.raises(ValueError, match=r"coord_check: x of shape \(0, 8\) is empty"):
        jaxinit.coord_check(make, (16,), x[:0], y[:0], tx, steps=1, seeds=1)
    with pytest.raises(ValueError, match="y has 7 labels but x has 8 examples"):
        jaxinit.coord_check(make, (16,), x, y[:7], tx, steps=1, seeds=1)
    with pytest.raises(TypeError, match="y must be integer class labels"):
        jaxinit.coord_check(make, (16,), x, y.astype(jnp.float32), tx, steps=1, seeds=1)
    with pytest.raises(ValueError, match=r"coord_check: y of shape .* has 10 NaN"):
        jaxinit.coord_check(make, (16,), x, jnp.full((8, D_OUT), jnp.nan).at[1:].set(0.0), tx,
                            steps=1, seeds=1, loss=lambda o, t: jnp.mean((o - t) ** 2))  # fmt: skip


def test_base_shapes_of_another_model_are_refused():
    """Base shapes of a 2-hidden-layer MLP applied to a 1-hidden-layer one would take its
    readout (layers_2) for a hidden layer (Adam multiplier 1/m instead of 1)."""
    x = jnp.ones((1, D_IN))
    two, one = _mlp(1, 2), _mlp(1)
    bsh2 = jaxinit.base_shapes(lambda: two(64).init(jax.random.key(0), x),
                               lambda: two(128).init(jax.random.key(0), x))  # fmt: skip
    params1 = one(256).init(jax.random.key(0), x)
    tx = jaxinit.mup_adam(0.01, bsh2)
    with pytest.raises(
        ValueError, match=r"scale_by_mup: the base shapes were made for another model.*layers_4"
    ):
        tx.update(params1, tx.init(params1), params1)
    with pytest.raises(ValueError, match="infshapes: the base shapes were made for another model"):
        jaxinit.infshapes(params1, bsh2)
    sgd = jaxinit.mup_sgd(0.1, bsh2, weight_decay=0.1)
    with pytest.raises(ValueError, match="the base shapes were made for another model"):
        sgd.update(params1, sgd.init(params1), params1)
    with pytest.raises(ValueError, match="the base shapes were made for another model"):
        jaxinit.coord_check(one, (64,), jnp.ones((4, D_IN)), jnp.arange(4), tx, steps=1, seeds=1)
    # the model's own base shapes, and a part of them for an optimizer of that part, work
    bsh1 = jaxinit.base_shapes(lambda: one(64).init(jax.random.key(0), x),
                               lambda: one(128).init(jax.random.key(0), x))  # fmt: skip
    assert len(jaxinit.infshapes(params1, bsh1)) == 4
    head = {k: v for k, v in bsh1.items() if "layers_2" in k}
    part = {"params": {"layers_2": params1["params"]["layers_2"]}}
    tx = jaxinit.mup_adam(0.01, head)
    upd, _ = tx.update(part, tx.init(part), part)
    assert np.isfinite(upd["params"]["layers_2"]["kernel"]).all()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda b: jaxinit.mup_adam(math.nan, b), "mup_adam: learning_rate must be finite and > 0"),
        (lambda b: jaxinit.mup_adam(0.0, b), "mup_adam: learning_rate must be finite and > 0"),
        (lambda b: jaxinit.mup_adam(math.inf, b), "learning_rate must be finite"),
        (lambda b: jaxinit.mup_adam(0.1, b, b2=1.0), r"mup_adam: b2 must be in \[0, 1\)"),
        (lambda b: jaxinit.mup_adam(0.1, b, b1=-0.1), r"mup_adam: b1 must be in \[0, 1\)"),
        (lambda b: jaxinit.mup_adam(0.1, b, b1=math.nan), "mup_adam: b1 must be a finite"),
        (lambda b: jaxinit.mup_adam(0.1, b, eps=0.0), "mup_adam: eps must be finite and > 0"),
        (lambda b: jaxinit.mup_adam(0.1, b, weight_decay=math.nan), "weight_decay must be"),
        (lambda b: jaxinit.mup_sgd(math.nan, b), "mup_sgd: learning_rate must be finite"),
        (lambda b: jaxinit.mup_sgd(0.1, b, momentum=1.0), r"mup_sgd: momentum must be in \[0, 1\)"),
        (lambda b: jaxinit.mup_sgd(0.1, b, nesterov="yes"), "mup_sgd: nesterov must be True"),
    ],
)
def test_mup_optimizers_refuse_non_finite_or_degenerate_options(call, match):
    bsh = jaxinit.base_shapes(lambda: _linen(64), lambda: _linen(128))
    with pytest.raises((ValueError, TypeError), match=match):
        call(bsh)


def test_mup_optimizers_take_schedules_and_numpy_widths():
    bsh = jaxinit.base_shapes(lambda: _linen(64), lambda: _linen(128))
    params = _linen(256)
    tx = jaxinit.mup_adam(optax.linear_schedule(0.1, 0.0, 10), bsh)
    upd, _ = tx.update(params, tx.init(params), params)
    assert all(np.isfinite(u).all() for u in jax.tree.leaves(upd))
    assert jaxinit.readout_multiplier(np.int64(128), 64) == 0.5
    assert jaxinit.readout_multiplier(128, np.int32(64), np.float32(2.0)) == 1.0
    with pytest.raises(ValueError, match="readout_multiplier: width must be an int >= 1"):
        jaxinit.readout_multiplier(128.0, 64)
