"""The ``jaxinit`` command line: every subcommand's argument parsing. Each subcommand is a
function ``add_<name>(subparsers)`` that registers its parser and sets ``func``, which calls
the library's public functions; the heavy imports happen inside ``func``. The process-wide
settings the command chooses live in ``_settings.py``."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from jaxinit._table import paragraph, table
from jaxinit.cli._interrupt import EXIT_INTERRUPTED, Interrupt, sigint
from jaxinit.cli._settings import _compilation_cache, process_settings

DESCRIPTION = (
    "Weight initializers for JAX and Flax: list the schemes, compare them in multi-seed"
    " training studies, and measure how signals propagate through a deep network at"
    " initialization."
)
EPILOG = (
    "A mistake in the command is one line 'jaxinit: error: ...' with exit status 2, found"
    " before any computation; Ctrl-C ends a command with exit status 130. --debug (anywhere"
    " on the line) shows the traceback of an error."
)


class UsageError(Exception):
    """A mistake in the command line: one line ``jaxinit: error: ...``, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors raised as :class:`UsageError` (one line, no usage block)."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# Option types: bad values become argparse errors (one line, exit status 2).
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


def names_or_error(option: str, names: Sequence[str]) -> None:
    """Every name must be one the registry knows (its error lists close matches)."""
    from jaxinit.initializers import get

    for name in names:
        try:
            get(name)
        except ValueError as e:
            raise UsageError(f"{option} {name!r}: {str(e).removeprefix('jaxinit.get: ')}") from None


def activations_or_error(option: str, names: Sequence[str]) -> None:
    from jaxinit.study import ACTIVATIONS

    bad = [n for n in names if n not in ACTIVATIONS]
    if bad:
        raise UsageError(
            f"{option} {bad[0]!r} is not an activation; allowed: {', '.join(ACTIVATIONS)}"
        )


def extras_or_error(command: str, modules: Sequence[tuple[str, str]]) -> None:
    """Each (module, why) must import; else name the extra that installs it."""
    import importlib

    for module, why in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            package = {"sklearn": "scikit-learn"}.get(module, module)
            raise UsageError(
                f"{command} needs {package} ({why}): pip install 'jaxinit[experiments]'"
            ) from None


def writable_dir_or_error(option: str, path: str) -> None:
    """``path`` must be a directory that can be written, or one that can be made: checked
    by writing a probe file in it (or in the nearest existing folder above it)."""
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{option} {path!r} exists and is not a directory")
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise UsageError(f"{option} {path!r} cannot be made: {probe!r} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".jaxinit-write-test-")
        os.close(fd)
        os.remove(tmp)
    except OSError as e:
        raise UsageError(f"{option} {path!r} is not writable ({e.strerror or e})") from None


# --------------------------------------------------------------------------- list


def _list(args: argparse.Namespace, interrupt: Interrupt) -> int:
    from jaxinit.initializers import schemes

    families = sorted({s.family for s in schemes()})
    if args.family is not None and args.family not in families:
        raise UsageError(
            f"--family {args.family!r} is not a family; allowed: {', '.join(families)}"
        )
    rows = []
    for s in schemes():
        if args.family and s.family != args.family:
            continue
        rows.append((s.name, s.distribution, s.variance, ", ".join(s.activations) or "-",
                     ", ".join(s.aliases) or "-"))  # fmt: skip
    print(table(("name", "distribution", "variance", "suits", "aliases"), rows))
    return 0


def add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        help="table of every scheme: formula and suggested activations",
        description="Every registered initializer scheme: its distribution, variance,"
        " the activations it suits and its aliases (the table fits the terminal width, or"
        " $COLUMNS).",
    )
    p.add_argument("--family", help="only this family (constant, random, variance_scaling, ...)")
    p.set_defaults(func=_list)


# --------------------------------------------------------------------------- compare

# What --quick sets, unless the option is given explicitly. The target is one that good
# schemes reach within the quick budget (the main job's 0.1 is not reached in 100 steps).
QUICK = {"seeds": 2, "steps": 100, "depth": 3, "width": 32, "target": 0.5}
DATASET_NEEDS = {
    "digits": [("sklearn", "the digits data set")],
    "mnist1d": [("mnist1d", "the MNIST-1D data set")],
}


