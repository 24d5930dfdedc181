"""Ready-made rule sets for :func:`jaxinit.reinit`: torch defaults, Fixup, ReZero/SkipInit,
GPT-2, T-Fixup and muP-style width scaling.

Each function returns a plain ``{pattern: initializer}`` dict, so it can be printed, edited
or merged with other rules (first match wins: put your own rules first). Models name their
parameters differently, so every pattern is an argument; the defaults follow a simple
convention (residual blocks ``block_<i>``, the last layer of a branch ``out``, the readout
``head``; transformer blocks with ``attn/{query,key,value,out}`` and ``mlp/{fc,proj}``).
Rules for parameters a model may lack (biases, scalar gates) are :func:`optional`.
"""

from __future__ import annotations

import math
from typing import Literal

from jaxinit import initializers as _inits
from jaxinit._checks import as_int, check_choice, check_finite, check_positive
from jaxinit._types import Initializer
from jaxinit._values import initializer
from jaxinit.initializers import (
    draw_in_float32,
    ones,
    torch_default_bias,
    torch_default_kernel,
    zeros,
)
from jaxinit.rules._rules import ContextRule, LeafInfo, Pattern, any_of, optional


# These rule sets are jaxinit's own schemes: half-precision parameters are drawn in float32
# and rounded once (jaxinit.initializers._precision), as torch draws the GPT-2/Fixup references.
def normal(stddev: float) -> Initializer:
    return draw_in_float32(_inits.normal(stddev))


def variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
    return draw_in_float32(_inits.variance_scaling(scale, mode, distribution))


def _check_int(fn: str, arg: str, value: object, minimum: int = 1) -> int:
    try:  # numpy ints and 0-d int arrays count as ints
        n = as_int(fn, arg, value)
    except TypeError:
        n = None
    if n is None or n < minimum:
        raise ValueError(f"{fn}: {arg} must be an int >= {minimum}, got {value!r}")
    return n


def _is_embedding(info: LeafInfo) -> bool:
    if info.owner is not None and "Embed" in info.owner.__name__:
        return True
    return info.layer is not None and "Embed" in info.layer.layer


# kernel (linen, nnx) or weight (Equinox): one of the two names, whichever the model uses
# (any_of, as a {kernel,weight} glob would require both to exist).
_KERNEL_OR_WEIGHT = any_of("{kernel,weight}")


@initializer
def torch_default_rules(
    kernel: Pattern = _KERNEL_OR_WEIGHT, bias: Pattern = "bias", *, rnn_hidden: int | None = None
) -> dict[Pattern, object]:
    r"""PyTorch's default init of ``nn.Linear`` / ``nn.ConvNd`` — and of ``nn.Embedding``,
    ``nn.MultiheadAttention``, ``nn.LayerNorm`` and ``nn.RNN``/``LSTM``/``GRU``, whose rules
    (:func:`torch_default_layer_rules`, ``rnn_hidden`` passed on) come first — for
    flax.linen, nnx and Equinox models.

    kernel (rank >= 2): :math:`U[\pm 1/\sqrt{n_{in}}]` (``kaiming_uniform_(a=√5)``);
    bias: :math:`U[\pm 1/\sqrt{n_{in}}]` with the fan_in of the **sibling kernel** (found
    by :func:`reinit` from the same layer). The fans are the layer's (a ``DenseGeneral``
    kernel ``(in, heads, head_dim)`` has fan_in ``in``, one layer of a scanned stack its
    own, an Equinox ``(out, in)`` weight fan_in ``in``). Other 1-D "weights" and biases with
    no kernel beside them are left alone. The default ``kernel`` pattern matches parameters
    named ``kernel`` or ``weight``.

    >>> import equinox as eqx
    >>> eqx_model = eqx.nn.Linear(32, 64, key=jax.random.key(0))
    >>> model = jaxinit.reinit(eqx_model, jaxinit.torch_default_rules(), jax.random.key(1))
    >>> bool(jnp.abs(model.weight).max() <= 1 / 32**0.5)  # U[±1/√in_features], as torch
    True
    """

    def kernel_init(info: LeafInfo):
        if len(info.layer.call_shape) < 2 or _is_embedding(info):
            return None
        return torch_default_kernel()  # flax axes of the layer's own call

    def bias_init(info: LeafInfo):
        for name in ("kernel", "weight"):
            layer = info.sibling_layers.get(name)
            if layer is not None and len(layer.call_shape) >= 2 and not _is_embedding(info):
                return torch_default_bias(fan_in=int(layer.fans[0]))
        return None

    from jaxinit.rules._rulesets_models import torch_default_layer_rules

    return {
        **torch_default_layer_rules(rnn_hidden=rnn_hidden),
        kernel: optional(ContextRule(kernel_init, "torch_default_kernel")),
        bias: ContextRule(bias_init, "torch_default_bias", optional=True),
    }


