"""Whole-model initialisation as one compiled program, sharded at birth.

``init_params`` traces the whole parameter tree (a Flax ``model.init``, any ``f(key)``, or
a tree of ``jax.ShapeDtypeStruct`` plus rules) into one ``jax.jit`` with ``out_shardings``,
so XLA partitions every draw and each device computes only its own shard: the full array
never exists on any device (jax#19893, flax#3701).

Same values as the unsharded init: threefry is shard-invariant when
``jax_threefry_partitionable`` is on (the default since jax 0.5), and jaxinit's fast
generator hashes each element's global index, so it is shard-invariant by construction.
With ``jax_threefry_partitionable=False`` (and with ``rbg`` keys) the sharded values differ
from the unsharded ones, but not their distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxinit._checks import check_key
from jaxinit._fast import fast_key
from jaxinit._rules import Pattern, Rules, matches, path_str, reinit

PartitionRules = Mapping[Pattern, PartitionSpec] | Sequence[tuple[Pattern, PartitionSpec]]


def _is_shape_leaf(x: Any) -> bool:
    return isinstance(x, jax.ShapeDtypeStruct)


def _target_fn(target: Any, rules: Rules | None) -> Callable[[jax.Array], Any]:
    """``key -> params`` for a callable target or a ShapeDtypeStruct tree plus rules."""
    if callable(target) and not _is_shape_leaf(target):
        if rules is not None:
            return lambda key: reinit(target(key), rules, key)
        return target
    if rules is None:
        raise ValueError(
            "init_params: a tree of shapes needs rules={pattern: initializer} for every leaf"
        )
    leaves = jax.tree_util.tree_leaves(target, is_leaf=_is_shape_leaf)
    bad = [x for x in leaves if not _is_shape_leaf(x)]
    if bad:
        raise TypeError(
            "init_params: target must be a callable key -> params or a pytree of"
            f" jax.ShapeDtypeStruct; found a leaf {bad[0]!r}"
        )

    def fn(key: jax.Array) -> Any:
        params = reinit(target, rules, key)
        left = [
            path_str(kp)
            for kp, x in jax.tree_util.tree_leaves_with_path(params, is_leaf=_is_shape_leaf)
            if _is_shape_leaf(x)
        ]
        if left:
            raise ValueError(f"init_params: no rule matches {', '.join(left[:20])}")
        return params

    return fn


def _spec_for(path: str, partition: list[tuple[Pattern, PartitionSpec]]) -> PartitionSpec:
    for pattern, spec in partition:
        if matches(pattern, path):
            return spec
    return PartitionSpec()  # replicated


def param_shardings(shapes: Any, mesh: Mesh, partition: PartitionRules | None = None) -> Any:
    """A tree of ``NamedSharding`` matching ``shapes``: the first matching pattern's spec.

    Patterns are globs over the "/"-joined path (as in :func:`jaxinit.reinit`) or compiled
    regexes; unmatched leaves are replicated. A spec's mesh axes must divide the dims.
    """
    items = list(partition.items()) if isinstance(partition, Mapping) else list(partition or ())
    for pattern, spec in items:
        if not isinstance(spec, PartitionSpec):
            raise TypeError(
                f"init_params: partition rule {pattern!r} maps to {spec!r}, not a PartitionSpec"
            )
    flat, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    out = []
    for kp, leaf in flat:
        path = path_str(kp)
        spec = _spec_for(path, items)
        if len(spec) > len(leaf.shape):
            raise ValueError(
                f"init_params: {path} has shape {leaf.shape} but its PartitionSpec {spec}"
                f" names {len(spec)} dims"
            )
        for dim, axes in zip(leaf.shape, spec, strict=False):
            names = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
            size = 1
            for name in names:
                size *= mesh.shape[name]
            if dim % size:
                raise ValueError(
                    f"init_params: {path} has shape {leaf.shape}; PartitionSpec {spec} splits a"
                    f" dim of {dim} over {size} devices, which does not divide it"
                )
        out.append(NamedSharding(mesh, spec))
    return jax.tree_util.tree_unflatten(treedef, out)


def make_init(
    target: Any,
    *,
    rules: Rules | None = None,
    mesh: Mesh | None = None,
    partition: PartitionRules | None = None,
    fast: bool = False,
) -> Callable[[jax.Array], Any]:
    """The compiled ``init(key) -> params`` behind :func:`init_params`.

    Returned so that it can be lowered and inspected (``.lower(key).compile()``) or called
    for several keys without retracing. See :func:`init_params` for the arguments.
    """
    fn = _target_fn(target, rules)
    if fast:
        inner = fn
        fn = lambda key: inner(fast_key(key))
    if mesh is None:
        if partition is not None:
            raise ValueError("init_params: partition rules need a mesh (jax.make_mesh)")
        return jax.jit(fn)
    shapes = jax.eval_shape(fn, jax.random.key(0))
    return jax.jit(fn, out_shardings=param_shardings(shapes, mesh, partition))


def init_params(
    target: Any,
    key: jax.Array,
    *,
    rules: Rules | None = None,
    mesh: Mesh | None = None,
    partition: PartitionRules | None = None,
    fast: bool = False,
) -> Any:
    """Initialise a whole parameter tree in one compiled call, optionally sharded.

    Args:
      target: ``f(key) -> params`` (e.g. ``lambda k: model.init(k, x)`` for a flax.linen
        model), or a pytree of ``jax.ShapeDtypeStruct`` (e.g. from ``jax.eval_shape``)
        whose leaves are all drawn by ``rules``.
      key: PRNG key.
      rules: ``{pattern: initializer}`` as in :func:`jaxinit.reinit` (leaf keys are folded
        from ``key`` and a hash of the path). With a callable ``target``, the rules
        re-draw the matching leaves of its output.
      mesh: a ``jax.sharding.Mesh`` (``jax.make_mesh``); without it the tree is produced
        by one ``jax.jit`` on the default device.
      partition: ``{pattern: PartitionSpec}`` over the same "/"-joined paths; first match
        wins, unmatched leaves are replicated. Each device generates only its shard.
      fast: draw with :func:`jaxinit.fast_key` (the fast generator; same distributions,
        other values).

    Returns:
      The parameter tree; with a mesh, every leaf is a global array with the given
      ``NamedSharding``.

    Example:
      >>> mesh = jax.make_mesh((4,), ("model",))
      >>> params = jaxinit.init_params(
      ...     lambda k: model.init(k, x), jax.random.key(0), mesh=mesh,
      ...     partition={"*kernel": P(None, "model")})
    """
    check_key("init_params", key)
    return make_init(target, rules=rules, mesh=mesh, partition=partition, fast=fast)(key)
