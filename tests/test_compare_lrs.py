"""``jaxinit compare --lrs``: every init at every rate, each compared at its own best rate
chosen on a validation split of train; and the CLI's persistent compilation cache."""

import json

import jax
import pandas as pd
import pytest

from jaxinit.cli import _settings as cli
from jaxinit.cli import main


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    """Reports are as wide as the terminal ($COLUMNS): wide enough here that no cell wraps."""
    monkeypatch.setenv("COLUMNS", "250")


def test_compare_with_a_rate_grid_picks_each_inits_rate_on_validation(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--quick", "--inits", "zeros,he_normal", "--activation", "relu",
            "--lrs", "0.003,0.1", "--no-compile-cache", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "relu: hyperparameters of each init, chosen on validation" in text
    summary = json.loads((out / "summary.json").read_text())["activations"]["relu"]
    rates = summary["learning_rates"]
    assert set(rates) == {"zeros", "he_normal"} and set(rates.values()) <= {0.003, 0.1}
    assert all(summary["inits"][i]["learning_rate"] == r for i, r in rates.items())
    table = pd.read_csv(out / "results.csv")
    assert sorted(set(table.learning_rate)) == [0.003, 0.1]
    assert {"val_loss", "test_loss"} <= set(table.metric)
    # the chosen rate is the one with the lowest mean final validation loss
    val = table[(table.metric == "val_loss") & (table.step == table.step.max())]
    means = val.groupby(["init", "learning_rate"]).value.mean()
    for init, rate in rates.items():
        assert means[init].idxmin() == rate


def test_bad_rate_grid_is_rejected(tmp_path, capsys):
    assert main(["compare", "--quick", "--lrs", "0.1,fast", "--out", str(tmp_path)]) == 2
    assert "jaxinit: error: --lrs must be comma-separated numbers" in capsys.readouterr().err
    assert main(["compare", "--quick", "--lrs", "0.1,-1", "--out", str(tmp_path)]) == 2
    assert "--lrs must be distinct positive numbers" in capsys.readouterr().err


def test_compilation_cache_is_on_for_the_command_and_restored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    before = jax.config.jax_compilation_cache_dir
    with cli._compilation_cache(True):
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "jaxinit" / "jax")
        assert (tmp_path / "jaxinit" / "jax").is_dir()
    assert jax.config.jax_compilation_cache_dir == before
    with cli._compilation_cache(False):
        assert jax.config.jax_compilation_cache_dir == before
