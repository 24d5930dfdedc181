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
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxinit._checks import check_key
from jaxinit._types import Pattern, Rules
from jaxinit.initializers import fast_key
from jaxinit.rules._layers import linen_recording
from jaxinit.rules._paths import matches, path_str
from jaxinit.rules._rules import reinit, reinit_recorded

PartitionRules = Mapping[Pattern, PartitionSpec] | Sequence[tuple[Pattern, PartitionSpec]]


def _is_shape_leaf(x: Any) -> bool:
    return isinstance(x, jax.ShapeDtypeStruct)


def _target_fn(target: Any, rules: Rules | None) -> Callable[[jax.Array], Any]:
    """``key -> params`` for a callable target or a ShapeDtypeStruct tree plus rules."""
    if callable(target) and not _is_shape_leaf(target):
        if rules is not None:

            def drawn(key: jax.Array) -> Any:
                # linen layers met while target runs are recorded, so each rule draws
                # with its layer's fans (DenseGeneral, scan stacks)
                with linen_recording() as recorded:
                    params = target(key)
                return reinit_recorded(params, rules, key, recorded)

            return drawn
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


def _is_array(x: Any) -> bool:
    """Equinox's ``eqx.is_array``: what a compiled program can return."""
    return isinstance(x, jax.Array | np.ndarray | np.generic)


def _is_declared(x: Any) -> bool:
    """A node that may carry a declared sharding: a linen box or an nnx Variable."""
    from flax.core import meta
    from flax.nnx import Variable

    return isinstance(x, meta.AxisMetadata | Variable)


def _names_spec(names: Any) -> PartitionSpec:
    return names if isinstance(names, PartitionSpec) else PartitionSpec(*names)


def _declared_spec(node: Any, axis_rules: Any, path: str) -> PartitionSpec | None:
    """The mesh PartitionSpec a linen box or nnx Variable declares, logical names resolved
    as flax resolves them, or None."""
    import flax.linen as nn
    from flax.core import meta, spmd
    from flax.linen.spmd import LogicallyPartitioned
    from flax.nnx import Variable

    context = nn.get_logical_axis_rules()
    given = None if axis_rules is None else tuple(axis_rules)
    if isinstance(node, LogicallyPartitioned):
        rules = node.rules if node.rules is not None else given
        if rules is None:
            rules = context
        if not rules:
            raise ValueError(
                f"init_params: {path} declares the logical axes {tuple(node.names)}"
                " (nn.with_logical_partitioning) but no logical-axis rules are given; pass"
                " logical_axis_rules=[(logical name, mesh axis or None), ...] or call under"
                " `with nn.logical_axis_rules(...):`"
            )
        return nn.logical_to_mesh_axes(tuple(node.names), rules)
    if isinstance(node, meta.Partitioned):
        return node.get_partition_spec()
    if isinstance(node, Variable):
        names = node.get_metadata().get("out_sharding")
        if not names:
            return None
        if isinstance(names, NamedSharding):
            return names.spec
        # as flax.nnx.get_partition_spec: the context (or given) rules, then the
        # Variable's own sharding_rules; a name no rule maps is used as a mesh axis
        rules = spmd.composite_rules(
            context if given is None else given, node.get_metadata().get("sharding_rules") or ()
        )
        return PartitionSpec(*spmd.from_sharding_rules(tuple(names), rules))
    return None


def _leaf_table(tree: Any) -> tuple[Any, list[tuple[str, Any, Any]]]:
    """``treedef`` and, per leaf, ``(path, leaf, the linen box or nnx Variable holding it)``."""
    nodes = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_declared)[0]
    table = []
    for kp, node in nodes:
        holder = node if _is_declared(node) else None
        for sub_kp, leaf in jax.tree_util.tree_flatten_with_path(node)[0]:
            table.append((path_str((*kp, *sub_kp)), leaf, holder))
    return jax.tree_util.tree_structure(tree), table


