"""PyTorch's own init tests (test/nn/test_init.py, TestNNInit and its device-type trunc_normal
cases), ported to jaxinit's torch names; no torch needed.

The procedures and tolerances are torch's: Kolmogorov–Smirnov tests with p > 1e-4, random
sizes and parameters from ``random.seed(123)``, exact gains. Weights are torch-shaped
``(out, in, *spatial)`` and built with ``layout="torch"``. Sample sizes of the 4-D cases are
smaller than torch's (sizes 6–9 instead of 20–50 per axis) to keep the suite fast; the
KS threshold is unchanged.
"""

import math
import random
import string

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxinit

P_MIN = 1e-4


@pytest.fixture(autouse=True)
def _seed():
    random.seed(123)


def _random_shape(dims, size_min, size_max):
    return tuple(random.randint(size_min, size_max) for _ in range(dims))


def _random_float(a, b):
    return (b - a) * random.random() + a


def _is_normal(x, mean, std):
    return stats.kstest(np.ravel(x), "norm", args=(mean, std)).pvalue > P_MIN


def _is_trunc_normal(x, mean, std, a, b):
    z = (np.ravel(np.asarray(x, np.float64)) - mean) / std
    return stats.kstest(z, "truncnorm", args=((a - mean) / std, (b - mean) / std)).pvalue > P_MIN


def _is_uniform(x, a, b):
    return stats.kstest(np.ravel(x), "uniform", args=(a, b - a)).pvalue > P_MIN


def _run(draws):
    """Evaluate ``[(init, shape)]`` in one compiled program; float64 numpy results."""
    out = jax.jit(
        lambda k: [init(jax.random.fold_in(k, i), s) for i, (init, s) in enumerate(draws)]
    )(jax.random.key(0))
    return [np.asarray(x, np.float64) for x in out]


def _fans(shape):
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


# --------------------------------------------------------------------------- calculate_gain


def test_calculate_gain_linear():
    for fn in ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose2d", "conv_transpose3d"]:
        assert jaxinit.calculate_gain(fn) == 1


def test_calculate_gain_nonlinear():
    assert jaxinit.calculate_gain("sigmoid") == 1
    assert jaxinit.calculate_gain("tanh") == 1.6666666666666667
    assert jaxinit.calculate_gain("relu") == 1.4142135623730951
    assert jaxinit.calculate_gain("leaky_relu") == 1.4141428569978354
    assert jaxinit.calculate_gain("selu") == 0.75


def test_calculate_gain_leaky_relu():
    expected = {None: 1.4141428569978354, 0: 1.4142135623730951, 0.01: 1.4141428569978354}
    expected[10] = 0.14071950894605836
    for param, gain in expected.items():
        assert jaxinit.calculate_gain("leaky_relu", param) == gain


def test_calculate_gain_leaky_relu_only_accepts_numbers():
    for param in [True, [1], {"a": "b"}]:
        with pytest.raises(ValueError, match="negative_slope"):
            jaxinit.calculate_gain("leaky_relu", param)


def test_calculate_gain_only_accepts_valid_nonlinearities():
    for n in [2, 5, 25]:
        name = "".join(random.choice(string.ascii_lowercase) for _ in range(n))
        with pytest.raises(ValueError):
            jaxinit.calculate_gain(name)


# --------------------------------------------------------------------------- plain draws


def test_uniform_and_normal():
    cases = []
    for dims in [1, 2, 4]:
        size = (30, 50) if dims < 4 else (6, 9)
        shape = _random_shape(dims, *size)
        a = _random_float(-3, 3)
        b = a + _random_float(1, 5)
        cases.append(("uniform", (a, b), jaxinit.get("uniform_", a=a, b=b), shape))
        shape = _random_shape(dims, *size)
        mean, std = _random_float(-3, 3), _random_float(1, 5)
        cases.append(("normal", (mean, std), jaxinit.get("normal_", mean=mean, std=std), shape))
    for (kind, args, _, shape), x in zip(cases, _run([(c[2], c[3]) for c in cases]), strict=True):
        assert x.shape == shape
        assert (_is_uniform if kind == "uniform" else _is_normal)(x, *args), (kind, args, shape)


