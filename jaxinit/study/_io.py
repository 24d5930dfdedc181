"""Host side: atomic files, checksums, and moving member arrays between the host and
devices (also when the mesh spans several processes)."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding


def _atomic_write(path: str | os.PathLike, data: bytes) -> None:
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _checksum(tree: Any) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()[:16]


def _put(tree: Any, sharding: NamedSharding) -> Any:
    """``jax.device_put(tree, sharding)`` through host copies, also for a mesh spanning
    several processes: every process holds the same host values and places the shards on
    its own devices. (Putting a device array onto another sharding compiles a slicing
    program per shape, ~30 ms each on the CPU; host copies of a member batch's state are
    cheaper.)"""

    leaves, treedef = jax.tree.flatten(tree)
    hosts = [_to_numpy(x) for x in leaves]
    if jax.process_count() == 1:
        arrays = jax.device_put(hosts, sharding)  # one batched transfer
    else:
        arrays = [
            jax.make_array_from_callback(h.shape, sharding, functools.partial(_index, h))
            for h in hosts
        ]
    out = [
        jax.random.wrap_key_data(a, impl=jax.random.key_impl(x))
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        else a
        for x, a in zip(leaves, arrays, strict=True)
    ]
    return jax.tree.unflatten(treedef, out)


def _fetch(x: jax.Array) -> np.ndarray:
    """A host copy of ``x``, also when it spans devices of other processes."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _to_numpy(x: jax.Array | np.ndarray) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return _fetch(jax.random.key_data(x))
    return _fetch(x)


def _from_numpy(a: np.ndarray, like: jax.Array) -> jax.Array:
    if jax.dtypes.issubdtype(like.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(jnp.asarray(a), impl=jax.random.key_impl(like))
    return jnp.asarray(a, like.dtype)


def _index(host: np.ndarray, idx: Any) -> np.ndarray:
    """``host[idx]``: one process's shard, for ``jax.make_array_from_callback``."""
    return host[idx]


def json_safe(x: Any) -> Any:
    """``x`` as plain JSON values: numpy scalars and arrays as Python numbers and lists,
    infinities and NaN as ``None`` (JSON has neither; e.g. a target never reached), dicts,
    lists and tuples converted throughout. What ``jaxinit compare`` and the experiments
    write with ``json.dump(..., allow_nan=False)``.

    >>> jaxinit.study.json_safe({"steps": float("inf"), "loss": np.float32(0.5), "n": (np.int64(3),)})
    {'steps': None, 'loss': 0.5, 'n': [3]}
    """
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, float | np.floating):
        return float(x) if np.isfinite(x) else None
    return x.item() if isinstance(x, np.generic) else x
