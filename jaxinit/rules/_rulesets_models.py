r"""Rule sets of the model families people train, for :func:`jaxinit.reinit`: ViT as timm
initialises it, BERT / Hugging Face, torchtitan's depth-scaled init, DeepNet, recurrent
nets (orthogonal recurrence, forget-gate bias), and the PyTorch defaults of embeddings,
multi-head attention, LayerNorm and RNN/LSTM/GRU cells.

Each function returns a plain ``{pattern: initializer}`` dict (first match wins) whose
patterns are arguments, with defaults that follow the naming of the source the scheme comes
from or of flax's / Equinox's own layers, as each docstring says. Rules for parameters a
model may lack are optional. Where a default names "whichever of these the model uses"
(``kernel`` in flax, ``weight`` in Equinox; several naming conventions) it is
:func:`jaxinit.any_of`, since each alternative of a ``{a,b}`` glob must match.

Initializers are drawn as the owning layer draws its ``kernel_init`` (its fans, once per
stacked layer, Equinox weights transposed), like any rule; constants computed from fans
(a bound :math:`1/\sqrt{n_{in}}`) use the layer's fans (``LeafInfo.layer``), so a linen
kernel of rank >= 3 needs ``module=``/``sample=``. Rules that must see the stored array
(per-gate orthogonal blocks of a fused cell, a padding row, per-layer stds of a stacked
kernel) are ``native`` and say so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, overload

import jax
import jax.numpy as jnp

from jaxinit._checks import check_choice, check_positive
from jaxinit.initializers import (
    constant,
    lecun_normal,
    normal,
    ones,
    orthogonal,
    torch_default_bias,
    torch_default_kernel,
    torch_trunc_normal,
    variance_scaling,
    zeros,
)
from jaxinit.rules._layers import LayerFans, mark_fan_dependent, plain
from jaxinit.rules._rules import ContextRule, LeafInfo, Pattern, any_of, matches, optional
from jaxinit.rules._rulesets_common import excluding, not_covered, padded_embedding, unknown_kind

# --------------------------------------------------------------------------- helpers

_LAYER_RE = re.compile(
    r"(?:^|/)(?:layers|layer|blocks|block|h|encoder_layer|decoder_layer)[_/](\d+)(?:/|$)"
)


def layer_index(path: str, pattern: str | re.Pattern | None = None) -> int | None:
    """The layer index in a parameter path, or ``None``: ``"layers/3/attention/wo/kernel"``,
    ``"block_3/..."``, ``"h/3/..."``, ``"blocks_3/..."`` all give 3 (the first match).

    Args:
      path: a "/"-joined parameter path (``LeafInfo.path``).
      pattern: a regex whose first group is the index, to override the default (segments
        named ``layers``, ``layer``, ``blocks``, ``block``, ``h``, ``encoder_layer``,
        ``decoder_layer`` followed by ``_<i>`` or ``/<i>``).

    >>> jaxinit.layer_index("params/layers_2/mlp/kernel")
    2
    """
    regex = _LAYER_RE if pattern is None else re.compile(pattern)
    m = regex.search(path)
    return None if m is None else int(m.group(1))


def _check_int(fn: str, arg: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{fn}: {arg} must be an int >= {minimum}, got {value!r}")
    return value


@overload
def _layer(info: LeafInfo) -> LayerFans: ...
@overload
def _layer(info: LeafInfo, sibling: str) -> LayerFans | None: ...
def _layer(info: LeafInfo, sibling: str | None = None) -> LayerFans | None:
    """How the layer makes this parameter (or its sibling ``sibling``): the recorded /
    class layer, else the stored shape in the leaf's layout. ``call_shape`` is always in
    flax's ``(*k, in, out)`` convention."""
    shape: Sequence[int] | None
    if sibling is None:
        if info.layer is not None:
            return info.layer
        shape = info.shape
    else:
        if sibling in info.sibling_layers:
            return info.sibling_layers[sibling]
        shape = info.siblings.get(sibling)
        if shape is None:
            return None
    return plain("array", tuple(shape), info.layout)


def _kernel_layer(info: LeafInfo) -> LayerFans | None:
    """The layer call of the leaf's kernel/weight (itself, or the sibling of a bias)."""
    if info.name != "bias" and not info.name.startswith("bias_"):
        return _layer(info)
    for name in ("kernel", "weight"):
        layer = _layer(info, name)
        if layer is not None:
            return layer
    return None


def _matrix_rule(init, name: str) -> ContextRule:
    """``init`` for weights whose layer calls it with rank >= 2; 1-D "weights" (norm
    scales, also a stacked one) are left alone. Drawn as the layer draws it."""

    def build(info: LeafInfo):
        return init if len(_layer(info).call_shape) >= 2 else None

    return ContextRule(build, name)


def _is(owner: type | None, *names: str) -> bool:
    return owner is not None and any(c.__name__ in names for c in owner.__mro__)


def _sum_of_uniforms(bound: float):
    """The sum of two independent U[±bound] draws (torch's ``b_ih + b_hh``): a triangular
    distribution on [-2 bound, 2 bound], variance 2 bound²/3."""

    def init(key, shape, dtype=None):
        dtype = dtype or jnp.float32
        k1, k2 = jax.random.split(key)
        u1 = jax.random.uniform(k1, shape, dtype, -bound, bound)
        return u1 + jax.random.uniform(k2, shape, dtype, -bound, bound)

    return init


