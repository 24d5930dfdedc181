"""Model adapters: linen, nnx and Equinox models behind one hashable interface
(``init``, ``init_state``, ``apply``, ``apply_train``), so compiled programs are cached."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from jaxinit.study._io import _checksum


class _Data(Protocol):
    """What a model adapter reads of a dataset (a :class:`jaxinit.Dataset` or a
    :class:`jaxinit.HostData`): the test inputs, for the example shape."""

    @property
    def x_test(self) -> Any: ...


@dataclass(frozen=True)
class _Model:
    """Uniform ``init(key) -> params``, ``init_state(key) -> model state`` and
    ``apply(params, x, state)`` / ``apply_train(params, state, x, key) -> (out, state)``
    over linen and nnx (hashable, so compiled programs are cached across calls).

    The model state is what a model carries besides its trained parameters: linen's
    non-``params`` collections (BatchNorm's ``batch_stats``), nnx's other variables
    (``BatchStat``, the ``Dropout`` rng streams). Training updates it, evaluation reads it.
    """

    module: Any
    kind: str
    sample_shape: tuple[int, ...]
    graphdef: Any = None
    rest: Any = field(default=None, compare=False, hash=False)
    collections: tuple[str, ...] = ()  # linen: the non-params collections
    mode_arg: str | None = None  # linen: "train", "training" or "deterministic"
    token: str = ""  # equinox: checksum of the instance's arrays (``rest``) and state
    eqx_state: Any = field(default=None, compare=False, hash=False)  # an eqx.nn.State
    eqx_key: bool = False  # equinox: ``__call__`` takes ``key=`` (dropout)
    axis_name: Any = "batch"  # equinox: the batch axis BatchNorm averages over

    def _mode(self, train: bool) -> dict:
        if self.mode_arg is None:
            return {}
        return {self.mode_arg: (not train) if self.mode_arg == "deterministic" else train}

    @property
    def stochastic(self) -> bool:
        """Whether training steps need a key (linen with a train/deterministic argument,
        Equinox with a ``key`` argument)."""
        if self.kind == "equinox":
            return self.eqx_key
        return self.kind == "linen" and self.mode_arg is not None

    def _variables(self, key: jax.Array) -> Any:
        x = jnp.zeros(self.sample_shape, jnp.float32)
        if self.kind == "equinox":  # the instance's arrays; ``module`` holds the rest
            return {"params": self.rest}
        if self.kind == "linen":
            rngs = {"params": key, "dropout": jax.random.fold_in(key, 1)}
            return self.module.init(rngs, x, **self._mode(False))
        from flax import nnx

        _, params, rest = nnx.split(self.module(nnx.Rngs(key)), nnx.Param, ...)  # type: ignore[misc]  # nnx.split's variadic stub
        return {"params": params, "rest": rest}

    def init(self, key: jax.Array) -> Any:
        return self._variables(key)["params"]

    def init_state(self, key: jax.Array) -> Any:
        if self.kind == "equinox":  # the user's eqx.nn.State, the same for every member
            return {} if self.eqx_state is None else jax.tree.map(lambda a: a, self.eqx_state)
        variables = self._variables(key)
        if self.kind == "linen":
            return {c: variables[c] for c in self.collections}
        return variables["rest"]

    def apply(self, params: Any, x: jax.Array, state: Any = None) -> jax.Array:
        """Evaluation: BatchNorm uses its running statistics, dropout is off."""
        if self.kind == "equinox":
            return self._eqx_apply(params, state, x, None, train=False)[0]
        if state is None:
            state = self.init_state(jax.random.key(0))
        if self.kind == "linen":
            return self.module.apply({"params": params, **state}, x, **self._mode(False))
        from flax import nnx

        m = nnx.merge(self.graphdef, params, state)
        m.eval()
        return m(x)

    def apply_train(self, params: Any, state: Any, x: jax.Array, key: Any) -> tuple[Any, Any]:
        """Training: batch statistics are updated, dropout draws from ``key`` (linen) or
        from the model's own rng streams, carried in ``state`` (nnx)."""
        if self.kind == "equinox":
            return self._eqx_apply(params, state, x, key, train=True)
        if self.kind == "linen":
            kw = self._mode(True)
            if key is not None:
                kw["rngs"] = {"dropout": key}
            variables = {"params": params, **state}
            if not self.collections:
                return self.module.apply(variables, x, **kw), state
            out, updates = self.module.apply(variables, x, mutable=list(self.collections), **kw)
            return out, {**state, **updates}
        from flax import nnx

        # fresh Variables at this trace level (nnx refuses to mutate ones from another)
        m = nnx.merge(self.graphdef, *jax.tree.map(lambda a: a, (params, state)))
        m.train()
        out = m(x)
        _, _, new_state = nnx.split(m, nnx.Param, ...)  # type: ignore[misc]  # nnx.split's variadic stub
        return out, new_state

    def _eqx_apply(self, params: Any, state: Any, x: jax.Array, key: Any, train: bool) -> Any:
        """An Equinox module is called on one example, vmapped over the batch with
        ``axis_name`` (as Equinox's BatchNorm expects): ``m(x)``, ``m(x, key=k)``,
        ``m(x, state)`` or ``m(x, state, key=k)``, the state shared across the batch
        (``in_axes=None``, ``out_axes=None``). Training draws one key per example from the
        member's step key; evaluation runs ``eqx.nn.inference_mode`` (running statistics,
        dropout off) with ``key=None``."""
        import equinox as eqx

        m = eqx.combine(params, self.module)
        if self.eqx_state is None and not self.eqx_key:  # stateless, deterministic
            return jax.vmap(m)(x), state
        if not train:
            m = eqx.nn.inference_mode(m)
        if state is None:
            state = self.init_state(jax.random.key(0))
        keys = None
        if train and self.eqx_key:
            keys = jax.random.split(key, x.shape[0])

        def one(xi, s, k):
            kw = {"key": k} if self.eqx_key else {}
            if self.eqx_state is None:
                return m(xi, **kw), s
            return m(xi, s, **kw)

        in_axes = (0, None, None if keys is None else 0)
        run = jax.vmap(one, in_axes=in_axes, out_axes=(0, None), axis_name=self.axis_name)
        return run(x, state, keys)


# Tracing for validation costs ~0.1 s of Python per study; these caches make a repeated
# study (same model and shapes) start as fast as its compiled programs run.
@functools.lru_cache(maxsize=64)
def _linen_variables(module: Any, sample: tuple[int, ...], mode: tuple = ()) -> Any:
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    return jax.eval_shape(lambda r: module.init(r, jnp.zeros(sample), **dict(mode)), rngs)


def _abstract_io(model: _Model) -> tuple[Any, Any]:
    """The model's abstract parameters and output for one example (cached)."""
    params, out, _ = _traced_io(model)
    return params, out


@functools.lru_cache(maxsize=64)
def _traced_io(model: _Model) -> tuple[Any, Any, Any]:
    """The model's abstract parameters, output and forward pass's jaxpr (one trace, read by
    validation and by the member layout's convolution check, study/_layout.py)."""
    params = jax.eval_shape(model.init, jax.random.key(0))
    state = jax.eval_shape(model.init_state, jax.random.key(0))
    x = jax.ShapeDtypeStruct(model.sample_shape, jnp.float32)
    jaxpr, out = jax.make_jaxpr(model.apply, return_shape=True)(params, x, state)
    return params, out, jaxpr


_MODE_ARGS = ("train", "training", "deterministic")


def _make_model(model: Any, dataset: _Data) -> _Model:
    sample = (1, *dataset.x_test.shape[1:])  # the same example shape as train
    import flax.linen as nn

    if isinstance(model, nn.Module):
        params: Mapping[str, inspect.Parameter]
        try:
            params = inspect.signature(type(model).__call__).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            params = {}
        mode_arg = next((a for a in _MODE_ARGS if a in params), None)
        m = _Model(model, "linen", sample, mode_arg=mode_arg)
        variables = _linen_variables(model, sample, tuple(m._mode(False).items()))
        collections = tuple(sorted(set(variables) - {"params"}))
        return dataclasses.replace(m, collections=collections)
    eqx = sys.modules.get("equinox")  # an Equinox model means equinox is imported
    if eqx is not None and isinstance(model, tuple) and len(model) == 2:
        if isinstance(model[0], eqx.Module) and isinstance(model[1], eqx.nn.State):
            return _make_equinox(eqx, *model, sample)
        raise TypeError(
            "Study: a model tuple must be (Equinox module, eqx.nn.State), as returned by"
            f" eqx.nn.make_with_state(...)(...), got ({', '.join(type(m).__name__ for m in model)})"
        )
    if eqx is not None and isinstance(model, eqx.Module):
        return _make_equinox(eqx, model, None, sample)
    nnx_module = getattr(sys.modules.get("flax.nnx"), "Module", None)
    if nnx_module is not None and isinstance(model, nnx_module):
        raise TypeError(
            f"Study: model is an nnx.Module instance ({type(model).__name__}); pass the"
            " function that builds it, rngs -> nnx.Module (e.g. model=lambda rngs:"
            f" {type(model).__name__}(..., rngs=rngs)): each member is built from its own key"
        )
    if callable(model):
        from flax import nnx

        try:
            abstract = nnx.eval_shape(lambda: model(nnx.Rngs(0)))
        except Exception as e:
            raise TypeError(
                "Study: model must be a flax.linen Module or a function rngs -> nnx.Module;"
                f" calling it with nnx.Rngs failed: {e}"
            ) from e
        if not isinstance(abstract, nnx.Module):
            raise TypeError(
                f"Study: model(rngs) returned {type(abstract).__name__}, not nnx.Module"
            )
        graphdef, _, rest = nnx.split(model(nnx.Rngs(0)), nnx.Param, ...)  # type: ignore[misc]  # nnx.split's variadic stub
        return _Model(model, "nnx", sample, graphdef, rest)
    raise TypeError(
        "Study: model must be a flax.linen Module, an Equinox Module or rngs ->"
        f" nnx.Module, got {model!r}"
    )


def _make_equinox(eqx: Any, model: Any, state: Any, sample: tuple[int, ...]) -> _Model:
    """An Equinox module (and its ``eqx.nn.State`` for stateful layers such as BatchNorm):
    its floating-point arrays are the parameters, the rest is the hashable static part."""
    is_index = lambda x: isinstance(x, eqx.nn.StateIndex)
    if state is None and any(is_index(x) for x in jax.tree.leaves(model, is_leaf=is_index)):
        raise TypeError(
            "Study: the Equinox model has stateful layers (eqx.nn.BatchNorm or another"
            " StateIndex); pass model=(model, state) with"
            " model, state = eqx.nn.make_with_state(MyModel)(...)"
        )
    if state is not None:
        model = eqx.nn.delete_init_state(model)  # initial values live in ``state``
    is_bn = lambda x: isinstance(x, eqx.nn.BatchNorm)
    axes = [x.axis_name for x in jax.tree.leaves(model, is_leaf=is_bn) if is_bn(x)]
    if any(not isinstance(a, str) for a in axes) or len(set(axes)) > 1:
        raise ValueError(
            "Study: the Equinox model's BatchNorm layers must share one axis_name, a str (the"
            f" batch axis the engine vmaps over, e.g. 'batch'), got {axes}"
        )
    params, static = eqx.partition(model, eqx.is_inexact_array)
    try:
        hash(static)
    except TypeError as e:
        raise TypeError(
            "Study: the Equinox model's non-array fields must be hashable (so compiled"
            f" programs are cached); {e}"
        ) from e
    call: Mapping[str, inspect.Parameter]
    try:
        call = inspect.signature(type(model).__call__).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        call = {}
    token = _checksum(params) if state is None else _checksum((params, state))
    return _Model(static, "equinox", sample, rest=params, token=token, eqx_state=state,
                  eqx_key="key" in call, axis_name=axes[0] if axes else "batch")  # fmt: skip
