"""``jaxinit compare``: a multi-seed convergence comparison of initializers (the main job).

Trains every initializer × seed on a deep ReLU MLP and a deep tanh MLP in one compiled
program per activation, then reports per initializer: steps to reach a target train loss
(Kaplan–Meier median over seeds, censored members counted as not reaching it), final train
and test loss and accuracy (mean and 95 % bootstrap CI over seeds), and a verdict against
the best scheme (paired bootstrap CI of the difference in final test loss).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from jaxinit import _stats

SEED_DOC_INITS = (
    "zeros", "random_normal", "random_uniform", "glorot_uniform", "glorot_normal",
    "he_uniform", "he_normal", "lecun_normal",
)  # fmt: skip


@dataclass(frozen=True)
class CompareConfig:
    """Options of ``jaxinit compare`` (the defaults are the main job)."""

    inits: tuple[str, ...] = SEED_DOC_INITS
    activations: tuple[str, ...] = ("relu", "tanh")
    depth: int = 8  # hidden layers
    width: int = 64
    dataset: str = "digits"
    optimizer: str = "sgd"  # SGD with momentum 0.9, or "adam"
    lr: float = 0.01
    seeds: int = 8
    steps: int = 1500
    batch_size: int = 64
    target: float = 0.1  # train loss
    out: str = field(
        default_factory=lambda: os.path.join("runs", time.strftime("compare-%Y%m%d-%H%M%S"))
    )


def _optimizer(name: str, lr: float):
    import optax

    if name == "sgd":
        return optax.sgd(lr, momentum=0.9)
    if name == "adam":
        return optax.adam(lr)
    raise ValueError(f"jaxinit compare: --optimizer={name!r}; allowed: 'sgd', 'adam'")


def run_compare(cfg: CompareConfig, progress: bool | None = None) -> dict:
    """Run the comparison, write ``results.csv``, ``summary.json`` and ``loss_curves.png``
    to ``cfg.out``, and return the summary."""
    import pandas as pd

    from jaxinit._datasets import load_dataset
    from jaxinit._engine import Study, run_study
    from jaxinit._models import MLP
    from jaxinit._registry import scheme

    for name in cfg.inits:
        scheme(name)  # unknown names fail before any work, with close matches
    data = load_dataset(cfg.dataset)
    if not data.is_classification:
        raise ValueError(f"jaxinit compare: dataset {cfg.dataset!r} is not a classification task")
    os.makedirs(cfg.out, exist_ok=True)
    tables, summary = [], {"config": asdict(cfg), "activations": {}}
    log_every = max(10, cfg.steps // 100 // 10 * 10)
    for act in cfg.activations:
        study = Study(
            model=MLP((cfg.width,) * cfg.depth + (data.num_classes,), act),
            dataset=data, optimizer=_optimizer(cfg.optimizer, cfg.lr),
            inits={n: n for n in cfg.inits}, seeds=cfg.seeds, steps=cfg.steps,
            batch_size=cfg.batch_size, log_every=log_every,
            eval_every=cfg.steps // 2 // log_every * log_every or cfg.steps,
        )  # fmt: skip
        result = run_study(study, key=0, out_dir=os.path.join(cfg.out, act), progress=progress)
        table = result.table.assign(activation=act)
        tables.append(table)
        summary["activations"][act] = summarize(table, cfg.target)
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(os.path.join(cfg.out, "results.csv"), index=False)
    with open(os.path.join(cfg.out, "summary.json"), "w") as f:
        json.dump(_finite(summary), f, indent=2, allow_nan=False)
    plot_curves(table, cfg.target, os.path.join(cfg.out, "loss_curves.png"))
    return summary


def _finite(x):
    """JSON has no inf/NaN: write them as null (e.g. a target never reached)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if np.isfinite(x) else None
    return x.item() if isinstance(x, np.generic) else x


