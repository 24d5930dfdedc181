"""Mean-field theory: closed forms, the published critical points, and simulation of wide
random networks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit


def test_length_map_closed_forms():
    q = np.array([0.1, 0.5, 2.0, 7.0])
    # ReLU: ∫Dz relu(√q z)² = q/2.
    np.testing.assert_allclose(jaxinit.length_map("relu", q, 2.0, 0.1), q + 0.1, rtol=1e-12)
    # erf: ∫Dz erf(√q z)² = (2/π) arcsin(2q / (1 + 2q)).
    expected = 1.5 * (2 / np.pi) * np.arcsin(2 * q / (1 + 2 * q)) + 0.3
    np.testing.assert_allclose(jaxinit.length_map("erf", q, 1.5, 0.3), expected, rtol=1e-6)
    # linear: σ_w² q + σ_b².
    np.testing.assert_allclose(jaxinit.length_map("linear", q, 0.7, 0.2), 0.7 * q + 0.2)


def test_chi_closed_forms():
    q = np.array([0.3, 1.0, 4.0])
    # ReLU: φ'² = 1 on half the line, so χ = σ_w² / 2 at every q.
    np.testing.assert_allclose(jaxinit.chi("relu", q, 2.0), 1.0, rtol=1e-12)
    # erf: φ' = (2/√π) e^{-x²}, ∫Dz φ'(√q z)² = (4/π) / √(1 + 4q).
    np.testing.assert_allclose(
        jaxinit.chi("erf", q, 1.0), 4 / np.pi / np.sqrt(1 + 4 * q), rtol=1e-6
    )


def test_relu_critical_point_is_he():
    # χ₁ = σ_w²/2 for ReLU whatever q*: critical at σ_w² = 2 for every σ_b² (He et al.).
    line = jaxinit.critical_weight_variance("relu", np.array([0.0, 0.05, 0.5]))
    np.testing.assert_allclose(line, 2.0, rtol=1e-6)
    mf = jaxinit.mean_field("relu", 2.0, 0.0)
    assert float(mf.chi_1) == pytest.approx(1.0, abs=1e-9)
    assert jaxinit.critical_gain("relu") == pytest.approx(jaxinit.calculate_gain("relu"), 1e-6)


def test_tanh_critical_line_tends_to_one_and_grows_with_bias():
    sb2 = np.array([1e-8, 1e-6, 1e-4, 0.01, 0.05, 0.3])
    line = jaxinit.critical_weight_variance("tanh", sb2)
    assert np.all(np.diff(line) > 0), line
    assert abs(line[0] - 1.0) < 0.01
    assert jaxinit.critical_gain("tanh", 0.0) == pytest.approx(1.0, abs=1e-6)
    # Small-q expansion: ∫Dz tanh² = q − 2q² + 17q³/3, ∫Dz sech⁴ = 1 − 2q + 7q², so on the
    # line σ_w² = 1 + 2q* − 3q*² and σ_b² = 4q*³/3: σ_w² − 1 ≈ 2 (3σ_b²/4)^{1/3}.
    np.testing.assert_allclose(line[:2] - 1.0, 2 * (0.75 * sb2[:2]) ** (1 / 3), rtol=0.05)
    # χ₁ really is 1 on the line, and the phases lie on either side of it.
    for s, w in zip(sb2[3:], line[3:], strict=True):
        chi = jaxinit.mean_field("tanh", [0.9 * w, w, 1.1 * w], s).chi_1
        assert chi[0] < 1 < chi[2]
        assert chi[1] == pytest.approx(1.0, abs=1e-6)


def test_torch_tanh_gain_is_chaotic():
    # torch's gain 5/3 keeps the forward variance up but lies in the chaotic phase.
    assert jaxinit.calculate_gain("tanh") == pytest.approx(5 / 3)
    mf = jaxinit.mean_field("tanh", (5 / 3) ** 2, 0.0)
    assert float(mf.chi_1) > 1.2
    assert float(mf.c_star) < 1e-3  # odd φ, no bias, chaos: inputs decorrelate fully


def test_selu_fixed_point_is_self_normalizing():
    # Klambauer et al. 2017: with Var(W) = 1/fan_in, SELU's fixed point is unit variance.
    mf = jaxinit.mean_field("selu", 1.0, 0.0)
    assert float(mf.q_star) == pytest.approx(1.0, abs=1e-3)


def test_phases_and_depth_scales():
    w = np.array([0.5, 0.9, 1.5, 3.0])
    mf = jaxinit.mean_field("tanh", w, 0.0)
    ordered = mf.chi_1 < 1
    np.testing.assert_array_equal(ordered, [True, True, False, False])
    np.testing.assert_allclose(mf.c_star[ordered], 1.0)
    assert np.all(mf.c_star[~ordered] < 0.05)
    # ξ_c peaks at the critical line: it is larger next to it than away on either side.
    near = jaxinit.mean_field("tanh", [0.5, 0.98, 1.02, 3.0], 0.0).xi_c
    assert near[1] > 10 * near[0] and near[2] > 10 * near[3]


def test_correlation_map_fixed_point():
    mf = jaxinit.mean_field("tanh", 2.5, 0.05)
    c = jaxinit.correlation_map("tanh", mf.c_star, mf.q_star, 2.5, 0.05)
    assert float(c) == pytest.approx(float(mf.c_star), abs=1e-7)
    assert 0 < float(mf.c_star) < 1


def test_custom_callable_activation():
    # Any elementwise callable: a scaled ReLU is critical at σ_w² = 2 / a².
    line = jaxinit.critical_weight_variance(lambda x: 2.0 * jax.nn.relu(x), 0.0)
    assert float(line) == pytest.approx(0.5, rel=1e-6)


def _simulate(activation, sw2, sb2, width=1024, depth=8, batch=128, seeds=4):
    model = jaxinit.MLP(
        (width,) * depth,
        activation,
        kernel_init=jaxinit.variance_scaling(sw2, "fan_in", "normal"),
        bias_init=jaxinit.normal(math.sqrt(sb2)) if sb2 else jaxinit.zeros,
    )
    x = jax.random.normal(jax.random.key(1), (batch, width))
    df = jaxinit.diagnose(model, x, seeds=seeds, jacobian_examples=0)
    second = df[df.stat == "second_moment"].groupby(["quantity", "layer"])["value"].mean()
    return second["pre_activation"].to_numpy(), second["gradient"].to_numpy()


@pytest.mark.parametrize(
    ("activation", "sw2", "sb2"), [("tanh", 1.5, 0.05), ("tanh", 0.8, 0.0), ("relu", 2.0, 0.1)]
)
def test_theory_matches_wide_network_simulation(activation, sw2, sb2):
    q, grad = _simulate(activation, sw2, sb2)
    theory = jaxinit.predict_propagation(activation, sw2, sb2, depth=len(q))
    # Width 1024, 4 seeds × 128 examples: sampling error ~1 %, finite width O(1/N) per layer.
    np.testing.assert_allclose(q, theory.q, rtol=0.05)
    np.testing.assert_allclose(grad, theory.gradient, rtol=0.1)


def test_errors_name_function_and_argument():
    with pytest.raises(ValueError, match=r"q_star.*weight_variance"):
        jaxinit.q_star("tanh", -1.0)
    with pytest.raises(ValueError, match=r"q_star.*bias_variance"):
        jaxinit.q_star("tanh", 1.0, -0.1)
    with pytest.raises(ValueError, match=r"predict_propagation.*depth"):
        jaxinit.predict_propagation("tanh", 1.0, depth=0)
    with pytest.raises(ValueError, match=r"activation.*relu"):
        jaxinit.mean_field("nope", 1.0)


def test_results_are_float64_numpy():
    mf = jaxinit.mean_field("tanh", [1.0, 2.0], 0.1)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in mf)
    assert not jax.config.read("jax_enable_x64")  # switched on only inside the computation
    assert jnp.zeros(1).dtype == jnp.float32


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: jaxinit.q_star("tanh", 1.5, q0=-1), r"q_star: q0 must be finite and >= 0"),
        (lambda: jaxinit.q_star("tanh", 1.5, q0=math.nan), r"q_star: q0 must be"),
        (lambda: jaxinit.q_star("tanh", 1.5, q0=1e300), r"q_star: q0 must be <= 1e\+12"),
        (lambda: jaxinit.q_star("tanh", 1.5, max_iter=0), r"q_star: max_iter must be >= 1"),
        (lambda: jaxinit.q_star("tanh", 1.5, tol=0.0), r"q_star: tol must be finite and > 0"),
        (lambda: jaxinit.correlation_map("tanh", 0.5, 0.0, 1.0), r"correlation_map: q must be > 0"),
        (lambda: jaxinit.correlation_map("tanh", "x", 1.0, 1.0), r"correlation_map: c must be"),
        (
            lambda: jaxinit.mean_field("tanh", 1e300),
            r"mean_field: weight_variance must be <= 1e\+06",
        ),
        (
            lambda: jaxinit.mean_field("tanh", 1.0, 1e7),
            r"mean_field: bias_variance must be <= 1e\+06",
        ),
        (lambda: jaxinit.c_star("tanh", 2.0, c0=2.0), r"c_star: c0 must be a correlation"),
        (lambda: jaxinit.c_star("tanh", 2.0, q=0.0), r"c_star: q must be > 0"),
        (lambda: jaxinit.c_star("tanh", 2.0, max_iter=0), r"c_star: max_iter must be >= 1"),
        (lambda: jaxinit.critical_weight_variance("tanh", upper=1e9), r"upper must be <= 1e\+06"),
    ],
)
def test_arguments_outside_the_domain_are_refused_by_name(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_the_domain_edges_are_computed():
    # q0 = 0 is in the domain: with no bias, 0 is tanh's fixed point below the critical line
    assert float(jaxinit.q_star("tanh", 0.5, q0=0.0)) == 0.0
    # the largest variance accepted: tanh's q* is about σ_w² (tanh² -> 1), finite
    mf = jaxinit.mean_field("tanh", 1e6)
    assert 0.9e6 < float(mf.q_star) <= 1e6
    assert float(jaxinit.q_star("tanh", 1.5, max_iter=1)) > 0
    assert np.isfinite(jaxinit.correlation_map("tanh", 0.5, 1e-9, 1.0, 0.1))
