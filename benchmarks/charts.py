"""The charts of `python -m benchmarks`: speed-up over eager per batch size, compile times.

Speed-ups are bars from 1.0x on a log scale (up for faster than eager, down for slower),
each labelled as `2.1x`; a system that failed on a model is marked `failed` where its bar
would be, one that was not run `n/a`; the last group is the geometric mean of each system.
The compile chart shows ours cold (empty cache) and warm per model, with the issue's
targets (10 s cold, 0.3 s warm) as lines.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence
from typing import Any

SPEEDUP_SYSTEMS = ("eager-1t", "torchscript", "torch.compile", "ours")
COLD_TARGET_S = 10.0
WARM_TARGET_S = 0.3


def geomean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in present) / len(present)) if present else None


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def speedup_chart(results: Sequence[Any], batch: int, path: pathlib.Path) -> None:
    """One chart of the speed-ups over eager of the results at `batch`."""
    plt = pyplot()
    rows = [r for r in results if r.batch == batch]
    names = [r.model for r in rows] + ["geomean"]
    width = 0.8 / len(SPEEDUP_SYSTEMS)
    figure, axes = plt.subplots(figsize=(max(8, len(names) * 1.1), 5))
    for offset, system in enumerate(SPEEDUP_SYSTEMS):
        values = [r.speedup(system) for r in rows]
        values.append(geomean(values))
        positions = [i + (offset - (len(SPEEDUP_SYSTEMS) - 1) / 2) * width
                     for i in range(len(names))]
        bars = axes.bar(positions, [(v or 1.0) - 1.0 for v in values], width, bottom=1.0,
                        label=system)
        color = bars.patches[0].get_facecolor()
        for position, value, row in zip(positions, values, [*rows, None]):
            if value is not None:
                axes.annotate(f"{value:.1f}x", (position, value), ha="center", fontsize=6,
                              va="bottom" if value >= 1 else "top", rotation=90,
                              xytext=(0, 2 if value >= 1 else -2), textcoords="offset points")
            elif row is not None:
                failed = system in row.notes or "all systems" in row.notes
                axes.annotate("failed" if failed else "n/a", (position, 1.0), ha="center",
                              va="bottom", fontsize=6, rotation=90,
                              color="red" if failed else color)
        bars.patches[-1].set_hatch("//")
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_yscale("log")
    times = plt.FuncFormatter(lambda value, _: f"{value:g}x")
    axes.yaxis.set_major_formatter(times)
    axes.yaxis.set_minor_formatter(times)
    axes.tick_params(axis="y", which="minor", labelsize=7)
    axes.set_xticks(range(len(names)), names, rotation=40, ha="right")
    axes.set_ylabel(f"speed-up over eager at batch {batch} (log)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def compile_chart(results: Sequence[Any], path: pathlib.Path) -> None:
    """Cold and warm compile time of ours per model (and batch), with the targets."""
    plt = pyplot()
    rows = [r for r in results if r.cold_compile_s is not None]
    names = [r.model if r.batch == 1 else f"{r.model} b{r.batch}" for r in rows]
    figure, axes = plt.subplots(figsize=(8, max(3, len(rows) * 0.35)))
    positions = range(len(rows))
    axes.barh([p - 0.2 for p in positions], [r.cold_compile_s for r in rows], 0.4,
              label="cold (empty cache)")
    axes.barh([p + 0.2 for p in positions], [r.warm_compile_s or 0.0 for r in rows], 0.4,
              label="warm (cache filled)")
    for position, row in zip(positions, rows):
        axes.annotate(f"{row.cold_compile_s:.1f} s", (row.cold_compile_s, position - 0.2),
                      va="center", fontsize=6, xytext=(2, 0), textcoords="offset points")
    axes.axvline(COLD_TARGET_S, color="red", linewidth=0.8, linestyle="--",
                 label=f"cold target {COLD_TARGET_S:g} s")
    axes.axvline(WARM_TARGET_S, color="gray", linewidth=0.8, linestyle=":",
                 label=f"warm target {WARM_TARGET_S:g} s")
    axes.set_xscale("log")
    axes.set_yticks(list(positions), names, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("compile time of ours (s, log)")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
