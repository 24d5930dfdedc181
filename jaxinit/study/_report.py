"""Reports of a study: per task, steps to target, final metrics with intervals and verdicts;
across tasks, rliable's aggregates and performance profiles; their text and figures.

:func:`report` (also :meth:`StudyResult.report`) is the one path: ``jaxinit compare`` reports
through it too. The module does not import the rest of the study layer's results (a
:class:`StudyResult` comes in as a value), so ``_results`` may import it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from jaxinit import stats
from jaxinit._table import cell, paragraph, terminal_width
from jaxinit._table import table as _fit_table
from jaxinit.study._io import _atomic_write, json_safe

REPORT_ALPHA = 0.05  # the default chance of any false verdict in the whole report
OUTPUTS = ("results.csv", "summary.json", "loss_curves.png", "profiles.png")
SINGLE_TASK = "study"  # the task's name when the table has no task column
# the final metrics a report shows, in this order, among those the table has
_VERDICT_METRICS = ("test_loss", "val_loss", "train_loss")
_SCORE_METRICS = ("test_accuracy", "val_accuracy", "train_accuracy")


@dataclass(frozen=True)
class Report:
    """The report of a study (:func:`report`): its summary, text and figures.

    Attributes:
      summary: a JSON-able dict (through :func:`json_safe`): ``tasks`` (per task: the
        ``target``, ``alpha``, ``reference``, the verdicts' ``procedure`` and ``tests``, and
        per initializer its ``steps_to_target``, final metrics with intervals, diverged
        seeds and ``verdict``; ``best_hparams`` where chosen), ``task_column``,
        ``verdict_metric``, ``score`` (the aggregate's accuracy metric, or None),
        ``error_rate`` (the report-wide error rate), ``aggregate`` (with an accuracy
        metric) and ``notes`` (when there is something to say).
      table: the reported rows: each initializer at its chosen hyperparameters, with the
        task column (``task`` below).
      results: the whole table the report was made from (every hyperparameter value).
      task: the column of ``table`` naming the tasks.
    """

    summary: dict = field(repr=False)
    table: Any = field(repr=False)  # pandas.DataFrame
    results: Any = field(repr=False)  # pandas.DataFrame
    task: str = "task"

    def __str__(self) -> str:
        return self.format()

    def format(self, width: int | None = None) -> str:
        """The text report (what ``jaxinit compare`` prints), lines at most ``width``
        characters (default: the terminal's, or ``COLUMNS``)."""
        return format_summary(self.summary, width)

    def figures(self, title: str = "{}") -> dict[str, Any]:
        """``matplotlib.figure.Figure`` objects (no pyplot state): ``"loss_curves"`` (mean
        train loss per initializer with 95 % bootstrap bands, one panel per task; the
        target as a dotted line) and, with an accuracy metric, ``"profiles"`` (performance
        profiles with bootstrap bands, whole range and zoomed). ``title`` formats each
        panel's title from its task's name."""
        figs = {"loss_curves": _curves_figure(self.table, self.summary, self.task, title)}
        if "aggregate" in self.summary:
            figs["profiles"] = _profiles_figure(self.summary["aggregate"])
        return figs

    def save(self, out_dir: str | os.PathLike) -> list[str]:
        """Write ``results.csv`` (:attr:`results`), ``summary.json``, ``loss_curves.png`` and
        (with an accuracy metric) ``profiles.png`` to ``out_dir`` (created if needed), each
        atomically; returns the paths written."""
        out = os.fspath(out_dir)
        os.makedirs(out, exist_ok=True)
        paths = [os.path.join(out, name) for name in OUTPUTS[:2]]
        _atomic_write(paths[0], self.results.to_csv(index=False).encode())
        text = json.dumps(json_safe(self.summary), indent=2, allow_nan=False)
        _atomic_write(paths[1], text.encode())
        for name, fig in self.figures().items():
            path = os.path.join(out, f"{name}.png")
            fig.savefig(path + ".tmp.png", dpi=120)
            os.replace(path + ".tmp.png", path)
            paths.append(path)
        return paths


def report(
    result: Any,
    target: float | None = None,
    reference: str | None = None,
    alpha: float = REPORT_ALPHA,
    task: str | None = None,
) -> Report:
    """The report of a study's results: per task a table of steps to ``target`` (with a
    ``target``), final metrics with 95 % intervals over seeds and verdicts; then rliable's
    aggregates across tasks; one error rate for the whole report.

    The tasks are the values of the column ``task``; by default the ``activation`` column
    when the table has one, else ``model`` (an architecture sweep), else one task,
    ``"study"``. Verdicts: exact sign-flip permutation tests of the seed-paired final
    ``test_loss`` (without a test split ``val_loss``, then ``train_loss``; the summary's
    ``verdict_metric`` says which) against ``reference`` (named before the data; by default
    the activation's recommended scheme when the tasks are activations, else all pairs),
    Holm-adjusted. Aggregates and performance profiles need an accuracy (``test_accuracy``,
    else ``val_accuracy`` or ``train_accuracy``); a regression study has none and the
    report says it skips them. Each verdict table runs Holm at its share of ``alpha``
    (:func:`jaxinit.stats.family_alphas`), so any false verdict in the report has
    probability ≤ ``alpha``.

    With hyperparameter columns each initializer is reported at its best values on the
    validation split (:meth:`StudyResult.at_best_hparams` on ``val_loss``, per task);
    the summary records them (``best_hparams``), and notes a best value at the smallest or
    largest of a grid of ≥ 3 values (the optimum may lie beyond it).

    Args:
      result: a :class:`StudyResult` (e.g. from :func:`run_study`).
      target: a train loss; with it, the steps to reach it (Kaplan–Meier median over seeds).
      reference: the initializer every other is tested against.
      alpha: the report-wide error rate.
      task: the column whose values are the tasks.

    Returns:
      A :class:`Report`: ``.summary``, ``str(report)`` / ``.format(width)``,
      ``.figures()``, ``.save(out_dir)``.

    A regression study's table (no accuracy: no aggregate), reported as one task:

    >>> import pandas as pd
    >>> from jaxinit.study import StudyResult
    >>> rows = [(init, seed, 100, metric, loss + 0.1 * seed + (metric == "test_loss"))
    ...         for init, loss in (("he_normal", 0.2), ("zeros", 1.0))
    ...         for seed in range(4) for metric in ("train_loss", "test_loss")]
    >>> table = pd.DataFrame(rows, columns=["init", "seed", "step", "metric", "value"])
    >>> r = StudyResult(table).report(target=0.5)
    >>> list(r.summary["tasks"]), r.summary["verdict_metric"], r.summary["score"]
    (['study'], 'test_loss', None)
    >>> r.summary["tasks"]["study"]["inits"]["zeros"]["verdict"]
    'no significant difference'
    >>> print(r.format(width=80))  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    <BLANKLINE>
    study: steps to train loss ≤ 0.5 and final metrics (mean [95% CI] over seeds)
    ...
    note: no accuracy metric (a regression study): ...
    """
    fn = "report"
    table = result.table
    if task is None:
        task = next((c for c in ("activation", "model") if c in table.columns), None)
    elif task not in table.columns:
        raise ValueError(f"{fn}: task={task!r} is not a column of the table {list(table.columns)}")
    column = task or "task"
    full = table if task else table.assign(task=SINGLE_TASK)
    metrics = set(full.metric)
    verdict_metric = next((m for m in _VERDICT_METRICS if m in metrics), None)
    if verdict_metric is None:
        raise ValueError(f"{fn}: the table has no loss ({', '.join(_VERDICT_METRICS)})")
    score = next((m for m in _SCORE_METRICS if m in metrics), None)
    hparams = tuple(result.hparams)
    if hparams and "val_loss" not in metrics:
        raise ValueError(
            f"{fn}: the table has hyperparameter columns ({', '.join(hparams)}) but no "
            "validation split to choose each initializer's values on: run the study with "
            "Study(validation=0.1), or report one slice of the grid, e.g. "
            f"StudyResult(result.table[result.table.{hparams[0]} == value]).report()"
        )
    tasks = list(dict.fromkeys(full[column]))
    notes: list[str] = []
    if verdict_metric != "test_loss":
        notes.append(f"verdicts on the final {verdict_metric}: the table has no test_loss")
    if score is None:
        notes.append("no accuracy metric (a regression study): no aggregate across tasks "
                     "and no performance profiles")  # fmt: skip
    elif score != "test_accuracy":
        notes.append(f"aggregates on the final {score}: the table has no test_accuracy")
    chosen, parts = {}, []
    for name in tasks:
        part = full[full[column] == name]
        if hparams:
            sub = replace(result, table=part, models=())
            best = sub.best_hparams("val_loss")
            chosen[name] = {
                row["init"]: {h: _plain(row[h]) for h in hparams} for _, row in best.iterrows()
            }
            notes += _grid_edges(part, best, hparams, name if task else None)
            part = sub.at_best_hparams("val_loss")
        parts.append(part)
    import pandas as pd

    reported = pd.concat(parts, ignore_index=True)
    inits = {name: list(dict.fromkeys(p.init)) for name, p in zip(tasks, parts, strict=True)}
    refs = {
        name: reference
        or (
            stats.recommended_reference(name, sorted(inits[name])) if task == "activation" else None
        )
        for name in tasks
    }
    error_rate = _error_rate(inits, refs, score is not None, alpha)
    families = error_rate["families"]
    summary: dict[str, Any] = {"tasks": {}}
    for name, part in zip(tasks, parts, strict=True):
        s = summarize(part, target, alpha=families[name] or alpha, reference=refs[name],
                      metric=verdict_metric)  # fmt: skip
        if hparams:
            for init, values in chosen[name].items():
                s["inits"][init].update(values)
            s["best_hparams"] = chosen[name]
        summary["tasks"][name] = s
    summary["task_column"] = task
    summary["verdict_metric"] = verdict_metric
    summary["score"] = score
    summary["error_rate"] = error_rate
    if score is not None:
        summary["aggregate"] = summarize_aggregate(
            reported, alpha=families["aggregate"] or alpha, metric=score, task=column
        )
    if notes:
        summary["notes"] = notes
    return Report(summary, reported, table, column)


def _plain(x: Any) -> Any:
    """A numpy scalar as a Python number (JSON, and ``==`` with the grid's values)."""
    return x.item() if isinstance(x, np.generic) else x


def _grid_edges(part, best, hparams: tuple, name: str | None) -> list[str]:
    """A note per initializer whose best value of a numeric hyperparameter is the smallest
    or largest of its grid (of ≥ 3 values): the optimum may lie beyond the grid."""
    out = []
    for _, row in best.iterrows():
        mine = part[part.init == row["init"]]
        for h in hparams:
            grid = np.unique(mine[h].to_numpy())
            if len(grid) < 3 or not np.issubdtype(grid.dtype, np.number):
                continue
            v = row[h]
            edge = "smallest" if v == grid.min() else "largest" if v == grid.max() else None
            if edge:
                who = row["init"] + (f" ({name})" if name is not None else "")
                out.append(f"{who}: best {h} {v:g} is the {edge} in the grid "
                           f"({', '.join(f'{g:g}' for g in grid)}); the optimum may lie "
                           "beyond it")  # fmt: skip
    return out


def _error_rate(inits: dict, refs: dict, aggregate: bool, alpha: float) -> dict:
    """Each verdict table's share of the report's error rate (:func:`jaxinit.stats.family_alphas`):
    a table of k tests gets α·k/K, K the tests of the whole report, so any false verdict
    anywhere in it has probability ≤ α. The table sizes follow from the names alone."""
    sizes = {}
    for name, names in inits.items():
        k = len(names)
        sizes[name] = k - 1 if refs[name] is not None else k * (k - 1) // 2
    if aggregate:
        k = len({i for names in inits.values() for i in names})
        sizes["aggregate"] = k * (k - 1) // 2
    families = stats.family_alphas(sizes, alpha)
    return {"alpha": alpha, "tests": sum(sizes.values()), "families": families,
            "procedure": f"any false verdict in this report ≤ {alpha:.0%}: each table "
            f"runs Holm at its share α·k/K of the report's {sum(sizes.values())} tests "
            "(Bonferroni over the tables)"}  # fmt: skip


def _final(t, metric: str):
    """The last logged value of ``metric`` per seed, sorted by seed."""
    m = t[t.metric == metric]
    return m[m.step == m.step.max()].sort_values("seed")


def _shown(metrics: set, verdict: str) -> tuple[str, ...]:
    """The final metrics of a task's table: train loss and accuracy, then the verdict's
    split (test, else validation) loss and accuracy, those the table has."""
    split = verdict.split("_")[0]
    order = ("train_loss", "train_accuracy", f"{split}_loss", f"{split}_accuracy")
    return tuple(m for m in dict.fromkeys(order) if m in metrics)


def summarize(
    table,
    target: float | None,
    alpha: float = 0.05,
    reference: str | None = None,
    metric: str = "test_loss",
) -> dict:
    """Per initializer: time to target, final metrics with CIs, and a verdict.

    Verdicts compare final ``metric`` values (test losses) with exact sign-flip permutation
    tests of the seed-paired differences, Holm-adjusted so the chance of any false verdict
    in the table is ≤ ``alpha``: each scheme against
    ``reference`` (named before the data), by default the activation's recommended scheme
    (:func:`jaxinit.stats.recommended_reference`, taken from the table's
    ``activation`` column) when the study has one, else all pairs.
    """
    rows = {}
    final = {}
    shown = _shown(set(table.metric), metric)
    for init, t in table.groupby("init", sort=False):
        last = {m: _final(t, m) for m in shown}
        row: dict[str, Any] = {}
        if target is not None:
            train = t[t.metric == "train_loss"].pivot(index="seed", columns="step", values="value")
            steps = train.columns.to_numpy()
            curves = np.nan_to_num(train.to_numpy(), nan=np.inf)
            crossing = stats.first_crossing(steps, curves, target)
            row["steps_to_target"] = stats.time_to_target(crossing)._asdict()
        diverged = int((~np.isfinite(_final(t, "train_loss").value)).sum())
        final[init] = _final(t, metric).value.to_numpy()[None]
        rows[init] = {
            **row,
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
    v = stats.verdicts(final, reference, higher_is_better=False, alpha=alpha)
    for test in v["tests"]:
        if reference is not None:
            rows[test["a"]][f"{metric}_minus_reference"] = test
    for init, row in rows.items():
        verdict = v["verdict"][init]
        if not np.isfinite(final[init]).any():
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


def summarize_aggregate(
    table, alpha: float = 0.05, taus=None, metric: str = "test_accuracy", task: str = "activation"
) -> dict:
    """rliable's aggregates of the final ``metric`` (test accuracy) across tasks (the
    ``task`` column's values × seeds).

    Per initializer: mean, median, IQM and optimality gap (γ = 1: the mean error rate) with
    95 % stratified bootstrap CIs; for every ordered pair the probability of improvement
    P(X > Y) with Newcombe's score CI; performance profiles (fraction of runs with accuracy
    > τ) with bands; and all-pairs verdicts (exact sign-flip permutation tests of the
    seed-paired differences stratified over tasks, Holm-adjusted over every pair at
    ``alpha``).
    """
    acc = table[table.metric == metric]
    acc = acc[acc.step == acc.step.max()]
    tasks = list(dict.fromkeys(acc[task]))
    scores = {}  # init -> (tasks, seeds), seeds matched across inits
    for init, t in acc.groupby("init", sort=False):
        wide = t.pivot(index=task, columns="seed", values="value")
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
        "score": "final " + metric.replace("_", " "),
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


class _TableLine(str):
    """A line of a table: already fitted to the width, never wrapped again."""


def _table(rows: list[tuple[str, ...]], width: int | None = None) -> list[str]:
    """A header row and its rows as lines at most ``width`` wide (NaN shown as "—")."""
    return [_TableLine(ln) for ln in _fit_table(rows[0], rows[1:], width).splitlines()]


def _wrap(lines: list[str], width: int | None) -> str:
    """The report's lines, those of its prose longer than ``width`` wrapped to it."""
    width = terminal_width(width)
    out: list[str] = []
    for text in lines:
        if isinstance(text, _TableLine):
            out.append(text)
            continue
        for line in text.split("\n"):
            out.append(line if len(line) <= width else paragraph(line, width, indent="  "))
    return "\n".join(out)


def _read(fields: dict, missing: float = np.nan) -> dict:
    """A summary's numbers as read back from ``summary.json`` (:func:`json_safe` wrote a
    non-finite number as ``None``): ``None`` as ``missing`` (``inf`` for a step count
    never reached, NaN otherwise)."""
    return {k: missing if v is None else v for k, v in fields.items()}


def _steps_cell(t) -> str:
    """Steps to target: "not reached" alone when no seed reached it."""
    return "not reached" if t.fraction == 0 else cell(t)


def _label(metric: str) -> str:
    """A metric's column header: ``test_accuracy`` -> "test acc"."""
    return metric.replace("_", " ").replace("accuracy", "acc")


def format_summary(summary: dict, width: int | None = None) -> str:
    """The text of a report's summary (:attr:`Report.summary`, or a ``jaxinit compare``
    summary, e.g. read back from its ``summary.json``): per task, a table of steps to
    target, final metrics with their intervals and verdicts; then the aggregates, notes and
    the report's error rate. Lines are at most ``width`` characters (default: the
    terminal's, or ``COLUMNS``); a value that is not a number reads "—"."""
    lines = []
    verdict_metric = summary.get("verdict_metric") or "test_loss"
    for act, s in _tasks(summary).items():
        target = s.get("target")
        what = f"steps to train loss ≤ {target} and final metrics" if target is not None else (
            "final metrics"
        )  # fmt: skip
        lines.append(f"\n{act}: {what} (mean [95% CI] over seeds)")
        ref = s.get("reference")
        pair = ("train_loss", verdict_metric, verdict_metric.replace("loss", "accuracy"))
        shown = [m for m in dict.fromkeys(pair) if any(m in r for r in s["inits"].values())]
        header = ("init", "steps to target" if target is not None else "",
                  *(_label(m) for m in shown),
                  f"{_label(verdict_metric)} − {ref}" if ref else "", "p (Holm)" if ref else "",
                  "verdict")  # fmt: skip
        rows = [header]
        for init, r in s["inits"].items():
            steps = (
                _steps_cell(stats.TimeToTarget(**_read(r["steps_to_target"], np.inf)))
                if target is not None
                else ""
            )
            est = [str(stats.Estimate(**_read(r[m]))) if m in r else "" for m in shown]
            verdict = r["verdict"] + (
                f" ({r['diverged_seeds']} diverged)" if r["diverged_seeds"] else ""
            )
            d = r.get(f"{verdict_metric}_minus_reference")
            d = d and _read(d)
            diff = f"{d['diff']:+.3g} [{d['lo']:+.3g}, {d['hi']:+.3g}]" if d else ""
            p = f"{d['p_holm']:.2g}" if d and np.isfinite(d["p_holm"]) else ""
            rows.append((init, steps, *est, diff, p, verdict))
        keep = [i for i, h in enumerate(header) if h]  # no reference: no difference columns
        lines += _table([tuple(r[i] for i in keep) for r in rows], width)
        lines.append(f"verdicts: {s['procedure']}")
        chosen = _chosen(s)
        if chosen:
            lines.append(f"{act}: hyperparameters of each init, chosen on validation (lowest mean"
                         f" final val_loss): {chosen}")  # fmt: skip
        if not s.get("reachable", True):
            lines.append(_unreachable(s))
    if "aggregate" in summary:
        lines += format_aggregate(summary["aggregate"], width)
    for note in summary.get("notes", ()):
        lines.append(f"\nnote: {note}")
    if "error_rate" in summary:
        lines.append(f"\nerror rate: {summary['error_rate']['procedure']}")
    return _wrap(lines, width)


def _chosen(s: dict) -> str:
    """A task's hyperparameter values chosen per init (a report's ``best_hparams``, or a
    ``jaxinit compare`` summary's ``learning_rates``) as text; "" when none were chosen."""
    chosen = s.get("best_hparams") or {
        init: {"learning_rate": v} for init, v in s.get("learning_rates", {}).items()
    }
    return "; ".join(
        f"{init} " + ", ".join(f"{h} {cell(v, 'g')}" for h, v in values.items())
        for init, values in chosen.items()
    )


def _tasks(summary: dict) -> dict:
    """A summary's tasks: a report's ``tasks``, or a ``jaxinit compare`` summary's
    ``activations``."""
    return summary.get("tasks", summary.get("activations", {}))


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
        cells = [
            str(stats.Interval(**_read(m[k]))) for k in ("mean", "median", "iqm", "optimality_gap")
        ]
        rows.append((init, *cells, agg["verdict"][init]))
    lines += _table(rows, width)
    if not agg.get("reachable", True):
        lines.append(_unreachable(agg))
    names = list(agg["metrics"])
    poi = {(r["x"], r["y"]): r for r in agg["probability_of_improvement"]}
    lines.append(f"\nprobability of improvement P(row > column) in {agg['score']} "
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


def _curves_figure(table, summary: dict, task: str, title: str = "{}") -> Any:
    """Mean train loss with 95 % bootstrap bands over seeds, one panel per task; each
    scheme its own dashes and markers (curves that coincide stay distinguishable), the
    legend beside the axes."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    tasks = list(_tasks(summary))
    fig = Figure(figsize=(6 * len(tasks) + 1.5, 4.2))
    axes = fig.subplots(1, len(tasks), squeeze=False)
    styles = ("-", "--", "-.", ":")
    markers = ("o", "s", "^", "v", "D", "x", "+", "*")
    for ax, name in zip(axes[0], tasks, strict=True):
        t = table[(table[task] == name) & (table.metric == "train_loss")]
        seeds = t.seed.nunique()
        for i, (init, g) in enumerate(t.groupby("init", sort=False)):
            wide = g.pivot(index="seed", columns="step", values="value")
            mean, lo, hi = stats.curve_band(np.where(np.isfinite(wide), wide, np.nan))
            line = ax.plot(wide.columns, mean, label=init, ls=styles[i % len(styles)],
                           marker=markers[i % len(markers)], ms=4, mfc="none",
                           markevery=(i % 5 / 5 * 0.1, 0.1))[0]  # fmt: skip
            ax.fill_between(wide.columns, lo, hi, color=line.get_color(), alpha=0.2)
        target = _tasks(summary)[name].get("target")
        if target is not None:
            ax.axhline(target, color="k", ls=":", lw=1, label=f"target {target:g}")
        ax.set(title=f"{title.format(name)}: mean over {seeds} seeds, band 95% bootstrap CI",
               xlabel="step", ylabel="train loss", yscale="log")  # fmt: skip
        ax.title.set_fontsize(9)
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _profiles_figure(agg: dict) -> Any:
    """Performance profiles of the final accuracy (all tasks) with bootstrap bands: the
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
            taus[keep], ax=ax, xlabel=f"{agg['score']} τ",
        )  # fmt: skip
    runs = "/".join(map(str, sorted(set(agg["runs_per_task"].values()))))
    axes[0].set_title(f"{len(agg['tasks'])} task(s) × {runs} seeds; band: 95% stratified"
                      " bootstrap CI", fontsize=9)  # fmt: skip
    axes[1].set_title(f"zoom: τ ≥ {taus[zoom].min():.3f}", fontsize=9)
    fig.tight_layout()
    return fig


def _support(metric: str) -> tuple[float, float]:
    """The values a final metric can take: accuracies in [0, 1], losses in [0, inf)."""
    return (0.0, 1.0) if metric.endswith("accuracy") else (0.0, np.inf)
