"""A compiled NeSy model: ``program(images)`` returns the class names of a batch.

The program of `lower.py` is specialised to the batch size (the LLVM backend compiles
static shapes), so one is built and compiled per batch size on first use and the most
recent few are kept. With ``if_convert`` (the default) the rules run as batched tensor
code in the same compiled sub-graph as the CNN.
"""

from __future__ import annotations

import pathlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from frontends import rules
from frontends.nesy.errors import NesyError
from frontends.nesy.lower import SavedRun, load_run, lower_saved
from ir.program import ProgramContext, verify_module
from passes.if_convert import IfConvert
from runtime.program import DEFAULT_CACHE_DIR, CompiledProgram, compile_program

PROGRAMS_KEPT = 4


class NesyProgram:
    def __init__(
        self,
        saved: SavedRun,
        *,
        backend: str = "llvm",
        if_convert: bool = True,
        cache_dir: pathlib.Path | None = DEFAULT_CACHE_DIR,
    ):
        self.saved = saved
        self.backend = backend
        self.if_convert = if_convert
        self.cache_dir = cache_dir
        self._programs: OrderedDict[int, CompiledProgram] = OrderedDict()

    @property
    def rule_set(self) -> rules.RuleSet:
        return self.saved.rule_set

    def __call__(self, images) -> list[str | None]:
        indices, _ = self.run(images)
        return rules.class_names(self.rule_set, indices)

    def labels(self, images) -> np.ndarray:
        """Per image, the index in the dataset's class names of its class, or -1."""
        indices, _ = self.run(images)
        position = {name: i for i, name in enumerate(self.saved.class_names)}
        mapping = np.array([position[name] for name in self.rule_set.classes] + [rules.NO_CLASS])
        return mapping[indices]

    def explain(self, images) -> list[rules.Explanation]:
        """Per image, the rule that fired and the filters that made it hold."""
        indices, table = self.run(images)
        return rules.explain_rows(self.rule_set, table, indices)

    def run(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Class indices (into the rule-set's classes) and the binary filter table."""
        tensor = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
        expected = self.saved.image_shape
        if tensor.ndim != 4 or tuple(tensor.shape[1:]) != expected:
            raise NesyError(f"expected images of shape [N, {', '.join(map(str, expected))}], got {list(tensor.shape)}")
        if tensor.shape[0] == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, len(self.rule_set.features)), dtype=bool)
        indices, table = self.compiled(tensor.shape[0])(tensor.to(torch.float32).contiguous())
        return indices.numpy(), table.numpy()

    def compiled(self, batch: int) -> CompiledProgram:
        if batch in self._programs:
            self._programs.move_to_end(batch)
            return self._programs[batch]
        conversion = lower_saved(self.saved, batch)
        module = conversion.module
        if self.if_convert:
            IfConvert().apply(ProgramContext(), module)
            verify_module(module)
        program = compile_program(module, conversion.params, backend=self.backend, cache_dir=self.cache_dir)
        self._programs[batch] = program
        while len(self._programs) > PROGRAMS_KEPT:
            self._programs.popitem(last=False)
        return program


def compile_run(run_dir: Path, **options) -> NesyProgram:
    """The compiled NeSy model of a folder written by ``python -m frontends.nesy run``."""
    return NesyProgram(load_run(Path(run_dir)), **options)