def _uniform(bound: float):
    def init(key, shape, dtype=None):
        return jax.random.uniform(key, shape, dtype or jnp.float32, -bound, bound)

    return init


def _fans_uniform(bound: float):
    """:func:`_uniform` whose bound came from the layer's fans (see ``mark_fan_dependent``)."""
    return mark_fan_dependent(_uniform(bound))


def _blocks(inits: list, axis: int):
    """Draw equal blocks along ``axis`` with one initializer each and concatenate."""

    def init(key, shape, dtype=None):
        n = len(inits)
        if shape[axis] % n:
            raise ValueError(f"fused gates: axis {axis} of shape {shape} is not divisible by {n}")
        sub = list(shape)
        sub[axis] //= n
        keys = jax.random.split(key, n)
        return jnp.concatenate(
            [f(k, tuple(sub), dtype) for f, k in zip(inits, keys, strict=True)], axis
        )

    return init


# --------------------------------------------------------------------------- ViT (timm)


def vit(
    mode: str = "timm",
    *,
    num_classes: int | None = None,
    head_bias: float = 0.0,
    cls_token: Pattern = any_of("{cls_token,reg_token}"),
    pos_embed: Pattern = "pos_embed",
    patch_embed: str = "patch_embed/**",
    qkv: Pattern = any_of("qkv/{kernel,weight}"),
    head: Pattern = any_of("head/{kernel,weight}"),
    head_bias_pattern: Pattern = "head/bias",
    mlp_bias: Pattern = "mlp/**/bias",
    weights: Pattern = any_of("{kernel,weight}"),
    biases: Pattern = "bias",
    norm_scales: Pattern = "scale",
) -> dict[Pattern, object]:
    r"""A Vision Transformer initialised as timm's ``VisionTransformer.init_weights(mode)``
    (``timm/models/vision_transformer.py``), with timm's parameter names by default.

    Every mode: ``cls_token`` (and ``reg_token``) :math:`\mathcal N(0, 10^{-12})` (std 1e-6),
    ``pos_embed`` trunc-normal std 0.02 (torch's absolute ±2 cut), LayerNorm ones / zeros.

    * ``"timm"`` (``init_weights_vit_timm``): every Linear weight trunc-normal std 0.02,
      biases 0; the patch-embedding conv is left at **torch's default** (it is a Conv2d,
      which timm does not touch): :math:`U[\pm 1/\sqrt{n_{in}}]`, bias too.
    * ``"jax"`` / ``"jax_nlhb"`` (``init_weights_vit_jax``): the head weight 0 and its bias
      ``head_bias`` (``-log(num_classes)`` for ``jax_nlhb``); other Linear weights Xavier
      uniform, biases 0 except the MLP's :math:`\mathcal N(0, 10^{-12})`; the patch conv
      LeCun normal (truncated), bias 0.
    * ``"moco"`` (``init_weights_vit_moco``): the fused ``qkv`` weight
      :math:`U[\pm\sqrt{6/(n_{out}/3 + n_{in})}]` (Q, K and V treated as separate Xavier
      matrices), other Linear weights Xavier uniform, biases 0; the patch conv left at
      torch's default.

    ``patch_embed`` is a glob of the patch-embedding layer (its ``kernel`` or ``weight``
    and ``bias`` are found under it). The patch conv's kernel is rank 4: for linen
    variables pass ``module=``/``sample=`` to :func:`jaxinit.reinit`.

    Example:
      >>> params = {"cls_token": jnp.ones((1, 1, 64)),
      ...           "blocks_0": {"attn": {"qkv": {"kernel": jnp.zeros((64, 192))}}},
      ...           "head": {"kernel": jnp.ones((64, 10)), "bias": jnp.ones(10)}}
      >>> params = jaxinit.reinit(params, jaxinit.vit("jax"), jax.random.key(0))
      >>> float(jnp.abs(params["head"]["kernel"]).max()), float(params["head"]["bias"].max())
      (0.0, 0.0)
      >>> bool(jnp.abs(params["cls_token"]).max() < 1e-4)  # std 1e-6
      True
    """
    fn = "vit"
    check_choice(fn, "mode", mode, ["timm", "jax", "jax_nlhb", "moco"])
    if not isinstance(patch_embed, str):
        raise TypeError(f"{fn}: patch_embed must be a glob string, got {patch_embed!r}")
    if mode == "jax_nlhb":
        head_bias = -math.log(_check_int(fn, "num_classes", num_classes, minimum=2))
    common = {
        cls_token: optional(normal(1e-6)),
        pos_embed: optional(torch_trunc_normal(std=0.02)),
        norm_scales: optional(ones),
    }
    rules: dict[Pattern, Any]
    if mode == "timm" or mode == "moco":
        rules = {
            any_of(f"{patch_embed}/{{kernel,weight}}"): optional(_torch_kernel_rule()),
            f"{patch_embed}/bias": optional(_torch_bias_rule()),
        }
    else:
        rules = {
            any_of(f"{patch_embed}/{{kernel,weight}}"): optional(lecun_normal()),
            f"{patch_embed}/bias": optional(zeros),
        }
    rules.update(common)
    xavier = variance_scaling(1.0, "fan_avg", "uniform")
    if mode == "timm":
        rules[weights] = _matrix_rule(torch_trunc_normal(std=0.02), "vit timm trunc_normal(.02)")
    elif mode == "moco":

        def qkv_rule(info: LeafInfo):
            fan_in, fan_out = _layer(info).fans  # the layer's call, whatever the layout
            return _fans_uniform(math.sqrt(6.0 / (fan_out / 3 + fan_in)))

        rules[qkv] = optional(ContextRule(qkv_rule, "vit moco qkv"))
        rules[weights] = _matrix_rule(xavier, "xavier_uniform")
    else:
        rules[head] = optional(zeros)
        rules[head_bias_pattern] = optional(constant(head_bias))
        rules[mlp_bias] = optional(normal(1e-6))
        rules[weights] = _matrix_rule(xavier, "xavier_uniform")
    rules[biases] = optional(zeros)
    return rules