def summarize(table, target: float) -> dict:
    """Per initializer: time to target, final metrics with CIs, and a verdict vs the best."""
    rows = {}
    final_test = {}
    for init, t in table.groupby("init", sort=False):
        train = t[t.metric == "train_loss"].pivot(index="seed", columns="step", values="value")
        steps = train.columns.to_numpy()
        crossing = _stats.first_crossing(steps, np.nan_to_num(train.to_numpy(), nan=np.inf), target)
        last = {m: t[(t.metric == m) & (t.step == t[t.metric == m].step.max())].sort_values("seed")
                for m in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")}  # fmt: skip
        diverged = int((~np.isfinite(last["train_loss"].value)).sum())
        final_test[init] = last["test_loss"].value.to_numpy()
        rows[init] = {
            "steps_to_target": _stats.time_to_target(crossing)._asdict(),
            **{m: _stats.bootstrap_ci(v.value)._asdict() for m, v in last.items()},
            "diverged_seeds": diverged,
        }
    means = {k: np.nanmean(np.where(np.isfinite(v), v, np.nan)) if np.isfinite(v).any() else np.inf
             for k, v in final_test.items()}  # fmt: skip
    best = min(means, key=means.get)
    for init, row in rows.items():
        if init == best:
            row["verdict"] = "best"
            continue
        d = _stats.paired_difference(final_test[init], final_test[best])
        row["test_loss_minus_best"] = d._asdict()
        if d.n == 0:
            row["verdict"] = "diverged"
        elif d.lo > 0:
            row["verdict"] = f"worse than {best}"
        else:
            row["verdict"] = f"indistinguishable from {best}"
    return {"best": best, "target": target, "inits": rows}


def format_summary(summary: dict) -> str:
    lines = []
    for act, s in summary["activations"].items():
        lines.append(f"\n{act}: steps to train loss ≤ {s['target']} and final metrics "
                     "(mean [95% CI] over seeds)")  # fmt: skip
        header = ("init", "steps to target", "train loss", "test loss", "test acc", "verdict")
        rows = [header]
        for init, r in s["inits"].items():
            t = _stats.TimeToTarget(**r["steps_to_target"])
            est = {m: _stats.Estimate(**r[m]) for m in ("train_loss", "test_loss", "test_accuracy")}
            verdict = r["verdict"] + (
                f" ({r['diverged_seeds']} diverged)" if r["diverged_seeds"] else ""
            )
            rows.append((init, str(t), str(est["train_loss"]), str(est["test_loss"]),
                         str(est["test_accuracy"]), verdict))  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_curves(table, target: float, path: str) -> None:
    """Mean train loss with 95 % bootstrap bands, one panel per activation."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    acts = list(dict.fromkeys(table.activation))
    fig = Figure(figsize=(6 * len(acts), 4.2))
    axes = fig.subplots(1, len(acts), squeeze=False)
    for ax, act in zip(axes[0], acts, strict=True):
        t = table[(table.activation == act) & (table.metric == "train_loss")]
        for init, g in t.groupby("init", sort=False):
            wide = g.pivot(index="seed", columns="step", values="value")
            mean, lo, hi = _stats.curve_band(np.where(np.isfinite(wide), wide, np.nan))
            line = ax.plot(wide.columns, mean, label=init)[0]
            ax.fill_between(wide.columns, lo, hi, color=line.get_color(), alpha=0.2)
        ax.axhline(target, color="k", ls=":", lw=1)
        ax.set(title=f"{act} MLP", xlabel="step", ylabel="train loss", yscale="log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _main(args: argparse.Namespace) -> int:
    cfg = CompareConfig(
        inits=tuple(args.inits.split(",")) if args.inits else CompareConfig.inits,
        activations=tuple(args.activation.split(",")),
        depth=args.depth, width=args.width, dataset=args.dataset, optimizer=args.optimizer,
        lr=args.lr, seeds=args.seeds, steps=args.steps, batch_size=args.batch_size,
        target=args.target, **({"out": args.out} if args.out else {}),
    )  # fmt: skip
    if args.quick:
        cfg = CompareConfig(**{**asdict(cfg), "seeds": 2, "steps": 100, "depth": 3, "width": 32})
    start = time.perf_counter()
    summary = run_compare(cfg)
    print(format_summary(summary))
    print(f"\nwrote results.csv, summary.json, loss_curves.png to {cfg.out}"
          f" ({time.perf_counter() - start:.0f} s)")  # fmt: skip
    return 0


def add_compare(sub: argparse._SubParsersAction) -> None:
    d = CompareConfig()
    p = sub.add_parser("compare", help="multi-seed convergence comparison of initializers")
    p.add_argument("--inits", help=f"comma-separated registry names (default: {','.join(d.inits)})")
    p.add_argument("--activation", default=",".join(d.activations), help="comma-separated")
    p.add_argument("--depth", type=int, default=d.depth, help="hidden layers")
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--dataset", default=d.dataset, choices=["digits", "mnist1d"])
    p.add_argument("--optimizer", default=d.optimizer, choices=["sgd", "adam"])
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seeds", type=int, default=d.seeds)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--target", type=float, default=d.target, help="train loss to reach")
    p.add_argument("--out", help="output directory (default: runs/compare-<time>)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    p.set_defaults(func=_main)
