"""The compiled training program: ``jit(vmap(scan(scan(step))))`` over the member axis
(or, host-stepped, a program of a few unrolled steps called from Python: :class:`_HostStepped`),
the objective (built-in losses or the user's ``loss_fn``), and evaluation."""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxinit.study._adapters import _Model
from jaxinit.study._layout import over_members


class MemberState(NamedTuple):
    params: Any
    opt_state: Any
    data_key: jax.Array
    step: jax.Array
    model_state: Any = None  # BatchNorm statistics, nnx rng streams ({} when stateless)
    noise_key: Any = None  # per-member key: fold_in(noise_key, step) for dropout, loss_fn
    extra: Any = None  # a user step's own state (e.g. an EMA of the parameters)


class TrainState(NamedTuple):
    """One member's state as a user's training step sees it (one member: no member axis).

    Attributes:
      params: the trained parameters.
      opt_state: the optimizer's state (with the member's hyperparameters written into an
        ``optax.inject_hyperparams`` state), or ``optax.EmptyState()`` without an optimizer.
      model_state: what the model carries besides parameters (linen collections such as
        ``batch_stats``, nnx's other variables); ``{}`` when stateless.
      extra: the step's own state, from ``make_population(extra=...)`` (e.g. an EMA of
        the parameters); None without.

    Example:
      A step given to :func:`jaxinit.train_population` returns the state it was given with
      new fields:

      >>> import optax
      >>> params, tx = {"w": jnp.ones(3)}, optax.sgd(0.1)
      >>> state = jaxinit.TrainState(params, tx.init(params))
      >>> grads = {"w": jnp.ones(3)}
      >>> updates, opt_state = tx.update(grads, state.opt_state, state.params)
      >>> state = state._replace(params=optax.apply_updates(state.params, updates),
      ...                        opt_state=opt_state)
      >>> [round(float(w), 3) for w in state.params["w"]], state.extra
      ([0.9, 0.9, 0.9], None)
    """

    params: Any
    opt_state: Any
    model_state: Any = None
    extra: Any = None


def _optax_promotion():
    """optax mixes Python floats with int32 step counts (adam's bias correction), which
    jax's strict dtype promotion rejects; the user's promotion mode must not break a
    standard optimizer, so its calls are traced with standard promotion."""
    return jax.numpy_dtype_promotion("standard")


@dataclass(frozen=True)
class _Objective:
    """The training objective: a built-in loss, or the user's ``loss_fn(model, batch, key)
    -> (loss, metrics)``; ``names`` are its extra metrics (e.g. ``("accuracy",)``)."""

    loss: str  # "cross_entropy", "mse" or "custom"
    fn: Callable | None = None
    names: tuple[str, ...] = ()

    def __call__(self, model_fn: Callable, batch: tuple, key: Any) -> tuple[Any, list]:
        if self.fn is not None:
            loss, metrics = self.fn(model_fn, batch, key)
            return loss, [jnp.asarray(metrics[n], jnp.float32) for n in self.names]
        x, y = batch
        out = model_fn(x)
        if self.loss == "cross_entropy":
            loss = optax.softmax_cross_entropy_with_integer_labels(out, y).mean()
            return loss, [(jnp.argmax(out, -1) == y).mean(dtype=jnp.float32)]
        err = out - y.reshape(out.shape)
        return 0.5 * jnp.mean(jnp.sum(err**2, axis=-1)), []

    def metrics(self, prefix: str) -> tuple[str, ...]:
        return (f"{prefix}_loss", *(f"{prefix}_{n}" for n in self.names))


def _objective_value(model, objective, params, mstate, x, y, key, train):
    """(loss, (metrics vector [loss, *extra], new model state)) of one member on (x, y)."""
    states = [mstate]
    if train:
        model_key = None if key is None or not model.stochastic else jax.random.fold_in(key, 1)

        def model_fn(inputs):
            out, new = model.apply_train(params, states[-1], inputs, model_key)
            states.append(new)
            return out

    else:

        def model_fn(inputs):
            return model.apply(params, inputs, mstate)

    loss, extra = objective(model_fn, (x, y), key)
    loss = jnp.asarray(loss, jnp.float32)
    return loss, (jnp.stack([loss, *extra]), states[-1])


