"""LSUV on real data (scikit-learn digits): deep MLPs and small CNNs in flax.linen and nnx."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit

TOL = 0.02


@pytest.fixture(scope="module")
def x():
    return jnp.asarray(jaxinit.digits().x_train[:256])


def _copy(tree):
    return jax.tree.map(np.array, tree)


def _same(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


class LinenMLP(nn.Module):
    """8 Dense layers; random (nonzero) biases so a single rescaling is not exact."""

    depth: int = 8

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth - 1):
            x = jax.nn.relu(nn.Dense(64, bias_init=nn.initializers.normal(0.5))(x))
        return nn.Dense(10)(x)


class LinenCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], 8, 8, 1)
        x = jax.nn.relu(nn.Conv(16, (3, 3))(x))
        x = jax.nn.relu(nn.Conv(32, (3, 3), strides=2)(x))
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


def _linen_variances(model, variables, x):
    _, state = model.apply(
        variables, x, capture_intermediates=lambda m, n: isinstance(m, nn.Dense | nn.Conv),
        mutable=["intermediates"],
    )  # fmt: skip
    return {k: float(jnp.var(v["__call__"][0])) for k, v in state["intermediates"].items()}


@pytest.mark.parametrize("model", [LinenMLP(), LinenCNN()], ids=["mlp8", "cnn"])
def test_linen_reaches_unit_variance(model, x):
    variables = jax.jit(model.init)(jax.random.key(0), x[:2])
    before = _copy(variables)
    new, report = jaxinit.lsuv(model, variables, x, jax.random.key(1))
    _same(variables, before)  # pure: the input is untouched
    assert jax.tree.map(jnp.shape, new) == jax.tree.map(jnp.shape, variables)
    cnn = ["Conv_0", "Conv_1", "Dense_0"]
    expected = [f"Dense_{i}" for i in range(8)] if isinstance(model, LinenMLP) else cnn
    assert [r.layer for r in report] == expected  # forward order
    assert all(r.converged and abs(r.variance - 1) < TOL for r in report)
    assert any(r.iterations > 1 for r in report) or isinstance(model, LinenCNN)
    # measured independently with the final parameters: every layer at once, so the
    # layers were processed in forward order (a later fix would undo an earlier one)
    for layer, v in _linen_variances(model, new, x).items():
        assert abs(v - 1) < TOL, (layer, v)
    # the start was orthonormal: a rescaled orthogonal matrix
    w = np.asarray(new["params"]["Dense_1"]["kernel"] if "Dense_1" in new["params"] else
                   new["params"]["Dense_0"]["kernel"], np.float64)  # fmt: skip
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram / gram[0, 0], np.eye(len(gram)), atol=1e-4)


def test_linen_params_dict_in_params_dict_out(x):
    model = LinenMLP(depth=3)
    params = jax.jit(model.init)(jax.random.key(0), x[:2])["params"]
    new, report = jaxinit.lsuv(model, params, x, jax.random.key(0))
    assert set(new) == {"Dense_0", "Dense_1", "Dense_2"} and len(report) == 3


class NnxMLP(nnx.Module):
    """Attributes named against the call order: LSUV must follow the calls, not names."""

    def __init__(self, rngs, depth=8):
        bias = nnx.initializers.normal(0.5)
        self.z_first = nnx.Linear(64, 64, bias_init=bias, rngs=rngs)
        self.hidden = nnx.List(
            [nnx.Linear(64, 64, bias_init=bias, rngs=rngs) for _ in range(depth - 2)]
        )
        self.a_last = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.z_first(x))
        for layer in self.hidden:
            x = jax.nn.relu(layer(x))
        return self.a_last(x)


class NnxCNN(nnx.Module):
    def __init__(self, rngs):
        self.c1 = nnx.Conv(1, 16, (3, 3), rngs=rngs)
        self.c2 = nnx.Conv(16, 32, (3, 3), strides=2, rngs=rngs)
        self.head = nnx.Linear(4 * 4 * 32, 10, rngs=rngs)

    def __call__(self, x):
        x = x.reshape(x.shape[0], 8, 8, 1)
        x = jax.nn.relu(self.c2(jax.nn.relu(self.c1(x))))
        return self.head(x.reshape(x.shape[0], -1))


def _nnx_variances(model, x):
    out = {}
    h = x
    if isinstance(model, NnxMLP):
        layers = [model.z_first, *model.hidden, model.a_last]
        for i, layer in enumerate(layers):
            y = layer(h)
            out[i] = float(jnp.var(y))
            h = jax.nn.relu(y)
    else:
        h = x.reshape(x.shape[0], 8, 8, 1)
        y1 = model.c1(h)
        y2 = model.c2(jax.nn.relu(y1))
        y3 = model.head(jax.nn.relu(y2).reshape(x.shape[0], -1))
        out = {"c1": float(jnp.var(y1)), "c2": float(jnp.var(y2)), "head": float(jnp.var(y3))}
    return out


@pytest.mark.parametrize("make", [NnxMLP, NnxCNN], ids=["mlp8", "cnn"])
def test_nnx_reaches_unit_variance(make, x):
    model = make(nnx.Rngs(0))
    before = _copy(nnx.state(model))
    new, report = jaxinit.lsuv(model, None, x, jax.random.key(1))
    _same(nnx.state(model), before)  # the input module is untouched
    assert isinstance(new, make) and new is not model
    if make is NnxMLP:
        assert [r.layer for r in report] == ["z_first", *[f"hidden/{i}" for i in range(6)],
                                             "a_last"]  # fmt: skip
    else:
        assert [r.layer for r in report] == ["c1", "c2", "head"]
    assert all(r.converged for r in report)
    for layer, v in _nnx_variances(new, x).items():
        assert abs(v - 1) < TOL, (layer, v)
    # State in, State out
    state = nnx.state(model, nnx.Param)
    new_state, _ = jaxinit.lsuv(model, state, x, jax.random.key(1))
    assert isinstance(new_state, nnx.State)
    _same(new_state, nnx.state(new, nnx.Param))


def test_report_says_when_tolerance_is_not_reached(x):
    model = LinenMLP(depth=2)
    v = jax.jit(model.init)(jax.random.key(0), x[:2])
    # one rescaling cannot be exact when the layer has a (random) bias
    _, report = jaxinit.lsuv(model, v, x, jax.random.key(0), tol=1e-4, max_iters=1)
    assert report[0].iterations == 1 and not report[0].converged
    assert abs(report[0].variance - 1) > 1e-4


class Dead(nn.Module):
    """The second layer only ever sees zeros: relu(-|h|) = 0."""

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(32)(x)
        return nn.Dense(10)(jax.nn.relu(-jnp.abs(h)))


class NoLayers(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.LayerNorm()(x) * self.param("w", nn.initializers.ones, (1, x.shape[-1]))


@pytest.mark.parametrize(
    ("model", "batch", "message"),
    [
        (LinenMLP(depth=2), lambda x: x[:0], "batch is empty"),
        (LinenMLP(depth=2), lambda x: x.at[3, 5].set(jnp.nan), "1 NaN or infinite values"),
        (NoLayers(), lambda x: x, "no layer to normalise.*LayerNorm"),
        (Dead(), lambda x: x, "layer 'Dense_1' has output variance 0"),
    ],
    ids=["empty", "nan", "no-layer", "zero-variance"],
)
def test_bad_input_raises_and_leaves_params(model, batch, message, x):
    v = jax.jit(model.init)(jax.random.key(0), x[:2])
    before = _copy(v)
    with pytest.raises(ValueError, match=message):
        jaxinit.lsuv(model, v, batch(x), jax.random.key(0))
    _same(v, before)


def test_nnx_zero_variance_and_bad_args(x):
    class Dead(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(64, 8, rngs=rngs)
            self.b = nnx.Linear(8, 4, rngs=rngs)

        def __call__(self, x):
            return self.b(jax.nn.relu(-jnp.abs(self.a(x))))

    with pytest.raises(ValueError, match="layer 'b' has output variance 0"):
        jaxinit.lsuv(Dead(nnx.Rngs(0)), None, x, jax.random.key(0))
    with pytest.raises(ValueError, match="tol must be a number in"):
        jaxinit.lsuv(Dead(nnx.Rngs(0)), None, x, jax.random.key(0), tol=0)
    with pytest.raises(ValueError, match="max_iters must be an int >= 1"):
        jaxinit.lsuv(Dead(nnx.Rngs(0)), None, x, jax.random.key(0), max_iters=0)
    with pytest.raises(TypeError, match=r"model must be a flax\.linen or flax\.nnx Module"):
        jaxinit.lsuv(lambda x: x, {}, x, jax.random.key(0))
