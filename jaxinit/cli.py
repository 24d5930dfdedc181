"""The ``jaxinit`` command line. Each subcommand is a function ``add_<name>(subparsers)``
that registers its parser and sets ``func``; the heavy imports happen inside ``func``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import jax

from jaxinit._argtypes import name_list as name_list
from jaxinit._argtypes import positive_float as positive_float
from jaxinit._argtypes import positive_int as positive_int


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


def _list(args: argparse.Namespace) -> int:
    from jaxinit.initializers._registry import schemes

    families = sorted({s.family for s in schemes()})
    if args.family is not None and args.family not in families:
        print(
            f"jaxinit list: error: --family {args.family!r} is not a family; allowed:"
            f" {', '.join(families)}",
            file=sys.stderr,
        )
        return 2
    rows = [("name", "distribution", "variance", "suits", "aliases")]
    for s in schemes():
        if args.family and s.family != args.family:
            continue
        rows.append(
            (
                s.name,
                s.distribution,
                s.variance,
                ", ".join(s.activations) or "-",
                ", ".join(s.aliases) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
        if i == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return 0


def add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="table of every scheme: formula and suggested activations")
    p.add_argument("--family", help="only this family (constant, random, variance_scaling, ...)")
    p.set_defaults(func=_list)


def add_compare(sub: argparse._SubParsersAction) -> None:
    from jaxinit.study._compare import add_compare as add

    add(sub)


def add_propagate(sub: argparse._SubParsersAction) -> None:
    from jaxinit.theory._diagnostics import add_propagate as add

    add(sub)


SUBCOMMANDS = [add_list, add_compare, add_propagate]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jaxinit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    use_cpu_cores()  # members train in parallel, one device per CPU core
    # Non-partitionable threefry compiles ~9x faster on the CPU (0.4 s instead of 3.9 s per
    # random program, measured here); the draws differ, their distribution does not.
    with jax.threefry_partitionable(False):
        return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
