"""Fan-in and fan-out of a weight shape: the one place where layouts and axes are resolved
(a bottom module: the initializers and the rules layer share it).

Layouts:
  * ``"flax"`` (default): ``(*spatial, in, out)`` — flax, haiku, keras kernels.
  * ``"torch"`` / ``"equinox"``: ``(out, in, *spatial)`` — torch and equinox weights.

Every axis not named as in, out or batch is a receptive-field (spatial) axis, and both
fans are multiplied by the receptive-field size, as in Glorot & Bengio and He et al.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from jaxinit._checks import check_shape
from jaxinit._types import LAYOUTS, Axes, Layout, check_layout


def check_axes(fn: str, arg: str, axes: Any) -> int | tuple[int, ...]:
    """An axis argument is an int or a sequence of ints (checked when the factory is built).

    numpy integer scalars and 0-d integer arrays count as ints (a 1-d integer array as a
    sequence); the result is a Python int or a tuple of Python ints. Bools are refused.
    """

    def index(a: Any) -> int:
        if isinstance(a, bool | str | bytes) or str(getattr(a, "dtype", "")) == "bool":
            raise TypeError
        return operator.index(a)  # int, numpy int, 0-d integer array

    try:
        if isinstance(axes, Sequence) or getattr(axes, "ndim", 0) == 1:
            if isinstance(axes, str | bytes):
                raise TypeError
            return tuple(index(a) for a in axes)
        return index(axes)
    except TypeError:
        raise TypeError(f"{fn}: {arg} must be an int or a sequence of ints, got {axes!r}") from None


def resolve_axes(
    fn: str, layout: str | None, in_axis: Axes | None, out_axis: Axes | None
) -> tuple[Axes, Axes]:
    """Explicit axes win; otherwise they come from the layout (flax by default)."""
    layout_in, layout_out = LAYOUTS[check_layout(fn, layout) or "flax"]
    in_axis = layout_in if in_axis is None else in_axis
    out_axis = layout_out if out_axis is None else out_axis
    return check_axes(fn, "in_axis", in_axis), check_axes(fn, "out_axis", out_axis)


def normalize_axes(
    fn: str, arg: str, axes: Axes, shape: tuple[int, ...], *, unique: bool = True
) -> tuple[int, ...]:
    checked = check_axes(fn, arg, axes)
    seq = (checked,) if isinstance(checked, int) else checked
    rank = len(shape)
    out = []
    for a in seq:
        if not -rank <= a < rank:
            need = a + 1 if a >= 0 else -a
            raise ValueError(
                f"{fn}: shape {shape} has rank {rank}; {arg}={axes!r} needs rank >= {need}"
            )
        out.append(a % rank)
    if unique and len(set(out)) != len(out):
        raise ValueError(f"{fn}: {arg}={axes!r} repeats an axis of shape {shape}")
    return tuple(out)


def fans_of(
    fn: str,
    shape: tuple[int, ...],
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
) -> tuple[float, float]:
    """Return ``(fan_in, fan_out)`` as floats, computed exactly as jax.nn does.

    Every axis combination jax accepts is accepted, with jax's arithmetic: axes may be
    negative, repeated, and in, out and batch axes may overlap (flax's embedding init is
    ``variance_scaling(1.0, "fan_in", "normal", out_axis=0)`` on ``(vocab, features)``:
    in and out are both axis 0, so fan_in = features). Raises a ValueError naming ``fn``
    when an axis is out of range or a fan is zero.
    """
    ins = normalize_axes(fn, "in_axis", in_axis, shape, unique=False)
    outs = normalize_axes(fn, "out_axis", out_axis, shape, unique=False)
    batches = normalize_axes(fn, "batch_axis", batch_axis, shape, unique=False)
    in_size = math.prod(shape[i] for i in ins)
    out_size = math.prod(shape[i] for i in outs)
    batch_size = math.prod(shape[i] for i in batches)
    if 0 in (in_size, out_size, batch_size) or 0 in shape:
        raise ValueError(
            f"{fn}: shape {shape} has a zero dimension, so fan_in or fan_out is 0"
            f" (in_axis={in_axis!r}, out_axis={out_axis!r}); fans must be positive"
        )
    # Same float arithmetic as jax.nn.initializers, so that outputs match bit for bit.
    receptive_field = math.prod(shape) / in_size / out_size / batch_size
    return in_size * receptive_field, out_size * receptive_field


def fan_of_mode(mode: str, fan_in: float, fan_out: float) -> float:
    """The fan a variance-scaling ``mode`` divides the scale by: ``fan_in``, ``fan_out``,
    their mean (``"fan_avg"``) or their geometric mean (``"fan_geo_avg"``)."""
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2
    return (fan_in * fan_out) ** 0.5


def compute_fans(
    shape: tuple[int, ...],
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    *,
    layout: Layout | None = None,
) -> tuple[float, float]:
    """``(fan_in, fan_out)`` of a weight shape, for a layout or explicit axes.

    >>> jaxinit.compute_fans((3, 3, 16, 32))  # flax conv (*spatial, in, out)
    (144.0, 288.0)
    >>> jaxinit.compute_fans((32, 16, 3, 3), layout="torch")  # torch conv (out, in, *spatial)
    (144.0, 288.0)
    """
    shape = check_shape("compute_fans", shape)
    in_axis, out_axis = resolve_axes("compute_fans", layout, in_axis, out_axis)
    return fans_of("compute_fans", shape, in_axis, out_axis, batch_axis)
