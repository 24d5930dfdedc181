"""Aggregate statistics over (task × seed) scores, rliable-style, with calibrated intervals.

A *score matrix* has shape ``(..., tasks, runs)``: one row per task (e.g. an activation or a
dataset), one column per seed; leading axes batch independent studies, so one call
evaluates a thousand simulated studies at once. ``NaN`` marks a missing run.

Point estimates follow Agarwal et al. 2021 ("Deep RL at the edge of the statistical
precipice", google-research/rliable) exactly:

* mean: mean over tasks of the per-task mean;
* median: median over tasks of the per-task mean;
* IQM: the 25 %-trimmed mean of all (task, run) scores pooled (``scipy.stats.trim_mean``:
  ``g = floor(N/4)`` scores cut from each end);
* optimality gap: ``γ − mean(min(score, γ))`` over all runs;
* probability of improvement P(X > Y): per task the Mann–Whitney statistic
  ``P(x > y) + ½ P(x = y)`` over all run pairs, averaged over tasks;
* performance profile: the fraction of runs with score > τ, averaged over tasks.

Intervals resample runs within each task (the *stratified bootstrap*; ``N_BOOT`` resamples,
the one bootstrap size of :mod:`jaxinit.stats`). rliable reports the percentile interval,
which with 5–10 runs per task under-covers (measured 88 % at a nominal 95 % for the mean of 8
normal runs). The rule here, by measured coverage (tests/test_stats_simulation.py,
docs/guide/compare.md), gives one :class:`Interval` that is always finite and never reaches
past the range of the resampled statistic:

* mean, IQM, optimality gap: studentized (bootstrap-t) with a closed-form SE (for the IQM,
  Yuen's winsorized SE), *guarded*: resamples whose SE* is 0 (tied runs) are left out of the
  t* quantiles instead of counting as ±∞; Student's t quantile (Welch–Satterthwaite df) when
  a task has fewer than 4 runs or fewer than half of the resamples have SE* > 0; the ends are
  then intersected with the range of the resampled statistic. The IQM of fewer than 8 pooled
  scores takes that whole range (its SE rests on 3–5 central scores);
* median of task means: BCa (Efron 1987; acceleration from the stratified jackknife);
* P(X > Y): no bootstrap (it gives [1, 1] when X beats Y on every pair) — Newcombe's (2006)
  score-type interval for the Mann–Whitney probability (:func:`improvement_interval`);
* profile bands: percentile.

Verdicts are tests with a family-wise error rate: exact sign-flip permutation tests of the
seed-matched differences, stratified over tasks (null hypothesis: within each seed the two
schemes' scores are exchangeable), with Holm's step-down correction over the family — either
every scheme against a reference fixed before the data (:func:`recommended_reference`) or all
pairs. A report of several tables gives each its share of α (:func:`family_alphas`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "METRICS",
    "Interval",
    "PairTest",
    "SignFlipTest",
    "aggregate_intervals",
    "aggregate_iqm",
    "aggregate_mean",
    "aggregate_median",
    "aggregate_optimality_gap",
    "family_alphas",
    "holm",
    "improvement_interval",
    "paired_t_test",
    "performance_profile",
    "plot_performance_profiles",
    "probability_of_improvement",
    "recommended_reference",
    "sign_flip_test",
    "stratified_bootstrap",
    "verdicts",
]

N_BOOT = 2000
METHODS = ("studentized", "bca", "percentile")


class Interval(NamedTuple):
    """A point estimate and its confidence interval ``[lo, hi]`` (arrays for batched input),
    with ``n`` the finite values it used (None where not counted): the one interval type of
    :mod:`jaxinit.stats` (``Estimate`` is the same class; ``.mean`` is ``.value``).
    ``str`` prints ``value [lo, hi]``, or ``n/a`` without a finite value; an interval of
    arrays (e.g. :func:`performance_profile`'s) prints its three arrays.

    Example:
      >>> iv = jaxinit.Interval(0.93, lo=0.91, hi=0.95, n=8)  # what the estimators return
      >>> print(iv)
      0.93 [0.91, 0.95]
      >>> iv.value == iv.mean, iv.hi - iv.lo < 0.05
      (True, True)
      >>> print(jaxinit.Interval(float("nan"), float("nan"), float("nan"), n=0))
      n/a
    """

    value: float | np.ndarray
    lo: float | np.ndarray
    hi: float | np.ndarray
    n: int | np.ndarray | None = None

    @property
    def mean(self) -> float | np.ndarray:
        """The point estimate (the name :class:`Estimate` used for it)."""
        return self.value

    def __str__(self) -> str:
        if np.ndim(self.value) or np.ndim(self.lo) or np.ndim(self.hi):
            value, lo, hi = (
                np.array2string(np.asarray(a, np.float64), precision=4, separator=", ")
                for a in self[:3]
            )
            return f"value {value}\nlo {lo}\nhi {hi}"
        if (self.n is not None and np.ndim(self.n) == 0 and self.n == 0) or not np.isfinite(
            self.value
        ):
            return "n/a"
        return f"{self.value:.4g} [{self.lo:.4g}, {self.hi:.4g}]"


# ------------------------------------------------------------------ Part 1: the estimators
def _check_scores(name: str, scores) -> np.ndarray:
    x = np.asarray(scores, np.float64)
    if x.ndim < 2:
        raise ValueError(
            f"{name}: scores must have shape (..., tasks, runs) with rank >= 2, got shape {x.shape}"
        )
    if x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"{name}: scores of shape {x.shape} have no tasks or no runs")
    return x


def _task_means(x: np.ndarray) -> np.ndarray:
    n = np.sum(~np.isnan(x), axis=-1)
    s = np.sum(np.where(np.isnan(x), 0.0, x), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / n


def aggregate_mean(scores) -> np.ndarray:
    """Mean over tasks of the per-task mean score (rliable ``aggregate_mean``).

    >>> float(aggregate_mean([[1.0, 3.0], [10.0, 20.0]]))
    8.5
    """
    return np.mean(_task_means(_check_scores("aggregate_mean", scores)), axis=-1)


def aggregate_median(scores) -> np.ndarray:
    """Median over tasks of the per-task mean score (rliable ``aggregate_median``).

    >>> float(aggregate_median([[1.0, 3.0], [10.0, 20.0], [4.0, 4.0]]))
    4.0
    """
    return np.median(_task_means(_check_scores("aggregate_median", scores)), axis=-1)


def aggregate_iqm(scores) -> np.ndarray:
    """Interquartile mean: the 25 %-trimmed mean of all (task, run) scores pooled.

    ``g = floor(N/4)`` scores are cut from each end of the N pooled scores (as
    ``scipy.stats.trim_mean(scores, 0.25, axis=None)``, rliable ``aggregate_iqm``).

    >>> float(aggregate_iqm([[0.0, 1.0, 2.0, 100.0], [3.0, 4.0, 5.0, -50.0]]))
    2.5
    """
    x = _check_scores("aggregate_iqm", scores)
    flat = np.sort(x.reshape(*x.shape[:-2], -1), axis=-1)  # NaN sort last
    n = np.sum(~np.isnan(flat), axis=-1, keepdims=True)
    g = n // 4
    pos = np.arange(flat.shape[-1])
    keep = (pos >= g) & (pos < n - g)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(np.where(keep, flat, 0.0), axis=-1) / np.sum(keep, axis=-1)


def aggregate_optimality_gap(scores, gamma: float = 1.0) -> np.ndarray:
    """``γ − mean(min(score, γ))`` over all runs (rliable ``aggregate_optimality_gap``).

    Lower is better; with accuracies and ``γ = 1`` it is the mean error rate.

    >>> round(float(aggregate_optimality_gap([[0.5, 1.5], [0.9, 0.7]])), 6)
    0.225
    """
    x = _check_scores("aggregate_optimality_gap", scores)
    flat = x.reshape(*x.shape[:-2], -1)
    with np.errstate(invalid="ignore"):
        return gamma - np.nanmean(np.minimum(flat, gamma), axis=-1)


METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": aggregate_mean,
    "median": aggregate_median,
    "iqm": aggregate_iqm,
    "optimality_gap": aggregate_optimality_gap,
}


def probability_of_improvement(x, y) -> np.ndarray:
    """P(X > Y) + ½ P(X = Y) between runs of X and of Y, per task, averaged over tasks.

    ``x``: (..., tasks, runs_x), ``y``: (..., tasks, runs_y). The per-task value is the
    Mann–Whitney U statistic over ``runs_x · runs_y`` (rliable ``probability_of_improvement``;
    rliable returns exactly 0.5 for identical score columns, which this formula gives too).

    >>> float(probability_of_improvement([[3.0, 1.0]], [[2.0, 1.0]]))
    0.625
    """
    x = _check_scores("probability_of_improvement", x)
    y = _check_scores("probability_of_improvement", y)
    if x.shape[-2] != y.shape[-2]:
        raise ValueError(
            f"probability_of_improvement: x has {x.shape[-2]} tasks (shape {x.shape}), "
            f"y has {y.shape[-2]} (shape {y.shape}); they must match"
        )
    from scipy import stats  # lazily: ``import jaxinit`` does not load scipy

    n, m = x.shape[-1], y.shape[-1]
    if not (np.isnan(x).any() or np.isnan(y).any()):  # U from mid-ranks: O((n+m) log)
        lead = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
        both = np.concatenate([np.broadcast_to(x, (*lead, n)), np.broadcast_to(y, (*lead, m))], -1)
        u = stats.rankdata(both, axis=-1)[..., :n].sum(axis=-1) - n * (n + 1) / 2
        return np.mean(u / (n * m), axis=-1)
    a, b = x[..., :, None], y[..., None, :]  # missing runs: count the valid pairs
    valid = ~(np.isnan(a) | np.isnan(b))
    wins = np.where(valid, (a > b) + 0.5 * (a == b), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_task = wins.sum(axis=(-2, -1)) / valid.sum(axis=(-2, -1))
    return np.mean(per_task, axis=-1)


# --------------------------------------------------- Part 2: the stratified bootstrap interval
def _resample(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(..., T, n) with idx (B, T, n) -> (..., B, T, n): runs redrawn within each task."""
    return x[..., np.arange(x.shape[-2])[:, None], idx]


def _jackknife(statistic, samples: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Leave-one-run-out values, per sample: (..., T·n_k) each (the run left out is NaN)."""
    out = []
    for k, x in enumerate(samples):
        t, n = x.shape[-2:]
        eye = np.eye(t * n, dtype=bool).reshape(t * n, t, n)
        held = np.where(eye, np.nan, x[..., None, :, :])  # (..., T·n, T, n)
        others = [s[..., None, :, :] for s in samples]
        others[k] = held
        out.append(statistic(*others))
    return out


def _acceleration(jack: list[np.ndarray], samples: Sequence[np.ndarray]) -> np.ndarray:
    """BCa acceleration from the stratified jackknife (Efron & Tibshirani 1993, §14.3):
    influence values centred within each (sample, task) stratum."""
    num, den = 0.0, 0.0
    for j, x in zip(jack, samples, strict=True):
        t, n = x.shape[-2:]
        v = j.reshape(*j.shape[:-1], t, n)
        u = (n - 1) * (np.nanmean(v, axis=-1, keepdims=True) - v)
        u = np.where(np.isnan(u), 0.0, u)
        num = num + np.sum(u**3, axis=(-2, -1)) / n**3
        den = den + np.sum(u**2, axis=(-2, -1)) / n**2
    with np.errstate(invalid="ignore", divide="ignore"):
        a = num / (6 * den**1.5)
    return np.where(den > 0, a, 0.0)


def stratified_bootstrap(
    statistic: Callable[..., np.ndarray],
    *samples,
    method: str = "bca",
    se: Callable[..., np.ndarray] | None = None,
    level: float = 0.95,
    reps: int = N_BOOT,
    seed: int = 0,
    support: tuple[float, float] | None = None,
) -> Interval:
    """Point estimate and stratified-bootstrap interval of ``statistic(*samples)``.

    Args:
      statistic: maps score arrays of shapes (..., tasks, runs_k) to (...); it must treat
        NaN as a missing run (BCa's jackknife leaves runs out that way) and broadcast over
        leading axes (all estimators in this module do).
      samples: one or more score arrays (..., tasks, runs_k) with the same tasks; runs are
        redrawn with replacement within each task, independently per sample.
      method: ``"studentized"`` (bootstrap-t with a guarded SE: θ̂ − q₁₋α/₂·SE,
        θ̂ − q_α/₂·SE with q the quantiles of (θ* − θ̂)/SE* over the resamples whose SE* is
        positive — a resample of tied runs has no studentized value and is left out, never
        counted as ±∞; Student's t quantile with Welch–Satterthwaite df instead when a task
        has fewer than 4 runs or fewer than half of the resamples have SE* > 0; then
        intersected with the range of the resampled statistic, the statistic of the
        all-lowest and all-highest resample, so the interval is always finite and never
        reaches past anything resampling can produce; needs ``se``), ``"bca"`` (Efron's
        bias-corrected and accelerated percentile interval, acceleration from the
        stratified jackknife) or ``"percentile"`` (rliable's default).
      se: ``se(*samples) -> (...)``, a standard error of the statistic (studentized only).
      level: confidence level, in (0, 1).
      reps: bootstrap resamples.
      seed: seed of the numpy Generator (reports are reproducible).
      support: ``(low, high)``, the values the statistic can take (``(0, 1)`` for an
        accuracy, ``(0, inf)`` for a loss): the interval is intersected with it. With few
        runs a studentized interval can reach past it (an accuracy's above 1); the true
        value lies in the support, so the intersection covers it whenever the interval did.

    Returns:
      :class:`Interval` of arrays with the leading shape of the samples (``n``: the finite
      scores used).

    >>> x = np.array([[0.61, 0.64, 0.58, 0.70, 0.66, 0.59, 0.63, 0.65]])
    >>> iv = stratified_bootstrap(aggregate_mean, x, method="studentized", se=_se_mean)
    >>> bool(iv.lo < 0.6325 < iv.hi)
    True
    """
    if support is not None and not support[0] < support[1]:
        raise ValueError(f"stratified_bootstrap: support={support!r}; needs low < high")
    iv = _bootstrap(statistic, samples, method, se, level, reps, seed)
    used = sum(np.sum(~np.isnan(np.asarray(x, np.float64)), axis=(-2, -1)) for x in samples)
    iv = iv._replace(n=used)
    if support is None:
        return iv
    low, high = support
    return iv._replace(lo=np.clip(iv.lo, low, high), hi=np.clip(iv.hi, low, high))


def _bootstrap(statistic, samples, method, se, level, reps, seed) -> Interval:
    from scipy import special, stats

    if method not in METHODS:
        raise ValueError(f"stratified_bootstrap: method={method!r}; allowed: {METHODS}")
    if method == "studentized" and se is None:
        raise ValueError("stratified_bootstrap: method='studentized' needs se=")
    if not 0 < level < 1:
        raise ValueError(f"stratified_bootstrap: level={level!r}; allowed: 0 < level < 1")
    if not samples:
        raise ValueError("stratified_bootstrap: no samples given")
    xs = [_check_scores("stratified_bootstrap", s) for s in samples]
    if len({x.shape[-2] for x in xs}) != 1:
        raise ValueError(
            f"stratified_bootstrap: samples have shapes {[x.shape for x in xs]}; "
            "their task axes (-2) must match"
        )
    rng = np.random.default_rng(seed)
    theta = np.asarray(statistic(*xs), np.float64)
    rs = [_resample(x, rng.integers(0, x.shape[-1], (reps, *x.shape[-2:]))) for x in xs]
    boots = np.asarray(statistic(*rs), np.float64)  # (..., B)
    alpha = (1 - level) / 2
    if method == "percentile":
        lo, hi = np.nanquantile(boots, [alpha, 1 - alpha], axis=-1)
        return Interval(theta, lo, hi)
    if method == "studentized" and se is not None:  # se is given (checked above)
        lo, hi = _studentized(theta, boots, se(*xs), se(*rs), xs, alpha)
        # Never past what resampling can produce: for the monotone statistics here
        # (mean, median, IQM, gap) every resample lies between the statistic of the
        # all-lowest and the all-highest resample of each task.
        low, high = _resampled_range(statistic, xs)
        return Interval(theta, np.clip(lo, low, high), np.clip(hi, low, high))
    th = theta[..., None]
    # z0 counts resamples equal to the estimate as half below: "equal" up to rounding (a
    # resampled mean of tied scores differs from the estimate in the last bits)
    tie = np.abs(boots - th) <= 1e-12 * np.maximum(np.abs(th), 1.0)
    frac = np.mean((boots < th) & ~tie, axis=-1) + 0.5 * np.mean(tie, axis=-1)
    z0 = stats.norm.ppf(np.clip(frac, 0.5 / reps, 1 - 0.5 / reps))
    a = _acceleration(_jackknife(statistic, xs), xs)
    z = stats.norm.ppf(alpha)

    def quantile_level(zq):
        s = z0 + zq
        return special.ndtr(z0 + s / (1 - a * s))

    srt = np.sort(boots, axis=-1)

    def pick(q):
        pos = np.clip(np.nan_to_num(q, nan=0.5) * (reps - 1), 0, reps - 1)
        i = np.floor(pos).astype(int)
        j = np.minimum(i + 1, reps - 1)
        w = pos - i
        lo = np.take_along_axis(srt, i[..., None], axis=-1)[..., 0]
        hi = np.take_along_axis(srt, j[..., None], axis=-1)[..., 0]
        return lo + w * (hi - lo)

    flat = srt[..., 0] == srt[..., -1]
    lo = np.where(flat, theta, pick(quantile_level(z)))
    hi = np.where(flat, theta, pick(quantile_level(-z)))
    return Interval(theta, lo, hi)


def _studentized(theta, boots, s0, se_boot, xs, alpha):
    """The studentized (bootstrap-t) ends θ̂ − q₁₋α/₂·SE, θ̂ − q_α/₂·SE, with a guarded SE.

    The rule: q are the quantiles of t* = (θ* − θ̂)/SE* over the resamples whose SE* is
    positive and finite (a resample of tied runs has SE* = 0 and no studentized value: it
    is left out rather than counted as ±∞). Where fewer than half of the resamples have
    one, or a task has fewer than 4 runs (with 2 runs half of the resamples are tied), q
    is Student's t quantile with the Welch–Satterthwaite degrees of freedom of the
    stratified SE (Σ(runs − 1) with equal variances): the classical t interval. With no
    spread at all (SE = 0) the interval is the point.
    """
    from scipy import stats

    with np.errstate(invalid="ignore", divide="ignore"):
        t = (boots - theta[..., None]) / se_boot
    ok = (se_boot > 0) & np.isfinite(t)
    t = np.where(ok, t, np.nan)
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        qlo, qhi = np.nanquantile(t, [alpha, 1 - alpha], axis=-1, method="inverted_cdf")
    tq = stats.t.ppf(1 - alpha, _welch_df(xs))
    few = (min(x.shape[-1] for x in xs) < 4) | (np.mean(ok, axis=-1) < 0.5) | ~np.isfinite(qlo)
    qlo, qhi = np.where(few, -tq, qlo), np.where(few, tq, qhi)
    with np.errstate(invalid="ignore"):
        lo, hi = theta - qhi * s0, theta - qlo * s0
    flat = ~(s0 > 0)  # no spread at all (or no SE): the interval is the point
    return np.where(flat, theta, lo), np.where(flat, theta, hi)


@contextlib.contextmanager
def _quiet_nan_warnings():
    """All-NaN slices (a study with no finite run) give NaN without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _welch_df(xs: Sequence[np.ndarray]) -> np.ndarray:
    """Welch–Satterthwaite degrees of freedom of Σ over (sample, task) strata of s²/n."""
    num, den = 0.0, 0.0
    for x in xs:
        n = np.sum(~np.isnan(x), axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.nanvar(x, axis=-1, ddof=1) / n if x.shape[-1] > 1 else np.zeros(x.shape[:-1])
            v = np.where(n > 1, v, 0.0)
            num = num + np.sum(v, axis=-1)
            den = den + np.sum(np.where(n > 1, v**2 / np.maximum(n - 1, 1), 0.0), axis=-1)
    total = sum(np.sum(np.maximum(np.sum(~np.isnan(x), axis=-1) - 1, 0), axis=-1) for x in xs)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.where(den > 0, num**2 / den, total)
    return np.maximum(df, 1.0)


def _resampled_range(statistic, xs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The statistic of the all-lowest and the all-highest resample (each task's runs all
    replaced by its smallest, resp. largest, finite run): for a statistic monotone in every
    score, the range over all resamples."""
    with _quiet_nan_warnings():
        mins = [np.where(np.isnan(x), np.nan, np.nanmin(x, axis=-1, keepdims=True)) for x in xs]
        maxs = [np.where(np.isnan(x), np.nan, np.nanmax(x, axis=-1, keepdims=True)) for x in xs]
        a = np.asarray(statistic(*mins), np.float64)
        b = np.asarray(statistic(*maxs), np.float64)
    return np.fmin(a, b), np.fmax(a, b)


# ------------------------------------------------------------ Part 3: standard errors
def _se_mean(x: np.ndarray) -> np.ndarray:
    """Stratified SE of the mean of task means: √(Σ_t s_t²/n_t) / T."""
    n = np.sum(~np.isnan(x), axis=-1)
    var = np.nanvar(x, axis=-1, ddof=1) if x.shape[-1] > 1 else np.zeros(x.shape[:-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.nansum(var / n, axis=-1)) / x.shape[-2]


def _se_iqm(x: np.ndarray) -> np.ndarray:
    """Yuen's (1974) SE of the pooled 25 %-trimmed mean: s_w·√(N − 1) / √(h(h − 1)), h = N − 2g
    the scores kept and s_w² the winsorized variance (ddof 1) of the scores centred within
    each task (Tukey–McLaughlin's s_w / ((1 − 2g/N)·√N) differs from it by O(1/N))."""
    c = x - _task_means(x)[..., None]
    flat = np.sort(c.reshape(*c.shape[:-2], -1), axis=-1)
    n = np.sum(~np.isnan(flat), axis=-1, keepdims=True)
    g = n // 4
    pos = np.arange(flat.shape[-1])
    lo = np.take_along_axis(flat, g, axis=-1)
    hi = np.take_along_axis(flat, np.maximum(n - g - 1, 0), axis=-1)
    w = np.where(pos < n, np.clip(flat, lo, hi), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        sw2 = np.nanvar(w, axis=-1, ddof=1)
        h = (n - 2 * g)[..., 0]
        return np.sqrt(sw2 * (n[..., 0] - 1) / (h * (h - 1)))


def _se_poi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """DeLong (placement) SE of the task-averaged Mann–Whitney probability:
    per task var(V_x)/n + var(V_y)/m, V the per-run mean win rates; summed, / T."""
    a, b = x[..., :, None], y[..., None, :]
    valid = ~(np.isnan(a) | np.isnan(b))
    wins = np.where(valid, (a > b) + 0.5 * (a == b), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        vx = np.nanmean(wins, axis=-1)  # (..., T, n)
        vy = np.nanmean(wins, axis=-2)  # (..., T, m)
        n = np.sum(~np.isnan(vx), axis=-1)
        m = np.sum(~np.isnan(vy), axis=-1)
        var = np.nanvar(vx, axis=-1, ddof=1) / n + np.nanvar(vy, axis=-1, ddof=1) / m
        return np.sqrt(np.nansum(var, axis=-1)) / x.shape[-2]


def _se_optimality_gap(x: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    return _se_mean(np.minimum(x, gamma))


# ---------------------------------------------- Part 4: intervals for the rliable metrics
# The interval method of each metric, chosen by measured coverage (tests/test_aggregate.py):
# the bootstrap-t with a closed-form SE where one exists, BCa otherwise.
_SE = {"mean": _se_mean, "iqm": _se_iqm, "optimality_gap": _se_optimality_gap}


def aggregate_intervals(
    scores,
    level: float = 0.95,
    reps: int = N_BOOT,
    seed: int = 0,
    gamma: float = 1.0,
    support: tuple[float, float] | None = None,
) -> dict[str, Interval]:
    """Mean, median, IQM and optimality gap of a (..., tasks, runs) score matrix, each with a
    stratified-bootstrap interval: studentized with a guarded SE (see
    :func:`stratified_bootstrap`) for the mean (SE √(Σ s_t²/n_t)/T), the IQM (Yuen's
    winsorized SE; with fewer than 8 pooled scores, the whole resampled range) and the
    optimality gap; BCa for the median of task means. Every interval lies inside the range
    of the resampled statistic and is finite.
    ``support``: the scores' possible range (``(0, 1)`` for accuracies); the intervals are
    intersected with the range each statistic can take (the gap's: ``[0, γ − low]``).

    >>> acc = np.array([[0.91, 0.93, 0.90, 0.95, 0.92], [0.80, 0.85, 0.82, 0.79, 0.84]])
    >>> cis = aggregate_intervals(acc)
    >>> round(float(cis["mean"].value), 3), bool(cis["mean"].lo < cis["mean"].value)
    (0.871, True)
    """
    x = _check_scores("aggregate_intervals", scores)
    out = {}
    for name, fn in METRICS.items():
        stat = (lambda s: aggregate_optimality_gap(s, gamma)) if name == "optimality_gap" else fn
        se = (lambda s: _se_optimality_gap(s, gamma)) if name == "optimality_gap" else _SE.get(name)
        method = "studentized" if se is not None else "bca"
        bounds = support
        if support is not None and name == "optimality_gap":
            bounds = (0.0, max(gamma - support[0], 0.0) or np.inf)
        iv = stratified_bootstrap(stat, x, method=method, se=se, level=level, reps=reps,
                                  seed=seed, support=bounds)  # fmt: skip
        if name == "iqm":
            # Fewer than 8 pooled scores: one score trimmed per end, the winsorized SE rests
            # on the 3–5 central ones and the bootstrap-t under-covers (measured 87 % at 5
            # normal runs); the interval is then the whole resampled range, [min, max] of
            # the pooled scores, which covers the median with probability 1 − 2^(1−N)
            # (93.75 % at N = 5) whatever the distribution.
            few = np.sum(~np.isnan(x), axis=(-2, -1)) < 8
            if np.any(few):
                low, high = _resampled_range(aggregate_iqm, [x])
                if bounds is not None:
                    low, high = np.clip(low, *bounds), np.clip(high, *bounds)
                iv = iv._replace(lo=np.where(few, low, iv.lo), hi=np.where(few, high, iv.hi))
        out[name] = iv
    return out


def improvement_interval(x, y, level: float = 0.95, reps: int = N_BOOT, seed: int = 0) -> Interval:
    """P(X > Y) (task-averaged Mann–Whitney) with a score-type interval that keeps its
    coverage under separation.

    The interval is Newcombe's (2006, "Confidence intervals for an effect size measure
    based on the Mann–Whitney statistic. Part 2: asymptotic methods and evaluation",
    Statistics in Medicine 25:559–573) method 5: the θ with (θ̂ − θ)² ≤ z²·V(θ), where V
    is Hanley & McNeil's (1982) variance of the Mann–Whitney estimate written as a
    function of θ alone, θ(1 − θ)/(nm)·[1 + (N* − 1)((1 − θ)/(2 − θ) + θ/(1 + θ))], N* =
    (n + m)/2 − 1, n, m the runs of X and Y. With T tasks θ̂ is the task average and V the
    sum of the per-task variances over T² at a common θ; z is Student's quantile with
    Σ(n + m − 2) degrees of freedom (our small-sample correction). Because V is evaluated at θ, not
    at θ̂, the interval never collapses: when every X run beats every Y run (θ̂ = 1, where a
    bootstrap gives [1, 1]) it is [lower root, 1] with the lower root below 1. It stays
    in [0, 1]; ``reps`` and ``seed`` are unused (no resampling) and kept for compatibility.

    >>> iv = improvement_interval([[5.0, 6.0, 7.0, 8.0, 9.0]], [[0.0, 1.0, 2.0, 3.0, 4.0]])
    >>> float(iv.value), round(float(iv.lo), 3), float(iv.hi)
    (1.0, 0.612, 1.0)
    """
    from scipy import stats

    if not 0 < level < 1:
        raise ValueError(f"improvement_interval: level={level!r}; allowed: 0 < level < 1")
    x = _check_scores("improvement_interval", x)
    y = _check_scores("improvement_interval", y)
    theta = np.asarray(probability_of_improvement(x, y), np.float64)
    n = np.sum(~np.isnan(x), axis=-1).astype(np.float64)  # (..., T)
    m = np.sum(~np.isnan(y), axis=-1).astype(np.float64)
    # z is Student's quantile with Σ(n + m − 2) df: a small-sample correction of ours
    # (measured: at 5 runs per scheme the normal quantile covers 92–93 %, this 95–97 %)
    z2 = stats.t.ppf(0.5 + level / 2, np.maximum(np.sum(n + m - 2, axis=-1), 1)) ** 2
    tasks = x.shape[-2]

    def excess(th):  # (θ̂ − θ)² − z² V(θ): ≥ 0 outside the interval, ≤ 0 inside
        th_t = th[..., None]
        n_star = (n + m) / 2 - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            v = (
                th_t
                * (1 - th_t)
                / (n * m)
                * (1 + (n_star - 1) * ((1 - th_t) / (2 - th_t) + th_t / (1 + th_t)))
            )
        return (theta - th) ** 2 - z2 * np.sum(v, axis=-1) / tasks**2

    def root(a, b):  # bisection between a (excess ≥ 0) and b (excess ≤ 0)
        a, b = np.array(a, np.float64), np.array(b, np.float64)
        for _ in range(60):
            mid = (a + b) / 2
            out = excess(mid) >= 0
            a, b = np.where(out, mid, a), np.where(out, b, mid)
        return (a + b) / 2

    zeros = np.zeros_like(theta)
    lo = np.where(theta > 0, root(zeros, theta), 0.0)
    hi = np.where(theta < 1, root(zeros + 1.0, theta), 1.0)
    bad = ~np.isfinite(theta)
    return Interval(theta, np.where(bad, np.nan, lo), np.where(bad, np.nan, hi),
                    np.sum(n * m, axis=-1).astype(int))  # fmt: skip


def performance_profile(
    scores, taus, level: float = 0.95, reps: int = N_BOOT, seed: int = 0
) -> Interval:
    """Fraction of runs with score > τ (per task, then averaged over tasks) for each τ, with
    pointwise percentile bands from the stratified bootstrap (one resample shared by all τ,
    as rliable's ``create_performance_profile``). Returns arrays of shape (len(taus),).

    Example:
      >>> scores = np.array([[0.2, 0.4, 0.6, 0.8], [0.1, 0.5, 0.7, 0.9]])  # (tasks, runs)
      >>> profile = jaxinit.performance_profile(scores, taus=[0.0, 0.5, 1.0])  # an Interval
      >>> profile.value.tolist(), profile.lo.shape, profile.hi.shape
      ([1.0, 0.5, 0.0], (3,), (3,))
    """
    x = _check_scores("performance_profile", scores)
    taus = np.asarray(taus, np.float64)
    if taus.ndim != 1:
        raise ValueError(f"performance_profile: taus must be 1-D, got shape {taus.shape}")
    above = np.where(np.isnan(x), np.nan, (x[None] > taus[:, None, None]).astype(np.float64))
    return stratified_bootstrap(
        aggregate_mean, above, method="percentile", level=level, reps=reps, seed=seed
    )


def plot_performance_profiles(
    profiles: Mapping[str, Interval],
    taus,
    path: str | None = None,
    ax=None,
    xlabel: str = "score τ",
) -> None:
    """One line per name (fraction of runs > τ) with its band, drawn on ``ax`` or written
    to ``path`` as a new figure."""
    fig = None
    if ax is None:
        from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

        fig = Figure(figsize=(6.5, 4.2))
        ax = fig.subplots()
    for name, p in profiles.items():
        line = ax.plot(taus, p.value, label=name, drawstyle="steps-post")[0]
        ax.fill_between(taus, p.lo, p.hi, color=line.get_color(), alpha=0.2, step="post")
    ax.set(xlabel=xlabel, ylabel="fraction of runs with score > τ", ylim=(-0.02, 1.02))
    ax.set_title("performance profiles (95 % stratified bootstrap bands)", fontsize=10)
    ax.legend(fontsize=7)
    if fig is not None and path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=120)


# ------------------------------------------------------------ Part 5: tests and verdicts
class PairTest(NamedTuple):
    """Paired (seed-matched) t-test of mean(a − b), stratified over tasks."""

    diff: float  # mean over tasks of the per-task mean difference
    lo: float  # t interval at the requested level (not multiplicity-adjusted)
    hi: float
    p: float | np.ndarray  # two-sided p-value
    df: float  # Welch–Satterthwaite degrees of freedom
    n: int  # pairs used (both finite)


def paired_t_test(a, b, level: float = 0.95) -> PairTest:
    """Paired t-test of a − b over (..., tasks, runs) with runs matched by seed.

    The estimate is the mean of per-task mean differences, its SE √(Σ_t s_t²/n_t)/T and the
    degrees of freedom Welch–Satterthwaite's (n − 1 with one task: the classic paired t-test,
    exact for normal differences; under the null of exchangeable schemes the differences are
    symmetric, where the t-test keeps its level). Pairs with a non-finite member are dropped.

    >>> t = paired_t_test([[1.0, 2.0, 3.0, 4.0]], [[0.5, 1.0, 2.9, 3.0]])
    >>> round(float(t.diff), 3), round(float(t.p), 3)
    (0.65, 0.058)
    """
    from scipy import stats

    a = _check_scores("paired_t_test", a)
    b = _check_scores("paired_t_test", b)
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        raise ValueError(
            f"paired_t_test: a has shape {a.shape}, b {b.shape}; they must broadcast"
        ) from None
    ok = np.isfinite(a) & np.isfinite(b)
    d = np.where(ok, a - b, np.nan)
    n_t = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_t = np.nansum(np.where(ok, d, 0.0), axis=-1) / n_t
        var_t = np.nansum(np.where(ok, (d - mean_t[..., None]) ** 2, 0.0), axis=-1) / (n_t - 1)
        v = np.where(n_t > 1, var_t / n_t, np.nan)
        tasks = d.shape[-2]
        diff = np.mean(mean_t, axis=-1)
        se = np.sqrt(np.sum(v, axis=-1)) / tasks
        df = np.sum(v, axis=-1) ** 2 / np.sum(v**2 / (n_t - 1), axis=-1)
        df = np.where(np.sum(v, axis=-1) > 0, df, np.sum(n_t - 1, axis=-1))
        t = diff / se
    p = np.where(se > 0, 2 * stats.t.sf(np.abs(t), df), np.where(diff == 0, 1.0, 0.0))
    p = np.where(np.isfinite(diff) & np.isfinite(se), p, np.nan)
    q = stats.t.ppf(0.5 + level / 2, df)
    return PairTest(diff, diff - q * se, diff + q * se, p, df, n_t.sum(axis=-1))


class SignFlipTest(NamedTuple):
    """Sign-flip permutation test of seed-paired differences, stratified over tasks."""

    diff: float | np.ndarray  # mean over tasks of the per-task mean difference a − b
    p: float | np.ndarray  # two-sided permutation p-value
    n: int | np.ndarray  # pairs used (both finite)
    p_min: float | np.ndarray  # the smallest p-value these pairs can give (2 / 2^pairs)


EXACT_PAIRS = 20  # up to 2^20 sign patterns are enumerated; beyond, 2^16 random ones


def sign_flip_test(a, b, seed: int = 0) -> SignFlipTest:
    """Exact sign-flip permutation test of a − b over (..., tasks, runs), runs matched by seed.

    Null hypothesis: within each seed the two schemes' scores are exchangeable — each
    paired difference is as likely to be d as −d (symmetric about 0). The statistic is
    the mean over tasks of the per-task mean difference; its permutation distribution
    flips the sign of every pair independently. With at most ``EXACT_PAIRS`` pairs all
    2^pairs patterns are enumerated (the test is exact: its false-positive rate is ≤ α
    for any symmetric differences, skewed, bimodal or heavy-tailed scores alike, at any
    number of seeds); beyond, 2^16 random patterns plus the observed one give a valid
    Monte Carlo p-value. The smallest attainable p is 2 / 2^pairs (1/16 with 5 pairs: no
    verdict at 5 % from 5 seeds of one task). Pairs with a non-finite member are dropped.

    >>> t = sign_flip_test([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]], [[0.5, 1.0, 2.9, 3.0, 4.0, 5.5]])
    >>> round(float(t.diff), 3), float(t.p), float(t.p_min)
    (0.683, 0.03125, 0.03125)
    """
    a = _check_scores("sign_flip_test", a)
    b = _check_scores("sign_flip_test", b)
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        raise ValueError(
            f"sign_flip_test: a has shape {a.shape}, b {b.shape}; they must broadcast"
        ) from None
    ok = np.isfinite(a) & np.isfinite(b)
    n_t = ok.sum(axis=-1)
    tasks = a.shape[-2]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(ok, 1.0 / (tasks * n_t[..., None]), 0.0)
    wd = (w * np.where(ok, a - b, 0.0)).reshape(*a.shape[:-2], -1)
    diff = np.where(np.all(n_t > 0, axis=-1), wd.sum(axis=-1), np.nan)
    pairs = wd.shape[-1]
    lead = wd.shape[:-1]
    flat = wd.reshape(-1, pairs)
    obs = np.abs(flat.sum(axis=-1))
    scale = np.abs(flat).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # |S*| ≥ |S| up to rounding, in units of Σ|w·d| (≤ 0: every pattern is as extreme)
        thr = np.where(scale > 0, obs / scale - 1e-9, 0.0)
    if pairs <= EXACT_PAIRS:
        unit = flat / np.where(scale > 0, scale, 1.0)[:, None]
        count, total, extra = _exact_sign_flip_count(unit, thr)
    else:
        rng = np.random.default_rng(seed)
        signs = rng.choice([-1.0, 1.0], size=(2**16, pairs))
        count, total, extra = np.empty(len(flat)), len(signs), 1
        step = max(1, 2**22 // len(signs))
        for i in range(0, len(flat), step):
            perm = np.abs(flat[i : i + step] @ signs.T)
            count[i : i + step] = np.sum(perm >= (obs - 1e-9 * scale)[i : i + step, None], -1)
    p = ((count + extra) / (total + extra)).reshape(lead)
    p = np.where(np.isfinite(diff), np.minimum(p, 1.0), np.nan)
    used = ok.sum(axis=(-2, -1))
    nonzero = np.sum(flat != 0, axis=-1).reshape(lead)
    p_min = np.minimum(2.0 ** (1 - nonzero.astype(np.float64)), 1.0)
    p_min = np.maximum(p_min, extra / (total + extra))  # Monte Carlo: 1/(2^16 + 1)
    return SignFlipTest(diff, p, used, p_min)


def _signs(k: int) -> np.ndarray:
    """All 2^k sign patterns, (2^k, k)."""
    return 1.0 - 2.0 * (np.arange(2**k)[:, None] >> np.arange(k) & 1)


def _exact_sign_flip_count(f: np.ndarray, thr: np.ndarray) -> tuple[np.ndarray, int, int]:
    """For each row of ``f`` (R, N), with Σ|f| ≤ 1: how many of the 2^N sign patterns ε give
    |Σ ε f| ≥ thr. Meet in the middle: the 2^⌊N/2⌋ sums of the first half against the
    sorted 2^⌈N/2⌉ sums of the second, counted by binary search (rows kept apart by an
    offset of 4, more than any sum's range)."""
    rows, n = f.shape
    h = n // 2
    a = f[:, :h] @ _signs(h).T  # (R, 2^h), each in [−1, 1]
    b = np.sort(f[:, h:] @ _signs(n - h).T, axis=-1)  # (R, 2^(n−h))
    nb = b.shape[-1]
    off = 4.0 * np.arange(rows)[:, None]
    flat_b = (b + off).ravel()
    start = (nb * np.arange(rows))[:, None]
    t = thr[:, None]
    # Σ = a + b ≥ t  ⇔  b ≥ t − a;   Σ ≤ −t  ⇔  b ≤ −t − a  (disjoint for t > 0)
    ge = nb - np.clip(np.searchsorted(flat_b, (t - a + off).ravel(), "left").reshape(a.shape)
                      - start, 0, nb)  # fmt: skip
    le = np.clip(np.searchsorted(flat_b, (-t - a + off).ravel(), "right").reshape(a.shape)
                 - start, 0, nb)  # fmt: skip
    count = np.where(thr > 0, np.sum(ge + le, axis=-1), a.shape[-1] * nb)
    return count.astype(np.float64), a.shape[-1] * nb, 0


def family_alphas(sizes: Mapping[str, int], alpha: float = 0.05) -> dict[str, float]:
    """One error rate for a report of several tables: each table (family) of ``k`` tests
    gets the share ``α·k/K`` of ``α`` (K: all tests in the report), and runs Holm's
    procedure at it; by Bonferroni's inequality over the tables the chance of any false
    verdict in the whole report is ≤ ``α``.

    >>> {k: round(a, 4) for k, a in family_alphas({"relu": 7, "tanh": 7, "aggregate": 28}).items()}
    {'relu': 0.0083, 'tanh': 0.0083, 'aggregate': 0.0333}
    """
    if not 0 < alpha < 1:
        raise ValueError(f"family_alphas: alpha={alpha!r}; allowed: 0 < alpha < 1")
    bad = {k: v for k, v in sizes.items() if not (isinstance(v, int | np.integer) and v >= 0)}
    if bad:
        raise ValueError(f"family_alphas: sizes must be counts >= 0, got {bad}")
    total = sum(sizes.values())
    return {k: (alpha * v / total if total else alpha) for k, v in sizes.items()}


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values over the last axis (family-wise error control:
    reject where adjusted p ≤ α). NaN p-values (untestable) stay NaN and are not counted.

    >>> holm([0.01, 0.04, 0.03, 0.20]).round(3).tolist()
    [0.04, 0.09, 0.09, 0.2]
    """
    p = np.asarray(pvalues, np.float64)
    k = np.sum(~np.isnan(p), axis=-1, keepdims=True)
    order = np.argsort(np.where(np.isnan(p), np.inf, p), axis=-1)
    srt = np.take_along_axis(p, order, axis=-1)
    rank = np.arange(p.shape[-1])
    adj = np.minimum(1.0, (k - rank) * np.where(np.isnan(srt), 0.0, srt))
    adj = np.maximum.accumulate(adj, axis=-1)
    adj = np.where(np.isnan(srt), np.nan, adj)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return out


def recommended_reference(activation: str, inits: Sequence[str]) -> str | None:
    """The first of ``inits`` whose registry entry lists ``activation`` among the activations
    it suits (the seed documents' table: He for ReLU, Glorot for tanh, LeCun for SELU); None
    when no scheme in ``inits`` is recommended for it. Fixed before any data is seen, so
    comparisons against it need no selection correction.

    >>> recommended_reference("relu", ["zeros", "glorot_uniform", "he_normal"])
    'he_normal'
    """
    from jaxinit.initializers import scheme

    for name in inits:
        try:
            s = scheme(name)
        except ValueError:
            continue
        if activation in s.activations:
            return name
    return None


TESTS = ("sign_flip", "t")


def verdicts(
    scores: Mapping[str, np.ndarray],
    reference: str | None = None,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    test: str = "sign_flip",
) -> dict:
    """Multiplicity-controlled verdicts from seed-matched score matrices (tasks, runs).

    Each comparison is an exact sign-flip permutation test of the seed-paired differences
    (:func:`sign_flip_test`; null hypothesis: within each seed the two schemes' scores are
    exchangeable), or with ``test="t"`` the paired t-test (:func:`paired_t_test`, whose
    level fails for skewed or bimodal differences at 5–10 seeds). With ``reference``:
    every other scheme against it, Holm over those ``k − 1`` tests. Without: all
    ``k(k−1)/2`` pairs, Holm over all of them (no selection of a "best" before testing).
    Either way the family-wise error rate is ≤ ``alpha`` (for a report of several tables,
    give each its share: :func:`family_alphas`).

    Returns ``{"procedure": str, "null": str, "alpha": alpha, "tests": [{"a", "b", "diff",
    "lo", "hi", "p", "p_holm", "p_min", "n", "verdict"}...], "verdict": {name: str},
    "reachable": bool}`` where a test's diff is a − b with ``[lo, hi]`` its guarded
    studentized 95 % interval (not multiplicity-adjusted), its verdict ``"a better"``,
    ``"b better"`` or ``"indistinguishable"``, and ``reachable`` says whether the smallest
    attainable p-value can pass Holm's first threshold ``alpha / tests`` at all.

    Example:
      >>> scores = {  # test accuracy, (tasks, seeds), seed-matched across schemes
      ...     "lecun": np.array([[0.88, 0.90, 0.89, 0.91, 0.90, 0.89, 0.90, 0.92]]),
      ...     "he": np.array([[0.91, 0.93, 0.92, 0.94, 0.95, 0.92, 0.93, 0.94]]),
      ...     "orthogonal": np.array([[0.89, 0.90, 0.88, 0.92, 0.89, 0.90, 0.91, 0.91]])}
      >>> v = jaxinit.verdicts(scores, reference="lecun")
      >>> v["verdict"]
      {'lecun': 'reference', 'he': 'better than lecun',
       'orthogonal': 'indistinguishable from lecun'}
      >>> [(t["a"], t["b"], round(t["diff"], 3), round(t["p_holm"], 4)) for t in v["tests"]]
      [('he', 'lecun', 0.031, 0.0156), ('orthogonal', 'lecun', 0.001, 1.0)]
    """
    names = list(scores)
    if reference is not None and reference not in scores:
        raise ValueError(f"verdicts: reference {reference!r} is not one of {names}")
    if test not in TESTS:
        raise ValueError(f"verdicts: test={test!r}; allowed: {TESTS}")
    name = ("exact sign-flip permutation test of the seed-paired differences"
            if test == "sign_flip" else "paired t-test")  # fmt: skip
    if reference is not None:
        pairs = [(n, reference) for n in names if n != reference]
        procedure = (f"{name} of each scheme against the pre-registered reference "
                     f"{reference!r}, Holm-adjusted over {len(pairs)} tests")  # fmt: skip
    else:
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        procedure = f"{name} of every pair, Holm-adjusted over {len(pairs)} tests"
    null = ("within each seed the two schemes' scores are exchangeable (each paired "
            "difference symmetric about 0)" if test == "sign_flip" else
            "the paired differences have mean 0 (normal differences)")  # fmt: skip
    rows: list[dict[str, Any]] = []
    for a, b in pairs:
        x, y = np.asarray(scores[a], np.float64), np.asarray(scores[b], np.float64)
        if test == "sign_flip":
            t = sign_flip_test(x, y)
            p, p_min = float(t.p), float(t.p_min)
        else:
            tt = paired_t_test(x, y)
            p, p_min = float(tt.p), 0.0
        d = np.where(np.isfinite(x) & np.isfinite(y), x - y, np.nan)
        if np.sum(np.isfinite(d)) > 1 and np.all(np.sum(np.isfinite(d), axis=-1) > 0):
            iv = stratified_bootstrap(aggregate_mean, d, method="studentized", se=_se_mean)
        else:
            iv = Interval(np.nan, np.nan, np.nan)
        rows.append({"a": a, "b": b, "diff": float(iv.value), "lo": float(iv.lo),
                     "hi": float(iv.hi), "p": p, "p_min": p_min,
                     "n": int(np.sum(np.isfinite(d)))})  # fmt: skip
    adj = holm(np.array([r["p"] for r in rows])) if rows else np.array([])
    sign = 1 if higher_is_better else -1
    for r, pa in zip(rows, adj, strict=True):
        r["p_holm"] = float(pa)
        if np.isnan(pa):
            r["verdict"] = "untestable"
        elif pa <= alpha:
            r["verdict"] = "a better" if sign * r["diff"] > 0 else "b better"
        else:
            r["verdict"] = "indistinguishable"
    reachable = bool(rows) and min(r["p_min"] for r in rows) <= alpha / len(rows)
    verdict: dict[str, str] = {}
    if reference is not None:
        verdict[reference] = "reference"
        for r in rows:
            v = r["verdict"]
            verdict[r["a"]] = {"a better": f"better than {reference}",
                               "b better": f"worse than {reference}",
                               "indistinguishable": f"indistinguishable from {reference}",
                               }.get(v, "untestable")  # fmt: skip
    else:
        for n in names:
            beats = [r["b"] if r["a"] == n else r["a"] for r in rows
                     if (r["a"] == n and r["verdict"] == "a better")
                     or (r["b"] == n and r["verdict"] == "b better")]  # fmt: skip
            loses = [r["b"] if r["a"] == n else r["a"] for r in rows
                     if (r["a"] == n and r["verdict"] == "b better")
                     or (r["b"] == n and r["verdict"] == "a better")]  # fmt: skip
            parts = ([f"better than {', '.join(beats)}"] if beats else []) + (
                [f"worse than {', '.join(loses)}"] if loses else [])  # fmt: skip
            verdict[n] = "; ".join(parts) or "no significant difference"
    return {"procedure": procedure, "null": null, "alpha": alpha, "tests": rows,
            "verdict": verdict, "reachable": reachable}  # fmt: skip
