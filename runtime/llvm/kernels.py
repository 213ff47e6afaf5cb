"""Register-blocked, vectorised kernels for the compute-heavy linalg ops.

``linalg.conv_2d_nchw_fchw``, ``linalg.conv_2d_ngchw_gfchw`` (grouped),
``linalg.depthwise_conv_2d_nchw_chw`` and ``linalg.matmul`` whose weights are
bound parameters (or constants), and ``linalg.batch_matmul``, are replaced by
calls to private functions generated here, written in the ``scf`` + ``vector``
dialects on tensors so that they bufferise with the rest of the sub-graph. Each
kernel keeps a block of output vectors in registers across the whole reduction
and reads its weights from a copy re-packed when the code is loaded
(:mod:`.weight_packing`; for computed operands, a row-major operand in place)
so that every access in the inner loop is a contiguous vector or a scalar
broadcast.

Kernel shapes (f32, AVX-512 wide vectors of 16 lanes):

* conv, rows of a multiple of 16 pixels (or filters not a multiple of 16):
  vectors run along the output row; a block of ``FB`` output channels x ``NV``
  vectors of the row is accumulated (``FB x NV`` independent FMA chains), each
  input vector is reused ``FB`` times and each weight is a broadcast scalar.
* conv, short rows (VGG's 8x8 .. 2x2 maps): vectors run along 16 or 32 output
  channels and each output pixel of a block of rows is one accumulator, so each
  weight vector is loaded once per row block.
* grouped conv: one of the two conv tiles, for one group's shape, in a loop over
  the groups.
* depthwise conv: vectors along the output row, a block of rows per tile.
* matmul and batch matmul: :mod:`.matmul_kernels`, on the emitter defined here.

Every reduction is summed in blocks (:func:`reduction_block`): each block starts its
accumulators at zero and adds them to running sums afterwards, so fp32 rounding
error grows like ``b + n / b`` rather than ``n`` for ``n`` terms; narrow matmul
tiles also split ``K`` over independent partial sums (:func:`matmul_partials`).
"""

import dataclasses
import math
from collections.abc import Callable

from . import threads


