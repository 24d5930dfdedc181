"""Multi-seed training: a whole (initializer × seed × hyperparameter) population in one
compiled program.

The population's parameters are stacked on a leading *member* axis. One jitted program
runs ``eval_every`` steps for every member — ``jax.vmap`` over members, ``jax.lax.scan``
over steps (nested: an inner scan of ``log_every`` steps whose mean metrics are recorded)
— so there is no Python per step. Between chunks the host records metrics, writes results
and a checkpoint, and updates the progress bar.

Multi-device: the member axis is sharded over ``jax.devices()`` with a ``NamedSharding``;
members never communicate, so each device trains its own. On several hosts, call
``jax.distributed.initialize()`` first in every process and run the same study: the mesh
then spans all processes' devices (members are padded to a multiple of the device count).
On a multi-core CPU, :func:`jaxinit.cli.use_cpu_cores` makes each core a device, so
members train in parallel instead of every small matrix product being split across cores.

This module holds the user's side: :class:`Study`, its validation, and :func:`run_study`,
which drives the pieces: model adapters (``_adapters``), the population's initial state
(``_population``), the compiled training program (``_program``), checkpoints
(``_checkpoint``) and the tidy results (``_results``).
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxinit._checks import check_key
from jaxinit.study import _layout
from jaxinit.study._adapters import _abstract_io, _make_model, _Model
from jaxinit.study._checkpoint import _Checkpoint, _state_fingerprint
from jaxinit.study._datasets import Dataset
from jaxinit.study._feed import HostData, _Feed
from jaxinit.study._io import _atomic_write, _checksum, _fetch, _put
from jaxinit.study._population import (
    _check_init,
    _data_keys,
    _hparam_grid,
    _init_program,
    _resolve_optimizer,
)
from jaxinit.study._program import (
    MemberState,
    _chunk_program,
    _compile_ahead,
    _compiler_options,
    _mesh_sharding,
    _Objective,
)
from jaxinit.study._results import StudyResult, _diverged, _table, _train_rows, _value_rows


@dataclass(frozen=True)
class Study:
    """A convergence study: every initializer in ``inits`` × ``seeds`` seeds, trained alike.

    Attributes:
      model: a flax.linen Module, or a function ``rngs -> flax.nnx.Module`` (e.g.
        ``lambda rngs: MyModel(..., rngs=rngs)``); only its ``nnx.Param`` state is trained.
        Models with state train too: linen collections such as BatchNorm's
        ``batch_stats`` (a ``train``, ``training`` or ``deterministic`` argument of
        ``__call__`` is set for training and evaluation; dropout gets a fresh key per member
        and step) and nnx ``BatchNorm``/``Dropout`` (``.train()``/``.eval()``). An
        Equinox module (an instance, called on one example and vmapped over the batch
        with ``axis_name="batch"``) trains too: its floating-point arrays are the
        parameters; set ``kernel_pattern`` (e.g. ``"*weight"``). With stateful layers
        (``eqx.nn.BatchNorm``) pass ``model=(model, state)`` from
        ``eqx.nn.make_with_state``; it is called ``model(x, state) -> (out, state)``. A
        ``key`` argument of its ``__call__`` gets a fresh key per member, step and example
        in training (``eqx.nn.Dropout``); evaluation runs ``eqx.nn.inference_mode``.
        A mapping name -> model is an architecture sweep (e.g. ``{"w64": MLP((64, 10)),
        "w256": MLP((256, 10))}``): every architecture trains the whole population as its
        own member batches (its own compiled program), with the same seeds (same data
        order; the same initial parameters where shapes agree), and the table gains a
        first column ``model``.
      dataset: a :class:`jaxinit.Dataset` (on the device), or a :class:`jaxinit.HostData`
        (kept on the host and fed one chunk of ``eval_every`` steps at a time).
      optimizer: an optax ``GradientTransformation``. With ``hparams``: one built with
        ``optax.inject_hyperparams`` (e.g. ``optax.inject_hyperparams(optax.sgd)(0.1)``), or
        an optimizer factory such as ``optax.adamw`` that the engine wraps so.
      inits: name -> spec. A spec is an initializer or a registry name (applied to every
        leaf matching ``kernel_pattern``; other parameters keep the model's own init) or a
        rules mapping for :func:`jaxinit.reinit` (e.g. a Fixup rule set).
      seeds: seeds per initializer. Seed ``s`` gets the same data order for every
        initializer (paired comparisons); with ``fixed_data_order`` every seed does.
      steps: optimisation steps per member.
      batch_size: minibatch size; minibatches are drawn in-graph with replacement from
        each member's own data key (a fresh ``fold_in(key, step)`` per step).
      loss: ``"cross_entropy"`` (integer labels) or ``"mse"``; default from the dataset.
      loss_fn: instead of ``loss``, ``loss_fn(model, batch, key) -> (loss, metrics)``:
        ``model`` is the member's model as a function ``x -> outputs`` (in training mode
        while training: BatchNorm statistics update, dropout on; in evaluation mode on the
        test and validation sets), ``batch`` is ``(x, y)``, ``key`` a fresh key per member
        and step, ``metrics`` a dict of scalars recorded as ``train_<name>``,
        ``test_<name>`` and ``val_<name>`` rows.
      log_every: steps per recorded train metric (mean over those steps).
      eval_every: steps between held-out evaluations and host syncs (a chunk); default
        ``steps``. Must be a multiple of ``log_every``.
      max_members: most members compiled into one program; a larger population runs in
        batches of this size. Default: sized from the training program's memory analysis
        against ``memory_budget`` (the largest group that fits; the whole population when
        it does). Given, it wins over the memory sizing.
      kernel_pattern: the leaves an initializer spec applies to.
      hparams: optimizer hyperparameter name -> values, e.g. ``{"learning_rate": [1e-3,
        1e-2], "weight_decay": [0.0, 1e-4]}``: the population is the grid inits × seeds ×
        every combination of values, set per member in the optimizer's state, so the whole
        grid is one compiled program. Seed ``s`` has the same initial parameters and data
        order at every value (paired). The table gains a column per hyperparameter.
      validation: fraction of the training examples held out (a fixed random subset) and
        evaluated with the test set as ``val_loss``/``val_accuracy``: select
        hyperparameters on it (:meth:`StudyResult.best_hparams`), never on the test split.
      member_layout: how members run in one program: ``"vmap"`` (batched operations),
        ``"loop"`` (a member per iteration of a loop inside the program, on every device
        over its own members), an int ``b`` (``b`` members vmapped per loop iteration), or
        ``"auto"``: a loop for models with convolutions on the CPU (vmapped convolutions
        become grouped convolutions, slower there per member than a loop), else vmap
        (docs/guide/studies.md has the measurements).
        Numbers agree across layouts up to float summation order. ``result.info`` records
        the choice (``member_layout``) and why (``member_layout_reason``).
      memory_budget: bytes per device a member group's training program may use; default
        the device's free memory (``memory_stats()``), on the CPU half of the host's
        available RAM shared by its devices. ``result.info`` records the budget and the
        group chosen; a budget too small for one member per device is refused.

    Example:
      >>> import optax, jaxinit
      >>> study = jaxinit.Study(
      ...     jaxinit.MLP((16, 10)), jaxinit.digits(), optax.sgd,
      ...     inits={"he": "he_normal"}, seeds=2, steps=20, log_every=10,
      ...     hparams={"learning_rate": [0.01, 0.1]}, validation=0.1)
      >>> result = jaxinit.run_study(study, progress=False)
      >>> sorted(set(result.table.learning_rate))
      [0.01, 0.1]
      >>> list(result.best_hparams().columns)
      ['init', 'learning_rate', 'val_loss']
    """

    model: Any
    dataset: Dataset | HostData
    optimizer: optax.GradientTransformation
    inits: Mapping[str, Any]
    seeds: int = 8
    steps: int = 300
    batch_size: int = 64
    loss: Literal["cross_entropy", "mse"] | None = None
    log_every: int = 10
    eval_every: int | None = None
    fixed_data_order: bool = False
    max_members: int | None = None
    kernel_pattern: str = "*kernel"
    hparams: Mapping[str, Sequence[float]] | None = None
    validation: float = 0.0
    loss_fn: Callable | None = None
    # how members are laid out in a program, and how many go in one (study/_layout.py)
    member_layout: str | int = "auto"
    memory_budget: int | None = None


def _as_int(name: str, v: Any, allow_none: bool = False) -> int | None:
    """A positive int (numpy integers accepted, bools and floats are not)."""
    if v is None and allow_none:
        return None
    if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Integral):
        raise TypeError(f"Study: {name} must be a positive int, got {v!r} ({type(v).__name__})")
    if int(v) < 1:
        raise ValueError(f"Study: {name} must be a positive int, got {v!r}")
    return int(v)


def _normalize(study: Study) -> Study:
    """Check the plain fields before anything is traced, and make numpy integers ints."""
    if not isinstance(study, Study):
        raise TypeError(f"run_study: study must be a jaxinit.Study, got {type(study).__name__}")
    d = study.dataset
    if not isinstance(d, Dataset | HostData):
        raise TypeError(
            f"Study: dataset must be a jaxinit.Dataset or jaxinit.HostData, got {type(d).__name__}"
        )
    ints: dict[str, Any] = {
        n: _as_int(n, getattr(study, n)) for n in ("seeds", "steps", "batch_size", "log_every")
    }
    for name in ("eval_every", "max_members"):
        ints[name] = _as_int(name, getattr(study, name), allow_none=True)
    # member layout and memory budget (study/_layout.py)
    ints["member_layout"] = _layout.check_member_layout(study.member_layout)
    ints["memory_budget"] = _layout.check_memory_budget(study.memory_budget)
    return dataclasses.replace(study, **ints)


def _validate(study: Study, model: _Model | None) -> _Objective | None:
    d = study.dataset
    n_train = len(d.x_train) if isinstance(d, Dataset) else d.train_size
    if n_train is not None and study.batch_size > n_train:
        raise ValueError(
            f"Study: batch_size={study.batch_size} is larger than the {n_train}"
            f" training examples of {d.name!r}"
        )
    eval_every = study.eval_every or study.steps
    if eval_every % study.log_every or study.steps % study.log_every:
        raise ValueError(
            f"Study: steps={study.steps} and eval_every={eval_every} must be multiples of"
            f" log_every={study.log_every}"
        )
    v = study.validation
    if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Real) or not 0 <= v < 1:
        raise ValueError(f"Study: validation must be a fraction in [0, 1), got {v!r}")
    if v and n_train is None:
        raise ValueError(
            f"Study: validation={v} needs a training set to hold examples out of; HostData"
            f" {d.name!r} is a batches(seed, step) stream (give HostData(train=...))"
        )
    n_val = round((n_train or 0) * v)
    if v and not 1 <= n_val <= n_train - study.batch_size:
        raise ValueError(
            f"Study: validation={v} holds out {n_val} of {n_train} training examples;"
            f" at least 1 must be held out and batch_size={study.batch_size} must remain"
        )
    if not isinstance(study.inits, Mapping) or not study.inits:
        raise ValueError("Study: inits must be a non-empty mapping name -> initializer or rules")
    if not all(isinstance(n, str) for n in study.inits):
        raise TypeError(f"Study: inits must be keyed by str names, got {list(study.inits)!r}")
    if not isinstance(study.kernel_pattern, str):
        raise TypeError(f"Study: kernel_pattern must be a str, got {study.kernel_pattern!r}")
    if not isinstance(study.fixed_data_order, bool | np.bool_):
        raise TypeError(f"Study: fixed_data_order must be a bool, got {study.fixed_data_order!r}")
    if study.loss_fn is not None:
        return _custom_objective(study, model)
    loss = study.loss or ("cross_entropy" if d.is_classification else "mse")
    if loss not in ("cross_entropy", "mse"):
        raise ValueError(f"Study: loss={loss!r}; allowed: 'cross_entropy', 'mse'")
    want = d.num_classes if loss == "cross_entropy" else int(np.prod(d.y_test.shape[1:]))
    if loss == "cross_entropy" and not d.is_classification:
        raise ValueError(
            f"Study: loss='cross_entropy' needs class labels; {d.name!r} is regression"
        )
    if model is None:  # the plain fields only (an architecture sweep checks them once)
        return None
    _, out = _abstract_io(model)
    if out.ndim != 2 or out.shape[1] != want:
        raise ValueError(
            f"Study: the model's output has shape {out.shape[1:]} per example but {d.name!r}"
            f" needs ({want},) ({'classes' if loss == 'cross_entropy' else 'targets'})"
        )
    return _Objective(loss, None, ("accuracy",) if loss == "cross_entropy" else ())


def _custom_objective(study: Study, model: _Model | None) -> _Objective | None:
    """Check ``loss_fn`` by tracing it abstractly on a small batch (nothing is compiled)."""
    fn = study.loss_fn
    if not callable(fn):
        raise TypeError(f"Study: loss_fn must be callable, got {type(fn).__name__}")
    if study.loss is not None:
        raise ValueError(f"Study: give loss={study.loss!r} or loss_fn, not both")
    if model is None:
        return None
    d = study.dataset
    params, _ = _abstract_io(model)
    mstate = jax.eval_shape(model.init_state, jax.random.key(0))
    sample = (d.x_train[:2], d.y_train[:2]) if isinstance(d, Dataset) else d._sample()
    x, y = jnp.asarray(sample[0]), jnp.asarray(sample[1])

    def run(params, mstate, key):
        key = jax.random.fold_in(key, 0)
        model_key = jax.random.fold_in(key, 1) if model.stochastic else None

        def model_fn(inputs):
            return model.apply_train(params, mstate, inputs, model_key)[0]

        return fn(model_fn, (x, y), key)

    try:
        out = jax.eval_shape(run, params, mstate, jax.random.key(0))
    except Exception as e:
        raise type(e)(f"Study: loss_fn(model, (x, y), key) failed on a batch of 2: {e}") from e
    ok = isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)
    if not ok:
        raise TypeError(
            "Study: loss_fn must return (loss, metrics) with metrics a dict of scalars,"
            f" got {out!r}"
        )
    loss, metrics = out
    if getattr(loss, "shape", None) != () or not jnp.issubdtype(loss.dtype, jnp.floating):
        raise ValueError(f"Study: loss_fn's loss must be a float scalar, got {loss!r}")
    for name, v in metrics.items():
        if not isinstance(name, str) or not name.isidentifier() or name == "loss":
            raise ValueError(
                f"Study: loss_fn's metric names must be identifiers other than 'loss', got {name!r}"
            )
        if getattr(v, "shape", None) != ():
            raise ValueError(f"Study: loss_fn's metric {name!r} must be a scalar, got {v!r}")
    return _Objective("custom", fn, tuple(metrics))


def _progress_bar(progress: bool | None, total: int, members: int) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    # tqdm.auto picks the notebook bar, which warns without ipywidgets even when disabled.
    if progress:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm

    return tqdm(
        total=total, disable=not progress, unit="step", desc=f"{members} members", leave=False
    )


def _as_key(key: Any) -> jax.Array:
    """An int seed (numpy integers too), a typed PRNG key, or a raw uint32[2] key."""
    fn = "run_study"
    if isinstance(key, bool | np.bool_):
        raise TypeError(f"{fn}: key must be an int seed or a PRNG key, got {key!r}")
    if isinstance(key, numbers.Integral):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array | np.ndarray):
        if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            if key.shape != ():
                raise ValueError(
                    f"{fn}: key must be a single PRNG key, got a key array of shape {key.shape}"
                )
            return key
        if key.shape == () and jnp.issubdtype(key.dtype, jnp.integer):
            return jax.random.key(int(key))
        if key.shape == (2,) and key.dtype == np.uint32:  # a raw jax.random.PRNGKey
            return jax.random.wrap_key_data(jnp.asarray(key))
        raise ValueError(
            f"{fn}: key must be an int seed, a PRNG key (jax.random.key) or a raw uint32[2]"
            f" key, got an array of dtype {key.dtype} and shape {key.shape}"
        )
    raise TypeError(
        f"{fn}: key must be an int seed or a PRNG key (jax.random.key), got {type(key).__name__}"
    )


def _check_out_dir(out_dir: Any) -> str | None:
    """``out_dir`` must be (or become) a writable directory: checked before any work."""
    if out_dir is None:
        return None
    try:
        path = os.fspath(out_dir)
    except TypeError:
        raise TypeError(
            f"run_study: out_dir must be a path (str or os.PathLike), got {type(out_dir).__name__}"
        ) from None
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"run_study: out_dir={path!r} exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".tmp-write-test-")
        os.close(fd)
        os.remove(tmp)
    except OSError as e:
        raise ValueError(
            f"run_study: out_dir={path!r} is not a writable directory ({e.strerror or e})"
        ) from e
    return path


def run_study(
    study: Study,
    key: int | jax.Array = 0,
    out_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    devices: Sequence[Any] | None = None,
) -> StudyResult:
    """Train every (initializer × seed) member of ``study`` and return the tidy results.

    Args:
      study: the :class:`Study`.
      key: an int seed or a PRNG key; member (init i, seed s) uses ``fold_in(key, s)`` for
        its parameters and data order, so initializers are compared on paired seeds.
      out_dir: if given, ``results.csv`` and a checkpoint are written atomically after every
        chunk; running the same study with the same ``out_dir`` again resumes where it
        stopped (on any number of devices) and ends with the same results as an
        uninterrupted run. A checkpoint of a different study (data, model, any init spec,
        optimizer, sizes or key changed) is refused with an error naming what changed.
      progress: show a progress bar; default: only when stderr is a terminal.
      devices: the devices the members are sharded over; default ``jax.devices()`` (every
        device of every process). One device runs the study on that device alone.

    Bad input (shapes, sizes, types, an ``out_dir`` that cannot be written) raises before
    anything is compiled.
    """
    check_key("run_study", key, allow_int=True)
    devices = _check_devices(devices)
    if len(devices) == 1:
        with jax.default_device(devices[0]):
            return _run_study(study, key, out_dir, progress, devices)
    return _run_study(study, key, out_dir, progress, devices)


def _check_devices(devices: Any) -> list:
    if devices is None:
        return list(jax.devices())
    try:
        devices = list(devices)
    except TypeError:
        raise TypeError(
            f"run_study: devices must be a sequence of jax devices, got {type(devices).__name__}"
        ) from None
    bad = [d for d in devices if not isinstance(d, jax.Device)]
    if not devices or bad or len(set(devices)) != len(devices):
        raise ValueError(
            "run_study: devices must be a non-empty sequence of distinct jax devices (e.g."
            f" jax.devices()[:2]), got {devices!r}"
        )
    return devices


class _Arch(NamedTuple):
    """One architecture of a study, checked: its name (None without a sweep), model
    adapter, objective, optimizer and hashable init specs."""

    name: str | None
    model: _Model
    objective: _Objective
    optimizer: Any
    spec_keys: dict


def _architectures(study: Study, hp_names: tuple, grid: list) -> list[_Arch]:
    """``Study.model`` as a list of checked architectures (one, or a sweep's mapping), each
    fitted to the dataset, the inits and the optimizer before anything is compiled."""
    sweep = isinstance(study.model, Mapping)
    if sweep and not study.model:
        raise ValueError(
            "Study: model must be a model or a non-empty mapping name -> model (an"
            " architecture sweep), got an empty mapping"
        )
    if sweep and not all(isinstance(n, str) for n in study.model):
        raise TypeError(
            "Study: an architecture sweep's model mapping must be keyed by str names, got"
            f" {list(study.model)!r}"
        )
    clash = [n for n in hp_names if n in ("model", "init", "seed", "step", "metric", "value")]
    if clash:
        raise ValueError(f"Study: hparams {clash} would clash with the table's columns")
    archs = []
    for name, m in study.model.items() if sweep else [(None, study.model)]:
        try:
            model = _make_model(m, study.dataset)
            objective = _validate(study, model)
            assert objective is not None  # a model was given
            optimizer = _resolve_optimizer(study, model, hp_names, grid)
            spec_keys = {n: _check_init(study, model, n, spec) for n, spec in study.inits.items()}
        except (ValueError, TypeError) as e:
            if name is None:
                raise
            msg = str(e).removeprefix("Study: ")
            raise type(e)(f"Study: model[{name!r}] does not fit the study: {msg}") from e
        archs.append(_Arch(name, model, objective, optimizer, spec_keys))
    for a in archs[1:]:
        if a.objective != archs[0].objective:
            raise ValueError(
                f"Study: model[{a.name!r}] records metrics {a.objective.names} but"
                f" model[{archs[0].name!r}] records {archs[0].objective.names}; loss_fn must"
                " return the same metrics for every architecture"
            )
    return archs


def _run_study(study, key, out_dir, progress, devices) -> StudyResult:
    study = _normalize(study)
    _validate(study, None)
    hp_names, grid = _hparam_grid(study)
    archs = _architectures(study, hp_names, grid)
    objective = archs[0].objective
    loss = objective.loss
    key = _as_key(key)
    out_dir = _check_out_dir(out_dir)
    names = list(study.inits)
    # one architecture's members (init, seed, index into the hyperparameter grid), in this
    # order; a sweep's architectures follow one another (member i of the study is member
    # i % len(members) of architecture i // len(members)) and never share a batch
    members = [(n, s, h) for n in names for s in range(study.seeds) for h in range(len(grid))]
    models = tuple(a.name for a in archs if a.name is not None)  # () without a sweep
    eval_every = study.eval_every or study.steps
    group = study.max_members or len(members)
    sharding, group_padded = _mesh_sharding(min(group, len(members)), devices)
    options = _compiler_options(devices[0].platform)
    replicated = None if sharding is None else NamedSharding(sharding.mesh, P())
    writer = out_dir is not None and jax.process_index() == 0

    d = study.dataset
    feed = None
    if isinstance(d, HostData):  # the training set stays on the host: fed chunk by chunk
        train, val = _split_validation(d.train_size or 0, study.validation)
        target = devices[0] if replicated is None else replicated
        data_keys = _data_keys(key, study.seeds, bool(study.fixed_data_order))
        feed = _Feed(study, data_keys, target, sharding, train, val, options)
        feed.check(study)
        x_sample, y_sample = (jnp.asarray(a) for a in d._sample())
    else:
        train, val = _split_validation(len(d.x_train), study.validation)
        arrays = (d.x_train[train], d.y_train[train], d.x_test, d.y_test, d.x_train[val],
                  d.y_train[val])  # fmt: skip
        host = tuple(np.asarray(a) for a in arrays)  # placed from the host: nothing compiled
        placed = host if replicated is None else _put(host, replicated)
        x_train, y_train, x_test, y_test, x_val, y_val = (jnp.asarray(a) for a in placed)
        x_sample, y_sample = x_train, y_train
    hp_values = np.asarray(grid, np.float32).reshape(len(grid), len(hp_names))

    train_names = (*objective.metrics("train"), "grad_norm", "param_norm")
    eval_sets: list[tuple[str, Any, Any]]
    if feed is None:
        eval_sets = [("test", x_test, y_test)] + ([("val", x_val, y_val)] if len(val) else [])
    else:  # (prefix, number of examples, None): read from the host by the feed
        eval_sets = [(prefix, n, None) for prefix, n in feed.eval_sets()]
    metric_names = list(train_names)
    for prefix, _, _ in eval_sets:
        metric_names += objective.metrics(prefix)
    evals = tuple((x, y) for _, x, y in eval_sets) if feed is None else ()

    def value_rows(values: np.ndarray, step: int, n: int, offset: int) -> list:
        """Rows of evaluation values (members, metrics of every evaluation set)."""
        rows, col = [], 0
        for prefix, _, _ in eval_sets:
            k = len(objective.metrics(prefix))
            first = len(train_names) + col  # the index of the set's loss in metric_names
            rows.append(_value_rows(values[:, col : col + k], step, n, offset, first))
            col += k
        return rows

    def fed_values(model: _Model, state: MemberState) -> np.ndarray:
        """Evaluation values with the evaluation sets read from the host."""
        assert feed is not None
        parts = [feed.evaluate(model, objective, state, p, int(n)) for p, n, _ in eval_sets]
        return np.concatenate(parts, axis=1)

    def initial_state(arch: _Arch, batch: list[tuple[str, int, int]]) -> tuple[Callable, tuple]:
        """The initial state's program and arguments."""
        parts: list[tuple[str, list[int]]] = []  # runs of one initializer, in member order
        for name, s, _ in batch:
            if parts and parts[-1][0] == name:
                parts[-1][1].append(s)
            else:
                parts.append((name, [s]))
        program = _init_program(
            arch.model, tuple(arch.spec_keys[n] for n, _ in parts),
            tuple(len(s) for _, s in parts), study.kernel_pattern, arch.optimizer, hp_names,
            bool(study.fixed_data_order), options,
        )  # fmt: skip
        seeds = np.asarray([s for _, s, _ in batch], np.int32)
        return program, (key, seeds, hp_values[[h for _, _, h in batch]])

    def chunk_program(arch: _Arch, n: int) -> Callable:
        return _chunk_program(
            arch.model, arch.optimizer, objective, study.batch_size, study.log_every,
            n // study.log_every, sharding, feed is not None, len(eval_sets), options,
            layouts[arch.name][0],
        )  # fmt: skip

    chunks = sorted({min(eval_every, study.steps - d) for d in range(0, study.steps, eval_every)})

    # ---- member layout per program, and member groups sized to memory (study/_layout.py)
    layouts = {
        a.name: _layout.choose_layout(
            study.member_layout, devices[0].platform,
            study.member_layout == "auto" and _layout.model_convolves(a.model),
        )
        for a in archs
    }  # fmt: skip
    group_info: dict[str, Any] = {}
    if study.max_members is None:
        group, group_info = _member_groups(
            study, archs, members, devices, sharding, chunks[-1], initial_state, chunk_program,
            (x_train, y_train, evals) if feed is None else (feed, x_sample, y_sample),
        )  # fmt: skip
        _, group_padded = _mesh_sharding(min(group, len(members)), devices)
    else:
        group_info["group_reason"] = f"max_members={study.max_members} given"
    first_layout = layouts[archs[0].name]
    # ---- end of the layout and group choice

    # what a checkpoint must match (its checksums are computed only with an ``out_dir``)
    fingerprint = lambda: {
        "dataset": d._fingerprint()
        if feed is not None
        else [d.name, _checksum((d.x_train, d.y_train, d.x_test, d.y_test))],
        "key": _checksum(jax.random.key_data(key)),
        "config": [
            study.seeds,
            study.steps,
            study.batch_size,
            loss,
            study.log_every,
            eval_every,
            study.fixed_data_order,
            group,
            study.kernel_pattern,
            float(study.validation),
        ],
        "hparams": {n: [g[j] for g in grid] for j, n in enumerate(hp_names)},
    }
    start = time.perf_counter()
    records: list[np.ndarray] = []
    total = len(members) * len(archs)
    bar = _progress_bar(progress, study.steps * total, total)
    if not bar.disable:  # the layout and group choice, through the progress output
        bar.write(
            f"run_study: members {first_layout[0]!r} ({first_layout[1]}); groups of"
            f" {min(group, len(members))} ({group_info['group_reason']})",
            file=sys.stderr,
        )
    # member batches: an architecture's population in batches of ``group`` (offset ``g0``
    # in the whole study: the checkpoint's name and the rows' member index)
    starts = [
        a * len(members) + i for a in range(len(archs)) for i in range(0, len(members), group)
    ]
    for g0 in starts:
        arch = archs[g0 // len(members)]
        model, optimizer = arch.model, arch.optimizer
        batch = members[g0 % len(members) : g0 % len(members) + group]
        padded = batch + [batch[0]] * (max(group_padded, len(batch)) - len(batch))
        init, args = initial_state(arch, padded)
        compiled = {}
        if feed is None:
            # the training programs compile (on a worker thread) while the initial state does
            abstract = jax.eval_shape(init, *args)
            if sharding is not None:
                abstract = jax.tree.map(
                    lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract
                )
            compiled = {
                n: _compile_ahead(
                    chunk_program(arch, n), abstract, x_train, y_train, evals, np.bool_(True)
                )
                for n in chunks
            }
        state = init(*args)
        ckpt = None
        if out_dir is not None:
            desc = repr(model.module) if model.kind == "linen" else str(model.graphdef)
            fp = dict(
                fingerprint(),
                group=g0,
                model=desc if arch.name is None else {arch.name: desc},
                **_state_fingerprint(
                    model, optimizer, objective, state, batch, (x_sample, y_sample)
                ),
            )
            ckpt = _Checkpoint(out_dir, g0, fp, writer)
        done = 0
        group_records: list[np.ndarray] = []
        if ckpt is not None and (loaded := ckpt.load(state, len(batch))) is not None:
            state, done, group_records = loaded
            bar.update(done * len(batch))
        if sharding is not None:
            state = _put(state, sharding)
        seeds = [s for _, s, _ in padded]
        if feed is not None and done < study.steps:
            feed.request(seeds, done, min(eval_every, study.steps - done))
        if feed is not None and done == 0:
            group_records += value_rows(fed_values(model, state), 0, len(batch), g0)
        while done < study.steps:
            n = min(eval_every, study.steps - done)
            if feed is None:  # evaluates its first state (the first chunk) and its last
                program = compiled[n].result()
                state, metrics, values = program(state, x_train, y_train, evals, done == 0)
                values = _fetch(values)
                if done == 0:
                    group_records += value_rows(values[:, 0], 0, len(batch), g0)
                values = values[:, 1]
            else:  # this chunk's batches; the next chunk's are assembled meanwhile
                inputs = feed.take(seeds, done, n)
                if done + n < study.steps:
                    feed.request(seeds, done + n, min(eval_every, study.steps - done - n))
                state, metrics = chunk_program(arch, n)(state, *inputs)
            metrics = _fetch(metrics)[: len(batch)]  # (members, logs, train metrics)
            steps = done + study.log_every * np.arange(1, metrics.shape[1] + 1)
            group_records.append(_train_rows(metrics, steps, g0))
            done += n
            if feed is not None:
                values = fed_values(model, state)
            group_records += value_rows(values, done, len(batch), g0)
            bar.update(n * len(batch))
            if ckpt is not None:
                ckpt.save(state, done, group_records, len(batch))
                if writer:
                    partial = _table(
                        records + group_records, members, metric_names, hp_names, grid, models
                    )
                    _atomic_write(
                        os.path.join(out_dir, "results.partial.csv"),
                        partial.to_csv(index=False).encode(),
                    )
        records += group_records
    bar.close()
    info: dict[str, Any] = {"loss": loss}
    # what the layout and group choice chose, and why (study/_layout.py)
    info.update(
        member_layout=first_layout[0],
        member_layout_reason=first_layout[1],
        member_group=min(group, len(members)),
    )
    if len(archs) > 1:
        info["member_layouts"] = {a.name: layouts[a.name] for a in archs}
    info.update(group_info)
    if feed is not None:
        feed.close()
        info["host_data"] = dict(feed.stats)
    table = _table(records, members, metric_names, hp_names, grid, models)
    seconds = time.perf_counter() - start
    result = StudyResult(table, _diverged(table, hp_names), seconds, info, hp_names, models)
    if writer:
        result.to_csv(os.path.join(out_dir, "results.csv"))
    return result


def _member_groups(
    study: Study,
    archs: list[_Arch],
    members: list,
    devices: list,
    sharding: NamedSharding | None,
    n_steps: int,
    initial_state: Callable,
    chunk_program: Callable,
    data: tuple,
) -> tuple[int, dict]:
    """Members per program, sized from the training program's memory analysis
    (:func:`jaxinit.study._layout.plan_group`; the smallest over a sweep's architectures)."""
    budget, source = _layout.memory_budget(devices, study.memory_budget)
    n_dev = len(devices)
    best: tuple[int, dict] | None = None
    for arch in archs:

        def measure(k: int, arch: _Arch = arch) -> int | None:
            """Bytes per device of the chunk program for ``k`` members per device."""
            batch = members[: k * n_dev] + [members[0]] * (k * n_dev - len(members[: k * n_dev]))
            init, args = initial_state(arch, batch)
            abstract = jax.eval_shape(init, *args)
            if sharding is not None:
                abstract = jax.tree.map(
                    lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract
                )
            program = chunk_program(arch, n_steps)
            if not isinstance(data[0], _Feed):  # in memory: compiled as the run will be
                return _layout.program_bytes(
                    _compile_ahead(program, abstract, *data, np.bool_(True)).result()
                )
            feed, x_sample, y_sample = data  # fed from the host: the chunk's batches
            rows = len(feed.streams([s for _, s, _ in batch])) * n_steps * study.batch_size
            place = None if sharding is None else NamedSharding(sharding.mesh, P())
            xy = [
                jax.ShapeDtypeStruct((rows, *a.shape[1:]), a.dtype, sharding=place)
                for a in (x_sample, y_sample)
            ]
            offset = jax.ShapeDtypeStruct((k * n_dev,), np.int32, sharding=sharding)
            return _layout.program_bytes(program.lower(abstract, *xy, offset).compile())

        group, info = _layout.plan_group(measure, len(members), n_dev, budget, source)
        if best is None or group < best[0]:
            best = (group, info)
    assert best is not None
    return best


def _split_validation(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row indices: a fixed random ``fraction`` of the ``n`` rows."""
    order = np.random.default_rng(0x5EED).permutation(n)
    n_val = round(n * fraction)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
