"""The activation table that the models (``jaxinit.study``) and the theory
(``jaxinit.theory``: mean field, diagnostics) share: a bottom module, so that theory does not
import the model layer for it."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxinit._checks import check_choice


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
"""The activations the models (:class:`jaxinit.MLP`, :class:`jaxinit.CNN1D`) and the theory
know by name."""


def activation_fn(activation: str | Callable) -> Callable[[jax.Array], jax.Array]:
    if callable(activation):
        return activation
    return ACTIVATIONS[check_choice("activation", "activation", activation, list(ACTIVATIONS))]
