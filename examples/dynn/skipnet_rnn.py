"""SkipNet ResNet-38 with a recurrent gate (Wang et al., ECCV 2018), CIFAR-10.

A CIFAR ResNet-38 (3 stages of 6 basic blocks).  One LSTM cell, shared by all blocks and
carrying its state from block to block, decides before every block but the first whether to
run it: the block's features are average-pooled and projected to the LSTM's input size, the
LSTM's hidden state is projected to a probability, and a probability below 0.5 replaces the
block by its shortcut.

Control flow: ``for`` over ``zip(blocks[1:], gate_inputs)`` with loop-carried LSTM state
``(h, c)``; ``if prob.item() < threshold`` / ``else``.
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

GATE_EMBEDDING = 10
GATE_HIDDEN = 10


class SkipNetRNN(nn.Module):
    def __init__(self, num_classes: int = 10, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold
        self.stem = conv_bn(3, 16)
        self.blocks = nn.ModuleList(cifar_resnet_blocks(6))
        self.gate_inputs = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(block.residual[0][0].in_channels, GATE_EMBEDDING))
            for block in self.blocks[1:])
        self.gate = nn.LSTMCell(GATE_EMBEDDING, GATE_HIDDEN)
        self.gate_probability = nn.Linear(GATE_HIDDEN, 1)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0](self.stem(x))
        h = c = x.new_zeros(x.shape[0], GATE_HIDDEN)
        for block, gate_input in zip(self.blocks[1:], self.gate_inputs):
            h, c = self.gate(gate_input(x), (h, c))
            prob = torch.sigmoid(self.gate_probability(h))
            if prob.item() < self.threshold:
                x = block.shortcut(x)
            else:
                x = block(x)
        return self.classifier(x)


def make_model() -> nn.Module:
    """Random SkipNet whose recurrent gate runs about 60% of the gated blocks."""
    torch.manual_seed(0)
    model = SkipNetRNN()
    calibration = random_images(32, CALIBRATION_SEED)
    batch = stack_inputs(calibration)
    recalibrate_batchnorm(model, lambda: nn.Sequential(model.stem, *model.blocks)(batch))
    calibrate_gate_biases(model, calibration, [model.gate_probability], 0.6)
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
