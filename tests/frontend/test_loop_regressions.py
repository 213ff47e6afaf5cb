"""Regressions of staged loops found on the zoo's models (examples/dynn)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.frontend.conftest import BACKENDS, check_backend


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


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_while_loop_rebinding_many_carried_tensors(backend):
    samples = [(torch.full((1, 4), v),) for v in (-2.0, -0.5, 0.0, 1.0, 3.0)]
    check_backend(ManyCarriedTensors(), samples[0], samples, backend)
