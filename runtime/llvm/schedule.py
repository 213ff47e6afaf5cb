"""Loop schedule of the compute-heavy ops of a sub-graph.

Convolutions (full, grouped and depthwise) and matmuls whose weight operand is a
parameter (a bound argument of the entry, or a view of one) or a compile-time constant,
and batch matmuls, are replaced by calls to the register-blocked kernels of
:mod:`.kernels`. The kernels stream their weights in a packed layout: a constant is
re-packed here, once; a parameter through a packed argument that the loader fills
(:mod:`.weight_packing`), so the code does not depend on the parameters' values. Every
other op keeps linalg's default lowering, which LLVM's loop vectoriser handles well for
elementwise code.
"""

import dataclasses
import math

import numpy as np
from torch_mlir import ir

from . import depthwise_kernels, kernels, matmul_kernels, threads, weight_packing

KERNEL_PREFIX = "__dynn_kernel_"


@dataclasses.dataclass(frozen=True)
class _Weights:
    """A kernel's weight operand traced to its origin: compile-time data (`array`), or
    bound entry argument `argument` seen through `steps` (views, as
    :class:`.weight_packing.PackedArgument` steps), of `shape`."""

    shape: tuple[int, ...]
    array: np.ndarray | None = None
    argument: int | None = None
    steps: tuple[tuple[str, object], ...] = ()

    def viewed(self, name: str, operand: object, shape: tuple[int, ...]) -> "_Weights":
        if self.array is not None:
            return _Weights(shape, weight_packing.LAYOUTS[name](self.array, operand))
        return dataclasses.replace(self, shape=shape, steps=(*self.steps, (name, operand)))


@dataclasses.dataclass
class Parameters:
    """The arguments of the entry function `function` bound at load time (`bound`: their
    positions) and the packed arguments the schedule appends to it for kernels that read
    them (`packed`, in argument order after the original ones)."""

    function: ir.Operation
    bound: frozenset[int]
    packed: list[weight_packing.PackedArgument] = dataclasses.field(default_factory=list)

    def argument_index(self, value: ir.Value) -> int | None:
        """The position of `value` among the bound arguments of the entry, else None."""
        if not isinstance(value.owner, ir.Block) or value.owner != self._block:
            return None
        index = ir.BlockArgument(value).arg_number
        return index if index in self.bound else None

    def packed_argument(self, weights: "_Weights", shape: tuple[int, ...]) -> ir.Value:
        """The entry argument holding `weights` packed to `shape` (appended on first use)."""
        packed = weight_packing.PackedArgument(weights.argument, weights.steps, shape)
        original = len(self._block.arguments) - len(self.packed)
        if packed in self.packed:
            return self._block.arguments[original + self.packed.index(packed)]
        weight_type = ir.RankedTensorType.get(list(shape), ir.F32Type.get())
        argument = self._block.add_argument(weight_type, self.function.location)
        self.packed.append(packed)
        attributes = self.function.attributes
        function_type = ir.FunctionType(ir.TypeAttr(attributes["function_type"]).value)
        attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
            [*function_type.inputs, weight_type], function_type.results))
        if "arg_attrs" in attributes:
            argument_attributes = list(ir.ArrayAttr(attributes["arg_attrs"]))
            attributes["arg_attrs"] = ir.ArrayAttr.get([
                *argument_attributes,
                argument_attributes[-1] if argument_attributes else ir.DictAttr.get({})])
        return argument

    @property
    def _block(self) -> ir.Block:
        return self.function.regions[0].blocks[0]


_VIEWS = ("linalg.transpose", "tensor.expand_shape", "tensor.collapse_shape")


