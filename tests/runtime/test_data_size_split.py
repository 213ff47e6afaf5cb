"""A sub-graph whose result sizes depend on its own data (a shrinking batch, `x[mask]`) is
compiled as two pieces, so the size is read from an input rather than recomputed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import frontends.torch as dynn
from ir import dy
from ir.program import print_module
from runtime import segments
from runtime.program import outlined_program


class ShrinkingBatch(nn.Module):
    """Per-sample early exit in miniature: the samples whose score passes the threshold
    leave; the others go through a second layer (`x[active]`, `idx[active]`)."""

    def __init__(self):
        super().__init__()
        self.first, self.second = nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.first(x))
        active = h.sum(dim=1) > 0
        idx = torch.arange(x.shape[0])[active]
        return self.second(h[active]), idx


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return ShrinkingBatch().eval()


def _graph_with_data_sizes(module) -> dy.GraphOp:
    graphs = [op for op in module.ops if isinstance(op, dy.GraphOp)
              and any(dy.op_name(inner) in segments.DATA_SCALAR_OPS
                      for inner in op.body.block.ops)]
    assert len(graphs) == 1
    return graphs[0]


def _names(piece: segments.Piece) -> set[str]:
    return {dy.op_name(op) for op in piece.graph.body.block.ops}


def test_the_size_computation_and_its_uses_are_separate_pieces(model, tmp_path):
    conversion = dynn.convert(model, (torch.randn(8, 6),), dynamic=True, cache_dir=None)
    module = outlined_program(print_module(conversion.module), None)
    pieces = segments.split_at_data_sizes(_graph_with_data_sizes(module))
    assert pieces is not None and len(pieces) == 2
    first, second = (_names(p) for p in pieces)
    assert "torch.aten.tanh" in first and "torch.aten.tanh" not in second
    assert not first & set(segments.DATA_SCALAR_OPS)
    assert second & set(segments.DATA_SCALAR_OPS)
    assert segments.split_at_data_sizes(pieces[1].graph) is None


def test_split_program_agrees_with_eager_on_every_size(model, tmp_path):
    program = dynn.compile(model, (torch.randn(8, 6),), backend="llvm", cache_dir=tmp_path,
                           dynamic=True)
    assert program.stats.fallback == 0 and program.stats.compiled >= 2
    generator = torch.Generator().manual_seed(3)
    kept = set()
    with torch.no_grad():
        for size in (1, 2, 5, 8, 8, 16, 16):
            x = torch.randn(size, 6, generator=generator)
            (want, want_idx), (got, got_idx) = model(x), program(x)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
            assert torch.equal(got_idx, want_idx)
            kept.add(want.shape[0])
    assert len(kept) > 3
