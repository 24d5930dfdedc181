"""Yang, Hu et al. 2021 (μP): the optimal learning rate stays put across widths in μP and
drifts in standard parametrization.

Published (Tensor Programs V, Fig. 1 and 3; microsoft/mup's MLP demo): training loss against
learning rate for MLPs / transformers of growing width trained with Adam — in standard
parametrization (SP) the best learning rate shrinks as the width grows, in μP it is the same
at every width (and wider is better at it), so it can be tuned on a small model.

Here (differences from the paper): 2-hidden-layer ReLU MLPs on scikit-learn digits, widths
64 .. 1024 (the paper goes to 8192), Adam, a grid of learning rates 2^-14 .. 2^-4, several
seeds, 100 Adam steps of batch 64. SP is flax's default init (LeCun normal) with one LR for every parameter;
μP is ``jaxinit.mup()``'s init (hidden 1/fan_in, zero readout), mup's readout multiplier
(base width 64, so both coincide at width 64 up to the readout init) and
``jaxinit.mup_adam``. The loss is the mean training loss of the last 20 % of steps. The best
LR per (width, seed) is the grid argmin refined by a parabola through its neighbours
(log2 units); its shift from the narrowest to the widest net is bootstrapped over seeds.

Small transformer (``--parts transformer``): a 2-layer pre-LN decoder (4 heads, head dim
width/4, GELU MLP 4x, learned positions) predicting the next character of CPython's own
documentation (``pydoc_data.topics``, 96 symbols), widths 32 .. 256, sequences of 16,
batch 16, 100 Adam steps, LRs 2^-12 .. 2^-4, 3 seeds. SP: flax's defaults (LeCun normal,
embeddings std 1/sqrt(width), attention q.k/sqrt(d)), one LR. μP (base width 32): hidden
weights 1/fan_in (the attention kernels' own fans), embeddings and positions N(0, 1),
zero readout with mup's readout multiplier, attention q.k/d (``jaxinit.mup_attention_fn``),
``jaxinit.mup_adam`` with base shapes from the linen modules (``sample=``).

Run: ``python experiments/exp_mup.py [--quick] [--out DIR] [--parts mlp,transformer]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from _common import (  # isort: skip
    entry, est, figure, fmt, legend_outside, parse, report, save_figure, seed_lines,
    table_text,
)  # fmt: skip


@dataclass(frozen=True)
class Config:
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)
    log2_lrs: tuple[int, ...] = tuple(range(-14, -3))
    seeds: int = 5
    steps: int = 100
    batch_size: int = 64
    base_width: int = 64
    lr: float | None = None  # unused (the LR is the swept axis); kept for --lr


QUICK = Config(widths=(16, 32), log2_lrs=(-8, -6, -4), seeds=2, steps=6, batch_size=16,
               base_width=16)  # fmt: skip


@dataclass(frozen=True)
class TConfig:
    """The small transformer: next-character prediction on CPython's documentation."""

    widths: tuple[int, ...] = (32, 64, 128, 256)
    log2_lrs: tuple[int, ...] = tuple(range(-12, -3))
    seeds: int = 3
    steps: int = 100
    batch_size: int = 16
    seq_len: int = 16
    layers: int = 2
    heads: int = 4
    vocab: int = 96
    base_width: int = 32


TQUICK = TConfig(widths=(16, 32), log2_lrs=(-8, -5), seeds=2, steps=4, batch_size=4,
                 seq_len=8, layers=1, heads=2, base_width=16)  # fmt: skip
PARAMS = ("SP", "muP")


def _model(width: int, base_width: int, readout_mult: bool):
    import flax.linen as nn

    import jaxinit

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(width, name="fc1")(x))
            h = nn.relu(nn.Dense(width, name="fc2")(h))
            if readout_mult:
                h = h * jaxinit.readout_multiplier(width, base_width)
            return nn.Dense(10, name="head")(h)

    return MLP()


def _train_width(param: str, width: int, cfg: Config, data) -> np.ndarray:
    """(lrs, seeds) mean training loss over the last 20 % of steps of the MLP; one compiled
    program for all learning rates and seeds of this width (members sharded over the
    devices)."""
    import jax
    import jax.numpy as jnp
    import optax

    import jaxinit

    mup = param == "muP"
    x_all, y_all = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    model = _model(width, cfg.base_width, mup)
    x0 = x_all[:1]
    if mup:
        bsh = jaxinit.base_shapes(
            lambda: _model(cfg.base_width, cfg.base_width, True).init(jax.random.key(0), x0),
            lambda: _model(2 * cfg.base_width, cfg.base_width, True).init(jax.random.key(0), x0),
        )
        rules = jaxinit.mup(readout="head/kernel", readout_init="zero")

    def init(k_init, k_re):
        v = model.init(k_init, x0)
        return jaxinit.reinit(v, rules, k_re) if mup else v

    def batch(k_step):
        idx = jax.random.randint(k_step, (cfg.batch_size,), 0, x_all.shape[0])
        return x_all[idx], y_all[idx]

    def loss(v, xy):
        logits = model.apply(v, xy[0])
        return optax.softmax_cross_entropy_with_integer_labels(logits, xy[1]).mean()

    make_tx = (lambda lr: jaxinit.mup_adam(lr, bsh)) if mup else optax.adam
    return _sweep(cfg, init, batch, loss, make_tx)


