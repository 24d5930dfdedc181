"""Population axes: an (init × seed × hyperparameter) grid in one compiled program, the
table's hyperparameter columns, and selection on the validation split."""

import numpy as np
import optax
import pandas as pd
import pytest

import jaxinit
from jaxinit.study._program import _chunk_program
from jaxinit.study._results import EVAL_METRICS, METRICS, VAL_METRICS

DATA = jaxinit.digits()
SMALL = jaxinit.Dataset("small", DATA.x_train[:300], DATA.y_train[:300], DATA.x_test[:100],
                        DATA.y_test[:100], 10)  # fmt: skip
GRID = {"learning_rate": [0.01, 0.1], "momentum": [0.0, 0.9]}


def _study(**kw):
    base = dict(
        model=jaxinit.MLP((8, 10)), dataset=SMALL, optimizer=optax.sgd,
        inits={"he": "he_normal", "zeros": "zeros"}, seeds=2, steps=20, batch_size=16,
        log_every=10, hparams=GRID, validation=0.2,
    )  # fmt: skip
    base.update(kw)
    return jaxinit.Study(**base)


@pytest.fixture(scope="module")
def grid_result():
    before = _chunk_program.cache_info().misses
    r = jaxinit.run_study(_study(), progress=False)
    # the whole 2 × 2 × 4 grid is one training program
    assert _chunk_program.cache_info().misses == before + 1
    return r


def test_grid_table_has_a_column_per_hyperparameter(grid_result):
    t = grid_result.table
    assert list(t.columns) == ["init", "seed", "learning_rate", "momentum", "step", "metric",
                               "value"]  # fmt: skip
    assert set(t.metric) == {*METRICS, *EVAL_METRICS, *VAL_METRICS}
    members = t[["init", "seed", "learning_rate", "momentum"]].drop_duplicates()
    assert len(members) == 2 * 2 * 4
    assert grid_result.hparams == ("learning_rate", "momentum")
    wide = grid_result.metric("val_loss")
    assert wide.index.names == ["init", "seed", "learning_rate", "momentum"]
    # paired: every hyperparameter value starts from the same parameters of a seed
    start = t[(t.metric == "test_loss") & (t.step == 0)]
    assert (start.groupby(["init", "seed"]).value.nunique() == 1).all()
    assert start.groupby("init").value.nunique()["he"] == 2  # but seeds differ


def test_each_member_runs_its_own_hyperparameters(grid_result):
    # the (lr 0.1, momentum 0.9) members equal a plain run of optax.sgd(0.1, momentum=0.9)
    plain = jaxinit.run_study(_study(optimizer=optax.sgd(0.1, momentum=0.9), hparams=None),
                              progress=False)  # fmt: skip
    t = grid_result.table
    ours = t[(t.learning_rate == 0.1) & (t.momentum == 0.9)]
    np.testing.assert_allclose(ours.value, plain.table.value, rtol=2e-5, atol=1e-6)
    assert list(plain.table.columns) == ["init", "seed", "step", "metric", "value"]
    # and different rates do differ
    other = t[(t.learning_rate == 0.01) & (t.momentum == 0.9) & (t.init == "he")]
    assert not np.allclose(other.value, ours[ours.init == "he"].value)


def test_best_hparams_selects_on_validation(grid_result):
    best = grid_result.best_hparams()
    assert list(best.columns) == ["init", "learning_rate", "momentum", "val_loss"]
    assert list(best.init) == ["he", "zeros"]
    val = grid_result.table
    final = val[(val.metric == "val_loss") & (val.step == 20)]
    means = final.groupby(["init", "learning_rate", "momentum"]).value.mean()
    for _, row in best.iterrows():
        assert row.val_loss == pytest.approx(means[row.init].min())
    rows = grid_result.at_best_hparams()
    assert len(rows) == len(grid_result.table) // 4
    with pytest.raises(ValueError, match="test metric; select on the validation split"):
        grid_result.best_hparams("test_loss")


def test_best_hparams_known_truth_and_divergence():
    # simulated results: lr 0.1 is best for "a" on average although one seed diverged at 1.0
    rows = []
    for init, best_lr in (("a", 0.1), ("b", 1.0)):
        for seed in range(3):
            for lr in (0.01, 0.1, 1.0):
                val = 1.0 if lr != best_lr else 0.5 + 0.01 * seed
                if init == "a" and lr == 1.0 and seed == 0:
                    val = np.nan  # diverged: counts as worst
                for metric, v in (("val_loss", val), ("test_loss", 1.0 - abs(np.log10(lr)))):
                    rows.append((init, seed, lr, 10, metric, v))
    table = pd.DataFrame(rows, columns=["init", "seed", "learning_rate", "step", "metric",
                                        "value"])  # fmt: skip
    r = jaxinit.StudyResult(table, None, hparams=("learning_rate",))
    best = r.best_hparams()
    assert dict(zip(best.init, best.learning_rate, strict=True)) == {"a": 0.1, "b": 1.0}
    acc = r.best_hparams("val_loss", mode="max")  # worst loss, diverged counted as -inf
    assert list(acc.learning_rate) == [0.01, 0.01]
    with pytest.raises(ValueError, match="no 'val_accuracy' rows"):
        r.best_hparams("val_accuracy")


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"optimizer": optax.sgd(0.1)}, TypeError, "hparams need an optimizer whose state"),
        ({"hparams": {"lr": [0.1]}}, TypeError, r"hparams \['lr'\] do not fit optimizer"),
        (
            {"optimizer": optax.inject_hyperparams(optax.sgd)(0.1), "hparams": {"b1": [0.9]}},
            ValueError,
            r"hparams \['b1'\] are not hyperparameters of the optimizer; it has",
        ),
        ({"hparams": {"learning_rate": []}}, ValueError, "non-empty sequence of finite numbers"),
        ({"hparams": {"learning_rate": [0.1, float("nan")]}}, ValueError, "finite numbers"),
        ({"hparams": {"learning_rate": 0.1}}, TypeError, "must be a sequence of numbers"),
        ({"hparams": {"learning_rate": [0.1, 0.1]}}, ValueError, "repeated values"),
        ({"hparams": {}}, ValueError, "hparams must be a non-empty mapping"),
        ({"validation": 1.5}, ValueError, r"validation must be a fraction in \[0, 1\)"),
        ({"validation": 0.96}, ValueError, "batch_size=16 must remain"),
    ],
)
def test_bad_hparams_raise_before_compiling(change, error, message):
    before = _chunk_program.cache_info().misses
    with pytest.raises(error, match=message):
        jaxinit.run_study(_study(**change), progress=False)
    assert _chunk_program.cache_info().misses == before


def test_inject_hyperparams_optimizer_and_resume(tmp_path):
    opt = optax.inject_hyperparams(optax.adamw)(learning_rate=1e-2, weight_decay=0.0)
    s = _study(optimizer=opt, hparams={"weight_decay": [0.0, 1e-4]}, seeds=1, steps=10)
    r = jaxinit.run_study(s, out_dir=tmp_path, progress=False)
    assert sorted(set(r.table.weight_decay)) == [0.0, 1e-4]
    again = jaxinit.run_study(s, out_dir=tmp_path, progress=False)
    pd.testing.assert_frame_equal(again.table, r.table)
    other = _study(optimizer=opt, hparams={"weight_decay": [0.0, 1e-3]}, seeds=1, steps=10)
    with pytest.raises(ValueError, match="hparams changed"):
        jaxinit.run_study(other, out_dir=tmp_path, progress=False)