def _torch_kernel_rule() -> ContextRule:
    """torch's Linear/Conv weight default as a rule, on the layer's own call."""
    return ContextRule(
        lambda info: torch_default_kernel() if len(_layer(info).call_shape) >= 2 else None,
        "torch_default_kernel",
    )


def _torch_bias_rule() -> ContextRule:
    """torch's bias default: U[±1/sqrt(fan_in)] with the sibling layer call's fan_in."""

    def build(info: LeafInfo):
        layer = _kernel_layer(info)
        if layer is None or len(layer.call_shape) < 2:
            return None
        return mark_fan_dependent(torch_default_bias(fan_in=int(layer.fans[0])))

    return ContextRule(build, "torch_default_bias")


# --------------------------------------------------------------------------- BERT / HF


def bert(
    initializer_range: float = 0.02,
    *,
    padding_idx: int | None = 0,
    padded: Pattern = any_of("word_embeddings/{embedding,weight}"),
    embeddings: Pattern = any_of("{embedding,*_embeddings/weight}"),
    weights: Pattern = any_of("{kernel,weight}"),
    biases: Pattern = "bias",
    norm_scales: Pattern = any_of("{scale,LayerNorm/weight}"),
    strict: bool = True,
) -> dict[Pattern, object]:
    r"""BERT and most Hugging Face encoders, as ``BertPreTrainedModel._init_weights`` and
    ``BertEmbeddings`` (``transformers/models/bert/modeling_bert.py``, transformers commit
    004ad5f, v4.x; the same law in later releases): Linear weights and embedding tables
    :math:`\mathcal N(0, \mathrm{initializer\_range}^2)` (0.02), Linear biases 0,
    LayerNorm weight 1 and bias 0; the ``padding_idx`` row of the **word** embeddings 0
    (``nn.Embedding(vocab_size, hidden_size, padding_idx=config.pad_token_id)``, 0 in
    ``BertConfig``). The position and token-type embeddings have no padding row.

    Args:
      initializer_range: the config's ``initializer_range``.
      padding_idx: the config's ``pad_token_id``; ``None`` for a model whose word
        embeddings have none (then no row is zeroed).
      padded: the embedding tables that have the padding row (default the word
        embeddings, flax's ``word_embeddings/embedding`` or torch's
        ``word_embeddings/weight``); it must exist when ``padding_idx`` is given.
      embeddings: every embedding table (those of ``padded`` excepted).
      weights: Linear weights (rank >= 2).
      biases: every bias (0).
      norm_scales: LayerNorm scales (1).
      strict: a parameter none of these patterns names is an error (``False`` leaves it to
        rules given before these).

    Default patterns cover flax (``embedding``, ``kernel``, ``scale``) and HF's torch names
    (``word_embeddings/weight``, ``LayerNorm/weight``), whichever the model uses. The
    padded rule is ``native``: the padding row is a row of the stored table.

    >>> rules = jaxinit.bert(padding_idx=0)  # HF's default pad_token_id
    """
    return _hf_normal(
        "bert", "a BERT encoder", initializer_range, padding_idx, [padded], embeddings,
        weights, biases, norm_scales, strict,
    )  # fmt: skip


def roberta(
    initializer_range: float = 0.02,
    *,
    padding_idx: int | None = 1,
    word_embeddings: Pattern = any_of("word_embeddings/{embedding,weight}"),
    position_embeddings: Pattern = any_of("position_embeddings/{embedding,weight}"),
    embeddings: Pattern = any_of("{embedding,*_embeddings/weight}"),
    weights: Pattern = any_of("{kernel,weight}"),
    biases: Pattern = "bias",
    norm_scales: Pattern = any_of("{scale,LayerNorm/weight}"),
    strict: bool = True,
) -> dict[Pattern, object]:
    r"""RoBERTa as Hugging Face initialises it (``RobertaPreTrainedModel._init_weights``
    and ``RobertaEmbeddings`` in ``transformers/models/roberta/modeling_roberta.py``,
    transformers commit 000824f, v4.x): BERT's
    law (:func:`bert`), with the ``padding_idx`` row (``pad_token_id``, 1 in
    ``RobertaConfig``) zeroed in the word **and** the position embeddings, both of which
    HF builds with ``padding_idx``; the token-type embeddings have none.

    >>> rules = jaxinit.roberta()
    """
    return _hf_normal(
        "roberta", "a RoBERTa encoder", initializer_range, padding_idx,
        [word_embeddings, position_embeddings], embeddings, weights, biases, norm_scales,
        strict,
    )  # fmt: skip


