"""Lowering of one torch-dialect sub-graph to the LLVM dialect.

Stages, each a pass pipeline run through ``torch_mlir.passmanager``:

1. ``torch-decompose-complex-ops`` for the ops the frontend keeps whole on purpose
   (``aten.addcmul``, the fused multiply-add of eager batch-norm), then
   ``torch-backend-to-linalg-on-tensors-backend-pipeline`` (torch-mlir's own), run in two
   parts around :mod:`.broadcast_sizes` (``index_put`` with an empty run-time index).
2. Bound arguments become ``arith.constant`` tensors, so weight transposes and
   other parameter-only computations fold at compile time.
3. Tensor-level optimisation: :mod:`.schedule`, which replaces convolutions and
   (batch) matmuls by register-blocked vector kernels, then elementwise fusion,
   :mod:`.fused_multiply_add` (``addcmul`` rounds once, as in eager),
   then :mod:`.schedule` again for weights that only fusion's folding made
   constant; reduction combiners are marked reassociable so they vectorise.
4. Bufferisation with results turned into caller-provided out-parameters.
5. Conversion to the LLVM dialect.
"""

import dataclasses
from collections.abc import Collection

import torch
from torch_mlir import ir
from torch_mlir.dialects import bufferization
from torch_mlir.dialects import torch as torch_dialect

from . import (
    broadcast_sizes,
    dynamic_views,
    eager_checks,
    fused_multiply_add,
    index_bounds,
    index_linearization,
    nan_indices,
    parallel_generics,
    prelude,
    schedule,
    special_values,
    threads,
    tm_tensor_buffers,
    unsupported,
)
from .engine import PRELUDE_SUFFIX, Signature, TensorSpec
from .errors import LoweringError, lowering_error, run_pipeline

TORCH_TO_TMTENSOR = (
    "builtin.module(func.func(torch-decompose-complex-ops),"
    "func.func(torch-restructure-non-constant-axes), func.func(torch-fuse-quantized-ops),"
    "func.func(convert-torch-to-tmtensor{allow-non-finites=true}))"
)
"""The first passes of torch-mlir's ``torch-backend-to-linalg-on-tensors-backend-pipeline``;
:mod:`.broadcast_sizes` corrects what the TMTensor conversion emits, then
:data:`TMTENSOR_TO_LINALG` runs the rest of that pipeline, in its order."""

TMTENSOR_TO_LINALG = (
    "builtin.module(func.func(canonicalize),"
    "func.func(convert-torch-to-linalg{allow-non-finites=true}), func.func(canonicalize),"
    "func.func(convert-torch-to-scf), func.func(convert-torch-to-arith),"
    "func.func(convert-torch-to-tensor), convert-torch-conversion-to-mlprogram,"
    "func.func(memref-expand), func.func(canonicalize),"
    "func.func(resolve-shaped-type-result-dims{error-on-pattern-iteration-limit=true}),"
    "func.func(cse), torch-func-backend-type-conversion, func.func(canonicalize),"
    "func.func(torch-finalizing-backend-type-conversion),"
    "torch-verify-linalg-on-tensors-backend-contract)"
)

TENSOR_OPTIMIZATION = "builtin.module(canonicalize, linalg-fuse-elementwise-ops, canonicalize, cse)"

INLINE_KERNELS = "builtin.module(inline, symbol-dce)"
"""Kernel calls are inlined after fusion (to which they had to stay opaque). Then the
kernel's parallel loop writes in place into the buffer its consumer reads: a call kept
its result in a buffer of its own, copied into the caller's out-parameter by
``buffer-results-to-out-params``, a sequential pass over the whole output
(``Conv2d(16, 16, 3)`` + batch-norm + ReLU at batch 16, 2 threads: 57 -> 45 us per image),
and that pass cannot give a dynamically shaped result an out-parameter at all."""

TM_TENSOR_BUFFERIZATION = "builtin.module(func.func(tm-tensor-bufferize))"

BUFFERIZATION = (
    "builtin.module("
    "eliminate-empty-tensors, empty-tensor-to-alloc-tensor,"
    "one-shot-bufferize{bufferize-function-boundaries "
    "function-boundary-type-conversion=identity-layout-map},"
    "buffer-results-to-out-params{hoist-static-allocs hoist-dynamic-allocs "
    "modify-public-functions},"
    "canonicalize, cse, buffer-deallocation-pipeline, canonicalize)"
)

