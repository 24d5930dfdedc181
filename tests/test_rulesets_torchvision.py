"""torchvision's image models, ported to Flax with torchvision's parameter names, re-drawn
by their rule set in one line and compared, parameter by parameter over 8 seeds, with the
law of the original's ``__init__`` (written here from ``torchvision/models/<family>.py``):
std ratio and KS for random laws, exact values for constants (tests/family_laws.py)."""

import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import jaxinit
from tests.family_laws import SEEDS, Const, Normal, Uniform, check, check_random

# --------------------------------------------------------------------------- ResNet
# torchvision/models/resnet.py (ResNet.__init__):
#   Conv2d: kaiming_normal_(w, mode="fan_out", nonlinearity="relu") -> N(0, 2 / (c_out k²))
#   BatchNorm2d / GroupNorm: weight 1, bias 0 (and BatchNorm's running stats 0 / 1)
#   fc = nn.Linear: torch's default, weight and bias U[±1/sqrt(in_features)]
#   zero_init_residual: Bottleneck.bn3.weight = 0, BasicBlock.bn2.weight = 0


def resnet_law(zero_init_residual, last):
    def law(path, shape):
        name = path.rsplit("/", 1)[-1]
        parent = path.rsplit("/", 2)[-2]
        if name == "kernel" and len(shape) == 4:  # (kh, kw, c_in / groups, c_out)
            return Normal(math.sqrt(2 / (shape[-1] * shape[0] * shape[1])))
        if parent == "fc":
            return Uniform(1 / math.sqrt(shape[0] if name == "kernel" else FC_IN))
        if name == "scale":
            in_block = re.search(r"layer\d+[_/]\d+/", path) is not None
            return Const(0.0 if zero_init_residual and in_block and parent == last else 1.0)
        if name in ("bias", "mean"):
            return Const(0.0)
        if name == "var":
            return Const(1.0)
        return None

    return law


FC_IN = 16
C = 8  # channels: small, so each test takes seconds


class BasicBlock(nn.Module):
    planes: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        bn = lambda name: nn.BatchNorm(use_running_average=True, name=name)
        y = nn.Conv(self.planes, (3, 3), self.stride, use_bias=False, name="conv1")(x)
        y = nn.relu(bn("bn1")(y))
        y = bn("bn2")(nn.Conv(self.planes, (3, 3), use_bias=False, name="conv2")(y))
        if self.stride != 1 or x.shape[-1] != self.planes:
            x = nn.Conv(self.planes, (1, 1), self.stride, use_bias=False, name="downsample_0")(x)
            x = bn("downsample_1")(x)
        return nn.relu(x + y)


