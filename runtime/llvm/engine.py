"""Calling convention of compiled sub-graphs.

A kernel is a shared object exporting ``_mlir_ciface_<func>``, whose
parameters are pointers to ranked memref descriptors: the inputs in order (the
bound ones, parameters, among them), the packed weight arguments derived from
the parameters (:mod:`.weight_packing`), then one out-parameter per result
(``buffer-results-to-out-params``).

Results are allocated here, with ``torch.empty``, before the call, so a result
whose size is not known at compile time needs its size first: such a sub-graph
also exports a *prelude* ``_mlir_ciface_<func>__prelude`` (see
:mod:`.lowering`), called with the same inputs, which writes into one
``i64`` vector the status of the sub-graph's run-time assertions (0, or
``k`` for the first failing assertion ``k``) and then every dynamic result
dimension. A prelude that reads only input sizes is evaluated once per distinct
signature of dynamic input sizes and its answer cached; one that reads data
(``nonzero``'s count) runs before every call. It takes the inputs only.

Descriptors are ctypes arrays owned by the calling thread (``threading.local``),
built on its first call, with the bound operands' addresses stored once: calls
from any number of threads never share one, and
the kernels themselves keep no state, so calls run concurrently with the GIL
released (ctypes drops it for the call).
"""

import ctypes
import dataclasses
import pathlib
import threading
from collections.abc import Mapping
from typing import Any

import torch

from . import threads
from .weight_packing import PackedArgument

ENTRY_PREFIX = "_mlir_ciface_"
PRELUDE_SUFFIX = "__prelude"
SHAPE_CACHE_LIMIT = 4096
"""Distinct input-size signatures whose result sizes are remembered; then forgotten."""


class SubgraphAssertionError(RuntimeError):
    """A run-time assertion of the sub-graph (``torch.runtime.assert``, a shape check
    torch-mlir emits for dynamic dimensions, or an index bounds check) failed for these
    inputs."""