def _host_vector_registers() -> tuple[int, int]:
    """(f32 lanes per vector register, vector registers) of the CPU that LLVM compiles
    for (the host's): 16 and 32 with AVX-512, 8 and 16 with AVX2. Tiles sized for 32
    registers on an AVX2 host split every 16-lane vector in two and spill half the
    accumulators to the stack each step (a 32-channel 3x3 conv ran at 31 GFLOP/s,
    half of eager's single-threaded oneDNN)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next(line for line in cpuinfo if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return 8, 16
    if "avx512f" in flags:
        return 16, 32
    return (8, 16) if "avx" in flags else (4, 16)


VECTOR_LANES, VECTOR_REGISTERS = _host_vector_registers()
#: Accumulator vectors per kernel tile: the rest of the registers hold the operand
#: vectors and broadcasts of one step (AVX2: the classic 12-accumulator sgemm tile).
MAX_ACCUMULATORS = 16 if VECTOR_REGISTERS >= 32 else 12


def _row_lanes(width: int) -> int:
    """Lanes of the vectors along an output row of `width` pixels: the widest power of
    two up to :data:`VECTOR_LANES` that divides it."""
    return _largest_divisor(width, tuple(l for l in (16, 8, 4, 2, 1) if l <= VECTOR_LANES))


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



@dataclasses.dataclass(frozen=True)
class _VectorTile:
    """The accumulator vectors of a kernel's output tile: vector `k` lives at `position(k)`
    of a tensor of `tensor_type`. Kernels read a tile's initial values and write its sums
    back in the same places, so both are generated from the one description."""

    emitter: _Emitter
    position: Callable[[int], str]
    tensor_type: str
    vector_type: str
    zero: str
    in_bounds: str = "true"
    written_stem: str = "o"

    def read(self, tensor: str, k: int) -> str:
        value = self.emitter.fresh("init")
        self.emitter.emit(
            f"{value} = vector.transfer_read {tensor}{self.position(k)}, {self.zero} "
            f"{{in_bounds = [{self.in_bounds}]}} : {self.tensor_type}, {self.vector_type}")
        return value

    def write(self, value: str, tensor: str, k: int) -> str:
        written = self.emitter.fresh(self.written_stem)
        self.emitter.emit(
            f"{written} = vector.transfer_write {value}, {tensor}{self.position(k)} "
            f"{{in_bounds = [{self.in_bounds}]}} : {self.vector_type}, {self.tensor_type}")
        return written

def _tensor(shape: tuple[int | None, ...]) -> str:
    """An f32 tensor type; None is a dimension known only at run time."""
    return "tensor<" + "x".join("?" if s is None else str(s) for s in shape) + "xf32>"


def _open_loop(emitter: _Emitter, induction: str, upper: int | str, step: int,
               carried: list[tuple[str, str, str]], lower: int | str = 0) -> list[str]:
    """Opens an scf.for; `carried` holds (region name, initial value, type). Bounds are
    constants, or SSA names of run-time extents."""
    results = emitter.fresh("r")
    iter_args = ", ".join(f"{name} = {init}" for name, init, _ in carried)
    types = ", ".join(t for _, _, t in carried)
    bound = lambda value: value if isinstance(value, str) else emitter.index(value)
    emitter.emit(f"{results}:{len(carried)} = scf.for {induction} = {bound(lower)} to "
                 f"{bound(upper)} step {emitter.index(step)} iter_args({iter_args}) "
                 f"-> ({types}) {{")
    return [f"{results}#{i}" for i in range(len(carried))]


def _extent(emitter: _Emitter, tensor: str, tensor_type: str, axis: int) -> str:
    """The run-time size of dimension `axis` of `tensor`."""
    name = emitter.fresh("dim")
    emitter.emit(f"{name} = tensor.dim {tensor}, {emitter.index(axis)} : {tensor_type}")
    return name


def _dims(tensor_type: str) -> list[int | None]:
    """The dimensions of a ``tensor<...xf32>`` type written by :func:`_tensor`."""
    return [None if d == "?" else int(d) for d in tensor_type[len("tensor<"):-1].split("x")[:-1]]


def output_tensor(emitter: _Emitter, initial: float | None, tensor_type: str) -> str:
    """The tensor a kernel writes its output into: its ``%init`` argument, or, where the
    output starts at a known constant `initial` (a ``linalg.fill``), a fresh
    ``tensor.empty`` of the same sizes. Every output element is written, so the fill
    folds away instead of costing a sequential pass over the output before the
    parallel loop."""
    if initial is None:
        return "%init"
    sizes = [_extent(emitter, "%init", tensor_type, axis)
             for axis, size in enumerate(_dims(tensor_type)) if size is None]
    emitter.emit(f"%fresh = tensor.empty({', '.join(sizes)}) : {tensor_type}")
    return "%fresh"


def initial_vectors(emitter: _Emitter, initial: float | None, count: int, vector_type: str,
                    read: Callable[[], list[str]]) -> list[str]:
    """The starting values of a tile's `count` accumulators: `read()` from the output's
    initial contents, or the splat of the constant `initial` it was filled with."""
    if initial is None:
        return read()
    splat = emitter.fresh("start")
    emitter.emit(f"{splat} = arith.constant dense<{initial!r}> : {vector_type}")
    return [splat] * count


def _close_loop(emitter: _Emitter, yielded: list[str], types: list[str]) -> None:
    emitter.emit(f"scf.yield {', '.join(yielded)} : {', '.join(types)}")
    emitter.emit("}")


#: Shortest reduction block, in terms (FMAs per accumulator); see
#: :func:`reduction_block`. A tile of up to 8 accumulators keeps its running sums in
#: registers beside them, and blocks of :data:`BLOCK_TERMS` cost nothing measurable.
#: A 16-accumulator tile (convolutions, matmuls of 4 rows) plus 16 running sums
#: exceeds the 32 vector registers and LLVM spills a few per block: blocks of
#: :data:`WIDE_TILE_BLOCK_TERMS` (16 channels of a 3x3 kernel) keep that within about
#: 1% of the unblocked kernel's time on compute-bound convolutions.
BLOCK_TERMS = 64
WIDE_TILE_BLOCK_TERMS = 144
#: Tiles of at most this many accumulators take :data:`BLOCK_TERMS` on every ISA: with
#: 16 registers (AVX2) their running sums live on the stack, touched once per block.
SHORT_BLOCK_TILE = 8
#: Convolutions with more weight bytes than this stream them from L3 or memory, and
#: the block overhead hides behind the loads: they take :data:`BLOCK_TERMS`.
STREAMED_WEIGHT_BYTES = 4 << 20


def _block_terms(accumulators: int, weight_bytes: int = 0) -> int:
    """Minimum reduction block for a tile of `accumulators` vectors."""
    if accumulators <= SHORT_BLOCK_TILE or weight_bytes > STREAMED_WEIGHT_BYTES:
        return BLOCK_TERMS
    return WIDE_TILE_BLOCK_TERMS


def conv_reduction_block(shape: "ConvShape", accumulators: int) -> int:
    """Input channels per reduction block of a convolution tile."""
    weight_bytes = (4 * shape.groups * shape.filters * shape.channels * shape.kernel_height
                    * shape.kernel_width)
    terms = shape.kernel_height * shape.kernel_width
    return reduction_block(shape.channels, terms, _block_terms(accumulators, weight_bytes))


def reduction_block(units: int, terms_per_unit: int, minimum_terms: int) -> int:
    """Units (input channels, or ``K`` steps) per block of a blocked reduction.

    Summing ``n`` terms in one fp32 chain gives an error that grows like ``n`` ulps of
    the partial sums; summing blocks of ``b`` terms into fresh accumulators and then
    adding the block sums to the running total grows like ``b + n / b``, smallest at
    ``b = sqrt(n)`` (VGG's 4608-term reductions: about 5x smaller). Blocks are at least
    `minimum_terms` long, so the additions between blocks cost little; `units` itself
    when that makes one block.
    """
    target = max(minimum_terms, math.isqrt(units * terms_per_unit))
    return next(b for b in range(1, units + 1)
                if units % b == 0 and (b * terms_per_unit >= target or b == units))


@dataclasses.dataclass
class _Reduction:
    """The loops of a (possibly blocked) reduction; see :func:`_open_reduction`."""

    tensor: str
    """The tensor the sums are written to."""
    totals: list[str] | None = None
    """Several blocks: the block loop's results, the running sums."""


def _open_reduction(emitter: _Emitter, induction: str, units: int | str, block: int | str,
                    step: int,
                    tensor: str, read_initial, count: int,
                    vector_type: str) -> tuple[_Reduction, list[str]]:
    """Opens the loop(s) of a reduction over `units` with `count` vector accumulators
    named ``%ra<k>`` inside; `induction` holds the unit index (a multiple of `step`).

    One block (`block` == `units`): one loop whose accumulators start from
    ``read_initial(tensor)``, as a plain register-blocked kernel. Several: an outer
    loop over blocks carrying the running sums ``%rt<k>`` (from ``read_initial``) and
    an inner loop whose accumulators start at zero; :func:`_close_reduction` adds each
    block's sums to the running ones. Returns the reduction and the inner loop's
    results.
    """
    initial = read_initial(tensor)
    if block == units:
        results = _open_loop(emitter, induction, units, step, [
            (f"%ra{k}", initial[k], vector_type) for k in range(count)])
        return _Reduction(tensor), results
    zero = emitter.fresh("zv")
    emitter.emit(f"{zero} = arith.constant dense<0.0> : {vector_type}")
    totals = _open_loop(emitter, "%rb", units // block, 1, [
        (f"%rt{k}", initial[k], vector_type) for k in range(count)])
    start = emitter.affine(f"d0 * {block}", ["%rb"])
    end = emitter.add(start, block)
    results = emitter.fresh("r")
    iter_args = ", ".join(f"%ra{k} = {zero}" for k in range(count))
    emitter.emit(f"{results}:{count} = scf.for {induction} = {start} to {end} step "
                 f"{emitter.index(step)} iter_args({iter_args}) -> "
                 f"({', '.join([vector_type] * count)}) {{")
    return _Reduction(tensor, totals), [f"{results}#{k}" for k in range(count)]


