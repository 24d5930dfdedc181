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
}
