"""Straight-line stretches: tensor code between two control-flow points, imported by torch-mlir.

While the evaluator walks the model's source it runs every tensor operation eagerly on example
tensors (that is the shape propagation: each staged tensor knows its example) and records the
call in the current `Stretch`. At a control-flow point the stretch is replayed as the forward of
a small `nn.Module` whose inputs are its live-in tensors (staged values defined earlier, weights
and constants) and whose outputs are the tensors the rest of the program can still reach. That
module goes through `torch_mlir.fx.export_and_import`, and the body of the imported function is
spliced into the current block, its arguments replaced by SSA values and `dy.param` ops.

Weights reach the replay only as inputs (leaf modules run with their weights swapped for those
inputs, as `torch.func.functional_call` does), so they can never be baked into the IR as
literals; every one becomes a `dy.param` keyed by its `state_dict` name, stored once in the
side-car file however many stretches use it.
"""

from __future__ import annotations

import ast
import io
import operator
import re
import weakref
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx.experimental._config as fx_config
import torch_mlir.fx
from torch import nn
from torch.export import Dim
from torch.nn.utils.stateless import _reparametrize_module
from xdsl.dialects import func
from xdsl.dialects.builtin import FileLineColLoc, ModuleOp, UnitAttr
from xdsl.ir import Block, SSAValue
from xdsl.utils.exceptions import ParseError, VerifyException

from frontends.torch.cache import Unfingerprintable, describe_value
from frontends.torch.decompositions import (
    BACKEND_LEGAL_OPS,
    decompose,
    drop_storage_offset_checks,
    negations_as_comparisons,
)
from frontends.torch.errors import first_line
from frontends.torch.size_checks import (
    CheckedSizes,
    OnesTrace,
    SizeCheck,
    SizeCheckError,
    add_size_checks,
    explain_squeeze_assertions,
    input_checks,
)
from frontends.torch.values import StagedTensor
from ir.dy import SIZE_ONE_CHECKS_ATTR
from ir.parser import MLIRParser
from ir.program import ProgramContext
from ir.torch import DYNAMIC_DIM, ValueTensorType

Ref = tuple
"""A replay-local name of a tensor: `("in", k)` for live-in k, `("out", op, path)` for a
tensor inside the result of recorded op number `op`."""


@dataclass(eq=False)
class Pending:
    """A tensor produced in a stretch that has not been imported yet."""

    stretch: Stretch
    ref: Ref


@dataclass(frozen=True)
class LiveIn:
    """Where a stretch input comes from: an SSA value of the host, or a weight/constant key."""

    value: SSAValue | None
    param_key: str | None
    example: torch.Tensor

    @property
    def dynamic_dims(self) -> tuple[int, ...]:
        """The dimensions whose size is known only at run time (`?` in the value's type)."""
        return dynamic_dims(self.value.type) if self.value is not None else ()


def dynamic_dims(value_type: Any) -> tuple[int, ...]:
    if not isinstance(value_type, ValueTensorType) or value_type.shape is None:
        return ()
    return tuple(i for i, size in enumerate(value_type.shape) if size == DYNAMIC_DIM)


@dataclass
class RecordedCall:
    function: Callable[..., Any]
    args: tuple
    kwargs: dict
    module: nn.Module | None
    """The module whose weights `function` reads (a leaf module or one of its methods)."""
    module_params: dict[str, Ref]


@dataclass(frozen=True)
class _Slot:
    ref: Ref


@dataclass(frozen=True)
class _SizeSlot:
    """A symbolic size argument: `("dim", ref, d)` leaves (dimension d of the tensor named
    `ref`), ints, and `(ast operator type, operand, ...)` nodes. The replay recomputes it from
    the tensors it measures, so torch.export sees a symbolic size rather than a number."""

    term: Any


