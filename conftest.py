"""Settings for every test in this repository: the suite in tests/ and the docstring examples
in jaxinit/ (``--doctest-modules``, see pyproject.toml).

Strict JAX: no implicit dtype or rank promotion, warnings are errors (pyproject's
filterwarnings). Library code, and every example in its docstrings, must be correct under
these rules. The doctests see ``jax``, ``jnp``, ``np`` and ``jaxinit`` already imported (the
reference says so); any other name an example uses it imports itself.
"""

import os
import tempfile

# Several host devices so that sharding code is exercised on a CPU-only machine, and XLA's
# backend optimisation off: compiling a threefry draw drops from ~3 s to ~0.3 s, which is what
# a test suite of many small programs spends its time on. Results are compared under the
# same flags, so parity tests are unaffected; benchmarks run with the defaults.
os.environ["XLA_FLAGS"] = " ".join(
    [
        os.environ.get("XLA_FLAGS", ""),
        "--xla_force_host_platform_device_count=4",
        "--xla_backend_optimization_level=0",
    ]
).strip()

# JAX's persistent compilation cache, for every program however fast it compiles: the suite
# compiles the same small programs many times (a study per test, each under a fresh model
# object; the multi-process and notebook runs in subprocesses, which inherit these
# variables), and an identical program compiled once is read back from disk. Keys are the
# program, jax's version and the XLA flags, so a hit is the very executable a compile gives.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), "jaxinit-tests-compilation-cache"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    """The imports every docstring example assumes."""
    import jax.numpy as jnp
    import numpy as np

    import jaxinit

    doctest_namespace.update(jax=jax, jnp=jnp, np=np, jaxinit=jaxinit)
