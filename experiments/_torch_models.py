"""PyTorch twins of jaxinit's study models, for the benchmarks' ``torch.func`` contenders.

Only imported where torch is installed (the benchmarks skip their torch rows otherwise).
"""

from __future__ import annotations

import torch


class _Block(torch.nn.Module):
    """jaxinit.ResNet's basic block: relu(skip(x) + BN(conv(relu(BN(conv(x))))))."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c0 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b0 = _bn(cout)
        self.c1 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b1 = _bn(cout)
        self.proj = None
        if cin != cout or stride != 1:
            self.proj = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            _bn(cout))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b1(self.c1(torch.relu(self.b0(self.c0(x)))))
        return torch.relu((x if self.proj is None else self.proj(x)) + y)


def _bn(c: int) -> torch.nn.Module:
    # batch statistics only: torch.func.functional_call cannot update buffers under vmap
    return torch.nn.BatchNorm2d(c, track_running_stats=False)


def resnet(in_channels: int, channels: tuple[int, ...], num_classes: int = 10,
           blocks: int = 1) -> torch.nn.Module:  # fmt: skip
    """``jaxinit.ResNet(num_classes, channels, blocks)`` in PyTorch (NCHW inputs)."""
    layers: list[torch.nn.Module] = [
        torch.nn.Conv2d(in_channels, channels[0], 3, 1, 1, bias=False),
        _bn(channels[0]),
        torch.nn.ReLU(),
    ]
    cin = channels[0]
    for s, c in enumerate(channels):
        for b in range(blocks):
            layers.append(_Block(cin, c, 2 if s > 0 and b == 0 else 1))
            cin = c
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(cin, num_classes)]
    return torch.nn.Sequential(*layers)


def train_ensemble(make, members: int, x_train: torch.Tensor, y_train: torch.Tensor, steps: int,
                   batch_size: int, lr: float | torch.Tensor,
                   momentum: float = 0.9) -> tuple[dict, torch.nn.Module]:  # fmt: skip
    """What a PyTorch user writes to train a population in one program: ``members`` models
    from ``make()`` stacked with ``torch.func.stack_module_state``, each step one
    ``torch.vmap(grad_and_value(...))`` over members (each its own minibatch drawn on the
    data's device) and SGD with momentum in place; ``lr`` a float or one rate per member.
    Returns the stacked parameters and the stateless base module (for
    ``functional_call``)."""
    from torch.func import functional_call, grad_and_value, stack_module_state

    params, _ = stack_module_state([make() for _ in range(members)])
    base = make().to("meta")
    momenta = {k: torch.zeros_like(v) for k, v in params.items()}
    rates = torch.as_tensor(lr, dtype=torch.float32, device=x_train.device)

    def loss_fn(p, x, y):
        return torch.nn.functional.cross_entropy(functional_call(base, p, (x,)), y)

    step = torch.vmap(grad_and_value(loss_fn), randomness="different")
    with torch.no_grad():
        for _ in range(steps):
            idx = torch.randint(0, len(x_train), (members, batch_size), device=x_train.device)
            grads, _ = step(params, x_train[idx], y_train[idx])
            for k, p in params.items():
                momenta[k].mul_(momentum).add_(grads[k])
                p.sub_(rates.view(-1, *[1] * (p.ndim - 1)) * momenta[k])
    return params, base
