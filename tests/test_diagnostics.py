"""diagnose / propagate: table layout, layer order, dead and saturated units, Jacobian
spectra against mean-field chi_1, the CLI, and that plotting leaves matplotlib's backend alone."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib
import pytest

import jaxinit
from jaxinit.cli import main


def _x(batch=64, width=32):
    return jax.random.normal(jax.random.key(1), (batch, width))


def _stat(df, quantity, stat):
    sub = df[(df.quantity == quantity) & (df.stat == stat)]
    return sub.groupby("layer")["value"].mean()


def test_table_layout():
    model = jaxinit.MLP([16, 16, 4], "tanh")
    df = jaxinit.diagnose(model, _x(32, 8), seeds=3, label="lecun")
    assert list(df.columns) == ["init", "seed", "layer", "name", "quantity", "stat", "value"]
    assert set(df.init) == {"lecun"} and set(df.seed) == {0, 1, 2}
    assert set(df.quantity) == {"pre_activation", "activation", "gradient", "jacobian"}
    # The output layer has no activation; the first has no previous layer for a Jacobian.
    assert set(df[df.quantity == "activation"].layer) == {0, 1}
    assert set(df[df.quantity == "jacobian"].layer) == {1, 2}
    # The output cotangent is standard normal: the last layer's gradient second moment ~ 1.
    assert _stat(df, "gradient", "second_moment")[2] == pytest.approx(1.0, rel=0.3)
    table = jaxinit.propagation_table(df)
    assert table.shape[0] == 3 and "pre_activation.second_moment" in table.columns


def test_layers_are_in_call_order_beyond_ten():
    df = jaxinit.diagnose(jaxinit.MLP([8] * 12, "relu"), _x(16, 8), seeds=1, jacobian_examples=0)
    names = df.drop_duplicates("layer").sort_values("layer").name.tolist()
    assert names == [f"Dense_{i}" for i in range(12)]


def test_dead_units():
    x = _x()
    alive = jaxinit.diagnose(jaxinit.MLP([32, 32, 4], "relu", kernel_init=jaxinit.he_normal()), x)
    dead = jaxinit.diagnose(jaxinit.MLP([32, 32, 4], "relu", kernel_init=jaxinit.zeros), x)
    # On the first layer the examples are independent: P(a dead unit) ~ 2^-64. Deeper, ReLU
    # outputs are correlated across examples and a dead unit is merely rare.
    assert (
        _stat(alive, "activation", "dead")[0] == 0 and _stat(alive, "activation", "dead")[1] < 0.05
    )
    assert (_stat(dead, "activation", "dead") == 1).all()  # relu'(0) = 0 everywhere


def test_tanh_saturates_only_with_large_weights():
    x = _x(128, 64)
    small = jaxinit.MLP([64] * 6, "tanh", kernel_init=jaxinit.glorot_normal())
    large = jaxinit.MLP(
        [64] * 6, "tanh", kernel_init=jaxinit.variance_scaling(25.0, "fan_in", "normal")
    )
    assert _stat(jaxinit.diagnose(small, x, seeds=2), "activation", "saturated").max() < 0.05
    # sigma_w^2 = 25: q* ~ 16, P(|h| > 2.65) ~ 0.5.
    assert _stat(jaxinit.diagnose(large, x, seeds=2), "activation", "saturated")[4] > 0.3


@pytest.mark.parametrize("sw2", [1.0, 2.0])
def test_jacobian_rms_singular_value_is_chi(sw2):
    """mean(sv^2) of J = diag(phi'(h)) W in a wide tanh net is sigma_w^2 E[phi'(h)^2] at the
    measured q of h (chi_1 once q has reached q*)."""
    width, depth = 256, 8
    init = jaxinit.variance_scaling(sw2, "fan_in", "normal")
    df = jaxinit.diagnose(jaxinit.MLP([width] * depth, "tanh", kernel_init=init), _x(64, width))
    sv2 = _stat(df, "jacobian", "sv_rms") ** 2
    q = _stat(df, "pre_activation", "second_moment")
    for layer in (1, depth - 2):
        expected = float(jaxinit.chi("tanh", q[layer - 1], sw2))
        assert sv2[layer] == pytest.approx(expected, rel=0.03)


def test_callable_activation_and_no_activation():
    model = jaxinit.MLP([16, 4], "relu")
    df = jaxinit.diagnose(model, _x(16, 8), seeds=1, activation=jax.nn.relu)
    assert "activation" in set(df.quantity)

    class Plain(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(4)(nn.Dense(8)(x))

    df = jaxinit.diagnose(Plain(), _x(16, 8), seeds=1)
    assert set(df.quantity) == {"pre_activation", "gradient"}


def test_errors():
    class NoKernels(nn.Module):
        @nn.compact
        def __call__(self, x):
            return jnp.tanh(x)

    with pytest.raises(ValueError, match=r"diagnose: NoKernels has no layers with a kernel"):
        jaxinit.diagnose(NoKernels(), _x())
    with pytest.raises(ValueError, match=r"diagnose: seeds must be >= 1, got 0"):
        jaxinit.diagnose(jaxinit.MLP([4, 4]), _x(), seeds=0)
    with pytest.raises(ValueError, match=r"propagate: depth must be >= 2, got 1"):
        jaxinit.propagate(depth=1)


@pytest.mark.slow  # ~20 s; propagate through the CLI and the plot test run by default
def test_propagate_weight_variance_and_plot_keeps_backend(tmp_path):
    df = jaxinit.propagate(
        "relu", ["he_normal", "orthogonal"], depth=3, width=32, seeds=2, batch_size=16
    )
    sw2 = df.attrs["weight_variance"]
    assert sw2["he_normal"] == pytest.approx(2.0, rel=0.1) and sw2["orthogonal"] == pytest.approx(
        1.0, rel=1e-3
    )
    backend = matplotlib.get_backend()
    fig = jaxinit.plot_variance_by_depth(df, str(tmp_path / "p.png"), title="t")
    assert (tmp_path / "p.png").stat().st_size > 0 and len(fig.axes) == 2
    assert matplotlib.get_backend() == backend


def test_plot_variance_by_depth_bands_styles_seeds_and_legend(tmp_path):
    """Per init a min–max band over the seeds and its own line style and marker (coinciding
    inits stay distinguishable), the seed count and band stated, the legend off the axes."""
    from matplotlib.collections import PolyCollection

    inits = ["glorot_normal", "lecun_normal", "orthogonal"]
    df = jaxinit.propagate("tanh", inits, depth=3, width=16, seeds=3, batch_size=8)
    fig = jaxinit.plot_variance_by_depth(df, str(tmp_path / "p.png"))
    fig.draw_without_rendering()
    for ax in fig.axes:
        bands = {c.get_gid() for c in ax.collections if isinstance(c, PolyCollection)}
        assert bands == {f"band:{i}" for i in inits}
        styles = {(line.get_linestyle(), line.get_marker()) for line in ax.lines}
        assert len(styles) == len(inits)
    assert "3 seeds" in fig.get_suptitle() and "min–max" in fig.get_suptitle()
    (legend,) = [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert [t.get_text() for t in legend.get_texts()] == inits
    for ax in fig.axes:
        assert not legend.get_window_extent().overlaps(ax.get_window_extent())


def test_propagate_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(
        "COLUMNS", "200"
    )  # the table fits the terminal: wide enough for whole headers
    plot = tmp_path / "prop.png"
    argv = ["propagate", "--activation", "tanh", "--depth", "3", "--width", "16", "--seeds", "2",
            "--batch-size", "16", "--plot", str(plot)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    for label in ("glorot_normal", "he_normal", "lecun_normal", "orthogonal"):
        assert f"{label}: tanh MLP, 3 x 16" in out
    assert "q (mean field)" in out and "grad (mean field)" in out and plot.exists()