class Bottleneck(nn.Module):
    planes: int
    stride: int = 1
    groups: int = 1
    width: int = 4

    @nn.compact
    def __call__(self, x):
        bn = lambda name: nn.BatchNorm(use_running_average=True, name=name)
        out = self.planes * 2  # expansion (torchvision's is 4; kept small)
        y = nn.relu(bn("bn1")(nn.Conv(self.width, (1, 1), use_bias=False, name="conv1")(x)))
        conv2 = nn.Conv(self.width, (3, 3), self.stride, use_bias=False,
                        feature_group_count=self.groups, name="conv2")  # fmt: skip
        y = nn.relu(bn("bn2")(conv2(y)))
        y = bn("bn3")(nn.Conv(out, (1, 1), use_bias=False, name="conv3")(y))
        if self.stride != 1 or x.shape[-1] != out:
            x = nn.Conv(out, (1, 1), self.stride, use_bias=False, name="downsample_0")(x)
            x = bn("downsample_1")(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    bottleneck: bool = False

    def setup(self):
        self.conv1 = nn.Conv(C, (3, 3), 2, use_bias=False)
        self.bn1 = nn.BatchNorm(use_running_average=True)
        if self.bottleneck:  # ResNeXt-style: grouped 3x3 convs
            self.layer1 = [Bottleneck(4, groups=2), Bottleneck(4, groups=2)]
            self.layer2 = [Bottleneck(8, stride=2, groups=2)]
        else:
            self.layer1 = [BasicBlock(C), BasicBlock(C)]
            self.layer2 = [BasicBlock(FC_IN, stride=2)]
        self.fc = nn.Dense(10)

    def __call__(self, x):
        x = nn.relu(self.bn1(self.conv1(x)))
        for block in (*self.layer1, *self.layer2):
            x = block(x)
        return self.fc(jnp.mean(x, axis=(1, 2)))


SAMPLE = jnp.ones((1, 16, 16, 3))


def _variables(model):
    return jax.eval_shape(model.init, jax.random.key(0), SAMPLE)


@pytest.mark.parametrize(
    "bottleneck, zero",
    [(False, False), (False, True), (True, True)],
    ids=["basic", "basic-zero", "bottleneck-zero"],
)
def test_resnet_matches_torchvision(bottleneck, zero):
    model = ResNet(bottleneck)
    v = jax.tree.map(lambda s: jnp.full(s.shape, 7.0, s.dtype), _variables(model))
    rules = jaxinit.resnet(zero, block="bottleneck" if bottleneck else "basic")
    n = check(
        lambda k: jaxinit.reinit(v, rules, k, module=model, sample=SAMPLE),
        resnet_law(zero, "bn3" if bottleneck else "bn2"),
    )
    assert n == (57 if bottleneck else 42)  # every parameter and running statistic


def test_resnet_nnx_bottleneck():
    """An nnx port (layers in lists: paths ``layer1/0/bn3/scale``), grouped convs."""

    class Block(nnx.Module):
        def __init__(self, c_in, width, out, rngs):
            self.conv1 = nnx.Conv(c_in, width, (1, 1), use_bias=False, rngs=rngs)
            self.bn1 = nnx.BatchNorm(width, rngs=rngs)
            self.conv2 = nnx.Conv(width, width, (3, 3), feature_group_count=2, use_bias=False,
                                  rngs=rngs)  # fmt: skip
            self.bn2 = nnx.BatchNorm(width, rngs=rngs)
            self.conv3 = nnx.Conv(width, out, (1, 1), use_bias=False, rngs=rngs)
            self.bn3 = nnx.BatchNorm(out, rngs=rngs)

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv1 = nnx.Conv(3, C, (3, 3), use_bias=False, rngs=rngs)
            self.bn1 = nnx.BatchNorm(C, rngs=rngs)
            self.layer1 = nnx.List([Block(C, 4, C, rngs), Block(C, 4, C, rngs)])
            self.fc = nnx.Linear(C, FC_IN, rngs=rngs)

    net = Net(nnx.Rngs(0))
    state = nnx.state(net)
    rules = jaxinit.resnet(zero_init_residual=True, block="bottleneck")

    def law(path, shape):
        if path.startswith("fc/"):
            return Uniform(1 / math.sqrt(C))
        return resnet_law(True, "bn3")(path, shape)

    n = check(lambda k: jaxinit.reinit(state, rules, k, module=net), law)
    assert n == 5 + 2 * 15 + 2


def test_resnet_bad_input():
    model = ResNet(bottleneck=True)
    v = _variables(model)
    kw = dict(module=model, sample=SAMPLE)
    with pytest.raises(ValueError, match="give block='basic'"):
        jaxinit.resnet(zero_init_residual=True)
    with pytest.raises(ValueError, match=r"block='basic', but .*layer1_0/bn3/scale"):
        jaxinit.explain(v, jaxinit.resnet(True, block="basic"), **kw)
    basic = _variables(ResNet())
    with pytest.raises(ValueError, match=r"bn3/\(\?:scale\|weight\)'\) matches no parameter"):
        jaxinit.explain(basic, jaxinit.resnet(True, block="bottleneck"), module=ResNet(),
                        sample=SAMPLE)  # fmt: skip
    # a parameter of another kind: named, never kept silently
    extra = {"params": {**v["params"], "pos_embed": jnp.zeros((1, 4, 8))}}
    with pytest.raises(ValueError, match=r"params/pos_embed \(1, 4, 8\) is not a parameter of a"):
        jaxinit.explain(extra, jaxinit.resnet(), **kw)
    # ... unless the user covers it and says so
    ok = jaxinit.reinit(extra, {"pos_embed": "zeros", **jaxinit.resnet(strict=False)},
                        jax.random.key(0), **kw)  # fmt: skip
    assert not ok["params"]["pos_embed"].any()
    # a layer kind a ResNet has not (a 1-D kernel)
    odd = {"params": {**v["params"], "gate": {"kernel": jnp.zeros((5,))}}}
    with pytest.raises(ValueError, match=r"params/gate/kernel \(5,\) .* is not a layer of"):
        jaxinit.explain(odd, jaxinit.resnet(), **kw)


def test_kaiming_normal_names():
    """The doc's advice: torch's kaiming_normal_ is jaxinit.torch_kaiming_normal, a plain
    normal; jaxinit.kaiming_normal is jax's truncated fan-in He normal."""
    assert jaxinit.get("kaiming_normal_", mode="fan_out", nonlinearity="relu") == (
        jaxinit.torch_kaiming_normal(mode="fan_out", nonlinearity="relu")
    )
    assert jaxinit.get("kaiming_normal") == jaxinit.he_normal()
    # the check of these tests tells them apart on a conv kernel (c_in 8, c_out 16)
    shape, law = (3, 3, 8, 16), Normal(math.sqrt(2 / (16 * 9)))
    keys = jax.random.split(jax.random.key(1), SEEDS)
    draw = lambda init: jax.vmap(lambda k: init(k, shape))(keys)
    check_random(draw(jaxinit.torch_kaiming_normal(mode="fan_out", nonlinearity="relu")), law, "ok")
    for wrong in (jaxinit.kaiming_normal(), jaxinit.torch_default_kernel()):
        with pytest.raises(AssertionError):
            check_random(draw(wrong), law, repr(wrong))


# --------------------------------------------------------------------------- ConvNeXt
# torchvision/models/convnext.py: for Conv2d and Linear, trunc_normal_(w, std=0.02) (torch's
#   absolute cut at ±2) and bias 0; LayerNorm / LayerNorm2d keep torch's default 1 / 0;
#   CNBlock.layer_scale = torch.ones(dim, 1, 1) * layer_scale (1e-6).


class CNBlock(nn.Module):
    dim: int

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.dim, (7, 7), feature_group_count=self.dim, name="block_0")(x)
        y = nn.LayerNorm(name="block_2")(y)
        y = nn.Dense(self.dim, name="block_5")(nn.gelu(nn.Dense(4 * self.dim, name="block_3")(y)))
        scale = self.param("layer_scale", nn.initializers.constant(1e-6), (self.dim,))
        return x + scale[None, None, None, :] * y


