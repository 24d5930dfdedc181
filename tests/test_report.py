"""Your own study's report (``StudyResult.report`` / ``jaxinit.study.report``): the tables,
verdicts, aggregates and figures of ``jaxinit compare`` for any study's table, through the
one code path compare uses too; and the messages around it (a resumed study, an Interval
of arrays)."""

import json
import logging

import numpy as np
import optax
import pandas as pd
import pytest
from matplotlib.figure import Figure

import jaxinit
from jaxinit.cli import compare as _compare
from jaxinit.study import _checkpoint
from jaxinit.study._checkpoint import _Checkpoint

DATA = jaxinit.digits()
SMALL = jaxinit.Dataset("small", DATA.x_train[:400], DATA.y_train[:400], DATA.x_test[:200],
                        DATA.y_test[:200], 10)  # fmt: skip
INITS = {"he_normal": "he_normal", "zeros": "zeros"}


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    """Reports are as wide as the terminal ($COLUMNS): wide enough here that no cell wraps."""
    monkeypatch.setenv("COLUMNS", "250")


def _study(**kw):
    base = dict(
        model=jaxinit.MLP((16, 10)), dataset=SMALL, optimizer=optax.sgd(0.1, momentum=0.9),
        inits=INITS, seeds=3, steps=30, batch_size=32, log_every=10, eval_every=10,
    )  # fmt: skip
    base.update(kw)
    return jaxinit.Study(**base)


def _synthetic(tasks=("relu", "tanh"), column="activation", accuracy=True, rates=None, best=1):
    """A tidy table of 3 inits × 5 seeds (× ``rates``, with val_loss lowest at
    ``rates[best]``), one copy per task in ``column``."""
    rng = np.random.default_rng(0)
    rows = []
    for init, q in (("he_normal", 0.9), ("glorot_uniform", 0.85), ("zeros", 0.2)):
        for seed in range(5):
            for j, lr in enumerate(rates or [None]):
                off = 0.0 if rates is None else 0.3 * abs(j - best)
                for step in (10, 20, 30):
                    loss = 2.0 / step * (1.5 - q) + off
                    vals = {"train_loss": loss + 0.01 * rng.normal(),
                            "test_loss": loss + 0.1 + 0.01 * rng.normal()}  # fmt: skip
                    if rates is not None:
                        vals["val_loss"] = loss + 0.05 + 0.01 * rng.normal()
                    if accuracy:
                        vals.update(
                            train_accuracy=q - off, test_accuracy=q - off + 0.01 * rng.normal()
                        )
                    for m, v in vals.items():
                        rows.append({"init": init, "seed": seed,
                                     **({} if rates is None else {"learning_rate": lr}),
                                     "step": step, "metric": m, "value": v})  # fmt: skip
    one = pd.DataFrame(rows)
    if column is None:
        return one
    return pd.concat([one.assign(**{column: t}) for t in tasks], ignore_index=True)


@pytest.fixture(scope="module")
def result():
    return jaxinit.run_study(_study(), progress=False)


