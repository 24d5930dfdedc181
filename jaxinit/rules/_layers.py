"""Fans from the layer: how each layer of a real model hands a parameter to its initializer.

A rule's initializer sees one shape. A layer knows more: flax's ``DenseGeneral`` and
attention flatten a ``(in, heads, head_dim)`` kernel to ``(in, heads * head_dim)`` before
calling ``kernel_init``; ``nn.scan`` / ``nn.vmap`` / ``nnx.vmap`` stacks call it once per
layer, so the stack axis is neither fan-in nor fan-out; Equinox stores ``(out, in, *k)``
and a GRU's three gates in one matrix. :class:`LayerFans` records, per parameter, the call
the owning layer makes, and :func:`draw` replays any initializer there:

* flax.linen: recorded while the module initialises (``module=``, ``sample=`` of
  :func:`jaxinit.reinit`): every ``*_init`` attribute of every module is wrapped, the
  wrapper notes the shape the layer hands it;
* flax.nnx and Equinox: from the layer classes (``Linear``, ``LinearGeneral``, ``Einsum``,
  ``Conv``, ``Embed``, ``GRUCell``, ...) and their attributes; extra leading axes of the
  stored array are stack axes;
* plain pytrees: the stored shape in the tree's layout, or :func:`fan_axes` per rule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._law import law_of
from jaxinit._types import flax_to_torch_axes, torch_to_flax_shape


@dataclass(frozen=True)
class LayerFans:
    """How one parameter is made by its layer.

    The stored array is ``stack_shape`` independent draws (scan/vmap layers, recurrent
    gates), each ``init(key, call_shape)`` reshaped to ``mid_shape`` and transposed by
    ``perm`` into one layer's slice ``per_layer``; the stack axes sit at ``stack_pos``,
    and the result is reshaped to the stored ``shape``.

    Attributes:
      layer: the owning layer ("DenseGeneral", "nnx.Linear", "eqx.Linear", "array").
      shape: the stored shape.
      call_shape: the shape the layer hands its initializer, flax convention
        ``(*receptive, in, out)``.
      mid_shape, perm: from one draw to one layer's slice.
      per_layer: one layer's slice in the stored layout.
      stack_shape, stack_pos: the stack axes (sizes, and positions in the stored array
        before the final reshape).
      gate_axes: how many of the last stack axes are one layer's own gate blocks (an
        Equinox GRU/LSTM cell's fused gates), not layers.
      torch_shape: for torch-layout weights, ``per_layer`` itself: an initializer that
        carries its own torch layout is called on it directly (no second transpose).
      source: "recorded" (linen), "class" (nnx / Equinox layer), "shape" (stored shape),
        "axes" (:func:`fan_axes`).
    """

    layer: str
    shape: tuple[int, ...]
    call_shape: tuple[int, ...]
    mid_shape: tuple[int, ...]
    perm: tuple[int, ...]
    per_layer: tuple[int, ...]
    stack_shape: tuple[int, ...] = ()
    stack_pos: tuple[int, ...] = ()
    torch_shape: tuple[int, ...] | None = None
    source: str = "shape"
    gate_axes: int = 0

    @property
    def fans(self) -> tuple[float, float]:
        """``(fan_in, fan_out)`` of one layer's call, flax axes ``(-2, -1)``."""
        s = self.call_shape
        if len(s) == 0:
            return 1.0, 1.0
        if len(s) == 1:
            return float(s[0]), float(s[0])
        rf = math.prod(s[:-2])
        return float(s[-2] * rf), float(s[-1] * rf)


def plain(layer: str, shape: tuple[int, ...], layout: str, source: str = "shape") -> LayerFans:
    """The stored shape is one layer's call (flax) or its torch transpose."""
    shape = tuple(shape)
    if layout == "flax" or len(shape) < 2:
        return LayerFans(layer, shape, shape, shape, tuple(range(len(shape))), shape, source=source)
    call = torch_to_flax_shape(shape)
    return LayerFans(
        layer,
        shape,
        call,
        call,
        flax_to_torch_axes(len(shape)),
        shape,
        torch_shape=shape,
        source=source,
    )


