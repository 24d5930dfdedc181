r"""Mean-field signal propagation in wide random fully connected networks.

For a network :math:`h^l = W^l \phi(h^{l-1}) + b^l` with :math:`W^l_{ij} \sim \mathcal N(0,
\sigma_w^2 / N_{l-1})` and :math:`b^l_i \sim \mathcal N(0, \sigma_b^2)`, in the limit of
infinite width the pre-activations are Gaussian and their statistics obey deterministic
maps (Poole et al. 2016; Schoenholz et al. 2017, *Deep Information Propagation*):

* length map  :math:`q^l = \sigma_w^2 \int Dz\, \phi(\sqrt{q^{l-1}} z)^2 + \sigma_b^2`,
  with fixed point :math:`q^*`;
* slope :math:`\chi_1 = \sigma_w^2 \int Dz\, \phi'(\sqrt{q^*} z)^2`: the mean squared
  singular value of one layer's Jacobian, the factor by which gradient variance grows per
  layer going backwards. :math:`\chi_1 = 1` is the order–chaos critical line;
* correlation map :math:`c^l = \big(\sigma_w^2 \int Dz_1 Dz_2\, \phi(u_1)\phi(u_2) +
  \sigma_b^2\big)/q^*`, :math:`u_1 = \sqrt{q^*} z_1`, :math:`u_2 = \sqrt{q^*}(c z_1 +
  \sqrt{1-c^2} z_2)`, with fixed point :math:`c^*` (1 in the ordered phase);
* depth scales :math:`\xi_q^{-1} = -\ln\big(\chi_1 + \sigma_w^2 \int Dz\,
  \phi''(\sqrt{q^*} z)\phi(\sqrt{q^*} z)\big)` and :math:`\xi_c = -1/\ln\chi_c`,
  :math:`\chi_c = \sigma_w^2 \int Dz_1 Dz_2\, \phi'(u_1)\phi'(u_2)` at :math:`c^*`.
  Schoenholz et al. find that networks train when depth :math:`\lesssim 6\,\xi_c`.
  ξ_q's argument is the slope :math:`dq^{l+1}/dq^l` at :math:`q^*`; it is integrated in
  :math:`x = \sqrt{q^*} z` (``length_slope``), where Gauss–Hermite in :math:`z` misses the
  narrow spike of a saturating activation's derivatives at large :math:`q^*`.

:math:`Dz` is the standard Gaussian measure; every integral is a Gauss–Hermite sum with
probabilists' nodes (``numpy.polynomial.hermite_e.hermegauss``). An even number of nodes
keeps the node :math:`z = 0` out, so ReLU's kink is never evaluated and its integrals are
exact (:math:`\int Dz\, \mathrm{relu}(\sqrt q z)^2 = q/2` by symmetry of the nodes).

The activation may be a name from :data:`jaxinit.ACTIVATIONS` or any elementwise JAX
callable; derivatives come from ``jax.grad``. Integrands are evaluated in float64 (JAX's
x64 mode is switched on locally), sums and fixed-point iterations run in NumPy float64, and
every function broadcasts over arrays of :math:`\sigma_w^2, \sigma_b^2` (phase diagrams).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._activations import activation_fn
from jaxinit._checks import as_int, as_real, check_positive

Activation = str | Callable[[jax.Array], jax.Array]

# 1-D Gauss–Hermite nodes, even (see the module docstring). A saturating activation's
# derivative is a spike of width ~1/√q in z: with 160 nodes ∫Dz sech⁴(√q z) is exact to
# 1e-6 for q <= 3 and to 0.3 % at q = 10 (checked against a 2e5-point trapezoid rule).
_NODES = 160
_NODES_2D = 32  # per axis for the correlation map (32² points)
_NODES_SLOPE = 2000  # trapezoid nodes for the slope of the length map (ξ_q), even
_Q_MAX = 1e12  # a length this large counts as divergent (unbounded activations, chaos)
# The largest σ_w², σ_b² accepted: beyond, a bounded activation's q* (≈ σ_w² + σ_b²) would
# come near _Q_MAX and read as divergent, and its derivatives' spike (width 1/√q) is far
# below the quadrature's resolution.
_VAR_MAX = 1e6


class MeanField(NamedTuple):
    """Mean-field quantities at one or many points :math:`(\\sigma_w^2, \\sigma_b^2)`.

    Attributes:
      q_star: fixed point of the length map (``inf`` where it diverges).
      chi_1: :math:`\\chi_1` at ``q_star``; ``> 1`` chaotic, ``< 1`` ordered.
      c_star: fixed point of the correlation map (1 in the ordered phase).
      chi_c: slope of the correlation map at ``c_star``.
      xi_q: depth scale of the length's convergence to ``q_star``.
      xi_c: depth scale of correlation propagation, :math:`-1/\\ln\\chi_c` (``inf`` on the
        critical line).
    """

    q_star: np.ndarray
    chi_1: np.ndarray
    c_star: np.ndarray
    chi_c: np.ndarray
    xi_q: np.ndarray
    xi_c: np.ndarray


class Propagation(NamedTuple):
    """Predicted per-layer statistics of a finite-depth random network.

    Attributes:
      q: :math:`q^l`, the second moment of layer ``l``'s pre-activations, ``l = 0..depth-1``.
      gradient: second moment of :math:`\\partial L / \\partial h^l` relative to the last
        layer's (which is 1 for a unit-variance cotangent at a linear output layer).
    """

    q: np.ndarray
    gradient: np.ndarray


# --------------------------------------------------------------------------- quadrature


@functools.cache
def _gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with :math:`\\sum_i w_i f(z_i) \\approx \\int Dz\\, f(z)`."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / math.sqrt(2 * math.pi)


def elementwise_derivative(f: Callable) -> Callable:
    """φ' for an elementwise φ: a JVP with a tangent of ones."""
    return lambda x: jax.jvp(f, (x,), (jnp.ones_like(x),))[1]


