"""Explain: the table of what :func:`jaxinit.reinit` would do, drawing nothing.

One row per parameter: its path, stored shape, owning layer, the rule that matches it (its
pattern as written), the initializer, the fans its law uses and the std or bound. Every
column is read from what the initializer declares (its law, :mod:`jaxinit._law`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from jaxinit._law import law_of
from jaxinit._values import Init
from jaxinit.rules import _layers
from jaxinit.rules._layers import LayerFans, _PerLayer
from jaxinit.rules._paths import pattern_label


def describe_stack(spec: LayerFans) -> str:
    return "" if not spec.stack_shape else f" x{math.prod(spec.stack_shape)}"


def describe(init: Any, shape: tuple[int, ...]) -> tuple[str, str, str]:
    """``(name, fans, std or bound)`` of ``init`` called on ``shape``, from the law it
    declares (nothing is drawn)."""
    law = law_of(init)
    name = repr(init) if isinstance(init, Init) else _factory(init)
    if isinstance(init, Init) and law.formula():
        # a fixed law in symbols: a repr of default options would hide it (normal() is
        # std 0.01), a rule's own drawing function has no options worth reading
        name = f"{init.name} ~ {law.formula()}"
    try:
        fans = law.fans(tuple(shape))
    except (ValueError, TypeError):
        return name, "?", "?"
    shown = "-" if fans is None else f"{fans[0]:g}, {fans[1]:g}"  # the fans the law uses
    return name, shown, law.describe(fans)


def _factory(init: Any) -> str:
    """A function's name (its factory's, for a closure)."""
    qual = getattr(init, "__qualname__", None) or getattr(init, "__name__", None)
    return (qual or type(init).__name__).split(".<locals>")[0].lstrip("_")


def table(items: list) -> str:
    """The explain table of a plan's items."""
    header = ("path", "shape", "layer", "rule", "initializer", "fans (in, out)", "std / bound")
    rows = []
    for it in items:
        layer = "-" if it.layer is None else it.layer.layer + describe_stack(it.layer)
        if not it.matched:
            rows.append((it.path, str(it.shape), layer, "-", "(kept)", "-", "-"))
            continue
        rule = pattern_label(it.rule) if isinstance(it.rule, re.Pattern) else str(it.rule)
        if it.init is None:
            rows.append((it.path, str(it.shape), layer, rule, "None (kept)", "-", "-"))
            continue
        if isinstance(it.init, _PerLayer):  # first and last layer of the stack
            ends = [(i, f) for i, f in enumerate(it.init.inits) if f is not None]
            cols = []
            for _, f in (ends[0], ends[-1]):
                shape = it.shape[1:] if it.native else _layers.draw_shape(it.init.sub, f)
                cols.append(describe(f, shape))
            name = f"{cols[0][0]} (layer {ends[0][0]}) .. {cols[1][0]} (layer {ends[-1][0]})"
            fans, stat = cols[0][1], f"{cols[0][2]} .. {cols[1][2]}"
            rows.append((it.path, str(it.shape), layer, rule, name, fans, stat))
            continue
        shape = it.shape if it.native else _layers.draw_shape(it.layer, it.init)
        name, fans, stat = describe(it.init, shape)
        rows.append((it.path, str(it.shape), layer, rule, name, fans, stat))
    widths = [max(len(r[c]) for r in (header, *rows)) for c in range(len(header))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
