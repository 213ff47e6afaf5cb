"""Shallow-Deep Network (SDN) on VGG16 for CIFAR-10 (Kaya et al., ICML 2019).

Six internal classifiers (ICs) sit after every second convolution.  At inference the network
stops at the first IC whose softmax confidence reaches the threshold (0.5 in the paper) and
returns that IC's logits; inputs no IC is sure about run to the final classifier.

Control flow: ``for`` over ``zip(segments, heads)``, a ``.item()`` comparison, an early
``return`` from inside the loop; inside each IC, a static shape check.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    InternalClassifier,
    confident,
    conv_bn,
    exit_temperature,
    random_images,
    recalibrate_batchnorm,
    scale_linear,
    stack_inputs,
)

# (out_channels, max-pool after) for the 13 convolutions of VGG16.
VGG16_CONVS = [(64, False), (64, True), (128, False), (128, True), (256, False), (256, False),
               (256, True), (512, False), (512, False), (512, True), (512, False), (512, False),
               (512, True)]
CONVS_PER_SEGMENT = 2


class SDNVGG16(nn.Module):
    """VGG16 cut into segments of two convolutions, each followed by an internal classifier."""

    def __init__(self, num_classes: int = 10, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold
        segments, heads, layers = [], [], []
        in_channels, size = 3, 32
        for index, (channels, pool) in enumerate(VGG16_CONVS, start=1):
            layers.append(conv_bn(in_channels, channels))
            if pool:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            in_channels = channels
            if index % CONVS_PER_SEGMENT == 0:
                segments.append(nn.Sequential(*layers))
                heads.append(InternalClassifier(channels, size, num_classes))
                layers = []
        self.segments = nn.ModuleList(segments)
        self.heads = nn.ModuleList(heads)
        self.last_segment = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(512, 512), nn.ReLU(inplace=True),
            nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for segment, head in zip(self.segments, self.heads):
            x = segment(x)
            logits = head(x)
            if F.softmax(logits, dim=1).max().item() >= self.threshold:
                return logits
        return self.classifier(self.last_segment(x))

    def all_exits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every IC and of the final classifier (the SDN training objective)."""
        outputs = []
        for segment, head in zip(self.segments, self.heads):
            x = segment(x)
            outputs.append(head(x))
        outputs.append(self.classifier(self.last_segment(x)))
        return outputs


def make_model() -> nn.Module:
    """Random VGG16-SDN whose ICs each stop about a quarter of the inputs that reach them."""
    torch.manual_seed(0)
    model = SDNVGG16()
    batch = stack_inputs(random_images(32, CALIBRATION_SEED))
    recalibrate_batchnorm(model, lambda: model.all_exits(batch))
    with torch.no_grad():
        for head, logits in zip(model.heads, model.all_exits(batch)):
            scale_linear(head.linear, exit_temperature(logits, confident(model.threshold), 0.25))
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
