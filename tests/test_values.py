"""Initializers are values: equality, hash, repr, config and pickle round trips, use in
jit/vmap/flax/Equinox, the registry's failure modes, and no recompilation for equal specs."""

import functools
import json
import math
import pickle

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxinit
from jaxinit._values import freeze
from jaxinit.initializers import _registry
from jaxinit.study._population import _init_program, _init_shapes
from tests.scheme_cases import CASES, GENERIC_SHAPES

KEY = jax.random.key(7)

# Keras' and PyTorch's own spellings (jaxinit.initializers._keras, _structured, _registry) and the
# options one of them needs.
SPELLING_OPTIONS = {"constant_": {"val": 0.25}}


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


def _cases():
    for name in jaxinit.names():
        for options, shapes in CASES.get(name, [({}, GENERIC_SHAPES)]):
            yield pytest.param(name, options, shapes[0], id=f"{name}-{sorted(options)}")
    for name in sorted(_registry._SPELLINGS):
        yield pytest.param(name, SPELLING_OPTIONS.get(name, {}), (16, 8), id=f"spelling-{name}")


@pytest.mark.parametrize(("name", "options", "shape"), list(_cases()))
def test_every_scheme_is_a_value(name, options, shape):
    init = jaxinit.get(name, **options)
    again = jaxinit.get(name, **options)
    assert isinstance(init, jaxinit.Init) and isinstance(init, jaxinit.Initializer)
    assert init == again and hash(init) == hash(again)
    assert init.__name__ == init.name and init.name in repr(init)
    assert repr(init) == repr(again)
    with pytest.raises(AttributeError, match="immutable"):
        init.name = "other"  # type: ignore[misc]

    config = init.get_config()
    assert set(config) == {"module", "class_name", "config"}
    text = json.dumps(config)  # JSON-able
    from_json = jaxinit.from_config(json.loads(text))
    assert from_json == init and jaxinit.get(json.loads(text)) == init
    unpickled = pickle.loads(pickle.dumps(init))
    assert unpickled == init and hash(unpickled) == hash(init)

    # The same bits from the value, its rebuilt copies and the function it wraps.
    w = init(KEY, shape, jnp.float32)
    _same_bits(w, init._fn(KEY, shape, jnp.float32))
    _same_bits(w, from_json(KEY, shape, jnp.float32))
    _same_bits(w, unpickled(KEY, shape, jnp.float32))


def test_repr_shows_only_non_default_options():
    assert repr(jaxinit.he_normal(layout="torch")) == "he_normal(layout='torch')"
    assert repr(jaxinit.he_normal()) == "he_normal()"
    assert repr(jaxinit.he_normal(layout=None, batch_axis=())) == "he_normal()"
    assert repr(jaxinit.normal(0.02)) == "normal(stddev=0.02)"
    assert repr(jaxinit.zeros) == "zeros" and jaxinit.zeros.__name__ == "zeros"
    assert repr(jaxinit.get("HeNormal")) == "HeNormal()"
    assert repr(jaxinit.fast(jaxinit.he_normal())) == "fast(init=he_normal())"
    assert repr(jaxinit.kaiming_normal()) == "he_normal()"  # an alias makes the same value
    # A round trip through repr, for the names of the jaxinit namespace.
    for init in (jaxinit.he_normal(layout="torch"), jaxinit.orthogonal(scale=2.0, column_axis=0)):
        assert eval(repr(init), vars(jaxinit)) == init


def test_equality_is_by_name_and_options():
    he = jaxinit.he_normal()
    assert he != jaxinit.he_normal(layout="torch") and he != jaxinit.glorot_normal()
    assert he != jaxinit.get("HeNormal")  # Keras' fan rule: another scheme
    assert jaxinit.normal(0.02) == jaxinit.normal(stddev=0.02) != jaxinit.normal(0.03)
    # dtypes by name, however spelled
    spellings = (jnp.float32, np.float32, np.dtype("float32"), "float32")
    assert len({jaxinit.normal(dtype=d) for d in spellings}) == 1
    assert jaxinit.normal(dtype=jnp.bfloat16) != jaxinit.normal(dtype=jnp.float32)
    assert jaxinit.he_normal() != jax.nn.initializers.he_normal() and he != "he_normal"
    assert len({jaxinit.he_normal(), jaxinit.he_normal(), jaxinit.glorot_normal()}) == 2


