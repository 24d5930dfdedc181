"""Half precision: every name that jax does not share draws in float32 and rounds once.

Checked for every such random scheme in float16 and bfloat16: (1) the half draw *is* the
float32 draw of the same key rounded (a uniform on [a, b) keeps b excluded); (2) its law is
the rounded law, by a Kolmogorov–Smirnov test on the randomized probability integral
transform (each value is spread uniformly over its rounding cell's probability, which is
exactly U(0, 1) under the rounded law); (3) distinct-value counts and tail quantiles match
the float32 draw rounded, where drawing in the half dtype loses both.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxinit

SHAPE = (100, 200)  # flax layout: fan_in 100, fan_out 200
FAN_IN, FAN_OUT = 100, 200
N = math.prod(SHAPE)
P_MIN = 1e-4
TRUNC = 0.87962566103423978


def _normal(std, mean=0.0):
    return stats.norm(mean, std).cdf


def _trunc(std, lo, hi, mean=0.0):
    return stats.truncnorm((lo - mean) / std, (hi - mean) / std, loc=mean, scale=std).cdf


def _uniform(lo, hi):
    return stats.uniform(lo, hi - lo).cdf


def _vs(scale, n, distribution):
    if distribution == "uniform":
        b = math.sqrt(3 * scale / n)
        return _uniform(-b, b), None
    if distribution == "normal":
        return _normal(math.sqrt(scale / n)), None
    s = math.sqrt(scale / n) / TRUNC
    return _trunc(s, -2 * s, 2 * s), None


AVG = (FAN_IN + FAN_OUT) / 2
# name, initializer, (cdf, excluded upper bound of a uniform or None)
SCHEMES = [
    ("RandomNormal", jaxinit.get("RandomNormal"), (_normal(0.05), None)),
    ("RandomUniform", jaxinit.get("RandomUniform"), (_uniform(-0.05, 0.05), 0.05)),
    ("TruncatedNormal", jaxinit.get("TruncatedNormal"), (_trunc(0.05, -0.1, 0.1), None)),
    ("torch_normal", jaxinit.torch_normal(1.0, 2.0), (_normal(2.0, 1.0), None)),
    ("torch_uniform", jaxinit.torch_uniform(), (_uniform(0, 1), 1.0)),
    ("torch_trunc_normal", jaxinit.torch_trunc_normal(), (_trunc(1, -2, 2), None)),
    ("torch_default_bias", jaxinit.torch_default_bias(fan_in=FAN_IN), (_uniform(-0.1, 0.1), 0.1)),
    ("torch_default_kernel", jaxinit.torch_default_kernel(), _vs(1 / 3, FAN_IN, "uniform")),
    ("torch_kaiming_uniform", jaxinit.torch_kaiming_uniform(), _vs(2, FAN_IN, "uniform")),
    ("torch_kaiming_normal", jaxinit.torch_kaiming_normal(), _vs(2, FAN_IN, "normal")),
    ("torch_xavier_uniform", jaxinit.torch_xavier_uniform(), _vs(1, AVG, "uniform")),
    ("torch_xavier_normal", jaxinit.torch_xavier_normal(), _vs(1, AVG, "normal")),
    ("glorot_bengio_standard", jaxinit.glorot_bengio_standard(), _vs(1 / 3, FAN_IN, "uniform")),
    ("VarianceScaling", jaxinit.get("VarianceScaling"), _vs(1, FAN_IN, "truncated")),
    (
        "VarianceScaling-untruncated",
        jaxinit.get("VarianceScaling", distribution="untruncated_normal", mode="fan_out"),
        _vs(1, FAN_OUT, "normal"),
    ),
    ("GlorotUniform", jaxinit.get("GlorotUniform"), _vs(1, AVG, "uniform")),
    ("GlorotNormal", jaxinit.get("GlorotNormal"), _vs(1, AVG, "truncated")),
    ("HeUniform", jaxinit.get("HeUniform"), _vs(2, FAN_IN, "uniform")),
    ("HeNormal", jaxinit.get("HeNormal"), _vs(2, FAN_IN, "truncated")),
    ("LecunUniform", jaxinit.get("LecunUniform"), _vs(1, FAN_IN, "uniform")),
    ("LecunNormal", jaxinit.get("LecunNormal"), _vs(1, FAN_IN, "truncated")),
    # Values of the nonzero entries (the positions are checked in test_structured).
    ("sparse", jaxinit.sparse(k=100), (_normal(1.0), None)),
    ("torch_sparse", jaxinit.torch_sparse(0.5, std=0.02), (_normal(0.02), None)),
]


def _cells(r, dtype, top):
    """Lower and upper edges of each value's rounding cell (round to nearest)."""
    r16 = r.astype(dtype)
    down = np.nextafter(r16, dtype.type(-np.inf)).astype(np.float64)
    up = np.nextafter(r16, dtype.type(np.inf)).astype(np.float64)
    lo, hi = (r + down) / 2, (r + up) / 2
    if top is not None:
        # The uniform keeps its upper bound excluded: what would round to it is moved one
        # value down, so that value's cell reaches the bound.
        hi = np.where(up >= np.float64(dtype.type(top)), np.inf, hi)
    return lo, hi


