"""Shared plumbing of the experiments: command line, studies, statistics, verdicts, output.

Every experiment is ``python experiments/exp_<name>.py [--quick] [--out DIR]``: it prints the
published claim beside the measurement (mean and 95 % bootstrap CI over seeds), a verdict
computed from the data, and writes ``result.json`` and PNG figures to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxinit.study import TimeToTarget, bootstrap_ci, first_crossing, json_safe, time_to_target


def parse(doc: str, name: str, argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test (seconds)")
    p.add_argument("--out", default=os.path.join("runs", name), help="output directory")
    p.add_argument("--lr", type=float, help="override the configuration's learning rate")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    return args


def config(args: argparse.Namespace, full: Any, quick: Any) -> Any:
    """The run's configuration: ``quick`` or ``full``, with the command line's overrides."""
    cfg = quick if args.quick else full
    return cfg if args.lr is None else dataclasses.replace(cfg, lr=args.lr)


def entry(main: Callable[[Sequence[str] | None], int]) -> None:
    """Run ``main`` as a script under the CLI's process-wide settings (the one place the
    experiments set them): one JAX device per CPU core (members train in parallel), and
    non-partitionable threefry, which compiles ~9x faster on the CPU (the draws differ,
    their distribution does not)."""
    import jaxinit.cli

    with jaxinit.cli.process_settings():
        sys.exit(main(sys.argv[1:]))


# Line styles and markers cycled per scheme, so that curves lying on top of each other stay
# distinguishable; markers are staggered (markevery offset) for the same reason.
STYLES = (("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"), ((0, (5, 1, 1, 1)), "v"),
          ((0, (1, 1)), "P"), ((0, (3, 1, 1, 1, 1, 1)), "X"), ((0, (8, 2)), "*"))  # fmt: skip


def figure(ncols: int = 1, figsize: tuple[float, float] = (6, 4)):
    """A ``matplotlib.figure.Figure`` (no pyplot state) and its ``ncols`` axes (an array)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, np.atleast_1d(fig.subplots(1, ncols, squeeze=False)[0])


def seed_lines(ax, x, matrix, label: str, index: int, *, band: bool = False, color=None,
               center_values=None) -> None:  # fmt: skip
    """Per scheme, the spread over seeds: every seed (a row of ``matrix``, (seeds, len(x)))
    as a thin translucent line, the mean over seeds (or ``center_values``) bold with the
    scheme's line style and marker (``STYLES[index]``), and with ``band`` the min–max over
    seeds shaded. Non-finite values are not drawn. The artists carry the gids
    ``seed:<label>``, ``center:<label>``, ``band:<label>`` (the figure tests count them)."""
    x = np.asarray(x, np.float64)
    m = np.asarray(matrix, np.float64).reshape(-1, len(x))
    m = np.where(np.isfinite(m), m, np.nan)
    color = f"C{index % 10}" if color is None else color
    ls, marker = STYLES[index % len(STYLES)]
    for row in m:
        ax.plot(x, row, color=color, lw=0.7, alpha=0.35, gid=f"seed:{label}")
    with warnings.catch_warnings():  # a step where every seed diverged: NaN, drawn as a gap
        warnings.simplefilter("ignore", RuntimeWarning)
        if band and len(m) > 1:
            lo, hi = np.nanmin(m, axis=0), np.nanmax(m, axis=0)
            ax.fill_between(x, lo, hi, color=color, alpha=0.12, lw=0, gid=f"band:{label}")
        if center_values is None:
            center_values = np.nanmean(m, axis=0)
    every = max(1, len(x) // 8)
    ax.plot(x, center_values, color=color, lw=1.8, ls=ls, marker=marker, ms=4.5,
            markevery=(index % every, every), label=label, gid=f"center:{label}")  # fmt: skip


def times_panel(ax, depths, times: dict, medians: dict, budget: int) -> None:
    """Steps to a target vs depth, per scheme: each seed's time as a thin line, the
    Kaplan–Meier median bold (``times[name]``: (seeds, depths); ``medians[name]``: (depths,));
    a time never reached (inf) within ``budget`` steps is drawn on a dotted line above it."""
    top = 1.5 * budget
    for i, name in enumerate(times):
        t = np.asarray(times[name], np.float64)
        med = np.asarray(medians[name], np.float64)
        seed_lines(ax, depths, np.where(np.isfinite(t), t, top), name, i,
                   center_values=np.where(np.isfinite(med), med, top))  # fmt: skip
    ax.axhline(top, color="k", ls=":", lw=1, label=f"not reached in {budget} steps")


def seed_dots(ax, position: float, values, label: str, color=None) -> None:
    """Every seed's value as a dot at ``position`` (spread sideways so equal values show),
    one artist per seed with gid ``seed:<label>``."""
    v = np.asarray(values, np.float64)
    offsets = np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else np.zeros(1)
    for dx, y in zip(offsets, v, strict=True):
        ax.plot(position + dx, y, "o", ms=3.5, mfc="none", mec=color or "k", mew=0.9,
                gid=f"seed:{label}")  # fmt: skip


def legend_outside(ax, **kw) -> None:
    """The legend to the right of ``ax`` (outside every axes, given ``ax`` is the rightmost),
    with the handles of every axes of the figure, each label once."""
    handles: dict = {}
    for a in ax.figure.axes:
        for h, lab in zip(*a.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    ax.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.02, 1),
              borderaxespad=0, fontsize=kw.pop("fontsize", 7), **kw)  # fmt: skip