def _hf_normal(
    fn: str,
    family: str,
    initializer_range: float,
    padding_idx: int | None,
    padded: list[Pattern],
    embeddings: Pattern,
    weights: Pattern,
    biases: Pattern,
    norm_scales: Pattern,
    strict: bool,
) -> dict[Pattern, object]:
    check_positive(fn, "initializer_range", initializer_range)
    base = normal(initializer_range)
    rules: dict[Pattern, object] = {}
    if padding_idx is not None:
        _check_int(fn, "padding_idx", padding_idx, minimum=0)
        for pattern in padded:
            rules[pattern] = padded_embedding(fn, base, padding_idx)
        embeddings = excluding(embeddings, *padded)

    def weight_rule(info: LeafInfo):
        if len(_layer(info).call_shape) >= 2:
            return base
        raise unknown_kind(
            fn, family, info, f"a 1-D weight that norm_scales={norm_scales!r} does not match"
        )

    rules[embeddings] = optional(base)
    rules[norm_scales] = optional(ones)
    rules[excluding(weights, norm_scales, *rules)] = ContextRule(
        weight_rule, f"normal({initializer_range})"
    )
    rules[biases] = optional(zeros)
    if strict:
        pattern, rule = not_covered(fn, family, patterns=list(rules))
        rules[pattern] = rule
    return rules


# --------------------------------------------------------------------------- depth-scaled


def depth_scaled(
    n_layers: int | None = None,
    *,
    std: float = 0.02,
    depth_init: bool = True,
    scaled: Pattern = any_of("{attention/wo,feed_forward/w2,feed_forward/w3}/{kernel,weight}"),
    unscaled: Pattern = any_of(
        "{attention/wq,attention/wk,attention/wv,feed_forward/w1}/{kernel,weight}"
    ),
    embeddings: Pattern = any_of("tok_embeddings/{embedding,weight}"),
    output: Pattern = any_of("output/{kernel,weight}"),
    norm_scales: Pattern = any_of("{scale,*norm/weight}"),
    biases: Pattern = "bias",
    layer_pattern: str | None = None,
) -> dict[Pattern, object]:
    r"""torchtitan's Llama init (``torchtitan/models/llama3``): depth-scaled residual outputs.

    * the residual-branch outputs (attention ``wo``, feed-forward ``w2``, ``w3``) of layer
      :math:`\ell` (0-based): trunc-normal std :math:`0.02/\sqrt{2(\ell+1)}`
      (``depth_init=True``) or :math:`0.02/\sqrt{2\,n_{layers}}` (``depth_init=False``,
      GPT-2's rule);
    * ``wq``, ``wk``, ``wv``, ``w1``: trunc-normal std 0.02;
    * token embeddings :math:`\mathcal N(0, 1)`;
    * the output projection trunc-normal std :math:`d^{-1/2}` cut at ±3 std (d its fan-in);
    * norm scales 1, biases 0.

    The layer :math:`\ell` and :math:`n_{layers}` are :class:`jaxinit.LeafInfo`'s
    ``layer_index`` and ``depth``: the integer in the path (``layers_3``, ``layers/3``)
    and the number of such layers, or for a stack of layers (``nn.scan``, ``nnx.vmap``)
    the position along the stack axis and its length, so each stacked layer's slice gets
    its own std. ``n_layers`` (optional) checks the model's depth; it also serves a plain
    parameter dict whose layers are stacked on a leading axis of that size without a
    module to say so. ``layer_pattern``: a regex whose first group is the index (see
    :func:`layer_index`), tried before the path's integer.

    torch's ``trunc_normal_`` cuts at absolute ±2, which is nothing at std 0.02. The scaled
    rule is ``native`` (drawn on the stored array, elementwise: no fans involved). The
    output's :math:`d` is its layer's fan-in.

    Example:
      >>> k = jnp.zeros((256, 256))
      >>> layer = {"attention": {"wq": {"kernel": k}, "wo": {"kernel": k}}}
      >>> params = {"tok_embeddings": {"embedding": jnp.zeros((100, 256))},
      ...           "layers_0": layer, "layers_7": layer, "output": {"kernel": jnp.zeros((256, 100))}}
      >>> params = jaxinit.reinit(params, jaxinit.depth_scaled(), jax.random.key(0))
      >>> [round(float(params[f"layers_{i}"]["attention"]["wo"]["kernel"].std()), 3) for i in (0, 7)]  # 0.02 / √(2 (ℓ + 1))
      [0.014, 0.005]
      >>> round(float(params["layers_7"]["attention"]["wq"]["kernel"].std()), 3)  # unscaled
      0.02
    """
    fn = "depth_scaled"
    n = None if n_layers is None else _check_int(fn, "n_layers", n_layers)
    check_positive(fn, "std", std)

    def scaled_rule(info: LeafInfo):
        if len(_layer(info).call_shape) < 2:
            return None
        if not depth_init:
            depth = n or info.depth
            if not depth:
                raise ValueError(
                    f"{fn}: depth_init=False needs the number of layers, and {info.path!r}"
                    " has no layer index in its path nor a stack of layers; give n_layers"
                )
            return torch_trunc_normal(std=std / math.sqrt(2 * depth))
        i = info.layer_index
        if layer_pattern is not None and layer_index(info.path, layer_pattern) is not None:
            i = layer_index(info.path, layer_pattern)
        if i is None and n is not None and len(info.shape) >= 3 and info.shape[0] == n:
            return _stacked(n, std)  # a plain dict's (n_layers, in, out) stack
        if i is None:
            raise ValueError(
                f"{fn}: no layer index in the path {info.path!r} and no stack of layers in"
                f" shape {info.shape}; name layers like 'layers/3' or 'layers_3', give"
                " layer_pattern, or pass module= (and sample=) so a scan/vmap stack is seen"
            )
        if n is not None and i >= n:
            raise ValueError(f"{fn}: layer index {i} in {info.path!r} >= n_layers={n}")
        s = std / math.sqrt(2 * (i + 1))
        return torch_trunc_normal(std=s)  # elementwise: the stored shape is fine

    def _stacked(n_stack: int, base: float):
        def init(key, shape, dtype=None):
            dtype = dtype or jnp.float32
            # the 2-sigma-absolute cut of torch's trunc_normal_ is nothing at these stds
            z = jax.random.normal(key, shape, dtype)
            stds = base / jnp.sqrt(2.0 * jnp.arange(1, n_stack + 1, dtype=dtype))
            return z * stds.reshape((n_stack,) + (1,) * (len(shape) - 1))

        return init

    def output_rule(info: LeafInfo):
        s = _layer(info).fans[0] ** -0.5  # d: the output layer's fan-in
        return mark_fan_dependent(torch_trunc_normal(std=s, a=-3 * s, b=3 * s))

    return {
        scaled: ContextRule(scaled_rule, "depth-scaled std", native=True),
        unscaled: _matrix_rule(torch_trunc_normal(std=std), f"trunc_normal({std})"),
        embeddings: optional(normal(1.0)),
        output: optional(ContextRule(output_rule, "output d^-1/2")),
        norm_scales: optional(ones),
        biases: optional(zeros),
    }


