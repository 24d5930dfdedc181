"""A study on JAX's multi-controller runtime: two local CPU processes joined by
``jax.distributed.initialize`` (coordinator on 127.0.0.1, gloo collectives) run one study
over a 2-device mesh that spans both, and get the results of a single process; only
process 0 writes ``out_dir``, both read its checkpoint on resume, and two processes killed
together mid-study and relaunched end with the uninterrupted results."""

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

# argv: port, process id, out, steps, runs, kind. Every file the engine writes and every
# checkpoint it loads is logged per process (log-<pid>.txt); with runs=2 the study is run
# again into the same out_dir, which resumes from the finished checkpoint.
WORKER = STUDIES + textwrap.dedent(
    """
    import sys
    import jax

    port, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    steps, runs, kind = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    assert jax.process_count() == 2 and len(jax.devices()) == 2
    from jaxinit.study import _checkpoint, _results, _study

    def log(line):
        with open(f"{out}/log-{pid}.txt", "a") as f:
            f.write(line + "\\n")

    write, load = _checkpoint._atomic_write, _checkpoint._Checkpoint.load

    def logged_write(path, data):
        write(path, data)
        log(f"write {str(path).rsplit('/', 1)[1]}")

    def logged_load(self, like, n):
        loaded = load(self, like, n)
        log(f"load {self.path.rsplit('/', 1)[1]} {None if loaded is None else loaded[1]}")
        return loaded

    for module in (_checkpoint, _results, _study):  # every file the engine writes
        module._atomic_write = logged_write
    _checkpoint._Checkpoint.load = logged_load

    study = make_study(kind, steps)
    for run in range(runs):
        result = jaxinit.run_study(study, out_dir=out + "/run", progress=False)
        result.table.to_csv(f"{out}/table-{pid}-{run}.csv", index=False)
    """
)


def _launch(out, steps, runs=1, kind="study"):
    return launch(WORKER, out, steps, runs, kind)


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


def test_two_processes_run_one_study_with_single_process_results(tmp_path):
    finish(_launch(tmp_path, steps=20, runs=2))
    tables = [pd.read_csv(tmp_path / f"table-{i}-0.csv") for i in range(2)]
    pd.testing.assert_frame_equal(tables[0], tables[1])  # both processes get every member
    _assert_single_process_results(tables[0], 20)
    # process 0 alone writes out_dir; on the second run both read its finished checkpoint
    # and return the same table without training
    logs = _logs(tmp_path)
    assert _writes(logs[0]) == {"checkpoint-0.npz", "results.partial.csv", "results.csv"}
    assert _writes(logs[1]) == set()
    for lines in logs:
        assert [line for line in lines if line.startswith("load")] == [
            "load checkpoint-0.npz None", "load checkpoint-0.npz 20"
        ]  # fmt: skip
    for i in range(2):
        again = pd.read_csv(tmp_path / f"table-{i}-1.csv")
        np.testing.assert_allclose(again.value, tables[0].value, rtol=1e-6)
    saved = pd.read_csv(tmp_path / "run" / "results.csv")
    pd.testing.assert_frame_equal(saved, tables[0])
    # and the two processes' checkpoint resumes here, in one process on 4 devices
    resumed = jaxinit.run_study(make_study("study", 20), out_dir=tmp_path / "run", progress=False)
    np.testing.assert_allclose(resumed.table.value, tables[0].value, rtol=1e-6)


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
    assert _writes(logs[0]) == {
        "checkpoint-0.npz", "checkpoint-8.npz", "results.partial.csv", "results.csv"
    }  # fmt: skip
    assert _writes(logs[1]) == set()


@pytest.mark.slow
def test_both_processes_killed_resume_to_the_uninterrupted_results(tmp_path):
    # ~40 s on 2 cores: two launches of two processes. The test above is its smoke
    # version (both processes resume from process 0's checkpoint, only process 0 writes).
    steps = 200  # 20 chunks, a checkpoint after each: the kill lands mid-study
    ckpt = tmp_path / "run" / "checkpoint-0.npz"
    procs = _launch(tmp_path, steps)
    try:
        deadline = time.time() + 240
        while not ckpt.exists() and time.time() < deadline:
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.02)
        for p in procs:  # both at once
            p.send_signal(signal.SIGKILL)
        out = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2, "\n".join(out)[-3000:]
    with np.load(ckpt) as z:
        done = int(z["done"])
    assert 0 < done < steps, "the kill must land mid-study"
    assert not (tmp_path / "run" / "results.csv").exists()
    killed = _logs(tmp_path)
    assert "checkpoint-0.npz" in _writes(killed[0])
    assert _writes(killed[1]) == set()  # process 1 never writes

    finish(_launch(tmp_path, steps))
    resumed = _logs(tmp_path)
    for lines in resumed:  # both processes read process 0's checkpoint, at its step
        assert lines[0] == f"load checkpoint-0.npz {done}"
    assert _writes(resumed[0]) == {"checkpoint-0.npz", "results.partial.csv", "results.csv"}
    assert _writes(resumed[1]) == set()
    tables = [pd.read_csv(tmp_path / f"table-{i}-0.csv") for i in range(2)]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    _assert_single_process_results(tables[0], steps)
    # the resumed run ends with the uninterrupted two-process run's file too
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "results.csv"), tables[0])