def _close_reduction(emitter: _Emitter, reduction: _Reduction, sums: list[str],
                     write, vector_type: str, combine=None) -> str:
    """Writes the accumulators' `sums` (after the inner loop is closed) to the tensor;
    with several blocks, adds them to the running sums first and closes the block
    loop. `combine(sums)`, if given, then reduces the sums to the values written
    (partial sums of one output). `write(value, tensor, k)` emits the store of value
    `k` and returns the new tensor. Returns the tensor after the reduction."""
    if reduction.totals is not None:
        added = []
        for k, value in enumerate(sums):
            total = emitter.fresh("sum")
            emitter.emit(f"{total} = arith.addf %rt{k}, {value} : {vector_type}")
            added.append(total)
        _close_loop(emitter, added, [vector_type] * len(sums))
        sums = reduction.totals
    if combine is not None:
        sums = combine(sums)
    tensor = reduction.tensor
    for k, value in enumerate(sums):
        tensor = write(value, tensor, k)
    return tensor


def _read_input_row(emitter: _Emitter, row_index: str, first_column: int, stride: int,
                    lanes: int, zero: str, input_type: str) -> str:
    """One vector of input pixels for consecutive output columns `%ow...`: row `row_index`
    (the leading indices), columns `%ow * stride + first_column` onwards, `stride` apart.
    A strided row is read as one wide vector and its every `stride`-th lane shuffled out."""
    vector_type = f"vector<{lanes}xf32>"
    column = emitter.affine(f"d0 * {stride} + {first_column}", ["%ow"])
    value = emitter.fresh("x")
    if stride == 1:
        emitter.emit(f"{value} = vector.transfer_read %input[{row_index}, {column}], {zero} "
                     f"{{in_bounds = [true]}} : {input_type}, {vector_type}")
        return value
    wide = emitter.fresh("xw")
    wide_type = f"vector<{lanes * stride}xf32>"
    emitter.emit(f"{wide} = vector.transfer_read %input[{row_index}, {column}], {zero} "
                 f"{{in_bounds = [false]}} : {input_type}, {wide_type}")
    lanes_taken = ", ".join(str(stride * t) for t in range(lanes))
    emitter.emit(f"{value} = vector.shuffle {wide}, {wide} [{lanes_taken}] : "
                 f"{wide_type}, {wide_type}")
    return value