def _sweep(cfg, init, batch, loss, make_tx) -> np.ndarray:
    """Train one member per (log2 LR, seed) with Adam-like ``make_tx(lr)`` for ``cfg.steps``
    steps; (lrs, seeds) mean training loss over the last 20 % of steps (inf if not finite).
    One compiled program for all members, sharded over the devices; every LR sees the same
    initialisation and data order for a seed."""
    import jax
    import jax.numpy as jnp
    import optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    tail = max(1, cfg.steps // 5)

    def train(log2_lr, seed):
        k = jax.random.fold_in(jax.random.key(0), seed)  # same data order for every LR
        k_init, k_re, k_data = jax.random.split(k, 3)
        v = init(k_init, k_re)
        tx = make_tx(jnp.exp2(log2_lr))
        with jax.numpy_dtype_promotion("standard"):
            s = tx.init(v)

        def step(carry, k_step):
            v, s = carry
            val, g = jax.value_and_grad(loss)(v, batch(k_step))
            with jax.numpy_dtype_promotion("standard"):
                u, s = tx.update(g, s, v)
            return (optax.apply_updates(v, u), s), val

        _, losses = jax.lax.scan(step, (v, s), jax.random.split(k_data, cfg.steps))
        return jnp.mean(losses[-tail:])

    lrs = np.repeat(np.asarray(cfg.log2_lrs, np.float32), cfg.seeds)
    seeds = np.tile(np.arange(cfg.seeds, dtype=np.int32), len(cfg.log2_lrs))
    n_dev = len(jax.devices())
    pad = (-len(lrs)) % n_dev
    lrs_p, seeds_p = np.concatenate([lrs, lrs[:pad]]), np.concatenate([seeds, seeds[:pad]])
    mesh = Mesh(np.array(jax.devices()), ("m",))
    shard = NamedSharding(mesh, PartitionSpec("m"))
    out = jax.jit(jax.vmap(train))(jax.device_put(lrs_p, shard), jax.device_put(seeds_p, shard))
    out = np.asarray(out)[: len(lrs)].reshape(len(cfg.log2_lrs), cfg.seeds)
    return np.where(np.isfinite(out), out, np.inf)


# --------------------------------------------------------------------------- transformer


def text_tokens() -> tuple[np.ndarray, int]:
    """Character tokens of the Python documentation shipped with CPython
    (``pydoc_data.topics``, ~465k characters): printable ASCII and newline (96 symbols),
    anything else mapped to ``?``."""
    from pydoc_data.topics import topics

    text = "".join(topics[k] for k in sorted(topics))
    codes = np.frombuffer(text.encode("ascii", "replace"), np.uint8).astype(np.int32)
    codes = np.where(codes == 10, 127, codes)  # newline -> 127, so the range is 32..127
    codes = np.where((codes < 32) | (codes > 127), ord("?"), codes)
    return codes - 32, 96


def _lm(width: int, cfg: TConfig, mup: bool):
    """A pre-LN decoder-only transformer: token + learned position embeddings, ``layers``
    blocks of causal self-attention (``heads`` heads of width/heads) and a 4x GELU MLP,
    final LayerNorm, linear readout. μP: attention logits q·k/d (``mup_attention_fn``)
    and mup's readout multiplier."""
    import flax.linen as nn
    import jax.numpy as jnp

    import jaxinit

    attention_fn = jaxinit.mup_attention_fn() if mup else nn.dot_product_attention

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            mask = nn.make_causal_mask(jnp.ones(x.shape[:2], jnp.int32))
            h = nn.LayerNorm(name="ln1")(x)
            x = x + nn.MultiHeadDotProductAttention(
                cfg.heads, attention_fn=attention_fn, name="attn"
            )(h, mask=mask)
            h = nn.LayerNorm(name="ln2")(x)
            h = nn.Dense(width, name="fc2")(nn.gelu(nn.Dense(4 * width, name="fc1")(h)))
            return x + h

    class LM(nn.Module):
        @nn.compact
        def __call__(self, tok):
            x = nn.Embed(cfg.vocab, width, name="embed")(tok)
            pos = self.param("pos_embed", nn.initializers.normal(0.02), (cfg.seq_len, width))
            x = x + pos[None, : tok.shape[-1]]
            for i in range(cfg.layers):
                x = Block(name=f"layers_{i}")(x)
            x = nn.LayerNorm(name="ln_f")(x)
            if mup:
                x = x * jaxinit.readout_multiplier(width, cfg.base_width)
            return nn.Dense(cfg.vocab, name="head")(x)

    return LM()


def _train_width_lm(param: str, width: int, cfg: TConfig, tokens: np.ndarray) -> np.ndarray:
    """As :func:`_train_width`, for the transformer on next-character prediction."""
    import jax
    import jax.numpy as jnp
    import optax

    import jaxinit

    mup = param == "muP"
    data = jnp.asarray(tokens)
    model = _lm(width, cfg, mup)
    x0 = jnp.zeros((1, cfg.seq_len), jnp.int32)
    if mup:
        base = _lm(cfg.base_width, cfg, True)
        bsh = jaxinit.base_shapes(base, _lm(2 * cfg.base_width, cfg, True), sample=x0)
        rules = jaxinit.mup(
            readout="head/kernel",
            readout_init="zero",
            embeddings=jaxinit.any_of("{embedding,pos_embed}"),
        )

    def init(k_init, k_re):
        v = model.init(k_init, x0)
        return jaxinit.reinit(v, rules, k_re, module=model, sample=x0) if mup else v

    def batch(k_step):
        start = jax.random.randint(k_step, (cfg.batch_size, 1), 0, data.shape[0] - cfg.seq_len)
        window = data[start + jnp.arange(cfg.seq_len + 1)[None, :]]
        return window[:, :-1], window[:, 1:]

    def loss(v, xy):
        logits = model.apply(v, xy[0])
        return optax.softmax_cross_entropy_with_integer_labels(logits, xy[1]).mean()

    make_tx = (lambda lr: jaxinit.mup_adam(lr, bsh)) if mup else optax.adam
    return _sweep(cfg, init, batch, loss, make_tx)


def best_log2_lr(log2_lrs: np.ndarray, losses: np.ndarray) -> float:
    """The argmin of a loss-vs-log2(LR) curve, refined by the vertex of the parabola through
    the grid minimum and its two neighbours (clipped to them); at an edge, the edge."""
    i = int(np.argmin(losses))
    if i == 0 or i == len(losses) - 1 or not np.all(np.isfinite(losses[i - 1 : i + 2])):
        return float(log2_lrs[i])
    y0, y1, y2 = losses[i - 1 : i + 2]
    h = float(log2_lrs[i + 1] - log2_lrs[i])
    denom = y0 - 2 * y1 + y2
    offset = 0.0 if denom <= 0 else 0.5 * h * (y0 - y2) / denom
    return float(log2_lrs[i] + np.clip(offset, -h, h))


def _below(e: dict, x: float) -> bool | None:
    """True if the CI lies below x, False if it lies at or above it, else None."""
    if e["n"] < 2:
        return None
    return True if e["hi"] < x else False if e["lo"] >= x else None


def _within(e: dict, r: float) -> bool | None:
    """True if the CI lies within ±r, False if it lies wholly outside, else None."""
    if e["n"] < 2:
        return None
    if -r <= e["lo"] and e["hi"] <= r:
        return True
    return False if e["lo"] > r or e["hi"] < -r else None


def _analyse(label: str, cfg, loss: dict) -> tuple[dict, list, list]:
    """Best LRs, their shift from the narrowest to the widest net, the table rows and the
    claims of one model family (``loss[param][width]``: (lrs, seeds))."""
    grid = np.asarray(cfg.log2_lrs, np.float64)
    best = {p: {w: np.array([best_log2_lr(grid, loss[p][w][:, s]) for s in range(cfg.seeds)])
                for w in cfg.widths} for p in PARAMS}  # fmt: skip
    w0, w1 = cfg.widths[0], cfg.widths[-1]
    res, rows = {}, []
    for p in PARAMS:
        i0 = int(np.argmin(loss[p][w0].mean(1)))  # the LR one would tune on the narrowest net
        res[p] = {}
        for w in cfg.widths:
            lw = loss[p][w]
            res[p][w] = {
                "best_log2_lr": est(best[p][w]),
                "best_loss": est(lw.min(0)),
                "loss_at_transferred_lr": est(lw[i0]),
                "mean_loss_by_lr": lw.mean(1).tolist(),
            }
            r = res[p][w]
            rows.append((label, p, str(w), fmt(r["best_log2_lr"]), fmt(r["best_loss"]),
                         fmt(r["loss_at_transferred_lr"])))  # fmt: skip
        res[p]["shift"] = est(best[p][w1] - best[p][w0])
        slopes = [np.polyfit(np.log2(cfg.widths), [best[p][w][s] for w in cfg.widths], 1)[0]
                  for s in range(cfg.seeds)]  # fmt: skip
        res[p]["slope_per_doubling"] = est(slopes)
    sp, mu = res["SP"]["shift"], res["muP"]["shift"]
    gain = est([loss["muP"][w1][:, s].min() - loss["muP"][w0][:, s].min()
                for s in range(cfg.seeds)])  # fmt: skip
    claims = [
        {
            "claim": f"{label}: in standard parametrization the optimal learning rate drifts"
            " with width (shrinks as the net widens)",
            "measured": f"best log2 LR, width {w1} minus width {w0}: {fmt(sp)} (SP);"
            " agrees if the 95 % CI is below 0, disagrees if it is at or above 0",
            "agrees": _below(sp, 0.0),
        },
        {
            "claim": f"{label}: in μP the optimal learning rate stays put across widths",
            "measured": f"best log2 LR, width {w1} minus width {w0}: {fmt(mu)} (μP); agrees if"
            " the 95 % CI lies within ±1 (one grid step, a factor of 2), disagrees if it lies"
            " outside",
            "agrees": _within(mu, 1.0),
        },
        {
            "claim": f"{label}: in μP wider is better (at each width's best learning rate)",
            "measured": f"best loss at width {w1} minus width {w0}: {fmt(gain)} (μP); agrees"
            " if the 95 % CI is below 0, disagrees if above",
            "agrees": _below(gain, 0.0),
        },
    ]
    return {"best": best, "res": res}, rows, claims


def _figure(path: str, cfg, loss: dict, best: dict, title: str) -> None:
    from matplotlib import colormaps

    grid = np.asarray(cfg.log2_lrs, np.float64)
    fig, axes = figure(2, figsize=(12, 4.4))
    axes[1].sharey(axes[0])
    cmap = colormaps["viridis"]
    for ax, p in zip(axes, PARAMS, strict=True):
        for j, w in enumerate(cfg.widths):
            c = cmap(j / max(1, len(cfg.widths) - 1))
            seed_lines(ax, grid, loss[p][w].T, f"width {w}", j, color=c)
            ax.axvline(np.mean(best[p][w]), color=c, ls=":", lw=1)
        ax.set(xlabel="log2 learning rate", title=f"{title}, {p}: loss vs LR")
    axes[0].plot([], [], color="k", ls=":", lw=1, label="best log2 LR (mean over seeds)")
    axes[0].set_ylabel(f"train loss, last 20 % of {cfg.steps} steps")
    fig.suptitle(f"bold: mean over {cfg.seeds} seeds; thin: each seed")
    finite = np.concatenate([loss[p][w].ravel() for p in PARAMS for w in cfg.widths])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        top = min(finite.max(), 2 * np.median(finite))
        axes[0].set_ylim(max(finite.min() * 0.8, 1e-4), top * 1.05)
        axes[0].set_yscale("log")
    legend_outside(axes[1], fontsize=8)
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--parts", default="mlp,transformer")
    known, rest = own.parse_known_args(argv)
    parts = [x for x in known.parts.split(",") if x]
    if not parts or set(parts) - {"mlp", "transformer"}:
        raise SystemExit(f"exp_mup: --parts must list mlp and/or transformer, got {known.parts}")
    args = parse(__doc__, "mup", rest)
    started = time.perf_counter()
    header = ("model", "param", "width", "best log2 LR", "loss at best grid LR",
              "loss at narrowest net's best LR")  # fmt: skip
    rows, claims, payload = [header], [], {}

    def run(label: str, cfg, train) -> None:
        """One model family: train every (param, width), analyse, plot, record."""
        t0 = time.perf_counter()
        loss = {p: {w: train(p, w) for w in cfg.widths} for p in PARAMS}
        out, r, c = _analyse(label, cfg, loss)
        rows.extend(r)
        claims.extend(c)
        name = label.lower()
        _figure(f"{args.out}/{'mup' if name == 'mlp' else 'mup_' + name}.png", cfg, loss,
                out["best"], label)  # fmt: skip
        payload[name] = {
            "config": cfg.__dict__,
            "seconds": round(time.perf_counter() - t0, 1),
            "results": {p: {str(k): v for k, v in x.items()} for p, x in out["res"].items()},
        }

    if "mlp" in parts:
        from jaxinit.study import digits

        cfg = Config() if not args.quick else QUICK
        data = digits()
        run("MLP", cfg, lambda p, w: _train_width(p, w, cfg, data))
    if "transformer" in parts:
        tcfg = TConfig() if not args.quick else TQUICK
        tokens, vocab = text_tokens()
        tcfg = TConfig(**{**tcfg.__dict__, "vocab": vocab})
        run("transformer", tcfg, lambda p, w: _train_width_lm(p, w, tcfg, tokens))
    print(table_text(rows))
    return report(args, "Yang, Hu et al. 2021 (μP)", payload, claims, started)


if __name__ == "__main__":
    entry(main)
