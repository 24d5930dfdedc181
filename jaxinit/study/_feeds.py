"""The engine's feeds: one interface for the training data, wherever it lives.

A feed gives the training program its data and evaluates the members at step 0 and after
every chunk. :class:`_MemoryFeed` holds a :class:`jaxinit.Dataset` on the device (the
program draws every minibatch in-graph and evaluates inside the same program);
:class:`jaxinit.HostData` is fed by ``_feed._Feed`` (the chunk's minibatches assembled on
the host, evaluation read from the host). :func:`_make_feed` picks one; the engine's loop
then calls the same methods on either:

- ``eval_sets()``: the evaluation sets' prefixes and sizes (``test``, ``val``);
- ``sample``, ``fingerprint()``: a few training examples and what identifies the data;
- ``programs(make, state, chunks, sharding)``: the chunk programs per chunk length, for a
  member batch's (abstract) initial state;
- ``compiled(program, state, seeds, n, sharding)``: one chunk program compiled ahead (a
  future), for its memory analysis;
- ``begin(seeds, done)``: before a member batch's first chunk;
- ``run_chunk(programs, model, objective, state, seeds, done, n)`` -> ``(state, metrics,
  values at step 0 or None, values after the chunk)``;
- ``info()``, ``close()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

from jaxinit.study._datasets import _split_validation
from jaxinit.study._feed import HostData, _Feed
from jaxinit.study._io import _checksum, _fetch, _put
from jaxinit.study._population import _data_keys
from jaxinit.study._program import _compile_ahead


class _MemoryFeed:
    """A :class:`jaxinit.Dataset` on the device(s): the programs draw minibatches in-graph
    (``fed=False``) and evaluate the chunk's first state (first chunk only) and its last
    inside the same program: one program and one transfer per chunk."""

    fed = False

    def __init__(self, study: Any, replicated: NamedSharding | None) -> None:
        d = study.dataset
        self.data = d
        train, val = _split_validation(len(d.x_train), study.validation)
        arrays = (d.x_train[train], d.y_train[train], d.x_test, d.y_test, d.x_train[val],
                  d.y_train[val])  # fmt: skip
        host = tuple(np.asarray(a) for a in arrays)  # placed from the host: nothing compiled
        placed = host if replicated is None else _put(host, replicated)
        x_train, y_train, x_test, y_test, x_val, y_val = (jnp.asarray(a) for a in placed)
        self.x_train, self.y_train = x_train, y_train
        self.sets = [("test", x_test, y_test)] + ([("val", x_val, y_val)] if len(val) else [])
        self.evals = tuple((x, y) for _, x, y in self.sets)
        self.sample = (x_train, y_train)

    def eval_sets(self) -> list[tuple[str, int]]:
        return [(prefix, len(x)) for prefix, x, _ in self.sets]

    def fingerprint(self) -> list:
        d = self.data
        return [d.name, _checksum((d.x_train, d.y_train, d.x_test, d.y_test))]

    def programs(self, make: Callable, state: Any, chunks: list,
                 sharding: NamedSharding | None) -> dict:  # fmt: skip
        """The training programs compile (on a worker thread) while the initial state
        does."""
        return {n: self.compiled(make(n), state, (), n, sharding) for n in chunks}

    def compiled(self, program: Callable, state: Any, seeds: Sequence[int], n: int,
                 sharding: NamedSharding | None) -> Any:  # fmt: skip
        """``program`` (a chunk of ``n`` steps) compiled for the abstract ``state``, as a
        future (:func:`_compile_ahead`: the very future ``programs`` gives)."""
        return _compile_ahead(
            program, state, self.x_train, self.y_train, self.evals, np.bool_(True)
        )

    def begin(self, seeds: Sequence[int], done: int) -> None:
        return None

    def run_chunk(self, programs, model, objective, state, seeds, done: int, n: int) -> tuple:
        program = programs[n].result()
        state, metrics, values = program(state, self.x_train, self.y_train, self.evals, done == 0)
        values = _fetch(values)
        return state, metrics, (values[:, 0] if done == 0 else None), values[:, 1]

    def info(self) -> dict:
        return {}

    def close(self) -> None:
        return None


class _HostFeed:
    """A :class:`jaxinit.HostData`: each chunk's minibatches assembled on the host (the next
    chunk's in a background thread while the device trains), evaluation sets read from
    the host; ``fed=True`` programs take the batches and per-member offsets."""

    fed = True

    def __init__(self, study: Any, key: jax.Array, devices: list, sharding, replicated,
                 options: tuple) -> None:  # fmt: skip
        d: HostData = study.dataset
        self.data = d
        self.steps = study.steps
        self.eval_every = study.eval_every or study.steps
        train, val = _split_validation(d.train_size or 0, study.validation)
        target = devices[0] if replicated is None else replicated
        data_keys = _data_keys(key, study.seeds, bool(study.fixed_data_order))
        self.feed = _Feed(study, data_keys, target, sharding, train, val, options)
        self.feed.check(study)
        self.sample = tuple(jnp.asarray(a) for a in d._sample())

    def eval_sets(self) -> list[tuple[str, int]]:
        return self.feed.eval_sets()

    def fingerprint(self) -> list:
        return self.data._fingerprint()

    def programs(self, make: Callable, state: Any, chunks: list,
                 sharding: NamedSharding | None) -> dict:  # fmt: skip
        return {n: make(n) for n in chunks}

    def compiled(self, program: Callable, state: Any, seeds: Sequence[int], n: int,
                 sharding: NamedSharding | None) -> Any:  # fmt: skip
        """``program`` (a chunk of ``n`` steps) compiled, as a future, for the abstract
        ``state`` and the shapes of the chunk's batches for the members' ``seeds`` (the
        jitted program's later call finds it in jax's cache)."""
        rows = len(self.feed.streams(list(seeds))) * n * self.feed.batch_size
        # where ``take`` puts them: committed to the device, or replicated on the mesh
        target = self.feed.target
        place = SingleDeviceSharding(target) if isinstance(target, jax.Device) else target
        xy = [
            jax.ShapeDtypeStruct((rows, *a.shape[1:]), a.dtype, sharding=place) for a in self.sample
        ]
        offset = jax.ShapeDtypeStruct((len(seeds),), np.int32, sharding=sharding)
        return _compile_ahead(program, state, *xy, offset)

    def begin(self, seeds: Sequence[int], done: int) -> None:
        if done < self.steps:
            self.feed.request(seeds, done, min(self.eval_every, self.steps - done))

    def values(self, model, objective, state) -> np.ndarray:
        """Evaluation values with the evaluation sets read from the host."""
        parts = [self.feed.evaluate(model, objective, state, p, int(n))
                 for p, n in self.eval_sets()]  # fmt: skip
        return np.concatenate(parts, axis=1)

    def run_chunk(self, programs, model, objective, state, seeds, done: int, n: int) -> tuple:
        start = self.values(model, objective, state) if done == 0 else None
        inputs = self.feed.take(seeds, done, n)  # the next chunk's are assembled meanwhile
        if done + n < self.steps:
            self.feed.request(seeds, done + n, min(self.eval_every, self.steps - done - n))
        state, metrics = programs[n](state, *inputs)
        return state, metrics, start, self.values(model, objective, state)

    def info(self) -> dict:
        return {"host_data": dict(self.feed.stats)}

    def close(self) -> None:
        self.feed.close()


def abstract_state(init: Callable, args: tuple, sharding: NamedSharding | None) -> Any:
    """The shapes of ``init(*args)`` (nothing computed), with the member sharding."""
    abstract = jax.eval_shape(init, *args)
    if sharding is None:
        return abstract
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract
    )


def _make_feed(study: Any, key: jax.Array, devices: list, sharding: NamedSharding | None,
               options: tuple) -> _MemoryFeed | _HostFeed:  # fmt: skip
    """The study's feed: its data on the device, or kept on the host (checked here, before
    anything is compiled)."""
    replicated = None if sharding is None else NamedSharding(sharding.mesh, P())
    if isinstance(study.dataset, HostData):
        return _HostFeed(study, key, devices, sharding, replicated, options)
    return _MemoryFeed(study, replicated)
