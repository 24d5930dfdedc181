"""Checkpoints and resume: the study's fingerprint by value (config, every init spec,
model code, optimizer), and orbax-checkpoint folders ``checkpoint-<group>/`` written by
every process (its own shards), atomically and in the background."""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinit.study._adapters import _Model
from jaxinit.study._io import _checksum, _fetch, _index
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
    """``checkpoint-<group>/``: an orbax-checkpoint directory holding one step (the steps
    ``done``) with three items: ``state`` (the member-sharded :class:`MemberState`, each
    process writing its own shards), ``meta`` (JSON: format, fingerprint, steps done, the
    member count, the saved leaves' layout and a digest of every real member's state) and
    ``records`` (the tidy rows so far, float64). No pickle anywhere.

    A save is atomic (orbax writes ``<step>.orbax-checkpoint-tmp-*`` and renames it when
    every process has finished; the previous step is deleted only then) and asynchronous:
    :meth:`save` returns once the state is copied to the host, the next chunk runs while the
    files are written, and the next :meth:`save` or :meth:`close` waits for it.

    The member axis is saved as trained, padding included (no slicing program, no gather);
    a restore onto another device count reads it truncated or zero-padded to this run's
    padded count (orbax's ``global_shape``), each process reading only its own shards, and
    then refills the padding rows with copies of member 0, as a fresh batch is padded.
    Legacy ``checkpoint-<group>.npz`` files (jaxinit < orbax) are read without pickle and
    replaced by the orbax checkpoint at the next save.
    """

    def __init__(self, out_dir: str, group: int, fingerprint: dict, writer: bool = True):
        self.path = os.path.join(os.path.abspath(out_dir), f"checkpoint-{group}")
        self.legacy = self.path + ".npz"
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True))
        self.writer = writer  # the process that removes a legacy file once replaced
        self._manager: Any = None
        self.source = self.path  # what the last load read: a step folder or a legacy file

    # Part 1: saving

    def _open(self) -> Any:
        if self._manager is None:
            _wait_pending(self.path)
            ocp = _orbax()
            options = ocp.CheckpointManagerOptions(
                max_to_keep=1,
                enable_async_checkpointing=True,
                create=True,
                cleanup_tmp_directories=True,  # a save killed midway: its tmp folder
            )
            self._manager = ocp.CheckpointManager(
                self.path, options=options, item_names=("state", "meta", "records")
            )
            if not _PENDING:
                atexit.register(_wait_all)  # idempotent: _wait_all empties the registry
            _PENDING[self.path] = self._manager
        return self._manager

    def save(self, state: MemberState, done: int, records: list[np.ndarray], n: int) -> None:
        ocp = _orbax()
        leaves = [_raw(a) for a in jax.tree.leaves(state)]
        meta = {
            "format": _FORMAT,
            "fingerprint": self.fingerprint,
            "done": int(done),
            "members": int(n),
            "padded": int(leaves[0].shape[0]),
            "leaves": _layout(jax.tree.leaves(state)),
            "digests": _gather_digests(_local_digests(leaves, n), n),
        }
        manager = self._open()
        manager.wait_until_finished()  # the previous save is complete before this one
        self._drop_legacy()
        manager.save(
            int(done),
            args=ocp.args.Composite(
                state=ocp.args.PyTreeSave({f"leaf_{i}": a for i, a in enumerate(leaves)}),
                meta=ocp.args.JsonSave(meta),
                records=ocp.args.StandardSave({"rows": np.concatenate(records)}),
            ),
            force=True,
        )

    def close(self) -> None:
        """Waits until the last save is complete (call before the process may exit)."""
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._drop_legacy()
            self._manager.close()
            _PENDING.pop(self.path, None)
            self._manager = None

    def _drop_legacy(self) -> None:
        """The legacy npz, once an orbax checkpoint of this group is complete."""
        if self.writer and os.path.exists(self.legacy) and self._manager.latest_step() is not None:
            os.remove(self.legacy)

    # Part 2: loading

    def load(self, like: MemberState, n: int) -> tuple[MemberState, int, list[np.ndarray]] | None:
        """The saved state placed like ``like`` (this run's padded member count and
        sharding), its steps done and records; None without a checkpoint."""
        manager = self._open()
        step = manager.latest_step()
        if step is None:
            if not os.path.exists(self.legacy):
                return None
            self.source = self.legacy
            return self._load_legacy(like, n)
        ocp = _orbax()
        where = self.source = os.path.join(self.path, str(step))
        try:
            meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
                "meta"
            ]
        except Exception as e:  # any unreadable file is refused the same way
            raise ValueError(_unreadable(where, e)) from e
        template = jax.tree.leaves(like)
        self._check(meta, where, template, n)
        raw = [_raw(t) for t in template]
        restore_args = {
            f"leaf_{i}": ocp.ArrayRestoreArgs(
                sharding=t.sharding, global_shape=t.shape, dtype=t.dtype, strict=False
            )
            for i, t in enumerate(raw)
        }
        try:
            got = manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.PyTreeRestore(restore_args=restore_args),
                    records=ocp.args.StandardRestore(),
                ),
            )
        except Exception as e:
            raise ValueError(_unreadable(where, e)) from e
        leaves = [got["state"][f"leaf_{i}"] for i in range(len(template))]
        local = _local_digests(leaves, n)
        if _any_process(any(meta["digests"][r] != d for r, d in local.items())):
            raise ValueError(
                f"run_study: {where} is damaged (a shard's values differ from those saved):"
                f" delete {self.path} to start this member batch again"
            )
        if meta["padded"] != template[0].shape[0]:  # another device count: redo the padding
            leaves = _repad(leaves, n, [t.sharding for t in raw])
        state = jax.tree.unflatten(jax.tree.structure(like), _wrap(leaves, template))
        return state, int(meta["done"]), [np.asarray(got["records"]["rows"], np.float64)]

    def _check(self, meta: Any, where: str, template: list, n: int) -> None:
        """Refuses a checkpoint of another format, study or state layout."""
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise ValueError(
                f"run_study: {where} was written in another checkpoint format ({found!r}; this"
                f" jaxinit reads {_FORMAT!r}); resume with the jaxinit that wrote it, or delete"
                f" {self.path} to start this member batch again"
            )
        changed = _changed(meta.get("fingerprint", {}), self.fingerprint)
        if changed:
            raise ValueError(
                f"run_study: {where} belongs to a different study ({', '.join(changed)}"
                f" changed); use another out_dir or delete {self.path}"
            )
        digests, padded = meta.get("digests"), meta.get("padded")
        if (
            meta.get("members") != n
            or meta.get("leaves") != _layout(template)
            or not (isinstance(digests, list) and len(digests) == n)
            or not (isinstance(padded, int) and padded >= n)
            or not isinstance(meta.get("done"), int)
        ):
            raise ValueError(
                f"run_study: {where} holds another state layout ({meta.get('members')} members,"
                f" leaves {meta.get('leaves')}; this run has {n} members, leaves"
                f" {_layout(template)}); it was written by another jaxinit version: resume"
                f" with that version, or delete {self.path} to start this member batch again"
            )

    def _load_legacy(
        self, like: MemberState, n: int
    ) -> tuple[MemberState, int, list[np.ndarray]] | None:
        """A ``checkpoint-<group>.npz`` of jaxinit before orbax: the real members' leaves,
        ``done``, ``records`` and the fingerprint as JSON bytes; read without pickle."""
        template = jax.tree.leaves(like)
        try:
            with open(self.legacy, "rb") as f, np.load(f, allow_pickle=False) as z:
                saved = json.loads(z["fingerprint"].tobytes().decode())
                changed = _changed(saved, self.fingerprint)
                if changed:
                    raise ValueError(
                        f"run_study: {self.legacy} belongs to a different study"
                        f" ({', '.join(changed)} changed); use another out_dir or delete it"
                    )
                hosts = [z[f"leaf_{i}"] for i in range(len(template))]
                done, records = int(z["done"]), np.asarray(z["records"], np.float64)
        except ValueError:
            raise
        except Exception as e:  # a torn or foreign npz is refused the same way
            raise ValueError(_unreadable(self.legacy, e, self.legacy)) from e
        raw = [_raw(t) for t in template]
        leaves = []
        for h, t in zip(hosts, raw, strict=True):
            if h.shape[0] != n or h.shape[1:] != t.shape[1:]:
                raise ValueError(
                    f"run_study: {self.legacy} holds leaves of shape {h.shape}, not ({n},"
                    f" {', '.join(map(str, t.shape[1:]))}); delete it to start this member"
                    " batch again"
                )
            # pad to this run's member count with copies of member 0, as a fresh batch is
            pad = np.broadcast_to(h[:1], (t.shape[0] - n, *h.shape[1:]))
            full = np.concatenate([h, pad]).astype(t.dtype)
            leaves.append(
                jax.make_array_from_callback(
                    full.shape, t.sharding, functools.partial(_index, full)
                )
            )
        state = jax.tree.unflatten(jax.tree.structure(like), _wrap(leaves, template))
        return state, done, [records]


