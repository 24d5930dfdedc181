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
from typing import Any

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


def not_covered(
    fn: str, family: str, names: Iterable[str] = (), patterns: Iterable[Pattern] = ()
) -> tuple[re.Pattern, ContextRule]:
    """The last rule of a family's set: every parameter whose last path segment is none of
    ``names`` and that none of ``patterns`` matches is an error that names it (and its
    layer's other parameters), before anything is drawn. It matches nothing the set's
    other rules take, so it shadows nothing and is shadowed by nothing.

    Args:
      fn: the rule set's function name, for the message.
      family: what the set initialises ("a torchvision ResNet").
      names: the parameter names the set's other rules take (``kernel``, ``bias``, ...).
      patterns: or the set's other patterns themselves.
    """
    known = sorted(set(names))
    covers = list(patterns)
    pattern = re.compile(r"(?:.*/)?[^/]+")
    if known:
        alternatives = "|".join(re.escape(n) for n in known)
        pattern = re.compile(rf"(?:.*/)?(?!(?:{alternatives})\Z)[^/]+")
    if covers:
        pattern = excluding(pattern, *covers)
    what = f"parameters named {', '.join(known)}" if known else "the parameters of its layers"

    def build(info: LeafInfo):
        siblings = ", ".join(f"{n} {s}" for n, s in sorted(info.siblings.items())) or "none"
        raise ValueError(
            f"{fn}: {info.path} {info.shape} is not a parameter of {family}: these rules"
            f" cover {what}, so it would keep its value (its layer's other parameters:"
            f" {siblings}); give it a rule of its own before these with strict=False"
            f" ({{'{info.name}': init, **jaxinit.{fn}(..., strict=False)}}), or use the rule"
            " set of its family"
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


def padded_embedding(fn: str, base: Any, padding_idx: int) -> ContextRule:
    """An embedding table drawn by ``base`` with row ``padding_idx`` set to 0 (torch's
    ``nn.Embedding(..., padding_idx=i)`` after ``normal_``, as Hugging Face's
    ``_init_weights`` does). ``native``: the row is a row of the stored table. A table that
    has no such row is an error, before anything is drawn."""

    def init(key, shape, dtype=None):
        return base(key, shape, dtype).at[padding_idx].set(0)

    def build(info: LeafInfo):
        if len(info.shape) != 2 or padding_idx >= info.shape[0]:
            raise ValueError(
                f"{fn}: padding_idx={padding_idx} >= vocabulary size"
                f" {info.shape[0] if info.shape else 0} of {info.path} {info.shape}: this"
                " embedding has no padding row (give the config's pad_token_id, or"
                " padding_idx=None)"
            )
        return init

    return ContextRule(build, f"{fn} embedding (padding row {padding_idx} zero)", native=True)
