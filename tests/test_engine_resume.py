"""A study killed mid-way and restarted with the same command resumes and ends with the
results of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, optax, jaxinit
    study = jaxinit.Study(
        jaxinit.MLP((16, 10)), jaxinit.digits(), optax.sgd(0.1, momentum=0.9),
        {"he": "he_normal", "lecun": "lecun_normal"}, seeds=2, steps=600, batch_size=16,
        log_every=10, eval_every=10,
    )
    jaxinit.run_study(study, out_dir=sys.argv[1], progress=False)
    """
)


def _run(out_dir, kill_when_checkpointed=False):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_optimization_level=0")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out_dir)], env=env)
    if kill_when_checkpointed:  # as soon as one checkpoint is complete (orbax: its step)
        deadline = time.time() + 120
        while _step(out_dir) is None and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=300)
    return proc.returncode


def _step(out_dir):
    folder = out_dir / "checkpoint-0"
    steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.exists() else []
    return max(steps, default=None)


@pytest.mark.slow  # ~40 s: a SIGKILLed subprocess; test_checkpoint.py stops and resumes in-process
def test_killed_study_resumes_to_identical_results(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    killed.mkdir()
    assert _run(killed, kill_when_checkpointed=True) == -signal.SIGKILL
    done = _step(killed)
    assert 0 < done < 600, "the kill must land mid-study"
    assert not (killed / "results.csv").exists()
    assert _run(killed) == 0
    assert _run(clean) == 0
    a = pd.read_csv(killed / "results.csv")
    b = pd.read_csv(clean / "results.csv")
    pd.testing.assert_frame_equal(a, b)