@functools.cache
def _programs(phi: Callable) -> dict[str, Callable]:
    """Jitted float64 kernels for one activation (cached by the callable's identity)."""
    d1 = elementwise_derivative(phi)
    d2 = elementwise_derivative(d1)
    z, w = (jnp.asarray(a) for a in _gauss_hermite(_NODES))
    z2, w2 = _gauss_hermite(_NODES_2D)
    za, zb = (jnp.asarray(a.ravel()) for a in np.meshgrid(z2, z2, indexing="ij"))
    ww = jnp.asarray(np.outer(w2, w2).ravel())
    t_nodes = jnp.linspace(-1.0, 1.0, _NODES_SLOPE)  # trapezoid nodes for length_slope

    def outer(a, nodes):  # a[..., None] * nodes, with explicit ranks
        return a[..., None] * nodes.reshape((1,) * a.ndim + nodes.shape)

    def gauss(f, q):
        return f(outer(jnp.sqrt(q), z)) @ w

    def length(q, sw2, sb2):
        return sw2 * gauss(lambda x: phi(x) ** 2, q) + sb2

    def chi(q, sw2):
        return sw2 * gauss(lambda x: d1(x) ** 2, q)

    def curvature(q, sw2):
        return sw2 * gauss(lambda x: d2(x) * phi(x), q)

    def pair(f, c, q):
        s, cc = jnp.broadcast_arrays(jnp.sqrt(q), jnp.clip(c, -1.0, 1.0))
        u1 = outer(s, za)
        u2 = outer(s * cc, za) + outer(s * jnp.sqrt(1.0 - cc**2), zb)
        return (f(u1) * f(u2)) @ ww

    def correlation(c, q, sw2, sb2):
        return (sw2 * pair(phi, c, q) + sb2) / q

    def iterate(step, x0, lo, hi, tol, max_iter):
        # Newton on x = f(x) where f contracts (f' < 1) and the step stays above ``lo``,
        # plain fixed-point iteration elsewhere (e.g. while diverging): quadratic
        # convergence except next to the critical line. All points move until all stop.
        def cond(state):
            i, _, moving = state
            return (i < max_iter) & jnp.any(moving)

        def body(state):
            i, x, moving = state
            fx, slope = step(x)
            newton = x - (fx - x) / jnp.where(slope < 1.0, slope - 1.0, -1.0)
            new = jnp.where((slope < 1.0) & (newton > lo) & (newton < hi), newton, fx)
            new = jnp.where(jnp.isfinite(new) & (new < _Q_MAX), new, jnp.inf)
            still = moving & (jnp.abs(new - x) > tol * jnp.maximum(1.0, jnp.abs(new)))
            still = still & jnp.isfinite(new)
            return i + 1, jnp.where(moving, new, x), still

        moving = jnp.ones(x0.shape, bool)
        return jax.lax.while_loop(cond, body, (0, x0, moving))[1]

    def q_star(sw2, sb2, q0, tol, max_iter):
        # dL/dq = σ_w² ∫Dz (φ'² + φφ'') by Stein's lemma: the same slope as ξ_q's.
        def step(q):
            return length(q, sw2, sb2), chi(q, sw2) + curvature(q, sw2)

        return iterate(step, q0, 0.0, jnp.inf, tol, max_iter)

    def c_star(q, sw2, sb2, c0, tol, max_iter):
        # Plain iteration only: Newton would also find the unstable fixed points (c = 0 for
        # an odd φ without bias is one in the chaotic phase... and c = 1 is another).
        def step(c):
            return jnp.clip(correlation(c, q, sw2, sb2), -1.0, 1.0), jnp.full_like(c, 2.0)

        return iterate(step, c0, -1.0, 1.0, tol, max_iter)

    def length_slope(q, sw2):
        # dL/dq = σ_w² ∫ (φ'² + φφ'')(x) N(x; 0, q) dx, integrated in x rather than in z:
        # φ's derivatives vary on a scale of 1 in x while the Gaussian has width √q, and
        # Gauss–Hermite in z misses the spike of width 1/√q (for tanh at q* ≈ 16 it gave a
        # negative slope, so ξ_q was NaN). x = a·sinh(u), a = min(1, √q), resolves both
        # scales; the trapezoid rule in u over ±12 standard deviations (an even number of
        # nodes keeps x = 0, ReLU's kink, out) is exact to ~1e-9 relative for q in
        # [1e-12, 1e12] (checked against scipy.integrate.quad).
        a = jnp.minimum(1.0, jnp.sqrt(q))
        u_max = jnp.arcsinh(12.0 * jnp.sqrt(q) / a)
        u = outer(u_max, t_nodes)
        x = outer(a, jnp.ones_like(t_nodes)) * jnp.sinh(u)
        dx = (a * u_max * (2.0 / (t_nodes.size - 1)))[..., None] * jnp.cosh(u)
        qq = q[..., None]
        density = jnp.exp(-(x * x) / (2.0 * qq)) / jnp.sqrt(2.0 * jnp.pi * qq)
        f = d1(x) ** 2 + phi(x) * d2(x)
        return sw2 * jnp.sum(f * density * dx, axis=-1)

    def slopes(q, c, sw2):
        return chi(q, sw2), length_slope(q, sw2), sw2 * pair(d1, c, q)

    return {
        "length": jax.jit(length),
        "chi": jax.jit(chi),
        "correlation": jax.jit(correlation),
        "q_star": jax.jit(q_star, static_argnums=4),
        "c_star": jax.jit(c_star, static_argnums=5),
        "slopes": jax.jit(slopes),
    }


