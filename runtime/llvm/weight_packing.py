"""Weights packed at load time: the layouts the kernels stream, derived from parameters.

A sub-graph's parameters are arguments of its compiled code, bound when it is loaded, so
sub-graphs that differ only in their parameters (the 54 residual blocks of a ResNet-110)
share one compiled artifact. A kernel whose weights are a parameter, or a view of one
(``F.linear``'s ``weight.t()``, a grouped convolution's ``expand_shape``), reads them in a
packed layout (:func:`pack_conv_weights` and friends, below): the schedule adds an argument
of that layout to the entry function and records here how to derive it from the parameter,
as data, so a cached artifact packs the weights of any call site the same way.
"""

import dataclasses

import numpy as np


def pack_conv_weights(weights: np.ndarray, filter_block: int) -> np.ndarray:
    """[F, C, KH, KW] -> [F / FB, C, KH, KW, FB]; `filter_block` divides F."""
    filters = weights.shape[0]
    return np.ascontiguousarray(weights.reshape(
        filters // filter_block, filter_block, *weights.shape[1:]).transpose(0, 2, 3, 4, 1))


def pack_grouped_conv_weights(weights: np.ndarray, filter_block: int) -> np.ndarray:
    """[G, F, C, KH, KW] -> [G, F / FB, C, KH, KW, FB]: each group packed as a
    convolution of its own (:func:`pack_conv_weights`)."""
    return np.stack([pack_conv_weights(group, filter_block) for group in weights])


def pack_matmul_weights(weights: np.ndarray, tile: int) -> np.ndarray:
    """[K, N] -> [ceil(N / tile), K, tile], zero-padded columns."""
    depth, columns = weights.shape
    tiles = -(-columns // tile)
    padded = np.zeros((depth, tiles * tile), dtype=weights.dtype)
    padded[:, :columns] = weights
    return np.ascontiguousarray(padded.reshape(depth, tiles, tile).transpose(1, 0, 2))


LAYOUTS = {
    "transpose": lambda array, permutation: array.transpose(permutation),
    "reshape": lambda array, shape: array.reshape(shape),
    "conv": pack_conv_weights,
    "grouped_conv": pack_grouped_conv_weights,
    "matmul": pack_matmul_weights,
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
        """A copy of `parameter` in this argument's layout (never a view of it: the code
        keeps the weights as they were when bound); a ValueError when the steps do not
        give its shape (the code would read the weights out of place)."""
        array = parameter
        for name, operand in self.steps:
            array = LAYOUTS[name](array, operand)
        if array.shape != self.shape:
            raise ValueError(f"packing argument {self.source} gives shape {list(array.shape)}, "
                             f"not the {list(self.shape)} the code reads")
        packed = np.ascontiguousarray(array)
        return packed.copy() if np.shares_memory(packed, parameter) else packed

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
