"""Calling convention of compiled sub-graphs.

A kernel is a shared object exporting ``_mlir_ciface_<func>``, whose
parameters are pointers to ranked memref descriptors: the non-bound inputs in
order, then one out-parameter per result (``buffer-results-to-out-params``).
The descriptors are ctypes arrays built once; a call only stores the data
pointers of the argument tensors and of freshly allocated result tensors into
them, so results are ordinary torch tensors that no later call touches.
"""

import ctypes
import dataclasses
import pathlib

import torch

ENTRY_PREFIX = "_mlir_ciface_"


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Static shape and dtype of one kernel operand."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "dtype": str(self.dtype).removeprefix("torch.")}

    @staticmethod
    def from_json(data: dict) -> "TensorSpec":
        return TensorSpec(tuple(data["shape"]), getattr(torch, data["dtype"]))


def _contiguous_strides(shape: tuple[int, ...]) -> list[int]:
    strides, running = [], 1
    for size in reversed(shape):
        strides.append(running)
        running *= max(size, 1)
    return strides[::-1]


def _descriptor(spec: TensorSpec) -> ctypes.Array:
    """A rank-specialised memref descriptor: {allocated, aligned, offset, sizes, strides}."""
    fields = [0, 0, 0, *spec.shape, *_contiguous_strides(spec.shape)]
    return (ctypes.c_int64 * len(fields))(*fields)


class CompiledSubgraph:
    """A compiled sub-graph; call it with the non-bound arguments, in order.

    Calls on one object must not overlap in time (threads would share its
    descriptors); separate objects are independent.
    """

    def __init__(
        self,
        library: pathlib.Path,
        func_name: str,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
    ):
        self.library_path = library
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self._library = ctypes.CDLL(str(library))
        self._input_descriptors = [_descriptor(spec) for spec in inputs]
        self._output_descriptors = [_descriptor(spec) for spec in outputs]
        descriptors = self._input_descriptors + self._output_descriptors
        entry = getattr(self._library, ENTRY_PREFIX + func_name)
        entry.argtypes = [ctypes.c_void_p] * len(descriptors)
        entry.restype = None
        self._entry = entry
        self._descriptor_addresses = [ctypes.addressof(d) for d in descriptors]
        self._input_checks = [(spec.shape, spec.dtype) for spec in inputs]
        self._output_factories = [(spec.shape, spec.dtype) for spec in outputs]

    def __call__(self, *arguments: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(arguments) != len(self._input_checks):
            raise TypeError(f"expected {len(self._input_checks)} arguments, got {len(arguments)}")
        keep_alive = []
        for position, (tensor, (shape, dtype), descriptor) in enumerate(
            zip(arguments, self._input_checks, self._input_descriptors)
        ):
            if tensor.dtype != dtype or tensor.shape != shape or not tensor.is_cpu:
                raise TypeError(
                    f"argument {position}: expected a CPU {dtype} tensor of shape "
                    f"{list(shape)}, got {tensor.dtype} {list(tensor.shape)} "
                    f"on {tensor.device}"
                )
            if not tensor.is_contiguous():
                tensor = tensor.contiguous()
                keep_alive.append(tensor)
            descriptor[0] = descriptor[1] = tensor.data_ptr()
        results = tuple(torch.empty(shape, dtype=dtype) for shape, dtype in self._output_factories)
        for result, descriptor in zip(results, self._output_descriptors):
            descriptor[0] = descriptor[1] = result.data_ptr()
        self._entry(*self._descriptor_addresses)
        return results
