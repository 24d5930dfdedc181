"""Populations: the study engine's layers, for your own training step.

A *population* is every member (initializer × seed × hyperparameter values) of a study,
its training state stacked on a leading member axis and sharded over the devices. The
layers, each usable alone:

- :func:`make_population`: the members' initial state, drawn exactly as :class:`Study`
  draws it (the same parameters, data keys and noise keys per seed), and the member table;
- :func:`train_population`: trains it with **your** step ``step(state, batch, key,
  hparams) -> (state, metrics)``, compiled once as ``jit(vmap(scan(step)))`` over the
  member axis, in chunks, with the engine's minibatch order, keys, checkpoints (resume)
  and tidy table; members never interact, so one that diverges leaves the others alone;
- :func:`evaluate_population`: your evaluation function on a held-out set, as tidy rows.

``train_population`` returns the trained population and a :class:`StudyResult` whose
table has today's columns (``init, seed, <hparams>, step, metric, value``).
"""

from __future__ import annotations

import functools
import os
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxinit._checks import as_int, check_key
from jaxinit.study._adapters import _abstract_io, _make_model
from jaxinit.study._callbacks import Callback, _check_callbacks, _notify
from jaxinit.study._checkpoint import _Checkpoint
from jaxinit.study._datasets import Dataset, _split_validation
from jaxinit.study._guards import check_bookkeeping, read_checkpoint
from jaxinit.study._io import _checksum, _fetch, _put
from jaxinit.study._layout import check_stepping, choose_layout, choose_stepping, has_convolution
from jaxinit.study._population import _check_init, _hparam_grid, _init_program
from jaxinit.study._program import (
    MemberState,
    TrainState,
    _compiler_options,
    _mesh_sharding,
    _optax_promotion,
    _step_program,
    _user_eval_program,
    _user_host_program,
    _UserStep,
)
from jaxinit.study._results import StudyResult, _diverged, _table, _train_rows, _value_rows
from jaxinit.study._spec import _as_key, _check_devices, _check_out_dir, _progress_bar

__all__ = [
    "Population",
    "TrainState",
    "evaluate_population",
    "make_population",
    "train_population",
]

_NO_OPTIMIZER = optax.identity()


@dataclass(frozen=True, eq=False)
class Population:
    """A population's state, stacked on a leading member axis, and its member table.

    Attributes:
      state: the members' state (a :class:`TrainState` of stacked arrays plus the engine's
        per-member data key, noise key and step count), padded to a multiple of the device
        count and sharded over the devices on the member axis.
      members: a pandas frame, one row per member: ``init``, ``seed`` and one column per
        hyperparameter, in the member axis's order (padding excluded).
      hparams: the hyperparameter names (the columns after ``seed``).

    Example:
      >>> import optax
      >>> model, data = jaxinit.MLP((16, 10)), jaxinit.digits()
      >>> pop = jaxinit.make_population(model, data, {"he": "he_normal"}, seeds=2,
      ...                               optimizer=optax.sgd(0.1))
      >>> pop
      Population(2 members, hparams=[])
      >>> pop.members.to_dict("list")
      {'init': ['he', 'he'], 'seed': [0, 1]}
      >>> pop.train_state.params["Dense_0"]["kernel"].shape  # stacked on the member axis
      (2, 64, 16)
    """

    state: MemberState
    members: Any
    hparams: tuple[str, ...]
    _values: np.ndarray  # (padded members, hparams) float32
    _grid: list
    _rows: list  # (init, seed, grid index) per member, unpadded
    _key: jax.Array
    _sharding: NamedSharding | None
    _devices: tuple
    _fingerprint: dict

    @property
    def size(self) -> int:
        """Number of members (padding excluded)."""
        return len(self._rows)

    @property
    def train_state(self) -> TrainState:
        """The members' :class:`TrainState`, stacked (padding excluded)."""
        s = jax.tree.map(lambda a: a[: self.size], self.state)
        return TrainState(s.params, s.opt_state, s.model_state, s.extra)

    def __repr__(self) -> str:
        return f"Population({self.size} members, hparams={list(self.hparams)})"


