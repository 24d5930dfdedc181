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
from tests.family_laws import Const, Normal, Uniform, check

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
