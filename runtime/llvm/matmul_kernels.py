"""Register-blocked matmul and batch-matmul kernels (see :mod:`.kernels` for the conv
kernels and the shared text emitter).

* matmul ``[M, K] x [K, N]`` (linear layers, LSTM gates at batch 1, token-wise
  projections) with a constant rhs: vectors run along ``N``; a tile of up to 4 rows x 4
  vectors with AVX-512, 6 x 2 with AVX2 (1 row x up to 8 vectors when ``M`` is 1) per
  ``K`` sweep, weights packed ``[N / tile, K, tile]`` so the sweep streams memory
  contiguously. A run-time ``M`` (batch, tokens), or one the tile does not divide, takes
  full tiles and a 1-row tail; the row tiles are a parallel loop.
* batch matmul ``[B, M, K] x [B, K, N]`` with computed operands (attention): the
  matmul tile, reading rhs rows in place, in a parallel loop over ``B``; ``B``, ``M``,
  ``K`` and ``N`` may be run-time sizes (masked column tiles, one reduction block).
"""

import dataclasses
from collections.abc import Callable

from .kernels import (  # the shared emitter of kernel text
    MAX_ACCUMULATORS,
    VECTOR_LANES,
    _block_terms,
    _close_loop,
    _close_parallel,
    _close_reduction,
    _Emitter,
    _extent,
    _function,
    _largest_divisor,
    _open_loop,
    _open_parallel,
    _open_reduction,
    _tensor,
    _VectorTile,
    initial_vectors,
    output_tensor,
    reduction_block,
)


@dataclasses.dataclass(frozen=True)
class MatmulShape:
    """``[rows, depth] x [depth, columns]``; None: known only at run time (rows: batch,
    tokens; depth and columns, only for batch matmuls: the token count of attention)."""

    rows: int | None
    depth: int | None
    columns: int | None
    initial: float | None = None
    """The constant the output starts at (a zero-filled init), or None: read the init."""


#: Rows of the main matmul tile: 4 x 4 vectors with 32 registers (AVX-512); 6 x 2 with
#: 16 (AVX2, the classic 6x16 sgemm tile; 197 x 512 x 512, one thread, same loaded run:
#: 4.19 ms with 4-row tiles, 2.09 ms with 6-row ones, eager 2.49 ms).
MAIN_ROWS = 4 if MAX_ACCUMULATORS >= 16 else 6


def matmul_rows(shape: MatmulShape) -> int:
    """Rows of the lhs per tile: each loaded rhs vector feeds that many FMAs, so the
    rhs (re-read from L2 once per row block) streams 4-6x less for 32-token inputs.
    A run-time row count, or a static one of more than :data:`MAIN_ROWS`, takes tiles of
    that many rows and (:func:`splits_rows`) a 1-row tail."""
    if shape.rows is None or shape.rows >= MAIN_ROWS:
        return MAIN_ROWS
    return _largest_divisor(shape.rows, (4, 2, 1))


def splits_rows(shape: MatmulShape) -> bool:
    """Whether the rows take a main kernel of :data:`MAIN_ROWS` and a 1-row tail:
    run-time counts and static ones it does not divide (197 ViT tokens, odd batches:
    before, 1-row tiles throughout, the rhs streamed once per row)."""
    return shape.rows is None or (shape.rows > MAIN_ROWS and shape.rows % MAIN_ROWS != 0)