def stacked(spec: LayerFans, shape: tuple[int, ...]) -> LayerFans | None:
    """``spec`` (one layer) fitted into the stored ``shape``: extra leading axes are stack
    axes; ``None`` if the shape does not end with the layer's."""
    shape = tuple(shape)
    one = spec.per_layer
    if shape == one:
        return spec
    k = len(shape) - len(one)
    if k > 0 and shape[k:] == one:
        return _replace(spec, shape=shape, stack_shape=shape[:k], stack_pos=tuple(range(k)))
    return None


def _replace(spec: LayerFans, **kw: Any) -> LayerFans:
    return dataclasses.replace(spec, **kw)


def from_axes(
    fn: str,
    shape: tuple[int, ...],
    in_axis: Sequence[int],
    out_axis: Sequence[int],
    stack_axes: Sequence[int],
) -> LayerFans:
    """Explicit axes of the stored shape: the rest are receptive-field axes."""
    r = len(shape)
    named: dict[int, str] = {}
    for arg, axes in (("in_axis", in_axis), ("out_axis", out_axis), ("stack_axes", stack_axes)):
        for a in axes:
            if not -r <= a < r:
                raise ValueError(
                    f"{fn}: {arg}={tuple(axes)} does not fit shape {shape} of rank {r}"
                )
            if a % r in named:
                raise ValueError(
                    f"{fn}: axis {a} of shape {shape} is named twice ({named[a % r]} and {arg})"
                )
            named[a % r] = arg
    ins = [a % r for a in in_axis]
    outs = [a % r for a in out_axis]
    stack = sorted(a % r for a in stack_axes)
    if not ins or not outs:
        raise ValueError(f"{fn}: in_axis and out_axis must each name at least one axis")
    rest = [a for a in range(r) if a not in named]
    order = [*rest, *ins, *outs]  # stored axes of one layer, in draw order
    layer_axes = sorted(order)
    mid = tuple(shape[a] for a in order)
    call = (
        *mid[: len(rest)],
        math.prod(mid[len(rest) : len(rest) + len(ins)]),
        math.prod(mid[len(rest) + len(ins) :]),
    )
    # transpose mid (in draw order) to the stored order of the layer's axes
    perm = tuple(order.index(a) for a in layer_axes)
    per_layer = tuple(shape[a] for a in layer_axes)
    pos = tuple(stack)
    return LayerFans(
        "axes",
        tuple(shape),
        call,
        mid,
        perm,
        per_layer,
        stack_shape=tuple(shape[a] for a in stack),
        stack_pos=pos,
        source="axes",
    )


# --------------------------------------------------------------------------- drawing


def owned_layout(init: Any) -> str | None:
    """``"torch"`` when an initializer's law owns torch's axes (``layout="torch"``,
    explicit ``in_axis``/``out_axis``, ``orthogonal(column_axis=0)``): it is then called on
    the stored torch shape, never transposed a second time. Read from the law it declares
    (:func:`jaxinit._law.law_of`), nothing else."""
    return law_of(init).layout


def fan_dependent(init: Any) -> bool:
    """Whether an initializer's draw depends on how the shape splits into fans (variance
    scaling, orthogonal, structured, or constants a rule computed from a layer's fans:
    :meth:`jaxinit._values.Init.with_fans`), as its law declares; a callable that
    declares no law counts as not."""
    return law_of(init).fan_dependent


def draw_shape(spec: LayerFans, init: Any) -> tuple[int, ...]:
    """The shape ``init`` is called with for one layer."""
    if spec.torch_shape is not None and owned_layout(init) == "torch":
        return spec.torch_shape
    return spec.call_shape


