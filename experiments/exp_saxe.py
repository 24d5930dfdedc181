"""Saxe et al. 2013: deep linear nets, learning time vs depth, scaled Gaussian vs orthogonal.

Published (Saxe, McClelland & Ganguli 2013, §5 and Fig. 6): in deep linear networks the
learning time (epochs to a loss threshold, learning rate tuned per depth) grows with depth
for scaled random Gaussian init and is depth-independent for random orthogonal init.

Here (differences from the paper): a linear teacher task (:func:`jaxinit.linear_teacher`,
32 → 32, singular values spread over a decade), bias-free linear MLPs of width 32, full-batch
gradient descent with learning rate ``lr / depth`` (the scaling under which the product's
effective step is depth-independent), scaled Gaussian = LeCun normal N(0, 1/fan_in) (a
truncated normal), orthogonal gain 1; time = first logged step with train loss ≤ ``target``
× the loss of the zero predictor (Kaplan–Meier median over seeds; censored members are not
counted as reaching it).

Run: ``python experiments/exp_saxe.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from _common import (  # isort: skip
    config, entry, figure, fmt_t, legend_outside, parse, report, save_figure, table_text,
    times_panel, times_to, ttt,
)  # fmt: skip

INITS = {"scaled_gaussian": "lecun_normal", "orthogonal": "orthogonal"}


@dataclass(frozen=True)
class Config:
    depths: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    width: int = 32
    seeds: int = 4
    steps: int = 2000
    lr: float = 0.1  # divided by depth; 0.5 oscillates at depth 4, diverges at 16 (measured)
    target: float = 0.05  # fraction of the zero predictor's loss


QUICK = Config(depths=(1, 4, 8), seeds=2, steps=40, target=0.5)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(__doc__, "saxe", argv)
    cfg = config(args, Config(), QUICK)
    started = time.perf_counter()
    import optax

    from jaxinit import MLP, Study, linear_teacher, run_study

    data = linear_teacher(cfg.width, cfg.width, seed=0)
    zero_loss = float(0.5 * np.mean(np.sum(data.y_train**2, axis=1)))
    target = cfg.target * zero_loss
    res = {name: {} for name in INITS}
    per_seed = {name: [] for name in INITS}  # (depths, seeds) steps to target, inf: never
    rows = [("depth", *INITS)]
    for depth in cfg.depths:
        study = Study(
            model=MLP((cfg.width,) * depth, "linear", use_bias=False), dataset=data,
            optimizer=optax.sgd(cfg.lr / depth), inits=INITS, seeds=cfg.seeds,
            steps=cfg.steps, batch_size=len(data.x_train), log_every=10 if cfg.steps >= 100 else 5,
            fixed_data_order=True,
        )  # fmt: skip
        t = times_to(run_study(study, key=0).table, target)
        for name in INITS:
            res[name][depth] = ttt(t[name])
            per_seed[name].append(t[name])
        rows.append((depth, *(fmt_t(res[n][depth]) for n in INITS)))
    print(f"steps to train loss ≤ {target:.3g} ({cfg.target} × zero-predictor loss)")
    print(table_text(rows))

    def slope(name):  # log-log slope of the median time vs depth over the depths reached
        d = np.array([k for k, v in res[name].items() if np.isfinite(v["median"])], float)
        m = np.array([v["median"] for v in res[name].values() if np.isfinite(v["median"])])
        return float(np.polyfit(np.log(d), np.log(m), 1)[0]) if len(d) >= 2 else float("nan")

    sg, so = slope("scaled_gaussian"), slope("orthogonal")
    orth = [v["median"] for v in res["orthogonal"].values()]
    gauss = [v["median"] for v in res["scaled_gaussian"].values()]
    flat = bool(np.all(np.isfinite(orth)) and max(orth) <= 2 * min(orth))
    claims = [
        {
            "claim": "orthogonal init: learning time is depth-independent",
            "measured": f"median steps {orth} over depths {list(cfg.depths)}; log-log slope"
            f" {so:.2f}; agrees if all reached and max ≤ 2 × min",
            "agrees": flat,
        },
        {
            "claim": "scaled Gaussian init: learning time grows with depth",
            "measured": f"median steps {gauss}; log-log slope {sg:.2f} (orthogonal {so:.2f});"
            " agrees if the deepest is slower than the shallowest (or never reached) and the"
            " slope exceeds orthogonal's",
            "agrees": bool(gauss[-1] > gauss[0] and (not np.isfinite(sg) or sg > so)),
        },
    ]
    fig, (ax,) = figure(1, figsize=(7.5, 4.2))
    times_panel(ax, cfg.depths, {n: np.array(per_seed[n]).T for n in INITS},
                {n: [res[n][d]["median"] for d in cfg.depths] for n in INITS},
                budget=cfg.steps)  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="depth (layers)", ylabel="steps to target",
           title=f"Deep linear nets, lr = {cfg.lr}/depth\nbold: Kaplan–Meier median over"
           f" {cfg.seeds} seeds; thin: each seed")  # fmt: skip
    ax.set_xticks(cfg.depths, [str(d) for d in cfg.depths])
    ax.minorticks_off()
    legend_outside(ax, fontsize=8)
    save_figure(fig, f"{args.out}/saxe.png")
    payload = {"config": cfg.__dict__, "target_loss": target, "steps_to_target": res,
               "loglog_slope": {"scaled_gaussian": sg, "orthogonal": so}}  # fmt: skip
    return report(args, "Saxe et al. 2013", payload, claims, started)


if __name__ == "__main__":
    entry(main)
