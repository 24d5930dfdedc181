"""Host-fed training data (``jaxinit.HostData``): the same training as in memory, paired
seeds, bounded reads, resume mid-stream, and bad sources rejected before compiling."""

import functools
import textwrap
import threading

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

import jaxinit
from jaxinit.study import _checkpoint, _study
from tests._processes import finish, launch

DATA = jaxinit.digits()
TEST = (DATA.x_test, DATA.y_test)
KW = dict(
    model=jaxinit.MLP((16, 10)), optimizer=optax.sgd(0.1, momentum=0.9),
    inits={"he": "he_normal", "glorot": "glorot_uniform"},
    seeds=2, steps=40, batch_size=32, log_every=10, eval_every=20,
)  # fmt: skip
KEYS = ["init", "seed", "step", "metric"]


class Recorder:
    """An on-disk array (np.memmap) that records how many rows each read asks for and
    refuses to be converted whole (``np.asarray(source)``)."""

    def __init__(self, array):
        self.array, self.reads = array, []
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self):
        return len(self.array)

    def __getitem__(self, rows):
        self.reads.append(np.size(rows) if not isinstance(rows, slice) else len(self.array[rows]))
        return self.array[rows]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole training set was read")


def _memmap(tmp_path, name, a):
    np.save(tmp_path / f"{name}.npy", a)
    return np.load(tmp_path / f"{name}.npy", mmap_mode="r")


@pytest.fixture(scope="module")
def in_memory():
    return jaxinit.run_study(jaxinit.Study(dataset=DATA, validation=0.1, **KW), progress=False)


def test_host_fed_equals_in_memory_and_reads_one_chunk_at_a_time(in_memory, tmp_path):
    x = Recorder(_memmap(tmp_path, "x", DATA.x_train))
    y = Recorder(_memmap(tmp_path, "y", DATA.y_train))
    data = jaxinit.HostData("digits", train=(x, y), test=TEST, num_classes=10, eval_batch_size=100)
    result = jaxinit.run_study(jaxinit.Study(dataset=data, validation=0.1, **KW), progress=False)
    a, b = in_memory.table, result.table
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    m = a.merge(b, on=KEYS, suffixes=("_mem", "_host"))
    assert len(m) == len(a)
    train = m.metric.str.startswith("train_") | m.metric.isin(["grad_norm", "param_norm"])
    # Training reads the same examples (the same indices, drawn from the same data keys):
    # identical numbers. Evaluation in host batches of 100 averages batch means: equal up to
    # float32 summation order.
    np.testing.assert_array_equal(m.value_mem[train], m.value_host[train])
    np.testing.assert_allclose(m.value_mem[~train], m.value_host[~train], rtol=2e-6, atol=1e-7)
    assert set(m.metric[~train]) == {"test_loss", "test_accuracy", "val_loss", "val_accuracy"}
    # Bounded: a chunk is 2 seeds' streams × 20 steps × 32 examples; the device gets exactly
    # that per chunk, and no read asks for more rows (digits' training set has 1438).
    info = result.info["host_data"]
    per_chunk = 2 * 20 * 32
    assert info["streams"] == 2 and info["chunks"] == 2
    assert info["bytes"] == info["chunks"] * per_chunk * (64 * 4 + 4)
    assert max(x.reads + y.reads) <= per_chunk < len(DATA.x_train)


def _stream(calls=None, n_steps=None, labels=np.int32, shape=(64,), noisy=False):
    """A batches(seed, step) function: a numpy Generator seeded by (seed, step) picks 32
    digits examples (or shuffles noise), as a user's pipeline would."""

    def batches(seed, step):
        if n_steps is not None and step >= n_steps:
            raise IndexError(f"only {n_steps} batches")
        if calls is not None and threading.current_thread().name.startswith("jaxinit-feed"):
            calls.append((seed, step))  # the reads for training (not the checks)
        rng = np.random.default_rng(None if noisy else (seed, step))
        rows = rng.integers(0, len(DATA.x_train), 32)
        x = DATA.x_train[rows].reshape(32, *shape) if shape == (64,) else np.zeros((32, *shape))
        return x.astype(np.float32), DATA.y_train[rows].astype(labels)

    return batches


def _label_checksum(y):
    """An order-sensitive checksum of a batch's labels."""
    return jnp.sum(y * jnp.arange(1, len(y) + 1, dtype=y.dtype))


def _loss_fn(model, batch, key):
    x, y = batch
    loss = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
    return loss, {"labels": _label_checksum(y)}


