"""The process-wide settings the ``jaxinit`` command chooses, here and nowhere else: one
JAX device per CPU core, non-partitionable threefry, the persistent compilation cache."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import jax


def use_cpu_cores(n: int | None = None) -> int:
    """Make each CPU core a JAX device, so that :func:`run_study` trains members in parallel.

    On one CPU device, XLA splits every operation of the population's program across the
    cores; a study's small matrix products scale poorly that way. With one device per core,
    each device trains its own share of the members on one core (2-core CPU,
    ``experiments/bench_multiseed.py``: workload A 1.8× and B 1.4× faster; the numbers of
    one device up to float rounding). GPUs and TPUs are unaffected.

    Sets ``jax_num_cpu_devices``, which only works before JAX's first computation, so call
    it right after ``import jax``. An explicit choice wins: with ``JAX_NUM_CPU_DEVICES`` or
    ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` set, nothing changes.

    Args:
      n: devices to create; default the cores this process may run on.

    Returns:
      The number of CPU devices JAX will have. Without ``n``, calling it after JAX has
      started is harmless (the count stays); with ``n``, that is an error.
    """
    fn = "use_cpu_cores"
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"{fn}: n must be a positive int, got {n!r}")
    forced = "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    if forced or "JAX_NUM_CPU_DEVICES" in os.environ:
        return len(jax.devices("cpu"))
    if n is None:
        n_cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        want = len(n_cores) if n_cores else os.cpu_count() or 1
    else:
        want = n
    try:
        jax.config.update("jax_num_cpu_devices", want)
    except RuntimeError as err:  # JAX has already started
        have = len(jax.devices("cpu"))
        if n is not None and have != n:
            raise RuntimeError(
                f"{fn}: JAX has already started with {have} CPU device(s); call"
                f" use_cpu_cores({n}) right after `import jax`, before any computation"
            ) from err
    return len(jax.devices("cpu"))


@contextlib.contextmanager
def process_settings() -> Iterator[None]:
    """The process-wide JAX settings under which the command line computes its numbers.

    Library calls never change jax's configuration; the ``jaxinit`` command (and the
    scripts in ``experiments/``) choose these, here and nowhere else: one JAX device per
    CPU core (:func:`use_cpu_cores`, so that a study trains its members in parallel; call
    this right after ``import jax``), and non-partitionable threefry for the block, which
    compiles ~9x faster on the CPU (0.4 s instead of 3.9 s per random program, measured
    here; the draws differ, their distribution does not). A script reproduces the CLI's
    numbers by running under it::

        with jaxinit.cli.process_settings():
            result = jaxinit.run_study(study)
    """
    use_cpu_cores()  # members train in parallel, one device per CPU core
    with jax.threefry_partitionable(False):
        yield


def compile_cache_dir() -> str:
    """Where ``jaxinit compare`` keeps JAX's persistent compilation cache."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxinit", "jax")


@contextlib.contextmanager
def _compilation_cache(enable: bool):
    """JAX's persistent compilation cache for the command's duration (the CLI may change
    jax's configuration; it is restored afterwards, for callers of ``main`` in-process)."""
    if not enable:
        yield
        return
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    before = {n: getattr(jax.config, n) for n in names}
    try:
        os.makedirs(compile_cache_dir(), exist_ok=True)
    except OSError:  # an unwritable home: run without the cache
        yield
        return
    _reset_compilation_cache()  # jax decides once per process whether a cache is used
    jax.config.update("jax_compilation_cache_dir", compile_cache_dir())
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    try:
        yield
    finally:
        for n, v in before.items():
            jax.config.update(n, v)
        _reset_compilation_cache()


def _reset_compilation_cache() -> None:
    try:
        from jax._src import compilation_cache
    except ImportError:  # pragma: no cover - a jax without it
        return
    reset = getattr(compilation_cache, "reset_cache", None)
    if reset is not None:
        reset()
