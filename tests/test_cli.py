"""The ``jaxinit`` command as a person meets it, run as a separate process: a mistake is one
line ``jaxinit: error: ...`` with exit status 2 before any computation; tables fit
``COLUMNS``; ``propagate --plot`` says what it wrote; Ctrl-C (SIGINT) at any moment after
the command has started ends it with exit status 130, no traceback, no crash, and no output
half-written."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

from jaxinit.cli import main
from jaxinit.cli.compare import OUTPUTS

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _env(drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", *drop)}
    path = [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    return {**env, "PYTHONPATH": os.pathsep.join(path), "JAX_PLATFORMS": "cpu", **extra}


def _jaxinit(*argv: str, cwd: pathlib.Path, drop: tuple[str, ...] = (),
             **env: str) -> subprocess.Popen:  # fmt: skip
    cmd = [sys.executable, "-m", "jaxinit.cli", *argv]
    return subprocess.Popen(cmd, cwd=cwd, env=_env(drop, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _mistakes(tmp: pathlib.Path) -> list[tuple[list[str], str]]:
    """(argv, what the one line must say): every kind of mistake the issue lists."""
    a_file = tmp / "a_file"
    a_file.write_text("")
    return [
        (["compare", "--inits", "he_nromal"], "did you mean 'he_normal'"),
        (["compare", "--activation", "rleu"], "--activation 'rleu' is not an activation"),
        (["compare", "--out", str(a_file / "out")], "--out"),
        (["compare", "--steps", "0"], "argument --steps: must be >= 1"),
        (["compare", "--lr", "nan"], "argument --lr: must be finite and > 0"),
        (["compare", "--lrs", "0.1,fast"], "--lrs must be comma-separated numbers"),
        (["compare", "--reference", "zeros", "--inits", "he_normal"], "--reference 'zeros'"),
        (["compare", "--dataset", "cifar"], "argument --dataset: invalid choice"),
        (["propagate", "--inits", "bogus"], "--inits 'bogus'"),
        (["propagate", "--plot", str(a_file / "fig.png")], "--plot"),
        (["propagate", "--depth", "1"], "argument --depth: must be >= 2"),
        (["list", "--family", "bogus"], "--family 'bogus' is not a family; allowed:"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ]


def test_every_mistake_is_one_line_and_exit_status_2(tmp_path):
    """Run side by side; each must answer at once (no computation) with one line."""
    cases = _mistakes(tmp_path)
    procs = [_jaxinit(*argv, cwd=tmp_path) for argv, _ in cases]
    for (argv, says), proc in zip(cases, procs, strict=True):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (argv, err)
        assert out == "", (argv, out)
        assert err.count("\n") == 1 and err.startswith("jaxinit: error: "), (argv, err)
        assert says in err, (argv, err)
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing was written


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["compare", "--inits", "he_nromal", "--out", str(tmp_path)]) == 2
    with pytest.raises(Exception, match="he_nromal"):
        main(["--debug", "compare", "--inits", "he_nromal", "--out", str(tmp_path)])


def test_a_missing_extra_is_one_line(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from jaxinit.cli import main\n"
            "sys.exit(main(['propagate', '--depth', '2', '--width', '4', '--seeds', '1']))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "jaxinit: error: jaxinit propagate needs matplotlib (its figure):"
        " pip install 'jaxinit[experiments]'\n"
    )


def test_unwritable_out_is_refused_before_computing(tmp_path, capsys):
    """A folder that cannot be written (here: one under /proc) is found before training."""
    start = time.perf_counter()
    assert main(["compare", "--quick", "--out", "/proc/jaxinit-no/out"]) == 2
    assert main(["propagate", "--plot", "/proc/jaxinit-no/fig.png"]) == 2
    assert time.perf_counter() - start < 30
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(e.startswith("jaxinit: error: ") for e in err)
    assert "--out '/proc/jaxinit-no/out' is not writable" in err[0]


def test_help_is_whole_and_plain(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "`" not in text and ":func:" not in text
    assert "initialization." in text  # the description's last sentence, whole
    for sub in ("compare", "propagate", "list"):
        with pytest.raises(SystemExit):
            main([sub, "--help"])
        text = capsys.readouterr().out
        assert "(default: None)" not in text and "%%" not in text  # "%%" unformatted
        # every option has help text: argparse prints an option alone on its line otherwise
        options = [ln.split()[0] for ln in text.splitlines() if ln.startswith("  -")]
        lines = text.splitlines()
        for i, ln in enumerate(lines):
            if ln.startswith("  -") and len(ln.split()) <= 2:
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                assert nxt.startswith(" " * 10), (sub, ln)
        assert options, sub


@pytest.mark.parametrize("columns", [50, 80, 120])
def test_list_fits_columns(tmp_path, columns):
    proc = _jaxinit("list", cwd=tmp_path, COLUMNS=str(columns))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert max(len(ln) for ln in out.splitlines()) <= columns
    if columns >= 80:  # wide enough for whole names (narrower, long names fold)
        assert "torch_kaiming_normal" in out and "fan_in" in out


def test_propagate_plot_dir_progress_and_width(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    args = ["propagate", "--depth", "3", "--width", "8", "--seeds", "2", "--inits",
            "he_normal,orthogonal", "--plot", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    out, err = capsys.readouterr()
    wrote = tmp_path / "propagate_tanh.png"
    assert wrote.read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {wrote}" in out
    assert "[1/2] he_normal" in err and "[2/2] orthogonal" in err  # progress
    # the tables fit (a path is never broken: the last line may be longer)
    assert max(len(ln) for ln in out.splitlines() if not ln.startswith("wrote")) <= 70
    assert sorted(p.name for p in tmp_path.iterdir()) == ["propagate_tanh.png"]
    assert main([*args[:-1], str(tmp_path / "fig")]) == 0  # no suffix: .png added, and said
    assert f"wrote {tmp_path / 'fig.png'}" in capsys.readouterr().out


# --------------------------------------------------------------------------- Ctrl-C


# The commands run without the suite's compilation cache: compiling keeps them running for
# seconds (on any machine) after they have begun, so a SIGINT lands while they work.
NO_CACHE = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")


def _started(argv: list[str], started: str, cwd: pathlib.Path) -> subprocess.Popen:
    """``jaxinit argv`` once ``started`` is on its stderr (the command has begun); what it
    printed so far in ``proc.seen``."""
    proc = _jaxinit(*argv, cwd=cwd, drop=NO_CACHE, COLUMNS="100")
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 300
    while started not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert started in seen, seen
    proc.seen = seen  # type: ignore[attr-defined]
    return proc


def _interrupt(argv: list[str], started: str, delay: float, cwd: pathlib.Path):
    """Start ``jaxinit argv``, wait for ``started``, then ``delay`` seconds, send SIGINT;
    return (status, stderr, seconds to end), or None if the command had already ended."""
    proc = _started(argv, started, cwd)
    time.sleep(delay)
    if proc.poll() is not None:  # nothing to interrupt (its pipes closed all the same)
        proc.communicate()
        return None
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, proc.seen + err, time.monotonic() - sent


def _duration(argv: list[str], started: str, cwd: pathlib.Path) -> float:
    """Seconds from ``started`` to the end of an uninterrupted run."""
    proc = _started(argv, started, cwd)
    t0 = time.monotonic()
    proc.communicate(timeout=600)
    assert proc.returncode == 0
    return time.monotonic() - t0


def _no_traceback(err: str) -> None:
    for bad in ("Traceback", "Segmentation", "Exception ignored", "core dumped"):
        assert bad not in err, err[-3000:]


PROPAGATE = ["propagate", "--depth", "8", "--width", "32", "--seeds", "2", "--inits",
             "he_normal,glorot_normal,lecun_normal,orthogonal"]  # fmt: skip


def _check_propagate(tmp_path: pathlib.Path, delay: float) -> bool:
    """Interrupt ``propagate`` ``delay`` s after it began and check how it ended; False if it
    had ended already."""
    fig = tmp_path / f"fig-{delay}.png"
    ended = _interrupt([*PROPAGATE, "--plot", str(fig)], "[1/4]", delay, tmp_path)
    if ended is None:
        return False
    status, err, took = ended
    _no_traceback(err)
    if status == 0:  # the SIGINT came once the command was over: ignored, the figure whole
        assert fig.exists(), err[-3000:]
        return False
    assert status == 130, err[-3000:]
    assert err.rstrip().endswith("jaxinit propagate: interrupted; nothing written"), err
    assert took < 30
    assert not fig.exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    return True


def _compare_argv(out: pathlib.Path) -> list[str]:
    return ["compare", "--quick", "--steps", "2000", "--inits", "zeros,he_normal",
            "--no-compile-cache", "--out", str(out)]  # fmt: skip


def _check_compare(tmp_path: pathlib.Path, delay: float) -> bool:
    """As :func:`_check_propagate`, for ``compare``."""
    out = tmp_path / f"cmp-{delay}"
    ended = _interrupt(_compare_argv(out), "jaxinit compare:", delay, tmp_path)
    if ended is None:
        return False
    status, err, took = ended
    _no_traceback(err)
    if status == 0:  # the SIGINT came once the command was over: ignored, outputs whole
        assert all((out / name).exists() for name in OUTPUTS), err[-3000:]
        return False
    assert status == 130, err[-3000:]
    assert "jaxinit compare: interrupted; no final outputs written" in err
    assert took < 30
    assert not any((out / name).exists() for name in OUTPUTS)
    # no temporary file left (results.partial.csv is the study's complete snapshot)
    left = [p for p in out.rglob("*") if p.name.startswith(".")]
    assert not left, left
    return True


def test_an_interrupt_in_jax_gc_callback_is_not_lost():
    """Python drops an exception raised in a gc callback: the handler does not raise there;
    the interrupt is remembered and its watchdog is armed (it would end the process)."""
    import types

    from jaxinit.cli._interrupt import Interrupt

    interrupt = Interrupt()
    interrupt.gc_grace = 600.0
    frame = types.SimpleNamespace(f_code=types.SimpleNamespace(co_name="_xla_gc_callback"))
    try:
        interrupt.handler(signal.SIGINT, frame)  # no KeyboardInterrupt here
        assert interrupt.count == 1 and interrupt._timer is not None
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
    finally:
        interrupt.disarm()


@pytest.mark.parametrize("delay", [pytest.param(0.0, marks=pytest.mark.slow), 2.5])
def test_ctrl_c_ends_propagate(tmp_path, delay):
    assert _check_propagate(tmp_path, delay), "propagate ended before the SIGINT"


def test_ctrl_c_ends_compare(tmp_path):
    assert _check_compare(tmp_path, 1.0), "compare ended before the SIGINT"


@pytest.mark.slow
def test_ctrl_c_at_many_moments(tmp_path):
    """The long version: both commands, SIGINT at random moments over many tries, within
    the first 80 % of an uninterrupted run timed first on this machine. A machine's load
    changes how long a run takes: a try whose command was over before its SIGINT (ended,
    or exiting: the signal is then ignored, status 0, outputs whole) is not counted, and at
    least 9 of 12 per command must be interrupted."""
    rng = random.Random(0)
    prop = _duration([*PROPAGATE, "--plot", str(tmp_path / "whole.png")], "[1/4]", tmp_path)
    comp = _duration(_compare_argv(tmp_path / "whole"), "jaxinit compare:", tmp_path)
    hits = [0, 0]
    for i in range(12):
        hits[0] += _check_propagate(tmp_path, round(rng.uniform(0.0, 0.8 * prop), 2))
        (tmp_path / str(i)).mkdir()
        hits[1] += _check_compare(tmp_path / str(i), round(rng.uniform(0.0, 0.8 * comp), 2))
    assert min(hits) >= 9, hits


def test_a_logged_interrupt_is_not_printed(caplog):
    """orbax logs an exception reaching its checkpoint waits with its traceback (absl's
    logger), KeyboardInterrupt included: under the command's handler that record is
    dropped (the command prints its one line), any other is kept."""
    from absl import logging as absl_logging

    from jaxinit.cli._interrupt import sigint

    with sigint(), caplog.at_level("INFO"):
        for exc in (KeyboardInterrupt(), ValueError("disk full")):
            try:
                raise exc
            except BaseException:
                absl_logging.exception("Save Finalize thread failed: %s", type(exc).__name__)
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ["Save Finalize thread failed: ValueError"], logged
