"""He et al. 2015 as an MLP: deep ReLU nets with Xavier vs He (and LeCun, orthogonal) init.

Published (He et al. 2015, §2.3 and Fig. 3, 22- and 30-layer ReLU conv nets on ImageNet):
at 30 layers Xavier init "completely stalls" while He init converges; at 22 layers both
converge, He earlier. In a deep ReLU net Xavier's activation std shrinks by about 1/√2 per
layer relative to He's.

Here (differences from the paper): plain MLPs of width 64 on scikit-learn digits (not conv
nets on ImageNet), SGD with momentum, a fixed budget of steps, several seeds. "Stalls" means
the final train loss stays within 10 % of chance (ln 10); "converges" means reaching the
target train loss (Kaplan–Meier median over seeds, censored members not counted as reaching
it).

Run: ``python experiments/exp_he_depth.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from _common import (  # isort: skip
    config, curves, diverged, entry, est, figure, final, fmt, fmt_t, layer_stats, legend_outside,
    parse, report, save_figure, seed_lines, sgd, table_text, times_to, ttt,
)  # fmt: skip

INITS = {"xavier": "glorot_normal", "he": "he_normal", "lecun": "lecun_normal",
         "orthogonal": "orthogonal"}  # fmt: skip


@dataclass(frozen=True)
class Config:
    depths: tuple[int, ...] = (22, 30)
    width: int = 64
    seeds: int = 4
    steps: int = 1500
    batch_size: int = 64
    lr: float = 0.003  # at 0.01 (momentum 0.9) even He is unstable at these depths (measured)
    target: float = 0.5  # train loss


QUICK = Config(depths=(4, 6), width=16, seeds=2, steps=20, batch_size=32, target=2.0)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(__doc__, "he_depth", argv)
    cfg = config(args, Config(), QUICK)
    started = time.perf_counter()
    import jax
    import jax.numpy as jnp

    from jaxinit import MLP, Study, get, run_study
    from jaxinit.study import digits

    data = digits()
    chance = float(np.log(data.num_classes))
    res, rows = {}, [("depth", "init", "steps to target", "final train loss", "stalled seeds",
                      "test acc")]  # fmt: skip
    fig, axes = figure(len(cfg.depths) + 1, figsize=(5 * (len(cfg.depths) + 1) + 1.5, 4.2))
    for ax, depth in zip(axes, cfg.depths, strict=False):
        model = MLP((cfg.width,) * depth + (10,), "relu")
        study = Study(model=model, dataset=data, optimizer=sgd(cfg.lr), inits=INITS,
                      seeds=cfg.seeds, steps=cfg.steps, batch_size=cfg.batch_size,
                      log_every=10 if cfg.steps >= 100 else 5)  # fmt: skip
        r = run_study(study, key=0)
        loss, acc = final(r.table, "train_loss"), final(r.table, "test_accuracy")
        t = times_to(r.table, cfg.target)
        for name in INITS:
            stalled = int(np.sum(~(loss[name] < 0.9 * chance)))
            res[depth, name] = {"steps_to_target": ttt(t[name]), "final_train_loss": est(loss[name]),
                                "stalled_seeds": stalled, "test_accuracy": est(acc[name])}  # fmt: skip
            rows.append((depth, name, fmt_t(res[depth, name]["steps_to_target"]),
                         fmt(res[depth, name]["final_train_loss"]), f"{stalled}/{cfg.seeds}",
                         fmt(res[depth, name]["test_accuracy"])))  # fmt: skip
        for name, (steps, m) in curves(r.table).items():
            seed_lines(ax, steps, m, name, list(INITS).index(name))  # one style per init
        ax.axhline(cfg.target, color="k", ls=":", lw=1, label=f"target loss {cfg.target}")
        ax.axhline(chance, color="0.5", ls="-", lw=0.8, label=f"chance (ln {data.num_classes})")
        ax.set(title=f"ReLU MLP, {depth} hidden layers", xlabel="step", ylabel="train loss",
               yscale="log")  # fmt: skip
        res[depth, "diverged"] = diverged(r)
    print(table_text(rows))

    # Per-layer activation std at init, Xavier vs He, on the same seeds.
    depth = max(cfg.depths)
    x = jnp.asarray(data.x_train[:256])
    logs = {}
    for name in ("xavier", "he"):
        stds = []
        for s in range(cfg.seeds):
            model = MLP((cfg.width,) * depth + (10,), "relu", kernel_init=get(INITS[name]))
            params = model.init(jax.random.key(s), x[:1])["params"]
            mean, var = layer_stats(model, params, x, "relu")
            stds.append(np.sqrt(var + mean**2))  # root mean square, as in He et al.
        logs[name] = np.log(np.array(stds))  # (seeds, layers)
    per_layer = np.exp(np.diff(logs["xavier"] - logs["he"], axis=1).mean(axis=1))  # per seed
    ratio = est(per_layer)
    ax = axes[-1]
    for name, v in logs.items():
        seed_lines(ax, np.arange(1, depth + 1), np.exp(v), name, list(INITS).index(name))
    ax.set(yscale="log", xlabel="hidden layer", ylabel="RMS activation at init",
           title=f"activation scale through depth ({depth} layers)")  # fmt: skip
    legend_outside(ax)
    fig.suptitle(f"bold: mean over {cfg.seeds} seeds; thin: each of the {cfg.seeds} seeds")
    save_figure(fig, f"{args.out}/he_depth.png")

    deep, shallow = max(cfg.depths), min(cfg.depths)
    xd, hd = res[deep, "xavier"], res[deep, "he"]
    xs, hs = res[shallow, "xavier"], res[shallow, "he"]
    claims = [
        {
            "claim": f"{deep} layers: Xavier stalls while He converges",
            "measured": f"Xavier stalled in {xd['stalled_seeds']}/{cfg.seeds} seeds; He reached"
            f" loss {cfg.target} in {hd['steps_to_target']['fraction']:.0%} of seeds",
            "agrees": xd["stalled_seeds"] == cfg.seeds and hd["steps_to_target"]["fraction"] >= 0.5,
        },
        {
            "claim": f"{shallow} layers: both converge, He earlier",
            "measured": f"reached target: Xavier {fmt_t(xs['steps_to_target'])}, He"
            f" {fmt_t(hs['steps_to_target'])}",
            "agrees": xs["steps_to_target"]["fraction"] >= 0.5
            and hs["steps_to_target"]["fraction"] >= 0.5
            and hs["steps_to_target"]["median"] < xs["steps_to_target"]["median"],
        },
        {
            "claim": "per layer, Xavier's activation std shrinks by 1/√2 ≈ 0.707 relative to He",
            "measured": f"geometric mean per-layer ratio {fmt(ratio)}; agrees if within ±0.03",
            "agrees": bool(abs(ratio["mean"] - 2**-0.5) <= 0.03),
        },
    ]
    results = {f"{d}/{n}": v for (d, n), v in res.items()}
    payload = {"config": cfg.__dict__, "results": results, "std_ratio_per_layer": ratio}
    return report(args, "He et al. 2015 (MLP)", payload, claims, started)


if __name__ == "__main__":
    entry(main)
