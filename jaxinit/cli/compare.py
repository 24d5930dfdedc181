"""``jaxinit compare``: a multi-seed convergence comparison of initializers (the main job).

Trains every initializer × seed on a deep ReLU MLP and a deep tanh MLP in one compiled
program per activation, then reports per initializer: steps to reach a target train loss
(Kaplan–Meier median over seeds, censored members counted as not reaching it), final train
and test loss and accuracy (mean and 95 % studentized bootstrap CI over seeds), and a
verdict: exact sign-flip permutation tests of the seed-paired final test losses against the
activation's recommended scheme (registry table, fixed before the data), Holm-adjusted (all
pairs when no scheme in the study is recommended for the activation). Across activations
(the tasks) it reports rliable's aggregates of the final test accuracy (mean, median, IQM,
optimality gap with stratified bootstrap CIs), the probability of improvement of every pair
(Newcombe's score interval), performance profiles, and all-pairs Holm verdicts. One error
rate holds for the whole report: each table runs Holm at its share of 5 %, so the chance of
any false verdict anywhere in it is ≤ 5 %.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from jaxinit import stats
from jaxinit.cli._interrupt import Interrupt
from jaxinit.cli._table import cell, paragraph, terminal_width
from jaxinit.cli._table import table as _fit_table
from jaxinit.study import json_safe

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
    # the scheme every other is tested against, named before the data; None: the first
    # scheme the registry recommends for each activation (He for ReLU, Glorot for tanh)
    reference: str | None = None
    out: str = field(
        default_factory=lambda: os.path.join("runs", time.strftime("compare-%Y%m%d-%H%M%S"))
    )
    # keep each activation's study folder (<out>/<activation>/: its checkpoint, its own
    # results.csv) once the comparison completes; by default it is removed then
    keep_checkpoints: bool = False


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


def run_compare(
    cfg: CompareConfig, progress: bool | None = None, interrupt: Interrupt | None = None
) -> dict:
    """Run the comparison, write ``results.csv``, ``summary.json``, ``loss_curves.png`` and
    ``profiles.png`` to ``cfg.out``, and return the summary.

    Each activation's study checkpoints to ``<out>/<activation>/``, so the same call after
    an interruption resumes; once the four outputs are written (atomically, all or none)
    those folders are removed unless ``cfg.keep_checkpoints``. No signal handler is
    installed here: the command passes its ``interrupt`` (Ctrl-C) to check between steps.
    """
    import pandas as pd

    from jaxinit.initializers import scheme
    from jaxinit.study import load_dataset

    for name in cfg.inits:
        scheme(name)  # unknown names fail before any work, with close matches
    if cfg.reference is not None and cfg.reference not in cfg.inits:
        raise ValueError(
            f"jaxinit compare: --reference {cfg.reference!r} is not one of the compared"
            f" --inits {', '.join(cfg.inits)}"
        )
    data = load_dataset(cfg.dataset)
    if not data.is_classification:
        raise ValueError(f"jaxinit compare: dataset {cfg.dataset!r} is not a classification task")
    optimizer, hparams, validation = _study_optimizer(cfg)
    os.makedirs(cfg.out, exist_ok=True)
    tables, grids, summary = [], [], {"config": asdict(cfg), "activations": {}}
    log_every = max(10, cfg.steps // 100 // 10 * 10)
    if interrupt is None:
        interrupt = Interrupt()  # never set: no handler is installed
    # a study interrupted while it writes a checkpoint leaves its temporary file: remove it
    interrupt.on_exit(lambda: _remove_temporaries(cfg))
    alphas = _report_alphas(cfg)
    summary["error_rate"] = alphas
    for act in cfg.activations:
        interrupt.check()
        try:
            table, grid, rates = _run_one(cfg, act, data, log_every, progress, optimizer,
                                          hparams, validation)  # fmt: skip
        except KeyboardInterrupt:
            _remove_temporaries(cfg)
            raise
        tables.append(table)
        grids.append(grid)
        summary["activations"][act] = summarize(
            table, cfg.target, alpha=alphas["families"][act], reference=cfg.reference
        )
        if rates:
            summary["activations"][act]["learning_rates"] = rates
            for init, lr in rates.items():
                summary["activations"][act]["inits"][init]["learning_rate"] = lr
    interrupt.check()
    table = pd.concat(tables, ignore_index=True)
    summary["aggregate"] = summarize_aggregate(table, alpha=alphas["families"]["aggregate"])
    # results.csv: with a rate grid, every rate's rows (learning_rate column); the
    # summary and the plots use each init's chosen rate
    _write_outputs(cfg, pd.concat(grids, ignore_index=True), table, summary, interrupt)
    if not cfg.keep_checkpoints:
        for act in cfg.activations:
            _remove_study_folder(os.path.join(cfg.out, act))
    return summary


REPORT_ALPHA = 0.05  # the chance of any false verdict in the whole report


def _report_alphas(cfg: CompareConfig) -> dict:
    """Each verdict table's share of the report's error rate (:func:`jaxinit.stats.family_alphas`):
    a table of k tests gets α·k/K, K the tests of the whole report, so any false verdict
    anywhere in it has probability ≤ α. The table sizes follow from the names alone."""
    k = len(cfg.inits)
    pairs = k * (k - 1) // 2
    sizes = {}
    for act in cfg.activations:
        ref = cfg.reference or stats.recommended_reference(act, sorted(cfg.inits))
        sizes[act] = k - 1 if ref is not None else pairs
    sizes["aggregate"] = pairs
    families = stats.family_alphas(sizes, REPORT_ALPHA)
    return {"alpha": REPORT_ALPHA, "tests": sum(sizes.values()), "families": families,
            "procedure": f"any false verdict in this report ≤ {REPORT_ALPHA:.0%}: each table "
            f"runs Holm at its share α·k/K of the report's {sum(sizes.values())} tests "
            "(Bonferroni over the tables)"}  # fmt: skip


STUDY_FILES = ("results.csv", "results.partial.csv")


def _remove_temporaries(cfg: CompareConfig) -> None:
    """The studies' temporary files (``.tmp-*``, left by an interrupted atomic write), and
    their folders if nothing else is in them."""
    for act in cfg.activations:
        folder = os.path.join(cfg.out, act)
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            if name.startswith(".tmp-"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, name))
        with contextlib.suppress(OSError):  # a study that had not written anything yet
            os.rmdir(folder)


def _remove_study_folder(folder: str) -> None:
    """Remove what :func:`run_study` wrote to ``folder`` (checkpoints, its results.csv,
    temporary files), and the folder if nothing else is in it."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.startswith("checkpoint-") and os.path.isdir(path):  # an orbax checkpoint
            shutil.rmtree(path, ignore_errors=True)
        elif (
            name in STUDY_FILES
            or name.startswith(".tmp-")
            or (
                name.startswith("checkpoint-") and name.endswith(".npz")  # jaxinit < orbax
            )
        ):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    with contextlib.suppress(OSError):
        os.rmdir(folder)


