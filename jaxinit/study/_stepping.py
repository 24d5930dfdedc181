"""Host stepping: a chunk's training steps called from Python, a program of a few unrolled
steps per call, no loop in any compiled program (``Study(stepping="host")``, and a user's
step under ``train_population``; the rule that chooses it is in ``_layout.py``).

XLA's CPU backend runs a convolution inside a loop body 10-25x slower than outside one
(jax#12868): a scan over steps and a ``lax.map`` over members are loops. The per-member
functions come from ``_program.py`` (the built-in step, or a user's), so both ways of
stepping compute the same numbers."""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding

#: Training steps per call of a host-stepped program, unrolled in it (no loop in the program):
#: the largest of HOST_UNROLL, HOST_UNROLL - 1, ... 1 that divides ``log_every`` (a call
#: never spans two log intervals). Measured in docs/guide/studies.md (workload D).
HOST_UNROLL = 2


def _host_unroll(unroll: int, log_every: int) -> int:
    """Steps per host call: the largest of ``unroll``, ``unroll - 1``, ... 1 dividing
    ``log_every``."""
    return next(k for k in range(min(unroll, log_every), 0, -1) if log_every % k == 0)


class _HostStepped:
    """A chunk program stepped from the host: :func:`_chunk_program`'s signature and
    results, without a loop in any compiled program.

    XLA's CPU backend runs a convolution inside a loop body (a ``scan`` over steps, a
    ``lax.map`` over members) 10-25x slower than outside one (jax#12868), so a study of a
    convolutional model on the CPU calls, from Python, a program of ``k`` unrolled training
    steps (:data:`HOST_UNROLL`) ``n / k`` times per chunk, its state donated from call to
    call. The members are laid out as ``layout`` says, without a loop: ``"vmap"``, one
    program over every member (of a device); ``"loop"``, a program of one member called
    per member; an int ``b``, a program of ``b`` vmapped members called per batch. On
    several devices each device's members are stepped on that device (the calls are
    asynchronous: the devices train in parallel). The per-step math is
    :func:`_train_step`, with the same minibatch rows, keys, interval means and grad norms
    as the scanned program; metrics stay on the device until the chunk's end, where one
    program per device stacks them with the members' states (no transfer per step).
    """

    def __init__(self, member_steps: Callable, evaluate: Callable, carry: tuple, k: int,
                 log_every: int, n_logs: int, sharding: NamedSharding | None, fed: bool,
                 options: tuple, layout: Any, member_arg: bool = False) -> None:  # fmt: skip
        """``member_steps(state, c0, c1, i0, x, y, arg) -> (state, c0, c1, metrics)``: one
        member's ``k`` steps from step ``i0`` of a log interval, ``c0``, ``c1`` the
        interval's running float32 sums (shapes ``carry``), ``arg`` a per-member argument
        (a fed stream's offset, a user step's hyperparameters, or None), ``metrics`` the
        interval's record once its last call is done; ``evaluate(state, evals) -> values``
        one member's evaluation. ``member_arg``: in memory, the program takes the members'
        ``arg`` (e.g. hyperparameters) after the state: ``(state, arg, x, y, evals,
        first)``."""
        self.fed, self.sharding, self.layout, self.member_arg = fed, sharding, layout, member_arg
        self.n_logs, self.log_every, self.k, self.carry = n_logs, log_every, k, carry
        opts = dict(options) or None

        batched = layout != "loop"
        if batched:
            member_steps = jax.vmap(member_steps, in_axes=(0, 0, 0, None, None, None, 0))
            evaluate = jax.vmap(evaluate, in_axes=(0, None))
        self._steps = jax.jit(member_steps, donate_argnums=(0, 1, 2), compiler_options=opts)
        self._evaluate = jax.jit(evaluate, compiler_options=opts)

        def bounds(n: int) -> list[tuple[int, int]]:
            size = {"vmap": n, "loop": 1}.get(layout, layout)
            return [(a, min(a + size, n)) for a in range(0, n, size)]

        def split(state, offset):
            n = jax.tree.leaves(state)[0].shape[0]
            out = []
            for a, b in bounds(n):
                if batched:
                    part = jax.tree.map(lambda v, a=a, b=b: v[a:b], (state, offset))
                    shape: tuple = (b - a,)
                else:
                    part = jax.tree.map(lambda v, a=a: v[a], (state, offset))
                    shape = ()
                zeros = tuple(jnp.zeros((*shape, *c), jnp.float32) for c in carry)
                out.append((part[0], *zeros, part[1]))
            return out

        join = jnp.concatenate if batched else jnp.stack

        def merge(states, metrics, starts, ends):
            state = jax.tree.map(lambda *v: join(v), *states)
            ax = 1 if batched else 0  # the intervals' axis in a group's stacked metrics
            out = join([jnp.stack(m, axis=ax) for m in metrics])
            if ends is None:
                return state, out
            end = join(ends)
            start = join(starts) if starts is not None else jnp.zeros_like(end)
            return state, out, jnp.stack([start, end], axis=1)

        self._split = jax.jit(split, compiler_options=opts)
        self._merge = jax.jit(merge, compiler_options=opts)  # stacked: nothing to alias

    # ----------------------------------------------------------------- the host's side

    def _devices(self) -> list:
        """This process's devices of the member mesh, in mesh order (one part each)."""
        assert self.sharding is not None
        me = jax.process_index()
        return [d for d in self.sharding.mesh.devices.flat if d.process_index == me]

    @staticmethod
    def _on(tree: Any, device: Any) -> Any:
        """Every leaf's shard on ``device`` (a single-device array)."""
        return jax.tree.map(
            lambda a: next(s.data for s in a.addressable_shards if s.device == device), tree
        )

    def __call__(self, state: Any, *args: Any) -> tuple:
        if self.fed:
            x, y, offset = args
            evals, first = None, False
        elif self.member_arg:
            offset, x, y, evals, first = args
        else:
            (x, y, evals, first), offset = args, None
        if self.sharding is None:
            parts = [(state, offset, x, y, evals)]
        else:  # each device's members, stepped on that device
            parts = [self._on((state, offset, x, y, evals), d) for d in self._devices()]
        work, owner = [], []  # per member group: [state, sums, gnorm, offset]; its part
        for j, p in enumerate(parts):
            for g in self._split(p[0], p[1]):
                work.append(list(g))
                owner.append(j)
        starts = None
        if evals is not None and bool(first):
            starts = [self._evaluate(w[0], parts[j][4]) for w, j in zip(work, owner, strict=True)]
        metrics: list[list] = [[] for _ in work]  # the intervals' metrics, on the device
        calls = [np.int32(i) for i in range(0, self.log_every, self.k)]
        for _ in range(self.n_logs):
            for c, i0 in enumerate(calls):
                for w, j, m in zip(work, owner, metrics, strict=True):
                    w[0], w[1], w[2], out = self._steps(
                        w[0], w[1], w[2], i0, parts[j][2], parts[j][3], w[3]
                    )
                    if c == len(calls) - 1:
                        m.append(out)
        outs = []
        for j, p in enumerate(parts):
            mine = [g for g, o in enumerate(owner) if o == j]
            states = tuple(work[g][0] for g in mine)
            ms = tuple(tuple(metrics[g]) for g in mine)
            if evals is None:
                outs.append(self._merge(states, ms, None, None))
                continue
            ends = tuple(self._evaluate(work[g][0], p[4]) for g in mine)
            st = None if starts is None else tuple(starts[g] for g in mine)
            outs.append(self._merge(states, ms, st, ends))
        if self.sharding is None:
            return outs[0]
        return tuple(self._assemble([o[i] for o in outs]) for i in range(len(outs[0])))

    def _assemble(self, trees: list) -> Any:
        """One member-sharded global array per leaf from every device's part."""
        sharding = self.sharding
        assert sharding is not None
        n_dev = sharding.mesh.devices.size

        def one(*leaves: jax.Array) -> jax.Array:
            shape = (leaves[0].shape[0] * n_dev, *leaves[0].shape[1:])
            return jax.make_array_from_single_device_arrays(shape, sharding, list(leaves))

        return jax.tree.map(one, *trees)

    def lower(self, state: Any, *args: Any) -> _HostLowered:
        """The step (and evaluation) programs lowered for one member group's shapes (this
        thread's jax configuration), to compile ahead like a jitted program's ``lower``."""
        return _HostLowered(self, state, args)


