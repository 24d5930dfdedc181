"""Configs are data (issue 29, item 1): no config entry point imports or runs code, configs
are bounded in depth and size, and malformed entries are refused by name."""

import json
import sys
import uuid

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxinit

KEY = jax.random.key(0)


def _every_entry_point(config_of_function):
    """Every way a config reaches jaxinit, each with a function entry planted where a value
    may stand: ``get``/``from_config`` at the top, and nested in an initializer's option, a
    ContextRule's build, an ``optional`` rule, a ``fast`` wrapper, a rule set, a list, a tuple,
    a dict option; and the rule built from a config given to ``reinit``."""
    fn = config_of_function
    nested = [
        {"class_name": "constant", "config": {"value": fn}},
        {"class_name": "ContextRule", "config": {"build": fn}},
        {"class_name": "optional", "config": {"init": fn}},
        {
            "class_name": "optional",
            "config": {"init": {"class_name": "ContextRule", "config": {"build": fn}}},
        },
        {
            "class_name": "fast",
            "config": {"init": {"class_name": "constant", "config": {"value": fn}}},
        },
        {"class_name": "variance_scaling", "config": {"scale": 1.0, "fans": fn}},
        {"class_name": "fixup", "config": {"num_blocks": fn}},
        {"class_name": "constant", "config": {"value": [1.0, fn]}},
        {"class_name": "constant", "config": {"value": {"__tuple__": [fn]}}},
        {"name": "HeNormal", "config": {"seed": {"a": fn}}},
    ]
    calls = []
    for config in nested:
        calls.append(lambda c=config: jaxinit.from_config(c))
        calls.append(lambda c=config: jaxinit.get(c))
        from_json = json.loads(json.dumps(config))
        calls.append(lambda c=from_json: jaxinit.from_config(c))

    def reinit_with_a_config_rule(c=nested[1]):
        params = {"dense": {"kernel": jnp.zeros((3, 2))}}
        return jaxinit.reinit(params, {"*kernel": jaxinit.from_config(c)}, KEY)

    calls.append(reinit_with_a_config_rule)
    return calls


@pytest.fixture
def canary(tmp_path, monkeypatch):
    """A module on sys.path that leaves a mark when imported, and a function in it that
    leaves another when called."""
    name = f"jaxinit_canary_{uuid.uuid4().hex}"
    imported, called = tmp_path / "imported", tmp_path / "called"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(imported)!r}, 'w').close()\n"
        f"def boom(*args, **kwargs):\n    open({str(called)!r}, 'w').close()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, imported, called
    sys.modules.pop(name, None)


def test_no_config_entry_point_imports_a_planted_module(canary):
    name, imported, called = canary
    for path in (f"{name}:boom", f"{name}:nothing", "os:system", "builtins:input", "sys:exit"):
        for call in _every_entry_point({"__function__": path}):
            with pytest.raises(ValueError, match=rf"names the function '{path}'.*not registered"):
                call()
    assert name not in sys.modules and not imported.exists() and not called.exists()


def test_the_error_names_the_entry_and_the_way_out():
    config = {"class_name": "constant", "config": {"value": {"__function__": "this:s"}}}
    with pytest.raises(ValueError) as info:
        jaxinit.get(config)
    msg = str(info.value)
    assert "config['config']['value']" in msg and "'this:s'" in msg
    assert "register_function(s)" in msg and "safe_mode=False" in msg
    nested = {
        "class_name": "optional",
        "config": {
            "init": {"name": "ContextRule", "config": {"build": {"__function__": "sys:exit"}}}
        },
    }
    with pytest.raises(ValueError, match=r"config\['config'\]\['init'\]\['config'\]\['build'\]"):
        jaxinit.from_config(nested)


def test_safe_mode_false_imports_what_the_caller_trusts(canary):
    name, imported, called = canary
    rule = jaxinit.from_config(
        {"class_name": "ContextRule", "config": {"build": {"__function__": f"{name}:boom"}}},
        safe_mode=False,
    )
    assert imported.exists() and not called.exists()  # imported, not run: reinit runs it
    assert rule.build.__name__ == "boom"
    with pytest.raises(ValueError, match="cannot import the function 'no_such_module_xyz:f'"):
        jaxinit.from_config(
            {
                "class_name": "ContextRule",
                "config": {"build": {"__function__": "no_such_module_xyz:f"}},
            },
            safe_mode=False,
        )
    with pytest.raises(TypeError, match="safe_mode must be True or False"):
        jaxinit.from_config({"class_name": "zeros", "config": {}}, safe_mode="no")
    with pytest.raises(TypeError, match="applies to a config dict only"):
        jaxinit.get("he_normal", safe_mode=False)


def _torch_bias(info):
    return jaxinit.torch_default_bias(kernel_shape=info.siblings["kernel"])


def test_a_registered_function_round_trips():
    rule = jaxinit.ContextRule(_torch_bias, "bias")
    config = json.loads(json.dumps(rule.get_config()))
    with pytest.raises(ValueError, match="not registered"):
        jaxinit.from_config(config)
    assert jaxinit.register_function(_torch_bias) is _torch_bias
    assert jaxinit.from_config(config) == rule
    params = {"d": {"kernel": jnp.zeros((16, 4)), "bias": jnp.zeros(4)}}
    out = jaxinit.reinit(params, {"*bias": jaxinit.from_config(config)}, KEY)
    assert float(jnp.abs(out["d"]["bias"]).max()) <= 0.25 + 1e-6
    with pytest.raises(ValueError, match="local function or lambda"):
        jaxinit.register_function(lambda info: None)
    with pytest.raises(TypeError, match="named function"):
        jaxinit.register_function(3)


