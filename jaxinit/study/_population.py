"""The population's initial state: member keys, the hyperparameter grid, each member's
parameters drawn by its init spec (through :func:`jaxinit.reinit`, with the layers' fans),
optimizer state with the member's hyperparameters, and model state."""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinit.rules import reinit
from jaxinit.study._adapters import _abstract_io, _Model
from jaxinit.study._guards import check_grid
from jaxinit.study._program import _optax_promotion


class Study(Protocol):
    """The fields of a :class:`jaxinit.Study` that the population reads (the spec lives
    above this module: no import cycle)."""

    @property
    def hparams(self) -> Mapping[str, Sequence[float]] | None: ...
    @property
    def optimizer(self) -> Any: ...
    @property
    def kernel_pattern(self) -> str: ...


@functools.lru_cache(maxsize=64)
def _init_shapes(model: _Model, spec_key: Any, kernel_pattern: str) -> Any:
    program = jax.vmap(_member_init(model, spec_key, kernel_pattern))
    return jax.eval_shape(lambda: program(jax.random.split(jax.random.key(0), 1)))


@functools.lru_cache(maxsize=32)
def _opt_init(optimizer: optax.GradientTransformation, hparams: tuple[str, ...] = ()) -> Callable:
    """vmap((params, hparam values) -> optimizer state): each member's hyperparameters are
    written into its ``inject_hyperparams`` state, which the update reads every step."""

    def init(params, values):
        with _optax_promotion():
            state = optimizer.init(params)
        if not hparams:
            return state
        hp = dict(state.hyperparams)
        for j, name in enumerate(hparams):
            hp[name] = values[j].astype(jnp.result_type(hp[name]))
        return state._replace(hyperparams=hp)

    return jax.vmap(init)


@functools.lru_cache(maxsize=32)
def _injected(factory: Callable, names: tuple[str, ...], first: tuple[float, ...]) -> Any:
    """``optax.inject_hyperparams(factory)`` with the grid's first values (cached: the same
    object for the same factory, so compiled programs are reused)."""
    return optax.inject_hyperparams(factory)(**dict(zip(names, first, strict=True)))


def _hparam_grid(study: Study) -> tuple[tuple[str, ...], list[tuple[float, ...]]]:
    """Names and every combination of values (the first name varies slowest)."""
    hp = study.hparams
    if hp is None:
        return (), [()]
    if not isinstance(hp, Mapping) or not hp:
        raise ValueError(
            "Study: hparams must be a non-empty mapping name -> values, e.g."
            f" {{'learning_rate': [1e-3, 1e-2]}}, got {hp!r}"
        )
    grid = {}
    for name, values in hp.items():
        if not isinstance(name, str):
            raise TypeError(f"Study: hparams names must be str, got {name!r}")
        if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
            raise TypeError(
                f"Study: hparams[{name!r}] must be a sequence of numbers, got {values!r}"
            )
        values = list(values)
        ok = all(
            isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) and math.isfinite(v)
            for v in values
        )
        if not values or not ok:
            raise ValueError(
                f"Study: hparams[{name!r}] must be a non-empty sequence of finite numbers,"
                f" got {values!r}"
            )
        if len(set(values)) != len(values):
            raise ValueError(f"Study: hparams[{name!r}] has repeated values {values!r}")
        grid[name] = [float(v) for v in values]
    return tuple(grid), list(itertools.product(*grid.values()))


def _resolve_optimizer(study: Study, model: _Model, names: tuple, grid: list) -> Any:
    """The optimizer the members run: ``study.optimizer``, or with hyperparameters one
    whose ``inject_hyperparams`` state holds every name (checked without compiling)."""
    opt = study.optimizer
    example = "e.g. optax.sgd(0.1)"
    if not names:
        if not isinstance(opt, optax.GradientTransformation):
            raise TypeError(
                f"Study: optimizer must be an optax GradientTransformation ({example}),"
                f" got {type(opt).__name__}"
            )
        return opt
    if not isinstance(opt, optax.GradientTransformation):
        if not callable(opt):
            raise TypeError(
                "Study: with hparams, optimizer must be an optax optimizer factory (e.g."
                " optax.adamw) or built with optax.inject_hyperparams, got"
                f" {type(opt).__name__}"
            )
        try:
            opt = _injected(opt, names, grid[0])
        except TypeError as e:  # unknown argument names, unhashable factory
            raise TypeError(
                f"Study: hparams {list(names)} do not fit optimizer {study.optimizer!r}: {e}"
            ) from e
    params, _ = _abstract_io(model)
    try:
        with _optax_promotion():
            state = jax.eval_shape(opt.init, params)
    except TypeError as e:
        raise TypeError(f"Study: hparams {list(names)} do not fit the optimizer: {e}") from e
    have = getattr(state, "hyperparams", None)
    if not isinstance(have, Mapping):
        raise TypeError(
            "Study: hparams need an optimizer whose state holds them: pass a factory such as"
            " optax.adamw, or optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)"
        )
    missing = [n for n in names if n not in have]
    if missing:
        raise ValueError(
            f"Study: hparams {missing} are not hyperparameters of the optimizer; it has"
            f" {sorted(have)}"
        )
    check_grid(names, grid, opt, params)  # issue 29: the grid's values reach the members
    return opt


