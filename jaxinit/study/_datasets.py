"""Datasets for convergence studies: small, offline, deterministic given a seed.

Every loader returns a :class:`Dataset` with standardised inputs (train mean/std) split
into train and test. Nothing is downloaded: data comes from packages (scikit-learn's
digits, ``mnist1d.make_dataset``) or is generated here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from jaxinit._checks import as_int, as_real


class _Fields(NamedTuple):
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int  # 0 for regression


class Dataset(_Fields):
    """Arrays on the host; ``y`` holds int class labels, or float targets for regression.

    Checked once, here, where data enters: both splits non-empty, as many labels as
    inputs, the same per-example shape in both splits, finite inputs (and targets), and
    for classification (``num_classes > 0``) integer labels in ``[0, num_classes)``.

    >>> jaxinit.Dataset("toy", np.zeros((4, 2)), np.array([0, 1, 1, 0]),
    ...                 np.ones((2, 2)), np.array([1, 0]), num_classes=2).is_classification
    True
    """

    __slots__ = ()

    def __new__(
        cls,
        name: str,
        x_train: Any,
        y_train: Any,
        x_test: Any,
        y_test: Any,
        num_classes: int,
    ) -> Dataset:
        num_classes = as_int("Dataset", "num_classes", num_classes, minimum=0)
        if not isinstance(name, str):
            raise TypeError(f"Dataset: name must be a str, got {name!r}")
        _check_split(name, "train", x_train, y_train, num_classes)
        _check_split(name, "test", x_test, y_test, num_classes)
        for what, a, b in (("x", x_train, x_test), ("y", y_train, y_test)):
            if np.shape(a)[1:] != np.shape(b)[1:]:
                raise ValueError(
                    f"Dataset {name!r}: {what}_train has examples of shape {np.shape(a)[1:]}"
                    f" but {what}_test of shape {np.shape(b)[1:]}"
                )
        return super().__new__(cls, name, x_train, y_train, x_test, y_test, num_classes)

    @property
    def is_classification(self) -> bool:
        return self.num_classes > 0


def _check_split(name: str, split: str, x: Any, y: Any, num_classes: int) -> None:
    where = f"Dataset {name!r}"
    for arg, a in ((f"x_{split}", x), (f"y_{split}", y)):
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            raise TypeError(f"{where}: {arg} must be an array, got {type(a).__name__}")
        if np.ndim(a) < 1:
            raise ValueError(f"{where}: {arg} must have a leading example axis, got a scalar")
    if len(x) != len(y):
        raise ValueError(
            f"{where}: x_{split} has {len(x)} examples but y_{split} has {len(y)} labels"
        )
    if len(x) == 0:
        raise ValueError(f"{where}: the {split} split is empty (0 examples)")
    xs = np.asarray(x)
    if not (jnp.issubdtype(xs.dtype, jnp.number) or xs.dtype == np.bool_):
        raise TypeError(f"{where}: x_{split} must be numeric, got dtype {xs.dtype}")
    if jnp.issubdtype(xs.dtype, jnp.inexact) and not np.isfinite(xs).all():
        raise ValueError(
            f"{where}: x_{split} has {int((~np.isfinite(xs)).sum())} NaN or infinite values"
        )
    ys = np.asarray(y)
    if num_classes == 0:
        if not jnp.issubdtype(ys.dtype, jnp.number) or not np.isfinite(ys).all():
            raise ValueError(f"{where}: regression targets y_{split} must be finite numbers")
        return
    if not jnp.issubdtype(ys.dtype, jnp.integer) or ys.ndim != 1:
        raise TypeError(
            f"{where}: y_{split} must be a 1-D array of int class labels (num_classes="
            f"{num_classes}), got dtype {ys.dtype} and shape {ys.shape}"
        )
    lo, hi = int(ys.min()), int(ys.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"{where}: y_{split} has label {bad}; labels must be in [0, {num_classes})"
            f" (num_classes={num_classes})"
        )


def standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale every feature to zero mean and unit variance using train statistics only."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # constant pixels stay 0 instead of NaN
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def _seed(fn: str, seed: Any) -> int:
    """A seed for numpy's generator: an int >= 0 (numpy refuses negative ones)."""
    return as_int(fn, "seed", seed, minimum=0)


def _test_fraction(fn: str, test_fraction: Any) -> float:
    f = as_real(fn, "test_fraction", test_fraction)
    if not 0 < f < 1:
        raise ValueError(f"{fn}: test_fraction must be in (0, 1), got {test_fraction!r}")
    return f


