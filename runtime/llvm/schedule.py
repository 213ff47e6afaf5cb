"""Loop schedule of the compute-heavy ops of a sub-graph.

Convolutions (full, grouped and depthwise) and matmuls whose weight operand is a
compile-time constant, and batch matmuls, are replaced by calls to the
register-blocked kernels of :mod:`.kernels`, with constant weights re-packed
once, here, into the layout those kernels stream. Every other op keeps linalg's
default lowering, which LLVM's loop vectoriser handles well for elementwise code.
"""

import dataclasses
import math

import numpy as np
from torch_mlir import ir

from . import depthwise_kernels, kernels, matmul_kernels, threads

KERNEL_PREFIX = "__dynn_kernel_"


def _constant_array(value: ir.Value) -> np.ndarray | None:
    """The data of `value` if it is an f32 ``arith.constant`` or a ``linalg.transpose``
    of one (``F.linear``'s ``weight.t()`` before elementwise fusion folds it), else None."""
    owner = value.owner
    if not isinstance(owner, (ir.OpView, ir.Operation)):
        return None
    operation = owner.operation
    if operation.name == "linalg.transpose":
        source = _constant_array(operation.operands[0])
        if source is None:
            return None
        permutation = _int_list(operation.attributes["permutation"])
        return np.ascontiguousarray(source.transpose(permutation))
    if operation.name != "arith.constant":
        return None
    attribute = operation.attributes["value"]
    if not isinstance(attribute, ir.DenseFPElementsAttr):
        try:
            attribute = ir.DenseFPElementsAttr(attribute)
        except ValueError:
            return None
    shape = tuple(ir.RankedTensorType(attribute.type).shape)
    if str(ir.RankedTensorType(attribute.type).element_type) != "f32":
        return None
    if attribute.is_splat:
        return np.full(shape, attribute.get_splat_value().value, dtype=np.float32)
    return np.array(attribute, copy=True).reshape(shape)


def _grouped_conv_weights(value: ir.Value) -> np.ndarray | None:
    """The ``[G, F, C, KH, KW]`` weights of a grouped convolution if constant: torch-mlir
    hands them over as a ``tensor.expand_shape`` of the ``[G * F, C, KH, KW]``
    parameter, folded only later by canonicalisation."""
    owner = value.owner
    if (isinstance(owner, (ir.OpView, ir.Operation))
            and owner.operation.name == "tensor.expand_shape"):
        source = _constant_array(owner.operation.operands[0])
        shape = ir.RankedTensorType(value.type).shape
        return None if source is None else source.reshape(shape)
    return _constant_array(value)


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
                              packed_weights: np.ndarray | None,
                              lhs: ir.Value | None = None) -> None:
    """Swaps `operation` for ``call @callee(lhs, rhs, init)``; the rhs is
    `packed_weights` as a new constant, or the op's own rhs when None; the lhs is the
    op's own unless given (the unpadded input of a kernel that pads)."""
    rhs = operation.operands[1]
    lhs = operation.operands[0] if lhs is None else lhs
    with ir.InsertionPoint(operation), operation.location:
        if packed_weights is not None:
            weight_type = ir.RankedTensorType.get(list(packed_weights.shape),
                                                  ir.F32Type.get())
            rhs = ir.Operation.create(
                "arith.constant", results=[weight_type],
                attributes={"value": ir.DenseElementsAttr.get(packed_weights,
                                                              type=weight_type)}).result
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


def apply(module: ir.Module) -> None:
    """Rewrites eligible convolutions (full, grouped and depthwise), matmuls and batch
    matmuls of `module` into kernel calls.

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
            _replace_with_kernel_call(operation, callee, None)
            continue
        if operation.name == "linalg.conv_2d_ngchw_gfchw":
            weights = _grouped_conv_weights(operation.operands[1])
            shape = _conv_shape(operation)
            if weights is None or shape is None:
                continue
            shape = dataclasses.replace(shape, initial=initial)
            packed = kernels.pack_grouped_conv_weights(weights, kernels.conv_filter_block(shape))
            kernel_texts.append(kernels.conv_kernel(callee, shape))
            _replace_with_kernel_call(operation, callee, packed)
            continue
        weights = _constant_array(operation.operands[1])
        if weights is None:
            continue
        if operation.name == "linalg.conv_2d_nchw_fchw":
            shape = _conv_shape(operation)
            if shape is None:
                continue
            shape, lhs = _padded_by_kernel(operation, shape, initial)
            packed = kernels.pack_conv_weights(weights, kernels.conv_filter_block(shape))
            kernel_texts.append(kernels.conv_kernel(callee, shape))
        elif operation.name == "linalg.depthwise_conv_2d_nchw_chw":
            shape = _conv_shape(operation)
            if shape is None or not depthwise_kernels.depthwise_is_supported(shape):
                continue
            shape, lhs = _padded_by_kernel(operation, shape, initial)
            packed = weights
            kernel_texts.append(depthwise_kernels.depthwise_kernel(callee, shape))
        else:
            shape = _matmul_shape(operation, _MATMUL_MAPS)
            if shape is None:
                continue
            shape = dataclasses.replace(shape, initial=initial)
            lanes, vectors = matmul_kernels.matmul_tile(shape)
            packed = matmul_kernels.pack_matmul_weights(weights, lanes * vectors)
            kernel_texts.append(matmul_kernels.matmul_kernel(callee, shape))
        _replace_with_kernel_call(operation, callee, packed, lhs)
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
