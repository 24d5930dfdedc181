"""jax's ``Initializer`` protocol: ``init(key, shape, dtype=None, out_sharding=None)``.

jax 0.10's ``jax.nn.initializers`` take an ``out_sharding`` (a ``NamedSharding``, or a
``PartitionSpec`` under ``jax.set_mesh``) and pass it to the ``jax.random`` sampler, so the
draw is produced sharded and the rescaling that follows stays sharded. Every jaxinit
initializer accepts the same argument through one mechanism:

* :func:`with_out_sharding` wraps a factory's ``init(key, shape, dtype)`` into the
  protocol's signature (same default dtype, ``out_sharding=None`` appended);
* while a sharded call runs, :func:`sampler` (used by ``_core._rng``, the sampling hook)
  hands out a sampler that passes ``out_sharding`` to every draw of the requested shape,
  exactly where jax passes it, so the values are bit-identical to jax's for the same key
  and sharding (also under jit, where the sharding constraint decides XLA's fusion);
* the result is then resharded to the requested sharding, which is a no-op for such draws
  and places the output of the schemes jax does not shard (complex draws, orthogonal and
  the other structured schemes, which jax refuses with ``NotImplementedError``).

jax accepts ``out_sharding`` only for mesh axes of type ``Explicit`` under ``jax.set_mesh``.
jaxinit also honours it elsewhere: for ``Auto`` axes the output is constrained with
``jax.lax.with_sharding_constraint`` (under jit XLA then partitions the draw, so each
device computes only its shard), and for an ``Explicit`` mesh that is not the current one
the output is placed with ``jax.device_put``. The values are the unsharded ones in every
case (threefry is shard-invariant with ``jax_threefry_partitionable``, jax's default, and
the fast generator hashes each element's global index).
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import AbstractMesh, AxisType, Mesh, NamedSharding, PartitionSpec

from jaxinit._checks import check_shape
from jaxinit._types import OutSharding

# (requested sharding, requested shape) of the sharded call being traced, if any.
_ACTIVE: contextvars.ContextVar[tuple[NamedSharding, tuple[int, ...]] | None] = (
    contextvars.ContextVar("jaxinit_out_sharding", default=None)
)


def _spec_axes(spec: PartitionSpec) -> list[str]:
    names: list[str] = []
    for entry in spec:
        if entry is None or entry is PartitionSpec.UNCONSTRAINED:
            continue
        names.extend((entry,) if isinstance(entry, str) else tuple(entry))
    return names


def canonical_out_sharding(
    fn: str, out_sharding: Any, shape: tuple[int, ...]
) -> NamedSharding | None:
    """``out_sharding`` as a ``NamedSharding`` (or None), checked against ``shape``.

    A ``PartitionSpec`` is resolved against the current mesh (``jax.set_mesh``), as jax does.
    """
    if out_sharding is None:
        return None
    mesh: Mesh | AbstractMesh
    if isinstance(out_sharding, PartitionSpec):
        mesh = jax.sharding.get_abstract_mesh()
        if mesh.empty:
            raise ValueError(
                f"{fn}: out_sharding={out_sharding} is a PartitionSpec but no mesh is set;"
                " pass a NamedSharding(mesh, spec) or call under `with jax.set_mesh(mesh):`"
            )
        spec = out_sharding
    elif isinstance(out_sharding, NamedSharding):
        if out_sharding.mesh.empty:
            return None
        spec, mesh = out_sharding.spec, out_sharding.mesh
    else:
        raise TypeError(
            f"{fn}: out_sharding must be a jax.sharding.NamedSharding, a PartitionSpec or"
            f" None, got {out_sharding!r} of type {type(out_sharding).__name__}"
        )
    if len(spec) > len(shape):
        raise ValueError(
            f"{fn}: out_sharding {spec} names {len(spec)} dims but shape {shape} has rank"
            f" {len(shape)}"
        )
    names = _spec_axes(spec)
    unknown = [a for a in names if a not in mesh.axis_names]
    if unknown:
        raise ValueError(
            f"{fn}: out_sharding {spec} uses mesh axis {unknown[0]!r}, which the mesh does not"
            f" have; its axes are {tuple(mesh.axis_names)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{fn}: out_sharding {spec} uses a mesh axis twice")
    return out_sharding if isinstance(out_sharding, NamedSharding) else NamedSharding(mesh, spec)


def _axis_types(sharding: NamedSharding) -> set[AxisType]:
    mesh = sharding.mesh
    types = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))
    return {types[a] for a in _spec_axes(sharding.spec)}


def _native(sharding: NamedSharding) -> bool:
    """True where jax itself honours the sharding: Explicit axes of the current mesh."""
    current = jax.sharding.get_abstract_mesh()
    return (
        not current.empty
        and current == sharding.mesh.abstract_mesh
        and _axis_types(sharding) <= {AxisType.Explicit}
        and bool(sharding.mesh.explicit_axes)
    )


def call_sharded(
    fn: str, draw: Callable[[], jax.Array], out_sharding: Any, shape: tuple[int, ...]
) -> jax.Array:
    """Run ``draw()`` (which produces ``shape``) so that its result has ``out_sharding``."""
    sharding = canonical_out_sharding(fn, out_sharding, tuple(shape))
    if sharding is None:
        return draw()
    if _native(sharding):
        token = _ACTIVE.set((sharding, tuple(shape)))
        try:
            out = draw()
        finally:
            _ACTIVE.reset(token)
        return jax.sharding.reshard(out, sharding)
    out = draw()
    if _axis_types(sharding) <= {AxisType.Auto}:
        return jax.lax.with_sharding_constraint(out, sharding)
    return jax.device_put(out, sharding)


def with_out_sharding(fn: str, init: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """``init(key, shape, dtype=d)`` -> ``init(key, shape, dtype=d, out_sharding=None)``."""
    default = inspect.signature(init).parameters["dtype"].default

    def sharded_init(
        key: Any, shape: Any, dtype: Any = default, out_sharding: OutSharding = None
    ) -> jax.Array:
        if out_sharding is None:
            return init(key, shape, dtype)
        shape = check_shape(fn, shape)
        return call_sharded(fn, lambda: init(key, shape, dtype), out_sharding, shape)

    sharded_init._jaxinit_out_sharding = True  # type: ignore[attr-defined]
    sharded_init.__name__ = getattr(init, "__name__", "init")
    sharded_init.__qualname__ = getattr(init, "__qualname__", "init")
    sharded_init.__doc__ = getattr(init, "__doc__", None)
    sharded_init.__module__ = getattr(init, "__module__", __name__)
    return sharded_init


def _takes_out_sharding(init: Any) -> bool:
    try:
        return "out_sharding" in inspect.signature(init).parameters
    except (TypeError, ValueError):
        return False


def call_init(fn: str, init: Any, args: tuple[Any, ...], out_sharding: Any = None) -> jax.Array:
    """``init(*args)`` (``args = (key, shape[, dtype])``) with ``out_sharding`` honoured.

    For wrappers of any initializer: jaxinit's get the argument, jax's get it where jax
    supports it (Explicit axes of the current mesh), any other is drawn and then placed.
    """
    if out_sharding is None:
        return init(*args)
    if getattr(init, "_jaxinit_out_sharding", False):
        return init(*args, out_sharding=out_sharding)
    shape = check_shape(fn, args[1])
    sharding = canonical_out_sharding(fn, out_sharding, shape)
    if sharding is not None and _native(sharding) and _takes_out_sharding(init):
        return jax.sharding.reshard(init(*args, out_sharding=sharding), sharding)
    return call_sharded(fn, lambda: init(*args), sharding, shape)


class _ShardedSampler:
    """``jax.random`` (or jaxinit's fast sampler) with ``out_sharding`` on draws of one shape."""

    def __init__(self, rng: Any, sharding: NamedSharding, shape: tuple[int, ...]):
        self._rng, self._sharding, self._shape = rng, sharding, shape

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rng, name)

    def _draw(self, name: str, key: Any, shape: Any, *args: Any) -> jax.Array:
        """``jax.random.<name>(key, *args)``, where ``shape`` is one of the ``args``."""
        sample = getattr(self._rng, name)
        if tuple(shape) != self._shape:
            return sample(key, *args)
        if self._rng is jax.random:
            return sample(key, *args, out_sharding=self._sharding)
        # the fast generator has no out_sharding: the same auto_axes + reshard as jax.random
        drawn = jax.sharding.auto_axes(
            lambda k: sample(k, *args),
            out_sharding=self._sharding,
            axes=self._sharding.mesh.explicit_axes,
        )
        return drawn(key)

    def normal(self, key: Any, shape: Any = (), dtype: Any = float) -> jax.Array:
        return self._draw("normal", key, shape, shape, dtype)

    def uniform(
        self, key: Any, shape: Any = (), dtype: Any = float, minval: Any = 0.0, maxval: Any = 1.0
    ) -> jax.Array:
        return self._draw("uniform", key, shape, shape, dtype, minval, maxval)

    def truncated_normal(
        self, key: Any, lower: Any, upper: Any, shape: Any = (), dtype: Any = float
    ) -> jax.Array:
        return self._draw("truncated_normal", key, shape, lower, upper, shape, dtype)


def sampler(rng: Any) -> Any:
    """``rng`` itself, or, inside a sharded call, ``rng`` with the call's ``out_sharding``."""
    active = _ACTIVE.get()
    return rng if active is None else _ShardedSampler(rng, *active)
