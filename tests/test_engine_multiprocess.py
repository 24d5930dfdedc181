"""A study on JAX's multi-controller runtime: two local CPU processes joined by
``jax.distributed.initialize`` (coordinator on 127.0.0.1, gloo collectives) run one study
over a 2-device mesh that spans both, and get the results of a single process."""

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import optax
import pandas as pd

import jaxinit

WORKER = textwrap.dedent(
    """
    import sys
    import jax

    port, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    assert jax.process_count() == 2 and len(jax.devices()) == 2
    import optax, jaxinit

    study = jaxinit.Study(
        jaxinit.MLP((8, 10)), jaxinit.digits(), optax.sgd(0.1, momentum=0.9),
        {"he": "he_normal", "glorot": "glorot_uniform"}, seeds=3, steps=20, batch_size=16,
        log_every=10, eval_every=10,
    )
    result = jaxinit.run_study(study, out_dir=out + "/run", progress=False)
    result.table.to_csv(f"{out}/table-{pid}.csv", index=False)
    """
)


def _study():
    return jaxinit.Study(
        jaxinit.MLP((8, 10)), jaxinit.digits(), optax.sgd(0.1, momentum=0.9),
        {"he": "he_normal", "glorot": "glorot_uniform"}, seeds=3, steps=20, batch_size=16,
        log_every=10, eval_every=10,
    )  # fmt: skip


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_run_one_study_with_single_process_results(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_optimization_level=0")
    port = str(_free_port())
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, port, str(i), str(tmp_path)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]  # fmt: skip
    try:
        logs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)[-3000:]
    tables = [pd.read_csv(tmp_path / f"table-{i}.csv") for i in range(2)]
    pd.testing.assert_frame_equal(tables[0], tables[1])  # both processes get every member
    single = jaxinit.run_study(_study(), progress=False)  # 4 devices in this process
    expected = single.table.reset_index(drop=True)
    pd.testing.assert_frame_equal(tables[0].drop(columns="value"),
                                  expected.drop(columns="value"))  # fmt: skip
    np.testing.assert_allclose(tables[0].value, expected.value, rtol=1e-5, atol=1e-6)
    # process 0 wrote the results and a checkpoint, which resumes here on 4 devices
    saved = pd.read_csv(tmp_path / "run" / "results.csv")
    pd.testing.assert_frame_equal(saved, tables[0])
    resumed = jaxinit.run_study(_study(), out_dir=tmp_path / "run", progress=False)
    np.testing.assert_allclose(resumed.table.value, tables[0].value, rtol=1e-6)
