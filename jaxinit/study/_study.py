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

This module holds :func:`run_study`, which drives the pieces: the spec and its checks
(``_spec``), model adapters (``_adapters``), the population's initial state
(``_population``), the compiled training program (``_program``), checkpoints
(``_checkpoint``) and the tidy results (``_results``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxinit._checks import check_key
from jaxinit.study._adapters import _Model
from jaxinit.study._callbacks import Callback, _check_callbacks, _notify
from jaxinit.study._checkpoint import _Checkpoint, _state_fingerprint
from jaxinit.study._datasets import _split_validation
from jaxinit.study._feed import HostData, _Feed
from jaxinit.study._io import _atomic_write, _checksum, _fetch, _put
from jaxinit.study._population import (
    _data_keys,
    _hparam_grid,
    _init_program,
)
from jaxinit.study._program import (
    MemberState,
    _chunk_program,
    _compile_ahead,
    _compiler_options,
    _mesh_sharding,
)
from jaxinit.study._results import StudyResult, _diverged, _table, _train_rows, _value_rows
from jaxinit.study._spec import (
    Study,
    _Arch,
    _architectures,
    _as_key,
    _check_devices,
    _check_out_dir,
    _normalize,
    _progress_bar,
    _validate,
)


def run_study(
    study: Study,
    key: int | jax.Array = 0,
    out_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    devices: Sequence[Any] | None = None,
    callbacks: Sequence[Callback] | None = None,
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
      callbacks: called on the host after every chunk as ``callback(rows, start, stop)``
        with that chunk's tidy rows (see :class:`jaxinit.Callback`), after its checkpoint
        is written; e.g. :class:`jaxinit.MetricWriter`, :class:`jaxinit.TensorBoardWriter`.

    Bad input (shapes, sizes, types, an ``out_dir`` that cannot be written) raises before
    anything is compiled.
    """
    check_key("run_study", key, allow_int=True)
    devices = _check_devices(devices)
    callbacks_ = _check_callbacks("run_study", callbacks)
    if len(devices) == 1:
        with jax.default_device(devices[0]):
            return _run_study(study, key, out_dir, progress, devices, callbacks_)
    return _run_study(study, key, out_dir, progress, devices, callbacks_)


def _run_study(study, key, out_dir, progress, devices, callbacks=()) -> StudyResult:
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
        )  # fmt: skip

    chunks = sorted({min(eval_every, study.steps - d) for d in range(0, study.steps, eval_every)})

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
            first_row = 0 if done == 0 else len(group_records)  # this chunk's rows
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
            if callbacks:
                chunk = group_records[first_row:]
                rows = _table(chunk, members, metric_names, hp_names, grid, models)
                _notify("run_study", callbacks, rows, done - n, done)
        records += group_records
    bar.close()
    info: dict[str, Any] = {"loss": loss}
    if feed is not None:
        feed.close()
        info["host_data"] = dict(feed.stats)
    table = _table(records, members, metric_names, hp_names, grid, models)
    seconds = time.perf_counter() - start
    result = StudyResult(table, _diverged(table, hp_names), seconds, info, hp_names, models)
    if writer:
        result.to_csv(os.path.join(out_dir, "results.csv"))
    return result