def _pit_pvalue(values, dtype, cdf, top, seed):
    r = np.asarray(values, np.float64)
    lo, hi = _cells(r, dtype, top)
    f_lo, f_hi = cdf(lo), cdf(hi)
    u = f_lo + np.random.default_rng(seed).random(r.shape) * (f_hi - f_lo)
    return stats.kstest(u, "uniform").pvalue


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_is_the_float32_draw_rounded_and_has_the_rounded_law(dtype):
    np_dtype = np.dtype(dtype)

    def draw(key):
        return [(init(key, SHAPE, dtype), init(key, SHAPE, jnp.float32)) for _, init, _ in SCHEMES]

    out = jax.jit(draw)(jax.random.key(7))
    for i, ((name, _, (cdf, top)), (half, f32)) in enumerate(zip(SCHEMES, out, strict=True)):
        half = np.asarray(half.astype(jnp.float32), np.float64).ravel()
        rounded = np.asarray(f32.astype(dtype).astype(jnp.float32), np.float64).ravel()
        moved = np.zeros(half.shape, bool)
        if top is not None:
            moved = rounded >= top  # the bound itself, not its rounding (f16: 0.05 rounds down)
            assert np.all(half < top) and moved.mean() < 0.01, name
        # XLA may contract a*b + c into an FMA in one fusion and not in another, so the
        # float32 values can differ in their last bit and, rarely, round to neighbours.
        differ = (half != rounded) & ~moved
        assert differ.mean() < 1e-3, (name, differ.sum())
        lo, hi = _cells(rounded[differ], np_dtype, None)
        assert np.all(np.abs(half - rounded)[differ] <= 2 * np.maximum(hi - lo, 0)), name
        if name in ("sparse", "torch_sparse"):
            half = half[half != 0]
        p = _pit_pvalue(half, np_dtype, cdf, top, seed=i)
        assert p > P_MIN, (name, jnp.dtype(dtype).name, p)


def test_the_pit_test_rejects_a_draw_made_in_the_half_dtype():
    # Power check of the procedure above: jax.random.normal drawn directly in bfloat16 has a
    # different law than N(0, 1) rounded (fewer values, no tails) and must fail.
    direct = np.asarray(jax.random.normal(jax.random.key(0), (200_000,), jnp.bfloat16), np.float64)
    assert _pit_pvalue(direct, np.dtype(jnp.bfloat16), _normal(1.0), None, seed=0) < P_MIN
    wide = jaxinit.torch_normal()(jax.random.key(0), (200_000,), jnp.bfloat16)
    assert (
        _pit_pvalue(np.asarray(wide, np.float64), np.dtype(jnp.bfloat16), _normal(1.0), None, 0)
        > P_MIN
    )


