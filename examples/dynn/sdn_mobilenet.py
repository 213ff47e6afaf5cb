"""Shallow-Deep Network (SDN) on MobileNet (v1, CIFAR variant) (Kaya et al., ICML 2019).

Thirteen depthwise-separable blocks; an internal classifier (IC) follows every second block.
The exit test lives in a helper method, ``_early_exit``, which returns the IC's logits when
the IC is confident and ``None`` otherwise, so ``forward`` branches on an ``Optional``.

Control flow: ``for`` over ``zip(blocks, heads)`` with a static ``if head is None: continue``
for blocks without an IC, a helper with its own ``if``/``return``, ``is not None`` test on
its result, early ``return``.
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

# (out_channels, stride) of MobileNet's 13 depthwise-separable blocks at CIFAR resolution.
MOBILENET_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                    (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


def depthwise_separable(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """3x3 depthwise convolution followed by a 1x1 pointwise convolution."""
    return nn.Sequential(conv_bn(in_channels, in_channels, stride=stride, groups=in_channels),
                         conv_bn(in_channels, out_channels, kernel_size=1))


class SDNMobileNet(nn.Module):
    """MobileNet whose 2nd, 4th, ..., 12th blocks carry an internal classifier."""

    def __init__(self, num_classes: int = 10, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold
        self.stem = conv_bn(3, 32)
        blocks, heads = [], []
        in_channels, size = 32, 32
        for index, (channels, stride) in enumerate(MOBILENET_BLOCKS):
            blocks.append(depthwise_separable(in_channels, channels, stride))
            size //= stride
            in_channels = channels
            has_head = index % 2 == 1
            heads.append(InternalClassifier(channels, size, num_classes) if has_head else None)
        self.blocks = nn.ModuleList(blocks)
        self.heads = nn.ModuleList(heads)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(in_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block, head in zip(self.blocks, self.heads):
            x = block(x)
            if head is None:
                continue
            logits = self._early_exit(x, head)
            if logits is not None:
                return logits
        return self.classifier(x)

    def _early_exit(self, x: torch.Tensor, head: nn.Module) -> torch.Tensor | None:
        """The IC's logits if its top softmax probability reaches the threshold, else None."""
        logits = head(x)
        if F.softmax(logits, dim=1).max() >= self.threshold:
            return logits
        return None

    def all_exits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every IC and of the final classifier (the SDN training objective)."""
        outputs = []
        x = self.stem(x)
        for block, head in zip(self.blocks, self.heads):
            x = block(x)
            if head is not None:
                outputs.append(head(x))
        outputs.append(self.classifier(x))
        return outputs


def make_model() -> nn.Module:
    """Random MobileNet-SDN whose ICs each stop about a quarter of the inputs reaching them."""
    torch.manual_seed(0)
    model = SDNMobileNet()
    batch = stack_inputs(random_images(32, CALIBRATION_SEED))
    recalibrate_batchnorm(model, lambda: model.all_exits(batch))
    heads = [head for head in model.heads if head is not None]
    with torch.no_grad():
        for head, logits in zip(heads, model.all_exits(batch)):
            scale_linear(head.linear, exit_temperature(logits, confident(model.threshold), 0.25))
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
