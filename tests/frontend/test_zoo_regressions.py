"""Regressions found while adding the zoo's models (examples/dynn): each construct as the
models write it, compared with eager on both backends."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import nn

from tests.frontend.conftest import BACKENDS, check_backend

backends = pytest.mark.parametrize("backend", BACKENDS)


class ManyCarriedTensors(nn.Module):
    """ACT-style halting loop whose state is made in `forward` with `torch.zeros`: the first
    iteration's condition folds (unrolled), the rest is staged with nine tensor names that
    the body rebinds. The loop used to be restaged once per rebound name and to give up
    after eight ("loop-carried types did not settle")."""

    def forward(self, u):
        halting = torch.zeros(1)
        a, b, c, d = torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1)
        e, f, g, h = torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1)
        n = 0
        while (halting < 0.99).any() and n < 6:
            p = torch.sigmoid(u.sum(1) * (n + 1))
            a = a + 2 * p
            b = b + a
            c = c + b
            d = d + c
            e = e + d
            f = f + e
            g = g + f
            h = h + g
            halting = halting + p
            n += 1
        return a + b + c + d + e + f + g + h, n


@backends
def test_a_while_loop_rebinding_many_carried_tensors(backend):
    samples = [(torch.full((1, 4), v),) for v in (-2.0, -0.5, 0.0, 1.0, 3.0)]
    check_backend(ManyCarriedTensors(), samples[0], samples, backend)


class Scored(NamedTuple):
    logits: torch.Tensor
    score: float


class NamedTupleJoin(nn.Module):
    """A beam search's hypothesis: a named tuple assigned on both paths of a branch, its
    fields read after the join (it used to be "it is Scored on another")."""

    def forward(self, x):
        if x.sum() > 0:
            best = Scored(x * 2, 1.0)
        else:
            best = Scored(x - 1, 3.0)
        return best.logits + best.score, best.score


class TensorOfRunTimeNumbers(nn.Module):
    """`torch.tensor([...])` of host numbers (`int(t)`, `float(t)`): torch.tensor used to
    run on the traced values, and torch-mlir refused ("its data is not allocated yet")."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(8, 3)

    def forward(self, x):
        word = int(x.argmax())
        top = float(x.max())
        ids = torch.tensor([word, word + 1, 0])
        mixed = torch.tensor([top, 2.0, word], dtype=torch.float64)
        return self.embed(ids) * torch.tensor(top), mixed, torch.tensor(word)


@backends
def test_a_named_tuple_merged_from_both_arms(backend):
    samples = [(torch.full((1, 3), v),) for v in (-1.0, 2.0, 0.5, -3.0)]
    check_backend(NamedTupleJoin(), samples[0], samples, backend)


class ReturnsScored(nn.Module):
    def forward(self, x):
        return Scored(x * 2, 1.0) if x.sum() > 0 else Scored(x - 1, 3.0)


@backends
def test_returning_a_named_tuple_that_differs_by_path(backend):
    """Refused until the result tree could name a record class; now a `Scored`."""
    samples = [(torch.full((1, 3), v),) for v in (-1.0, 2.0)]
    check_backend(ReturnsScored(), samples[0], samples, backend)


@backends
def test_torch_tensor_of_run_time_numbers(backend):
    samples = [(torch.randn(1, 7, generator=torch.Generator().manual_seed(s)),) for s in range(6)]
    check_backend(TensorOfRunTimeNumbers().eval(), samples[0], samples, backend)
