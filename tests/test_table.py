"""Plain-text tables (jaxinit._table): within the width asked for, numbers and words never
split when the longest words fit, unwrapped when written to a file; a summary read back from
its JSON prints."""

import json
import os
import re
import subprocess
import sys

import pytest

from jaxinit._table import table

HEADER = ("init", "steps to target", "train loss", "test loss − he_normal", "p (Holm)", "verdict")
ROWS = [
    ("glorot_uniform", "210 [199, 221] (100% reached)", "0.0001308 [0.0001105, 0.0001546]",
     "+0.0415 [-0.0627, +0.107]", "0.56", "indistinguishable from he_normal"),
    ("he_normal", "120 [120, 151] (100% reached)", "8.295e-05 [5.749e-05, 9.23e-05]", "", "",
     "reference"),
]  # fmt: skip
WORDS = {w for row in [HEADER, *ROWS] for c in row for w in c.split()}


@pytest.mark.parametrize("width", [90, 100, 160])
def test_words_whole_when_they_fit(width):
    """Every line within the width; every word of every cell (numbers, intervals' ends)
    appears whole: the columns are never narrower than their longest word."""
    text = table(HEADER, ROWS, width=width)
    assert max(map(len, text.splitlines())) <= width
    shown = set(re.findall(r"\S+", text))
    assert WORDS <= shown, WORDS - shown


def test_longest_words_fold_first_when_too_narrow():
    """Too narrow for every word: the names stay whole, short words too; the longest
    words (the verdict's, the long numbers) fold."""
    text = table(HEADER, ROWS, width=60)
    assert max(map(len, text.splitlines())) <= 60
    shown = set(re.findall(r"\S+", text))
    assert {"glorot_uniform", "he_normal", "0.56", "(Holm)"} <= shown
    assert "indistinguishable" not in shown


def test_unwrapped_in_a_file(tmp_path):
    """Standard output a file and no COLUMNS: each row on one line, however wide."""
    code = (
        "import sys; sys.path.insert(0, 'tests'); from test_table import HEADER, ROWS; "
        "from jaxinit._table import table; print(table(HEADER, ROWS))"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(tmp_path / "out.txt", "w") as f:
        subprocess.run([sys.executable, "-c", code], stdout=f, check=True, env=env, cwd=root)
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert len(lines) == 2 + len(ROWS)  # header, rule, one line per row
    assert lines[2].endswith("indistinguishable from he_normal")


def test_summary_read_back_from_json():
    """A compare summary as written to summary.json (infinities and NaN as null) prints:
    a target one seed missed reads "not reached" in its interval, a missing estimate "n/a", a missing bound "—"."""
    from jaxinit.study import format_summary

    est = {"value": 0.5, "lo": 0.4, "hi": 0.6, "n": 2}
    summary = {"activations": {"relu": {
        "target": 0.5, "reference": "a", "procedure": "test", "alpha": 0.05,
        "inits": {
            "a": {"steps_to_target": {"fraction": 1.0, "median": 70.0, "lo": 70.0, "hi": 70.0},
                  "train_loss": est, "test_loss": est, "verdict": "reference",
                  "diverged_seeds": 0},
            "b": {"steps_to_target": {"fraction": 0.5, "median": 100.0, "lo": 100.0, "hi": None},
                  "train_loss": {**est, "value": None}, "test_loss": est,
                  "test_loss_minus_reference": {"diff": 0.1, "lo": None, "hi": 0.2,
                                                "p_holm": None},
                  "verdict": "indistinguishable from a", "diverged_seeds": 1},
        }}}}  # fmt: skip
    text = format_summary(json.loads(json.dumps(summary)), width=200)
    assert "100 [100, not reached] (50% reached)" in text
    assert "n/a" in text and "+0.1 [—, +0.2]" in text
    assert "(1 diverged)" in text
