"""Beam-search decoding of an image captioner, with Python lists of hypotheses.

A small CNN encodes the image into the initial LSTM state (Show and Tell style).  Beam
search keeps the ``beam_size`` best partial captions, each a ``Hypothesis`` (its tokens, its
summed log-probability and its LSTM state).  Every step extends each unfinished hypothesis
by its ``beam_size`` most likely next words, carries the finished ones (last token = the end
token) over unchanged, and keeps the best candidates by score; decoding stops when every
kept hypothesis has ended or after ``max_len`` steps.  The answer is the hypothesis with the
best length-normalised score, returned as a tensor of token ids whose length depends on the
image.

Control flow: a ``for`` loop over steps left by ``break`` when
``all(h.tokens[-1] == self.end_token for h in beams)``; ``for beam in beams`` over a list
whose length depends on the data; ``if ...: candidates.append(beam); continue``;
``.tolist()`` of the top-k words and their log-probabilities; ``sorted(candidates,
key=lambda b: b.score, reverse=True)[:self.beam_size]``; ``max(beams, key=...)``;
``torch.tensor(best.tokens)``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._common import CALIBRATION_SEED, conv_bn, random_images, recalibrate_batchnorm, stack_inputs


class Hypothesis(NamedTuple):
    tokens: list[int]
    score: float
    h: torch.Tensor
    c: torch.Tensor


class BeamSearchCaptioner(nn.Module):
    def __init__(self, vocab_size: int = 64, embed_size: int = 32, hidden_size: int = 64,
                 beam_size: int = 3, max_len: int = 8, start_token: int = 1,
                 end_token: int = 2):
        super().__init__()
        self.beam_size, self.max_len = beam_size, max_len
        self.start_token, self.end_token = start_token, end_token
        self.encoder = nn.Sequential(conv_bn(3, 16, stride=2), conv_bn(16, 32, stride=2),
                                     conv_bn(32, 32, stride=2), nn.AdaptiveAvgPool2d(1),
                                     nn.Flatten(), nn.Linear(32, embed_size))
        self.init_h = nn.Linear(embed_size, hidden_size)
        self.init_c = nn.Linear(embed_size, hidden_size)
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.lstm = nn.LSTMCell(embed_size, hidden_size)
        self.vocab = nn.Linear(hidden_size, vocab_size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.encoder(image)
        h, c = torch.tanh(self.init_h(features)), torch.tanh(self.init_c(features))
        beams = [Hypothesis([self.start_token], 0.0, h, c)]
        for _ in range(self.max_len):
            candidates = []
            for beam in beams:
                if beam.tokens[-1] == self.end_token:
                    candidates.append(beam)
                    continue
                token = torch.tensor([beam.tokens[-1]])
                h, c = self.lstm(self.embed(token), (beam.h, beam.c))
                log_probs = F.log_softmax(self.vocab(h), dim=-1)
                top_log_probs, top_tokens = log_probs.topk(self.beam_size, dim=-1)
                for log_prob, word in zip(top_log_probs[0].tolist(), top_tokens[0].tolist()):
                    candidates.append(Hypothesis(beam.tokens + [word], beam.score + log_prob,
                                                 h, c))
            beams = sorted(candidates, key=lambda b: b.score, reverse=True)[:self.beam_size]
            if all(b.tokens[-1] == self.end_token for b in beams):
                break
        best = max(beams, key=lambda b: b.score / len(b.tokens))
        return torch.tensor(best.tokens)


@torch.no_grad()
def calibrate_end_word(model: BeamSearchCaptioner, images: torch.Tensor, rate: float) -> None:
    """Raise the end token's bias so that greedy decoding ends early for ``rate`` of images
    (beam search then finishes some hypotheses early and some captions before ``max_len``)."""
    features = model.encoder(images)
    h, c = torch.tanh(model.init_h(features)), torch.tanh(model.init_c(features))
    token = torch.full((images.shape[0],), model.start_token)
    gaps = []
    for _ in range(model.max_len):
        h, c = model.lstm(model.embed(token), (h, c))
        logits = model.vocab(h)
        end_logit = logits[:, model.end_token].clone()
        logits[:, model.end_token] = -float("inf")
        best, token = logits.max(dim=1)
        gaps.append(best - end_logit)
    needed = torch.stack(gaps, dim=1).amin(dim=1)
    model.vocab.bias[model.end_token] += torch.quantile(needed, rate)


def make_model() -> nn.Module:
    """Random captioner whose captions end before ``max_len`` words for some images."""
    torch.manual_seed(0)
    model = BeamSearchCaptioner()
    batch = stack_inputs(random_images(64, CALIBRATION_SEED))
    recalibrate_batchnorm(model, lambda: model.encoder(batch))
    calibrate_end_word(model, batch, 0.5)
    return model


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
