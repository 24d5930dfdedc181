"""Keras' own initializer tests, ported to jaxinit's Keras names (no Keras needed).

Sources: keras/src/initializers/random_initializers_test.py and
constant_initializers_test.py (Keras 3). The facts and tolerances are Keras'; the seeds are
jax keys (a jaxinit initializer receives its key when called, so Keras' ``seed=`` tests
become key tests). Serialization (``get_config``/``from_config``) is not ported here.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from scipy import stats

import jaxinit
from jaxinit.initializers._keras import keras_fans

KEY = jax.random.key(1337)
P_MIN = 1e-4  # torch's KS threshold, used for every distribution check here


def _np(x):
    return np.asarray(x, dtype=np.float64)


def _draws(init, *shapes, dtype=None, key=KEY):
    """Draws of several shapes in one compiled program (op-by-op dispatch compiles each op)."""
    out = jax.jit(lambda k: [init(k, s) if dtype is None else init(k, s, dtype) for s in shapes])(
        key
    )
    return [_np(x) for x in out]


# --------------------------------------------------------------------------- random


def test_random_normal():
    init = jaxinit.get("RandomNormal", mean=0.0, stddev=1.0, seed=None)
    default_init = jaxinit.get("random_normal")
    draw = jax.jit(lambda k: (init(k, (25, 20)), default_init(k, (200, 100))))
    values, default = (_np(x) for x in draw(KEY))
    assert values.shape == (25, 20)
    np.testing.assert_allclose(np.std(values), 1.0, atol=1e-1)
    # A fixed seed (key) gives the same values on every call; another key others.
    np.testing.assert_array_equal(values, draw(KEY)[0])
    assert not np.allclose(values, draw(jax.random.key(1338))[0])
    # Keras' default is N(0, 0.05²), and the snake_case Keras spelling means the same.
    assert stats.kstest(default.ravel(), "norm", args=(0.0, 0.05)).pvalue > P_MIN


def test_random_uniform():
    init = jaxinit.get("RandomUniform", minval=-1.0, maxval=1.0)
    default_init = jaxinit.get("RandomUniform")
    values, bf16, f16, default = (
        _np(x)
        for x in jax.jit(
            lambda k: (
                init(k, (5, 5)),
                init(k, (20000,), jnp.bfloat16),
                init(k, (20000,), jnp.float16),
                default_init(k, (200, 100)),
            )
        )(KEY)
    )
    assert values.shape == (5, 5)
    assert values.min() >= -1.0 and values.max() < 1.0
    # The half-open interval holds after rounding to half precision as well.
    for half in (bf16, f16):
        assert half.min() >= -1.0 and half.max() < 1.0
    assert stats.kstest(default.ravel(), "uniform", args=(-0.05, 0.1)).pvalue > P_MIN


def test_truncated_normal():
    (values,) = _draws(jaxinit.get("TruncatedNormal", mean=1.0, stddev=0.5), (200, 100))
    assert values.min() >= 0.0 and values.max() <= 2.0
    z = (values.ravel() - 1.0) / 0.5
    assert stats.kstest(z, "truncnorm", args=(-2, 2)).pvalue > P_MIN


def test_seed_is_refused_with_the_reason():
    for name in ("RandomNormal", "VarianceScaling", "HeNormal", "Orthogonal"):
        with pytest.raises(TypeError, match=r"seed=1234 is not taken.*jax.random.key"):
            jaxinit.get(name, seed=1234)


def test_variance_scaling():
    shape, scale = (25, 20), 2.0
    fan_in = jaxinit.get("VarianceScaling", scale=scale, mode="fan_in")
    fan_out = jaxinit.get("VarianceScaling", scale=scale, mode="fan_out")
    values, out = (_np(x) for x in jax.jit(lambda k: (fan_in(k, shape), fan_out(k, shape)))(KEY))
    assert values.shape == shape
    np.testing.assert_allclose(np.std(values), np.sqrt(scale / 25), atol=1e-1)
    np.testing.assert_allclose(np.std(out), np.sqrt(scale / 20), atol=1e-1)


def test_variance_scaling_defaults_are_keras():
    # scale 1, fan_in, truncated normal (cut at ±2σ of the untruncated normal).
    get = jaxinit.get
    default, a, b, plain = jax.jit(
        lambda k: (
            get("VarianceScaling")(k, (400, 50)),
            get("VarianceScaling", distribution="normal")(k, (400, 50)),
            get("VarianceScaling", distribution="Truncated_Normal")(k, (400, 50)),
            get("VarianceScaling", distribution="untruncated_normal")(k, (400, 50)),
        )
    )(KEY)
    sigma = math.sqrt(1 / 400) / 0.87962566103423978
    assert stats.kstest(_np(default).ravel() / sigma, "truncnorm", args=(-2, 2)).pvalue > P_MIN
    # Keras' "normal" is the truncated normal; the letters' case does not matter.
    np.testing.assert_array_equal(a, default)
    np.testing.assert_array_equal(b, default)
    plain = _np(plain)
    assert stats.kstest(plain.ravel(), "norm", args=(0, math.sqrt(1 / 400))).pvalue > P_MIN


def test_variance_scaling_invalid_arguments():
    with pytest.raises(ValueError, match=r"VarianceScaling: scale must be finite and > 0"):
        jaxinit.get("VarianceScaling", scale=-1.0, mode="fan_in")
    with pytest.raises(ValueError, match=r"VarianceScaling: mode='invalid_mode'"):
        jaxinit.get("VarianceScaling", scale=2.0, mode="invalid_mode")
    with pytest.raises(ValueError, match=r"VarianceScaling: mode='fan_geo_avg'"):
        jaxinit.get("VarianceScaling", mode="fan_geo_avg")  # not a Keras mode
    with pytest.raises(ValueError, match=r"VarianceScaling: distribution='invalid_dist'"):
        jaxinit.get("VarianceScaling", scale=2.0, mode="fan_in", distribution="invalid_dist")
    with pytest.raises(ValueError, match=r"input_axes is given without output_axes"):
        jaxinit.get("VarianceScaling", input_axes=[0])


# Expected law of each Keras variance-scaling name for a (fan_in, fan_out) pair.
FIXED = {
    "GlorotUniform": (1.0, "fan_avg", "uniform"),
    "GlorotNormal": (1.0, "fan_avg", "truncated_normal"),
    "HeUniform": (2.0, "fan_in", "uniform"),
    "HeNormal": (2.0, "fan_in", "truncated_normal"),
    "LecunUniform": (1.0, "fan_in", "uniform"),
    "LecunNormal": (1.0, "fan_in", "truncated_normal"),
}


JAX_NAME = {
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform",
    "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform",
    "LecunNormal": "lecun_normal",
}


def _ks(values, scale, mode, distribution, fan_in, fan_out):
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    values = np.ravel(values)
    if distribution == "uniform":
        limit = math.sqrt(3 * scale / n)
        return stats.kstest(values, "uniform", args=(-limit, 2 * limit)).pvalue
    sigma = math.sqrt(scale / n) / 0.87962566103423978
    return stats.kstest(values / sigma, "truncnorm", args=(-2, 2)).pvalue


def test_fixed_schemes_follow_keras_formulas_and_fans():
    def draw(key):
        out = {}
        for name in FIXED:
            init = jaxinit.get(name)
            axes = jaxinit.get(name, input_axes=[0], output_axes=[1, 2])
            # Rank 1: Keras' fans are fan_in = fan_out = size (jax's names refuse rank 1);
            # an EinsumDense-style kernel's fans are the products of the given axes.
            out[name] = [init(key, (4000,)), init(key, (3, 3, 20, 30)), axes(key, (64, 8, 40)),
                         init(key, (30, 20)), jaxinit.get(JAX_NAME[name])(key, (30, 20))]  # fmt: skip
        return out

    for name, arrays in jax.jit(draw)(KEY).items():
        rank1, conv, einsum, keras_2d, jax_2d = (_np(x) for x in arrays)
        assert rank1.shape == (4000,) and conv.shape == (3, 3, 20, 30)
        assert _ks(rank1, *FIXED[name], 4000, 4000) > P_MIN, name
        assert _ks(conv, *FIXED[name], 180, 270) > P_MIN, name
        assert _ks(einsum, *FIXED[name], 64, 320) > P_MIN, name
        # Same bits as the jax name in float32 for the shapes jax accepts.
        np.testing.assert_array_equal(keras_2d, jax_2d)


def test_rank_0_1_and_empty_shapes_under_keras_names():
    init = jaxinit.get("HeUniform")
    assert init(KEY, ()).shape == ()
    assert abs(float(init(KEY, ()))) <= math.sqrt(6.0)  # fan 1
    assert init(KEY, (0, 5)).shape == (0, 5)  # max(1, fan): no error, no warning
    with pytest.raises(ValueError, match=r"he_uniform: shape \(100,\) has rank 1"):
        jaxinit.he_uniform()(KEY, (100,))  # the jax name keeps jax's error


def test_compute_fans_with_axes():
    fans = keras_fans("VarianceScaling", input_axes=[0], output_axes=[1, 2])
    assert fans((512, 8, 64)) == (512, 512)
    fans = keras_fans("VarianceScaling", input_axes=[0, 1], output_axes=[2])
    assert fans((512, 8, 64)) == (512 * 8, 64)
    plain = keras_fans("VarianceScaling")
    assert plain(()) == (1, 1) and plain((7,)) == (7, 7) and plain((3, 5)) == (3, 5)
    assert plain((2, 3, 4, 5)) == (24, 30)


def test_variance_scaling_with_axes():
    shape, scale = (32, 4, 16), 2.0
    axes = jaxinit.get(
        "VarianceScaling", scale=scale, mode="fan_in", input_axes=[0], output_axes=[1, 2]
    )
    plain = jaxinit.get("VarianceScaling", scale=scale, mode="fan_in")
    values, without = (_np(x) for x in jax.jit(lambda k: (axes(k, shape), plain(k, shape)))(KEY))
    assert values.shape == shape
    np.testing.assert_allclose(np.std(values), np.sqrt(scale / 32), atol=1e-1)
    np.testing.assert_allclose(np.std(without), np.sqrt(scale / 128), atol=1e-1)


def test_mha_query_projection_variance():
    # Keras' MultiHeadAttention query kernel (dim, heads, key_dim) with lecun_normal and
    # axes: fan_in is dim.
    dim, heads, key_dim = 32, 8, 16
    init = jaxinit.get("LecunNormal", input_axes=[0], output_axes=[1, 2])
    (kernel,) = _draws(init, (dim, heads, key_dim))
    np.testing.assert_allclose(np.std(kernel), np.sqrt(1.0 / dim), atol=1e-1)


def test_orthogonal():
    gain = 2.0
    for name in ("Orthogonal", "OrthogonalInitializer"):
        array = _np(jaxinit.get(name, gain=gain)(KEY, (5, 5)))
        for column in array.T:
            assert abs(np.linalg.norm(column) - gain) < 1e-6
        for i in range(5):
            for j in range(i + 1, 5):
                assert abs(np.dot(array[..., i], array[..., j])) < 1e-6
    assert jaxinit.scheme("OrthogonalInitializer").name == "orthogonal"
    # Keras flattens all axes but the last into rows.
    conv = _np(jaxinit.get("Orthogonal")(KEY, (3, 3, 4, 8))).reshape(36, 8)
    np.testing.assert_allclose(conv.T @ conv, np.eye(8), atol=1e-5)
    with pytest.raises(ValueError, match="rank 1"):
        jaxinit.get("Orthogonal")(KEY, (5,))


def test_get_method():
    assert jaxinit.get("glorot_normal")(KEY, (4, 3)).shape == (4, 3)
    with pytest.raises(ValueError, match="unknown initializer 'typo'"):
        jaxinit.get("typo")


def test_get_method_with_tensor():
    shape = (5, 5)
    tensor = jax.random.uniform(KEY, shape)
    np.testing.assert_allclose(jaxinit.get(tensor)(KEY, shape), tensor)
    array = np.random.default_rng(0).uniform(size=shape).astype("float32")
    init = jaxinit.get(array)
    np.testing.assert_allclose(init(KEY, shape), array)
    with pytest.raises(ValueError, match=r"Expected `shape` to be"):
        init(KEY, (10, 10))


def test_every_registered_keras_name_resolves():
    # keras/src/initializers/__init__.py: class names, their snake_case, and the aliases.
    names = [
        "Constant", "Identity", "Ones", "STFT", "Zeros", "GlorotNormal", "GlorotUniform",
        "HeNormal", "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal", "RandomNormal",
        "RandomUniform", "TruncatedNormal", "VarianceScaling", "constant", "identity", "ones",
        "stft", "zeros", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
        "lecun_normal", "lecun_uniform", "orthogonal", "random_normal", "random_uniform",
        "truncated_normal", "variance_scaling", "IdentityInitializer", "normal", "one",
        "STFTInitializer", "OrthogonalInitializer", "uniform", "zero",
    ]  # fmt: skip
    for name in names:
        assert jaxinit.scheme(name).name, name


# --------------------------------------------------------------------------- constant


def test_zeros_ones_constant():
    shape = (3, 3)
    for name in ("Zeros", "zero"):
        np.testing.assert_array_equal(jaxinit.get(name)(None, shape), np.zeros(shape))
    for name in ("Ones", "one"):
        np.testing.assert_array_equal(jaxinit.get(name)(None, shape), np.ones(shape))
    np.testing.assert_array_equal(
        jaxinit.get("Constant", value=6.0)(None, shape), np.full(shape, 6)
    )
    np.testing.assert_array_equal(jaxinit.get("Constant")(None, shape), np.zeros(shape))
    value = np.random.default_rng(0).random(shape)
    np.testing.assert_allclose(jaxinit.get("Constant", value=value)(None, shape), value, rtol=1e-6)


def test_identity_initializer():
    for name in ("Identity", "IdentityInitializer"):
        np.testing.assert_array_equal(jaxinit.get(name, gain=2)(None, (3, 3)), np.eye(3) * 2)
    with pytest.raises(ValueError, match="2-D"):
        jaxinit.get("Identity")(None, (3, 3, 3))


def test_stft_initializer():
    shape = (256, 1, 513)
    time_range = np.arange(256).reshape((-1, 1, 1))
    freq_range = (np.arange(513) / 1024.0).reshape((1, 1, -1))
    pi = np.arccos(np.float32(-1))
    args = -2 * pi * time_range * freq_range
    tol = {"atol": 1e-4, "rtol": 1e-6}

    values = _np(jaxinit.get("STFT", side="real", window=None)(None, shape))
    np.testing.assert_allclose(values, np.cos(args), atol=1e-4)

    init = jaxinit.get("STFT", side="real", window="hamming", scaling=None, periodic=True)
    window = scipy.signal.windows.get_window("hamming", 256, True).reshape((-1, 1, 1))
    np.testing.assert_allclose(_np(init(None, shape, jnp.float32)), np.cos(args) * window, **tol)

    init = jaxinit.get("STFTInitializer", side="imag", window="tukey", scaling="density")
    window = scipy.signal.windows.get_window("tukey", 256, False).reshape((-1, 1, 1))
    window = window / np.sqrt(np.sum(window**2))
    np.testing.assert_allclose(_np(init(None, shape)), np.sin(args) * window, **tol)

    init = jaxinit.get("stft", side="imag", window=list(range(1, 257)), scaling="spectrum")
    window = np.arange(1, 257).reshape((-1, 1, 1)) / np.sum(np.arange(1, 257))
    np.testing.assert_allclose(_np(init(None, shape)), np.sin(args) * window, **tol)

    # Several input channels: every channel gets the same kernel.
    multi = _np(jaxinit.stft(window=None)(None, (16, 3, 9)))
    np.testing.assert_array_equal(multi[:, 0], multi[:, 2])

    with pytest.raises(ValueError, match="stft: side='imaginary'"):
        jaxinit.get("STFT", side="imaginary")
    with pytest.raises(ValueError, match="stft: scaling='l2'"):
        jaxinit.get("STFT", side="real", scaling="l2")
    with pytest.raises(ValueError, match="stft: window='unknown'"):
        jaxinit.get("STFT", side="real", window="unknown")
    with pytest.raises(ValueError, match="frame_length=256"):
        jaxinit.stft(window=[1.0, 2.0])(None, shape)