@dataclass
class Stretch:
    """The calls recorded since the last control-flow point, in program order."""

    location: FileLineColLoc | None = None
    dynamic: bool = False
    """Whether a tensor of this stretch may have a size the example does not fix: a live-in
    with a `?` dimension, or a call whose result size depends on data. Reading such a
    tensor's shape imports the stretch first, so that the shape comes from torch-mlir."""
    live_ins: list[LiveIn] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)
    mutated_live_ins: set[int] = field(default_factory=set)
    produced: list[weakref.ref[StagedTensor]] = field(default_factory=list)
    _live_in_index: dict[object, int] = field(default_factory=dict)

    def live_in(self, key: object, source: LiveIn) -> Ref:
        index = self._live_in_index.get(key)
        if index is None:
            index = len(self.live_ins)
            self._live_in_index[key] = index
            self.live_ins.append(source)
            self.dynamic = self.dynamic or bool(source.dynamic_dims)
        return ("in", index)

    def track(self, handle: StagedTensor) -> None:
        self.produced.append(weakref.ref(handle))

    def reachable_outputs(self) -> list[StagedTensor]:
        """The pending handles of this stretch that the program can still reach."""
        alive = []
        seen: set[int] = set()
        for reference in self.produced:
            handle = reference()
            if (
                handle is not None
                and id(handle) not in seen
                and isinstance(handle.value, Pending)
                and (handle.value.stretch is self)
            ):
                seen.add(id(handle))
                alive.append(handle)
        return alive


def template(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """`value` with every leaf that `leaf` maps to a non-None replaced, containers rebuilt."""
    mapped = leaf(value)
    if mapped is not None:
        return mapped
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(template(v, leaf) for v in value)
    if isinstance(value, list):
        return [template(v, leaf) for v in value]
    if isinstance(value, dict):
        return {k: template(v, leaf) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(*(template(v, leaf) for v in (value.start, value.stop, value.step)))
    return value


def slot(ref: Ref) -> _Slot:
    return _Slot(ref)


def size_slot(term: Any) -> _SizeSlot:
    return _SizeSlot(term)


_SIZE_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.USub: operator.neg,
}


def _size(term: Any, env: dict[Ref, torch.Tensor]) -> Any:
    if not isinstance(term, tuple):
        return term
    if term[0] == "dim":
        return env[term[1]].size(term[2])
    return _SIZE_OPERATORS[term[0]](*(_size(operand, env) for operand in term[1:]))


def _fill(value: Any, env: dict[Ref, torch.Tensor]) -> Any:
    def leaf(item: Any) -> Any:
        if isinstance(item, _Slot):
            return env[item.ref]
        if isinstance(item, _SizeSlot):
            return _size(item.term, env)
        return None

    return template(value, leaf)


def tensor_leaves(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, torch.Tensor]]:
    """(path, tensor) for every tensor inside tuples, lists and named tuples of `value`."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from tensor_leaves(item, (*path, index))


class _Replay(nn.Module):
    """Re-runs a stretch's calls on its live-in tensors; what torch.export traces."""

    def __init__(self, stretch: Stretch, outputs: list[Ref]):
        super().__init__()
        self._calls = stretch.calls
        self._mutated = stretch.mutated_live_ins
        self._outputs = outputs

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env: dict[Ref, torch.Tensor] = {}
        for index, tensor in enumerate(inputs):
            env[("in", index)] = tensor.clone() if index in self._mutated else tensor
        for number, call in enumerate(self._calls):
            args = _fill(call.args, env)
            kwargs = _fill(call.kwargs, env)
            if call.module is None:
                result = call.function(*args, **kwargs)
            else:
                weights = {name: env[ref] for name, ref in call.module_params.items()}
                with _reparametrize_module(call.module, weights):
                    result = call.function(*args, **kwargs)
            for path, tensor in tensor_leaves(result):
                env[("out", number, path)] = tensor
        return tuple(env[ref] for ref in self._outputs)


_RESOURCES = re.compile(r"\{-#.*", re.DOTALL)


class ImportFailure(Exception):
    """torch-mlir could not import a stretch; the message says which op."""


@dataclass(frozen=True)
class ImportedStretch:
    """torch-mlir's import of a stretch, and torch.export's graph it came from
    (`_trace_key`; None for a trace that specialised sizes of 1, `OnesTrace`)."""

    function: func.FuncOp
    trace: str | None

    def holds_for(self, stretch: Stretch, outputs: list[Ref]) -> bool:
        """Whether the import is also that of `stretch`, whose structure key is the same
        but whose examples may differ in sizes the trace left symbolic. torch.export's
        size-oblivious trace may still have used the example's size without a guard (the
        number of pieces `torch.split` makes), so `stretch` is traced again, and the
        import holds if the trace is the same (without the decompositions and the
        torch-mlir import, three quarters of the work)."""
        if self.trace is None:
            return False
        try:
            program, squeezed = _export(stretch, outputs)
            checks = input_checks(program, squeezed)
        except Exception:  # noqa: BLE001 - whatever fails here is imported afresh
            return False
        return _trace_key(program, checks) == self.trace


