"""Results: the metric names, the tidy table (``[model,] init, seed, <hparams>, step,
metric, value``), diverged members, and :class:`StudyResult` with its selection helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxinit.study._io import _atomic_write

METRICS = ("train_loss", "train_accuracy", "grad_norm", "param_norm")


EVAL_METRICS = ("test_loss", "test_accuracy")


VAL_METRICS = ("val_loss", "val_accuracy")


@dataclass
class StudyResult:
    """Results in one tidy table (``init, seed, step, metric, value``).

    ``diverged`` lists the members whose train loss became NaN or infinite, with the first
    logged step at which it did; their rows stay in ``table`` (values NaN/inf).

    An architecture sweep (``Study(model={"w64": ..., "w256": ...})``) adds a first column
    ``model`` (``models`` holds its names in the study's order); :meth:`metric`,
    :meth:`best_hparams`, :meth:`at_best_hparams` and ``diverged`` group by it too.

    Example:
      :func:`jaxinit.run_study` returns one; here one is made from a table of that form:

      >>> import pandas as pd
      >>> table = pd.DataFrame({"init": ["he"] * 4 + ["lecun"] * 4, "seed": [0, 0, 1, 1] * 2,
      ...                       "step": [0, 10] * 4, "metric": "train_loss",
      ...                       "value": [2.3, 1.1, 2.3, 1.3, 2.3, 1.4, 2.3, 1.6]})
      >>> result = jaxinit.StudyResult(table)
      >>> result.metric("train_loss")  # one row per member, one column per logged step
      step         0    10
      init  seed
      he    0     2.3  1.1
            1     2.3  1.3
      lecun 0     2.3  1.4
            1     2.3  1.6
      >>> result.metric("train_loss")[10].groupby("init").mean().round(3).to_dict()
      {'he': 1.2, 'lecun': 1.5}
    """

    table: Any  # pandas.DataFrame
    diverged: Any = None  # pandas.DataFrame: init, seed, step
    seconds: float = 0.0
    info: dict = field(default_factory=dict)
    hparams: tuple[str, ...] = ()  # the table's hyperparameter columns
    models: tuple[str, ...] = ()  # an architecture sweep's names (the ``model`` column)

    @property
    def _groups(self) -> list[str]:
        """The columns a population is split by before seeds: ``[model,] init``."""
        return ["model", "init"] if self.models else ["init"]

    def to_csv(self, path: str | os.PathLike) -> None:
        _atomic_write(path, self.table.to_csv(index=False).encode())

    def metric(self, name: str) -> Any:
        """Rows of one metric as a wide frame: index ([model,] init, seed, hparams...),
        columns step."""
        metrics = sorted(set(self.table.metric))
        if name not in metrics:
            raise ValueError(f"StudyResult.metric: no {name!r} rows; the metrics are {metrics}")
        t = self.table[self.table.metric == name]
        index = [*self._groups, "seed", *self.hparams]
        return t.pivot_table(index=index, columns="step", values="value")

    def best_hparams(self, metric: str = "val_loss", mode: str | None = None) -> Any:
        """Per initializer (and architecture, in a sweep), the hyperparameter values with the
        best mean (over seeds) final ``metric``, selected on the validation split
        (``Study(validation=...)``).

        Args:
          metric: a ``val_*`` metric; test metrics are refused (selecting on the test split
            biases the comparison it reports).
          mode: ``"min"`` or ``"max"``; default ``"max"`` for accuracies, else ``"min"``.

        Returns:
          A frame ``[model,] init, <hparams...>, <metric>``, one row per initializer (per
          architecture and initializer in a sweep). A member that diverged (non-finite
          value) counts as the worst value.

        A best value at the smallest or largest of its grid may mean the optimum lies
        beyond the grid: :meth:`report` notes each such value (for grids of ≥ 3 values).
        """
        fn = "StudyResult.best_hparams"
        if metric.startswith("test"):
            raise ValueError(
                f"{fn}: metric={metric!r} is a test metric; select on the validation split"
                " (Study(validation=0.1) records val_loss and val_accuracy)"
            )
        if metric not in set(self.table.metric):
            raise ValueError(
                f"{fn}: no {metric!r} rows; the table has {sorted(set(self.table.metric))}"
                " (Study(validation=...) records val_loss and val_accuracy)"
            )
        if mode is None:
            mode = "max" if metric.endswith("accuracy") else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"{fn}: mode={mode!r}; allowed: 'min', 'max'")
        t = self.table[self.table.metric == metric]
        t = t[t.step == t.step.max()]
        worst = np.inf if mode == "min" else -np.inf
        t = t.assign(value=np.where(np.isfinite(t.value), t.value, worst))
        means = t.groupby([*self._groups, *self.hparams], sort=False).value.mean().reset_index()
        by_init = means.groupby(self._groups, sort=False).value
        best = by_init.idxmin() if mode == "min" else by_init.idxmax()
        return means.loc[best.to_numpy()].rename(columns={"value": metric}).reset_index(drop=True)

    def report(
        self,
        target: float | None = None,
        reference: str | None = None,
        alpha: float = 0.05,
        task: str | None = None,
    ) -> Any:
        """The study's :class:`Report` (tables, verdicts, aggregates, figures): see
        :func:`jaxinit.study.report`, which this calls."""
        from jaxinit.study._report import report

        return report(self, target=target, reference=reference, alpha=alpha, task=task)

    def at_best_hparams(self, metric: str = "val_loss", mode: str | None = None) -> Any:
        """The table's rows of each initializer at its :meth:`best_hparams` values."""
        keys = [*self._groups, *self.hparams]
        return self.table.merge(self.best_hparams(metric, mode)[keys], on=keys)


# Rows are float arrays (member, step, metric index, value) until the end; ``member`` is
# the index in the whole population (a batch's rows are offset by its first member).
def _train_rows(metrics: np.ndarray, steps: np.ndarray, offset: int = 0) -> np.ndarray:
    m, t, k = metrics.shape
    member = np.broadcast_to(offset + np.arange(m)[:, None, None], (m, t, k))
    step = np.broadcast_to(steps[None, :, None], (m, t, k))
    metric = np.broadcast_to(np.arange(k)[None, None, :], (m, t, k))
    return np.stack([member, step, metric, metrics], -1).reshape(-1, 4).astype(np.float64)


def _value_rows(values: np.ndarray, step: int, n_members: int, offset: int, first: int):
    """Tidy rows ``(member, step, metric index, value)`` of evaluation values (members,
    metrics); ``first`` is the index of the loss metric's name."""
    values = np.asarray(values, np.float64)[:n_members]
    m, k = values.shape
    member = np.broadcast_to(offset + np.arange(m)[:, None], (m, k))
    metric = np.broadcast_to(first + np.arange(k)[None, :], (m, k))
    return np.stack([member, np.full((m, k), step), metric, values], -1).reshape(-1, 4)


def _table(
    records: list[np.ndarray],
    members: list[tuple],
    metric_names: list,
    hp_names: tuple,
    grid: list,
    models: tuple[str, ...] = (),
) -> Any:
    """The tidy table: ``init, seed, <one column per hyperparameter>, step, metric, value``.

    With ``models`` (an architecture sweep) ``members`` is one architecture's population;
    member ``i`` of the whole study is ``members[i % len(members)]`` of architecture
    ``models[i // len(members)]``, and the table starts with a ``model`` column."""
    import pandas as pd

    rows = np.concatenate(records)
    member, arch = rows[:, 0].astype(int), np.zeros(len(rows), int)
    if models:
        member, arch = member % len(members), member // len(members)
    metric = rows[:, 2].astype(int)
    step = rows[:, 1].astype(int)
    init_names = sorted({m[0] for m in members})
    init = np.asarray([init_names.index(m[0]) for m in members])[member]
    seed = np.asarray([m[1] for m in members], np.int64)[member]
    h = np.asarray([m[2] for m in members], np.int64)[member]
    hp = np.asarray(grid, np.float64).reshape(len(grid), len(hp_names))[h]
    metric_rank = np.argsort(np.argsort(np.asarray(metric_names), kind="stable"))[metric]
    # sorted by model, init, seed, hyperparameters, metric (names alphabetically), step
    keys = [step, metric_rank, *hp.T[::-1], seed, init]
    if models:
        keys.append(np.argsort(np.argsort(np.asarray(models), kind="stable"))[arch])
    order = np.lexsort(keys)
    columns = {
        **({"model": np.asarray(models, object)[arch[order]]} if models else {}),
        "init": np.asarray(init_names, object)[init[order]],
        "seed": seed[order],
        **{name: hp[order, j] for j, name in enumerate(hp_names)},
        "step": step[order],
        "metric": np.asarray(metric_names, object)[metric[order]],
        "value": rows[order, 3],
    }
    return pd.DataFrame(columns)


def _diverged(table: Any, hp_names: tuple = ()) -> Any:
    import pandas as pd

    keys = [*(["model"] if "model" in table.columns else []), "init", "seed", *hp_names]
    if np.isfinite(table["value"].to_numpy()).all():
        return pd.DataFrame({**{k: [] for k in keys}, "step": []})
    loss = table[table.metric == "train_loss"]
    bad = loss[~np.isfinite(loss.value)]
    if bad.empty:
        return pd.DataFrame({**{k: [] for k in keys}, "step": []})
    return bad.groupby(keys, as_index=False)["step"].min()
