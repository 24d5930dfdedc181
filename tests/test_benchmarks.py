"""Smoke tests: both benchmarks run in --quick mode and report every implementation they
compare (the timings themselves are measured by running the scripts, not here)."""

import importlib.util
import json
import pathlib
import sys

import pytest

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent / "experiments"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# the benchmarks' quick modes (10-45 s each on 2 cores) are in the slow set (-m slow); the
# default suite keeps the check of the engine's CPU options below
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "impls"),
    [
        ("bench_sampling", {"jax.nn", "default", "fast", "numpy"}),
        (
            "bench_multiseed",
            {
                "engine (run_study)",
                "engine, own step (train_population)",
                "hand-written jit(vmap(scan))",
                "hand-written, engine's XLA options",
                "hand-written, default init",
                "naive Flax loop",
            },
        ),
    ],
)
def test_benchmark_quick_mode(name, impls, tmp_path):
    out = tmp_path / "bench.json"
    only = ["--only", "A"] if name == "bench_multiseed" else []  # B is the same code, 10× longer
    _load(name).main(["--quick", "--repeats", "1", *only, "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert impls <= {r.get("impl") for r in rows}
    for r in rows:
        seconds = r["ms"] / 1e3 if "ms" in r else r["warm_s"]
        assert seconds > 0


@pytest.mark.slow  # ~23 s; bench_gpu --quick runs a host-stepped ResNet study by default
def test_multiseed_workload_d_quick_mode(tmp_path):
    # the CNN population (issue 25): the engine's layout choice and its ratio to the loop
    out = tmp_path / "d.json"
    _load("bench_multiseed").main(["--quick", "--repeats", "1", "--only", "D", "--json", str(out)])
    rows = {r["impl"]: r for r in json.loads(out.read_text())["rows"]}
    engine = rows["engine, member_layout='auto'"]
    assert engine["member_layout"] == "loop"
    assert engine["stepping"] == "host"  # convolutions on the CPU: stepped from the host
    assert engine["naive_over_engine"] > 0
    assert rows["naive jitted-step loop"]["ms_per_member_step"] > 0


def test_multiseed_contender_uses_the_engines_compiler_options(monkeypatch):
    from jaxinit.study._program import _compiler_options

    monkeypatch.delenv("XLA_FLAGS")  # as the benchmark runs: XLA's defaults
    assert _load("bench_multiseed").ENGINE_CPU_OPTIONS == dict(_compiler_options("cpu"))


@pytest.mark.slow
def test_multiseed_cold_start_in_a_fresh_process():
    # the full run's cold starts: each contender's first call in a new process (~5 s here)
    bench = _load("bench_multiseed")
    seconds = bench._cold_in_fresh_process(bench.HAND_MINIMAL, "A", 1)
    assert 0 < seconds < 120


@pytest.mark.slow  # ~10 s; the checkpoints themselves: tests/test_checkpoint.py
def test_checkpoint_benchmark_quick_mode(tmp_path):
    # two pairs of processes (~20 s here): each process's figures for both writers
    out = tmp_path / "bench.json"
    report = _load("bench_checkpoint").main(["--quick", "--saves", "2", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert {(r["impl"], r["process"]) for r in rows} == {
        (impl, p) for impl in ("orbax, own shards", "gather to process 0, npz") for p in (0, 1)
    }
    assert all(r["write_s"] > 0 and r["blocking_s"] > 0 for r in rows)
    assert set(report["ratios"]) == {"write_s", "blocking_s", "peak_mb"}


@pytest.mark.slow  # ~24 s; host-stepped ResNet studies: tests/test_member_layout.py
def test_gpu_benchmark_quick_mode_runs_on_the_cpu(tmp_path):
    # the moonshot workload (issue 25) at smoke size: every part reports its figures
    out = tmp_path / "gpu.json"
    report = _load("bench_gpu").main(["--quick", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    training = {r["impl"]: r for r in rows if r["part"] == "training"}
    assert training["engine (run_study)"]["member_steps_per_s"] > 0
    assert 0 < training["engine (run_study)"]["frac_matmul"]
    assert {r["impl"] for r in rows if r["part"] == "sampling"} == {
        "jax.nn", "jaxinit", "jaxinit fast",
    }  # fmt: skip
    assert report["step_flops"] > 0 and report["workload"]["steps"] == 4