@pytest.mark.parametrize(
    ("dtype", "init", "n", "q"),
    [
        (jnp.bfloat16, jaxinit.torch_normal(), 100_000, 0.9999),
        (jnp.float16, jaxinit.torch_trunc_normal(a=2.0, b=3.0), 10_000, 0.999),
        (jnp.float16, jaxinit.torch_trunc_normal(), 10_000, 0.999),
        (jnp.bfloat16, jaxinit.get("HeNormal"), 100_000, 0.9999),
    ],
)
def test_distinct_values_and_tails_match_the_float32_draw_rounded(dtype, init, n, q):
    half, f32 = jax.jit(
        lambda k1, k2: (init(k1, (n,), dtype), init(k2, (n,), jnp.float32).astype(dtype))
    )(jax.random.key(1), jax.random.key(2))
    half, ref = (np.abs(np.asarray(x, np.float64)) for x in (half, f32))
    distinct, distinct_ref = len(np.unique(half)), len(np.unique(ref))
    assert abs(distinct - distinct_ref) <= 0.05 * distinct_ref, (distinct, distinct_ref)
    # Tail quantiles agree within a few of the dtype's steps there.
    step = float(jnp.finfo(dtype).eps) * np.quantile(ref, q)
    assert abs(np.quantile(half, q) - np.quantile(ref, q)) <= 8 * step
    assert abs(half.max() - ref.max()) <= 0.1 * ref.max()


def test_torch_issue_figures():
    # The figures of the issue: float16 trunc_normal on [2, 3] reaches 3 (was < 2.9746),
    # bfloat16 torch_normal keeps its tails (max |x| over 100,000 was 2.89; torch 4.31).
    x = np.asarray(
        jaxinit.torch_trunc_normal(a=2.0, b=3.0)(jax.random.key(0), (10_000,), jnp.float16)
    )
    assert x.max() > 2.99 and x.min() >= 2.0
    y = np.asarray(jaxinit.torch_normal()(jax.random.key(0), (100_000,), jnp.bfloat16), np.float64)
    assert np.abs(y).max() > 3.8
    assert len(np.unique(y)) > 1500


def test_jax_shared_names_keep_bit_parity_and_draw_in_float32_wraps_them():
    key, shape = jax.random.key(3), (64, 32)
    for init, jax_init in [
        (jaxinit.he_normal(), jax.nn.initializers.he_normal()),
        (jaxinit.normal(), jax.nn.initializers.normal()),
        (jaxinit.glorot_uniform(), jax.nn.initializers.glorot_uniform()),
    ]:
        np.testing.assert_array_equal(
            init(key, shape, jnp.bfloat16), jax_init(key, shape, jnp.bfloat16)
        )
        wrapped = jaxinit.draw_in_float32(init)
        np.testing.assert_array_equal(
            wrapped(key, shape, jnp.bfloat16), init(key, shape, jnp.float32).astype(jnp.bfloat16)
        )
        np.testing.assert_array_equal(
            wrapped(key, shape, jnp.float32), init(key, shape, jnp.float32)
        )
    # The factory's default dtype is the target when none is passed; jax.nn works too.
    wrapped = jaxinit.draw_in_float32(jaxinit.lecun_normal(dtype=jnp.float16))
    out = wrapped(key, shape)
    assert out.dtype == jnp.float16
    np.testing.assert_array_equal(out, jaxinit.lecun_normal()(key, shape).astype(jnp.float16))
    nn = jaxinit.draw_in_float32(jax.nn.initializers.lecun_normal())
    np.testing.assert_array_equal(nn(key, shape, jnp.float16), out)
    with pytest.raises(TypeError, match="draw_in_float32: expected an initializer"):
        jaxinit.draw_in_float32(3)


def test_rule_sets_draw_half_precision_in_float32():
    # jaxinit's own rule sets (GPT-2 here) are not jax names: bfloat16 parameters are the
    # float32 draw rounded once.
    # a whole GPT-2 block: every alternative of gpt2's patterns must match (issue 13)
    params = {
        "embed": {"embedding": jnp.zeros((64, 16))},
        "block_0": {
            "attn": {
                "query": {"kernel": jnp.zeros((16, 16))},
                "out": {"kernel": jnp.zeros((16, 16))},
            },
            "mlp": {"proj": {"kernel": jnp.zeros((32, 16))}},
        },
    }
    half = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
    rules, key = jaxinit.gpt2(2), jax.random.key(4)
    out, ref = jaxinit.reinit(half, rules, key), jaxinit.reinit(params, rules, key)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref), strict=True):
        assert a.dtype == jnp.bfloat16
        np.testing.assert_array_equal(a, b.astype(jnp.bfloat16))


