"""The aggregate statistics are right, not just running: rliable's formulas on a fixed example
worked by hand; 95 % intervals that cover a known truth 93–97 % of the time over ≥ 1000
simulated studies (normal and skewed scores, 5–10 seeds); verdicts that keep their
family-wise error under the null (simulated studies and an engine-run one) and still find a
real difference.

The coverage checks are vectorised over the simulated studies (one bootstrap call per 500
studies). The default suite runs one configuration per estimator and distribution; the full
grid is ``-m slow`` (its figures are in docs/guide/compare.md).
"""

from __future__ import annotations

import dataclasses
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import integrate, stats

import jaxinit
from jaxinit.cli.compare import summarize
from jaxinit.study import _aggregate as agg
from jaxinit.study import _stats

# ---------------------------------------------------------------- rliable's formulas by hand
X = np.array([[0.2, 0.5, 0.9, 1.2], [0.1, 0.4, 0.4, 0.8]])  # (tasks, runs)
Y = np.array([[0.5, 0.5, 0.3, 1.0], [0.4, 0.2, 0.9, 0.0]])


def test_point_estimates_match_rliable_formulas_by_hand():
    # mean of task means: (0.7 + 0.425) / 2; median of the two task means: the same
    assert agg.aggregate_mean(X) == pytest.approx(0.5625)
    assert agg.aggregate_median(X) == pytest.approx(0.5625)
    assert agg.aggregate_median(np.vstack([X, [[3.0] * 4]])) == pytest.approx(0.7)
    # IQM: pooled sorted .1 .2 .4 .4 .5 .8 .9 1.2, cut floor(8/4) = 2 each end -> .4 .4 .5 .8
    assert agg.aggregate_iqm(X) == pytest.approx(0.525)
    assert agg.aggregate_iqm(X) == pytest.approx(stats.trim_mean(X, 0.25, axis=None))
    # optimality gap, γ = 1: 1.2 clips to 1; 1 − mean(.2 .5 .9 1 .1 .4 .4 .8) = 1 − .5375
    assert agg.aggregate_optimality_gap(X) == pytest.approx(0.4625)
    assert agg.aggregate_optimality_gap(X, gamma=0.5) == pytest.approx(0.5 - 3.1 / 8)
    # P(X > Y): task 1 wins 0 + (1 + ½·2) + 3 + 4 = 9 of 16; task 2 wins 1 + 2·2.5 + 3 = 9
    assert agg.probability_of_improvement(X, Y) == pytest.approx(0.5625)
    for t in range(2):  # rliable's definition: Mann–Whitney U / (n·m)
        u = stats.mannwhitneyu(X[t], Y[t], alternative="greater").statistic
        assert agg.probability_of_improvement(X[t : t + 1], Y[t : t + 1]) == pytest.approx(u / 16)
    assert agg.probability_of_improvement(X, X) == pytest.approx(0.5)
    # batched: a leading axis of studies gives one value per study
    both = agg.aggregate_iqm(np.stack([X, Y]))
    assert both.shape == (2,) and both[1] == pytest.approx(stats.trim_mean(Y, 0.25, axis=None))


def test_performance_profile_counts_runs_above_tau():
    p = agg.performance_profile(X, [0.0, 0.45, 0.85, 2.0], reps=200)
    # fraction > τ per task, averaged: τ=.45 -> (3/4 + 1/4)/2; τ=.85 -> (2/4 + 0)/2
    np.testing.assert_allclose(p.value, [1.0, 0.5, 0.25, 0.0])
    assert np.all(p.lo <= p.value) and np.all(p.value <= p.hi)
    assert p.lo[0] == p.hi[0] == 1.0 and p.hi[-1] == 0.0  # no spread where all agree