def _run_one(cfg: CompareConfig, act: str, data, log_every: int, progress, optimizer,
             hparams, validation):  # fmt: skip
    """One activation's study: (table at each init's rate, every rate's rows, the rates)."""
    from jaxinit.study import MLP, Study, run_study

    study = Study(
        model=MLP((cfg.width,) * cfg.depth + (data.num_classes,), act),
        dataset=data, optimizer=optimizer,
        inits={n: n for n in cfg.inits}, seeds=cfg.seeds, steps=cfg.steps,
        batch_size=cfg.batch_size, log_every=log_every,
        eval_every=cfg.steps // 2 // log_every * log_every or cfg.steps,
        hparams=hparams, validation=validation,
    )  # fmt: skip
    result = run_study(study, key=0, out_dir=os.path.join(cfg.out, act), progress=progress)
    grid = result.table.assign(activation=act)
    if not hparams:
        return grid, grid, {}
    # each init at its own best rate (mean final val_loss), never chosen on test
    best = result.best_hparams("val_loss")
    rates = dict(zip(best.init, best.learning_rate, strict=True))
    return result.at_best_hparams("val_loss").assign(activation=act), grid, rates


OUTPUTS = ("results.csv", "summary.json", "loss_curves.png", "profiles.png")


def _write_outputs(cfg: CompareConfig, full, table, summary: dict, interrupt) -> None:
    """Write the final outputs as one set: each to a hidden partial file first, then all
    renamed into place with Ctrl-C deferred, so a run leaves all four or none (of its own)."""

    def partial(name: str) -> str:
        stem, ext = os.path.splitext(name)
        return os.path.join(cfg.out, f".{stem}.partial{ext}")

    def remove_partials() -> None:
        for name in OUTPUTS:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial(name))

    interrupt.on_exit(remove_partials)  # also when Ctrl-C ends the process at once
    try:
        full.to_csv(partial("results.csv"), index=False)
        with open(partial("summary.json"), "w") as f:
            json.dump(json_safe(summary), f, indent=2, allow_nan=False)
        plot_curves(table, cfg.target, partial("loss_curves.png"))
        plot_profiles(summary["aggregate"], partial("profiles.png"))
        interrupt.check()
        with interrupt.deferred():
            for name in OUTPUTS:
                os.replace(partial(name), os.path.join(cfg.out, name))
    finally:
        remove_partials()


