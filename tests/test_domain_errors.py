"""Arguments outside a function's domain are refused by name (issue 29, item 9): data set
builders, fans, the fast wrapper, result tables, μP's readout multiplier."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxinit

KEY = jax.random.key(0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: jaxinit.linear_teacher(in_dim=0), r"linear_teacher: in_dim must be >= 1, got 0"),
        (lambda: jaxinit.linear_teacher(out_dim=-2), r"linear_teacher: out_dim must be >= 1"),
        (lambda: jaxinit.linear_teacher(n_test=0), r"linear_teacher: n_test must be >= 1"),
        (lambda: jaxinit.linear_teacher(in_dim=2.5), r"linear_teacher: in_dim must be an int"),
        (lambda: jaxinit.linear_teacher(seed=-1), r"linear_teacher: seed must be >= 0"),
        (lambda: jaxinit.shapeset(10, 5, size=0), r"shapeset: size must be >= 8, got 0"),
        (lambda: jaxinit.shapeset(10, 5, size=4.0), r"shapeset: size must be an int"),
        (lambda: jaxinit.shapeset(10, 5, seed=-3), r"shapeset: seed must be >= 0, got -3"),
        (lambda: jaxinit.shapeset(0, 5), r"shapeset: n_train must be >= 1"),
        (lambda: jaxinit.digits(seed=-1), r"digits: seed must be >= 0, got -1"),
        (lambda: jaxinit.digits(seed="a"), r"digits: seed must be an int"),
        (lambda: jaxinit.digits(test_fraction=1.0), r"digits: test_fraction must be in \(0, 1\)"),
        (
            lambda: jaxinit.digits(test_fraction=float("nan")),
            r"digits: test_fraction must be a finite",
        ),
    ],
)
def test_data_set_builders_refuse_arguments_by_name(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_data_set_builders_accept_numpy_ints():
    d = jaxinit.linear_teacher(np.int64(3), 2, n_train=4, n_test=2, seed=np.int32(1))
    assert d.x_train.shape == (4, 3) and d.y_test.shape == (2, 2)
    s = jaxinit.shapeset(6, 3, seed=np.int64(0), size=8)
    assert s.x_train.shape == (6, 64)


@pytest.mark.parametrize(
    ("kernel_shape", "match"),
    [
        ((3.5, 2), "torch_default_bias: shape must be a sequence of ints"),
        ((0, 2), "torch_default_bias: shape .* has a zero dimension"),
        ((-1, 2), "torch_default_bias: shape .* has a negative dimension"),
        ("ab", "torch_default_bias: shape must be a sequence of ints"),
    ],
)
def test_fans_must_be_positive_integers(kernel_shape, match):
    with pytest.raises((ValueError, TypeError), match=match):
        jaxinit.torch_default_bias(kernel_shape=kernel_shape)


def test_fans_from_a_kernel_shape():
    bias = jaxinit.torch_default_bias(kernel_shape=(np.int64(16), 4))
    assert float(jnp.abs(bias(KEY, (4,))).max()) <= 0.25
    with pytest.raises(ValueError, match="torch_default_bias: fan_in must be a positive int"):
        jaxinit.torch_default_bias(fan_in=0)
    with pytest.raises(TypeError, match="torch_default_bias: fan_in must be an int"):
        jaxinit.torch_default_bias(fan_in=3.5)


def test_fast_refuses_an_initializer_that_returns_no_array():
    def returns_none(key, shape, dtype=jnp.float32):
        return None

    with pytest.raises(
        TypeError, match="fast: the wrapped initializer returns_none returned NoneType"
    ):
        jaxinit.fast(returns_none)(KEY, (2, 3))
    assert jaxinit.fast(jaxinit.he_normal())(KEY, (2, 3)).shape == (2, 3)


def test_study_result_metric_names_the_available_metrics():
    table = pd.DataFrame(
        {"init": ["he"] * 2, "seed": [0, 0], "step": [0, 1], "metric": ["train_loss"] * 2,
         "value": [1.0, 0.5]}
    )  # fmt: skip
    result = jaxinit.StudyResult(table, pd.DataFrame(columns=["init", "seed", "step"]))
    assert result.metric("train_loss").shape == (1, 2)
    with pytest.raises(
        ValueError, match=r"StudyResult.metric: no 'bogus' rows; the metrics are \['train_loss'\]"
    ):
        result.metric("bogus")
