"""Training data that stays on the host: :class:`HostData` and the engine's chunk feed.

The device never holds the training set. Before each chunk of ``eval_every`` steps the
engine assembles, on the host, the minibatches of every *data stream* in the member batch
(one stream per seed, shared by every initializer and hyperparameter value of that seed: the
comparison stays paired) as one array of shape ``(streams, steps, batch, ...)``, puts it on
the device and runs the chunk over it. The next chunk is assembled in a background thread
while the device trains on the current one.

A stream is a pure function of (seed, step), so a study resumed from a checkpoint continues
each stream where it stopped. With a random-access ``train`` source the engine draws the
indices exactly as the in-memory engine does (``randint(fold_in(data_key, step))``, with
replacement), so a host-fed study trains on the same examples as the same study on a
:class:`jaxinit.Dataset` holding the same arrays.
"""

from __future__ import annotations

import concurrent.futures
import functools
import numbers
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit.study._datasets import _check_split
from jaxinit.study._io import _checksum, _fetch, _put
from jaxinit.study._program import _eval_program

_FN = "HostData"


class HostData:
    """Training data that does not fit on the device: kept on the host, fed chunk by chunk.

    Give either ``train``, a random-access training set from which the engine draws each
    seed's minibatches (the same indices as the in-memory engine), or ``batches``, a
    function ``batches(seed, step) -> (x, y)`` returning seed ``seed``'s minibatch for
    ``step``. Either way every member of one seed (every initializer, every hyperparameter
    value) trains on the same batches, and the stream is a pure function of (seed, step),
    so a resumed study continues it exactly.

    Args:
      name: the dataset's name (in errors and the resume fingerprint).
      train: ``(x, y)``, two host arrays indexed by an integer array (numpy arrays,
        ``np.memmap`` / ``np.load(..., mmap_mode="r")`` for data on disk), or a map-style
        source: ``len(source)`` and ``source[i] -> (x_i, y_i)`` (a ``grain.MapDataset``, a
        torch map-style dataset), read one example at a time, or a chunk's examples in
        one call where the source has ``__getitems__(indices)`` (as torch's ``Subset`` and
        Hugging Face datasets do).
      test: ``(x_test, y_test)`` host arrays, evaluated every ``eval_every`` steps (in
        batches of ``eval_batch_size`` read from the host, or resident on the device when
        ``eval_batch_size`` is None).
      num_classes: number of classes (labels are ints in ``[0, num_classes)``), or 0 for
        regression.
      batches: instead of ``train``, ``batches(seed, step) -> (x, y)`` with ``x`` of shape
        ``(batch_size, *example_shape)``; it must return the same arrays every time it is
        called with the same arguments (it is called again after a resume). ``seed`` is
        the study's seed index (0 for every seed with ``Study(fixed_data_order=True)``); the
        ``key`` of :func:`jaxinit.run_study` does not change this stream.
      eval_batch_size: examples per evaluation batch read from the host; None keeps the
        test (and validation) set on the device, as :class:`jaxinit.Dataset` does.

    Checked before any training: shapes and dtypes of the test set and of the first
    batch, a ``batches`` function that returns different arrays for the same (seed,
    step), or that has no batch for a seed's last step. Each chunk is checked as it is
    read: every ``batches`` result's shape and dtype (an error names the seed and step),
    finite inputs and labels in range (an error names the chunk's steps).

    Example:
      >>> import numpy as np, optax, jaxinit
      >>> d = jaxinit.digits()
      >>> data = jaxinit.HostData("digits", train=(d.x_train, d.y_train),
      ...                         test=(d.x_test, d.y_test), num_classes=10)
      >>> study = jaxinit.Study(jaxinit.MLP((16, 10)), data, optax.sgd(0.1),
      ...                       inits={"he": "he_normal"}, seeds=2, steps=20, log_every=10)
      >>> result = jaxinit.run_study(study, progress=False)
      >>> result.info["host_data"]["streams"]
      2
    """

    name: str
    num_classes: int
    x_test: Any
    y_test: Any
    batches: Callable[[int, int], tuple[Any, Any]] | None
    eval_batch_size: int | None
    arrays: tuple[Any, Any] | None  # (x, y) for an array source
    source: Any  # a map-style source

    def __init__(
        self,
        name: str,
        train: Any = None,
        test: Any = None,
        num_classes: int = 0,
        *,
        batches: Callable[[int, int], tuple[Any, Any]] | None = None,
        eval_batch_size: int | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{_FN}: name must be a str, got {name!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
            raise TypeError(f"{_FN} {name!r}: num_classes must be an int >= 0, got {num_classes!r}")
        if num_classes < 0:
            raise ValueError(f"{_FN} {name!r}: num_classes must be >= 0, got {num_classes}")
        if (train is None) == (batches is None):
            raise ValueError(
                f"{_FN} {name!r}: give exactly one of train (a random-access training set)"
                " and batches (a function (seed, step) -> (x, y))"
            )
        if batches is not None and not callable(batches):
            raise TypeError(
                f"{_FN} {name!r}: batches must be a function (seed, step) -> (x, y), got"
                f" {type(batches).__name__}"
            )
        if not (isinstance(test, tuple | list) and len(test) == 2):
            raise TypeError(f"{_FN} {name!r}: test must be a pair (x_test, y_test) of arrays")
        x_test, y_test = test
        _check_split(name, "test", x_test, y_test, int(num_classes))
        if eval_batch_size is not None and (
            isinstance(eval_batch_size, bool)
            or not isinstance(eval_batch_size, numbers.Integral)
            or eval_batch_size < 1
        ):
            raise ValueError(
                f"{_FN} {name!r}: eval_batch_size must be a positive int or None, got"
                f" {eval_batch_size!r}"
            )
        self.name = name
        self.num_classes = int(num_classes)
        self.x_test, self.y_test = x_test, y_test
        self.batches = batches
        self.eval_batch_size = None if eval_batch_size is None else int(eval_batch_size)
        self.arrays = None  # (x, y) for an array source
        self.source = None  # a map-style source
        if train is None:
            return
        pair = isinstance(train, tuple | list) and len(train) == 2
        if pair and all(len(getattr(a, "shape", ())) >= 1 for a in train):
            x, y = train  # arrays; a list of records (x_i, y_i) is a map-style source
            if len(x) != len(y):
                raise ValueError(
                    f"{_FN} {name!r}: train x has {len(x)} examples but y has {len(y)} labels"
                )
            self.arrays = (x, y)
            self._check_example("train", x.shape[1:], y.shape[1:], x.dtype, y.dtype, "")
        elif hasattr(train, "__len__") and hasattr(train, "__getitem__"):
            self.source = train
        else:
            raise TypeError(
                f"{_FN} {name!r}: train must be a pair (x, y) of arrays or a map-style source"
                f" (len(source), source[i] -> (x_i, y_i)), got {type(train).__name__}"
            )
        if self.train_size == 0:
            raise ValueError(f"{_FN} {name!r}: the training set is empty (0 examples)")

    @property
    def train_size(self) -> int | None:
        """Number of training examples; None for a ``batches`` stream."""
        if self.arrays is not None:
            return len(self.arrays[0])
        return None if self.source is None else len(self.source)

    @property
    def is_classification(self) -> bool:
        return self.num_classes > 0

    def __repr__(self) -> str:
        kind = "batches" if self.batches is not None else f"train={self.train_size}"
        return (
            f"HostData({self.name!r}, {kind}, test={len(self.x_test)},"
            f" num_classes={self.num_classes})"
        )

    # -- reading -------------------------------------------------------------------------

    def _check_example(self, what, x_shape, y_shape, x_dtype, y_dtype, where) -> None:
        """One example's (or a batch's per-example) shapes and dtypes against the test set."""
        xt, yt = np.asarray(self.x_test[:1]), np.asarray(self.y_test[:1])
        if tuple(x_shape) != xt.shape[1:] or tuple(y_shape) != yt.shape[1:]:
            raise ValueError(
                f"{_FN} {self.name!r}: {what}{where} has examples of shape x {tuple(x_shape)},"
                f" y {tuple(y_shape)}; the test set's are x {xt.shape[1:]}, y {yt.shape[1:]}"
            )
        for arg, got, want in (("x", x_dtype, xt.dtype), ("y", y_dtype, yt.dtype)):
            got = np.dtype(got)
            if jax.dtypes.canonicalize_dtype(got) != jax.dtypes.canonicalize_dtype(want):
                raise TypeError(
                    f"{_FN} {self.name!r}: {what}{where} has {arg} of dtype {got}; the test"
                    f" set's {arg} is {want} (they must match on the device)"
                )

    def _rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training examples at ``rows`` (any shape of int indices) as host arrays."""
        flat = rows.reshape(-1)
        if self.arrays is not None:
            x, y = (np.asarray(a[flat]) for a in self.arrays)
        else:
            getitems = getattr(self.source, "__getitems__", None)  # a batched read
            if getitems is not None:  # (PyTorch's and Hugging Face's map-style datasets)
                items = list(getitems([int(i) for i in flat]))
            else:
                items = [self.source[int(i)] for i in flat]
            if len(items) != len(flat):
                raise ValueError(
                    f"{_FN} {self.name!r}: train source.__getitems__ returned {len(items)}"
                    f" examples for {len(flat)} indices"
                )
            for i, it in zip(flat, items, strict=True):
                if not (isinstance(it, tuple | list) and len(it) == 2):
                    raise TypeError(
                        f"{_FN} {self.name!r}: train source[{i}] must be a pair (x_i, y_i),"
                        f" got {type(it).__name__}"
                    )
            try:
                x = np.stack([np.asarray(it[0]) for it in items])
                y = np.stack([np.asarray(it[1]) for it in items])
            except ValueError as e:
                raise ValueError(
                    f"{_FN} {self.name!r}: the train source's examples differ in shape: {e}"
                ) from e
        return x.reshape(*rows.shape, *x.shape[1:]), y.reshape(*rows.shape, *y.shape[1:])

    def _batch(self, seed: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.batches is not None  # a batches stream
        try:
            out = self.batches(seed, step)
        except Exception as e:
            msg = f"{_FN} {self.name!r}: batches(seed={seed}, step={step}) failed: {e}"
            try:  # the same exception type, with the seed and step in its message
                new = type(e)(msg)
            except Exception:
                new = RuntimeError(msg)
            raise new from e
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise TypeError(
                f"{_FN} {self.name!r}: batches(seed={seed}, step={step}) must return a pair"
                f" (x, y), got {type(out).__name__}"
            )
        return np.asarray(out[0]), np.asarray(out[1])

    def _sample(self) -> tuple[np.ndarray, np.ndarray]:
        """Two training examples (shapes and dtypes for abstract tracing)."""
        if self.batches is not None:
            x, y = self._batch(0, 0)
            return x[:2], y[:2]
        return self._rows(np.arange(min(2, self.train_size or 0)))

    def _fingerprint(self) -> list:
        """What identifies the data for resume, without reading the whole training set."""
        if self.batches is not None:
            head = self._batch(0, 0)
        else:
            n = self.train_size or 0
            head = self._rows(np.unique(np.r_[np.arange(min(n, 64)), np.arange(max(n - 64, 0), n)]))
        return [self.name, self.train_size, _checksum((head, self.x_test, self.y_test))]


# -- the engine's side ------------------------------------------------------------------


def _in_background(fn: Callable, *args: Any) -> concurrent.futures.Future:
    """``fn(*args)`` in a daemon thread, one per chunk: nothing to shut down, and a study
    interrupted mid-chunk leaves no thread that holds the interpreter's exit."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run():
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # re-raised in the main thread by .result()
                future.set_exception(e)

    threading.Thread(target=run, name="jaxinit-feed", daemon=True).start()
    return future


@functools.lru_cache(maxsize=32)
def _index_program(batch_size: int, n_steps: int, n_train: int) -> Callable:
    """(stream data keys, first step) -> (streams, n_steps, batch) indices: the numbers the
    in-memory engine draws in-graph, ``randint(fold_in(data_key, step), (batch,), 0, n)``."""

    def draw(keys, start):
        steps = start + jnp.arange(n_steps, dtype=jnp.int32)
        return jax.vmap(
            lambda k: jax.vmap(
                lambda s: jax.random.randint(jax.random.fold_in(k, s), (batch_size,), 0, n_train)
            )(steps)
        )(keys)

    return jax.jit(draw)


class _Feed:
    """Assembles each chunk's minibatches on the host (in a background thread, one chunk
    ahead) and puts them on the device; evaluates on host-held sets."""

    def __init__(self, study, data_keys, target, member_sharding, train_rows, val_rows, options):
        self.data: HostData = study.dataset
        self.batch_size = study.batch_size
        self.fixed = bool(study.fixed_data_order)
        self.data_keys = data_keys
        self.target = target  # where chunk batches go: a device or a replicated sharding
        self.options = options  # the study's programs' XLA options
        self.member_sharding = member_sharding
        self.train_rows, self.val_rows = train_rows, val_rows
        self.pending: dict[int, concurrent.futures.Future] = {}
        self.stats = {"streams": 0, "chunks": 0, "bytes": 0, "prepare_s": 0.0, "wait_s": 0.0}
        self.resident: dict[str, tuple] = {}

    # Part 1: checks before anything is compiled.

    def check(self, study) -> None:
        d, steps = self.data, study.steps
        if d.batches is None:
            x, y = d._rows(np.zeros(1, np.int64))
            d._check_example("train source[0]", x.shape[1:], y.shape[1:], x.dtype, y.dtype, "")
            if d.source is not None:
                x2, y2 = d._rows(np.zeros(1, np.int64))
                if not (np.array_equal(x, x2) and np.array_equal(y, y2)):
                    raise ValueError(
                        f"{_FN} {d.name!r}: train source[0] returned different examples on two"
                        " reads; the source must be deterministic (random augmentation breaks"
                        " resume and the pairing of initializers)"
                    )
            return
        first = d._batch(0, 0)
        self._check_batch(first, 0, 0)
        again = d._batch(0, 0)
        if not all(np.array_equal(a, b) for a, b in zip(first, again, strict=True)):
            raise ValueError(
                f"{_FN} {d.name!r}: batches(seed=0, step=0) returned different arrays on two"
                " calls; the stream must be a pure function of (seed, step) (seed any random"
                " state from them), or resume and the pairing of initializers break"
            )
        for s in range(1 if self.fixed else study.seeds):
            self._check_batch(d._batch(s, steps - 1), s, steps - 1)

    def _check_batch(self, batch, seed, step) -> None:
        d, (x, y) = self.data, batch
        where = f" at seed {seed}, step {step}"
        if x.ndim < 1 or y.ndim < 1 or len(x) != self.batch_size or len(y) != self.batch_size:
            raise ValueError(
                f"{_FN} {d.name!r}: the batch{where} has x of shape {x.shape} and y of shape"
                f" {y.shape}; both need a leading axis of batch_size={self.batch_size}"
            )
        d._check_example("the batch", x.shape[1:], y.shape[1:], x.dtype, y.dtype, where)

    def _check_values(self, x, y, what) -> None:
        d = self.data
        if np.issubdtype(x.dtype, np.inexact) and not np.isfinite(x).all():
            raise ValueError(f"{_FN} {d.name!r}: {what} has NaN or infinite inputs")
        if d.num_classes and y.size and (y.min() < 0 or y.max() >= d.num_classes):
            bad = int(y.min()) if y.min() < 0 else int(y.max())
            raise ValueError(
                f"{_FN} {d.name!r}: {what} has label {bad}; labels must be in [0, {d.num_classes})"
            )

    # Part 2: training chunks.

    def streams(self, seeds: Sequence[int]) -> list[int]:
        """The data streams of a member batch, in first-use order (one per seed)."""
        return list(dict.fromkeys(0 if self.fixed else int(s) for s in seeds))

    def request(self, seeds: Sequence[int], start: int, n: int) -> None:
        """Start assembling the chunk of steps ``[start, start + n)`` in the background."""
        streams = self.streams(seeds)
        idx = None
        if self.data.batches is None:  # drawn here: jax's config contexts are per thread
            n_train = len(self.train_rows)
            keys = self.data_keys[jnp.asarray(streams)]
            idx = _index_program(self.batch_size, n, n_train)(keys, np.int32(start))
        self.pending[start] = _in_background(self._assemble, streams, start, n, idx)

    def _assemble(self, streams, start, n, idx):
        t0 = time.perf_counter()
        if idx is not None:
            rows = self.train_rows[np.asarray(idx)]
            x, y = self.data._rows(rows)  # (streams, n, batch, ...)
            what = f"the training rows of steps {start}..{start + n - 1}"
        else:
            xs, ys = [], []
            for s in streams:
                for t in range(start, start + n):
                    b = self.data._batch(s, t)
                    self._check_batch(b, s, t)
                    xs.append(b[0])
                    ys.append(b[1])
            x = np.stack(xs).reshape(len(streams), n, *xs[0].shape)
            y = np.stack(ys).reshape(len(streams), n, *ys[0].shape)
            what = f"the batches of steps {start}..{start + n - 1}"
        self._check_values(x, y, what)
        flat = (x.reshape(-1, *x.shape[3:]), y.reshape(-1, *y.shape[3:]))
        out = tuple(self._put(a) for a in flat)
        jax.block_until_ready(out)
        self.stats["prepare_s"] += time.perf_counter() - t0
        self.stats["bytes"] += x.nbytes + y.nbytes
        return out

    def take(self, seeds: Sequence[int], start: int, n: int) -> tuple:
        """The chunk's inputs ``(x, y, offset)``: the flattened batches, and per member the
        index of its first row at step 0 (the program adds ``step * batch``)."""
        if start not in self.pending:
            self.request(seeds, start, n)
        t0 = time.perf_counter()
        x, y = self.pending.pop(start).result()
        self.stats["wait_s"] += time.perf_counter() - t0
        self.stats["chunks"] += 1
        streams = self.streams(seeds)
        self.stats["streams"] = max(self.stats["streams"], len(streams))
        slot = np.asarray([streams.index(0 if self.fixed else int(s)) for s in seeds])
        offset = ((slot * n - start) * self.batch_size).astype(np.int32)
        if self.member_sharding is not None:
            return x, y, _put(offset, self.member_sharding)
        return x, y, jnp.asarray(offset)

    def _put(self, a: np.ndarray) -> jax.Array:
        """A host array on the target device(s), in the dtype jax gives it (float32 for
        float64 inputs unless x64 is on), also when the mesh spans several processes."""
        a = np.asarray(a)
        a = a.astype(jax.dtypes.canonicalize_dtype(a.dtype), copy=False)
        if isinstance(self.target, jax.Device):
            return jax.device_put(a, self.target)
        return _put(a, self.target)

    def close(self) -> None:
        self.pending.clear()

    # Part 3: evaluation on host-held sets.

    def eval_sets(self) -> list[tuple[str, int]]:
        sets = [("test", len(self.data.x_test))]
        return sets + ([("val", len(self.val_rows))] if len(self.val_rows) else [])

    def _eval_arrays(self, prefix: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        d = self.data
        if prefix == "test":
            return np.asarray(d.x_test[lo:hi]), np.asarray(d.y_test[lo:hi])
        return d._rows(self.val_rows[lo:hi])

    def evaluate(self, model, objective, state, prefix: str, n_examples: int) -> np.ndarray:
        """(members, metrics) on one evaluation set: the example-weighted mean of the batch
        means (equal to the whole set's mean for mean metrics, the built-in ones)."""
        program = _eval_program(model, objective, self.options)
        size = self.data.eval_batch_size
        if size is None:
            if prefix not in self.resident:
                arrays = self._eval_arrays(prefix, 0, n_examples)
                self.resident[prefix] = tuple(self._put(a) for a in arrays)
            x, y = self.resident[prefix]
            return _fetch(program(state, x, y))
        total: np.ndarray | None = None
        for lo in range(0, n_examples, size):
            hi = min(lo + size, n_examples)
            x, y = (self._put(a) for a in self._eval_arrays(prefix, lo, hi))
            v = _fetch(program(state, x, y))
            v = v.astype(np.float64) * (hi - lo)
            total = v if total is None else total + v
        assert total is not None  # n_examples >= 1
        return total / n_examples
