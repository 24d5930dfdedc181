r"""Signal-propagation diagnostics at initialization, for any flax.linen model.

Every layer with a ``kernel`` (Dense, DenseGeneral, Conv, ...) is intercepted with
``flax.linen.intercept_methods``: its output is the layer's pre-activation :math:`h^l`
(recorded, and perturbed by a zero array so that ``jax.vjp`` gives the backpropagated
gradient :math:`\partial L/\partial h^l`). The activation :math:`\phi(h^l)` is recomputed
from the pre-activation with the model's activation. The whole thing — init, forward,
backward, statistics, Jacobian spectra — is one program ``jax.jit(jax.vmap(...))`` over the
seeds' keys.

Statistics (over examples and units of a layer):

* ``mean``, ``variance``, ``second_moment`` (the mean-field :math:`q^l` for pre-activations,
  :math:`\tilde q^l` for gradients);
* ``saturated`` (activations of bounded :math:`\phi` only): the fraction of values within
  0.5 % of the output range of a bound — :math:`|\tanh| > 0.99`, sigmoid :math:`< 0.005`
  or :math:`> 0.995`, :math:`|\mathrm{erf}| > 0.99`, :math:`|\mathrm{softsign}| > 0.99`;
* ``dead``: the fraction of units with :math:`\phi'(h) = 0` on every example of the batch
  (a ReLU unit that is never active);
* Jacobian singular values ``sv_mean``, ``sv_rms``, ``sv_min``, ``sv_max``: of the per-layer
  Jacobian :math:`J^l = \partial h^{l}/\partial h^{l-1} = \mathrm{diag}(\phi'(h^{l-1}))
  W^{l}` (2-D kernels whose input is the previous layer's activation), per example for the
  first ``jacobian_examples`` examples. ``sv_rms²`` is the finite-width :math:`\chi_1`.
  Glorot & Bengio (2010) report a mean singular value ≈ 0.8 (normalized init) vs ≈ 0.5
  (standard).

The gradient uses a standard-normal cotangent at the output (drawn from the seed's key), so
the last layer's gradient has second moment 1 and the others read as growth factors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._activations import activation_fn
from jaxinit._checks import as_int, check_batch, check_key
from jaxinit.theory._meanfield import elementwise_derivative

# Bounds (lower, upper) of bounded activations: "saturated" is within 0.5 % of the range.
BOUNDS: dict[str, tuple[float, float]] = {
    "tanh": (-1.0, 1.0),
    "sigmoid": (0.0, 1.0),
    "softsign": (-1.0, 1.0),
    "erf": (-1.0, 1.0),
}
SATURATION_MARGIN = 0.005


def _layer_name(module: nn.Module) -> str:
    return "/".join(str(p) for p in module.path)


def _has_kernel(module: nn.Module) -> bool:
    return isinstance(module, nn.Dense | nn.DenseGeneral | nn.Conv | nn.ConvTranspose)


def _capture(model: nn.Module, params: Any, x: jax.Array, perts: Mapping[str, jax.Array] | None):
    """Run ``model`` and return (output, {layer: (input, pre-activation)}) in call order."""
    captured: dict[str, tuple[jax.Array, jax.Array]] = {}

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and _has_kernel(context.module):
            name = _layer_name(context.module)
            if perts is not None:
                out = out + perts[name]
            captured[name] = (args[0], out)
        return out

    with nn.intercept_methods(interceptor):
        y = model.apply(params, x)
    return y, captured


def _kernel(params: Any, name: str) -> jax.Array | None:
    node = params["params"]
    for part in name.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node.get("kernel") if isinstance(node, Mapping) else None


def _moments(a: jax.Array) -> dict[str, jax.Array]:
    a = a.astype(jnp.float32)
    return {
        "mean": jnp.mean(a),
        "variance": jnp.var(a),
        "second_moment": jnp.mean(a * a),
    }


def _activation(model: nn.Module, activation: Any) -> tuple[Callable | None, str | None]:
    act = activation if activation is not None else getattr(model, "activation", None)
    if act is None:
        return None, None
    return activation_fn(act), act if isinstance(act, str) else getattr(act, "__name__", None)


def diagnose(
    model: nn.Module,
    x: jax.Array,
    *,
    seeds: int = 8,
    key: int | jax.Array = 0,
    activation: str | Callable | None = None,
    jacobian_examples: int = 4,
    label: str = "",
) -> Any:
    """Per-layer statistics of a flax.linen model at initialization, over ``seeds`` inits.

    Args:
      model: a flax.linen Module; its layers with kernels are the layers reported.
      x: a batch of inputs (shared by every seed).
      seeds: number of independent initializations (one vmapped program).
      key: an int seed or a PRNG key; seed ``s`` uses ``fold_in(key, s)``.
      activation: the model's elementwise activation (name or callable); default
        ``model.activation`` if the model has one. Without it only pre-activation and
        gradient statistics are reported.
      jacobian_examples: examples whose per-layer Jacobian spectra are computed (0: none).
      label: value of the ``init`` column.

    Returns:
      A tidy ``pandas.DataFrame`` with columns ``init, seed, layer, name, quantity, stat,
      value``; ``quantity`` is ``pre_activation``, ``activation``, ``gradient`` or
      ``jacobian``. Layer ``l`` is the ``l``-th layer called; the activation of the last
      layer is not reported (an MLP's output layer has none).

    >>> x = jax.random.normal(jax.random.key(1), (64, 32))
    >>> df = jaxinit.diagnose(jaxinit.MLP([64] * 4, "tanh"), x, seeds=2, jacobian_examples=0)
    >>> q = df.query("quantity == 'pre_activation' and stat == 'variance'")
    >>> q.groupby("layer").value.mean().round(2).tolist()  # tanh shrinks the signal
    [0.99, 0.4, 0.24, 0.18]
    """
    check_key("diagnose", key, allow_int=True)
    import pandas as pd

    seeds = as_int("diagnose", "seeds", seeds, minimum=1)
    jacobian_examples = as_int("diagnose", "jacobian_examples", jacobian_examples, minimum=0)
    x = check_batch("diagnose", "x", x)
    base = jax.random.key(int(key)) if isinstance(key, int | np.integer) else key
    phi, act_name = _activation(model, activation)
    dphi = None if phi is None else elementwise_derivative(phi)
    bounds = BOUNDS.get(act_name) if isinstance(act_name, str) else None
    n_jac = min(int(jacobian_examples), x.shape[0])

    # Layer names (in call order: eval_shape's dict output sorts its keys, which puts
    # Dense_10 before Dense_2) and output shapes, once, without computing anything.
    names: list[str] = []

    def shapes():
        params = model.init(jax.random.key(0), x)
        captured = _capture(model, params, x, None)[1]
        names.extend(captured)
        return captured

    layer_shapes = jax.eval_shape(shapes)
    if not names:
        raise ValueError(f"diagnose: {type(model).__name__} has no layers with a kernel")

    def one_seed(k):
        k_init, k_cot = jax.random.split(k)
        params = model.init(k_init, x)
        perts = {n: jnp.zeros(s[1].shape, s[1].dtype) for n, s in layer_shapes.items()}
        y, vjp, captured = jax.vjp(lambda p: _capture(model, params, x, p), perts, has_aux=True)
        (grads,) = vjp(jax.random.normal(k_cot, y.shape, y.dtype))
        out: dict[str, dict[str, dict[str, jax.Array]]] = {}
        for i, n in enumerate(names):
            _, h = captured[n]
            stats = {"pre_activation": _moments(h), "gradient": _moments(grads[n])}
            if phi is not None and dphi is not None and i < len(names) - 1:
                a = phi(h)
                s = _moments(a)
                if bounds is not None:
                    lo, hi = bounds
                    margin = SATURATION_MARGIN * (hi - lo)
                    s["saturated"] = jnp.mean(
                        ((a < lo + margin) | (a > hi - margin)).astype(jnp.float32)
                    )
                units = dphi(h).reshape(-1, h.shape[-1])
                s["dead"] = jnp.mean(jnp.all(units == 0, axis=0).astype(jnp.float32))
                stats["activation"] = s
            if phi is not None and dphi is not None and i > 0 and n_jac:
                w = _kernel(params, n)
                prev = captured[names[i - 1]][1]
                if (
                    w is not None
                    and w.ndim == 2
                    and prev.ndim == 2
                    and prev.shape[-1] == w.shape[0]
                ):
                    d = dphi(prev[:n_jac])
                    jac = d[:, :, None] * w[None].astype(d.dtype)  # (examples, in, out)
                    gram = jac @ jnp.swapaxes(jac, 1, 2) if w.shape[0] <= w.shape[1] else (
                        jnp.swapaxes(jac, 1, 2) @ jac
                    )  # fmt: skip
                    # Spectra on the host: XLA:CPU was seen to hang on a program with ten
                    # batched eigvalsh calls, and float64 LAPACK is more accurate anyway.
                    stats["jacobian"] = {"gram": gram}
            out[n] = stats
        return out

    keys = jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.arange(seeds))
    result = jax.device_get(jax.jit(jax.vmap(one_seed))(keys))
    for stats in result.values():
        if "jacobian" in stats:
            stats["jacobian"] = _spectrum_stats(stats["jacobian"]["gram"])
    rows = []
    for layer, n in enumerate(names):
        for quantity, stats in result[n].items():
            for stat, values in stats.items():
                for seed, v in enumerate(np.asarray(values, np.float64)):
                    rows.append((label, seed, layer, n, quantity, stat, float(v)))
    cols = ["init", "seed", "layer", "name", "quantity", "stat", "value"]
    return pd.DataFrame(rows, columns=cols)


def _spectrum_stats(gram: np.ndarray) -> dict[str, np.ndarray]:
    """Per-seed singular-value statistics from Gram matrices ``(seeds, examples, n, n)``."""
    sv = np.sqrt(np.clip(np.linalg.eigvalsh(gram.astype(np.float64)), 0.0, None))
    return {
        "sv_mean": sv.mean(axis=(1, 2)),
        "sv_rms": np.sqrt((sv**2).mean(axis=(1, 2))),
        "sv_min": sv.min(axis=2).mean(axis=1),
        "sv_max": sv.max(axis=2).mean(axis=1),
    }


def propagation_table(df: Any) -> Any:
    """A per-layer summary of :func:`diagnose`'s table: mean over seeds, one column per
    (quantity, stat), one row per (init, layer).

    Example:
      >>> x = jax.random.normal(jax.random.key(1), (16, 8))
      >>> df = jaxinit.diagnose(jaxinit.MLP([16] * 3, "tanh"), x, seeds=2,
      ...                       jacobian_examples=0, label="lecun")
      >>> table = jaxinit.propagation_table(df)
      >>> list(table.index)
      [('lecun', 0), ('lecun', 1), ('lecun', 2)]
      >>> [c for c in table.columns if c.startswith("pre_activation")]
      ['pre_activation.mean', 'pre_activation.second_moment', 'pre_activation.variance']
    """
    wide = df.groupby(["init", "layer", "quantity", "stat"], sort=False)["value"].mean()
    table = wide.unstack(["quantity", "stat"])
    table.columns = [f"{q}.{s}" for q, s in table.columns]
    return table


def plot_variance_by_depth(df: Any, path: str, title: str = "") -> Any:
    """Pre-activation and gradient variance vs layer, one line per init (mean over seeds,
    band from the seeds' min to max), log scale; saved to ``path``. Every init has its own
    line style and marker (staggered), so that inits with identical variances stay visible;
    the legend sits outside the axes and the figure states the number of seeds and the band.
    Returns the figure (displayed by a notebook if it is a cell's last value)."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    styles = (("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"), ((0, (5, 1, 1, 1)), "v"),
              ((0, (1, 1)), "P"), ((0, (3, 1, 1, 1, 1, 1)), "X"), ((0, (8, 2)), "*"))  # fmt: skip
    fig = Figure(figsize=(11.5, 4))
    axes = fig.subplots(1, 2)
    for ax, quantity in zip(axes, ("pre_activation", "gradient"), strict=True):
        sub = df[(df.quantity == quantity) & (df.stat == "variance")]
        for i, (init, g) in enumerate(sub.groupby("init", sort=False)):
            agg = g.groupby("layer")["value"].agg(["mean", "min", "max"])
            ls, marker = styles[i % len(styles)]
            every = max(1, len(agg) // 10)
            (line,) = ax.plot(agg.index, agg["mean"], ls=ls, marker=marker, ms=5, mfc="none",
                              markevery=(i % every, every), label=init, gid=f"center:{init}")  # fmt: skip
            ax.fill_between(agg.index, agg["min"], agg["max"], color=line.get_color(), alpha=0.2,
                            gid=f"band:{init}")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_ylabel(f"{quantity.replace('_', '-')} variance")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=8)
    seeds = df["seed"].nunique() if "seed" in df else 0
    spread = f"line: mean over {seeds} seeds, band: min–max over the {seeds} seeds"
    fig.suptitle(f"{title}\n{spread}" if title else spread)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def propagate(
    activation: str = "tanh",
    inits: Sequence[Any] = ("glorot_normal", "he_normal", "lecun_normal", "orthogonal"),
    *,
    depth: int = 20,
    width: int = 256,
    seeds: int = 8,
    batch_size: int = 256,
    key: int = 0,
) -> Any:
    """:func:`diagnose` an MLP of ``depth`` layers of ``width`` units (inputs
    :math:`\\mathcal N(0, 1)` of dimension ``width``, zero biases) once per initializer.

    Each init's rows carry its label; the returned frame's ``attrs["weight_variance"]``
    maps label to the measured :math:`\\sigma_w^2 = \\mathrm{fan\\_in}\\cdot\\mathrm{Var}(W)`
    of a square kernel, which is what mean-field theory (:func:`predict_propagation`) needs.
    """
    import pandas as pd

    from jaxinit.initializers import get
    from jaxinit.study import MLP

    for arg, value, low in (
        ("depth", depth, 2),
        ("width", width, 1),
        ("batch_size", batch_size, 1),
        ("seeds", seeds, 1),
    ):
        as_int("propagate", arg, value, minimum=low)
    key = as_int("propagate", "key", key)
    if isinstance(inits, str) or not isinstance(inits, Sequence) or not inits:
        raise ValueError(
            f"propagate: inits must be a non-empty sequence of initializers or registry"
            f" names, got {inits!r}"
        )
    x = jax.random.normal(jax.random.key(key + 1), (batch_size, width))
    frames, weight_variance = [], {}
    for spec in inits:
        label = spec if isinstance(spec, str) else getattr(spec, "__name__", repr(spec))
        init = get(spec)
        model = MLP((width,) * depth, activation, kernel_init=init)
        frames.append(diagnose(model, x, seeds=seeds, key=key, label=label))
        w = init(jax.random.key(key), (width, width), jnp.float32)
        weight_variance[label] = float(jnp.var(w)) * width
    df = pd.concat(frames, ignore_index=True)
    df.attrs["weight_variance"] = weight_variance
    return df
