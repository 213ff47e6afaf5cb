"""Generated PyTorch programs, differential against eager: each model runs eagerly and
through `frontends.torch.compile` (public API only) on inputs that take different paths,
and the outcomes are compared.

A verdict is `agree`, `unsupported` (an `UnsupportedError`: a bug only if docs/frontend.md
lists the construct as supported, which a person decides), `mismatch` (a wrong result) or
`crash` (any other exception: an internal error of the compiler).

An input whose eager result itself changes when the input moves by a rounding error
(`is_unstable`: a branch on `x.sum() > 0` of a centred `x`, whose sign is float noise) is
left out of the comparison and counted: on it, a different order of summation takes the
other path legitimately.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import pathlib
import sys
import traceback
from dataclasses import dataclass
from typing import Any

import torch

import frontends.torch as ft
from passkit.torch_programs import GeneratedModel

INPUT_SCALES = (0.2, 0.6, 1.0, 1.6, 2.5, -1.0)
"""Inputs `randn(2, 4) * scale`: small, large and negated values take different paths."""
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
NUDGE = 1e-6
"""The relative size of the perturbations `is_unstable` tries (about 8 float32 ulps)."""
NUDGE_TRIALS = 8


@dataclass(frozen=True)
class Verdict:
    kind: str
    """`agree`, `unsupported`, `mismatch` or `crash`."""
    backend: str
    detail: str = ""
    """The error (`TypeError: ...`) or the difference; where an exception came from is in
    `where` (`evaluator.py:295`), kept apart so a known error is recognised by its text."""
    where: str = ""
    unstable: int = 0
    """Inputs left out because eager's own result on them is decided by rounding."""

    def __str__(self) -> str:
        place = f" at {self.where}" if self.where else ""
        return f"{self.kind} ({self.backend}){place}{': ' + self.detail if self.detail else ''}"


def module_name(case: GeneratedModel) -> str:
    return "generated_" + hashlib.sha256(case.source.encode()).hexdigest()[:16]


