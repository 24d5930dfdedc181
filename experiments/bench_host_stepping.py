"""Workload D's candidates for host stepping (docs/guide/studies.md): the engine with
``stepping="host"`` in every member layout (the engine's 2 unrolled steps per call), and a
user's own step (``train_population``, stepping "auto" = host and "scan"), beside the naive
jitted-step loop, in paired rounds (one call of each per round). (The 1- and
5-step rows of the guide's table were measured with the engine's private ``HOST_UNROLL``
edited; a benchmark uses the public API only.)

Run::

    python experiments/bench_host_stepping.py [--seeds 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import statistics
import sys

import jax
import jax.numpy as jnp
import optax

import jaxinit

_spec = importlib.util.spec_from_file_location(
    "bench_multiseed", os.path.join(os.path.dirname(__file__), "bench_multiseed.py")
)
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_multiseed"] = bench
assert _spec.loader is not None
_spec.loader.exec_module(bench)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds per initializer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scan", action="store_true", help="add the scanned engine")
    args = parser.parse_args(argv)
    data, devices = jaxinit.digits(), jax.devices()
    w = bench.CNNWorkload(seeds_per_init=args.seeds)
    members = w.members

    def engine(layout: object, stepping: str = "host"):
        study = dataclasses.replace(_study(layout), stepping=stepping)

        def call():
            result = jaxinit.run_study(study, progress=False, devices=devices)
            assert result.info["stepping"] == stepping
            return result

        return call

    def _study(layout: object) -> jaxinit.Study:
        return jaxinit.Study(
            model=jaxinit.ResNet(channels=w.channels), dataset=data,
            optimizer=optax.sgd(w.lr, momentum=0.9), inits=bench.INITS,
            seeds=args.seeds, steps=w.steps, batch_size=w.batch_size, log_every=10,
            member_layout=layout,
        )  # fmt: skip

    impls = [("naive jitted-step loop", bench.cnn_naive(w, data, members))]
    for layout in ("loop", "vmap", 2):
        impls.append((f"host, member_layout={layout!r}", engine(layout)))
    impls.append(("own step (train_population), auto", own_step(w, data, args.seeds, "auto")))
    if args.scan:
        impls.append(("scan, member_layout='loop'", engine("loop", "scan")))
        impls.append(("own step (train_population), scan",
                      own_step(w, data, args.seeds, "scan")))  # fmt: skip
    colds, rounds = bench._time_round_robin([f for _, f in impls], [args.repeats] * len(impls))
    naive = rounds[0]
    out = []
    print(f"jax {jax.__version__}, {len(devices)} device(s); {members} members, {w.steps} steps")
    for (name, _), cold, each in zip(impls, colds, rounds, strict=True):
        ms = 1e3 * statistics.median(each) / (members * w.steps)
        mid, lo, hi = bench._paired_ratio(naive, each)
        print(f"{name:<44} cold {cold:7.1f} s  {ms:8.2f} ms/member-step"
              f"  naive/this {mid:.2f} [{lo:.2f}, {hi:.2f}]")  # fmt: skip
        out.append({"impl": name, "cold_s": cold, "ms_per_member_step": ms, "ratio": mid})
    return out


def own_step(w, data: jaxinit.Dataset, seeds: int, stepping: str):
    """The same ResNet trained by a user's step (SGD with momentum, BatchNorm statistics
    in ``model_state``): make_population + train_population."""
    model = jaxinit.ResNet(channels=w.channels)
    tx = optax.sgd(w.lr, momentum=0.9)

    def step(state, batch, key, hparams):
        def loss_fn(p):
            logits, new = model.apply({"params": p, **state.model_state}, batch[0], train=True,
                                      mutable=["batch_stats"])  # fmt: skip
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()
            return loss, new

        (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        state = state._replace(params=params, opt_state=opt_state, model_state=dict(new))
        return state, {"train_loss": loss.astype(jnp.float32)}

    def call():
        pop = jaxinit.make_population(model, data, bench.INITS, seeds=seeds, optimizer=tx)
        _, result = jaxinit.train_population(pop, step, data, steps=w.steps,
                                             batch_size=w.batch_size, log_every=10,
                                             progress=False, stepping=stepping)  # fmt: skip
        assert result.info["stepping"] == ("host" if stepping == "auto" else stepping)
        return result

    return call


if __name__ == "__main__":
    import jaxinit.cli

    with jaxinit.cli.process_settings():  # as bench_multiseed.py: one device per CPU core
        main()
