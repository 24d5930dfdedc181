"""Fans from the layer: reinit, rule sets, lsuv and explain draw each parameter with the
distribution its own layer gives with that initializer as its kernel_init.

Variances are compared with the formula of one layer's call (exact expectations) within
5 standard errors of a sample variance, sqrt((kurtosis - 1) / n) relative (kurtosis <= 3
for the normal, truncated normal and uniform draws here), and with the layer's own
``kernel_init=S`` draw (two samples). ``orthogonal`` is checked exactly: every layer's
call is a matrix with orthonormal columns.
"""

import math
import warnings

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

import jaxinit

KEY = jax.random.key(0)
LECUN = jaxinit.lecun_normal()  # truncated normal, fan_in
GLOROT = jaxinit.glorot_uniform()  # uniform, fan_avg
ORTHO = jaxinit.orthogonal()


def _var_ok(values, expected, what=""):
    x = np.asarray(values, np.float64).ravel()
    tol = 5 * math.sqrt(2.0 / x.size)
    v = float(np.mean(x**2))  # the mean is 0 by construction
    assert abs(v / expected - 1) < tol, f"{what}: variance {v:.5g}, expected {expected:.5g}"


def _same_var(a, b, what=""):
    a, b = (np.asarray(t, np.float64).ravel() for t in (a, b))
    tol = 5 * math.sqrt(2.0 / a.size + 2.0 / b.size)
    va, vb = np.mean(a**2), np.mean(b**2)
    assert abs(va / vb - 1) < tol, f"{what}: variance {va:.5g} vs the layer's own {vb:.5g}"


def _check(values, call, stack, scheme, what):
    """``values``: the stored parameter; ``call``: one layer's call shape (flax
    convention); ``stack``: how many layer calls it holds."""
    fan_in = math.prod(call[:-1])
    fan_out = math.prod(call[:-2]) * call[-1]
    if scheme == "lecun":
        _var_ok(values, 1 / fan_in, what)
    elif scheme == "glorot":
        _var_ok(values, 2 / (fan_in + fan_out), what)
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert np.max(np.abs(values)) <= bound * (1 + 1e-6), what
    else:  # orthogonal: each call (rows, cols) has orthonormal columns (or rows)
        rows, cols = math.prod(call[:-1]), call[-1]
        x = np.asarray(values, np.float64).reshape(stack, rows, cols)
        if rows < cols:
            x = np.swapaxes(x, 1, 2)
        gram = np.einsum("sij,sik->sjk", x, x)
        eye = np.eye(min(rows, cols))
        np.testing.assert_allclose(gram, np.broadcast_to(eye, gram.shape), atol=2e-5, err_msg=what)


# --------------------------------------------------------------------------- linen zoo


class _ScanBody(nn.Module):
    kinit: object = nn.linear.default_kernel_init

    @nn.compact
    def __call__(self, c, _):
        return nn.Dense(64, kernel_init=self.kinit)(c), None


def _scan(kinit=nn.linear.default_kernel_init):
    return nn.scan(_ScanBody, variable_axes={"params": 0}, split_rngs={"params": True}, length=6)(
        kinit
    )


_VDense = nn.vmap(
    nn.Dense, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=0, out_axes=0
)

x64 = jnp.ones((2, 64))
img = jnp.ones((1, 6, 6, 16))
carry16 = (jnp.zeros((1, 64)), jnp.zeros((1, 64)))
# (name, module, sample, {param path: (call shape, number of stacked calls)}, orthogonal
# too): every layer gets the truncated normal and the uniform; orthogonal (a QR compiled
# per shape) the layers whose call differs from the stored shape, to keep the test short.
LINEN = [
    ("Dense", nn.Dense(64), x64, {"kernel": ((64, 64), 1)}, False),
    ("DenseGeneral tuple features", nn.DenseGeneral((4, 16)), x64, {"kernel": ((64, 64), 1)}, True),
    (
        "DenseGeneral axis",
        nn.DenseGeneral(32, axis=(-2, -1)),
        jnp.ones((2, 8, 16)),
        {"kernel": ((128, 32), 1)},
        False,
    ),
    (
        "DenseGeneral batch_dims",
        nn.DenseGeneral((4, 8), axis=-1, batch_dims=(0,)),
        jnp.ones((3, 2, 32)),
        {"kernel": ((96, 32), 1)},
        True,
    ),
    ("Einsum", nn.Einsum((4, 64, 16), "bi,hij->bhj"), x64, {"kernel": ((4, 64, 16), 1)}, False),
    (
        "MultiHeadDotProductAttention",
        nn.MultiHeadDotProductAttention(num_heads=4, qkv_features=64),
        jnp.ones((1, 4, 64)),
        {f"{p}/kernel": ((64, 64), 1) for p in ("query", "key", "value", "out")},
        True,
    ),
    (
        "SelfAttention",
        nn.SelfAttention(num_heads=4, qkv_features=64),
        jnp.ones((1, 4, 64)),
        {"query/kernel": ((64, 64), 1)},
        False,
    ),
    (
        "Conv groups",
        nn.Conv(32, (3, 3), feature_group_count=2),
        img,
        {"kernel": ((3, 3, 8, 32), 1)},
        True,
    ),
    ("ConvTranspose", nn.ConvTranspose(32, (3, 3)), img, {"kernel": ((3, 3, 16, 32), 1)}, False),
    ("ConvLocal", nn.ConvLocal(8, (3, 3)), img, {"kernel": ((6, 6, 144, 8), 1)}, False),
    ("Embed", nn.Embed(128, 32), jnp.ones((2,), jnp.int32), {"embedding": ((128, 32), 1)}, False),
    (
        "LSTMCell",
        nn.LSTMCell(64),
        (carry16, x64[:1]),
        {"ii/kernel": ((64, 64), 1), "hf/kernel": ((64, 64), 1)},
        True,
    ),
    ("GRUCell", nn.GRUCell(64), (carry16[0], x64[:1]), {"in/kernel": ((64, 64), 1)}, False),
    (
        "OptimizedLSTMCell",
        nn.OptimizedLSTMCell(64),
        (carry16, x64[:1]),
        {"ig/kernel": ((64, 64), 1), "ho/kernel": ((64, 64), 1)},
        False,
    ),
    ("nn.scan stack", _scan(), (x64, None), {"Dense_0/kernel": ((64, 64), 6)}, True),
    ("nn.vmap stack", _VDense(16), jnp.ones((5, 2, 64)), {"kernel": ((64, 16), 5)}, True),
]


