"""The types every layer shares, and the one conversion between weight layouts.

The bottom of the package: it imports only jax, numpy and the standard library, so any
module of any layer (initializers, rules, study, theory, the CLI) may import it.

* ``Initializer``: jax's protocol ``init(key, shape, dtype, out_sharding=None) -> Array``,
  which flax.linen and flax.nnx accept as ``kernel_init``.
* ``Array``, ``DTypeLike``, ``Shape``, ``Axes``, ``OutSharding``: the arguments' types.
* ``Layout`` and ``LAYOUTS``: where a layout keeps its fan-in and fan-out axes; the
  conversion between flax's ``(*spatial, in, out)`` and torch's / Equinox's
  ``(out, in, *spatial)`` (:func:`flax_to_torch_axes`, :func:`flax_to_torch`,
  :func:`torch_to_flax_shape`), written once here.
* ``Pattern`` and ``Rules``: how :func:`jaxinit.reinit` maps parameter paths to initializers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

Array: TypeAlias = jax.Array
DTypeLike: TypeAlias = Any
Shape: TypeAlias = tuple[int, ...]
Axes: TypeAlias = int | Sequence[int]
OutSharding: TypeAlias = NamedSharding | PartitionSpec | None


@runtime_checkable
class Initializer(Protocol):
    """``init(key, shape, dtype, out_sharding=None) -> Array``: jax's protocol, which
    flax.linen and flax.nnx accept as ``kernel_init``.

    Example:
      >>> init = jaxinit.he_normal()  # every jaxinit initializer is one, and so are jax's
      >>> isinstance(init, jaxinit.Initializer)
      True
      >>> isinstance(jax.nn.initializers.zeros, jaxinit.Initializer)
      True
      >>> w = init(jax.random.key(0), (64, 32), jnp.float32)
      >>> w.shape, w.dtype
      ((64, 32), dtype('float32'))
      >>> import flax.linen as nn
      >>> variables = nn.Dense(4, kernel_init=init).init(jax.random.key(0), jnp.ones((1, 8)))
      >>> variables["params"]["kernel"].shape
      (8, 4)
    """

    def __call__(
        self, key: Array, shape: Shape, dtype: DTypeLike = ..., out_sharding: OutSharding = ...
    ) -> Array: ...


# --------------------------------------------------------------------------- layouts

Layout: TypeAlias = Literal["flax", "torch", "equinox"]

# (in_axis, out_axis) of a weight stored in each layout.
LAYOUTS: dict[str, tuple[int, int]] = {
    "flax": (-2, -1),  # (*spatial, in, out): flax, haiku, keras
    "torch": (1, 0),  # (out, in, *spatial): torch
    "equinox": (1, 0),  # Equinox stores torch's order
}


def check_layout(
    fn: str, layout: Any, *, none: str = "the flax layout"
) -> Literal["flax", "torch"] | None:
    """The one check of a ``layout`` argument: ``"flax"``, ``"torch"``, ``"equinox"`` (folded
    into ``"torch"``: Equinox stores torch's order) or ``None`` (returned as ``None``; ``none``
    says in the error what it means to ``fn``). Anything else is a ValueError naming ``fn``.

    >>> check_layout("he_normal", "equinox")
    'torch'
    """
    if layout is None:
        return None
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(
            f"{fn}: layout={layout!r} is not supported: layout must be 'flax', 'torch' or"
            f" 'equinox' (Equinox stores torch's order), or None ({none}); got {layout!r}"
        )
    return "flax" if layout == "flax" else "torch"


def flax_to_torch_axes(rank: int) -> tuple[int, ...]:
    """The permutation taking ``(*spatial, in, out)`` to ``(out, in, *spatial)``: axis ``i``
    of the torch-layout array is axis ``flax_to_torch_axes(rank)[i]`` of the flax one.

    >>> flax_to_torch_axes(4)
    (3, 2, 0, 1)
    """
    return (rank - 1, rank - 2, *range(rank - 2))


def flax_to_torch(x: Array) -> Array:
    """A flax-layout ``(*spatial, in, out)`` array as torch's ``(out, in, *spatial)``."""
    return jnp.transpose(x, flax_to_torch_axes(x.ndim))


def torch_to_flax_shape(shape: Shape) -> Shape:
    """A torch-layout shape ``(out, in, *spatial)`` as flax's ``(*spatial, in, out)``.

    >>> torch_to_flax_shape((32, 16, 3, 5))
    (3, 5, 16, 32)
    """
    return (*shape[2:], shape[1], shape[0])


# --------------------------------------------------------------------------- rules

Pattern: TypeAlias = str | re.Pattern
Rules: TypeAlias = Mapping[Pattern, Any] | Sequence[tuple[Pattern, Any]]
