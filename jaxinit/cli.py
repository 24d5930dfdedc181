"""The ``jaxinit`` command line. Each subcommand is a function ``add_<name>(subparsers)``
that registers its parser and sets ``func``; the heavy imports happen inside ``func``."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence


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
    import jax

    from jaxinit.study._engine import use_cpu_cores

    use_cpu_cores()  # members train in parallel, one device per CPU core
    # Non-partitionable threefry compiles ~9x faster on the CPU (0.4 s instead of 3.9 s per
    # random program, measured here); the draws differ, their distribution does not.
    with jax.threefry_partitionable(False):
        return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
