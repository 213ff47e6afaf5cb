"""Loop schedule of the compute-heavy ops of a sub-graph.

Convolutions (full and depthwise) and matmuls whose weight operand is a
compile-time constant are replaced by calls to the register-blocked kernels of :mod:`.kernels`, with the
weights re-packed once, here, into the layout those kernels stream. Every
other op keeps linalg's default lowering, which LLVM's loop vectoriser
handles well for elementwise code.
"""

import numpy as np
from torch_mlir import ir

from . import kernels


def _constant_array(value: ir.Value) -> np.ndarray | None:
    """The data of `value` if it is an f32 ``arith.constant``, else None."""
    owner = value.owner
    if not isinstance(owner, (ir.OpView, ir.Operation)):
        return None
    operation = owner.operation
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


def _int_list(attribute: ir.Attribute) -> list[int]:
    return [int(v) for v in ir.DenseIntElementsAttr(attribute)]


def _conv_shape(operation: ir.Operation) -> kernels.ConvShape | None:
    """The shape of a batch-1 f32 NCHW convolution (full or depthwise), dilation 1."""
    if _int_list(operation.attributes["dilations"]) != [1, 1]:
        return None
    input_shape = ir.RankedTensorType(operation.operands[0].type).shape
    weight_shape = ir.RankedTensorType(operation.operands[1].type).shape
    output_shape = ir.RankedTensorType(operation.results[0].type).shape
    if input_shape[0] != 1 or str(ir.RankedTensorType(operation.operands[0].type)
                                  .element_type) != "f32":
        return None
    stride_h, stride_w = _int_list(operation.attributes["strides"])
    return kernels.ConvShape(
        channels=input_shape[1], padded_height=input_shape[2], padded_width=input_shape[3],
        filters=output_shape[1], out_height=output_shape[2], out_width=output_shape[3],
        kernel_height=weight_shape[-2], kernel_width=weight_shape[-1],
        stride_h=stride_h, stride_w=stride_w)


_MATMUL_MAPS = ("[affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, "
                "affine_map<(d0, d1, d2) -> (d0, d1)>]")


def _matmul_shape(operation: ir.Operation) -> kernels.MatmulShape | None:
    if len(operation.operands) != 3 or (
            "indexing_maps" in operation.attributes
            and str(operation.attributes["indexing_maps"]) != _MATMUL_MAPS):
        return None
    lhs = ir.RankedTensorType(operation.operands[0].type)
    if str(lhs.element_type) != "f32":
        return None
    rhs_shape = ir.RankedTensorType(operation.operands[1].type).shape
    return kernels.MatmulShape(rows=lhs.shape[0], depth=lhs.shape[1], columns=rhs_shape[1])


def _replace_with_kernel_call(operation: ir.Operation, callee: str,
                              packed_weights: np.ndarray) -> None:
    with ir.InsertionPoint(operation), operation.location:
        weight_type = ir.RankedTensorType.get(list(packed_weights.shape),
                                              ir.F32Type.get())
        weights = ir.Operation.create(
            "arith.constant", results=[weight_type],
            attributes={"value": ir.DenseElementsAttr.get(packed_weights, type=weight_type)})
        call = ir.Operation.create(
            "func.call", results=[operation.results[0].type],
            operands=[operation.operands[0], weights.result, operation.operands[2]],
            attributes={"callee": ir.FlatSymbolRefAttr.get(callee)})
    operation.results[0].replace_all_uses_with(call.result)
    operation.erase()


def _kernel_sites(module: ir.Module) -> list[ir.Operation]:
    sites = []

    def visit(operation):
        if operation.operation.name in ("linalg.conv_2d_nchw_fchw",
                                        "linalg.depthwise_conv_2d_nchw_chw", "linalg.matmul"):
            sites.append(operation.operation)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return sites


def apply(module: ir.Module) -> None:
    """Rewrites eligible convolutions (full and depthwise) and matmuls of `module`
    into kernel calls."""
    kernel_texts = []
    for operation in _kernel_sites(module):
        weights = _constant_array(operation.operands[1])
        if weights is None:
            continue
        callee = f"__dynn_kernel_{len(kernel_texts)}"
        if operation.name == "linalg.conv_2d_nchw_fchw":
            shape = _conv_shape(operation)
            if shape is None:
                continue
            packed = kernels.pack_conv_weights(weights, kernels.conv_filter_block(shape))
            kernel_texts.append(kernels.conv_kernel(callee, shape))
        elif operation.name == "linalg.depthwise_conv_2d_nchw_chw":
            shape = _conv_shape(operation)
            if shape is None or not kernels.depthwise_is_supported(shape):
                continue
            packed = weights
            kernel_texts.append(kernels.depthwise_kernel(callee, shape))
        else:
            shape = _matmul_shape(operation)
            if shape is None:
                continue
            lanes, vectors = kernels.matmul_tile(shape)
            packed = kernels.pack_matmul_weights(weights, lanes * vectors)
            kernel_texts.append(kernels.matmul_kernel(callee, shape))
        _replace_with_kernel_call(operation, callee, packed)
    if not kernel_texts:
        return
    library = ir.Module.parse("\n".join(kernel_texts), module.context)
    for function in list(library.body.operations):
        module.body.append(function.detach_from_parent())
