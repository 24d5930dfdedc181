"""Glorot & Bengio 2010 on Shapeset-3×2: standard U[±1/√n] vs normalized init, 5 hidden layers.

Published (their Table 1, Shapeset-3×2 test error; 5 hidden layers of 1000 units, SGD with
minibatches of 10, online data, long training): tanh 27.15 % with the standard init vs
15.60 % with the normalized init; sigmoid 82.61 % (saturates). At initialisation the mean
singular value of the layer-to-layer Jacobian is ≈ 0.8 with the normalized init vs ≈ 0.5
with the standard one.

Here (differences from the paper): a fixed Shapeset-3×2 sample from
:func:`jaxinit.shapeset` (not online), hidden width 256 (1000 for the Jacobian
measurement), SGD with momentum, a few thousand steps, several seeds — so absolute errors
are higher than the paper's; the checks are the orderings and the Jacobian values.

Run: ``python experiments/exp_glorot_bengio.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from _common import (  # isort: skip
    config, entry, est, figure, fmt, legend_outside, parse, report, save_figure, seed_dots,
    seed_lines, sgd, table_text, final, diverged,
)  # fmt: skip

PAPER_TEST_ERROR = {  # Table 1 (Shapeset-3×2); softsign values are not in REFERENCE.md
    ("tanh", "standard"): 27.15,
    ("tanh", "normalized"): 15.60,
    ("sigmoid", "standard"): 82.61,
}
INITS = {"standard": "glorot_bengio_standard", "normalized": "glorot_uniform"}
ACTIVATIONS = ("tanh", "softsign", "sigmoid")


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


NUMPY_ACTIVATIONS = {  # (f, f') for the Jacobian at init, in numpy (no compiles)
    "tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2),
    "softsign": (lambda a: a / (1 + np.abs(a)), lambda a: 1 / (1 + np.abs(a)) ** 2),
    "sigmoid": (_sigmoid, lambda a: _sigmoid(a) * (1 - _sigmoid(a))),
}


@dataclass(frozen=True)
class Config:
    n_train: int = 8000
    n_test: int = 2000
    width: int = 256
    jacobian_width: int = 1000
    hidden: int = 5
    seeds: int = 4
    steps: int = 3000
    batch_size: int = 32
    lr: float = 0.01


QUICK = Config(n_train=400, n_test=200, width=32, jacobian_width=64, seeds=2, steps=20,
               batch_size=16)  # fmt: skip


def jacobian_singular_values(init_name, activation, cfg, x, seed) -> np.ndarray:
    """Mean singular value of each hidden-to-hidden Jacobian dz^{i+1}/dz^i = diag(f'(a)) Wᵀ
    at init, averaged over a few inputs (biases zero, as at init)."""
    import jax
    import jax.numpy as jnp

    from jaxinit import get

    f, fprime = NUMPY_ACTIVATIONS[activation]
    init = get(init_name)
    dims = [x.shape[1]] + [cfg.jacobian_width] * cfg.hidden
    keys = jax.random.split(jax.random.key(seed), cfg.hidden)
    ws = [
        np.asarray(init(k, (a, b), jnp.float32))
        for k, a, b in zip(keys, dims, dims[1:], strict=False)
    ]
    out = np.zeros(cfg.hidden - 1)
    a = x @ ws[0]
    for i in range(1, cfg.hidden):
        a = f(a) @ ws[i]
        # J = diag(f'(a)) Wᵀ; its singular values are the roots of the Gram (W d)ᵀ(W d).
        sv = [np.sqrt(np.clip(np.linalg.eigvalsh((ws[i] * d).T @ (ws[i] * d)), 0, None))
              for d in fprime(a)]  # fmt: skip
        out[i - 1] = np.mean(sv)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(__doc__, "glorot_bengio", argv)
    cfg = config(args, Config(), QUICK)
    started = time.perf_counter()
    from jaxinit import MLP, Study, run_study
    from jaxinit.study import paired_difference, shapeset

    data = shapeset(cfg.n_train, cfg.n_test, seed=0)
    errors, results, jac = {}, {}, {}
    for act in ACTIVATIONS:
        study = Study(
            model=MLP((cfg.width,) * cfg.hidden + (9,), act), dataset=data,
            optimizer=sgd(cfg.lr), inits=INITS, seeds=cfg.seeds, steps=cfg.steps,
            batch_size=cfg.batch_size, log_every=10 if cfg.steps >= 100 else 5,
        )  # fmt: skip
        r = run_study(study, key=0)
        acc = final(r.table, "test_accuracy")
        for name in INITS:
            errors[act, name] = 1 - acc[name]
            jac[act, name] = np.stack([
                jacobian_singular_values(INITS[name], act, cfg, data.x_train[s * 4 : s * 4 + 4], s)
                for s in range(cfg.seeds)
            ])  # fmt: skip  # (seeds, hidden-1)
        results[act] = {"diverged": diverged(r)}
    rows = [("activation", "init", "test error % (ours)", "paper Table 1 %",
             "mean Jacobian sv at init")]  # fmt: skip
    out = {}
    for (act, name), e in errors.items():
        paper = PAPER_TEST_ERROR.get((act, name))
        j = jac[act, name].mean(axis=1)
        out[f"{act}/{name}"] = {"test_error": est(e), "paper_test_error_pct": paper,
                                "jacobian_mean_sv": est(j),
                                "jacobian_mean_sv_per_layer": jac[act, name].mean(0).tolist()}  # fmt: skip
        rows.append((act, name, fmt(est(e), 100), "-" if paper is None else f"{paper}",
                     fmt(est(j))))  # fmt: skip
    print(table_text(rows))

    d = paired_difference(errors["tanh", "standard"], errors["tanh", "normalized"])
    chance = 1 - 1 / 9
    sig = est(errors["sigmoid", "standard"])
    jn, js = est(jac["tanh", "normalized"].mean(1)), est(jac["tanh", "standard"].mean(1))
    claims = [
        {
            "claim": "tanh: the normalized init gives a lower test error than the standard one"
            " (27.15 % vs 15.60 %)",
            "measured": f"standard − normalized test error = {fmt(d._asdict(), 100)} points",
            "agrees": bool(d.lo > 0) if d.n else None,
        },
        {
            "claim": "sigmoid (standard init) saturates: 82.61 % test error, near chance"
            f" ({chance:.1%})",
            "measured": f"{fmt(sig, 100)} %; agrees if the CI lies above 50 %",
            "agrees": bool(sig["lo"] > 0.5) if sig["n"] else None,
        },
        {
            "claim": "mean Jacobian singular value at init ≈ 0.8 normalized vs ≈ 0.5 standard"
            " (tanh)",
            "measured": f"normalized {fmt(jn)}, standard {fmt(js)}; agrees if within ±0.1",
            "agrees": bool(abs(jn["mean"] - 0.8) <= 0.1 and abs(js["mean"] - 0.5) <= 0.1),
        },
    ]

    fig, (ax0, ax1) = figure(2, figsize=(13, 4.4))
    color = {"standard": "C0", "normalized": "C1"}
    for i, (act, name) in enumerate(errors):
        e = out[f"{act}/{name}"]["test_error"]
        ax0.bar(i, 100 * e["mean"], color=color[name], alpha=0.6,
                label=f"{name} init: mean over {cfg.seeds} seeds")  # fmt: skip
        ax0.errorbar(i, 100 * e["mean"], yerr=[[100 * (e["mean"] - e["lo"])],
                     [100 * (e["hi"] - e["mean"])]], color="k", capsize=3,
                     label="95 % bootstrap CI of the mean")  # fmt: skip
        seed_dots(ax0, i, 100 * errors[act, name], f"{act} {name}")
        if (act, name) in PAPER_TEST_ERROR:
            ax0.plot(i, PAPER_TEST_ERROR[act, name], "k*", ms=10, label="paper, Table 1")
    ax0.plot([], [], "o", ms=3.5, mfc="none", mec="k", label="each seed")
    ax0.set_xticks(range(len(errors)), [f"{a}\n{n}" for a, n in errors], fontsize=7)
    ax0.set(ylabel="test error %", title="Shapeset-3×2 test error")
    for i, ((act, name), v) in enumerate(jac.items()):
        seed_lines(ax1, np.arange(2, cfg.hidden + 1), v, f"{act} {name}", i,
                   color=color[name])  # fmt: skip
    ax1.axhline(0.8, color="C1", lw=0.8, ls=":", label="paper: ≈ 0.8 normalized")
    ax1.axhline(0.5, color="C0", lw=0.8, ls=":", label="paper: ≈ 0.5 standard")
    ax1.set(xlabel="layer i (Jacobian dz^i/dz^(i-1))", ylabel="mean singular value",
            title=f"Jacobian at init, width {cfg.jacobian_width}")  # fmt: skip
    legend_outside(ax1)
    fig.suptitle(f"{cfg.seeds} seeds: bars and bold lines are means over seeds, dots and thin"
                 " lines each seed, error bars the 95 % bootstrap CI of the mean")  # fmt: skip
    save_figure(fig, f"{args.out}/glorot_bengio.png")
    payload = {"config": cfg.__dict__, "results": out, "diverged": results}
    return report(args, "Glorot & Bengio 2010", payload, claims, started)


if __name__ == "__main__":
    entry(main)