def test_unhashable_options_have_a_defined_equality():
    a = jaxinit.constant(np.array([1.0, 2.0], np.float32))
    assert a == jaxinit.constant(np.array([1.0, 2.0], np.float32))
    assert hash(a) == hash(jaxinit.constant(jnp.array([1.0, 2.0], jnp.float32)))
    assert a != jaxinit.constant(np.array([1.0, 3.0], np.float32))
    assert a != jaxinit.constant(np.array([1.0, 2.0], np.float64))  # dtype counts
    assert a != jaxinit.constant(np.array([[1.0, 2.0]], np.float32))  # shape counts
    # lists and tuples alike
    assert jaxinit.he_normal(batch_axis=[0]) == jaxinit.he_normal(batch_axis=(0,))
    window = [0.5, 1.0, 0.5]
    assert jaxinit.stft(window=window) == jaxinit.stft(window=tuple(window))
    assert hash(jaxinit.stft(window=window)) == hash(jaxinit.stft(window=list(window)))
    # functions: by module, qualified name, code and captured values
    assert jaxinit.fast(jax.nn.initializers.he_normal()) == jaxinit.fast(
        jax.nn.initializers.he_normal()
    )
    assert jaxinit.fast(jax.nn.initializers.he_normal()) != jaxinit.fast(
        jax.nn.initializers.glorot_normal()
    )
    p = functools.partial(jax.nn.initializers.normal, 0.1)
    assert freeze(p) == freeze(functools.partial(jax.nn.initializers.normal, 0.1))
    assert freeze(p) != freeze(functools.partial(jax.nn.initializers.normal, 0.2))


def _scaled(s):
    def build(info):
        return jaxinit.normal(s / math.sqrt(info.shape[-1]))

    return build


def _module_level_build(info):
    return jaxinit.zeros


def test_context_rules_and_optional_are_values():
    assert jaxinit.ContextRule(_scaled(0.5)) == jaxinit.ContextRule(_scaled(0.5))
    assert hash(jaxinit.ContextRule(_scaled(0.5))) == hash(jaxinit.ContextRule(_scaled(0.5)))
    assert jaxinit.ContextRule(_scaled(0.5)) != jaxinit.ContextRule(_scaled(0.25))
    assert jaxinit.ContextRule(_scaled(0.5)) != jaxinit.ContextRule(_module_level_build)
    assert jaxinit.ContextRule(lambda i: None) != jaxinit.ContextRule(lambda i: 0)

    rule = jaxinit.optional(jaxinit.he_normal(layout="torch"))
    assert rule == jaxinit.optional(jaxinit.he_normal(layout="torch"))
    assert rule != jaxinit.optional(jaxinit.he_normal())
    assert repr(rule) == "optional(init=he_normal(layout='torch'))"
    assert rule.name == "he_normal"  # labels no longer collapse to "init"
    assert jaxinit.optional("he_normal").name == "he_normal"
    # a config names a function only once it is registered (configs never import code)
    module_level = json.loads(json.dumps(jaxinit.ContextRule(_module_level_build).get_config()))
    with pytest.raises(ValueError, match=r"_module_level_build.*not registered"):
        jaxinit.from_config(module_level)
    assert jaxinit.from_config(module_level, safe_mode=False).build is _module_level_build
    jaxinit.register_function(_module_level_build)
    for r in (rule, jaxinit.optional("zeros"), jaxinit.ContextRule(_module_level_build)):
        assert jaxinit.from_config(json.loads(json.dumps(r.get_config()))) == r
        assert pickle.loads(pickle.dumps(r)) == r

    local = jaxinit.ContextRule(_scaled(0.5))
    with pytest.raises(TypeError, match="local function or lambda"):
        local.get_config()


RULE_SETS = [
    (jaxinit.torch_default_rules, {}),
    (jaxinit.fixup, {"num_blocks": 4}),
    (jaxinit.fixup, {"num_blocks": 4, "layers_per_branch": 3, "gain_sq": 1.0}),
    (jaxinit.rezero, {}),
    (jaxinit.skipinit, {"value": 0.1}),
    (jaxinit.gpt2, {"n_layer": 12}),
    (jaxinit.t_fixup, {"n_layer": 6, "role": "decoder"}),
    (jaxinit.mup, {}),
    (jaxinit.mup, {"readout_init": "mup"}),
]


@pytest.mark.parametrize(("factory", "options"), RULE_SETS)
def test_rule_sets_are_values(factory, options):
    rules = factory(**options)
    assert isinstance(rules, dict) and isinstance(rules, jaxinit.RuleSet)
    assert rules == factory(**options)  # every rule in it is equal when rebuilt
    assert rules.name == factory.__name__ or factory is jaxinit.skipinit
    config = json.loads(json.dumps(rules.get_config()))
    assert config["config"] == {k: v for k, v in options.items()}
    assert jaxinit.from_config(config) == rules and jaxinit.get(config) == rules
    assert pickle.loads(pickle.dumps(rules)) == rules
    # still a plain dict to edit: an edited rule set no longer has its config
    edited = factory(**options)
    edited["extra"] = jaxinit.zeros
    with pytest.raises(ValueError, match="edited"):
        edited.get_config()


