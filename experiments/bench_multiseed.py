"""Benchmark: the multi-seed engine against a naive Flax loop, a hand-written
jit(vmap(scan)) and (if installed) PyTorch, with a matrix-product GFLOP/s ceiling measured
in the same process.

Workloads on scikit-learn's digits (issue 4):

* A (overhead-bound): 32 members (4 initializers × 8 seeds), MLP 64-32-32-32-10 ReLU,
  batch 64, 300 steps of SGD with momentum 0.9;
* B (compute-bound): 16 members (4 × 4), MLP 64-256-256-256-10, batch 128, 300 steps;
* C (a hyperparameter grid): 256 members (4 initializers × 16 seeds × 4 learning rates),
  A's model and steps; the engine runs the grid as one program (``Study(hparams=...)``).
* D (a CNN population, issue 25): 32 members (4 initializers × 8 seeds) of the built-in
  BatchNorm ``jaxinit.ResNet(channels=(16, 32))``, batch 64, 10 steps of SGD with momentum
  0.9: the engine (``member_layout="auto"``) against the naive jitted-step Python loop (one
  member after another, BatchNorm statistics carried) and, if torch is importable, a
  ``torch.func`` vmap ensemble of the same model. On the CPU the engine steps this model
  from the host (``Study(stepping="auto")``; experiments/bench_host_stepping.py measures
  its candidates). ``--layouts`` adds, on one device and 4 members, the engine in every
  layout (vmap, loop, batches of 2), scanned and host-stepped, beside one member's jitted
  step scanned in the program: the per-member-step table behind ``"auto"``'s rules
  (docs/guide/studies.md).

On A and B a row "engine, own step (train_population)" runs the engine's public layers
(:func:`jaxinit.make_population`, :func:`jaxinit.train_population`) with a user step equal
to the built-in one, with its warm ratio to ``run_study`` (paired rounds) printed below
the table (issue 24: within 5 %).

The engine and the hand-written programs are timed in the same device configurations: one
device, and one device per CPU core (members sharded over them); the naive loops and
PyTorch run as written. The ratios compare the engine with the hand-written program that
does the study's job (each initializer's members drawn by that initializer, the test set
evaluated at the end); beside it, the same program compiled with the engine's XLA options
(LLVM level 1 on the CPU), and the minimal program (flax's default init for every member,
the loss only), with the engine's ratios to it. "cold" ratios are cold-start (compilation)
ratios.

Every implementation trains the same members for the same number of steps with in-run
minibatches. "cold" is the first call (compilation included): for the engine and the
hand-written programs measured in a fresh process each (after the imports), so that none
profits from what an earlier one compiled; "warm" is the median of the repeated calls,
made in rounds (one call of every implementation per round) so that the machine's drift
falls on all of them alike. FLOPs count the matrix products only: forward ``2·b·Σ in·out`` per step and
member, training = 3× forward. The ceiling is the best of a large square float32 matmul and
a batched matmul with workload B's shapes, both measured here.

Run::

    python experiments/bench_multiseed.py            # full (a few minutes on 2 cores)
    python experiments/bench_multiseed.py --quick    # < 1 min: naive loops on fewer seeds
    python experiments/bench_multiseed.py --json bench.json
    python experiments/bench_multiseed.py --host-data  # + the engine fed from the host
    python experiments/bench_multiseed.py --only D --layouts  # CNN members: every layout

``--host-data`` adds rows of the engine with its training set kept on the host
(``jaxinit.HostData``, the same examples drawn as in memory): one chunk of all the steps (no
overlap possible: the whole stream is assembled and transferred before training), and
chunks of ``steps / 6`` with the in-memory engine at the same ``eval_every`` beside it (the
next chunk is assembled while the device trains); each row reports the bytes sent and the
seconds the training loop waited for host data.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxinit

INITS = {
    "lecun_normal": "lecun_normal",
    "he_normal": "he_normal",
    "glorot_uniform": "glorot_uniform",
    "torch_default": "torch_default",
}


@dataclass(frozen=True)
class Workload:
    name: str
    seeds_per_init: int
    hidden: int
    batch_size: int
    steps: int
    lr: float = 0.05
    lrs: tuple[float, ...] = ()  # a learning-rate grid (workload C)

    @property
    def members(self) -> int:
        return self.seeds_per_init * len(INITS) * max(1, len(self.lrs))

    def member_lrs(self, n: int) -> np.ndarray:
        """The learning rate of each of the first ``n`` members (grid order: rate fastest)."""
        rates = np.asarray(self.lrs or (self.lr,), np.float32)
        return np.resize(rates, n)

    @property
    def features(self) -> tuple[int, ...]:
        return (self.hidden, self.hidden, self.hidden, 10)

    def flops(self, n_in: int) -> float:
        widths = (n_in, *self.features)
        fwd = 2 * self.batch_size * sum(a * b for a, b in itertools.pairwise(widths))
        return 3.0 * fwd * self.steps * self.members


def _timeit(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(cold seconds, warm median seconds) of ``fn`` (which must block on its result)."""
    colds, rounds = _time_round_robin([fn], [repeats])
    return colds[0], statistics.median(rounds[0] or colds)


