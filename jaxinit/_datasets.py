"""Datasets for convergence studies: small, offline, deterministic given a seed.

Every loader returns a :class:`Dataset` with standardised inputs (train mean/std) split
into train and test. Nothing is downloaded: data comes from packages (scikit-learn's
digits, ``mnist1d.make_dataset``) or is generated here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Dataset(NamedTuple):
    """Arrays on the host; ``y`` holds int class labels, or float targets for regression."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int  # 0 for regression

    @property
    def is_classification(self) -> bool:
        return self.num_classes > 0


def standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale every feature to zero mean and unit variance using train statistics only."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # constant pixels stay 0 instead of NaN
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def split(
    name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, num_classes: int
) -> Dataset:
    """Shuffle with ``seed``, split off ``test_fraction``, standardise inputs."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"{name}: test_fraction must be in (0, 1), got {test_fraction!r}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = round(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    x_train, x_test = standardize(x[train].astype(np.float64), x[test].astype(np.float64))
    return Dataset(name, x_train, y[train], x_test, y[test], num_classes)


def digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8×8 handwritten digits: 1797 images, 64 features, 10 classes."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "digits: scikit-learn is needed (pip install 'jaxinit[experiments]')"
        ) from e
    d = load_digits()
    return split("digits", d.data, d.target.astype(np.int32), test_fraction, seed, 10)


def mnist1d(seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus 2020): 4000 train / 1000 test sequences of length 40, 10 classes.

    Generated offline by the ``mnist1d`` package with its default arguments and ``seed``
    (its default, 42, gives the published dataset); takes a few seconds.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("mnist1d: the mnist1d package is needed (pip install mnist1d)") from e
    args = get_dataset_args()
    args.seed = seed
    d = make_dataset(args)
    x_train, x_test = standardize(d["x"].astype(np.float64), d["x_test"].astype(np.float64))
    return Dataset(
        "mnist1d", x_train, d["y"].astype(np.int32), x_test, d["y_test"].astype(np.int32), 10
    )


def linear_teacher(
    in_dim: int = 32, out_dim: int = 32, n_train: int = 1024, n_test: int = 256, seed: int = 0
) -> Dataset:
    """A linear regression teacher after Saxe et al. 2013: y = W x with W's singular values
    spread over a decade (so modes are learned at different times), x ~ N(0, I)."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(out_dim, out_dim)))
    v, _ = np.linalg.qr(rng.normal(size=(in_dim, in_dim)))
    k = min(in_dim, out_dim)
    s = np.geomspace(3.0, 0.3, k)
    w = u[:, :k] @ np.diag(s) @ v[:, :k].T
    x = rng.normal(size=(n_train + n_test, in_dim))
    y = x @ w.T
    x, y = x.astype(np.float32), y.astype(np.float32)
    return Dataset("linear_teacher", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 0)


DATASETS = {"digits": digits, "mnist1d": mnist1d, "linear_teacher": linear_teacher}


def load_dataset(name: str, seed: int = 0) -> Dataset:
    """A dataset by name: ``digits``, ``mnist1d``, ``linear_teacher``."""
    if name not in DATASETS:
        raise ValueError(f"load_dataset: name={name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name](seed=seed) if name != "mnist1d" else mnist1d(seed=42 + seed)
