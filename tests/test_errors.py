"""Bad input: every error is the intended type, raised at the earliest moment, and names
the initializer, the argument and the offending value, shape or axis."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxinit

KEY = jax.random.key(0)
VS_NAMES = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
            "lecun_normal", "torch_default_kernel", "glorot_bengio_standard"]  # fmt: skip


def test_unknown_mode_and_distribution_at_factory_time():
    with pytest.raises(ValueError, match=r"variance_scaling: mode='fan_mean'.*'fan_in'"):
        jaxinit.variance_scaling(1.0, "fan_mean", "normal")
    with pytest.raises(ValueError, match=r"distribution='gauss'.*'truncated_normal'"):
        jaxinit.variance_scaling(1.0, "fan_in", "gauss")
    with pytest.raises(ValueError, match=r"layout='keras'.*'flax', 'torch'"):
        jaxinit.he_normal(layout="keras")
    with pytest.raises(ValueError, match=r"calculate_gain: nonlinearity='swish'"):
        jaxinit.calculate_gain("swish")
    with pytest.raises(ValueError, match=r"torch_kaiming_normal: mode='fan_avg'"):
        jaxinit.torch_kaiming_normal(mode="fan_avg")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(
        ValueError, match=r"unknown initializer 'he_unifrom'; did you mean 'he_uniform'"
    ):
        jaxinit.get("he_unifrom")
    with pytest.raises(ValueError, match=r"unknown initializer 'blorp'"):
        jaxinit.get("blorp")
    with pytest.raises(TypeError, match="bad options"):
        jaxinit.get("he_normal", stddev=3)


@given(scale=st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf)))
@settings(max_examples=30, deadline=None)
def test_bad_scale(scale):
    with pytest.raises(ValueError, match=r"variance_scaling: scale must be finite and > 0"):
        jaxinit.variance_scaling(scale, "fan_in", "normal")


@given(stddev=st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(-math.inf)))
@settings(max_examples=20, deadline=None)
def test_bad_stddev(stddev):
    for factory, name in [
        (jaxinit.normal, "normal"),
        (jaxinit.truncated_normal, "truncated_normal"),
    ]:
        with pytest.raises(ValueError, match=rf"{name}: stddev must be finite and > 0"):
            factory(stddev)


@given(lo=st.floats(-10, 10), width=st.floats(-10, 0))
@settings(max_examples=20, deadline=None)
def test_empty_intervals(lo, width):
    with pytest.raises(ValueError, match=r"random_uniform: minval=.* must be smaller than maxval="):
        jaxinit.random_uniform(lo, lo + width)
    with pytest.raises(ValueError, match=r"torch_trunc_normal: a=.* must be smaller than b="):
        jaxinit.torch_trunc_normal(a=lo, b=lo + width)


@pytest.mark.parametrize("name", VS_NAMES)
@given(rank=st.integers(0, 1))
@settings(max_examples=4, deadline=None)
def test_rank_too_small(name, rank):
    shape = (5,) * rank
    with pytest.raises(
        ValueError,
        match=rf"{name}: shape {re_shape(shape)} has rank {rank}; in_axis=-2 needs rank >= 2",
    ):
        jaxinit.get(name)(KEY, shape)


def re_shape(shape):
    return str(shape).replace("(", r"\(").replace(")", r"\)")


@given(shape=st.lists(st.integers(0, 4), min_size=2, max_size=4).filter(lambda s: 0 in s))
@settings(max_examples=20, deadline=None)
def test_zero_fan(shape):
    with pytest.raises(
        ValueError, match=r"he_uniform: shape .* has a zero dimension.*fans must be positive"
    ):
        jaxinit.he_uniform()(KEY, tuple(shape))


@given(axis=st.integers(-10, 10).filter(lambda a: not -3 <= a < 3))
@settings(max_examples=20, deadline=None)
def test_axis_out_of_range(axis):
    with pytest.raises(
        ValueError, match=rf"he_normal: shape \(2, 3, 4\) has rank 3; in_axis={axis}"
    ):
        jaxinit.he_normal(in_axis=axis)(KEY, (2, 3, 4))


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        # overlapping and repeated axes are accepted, as jax does (tests/test_protocol.py)
        ({"in_axis": 0.5, "out_axis": 1}, "in_axis must be an int or a sequence of ints"),
    ],
)
def test_overlapping_axes(axes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        jaxinit.variance_scaling(1.0, "fan_in", "uniform", **axes)(KEY, (2, 3, 4))


def test_axis_type_checked_at_factory_time():
    with pytest.raises(
        TypeError, match=r"he_normal: in_axis must be an int or a sequence of ints, got 0.5"
    ):
        jaxinit.he_normal(in_axis=0.5)
    with pytest.raises(TypeError, match=r"variance_scaling: batch_axis must be an int"):
        jaxinit.variance_scaling(1.0, "fan_in", "normal", batch_axis="0")


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.int8, jnp.uint32, jnp.bool_])
@pytest.mark.parametrize(
    "name", ["he_normal", "normal", "uniform", "random_uniform", "torch_trunc_normal"]
)
def test_integer_and_bool_dtypes_rejected(name, dtype):
    with pytest.raises(TypeError, match=rf"{name}: dtype={jnp.dtype(dtype)} is not supported"):
        jaxinit.get(name)(KEY, (4, 4), dtype)


def test_complex_rejected_where_unsupported():
    with pytest.raises(TypeError, match=r"uniform: dtype=complex64 is not supported"):
        jaxinit.uniform()(KEY, (4, 4), jnp.complex64)


@pytest.mark.parametrize(
    "bad_key",
    [0, 1.5, np.zeros(2, np.float32), np.zeros((2, 2), np.uint32), "key", None],
    ids=["int", "float", "float-array", "uint32-matrix", "str", "none"],
)
def test_not_a_key(bad_key):
    with pytest.raises(TypeError, match=r"he_normal: key must be a PRNG key"):
        jaxinit.he_normal()(bad_key, (4, 4))


def test_batch_of_typed_keys_rejected():
    with pytest.raises(ValueError, match=r"normal: key must be a single PRNG key.*shape \(3,\)"):
        jaxinit.normal()(jax.random.split(KEY, 3), (4, 4))


def test_bad_shape():
    with pytest.raises(TypeError, match="he_normal: shape must be a sequence of ints"):
        jaxinit.he_normal()(KEY, (4.0, 2))
    with pytest.raises(ValueError, match=r"normal: shape .* has a negative dimension"):
        jaxinit.normal()(KEY, (4, -1))


def test_torch_default_bias_needs_fan_in():
    with pytest.raises(
        ValueError, match="torch_default_bias: give exactly one of fan_in or kernel_shape"
    ):
        jaxinit.torch_default_bias()
    with pytest.raises(ValueError, match="torch_default_bias: fan_in must be a positive int"):
        jaxinit.torch_default_bias(fan_in=0)
    with pytest.raises(ValueError, match="calculate_gain: param"):
        jaxinit.calculate_gain("leaky_relu", "0.1")


def test_constant_checks():
    with pytest.raises(ValueError, match="constant: value must be a finite number"):
        jaxinit.constant(math.nan)
    with pytest.raises(
        ValueError, match=r"constant: value of shape \(3,\) does not broadcast to shape \(2, 4\)"
    ):
        jaxinit.constant(np.ones(3))(KEY, (2, 4))


def test_errors_fire_under_jit_at_trace_time():
    # Shapes are static: the error comes from tracing, never as NaN output.
    with pytest.raises(ValueError, match="he_normal: shape"):
        jax.jit(lambda k: jaxinit.he_normal()(k, (5,)))(KEY)
