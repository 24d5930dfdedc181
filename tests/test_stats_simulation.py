"""Issue 26: the statistics hold on the data init studies produce — simulated studies with a
known truth.

Intervals: coverage of the 95 % intervals of the mean, the IQM and P(X > Y) on normal,
log-normal (σ = 0.5) and failed-seed scores (80 % N(0.9, 0.02) trained, 20 % N(0.1, 0.02)
at chance), at 5, 8 and 10 seeds, 1 and 2 tasks; never an infinite interval, never one past
the range of the resampled statistic. P(X > Y) at 5 seeds under a 2-SD shift (X beats Y on
every pair in 39 % of the studies).

Verdicts: the chance that the default ``jaxinit compare`` report (8 schemes, 2 activations:
two tables of 7 tests against a reference, one of all 28 pairs over both tasks, each at its
share of 5 %) issues any false verdict, on exchangeable nulls (normal, skewed, bimodal) and
on the shape-differing null (one scheme with the same mean but 20 % failed seeds), at 5 and 8
seeds; power beside it.

The slow set (``-m slow``) runs ≥ 1000 simulated studies per cell (its figures are in
docs/guide/compare.md); the default suite runs seeded smoke versions of a few cells, with the
band widened by their Monte Carlo error.

A ceiling, not a defect: an interval that never leaves the range of the resampled statistic
covers the truth only when the truth lies in that range. For the mean of 5 seeds of one task
that happens with probability 1 − F(μ)⁵ − (1 − F(μ))⁵ (93.75 % for symmetric scores, 91 % for
log-normal(0.5)), and for failed-seed scores only when the study drew a failed seed (1 − 0.8ⁿ:
67 % at 5 seeds). Where this ceiling is below 93 % the test asks for coverage within 1.5
points of it, measured on the same studies.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import pytest

from jaxinit.stats import _aggregate as agg


# ---------------------------------------------------------------- simulated score laws
def _mixture(rng, shape):
    failed = rng.random(shape) < 0.2
    return np.where(failed, rng.normal(0.1, 0.02, shape), rng.normal(0.9, 0.02, shape))


DRAW = {
    "normal": lambda rng, shape: rng.normal(0.0, 1.0, shape),
    "lognormal": lambda rng, shape: rng.lognormal(0.0, 0.5, shape),
    "failed_seeds": _mixture,
}


@functools.cache
def _truth(dist: str) -> dict[str, float]:
    """Mean, IQM (the 25 %-trimmed mean of the law) and, for X = Y + 0.5 SD, P(X > Y),
    from 4 million draws (Monte Carlo error < 0.001)."""
    rng = np.random.default_rng(12345)
    big = np.sort(DRAW[dist](rng, 4_000_000))
    q = len(big) // 4
    sd = big.std()
    x = DRAW[dist](rng, 2_000_000) + 0.5 * sd
    y = DRAW[dist](rng, 2_000_000)
    return {"mean": float(big.mean()), "iqm": float(big[q:-q].mean()), "sd": float(sd),
            "poi": float(np.mean(x > y))}  # fmt: skip


def _band(sims: int) -> tuple[float, float]:
    """93–97 %, widened by two Monte Carlo standard errors of a 95 % coverage."""
    mc = 2 * np.sqrt(0.95 * 0.05 / sims)
    return 0.93 - mc, 0.97 + mc


def coverage_cell(dist: str, tasks: int, runs: int, sims: int, reps: int = 1000) -> dict:
    """Coverage of the mean, IQM (aggregate_intervals) and P(X > Y) (improvement_interval)
    over ``sims`` simulated studies; with each, its ceiling (the fraction of studies whose
    truth lies in the range of the resampled statistic) and checks that every interval is
    finite and inside that range."""
    rng = np.random.default_rng(zlib.crc32(f"{dist}{tasks}{runs}{sims}".encode()))
    truth = _truth(dist)
    x = DRAW[dist](rng, (sims, tasks, runs))
    out = {}
    ivs = agg.aggregate_intervals(x, reps=reps, seed=runs)
    for name in ("mean", "iqm"):
        iv, t = ivs[name], truth[name]
        low, high = agg._resampled_range(agg.METRICS[name], [x])
        assert np.isfinite(iv.lo).all() and np.isfinite(iv.hi).all(), (dist, name)
        assert np.all(low - 1e-12 <= iv.lo) and np.all(iv.hi <= high + 1e-12), (dist, name)
        out[name] = float(np.mean((iv.lo <= t) & (t <= iv.hi)))
        out[f"{name}_ceiling"] = float(np.mean((low <= t) & (t <= high)))
    shifted = DRAW[dist](rng, (sims, tasks, runs)) + 0.5 * truth["sd"]
    poi = agg.improvement_interval(shifted, x)
    assert np.isfinite(poi.lo).all() and np.all((0 <= poi.lo) & (poi.hi <= 1))
    assert np.all(poi.lo < poi.hi)  # never collapses, not even under separation
    out["poi"] = float(np.mean((poi.lo <= truth["poi"]) & (truth["poi"] <= poi.hi)))
    return out


def check_cell(cell: dict, sims: int, known: dict | None = None) -> None:
    lo, hi = _band(sims)
    for name in ("mean", "iqm", "poi"):
        c = cell[name]
        floor = lo
        ceiling = cell.get(f"{name}_ceiling", 1.0)
        if ceiling < 0.93:  # no in-range interval can reach 93 % here (module docstring)
            floor = min(lo, ceiling - 0.015)
        if known and name in known:  # a measured limit, stated in docs/guide/compare.md
            floor = min(floor, known[name])
        assert floor <= c <= hi, (name, cell)


# Measured limits of Newcombe's interval on failed-seed scores over 2 tasks (89.6–92.2 %
# over 2000 studies): its variance, a function of θ alone, assumes a smooth shift; with
# 20 % of runs at chance the Mann–Whitney estimate varies more than that.
KNOWN = {("failed_seeds", 2, 8): {"poi": 0.89}, ("failed_seeds", 2, 10): {"poi": 0.89}}

CELLS = [(d, t, n) for d in DRAW for t in (1, 2) for n in (5, 8, 10)]


@pytest.mark.parametrize(
    ("dist", "tasks", "runs"),
    [("normal", 1, 5), ("lognormal", 2, 8), ("failed_seeds", 1, 10)],
)
def test_interval_coverage_smoke(dist, tasks, runs):
    sims = 300
    cell = coverage_cell(dist, tasks, runs, sims, reps=500)
    check_cell(cell, sims, KNOWN.get((dist, tasks, runs)))


@pytest.mark.slow
@pytest.mark.parametrize(("dist", "tasks", "runs"), CELLS)
def test_interval_coverage_grid(dist, tasks, runs):
    sims = 1000
    cell = coverage_cell(dist, tasks, runs, sims)
    print(f"{dist} {tasks}x{runs}:", {k: round(v, 3) for k, v in cell.items()})
    check_cell(cell, sims, KNOWN.get((dist, tasks, runs)))


def _separated_coverage(sims: int) -> tuple[float, float]:
    rng = np.random.default_rng(7)
    x, y = rng.normal(2.0, 1.0, (sims, 1, 5)), rng.normal(0.0, 1.0, (sims, 1, 5))
    iv = agg.improvement_interval(x, y)
    truth = 0.9213503964748574  # Φ(2/√2)
    return float(np.mean((iv.lo <= truth) & (truth <= iv.hi))), float(np.mean(iv.value == 1))


def test_probability_of_improvement_under_separation_smoke():
    cover, separated = _separated_coverage(400)
    assert separated > 0.3  # every X above every Y in a third of the studies
    assert cover >= 0.90 - 2 * np.sqrt(0.1 * 0.9 / 400), cover


@pytest.mark.slow
def test_probability_of_improvement_under_separation():
    cover, separated = _separated_coverage(2000)
    print(f"P(X > Y), 5 seeds, 2-SD shift: coverage {cover:.3f} ({separated:.0%} separated)")
    assert cover >= 0.90, cover


# ----------------------------------------------------- the whole report's error rate
INITS, REFERENCE = 8, 0  # the default compare: 8 schemes, he_normal / glorot the reference


def _studies(rng, null: str, studies: int, seeds: int, shift: float = 0.0) -> np.ndarray:
    """Final scores (studies, inits, tasks=2, seeds), seeds paired across schemes (a seed
    effect shared by every scheme, as the engine's data order is). ``null``: "normal",
    "skewed" (log-normal noise), "bimodal" (every scheme with 20 % failed seeds), or
    "shape" (scheme 3 has the others' mean but 20 % failed seeds). ``shift`` moves scheme
    5 by that many noise SDs (power)."""
    shape = (studies, INITS, 2, seeds)
    seed_effect = rng.normal(0, 0.01, (studies, 1, 2, seeds))
    if null == "normal":
        s = 0.8 + rng.normal(0, 0.02, shape)
    elif null == "skewed":
        s = 0.8 - 0.02 * rng.lognormal(0, 1, shape)
    elif null == "bimodal":
        s = _mixture(rng, shape)
    elif null == "shape":
        s = 0.8 + rng.normal(0, 0.02, shape)
        # 0.8·good + 0.2·0.1 = 0.8: the same mean as the others, 20 % failed seeds
        failed = rng.random(shape[:1] + shape[2:]) < 0.2
        s[:, 3] = np.where(failed, 0.1, 0.975) + rng.normal(0, 0.02, failed.shape)
    else:
        raise ValueError(null)
    s = s + seed_effect
    s[:, 5] += shift * 0.02
    return s


def report_rejections(s: np.ndarray) -> dict[str, np.ndarray]:
    """The default report's verdicts, batched over studies: per activation every scheme
    against the reference (final test loss, here −score), the aggregate all 28 pairs over
    both tasks; each table Holm at its family_alphas share of 5 %, as run_compare does.
    Returns per table a (studies, tests) boolean array of rejections."""
    others = [i for i in range(INITS) if i != REFERENCE]
    i, j = np.triu_indices(INITS, 1)
    sizes = {"relu": len(others), "tanh": len(others), "aggregate": len(i)}
    alphas = agg.family_alphas(sizes, 0.05)
    out = {}
    for t, act in enumerate(("relu", "tanh")):
        p = agg.sign_flip_test(
            -s[:, others, t : t + 1], -s[:, REFERENCE : REFERENCE + 1, t : t + 1]
        ).p
        out[act] = agg.holm(p) <= alphas[act]
    p = agg.sign_flip_test(s[:, i], s[:, j]).p
    out["aggregate"] = agg.holm(p) <= alphas["aggregate"]
    return out


def any_false_rate(null: str, seeds: int, studies: int, seed: int = 0) -> float:
    s = _studies(np.random.default_rng(seed), null, studies, seeds)
    r = report_rejections(s)
    return float(np.mean(np.any(np.concatenate(list(r.values()), axis=-1), axis=-1)))


def power(seeds: int, studies: int, shift: float) -> float:
    """Fraction of studies whose aggregate table finds scheme 5 (shifted) against the
    reference (the pair (0, 5))."""
    s = _studies(np.random.default_rng(99), "normal", studies, seeds, shift)
    i, j = np.triu_indices(INITS, 1)
    k = int(np.nonzero((i == REFERENCE) & (j == 5))[0][0])
    return float(np.mean(report_rejections(s)["aggregate"][:, k]))


def _t_test_rate(null: str, seeds: int, studies: int) -> float:
    """The old procedure's rate (paired t-tests, each table Holm at 5 %), for comparison."""
    s = _studies(np.random.default_rng(1), null, studies, seeds)
    i, j = np.triu_indices(INITS, 1)
    others = [k for k in range(INITS) if k != REFERENCE]
    hits = [agg.holm(agg.paired_t_test(s[:, i], s[:, j]).p) <= 0.05]
    for t in range(2):
        p = agg.paired_t_test(s[:, others, t : t + 1], s[:, REFERENCE : REFERENCE + 1, t : t + 1]).p
        hits.append(agg.holm(p) <= 0.05)
    return float(np.mean(np.any(np.concatenate(hits, axis=-1), axis=-1)))


@pytest.mark.parametrize("null", ["normal", "shape"])
def test_report_error_rate_smoke(null):
    studies = 300
    rate = any_false_rate(null, 8, studies)
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / studies), rate


def test_report_rejections_are_what_verdicts_decides():
    """The simulation's batched report is the one run_compare prints: on one study with a
    real gap, verdicts() at the aggregate's share finds exactly the pairs it finds."""
    s = _studies(np.random.default_rng(3), "normal", 1, 8, shift=4.0)
    sim = report_rejections(s)["aggregate"][0]
    alphas = agg.family_alphas({"relu": 7, "tanh": 7, "aggregate": 28})
    v = agg.verdicts({str(k): s[0, k] for k in range(INITS)}, None, alpha=alphas["aggregate"])
    assert [t["verdict"] != "indistinguishable" for t in v["tests"]] == sim.tolist()
    assert sim.any() and v["reachable"]


def test_report_power_smoke():
    assert power(8, 200, shift=3.0) > 0.8  # a 3-noise-SD gap is found at 8 seeds


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [5, 8])
@pytest.mark.parametrize("null", ["normal", "skewed", "bimodal", "shape"])
def test_report_error_rate(null, seeds):
    studies = 2000
    rate = any_false_rate(null, seeds, studies, seed=seeds)
    old = _t_test_rate(null, seeds, studies)
    found = power(seeds, 1000, shift=3.0)
    print(f"{null} null, {seeds} seeds: any false verdict in the report {rate:.3f} "
          f"(old t-tests per table: {old:.3f}); power at a 3-SD gap {found:.3f}")  # fmt: skip
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / studies), rate
