"""jaxinit's checkpoint writer before orbax (``checkpoint-<group>.npz``, real members only),
kept for the tests that the engine still reads such files (tests/test_checkpoint.py) and
that their bookkeeping is checked (tests/test_guards.py)."""

import io
import json

import jax
import numpy as np


def write_legacy_npz(path, fingerprint, state, done, records, n):
    keys = lambda a: jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)
    leaves = [
        np.asarray(jax.random.key_data(a) if keys(a) else a)[:n] for a in jax.tree.leaves(state)
    ]
    arrays = {f"leaf_{i}": a for i, a in enumerate(leaves)}
    arrays["records"] = np.concatenate(records)
    arrays["done"] = np.asarray(done)
    text = json.dumps(fingerprint, sort_keys=True)
    arrays["fingerprint"] = np.frombuffer(text.encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
