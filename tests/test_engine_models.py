"""Stateful models and own training steps: linen BatchNorm statistics updated in training
and used in evaluation, dropout with a fresh key per member and step, nnx BatchNorm and
Dropout, the built-in ResNet, and a user loss_fn whose metrics land in the table."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxinit
from jaxinit.study._adapters import _make_model
from jaxinit.study._population import _member_init, _spec_key
from jaxinit.study._program import _chunk_program

DATA = jaxinit.digits()
SMALL = jaxinit.Dataset("small", DATA.x_train[:300], DATA.y_train[:300], DATA.x_test[:100],
                        DATA.y_test[:100], 10)  # fmt: skip


def _blobs(n_train=400, n_test=200, dim=16, shift=30.0):
    """Ten Gaussian classes with inputs far from the running statistics' initial (mean 0,
    var 1): evaluation with the initial statistics gives huge logits, evaluation with
    statistics updated in training is as good as training."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, dim)).astype(np.float32)
    y = rng.integers(0, 10, n_train + n_test).astype(np.int32)
    x = centres[y] + 0.5 * rng.normal(size=(len(y), dim)).astype(np.float32) + shift
    return jaxinit.Dataset("blobs", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 10)


SHIFTED = _blobs()


def _study(**kw):
    base = dict(
        model=jaxinit.MLP((8, 10)), dataset=SMALL, optimizer=optax.sgd(0.05, momentum=0.9),
        inits={"he": "he_normal"}, seeds=2, steps=20, batch_size=32, log_every=10,
    )  # fmt: skip
    base.update(kw)
    return jaxinit.Study(**base)


class _LinenBN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.BatchNorm(use_running_average=not train, momentum=0.5, use_scale=False,
                         use_bias=False)(x)  # fmt: skip
        return nn.Dense(10)(x)


class _NnxBN(nnx.Module):
    def __init__(self, rngs):
        self.bn = nnx.BatchNorm(16, momentum=0.5, use_scale=False, use_bias=False, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)
        self.lin = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        return self.lin(self.drop(self.bn(x)))


@pytest.mark.parametrize("model", [_LinenBN(), lambda rngs: _NnxBN(rngs)], ids=["linen", "nnx"])
def test_batch_norm_statistics_update_in_training_and_serve_evaluation(model):
    r = jaxinit.run_study(_study(model=model, dataset=SHIFTED, steps=20), progress=False)
    test, train = r.metric("test_loss"), r.metric("train_loss")
    assert (test[0] > 20).all()  # evaluation uses the (initial) running statistics ...
    assert (train[10] < 3).all()  # ... training normalises with batch statistics
    assert (test[20] < 1.5).all()  # and updates the running ones, which evaluation then uses


