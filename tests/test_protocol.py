"""jax's Initializer protocol: out_sharding, variance_scaling's axes, flax's factory spellings.

Sharding runs on the 4 forced host CPU devices (conftest.py at the repository root). Every jitted check
draws all its initializers in one program, so the file compiles only a handful of them.
"""

import contextlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P
from scheme_cases import CASES, GENERIC_SHAPES

import jaxinit

jinit = jax.nn.initializers
SHAPE = (8, 4)

# Every name jaxinit shares with jax.nn.initializers, built the same way on both sides.
SHARED = {
    "zeros": (lambda m: m.zeros),
    "ones": (lambda m: m.ones),
    "constant": (lambda m: m.constant(-1.5)),
    "normal": (lambda m: m.normal(0.3)),
    "uniform": (lambda m: m.uniform(2.0)),
    "truncated_normal": (lambda m: m.truncated_normal(0.5, lower=-1.0, upper=3.0)),
    "variance_scaling": (lambda m: m.variance_scaling(1.7, "fan_geo_avg", "normal")),
    "glorot_uniform": (lambda m: m.glorot_uniform()),
    "glorot_normal": (lambda m: m.glorot_normal()),
    "lecun_uniform": (lambda m: m.lecun_uniform()),
    "lecun_normal": (lambda m: m.lecun_normal()),
    "he_uniform": (lambda m: m.he_uniform()),
    "he_normal": (lambda m: m.he_normal(in_axis=0, out_axis=1)),
    "xavier_normal": (lambda m: m.xavier_normal()),
    "kaiming_uniform": (lambda m: m.kaiming_uniform()),
}


def _explicit_mesh():
    return jax.make_mesh((2, 2), ("a", "b"), axis_types=(AxisType.Explicit,) * 2)


def _equal(x, y):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --------------------------------------------------------------------------- out_sharding


@pytest.mark.parametrize("spec", ["named", "pspec"])
def test_out_sharding_bit_identical_to_jax(key, spec):
    """Same values and sharding as jax.nn.initializers with the same out_sharding.

    Under jit the sharding constraint sits right after the draw in both, so XLA fuses the
    rescaling the same way and the results match bit for bit (an unsharded jit may differ
    from them by an ulp, which is jax's own behaviour).
    """
    mesh = _explicit_mesh()
    out = NamedSharding(mesh, P("a", "b")) if spec == "named" else P("a")
    expected = NamedSharding(mesh, P("a", "b") if spec == "named" else P("a", None))
    ours = {name: build(jaxinit) for name, build in SHARED.items()}
    theirs = {name: build(jinit) for name, build in SHARED.items()}

    def draw_all(inits, **kw):
        return lambda k: {n: init(k, SHAPE, jnp.float32, **kw) for n, init in inits.items()}

    with jax.set_mesh(mesh):
        ours_jit = jax.jit(draw_all(ours, out_sharding=out))(key)
        theirs_jit = jax.jit(draw_all(theirs, out_sharding=out))(key)
        plain = draw_all(ours)(key)
        for name in SHARED:
            _equal(ours_jit[name], theirs_jit[name])
            assert ours_jit[name].sharding == expected, name
            np.testing.assert_allclose(
                ours_jit[name], plain[name], rtol=1e-6, atol=1e-7, err_msg=name
            )
            eager = ours[name](key, SHAPE, jnp.float32, out_sharding=out)
            _equal(eager, theirs[name](key, SHAPE, jnp.float32, out_sharding=out))
            _equal(eager, plain[name])  # eagerly the same ops run, so exactly equal
            assert eager.sharding == expected, name
            # sharded as asked: each device holds a quarter (or a half for P("a"))
            quarter = (4, 2) if spec == "named" else (4, 4)
            assert {s.data.shape for s in eager.addressable_shards} == {quarter}