def _run(activation: Activation, program: str, *args: Any, static: Any = ()) -> Any:
    """Run a float64 kernel on NumPy inputs and return NumPy float64 outputs."""
    with jax.enable_x64(True):
        xs = [jnp.asarray(a, jnp.float64) for a in args]
        out = _programs(activation_fn(activation))[program](*xs, *static)
        return jax.tree.map(lambda a: np.asarray(a, np.float64), out)


def _check_variances(fn: str, sw2: Any, sb2: Any = 0.0, **nonneg: Any) -> None:
    """σ_w² > 0 and σ_b² >= 0 (and every ``nonneg`` array >= 0), finite, named by ``fn``."""
    items = [("weight_variance", sw2, False), ("bias_variance", sb2, True)]
    items += [(arg, a, True) for arg, a in nonneg.items()]
    for arg, a, allow_zero in items:
        a = np.asarray(a, np.float64)
        bad = ~np.isfinite(a) | ((a < 0) if allow_zero else (a <= 0))
        if bad.any():  # report the first offending element itself (NaN as nan)
            check_positive(fn, arg, a[bad].flat[0], allow_zero=allow_zero)
        if arg in ("weight_variance", "bias_variance") and (a > _VAR_MAX).any():
            raise ValueError(
                f"{fn}: {arg} must be <= {_VAR_MAX:g}, got {float(a[a > _VAR_MAX].flat[0])!r}:"
                " beyond, the mean-field integrals are outside what the quadrature resolves"
            )