def compare_config(args: argparse.Namespace) -> Any:
    """The :class:`CompareConfig` of the command line, every option checked (names, numbers,
    the output folder, the extras it needs) before any computation."""
    from jaxinit.cli import compare

    d = compare.CompareConfig()
    sizes: dict[str, Any] = {
        k: getattr(args, k) if getattr(args, k) is not None else
        (QUICK[k] if args.quick else getattr(d, k))
        for k in QUICK
    }  # fmt: skip
    inits = args.inits if args.inits is not None else compare.CompareConfig.inits
    names_or_error("--inits", inits)
    activations_or_error("--activation", args.activation)
    if args.reference is not None and args.reference not in inits:
        raise UsageError(
            f"--reference {args.reference!r} is not one of the compared --inits"
            f" ({', '.join(inits)})"
        )
    lrs = _parse_lrs(args.lrs)
    out = args.out or d.out
    writable_dir_or_error("--out", out)
    extras_or_error(
        "jaxinit compare", [("matplotlib", "its figures"), *DATASET_NEEDS.get(args.dataset, [])]
    )
    return compare.CompareConfig(
        inits=inits, activations=args.activation, dataset=args.dataset,
        optimizer=args.optimizer, lr=args.lr, lrs=lrs, batch_size=args.batch_size,
        reference=args.reference, out=out, keep_checkpoints=args.keep_checkpoints, **sizes,
    )  # fmt: skip


def _compare(args: argparse.Namespace, interrupt: Interrupt | None = None) -> int:
    from jaxinit.cli import compare

    cfg = compare_config(args)
    if interrupt is None:
        interrupt = Interrupt()
    interrupt.message = (
        f"jaxinit compare: interrupted; no final outputs written to {cfg.out} (the same"
        " command resumes from the checkpoints saved so far)"
    )
    start = time.perf_counter()
    print(paragraph(f"jaxinit compare: {len(cfg.inits)} inits x {cfg.seeds} seeds, {cfg.depth} x"
                    f" {cfg.width} MLP ({', '.join(cfg.activations)}) on {cfg.dataset},"
                    f" {cfg.steps} steps; outputs to {cfg.out}"), file=sys.stderr, flush=True)  # fmt: skip
    with _compilation_cache(not args.no_compile_cache):
        summary = compare.run_compare(cfg, interrupt=interrupt)
    print(compare.format_summary(summary))
    kept = f"; checkpoints kept in {', '.join(cfg.activations)}/" if cfg.keep_checkpoints else ""
    print(paragraph(f"\nwrote {', '.join(compare.OUTPUTS)} to {cfg.out}{kept}"
                    f" ({time.perf_counter() - start:.0f} s)"))  # fmt: skip
    return 0


def _parse_lrs(text: str | None) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        rates = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise UsageError(
            f"--lrs must be comma-separated numbers, e.g. 0.003,0.01,0.03; got {text!r}"
        ) from None
    if not all(math.isfinite(r) and r > 0 for r in rates) or len(set(rates)) != len(rates):
        raise UsageError(f"--lrs must be distinct positive numbers, got {text!r}")
    return rates