def example_layouts(stretch: Stretch) -> tuple:
    """The sizes and strides of the live-ins' examples."""
    return tuple((tuple(i.example.shape), i.example.stride()) for i in stretch.live_ins)


def _trace_key(program: torch.export.ExportedProgram, checks: list[SizeCheck]) -> str | None:
    """torch.export's graph with its input sizes, their ranges, the size checks and the
    constants it lifted; None when a constant cannot be described."""
    sizes = [
        str(getattr(node.meta.get("val"), "shape", None))
        for node in program.graph.nodes
        if node.op == "placeholder"
    ]
    limits = program.range_constraints.items()
    ranges = sorted((str(symbol), str(limit)) for symbol, limit in limits)
    try:
        constants = sorted(
            (name, describe_value(value, {})) for name, value in program.constants.items()
        )
    except Unfingerprintable:
        return None
    parts = [program.graph_module.code, repr(sizes), repr(ranges), repr(checks), repr(constants)]
    return "\n".join(parts)


def _export_example(live_in: LiveIn, widen_ones: bool) -> torch.Tensor:
    """The example torch.export traces with: size 0 along a dynamic dimension would trip
    shape checks of the trace (a `view(-1)` of nothing), so such a dimension gets size 2;
    with `widen_ones`, size 1 too, which the trace may otherwise treat as broadcastable and
    give a result a static 1 where the run-time size is the batch's (act_rnn with
    `dynamic=True` wrote a batch into a one-item buffer)."""
    example = live_in.example
    smallest = 1 if widen_ones else 0
    degenerate = [d for d in live_in.dynamic_dims if example.shape[d] <= smallest]
    if not degenerate:
        return example
    shape = [2 if d in degenerate else size for d, size in enumerate(example.shape)]
    return _zeros_laid_out_as(example, shape)


