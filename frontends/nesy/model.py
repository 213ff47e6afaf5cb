"""A small VGG-style CNN whose last convolutional layer feeds the rules.

Two VGG blocks (two 3x3 conv + BN + ReLU, then 2x2 max-pool) and a final
3x3 conv layer of ``n_filters`` filters: the layer NeSyFOLD binarizes. The
head is global average pooling and one linear layer, so the class decision
depends on the filters only through their spatial means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class CnnConfig:
    in_channels: int
    n_classes: int
    widths: tuple[int, int] = (16, 32)
    n_filters: int = 64

    def to_json_dict(self) -> dict:
        return asdict(self)


def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class VggCnn(nn.Module):
    """``forward`` returns the logits and the last conv layer's feature maps."""

    def __init__(self, config: CnnConfig):
        super().__init__()
        self.config = config
        first, second = config.widths
        self.features = nn.Sequential(
            *_conv(config.in_channels, first),
            *_conv(first, first),
            nn.MaxPool2d(2),
            *_conv(first, second),
            *_conv(second, second),
            nn.MaxPool2d(2),
        )
        self.last_conv = nn.Sequential(*_conv(second, config.n_filters))
        self.classifier = nn.Linear(config.n_filters, config.n_classes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.last_conv(self.features(images))
        return self.classifier(maps.mean(dim=(2, 3))), maps


BINARIZATIONS = ("rms", "nesyfold")
"""How a feature map becomes the number a threshold is applied to (see ``binarization_norms``)."""


def filter_norms(maps: torch.Tensor) -> torch.Tensor:
    """Per-image, per-filter RMS of the feature maps: (N, K, H, W) -> (N, K).

    The Frobenius (entrywise L2) norm divided by sqrt(H*W), so that its scale does not
    depend on the image size; differentiable everywhere, which the sparsity loss needs.
    """
    if maps.ndim != 4:
        raise ValueError(f"feature maps must be (N, K, H, W), got {tuple(maps.shape)}")
    return maps.pow(2).mean(dim=(2, 3)).add(1e-12).sqrt()


def binarization_norms(maps: torch.Tensor, binarization: str = "rms") -> torch.Tensor:
    """The per-filter numbers the binarization thresholds apply to.

    ``rms``: :func:`filter_norms` (ours, compared with ``>``). ``nesyfold``: what
    NeSyFOLD's code computes, ``torch.linalg.norm(maps, ord=2, dim=(2, 3))``, i.e. the
    spectral norm (largest singular value) of each H x W map, compared with ``>=``.
    """
    if binarization == "rms":
        return filter_norms(maps)
    if binarization == "nesyfold":
        return torch.linalg.norm(maps, ord=2, dim=(2, 3))
    raise ValueError(f"unknown binarization '{binarization}' (expected {', '.join(BINARIZATIONS)})")