def _partition_items(partition: PartitionRules | None) -> list[tuple[Pattern, PartitionSpec]]:
    items = list(partition.items()) if isinstance(partition, Mapping) else list(partition or ())
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(
                "init_params: partition must be {pattern: PartitionSpec} or a sequence of"
                f" (pattern, PartitionSpec) pairs, got the item {item!r}"
            )
        pattern, spec = item
        if not isinstance(spec, PartitionSpec):
            raise TypeError(
                f"init_params: partition rule {pattern!r} maps to {spec!r}, not a PartitionSpec"
            )
    return items


def _check_mesh(mesh: Any) -> Mesh | None:
    if mesh is not None and not isinstance(mesh, Mesh):
        raise TypeError(
            "init_params: mesh must be a jax.sharding.Mesh (e.g. jax.make_mesh((4,),"
            f" ('model',))), got {mesh!r} of type {type(mesh).__name__}"
        )
    return mesh


def _check_spec(path: str, shape: tuple[int, ...], spec: PartitionSpec, mesh: Mesh, source: str):
    where = f"init_params: {path} (shape {shape}) has PartitionSpec {spec} ({source})"
    if len(spec) > len(shape):
        raise ValueError(f"{where}, which names {len(spec)} dims")
    seen: list[str] = []
    for dim, axes in zip(shape, spec, strict=False):
        names = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
        size = 1
        for name in names:
            if name not in mesh.shape:
                raise ValueError(
                    f"{where}: mesh axis {name!r} is not an axis of the mesh; its axes are"
                    f" {tuple(mesh.axis_names)} (a logical name needs logical_axis_rules; the"
                    " stack axis of nn.scan / nnx.vmap is named by their partition name,"
                    " None for replicated)"
                )
            if name in seen:
                raise ValueError(f"{where}: mesh axis {name!r} is used twice")
            seen.append(name)
            size *= mesh.shape[name]
        if dim % size:
            raise ValueError(
                f"{where}: it splits a dim of {dim} over {size} devices, which does not divide it"
            )


def _shardings(
    table: list[tuple[str, Any, Any]],
    mesh: Mesh,
    items: list[tuple[Pattern, PartitionSpec]],
    axis_rules: Any = None,
) -> list[NamedSharding]:
    """Per leaf: the first matching ``partition`` pattern, else the model's own declaration,
    else replicated. Every pattern must match some leaf."""
    used = [False] * len(items)
    out = []
    for path, leaf, holder in table:
        spec, source = None, ""
        for i, (pattern, pattern_spec) in enumerate(items):
            if matches(pattern, path):
                used[i] = True
                if spec is None:
                    spec, source = pattern_spec, f"from partition rule {pattern!r}"
        if spec is None and holder is not None:
            spec, source = _declared_spec(holder, axis_rules, path), "declared by the model"
        if spec is None:
            spec = PartitionSpec()
        shape = tuple(getattr(leaf, "shape", ()))
        _check_spec(path, shape, spec, mesh, source)
        out.append(NamedSharding(mesh, spec))
    unused = [repr(p) for (p, _), u in zip(items, used, strict=True) if not u]
    if unused:
        listing = ", ".join(p for p, _, _ in table[:60]) or "(none)"
        more = f" ... ({len(table)} in all)" if len(table) > 60 else ""
        raise ValueError(
            f"init_params: partition pattern {', '.join(unused)} matches no parameter; the"
            f" parameters are: {listing}{more}"
        )
    return out


def param_shardings(
    shapes: Any,
    mesh: Mesh,
    partition: PartitionRules | None = None,
    *,
    logical_axis_rules: Any = None,
) -> Any:
    """A tree of ``NamedSharding`` matching ``shapes``, one per leaf.

    Each leaf gets the first matching ``partition`` pattern's spec, else the sharding the
    model declares for it (linen ``nn.with_partitioning`` / ``nn.with_logical_partitioning``
    boxes, nnx ``out_sharding`` metadata), else it is replicated. Patterns are globs over
    the "/"-joined path (as in :func:`jaxinit.reinit`) or compiled regexes; a pattern that
    matches no leaf is an error. A spec's mesh axes must exist and divide the dims.

    Example:
      >>> import flax.linen as nn
      >>> from jax.sharding import PartitionSpec as P
      >>> model, x = nn.Dense(16), jnp.ones((1, 8))
      >>> shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))  # nothing drawn
      >>> mesh = jax.make_mesh((jax.device_count(),), ("model",))
      >>> shardings = jaxinit.param_shardings(shapes, mesh, {"*kernel": P(None, "model")})
      >>> shardings["params"]["kernel"].spec, shardings["params"]["bias"].spec  # bias: replicated
      (P(None, 'model'), P())
    """
    checked = _check_mesh(mesh)
    if checked is None:
        raise TypeError("param_shardings: mesh must be a jax.sharding.Mesh, got None")
    mesh = checked
    treedef, table = _leaf_table(shapes)
    shardings = _shardings(table, mesh, _partition_items(partition), logical_axis_rules)
    return jax.tree_util.tree_unflatten(treedef, shardings)


