"""Multi-seed training: a whole (initializer × seed × hyperparameter) population in one
compiled program.

The population's parameters are stacked on a leading *member* axis. One jitted program
runs ``eval_every`` steps for every member — ``jax.vmap`` over members, ``jax.lax.scan``
over steps (nested: an inner scan of ``log_every`` steps whose mean metrics are recorded)
— so there is no Python per step (except where a scan is slow: convolutions on the CPU are
stepped from the host, a program of a few unrolled steps per call, ``Study(stepping=...)``,
``_stepping._HostStepped``). Between chunks the host records metrics, writes results
and a checkpoint, and updates the progress bar.

Multi-device: the member axis is sharded over ``jax.devices()`` with a ``NamedSharding``;
members never communicate, so each device trains its own. On several hosts, call
``jax.distributed.initialize()`` first in every process and run the same study: the mesh
then spans all processes' devices (members are padded to a multiple of the device count).
On a multi-core CPU, :func:`jaxinit.cli.use_cpu_cores` makes each core a device, so
members train in parallel instead of every small matrix product being split across cores.

This module holds :func:`run_study`, which drives the pieces: the spec and its checks
(``_spec``), model adapters (``_adapters``), the population's initial state
(``_population``), the compiled training program (``_program``), the member layout and
member groups (``_layout``), checkpoints (``_checkpoint``) and the tidy results
(``_results``).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxinit._checks import check_key
from jaxinit.study import _layout, _stepping
from jaxinit.study._callbacks import Callback, _check_callbacks, _notify
from jaxinit.study._checkpoint import _Checkpoint, _state_fingerprint
from jaxinit.study._feeds import _make_feed, abstract_state
from jaxinit.study._guards import (
    check_bookkeeping,
    model_fingerprint,
    read_checkpoint,
    schedule_fingerprint,
)
from jaxinit.study._io import _atomic_write, _checksum, _fetch, _put
from jaxinit.study._population import (
    _hparam_grid,
    _init_program,
)
from jaxinit.study._program import (
    MemberState,
    _chunk_program,
    _compiler_options,
    _mesh_sharding,
    _Objective,
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
        A resumed member group says so ("run_study: resuming member group 0 from step 40
        of 100 (checkpoint ...)") on the progress output and the ``jaxinit.study`` logger.
      progress: show a progress bar; default: only when stderr is a terminal.
      devices: the devices the members are sharded over; default ``jax.devices()`` (every
        device of every process). One device runs the study on that device alone.
      callbacks: called on the host after every chunk as ``callback(rows, start, stop)``
        with that chunk's tidy rows (see :class:`jaxinit.Callback`), after its checkpoint
        is written; e.g. :class:`jaxinit.MetricWriter`, :class:`jaxinit.TensorBoardWriter`.

    Bad input (shapes, sizes, types, an ``out_dir`` that cannot be written) raises before
    anything is compiled.

    Example:
      >>> import optax
      >>> study = jaxinit.Study(jaxinit.MLP((16, 10)), jaxinit.digits(), optax.sgd(0.1),
      ...     inits={"he": "he_normal", "lecun": "lecun_normal"}, seeds=2, steps=10,
      ...     log_every=5)
      >>> result = jaxinit.run_study(study, progress=False)  # a StudyResult
      >>> list(result.table.columns)
      ['init', 'seed', 'step', 'metric', 'value']
      >>> sorted(set(result.table.metric))
      ['grad_norm', 'param_norm', 'test_accuracy', 'test_loss', 'train_accuracy', 'train_loss']
      >>> result.metric("train_loss").shape  # rows (init, seed), columns the logged steps 5, 10
      (4, 2)
      >>> len(result.diverged)  # members whose loss became NaN or infinite
      0
    """
    check_key("run_study", key, allow_int=True)
    devices = _check_devices(devices)
    callbacks_ = _check_callbacks("run_study", callbacks)
    if len(devices) == 1:
        with jax.default_device(devices[0]):
            return _run_study(study, key, out_dir, progress, devices, callbacks_)
    return _run_study(study, key, out_dir, progress, devices, callbacks_)


