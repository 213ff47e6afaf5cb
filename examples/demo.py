"""The Quickstart's main job: compile a dynamic network and run it next to eager PyTorch.

`examples/early_exit.py` stops at the first confident classifier, so which layers run
depends on the input. A tracing compiler freezes one path; this demo compiles every path
(frontend -> dy dialect -> outline-regions -> torch-mlir -> LLVM JIT), runs a few inputs
that leave at different exits, and prints each result beside eager PyTorch's.

    python -m examples.demo
"""

from __future__ import annotations

import time

import torch

import frontends.torch as dynn
from examples import early_exit

SHOWN_INPUTS = 6


def _median_seconds(function, inputs, repeats: int = 30) -> float:
    timings = []
    for _ in range(repeats):
        for args in inputs:
            started = time.perf_counter()
            function(*args)
            timings.append(time.perf_counter() - started)
    timings.sort()
    return timings[len(timings) // 2]


def main() -> None:
    torch.manual_seed(0)
    model = early_exit.make_model()
    started = time.perf_counter()
    program = dynn.compile(model, early_exit.make_inputs(), backend="llvm")
    compile_seconds = time.perf_counter() - started
    print(f"compiled {type(model).__name__} in {compile_seconds:.1f} s: {program.stats}")
    print(f"{'input':>5}  {'eager argmax':>12}  {'compiled argmax':>15}  {'max |diff|':>10}  eager logits[:4]")
    inputs = early_exit.sample_inputs(SHOWN_INPUTS, seed=1)
    for index, args in enumerate(inputs):
        with torch.no_grad():
            expected = model(*args)
        actual = program(*args)
        difference = (expected - actual).abs().max().item()
        print(
            f"{index:>5}  {expected.argmax().item():>12}  {actual.argmax().item():>15}  "
            f"{difference:>10.2e}  {[round(v, 4) for v in expected[0, :4].tolist()]}"
        )
    with torch.no_grad():
        eager = _median_seconds(model, inputs)
    compiled = _median_seconds(program, inputs)
    print(f"median latency: eager {eager * 1e3:.3f} ms, compiled {compiled * 1e3:.3f} ms "
          f"({eager / compiled:.2f}x)")


if __name__ == "__main__":
    main()