def _final(t, metric: str):
    """The last logged value of ``metric`` per seed, sorted by seed."""
    m = t[t.metric == metric]
    return m[m.step == m.step.max()].sort_values("seed")


def summarize(table, target: float, alpha: float = 0.05, reference: str | None = None) -> dict:
    """Per initializer: time to target, final metrics with CIs, and a verdict.

    Verdicts compare final test losses with exact sign-flip permutation tests of the
    seed-paired differences, Holm-adjusted so the chance of any false verdict in the table
    is ≤ ``alpha``: each scheme against
    ``reference`` (named before the data), by default the activation's recommended scheme
    (:func:`jaxinit.stats.recommended_reference`, taken from the table's
    ``activation`` column) when the study has one, else all pairs.
    """
    rows = {}
    final_test = {}
    for init, t in table.groupby("init", sort=False):
        train = t[t.metric == "train_loss"].pivot(index="seed", columns="step", values="value")
        steps = train.columns.to_numpy()
        crossing = stats.first_crossing(steps, np.nan_to_num(train.to_numpy(), nan=np.inf), target)
        last = {
            m: _final(t, m) for m in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
        }
        diverged = int((~np.isfinite(last["train_loss"].value)).sum())
        final_test[init] = last["test_loss"].value.to_numpy()[None]
        rows[init] = {
            "steps_to_target": stats.time_to_target(crossing)._asdict(),
            **{
                m: stats.bootstrap_ci(v.value, support=_support(m))._asdict()
                for m, v in last.items()
            },
            "diverged_seeds": diverged,
        }
    acts = list(dict.fromkeys(table["activation"])) if "activation" in table else []
    # The reference depends on names only (never on results): the user's, or the
    # alphabetically first scheme the registry recommends for the activation.
    if reference is not None and reference not in rows:
        raise ValueError(f"summarize: reference {reference!r} is not in the table's inits")
    if reference is None and len(acts) == 1:
        reference = stats.recommended_reference(acts[0], sorted(rows))
    v = stats.verdicts(final_test, reference, higher_is_better=False, alpha=alpha)
    for test in v["tests"]:
        if reference is not None:
            rows[test["a"]]["test_loss_minus_reference"] = test
    for init, row in rows.items():
        verdict = v["verdict"][init]
        if not np.isfinite(final_test[init]).any():
            verdict = "diverged"
        row["verdict"] = verdict
    return {
        "target": target,
        "alpha": alpha,
        "reference": reference,
        "procedure": v["procedure"] + f" at α = {alpha:.2g}; null: {v['null']}",
        "reachable": v["reachable"],
        "tests": v["tests"],
        "inits": rows,
    }


