"""The depthwise convolution kernel (MobileNet's 3x3 per-channel convolutions; see
:mod:`.kernels` for the full and grouped ones and the shared text emitter): vectors
along the output row, a block of rows per tile, in the loop over images of
:class:`.kernels.ConvShape`'s kernels.
"""

from .kernels import (  # the shared emitter of kernel text
    MAX_ACCUMULATORS,
    ConvShape,
    _close_loop,
    _conv_output_dims,
    _Emitter,
    _open_loop,
    _OuterLoops,
    _read_input_row,
    _row_lanes,
    _row_vectors,
    _tensor,
    conv_function,
    initial_vectors,
)


def depthwise_is_supported(shape: ConvShape) -> bool:
    """Rows of at least 8 pixels fill a vector; smaller maps keep linalg's loops."""
    return shape.out_width >= 8


def depthwise_kernel(name: str, shape: ConvShape) -> str:
    """The function text `(input, weights [C, KH, KW], init) -> output` of a depthwise
    convolution: vectors along the output row, a block of rows per tile."""
    lanes = _row_lanes(shape.out_width)
    vectors = _row_vectors(shape.out_width, lanes)
    rows = max(r for r in (8, 4, 2, 1)
               if shape.out_height % r == 0 and r * vectors <= MAX_ACCUMULATORS // 2)
    row_tile = lanes * vectors
    vector_type = f"vector<{lanes}xf32>"
    input_type = _tensor((shape.batch, shape.channels, shape.padded_height, shape.padded_width))
    weight_type = _tensor((shape.channels, shape.kernel_height, shape.kernel_width))
    output_type = _tensor(_conv_output_dims(shape))
    stride = shape.stride_w
    e = _Emitter()
    zero = "%zero"
    e.emit(f"{zero} = arith.constant 0.0 : f32")
    outer = _OuterLoops.open(e, shape, input_type, _conv_output_dims(shape))
    lead, input_lead, item_type = outer.output_lead, outer.input_lead, outer.tensor_type
    (out0,) = _open_loop(e, "%c", shape.channels, 1, [("%o0", outer.tensor, item_type)])
    (out1,) = _open_loop(e, "%oh", shape.out_height, rows, [("%o1", "%o0", item_type)])
    (out2,) = _open_loop(e, "%ow", shape.out_width, row_tile,
                                [("%o2", "%o1", item_type)])
    output_rows = [e.add("%oh", r) for r in range(rows)]
    columns = [e.add("%ow", j * lanes) for j in range(vectors)]
    blocks = [(r, j) for r in range(rows) for j in range(vectors)]

    def read_initial() -> list[str]:
        values = []
        for r, j in blocks:
            value = e.fresh("init")
            e.emit(f"{value} = vector.transfer_read %o2[{lead}%c, {output_rows[r]}, "
                   f"{columns[j]}], {zero} {{in_bounds = [true]}} : {item_type}, {vector_type}")
            values.append(value)
        return values

    accumulators = initial_vectors(e, shape.initial, len(blocks), vector_type, read_initial)
    for kh in range(shape.kernel_height):
        input_rows = [e.affine(f"(d0 + {r}) * {shape.stride_h} + {kh}", ["%oh"])
                      for r in range(rows)]
        for kw in range(shape.kernel_width):
            weight = e.fresh("w")
            e.emit(f"{weight} = tensor.extract %weights[%c, {e.index(kh)}, {e.index(kw)}] : "
                   f"{weight_type}")
            for k, (r, j) in enumerate(blocks):
                value = _read_input_row(e, f"{input_lead}%c, {input_rows[r]}",
                                        j * lanes * stride + kw, stride, lanes, zero,
                                        outer.input_type)
                accumulators[k] = e.fma(weight, value, accumulators[k], vector_type)
    result = "%o2"
    for k, (r, j) in enumerate(blocks):
        written = e.fresh("o")
        e.emit(f"{written} = vector.transfer_write {accumulators[k]}, {result}[{lead}%c, "
               f"{output_rows[r]}, {columns[j]}] {{in_bounds = [true]}} : {vector_type}, "
               f"{item_type}")
        result = written
    _close_loop(e, [result], [item_type])
    _close_loop(e, [out2], [item_type])
    _close_loop(e, [out1], [item_type])
    out0 = outer.close(out0)
    return conv_function(name, shape, (input_type, weight_type, output_type), e, out0)