class _Run(NamedTuple):
    """A checked study, ready to train: what every member batch shares."""

    study: Study
    key: jax.Array
    out_dir: str | None
    archs: list[_Arch]
    objective: _Objective
    hp_names: tuple[str, ...]
    grid: list
    hp_values: np.ndarray  # (grid points, hyperparameters) float32
    members: list[tuple[str, int, int]]  # one architecture's (init, seed, grid index)
    models: tuple[str, ...]  # an architecture sweep's names; () without a sweep
    group: int  # members per batch
    group_padded: int  # a batch's members, padded to a multiple of the devices
    sharding: Any
    options: tuple
    feed: Any  # a feed of ``_feeds``: the data on the device or on the host
    metric_names: list[str]
    train_names: tuple[str, ...]
    chunks: list[int]  # the chunk lengths (steps)
    writer: bool  # this process writes the files
    devices: list
    layouts: dict  # architecture name -> (member layout, why) (study/_layout.py)
    steppings: dict  # architecture name -> ("scan" | "host", why) (study/_layout.py)
    budget: tuple | None  # (bytes per device, its source); None: no sizing (max_members given)
    group_info: dict  # how the group was chosen, for ``result.info``


class _GroupTooLarge(Exception):
    """The whole population's training program does not fit the memory budget (raised by
    :func:`_train_group` before anything is trained or read)."""


def _run_study(study, key, out_dir, progress, devices, callbacks=()) -> StudyResult:
    run = _prepare(study, key, out_dir, devices)
    start = time.perf_counter()
    records: list[np.ndarray] = []
    total = len(run.members) * len(run.archs)
    bar = _progress_bar(progress, run.study.steps * total, total)
    layout, why = run.layouts[run.archs[0].name]
    _say(bar, f"run_study: members {layout!r} ({why})")
    stepping, why = run.steppings[run.archs[0].name]
    _say(bar, f"run_study: steps {stepping!r} ({why})")
    # member batches: an architecture's population in batches of ``group`` (offset ``g0``
    # in the whole study: the checkpoint's name and the rows' member index)
    n = len(run.members)
    for a in range(len(run.archs)):
        i = 0
        while i < n:
            try:
                records += _train_group(run, a * n + i, records, bar, callbacks)
            except _GroupTooLarge:  # only ever raised before the first batch of ``a``
                run = _regroup(run, a)
                _say(bar, f"run_study: groups of {run.group} ({run.group_info['group_reason']})")
                continue
            i += run.group
    bar.close()
    return _finish(run, records, time.perf_counter() - start)


def _say(bar: Any, text: str) -> None:
    """A line through the progress output (nothing without a progress bar)."""
    if not bar.disable:
        bar.write(text, file=sys.stderr)


def _resumed(bar: Any, g0: int, done: int, steps: int, source: str) -> None:
    """Say that a member group resumes from its checkpoint: through the progress output (as
    :func:`_say`) and, always, the ``jaxinit.study`` logger at INFO."""
    text = (
        f"run_study: resuming member group {g0} from step {done} of {steps} (checkpoint {source})"
    )
    logging.getLogger("jaxinit.study").info(text)
    _say(bar, text)