def _check_iteration(fn: str, tol: Any, max_iter: Any) -> int:
    check_positive(fn, "tol", tol)
    return as_int(fn, "max_iter", max_iter, minimum=1)


def _as_arrays(*xs: Any) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(x, np.float64) for x in np.broadcast_arrays(*xs))


# --------------------------------------------------------------------------- maps


def length_map(
    activation: Activation, q: Any, weight_variance: Any, bias_variance: Any = 0.0
) -> np.ndarray:
    r""":math:`q \mapsto \sigma_w^2 \int Dz\, \phi(\sqrt q z)^2 + \sigma_b^2` (Poole et al.
    2016, eq. 3). Broadcasts over ``q`` and the variances.

    Example:
      >>> round(float(jaxinit.length_map("relu", 1.0, 2.0)), 4)  # σ_w² E[relu(√q z)²] = q
      1.0
      >>> round(float(jaxinit.length_map("linear", 1.0, 1.0, 0.5)), 4)  # + σ_b²
      1.5
    """
    _check_variances("length_map", weight_variance, bias_variance, q=q)
    return _run(activation, "length", *_as_arrays(q, weight_variance, bias_variance))


def chi(activation: Activation, q: Any, weight_variance: Any) -> np.ndarray:
    r""":math:`\sigma_w^2 \int Dz\, \phi'(\sqrt q z)^2`: the backward growth of gradient
    variance through a layer whose pre-activations have second moment ``q``; at ``q*`` this
    is :math:`\chi_1`.

    Example:
      >>> round(float(jaxinit.chi("relu", 1.0, 2.0)), 4)  # σ_w² = 2: 1, the edge of chaos
      1.0
      >>> round(float(jaxinit.chi("tanh", 1.0, 1.0)), 2)  # below 1: gradients shrink at q = 1
      0.46
    """
    _check_variances("chi", weight_variance, q=q)
    return _run(activation, "chi", *_as_arrays(q, weight_variance))


