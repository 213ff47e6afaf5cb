"""Exits at any depth and return values that differ between paths (docs/frontend.md,
"Exits"), and host computations on lists of run-time values, in the styles research code
uses: a method that is not forward called from a wrapper, numpy on confidences, lists that
grow in nested loops, thresholds passed as a Python list."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.frontend.conftest import BACKENDS, check_backend

backends = pytest.mark.parametrize("backend", BACKENDS)


class Exits(nn.Module):
    """Shallow-deep style: internal classifiers after blocks; the first confident one
    answers from inside a loop of a helper method; otherwise numpy's argmax over the
    confidences picks the most confident output."""

    def __init__(self, threshold: float = 0.6):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(6, 6) for _ in range(3))
        self.heads = nn.ModuleList(nn.Linear(6, 4) for _ in range(3))
        self.threshold = threshold

    def early_exit(self, x):
        outputs, confidences = [], []
        output_id = 0
        for block, head in zip(self.blocks, self.heads):
            x = torch.relu(block(x))
            output = head(x)
            outputs.append(output)
            confidence = torch.max(F.softmax(output[0], dim=0))
            confidences.append(confidence)
            if confidence >= self.threshold:
                return output, output_id, True
            output_id += 1
        best = np.argmax(confidences)
        return outputs[best], best, False


class ExitsAsForward(Exits):
    def forward(self, x):
        return self.early_exit(x)


class Wrapper(nn.Module):
    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x):
        return self.network.early_exit(x)


def exit_samples() -> list[tuple]:
    generator = torch.Generator().manual_seed(3)
    return [(torch.randn(1, 6, generator=generator) * s,) for s in (0.01, 0.5, 2, 4, 8, 16, 40)]


@backends
@pytest.mark.parametrize("style", ["forward", "wrapper"])
def test_return_from_a_loop_of_a_helper_and_numpy_on_host_values(backend, style):
    torch.manual_seed(4)
    network = ExitsAsForward(0.7).eval()
    model = network if style == "forward" else Wrapper(network).eval()
    samples = exit_samples()
    with torch.no_grad():
        outcomes = {tuple(int(v) for v in model(*s)[1:]) for s in samples}
    assert len(outcomes) >= 4, outcomes
    check_backend(model, samples[0], samples, backend)


class Decoder(nn.Module):
    """Captioning style: the sequence grows with torch.cat each step; a return from inside
    the data-dependent loop of a method called from forward."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(8, 8)
        self.cell = nn.GRUCell(8, 8)
        self.out = nn.Linear(8, 8)
        self.end = 0

    def decode(self, h):
        word = torch.ones(1, dtype=torch.long)
        sequence = word.unsqueeze(1)
        step = 0
        while step < 10:
            h = self.cell(self.embed(word), h)
            word = self.out(h).argmax(1)
            sequence = torch.cat([sequence, word.unsqueeze(1)], dim=1)
            if word[0] == self.end:
                return sequence
            step += 1
        return sequence

    def forward(self, h):
        return self.decode(h)


@backends
def test_return_from_a_staged_loop_of_a_helper_with_a_growing_result(backend):
    torch.manual_seed(2)
    model = Decoder().eval()
    samples = [(torch.randn(1, 8) * s,) for s in (0.1, 1, 2, 3, 5, 8, 13)]
    with torch.no_grad():
        lengths = {model(*s).shape[1] for s in samples}
    assert len(lengths) > 1, lengths
    check_backend(model, samples[0], samples, backend)


class Anytime(nn.Module):
    """RANet style: outputs appended in nested loops, returned from inside the loop when
    confident, thresholds given as a Python list argument of forward."""

    def __init__(self):
        super().__init__()
        self.scales = nn.ModuleList(
            nn.ModuleList(nn.Linear(4, 4) for _ in range(2)) for _ in range(2)
        )
        self.classifier = nn.Linear(4, 3)

    def forward(self, x, thresholds):
        results = []
        index = 0
        for scale in self.scales:
            for layer in scale:
                x = torch.tanh(layer(x))
                logits = self.classifier(x)
                results.append(logits)
                if F.softmax(logits, -1).max() > thresholds[index]:
                    return results
                index += 1
        return results


@backends
def test_lists_of_different_lengths_returned_and_static_list_arguments(backend):
    torch.manual_seed(3)
    model = Anytime().eval()
    thresholds = [0.5, 0.45, 0.4, 0.35]
    samples = [(torch.randn(1, 4) * s, thresholds) for s in (0.1, 1.0, 3.0, 10.0, 30.0, 0.3, 5.0)]
    with torch.no_grad():
        lengths = {len(model(*s)) for s in samples}
    assert len(lengths) > 1, lengths
    check_backend(model, samples[0], samples, backend)


class Skips(nn.Module):
    """SkipNet style: gate masks collected in a list, the last one deleted; torch.equal as
    a condition; break and continue in one loop."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(4))
        self.gates = nn.ModuleList(nn.Linear(4, 1) for _ in range(4))

    def forward(self, x):
        masks = []
        for block, gate in zip(self.blocks, self.gates):
            mask = (torch.sigmoid(gate(x)) > 0.5).float()
            masks.append(mask.squeeze())
            if mask.sum() == 0:
                continue
            x = torch.relu(block(x)) * mask + x * (1 - mask)
            if torch.equal(mask, torch.ones_like(mask)) and x.sum() > 20:
                break
        del masks[-1]
        return x, masks


@backends
def test_continue_break_del_and_torch_equal(backend):
    torch.manual_seed(4)
    samples = [(torch.randn(1, 4) * s,) for s in (0.1, 1.0, 3.0, 10.0, 30.0, -5.0)]
    check_backend(Skips().eval(), samples[0], samples, backend, require_coverage=False)