def _time_round_robin(
    fns: list[Callable[[], object]], repeats: list[int]
) -> tuple[list[float], list[list[float]]]:
    """Each function's first call (cold seconds), then the repeated calls in rounds, one
    call of every function per round, so that the machine's drift between rounds falls on
    every contender alike (and ratios can be paired by round); each one's round times."""

    def seconds(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    colds = [seconds(fn) for fn in fns]
    rounds: list[list[float]] = [[] for _ in fns]
    for r in range(max(repeats, default=0)):
        for i, fn in enumerate(fns):
            if r < repeats[i]:
                rounds[i].append(seconds(fn))
    return colds, rounds


def _paired_ratio(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Median, min and max of the per-round ratios a / b (rounds paired)."""
    ratios = [x / y for x, y in zip(a, b, strict=False)] or [math.nan]
    return statistics.median(ratios), min(ratios), max(ratios)


# --------------------------------------------------------------------------- implementations


_SGD_MOMENTUM = functools.partial(optax.sgd, momentum=0.9)
ENGINE = "engine (run_study)"
HAND = "hand-written jit(vmap(scan))"
HAND_OPTIONS = "hand-written, engine's XLA options"
# the option the engine compiles its CPU programs with (tests/test_benchmarks.py checks it)
ENGINE_CPU_OPTIONS = {"xla_backend_optimization_level": 1}
HAND_MINIMAL = "hand-written, default init"
HANDS = (HAND, HAND_OPTIONS, HAND_MINIMAL)


def engine(
    w: Workload,
    data: jaxinit.Dataset | jaxinit.HostData,
    devices: list | None = None,
    eval_every: int | None = None,
    info: dict | None = None,
) -> Callable[[], object]:
    grid = (
        {"optimizer": _SGD_MOMENTUM, "hparams": {"learning_rate": list(w.lrs)}}
        if w.lrs
        else {"optimizer": optax.sgd(w.lr, momentum=0.9)}
    )
    study = jaxinit.Study(
        model=jaxinit.MLP(w.features), dataset=data, inits=INITS, seeds=w.seeds_per_init,
        steps=w.steps, batch_size=w.batch_size, log_every=10, eval_every=eval_every, **grid,
    )  # fmt: skip

    def run():
        result = jaxinit.run_study(study, progress=False, devices=devices)
        assert result.diverged.empty
        if info is not None:  # the last run's host-data figures (HostData only)
            info.update(result.info.get("host_data", {}))
        return result

    return run


POPULATION = "engine, own step (train_population)"


def population(
    w: Workload, data: jaxinit.Dataset, devices: list | None = None
) -> Callable[[], object]:
    """The engine's public layers with a user step equal to the built-in one (SGD with
    momentum, cross-entropy; train loss and accuracy, gradient and parameter norms; the
    test set evaluated at the start and the end): make_population + train_population."""
    model = jaxinit.MLP(w.features)
    tx = optax.sgd(w.lr, momentum=0.9)

    def norm(tree):
        return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))

    def step(state, batch, key, hparams):
        x, y = batch

        def loss_fn(params):
            logits = model.apply({"params": params}, x)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, (jnp.argmax(logits, -1) == y).mean(dtype=jnp.float32)

        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"train_loss": loss, "train_accuracy": acc, "grad_norm": norm(grads),
                   "param_norm": norm(params)}  # fmt: skip
        return state._replace(params=params, opt_state=opt_state), metrics

    def evaluate(state, batch):
        x, y = batch
        logits = model.apply({"params": state.params}, x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return {"loss": loss, "accuracy": (jnp.argmax(logits, -1) == y).mean(dtype=jnp.float32)}

    def run():
        pop = jaxinit.make_population(model, data, INITS, seeds=w.seeds_per_init, optimizer=tx,
                                      devices=devices)  # fmt: skip
        _, result = jaxinit.train_population(
            pop, step, data, steps=w.steps, batch_size=w.batch_size, log_every=10,
            evaluate=evaluate, last=("grad_norm", "param_norm"), progress=False,
        )  # fmt: skip
        assert result.diverged.empty
        return result

    return run


def _loss_fn(model: nn.Module, params, x, y):
    logits = model.apply({"params": params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def naive(w: Workload, data: jaxinit.Dataset, members: int) -> Callable[[], object]:
    """What most code does: a jitted train step called from Python, one member after another,
    minibatch indices drawn on the host, the loss fetched every 10 steps."""
    model = jaxinit.MLP(w.features)
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=w.lr, momentum=0.9)
    x_train, y_train = data.x_train, data.y_train
    rates = w.member_lrs(members)

    @jax.jit
    def train_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(lambda p: _loss_fn(model, p, x, y))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def run():
        losses = []
        for m in range(members):
            rng = np.random.default_rng(m)
            params = model.init(jax.random.key(m), x_train[:1])["params"]
            opt_state = tx.init(params)
            opt_state.hyperparams["learning_rate"] = jnp.asarray(rates[m])
            for step in range(w.steps):
                idx = rng.integers(0, len(x_train), w.batch_size)
                params, opt_state, loss = train_step(params, opt_state, x_train[idx], y_train[idx])
                if step % 10 == 9:
                    losses.append(float(loss))
        return losses

    return run


def handwritten(
    w: Workload,
    data: jaxinit.Dataset,
    devices: list | None = None,
    same_work: bool = True,
    options: dict | None = None,
) -> Callable[[], object]:
    """purejaxrl style: ``jit(vmap(train))`` with ``lax.scan`` over steps, loss per step;
    on several devices the members (keys) are sharded over them, as the engine does.

    ``same_work`` (the contender of the ratios): the study's job written by hand, one
    program: each initializer's members initialized by a vmapped ``init`` with that
    initializer as ``kernel_init`` (concatenated into one population), trained by one
    ``vmap(scan)``, and the test set evaluated at the end (loss and accuracy). Without it,
    the minimal program: flax's default init for every member, the loss only (a study
    would need 16 random draws where it has 4, and no evaluation). ``options``: XLA compiler
    options of its program (the engine's own, to show what they are worth).

    Its member keys are drawn and placed on the first call, so that its cold time starts
    from the same point as the engine's (which draws and places its own inside
    ``run_study``)."""
    inits = [jaxinit.get(n) for n in INITS.values()] if same_work else [None]
    models = [
        jaxinit.MLP(w.features) if i is None else jaxinit.MLP(w.features, kernel_init=i)
        for i in inits
    ]
    model = models[0]
    tx = optax.sgd(w.lr, momentum=0.9)
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)

    def train(params, key):
        def step(carry, k):
            params, opt_state = carry
            idx = jax.random.randint(k, (w.batch_size,), 0, x_train.shape[0])
            loss, grads = jax.value_and_grad(
                lambda p: _loss_fn(model, p, x_train[idx], y_train[idx])
            )(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, _), losses = jax.lax.scan(
            step, (params, tx.init(params)), jax.random.split(key, w.steps)
        )
        return params, losses

    def evaluate(params):
        logits = model.apply({"params": params}, x_test)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y_test).mean()
        return loss, (jnp.argmax(logits, -1) == y_test).mean()

    def population(keys):
        pairs = jax.vmap(jax.random.split)(keys)
        k_init, k_data = pairs[:, 0], pairs[:, 1]
        groups = jnp.split(k_init, len(models))
        parts = [
            jax.vmap(lambda k, m=m: m.init(k, x_train[:1])["params"])(g)
            for m, g in zip(models, groups, strict=True)
        ]
        params = jax.tree.map(lambda *p: jnp.concatenate(p), *parts)
        params, losses = jax.vmap(train)(params, k_data)
        return (losses, jax.vmap(evaluate)(params)) if same_work else losses

    devices = devices or jax.devices()[:1]

    @functools.cache
    def setup():  # on the first call, inside the cold time (as the engine's own setup is)
        keys = jax.random.split(jax.random.key(0), w.members)
        if len(devices) == 1:
            with jax.default_device(devices[0]):
                keys = jax.device_put(keys, devices[0])
            return jax.jit(population, compiler_options=options), keys
        from jax.sharding import AxisType, NamedSharding
        from jax.sharding import PartitionSpec as P

        assert w.members % len(devices) == 0, "members must fill the devices"
        mesh = jax.make_mesh((len(devices),), ("m",), (AxisType.Auto,), devices=devices)
        sharding = NamedSharding(mesh, P("m"))
        keys = jax.device_put(keys, sharding)
        program = jax.jit(
            population, in_shardings=sharding, out_shardings=sharding, compiler_options=options
        )
        return program, keys

    def run():
        program, keys = setup()
        return jax.block_until_ready(program(keys))

    return run


def torch_impls(w: Workload, data: jaxinit.Dataset, members: int) -> dict[str, Callable]:
    try:
        import torch

        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _torch_models import train_ensemble
    except ImportError:
        return {}
    torch.set_num_threads(max(1, torch.get_num_threads()))
    x_train = torch.from_numpy(np.asarray(data.x_train))
    y_train = torch.from_numpy(np.asarray(data.y_train)).long()
    widths = (x_train.shape[1], *w.features)

    def make():
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(torch.nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    rates = w.member_lrs(members)

    def sequential():
        for m in range(members):
            torch.manual_seed(m)
            net = make()
            opt = torch.optim.SGD(net.parameters(), lr=float(rates[m]), momentum=0.9)
            for _ in range(w.steps):
                idx = torch.randint(0, len(x_train), (w.batch_size,))
                loss = torch.nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()

    def ensemble():
        torch.manual_seed(0)
        train_ensemble(make, w.members, x_train, y_train, w.steps, w.batch_size,
                       torch.from_numpy(w.member_lrs(w.members)))  # fmt: skip

    return {"torch sequential": sequential, "torch.func vmap": ensemble}


def _contender(name: str, w: Workload, data: jaxinit.Dataset, devices: list) -> Callable:
    """The engine or a hand-written program by its row name (built again in a fresh process
    for its cold start)."""
    options = ENGINE_CPU_OPTIONS if devices[0].platform == "cpu" else None
    return {
        ENGINE: lambda: engine(w, data, devices),
        POPULATION: lambda: population(w, data, devices),
        HAND: lambda: handwritten(w, data, devices),
        HAND_OPTIONS: lambda: handwritten(w, data, devices, True, options),
        HAND_MINIMAL: lambda: handwritten(w, data, devices, False),
    }[name]()


def _cold_in_fresh_process(name: str, workload: str, n_devices: int) -> float:
    """Seconds of the first call of a contender in a new process (imports excluded): every
    contender compiles from the same empty caches, whatever ran before it here."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, __file__, "--cold-of", name, "--only", workload,
         "--devices", str(n_devices)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- workload D


