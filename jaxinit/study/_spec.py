"""The study's specification: :class:`Study`, and every check made before anything is
compiled — its plain fields, the objective (built-in loss or ``loss_fn``), each
architecture against the dataset, the inits and the optimizer — plus the checks of
:func:`jaxinit.run_study`'s other arguments (key, out_dir, devices) and its progress bar."""

from __future__ import annotations

import dataclasses
import numbers
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinit.study import _layout
from jaxinit.study._adapters import _abstract_io, _make_model, _Model
from jaxinit.study._datasets import Dataset
from jaxinit.study._feed import HostData
from jaxinit.study._population import _check_init, _resolve_optimizer
from jaxinit.study._program import _Objective


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
        batches of this size. Default: the whole population when its training program
        fits ``memory_budget`` (read from the program compiled for the run itself), else
        the largest group that fits (sized from the memory analysis of smaller
        programs). Given, it wins over the memory sizing.
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
      stepping: how a chunk's steps run: ``"scan"`` (one program scans them: no Python per
        step), ``"host"`` (a program of a few unrolled steps called from Python per step,
        members laid out by ``member_layout`` without a loop in the program: ``"loop"``
        calls one member's program per member), or ``"auto"``: host-stepped for models
        with convolutions on the CPU (XLA's CPU backend runs convolutions inside a loop,
        such as a scan over steps, many times slower: jax#12868), else scanned. The same
        table either way up to float summation order; ``result.info`` records the choice
        (``stepping``) and why (``stepping_reason``).

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
    stepping: str = "auto"


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
    ints["stepping"] = _layout.check_stepping(study.stepping)
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


def _as_key(key: Any, fn: str = "run_study") -> jax.Array:
    """An int seed (numpy integers too), a typed PRNG key, or a raw uint32[2] key."""
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


def _check_out_dir(out_dir: Any, fn: str = "run_study") -> str | None:
    """``out_dir`` must be (or become) a writable directory: checked before any work."""
    if out_dir is None:
        return None
    try:
        path = os.fspath(out_dir)
    except TypeError:
        raise TypeError(
            f"{fn}: out_dir must be a path (str or os.PathLike), got {type(out_dir).__name__}"
        ) from None
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{fn}: out_dir={path!r} exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".tmp-write-test-")
        os.close(fd)
        os.remove(tmp)
    except OSError as e:
        raise ValueError(
            f"{fn}: out_dir={path!r} is not a writable directory ({e.strerror or e})"
        ) from e
    return path


def _check_devices(devices: Any, fn: str = "run_study") -> list:
    if devices is None:
        return list(jax.devices())
    try:
        devices = list(devices)
    except TypeError:
        raise TypeError(
            f"{fn}: devices must be a sequence of jax devices, got {type(devices).__name__}"
        ) from None
    bad = [d for d in devices if not isinstance(d, jax.Device)]
    if not devices or bad or len(set(devices)) != len(devices):
        raise ValueError(
            f"{fn}: devices must be a non-empty sequence of distinct jax devices (e.g."
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
