"""Small flax.linen models used by the studies, diagnostics and experiments."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax

from jaxinit._activations import ACTIVATIONS as ACTIVATIONS
from jaxinit._activations import activation_fn
from jaxinit.initializers import lecun_normal, zeros


class MLP(nn.Module):
    """Fully connected network: ``Dense_0 … Dense_{n-1}``, the activation after every
    layer but the last (which gives logits or regression outputs).

    Attributes:
      features: widths of all layers, the output layer included, e.g. ``(32, 32, 10)``.
      activation: a name from :data:`ACTIVATIONS` or a callable.

    Example:
      >>> net = jaxinit.MLP((32, 10), activation="tanh", kernel_init=jaxinit.glorot_normal())
      >>> variables = net.init(jax.random.key(0), jnp.zeros((2, 64)))
      >>> jax.tree.map(jnp.shape, variables["params"])
      {'Dense_0': {'bias': (32,), 'kernel': (64, 32)},
       'Dense_1': {'bias': (10,), 'kernel': (32, 10)}}
      >>> net.apply(variables, jnp.zeros((2, 8, 8))).shape  # inputs are flattened
      (2, 10)
    """

    features: Sequence[int]
    activation: str | Callable = "relu"
    use_bias: bool = True
    kernel_init: Any = lecun_normal()
    bias_init: Any = zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        x = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.features):
            x = nn.Dense(
                width, use_bias=self.use_bias, kernel_init=self.kernel_init,
                bias_init=self.bias_init, name=f"Dense_{i}",
            )(x)  # fmt: skip
            if i < len(self.features) - 1:
                x = act(x)
        return x


class CNN1D(nn.Module):
    """A 1-D convolutional classifier for sequences such as MNIST-1D (length 40).

    Conv(channels, kernel 5, stride 2) blocks with the activation, then a Dense head.
    Inputs ``(batch, length)`` or ``(batch, length, 1)``.

    Example:
      >>> net = jaxinit.CNN1D(num_classes=10, channels=(8, 8))
      >>> variables = net.init(jax.random.key(0), jnp.zeros((2, 40)))
      >>> list(variables["params"]), variables["params"]["Conv_1"]["kernel"].shape
      (['Conv_0', 'Conv_1', 'Head'], (5, 8, 8))
      >>> net.apply(variables, jnp.zeros((2, 40))).shape
      (2, 10)
    """

    num_classes: int = 10
    channels: Sequence[int] = (25, 25, 25)
    kernel_size: int = 5
    activation: str | Callable = "relu"
    kernel_init: Any = lecun_normal()
    bias_init: Any = zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        if x.ndim == 2:
            x = x[..., None]
        for i, c in enumerate(self.channels):
            x = nn.Conv(
                c, (self.kernel_size,), strides=(2,) if i else (1,), kernel_init=self.kernel_init,
                bias_init=self.bias_init, name=f"Conv_{i}",
            )(x)  # fmt: skip
            x = act(x)
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(
            self.num_classes, kernel_init=self.kernel_init, bias_init=self.bias_init, name="Head"
        )(x)


class ResNet(nn.Module):
    """A small ResNet-style CNN with BatchNorm (He et al. 2016's basic block, post-activation).

    A 3×3 stem convolution, then per stage ``blocks`` residual blocks
    ``relu(x + BN(conv(relu(BN(conv(x))))))`` (the first block of every stage after the first
    halves the resolution, with a 1×1 projection on the skip path), global average pooling
    and a Dense head. Convolutions have no bias (BatchNorm follows each); their kernels are
    named ``stem_conv``, ``stage{s}_block{b}_conv{0,1}``, ``..._proj`` and ``Head``.

    Inputs are images ``(batch, H, W)`` or ``(batch, H, W, C)``; flat inputs ``(batch, n)``
    with ``n`` a square (scikit-learn's digits: 64 = 8×8) are read as one-channel images.
    ``train=True`` normalises with batch statistics and updates the running ones
    (``batch_stats``); :func:`jaxinit.run_study` sets it for training steps.

    Attributes:
      num_classes: outputs of the head.
      channels: channels of each stage, e.g. ``(16, 32)``.
      blocks: residual blocks per stage.
      activation: a name from :data:`ACTIVATIONS` or a callable.
      momentum: BatchNorm's running-average momentum.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> net = ResNet(num_classes=10, channels=(8, 16))
      >>> variables = net.init(jax.random.key(0), jnp.zeros((2, 64)))
      >>> sorted(variables)
      ['batch_stats', 'params']
      >>> net.apply(variables, jnp.zeros((2, 64))).shape
      (2, 10)
    """

    num_classes: int = 10
    channels: Sequence[int] = (16, 32)
    blocks: int = 1
    activation: str | Callable = "relu"
    momentum: float = 0.9
    kernel_init: Any = lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        act = activation_fn(self.activation)
        if x.ndim == 2:
            side = math.isqrt(x.shape[1])
            if side * side != x.shape[1]:
                raise ValueError(
                    f"ResNet: flat inputs need a square number of features, got shape {x.shape};"
                    " pass images (batch, H, W) or (batch, H, W, C)"
                )
            x = x.reshape(x.shape[0], side, side, 1)
        elif x.ndim == 3:
            x = x[..., None]
        elif x.ndim != 4:
            raise ValueError(f"ResNet: inputs must have rank 2, 3 or 4, got shape {x.shape}")

        def conv(features, kernel, strides, name):
            return nn.Conv(features, kernel, strides, use_bias=False,
                           kernel_init=self.kernel_init, name=name)  # fmt: skip

        def norm(name):
            return nn.BatchNorm(use_running_average=not train, momentum=self.momentum, name=name)

        x = act(norm("stem_bn")(conv(self.channels[0], (3, 3), 1, "stem_conv")(x)))
        for s, c in enumerate(self.channels):
            for b in range(self.blocks):
                stride = 2 if s > 0 and b == 0 else 1
                prefix = f"stage{s}_block{b}"
                y = act(norm(f"{prefix}_bn0")(conv(c, (3, 3), stride, f"{prefix}_conv0")(x)))
                y = norm(f"{prefix}_bn1")(conv(c, (3, 3), 1, f"{prefix}_conv1")(y))
                if x.shape[-1] != c or stride != 1:
                    x = norm(f"{prefix}_proj_bn")(conv(c, (1, 1), stride, f"{prefix}_proj")(x))
                x = act(x + y)
        x = x.mean(axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=self.kernel_init, name="Head")(x)