def load_model(case: GeneratedModel, directory: pathlib.Path) -> torch.nn.Module:
    """Write the source to a file in `directory`, import it (the frontend reads the class
    source with `inspect`; it stays in `sys.modules` until `differential` is done) and build
    the model with its weight seed, in eval mode."""
    name = module_name(case)
    path = directory / f"{name}.py"
    path.write_text(case.source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    torch.manual_seed(case.weight_seed)
    return module.Generated().eval()


DYNAMIC_BATCHES = (2, 1, 3, 5, 1, 0)
"""Batch sizes of the inputs of a program compiled with `dynamic=True`: one compile serves
them all, and 0 and 1 are where traced sizes go wrong."""


def sample_inputs(seed: int, dynamic: bool = False) -> list[tuple[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    batches = DYNAMIC_BATCHES if dynamic else (2,) * len(INPUT_SCALES)
    return [
        (torch.randn(batch, 4, generator=generator) * scale,)
        for batch, scale in zip(batches, INPUT_SCALES)
    ]


def difference(actual: Any, expected: Any, path: str = "result") -> str | None:
    """Where `actual` differs from eager's `expected` (types, nesting, shapes, dtypes,
    values within `TOLERANCE`), or None."""
    if type(actual) is not type(expected):
        return f"{path}: {type(actual).__name__} instead of {type(expected).__name__}"
    if isinstance(expected, torch.Tensor):
        if actual.shape != expected.shape or actual.dtype != expected.dtype:
            return f"{path}: {actual.dtype}{list(actual.shape)} instead of {expected.dtype}{list(expected.shape)}"
        if not torch.allclose(actual, expected, equal_nan=True, **TOLERANCE):
            return f"{path}: {actual.tolist()} instead of {expected.tolist()}"
        return None
    if isinstance(expected, tuple | list):
        if len(actual) != len(expected):
            return f"{path}: {len(actual)} items instead of {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected)):
            if (found := difference(a, e, f"{path}[{index}]")) is not None:
                return found
        return None
    if isinstance(expected, dict):
        if actual.keys() != expected.keys():
            return f"{path}: keys {sorted(actual)} instead of {sorted(expected)}"
        for key in expected:
            if (found := difference(actual[key], expected[key], f"{path}[{key!r}]")) is not None:
                return found
        return None
    if isinstance(expected, float):
        same = (math.isnan(actual) and math.isnan(expected)) or math.isclose(
            actual, expected, rel_tol=TOLERANCE["rtol"], abs_tol=TOLERANCE["atol"]
        )
        return None if same else f"{path}: {actual} instead of {expected}"
    return None if actual == expected else f"{path}: {actual!r} instead of {expected!r}"


def compare(
    model: torch.nn.Module,
    inputs: list[tuple[torch.Tensor]],
    backend: str,
    cache_dir: pathlib.Path | None,
    dynamic: bool = False,
) -> Verdict:
    """Compile `model` on the first inputs with `backend` (with `dynamic`, once for every
    batch size), run every input both ways. Where eager raises, the program must raise.
    A difference on an input where `is_unstable` holds is counted, not reported."""
    label = f"{backend}, dynamic batch" if dynamic else backend
    try:
        program = ft.compile(
            model, inputs[0], backend=backend, cache_dir=cache_dir, dynamic=dynamic or None
        )
    except ft.UnsupportedError as error:
        return Verdict("unsupported", label, str(error))
    except Exception as error:  # noqa: BLE001 - any other exception is a compiler bug
        return Verdict("crash", label, _describe(error), _origin(error))
    unstable = 0
    for index, sample in enumerate(inputs):
        try:
            with torch.no_grad():
                expected = model(*[t.clone() for t in sample])
        except Exception as error:  # noqa: BLE001 - eager's own refusal of this input
            refusal = _describe(error)
            try:
                program(*[t.clone() for t in sample])
            except Exception:  # noqa: BLE001
                continue
            return Verdict(
                "mismatch", label, f"input #{index}: returned where eager raises {refusal}"
            )
        try:
            actual = program(*[t.clone() for t in sample])
        except Exception as error:  # noqa: BLE001
            return Verdict("crash", label, _describe(error), f"input #{index}, {_origin(error)}")
        found = difference(actual, expected)
        if found is not None and is_unstable(model, sample, expected):
            unstable += 1
        elif found is not None:
            return Verdict("mismatch", label, f"input #{index}: {found}", unstable=unstable)
    return Verdict("agree", label, unstable=unstable)


def is_unstable(model: torch.nn.Module, sample: tuple[torch.Tensor], expected: Any) -> bool:
    """Whether eager's result on `sample` changes when its float inputs move by `NUDGE`
    (relative) in some of `NUDGE_TRIALS` random directions: then the path it takes is
    decided by rounding, and a compiled program may take another."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(NUDGE_TRIALS):
        nudged = [
            t + t.abs() * NUDGE * torch.randn(t.shape, generator=generator)
            if t.is_floating_point()
            else t.clone()
            for t in sample
        ]
        try:
            with torch.no_grad():
                result = model(*nudged)
        except Exception:  # noqa: BLE001 - an error on a nudged input: unstable too
            return True
        if difference(result, expected) is not None:
            return True
    return False


def _describe(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _origin(error: Exception) -> str:
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f"{pathlib.Path(frame.filename).name}:{frame.lineno}"


def differential(
    case: GeneratedModel,
    directory: pathlib.Path,
    backends: tuple[str, ...] = ("interpreter", "llvm"),
    cache_dir: pathlib.Path | None = None,
    dynamic_backends: tuple[str, ...] = (),
) -> list[Verdict]:
    """The verdict of each backend on one generated model, then of each of
    `dynamic_backends` with the program compiled once for inputs of every batch size
    (`DYNAMIC_BATCHES`); stops at the first that does not agree (a later backend would
    only repeat it)."""
    model = load_model(case, directory)
    runs = [(backend, False) for backend in backends]
    runs += [(backend, True) for backend in dynamic_backends]
    verdicts = []
    try:
        for backend, dynamic in runs:
            inputs = sample_inputs(case.weight_seed, dynamic)
            verdicts.append(compare(model, inputs, backend, cache_dir, dynamic))
            if verdicts[-1].kind != "agree":
                break
    finally:
        sys.modules.pop(module_name(case), None)
    return verdicts