def _get(tree, path):
    for part in path.split("/"):
        tree = tree[part]
    return tree


@pytest.mark.parametrize("scheme", ["lecun", "glorot", "ortho"])
def test_linen_zoo_matches_the_layers_own_fans(scheme):
    init = {"lecun": LECUN, "glorot": GLOROT, "ortho": ORTHO}[scheme]
    for name, module, sample, params, ortho_ok in LINEN:
        if scheme == "ortho" and not ortho_ok:
            continue
        args = sample if isinstance(sample, tuple) else (sample,)
        with warnings.catch_warnings():  # SelfAttention's deprecation notice
            warnings.simplefilter("ignore", DeprecationWarning)
            v = jax.eval_shape(module.init, KEY, *args)  # shapes are all reinit needs
            rules = {p: init for p in params}
            new = jaxinit.reinit(v, rules, jax.random.key(1), module=module, sample=sample)
        for p, (call, stack) in params.items():
            w = _get(new["params"], p)
            assert w.shape == _get(v["params"], p).shape
            _check(w, call, stack, scheme, f"linen {name} {p}")
            if stack > 1:  # each stacked layer is its own draw
                flat = np.asarray(w).reshape(stack, -1)
                assert not np.allclose(flat[0], flat[1])


def test_linen_reinit_equals_the_layers_own_kernel_init_in_distribution():
    """DenseGeneral, attention and a scan stack: the layer built with kernel_init=S and
    the same layer re-initialised with S have the same variance (and the flattened
    DenseGeneral kernel passes a KS test against S's distribution)."""
    m = nn.DenseGeneral((4, 16))
    own = m.clone(kernel_init=LECUN).init(KEY, x64)["params"]["kernel"]
    new = jaxinit.reinit(
        m.init(KEY, x64), {"kernel": LECUN}, jax.random.key(1), module=m, sample=x64
    )
    _same_var(new["params"]["kernel"], own, "DenseGeneral")
    # KS: lecun_normal is N(0, 1/64) truncated at 2 sigma of the untruncated normal
    sigma = math.sqrt(1 / 64) / 0.87962566103423978
    z = np.asarray(new["params"]["kernel"]).ravel() / sigma
    assert stats.kstest(z, stats.truncnorm(-2, 2).cdf).pvalue > 1e-3

    att = nn.MultiHeadDotProductAttention(num_heads=4, qkv_features=64)
    xa = jnp.ones((1, 4, 64))
    own = att.clone(kernel_init=GLOROT).init(KEY, xa)["params"]
    new = jaxinit.reinit(
        att.init(KEY, xa), {"{query,out}/kernel": GLOROT}, KEY, module=att, sample=xa
    )["params"]
    for p in ("query", "out"):
        _same_var(new[p]["kernel"], own[p]["kernel"], f"attention {p}")
    bound = math.sqrt(6 / 128)
    z = np.asarray(new["query"]["kernel"]).ravel() / bound
    assert stats.kstest(z, stats.uniform(-1, 2).cdf).pvalue > 1e-3

    own = _scan(LECUN).init(KEY, x64, None)["params"]["Dense_0"]["kernel"]
    s = _scan()
    new = jaxinit.reinit(
        s.init(KEY, x64, None), {"kernel": LECUN}, KEY, module=s, sample=(x64, None)
    )
    _same_var(new["params"]["Dense_0"]["kernel"], own, "scan")


# --------------------------------------------------------------------------- nnx zoo