# --------------------------------------------------------------------------- DeepNet


def deepnorm_constants(n_encoder: int = 0, n_decoder: int = 0) -> dict[str, tuple[float, float]]:
    r"""DeepNorm's :math:`(\alpha, \beta)` (Wang et al. 2022, "DeepNet", Table 1): the
    residual is :math:`\mathrm{LN}(\alpha x + G(x))` and the branch weights are scaled by
    :math:`\beta` at init.

    * encoder-only (N layers): :math:`\alpha = (2N)^{1/4}`, :math:`\beta = (8N)^{-1/4}`;
    * decoder-only (M layers): :math:`\alpha = (2M)^{1/4}`, :math:`\beta = (8M)^{-1/4}`;
    * encoder-decoder: encoder :math:`\alpha = 0.81 (N^4 M)^{1/16}`,
      :math:`\beta = 0.87 (N^4 M)^{-1/16}`; decoder :math:`\alpha = (3M)^{1/4}`,
      :math:`\beta = (12M)^{-1/4}`.

    Returns ``{"encoder": (α, β), "decoder": (α, β)}`` for the parts present.

    Example:
      >>> c = jaxinit.deepnorm_constants(n_encoder=12)
      >>> sorted(c)
      ['encoder']
      >>> alpha, beta = c["encoder"]
      >>> round(alpha, 3), round(beta, 3)  # (2N)^(1/4), (8N)^(-1/4)
      (2.213, 0.319)
    """
    fn = "deepnorm_constants"
    for arg, v in (("n_encoder", n_encoder), ("n_decoder", n_decoder)):
        _check_int(fn, arg, v, minimum=0)
    if n_encoder == 0 and n_decoder == 0:
        raise ValueError(f"{fn}: give n_encoder or n_decoder (layer counts), got both 0")
    N, M = n_encoder, n_decoder
    if N and M:
        return {
            "encoder": (0.81 * (N**4 * M) ** (1 / 16), 0.87 * (N**4 * M) ** (-1 / 16)),
            "decoder": ((3 * M) ** 0.25, (12 * M) ** -0.25),
        }
    if N:
        return {"encoder": ((2 * N) ** 0.25, (8 * N) ** -0.25)}
    return {"decoder": ((2 * M) ** 0.25, (8 * M) ** -0.25)}


def deepnet(
    n_encoder: int = 0,
    n_decoder: int = 0,
    *,
    scaled: Pattern = any_of("{fc1,fc2,v_proj,out_proj,value,out,mlp/*}/{kernel,weight}"),
    unscaled: Pattern = any_of("{q_proj,k_proj,query,key}/{kernel,weight}"),
    encoder: Pattern = "encoder/**",
    biases: Pattern = "bias",
) -> dict[Pattern, object]:
    r"""DeepNet's init (Wang et al. 2022, Fig. 2 pseudo-code): Xavier **normal** with gain
    :math:`\beta` for the feed-forward, value and output projections, gain 1 for the query
    and key projections; biases 0. :math:`\beta` from :func:`deepnorm_constants` — in an
    encoder-decoder the encoder's parameters (those the ``encoder`` pattern matches) get
    the encoder's β, the rest the decoder's. The model itself must compute
    ``LN(α·x + G(x))``. Fans are the layers' own (a ``DenseGeneral`` value projection
    ``(d, heads, head_dim)`` has fan-in d).

    Example:
      >>> k = jnp.zeros((256, 256))
      >>> params = {"attn": {"query": {"kernel": k}, "value": {"kernel": k}}}
      >>> params = jaxinit.reinit(params, jaxinit.deepnet(n_encoder=12), jax.random.key(0))
      >>> beta = float(params["attn"]["value"]["kernel"].std() / params["attn"]["query"]["kernel"].std())
      >>> round(beta, 2)  # β = (8 N)^(-1/4), from deepnorm_constants
      0.32
    """
    consts = deepnorm_constants(n_encoder, n_decoder)
    beta = (consts["decoder"] if "decoder" in consts else consts["encoder"])[1]
    dec = variance_scaling(beta**2, "fan_avg", "normal")
    enc = dec
    if "encoder" in consts and "decoder" in consts:
        enc = variance_scaling(consts["encoder"][1] ** 2, "fan_avg", "normal")

    def scaled_rule(info: LeafInfo):
        if len(_layer(info).call_shape) < 2:
            return None
        return enc if matches(encoder, info.path) else dec

    return {
        scaled: ContextRule(scaled_rule, "deepnet β"),
        unscaled: optional(_matrix_rule(variance_scaling(1.0, "fan_avg", "normal"), "xavier")),
        biases: optional(zeros),
    }