PARALLEL_LOOPS = "builtin.module(func.func(scf-forall-to-parallel){openmp})"
"""The kernels' ``scf.forall`` loops (over images, row blocks, matrices) become
``scf.parallel``; with the OpenMP runtime (:mod:`.threads`), ``omp.parallel`` regions.
``convert-scf-to-openmp`` wraps each body in a ``memref.alloca_scope``, which
``canonicalize`` inlines (the kernels allocate nothing on the stack) and which
``convert-scf-to-cf`` could not lower once the body has several blocks. Without OpenMP,
``convert-scf-to-cf`` lowers the parallel loops to sequential ones."""

OPENMP_PASSES = ", convert-scf-to-openmp, canonicalize"

TO_LLVM = (
    "builtin.module("
    "convert-bufferization-to-memref,"
    "func.func(refback-munge-memref-copy), func.func(tm-tensor-to-loops),"
    "func.func(convert-linalg-to-loops),"
    "func.func(refback-expand-ops-for-llvm), convert-vector-to-scf{full-unroll},"
    "expand-strided-metadata, lower-affine, convert-scf-to-cf, finalize-memref-to-llvm,"
    "convert-vector-to-llvm, finalize-memref-to-llvm,"
    "convert-math-to-llvm, convert-math-to-libm,"
    "convert-arith-to-llvm, convert-openmp-to-llvm, convert-func-to-llvm, convert-cf-to-llvm,"
    "convert-ub-to-llvm, reconcile-unrealized-casts)"
)

_TORCH_DTYPES = {
    "f16": torch.float16,
    "bf16": torch.bfloat16,
    "f32": torch.float32,
    "f64": torch.float64,
    "i1": torch.bool,
    "i8": torch.int8,
    "ui8": torch.uint8,
    "i16": torch.int16,
    "i32": torch.int32,
    "i64": torch.int64,
}

def new_context() -> ir.Context:
    context = ir.Context()
    torch_dialect.register_dialect(context)
    return context


def parse_torch_module(module_text: str, context: ir.Context) -> ir.Module:
    try:
        return ir.Module.parse(module_text, context)
    except ir.MLIRError as error:
        raise lowering_error("parsing", error) from None


def find_function(module: ir.Module, func_name: str):
    for operation in module.body.operations:
        if operation.operation.name == "func.func" and (
            ir.StringAttr(operation.attributes["sym_name"]).value == func_name
        ):
            return operation
    raise LoweringError(f"no func.func named @{func_name} in the module")


def erase_nested_assertions(module: ir.Module) -> None:
    """Drops the ``cf.assert`` guards torch-mlir emits inside loop bodies (e.g. integer
    division by zero in an elementwise body).

    Eager PyTorch performs no such checks per element (floats yield inf/nan), and inside
    elementwise bodies the guards block fusion and vectorisation. Assertions at a
    function's top level (shape checks, ``torch.runtime.assert``) are kept: they move to
    the prelude (:mod:`.prelude`).
    """
    assertions = []

    def collect(operation):
        operation = operation.operation
        if operation.name == "cf.assert" and operation.parent.name != "func.func":
            assertions.append(operation)
        return ir.WalkResult.ADVANCE

    module.operation.walk(collect)
    for assertion in assertions:
        assertion.erase()


def drop_symbolic_shape_annotations(module: ir.Module) -> None:
    """Erases ``torch.bind_symbolic_shape`` and then ``torch.symbolic_int`` (what the FX
    importer adds with ``import_symbolic_shape_expressions``): torch-mlir's backend
    pipeline does not legalise them, and the ``?`` dimensions plus the run-time sizes
    carry all the back end uses."""
    annotations = {"torch.bind_symbolic_shape": [], "torch.symbolic_int": []}

    def collect(operation):
        operation = operation.operation
        if operation.name in annotations:
            annotations[operation.name].append(operation)
        return ir.WalkResult.ADVANCE

    module.operation.walk(collect)
    for operation in annotations["torch.bind_symbolic_shape"] + annotations["torch.symbolic_int"]:
        operation.erase()


_REASSOCIABLE_COMBINERS = ("arith.addf", "arith.mulf", "arith.maximumf", "arith.minimumf",
                           "arith.maxnumf", "arith.minnumf")


