"""Architecture sweeps: ``Study(model={"w4": ..., "w8": ...})`` trains every architecture's
population as its own member batches, in one study with one table (a ``model`` column),
with the numbers of each architecture's own study; checkpoints resume per batch."""

import numpy as np
import optax
import pandas as pd
import pytest

import jaxinit
from jaxinit.study import _checkpoint
from jaxinit.study._checkpoint import _Checkpoint
from jaxinit.study._program import _chunk_program
from jaxinit.study._results import _diverged

DATA = jaxinit.digits()
SMALL = jaxinit.Dataset("small", DATA.x_train[:300], DATA.y_train[:300], DATA.x_test[:100],
                        DATA.y_test[:100], 10)  # fmt: skip
WIDTHS = {"w4": jaxinit.MLP((4, 10)), "w8": jaxinit.MLP((8, 10))}


def _study(**kw):
    base = dict(
        model=WIDTHS, dataset=SMALL, optimizer=optax.sgd,
        inits={"he": "he_normal", "glorot": "glorot_uniform"}, seeds=2, steps=20,
        batch_size=16, log_every=10, eval_every=10, max_members=4,
        hparams={"learning_rate": [0.05, 0.2]}, validation=0.2,
    )  # fmt: skip
    base.update(kw)
    return jaxinit.Study(**base)


@pytest.fixture(scope="module")
def sweep():
    return jaxinit.run_study(_study(), progress=False)


def test_sweep_table_has_a_model_column_and_every_member(sweep):
    t = sweep.table
    assert list(t.columns) == ["model", "init", "seed", "learning_rate", "step", "metric",
                               "value"]  # fmt: skip
    assert sweep.models == ("w4", "w8")
    members = t[["model", "init", "seed", "learning_rate"]].drop_duplicates()
    assert len(members) == 2 * 2 * 2 * 2  # widths × inits × seeds × rates
    # every member has every metric at every recorded step (train at 10, 20; eval at 0, 10, 20)
    counts = t.groupby(["model", "init", "seed", "learning_rate", "metric"]).size()
    assert set(counts[counts.index.get_level_values("metric") == "train_loss"]) == {2}
    assert set(counts[counts.index.get_level_values("metric") == "val_loss"]) == {3}
    # the widths differ: the wider model has more parameters, so a larger initial norm
    norms = t[(t.metric == "param_norm") & (t.step == 10)].groupby("model").value.mean()
    assert norms["w8"] > norms["w4"]


def test_each_architecture_equals_its_own_study(sweep):
    # same numbers as running each architecture alone: batches never mix architectures,
    # and seed s has the same keys (data order) in every architecture
    for name, model in WIDTHS.items():
        alone = jaxinit.run_study(_study(model=model), progress=False)
        ours = sweep.table[sweep.table.model == name].drop(columns="model")
        pd.testing.assert_frame_equal(ours.reset_index(drop=True), alone.table)
        assert alone.models == () and "model" not in alone.table.columns


def test_same_shapes_are_paired_across_architectures():
    # two architectures of the same shapes: the same initial parameters and data order per
    # seed, so the same numbers (and the compiled programs of the fixture are reused)
    before = _chunk_program.cache_info().misses
    twin = jaxinit.run_study(_study(model={"a": WIDTHS["w4"], "b": jaxinit.MLP((4, 10))}),
                             progress=False)  # fmt: skip
    assert _chunk_program.cache_info().misses == before
    t = twin.table
    a, b = t[t.model == "a"].drop(columns="model"), t[t.model == "b"].drop(columns="model")
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_selection_helpers_group_by_architecture(sweep):
    best = sweep.best_hparams()
    assert list(best.columns) == ["model", "init", "learning_rate", "val_loss"]
    assert list(zip(best.model, best.init, strict=True)) == [
        ("w4", "glorot"), ("w4", "he"), ("w8", "glorot"), ("w8", "he")
    ]  # fmt: skip
    t = sweep.table
    final = t[(t.metric == "val_loss") & (t.step == 20)]
    means = final.groupby(["model", "init", "learning_rate"]).value.mean()
    for _, row in best.iterrows():
        assert row.val_loss == pytest.approx(means[row.model, row.init].min())
        assert means[row.model, row.init, row.learning_rate] == row.val_loss
    rows = sweep.at_best_hparams()
    assert len(rows) == len(t) // 2
    assert set(map(tuple, rows[["model", "init", "learning_rate"]].drop_duplicates().values)) == {
        tuple(r) for r in best[["model", "init", "learning_rate"]].values
    }
    wide = sweep.metric("test_loss")
    assert wide.index.names == ["model", "init", "seed", "learning_rate"]
    assert wide.shape == (16, 3)
    # a member that diverged in one architecture is reported with its architecture
    bad = t.copy()
    hit = (bad.model == "w8") & (bad.init == "he") & (bad.seed == 1) & (bad.learning_rate == 0.2)
    bad.loc[hit & (bad.metric == "train_loss") & (bad.step == 20), "value"] = np.nan
    div = _diverged(bad, sweep.hparams)
    assert div.to_dict("records") == [
        {"model": "w8", "init": "he", "seed": 1, "learning_rate": 0.2, "step": 20}
    ]
    assert list(sweep.diverged.columns) == ["model", "init", "seed", "learning_rate", "step"]


