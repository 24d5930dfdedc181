"""Statistics over seeds: bootstrap confidence intervals, censored steps-to-target, verdicts.

Conventions: confidence intervals are percentile bootstrap intervals (2000 resamples of the
seeds, a fixed numpy Generator so reports are reproducible). A member that never reaches a
target is *censored* at the horizon: it is counted in the fraction that reached it and in
the Kaplan–Meier median (which then may be "not reached"), never as if it had reached the
target at the last step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

N_BOOT = 2000


class Estimate(NamedTuple):
    mean: float
    lo: float
    hi: float
    n: int  # finite values used

    def __str__(self) -> str:
        if self.n == 0:
            return "n/a"
        return f"{self.mean:.4g} [{self.lo:.4g}, {self.hi:.4g}]"


def bootstrap_ci(values: np.ndarray, level: float = 0.95, seed: int = 0) -> Estimate:
    """Mean and percentile-bootstrap CI of the finite ``values`` (non-finite are dropped:
    report divergence separately)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return Estimate(np.nan, np.nan, np.nan, 0)
    if len(v) == 1:
        return Estimate(float(v[0]), float(v[0]), float(v[0]), 1)
    means = bootstrap_means(v[:, None], seed)[:, 0]
    a = (1 - level) / 2
    return Estimate(float(v.mean()), *np.quantile(means, [a, 1 - a]).tolist(), len(v))


def bootstrap_means(matrix: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N_BOOT, columns) means of rows resampled with replacement (vectorised: one index
    draw shared by all columns, e.g. all steps of a loss curve)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, matrix.shape[0], size=(N_BOOT, matrix.shape[0]))
    return np.nanmean(matrix[idx], axis=1)


def curve_band(matrix: np.ndarray, level: float = 0.95, seed: int = 0):
    """Mean curve and pointwise bootstrap band of a (seeds, steps) matrix."""
    means = bootstrap_means(matrix, seed)
    a = (1 - level) / 2
    lo, hi = np.nanquantile(means, [a, 1 - a], axis=0)
    return np.nanmean(matrix, axis=0), lo, hi


def first_crossing(steps: np.ndarray, curves: np.ndarray, target: float) -> np.ndarray:
    """Per row, the first step where the curve is ≤ target; ``inf`` if never (censored)."""
    hit = np.asarray(curves) <= target
    first = np.where(hit.any(axis=1), np.argmax(hit, axis=1), -1)
    return np.where(first >= 0, np.asarray(steps)[np.maximum(first, 0)], np.inf)


class TimeToTarget(NamedTuple):
    fraction: float  # members that reached the target
    median: float  # Kaplan–Meier median; inf when fewer than half reached it
    lo: float  # bootstrap CI of the median (inf: not reached in that resample)
    hi: float

    def __str__(self) -> str:
        def f(x):
            return "not reached" if not np.isfinite(x) else f"{x:.0f}"

        return f"{f(self.median)} [{f(self.lo)}, {f(self.hi)}] ({self.fraction:.0%} reached)"


def _km_median(times: np.ndarray) -> float:
    # All censoring is at the horizon, so the Kaplan–Meier estimate is the empirical CDF
    # of the crossing times and its median is the lower median (inf if < half crossed).
    t = np.sort(times)
    k = (len(t) + 1) // 2 - 1
    return float(t[k])


def time_to_target(times: np.ndarray, level: float = 0.95, seed: int = 0) -> TimeToTarget:
    """Summarise first-crossing times (``inf`` = censored) over seeds."""
    t = np.asarray(times, np.float64)
    rng = np.random.default_rng(seed)
    boots = np.sort(t[rng.integers(0, len(t), size=(N_BOOT, len(t)))], axis=1)
    medians = boots[:, (len(t) + 1) // 2 - 1]
    a = (1 - level) / 2
    lo, hi = np.quantile(medians, [a, 1 - a], method="lower")
    return TimeToTarget(float(np.isfinite(t).mean()), _km_median(t), float(lo), float(hi))


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95, seed: int = 0):
    """Bootstrap CI of mean(a − b) over paired seeds (rows where both are finite)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    return bootstrap_ci(a[ok] - b[ok], level, seed)
