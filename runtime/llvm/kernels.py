"""Register-blocked, vectorised kernels for the compute-heavy linalg ops.

``linalg.conv_2d_nchw_fchw``, ``linalg.depthwise_conv_2d_nchw_chw`` and
``linalg.matmul`` whose weights are compile-time constants (bound parameters),
and ``linalg.batch_matmul``, are replaced by calls to private functions generated
here, written in the ``scf`` + ``vector`` dialects on tensors so that they
bufferise with the rest of the sub-graph. Each kernel keeps a block of output
vectors in registers across the whole reduction and reads its weights from a
copy re-packed at compile time (or, for computed operands, a row-major operand
in place) so that every access in the inner loop is a contiguous vector or a
scalar broadcast.

Kernel shapes (f32, AVX-512 wide vectors of 16 lanes):

* conv, rows of a multiple of 16 pixels (or filters not a multiple of 16):
  vectors run along the output row; a block of ``FB`` output channels x ``NV``
  vectors of the row is accumulated (``FB x NV`` independent FMA chains), each
  input vector is reused ``FB`` times and each weight is a broadcast scalar.
* conv, short rows (VGG's 8x8 .. 2x2 maps): vectors run along 16 or 32 output
  channels and each output pixel of a block of rows is one accumulator, so each
  weight vector is loaded once per row block.
* depthwise conv: vectors along the output row, a block of rows per tile.
* matmul ``[M, K] x [K, N]`` (linear layers, LSTM gates at batch 1, token-wise
  projections): vectors run along ``N``; a tile of up to 4 rows x 4 vectors
  (1 row x up to 8 vectors when ``M`` is 1) per ``K`` sweep, weights packed
  ``[N / tile, K, tile]`` so the sweep streams memory contiguously.
* batch matmul ``[B, M, K] x [B, K, N]`` with computed operands (attention): the
  matmul tile, reading rhs rows in place.
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


def _open_loop(emitter: _Emitter, induction: str, upper: int, step: int,
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
        """Full-width vectors along the output row, unless rows are short and the
        filters fill whole vectors."""
        return (self.out_width % VECTOR_LANES == 0 or self.filters % VECTOR_LANES != 0
                or self.out_width > VECTOR_LANES)

    @property
    def filter_vectors(self) -> int:
        """Vectors of filters per tile in the small-map kernel."""
        return 2 if self.out_width <= 8 and self.filters % (2 * VECTOR_LANES) == 0 else 1

    @property
    def rows_per_tile(self) -> int:
        """Output rows per tile in the small-map kernel: as many as registers allow."""
        budget = MAX_ACCUMULATORS // (self.out_width * self.filter_vectors)
        return max(r for r in range(1, self.out_height + 1)
                   if self.out_height % r == 0 and r <= budget)


def _row_vectors(out_width: int, lanes: int) -> int:
    """Vectors per row tile: two where they tile the row exactly, else one."""
    return 2 if (out_width // lanes) % 2 == 0 else 1


def conv_filter_block(shape: ConvShape) -> int:
    """Output channels per tile; always a divisor of the filter count."""
    if not shape.vectorize_along_width:
        return VECTOR_LANES * shape.filter_vectors
    lanes = _largest_divisor(shape.out_width, (16, 8, 4, 2, 1))
    vectors_per_row_tile = _row_vectors(shape.out_width, lanes)
    return _largest_divisor(shape.filters, tuple(
        b for b in (16, 8, 4, 2, 1) if b * vectors_per_row_tile <= MAX_ACCUMULATORS))


def pack_conv_weights(weights: np.ndarray, filter_block: int) -> np.ndarray:
    """[F, C, KH, KW] -> [F / FB, C, KH, KW, FB]; `filter_block` divides F."""
    filters = weights.shape[0]
    return np.ascontiguousarray(weights.reshape(
        filters // filter_block, filter_block, *weights.shape[1:]).transpose(0, 2, 3, 4, 1))


def conv_kernel(name: str, shape: ConvShape) -> str:
    """The function text `(input, packed weights, init) -> output` of a convolution."""
    if shape.vectorize_along_width:
        return _conv_along_width(name, shape)
    return _conv_along_filters(name, shape)


def _conv_types(shape: ConvShape, filter_block: int) -> tuple[str, str, str]:
    blocks = shape.filters // filter_block
    return (_tensor((1, shape.channels, shape.padded_height, shape.padded_width)),
            _tensor((blocks, shape.channels, shape.kernel_height, shape.kernel_width,
                     filter_block)),
            _tensor((1, shape.filters, shape.out_height, shape.out_width)))


def _conv_along_width(name: str, shape: ConvShape) -> str:
    filter_block = conv_filter_block(shape)
    lanes = _largest_divisor(shape.out_width, (16, 8, 4, 2, 1))
    vectors = _row_vectors(shape.out_width, lanes)
    row_tile = lanes * vectors
    vector_type = f"vector<{lanes}xf32>"
    input_type, weight_type, output_type = _conv_types(shape, filter_block)
    e = _Emitter()
    zero = "%zero"
    e.emit(f"{zero} = arith.constant 0.0 : f32")
    c0 = e.index(0)
    (out0,) = _open_loop(e, "%fo", shape.filters // filter_block, 1,
                         [("%o0", "%init", output_type)])
    filter_base = e.affine(f"d0 * {filter_block}", ["%fo"])
    (out1,) = _open_loop(e, "%oh", shape.out_height, 1, [("%o1", "%o0", output_type)])
    (out2,) = _open_loop(e, "%ow", shape.out_width, row_tile,
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
    by_channel = _open_loop(e, "%c", shape.channels, 1, [
        (f"%ca{k}", initial[k], vector_type) for k in range(len(blocks))])
    by_row = _open_loop(e, "%kh", shape.kernel_height, 1, [
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
    filter_vectors = shape.filter_vectors
    filter_block = lanes * filter_vectors
    rows = shape.rows_per_tile
    vector_type = f"vector<{lanes}xf32>"
    input_type, weight_type, output_type = _conv_types(shape, filter_block)
    pixels = [(r, ow) for r in range(rows) for ow in range(shape.out_width)]
    blocks = [(p, v) for p in range(len(pixels)) for v in range(filter_vectors)]
    e = _Emitter()
    zero = "%zero"
    e.emit(f"{zero} = arith.constant 0.0 : f32")
    c0 = e.index(0)
    (out0,) = _open_loop(e, "%fo", shape.filters // filter_block, 1,
                         [("%o0", "%init", output_type)])
    filter_base = e.affine(f"d0 * {filter_block}", ["%fo"])
    (out1,) = _open_loop(e, "%oh", shape.out_height, rows, [("%o1", "%o0", output_type)])
    slice_type = _tensor((filter_block, rows, shape.out_width))
    tile_type = _tensor((rows, shape.out_width, filter_block))
    slice_position = (f"[{c0}, {filter_base}, %oh, {c0}] [1, {filter_block}, {rows}, "
                      f"{shape.out_width}] [1, 1, 1, 1]")
    e.emit(f"%slice = tensor.extract_slice %o1{slice_position} : {output_type} to {slice_type}")
    e.emit(f"%tile_init = tensor.empty() : {tile_type}")
    e.emit(f"%tile = linalg.transpose ins(%slice : {slice_type}) outs(%tile_init : {tile_type}) "
           f"permutation = [1, 2, 0]")
    initial = []
    for p, v in blocks:
        r, ow = pixels[p]
        value = e.fresh("init")
        e.emit(f"{value} = vector.transfer_read %tile[{e.index(r)}, {e.index(ow)}, "
               f"{e.index(v * lanes)}], {zero} {{in_bounds = [true]}} : {tile_type}, "
               f"{vector_type}")
        initial.append(value)
    accumulator_types = [vector_type] * len(blocks)
    by_channel = _open_loop(e, "%c", shape.channels, 1, [
        (f"%ca{k}", initial[k], vector_type) for k in range(len(blocks))])
    by_row = _open_loop(e, "%kh", shape.kernel_height, 1, [
        (f"%ka{k}", f"%ca{k}", vector_type) for k in range(len(blocks))])
    accumulators = [f"%ka{k}" for k in range(len(blocks))]
    input_rows = [e.affine(f"(d0 + {r}) * {shape.stride_h} + d1", ["%oh", "%kh"])
                  for r in range(rows)]
    for kw in range(shape.kernel_width):
        weights = []
        for v in range(filter_vectors):
            weight = e.fresh("w")
            e.emit(f"{weight} = vector.transfer_read %weights[%fo, %c, %kh, {e.index(kw)}, "
                   f"{e.index(v * lanes)}], {zero} {{in_bounds = [true]}} : {weight_type}, "
                   f"{vector_type}")
            weights.append(weight)
        for p, (r, ow) in enumerate(pixels):
            scalar = e.fresh("x")
            e.emit(f"{scalar} = tensor.extract %input[{c0}, %c, {input_rows[r]}, "
                   f"{e.index(ow * shape.stride_w + kw)}] : {input_type}")
            for v in range(filter_vectors):
                k = blocks.index((p, v))
                accumulators[k] = e.fma(scalar, weights[v], accumulators[k], vector_type)
    _close_loop(e, accumulators, accumulator_types)
    _close_loop(e, by_row, accumulator_types)
    tile = "%tile"
    for k, (p, v) in enumerate(blocks):
        r, ow = pixels[p]
        written = e.fresh("t")
        e.emit(f"{written} = vector.transfer_write {by_channel[k]}, {tile}[{e.index(r)}, "
               f"{e.index(ow)}, {e.index(v * lanes)}] {{in_bounds = [true]}} : {vector_type}, "
               f"{tile_type}")
        tile = written
    e.emit(f"%slice_result = linalg.transpose ins({tile} : {tile_type}) "
           f"outs(%slice : {slice_type}) permutation = [2, 0, 1]")
    result = e.fresh("o")
    e.emit(f"{result} = tensor.insert_slice %slice_result into %o1{slice_position} : "
           f"{slice_type} into {output_type}")
    _close_loop(e, [result], [output_type])
    _close_loop(e, [out1], [output_type])
    return _function(name, [("%input", input_type), ("%weights", weight_type),
                            ("%init", output_type)], output_type, e, out0)


@dataclasses.dataclass(frozen=True)
class MatmulShape:
    """``[rows, depth] x [depth, columns]``."""

    rows: int
    depth: int
    columns: int


def matmul_rows(shape: MatmulShape) -> int:
    """Rows of the lhs per tile: each loaded rhs vector feeds that many FMAs, so the
    rhs (re-read from L2 once per row block) streams 4x less for 32-token inputs."""
    return _largest_divisor(shape.rows, (4, 2, 1))


def matmul_tile(shape: MatmulShape) -> tuple[int, int]:
    """(lanes, vectors per tile) with the tile dividing the lane-padded column count
    and rows x vectors within :data:`MAX_ACCUMULATORS`."""
    lanes = VECTOR_LANES
    column_vectors = -(-shape.columns // lanes)
    limit = MAX_ACCUMULATORS // matmul_rows(shape)
    return lanes, _largest_divisor(column_vectors,
                                   tuple(v for v in (8, 7, 6, 5, 4, 3, 2, 1) if v <= limit))


def pack_matmul_weights(weights: np.ndarray, tile: int) -> np.ndarray:
    """[K, N] -> [ceil(N / tile), K, tile], zero-padded columns."""
    depth, columns = weights.shape
    tiles = -(-columns // tile)
    padded = np.zeros((depth, tiles * tile), dtype=weights.dtype)
    padded[:, :columns] = weights
    return np.ascontiguousarray(padded.reshape(depth, tiles, tile).transpose(1, 0, 2))


def matmul_kernel(name: str, shape: MatmulShape) -> str:
    """The function text `(lhs, packed rhs, init) -> result` of an [M,K]x[K,N] matmul
    whose rhs is a constant packed by :func:`pack_matmul_weights`."""
    return _matmul_text(name, shape, batch=None)


def batch_matmul_kernel(name: str, shape: MatmulShape, batch: int) -> str:
    """The function text `(lhs, rhs, init) -> result` of a ``[B,M,K]x[B,K,N]`` batch
    matmul whose operands are both computed (attention scores and context).

    Same tile as :func:`matmul_kernel`, read straight from the row-major rhs: each
    ``K`` step loads contiguous vectors of an rhs row, so no packing is needed.
    linalg's own loops put ``K`` innermost and walk the rhs down a column.
    """
    return _matmul_text(name, shape, batch=batch)


def _matmul_text(name: str, shape: MatmulShape, batch: int | None) -> str:
    """A tile of :func:`matmul_rows` rows x up to 8 vectors along ``N`` accumulated
    over one sweep of ``K``: per step, each rhs vector is loaded once and each lhs
    scalar broadcast once.

    `batch` None: the rhs is packed ``[N / tile, K, tile]``; else the operands are
    ``[batch, M, K]``, ``[batch, K, N]`` as computed and an outer loop runs the batch.
    """
    lanes, vectors = matmul_tile(shape)
    rows = matmul_rows(shape)
    tile = lanes * vectors
    tiles = -(-shape.columns // tile)
    vector_type = f"vector<{lanes}xf32>"
    prefix = () if batch is None else (batch,)
    lhs_type = _tensor(prefix + (shape.rows, shape.depth))
    rhs_type = (_tensor((tiles, shape.depth, tile)) if batch is None
                else _tensor((batch, shape.depth, shape.columns)))
    output_type = _tensor(prefix + (shape.rows, shape.columns))
    in_bounds = "true" if shape.columns % lanes == 0 else "false"
    e = _Emitter()
    zero = "%zero"
    e.emit(f"{zero} = arith.constant 0.0 : f32")
    if batch is None:
        lead, outer = "", "%init"
    else:
        (result0,) = _open_loop(e, "%bt", batch, 1, [("%ob", "%init", output_type)])
        lead, outer = "%bt, ", "%ob"
    (out0,) = _open_loop(e, "%m", shape.rows, rows, [("%o0", outer, output_type)])
    (out1,) = _open_loop(e, "%t", tiles, 1, [("%o1", "%o0", output_type)])
    row_indices = [e.add("%m", r) for r in range(rows)]
    column_base = e.affine(f"d0 * {tile}", ["%t"])
    columns = [e.add(column_base, j * lanes) for j in range(vectors)]
    blocks = [(r, j) for r in range(rows) for j in range(vectors)]
    initial = []
    for r, j in blocks:
        value = e.fresh("init")
        e.emit(f"{value} = vector.transfer_read %o1[{lead}{row_indices[r]}, {columns[j]}], "
               f"{zero} {{in_bounds = [{in_bounds}]}} : {output_type}, {vector_type}")
        initial.append(value)
    by_depth = _open_loop(e, "%k", shape.depth, 1, [
        (f"%da{b}", initial[b], vector_type) for b in range(len(blocks))])
    weights = []
    for j in range(vectors):
        weight = e.fresh("w")
        if batch is None:
            e.emit(f"{weight} = vector.transfer_read %rhs[%t, %k, {e.index(j * lanes)}], "
                   f"{zero} {{in_bounds = [true]}} : {rhs_type}, {vector_type}")
        else:
            e.emit(f"{weight} = vector.transfer_read %rhs[%bt, %k, {columns[j]}], "
                   f"{zero} {{in_bounds = [{in_bounds}]}} : {rhs_type}, {vector_type}")
        weights.append(weight)
    scalars = []
    for r in range(rows):
        scalar = e.fresh("x")
        e.emit(f"{scalar} = tensor.extract %lhs[{lead}{row_indices[r]}, %k] : {lhs_type}")
        scalars.append(scalar)
    accumulators = [e.fma(scalars[r], weights[j], f"%da{b}", vector_type)
                    for b, (r, j) in enumerate(blocks)]
    _close_loop(e, accumulators, [vector_type] * len(blocks))
    result = "%o1"
    for b, (r, j) in enumerate(blocks):
        written = e.fresh("o")
        e.emit(f"{written} = vector.transfer_write {by_depth[b]}, {result}[{lead}"
               f"{row_indices[r]}, {columns[j]}] {{in_bounds = [{in_bounds}]}} : "
               f"{vector_type}, {output_type}")
        result = written
    _close_loop(e, [result], [output_type])
    _close_loop(e, [out1], [output_type])
    if batch is not None:
        _close_loop(e, [out0], [output_type])
        out0 = result0
    return _function(name, [("%lhs", lhs_type), ("%rhs", rhs_type),
                            ("%init", output_type)], output_type, e, out0)


def depthwise_is_supported(shape: ConvShape) -> bool:
    """Rows of at least 8 pixels fill a vector; smaller maps keep linalg's loops."""
    return shape.out_width >= 8