def _function(name: str, arguments: list[tuple[str, str]], result_type: str,
              emitter: _Emitter, result: str) -> str:
    signature = ", ".join(f"{arg}: {arg_type}" for arg, arg_type in arguments)
    body = "\n".join(emitter.lines)
    return (f"func.func private @{name}({signature}) -> {result_type} {{\n{body}\n"
            f"    return {result} : {result_type}\n}}\n")


@dataclasses.dataclass(frozen=True)
class ConvShape:
    """An NCHW convolution over an already padded input, dilation 1, of `batch` images
    (None: known only at run time); the kernels run the same tile for each image.

    Grouped (``groups`` > 1): `channels` and `filters` count one group's, and the
    tensors carry the group as their own dimension, as ``linalg.conv_2d_ngchw_gfchw``
    has them: input ``[N, G, C, H, W]``, output ``[N, G, F, OH, OW]``.
    """

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
    groups: int = 1
    batch: int | None = 1
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    """Zero padding (top, bottom, left, right) the kernel adds itself, one image at a
    time inside its parallel loop, to an input of the unpadded size: torch-mlir's
    ``tensor.pad`` of the whole batch was a sequential fill and strided copy."""
    initial: float | None = None
    """The constant the output starts at (a zero-filled init), or None: read the init."""

    @property
    def vectorize_along_width(self) -> bool:
        """Full-width vectors along the output row, unless rows are short and the
        filters fill whole vectors."""
        return (self.out_width % VECTOR_LANES == 0 or self.filters % VECTOR_LANES != 0
                or self.out_width > VECTOR_LANES)

    @property
    def filter_vectors(self) -> int:
        """Vectors of filters per tile in the small-map kernel."""
        return (2 if self.out_width <= 8 and self.filters % (2 * VECTOR_LANES) == 0
                and 2 * self.out_width <= MAX_ACCUMULATORS else 1)

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
    lanes = _row_lanes(shape.out_width)
    vectors_per_row_tile = _row_vectors(shape.out_width, lanes)
    return _largest_divisor(shape.filters, tuple(
        b for b in (16, 8, 4, 2, 1) if b * vectors_per_row_tile <= MAX_ACCUMULATORS))


def conv_kernel(name: str, shape: ConvShape) -> str:
    """The function text `(input, packed weights, init) -> output` of a convolution.

    A grouped one runs the same tile per group, in an outer loop over the groups
    (ResNeXt's 3x3 convolutions: 8 groups of 4-16 channels); linalg's loops over
    ``conv_2d_ngchw_gfchw`` were scalar, with the 36-144-term reduction innermost.
    """
    if shape.vectorize_along_width:
        return _conv_along_width(name, shape)
    return _conv_along_filters(name, shape)


def _conv_output_dims(shape: ConvShape) -> tuple[int | None, ...]:
    group = () if shape.groups == 1 else (shape.groups,)
    return (shape.batch, *group, shape.filters, shape.out_height, shape.out_width)


def _conv_types(shape: ConvShape, filter_block: int) -> tuple[str, str, str]:
    blocks = shape.filters // filter_block
    group = () if shape.groups == 1 else (shape.groups,)
    return (_tensor((shape.batch, *group, shape.channels, shape.padded_height,
                     shape.padded_width)),
            _tensor((*group, blocks, shape.channels, shape.kernel_height, shape.kernel_width,
                     filter_block)),
            _tensor(_conv_output_dims(shape)))