class _Split:
    """The array leaves of ``fn(key)``'s output, with the rest kept aside at trace time (as
    Equinox's ``filter_jit`` does), so that models holding functions, ints or strings
    (Equinox modules) can be returned by a compiled program."""

    def __init__(self, fn: Callable[[jax.Array], Any]):
        self.fn = fn
        self.treedef: Any = None
        self.table: list[tuple[str, Any, Any]] = []

    def arrays(self, key: jax.Array) -> tuple[Any, ...]:
        from flax import nnx

        # nnx shards annotated Variables eagerly (and needs a mesh for it): here the
        # annotations are honoured by init_params' out_shardings instead
        with nnx.use_eager_sharding(False):
            out = self.fn(key)
        self.treedef, self.table = _leaf_table(out)
        return tuple(leaf for _, leaf, _ in self.table if _is_array(leaf))

    def array_table(self) -> list[tuple[str, Any, Any]]:
        return [row for row in self.table if _is_array(row[1])]

    def all_arrays(self) -> bool:
        return all(_is_array(leaf) for _, leaf, _ in self.table)

    def rebuild(self, arrays: Any) -> Any:
        it = iter(arrays)
        leaves = [next(it) if _is_array(leaf) else leaf for _, leaf, _ in self.table]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


class _InitFn:
    """``key -> model`` around the compiled arrays-only program (``lower`` inspects it)."""

    def __init__(self, jitted: Any, split: _Split):
        self._jitted, self._split = jitted, split

    def __call__(self, key: jax.Array) -> Any:
        return self._split.rebuild(self._jitted(key))

    def lower(self, *args: Any, **kwargs: Any) -> Any:
        return self._jitted.lower(*args, **kwargs)


def make_init(
    target: Any,
    *,
    rules: Rules | None = None,
    mesh: Mesh | None = None,
    partition: PartitionRules | None = None,
    fast: bool = False,
    logical_axis_rules: Any = None,
) -> Callable[[jax.Array], Any]:
    """The compiled ``init(key) -> params`` behind :func:`init_params`.

    Returned so that it can be lowered and inspected (``.lower(key).compile()``) or called
    for several keys without retracing. See :func:`init_params` for the arguments.

    Example:
      >>> import flax.linen as nn
      >>> model, x = nn.Dense(16), jnp.ones((1, 8))
      >>> init = jaxinit.make_init(lambda k: model.init(k, x), rules={"*kernel": "he_normal"})
      >>> a, b = init(jax.random.key(0)), init(jax.random.key(1))  # compiled once
      >>> a["params"]["kernel"].shape, bool((a["params"]["kernel"] != b["params"]["kernel"]).any())
      ((8, 16), True)
    """
    mesh = _check_mesh(mesh)
    if mesh is None:  # the mesh of `with jax.set_mesh(mesh):`, if any
        context = jax.sharding.get_mesh()
        mesh = None if context.empty else context
    items = _partition_items(partition)
    if mesh is None and partition is not None:
        raise ValueError("init_params: partition rules need a mesh (jax.make_mesh)")
    fn = _target_fn(target, rules)
    if fast:
        inner = fn
        fn = lambda key: inner(fast_key(key))
    split = _Split(fn)
    jax.eval_shape(split.arrays, jax.random.key(0))  # traces: the leaves and declarations
    if split.all_arrays():
        # the output is a pytree of arrays: compile the target itself, same tree out
        whole = lambda key: split.rebuild(split.arrays(key))
        if mesh is None:
            return jax.jit(whole)
        shardings = _shardings(split.table, mesh, items, logical_axis_rules)
        return jax.jit(whole, out_shardings=jax.tree_util.tree_unflatten(split.treedef, shardings))
    if mesh is None:
        return _InitFn(jax.jit(split.arrays), split)
    shardings = _shardings(split.array_table(), mesh, items, logical_axis_rules)
    return _InitFn(jax.jit(split.arrays, out_shardings=tuple(shardings)), split)