def _spec_key(spec: Any) -> Any:
    """A hashable stand-in for an init spec, so compiled init programs are reused."""
    if isinstance(spec, Mapping):
        return ("rules", tuple(spec.items()))
    if isinstance(spec, list | tuple):
        return ("rules", tuple(spec))
    return ("init", spec)


@functools.lru_cache(maxsize=64)
def _member_init(model: _Model, spec_key: Any, kernel_pattern: str) -> Callable:
    """jit(seed_key -> params) for one init spec: traced once, by the study's validation
    (``_init_shapes``), then reused by every initial-state program that vmaps it."""
    kind, spec = spec_key
    rules: Any
    if kind == "rules":
        rules = list(spec)
    else:
        from jaxinit.initializers import get

        rules = {kernel_pattern: get(spec)}

    # The layers, so each rule draws with its layer's fans (DenseGeneral, scan stacks):
    # linen records them from the module on a sample, nnx reads an abstract module,
    # Equinox parameters are the module's own arrays (reinit reads their layer classes).
    if model.kind == "linen":
        layers = {"module": model.module, "sample": np.zeros(model.sample_shape, np.float32)}
    elif model.kind == "equinox":
        layers = {}
    else:
        from flax import nnx

        layers = {"module": nnx.eval_shape(lambda: model.module(nnx.Rngs(0)))}

    def init(seed_key: jax.Array) -> Any:
        params = model.init(jax.random.fold_in(seed_key, 1))
        return reinit(params, rules, jax.random.fold_in(seed_key, 2), **layers)

    return jax.jit(init)


def _seed_data_keys(key: jax.Array, seed_keys: jax.Array, fixed: bool) -> jax.Array:
    """Each member's data key (its minibatch order): ``fold_in(seed key, 3)``, or with
    ``fixed_data_order`` ``fold_in(key, 3)`` for every member."""
    if fixed:
        return jnp.broadcast_to(jax.random.fold_in(key, 3), seed_keys.shape)
    return jax.vmap(lambda k: jax.random.fold_in(k, 3))(seed_keys)


def _data_keys(key: jax.Array, seeds: int, fixed: bool) -> jax.Array:
    """Seeds ``0 .. seeds-1``'s data keys, as the initial state's program draws them (for
    data fed from the host, whose minibatch indices the host draws)."""
    seed_keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(seeds))
    return _seed_data_keys(key, seed_keys, fixed)


@functools.lru_cache(maxsize=64)
def _init_program(
    model: _Model,
    spec_keys: tuple,
    part_sizes: tuple[int, ...],
    kernel_pattern: str,
    optimizer: optax.GradientTransformation,
    hparams: tuple[str, ...],
    fixed_data_order: bool,
    options: tuple = (),
) -> Callable:
    """jit((key, every member's seed and hyperparameter values) -> the members' initial
    :class:`MemberState`); the members are runs of ``part_sizes`` members per spec.

    One compiled program for the whole initial state of a member batch: member keys,
    every initializer's parameters, optimizer state with each member's hyperparameters and
    model state. Separate programs (and the eager gathers between them) cost a cold start
    ~0.5 s more on the CPU; compiling four inits together takes 2.3 s instead of 4.9 s one
    by one. The program is not partitioned (``out_shardings`` on the member axis makes XLA
    partition every random draw: compiling takes ~40% longer); the caller places its
    result on the devices.

    Member (spec, seed ``s``) draws from ``fold_in(key, s)``: parameters from its
    ``fold_in(., 1)``/``fold_in(., 2)``, data order from ``fold_in(., 3)`` (with
    ``fixed_data_order``: ``fold_in(key, 3)`` for all), dropout and ``loss_fn`` keys from
    ``fold_in(., 4)``, model state from ``fold_in(fold_in(., 1), 1)``.
    """
    from jaxinit.study._program import MemberState

    inits = [_member_init(model, k, kernel_pattern) for k in spec_keys]
    stateful = bool(jax.tree.leaves(jax.eval_shape(model.init_state, jax.random.key(0))))
    opt_init = _opt_init(optimizer, hparams)

    def init(key, seeds, values):
        seed_keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(seeds)
        starts = itertools.accumulate(part_sizes, initial=0)
        parts = [
            jax.vmap(f)(seed_keys[a : a + n])
            for f, a, n in zip(inits, starts, part_sizes, strict=False)
        ]
        params = jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
        data_keys = _seed_data_keys(key, seed_keys, fixed_data_order)
        noise_keys = jax.vmap(lambda k: jax.random.fold_in(k, 4))(seed_keys)
        if stateful:
            mstate = jax.vmap(lambda k: model.init_state(jax.random.fold_in(k, 1)))(seed_keys)
        else:  # stateless: its (empty) structure, nothing traced
            mstate = jax.eval_shape(model.init_state, jax.random.key(0))
        opt_state = opt_init(params, values)
        steps = jnp.zeros(seeds.shape, jnp.int32)
        return MemberState(params, opt_state, data_keys, steps, mstate, noise_keys)

    return jax.jit(init, compiler_options=dict(options) or None)


def _check_init(study: Study, model: _Model, name: str, spec: Any) -> Any:
    try:
        key = _spec_key(spec)
        hash(key)
        _init_shapes(model, key, study.kernel_pattern)
    except (ValueError, TypeError) as e:
        raise type(e)(f"Study: inits[{name!r}] does not fit the model: {e}") from e
    return key
