"""Hugging Face families (BERT, RoBERTa, Llama / Mistral, T5), as Flax ports with the
parameter names of Hugging Face's own Flax models, re-drawn by their rule set in one line
and compared, parameter by parameter over 8 seeds, with the law of the original's
``_init_weights`` written here from ``transformers/models/<family>/modeling_<family>.py``
(tests/family_laws.py: std ratio and KS, exact values for constants and padding rows)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
from tests.family_laws import Const, Normal, Rows, check


class RMSNorm(nn.Module):
    """HF's FlaxLlamaRMSNorm / FlaxT5LayerNorm: one parameter named ``weight``."""

    dim: int

    @nn.compact
    def __call__(self, x):
        w = self.param("weight", nn.initializers.ones, (self.dim,))
        return x * jax.lax.rsqrt(jnp.mean(x**2, -1, keepdims=True) + 1e-6) * w[None]


class Port(nn.Module):
    """Layers named as a Flax port names them, from a nested spec: ``("dense", in, out,
    bias)``, ``("embed", n, d)``, ``("ln", d)`` (flax LayerNorm), ``("rms", d)``."""

    spec: dict

    @nn.compact
    def __call__(self):
        for name, s in self.spec.items():
            if not isinstance(s, tuple):  # a sub-module (linen freezes the dict)
                Port(s, name=name)()
            elif s[0] == "dense":
                nn.Dense(s[2], use_bias=s[3], name=name)(jnp.ones((1, s[1])))
            elif s[0] == "embed":
                nn.Embed(s[1], s[2], name=name)(jnp.zeros((1,), jnp.int32))
            elif s[0] == "ln":
                nn.LayerNorm(name=name)(jnp.ones((1, s[1])))
            else:
                RMSNorm(s[1], name=name)(jnp.ones((1, s[1])))


def _variables(spec):
    shapes = jax.eval_shape(Port(spec).init, jax.random.key(0))
    return jax.tree.map(lambda s: jnp.full(s.shape, 7.0, s.dtype), shapes)


def _draw(spec, rules):
    v = _variables(spec)
    return lambda k: jaxinit.reinit(v, rules, k)


# --------------------------------------------------------------------------- BERT, RoBERTa
# modeling_bert.py: BertEmbeddings.word_embeddings = nn.Embedding(vocab, H,
#   padding_idx=config.pad_token_id) (0 in BertConfig); position / token-type embeddings
#   without padding_idx. _init_weights: Linear weight N(0, r²), bias 0; Embedding N(0, r²)
#   and weight[padding_idx] = 0; LayerNorm weight 1, bias 0.
# modeling_roberta.py: word_embeddings and position_embeddings both built with
#   padding_idx=config.pad_token_id (1 in RobertaConfig); same _init_weights.

H, FF, V, P = 16, 32, 40, 12


def _bert_spec(n_layer=2):
    dense = lambda i, o: ("dense", i, o, True)
    dense_ln = lambda i, o: {"dense": dense(i, o), "LayerNorm": ("ln", o)}
    layer = {
        "attention": {
            "self": {"query": dense(H, H), "key": dense(H, H), "value": dense(H, H)},
            "output": dense_ln(H, H),
        },
        "intermediate": {"dense": dense(H, FF)},
        "output": dense_ln(FF, H),
    }
    return {
        "embeddings": {
            "word_embeddings": ("embed", V, H),
            "position_embeddings": ("embed", P, H),
            "token_type_embeddings": ("embed", 2, H),
            "LayerNorm": ("ln", H),
        },
        "encoder": {"layer": {str(i): layer for i in range(n_layer)}},
        "pooler": {"dense": dense(H, H)},
    }


def encoder_law(r, padded_rows):
    def law(path, shape):
        name = path.rsplit("/", 1)[-1]
        parent = path.rsplit("/", 2)[-2]
        if name == "embedding":
            return Rows(Normal(r), padded_rows[parent]) if parent in padded_rows else Normal(r)
        if name == "kernel":
            return Normal(r)
        if name == "scale":
            return Const(1.0)
        return Const(0.0) if name == "bias" else None

    return law


@pytest.mark.parametrize("r, pad", [(0.02, 0), (0.05, 3)])
def test_bert_matches_hf(r, pad):
    n = check(
        _draw(_bert_spec(), jaxinit.bert(r, padding_idx=pad)),
        encoder_law(r, {"word_embeddings": {pad: 0.0}}),
    )
    assert n == 3 + 2 + 2 * 16 + 2


def test_bert_zeroes_only_the_word_embeddings_padding_row():
    """The defect fixed: position and token-type embeddings have no padding row in HF,
    and ``bert()`` zeroes the word embeddings' row 0 (BertConfig's pad_token_id)."""
    p = jaxinit.reinit(_variables(_bert_spec(1)), jaxinit.bert(), jax.random.key(3))["params"]
    emb = p["embeddings"]
    np.testing.assert_array_equal(emb["word_embeddings"]["embedding"][0], 0.0)
    assert np.all(emb["position_embeddings"]["embedding"][0] != 0)
    assert np.all(emb["token_type_embeddings"]["embedding"][0] != 0)
    q = jaxinit.reinit(_variables(_bert_spec(1)), jaxinit.bert(padding_idx=None),
                       jax.random.key(3))["params"]  # fmt: skip
    assert np.all(q["embeddings"]["word_embeddings"]["embedding"][0] != 0)