FLOAT8 = [jnp.float8_e4m3fn, jnp.float8_e5m2]
OTHER_FLOAT8 = [
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e4m3b11fnuz",
    "float8_e3m4",
    "float8_e4m3",
]


def _keyed_schemes():
    from scheme_cases import CASES, GENERIC_SHAPES

    out = []
    for s in jaxinit.schemes():
        if not s.keyed:
            continue
        opts, shapes = CASES.get(s.name, [({}, GENERIC_SHAPES)])[0]
        shape = (64, 32) if shapes[0] == GENERIC_SHAPES[0] else shapes[0]
        out.append((s.name, s.factory(**opts), shape))
    return out


@pytest.mark.parametrize("dtype", FLOAT8, ids=lambda d: jnp.dtype(d).name)
def test_float8_is_the_float32_draw_rounded_for_every_random_scheme(dtype):
    # jax draws NaN (truncated normals: he_normal into float8_e4m3fn was all NaN) or a coarse
    # law in float8 and has no QR (orthogonal raised NotImplementedError): every random
    # scheme, the jax-shared names included, draws in float32 and rounds once.
    schemes = _keyed_schemes()
    assert {"he_normal", "orthogonal", "normal", "truncated_normal", "torch_normal"} <= {
        n for n, _, _ in schemes
    }

    def draw(key):
        return [
            (init(key, shape, dtype), init(key, shape, jnp.float32)) for _, init, shape in schemes
        ]

    out = jax.jit(draw)(jax.random.key(3))
    for (name, _, shape), (f8, f32) in zip(schemes, out, strict=True):
        assert f8.dtype == jnp.dtype(dtype) and f8.shape == shape, name
        got = np.asarray(f8.astype(jnp.float32), np.float64)
        rounded = np.asarray(f32.astype(dtype).astype(jnp.float32), np.float64)
        assert not np.isnan(got).any(), name
        # the same sample (an FMA contracted in one program only may move a value to its
        # rounding neighbour), so its spread is the float32 draw's, rounded
        # a uniform's excluded upper bound: what rounds to or past it is moved into the cell
        # below, and those are the largest rounded values
        inside = rounded < rounded.max()
        differ = (got != rounded) & inside
        assert differ.mean() < 0.01, (name, differ.sum())
        assert abs(got[inside].std() - rounded[inside].std()) <= 0.01 * rounded[inside].std(), name
        if got.size >= 512:  # and rounding keeps the spread of the float32 draw
            assert abs(got.std() - np.asarray(f32).std()) <= 0.06 * np.asarray(f32).std(), name


def test_float8_kinds_jax_exposes_and_the_refused_one():
    key = jax.random.key(1)
    for name in OTHER_FLOAT8:
        dtype = getattr(jnp, name)
        for init in (jaxinit.he_normal(), jaxinit.orthogonal(), jaxinit.uniform(0.5)):
            w = init(key, (64, 32), dtype)
            ref = init(key, (64, 32), jnp.float32)
            got = np.asarray(w.astype(jnp.float32))
            assert w.dtype == jnp.dtype(dtype) and not np.isnan(got).any(), name
            assert abs(got.std() - ref.std()) <= 0.06 * ref.std(), name
    # bfloat16/float16 stay bit-identical to jax for the shared names (no float32 detour)
    for dtype in (jnp.bfloat16, jnp.float16):
        np.testing.assert_array_equal(
            jaxinit.he_normal()(key, (16, 8), dtype),
            jax.nn.initializers.he_normal()(key, (16, 8), dtype),
        )
    # float8_e8m0fnu has no sign and no zero: rounding a draw to it makes no sense
    for fn, init in (("he_normal", jaxinit.he_normal()), ("orthogonal", jaxinit.orthogonal()),
                     ("torch_normal", jaxinit.torch_normal())):  # fmt: skip
        with pytest.raises(ValueError, match=rf"{fn}: dtype=float8_e8m0fnu .*float8_e4m3fn"):
            init(key, (4, 4), jnp.float8_e8m0fnu)
