"""Two local JAX processes on the CPU, joined by ``jax.distributed`` (a coordinator on
127.0.0.1): the launcher the multi-process tests share."""

import os
import socket
import subprocess
import sys


def launch(worker: str, *args: object, devices: int = 1) -> list[subprocess.Popen]:
    """Start ``python -c worker <port> <process id> *args`` twice (``devices`` CPU devices
    each)."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    flags = f"--xla_backend_optimization_level=0 --xla_force_host_platform_device_count={devices}"
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=flags)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    return [
        subprocess.Popen([sys.executable, "-c", worker, port, str(i), *map(str, args)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]  # fmt: skip


def finish(procs: list[subprocess.Popen]) -> None:
    """Wait for both processes; both must exit 0 (else their output's tail is shown)."""
    try:
        logs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)[-3000:]
