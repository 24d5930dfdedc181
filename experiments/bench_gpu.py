"""The moonshot workload on one accelerator: a 1,000-member init × seed × learning-rate study
of a small BatchNorm ResNet on a CIFAR-sized data set, the engine vs ``torch.func``.

The data set is generated, deterministically, with CIFAR-10's sizes (50,000 training and
1,000 test images of 32×32×3, 10 classes; each class a smooth random template plus
noise, so that it can be learnt): nothing is downloaded. The population is 5 initializers
× 20 seeds × 10 learning rates (SGD with momentum 0.9) of ``jaxinit.ResNet(channels=(16,
32))``, 100 steps of batch 128, evaluated on the test set at the end — one ``run_study``
(member groups sized from the compiled program's memory analysis against the device's
memory). The contender is what a PyTorch user would write: a ``torch.func`` vmap ensemble
of the same ResNet (``experiments/_torch_models.py``) with a learning rate per member, the
same steps, batch and final test evaluation, on the same device.

It prints, for each: cold and warm seconds, members·steps/s, and the fraction of the
device's matmul rate that the model's FLOPs reach (the FLOPs of one member's training step
from XLA's cost analysis; the rate measured on a large float32 matmul with each framework's
default precision). For the sampling part (every member's initial convolution kernels drawn
on the device) it prints GB/s and the fraction of a measured memory copy, for jaxinit's
default and fast samplers and jax.nn.

    python experiments/bench_gpu.py               # the full workload (an accelerator)
    python experiments/bench_gpu.py --quick       # a CPU smoke test (seconds)
    python experiments/bench_gpu.py --json out.json

On the CPU the full workload would take hours; run ``--quick`` there.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import jaxinit  # noqa: E402

INITS = ("he_normal", "glorot_uniform", "lecun_normal", "he_uniform", "orthogonal")


@dataclasses.dataclass(frozen=True)
class Workload:
    inits: tuple[str, ...] = INITS
    seeds: int = 20
    lrs: tuple[float, ...] = tuple(float(r) for r in np.geomspace(3e-3, 0.3, 10))
    n_train: int = 50_000
    n_test: int = 1_000
    side: int = 32
    channels: tuple[int, ...] = (16, 32)
    batch_size: int = 128
    steps: int = 100

    @property
    def members(self) -> int:
        return len(self.inits) * self.seeds * len(self.lrs)


QUICK = Workload(inits=INITS[:2], seeds=2, lrs=(0.01, 0.1), n_train=256, n_test=64, side=8,
                 channels=(4,), batch_size=8, steps=4)  # fmt: skip


def cifar_like(n_train: int, n_test: int, side: int, seed: int = 0) -> jaxinit.Dataset:
    """CIFAR-10's shapes, generated: class ``c``'s images are a smooth random template (a
    4×4×3 Gaussian pattern upsampled to ``side``) plus unit Gaussian noise."""
    rng = np.random.default_rng(seed)
    templates = rng.normal(size=(10, 4, 4, 3)).repeat(side // 4, 1).repeat(side // 4, 2)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n)
        x = templates[y] + rng.normal(size=(n, side, side, 3))
        return x.astype(np.float32), y.astype(np.int32)

    (xtr, ytr), (xte, yte) = split(n_train), split(n_test)
    return jaxinit.Dataset("cifar-like", xtr, ytr, xte, yte, num_classes=10)


# --------------------------------------------------------------------------- contenders


def engine(w: Workload, data: jaxinit.Dataset, info: dict) -> Callable[[], object]:
    study = jaxinit.Study(
        model=jaxinit.ResNet(channels=w.channels), dataset=data,
        optimizer=functools.partial(optax.sgd, momentum=0.9),
        inits={n: n for n in w.inits}, seeds=w.seeds, steps=w.steps,
        batch_size=w.batch_size, log_every=w.steps, hparams={"learning_rate": list(w.lrs)},
    )  # fmt: skip

    def run() -> object:
        result = jaxinit.run_study(study, progress=False)
        info.update(result.info)
        return result

    return run


def torch_ensemble(w: Workload, data: jaxinit.Dataset) -> Callable[[], object] | None:
    """A ``torch.func`` vmap ensemble of the same ResNet on the same device (CUDA when
    there is one): per member its own learning rate, minibatch and momentum buffer."""
    try:
        import torch
        from torch.func import functional_call

        sys.path.insert(0, HERE)
        from _torch_models import resnet, train_ensemble
    except ImportError:
        return None
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def images(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(dev)

    x_train, x_test = images(data.x_train), images(data.x_test)
    y_train = torch.from_numpy(data.y_train).long().to(dev)
    lrs = torch.tensor(np.repeat(w.lrs, w.members // len(w.lrs)), dtype=torch.float32, device=dev)

    def make() -> torch.nn.Module:
        return resnet(3, w.channels).to(dev)

    def run() -> object:
        torch.manual_seed(0)
        params, base = train_ensemble(make, w.members, x_train, y_train, w.steps,
                                      w.batch_size, lrs)  # fmt: skip
        with torch.no_grad():
            logits = torch.vmap(lambda p: functional_call(base, p, (x_test,)))(params)
            out = logits.argmax(-1).float().mean().item()  # the final test evaluation
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return out

    return run


# --------------------------------------------------------------------------- the device's limits


def _seconds(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(cold, median warm) seconds of ``fn``, each call waited for."""
    times = []
    for _ in range(1 + repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:] or times)


