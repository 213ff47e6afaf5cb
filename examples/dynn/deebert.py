"""DeeBERT: entropy-based early exit on a small BERT encoder (Xin et al., ACL 2020).

A 12-layer BERT-style encoder (hidden 128, 4 heads) for two-class sentence classification.
After each of the first 11 layers an "off-ramp" (pooler + linear on [CLS]) classifies; the
model returns the first off-ramp's logits whose prediction entropy is below the threshold,
else the final classifier's after layer 12.  The exit test is batch-safe: it requires every
sample in the batch to be certain.

Control flow: ``for`` over ``zip(layers, off_ramps)``, ``if (entropy < threshold).all()``,
early ``return`` from inside the loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    TextEmbedding,
    TransformerLayer,
    exit_temperature,
    low_entropy,
    random_token_ids,
    scale_linear,
    stack_inputs,
)

VOCAB_SIZE = 1000
SEQUENCE_LENGTH = 32


def classifier_head(hidden: int, num_classes: int) -> nn.Sequential:
    """BERT pooler (dense + tanh on [CLS]) followed by a linear classifier."""
    return nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, num_classes))


class DeeBERT(nn.Module):
    def __init__(self, num_layers: int = 12, hidden: int = 128, heads: int = 4,
                 ffn: int = 512, num_classes: int = 2, threshold: float = 0.3):
        super().__init__()
        self.threshold = threshold
        self.embedding = TextEmbedding(VOCAB_SIZE, SEQUENCE_LENGTH, hidden)
        self.layers = nn.ModuleList(TransformerLayer(hidden, heads, ffn)
                                    for _ in range(num_layers - 1))
        self.off_ramps = nn.ModuleList(classifier_head(hidden, num_classes)
                                       for _ in range(num_layers - 1))
        self.last_layer = TransformerLayer(hidden, heads, ffn)
        self.classifier = classifier_head(hidden, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = self.embedding(ids)
        for layer, off_ramp in zip(self.layers, self.off_ramps):
            hidden = layer(hidden)
            logits = off_ramp(hidden[:, 0])
            if (self.entropy(logits) < self.threshold).all():
                return logits
        return self.classifier(self.last_layer(hidden)[:, 0])

    @staticmethod
    def entropy(logits: torch.Tensor) -> torch.Tensor:
        """Entropy (nats) of the softmax distribution of each row."""
        log_p = F.log_softmax(logits, dim=1)
        return -(log_p.exp() * log_p).sum(dim=1)


def make_model() -> nn.Module:
    """Random DeeBERT whose off-ramps each stop about 15% of the inputs that reach them."""
    torch.manual_seed(0)
    model = DeeBERT().eval()
    batch = stack_inputs(random_token_ids(32, CALIBRATION_SEED, VOCAB_SIZE, SEQUENCE_LENGTH))
    with torch.no_grad():
        hidden = model.embedding(batch)
        for layer, off_ramp in zip(model.layers, model.off_ramps):
            hidden = layer(hidden)
            scale = exit_temperature(off_ramp(hidden[:, 0]), low_entropy(model.threshold), 0.15)
            scale_linear(off_ramp[-1], scale)
    return model


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_token_ids(n, seed, VOCAB_SIZE, SEQUENCE_LENGTH)
