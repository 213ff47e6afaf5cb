"""Shallow-Deep Network (SDN) on WideResNet-32-4 for CIFAR-10 (Kaya et al., ICML 2019).

Pre-activation wide residual blocks, 5 per stage at widths 64/128/256 (depth 32, widening
factor 4, as in the SDN code).  The 15 blocks are grouped into segments ending at the six
internal classifiers (ICs); the network stops at the first confident IC.

Control flow: ``for`` over ``zip(segments, heads)``, an ``if bool(tensor)`` test, early
``return`` from inside the loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    InternalClassifier,
    confident,
    exit_temperature,
    random_images,
    recalibrate_batchnorm,
    scale_linear,
    stack_inputs,
)

WIDTHS = (64, 128, 256)
BLOCKS_PER_STAGE = 5
EXIT_AFTER_BLOCKS = (1, 3, 6, 8, 11, 13)  # 0-based indices of the blocks with an IC


class WideBlock(nn.Module):
    """Pre-activation wide residual block (BN-ReLU-conv twice; 1x1 conv shortcut on change)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False))
        self.shortcut = (nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
                         if stride != 1 or in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class SDNWideResNet(nn.Module):
    def __init__(self, num_classes: int = 10, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold
        blocks, sizes = [], []
        in_channels, size = 16, 32
        for stage, width in enumerate(WIDTHS):
            for index in range(BLOCKS_PER_STAGE):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(WideBlock(in_channels, width, stride))
                in_channels, size = width, size // stride
                sizes.append((width, size))
        segments, heads, start = [], [], 0
        for end in EXIT_AFTER_BLOCKS:
            segments.append(nn.Sequential(*blocks[start:end + 1]))
            heads.append(InternalClassifier(*sizes[end], num_classes))
            start = end + 1
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.segments = nn.ModuleList(segments)
        self.heads = nn.ModuleList(heads)
        self.last_segment = nn.Sequential(*blocks[start:])
        self.classifier = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(in_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for segment, head in zip(self.segments, self.heads):
            x = segment(x)
            logits = head(x)
            if bool(F.softmax(logits, dim=1).max() >= self.threshold):
                return logits
        return self.classifier(self.last_segment(x))

    def all_exits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every IC and of the final classifier (the SDN training objective)."""
        outputs = []
        x = self.stem(x)
        for segment, head in zip(self.segments, self.heads):
            x = segment(x)
            outputs.append(head(x))
        outputs.append(self.classifier(self.last_segment(x)))
        return outputs


def make_model() -> nn.Module:
    """Random WRN-32-4-SDN whose ICs each stop about a quarter of the inputs reaching them."""
    torch.manual_seed(0)
    model = SDNWideResNet()
    batch = stack_inputs(random_images(16, CALIBRATION_SEED))
    recalibrate_batchnorm(model, lambda: model.all_exits(batch))
    with torch.no_grad():
        for head, logits in zip(model.heads, model.all_exits(batch)):
            scale_linear(head.linear, exit_temperature(logits, confident(model.threshold), 0.25))
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