#: The OpenMP entry points a parallel kernel loop calls (declared once per module by
#: :mod:`.schedule`): the team of each loop is ``min(items, team size)``, so
#: a loop of one item (batch 1 with a run-time batch) forks no thread at all.
OPENMP_DECLARATIONS = (f"func.func private @{threads.GET_TEAM_SIZE}() -> i32\n"
                       f"func.func private @{threads.SET_TEAM_SIZE}(i32)\n")


@dataclasses.dataclass(frozen=True)
class _Parallel:
    """An open ``scf.forall`` (:func:`_open_parallel`): its result, the slice of the
    output one item writes, the text that puts that slice back, and the team size to
    restore after the loop (None without OpenMP)."""

    result: str
    item: str
    placement: str
    restore: str | None


def _open_parallel(emitter: _Emitter, induction: str, count: int | str, tensor: str,
                   tensor_type: str, offsets: list[str], sizes: list[int | str],
                   slice_type: str, prologue: tuple[str, ...] = ()) -> _Parallel:
    """Opens an ``scf.forall`` over `count` items, each written to its own slice of
    `tensor` (at `offsets`, of `sizes`): the iterations are independent, so
    ``convert-scf-to-openmp`` shares them among threads. The `prologue` lines come first
    in its body (offsets computed from `induction`)."""
    restore = None
    if threads.openmp_library() is not None:
        restore, team = emitter.fresh("threads"), emitter.fresh("team")
        items, one, fewer = emitter.fresh("items"), emitter.fresh("one"), emitter.fresh("team")
        count_value = count if isinstance(count, str) else emitter.index(count)
        emitter.emit(f"{restore} = func.call @{threads.GET_TEAM_SIZE}() : () -> i32")
        emitter.emit(f"{items} = arith.index_cast {count_value} : index to i32")
        emitter.emit(f"{one} = arith.constant 1 : i32")
        emitter.emit(f"{fewer} = arith.minsi {items}, {restore} : i32")
        emitter.emit(f"{team} = arith.maxsi {fewer}, {one} : i32")
        emitter.emit(f"func.call @{threads.SET_TEAM_SIZE}({team}) : (i32) -> ()")
    result = emitter.fresh("par")
    shared = emitter.fresh("shared")
    emitter.emit(f"{result} = scf.forall ({induction}) in ({count}) shared_outs({shared} = "
                 f"{tensor}) -> ({tensor_type}) {{")
    for line in prologue:
        emitter.emit(line)
    position = (f"[{', '.join(offsets)}] [{', '.join(map(str, sizes))}] "
                f"[{', '.join('1' for _ in sizes)}]")
    item = emitter.fresh("item")
    emitter.emit(f"{item} = tensor.extract_slice {shared}{position} : {tensor_type} to "
                 f"{slice_type}")
    placement = f"into {shared}{position} : {slice_type} into {tensor_type}"
    return _Parallel(result, item, placement, restore)


def _close_parallel(emitter: _Emitter, loop: _Parallel, value: str) -> str:
    """Closes `loop` on the item's result `value`; returns the loop's result."""
    emitter.emit("scf.forall.in_parallel {")
    emitter.emit(f"  tensor.parallel_insert_slice {value} {loop.placement}")
    emitter.emit("}")
    emitter.emit("}")
    if loop.restore is not None:
        emitter.emit(f"func.call @{threads.SET_TEAM_SIZE}({loop.restore}) : (i32) -> ()")
    return loop.result


def conv_input_argument(shape: ConvShape, input_type: str) -> tuple[str, str]:
    """The kernel's input argument and its type: ``%input`` (already padded, of
    `input_type`) or, when the kernel pads, ``%source`` of the unpadded size."""
    if not any(shape.padding):
        return "%input", input_type
    top, bottom, left, right = shape.padding
    *lead, height, width = _dims(input_type)
    return "%source", _tensor((*lead, height - top - bottom, width - left - right))


def _pad_input(emitter: _Emitter, shape: ConvShape, source_type: str, per_image: bool) -> str:
    """Emits ``%input``: image ``%n`` of ``%source`` (`per_image`, inside the loop over
    images) or the whole of it, zero-padded; returns its type."""
    dims = _dims(source_type)
    value, value_type = "%source", source_type
    if per_image:
        value, value_type = "%image", _tensor((1, *dims[1:]))
        offsets = ", ".join(["%n"] + ["0"] * (len(dims) - 1))
        sizes = ", ".join(["1"] + [str(d) for d in dims[1:]])
        emitter.emit(f"%image = tensor.extract_slice %source[{offsets}] [{sizes}] "
                     f"[{', '.join('1' for _ in dims)}] : {source_type} to {value_type}")
    top, bottom, left, right = shape.padding
    lead = ["0"] * (len(dims) - 2)
    padded_type = _tensor((*_dims(value_type)[:-2], dims[-2] + top + bottom,
                           dims[-1] + left + right))
    indices = ", ".join(f"%p{axis}: index" for axis in range(len(dims)))
    emitter.emit(f"%input = tensor.pad {value} low[{', '.join(lead + [str(top), str(left)])}] "
                 f"high[{', '.join(lead + [str(bottom), str(right)])}] {{")
    emitter.emit(f"^bb0({indices}):")
    emitter.emit("  tensor.yield %zero : f32")
    emitter.emit(f"}} : {value_type} to {padded_type}")
    return padded_type


