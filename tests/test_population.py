"""The public population layers: a population trained with a hand-written step equal to the
built-in one gives the study's table bit for bit; a step with gradient clipping, a
warmup-cosine schedule over a learning-rate grid, an EMA of the parameters and label
smoothing records its own metrics; bad steps are refused before training, naming the step,
the leaf and what was expected."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

import jaxinit

DATA = jaxinit.digits()
SMALL = jaxinit.Dataset("small", DATA.x_train[:300], DATA.y_train[:300], DATA.x_test[:100],
                        DATA.y_test[:100], 10)  # fmt: skip
MODEL = jaxinit.MLP((8, 10))
INITS = {"he": "he_normal", "glorot": "glorot_uniform"}
SGD = optax.inject_hyperparams(optax.sgd)(learning_rate=0.01)


def _norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def builtin_step(state, batch, key, hparams):
    """The engine's built-in step, written by hand: cross-entropy, SGD, the same metrics."""
    x, y = batch

    def loss_fn(params):
        logits = MODEL.apply({"params": params}, x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, (jnp.argmax(logits, -1) == y).mean(dtype=jnp.float32)

    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts and floats
        updates, opt_state = SGD.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"train_loss": loss, "train_accuracy": accuracy, "grad_norm": _norm(grads),
               "param_norm": _norm(params)}  # fmt: skip
    return state._replace(params=params, opt_state=opt_state), metrics


def builtin_eval(state, batch):
    x, y = batch
    logits = MODEL.apply({"params": state.params}, x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return {"loss": loss, "accuracy": (jnp.argmax(logits, -1) == y).mean(dtype=jnp.float32)}


def _population(**kw):
    base = dict(seeds=2, optimizer=SGD, hparams={"learning_rate": [0.01, 0.1]}, key=3)
    return jaxinit.make_population(MODEL, SMALL, INITS, **{**base, **kw})


TRAIN = dict(steps=20, batch_size=32, log_every=10, eval_every=10, validation=0.1)


def test_a_hand_written_builtin_step_gives_the_study_table_bit_for_bit():
    study = jaxinit.Study(MODEL, SMALL, optax.sgd, INITS, seeds=2, batch_size=32,
                          hparams={"learning_rate": [0.01, 0.1]}, steps=20, log_every=10,
                          eval_every=10, validation=0.1)  # fmt: skip
    expected = jaxinit.run_study(study, key=3, progress=False).table
    pop, result = jaxinit.train_population(
        _population(), builtin_step, SMALL, evaluate=builtin_eval,
        last=("grad_norm", "param_norm"), progress=False, **TRAIN,
    )  # fmt: skip
    pd.testing.assert_frame_equal(result.table, expected, check_exact=True)
    assert pop.size == 8 and int(pop.state.step[0]) == 20


def test_member_table_and_initial_state_match_the_study():
    pop = _population()
    assert list(pop.members.columns) == ["init", "seed", "learning_rate"]
    assert pop.members.to_dict("list") == {
        "init": ["he"] * 4 + ["glorot"] * 4,
        "seed": [0, 0, 1, 1] * 2,
        "learning_rate": [0.01, 0.1] * 4,
    }
    lr = np.asarray(pop.train_state.opt_state.hyperparams["learning_rate"])
    np.testing.assert_array_equal(lr, np.float32([0.01, 0.1] * 4))
    kernel = np.asarray(pop.train_state.params["Dense_0"]["kernel"])
    np.testing.assert_array_equal(kernel[0], kernel[1])  # one seed: the same init at every lr
    assert not np.array_equal(kernel[0], kernel[2])  # another seed draws another


def test_evaluate_population_gives_tidy_rows():
    pop = _population()
    rows = jaxinit.evaluate_population(pop, builtin_eval, SMALL.x_test, SMALL.y_test, step=5)
    assert list(rows.columns) == ["init", "seed", "learning_rate", "step", "metric", "value"]
    assert set(rows.metric) == {"test_loss", "test_accuracy"} and len(rows) == 16
    assert (rows.step == 5).all()
    # the same numbers as the study's evaluation at step 0
    _, result = jaxinit.train_population(pop, builtin_step, SMALL, evaluate=builtin_eval,
                                         progress=False, **TRAIN)  # fmt: skip
    t = result.table
    at0 = t[(t.step == 0) & t.metric.str.startswith("test")].reset_index(drop=True)
    np.testing.assert_allclose(at0.value, rows.value, rtol=1e-6)


STEPS = 30


WARMUP_COSINE = optax.warmup_cosine_decay_schedule(0.0, 1.0, 5, STEPS)


def make_tx(peak_lr):
    """Clipping, then SGD with momentum on a warmup-cosine schedule peaking at ``peak_lr``
    (a traced value per member: the unit schedule scaled by it)."""
    schedule = lambda count: peak_lr * WARMUP_COSINE(count)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(schedule, momentum=0.9))


