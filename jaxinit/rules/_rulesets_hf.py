r"""Rule sets of Hugging Face decoder and encoder-decoder families, for
:func:`jaxinit.reinit`: Llama / Mistral and T5, each equal to its ``_init_weights``
(``transformers/models/<family>/modeling_<family>.py``). BERT and RoBERTa are
:func:`jaxinit.bert` and :func:`jaxinit.roberta`.

Default patterns follow the names of Hugging Face's own Flax ports (``FlaxLlamaModel``:
``embed_tokens/embedding``, ``self_attn/q_proj/kernel``, ``input_layernorm/weight``;
``FlaxT5Model``: ``shared/embedding``, ``SelfAttention/q/kernel``,
``DenseReluDense/wi/kernel``, ``layer_norm/weight``) and of the torch originals
(``weight`` for kernels), whichever the model uses. Every set covers every parameter of
its family; a parameter it does not know is an error that names it (``strict=False`` drops
that check, for models with parameters of their own, given rules before these).
"""

from __future__ import annotations

from jaxinit._checks import check_positive
from jaxinit._types import Pattern
from jaxinit.initializers import constant, normal, zeros
from jaxinit.rules._rules import ContextRule, LeafInfo, any_of, optional
from jaxinit.rules._rulesets_common import call_rank, not_covered, unknown_kind
from jaxinit.rules._rulesets_models import _check_int, _hf_normal

# --------------------------------------------------------------------------- Llama


def llama(
    initializer_range: float = 0.02,
    *,
    padding_idx: int | None = None,
    embed_tokens: Pattern = any_of("embed_tokens/{embedding,weight}"),
    embeddings: Pattern = any_of("{embedding,embed_tokens/weight}"),
    weights: Pattern = any_of("{kernel,weight}"),
    biases: Pattern = "bias",
    norm_scales: Pattern = any_of("{scale,*norm/weight}"),
    strict: bool = True,
) -> dict[Pattern, object]:
    r"""Llama and Mistral as Hugging Face initialises them (``LlamaPreTrainedModel.
    _init_weights`` and ``LlamaModel.__init__`` in
    ``transformers/models/llama/modeling_llama.py``, transformers commit 0022728, v4.38;
    ``MistralPreTrainedModel`` is the same): every Linear weight (q, k, v, o projections,
    gate / up / down, ``lm_head``) and the token embeddings
    :math:`\mathcal N(0, \mathrm{initializer\_range}^2)` (0.02), biases 0 (there are
    none unless ``attention_bias``), RMSNorm weight 1 (``torch.ones`` at construction;
    later releases also fill it with 1 in ``_init_weights``).

    The padding row: ``embed_tokens = nn.Embedding(vocab, hidden, config.pad_token_id)``
    and ``_init_weights`` zeroes ``weight[padding_idx]``, but ``LlamaConfig``'s
    ``pad_token_id`` is ``None`` by default, so no row is zeroed unless ``padding_idx``
    is given (then ``embed_tokens`` must exist and have that row).

    >>> rules = jaxinit.llama()  # also Mistral
    """
    return _hf_normal(
        "llama", "a Llama / Mistral model", initializer_range, padding_idx, [embed_tokens],
        embeddings, weights, biases, norm_scales, strict,
    )  # fmt: skip


# --------------------------------------------------------------------------- T5