def add_compare(sub: argparse._SubParsersAction) -> None:
    from jaxinit.cli.compare import CompareConfig

    d = CompareConfig()
    quick = ", ".join(f"{k} {v}" for k, v in QUICK.items())
    p = sub.add_parser(
        "compare",
        help="multi-seed convergence comparison of initializers",
        description="Train every initializer x seed on a deep ReLU and a deep tanh MLP (one"
        " compiled program per activation) and report steps to a target train loss, final"
        " metrics with 95% intervals over seeds, and verdicts against a reference named"
        " before the data. Writes results.csv, summary.json, loss_curves.png and"
        " profiles.png to --out; the per-activation checkpoints (<out>/<activation>/) are"
        " removed once the comparison completes unless --keep-checkpoints.",
    )
    p.add_argument("--inits", type=name_list,
                   help=f"comma-separated registry names (default: {','.join(d.inits)})")  # fmt: skip
    p.add_argument("--activation", type=name_list, default=d.activations,
                   help=f"comma-separated activations, one MLP each (default: {','.join(d.activations)})")  # fmt: skip
    p.add_argument("--depth", type=positive_int, help=f"hidden layers (default: {d.depth})")
    p.add_argument(
        "--width", type=positive_int, help=f"units per hidden layer (default: {d.width})"
    )
    p.add_argument("--dataset", default=d.dataset, choices=["digits", "mnist1d"],
                   help=f"classification data set (default: {d.dataset})")  # fmt: skip
    p.add_argument("--optimizer", default=d.optimizer, choices=["sgd", "adam"],
                   help=f"sgd (momentum 0.9) or adam (default: {d.optimizer})")  # fmt: skip
    p.add_argument("--lr", type=positive_float, default=d.lr,
                   help=f"learning rate (default: {d.lr}; ignored with --lrs)")  # fmt: skip
    p.add_argument(
        "--lrs",
        help="comma-separated learning rates, e.g. 0.003,0.01,0.03 (sgd) or 1e-4,3e-4,1e-3"
        " (adam): every init at every rate, each compared at its own best rate, chosen on"
        " a validation split of train (overrides --lr)",
    )
    p.add_argument("--seeds", type=positive_int, help=f"seeds per init (default: {d.seeds})")
    p.add_argument("--steps", type=positive_int, help=f"training steps (default: {d.steps})")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                   help=f"examples per step (default: {d.batch_size})")  # fmt: skip
    p.add_argument("--target", type=positive_float,
                   help=f"train loss to reach (default: {d.target}; {QUICK['target']} with --quick)")  # fmt: skip
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
        "--keep-checkpoints",
        action="store_true",
        help="keep <out>/<activation>/ (each study's checkpoint and its own results.csv)"
        " after the comparison completes (default: removed; an interrupted run keeps them,"
        " and the same command resumes from them)",
    )
    p.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not use JAX's persistent compilation cache (default: on, under"
        " $XDG_CACHE_HOME/jaxinit/jax, so a second run skips compilation)",
    )
    p.set_defaults(func=_compare)


# --------------------------------------------------------------------------- propagate

IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")


def plot_path(plot: str | None, activation: str) -> str:
    """The file ``propagate --plot`` writes: a path with an image suffix as given; an
    existing directory (or a path ending in a separator) gets ``propagate_<activation>.png``
    inside it; any other path gets ``.png`` appended. Its folder must be writable."""
    name = f"propagate_{activation}.png"
    if plot is None:
        path = name
    elif os.path.isdir(plot) or plot.endswith(("/", os.sep)):
        path = os.path.join(plot, name)
    elif plot.lower().endswith(IMAGE_SUFFIXES):
        path = plot
    else:
        path = plot + ".png"
    if os.path.isdir(path):
        raise UsageError(f"--plot {path!r} is a directory")
    writable_dir_or_error("--plot", os.path.dirname(os.path.abspath(path)))
    return path