def _fail(fn: str, e: Exception) -> Exception:
    """``e`` with its message's ``Study:`` prefix replaced by ``fn``."""
    msg = str(e)
    msg = msg.replace("Study:", f"{fn}:", 1) if msg.startswith("Study:") else f"{fn}: {msg}"
    try:
        return type(e)(msg)
    except Exception:  # pragma: no cover - an exception type without a message argument
        return RuntimeError(msg)


def make_population(
    model: Any,
    dataset: Dataset,
    inits: Mapping[str, Any],
    *,
    seeds: int = 8,
    optimizer: optax.GradientTransformation | None = None,
    hparams: Mapping[str, Sequence[float]] | None = None,
    key: int | jax.Array = 0,
    kernel_pattern: str = "*kernel",
    fixed_data_order: bool = False,
    extra: Callable[[Any], Any] | None = None,
    devices: Sequence[Any] | None = None,
) -> Population:
    """Every member's initial state (inits × seeds × hyperparameter grid), stacked.

    Members are drawn exactly as :func:`jaxinit.run_study` draws them from the same
    ``key``: member (init, seed ``s``, any hyperparameters) has the parameters, data order
    and noise keys of the study's member, so a study and a population agree bit for bit.

    Args:
      model: a flax.linen Module, a function ``rngs -> nnx.Module`` or an Equinox module,
        as for :class:`Study` (one model; sweep architectures with one population each).
      dataset: the :class:`jaxinit.Dataset` it trains on (its example shape builds the
        model).
      inits: name -> initializer, registry name or rules mapping, as for :class:`Study`.
      seeds: seeds per initializer.
      optimizer: an optax ``GradientTransformation`` whose state each member's step
        updates; hyperparameters it holds in an ``optax.inject_hyperparams`` state are set
        per member. None: the state's ``opt_state`` is ``optax.EmptyState()``.
      hparams: name -> values; the population is the grid inits × seeds × every
        combination of values (the first name varies slowest). Each member's values reach
        the step as ``hparams[name]`` (float32 scalars).
      key: an int seed or a PRNG key.
      kernel_pattern: the leaves an initializer spec applies to.
      fixed_data_order: every seed draws the same minibatches.
      extra: ``extra(params) -> pytree``, the step's own initial state per member (e.g.
        ``lambda p: p`` for an EMA of the parameters), ``TrainState.extra``.
      devices: the devices the member axis is sharded over; default ``jax.devices()``.

    Example:
      >>> import optax, jaxinit
      >>> pop = jaxinit.make_population(
      ...     jaxinit.MLP((16, 10)), jaxinit.digits(), {"he": "he_normal", "zeros": "zeros"},
      ...     seeds=2, optimizer=optax.inject_hyperparams(optax.sgd)(0.1),
      ...     hparams={"learning_rate": [0.01, 0.1]})
      >>> pop.size
      8
      >>> pop.members.head(3).to_dict("list")
      {'init': ['he', 'he', 'he'], 'seed': [0, 0, 1], 'learning_rate': [0.01, 0.1, 0.01]}
    """
    fn = "make_population"
    check_key(fn, key, allow_int=True)
    devices_ = _check_devices(devices, fn)
    if not isinstance(dataset, Dataset):
        raise TypeError(f"{fn}: dataset must be a jaxinit.Dataset, got {type(dataset).__name__}")
    n_seeds = as_int(fn, "seeds", seeds, minimum=1)
    if not isinstance(inits, Mapping) or not inits or not all(isinstance(n, str) for n in inits):
        raise ValueError(f"{fn}: inits must be a non-empty mapping str name -> init, got {inits!r}")
    if not isinstance(kernel_pattern, str):
        raise TypeError(f"{fn}: kernel_pattern must be a str, got {kernel_pattern!r}")
    if not isinstance(fixed_data_order, bool | np.bool_):
        raise TypeError(f"{fn}: fixed_data_order must be a bool, got {fixed_data_order!r}")
    if extra is not None and not callable(extra):
        raise TypeError(f"{fn}: extra must be a function params -> pytree, got {extra!r}")
    opt = _NO_OPTIMIZER if optimizer is None else optimizer
    if not isinstance(opt, optax.GradientTransformation):
        raise TypeError(
            f"{fn}: optimizer must be an optax GradientTransformation (e.g."
            f" optax.inject_hyperparams(optax.sgd)(0.1)) or None, got {type(opt).__name__}"
        )
    fields = types.SimpleNamespace(hparams=hparams, optimizer=opt, kernel_pattern=kernel_pattern)
    try:
        names, grid = _hparam_grid(fields)
        adapter = _make_model(model, dataset)
        specs = {n: _check_init(fields, adapter, n, spec) for n, spec in inits.items()}
    except (ValueError, TypeError) as e:
        raise _fail(fn, e) from e
    clash = [n for n in names if n in ("init", "seed", "step", "metric", "value")]
    if clash:
        raise ValueError(f"{fn}: hparams {clash} would clash with the table's columns")
    # the names the optimizer's inject_hyperparams state holds are written into it
    with _optax_promotion():
        opt_state = jax.eval_shape(opt.init, _abstract_io(adapter)[0])
    held = getattr(opt_state, "hyperparams", None)
    injected = tuple(n for n in names if isinstance(held, Mapping) and n in held)
    rows = [(n, s, h) for n in inits for s in range(n_seeds) for h in range(len(grid))]
    sharding, padded = _mesh_sharding(len(rows), devices_)
    padded_rows = rows + [rows[0]] * (padded - len(rows))
    values = np.asarray(grid, np.float32).reshape(len(grid), len(names))
    member_values = values[[h for _, _, h in padded_rows]]
    prng = _as_key(key, fn)
    options = _compiler_options(devices_[0].platform)
    parts: list[tuple[str, int]] = []
    for name, _, _ in padded_rows:
        if parts and parts[-1][0] == name:
            parts[-1] = (name, parts[-1][1] + 1)
        else:
            parts.append((name, 1))
    cols = [names.index(n) for n in injected]
    with jax.default_device(devices_[0]) if len(devices_) == 1 else _nothing():
        program = _init_program(
            adapter, tuple(specs[n] for n, _ in parts), tuple(c for _, c in parts),
            kernel_pattern, opt, injected, bool(fixed_data_order), options,
        )  # fmt: skip
        seeds_arr = np.asarray([s for _, s, _ in padded_rows], np.int32)
        state = program(prng, seeds_arr, member_values[:, cols])
        if extra is not None:
            try:
                state = state._replace(extra=jax.jit(jax.vmap(extra))(state.params))
            except Exception as e:
                raise _fail(fn, TypeError(f"extra(params) failed on the members: {e}")) from e
    if sharding is not None:
        state = _put(state, sharding)
    import pandas as pd

    members = pd.DataFrame(
        {
            "init": [n for n, _, _ in rows],
            "seed": np.asarray([s for _, s, _ in rows], np.int64),
            **{n: [float(grid[h][j]) for _, _, h in rows] for j, n in enumerate(names)},
        }
    )
    params = jax.tree.map(_fetch, state.params)
    init_sums = {}
    for name in inits:
        idx = np.asarray([i for i, r in enumerate(rows) if r[0] == name])
        init_sums[name] = _checksum(jax.tree.map(lambda a, idx=idx: a[idx], params))
    fingerprint = {
        "key": _checksum(jax.random.key_data(prng)),
        "inits": init_sums,
        "population": [n_seeds, kernel_pattern, bool(fixed_data_order), len(rows)],
        "hparams": {n: [g[j] for g in grid] for j, n in enumerate(names)},
    }
    return Population(
        state, members, names, member_values, grid, rows, prng, sharding, tuple(devices_),
        fingerprint,
    )  # fmt: skip


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _check_user_step(
    fn: str, population: Population, step: Callable, evaluate: Callable | None, x, y, last
) -> _UserStep:
    """Trace ``step`` (and ``evaluate``) on one member and on the member axis under vmap,
    before anything is compiled; the errors name the step, the leaf path and what was
    expected."""
    if not callable(step):
        raise TypeError(f"{fn}: step must be a function (state, batch, key, hparams) -> ...")
    if evaluate is not None and not callable(evaluate):
        raise TypeError(f"{fn}: evaluate must be a function (state, batch) -> metrics or None")
    sname = _name(step)
    one = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), population.state)
    ts = TrainState(one.params, one.opt_state, one.model_state, one.extra)
    hp = {n: jax.ShapeDtypeStruct((), jnp.float32) for n in population.hparams}
    batch = (jax.ShapeDtypeStruct((2, *x.shape[1:]), x.dtype),
             jax.ShapeDtypeStruct((2, *y.shape[1:]), y.dtype))  # fmt: skip
    k = jax.eval_shape(lambda: jax.random.key(0))
    try:
        out = jax.eval_shape(step, ts, batch, k, hp)
    except KeyError as e:
        raise KeyError(
            f"{fn}: step {sname} reads hparams[{e.args[0]!r}], but the population's hparams are"
            f" {list(population.hparams)} (make_population(hparams=...))"
        ) from e
    except Exception as e:
        raise _fail(fn, type(e)(f"step {sname} failed on one member's state: {e}")) from e
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)):
        raise TypeError(
            f"{fn}: step {sname} must return (state, metrics) with state a TrainState and"
            f" metrics a dict name -> scalar, got {type(out).__name__}"
        )
    new, metrics = out
    if not isinstance(new, TrainState):
        raise TypeError(
            f"{fn}: step {sname} must return its state as a jaxinit.TrainState (e.g."
            f" state._replace(params=...)), got {type(new).__name__}"
        )
    want = dict(jax.tree_util.tree_leaves_with_path(ts))
    got = dict(jax.tree_util.tree_leaves_with_path(new))
    if str(jax.tree.structure(new)) != str(jax.tree.structure(ts)):
        missing = [jax.tree_util.keystr(p) for p in want if p not in got]
        added = [jax.tree_util.keystr(p) for p in got if p not in want]
        raise ValueError(
            f"{fn}: step {sname} returned a state whose structure differs from its input's"
            f" (leaves missing: {missing[:5]}, unexpected: {added[:5]}); it must return the"
            " same pytree structure"
        )
    for path, w in want.items():
        g = got[path]
        if g.shape != w.shape or g.dtype != w.dtype:
            raise ValueError(
                f"{fn}: step {sname} returned state leaf {jax.tree_util.keystr(path)} with"
                f" shape {g.shape} and dtype {g.dtype}; expected shape {w.shape} and dtype"
                f" {w.dtype} (as in the input state)"
            )
    names = tuple(metrics)
    _check_metrics(fn, f"step {sname}", metrics)
    bad_last = [n for n in last if n not in names]
    if bad_last:
        raise ValueError(
            f"{fn}: last={list(last)} names {bad_last}, not metrics of the step {names}"
        )
    eval_names: tuple[str, ...] = ()
    if evaluate is not None:
        ename = _name(evaluate)
        try:
            em = jax.eval_shape(evaluate, ts, batch)
        except Exception as e:
            raise _fail(fn, type(e)(f"evaluate {ename} failed on one member's state: {e}")) from e
        if not isinstance(em, Mapping):
            raise TypeError(f"{fn}: evaluate {ename} must return a dict name -> scalar, got {em!r}")
        _check_metrics(fn, f"evaluate {ename}", em)
        eval_names = tuple(em)
    user = _UserStep(step, evaluate, population.hparams, names, tuple(last), eval_names)
    # the member axis: vmapped over two members (Python control flow on values fails here)
    two = jax.tree.map(lambda a: jax.ShapeDtypeStruct((2, *a.shape), a.dtype), one)
    try:
        jax.eval_shape(jax.vmap(user.train, in_axes=(0, None, 0)), two, batch,
                       jax.ShapeDtypeStruct((2, len(population.hparams)), jnp.float32))  # fmt: skip
    except Exception as e:
        raise _fail(
            fn, type(e)(f"step {sname} cannot be traced under vmap over members: {e}")
        ) from e
    return user


