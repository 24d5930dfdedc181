"""The study engine's guards (issue 29, items 2, 3, 5), through the public entry points
only: grids that vary for real, resumes that compare the whole learning-rate schedule and a
model's fingerprint without memory addresses, and a checkpoint's bookkeeping checked
against the study."""

import functools
import glob
import os

import flax.linen as nn
import numpy as np
import optax
import pandas as pd
import pytest

import jaxinit
from jaxinit.study._checkpoint import _Checkpoint
from tests._legacy_checkpoint import write_legacy_npz

DATA = jaxinit.digits()
SMALL = jaxinit.Dataset("small", DATA.x_train[:200], DATA.y_train[:200], DATA.x_test[:50],
                        DATA.y_test[:50], 10)  # fmt: skip


def _study(optimizer=None, **kw):
    base = dict(
        model=jaxinit.MLP((8, 10)), dataset=SMALL,
        optimizer=optax.sgd(0.1) if optimizer is None else optimizer,
        inits={"he": "he_normal"}, seeds=1, steps=10, batch_size=16, log_every=5, eval_every=5,
    )  # fmt: skip
    base.update(kw)
    return jaxinit.Study(**base)


def _run(study, out_dir=None):
    return jaxinit.run_study(study, out_dir=None if out_dir is None else str(out_dir),
                             progress=False)  # fmt: skip


# --------------------------------------------------------------------------- item 3: grids


def test_a_grid_the_optimizers_schedule_overwrites_is_refused():
    scheduled = optax.inject_hyperparams(optax.sgd)(
        learning_rate=optax.linear_schedule(0.1, 0.01, 10)
    )
    with pytest.raises(
        ValueError, match=r"hparams\['learning_rate'\] is overwritten at every step"
    ):
        _run(_study(scheduled, hparams={"learning_rate": [0.001, 1.0]}))
    # a single value is refused too: its label would still lie
    with pytest.raises(ValueError, match="overwritten at every step"):
        _run(_study(scheduled, hparams={"learning_rate": [0.5]}))


def test_grid_values_are_compared_in_the_members_dtype():
    with pytest.raises(
        ValueError, match=r"values 0\.1 and 0\.1000000000010\d* are the same float32"
    ):
        _run(_study(optax.sgd, hparams={"learning_rate": [0.1, 0.1 + 1e-12]}))
    with pytest.raises(
        ValueError, match=r"hparams\['learning_rate'\] = \[1e\+39\] is not finite in float32"
    ):
        _run(_study(optax.sgd, hparams={"learning_rate": [0.1, 1e39]}))
    injected = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.5)
    with pytest.raises(ValueError, match=r"hparams\['momentum'\] values"):
        _run(_study(injected, hparams={"momentum": [0.9, 0.9 + 1e-10]}))


def test_a_grid_that_varies_trains_each_value():
    injected = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    r = _run(_study(injected, hparams={"learning_rate": [0.01, 0.5]}))
    final = r.table[(r.table.metric == "train_loss") & (r.table.step == 10)]
    assert final.learning_rate.tolist() == [0.01, 0.5]
    assert final.value.iloc[0] != final.value.iloc[1]


# --------------------------------------------------------------------------- item 2: resume


SCHEDULE_CHANGES = {
    "piecewise_constant boundary": (
        optax.piecewise_constant_schedule(0.1, {5: 0.01}),
        optax.piecewise_constant_schedule(0.1, {100: 0.01}),
    ),
    "staircase exponential_decay": (
        optax.exponential_decay(0.1, 4, 0.5, staircase=True),
        optax.exponential_decay(0.1, 6, 0.5, staircase=True),
    ),
    "warmup_cosine decay_steps": (
        optax.warmup_cosine_decay_schedule(0.0, 0.1, 2, decay_steps=10),
        optax.warmup_cosine_decay_schedule(0.0, 0.1, 2, decay_steps=8),
    ),
}


# one schedule change in the default suite, the other two (~10 s each) in the slow set
@pytest.mark.parametrize(
    "change",
    [c if c == "warmup_cosine decay_steps" else pytest.param(c, marks=pytest.mark.slow)
     for c in SCHEDULE_CHANGES],
)  # fmt: skip
def test_a_changed_schedule_does_not_resume(tmp_path, change):
    old, new = SCHEDULE_CHANGES[change]
    first = _run(_study(optax.sgd(old)), tmp_path)
    with pytest.raises(ValueError, match=r"belongs to a different study \(optimizer changed"):
        _run(_study(optax.sgd(new)), tmp_path)
    # the same schedule resumes, to the same table
    again = _run(_study(optax.sgd(old)), tmp_path)
    pd.testing.assert_frame_equal(first.table, again.table)