def t5(
    d_model: int,
    d_kv: int,
    num_heads: int,
    d_ff: int,
    *,
    factor: float = 1.0,
    attention: str = "{SelfAttention,EncDecAttention}",
    feed_forward: str = "DenseReluDense",
    shared: Pattern = any_of("shared/{embedding,weight}"),
    lm_head: Pattern = any_of("lm_head/{kernel,weight}"),
    norm_scales: Pattern = any_of("{layer_norm,final_layer_norm}/{weight,scale}"),
    biases: Pattern = "bias",
    strict: bool = True,
) -> dict[Pattern, object]:
    r"""T5 as Hugging Face initialises it (``T5PreTrainedModel._init_weights`` in
    ``transformers/models/t5/modeling_t5.py``, transformers commit 6b8b757, v4.4x), the
    Mesh TensorFlow scheme; :math:`f` is ``initializer_factor`` (1.0):

    * attention ``q``: :math:`\mathcal N(0, f^2/(d_{model} d_{kv}))`;
    * attention ``k``, ``v``: :math:`\mathcal N(0, f^2/d_{model})`;
    * attention ``o``: :math:`\mathcal N(0, f^2/(n_{heads} d_{kv}))`;
    * ``relative_attention_bias`` (first block of each stack):
      :math:`\mathcal N(0, f^2/d_{model})`;
    * feed-forward ``wi`` (``wi_0``, ``wi_1`` when gated): :math:`\mathcal N(0, f^2/d_{model})`;
    * feed-forward ``wo``: :math:`\mathcal N(0, f^2/d_{ff})`;
    * the ``shared`` embedding and an untied ``lm_head``: :math:`\mathcal N(0, f^2)`;
    * ``layer_norm`` / ``final_layer_norm`` weight: the constant :math:`f`;
    * biases (T5 has none): 0.

    Self- and cross-attention (``EncDecAttention``) of encoder and decoder alike. The
    stds come from the config, as in the source, whatever the stored shapes.

    Args:
      d_model: the config's ``d_model``.
      d_kv: the config's ``d_kv`` (one head's size).
      num_heads: the config's ``num_heads``.
      d_ff: the config's ``d_ff``.
      factor: the config's ``initializer_factor``.
      attention: the attention modules' names (a glob of one segment).
      feed_forward: the feed-forward module's name (``DenseReluDense``, also for the
        gated variant).
      shared: the shared token embedding.
      lm_head: an untied output projection (optional).
      norm_scales: the layer norms' weights.
      biases: biases (T5 has none; 0 if a port adds them).
      strict: a parameter these rules do not cover is an error.

    >>> rules = jaxinit.t5(d_model=512, d_kv=64, num_heads=8, d_ff=2048)  # t5-small
    """
    fn = "t5"
    for name, value in (("d_model", d_model), ("d_kv", d_kv), ("num_heads", num_heads),
                        ("d_ff", d_ff)):  # fmt: skip
        _check_int(fn, name, value)
    check_positive(fn, "factor", factor)
    for name, glob in (("attention", attention), ("feed_forward", feed_forward)):
        if not isinstance(glob, str) or "/" in glob:
            raise TypeError(f"{fn}: {name} must be a glob of one path segment, got {glob!r}")
    family = "a T5 model"
    w = "{kernel,weight}"

    def proj(std: float, what: str) -> ContextRule:
        def build(info: LeafInfo):
            if call_rank(info) != 2:
                raise unknown_kind(fn, family, info, f"{what}: a Linear weight")
            return normal(std)

        return ContextRule(build, f"t5 {what} normal({std:.4g})")

    rules: dict[Pattern, object] = {
        any_of(f"{attention}/q/{w}"): proj(factor * (d_model * d_kv) ** -0.5, "q"),
        any_of(f"{attention}/{{k,v}}/{w}"): proj(factor * d_model**-0.5, "k, v"),
        any_of(f"{attention}/o/{w}"): proj(factor * (num_heads * d_kv) ** -0.5, "o"),
        any_of(f"{attention}/relative_attention_bias/{{embedding,weight}}"): optional(
            normal(factor * d_model**-0.5)
        ),
        any_of(f"{feed_forward}/{{wi,wi_0,wi_1}}/{w}"): proj(factor * d_model**-0.5, "wi"),
        any_of(f"{feed_forward}/wo/{w}"): proj(factor * d_ff**-0.5, "wo"),
        shared: normal(factor * 1.0),
        lm_head: optional(normal(factor * 1.0)),
        norm_scales: constant(factor * 1.0),
        biases: optional(zeros),
    }
    if strict:
        pattern, rule = not_covered(fn, family, patterns=list(rules))
        rules[pattern] = rule
    return rules
