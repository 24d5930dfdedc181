"""Checking a re-initialised model against its original's law, parameter by parameter.

A test writes the original's law from its source as a function ``law(path, shape) ->
Law`` (``Normal(std)``, ``Uniform(bound)``, ``TruncNormal(std, a, b)``, ``Const(v)``, or
``Rows(law, {row: value})`` for an embedding whose padding row is fixed); :func:`check`
draws the model with ``SEEDS`` keys and, for **every** parameter, compares the pooled
draws with the law: a constant exactly, a random law by the ratio of sample to law
standard deviation (within 5 standard errors, from the law's kurtosis) and a
Kolmogorov–Smirnov test (p > 1e-4). A parameter the law does not know fails the test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import numpy as np
from scipy import stats

SEEDS = 8
P_MIN = 1e-4


@dataclass(frozen=True)
class Normal:
    std: float


@dataclass(frozen=True)
class Uniform:
    bound: float


@dataclass(frozen=True)
class TruncNormal:
    std: float
    a: float  # absolute bounds, torch's trunc_normal_
    b: float


@dataclass(frozen=True)
class Const:
    value: float


@dataclass(frozen=True)
class Rows:
    """``law`` on every row of a table but the fixed ``rows`` (a padding row: 0)."""

    law: object
    rows: dict = field(default_factory=dict)


def _std_and_kurtosis(law) -> tuple[float, float]:
    if isinstance(law, Normal):
        return law.std, 3.0
    if isinstance(law, Uniform):
        return law.bound / math.sqrt(3), 1.8
    a, b = law.a / law.std, law.b / law.std
    d = stats.truncnorm(a, b, scale=law.std)
    return float(d.std()), float(d.stats(moments="k")) + 3.0


def _ks(x: np.ndarray, law) -> float:
    if isinstance(law, Normal):
        return stats.kstest(x, "norm", args=(0.0, law.std)).pvalue
    if isinstance(law, Uniform):
        return stats.kstest(x, "uniform", args=(-law.bound, 2 * law.bound)).pvalue
    return stats.kstest(x / law.std, "truncnorm", args=(law.a / law.std, law.b / law.std)).pvalue


def check_random(x: np.ndarray, law, where: str) -> None:
    x = np.asarray(x, np.float64).ravel()
    std, kurt = _std_and_kurtosis(law)
    got = math.sqrt(float(np.mean(x**2)))  # about the law's mean, 0
    se = 0.5 * math.sqrt((kurt - 1) / x.size)  # SE of the std ratio
    assert abs(got / std - 1) < 5 * se, f"{where}: std {got:.4g}, law {std:.4g} ({law})"
    p = _ks(x, law)
    assert p > P_MIN, f"{where}: KS p = {p:.2g} against {law} ({x.size} draws)"


def check_leaf(draws: np.ndarray, law, where: str) -> None:
    """``draws``: the leaf stacked over seeds (seed axis first)."""
    if isinstance(law, Const):
        np.testing.assert_array_equal(draws, np.asarray(law.value, draws.dtype), err_msg=where)
        return
    if isinstance(law, Rows):
        keep = np.ones(draws.shape[1], bool)
        for row, value in law.rows.items():
            expected = np.asarray(value, draws.dtype)
            np.testing.assert_array_equal(draws[:, row], expected, err_msg=f"{where} row {row}")
            keep[row] = False
        check_random(draws[:, keep], law.law, where)
        return
    check_random(draws, law, where)


def leaves(tree) -> dict[str, np.ndarray]:
    """Float leaves by "/"-joined path (nnx ``State`` values unwrapped)."""
    out = {}
    for kp, v in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not hasattr(v, "dtype") or not np.issubdtype(v.dtype, np.floating):
            continue
        parts = []
        for k in kp:
            name = getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))
            parts.append(str(name))
        path = "/".join(p for p in parts if p != "value")
        out[path] = np.asarray(v)
    return out


def check(draw, law) -> int:
    """``draw(key) -> tree`` (a pytree of arrays, vmappable); every leaf checked against
    ``law(path, shape)`` over ``SEEDS`` seeds. Returns the number of leaves checked."""
    keys = jax.random.split(jax.random.key(20260), SEEDS)
    stacked = leaves(jax.jit(jax.vmap(draw))(keys))
    assert stacked, "no parameter drawn"
    for path, x in stacked.items():
        expected = law(path, x.shape[1:])
        assert expected is not None, f"the test's law does not know {path} {x.shape[1:]}"
        check_leaf(x, expected, path)
    return len(stacked)
