"""Sampling speed: jaxinit default and fast paths vs jax.nn, numpy and torch (if installed).

Every figure is the median of several timed runs after a warm-up, with
``block_until_ready``, reported as GB/s of output and as a fraction of a measured memory
copy of the same array. Run:

    python experiments/bench_sampling.py            # full
    python experiments/bench_sampling.py --quick    # < 1 min
    python experiments/bench_sampling.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxinit

try:
    import torch
except ImportError:  # optional
    torch = None


def _time(fn: Callable[[], object], repeats: int) -> float:
    def run():
        jax.block_until_ready(fn())  # numpy/torch results pass through unchanged

    run()  # warm-up (compiles)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _jit_init(init, shape, dtype):
    f = jax.jit(lambda k: init(k, shape, dtype))
    key = jax.random.key(0)
    return lambda: f(key)


SCHEMES = {
    "normal": (jaxinit.normal(1.0), jax.nn.initializers.normal(1.0)),
    "uniform": (jaxinit.uniform(1.0), jax.nn.initializers.uniform(1.0)),
    "truncated_normal": (jaxinit.truncated_normal(1.0), jax.nn.initializers.truncated_normal(1.0)),
    "glorot_uniform": (jaxinit.glorot_uniform(), jax.nn.initializers.glorot_uniform()),
    "he_normal": (jaxinit.he_normal(), jax.nn.initializers.he_normal()),
}


def _numpy(name, shape):
    rng = np.random.default_rng(0)
    n = shape[0]
    return {
        "normal": lambda: rng.standard_normal(shape, np.float32),
        "uniform": lambda: rng.random(shape, np.float32),
        "truncated_normal": None,
        "glorot_uniform": lambda: rng.uniform(-np.sqrt(3 / n), np.sqrt(3 / n), shape).astype(
            np.float32
        ),
        "he_normal": None,
    }[name]


def _torch(name, shape, dtype, fresh):
    """torch.nn.init's in-place function on one preallocated tensor, or (``fresh``) on a new
    ``torch.empty`` each call, which is what building a layer costs and what a jax
    initializer, returning a new array, always pays (first touch of fresh pages)."""
    if torch is None:
        return None
    tdtype = {jnp.float32: torch.float32, jnp.bfloat16: torch.bfloat16}[dtype]
    fn = {
        "normal": torch.nn.init.normal_,
        "uniform": torch.nn.init.uniform_,
        "truncated_normal": torch.nn.init.trunc_normal_,
        "glorot_uniform": torch.nn.init.xavier_uniform_,
        "he_normal": torch.nn.init.kaiming_normal_,
    }[name]
    if fresh:
        return lambda: fn(torch.empty(shape, dtype=tdtype))
    t = torch.empty(shape, dtype=tdtype)
    return lambda: fn(t)


def gpt2_shapes(n_layer=12, d=768, vocab=50257, ctx=1024):
    """~124M parameters in GPT-2-small shapes (flax layout)."""
    f32 = jnp.float32
    s = lambda *shape: jax.ShapeDtypeStruct(shape, f32)
    block = {
        "ln_1": {"scale": s(d), "bias": s(d)},
        "attn": {"c_attn": {"kernel": s(d, 3 * d), "bias": s(3 * d)}},
        "proj": {"c_proj": {"kernel": s(d, d), "bias": s(d)}},
        "ln_2": {"scale": s(d), "bias": s(d)},
        "mlp": {"c_fc": {"kernel": s(d, 4 * d), "bias": s(4 * d)}},
        "mlp_proj": {"c_proj": {"kernel": s(4 * d, d), "bias": s(d)}},
    }
    tree = {"wte": s(vocab, d), "wpe": s(ctx, d), "ln_f": {"scale": s(d), "bias": s(d)}}
    tree.update({f"h_{i}": block for i in range(n_layer)})
    return tree


def _paths(tree):
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(jax.tree_util.keystr(path, simple=True, separator="/"), x) for path, x in flat]


_COPY = jax.jit(lambda x: x + jnp.ones((), x.dtype))

GPT2_RULES = {"*scale": jaxinit.ones, "*bias": jaxinit.zeros, "*": jaxinit.normal(0.02)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller and fewer runs (< 1 min)")
    ap.add_argument("--json", help="write the rows to this file")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    side = 1024 if args.quick else 4096
    rows = []

    def add(group, impl, name, dtype, seconds, nbytes, copy_s):
        gbs = nbytes / seconds / 1e9
        rows.append(
            dict(
                group=group,
                impl=impl,
                scheme=name,
                dtype=str(np.dtype(dtype)),
                ms=seconds * 1e3,
                gb_s=gbs,
                frac_copy=copy_s / seconds,
            )
        )
        print(
            f"{group:8s} {name:18s} {np.dtype(dtype)!s:9s} {impl:10s}"
            f" {seconds * 1e3:9.1f} ms {gbs:7.2f} GB/s {copy_s / seconds:6.3f}x copy",
            flush=True,
        )

    for dtype in (jnp.float32, jnp.bfloat16):
        shape = (side, side)
        nbytes = side * side * np.dtype(dtype).itemsize
        x = jnp.ones(shape, dtype)
        copy = jax.jit(lambda x: x + jnp.ones((), x.dtype))
        copy_s = _time(lambda copy=copy, x=x: copy(x), repeats)
        add("copy", "jax", "copy", dtype, copy_s, nbytes, copy_s)
        for name, (mine, ref) in SCHEMES.items():
            add(
                "sample",
                "jax.nn",
                name,
                dtype,
                _time(_jit_init(ref, shape, dtype), repeats),
                nbytes,
                copy_s,
            )
            add(
                "sample",
                "default",
                name,
                dtype,
                _time(_jit_init(mine, shape, dtype), repeats),
                nbytes,
                copy_s,
            )
            fast = jaxinit.fast(mine)
            add(
                "sample",
                "fast",
                name,
                dtype,
                _time(_jit_init(fast, shape, dtype), repeats),
                nbytes,
                copy_s,
            )
            if dtype == jnp.float32 and (f := _numpy(name, shape)) is not None:
                add("sample", "numpy", name, dtype, _time(f, repeats), nbytes, copy_s)
            for impl, fresh in (("torch", False), ("torch+alloc", True)):
                if (f := _torch(name, shape, dtype, fresh)) is not None:
                    add("sample", impl, name, dtype, _time(f, repeats), nbytes, copy_s)

    sizes = (256, 512) if args.quick else (512, 1024, 2048, 4096, 8192)
    for n in sizes:
        shape, nbytes = (n, n), n * n * 4
        ones = jnp.ones(shape)
        copy_s = _time(lambda ones=ones: _COPY(ones), repeats)
        rng = np.random.default_rng(0)
        impls = {
            "jax.nn": _jit_init(jax.nn.initializers.orthogonal(), shape, jnp.float32),
            "default": _jit_init(jaxinit.orthogonal(), shape, jnp.float32),
            "fast": _jit_init(jaxinit.fast(jaxinit.orthogonal()), shape, jnp.float32),
            "numpy": lambda rng=rng, s=shape: np.linalg.qr(rng.standard_normal(s, np.float32))[0],
        }
        if torch is not None:
            t = torch.empty(shape)
            impls["torch"] = lambda t=t: torch.nn.init.orthogonal_(t)
        # beyond 4096², only the fast path and torch, once (a QR here takes half a minute)
        big = n > 4096
        for impl, f in impls.items():
            if not big or impl in ("fast", "torch"):
                seconds = _time(f, 1 if big else repeats)
                add("ortho", impl, f"orthogonal_{n}", jnp.float32, seconds, nbytes, copy_s)

    tree = gpt2_shapes(n_layer=1, vocab=4096) if args.quick else gpt2_shapes()
    nparams = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))
    nbytes = 4 * nparams
    big = jnp.ones((nparams,), jnp.float32)
    copy_s = _time(lambda: _COPY(big), repeats)
    name = f"gpt2_{nparams / 1e6:.0f}M"
    for impl, fast in (("default", False), ("fast", True)):
        init = jaxinit.make_init(tree, rules=GPT2_RULES, fast=fast)
        add(
            "model",
            impl,
            name,
            jnp.float32,
            _time(lambda init=init: init(jax.random.key(0)), repeats),
            nbytes,
            copy_s,
        )
    ref = jax.nn.initializers.normal(0.02)
    leaves = jax.tree_util.tree_leaves(tree)

    @jax.jit
    def jaxnn_tree(key):
        keys = jax.random.split(key, len(leaves))
        return [ref(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)]

    add(
        "model",
        "jax.nn",
        name,
        jnp.float32,
        _time(lambda: jaxnn_tree(jax.random.key(0)), repeats),
        nbytes,
        copy_s,
    )

    rng = np.random.default_rng(0)

    def numpy_tree():  # GPT2_RULES with numpy's generator
        return {p: np.ones(x.shape, np.float32) if p.endswith("scale")
                else np.zeros(x.shape, np.float32) if p.endswith("bias")
                else (0.02 * rng.standard_normal(x.shape, np.float32))
                for p, x in _paths(tree)}  # fmt: skip

    add("model", "numpy", name, jnp.float32, _time(numpy_tree, repeats), nbytes, copy_s)
    if torch is not None:

        def torch_tree():  # GPT2_RULES with torch.nn.init on freshly allocated parameters
            out = {}
            for p, x in _paths(tree):
                t = torch.empty(x.shape)
                init = (torch.nn.init.ones_ if p.endswith("scale") else torch.nn.init.zeros_
                        if p.endswith("bias") else lambda t: torch.nn.init.normal_(t, 0, 0.02))  # fmt: skip
                out[p] = init(t)
            return out

        add("model", "torch", name, jnp.float32, _time(torch_tree, repeats), nbytes, copy_s)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                dict(rows=rows, torch=torch is not None, devices=str(jax.devices())), f, indent=1
            )


if __name__ == "__main__":
    main()