def draw(
    spec: LayerFans, init: Callable, key: jax.Array, dtype: Any, where: str = "draw"
) -> jax.Array:
    """Replay ``init`` as the layer calls it: one draw per stacked layer, arranged into
    the stored shape. ``where`` ("reinit: the initializer for <path>") names errors."""
    owned = spec.torch_shape is not None and owned_layout(init) == "torch"

    def checked(k: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        out = init(k, shape, dtype)
        if not hasattr(out, "shape") or not hasattr(out, "dtype"):
            raise TypeError(
                f"{where} returned {type(out).__name__}, not an array of shape {tuple(shape)}"
            )
        if tuple(out.shape) != tuple(shape) or out.dtype != dtype:
            raise ValueError(
                f"{where} returned shape {tuple(getattr(out, 'shape', ()))} dtype"
                f" {getattr(out, 'dtype', None)}, expected {tuple(shape)} {np.dtype(dtype)}"
            )
        return out

    def one(k: jax.Array) -> jax.Array:
        if owned and spec.torch_shape is not None:
            return checked(k, spec.torch_shape)
        out = checked(k, spec.call_shape)
        out = jnp.reshape(out, spec.mid_shape)
        if spec.perm != tuple(range(len(spec.perm))):
            out = jnp.transpose(out, spec.perm)
        return out

    if not spec.stack_shape:
        return jnp.reshape(one(key), spec.shape)
    n = math.prod(spec.stack_shape)
    out = jax.vmap(one)(jax.random.split(key, n))
    out = jnp.reshape(out, (*spec.stack_shape, *spec.per_layer))
    k = len(spec.stack_shape)
    if spec.stack_pos != tuple(range(k)):
        out = jnp.moveaxis(out, tuple(range(k)), spec.stack_pos)
    return jnp.reshape(out, spec.shape)


# --------------------------------------------------------------------------- linen


def record_linen(
    fn: str, module: Any, sample: Any, kwargs: dict | None = None
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Initialise ``module`` abstractly on ``sample`` and record, per parameter path
    ``"<module path>/<name>"``, the owning class and the shape the layer hands its
    ``<name>_init``. Paths recorded with different shapes are left out (ambiguous)."""
    import flax.linen as nn

    if not isinstance(module, nn.Module):
        raise TypeError(f"{fn}: module= must be a flax.linen Module here, got {module!r}")
    if sample is None:
        raise ValueError(
            f"{fn}: module= needs sample= too: an input (or a tuple of inputs) of the"
            " module, as for module.init(key, sample)"
        )
    args = sample if isinstance(sample, tuple) else (sample,)
    kwargs = dict(kwargs or {})
    abstract = jax.tree_util.tree_map(
        lambda x: (
            jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x))
            if hasattr(x, "shape") or (isinstance(x, float | int) and not isinstance(x, bool))
            else x
        ),
        args,
    )
    try:
        leaves, treedef = jax.tree_util.tree_flatten(abstract)
        cache_key = (
            module,
            treedef,
            tuple((lf.shape, str(lf.dtype)) for lf in leaves),
            tuple(sorted(kwargs.items())),
        )
        hash(cache_key)
    except (TypeError, AttributeError):
        return _record_linen(module, abstract, kwargs)
    if cache_key not in _RECORDED:
        if len(_RECORDED) >= 64:
            _RECORDED.pop(next(iter(_RECORDED)))
        _RECORDED[cache_key] = _record_linen(module, abstract, kwargs)
    return _RECORDED[cache_key]


# Recording traces the module's init (~0.1 s): a repeated reinit on the same module and
# input shapes (a study's seeds, a benchmark) records once.
_RECORDED: dict[Any, dict[str, tuple[str, tuple[int, ...]]]] = {}


def _record_linen(module: Any, args: Any, kwargs: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    with linen_recording() as recorded:
        jax.eval_shape(lambda k, *a: module.init(k, *a, **kwargs), jax.random.key(0), *args)
    return recorded


@contextlib.contextmanager
def linen_recording() -> Iterator[dict[str, tuple[str, tuple[int, ...]]]]:
    """While active, every linen module that runs has each ``*_init`` attribute wrapped
    by a spy noting the shape the layer hands it (the innermost module owning the call).
    The yielded dict is filled on exit: ``"<module path>/<name>" -> (class, shape)``;
    paths seen with different shapes are left out. Nothing is drawn differently: the
    spies call the original initializers."""
    import flax.linen as nn

    seen: dict[tuple, set] = {}
    owner: dict[tuple, str] = {}
    out: dict[str, tuple[str, tuple[int, ...]]] = {}

    def spy_for(orig: Callable, where: tuple) -> Callable:
        base = getattr(orig, "_jaxinit_orig", orig)

        def spy(key, shape, *a, **kw):
            seen.setdefault(where, set()).add(tuple(int(d) for d in shape))
            return base(key, shape, *a, **kw)

        spy._jaxinit_orig = base  # type: ignore[attr-defined]
        return spy

    def interceptor(next_fun, a, kw, context):
        mod = context.module
        swapped = {}
        try:
            path = tuple(mod.path)
        except Exception:  # an unbound module: nothing to record
            return next_fun(*a, **kw)
        for name in getattr(mod, "__dataclass_fields__", {}):
            if not name.endswith("_init"):
                continue
            value = getattr(mod, name, None)
            if callable(value) and not isinstance(value, nn.Module):
                where = (path, name[: -len("_init")])
                owner[where] = type(mod).__name__
                if name == "kernel_init" and getattr(mod, "transpose_kernel", False) is True:
                    owner[where] += TRANSPOSED  # ConvTranspose: (*k, out, in), not (*k, in, out)
                swapped[name] = value
                object.__setattr__(mod, name, spy_for(value, where))
        try:
            return next_fun(*a, **kw)
        finally:
            for name, value in swapped.items():
                object.__setattr__(mod, name, value)

    with nn.intercept_methods(interceptor):
        yield out
    for (path, name), shapes in seen.items():
        if len(shapes) == 1:
            out["/".join(map(str, (*path, name)))] = (owner[(path, name)], next(iter(shapes)))


# A layer whose kernel is handed to its initializer as ``(*k, out, in)`` (linen's and nnx's
# ``ConvTranspose(transpose_kernel=True)``): its layer name carries this suffix.
TRANSPOSED = "(transpose_kernel)"


def _transposed(per: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A transposed kernel ``(*k, out, in)``: its conventional call ``(*k, in, out)`` (the
    layer's real fans) and the permutation from a draw of that call back to ``per``."""
    n = len(per)
    return (*per[:-2], per[-1], per[-2]), (*range(n - 2), n - 1, n - 2)


def linen_spec(layer: str, call: tuple[int, ...], shape: tuple[int, ...]) -> LayerFans | None:
    """A recorded call fitted to the stored shape: extra leading axes (scan/vmap) are a
    stack, the rest is the call reshaped (DenseGeneral's flattening). A transposed kernel
    (``layer`` ends in :data:`TRANSPOSED`) is drawn in flax's ``(*k, in, out)`` call and
    stored with its last two axes swapped, so its fans are the layer's real in and out."""
    shape = tuple(shape)
    n = math.prod(call)
    for k in range(len(shape) + 1):
        if math.prod(shape[k:]) == n:
            per = shape[k:]
            mid, perm = per, tuple(range(len(per)))
            if layer.endswith(TRANSPOSED) and len(call) >= 2 and per == call:
                call, perm = _transposed(per)
                mid = call
            return LayerFans(
                layer,
                shape,
                call,
                mid,
                perm,
                per,
                stack_shape=shape[:k],
                stack_pos=tuple(range(k)),
                source="recorded",
            )
    return None


# --------------------------------------------------------------------------- nnx


def nnx_specs(module: Any) -> dict[str, LayerFans]:
    """Per-layer specs of an nnx module's parameters, from the layer classes."""
    from flax import nnx

    out: dict[str, LayerFans] = {}
    for path, m in nnx.iter_modules(module):
        prefix = "/".join(map(str, path))
        for name, one in _nnx_layer(m).items():
            out[f"{prefix}/{name}" if prefix else name] = one
    return out


def _flat(name: str, per: tuple[int, ...], call: tuple[int, ...]) -> LayerFans:
    return LayerFans(name, per, call, per, tuple(range(len(per))), per, source="class")


def _nnx_layer(m: Any) -> dict[str, LayerFans]:
    from flax import nnx

    cls = f"nnx.{type(m).__name__}"
    out = {}
    if isinstance(m, nnx.LinearGeneral):
        batch = tuple(m.batch_axis.values())
        ins, outs = tuple(m.in_features), tuple(m.out_features)
        per = (*batch, *ins, *outs)
        out["kernel"] = _flat(cls, per, (math.prod(batch) * math.prod(ins), math.prod(outs)))
        out["bias"] = _flat(cls, (*batch, *outs), (math.prod(batch) * math.prod(outs),))
    elif isinstance(m, nnx.Linear):
        out["kernel"] = _flat(cls, (m.in_features, m.out_features), (m.in_features, m.out_features))
        out["bias"] = _flat(cls, (m.out_features,), (m.out_features,))
    elif isinstance(m, nnx.Embed):
        out["embedding"] = _flat(
            cls, (m.num_embeddings, m.features), (m.num_embeddings, m.features)
        )
    elif isinstance(m, nnx.Einsum | nnx.Conv | nnx.ConvTranspose) or hasattr(m, "kernel_shape"):
        ks = getattr(m, "kernel_shape", None)
        if isinstance(ks, tuple) and getattr(m, "transpose_kernel", False) is True:
            call, perm = _transposed(tuple(ks))
            out["kernel"] = LayerFans(cls + TRANSPOSED, tuple(ks), call, call, perm, tuple(ks),
                                      source="class")  # fmt: skip
        elif isinstance(ks, tuple):
            out["kernel"] = _flat(cls, tuple(ks), tuple(ks))
        bs = getattr(m, "bias_shape", None)
        if isinstance(bs, tuple):
            out["bias"] = _flat(cls, tuple(bs), tuple(bs))
        elif isinstance(getattr(m, "out_features", None), int):
            out["bias"] = _flat(cls, (m.out_features,), (m.out_features,))
    return out


# --------------------------------------------------------------------------- Equinox


def eqx_spec(owner: Any, name: str, shape: tuple[int, ...]) -> LayerFans | None:
    """The spec of an Equinox layer's parameter (torch layout), from its class."""
    import equinox as eqx

    cls = f"eqx.{type(owner).__name__}"
    shape = tuple(shape)
    layers = (eqx.nn.Linear, eqx.nn.Conv, eqx.nn.ConvTranspose, eqx.nn.GRUCell, eqx.nn.LSTMCell)
    if name.startswith("bias") and isinstance(owner, layers):
        return _replace(plain(cls, shape, "flax"), source="class")  # (out,) or (out, 1, ..)
    if isinstance(owner, eqx.nn.Embedding) and name == "weight":
        return stacked(
            _flat(
                cls,
                (owner.num_embeddings, owner.embedding_size),
                (owner.num_embeddings, owner.embedding_size),
            ),
            shape,
        )
    if isinstance(owner, eqx.nn.Linear) and name == "weight":
        o = 1 if owner.out_features == "scalar" else owner.out_features
        i = 1 if owner.in_features == "scalar" else owner.in_features
        return stacked(_torch(cls, (o, i)), shape)
    if isinstance(owner, eqx.nn.Conv | eqx.nn.ConvTranspose) and name == "weight":
        per = (owner.out_channels, owner.in_channels // owner.groups, *owner.kernel_size)
        return stacked(_torch(cls, per), shape)
    gates: dict[type[Any], int] = {eqx.nn.GRUCell: 3, eqx.nn.LSTMCell: 4}
    for klass, g in gates.items():
        if isinstance(owner, klass) and name in ("weight_ih", "weight_hh"):
            h = owner.hidden_size
            i = owner.input_size if name == "weight_ih" else h
            one = _torch(cls, (h, i))
            spec = stacked(one, shape)
            if spec is not None:
                return spec  # already one gate: unusual, but fine
            lead = shape[:-2]
            if shape[-2:] == (g * h, i):
                # the gates are stacked along the out axis: each gate is a layer
                k = len(lead) + 1
                return _replace(
                    one, shape=shape, stack_shape=(*lead, g), stack_pos=tuple(range(k)), gate_axes=1
                )
            return None
    return None


def _torch(cls: str, per: tuple[int, ...]) -> LayerFans:
    spec = plain(cls, per, "torch")
    return _replace(spec, source="class")


# --------------------------------------------------------------------------- stacks


@dataclass(frozen=True)
class _PerLayer:
    """One initializer per layer of a stack (``None``: keep that layer's slice)."""

    inits: tuple[Any, ...]
    sub: Any  # LayerFans of one slice (the stack axis removed)
