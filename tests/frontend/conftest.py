"""Shared checks for the frontend tests: agreement with eager PyTorch and branch coverage."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from frontends.torch import Conversion, compile, convert, rebuild_results
from frontends.torch.api import result_tree, updated_inputs
from ir import dy
from ir.program import location_of
from runtime.interpreter import control_flow_regions, run_program

torch.set_num_threads(1)
warnings.filterwarnings("ignore", category=FutureWarning)


def assert_same(actual: Any, expected: Any, path: str = "result") -> None:
    """Same nesting, types, shapes and dtypes; floats within rtol 1e-4 / atol 1e-5,
    everything else exactly. A numpy scalar (numpy on host values returns them) compares as
    the Python number it holds: the program returns Python numbers."""
    if isinstance(expected, np.generic):
        expected = expected.item()
    assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
    if isinstance(expected, torch.Tensor):
        assert actual.shape == expected.shape, f"{path}: shape {actual.shape} != {expected.shape}"
        assert actual.dtype == expected.dtype, f"{path}: dtype {actual.dtype} != {expected.dtype}"
        if expected.dtype.is_floating_point:
            torch.testing.assert_close(
                actual, expected, rtol=1e-4, atol=1e-5, equal_nan=True, msg=path
            )
        else:
            assert torch.equal(actual, expected), f"{path}: {actual} != {expected}"
    elif isinstance(expected, tuple | list):
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{index}]")
    elif isinstance(expected, dict):
        assert actual.keys() == expected.keys(), path
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-4, abs=1e-5), path
    else:
        assert actual == expected, f"{path}: {actual} != {expected}"


def run_converted(conversion: Conversion, inputs: Sequence[Any], counts: Counter) -> Any:
    """Run the converted program on the tensors of `inputs`; other arguments (a list of
    thresholds) were compile-time constants of the conversion."""
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    results = run_program(conversion.module, conversion.params, tensors, region_counts=counts)
    return rebuild_results(result_tree(conversion.module), results)


def check_agreement(
    model: torch.nn.Module,
    example: Sequence[Any],
    samples: Sequence[Sequence[Any]],
    *,
    require_coverage: bool = True,
) -> Conversion:
    """Convert `model`, run the interpreter on every sample against eager, and (by default)
    require that every branch and loop region of the program ran at least once.

    Regions are counted per source construct: the copies of one `if` that unrolling a loop
    over a ModuleList makes are one construct (an input must leave at *some* layer, not at
    every layer), which is what "every branch taken" means for the model's source.
    """
    conversion = convert(model, example)
    counts: Counter = Counter()
    for inputs in samples:
        with torch.no_grad():
            expected = model(*inputs)
        assert_same(run_converted(conversion, inputs, counts), expected)
    if require_coverage:
        missed = uncovered_constructs(conversion, counts)
        assert not missed, f"regions never executed: {missed}\n{conversion.ir}"
    return conversion


def uncovered_constructs(conversion: Conversion, counts: Counter) -> list[str]:
    """`FILE:LINE:COL op #region` of every source construct whose region never ran."""
    per_construct: Counter = Counter()
    for op, index in control_flow_regions(conversion.module):
        if isinstance(op.regions[index].block.first_op, dy.TrapOp):
            continue  # where Python would raise (an index out of range): never taken
        filename, line, column = location_of(op)
        per_construct[f"{filename}:{line}:{column} {op.name} #{index}"] += counts[(op, index)]
    return sorted(key for key, count in per_construct.items() if count == 0)


@pytest.fixture(autouse=True)
def deterministic_weights():
    """Models build random weights: the same seed makes every run take the same paths."""
    torch.manual_seed(0)


BACKENDS = ("interpreter", "llvm")


def check_backend(
    model: torch.nn.Module,
    example: Sequence[Any],
    samples: Sequence[Sequence[Any]],
    backend: str,
    *,
    dynamic: Any = None,
    require_coverage: bool = True,
) -> Any:
    """Compile `model` once (for inputs like `example`, `dynamic` dimensions of any size) and
    require that every sample gives what eager gives, including the inputs it updates in
    place. With the interpreter, every branch and loop region must also have run."""
    if backend == "interpreter":
        conversion = convert(model, example, dynamic=dynamic)
        counts: Counter = Counter()
        updated = updated_inputs(conversion.module)
        tree = result_tree(conversion.module)

        def run(*inputs: Any) -> Any:
            tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
            results = run_program(
                conversion.module, conversion.params, tensors, region_counts=counts
            )
            for position, index in updated:
                tensors[position].copy_(results[index])
            return rebuild_results(tree, results)

    else:
        conversion = compile(model, example, backend=backend, cache_dir=None, dynamic=dynamic)
        run = conversion
        assert conversion.stats.fallback == 0, conversion.stats.fallback_reasons
    for inputs in samples:
        ours_inputs = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
        eager_inputs = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
        with torch.no_grad():
            expected = model(*eager_inputs)
            actual = run(*ours_inputs)
        assert_same(actual, expected)
        assert_same(ours_inputs, eager_inputs, "inputs after the call")
    if backend == "interpreter" and require_coverage:
        missed = uncovered_constructs(conversion, counts)
        assert not missed, f"regions never executed: {missed}\n{conversion.ir}"
    return conversion


def zoo_acceptance_params(names: Sequence[str]) -> list:
    """Zoo model names as pytest parameters; those `examples.dynn.NOT_CONVERTED` lists are
    expected to fail, strictly (a model that starts converting must leave that list)."""
    from examples.dynn import NOT_CONVERTED

    return [
        pytest.param(name, marks=pytest.mark.xfail(reason=NOT_CONVERTED[name], strict=True))
        if name in NOT_CONVERTED
        else name
        for name in names
    ]
