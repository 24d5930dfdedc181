"""Matrix and kernel schemes: exact properties (QᵀQ = I, ZerO matrices, Dirac conv = identity,
sparse counts per unit), parity with jax.nn, statistics of the random values, bad input."""

import math
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

import jaxinit

jnn = jax.nn.initializers
KEY = jax.random.key(11)


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _as_matrix(w, column_axis):
    """Columns on ``column_axis``, every other axis flattened into rows (jax's convention)."""
    w = np.moveaxis(np.asarray(w, np.float64), column_axis, -1)
    return w.reshape(-1, w.shape[-1])


def _assert_orthonormal(m, scale=1.0, atol=1e-5):
    """QᵀQ = scale²I when cols <= rows, QQᵀ = scale²I otherwise."""
    rows, cols = m.shape
    gram = m.T @ m if cols <= rows else m @ m.T
    np.testing.assert_allclose(gram, scale**2 * np.eye(min(rows, cols)), atol=atol)


# --------------------------------------------------------------------------- orthogonal

ORTHO_CASES = [
    ((16, 8), -1),
    ((8, 16), -1),
    ((3, 3, 4, 8), 2),
    ((3, 3, 4, 100), -1),  # more columns than rows: rows orthonormal
    ((2, 5, 6), 0),
]


@pytest.mark.parametrize(("shape", "column_axis"), ORTHO_CASES)
def test_orthogonal_is_orthonormal_and_scaled(shape, column_axis):
    w = jaxinit.orthogonal(1.7, column_axis)(KEY, shape)
    assert w.shape == shape and w.dtype == jnp.float32
    _assert_orthonormal(_as_matrix(w, column_axis), scale=1.7)


@pytest.mark.parametrize(("shape", "column_axis"), ORTHO_CASES)
def test_orthogonal_bit_identical_to_jax(shape, column_axis):
    _same(
        jaxinit.orthogonal(0.5, column_axis)(KEY, shape),
        jnn.orthogonal(0.5, column_axis)(KEY, shape),
    )


def test_orthogonal_bit_identical_to_jax_float64_and_complex():
    with jax.enable_x64(True):
        _same(
            jaxinit.orthogonal()(KEY, (9, 4), jnp.float64),
            jnn.orthogonal()(KEY, (9, 4), jnp.float64),
        )
    _same(
        jaxinit.orthogonal()(KEY, (6, 4), jnp.complex64),
        jnn.orthogonal()(KEY, (6, 4), jnp.complex64),
    )


def test_orthogonal_torch_layout_is_torch_flattening():
    # torch's orthogonal_: rows = dim 0, trailing dims flattened.
    w = jaxinit.orthogonal(layout="torch")(KEY, (8, 4, 3, 3))
    _assert_orthonormal(np.asarray(w, np.float64).reshape(8, -1))
    _same(w, jaxinit.orthogonal(column_axis=0)(KEY, (8, 4, 3, 3)))
    # A 2-D torch weight (out, in) is the transposed flax kernel (in, out), same key.
    _same(jaxinit.orthogonal(layout="torch")(KEY, (5, 9)), jaxinit.orthogonal()(KEY, (9, 5)).T)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_orthogonal_half_precision(dtype):
    w = jaxinit.orthogonal(2.0)(KEY, (32, 16), dtype)
    assert w.dtype == dtype
    # The float32 result rounded once, so orthogonal to the half-precision rounding error.
    _same(w, jaxinit.orthogonal(2.0)(KEY, (32, 16)).astype(dtype))
    eps = float(jnp.finfo(dtype).eps)
    _assert_orthonormal(np.asarray(w, np.float64), scale=2.0, atol=4 * 4 * eps * math.sqrt(32))
    # ...and the rounding is visible: this is not the float32 matrix.
    assert not np.allclose(
        np.asarray(w, np.float64).T @ np.asarray(w, np.float64), 4 * np.eye(16), atol=1e-6
    )


def test_orthogonal_is_haar_distributed():
    # Entries of a Haar-random orthogonal n×n matrix, times √n, are close to N(0, 1).
    w = np.asarray(jaxinit.orthogonal()(KEY, (256, 256))).ravel() * 16
    assert scipy.stats.kstest(w, "norm").pvalue > 1e-3
    assert not np.array_equal(
        jaxinit.orthogonal()(KEY, (8, 8)), jaxinit.orthogonal()(jax.random.key(12), (8, 8))
    )


# --------------------------------------------------------------------------- delta-orthogonal

DELTA_SHAPES = [(3, 4, 8), (3, 3, 4, 4), (4, 4, 2, 6), (3, 3, 3, 2, 5), (1, 3, 3)]


