"""PABEE: patience-based early exit on a small BERT encoder (Zhou et al., NeurIPS 2020).

A 12-layer BERT-style encoder (hidden 128, 4 heads) for two-class sentence classification,
with a classifier (pooler + linear) on the [CLS] position after every layer.  Inference stops
as soon as ``patience`` consecutive classifiers agree with the one before them, and returns
the current logits; otherwise all 12 layers run.

Control flow: ``for`` over ``zip(layers, classifiers)``; an ``if`` combining an ``is not None``
test with ``torch.all(...)`` (short-circuit ``and``) that increments or resets a Python int
counter; ``if counter == patience: break``; ``logits`` is defined inside the loop and
returned after it.
"""
from __future__ import annotations

import torch
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    TextEmbedding,
    TransformerLayer,
    random_token_ids,
    stack_inputs,
)

VOCAB_SIZE = 1000
SEQUENCE_LENGTH = 32


class PABEEBert(nn.Module):
    def __init__(self, num_layers: int = 12, hidden: int = 128, heads: int = 4,
                 ffn: int = 512, num_classes: int = 2, patience: int = 3):
        super().__init__()
        self.patience = patience
        self.embedding = TextEmbedding(VOCAB_SIZE, SEQUENCE_LENGTH, hidden)
        self.layers = nn.ModuleList(TransformerLayer(hidden, heads, ffn)
                                    for _ in range(num_layers))
        self.classifiers = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, num_classes))
            for _ in range(num_layers))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = self.embedding(ids)
        patience_counter = 0
        previous = None
        for layer, classifier in zip(self.layers, self.classifiers):
            hidden = layer(hidden)
            logits = classifier(hidden[:, 0])
            labels = logits.argmax(dim=1)
            if previous is not None and torch.all(labels.eq(previous)):
                patience_counter += 1
            else:
                patience_counter = 0
            previous = labels
            if patience_counter == self.patience:
                break
        return logits


def make_model() -> nn.Module:
    """Random PABEE model whose classifiers each predict both classes equally often.

    Balanced classifiers make consecutive agreement a matter of the input, so some inputs
    exit early and others run every layer.
    """
    torch.manual_seed(0)
    model = PABEEBert().eval()
    batch = stack_inputs(random_token_ids(32, CALIBRATION_SEED, VOCAB_SIZE, SEQUENCE_LENGTH))
    with torch.no_grad():
        hidden = model.embedding(batch)
        for layer, classifier in zip(model.layers, model.classifiers):
            hidden = layer(hidden)
            logits = classifier(hidden[:, 0])
            classifier[-1].bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    return model


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_token_ids(n, seed, VOCAB_SIZE, SEQUENCE_LENGTH)
