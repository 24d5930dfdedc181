"""Reports of a study: per task, steps to target, final metrics with intervals and verdicts;
across tasks, rliable's aggregates and performance profiles; their text and figures.

The tables, verdicts and figures of ``jaxinit compare`` (which reports through this module)."""

from __future__ import annotations

import numpy as np

from jaxinit import stats
from jaxinit._table import cell, paragraph, terminal_width
from jaxinit._table import table as _fit_table


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
