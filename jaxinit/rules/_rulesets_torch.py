r"""PyTorch's default init as rule sets, both halves in one place: the Linear/Conv default
and torch's default by layer (:func:`torch_default_rules`), and the layers beyond
Linear/Conv — Embedding, MultiheadAttention, norms, ConvTranspose, RNN cells
(:func:`torch_default_layer_rules`).
"""

from __future__ import annotations

import math

from jaxinit._types import Pattern
from jaxinit._values import initializer
from jaxinit.initializers import normal, ones, zeros
from jaxinit.rules._context import ContextRule, LeafInfo, optional
from jaxinit.rules._paths import any_of
from jaxinit.rules._rulesets_models import (
    _blocks,
    _check_int,
    _fans_uniform,
    _is,
    _kernel_layer,
    _layer,
    _sum_of_uniforms,
    _torch_bias_rule,
    _torch_kernel_rule,
    _uniform,
)

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

    Args:
      kernel: the weights that get torch's default by layer (Linear/Conv, and for Equinox
        layers their own: Embedding N(0, 1), norms 1, RNN cells U[±1/√H]); weights it does
        not match (and the layer rules do not take) keep their values.
      bias: the same for biases.
      rnn_hidden: passed on to :func:`torch_default_layer_rules`.

    The layer rules come first, so a pattern here never takes an embedding, attention or
    RNN-gate parameter of a flax model; your own rules go before the rule set (first match
    wins; a rule placed after it whose every parameter it takes is an error, or a
    :class:`jaxinit.ShadowedRuleWarning` for an optional one).

    >>> import equinox as eqx
    >>> eqx_model = eqx.nn.Linear(32, 64, key=jax.random.key(0))
    >>> model = jaxinit.reinit(eqx_model, jaxinit.torch_default_rules(), jax.random.key(1))
    >>> bool(jnp.abs(model.weight).max() <= 1 / 32**0.5)  # U[±1/√in_features], as torch
    True
    """

    # The layer rules' last rule is torch's default by layer (Equinox embeddings, norms and
    # cells, ConvTranspose, else Linear/Conv); here it serves the kernel and bias patterns,
    # and the catch-all keeps only the RNN names they do not cover, so both arguments take
    # effect (a catch-all before them would take every kernel and bias).
    layer_rules = torch_default_layer_rules(rnn_hidden=rnn_hidden, others=_RNN_ONLY)
    by_layer = layer_rules.pop(_RNN_ONLY)
    return {
        **layer_rules,
        kernel: optional(ContextRule(by_layer.build, "torch_default_kernel")),
        bias: ContextRule(by_layer.build, "torch_default_bias", optional=True),
        _RNN_ONLY: by_layer,
    }


# Equinox RNN cells' parameters that neither "kernel"/"weight" nor "bias" names.
_RNN_ONLY = any_of("{weight_ih,weight_hh,bias_n}")


# linen / nnx LSTMCell and linen GRUCell gate layers; in these flax keeps ONE bias where
# torch has two (b_ih + b_hh): the hidden-side LSTM biases and the GRU's r, z input biases.
_GATES = ("ii", "if", "if_", "ig", "io", "hi", "hf", "hg", "ho", "ir", "iz", "in", "hr", "hz",
          "hn")  # fmt: skip


_SUMMED = {"hi", "hf", "hg", "ho", "ir", "iz"}


_GATE_PATTERN = any_of("{" + ",".join(_GATES) + "}/{kernel,bias}")


@initializer
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
        # torch's fused in_proj (3E, E): Xavier with fans E and 3E
        return _fans_uniform(math.sqrt(6.0 / (e_in + 3 * e_out)), (e_in, 3 * e_out))

    def attn_out_rule(info: LeafInfo):
        fans = _layer(info).fans
        return _fans_uniform(1 / math.sqrt(fans[0]), fans)

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
            n = w[-1] // groups * math.prod(w[:-2])  # torch's fan_in of (in, out/groups, *k)
            return _fans_uniform(1 / math.sqrt(n), (n, w[-2] * math.prod(w[:-2])))
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
