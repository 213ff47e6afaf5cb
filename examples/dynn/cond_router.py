"""Two-path conditional computation with ``torch.cond`` (a learned router, CIFAR-10).

A shared stem computes 16x16 features; a tiny router scores them, and ``torch.cond`` sends
the input either through a deep path (four residual blocks) or a shallow one (a pooled
linear classifier).  Unlike a Python ``if``, ``torch.cond`` keeps both branches in a graph
captured by ``torch.compile`` / ``torch.export``; its branch functions are methods here.

Control flow: ``torch.cond(pred, self.deep_path, self.shallow_path, (features,))``.
"""
from __future__ import annotations

import torch
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    BasicBlock,
    conv_bn,
    random_images,
    recalibrate_batchnorm,
    stack_inputs,
)


class CondRouter(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 32), conv_bn(32, 32, stride=2))
        self.router = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 1))
        self.deep = nn.Sequential(
            BasicBlock(32, 64, 2), BasicBlock(64, 64), BasicBlock(64, 128, 2),
            BasicBlock(128, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(128, num_classes))
        self.shallow = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                     nn.Linear(32 * 4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stem(x)
        hard = self.router(features).sum() > 0
        return torch.cond(hard, self.deep_path, self.shallow_path, (features,))

    def deep_path(self, features: torch.Tensor) -> torch.Tensor:
        return self.deep(features)

    def shallow_path(self, features: torch.Tensor) -> torch.Tensor:
        return self.shallow(features)


def make_model() -> nn.Module:
    """Random router that sends about half of the inputs down the deep path."""
    torch.manual_seed(0)
    model = CondRouter()
    batch = stack_inputs(random_images(32, CALIBRATION_SEED))
    recalibrate_batchnorm(model, lambda: model.deep(model.stem(batch)))
    with torch.no_grad():
        model.router[-1].bias -= model.router(model.stem(batch)).median()
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