def init_params(
    target: Any,
    key: jax.Array,
    *,
    rules: Rules | None = None,
    mesh: Mesh | None = None,
    partition: PartitionRules | None = None,
    fast: bool = False,
    logical_axis_rules: Any = None,
) -> Any:
    """Initialise a whole parameter tree in one compiled call, optionally sharded.

    Args:
      target: ``f(key) -> params`` (e.g. ``lambda k: model.init(k, x)`` for a flax.linen
        model, ``lambda k: Model(rngs=nnx.Rngs(k))`` for nnx, ``lambda k:
        eqx.nn.MLP(..., key=k)`` for Equinox), or a pytree of ``jax.ShapeDtypeStruct``
        (e.g. from ``jax.eval_shape``) whose leaves are all drawn by ``rules``. Leaves that
        are not arrays (an Equinox module's activation function, ints) are kept aside, as
        ``eqx.filter_jit`` does, and put back into the result.
      key: PRNG key.
      rules: ``{pattern: initializer}`` as in :func:`jaxinit.reinit` (leaf keys are folded
        from ``key`` and a hash of the path). With a callable ``target``, the rules
        re-draw the matching leaves of its output.
      mesh: a ``jax.sharding.Mesh`` (``jax.make_mesh``); default: the mesh set by
        ``jax.set_mesh``, if any. Without one the tree is produced by one ``jax.jit`` on
        the default device.
      partition: ``{pattern: PartitionSpec}`` over the same "/"-joined paths; first match
        wins and overrides what the model declares. Leaves no pattern matches get the
        sharding the model declares (linen ``nn.with_partitioning`` and
        ``nn.with_logical_partitioning`` boxes, nnx ``out_sharding`` metadata, e.g. from
        ``nnx.with_partitioning``), else they are replicated; a model that declares its
        shardings needs no ``partition``. A pattern that matches no leaf is an error.
        Each device generates only its shard.
      fast: draw with :func:`jaxinit.fast_key` (the fast generator; same distributions,
        other values).
      logical_axis_rules: ``[(logical name, mesh axis or None), ...]`` resolving the
        logical axis names of ``nn.with_logical_partitioning`` and of nnx ``out_sharding``
        metadata, as flax's ``nn.logical_axis_rules`` context (used when this is None).
        A box's own ``rules`` and an nnx Variable's ``sharding_rules`` take precedence.

    Returns:
      The parameter tree (the model, for nnx and Equinox), boxes and metadata as the
      target returns them; with a mesh, every array is a global array with its
      ``NamedSharding``.

    Example:
      >>> import flax.linen as nn
      >>> from jax.sharding import PartitionSpec as P
      >>> model, x = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(16)]), jnp.ones((1, 8))
      >>> mesh = jax.make_mesh((jax.device_count(),), ("model",))
      >>> params = jaxinit.init_params(
      ...     lambda k: model.init(k, x), jax.random.key(0), mesh=mesh,
      ...     partition={"*kernel": P(None, "model")})
      >>> params["params"]["layers_0"]["kernel"].sharding.spec
      P(None, 'model')

      A model that declares logical axis names needs only the rules that map them:

      >>> model = nn.Dense(16, kernel_init=nn.with_logical_partitioning(
      ...     jaxinit.he_normal(), ("embed", "mlp")))
      >>> params = jaxinit.init_params(lambda k: model.init(k, x), jax.random.key(0),
      ...     mesh=mesh, logical_axis_rules=[("embed", None), ("mlp", "model")])
      >>> params["params"]["kernel"].value.sharding.spec
      P(None, 'model')
    """
    check_key("init_params", key)
    return make_init(
        target,
        rules=rules,
        mesh=mesh,
        partition=partition,
        fast=fast,
        logical_axis_rules=logical_axis_rules,
    )(key)
