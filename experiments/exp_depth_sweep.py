"""Depth sweep: steps to a target train loss vs depth, for every scheme and activation.

Expected (the consensus of Glorot & Bengio 2010, He et al. 2015 and the mean-field analysis
of Schoenholz et al. 2017; no single published number): an init that preserves the signal
variance for its activation — He for ReLU, Glorot / LeCun for tanh — trains at every depth,
fixed-scale schemes (Keras random normal/uniform, std 0.05) degrade with depth, and all-zero
weights never train (every hidden unit stays identical and the gradient to all but the last
layer is zero).

Here: MLPs of width 32 on scikit-learn digits, SGD with momentum, several seeds; a cell is
the Kaplan–Meier median of the first logged step with train loss ≤ target (censored members
are not counted as reaching it); "—" marks a median that was not reached.

Run: ``python experiments/exp_depth_sweep.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from _common import (  # isort: skip
    config, entry, figure, legend_outside, parse, report, save_figure, sgd, times_panel, times_to,
    ttt,
)  # fmt: skip

SCHEMES = ("zeros", "random_normal", "random_uniform", "glorot_uniform", "glorot_normal",
           "he_uniform", "he_normal", "lecun_normal")  # fmt: skip
MATCHED = {"relu": ("he_normal", "he_uniform"), "tanh": ("glorot_normal", "glorot_uniform",
                                                           "lecun_normal")}  # fmt: skip


@dataclass(frozen=True)
class Config:
    schemes: tuple[str, ...] = SCHEMES
    activations: tuple[str, ...] = ("relu", "tanh")
    depths: tuple[int, ...] = (2, 4, 8, 16, 32)
    width: int = 32
    seeds: int = 3
    steps: int = 600
    batch_size: int = 64
    lr: float = 0.01
    target: float = 0.3


QUICK = Config(depths=(2, 4), width=16, seeds=2, steps=20, batch_size=32, target=2.0)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(__doc__, "depth_sweep", argv)
    cfg = config(args, Config(), QUICK)
    started = time.perf_counter()
    from jaxinit import MLP, Study, run_study
    from jaxinit.study import digits

    data = digits()
    res = {a: {s: {} for s in cfg.schemes} for a in cfg.activations}
    per_seed = {a: {s: [] for s in cfg.schemes} for a in cfg.activations}  # (depths, seeds)
    for act in cfg.activations:
        for depth in cfg.depths:
            study = Study(model=MLP((cfg.width,) * depth + (10,), act), dataset=data,
                          optimizer=sgd(cfg.lr), inits={s: s for s in cfg.schemes},
                          seeds=cfg.seeds, steps=cfg.steps, batch_size=cfg.batch_size,
                          log_every=10 if cfg.steps >= 100 else 5)  # fmt: skip
            t = times_to(run_study(study, key=0).table, cfg.target)
            for s in cfg.schemes:
                res[act][s][depth] = ttt(t[s])
                per_seed[act][s].append(t[s])
    keys = [(a, s) for a in cfg.activations for s in cfg.schemes]
    med = np.array([[res[a][s][d]["median"] for d in cfg.depths] for a, s in keys])
    frac = np.array([[res[a][s][d]["fraction"] for d in cfg.depths] for a, s in keys])
    header = f"{'activation/scheme':28s}" + "".join(f"{d:>12d}" for d in cfg.depths)
    print(f"median steps to train loss ≤ {cfg.target} (fraction of seeds reaching it)\n{header}")
    for (a, s), m, f in zip(keys, med, frac, strict=True):
        cells = "".join(
            f"{('—' if not np.isfinite(x) else f'{x:.0f}') + f' ({p:.0%})':>12s}"
            for x, p in zip(m, f, strict=True)
        )
        print(f"{a + '/' + s:28s}{cells}")

    claims = []
    for act in cfg.activations:
        ok = [s for s in MATCHED[act] if s in cfg.schemes]
        reached = all(res[act][s][d]["fraction"] >= 0.5 for s in ok for d in cfg.depths)
        claims.append({
            "claim": f"{act}: the variance-preserving schemes ({', '.join(ok)}) train at every"
            " depth",
            "measured": "fraction of seeds reaching the target per depth: " + "; ".join(
                f"{s} {[round(res[act][s][d]['fraction'], 2) for d in cfg.depths]}" for s in ok),
            "agrees": bool(reached),
        })  # fmt: skip
    if "zeros" in cfg.schemes:
        z = [res[a]["zeros"][d]["fraction"] for a in cfg.activations for d in cfg.depths]
        claims.append({"claim": "all-zero weights never train",
                       "measured": f"largest fraction of seeds reaching the target: {max(z):.0%}",
                       "agrees": bool(max(z) == 0)})  # fmt: skip

    fig, axes = figure(len(cfg.activations), figsize=(5.5 * len(cfg.activations) + 2, 4.4))
    for ax, act in zip(axes, cfg.activations, strict=True):
        times_panel(ax, cfg.depths, {s: np.array(per_seed[act][s]).T for s in cfg.schemes},
                    {s: [res[act][s][d]["median"] for d in cfg.depths] for s in cfg.schemes},
                    budget=cfg.steps)  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="hidden layers", ylabel="steps to target",
               title=f"{act} MLP, width {cfg.width}")  # fmt: skip
        ax.set_xticks(cfg.depths, [str(d) for d in cfg.depths])
        ax.minorticks_off()
    legend_outside(axes[-1])
    fig.suptitle(f"steps to train loss ≤ {cfg.target}: bold Kaplan–Meier median over"
                 f" {cfg.seeds} seeds, thin lines each seed")  # fmt: skip
    save_figure(fig, f"{args.out}/depth_sweep.png")
    payload = {"config": cfg.__dict__, "steps_to_target": res}
    return report(args, "Depth sweep", payload, claims, started)


if __name__ == "__main__":
    entry(main)