def _global_norm(tree: Any) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def _train_step(
    model: _Model, optimizer: optax.GradientTransformation, objective: _Objective, log_every: int
) -> Callable:
    """One member's training step ``((state, sums, gnorm), (i, idx), x, y) -> ((state, sums
    + metrics, gnorm), None)``: ``i`` is the step's position in its log interval (the grad
    norm is computed at the interval's last step only), ``idx`` its minibatch rows. The
    scanned program (:func:`_chunk_program`) and the host-stepped one
    (:class:`_HostStepped`) share it, so both compute the same numbers."""
    needs_key = model.stochastic or objective.fn is not None

    def step(carry, inputs, x, y):
        state, sums, last_gnorm = carry
        i, idx = inputs
        # a fresh key per member and step: dropout and the user's loss_fn draw from it
        key = jax.random.fold_in(state.noise_key, state.step) if needs_key else None

        def value(p):
            return _objective_value(model, objective, p, state.model_state, x[idx], y[idx],
                                    key, True)  # fmt: skip

        (_, (values, model_state)), grads = jax.value_and_grad(value, has_aux=True)(state.params)
        # The grad norm is recorded for the interval's last step only. ``i`` comes from the
        # scan's xs (or the host), not from the member state, so it is unbatched under vmap
        # and the cond stays a real branch (a batched predicate would evaluate both sides).
        gnorm = jax.lax.cond(
            i == log_every - 1, lambda g: _global_norm(g), lambda g: last_gnorm, grads
        )
        with _optax_promotion():
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        state = state._replace(
            params=params, opt_state=opt_state, step=state.step + 1, model_state=model_state
        )
        return (state, sums + values, gnorm), None

    return step


def _batch_indices(state: Any, steps: jax.Array, x: jax.Array, batch_size: int, fed: bool,
                   offset: Any) -> jax.Array:  # fmt: skip
    """The minibatch rows of one member's ``steps`` (a vector of step numbers), ``(len(steps),
    batch_size)``: drawn in-graph (``randint(fold_in(data_key, step))``, vectorised over the
    steps: the same numbers as one draw per step), or consecutive rows of the member's
    host-fed stream from ``offset``."""
    if fed:  # the host assembled them: consecutive rows of the member's stream
        return offset + steps[:, None] * batch_size + jnp.arange(batch_size)[None, :]
    return jax.vmap(
        lambda s: jax.random.randint(
            jax.random.fold_in(state.data_key, s), (batch_size,), 0, x.shape[0]
        )
    )(steps)


