r"""Rule sets of torchvision's image models, for :func:`jaxinit.reinit`: each equal to the
init loop at the end of the model's ``__init__`` in ``torchvision/models/<family>.py``.

Every set covers every parameter of its family: convolution and linear kernels (by the
rank of the shape their layer hands its initializer: 4 for a 2-D conv, 2 for a Dense /
Linear), the normalisation layers' scales and biases (flax ``scale``/``bias``, Equinox's
1-D ``weight``), and the BatchNorm running statistics (``mean`` 0 and ``var`` 1, as torch's
``reset_running_stats``). A parameter of another kind is an error that names it
(``strict=False`` drops that check, for models with parameters of their own, given rules
before these). Conv kernels are drawn with the layer's own fans: pass ``module=`` and
``sample=`` with linen variables. flax.linen, flax.nnx and Equinox ports alike (an Equinox
``BatchNorm``'s ``StateIndex`` buffers are left alone: its running statistics live in the
separate ``eqx.nn.State``).

torch's ``kaiming_normal_`` is a **plain** normal; ``jaxinit.kaiming_normal`` (jax's
``he_normal``) is truncated and uses fan_in. These sets use
:func:`jaxinit.torch_kaiming_normal` (``jaxinit.get("kaiming_normal_", mode="fan_out",
nonlinearity="relu")``).
"""

from __future__ import annotations

from typing import Any

from jaxinit._checks import check_choice, check_positive
from jaxinit._types import Pattern
from jaxinit.initializers import (
    constant,
    normal,
    ones,
    torch_default_kernel,
    torch_kaiming_normal,
    torch_trunc_normal,
    variance_scaling,
    zeros,
)
from jaxinit.rules._rules import ContextRule, LeafInfo, any_of, optional
from jaxinit.rules._rulesets_common import call_rank, excluding, not_covered, unknown_kind
from jaxinit.rules._rulesets_models import _torch_bias_rule

_WEIGHTS = any_of("{kernel,weight}")


def _kernel_rank(info: LeafInfo) -> int | None:
    """Call rank of the kernel/weight beside a bias, or None (a norm's bias)."""
    for name in ("kernel", "weight"):
        layer = info.sibling_layers.get(name)
        if layer is not None:
            return len(layer.call_shape)
        if name in info.siblings:
            return len(info.siblings[name])
    return None


def _cnn(
    fn: str,
    family: str,
    first: dict[Pattern, Any],
    conv: Any,
    linear: Any,
    linear_bias: str,
    conv_bias: str,
    strict: bool,
    norm_weight_rank1: bool = True,
) -> dict[Pattern, object]:
    """The rules every torchvision CNN shares, after the family's own ``first`` rules.

    ``linear_bias`` / ``conv_bias``: ``"zeros"`` or ``"torch"`` (torch's layer default
    U[±1/√fan_in], for a layer the model's init loop leaves alone).
    """
    taken = list(first)
    kinds = "conv kernels, linear kernels, normalisation scales and biases"
    torch_bias = _torch_bias_rule().build

    def weight_rule(info: LeafInfo):
        rank = call_rank(info)
        if rank >= 3:
            return conv
        if rank == 2:
            return linear
        if rank == 1 and info.name == "weight" and norm_weight_rank1:
            return ones  # an Equinox norm's weight
        raise unknown_kind(fn, family, info, kinds)

    def bias_rule(info: LeafInfo):
        rank = _kernel_rank(info)
        if rank is None or rank < 2:
            return zeros  # a normalisation layer's bias (flax: beside scale; Equinox: weight)
        how = conv_bias if rank >= 3 else linear_bias
        if how == "zeros":
            return zeros
        built = torch_bias(info)
        if built is None:
            raise unknown_kind(fn, family, info, kinds)
        return built

    def keep_out(p: Pattern) -> Pattern:
        return excluding(p, *taken) if taken else p

    rules: dict[Pattern, object] = dict(first)
    rules[keep_out(_WEIGHTS)] = ContextRule(weight_rule, f"{fn} conv / linear kernel")
    rules[keep_out("scale")] = optional(ones)
    rules[keep_out("bias")] = ContextRule(bias_rule, f"{fn} bias", optional=True)
    rules["mean"] = optional(zeros)  # torch's running_mean
    rules["var"] = optional(ones)  # torch's running_var
    # Equinox BatchNorm's StateIndex initial buffers: its running statistics live in the
    # separate eqx.nn.State (made by make_with_state), not in these; they stay as they are
    rules["*state_index/**"] = optional(None)
    if strict:
        pattern, rule = not_covered(fn, family, patterns=list(rules))
        rules[pattern] = rule
    return rules


