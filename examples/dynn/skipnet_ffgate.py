"""SkipNet ResNet-38 with feed-forward gates (Wang et al., ECCV 2018), CIFAR-10.

A CIFAR ResNet-38 (3 stages of 6 basic blocks).  Before every block but the first, a small
gate network (SkipNet's FFGate-II: pooling, a strided conv, global pooling, a 1x1 conv) looks
at the current features and outputs a hard 0/1 decision; a 0 replaces the block by its
shortcut (identity, or the 1x1 projection for the blocks that downsample).  While training,
SkipNet blends both paths by the mask so every gate receives a gradient.

Control flow: ``for`` over ``zip(blocks[1:], gates)``; a static ``if self.training`` (marked
``# static``) followed by ``elif bool(mask)`` / ``else``.
"""
from __future__ import annotations

import torch
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    calibrate_gate_biases,
    cifar_resnet_blocks,
    conv_bn,
    random_images,
    recalibrate_batchnorm,
    stack_inputs,
)


class FeedforwardGate(nn.Module):
    """SkipNet FFGate-II: returns a hard keep mask of shape (batch,), 1.0 = run the block."""

    def __init__(self, channels: int):
        super().__init__()
        self.features = nn.Sequential(nn.MaxPool2d(2), conv_bn(channels, channels, stride=2),
                                      nn.AdaptiveAvgPool2d(1))
        self.logit = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probability = torch.sigmoid(self.logit(self.features(x))).flatten()
        return (probability > 0.5).float()


class SkipNetFF(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = conv_bn(3, 16)
        self.blocks = nn.ModuleList(cifar_resnet_blocks(6))
        self.gates = nn.ModuleList(FeedforwardGate(block.residual[0][0].in_channels)
                                   for block in self.blocks[1:])
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0](self.stem(x))
        for block, gate in zip(self.blocks[1:], self.gates):
            mask = gate(x)
            if self.training:  # static: soft blending of both paths, training only
                mask = mask.view(-1, 1, 1, 1)
                x = mask * block(x) + (1 - mask) * block.shortcut(x)
            elif bool(mask):
                x = block(x)
            else:
                x = block.shortcut(x)
        return self.classifier(x)


def make_model() -> nn.Module:
    """Random SkipNet whose gates each run their block for about 60% of inputs."""
    torch.manual_seed(0)
    model = SkipNetFF()
    calibration = random_images(32, CALIBRATION_SEED)
    batch = stack_inputs(calibration)
    recalibrate_batchnorm(model, lambda: model(batch))
    calibrate_gate_biases(model, calibration, [gate.logit for gate in model.gates], 0.6)
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
