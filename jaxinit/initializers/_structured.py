"""Matrix and kernel schemes: orthogonal, delta-orthogonal, Dirac, identity, ZerO, sparse.

Every factory returns the usual ``init(key, shape, dtype) -> Array``. Kernels are in flax
layout ``(*spatial, in, out)`` by default; ``layout="torch"`` (or ``"equinox"``) takes and
returns ``(out, in, *spatial)`` weights, and for the deterministic and conv schemes gives
exactly the flax result with its axes moved.

Centre tap of a conv kernel of size k (delta-orthogonal, Dirac, ZerO): index ``(k - 1) // 2``
in every spatial axis, as ``jax.nn.initializers.delta_orthogonal``. For odd k this is the
middle; for even k it is the tap that a ``padding="SAME"`` convolution (jax, flax, and torch
``padding="same"``, which all pad ``(k - 1) // 2`` before) aligns with the output position,
so a Dirac kernel is the identity map for even kernels too. torch's ``dirac_`` uses
``k // 2``, which differs only for even k.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._checks import (
    as_int,
    as_real,
    check_choice,
    check_dtype,
    check_finite,
    check_in_dtype,
    check_key,
    check_positive,
    check_shape,
)
from jaxinit._fans import normalize_axes
from jaxinit._types import (
    LAYOUTS,
    Array,
    DTypeLike,
    Initializer,
    Layout,
    Shape,
    flax_to_torch,
    torch_to_flax_shape,
)
from jaxinit._values import initializer
from jaxinit.initializers import _registry
from jaxinit.initializers._fast import is_fast_key
from jaxinit.initializers._fast import orthogonal as fast_orthogonal
from jaxinit.initializers._precision import wide_dtype
from jaxinit.initializers._protocol import with_out_sharding
from jaxinit.initializers._registry import Scheme, register

# QR (and so jax.random.orthogonal) has no half-precision kernels: compute in float32.


def _check_layout(fn: str, layout: str | None) -> Layout:
    layout = check_choice(fn, "layout", layout or "flax", list(LAYOUTS))
    return "flax" if layout == "flax" else "torch"


def _check_int(fn: str, arg: str, value: object, *, minimum: int) -> int:
    return as_int(fn, arg, value, minimum=minimum)


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    return wide_dtype(dtype)  # QR has no kernel below float32 (half and float8 types)


def _centre(spatial: Shape) -> tuple[int, ...]:
    return tuple((k - 1) // 2 for k in spatial)


def _check_conv_rank(fn: str, shape: Shape, layout: str) -> None:
    if len(shape) not in (3, 4, 5):
        form = "(*spatial, in, out)" if layout == "flax" else "(out, in, *spatial)"
        raise ValueError(
            f"{fn}: shape {shape} has rank {len(shape)}; a 1-D, 2-D or 3-D conv kernel"
            f" {form} of rank 3, 4 or 5 is needed (layout={layout!r})"
        )


# --------------------------------------------------------------------------- orthogonal


def _random_orthogonal(key: Array, n_rows: int, n_cols: int, dtype: np.dtype) -> Array:
    """``jax.random.orthogonal(key, n_rows, (), dtype, n_cols)``, one QR per key under vmap on CPU.

    jaxlib's batched CPU QR splits its batch over XLA's intra-op worker pool and blocks the
    worker it runs on until the pieces finish. When as many batched QRs run at once as there
    are workers (e.g. ``jit(vmap(model.init))`` over seeds of a deep MLP with orthogonal
    kernels, jax.nn's initializer included) every worker waits and the program never ends.
    Mapping the keys with ``lax.map`` keeps each QR unbatched, so it runs inline on its
    worker; the values are the same bits. Other platforms keep the batched QR.
    A fast key (:func:`jaxinit.fast`) draws the same distribution without a QR
    (:func:`jaxinit.initializers._fast.orthogonal`, matrix products only), so it batches normally.
    """
    if is_fast_key(key):
        return fast_orthogonal(key, n_rows, n_cols, dtype)

    @jax.custom_batching.custom_vmap
    def draw(k: Array) -> Array:
        return jax.random.orthogonal(k, n_rows, (), dtype, n_cols)

    @draw.def_vmap
    def _(axis_size: int, in_batched: list[bool], k: Array) -> tuple[Array, bool]:
        return jax.lax.platform_dependent(
            k, cpu=lambda k: jax.lax.map(draw, k), default=jax.vmap(draw.fun)
        ), True

    return draw(key)


def _orthogonal(
    fn: str, key: Array, shape: Shape, column_axis: int, scale: float, dtype: np.dtype
) -> Array:
    """jax.nn.initializers.orthogonal's operations in its order; half precision via float32."""
    if len(shape) < 2:
        raise ValueError(f"{fn}: shape {shape} has rank {len(shape)}; orthogonal needs rank >= 2")
    (col,) = normalize_axes(fn, "column_axis", column_axis, shape)
    if 0 in shape:
        return jnp.zeros(shape, dtype)
    work = _compute_dtype(dtype)
    n_rows, n_cols = math.prod(shape) // shape[col], shape[col]
    q = _random_orthogonal(key, n_rows, n_cols, work)
    q = jnp.reshape(q, (*np.delete(shape, col).tolist(), shape[col]))
    q = jnp.moveaxis(q, -1, col)
    return (jnp.array(scale, work) * q).astype(dtype)


@initializer
def orthogonal(
    scale: float = 1.0,
    column_axis: int | None = None,
    dtype: DTypeLike = None,
    *,
    layout: Layout | None = None,
) -> Initializer:
    r"""Random (semi-)orthogonal matrix times ``scale`` (Saxe et al. 2013), any rank >= 2.

    The array is viewed as a matrix whose columns are indexed by ``column_axis`` and whose
    rows are all other axes flattened; a Gaussian matrix is QR-factorised and sign-fixed by
    ``diag(R)`` (Mezzadri 2007), so the result is uniform on the orthogonal group and

    .. math:: Q^\top Q = \mathrm{scale}^2 I \ (\text{cols} \le \text{rows}), \quad
              Q Q^\top = \mathrm{scale}^2 I \ (\text{rows} < \text{cols}).

    Bit-identical to ``jax.nn.initializers.orthogonal(scale, column_axis)`` for the same key
    in float32/float64 (and complex). For bfloat16/float16 output, where jax.nn fails (QR has
    no half-precision kernel), the matrix is computed in float32 and cast, so it equals the
    float32 result rounded. ``jaxinit.fast(orthogonal())`` draws the same distribution
    without a QR, in half its flops (reflectors drawn directly, Stewart 1980).

    Args:
      scale: multiplier (the gain), > 0.
      column_axis: axis of the columns. Default: the output axis of ``layout`` — ``-1`` for
        flax kernels ``(*spatial, in, out)`` (jax's and Keras' ``Orthogonal`` default) and
        ``0`` for torch/equinox weights ``(out, in, *spatial)``, which is torch's
        ``orthogonal_`` flattening (rows = dim 0, trailing dims flattened). Either way each
        output unit's incoming weight vector is one column.
      dtype: default dtype of the output (float or complex).
      layout: ``"flax"`` (default), ``"torch"`` or ``"equinox"``; only sets the default
        ``column_axis``.

    Example:
      >>> w = jaxinit.orthogonal()(jax.random.key(0), (64, 32))
      >>> bool(jnp.allclose(w.T @ w, jnp.eye(32), atol=1e-5))
      True
      >>> w = jaxinit.orthogonal(layout="torch")(jax.random.key(0), (16, 8, 3, 3))  # like orthogonal_
      >>> bool(jnp.allclose(w.reshape(16, -1) @ w.reshape(16, -1).T, jnp.eye(16), atol=1e-5))
      True
    """
    fn = "orthogonal"
    check_positive(fn, "scale", scale)
    scale = as_real(fn, "scale", scale)
    if column_axis is None:
        column_axis = LAYOUTS[_check_layout(fn, layout)][1]
    else:
        _check_layout(fn, layout)
        column_axis = _check_int(fn, "column_axis", column_axis, minimum=-(2**31))

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        check_key(fn, key)
        shape = check_shape(fn, shape)
        dtype = check_dtype(fn, dtype, allow_complex=True)
        check_in_dtype(fn, "scale", scale, dtype, allow_underflow=False)
        return _orthogonal(fn, key, shape, column_axis, scale, dtype)

    return with_out_sharding(fn, init)


@initializer
def delta_orthogonal(
    scale: float = 1.0,
    column_axis: int = -1,
    dtype: DTypeLike = None,
    *,
    layout: Layout | None = None,
) -> Initializer:
    r"""Delta-orthogonal conv kernel (Xiao et al. 2018): an orthogonal matrix at the centre tap.

    For a 1-D, 2-D or 3-D conv kernel (rank 3, 4 or 5), every tap is zero except the centre
    one, which is ``orthogonal(scale, column_axis)`` of the ``(in, out)`` channel matrix, so
    the conv is an isometry of the channels at initialization (dynamical isometry: Xiao et
    al. trained 10,000-layer vanilla tanh CNNs with it). Requires ``in <= out``, so that the
    rows (input channels) are orthonormal: :math:`K_c K_c^\top = \mathrm{scale}^2 I_{in}`.

    Bit-identical to ``jax.nn.initializers.delta_orthogonal`` for the same key wherever jax
    accepts the input (float32/float64, flax layout); bfloat16/float16 work here (float32 QR).

    Centre tap: ``(k - 1) // 2`` in each spatial axis, as jax (see the module docstring for
    even k).

    Args:
      scale: multiplier, > 0.
      column_axis: as in jax, the column axis of the ``(in, out)`` centre matrix (``-1``:
        output channels). It changes which random matrix is drawn, not the orthogonality.
      dtype: default dtype.
      layout: ``"flax"`` (default) ``(*spatial, in, out)`` or ``"torch"``/``"equinox"``
        ``(out, in, *spatial)``; the torch kernel is the flax kernel with its axes moved.

    Example:
      >>> w = jaxinit.delta_orthogonal()(jax.random.key(0), (3, 3, 16, 16))  # (h, w, in, out)
      >>> bool(jnp.allclose(w[1, 1].T @ w[1, 1], jnp.eye(16), atol=1e-5))  # orthogonal centre tap
      True
      >>> float(jnp.abs(w).sum() - jnp.abs(w[1, 1]).sum())  # zero elsewhere
      0.0
    """
    fn = "delta_orthogonal"
    check_positive(fn, "scale", scale)
    scale = as_real(fn, "scale", scale)
    layout = _check_layout(fn, layout)
    column_axis = _check_int(fn, "column_axis", column_axis, minimum=-2)
    if column_axis > 1:
        raise ValueError(
            f"{fn}: column_axis={column_axis!r} must index the (in, out) centre matrix:"
            " -2, -1, 0 or 1"
        )

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        check_key(fn, key)
        shape = check_shape(fn, shape)
        dtype = check_dtype(fn, dtype, allow_complex=True)
        _check_conv_rank(fn, shape, layout)
        check_in_dtype(fn, "scale", scale, dtype, allow_underflow=False)
        flax_shape = shape if layout == "flax" else torch_to_flax_shape(shape)
        c_in, c_out = flax_shape[-2:]
        if c_in > c_out:
            raise ValueError(
                f"{fn}: shape {shape} (layout={layout!r}) has in={c_in} > out={c_out} channels;"
                " a delta-orthogonal kernel needs in <= out so that the centre tap is an"
                " isometry (use orthogonal for a contracting layer)"
            )
        ortho = _orthogonal(fn, key, (c_in, c_out), column_axis, scale, dtype)
        w = jnp.zeros(flax_shape, dtype).at[_centre(flax_shape[:-2])].set(ortho)
        return w if layout == "flax" else flax_to_torch(w)

    return with_out_sharding(fn, init)


@initializer
def dirac(groups: int = 1, dtype: DTypeLike = None, *, layout: Layout | None = None) -> Initializer:
    r"""Dirac-delta conv kernel: a conv with it copies its input (torch's ``dirac_``).

    For a 1-D, 2-D or 3-D conv kernel, the centre tap connects input channel ``d`` of each
    group to output channel ``d`` of the same group, for ``d < min(in_per_group,
    out_per_group)``; every other entry is zero. With as many output as input channels and
    ``padding="SAME"`` (stride 1) the convolution is the identity map; with more output
    channels the extra ones are zero, with fewer the extra inputs are dropped.

    Shapes follow the conv layer's kernel: flax ``(*spatial, in // groups, out)`` with
    ``feature_group_count=groups``; torch ``(out, in // groups, *spatial)`` with
    ``layout="torch"``. ``groups`` must divide ``out``. The key is ignored.

    Centre tap: ``(k - 1) // 2`` (torch uses ``k // 2``; they differ only for even k, where
    ``(k - 1) // 2`` is the one that makes a ``"SAME"``/``"same"`` conv the identity).

    Example:
      >>> w = jaxinit.dirac()(jax.random.key(0), (3, 3, 2, 2))  # (h, w, in, out)
      >>> w[1, 1]  # the centre tap maps each channel to itself
      Array([[1., 0.],
             [0., 1.]], dtype=float32)
      >>> float(w.sum())
      2.0
    """
    fn = "dirac"
    groups = _check_int(fn, "groups", groups, minimum=1)
    layout = _check_layout(fn, layout)

    def init(key: Array | None, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        shape = check_shape(fn, shape)
        dtype = check_dtype(fn, dtype, allow_complex=True)
        _check_conv_rank(fn, shape, layout)
        flax_shape = shape if layout == "flax" else torch_to_flax_shape(shape)
        c_in, c_out = flax_shape[-2:]
        if c_out % groups:
            raise ValueError(
                f"{fn}: groups={groups} does not divide the {c_out} output channels of shape"
                f" {shape} (layout={layout!r})"
            )
        per_group = c_out // groups
        d = np.arange(min(per_group, c_in))
        ins = np.tile(d, groups)
        outs = (np.arange(groups)[:, None] * per_group + d).reshape(-1)
        taps = (*_centre(flax_shape[:-2]), ins, outs)
        w = jnp.zeros(flax_shape, dtype).at[taps].set(1)
        return w if layout == "flax" else flax_to_torch(w)

    return with_out_sharding(fn, init)


@initializer
def identity(gain: float = 1.0, dtype: DTypeLike = None) -> Initializer:
    r"""``gain`` times the identity matrix, for any 2-D shape (Keras ``Identity``, torch ``eye_``).

    Rectangular shapes get ones on the main diagonal, :math:`W_{ij} = \mathrm{gain}\,
    [i = j]`. The transpose of ``eye(n, m)`` is ``eye(m, n)``, so the result is the same in
    flax ``(in, out)`` and torch ``(out, in)`` layouts. The key is ignored. IRNN (Le et al.
    2015) initialises the recurrent matrix of a ReLU RNN this way. Alias ``eye``.

    Example:
      >>> jaxinit.identity(gain=2.0)(jax.random.key(0), (2, 3))
      Array([[2., 0., 0.],
             [0., 2., 0.]], dtype=float32)
    """
    fn = "identity"
    check_finite(fn, "gain", gain)
    gain = as_real(fn, "gain", gain)

    def init(key: Array | None, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        shape = check_shape(fn, shape)
        dtype = check_dtype(fn, dtype, allow_complex=True)
        check_in_dtype(fn, "gain", gain, dtype)
        if len(shape) != 2:
            raise ValueError(
                f"{fn}: shape {shape} has rank {len(shape)}; the identity needs a 2-D shape"
                " (use dirac for conv kernels)"
            )
        return jnp.eye(*shape, dtype=dtype) * jnp.array(gain, dtype)

    return with_out_sharding(fn, init)


eye = identity
"""The same function as :func:`identity` (torch's ``eye_``)."""


def _zero_matrix(c_in: int, c_out: int, dtype: np.dtype) -> Array:
    """ZerO's matrix for an ``(in, out)`` flax kernel, i.e. the transpose of the paper's W."""
    if c_out <= c_in:
        return jnp.eye(c_in, c_out, dtype=dtype)
    m = (c_out - 1).bit_length()  # ceil(log2(out)), exact for ints
    c = jnp.array(2.0 ** (-m / 2), dtype)
    # Sylvester Hadamard entries: H[i, j] = (-1)^popcount(i & j); only the used block is built.
    i = jnp.arange(c_in, dtype=jnp.uint32)[:, None]
    j = jnp.arange(c_out, dtype=jnp.uint32)[None, :]
    odd = jax.lax.population_count(i & j) & jnp.uint32(1)
    return jnp.where(odd == 0, c, -c)


@initializer
def zero_init(dtype: DTypeLike = None, *, layout: Layout | None = None) -> Initializer:
    r"""ZerO (Zhao, Schäfer & Anandkumar 2021): deterministic zeros, ones and Hadamard signs.

    For a layer :math:`y = W x` with :math:`W \in \mathbb R^{P \times Q}` (P = out, Q = in),
    Algorithm 1 of the paper:

    * :math:`P \le Q`: :math:`W = I^*`, the partial identity (``eye(P, Q)``): the first P
      inputs are copied (:math:`P = Q`: the identity).
    * :math:`P > Q`: :math:`W = c\, I^* H_m I^*`, the top-left :math:`P \times Q` block of
      the Sylvester Hadamard matrix :math:`H_m` of size :math:`2^m`,
      :math:`m = \lceil \log_2 P \rceil`, entries :math:`(-1)^{\mathrm{popcount}(i \wedge j)}`.

    Normalisation: :math:`c = 2^{-m/2}` (the Hadamard matrix scaled to be orthogonal), as in
    the authors' reference code (``hadamard(p) / 2**(clog_m / 2)``); the printed Algorithm 1
    gives :math:`c = 2^{-(m-1)/2}`, a factor √2 larger. When P is a power of two the columns
    are orthonormal, :math:`W^\top W = I_Q`.

    Flax kernels ``(in, out)`` store :math:`W^\top`; conv kernels (rank 3–5, Algorithm 2)
    get the matrix at the centre tap ``(k - 1) // 2`` (the paper's ⌊k/2⌋ for its odd k) and
    zeros elsewhere. ``layout="torch"`` returns the same kernel as ``(out, in, *spatial)``.
    The key is ignored: every call gives the same array.

    Example:
      >>> jaxinit.zero_init()(jax.random.key(0), (3, 2))  # (in, out), out <= in: partial identity
      Array([[1., 0.],
             [0., 1.],
             [0., 0.]], dtype=float32)
      >>> w = jaxinit.zero_init()(jax.random.key(0), (2, 4))  # out > in: scaled Hadamard signs
      >>> w @ w.T  # out a power of two: orthonormal columns of W (rows of the flax kernel)
      Array([[1., 0.],
             [0., 1.]], dtype=float32)
    """
    fn = "zero_init"
    layout = _check_layout(fn, layout)

    def init(key: Array | None, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        shape = check_shape(fn, shape)
        dtype = check_dtype(fn, dtype, allow_complex=True)
        if len(shape) not in (2, 3, 4, 5):
            raise ValueError(
                f"{fn}: shape {shape} has rank {len(shape)}; ZerO needs a matrix (rank 2) or a"
                " 1-D, 2-D or 3-D conv kernel (rank 3, 4 or 5)"
            )
        flax_shape = shape if layout == "flax" else torch_to_flax_shape(shape)
        mat = _zero_matrix(flax_shape[-2], flax_shape[-1], dtype)
        if len(shape) == 2:
            w = mat
        else:
            w = jnp.zeros(flax_shape, dtype).at[_centre(flax_shape[:-2])].set(mat)
        return w if layout == "flax" else flax_to_torch(w)

    return with_out_sharding(fn, init)


def _as_units(fn: str, shape: Shape, layout: str) -> tuple[int, int]:
    """``(units, fan_in)``: the output axis, and every other axis flattened."""
    if len(shape) < 2:
        raise ValueError(f"{fn}: shape {shape} has rank {len(shape)}; a weight needs rank >= 2")
    if 0 in shape:
        raise ValueError(f"{fn}: shape {shape} has a zero dimension")
    units = shape[-1] if layout == "flax" else shape[0]
    return units, math.prod(shape) // units


def _from_units(m: Array, shape: Shape, layout: str) -> Array:
    """Inverse of :func:`_as_units` for an array ``m`` of shape ``(units, fan_in)``."""
    if layout == "flax":
        return jnp.reshape(m.T, shape)
    return jnp.reshape(m, shape)


def _random_subsets(key: Array, rows: int, n: int, k: int) -> Array:
    """For each of ``rows`` rows, ``k`` distinct indices in ``[0, n)``, uniformly at random."""
    idx = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (rows, n))
    return jax.random.permutation(key, idx, axis=1, independent=True)[:, :k]


# One compiled program per shape: op-by-op dispatch of the few ops below costs more than them.
@partial(jax.jit, static_argnums=range(1, 8))
def _sparse_draw(key, shape, layout, units, fan_in, k, scale, dtype):
    key_pos, key_val = jax.random.split(key)
    cols = _random_subsets(key_pos, units, fan_in, k)
    work = wide_dtype(dtype)  # half precision: drawn in float32, rounded once
    vals = (jax.random.normal(key_val, (units, k), work) * jnp.array(scale, work)).astype(dtype)
    rows = jnp.arange(units)[:, None]
    m = jnp.zeros((units, fan_in), dtype).at[rows, cols].set(vals)
    return _from_units(m, shape, layout)


@partial(jax.jit, static_argnums=range(1, 7))
def _torch_sparse_draw(key, c_in, c_out, num_zeros, std, layout, dtype):
    key_pos, key_val = jax.random.split(key)
    work = wide_dtype(dtype)  # half precision: drawn in float32, rounded once
    m = (jax.random.normal(key_val, (c_in, c_out), work) * jnp.array(std, work)).astype(dtype)
    if num_zeros:
        cols = _random_subsets(key_pos, c_in, c_out, num_zeros)
        m = m.at[jnp.arange(c_in)[:, None], cols].set(0)
    return m if layout == "flax" else m.T


@initializer
def sparse(
    k: int = 15, scale: float = 1.0, dtype: DTypeLike = None, *, layout: Layout | None = None
) -> Initializer:
    r"""Martens (2010) sparse init: each unit has exactly ``k`` nonzero incoming weights.

    For every output unit, ``k`` of its ``fan_in`` incoming weights (input channels times
    receptive field) are chosen uniformly without replacement and drawn from
    :math:`\mathcal N(0, \mathrm{scale}^2)`; all others are zero. Martens used k = 15 and
    unit Gaussians, so the total input of a unit does not shrink with width (variance
    :math:`k\,\mathrm{scale}^2\,\mathrm{Var}(x)` whatever fan_in is), and units differ.

    ``fan_in < k`` is an error rather than a silently dense layer: pass a smaller ``k``.

    Args:
      k: nonzero incoming weights per unit, >= 1.
      scale: standard deviation of the nonzero weights, > 0.
      dtype: default dtype (float).
      layout: ``"flax"`` (default; units on the last axis) or ``"torch"``/``"equinox"``
        (units on axis 0).

    Example:
      >>> w = jaxinit.sparse(k=4)(jax.random.key(0), (32, 8))  # (fan_in, units)
      >>> (w != 0).sum(axis=0)  # k nonzero incoming weights per unit
      Array([4, 4, 4, 4, 4, 4, 4, 4], dtype=int32)
    """
    fn = "sparse"
    k = _check_int(fn, "k", k, minimum=1)
    check_positive(fn, "scale", scale)
    scale = as_real(fn, "scale", scale)  # a static argument of the jitted draw: hashable
    layout = _check_layout(fn, layout)

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        check_key(fn, key)
        shape = check_shape(fn, shape)
        dtype = check_dtype(fn, dtype, allow_complex=False)
        check_in_dtype(fn, "scale", scale, dtype, allow_underflow=False, reach=7)
        units, fan_in = _as_units(fn, shape, layout)
        if fan_in < k:
            raise ValueError(
                f"{fn}: shape {shape} (layout={layout!r}) gives each unit fan_in={fan_in} <"
                f" k={k} incoming weights; pass k <= {fan_in}"
            )
        return _sparse_draw(key, shape, layout, units, fan_in, k, scale, dtype)

    return with_out_sharding(fn, init)


@initializer
def torch_sparse(
    sparsity: float, std: float = 0.01, dtype: DTypeLike = None, *, layout: Layout | None = None
) -> Initializer:
    r"""torch's ``sparse_(tensor, sparsity, std)`` for 2-D weights, in either layout.

    torch fills its ``(rows, cols) = (out, in)`` weight with :math:`\mathcal N(0,
    \mathrm{std}^2)` and then, in every column (every input unit), zeroes
    :math:`\lceil \mathrm{sparsity}\cdot\mathrm{out} \rceil` entries chosen at random. Here
    the same holds for flax kernels ``(in, out)``: each row (input unit) has exactly
    ``ceil(sparsity * out)`` zeros among its ``out`` outgoing weights; ``layout="torch"``
    takes torch's ``(out, in)`` shape and zeroes within columns, as torch.

    Args:
      sparsity: fraction of zeros per input unit, in [0, 1).
      std: standard deviation of the nonzero weights, > 0 (torch's default 0.01).
      dtype: default dtype (float).
      layout: ``"flax"`` (default) or ``"torch"``/``"equinox"``.

    Example:
      >>> w = jaxinit.torch_sparse(0.25, layout="torch")(jax.random.key(0), (8, 5))  # (out, in)
      >>> (w == 0).sum(axis=0)  # ceil(0.25 × 8) zeros in every column, as torch
      Array([2, 2, 2, 2, 2], dtype=int32)
    """
    fn = "torch_sparse"
    check_finite(fn, "sparsity", sparsity)
    sparsity = as_real(fn, "sparsity", sparsity)
    if not 0 <= sparsity < 1:
        raise ValueError(f"{fn}: sparsity must be in [0, 1), got {sparsity!r}")
    check_positive(fn, "std", std)
    std = as_real(fn, "std", std)  # a static argument of the jitted draw: hashable
    layout = _check_layout(fn, layout)

    def init(key: Array, shape: Shape, dtype: DTypeLike = dtype) -> Array:
        check_key(fn, key)
        shape = check_shape(fn, shape)
        dtype = check_dtype(fn, dtype, allow_complex=False)
        check_in_dtype(fn, "std", std, dtype, allow_underflow=False, reach=7)
        if len(shape) != 2:
            raise ValueError(
                f"{fn}: shape {shape} has rank {len(shape)}; torch's sparse_ is 2-D only"
            )
        c_out, c_in = shape[::-1] if layout == "flax" else shape
        return _torch_sparse_draw(key, c_in, c_out, math.ceil(sparsity * c_out), std, layout, dtype)

    return with_out_sharding(fn, init)


# --------------------------------------------------------------------------- registry
_SAXE = (
    "Saxe, McClelland & Ganguli 2013, Exact solutions to the nonlinear dynamics of learning"
    " in deep linear neural networks"
)

register(
    Scheme(
        "orthogonal",
        orthogonal,
        "structured",
        "uniform on the orthogonal group (QR of a Gaussian, sign-fixed)",
        "scale² / max(rows, cols); QᵀQ = scale²·I on the smaller side",
        ("none", "tanh", "linear"),
        _SAXE,
        aliases=("Orthogonal", "OrthogonalInitializer", "orthogonal_"),
        notes="bit-identical to jax.nn.initializers.orthogonal; bf16/fp16 via float32 QR",
    )
)


def _torch_orthogonal(
    gain: float = 1.0, *, layout: Layout | None = None, dtype: DTypeLike = None
) -> Initializer:
    """torch ``orthogonal_(tensor, gain)``: :func:`orthogonal` with torch's argument name."""
    return orthogonal(scale=gain, dtype=dtype, layout=layout)


_registry._SPELLINGS["orthogonal_"] = _torch_orthogonal

_XIAO = (
    "Xiao et al. 2018, Dynamical Isometry and a Mean Field Theory of CNNs: How to Train"
    " 10,000-Layer Vanilla Convolutional Neural Networks"
)

for _s in (
    Scheme(
        "delta_orthogonal",
        delta_orthogonal,
        "structured",
        "orthogonal (in, out) matrix at the centre tap, zeros elsewhere",
        "centre tap scale² / out; other taps 0",
        ("tanh", "none"),
        _XIAO,
        aliases=("DeltaOrthogonal", "ConvolutionDeltaOrthogonal"),
        notes="bit-identical to jax.nn.initializers.delta_orthogonal; needs in <= out",
    ),
    Scheme(
        "dirac",
        dirac,
        "structured",
        "deterministic: 1 at the centre tap for channel d -> d in each group",
        "0 (a conv with it is the identity map)",
        ("none",),
        "PyTorch torch.nn.init.dirac_; Zagoruyko & Komodakis 2017, DiracNets",
        aliases=("dirac_", "Dirac"),
        keyed=False,
    ),
    Scheme(
        "identity",
        identity,
        "structured",
        "deterministic: gain on the main diagonal",
        "0 (gain on the diagonal)",
        ("none", "relu"),
        "Le, Jaitly & Hinton 2015 (IRNN); Keras Identity, PyTorch eye_",
        aliases=("Identity", "IdentityInitializer", "eye", "eye_"),
        keyed=False,
    ),
    Scheme(
        "zero_init",
        zero_init,
        "research",
        "deterministic: partial identity, or 2^(-m/2)·Hadamard block when out > in",
        "0 (entries 0, 1 or ±2^(-m/2), m = ⌈log2 out⌉)",
        ("relu",),
        "Zhao, Schäfer & Anandkumar 2021, ZerO Initialization: Initializing Neural Networks"
        " with only Zeros and Ones (TMLR 2022)",
        aliases=("ZerO", "zero_initialization"),
        keyed=False,
    ),
    Scheme(
        "sparse",
        sparse,
        "research",
        "k nonzero N(0, scale²) incoming weights per unit, the rest 0",
        "k·scale² / fan_in (per entry)",
        ("tanh", "logistic"),
        "Martens 2010, Deep learning via Hessian-free optimization",
        aliases=("sparse_martens", "martens_sparse"),
    ),
    Scheme(
        "torch_sparse",
        torch_sparse,
        "torch",
        "N(0, std²) with ⌈sparsity·out⌉ zeros per input unit",
        "(1 − ⌈sparsity·out⌉/out)·std²",
        (),
        "PyTorch torch.nn.init.sparse_ (after Martens 2010)",
        aliases=("sparse_",),
    ),
):
    register(_s)
