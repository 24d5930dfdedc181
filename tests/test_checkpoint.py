"""Checkpoints on disk (orbax folders): what a resume refuses, naming the file and what to
do (a shard tampered with or truncated, another format, another study), and the npz files
of jaxinit before orbax, read without pickle and replaced at the next save."""

import json
import shutil

import optax
import pandas as pd
import pytest

import jaxinit
from jaxinit.study import _checkpoint
from jaxinit.study._checkpoint import _Checkpoint
from tests._legacy_checkpoint import write_legacy_npz


def _study(**kw):
    base = dict(
        model=jaxinit.MLP((8, 10)), dataset=jaxinit.digits(), optimizer=optax.sgd(0.1),
        inits={"he": "he_normal", "glorot": "glorot_uniform"}, seeds=2, steps=20,
        batch_size=16, log_every=10, eval_every=10,
    )  # fmt: skip
    base.update(kw)
    return jaxinit.Study(**base)


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def reference():
    return jaxinit.run_study(_study(), progress=False).table


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """An out_dir whose study stopped right after its first checkpoint (step 10)."""
    out = tmp_path_factory.mktemp("stopped")
    save = _Checkpoint.save

    def save_then_stop(self, *args):
        save(self, *args)
        raise _Stop

    with pytest.MonkeyPatch.context() as m:
        m.setattr(_Checkpoint, "save", save_then_stop)
        with pytest.raises(_Stop):
            jaxinit.run_study(_study(), out_dir=out, progress=False)
    _checkpoint._wait_all()
    assert sorted(p.name for p in (out / "checkpoint-0").iterdir()) == ["10"]
    return out


def _copy(stopped, tmp_path):
    shutil.copytree(stopped, tmp_path, dirs_exist_ok=True)
    return tmp_path / "checkpoint-0" / "10"


def test_a_stopped_study_resumes_to_the_uninterrupted_table(stopped, tmp_path, reference):
    step = _copy(stopped, tmp_path)
    meta = json.loads((step / "meta" / "metadata").read_text())
    assert meta["done"] == 10 and meta["members"] == 4 and len(meta["digests"]) == 4
    resumed = jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    pd.testing.assert_frame_equal(resumed.table, reference)
    # the finished step replaced the first one once complete
    assert [p.name for p in (tmp_path / "checkpoint-0").iterdir()] == ["20"]


def _largest_shard(step):
    return max((p for p in (step / "state").rglob("*") if p.parent.name == "d"),
               key=lambda p: p.stat().st_size)  # fmt: skip


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_a_damaged_shard_is_refused_and_kept(stopped, tmp_path, damage):
    step = _copy(stopped, tmp_path)
    shard = _largest_shard(step)
    data = bytearray(shard.read_bytes())
    if damage == "tampered":
        middle = len(data) // 2
        data[middle : middle + 8] = bytes(b ^ 0x5A for b in data[middle : middle + 8])
    else:
        data = data[: len(data) // 2]
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"checkpoint-0.*delete .*checkpoint-0"):
        jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    assert shard.read_bytes() == bytes(data)  # nothing overwritten


def test_another_format_and_another_study_are_refused(stopped, tmp_path):
    step = _copy(stopped, tmp_path)
    path = step / "meta" / "metadata"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps(dict(meta, format="jaxinit.study checkpoint 9")))
    with pytest.raises(ValueError, match=r"10 was written in another checkpoint format.*delete"):
        jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"checkpoint-0/10 belongs to a different study \(.*key"):
        jaxinit.run_study(_study(), 1, out_dir=tmp_path, progress=False)


def _legacy_save(self, state, done, records, n):
    """The writer of jaxinit before orbax: ``checkpoint-<group>.npz``, real members only."""
    write_legacy_npz(self.legacy_path, self.fingerprint, state, done, records, n)
    raise _Stop


def test_a_legacy_npz_checkpoint_resumes_and_is_replaced(tmp_path, monkeypatch, reference):
    legacy = tmp_path / "checkpoint-0.npz"
    monkeypatch.setattr(_Checkpoint, "legacy_path", legacy, raising=False)
    monkeypatch.setattr(_Checkpoint, "save", _legacy_save)
    with pytest.raises(_Stop):
        jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    monkeypatch.undo()
    assert legacy.exists()
    shutil.rmtree(tmp_path / "checkpoint-0")  # the folder made by the stopped run's lookup
    resumed = jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    pd.testing.assert_frame_equal(resumed.table, reference)
    assert not legacy.exists()  # replaced once the orbax checkpoint was complete
    # a torn legacy file is refused, naming it
    legacy.write_bytes(b"PK\x03\x04 torn")
    shutil.rmtree(tmp_path / "checkpoint-0")
    with pytest.raises(ValueError, match=r"checkpoint-0.npz.*delete .*checkpoint-0.npz"):
        jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