def _nnx_zoo():
    """The layers, built abstractly (``nnx.eval_shape``): reinit needs only shapes."""
    return [(n, nnx.eval_shape(make), p) for n, make, p in _nnx_makers()]


def _nnx_makers():
    class Stacked(nnx.Module):
        def __init__(self, rngs):
            self.lin = nnx.Linear(64, 64, rngs=rngs)

    @nnx.split_rngs(splits=6)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def vmapped(rngs):
        return Stacked(rngs)

    return [
        ("Linear", lambda: nnx.Linear(64, 32, rngs=nnx.Rngs(0)), {"kernel": ((64, 32), 1)}),
        (
            "LinearGeneral",
            lambda: nnx.LinearGeneral(64, (4, 16), rngs=nnx.Rngs(0)),
            {"kernel": ((64, 64), 1)},
        ),
        (
            "LinearGeneral in",
            lambda: nnx.LinearGeneral((4, 16), 32, axis=(-2, -1), rngs=nnx.Rngs(0)),
            {"kernel": ((64, 32), 1)},
        ),
        (
            "Einsum",
            lambda: nnx.Einsum("bi,hij->bhj", (4, 64, 16), rngs=nnx.Rngs(0)),
            {"kernel": ((4, 64, 16), 1)},
        ),
        (
            "MultiHeadAttention",
            lambda: nnx.MultiHeadAttention(4, 64, decode=False, rngs=nnx.Rngs(0)),
            {f"{p}/kernel": ((64, 64), 1) for p in ("query", "key", "value", "out")},
        ),
        (
            "Conv groups",
            lambda: nnx.Conv(16, 32, (3, 3), feature_group_count=2, rngs=nnx.Rngs(0)),
            {"kernel": ((3, 3, 8, 32), 1)},
        ),
        (
            "ConvTranspose",
            lambda: nnx.ConvTranspose(16, 32, (3, 3), rngs=nnx.Rngs(0)),
            {"kernel": ((3, 3, 16, 32), 1)},
        ),
        ("Embed", lambda: nnx.Embed(128, 32, rngs=nnx.Rngs(0)), {"embedding": ((128, 32), 1)}),
        (
            "LSTMCell",
            lambda: nnx.LSTMCell(64, 32, rngs=nnx.Rngs(0)),
            {"ii/kernel": ((64, 32), 1), "hf/kernel": ((32, 32), 1)},
        ),
        (
            "GRUCell",
            lambda: nnx.GRUCell(64, 32, rngs=nnx.Rngs(0)),
            {"dense_i/kernel": ((64, 96), 1)},
        ),
        ("vmap stack", lambda: vmapped(nnx.Rngs(1)), {"lin/kernel": ((64, 64), 6)}),
    ]


def _nnx_get(m, path):
    for part in path.split("/"):
        m = getattr(m, part)
    m = m.get_value() if hasattr(m, "get_value") else m[...]
    return m if isinstance(m, jax.ShapeDtypeStruct) else np.asarray(m)


@pytest.mark.parametrize("scheme", ["lecun", "glorot", "ortho"])
def test_nnx_zoo_matches_the_layers_own_fans(scheme):
    init = {"lecun": LECUN, "glorot": GLOROT, "ortho": ORTHO}[scheme]
    for name, module, params in _nnx_zoo():
        if scheme == "ortho" and name not in (
            "LinearGeneral",
            "MultiHeadAttention",
            "GRUCell",
            "vmap stack",
        ):
            continue  # orthogonal on the layers whose call is not the stored shape
        new = jaxinit.reinit(module, {p: init for p in params}, jax.random.key(1))
        for p, (call, stack) in params.items():
            w = _nnx_get(new, p)
            assert w.shape == _nnx_get(module, p).shape
            _check(w, call, stack, scheme, f"nnx {name} {p}")
        if scheme == "lecun" and name == "LinearGeneral":  # KS against S's distribution
            z = np.asarray(new.kernel[...]).ravel() / (math.sqrt(1 / 64) / 0.87962566103423978)
            assert stats.kstest(z, stats.truncnorm(-2, 2).cdf).pvalue > 1e-3


def test_nnx_scan_stack_and_state_with_module():
    """An nnx.scan-built stack, and an nnx State re-initialised with module= for its
    layers (as a Study does)."""

    class Layer(nnx.Module):
        def __init__(self, rngs):
            self.lin = nnx.LinearGeneral(64, (4, 16), rngs=rngs)

    @nnx.split_rngs(splits=4)
    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
    def build(c, rngs):
        return c, Layer(rngs)

    _, stack = build(0, nnx.Rngs(2))
    assert stack.lin.kernel[...].shape == (4, 64, 4, 16)
    _, state = nnx.split(stack, nnx.Param)
    new = jaxinit.reinit(state, {"kernel": LECUN}, KEY, module=stack)
    _check(new["lin"]["kernel"][...], (64, 64), 4, "lecun", "nnx.scan LinearGeneral")
    with pytest.raises(ValueError, match="module="):  # the State alone is ambiguous
        jaxinit.reinit(state, {"kernel": LECUN}, KEY)