class _HostLowered:
    """:class:`_HostStepped`'s programs lowered; ``compile()`` compiles them (on the
    engine's compile thread) and gives the callable program with a memory analysis: the
    members' state twice (a chunk splits it into member groups, then stacks them back),
    the data, and the step program's temporaries (one group at a time)."""

    def __init__(self, program: _HostStepped, state: Any, args: tuple) -> None:
        self.program = program
        sharding = program.sharding
        devices = program._devices() if sharding is not None else [None]
        n_dev = 1 if sharding is None else sharding.mesh.devices.size
        place = None if devices[0] is None else jax.sharding.SingleDeviceSharding(devices[0])

        def sds(shape: tuple, dtype: Any) -> jax.ShapeDtypeStruct:
            return jax.ShapeDtypeStruct(shape, dtype, sharding=place)

        n = jax.tree.leaves(state)[0].shape[0] // n_dev
        lead: tuple = (
            ()
            if program.layout == "loop"
            else (min(n, {"vmap": n}.get(program.layout, program.layout)),)
        )
        group = jax.tree.map(lambda a: sds((*lead, *a.shape[1:]), a.dtype), state)
        sums, gnorm = (sds((*lead, *c), jnp.float32) for c in program.carry)
        if program.fed:
            x, y, _ = args
            evals, offset = None, sds(lead, jnp.int32)
        else:
            x, y, evals, _ = args
            offset = None
        x, y, evals = jax.tree.map(lambda a: sds(a.shape, a.dtype), (x, y, evals))
        i0 = sds((), jnp.int32)
        self.steps = program._steps.lower(group, sums, gnorm, i0, x, y, offset)
        self.evaluate = None if evals is None else program._evaluate.lower(group, evals)

        def nbytes(tree: Any) -> int:
            # a PRNG key's dtype has no numpy itemsize: its key data (threefry: 2 uint32)
            return sum(math.prod(a.shape) * getattr(a.dtype, "itemsize", 8)
                       for a in jax.tree.leaves(tree))  # fmt: skip

        self.state_bytes = nbytes(state) // n_dev
        self.data_bytes = nbytes((x, y, evals))

    def compile(self) -> _HostCompiled:
        steps = self.steps.compile()
        evaluate = None if self.evaluate is None else self.evaluate.compile()
        temp = code = 0
        for c in (steps, evaluate):
            m = None if c is None else c.memory_analysis()
            if m is not None:
                temp = max(temp, int(m.temp_size_in_bytes))
                code += int(m.generated_code_size_in_bytes)
        analysis = types.SimpleNamespace(
            argument_size_in_bytes=self.state_bytes + self.data_bytes,
            output_size_in_bytes=self.state_bytes,
            alias_size_in_bytes=0,
            temp_size_in_bytes=temp,
            generated_code_size_in_bytes=code,
        )
        return _HostCompiled(self.program, analysis)


class _HostCompiled:
    """A compiled :class:`_HostStepped`: callable like it, with a ``memory_analysis()``."""

    def __init__(self, program: _HostStepped, analysis: Any) -> None:
        self.program, self.analysis = program, analysis

    def __call__(self, *args: Any) -> tuple:
        return self.program(*args)

    def memory_analysis(self) -> Any:
        return self.analysis