def test_every_member_of_a_seed_sees_the_same_batches():
    # Two identical initializers and two learning rates over 4 devices, in two member
    # batches of 4: each member records a checksum of its batches' labels, which must be
    # its own seed's stream; members of one seed (same init) start equal and see the same
    # stream, so their curves coincide.
    calls = []
    stream = _stream(calls)
    data = jaxinit.HostData("digits", batches=stream, test=TEST, num_classes=10)
    study = jaxinit.Study(
        **dict(KW, inits={"a": "he_normal", "b": "he_normal"}, optimizer=optax.sgd),
        dataset=data, hparams={"learning_rate": [0.05, 0.1]}, loss_fn=_loss_fn, max_members=4,
    )  # fmt: skip
    result = jaxinit.run_study(study, progress=False)
    seen = result.metric("train_labels")
    for seed in range(2):
        sums = [float(_label_checksum(stream(seed, t)[1])) for t in range(40)]
        want = np.mean(np.reshape(sums, (4, 10)), axis=1)  # the mean over each 10 steps
        got = seen.xs(seed, level="seed").to_numpy()
        assert got.shape == (4, 4)  # 2 inits × 2 rates, 4 logged steps
        np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=1e-6)
    wide = result.metric("train_loss")
    a, b = wide.xs("a", level="init"), wide.xs("b", level="init")
    pd.testing.assert_frame_equal(a, b)
    assert not np.array_equal(a.xs(0, level="seed"), a.xs(1, level="seed"))
    # The stream is read once per seed and step in each member batch (not once per member):
    # 2 batches of 4 members, each with 2 streams.
    assert sorted(calls) == [(s, t) for s in range(2) for t in range(40) for _ in range(2)]