TX = optax.inject_hyperparams(make_tx)(peak_lr=0.1)


def own_step(state, batch, key, hparams):
    """Label smoothing from the grid, clipped warmup-cosine SGD, an EMA of the parameters."""
    x, y = batch
    labels = optax.smooth_labels(jax.nn.one_hot(y, 10), hparams["smoothing"])

    def loss_fn(params):
        logits = MODEL.apply({"params": params}, x)
        return optax.softmax_cross_entropy(logits, labels).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = TX.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, state.extra, params)
    metrics = {"train_loss": loss, "grad_norm": optax.tree.norm(grads)}
    return state._replace(params=params, opt_state=opt_state, extra=ema), metrics


def ema_eval(state, batch):
    x, y = batch
    logits = MODEL.apply({"params": state.extra}, x)
    return {"ema_accuracy": (jnp.argmax(logits, -1) == y).mean(dtype=jnp.float32)}


def test_own_step_with_clipping_schedule_ema_and_label_smoothing():
    grid = {"peak_lr": [0.05, 0.2], "smoothing": [0.0, 0.1]}
    pop = jaxinit.make_population(MODEL, SMALL, INITS, seeds=2, optimizer=TX, hparams=grid,
                                  extra=lambda params: params)  # fmt: skip
    assert pop.size == 16
    pop, result = jaxinit.train_population(pop, own_step, SMALL, steps=STEPS, batch_size=32,
                                           log_every=10, evaluate=ema_eval, last=("grad_norm",),
                                           progress=False)  # fmt: skip
    t = result.table
    assert list(t.columns) == ["init", "seed", "peak_lr", "smoothing", "step", "metric", "value"]
    assert set(t.metric) == {"train_loss", "grad_norm", "test_ema_accuracy"}
    acc = result.metric("test_ema_accuracy")
    assert (acc[STEPS] > acc[0]).all() and (acc[STEPS] > 0.5).mean() > 0.5
    assert np.isfinite(t.value).all() and result.diverged.empty
    # the EMA trails the parameters; the peak learning rate reached each member's state
    s = pop.train_state
    assert not np.array_equal(np.asarray(s.extra["Dense_0"]["kernel"]),
                              np.asarray(s.params["Dense_0"]["kernel"]))  # fmt: skip
    peak = np.asarray(s.opt_state.hyperparams["peak_lr"])
    np.testing.assert_array_equal(peak, np.float32(pop.members.peak_lr))
    # smoothing raises the loss floor: at the same peak lr, smoothed members' losses are higher
    loss = result.metric("train_loss")[STEPS].groupby(level="smoothing").mean()
    assert loss[0.1] > loss[0.0]


def test_callbacks_see_every_chunk_once_in_order_and_writers_equal_the_table(tmp_path):
    seen = []
    csv, jsonl = (
        jaxinit.MetricWriter(tmp_path / "m.csv"),
        jaxinit.MetricWriter(tmp_path / "m.jsonl"),
    )
    _, result = jaxinit.train_population(
        _population(), builtin_step, SMALL, evaluate=builtin_eval, progress=False,
        callbacks=[lambda rows, a, b: seen.append((a, b, rows)), csv, jsonl],
        **dict(TRAIN, steps=30),
    )  # fmt: skip
    assert [(a, b) for a, b, _ in seen] == [(0, 10), (10, 20), (20, 30)]
    for a, b, rows in seen:
        train = rows[~rows.metric.str.startswith(("test", "val"))]
        assert ((train.step > a) & (train.step <= b)).all()
    table = result.table
    keys = list(table.columns[:-1])
    written = {
        "callback": pd.concat([r for *_, r in seen]),
        "csv": pd.read_csv(tmp_path / "m.csv"),
        "jsonl": pd.read_json(tmp_path / "m.jsonl", lines=True, precise_float=True),
    }
    for name, got in written.items():
        got = got.sort_values(keys, kind="stable").reset_index(drop=True)
        want = table.sort_values(keys, kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_exact=True, check_dtype=False, obj=name)


def _events(logdir):
    """(tag, step, value) of every scalar in a TensorBoard event file, read with the
    protocol buffers tensorboardX writes."""
    from tensorboardX.proto import event_pb2

    out = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            n = int.from_bytes(data[i : i + 8], "little")
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            out += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
    return out