def conv_function(name: str, shape: ConvShape, types: tuple[str, str, str], emitter: _Emitter,
                  result: str) -> str:
    """The text of a convolution kernel `(input, weights, init) -> output` of `types`
    (the input as :func:`conv_input_argument` has it) whose body `emitter` holds."""
    input_type, weight_type, output_type = types
    return _function(name, [conv_input_argument(shape, input_type), ("%weights", weight_type),
                            ("%init", output_type)], output_type, emitter, result)


@dataclasses.dataclass
class _OuterLoops:
    """The loops over images (unless the batch is 1; parallel) and groups (if any)
    around a conv tile: `tensor` (of `tensor_type`) is the output inside them, one
    image's; `input_lead` / `output_lead` the image and group indices that start every
    input / output access (``"%c0, "``, ``"%n, %g, "`` / ``"%c0, %g, "``)."""

    tensor: str
    tensor_type: str
    input_lead: str
    output_lead: str
    closers: list[Callable[[str], str]]
    input_type: str
    """The type of ``%input`` as the tile reads it (one padded image, when the kernel
    pads)."""

    @staticmethod
    def open(emitter: _Emitter, shape: ConvShape, input_type: str,
             output_dims: tuple[int | None, ...]) -> "_OuterLoops":
        c0 = emitter.index(0)
        tensor_type = _tensor(output_dims)
        tensor = output_tensor(emitter, shape.initial, tensor_type)
        input_lead = output_lead = f"{c0}, "
        argument, argument_type = conv_input_argument(shape, input_type)
        closers = []
        if shape.batch != 1:
            images = (shape.batch if shape.batch is not None
                      else _extent(emitter, argument, argument_type, 0))
            item_type = _tensor((1, *output_dims[1:]))
            loop = _open_parallel(
                emitter, "%n", images, tensor, tensor_type,
                ["%n"] + ["0"] * (len(output_dims) - 1), [1, *output_dims[1:]], item_type)
            tensor, tensor_type, input_lead = loop.item, item_type, "%n, "
            closers.append(lambda inner, loop=loop: _close_parallel(emitter, loop, inner))
        if any(shape.padding):
            input_type = _pad_input(emitter, shape, argument_type, per_image=shape.batch != 1)
            input_lead = f"{c0}, "
        if shape.groups > 1:
            (result,) = _open_loop(emitter, "%g", shape.groups, 1,
                                   [("%og", tensor, tensor_type)])
            tensor, input_lead, output_lead = "%og", input_lead + "%g, ", output_lead + "%g, "

            def close_groups(inner: str, result=result, loop_type=tensor_type) -> str:
                _close_loop(emitter, [inner], [loop_type])
                return result
            closers.append(close_groups)
        return _OuterLoops(tensor, tensor_type, input_lead, output_lead, closers, input_type)

    def close(self, inner: str) -> str:
        """Closes the loops on the tile loops' result `inner`; returns the output."""
        for closer in reversed(self.closers):
            inner = closer(inner)
        return inner


SPLIT_FILTERS_MIN_FLOPS = 2_000_000
"""A convolution without a parallel loop over images (batch 1) shares its blocks of
filters among threads from this much work on (a fork and join of the team costs a few
microseconds; 2 MFLOP take ~25 us on one core)."""


def splits_filter_blocks(shape: ConvShape, filter_block: int) -> bool:
    """Whether the loop over blocks of filters is the kernel's parallel loop: for one
    image (no loop over images to share), ungrouped, of at least two blocks and
    :data:`SPLIT_FILTERS_MIN_FLOPS`, when there are threads to share it."""
    flops = (2 * shape.filters * shape.channels * shape.kernel_height * shape.kernel_width
             * shape.out_height * shape.out_width)
    return (shape.batch == 1 and shape.groups == 1 and shape.filters // filter_block >= 2
            and flops >= SPLIT_FILTERS_MIN_FLOPS and threads.openmp_library() is not None)