# Part 3: the pieces


_FORMAT = "jaxinit.study checkpoint 2 (orbax)"
_PENDING: dict[str, Any] = {}  # checkpoint folder -> its manager with a save in flight


def _orbax() -> Any:
    import orbax.checkpoint as ocp  # imported on the first checkpoint: ~1 s

    return ocp


def _wait_pending(path: str) -> None:
    """A save of this folder still in flight in this process (a study interrupted by an
    exception, run again) completes before the folder is read or written again."""
    if (manager := _PENDING.pop(path, None)) is not None:
        manager.wait_until_finished()
        manager.close()


def _wait_all() -> None:
    """Every save still in flight completes: at interpreter exit (a study interrupted by
    Ctrl-C keeps the chunk it was saving), before jax.distributed shuts down (registered
    later, it runs earlier)."""
    for path in list(_PENDING):
        _wait_pending(path)


def _is_key(a: Any) -> bool:
    return jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)


def _raw(a: jax.Array) -> jax.Array:
    """``a``, a typed key array as its key data (what orbax writes)."""
    return jax.random.key_data(a) if _is_key(a) else a


def _wrap(leaves: list, template: list) -> list:
    return [
        jax.random.wrap_key_data(a, impl=jax.random.key_impl(t)) if _is_key(t) else a
        for a, t in zip(leaves, template, strict=True)
    ]


