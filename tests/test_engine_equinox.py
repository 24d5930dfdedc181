"""Stateful Equinox models in studies: ``eqx.nn.BatchNorm`` (an ``eqx.nn.State`` passed as
``Study(model=(model, state))``) whose running statistics are updated in training and used
in evaluation, and ``eqx.nn.Dropout`` with a fresh key per member, step and example, off in
evaluation (``eqx.nn.inference_mode``)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxinit
from jaxinit.study._adapters import _make_model
from tests.test_engine_models import SHIFTED, _study

KERNELS = "lin*/weight"  # not BatchNorm's (1-D) weight


class _Net(eqx.Module):
    """BatchNorm, Linear, ReLU, Dropout, Linear on the 16 blob features; plus one extra
    output column, the mean of a dropout mask applied to ones (1 without dropout)."""

    lin1: eqx.nn.Linear
    bn: eqx.nn.BatchNorm
    drop: eqx.nn.Dropout
    lin2: eqx.nn.Linear

    def __init__(self, key, mode="ema"):
        k1, k2 = jax.random.split(key)
        self.lin1 = eqx.nn.Linear(16, 32, key=k1)
        self.bn = eqx.nn.BatchNorm(16, "batch", momentum=0.5, mode=mode)
        self.drop = eqx.nn.Dropout(0.2)
        self.lin2 = eqx.nn.Linear(32, 10, key=k2)

    def __call__(self, x, state, *, key=None):
        h, state = self.bn(x, state)
        h = self.lin1(h)
        k1, k2 = (None, None) if key is None else jax.random.split(key)
        h = self.drop(jax.nn.relu(h), key=k1)
        kept = self.drop(jnp.ones(256), key=k2).mean(keepdims=True)
        return jnp.concatenate([self.lin2(h), kept]), state


def _loss(model, batch, key):
    x, y = batch
    out = model(x)
    logits = out[:, :10]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    accuracy = (jnp.argmax(logits, -1) == y).mean(dtype=jnp.float32)
    return loss, {"accuracy": accuracy, "kept": out[:, 10].mean()}


def test_batch_norm_and_dropout_train_in_a_study():
    model, state = eqx.nn.make_with_state(_Net)(jax.random.key(0))
    s = _study(model=(model, state), dataset=SHIFTED, loss_fn=_loss, kernel_pattern=KERNELS,
               inits={"he": "he_normal", "glorot": "glorot_uniform"}, steps=20, log_every=1,
               eval_every=10)  # fmt: skip
    r = jaxinit.run_study(s, progress=False)
    test = r.metric("test_loss")
    # the initial running statistics (zeros) are far from the shifted inputs' ...
    assert (test[0] > 20).all()
    # ... training updates them, evaluation uses them
    assert (test[20] < 1.0).all() and (r.metric("test_accuracy")[20] > 0.8).all()
    kept = r.metric("train_kept")  # rows (init, seed), columns steps 1..20
    assert kept.shape == (4, 20)
    assert (kept.nunique(axis=1) >= 18).all()  # a new mask every step (ties are rare)
    assert kept.loc["he"].iloc[0].ne(kept.loc["he"].iloc[1]).all()  # and for every seed
    np.testing.assert_array_equal(kept.loc["he"], kept.loc["glorot"])  # paired across inits
    assert ((kept > 0.8) & (kept < 1.2)).all().all()  # inverted dropout keeps the mean 1
    np.testing.assert_array_equal(r.metric("test_kept").to_numpy(), 1.0)  # off in eval
    # the same study again: the same numbers (keys come from the study's key only)
    again = jaxinit.run_study(s, progress=False)
    np.testing.assert_array_equal(again.table.value, r.table.value)


@pytest.mark.parametrize("mode", ["ema", "batch"])
def test_batch_norm_state_updates_in_training_and_serves_evaluation(mode):
    model, state = eqx.nn.make_with_state(_Net)(jax.random.key(0), mode=mode)
    m = _make_model((model, state), SHIFTED)
    params = m.init(jax.random.key(1))
    assert m.stochastic and m.axis_name == "batch"
    x = jnp.asarray(SHIFTED.x_train[:32])
    train = jax.jit(m.apply_train)
    out, new = train(params, m.init_state(jax.random.key(0)), x, jax.random.key(2))
    assert out.shape == (32, 11)
    # the batch's statistics enter the running ones
    mean, var = x.mean(0), x.var(0)
    if mode == "ema":  # the first step stores the batch statistics
        run_mean, run_var = new.get(model.bn.ema_state_index)
        assert not bool(new.get(model.bn.ema_first_time_index))
    else:  # zero-initialised hidden statistics moved by (1 - momentum)
        hidden_mean, hidden_var = new.get(model.bn.batch_state_index)
        run_mean, run_var = hidden_mean / 0.5, (hidden_var - 0.5) / 0.5
        assert int(new.get(model.bn.batch_counter)) == 1
    np.testing.assert_allclose(run_mean, mean, rtol=1e-4)
    np.testing.assert_allclose(run_var, var, rtol=1e-3)
    # evaluation normalises with the running statistics: deterministic, and each example's
    # output is the same alone as in a batch (batch statistics would differ)
    apply = jax.jit(m.apply)
    full = apply(params, x, new)
    np.testing.assert_array_equal(full, apply(params, x, new))
    np.testing.assert_allclose(apply(params, x[:1], new), full[:1], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(full[:, 10], 1.0)  # dropout off
    # training draws: one key per example (two examples' masks differ), fresh per key
    again, _ = train(params, m.init_state(jax.random.key(0)), x, jax.random.key(3))
    assert len(set(np.asarray(out[:, 10]).tolist())) > 1
    assert not np.array_equal(out[:, 10], again[:, 10])


def test_stateless_equinox_dropout_without_state():
    """A model without BatchNorm needs no state; ``key=`` still brings dropout keys."""

    class Drop(eqx.Module):
        lin: eqx.nn.Linear
        drop: eqx.nn.Dropout

        def __call__(self, x, *, key=None):
            return self.lin(self.drop(x, key=key))

    net = Drop(eqx.nn.Linear(16, 10, key=jax.random.key(0)), eqx.nn.Dropout(0.5))
    m = _make_model(net, SHIFTED)
    assert m.stochastic and m.eqx_state is None
    params, x = m.init(jax.random.key(0)), jnp.asarray(SHIFTED.x_train[:8])
    train, _ = m.apply_train(params, {}, x, jax.random.key(1))
    np.testing.assert_array_equal(m.apply(params, x), jax.vmap(net.lin)(x))  # dropout off
    assert not np.allclose(train, m.apply(params, x))


def test_equinox_bad_models_raise_before_compiling():
    model, _ = eqx.nn.make_with_state(_Net)(jax.random.key(0))
    with pytest.raises(TypeError, match=r"stateful layers.*model=\(model, state\)"):
        jaxinit.run_study(_study(model=_Net(jax.random.key(0)), dataset=SHIFTED), progress=False)
    with pytest.raises(TypeError, match=r"\(Equinox module, eqx.nn.State\).*\(_Net, dict\)"):
        jaxinit.run_study(_study(model=(model, {}), dataset=SHIFTED), progress=False)

    class TwoAxes(eqx.Module):
        a: eqx.nn.BatchNorm
        b: eqx.nn.BatchNorm

        def __call__(self, x, state):
            x, state = self.a(x, state)
            return self.b(x, state)

    two = eqx.nn.make_with_state(TwoAxes)(
        eqx.nn.BatchNorm(16, "batch", mode="batch"), eqx.nn.BatchNorm(16, "other", mode="batch")
    )
    with pytest.raises(ValueError, match="BatchNorm layers must share one axis_name"):
        _make_model(two, SHIFTED)
