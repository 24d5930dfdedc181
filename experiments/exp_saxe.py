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
from _common import config, entry, fmt_t, parse, pyplot, report, table_text, times_to, ttt

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
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name in INITS:
        med = np.array([res[name][d]["median"] for d in cfg.depths])
        lo = np.array([res[name][d]["lo"] for d in cfg.depths])
        hi = np.array([res[name][d]["hi"] for d in cfg.depths])
        # Error bars only where the median and its bound were reached (censored: none).
        ok = np.isfinite(med)
        lo, hi = np.where(ok & np.isfinite(lo), lo, 0), np.where(ok & np.isfinite(hi), hi, 0)
        med0 = np.where(ok, med, 0)
        top = cfg.steps * 1.5  # censored (never reached) drawn at the top, open marker
        ax.errorbar(cfg.depths, np.where(np.isfinite(med), med, top),
                    yerr=[np.where(ok & (lo > 0), med0 - lo, 0), np.where(ok & (hi > 0), hi - med0, 0)],
                    marker="o", capsize=3, label=name)  # fmt: skip
    ax.axhline(cfg.steps * 1.5, color="k", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="depth (layers)", ylabel="steps to target",
           title=f"Deep linear nets, lr = {cfg.lr}/depth (top line: not reached)")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{args.out}/saxe.png", dpi=110)
    plt.close(fig)
    payload = {"config": cfg.__dict__, "target_loss": target, "steps_to_target": res,
               "loglog_slope": {"scaled_gaussian": sg, "orthogonal": so}}  # fmt: skip
    return report(args, "Saxe et al. 2013", payload, claims, started)


if __name__ == "__main__":
    entry(main)