# --------------------------------------------------------------------------- Equinox zoo


def _eqx_zoo():
    """The layers, built abstractly: reinit needs only shapes."""
    return [(n, eqx.filter_eval_shape(make), p) for n, make, p in _eqx_makers()]


def _eqx_makers():
    k = jax.random.split(KEY, 10)
    return [
        ("Linear", lambda: eqx.nn.Linear(64, 32, key=k[0]), {"weight": ((64, 32), 1)}),
        ("Conv1d", lambda: eqx.nn.Conv1d(16, 32, 3, key=k[1]), {"weight": ((3, 16, 32), 1)}),
        (
            "Conv2d groups",
            lambda: eqx.nn.Conv2d(16, 32, 3, groups=2, key=k[2]),
            {"weight": ((3, 3, 8, 32), 1)},
        ),
        ("Conv3d", lambda: eqx.nn.Conv3d(4, 8, 3, key=k[3]), {"weight": ((3, 3, 3, 4, 8), 1)}),
        (
            "ConvTranspose2d",
            lambda: eqx.nn.ConvTranspose2d(16, 32, 3, key=k[4]),
            {"weight": ((3, 3, 16, 32), 1)},
        ),
        (
            "MultiheadAttention",
            lambda: eqx.nn.MultiheadAttention(4, 64, key=k[5]),
            {f"{p}_proj/weight": ((64, 64), 1) for p in ("query", "key", "value", "output")},
        ),
        (
            "MLP",
            lambda: eqx.nn.MLP(64, 16, 64, 2, key=k[6]),
            {"layers/0/weight": ((64, 64), 1), "layers/2/weight": ((64, 16), 1)},
        ),
        (
            "GRUCell",
            lambda: eqx.nn.GRUCell(64, 32, key=k[7]),
            {"weight_ih": ((64, 32), 3), "weight_hh": ((32, 32), 3)},
        ),
        ("LSTMCell", lambda: eqx.nn.LSTMCell(64, 32, key=k[8]), {"weight_ih": ((64, 32), 4)}),
    ]


def _eqx_get(m, path):
    for part in path.split("/"):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m if isinstance(m, jax.ShapeDtypeStruct) else np.asarray(m)


@pytest.mark.parametrize("scheme", ["lecun", "glorot", "ortho"])
def test_equinox_zoo_matches_the_formula_for_the_layers_fans(scheme):
    init = {"lecun": LECUN, "glorot": GLOROT, "ortho": ORTHO}[scheme]
    for name, module, params in _eqx_zoo():
        if scheme == "ortho" and name not in ("Linear", "Conv2d groups", "GRUCell"):
            continue  # a QR compiled per shape: the transposed and the gated layers
        new = jaxinit.reinit(module, {p: init for p in params}, jax.random.key(1))
        for p, (call, stack) in params.items():
            w = _eqx_get(new, p)
            assert w.shape == _eqx_get(module, p).shape
            if scheme == "ortho":  # torch (out, in, *k) -> flax (*k, in, out) per gate
                per = w.reshape(stack, -1, *w.shape[1:])
                r = per.ndim - 1
                w = np.transpose(per, (0, *range(3, r + 1), 2, 1))
            _check(w, call, stack, scheme, f"equinox {name} {p}")
        if scheme == "glorot" and name == "GRUCell":  # KS: each gate U(±sqrt(6/(64+32)))
            z = np.asarray(new.weight_ih).ravel() / math.sqrt(6 / 96)
            assert stats.kstest(z, stats.uniform(-1, 2).cdf).pvalue > 1e-3


def test_one_owner_of_the_layout():
    """he_normal(layout="torch") on an Equinox Linear with reinit(layout="torch"): the
    initializer owns the layout, the tree does not transpose a second time (issue: std
    0.088 instead of 0.125)."""
    lin = eqx.nn.Linear(128, 256, key=KEY)
    for kwargs in ({}, {"layout": "torch"}, {"layout": "equinox"}):
        for init in (jaxinit.he_normal(layout="torch"), jaxinit.he_normal()):
            w = jaxinit.reinit(lin, {"weight": init}, KEY, **kwargs).weight
            _var_ok(w, 2 / 128, f"he_normal {kwargs}")
    # a plain torch-layout dict: the same
    tree = {"w": jnp.zeros((256, 128))}
    for init in (jaxinit.he_normal(layout="torch"), jaxinit.he_normal()):
        _var_ok(jaxinit.reinit(tree, {"w": init}, KEY, layout="torch")["w"], 2 / 128, "dict")


# --------------------------------------------------------------------------- plain pytrees


