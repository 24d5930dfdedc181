import json
import re

import numpy as np
import pytest

import jaxinit
import jaxinit.cli.compare
from jaxinit.cli import main
from jaxinit.stats import _seeds as _stats


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    """Reports are as wide as the terminal ($COLUMNS): wide enough here that no cell wraps."""
    monkeypatch.setenv("COLUMNS", "250")


def test_bootstrap_ci_covers_the_mean_and_drops_nonfinite():
    v = np.random.default_rng(0).normal(2.0, 1.0, 400)
    est = _stats.bootstrap_ci(np.append(v, [np.nan, np.inf]))
    assert est.n == 400 and est.lo < 2.0 < est.hi
    assert est.hi - est.lo == pytest.approx(2 * 1.96 / 20, rel=0.2)  # ≈ 2·1.96·σ/√n
    assert _stats.bootstrap_ci([np.nan]).n == 0


def test_censored_members_are_not_counted_as_the_horizon():
    steps = np.array([10, 20, 30, 40])
    curves = np.array([[3, 2, 1, 0.5], [3, 3, 0.9, 0.5], [3, 3, 3, 3], [3, 3, 3, 3]])
    t = _stats.first_crossing(steps, curves, 1.0)
    np.testing.assert_array_equal(t, [30, 30, np.inf, np.inf])
    s = _stats.time_to_target(t)
    assert s.fraction == 0.5 and s.median == 30  # lower median of {30, 30, ∞, ∞}
    none = _stats.time_to_target(np.array([np.inf, np.inf, 10.0]))
    assert none.median == np.inf and str(none).startswith("not reached")


def test_paired_difference_detects_a_shift():
    rng = np.random.default_rng(1)
    base = rng.normal(size=50)
    d = _stats.paired_difference(base + 0.5 + 0.01 * rng.normal(size=50), base)
    assert d.lo > 0.45 and d.hi < 0.55


def test_compare_quick_writes_tables_json_and_plot(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--quick", "--inits", "zeros,he_normal,glorot_uniform",
                 "--activation", "relu", "--out", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "steps to target" in text and "verdict" in text
    assert "aggregate over tasks relu" in text and "probability of improvement" in text
    summary = json.loads((out / "summary.json").read_text())
    relu = summary["activations"]["relu"]
    rows = relu["inits"]
    assert set(rows) == {"zeros", "he_normal", "glorot_uniform"}
    assert relu["reference"] == "he_normal"  # the registry's recommendation for ReLU
    assert rows["he_normal"]["verdict"] == "reference"
    assert rows["zeros"]["verdict"].startswith(("worse", "indistinguishable"))
    assert "Holm" in relu["procedure"] and len(relu["tests"]) == 2
    agg = summary["aggregate"]
    assert agg["tasks"] == ["relu"] and set(agg["metrics"]) == set(rows)
    assert {"mean", "median", "iqm", "optimality_gap"} <= set(agg["metrics"]["zeros"])
    assert len(agg["probability_of_improvement"]) == 6 and len(agg["tests"]) == 3
    # one error rate for the whole report: 2 + 3 tests, each table at its share of 5 %
    rate = summary["error_rate"]
    assert rate["tests"] == 5 and rate["families"] == pytest.approx(
        {"relu": 0.02, "aggregate": 0.03}
    )
    assert relu["alpha"] == pytest.approx(0.02) and agg["alpha"] == pytest.approx(0.03)
    assert "error rate: any false verdict in this report ≤ 5%" in text
    assert "sign-flip" in relu["procedure"] and "exchangeable" in relu["procedure"]
    # --quick runs 2 seeds: 2 pairs cannot give p below 1/2, and the report says so
    assert not relu["reachable"] and "no verdict is reachable here" in text
    for poi in agg["probability_of_improvement"]:
        assert 0 <= poi["lo"] < poi["hi"] <= 1  # never collapsed, even when separated
    assert len(agg["profiles"]["zeros"]["value"]) == len(agg["profiles"]["taus"]) > 101
    assert (out / "results.csv").stat().st_size > 0
    for png in ("loss_curves.png", "profiles.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # the study's checkpoints go once the comparison is complete; only the outputs stay
    assert sorted(p.name for p in out.iterdir()) == sorted(jaxinit.cli.compare.OUTPUTS)
    # the report fits the width it is given, and a value that is not a number reads "—"
    for width in (60, 100, 160):
        text = jaxinit.format_summary(summary, width=width)
        assert max(map(len, text.splitlines())) <= width
        assert not re.search(r"\bnan\b", text, re.IGNORECASE)


def test_compare_keep_checkpoints(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--quick", "--inits", "zeros,he_normal", "--activation", "tanh",
                 "--seeds", "2", "--steps", "20", "--keep-checkpoints", "--out", str(out)]) == 0  # fmt: skip
    assert {p.name for p in (out / "tanh").iterdir()} >= {"results.csv", "checkpoint-0"}
    assert "checkpoints kept in tanh/" in capsys.readouterr().out


def test_compare_rejects_unknown_init(tmp_path, capsys):
    assert main(["compare", "--quick", "--inits", "he_nromal", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("jaxinit: error: --inits 'he_nromal'") and "did you mean 'he_normal'" in err
    )


def test_compare_reference_flag(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--quick", "--inits", "zeros,he_normal,glorot_uniform", "--activation",
            "relu", "--out", str(out)]  # fmt: skip
    assert main([*args, "--reference", "glorot_uniform"]) == 0
    relu = json.loads((out / "summary.json").read_text())["activations"]["relu"]
    assert relu["reference"] == "glorot_uniform"
    assert relu["inits"]["glorot_uniform"]["verdict"] == "reference"
    assert {t["b"] for t in relu["tests"]} == {"glorot_uniform"} and len(relu["tests"]) == 2
    assert "test loss − glorot_uniform" in capsys.readouterr().out
    assert main([*args, "--reference", "lecun_normal"]) == 2
    assert "--reference 'lecun_normal' is not one of the" in capsys.readouterr().err