def _check_metrics(fn: str, who: str, metrics: Mapping) -> None:
    for n, v in metrics.items():
        if not isinstance(n, str) or not n.isidentifier():
            raise ValueError(f"{fn}: {who}'s metric names must be identifiers, got {n!r}")
        if getattr(v, "shape", None) != ():
            raise ValueError(
                f"{fn}: {who}'s metric {n!r} must be a scalar, got shape {getattr(v, 'shape', v)}"
            )
        if not jnp.issubdtype(v.dtype, jnp.floating) and not jnp.issubdtype(v.dtype, jnp.integer):
            raise ValueError(f"{fn}: {who}'s metric {n!r} must be a real number, got {v.dtype}")


@functools.lru_cache(maxsize=16)
def _probe_program(user: _UserStep) -> Callable:
    """jit(one member's first step) on a real batch: its metrics must be finite."""

    def probe(state, x, y, values):
        _, metrics = user.train(state, (x, y), values)
        return jnp.stack(metrics) if metrics else jnp.zeros(0, jnp.float32)

    return jax.jit(probe)


def train_population(
    population: Population,
    step: Callable,
    dataset: Dataset,
    *,
    steps: int,
    batch_size: int = 64,
    log_every: int = 10,
    eval_every: int | None = None,
    evaluate: Callable | None = None,
    validation: float = 0.0,
    last: Sequence[str] = (),
    out_dir: str | os.PathLike | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool | None = None,
    stepping: str = "auto",
) -> tuple[Population, StudyResult]:
    """Train every member with your own step; returns the trained population and the table.

    The step is compiled once as ``jit(vmap(scan(step)))`` over the member axis and runs
    ``eval_every`` steps per call (a chunk); between chunks the host records metrics, calls
    ``callbacks``, writes a checkpoint and updates the progress bar. On the CPU a step with
    a convolution is stepped from the host instead, as :class:`jaxinit.Study` does
    (``stepping``).

    Args:
      population: from :func:`make_population`.
      step: ``step(state, batch, key, hparams) -> (state, metrics)`` for one member:
        ``state`` a :class:`TrainState`, ``batch`` ``(x, y)`` of ``batch_size`` examples
        drawn as :func:`jaxinit.run_study` draws them (per seed, with replacement),
        ``key`` a fresh key per member and step, ``hparams`` the member's values (name ->
        float32 scalar); it returns the new state (the same structure, shapes and dtypes)
        and a dict of scalar metrics, recorded under their own names (e.g. ``train_loss``).
      dataset: the :class:`jaxinit.Dataset` (training and test split).
      steps: optimisation steps per member.
      batch_size: minibatch size.
      log_every: steps per recorded metric: the mean over those steps, or for a name in
        ``last`` the value at the interval's last step (e.g. a gradient norm).
      eval_every: steps per chunk (default ``steps``); a multiple of ``log_every``.
      evaluate: ``evaluate(state, (x, y)) -> metrics`` for one member, run on the test set
        (and the validation set) at step 0 and after every chunk, recorded as
        ``test_<name>`` (``val_<name>``).
      validation: fraction of the training examples held out and evaluated as ``val_*``
        (the same split as ``Study(validation=...)``).
      last: metric names recorded at an interval's last step instead of averaged.
      out_dir: a checkpoint and ``results.csv`` are written here after every chunk; the
        same call again resumes where it stopped.
      callbacks: called on the host after every chunk, ``callback(rows, start, stop)``
        with that chunk's tidy rows and steps ``(start, stop]`` (see :class:`Callback`).
      progress: show a progress bar; default: only when stderr is a terminal.
      stepping: ``"scan"`` (the chunk's steps scanned in one program), ``"host"`` (a
        program of a few unrolled steps called from Python, one member per call on the
        CPU when the step convolves: no loop in any program) or ``"auto"`` (host on the
        CPU for a step with a convolution, whose loops XLA's CPU backend runs 10-25x
        slower, jax#12868; scan otherwise). The numbers are the same either way, up to
        the last bits. ``result.info`` says which ran and why.

    Bad input — a step whose state does not keep its structure, non-scalar or (on the first
    batch) non-finite metrics, hparams the population lacks, a step that cannot be traced
    under vmap — is refused before training, naming the step, the leaf and what was
    expected.

    Example:
      >>> import optax, jaxinit
      >>> model, opt, data = jaxinit.MLP((16, 10)), optax.sgd(0.1), jaxinit.digits()
      >>> pop = jaxinit.make_population(model, data, {"he": "he_normal"}, seeds=2,
      ...                               optimizer=opt)
      >>> def step(state, batch, key, hparams):
      ...     def loss_fn(p):
      ...         logits = model.apply({"params": p}, batch[0])
      ...         return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()
      ...     loss, grads = jax.value_and_grad(loss_fn)(state.params)
      ...     updates, opt_state = opt.update(grads, state.opt_state, state.params)
      ...     params = optax.apply_updates(state.params, updates)
      ...     return state._replace(params=params, opt_state=opt_state), {"train_loss": loss}
      >>> pop, result = jaxinit.train_population(pop, step, data, steps=20, log_every=10,
      ...                                        progress=False)
      >>> sorted(set(result.table.metric)), list(result.table.columns)
      (['train_loss'], ['init', 'seed', 'step', 'metric', 'value'])
    """
    fn = "train_population"
    if not isinstance(population, Population):
        raise TypeError(f"{fn}: population must come from make_population, got {population!r}")
    if not isinstance(dataset, Dataset):
        raise TypeError(
            f"{fn}: dataset must be a jaxinit.Dataset (on the device), got"
            f" {type(dataset).__name__}; data fed from the host (jaxinit.HostData) trains"
            " through jaxinit.Study for now"
        )
    n_steps = as_int(fn, "steps", steps, minimum=1)
    batch = as_int(fn, "batch_size", batch_size, minimum=1)
    log = as_int(fn, "log_every", log_every, minimum=1)
    every = n_steps if eval_every is None else as_int(fn, "eval_every", eval_every, minimum=1)
    if every % log or n_steps % log:
        raise ValueError(
            f"{fn}: steps={n_steps} and eval_every={every} must be multiples of log_every={log}"
        )
    if isinstance(last, str) or not all(isinstance(n, str) for n in last):
        raise TypeError(f"{fn}: last must be a sequence of metric names, got {last!r}")
    if (
        not isinstance(validation, float | int)
        or isinstance(validation, bool)
        or not (0 <= validation < 1)
    ):
        raise ValueError(f"{fn}: validation must be a fraction in [0, 1), got {validation!r}")
    callbacks = _check_callbacks(fn, callbacks)
    stepping = check_stepping(stepping, fn)
    train, val = _split_validation(len(dataset.x_train), validation)
    if len(train) < batch or (validation and not len(val)):
        raise ValueError(
            f"{fn}: batch_size={batch} and validation={validation} do not fit the"
            f" {len(dataset.x_train)} training examples of {dataset.name!r}"
        )
    out = _check_out_dir(out_dir, fn)
    user = _check_user_step(fn, population, step, evaluate, dataset.x_train, dataset.y_train,
                            tuple(last))  # fmt: skip
    devices = population._devices
    platform = devices[0].platform
    with jax.default_device(devices[0]) if len(devices) == 1 else _nothing():
        convolves = stepping != "scan" and platform == "cpu"
        convolves = convolves and _convolves(population, user, dataset, batch)
        how = choose_stepping(stepping, platform, convolves)
        # host-stepped, a convolving step runs one member per call on the CPU (_layout.py)
        layout = choose_layout("auto", platform, convolves)[0]
        return _train(fn, population, user, dataset, train, val, n_steps, batch, log, every,
                      out, callbacks, progress, how, layout)  # fmt: skip


