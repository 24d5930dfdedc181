import numpy as np
import pytest

from jaxinit.study._datasets import (
    DATASETS,
    SHAPESET_CLASSES,
    _shape_masks,
    load_dataset,
    shapeset,
)


def test_shapeset_shapes_classes_and_standardisation():
    d = shapeset(600, 200, seed=1)
    assert d.x_train.shape == (600, 1024) and d.x_test.shape == (200, 1024)
    assert d.x_train.dtype == np.float32 and d.num_classes == 9 == len(SHAPESET_CLASSES)
    assert set(np.unique(d.y_train)) == set(range(9))  # every class drawn
    # Standardised with train statistics: per-pixel train mean 0, std 1 (or 0 if constant).
    np.testing.assert_allclose(d.x_train.mean(0), 0, atol=1e-4)
    assert np.all(np.isclose(d.x_train.std(0), 1, atol=1e-3) | (d.x_train.std(0) == 0))
    assert abs(d.x_test.mean()) < 0.2  # test set standardised with the same statistics


def test_shapeset_is_deterministic_per_seed():
    a, b, c = shapeset(50, 10, seed=3), shapeset(50, 10, seed=3), shapeset(50, 10, seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_shape_masks_are_the_right_shapes(kind):
    # Areas relative to r²: an ellipse is π·aspect ∈ [0.4π, π]; the parallelogram
    # (2r)·(2r·height) ∈ [1.6, 3.2] r² (shapes lie inside the image, so nothing is clipped);
    # the triangle inscribed in the circle of radius r is at most 3√3/4 ≈ 1.3 r².
    rng = np.random.default_rng(0)
    masks = _shape_masks(np.full(200, kind), rng, 64)
    assert masks.shape == (200, 64, 64) and masks.any(axis=(1, 2)).all()
    rng = np.random.default_rng(0)
    r = rng.uniform(0.18, 0.32, 200) * 64
    rel = masks.sum(axis=(1, 2)) / r**2
    lo, hi = {0: (0.5, 1.35), 1: (1.5, 3.3), 2: (1.2, 3.2)}[kind]
    assert lo < np.median(rel) < hi


def test_shapeset_classes_differ_in_content():
    # Single shapes cover less area than pairs on average: the label reflects the image.
    d = shapeset(2000, 10, seed=0)
    on = d.x_train > d.x_train.min(axis=0)  # above background after standardisation
    single = np.isin(d.y_train, [0, 1, 2])
    assert on[single].sum(1).mean() < on[~single].sum(1).mean()


def test_load_dataset_knows_shapeset_and_rejects_unknown():
    assert "shapeset" in DATASETS
    with pytest.raises(ValueError, match=r"allowed: .*shapeset"):
        load_dataset("nope")
