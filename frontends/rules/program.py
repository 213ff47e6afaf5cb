"""A compiled rule-set: call it with a feature table, get one class name per row.

The `dy` program is specialised to the batch size and the table's dtype (the LLVM backend
compiles static shapes); `RuleProgram` builds and compiles one per (rows, dtype) on first
use and keeps the most recent few, so any batch size works. With ``if_convert`` (the
default) the decision list is turned into one branch-free tensor program over the whole
batch by the `if-convert` pass before the backend sees it; without it every row runs the
branchy per-sample decision list.
"""

from __future__ import annotations

import pathlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from frontends.rules.evaluate import class_names
from frontends.rules.explain import Explanation, explain
from frontends.rules.lower import lower
from frontends.rules.model import RuleSet
from frontends.rules.syntax import RuleError
from ir.program import ProgramContext, print_module, verify_module
from passes.registry import build_pipeline
from runtime.program import DEFAULT_CACHE_DIR, CompiledProgram, compile_program

PROGRAMS_KEPT = 8
"""Compiled specialisations kept per rule program (one per batch size and dtype)."""


class RuleProgram:
    """``program(table)`` -> class names; ``program.explain(table)`` -> justifications."""

    def __init__(
        self,
        rule_set: RuleSet,
        *,
        backend: str = "llvm",
        if_convert: bool = True,
        pipeline: str | None = None,
        cache_dir: pathlib.Path | None = DEFAULT_CACHE_DIR,
    ):
        self.rule_set = rule_set
        self.backend = backend
        self.pipeline = pipeline if pipeline is not None else ("if-convert" if if_convert else "")
        self.cache_dir = cache_dir
        self._programs: OrderedDict[tuple[int, str], CompiledProgram] = OrderedDict()

    @property
    def classes(self) -> tuple[str, ...]:
        return self.rule_set.classes

    def __call__(self, table) -> list[str | None]:
        return class_names(self.rule_set, self.indices(table))

    def indices(self, table) -> np.ndarray:
        """Per row, the index in ``classes`` of its class, or -1."""
        tensor = self._table(table)
        if tensor.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        program = self.compiled(tensor.shape[0], str(tensor.dtype).removeprefix("torch."))
        (result,) = program(tensor)
        return result.numpy()

    def explain(self, table) -> list[Explanation]:
        """Per row: the rule that decided it and the literals that made it hold, or why
        no class holds. The predictions are the compiled program's."""
        tensor = self._table(table)
        return explain(self.rule_set, tensor.numpy(), self.indices(tensor))

    def module(self, batch: int, dtype: str = "bool"):
        """The program for ``batch`` rows of ``dtype``, after this program's pipeline."""
        module = lower(self.rule_set, batch, dtype)
        for compiler_pass in build_pipeline(self.pipeline) if self.pipeline else []:
            compiler_pass.apply(ProgramContext(), module)
            verify_module(module)
        return module

    def ir(self, batch: int = 1, dtype: str = "bool") -> str:
        return print_module(self.module(batch, dtype))

    def compiled(self, batch: int, dtype: str) -> CompiledProgram:
        key = (batch, dtype)
        if key in self._programs:
            self._programs.move_to_end(key)
            return self._programs[key]
        program = compile_program(
            self.module(batch, dtype),
            {},
            backend=self.backend,
            cache_dir=self.cache_dir,
            filename=self.rule_set.source,
        )
        self._programs[key] = program
        while len(self._programs) > PROGRAMS_KEPT:
            self._programs.popitem(last=False)
        return program

    def _table(self, table) -> torch.Tensor:
        tensor = table if isinstance(table, torch.Tensor) else torch.as_tensor(np.asarray(table))
        width = len(self.rule_set.features)
        if tensor.ndim != 2 or tensor.shape[1] != width:
            raise RuleError(
                self.rule_set.source, 0, 0,
                f"expected a table of shape [N, {width}] (columns: "
                f"{_column_names(self.rule_set.feature_names)}), got {list(tensor.shape)}",
            )
        if tensor.dtype in (torch.float32, torch.float64):
            return tensor.contiguous()
        if tensor.dtype == torch.bool:
            if self.rule_set.numeric:
                raise RuleError(
                    self.rule_set.source, 0, 0, "the rules compare numbers: pass a float table"
                )
            return tensor.contiguous()
        if tensor.dtype.is_floating_point or tensor.dtype.is_complex:
            raise RuleError(self.rule_set.source, 0, 0, f"unsupported table dtype {tensor.dtype}")
        return tensor.to(torch.float64)


def _column_names(names: Sequence[str], shown: int = 6) -> str:
    if len(names) <= shown:
        return ", ".join(names)
    return ", ".join(names[:shown]) + f", ... ({len(names)} in all)"