@initializer
def fixup(
    num_blocks: int,
    layers_per_branch: int = 2,
    *,
    branch_out: Pattern = "block_*/out/kernel",
    branch_hidden: Pattern = "block_*/**/kernel",
    classifier: Pattern = "head/kernel",
    other_kernels: Pattern = "kernel",
    biases: Pattern = "bias",
    scalar_biases: Pattern = "fixup_bias*",
    scalar_scales: Pattern = "fixup_scale*",
    gain_sq: float = 2.0,
) -> dict[Pattern, object]:
    r"""Fixup (Zhang, Dauphin & Ma 2019, "Fixup Initialization: Residual Learning Without
    Normalization"), for residual networks without normalisation.

    With :math:`L` residual branches of :math:`m` layers each:

    * the classification layer and the last layer of every branch are zero;
    * the other layers inside branches get He init scaled by :math:`L^{-1/(2m-2)}`:
      :math:`W \sim \mathcal N(0,\ \mathrm{gain}^2/n_{in} \cdot L^{-1/(m-1)})`
      (truncated normal, as :func:`he_normal`);
    * layers outside branches (the stem) get plain He init;
    * biases and Fixup's scalar biases are 0, its scalar multipliers 1 (each optional).

    Args:
      num_blocks: :math:`L`, the number of residual branches.
      layers_per_branch: :math:`m \ge 2` weight layers per branch.
      branch_out: pattern of each branch's last layer. Order matters (first match
        wins): ``branch_out`` is tried before ``branch_hidden``, which may therefore also
        match the last layers.
      branch_hidden: pattern of the branches' other layers.
      classifier: pattern of the classifier's kernel.
      other_kernels: pattern of the kernels outside branches (the stem).
      biases: pattern of the biases.
      scalar_biases: pattern of Fixup's scalar biases.
      scalar_scales: pattern of Fixup's scalar multipliers.
      gain_sq: :math:`\mathrm{gain}^2` of the He init (2 for ReLU).

    Example:
      >>> rules = jaxinit.fixup(num_blocks=4)
      >>> params = {"block_0": {"conv": {"kernel": jnp.ones((3, 3, 8, 8))},
      ...                       "out": {"kernel": jnp.ones((3, 3, 8, 8))}},
      ...           "head": {"kernel": jnp.ones((8, 10)), "bias": jnp.ones(10)}}
      >>> params = jaxinit.reinit(params, rules, jax.random.key(0))
      >>> float(jnp.abs(params["block_0"]["out"]["kernel"]).max())  # each branch's last layer: 0
      0.0
      >>> float(jnp.abs(params["head"]["kernel"]).max())  # the classifier: 0
      0.0
    """
    fn = "fixup"
    L = _check_int(fn, "num_blocks", num_blocks)
    m = _check_int(fn, "layers_per_branch", layers_per_branch, minimum=2)
    check_positive(fn, "gain_sq", gain_sq)
    branch_scale = gain_sq * L ** (-1.0 / (m - 1))  # variance factor = (L^(-1/(2m-2)))^2
    return {
        classifier: zeros,
        branch_out: zeros,
        branch_hidden: variance_scaling(branch_scale, "fan_in", "truncated_normal"),
        other_kernels: optional(variance_scaling(gain_sq, "fan_in", "truncated_normal")),
        biases: optional(zeros),
        scalar_biases: optional(zeros),
        scalar_scales: optional(ones),
    }


@initializer
def rezero(gates: Pattern = "alpha", value: float = 0.0) -> dict[Pattern, object]:
    r"""ReZero (Bachlechner et al. 2020) / SkipInit (De & Smith 2020): every residual block
    computes :math:`x + \alpha\,F(x)` with a learnable scalar gate :math:`\alpha`
    initialised to 0 (``value``), so each block starts as the identity and the network as
    a shallow one, without normalisation.

    Args:
      gates: pattern of the gate parameters (default: parameters named ``alpha``).
      value: the initial gate (0 for ReZero; SkipInit also allows a small constant).

    Example:
      >>> params = {"block_0": {"alpha": jnp.ones(()), "dense": {"kernel": jnp.ones((4, 4))}}}
      >>> params = jaxinit.reinit(params, jaxinit.rezero(), jax.random.key(0))
      >>> params["block_0"]["alpha"]  # the gate starts at 0; what no rule matches is kept
      Array(0., dtype=float32)
    """
    from jaxinit.initializers import constant

    check_finite("rezero", "value", value)
    return {gates: zeros if value == 0 else constant(value)}


