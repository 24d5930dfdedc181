"""Small flax.linen models used by the studies, diagnostics and experiments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxinit._checks import check_choice
from jaxinit._core import lecun_normal, zeros


def _softsign(x: jax.Array) -> jax.Array:
    return x / (1 + jnp.abs(x))


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "selu": jax.nn.selu,
    "softsign": _softsign,
    "linear": lambda x: x,
    "identity": lambda x: x,
    "gelu": jax.nn.gelu,
    "leaky_relu": jax.nn.leaky_relu,
    "erf": jax.scipy.special.erf,
}


def activation_fn(activation: str | Callable) -> Callable[[jax.Array], jax.Array]:
    if callable(activation):
        return activation
    return ACTIVATIONS[check_choice("activation", "activation", activation, list(ACTIVATIONS))]


class MLP(nn.Module):
    """Fully connected network: ``Dense_0 … Dense_{n-1}``, the activation after every
    layer but the last (which gives logits or regression outputs).

    Attributes:
      features: widths of all layers, the output layer included, e.g. ``(32, 32, 10)``.
      activation: a name from :data:`ACTIVATIONS` or a callable.
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