def test_resume_mid_stream_equals_uninterrupted(tmp_path, monkeypatch):
    data = jaxinit.HostData("digits", batches=_stream(), test=TEST, num_classes=10)
    study = jaxinit.Study(dataset=data, **KW)
    clean = jaxinit.run_study(study, progress=False)

    saves = []
    save = _checkpoint._Checkpoint.save

    def save_then_die(self, *args):
        save(self, *args)
        saves.append(args[1])
        raise KeyboardInterrupt  # killed right after the first chunk's checkpoint

    monkeypatch.setattr(_checkpoint._Checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        jaxinit.run_study(study, out_dir=tmp_path, progress=False)
    monkeypatch.undo()
    assert saves == [20]
    calls = []
    resumed_data = jaxinit.HostData("digits", batches=_stream(calls), test=TEST, num_classes=10)
    # killed on 4 devices, resumed on 2: the member axis is re-sharded, the streams continue
    resumed = jaxinit.run_study(
        jaxinit.Study(dataset=resumed_data, **KW), out_dir=tmp_path, progress=False,
        devices=jax.devices()[:2],
    )  # fmt: skip
    pd.testing.assert_frame_equal(resumed.table, clean.table)
    # the stream continued where it stopped: only steps 20..39 were read for training
    assert sorted(calls) == [(s, t) for s in range(2) for t in range(20, 40)]

    # a different stream is refused at resume
    def shifted(seed, step):
        return _stream()(seed, step + 1)

    changed = jaxinit.HostData("digits", batches=shifted, test=TEST, num_classes=10)
    with pytest.raises(ValueError, match="dataset"):
        jaxinit.run_study(jaxinit.Study(dataset=changed, **KW), out_dir=tmp_path, progress=False)


def test_grain_map_dataset_source(in_memory):
    grain = pytest.importorskip("grain")
    source = grain.MapDataset.source(list(zip(DATA.x_train, DATA.y_train, strict=True)))
    data = jaxinit.HostData("digits", train=source, test=TEST, num_classes=10)
    result = jaxinit.run_study(jaxinit.Study(dataset=data, validation=0.1, **KW), progress=False)
    pd.testing.assert_frame_equal(result.table, in_memory.table)

    # the recipe of docs/host-data.md: a shuffled grain pipeline per seed, indexed by step
    @functools.cache
    def pipeline(seed):
        return (
            source.seed(seed).shuffle().repeat()
            .batch(32, batch_fn=lambda items: tuple(np.stack(c) for c in zip(*items, strict=True)))
        )  # fmt: skip

    data = jaxinit.HostData(
        "digits", batches=lambda seed, step: pipeline(seed)[step], test=TEST, num_classes=10
    )
    result = _run(data)
    assert result.info["host_data"]["streams"] == 2 and result.diverged.empty
    assert (result.metric("test_loss")[40] < result.metric("test_loss")[0]).all()


class _BatchedSource:
    """A map-style source with ``__getitems__`` (as torch's ``Subset`` has): counts calls."""

    def __init__(self, lost: int = 0):
        self.calls = {"one": 0, "many": 0}
        self.lost = lost

    def __len__(self):
        return len(DATA.x_train)

    def __getitem__(self, i):
        self.calls["one"] += 1
        return DATA.x_train[i], DATA.y_train[i]

    def __getitems__(self, indices):
        self.calls["many"] += 1
        return [(DATA.x_train[i], DATA.y_train[i]) for i in indices[self.lost :]]


def test_source_with_getitems_is_read_a_chunk_at_a_time(in_memory):
    source = _BatchedSource()
    data = jaxinit.HostData("digits", train=source, test=TEST, num_classes=10)
    result = jaxinit.run_study(jaxinit.Study(dataset=data, validation=0.1, **KW), progress=False)
    pd.testing.assert_frame_equal(result.table, in_memory.table)
    chunks = result.info["host_data"]["chunks"]
    assert source.calls["many"] >= chunks and source.calls["one"] <= 2  # the sample only
    with pytest.raises(ValueError, match=r"__getitems__ returned \d+ examples for \d+ indices"):
        _run(jaxinit.HostData("digits", train=_BatchedSource(lost=1), test=TEST, num_classes=10))


@pytest.fixture
def no_compile(monkeypatch):
    """Fails the test if the engine gets as far as building the population."""

    def compiled(*args, **kwargs):
        raise AssertionError("compiled before the error")

    monkeypatch.setattr(_study, "_init_program", compiled)


def _run(data, **kw):
    return jaxinit.run_study(jaxinit.Study(dataset=data, **dict(KW, **kw)), progress=False)


@pytest.mark.parametrize(
    ("stream", "error", "match"),
    [
        (_stream(shape=(8, 8)), ValueError, r"seed 0, step 0.*shape x \(8, 8\).*x \(64,\)"),
        (_stream(labels=np.float32), TypeError, r"seed 0, step 0 has y of dtype float32"),
        (_stream(n_steps=25), IndexError, r"batches\(seed=0, step=39\) failed: only 25"),
        (_stream(noisy=True), ValueError, r"different arrays on two calls.*pure function"),
        (lambda s, t: DATA.x_train[:32], TypeError, r"must return a pair \(x, y\)"),
        (lambda s, t: (DATA.x_train[:16], DATA.y_train[:16]), ValueError, r"batch_size=32"),
    ],
)
def test_bad_streams_fail_before_compiling(no_compile, stream, error, match):
    data = jaxinit.HostData("digits", batches=stream, test=TEST, num_classes=10)
    with pytest.raises(error, match=match):
        _run(data)


class Flaky:
    """A map-style source with random augmentation (different on every read)."""

    def __len__(self):
        return len(DATA.x_train)

    def __getitem__(self, i):
        return DATA.x_train[i] + np.random.default_rng().normal(size=64), DATA.y_train[i]


def test_bad_sources_fail_before_compiling(no_compile):
    with pytest.raises(ValueError, match="different examples on two reads"):
        _run(jaxinit.HostData("flaky", train=Flaky(), test=TEST, num_classes=10))
    records = [{"x": x, "y": y} for x, y in zip(DATA.x_train, DATA.y_train, strict=True)]
    with pytest.raises(TypeError, match=r"train source\[0\] must be a pair \(x_i, y_i\), got dict"):
        _run(jaxinit.HostData("dicts", train=records, test=TEST, num_classes=10))
    stream = jaxinit.HostData("s", batches=_stream(), test=TEST, num_classes=10)
    with pytest.raises(ValueError, match=r"validation=0.1 needs a training set.*HostData 's'"):
        _run(stream, validation=0.1)
    small = jaxinit.HostData("s", train=(DATA.x_train[:8], DATA.y_train[:8]), test=TEST,
                             num_classes=10)  # fmt: skip
    with pytest.raises(ValueError, match="batch_size=32 is larger than the 8 training"):
        _run(small)
    with pytest.raises(TypeError, match=r"jaxinit\.Dataset or jaxinit\.HostData"):
        _run(TEST)


def test_bad_labels_in_a_chunk_name_the_steps():
    y = DATA.y_train.copy()
    y[::4] = 12
    data = jaxinit.HostData("bad", train=(DATA.x_train, y), test=TEST, num_classes=10)
    with pytest.raises(ValueError, match=r"steps 0..19 has label 12; labels must be in \[0, 10\)"):
        _run(data)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(train=(DATA.x_train, DATA.y_train), batches=_stream()), ValueError, "exactly one"),
        (dict(), ValueError, "exactly one of train"),
        (dict(train=(DATA.x_train, DATA.y_train[:5])), ValueError, "1438 examples but y has 5"),
        (dict(train=(DATA.x_train[:, :8], DATA.y_train)), ValueError, r"x \(8,\).*x \(64,\)"),
        (dict(train=(DATA.x_train, DATA.y_train.astype(float))), TypeError, "dtype float64"),
        (dict(train=42), TypeError, "map-style source"),
        (dict(batches=3), TypeError, r"function \(seed, step\)"),
        (dict(batches=_stream(), test=DATA.x_test), TypeError, r"pair \(x_test, y_test\)"),
        (dict(batches=_stream(), eval_batch_size=0), ValueError, "eval_batch_size"),
        (dict(batches=_stream(), num_classes=-1), ValueError, "num_classes must be >= 0"),
    ],
)
def test_host_data_constructor_errors(kwargs, error, match):
    kwargs = {"test": TEST, "num_classes": 10, **kwargs}
    with pytest.raises(error, match=match):
        jaxinit.HostData("d", **kwargs)