def _scheme_inits():
    """One initializer per registered scheme (options and a shape from tests/scheme_cases)."""
    out = {}
    for s in jaxinit.schemes():
        options, shapes = CASES.get(s.name, [({}, GENERIC_SHAPES)])[0]
        shape = next(sh for sh in shapes if sh[-1] % 4 == 0)  # splits over the 4 devices
        out[s.name] = (jaxinit.get(s.name, **options), shape)
    out["fast(he_normal)"] = (jaxinit.fast(jaxinit.he_normal()), (16, 8))
    out["fast(jax he_normal)"] = (jaxinit.fast(jinit.he_normal()), (16, 8))
    out["fast(orthogonal)"] = (jaxinit.fast(jaxinit.orthogonal()), (16, 8))
    out["complex glorot"] = (jaxinit.glorot_uniform(dtype=jnp.complex64), (16, 8))
    out["get(array)"] = (jaxinit.get(np.arange(32.0, dtype=np.float32).reshape(8, 4)), (8, 4))
    return out


def _last_axis(mesh, shape, axis):
    return NamedSharding(mesh, P(*([None] * (len(shape) - 1)), axis))


def _check_sharded(got, plain, sharding, exact):
    for name, x in got.items():
        assert x.sharding == sharding[name], (name, x.sharding)
        assert x.shape == plain[name].shape and x.dtype == plain[name].dtype, name
        if exact:
            _equal(x, plain[name])
        else:  # jit may fuse the rescaling differently from the eager unsharded draw
            np.testing.assert_allclose(x, plain[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_every_initializer_honours_out_sharding(key):
    """Every registered scheme (and fast(...)), jitted: unsharded values, sharded as asked.

    jax itself refuses out_sharding for orthogonal and delta_orthogonal and ignores it for
    complex draws; jaxinit shards their results too.
    """
    mesh = jax.make_mesh((4,), ("x",), axis_types=(AxisType.Explicit,))
    inits = _scheme_inits()
    sharding = {n: _last_axis(mesh, shape, "x") for n, (_, shape) in inits.items()}
    plain = jax.jit(lambda k: {n: init(k, shape) for n, (init, shape) in inits.items()})(key)
    with jax.set_mesh(mesh):
        got = jax.jit(
            lambda k: {n: i(k, shape, out_sharding=sharding[n]) for n, (i, shape) in inits.items()}
        )(key)
    _check_sharded(got, plain, sharding, exact=False)
    for name, (_, shape) in inits.items():
        assert {s.data.shape[-1] for s in got[name].addressable_shards} == {shape[-1] // 4}


SOME = {
    "zeros": (jaxinit.zeros, (8, 4)),
    "he_normal": (jaxinit.he_normal(), (8, 4)),
    "torch_normal": (jaxinit.torch_normal(), (8, 4)),
    "orthogonal": (jaxinit.orthogonal(), (8, 4)),
    "fast(he_normal)": (jaxinit.fast(jaxinit.he_normal()), (8, 4)),
    "fast(jax he_normal)": (jaxinit.fast(jinit.he_normal()), (8, 4)),
}


@pytest.mark.parametrize("mesh_kind", ["explicit", "auto", "explicit_not_set"])
def test_out_sharding_on_every_kind_of_mesh(key, mesh_kind):
    """jax honours out_sharding only for Explicit axes under jax.set_mesh; jaxinit also
    constrains Auto axes (with_sharding_constraint) and places the result on an Explicit
    mesh that is not the current one (device_put). Eagerly the values are exact."""
    types = AxisType.Auto if mesh_kind == "auto" else AxisType.Explicit
    mesh = jax.make_mesh((4,), ("x",), axis_types=(types,))
    sharding = {n: NamedSharding(mesh, P(None, "x")) for n in SOME}
    plain = {n: init(key, shape) for n, (init, shape) in SOME.items()}

    def sharded(k):
        return {n: i(k, shape, out_sharding=sharding[n]) for n, (i, shape) in SOME.items()}

    ctx = contextlib.nullcontext() if mesh_kind == "explicit_not_set" else jax.set_mesh(mesh)
    with ctx:
        _check_sharded(jax.jit(sharded)(key), plain, sharding, exact=False)
        _check_sharded(sharded(key), plain, sharding, exact=True)


def test_out_sharding_draws_only_the_shard_under_jit(key):
    """The compiled per-device program only ever materialises the shard."""
    mesh = _explicit_mesh()
    out = NamedSharding(mesh, P("a", "b"))
    with jax.set_mesh(mesh):
        fn = jax.jit(lambda k: jaxinit.he_normal()(k, (64, 32), out_sharding=out))
        hlo = fn.lower(key).compile().as_text()
    assert "f32[32,16]" in hlo and "f32[64,32]" not in hlo


def test_out_sharding_errors(key):
    init = jaxinit.he_normal()
    mesh = _explicit_mesh()
    with pytest.raises(ValueError, match=r"he_normal: out_sharding=.* is a PartitionSpec but no"):
        init(key, SHAPE, out_sharding=P("a"))
    with pytest.raises(TypeError, match=r"he_normal: out_sharding must be a .*NamedSharding"):
        init(key, SHAPE, out_sharding="a")
    with jax.set_mesh(mesh):
        with pytest.raises(ValueError, match=r"orthogonal: out_sharding .* uses mesh axis 'mod"):
            jaxinit.orthogonal()(key, SHAPE, out_sharding=P("model"))
        with pytest.raises(ValueError, match=r"normal: out_sharding .* uses a mesh axis twice"):
            jaxinit.normal()(key, SHAPE, out_sharding=P("a", "a"))
    with pytest.raises(ValueError, match=r"zeros: out_sharding .* names 3 dims but shape"):
        jaxinit.zeros(key, SHAPE, out_sharding=NamedSharding(mesh, P("a", None, "b")))
    # None and an empty mesh mean "unsharded", as in jax
    _equal(init(key, SHAPE, out_sharding=None), init(key, SHAPE))


def test_out_sharding_through_flax_and_with_partitioning(key):
    """flax's own sharding path (nnx eager sharding) composes with jaxinit initializers."""
    from flax import nnx

    mesh = _explicit_mesh()
    init = nnx.with_partitioning(jaxinit.lecun_normal(), ("a", "b"))
    with jax.set_mesh(mesh):
        layer = nnx.Linear(8, 4, kernel_init=init, rngs=nnx.Rngs(0))
    assert layer.kernel[...].sharding == NamedSharding(mesh, P("a", "b"))
    plain = nnx.Linear(8, 4, kernel_init=jaxinit.lecun_normal(), rngs=nnx.Rngs(0))
    _equal(layer.kernel[...], plain.kernel[...])


# --------------------------------------------------------------------------- axes parity

AXIS_CASES = [
    ((6, 5), {"out_axis": 0}),  # flax's default embedding init: in and out overlap on axis 0
    ((6, 5), {"in_axis": 0, "out_axis": 0}),
    ((6, 5), {"in_axis": -1, "out_axis": -1}),
    ((3, 4, 5), {"in_axis": (0, 1), "out_axis": -1}),
    ((3, 4, 5), {"in_axis": -3, "out_axis": (1, 2)}),
    ((3, 4, 5), {"in_axis": (0, 1), "out_axis": (1, 2)}),  # overlapping tuples
    ((3, 4, 5), {"in_axis": (-1, 0), "out_axis": [1]}),  # unordered, a list
    ((3, 4, 5), {"in_axis": (0, 0), "out_axis": 2}),  # a repeated axis counts twice
    ((2, 3, 4, 5), {"in_axis": -2, "out_axis": -1, "batch_axis": 0}),
    ((2, 3, 4, 5), {"in_axis": (1, 2), "out_axis": (2, 3), "batch_axis": (0,)}),
    ((2, 3, 4, 5), {"in_axis": 1, "out_axis": 3, "batch_axis": (0, -2)}),
    ((3, 4, 5), {"in_axis": 1, "out_axis": 2, "batch_axis": 1}),  # batch overlaps in
    ((4,), {"in_axis": 0, "out_axis": 0}),
    ((4,), {"in_axis": 0, "out_axis": -1, "batch_axis": ()}),
]


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg", "fan_geo_avg"])
def test_variance_scaling_axes_bit_identical_to_jax(key, mode):
    for shape, axes in AXIS_CASES:
        for distribution in ("truncated_normal", "normal", "uniform"):
            ours = jaxinit.variance_scaling(1.3, mode, distribution, **axes)(key, shape)
            theirs = jinit.variance_scaling(1.3, mode, distribution, **axes)(key, shape)
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{shape} {axes} {distribution}")
        fans = _jax_fans(shape, **{"in_axis": -2, **axes})
        assert jaxinit.compute_fans(shape, **{"in_axis": -2, "out_axis": -1, **axes}) == fans


def _jax_fans(shape, **axes):
    from jax._src.nn.initializers import _compute_fans

    return _compute_fans(shape, **axes)


def test_flax_default_embed_init_parity(key):
    """flax.linen.Embed's default init, spelled with jaxinit, gives flax's embedding."""
    ours = jaxinit.variance_scaling(1.0, "fan_in", "normal", out_axis=0)
    embed = nn.Embed(50, 16)
    theirs = embed.init(key, jnp.zeros((1,), jnp.int32))["params"]["embedding"]
    mine = nn.Embed(50, 16, embedding_init=ours).init(key, jnp.zeros((1,), jnp.int32))
    _equal(mine["params"]["embedding"], theirs)
    # fan_in = features: std 1/sqrt(16) = 0.25
    big = ours(key, (4000, 16))
    assert abs(float(jnp.std(big)) - 0.25) < 0.25 * 0.03  # 64k draws: se of std ~0.3 %


def test_axes_still_checked(key):
    with pytest.raises(
        ValueError, match=r"variance_scaling: shape \(6, 5\) has rank 2; out_axis=2"
    ):
        jaxinit.variance_scaling(1.0, "fan_in", "normal", out_axis=2)(key, (6, 5))
    with pytest.raises(TypeError, match=r"variance_scaling: in_axis must be an int or a sequence"):
        jaxinit.variance_scaling(1.0, "fan_in", "normal", in_axis="0")


# --------------------------------------------------------------------------- flax spellings


def test_flax_factory_spellings(key):
    from flax.linen import initializers as flax_inits

    assert jaxinit.zeros_init() is jaxinit.zeros
    assert jaxinit.ones_init() is jaxinit.ones
    for ours, theirs in (
        (jaxinit.zeros_init(), flax_inits.zeros_init()),
        (jaxinit.ones_init(), flax_inits.ones_init()),
    ):
        _equal(ours(key, (3, 2), jnp.bfloat16), theirs(key, (3, 2), jnp.bfloat16))
        assert ours(key, (3, 2), jnp.bfloat16).dtype == jnp.bfloat16
    # registered names resolve to the same initializers
    assert jaxinit.get("zeros_init") is jaxinit.zeros
    assert jaxinit.get("ones_init") is jaxinit.ones
    params = nn.Dense(3, bias_init=jaxinit.ones_init()).init(key, jnp.zeros((1, 2)))
    _equal(params["params"]["bias"], np.ones(3, np.float32))


# --------------------------------------------------------------------------- init_params


def _model_mesh():
    return jax.make_mesh((4,), ("model",))


def _specs(tree):
    return [x.sharding.spec for x in jax.tree_util.tree_leaves(tree)]


class _Declared(nn.Module):
    """A linen model that declares its shardings: mesh axes and logical axes."""

    @nn.compact
    def __call__(self, x):
        lecun = nn.initializers.lecun_normal()
        x = nn.Dense(16, kernel_init=nn.with_partitioning(lecun, (None, "model")))(x)
        x = nn.Dense(
            8,
            kernel_init=nn.with_logical_partitioning(lecun, ("hidden", "embed")),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
        )(x)
        return nn.LayerNorm()(x)


def test_init_params_honours_linen_declared_shardings(key):
    mesh = _model_mesh()
    x = jnp.ones((2, 12))
    target = lambda k: _Declared().init(k, x)
    rules = [("embed", "model"), ("hidden", None)]
    init = jaxinit.make_init(target, mesh=mesh, logical_axis_rules=rules)
    out = init(key)
    params = out["params"]
    assert params["Dense_0"]["kernel"].value.sharding.spec == P(None, "model")
    assert params["Dense_1"]["kernel"].value.sharding.spec == P(None, "model")
    assert params["Dense_1"]["bias"].value.sharding.spec == P("model")
    assert params["Dense_0"]["bias"].sharding.spec == P()  # undeclared: replicated
    assert {s.data.shape for s in params["Dense_0"]["kernel"].value.addressable_shards} == {(12, 4)}
    plain = target(key)
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(plain), strict=True):
        _equal(a, b)
    # each device draws only its shard: the per-device program never holds a whole kernel
    hlo = init.lower(key).compile().as_text()
    assert "f32[12,4]" in hlo and "f32[12,16]" not in hlo
    # flax's context spelling of the same rules gives the same shardings
    with nn.logical_axis_rules(rules):
        ctx = jaxinit.init_params(target, key, mesh=mesh)
    assert _specs(ctx) == _specs(out)
    # an explicit partition overrides a declaration; the others stay as declared
    over = jaxinit.init_params(
        target,
        key,
        mesh=mesh,
        logical_axis_rules=rules,
        partition={"*Dense_0/kernel": P("model", None)},
    )
    assert over["params"]["Dense_0"]["kernel"].value.sharding.spec == P("model", None)
    assert over["params"]["Dense_1"]["kernel"].value.sharding.spec == P(None, "model")


def test_init_params_honours_nnx_declared_shardings(key):
    from flax import nnx

    mesh = _model_mesh()

    class Block(nnx.Module):
        def __init__(self, rngs):
            lecun = nnx.initializers.lecun_normal()
            self.up = nnx.Linear(
                12, 16, kernel_init=nnx.with_partitioning(lecun, (None, "model")), rngs=rngs
            )
            self.down = nnx.Linear(
                16,
                8,
                kernel_metadata={"out_sharding": ("hidden", "embed")},
                rngs=rngs,
            )
            self.embed = nnx.Embed(
                32, 8, embedding_metadata={"out_sharding": ("vocab", None)}, rngs=rngs
            )

    target = lambda k: Block(nnx.Rngs(k))
    rules = [("vocab", "model"), ("hidden", "model"), ("embed", None), ("layers", None)]
    out = jaxinit.init_params(target, key, mesh=mesh, logical_axis_rules=rules)
    assert out.up.kernel[...].sharding.spec == P(None, "model")
    assert out.down.kernel[...].sharding.spec == P("model", None)
    assert out.embed.embedding[...].sharding.spec == P("model", None)
    assert out.up.bias[...].sharding.spec == P()
    # the values of the unsharded compiled init, and of the eager model up to an ulp
    plain = jaxinit.init_params(target, key)
    with nnx.use_eager_sharding(False):
        eager = target(key)
    for got, same, close in zip(
        jax.tree_util.tree_leaves(out),
        jax.tree_util.tree_leaves(plain),
        jax.tree_util.tree_leaves(eager),
        strict=True,
    ):
        _equal(got, same)
        np.testing.assert_allclose(got, close, rtol=1e-6, atol=1e-7)

    # an nnx.vmap stack: flax inserts the partition name of the stack axis, here mapped to
    # None (replicated) by the rules
    @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def stack(k):
        init = nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, "model"))
        return nnx.Linear(8, 8, kernel_init=init, rngs=nnx.Rngs(k))

    stacked = jaxinit.init_params(
        lambda k: stack(jax.random.split(k, 3)), key, mesh=mesh, logical_axis_rules=rules
    )
    assert stacked.kernel[...].shape == (3, 8, 8)
    assert stacked.kernel[...].sharding.spec == P(None, None, "model")
    # under jax.set_mesh the mesh need not be passed (nnx shards eagerly there as well)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        in_context = jaxinit.init_params(target, key)
    assert _specs(in_context) == _specs(out)
    # a logical name no rule maps is taken as a mesh axis (flax's convention): an error here
    with pytest.raises(ValueError, match=r"init_params: down/kernel .* mesh axis 'hidden' is not"):
        jaxinit.init_params(target, key, mesh=mesh, logical_axis_rules=[("vocab", "model")])