class _DropProbe(nn.Module):
    """Logits plus one extra column: the mean of a dropout mask applied to ones."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        kept = nn.Dropout(0.5, deterministic=not train)(jnp.ones((x.shape[0], 64)))
        return jnp.concatenate([nn.Dense(10)(x), kept.mean(-1, keepdims=True)], -1)


def _probe_loss(model, batch, key):
    x, y = batch
    out = model(x)
    loss = optax.softmax_cross_entropy_with_integer_labels(out[:, :10], y).mean()
    return loss, {"kept": out[:, 10].mean(), "u": jax.random.uniform(key)}


def test_dropout_and_loss_fn_keys_are_fresh_per_member_and_step():
    s = _study(model=_DropProbe(), loss_fn=_probe_loss, inits={"a": "he_normal", "b": "zeros"},
               steps=4, log_every=1, eval_every=4)  # fmt: skip
    r = jaxinit.run_study(s, progress=False)
    t = r.table
    assert {"train_kept", "test_kept", "train_u", "test_u", "train_loss", "test_loss"} <= set(
        t.metric
    )
    assert "train_accuracy" not in set(t.metric)  # the loss_fn defines the metrics
    kept = r.metric("train_kept")  # rows (init, seed), columns steps 1..4
    assert kept.shape == (4, 4)
    assert (kept.nunique(axis=1) == 4).all()  # a new mask every step
    assert kept.loc["a"].iloc[0].ne(kept.loc["a"].iloc[1]).all()  # and for every seed
    np.testing.assert_array_equal(kept.loc["a"], kept.loc["b"])  # paired across inits
    assert ((kept > 0.6) & (kept < 1.4)).all().all()  # inverted dropout keeps the mean 1
    np.testing.assert_array_equal(r.metric("test_kept").to_numpy(), 1.0)  # off in eval
    u = r.metric("train_u")
    assert ((u > 0) & (u < 1)).all().all() and (u.nunique(axis=1) == 4).all()


def test_resnet_blocks_and_batch_norm():
    net = jaxinit.ResNet(num_classes=10, channels=(4, 8))
    x = jnp.asarray(SMALL.x_train[:16])
    variables = jax.jit(net.init)(jax.random.key(0), x)
    params = variables["params"]
    assert {"stem_conv", "stage0_block0_conv0", "stage1_block0_proj", "Head"} <= set(params)
    assert params["stage1_block0_conv0"]["kernel"].shape == (3, 3, 4, 8)
    assert "bias" not in params["stem_conv"]  # BatchNorm follows every convolution
    train = jax.jit(lambda v, x: net.apply(v, x, train=True, mutable=["batch_stats"]))
    out, updates = train(variables, x)
    assert out.shape == (16, 10)
    stats = updates["batch_stats"]["stem_bn"]
    assert not np.allclose(stats["mean"], 0)  # training updates the running statistics
    # evaluation uses them: the same outputs for one example alone or in a batch
    evaluated = {**variables, **updates}
    apply = jax.jit(net.apply)
    np.testing.assert_allclose(apply(evaluated, x[:1]), apply(evaluated, x)[:1], rtol=1e-5,
                               atol=1e-5)  # fmt: skip
    with pytest.raises(ValueError, match="ResNet: flat inputs need a square number"):
        net.init(jax.random.key(0), jnp.zeros((1, 10)))


@pytest.mark.slow
def test_resnet_trains_in_a_study():
    model = jaxinit.ResNet(num_classes=10, channels=(4, 8))
    r = jaxinit.run_study(_study(model=model, seeds=1, steps=20), progress=False)
    test = r.metric("test_loss")
    assert (test[20] < test[0]).all() and np.isfinite(r.table.value).all()


@pytest.mark.parametrize(
    ("loss_fn", "extra", "error", "message"),
    [
        (lambda m, b, k: m(b[0]).mean(), {}, TypeError, r"must return \(loss, metrics\)"),
        (lambda m, b, k: (m(b[0]), {}), {}, ValueError, "loss must be a float scalar"),
        (lambda m, b, k: (m(b[0]).mean(), {"x": m(b[0])}), {}, ValueError, "'x' must be a scalar"),
        (lambda m, b, k: (m(b[0]).mean(), {"loss": 0.0}), {}, ValueError, "other than 'loss'"),
        (_probe_loss, {"loss": "mse"}, ValueError, "give loss='mse' or loss_fn, not both"),
        ("mse", {}, TypeError, "loss_fn must be callable"),
    ],
)
def test_bad_loss_fn_raises_before_compiling(loss_fn, extra, error, message):
    before = _chunk_program.cache_info().misses
    with pytest.raises(error, match=message):
        jaxinit.run_study(_study(loss_fn=loss_fn, **extra), progress=False)
    assert _chunk_program.cache_info().misses == before


def test_equinox_module():
    import equinox as eqx

    net = eqx.nn.MLP(64, 10, 16, 1, activation=jax.nn.relu, key=jax.random.key(0))
    s = _study(model=net, inits={"he": "he_normal", "glorot": jaxinit.glorot_uniform()},
               kernel_pattern="*weight")  # fmt: skip
    r = jaxinit.run_study(s, progress=False)
    test = r.metric("test_loss")
    assert (test[20] < test[0]).all() and test[0].nunique() == 4
    # Equinox weights are (out, in): reinit draws them with the torch layout's fan_in
    model = _make_model(net, SMALL)
    params = _member_init(model, _spec_key("he_normal"), "*weight")(jax.random.key(1))
    w = params.layers[0].weight
    assert w.shape == (16, 64) and float(w.std()) == pytest.approx((2 / 64) ** 0.5, rel=0.1)
    np.testing.assert_array_equal(params.layers[0].bias, net.layers[0].bias)  # kept
    # another instance (other values) is another model, not a cached one
    other = eqx.nn.MLP(64, 10, 16, 1, activation=jax.nn.relu, key=jax.random.key(1))
    assert _make_model(other, SMALL) != model


def test_nnx_instance_refused_with_the_fix():
    """An nnx.Module instance (not the function that builds one) is refused with the
    call to write instead, before anything is traced."""
    with pytest.raises(TypeError, match=r"nnx.Module instance \(Linear\).*lambda rngs"):
        jaxinit.run_study(_study(model=nnx.Linear(64, 10, rngs=nnx.Rngs(0))), progress=False)
