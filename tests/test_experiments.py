"""Smoke tests: every experiment runs in --quick mode and writes a well-formed result.json
(claims with verdicts computed from the data) and its PNG figure; each figure shows the
spread over seeds per scheme, says how many seeds, and keeps its legend off the data."""

import contextlib
import importlib.util
import io
import json
import math
import pathlib
import sys

import pytest

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent / "experiments"
# six of the quick runs (16-46 s each on 2 cores) are in the slow set (-m slow); the
# default suite keeps one experiment's quick run and figure checks (saxe)
NAMES = [
    "saxe",
    *(pytest.param(n, marks=pytest.mark.slow)
      for n in ("he_depth", "selu", "glorot_bengio", "mnist1d", "depth_sweep", "mup")),
]  # fmt: skip


def _load(name):
    sys.path.insert(0, str(EXPERIMENTS))  # for ``from _common import ...``
    spec = importlib.util.spec_from_file_location(f"exp_{name}", EXPERIMENTS / f"exp_{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=NAMES)
def quick_run(request, tmp_path_factory):
    """One --quick run per experiment, shared by the tests below: (module, output directory,
    printed text, the figures it saved)."""
    import jax

    name = request.param
    out = tmp_path_factory.mktemp(name)
    module = _load(name)
    common = sys.modules["_common"]
    common.FIGURES.clear()
    text = io.StringIO()
    with jax.threefry_partitionable(False), contextlib.redirect_stdout(text):
        assert module.main(["--quick", "--out", str(out)]) == 0
    return module, out, text.getvalue(), list(common.FIGURES)


def test_experiment_quick_mode_writes_json_and_png(quick_run):
    _, tmp_path, text, _ = quick_run
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


def _seed_count(module) -> int:
    cfg = getattr(module, "QUICK", None) or module.TQUICK
    return cfg.seeds


def check_seed_spread(fig, seeds: int) -> None:
    """Per scheme (a bold ``center:<name>`` line or ``seed:<name>`` dots), on its axes: a
    min–max band (``band:<name>``) or one artist per seed; some title states the seed
    count; every legend lies outside every axes."""
    from matplotlib.collections import PolyCollection

    fig.draw_without_rendering()
    schemes = 0
    for ax in fig.axes:
        gids = [a.get_gid() or "" for a in [*ax.lines, *ax.collections]]
        names = {g.split(":", 1)[1] for g in gids if g.startswith(("center:", "seed:"))}
        schemes += len(names)
        for name in names:
            bands = [c for c in ax.collections
                     if isinstance(c, PolyCollection) and c.get_gid() == f"band:{name}"]  # fmt: skip
            n_seed = gids.count(f"seed:{name}")
            assert bands or n_seed == seeds, (name, n_seed, seeds)
    assert schemes, "no scheme drawn with its spread over seeds"
    texts = [fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)]
    assert any(f"{seeds} seeds" in t for t in texts), texts
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    assert legends
    for leg in legends:
        box = leg.get_window_extent()
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent()), "a legend covers an axes"


def test_experiment_figures_show_seed_spread_and_keep_legends_off_the_data(quick_run):
    module, out, _, figures = quick_run
    assert figures and {pathlib.Path(p).name for p, _ in figures} == {
        p.name for p in out.glob("*.png")
    }
    for _, fig in figures:
        check_seed_spread(fig, _seed_count(module))