@pytest.mark.parametrize(
    ("shape", "column_axis"), list(zip(DELTA_SHAPES, [-1, -2, -1, -2, 0], strict=True))
)
def test_delta_orthogonal_bit_identical_to_jax(shape, column_axis):
    _same(
        jaxinit.delta_orthogonal(1.3, column_axis)(KEY, shape),
        jnn.delta_orthogonal(1.3, column_axis)(KEY, shape),
    )


@pytest.mark.parametrize("shape", DELTA_SHAPES)
def test_delta_orthogonal_centre_tap_is_orthogonal_rest_zero(shape):
    w = np.asarray(jaxinit.delta_orthogonal(2.0)(KEY, shape), np.float64)
    centre = tuple((k - 1) // 2 for k in shape[:-2])  # the documented tap, also for even k
    _assert_orthonormal(w[centre], scale=2.0)
    rest = w.copy()
    rest[centre] = 0
    assert not rest.any()


def test_delta_orthogonal_even_kernel_centre_and_torch_layout():
    w = jaxinit.delta_orthogonal()(KEY, (4, 4, 3, 3))
    assert np.flatnonzero(np.abs(np.asarray(w)).sum((2, 3))).tolist() == [1 * 4 + 1]
    wt = jaxinit.delta_orthogonal(layout="torch")(KEY, (3, 3, 4, 4))  # (out, in, kh, kw)
    _same(wt, jnp.transpose(w, (3, 2, 0, 1)))
    half = jaxinit.delta_orthogonal()(KEY, (3, 3, 4, 8), jnp.bfloat16)
    assert half.dtype == jnp.bfloat16
    _assert_orthonormal(np.asarray(half[1, 1], np.float64), atol=0.05)


def test_delta_orthogonal_errors_show_the_shape():
    with pytest.raises(ValueError, match=r"shape \(3, 3, 8, 4\).*in=8 > out=4"):
        jaxinit.delta_orthogonal()(KEY, (3, 3, 8, 4))
    with pytest.raises(ValueError, match=r"shape \(4, 8, 3, 3\).*layout='torch'.*in=8 > out=4"):
        jaxinit.delta_orthogonal(layout="torch")(KEY, (4, 8, 3, 3))
    with pytest.raises(ValueError, match=r"delta_orthogonal: shape \(4, 8\) has rank 2"):
        jaxinit.delta_orthogonal()(KEY, (4, 8))
    with pytest.raises(ValueError, match=r"rank 6"):
        jaxinit.delta_orthogonal()(KEY, (2, 2, 2, 2, 4, 8))
    with pytest.raises(ValueError, match=r"column_axis=2"):
        jaxinit.delta_orthogonal(column_axis=2)


# --------------------------------------------------------------------------- dirac


@pytest.mark.parametrize(
    ("kernel_size", "channels", "groups"),
    [((3, 3), 6, 1), ((4, 4), 4, 1), ((2,), 3, 1), ((3, 3, 3), 2, 1), ((5,), 6, 3),
     ((3, 3), 4, 4)],
)  # fmt: skip
def test_dirac_conv_is_identity_flax(kernel_size, channels, groups):
    conv = nn.Conv(
        channels,
        kernel_size,
        padding="SAME",
        feature_group_count=groups,
        kernel_init=jaxinit.dirac(groups),
        bias_init=jaxinit.zeros,
    )
    x = jax.random.normal(jax.random.key(1), (2, *([7] * len(kernel_size)), channels))
    params = conv.init(KEY, x)
    assert params["params"]["kernel"].shape == (*kernel_size, channels // groups, channels)
    np.testing.assert_allclose(conv.apply(params, x), x, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("kernel_size", "groups"), [((3, 3), 1), ((4, 4), 1), ((3, 3), 2)])
def test_dirac_conv_is_identity_torch_layout(kernel_size, groups):
    c = 4
    w = jaxinit.dirac(groups, layout="torch")(None, (c, c // groups, *kernel_size))
    x = jax.random.normal(jax.random.key(2), (2, c, 6, 6))  # NCHW
    y = jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=groups
    )
    np.testing.assert_allclose(y, x, rtol=0, atol=1e-6)


def _torch_dirac_reference(shape, groups):
    """torch.nn.init.dirac_'s loop, in numpy (torch layout (out, in, *k), odd k)."""
    w = np.zeros(shape, np.float32)
    out_per_group = shape[0] // groups
    for g in range(groups):
        for d in range(min(out_per_group, shape[1])):
            w[(g * out_per_group + d, d, *(k // 2 for k in shape[2:]))] = 1
    return w


@pytest.mark.parametrize(
    ("shape", "groups"),
    [((6, 4, 3, 3), 1), ((4, 6, 3), 1), ((6, 2, 3, 3), 3), ((8, 3, 1, 3, 5), 2)],
)
def test_dirac_matches_torch_dirac_for_odd_kernels(shape, groups):
    w = jaxinit.dirac(groups, layout="torch")(None, shape)
    np.testing.assert_array_equal(w, _torch_dirac_reference(shape, groups))
    # The flax kernel is the same array with its axes moved.
    flax_shape = (*shape[2:], shape[1], shape[0])
    wf = jaxinit.dirac(groups)(KEY, flax_shape)
    np.testing.assert_array_equal(np.moveaxis(np.asarray(wf), (-1, -2), (0, 1)), w)


def test_dirac_errors():
    with pytest.raises(
        ValueError, match=r"groups=4 does not divide the 6 output channels of shape \(3, 3, 2, 6\)"
    ):
        jaxinit.dirac(4)(None, (3, 3, 2, 6))
    with pytest.raises(ValueError, match=r"dirac: groups must be >= 1, got 0"):
        jaxinit.dirac(0)
    with pytest.raises(TypeError, match=r"dirac: groups must be an int"):
        jaxinit.dirac(1.5)
    with pytest.raises(ValueError, match=r"dirac: shape \(4, 4\) has rank 2"):
        jaxinit.dirac()(None, (4, 4))


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3), (1, 4)])
def test_identity_rectangular(shape):
    w = jaxinit.identity(0.5)(None, shape)
    np.testing.assert_array_equal(w, 0.5 * np.eye(*shape, dtype=np.float32))
    assert jaxinit.eye is jaxinit.identity
    assert jaxinit.get("eye_")(KEY, shape, jnp.bfloat16).dtype == jnp.bfloat16
    np.testing.assert_array_equal(jaxinit.get("Identity", gain=2.0)(KEY, shape), 2 * np.eye(*shape))


def test_identity_errors():
    with pytest.raises(ValueError, match=r"identity: shape \(3, 3, 4\) has rank 3"):
        jaxinit.identity()(None, (3, 3, 4))
    with pytest.raises(ValueError, match=r"identity: gain must be a finite number"):
        jaxinit.identity(float("nan"))


# --------------------------------------------------------------------------- ZerO


def _zero_reference(c_out, c_in):
    """The paper's W (out × in) written with scipy's Hadamard matrix, authors' 2^(-m/2)."""
    if c_out <= c_in:
        return np.eye(c_out, c_in)
    m = math.ceil(math.log2(c_out))
    return np.eye(c_out, 2**m) @ scipy.linalg.hadamard(2**m) @ np.eye(2**m, c_in) / 2 ** (m / 2)


@pytest.mark.parametrize(
    ("c_in", "c_out"), [(8, 8), (8, 4), (5, 3), (3, 6), (5, 8), (4, 16), (7, 9), (1, 2), (10, 100)]
)
def test_zero_init_matrices_exact(c_in, c_out):
    w = jaxinit.zero_init()(None, (c_in, c_out))  # flax kernel (in, out) stores Wᵀ
    np.testing.assert_allclose(np.asarray(w, np.float64), _zero_reference(c_out, c_in).T, rtol=1e-6)
    np.testing.assert_array_equal(
        jaxinit.zero_init(layout="torch")(None, (c_out, c_in)), np.asarray(w).T
    )


def test_zero_init_properties():
    init = jaxinit.zero_init()
    # Deterministic: the key is ignored.
    _same(init(KEY, (6, 16)), init(jax.random.key(99), (6, 16)))
    _same(init(None, (6, 16)), jax.jit(lambda: init(None, (6, 16)))())
    assert not jaxinit.scheme("ZerO").keyed
    # Out a power of two, larger than in: the columns of W (rows of the kernel) are orthonormal.
    w = np.asarray(init(None, (6, 16)), np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(6), atol=1e-6)
    assert set(np.unique(np.abs(w)).tolist()) == {0.25}
    # In >= out: partial identity, ones and zeros only.
    np.testing.assert_array_equal(init(None, (9, 4)), np.eye(9, 4))


@pytest.mark.parametrize("shape", [(3, 3, 4, 6), (5, 2, 8), (4, 4, 8, 8), (3, 3, 3, 6, 2)])
def test_zero_init_conv_centre_tap(shape):
    w = np.asarray(jaxinit.zero_init()(None, shape), np.float64)
    centre = tuple((k - 1) // 2 for k in shape[:-2])
    np.testing.assert_allclose(w[centre], _zero_reference(shape[-1], shape[-2]).T, rtol=1e-6)
    w[centre] = 0
    assert not w.any()


def test_zero_init_errors():
    with pytest.raises(ValueError, match=r"zero_init: shape \(8,\) has rank 1"):
        jaxinit.zero_init()(None, (8,))
    with pytest.raises(ValueError, match=r"zero_init: layout='jax' is not supported"):
        jaxinit.zero_init(layout="jax")


# --------------------------------------------------------------------------- sparse (Martens)


@pytest.mark.parametrize(
    ("shape", "k", "layout", "unit_axis"),
    [((40, 30), 15, None, -1), ((3, 3, 4, 8), 5, None, -1), ((30, 40), 15, "torch", 0),
     ((8, 4, 3, 3), 36, "torch", 0), ((20, 5), 1, "flax", -1)],
)  # fmt: skip
def test_sparse_exactly_k_per_unit(shape, k, layout, unit_axis):
    w = np.asarray(jaxinit.sparse(k, layout=layout)(KEY, shape))
    per_unit = np.moveaxis(w != 0, unit_axis, -1).reshape(-1, shape[unit_axis]).sum(0)
    assert per_unit.tolist() == [k] * shape[unit_axis]


def test_sparse_statistics():
    w = np.asarray(jaxinit.sparse(15, scale=0.5)(KEY, (300, 400)))
    nz = w[w != 0]
    assert nz.size == 15 * 400
    assert scipy.stats.kstest(nz, "norm", args=(0, 0.5)).pvalue > 1e-3
    assert scipy.stats.kstest(nz, "norm", args=(0, 0.6)).pvalue < 1e-6  # the test can tell
    # Positions uniform over the inputs: each input is hit 15·400/300 = 20 times on average.
    hits = (w != 0).sum(1)
    assert scipy.stats.chisquare(hits).pvalue > 1e-3
    # Units differ (not the same positions for every unit).
    assert len({tuple(np.flatnonzero(w[:, j])) for j in range(400)}) == 400


def test_sparse_errors():
    with pytest.raises(
        ValueError,
        match=r"sparse: shape \(10, 4\).*fan_in=10 < k=15 incoming weights; pass k <= 10",
    ):
        jaxinit.sparse()(KEY, (10, 4))
    with pytest.raises(ValueError, match=r"sparse: k must be >= 1, got 0"):
        jaxinit.sparse(0)
    with pytest.raises(ValueError, match=r"sparse: k must be >= 1, got -3"):
        jaxinit.sparse(-3)
    with pytest.raises(TypeError, match=r"sparse: k must be an int"):
        jaxinit.sparse(2.5)
    with pytest.raises(ValueError, match=r"sparse: scale must be finite and > 0"):
        jaxinit.sparse(scale=0.0)
    with pytest.raises(ValueError, match=r"sparse: shape \(20,\) has rank 1"):
        jaxinit.sparse()(KEY, (20,))


# --------------------------------------------------------------------------- torch sparse_


@pytest.mark.parametrize(
    ("shape", "sparsity", "layout"),
    [((30, 20), 0.1, None), ((20, 30), 0.5, "torch"), ((5, 3), 0.99, "flax")],
)  # fmt: skip
def test_torch_sparse_fraction_exact(shape, sparsity, layout):
    w = np.asarray(jaxinit.torch_sparse(sparsity, layout=layout)(KEY, shape))
    # flax (in, out): zeros counted along out for every input row; torch (out, in): per column.
    zeros = (w == 0).sum(1) if layout != "torch" else (w == 0).sum(0)
    c_out = shape[1] if layout != "torch" else shape[0]
    assert zeros.tolist() == [math.ceil(sparsity * c_out)] * len(zeros)


def test_torch_sparse_statistics_and_alias():
    w = np.asarray(jaxinit.get("sparse_", sparsity=0.3, std=0.02)(KEY, (200, 100)))
    nz = w[w != 0]
    assert nz.size == 200 * 70
    assert scipy.stats.kstest(nz, "norm", args=(0, 0.02)).pvalue > 1e-3
    assert scipy.stats.kstest(nz, "norm", args=(0, 0.022)).pvalue < 1e-6
    assert jaxinit.scheme("sparse_").name == "torch_sparse"
    assert jaxinit.scheme("sparse").name == "sparse"


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan")])
def test_torch_sparse_bad_sparsity(bad):
    with pytest.raises(ValueError, match=r"torch_sparse: sparsity must be"):
        jaxinit.torch_sparse(bad)


def test_torch_sparse_rank_and_std_errors():
    with pytest.raises(ValueError, match=r"torch_sparse: shape \(3, 3, 4\) has rank 3"):
        jaxinit.torch_sparse(0.5)(KEY, (3, 3, 4))
    with pytest.raises(ValueError, match=r"torch_sparse: std must be finite and > 0"):
        jaxinit.torch_sparse(0.5, std=-1.0)


# --------------------------------------------------------------------------- shared


@pytest.mark.parametrize(
    ("init", "shape"),
    [(jaxinit.orthogonal(), (12, 6)), (jaxinit.sparse(3), (12, 6))],
)  # fmt: skip
def test_jit_and_vmap(init, shape):
    keys = jax.random.split(KEY, 3)
    batch = jax.jit(jax.vmap(lambda k: init(k, shape)))(keys)
    for i in range(3):
        np.testing.assert_allclose(batch[i], init(keys[i], shape), rtol=1e-6, atol=1e-7)
    assert not np.array_equal(batch[0], batch[1])


def test_orthogonal_errors():
    with pytest.raises(
        ValueError, match=r"orthogonal: shape \(8,\) has rank 1; orthogonal needs rank >= 2"
    ):
        jaxinit.orthogonal()(KEY, (8,))
    with pytest.raises(
        ValueError, match=r"orthogonal: shape \(4, 4\) has rank 2; column_axis=2 needs rank >= 3"
    ):
        jaxinit.orthogonal(column_axis=2)(KEY, (4, 4))
    with pytest.raises(ValueError, match=r"orthogonal: scale must be finite and > 0"):
        jaxinit.orthogonal(0.0)
    with pytest.raises(ValueError, match=r"orthogonal: layout='keras' is not supported"):
        jaxinit.orthogonal(layout="keras")
    with pytest.raises(TypeError, match=r"orthogonal: column_axis must be an int"):
        jaxinit.orthogonal(column_axis=(0, 1))
    with pytest.raises(TypeError, match=r"orthogonal: key must be a PRNG key"):
        jaxinit.orthogonal()(0, (4, 4))
    with pytest.raises(TypeError, match=r"orthogonal: dtype=int32 is not supported"):
        jaxinit.orthogonal()(KEY, (4, 4), jnp.int32)


def test_registry_metadata_and_names():
    for name, canonical in [("Orthogonal", "orthogonal"), ("orthogonal_", "orthogonal"),
                            ("Identity", "identity"), ("eye_", "identity"), ("eye", "identity"),
                            ("dirac_", "dirac"), ("sparse_", "torch_sparse"),
                            ("ZerO", "zero_init"), ("DeltaOrthogonal", "delta_orthogonal")]:  # fmt: skip
        assert jaxinit.scheme(name).name == canonical
    for name in ("orthogonal", "delta_orthogonal", "dirac", "identity", "zero_init", "sparse"):
        s = jaxinit.scheme(name)
        assert s.family in ("structured", "research") and s.paper and s.variance
    assert [jaxinit.scheme(n).keyed for n in ("dirac", "identity", "zero_init", "sparse")] == [
        False, False, False, True,
    ]  # fmt: skip


def test_vmapped_orthogonal_init_of_a_deep_model_terminates():
    """jaxlib's batched CPU QR deadlocks when as many run at once as XLA has workers (see
    jaxinit.initializers._structured._random_orthogonal); run in a subprocess so a regression fails
    instead of hanging the suite."""
    code = textwrap.dedent("""
        import jax, numpy as np, jaxinit
        keys = jax.random.split(jax.random.key(0), 4)
        model = jaxinit.MLP([128] * 12, "tanh", kernel_init=jaxinit.orthogonal())
        params = jax.jit(jax.vmap(lambda k: model.init(k, np.zeros((1, 128), np.float32))))(keys)
        w = np.asarray(params["params"]["Dense_11"]["kernel"][3])
        print(np.abs(w.T @ w - np.eye(128)).max() < 1e-4)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "True"


def test_vmapped_orthogonal_matches_per_key():
    keys = jax.random.split(jax.random.key(3), 6).reshape(2, 3)
    init = jaxinit.orthogonal()
    batched = jax.jit(jax.vmap(jax.vmap(lambda k: init(k, (16, 8)))))(keys)
    for i in range(2):
        for j in range(3):
            expected = jax.nn.initializers.orthogonal()(keys[i, j], (16, 8))
            np.testing.assert_array_equal(batched[i, j], expected)