def test_fan_axes_names_stack_and_fan_axes_of_a_plain_array():
    tree = {"kernel": jnp.zeros((6, 64, 4, 16)), "conv": jnp.zeros((32, 3, 3, 16))}
    rules = {
        "kernel": jaxinit.fan_axes(LECUN, in_axis=1, out_axis=(2, 3), stack_axes=0),
        "conv": jaxinit.fan_axes(ORTHO, in_axis=(1, 2, 3), out_axis=0),
    }
    new = jaxinit.reinit(tree, rules, KEY)
    _check(new["kernel"], (64, 64), 6, "lecun", "fan_axes stack")
    g = np.asarray(new["conv"]).reshape(32, -1)
    np.testing.assert_allclose(g @ g.T, np.eye(32), atol=2e-5)  # out axis first
    with pytest.raises(ValueError, match=r"fan_axes.*in_axis=\(5,\).*rank 4"):
        jaxinit.reinit(tree, {"kernel": jaxinit.fan_axes(LECUN, in_axis=5), "conv": None}, KEY)
    with pytest.raises(ValueError, match="named twice"):
        jaxinit.reinit(tree, {"kernel": jaxinit.fan_axes(LECUN, in_axis=1, out_axis=1)}, KEY)
    with pytest.raises(TypeError, match="in_axis must be an int"):
        jaxinit.fan_axes(LECUN, in_axis="1")
    # optional=True: matching nothing is fine
    rules = {"conv": None, "nothing": jaxinit.fan_axes(LECUN, optional=True)}
    assert jaxinit.reinit(tree, rules, KEY)["conv"] is tree["conv"]


# --------------------------------------------------------------------------- rule sets


D, V, L, H = 64, 128, 3, 128


class _MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(D, name="proj")(nn.gelu(nn.Dense(H, name="fc")(x)))


class _Block(nn.Module):
    @nn.compact
    def __call__(self, x, _=None):
        alpha = self.param("alpha", nn.initializers.zeros, ())
        h = nn.MultiHeadDotProductAttention(num_heads=4, name="attn")(nn.LayerNorm(name="ln")(x))
        x = x + alpha * h
        return x + alpha * _MLP(name="mlp")(x), None


class _GPT(nn.Module):
    scanned: bool = False

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(V, D, name="embedding")(tokens)
        if self.scanned:
            stack = nn.scan(
                _Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=L
            )
            x, _ = stack(name="blocks")(x, None)
        else:
            for i in range(L):
                x, _ = _Block(name=f"block_{i}")(x)
        return nn.Dense(32, name="head")(x)


class _NMLP(nnx.Module):
    def __init__(self, rngs):
        self.fc = nnx.Linear(D, H, rngs=rngs)
        self.proj = nnx.Linear(H, D, rngs=rngs)