def q_star(
    activation: Activation,
    weight_variance: Any,
    bias_variance: Any = 0.0,
    *,
    q0: float = 1.0,
    tol: float = 1e-12,
    max_iter: int = 1000,
) -> np.ndarray:
    r"""The fixed point :math:`q^*` of :func:`length_map`, by iterating it from ``q0``.

    Where :math:`\sigma_b^2 = 0` and the map contracts to zero, :math:`q^* = 0` (reached
    only slowly next to the critical line); where it grows without bound (e.g. ReLU with
    :math:`\sigma_w^2 > 2`), ``inf``. At a marginal point such as ReLU with
    :math:`\sigma_w^2 = 2, \sigma_b^2 = 0` every q is fixed and ``q0`` is returned.

    Example:
      >>> round(float(jaxinit.q_star("linear", 0.5, 1.0)), 4)  # q* = σ_b² / (1 − σ_w²)
      2.0
    """
    fn = "q_star"
    sw2, sb2 = _as_arrays(weight_variance, bias_variance)
    _check_variances(fn, sw2, sb2)
    check_positive(fn, "q0", q0, allow_zero=True)
    if float(q0) > _Q_MAX:
        raise ValueError(f"{fn}: q0 must be <= {_Q_MAX:g} (larger counts as divergent), got {q0!r}")
    max_iter = _check_iteration(fn, tol, max_iter)
    return _run(activation, "q_star", sw2, sb2, np.full(sw2.shape, q0), tol, static=(max_iter,))


def correlation_map(
    activation: Activation, c: Any, q: Any, weight_variance: Any, bias_variance: Any = 0.0
) -> np.ndarray:
    r""":math:`c \mapsto (\sigma_w^2 \int Dz_1 Dz_2\, \phi(u_1)\phi(u_2) + \sigma_b^2)/q` at a
    length ``q`` (normally ``q*``); Poole et al. 2016, eq. 5.

    Example:
      >>> round(float(jaxinit.correlation_map("linear", 0.3, 1.0, 1.0)), 4)  # linear: c kept
      0.3
    """
    _check_variances("correlation_map", weight_variance, bias_variance, q=q)
    if np.any(np.asarray(q, np.float64) == 0):
        raise ValueError(
            f"correlation_map: q must be > 0 (a correlation is relative to the length q), got {q!r}"
        )
    try:
        cs = np.asarray(c, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"correlation_map: c must be a number or an array, got {c!r}") from None
    if np.any(np.abs(cs) > 1) or not np.all(np.isfinite(cs)):
        raise ValueError(f"correlation_map: c must be a correlation in [-1, 1], got {c!r}")
    return _run(activation, "correlation", *_as_arrays(c, q, weight_variance, bias_variance))


def c_star(
    activation: Activation,
    weight_variance: Any,
    bias_variance: Any = 0.0,
    *,
    q: Any = None,
    c0: float = 0.5,
    tol: float = 1e-9,
    max_iter: int = 300,
) -> np.ndarray:
    """The stable fixed point :math:`c^*` of :func:`correlation_map`, iterated from ``c0``.

    1 in the ordered phase (inputs become perfectly correlated), below 1 in the chaotic
    phase. ``q`` defaults to :func:`q_star`. ``c0`` is not 0: with an odd activation and
    no bias, 0 is a fixed point (unstable in the ordered phase).

    Example:
      >>> round(float(jaxinit.c_star("tanh", 1.0, 0.05)), 2)  # ordered phase: inputs become alike
      1.0
    """
    fn = "c_star"
    sw2, sb2 = _as_arrays(weight_variance, bias_variance)
    _check_variances(fn, sw2, sb2, **({} if q is None else {"q": q}))
    if q is not None and np.any(np.asarray(q, np.float64) == 0):
        raise ValueError(f"{fn}: q must be > 0 (a correlation is relative to the length q)")
    c0 = as_real(fn, "c0", c0)
    if not -1.0 <= c0 <= 1.0:
        raise ValueError(f"{fn}: c0 must be a correlation in [-1, 1], got {c0!r}")
    max_iter = _check_iteration(fn, tol, max_iter)
    q = _finite_q(q_star(activation, sw2, sb2) if q is None else np.broadcast_to(q, sw2.shape))
    # χ₁ is the slope of the correlation map at c = 1: where χ₁ <= 1, c = 1 is the stable
    # fixed point (approached only slowly near the critical line, so set it, don't iterate).
    ordered = chi(activation, q, sw2) <= 1.0
    c = np.ones(sw2.shape)
    if not ordered.all():
        chaotic = ~ordered
        c0s = np.full(int(chaotic.sum()), c0)
        args = (q[chaotic], sw2[chaotic], sb2[chaotic], c0s, tol)
        c[chaotic] = _run(activation, "c_star", *args, static=(max_iter,))
    return c