skipinit = rezero
"""The same rule set as :func:`rezero` (SkipInit, De & Smith 2020, also starts every
residual gate at 0)."""


_GPT2_NAMING: dict[str, tuple[tuple[Pattern, ...], Pattern]] = {  # (residual_outs, weights)
    "jaxinit": (("{attn/out,mlp/proj}/kernel",), "{kernel,embedding}"),
    # nanoGPT (transformer.h.<i>.attn.c_proj, mlp.c_proj, wte, wpe) and HF GPT2Model /
    # FlaxGPT2Model (the same names; HF's Conv1D weights are (in, out), flax's "kernel").
    # Both residual projections must exist (one rule each); weight or kernel, whichever.
    "nanogpt": (
        (any_of("attn/c_proj/{kernel,weight}"), any_of("mlp/c_proj/{kernel,weight}")),
        any_of("{kernel,weight,embedding}"),
    ),
}
_GPT2_NAMING["hf"] = _GPT2_NAMING["nanogpt"]


@initializer
def gpt2(
    n_layer: int,
    *,
    std: float = 0.02,
    naming: Literal["jaxinit", "nanogpt", "hf"] = "jaxinit",
    residual_out: Pattern | None = None,
    weights: Pattern | None = None,
    biases: Pattern = "bias",
) -> dict[Pattern, object]:
    r"""GPT-2 (Radford et al. 2019; nanoGPT / HF ``GPT2Model._init_weights``).

    * every Linear/Embedding weight: :math:`\mathcal N(0, 0.02^2)`;
    * the output projections of the residual branches (attention ``c_proj``, MLP
      ``c_proj``): :math:`\mathcal N(0, (0.02/\sqrt{2\,n_{layer}})^2)` — two residual
      additions per block, so the residual stream's variance stays O(1) in depth;
    * biases 0 (LayerNorm scales are left at 1).

    ``naming`` picks the default patterns: ``"jaxinit"`` (``attn/out``, ``mlp/proj``),
    ``"nanogpt"`` or ``"hf"`` (``attn/c_proj`` and ``mlp/c_proj``, each of which must
    exist, ``wte``/``wpe`` tables, ``weight`` or ``kernel`` — :func:`jaxinit.any_of`;
    1-D LayerNorm weights are skipped); ``residual_out`` and ``weights`` override them.

    Example:
      >>> k = jnp.zeros((256, 256))
      >>> params = {"wte": {"embedding": jnp.zeros((100, 256))},
      ...           "h_0": {"attn": {"qkv": {"kernel": k}, "out": {"kernel": k}},
      ...                   "mlp": {"fc": {"kernel": k}, "proj": {"kernel": k}}}}
      >>> params = jaxinit.reinit(params, jaxinit.gpt2(n_layer=12), jax.random.key(0))
      >>> round(float(params["h_0"]["mlp"]["fc"]["kernel"].std()), 3)  # std
      0.02
      >>> round(float(params["h_0"]["mlp"]["proj"]["kernel"].std()), 4)  # std / √(2 n_layer)
      0.0041
    """
    n = _check_int("gpt2", "n_layer", n_layer)
    check_positive("gpt2", "std", std)
    check_choice("gpt2", "naming", naming, list(_GPT2_NAMING))
    residual_outs = (residual_out,) if residual_out is not None else _GPT2_NAMING[naming][0]
    weights = weights or _GPT2_NAMING[naming][1]
    if naming == "jaxinit":
        return {
            **{r: normal(std / math.sqrt(2 * n)) for r in residual_outs},
            weights: normal(std),
            biases: optional(zeros),
        }

    def matrix(s: float, name: str) -> ContextRule:  # 1-D "weight"s are LayerNorm scales
        return ContextRule(lambda info: normal(s) if len(info.shape) >= 2 else None, name)

    return {
        **{r: matrix(std / math.sqrt(2 * n), "gpt2 c_proj") for r in residual_outs},
        weights: matrix(std, f"normal({std})"),
        biases: optional(zeros),
    }


