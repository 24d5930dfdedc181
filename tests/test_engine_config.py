"""The engine's own defects (issue 16): labels of later member batches, resume checks by
value, resume on another device count, ``out_dir`` and config checks before compiling,
and property-based tests over generated Study configurations."""

import math
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxinit
from jaxinit.study import _checkpoint
from jaxinit.study._checkpoint import _Checkpoint
from jaxinit.study._population import _init_program
from jaxinit.study._program import _chunk_program

DATA = jaxinit.digits()
SMALL = jaxinit.Dataset("small", DATA.x_train[:200], DATA.y_train[:200], DATA.x_test[:50],
                        DATA.y_test[:50], 10)  # fmt: skip
MODEL = jaxinit.MLP((8, 10))


def _study(**kw):
    base = dict(
        model=MODEL, dataset=SMALL, optimizer=optax.sgd(0.1, momentum=0.9),
        inits={"he": "he_normal", "glorot": jaxinit.glorot_uniform()},
        seeds=3, steps=20, batch_size=16, log_every=10, eval_every=10,
    )  # fmt: skip
    base.update(kw)
    return jaxinit.Study(**base)


@pytest.fixture(scope="module")
def reference():
    return jaxinit.run_study(_study(), progress=False)


def _compiles():
    return _chunk_program.cache_info().misses, _init_program.cache_info().misses


def test_partial_results_label_every_member_batch(tmp_path, reference):
    r = jaxinit.run_study(_study(max_members=4), out_dir=tmp_path, progress=False)
    partial = pd.read_csv(tmp_path / "results.partial.csv")
    final = pd.read_csv(tmp_path / "results.csv")
    # the last partial table is written after the last batch: it must be the whole table
    assert set(zip(partial.init, partial.seed, strict=True)) == {
        (i, s) for i in ("he", "glorot") for s in range(3)
    }
    pd.testing.assert_frame_equal(partial, final)
    np.testing.assert_allclose(r.table.value, reference.table.value, rtol=1e-5, atol=1e-6)


class _Relu(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(jax.nn.relu(nn.Dense(8)(x)))


def _tanh_net():
    class _Relu(nn.Module):  # same name and repr, different code
        @nn.compact
        def __call__(self, x):
            return nn.Dense(10)(jnp.tanh(nn.Dense(8)(x)))

    return _Relu()


def test_resume_refuses_a_changed_study(tmp_path):
    base = dict(model=_Relu(), steps=10)
    jaxinit.run_study(_study(**base), out_dir=tmp_path, progress=False)
    changes = [
        ({"optimizer": optax.sgd(0.1)}, 0, "optimizer"),  # momentum 0.9 -> none
        (
            {"inits": {"he": "he_normal", "glorot": jaxinit.glorot_normal()}},
            0,
            r"inits\['glorot'\]",
        ),
        ({"model": _tanh_net()}, 0, "model_output"),
        # a new key changes every draw as well
        ({}, 1, r"inits\['glorot'\], inits\['he'\], key, model_output, optimizer"),
    ]
    for change, key, component in changes:
        with pytest.raises(
            ValueError, match=f"belongs to a different study \\({component} changed"
        ):
            jaxinit.run_study(_study(**{**base, **change}), key=key, out_dir=tmp_path,
                              progress=False)  # fmt: skip


class _Stop(Exception):
    pass


def _devices(n):
    orig = jax.devices
    return lambda *a: orig(*a)[:n] if not a else orig(*a)


def test_resume_on_another_device_count(tmp_path, monkeypatch, reference):
    # killed after the first chunk on 3 devices (6 members: no padding) ...
    save = _Checkpoint.save

    def save_then_stop(self, *args):
        save(self, *args)
        raise _Stop

    with monkeypatch.context() as m:
        m.setattr(_Checkpoint, "save", save_then_stop)
        m.setattr(jax, "devices", _devices(3))
        with pytest.raises(_Stop):
            jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    _checkpoint._wait_all()  # the save in flight when the study stopped
    assert [p.name for p in (tmp_path / "checkpoint-0").iterdir()] == ["10"]  # steps done
    # ... resumed on 4 devices (padded to 8) and on 1, same results as uninterrupted
    resumed = jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    np.testing.assert_allclose(resumed.table.value, reference.table.value, rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(resumed.table.drop(columns="value"),
                                  reference.table.drop(columns="value"))  # fmt: skip
    monkeypatch.setattr(jax, "devices", _devices(1))
    again = jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    pd.testing.assert_frame_equal(again.table, resumed.table)


def test_out_dir_checked_before_any_work(tmp_path):
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    before = _compiles()
    with pytest.raises(
        ValueError, match=r"run_study: out_dir=.*f.txt' exists and is not a directory"
    ):
        jaxinit.run_study(_study(), out_dir=a_file, progress=False)
    with pytest.raises(ValueError, match="is not a writable directory"):
        jaxinit.run_study(_study(), out_dir=a_file / "sub", progress=False)
    with pytest.raises(TypeError, match="out_dir must be a path"):
        jaxinit.run_study(_study(), out_dir=3, progress=False)
    assert _compiles() == before


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"eval_every": 0}, ValueError, "eval_every must be a positive int, got 0"),
        ({"eval_every": -10}, ValueError, "eval_every must be a positive int, got -10"),
        ({"max_members": 2.5}, TypeError, r"max_members must be a positive int, got 2.5 \(float\)"),
        ({"max_members": 0}, ValueError, "max_members must be a positive int"),
        ({"seeds": 2.0}, TypeError, r"seeds must be a positive int, got 2.0 \(float\)"),
        ({"seeds": True}, TypeError, "seeds must be a positive int, got True"),
        ({"dataset": (1, 2)}, TypeError, "dataset must be a jaxinit.Dataset"),
        ({"fixed_data_order": "yes"}, TypeError, "fixed_data_order must be a bool"),
    ],
)
def test_bad_config_raises_before_compiling(change, error, message):
    before = _compiles()
    with pytest.raises(error, match=message):
        jaxinit.run_study(_study(**change), progress=False)
    assert _compiles() == before


