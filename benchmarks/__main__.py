"""`python -m benchmarks`: every zoo model through eager PyTorch, TorchScript, torch.compile
and our compiler, at batch 1 or on a batch axis.

For each model it measures agreement with eager on sample inputs that take every path, cold
compile time (empty cache) and warm compile time (cache filled) of ours, and the median
latency of every system, timed in interleaved rounds so that machine noise hits all systems
alike. Results go to a Markdown table (printed and written), a JSON file and PNG charts
(`benchmarks.charts`: speed-ups per batch size, compile times); geometric means close the
table.

    python -m benchmarks [--models a,b] [--inputs 20] [--rounds 5] [--out benchmarks/results]
                         [--batches 1,8,32] [--skip torchscript,torch.compile]

With ``--batches``, every model runs at each batch size: an input of batch B stacks B
consecutive sample inputs along dimension 0, and each system is compiled (ours,
torch.compile) for that batch. A model that cannot run a batch on some system is reported
in the notes, never dropped silently.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm import tqdm

import frontends.torch as dynn
from benchmarks import charts, roofline
from examples import dynn as zoo

SYSTEMS = ("eager", "eager-1t", "torchscript", "torch.compile", "ours")
"""`eager-1t` is eager PyTorch on one intra-op thread (and so are our kernels in that round:
they follow torch's thread count), showing how much of a speedup comes from codegen rather
than from the thread count."""


@dataclass
class ModelResult:
    model: str
    batch: int = 1
    agree: bool | None = None
    max_abs_error: float | None = None
    cold_compile_s: float | None = None
    warm_compile_s: float | None = None
    compiled_subgraphs: int | None = None
    compiled_artifacts: int | None = None
    fallback_subgraphs: int | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    gflop_per_call: float | None = None
    peak_gflops: float | None = None

    def speedup(self, system: str) -> float | None:
        eager, other = self.latency_ms.get("eager"), self.latency_ms.get(system)
        return eager / other if eager and other else None


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in _flatten(item)]
    return [value]


def _max_error(expected: Any, actual: Any) -> tuple[bool, float]:
    """Agreement as the tests define it: rtol 1e-4, atol 1e-5, integers exactly."""
    agree, worst = True, 0.0
    for e, a in zip(_flatten(expected), _flatten(actual), strict=True):
        if isinstance(e, torch.Tensor):
            if e.shape != a.shape or e.dtype != a.dtype:
                return False, math.inf
            if e.is_floating_point():
                worst = max(worst, (e - a).abs().max().item() if e.numel() else 0.0)
                agree &= torch.allclose(e, a, rtol=1e-4, atol=1e-5)
            else:
                agree &= torch.equal(e, a)
        else:
            agree &= e == a
    return agree, worst


def _time_round(function: Callable[..., Any], inputs: Sequence[tuple], threads: int) -> list[float]:
    timings = []
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    with torch.no_grad():
        for args in inputs:
            started = time.perf_counter()
            function(*args)
            timings.append(time.perf_counter() - started)
    torch.set_num_threads(default_threads)
    return timings


def _prepare_systems(model: torch.nn.Module, module: Any, result: ModelResult, inputs: list[tuple],
                     skipped: frozenset[str] = frozenset()):
    systems: dict[str, Callable[..., Any]] = {"eager": model, "eager-1t": model}
    if "torchscript" not in skipped:
        _prepare_torchscript(model, result, inputs, systems)
    if "torch.compile" not in skipped:
        _prepare_torch_compile(model, result, inputs, systems)
    _prepare_ours(model, module, result, systems)
    return systems


def _prepare_torchscript(model, result: ModelResult, inputs: list[tuple], systems: dict) -> None:
    try:
        scripted = torch.jit.script(model)
        with torch.no_grad():
            for args in inputs:
                scripted(*args)
        systems["torchscript"] = scripted
    except Exception as error:  # noqa: BLE001 -- a system that cannot run a model is reported, not fatal
        result.notes["torchscript"] = (
            f"{type(error).__name__}: {str(error).strip().splitlines()[0][:120]}"
        )


def _prepare_torch_compile(model, result: ModelResult, inputs: list[tuple], systems: dict) -> None:
    try:
        compiled = torch.compile(model, backend="inductor", dynamic=False)
        with torch.no_grad():
            for args in inputs:
                compiled(*args)
        systems["torch.compile"] = compiled
    except Exception as error:  # noqa: BLE001 -- a system that cannot run a model is reported, not fatal
        result.notes["torch.compile"] = (
            f"{type(error).__name__}: {str(error).strip().splitlines()[0][:120]}"
        )


def _prepare_ours(model, module: Any, result: ModelResult, systems: dict) -> None:
    example = module.make_inputs()
    with tempfile.TemporaryDirectory() as cache:
        cache_dir = pathlib.Path(cache)
        started = time.perf_counter()
        program = dynn.compile(model, example, backend="llvm", cache_dir=cache_dir)
        result.cold_compile_s = time.perf_counter() - started
        started = time.perf_counter()
        program = dynn.compile(model, example, backend="llvm", cache_dir=cache_dir)
        result.warm_compile_s = time.perf_counter() - started
    result.compiled_subgraphs = program.stats.compiled
    result.compiled_artifacts = program.stats.artifacts
    result.fallback_subgraphs = program.stats.fallback
    systems["ours"] = program


def _stack(samples: Sequence[tuple]) -> tuple:
    """One input of batch ``len(samples)``: tensors concatenated along dimension 0, other
    arguments (flags, sizes) taken from the first sample."""
    return tuple(
        torch.cat([sample[i] for sample in samples]) if isinstance(first, torch.Tensor)
        and first.dim() > 0 else first
        for i, first in enumerate(samples[0])
    )


class _Batched:
    """A zoo module whose inputs are batches of `batch` sample inputs."""

    def __init__(self, module: Any, batch: int):
        self.module, self.batch = module, batch

    def make_inputs(self) -> tuple:
        return _stack(self.module.sample_inputs(self.batch, seed=7))

    def sample_inputs(self, n: int, seed: int) -> list[tuple]:
        samples = self.module.sample_inputs(n * self.batch, seed=seed)
        return [_stack(samples[i:i + self.batch]) for i in range(0, len(samples), self.batch)]


def benchmark_model(name: str, n_inputs: int, rounds: int, batch: int = 1,
                    skipped: frozenset[str] = frozenset()) -> ModelResult:
    module = zoo.load(name)
    result = ModelResult(name, batch)
    model = module.make_model()
    if batch != 1:
        module = _Batched(module, batch)
    inputs = module.sample_inputs(n_inputs, seed=123)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        systems = _prepare_systems(model, module, result, inputs, skipped)
    agree, worst = True, 0.0
    with torch.no_grad():
        for args in inputs:
            ok, error = _max_error(model(*args), systems["ours"](*args))
            agree &= ok
            worst = max(worst, error)
    result.agree, result.max_abs_error = bool(agree), float(worst)
    timings: dict[str, list[float]] = {system: [] for system in systems}
    threads = torch.get_num_threads()
    for _ in range(rounds):
        for system, function in systems.items():
            timings[system] += _time_round(function, inputs, 1 if system == "eager-1t" else threads)
    result.latency_ms = {
        system: (statistics.median(timings[system]) * 1e3 if system in timings else None)
        for system in SYSTEMS
    }
    try:
        result.gflop_per_call = roofline.model_gflop(model, inputs)
    except roofline.Uncountable as error:
        result.notes["FLOP count"] = str(error)
    result.peak_gflops = roofline.measured_peak_gflops()
    return result


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def markdown_table(results: list[ModelResult], machine: str) -> str:
    """One table per batch size in `results`."""
    batches = sorted({r.batch for r in results})
    return "\n".join(_batch_table([r for r in results if r.batch == b], b, machine)
                     for b in batches)


def _agreement(result: ModelResult) -> str:
    if result.agree is None:
        return "n/a"
    return f"{'yes' if result.agree else 'NO'} ({_fmt(result.max_abs_error, '.1e')})"


def _roofline(result: ModelResult) -> str:
    achieved = roofline.achieved_gflops(result.gflop_per_call, result.latency_ms.get("ours"))
    if achieved is None or not result.peak_gflops:
        return "n/a"
    return f"{achieved:.1f} ({100 * achieved / result.peak_gflops:.0f}%)"


def _batch_table(results: list[ModelResult], batch: int, machine: str) -> str:
    lines = [
        f"Batch {batch}, median latency per call in ms; speedup = eager / system (the same "
        f"ratio per image). Machine: {machine}. GFLOP/s: eager's counted work per call "
        f"over our latency, against the matmul peak measured in the run "
        f"({_fmt(max((r.peak_gflops or 0.0 for r in results), default=None), '.0f')} GFLOP/s; "
        f"see `benchmarks.roofline`).",
        "",
        "| model | agree (max abs err) | ours: cold / warm compile (s) | sub-graphs: call sites / artifacts (fallback) | eager | eager 1 thread | TorchScript | torch.compile | ours | eager 1 thread x | TorchScript x | torch.compile x | ours x | GFLOP / call | ours GFLOP/s (% of peak) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat = r.latency_ms
        lines.append(
            f"| {r.model} | {_agreement(r)} "
            f"| {_fmt(r.cold_compile_s, '.1f')} / {_fmt(r.warm_compile_s, '.2f')} "
            f"| {r.compiled_subgraphs} / {r.compiled_artifacts} ({r.fallback_subgraphs}) "
            + "".join(f"| {_fmt(lat.get(s), '.3f')} " for s in SYSTEMS)
            + "".join(f"| {_fmt(r.speedup(s), '.2f')} " for s in SYSTEMS[1:])
            + f"| {_fmt(r.gflop_per_call, '.3f')} | {_roofline(r)} |"
        )
    geo = {s: charts.geomean([r.speedup(s) for r in results]) for s in SYSTEMS[1:]}
    lines.append(
        "| **geomean** | | | "
        + "| " * 4
        + "".join(f"| **{_fmt(geo[s], '.2f')}** " for s in SYSTEMS[1:])
        + "| | |"
    )
    notes = [f"- {r.model}, {system}: {note}" for r in results for system, note in r.notes.items()]
    if notes:
        lines += ["", "Systems that could not run a model:", *notes]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--models", default=",".join(zoo.ZOO), help="comma-separated zoo models")
    parser.add_argument("--inputs", type=int, default=20, help="sample inputs per model")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds over all inputs")
    parser.add_argument("--out", default="benchmarks/results", help="output directory")
    parser.add_argument("--batches", default="1", help="comma-separated batch sizes")
    parser.add_argument("--skip", default="", help="comma-separated systems not to run "
                        "(torchscript, torch.compile): their columns read n/a")
    args = parser.parse_args(argv)
    skipped = frozenset(s for s in args.skip.split(",") if s)
    if not skipped <= {"torchscript", "torch.compile"}:
        parser.error(f"--skip: only torchscript and torch.compile can be skipped, got {args.skip!r}")
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches: expected comma-separated integers, got {args.batches!r}")
    if any(b < 1 for b in batches):
        parser.error(f"--batches: batch sizes must be positive, got {args.batches!r}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    results = []
    runs = [(name, b) for b in batches for name in args.models.split(",")]
    for name, batch in tqdm(runs, desc="models", unit="model"):
        results.append(_run_one(name, args.inputs, args.rounds, batch, skipped))
        (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    table = markdown_table(results, machine)
    (out / "results.md").write_text(table)
    for batch in batches:
        charts.speedup_chart(results, batch, out / f"speedup_b{batch}.png")
        roofline.roofline_chart(results, batch, out / f"roofline_b{batch}.png")
    charts.compile_chart(results, out / "compile.png")
    print(table)


def _run_one(name: str, n_inputs: int, rounds: int, batch: int,
             skipped: frozenset[str] = frozenset()) -> ModelResult:
    """A model at batch 1 must run (a failure is a bug); at a larger batch, a model whose
    own code does not take batches (an ``.item()`` on a batched tensor) is a note."""
    if batch == 1:
        return benchmark_model(name, n_inputs, rounds, skipped=skipped)
    try:
        return benchmark_model(name, n_inputs, rounds, batch, skipped)
    except Exception as error:  # noqa: BLE001 -- reported in the table, not fatal
        result = ModelResult(name, batch)
        result.notes["all systems"] = (
            f"{type(error).__name__}: {str(error).strip().splitlines()[0][:120]}")
        return result


if __name__ == "__main__":
    main()
