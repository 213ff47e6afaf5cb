"""Per-sample early exit on a batch, with a shrinking set of active samples (BranchyNet /
MSDNet-style batched dynamic evaluation).

A four-stage CNN with a classifier after each stage serves a batch of 16 images.  After
each stage, the samples whose classifier is confident enough (top softmax probability >=
``threshold``) are done: their logits are written to their rows of the output, and only the
remaining samples go on (``x = x[active]``), so every later stage runs on fewer rows.  The
network returns as soon as no sample is left; otherwise the last stage and its classifier
answer for every sample still active.

Control flow: ``for`` over ``zip(self.stages, self.heads)``; boolean-mask indexing of the
batch by a data-dependent mask (``x[active]``, ``idx[active]``); item assignment at
computed rows (``out[idx[done]] = logits[done]``, ``out[idx] = ...``); an early ``return``
when ``idx.numel() == 0``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    confident,
    conv_bn,
    exit_temperature,
    random_images,
    recalibrate_batchnorm,
    scale_linear,
    stack_inputs,
)

BATCH = 16
WIDTHS = (16, 32, 64, 64)


def head(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


class BatchEarlyExitCNN(nn.Module):
    def __init__(self, num_classes: int = 10, threshold: float = 0.6):
        super().__init__()
        self.num_classes = num_classes
        self.threshold = threshold
        stages, heads, in_channels = [], [], 3
        for i, width in enumerate(WIDTHS):
            stages.append(nn.Sequential(conv_bn(in_channels, width, stride=1 if i == 0 else 2),
                                        conv_bn(width, width)))
            heads.append(head(width, num_classes))
            in_channels = width
        self.stages = nn.ModuleList(stages[:-1])
        self.heads = nn.ModuleList(heads[:-1])
        self.final_stage, self.final_head = stages[-1], heads[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.num_classes)
        idx = torch.arange(x.shape[0])
        for stage, head in zip(self.stages, self.heads):
            x = stage(x)
            logits = head(x)
            done = F.softmax(logits, dim=1).max(dim=1)[0] >= self.threshold
            out[idx[done]] = logits[done]
            active = ~done
            x = x[active]
            idx = idx[active]
            if idx.numel() == 0:
                return out
        out[idx] = self.final_head(self.final_stage(x))
        return out


def make_model() -> nn.Module:
    """Random network whose three exit classifiers each stop ~half of the samples they see."""
    torch.manual_seed(0)
    model = BatchEarlyExitCNN()
    x = stack_inputs(random_images(64, CALIBRATION_SEED))
    recalibrate_batchnorm(model, lambda: model(x))
    with torch.no_grad():
        remaining = torch.ones(x.shape[0], dtype=torch.bool)
        for stage, classifier in zip(model.stages, model.heads):
            x = stage(x)
            logits = classifier(x)
            scale = exit_temperature(logits[remaining], confident(model.threshold), 0.5)
            scale_linear(classifier[-1], scale)
            remaining &= ~confident(model.threshold)(logits * scale)
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """``n`` batches of ``BATCH`` images."""
    images = random_images(n * BATCH, seed)
    return [(stack_inputs(images[i * BATCH:(i + 1) * BATCH]),) for i in range(n)]