class _Killed(BaseException):
    pass


@pytest.mark.slow  # ~14 s
def test_resume_after_an_interruption_in_the_second_architecture(sweep, tmp_path, monkeypatch):
    save = _Checkpoint.save
    second = tmp_path / "checkpoint-8"  # w8's first batch: members 8..11 of the study

    def save_or_die(self, state, done, records, n):
        if self.path == str(second) and done == 20:  # killed in w8's first batch, chunk 2
            raise _Killed
        save(self, state, done, records, n)

    monkeypatch.setattr(_Checkpoint, "save", save_or_die)
    with pytest.raises(_Killed):
        jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    monkeypatch.undo()
    _checkpoint._wait_all()  # the save in flight when the study stopped
    names = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert names == ["checkpoint-0", "checkpoint-4", "checkpoint-8"]
    assert [p.name for p in second.iterdir()] == ["10"]  # orbax: one step, the steps done
    assert not (tmp_path / "results.csv").exists()
    # the partial results label each architecture's rows with its own name
    partial = pd.read_csv(tmp_path / "results.partial.csv")
    assert list(partial.columns) == list(sweep.table.columns)
    done_w4 = sweep.table[sweep.table.model == "w4"].reset_index(drop=True)
    pd.testing.assert_frame_equal(partial[partial.model == "w4"].reset_index(drop=True), done_w4,
                                  check_exact=False, rtol=1e-12)  # fmt: skip
    w8 = partial[partial.model == "w8"]
    assert w8.step.max() == 10 and set(w8.init) == {"he"}  # the batch it was killed in
    load, loaded = _Checkpoint.load, {}

    def load_and_record(self, like, n):
        out = load(self, like, n)
        loaded[self.path.rsplit("/", 1)[1]] = None if out is None else out[1]
        return out

    monkeypatch.setattr(_Checkpoint, "load", load_and_record)
    resumed = jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    monkeypatch.undo()
    # w4's batches are done (not retrained), w8's first resumes at step 10, its second is new
    assert loaded == {"checkpoint-0": 20, "checkpoint-4": 20, "checkpoint-8": 10,
                      "checkpoint-12": None}  # fmt: skip
    pd.testing.assert_frame_equal(resumed.table, sweep.table)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results.csv"), sweep.table,
                                  check_exact=False, rtol=1e-12)  # fmt: skip
    # an architecture appended at the end keeps the others' checkpoints and trains alone
    loaded.clear()
    monkeypatch.setattr(_Checkpoint, "load", load_and_record)
    more = dict(WIDTHS, tanh=jaxinit.MLP((4, 10), activation="tanh"))
    longer = jaxinit.run_study(_study(model=more), out_dir=tmp_path, progress=False)
    monkeypatch.undo()
    assert loaded == {**{f"checkpoint-{i}": 20 for i in (0, 4, 8, 12)},
                      "checkpoint-16": None, "checkpoint-20": None}  # fmt: skip
    t = longer.table
    pd.testing.assert_frame_equal(t[t.model != "tanh"].reset_index(drop=True), sweep.table)
    # changing one architecture refuses the resume, naming it
    changed = dict(WIDTHS, w8=jaxinit.MLP((6, 10)))
    with pytest.raises(ValueError, match=r"model\['w8'\]"):
        jaxinit.run_study(_study(model=changed), out_dir=tmp_path, progress=False)


@pytest.mark.parametrize(
    "model, error, match",
    [
        ({}, ValueError, "non-empty mapping name -> model"),
        ({4: WIDTHS["w4"]}, TypeError, "keyed by str names"),
        ({"w4": WIDTHS["w4"], "bad": jaxinit.MLP((8, 3))}, ValueError,
         r"model\['bad'\] does not fit the study: the model's output has shape \(3,\)"),
        ({"w4": WIDTHS["w4"], "no": "MLP"}, TypeError, r"model\['no'\] does not fit the study"),
    ],
)  # fmt: skip
def test_bad_sweeps_are_refused_before_compiling(model, error, match):
    before = _chunk_program.cache_info().misses
    with pytest.raises(error, match=match):
        jaxinit.run_study(_study(model=model), progress=False)
    assert _chunk_program.cache_info().misses == before


def test_plain_field_errors_are_not_blamed_on_an_architecture():
    with pytest.raises(ValueError, match=r"^Study: batch_size=400 is larger"):
        jaxinit.run_study(_study(batch_size=400), progress=False)
    with pytest.raises(ValueError, match=r"hparams \['model'\] would clash"):
        jaxinit.run_study(_study(optimizer=optax.adamw, hparams={"model": [1.0]}),
                          progress=False)  # fmt: skip