# --------------------------------------------------------------------------- ResNet


def resnet(
    zero_init_residual: bool = False,
    *,
    block: str | None = None,
    last_norm: Pattern | None = None,
    strict: bool = True,
) -> dict[Pattern, object]:
    r"""torchvision's ResNet, ResNeXt and Wide ResNet (``ResNet.__init__`` in
    ``torchvision/models/resnet.py``, pytorch/vision commit f50e776; the same loop in
    every later release):

    * every conv kernel: ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``, a plain
      :math:`\mathcal N(0, 2/(c_{out} k^2))` (grouped ResNeXt convs included: torch's
      fan_out does not divide by the groups);
    * BatchNorm (and GroupNorm) weight 1, bias 0; running mean 0, variance 1;
    * ``fc``: left at ``nn.Linear``'s default, weight and bias
      :math:`U[\pm 1/\sqrt{n_{in}}]`;
    * ``zero_init_residual=True``: the last BatchNorm weight of each residual branch 0
      (``bn3`` of a Bottleneck, ``bn2`` of a BasicBlock).

    Args:
      zero_init_residual: torchvision's argument of the same name.
      block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50 and deeper,
        ResNeXt, Wide ResNet): which norm is a block's last; needed with
        ``zero_init_residual``.
      last_norm: the pattern of the blocks' last norm scales, for a port whose names are
        not torchvision's (default: ``bn2`` / ``bn3`` under ``layer<i>``, e.g.
        ``layer1_0/bn2/scale`` in linen, ``layer1/0/bn2/scale`` in nnx).
      strict: a parameter that is none of a ResNet's (an embedding, a layer of another
        kind) is an error; ``False`` leaves it to rules given before these.

    Conv kernels are drawn with their layer's fans: with linen variables pass
    ``module=`` and ``sample=``.

    >>> rules = jaxinit.resnet(zero_init_residual=True, block="basic")
    """
    fn = "resnet"
    if not isinstance(zero_init_residual, bool):
        raise TypeError(f"{fn}: zero_init_residual must be a bool, got {zero_init_residual!r}")
    first: dict[Pattern, Any] = {}
    if zero_init_residual or block is not None or last_norm is not None:
        if block is None and last_norm is None:
            raise ValueError(
                f"{fn}: zero_init_residual=True zeroes each block's last BatchNorm: give"
                " block='basic' (ResNet-18/34: bn2) or block='bottleneck' (ResNet-50 and"
                " deeper, ResNeXt, Wide ResNet: bn3), or last_norm=<pattern>"
            )
        if block is not None:
            check_choice(fn, "block", block, ("basic", "bottleneck"))
    if zero_init_residual:
        if last_norm is None:
            last = "bn2" if block == "basic" else "bn3"
            last_norm = any_of(f"layer*/**/{last}/{{scale,weight}}")
            if block == "basic":

                def not_basic(info: LeafInfo):
                    raise ValueError(
                        f"{fn}: block='basic', but {info.path} is a third BatchNorm of a"
                        " block: a Bottleneck (its last norm is bn3); give block='bottleneck'"
                    )

                first[any_of("layer*/**/bn3/{scale,weight}")] = ContextRule(
                    not_basic, f"{fn} block check", optional=True
                )
        first[last_norm] = zeros
    return _cnn(
        fn,
        "a torchvision ResNet",
        first,
        conv=torch_kaiming_normal(mode="fan_out", nonlinearity="relu"),
        linear=torch_default_kernel(),
        linear_bias="torch",
        conv_bias="torch",
        strict=strict,
    )


