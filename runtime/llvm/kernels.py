"""Register-blocked, vectorised kernels for the compute-heavy linalg ops.

``linalg.conv_2d_nchw_fchw`` and ``linalg.matmul`` whose weights are
compile-time constants (bound parameters) are replaced by calls to private
functions generated here, written in the ``scf`` + ``vector`` dialects on
tensors so that they bufferise with the rest of the sub-graph. Each kernel
keeps a block of output vectors in registers across the whole reduction and
reads its weights from a copy re-packed at compile time so that every weight
access in the inner loop is a contiguous vector or a scalar broadcast.

Kernel shapes (f32, AVX-512 wide vectors of 16 lanes):

* conv, output rows of at least 8 pixels: vectors run along the output row;
  a block of ``FB`` output channels x ``NV`` vectors of the row is accumulated
  (``FB x NV`` independent FMA chains), each input vector is reused ``FB``
  times and each weight is a broadcast scalar.
* conv, small feature maps (VGG's 4x4, 2x2): vectors run along 16 output
  channels and every output pixel of the map is one accumulator, so each
  weight vector is loaded once per call.
* matmul ``[M, K] x [K, N]`` (linear layers, LSTM gates at batch 1): vectors
  run along ``N``; one tile of up to 8 vectors per ``K`` sweep, weights packed
  ``[N / tile, K, tile]`` so the sweep streams memory contiguously.
"""

import dataclasses

import numpy as np

VECTOR_LANES = 16
MAX_ACCUMULATORS = 16


def _largest_divisor(value: int, candidates: tuple[int, ...]) -> int:
    return next(c for c in candidates if value % c == 0)


class _Emitter:
    """Builds MLIR text with fresh SSA names and cached index constants."""

    def __init__(self):
        self.lines: list[str] = []
        self.counter = 0
        self.index_constants: dict[int, str] = {}

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"%{stem}{self.counter}"

    def emit(self, line: str) -> None:
        self.lines.append("    " + line)

    def index(self, value: int) -> str:
        if value not in self.index_constants:
            name = f"%i{value}"
            self.index_constants[value] = name
            self.lines.insert(0, f"    {name} = arith.constant {value} : index")
        return self.index_constants[value]

    def add(self, base: str, offset: int) -> str:
        if offset == 0:
            return base
        name = self.fresh("a")
        self.emit(f"{name} = arith.addi {base}, {self.index(offset)} : index")
        return name

    def affine(self, expression: str, operands: list[str]) -> str:
        dims = ", ".join(f"d{i}" for i in range(len(operands)))
        name = self.fresh("a")
        self.emit(f"{name} = affine.apply affine_map<({dims}) -> ({expression})>"
                  f"({', '.join(operands)})")
        return name

    def fma(self, scalar_source: str, vector: str, accumulator: str, vector_type: str) -> str:
        broadcast = self.fresh("b")
        self.emit(f"{broadcast} = vector.broadcast {scalar_source} : f32 to {vector_type}")
        result = self.fresh("acc")
        self.emit(f"{result} = vector.fma {broadcast}, {vector}, {accumulator} : {vector_type}")
        return result


def _tensor(shape: tuple[int, ...]) -> str:
    return "tensor<" + "x".join(str(s) for s in shape) + "xf32>"


def _loop_nest_header(emitter: _Emitter, induction: str, upper: int, step: int,
                      carried: list[tuple[str, str, str]]) -> list[str]:
    """Opens an scf.for; `carried` holds (region name, initial value, type)."""
    results = emitter.fresh("r")
    iter_args = ", ".join(f"{name} = {init}" for name, init, _ in carried)
    types = ", ".join(t for _, _, t in carried)
    emitter.emit(f"{results}:{len(carried)} = scf.for {induction} = {emitter.index(0)} to "
                 f"{emitter.index(upper)} step {emitter.index(step)} iter_args({iter_args}) "
                 f"-> ({types}) {{")
    return [f"{results}#{i}" for i in range(len(carried))]


def _close_loop(emitter: _Emitter, yielded: list[str], types: list[str]) -> None:
    emitter.emit(f"scf.yield {', '.join(yielded)} : {', '.join(types)}")
    emitter.emit("}")


def _function(name: str, arguments: list[tuple[str, str]], result_type: str,
              emitter: _Emitter, result: str) -> str:
    signature = ", ".join(f"{arg}: {arg_type}" for arg, arg_type in arguments)
    body = "\n".join(emitter.lines)
    return (f"func.func private @{name}({signature}) -> {result_type} {{\n{body}\n"
            f"    return {result} : {result_type}\n}}\n")


