"""The contract between initializers and rules (issue 27): every initializer value declares
its law, the rules read only that; one layout check; rules cannot shadow silently; explain
shows the law of every parameter of every built-in rule set."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
from jaxinit import _law

KEY = jax.random.key(0)


def _z(*shape):
    return jnp.zeros(shape, jnp.float32)


# --------------------------------------------------------------------------- laws


@pytest.mark.parametrize(
    ("init", "shape", "law", "text"),
    [
        (jaxinit.he_normal(), (16, 32), _law.VarianceScaling, "std 0.3536"),
        (jaxinit.he_uniform(layout="torch"), (32, 16), _law.VarianceScaling, "bound 0.6124"),
        (jaxinit.normal(0.02), (4, 4), _law.Normal, "std 0.02"),
        (jaxinit.uniform(0.5), (4, 4), _law.Uniform, "U[0, 0.5)"),
        (jaxinit.torch_default_bias(fan_in=64), (8,), _law.Uniform, "bound 0.125"),
        (jaxinit.torch_trunc_normal(std=0.02), (4, 4), _law.TruncatedNormal, "std 0.02"),
        (jaxinit.orthogonal(2.0), (16, 4), _law.Orthogonal, "std 0.5"),
        (jaxinit.zeros, (3,), _law.Constant, "0"),
        (jaxinit.constant(0.5), (3,), _law.Constant, "0.5 (constant)"),
        (jaxinit.draw_in_float32(jaxinit.normal(0.01)), (4, 4), _law.Normal, "std 0.01"),
        (jaxinit.fast(jaxinit.lecun_normal()), (64, 8), _law.VarianceScaling, "std 0.125"),
        (jaxinit.get("HeNormal"), (16, 32), _law.VarianceScaling, "std 0.3536"),
        (jaxinit.zero_init(), (8, 8), _law.Structured, "ZerO"),
    ],
)
def test_every_value_declares_its_law(init, shape, law, text):
    assert isinstance(init.law, law)
    assert text in init.describe(init.fans(shape))


def test_variance_scaling_law_fields():
    law = jaxinit.torch_kaiming_normal(layout="torch").law
    assert law.scale == pytest.approx(2.0) and (law.mode, law.distribution) == ("fan_in", "normal")
    assert (law.in_axis, law.out_axis) == (1, 0) and law.layout == "torch"
    assert jaxinit.he_normal().law.layout is None
    assert law.fans((8, 4, 3, 3)) == (36.0, 72.0)
    # describe(fans): the std for given fans, nothing drawn
    assert law.describe((50.0, 1.0)) == f"std {math.sqrt(2 / 50):.4g}"


def test_a_closure_variable_named_like_a_setting_changes_nothing():
    """The rules read the declared law only: a drawing function whose closure happens to
    hold ``layout="torch"`` or ``in_axis``/``out_axis`` is drawn like any fan-free
    function (the old rules read closures' variable names)."""
    import equinox as eqx

    layout, in_axis, out_axis = "torch", 1, 0  # names the old closure reading looked for
    seen = []

    def init(key, shape, dtype=jnp.float32):
        seen.append((tuple(shape), layout, in_axis, out_axis))
        return jax.random.normal(key, shape, dtype)

    model = eqx.nn.Linear(3, 5, key=KEY)
    jaxinit.reinit(model, {"weight": init}, KEY)
    assert seen[0][0] == (3, 5)  # the flax call (in, out), transposed: not the torch shape
    row = next(r for r in _rows(jaxinit.explain(model, {"weight": init})) if r[0] == "weight")
    assert row[5] == "-" and row[6] == "?"  # a fan-free draw of unknown law: no fans, no std


def test_with_fans_declares_the_layer_dependence():
    init = jaxinit.torch_default_bias(fan_in=64)
    assert not init.law.fan_dependent
    marked = init.with_fans((64.0, 32.0))
    assert marked.law.fan_dependent and marked.fans((32,)) == (64.0, 32.0)
    assert marked == init  # the same value (name and options)


# --------------------------------------------------------------------------- layouts


def test_one_layout_check_folds_equinox():
    from jaxinit._types import check_layout

    assert check_layout("f", "equinox") == "torch" and check_layout("f", None) is None
    for call in (
        lambda: jaxinit.he_normal(layout="keras"),
        lambda: jaxinit.orthogonal(layout="keras"),
        lambda: jaxinit.compute_fans((3, 4), layout="keras"),
        lambda: jaxinit.explain({"w": _z(3, 4)}, {"w": "zeros"}, layout="keras"),
    ):
        with pytest.raises(ValueError, match=r"layout='keras' is not supported: layout must be"):
            call()


def test_equinox_layout_is_torch_in_context_rules():
    eqx = pytest.importorskip("equinox")
    cell = eqx.nn.LSTMCell(4, 8, key=KEY)
    out = {}
    for layout in (None, "torch", "equinox"):
        new = jaxinit.reinit(cell, jaxinit.recurrent(), KEY, layout=layout)
        out[layout] = np.asarray(new.weight_hh)
    np.testing.assert_array_equal(out["equinox"], out["torch"])
    np.testing.assert_array_equal(out["equinox"], out[None])
    block = out["equinox"][:8]  # one gate: an 8x8 orthogonal matrix
    np.testing.assert_allclose(block @ block.T, np.eye(8), atol=1e-5)


# --------------------------------------------------------------------------- shadowing


def _mlp():
    return {
        "fc1": {"kernel": _z(8, 16), "bias": _z(16)},
        "fc2": {"kernel": _z(16, 4), "bias": _z(4)},
    }


def test_a_shadowed_rule_is_an_error_naming_both_rules():
    rules = {"kernel": jaxinit.he_normal(), "fc1/kernel": jaxinit.zeros}
    with pytest.raises(
        ValueError, match=r"rule 'fc1/kernel': zeros is shadowed.*rule 'kernel': he_normal\(\)"
    ):
        jaxinit.reinit(_mlp(), rules, KEY)


def test_a_shadowed_optional_rule_warns():
    rules = {"kernel": jaxinit.he_normal(), "fc1/kernel": jaxinit.optional(jaxinit.zeros)}
    with pytest.warns(jaxinit.ShadowedRuleWarning, match=r"'fc1/kernel': zeros is shadowed"):
        jaxinit.reinit(_mlp(), rules, KEY)


def test_a_partly_shadowed_rule_is_fine():
    rules = {"fc1/kernel": jaxinit.zeros, "kernel": jaxinit.he_normal()}
    new = jaxinit.reinit(_mlp(), rules, KEY)
    assert float(jnp.abs(new["fc1"]["kernel"]).max()) == 0.0
    assert float(jnp.abs(new["fc2"]["kernel"]).max()) > 0.0


def test_torch_default_rules_arguments_take_effect():
    params = _mlp()
    params["fc1"] = {"kernel": jnp.ones((8, 16)), "bias": jnp.ones(16)}
    params["fc2"] = {"kernel": jnp.ones((16, 4)), "bias": jnp.ones(4)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = jaxinit.reinit(
            params, jaxinit.torch_default_rules(kernel="fc1/kernel", bias="fc1/bias"), KEY
        )
    assert float(jnp.abs(new["fc1"]["kernel"]).max()) <= 1 / math.sqrt(8)
    assert float(jnp.abs(new["fc1"]["bias"]).max()) <= 1 / math.sqrt(8)
    np.testing.assert_array_equal(new["fc2"]["kernel"], 1.0)  # not matched: kept
    np.testing.assert_array_equal(new["fc2"]["bias"], 1.0)
    # a rule put after the rule set, for a parameter it takes, no longer vanishes
    rules = {**jaxinit.torch_default_rules(), "fc1/kernel": jaxinit.optional(jaxinit.zeros)}
    with pytest.warns(
        jaxinit.ShadowedRuleWarning, match=r"'fc1/kernel': zeros is shadowed.*torch_default_kernel"
    ):
        jaxinit.reinit(params, rules, KEY)


# --------------------------------------------------------------------------- explain


def _rows(table: str) -> list[list[str]]:
    lines = table.splitlines()[2:]
    return [[c.strip() for c in line.split(" | ")] for line in lines]


def _lin(i, o, bias=True):
    out = {"kernel": _z(i, o)}
    if bias:
        out["bias"] = _z(o)
    return out


def _transformer():
    block = {
        "attn": {n: _lin(16, 16) for n in ("query", "key", "value", "out")},
        "mlp": {"fc": _lin(16, 32), "proj": _lin(32, 16)},
        "ln": {"scale": _z(16), "bias": _z(16)},
    }
    return {"embedding": _z(50, 16), "block_0": block, "block_1": block, "head": _lin(16, 10)}


def _nanogpt():
    block = {
        "attn": {"c_attn": _lin(16, 48), "c_proj": _lin(16, 16)},
        "mlp": {"c_fc": _lin(16, 64), "c_proj": _lin(64, 16)},
        "ln_1": {"weight": _z(16), "bias": _z(16)},
    }
    return {"wte": {"embedding": _z(50, 16)}, "h": {"0": block, "1": block}}


def _resnet():
    def blk():
        return {"conv": _lin(8, 8), "out": _lin(8, 8)}

    return {
        "stem": _lin(4, 8),
        "block_0": blk(),
        "block_1": blk(),
        "head": _lin(8, 10),
        "fixup_bias0": _z(1),
        "fixup_scale": _z(1),
    }


def _llama():
    def layer():
        names = ("wq", "wk", "wv", "wo")
        return {
            "attention": {n: _lin(16, 16, False) for n in names},
            "feed_forward": {n: _lin(16, 16, False) for n in ("w1", "w2", "w3")},
            "attention_norm": {"scale": _z(16)},
        }

    return {
        "tok_embeddings": {"embedding": _z(50, 16)},
        "layers_0": layer(),
        "layers_1": layer(),
        "output": _lin(16, 50, False),
    }


def _vit():
    return {
        "cls_token": _z(1, 1, 16),
        "pos_embed": _z(1, 5, 16),
        "patch_embed": {"proj": {"kernel": _z(4, 4, 3, 16), "bias": _z(16)}},
        "blocks_0": {
            "attn": {"qkv": _lin(16, 48), "proj": _lin(16, 16)},
            "mlp": {"fc1": _lin(16, 32), "fc2": _lin(32, 16)},
            "norm1": {"scale": _z(16), "bias": _z(16)},
        },
        "head": _lin(16, 10),
    }


def _bert():
    return {
        "embeddings": {
            "word_embeddings": {"weight": _z(30, 16)},
            "position_embeddings": {"weight": _z(8, 16)},
            "LayerNorm": {"weight": _z(16), "bias": _z(16)},
        },
        "layer_0": {"query": _lin(16, 16), "output": _lin(16, 16)},
    }


def _deepnet():
    return {
        "layers_0": {n: _lin(16, 16) for n in ("q_proj", "k_proj", "v_proj", "out_proj")}
        | {"fc1": _lin(16, 32), "fc2": _lin(32, 16)}
    }


def _rnn():
    gates = {g: _lin(4, 8, False) for g in ("ii", "if", "ig", "io")}
    gates |= {g: _lin(8, 8) for g in ("hi", "hf", "hg", "ho")}
    return {"cell": gates, "embedding": _z(20, 4), "attn": {"query": _lin(8, 8)}}


def _eqx_models():
    eqx = pytest.importorskip("equinox")
    k = jax.random.split(KEY, 6)
    return [
        eqx.nn.Linear(4, 8, key=k[0]),
        eqx.nn.Embedding(20, 8, key=k[1]),
        eqx.nn.LSTMCell(8, 8, key=k[2]),
        eqx.nn.GRUCell(8, 8, key=k[3]),
        eqx.nn.LayerNorm(8),
        eqx.nn.MultiheadAttention(2, 8, key=k[4]),
    ]


CASES = {
    "torch_default_rules": (lambda: jaxinit.torch_default_rules(), _rnn),
    "torch_default_rules eqx": (lambda: jaxinit.torch_default_rules(), _eqx_models),
    "torch_default_layer_rules": (lambda: jaxinit.torch_default_layer_rules(), _rnn),
    "torch_default_layer_rules eqx": (lambda: jaxinit.torch_default_layer_rules(), _eqx_models),
    "fixup": (lambda: jaxinit.fixup(2), _resnet),
    "rezero": (lambda: jaxinit.rezero(), lambda: {"block": {"alpha": _z(1)}}),
    "gpt2": (lambda: jaxinit.gpt2(2), _transformer),
    "gpt2 nanogpt": (lambda: jaxinit.gpt2(2, naming="nanogpt"), _nanogpt),
    "t_fixup": (lambda: jaxinit.t_fixup(2), _transformer),
    "mup": (lambda: jaxinit.mup(), _transformer),
    "mup readout": (lambda: jaxinit.mup(readout_init="mup"), _transformer),
    "vit timm": (lambda: jaxinit.vit("timm"), _vit),
    "vit jax": (lambda: jaxinit.vit("jax"), _vit),
    "vit moco": (lambda: jaxinit.vit("moco"), _vit),
    "bert": (lambda: jaxinit.bert(padding_idx=0), _bert),
    "depth_scaled": (lambda: jaxinit.depth_scaled(2), _llama),
    "depth_scaled stack": (lambda: jaxinit.depth_scaled(depth_init=False), _llama),
    "deepnet": (lambda: jaxinit.deepnet(n_encoder=2), _deepnet),
    "recurrent": (lambda: jaxinit.recurrent(), _rnn),
    "recurrent eqx": (lambda: jaxinit.recurrent(), _eqx_models),
}


@pytest.mark.parametrize("case", list(CASES))
def test_explain_shows_the_law_of_every_parameter(case):
    make_rules, make_params = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxinit.ShadowedRuleWarning)  # catch-alls of a set
        layout = "flax" if case.startswith("vit") else None  # a rank-4 patch kernel in a dict
        table = jaxinit.explain(make_params(), make_rules(), layout=layout)
    drawn = [r for r in _rows(table) if r[3] != "-" and "(kept)" not in r[4]]
    assert drawn, table
    for row in drawn:
        assert "?" not in row[6] and "?" not in row[5], f"{case}:\n{table}"
        assert "re.compile" not in row[3], row


def test_every_built_in_rule_set_is_covered():
    built_in = {
        "torch_default_rules", "torch_default_layer_rules", "fixup", "rezero", "gpt2",
        "t_fixup", "mup", "vit", "bert", "depth_scaled", "deepnet", "recurrent",
    }  # fmt: skip
    assert built_in <= {case.split()[0] for case in CASES}
    # skipinit is rezero
    assert jaxinit.skipinit is jaxinit.rezero


def test_explain_shows_the_fans_the_law_uses():
    params = {"attn": {"query": _lin(64, 64), "out": _lin(64, 64)}}
    table = jaxinit.explain(params, jaxinit.torch_default_layer_rules())
    row = next(r for r in _rows(table) if r[0] == "attn/query/kernel")
    assert row[5] == "64, 192"  # torch's fused (3E, E) in-projection: E and 3E
    assert row[6] == f"bound {math.sqrt(6 / (64 + 192)):.4g}"
    assert row[3] == "any_of('{query,key,value,query_proj,key_proj,value_proj}/{kernel,weight}')"


def test_explain_shows_padding_rows_and_gpt2_projection_std():
    table = jaxinit.explain(_bert(), jaxinit.bert(padding_idx=0))
    assert "row 0 = 0" in table
    table = jaxinit.explain(_transformer(), jaxinit.gpt2(2))
    row = next(r for r in _rows(table) if r[0] == "block_0/attn/out/kernel")
    assert row[6] == "std 0.01" and row[4] != "normal()", row


# --------------------------------------------------------------------------- Keras


def test_keras_orthogonal_config_uses_gain():
    init = jaxinit.get("Orthogonal", gain=2.0)
    config = init.get_config()
    assert config["class_name"] == "Orthogonal" and config["config"] == {"gain": 2.0}
    again = jaxinit.from_config(config)
    assert again == init
    np.testing.assert_array_equal(again(KEY, (4, 4)), jaxinit.orthogonal(2.0)(KEY, (4, 4)))


# --------------------------------------------------------------------------- clearer names


def test_clearer_names_keep_the_old_ones():
    assert jaxinit.zer_o is jaxinit.zero_init  # ZerO, not zeros
    assert jaxinit.get("zer_o") == jaxinit.zero_init()
    assert jaxinit.scheme_names() == jaxinit.names() and "he_normal" in jaxinit.scheme_names()