# --------------------------------------------------------------------------- ConvNeXt


def convnext(
    layer_scale: float = 1e-6,
    *,
    layer_scales: Pattern = any_of("{layer_scale,gamma}"),
    strict: bool = True,
) -> dict[Pattern, object]:
    r"""torchvision's ConvNeXt (``ConvNeXt.__init__`` and ``CNBlock`` in
    ``torchvision/models/convnext.py``, pytorch/vision commit 086fe1f):

    * every Conv2d and Linear weight (stem, depthwise 7×7, the block MLP, downsampling
      convs, classifier): ``trunc_normal_(std=0.02)``, torch's absolute cut at ±2 (nothing
      is cut at this std); their biases 0;
    * LayerNorm (and ``LayerNorm2d``): weight 1, bias 0 (torch's default, not re-drawn);
    * each block's ``layer_scale`` (``torch.ones(dim, 1, 1) * layer_scale``): the constant
      ``layer_scale`` (1e-6).

    Args:
      layer_scale: the model's ``layer_scale``.
      layer_scales: the layer-scale parameters' pattern (torchvision's ``layer_scale``,
        the original repository's ``gamma``).
      strict: a parameter of another kind is an error.

    >>> rules = jaxinit.convnext()
    """
    fn = "convnext"
    check_positive(fn, "layer_scale", layer_scale)
    return _cnn(
        fn,
        "a torchvision ConvNeXt",
        {layer_scales: optional(constant(layer_scale))},
        conv=torch_trunc_normal(std=0.02),
        linear=torch_trunc_normal(std=0.02),
        linear_bias="zeros",
        conv_bias="zeros",
        strict=strict,
    )


# --------------------------------------------------------------------------- MobileNet, EfficientNet


def mobilenet(*, strict: bool = True) -> dict[Pattern, object]:
    r"""torchvision's MobileNetV2 and MobileNetV3 (the init loop of ``MobileNetV2.__init__``
    in ``torchvision/models/mobilenetv2.py``, pytorch/vision commit 9173b13, and of
    ``MobileNetV3.__init__`` in ``mobilenetv3.py``, commit 2f7f558, which is the same):

    * every conv kernel (depthwise included): ``kaiming_normal_(mode="fan_out")``, whose
      default nonlinearity (leaky_relu, a=0) has ReLU's gain: plain
      :math:`\mathcal N(0, 2/(c_{out} k^2))`; conv biases 0;
    * BatchNorm (and GroupNorm) weight 1, bias 0; running mean 0, variance 1;
    * every Linear weight :math:`\mathcal N(0, 0.01^2)`, bias 0.

    >>> rules = jaxinit.mobilenet()
    """
    return _cnn(
        "mobilenet",
        "a torchvision MobileNet",
        {},
        conv=torch_kaiming_normal(mode="fan_out"),
        linear=normal(0.01),
        linear_bias="zeros",
        conv_bias="zeros",
        strict=strict,
    )


def efficientnet(*, strict: bool = True) -> dict[Pattern, object]:
    r"""torchvision's EfficientNet (the init loop of ``EfficientNet.__init__`` in
    ``torchvision/models/efficientnet.py``, pytorch/vision commit 5393845):

    * every conv kernel (squeeze-excitation 1×1 convs included):
      ``kaiming_normal_(mode="fan_out")``, plain :math:`\mathcal N(0, 2/(c_{out} k^2))`;
      conv biases 0;
    * BatchNorm (and GroupNorm) weight 1, bias 0; running mean 0, variance 1;
    * every Linear weight :math:`U[\pm 1/\sqrt{n_{out}}]` (``1 / sqrt(out_features)``:
      the **output** size), bias 0.

    >>> rules = jaxinit.efficientnet()
    """
    return _cnn(
        "efficientnet",
        "a torchvision EfficientNet",
        {},
        conv=torch_kaiming_normal(mode="fan_out"),
        linear=variance_scaling(1.0 / 3.0, "fan_out", "uniform"),
        linear_bias="zeros",
        conv_bias="zeros",
        strict=strict,
    )
