"""Example options and shapes for every registered scheme, used by the contract tests.

A scheme not listed here is tried with no options on the generic shapes; a scheme whose
defaults cannot work on them must add an entry (the contract test says so).
"""

GENERIC_SHAPES: list[tuple[int, ...]] = [(16, 8), (3, 3, 4, 8)]

CASES: dict[str, list[tuple[dict, list[tuple[int, ...]]]]] = {
    "constant": [({"value": 0.5}, GENERIC_SHAPES)],
    "variance_scaling": [
        ({"scale": 2.0, "mode": "fan_in", "distribution": "uniform"}, GENERIC_SHAPES),
        ({"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal"}, GENERIC_SHAPES),
    ],
    "torch_default_bias": [({"fan_in": 16}, [(8,), (4, 8)])],
    # jaxinit/initializers/_structured.py
    "orthogonal": [
        ({}, [*GENERIC_SHAPES, (8, 16), (3, 4, 8)]),
        ({"scale": 2.0, "column_axis": 0}, GENERIC_SHAPES),
        ({"layout": "torch"}, [(8, 4, 3, 3)]),
    ],
    "delta_orthogonal": [
        ({}, [(3, 4, 8), (3, 3, 4, 8), (3, 3, 3, 4, 4)]),
        ({"layout": "torch"}, [(8, 4, 3, 3)]),
    ],
    "dirac": [({}, [(3, 4, 8), (3, 3, 8, 8), (3, 3, 3, 4, 4)]), ({"groups": 2}, [(3, 3, 4, 8)])],
    "identity": [({}, [(16, 8), (8, 16), (8, 8)]), ({"gain": 0.5}, [(4, 4)])],
    "zero_init": [({}, [*GENERIC_SHAPES, (8, 16), (3, 3, 8, 4)])],
    "sparse": [({}, GENERIC_SHAPES), ({"k": 2, "layout": "torch"}, [(8, 4), (8, 4, 3, 3)])],
    "torch_sparse": [({"sparsity": 0.5}, [(16, 8), (8, 16)]), ({"sparsity": 0.0}, [(4, 4)])],
    # jaxinit/initializers/_keras.py
    "stft": [({}, [(16, 1, 9), (16, 1, 8)]), ({"side": "imag", "window": None}, [(8, 2, 5)])],
}