def _convolves(pop: Population, user: _UserStep, d: Dataset, batch: int) -> bool:
    """Whether one member's step has a convolution (traced abstractly, nothing compiled)."""
    member = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), pop.state)
    xb = jax.ShapeDtypeStruct((batch, *d.x_train.shape[1:]), d.x_train.dtype)
    yb = jax.ShapeDtypeStruct((batch, *d.y_train.shape[1:]), d.y_train.dtype)
    values = jax.ShapeDtypeStruct(pop._values.shape[1:], pop._values.dtype)
    return has_convolution(lambda s, x, y, v: user.train(s, (x, y), v), member, xb, yb, values)


def _train(fn, pop, user, d, train, val, n_steps, batch, log, every, out_dir, callbacks,
           progress, how, layout):  # fmt: skip
    sharding = pop._sharding
    options = _compiler_options(pop._devices[0].platform)
    replicated = None if sharding is None else NamedSharding(sharding.mesh, P())
    arrays = (d.x_train[train], d.y_train[train], d.x_test, d.y_test, d.x_train[val],
              d.y_train[val])  # fmt: skip
    host = tuple(np.asarray(a) for a in arrays)
    placed = host if replicated is None else _put(host, replicated)
    x_train, y_train, x_test, y_test, x_val, y_val = (jnp.asarray(a) for a in placed)
    sets = [("test", x_test, y_test)] + ([("val", x_val, y_val)] if len(val) else [])
    evals = tuple((x, y) for _, x, y in sets) if user.evaluate is not None else ()
    values_dev = pop._values if sharding is None else _put(pop._values, sharding)
    values_dev = jnp.asarray(values_dev)

    # non-finite metrics on the first batch are a bug in the step, not a diverged member
    first = jax.device_put(jax.tree.map(lambda a: a[0], pop.state), pop._devices[0])
    if int(first.step) == 0:
        drawn = jax.random.randint(jax.random.fold_in(first.data_key, 0), (batch,), 0,
                                   len(train))  # fmt: skip
        rows = np.asarray(drawn)
        probe = _probe_program(user)(first, host[0][rows], host[1][rows], pop._values[0])
        bad = [n for n, v in zip(user.metrics, _fetch(probe), strict=True) if not np.isfinite(v)]
        if bad:
            raise ValueError(
                f"{fn}: step {_name(user.step)} returned non-finite metrics {bad} on member 0's"
                " first batch; metrics must be finite before training"
            )

    metric_names = list(user.metrics)
    for prefix, _, _ in sets if user.evaluate is not None else []:
        metric_names += [f"{prefix}_{n}" for n in user.eval_metrics]
    n_members = pop.size

    def value_rows(values: np.ndarray, at: int) -> list:
        rows, k = [], len(user.eval_metrics)
        for i in range(len(evals)):
            first_index = len(user.metrics) + i * k
            rows.append(_value_rows(values[:, i * k : (i + 1) * k], at, n_members, 0,
                                    first_index))  # fmt: skip
        return rows

    state = pop.state
    ckpt = None
    writer = out_dir is not None and jax.process_index() == 0
    if out_dir is not None:
        fp = dict(
            pop._fingerprint,
            dataset=[d.name, _checksum((d.x_train, d.y_train, d.x_test, d.y_test))],
            train=[n_steps, batch, log, every, float(len(val)), _name(user.step),
                   _name(user.evaluate) if user.evaluate else None, list(user.last)],
        )  # fmt: skip
        ckpt = _Checkpoint(out_dir, 0, fp, writer)
    records: list[np.ndarray] = []
    done = 0
    start_time = time.perf_counter()
    bar = _progress_bar(progress, n_steps * n_members, n_members)
    if ckpt is not None and (loaded := read_checkpoint(ckpt, state, n_members)) is not None:
        state, done, records = loaded  # placed like ``state``
        check_bookkeeping(ckpt.source, done, records, steps=n_steps, eval_every=every,
                          log_every=log, members=range(n_members))  # fmt: skip
        bar.update(done * n_members)
    rows_meta = pop._rows
    try:
        while done < n_steps:
            n = min(every, n_steps - done)
            program = (
                _step_program(user, batch, log, n // log, sharding, len(evals), options)
                if how[0] == "scan"
                else _user_host_program(user, batch, log, n // log, sharding, options, layout)
            )
            state, metrics, values = program(state, values_dev, x_train, y_train, evals,
                                             done == 0)  # fmt: skip
            values = _fetch(values)
            chunk: list[np.ndarray] = []
            if done == 0:
                chunk += value_rows(values[:, 0], 0)
            metrics = _fetch(metrics)[:n_members]
            logged = done + log * np.arange(1, metrics.shape[1] + 1)
            chunk.append(_train_rows(metrics, logged, 0))
            chunk += value_rows(values[:, 1], done + n)
            records += chunk
            bar.update(n * n_members)
            if ckpt is not None:
                ckpt.save(state, done + n, records, n_members)
            if callbacks:
                rows = _table(chunk, rows_meta, metric_names, pop.hparams, pop._grid)
                _notify(fn, callbacks, rows, done, done + n)
            done += n
    finally:
        bar.close()
        if ckpt is not None:
            ckpt.close()  # the last save is complete
    table = _table(records, rows_meta, metric_names, pop.hparams, pop._grid)
    info = {"step": _name(user.step), "stepping": how[0], "stepping_reason": how[1]}
    result = StudyResult(table, _diverged(table, pop.hparams), time.perf_counter() - start_time,
                         info, pop.hparams)  # fmt: skip
    if writer:
        result.to_csv(os.path.join(out_dir, "results.csv"))
    trained = Population(state, pop.members, pop.hparams, pop._values, pop._grid, pop._rows,
                         pop._key, sharding, pop._devices, pop._fingerprint)  # fmt: skip
    return trained, result


def evaluate_population(
    population: Population,
    evaluate: Callable,
    x: Any,
    y: Any,
    *,
    prefix: str = "test",
    step: int = 0,
) -> Any:
    """Your evaluation function on every member, as tidy rows.

    Args:
      population: from :func:`make_population` or :func:`train_population`.
      evaluate: ``evaluate(state, (x, y)) -> metrics`` for one member (a
        :class:`TrainState`), metrics a dict name -> scalar.
      x: the evaluation set's inputs (every member sees all of it).
      y: its targets.
      prefix: the rows' metric names are ``<prefix>_<name>``.
      step: the rows' ``step`` column.

    Returns:
      A pandas frame ``init, seed, <hparams>, step, metric, value`` (today's table).

    Example:
      >>> import optax, jaxinit
      >>> model, data = jaxinit.MLP((16, 10)), jaxinit.digits()
      >>> pop = jaxinit.make_population(model, data, {"he": "he_normal"}, seeds=3)
      >>> def accuracy(state, batch):
      ...     logits = model.apply({"params": state.params}, batch[0])
      ...     return {"accuracy": (logits.argmax(-1) == batch[1]).mean()}
      >>> rows = jaxinit.evaluate_population(pop, accuracy, data.x_test, data.y_test)
      >>> list(rows.metric.unique()), len(rows)
      (['test_accuracy'], 3)
    """
    fn = "evaluate_population"
    if not isinstance(population, Population):
        raise TypeError(f"{fn}: population must come from make_population, got {population!r}")
    if not isinstance(prefix, str) or not prefix.isidentifier():
        raise ValueError(f"{fn}: prefix must be an identifier, got {prefix!r}")
    if not callable(evaluate):
        raise TypeError(f"{fn}: evaluate must be a function (state, batch) -> metrics")
    x, y = jnp.asarray(x), jnp.asarray(y)
    one = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), population.state)
    ts = TrainState(one.params, one.opt_state, one.model_state, one.extra)
    try:
        em = jax.eval_shape(evaluate, ts, (x, y))
    except Exception as e:
        raise _fail(fn, type(e)(f"evaluate {_name(evaluate)} failed on one member: {e}")) from e
    if not isinstance(em, Mapping):
        raise TypeError(f"{fn}: evaluate must return a dict name -> scalar, got {em!r}")
    _check_metrics(fn, f"evaluate {_name(evaluate)}", em)
    user = _UserStep(_no_step, evaluate, population.hparams, (), (), tuple(em))
    options = _compiler_options(population._devices[0].platform)
    values = _fetch(_user_eval_program(user, options)(population.state, x, y))
    names = [f"{prefix}_{n}" for n in em]
    rows = _value_rows(values, step, population.size, 0, 0)
    return _table([rows], population._rows, names, population.hparams, population._grid)


def _no_step(state: Any, batch: Any, key: Any, hparams: Any) -> Any:  # pragma: no cover
    raise AssertionError("evaluate_population trains nothing")