def _weights(value: ir.Value, parameters: Parameters | None) -> _Weights | None:
    """`value` as kernel weights: an f32 ``arith.constant``, or a bound f32 argument of
    the entry, or a view of either (``F.linear``'s ``weight.t()`` before fusion folds it,
    a grouped convolution's ``expand_shape``, a depthwise one's ``collapse_shape``); else
    None."""
    tensor_type = ir.RankedTensorType(value.type)
    if not tensor_type.has_static_shape or str(tensor_type.element_type) != "f32":
        return None
    shape = tuple(tensor_type.shape)
    owner = value.owner
    if isinstance(owner, ir.Block):
        index = None if parameters is None else parameters.argument_index(value)
        return None if index is None else _Weights(shape, argument=index)
    operation = owner.operation
    if operation.name in _VIEWS:
        source = _weights(operation.operands[0], parameters)
        if source is None:
            return None
        if operation.name == "linalg.transpose":
            return source.viewed("transpose", tuple(_int_list(operation.attributes["permutation"])),
                                 shape)
        return source.viewed("reshape", shape, shape)
    if operation.name != "arith.constant":
        return None
    attribute = operation.attributes["value"]
    if not isinstance(attribute, ir.DenseFPElementsAttr):
        try:
            attribute = ir.DenseFPElementsAttr(attribute)
        except ValueError:
            return None
    if attribute.is_splat:
        return _Weights(shape, np.full(shape, attribute.get_splat_value().value, dtype=np.float32))
    return _Weights(shape, np.array(attribute, copy=True).reshape(shape))


def _packed_operand(weights: _Weights, layout: str, operand: object,
                    parameters: Parameters | None) -> ir.Value:
    """`weights` in the kernel layout `layout` (a :data:`.weight_packing.LAYOUTS` step):
    a new constant of compile-time data, packed now, or an entry argument packed at load
    time."""
    if weights.array is not None:
        packed = weight_packing.LAYOUTS[layout](weights.array, operand)
        weight_type = ir.RankedTensorType.get(list(packed.shape), ir.F32Type.get())
        return ir.Operation.create(
            "arith.constant", results=[weight_type],
            attributes={"value": ir.DenseElementsAttr.get(np.ascontiguousarray(packed),
                                                          type=weight_type)}).result
    assert parameters is not None
    shape = weight_packing.LAYOUTS[layout](np.zeros(weights.shape, np.float32), operand).shape
    steps = (*weights.steps, (layout, operand))
    return parameters.packed_argument(dataclasses.replace(weights, steps=steps), shape)


def _producer(value: ir.Value, name: str) -> ir.Operation | None:
    """The op defining `value` if it is a `name` op."""
    owner = value.owner
    if isinstance(owner, (ir.OpView, ir.Operation)) and owner.operation.name == name:
        return owner.operation
    return None


def _float_constant(value: ir.Value) -> float | None:
    """The finite f32 scalar of an ``arith.constant``, else None."""
    constant = _producer(value, "arith.constant")
    if constant is None or str(value.type) != "f32":
        return None
    number = ir.FloatAttr(constant.attributes["value"]).value
    return number if math.isfinite(number) else None


def _fill_constant(init: ir.Value) -> float | None:
    """The constant a kernel's output starts at when its init is a ``linalg.fill`` of one
    (convolutions without bias, ``aten.mm``), else None: the kernel then writes a fresh
    output and the fill folds away."""
    fill = _producer(init, "linalg.fill")
    return None if fill is None else _float_constant(fill.operands[0])


def _spatial_zero_padding(value: ir.Value) -> tuple[ir.Value, tuple[int, int, int, int]] | None:
    """(source, (top, bottom, left, right)) when `value` is a ``tensor.pad`` of static,
    spatial-only (last two dimensions) padding with +0.0, as torch-mlir emits for a
    convolution's ``padding``; else None."""
    pad = _producer(value, "tensor.pad")
    if pad is None or len(pad.operands) != 1:
        return None
    low = list(ir.DenseI64ArrayAttr(pad.attributes["static_low"]))
    high = list(ir.DenseI64ArrayAttr(pad.attributes["static_high"]))
    body = pad.regions[0].blocks[0]
    padding_value = _float_constant(body.operations[len(body.operations) - 1].operands[0])
    if (any(low[:-2]) or any(high[:-2]) or padding_value != 0.0
            or math.copysign(1.0, padding_value) < 0):
        return None
    return pad.operands[0], (low[-2], high[-2], low[-1], high[-1])


def _int_list(attribute: ir.Attribute) -> list[int]:
    try:
        return [int(v) for v in ir.DenseIntElementsAttr(attribute)]
    except ValueError:
        return list(ir.DenseI64ArrayAttr(attribute))


def _sizes(value: ir.Value) -> list[int | None]:
    """The dimensions of a ranked tensor value; None for one known only at run time."""
    tensor_type = ir.RankedTensorType(value.type)
    return [None if tensor_type.is_dynamic_dim(axis) else size
            for axis, size in enumerate(tensor_type.shape)]


