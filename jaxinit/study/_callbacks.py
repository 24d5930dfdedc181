"""Callbacks and metric writers: called on the host after every chunk with that chunk's
tidy rows (the table's columns) and its step range.

:class:`Callback` is the protocol; :class:`MetricWriter` appends the rows to a CSV or JSON
Lines file; :class:`TensorBoardWriter` logs them through ``tensorboardX`` (the
``tensorboard`` extra). :func:`jaxinit.run_study` and :func:`jaxinit.train_population`
take ``callbacks=[...]``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol, runtime_checkable

from jaxinit.study._io import json_safe


@runtime_checkable
class Callback(Protocol):
    """``callback(rows, start, stop)``, called on the host after each chunk.

    ``rows`` is a pandas frame with the table's columns (``[model,] init, seed, <hparams>,
    step, metric, value``) holding that chunk's rows: the train metrics logged at steps
    ``start < step <= stop``, the evaluations at ``stop`` (and at step 0 in the first
    chunk). Every chunk is seen once, in order; concatenated, the rows are the final
    table's (in another order). A resumed run calls it for the chunks it trains. A
    callback that raises stops the study with its error; the checkpoint of that chunk is
    already written, so the same call resumes after it.

    Example:
      >>> import optax, jaxinit
      >>> seen = []
      >>> study = jaxinit.Study(jaxinit.MLP((16, 10)), jaxinit.digits(), optax.sgd(0.1),
      ...                       inits={"he": "he_normal"}, seeds=2, steps=20, log_every=10,
      ...                       eval_every=10)
      >>> r = jaxinit.run_study(study, progress=False,
      ...                       callbacks=[lambda rows, a, b: seen.append((a, b, len(rows)))])
      >>> seen
      [(0, 10, 16), (10, 20, 12)]
    """

    def __call__(self, rows: Any, start: int, stop: int) -> None: ...


class MetricWriter:
    """A :class:`Callback` that appends every chunk's rows to a CSV or JSON Lines file.

    Args:
      path: the file; ``.csv`` writes a header and one line per row, ``.jsonl`` one JSON
        object per row (non-finite values as ``null``). An existing file is replaced
        when the first chunk arrives.

    After a run, ``pandas.read_csv(path)`` (or ``read_json(path, lines=True)``) holds the
    final table's rows, chunk by chunk.

    Example:
      >>> import os, tempfile, optax, pandas as pd, jaxinit
      >>> path = os.path.join(tempfile.mkdtemp(), "metrics.csv")
      >>> study = jaxinit.Study(jaxinit.MLP((16, 10)), jaxinit.digits(), optax.sgd(0.1),
      ...                       inits={"he": "he_normal"}, seeds=2, steps=20, log_every=10)
      >>> r = jaxinit.run_study(study, progress=False, callbacks=[jaxinit.MetricWriter(path)])
      >>> len(pd.read_csv(path)) == len(r.table)
      True
    """

    def __init__(self, path: str | os.PathLike) -> None:
        try:
            self.path = os.fspath(path)
        except TypeError:
            raise TypeError(
                f"MetricWriter: path must be a str or os.PathLike, got {type(path).__name__}"
            ) from None
        self.format = os.path.splitext(self.path)[1].lower()
        if self.format not in (".csv", ".jsonl"):
            raise ValueError(f"MetricWriter: path={self.path!r} must end in '.csv' or '.jsonl'")
        self._started = False

    def __repr__(self) -> str:
        return f"MetricWriter({self.path!r})"

    def __call__(self, rows: Any, start: int, stop: int) -> None:
        mode = "a" if self._started else "w"
        with open(self.path, mode) as f:
            if self.format == ".csv":
                rows.to_csv(f, index=False, header=not self._started)
            else:
                for rec in rows.to_dict("records"):
                    f.write(json.dumps(json_safe(rec), allow_nan=False) + "\n")
        self._started = True


class TensorBoardWriter:
    """A :class:`Callback` that logs every chunk's rows to TensorBoard through
    ``tensorboardX`` (``pip install 'jaxinit[tensorboard]'``).

    Each row is one scalar, tagged ``<metric>/<member>`` with the member named by its
    columns (e.g. ``train_loss/init_he/seed_0/learning_rate_0.1``), at its ``step``;
    characters TensorBoard does not allow in tags become ``_``.

    Args:
      logdir: the run directory TensorBoard reads.
      **kwargs: passed on to ``tensorboardX.SummaryWriter``.

    Call :meth:`close` (or use it as a context manager) to flush the file.
    """

    def __init__(self, logdir: str | os.PathLike, **kwargs: Any) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "TensorBoardWriter needs tensorboardX: pip install 'jaxinit[tensorboard]'"
            ) from e
        self.logdir = os.fspath(logdir)
        self.writer = SummaryWriter(self.logdir, **kwargs)

    def __repr__(self) -> str:
        return f"TensorBoardWriter({self.logdir!r})"

    def __call__(self, rows: Any, start: int, stop: int) -> None:
        keys = [c for c in rows.columns if c not in ("step", "metric", "value")]
        for rec in rows.itertuples(index=False):
            r = rec._asdict()
            member = "/".join(f"{k}_{r[k]}" for k in keys)
            self.writer.add_scalar(f"{r['metric']}/{member}", float(r["value"]), int(r["step"]))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> TensorBoardWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _notify(fn: str, callbacks: tuple, rows: Any, start: int, stop: int) -> None:
    """Call every callback; one that raises stops the run with its error, named."""
    for cb in callbacks:
        try:
            cb(rows, start, stop)
        except Exception as e:
            name = getattr(cb, "__qualname__", None) or repr(cb)
            msg = (
                f"{fn}: callback {name} failed after steps {start}..{stop} (the checkpoint of"
                f" step {stop} is written; the same call resumes from it): {e}"
            )
            try:
                new = type(e)(msg)
            except Exception:
                new = RuntimeError(msg)
            raise new from e


def _check_callbacks(fn: str, callbacks: Any) -> tuple:
    if callbacks is None:
        return ()
    if callable(callbacks) or isinstance(callbacks, str):
        raise TypeError(f"{fn}: callbacks must be a sequence of callbacks, e.g. [writer]")
    out = tuple(callbacks)
    bad = [c for c in out if not callable(c)]
    if bad:
        raise TypeError(f"{fn}: callbacks must be callables (rows, start, stop), got {bad!r}")
    return out
