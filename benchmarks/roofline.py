"""Achieved GFLOP/s of the compiled models against the machine's peak, measured in the run.

- **Peak**: the best of a few fp32 `torch.mm` of 1024 x 1024 matrices on all threads,
  timed in the same run as the models (the machine's practical matmul peak, which is what
  a convolution or linear layer can reach).
- **Work**: the floating-point operations eager PyTorch runs per call, counted by
  `torch.utils.flop_counter.FlopCounterMode` (convolutions, matmuls, attention: the ops
  that dominate these models; elementwise ops count 0), averaged over the sample inputs,
  whose paths differ in work.
- **Achieved**: work / median latency, for eager and ours; `% of peak` is ours.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

PEAK_SIZE = 1024


def measured_peak_gflops(repeats: int = 8) -> float:
    """The best fp32 matmul rate of this machine now, in GFLOP/s."""
    a, b = torch.randn(PEAK_SIZE, PEAK_SIZE), torch.randn(PEAK_SIZE, PEAK_SIZE)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * PEAK_SIZE**3 / best / 1e9


class Uncountable(Exception):
    """FlopCounterMode cannot run the model (`torch.while_loop` under it returns
    NotImplemented in torch 2.13)."""


def model_gflop(model: torch.nn.Module, inputs: Sequence[tuple]) -> float:
    """Mean GFLOP per call of `model` over `inputs`, as eager runs it."""
    total = 0
    for args in inputs:
        counter = FlopCounterMode(display=False)
        try:
            with torch.no_grad(), counter:
                model(*args)
        except Exception as error:  # noqa: BLE001 - any failure of the counting mode
            raise Uncountable(f"{type(error).__name__}: {str(error)[:120]}") from None
        total += counter.get_total_flops()
    return total / max(len(inputs), 1) / 1e9


def achieved_gflops(gflop: float | None, latency_ms: float | None) -> float | None:
    if not gflop or not latency_ms:
        return None
    return gflop / (latency_ms / 1e3)


def roofline_chart(results: Sequence[Any], batch: int, path) -> None:
    """Achieved GFLOP/s of eager and ours per model at `batch`, with the measured peak."""
    from benchmarks.charts import pyplot

    plt = pyplot()
    rows = [r for r in results if r.batch == batch and r.gflop_per_call]
    if not rows:
        return
    figure, axes = plt.subplots(figsize=(max(8, len(rows) * 0.9), 4.5))
    for offset, system in enumerate(("eager", "ours")):
        values = [achieved_gflops(r.gflop_per_call, r.latency_ms.get(system)) or 0.0
                  for r in rows]
        positions = [i + (offset - 0.5) * 0.4 for i in range(len(rows))]
        axes.bar(positions, values, 0.4, label=system)
        if system == "ours":
            for position, value, row in zip(positions, values, rows):
                if value and row.peak_gflops:
                    axes.annotate(f"{100 * value / row.peak_gflops:.0f}%", (position, value),
                                  ha="center", va="bottom", fontsize=7)
    peak = max(r.peak_gflops or 0.0 for r in rows)
    axes.axhline(peak, color="red", linestyle="--", linewidth=0.8,
                 label=f"measured matmul peak {peak:.0f} GFLOP/s")
    axes.set_xticks(range(len(rows)), [r.model for r in rows], rotation=40, ha="right")
    axes.set_ylabel(f"achieved GFLOP/s at batch {batch} (% of peak: ours)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