def test_roberta_matches_hf():
    rows = {"word_embeddings": {1: 0.0}, "position_embeddings": {1: 0.0}}
    n = check(_draw(_bert_spec(), jaxinit.roberta()), encoder_law(0.02, rows))
    assert n == 3 + 2 + 2 * 16 + 2


def test_hf_encoder_bad_input():
    v = _variables(_bert_spec(1))
    # an embedding without the padding row it needs
    with pytest.raises(ValueError, match=r"padding_idx=12 >= vocabulary size 12 of .*position"):
        jaxinit.explain(v, jaxinit.roberta(padding_idx=12))
    # no word embeddings at all: the padded rule matches nothing, and says so
    no_words = {"params": {"Embed_0": {"embedding": jnp.zeros((5, 4))}}}
    with pytest.raises(ValueError, match=r"word_embeddings.* matches no parameter"):
        jaxinit.explain(no_words, jaxinit.bert())
    # a parameter BERT has not
    extra = {"params": {**v["params"], "cls_token": jnp.zeros((1, 1, H))}}
    with pytest.raises(ValueError, match=r"params/cls_token \(1, 1, 16\) is not a parameter of"):
        jaxinit.explain(extra, jaxinit.bert())
    # a 1-D weight that is no LayerNorm the patterns know
    odd = {"params": {**v["params"], "gate": {"weight": jnp.zeros((H,))}}}
    with pytest.raises(ValueError, match=r"params/gate/weight \(16,\) .* is not a layer of"):
        jaxinit.explain(odd, jaxinit.bert())


# --------------------------------------------------------------------------- Llama
# modeling_llama.py (v4.38): _init_weights: Linear weight N(0, r²) (bias 0 when present),
#   Embedding N(0, r²) and weight[padding_idx] = 0 if padding_idx is not None;
#   embed_tokens = nn.Embedding(vocab, H, config.pad_token_id) (None in LlamaConfig);
#   LlamaRMSNorm.weight = torch.ones(hidden).


def _llama_spec(n_layer=2, kv=8):
    lin = lambda i, o: ("dense", i, o, False)
    layer = {
        "self_attn": {"q_proj": lin(H, H), "k_proj": lin(H, kv), "v_proj": lin(H, kv),
                      "o_proj": lin(H, H)},
        "mlp": {"gate_proj": lin(H, FF), "up_proj": lin(H, FF), "down_proj": lin(FF, H)},
        "input_layernorm": ("rms", H),
        "post_attention_layernorm": ("rms", H),
    }  # fmt: skip
    return {
        "model": {
            "embed_tokens": ("embed", V, H),
            "layers": {str(i): layer for i in range(n_layer)},
            "norm": ("rms", H),
        },
        "lm_head": lin(H, V),
    }


def llama_law(r, pad=None):
    def law(path, shape):
        name = path.rsplit("/", 1)[-1]
        if name == "embedding":
            return Normal(r) if pad is None else Rows(Normal(r), {pad: 0.0})
        if name == "kernel":
            return Normal(r)
        return Const(1.0) if name == "weight" else None

    return law


@pytest.mark.parametrize("pad", [None, 2])
def test_llama_matches_hf(pad):
    n = check(_draw(_llama_spec(), jaxinit.llama(padding_idx=pad)), llama_law(0.02, pad))
    assert n == 1 + 2 * 9 + 1 + 1


def test_llama_bad_input():
    v = _variables(_llama_spec(1))
    with pytest.raises(ValueError, match=r"embed_tokens.* matches no parameter"):
        jaxinit.explain(
            {"params": {"lm_head": v["params"]["lm_head"]}}, jaxinit.llama(padding_idx=0)
        )
    extra = {"params": {**v["params"], "rotary": {"inv_freq": jnp.ones(4)}}}
    with pytest.raises(ValueError, match=r"params/rotary/inv_freq \(4,\) is not a parameter of a"):
        jaxinit.explain(extra, jaxinit.llama())


# --------------------------------------------------------------------------- T5
# modeling_t5.py (T5PreTrainedModel._init_weights), f = initializer_factor:
#   T5LayerNorm weight f; shared N(0, f²), untied lm_head N(0, f²);
#   DenseActDense wi N(0, f²/d_model), wo N(0, f²/d_ff) (gated: wi_0, wi_1 like wi);
#   T5Attention q N(0, f²/(d_model d_kv)), k, v N(0, f²/d_model), o N(0, f²/(n_heads d_kv)),
#   relative_attention_bias (first block only) N(0, f²/d_model).

D, DKV, NH, DFF, BUCKETS = 16, 4, 2, 24, 8