@dataclasses.dataclass
class _FilterBlocks:
    """The loop over blocks of `filter_block` output channels, inside :class:`_OuterLoops`:
    parallel when :func:`splits_filter_blocks` (each item writes its own
    ``[1, filter_block, OH, OW]`` slice), else sequential, carrying the output. `tensor`
    (of `tensor_type`) is the output inside it; `base` the index of the block's first
    filter in it (0 in a parallel item); `%fo` the block's index into the weights."""

    tensor: str
    tensor_type: str
    base: str
    close: Callable[[str], str]

    @staticmethod
    def open(emitter: _Emitter, shape: ConvShape, filter_block: int,
             outer: "_OuterLoops") -> "_FilterBlocks":
        blocks = shape.filters // filter_block
        if not splits_filter_blocks(shape, filter_block):
            (result,) = _open_loop(emitter, "%fo", blocks, 1,
                                   [("%o0", outer.tensor, outer.tensor_type)])

            def close(inner: str) -> str:
                _close_loop(emitter, [inner], [outer.tensor_type])
                return result
            return _FilterBlocks("%o0", outer.tensor_type,
                                 emitter.affine(f"d0 * {filter_block}", ["%fo"]), close)
        _, _, height, width = _dims(outer.tensor_type)
        item_type = _tensor((1, filter_block, height, width))
        loop = _open_parallel(
            emitter, "%fo", blocks, outer.tensor, outer.tensor_type, ["0", "%first", "0", "0"],
            [1, filter_block, height, width], item_type,
            (f"%first = affine.apply affine_map<(d0) -> (d0 * {filter_block})>(%fo)",))
        return _FilterBlocks(loop.item, item_type, emitter.index(0),
                             lambda inner: _close_parallel(emitter, loop, inner))