def test_holm_and_paired_t_by_hand():
    # sorted .01·4 = .04, .03·3 = .09, .04·2 = .08 -> max(.09, .08) = .09, .20·1
    np.testing.assert_allclose(agg.holm([0.01, 0.04, 0.03, 0.20]), [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(agg.holm([[0.5, np.nan, 0.01]]), [[0.5, np.nan, 0.02]])
    a, b = X[:1], Y[:1]
    t = agg.paired_t_test(a, b)
    ref = stats.ttest_rel(a[0], b[0])
    assert float(t.p) == pytest.approx(ref.pvalue) and float(t.df) == 3
    # two tasks: diff = mean of task means, SE² = Σ s_t²/n / 4, Welch–Satterthwaite df
    d = X - Y
    v = d.var(axis=1, ddof=1) / 4
    t2 = agg.paired_t_test(X, Y)
    assert float(t2.diff) == pytest.approx(d.mean())
    df = v.sum() ** 2 / np.sum(v**2 / 3)
    assert float(t2.df) == pytest.approx(df)
    p = 2 * stats.t.sf(abs(d.mean()) / (np.sqrt(v.sum()) / 2), df)
    assert float(t2.p) == pytest.approx(p)


def test_verdicts_reference_and_all_pairs():
    ref = np.arange(1.0, 9.0)[None]
    same = ref + np.array([[0.5, -0.5, 0.3, -0.3, 0.1, -0.2, 0.2, -0.1]])  # mean diff. 0
    bad = ref - np.array([[3.1, 2.9, 3.0, 3.2, 2.8, 3.0, 3.1, 2.9]])
    scores = {"ref": ref, "same": same, "bad": bad}
    v = agg.verdicts(scores, "ref", higher_is_better=True)
    assert v["verdict"] == {"ref": "reference", "same": "indistinguishable from ref",
                            "bad": "worse than ref"}  # fmt: skip
    assert "pre-registered reference 'ref'" in v["procedure"] and "2 tests" in v["procedure"]
    w = agg.verdicts(scores, None, higher_is_better=False)  # lower is better: "bad" wins
    assert w["verdict"]["bad"] == "better than ref, same" and "3 tests" in w["procedure"]
    assert agg.recommended_reference("relu", ["zeros", "glorot_uniform", "he_normal"]) == (
        "he_normal"
    )
    assert agg.recommended_reference("tanh", ["zeros", "he_normal"]) is None
    with pytest.raises(ValueError, match="verdicts: reference 'nope' is not one of"):
        agg.verdicts(scores, "nope")


def test_bad_input_names_function_and_shape():
    with pytest.raises(ValueError, match=r"aggregate_iqm: scores must have shape \(\.\.\., tasks"):
        agg.aggregate_iqm([1.0, 2.0])
    with pytest.raises(ValueError, match="probability_of_improvement: x has 2 tasks"):
        agg.probability_of_improvement(X, Y[:1])
    with pytest.raises(ValueError, match="stratified_bootstrap: method='basic'; allowed"):
        agg.stratified_bootstrap(agg.aggregate_mean, X, method="basic")
    with pytest.raises(ValueError, match="paired_t_test: a has shape"):
        agg.paired_t_test(X, Y[:, :3])


def test_km_median_interval_by_hand():
    t = np.arange(10, 101, 10.0)  # n = 10
    # γ_2 = P(2 ≤ B ≤ 8) = 1 − 2·11/1024, γ_3 = 1 − 2·56/1024 (B ~ Binomial(10, ½))
    g2, g3 = 1 - 22 / 1024, 1 - 112 / 1024
    frac = (g2 - 0.95) / (g2 - g3)
    lam = 8 * frac / (2 + 6 * frac)  # Hettmansperger–Sheather
    lo, hi = _stats.median_interval(t)
    assert lo == pytest.approx(20 + 10 * lam) and hi == pytest.approx(90 - 10 * lam)
    censored = np.where(t > 85, np.inf, t)  # t_(9), t_(10) never reached the target
    lo_c, hi_c = _stats.median_interval(censored)
    assert lo_c == pytest.approx(lo) and hi_c == np.inf
    # n = 5: even [min, max] covers only 1 − 2/32 = 93.75 %; it is returned
    assert _stats.median_interval(np.array([5.0, 1, 4, 2, 3])) == (1.0, 5.0)
    s = _stats.time_to_target(censored)
    assert s.median == 50 and s.fraction == 0.8


# -------------------------------------------------------------------- coverage, known truth
SIMS = 1000
DISTS = {"normal": stats.norm(), "gamma2": stats.gamma(2.0)}  # gamma(2): skewness 1.41


def _iqm_truth(d) -> float:
    return 2 * integrate.quad(d.ppf, 0.25, 0.75)[0]


def _coverage(interval, draws, truth, sims=SIMS, chunk=500):
    hits = 0
    for c in range(0, sims, chunk):
        iv = interval(*(d[c : c + chunk] for d in draws), seed=c)
        hits += int(np.sum((iv.lo <= truth) & (truth <= iv.hi)))
    return hits / sims


def _mean_iv(x, seed):
    return agg.stratified_bootstrap(agg.aggregate_mean, x, method="studentized",
                                    se=agg._se_mean, reps=1000, seed=seed)  # fmt: skip


def _iqm_iv(x, seed):
    return agg.stratified_bootstrap(agg.aggregate_iqm, x, method="studentized",
                                    se=agg._se_iqm, reps=1000, seed=seed)  # fmt: skip


def _poi_iv(x, y, seed):
    return agg.improvement_interval(x, y, reps=1000, seed=seed)


# 95 % ± 2: the band the issue sets; with 1000 studies the Monte Carlo SE is 0.7 points.
def _in_band(c):
    return 0.93 <= c <= 0.97


@pytest.mark.parametrize(("dist", "tasks", "runs"), [("normal", 1, 5), ("gamma2", 2, 8)])
def test_mean_interval_coverage(dist, tasks, runs):
    d = DISTS[dist]
    x = d.rvs(size=(SIMS, tasks, runs), random_state=np.random.default_rng(10 + runs))
    c = _coverage(_mean_iv, [x], d.mean())
    assert _in_band(c), c


@pytest.mark.parametrize(("dist", "tasks", "runs"), [("normal", 1, 10), ("gamma2", 2, 8)])
def test_iqm_interval_coverage(dist, tasks, runs):
    d = DISTS[dist]
    x = d.rvs(size=(SIMS, tasks, runs), random_state=np.random.default_rng(20 + runs))
    c = _coverage(_iqm_iv, [x], _iqm_truth(d))
    assert _in_band(c), c


def test_probability_of_improvement_coverage():
    rng = np.random.default_rng(30)  # 2 tasks × 8 runs, X ~ N(0.5, 1), Y ~ N(0, 1)
    x, y = rng.normal(0.5, 1, (SIMS, 2, 8)), rng.normal(0, 1, (SIMS, 2, 8))
    c = _coverage(_poi_iv, [x, y], stats.norm.cdf(0.5 / np.sqrt(2)))
    assert _in_band(c), c


@pytest.mark.parametrize("runs", [5, 8])
def test_km_median_coverage_with_censoring(runs):
    # log-normal times (median 1), censored at the horizon 1.5: 34 % never reach the target
    rng = np.random.default_rng(40 + runs)
    t = np.exp(rng.normal(0, 1, (4 * SIMS, runs)))
    t = np.where(t > 1.5, np.inf, t)
    assert 0.3 < np.isinf(t).mean() < 0.4
    lo, hi = _stats.median_interval(t)
    c = np.mean((lo <= 1.0) & (1.0 <= hi))
    assert _in_band(c), c


def test_percentile_interval_under_covers_where_bootstrap_t_does_not():
    # Why the default is not rliable's percentile interval: 8 normal seeds, one task.
    x = stats.norm.rvs(size=(SIMS, 1, 8), random_state=np.random.default_rng(50))

    def pct(x, seed):
        return agg.stratified_bootstrap(agg.aggregate_mean, x, method="percentile", reps=1000,
                                        seed=seed)  # fmt: skip

    assert _coverage(pct, [x], 0.0) < 0.91 < 0.93 <= _coverage(_mean_iv, [x], 0.0)


FULL_GRID = [
    pytest.param(d, t, n, marks=pytest.mark.xfail(
        reason="known limit: the bootstrap-t of a mean of 5 log-normal(0.5) seeds covers "
        "91.7–93.6 % (measured with two seeds of the simulation)", strict=False))
    if (d, n) == ("lognorm", 5) else (d, t, n)
    for d in ("normal", "gamma2", "lognorm") for t, n in [(1, 5), (1, 8), (1, 10), (3, 8)]
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("dist", "tasks", "runs"), FULL_GRID)
def test_full_coverage_grid(dist, tasks, runs):
    d = {**DISTS, "lognorm": stats.lognorm(0.5)}[dist]
    rng = np.random.default_rng(zlib.crc32(f"{dist}{tasks}{runs}".encode()))
    x = d.rvs(size=(2000, tasks, runs), random_state=rng)
    y = d.rvs(size=(2000, tasks, runs), random_state=rng) + 0.3 * d.std()
    cover = {"mean": _coverage(_mean_iv, [x], d.mean(), sims=2000)}
    if runs >= 8:  # IQM of fewer than 8 runs per task trims 1 of 5: not measured
        cover["iqm"] = _coverage(_iqm_iv, [x], _iqm_truth(d), sims=2000)
    if tasks > 1:  # with one task the BCa interval of P(X > Y) over-covers (96–98 %)
        truth = np.mean(d.rvs(size=2_000_000, random_state=rng) + 0.3 * d.std()
                        > d.rvs(size=2_000_000, random_state=rng))  # fmt: skip
        cover["poi"] = _coverage(_poi_iv, [y, x], truth, sims=2000)
    print(f"{dist} {tasks}x{runs}:", {k: round(v, 3) for k, v in cover.items()})
    assert all(_in_band(c) for c in cover.values()), cover


# ------------------------------------------------------------ calibration under the null
def _null_studies(rng, studies, inits, tasks, seeds, skewed):
    """Scores (studies, inits, tasks, seeds): one distribution for every init; seed s shares
    a data-order effect across inits (the engine's pairing), the init draw is independent."""
    shape = (studies, 1, tasks, seeds)
    seed_effect = rng.normal(0, 1, shape)
    noise_shape = (studies, inits, tasks, seeds)
    noise = rng.lognormal(0, 1, noise_shape) if skewed else rng.normal(0, 1, noise_shape)
    return seed_effect + noise


def _reference_any(scores, alpha=0.05):
    t = agg.paired_t_test(scores[:, 1:], scores[:, :1])  # init 0 is the reference
    return np.any(agg.holm(t.p) <= alpha, axis=-1)


def _all_pairs_any(scores, alpha=0.05):
    k = scores.shape[1]
    i, j = np.triu_indices(k, 1)
    t = agg.paired_t_test(scores[:, i], scores[:, j])
    return np.any(agg.holm(t.p) <= alpha, axis=-1)


def _select_best_then_test_any(scores, alpha=0.05):
    """The old procedure: pick the best mean, then 95 % tests of every other against it."""
    best = np.argmax(scores.mean(axis=(-2, -1)), axis=1)
    b = np.take_along_axis(scores, best[:, None, None, None], axis=1)
    t = agg.paired_t_test(scores, b)
    return np.any(np.nan_to_num(t.p, nan=1.0) <= alpha, axis=-1)


@pytest.mark.parametrize("skewed", [False, True])
def test_no_more_false_verdicts_than_nominal_under_the_null(skewed):
    rng = np.random.default_rng(60 + skewed)
    n = 4000
    mc = 2 * np.sqrt(0.05 * 0.95 / n)  # two Monte Carlo standard errors
    for tasks in (1, 2):
        s = _null_studies(rng, n, inits=8, tasks=tasks, seeds=8, skewed=skewed)
        ref, pairs = _reference_any(s).mean(), _all_pairs_any(s).mean()
        assert ref <= 0.05 + mc and pairs <= 0.05 + mc, (tasks, ref, pairs)
        # not vacuous: tests against one reference are positively correlated, so Holm is
        # conservative (measured 1–3 %), but it does reject
        assert ref > 0.005 and pairs > 0.005, (tasks, ref, pairs)
    # the finding reproduced: select-then-test over-issues verdicts
    assert _select_best_then_test_any(s).mean() > 0.15


def test_power_on_a_known_difference():
    rng = np.random.default_rng(70)
    s = _null_studies(rng, 2000, inits=8, tasks=1, seeds=8, skewed=False)
    s[:, 3] += 3.0  # one scheme 3 noise-SDs better (σ of a difference: √2)
    t = agg.paired_t_test(s[:, 1:], s[:, :1])
    found = agg.holm(t.p)[:, 2] <= 0.05
    assert found.mean() > 0.9


# --------------------------------------------- engine-run: copies of one scheme vs a real gap
@dataclasses.dataclass(frozen=True)
class Folded:
    """``base`` with its key folded by ``index``: same distribution, independent draws
    (same-named copies would draw identical weights, as the engine pairs keys by seed)."""

    base: str
    index: int

    def __call__(self, key, shape, dtype=jnp.float32):
        return jaxinit.get(self.base)(jax.random.fold_in(key, self.index), shape, dtype)


def test_engine_null_study_and_power():
    copies = {"he_normal": "he_normal", **{f"he_normal~{i}": Folded("he_normal", i)
                                           for i in range(1, 6)}}  # fmt: skip
    study = jaxinit.Study(
        model=jaxinit.MLP((16,) * 6 + (10,), "relu"), dataset=jaxinit.digits(),
        optimizer=optax.sgd(0.02, momentum=0.9),
        inits={**copies, "random_normal": "random_normal"},
        seeds=8, steps=120, batch_size=32, log_every=20,
    )  # fmt: skip
    table = jaxinit.run_study(study, key=0, progress=False).table.assign(activation="relu")
    final = table[(table.metric == "test_loss") & (table.step == table.step.max())]
    by = final.pivot(index="init", columns="seed", values="value")
    assert by.loc["he_normal~1"].to_numpy().std() > 0  # copies draw independently
    assert not np.allclose(by.loc["he_normal~1"], by.loc["he_normal"])
    s = summarize(table, target=0.5)
    assert s["reference"] == "he_normal"  # registry: He for ReLU, first in the study
    verdicts = {k: r["verdict"] for k, r in s["inits"].items()}
    assert verdicts["random_normal"] == "worse than he_normal"  # power: a real gap is found
    for name in copies:  # calibration: no verdict between copies of one scheme
        assert verdicts[name] in ("reference", "indistinguishable from he_normal"), verdicts


def test_null_calibration_experiment_quick(tmp_path, capsys):
    """experiments/exp_null_calibration.py in --quick mode (its full run is in docs/guide/compare.md)."""
    import importlib.util
    import json
    import pathlib
    import sys

    exp = pathlib.Path(__file__).resolve().parent.parent / "experiments"
    sys.path.insert(0, str(exp))
    spec = importlib.util.spec_from_file_location(
        "exp_null_calibration", exp / "exp_null_calibration.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["power_found"] == result["config"]["studies"]  # random_normal found
    assert 0 <= result["studies_with_verdict"] <= result["config"]["studies"]  # a smoke run:
    # the rate is measured by the full run (and by the simulations above), not by 2 studies
    assert len(result["pvalues"]) == 2 * 3 and (tmp_path / "null_calibration.png").exists()
    assert "published claims vs this measurement" in capsys.readouterr().out


def test_support_bounds_the_interval_where_the_studentized_one_leaves_it():
    """With 2 seeds near 1 the t interval of an accuracy reaches above 1; ``support``
    intersects it with [0, 1] (the value, and every interval inside the range, unchanged)."""
    acc = np.array([[0.97, 0.99], [0.95, 0.999]])
    free = agg.aggregate_intervals(acc)["mean"]
    held = agg.aggregate_intervals(acc, support=(0.0, 1.0))
    assert free.hi > 1 and held["mean"].hi == 1.0
    assert held["mean"].value == free.value and held["mean"].lo == free.lo
    assert held["optimality_gap"].lo == 0.0 and held["optimality_gap"].hi <= 1.0
    for name in ("median", "iqm"):
        assert 0.0 <= held[name].lo <= held[name].value <= held[name].hi <= 1.0
    assert (
        jaxinit.bootstrap_ci(acc[0], support=(0.0, 1.0)).hi == 1.0 < jaxinit.bootstrap_ci(acc[0]).hi
    )
    with pytest.raises(ValueError, match="support"):
        agg.stratified_bootstrap(agg.aggregate_mean, acc, support=(1.0, 0.0))