@dataclass(frozen=True)
class CNNWorkload:
    """D: a BatchNorm ResNet population on digits."""

    seeds_per_init: int = 8
    channels: tuple[int, ...] = (16, 32)
    batch_size: int = 64
    steps: int = 10
    lr: float = 0.05

    @property
    def members(self) -> int:
        return self.seeds_per_init * len(INITS)


D_ENGINE = "engine, member_layout='auto'"
D_NAIVE = "naive jitted-step loop"


def cnn_engine(
    w: CNNWorkload, data: jaxinit.Dataset, devices: list, layout: object = "auto",
    seeds: int | None = None, info: dict | None = None, stepping: str = "auto",
) -> Callable[[], object]:  # fmt: skip
    study = jaxinit.Study(
        model=jaxinit.ResNet(channels=w.channels), dataset=data,
        optimizer=optax.sgd(w.lr, momentum=0.9), inits=INITS,
        seeds=seeds or w.seeds_per_init, steps=w.steps, batch_size=w.batch_size,
        log_every=10, member_layout=layout, stepping=stepping,
    )  # fmt: skip

    def run():
        result = jaxinit.run_study(study, progress=False, devices=devices)
        assert result.diverged.empty
        if info is not None:
            info.update(result.info)
        return result

    return run


def cnn_naive(w: CNNWorkload, data: jaxinit.Dataset, members: int) -> Callable[[], object]:
    """One member after another: a jitted SGD step with BatchNorm (``batch_stats``
    mutable), minibatch indices drawn on the host, the loss fetched every 10 steps."""
    model = jaxinit.ResNet(channels=w.channels)
    tx = optax.sgd(w.lr, momentum=0.9)
    x_train, y_train = data.x_train, data.y_train

    @jax.jit
    def train_step(params, stats, opt_state, x, y):
        def loss_fn(p):
            logits, new = model.apply(
                {"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, new["batch_stats"]

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    def run():
        losses = []
        for m in range(members):
            rng = np.random.default_rng(m)
            variables = model.init(jax.random.key(m), x_train[:1])
            params, stats = variables["params"], variables["batch_stats"]
            opt_state = tx.init(params)
            for step in range(w.steps):
                idx = rng.integers(0, len(x_train), w.batch_size)
                params, stats, opt_state, loss = train_step(
                    params, stats, opt_state, x_train[idx], y_train[idx]
                )
                if step % 10 == 9:
                    losses.append(float(loss))
        return losses

    return run


def cnn_step_only(w: CNNWorkload, data: jaxinit.Dataset) -> Callable[[], object]:
    """One member's jitted step called ``steps`` times on a fixed batch (no host work):
    the per-member-step floor that a layout is compared with."""
    model = jaxinit.ResNet(channels=w.channels)
    tx = optax.sgd(w.lr, momentum=0.9)
    x, y = data.x_train[: w.batch_size], data.y_train[: w.batch_size]
    variables = model.init(jax.random.key(0), x)

    @jax.jit
    def steps(params, stats, opt_state):
        def step(carry, _):
            params, stats, opt_state = carry

            def loss_fn(p):
                logits, new = model.apply(
                    {"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
                )
                loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
                return loss, new["batch_stats"]

            (_, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), stats, opt_state), None

        return jax.lax.scan(step, (params, stats, opt_state), length=w.steps)[0]

    args = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
    return lambda: jax.block_until_ready(steps(*args))


def cnn_torch(w: CNNWorkload, data: jaxinit.Dataset) -> dict[str, Callable]:
    """A ``torch.func`` vmap ensemble of the same ResNet (BatchNorm in training mode, its
    running statistics not tracked: functional_call cannot update buffers under vmap);
    only where torch is importable."""
    try:
        import torch

        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _torch_models import resnet, train_ensemble  # jaxinit.ResNet's twin
    except ImportError:
        return {}
    x_train = torch.from_numpy(np.asarray(data.x_train, np.float32)).reshape(-1, 1, 8, 8)
    y_train = torch.from_numpy(np.asarray(data.y_train)).long()

    def make():
        return resnet(1, w.channels)

    def ensemble():
        torch.manual_seed(0)
        train_ensemble(make, w.members, x_train, y_train, w.steps, w.batch_size, w.lr)

    return {"torch.func vmap ensemble": ensemble}


def cnn_rows(
    data: jaxinit.Dataset, devices: list, repeats: int, quick: bool = False,
    layouts: bool = False,
) -> list[dict]:  # fmt: skip
    """Workload D's rows: seconds per member-step of every contender, and the engine's
    paired ratio to the naive loop (> 1: the engine is faster)."""
    # --quick: a smoke test (4 members of a one-block ResNet on batches of 8; the naive
    # loop on one member), every contender run once after its cold start
    w = CNNWorkload(seeds_per_init=1, channels=(4,), batch_size=8) if quick else CNNWorkload()
    nm = 1 if quick else 4  # the naive loop runs this many members, scaled to all
    info: dict = {}
    # (name, devices, members, function, scale to the population)
    impls: list[tuple[str, int, int, Callable, float]] = [
        (D_ENGINE, len(devices), w.members, cnn_engine(w, data, devices, info=info), 1.0),
        (D_NAIVE, 1, nm, cnn_naive(w, data, nm), w.members / nm),
    ]
    if not quick:  # torch's ResNet has two stages
        impls += [(k, 1, w.members, f, 1.0) for k, f in cnn_torch(w, data).items()]
    if layouts:  # the rule's table: one device, 4 members, every layout
        one = devices[:1]
        impls.append(("one member's step, scanned in jit", 1, 1, cnn_step_only(w, data), 1.0))
        for lay, stepping in itertools.product(("vmap", "loop", 2), ("scan", "host")):
            impls.append((f"engine 1 device, {stepping}, member_layout={lay!r}", 1, 4,
                          cnn_engine(w, data, one, lay, seeds=1, stepping=stepping), 1.0))  # fmt: skip
    reps = [repeats if name in (D_ENGINE, D_NAIVE) else max(1, min(repeats, 2))
            for name, *_ in impls]  # fmt: skip
    colds, rounds = _time_round_robin([f for *_, f, _ in impls], reps)
    out = []
    for (name, ndev, members, _, scale), cold, each in zip(impls, colds, rounds, strict=True):
        warm = statistics.median(each or [cold]) * scale
        row = {
            "workload": "D", "impl": name, "devices": ndev, "members": w.members,
            "cold_s": cold, "warm_s": warm, "extrapolated": scale != 1.0,
            "ms_per_member_step": 1e3 * warm / (w.steps * (w.members if scale != 1.0 else members)),
        }  # fmt: skip
        if name == D_ENGINE:
            row["member_layout"] = info.get("member_layout")
            row["member_layout_reason"] = info.get("member_layout_reason")
            row["stepping"] = info.get("stepping")
            naive_rounds = rounds[[n for n, *_ in impls].index(D_NAIVE)]
            # paired by round: naive (scaled to every member) / engine; > 1: engine faster
            mid, lo, hi = _paired_ratio([t * (w.members / nm) for t in naive_rounds], each)
            row["naive_over_engine"], row["naive_over_engine_range"] = mid, [lo, hi]
        out.append(row)
    return out


def _report_d(args: argparse.Namespace, rows: list[dict]) -> dict:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({platform.processor()}),"
          f" {jax.device_count()} device(s); workload D (ResNet on digits)")  # fmt: skip
    head = f"{'implementation':<44}{'dev':>4}{'cold s':>9}{'warm s':>10}{'ms/member-step':>16}"
    print(head)
    print("-" * len(head))
    for r in rows:
        mark = "*" if r["extrapolated"] else " "
        print(f"{r['impl']:<44}{r['devices']:>4}{r['cold_s']:>9.2f}{r['warm_s']:>9.3f}{mark}"
              f"{r['ms_per_member_step']:>16.2f}")  # fmt: skip
    for r in rows:
        if "naive_over_engine" in r:
            lo, hi = r["naive_over_engine_range"]
            print(f"D: engine chose {r['member_layout']!r} ({r['member_layout_reason']}),"
                  f" stepping {r['stepping']!r};"
                  f" naive loop / engine = {r['naive_over_engine']:.2f} [{lo:.2f}, {hi:.2f}]"
                  " (paired rounds; > 1: the engine is faster)")  # fmt: skip
    if any(r["extrapolated"] for r in rows):
        print("* the naive loop is timed on a few members and scaled to all of them")
    report = {"jax": jax.__version__, "devices": jax.device_count(), "rows": rows}
    if args.json and args.only == "D":
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


# --------------------------------------------------------------------------- ceiling


def matmul_ceiling(w: Workload, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a 2048² float32 matmul and of a batched matmul with B's hidden shapes."""
    out = {}
    k1, k2 = jax.random.split(jax.random.key(0))
    n = 2048
    a, b = jax.random.normal(k1, (n, n)), jax.random.normal(k2, (n, n))
    f = jax.jit(jnp.matmul)
    f(a, b).block_until_ready()
    _, t = _timeit(lambda: f(a, b).block_until_ready(), repeats)
    out["square_2048"] = 2 * n**3 / t / 1e9
    m, h, reps = w.members, w.hidden, 50
    x = jax.random.normal(k1, (m, w.batch_size, h))
    y = jax.random.normal(k2, (m, h, h))

    @jax.jit
    def chain(x, y):  # repeated batched products, so that dispatch does not count
        return jax.lax.fori_loop(0, reps, lambda _, z: jnp.tanh(z @ y), x)

    chain(x, y).block_until_ready()
    _, t = _timeit(lambda: chain(x, y).block_until_ready(), repeats)
    out["batched_workload_B"] = 2 * m * w.batch_size * h * h * reps / t / 1e9
    return out


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fit in a minute")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--only", choices=["A", "B", "C", "D"], default=None)
    parser.add_argument("--layouts", action="store_true", help="D: every member layout")
    parser.add_argument("--host-data", action="store_true", help="add host-fed engine rows")
    parser.add_argument("--cold-of", metavar="NAME", help=argparse.SUPPRESS)  # a child's job
    parser.add_argument("--devices", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    data = jaxinit.digits()
    host = jaxinit.HostData(
        "digits", train=(data.x_train, data.y_train), test=(data.x_test, data.y_test),
        num_classes=data.num_classes,
    )  # fmt: skip
    host_info: dict[tuple, dict] = {}
    workloads = {
        "A": Workload("A", seeds_per_init=8, hidden=32, batch_size=64, steps=300),
        "B": Workload("B", seeds_per_init=4, hidden=256, batch_size=128, steps=300),
        "C": Workload("C", seeds_per_init=16, hidden=32, batch_size=64, steps=300,
                      lrs=(0.01, 0.02, 0.05, 0.1)),
    }  # fmt: skip
    one, every = jax.devices()[:1], jax.devices()
    if args.cold_of:  # in a fresh process: one contender's first call, in seconds
        fn = _contender(args.cold_of, workloads[args.only or "A"], data, every[: args.devices])
        t0 = time.perf_counter()
        fn()
        print(time.perf_counter() - t0)
        return {}
    repeats = args.repeats or (1 if args.quick else 5)
    if args.only == "D":  # the CNN population only (no matmul ceiling: not a matmul workload)
        return _report_d(args, cnn_rows(data, every, repeats, args.quick, args.layouts))
    # --quick times the one-member-at-a-time loops on a few members and scales linearly.
    naive_members = 2 if args.quick else None
    ceiling = matmul_ceiling(workloads["B"])
    peak = max(ceiling.values())
    rows = []
    for wname, w in workloads.items():
        if args.only and wname != args.only:
            continue
        flops = w.flops(data.x_train.shape[1])
        # C: the one-member-at-a-time loops are timed on 16 members and scaled (256 would
        # take minutes and say nothing more)
        nm = naive_members or (16 if w.lrs else w.members)
        # (name, devices, program, scale): the engine and the hand-written program in both
        # device configurations; C has no hand-written row (a per-member rate is the engine's)
        # (--quick: all devices only, to stay a smoke test)
        configs = [every] if args.quick or len(every) == 1 else [one, every]
        impls: list[tuple[str, int, Callable, float]] = []
        for devs in configs:
            impls.append((ENGINE, len(devs), engine(w, data, devs), 1.0))
            if args.host_data:
                chunk = w.steps // 6
                for name, d, every in (
                    ("host-fed engine, 1 chunk", host, None),
                    (f"in-memory engine, eval_every={chunk}", data, chunk),
                    (f"host-fed engine, eval_every={chunk}", host, chunk),
                ):
                    info = host_info.setdefault((name, len(devs)), {})
                    impls.append((name, len(devs), engine(w, d, devs, every, info), 1.0))
            if not w.lrs:
                impls.append((POPULATION, len(devs), population(w, data, devs), 1.0))
                impls += [(n, len(devs), _contender(n, w, data, devs), 1.0) for n in HANDS]
        impls.append(("naive Flax loop", 1, naive(w, data, nm), w.members / nm))
        impls += [(k, 1, f, w.members / nm if "seq" in k else 1.0) for k, f in
                  torch_impls(w, data, nm).items()]  # fmt: skip
        reps = [1 if scale != 1.0 or "naive" in n or "seq" in n else repeats
                for n, _, _, scale in impls]  # fmt: skip
        colds, rounds = _time_round_robin([fn for _, _, fn, _ in impls], reps)
        results, times = {}, {}
        for (name, ndev, _, scale), cold, each in zip(impls, colds, rounds, strict=True):
            if not args.quick and (name in (ENGINE, POPULATION) or name in HANDS):
                cold = _cold_in_fresh_process(name, wname, ndev)
            warm = statistics.median(each or [cold])
            # Extrapolated rows: one compilation, then every member costs a warm run's share.
            results[name, ndev] = (cold + warm * (scale - 1), warm * scale, scale != 1.0)
            times[name, ndev] = each
        base = results["naive Flax loop", 1][1]
        best_engine = min(v[1] for (n, _), v in results.items() if n.startswith("engine"))
        for (name, ndev), (cold, warm, scaled) in results.items():
            gflops = flops / warm / 1e9
            row = {
                "workload": wname, "impl": name, "devices": ndev, "members": w.members,
                "cold_s": cold, "warm_s": warm, "speedup_vs_naive": base / warm,
                "speedup_vs_engine": warm / best_engine,
                "gflops": gflops, "pct_ceiling": 100 * gflops / peak, "extrapolated": scaled,
            }  # fmt: skip
            hand, minimal = results.get((HAND, ndev)), results.get((HAND_MINIMAL, ndev))
            if name == ENGINE and hand is not None and minimal is not None:
                # same device configuration, > 1 means the engine is slower; warm: the median
                # [min, max] of the ratios paired by round
                for key, other in (("handwritten", HAND), ("minimal", HAND_MINIMAL)):
                    mid, lo, hi = _paired_ratio(times[name, ndev], times[other, ndev])
                    row[f"warm_vs_{key}"], row[f"warm_vs_{key}_range"] = mid, [lo, hi]
                    row[f"cold_vs_{key}"] = cold / results[other, ndev][0]
            if name == POPULATION and (ENGINE, ndev) in times:  # the same engine, your step
                mid, lo, hi = _paired_ratio(times[name, ndev], times[ENGINE, ndev])
                row["warm_vs_study"], row["warm_vs_study_range"] = mid, [lo, hi]
            if (name, ndev) in host_info:
                row.update({f"host_{k}": v for k, v in host_info[name, ndev].items()})
            rows.append(row)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({platform.processor()}),"
          f" {jax.device_count()} device(s)")  # fmt: skip
    print("matmul ceiling GFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in ceiling.items()))
    head = (f"{'wl':<3}{'implementation':<36}{'dev':>4}{'cold s':>9}{'warm s':>10}{'× naive':>9}"
            f"{'GFLOP/s':>9}{'% ceil':>8}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        mark = "*" if r["extrapolated"] else " "
        print(f"{r['workload']:<3}{r['impl']:<36}{r['devices']:>4}{r['cold_s']:>9.2f} "
              f"{r['warm_s']:>8.3f}{mark}"
              f"{r['speedup_vs_naive']:>9.1f}{r['gflops']:>9.1f}{r['pct_ceiling']:>7.0f}%")  # fmt: skip
    if any(r["extrapolated"] for r in rows):
        print("* measured on fewer members (--quick: 2; C: 16), scaled linearly to all members")
    where = "this process" if args.quick else "a fresh process each"
    print("engine / hand-written, same devices: warm = median [min, max] of the ratios of"
          f" {repeats} paired rounds; cold = first calls in {where}")  # fmt: skip
    for r in rows:
        if "warm_vs_handwritten" in r:
            ratios = [
                f"/ {label}: {r[f'warm_vs_{key}']:.2f} [{r[f'warm_vs_{key}_range'][0]:.2f},"
                f" {r[f'warm_vs_{key}_range'][1]:.2f}] warm, {r[f'cold_vs_{key}']:.2f} cold"
                for key, label in (("handwritten", "study's job"), ("minimal", "minimal"))
            ]
            print(f"{r['workload']}, {r['devices']} device(s): " + "; ".join(ratios))
    for r in rows:
        if "warm_vs_study" in r:
            lo, hi = r["warm_vs_study_range"]
            print(f"{r['workload']}, {r['devices']} device(s): own step (train_population) /"
                  f" Study: {r['warm_vs_study']:.2f} [{lo:.2f}, {hi:.2f}] warm")  # fmt: skip
    for r in rows:
        if "host_bytes" in r:
            print(f"{r['workload']}, {r['devices']} device(s), {r['impl']}: "
                  f"{r['host_bytes'] / r['host_chunks'] / 1e6:.1f} MB per chunk, "
                  f"{r['host_prepare_s']:.3f} s assembling, {r['host_wait_s']:.3f} s waited")  # fmt: skip
    report = {
        "jax": jax.__version__, "devices": jax.device_count(), "quick": args.quick,
        "ceiling_gflops": ceiling,
        "workloads": {k: asdict(v) for k, v in workloads.items()}, "rows": rows,
    }  # fmt: skip
    if args.only is None:
        report["rows"] += _report_d(args, cnn_rows(data, every, repeats, args.quick))["rows"]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    # As in the CLI: one device per CPU core (the engine shards its members over them; the
    # other implementations run on one device, as written), and non-partitionable threefry,
    # which compiles much faster on the CPU.
    import jaxinit.cli

    with jaxinit.cli.process_settings():
        main()