@functools.lru_cache(maxsize=32)
def _chunk_program(
    model: _Model,
    optimizer: optax.GradientTransformation,
    objective: _Objective,
    batch_size: int,
    log_every: int,
    n_logs: int,
    sharding: NamedSharding | None,
    fed: bool = False,
    n_evals: int = 0,
    options: tuple = (),
    layout: Any = "vmap",
    stepping: str = "scan",
    unroll: int = 2,
) -> Callable:
    """jit(vmap(scan(scan(step)))) for ``n_logs * log_every`` steps; cached per config.

    ``layout``: how the member function runs over the member axis, ``"vmap"``, ``"loop"``
    or an int batch (:func:`jaxinit.study._layout.over_members`).

    ``stepping="host"``: the same steps called from the host, a program of ``unroll``
    (:data:`HOST_UNROLL`) unrolled steps per call (no loop in any program:
    :class:`_HostStepped`), with the same signature, results and ``lower(...).compile()``.

    In memory (``fed=False``) the program is ``(state, x, y, evals, first) -> (state,
    metrics, values)``: ``evals`` holds ``n_evals`` evaluation sets ``(x, y)``, and
    ``values`` (members, 2, metrics of every set) their evaluation of the chunk's first
    state (only where ``first``, an unbatched flag, so the branch is real; zeros
    otherwise) and of its last: one program and one transfer per chunk, no evaluation
    program to compile and dispatch.

    ``fed``: the minibatches come from the host (``_feed``): ``x``, ``y`` hold the chunk's
    batches of every data stream, flattened, and the program takes a fourth argument, per
    member the row of its stream's batch for step 0 (members of one seed share a stream);
    it returns ``(state, metrics)`` (the feed evaluates)."""
    n_metrics = 1 + len(objective.names)
    step = _train_step(model, optimizer, objective, log_every)
    if stepping == "host":
        k = _host_unroll(unroll, log_every)

        def member_steps(state, sums, gnorm, i0, x, y, offset):
            # the first call of an interval starts its sums afresh (0 + v is v: the bits of
            # the scan's zeros)
            sums = jnp.where(i0 == 0, jnp.zeros_like(sums), sums)
            gnorm = jnp.where(i0 == 0, jnp.zeros_like(gnorm), gnorm)
            for j in range(k):
                idx = _batch_indices(state, state.step[None], x, batch_size, fed, offset)[0]
                (state, sums, gnorm), _ = step((state, sums, gnorm), (i0 + j, idx), x, y)
            metrics = jnp.concatenate(
                [sums / log_every, jnp.stack([gnorm, _global_norm(state.params)])]
            )
            return state, sums, gnorm, metrics

        def values(state, evals):
            return jnp.concatenate([_member_values(model, objective, state, *xy) for xy in evals])

        return _HostStepped(member_steps, values, ((n_metrics,), ()), k, log_every, n_logs,
                            sharding, fed, options, layout)  # fmt: skip

    def interval(state, _, x, y, offset=None):
        # All of the interval's minibatch indices in one vectorised draw: the same numbers
        # as one ``randint(fold_in(data_key, step))`` per step, without a tiny threefry
        # kernel per step.
        steps = state.step + jnp.arange(log_every)
        idx = _batch_indices(state, steps, x, batch_size, fed, offset)
        zero = jnp.zeros((), jnp.float32)
        # two steps per loop iteration: ~10 % faster on the CPU (fewer loop iterations to
        # dispatch), the same numbers, no longer to compile (measured on workloads A and B
        # of experiments/bench_multiseed.py; unrolling more compiles longer, gains nothing)
        (state, sums, gnorm), _ = jax.lax.scan(
            functools.partial(step, x=x, y=y),
            (state, jnp.zeros(n_metrics, jnp.float32), zero),
            (jnp.arange(log_every), idx),
            unroll=2,
        )
        metrics = jnp.concatenate(
            [sums / log_every, jnp.stack([gnorm, _global_norm(state.params)])]
        )
        return state, metrics

    def train(state, x, y, offset=None):
        body = functools.partial(interval, x=x, y=y, offset=offset)
        return jax.lax.scan(body, state, length=n_logs)

    width = n_evals * n_metrics

    def evaluate(state, evals):
        return jnp.concatenate([_member_values(model, objective, state, *xy) for xy in evals])

    def skip(state, evals):
        return jnp.zeros(width, jnp.float32)

    def member(state, x, y, evals, first):
        start = jax.lax.cond(first, evaluate, skip, state, evals)
        state, metrics = train(state, x, y)
        return state, metrics, jnp.stack([start, evaluate(state, evals)])

    # the member axis: vmapped, or a loop inside the program (study/_layout.py)
    run: Callable = (
        over_members(train, (0, None, None, 0), layout, sharding)
        if fed
        else over_members(member, (0, None, None, None, None), layout, sharding)
    )
    compiler_options = dict(options) or None
    if sharding is None:
        return jax.jit(run, donate_argnums=0, compiler_options=compiler_options)
    outs = (sharding,) * (2 if fed else 3)
    return jax.jit(run, donate_argnums=0, out_shardings=outs, compiler_options=compiler_options)


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


_COMPILER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxinit-compile")
_COMPILED: dict[Any, concurrent.futures.Future] = {}


def _compile_ahead(program: Any, *args: Any) -> concurrent.futures.Future:
    """The compiled ``program`` for ``args`` (arrays or ``jax.ShapeDtypeStruct``, with
    their shardings), as a future: lowered here, so that tracing reads this thread's jax
    configuration (``threefry_partitionable``, ``default_device``, promotion), and compiled
    on a worker thread while the caller goes on (XLA releases the GIL). The training
    program then compiles while the initial state is compiled and computed: on two cores
    a cold start takes the longer of the two instead of their sum. Cached per program and
    signature."""
    leaves, treedef = jax.tree.flatten(args)
    sig = (
        program,
        treedef,
        tuple((a.shape, a.dtype, getattr(a, "sharding", None)) for a in leaves),
    )
    future = _COMPILED.get(sig)
    if future is None:
        future = _COMPILER.submit(program.lower(*args).compile)
        if len(_COMPILED) >= 64:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[sig] = future
    return future