def test_trunc_normal_all_dtypes():
    # TestNNInitDeviceType.test_trunc_normal_all_dtypes (float32; float64 needs x64).
    cases = []
    for dims in [1, 2, 4]:
        shape = _random_shape(dims, 30, 50) if dims < 4 else _random_shape(dims, 6, 9)
        mean = random.uniform(-3, 3)
        std = random.uniform(0.01, 1)
        a = random.uniform(mean - 2 * std, mean)
        b = random.uniform(mean, mean + 2 * std)
        cases.append(((mean, std, a, b), shape))
    inits = [
        (jaxinit.get("trunc_normal_", mean=m, std=s, a=a, b=b), sh) for (m, s, a, b), sh in cases
    ]
    for ((mean, std, a, b), _), x in zip(cases, _run(inits), strict=True):
        lo, hi = float(np.float32(a)), float(np.float32(b))
        assert x.min() >= lo and x.max() <= hi
        assert _is_trunc_normal(x, mean, std, a, b)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_trunc_normal_low_precision_narrow_interval_unique_values(dtype):
    # test_trunc_normal_low_precision, _narrow_interval (bf16 excluded there: only 65
    # values in [2, 3]), _unique_values and _no_boundary_values_small_std.
    n = 10000
    wide = jaxinit.torch_trunc_normal(0.0, 1.0, -2.0, 2.0)
    narrow = jaxinit.torch_trunc_normal(0.0, 1.0, 2.0, 3.0)
    small = jaxinit.torch_trunc_normal(0.0, 0.1, -2.0, 2.0)
    x, y, z = (
        np.asarray(v.astype(jnp.float32), np.float64)
        for v in jax.jit(
            lambda k: (wide(k, (n,), dtype), narrow(k, (n,), dtype), small(k, (n,), dtype))
        )(jax.random.key(0))
    )
    assert x.min() >= -2 and x.max() <= 2 and _is_trunc_normal(x, 0, 1, -2, 2)
    min_unique = {jnp.float32: 5000, jnp.float16: 3000, jnp.bfloat16: 1000}[dtype]
    assert len(np.unique(x)) > min_unique
    assert np.all(np.isfinite(x))
    assert y.min() >= 2 and y.max() <= 3
    if dtype != jnp.bfloat16:
        assert _is_trunc_normal(y, 0, 1, 2, 3)
    assert not np.any(np.abs(z) == 2.0)


# --------------------------------------------------------------------------- deterministic


def test_constant_ones_zeros():
    for dims in [1, 2, 4]:
        shape = _random_shape(dims, 1, 5)
        val = _random_float(1, 10)
        np.testing.assert_array_equal(
            jaxinit.get("constant_", val=val)(None, shape), np.full(shape, np.float32(val))
        )
        np.testing.assert_array_equal(jaxinit.get("ones_")(None, shape), np.ones(shape))
        np.testing.assert_array_equal(jaxinit.get("zeros_")(None, shape), np.zeros(shape))


def test_eye():
    shape = _random_shape(2, 1, 5)
    np.testing.assert_array_equal(jaxinit.get("eye_")(None, shape), np.eye(*shape))
    for dims in [1, 3]:
        with pytest.raises(ValueError):
            jaxinit.get("eye_")(None, _random_shape(dims, 1, 3))


def test_dirac_properties():
    cases = []
    for dims in [3, 4, 5]:
        for groups in [1, 2, 3]:
            a, c, d, e = (random.randint(1, 5) for _ in range(4))
            b = random.randint(1, 5 * groups)
            shape = (a * groups, b, c, d, e)[:dims]
            cases.append((groups, jaxinit.get("dirac_", groups=groups, layout="torch"), shape))
    for (groups, _, shape), w in zip(cases, _run([c[1:] for c in cases]), strict=True):
        min_d = min(shape[0] // groups, shape[1])
        assert np.count_nonzero(w) == min_d * groups
        assert w.sum() == min_d * groups


def test_dirac_identity():
    batch, in_c, out_c, size, kernel_size = 8, 3, 9, 5, 3
    rng = np.random.default_rng(0)
    for groups in [1, 3]:
        eff_out_c = out_c // groups
        for nd, spec in [(1, ("NCH", "OIH", "NCH")), (2, ("NCHW", "OIHW", "NCHW"))]:
            x = rng.standard_normal((batch, in_c, *(size,) * nd)).astype(np.float32)
            shape = (eff_out_c * groups, in_c, *(kernel_size,) * nd)
            w = jaxinit.get("dirac_", groups=groups, layout="torch")(None, shape)
            y = np.asarray(
                jax.lax.conv_general_dilated(x, w, (1,) * nd, "VALID", dimension_numbers=spec)
            )
            inner = x[(slice(None), slice(None), *(slice(1, -1),) * nd)]
            for g in range(groups):
                np.testing.assert_array_equal(y[:, eff_out_c * g : eff_out_c * g + in_c], inner)
                assert not np.any(y[:, eff_out_c * g + in_c : eff_out_c * (g + 1)])


def test_dirac_only_works_on_3_4_5d_inputs():
    for dims in [1, 2, 6]:
        with pytest.raises(ValueError):
            jaxinit.get("dirac_", layout="torch")(None, _random_shape(dims, 1, 3))


# --------------------------------------------------------------------------- xavier / kaiming


@pytest.mark.parametrize(
    "name", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]
)
def test_errors_on_inputs_smaller_than_2d(name):
    for dims in [0, 1]:
        with pytest.raises(ValueError):
            jaxinit.get(name, layout="torch")(jax.random.key(0), _random_shape(dims, 1, 1))