def test_an_edited_rule_set_pickles_as_the_dict_it_is():
    edited = jaxinit.rezero()
    edited["beta"] = jaxinit.ones
    back = pickle.loads(pickle.dumps(edited))
    assert back == {"alpha": jaxinit.zeros, "beta": jaxinit.ones}


def test_values_work_under_jit_vmap_and_in_flax_and_equinox():
    init = jaxinit.he_normal()
    ref = jax.nn.initializers.he_normal()
    shape = (6, 5)
    w = init(KEY, shape, jnp.float32)
    _same_bits(w, ref(KEY, shape, jnp.float32))
    _same_bits(jax.jit(init, static_argnums=(1, 2))(KEY, shape, jnp.float32), w)
    _same_bits(jax.jit(init, static_argnames=("shape", "dtype"))(KEY, shape=shape, dtype=None), w)
    keys = jax.random.split(KEY, 3)
    batched = jax.vmap(lambda k: init(k, shape))(keys)
    for i in range(3):
        _same_bits(batched[i], init(keys[i], shape))

    # a factory called under jit with traced options still makes a (identity-compared) value
    np.testing.assert_array_equal(jax.jit(lambda v: jaxinit.constant(v)(None, (2,)))(1.5), 1.5)

    x = jnp.ones((2, 5))
    mine = nn.Dense(4, kernel_init=init).init(KEY, x)["params"]["kernel"]
    _same_bits(mine, nn.Dense(4, kernel_init=ref).init(KEY, x)["params"]["kernel"])
    mine = nnx.Linear(5, 4, kernel_init=init, rngs=nnx.Rngs(0)).kernel[...]
    _same_bits(mine, nnx.Linear(5, 4, kernel_init=ref, rngs=nnx.Rngs(0)).kernel[...])
    # nnx keeps the initializer as static data: it must hash and compare
    m = nnx.Linear(5, 4, kernel_init=init, rngs=nnx.Rngs(0))
    y = nnx.jit(lambda m, x: m(x))(m, x)
    assert y.shape == (2, 4)
    lin = eqx.nn.Linear(5, 4, key=KEY)
    a = jaxinit.reinit(lin, {"weight": init}, KEY).weight
    b = jaxinit.reinit(lin, {"weight": ref}, KEY).weight
    _same_bits(a, b)


# --------------------------------------------------------------------------- the registry


@pytest.fixture
def registry():
    """Restore the registry after a test that registers schemes."""
    saved = dict(_registry._SCHEMES), dict(_registry._NAMES)
    yield
    _registry._SCHEMES.clear()
    _registry._SCHEMES.update(saved[0])
    _registry._NAMES.clear()
    _registry._NAMES.update(saved[1])


def _mine(stddev=1.0):
    def init(key, shape, dtype=jnp.float32):
        return stddev * jax.random.normal(key, shape, dtype)

    return init


def _snapshot():
    return dict(_registry._SCHEMES), dict(_registry._NAMES)


def test_register_validates_before_it_commits(registry):
    before = _snapshot()
    bad = [
        ("not a scheme", TypeError, "jaxinit.Scheme"),
        (jaxinit.Scheme("", _mine, "research", "normal", "1"), ValueError, "name"),
        (jaxinit.Scheme("my", 3, "research", "normal", "1"), TypeError, "callable"),
        (jaxinit.Scheme("my", _mine, 1, "normal", "1"), TypeError, "family"),
        (jaxinit.Scheme("my", _mine, "r", "n", "1", activations=["relu"]), TypeError, "tuple"),
        (jaxinit.Scheme("my", _mine, "r", "n", "1", aliases=("a", "a")), ValueError, "repeat"),
        (jaxinit.Scheme("my", _mine, "r", "n", "1", keyed=1), TypeError, "keyed"),
        # the first alias is new, the second taken: nothing is recorded, not even the first
        (
            jaxinit.Scheme("my", _mine, "r", "n", "1", aliases=("my_alias", "kaiming_normal")),
            ValueError,
            "already belongs to 'he_normal'",
        ),
        (jaxinit.Scheme("xavier_normal", _mine, "r", "n", "1"), ValueError, "alias of"),
        (jaxinit.Scheme("he_normal", _mine, "r", "n", "1"), ValueError, "built-in.*replace=True"),
    ]
    for scheme, error, message in bad:
        with pytest.raises(error, match=message):
            jaxinit.register(scheme)
        assert _snapshot() == before  # a failed register leaves nothing behind
    with pytest.raises(ValueError, match="unknown initializer 'my_alias'"):
        jaxinit.get("my_alias")