def _propagate(args: argparse.Namespace, interrupt: Interrupt | None = None) -> int:
    names_or_error("--inits", args.inits)
    activations_or_error("--activation", (args.activation,))
    path = plot_path(getattr(args, "plot", None), args.activation)
    extras_or_error("jaxinit propagate", [("matplotlib", "its figure")])
    if interrupt is not None:
        interrupt.message = "jaxinit propagate: interrupted; nothing written"

    import pandas as pd

    from jaxinit.theory import (
        plot_variance_by_depth,
        predict_propagation,
        propagate,
        propagation_table,
    )

    frames, weight_variance = [], {}
    for i, name in enumerate(args.inits):  # one init at a time: the same numbers, and progress
        start = time.perf_counter()
        print(f"jaxinit propagate: [{i + 1}/{len(args.inits)}] {name} ...", end="",
              file=sys.stderr, flush=True)  # fmt: skip
        part = propagate(
            args.activation, [name], depth=args.depth, width=args.width, seeds=args.seeds,
            batch_size=args.batch_size,
        )  # fmt: skip
        print(f" {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        frames.append(part)
        weight_variance.update(part.attrs["weight_variance"])
    df = pd.concat(frames, ignore_index=True)
    df.attrs["weight_variance"] = weight_variance
    tab = propagation_table(df)
    columns = {
        "pre_activation.second_moment": "q",
        "activation.variance": "act var",
        "activation.saturated": "saturated",
        "activation.dead": "dead",
        "gradient.second_moment": "grad",
        "jacobian.sv_mean": "J sv mean",
    }
    for label, sw2 in weight_variance.items():
        t = tab.loc[label][[c for c in columns if c in tab.columns]].rename(columns=columns)
        theory = predict_propagation(args.activation, sw2, depth=args.depth)
        t.insert(1, "q (mean field)", theory.q)
        t.insert(len(t.columns) - ("J sv mean" in t.columns), "grad (mean field)", theory.gradient)
        print(paragraph(f"\n{label}: {args.activation} MLP, {args.depth} x {args.width},"
                        f" sigma_w^2 = {sw2:.3f}, {args.seeds} seeds (means)"))  # fmt: skip
        rows = [(str(i), *t.loc[i].tolist()) for i in t.index]
        print(table((str(t.index.name or "layer"), *map(str, t.columns)), rows))
    title = f"{args.activation} MLP, width {args.width}, {args.seeds} seeds (band: min-max)"
    _atomic_figure(lambda tmp: plot_variance_by_depth(df, tmp, title=title), path, interrupt)
    print(f"\nwrote {path}")
    return 0


def _atomic_figure(draw: Any, path: str, interrupt: Interrupt | None) -> None:
    """``draw(tmp)`` to a temporary file beside ``path``, then renamed to ``path``."""
    folder, base = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(base)
    tmp = os.path.join(folder, f".{stem}.partial{ext}")
    if interrupt is not None:

        def remove_tmp() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)

        interrupt.on_exit(remove_tmp)
    try:
        draw(tmp)
        with interrupt.deferred() if interrupt is not None else contextlib.nullcontext():
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def depth_at_least_2(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2, got {value}")
    return value


def add_propagate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "propagate",
        help="per-layer signal statistics at init, measured and mean-field, per initializer",
        description="Per-layer statistics of a deep MLP at initialization (second moment of"
        " the pre-activations, activation variance, saturated and dead units, gradient"
        " second moment, Jacobian singular values), measured over seeds and predicted by"
        " mean-field theory, one table per initializer, and a figure of them by depth.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--activation", default="tanh", help="activation of every hidden layer")
    p.add_argument("--inits", type=name_list, default="glorot_normal,he_normal,lecun_normal,orthogonal",
                   metavar="NAMES", help="comma-separated registry names")  # fmt: skip
    p.add_argument("--depth", type=depth_at_least_2, default=20, help="Dense layers (>= 2)")
    p.add_argument("--width", type=positive_int, default=256, help="units per layer")
    p.add_argument("--seeds", type=positive_int, default=8, help="initializations per scheme")
    p.add_argument("--batch-size", type=positive_int, default=256, help="standard-normal inputs")
    p.add_argument(
        "--plot",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="the figure: a file (png, pdf, svg, ...; other names get .png), or a directory"
        " to hold propagate_<activation>.png (default: propagate_<activation>.png here)",
    )
    p.set_defaults(func=_propagate)


SUBCOMMANDS = [add_list, add_compare, add_propagate]


def parser() -> argparse.ArgumentParser:
    """The ``jaxinit`` argument parser (errors raise :class:`UsageError`)."""
    p = _Parser(prog="jaxinit", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an error (may be given anywhere on the line)")  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True, metavar="{list,compare,propagate}")
    for add in SUBCOMMANDS:
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxinit`` command and return its exit status.

    Args:
      argv: the arguments after ``jaxinit``; default the process's own (then an
        interrupted command ends the process at once, with no interpreter teardown).

    Returns:
      0 on success; 2 for a mistake in the command, reported as one line
      ``jaxinit: error: ...`` on stderr before any computation (the traceback only with
      ``--debug``); 130 when interrupted with Ctrl-C.
    """
    command_line = argv is None
    words = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in words
    words = [w for w in words if w != "--debug"]
    if command_line:
        # what the handler falls back to once the command is over (its outputs complete):
        # a Ctrl-C while the process returns and the interpreter tears down is ignored, not
        # a traceback or a kill by the signal (Python resets its own handlers, not SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    with sigint() as interrupt:
        try:
            args = parser().parse_args(words)
            with process_settings():
                return args.func(args, interrupt)
        except UsageError as e:
            if debug:
                raise
            _error(str(e))
            return 2
        except BrokenPipeError:  # the reader went away (``jaxinit list | head``): not an error
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except KeyboardInterrupt:
            if command_line:
                interrupt.exit_now()
            print(f"\n{interrupt.message}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as e:
            if debug:
                raise
            if isinstance(e, ValueError):  # the library refused an input
                _error(str(e))
                return 2
            _error(f"{type(e).__name__}: {e} (rerun with --debug for the traceback)")
            return 1


def _error(message: str) -> None:
    print("jaxinit: error: " + " ".join(message.split()), file=sys.stderr)
