"""Klambauer et al. 2017: deep SELU nets with LeCun normal init are self-normalizing.

Published (Klambauer et al. 2017, "Self-Normalizing Neural Networks"): with SELU and weights
N(0, 1/fan_in) (LeCun normal), activations keep mean 0 and variance 1 through depth (a
stable, attracting fixed point); deep SNNs train where plain deep ReLU nets struggle.

Here (differences from the paper): MLPs of width 64 on scikit-learn digits (the paper: 121
UCI tasks, up to 32 layers, no alpha-dropout here), SGD with momentum, several seeds,
SELU + LeCun normal vs ReLU + He normal at the same depth; layer statistics measured at init
on 256 standardised training inputs.

Run: ``python experiments/exp_selu.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from _common import (  # isort: skip
    config, entry, est, figure, final, fmt, fmt_t, layer_stats, legend_outside, parse, report,
    save_figure, seed_lines, sgd, table_text, times_to, ttt, diverged,
)  # fmt: skip

NETS = {"selu+lecun_normal": ("selu", "lecun_normal"), "relu+he_normal": ("relu", "he_normal")}


@dataclass(frozen=True)
class Config:
    depth: int = 32
    width: int = 64
    seeds: int = 4
    steps: int = 1500
    batch_size: int = 64
    lr: float = 0.003  # at 0.01 (momentum 0.9) neither net reaches the target (measured)
    target: float = 0.1  # train loss


QUICK = Config(depth=8, width=16, seeds=2, steps=20, batch_size=32, target=2.0)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(__doc__, "selu", argv)
    cfg = config(args, Config(), QUICK)
    started = time.perf_counter()
    import jax
    import jax.numpy as jnp

    from jaxinit import MLP, Study, get, run_study
    from jaxinit.study import digits

    data = digits()
    x = jnp.asarray(data.x_train[:256])
    res, stats = {}, {}
    rows = [("net", "steps to target", "final train loss", "test acc", "last-layer mean",
             "last-layer var")]  # fmt: skip
    for label, (act, init) in NETS.items():
        study = Study(model=MLP((cfg.width,) * cfg.depth + (10,), act), dataset=data,
                      optimizer=sgd(cfg.lr), inits={label: init}, seeds=cfg.seeds,
                      steps=cfg.steps, batch_size=cfg.batch_size,
                      log_every=10 if cfg.steps >= 100 else 5)  # fmt: skip
        r = run_study(study, key=0)
        means, variances = [], []
        for s in range(cfg.seeds):
            model = MLP((cfg.width,) * cfg.depth + (10,), act, kernel_init=get(init))
            m, v = layer_stats(model, model.init(jax.random.key(s), x[:1])["params"], x, act)
            means.append(m)
            variances.append(v)
        stats[label] = (np.array(means), np.array(variances))  # (seeds, layers)
        res[label] = {
            "steps_to_target": ttt(times_to(r.table, cfg.target)[label]),
            "final_train_loss": est(final(r.table, "train_loss")[label]),
            "test_accuracy": est(final(r.table, "test_accuracy")[label]),
            "last_layer_mean": est(stats[label][0][:, -1]),
            "last_layer_var": est(stats[label][1][:, -1]),
            "layer_mean": stats[label][0].mean(0).tolist(),
            "layer_var": stats[label][1].mean(0).tolist(),
            "diverged": diverged(r),
        }
        rr = res[label]
        rows.append((label, fmt_t(rr["steps_to_target"]), fmt(rr["final_train_loss"]),
                     fmt(rr["test_accuracy"]), fmt(rr["last_layer_mean"]),
                     fmt(rr["last_layer_var"])))  # fmt: skip
    print(table_text(rows))
    s, rl = res["selu+lecun_normal"], res["relu+he_normal"]
    sm, sv = s["last_layer_mean"]["mean"], s["last_layer_var"]["mean"]
    st, rt = s["steps_to_target"], rl["steps_to_target"]
    claims = [
        {
            "claim": "SELU + LeCun normal keeps activations at mean 0, variance 1 through depth",
            "measured": f"layer {cfg.depth}: mean {fmt(s['last_layer_mean'])}, variance"
            f" {fmt(s['last_layer_var'])}; agrees if |mean| ≤ 0.1 and |var − 1| ≤ 0.15",
            "agrees": bool(abs(sm) <= 0.1 and abs(sv - 1) <= 0.15),
        },
        {
            "claim": "deep SNNs train where plain deep ReLU nets struggle",
            "measured": f"steps to loss {cfg.target}: SELU {fmt_t(st)}, ReLU+He {fmt_t(rt)};"
            " agrees if SELU reaches it in ≥ half the seeds and ReLU+He later or not at all",
            "agrees": bool(st["fraction"] >= 0.5 and rt["median"] > st["median"]),
        },
    ]
    fig, (a0, a1) = figure(2, figsize=(11.5, 4.2))
    layers = np.arange(1, cfg.depth + 1)
    for i, (label, (m, v)) in enumerate(stats.items()):
        seed_lines(a0, layers, m, label, i)
        seed_lines(a1, layers, v, label, i)
    a0.axhline(0, color="k", ls=":", lw=1, label="SNN fixed point (mean 0, variance 1)")
    a1.axhline(1, color="k", ls=":", lw=1)
    a0.set(xlabel="hidden layer", ylabel="activation mean at init", title="mean (SNN: 0)")
    a1.set(xlabel="hidden layer", ylabel="activation variance at init", title="variance (SNN: 1)",
           yscale="log")  # fmt: skip
    legend_outside(a1, fontsize=8)
    fig.suptitle(f"{cfg.depth} hidden layers of {cfg.width}, at init: bold mean over"
                 f" {cfg.seeds} seeds, thin lines each seed")  # fmt: skip
    save_figure(fig, f"{args.out}/selu.png")
    return report(args, "Klambauer et al. 2017", {"config": cfg.__dict__, "results": res},
                  claims, started)  # fmt: skip


if __name__ == "__main__":
    entry(main)