def _prepare(study, key, out_dir, devices) -> _Run:
    """Step 1: check everything (before anything is compiled) and build the feed."""
    study = _normalize(study)
    _validate(study, None)
    hp_names, grid = _hparam_grid(study)
    archs = _architectures(study, hp_names, grid)
    objective = archs[0].objective
    key = _as_key(key)
    out_dir = _check_out_dir(out_dir)
    # one architecture's members (init, seed, index into the hyperparameter grid), in this
    # order; a sweep's architectures follow one another (member i of the study is member
    # i % len(members) of architecture i // len(members)) and never share a batch
    members = [(n, s, h) for n in study.inits for s in range(study.seeds) for h in range(len(grid))]
    models = tuple(a.name for a in archs if a.name is not None)
    eval_every = study.eval_every or study.steps
    group = study.max_members or len(members)
    sharding, group_padded = _mesh_sharding(min(group, len(members)), devices)
    options = _compiler_options(devices[0].platform)
    feed = _make_feed(study, key, devices, sharding, options)
    train_names = (*objective.metrics("train"), "grad_norm", "param_norm")
    metric_names = list(train_names)
    for prefix, _ in feed.eval_sets():
        metric_names += objective.metrics(prefix)
    chunks = sorted({min(eval_every, study.steps - d) for d in range(0, study.steps, eval_every)})
    # the member layout per architecture; the member group: the whole population unless
    # max_members is given, until its compiled program is found too large (_train_group)
    auto = "auto" in (study.member_layout, study.stepping)
    platform = devices[0].platform
    convolves = {a.name: auto and _layout.model_convolves(a.model) for a in archs}
    layouts = {
        a.name: _layout.choose_layout(study.member_layout, platform, convolves[a.name])
        for a in archs
    }
    steppings = {
        a.name: _layout.choose_stepping(study.stepping, platform, convolves[a.name]) for a in archs
    }
    budget: tuple | None = None  # (bytes per device, source): the one group is measured
    group_info: dict[str, Any] = {"group_reason": f"max_members={study.max_members} given"}
    if study.max_members is None:
        limit, source = _layout.memory_budget(devices, study.memory_budget)
        if limit is None:  # no figure (or several processes): one group
            group_info = _layout.whole_population(None, None, source)[1]
        else:
            budget, group_info = (limit, source), {}
    return _Run(
        study, key, out_dir, archs, objective, hp_names, grid,
        np.asarray(grid, np.float32).reshape(len(grid), len(hp_names)), members, models,
        group, group_padded, sharding, options, feed, metric_names, train_names, chunks,
        out_dir is not None and jax.process_index() == 0, list(devices), layouts, steppings,
        budget, group_info,
    )  # fmt: skip


def _initial_state(run: _Run, arch: _Arch, batch: list) -> tuple[Callable, tuple]:
    """The initial state's program and arguments for a (padded) member batch."""
    parts: list[tuple[str, list[int]]] = []  # runs of one initializer, in member order
    for name, s, _ in batch:
        if parts and parts[-1][0] == name:
            parts[-1][1].append(s)
        else:
            parts.append((name, [s]))
    program = _init_program(
        arch.model, tuple(arch.spec_keys[n] for n, _ in parts),
        tuple(len(s) for _, s in parts), run.study.kernel_pattern, arch.optimizer,
        run.hp_names, bool(run.study.fixed_data_order), run.options,
    )  # fmt: skip
    seeds = np.asarray([s for _, s, _ in batch], np.int32)
    return program, (run.key, seeds, run.hp_values[[h for _, _, h in batch]])


def _chunk(run: _Run, arch: _Arch, n: int) -> Callable:
    """The training program of ``n`` steps for an architecture."""
    s = run.study
    return _chunk_program(
        arch.model, arch.optimizer, run.objective, s.batch_size, s.log_every,
        n // s.log_every, run.sharding, run.feed.fed, len(run.feed.eval_sets()), run.options,
        run.layouts[arch.name][0], run.steppings[arch.name][0], _stepping.HOST_UNROLL,
    )  # fmt: skip