def _conv_shape(operation: ir.Operation) -> kernels.ConvShape | None:
    """The shape of an f32 NCHW convolution (full, grouped ``NGCHW`` or depthwise),
    dilation 1, whose only run-time dimension (if any) is the batch."""
    if _int_list(operation.attributes["dilations"]) != [1, 1]:
        return None
    input_shape = _sizes(operation.operands[0])
    weight_shape = _sizes(operation.operands[1])
    output_shape = _sizes(operation.results[0])
    if (None in input_shape[1:] + weight_shape + output_shape[1:]
            or str(ir.RankedTensorType(operation.operands[0].type).element_type) != "f32"):
        return None
    stride_h, stride_w = _int_list(operation.attributes["strides"])
    grouped = int(operation.name == "linalg.conv_2d_ngchw_gfchw")
    return kernels.ConvShape(
        channels=input_shape[1 + grouped], padded_height=input_shape[2 + grouped],
        padded_width=input_shape[3 + grouped], filters=output_shape[1 + grouped],
        out_height=output_shape[2 + grouped], out_width=output_shape[3 + grouped],
        kernel_height=weight_shape[-2], kernel_width=weight_shape[-1],
        stride_h=stride_h, stride_w=stride_w,
        groups=input_shape[1] if grouped else 1, batch=input_shape[0])


_MATMUL_MAPS = ("[affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, "
                "affine_map<(d0, d1, d2) -> (d0, d1)>]")
_BATCH_MATMUL_MAPS = ("[affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, "
                      "affine_map<(d0, d1, d2, d3) -> (d0, d3, d2)>, "
                      "affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]")


def _matmul_shape(operation: ir.Operation, default_maps: str) -> matmul_kernels.MatmulShape | None:
    """The ``[M, K] x [K, N]`` shape of an f32 (batch) matmul without transposed maps;
    `M` (and the batch) may be known only at run time, `K` and `N` may not."""
    if len(operation.operands) != 3 or (
            "indexing_maps" in operation.attributes
            and str(operation.attributes["indexing_maps"]) != default_maps):
        return None
    if str(ir.RankedTensorType(operation.operands[0].type).element_type) != "f32":
        return None
    lhs, rhs = _sizes(operation.operands[0]), _sizes(operation.operands[1])
    if None in (lhs[-1], rhs[-1]) and operation.name != "linalg.batch_matmul":
        return None
    return matmul_kernels.MatmulShape(rows=lhs[-2], depth=lhs[-1], columns=rhs[-1])


def _replace_with_kernel_call(operation: ir.Operation, callee: str,
                              weights: tuple[_Weights, str, object] | None,
                              parameters: Parameters | None, lhs: ir.Value | None = None) -> None:
    """Swaps `operation` for ``call @callee(lhs, rhs, init)``; the rhs is the op's own
    unless `weights` (weights, layout, operand) gives it packed (:func:`_packed_operand`);
    the lhs is the op's own unless given (the unpadded input of a kernel that pads)."""
    rhs = operation.operands[1]
    lhs = operation.operands[0] if lhs is None else lhs
    with ir.InsertionPoint(operation), operation.location:
        if weights is not None:
            rhs = _packed_operand(*weights, parameters)
        call = ir.Operation.create(
            "func.call", results=[operation.results[0].type],
            operands=[lhs, rhs, operation.operands[2]],
            attributes={"callee": ir.FlatSymbolRefAttr.get(callee)})
    operation.results[0].replace_all_uses_with(call.result)
    operation.erase()


def _padded_by_kernel(operation: ir.Operation, shape: kernels.ConvShape, initial: float | None
                      ) -> tuple[kernels.ConvShape, ir.Value | None]:
    """The shape of a convolution kernel starting at `initial` that pads its input
    itself, one image at a time, when the input is a spatial zero padding; and the
    unpadded input to call it with (None: the op's own input)."""
    padded = _spatial_zero_padding(operation.operands[0])
    if padded is None:
        return dataclasses.replace(shape, initial=initial), None
    source, padding = padded
    return dataclasses.replace(shape, initial=initial, padding=padding), source


def _kernel_sites(module: ir.Module) -> list[ir.Operation]:
    sites = []

    def visit(operation):
        if operation.operation.name in ("linalg.conv_2d_nchw_fchw", "linalg.conv_2d_ngchw_gfchw",
                                        "linalg.depthwise_conv_2d_nchw_chw", "linalg.matmul",
                                        "linalg.batch_matmul"):
            sites.append(operation.operation)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return sites


