"""Micro-benchmark of the host side of a compiled program: the fixed cost of one sub-graph
call, of each argument and result it marshals, of each host op the interpreter runs, and of
a `frontends.torch` program call around the interpreter.

Tiny programs make the math negligible, so what is timed is the call path itself:

* ``subgraph``: ``x + 1`` on ``[1, 16]`` compiled alone (`runtime.llvm.compile_subgraph`),
  static and with a run-time batch (``?``), against eager ``x + 1``;
* ``per argument`` / ``per result``: the slope from 1 to 9 inputs (``x0 + ... + x8``) and
  from 1 to 9 results, static and dynamic; ``per bound parameter``: the same sum with
  ``x1 ... x8`` bound as parameters (stored once, one more pointer per call);
* ``per host op``: a model whose loop runs ``n`` iterations of a tiny sub-graph and a
  data-dependent exit (``for`` + ``if ...: break``), timed at two trip counts; the slope per
  iteration minus one sub-graph call, divided by the host ops of one iteration;
* ``program call``: a one-sub-graph model through ``frontends.torch.compile`` minus the
  sub-graph call it makes.

    python -m benchmarks.host_overhead [--repeats N]

Every figure is the median of `repeats` samples (each the mean of enough calls to last
~2 ms), all samples interleaved round-robin; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

import frontends.torch as dynn
from benchmarks.subgraph_bench import export_torch_dialect
from ir import dy
from runtime.llvm import compile_subgraph

WIDTH = 16
ARITY = 9
SHORT_LOOP, LONG_LOOP = 2, 34


def _sum(*xs):
    total = xs[0] + 1
    for x in xs[1:]:
        total = total + x
    return total


def _fan_out(x):
    return tuple(x + i for i in range(ARITY))


def _compiled(function: Callable, args: list[torch.Tensor], dynamic: bool,
              bound_after: int | None = None):
    """`function` compiled for `args`; those from position `bound_after` on are bound."""
    text = export_torch_dialect(function, [torch.cat([a, a]) if dynamic else a for a in args],
                                batched_inputs=len(args) if dynamic else 0)
    bound = {} if bound_after is None else dict(enumerate(args))
    return compile_subgraph(text, "main", {i: a for i, a in bound.items() if i >= bound_after})


class _EarlyExitLoop(nn.Module):
    """`steps` iterations of a tiny update, each followed by a data-dependent exit test."""

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        for _ in range(steps):
            x = x * 0.5 + 1.0
            if x.sum() > 1e30:
                break
        return x


class _Single(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1


def _host_ops_per_iteration(program, iterations: int) -> float:
    """Host ops one iteration runs: the ops on the path a call takes through the entry
    function (no exit test passes, so every `dy.if` runs its else region; the frontend
    unrolls the loop into nested ifs), a sub-graph call counting as one, per iteration."""

    def executed(block) -> int:
        count = 0
        for op in block.ops:
            count += 1
            if isinstance(op, dy.IfOp):
                count += executed(op.regions[1].block)
            else:
                count += sum(executed(region.block) for region in op.regions)
        return count

    entry = next(op for op in program.module.ops
                 if isinstance(op, dy.FuncOp) and op.sym_name.data == dy.ENTRY_FUNCTION)
    return executed(entry.body.block) / iterations


def _samples(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each callable, sampled round-robin."""
    counts = {}
    for name, call in calls.items():
        call()
        started = time.perf_counter()
        call()
        counts[name] = max(1, min(2000, int(2e-3 / max(time.perf_counter() - started, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            for _ in range(counts[name]):
                call()
            samples[name].append((time.perf_counter() - started) / counts[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def measure(repeats: int) -> dict[str, float]:
    """Microseconds of each fixed cost (see the module docstring)."""
    torch.manual_seed(0)
    one = [torch.randn(1, WIDTH)]
    many = [torch.randn(1, WIDTH) for _ in range(ARITY)]
    kernels = {(kind, dynamic): _compiled(function, args, dynamic)
               for kind, function, args in (("one", _sum, one), ("args", _sum, many),
                                            ("results", _fan_out, one))
               for dynamic in (False, True)}
    with_parameters = _compiled(_sum, many, False, bound_after=1)
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as cache:
        warnings.simplefilter("ignore")
        loop = dynn.compile(_EarlyExitLoop(), (one[0], SHORT_LOOP), cache_dir=cache)
        long_loop = dynn.compile(_EarlyExitLoop(), (one[0], LONG_LOOP), cache_dir=cache)
        single = dynn.compile(_Single(), (one[0],), cache_dir=cache)
    x = one[0]
    calls: dict[str, Callable[[], object]] = {"eager x + 1": lambda: x + 1}
    for dynamic in (False, True):
        tag = "dynamic" if dynamic else "static"
        calls[f"one {tag}"] = lambda k=kernels["one", dynamic]: k(x)
        calls[f"args {tag}"] = lambda k=kernels["args", dynamic]: k(*many)
        calls[f"results {tag}"] = lambda k=kernels["results", dynamic]: k(x)
    calls["parameters static"] = lambda: with_parameters(x)
    calls["program"] = lambda: single(x)
    calls["loop short"] = lambda: loop(x, SHORT_LOOP)
    calls["loop long"] = lambda: long_loop(x, LONG_LOOP)
    with torch.no_grad():
        t = {name: seconds * 1e6 for name, seconds in _samples(calls, repeats).items()}
    per_iteration = (t["loop long"] - t["loop short"]) / (LONG_LOOP - SHORT_LOOP)
    host_ops = _host_ops_per_iteration(long_loop, LONG_LOOP)
    return {
        "eager x + 1": t["eager x + 1"],
        "sub-graph call, static": t["one static"],
        "sub-graph call, dynamic": t["one dynamic"],
        "per argument, static": (t["args static"] - t["one static"]) / (ARITY - 1),
        "per argument, dynamic": (t["args dynamic"] - t["one dynamic"]) / (ARITY - 1),
        "per bound parameter, static": (t["parameters static"] - t["one static"]) / (ARITY - 1),
        "per result, static": (t["results static"] - t["one static"]) / (ARITY - 1),
        "per result, dynamic": (t["results dynamic"] - t["one dynamic"]) / (ARITY - 1),
        "program call (frontends.torch) beyond its sub-graph": t["program"] - t["one static"],
        "loop iteration (1 sub-graph call + host ops)": per_iteration,
        f"per host op ({host_ops:.1f} per iteration)":
            (per_iteration - t["one static"]) / host_ops,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.host_overhead",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    options = parser.parse_args(argv)
    figures = measure(options.repeats)
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"host overhead, us (median of {options.repeats}); load average {load} on "
          f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    for name, value in figures.items():
        print(f"  {name:<55} {value:8.2f}")


if __name__ == "__main__":
    main()
