"""Smoke tests: every experiment runs in --quick mode and writes a well-formed result.json
(claims with verdicts computed from the data) and its PNG figure."""

import importlib.util
import json
import math
import pathlib
import sys

import pytest

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent / "experiments"
NAMES = ["glorot_bengio", "he_depth", "saxe", "selu", "mnist1d", "depth_sweep", "mup"]


def _load(name):
    sys.path.insert(0, str(EXPERIMENTS))  # for ``from _common import ...``
    spec = importlib.util.spec_from_file_location(f"exp_{name}", EXPERIMENTS / f"exp_{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_experiment_quick_mode_writes_json_and_png(name, tmp_path, capsys):
    import jax

    with jax.threefry_partitionable(False):
        assert _load(name).main(["--quick", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "published claims vs this measurement" in text
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["mode"] == "quick" and result["experiment"]
    assert result["claims"], "an experiment must state at least one claim"
    for c in result["claims"]:
        assert c["claim"] and c["measured"]
        assert c["verdict"] in ("AGREES", "DISAGREES", "INCONCLUSIVE")
        assert c["verdict"] in text
    pngs = list(tmp_path.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)

    def finite_or_null(x):  # strict JSON: inf/NaN must have been written as null
        if isinstance(x, dict):
            return all(finite_or_null(v) for v in x.values())
        if isinstance(x, list):
            return all(finite_or_null(v) for v in x)
        return not isinstance(x, float) or math.isfinite(x)

    assert finite_or_null(result)