def _regroup(run: _Run, first_arch: int) -> _Run:
    """``run`` with member groups that fit the memory budget: the smallest of the groups
    :func:`jaxinit.study._layout.plan_group` sizes for the architectures from
    ``first_arch`` on (each compiles the training program of a few group sizes)."""
    assert run.budget is not None
    budget, source = run.budget
    n_dev = len(run.devices)
    best: tuple[int, dict] | None = None
    for arch in run.archs[first_arch:]:

        def measure(k: int, arch: _Arch = arch) -> int | None:
            """Bytes per device of the longest chunk's program for ``k`` members per device."""
            batch = run.members[: k * n_dev]
            batch = batch + [batch[0]] * (k * n_dev - len(batch))
            init, args = _initial_state(run, arch, batch)
            n, state = run.chunks[-1], abstract_state(init, args, run.sharding)
            future = run.feed.compiled(_chunk(run, arch, n), state, args[1], n, run.sharding)
            return _layout.program_bytes(future.result())

        group, info = _layout.plan_group(measure, len(run.members), n_dev, budget, source)
        if best is None or group < best[0]:
            best = (group, info)
    assert best is not None
    group, info = best
    run.group_info.clear()
    run.group_info.update(info)
    _, group_padded = _mesh_sharding(group, run.devices)
    return run._replace(group=group, group_padded=group_padded)


def _check_fits(run: _Run, compiled: Any) -> None:
    """Raise :class:`_GroupTooLarge` when the whole population's compiled training program
    does not fit the memory budget; else record why it is one group."""
    assert run.budget is not None
    fits, info = _layout.whole_population(_layout.program_bytes(compiled), *run.budget)
    if not fits:
        raise _GroupTooLarge
    if not run.group_info:  # a sweep records its first architecture's figures
        run.group_info.update(info)


def _fingerprint(run: _Run, arch: _Arch, g0: int, state: MemberState, batch: list) -> dict:
    """What a member batch's checkpoint must match (checksums computed only with an
    ``out_dir``)."""
    s, model = run.study, arch.model
    desc = repr(model.module) if model.kind == "linen" else str(model.graphdef)
    desc = model_fingerprint(desc)  # no memory addresses
    p0, s0 = jax.tree.map(lambda a: a[0], (state.params, state.opt_state))
    fp = {
        "dataset": run.feed.fingerprint(),
        "key": _checksum(jax.random.key_data(run.key)),
        "config": [
            s.seeds,
            s.steps,
            s.batch_size,
            run.objective.loss,
            s.log_every,
            s.eval_every or s.steps,
            s.fixed_data_order,
            run.group,
            s.kernel_pattern,
            float(s.validation),
        ],
        "hparams": {n: [g[j] for g in run.grid] for j, n in enumerate(run.hp_names)},
        "group": g0,
        "model": desc if arch.name is None else {arch.name: desc},
        **_state_fingerprint(model, arch.optimizer, run.objective, state, batch, run.feed.sample),
    }
    # the optimizer's whole update sequence over the study's steps (schedules included)
    fp["optimizer"].append(schedule_fingerprint(arch.optimizer, p0, s0, s.steps))
    return fp


def _value_rows_of(run: _Run, values: np.ndarray, step: int, n: int, offset: int) -> list:
    """Rows of evaluation values (members, metrics of every evaluation set)."""
    rows, col = [], 0
    for prefix, _ in run.feed.eval_sets():
        k = len(run.objective.metrics(prefix))
        first = len(run.train_names) + col  # the index of the set's loss in metric_names
        rows.append(_value_rows(values[:, col : col + k], step, n, offset, first))
        col += k
    return rows


