"""What the model-family rule sets share: patterns that leave out what an earlier rule
names, and the rule that refuses a parameter a family does not have.

A family's rule set covers every parameter of the original model; a parameter it does not
know (a layer kind the original has not, an extra embedding) must not keep its value
silently. :func:`not_covered` is the last rule of such a set: it matches exactly the
parameters whose names no other rule of the set takes, and names the first one it meets.
It never overlaps the rules before it, so it shadows nothing and is shadowed by nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from jaxinit._types import Pattern
from jaxinit.rules._rules import ContextRule, LeafInfo, any_of


def excluding(pattern: Pattern, *excluded: Pattern) -> re.Pattern:
    """The paths ``pattern`` matches that none of ``excluded`` matches (a ``re.Pattern``
    for :func:`jaxinit.reinit`, like :func:`jaxinit.any_of`), so that two rules of one set
    never match the same parameter."""
    keep = any_of(pattern).pattern
    drop = any_of(*excluded).pattern
    return re.compile(rf"(?!(?:{drop})\Z)(?:{keep})")


def call_rank(info: LeafInfo) -> int:
    """The rank of the shape the owning layer hands its initializer (2 for a Dense/Linear
    kernel, 4 for a 2-D conv, 1 for a norm's scale), whatever the stored layout."""
    layer = info.layer
    return len(layer.call_shape) if layer is not None else len(info.shape)


def not_covered(fn: str, family: str, names: Iterable[str]) -> tuple[re.Pattern, ContextRule]:
    """The last rule of a family's set: every parameter whose last path segment is none of
    ``names`` is an error that names it (and its layer's other parameters), before
    anything is drawn.

    Args:
      fn: the rule set's function name, for the message.
      family: what the set initialises ("a torchvision ResNet").
      names: the parameter names the set's other rules take (``kernel``, ``bias``, ...).
    """
    known = sorted(set(names))
    alternatives = "|".join(re.escape(n) for n in known)
    pattern = re.compile(rf"(?:.*/)?(?!(?:{alternatives})\Z)[^/]+")

    def build(info: LeafInfo):
        siblings = ", ".join(f"{n} {s}" for n, s in sorted(info.siblings.items())) or "none"
        raise ValueError(
            f"{fn}: {info.path} {info.shape} is not a parameter of {family}: these rules"
            f" cover parameters named {', '.join(known)}, so it would keep its value (its"
            f" layer's other parameters: {siblings}); give it a rule of its own before"
            f" these with strict=False ({{'{info.name}': init, **jaxinit.{fn}(...,"
            " strict=False)}), or use the rule set of its family"
        )

    return pattern, ContextRule(build, f"{fn}: not covered", optional=True)


def unknown_kind(fn: str, family: str, info: LeafInfo, kinds: str) -> ValueError:
    """The error of a rule that met a layer kind its family does not have."""
    layer = info.layer.layer if info.layer is not None else "?"
    shape = info.layer.call_shape if info.layer is not None else info.shape
    return ValueError(
        f"{fn}: {info.path} {info.shape} (layer {layer}, initializer call {shape}) is not a"
        f" layer of {family} ({kinds}); it is not covered: give it a rule of its own before"
        " these, or use the rule set of its family"
    )