def allow_reassociation_in_reductions(module: ir.Module) -> None:
    """Marks the floating-point combiners of reductions ``fastmath<reassoc>``.

    LLVM's loop vectoriser only turns an ``fadd`` accumulation into a vector
    reduction (partial sums per lane) when it may reassociate it; without the
    flag, sums over the contiguous innermost dimension (LayerNorm's mean and
    variance, softmax's denominator) run as one scalar chain of dependent adds
    (LayerNorm over 32x128: 9.6 -> 5.4 us). Only the op that combines the
    accumulator (the body's ``out`` argument) is marked, never the per-element
    arithmetic. Eager PyTorch's reductions are vectorised the same way.
    """
    combiners = []

    def visit(operation):
        operation = operation.operation
        if (operation.name == "linalg.generic"
                and "reduction" in str(operation.attributes["iterator_types"])):
            block = operation.regions[0].blocks[0]
            accumulators = list(block.arguments)[len(operation.operands) - len(operation.results):]
            for inner in block.operations:
                if inner.operation.name in _REASSOCIABLE_COMBINERS and any(
                        operand in accumulators for operand in inner.operation.operands):
                    combiners.append(inner.operation)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    reassoc = ir.Attribute.parse("#arith.fastmath<reassoc>", module.context)
    for combiner in combiners:
        combiner.attributes["fastmath"] = reassoc


def copy_repeated_results(function) -> None:
    """Returns a fresh copy of every value the function already returns at an earlier
    position. CSE merges equal results (two `torch.zeros(b, h)` of a loop's state), and
    `buffer-results-to-out-params` crashes the process on `return %a, %a`; each result
    position must own its buffer anyway, since the caller passes one per position."""
    block = function.regions[0].blocks[0]
    terminator = block.operations[len(block.operations) - 1].operation
    seen: set = set()
    with ir.InsertionPoint(terminator), terminator.location:
        for position, value in enumerate(list(terminator.operands)):
            if value in seen:
                copy = bufferization.AllocTensorOp(value.type, [], copy=value).result
                terminator.operands[position] = copy
            seen.add(value)


def schedule_dynamically(module: ir.Module) -> None:
    """Gives every ``omp.wsloop`` a dynamic schedule: items (an image, a row tile) go to
    whichever thread asks next, so when the scheduler has not run a worker yet (a shared
    machine), the calling thread does that worker's share instead of waiting for it.
    ``Conv2d(32, 32, 3)`` on 8 x 32x32 and ``Linear(512, 512)`` on 197 rows, 2 threads,
    median us per image under a load average of 6.5 on 2 cores: 2485 -> 993 and
    70 -> 41 (static -> dynamic; same run)."""
    dynamic = ir.Attribute.parse("#omp<schedulekind dynamic>")

    def visit(operation):
        if operation.operation.name == "omp.wsloop":
            operation.operation.attributes["schedule_kind"] = dynamic
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)


def _read_arguments(module: ir.Module, func_name: str, positions: list[int]) -> tuple[int, ...]:
    """The `positions` whose arguments the entry or its prelude still reads (after
    bufferization has dropped dead code): the others need no data at run time."""
    names = (func_name, func_name + PRELUDE_SUFFIX)
    blocks = [operation.regions[0].blocks[0] for operation in module.body.operations
              if operation.operation.name == "func.func"
              and ir.StringAttr(operation.attributes["sym_name"]).value in names]
    return tuple(position for position in positions
                 if any(len(list(block.arguments[position].uses)) for block in blocks))


def _calls_team_size(module: ir.Module) -> bool:
    callees = {threads.GET_TEAM_SIZE, threads.SET_TEAM_SIZE}
    found = []

    def visit(operation):
        if operation.operation.name == "func.call" and (
            ir.FlatSymbolRefAttr(operation.attributes["callee"]).value in callees
        ):
            found.append(operation)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return bool(found)


def _contains(module: ir.Module, op_name: str) -> bool:
    found = []

    def visit(operation):
        if operation.operation.name == op_name:
            found.append(operation)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return bool(found)


def check_fully_converted(module: ir.Module) -> None:
    """Raises LoweringError if an op outside the LLVM dialect survived conversion."""
    leftovers = []

    def visit(operation):
        name = operation.operation.name
        if name != "builtin.module" and not name.startswith(("llvm.", "omp.")):
            leftovers.append(operation.operation)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    if leftovers:
        first = leftovers[0]
        raise LoweringError(f"{first.name}: not converted to the LLVM dialect "
                            f"({len(leftovers)} such ops; first at {first.location}: "
                            f"{str(first).splitlines()[0][:200]})")


