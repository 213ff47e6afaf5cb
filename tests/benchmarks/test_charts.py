"""The benchmark charts are drawn from results, failures and missing systems included."""

from __future__ import annotations

import pytest
import torch

from benchmarks import charts, roofline
from benchmarks.__main__ import ModelResult


def _result(model: str, batch: int, eager: float, ours: float | None, **notes: str):
    result = ModelResult(model, batch, cold_compile_s=12.5, warm_compile_s=0.2)
    result.latency_ms = {"eager": eager, "eager-1t": eager * 1.2, "ours": ours,
                         "torch.compile": None, "torchscript": eager / 1.1}
    result.notes = dict(notes)
    return result


def test_geomean_skips_missing_values():
    assert charts.geomean([2.0, None, 8.0]) == pytest.approx(4.0)
    assert charts.geomean([None]) is None


def test_speedup_and_compile_charts_are_written(tmp_path):
    results = [
        _result("fast", 1, 4.0, 1.0),
        _result("slow", 1, 1.0, 2.0, **{"torch.compile": "RuntimeError: boom"}),
        _result("batched", 8, 8.0, 4.0),
    ]
    for batch in (1, 8):
        path = tmp_path / f"speedup_b{batch}.png"
        charts.speedup_chart(results, batch, path)
        assert path.stat().st_size > 10_000
    charts.compile_chart(results, tmp_path / "compile.png")
    assert (tmp_path / "compile.png").stat().st_size > 10_000


def test_roofline_counts_eager_work_and_draws_it(tmp_path):
    model = torch.nn.Linear(64, 32)
    inputs = [(torch.randn(4, 64),), (torch.randn(8, 64),)]
    assert roofline.model_gflop(model, inputs) == pytest.approx(2 * 64 * 32 * 6 / 1e9)
    assert roofline.achieved_gflops(2.0, 500.0) == pytest.approx(4.0)
    assert roofline.achieved_gflops(None, 500.0) is None
    assert roofline.measured_peak_gflops(repeats=2) > 0
    results = [_result("fast", 1, 4.0, 1.0), _result("slow", 1, 1.0, 2.0)]
    for result in results:
        result.gflop_per_call, result.peak_gflops = 0.5, 100.0
    roofline.roofline_chart(results, 1, tmp_path / "roofline_b1.png")
    assert (tmp_path / "roofline_b1.png").stat().st_size > 10_000