WORKER = textwrap.dedent(
    """
    import sys
    import jax

    port, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    assert jax.process_count() == 2 and len(jax.devices()) == 2
    import optax, jaxinit

    d = jaxinit.digits()
    data = jaxinit.HostData("digits", train=(d.x_train, d.y_train), test=(d.x_test, d.y_test),
                            num_classes=10, eval_batch_size=150)
    study = jaxinit.Study(
        jaxinit.MLP((8, 10)), data, optax.sgd(0.1, momentum=0.9),
        {"he": "he_normal", "glorot": "glorot_uniform"}, seeds=3, steps=20, batch_size=16,
        log_every=10, eval_every=10,
    )
    result = jaxinit.run_study(study, progress=False)
    result.table.to_csv(f"{out}/table-{pid}.csv", index=False)
    """
)


@pytest.mark.slow
def test_two_processes_feed_one_study_from_the_host(tmp_path):
    """Each process assembles the chunks and places them on its own device of the global
    mesh: the table matches the in-memory study in one process."""
    finish(launch(WORKER, tmp_path))
    tables = [pd.read_csv(tmp_path / f"table-{i}.csv") for i in range(2)]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    single = jaxinit.run_study(
        jaxinit.Study(
            jaxinit.MLP((8, 10)), DATA, optax.sgd(0.1, momentum=0.9),
            {"he": "he_normal", "glorot": "glorot_uniform"}, seeds=3, steps=20, batch_size=16,
            log_every=10, eval_every=10,
        ),
        progress=False,
    )  # fmt: skip
    expected = single.table.reset_index(drop=True)
    pd.testing.assert_frame_equal(tables[0].drop(columns="value"), expected.drop(columns="value"))
    np.testing.assert_allclose(tables[0].value, expected.value, rtol=1e-5, atol=1e-6)


def test_host_fed_architecture_sweep_equals_in_memory_sweep():
    """A sweep over two widths fed from the host trains exactly as the in-memory sweep
    (each architecture's members read their seed's stream)."""
    kw = {**KW, "model": {"w8": jaxinit.MLP((8, 10)), "w16": jaxinit.MLP((16, 10))}}
    data = jaxinit.HostData("digits", train=(DATA.x_train, DATA.y_train), test=TEST, num_classes=10)
    mem = jaxinit.run_study(jaxinit.Study(dataset=DATA, **kw), progress=False).table
    host = jaxinit.run_study(jaxinit.Study(dataset=data, **kw), progress=False).table
    assert set(host.model) == {"w8", "w16"} and len(host) == len(mem)
    m = mem.merge(host, on=["model", *KEYS], suffixes=("_mem", "_host"))
    train = m.metric.str.startswith("train_") | m.metric.isin(["grad_norm", "param_norm"])
    np.testing.assert_array_equal(m.value_mem[train], m.value_host[train])
    np.testing.assert_allclose(m.value_mem[~train], m.value_host[~train], rtol=2e-6, atol=1e-7)
