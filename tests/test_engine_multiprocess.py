"""A study on JAX's multi-controller runtime: two local CPU processes joined by
``jax.distributed.initialize`` (coordinator on 127.0.0.1, gloo collectives) run one study
over a mesh that spans both, and get the results of a single process; each process writes
its own shards of the orbax checkpoint (process 0 alone the tables), both read it on
resume, and two processes of two devices each killed together mid-study (SIGKILL) and
relaunched, as two processes or as one, end with the uninterrupted table, bit for bit."""

import shutil
import signal
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import jaxinit
from tests._processes import finish, launch

# The studies, built the same way here and in the worker processes.
STUDIES = textwrap.dedent(
    """
    import functools
    import optax, jaxinit

    def make_study(kind, steps):
        common = dict(dataset=jaxinit.digits(), inits={"he": "he_normal",
                      "glorot": "glorot_uniform"}, steps=steps, batch_size=16, log_every=10,
                      eval_every=10)
        if kind == "study":
            return jaxinit.Study(jaxinit.MLP((8, 10)), optimizer=optax.sgd(0.1, momentum=0.9),
                                 seeds=3, **common)
        # an architecture sweep with a learning-rate grid and a validation split
        return jaxinit.Study({"w8": jaxinit.MLP((8, 10)), "w4": jaxinit.MLP((4, 10))},
                             optimizer=functools.partial(optax.sgd, momentum=0.9),
                             hparams={"learning_rate": [0.1, 0.03]}, validation=0.1, seeds=2,
                             **common)
    """
)
_namespace: dict = {}
exec(STUDIES, _namespace)
make_study = _namespace["make_study"]

# argv: port, process id, out, steps, runs, kind, devices per process. Every table the
# engine writes and every checkpoint it loads is logged per process (log-<pid>.txt); with
# runs=2 the study is run again into the same out_dir, which resumes from the finished
# checkpoint.
WORKER = STUDIES + textwrap.dedent(
    """
    import sys
    import jax

    port, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    steps, runs, kind, devices = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    assert jax.process_count() == 2 and len(jax.devices()) == 2 * devices
    from jaxinit.study import _checkpoint, _results, _study

    def log(line):
        with open(f"{out}/log-{pid}.txt", "a") as f:
            f.write(line + "\\n")

    write, load = _study._atomic_write, _checkpoint._Checkpoint.load

    def logged_write(path, data):
        write(path, data)
        log(f"write {str(path).rsplit('/', 1)[1]}")

    def logged_load(self, like, n):
        loaded = load(self, like, n)
        log(f"load {self.path.rsplit('/', 1)[1]} {None if loaded is None else loaded[1]}")
        return loaded

    for module in (_results, _study):  # every table the engine writes
        module._atomic_write = logged_write
    _checkpoint._Checkpoint.load = logged_load

    study = make_study(kind, steps)
    for run in range(runs):
        result = jaxinit.run_study(study, out_dir=out + "/run", progress=False)
        result.table.to_csv(f"{out}/table-{pid}-{run}.csv", index=False)
    """
)


def _launch(out, steps, runs=1, kind="study", devices=1):
    return launch(WORKER, out, steps, runs, kind, devices, devices=devices)


def _logs(out):
    """Each process's log lines, and the logs removed (for the next launch)."""
    lines = []
    for i in range(2):
        path = out / f"log-{i}.txt"
        lines.append(path.read_text().splitlines())
        path.unlink()
    return lines


def _writes(lines):
    return {line.split()[1] for line in lines if line.startswith("write")}


def _assert_single_process_results(table, steps, kind="study"):
    expected = jaxinit.run_study(make_study(kind, steps), progress=False).table  # 1 process
    pd.testing.assert_frame_equal(table.drop(columns="value"), expected.drop(columns="value"))
    np.testing.assert_allclose(table.value, expected.value, rtol=1e-5, atol=1e-6)