def summarize_aggregate(table, alpha: float = 0.05, taus=None) -> dict:
    """rliable's aggregates of the final test accuracy across tasks (activations × seeds).

    Per initializer: mean, median, IQM and optimality gap (γ = 1: the mean error rate) with
    95 % stratified bootstrap CIs; for every ordered pair the probability of improvement
    P(X > Y) with Newcombe's score CI; performance profiles (fraction of runs with accuracy
    > τ) with bands; and all-pairs verdicts (exact sign-flip permutation tests of the
    seed-paired differences stratified over tasks, Holm-adjusted over every pair at
    ``alpha``).
    """
    acc = table[table.metric == "test_accuracy"]
    acc = acc[acc.step == acc.step.max()]
    tasks = list(dict.fromkeys(acc["activation"]))
    scores = {}  # init -> (tasks, seeds), seeds matched across inits
    for init, t in acc.groupby("init", sort=False):
        wide = t.pivot(index="activation", columns="seed", values="value")
        scores[init] = wide.loc[tasks].to_numpy(np.float64)
    if taus is None:  # the whole range, plus a fine grid over the upper half of the scores
        every = np.concatenate([s.ravel() for s in scores.values()])
        top = every[every >= np.nanmedian(every)]
        taus = np.union1d(np.linspace(0.0, 1.0, 101), np.linspace(top.min(), top.max(), 101))
    taus = np.asarray(taus, np.float64)
    names = list(scores)
    metrics = {n: {k: iv._asdict()
                   for k, iv in stats.aggregate_intervals(s, support=(0.0, 1.0)).items()}
               for n, s in scores.items()}  # fmt: skip
    poi = []
    for x in names:
        for y in names:
            if x != y:
                iv = stats.improvement_interval(scores[x], scores[y])
                poi.append({"x": x, "y": y, **iv._asdict()})
    profiles = {n: stats.performance_profile(s, taus)._asdict() for n, s in scores.items()}
    v = stats.verdicts(scores, None, higher_is_better=True, alpha=alpha)
    return {
        "score": "final test accuracy",
        "alpha": alpha,
        "tasks": tasks,
        "runs_per_task": {n: int(s.shape[-1]) for n, s in scores.items()},
        "methods": {
            "mean, IQM, optimality gap": "studentized stratified bootstrap, guarded SE, "
            "within the resampled range",
            "median": "BCa stratified bootstrap",
            "probability of improvement": "Newcombe's score interval (method 5)",
            "profiles": "percentile stratified bootstrap bands",
            "verdicts": v["procedure"] + f" at α = {alpha:.2g}; null: {v['null']}",
        },
        "metrics": metrics,
        "probability_of_improvement": poi,
        "profiles": {"taus": taus, **profiles},
        "reachable": v["reachable"],
        "tests": v["tests"],
        "verdict": v["verdict"],
    }


def _table(rows: list[tuple[str, ...]], width: int | None = None) -> list[str]:
    """A header row and its rows as lines at most ``width`` wide (NaN shown as "—")."""
    return _fit_table(rows[0], rows[1:], width).splitlines()


def _wrap(lines: list[str], width: int | None) -> str:
    """The report's lines, those longer than ``width`` (its prose) wrapped to it."""
    width = terminal_width(width)
    out = []
    for line in "\n".join(lines).split("\n"):
        out.append(line if len(line) <= width else paragraph(line, width, indent="  "))
    return "\n".join(out)


def _steps_cell(t) -> str:
    """Steps to target: "not reached" alone when no seed reached it."""
    return "not reached" if t.fraction == 0 else cell(t)


def format_summary(summary: dict, width: int | None = None) -> str:
    """The text report of a :func:`run_compare` summary: per activation, a table of steps to
    target, final metrics with their intervals and verdicts; then the aggregates. Lines are
    at most ``width`` characters (default: the terminal's, or ``COLUMNS``); a value that is
    not a number reads "—"."""
    lines = []
    for act, s in summary.get("activations", {}).items():
        lines.append(f"\n{act}: steps to train loss ≤ {s['target']} and final metrics "
                     "(mean [95% CI] over seeds)")  # fmt: skip
        ref = s.get("reference")
        header = ("init", "steps to target", "train loss", "test loss", "test acc",
                  f"test loss − {ref}" if ref else "", "p (Holm)" if ref else "", "verdict")  # fmt: skip
        rows = [header]
        for init, r in s["inits"].items():
            t = stats.TimeToTarget(**r["steps_to_target"])
            est = {m: stats.Estimate(**r[m]) for m in ("train_loss", "test_loss", "test_accuracy")}
            verdict = r["verdict"] + (
                f" ({r['diverged_seeds']} diverged)" if r["diverged_seeds"] else ""
            )
            d = r.get("test_loss_minus_reference")
            diff = f"{d['diff']:+.3g} [{d['lo']:+.3g}, {d['hi']:+.3g}]" if d else ""
            p = f"{d['p_holm']:.2g}" if d and np.isfinite(d["p_holm"]) else ""
            rows.append((init, _steps_cell(t), str(est["train_loss"]), str(est["test_loss"]),
                         str(est["test_accuracy"]), diff, p, verdict))  # fmt: skip
        keep = [i for i, h in enumerate(header) if h]  # no reference: no difference columns
        lines += _table([tuple(r[i] for i in keep) for r in rows], width)
        lines.append(f"verdicts: {s['procedure']}")
        if not s.get("reachable", True):
            lines.append(_unreachable(s))
    if "aggregate" in summary:
        lines += format_aggregate(summary["aggregate"], width)
    if "error_rate" in summary:
        lines.append(f"\nerror rate: {summary['error_rate']['procedure']}")
    return _wrap(lines, width)


