"""``jaxinit compare``: a multi-seed convergence comparison of initializers (the main job).

Trains every initializer × seed on a deep ReLU MLP and a deep tanh MLP in one compiled
program per activation, then reports per initializer: steps to reach a target train loss
(Kaplan–Meier median over seeds, censored members counted as not reaching it), final train
and test loss and accuracy (mean and 95 % bootstrap CI over seeds), and a verdict against
the best scheme (paired bootstrap CI of the difference in final test loss).
"""

from __future__ import annotations

import argparse
import contextlib
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
    # A learning-rate grid: every init is trained at every rate and compared at its own
    # best one, chosen on a validation split carved from train (``lr`` is then unused).
    lrs: tuple[float, ...] = ()
    validation: float = 0.1  # fraction of train held out when ``lrs`` is given
    seeds: int = 8
    steps: int = 1500
    batch_size: int = 64
    target: float = 0.1  # train loss
    out: str = field(
        default_factory=lambda: os.path.join("runs", time.strftime("compare-%Y%m%d-%H%M%S"))
    )


def _optimizer(name: str, lr: float | None):
    """The optimizer at rate ``lr``, or with ``lr=None`` its factory for a rate grid."""
    import functools

    import optax

    if name == "sgd":
        return functools.partial(optax.sgd, momentum=0.9) if lr is None else optax.sgd(lr, 0.9)
    if name == "adam":
        return optax.adam if lr is None else optax.adam(lr)
    raise ValueError(f"jaxinit compare: --optimizer={name!r}; allowed: 'sgd', 'adam'")


# one factory object per optimizer name, so repeated comparisons reuse compiled programs
_FACTORIES: dict = {}


def _study_optimizer(cfg: CompareConfig) -> tuple:
    """(optimizer, hparams, validation) of the comparison's studies."""
    if not cfg.lrs:
        return _optimizer(cfg.optimizer, cfg.lr), None, 0.0
    bad = [r for r in cfg.lrs if not (isinstance(r, int | float) and r > 0 and np.isfinite(r))]
    if bad or len(set(cfg.lrs)) != len(cfg.lrs):
        raise ValueError(
            f"jaxinit compare: --lrs must be distinct positive numbers, got {list(cfg.lrs)}"
        )
    if cfg.optimizer not in _FACTORIES:
        _FACTORIES[cfg.optimizer] = _optimizer(cfg.optimizer, None)
    hparams = {"learning_rate": [float(r) for r in cfg.lrs]}
    return _FACTORIES[cfg.optimizer], hparams, cfg.validation


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
    optimizer, hparams, validation = _study_optimizer(cfg)
    os.makedirs(cfg.out, exist_ok=True)
    tables, grids, summary = [], [], {"config": asdict(cfg), "activations": {}}
    log_every = max(10, cfg.steps // 100 // 10 * 10)
    for act in cfg.activations:
        study = Study(
            model=MLP((cfg.width,) * cfg.depth + (data.num_classes,), act),
            dataset=data, optimizer=optimizer,
            inits={n: n for n in cfg.inits}, seeds=cfg.seeds, steps=cfg.steps,
            batch_size=cfg.batch_size, log_every=log_every,
            eval_every=cfg.steps // 2 // log_every * log_every or cfg.steps,
            hparams=hparams, validation=validation,
        )  # fmt: skip
        result = run_study(study, key=0, out_dir=os.path.join(cfg.out, act), progress=progress)
        if hparams:
            # each init at its own best rate (mean final val_loss), never chosen on test
            best = result.best_hparams("val_loss")
            rates = dict(zip(best.init, best.learning_rate, strict=True))
            grids.append(result.table.assign(activation=act))
            table = result.at_best_hparams("val_loss").assign(activation=act)
        else:
            rates = {}
            table = result.table.assign(activation=act)
        tables.append(table)
        summary["activations"][act] = summarize(table, cfg.target)
        if rates:
            summary["activations"][act]["learning_rates"] = rates
            for init, lr in rates.items():
                summary["activations"][act]["inits"][init]["learning_rate"] = lr
    table = pd.concat(tables, ignore_index=True)
    # results.csv: with a rate grid, every rate's rows (learning_rate column); the summary
    # and the plot use each init's chosen rate
    full = pd.concat(grids, ignore_index=True) if grids else table
    full.to_csv(os.path.join(cfg.out, "results.csv"), index=False)
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
        lr=args.lr, lrs=_parse_lrs(args.lrs), seeds=args.seeds, steps=args.steps,
        batch_size=args.batch_size,
        target=args.target, **({"out": args.out} if args.out else {}),
    )  # fmt: skip
    if args.quick:
        cfg = CompareConfig(**{**asdict(cfg), "seeds": 2, "steps": 100, "depth": 3, "width": 32})
    start = time.perf_counter()
    with _compilation_cache(not args.no_compile_cache):
        summary = run_compare(cfg)
    print(format_summary(summary))
    for act, s in summary["activations"].items():
        if "learning_rates" in s:
            rates = ", ".join(f"{k} {v:g}" for k, v in s["learning_rates"].items())
            print(f"\n{act}: learning rate of each init, chosen on validation: {rates}")
    print(f"\nwrote results.csv, summary.json, loss_curves.png to {cfg.out}"
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
    import jax

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
    d = CompareConfig()
    p = sub.add_parser("compare", help="multi-seed convergence comparison of initializers")
    p.add_argument("--inits", help=f"comma-separated registry names (default: {','.join(d.inits)})")
    p.add_argument("--activation", default=",".join(d.activations), help="comma-separated")
    p.add_argument("--depth", type=int, default=d.depth, help="hidden layers")
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--dataset", default=d.dataset, choices=["digits", "mnist1d"])
    p.add_argument("--optimizer", default=d.optimizer, choices=["sgd", "adam"])
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument(
        "--lrs",
        help="comma-separated learning rates, e.g. 0.003,0.01,0.03 (sgd) or 1e-4,3e-4,1e-3"
        " (adam): every init at every rate, each compared at its own best rate, chosen on"
        " a validation split of train (overrides --lr)",
    )
    p.add_argument("--seeds", type=int, default=d.seeds)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--target", type=float, default=d.target, help="train loss to reach")
    p.add_argument("--out", help="output directory (default: runs/compare-<time>)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    p.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not use JAX's persistent compilation cache (default: on, under"
        " $XDG_CACHE_HOME/jaxinit/jax, so a second run skips compilation)",
    )
    p.set_defaults(func=_main)
