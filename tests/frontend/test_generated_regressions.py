"""Frontend bugs found by the generated-model differential (`passkit.differential`), each
minimized by hand to the smallest model that shows it, now fixed: each model agrees with
eager. A bug found and not yet fixed is added here as a strict xfail, its internal error
message in `KNOWN_FRONTEND_ERRORS`, so that the bounded differential run tolerates it and
the fix turns the xfail into a failure that removes both."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import frontends.torch as ft

KNOWN_FRONTEND_ERRORS: tuple[str, ...] = ()
"""Internal errors of the bugs below, by message; `tests/frontend/test_generated_models.py`
counts a generated model that fails with one of them as a known bug, not a new one."""



def _agrees(model: nn.Module, backend: str = "interpreter") -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4)
    program = ft.compile(model.eval(), (x,), backend=backend, cache_dir=None)
    for sample in (x, -x, 3 * x):
        with torch.no_grad():
            expected = model(sample)
        torch.testing.assert_close(program(sample), expected)


class TemporaryInThenArm(nn.Module):
    def forward(self, x):
        if x.max() > 1.0:
            t = torch.relu(x)  # noqa: F841 (the dead temporary is the point)
        return x


class TemporaryInElseArm(nn.Module):
    def forward(self, x):
        if x.mean().item() > 0.5:
            x = torch.relu(x)
        else:
            t = x.mean().item()  # noqa: F841 (the dead temporary is the point)
        return x


class TemporaryInUnrolledLoop(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))

    def forward(self, x):
        outs = [x]
        for block in self.blocks:
            if x.mean().item() > 0.5:
                x = block(x)
            else:
                t = x.mean().item()  # noqa: F841 (the dead temporary is the point)
        return torch.stack(outs, dim=0)


class TemporaryInElifChainInUnrolledLoop(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))

    def forward(self, x):
        count = 0
        outs = [x]
        for block in self.blocks:
            if x.mean().item() > 0.5:
                count += 1
            elif bool(x.sum() < -0.3):
                x = torch.relu(x)
            else:
                t = x.mean().item()  # noqa: F841 (the dead temporary is the point)
        return torch.stack(outs, dim=0)


def test_temporary_assigned_in_the_then_arm_only():
    _agrees(TemporaryInThenArm())


def test_temporary_assigned_in_the_else_arm_only():
    _agrees(TemporaryInElseArm())


def test_temporary_assigned_in_one_arm_inside_an_unrolled_loop():
    _agrees(TemporaryInUnrolledLoop())


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_temporary_assigned_in_one_arm_of_an_elif_chain_inside_an_unrolled_loop(backend):
    _agrees(TemporaryInElifChainInUnrolledLoop(), backend)