@initializer
def t_fixup(
    n_layer: int,
    *,
    role: Literal["encoder", "decoder"] = "encoder",
    scaled: Pattern = "{attn/value,attn/out,mlp/*}/kernel",
    embeddings: Pattern = "embedding",
    other_kernels: Pattern = "kernel",
    biases: Pattern = "bias",
) -> dict[Pattern, object]:
    r"""T-Fixup (Huang, Perez, Ba & Volkovs 2020, "Improving Transformer Optimization
    Through Better Initialization"), for transformers trained without LayerNorm or warmup.

    Implemented formula, with :math:`N` layers and embedding width :math:`d`:

    * all weights Xavier-uniform, :math:`U[\pm\sqrt{6/(n_{in}+n_{out})}]`;
    * input embeddings :math:`\mathcal N(0, d^{-1})` (std :math:`d^{-1/2}`, as the
      authors' code);
    * the attention value and output projections, the MLP weights and the input embeddings
      are multiplied by :math:`s = 0.67\,N^{-1/4}` in an encoder, :math:`s = (9N)^{-1/4}`
      in a decoder (``role``);
    * biases 0.

    Args:
      n_layer: :math:`N`.
      role: ``"encoder"`` or ``"decoder"``.
      scaled: pattern of the scaled weights (value and output projections, MLP).
      embeddings: pattern of the input embeddings.
      other_kernels: pattern of the other kernels.
      biases: pattern of the biases.

    Example:
      >>> k = jnp.zeros((256, 256))
      >>> params = {"embedding": {"embedding": jnp.zeros((100, 256))},
      ...           "layer_0": {"attn": {"query": {"kernel": k}, "value": {"kernel": k},
      ...                                "out": {"kernel": k}},
      ...                       "mlp": {"fc": {"kernel": k}}}}
      >>> params = jaxinit.reinit(params, jaxinit.t_fixup(n_layer=6), jax.random.key(0))
      >>> w = params["layer_0"]["attn"]
      >>> s = float(w["value"]["kernel"].std() / w["query"]["kernel"].std())  # scaled / unscaled
      >>> round(s, 2)  # 0.67 · 6^(-1/4)
      0.43
    """
    fn = "t_fixup"
    n = _check_int(fn, "n_layer", n_layer)
    check_choice(fn, "role", role, ["encoder", "decoder"])
    s = 0.67 * n**-0.25 if role == "encoder" else (9 * n) ** -0.25

    def embed_init(info: LeafInfo):
        shape = info.layer.call_shape if info.layer is not None else info.shape
        if len(shape) < 1 or shape[-1] < 1:
            raise ValueError(
                f"{fn}: embedding {info.path} has shape {info.shape}; an embedding table"
                " needs a last axis of width d >= 1 (std d**-0.5)"
            )
        return normal(s / math.sqrt(shape[-1]))  # the layer's width d

    return {
        scaled: variance_scaling(s**2, "fan_avg", "uniform"),
        embeddings: optional(ContextRule(embed_init, "t_fixup embedding")),
        other_kernels: optional(variance_scaling(1.0, "fan_avg", "uniform")),
        biases: optional(zeros),
    }


@initializer
def mup(
    *,
    readout: Pattern = "head/kernel",
    readout_init: Literal["zero", "mup"] = "zero",
    hidden: Pattern = "kernel",
    embeddings: Pattern = "embedding",
    biases: Pattern = "bias",
) -> dict[Pattern, object]:
    r"""muP-style width scaling of the init (Yang & Hu et al. 2021, Tensor Programs V).

    * hidden and input weights: :math:`\mathcal N(0, 1/n_{in})`;
    * readout: zero (``readout_init="zero"``, the default the authors recommend) or
      :math:`\mathcal N(0, 1/n_{in}^2)`, i.e. std :math:`1/\mathrm{width}`
      (``"mup"``), so the logits shrink as :math:`1/\sqrt{\mathrm{width}}` at init;
    * embedding tables :math:`\mathcal N(0, 1)` (width-independent); biases 0.

    This is the initialisation half of muP; the learning-rate half is
    :func:`jaxinit.mup_adam` / :func:`jaxinit.mup_sgd` (with :func:`jaxinit.base_shapes`),
    and the readout multiplier :func:`jaxinit.readout_multiplier`.

    Example:
      >>> params = {"hidden": {"kernel": jnp.ones((64, 64))}, "head": {"kernel": jnp.ones((64, 10))}}
      >>> params = jaxinit.reinit(params, jaxinit.mup(), jax.random.key(0))
      >>> float(jnp.abs(params["head"]["kernel"]).max())  # the readout starts at zero
      0.0
      >>> round(float(params["hidden"]["kernel"].var() * 64), 1)  # hidden: variance 1/fan_in
      1.0
    """
    check_choice("mup", "readout_init", readout_init, ["zero", "mup"])

    def readout_rule(info: LeafInfo):
        return normal(1.0 / info.fan_in)  # the layer's fan_in (not the stored shape's)

    readout_value = zeros if readout_init == "zero" else ContextRule(readout_rule, "mup readout")
    return {
        readout: readout_value,
        embeddings: optional(normal(1.0)),
        hidden: variance_scaling(1.0, "fan_in", "normal"),
        biases: optional(zeros),
    }
