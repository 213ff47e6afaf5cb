"""A minimal early-exit network, the showcase of the dynamic-model zoo (``examples/dynn``).

Three convolutional stages, each followed by a small classifier.  The network stops after
the first stage whose classifier is confident enough (top softmax probability >= 0.5) and
returns that classifier's logits; an input no classifier is sure about goes through all
three stages.  This is the Shallow-Deep Network idea in a dozen lines: which layers run, and
so what a compiler must keep, depends on the values computed on the way.

Control flow: a ``for`` loop over ``zip(stages, heads)`` left early with ``break``, and a
loop-defined variable (``logits``) used after the loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dynn._common import (
    CALIBRATION_SEED,
    confident,
    exit_temperature,
    random_images,
    scale_linear,
    stack_inputs,
)


def stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution + ReLU that halves the resolution."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
                         nn.ReLU())


def head(channels: int, num_classes: int) -> nn.Sequential:
    """Global average pooling + linear classifier."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


class EarlyExitCNN(nn.Module):
    def __init__(self, num_classes: int = 10, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold
        self.stages = nn.ModuleList([stage(3, 16), stage(16, 32), stage(32, 64)])
        self.heads = nn.ModuleList([head(16, num_classes), head(32, num_classes),
                                    head(64, num_classes)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage, head in zip(self.stages, self.heads):
            x = stage(x)
            logits = head(x)
            if F.softmax(logits, dim=1).max() >= self.threshold:
                break
        return logits


def make_model() -> nn.Module:
    """Random network whose first two classifiers each stop about a third of their inputs."""
    torch.manual_seed(0)
    model = EarlyExitCNN().eval()
    x = stack_inputs(random_images(32, CALIBRATION_SEED))
    with torch.no_grad():
        for stage, head in zip(model.stages, model.heads):
            x = stage(x)
            scale = exit_temperature(head(x), confident(model.threshold), 1 / 3)
            scale_linear(head[-1], scale)
    return model


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