def test_tensorboard_writer_logs_every_row(tmp_path):
    study = jaxinit.Study(MODEL, SMALL, optax.sgd(0.1), {"he": "he_normal"}, seeds=2,
                          steps=20, batch_size=32, log_every=10, eval_every=10)  # fmt: skip
    with jaxinit.TensorBoardWriter(tmp_path / "tb") as tb:
        result = jaxinit.run_study(study, progress=False, callbacks=[tb])
    events = _events(tmp_path / "tb")
    t = result.table
    assert len(events) == len(t)
    row = t[(t.metric == "test_loss") & (t.seed == 1) & (t.step == 20)].iloc[0]
    assert ("test_loss/init_he/seed_1", 20, pytest.approx(row.value)) in events


def test_a_callback_that_raises_stops_the_study_and_the_checkpoint_resumes(tmp_path):
    study = jaxinit.Study(MODEL, SMALL, optax.sgd(0.1), INITS, seeds=2, steps=30,
                          batch_size=32, log_every=10, eval_every=10)  # fmt: skip
    full = jaxinit.run_study(study, progress=False)

    def fails(rows, start, stop):
        if stop == 20:
            raise OSError("disk full")

    with pytest.raises(
        OSError, match=r"run_study: callback .*fails failed after steps 10..20.*disk full"
    ):
        jaxinit.run_study(study, out_dir=tmp_path, progress=False, callbacks=[fails])
    seen = []
    resumed = jaxinit.run_study(study, out_dir=tmp_path, progress=False,
                                callbacks=[lambda rows, a, b: seen.append((a, b))])  # fmt: skip
    assert seen == [(20, 30)]  # only the chunk after the checkpoint is trained again
    pd.testing.assert_frame_equal(resumed.table, full.table, check_exact=True)


def test_train_population_resumes_from_its_checkpoint(tmp_path):
    kw = dict(evaluate=builtin_eval, progress=False, **dict(TRAIN, steps=30))
    _, full = jaxinit.train_population(_population(), builtin_step, SMALL, **kw)

    def fails(rows, start, stop):
        if stop == 20:
            raise ValueError("stop here")

    with pytest.raises(ValueError, match=r"train_population: callback .*after steps 10..20"):
        jaxinit.train_population(_population(), builtin_step, SMALL, out_dir=tmp_path,
                                 callbacks=[fails], **kw)  # fmt: skip
    pop, resumed = jaxinit.train_population(_population(), builtin_step, SMALL,
                                            out_dir=tmp_path, **kw)  # fmt: skip
    pd.testing.assert_frame_equal(resumed.table, full.table, check_exact=True)
    assert int(pop.state.step[0]) == 30


def _wrong_structure(state, batch, key, hp):
    return state._replace(params={"w": state.params}), {"loss": jnp.float32(0)}


def _wrong_dtype(state, batch, key, hp):
    params = jax.tree.map(lambda p: p.astype(jnp.float16), state.params)
    return state._replace(params=params), {"loss": jnp.float32(0)}


def _vector_metric(state, batch, key, hp):
    return state, {"loss": jnp.zeros(3)}


def _nan_metric(state, batch, key, hp):
    return state, {"loss": jnp.log(jnp.float32(-1.0))}


def _missing_hparam(state, batch, key, hp):
    return state, {"loss": hp["weight_decay"]}


def _not_vmappable(state, batch, key, hp):
    """Traces for one member; an ordered host callback has no rule for the member axis."""
    from jax.experimental import io_callback

    bias = state.params["Dense_0"]["bias"][0]
    out = jax.ShapeDtypeStruct((), jnp.float32)
    return state, {"loss": io_callback(lambda v: np.float32(v), out, bias, ordered=True)}


def _not_a_pair(state, batch, key, hp):
    return state


@pytest.mark.parametrize(
    ("step", "error", "match"),
    [
        (_wrong_structure, ValueError, r"step _wrong_structure returned a state whose structure"),
        (_wrong_dtype, ValueError,
         r"_wrong_dtype returned state leaf \.params\['Dense_0'\]\['bias'\] with shape \(8,\) and dtype"
         r" float16; expected shape \(8,\) and dtype float32"),
        (_vector_metric, ValueError, r"step _vector_metric's metric 'loss' must be a scalar, got shape \(3,\)"),
        (_nan_metric, ValueError, r"_nan_metric returned non-finite metrics \['loss'\]"),
        (_missing_hparam, KeyError, r"step _missing_hparam reads hparams\['weight_decay'\].*\['learning_rate'\]"),
        (_not_vmappable, ValueError, r"step _not_vmappable cannot be traced under vmap over members: Cannot `vmap` ordered"),
        (_not_a_pair, TypeError, r"_not_a_pair must return \(state, metrics\)"),
    ],
)  # fmt: skip
def test_bad_steps_are_refused_before_training(step, error, match, monkeypatch):
    from jaxinit.study import population

    def no_training(*a, **k):
        raise AssertionError("compiled the training program")

    monkeypatch.setattr(population, "_step_program", no_training)
    with pytest.raises(error, match=match):
        jaxinit.train_population(_population(), step, SMALL, steps=10, batch_size=32,
                                 progress=False)  # fmt: skip