_EVAL_KEY = 0x7FFFFFFF  # the loss_fn's key in evaluation: fold_in(noise key, this)


def _member_values(model: _Model, objective: _Objective, state: Any, x, y) -> jax.Array:
    """One member's evaluation metrics ``[loss, *extra]`` on ``(x, y)``."""
    key = jax.random.fold_in(state.noise_key, _EVAL_KEY)
    _, (values, _) = _objective_value(
        model, objective, state.params, state.model_state, x, y, key, False
    )
    return values


@functools.lru_cache(maxsize=32)
def _eval_program(model: _Model, objective: _Objective, options: tuple = ()) -> Callable:
    """jit(vmap(member state -> metrics on (x, y))) (data fed from the host)."""
    run = jax.vmap(functools.partial(_member_values, model, objective), in_axes=(0, None, None))
    return jax.jit(run, compiler_options=dict(options) or None)


def _compiler_options(platform: str) -> tuple:
    """XLA options of the study's programs (per program: jax's configuration is left as it
    is). On the CPU, LLVM's optimisation level 1 instead of 2: the programs compile ~40 %
    faster and the training program of a small model runs ~15 % faster (workload A of
    experiments/bench_multiseed.py; B equal). The initial parameters are the same bits as
    at level 2 (level 0 changes them: it forms no fused multiply-adds); training numbers
    differ in the last bits (summation order). A level the user set in ``XLA_FLAGS`` wins."""
    if platform != "cpu" or "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", ""):
        return ()
    return (("xla_backend_optimization_level", 1),)


def _mesh_sharding(n_members: int, devices: list) -> tuple[NamedSharding | None, int]:
    if len(devices) == 1:
        return None, n_members
    # Auto axes: XLA propagates the member sharding through the vmapped program.
    mesh = jax.make_mesh(
        (len(devices),), ("members",), axis_types=(AxisType.Auto,), devices=devices
    )
    padded = math.ceil(n_members / len(devices)) * len(devices)
    return NamedSharding(mesh, P("members")), padded


# Part 2: the same program around a user's step ``step(state, batch, key, hparams) ->
# (state, metrics)`` and evaluation ``evaluate(state, batch) -> metrics``.


def _user_view(state: MemberState) -> TrainState:
    return TrainState(state.params, state.opt_state, state.model_state, state.extra)


@dataclass(frozen=True)
class _UserStep:
    """A user's step and evaluation with what the program needs to know of them (hashable
    by the functions' identity: compiled programs are cached per step)."""

    step: Callable
    evaluate: Callable | None
    hparams: tuple[str, ...]
    metrics: tuple[str, ...]  # the step's metric names, in recording order
    last: tuple[str, ...]  # those recorded at an interval's last step (the others: mean)
    eval_metrics: tuple[str, ...] = ()

    def train(self, state: MemberState, batch: tuple, values: jax.Array) -> tuple:
        key = jax.random.fold_in(state.noise_key, state.step)
        hp = {n: values[j] for j, n in enumerate(self.hparams)}
        new, metrics = self.step(_user_view(state), batch, key, hp)
        state = state._replace(
            params=new.params, opt_state=new.opt_state, model_state=new.model_state,
            extra=new.extra, step=state.step + 1,
        )  # fmt: skip
        return state, [jnp.asarray(metrics[n], jnp.float32) for n in self.metrics]

    def values(self, state: MemberState, x: jax.Array, y: jax.Array) -> jax.Array:
        assert self.evaluate is not None
        out = self.evaluate(_user_view(state), (x, y))
        return jnp.stack([jnp.asarray(out[n], jnp.float32) for n in self.eval_metrics])