@pytest.mark.parametrize(
    ("key", "error", "message"),
    [
        (np.float32(0), TypeError, "key must be an int seed or a PRNG key"),
        (True, TypeError, "key must be an int seed or a PRNG key"),
        (np.zeros(3, np.int32), TypeError, r"dtype int32 and shape \(3,\)"),
        (jax.random.split(jax.random.key(0), 2), ValueError, r"batch of shape \(2,\)"),
    ],
)
def test_bad_key_raises_before_compiling(key, error, message):
    before = _compiles()
    with pytest.raises(error, match=message):
        jaxinit.run_study(_study(), key=key, progress=False)
    assert _compiles() == before


def test_numpy_integers_are_ints(reference):
    s = _study(seeds=np.int64(3), steps=np.int32(20), batch_size=np.int64(16),
               log_every=np.int64(10), eval_every=np.int64(10), max_members=np.int64(6))  # fmt: skip
    for key in (np.int64(0), jnp.int32(0), jax.random.key(0), jax.random.PRNGKey(0)):
        r = jaxinit.run_study(s, key=key, progress=False)
        pd.testing.assert_frame_equal(r.table, reference.table)


# ---------------------------------------------------------------- property-based tests

_VALID_INT = st.sampled_from([1, 2, np.int64(2)])


def _expected_rows(seeds, steps, log_every, eval_every, n_inits):
    chunks = math.ceil(steps / (eval_every or steps))
    per_member = 4 * steps // log_every + 2 * (1 + chunks)
    return n_inits * seeds * per_member


def _is_int(v):
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(
    seeds=st.sampled_from([1, 2, 0, -1, 1.5, True, "2", None]),
    steps=st.sampled_from([10, 20, 0, 15, 2.0]),
    log_every=st.sampled_from([5, 10, 0, 3, -5]),
    eval_every=st.sampled_from([None, 10, 0, -10, 7, 10.0]),
    batch_size=st.sampled_from([8, 0, 201, 8.5]),
    max_members=st.sampled_from([None, 1, 0, 2.5, -3]),
    loss=st.sampled_from([None, "cross_entropy", "mse", "hinge"]),
)
def test_generated_invalid_configs_are_rejected_before_compiling(
    seeds, steps, log_every, eval_every, batch_size, max_members, loss
):
    ints = dict(seeds=seeds, steps=steps, log_every=log_every, batch_size=batch_size)
    valid = (
        all(_is_int(v) and v >= 1 for v in ints.values())
        and (eval_every is None or (_is_int(eval_every) and eval_every >= 1))
        and (max_members is None or (_is_int(max_members) and max_members >= 1))
        and batch_size <= 200
        and steps % log_every == 0
        and (eval_every or steps) % log_every == 0
        and loss in (None, "cross_entropy")
    )
    if valid:
        return  # the valid ones are run below, with fewer examples
    before = _compiles()
    with pytest.raises((ValueError, TypeError), match="Study"):
        jaxinit.run_study(_study(**ints, eval_every=eval_every, max_members=max_members,
                                 loss=loss), progress=False)  # fmt: skip
    assert _compiles() == before


@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(
    seeds=_VALID_INT,
    log_every=st.sampled_from([5, 10]),
    chunks=st.sampled_from([1, 2]),
    max_members=st.sampled_from([None, 1, 3]),
    n_inits=st.sampled_from([1, 2]),
)
def test_generated_valid_configs_run_with_the_expected_rows(
    seeds, log_every, chunks, max_members, n_inits
):
    steps = 20
    eval_every = steps // chunks if steps // chunks % log_every == 0 else None
    inits = dict(list({"he": "he_normal", "zeros": "zeros"}.items())[:n_inits])
    s = _study(seeds=seeds, steps=steps, log_every=log_every, eval_every=eval_every,
               max_members=max_members, inits=inits)  # fmt: skip
    r = jaxinit.run_study(s, progress=False)
    assert len(r.table) == _expected_rows(int(seeds), steps, log_every, eval_every, n_inits)
    assert set(zip(r.table.init, r.table.seed, strict=True)) == {
        (i, s) for i in inits for s in range(seeds)
    }
    counts = r.table.groupby(["init", "seed", "metric"]).size()
    assert (
        counts[counts.index.get_level_values("metric") == "train_loss"] == steps // log_every
    ).all()
    assert os.environ.get("XLA_FLAGS")  # conftest's flags are in effect


def test_devices_argument(reference):
    two = jaxinit.run_study(_study(), devices=jax.devices()[:2], progress=False)
    np.testing.assert_allclose(two.table.value, reference.table.value, rtol=1e-5, atol=1e-6)
    for bad in ([], [jax.devices()[0]] * 2, ["cpu:0"]):
        with pytest.raises(ValueError, match="devices must be a non-empty sequence of distinct"):
            jaxinit.run_study(_study(), devices=bad, progress=False)
    with pytest.raises(TypeError, match="devices must be a sequence of jax devices"):
        jaxinit.run_study(_study(), devices=3, progress=False)