@pytest.mark.slow  # ~12 s
def test_an_adam_schedule_change_late_in_the_study_does_not_resume(tmp_path):
    _run(_study(optax.adam(optax.piecewise_constant_schedule(1e-3, {8: 0.1}))), tmp_path)
    with pytest.raises(ValueError, match=r"\(optimizer changed"):
        _run(_study(optax.adam(optax.piecewise_constant_schedule(1e-3, {9: 0.1}))), tmp_path)


def _activation():
    def act(x):  # a new function object per call: another memory address, same code
        return nn.leaky_relu(x, 0.1)

    return act


class PartialMLP(nn.Module):
    act: object

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(10)(self.act(nn.Dense(8)(x)))


def test_a_model_holding_a_partial_resumes(tmp_path):
    """A linen model whose repr holds memory addresses (a functools.partial of a function)
    resumes: the addresses differ in every process, the model does not."""
    study = lambda: _study(
        model=PartialMLP(
            functools.partial(
                _activation(),
            )
        )
    )
    assert repr(study().model) != repr(study().model)  # the addresses differ
    first = _run(study(), tmp_path)
    again = _run(study(), tmp_path)
    pd.testing.assert_frame_equal(first.table, again.table)


# --------------------------------------------------------------------------- item 5: bookkeeping


def _tamper(path, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(path, **arrays)


def _legacy_save(self, state, done, records, n):
    """jaxinit's checkpoint writer before orbax, whose bookkeeping arrays are plain to tamper
    with; the engine still reads these files."""
    write_legacy_npz(self.legacy, self.fingerprint, state, done, records, n)


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_Checkpoint, "save", _legacy_save)
        _run(_study(), out)
    (path,) = glob.glob(os.path.join(out, "checkpoint-*.npz"))
    with open(path, "rb") as f:
        return out, path, f.read()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"done": np.asarray(-5)}, r"it says -5 steps were done"),
        ({"done": np.asarray(15)}, r"it says 15 steps were done"),
        ({"done": np.asarray(7)}, r"it says 7 steps were done"),
        ({"done": np.asarray(5)}, r"records run from step 0 to 10 but it says 5"),
        ({"records": np.zeros((0, 4))}, r"holds no records"),
        ({"records": "drop-last"}, r"records lack|different numbers of records|records run"),
        ({"records": "duplicate"}, r"twice"),
        ({"records": "other-member"}, r"records are of members"),
    ],
)
def test_tampered_bookkeeping_is_refused_naming_the_file(checkpointed, changes, match):
    out, path, original = checkpointed
    try:
        with np.load(path) as z:
            records = z["records"]
        kind = changes.get("records")
        if isinstance(kind, str):
            changes = {
                "records": {
                    "drop-last": records[records[:, 1] < records[:, 1].max()],
                    "duplicate": np.concatenate([records, records[:1]]),
                    "other-member": records + np.asarray([1.0, 0, 0, 0]),
                }[kind]
            }
        _tamper(path, **changes)
        with pytest.raises(ValueError, match=match) as info:
            _run(_study(), out)
        msg = str(info.value)
        assert path in msg and "delete it" in msg
    finally:
        with open(path, "wb") as f:
            f.write(original)


def test_a_damaged_checkpoint_file_is_refused_naming_the_file(checkpointed):
    out, path, original = checkpointed
    try:
        for damage in (original[: len(original) // 2], b"not a zip file"):
            with open(path, "wb") as f:
                f.write(damage)
            with pytest.raises(ValueError, match=r"damaged.*delete") as info:
                _run(_study(), out)
            assert path in str(info.value)
        with open(path, "wb") as f:
            f.write(original)
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files if k != "done"}
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match=r"checkpoint-0\.npz.*(KeyError|damaged).*delete"):
            _run(_study(), out)
    finally:
        with open(path, "wb") as f:
            f.write(original)
    # the untouched checkpoint still resumes
    assert len(_run(_study(), out).table)