def _tensor_spec(tensor_type: ir.Type) -> TensorSpec:
    ranked = ir.RankedTensorType(tensor_type)
    element = str(ranked.element_type)
    if element not in _TORCH_DTYPES:
        raise LoweringError(f"unsupported element type {element} at the sub-graph boundary")
    shape = tuple(None if ranked.is_dynamic_dim(axis) else size
                  for axis, size in enumerate(ranked.shape))
    return TensorSpec(shape, _TORCH_DTYPES[element])


@dataclasses.dataclass
class LoweredSubgraph:
    """An LLVM-dialect module and the signature of its entry point (and prelude);
    `uses_openmp`: it calls the OpenMP runtime (parallel loops); `kernels`: how many ops
    became kernels of :mod:`.kernels` (inlined, so no longer named in the module)."""

    module: ir.Module
    signature: Signature
    uses_openmp: bool = False
    kernels: int = 0


def lower_to_llvm(
    module_text: str, func_name: str, bound: Collection[int], context: ir.Context
) -> LoweredSubgraph:
    """Lowers the sub-graph to the LLVM dialect with a C-interface entry point. The
    arguments at the positions `bound` (parameters) are bound once, when the code is
    loaded: kernels that read them get packed copies as extra arguments
    (:class:`.schedule.Parameters`)."""
    module = parse_torch_module(module_text, context)
    function = find_function(module, func_name)
    arity = len(function.regions[0].blocks[0].arguments)
    out_of_range = [index for index in bound if not 0 <= index < arity]
    if out_of_range:
        raise LoweringError(f"bound argument indices {out_of_range} out of range for @{func_name}")
    unsupported.reject(function)
    drop_symbolic_shape_annotations(module)
    checks_indices = index_bounds.guard(function)
    eager_checks.guard(function)
    nan_indices.apply(function)
    index_linearization.apply(function)
    dynamic_views.apply(function)
    broadcast_sizes.mark_program_maxima(module)
    fused_multiply_add.mark(module)
    run_pipeline(module, TORCH_TO_TMTENSOR, "torch to linalg-on-tensors")
    broadcast_sizes.correct_conversion_maxima(module)
    run_pipeline(module, TMTENSOR_TO_LINALG, "torch to linalg-on-tensors")
    erase_nested_assertions(module)
    function = find_function(module, func_name)
    parameters = schedule.Parameters(function.operation, frozenset(bound))
    function_type = ir.FunctionType(ir.TypeAttr(function.attributes["function_type"]).value)
    inputs = [_tensor_spec(t) for t in function_type.inputs]
    outputs = [_tensor_spec(t) for t in function_type.results]
    read_only = ir.DictAttr.get({"bufferization.writable": ir.BoolAttr.get(False)})
    function.attributes["arg_attrs"] = ir.ArrayAttr.get([read_only] * len(inputs))
    function.attributes["llvm.emit_c_interface"] = ir.UnitAttr.get(context)
    sizes = prelude.build(module, function, outputs)
    schedule.apply(module, parameters)
    run_pipeline(module, TENSOR_OPTIMIZATION, "tensor optimization")
    fused_multiply_add.contract(module)
    special_values.apply(module)
    schedule.apply(module, parameters)
    allow_reassociation_in_reductions(module)
    kernels = schedule.kernel_count(module)
    if kernels:
        run_pipeline(module, INLINE_KERNELS, "kernel inlining")
    if threads.openmp_library() is not None:
        parallel_generics.apply(module)
    copy_repeated_results(find_function(module, func_name))
    run_pipeline(module, TM_TENSOR_BUFFERIZATION, "bufferization")
    tm_tensor_buffers.prepare_for_one_shot(module)
    run_pipeline(module, BUFFERIZATION, "bufferization")
    read = _read_arguments(module, func_name, sorted(bound))
    openmp = threads.openmp_library() is not None
    run_pipeline(module, PARALLEL_LOOPS.format(openmp=OPENMP_PASSES if openmp else ""),
                 "parallel loops")
    # A kernel's team-size calls stay where its parallel loop folded to one item.
    uses_openmp = openmp and (_contains(module, "omp.parallel") or _calls_team_size(module))
    if uses_openmp:
        schedule_dynamically(module)
    run_pipeline(module, TO_LLVM, "LLVM conversion")
    check_fully_converted(module)
    signature = Signature(func_name, tuple(inputs), tuple(outputs), sizes, checks_indices,
                          tuple(sorted(bound)), read, tuple(parameters.packed))
    return LoweredSubgraph(module, signature, uses_openmp, kernels)
