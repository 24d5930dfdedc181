"""The ``jaxinit`` command line: every subcommand's argument parsing. Each subcommand is a
function ``add_<name>(subparsers)`` that registers its parser and sets ``func``, which calls
the library's public functions; the heavy imports happen inside ``func``. The process-wide
settings the command chooses live in ``_settings.py``."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

from jaxinit.cli._settings import _compilation_cache, process_settings


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