def _unreachable(s: dict) -> str:
    """Why a table can issue no verdict: its smallest attainable p-value fails Holm's first
    threshold (an exact permutation test of n seed pairs cannot go below 2/2^n)."""
    tests = s["tests"]
    p_min = min(t["p_min"] for t in tests)
    return (
        f"  (no verdict is reachable here: with {tests[0]['n']} seed pairs the smallest "
        f"p-value is {p_min:.2g}, Holm's first threshold {s['alpha'] / len(tests):.2g})"
    )


def format_aggregate(agg: dict, width: int | None = None) -> list[str]:
    """The aggregate section of the report: metrics, probability of improvement, verdicts."""
    tasks = ", ".join(agg["tasks"])
    runs = sorted(set(agg["runs_per_task"].values()))
    lines = [f"\naggregate over tasks {tasks} ({agg['score']}, {'/'.join(map(str, runs))} seeds "
             "per task; value [95% stratified bootstrap CI])"]  # fmt: skip
    rows: list[tuple[str, ...]] = [
        ("init", "mean", "median", "IQM", "optimality gap", "verdict (all pairs)")
    ]
    for init, m in agg["metrics"].items():
        cells = [str(stats.Interval(**m[k])) for k in ("mean", "median", "iqm", "optimality_gap")]
        rows.append((init, *cells, agg["verdict"][init]))
    lines += _table(rows, width)
    if not agg.get("reachable", True):
        lines.append(_unreachable(agg))
    names = list(agg["metrics"])
    poi = {(r["x"], r["y"]): r for r in agg["probability_of_improvement"]}
    lines.append("\nprobability of improvement P(row > column) in final test accuracy "
                 "(* : 95% CI excludes 0.5)")  # fmt: skip
    rows = [("", *names)]
    for x in names:
        cells = []
        for y in names:
            if x == y:
                cells.append("-")
                continue
            r = poi[(x, y)]
            star = "*" if r["lo"] > 0.5 or r["hi"] < 0.5 else ""
            cells.append(f"{r['value']:.2f}{star}")
        rows.append((x, *cells))
    lines += _table(rows, width)
    lines.append("methods: " + "; ".join(f"{k}: {v}" for k, v in agg["methods"].items()))
    return lines


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
            mean, lo, hi = stats.curve_band(np.where(np.isfinite(wide), wide, np.nan))
            line = ax.plot(wide.columns, mean, label=init)[0]
            ax.fill_between(wide.columns, lo, hi, color=line.get_color(), alpha=0.2)
        ax.axhline(target, color="k", ls=":", lw=1)
        ax.set(title=f"{act} MLP", xlabel="step", ylabel="train loss", yscale="log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_profiles(agg: dict, path: str) -> None:
    """Performance profiles of the final test accuracy (all tasks) with bootstrap bands: the
    whole range, and zoomed on the upper half of the scores, where good schemes differ."""
    from matplotlib.figure import Figure

    taus = np.asarray(agg["profiles"]["taus"], np.float64)
    profiles = {n: stats.Interval(**{k: np.asarray(v, np.float64) for k, v in p.items()
                                     if k != "n"})
                for n, p in agg["profiles"].items() if n != "taus"}  # fmt: skip
    scores = np.array([m["iqm"]["value"] for m in agg["metrics"].values()], np.float64)
    zoom = taus >= np.nanmedian(scores) - 0.02
    fig = Figure(figsize=(12, 4.2))
    axes = fig.subplots(1, 2)
    for ax, keep in zip(axes, (np.ones_like(zoom), zoom), strict=True):
        stats.plot_performance_profiles(
            {n: stats.Interval(*(np.asarray(a)[keep] for a in p[:3])) for n, p in profiles.items()},
            taus[keep], ax=ax, xlabel="final test accuracy τ",
        )  # fmt: skip
    axes[1].set_title(f"zoom: τ ≥ {taus[zoom].min():.3f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _support(metric: str) -> tuple[float, float]:
    """The values a final metric can take: accuracies in [0, 1], losses in [0, inf)."""
    return (0.0, 1.0) if metric.endswith("accuracy") else (0.0, np.inf)