class ConvNeXt(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(C, (4, 4), 4, name="features_0_0")(x)
        x = nn.LayerNorm(name="features_0_1")(x)
        x = CNBlock(C, name="features_1_0")(x)
        x = nn.LayerNorm(name="features_2_0")(x)
        x = nn.Conv(2 * C, (2, 2), 2, name="features_2_1")(x)
        x = CNBlock(2 * C, name="features_3_0")(x)
        x = nn.LayerNorm(name="classifier_0")(jnp.mean(x, axis=(1, 2)))
        return nn.Dense(10, name="classifier_2")(x)


def test_convnext_matches_torchvision():
    from tests.family_laws import TruncNormal

    def law(path, shape):
        name = path.rsplit("/", 1)[-1]
        if name == "kernel":
            return TruncNormal(0.02, -2.0, 2.0)
        if name == "layer_scale":
            return Const(1e-6)
        return Const(1.0) if name == "scale" else Const(0.0) if name == "bias" else None

    model = ConvNeXt()
    v = jax.tree.map(lambda s: jnp.full(s.shape, 7.0, s.dtype), _variables(model))
    rules = jaxinit.convnext()
    n = check(lambda k: jaxinit.reinit(v, rules, k, module=model, sample=SAMPLE), law)
    assert n == 4 + 2 * 9 + 2 + 2 + 4


# --------------------------------------------------------------------------- MobileNet, EfficientNet
# torchvision/models/mobilenetv2.py, mobilenetv3.py: Conv2d kaiming_normal_(mode="fan_out")
#   (leaky_relu with a=0: gain sqrt(2)), bias 0; BatchNorm / GroupNorm 1 / 0; Linear
#   N(0, 0.01²), bias 0.
# torchvision/models/efficientnet.py: the same, but Linear U[±1/sqrt(out_features)], bias 0.


class MBConv(nn.Module):
    """An inverted residual (expand 1×1, depthwise 3×3, project 1×1), with EfficientNet's
    squeeze-excitation (two 1×1 convs with bias) when ``se``."""

    out: int
    se: bool

    @nn.compact
    def __call__(self, x):
        bn = lambda name: nn.BatchNorm(use_running_average=True, name=name)
        hidden = 2 * x.shape[-1]
        y = bn("conv_0_1")(nn.Conv(hidden, (1, 1), use_bias=False, name="conv_0_0")(x))
        dw = nn.Conv(hidden, (3, 3), feature_group_count=hidden, use_bias=False, name="conv_1_0")
        y = nn.relu6(bn("conv_1_1")(dw(y)))
        if self.se:
            s = jnp.mean(y, axis=(1, 2), keepdims=True)
            s = nn.Conv(hidden // 4, (1, 1), name="se_fc1")(s)
            y = y * nn.sigmoid(nn.Conv(hidden, (1, 1), name="se_fc2")(nn.silu(s)))
        return bn("conv_3")(nn.Conv(self.out, (1, 1), use_bias=False, name="conv_2")(y))


class MobileNet(nn.Module):
    se: bool = False

    @nn.compact
    def __call__(self, x):
        bn = lambda name: nn.BatchNorm(use_running_average=True, name=name)
        x = bn("features_0_1")(nn.Conv(C, (3, 3), 2, use_bias=False, name="features_0_0")(x))
        x = MBConv(C, self.se, name="features_1")(x)
        x = MBConv(FC_IN, self.se, name="features_2")(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(10, name="classifier_1")(nn.Dense(FC_IN, name="classifier_0")(x))


@pytest.mark.parametrize("family", ["mobilenet", "efficientnet"])
def test_mobilenet_and_efficientnet_match_torchvision(family):
    se = family == "efficientnet"

    def law(path, shape):
        name = path.rsplit("/", 1)[-1]
        if name == "kernel" and len(shape) == 4:
            return Normal(math.sqrt(2 / (shape[-1] * shape[0] * shape[1])))
        if name == "kernel":  # Linear (in, out)
            return Uniform(1 / math.sqrt(shape[1])) if se else Normal(0.01)
        if name in ("scale", "var"):
            return Const(1.0)
        return Const(0.0) if name in ("bias", "mean") else None

    model = MobileNet(se)
    v = jax.tree.map(lambda s: jnp.full(s.shape, 7.0, s.dtype), _variables(model))
    rules = jaxinit.efficientnet() if se else jaxinit.mobilenet()
    n = check(lambda k: jaxinit.reinit(v, rules, k, module=model, sample=SAMPLE), law)
    assert n == 5 + 2 * (3 + 12 + (4 if se else 0)) + 4


def test_resnet_equinox_basic_block():
    """An Equinox port (torch layout ``(out, in, kh, kw)``, BatchNorm ``weight``/``bias``),
    ``zero_init_residual``: the weights' laws in torch's own shapes."""
    import equinox as eqx

    keys = iter(jax.random.split(jax.random.key(0), 8))

    class Block(eqx.Module):
        conv1: eqx.nn.Conv2d
        bn1: eqx.nn.BatchNorm
        conv2: eqx.nn.Conv2d
        bn2: eqx.nn.BatchNorm

        def __init__(self):
            self.conv1 = eqx.nn.Conv2d(C, C, 3, padding=1, use_bias=False, key=next(keys))
            self.bn1 = eqx.nn.BatchNorm(C, "batch", mode="batch")
            self.conv2 = eqx.nn.Conv2d(C, C, 3, padding=1, use_bias=False, key=next(keys))
            self.bn2 = eqx.nn.BatchNorm(C, "batch", mode="batch")

    class Net(eqx.Module):
        conv1: eqx.nn.Conv2d
        bn1: eqx.nn.BatchNorm
        layer1: list
        fc: eqx.nn.Linear

        def __init__(self):
            self.conv1 = eqx.nn.Conv2d(3, C, 3, use_bias=False, key=next(keys))
            self.bn1 = eqx.nn.BatchNorm(C, "batch", mode="batch")
            self.layer1 = [Block(), Block()]
            self.fc = eqx.nn.Linear(C, 10, key=next(keys))

    net = Net()
    rules = jaxinit.resnet(zero_init_residual=True, block="basic")

    def draw(k):
        params = eqx.filter(jaxinit.reinit(net, rules, k), eqx.is_inexact_array)
        flat = jax.tree_util.tree_flatten_with_path(params)[0]
        return {
            "/".join(str(getattr(p, "name", getattr(p, "idx", p))) for p in kp): v
            for kp, v in flat
            if not any("state_index" in str(p) for p in kp)
        }

    def law(path, shape):
        name = path.rsplit("/", 1)[-1]
        if name == "weight" and len(shape) == 4:  # (out, in, kh, kw)
            return Normal(math.sqrt(2 / (shape[0] * shape[2] * shape[3])))
        if path.startswith("fc/"):
            return Uniform(1 / math.sqrt(C))
        if name == "weight":  # BatchNorm
            return Const(0.0 if re.search(r"layer1/\d+/bn2/", path) else 1.0)
        return Const(0.0) if name == "bias" else None

    assert check(draw, law) == 1 + 2 + 2 * 6 + 2