def _train_group(run: _Run, g0: int, records: list, bar: Any, callbacks: tuple) -> list:
    """Step 2: train one member batch (from its checkpoint, if any) chunk by chunk; its
    records."""
    s, feed = run.study, run.feed
    arch = run.archs[g0 // len(run.members)]
    batch = run.members[g0 % len(run.members) : g0 % len(run.members) + run.group]
    padded = batch + [batch[0]] * (max(run.group_padded, len(batch)) - len(batch))
    init, args = _initial_state(run, arch, padded)
    make = functools.partial(_chunk, run, arch)
    abstract = abstract_state(init, args, run.sharding)
    programs = feed.programs(make, abstract, run.chunks, run.sharding)
    # the member group not given, the whole population's program is measured: the very
    # program the run compiles ahead, read once it is compiled (the initial state is
    # compiled and computed meanwhile); too large, smaller groups are sized (_regroup)
    compiled = None
    if run.budget is not None and run.group >= len(run.members):
        n = run.chunks[-1]
        compiled = feed.compiled(make(n), abstract, args[1], n, run.sharding)
    state = init(*args)
    ckpt = None
    if run.out_dir is not None:
        fp = _fingerprint(run, arch, g0, state, batch)
        ckpt = _Checkpoint(run.out_dir, g0, fp, run.writer)
    if compiled is not None:  # before a checkpoint is read: smaller groups have their own
        _check_fits(run, compiled.result())
    if run.sharding is not None:
        state = _put(state, run.sharding)
    done = 0
    group_records: list[np.ndarray] = []
    if ckpt is not None and (loaded := read_checkpoint(ckpt, state, len(batch))) is not None:
        state, done, group_records = loaded  # placed like ``state``
        check_bookkeeping(ckpt.source, done, group_records, steps=s.steps,
                          eval_every=s.eval_every or s.steps, log_every=s.log_every,
                          members=range(g0, g0 + len(batch)))  # fmt: skip
        _resumed(bar, g0, done, s.steps, ckpt.source)
        bar.update(done * len(batch))
    seeds = [seed for _, seed, _ in padded]
    feed.begin(seeds, done)
    table = functools.partial(
        _table, members=run.members, metric_names=run.metric_names, hp_names=run.hp_names,
        grid=run.grid, models=run.models,
    )  # fmt: skip
    while done < s.steps:
        n = min(s.eval_every or s.steps, s.steps - done)
        first_row = len(group_records)  # this chunk's rows
        state, metrics, at_start, values = feed.run_chunk(
            programs, arch.model, run.objective, state, seeds, done, n
        )
        if at_start is not None:  # the first chunk evaluates its first state too
            group_records += _value_rows_of(run, at_start, 0, len(batch), g0)
        metrics = _fetch(metrics)[: len(batch)]  # (members, logs, train metrics)
        steps = done + s.log_every * np.arange(1, metrics.shape[1] + 1)
        group_records.append(_train_rows(metrics, steps, g0))
        done += n
        group_records += _value_rows_of(run, values, done, len(batch), g0)
        bar.update(n * len(batch))
        if ckpt is not None:
            ckpt.save(state, done, group_records, len(batch))
            if run.writer:
                assert run.out_dir is not None
                _atomic_write(
                    os.path.join(run.out_dir, "results.partial.csv"),
                    table(records + group_records).to_csv(index=False).encode(),
                )
        if callbacks:
            _notify("run_study", callbacks, table(group_records[first_row:]), done - n, done)
    if ckpt is not None:
        ckpt.close()  # the last save is complete
    return group_records


def _finish(run: _Run, records: list, seconds: float) -> StudyResult:
    """Step 3: the tidy table, the diverged members, ``results.csv``."""
    run.feed.close()
    info: dict[str, Any] = {"loss": run.objective.loss, **run.feed.info()}
    # the member layout and group, and why (study/_layout.py)
    layout, why = run.layouts[run.archs[0].name]
    info.update(member_layout=layout, member_layout_reason=why)
    stepping, why = run.steppings[run.archs[0].name]
    info.update(stepping=stepping, stepping_reason=why)
    info["member_group"] = min(run.group, len(run.members))
    if len(run.archs) > 1:
        info["member_layouts"] = {a.name: run.layouts[a.name] for a in run.archs}
        info["steppings"] = {a.name: run.steppings[a.name] for a in run.archs}
    info.update(run.group_info)
    table = _table(records, run.members, run.metric_names, run.hp_names, run.grid, run.models)
    result = StudyResult(
        table, _diverged(table, run.hp_names), seconds, info, run.hp_names, run.models
    )
    if run.writer:
        assert run.out_dir is not None
        result.to_csv(os.path.join(run.out_dir, "results.csv"))
    return result
