"""Weights packed at load time: the layouts the kernels stream, derived from parameters.

A sub-graph's parameters are arguments of its compiled code, bound when it is loaded, so
sub-graphs that differ only in their parameters (the 54 residual blocks of a ResNet-110)
share one compiled artifact. A kernel whose weights are a parameter, or a view of one
(``F.linear``'s ``weight.t()``, a grouped convolution's ``expand_shape``), reads them in a
packed layout (:func:`.kernels.pack_conv_weights` and friends): the schedule adds an argument
of that layout to the entry function and records here how to derive it from the parameter,
as data, so a cached artifact packs the weights of any call site the same way.
"""

import dataclasses

import numpy as np

from . import kernels, matmul_kernels

LAYOUTS = {
    "transpose": lambda array, permutation: array.transpose(permutation),
    "reshape": lambda array, shape: array.reshape(shape),
    "conv": kernels.pack_conv_weights,
    "grouped_conv": kernels.pack_grouped_conv_weights,
    "matmul": matmul_kernels.pack_matmul_weights,
}
"""Step name -> function(array, operand) computing the step."""


@dataclasses.dataclass(frozen=True)
class PackedArgument:
    """An f32 argument of the compiled entry, of `shape`, computed from bound argument
    `source` by `steps` (``(name, operand)`` pairs of :data:`LAYOUTS`, applied in order)."""

    source: int
    steps: tuple[tuple[str, object], ...]
    shape: tuple[int, ...]

    def pack(self, parameter: np.ndarray) -> np.ndarray:
        """`parameter` in this argument's layout; a ValueError when the steps do not
        give its shape (the code would read the weights out of place)."""
        array = parameter
        for name, operand in self.steps:
            array = LAYOUTS[name](array, operand)
        if array.shape != self.shape:
            raise ValueError(f"packing argument {self.source} gives shape {list(array.shape)}, "
                             f"not the {list(self.shape)} the code reads")
        return np.ascontiguousarray(array)

    def to_json(self) -> dict:
        return {"source": self.source, "steps": [[name, _jsonable(operand)]
                                                  for name, operand in self.steps],
                "shape": list(self.shape)}

    @staticmethod
    def from_json(data: dict) -> "PackedArgument":
        steps = tuple((name, tuple(operand) if isinstance(operand, list) else operand)
                      for name, operand in data["steps"])
        unknown = [name for name, _ in steps if name not in LAYOUTS]
        if unknown:
            raise ValueError(f"unknown weight layout step {unknown[0]!r}")
        return PackedArgument(int(data["source"]), steps, tuple(data["shape"]))


def _jsonable(operand: object) -> object:
    return list(operand) if isinstance(operand, tuple) else operand
