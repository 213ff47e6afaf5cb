"""The semantic oracle: what a program computes, by the reference interpreter, and when two
outcomes are the same.

An outcome is the program's results or the located error it stops with: a pass must
preserve both (a run-time error turned into a result is as wrong as a changed number).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from xdsl.dialects.builtin import ModuleOp

from runtime.interpreter import ExecutionError, run_program

Outcome = tuple[str, Any]
"""("results", [values...]) or ("error", "FILE:LINE:COL: error: ...")."""


def outcome(module: ModuleOp, params: Mapping[str, torch.Tensor], inputs: Sequence[Any]) -> Outcome:
    """Run the entry function once; an `ExecutionError` is an outcome, any other exception
    is a bug (of the interpreter or of a pass) and propagates."""
    try:
        return "results", run_program(module, params, list(inputs))
    except ExecutionError as error:
        return "error", str(error)


def same_value(a: Any, b: Any, *, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """Equal types, shapes and dtypes, and values equal up to `rtol` / `atol` (NaN equals
    NaN); lists element-wise."""
    if isinstance(a, tuple | list) or isinstance(b, tuple | list):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same_value(x, y, rtol=rtol, atol=atol) for x, y in zip(a, b))
        )
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        )
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)
    return type(a) is type(b) and a == b


def outcome_difference(before: Outcome, after: Outcome, **tolerance: float) -> str | None:
    """Why two outcomes differ, or None when they are the same."""
    if before[0] != after[0]:
        return f"before: {_describe(before)}\nafter:  {_describe(after)}"
    if before[0] == "error":
        return None if before[1] == after[1] else f"before: {before[1]}\nafter:  {after[1]}"
    if len(before[1]) != len(after[1]):
        return f"{len(before[1])} results before, {len(after[1])} after"
    for index, (a, b) in enumerate(zip(before[1], after[1])):
        if not same_value(a, b, **tolerance):
            return f"result #{index} differs:\nbefore: {a!r}\nafter:  {b!r}"
    return None


def _describe(result: Outcome) -> str:
    kind, value = result
    return value if kind == "error" else f"results {value!r}"