def _conv_along_width(name: str, shape: ConvShape) -> str:
    filter_block = conv_filter_block(shape)
    lanes = _row_lanes(shape.out_width)
    vectors = _row_vectors(shape.out_width, lanes)
    row_tile = lanes * vectors
    vector_type = f"vector<{lanes}xf32>"
    input_type, weight_type, output_type = _conv_types(shape, filter_block)
    e = _Emitter()
    zero = "%zero"
    e.emit(f"{zero} = arith.constant 0.0 : f32")
    outer = _OuterLoops.open(e, shape, input_type, _conv_output_dims(shape))
    lead, g = outer.output_lead, outer.output_lead.partition(", ")[2]
    input_lead, read_type = outer.input_lead, outer.input_type
    filters = _FilterBlocks.open(e, shape, filter_block, outer)
    item_type, filter_base = filters.tensor_type, filters.base
    (out1,) = _open_loop(e, "%oh", shape.out_height, 1, [("%o1", filters.tensor, item_type)])
    (out2,) = _open_loop(e, "%ow", shape.out_width, row_tile,
                                [("%o2", "%o1", item_type)])
    filter_index = [e.add(filter_base, i) for i in range(filter_block)]
    column_index = [e.add("%ow", j * lanes) for j in range(vectors)]
    blocks = [(i, j) for i in range(filter_block) for j in range(vectors)]

    def position(k: int) -> str:
        i, j = blocks[k]
        return f"[{lead}{filter_index[i]}, %oh, {column_index[j]}]"

    output_vectors = _VectorTile(e, position, item_type, vector_type, zero)

    accumulator_types = [vector_type] * len(blocks)
    reduction, by_channel = _open_reduction(
        e, "%c", shape.channels,
        conv_reduction_block(shape, len(blocks)), 1,
        "%o2", lambda t: initial_vectors(
            e, shape.initial, len(blocks), vector_type,
            lambda: [output_vectors.read(t, k) for k in range(len(blocks))]),
        len(blocks), vector_type)
    by_row = _open_loop(e, "%kh", shape.kernel_height, 1, [
        (f"%ka{k}", f"%ra{k}", vector_type) for k in range(len(blocks))])
    input_row = e.affine(f"d0 * {shape.stride_h} + d1", ["%oh", "%kh"])
    accumulators = [f"%ka{k}" for k in range(len(blocks))]
    stride = shape.stride_w
    for kw in range(shape.kernel_width):
        inputs = []
        for j in range(vectors):
            inputs.append(_read_input_row(e, f"{input_lead}%c, {input_row}",
                                          j * lanes * stride + kw, stride, lanes, zero,
                                          read_type))
        for i in range(filter_block):
            weight = e.fresh("w")
            e.emit(f"{weight} = tensor.extract %weights[{g}%fo, %c, %kh, {e.index(kw)}, "
                   f"{e.index(i)}] : {weight_type}")
            for j in range(vectors):
                k = blocks.index((i, j))
                accumulators[k] = e.fma(weight, inputs[j], accumulators[k], vector_type)
    _close_loop(e, accumulators, accumulator_types)
    _close_loop(e, by_row, accumulator_types)
    result = _close_reduction(e, reduction, by_channel, output_vectors.write, vector_type)
    _close_loop(e, [result], [item_type])
    _close_loop(e, [out2], [item_type])
    out0 = outer.close(filters.close(out1))
    return conv_function(name, shape, (input_type, weight_type, output_type), e, out0)


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
    outer = _OuterLoops.open(e, shape, input_type, _conv_output_dims(shape))
    lead, g = outer.output_lead, outer.output_lead.partition(", ")[2]
    input_lead, read_type = outer.input_lead, outer.input_type
    filters = _FilterBlocks.open(e, shape, filter_block, outer)
    item_type, filter_base = filters.tensor_type, filters.base
    (out1,) = _open_loop(e, "%oh", shape.out_height, rows, [("%o1", filters.tensor, item_type)])
    slice_type = _tensor((filter_block, rows, shape.out_width))
    tile_type = _tensor((rows, shape.out_width, filter_block))
    group_size = "" if shape.groups == 1 else "1, "
    slice_position = (f"[{lead}{filter_base}, %oh, {c0}] [1, {group_size}{filter_block}, "
                      f"{rows}, {shape.out_width}] [1, {group_size}1, 1, 1]")
    e.emit(f"%slice = tensor.extract_slice %o1{slice_position} : {item_type} to {slice_type}")
    e.emit(f"%tile_init = tensor.empty() : {tile_type}")
    tile = "%tile_init"
    if shape.initial is None:
        tile = "%tile"
        e.emit(f"%tile = linalg.transpose ins(%slice : {slice_type}) outs(%tile_init : "
               f"{tile_type}) permutation = [1, 2, 0]")

    def position(k: int) -> str:
        p, v = blocks[k]
        r, ow = pixels[p]
        return f"[{e.index(r)}, {e.index(ow)}, {e.index(v * lanes)}]"

    tile_vectors = _VectorTile(e, position, tile_type, vector_type, zero, written_stem="t")

    accumulator_types = [vector_type] * len(blocks)
    reduction, by_channel = _open_reduction(
        e, "%c", shape.channels,
        conv_reduction_block(shape, len(blocks)), 1,
        tile, lambda t: initial_vectors(
            e, shape.initial, len(blocks), vector_type,
            lambda: [tile_vectors.read(t, k) for k in range(len(blocks))]),
        len(blocks), vector_type)
    by_row = _open_loop(e, "%kh", shape.kernel_height, 1, [
        (f"%ka{k}", f"%ra{k}", vector_type) for k in range(len(blocks))])
    accumulators = [f"%ka{k}" for k in range(len(blocks))]
    input_rows = [e.affine(f"(d0 + {r}) * {shape.stride_h} + d1", ["%oh", "%kh"])
                  for r in range(rows)]
    for kw in range(shape.kernel_width):
        weights = []
        for v in range(filter_vectors):
            weight = e.fresh("w")
            e.emit(f"{weight} = vector.transfer_read %weights[{g}%fo, %c, %kh, "
                   f"{e.index(kw)}, {e.index(v * lanes)}], {zero} {{in_bounds = [true]}} : "
                   f"{weight_type}, {vector_type}")
            weights.append(weight)
        for p, (r, ow) in enumerate(pixels):
            scalar = e.fresh("x")
            e.emit(f"{scalar} = tensor.extract %input[{input_lead}%c, {input_rows[r]}, "
                   f"{e.index(ow * shape.stride_w + kw)}] : {read_type}")
            for v in range(filter_vectors):
                k = blocks.index((p, v))
                accumulators[k] = e.fma(scalar, weights[v], accumulators[k], vector_type)
    _close_loop(e, accumulators, accumulator_types)
    _close_loop(e, by_row, accumulator_types)
    tile = _close_reduction(e, reduction, by_channel, tile_vectors.write, vector_type)
    e.emit(f"%slice_result = linalg.transpose ins({tile} : {tile_type}) "
           f"outs(%slice : {slice_type}) permutation = [2, 0, 1]")
    result = e.fresh("o")
    e.emit(f"{result} = tensor.insert_slice %slice_result into %o1{slice_position} : "
           f"{slice_type} into {item_type}")
    _close_loop(e, [result], [item_type])
    out0 = outer.close(filters.close(out1))
    return conv_function(name, shape, (input_type, weight_type, output_type), e, out0)
