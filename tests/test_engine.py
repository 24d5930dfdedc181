"""The training engine: one compiled program, paired seeds, sharding, divergence, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest
from flax import nnx

import jaxinit
from jaxinit.study._population import _init_program, _member_init, _spec_key
from jaxinit.study._program import _chunk_program, _compiler_options
from jaxinit.study._results import EVAL_METRICS, METRICS

DATA = jaxinit.digits()
MODEL = jaxinit.MLP((16, 10))


def _study(**kw):
    base = dict(
        model=MODEL, dataset=DATA, optimizer=optax.sgd(0.1, momentum=0.9),
        inits={"he": "he_normal", "glorot": jaxinit.glorot_uniform()},
        seeds=3, steps=40, batch_size=32, log_every=10, eval_every=20,
    )  # fmt: skip
    base.update(kw)
    return jaxinit.Study(**base)


STUDY = _study()


@pytest.fixture(scope="module")
def result():
    return jaxinit.run_study(STUDY, progress=False)


def test_tidy_table(result):
    t = result.table
    assert list(t.columns) == ["init", "seed", "step", "metric", "value"]
    assert set(t.init) == {"he", "glorot"} and set(t.seed) == {0, 1, 2}
    assert set(t.metric) == set(METRICS + EVAL_METRICS)
    train = t[t.metric == "train_loss"]
    assert sorted(set(train.step)) == [10, 20, 30, 40]
    test = t[t.metric == "test_loss"]
    assert sorted(set(test.step)) == [0, 20, 40]
    assert np.isfinite(t.value).all() and result.diverged.empty
    # Learning happens: every member's test loss drops from its value at init.
    wide = result.metric("test_loss")
    assert (wide[40] < wide[0]).all()


def test_first_evaluation_is_of_the_initial_parameters(result):
    # The first training chunk evaluates its input state (step 0) inside the training
    # program: the same values as evaluating each member's initial parameters directly.
    t = result.table
    x, y = jnp.asarray(DATA.x_test), jnp.asarray(DATA.y_test)
    adapter = jaxinit.study._adapters._make_model(MODEL, DATA)
    for name, spec in STUDY.inits.items():
        init = _member_init(adapter, _spec_key(spec), STUDY.kernel_pattern)
        for seed in range(STUDY.seeds):
            params = init(jax.random.fold_in(jax.random.key(0), seed))
            logits = MODEL.apply({"params": params}, x)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            accuracy = (jnp.argmax(logits, -1) == y).mean()
            row = t[(t.init == name) & (t.seed == seed) & (t.step == 0)].set_index("metric")
            np.testing.assert_allclose(row.value["test_loss"], loss, rtol=1e-5)
            np.testing.assert_allclose(row.value["test_accuracy"], accuracy, atol=1e-7)


@pytest.mark.parametrize("model", [MODEL, lambda rngs: nnx.Linear(64, 10, rngs=rngs)])
def test_initial_state_program_is_bit_identical_at_llvm_level_1(model):
    # The CPU programs compile at LLVM level 1 (_compiler_options); the initial state must
    # be the same bits as XLA's default level 2 gives (level 0 is not: no fused multiply-add).
    inits = ("he_normal", "orthogonal", "glorot_uniform", "torch_default", "lecun_uniform",
             jaxinit.truncated_normal(0.3), jaxinit.variance_scaling(2.0, "fan_avg", "uniform"))  # fmt: skip
    study = _study(model=model, inits={str(i): i for i in range(len(inits))})
    adapter = jaxinit.study._adapters._make_model(study.model, DATA)
    specs = tuple(_spec_key(i) for i in inits)
    args = (jax.random.key(3), np.tile(np.arange(2, dtype=np.int32), len(inits)),
            np.zeros((2 * len(inits), 0), np.float32))  # fmt: skip
    optimizer = optax.sgd(0.1, momentum=0.9)
    program = functools.partial(
        _init_program, adapter, specs, (2,) * len(inits), study.kernel_pattern, optimizer, (), False
    )
    default = (("xla_backend_optimization_level", 2),)  # XLA's own (conftest sets 0)
    level_1 = (("xla_backend_optimization_level", 1),)  # _compiler_options("cpu")
    states = [program(options)(*args) for options in (default, level_1)]
    leaves = [jax.tree.leaves(s.params) + jax.tree.leaves(s.opt_state) for s in states]
    for a, b in zip(*leaves, strict=True):
        np.testing.assert_array_equal(a, b)


def test_compiler_options_are_cpu_only_and_yield_to_xla_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    assert dict(_compiler_options("cpu")) == {"xla_backend_optimization_level": 1}
    assert _compiler_options("gpu") == () and _compiler_options("tpu") == ()
    # a level the user chose (conftest's 0, for a fast suite) wins
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    assert _compiler_options("cpu") == ()


def test_members_differ_by_seed_and_init(result):
    wide = result.metric("param_norm")[10]
    assert wide.nunique() == len(wide)


def test_no_recompilation_on_second_call(result, caplog):
    before = _chunk_program.cache_info().misses, _init_program.cache_info().misses
    with jax.log_compiles(True), caplog.at_level("DEBUG"):
        again = jaxinit.run_study(STUDY, progress=False)
    compiled = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiled == []
    after = _chunk_program.cache_info().misses, _init_program.cache_info().misses
    assert after == before
    pd.testing.assert_frame_equal(again.table, result.table)


def test_same_numbers_on_one_device_as_on_four(result):
    assert len(jax.devices()) == 4  # conftest.py (repository root) forces 4 host devices
    with jax.default_device(jax.devices()[0]):
        orig = jax.devices
        jax.devices = lambda: orig()[:1]
        try:
            single = jaxinit.run_study(_study(), progress=False)
        finally:
            jax.devices = orig
    np.testing.assert_allclose(single.table.value, result.table.value, rtol=1e-5, atol=1e-6)


def test_member_batches_match_one_population(result):
    batched = jaxinit.run_study(_study(max_members=4), progress=False)
    np.testing.assert_allclose(batched.table.value, result.table.value, rtol=1e-5, atol=1e-6)


def test_fixed_data_order_makes_seeds_share_batches():
    s = _study(inits={"zeros": "zeros"}, fixed_data_order=True)
    r = jaxinit.run_study(s, progress=False)
    # zero init + same batches: every seed follows exactly the same trajectory.
    wide = r.metric("train_loss")
    assert (wide.nunique(axis=0) == 1).all()
    r2 = jaxinit.run_study(_study(inits={"zeros": "zeros"}), progress=False)
    assert (r2.metric("train_loss").nunique(axis=0) > 1).any()


def test_divergence_is_recorded_and_contained():
    s = _study(inits={"huge": jaxinit.random_normal(stddev=1e4), "he": "he_normal"},
               optimizer=optax.sgd(50.0), steps=40)  # fmt: skip
    r = jaxinit.run_study(s, progress=False)
    assert set(r.diverged.init) <= {"huge", "he"}
    assert "huge" in set(r.diverged.init)
    he = r.table[(r.table.init == "he") & (r.table.metric == "param_norm")]
    assert len(he) > 0


def test_divergence_of_one_member_leaves_others_unchanged(result):
    s = _study(inits={"he": "he_normal", "glorot": jaxinit.glorot_uniform(),
                      "nan": jaxinit.constant(float("1e30"))})  # fmt: skip
    r = jaxinit.run_study(s, progress=False)
    assert "nan" in set(r.diverged.init)
    ours = r.table[r.table.init != "nan"].reset_index(drop=True)
    np.testing.assert_allclose(ours.value, result.table.value, rtol=1e-5, atol=1e-6)


def test_nnx_model():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(64, 16, rngs=rngs)
            self.l2 = nnx.Linear(16, 10, rngs=rngs)

        def __call__(self, x):
            return self.l2(jax.nn.relu(self.l1(x)))

    r = jaxinit.run_study(_study(model=lambda rngs: Net(rngs)), progress=False)
    wide = r.metric("test_loss")
    assert (wide[40] < wide[0]).all()


def test_regression_with_mse():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = (x @ rng.normal(size=(8, 2))).astype(np.float32)
    data = jaxinit.Dataset("teacher", x[:200], y[:200], x[200:], y[200:], 0)
    r = jaxinit.run_study(_study(model=jaxinit.MLP((2,), "linear"), dataset=data,
                                 optimizer=optax.sgd(0.05)), progress=False)  # fmt: skip
    assert "train_accuracy" not in set(r.table.metric)
    wide = r.metric("test_loss")
    assert (wide[40] < 0.5 * wide[0]).all()


def test_rules_spec():
    rules = {"Dense_0/kernel": "he_normal", "Dense_1/kernel": "zeros"}
    r = jaxinit.run_study(_study(inits={"rules": rules}), progress=False)
    assert set(r.table.init) == {"rules"}


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"model": jaxinit.MLP((16, 7))}, ValueError, r"output has shape \(7,\).*needs \(10,\)"),
        ({"seeds": 0}, ValueError, "seeds must be a positive int"),
        ({"steps": 0}, ValueError, "steps must be a positive int"),
        ({"batch_size": 5000}, ValueError, "batch_size=5000 is larger than the 1438"),
        ({"optimizer": "adam"}, TypeError, "optimizer must be an optax GradientTransformation"),
        ({"inits": {}}, ValueError, "inits must be a non-empty mapping"),
        ({"inits": {"x": "he_unifrom"}}, ValueError, r"inits\['x'\].*did you mean 'he_uniform'"),
        ({"inits": {"x": {"Conv_*/kernel": "he_normal"}}}, ValueError, "matches no parameter"),
        ({"eval_every": 15}, ValueError, "multiples of log_every=10"),
        ({"loss": "hinge"}, ValueError, "loss='hinge'"),
    ],
)
def test_bad_input_raises_before_compiling(change, error, message):
    before = _chunk_program.cache_info().misses
    with pytest.raises(error, match=message):
        jaxinit.run_study(_study(**change), progress=False)
    assert _chunk_program.cache_info().misses == before


def test_writes_results_and_resumes(tmp_path, result):
    r = jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    saved = pd.read_csv(tmp_path / "results.csv")
    np.testing.assert_allclose(saved.value, result.table.value, rtol=1e-6)
    assert (tmp_path / "checkpoint-0" / "40").is_dir()  # orbax: one step, the steps done
    # A finished checkpoint resumes to the same table without training again.
    again = jaxinit.run_study(_study(), out_dir=tmp_path, progress=False)
    pd.testing.assert_frame_equal(again.table, r.table)
    with pytest.raises(ValueError, match="belongs to a different study"):
        jaxinit.run_study(_study(optimizer=optax.sgd(0.2, momentum=0.9)), out_dir=tmp_path,
                          progress=False)  # fmt: skip


def test_keys_are_paired_across_inits():
    # Same seed -> same data key for every initializer.
    r = jaxinit.run_study(_study(inits={"a": "zeros", "b": "zeros"}), progress=False)
    a = r.table[r.table.init == "a"].value.to_numpy()
    b = r.table[r.table.init == "b"].value.to_numpy()
    np.testing.assert_array_equal(a, b)
    assert jnp.float32(1).dtype == jnp.float32


def test_adam_under_strict_promotion():
    # optax.adam mixes Python floats and int32 counts; the engine must not fail on it.
    r = jaxinit.run_study(_study(optimizer=optax.adam(1e-2), steps=20), progress=False)
    assert np.isfinite(r.table.value).all()


def test_use_cpu_cores():
    import os
    import subprocess
    import sys

    # here XLA_FLAGS forces 4 host devices (conftest): an explicit choice wins
    assert jaxinit.use_cpu_cores() == jax.device_count() == 4
    with pytest.raises(ValueError, match="use_cpu_cores: n must be a positive int"):
        jaxinit.use_cpu_cores(0)
    # in a fresh process it sets the count, and refuses once JAX has started with another
    code = (
        "import jax, jaxinit\n"
        "assert jaxinit.use_cpu_cores(3) == jax.device_count() == 3\n"
        "assert jaxinit.use_cpu_cores() == 3\n"
        "try:\n"
        "    jaxinit.use_cpu_cores(2)\n"
        "except RuntimeError as e:\n"
        "    assert 'already started with 3 CPU device(s)' in str(e)\n"
        "else:\n"
        "    raise AssertionError('no error')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