def test_bad_arguments_name_the_function():
    with pytest.raises(
        ValueError, match=r"make_population: hparams\['learning_rate'\] has repeated"
    ):
        _population(hparams={"learning_rate": [0.1, 0.1]})
    with pytest.raises(ValueError, match=r"make_population: inits\['x'\] does not fit"):
        jaxinit.make_population(MODEL, SMALL, {"x": "no_such_init"}, seeds=1)
    with pytest.raises(ValueError, match=r"train_population: steps=25 and eval_every=25 must be"):
        jaxinit.train_population(_population(), builtin_step, SMALL, steps=25, log_every=10)
    with pytest.raises(TypeError, match=r"train_population: callbacks must be a sequence"):
        jaxinit.train_population(_population(), builtin_step, SMALL, steps=10, callbacks=print)
    host = jaxinit.HostData("small", train=(SMALL.x_train, SMALL.y_train),
                            test=(SMALL.x_test, SMALL.y_test), num_classes=10)  # fmt: skip
    with pytest.raises(
        TypeError, match=r"train_population: dataset must be a jaxinit.Dataset.*HostData"
    ):
        jaxinit.train_population(_population(), builtin_step, host, steps=10)
    with pytest.raises(ValueError, match=r"MetricWriter: path='m.txt' must end in"):
        jaxinit.MetricWriter("m.txt")


def test_the_guide_page_example_runs():
    """docs/guide/own-step.md's example (its first python block) trains a population with
    clipping, warmup-cosine over a learning-rate grid, an EMA and label smoothing."""
    import pathlib
    import re

    page = pathlib.Path(__file__).parents[1] / "docs" / "guide" / "own-step.md"
    code = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)[0]
    namespace: dict = {}
    exec(compile(code, str(page), "exec"), namespace)
    result = namespace["result"]
    assert set(result.table.metric) == {"train_loss", "grad_norm", "test_ema_accuracy"}
    assert namespace["pop"].size == 16 and result.diverged.empty
    acc = result.metric("test_ema_accuracy")
    assert (acc[namespace["STEPS"]] > acc[0]).all()


def test_host_stepped_own_step_gives_the_scan_table_bit_for_bit():
    """``stepping="host"``: the same steps called from Python (5 calls of 2 unrolled steps
    per log interval, over two chunks), the same table bit for bit: interval means, last
    values, evaluations, hyperparameters per member."""
    kw = dict(evaluate=builtin_eval, last=("grad_norm", "param_norm"), progress=False, **TRAIN)
    _, scanned = jaxinit.train_population(_population(), builtin_step, SMALL, **kw)
    pop, hosted = jaxinit.train_population(_population(), builtin_step, SMALL,
                                           stepping="host", **kw)  # fmt: skip
    pd.testing.assert_frame_equal(hosted.table, scanned.table, check_exact=True)
    assert hosted.info["stepping"] == "host" and scanned.info["stepping"] == "scan"
    assert int(pop.state.step[0]) == 20


class _CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3))(x.reshape(x.shape[0], 8, 8, 1)))
        return nn.Dense(10)(x.mean(axis=(1, 2)))


def test_a_convolving_own_step_is_host_stepped_on_the_cpu():
    """On the CPU a step with a convolution runs from the host, a member per call (its
    loops would run 10-25x slower, jax#12868), with the scan's numbers up to the last bits."""
    cnn, tx = _CNN(), optax.sgd(0.05)

    def step(state, batch, key, hparams):
        def loss_fn(p):
            logits = cnn.apply({"params": p}, batch[0])
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state._replace(params=params, opt_state=opt_state), {"train_loss": loss}

    def population():
        return jaxinit.make_population(cnn, SMALL, INITS, seeds=2, optimizer=tx, key=1)

    kw = dict(steps=8, batch_size=16, log_every=4, progress=False)
    _, auto = jaxinit.train_population(population(), step, SMALL, **kw)
    _, scanned = jaxinit.train_population(population(), step, SMALL, stepping="scan", **kw)
    assert auto.info["stepping"] == "host" and "convolution" in auto.info["stepping_reason"]
    np.testing.assert_allclose(auto.table.value, scanned.table.value, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="train_population: stepping must be 'auto'"):
        jaxinit.train_population(population(), step, SMALL, stepping="loop", **kw)
