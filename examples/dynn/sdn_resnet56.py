"""Shallow-Deep Network (SDN) on ResNet-56 for CIFAR-10 (Kaya et al., ICML 2019).

27 basic blocks in three stages; internal classifiers (ICs) follow six of them, spread at
roughly 15%, 30%, ... 90% of the depth as in the paper.  The network returns the logits of
the first IC whose softmax confidence reaches the threshold (0.5).

Control flow: ``for i, block in enumerate(blocks)``; a static membership test
``str(i) in self.heads`` (constant once the loop is unrolled); a ``.item()`` comparison;
early ``return`` from inside the loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    InternalClassifier,
    cifar_resnet_blocks,
    confident,
    conv_bn,
    exit_temperature,
    random_images,
    recalibrate_batchnorm,
    scale_linear,
    stack_inputs,
)

EXIT_AFTER_BLOCKS = (3, 7, 11, 15, 19, 23)  # 0-based indices of the blocks with an IC


class SDNResNet56(nn.Module):
    def __init__(self, num_classes: int = 10, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold
        self.stem = conv_bn(3, 16)
        self.blocks = nn.ModuleList(cifar_resnet_blocks(9))
        # Block i sits in stage i // 9: width 16 * 2**stage on a (32 / 2**stage)^2 map.
        self.heads = nn.ModuleDict({
            str(i): InternalClassifier(16 << (i // 9), 32 >> (i // 9), num_classes)
            for i in EXIT_AFTER_BLOCKS})
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if str(i) in self.heads:
                logits = self.heads[str(i)](x)
                if F.softmax(logits, dim=1).max().item() >= self.threshold:
                    return logits
        return self.classifier(x)

    def all_exits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every IC and of the final classifier (the SDN training objective)."""
        outputs = []
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if str(i) in self.heads:
                outputs.append(self.heads[str(i)](x))
        outputs.append(self.classifier(x))
        return outputs


def make_model() -> nn.Module:
    """Random ResNet-56-SDN whose ICs each stop about a quarter of the inputs reaching them."""
    torch.manual_seed(0)
    model = SDNResNet56()
    batch = stack_inputs(random_images(32, CALIBRATION_SEED))
    recalibrate_batchnorm(model, lambda: model.all_exits(batch))
    with torch.no_grad():
        for head, logits in zip(model.heads.values(), model.all_exits(batch)):
            scale_linear(head.linear, exit_temperature(logits, confident(model.threshold), 0.25))
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
