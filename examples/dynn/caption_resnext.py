"""Image captioning with a ResNeXt encoder and an LSTM decoder (Show and Tell style).

A ResNeXt-29 (cardinality 8, bottleneck width 4) encodes the 32x32 image into a feature
vector that initialises the LSTM state; the decoder then generates greedily from the start
token, one word per step, until it produces the end token or reaches ``max_len`` words.
The number of generated words, hence the output's shape, depends on the input.

Control flow: ``while len(tokens) < max_len`` with a ``break`` on the end token (tested
with ``.item()``); tokens collected in a Python list and concatenated at the end.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    calibrate_end_token,
    conv_bn,
    random_images,
    recalibrate_batchnorm,
    stack_inputs,
)

CARDINALITY = 8
BOTTLENECK_WIDTH = 4
STAGE_WIDTHS = (128, 256, 512)
BLOCKS_PER_STAGE = 3


class ResNeXtBlock(nn.Module):
    """Bottleneck with a grouped 3x3 convolution (aggregated residual transformations)."""

    def __init__(self, in_channels: int, out_channels: int, inner: int, stride: int):
        super().__init__()
        self.residual = nn.Sequential(
            conv_bn(in_channels, inner, kernel_size=1),
            conv_bn(inner, inner, stride=stride, groups=CARDINALITY),
            conv_bn(inner, out_channels, kernel_size=1, relu=False))
        self.shortcut = (conv_bn(in_channels, out_channels, 1, stride, relu=False)
                         if stride != 1 or in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(x) + self.shortcut(x))


def resnext29(feature_size: int) -> nn.Sequential:
    """ResNeXt-29 (8x4d) for 32x32 images, ending in a ``feature_size`` vector."""
    layers: list[nn.Module] = [conv_bn(3, 64)]
    in_channels = 64
    for stage, width in enumerate(STAGE_WIDTHS):
        inner = CARDINALITY * BOTTLENECK_WIDTH * 2 ** stage
        for index in range(BLOCKS_PER_STAGE):
            stride = 2 if stage > 0 and index == 0 else 1
            layers.append(ResNeXtBlock(in_channels, width, inner, stride))
            in_channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, feature_size)]
    return nn.Sequential(*layers)


class ResNeXtCaptioner(nn.Module):
    def __init__(self, vocab_size: int = 1000, embed_size: int = 256, hidden_size: int = 512,
                 max_len: int = 16, start_token: int = 1, end_token: int = 2):
        super().__init__()
        self.max_len, self.start_token, self.end_token = max_len, start_token, end_token
        self.encoder = resnext29(embed_size)
        self.init_h = nn.Linear(embed_size, hidden_size)
        self.init_c = nn.Linear(embed_size, hidden_size)
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.lstm = nn.LSTMCell(embed_size, hidden_size)
        self.vocab = nn.Linear(hidden_size, vocab_size)

    def init_state(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial LSTM state computed from the image features."""
        return torch.tanh(self.init_h(features)), torch.tanh(self.init_c(features))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, c = self.init_state(self.encoder(image))
        token = torch.full((1,), self.start_token)
        tokens = []
        while len(tokens) < self.max_len:
            h, c = self.lstm(self.embed(token), (h, c))
            token = self.vocab(h).argmax(dim=1)
            tokens.append(token)
            if token.item() == self.end_token:
                break
        return torch.cat(tokens)


def make_model() -> nn.Module:
    """Random captioner that stops before ``max_len`` words for about 60% of images."""
    torch.manual_seed(0)
    model = ResNeXtCaptioner()
    batch = stack_inputs(random_images(32, CALIBRATION_SEED))
    recalibrate_batchnorm(model, lambda: model.encoder(batch))
    calibrate_end_token(model, batch, 0.6)
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