def test_report_of_a_study_prints_tables_verdicts_and_the_error_rate(result, tmp_path):
    rep = result.report(target=0.5)
    assert isinstance(rep, jaxinit.Report) and rep.task == "task"
    s = rep.summary
    assert list(s["tasks"]) == ["study"] and s["task_column"] is None
    assert s["verdict_metric"] == "test_loss" and s["score"] == "test_accuracy"
    assert {"tasks", "error_rate", "aggregate"} <= set(s)
    study = s["tasks"]["study"]
    assert set(study["inits"]) == set(INITS) and study["reference"] is None  # all pairs
    for row in study["inits"].values():
        assert {"steps_to_target", "train_loss", "test_loss", "test_accuracy", "verdict"} <= set(
            row
        )
    # 1 pair in the task, 1 in the aggregate: each table at half of 5 %
    assert s["error_rate"]["tests"] == 2
    assert s["error_rate"]["families"] == pytest.approx({"study": 0.025, "aggregate": 0.025})
    text = str(rep)
    assert text == rep.format() == jaxinit.format_summary(s)
    assert "study: steps to train loss ≤ 0.5 and final metrics" in text
    assert "steps to target" in text and "test acc" in text and "verdict" in text
    assert "aggregate over tasks study (final test accuracy" in text
    assert "error rate: any false verdict in this report ≤ 5%" in text
    assert max(map(len, rep.format(width=70).splitlines())) <= 70
    # without a target: no steps-to-target column
    plain = jaxinit.report(result)
    assert "steps_to_target" not in plain.summary["tasks"]["study"]["inits"]["zeros"]
    assert "steps to target" not in str(plain)
    figs = rep.figures()
    assert set(figs) == {"loss_curves", "profiles"}
    assert all(isinstance(f, Figure) for f in figs.values())
    written = rep.save(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(_compare.OUTPUTS)
    assert len(written) == 4
    for png in ("loss_curves.png", "profiles.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["tasks"]["study"]["inits"].keys() == study["inits"].keys()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "results.csv"), result.table)


def test_a_rate_grid_reports_each_init_at_its_best_rate_and_notes_a_grid_edge():
    # in 30 steps of SGD the largest rate wins: a best value at the edge of the grid
    rates = [1e-4, 1e-3, 1e-2]
    r = jaxinit.run_study(_study(optimizer=optax.sgd, hparams={"learning_rate": rates},
                                 validation=0.2, seeds=2), progress=False)  # fmt: skip
    best = r.best_hparams("val_loss")
    rep = r.report()
    chosen = rep.summary["tasks"]["study"]["best_hparams"]
    assert chosen == {
        i: {"learning_rate": lr} for i, lr in zip(best.init, best.learning_rate, strict=True)
    }
    assert set(rep.table.learning_rate) <= set(rates) and len(rep.results) == len(r.table)
    for init, lr in zip(best.init, best.learning_rate, strict=True):
        assert rep.summary["tasks"]["study"]["inits"][init]["learning_rate"] == lr
        line = f"{init}: best learning_rate {lr:g} is the"
        assert (line in str(rep)) == (lr in (min(rates), max(rates)))
    assert "is the largest in the grid" in str(rep)
    # no validation split: a clear error
    no_val = jaxinit.StudyResult(r.table[~r.table.metric.str.startswith("val")],
                                 hparams=("learning_rate",))  # fmt: skip
    with pytest.raises(ValueError, match=r"no validation split.*Study\(validation=0.1\)"):
        no_val.report()


@pytest.mark.parametrize("best", [0, 1, 2])
def test_the_grid_edge_note_appears_exactly_at_an_edge(best):
    rates = [0.001, 0.01, 0.1]
    table = _synthetic(rates=rates, best=best)
    rep = jaxinit.StudyResult(table, hparams=("learning_rate",)).report(target=0.1)
    notes = rep.summary.get("notes", [])
    if best == 1:
        assert not notes and "note:" not in str(rep)
    else:
        edge = "smallest" if best == 0 else "largest"
        assert len(notes) == 6  # 3 inits × 2 tasks
        assert f"note: he_normal (relu): best learning_rate {rates[best]:g} is the {edge}" in str(
            rep
        )
    # two grid values: never at an edge worth a note
    two = table[table.learning_rate != 0.01]
    assert "notes" not in jaxinit.StudyResult(two, hparams=("learning_rate",)).report().summary


def test_a_regression_table_has_no_aggregate_and_says_so(tmp_path):
    table = _synthetic(column=None, accuracy=False)
    rep = jaxinit.StudyResult(table).report()
    s = rep.summary
    assert "aggregate" not in s and s["score"] is None
    assert s["error_rate"]["tests"] == 3 and set(s["error_rate"]["families"]) == {"study"}
    assert "no accuracy metric" in s["notes"][0]
    text = str(rep)
    assert "aggregate over tasks" not in text and "note: no accuracy metric" in text
    assert "test acc" not in text and "test loss" in text
    assert set(rep.figures()) == {"loss_curves"}
    rep.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "loss_curves.png", "results.csv", "summary.json"
    ]  # fmt: skip
    # no test split either: verdicts on the training loss, said in the summary
    train_only = jaxinit.StudyResult(table[table.metric == "train_loss"]).report()
    assert train_only.summary["verdict_metric"] == "train_loss"
    assert "verdicts on the final train_loss" in str(train_only)


def test_an_architecture_sweep_reports_the_models_as_tasks():
    models = {"narrow": jaxinit.MLP((4, 10)), "wide": jaxinit.MLP((16, 10))}
    r = jaxinit.run_study(_study(model=models, seeds=2, steps=20), progress=False)
    rep = r.report()
    assert rep.summary["task_column"] == "model" and list(rep.summary["tasks"]) == list(models)
    assert rep.summary["aggregate"]["tasks"] == list(models)
    text = str(rep)
    assert "\nnarrow: final metrics" in text and "\nwide: final metrics" in text
    assert "aggregate over tasks narrow, wide" in text


@pytest.mark.parametrize("lrs", [(), (0.001, 0.01, 0.1)])
def test_compare_reports_through_the_same_path(tmp_path, monkeypatch, lrs):
    """``jaxinit compare``'s summary, text and files are the report of its table."""
    table = _synthetic(rates=list(lrs) or None, best=2)

    def run_one(cfg, act, *args):
        return table[table.activation == act].reset_index(drop=True)

    monkeypatch.setattr(_compare, "_run_one", run_one)
    cfg = _compare.CompareConfig(inits=("he_normal", "glorot_uniform", "zeros"), lrs=lrs,
                                 target=0.1, out=str(tmp_path))  # fmt: skip
    summary = _compare.run_compare(cfg)
    hp = ("learning_rate",) if lrs else ()
    rep = jaxinit.StudyResult(table, hparams=hp).report(target=0.1)
    assert list(summary) == ["config", "activations", "error_rate", "aggregate"] + (
        ["notes"] if lrs else []
    )
    for act, s in summary["activations"].items():
        s, mine = dict(s), dict(rep.summary["tasks"][act])
        if lrs:
            chosen = mine.pop("best_hparams")
            assert s.pop("learning_rates") == {i: v["learning_rate"] for i, v in chosen.items()}
        assert json.dumps(jaxinit.json_safe(s)) == json.dumps(jaxinit.json_safe(mine))
    for key in ("error_rate", "aggregate"):
        assert json.dumps(jaxinit.json_safe(summary[key])) == json.dumps(
            jaxinit.json_safe(rep.summary[key])
        )
    # the same text: compare's summary (back from its summary.json too) and the report's
    assert jaxinit.format_summary(summary) == str(rep)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert jaxinit.format_summary(saved) == str(rep)
    if lrs:
        assert "is the largest in the grid (0.001, 0.01, 0.1)" in str(rep)
        assert "relu: hyperparameters of each init, chosen on validation" in str(rep)
    assert len(pd.read_csv(tmp_path / "results.csv")) == len(table)


def _stopped(out):
    """Run a study that stops right after its first checkpoint (step 10 of 30)."""

    class Stop(Exception):
        pass

    save = _Checkpoint.save

    def save_then_stop(self, *args):
        save(self, *args)
        raise Stop

    with pytest.MonkeyPatch.context() as m:
        m.setattr(_Checkpoint, "save", save_then_stop)
        with pytest.raises(Stop):
            jaxinit.run_study(_study(seeds=2), out_dir=out, progress=False)
    _checkpoint._wait_all()


def test_a_resumed_study_says_so(tmp_path, caplog, capsys):
    _stopped(tmp_path)
    with caplog.at_level(logging.INFO, logger="jaxinit.study"):
        jaxinit.run_study(_study(seeds=2), out_dir=tmp_path, progress=False)
    said = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert len(said) == 1
    assert said[0].startswith("run_study: resuming member group 0 from step 10 of 30 (checkpoint")
    assert str(tmp_path / "checkpoint-0") in said[0]
    # with a progress bar, on its output (stderr) too
    jaxinit.run_study(_study(seeds=2), out_dir=tmp_path, progress=True)
    assert "run_study: resuming member group 0 from step 30 of 30" in capsys.readouterr().err


def test_an_interval_of_arrays_prints():
    scores = np.random.default_rng(0).uniform(size=(2, 6))
    profile = jaxinit.stats.performance_profile(scores, np.linspace(0, 1, 5))
    text = str(profile)
    assert text.startswith("value [1.") and "\nlo [" in text and "\nhi [" in text
    print(profile)  # used to raise in Interval.__str__
    assert str(jaxinit.stats.bootstrap_ci([np.nan])) == "n/a"