def test_two_processes_run_one_study_with_single_process_results(tmp_path):  # ~27 s, gloo
    finish(_launch(tmp_path, steps=20, runs=2))
    tables = [pd.read_csv(tmp_path / f"table-{i}-0.csv") for i in range(2)]
    pd.testing.assert_frame_equal(tables[0], tables[1])  # both processes get every member
    _assert_single_process_results(tables[0], 20)
    # process 0 alone writes the tables, both processes their shards of the checkpoint; on
    # the second run both read the finished checkpoint and return the same table without
    # training
    logs = _logs(tmp_path)
    assert _writes(logs[0]) == {"results.partial.csv", "results.csv"}
    assert _writes(logs[1]) == set()
    assert _step(tmp_path / "run" / "checkpoint-0") == 20
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoint-0" / "20" / "state").glob("ocdbt.process_*")) == ["ocdbt.process_0", "ocdbt.process_1"]  # fmt: skip
    for lines in logs:
        assert [line for line in lines if line.startswith("load")] == [
            "load checkpoint-0 None", "load checkpoint-0 20"
        ]  # fmt: skip
    for i in range(2):
        again = pd.read_csv(tmp_path / f"table-{i}-1.csv")
        np.testing.assert_allclose(again.value, tables[0].value, rtol=1e-6)
    saved = pd.read_csv(tmp_path / "run" / "results.csv")
    pd.testing.assert_frame_equal(saved, tables[0])
    # and the two processes' checkpoint resumes here, in one process on 4 devices
    resumed = jaxinit.run_study(make_study("study", 20), out_dir=tmp_path / "run", progress=False)
    np.testing.assert_allclose(resumed.table.value, tables[0].value, rtol=1e-6)


@pytest.mark.slow  # ~30 s; the default suite keeps the two-process study above
def test_two_processes_run_an_architecture_sweep_with_a_grid(tmp_path):
    # two architectures (two member batches, a checkpoint each) × a learning-rate grid with
    # a validation split: the single-process table, written by process 0 only
    finish(_launch(tmp_path, steps=20, kind="sweep"))
    tables = [pd.read_csv(tmp_path / f"table-{i}-0.csv") for i in range(2)]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    _assert_single_process_results(tables[0], 20, "sweep")
    assert {"model", "learning_rate"} <= set(tables[0].columns)
    assert "val_loss" in set(tables[0].metric)
    logs = _logs(tmp_path)
    assert _writes(logs[0]) == {"results.partial.csv", "results.csv"}
    assert _writes(logs[1]) == set()
    assert [_step(tmp_path / "run" / f"checkpoint-{g}") for g in (0, 8)] == [20, 20]


def _step(folder):
    """The step of an orbax checkpoint folder's one complete checkpoint (None without)."""
    steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.exists() else []
    return max(steps, default=None)


def _kill_after_first_checkpoint(procs, folder):
    """SIGKILL both processes at once as soon as ``folder`` holds a complete checkpoint
    (the next chunk is training, the next save may be under way)."""
    try:
        deadline = time.time() + 240
        while _step(folder) is None and time.time() < deadline:
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.01)
        for p in procs:  # both at once
            p.send_signal(signal.SIGKILL)
        out = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2, "\n".join(out)[-3000:]


@pytest.mark.slow  # ~50 s at 40 steps (the kill needs a mid-study checkpoint)
@pytest.mark.parametrize("steps", [40, 200])
def test_two_by_two_devices_killed_resume_bit_identical_as_two_or_one_process(tmp_path, steps):
    # 2 processes × 2 devices, an architecture sweep with a learning-rate grid (members
    # padded 8 -> 8 on 4 devices), a checkpoint per chunk of 10 steps; ~1 min on 2 cores at
    # 40 steps (the slow version: 200 steps, the kill lands further from the first chunk)
    run = tmp_path / "run"
    _kill_after_first_checkpoint(_launch(tmp_path, steps, kind="sweep", devices=2),
                                 run / "checkpoint-0")  # fmt: skip
    done = _step(run / "checkpoint-0")
    assert 0 < done < steps, "the kill must land mid-study"
    assert not (run / "results.csv").exists()
    _logs(tmp_path)
    # a copy resumes in this one process (4 devices) ...
    alone = tmp_path / "alone"
    shutil.copytree(run, alone)
    # ... and the killed folder in two processes again
    finish(_launch(tmp_path, steps, kind="sweep", devices=2))
    for lines in _logs(tmp_path):  # both read the checkpoint at its step
        assert lines[0] == f"load checkpoint-0 {done}"
    tables = [pd.read_csv(tmp_path / f"table-{i}-0.csv") for i in range(2)]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert not list(run.glob("checkpoint-*/*tmp*"))  # a save the kill cut off: cleaned up
    # the uninterrupted study, in this process on the same 4 devices: bit-identical
    expected = jaxinit.run_study(make_study("sweep", steps), progress=False).table
    pd.testing.assert_frame_equal(pd.read_csv(run / "results.csv"), tables[0])
    csv = tmp_path / "expected.csv"
    expected.to_csv(csv, index=False)
    pd.testing.assert_frame_equal(tables[0], pd.read_csv(csv))
    resumed = jaxinit.run_study(make_study("sweep", steps), out_dir=alone, progress=False)
    pd.testing.assert_frame_equal(resumed.table, expected)