def test_init_params_bad_arguments(key):
    mesh = _model_mesh()
    x = jnp.ones((2, 12))
    target = lambda k: _Declared().init(k, x)
    rules = [("embed", "model"), ("hidden", None)]
    with pytest.raises(ValueError, match=r"init_params: partition pattern '\*kernal' matches no"):
        jaxinit.init_params(
            target, key, mesh=mesh, logical_axis_rules=rules, partition={"*kernal": P("model")}
        )
    with pytest.raises(TypeError, match=r"init_params: mesh must be a jax.sharding.Mesh .*'x'"):
        jaxinit.init_params(target, key, mesh="x", logical_axis_rules=rules)
    with pytest.raises(ValueError, match=r"mesh axis 'data' is not an axis of the mesh; its axes"):
        jaxinit.init_params(
            target, key, mesh=mesh, logical_axis_rules=rules, partition={"*bias": P("data")}
        )
    with pytest.raises(ValueError, match=r"Dense_0/kernel .* mesh axis 'model' is used twice"):
        jaxinit.init_params(
            target,
            key,
            mesh=mesh,
            logical_axis_rules=rules,
            partition={"*Dense_0/kernel": P("model", "model")},
        )
    with pytest.raises(ValueError, match=r"Dense_1/bias declares the logical axes .* no logical"):
        jaxinit.init_params(target, key, mesh=mesh)
    with pytest.raises(TypeError, match=r"init_params: partition must be \{pattern"):
        jaxinit.init_params(target, key, mesh=mesh, logical_axis_rules=rules, partition=["*bias"])