def _t5_spec(gated):
    lin = lambda i, o: ("dense", i, o, False)
    attn = lambda rel: {
        "q": lin(D, NH * DKV), "k": lin(D, NH * DKV), "v": lin(D, NH * DKV),
        "o": lin(NH * DKV, D), **({"relative_attention_bias": ("embed", BUCKETS, NH)} if rel else {}),
    }  # fmt: skip
    ff = {"wi": lin(D, DFF), "wo": lin(DFF, D)}
    if gated:
        ff = {"wi_0": lin(D, DFF), "wi_1": lin(D, DFF), "wo": lin(DFF, D)}
    ln = ("rms", D)

    def block(i, decoder):
        layers = {"0": {"SelfAttention": attn(i == 0), "layer_norm": ln}}
        if decoder:
            layers["1"] = {"EncDecAttention": attn(False), "layer_norm": ln}
        layers[str(len(layers))] = {"DenseReluDense": ff, "layer_norm": ln}
        return {"layer": layers}

    return {
        "shared": ("embed", V, D),
        "encoder": {"block": {str(i): block(i, False) for i in range(2)},
                    "final_layer_norm": ln},
        "decoder": {"block": {"0": block(0, True)}, "final_layer_norm": ln},
        "lm_head": lin(D, V),
    }  # fmt: skip


def t5_law(f):
    def law(path, shape):
        parent, name = path.rsplit("/", 2)[-2:]
        if name == "weight":
            return Const(f)  # T5LayerNorm
        std = {"q": (D * DKV) ** -0.5, "k": D**-0.5, "v": D**-0.5, "o": (NH * DKV) ** -0.5,
               "relative_attention_bias": D**-0.5, "wi": D**-0.5, "wi_0": D**-0.5,
               "wi_1": D**-0.5, "wo": DFF**-0.5, "shared": 1.0, "lm_head": 1.0}  # fmt: skip
        return Normal(f * std[parent]) if parent in std else None

    return law


@pytest.mark.parametrize("gated, f", [(False, 1.0), (True, 0.5)])
def test_t5_matches_hf(gated, f):
    rules = jaxinit.t5(d_model=D, d_kv=DKV, num_heads=NH, d_ff=DFF, factor=f)
    n = check(_draw(_t5_spec(gated), rules), t5_law(f))
    ff = 3 if gated else 2
    per_block = 4 + 1 + ff + 1
    assert n == 1 + (2 * per_block + 1 + 1) + (per_block + 4 + 1 + 1 + 1) + 1


def test_t5_bad_input():
    v = _variables(_t5_spec(False))
    extra = {"params": {**v["params"], "encoder": {**v["params"]["encoder"],
                                                   "embed_tokens": {"embedding": jnp.zeros((V, D))}}}}  # fmt: skip
    with pytest.raises(ValueError, match=r"encoder/embed_tokens/embedding \(40, 16\) is not a"):
        jaxinit.explain(extra, jaxinit.t5(D, DKV, NH, DFF))
    bad = {
        "params": {
            **v["params"],
            "conv": {"SelfAttention": {"q": {"kernel": jnp.zeros((3, D, 8))}}},
        }
    }
    with pytest.raises(ValueError, match=r"conv/SelfAttention/q/kernel .* is not a layer of a T5"):
        jaxinit.explain(bad, jaxinit.t5(D, DKV, NH, DFF), layout="flax")
    with pytest.raises(ValueError, match="t5: d_kv must be an int >= 1"):
        jaxinit.t5(D, 0, NH, DFF)


def test_llama_nnx_port():
    """An nnx port (layers in a list: ``layers/0/self_attn/q_proj/kernel``; nnx's RMSNorm
    calls its weight ``scale``), grouped-query attention (k, v narrower than q)."""
    from flax import nnx

    class Layer(nnx.Module):
        def __init__(self, rngs):
            lin = lambda i, o: nnx.Linear(i, o, use_bias=False, rngs=rngs)
            self.self_attn = nnx.Dict(q_proj=lin(H, H), k_proj=lin(H, 8), v_proj=lin(H, 8),
                                      o_proj=lin(H, H))  # fmt: skip
            self.mlp = nnx.Dict(gate_proj=lin(H, FF), up_proj=lin(H, FF), down_proj=lin(FF, H))
            self.input_layernorm = nnx.RMSNorm(H, rngs=rngs)
            self.post_attention_layernorm = nnx.RMSNorm(H, rngs=rngs)

    class Llama(nnx.Module):
        def __init__(self, rngs):
            self.embed_tokens = nnx.Embed(V, H, rngs=rngs)
            self.layers = nnx.List([Layer(rngs), Layer(rngs)])
            self.norm = nnx.RMSNorm(H, rngs=rngs)
            self.lm_head = nnx.Linear(H, V, use_bias=False, rngs=rngs)

    net = Llama(nnx.Rngs(0))
    state = nnx.state(net, nnx.Param)

    def law(path, shape):
        name = path.rsplit("/", 1)[-1]
        if name in ("kernel", "embedding"):
            return Normal(0.02)
        return Const(1.0) if name == "scale" else None

    rules = jaxinit.llama()
    assert check(lambda k: jaxinit.reinit(state, rules, k, module=net), law) == 21