def _finite_q(q: np.ndarray) -> np.ndarray:
    # ReLU-like maps are scale-invariant: evaluate slopes at a finite q where q* is 0 or inf.
    return np.clip(np.where(np.isfinite(q), q, _Q_MAX), 1e-12, _Q_MAX)


def mean_field(activation: Activation, weight_variance: Any, bias_variance: Any = 0.0) -> MeanField:
    r"""All mean-field quantities at :math:`(\sigma_w^2, \sigma_b^2)` (arrays broadcast).

    >>> mf = jaxinit.mean_field("tanh", 2.5, 0.05)
    >>> bool(mf.chi_1 > 1), bool(mf.c_star < 1)  # chaotic phase: nearby inputs decorrelate
    (True, True)
    """
    sw2, sb2 = _as_arrays(weight_variance, bias_variance)
    _check_variances("mean_field", sw2, sb2)
    q = q_star(activation, sw2, sb2)
    qe = _finite_q(q)
    c = c_star(activation, sw2, sb2, q=qe)
    chi_1, slope, chi_c = _run(activation, "slopes", qe, c, sw2)
    with np.errstate(divide="ignore"):
        xi_q = np.abs(-1.0 / np.log(np.abs(slope)))  # |slope|: a negative one alternates
        xi_c = np.abs(-1.0 / np.log(chi_c))
    return MeanField(q, chi_1, c, chi_c, xi_q, xi_c)


def critical_weight_variance(
    activation: Activation,
    bias_variance: float = 0.0,
    *,
    lower: float = 1e-2,
    upper: float = 10.0,
    tol: float = 1e-9,
) -> np.ndarray:
    r"""The order–chaos critical line: the :math:`\sigma_w^2` with :math:`\chi_1 = 1` at each
    :math:`\sigma_b^2`, by bisection on :math:`\ln\sigma_w^2` (:math:`q^*` is recomputed at
    every trial point). ``nan`` where :math:`\chi_1 - 1` does not change sign in
    ``[lower, upper]``.

    ReLU: 2 for every :math:`\sigma_b^2` (He et al. 2015). tanh: 1 at
    :math:`\sigma_b^2 = 0`, growing with :math:`\sigma_b^2`.

    Example:
      >>> round(float(jaxinit.critical_weight_variance("relu")), 4)  # 2: He's variance
      2.0
    """
    _critical_checks("critical_weight_variance", bias_variance, lower, upper, tol)
    sb2 = np.asarray(bias_variance, np.float64)
    lo = np.full(sb2.shape, math.log(lower))
    hi = np.full(sb2.shape, math.log(upper))

    def excess(log_sw2):
        return mean_field_chi(activation, np.exp(log_sw2), sb2) - 1.0

    f_lo, f_hi = excess(lo), excess(hi)
    bracket = (f_lo < 0) & (f_hi > 0)
    n = math.ceil(math.log2(math.log(upper) - math.log(lower)) - math.log2(tol))
    n = min(n, 64)  # past float64 resolution of ln σ² a halving changes nothing
    for _ in range(n):
        mid = 0.5 * (lo + hi)
        up = excess(mid) > 0
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    return np.where(bracket, np.exp(0.5 * (lo + hi)), np.nan)


def _critical_checks(fn: str, bias_variance: Any, lower: Any, upper: Any, tol: Any) -> None:
    _check_variances(fn, 1.0, bias_variance)
    check_positive(fn, "lower", lower)
    check_positive(fn, "upper", upper)
    check_positive(fn, "tol", tol)
    if upper > _VAR_MAX:
        raise ValueError(f"{fn}: upper must be <= {_VAR_MAX:g} (a weight variance), got {upper!r}")
    if not lower < upper:
        raise ValueError(f"{fn}: lower={lower!r} must be smaller than upper={upper!r}")


