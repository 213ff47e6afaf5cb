"""The codegen pipeline is the registry's `DEFAULT_PIPELINE`, read when a program is
compiled: a pass added to it runs under `frontends.torch.compile` (LLVM backend), and the
outlined-program cache is keyed by the pipeline text as well as by the program."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, UnitAttr
from xdsl.passes import ModulePass

import frontends.torch as ft
from passes import registry

MARK = "test.marked"
RUNS: list[int] = []


@dataclass(frozen=True)
class MarkModule(ModulePass):
    """Marks the module with a unit attribute, so a test can see the pass ran."""

    name = "mark-module"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        RUNS.append(len(list(op.walk())))
        op.attributes[MARK] = UnitAttr()


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        if h.sum() > 0:
            return torch.relu(h)
        return -h


def _with_mark(monkeypatch) -> None:
    monkeypatch.setitem(registry.PASSES, MarkModule.name, MarkModule)
    monkeypatch.setattr(
        registry, "DEFAULT_PIPELINE", f"{MarkModule.name},{registry.DEFAULT_PIPELINE}"
    )


def test_a_pass_added_to_the_default_pipeline_runs_under_compile(monkeypatch, tmp_path):
    torch.manual_seed(0)
    model = Gate().eval()
    x = torch.randn(1, 4)
    RUNS.clear()
    with monkeypatch.context() as patch:
        _with_mark(patch)
        program = ft.compile(model, (x,), cache_dir=tmp_path)
        assert len(RUNS) == 1 and MARK in program.module.attributes
        assert "dy.graph" in program.ir  # the rest of the pipeline ran after it
        for sample in (x, -x, torch.randn(1, 4)):
            torch.testing.assert_close(program(sample), model(sample))
    plain = ft.compile(model, (x,), cache_dir=tmp_path)
    assert len(RUNS) == 1 and MARK not in plain.module.attributes  # another cache entry
    with monkeypatch.context() as patch:
        _with_mark(patch)
        again = ft.compile(model, (x,), cache_dir=tmp_path)
    assert len(RUNS) == 1 and MARK in again.module.attributes  # its entry, from the cache


def test_the_interpreter_backend_runs_the_program_as_converted(monkeypatch):
    """The reference backend is the oracle of the frontend: no pipeline runs before it."""
    RUNS.clear()
    _with_mark(monkeypatch)
    model = Gate().eval()
    program = ft.compile(model, (torch.randn(1, 4),), backend="interpreter", cache_dir=None)
    assert RUNS == [] and "dy.graph" not in program.ir