def depthwise_kernel(name: str, shape: ConvShape) -> str:
    """The function text `(input, weights [C, KH, KW], init) -> output` of a depthwise
    convolution: vectors along the output row, a block of rows per tile."""
    lanes = _largest_divisor(shape.out_width, (16, 8, 4, 2, 1))
    vectors = _row_vectors(shape.out_width, lanes)
    rows = max(r for r in (8, 4, 2, 1)
               if shape.out_height % r == 0 and r * vectors <= MAX_ACCUMULATORS // 2)
    row_tile = lanes * vectors
    vector_type = f"vector<{lanes}xf32>"
    input_type = _tensor((1, shape.channels, shape.padded_height, shape.padded_width))
    weight_type = _tensor((shape.channels, shape.kernel_height, shape.kernel_width))
    output_type = _tensor((1, shape.channels, shape.out_height, shape.out_width))
    stride = shape.stride_w
    e = _Emitter()
    zero = "%zero"
    e.emit(f"{zero} = arith.constant 0.0 : f32")
    c0 = e.index(0)
    (out0,) = _open_loop(e, "%c", shape.channels, 1, [("%o0", "%init", output_type)])
    (out1,) = _open_loop(e, "%oh", shape.out_height, rows, [("%o1", "%o0", output_type)])
    (out2,) = _open_loop(e, "%ow", shape.out_width, row_tile,
                                [("%o2", "%o1", output_type)])
    output_rows = [e.add("%oh", r) for r in range(rows)]
    columns = [e.add("%ow", j * lanes) for j in range(vectors)]
    blocks = [(r, j) for r in range(rows) for j in range(vectors)]
    accumulators = []
    for r, j in blocks:
        value = e.fresh("init")
        e.emit(f"{value} = vector.transfer_read %o2[{c0}, %c, {output_rows[r]}, {columns[j]}], "
               f"{zero} {{in_bounds = [true]}} : {output_type}, {vector_type}")
        accumulators.append(value)
    for kh in range(shape.kernel_height):
        input_rows = [e.affine(f"(d0 + {r}) * {shape.stride_h} + {kh}", ["%oh"])
                      for r in range(rows)]
        for kw in range(shape.kernel_width):
            weight = e.fresh("w")
            e.emit(f"{weight} = tensor.extract %weights[%c, {e.index(kh)}, {e.index(kw)}] : "
                   f"{weight_type}")
            for k, (r, j) in enumerate(blocks):
                column = e.affine(f"d0 * {stride} + {j * lanes * stride + kw}", ["%ow"])
                value = e.fresh("x")
                if stride == 1:
                    e.emit(f"{value} = vector.transfer_read %input[{c0}, %c, {input_rows[r]}, "
                           f"{column}], {zero} {{in_bounds = [true]}} : {input_type}, "
                           f"{vector_type}")
                else:
                    wide = e.fresh("xw")
                    e.emit(f"{wide} = vector.transfer_read %input[{c0}, %c, {input_rows[r]}, "
                           f"{column}], {zero} {{in_bounds = [false]}} : {input_type}, "
                           f"vector<{lanes * stride}xf32>")
                    lanes_taken = ", ".join(str(stride * t) for t in range(lanes))
                    e.emit(f"{value} = vector.shuffle {wide}, {wide} [{lanes_taken}] : "
                           f"vector<{lanes * stride}xf32>, vector<{lanes * stride}xf32>")
                accumulators[k] = e.fma(weight, value, accumulators[k], vector_type)
    result = "%o2"
    for k, (r, j) in enumerate(blocks):
        written = e.fresh("o")
        e.emit(f"{written} = vector.transfer_write {accumulators[k]}, {result}[{c0}, %c, "
               f"{output_rows[r]}, {columns[j]}] {{in_bounds = [true]}} : {vector_type}, "
               f"{output_type}")
        result = written
    _close_loop(e, [result], [output_type])
    _close_loop(e, [out2], [output_type])
    _close_loop(e, [out1], [output_type])
    return _function(name, [("%input", input_type), ("%weights", weight_type),
                            ("%init", output_type)], output_type, e, out0)