def save_figure(fig, path: str, dpi: int = 110) -> None:
    """Lay out and save ``fig`` (the legends outside the axes included) and record it in
    ``FIGURES`` for the figure tests."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    FIGURES.append((path, fig))


FIGURES: list = []  # (path, Figure) of every figure saved in this process (for the tests)


def final(table, metric: str) -> dict[str, np.ndarray]:
    """Per init, the last logged value of ``metric`` for every seed (seed order)."""
    t = table[table.metric == metric]
    t = t[t.step == t.step.max()].sort_values(["init", "seed"])
    return {init: g.value.to_numpy() for init, g in t.groupby("init", sort=False)}


def curves(table, metric: str = "train_loss") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per init, (steps, seeds × steps matrix); NaN/inf (diverged) become inf."""
    out = {}
    for init, g in table[table.metric == metric].groupby("init", sort=False):
        wide = g.pivot(index="seed", columns="step", values="value")
        out[init] = (wide.columns.to_numpy(), np.nan_to_num(wide.to_numpy(), nan=np.inf))
    return out


def times_to(table, target: float, metric: str = "train_loss") -> dict[str, np.ndarray]:
    """Per init, each seed's first logged step with ``metric`` ≤ target (inf: censored)."""
    return {k: first_crossing(s, m, target) for k, (s, m) in curves(table, metric).items()}


def diverged(result) -> dict[str, int]:
    d = result.diverged
    return {str(k): int(v) for k, v in d.groupby("init").size().items()} if len(d) else {}


def est(values) -> dict:
    e = bootstrap_ci(np.asarray(values, np.float64))  # an Interval: its .mean is its .value
    return {"mean": e.mean, "lo": e.lo, "hi": e.hi, "n": e.n}


def ttt(times) -> dict:
    return time_to_target(np.asarray(times, np.float64))._asdict()


def fmt(e: dict, scale: float = 1.0, digits: int = 3) -> str:
    if "mean" not in e and "value" in e:  # an Interval's dict: its point estimate is "value"
        e = {**e, "mean": e["value"]}
    if e.get("n", 1) == 0 or e["mean"] is None or not np.isfinite(e["mean"]):
        return "n/a"
    f = f"{{:.{digits}g}}"
    return (
        f"{f.format(e['mean'] * scale)} [{f.format(e['lo'] * scale)}, {f.format(e['hi'] * scale)}]"
    )


def fmt_t(t: dict) -> str:
    return str(TimeToTarget(**t))


def table_text(rows: list[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(agrees: bool | None) -> str:
    return {True: "AGREES", False: "DISAGREES", None: "INCONCLUSIVE"}[agrees]


def report(args, name: str, payload: dict, claims: list[dict], started: float) -> int:
    """Print the claims with their verdicts and write ``result.json``."""
    print(f"\n== {name}: published claims vs this measurement")
    for c in claims:
        print(f"- {c['claim']}\n    measured: {c['measured']}\n    -> {verdict(c['agrees'])}")
    payload = {
        "experiment": name,
        "mode": "quick" if args.quick else "full",
        "seconds": round(time.perf_counter() - started, 1),
        "claims": [dict(c, verdict=verdict(c["agrees"])) for c in claims],
        **payload,
    }
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(json_safe(payload), f, indent=2, allow_nan=False)
    print(f"\nwrote result.json and figures to {args.out} ({payload['seconds']:.0f} s)")
    return 0


def layer_stats(model, params, x, activation) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of every hidden layer's post-activations for inputs ``x``
    (one forward pass; Dense outputs captured by flax, the activation applied here)."""
    import jax.numpy as jnp

    from jaxinit.study import ACTIVATIONS

    _, state = model.apply({"params": params}, jnp.asarray(x), capture_intermediates=True)
    inter = state["intermediates"]
    act = ACTIVATIONS[activation]
    names = sorted((k for k in inter if k.startswith("Dense_")), key=lambda k: int(k[6:]))
    hs = [np.asarray(act(inter[k]["__call__"][0])) for k in names[:-1]]
    return np.array([h.mean() for h in hs]), np.array([h.var() for h in hs])


def sgd(lr: float, momentum: float | None = 0.9):
    import optax

    return optax.sgd(lr, momentum=momentum)