def test_init_params_equinox(key):
    """Equinox modules hold functions and ints: only their arrays go through the program."""
    eqx = pytest.importorskip("equinox")
    mesh = _model_mesh()
    target = lambda k: eqx.nn.MLP(12, 8, 16, 2, activation=jax.nn.gelu, key=k)
    init = jaxinit.make_init(target, mesh=mesh, partition={"*weight": P("model", None)})
    model = init(key)
    plain = target(key)
    assert model.activation is jax.nn.gelu and model.depth == 2
    assert model.layers[0].weight.sharding.spec == P("model", None)
    assert model.layers[0].bias.sharding.spec == P()
    for a, b in zip(
        jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)),
        jax.tree_util.tree_leaves(eqx.filter(plain, eqx.is_array)),
        strict=True,
    ):
        _equal(a, b)
    assert {s.data.shape for s in model.layers[0].weight.addressable_shards} == {(4, 12)}
    hlo = init.lower(key).compile().as_text()
    assert "f32[4,12]" in hlo and "f32[16,12]" not in hlo
    np.testing.assert_allclose(model(jnp.ones(12)), plain(jnp.ones(12)), rtol=1e-6)
    # without a mesh, and with rules re-drawing the weights (torch layout, as Equinox)
    redrawn = jaxinit.init_params(target, key, rules={"*weight": jaxinit.zeros})
    assert not np.any(np.asarray(redrawn.layers[1].weight)) and redrawn.activation is jax.nn.gelu