@functools.lru_cache(maxsize=32)
def _step_program(
    user: _UserStep,
    batch_size: int,
    log_every: int,
    n_logs: int,
    sharding: NamedSharding | None,
    n_evals: int = 0,
    options: tuple = (),
) -> Callable:
    """jit(vmap(scan(scan(user step)))) for ``n_logs * log_every`` steps, the user's step in
    the built-in one's place (:func:`_chunk_program`, in memory): ``(state, hparams, x, y,
    evals, first) -> (state, metrics, values)``, the same minibatch indices, keys and scans;
    each interval records the mean of a metric over its steps, or for names in
    ``user.last`` its value at the last step."""
    is_last = jnp.asarray([n in user.last for n in user.metrics], bool)
    k = len(user.metrics)

    def interval(state, _, values, x, y):
        steps = state.step + jnp.arange(log_every)
        idx = jax.vmap(
            lambda s: jax.random.randint(
                jax.random.fold_in(state.data_key, s), (batch_size,), 0, x.shape[0]
            )
        )(steps)

        def step(carry, inputs):
            state, sums, lasts = carry
            i, rows = inputs
            state, metrics = user.train(state, (x[rows], y[rows]), values)
            m = jnp.stack(metrics) if metrics else jnp.zeros(0, jnp.float32)
            lasts = jnp.where(i == log_every - 1, m, lasts)
            return (state, sums + m, lasts), None

        zeros = jnp.zeros(k, jnp.float32)
        (state, sums, lasts), _ = jax.lax.scan(
            step, (state, zeros, zeros), (jnp.arange(log_every), idx), unroll=2
        )
        return state, jnp.where(is_last, lasts, sums / log_every)

    width = n_evals * len(user.eval_metrics)

    def evaluate(state, evals):
        if not width:
            return jnp.zeros(0, jnp.float32)
        return jnp.concatenate([user.values(state, *xy) for xy in evals])

    def skip(state, evals):
        return jnp.zeros(width, jnp.float32)

    def member(state, values, x, y, evals, first):
        start = jax.lax.cond(first, evaluate, skip, state, evals)
        body = functools.partial(interval, values=values, x=x, y=y)
        state, metrics = jax.lax.scan(body, state, length=n_logs)
        return state, metrics, jnp.stack([start, evaluate(state, evals)])

    run = jax.vmap(member, in_axes=(0, 0, None, None, None, None))
    compiler_options = dict(options) or None
    if sharding is None:
        return jax.jit(run, donate_argnums=0, compiler_options=compiler_options)
    return jax.jit(
        run, donate_argnums=0, out_shardings=(sharding,) * 3, compiler_options=compiler_options
    )


def _user_host_program(user: _UserStep, batch_size: int, log_every: int, n_logs: int,
                       sharding: NamedSharding | None, n_evals: int = 0, options: tuple = (),
                       layout: Any = "vmap", unroll: int = HOST_UNROLL) -> _HostStepped:  # fmt: skip
    """:func:`_step_program` stepped from the host (:class:`_HostStepped`): the same
    signature, minibatch rows, keys and interval records, ``unroll`` unrolled user steps
    per call and no loop in any program."""
    is_last = jnp.asarray([n in user.last for n in user.metrics], bool)
    k, n = _host_unroll(unroll, log_every), len(user.metrics)

    def member_steps(state, sums, lasts, i0, x, y, values):
        sums = jnp.where(i0 == 0, jnp.zeros_like(sums), sums)
        for j in range(k):
            rows = _batch_indices(state, state.step[None], x, batch_size, False, None)[0]
            state, metrics = user.train(state, (x[rows], y[rows]), values)
            m = jnp.stack(metrics) if metrics else jnp.zeros(0, jnp.float32)
            lasts = jnp.where(i0 + j == log_every - 1, m, lasts)
            sums = sums + m
        return state, sums, lasts, jnp.where(is_last, lasts, sums / log_every)

    width = n_evals * len(user.eval_metrics)

    def evaluate(state, evals):
        if not width:
            return jnp.zeros(0, jnp.float32)
        return jnp.concatenate([user.values(state, *xy) for xy in evals])

    return _HostStepped(member_steps, evaluate, ((n,), (n,)), k, log_every, n_logs, sharding,
                        False, options, layout, member_arg=True)  # fmt: skip


@functools.lru_cache(maxsize=32)
def _user_eval_program(user: _UserStep, options: tuple = ()) -> Callable:
    """jit(vmap(member state -> the user's evaluation metrics on (x, y)))."""
    return jax.jit(
        jax.vmap(user.values, in_axes=(0, None, None)), compiler_options=dict(options) or None
    )