def _layout(leaves: list) -> list:
    """Every leaf's dtype and shape past the member axis (JSON values)."""
    return [[str(a.dtype), list(a.shape[1:])] for a in leaves]


def _local_digests(leaves: list, n: int) -> dict[int, str]:
    """A digest of each real member's state (every leaf's row) that this process holds."""
    rows: dict[int, Any] = {}
    for a in leaves:
        seen = set()
        for shard in a.addressable_shards:
            start = (shard.index[0].start or 0) if shard.index else 0
            if start in seen:
                continue  # a replica
            seen.add(start)
            data = np.asarray(shard.data)
            for j in range(min(len(data), n - start)):
                h = rows.setdefault(start + j, hashlib.blake2b(digest_size=8))
                h.update(np.ascontiguousarray(data[j]).tobytes())
    return {r: h.hexdigest() for r, h in rows.items()}


def _gather_digests(local: dict[int, str], n: int) -> list[str]:
    """Every real member's digest, from the processes that hold them."""
    if jax.process_count() == 1:
        return [local[r] for r in range(n)]
    from jax.experimental import multihost_utils

    table = np.zeros((n, 8), np.uint8)
    for r, d in local.items():
        table[r] = np.frombuffer(bytes.fromhex(d), np.uint8)
    every = np.asarray(multihost_utils.process_allgather(table))  # (processes, n, 8): small
    merged = np.bitwise_or.reduce(every, axis=0)
    return [merged[r].tobytes().hex() for r in range(n)]


def _any_process(flag: bool) -> bool:
    """Whether ``flag`` holds on any process (all processes raise together)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.asarray(multihost_utils.process_allgather(np.int32(flag))).any())


def _repad(leaves: list, n: int, shardings: list) -> list:
    """The rows past the ``n`` real members set to member 0's (read zero-padded or
    truncated from a checkpoint of another device count), in one program."""

    def fix(xs: list) -> list:
        out = []
        for a in xs:
            keep = (jnp.arange(a.shape[0]) < n).reshape((-1,) + (1,) * (a.ndim - 1))
            out.append(jnp.where(keep, a, a[:1]))
        return out

    return jax.jit(fix, out_shardings=shardings)(leaves)


def _unreadable(where: str, e: Exception, target: str | None = None) -> str:
    first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return (
        f"run_study: cannot read the checkpoint {where} ({type(e).__name__}: {first}); it is"
        f" truncated, damaged or not a jaxinit checkpoint: delete {target or where.rsplit(os.sep, 1)[0]}"
        " to start this member batch again"
    )


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
