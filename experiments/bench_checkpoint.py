"""Benchmark: writing a study's checkpoint from 2 processes, each process its own shards
through orbax-checkpoint (what ``jaxinit.run_study(..., out_dir=...)`` does now) against
gathering every member to each process and writing one ``.npz`` from process 0 (what it
did before: ``process_allgather`` then ``np.savez``).

Two local JAX processes on the CPU (``jax.distributed``, gloo), one device each, hold a
member-sharded population: two leaves of shape ``(members, params / 2)`` float32 sharded
on the member axis, as the engine's state is. Each method runs in a fresh pair of
processes (peak RSS is a high-water mark) and saves ``saves`` times (the first one warms
up: imports, directories, compiling the gather); the figures are the later saves':
``write_s`` until the checkpoint is complete on disk, ``blocking_s`` until ``save``
returns (orbax writes in the background: the next chunk can train meanwhile), and
``peak_mb`` the process's peak RSS above what it held before the first save
(``resource.getrusage``). The orbax write mirrors the library's (``PyTreeSave`` of the
leaves plus a ``JsonSave`` item through an async ``CheckpointManager``; experiments use the
public API only, so the library's private writer is not imported here).

Run::

    python experiments/bench_checkpoint.py            # 32 members × 2·10^6 params (256 MB)
    python experiments/bench_checkpoint.py --quick    # seconds: 8 members × 2·10^4
    python experiments/bench_checkpoint.py --json bench_checkpoint.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

METHODS = ("orbax, own shards", "gather to process 0, npz")


def _worker(method: str, port: str, pid: int, out: str, members: int, params: int, saves: int):
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    import numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((2,), ("members",), devices=jax.devices())
    sharding = NamedSharding(mesh, P("members"))
    shape = (members, params // 2)

    def shard(idx, salt):
        rows = np.arange(members, dtype=np.float32)[idx[0]]
        return rows[:, None] + salt + np.arange(shape[1], dtype=np.float32)[None, :] * 1e-6

    leaves = [
        jax.make_array_from_callback(shape, sharding, lambda idx, s=s: shard(idx, s))
        for s in (0.0, 0.5)
    ]
    records = np.zeros((members * 100, 4))
    if method == METHODS[0]:
        import orbax.checkpoint as ocp

        options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=True)
        manager = ocp.CheckpointManager(
            os.path.join(out, "orbax"), options=options, item_names=("state", "meta")
        )
    multihost_utils.sync_global_devices("ready")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for step in range(1, saves + 1):
        t0 = time.perf_counter()
        if method == METHODS[0]:
            manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.PyTreeSave({f"leaf_{i}": a for i, a in enumerate(leaves)}),
                    meta=ocp.args.JsonSave({"done": step, "members": members}),
                ),
                force=True,
            )
            blocking = time.perf_counter() - t0
            manager.wait_until_finished()
        else:
            hosts = [np.asarray(multihost_utils.process_allgather(a, tiled=True)) for a in leaves]
            if pid == 0:
                arrays = {f"leaf_{i}": a for i, a in enumerate(hosts)}
                arrays["records"] = records
                buf = io.BytesIO()
                np.savez(buf, **arrays)
                fd, tmp = tempfile.mkstemp(dir=out, prefix=".tmp-")
                with os.fdopen(fd, "wb") as f:
                    f.write(buf.getvalue())
                os.replace(tmp, os.path.join(out, "checkpoint-0.npz"))
            del hosts
            multihost_utils.sync_global_devices(f"saved {step}")
            blocking = time.perf_counter() - t0
        times.append((blocking, time.perf_counter() - t0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    later = times[1:] or times
    row = {
        "impl": method,
        "process": pid,
        "write_s": float(np.median([t for _, t in later])),
        "blocking_s": float(np.median([b for b, _ in later])),
        "peak_mb": (peak - base) / 1024,  # ru_maxrss is in KiB on Linux
    }
    print("ROW " + json.dumps(row), flush=True)
    if method == METHODS[0]:
        manager.close()


def _run(method: str, members: int, params: int, saves: int) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env["JAX_PLATFORMS"] = "cpu"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    with tempfile.TemporaryDirectory() as out:
        args = [method, port, "PID", out, str(members), str(params), str(saves)]
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", *[str(i) if a == "PID" else a for a in args]],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            for i in range(2)
        ]  # fmt: skip
        logs = [p.communicate(timeout=600)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a worker failed:\n" + "\n".join(logs)[-3000:])
    return [
        json.loads(line[4:]) for log in logs for line in log.splitlines() if line.startswith("ROW ")
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: a small population")
    parser.add_argument("--members", type=int, default=None)
    parser.add_argument("--params", type=int, default=None, help="parameters per member")
    parser.add_argument("--saves", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    a = parser.parse_args(argv)
    members = a.members or (8 if a.quick else 32)
    params = a.params or (20_000 if a.quick else 2_000_000)
    rows = []
    for method in METHODS:
        rows += _run(method, members, params, max(a.saves, 2))
    print(f"{members} members × {params:,} float32 params ({members * params * 4 / 2**20:.0f} MB),"
          " 2 processes × 1 CPU device")  # fmt: skip
    print(f"{'impl':28} {'process':>7} {'write s':>8} {'blocking s':>10} {'peak MB':>8}")
    for r in rows:
        print(f"{r['impl']:28} {r['process']:7d} {r['write_s']:8.3f} {r['blocking_s']:10.3f}"
              f" {r['peak_mb']:8.1f}")  # fmt: skip
    ratios = {}
    for key in ("write_s", "blocking_s", "peak_mb"):
        new = max(r[key] for r in rows if r["impl"] == METHODS[0])
        old = max(r[key] for r in rows if r["impl"] == METHODS[1])
        ratios[key] = new / old if old > 0 else float("nan")
    print("orbax / gather (worst process): " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    report = {"members": members, "params": params, "rows": rows, "ratios": ratios}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        m, port, pid, out, members, params, saves = sys.argv[2:9]
        _worker(m, port, int(pid), out, int(members), int(params), int(saves))
    else:
        main()
