"""The compiled training program: ``jit(vmap(scan(scan(step))))`` over the member axis
(or, host-stepped, a program of a few unrolled steps called from Python: :class:`_HostStepped`),
the objective (built-in losses or the user's ``loss_fn``), and evaluation."""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxinit.study._adapters import _Model
from jaxinit.study._layout import over_members
from jaxinit.study._stepping import HOST_UNROLL, _host_unroll, _HostStepped


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

    def logged(self, state: MemberState, sums: jax.Array, lasts: jax.Array, i: jax.Array,
               batch: tuple, values: jax.Array, log_every: int) -> tuple:  # fmt: skip
        """Step ``i`` of a log interval: the new state, the interval's running sum of the
        metrics and (at its last step, ``log_every - 1``) their values."""
        state, metrics = self.train(state, batch, values)
        m = jnp.stack(metrics) if metrics else jnp.zeros(0, jnp.float32)
        return state, sums + m, jnp.where(i == log_every - 1, m, lasts)

    def evaluations(self, state: MemberState, evals: tuple) -> jax.Array:
        """The evaluation metrics on every set of ``evals`` (none without ``evaluate``)."""
        if not evals or not self.eval_metrics:
            return jnp.zeros(0, jnp.float32)
        return jnp.concatenate([self.values(state, *xy) for xy in evals])

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
        idx = _batch_indices(state, steps, x, batch_size, False, None)

        def step(carry, inputs):
            (state, sums, lasts), (i, rows) = carry, inputs
            batch = (x[rows], y[rows])
            return user.logged(state, sums, lasts, i, batch, values, log_every), None

        zeros = jnp.zeros(k, jnp.float32)
        (state, sums, lasts), _ = jax.lax.scan(
            step, (state, zeros, zeros), (jnp.arange(log_every), idx), unroll=2
        )
        return state, jnp.where(is_last, lasts, sums / log_every)

    width = n_evals * len(user.eval_metrics)
    evaluate = user.evaluations

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


@functools.lru_cache(maxsize=32)
def _user_host_program(user: _UserStep, batch_size: int, log_every: int, n_logs: int,
                       sharding: NamedSharding | None, options: tuple = (), layout: Any = "vmap",
                       unroll: int = HOST_UNROLL) -> _HostStepped:  # fmt: skip
    """:func:`_step_program` stepped from the host (:class:`_HostStepped`): the same
    signature, minibatch rows, keys and interval records, ``unroll`` unrolled user steps
    per call and no loop in any program."""
    is_last = jnp.asarray([n in user.last for n in user.metrics], bool)
    k, n = _host_unroll(unroll, log_every), len(user.metrics)

    def member_steps(state, sums, lasts, i0, x, y, values):
        sums = jnp.where(i0 == 0, jnp.zeros_like(sums), sums)
        for j in range(k):
            rows = _batch_indices(state, state.step[None], x, batch_size, False, None)[0]
            state, sums, lasts = user.logged(state, sums, lasts, i0 + j, (x[rows], y[rows]),
                                             values, log_every)  # fmt: skip
        return state, sums, lasts, jnp.where(is_last, lasts, sums / log_every)

    return _HostStepped(member_steps, user.evaluations, ((n,), (n,)), k, log_every, n_logs,
                        sharding, False, options, layout, member_arg=True)  # fmt: skip


@functools.lru_cache(maxsize=32)
def _user_eval_program(user: _UserStep, options: tuple = ()) -> Callable:
    """jit(vmap(member state -> the user's evaluation metrics on (x, y)))."""
    return jax.jit(
        jax.vmap(user.values, in_axes=(0, None, None)), compiler_options=dict(options) or None
    )
