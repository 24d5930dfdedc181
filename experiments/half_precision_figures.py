"""Half-precision draws: distinct values and tails, jaxinit vs a direct half draw vs torch.

"direct" is the draw made in the target dtype (what jaxinit's torch names did before they
drew in float32 and rounded once, and what the jax-shared names still do, as jax does);
"jaxinit" is the current torch name; "torch" is torch.nn.init (if installed). Figures are
medians over 5 keys / torch seeds. Run:

    python experiments/half_precision_figures.py
"""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
import numpy as np

import jaxinit

try:
    import torch
except ImportError:  # optional
    torch = None

SEEDS = range(5)


def _direct_trunc(key, n, dtype, a, b):
    return jax.random.truncated_normal(key, a, b, (n,), dtype)


def _direct_normal(key, n, dtype):
    return jax.random.normal(key, (n,), dtype)


def _stats(xs):
    xs = [np.asarray(x, np.float64) for x in xs]
    return (
        statistics.median(len(np.unique(x)) for x in xs),
        statistics.median(float(np.abs(x).max()) for x in xs),
    )


def main() -> int:
    rows = []
    for label, n, jdt, tdt_name, a, b in [
        ("trunc_normal float16 (-2, 2)", 10_000, jnp.float16, "float16", -2.0, 2.0),
        ("trunc_normal bfloat16 (-2, 2)", 10_000, jnp.bfloat16, "bfloat16", -2.0, 2.0),
        ("trunc_normal float16 (2, 3)", 10_000, jnp.float16, "float16", 2.0, 3.0),
        ("normal bfloat16", 100_000, jnp.bfloat16, "bfloat16", None, None),
        ("normal float16", 100_000, jnp.float16, "float16", None, None),
    ]:
        keys = [jax.random.key(s) for s in SEEDS]
        if a is None:
            direct = [_direct_normal(k, n, jdt) for k in keys]
            ours = [jaxinit.torch_normal()(k, (n,), jdt) for k in keys]
        else:
            direct = [_direct_trunc(k, n, jdt, a, b) for k in keys]
            ours = [jaxinit.torch_trunc_normal(a=a, b=b)(k, (n,), jdt) for k in keys]
        row = [label, *_stats(direct), *_stats(ours)]
        if torch is not None:
            ts = []
            for s in SEEDS:
                torch.manual_seed(s)
                t = torch.empty(n, dtype=getattr(torch, tdt_name))
                if a is None:
                    torch.nn.init.normal_(t)
                else:
                    torch.nn.init.trunc_normal_(t, a=a, b=b)
                ts.append(t.float().numpy())
            row += list(_stats(ts))
        rows.append(row)
    head = "| draws | direct: distinct, max abs | jaxinit: distinct, max abs |"
    print(head + (" torch: distinct, max abs |" if torch is not None else ""))
    for r in rows:
        cells = [r[0]] + [f"{r[i]:.0f}, {r[i + 1]:.4g}" for i in range(1, len(r), 2)]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
