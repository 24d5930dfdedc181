"""Strict JAX for every test: no implicit dtype or rank promotion, warnings are errors
(pyproject's filterwarnings). Library code must be correct under these rules."""

import os

# Several host devices so that sharding code is exercised on a CPU-only machine.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)