def matmul_tile(shape: MatmulShape) -> tuple[int, int]:
    """(lanes, vectors per tile) with the tile dividing the lane-padded column count
    and rows x vectors within :data:`MAX_ACCUMULATORS`."""
    lanes = VECTOR_LANES
    limit = MAX_ACCUMULATORS // matmul_rows(shape)
    if shape.columns is None:
        return lanes, min(4, limit)
    column_vectors = -(-shape.columns // lanes)
    return lanes, _largest_divisor(column_vectors,
                                   tuple(v for v in (8, 7, 6, 5, 4, 3, 2, 1) if v <= limit))


#: Accumulators a matmul tile is widened to with independent partial sums over ``K``.
PARTIAL_ACCUMULATORS = 8


def matmul_partials(shape: MatmulShape, rows: int | None = None) -> int:
    """Independent partial sums per output vector of a matmul tile: tiles of fewer than
    :data:`PARTIAL_ACCUMULATORS` vectors (e.g. 10-class heads over 8192 features: one
    vector) split ``K`` over several accumulators (step ``k`` goes to ``k mod P``),
    added pairwise at the end: more FMA chains in flight and shorter fp32 sums.
    `rows`: rows per tile, when not :func:`matmul_rows` (a run-time row count's tail)."""
    if shape.depth is None:
        return 1
    _, vectors = matmul_tile(shape)
    tile = (rows or matmul_rows(shape)) * vectors
    block = matmul_reduction_block(shape, rows)
    return next(p for p in (8, 4, 2, 1)
                if p * tile <= max(PARTIAL_ACCUMULATORS, tile) and block % p == 0)


def matmul_reduction_block(shape: MatmulShape, rows: int | None = None) -> int | None:
    """``K`` steps per reduction block of a matmul tile (partial sums included); None (one
    block) for a run-time ``K``."""
    if shape.depth is None:
        return None
    _, vectors = matmul_tile(shape)
    tile = (rows or matmul_rows(shape)) * vectors
    return reduction_block(shape.depth, 1, _block_terms(tile))


def matmul_kernel(name: str, shape: MatmulShape) -> str:
    """The function text `(lhs, packed rhs, init) -> result` of an [M,K]x[K,N] matmul
    whose rhs is packed by :func:`.weight_packing.pack_matmul_weights`."""
    return _matmul_function(name, shape, batched=False, batch=None)


def batch_matmul_kernel(name: str, shape: MatmulShape, batch: int | None) -> str:
    """The function text `(lhs, rhs, init) -> result` of a ``[B,M,K]x[B,K,N]`` batch
    matmul whose operands are both computed (attention scores and context).

    Same tile as :func:`matmul_kernel`, read straight from the row-major rhs: each
    ``K`` step loads contiguous vectors of an rhs row, so no packing is needed.
    linalg's own loops put ``K`` innermost and walk the rhs down a column. `batch`
    None: known only at run time.
    """
    return _matmul_function(name, shape, batched=True, batch=batch)


def _matmul_types(shape: MatmulShape, batched: bool, batch: int | None) -> tuple[str, str, str]:
    lanes, vectors = matmul_tile(shape)
    tiles = None if shape.columns is None else -(-shape.columns // (lanes * vectors))
    prefix = (batch,) if batched else ()
    return (_tensor(prefix + (shape.rows, shape.depth)),
            _tensor((batch, shape.depth, shape.columns)) if batched
            else _tensor((tiles, shape.depth, lanes * vectors)),
            _tensor(prefix + (shape.rows, shape.columns)))


def _matmul_function(name: str, shape: MatmulShape, batched: bool, batch: int | None) -> str:
    """The kernel; with rows that :func:`splits_rows`, a function calling two: full tiles
    over the rows up to the last multiple of :data:`MAIN_ROWS`, then 1-row tiles."""
    if not splits_rows(shape):
        return _matmul_text(name, shape, batched, batch, None, fresh=True)
    types = _matmul_types(shape, batched, batch)
    signature = ", ".join(types)
    output_type = types[2]
    return (_matmul_text(f"{name}_main", shape, batched, batch, "main", fresh=True)
            + _matmul_text(f"{name}_tail", shape, batched, batch, "tail", fresh=False)
            + f"func.func private @{name}(%lhs: {types[0]}, %rhs: {types[1]}, "
            f"%init: {output_type}) -> {output_type} {{\n"
            f"    %main = func.call @{name}_main(%lhs, %rhs, %init) : ({signature}) -> "
            f"{output_type}\n"
            f"    %tail = func.call @{name}_tail(%lhs, %rhs, %main) : ({signature}) -> "
            f"{output_type}\n"
            f"    return %tail : {output_type}\n}}\n")


def _open_rows(e: _Emitter, shape: MatmulShape, batched: bool, lhs_type: str, rows: int,
               span: str | None, tensor: str, tensor_type: str
               ) -> tuple[str, str, str, Callable[[str], str]]:
    """Opens the loop over row tiles: all rows (`span` None, a static count), or for a
    run-time count the rows up to its last multiple of the main tile (``"main"``) or
    the rest (``"tail"``). Several tiles of :func:`matmul_rows` rows, unbatched: a
    parallel loop (``scf.forall``), each tile writing its own rows of the output.

    Returns the output inside the loop, its type, the row that output row 0 of the
    tile is in that output (``%m`` or 0), and the closer taking the loop's result."""
    if span is None:
        count = shape.rows
    else:
        extent = _extent(e, "%lhs", lhs_type, 1 if batched else 0)
        end = e.affine(f"d0 - d0 mod {MAIN_ROWS}", [extent])
    if batched or span == "tail" or (span is None and count // rows < 2):
        lower, upper = (end, extent) if span == "tail" else (0, end if span else count)
        (result,) = _open_loop(e, "%m", upper, rows, [("%o0", tensor, tensor_type)],
                               lower=lower)

        def close(inner: str) -> str:
            _close_loop(e, [inner], [tensor_type])
            return result
        return "%o0", tensor_type, "%m", close
    tiles = count // rows if span is None else e.affine(f"d0 floordiv {rows}", [end])
    item_type = _tensor((rows, shape.columns))
    loop = _open_parallel(
        e, "%mt", tiles, tensor, tensor_type, ["%m", "0"], [rows, shape.columns], item_type,
        (f"%m = affine.apply affine_map<(d0) -> (d0 * {rows})>(%mt)",))
    return loop.item, item_type, e.index(0), lambda inner: _close_parallel(e, loop, inner)


def _matmul_text(name: str, shape: MatmulShape, batched: bool, batch: int | None,
                 span: str | None, fresh: bool) -> str:
    """A tile of :func:`matmul_rows` rows (1 in a ``"tail"`` `span`) x up to 8 vectors
    along ``N`` accumulated over one sweep of ``K``: per step, each rhs vector is loaded
    once and each lhs scalar broadcast once.

    Not `batched`: the rhs is packed ``[N / tile, K, tile]``; else the operands are
    ``[batch, M, K]``, ``[batch, K, N]`` as computed and an outer loop runs the batch.
    `fresh`: the tile writes a new output when it starts at a constant (the tail of a
    split writes into the main part's).
    """
    lanes, vectors = matmul_tile(shape)
    rows = 1 if span == "tail" else matmul_rows(shape)
    tile = lanes * vectors
    vector_type = f"vector<{lanes}xf32>"
    lhs_type, rhs_type, output_type = _matmul_types(shape, batched, batch)
    in_bounds = "true" if shape.columns is not None and shape.columns % lanes == 0 else "false"
    e = _Emitter()
    zero = "%zero"
    e.emit(f"{zero} = arith.constant 0.0 : f32")
    if shape.columns is None:
        tiles = e.affine(f"d0 ceildiv {tile}", [_extent(e, "%rhs", rhs_type, 2)])
    else:
        tiles = -(-shape.columns // tile)
    depth = shape.depth if shape.depth is not None else _extent(e, "%lhs", lhs_type, 2)
    output = output_tensor(e, shape.initial if fresh else None, output_type)
    if not batched:
        lead, out_lead, outer, outer_type = "", "", output, output_type
    else:
        images = batch if batch is not None else _extent(e, "%lhs", lhs_type, 0)
        outer_type = _tensor((1, shape.rows, shape.columns))
        item_sizes = [1] + [size if size is not None else _extent(e, "%init", output_type, axis)
                            for axis, size in ((1, shape.rows), (2, shape.columns))]
        batch_loop = _open_parallel(e, "%bt", images, output, output_type,
                                    ["%bt", "0", "0"], item_sizes, outer_type)
        outer = batch_loop.item
        lead, out_lead = "%bt, ", f"{e.index(0)}, "
    row_output, row_type, first_row, close_rows = _open_rows(
        e, shape, batched, lhs_type, rows, span, outer, outer_type)
    (out1,) = _open_loop(e, "%t", tiles, 1, [("%o1", row_output, row_type)])
    row_indices = [e.add("%m", r) for r in range(rows)]
    output_rows = row_indices if first_row == "%m" else [e.index(r) for r in range(rows)]
    column_base = e.affine(f"d0 * {tile}", ["%t"])
    columns = [e.add(column_base, j * lanes) for j in range(vectors)]
    blocks = [(r, j) for r in range(rows) for j in range(vectors)]
    block = matmul_reduction_block(shape, rows)
    partials = matmul_partials(shape, rows)
    count = len(blocks) * partials

    def position(b: int) -> str:
        r, j = blocks[b]
        return f"[{out_lead}{output_rows[r]}, {columns[j]}]"

    output_vectors = _VectorTile(e, position, row_type, vector_type, zero, in_bounds)

    def read_initial(tensor: str) -> list[str]:
        initial = initial_vectors(
            e, shape.initial, len(blocks), vector_type,
            lambda: [output_vectors.read(tensor, b) for b in range(len(blocks))])
        if partials > 1:
            zeros = e.fresh("zv")
            e.emit(f"{zeros} = arith.constant dense<0.0> : {vector_type}")
            initial += [zeros] * (count - len(blocks))
        return initial

    reduction, by_depth = _open_reduction(e, "%k", depth, block or depth, partials,
                                          "%o1", read_initial, count,
                                          vector_type)
    accumulators = []
    for p in range(partials):
        depth_index = e.add("%k", p)
        weights = []
        for j in range(vectors):
            weight = e.fresh("w")
            if not batched:
                e.emit(f"{weight} = vector.transfer_read %rhs[%t, {depth_index}, "
                       f"{e.index(j * lanes)}], {zero} {{in_bounds = [true]}} : {rhs_type}, "
                       f"{vector_type}")
            else:
                e.emit(f"{weight} = vector.transfer_read %rhs[%bt, {depth_index}, {columns[j]}], "
                       f"{zero} {{in_bounds = [{in_bounds}]}} : {rhs_type}, {vector_type}")
            weights.append(weight)
        scalars = []
        for r in range(rows):
            scalar = e.fresh("x")
            e.emit(f"{scalar} = tensor.extract %lhs[{lead}{row_indices[r]}, {depth_index}] : "
                   f"{lhs_type}")
            scalars.append(scalar)
        accumulators += [e.fma(scalars[r], weights[j], f"%ra{p * len(blocks) + b}", vector_type)
                         for b, (r, j) in enumerate(blocks)]
    _close_loop(e, accumulators, [vector_type] * count)

    def combine(sums: list[str]) -> list[str]:
        """The partial sums of each output vector, added pairwise."""
        sets = [sums[p * len(blocks):(p + 1) * len(blocks)] for p in range(partials)]
        while len(sets) > 1:
            combined = []
            for first, second in zip(sets[0::2], sets[1::2]):
                pair = []
                for a, b in zip(first, second):
                    total = e.fresh("pair")
                    e.emit(f"{total} = arith.addf {a}, {b} : {vector_type}")
                    pair.append(total)
                combined.append(pair)
            sets = combined
        return sets[0]

    result = _close_reduction(e, reduction, by_depth, output_vectors.write, vector_type, combine)
    _close_loop(e, [result], [row_type])
    out0 = close_rows(out1)
    if batched:
        out0 = _close_parallel(e, batch_loop, out0)
    return _function(name, [("%lhs", lhs_type), ("%rhs", rhs_type),
                            ("%init", output_type)], output_type, e, out0)