def _zeros_laid_out_as(example: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """Zeros of `shape` whose dimensions lie in memory in the order of `example`'s (a
    permuted example stays permuted), so a `view` the layout forbids fails in the trace as
    it does in eager; broadcast (stride-0) dimensions stay broadcast."""
    order = sorted(range(example.dim()), key=lambda d: -example.stride(d))
    broadcast = [d for d in range(example.dim()) if example.stride(d) == 0 and shape[d] > 1]
    dense = [1 if d in broadcast else shape[d] for d in range(example.dim())]
    base = torch.zeros([dense[d] for d in order], dtype=example.dtype)
    laid_out = base.permute([order.index(d) for d in range(example.dim())])
    return laid_out.expand(shape) if broadcast else laid_out


def import_stretch(stretch: Stretch, outputs: list[Ref]) -> ImportedStretch:
    """torch-mlir's import of the stretch as a `func.func`, parsed into xDSL ops.

    Live-ins with `?` dimensions are exported with those dimensions dynamic, each its own
    symbol (no duck sizing: two sizes equal on the example need not be equal at run time)
    and without specialising sizes 0 and 1, so the import holds for every size, except
    where `size_checks` asserts it does not (a squeeze of a dynamic size, a range the trace
    needs). Dynamic sizes of 1 are traced at 2 first; a stretch that does not trace there
    (a dynamic batch checked against a static batch of one, or two sizes whose relation
    the widening broke) is traced at its example's sizes (`OnesTrace`). The function
    carries `SIZE_ONE_CHECKS_ATTR` when some check fails at size 1."""
    try:
        return _import_stretch(stretch, outputs)
    except ImportFailure as error:
        ones = [
            (index, d)
            for index, live_in in enumerate(stretch.live_ins)
            for d in live_in.dynamic_dims
            if live_in.example.shape[d] == 1
        ]
        if not ones:
            raise
        return _import_stretch(stretch, outputs, OnesTrace(ones, str(error)))


def _export(
    stretch: Stretch, outputs: list[Ref], at_one: OnesTrace | None = None
) -> tuple[torch.export.ExportedProgram, CheckedSizes]:
    examples = []
    seen: set[int] = set()
    for live_in in stretch.live_ins:
        example = _export_example(live_in, widen_ones=at_one is None)
        # torch.export merges inputs that are one tensor object; ours are distinct values.
        examples.append(example.clone() if id(example) in seen else example)
        seen.add(id(example))
    dynamic_shapes = tuple(
        {d: Dim.AUTO for d in live_in.dynamic_dims} or None for live_in in stretch.live_ins
    )
    symbolic = any(dynamic_shapes)
    squeezed = CheckedSizes()
    with redirect_stderr(io.StringIO()), _dynamic_export(symbolic), squeezed:
        program = torch.export.export(
            _Replay(stretch, outputs),
            tuple(examples),
            dynamic_shapes=(dynamic_shapes,) if symbolic else None,
            strict=False,
        )
    return program, squeezed


def _import_stretch(
    stretch: Stretch, outputs: list[Ref], at_one: OnesTrace | None = None
) -> ImportedStretch:
    symbolic = any(live_in.dynamic_dims for live_in in stretch.live_ins)
    try:
        program, squeezed = _export(stretch, outputs, at_one)
        with redirect_stderr(io.StringIO()), _dynamic_export(symbolic):
            checks = input_checks(program, squeezed, at_one)
            trace = None if at_one is not None else _trace_key(program, checks)
            program = decompose(program)
            drop_storage_offset_checks(program)
            negations_as_comparisons(program)
            explain_squeeze_assertions(program, squeezed)
            imported = torch_mlir.fx.export_and_import(
                program,
                output_type="torch",
                func_name="stretch",
                decomposition_table={},
                backend_legal_ops=BACKEND_LEGAL_OPS,
            )
    except SizeCheckError as error:
        raise ImportFailure(str(error)) from None
    except Exception as error:  # noqa: BLE001 - torch.export and the importer raise many types
        raise ImportFailure(first_line(error)) from None
    text = _RESOURCES.sub("", imported.operation.get_asm(print_generic_op_form=True))
    if "dense_resource" in text:
        raise ImportFailure("a tensor constant created inside a library call became a literal")
    context = ProgramContext()
    context.load_dialect(func.Func)
    try:
        module = MLIRParser(context, text).parse_module()
    except (ParseError, VerifyException) as error:
        raise ImportFailure(f"its torch-mlir output does not parse: {first_line(error)}") from None
    assert isinstance(module, ModuleOp)
    function = next(op for op in module.ops if isinstance(op, func.FuncOp))
    add_size_checks(function, checks)
    if any(not check.holds(1) for check in checks):
        function.attributes[SIZE_ONE_CHECKS_ATTR] = UnitAttr()
    return ImportedStretch(function, trace)


@contextmanager
def _dynamic_export(symbolic: bool) -> Iterator[None]:
    if not symbolic:
        yield
        return
    with fx_config.patch(backed_size_oblivious=True, use_duck_shape=False):
        yield


class _Identity:
    """A key part equal only to a part wrapping the same object: for values whose `==` says
    nothing about how a replay uses them (functions, arbitrary objects)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


_PLAIN_TYPES = (
    type(None),
    bool,
    int,
    str,
    bytes,
    type(Ellipsis),
    torch.dtype,
    torch.device,
    torch.layout,
    torch.memory_format,
)


def _argument_key(value: Any) -> Hashable:
    """A hashable description of a recorded argument: equal keys replay identically."""
    if isinstance(value, _Slot):
        return ("slot", value.ref)
    if isinstance(value, _SizeSlot):
        return ("size", value.term)
    if type(value) in _PLAIN_TYPES:
        return (type(value), value)
    if type(value) is float:
        return (float, repr(value))  # distinguishes -0.0 and compares nan to itself
    if isinstance(value, tuple | list):
        return (type(value), tuple(_argument_key(item) for item in value))
    if type(value) is dict:
        return (dict, tuple((_argument_key(k), _argument_key(v)) for k, v in value.items()))
    if type(value) is slice:
        return (slice, _argument_key((value.start, value.stop, value.step)))
    return _Identity(value)


def _module_key(module: nn.Module) -> Hashable:
    """What a leaf module's computation depends on apart from its weights (which reach the
    replay as inputs): its type, its Python attributes and those of its children."""
    attributes = tuple(
        (name, repr(describe_value(value, {})))
        for name, value in sorted(vars(module).items())
        if name not in ("_parameters", "_buffers", "_modules")
    )
    children = tuple((name, _module_key(child)) for name, child in module.named_children())
    return (type(module), attributes, children)


def _function_key(function: Callable[..., Any]) -> Hashable:
    if isinstance(function, nn.Module):  # a leaf module called as `module(x)`
        return ("module", _module_key(function))
    if type(function) is operator.attrgetter:  # made afresh for every `tensor.attribute`
        return _argument_key(function.__reduce__())
    owner = getattr(function, "__self__", None)
    if isinstance(owner, nn.Module):
        return (_Identity(function.__func__), _module_key(owner))
    return _Identity(function)


def structure_key(stretch: Stretch, outputs: list[Ref]) -> Hashable | None:
    """A key under which stretches import to the same function up to its arguments' sources:
    the same calls (functions, module configurations, non-tensor arguments, the flow of
    tensors between them) on live-ins of the same types, aliasing and mutation. Which weights
    or host values feed the live-ins is not part of it, so the 54 residual blocks of a ResNet
    share one import. None when some module attribute cannot be described."""
    first_of: dict[int, int] = {}
    live_ins = []
    for index, live_in in enumerate(stretch.live_ins):
        example = live_in.example
        live_ins.append(
            (
                example.dtype,
                *_layout_key(example, live_in.dynamic_dims),
                example.requires_grad,
                first_of.setdefault(id(example), index),
                live_in.dynamic_dims,
            )
        )
    try:
        calls = tuple(
            (
                _function_key(call.function),
                _argument_key(call.args),
                _argument_key(call.kwargs),
                None if call.module is None else _module_key(call.module),
                tuple(call.module_params.items()),
            )
            for call in stretch.calls
        )
    except Unfingerprintable:
        return None
    return (tuple(live_ins), tuple(sorted(stretch.mutated_live_ins)), calls, tuple(outputs))


def _layout_key(example: torch.Tensor, dynamic: tuple[int, ...]) -> tuple:
    """The sizes and strides of a live-in as far as its import depends on them. A dynamic
    size is traced as a symbol, so only whether it is 0, 1 or more matters (the trace
    widens 0 and 1, `_export_example`); a contiguous layout then says all about strides."""
    if not dynamic or not example.is_contiguous():
        return tuple(example.shape), example.stride()
    shape = tuple(min(size, 2) if d in dynamic else size for d, size in enumerate(example.shape))
    return shape, "contiguous"


class SpliceMismatch(Exception):
    """torch-mlir imported a stretch for other input types than the values it is spliced
    with (it specialised a `?` size to the example's)."""


def splice(
    function: func.FuncOp,
    block: Block,
    arguments: list[SSAValue | None],
    make_param: Callable[[int, Any], SSAValue],
    location: FileLineColLoc | None,
) -> list[SSAValue]:
    """Move the body of `function` to the end of `block`; argument i becomes `arguments[i]`
    (or `make_param(i, type)` where that is None and the argument is used). Returns the
    results."""
    body = function.body.block
    for index, argument in enumerate(body.args):
        if not argument.uses:
            continue
        argument.name_hint = None
        replacement = arguments[index]
        if replacement is None:
            replacement = make_param(index, argument.type)
        elif replacement.type != argument.type:
            raise SpliceMismatch(
                f"it only holds for inputs of type {argument.type}, not {replacement.type}: "
                "the computation fixes a size that is dynamic here"
            )
        argument.replace_all_uses_with(replacement)
    results: list[SSAValue] = []
    for op in list(body.ops):
        if isinstance(op, func.ReturnOp):
            results = list(op.arguments)
            op.detach()
            op.erase()
            continue
        op.detach()
        if location is not None:
            op.location = location
        for result in op.results:
            result.name_hint = None
        block.add_op(op)
    return results