@pytest.mark.parametrize(
    "name", ["kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_"]
)
def test_warning_on_0element_tensor(name):
    with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
        out = jaxinit.get(name)(jax.random.key(0), (0, 1))
    assert out.shape == (0, 1) and out.dtype == jnp.float32


def test_xavier_and_kaiming():
    cases = []
    for use_gain in [True, False]:
        for dims in [2, 4]:
            for dist in ["uniform", "normal"]:
                shape = _random_shape(dims, 20, 25) if dims == 2 else _random_shape(dims, 6, 9)
                gain = _random_float(0.1, 2) if use_gain else 1.0
                opts = {"gain": gain} if use_gain else {}
                init = jaxinit.get(f"xavier_{dist}_", layout="torch", **opts)
                fan_in, fan_out = _fans(shape)
                std = gain * math.sqrt(2.0 / (fan_in + fan_out))
                cases.append((dist, std, init, shape))
                for mode in ["fan_in", "fan_out"]:
                    shape = _random_shape(dims, 20, 25) if dims == 2 else _random_shape(dims, 6, 9)
                    a = _random_float(0.1, 2) if use_gain else 0
                    opts = {"a": a} if use_gain else {}
                    init = jaxinit.get(f"kaiming_{dist}_", mode=mode, layout="torch", **opts)
                    n = _fans(shape)[0 if mode == "fan_in" else 1]
                    std = math.sqrt(2.0 / ((1 + a**2) * n))
                    cases.append((dist, std, init, shape))
    for (dist, std, _, shape), x in zip(cases, _run([(c[2], c[3]) for c in cases]), strict=True):
        bound = std * math.sqrt(3.0)
        ok = _is_uniform(x, -bound, bound) if dist == "uniform" else _is_normal(x, 0, std)
        assert ok, (dist, std, shape)


# --------------------------------------------------------------------------- sparse, orthogonal


def test_sparse_only_works_on_2d_inputs():
    for dims in [1, 3]:
        sparsity = _random_float(0.1, 0.9)
        with pytest.raises(ValueError):
            jaxinit.get("sparse_", sparsity=sparsity, layout="torch")(
                jax.random.key(0), _random_shape(dims, 1, 3)
            )


def test_sparse_default_std():
    cases = []
    for use_random_std in [True, False]:
        shape = _random_shape(2, 30, 35)
        sparsity = _random_float(0.1, 0.2)
        std = _random_float(0.01, 0.2) if use_random_std else 0.01
        opts = {"std": std} if use_random_std else {}
        cases.append(
            (
                sparsity,
                std,
                jaxinit.get("sparse_", sparsity=sparsity, layout="torch", **opts),
                shape,
            )
        )
    for (sparsity, std, _, shape), w in zip(
        cases, _run([(c[2], c[3]) for c in cases]), strict=True
    ):
        rows = shape[0]
        for col in w.T:
            assert np.count_nonzero(col == 0) >= math.ceil(sparsity * rows)
        assert _is_normal(w[w != 0], 0, std)


def test_orthogonal():
    cases = []
    for use_gain in [True, False]:
        for size in [(3, 4), (4, 3), (20, 2, 3, 4), (2, 3, 4, 5)]:
            gain = _random_float(0.1, 2) if use_gain else 1.0
            opts = {"gain": gain} if use_gain else {}
            cases.append((gain, jaxinit.get("orthogonal_", layout="torch", **opts), size))
    for (gain, _, size), w in zip(cases, _run([c[1:] for c in cases]), strict=True):
        rows, cols = size[0], math.prod(size[1:])
        flat = w.reshape(rows, cols)
        if rows > cols:
            np.testing.assert_allclose(flat.T @ flat, np.eye(cols) * gain**2, atol=1e-6, rtol=0)
        else:
            np.testing.assert_allclose(flat @ flat.T, np.eye(rows) * gain**2, atol=1e-6, rtol=0)
