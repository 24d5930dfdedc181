"""What an initializer declares about itself: its law (a bottom module: initializers declare
laws, the rules layer reads them).

Every initializer value of jaxinit (:class:`jaxinit._values.Init`) carries a ``law``, one of
the frozen dataclasses below. The rules layer (:func:`jaxinit.reinit`, :func:`jaxinit.explain`)
learns what an initializer is from that law only — never from a closure's variables:

* ``fans(shape)``: the ``(fan_in, fan_out)`` the law uses when called on ``shape`` (a
  variance-scaling law's axes, an orthogonal law's rows and columns), or ``None`` for a
  fan-free draw; ``fans_from``: the fans a rule computed its constants from (a bound
  :math:`1/\\sqrt{n_{in}}` of the layer's fan-in), shown by ``explain``;
* ``describe(fans)``: the std or bound for those fans (``"std 0.02"``, ``"bound 0.125"``);
* ``fan_dependent``: whether the draw depends on how the shape splits into fans (then the
  layer must be known to draw it right);
* ``layout``: ``"torch"`` when the initializer owns torch's ``(out, in, *k)`` axes (it is then
  called on the stored torch shape, never transposed a second time), else ``None``.

A user's own initializer may declare a law too (an attribute ``law``); one that does not is
drawn as a fan-free function and shown by ``explain`` without a std.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jaxinit._fans import fan_of_mode, fans_of
from jaxinit._types import Shape, torch_to_flax_shape

Fans = tuple[float, float]


def _g(x: float) -> str:
    return f"{x:.4g}"


@dataclass(frozen=True)
class Law:
    """The base of every law: a fan-free draw nothing more is known of.

    Attributes:
      fans_from: the fans a rule computed this law's constants from, or ``None``.
    """

    fans_from: Fans | None = dataclasses.field(default=None, kw_only=True)

    def fans(self, shape: Shape) -> Fans | None:
        """The fans this law uses on ``shape`` (``None``: it uses none)."""
        return self.fans_from

    def describe(self, fans: Fans | None = None) -> str:
        """The std or bound of a draw with ``fans`` (the result of :meth:`fans`)."""
        return "?"

    def formula(self) -> str:
        """The law in symbols (``"N(0, 0.01²)"``) where its parameters are fixed, else ``""``."""
        return ""

    @property
    def fan_dependent(self) -> bool:
        """Whether the draw depends on the fans of the shape it is called on (or a rule
        computed it from a layer's fans)."""
        return self.fans_from is not None

    @property
    def layout(self) -> str | None:
        """``"torch"`` when the initializer owns torch's axes, else ``None``."""
        return None

    def with_fans(self, fans: Fans) -> Law:
        """This law, marked as computed from a layer's ``fans``."""
        return dataclasses.replace(self, fans_from=(float(fans[0]), float(fans[1])))


@dataclass(frozen=True)
class VarianceScaling(Law):
    """Zero-mean draws of variance ``scale / n`` with ``n`` the ``mode`` of the fans.

    ``in_axis``/``out_axis``/``batch_axis`` are the resolved fan axes; ``fan_rule`` replaces
    them (Keras' fans). ``distribution``: ``"truncated_normal"`` (rescaled to the variance),
    ``"normal"`` / ``"untruncated_normal"`` or ``"uniform"``.
    """

    scale: float = 1.0
    mode: str = "fan_in"
    distribution: str = "truncated_normal"
    in_axis: Any = -2
    out_axis: Any = -1
    batch_axis: Any = ()
    fan_rule: Callable[[Shape], Fans] | None = dataclasses.field(default=None, compare=False)

    def fans(self, shape: Shape) -> Fans | None:
        if self.fan_rule is not None:
            fi, fo = self.fan_rule(tuple(shape))
        else:
            fi, fo = fans_of("explain", tuple(shape), self.in_axis, self.out_axis, self.batch_axis)
        return float(fi), float(fo)

    def describe(self, fans: Fans | None = None) -> str:
        if fans is None:
            return "?"
        var = self.scale / fan_of_mode(self.mode, *fans)
        if self.distribution == "uniform":
            return f"bound {_g(math.sqrt(3 * var))}"
        return f"std {_g(math.sqrt(var))}"

    @property
    def fan_dependent(self) -> bool:
        return True

    @property
    def layout(self) -> str | None:
        return None if (self.in_axis, self.out_axis) == (-2, -1) else "torch"


@dataclass(frozen=True)
class Normal(Law):
    """:math:`\\mathcal N(\\mathrm{mean}, \\mathrm{stddev}^2)`, fan-free."""

    stddev: float = 1.0
    mean: float = 0.0

    def describe(self, fans: Fans | None = None) -> str:
        mean = f"mean {_g(self.mean)}, " if self.mean else ""
        return f"{mean}std {_g(self.stddev)}"

    def formula(self) -> str:
        return f"N({_g(self.mean)}, {_g(self.stddev)}²)"


@dataclass(frozen=True)
class TruncatedNormal(Law):
    """:math:`\\mathcal N(\\mathrm{mean}, \\mathrm{stddev}^2)` cut to ``[lower, upper]``
    (absolute values, or in units of ``stddev`` around the mean when ``in_stddevs``)."""

    stddev: float = 1.0
    lower: float = -2.0
    upper: float = 2.0
    mean: float = 0.0
    in_stddevs: bool = True

    def describe(self, fans: Fans | None = None) -> str:
        mean = f"mean {_g(self.mean)}, " if self.mean else ""
        if self.in_stddevs:
            cut = f"[{self.lower:g}, {self.upper:g}]σ"
        else:
            cut = f"[{_g(self.lower)}, {_g(self.upper)}]"
        return f"{mean}std {_g(self.stddev)} before cutting at {cut}"

    def formula(self) -> str:
        if self.in_stddevs:
            lo, hi = self.mean + self.lower * self.stddev, self.mean + self.upper * self.stddev
        else:
            lo, hi = self.lower, self.upper
        return f"N({_g(self.mean)}, {_g(self.stddev)}²) cut to [{_g(lo)}, {_g(hi)}]"


@dataclass(frozen=True)
class Uniform(Law):
    """:math:`U[\\mathrm{low}, \\mathrm{high})`, fan-free (a bound a rule computed from fans
    says so in ``fans_from``)."""

    low: float = 0.0
    high: float = 1.0

    def describe(self, fans: Fans | None = None) -> str:
        if self.low == -self.high:
            return f"bound {_g(self.high)}"
        return f"U[{_g(self.low)}, {_g(self.high)})"

    def formula(self) -> str:
        if self.low == -self.high:
            return f"U[±{_g(self.high)}]"
        return f"U[{_g(self.low)}, {_g(self.high)})"


@dataclass(frozen=True)
class Constant(Law):
    """Every entry ``value`` (the key is ignored)."""

    value: Any = 0.0

    def describe(self, fans: Fans | None = None) -> str:
        try:
            v = float(self.value)
        except (TypeError, ValueError):
            return f"{self.value!r} (constant)"
        if v == 0:
            return "0"
        return f"{v:g} (constant)"


@dataclass(frozen=True)
class Orthogonal(Law):
    """A (semi-)orthogonal matrix times ``scale``: columns along ``column_axis``, rows the
    other axes flattened; entries of std :math:`\\mathrm{scale}/\\sqrt{\\max(rows, cols)}`.
    With ``centre_layout`` (a delta-orthogonal conv kernel in that layout) the matrix is the
    ``(in, out)`` channel matrix at the centre tap, zeros elsewhere."""

    scale: float = 1.0
    column_axis: int = -1
    centre_layout: str | None = None

    def fans(self, shape: Shape) -> Fans | None:
        if self.centre_layout is not None:
            if len(shape) < 2:
                return None
            flax = shape if self.centre_layout == "flax" else torch_to_flax_shape(tuple(shape))
            return float(flax[-2]), float(flax[-1])
        if not shape:
            return None
        cols = shape[self.column_axis]
        return float(math.prod(shape) // max(cols, 1)), float(cols)

    def describe(self, fans: Fans | None = None) -> str:
        if fans is None:
            return "?"
        std = f"std {_g(self.scale / math.sqrt(max(fans)))}"
        return std if self.centre_layout is None else f"{std} at the centre tap, 0 elsewhere"

    @property
    def fan_dependent(self) -> bool:
        return True

    @property
    def layout(self) -> str | None:
        owned = self.column_axis != -1 or self.centre_layout not in (None, "flax")
        return "torch" if owned else None


@dataclass(frozen=True)
class Structured(Law):
    """A structured (or deterministic) array whose entries follow from the shape:
    ``text`` says what it is (``"identity × 1"``, ``"ZerO (Hadamard)"``); ``axes_layout``
    the weight layout it reads the shape in (``None``: it reads no fans)."""

    text: str = "structured"
    axes_layout: str | None = None

    def describe(self, fans: Fans | None = None) -> str:
        return self.text

    @property
    def fan_dependent(self) -> bool:
        return self.axes_layout is not None or self.fans_from is not None

    @property
    def layout(self) -> str | None:
        return None if self.axes_layout in (None, "flax") else "torch"


@dataclass(frozen=True)
class Sum(Law):
    """The sum of independent draws of ``laws`` (torch's ``b_ih + b_hh``)."""

    laws: tuple[Law, ...] = ()

    def describe(self, fans: Fans | None = None) -> str:
        parts = " + ".join(x.formula() if _sym(x) else x.describe(fans) for x in self.laws)
        var = sum(_variance(x) for x in self.laws)
        return f"{parts} (std {_g(math.sqrt(var))})" if not math.isnan(var) else parts

    def formula(self) -> str:
        parts = [x.formula() for x in self.laws]
        return " + ".join(parts) if parts and all(parts) else ""


@dataclass(frozen=True)
class Blocks(Law):
    """Equal blocks along ``axis``, each drawn with its own law (fused gates)."""

    laws: tuple[Law, ...] = ()
    axis: int = 0

    def fans(self, shape: Shape) -> Fans | None:
        if self.fans_from is not None:
            return self.fans_from
        if not self.laws or not shape:
            return None
        sub = list(shape)
        sub[self.axis] //= len(self.laws)
        return self.laws[0].fans(tuple(sub))

    def describe(self, fans: Fans | None = None) -> str:
        texts = [x.describe(fans) for x in self.laws]
        if len(texts) == 1:
            return texts[0]
        if len(set(texts)) == 1:
            return f"{texts[0]} ({len(texts)} blocks)"
        return "; ".join(texts)

    def formula(self) -> str:
        parts = [x.formula() for x in self.laws]
        if not parts or not all(parts):
            return ""
        return f"{len(parts)} blocks: {', '.join(parts)}" if len(parts) > 1 else parts[0]

    @property
    def fan_dependent(self) -> bool:
        return any(x.fan_dependent for x in self.laws) or self.fans_from is not None

    @property
    def layout(self) -> str | None:
        return self.laws[0].layout if self.laws else None


@dataclass(frozen=True)
class Stacked(Law):
    """Slices along axis 0 drawn with their own laws (one per stacked layer)."""

    laws: tuple[Law, ...] = ()

    def describe(self, fans: Fans | None = None) -> str:
        if not self.laws:
            return "?"
        first, last = self.laws[0].describe(fans), self.laws[-1].describe(fans)
        return first if first == last else f"{first} .. {last} ({len(self.laws)} layers)"


@dataclass(frozen=True)
class Padded(Law):
    """``law`` with the rows ``rows`` of the table set to 0 (an embedding's padding row)."""

    law: Law = dataclasses.field(default_factory=Law)
    rows: tuple[int, ...] = ()

    def fans(self, shape: Shape) -> Fans | None:
        return self.law.fans(shape)

    def describe(self, fans: Fans | None = None) -> str:
        if not self.rows:
            return self.law.describe(fans)
        rows = ", ".join(map(str, self.rows))
        return f"{self.law.describe(fans)}; row {rows} = 0"

    @property
    def fan_dependent(self) -> bool:
        return self.law.fan_dependent

    @property
    def layout(self) -> str | None:
        return self.law.layout


def _sym(law: Law) -> bool:
    return isinstance(law, Uniform) and law.low == -law.high


def _variance(law: Law) -> float:
    if isinstance(law, Uniform):
        return (law.high - law.low) ** 2 / 12
    if isinstance(law, Normal):
        return law.stddev**2
    if isinstance(law, Constant):
        return 0.0
    return math.nan


UNKNOWN = Law()


def law_of(init: Any) -> Law:
    """The law an initializer declares (its ``law`` attribute), or :data:`UNKNOWN` (a
    fan-free draw nothing more is known of) for a callable that declares none."""
    law = getattr(init, "law", None)
    return law if isinstance(law, Law) else UNKNOWN