def kernel_count(module: ir.Module) -> int:
    """How many kernels :func:`apply` added to `module` (before they are inlined)."""
    return sum(1 for operation in module.body.operations
               if operation.operation.name == "func.func"
               and ir.StringAttr(operation.attributes["sym_name"]).value.startswith(KERNEL_PREFIX))


def apply(module: ir.Module, parameters: Parameters | None = None) -> None:
    """Rewrites eligible convolutions (full, grouped and depthwise), matmuls and batch
    matmuls of `module` into kernel calls; weights that are bound arguments of the entry
    (`parameters`) become packed arguments, packed at load time.

    Runs twice: before elementwise fusion, while matmuls are still named ops on
    2-D (collapsed) operands, and after it, for weights that only fusion's
    constant folding makes constant. The first run matters: fusion propagates the
    ``collapse_shape``/``expand_shape`` around ``aten.mm`` on 3-D activations into
    the matmul, which becomes a rank-5 ``linalg.generic`` no kernel matches, and
    then fuses elementwise producers into it, so e.g. GELU was recomputed for
    every step of the next matmul's reduction. A call is opaque to fusion.
    """
    kernel_texts = []
    first = kernel_count(module)
    for operation in _kernel_sites(module):
        callee = f"{KERNEL_PREFIX}{first + len(kernel_texts)}"
        initial = _fill_constant(operation.operands[2])
        lhs = None
        if operation.name == "linalg.batch_matmul":
            shape = _matmul_shape(operation, _BATCH_MATMUL_MAPS)
            if shape is None:
                continue
            shape = dataclasses.replace(shape, initial=initial)
            batch = _sizes(operation.operands[0])[0]
            kernel_texts.append(matmul_kernels.batch_matmul_kernel(callee, shape, batch))
            _replace_with_kernel_call(operation, callee, None, parameters)
            continue
        weights = _weights(operation.operands[1], parameters)
        if weights is None:
            continue
        if operation.name == "linalg.conv_2d_ngchw_gfchw":
            shape = _conv_shape(operation)
            if shape is None:
                continue
            shape = dataclasses.replace(shape, initial=initial)
            layout = ("grouped_conv", kernels.conv_filter_block(shape))
            kernel_texts.append(kernels.conv_kernel(callee, shape))
        elif operation.name == "linalg.conv_2d_nchw_fchw":
            shape = _conv_shape(operation)
            if shape is None:
                continue
            shape, lhs = _padded_by_kernel(operation, shape, initial)
            layout = ("conv", kernels.conv_filter_block(shape))
            kernel_texts.append(kernels.conv_kernel(callee, shape))
        elif operation.name == "linalg.depthwise_conv_2d_nchw_chw":
            shape = _conv_shape(operation)
            if shape is None or not depthwise_kernels.depthwise_is_supported(shape):
                continue
            shape, lhs = _padded_by_kernel(operation, shape, initial)
            layout = None
            kernel_texts.append(depthwise_kernels.depthwise_kernel(callee, shape))
        else:
            shape = _matmul_shape(operation, _MATMUL_MAPS)
            if shape is None:
                continue
            shape = dataclasses.replace(shape, initial=initial)
            lanes, vectors = matmul_kernels.matmul_tile(shape)
            layout = ("matmul", lanes * vectors)
            kernel_texts.append(matmul_kernels.matmul_kernel(callee, shape))
        _replace_with_kernel_call(operation, callee, None if layout is None else (weights, *layout),
                                  parameters, lhs)
    if not kernel_texts:
        return
    if any(f"@{threads.SET_TEAM_SIZE}" in text for text in kernel_texts):
        kernel_texts.append(kernels.OPENMP_DECLARATIONS)
    library = ir.Module.parse("\n".join(kernel_texts), module.context)
    present = {_symbol(operation) for operation in module.body.operations}
    for function in list(library.body.operations):
        if _symbol(function) not in present:
            module.body.append(function.detach_from_parent())


def _symbol(operation: ir.Operation) -> str | None:
    """The name of a function (kernels, the OpenMP declarations they share)."""
    if operation.operation.name != "func.func":
        return None
    return ir.StringAttr(operation.attributes["sym_name"]).value
