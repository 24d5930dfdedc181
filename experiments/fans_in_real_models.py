"""Issue 13's table: each layer built with ``kernel_init=lecun_normal()`` against the same
layer re-initialised by ``jaxinit.reinit`` with ``lecun_normal()`` (sample standard
deviations of the kernel). Run from the repository root:

    python experiments/fans_in_real_models.py

Prints a Markdown table ("Fans in real models", docs/guide/fans.md).
"""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxinit

S = jaxinit.lecun_normal()
KEY = jax.random.key(0)


def std(x) -> float:
    return float(np.std(np.asarray(x)))


class _Body(nn.Module):
    kinit: object = nn.linear.default_kernel_init

    @nn.compact
    def __call__(self, c, _):
        return nn.Dense(256, kernel_init=self.kinit)(c), None


def _stack(kinit=nn.linear.default_kernel_init):
    return nn.scan(_Body, variable_axes={"params": 0}, split_rngs={"params": True}, length=12)(
        kinit
    )


def rows() -> list[tuple[str, float, float]]:
    out = []
    x = jnp.ones((1, 64))
    m = nn.DenseGeneral((4, 16))
    own = m.clone(kernel_init=S).init(KEY, x)["params"]["kernel"]
    new = jaxinit.reinit(m.init(KEY, x), {"kernel": S}, jax.random.key(1), module=m, sample=x)
    out.append(
        (
            "linen `DenseGeneral((4, 16))` on 64 features, kernel (64, 4, 16)",
            own,
            new["params"]["kernel"],
        )
    )

    m = nn.MultiHeadDotProductAttention(num_heads=4, qkv_features=64)
    xa = jnp.ones((1, 8, 64))
    own = m.clone(kernel_init=S).init(KEY, xa)["params"]["query"]["kernel"]
    rules = {"{query,key,value}/kernel": S}
    new = jaxinit.reinit(m.init(KEY, xa), rules, jax.random.key(1), module=m, sample=xa)
    out.append(
        (
            "linen `MultiHeadDotProductAttention(4 heads, 64)`, q/k/v kernels",
            own,
            new["params"]["query"]["kernel"],
        )
    )

    xs = jnp.ones((1, 256))
    own = _stack(S).init(KEY, xs, None)["params"]["Dense_0"]["kernel"]
    m = _stack()
    v = m.init(KEY, xs, None)
    new = jaxinit.reinit(v, {"kernel": S}, jax.random.key(1), module=m, sample=(xs, None))
    out.append(
        (
            "linen `nn.scan` stack of 12 `Dense(256)`, kernel (12, 256, 256)",
            own,
            new["params"]["Dense_0"]["kernel"],
        )
    )

    own = nnx.LinearGeneral(64, (4, 16), kernel_init=S, rngs=nnx.Rngs(0)).kernel[...]
    new = jaxinit.reinit(nnx.LinearGeneral(64, (4, 16), rngs=nnx.Rngs(0)), {"kernel": S}, KEY)
    out.append(("nnx `LinearGeneral(64, (4, 16))`", own, new.kernel[...]))

    own = nnx.MultiHeadAttention(4, 64, kernel_init=S, decode=False, rngs=nnx.Rngs(0))
    m = nnx.MultiHeadAttention(4, 64, decode=False, rngs=nnx.Rngs(0))
    new = jaxinit.reinit(m, {"{query,key,value}/kernel": S}, KEY)
    out.append(("nnx `MultiHeadAttention` q/k/v", own.query.kernel[...], new.query.kernel[...]))

    @nnx.split_rngs(splits=12)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make(rngs):
        return nnx.Linear(256, 256, kernel_init=S, rngs=rngs)

    own = make(nnx.Rngs(0))
    new = jaxinit.reinit(own, {"kernel": S}, jax.random.key(1))
    out.append(("nnx `vmap`-stacked 12 × `Linear(256, 256)`", own.kernel[...], new.kernel[...]))

    lin = eqx.nn.Linear(128, 256, key=KEY)
    he = jaxinit.he_normal(layout="torch")
    own = he(jax.random.key(1), lin.weight.shape)  # the formula: std sqrt(2 / 128) = 0.125
    new = jaxinit.reinit(lin, {"weight": he}, jax.random.key(1), layout="torch")
    out.append(
        (
            'Equinox `Linear(128, 256)` with `he_normal(layout="torch")` and `reinit(..., layout="torch")`',
            own,
            new.weight,
        )
    )
    return [(name, std(a), std(b)) for name, a, b in out]


def main() -> None:
    print("| layer | its own `kernel_init=lecun_normal()` | after `reinit` with `lecun_normal()` |")
    print("|---|---|---|")
    for name, own, new in rows():
        print(f"| {name} | {own:.4f} | {new:.4f} |")


if __name__ == "__main__":
    main()