def test_configs_are_bounded_in_depth_and_size():
    deep: object = 1.0
    for _ in range(3000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper than 64 levels"):
        jaxinit.get({"class_name": "constant", "config": {"value": deep}})
    chain: dict = {"class_name": "zeros", "config": {}}
    for _ in range(3000):
        chain = {"class_name": "optional", "config": {"init": chain}}
    with pytest.raises(ValueError, match="nested deeper than 64 levels"):
        jaxinit.from_config(chain)
    huge = {"class_name": "constant", "config": {"value": [0.0] * 4_000_001}}
    with pytest.raises(ValueError, match="more than 4000000 entries"):
        jaxinit.from_config(huge)
    # a real config within the limits still works
    nested = {
        "class_name": "constant",
        "config": {"value": {"__ndarray__": [[1.0]], "dtype": "float32"}},
    }
    assert jaxinit.from_config(nested)(KEY, (1, 1)).shape == (1, 1)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"__ndarray__": [1.0]}, r"array without a 'dtype'"),
        ({"__ndarray__": [1.0], "dtype": "object"}, "not a numeric dtype name"),
        ({"__ndarray__": [1.0], "dtype": 3}, "not a numeric dtype name"),
        ({"__ndarray__": [1.0], "dtype": "no_such"}, "not a numeric dtype name"),
        ({"__ndarray__": ["1"], "dtype": "float32"}, "nested lists of numbers"),
        ({"__ndarray__": [[1.0], [1.0, 2.0]], "dtype": "float32"}, "not a float32 array"),
        ({"__ndarray__": [300], "dtype": "int8"}, "not a int8 array"),
        ({"__ndarray__": [1.0], "dtype": "float32", "x": 1}, r"has keys \['x'\]"),
        ({"__tuple__": 3}, r"'__tuple__'\] must be a list"),
        ({"__function__": 3}, "must be a 'module:qualname' string"),
        ({"__function__": "a:b:c"}, "must be a 'module:qualname' string"),
    ],
)
def test_malformed_entries_are_refused_by_name(entry, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        jaxinit.from_config({"class_name": "constant", "config": {"value": entry}})
    assert "from_config: config['config']['value']" in str(info.value)


def test_malformed_configs_are_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown initializer 'os\.system'"):
        jaxinit.from_config({"class_name": "os.system", "config": {}})
    with pytest.raises(TypeError, match="keys that are not strings"):
        jaxinit.from_config({"class_name": "zeros", "config": {1: 2}})
    with pytest.raises(TypeError, match=r"config\['config'\] must be a dict"):
        jaxinit.from_config({"class_name": "zeros", "config": [1]})


# --------------------------------------------------------------------------- properties

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            {"__function__": "os:system"},
            {"__function__": "builtins:eval"},
            {"__function__": "sys:exit"},
            {"__ndarray__": [1.0]},
            {"__ndarray__": [1.0, 2.0], "dtype": "float32"},
            {"__tuple__": [1, 2]},
        ]
    ),
)
_names = st.sampled_from(
    [
        "zeros",
        "constant",
        "he_normal",
        "optional",
        "ContextRule",
        "fast",
        "fixup",
        "HeNormal",
        "variance_scaling",
        "os:system",
        "",
    ]
)
_option_names = st.sampled_from(
    ["value", "init", "build", "scale", "fans", "layout", "num_blocks", "seed", "x"]
)


def _configs(children):
    return st.builds(
        lambda n, opts: {"class_name": n, "config": opts},
        _names,
        st.dictionaries(_option_names, children, max_size=3),
    )


_config = st.recursive(
    _configs(_leaf),
    lambda children: st.one_of(_configs(children), st.lists(children, max_size=3)),
    max_leaves=12,
)


@given(config=_config)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_config_builds_a_value_or_is_refused_by_name(config):
    """Whatever the config, every entry point answers with a value or a named error
    (ValueError / TypeError mentioning the entry point or the scheme), never runs code and
    never fails inside Python's machinery (RecursionError, KeyError, AttributeError)."""
    if not isinstance(config, dict):
        config = {"class_name": "constant", "config": {"value": config}}
    modules = set(sys.modules)
    for call in (jaxinit.from_config, jaxinit.get):
        try:
            value = call(config)
        except (ValueError, TypeError) as e:
            assert str(e), e
        else:
            # an initializer, a rule set, or a rule (jaxinit.optional(...): a ContextRule)
            assert callable(value) or isinstance(value, dict | jaxinit.rules.ContextRule)
    assert not {m for m in set(sys.modules) - modules if not m.startswith(("jaxinit", "flax"))}


@given(depth=st.integers(1, 5000), as_list=st.booleans())
@settings(max_examples=30, deadline=None)
def test_any_depth_is_accepted_or_refused_by_name(depth, as_list):
    value: object = 0.0
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    try:
        jaxinit.from_config({"class_name": "constant", "config": {"value": value}})
    except ValueError as e:
        assert depth + 2 > 64 and "nested deeper than 64" in str(e)
    except TypeError as e:  # within the limit: constant refuses a nested value by name
        assert "constant" in str(e)


def test_arrays_round_trip_exactly_through_json():
    for a in (
        np.arange(6, dtype=np.int8).reshape(2, 3),
        np.array([True, False]),
        np.float16([0.1]),
    ):
        init = jaxinit.get(a)
        back = jaxinit.from_config(json.loads(json.dumps(init.get_config())))
        assert back == init
