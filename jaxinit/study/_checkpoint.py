"""Checkpoints and resume: the study's fingerprint by value (config, every init spec,
model code, optimizer), and atomic ``checkpoint-<group>.npz`` files."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinit.study._adapters import _Model
from jaxinit.study._io import _atomic_write, _checksum, _fetch, _from_numpy, _to_numpy
from jaxinit.study._program import (
    _EVAL_KEY,
    MemberState,
    _Objective,
    _objective_value,
    _optax_promotion,
)


@functools.lru_cache(maxsize=32)
def _probe_program(
    model: _Model, optimizer: optax.GradientTransformation, objective: _Objective
) -> Callable:
    """jit(one member's state, a few examples -> (model output and objective, three
    optimizer updates)).

    The output and the objective on a few training examples stand for the model's and the
    loss_fn's code; three updates for different gradients stand for the optimizer (a first
    SGD step cannot tell momentum 0.9 from 0; the second can), its hyperparameters and state.
    """

    def probe(params, opt_state, mstate, noise_key, x, y):
        key = jax.random.fold_in(noise_key, _EVAL_KEY)
        _, (values, _) = _objective_value(model, objective, params, mstate, x, y, key, False)
        out = (model.apply(params, x, mstate), values)
        ups = []
        with _optax_promotion():
            for t in range(3):
                grads = jax.tree.map(lambda p, t=t: jnp.cos((t + 1.0) * p + t), params)
                updates, opt_state = optimizer.update(grads, opt_state, params)
                params = optax.apply_updates(params, updates)
                ups.append(updates)
        return out, ups

    return jax.jit(probe)


def _state_fingerprint(
    model: _Model,
    optimizer: Any,
    objective: _Objective,
    state: MemberState,
    batch: list,
    data: tuple,
) -> dict:
    """What a member batch's initial state depends on, by value: every init spec (the
    checksum of its members' initial parameters), the model's code (its output for member
    0) and the optimizer (its updates for member 0)."""
    params = jax.tree.map(_fetch, state.params)
    inits = {}
    for name in dict.fromkeys(m[0] for m in batch):
        rows = np.asarray([i for i, m in enumerate(batch) if m[0] == name])
        inits[name] = _checksum(jax.tree.map(lambda a, rows=rows: a[rows], params))
    first = jax.tree.map(
        lambda a: a[0], (state.params, state.opt_state, state.model_state, state.noise_key)
    )
    x, y = data
    out, updates = _probe_program(model, optimizer, objective)(*first, x[:8], y[:8])
    return {
        "inits": inits,
        "model_output": _checksum(out),
        "optimizer": [_checksum(updates), str(jax.tree.structure(state.opt_state))],
    }


class _Checkpoint:
    """``checkpoint-<group>.npz``: member state, steps done and records, plus the study's
    fingerprint; written atomically so a kill never leaves a torn file. Only the batch's
    real members are saved, so a study resumes on any device count (padding is redone)."""

    def __init__(self, out_dir: str, group: int, fingerprint: dict, writer: bool = True):
        self.path = os.path.join(out_dir, f"checkpoint-{group}.npz")
        self.fingerprint = fingerprint
        self.writer = writer

    def save(self, state: MemberState, done: int, records: list[np.ndarray], n: int) -> None:
        leaves = [_to_numpy(a)[:n] for a in jax.tree.leaves(state)]
        if not self.writer:
            return
        arrays = {f"leaf_{i}": a for i, a in enumerate(leaves)}
        arrays["records"] = np.concatenate(records)
        arrays["done"] = np.asarray(done)
        text = json.dumps(self.fingerprint, sort_keys=True)
        arrays["fingerprint"] = np.frombuffer(text.encode(), np.uint8)
        import io

        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub: **kw may reach allow_pickle
        _atomic_write(self.path, buf.getvalue())

    def load(self, like: MemberState, n: int) -> tuple[MemberState, int, list[np.ndarray]] | None:
        if not os.path.exists(self.path):
            return None
        with np.load(self.path) as z:
            try:
                saved = json.loads(z["fingerprint"].tobytes().decode())
            except ValueError:
                saved = {}
            changed = _changed(saved, self.fingerprint)
            if changed:
                raise ValueError(
                    f"run_study: {self.path} belongs to a different study ({', '.join(changed)}"
                    " changed); use another out_dir or delete it"
                )
            treedef = jax.tree.structure(like)
            template = jax.tree.leaves(like)
            leaves = []
            for i, t in enumerate(template):
                a = z[f"leaf_{i}"]
                if a.shape[0] != n:
                    raise ValueError(f"run_study: {self.path} holds {a.shape[0]} members, not {n}")
                # pad to this run's member count with copies of member 0, as a fresh batch is
                pad = np.broadcast_to(a[:1], (t.shape[0] - n, *a.shape[1:]))
                leaves.append(_from_numpy(np.concatenate([a, pad]), t))
            return jax.tree.unflatten(treedef, leaves), int(z["done"]), [z["records"]]


def _changed(saved: dict, now: dict) -> list[str]:
    """The fingerprint components that differ, e.g. ``["optimizer", "inits['glorot']"]``
    (an architecture sweep's batch names its architecture: ``"model['w256']"``)."""
    out = []
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k), now.get(k)
        if isinstance(a, dict) and isinstance(b, dict) and k in ("inits", "model"):
            out += [f"{k}[{n!r}]" for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]
        elif a != b:
            out.append(k)
    return out