def matmul_rate(side: int, repeats: int = 5) -> float:
    """FLOP/s of a ``side``² float32 matmul (jax's default precision on the device)."""
    a = jnp.ones((side, side), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    _, warm = _seconds(lambda: mm(a), repeats)
    return 2 * side**3 / warm


def step_flops(w: Workload, data: jaxinit.Dataset) -> float:
    """FLOPs of one member's training step (forward, backward, SGD update), from XLA's cost
    analysis of the compiled step."""
    model = jaxinit.ResNet(channels=w.channels)
    x, y = jnp.asarray(data.x_train[: w.batch_size]), jnp.asarray(data.y_train[: w.batch_size])
    variables = model.init(jax.random.key(0), x)
    tx = optax.sgd(0.1, momentum=0.9)

    def step(params, stats, opt_state):
        def loss_fn(p):
            logits, new = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                      mutable=["batch_stats"])  # fmt: skip
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new

        grads, new = jax.grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new["batch_stats"], opt_state

    args = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
    cost = jax.jit(step).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # older jax: one dict per program
    return float(cost.get("flops", float("nan")))


def sampling_rows(w: Workload, repeats: int) -> list[dict]:
    """Every member's convolution kernels drawn on the device with He-normal: jaxinit's
    default and fast samplers and jax.nn, as GB/s and as a fraction of a memory copy of
    the same bytes."""
    model = jaxinit.ResNet(channels=w.channels)
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, w.side, w.side, 3)))
    shapes = [leaf.shape for leaf in jax.tree.leaves(params["params"]) if leaf.ndim == 4]
    keys = jax.random.split(jax.random.key(0), w.members)
    nbytes = 4 * w.members * sum(int(np.prod(s)) for s in shapes)

    def draw(init: Callable) -> Callable[[], object]:
        f = jax.jit(jax.vmap(lambda k: [init(jax.random.fold_in(k, i), s)
                                        for i, s in enumerate(shapes)]))  # fmt: skip
        return lambda: f(keys)

    flat = jnp.ones(nbytes // 4, jnp.float32)
    copy = jax.jit(lambda x: x + jnp.ones((), x.dtype))
    _, copy_s = _seconds(lambda: copy(flat), repeats)
    rows = []
    for impl, init in [
        ("jax.nn", jax.nn.initializers.he_normal()),
        ("jaxinit", jaxinit.he_normal()),
        ("jaxinit fast", jaxinit.fast(jaxinit.he_normal())),
    ]:
        _, s = _seconds(draw(init), repeats)
        rows.append({"part": "sampling", "impl": impl, "warm_s": s, "gb_s": nbytes / s / 1e9,
                     "frac_copy": copy_s / s})  # fmt: skip
    return rows


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes on any device (seconds)")
    ap.add_argument("--repeats", type=int, default=None, help="warm runs per contender")
    ap.add_argument("--json", help="write the rows to this file")
    args = ap.parse_args(argv)
    w = QUICK if args.quick else Workload()
    repeats = args.repeats or (1 if args.quick else 2)
    dev = jax.devices()[0]
    data = cifar_like(w.n_train, w.n_test, w.side)
    peak = matmul_rate(1024 if args.quick else 8192)
    flops = step_flops(w, data)
    info: dict = {}
    contenders = {"engine (run_study)": engine(w, data, info)}
    torch_run = torch_ensemble(w, data)
    if torch_run is not None:
        contenders["torch.func vmap ensemble"] = torch_run
    rows = []
    for impl, fn in contenders.items():
        cold, warm = _seconds(fn, repeats)
        rate = w.members * w.steps / warm
        rows.append({"part": "training", "impl": impl, "cold_s": cold, "warm_s": warm,
                     "member_steps_per_s": rate, "frac_matmul": rate * flops / peak})  # fmt: skip
    rows += sampling_rows(w, repeats)
    print(f"jax {jax.__version__} on {dev.platform} ({dev.device_kind}; {platform.processor()});"
          f" {w.members} members ({len(w.inits)} inits × {w.seeds} seeds × {len(w.lrs)} lrs)"
          f" of ResNet{w.channels}, {w.steps} steps of batch {w.batch_size} on"
          f" {w.n_train} × {w.side}×{w.side}×3")  # fmt: skip
    print(
        f"matmul rate {peak / 1e12:.3g} TFLOP/s; one member's step {flops / 1e9:.3g} GFLOP;"
        f" engine layout {info.get('member_layout')!r}, group {info.get('member_group')}"
    )
    print(f"{'training':<28}{'cold s':>9}{'warm s':>9}{'members·steps/s':>17}{'of matmul':>11}")
    for r in rows:
        if r["part"] == "training":
            print(f"{r['impl']:<28}{r['cold_s']:>9.2f}{r['warm_s']:>9.2f}"
                  f"{r['member_steps_per_s']:>17.1f}{r['frac_matmul']:>11.2%}")  # fmt: skip
    if torch_run is None:
        print("torch.func vmap ensemble: torch is not installed here (pip install torch)")
    else:
        rate = {r["impl"]: r["member_steps_per_s"] for r in rows if r["part"] == "training"}
        e, t = rate["engine (run_study)"], rate["torch.func vmap ensemble"]
        print(f"engine / torch.func = {e / t:.2f} (members·steps/s; > 1: the engine is faster)")
    print(f"{'sampling (He-normal kernels)':<28}{'warm ms':>9}{'GB/s':>9}{'of copy':>10}")
    for r in rows:
        if r["part"] == "sampling":
            print(f"{r['impl']:<28}{r['warm_s'] * 1e3:>9.2f}{r['gb_s']:>9.2f}"
                  f"{r['frac_copy']:>10.2%}")  # fmt: skip
    report = {"jax": jax.__version__, "device": dev.device_kind, "platform": dev.platform,
              "workload": dataclasses.asdict(w), "matmul_flops": peak, "step_flops": flops,
              "info": {k: info.get(k) for k in ("member_layout", "member_group")}, "rows": rows}  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return report


if __name__ == "__main__":
    main()