# --------------------------------------------------------------------------- recurrent


def recurrent(
    *,
    forget_bias: float = 1.0,
    linen_recurrent: Pattern = "h{i,f,g,o,r,z,n}/kernel",
    linen_forget: Pattern = "hf/bias",
    linen_other_biases: Pattern = "h{i,g,o}/bias",
    nnx_fused: Pattern = "dense_h/{kernel,bias}",
    equinox: Pattern = "{weight_hh,bias}",
) -> dict[Pattern, object]:
    r"""Recurrent nets: orthogonal recurrent kernels (Saxe et al. 2013; one orthogonal
    :math:`H\times H` matrix **per gate**) and the LSTM forget-gate bias set to 1
    (Jozefowicz, Zaremba & Sutskever 2015), for

    * flax.linen ``LSTMCell`` / ``OptimizedLSTMCell`` (``h{i,f,g,o}/kernel``, ``hf/bias``;
      the other gates' biases ``h{i,g,o}/bias`` 0) and ``GRUCell`` (``h{r,z,n}/kernel``);
    * flax.nnx ``LSTMCell`` (same names), ``OptimizedLSTMCell`` / ``GRUCell`` /
      ``SimpleCell`` (fused ``dense_h``: kernel ``(H, kH)`` in k orthogonal blocks; for an
      LSTM (k = 4, gate order i, f, g, o) the bias's f block is ``forget_bias``);
    * Equinox ``LSTMCell`` / ``GRUCell`` (``weight_hh (kH, H)`` in k orthogonal blocks;
      ``LSTMCell.bias`` gets its f block set to ``forget_bias``).

    In every LSTM the other gates' biases are 0 (Keras's ``unit_forget_bias``).

    The orthogonal and fused-bias rules are ``native``: they see the stored array, whose
    gate blocks they draw one by one.

    Input kernels and the other biases keep their values: put these rules first and your
    own after them.

    Example:
      >>> import equinox as eqx
      >>> cell = eqx.nn.LSTMCell(4, 8, key=jax.random.key(0))  # weight_hh (4·8, 8)
      >>> cell = jaxinit.reinit(cell, jaxinit.recurrent(), jax.random.key(1))
      >>> cell.bias.reshape(4, 8)[:, 0]  # gates i, f, g, o: the forget bias 1, the others 0
      Array([0., 1., 0., 0.], dtype=float32)
      >>> w_f = cell.weight_hh[8:16]  # one orthogonal block per gate
      >>> bool(jnp.allclose(w_f @ w_f.T, jnp.eye(8), atol=1e-5))
      True
    """

    def per_gate_orthogonal(info: LeafInfo):
        if len(info.shape) != 2:
            return None
        if info.layout == "torch":
            h = info.shape[1]
            return _blocks([orthogonal(layout="torch")] * (info.shape[0] // h), 0)
        h = info.shape[0]
        return _blocks([orthogonal()] * (info.shape[1] // h), 1)

    def lstm_bias(info: LeafInfo, hidden: int | None):
        if hidden is None or info.shape[0] != 4 * hidden:
            return None  # a GRU / simple cell: biases stay as they are

        def init(key, shape, dtype=None):
            del key
            dtype = dtype or jnp.float32
            return jnp.zeros(shape, dtype).at[hidden : 2 * hidden].set(forget_bias)

        return init

    def nnx_rule(info: LeafInfo):
        if info.name == "kernel":
            return per_gate_orthogonal(info)
        kernel = info.siblings.get("kernel")
        return lstm_bias(info, None if kernel is None else kernel[0])

    def eqx_rule(info: LeafInfo):
        if not _is(info.owner, "LSTMCell", "GRUCell"):
            return None
        if info.name == "weight_hh":
            return per_gate_orthogonal(info)
        hh = info.siblings.get("weight_hh")
        return lstm_bias(info, None if hh is None else hh[1])

    def native(build, name: str) -> ContextRule:
        return ContextRule(build, name, optional=True, native=True)

    return {
        linen_recurrent: native(per_gate_orthogonal, "orthogonal recurrent"),
        linen_forget: optional(constant(forget_bias)),
        linen_other_biases: optional(zeros),
        nnx_fused: native(nnx_rule, "fused recurrent"),
        equinox: native(eqx_rule, "equinox recurrent"),
    }


# --------------------------------------------------------------------------- torch defaults


# linen / nnx LSTMCell and linen GRUCell gate layers; in these flax keeps ONE bias where
# torch has two (b_ih + b_hh): the hidden-side LSTM biases and the GRU's r, z input biases.
_GATES = ("ii", "if", "if_", "ig", "io", "hi", "hf", "hg", "ho", "ir", "iz", "in", "hr", "hz",
          "hn")  # fmt: skip
_SUMMED = {"hi", "hf", "hg", "ho", "ir", "iz"}
_GATE_PATTERN = any_of("{" + ",".join(_GATES) + "}/{kernel,bias}")


def torch_default_layer_rules(
    *,
    rnn_hidden: int | None = None,
    embeddings: Pattern = "embedding",
    attention_in: Pattern = any_of(
        "{query,key,value,query_proj,key_proj,value_proj}/{kernel,weight}"
    ),
    attention_out: Pattern = any_of("{out,output_proj}/{kernel,weight}"),
    attention_biases: Pattern = any_of(
        "{query,key,value,out,query_proj,key_proj,value_proj,output_proj}/bias"
    ),
    gates: Pattern = _GATE_PATTERN,
    fused_gates: Pattern = any_of("{dense_i,dense_h}/{kernel,bias}"),
    simple_cell: Pattern = "SimpleCell_*/{i,h}/{kernel,bias}",
    norm_scales: Pattern = "scale",
    others: Pattern = any_of("{kernel,weight,weight_ih,weight_hh,bias,bias_n}"),
) -> dict[Pattern, object]:
    r"""PyTorch's default init of the layers beyond Linear/Conv; :func:`torch_default_rules`
    puts these first and its Linear/Conv rules after them.

    * ``nn.Embedding``: :math:`\mathcal N(0, 1)` (flax's default is :math:`1/\sqrt D`);
    * ``nn.MultiheadAttention``: the fused in-projection ``(3E, E)`` is Xavier uniform,
      :math:`U[\pm\sqrt{6/(E + 3E)}]`, applied to flax's separate query / key / value
      kernels (and Equinox's ``*_proj``); the in-projection and output biases 0; the
      output projection keeps ``nn.Linear``'s default :math:`U[\pm 1/\sqrt E]`;
    * ``nn.LayerNorm`` (and Group, RMS and batch norms): weight 1, bias 0;
    * ``nn.ConvTranspose``: :math:`U[\pm 1/\sqrt{n}]` for weight and bias with torch's
      :math:`n = (c_{out}/\mathrm{groups})\cdot k` (torch stores the weight ``(in,
      out/groups, *k)`` and takes its dim 1 as the fan-in), where the Linear/Conv rule
      would use :math:`c_{in}\cdot k`; ``groups`` is read from an Equinox
      ``ConvTranspose`` (flax's have none). A linen or nnx
      ``ConvTranspose(transpose_kernel=True)`` stores ``(*k, out, in)``; known from the
      layer (linen: ``module=``/``sample=``), it is drawn with the same law;
    * ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``: every weight and bias
      :math:`U[\pm 1/\sqrt H]` (H the hidden size, input weights included). Where flax
      keeps **one** bias for torch's two (``b_ih + b_hh``: linen/nnx LSTM's ``h*`` biases,
      linen GRU's ``ir``/``iz``, nnx's fused LSTM ``dense_h`` bias, the r and z blocks of
      nnx GRU's ``dense_i`` bias, nnx and linen SimpleCell's, Equinox ``LSTMCell.bias``
      and the r, z blocks of ``GRUCell.bias``) it is drawn as their sum, a triangular law
      on :math:`[\pm 2/\sqrt H]` (variance :math:`2/(3H)`). The GRU's ``b_hn`` (inside
      :math:`r\odot(W_{hn}h + b_{hn})`, so never summed) is linen's ``hn/bias`` and
      Equinox's ``GRUCell.bias_n``, a single uniform; nnx's ``GRUCell`` has no such
      parameter (its ``dense_h`` has no bias), so it cannot be matched there.

    Args:
      rnn_hidden: the hidden size of nnx's fused cells (``OptimizedLSTMCell``,
        ``GRUCell``, ``SimpleCell``), needed for their ``dense_i`` layers, whose shapes do not
        tell it; the ``dense_h`` layers read it from their kernel.
      simple_cell: linen ``SimpleCell``'s layers ``i`` (input, with the one bias) and ``h``
        (recurrent): its default name ``SimpleCell_<n>``; give the cell's own name (e.g.
        ``"rnn_cell/{i,h}/{kernel,bias}"``) if it has one. Checked to be a cell: ``h`` a
        square kernel without bias, ``i`` a kernel and a bias.
      others: the Equinox parameters (``weight``/``bias`` of Embedding, norms, RNN cells;
        any other ``weight``/``bias`` gets the Linear/Conv default).

    Fans are the layers' own (a linen attention kernel ``(E, heads, head_dim)`` is one
    ``(E, E)`` call; pass ``module=``/``sample=`` with linen variables, or the rank-3
    kernels are an ambiguity error). Patterns with several names are
    :func:`jaxinit.any_of`: a model has whichever of them its framework uses.

    Not covered: the ``b_hn`` of a GRU, which nnx's ``GRUCell`` does not have.

    Example:
      >>> params = {"embed": {"embedding": jnp.zeros((1000, 64))}, "norm": {"scale": jnp.zeros(64)}}
      >>> params = jaxinit.reinit(params, jaxinit.torch_default_layer_rules(), jax.random.key(0))
      >>> round(float(params["embed"]["embedding"].std()), 1)  # N(0, 1), as nn.Embedding
      1.0
      >>> float(params["norm"]["scale"].min())  # LayerNorm weight 1
      1.0
    """
    fn = "torch_default_layer_rules"
    if rnn_hidden is not None:
        _check_int(fn, "rnn_hidden", rnn_hidden)

    def embed_rule(info: LeafInfo):
        return normal(1.0) if len(info.shape) == 2 else None

    def attn_in_rule(info: LeafInfo):
        e_in, e_out = _layer(info).fans  # one of q, k, v: E -> E (one layer call)
        return _fans_uniform(math.sqrt(6.0 / (e_in + 3 * e_out)))

    def attn_out_rule(info: LeafInfo):
        return _fans_uniform(1 / math.sqrt(_layer(info).fans[0]))

    def call_of_kernel(info: LeafInfo) -> tuple[int, ...] | None:
        layer = _layer(info) if info.name == "kernel" else _layer(info, "kernel")
        return None if layer is None else layer.call_shape

    def gate_rule(info: LeafInfo):
        gate = info.path.split("/")[-2]
        kernel = call_of_kernel(info)  # (in, H) per layer call (also in a scanned stack)
        if kernel is None or len(kernel) != 2:
            return None
        b = 1 / math.sqrt(kernel[-1])  # flax layout: (in, H)
        if info.name == "bias" and gate in _SUMMED:
            return _sum_of_uniforms(b)
        return _uniform(b)

    def fused_rule(info: LeafInfo):
        layer = info.path.split("/")[-2]
        kernel = call_of_kernel(info)
        if kernel is None or len(kernel) != 2:
            return None
        h = kernel[0] if layer == "dense_h" else rnn_hidden
        if h is None:
            raise ValueError(
                f"{fn}: {info.path} is an nnx fused RNN input layer of shape {kernel}; its"
                " hidden size is not in its shape: give rnn_hidden=H"
            )
        k = kernel[-1] // h
        if kernel[-1] % h or k not in (1, 3, 4):
            raise ValueError(
                f"{fn}: {info.path} has {kernel[-1]} outputs, not 1, 3 or 4 gates of hidden"
                f" size {h}"
            )
        b = 1 / math.sqrt(h)
        if info.name == "kernel":
            return _uniform(b)
        if layer == "dense_h" or k == 1:  # LSTM's hidden bias, SimpleCell's only bias
            return _sum_of_uniforms(b)
        return _blocks([_sum_of_uniforms(b), _sum_of_uniforms(b), _uniform(b)], 0)  # GRU r,z,n

    def simple_cell_rule(info: LeafInfo):
        kernel = call_of_kernel(info)
        layer = info.path.split("/")[-2]
        if kernel is None or len(kernel) != 2:
            return None
        h = kernel[-1]
        is_cell = (layer == "h" and kernel[0] == h and "bias" not in info.siblings) or (
            layer == "i" and set(info.siblings) | {info.name} == {"kernel", "bias"}
        )
        if not is_cell:
            raise ValueError(
                f"{fn}: {info.path} matched simple_cell={simple_cell!r} but is not a linen"
                " SimpleCell layer (h: a square kernel without bias, i: kernel and bias);"
                f" its kernel call is {kernel}"
            )
        b = 1 / math.sqrt(h)
        return _sum_of_uniforms(b) if info.name == "bias" else _uniform(b)

    linear_kernel = _torch_kernel_rule().build
    linear_bias = _torch_bias_rule().build

    def others_rule(info: LeafInfo):
        owner = info.owner
        if _is(owner, "Embedding") and info.name == "weight":
            return normal(1.0)
        if _is(owner, "LayerNorm", "GroupNorm", "RMSNorm", "BatchNorm") and len(info.shape) == 1:
            return ones if info.name == "weight" else zeros
        if _is(owner, "LSTMCell", "GRUCell"):
            h = (info.shape if info.name == "weight_hh" else info.siblings["weight_hh"])[1]
            b = 1 / math.sqrt(h)
            if info.name == "bias" and _is(owner, "LSTMCell"):
                return _sum_of_uniforms(b)
            if info.name == "bias":  # GRU: r, z blocks are b_i + b_h, the n block b_in
                return _blocks([_sum_of_uniforms(b), _sum_of_uniforms(b), _uniform(b)], 0)
            return _uniform(b)
        if info.name == "bias" and "scale" in info.siblings:  # a flax norm's bias
            return zeros
        parent = info.path.rpartition("/")[0].rpartition("/")[2]
        kernel = _kernel_layer(info)
        named = kernel is not None and "ConvTranspose" in kernel.layer
        if _is(owner, "ConvTranspose") or "ConvTranspose" in parent or named:
            # torch's ConvTranspose weight is (in, out/groups, *k): its "fan_in" is out·k,
            # in the layer call's flax axes (*k, in, out): call[-1]·prod(k)
            w = None if kernel is None else kernel.call_shape
            if w is None or len(w) < 3:
                return None
            groups = getattr(info.module, "groups", 1)  # Equinox's; flax's have none
            return _fans_uniform(1 / math.sqrt(w[-1] // groups * math.prod(w[:-2])))
        if info.name == "bias":
            return linear_bias(info)
        if info.name in ("weight", "kernel"):
            return linear_kernel(info)
        return None

    return {
        attention_in: optional(ContextRule(attn_in_rule, "torch MHA in_proj xavier")),
        attention_out: optional(ContextRule(attn_out_rule, "torch MHA out_proj")),
        attention_biases: optional(zeros),
        gates: optional(ContextRule(gate_rule, "torch RNN U[±1/√H]")),
        fused_gates: optional(ContextRule(fused_rule, "torch RNN U[±1/√H] (nnx fused)")),
        simple_cell: optional(ContextRule(simple_cell_rule, "torch RNN U[±1/√H] (SimpleCell)")),
        embeddings: optional(ContextRule(embed_rule, "torch Embedding N(0,1)")),
        norm_scales: optional(ones),
        others: optional(ContextRule(others_rule, "torch default (Equinox layers, biases)")),
    }
