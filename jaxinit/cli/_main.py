"""The ``jaxinit`` command line: every subcommand's argument parsing, and the process-wide
settings the command chooses (one JAX device per CPU core, threefry mode, the persistent
compilation cache). Each subcommand is a function ``add_<name>(subparsers)`` that registers
its parser and sets ``func``, which calls the library's public functions; the heavy imports
happen inside ``func``."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import jax


# Option types: bad values become argparse errors (usage + message, exit status 2).
def positive_int(text: str) -> int:
    """An ``int >= 1`` (for sizes and counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite ``float > 0`` (learning rates, targets)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be finite and > 0, got {text}")
    return value


def name_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of distinct, non-empty names."""
    names = tuple(n.strip() for n in text.split(","))
    if not text.strip() or any(not n for n in names):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated names, got {text!r} (an empty name)"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{', '.join(repeated)} given more than once")
    return names


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


def _list(args: argparse.Namespace) -> int:
    from jaxinit.initializers import schemes

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


# --------------------------------------------------------------------------- compare

# What --quick sets, unless the option is given explicitly.
QUICK = {"seeds": 2, "steps": 100, "depth": 3, "width": 32}


def _compare(args: argparse.Namespace) -> int:
    from jaxinit.cli import compare as study

    d = study.CompareConfig()
    sizes: dict[str, Any] = {
        k: getattr(args, k) if getattr(args, k) is not None else
        (QUICK[k] if args.quick else getattr(d, k))
        for k in QUICK
    }  # fmt: skip
    cfg = study.CompareConfig(
        inits=args.inits if args.inits is not None else study.CompareConfig.inits,
        activations=args.activation, dataset=args.dataset, optimizer=args.optimizer,
        lr=args.lr, lrs=_parse_lrs(args.lrs), batch_size=args.batch_size, target=args.target,
        reference=args.reference,
        **sizes, **({"out": args.out} if args.out else {}),
    )  # fmt: skip
    start = time.perf_counter()
    try:
        with _compilation_cache(not args.no_compile_cache):
            summary = study.run_compare(cfg)
    except KeyboardInterrupt:
        print(f"\njaxinit compare: interrupted; no final outputs written to {cfg.out}",
              file=sys.stderr)  # fmt: skip
        return 130
    print(study.format_summary(summary))
    for act, s in summary.get("activations", {}).items():
        if "learning_rates" in s:
            rates = ", ".join(f"{k} {v:g}" for k, v in s["learning_rates"].items())
            print(f"\n{act}: learning rate of each init, chosen on validation: {rates}")
    print(f"\nwrote results.csv, summary.json, loss_curves.png, profiles.png to {cfg.out}"
          f" ({time.perf_counter() - start:.0f} s)")  # fmt: skip
    return 0


def _parse_lrs(text: str | None) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        rates = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise ValueError(
            f"jaxinit compare: --lrs must be comma-separated numbers, e.g. 0.003,0.01,0.03;"
            f" got {text!r}"
        ) from None
    return rates


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


def add_compare(sub: argparse._SubParsersAction) -> None:
    from jaxinit.cli.compare import CompareConfig

    d = CompareConfig()
    quick = ", ".join(f"{k} {v}" for k, v in QUICK.items())
    p = sub.add_parser("compare", help="multi-seed convergence comparison of initializers")
    p.add_argument("--inits", type=name_list,
                   help=f"comma-separated registry names (default: {','.join(d.inits)})")  # fmt: skip
    p.add_argument("--activation", type=name_list, default=d.activations,
                   help=f"comma-separated (default: {','.join(d.activations)})")  # fmt: skip
    p.add_argument("--depth", type=positive_int, help=f"hidden layers (default: {d.depth})")
    p.add_argument("--width", type=positive_int, help=f"default: {d.width}")
    p.add_argument("--dataset", default=d.dataset, choices=["digits", "mnist1d"])
    p.add_argument("--optimizer", default=d.optimizer, choices=["sgd", "adam"])
    p.add_argument("--lr", type=positive_float, default=d.lr)
    p.add_argument(
        "--lrs",
        help="comma-separated learning rates, e.g. 0.003,0.01,0.03 (sgd) or 1e-4,3e-4,1e-3"
        " (adam): every init at every rate, each compared at its own best rate, chosen on"
        " a validation split of train (overrides --lr)",
    )
    p.add_argument("--seeds", type=positive_int, help=f"default: {d.seeds}")
    p.add_argument("--steps", type=positive_int, help=f"default: {d.steps}")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--target", type=positive_float, default=d.target, help="train loss to reach")
    p.add_argument(
        "--reference",
        metavar="NAME",
        help="the init every other is tested against, named before the data (one of --inits;"
        " default: the first the registry recommends for each activation, e.g. He for relu)",
    )
    p.add_argument("--out", help="output directory (default: runs/compare-<time>)")
    p.add_argument("--quick", action="store_true",
                   help=f"tiny sizes for a smoke test ({quick}); explicit options win")  # fmt: skip
    p.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not use JAX's persistent compilation cache (default: on, under"
        " $XDG_CACHE_HOME/jaxinit/jax, so a second run skips compilation)",
    )
    p.set_defaults(func=_compare)


# --------------------------------------------------------------------------- propagate


def _propagate(args: argparse.Namespace) -> int:
    from jaxinit.theory import (
        plot_variance_by_depth,
        predict_propagation,
        propagate,
        propagation_table,
    )

    df = propagate(
        args.activation, args.inits.split(","), depth=args.depth, width=args.width,
        seeds=args.seeds, batch_size=args.batch_size,
    )  # fmt: skip
    table = propagation_table(df)
    columns = {
        "pre_activation.second_moment": "q",
        "activation.variance": "act var",
        "activation.saturated": "saturated",
        "activation.dead": "dead",
        "gradient.second_moment": "grad",
        "jacobian.sv_mean": "J sv mean",
    }
    for label, sw2 in df.attrs["weight_variance"].items():
        t = table.loc[label][[c for c in columns if c in table.columns]].rename(columns=columns)
        theory = predict_propagation(args.activation, sw2, depth=args.depth)
        t.insert(1, "q (mean field)", theory.q)
        t.insert(len(t.columns) - ("J sv mean" in t.columns), "grad (mean field)", theory.gradient)
        print(f"\n{label}: {args.activation} MLP, {args.depth} x {args.width}, "
              f"sigma_w^2 = {sw2:.3f}, {args.seeds} seeds (means)")  # fmt: skip
        print(t.to_string(float_format=lambda v: f"{v:.3g}"))
    path = args.plot or f"propagate_{args.activation}.png"
    title = f"{args.activation} MLP, width {args.width}, {args.seeds} seeds (band: min-max)"
    plot_variance_by_depth(df, path, title=title)
    print(f"\nwrote {path}")
    return 0


def add_propagate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "propagate",
        help="per-layer signal statistics at init, measured and mean-field, per initializer",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--activation", default="tanh", help="activation of every hidden layer")
    p.add_argument("--inits", default="glorot_normal,he_normal,lecun_normal,orthogonal",
                   help="comma-separated registry names")  # fmt: skip
    p.add_argument("--depth", type=positive_int, default=20, help="Dense layers")
    p.add_argument("--width", type=positive_int, default=256, help="units per layer")
    p.add_argument("--seeds", type=positive_int, default=8, help="initializations per scheme")
    p.add_argument("--batch-size", type=positive_int, default=256, help="standard-normal inputs")
    p.add_argument("--plot", help="figure path (default: propagate_<activation>.png)")
    p.set_defaults(func=_propagate)


SUBCOMMANDS = [add_list, add_compare, add_propagate]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jaxinit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    with process_settings():
        return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
