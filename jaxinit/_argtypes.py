"""The command-line option types every subcommand shares (stdlib only, so the
subcommands' parsers in ``jaxinit.study`` and ``jaxinit.theory`` need not import the CLI
module above them)."""

from __future__ import annotations

import argparse
import math


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
