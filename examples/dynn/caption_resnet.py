"""Image captioning with a ResNet encoder and an LSTM decoder (Show and Tell style).

A CIFAR ResNet-32 encodes the image into a feature vector that initialises the LSTM state;
the decoder generates greedily from the start token while the last word is not the end
token, and stops anyway after ``max_len`` words.  The output's length depends on the input.

Control flow: a ``while`` loop whose condition reads tensor data
(``token.item() != end_token``) and a ``break`` when the caption reaches ``max_len`` words.
"""
from __future__ import annotations

import torch
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    calibrate_end_token,
    cifar_resnet_blocks,
    conv_bn,
    random_images,
    recalibrate_batchnorm,
    stack_inputs,
)


class ResNetCaptioner(nn.Module):
    def __init__(self, vocab_size: int = 1000, embed_size: int = 256, hidden_size: int = 512,
                 max_len: int = 16, start_token: int = 1, end_token: int = 2):
        super().__init__()
        self.max_len, self.start_token, self.end_token = max_len, start_token, end_token
        self.encoder = nn.Sequential(conv_bn(3, 16), *cifar_resnet_blocks(5),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                     nn.Linear(64, embed_size))
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
        while token.item() != self.end_token:
            h, c = self.lstm(self.embed(token), (h, c))
            token = self.vocab(h).argmax(dim=1)
            tokens.append(token)
            if len(tokens) == self.max_len:
                break
        return torch.stack(tokens, dim=1)


def make_model() -> nn.Module:
    """Random captioner that stops before ``max_len`` words for about 60% of images."""
    torch.manual_seed(0)
    model = ResNetCaptioner()
    batch = stack_inputs(random_images(32, CALIBRATION_SEED))
    recalibrate_batchnorm(model, lambda: model.encoder(batch))
    calibrate_end_token(model, batch, 0.6)
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
