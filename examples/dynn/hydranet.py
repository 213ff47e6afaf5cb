"""Argmax-routed branches, HydraNets-style (Mullapudi et al., CVPR 2018).

A shared stem computes features; a gate (global pooling + linear layer) scores four
specialised branches and only the best-scoring one runs (``self.branches[int(choice)]``);
the combiner pools the branch's features and classifies.  Which weights run depends on
the image.  As in HydraNets' inference code, routing is per image (batch 1).

Control flow: an ``nn.ModuleList`` indexed by a run-time value
(``self.branches[int(choice)]``, with ``choice = gate(features).argmax(dim=1)``).
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

NUM_BRANCHES = 4


class HydraNet(nn.Module):
    def __init__(self, num_classes: int = 10, num_branches: int = NUM_BRANCHES):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 16), BasicBlock(16, 16), BasicBlock(16, 32, 2))
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(32, num_branches))
        self.branches = nn.ModuleList(
            nn.Sequential(BasicBlock(32, 64, 2), BasicBlock(64, 64)) for _ in range(num_branches))
        self.combiner = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                      nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stem(x)
        choice = self.gate(features).argmax(dim=1)
        branch_features = self.branches[int(choice)](features)
        return self.combiner(branch_features)


@torch.no_grad()
def balance_gate(model: HydraNet, images: torch.Tensor, rounds: int = 50) -> None:
    """Shift the gate's biases until every branch wins for about the same share of images
    (a trained gate routes each class group to its own branch)."""
    bias = model.gate[-1].bias
    scores = model.gate(model.stem(images)) - bias
    target = images.shape[0] / bias.numel()
    for _ in range(rounds):
        wins = torch.bincount((scores + bias).argmax(dim=1), minlength=bias.numel())
        bias -= 0.1 * torch.log((wins + 1) / target) * scores.std()


def make_model() -> nn.Module:
    """Random HydraNet whose gate picks each of its branches for some images."""
    torch.manual_seed(0)
    model = HydraNet()
    batch = stack_inputs(random_images(64, CALIBRATION_SEED))

    def run_every_branch() -> None:
        features = model.stem(batch)
        for branch in model.branches:
            model.combiner(branch(features))

    recalibrate_batchnorm(model, run_every_branch)
    balance_gate(model, batch)
    return model


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