class _NBlock(nnx.Module):
    def __init__(self, rngs):
        self.ln = nnx.LayerNorm(D, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(4, D, decode=False, rngs=rngs)
        self.mlp = _NMLP(rngs)
        self.alpha = nnx.Param(jnp.zeros(()))


class _NGPT(nnx.Module):
    def __init__(self, scanned, rngs):
        self.embedding = nnx.Embed(V, D, rngs=rngs)
        if scanned:

            @nnx.split_rngs(splits=L)
            @nnx.vmap(in_axes=(0,), out_axes=0)
            def make(r):
                return _NBlock(r)

            self.blocks = make(rngs)
        else:
            self.blocks = nnx.List([_NBlock(rngs) for _ in range(L)])
        self.head = nnx.Linear(D, 32, rngs=rngs)


# Each parameter's role, and its call shape (fan_in, fan_out) of one layer.
_ROLES = {
    "attn/query/kernel": ("qk", D, D),
    "attn/key/kernel": ("qk", D, D),
    "attn/value/kernel": ("v", D, D),
    "attn/out/kernel": ("out", D, D),
    "mlp/fc/kernel": ("fc", D, H),
    "mlp/proj/kernel": ("proj", H, D),
    "head/kernel": ("head", D, 32),
    "embedding/embedding": ("emb", V, D),
}


def _expected(ruleset, role, fi, fo):
    """(variance, or None to keep) of a kernel by the rule set's paper formula."""
    s_enc = 0.67 * L**-0.25
    return {
        "gpt2": {"out": (0.02 / math.sqrt(2 * L)) ** 2, "proj": (0.02 / math.sqrt(2 * L)) ** 2}.get(
            role, 0.02**2
        ),
        "t_fixup": {
            "v": s_enc**2 * 2 / (fi + fo),
            "out": s_enc**2 * 2 / (fi + fo),
            "fc": s_enc**2 * 2 / (fi + fo),
            "proj": s_enc**2 * 2 / (fi + fo),
            "emb": s_enc**2 / D,
        }.get(role, 2 / (fi + fo)),
        "mup": {"head": 0.0, "emb": 1.0}.get(role, 1 / fi),
        "fixup": {"out": 0.0, "proj": 0.0, "head": 0.0, "emb": None}.get(role, 2 / L / fi),
        # torch.nn: Embedding N(0, 1); MultiheadAttention's fused (3E, E) in-projection
        # Xavier uniform, U[±sqrt(6/(E + 3E))] for each of q, k, v; out-proj and the rest
        # Linear's U[±1/sqrt(fan_in)] (issue 18's torch_default_rules)
        "torch": {"emb": 1.0, "qk": 2 / (fi + 3 * fo), "v": 2 / (fi + 3 * fo)}.get(
            role, 1 / (3 * fi)
        ),
    }[ruleset]


RULESETS = {
    "gpt2": jaxinit.gpt2(L),
    "t_fixup": jaxinit.t_fixup(L),
    "mup": jaxinit.mup(),
    "fixup": jaxinit.fixup(
        L,
        2,
        branch_out="{attn/out,mlp/proj}/kernel",
        branch_hidden="{attn/query,attn/key,attn/value,mlp/fc}/kernel",
    ),
    "torch": jaxinit.torch_default_rules(),
}


def _flat_params(tree):
    out = {}
    for kp, v in jax.tree_util.tree_leaves_with_path(tree):
        path = "/".join(
            str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in kp
        )
        kept = isinstance(v, jax.ShapeDtypeStruct)  # abstract in, not drawn: kept
        out[path.removesuffix("/value")] = v if kept else np.asarray(v)
    return out


def _check_ruleset(name, before, after, stacked):
    layers = L if stacked else 1
    checked = 0
    for path, w in after.items():
        role = next((r for suffix, r in _ROLES.items() if path.endswith(suffix)), None)
        if path.endswith("alpha"):
            assert w is before[path], path  # no rule set but rezero touches the gates
            continue
        if role is None:
            if path.endswith("bias") and name in ("gpt2", "t_fixup", "mup", "fixup"):
                assert not np.any(w), path
            continue
        kind, fi, fo = role
        expected = _expected(name, kind, fi, fo)
        if expected is None:
            assert w is before[path], path
        elif expected == 0.0:
            assert not np.any(w), path
        else:
            _var_ok(w, expected, f"{name} {path}")
            if stacked and "blocks" in path:
                assert w.shape[0] == layers
        checked += 1
    assert checked == 6 * (1 if stacked else L) + 2  # q, k, v, out, fc, proj; head, embedding


@pytest.mark.parametrize("stacked", [False, True])
def test_every_rule_set_on_a_linen_transformer(stacked):
    model = _GPT(scanned=stacked)
    tokens = jnp.zeros((1, 4), jnp.int32)
    v = jax.eval_shape(model.init, KEY, tokens)  # abstract: a kept leaf stays abstract
    before = _flat_params(v)
    for name, rules in RULESETS.items():
        new = jaxinit.reinit(v, rules, KEY, module=model, sample=tokens)
        _check_ruleset(name, before, _flat_params(new), stacked)
    gates = jaxinit.reinit(
        v, jaxinit.rezero(), KEY, module=model, sample=tokens
    )  # alpha: already 0
    assert all(not np.any(w) for p, w in _flat_params(gates).items() if p.endswith("alpha"))
    new = jaxinit.reinit(v, jaxinit.skipinit(value=0.5), KEY, module=model, sample=tokens)
    assert all(np.all(w == 0.5) for p, w in _flat_params(new).items() if p.endswith("alpha"))


@pytest.mark.parametrize("stacked", [False, True])
def test_every_rule_set_on_an_nnx_transformer(stacked):
    model = nnx.eval_shape(lambda: _NGPT(stacked, nnx.Rngs(0)))
    before = _flat_params(nnx.state(model, nnx.Param))
    for name, rules in RULESETS.items():
        new = jaxinit.reinit(model, rules, KEY)
        _check_ruleset(name, before, _flat_params(nnx.state(new, nnx.Param)), stacked)
    new = jaxinit.reinit(model, jaxinit.skipinit(value=0.25), KEY)
    alphas = [w for p, w in _flat_params(nnx.state(new, nnx.Param)).items() if "alpha" in p]
    assert alphas and all(np.all(a == 0.25) for a in alphas)


def test_torch_default_bias_uses_the_layers_fan_in():
    """DenseGeneral (64 -> (4, 16)) bias (4, 16) and a scanned Dense bias (6, 64): the
    bound is 1/sqrt(fan_in of the layer's kernel), 1/8."""
    for module, sample, path in (
        (nn.DenseGeneral((4, 16)), x64, ("bias",)),
        (_scan(), (x64, None), ("Dense_0", "bias")),
    ):
        args = sample if isinstance(sample, tuple) else (sample,)
        v = module.init(KEY, *args)
        new = jaxinit.reinit(v, jaxinit.torch_default_rules(), KEY, module=module, sample=sample)
        b = np.asarray(_get(new["params"], "/".join(path)))
        assert 0.9 / 8 < np.max(np.abs(b)) <= 1 / 8


# --------------------------------------------------------------------------- lsuv, engine


def test_lsuv_orthonormal_start_is_per_layer_of_a_dense_general():
    """LSUV on DenseGeneral layers: the orthonormal start is the layer's flattened
    (in, heads * dim) matrix, then one scale: the flattened kernel has orthogonal columns
    of equal norm."""

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.DenseGeneral((4, 16), name="a")(x)
            return nn.DenseGeneral(64, axis=(-2, -1), name="b")(x)

    net = Net()
    x = jax.random.normal(KEY, (128, 64))
    v = net.init(KEY, x)
    new, report = jaxinit.lsuv(net, v, x, KEY, layer_types=(nn.DenseGeneral,))
    assert [r.layer for r in report] == ["a", "b"]
    for name in ("a", "b"):
        w = np.asarray(new["params"][name]["kernel"], np.float64).reshape(64, 64)
        g = w.T @ w
        np.testing.assert_allclose(g, np.eye(64) * g[0, 0], atol=1e-4 * g[0, 0])


def test_study_inits_use_the_layers_fans():
    from jaxinit.study._adapters import _make_model
    from jaxinit.study._population import _member_init

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.DenseGeneral((4, 16), name="dg")(x.reshape(x.shape[0], -1))
            return nn.Dense(2, name="head")(x.reshape(x.shape[0], -1))

    data = jaxinit.linear_teacher(in_dim=64, out_dim=2, n_train=8, n_test=8)
    model = _make_model(Net(), data)
    params = _member_init(model, ("init", "lecun_normal"), "kernel")(KEY)
    _var_ok(params["dg"]["kernel"], 1 / 64, "Study DenseGeneral")


# --------------------------------------------------------------------------- errors


def test_errors_name_what_to_pass_and_leave_params_untouched():
    m = nn.DenseGeneral((4, 16))
    v = m.init(KEY, x64)
    kernel = np.asarray(v["params"]["kernel"])
    # a rank-3 linen kernel without its module: ambiguous
    with pytest.raises(ValueError, match=r"params/kernel.*\(64, 4, 16\).*module=model, sample=x"):
        jaxinit.reinit(v, {"kernel": LECUN}, KEY)
    # module without sample
    with pytest.raises(ValueError, match="sample="):
        jaxinit.reinit(v, {"kernel": LECUN}, KEY, module=m)
    # the module instead of the variables
    with pytest.raises(TypeError, match=r"linen module DenseGeneral.*model.init\(key, x\)"):
        jaxinit.reinit(m, {"kernel": LECUN}, KEY)
    # an uncalled factory
    with pytest.raises(
        TypeError, match=r"jaxinit.torch_normal is an initializer factory.*torch_normal\(\)"
    ):
        jaxinit.reinit(v, {"kernel": jaxinit.torch_normal}, KEY, module=m, sample=x64)
    with pytest.raises(TypeError, match=r"jax.nn.initializers.lecun_normal\(\)"):
        jaxinit.reinit(v, {"kernel": jax.nn.initializers.lecun_normal}, KEY)
    # a bad layout, for every kind of model
    for tree in (v, nnx.Linear(2, 2, rngs=nnx.Rngs(0)), eqx.nn.Linear(2, 2, key=KEY)):
        with pytest.raises(
            ValueError, match=r"layout must be 'flax', 'torch' or 'equinox'.*'bogus'"
        ):
            jaxinit.reinit(tree, {"kernel": "zeros"}, KEY, layout="bogus")
    # axes that do not fit the shape
    with pytest.raises(ValueError, match=r"fan_axes for params/kernel.*rank 3"):
        jaxinit.reinit(v, {"kernel": jaxinit.fan_axes(LECUN, in_axis=(0, 3))}, KEY)
    np.testing.assert_array_equal(v["params"]["kernel"], kernel)


def test_every_alternative_of_a_rule_must_match():
    """gpt2's "{attn/out,mlp/proj}/kernel" on a model whose MLP projection is named
    differently: the alternative that matched nothing is named, not silently skipped."""

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.attn = nnx.MultiHeadAttention(4, 64, decode=False, rngs=rngs)
            self.mlp = _Named(rngs)
            self.embedding = nnx.Embed(16, 64, rngs=rngs)

    m = Block(nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"alternative 'mlp/proj/kernel' matches no parameter"):
        jaxinit.reinit(m, jaxinit.gpt2(2), KEY)
    # optional(...) is the way out; a rule matching nothing is named too
    ok = jaxinit.reinit(m, {"{attn/out,mlp/proj}/kernel": jaxinit.optional(jaxinit.zeros)}, KEY)
    assert not np.any(ok.attn.out.kernel[...])
    with pytest.raises(ValueError, match=r"rule 'nothing' matches no parameter"):
        jaxinit.reinit(m, {"kernel": "zeros", "nothing": "zeros"}, KEY)


class _Named(nnx.Module):
    def __init__(self, rngs):
        self.fc = nnx.Linear(64, 64, rngs=rngs)
        self.c_proj = nnx.Linear(64, 64, rngs=rngs)


def test_explain_prints_a_table_and_draws_nothing(capsys):
    m = nn.DenseGeneral((4, 16))
    v = m.init(KEY, x64)
    table = jaxinit.explain(v, {"kernel": LECUN, "bias": "zeros"}, module=m, sample=x64)
    lines = table.splitlines()
    assert lines[0].split(" | ")[0].strip() == "path"
    row = next(line for line in lines if line.startswith("params/kernel"))
    cells = [c.strip() for c in row.split("|")]
    assert cells[1] == "(64, 4, 16)" and cells[2] == "DenseGeneral" and cells[3] == "kernel"
    assert cells[4] == repr(LECUN) and cells[5] == "64, 64" and cells[6] == "std 0.125"
    bias = next(line for line in lines if line.startswith("params/bias"))
    assert [c.strip() for c in bias.split("|")][4:] == ["zeros", "-", "0"]
    out = jaxinit.reinit(v, {"kernel": GLOROT}, KEY, module=m, sample=x64, explain=True)
    assert out is v
    assert "bound 0.2165" in capsys.readouterr().out  # sqrt(6 / 128)
    # stacks and Equinox layers in the table
    s = _scan()
    t = jaxinit.explain(s.init(KEY, x64, None), {"kernel": ORTHO}, module=s, sample=(x64, None))
    assert "Dense x6" in t and "std 0.125" in t
    t = jaxinit.explain(
        eqx.nn.GRUCell(64, 32, key=KEY), {"weight_*": jaxinit.torch_default_kernel()}
    )
    assert "eqx.GRUCell x3" in t and "bound 0.125" in t


def test_init_params_rules_record_the_linen_layers():
    """init_params(lambda k: model.init(k, x), rules=...) sees the layers while the model
    initialises: a scanned DenseGeneral stack gets the layer's fans, sharded or not."""

    class Body(nn.Module):
        @nn.compact
        def __call__(self, c, _):
            return nn.DenseGeneral((4, 16))(c).reshape(c.shape), None

    s = nn.scan(Body, variable_axes={"params": 0}, split_rngs={"params": True}, length=4)()
    target = lambda k: s.init(k, x64, None)
    out = jaxinit.init_params(target, KEY, rules={"kernel": LECUN, "bias": "zeros"})
    _check(out["params"]["DenseGeneral_0"]["kernel"], (64, 64), 4, "lecun", "init_params")
    mesh = jax.make_mesh((4,), ("model",))
    sharded = jaxinit.init_params(
        target,
        KEY,
        rules={"kernel": LECUN, "bias": "zeros"},
        mesh=mesh,
        partition={"kernel": jax.sharding.PartitionSpec(None, None, "model")},
    )
    np.testing.assert_array_equal(
        sharded["params"]["DenseGeneral_0"]["kernel"], out["params"]["DenseGeneral_0"]["kernel"]
    )


def _transposed_conv_kernel(framework, rules, key):
    """A ConvTranspose(16 -> 32, 3×3, transpose_kernel=True) kernel reinitialised."""
    if framework == "linen":
        module = nn.ConvTranspose(32, (3, 3), transpose_kernel=True)
        v = jax.eval_shape(module.init, KEY, img)
        return jaxinit.reinit(v, rules, key, module=module, sample=img)["params"]["kernel"]
    layer = nnx.ConvTranspose(16, 32, (3, 3), transpose_kernel=True, rngs=nnx.Rngs(0))
    new = jaxinit.reinit(nnx.state(layer, nnx.Param), rules, key, module=layer)
    return new["kernel"][...]


@pytest.mark.parametrize("framework", ["linen", "nnx"])
@pytest.mark.parametrize("scheme", ["lecun", "glorot", "ortho"])
def test_transposed_conv_kernel_has_the_layers_fans(scheme, framework):
    # ConvTranspose(transpose_kernel=True) hands its initializer (*k, out, in) = (3, 3, 32,
    # 16): the fans are still the layer's in = 16·9 and out = 32·9 (the shape alone says
    # the reverse, which halved lecun's variance here)
    init = {"lecun": LECUN, "glorot": GLOROT, "ortho": ORTHO}[scheme]
    w = _transposed_conv_kernel(framework, {"kernel": init}, jax.random.key(1))
    assert w.shape == (3, 3, 32, 16)
    _check(np.swapaxes(np.asarray(w), -1, -2), (3, 3, 16, 32), 1, scheme, framework)


@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_torch_default_linen_conv_transpose(transpose_kernel):
    # torch's ConvTranspose2d(16, 32, 3): weight (16, 32, 3, 3), U[±1/√(32·9)] for either
    # of linen's kernel layouts
    module = nn.ConvTranspose(32, (3, 3), transpose_kernel=transpose_kernel)
    v = jax.eval_shape(module.init, KEY, img)
    rules = jaxinit.torch_default_layer_rules()
    w = jaxinit.reinit(v, rules, jax.random.key(2), module=module, sample=img)["params"]["kernel"]
    bound = 1 / math.sqrt(32 * 9)
    w = np.asarray(w).ravel()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert stats.kstest(w, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3


def test_torch_default_nnx_transposed_conv():
    rules = jaxinit.torch_default_layer_rules()
    w = np.asarray(_transposed_conv_kernel("nnx", rules, jax.random.key(2))).ravel()
    bound = 1 / math.sqrt(32 * 9)  # torch's ConvTranspose2d(16, 32, 3)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert stats.kstest(w, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
