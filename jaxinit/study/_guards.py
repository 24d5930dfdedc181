"""Guards of the study engine: pure checks that a grid varies for real, that a resume
compares what determines the numbers, and that a checkpoint's bookkeeping fits the study.

Each is a function of plain values (names, grids, optax transformations, parameter trees,
arrays), called from the engine in one line, so that the engine's structure can change
around them:

* :func:`check_grid` — every hyperparameter of a grid reaches the members: none is
  overwritten by the optimizer's own schedule, values are distinct and finite in the dtype
  the member's optimizer state holds them in;
* :func:`schedule_fingerprint` — the optimizer's whole sequence of updates over the study's
  steps, for a fixed gradient: a learning-rate schedule that changes anywhere within the
  steps changes it;
* :func:`model_fingerprint` — a model's description without memory addresses;
* :func:`check_bookkeeping` — a checkpoint's ``done`` and records against the study's steps
  and members;
* :func:`read_checkpoint` — a damaged checkpoint file answered with its name and what to do.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# --------------------------------------------------------------------------- grids


def _promotion() -> Any:
    # optax mixes Python floats with int32 step counts; strict promotion would reject it
    return jax.numpy_dtype_promotion("standard")


def check_grid(
    names: Sequence[str], grid: Sequence[Sequence[float]], optimizer: Any, params: Any
) -> None:
    """Refuse a hyperparameter grid whose values would not reach the members.

    Args:
      names: the hyperparameters' names (``Study.hparams``' keys).
      grid: every combination of values, one tuple per grid point (``names``' order).
      optimizer: the optax transformation built with ``optax.inject_hyperparams``, whose
        state holds every name in ``state.hyperparams``.
      params: the model's parameters, concrete or abstract (``jax.ShapeDtypeStruct``).

    Raises ValueError naming the hyperparameter when the optimizer's own schedule rewrites
    it at every step (the grid's labels would lie: every member trains on the schedule),
    when two values are equal once cast to the dtype the optimizer state holds (float32:
    ``0.1`` and ``0.1 + 1e-12``), or when a value is not finite in that dtype (``1e39``).
    """
    if not names:
        return
    zeros = jax.tree.map(lambda p: jnp.zeros(np.shape(p), getattr(p, "dtype", jnp.float32)), params)
    with _promotion():
        state = optimizer.init(zeros)
    held = state.hyperparams
    for j, name in enumerate(names):
        dtype = np.dtype(jnp.result_type(held[name]))
        values = [g[j] for g in grid]
        distinct = list(dict.fromkeys(values))
        with np.errstate(over="ignore", invalid="ignore"):
            cast = np.asarray(distinct, np.float64).astype(dtype)
        bad = [v for v, c in zip(distinct, cast, strict=True) if not np.isfinite(c)]
        if bad:
            raise ValueError(
                f"Study: hparams[{name!r}] = {bad} is not finite in {dtype.name}, the dtype the"
                f" optimizer state holds {name!r} in; every value must be"
            )
        seen: dict[Any, float] = {}
        for v, c in zip(distinct, cast.tolist(), strict=True):
            if c in seen:
                raise ValueError(
                    f"Study: hparams[{name!r}] values {seen[c]!r} and {v!r} are the same"
                    f" {dtype.name} ({c!r}), the dtype the optimizer state holds {name!r} in;"
                    " the members would train identically"
                )
            seen[c] = v
        if _overwritten(optimizer, state, zeros, name, dtype):
            raise ValueError(
                f"Study: hparams[{name!r}] is overwritten at every step by the optimizer's own"
                f" schedule for {name!r}, so every member would train on that schedule whatever"
                " its grid value; pass the optimizer with a number for it, e.g."
                f" optax.inject_hyperparams(optax.sgd)({name}=0.1), or a factory (optax.sgd),"
                " and put the schedule's values in the grid"
            )


def _overwritten(optimizer: Any, state: Any, params: Any, name: str, dtype: np.dtype) -> bool:
    """Whether the value written into ``state.hyperparams[name]`` is replaced by the update
    (optax.inject_hyperparams recomputes a schedule's value from the step count)."""
    grads = jax.tree.map(jnp.ones_like, params)
    after = []
    for value in (1, 2):
        hp = dict(state.hyperparams)
        hp[name] = jnp.asarray(value, dtype)
        with _promotion():
            _, new = optimizer.update(grads, state._replace(hyperparams=hp), params)
        after.append(np.asarray(new.hyperparams[name]).item())
    return after[0] == after[1]


# --------------------------------------------------------------------------- resume


def _hex(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        for leaf in jax.tree.leaves(part):
            h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()[:16]


def schedule_fingerprint(optimizer: Any, params: Any, opt_state: Any, steps: int) -> str:
    """A fingerprint of the optimizer's updates over ``steps`` steps: from one member's
    ``opt_state`` (its hyperparameters included) and zero ``params`` of the member's shapes,
    ``steps`` updates for a fixed gradient (ones), each step's updates summed to a number;
    the hash of those numbers.

    Any learning-rate schedule enters the update of its step, so a schedule changed at any
    step within the study (a ``piecewise_constant_schedule`` boundary, a staircase
    ``exponential_decay``, ``warmup_cosine_decay_schedule``'s ``decay_steps``) changes the
    fingerprint, where a probe of a few updates sees only the first steps. The cost is one
    elementwise update of one member per step, no forward or backward pass.
    """
    if steps < 1:
        return _hex(np.zeros(0))
    try:
        program = _updates_program(optimizer, steps)
    except TypeError:  # an unhashable optimizer: not cached
        program = _updates_program.__wrapped__(optimizer, steps)
    return _hex(program(params, opt_state))


@functools.lru_cache(maxsize=16)
def _updates_program(optimizer: Any, steps: int) -> Callable:
    """jit((params, opt_state) -> each step's summed updates), cached per optimizer."""

    def run(params, opt_state):
        # zero parameters (weight decay then adds nothing) and a gradient of ones: the
        # updates depend on the optimizer and its state alone, not on the member's draw
        params = jax.tree.map(jnp.zeros_like, params)
        grads = jax.tree.map(jnp.ones_like, params)

        def step(carry, _):
            p, s = carry
            with _promotion():
                updates, s = optimizer.update(grads, s, p)
                total = sum(
                    (jnp.sum(u.astype(jnp.float32)) for u in jax.tree.leaves(updates)),
                    jnp.float32(0),
                )
            return (p, s), total

        return jax.lax.scan(step, (params, opt_state), None, length=steps)[1]

    return jax.jit(run)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")


def model_fingerprint(description: str) -> str:
    """A model's description (``repr`` of a linen module, an nnx graphdef) without memory
    addresses: a ``functools.partial`` or a function in a field prints ``<function f at
    0x7f...>``, different in every process, which would read as "model changed" on every
    resume. (What the model computes is compared by its output on a few examples.)"""
    return _ADDRESS.sub("", description)


# --------------------------------------------------------------------------- checkpoints


def check_bookkeeping(
    path: str,
    done: Any,
    records: Sequence[np.ndarray],
    *,
    steps: int,
    eval_every: int,
    log_every: int,
    members: range,
) -> None:
    """Refuse a checkpoint whose steps done and records do not fit the study.

    ``done`` must be a chunk boundary of the study (a multiple of ``eval_every``, or
    ``steps``); the records ``(member, step, metric, value)`` rows of exactly ``members``,
    with steps up to ``done`` (the last one ``done``), every training log step up to
    ``done``, every member with the same (step, metric) rows, none twice.
    """
    what = (
        f"run_study: {path} is damaged or was edited ({{}}); delete it to train this member"
        " batch again (the other checkpoints are kept)"
    )
    boundaries = sorted({min(b, steps) for b in range(eval_every, steps + eval_every, eval_every)})
    d = np.asarray(done)
    if d.shape != () or d.dtype.kind not in "iu" or int(d) not in boundaries:
        raise ValueError(
            what.format(
                f"it says {done!r} steps were done; a checkpoint is written after"
                f" {boundaries[:3]}{' ...' if len(boundaries) > 3 else ''} of {steps}"
            )
        )
    done = int(d)
    rows = (
        np.concatenate([np.asarray(r, np.float64).reshape(-1, 4) for r in records])
        if records
        else np.zeros((0, 4))
    )
    if not len(rows):
        raise ValueError(what.format(f"it says {done} steps were done but holds no records"))
    keys = rows[:, :3]
    if not np.isfinite(keys).all() or (keys != np.round(keys)).any():
        raise ValueError(what.format("its records' member, step or metric is not an integer"))
    member, step = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
    have = set(np.unique(member).tolist())
    if have != set(members):
        raise ValueError(
            what.format(
                f"its records are of members {sorted(have)[:8]}, not {members.start} to"
                f" {members.stop - 1}"
            )
        )
    if step.min() < 0 or step.max() != done:
        raise ValueError(
            what.format(
                f"its records run from step {step.min()} to {step.max()} but it says {done}"
                " steps were done"
            )
        )
    logs, start = set(), 0
    while start < done:
        n = min(eval_every, steps - start)
        logs |= {start + log_every * j for j in range(1, n // log_every + 1)}
        start += n
    missing = sorted(logs - set(step.tolist()))
    if missing:
        raise ValueError(what.format(f"its records lack the training logs of steps {missing[:5]}"))
    triples = {tuple(r) for r in keys.astype(np.int64).tolist()}
    if len(triples) != len(rows):
        raise ValueError(what.format("its records hold some (member, step, metric) twice"))
    per_member = len(rows) / len(have)
    if per_member != int(per_member) or any(int((member == m).sum()) != per_member for m in have):
        raise ValueError(what.format("its members have different numbers of records"))


def read_checkpoint(path: str, load: Callable[..., Any], *args: Any) -> Any:
    """``load(*args)``, with a damaged file's library errors (a truncated zip, a missing or
    misshapen array) answered by a ValueError that names ``path`` and what to do."""
    try:
        if os.path.exists(path):  # the archive itself first: np.load leaks a torn file's handle
            with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
                archive.namelist()
        return load(*args)
    except (zipfile.BadZipFile, EOFError, KeyError, IndexError, OSError, TypeError) as e:
        raise ValueError(
            f"run_study: {path} is damaged ({type(e).__name__}: {e}); delete it to train this"
            " member batch again (the other checkpoints are kept)"
        ) from e
    except ValueError as e:
        if str(e).startswith("run_study:"):
            raise
        raise ValueError(
            f"run_study: {path} is damaged ({e}); delete it to train this member batch again"
            " (the other checkpoints are kept)"
        ) from e
