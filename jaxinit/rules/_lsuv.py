"""Data-dependent initialization: LSUV (Mishkin & Matas 2015) for flax.linen and flax.nnx.

The model is not rewritten: the output of every Dense/Conv layer is read during an ordinary
forward pass — linen's ``capture_intermediates``, and for nnx a hook on the layer classes'
``__call__`` installed only while the forward pass is traced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._checks import check_key
from jaxinit.initializers import orthogonal
from jaxinit.rules import _layers
from jaxinit.rules._paths import path_key, path_str


class LayerReport(NamedTuple):
    """What LSUV reached for one layer.

    Attributes:
      layer: the module path (``"Dense_3"``, ``"layers/2"``).
      kernel: the path of the rescaled parameter.
      variance: the layer's output variance on the batch after the last rescaling.
      iterations: rescalings performed (0 if the orthonormal start was already within tol).
      converged: ``|variance - 1| < tol``.
    """

    layer: str
    kernel: str
    variance: float
    iterations: int
    converged: bool


def _check_batch(batch: Any) -> Any:
    leaves = jax.tree.leaves(batch)
    if not leaves:
        raise ValueError("lsuv: batch is empty (no arrays)")
    for x in leaves:
        shape = np.shape(x)
        if not shape or 0 in shape:
            raise ValueError(
                f"lsuv: batch is empty or has no batch axis (shape {shape}); LSUV needs a "
                "batch of real inputs"
            )
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact):
            bad = int(np.size(x) - np.count_nonzero(np.isfinite(np.asarray(x))))
            if bad:
                raise ValueError(
                    f"lsuv: batch contains {bad} NaN or infinite values out of {np.size(x)}"
                    f" (shape {shape}); clean the data first"
                )
    return batch


def lsuv(
    model: Any,
    params: Any,
    batch: Any,
    key: jax.Array,
    *,
    tol: float = 0.02,
    max_iters: int = 20,
    layer_types: Sequence[type] | None = None,
    apply_kwargs: Mapping[str, Any] | None = None,
) -> tuple[Any, tuple[LayerReport, ...]]:
    r"""Layer-sequential unit-variance init (Mishkin & Matas 2015, "All you need is a good
    init").

    1. Every kernel of a normalised layer is replaced by a random orthonormal matrix
       (Saxe et al. 2013; :func:`jaxinit.orthogonal`, conv kernels flattened to
       ``(k·k·in, out)``), drawn from ``fold_in(key, crc32(kernel path))``.
    2. Layer by layer, in the order of the forward pass, the layer's output variance
       :math:`v` on ``batch`` is measured and :math:`W \leftarrow W/\sqrt{v}` until
       :math:`|v-1| < \mathrm{tol}` or ``max_iters`` rescalings.

    Biases are left as they are (zero by default in flax). Layers that do not reach the
    tolerance are reported (``converged=False``), not an error.

    Args:
      model: a ``flax.linen.Module``, or a ``flax.nnx.Module``.
      params: linen: the variables dict (``{"params": ...}``, other collections passed
        through) or the params dict. nnx: ``None`` to use the module's own parameters, or
        an ``nnx.State`` of its ``nnx.Param`` variables.
      batch: the model's input (an array or a pytree of arrays), a representative batch.
      key: PRNG key of the orthonormal start.
      tol: tolerance on the output variance (the paper's 0.02).
      max_iters: most rescalings per layer (the paper's 20 is an upper bound; 1-3 suffice).
      layer_types: the module classes to normalise; default ``(nn.Dense, nn.Conv)`` for
        linen and ``(nnx.Linear, nnx.Conv)`` for nnx.
      apply_kwargs: extra keyword arguments of the forward pass (e.g. ``train=False``).

    Returns:
      ``(new_params, report)``: parameters of the same form as given (linen dict, nnx
      ``State``, or a new nnx module when ``params`` is None) and one :class:`LayerReport`
      per layer in forward order. The inputs are not modified.

    Raises:
      ValueError: an empty batch or one with NaN/inf, a model with no layer to normalise, a
        layer whose output variance is zero or not finite (named in the message).

    Example:
      >>> import flax.linen as nn
      >>> model = nn.Sequential([nn.Dense(32), nn.tanh, nn.Dense(10)])
      >>> x_train = jax.random.normal(jax.random.key(1), (128, 16))
      >>> params = model.init(jax.random.key(0), x_train)
      >>> params, report = jaxinit.lsuv(model, params, x_train, jax.random.key(0))
      >>> [round(r.variance, 2) for r in report]
      [1.0, 1.0]
    """
    check_key("lsuv", key)
    fn = "lsuv"
    if isinstance(tol, np.generic | np.ndarray) and np.ndim(tol) == 0:
        tol = tol.item()  # numpy scalars and 0-d arrays count as numbers
    if isinstance(max_iters, np.integer | np.ndarray) and np.ndim(max_iters) == 0:
        max_iters = max_iters.item()
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 < tol < 1:
        raise ValueError(f"{fn}: tol must be a number in (0, 1), got {tol!r}")
    if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
        raise ValueError(f"{fn}: max_iters must be an int >= 1, got {max_iters!r}")
    batch = _check_batch(batch)
    kwargs = dict(apply_kwargs or {})
    if layer_types is not None and (
        isinstance(layer_types, str | type) or not all(isinstance(t, type) for t in layer_types)
    ):
        raise TypeError(
            f"{fn}: layer_types must be a sequence of Module classes (e.g. [nn.Dense]),"
            f" got {layer_types!r}"
        )

    import flax.linen as nn
    from flax import nnx

    if isinstance(model, nn.Module):
        if not isinstance(params, Mapping):
            raise TypeError(f"{fn}: params of a linen model must be a dict, got {type(params)}")
        wrapped = "params" not in params
        variables = {"params": params} if wrapped else dict(params)
        types = tuple(layer_types or (nn.Dense, nn.Conv))
        _check_applies(fn, lambda v, b: model.apply(v, b, **kwargs), variables, batch)
        probe = _linen_probe(model, batch, types, kwargs)
        recorded = _layers.record_linen(fn, model, (batch,), kwargs)

        def layer_of(kpath: str, shape: tuple[int, ...]) -> Any:
            rec = recorded.get(kpath.split("/", 1)[1])
            return None if rec is None else _layers.linen_spec(rec[0], rec[1], shape)

        new, report = _run(fn, variables, probe, key, tol, max_iters, "params/", layer_of)
        return (new["params"] if wrapped else new), report
    if isinstance(model, nnx.Module):
        types = tuple(layer_types or (nnx.Linear, nnx.Conv))
        # nnx.split is typed with a variadic tail of states (two filters give two states)
        graphdef, own, rest = nnx.split(model, nnx.Param, ...)  # type: ignore[misc]
        if params is not None and not isinstance(params, nnx.State):
            raise TypeError(
                f"{fn}: params of an nnx model must be None or an nnx.State of its"
                f" nnx.Param variables, got {type(params).__name__}"
            )
        state = own if params is None else params
        _check_applies(fn, lambda s, b: nnx.merge(graphdef, s, rest)(b, **kwargs), state, batch)
        probe = _nnx_probe(graphdef, rest, batch, types, kwargs)
        specs = _layers.nnx_specs(model)

        def layer_of(kpath: str, shape: tuple[int, ...]) -> Any:
            one = specs.get(kpath)
            return None if one is None else _layers.stacked(one, shape)

        new, report = _run(fn, state, probe, key, tol, max_iters, "", layer_of)
        return (nnx.merge(graphdef, new, rest) if params is None else new), report
    raise TypeError(
        f"{fn}: model must be a flax.linen or flax.nnx Module, got {type(model).__name__}"
    )


def _check_applies(fn: str, forward: Callable, params: Any, batch: Any) -> None:
    """Trace one forward pass (nothing is computed) so that a batch of the wrong shape
    is reported as such, naming ``fn``, instead of failing inside the probe."""
    try:
        jax.eval_shape(forward, params, batch)
    except Exception as e:
        shapes = jax.tree.map(np.shape, batch)
        raise ValueError(
            f"{fn}: the model cannot be applied to the batch (shape {shapes}) with these"
            f" params: {type(e).__name__}: {e}"
        ) from e


class _Probe(NamedTuple):
    layers: list[str]  # module paths, forward order
    called: list[str]  # every module type seen, for the error message
    variances: Callable[[Any], jax.Array]  # params tree -> one variance per layer


def _variance(outputs: Sequence[jax.Array]) -> jax.Array:
    flat = jnp.concatenate([jnp.ravel(y).astype(jnp.float32) for y in outputs])
    return jnp.var(flat)


def _linen_probe(model: Any, batch: Any, types: tuple, kwargs: dict) -> Callable:
    def forward(variables: Any, order: list[str], called: list[str]):
        def keep(mdl: Any, method_name: str) -> bool:
            if method_name != "__call__":
                return False
            called.append(type(mdl).__name__)
            if not isinstance(mdl, types):
                return False
            p = "/".join(mdl.path)
            if p not in order:
                order.append(p)
            return True

        _, state = model.apply(
            variables, batch, capture_intermediates=keep, mutable=["intermediates"], **kwargs
        )
        return state.get("intermediates", {})

    def make(variables: Any) -> _Probe:
        order: list[str] = []
        called: list[str] = []
        jax.eval_shape(lambda v: forward(v, order, called), variables)

        def variances(v: Any) -> jax.Array:
            inter = forward(v, [], [])
            out = []
            for p in order:
                node = inter
                for part in p.split("/"):
                    node = node[part]
                out.append(_variance(node["__call__"]))
            return jnp.stack(out)

        return _Probe(order, called, variances)

    return make


def _nnx_probe(graphdef: Any, rest: Any, batch: Any, types: tuple, kwargs: dict) -> Callable:
    from flax import nnx

    def forward(state: Any, called: list[str]) -> list[tuple[str, jax.Array]]:
        module = nnx.merge(graphdef, state, rest)
        paths = {
            id(m): "/".join(map(str, p))
            for p, m in nnx.iter_modules(module)
            if isinstance(m, types)
        }
        records: list[tuple[str, jax.Array]] = []
        active: set[int] = set()

        def hook(orig: Callable) -> Callable:
            def call(self: Any, *args: Any, **kw: Any) -> Any:
                if id(self) in active:  # a subclass calling its parent's __call__
                    return orig(self, *args, **kw)
                active.add(id(self))
                try:
                    y = orig(self, *args, **kw)
                finally:
                    active.discard(id(self))
                called.append(type(self).__name__)
                if id(self) in paths:
                    records.append((paths[id(self)], y))
                return y

            return call

        # nnx has no forward hooks: wrap the layer classes' __call__ for this trace only.
        saved = {cls: cls.__dict__.get("__call__") for cls in types}
        try:
            for cls in types:
                cls.__call__ = hook(cls.__call__)
            module(batch, **kwargs)
        finally:
            for cls, orig in saved.items():
                if orig is None:
                    del cls.__call__
                else:
                    cls.__call__ = orig
        return records

    def make(state: Any) -> _Probe:
        order: list[str] = []
        called: list[str] = []

        def trace(s: Any) -> None:
            for p, _ in forward(s, called):
                if p not in order:
                    order.append(p)

        jax.eval_shape(trace, state)

        def variances(s: Any) -> jax.Array:
            by_layer: dict[str, list[jax.Array]] = {}
            for p, y in forward(s, []):
                by_layer.setdefault(p, []).append(y)
            return jnp.stack([_variance(by_layer[p]) for p in order])

        return _Probe(order, called, variances)

    return make


def _run(
    fn: str,
    tree: Any,
    make_probe: Callable,
    key: jax.Array,
    tol: float,
    max_iters: int,
    prefix: str,
    layer_of: Callable[[str, tuple[int, ...]], Any],
) -> tuple[Any, tuple[LayerReport, ...]]:
    probe = make_probe(tree)
    if not probe.layers:
        seen = sorted(set(probe.called)) or ["none"]
        raise ValueError(
            f"{fn}: the model has no layer to normalise (no Dense/Conv-type module was"
            f" called on the batch; modules called: {', '.join(seen)}); pass layer_types="
        )
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    leaves = [v for _, v in flat]
    index = {path_str(kp): i for i, (kp, _) in enumerate(flat)}
    kernels = []
    for layer in probe.layers:
        kpath = f"{prefix}{layer}/kernel"
        if kpath not in index or np.ndim(leaves[index[kpath]]) < 2:
            raise ValueError(f"{fn}: layer {layer!r} has no kernel of rank >= 2 at {kpath!r}")
        kernels.append(kpath)

    ortho = orthogonal()  # float32 QR then cast: also for bf16 kernels
    for kpath in kernels:
        w = leaves[index[kpath]]
        # drawn as the layer draws its kernel_init: a DenseGeneral kernel (in, h, d) as
        # (in, h*d), each layer of a scanned stack its own orthonormal matrix
        layer = layer_of(kpath, tuple(w.shape)) or _layers.plain("array", tuple(w.shape), "flax")
        where = f"{fn}: the orthonormal start of {kpath}"
        leaves[index[kpath]] = _layers.draw(layer, ortho, path_key(key, kpath), w.dtype, where)

    measure = jax.jit(lambda ls: probe.variances(jax.tree_util.tree_unflatten(treedef, ls)))
    report = []
    for n, (layer, kpath) in enumerate(zip(probe.layers, kernels, strict=True)):
        i = index[kpath]
        iterations = 0
        while True:
            v = float(measure(leaves)[n])
            if not math.isfinite(v) or v == 0.0:
                what = "0" if v == 0.0 else str(v)
                raise ValueError(
                    f"{fn}: layer {layer!r} has output variance {what} on this batch (after"
                    f" {iterations} rescalings), so it cannot be scaled to variance 1; check"
                    " the batch and the layers before it (e.g. a dead ReLU or zero inputs)"
                )
            if abs(v - 1.0) < tol or iterations == max_iters:
                break
            w = leaves[i]
            leaves[i] = w * jnp.asarray(1.0 / math.sqrt(v), w.dtype)
            iterations += 1
        report.append(LayerReport(layer, kpath, v, iterations, abs(v - 1.0) < tol))
    return jax.tree_util.tree_unflatten(treedef, leaves), tuple(report)