def mean_field_chi(
    activation: Activation,
    weight_variance: float | np.ndarray,
    bias_variance: float | np.ndarray = 0.0,
) -> np.ndarray:
    r""":math:`\chi_1(\sigma_w^2, \sigma_b^2)` alone (cheaper than :func:`mean_field`)."""
    sw2, sb2 = _as_arrays(weight_variance, bias_variance)
    _check_variances("mean_field_chi", sw2, sb2)
    return chi(activation, _finite_q(q_star(activation, sw2, sb2)), sw2)


def critical_gain(activation: Activation, bias_variance: float = 0.0) -> float:
    r"""The gain :math:`g = \sqrt{\sigma_w^2}` that puts ``variance_scaling(g², "fan_in")`` on
    the critical line :math:`\chi_1 = 1` (zero-mean weights, bias variance
    ``bias_variance``).

    Compare with :func:`jaxinit.calculate_gain` (torch's table): ReLU √2 in both; tanh 1
    here at :math:`\sigma_b^2 = 0` against torch's 5/3, which is chaotic
    (:math:`\chi_1 \approx 1.21` at :math:`\sigma_w^2 = 25/9`): torch's 5/3 keeps the *forward*
    variance from shrinking, criticality keeps *correlations and gradients* alive.

    Example:
      >>> round(jaxinit.critical_gain("relu"), 4)  # √2: He's gain
      1.4142
      >>> round(jaxinit.critical_gain("tanh"), 4)  # σ_w = 1 at σ_b² = 0
      1.0
    """
    _check_variances("critical_gain", 1.0, bias_variance)
    return float(np.sqrt(critical_weight_variance(activation, bias_variance)))


def predict_propagation(
    activation: Activation,
    weight_variance: float,
    bias_variance: float = 0.0,
    *,
    depth: int,
    input_second_moment: float = 1.0,
) -> Propagation:
    r"""Mean-field prediction for an MLP of ``depth`` Dense layers, activation after every
    layer but the last, weights :math:`\mathcal N(0, \sigma_w^2/\text{fan\_in})`, biases
    :math:`\mathcal N(0, \sigma_b^2)`, inputs with mean square ``input_second_moment``.

    :math:`q^0 = \sigma_w^2 \overline{x^2} + \sigma_b^2`, then :func:`length_map`. Going
    backwards from a unit-variance cotangent at the linear output layer, and assuming
    gradients independent of the forward weights (Schoenholz et al. 2017):
    :math:`\tilde q^{l} = \chi(q^{l})\, \tilde q^{l+1}` for equal widths.

    Example:
      >>> p = jaxinit.predict_propagation("relu", 2.0, depth=5)  # He's variance
      >>> np.round(p.q, 4).tolist(), np.round(p.gradient, 4).tolist()  # constant with depth
      ([2.0, 2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0, 1.0])
    """
    fn = "predict_propagation"
    depth = as_int(fn, "depth", depth, minimum=1)
    _check_variances(fn, weight_variance, bias_variance, input_second_moment=input_second_moment)
    for arg, v in (("weight_variance", weight_variance), ("bias_variance", bias_variance)):
        if np.ndim(v):
            raise TypeError(f"{fn}: {arg} must be a number, got an array of shape {np.shape(v)}")
    q = np.empty(depth)
    q[0] = weight_variance * input_second_moment + bias_variance
    for i in range(depth):
        if i:
            q[i] = float(length_map(activation, q[i - 1], weight_variance, bias_variance))
        if not np.isfinite(q[i]):
            raise ValueError(
                f"{fn}: q overflows float64 at layer {i} (weight_variance={weight_variance!r},"
                f" bias_variance={bias_variance!r}): the forward signal explodes"
            )
    g = np.ones(depth)
    for i in range(depth - 2, -1, -1):
        g[i] = g[i + 1] * float(chi(activation, q[i], weight_variance))
    return Propagation(q, g)
