"""Benchmark: device memory and speed of a study fed from the host (``jaxinit.HostData``)
against the same study with its training set on the device (``jaxinit.Dataset``), as the
training set grows.

A synthetic 10-class problem (64 standard normal features, the label the argmax of a fixed
linear map) of ``n`` training examples, stored as ``.npy`` files and memory-mapped for the
host-fed run. Both runs train the same population (2 initializers × 4 seeds, MLP
64-32-32-10, batch 64, ``steps`` of SGD with momentum, chunks of ``eval_every`` steps) on the
same minibatches (the host-fed run draws the same indices).

"device bytes" is the peak, during the run, of the bytes held by live jax arrays (sampled
every 2 ms by a thread) above what was live before it: on the device that is the training
set plus parameters, optimizer state and the test set for the in-memory run, and one chunk
of minibatches instead of the training set for the host-fed one. The host-fed figure must
stay flat as ``n`` grows; the in-memory one grows with ``n``.

Run::

    python experiments/bench_host_data.py            # n up to 10^6 (260 MB), ~ a minute
    python experiments/bench_host_data.py --quick    # seconds: n = 10^3, 10^4
    python experiments/bench_host_data.py --json bench_host_data.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time

import jax
import numpy as np
import optax

import jaxinit


def make_data(n: int, n_test: int, directory: str, seed: int = 0):
    """(in-memory Dataset, memory-mapped HostData) of the same examples."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(64, 10)).astype(np.float32)
    x = rng.normal(size=(n + n_test, 64)).astype(np.float32)
    y = np.argmax(x @ w, axis=1).astype(np.int32)
    np.save(os.path.join(directory, "x.npy"), x[:n])
    np.save(os.path.join(directory, "y.npy"), y[:n])
    test = (x[n:], y[n:])
    memory = jaxinit.Dataset("synthetic", x[:n], y[:n], *test, num_classes=10)
    xm = np.load(os.path.join(directory, "x.npy"), mmap_mode="r")
    ym = np.load(os.path.join(directory, "y.npy"), mmap_mode="r")
    host = jaxinit.HostData("synthetic", train=(xm, ym), test=test, num_classes=10)
    return memory, host


def _live_bytes() -> int:
    return sum(a.nbytes for a in jax.live_arrays())


def measure(study: jaxinit.Study) -> dict:
    """Wall seconds and peak live device bytes (above the baseline) of one run."""
    base, peak, stop = _live_bytes(), [0], threading.Event()

    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], _live_bytes() - base)
            time.sleep(0.002)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    result = jaxinit.run_study(study, progress=False)
    seconds = time.perf_counter() - t0
    stop.set()
    thread.join()
    assert result.diverged.empty
    final = result.table[(result.table.metric == "test_accuracy")]
    return {
        "seconds": seconds,
        "device_bytes": peak[0],
        "test_accuracy": float(final[final.step == final.step.max()].value.mean()),
        "host_data": result.info.get("host_data"),
        "table": result.table,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds: small sizes")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args(argv)
    sizes = [10**3, 10**4] if args.quick else [10**4, 10**5, 10**6]
    steps, eval_every = (20, 10) if args.quick else (300, 50)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for n in sizes:
            memory, host = make_data(n, 2000, directory)
            for impl, data in (("in-memory", memory), ("host-fed", host)):
                study = jaxinit.Study(
                    jaxinit.MLP((32, 32, 10)), data, optax.sgd(0.05, momentum=0.9),
                    inits={"he": "he_normal", "glorot": "glorot_uniform"}, seeds=4,
                    steps=steps, batch_size=64, log_every=10, eval_every=eval_every,
                )  # fmt: skip
                jaxinit.run_study(study, progress=False)  # compile (cached for the timed run)
                m = measure(study)
                rows.append({"impl": impl, "n_train": n, "train_bytes": n * 65 * 4, **m})
            a, b = rows[-2].pop("table"), rows[-1].pop("table")
            rows[-1]["same_table"] = bool(a.equals(b))
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s)")
    head = (
        f"{'n_train':>9}{'impl':>11}{'train MB':>10}{'device MB':>11}{'warm s':>8}{'test acc':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['n_train']:>9}{r['impl']:>11}{r['train_bytes'] / 1e6:>10.1f}"
            f"{r['device_bytes'] / 1e6:>11.1f}{r['seconds']:>8.2f}{r['test_accuracy']:>9.3f}"
        )
    for r in rows:
        if r["host_data"]:
            h = r["host_data"]
            print(
                f"n={r['n_train']}: host-fed {h['bytes'] / h['chunks'] / 1e6:.1f} MB per chunk,"
                f" waited {h['wait_s']:.3f} s of {r['seconds']:.2f} s; same table as in"
                f" memory: {r['same_table']}"
            )
    for r in rows:  # for the smoke test's common row format
        r["warm_s"] = r["seconds"]
    report = {"jax": jax.__version__, "devices": jax.device_count(), "quick": args.quick,
              "steps": steps, "eval_every": eval_every, "rows": rows}  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    jaxinit.use_cpu_cores()  # as the CLI: one device per CPU core, members sharded
    main()
