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
import dataclasses
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from jaxinit.cli._interrupt import Interrupt
from jaxinit.study import Report, StudyResult, json_safe, report
from jaxinit.study import format_summary as format_summary  # the report's text

REPORT_ALPHA = 0.05  # the chance of any false verdict in the whole report

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
    grids: list = []
    log_every = max(10, cfg.steps // 100 // 10 * 10)
    if interrupt is None:
        interrupt = Interrupt()  # never set: no handler is installed
    # a study interrupted while it writes a checkpoint leaves its temporary file: remove it
    interrupt.on_exit(lambda: _remove_temporaries(cfg))
    for act in cfg.activations:
        interrupt.check()
        try:
            grid = _run_one(cfg, act, data, log_every, progress, optimizer, hparams, validation)
        except KeyboardInterrupt:
            _remove_temporaries(cfg)
            raise
        grids.append(grid)
    interrupt.check()
    # one report of every activation (the tasks); with a rate grid each init at its own
    # best rate (mean final val_loss), never chosen on test. results.csv: with a rate grid,
    # every rate's rows (learning_rate column); the summary and the plots use the chosen rate
    rep = compare_report(cfg, pd.concat(grids, ignore_index=True), bool(hparams))
    summary = rep.summary
    _write_outputs(cfg, rep, summary, interrupt)
    if not cfg.keep_checkpoints:
        for act in cfg.activations:
            _remove_study_folder(os.path.join(cfg.out, act))
    return summary


def compare_report(cfg: CompareConfig, table, grid: bool) -> Report:
    """The comparison's :class:`jaxinit.study.Report` of its table (every activation's rows,
    an ``activation`` column; with a rate grid every rate's), its summary as ``jaxinit
    compare`` writes it: ``config``, then per activation (``activations``; the chosen
    ``learning_rates`` with a grid), the report's ``error_rate``, ``aggregate`` and
    ``notes``."""
    result = StudyResult(table, hparams=("learning_rate",) if grid else ())
    rep = report(result, target=cfg.target, reference=cfg.reference, alpha=REPORT_ALPHA,
                 task="activation")  # fmt: skip
    s = rep.summary
    activations = s["tasks"]
    for part in activations.values():
        if "best_hparams" in part:
            chosen = part.pop("best_hparams")
            part["learning_rates"] = {i: v["learning_rate"] for i, v in chosen.items()}
    summary = {"config": asdict(cfg), "activations": activations, "error_rate": s["error_rate"]}
    summary.update({k: s[k] for k in ("aggregate", "notes") if k in s})
    return dataclasses.replace(rep, summary=summary)


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
    """One activation's study: its table (every rate's rows with a rate grid), with an
    ``activation`` column."""
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
    return result.table.assign(activation=act)


OUTPUTS = ("results.csv", "summary.json", "loss_curves.png", "profiles.png")


def _write_outputs(cfg: CompareConfig, rep: Report, summary: dict, interrupt) -> None:
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
        rep.results.to_csv(partial("results.csv"), index=False)
        with open(partial("summary.json"), "w") as f:
            json.dump(json_safe(summary), f, indent=2, allow_nan=False)
        for name, fig in rep.figures(title="{} MLP").items():
            fig.savefig(partial(f"{name}.png"), dpi=120)
        interrupt.check()
        with interrupt.deferred():
            for name in OUTPUTS:
                os.replace(partial(name), os.path.join(cfg.out, name))
    finally:
        remove_partials()