INDEX_OUT_OF_RANGE = ("an index is out of range for the tensor it indexes (x[idx], "
                      "index_select, gather, embedding, index_put, index_add or scatter)")


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one kernel operand; None marks a dimension known only at run
    time (``?``)."""

    shape: tuple[int | None, ...]
    dtype: torch.dtype

    @property
    def is_static(self) -> bool:
        return None not in self.shape

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "dtype": str(self.dtype).removeprefix("torch.")}

    @staticmethod
    def from_json(data: dict) -> "TensorSpec":
        return TensorSpec(tuple(data["shape"]), getattr(torch, data["dtype"]))

    def __str__(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{str(self.dtype).removeprefix('torch.')}[{dims}]"


@dataclasses.dataclass(frozen=True)
class Prelude:
    """What the prelude computes: `dims` lists the (result, dimension) of every dynamic
    result size in the order written after the status; `assertions` the message of
    each run-time assertion (status k names `assertions[k - 1]`); `reads_data` whether it
    depends on tensor data, not only on input sizes (then it runs on every call)."""

    dims: tuple[tuple[int, int], ...]
    assertions: tuple[str, ...]
    reads_data: bool

    def to_json(self) -> dict:
        return {"dims": [list(d) for d in self.dims], "assertions": list(self.assertions),
                "reads_data": self.reads_data}

    @staticmethod
    def from_json(data: dict) -> "Prelude":
        return Prelude(tuple(tuple(d) for d in data["dims"]), tuple(data["assertions"]),
                       bool(data["reads_data"]))


@dataclasses.dataclass(frozen=True)
class Signature:
    """Everything besides the code that a caller needs: the entry name, operand specs and
    the prelude, if any. Stored beside the shared object as JSON. `checks_indices`: the
    last output is the flag "an index was out of range" (:mod:`.index_bounds`), not a
    result of the sub-graph. `bound`: the positions of the inputs bound when the code is
    loaded (parameters), of which the code reads `read` (the others only through `packed`,
    the arguments derived from them that follow the inputs)."""

    func_name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    prelude: Prelude | None = None
    checks_indices: bool = False
    bound: tuple[int, ...] = ()
    read: tuple[int, ...] = ()
    packed: tuple[PackedArgument, ...] = ()

    def to_json(self) -> dict:
        return {"func_name": self.func_name,
                "inputs": [spec.to_json() for spec in self.inputs],
                "outputs": [spec.to_json() for spec in self.outputs],
                "prelude": None if self.prelude is None else self.prelude.to_json(),
                "checks_indices": self.checks_indices,
                "bound": list(self.bound), "read": list(self.read),
                "packed": [argument.to_json() for argument in self.packed]}

    @staticmethod
    def from_json(data: dict) -> "Signature":
        prelude = data.get("prelude")
        return Signature(data["func_name"],
                         tuple(TensorSpec.from_json(s) for s in data["inputs"]),
                         tuple(TensorSpec.from_json(s) for s in data["outputs"]),
                         None if prelude is None else Prelude.from_json(prelude),
                         bool(data.get("checks_indices", False)),
                         tuple(data.get("bound", ())), tuple(data.get("read", ())),
                         tuple(PackedArgument.from_json(p) for p in data.get("packed", ())))


def _contiguous_strides(shape) -> list[int]:
    strides, running = [], 1
    for size in reversed(shape):
        strides.append(running)
        running *= max(size, 1)
    return strides[::-1]


def _descriptor_length(rank: int) -> int:
    """{allocated, aligned, offset, sizes[rank], strides[rank]}."""
    return 3 + 2 * rank


def _shape_check(declared: tuple[int | None, ...]):
    """None for a static shape (compared whole); else a test of a run-time shape against
    the static dimensions of `declared`, specialised for the usual run-time batch."""
    if None not in declared:
        return None
    rank, tail = len(declared), declared[1:]
    if declared[0] is None and None not in tail:
        return lambda shape: len(shape) == rank and shape[1:] == tail
    fixed = tuple((axis, size) for axis, size in enumerate(declared) if size is not None)
    return lambda shape: len(shape) == rank and all(shape[a] == size for a, size in fixed)


class _ThreadState:
    """One thread's descriptors: an int64 array per operand (inputs, packed arguments, then
    results), the shape last stored in each (sizes and strides of `?` dimensions are
    rewritten only when it changes), and the prelude's output vector with its descriptor.
    `fixed` (descriptor index -> tensor) are the bound operands, stored once."""

    def __init__(self, specs: list[TensorSpec], outputs: int, prelude_length: int,
                 fixed: dict[int, torch.Tensor]):
        self.descriptors = []
        for spec in specs:
            static = [0 if d is None else d for d in spec.shape]
            fields = [0, 0, 0, *static, *_contiguous_strides(static)]
            self.descriptors.append((ctypes.c_int64 * len(fields))(*fields))
        for index, tensor in fixed.items():
            self.descriptors[index][0] = self.descriptors[index][1] = tensor.data_ptr()
        self.addresses = [ctypes.addressof(d) for d in self.descriptors]
        self.stored_shapes: list[tuple[int, ...] | None] = [None] * len(specs)
        self.output_descriptors = self.descriptors[len(specs) - outputs:]
        self.prelude_values = (ctypes.c_int64 * max(prelude_length, 1))()
        address = ctypes.addressof(self.prelude_values)
        self.prelude_descriptor = (ctypes.c_int64 * 5)(address, address, 0, prelude_length, 1)


def _mismatch(what: str, tensor: Any, spec: TensorSpec) -> TypeError:
    got = (f"{tensor.dtype} {list(tensor.shape)} on {tensor.device}"
           if isinstance(tensor, torch.Tensor) else type(tensor).__name__)
    return TypeError(f"{what}: expected a CPU tensor {spec}, got {got}")


def _checked_parameter(position: int, tensor: Any, spec: TensorSpec) -> torch.Tensor:
    """Bound argument `position`, detached, once checked against `spec`."""
    if (not isinstance(tensor, torch.Tensor) or tensor.dtype != spec.dtype
            or not tensor.is_cpu or tuple(tensor.shape) != spec.shape):
        raise _mismatch(f"bound argument {position}", tensor, spec)
    return tensor.detach()


class CompiledSubgraph:
    """A compiled sub-graph with its parameters bound; call it with the other arguments,
    in order. Safe to call from several threads at once.

    The parameters (`bound_args`: input position -> tensor, the positions
    `signature.bound`) are copied when bound, and packed into the layouts the kernels
    read (`signature.packed`): later in-place updates of the caller's tensors do not
    reach the compiled code, as they did not when the parameters were code constants.
    Several instances may share one library, each with parameters of its own."""

    def __init__(self, library: pathlib.Path, signature: Signature,
                 bound_args: Mapping[int, torch.Tensor] | None = None):
        bound_args = dict(bound_args or {})
        if sorted(bound_args) != list(signature.bound):
            raise TypeError(f"bound arguments {sorted(bound_args)} given where the compiled code "
                            f"binds {list(signature.bound)}")
        self.library_path = library
        self.signature = signature
        threads.load_runtime()
        self._library = ctypes.CDLL(str(library))
        all_inputs, packed = signature.inputs, signature.packed
        self._fixed = self._bind(signature, bound_args)
        self._free = [p for p in range(len(all_inputs)) if p not in signature.bound]
        self.inputs = tuple(all_inputs[p] for p in self._free)
        self.outputs = signature.outputs
        self._specs = [*all_inputs, *(TensorSpec(p.shape, torch.float32) for p in packed),
                       *self.outputs]
        self._entry = self._function(signature.func_name, len(self._specs))
        self._prelude = signature.prelude
        self._prelude_entry = (None if self._prelude is None else
                               self._function(signature.func_name + PRELUDE_SUFFIX,
                                              len(all_inputs) + 1))
        self._prelude_arity = len(all_inputs)
        self._prelude_length = 0 if self._prelude is None else 1 + len(self._prelude.dims)
        self._local = threading.local()
        self._dynamic_inputs = [
            (position, [axis for axis, d in enumerate(spec.shape) if d is None])
            for position, spec in enumerate(self.inputs) if not spec.is_static]
        self._static_outputs = tuple(spec.is_static for spec in self.outputs)
        self._input_checks = tuple((index, spec.shape, spec.dtype, _shape_check(spec.shape))
                                   for index, spec in zip(self._free, self.inputs))
        self._result_sizes: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {}
        self._static_results = (tuple((spec.shape, spec.dtype) for spec in self.outputs)
                                if self._prelude is None and not self._dynamic_inputs
                                else None)
        self._checks_indices = signature.checks_indices

    @staticmethod
    def _bind(signature: Signature, bound_args: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """Descriptor index -> tensor of every bound operand: the bound inputs the code
        reads (copies) and the packed arguments (packed from them)."""
        parameters = {position: _checked_parameter(position, tensor, signature.inputs[position])
                      for position, tensor in bound_args.items()}
        fixed = {position: parameters[position].clone(memory_format=torch.contiguous_format)
                 for position in signature.read}
        first_packed = len(signature.inputs)
        for offset, argument in enumerate(signature.packed):
            source = parameters[argument.source]
            if source.dtype != torch.float32:
                raise TypeError(f"bound argument {argument.source}: packed weights must be "
                                f"float32, not {source.dtype}")
            fixed[first_packed + offset] = torch.from_numpy(
                argument.pack(source.contiguous().numpy()))
        return fixed

    def _function(self, name: str, arity: int):
        entry = getattr(self._library, ENTRY_PREFIX + name)
        entry.argtypes = [ctypes.c_void_p] * arity
        entry.restype = None
        return entry

    @staticmethod
    def _reject(position: int, tensor, spec: TensorSpec) -> None:
        """Raises the TypeError for an argument that does not match `spec`."""
        raise _mismatch(f"argument {position}", tensor, spec)

    def __call__(self, *arguments: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(arguments) != len(self.inputs):
            raise TypeError(f"expected {len(self.inputs)} arguments, got {len(arguments)}")
        threads.prepare_calling_thread()
        try:
            state = self._local.state
        except AttributeError:
            state = self._local.state = _ThreadState(self._specs, len(self.outputs),
                                                     self._prelude_length, self._fixed)
        keep_alive = []
        descriptors, stored = state.descriptors, state.stored_shapes
        for position, tensor in enumerate(arguments):
            index, declared, dtype, check_shape = self._input_checks[position]
            try:
                shape = tensor.shape
                valid = (tensor.dtype == dtype and tensor.is_cpu
                         and (shape == declared if check_shape is None else check_shape(shape)))
            except AttributeError:
                valid = False
            if not valid:
                self._reject(position, tensor, self.inputs[position])
            if not tensor.is_contiguous():
                tensor = tensor.contiguous()
                keep_alive.append(tensor)
            descriptor = descriptors[index]
            descriptor[0] = descriptor[1] = tensor.data_ptr()
            if check_shape is not None and stored[index] != shape:
                self._store_sizes(descriptor, shape)
                stored[index] = shape
        if self._static_results is not None:
            results = tuple(torch.empty(shape, dtype=dtype)
                            for shape, dtype in self._static_results)
            for result, descriptor in zip(results, state.output_descriptors):
                descriptor[0] = descriptor[1] = result.data_ptr()
            self._entry(*state.addresses)
            return self._checked(results) if self._checks_indices else results
        shapes = self._result_shapes(state, arguments)
        results = tuple(torch.empty(shape, dtype=spec.dtype)
                        for shape, spec in zip(shapes, self.outputs))
        first_output = len(self._specs) - len(self.outputs)
        for index, (result, descriptor, static) in enumerate(
                zip(results, state.output_descriptors, self._static_outputs)):
            descriptor[0] = descriptor[1] = result.data_ptr()
            if not static and stored[first_output + index] != result.shape:
                self._store_sizes(descriptor, result.shape)
                stored[first_output + index] = result.shape
        self._entry(*state.addresses)
        return self._checked(results) if self._checks_indices else results

    @staticmethod
    def _checked(results: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """The results without the trailing index-bounds flag; raises if it is set."""
        if results[-1].item():
            raise SubgraphAssertionError(INDEX_OUT_OF_RANGE)
        return results[:-1]

    @staticmethod
    def _store_sizes(descriptor: ctypes.Array, shape: torch.Size) -> None:
        rank = len(shape)
        descriptor[3:3 + rank] = list(shape)
        descriptor[3 + rank:3 + 2 * rank] = _contiguous_strides(shape)

    def _result_shapes(self, state: _ThreadState, arguments) -> tuple[tuple[int, ...], ...]:
        """Result shapes from the prelude, cached per input-size signature unless the
        prelude reads data; raises SubgraphAssertionError when an assertion fails."""
        if self._prelude is None:  # dynamic inputs, static results, no assertion
            return tuple(spec.shape for spec in self.outputs)
        key = None
        if not self._prelude.reads_data:
            key = tuple(arguments[p].shape[a] for p, axes in self._dynamic_inputs for a in axes)
            shapes = self._result_sizes.get(key)
            if shapes is not None:
                return shapes
        self._prelude_entry(*state.addresses[:self._prelude_arity],
                            ctypes.addressof(state.prelude_descriptor))
        values = list(state.prelude_values[:self._prelude_length])
        if values[0]:
            raise SubgraphAssertionError(self._prelude.assertions[values[0] - 1])
        shapes = [list(spec.shape) for spec in self.outputs]
        for (result, axis), size in zip(self._prelude.dims, values[1:]):
            shapes[result][axis] = size
        shapes = tuple(tuple(shape) for shape in shapes)
        if key is not None:
            if len(self._result_sizes) >= SHAPE_CACHE_LIMIT:
                self._result_sizes.clear()
            self._result_sizes[key] = shapes
        return shapes
