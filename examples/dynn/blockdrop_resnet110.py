"""BlockDrop on ResNet-110 (Wu et al., CVPR 2018), CIFAR-10.

A CIFAR ResNet-110 (3 stages of 18 basic blocks = 54 blocks).  Before any block runs, a small
policy network (a ResNet-8-like CNN on the 2x-downsampled image) outputs one keep-probability
per block; block t runs when its probability exceeds 0.5 and is otherwise replaced by its
shortcut.  All decisions are known up front, so the executed path is fixed by one tensor.

Control flow: ``for t, block in enumerate(blocks)`` with ``if probs[0, t] > 0.5`` / ``else``
(a tensor condition indexed by the loop counter).
"""
from __future__ import annotations

import torch
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    BasicBlock,
    calibrate_gate_biases,
    cifar_resnet_blocks,
    conv_bn,
    random_images,
    recalibrate_batchnorm,
    stack_inputs,
)

NUM_BLOCKS = 54


class BlockDropResNet110(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.policy = nn.Sequential(
            nn.AvgPool2d(2), conv_bn(3, 16), BasicBlock(16, 16), BasicBlock(16, 32, 2),
            BasicBlock(32, 64, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, NUM_BLOCKS))
        self.stem = conv_bn(3, 16)
        self.blocks = nn.ModuleList(cifar_resnet_blocks(NUM_BLOCKS // 3))
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.sigmoid(self.policy(x))
        x = self.stem(x)
        for t, block in enumerate(self.blocks):
            if probs[0, t] > 0.5:
                x = block(x)
            else:
                x = block.shortcut(x)
        return self.classifier(x)


def make_model() -> nn.Module:
    """Random BlockDrop whose policy keeps each block for about 60% of inputs."""
    torch.manual_seed(0)
    model = BlockDropResNet110()
    calibration = random_images(32, CALIBRATION_SEED)
    batch = stack_inputs(calibration)
    backbone = nn.Sequential(model.stem, *model.blocks)
    recalibrate_batchnorm(model, lambda: (model.policy(batch), backbone(batch)))
    calibrate_gate_biases(model, calibration, [model.policy[-1]], 0.6, rounds=1)
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