@dataclasses.dataclass(frozen=True)
class ConvShape:
    """A batch-1 NCHW convolution over an already padded input, dilation 1."""

    channels: int
    padded_height: int
    padded_width: int
    filters: int
    out_height: int
    out_width: int
    kernel_height: int
    kernel_width: int
    stride_h: int
    stride_w: int

    @property
    def vectorize_along_width(self) -> bool:
        return self.out_width >= 8


def conv_filter_block(shape: ConvShape) -> int:
    if not shape.vectorize_along_width:
        return VECTOR_LANES
    lanes = _largest_divisor(shape.out_width, (16, 8, 4, 2, 1))
    vectors_per_row_tile = min(shape.out_width // lanes, 2)
    return _largest_divisor(shape.filters, tuple(
        b for b in (16, 8, 4, 2, 1) if b * vectors_per_row_tile <= MAX_ACCUMULATORS))


def pack_conv_weights(weights: np.ndarray, filter_block: int) -> np.ndarray:
    """[F, C, KH, KW] -> [ceil(F / FB), C, KH, KW, FB], zero-padded filters."""
    filters = weights.shape[0]
    blocks = -(-filters // filter_block)
    padded = np.zeros((blocks * filter_block, *weights.shape[1:]), dtype=weights.dtype)
    padded[:filters] = weights
    return np.ascontiguousarray(
        padded.reshape(blocks, filter_block, *weights.shape[1:]).transpose(0, 2, 3, 4, 1))


def conv_kernel(name: str, shape: ConvShape) -> str:
    """The function text `(input, packed weights, init) -> output` of a convolution."""
    if shape.vectorize_along_width:
        return _conv_along_width(name, shape)
    return _conv_along_filters(name, shape)


def _conv_types(shape: ConvShape, filter_block: int) -> tuple[str, str, str]:
    blocks = -(-shape.filters // filter_block)
    return (_tensor((1, shape.channels, shape.padded_height, shape.padded_width)),
            _tensor((blocks, shape.channels, shape.kernel_height, shape.kernel_width,
                     filter_block)),
            _tensor((1, shape.filters, shape.out_height, shape.out_width)))


def _conv_along_width(name: str, shape: ConvShape) -> str:
    filter_block = conv_filter_block(shape)
    lanes = _largest_divisor(shape.out_width, (16, 8, 4, 2, 1))
    vectors = min(shape.out_width // lanes, 2)
    row_tile = lanes * vectors
    vector_type = f"vector<{lanes}xf32>"
    input_type, weight_type, output_type = _conv_types(shape, filter_block)
    e = _Emitter()
    zero = "%zero"
    e.emit(f"{zero} = arith.constant 0.0 : f32")
    c0 = e.index(0)
    (out0,) = _loop_nest_header(e, "%fo", shape.filters // filter_block, 1,
                                [("%o0", "%init", output_type)])
    filter_base = e.affine(f"d0 * {filter_block}", ["%fo"])
    (out1,) = _loop_nest_header(e, "%oh", shape.out_height, 1, [("%o1", "%o0", output_type)])
    (out2,) = _loop_nest_header(e, "%ow", shape.out_width, row_tile,
                                [("%o2", "%o1", output_type)])
    filter_index = [e.add(filter_base, i) for i in range(filter_block)]
    column_index = [e.add("%ow", j * lanes) for j in range(vectors)]
    blocks = [(i, j) for i in range(filter_block) for j in range(vectors)]
    initial = []
    for i, j in blocks:
        value = e.fresh("init")
        e.emit(f"{value} = vector.transfer_read %o2[{c0}, {filter_index[i]}, %oh, "
               f"{column_index[j]}], {zero} {{in_bounds = [true]}} : {output_type}, {vector_type}")
        initial.append(value)
    accumulator_types = [vector_type] * len(blocks)
    by_channel = _loop_nest_header(e, "%c", shape.channels, 1, [
        (f"%ca{k}", initial[k], vector_type) for k in range(len(blocks))])
    by_row = _loop_nest_header(e, "%kh", shape.kernel_height, 1, [
        (f"%ka{k}", f"%ca{k}", vector_type) for k in range(len(blocks))])
    input_row = e.affine(f"d0 * {shape.stride_h} + d1", ["%oh", "%kh"])
    accumulators = [f"%ka{k}" for k in range(len(blocks))]
    stride = shape.stride_w
    for kw in range(shape.kernel_width):
        inputs = []
        for j in range(vectors):
            column = e.affine(f"d0 * {stride} + {j * lanes * stride + kw}", ["%ow"])
            value = e.fresh("x")
            if stride == 1:
                e.emit(f"{value} = vector.transfer_read %input[{c0}, %c, {input_row}, {column}], "
                       f"{zero} {{in_bounds = [true]}} : {input_type}, {vector_type}")
            else:
                wide = e.fresh("xw")
                e.emit(f"{wide} = vector.transfer_read %input[{c0}, %c, {input_row}, {column}], "
                       f"{zero} {{in_bounds = [false]}} : {input_type}, "
                       f"vector<{lanes * stride}xf32>")
                lanes_taken = ", ".join(str(stride * t) for t in range(lanes))
                e.emit(f"{value} = vector.shuffle {wide}, {wide} [{lanes_taken}] : "
                       f"vector<{lanes * stride}xf32>, vector<{lanes * stride}xf32>")
            inputs.append(value)
        for i in range(filter_block):
            weight = e.fresh("w")
            e.emit(f"{weight} = tensor.extract %weights[%fo, %c, %kh, {e.index(kw)}, "
                   f"{e.index(i)}] : {weight_type}")
            for j in range(vectors):
                k = blocks.index((i, j))
                accumulators[k] = e.fma(weight, inputs[j], accumulators[k], vector_type)
    _close_loop(e, accumulators, accumulator_types)
    _close_loop(e, by_row, accumulator_types)
    result = "%o2"
    for k, (i, j) in enumerate(blocks):
        written = e.fresh("o")
        e.emit(f"{written} = vector.transfer_write {by_channel[k]}, {result}[{c0}, "
               f"{filter_index[i]}, %oh, {column_index[j]}] {{in_bounds = [true]}} : "
               f"{vector_type}, {output_type}")
        result = written
    _close_loop(e, [result], [output_type])
    _close_loop(e, [out2], [output_type])
    _close_loop(e, [out1], [output_type])
    return _function(name, [("%input", input_type), ("%weights", weight_type),
                            ("%init", output_type)], output_type, e, out0)


def _conv_along_filters(name: str, shape: ConvShape) -> str:
    lanes = VECTOR_LANES
    vector_type = f"vector<{lanes}xf32>"
    input_type, weight_type, output_type = _conv_types(shape, lanes)
    pixels = [(oh, ow) for oh in range(shape.out_height) for ow in range(shape.out_width)]
    e = _Emitter()
    zero = "%zero"
    e.emit(f"{zero} = arith.constant 0.0 : f32")
    c0 = e.index(0)
    (out0,) = _loop_nest_header(e, "%fo", -(-shape.filters // lanes), 1,
                                [("%o0", "%init", output_type)])
    filter_base = e.affine(f"d0 * {lanes}", ["%fo"])
    filter_index = [e.add(filter_base, lane) for lane in range(lanes)]
    initial = []
    for oh, ow in pixels:
        elements = []
        for lane in range(lanes):
            element = e.fresh("e")
            e.emit(f"{element} = tensor.extract %o0[{c0}, {filter_index[lane]}, {e.index(oh)}, "
                   f"{e.index(ow)}] : {output_type}")
            elements.append(element)
        value = e.fresh("init")
        e.emit(f"{value} = vector.from_elements {', '.join(elements)} : {vector_type}")
        initial.append(value)
    accumulator_types = [vector_type] * len(pixels)
    by_channel = _loop_nest_header(e, "%c", shape.channels, 1, [
        (f"%ca{k}", initial[k], vector_type) for k in range(len(pixels))])
    by_row = _loop_nest_header(e, "%kh", shape.kernel_height, 1, [
        (f"%ka{k}", f"%ca{k}", vector_type) for k in range(len(pixels))])
    accumulators = [f"%ka{k}" for k in range(len(pixels))]
    input_rows = {oh: e.affine(f"d0 + {oh * shape.stride_h}", ["%kh"])
                  for oh in range(shape.out_height)}
    for kw in range(shape.kernel_width):
        weight = e.fresh("w")
        e.emit(f"{weight} = vector.transfer_read %weights[%fo, %c, %kh, {e.index(kw)}, {c0}], "
               f"{zero} {{in_bounds = [true]}} : {weight_type}, {vector_type}")
        for k, (oh, ow) in enumerate(pixels):
            scalar = e.fresh("x")
            e.emit(f"{scalar} = tensor.extract %input[{c0}, %c, {input_rows[oh]}, "
                   f"{e.index(ow * shape.stride_w + kw)}] : {input_type}")
            accumulators[k] = e.fma(scalar, weight, accumulators[k], vector_type)
    _close_loop(e, accumulators, accumulator_types)
    _close_loop(e, by_row, accumulator_types)
    result = "%o0"
    for k, (oh, ow) in enumerate(pixels):
        for lane in range(lanes):
            element = e.fresh("e")
            e.emit(f"{element} = vector.extract {by_channel[k]}[{lane}] : f32 from {vector_type}")
            written = e.fresh("o")
            e.emit(f"{written} = tensor.insert {element} into {result}[{c0}, "
                   f"{filter_index[lane]}, {e.index(oh)}, {e.index(ow)}] : {output_type}")
            result = written
    _close_loop(e, [result], [output_type])
    return _function(name, [("%input", input_type), ("%weights", weight_type),
                            ("%init", output_type)], output_type, e, out0)


def conv_is_supported(shape: ConvShape) -> bool:
    """Whether a kernel applies: the small-map one needs whole filter blocks and
    every output pixel in a register."""
    if shape.vectorize_along_width:
        return True
    return (shape.filters % VECTOR_LANES == 0
            and shape.out_height * shape.out_width <= MAX_ACCUMULATORS)


@dataclasses.dataclass(frozen=True)
class MatmulShape:
    rows: int
    depth: int
    columns: int


def matmul_tile(shape: MatmulShape) -> tuple[int, int]:
    """(lanes, vectors per tile) with the tile dividing the lane-padded column count."""
    lanes = VECTOR_LANES
    column_vectors = -(-shape.columns // lanes)
    return lanes, _largest_divisor(column_vectors, (8, 7, 6, 5, 4, 3, 2, 1))


def pack_matmul_weights(weights: np.ndarray, tile: int) -> np.ndarray:
    """[K, N] -> [ceil(N / tile), K, tile], zero-padded columns."""
    depth, columns = weights.shape
    tiles = -(-columns // tile)
    padded = np.zeros((depth, tiles * tile), dtype=weights.dtype)
    padded[:, :columns] = weights
    return np.ascontiguousarray(padded.reshape(depth, tiles, tile).transpose(1, 0, 2))


def matmul_kernel(name: str, shape: MatmulShape) -> str:
    """The function text `(lhs, packed rhs, init) -> result` of an [M,K]x[K,N] matmul."""
    lanes, vectors = matmul_tile(shape)
    tile = lanes * vectors
    tiles = -(-shape.columns // tile)
    vector_type = f"vector<{lanes}xf32>"
    lhs_type = _tensor((shape.rows, shape.depth))
    weight_type = _tensor((tiles, shape.depth, tile))
    output_type = _tensor((shape.rows, shape.columns))
    in_bounds = "true" if shape.columns % lanes == 0 else "false"
    e = _Emitter()
    zero = "%zero"
    e.emit(f"{zero} = arith.constant 0.0 : f32")
    c0 = e.index(0)
    (out0,) = _loop_nest_header(e, "%m", shape.rows, 1, [("%o0", "%init", output_type)])
    (out1,) = _loop_nest_header(e, "%t", tiles, 1, [("%o1", "%o0", output_type)])
    column_base = e.affine(f"d0 * {tile}", ["%t"])
    columns = [e.add(column_base, j * lanes) for j in range(vectors)]
    initial = []
    for j in range(vectors):
        value = e.fresh("init")
        e.emit(f"{value} = vector.transfer_read %o1[%m, {columns[j]}], {zero} "
               f"{{in_bounds = [{in_bounds}]}} : {output_type}, {vector_type}")
        initial.append(value)
    accumulator_types = [vector_type] * vectors
    by_depth = _loop_nest_header(e, "%k", shape.depth, 1, [
        (f"%da{j}", initial[j], vector_type) for j in range(vectors)])
    scalar = e.fresh("x")
    e.emit(f"{scalar} = tensor.extract %lhs[%m, %k] : {lhs_type}")
    accumulators = []
    for j in range(vectors):
        weight = e.fresh("w")
        e.emit(f"{weight} = vector.transfer_read %weights[%t, %k, {e.index(j * lanes)}], "
               f"{zero} {{in_bounds = [true]}} : {weight_type}, {vector_type}")
        accumulators.append(e.fma(scalar, weight, f"%da{j}", vector_type))
    _close_loop(e, accumulators, accumulator_types)
    result = "%o1"
    for j in range(vectors):
        written = e.fresh("o")
        e.emit(f"{written} = vector.transfer_write {by_depth[j]}, {result}[%m, {columns[j]}] "
               f"{{in_bounds = [{in_bounds}]}} : {vector_type}, {output_type}")
        result = written
    _close_loop(e, [result], [output_type])
    _close_loop(e, [out1], [output_type])
    return _function(name, [("%lhs", lhs_type), ("%weights", weight_type),
                            ("%init", output_type)], output_type, e, out0)
