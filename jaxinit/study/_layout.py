"""How a study's members are laid out in a compiled program, and how many go in one.

Two decisions, each a pure function here so that the engine calls them at a few places:

* **Layout** (:func:`choose_layout`, :func:`over_members`): the member function (one
  member's ``scan`` of training steps) runs over the member axis either ``jax.vmap``-ed
  (``"vmap"``: every operation batched over members), as a loop inside the program
  (``"loop"``: ``jax.lax.map``, one member per iteration), or in vmapped batches of ``b``
  members per loop iteration (an int ``b``: ``jax.lax.map(..., batch_size=b)``). On several
  devices a loop runs per device (``jax.shard_map`` over the member axis), so members are
  still trained in parallel across devices. ``"auto"`` is a rule per platform, measured
  on this project's CPU (experiments/bench_multiseed.py, workload D; table in
  docs/guide/studies.md): on the CPU a program whose model has a convolution runs members
  in a loop — a vmapped convolution has a kernel per member, which ``vmap`` turns into a
  grouped convolution (``feature_group_count`` = members) that XLA's CPU backend runs
  slower per member than one member's convolution, more so the more members — and every
  other program (and every program on another platform) is vmapped: batched matrix
  products are what vmap makes fast, and an MLP population's numbers stay those of the
  vmapped engine.
* **Stepping** (:func:`choose_stepping`): a chunk's steps are scanned in one program
  (``"scan"``) or called from the host (``"host"``: a program of ``HOST_UNROLL`` = 2
  unrolled steps per call, the state donated between calls, ``_stepping._HostStepped``), the
  members laid out as above without a loop (``"loop"``: a program per member). XLA's CPU
  backend runs convolutions inside any loop body — a scan over steps, a ``lax.map`` over
  members — 10-25x slower than outside one (jax#12868), so ``"auto"`` steps a model with
  a convolution on the CPU from the host and scans everything else. Measured on workload D
  (docs/guide/studies.md; 2 cores shared with other sessions): naive jitted-step loop /
  host-stepped engine = 1.05 at load ~11 and 1.23 at load ~4 (paired rounds), where the
  scanned engine gave 0.11; a vmapped member group, even host-stepped, runs grouped
  convolutions at ~2.5x a program per member.
* **Member groups** (:func:`memory_budget`, :func:`program_bytes`, :func:`plan_group`):
  how many members go in one program so that it fits in memory. The compiled training
  program's ``memory_analysis()`` (arguments + outputs + temporaries − donated buffers) is
  measured at the whole population (by the engine, on the very program it compiles ahead
  for the run, in parallel with the initial state: :func:`whole_population`) and, only
  when that does not fit the budget, at one member per device (:func:`plan_group`); a linear fit (fixed bytes: data and code; bytes per member) gives the
  largest group that fits. The budget is ``memory_budget`` (bytes per device) when given;
  else the device's free memory from ``device.memory_stats()`` (times
  :data:`DEVICE_FRACTION`), or on the CPU (no memory stats) :data:`HOST_FRACTION` of the
  host's available RAM, shared by the host's devices.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxinit.study._adapters import _Model, _traced_io

#: What ``Study(member_layout=...)`` accepts (besides a positive int batch size).
LAYOUT_NAMES = ("auto", "vmap", "loop")

#: What ``Study(stepping=...)`` accepts.
STEPPING_NAMES = ("auto", "scan", "host")

#: Fraction of a device's free memory (``memory_stats``: ``bytes_limit - bytes_in_use``) a
#: member group may use: the rest is left to the runtime's own buffers, the evaluation and
#: transfers between chunks, which the program's memory analysis does not count.
DEVICE_FRACTION = 0.8

#: Fraction of the host's available RAM (``MemAvailable``) the CPU devices' member groups may
#: use together: the host also holds the dataset, the results table, the Python process and
#: whatever else runs on the machine; the CPU's memory analysis counts the program's buffers,
#: not the allocator's overhead.
HOST_FRACTION = 0.5

#: The primitives that make ``"auto"`` loop over members on the CPU.
_CONV_PRIMITIVES = frozenset({"conv_general_dilated"})


def check_member_layout(value: Any) -> str | int:
    """``Study.member_layout`` checked: ``"auto"``, ``"vmap"``, ``"loop"`` or a positive int
    (numpy integers accepted; an int ``1`` is the loop)."""
    if isinstance(value, str) and value in LAYOUT_NAMES:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        if int(value) >= 1:
            return "loop" if int(value) == 1 else int(value)
    raise ValueError(
        f"Study: member_layout must be 'auto', 'vmap', 'loop' or a positive int (members"
        f" vmapped per loop iteration), got {value!r}"
    )


def check_stepping(value: Any, fn: str = "Study") -> str:
    """``Study.stepping`` (or ``fn``'s ``stepping``) checked: ``"auto"``, ``"scan"`` or
    ``"host"``."""
    if isinstance(value, str) and value in STEPPING_NAMES:
        return value
    raise ValueError(
        f"{fn}: stepping must be 'auto', 'scan' (the steps scanned in one program) or"
        f" 'host' (a program of a few unrolled steps called from the host), got {value!r}"
    )


def check_memory_budget(value: Any) -> int | None:
    """``Study.memory_budget`` checked: None or a positive int of bytes per device."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        if int(value) >= 1:
            return int(value)
    raise ValueError(
        "Study: memory_budget must be None (the device's memory) or a positive int of bytes"
        f" per device, e.g. 2 * 2**30, got {value!r}"
    )


# --------------------------------------------------------------------------- layout


def _primitives(jaxpr: Any) -> set[str]:
    """Every primitive's name in ``jaxpr`` and its sub-jaxprs (scan, cond, custom_vjp...)."""
    names: set[str] = set()
    todo = [jaxpr]
    while todo:
        j = todo.pop()
        for eqn in j.eqns:
            names.add(eqn.primitive.name)
            for v in eqn.params.values():
                for sub in v if isinstance(v, list | tuple) else (v,):
                    if isinstance(sub, jax.extend.core.ClosedJaxpr):
                        todo.append(sub.jaxpr)
                    elif isinstance(sub, jax.extend.core.Jaxpr):
                        todo.append(sub)
    return names


def has_convolution(fn: Callable, *args: Any) -> bool:
    """Whether ``fn(*args)`` (traced abstractly, nothing compiled) has a convolution."""
    jaxpr = jax.make_jaxpr(fn)(*args)
    return bool(_primitives(jaxpr.jaxpr) & _CONV_PRIMITIVES)


def model_convolves(model: _Model) -> bool:
    """Whether a model adapter's forward pass has a convolution, read from the jaxpr that
    the study's validation traces anyway (``_adapters._traced_io``, cached per model:
    nothing more is traced or compiled). Its backward pass is made of convolutions too,
    and training mode (BatchNorm's statistics, dropout) adds none, so the forward pass
    decides."""
    return bool(_primitives(_traced_io(model)[2].jaxpr) & _CONV_PRIMITIVES)


def choose_layout(requested: str | int, platform: str, convolution: bool) -> tuple[Any, str]:
    """The layout of one program and why: ``(layout, reason)``, ``layout`` being ``"vmap"``,
    ``"loop"`` or an int batch size.

    Args:
      requested: ``Study.member_layout`` (checked): ``"auto"`` applies the rule below; any
        other value is used as given.
      platform: the devices' platform (``"cpu"``, ``"gpu"``, ``"tpu"``).
      convolution: whether the member's step has a convolution (:func:`has_convolution`).

    The rule (``"auto"``): on the CPU, a model with convolutions runs its members in a loop
    (one member per iteration); everything else is vmapped. Measured on the CPU (2 cores,
    docs/guide/studies.md): a BatchNorm ResNet's vmapped members cost several times a
    looped member's step (grouped convolutions), and the gap grows with the population;
    an MLP's vmapped members cost a fraction of a looped member's (batched matrix products).
    """
    if requested != "auto":
        return requested, f"member_layout={requested!r} given"
    if platform == "cpu" and convolution:
        return "loop", (
            "auto: convolutions on the CPU run a member per loop iteration (vmapped, they"
            " become grouped convolutions, slower per member than a loop)"
        )
    why = "convolutions on " + platform if convolution else "no convolution"
    return "vmap", f"auto: {why}: members vmapped (batched operations)"


def choose_stepping(requested: str, platform: str, convolution: bool) -> tuple[str, str]:
    """How a program's steps run, and why: ``("scan" | "host", reason)``.

    ``"scan"``: one program scans a chunk's steps (no Python per step). ``"host"``: a
    program of a few unrolled steps (``_stepping.HOST_UNROLL``) called from Python per
    step, its state donated (``_stepping._HostStepped``). The rule (``"auto"``): on the CPU
    a model with convolutions is stepped from the host — XLA's CPU backend runs a
    convolution inside a loop body 10-25x slower than outside one (jax#12868), and a scan
    over steps is a loop; everything else (MLPs, every model on GPU and TPU) is scanned."""
    if requested != "auto":
        return requested, f"stepping={requested!r} given"
    if platform == "cpu" and convolution:
        return "host", (
            "auto: convolutions on the CPU are stepped from the host (inside a loop, a scan"
            " over steps, XLA's CPU backend runs them 10-25x slower: jax#12868)"
        )
    why = "convolutions on " + platform if convolution else "no convolution"
    return "scan", f"auto: {why}: the steps scanned in one program"


def over_members(
    fn: Callable, in_axes: Sequence[int | None], layout: Any, sharding: NamedSharding | None
) -> Callable:
    """``fn`` (one member's function) over the member axis in ``layout``.

    ``in_axes`` says, per positional argument, 0 (one row per member) or None (shared);
    every output has the member axis first. ``"vmap"`` is ``jax.vmap(fn, in_axes)``;
    ``"loop"`` is ``jax.lax.map`` over the members (one per iteration); an int ``b`` is
    ``jax.lax.map(..., batch_size=b)`` (``b`` members vmapped per iteration, the remainder
    in one more vmap). With a member ``sharding`` the loop runs on every device over its
    own members (``jax.shard_map``): nothing is gathered, the devices work in parallel.
    """
    axes = tuple(in_axes)
    if layout == "vmap":
        return jax.vmap(fn, in_axes=axes)
    batch_size = None if layout == "loop" else int(layout)

    def looped(*args: Any) -> Any:
        mapped = tuple(a for a, ax in zip(args, axes, strict=True) if ax == 0)

        def one(rows: tuple) -> Any:
            it = iter(rows)
            return fn(*(next(it) if ax == 0 else a for a, ax in zip(args, axes, strict=True)))

        return jax.lax.map(one, mapped, batch_size=batch_size)

    if sharding is None:
        return looped
    spec = sharding.spec
    in_specs = tuple(spec if ax == 0 else P() for ax in axes)
    return jax.shard_map(
        looped, mesh=sharding.mesh, in_specs=in_specs, out_specs=spec, check_vma=False
    )


# --------------------------------------------------------------------------- memory


def _host_available_bytes() -> int | None:
    """The host's available RAM (``MemAvailable`` of /proc/meminfo, else free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget(devices: Sequence[Any], given: int | None = None) -> tuple[int | None, str]:
    """Bytes one device's member group may use, and where the number comes from.

    ``given`` (``Study.memory_budget``) wins. Else the first device's
    ``memory_stats()`` (``bytes_limit - bytes_in_use``, times :data:`DEVICE_FRACTION`)
    where the platform reports it (GPU, TPU); else (the CPU) :data:`HOST_FRACTION` of the
    host's available RAM divided among this process's devices. ``(None, reason)`` where
    nothing is known, and in a study of several processes (each would read its own free
    memory, and their groups must agree): the group is then the whole population."""
    if given is not None:
        return given, f"memory_budget={given} given"
    if jax.process_count() > 1:  # each process would read its own memory: groups could differ
        return None, "several processes: give memory_budget= to size member groups"
    device = devices[0]
    try:
        stats = device.memory_stats()
    except Exception:  # a backend without memory stats
        stats = None
    if stats and stats.get("bytes_limit"):
        free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return int(free * DEVICE_FRACTION), (
            f"{DEVICE_FRACTION:.0%} of {device.platform}'s free memory ({free} bytes)"
        )
    host = _host_available_bytes()
    if host is None:
        return None, "no memory figure available"
    local = sum(1 for d in devices if d.process_index == jax.process_index())
    return int(host * HOST_FRACTION / max(local, 1)), (
        f"{HOST_FRACTION:.0%} of the host's available RAM ({host} bytes)"
        f" shared by {max(local, 1)} device(s)"
    )


def program_bytes(compiled: Any) -> int | None:
    """Bytes one device needs to run ``compiled`` (a ``jax.stages.Compiled``): arguments,
    outputs and temporaries, less the outputs that reuse donated arguments; None where the
    backend gives no memory analysis."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        return None
    if m is None:
        return None
    return int(
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        - m.alias_size_in_bytes
        + m.temp_size_in_bytes
        + m.generated_code_size_in_bytes
    )


def group_size(bytes_per_member: float, fixed_bytes: float, budget: int) -> int:
    """The most members one device can hold: ``(budget - fixed) // per member`` (at least 1
    is the caller's check)."""
    if bytes_per_member <= 0:
        return 2**31 - 1
    return max(0, math.floor((budget - fixed_bytes) / bytes_per_member))


def whole_population(
    whole: int | None, budget: int | None, budget_source: str
) -> tuple[bool, dict]:
    """Whether the whole population's training program (``whole`` bytes per device, from
    :func:`program_bytes`; None where not measured) fits ``budget``, and the figures for
    ``result.info``. Unknown figures count as fitting (one group, as without a budget)."""
    info: dict[str, Any] = {"memory_budget": budget, "memory_budget_source": budget_source}
    if budget is None:
        info["group_reason"] = f"whole population ({budget_source})"
        return True, info
    info["bytes_whole_population"] = whole
    if whole is None:
        info["group_reason"] = "whole population (no memory analysis on this backend)"
        return True, info
    if whole <= budget:
        info["group_reason"] = f"whole population fits: {whole} bytes per device <= budget {budget}"
        return True, info
    return False, info


def plan_group(
    measure: Callable[[int], int | None],
    n_members: int,
    n_devices: int,
    budget: int | None,
    budget_source: str,
) -> tuple[int, dict]:
    """The member group (members per program) that fits ``budget`` bytes per device, and
    the figures it was chosen from.

    ``measure(k)`` compiles the training program for ``k`` members per device and returns
    :func:`program_bytes` of it (per device). The whole population is measured first; if
    it fits (or nothing can be measured), it is one group. Else one member per device is
    measured too, and the line through the two points (fixed bytes + bytes per member)
    gives the largest group that fits, checked by measuring it (and shrunk if the program
    grew faster than the line). A budget smaller than one member per device needs is
    refused (``ValueError``) with the numbers and what to do.
    """
    full = math.ceil(n_members / n_devices)
    whole = None if budget is None else measure(full)
    fits, info = whole_population(whole, budget, budget_source)
    if fits:
        return n_members, info
    assert whole is not None and budget is not None
    one = measure(1) if full > 1 else whole
    assert one is not None  # the backend gave an analysis for the whole population
    if one > budget:
        raise ValueError(
            f"run_study: memory budget of {budget} bytes per device ({budget_source}) is"
            f" too small for one member per device: its training program needs {one}"
            " bytes; give Study(memory_budget=...) of at least that many bytes, a smaller"
            " model or batch_size, or more devices"
        )
    per = (whole - one) / (full - 1)
    fixed = one - per
    k = min(full, max(1, group_size(per, fixed, budget)))
    used = measure(k) if k > 1 else one
    while used is not None and used > budget and k > 1:
        k = max(1, min(k - 1, math.floor(k * budget / used)))
        used = measure(k) if k > 1 else one
    info.update(
        bytes_per_member=int(per),
        fixed_bytes=int(fixed),
        bytes_per_group=used,
        group_reason=(
            f"{full} members per device need {whole} bytes > budget {budget}: groups of"
            f" {k} per device ({used} bytes; {int(fixed)} fixed + {int(per)} per member)"
        ),
    )
    return min(n_members, k * n_devices), info
