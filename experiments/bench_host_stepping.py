"""Workload D's candidates for host stepping (docs/guide/studies.md): the engine with
``stepping="host"`` in every member layout (the engine's 2 unrolled steps per call), beside
the naive jitted-step loop, in paired rounds (one call of each per round). (The 1- and
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
    if args.scan:
        impls.append(("scan, member_layout='loop'", engine("loop", "scan")))
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


if __name__ == "__main__":
    import jaxinit.cli

    with jaxinit.cli.process_settings():  # as bench_multiseed.py: one device per CPU core
        main()