def split(
    name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, num_classes: int
) -> Dataset:
    """Shuffle with ``seed``, split off ``test_fraction``, standardise inputs."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"{name}: test_fraction must be in (0, 1), got {test_fraction!r}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = round(len(x) * test_fraction)
    if not 0 < n_test < len(x):
        raise ValueError(
            f"{name}: test_fraction={test_fraction!r} of {len(x)} examples leaves"
            f" {n_test} test and {len(x) - n_test} training examples; both splits need >= 1"
        )
    test, train = order[:n_test], order[n_test:]
    x_train, x_test = standardize(x[train].astype(np.float64), x[test].astype(np.float64))
    return Dataset(name, x_train, y[train], x_test, y[test], num_classes)


def digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8×8 handwritten digits: 1797 images, 64 features, 10 classes.

    Example:
      >>> data = jaxinit.digits()  # a Dataset: standardised inputs, int32 labels
      >>> data.x_train.shape, data.x_test.shape, data.y_train.dtype, data.num_classes
      ((1438, 64), (359, 64), dtype('int32'), 10)
    """
    seed = _seed("digits", seed)
    test_fraction = _test_fraction("digits", test_fraction)
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

    Example:
      >>> data = jaxinit.mnist1d()  # doctest: +SKIP
      >>> data.x_train.shape, data.x_test.shape, data.num_classes  # doctest: +SKIP
      ((4000, 40), (1000, 40), 10)
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("mnist1d: the mnist1d package is needed (pip install mnist1d)") from e
    seed = _seed("mnist1d", seed)
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
    spread over a decade (so modes are learned at different times), x ~ N(0, I).

    Example:
      >>> data = jaxinit.linear_teacher(in_dim=8, out_dim=4, n_train=64, n_test=16)
      >>> data.x_train.shape, data.y_train.shape, data.y_train.dtype
      ((64, 8), (64, 4), dtype('float32'))
      >>> data.num_classes, data.is_classification  # regression: Study uses the MSE loss
      (0, False)
    """
    fn = "linear_teacher"
    in_dim, out_dim, n_train, n_test = (
        as_int(fn, arg, v, minimum=1)
        for arg, v in (("in_dim", in_dim), ("out_dim", out_dim), ("n_train", n_train),
                       ("n_test", n_test))
    )  # fmt: skip
    rng = np.random.default_rng(_seed(fn, seed))
    u, _ = np.linalg.qr(rng.normal(size=(out_dim, out_dim)))
    v, _ = np.linalg.qr(rng.normal(size=(in_dim, in_dim)))
    k = min(in_dim, out_dim)
    s = np.geomspace(3.0, 0.3, k)
    w = u[:, :k] @ np.diag(s) @ v[:, :k].T
    x = rng.normal(size=(n_train + n_test, in_dim))
    y = x @ w.T
    x, y = x.astype(np.float32), y.astype(np.float32)
    return Dataset("linear_teacher", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 0)


# Shapeset-3×2 classes: the unordered multiset of shape types in the image.
SHAPES = ("triangle", "parallelogram", "ellipse")
SHAPESET_CLASSES = (
    ("triangle",), ("parallelogram",), ("ellipse",),
    ("triangle", "triangle"), ("parallelogram", "parallelogram"), ("ellipse", "ellipse"),
    ("triangle", "parallelogram"), ("triangle", "ellipse"), ("parallelogram", "ellipse"),
)  # fmt: skip


def _shape_masks(kind: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """(n, size, size) boolean masks of random shapes of the given kinds (0, 1, 2 =
    triangle, parallelogram, ellipse), rasterised at once by point-in-shape tests on pixel
    centres (each kind only on its own images)."""
    n = len(kind)
    scale = rng.uniform(0.18, 0.32, n) * size  # the shape's "radius" in pixels
    angle = rng.uniform(0, 2 * np.pi, n)
    cx = rng.uniform(0.9 * scale, size - 0.9 * scale)
    cy = rng.uniform(0.9 * scale, size - 0.9 * scale)
    aspect = rng.uniform(0.4, 1.0, n)  # ellipse: axes r and r·aspect
    shear = rng.uniform(-0.7, 0.7, n)  # parallelogram: |u + shear·v| ≤ r, |v| ≤ r·height
    height = rng.uniform(0.4, 0.8, n)
    # Triangle: vertices on the circle of radius r at jittered angles.
    theta = np.array([0.5, 7 / 6, 11 / 6]) * np.pi + rng.uniform(-0.35, 0.35, (n, 3))
    g = np.arange(size, dtype=np.float32) + 0.5
    out = np.zeros((n, size, size), bool)
    for k in range(3):
        i = np.flatnonzero(kind == k)

        def col(a, i=i):
            return a[i, None, None].astype(np.float32)

        # Pixel coordinates in each shape's own frame (centred, rotated by -angle).
        dx, dy = g[None, None, :] - col(cx), g[None, :, None] - col(cy)
        c, s = np.cos(col(angle)), np.sin(col(angle))
        u, v = c * dx + s * dy, c * dy - s * dx
        r = col(scale)
        if k == 0:  # inside iff on the left of all three edges
            vx, vy = (
                r[:, None] * np.cos(theta[i])[..., None, None],
                r[:, None] * np.sin(theta[i])[..., None, None],
            )
            inside = np.ones(u.shape, bool)
            for j in range(3):
                ex, ey = vx[:, (j + 1) % 3] - vx[:, j], vy[:, (j + 1) % 3] - vy[:, j]
                inside &= ex * (v - vy[:, j]) - ey * (u - vx[:, j]) >= 0
        elif k == 1:
            inside = (np.abs(u + col(shear) * v) <= r) & (np.abs(v) <= r * col(height))
        else:
            inside = (u / r) ** 2 + (v / (r * col(aspect))) ** 2 <= 1
        out[i] = inside
    return out


def shapeset(n_train: int = 8000, n_test: int = 2000, seed: int = 0, size: int = 32) -> Dataset:
    """A Shapeset-3×2 generator after Glorot & Bengio 2010: 9 classes, ``size``×``size`` grey
    images flattened to ``size²`` features.

    Each image holds one or two shapes among triangle, parallelogram and ellipse, each with a
    random scale, rotation, position (inside the image) and grey level in [0.3, 1] on a black
    background; a second shape is drawn over the first (they may overlap). The class is the
    unordered set of shape types (:data:`SHAPESET_CLASSES`: 3 single shapes, 3 pairs of equal
    shapes, 3 pairs of different shapes), drawn uniformly. The paper's set is generated online
    (fresh examples every step); this one is a fixed sample, deterministic given ``seed``.
    Inputs are standardised per pixel with train statistics.

    Example:
      >>> data = jaxinit.shapeset(n_train=90, n_test=18, size=16)  # small: 16×16 images
      >>> data.x_train.shape, data.x_test.shape, data.num_classes
      ((90, 256), (18, 256), 9)
    """
    fn = "shapeset"
    n_train = as_int(fn, "n_train", n_train, minimum=1)
    n_test = as_int(fn, "n_test", n_test, minimum=1)
    # a shape's radius is 0.18-0.32 of the side: below 8 pixels it covers hardly a pixel
    size = as_int(fn, "size", size, minimum=8)
    n = n_train + n_test
    rng = np.random.default_rng(_seed(fn, seed))
    y = rng.integers(0, len(SHAPESET_CLASSES), n).astype(np.int32)
    first = np.array([SHAPES.index(c[0]) for c in SHAPESET_CLASSES])[y]
    second = np.array([SHAPES.index(c[-1]) for c in SHAPESET_CLASSES])[y]
    two = np.array([len(c) == 2 for c in SHAPESET_CLASSES])[y]
    images = np.zeros((n, size, size))
    for kind, present in ((first, np.ones(n, bool)), (second, two)):
        grey = rng.uniform(0.3, 1.0, n)[:, None, None]
        mask = _shape_masks(kind, rng, size) & present[:, None, None]
        images = np.where(mask, grey, images)
    x = images.reshape(n, size * size)
    x_train, x_test = standardize(x[:n_train], x[n_train:])
    return Dataset("shapeset", x_train, y[:n_train], x_test, y[n_train:], 9)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": digits,
    "mnist1d": mnist1d,
    "linear_teacher": linear_teacher,
    "shapeset": shapeset,
}


def load_dataset(name: str, seed: int = 0) -> Dataset:
    """A dataset by name: ``digits``, ``mnist1d``, ``linear_teacher``, ``shapeset``.

    Example:
      >>> data = jaxinit.load_dataset("digits")  # as jaxinit.digits(seed=0)
      >>> data.name, data.x_train.shape, data.num_classes
      ('digits', (1438, 64), 10)
      >>> jaxinit.load_dataset("cifar10")
      Traceback (most recent call last):
      ValueError: load_dataset: name='cifar10'; allowed: digits, mnist1d, linear_teacher, shapeset
    """
    if name not in DATASETS:
        raise ValueError(f"load_dataset: name={name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name](seed=seed) if name != "mnist1d" else mnist1d(seed=42 + seed)


def _split_validation(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row indices: a fixed random ``fraction`` of the ``n`` rows."""
    order = np.random.default_rng(0x5EED).permutation(n)
    n_val = round(n * fraction)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