def test_register_a_scheme_of_ones_own_and_replace(registry):
    jaxinit.register(jaxinit.Scheme("my_normal", _mine, "research", "normal", "stddev²"))
    init = jaxinit.get("my_normal", stddev=0.5)
    assert isinstance(init, jaxinit.Init) and repr(init) == "my_normal(stddev=0.5)"
    assert init == jaxinit.get("my_normal", stddev=0.5) != jaxinit.get("my_normal")
    assert jaxinit.get("my_normal", stddev=1.0) == jaxinit.get("my_normal")  # the default
    assert jaxinit.from_config(json.loads(json.dumps(init.get_config()))) == init
    _same_bits(pickle.loads(pickle.dumps(init))(KEY, (3,)), init(KEY, (3,)))
    with pytest.raises(ValueError, match=r"already registered.*replace=True"):
        jaxinit.register(jaxinit.Scheme("my_normal", _mine, "research", "normal", "1"))
    jaxinit.register(
        jaxinit.Scheme("my_normal", _mine, "r", "n", "1", aliases=("mine",)), replace=True
    )
    assert jaxinit.scheme("mine").family == "r"
    # replacing a built-in needs asking, and then it works
    jaxinit.register(jaxinit.Scheme("he_normal", _mine, "r", "n", "1"), replace=True)
    assert jaxinit.scheme("he_normal").factory is _mine
    # the replaced scheme's aliases go with it: they named the old scheme
    with pytest.raises(ValueError, match="unknown initializer 'kaiming_normal'"):
        jaxinit.scheme("kaiming_normal")


def test_an_array_given_to_get_is_a_value():
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    init = jaxinit.get(value)
    assert init == jaxinit.get(value.copy()) != jaxinit.get(value + 1)
    back = jaxinit.from_config(json.loads(json.dumps(init.get_config())))
    assert back == init and pickle.loads(pickle.dumps(init)) == init
    _same_bits(back(None, (2, 3), jnp.float32), value)
    half = jaxinit.get(jnp.array([0.1, 3.0], jnp.bfloat16))  # exact through JSON
    assert jaxinit.from_config(json.loads(json.dumps(half.get_config()))) == half


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="class_name"):
        jaxinit.from_config({"config": {}})
    with pytest.raises(TypeError, match="must be a dict"):
        jaxinit.from_config("he_normal")
    with pytest.raises(ValueError, match=r"unknown initializer 'he_nromal'.*he_normal"):
        jaxinit.from_config({"class_name": "he_nromal", "config": {}})
    with pytest.raises(ValueError, match="options are only accepted"):
        jaxinit.get({"class_name": "he_normal", "config": {}}, layout="torch")
    assert jaxinit.get({"name": "HeNormal", "config": {"seed": None}}) == jaxinit.get("HeNormal")
    # Keras' serialized form, as keras.initializers.serialize writes it
    keras_form = {
        "module": "keras.initializers",
        "class_name": "VarianceScaling",
        "config": {"scale": 2.0, "mode": "fan_out", "distribution": "uniform", "seed": None},
        "registered_name": None,
    }
    init = jaxinit.get(keras_form)
    assert init == jaxinit.get("VarianceScaling", scale=2.0, mode="fan_out", distribution="uniform")


# --------------------------------------------------------------------------- the engine


def test_a_rebuilt_study_with_equal_specs_compiles_nothing_new(caplog):
    data = jaxinit.digits()
    model, optimizer = jaxinit.MLP((8, 10)), optax.sgd(0.1)

    def study():  # every spec built anew
        inits = {
            "he": jaxinit.he_normal(),
            "torch": jaxinit.torch_default_rules(),
            "fast": jaxinit.fast(jaxinit.glorot_uniform(layout="flax")),
        }
        return jaxinit.Study(
            model=model, dataset=data, optimizer=optimizer, inits=inits,
            seeds=2, steps=4, batch_size=16, log_every=2,
        )  # fmt: skip

    first = jaxinit.run_study(study(), progress=False)
    misses = _init_program.cache_info().misses, _init_shapes.cache_info().misses
    with jax.log_compiles(True), caplog.at_level("DEBUG"):
        again = jaxinit.run_study(study(), progress=False)
    compiled = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiled == []
    after = _init_program.cache_info().misses, _init_shapes.cache_info().misses
    assert after == misses
    assert first.table.equals(again.table)
