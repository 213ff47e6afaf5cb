"""The staging partial evaluator: a model's Python source -> a `dy.func` with explicit control flow.

The evaluator walks the AST of `forward` (and of every user method, function and submodule
forward it calls, which it inlines). Values it can compute while compiling stay Python values,
so configuration flags, `self.training`, shapes and the bounds of loops over `ModuleList`s fold
away. Everything that depends on tensor data is staged: tensor calls are recorded into the
current straight-line `Stretch`; `.item()`, `bool(t)` and comparisons of host scalars become
`dy.item` and `arith`; a branch or loop on a staged condition becomes `dy.if` / `dy.while`.

Control flow is evaluated in continuation-passing style. Every statement list is run with a
continuation `k` (what follows it); a branch whose arms can only fall through or leave by a
`dy` exit (`dy.return` of `forward`, `dy.break`/`dy.continue` of a staged loop) joins its arms
locally. A branch with an arm that leaves to a point the dialect has no exit for (the end of an
inlined helper, the end of an unrolled loop) instead runs the rest of the code up to that
point inside each arm, and the arms meet there. Meeting points are `Join`s: each path that
reaches one records its block and its values; resolving the join ends every arriving block
with `dy.yield`, gives the branches on the way result types, and binds the merged values.
Where merged values disagree in type (a tensor of two shapes, an int and a float) the name
becomes `Undefined`, an error only if the program reads it.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import json
import operator
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import (
    FileLineColLoc,
    FloatAttr,
    IntAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    f64,
    i1,
    i64,
)
from xdsl.ir import Block, BlockArgument, Operation, Region, SSAValue

from frontends.torch.errors import UnsupportedError
from frontends.torch.stretch import (
    ImportFailure,
    LiveIn,
    Pending,
    RecordedCall,
    StagedTensor,
    Stretch,
    import_stretch,
    slot,
    splice,
    structure_key,
    template,
    tensor_leaves,
)
from frontends.torch.values import (
    MAX_TRACKED_VALUES,
    SCALAR_TYPES,
    HostScalar,
    OptionalValue,
    StagedList,
    Undefined,
    element_type,
    scalar_kind,
    tensor_type,
    torch_dtype,
)
from ir import dy
from ir.dy import ListType, scalar_type_for_dtype
from ir.torch import ValueTensorType

MAX_UNROLLED_ITERATIONS = 10_000
MAX_UNROLLED_WHILE_ITERATIONS = 256
"""A `while` still static after this many iterations is taken as non-terminating."""
MAX_LOOP_TYPE_REFINEMENTS = 3

TENSOR_METADATA = frozenset(
    {
        "size",
        "dim",
        "ndimension",
        "numel",
        "nelement",
        "is_contiguous",
        "is_floating_point",
        "is_complex",
        "element_size",
        "stride",
        "get_device",
        "is_signed",
    }
)
"""Tensor methods whose result is fixed by the (specialised) shape and dtype."""

TENSOR_STATIC_ATTRIBUTES = frozenset(
    {
        "shape",
        "dtype",
        "ndim",
        "device",
        "is_cuda",
        "requires_grad",
        "layout",
        "is_sparse",
        "is_quantized",
        "is_meta",
        "names",
    }
)

HARMLESS_CONTEXTS = (torch.no_grad, torch.enable_grad, torch.inference_mode)

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.MatMult: operator.matmul,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}
_INPLACE = {
    ast.Add: operator.iadd,
    ast.Sub: operator.isub,
    ast.Mult: operator.imul,
    ast.Div: operator.itruediv,
    ast.FloorDiv: operator.ifloordiv,
    ast.Mod: operator.imod,
    ast.Pow: operator.ipow,
    ast.MatMult: operator.imatmul,
    ast.BitAnd: operator.iand,
    ast.BitOr: operator.ior,
    ast.BitXor: operator.ixor,
}
_COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_INT_PREDICATES = {
    ast.Lt: "slt",
    ast.LtE: "sle",
    ast.Gt: "sgt",
    ast.GtE: "sge",
    ast.Eq: "eq",
    ast.NotEq: "ne",
}
_FLOAT_PREDICATES = {
    ast.Lt: "olt",
    ast.LtE: "ole",
    ast.Gt: "ogt",
    ast.GtE: "oge",
    ast.Eq: "oeq",
    ast.NotEq: "une",
}
_INT_ARITH = {
    ast.Add: arith.AddiOp,
    ast.Sub: arith.SubiOp,
    ast.Mult: arith.MuliOp,
    ast.FloorDiv: arith.FloorDivSIOp,
}
_FLOAT_ARITH = {
    ast.Add: arith.AddfOp,
    ast.Sub: arith.SubfOp,
    ast.Mult: arith.MulfOp,
    ast.Div: arith.DivfOp,
}
_BOOL_ARITH = {ast.BitAnd: arith.AndIOp, ast.BitOr: arith.OrIOp, ast.BitXor: arith.XOrIOp}


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")})


_LIBRARY_ROOTS = _library_roots()


def is_user_function(function: object) -> bool:
    """Whether `function` is Python code of the model (inlined) rather than of a library
    (called as an opaque operation)."""
    target = getattr(function, "__func__", function)
    if not isinstance(target, types.FunctionType):
        return False
    module = target.__module__ or ""
    if module.split(".")[0] in ("torch", "torch_mlir", "numpy", "math", "functools"):
        return False
    filename = target.__code__.co_filename
    return not filename.startswith(_LIBRARY_ROOTS) and not filename.startswith("<")


# ----------------------------------------------------------------------- evaluator state


@dataclass(eq=False)
class Join:
    """A point where paths meet: after a branch, at the end of an unrolled loop or of an
    inlined helper. `owner` is the block where control continues once it is resolved."""

    owner: Block
    loop_depth: int
    carries_environment: bool
    pending_ifs: set[int] = field(default_factory=set)


@dataclass(eq=False)
class Arrival:
    join: Join
    block: Block
    payload: Any


@dataclass(eq=False)
class UnrolledLoop:
    exit: Join
    next_iteration: Callable[[], None] | None = None


@dataclass(eq=False)
class StagedLoop:
    """A loop staged as `dy.while`: which names it carries and how they flatten."""

    names: list[str]
    plan: CarryPlan
    observed_mismatch: list[tuple[int, Any]] = field(default_factory=list)


@dataclass(eq=False)
class UserFunction:
    """A `def` or `lambda` written inside the model's code: called by inlining."""

    node: ast.FunctionDef | ast.Lambda
    scope: Frame


@dataclass(eq=False)
class StagedMethod:
    receiver: StagedTensor | StagedList
    name: str


@dataclass(eq=False)
class FunctionSource:
    node: ast.FunctionDef
    filename: str
    line_offset: int


class Frame:
    """One inlined Python function: its variables, where its code is, how it returns."""

    def __init__(
        self,
        env: dict[str, Any],
        globals_: dict[str, Any],
        source: FunctionSource,
        closure: dict[str, Any],
        parent: Frame | None = None,
        return_join: Join | None = None,
        class_cell: type | None = None,
    ):
        self.env = env
        self.globals = globals_
        self.source = source
        self.closure = closure
        self.parent = parent
        self.return_join = return_join
        self.class_cell = class_cell
        self.loops: list[UnrolledLoop | StagedLoop] = []

    def lookup(self, name: str) -> Any:
        frame: Frame | None = self
        while frame is not None:
            if name in frame.env:
                return frame.env[name]
            if name in frame.closure:
                return frame.closure[name]
            frame = frame.parent
        if name in self.globals:
            return self.globals[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise KeyError(name)


class _PathEnded(Exception):
    """Raised inside an expression whose evaluation ended every path (nothing follows)."""


# ------------------------------------------------------------------------- merge plans


@dataclass
class _Keep:
    value: Any


@dataclass
class _Hole:
    index: int


@dataclass
class _Conflict:
    reason: str


@dataclass
class _Optional:
    present: Any
    value: Any


class _Placeholder:
    """Stands for the value leaves of a path on which an optional value is None."""


_PLACEHOLDER = _Placeholder()


@dataclass
class _Container:
    kind: type
    items: list
    keys: list | None = None


@dataclass
class CarryPlan:
    """How a set of Python values flattens into typed SSA leaves and back.

    `types[i]` is the type of leaf i; `kinds[i]` is "tensor", a scalar kind, or "list";
    `examples[i]` is the example a rebuilt leaf gets.
    """

    template: Any = None
    types: list = field(default_factory=list)
    kinds: list = field(default_factory=list)
    examples: list = field(default_factory=list)
    possible: list = field(default_factory=list)
    columns: list[list] = field(default_factory=list)


class Converter:
    """Converts one model: see the module docstring."""

    def __init__(self, model: nn.Module, filename_of: Callable[[str], str]):
        self.model = model
        self.filename_of = filename_of
        self.param_keys: dict[int, str] = {}
        for name, tensor in model.named_parameters():
            self.param_keys.setdefault(id(tensor), name)
        for name, tensor in model.named_buffers():
            self.param_keys.setdefault(id(tensor), name)
        self.params: dict[str, torch.Tensor] = {}
        self._constants: dict[int, tuple[str, torch.Tensor]] = {}
        self._placeholders: dict[str, torch.Tensor] = {}
        self._param_cache: dict[tuple[Block, str], SSAValue] = {}
        self._sources: dict[types.CodeType, FunctionSource] = {}
        self._imports: dict[Hashable, func.FuncOp] = {}
        """torch-mlir imports by `structure_key`: a stretch that repeats another's structure
        (a block of a deep network) reuses its import instead of another torch.export."""
        self.block = Block()
        self.stretch = Stretch()
        self.reachable = True
        self.arrivals: list[Arrival] = []
        self.mutations: list[tuple[Any, Any]] = []
        self.loop_depth = 0
        self.frame: Frame | None = None
        self.node: ast.AST | None = None

    # ---------------------------------------------------------------- entry point

    def convert(self, example_inputs: tuple, params_file: str) -> ModuleOp:
        forward = self.model.forward
        if not is_user_function(forward):
            raise UnsupportedError(
                self.filename_of(type(self.model).__module__),
                0,
                "model",
                f"{type(self.model).__name__}.forward is library code, not a model's source",
            )
        source = self._source(forward.__func__)
        inputs = []
        for position, example in enumerate(example_inputs):
            if not isinstance(example, torch.Tensor):
                raise UnsupportedError(
                    source.filename,
                    source.line_offset + source.node.lineno,
                    "forward argument",
                    f"input {position} is a {type(example).__name__}; "
                    "only tensors can be program inputs",
                )
            inputs.append(example)
        entry = self.block
        staged_inputs = []
        for example in inputs:
            argument = entry.insert_arg(tensor_type(example), len(entry.args))
            staged_inputs.append(StagedTensor(argument, example.detach().clone()))
        self.return_types: list[tuple[str, list]] = []
        self.return_node: list[ast.AST] = []
        frame = self._bind_frame(forward.__func__, (self.model, *staged_inputs), {}, None)
        previous_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(previous_limit, 200_000))
        try:
            self.frame = frame
            self._exec(frame.source.node.body, lambda: self._emit_return(None, frame.source.node))
        finally:
            sys.setrecursionlimit(previous_limit)
        tree, result_types = self.return_types[0]
        for (other_tree, other_types), node in zip(self.return_types, self.return_node):
            if other_tree != tree or other_types != result_types:
                self.frame = frame
                raise self._unsupported(
                    node,
                    "return",
                    "forward returns values of different structure or types on different paths",
                )
        function = dy.FuncOp(
            dy.ENTRY_FUNCTION, [a.type for a in entry.args], result_types, Region(entry)
        )
        function.attributes[dy.RESULT_TREE_ATTR] = StringAttr(tree)
        function.location = self._location(source.node)
        module = ModuleOp([function])
        module.attributes[dy.PARAMS_FILE_ATTR] = StringAttr(params_file)
        return module

    def source_files(self) -> list[str]:
        """The files of every function the conversion inlined (what a cached conversion
        depends on beyond the model's attributes and weights)."""
        return sorted({code.co_filename for code in self._sources})

    # ---------------------------------------------------------------- diagnostics

    def _unsupported(self, node: ast.AST | None, construct: str, why: str) -> UnsupportedError:
        frame = self.frame
        if frame is None:
            return UnsupportedError("<model>", 0, construct, why)
        line = frame.source.line_offset + getattr(node, "lineno", frame.source.node.lineno)
        return UnsupportedError(frame.source.filename, line, construct, why)

    def _location(self, node: ast.AST | None) -> FileLineColLoc:
        frame = self.frame
        assert frame is not None
        line = frame.source.line_offset + getattr(node, "lineno", frame.source.node.lineno)
        column = getattr(node, "col_offset", 0) + 1
        return FileLineColLoc(StringAttr(frame.source.filename), IntAttr(line), IntAttr(column))

    def _emit(self, op: Operation, node: ast.AST | None = None) -> Operation:
        op.location = self._location(node if node is not None else self.node)
        self.block.add_op(op)
        return op

    # ---------------------------------------------------------------- sources and frames

    def _source(self, function: types.FunctionType) -> FunctionSource:
        code = function.__code__
        if code not in self._sources:
            try:
                lines, first_line = inspect.getsourcelines(function)
            except (OSError, TypeError) as error:
                raise UnsupportedError(
                    code.co_filename,
                    code.co_firstlineno,
                    f"call of {function.__qualname__}",
                    f"its source is not available ({error})",
                ) from None
            tree = ast.parse(textwrap.dedent("".join(lines)))
            node = tree.body[0]
            if not isinstance(node, ast.FunctionDef):
                raise UnsupportedError(
                    code.co_filename,
                    first_line,
                    f"call of {function.__qualname__}",
                    "only functions defined with 'def' can be inlined",
                )
            self._sources[code] = FunctionSource(
                node, self.filename_of(code.co_filename), first_line - 1
            )
        return self._sources[code]

    def _bind_frame(
        self, function: types.FunctionType, args: tuple, kwargs: dict, return_join: Join | None
    ) -> Frame:
        source = self._source(function)
        try:
            bound = inspect.signature(function).bind(*args, **kwargs)
        except TypeError as error:
            raise self._unsupported(self.node, f"call of {function.__qualname__}", str(error))
        bound.apply_defaults()
        closure = {}
        class_cell = None
        for name, cell in zip(function.__code__.co_freevars, function.__closure__ or ()):
            try:
                closure[name] = cell.cell_contents
            except ValueError:
                continue
            if name == "__class__":
                class_cell = cell.cell_contents
        return Frame(
            dict(bound.arguments),
            function.__globals__,
            source,
            closure,
            return_join=return_join,
            class_cell=class_cell,
        )

    # ---------------------------------------------------------------- statements

    def _exec(self, statements: list[ast.stmt], k: Callable[[], None]) -> None:
        for index, statement in enumerate(statements):
            if not self.reachable:
                return
            self.node = statement
            if isinstance(statement, ast.If | ast.For | ast.While | ast.With):
                rest = statements[index + 1 :]
                self._exec_compound(statement, lambda rest=rest: self._exec(rest, k))
                return
            try:
                self._exec_simple(statement)
            except _PathEnded:
                self.reachable = False
                return
        if self.reachable:
            k()

    def _exec_compound(self, statement: ast.stmt, rest: Callable[[], None]) -> None:
        if isinstance(statement, ast.If):
            self._exec_if(statement, rest)
        elif isinstance(statement, ast.For):
            self._exec_for(statement, rest)
        elif isinstance(statement, ast.While):
            self._exec_while(statement, rest)
        else:
            assert isinstance(statement, ast.With)
            for item in statement.items:
                context = self._eval(item.context_expr)
                if not (isinstance(context, HARMLESS_CONTEXTS) or context in HARMLESS_CONTEXTS):
                    raise self._unsupported(
                        item.context_expr,
                        "with",
                        "only torch.no_grad()/inference_mode() contexts are supported",
                    )
                if item.optional_vars is not None:
                    raise self._unsupported(statement, "with ... as", "not supported")
            self._exec(statement.body, rest)

    def _exec_simple(self, statement: ast.stmt) -> None:
        frame = self.frame
        assert frame is not None
        if isinstance(statement, ast.Expr):
            self._eval(statement.value)
        elif isinstance(statement, ast.Assign):
            value = self._eval(statement.value)
            for target in statement.targets:
                self._assign(target, value)
        elif isinstance(statement, ast.AnnAssign):
            if statement.value is not None:
                self._assign(statement.target, self._eval(statement.value))
        elif isinstance(statement, ast.AugAssign):
            current = self._eval(_as_load(statement.target))
            value = self._eval(statement.value)
            result = self._binary(statement.op, current, value, statement, inplace=True)
            self._assign(statement.target, result)
        elif isinstance(statement, ast.Return):
            value = None if statement.value is None else self._eval(statement.value)
            self._return(value, statement)
        elif isinstance(statement, ast.Break):
            self._break(statement)
        elif isinstance(statement, ast.Continue):
            self._continue(statement)
        elif isinstance(statement, ast.Pass):
            pass
        elif isinstance(statement, ast.FunctionDef):
            if statement.decorator_list:
                raise self._unsupported(statement, "decorated nested function", "not supported")
            frame.env[statement.name] = UserFunction(statement, frame)
        elif isinstance(statement, ast.Assert):
            test = self._truth(self._eval(statement.test), statement)
            if test is False:
                raise self._unsupported(
                    statement, "assert", "the assertion fails for the example inputs"
                )
        elif isinstance(statement, ast.Delete):
            for target in statement.targets:
                if not isinstance(target, ast.Name):
                    raise self._unsupported(statement, "del", "only names can be deleted")
                frame.env.pop(target.id, None)
        elif isinstance(statement, ast.Raise):
            raise self._unsupported(
                statement,
                "raise",
                "the model raises an exception on this path; exceptions cannot be compiled",
            )
        else:
            raise self._unsupported(
                statement, type(statement).__name__.lower(), "this statement is not supported"
            )

    def _assign(self, target: ast.expr, value: Any) -> None:
        frame = self.frame
        assert frame is not None
        if isinstance(target, ast.Name):
            frame.env[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            if any(isinstance(element, ast.Starred) for element in target.elts):
                raise self._unsupported(target, "starred assignment", "not supported")
            items = self._unpack(value, len(target.elts), target)
            for element, item in zip(target.elts, items):
                self._assign(element, item)
        elif isinstance(target, ast.Subscript):
            container = self._eval(target.value)
            index = self._eval(target.slice)
            if isinstance(container, StagedTensor):
                self._stage_call(target, operator.setitem, (container, index, value), {})
            elif _is_staged(value) or _is_staged(index) or isinstance(container, torch.Tensor):
                raise self._unsupported(
                    target,
                    "item assignment",
                    "only staged tensors and Python containers "
                    "indexed by compile-time values can be updated in place",
                )
            else:
                container[index] = value
        else:
            raise self._unsupported(
                target,
                "assignment",
                f"assigning to {type(target).__name__} is not supported "
                "(the model's attributes must not change in forward)",
            )

    def _unpack(self, value: Any, count: int, node: ast.AST) -> list:
        if isinstance(value, StagedTensor):
            if value.example.dim() == 0 or value.example.shape[0] != count:
                raise self._unsupported(node, "unpacking", f"cannot unpack {value} into {count}")
            return [self._stage_call(node, operator.getitem, (value, i), {}) for i in range(count)]
        if isinstance(value, StagedList | HostScalar | Undefined):
            raise self._unsupported(node, "unpacking", "the value has no compile-time length")
        items = list(value)
        if len(items) != count:
            raise self._unsupported(node, "unpacking", f"expected {count} values, got {len(items)}")
        return items

    # ---------------------------------------------------------------- exits

    def _return(self, value: Any, node: ast.AST) -> None:
        frame = self.frame
        assert frame is not None
        if frame.return_join is None:
            self._emit_return(value, node)
        else:
            self._arrive(frame.return_join, value, node)

    def _emit_return(self, value: Any, node: ast.AST) -> None:
        self.flush()
        leaves: list[Any] = []
        tree = json.dumps(self._result_tree(value, leaves, node), separators=(",", ":"))
        operands = [self._materialize(leaf, kind, node) for leaf, kind in leaves]
        self._emit(dy.ReturnOp(*operands), node)
        self.return_types.append((tree, [o.type for o in operands]))
        self.return_node.append(node)
        self.reachable = False

    def _result_tree(self, value: Any, leaves: list, node: ast.AST) -> Any:
        """JSON of the returned structure; leaves are result indices tagged with a kind."""
        if value is None or isinstance(value, str):
            return {"const": value}
        if isinstance(value, StagedTensor | torch.Tensor):
            leaves.append((value, "tensor"))
            return {"tensor": len(leaves) - 1}
        if isinstance(value, StagedList):
            leaves.append((value, "list"))
            return {"tensor_list": len(leaves) - 1}
        kind = scalar_kind(value)
        if kind is not None:
            leaves.append((value, kind))
            return {kind.__name__: len(leaves) - 1}
        if isinstance(value, tuple | list):
            key = "tuple" if isinstance(value, tuple) else "list"
            return {key: [self._result_tree(item, leaves, node) for item in value]}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"dict": {k: self._result_tree(v, leaves, node) for k, v in value.items()}}
        if isinstance(value, Undefined):
            raise self._unsupported(node, "return", value.reason)
        if isinstance(value, OptionalValue):
            raise self._unsupported(node, "return", "a value that is None on some paths")
        raise self._unsupported(node, "return", f"cannot return a {type(value).__name__}")

    def _break(self, node: ast.AST) -> None:
        loop = self._innermost_loop(node, "break")
        if isinstance(loop, UnrolledLoop):
            self._arrive(loop.exit, None, node)
        else:
            self._staged_loop_exit(loop, dy.BreakOp, node)

    def _continue(self, node: ast.AST) -> None:
        loop = self._innermost_loop(node, "continue")
        if isinstance(loop, UnrolledLoop):
            assert loop.next_iteration is not None
            self.flush()
            loop.next_iteration()
            self.reachable = False
        else:
            self._staged_loop_exit(loop, dy.ContinueOp, node)

    def _innermost_loop(self, node: ast.AST, what: str) -> UnrolledLoop | StagedLoop:
        frame = self.frame
        assert frame is not None
        if not frame.loops:
            raise self._unsupported(node, what, "outside a loop")
        return frame.loops[-1]

    # ---------------------------------------------------------------- joins

    def _arrive(self, join: Join, value: Any, node: ast.AST) -> None:
        self.flush()
        if join.loop_depth != self.loop_depth:
            raise self._unsupported(
                node,
                "early exit",
                "leaving a data-dependent loop towards the end of an "
                "inlined function or an unrolled loop is not supported",
            )
        frame = self.frame
        assert frame is not None
        payload = _freeze(dict(frame.env) if join.carries_environment else value)
        self.arrivals.append(Arrival(join, self.block, payload))
        self.reachable = False

    def _resolve(self, join: Join, node: ast.AST) -> Any:
        """Merge what arrived at `join` and continue in its owner block; returns the merged
        payload (`self.reachable` is False when nothing arrived)."""
        arrivals = [a for a in self.arrivals if a.join is join]
        self.arrivals = [a for a in self.arrivals if a.join is not join]
        self.block = join.owner
        self.stretch = Stretch()
        if not arrivals:
            self.reachable = False
            return None
        self.reachable = True
        if len(arrivals) == 1 and arrivals[0].block is join.owner:
            return arrivals[0].payload
        plan = CarryPlan(columns=[[] for _ in arrivals])
        plan.template = self._merge_node([a.payload for a in arrivals], plan, join.owner)
        for arrival, column in zip(arrivals, plan.columns):
            self.block = arrival.block
            operands = [
                self._materialize(value, kind, node, expected)
                for value, kind, expected in zip(column, plan.kinds, plan.types)
            ]
            self._emit(dy.YieldOp(*operands), node)
        self.block = join.owner
        outermost = join.owner.last_op
        assert isinstance(outermost, dy.IfOp) and id(outermost) in join.pending_ifs
        completed = self._complete_if(outermost, join, plan.types)
        return self._rebuild(plan, list(completed.results))

    def _complete_if(self, if_op: dy.IfOp, join: Join, result_types: list) -> dy.IfOp:
        for region in if_op.regions:
            last = region.block.last_op
            if isinstance(last, dy.IfOp) and id(last) in join.pending_ifs:
                inner = self._complete_if(last, join, result_types)
                yield_op = dy.YieldOp(*inner.results)
                yield_op.location = inner.location
                region.block.add_op(yield_op)
        then_region, else_region = Region(), Region()
        if_op.then_region.move_blocks(then_region)
        if_op.else_region.move_blocks(else_region)
        completed = dy.IfOp(if_op.cond, result_types, then_region, else_region)
        completed.location = if_op.location
        parent = if_op.parent_block()
        assert parent is not None
        parent.insert_op_before(completed, if_op)
        if_op.detach()
        if_op.erase()
        return completed

    def _merge_node(self, values: list, plan: CarryPlan, owner: Block) -> Any:
        real = [v for v in values if v is not _PLACEHOLDER]
        first = real[0]
        if all(_same(v, first) for v in real) and _visible(first, owner):
            return _Keep(first)
        if any(isinstance(v, Undefined) for v in real):
            return _Conflict(next(v for v in real if isinstance(v, Undefined)).reason)
        if any(v is None or isinstance(v, OptionalValue) for v in real):
            return self._merge_optional(values, plan, owner)
        if len(real) < len(values):
            return self._merge_node_with_placeholders(values, real, plan, owner)
        if all(isinstance(v, StagedTensor | torch.Tensor) for v in values):
            types_ = [self._tensor_type(v) for v in values]
            if any(t != types_[0] for t in types_):
                other = next(t for t in types_ if t != types_[0])
                return _Conflict(
                    f"it is a tensor of type {types_[0]} on one path and {other} on another"
                )
            example = first.example if isinstance(first, StagedTensor) else first
            return self._add_leaf(plan, values, "tensor", types_[0], example)
        kinds = [scalar_kind(v) for v in values]
        if all(kinds):
            if any(k is not kinds[0] for k in kinds):
                return _Conflict(
                    "it is a Python "
                    + " on one path and a ".join(sorted({k.__name__ for k in kinds}))
                    + " on another"
                )
            example = first.example if isinstance(first, HostScalar) else first
            return self._add_leaf(
                plan, values, kinds[0], SCALAR_TYPES[kinds[0]], example, _possible_union(values)
            )
        if all(isinstance(v, list | StagedList) for v in values):
            if all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
                return _Container(
                    list, [self._merge_node(list(column), plan, owner) for column in zip(*values)]
                )
            element, example = self._list_element(values)
            if element is None:
                return _Conflict("it is a list whose items differ in type between paths")
            return self._add_leaf(plan, values, "list", ListType(element), example)
        if all(type(v) is tuple for v in values) and len({len(v) for v in values}) == 1:
            return _Container(
                tuple, [self._merge_node(list(column), plan, owner) for column in zip(*values)]
            )
        if all(isinstance(v, dict) for v in values) and len({tuple(v) for v in values}) == 1:
            keys = list(first)
            return _Container(
                dict, [self._merge_node([v[k] for v in values], plan, owner) for k in keys], keys
            )
        described = sorted({_describe(v) for v in values})
        return _Conflict(f"it is {' on one path and '.join(described)} on another")

    def _merge_optional(self, values: list, plan: CarryPlan, owner: Block) -> Any:
        """Merge values of which some are None: a presence flag plus the values, with
        placeholders where they are None."""
        presents: list = []
        inner: list = []
        for value in values:
            if value is None or value is _PLACEHOLDER:
                presents.append(False if value is None else _PLACEHOLDER)
                inner.append(_PLACEHOLDER)
            elif isinstance(value, OptionalValue):
                presents.append(value.present)
                inner.append(value.value)
            else:
                presents.append(True)
                inner.append(value)
        return _Optional(
            self._merge_node(presents, plan, owner), self._merge_node(inner, plan, owner)
        )

    def _merge_node_with_placeholders(
        self, values: list, real: list, plan: CarryPlan, owner: Block
    ) -> Any:
        first = real[0]
        if isinstance(first, tuple | list) and all(
            type(v) is type(first) and len(v) == len(first) for v in real
        ):
            columns = [
                [_PLACEHOLDER if v is _PLACEHOLDER else v[i] for v in values]
                for i in range(len(first))
            ]
            return _Container(type(first), [self._merge_node(c, plan, owner) for c in columns])
        merged = self._merge_node(real, CarryPlan(columns=[[] for _ in real]), owner)
        if isinstance(merged, _Keep | _Conflict):
            return merged
        if isinstance(merged, _Container | _Optional):
            return _Conflict("it is a nested optional value")
        scratch = CarryPlan(columns=[[] for _ in real])
        self._merge_node(real, scratch, owner)
        return self._add_leaf(
            plan,
            values,
            scratch.kinds[0],
            scratch.types[0],
            scratch.examples[0],
            scratch.possible[0],
        )

    def _add_leaf(
        self,
        plan: CarryPlan,
        values: list,
        kind: Any,
        type_: Any,
        example: Any,
        possible: frozenset | None = None,
    ):
        plan.types.append(type_)
        plan.kinds.append(kind)
        plan.examples.append(example)
        plan.possible.append(possible)
        for column, value in zip(plan.columns, values):
            column.append(value)
        return _Hole(len(plan.types) - 1)

    def _list_element(self, values: list) -> tuple[ValueTensorType | None, Any]:
        element = None
        example = None
        for value in values:
            if isinstance(value, StagedList):
                candidates = [(value.element_type, value.example_item)]
            else:
                candidates = []
                for item in value:
                    if not isinstance(item, StagedTensor | torch.Tensor):
                        return None, None
                    item_example = item.example if isinstance(item, StagedTensor) else item
                    candidates.append((self._tensor_type(item), item_example))
            for candidate, candidate_example in candidates:
                if candidate.shape is None:
                    continue
                if element is None:
                    element, example = candidate, candidate_example
                elif candidate != element:
                    return None, None
        if element is None:
            element = ValueTensorType(None, None)
        return element, example

    def _rebuild(self, plan: CarryPlan, results: list[SSAValue]) -> Any:
        def build(node: Any) -> Any:
            if isinstance(node, _Keep):
                return node.value
            if isinstance(node, _Conflict):
                return Undefined(node.reason)
            if isinstance(node, _Optional):
                present, value = build(node.present), build(node.value)
                if isinstance(present, bool):
                    return value if present else None
                return OptionalValue(present, value)
            if isinstance(node, _Container):
                items = [build(item) for item in node.items]
                if node.kind is dict:
                    return dict(zip(node.keys, items))
                return node.kind(items)
            assert isinstance(node, _Hole)
            return self._leaf_value(
                plan.kinds[node.index],
                results[node.index],
                plan.examples[node.index],
                plan.possible[node.index],
            )

        return build(plan.template)

    def _leaf_value(
        self, kind: Any, value: SSAValue, example: Any, possible: frozenset | None
    ) -> Any:
        if kind == "tensor":
            return StagedTensor(value, example)
        if kind == "list":
            return StagedList(value, example)
        return HostScalar(value, example, possible)

    # ---------------------------------------------------------------- branches

    def _exec_if(self, statement: ast.If, rest: Callable[[], None]) -> None:
        condition = self._truth(self._eval(statement.test), statement.test)
        if isinstance(condition, bool):
            self._exec(statement.body if condition else statement.orelse, rest)
            return
        frame = self.frame
        assert frame is not None
        narrowed = self._narrowing(statement.test)

        def arm(statements: list[ast.stmt], taken: bool, k: Callable[[], None]) -> None:
            if narrowed is not None:
                name, present_when, optional = narrowed
                frame.env[name] = optional.value if taken == present_when else None
            self._exec(statements, k)

        if self._has_indirect_exit(statement.body + statement.orelse):
            arms = [
                lambda k, s=s, t=t: arm(s, t, k)
                for s, t in ((statement.body, True), (statement.orelse, False))
            ]
            self._staged_branch(condition, arms, None, rest, statement)
            return
        join = Join(self.block, self.loop_depth, carries_environment=True)
        arms = [
            lambda k, s=s, t=t: arm(s, t, lambda: self._arrive(join, None, statement))
            for s, t in ((statement.body, True), (statement.orelse, False))
        ]
        merged = self._staged_branch(condition, arms, join, rest, statement)
        if self.reachable:
            frame.env = merged
            rest()

    def _narrowing(self, test: ast.expr) -> tuple[str, bool, OptionalValue] | None:
        """For `if NAME is not None` / `if NAME is None` on an optional value: the name, the
        branch outcome under which it is present, and the value."""
        if not (
            isinstance(test, ast.Compare)
            and len(test.ops) == 1
            and isinstance(test.left, ast.Name)
            and isinstance(test.ops[0], ast.Is | ast.IsNot)
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value is None
        ):
            return None
        frame = self.frame
        assert frame is not None
        value = frame.env.get(test.left.id)
        if not isinstance(value, OptionalValue):
            return None
        return test.left.id, isinstance(test.ops[0], ast.IsNot), value

    def _staged_branch(
        self,
        condition: HostScalar,
        arms: list[Callable[[Callable[[], None]], None]],
        join: Join | None,
        rest: Callable[[], None],
        node: ast.AST,
    ) -> Any:
        """Build a `dy.if` whose arms run `arms`; with a `join`, resolve it and return the
        merged payload, otherwise (continuation-passing arms) hand the branch to the one outer
        join its arms reached."""
        self.flush()
        frame = self.frame
        assert frame is not None
        owner = self.block
        first_arrival = len(self.arrivals)
        entry_env = frame.env
        mutation_mark = len(self.mutations)
        blocks = []
        for arm in arms:
            block = Block()
            self.block, self.stretch, self.reachable = block, Stretch(), True
            frame.env = _clone_containers(entry_env)
            saved_frame = self.frame
            arm(rest)
            self.frame = saved_frame
            self._undo_mutations(mutation_mark)
            blocks.append(block)
        frame.env = entry_env
        self.block, self.stretch = owner, Stretch()
        if_op = dy.IfOp(condition.value, [], Region(blocks[0]), Region(blocks[1]))
        self._emit(if_op, node)
        arrived = self.arrivals[first_arrival:]
        if not arrived:
            self._hoist_else(if_op)
            self.reachable = False
            return None
        targets = {id(a.join): a.join for a in arrived}
        if len(targets) > 1 or (join is not None and id(join) not in targets):
            raise self._unsupported(
                node,
                "if",
                "its arms leave towards different places (e.g. both break and "
                "continue of an unrolled loop, or a return from an inlined helper)",
            )
        target = next(iter(targets.values()))
        target.pending_ifs.add(id(if_op))
        if join is None:
            self.reachable = False
            return None
        return self._resolve(join, node)

    def _hoist_else(self, if_op: dy.IfOp) -> None:
        """Both arms of `if_op` left by dy exits: nothing follows it, yet its block needs a
        terminator. The else arm moves after the branch, which keeps an empty else."""
        else_block = if_op.else_region.block
        parent = if_op.parent_block()
        assert parent is not None
        for op in list(else_block.ops):
            op.detach()
            parent.add_op(op)
        else_block.add_op(dy.YieldOp())

    def _has_indirect_exit(self, statements: list[ast.stmt]) -> bool:
        """Whether these statements may leave towards a point that no `dy` exit reaches."""
        frame = self.frame
        assert frame is not None
        exits = _exits(statements)
        if "return" in exits and frame.return_join is not None:
            return True
        loop_exits = exits & {"break", "continue"}
        return bool(loop_exits) and bool(frame.loops) and isinstance(frame.loops[-1], UnrolledLoop)

    def _undo_mutations(self, mark: int) -> None:
        while len(self.mutations) > mark:
            handle, value = self.mutations.pop()
            if isinstance(handle, StagedList):
                handle.value, handle.observed_element = value
            else:
                handle.value = value

    # ---------------------------------------------------------------- loops

    def _exec_for(self, statement: ast.For, rest: Callable[[], None]) -> None:
        if statement.orelse:
            raise self._unsupported(statement, "for ... else", "not supported")
        iterable = self._eval(statement.iter)
        items = self._static_items(iterable, statement.iter)

        def next_item(index: int) -> tuple[bool, Any]:
            if index < len(items):
                return True, items[index]
            return False, None

        self._unrolled_loop(statement, next_item, rest)

    def _static_items(self, iterable: Any, node: ast.AST) -> list:
        if isinstance(iterable, StagedTensor):
            if iterable.example.dim() == 0:
                raise self._unsupported(node, "for", "iteration over a 0-d tensor")
            return [
                self._stage_call(node, operator.getitem, (iterable, i), {})
                for i in range(iterable.example.shape[0])
            ]
        if isinstance(iterable, StagedList):
            raise self._unsupported(
                node,
                "for",
                "iteration over a list whose length depends "
                "on the data; index it with a counted loop instead",
            )
        if isinstance(iterable, HostScalar | Undefined):
            raise self._unsupported(node, "for", "the iterable is not known at compile time")
        try:
            items = list(iterable)
        except TypeError as error:
            raise self._unsupported(node, "for", str(error)) from None
        if len(items) > MAX_UNROLLED_ITERATIONS:
            raise self._unsupported(
                node, "for", f"more than {MAX_UNROLLED_ITERATIONS} iterations to unroll"
            )
        return items

    def _unrolled_loop(
        self,
        statement: ast.For | ast.While,
        next_item: Callable[[int], tuple[bool | HostScalar, Any]],
        rest: Callable[[], None],
    ) -> None:
        """Unroll a loop whose trip count is known at compile time; a break on a staged
        condition becomes a branch that skips the remaining iterations."""
        frame = self.frame
        assert frame is not None
        exit_join = Join(self.block, self.loop_depth, carries_environment=True)
        loop = UnrolledLoop(exit_join)
        frame.loops.append(loop)

        limit = MAX_UNROLLED_ITERATIONS
        if isinstance(statement, ast.While):
            limit = MAX_UNROLLED_WHILE_ITERATIONS

        def iteration(index: int) -> None:
            if index > limit:
                raise self._unsupported(
                    statement, "loop", f"more than {limit} iterations to unroll"
                )
            proceed, item = next_item(index)
            if isinstance(proceed, HostScalar):
                assert isinstance(statement, ast.While)
                frame.loops.pop()
                self._staged_while(statement)
                self._arrive(exit_join, None, statement)
                frame.loops.append(loop)
                return
            if not proceed:
                self._arrive(exit_join, None, statement)
                return
            if isinstance(statement, ast.For):
                self._assign(statement.target, item)
            previous = loop.next_iteration
            loop.next_iteration = lambda: iteration(index + 1)
            try:
                self._exec(statement.body, lambda: iteration(index + 1))
            finally:
                loop.next_iteration = previous

        iteration(0)
        frame.loops.pop()
        merged = self._resolve(exit_join, statement)
        if self.reachable:
            frame.env = merged
            rest()

    def _exec_while(self, statement: ast.While, rest: Callable[[], None]) -> None:
        if statement.orelse:
            raise self._unsupported(statement, "while ... else", "not supported")

        if "break" in _exits(statement.body) and self._try_staged_while(statement):
            rest()
            return

        def next_item(index: int) -> tuple[bool | HostScalar, None]:
            return self._probe_condition(statement.test), None

        self._unrolled_loop(statement, next_item, rest)

    def _probe_condition(self, test: ast.expr) -> bool | HostScalar:
        """The loop condition if it is known at compile time; otherwise a HostScalar whose
        ops were evaluated into a scratch block (the staged loop evaluates it again)."""
        self.flush()
        owner, stretch = self.block, self.stretch
        scratch = Block()
        self.block, self.stretch = scratch, Stretch()
        try:
            condition = self._truth(self._eval(test), test)
        finally:
            self.block, self.stretch = owner, stretch
        _discard(scratch)
        return condition

    def _try_staged_while(self, statement: ast.While) -> bool:
        """Stage a loop with a `break` as one `dy.while` from its first iteration, so that
        each exit is one branch rather than one per unrolled iteration. Where the body needs
        its carried values at compile time (indexing a ModuleList with the counter), undo
        everything and report False: the loop is then unrolled."""
        frame = self.frame
        assert frame is not None
        self.flush()
        owner = self.block
        last_op = owner.last_op
        saved = (
            frame.env,
            len(frame.loops),
            self.loop_depth,
            len(self.mutations),
            len(self.return_types),
            len(self.arrivals),
        )
        try:
            self._staged_while(statement)
        except UnsupportedError:
            env, loop_count, depth, mutation_mark, returns_mark, arrivals_mark = saved
            frame.env = env
            del frame.loops[loop_count:]
            self.loop_depth = depth
            self._undo_mutations(mutation_mark)
            del self.return_types[returns_mark:], self.return_node[returns_mark:]
            del self.arrivals[arrivals_mark:]
            self._erase_after(owner, last_op)
            self.block, self.stretch, self.reachable = owner, Stretch(), True
            return False
        return True

    def _erase_after(self, block: Block, last_op: Operation | None) -> None:
        """Erase the ops `block` gained after `last_op` (an abandoned attempt's)."""
        while block.last_op is not last_op:
            stale = block.last_op
            assert stale is not None
            stale.detach()
            stale.erase(safe_erase=False)
        self._param_cache = {
            key: value for key, value in self._param_cache.items() if value.owner.parent is not None
        }

    def _staged_while(self, statement: ast.While) -> None:
        frame = self.frame
        assert frame is not None
        assigned = _assigned_names(statement.body + [ast.Expr(statement.test)])
        names = [
            n
            for n in sorted(assigned)
            if n in frame.env and not isinstance(frame.env[n], Undefined)
        ]
        self.flush()
        owner = self.block
        entry_env = frame.env
        mutation_mark = len(self.mutations)
        refined: dict[int, ValueTensorType] = {}
        returns_mark = len(self.return_types)
        for _ in range(MAX_LOOP_TYPE_REFINEMENTS):
            del self.return_types[returns_mark:], self.return_node[returns_mark:]
            frame.env = _clone_containers(entry_env)
            plan = self._carry_plan([frame.env[n] for n in names], statement, refined)
            before_inits = owner.last_op
            inits = [
                self._materialize(v, kind, statement, t)
                for v, kind, t in zip(plan.columns[0], plan.kinds, plan.types)
            ]
            before = Block(arg_types=plan.types)
            after = Block(arg_types=plan.types)
            loop = StagedLoop(names, plan)
            self._bind_carried(loop, list(before.args))
            self.block, self.stretch, self.reachable = before, Stretch(), True
            condition = self._truth(self._eval(statement.test), statement.test)
            condition = self._as_host_bool(condition, statement.test)
            self.flush()
            self._emit(dy.ConditionOp(condition.value, *before.args), statement)
            self._bind_carried(loop, list(after.args))
            self.block, self.stretch, self.reachable = after, Stretch(), True
            self.loop_depth += 1
            frame.loops.append(loop)
            try:
                self._exec(
                    statement.body,
                    lambda loop=loop: self._staged_loop_exit(loop, dy.YieldOp, statement),
                )
            finally:
                frame.loops.pop()
                self.loop_depth -= 1
            self._undo_mutations(mutation_mark)
            self.block, self.stretch = owner, Stretch()
            if not loop.observed_mismatch:
                break
            for index, observed in loop.observed_mismatch:
                current = plan.types[index]
                if not (isinstance(current, ListType) and current.element_type.shape is None):
                    frame.env = entry_env
                    raise self._unsupported(
                        statement,
                        "while",
                        f"the loop-carried value {_leaf_name(names, plan, index)} "
                        f"changes type from {current} to {observed} in the loop body",
                    )
                refined[index] = observed.element_type
            _discard(before)
            _discard(after)
            self._erase_after(owner, before_inits)
        else:
            raise self._unsupported(statement, "while", "loop-carried types did not settle")
        loop_op = dy.WhileOp(inits, plan.types, Region(before), Region(after))
        self._emit(loop_op, statement)
        frame.env = entry_env
        values = self._rebuild(plan, list(loop_op.results))
        for name, value in zip(names, values):
            frame.env[name] = value
        line = frame.source.line_offset + statement.lineno
        for name in assigned - set(names):
            frame.env[name] = Undefined(
                f"'{name}' is assigned only inside the data-dependent loop at line {line}"
            )
        self.reachable = True

    def _carry_plan(self, values: list, node: ast.AST, refined: dict) -> CarryPlan:
        plan = CarryPlan(columns=[[]])
        items = []
        for value in values:
            items.append(self._carry_node(value, plan, node))
        for index, element in refined.items():
            plan.types[index] = ListType(element)
        plan.template = _Container(list, items)
        return plan

    def _carry_node(self, value: Any, plan: CarryPlan, node: ast.AST) -> Any:
        if isinstance(value, StagedTensor | torch.Tensor):
            example = value.example if isinstance(value, StagedTensor) else value
            return self._add_leaf(plan, [value], "tensor", self._tensor_type(value), example)
        kind = scalar_kind(value)
        if kind is not None:
            example = value.example if isinstance(value, HostScalar) else value
            return self._add_leaf(plan, [value], kind, SCALAR_TYPES[kind], example)
        if isinstance(value, list | StagedList):
            element, example = self._list_element([value])
            if element is None:
                raise self._unsupported(
                    node,
                    "loop",
                    "a list carried by a data-dependent loop must hold tensors of one type",
                )
            return self._add_leaf(plan, [value], "list", ListType(element), example)
        if type(value) is tuple:
            return _Container(tuple, [self._carry_node(v, plan, node) for v in value])
        return _Keep(value)

    def _bind_carried(self, loop: StagedLoop, arguments: list[SSAValue]) -> None:
        frame = self.frame
        assert frame is not None
        values = self._rebuild(loop.plan, arguments)
        for name, value in zip(loop.names, values):
            frame.env[name] = value

    def _staged_loop_exit(self, loop: StagedLoop, exit_op: type, node: ast.AST) -> None:
        """End a staged loop body path with `exit_op` carrying the current loop values."""
        self.flush()
        frame = self.frame
        assert frame is not None
        leaves: list = []
        self._collect_carried(
            [frame.env.get(n) for n in loop.names], loop.plan.template, leaves, node
        )
        operands = []
        for index, (value, kind, expected) in enumerate(
            zip(leaves, loop.plan.kinds, loop.plan.types)
        ):
            observed = self._leaf_type(value, kind, expected)
            if observed != expected:
                loop.observed_mismatch.append((index, observed))
                self.reachable = False
                return
            operands.append(self._materialize(value, kind, node, expected))
        self._emit(exit_op(*operands), node)
        self.reachable = False

    def _collect_carried(self, values: list, template: Any, leaves: list, node: ast.AST) -> None:
        assert isinstance(template, _Container)
        for value, item in zip(values, template.items):
            if isinstance(item, _Keep):
                if not _same(value, item.value):
                    raise self._unsupported(
                        node,
                        "loop",
                        f"a loop-carried {_describe(item.value)} "
                        f"becomes {_describe(value)} in a data-dependent loop",
                    )
            elif isinstance(item, _Container):
                if not isinstance(value, tuple) or len(value) != len(item.items):
                    raise self._unsupported(node, "loop", "a loop-carried tuple changes shape")
                self._collect_carried(list(value), item, leaves, node)
            else:
                leaves.append(value)

    def _leaf_type(self, value: Any, kind: Any, expected: Any) -> Any:
        if isinstance(value, Undefined):
            raise self._unsupported(self.node, "loop", value.reason)
        if kind == "tensor":
            if not isinstance(value, StagedTensor | torch.Tensor):
                return f"a {_describe(value)}"
            return self._tensor_type(value)
        if kind == "list":
            if isinstance(value, StagedList):
                if value.element_type.shape is None and value.observed_element is not None:
                    return ListType(value.observed_element)
                return value.value.type
            if isinstance(value, list):
                element, _ = self._list_element([value])
                if element is None or element.shape is None:
                    return expected
                if element != expected.element_type:
                    return ListType(element)
                return expected
            return f"a {_describe(value)}"
        observed = scalar_kind(value)
        return SCALAR_TYPES[observed] if observed is not None else f"a {_describe(value)}"

    # ---------------------------------------------------------------- materialization

    def _tensor_type(self, value: StagedTensor | torch.Tensor) -> ValueTensorType:
        if isinstance(value, torch.Tensor):
            return tensor_type(value)
        if isinstance(value.value, Pending):
            self.flush()
        assert isinstance(value.value, SSAValue)
        result = value.value.type
        assert isinstance(result, ValueTensorType)
        return result

    def _materialize(self, value: Any, kind: Any, node: ast.AST, expected: Any = None) -> SSAValue:
        """The SSA value holding `value` (a leaf of kind "tensor", "list" or bool/int/float)."""
        if value is _PLACEHOLDER:
            return self._placeholder(kind, expected, node)
        if kind == "tensor":
            if isinstance(value, StagedTensor):
                if isinstance(value.value, Pending):
                    self.flush()
                return value.value
            return self._constant_value(value, node)
        if kind == "list":
            if isinstance(value, StagedList):
                return value.value
            list_type = (
                expected if expected is not None else ListType(self._list_element([value])[0])
            )
            current = self._emit(dy.ListEmptyOp(list_type), node).result
            for item in value:
                tensor = self._materialize(item, "tensor", node)
                current = self._emit(dy.ListAppendOp(current, tensor), node).result
            return current
        return self._scalar_value(value, kind, node)

    def _placeholder(self, kind: Any, expected: Any, node: ast.AST) -> SSAValue:
        """A value of the expected type for a path where the optional value is None (it is
        never read there: every read is guarded by its presence flag)."""
        if kind == "list":
            return self._emit(dy.ListEmptyOp(expected), node).result
        if kind != "tensor":
            return self._scalar_value(kind(0), kind, node)
        dtype = torch_dtype(expected.element_type)
        zeros = self._placeholders.setdefault(
            str(expected), torch.zeros(expected.shape, dtype=dtype)
        )
        return self._constant_value(zeros, node)

    def _scalar_value(self, value: Any, kind: type, node: ast.AST) -> SSAValue:
        if isinstance(value, HostScalar):
            if value.kind is kind:
                return value.value
            return self._convert_scalar(value, kind, node).value
        if kind is bool:
            attr = IntegerAttr(int(bool(value)), i1)
        elif kind is int:
            attr = IntegerAttr(int(value), i64)
        else:
            attr = FloatAttr(float(value), f64)
        return self._emit(arith.ConstantOp(attr), node).result

    def _constant_value(self, tensor: torch.Tensor, node: ast.AST) -> SSAValue:
        key = self._constant_key(tensor)
        return self._param_value(key, tensor_type(tensor), node)

    def _constant_key(self, tensor: torch.Tensor) -> str:
        key = self.param_keys.get(id(tensor))
        if key is None:
            if id(tensor) not in self._constants:
                name = f"constant.{len(self._constants)}"
                self._constants[id(tensor)] = (name, tensor)
            key = self._constants[id(tensor)][0]
        if key not in self.params:
            self.params[key] = tensor.detach().clone().contiguous()
        return key

    def _param_value(self, key: str, type_: Any, node: ast.AST | None) -> SSAValue:
        block: Block | None = self.block
        while block is not None:
            cached = self._param_cache.get((block, key))
            if cached is not None:
                return cached
            parent = block.parent_op()
            block = parent.parent_block() if parent is not None else None
        value = self._emit(dy.ParamOp(key, type_), node).result
        self._param_cache[(self.block, key)] = value
        return value

    # ---------------------------------------------------------------- stretches

    def flush(self) -> None:
        """Import the current stretch (if it produced anything still reachable) into the
        current block and give its reachable tensors their SSA values."""
        stretch = self.stretch
        self.stretch = Stretch()
        outputs = stretch.reachable_outputs()
        if not stretch.calls or not outputs:
            return
        refs: list = []
        for handle in outputs:
            if handle.value.ref not in refs:
                refs.append(handle.value.ref)
        key = structure_key(stretch, refs)
        imported = self._imports.get(key) if key is not None else None
        if imported is None:
            try:
                imported = import_stretch(stretch, refs)
            except ImportFailure as error:
                raise UnsupportedError(
                    stretch.location.filename.data,
                    stretch.location.line.data,
                    "tensor code",
                    f"torch-mlir cannot import it: {error}",
                ) from None
            if key is not None:
                self._imports[key] = imported
        # splice() consumes the body: a memoised import is spliced as a copy.
        function = imported.clone() if key is not None else imported
        arguments = [live_in.value for live_in in stretch.live_ins]

        def make_param(index: int, type_: Any) -> SSAValue:
            key = stretch.live_ins[index].param_key
            assert key is not None
            return self._param_value(key, type_, None)

        saved_node = self.node
        results = splice(function, self.block, arguments, make_param, stretch.location)
        self.node = saved_node
        for handle in outputs:
            handle.value = results[refs.index(handle.value.ref)]

    def _ref_of(self, handle: StagedTensor, node: ast.AST) -> Any:
        value = handle.value
        if isinstance(value, Pending):
            assert value.stretch is self.stretch, "a pending tensor outlived its stretch"
            return value.ref
        value_type = value.type
        if isinstance(value_type, ValueTensorType) and not value_type.has_static_shape:
            raise self._unsupported(
                node,
                "tensor code",
                f"a tensor whose size depends on the path taken "
                f"({value_type}) is used in further computation",
            )
        return self.stretch.live_in(value, LiveIn(value, None, handle.example))

    def _constant_ref(self, tensor: torch.Tensor) -> Any:
        key = self._constant_key(tensor)
        return self.stretch.live_in(("param", key), LiveIn(None, key, tensor.detach()))

    def _stage_call(
        self,
        node: ast.AST,
        function: Callable,
        args: tuple,
        kwargs: dict,
        module: nn.Module | None = None,
    ) -> Any:
        """Record a call with staged tensor arguments and run it on their examples."""

        def to_tensor(value: Any) -> Any:
            if isinstance(value, HostScalar):
                return self._scalar_tensor(value, node)
            if isinstance(value, StagedList | Undefined | UserFunction | OptionalValue):
                reason = (
                    value.reason
                    if isinstance(value, Undefined)
                    else (f"a {_describe(value)} cannot be passed to {_callable_name(function)}")
                )
                raise self._unsupported(node, f"call of {_callable_name(function)}", reason)
            return None

        args = template(args, to_tensor)
        kwargs = template(kwargs, to_tensor)
        staged: list[StagedTensor] = []
        constants: list[torch.Tensor] = []

        def example_of(value: Any) -> Any:
            if isinstance(value, StagedTensor):
                staged.append(value)
                return value.example
            if isinstance(value, torch.Tensor):
                constants.append(value)
            return None

        example_args = template(args, example_of)
        example_kwargs = template(kwargs, example_of)
        versions = [t.example._version for t in staged]
        constant_versions = [t._version for t in constants]
        try:
            result = function(*example_args, **example_kwargs)
        except Exception as error:  # noqa: BLE001 - whatever the model's own code raises
            raise self._unsupported(
                node,
                f"call of {_callable_name(function)}",
                f"it fails on the example inputs: {_first_line(error)}",
            ) from None
        if any(t._version != v for t, v in zip(constants, constant_versions)):
            raise self._unsupported(
                node, f"call of {_callable_name(function)}", "it updates a constant tensor in place"
            )
        stretch = self.stretch
        if stretch.location is None:
            stretch.location = self._location(node)

        def to_slot(value: Any) -> Any:
            if isinstance(value, StagedTensor):
                return slot(self._ref_of(value, node))
            if isinstance(value, torch.Tensor):
                return slot(self._constant_ref(value))
            return None

        recorded_args = template(args, to_slot)
        recorded_kwargs = template(kwargs, to_slot)
        module_params = {}
        if module is not None:
            module_params = {
                name: self._constant_ref(tensor)
                for name, tensor in [*module.named_parameters(), *module.named_buffers()]
            }
        number = len(stretch.calls)
        stretch.calls.append(
            RecordedCall(function, recorded_args, recorded_kwargs, module, module_params)
        )
        for handle, version in zip(staged, versions):
            if handle.example._version != version:
                self._mark_mutated(handle)
        leaves = list(tensor_leaves(result))
        if not leaves:
            stretch.calls.pop()
            raise self._unsupported(
                node,
                f"call of {_callable_name(function)}",
                f"it computes a Python {type(result).__name__} from tensor data; use "
                "tensor operations or .item() in a condition",
            )
        return self._wrap_result(result, (), stretch, number)

    def _wrap_result(self, value: Any, path: tuple, stretch: Stretch, number: int) -> Any:
        if isinstance(value, torch.Tensor):
            handle = StagedTensor(Pending(stretch, ("out", number, path)), value)
            stretch.track(handle)
            return handle
        if isinstance(value, tuple | list):
            items = [self._wrap_result(v, (*path, i), stretch, number) for i, v in enumerate(value)]
            if isinstance(value, list):
                return items
            if hasattr(value, "_fields"):
                return type(value)(*items)
            if type(value) is not tuple:
                return type(value)(items)
            return tuple(items)
        return value

    def _mark_mutated(self, handle: StagedTensor) -> None:
        value = handle.value
        if isinstance(value, Pending):
            return
        ref = self.stretch.live_in(value, LiveIn(value, None, handle.example))
        self.stretch.mutated_live_ins.add(ref[1])
        self.mutations.append((handle, value))
        handle.value = Pending(self.stretch, ref)
        self.stretch.track(handle)

    def _scalar_tensor(self, scalar: HostScalar, node: ast.AST) -> StagedTensor:
        dtype = {bool: torch.bool, int: torch.int64, float: torch.get_default_dtype()}[scalar.kind]
        example = torch.tensor(scalar.example, dtype=dtype)
        op = dy.ScalarToTensorOp(scalar.value, ValueTensorType([], element_type(dtype)))
        return StagedTensor(self._emit(op, node).result, example)

    # ---------------------------------------------------------------- host scalars

    def _item(self, tensor: StagedTensor, node: ast.AST) -> HostScalar:
        if tensor.example.numel() != 1:
            raise self._unsupported(
                node, ".item()", f"the tensor has {tensor.example.numel()} elements, not one"
            )
        self.flush() if isinstance(tensor.value, Pending) else None
        tensor_value = tensor.value
        assert isinstance(tensor_value, SSAValue)
        result_type = scalar_type_for_dtype(tensor_value.type.element_type)
        op = self._emit(dy.ItemOp(tensor_value, result_type), node)
        example = tensor.example.item()
        return HostScalar(op.result, example)

    def _truth(self, value: Any, node: ast.AST) -> bool | HostScalar:
        """Python truthiness: a bool when known at compile time, else an i1 HostScalar."""
        if isinstance(value, StagedTensor):
            return self._truth(self._item(value, node), node)
        if isinstance(value, HostScalar):
            return self._convert_scalar(value, bool, node)
        if isinstance(value, StagedList):
            length = self._list_len(value, node)
            return self._compare_scalars(ast.NotEq(), length, 0, node)
        if isinstance(value, Undefined):
            raise self._unsupported(node, "condition", value.reason)
        if isinstance(value, OptionalValue):
            raise self._unsupported(
                node,
                "condition",
                "the truth of a value that may be None; test it with 'is not None'",
            )
        if isinstance(value, UserFunction):
            return True
        return bool(value)

    def _as_host_bool(self, condition: bool | HostScalar, node: ast.AST) -> HostScalar:
        if isinstance(condition, HostScalar):
            return condition
        return HostScalar(self._scalar_value(condition, bool, node), condition)

    def _convert_scalar(self, scalar: HostScalar, kind: type, node: ast.AST) -> HostScalar:
        if scalar.kind is kind:
            return scalar
        if kind is bool:
            zero = self._scalar_value(0 if scalar.kind is int else 0.0, scalar.kind, node)
            if scalar.kind is int:
                op = arith.CmpiOp(scalar.value, zero, "ne")
            else:
                op = arith.CmpfOp(scalar.value, zero, "une")
            return HostScalar(self._emit(op, node).result, bool(scalar.example))
        if kind is int:
            if scalar.kind is bool:
                op = arith.ExtUIOp(scalar.value, i64)
            else:
                op = arith.FPToSIOp(scalar.value, i64)
            return HostScalar(self._emit(op, node).result, int(scalar.example))
        widened = self._convert_scalar(scalar, int, node) if scalar.kind is bool else scalar
        op = arith.SIToFPOp(widened.value, f64)
        return HostScalar(self._emit(op, node).result, float(scalar.example))

    def _compare_scalars(
        self, op: ast.cmpop, left: Any, right: Any, node: ast.AST
    ) -> HostScalar | bool:
        outcomes = _combine_possible(_COMPARE[type(op)], left, right)
        if outcomes is not None and len(outcomes) == 1:
            return bool(next(iter(outcomes)))
        kinds = {scalar_kind(left), scalar_kind(right)}
        kind = float if float in kinds else int
        lhs = self._scalar_value(left, kind, node)
        rhs = self._scalar_value(right, kind, node)
        example = _COMPARE[type(op)](_example(left), _example(right))
        if kind is float:
            compare = arith.CmpfOp(lhs, rhs, _FLOAT_PREDICATES[type(op)])
        else:
            compare = arith.CmpiOp(lhs, rhs, _INT_PREDICATES[type(op)])
        return HostScalar(self._emit(compare, node).result, example, outcomes)

    def _scalar_arith(self, op: ast.operator, left: Any, right: Any, node: ast.AST) -> HostScalar:
        kinds = {scalar_kind(left), scalar_kind(right)}
        example = _BINARY[type(op)](_example(left), _example(right))
        if kinds == {bool} and type(op) in _BOOL_ARITH:
            lhs, rhs = (self._scalar_value(v, bool, node) for v in (left, right))
            return HostScalar(self._emit(_BOOL_ARITH[type(op)](lhs, rhs), node).result, example)
        kind = float if float in kinds or isinstance(op, ast.Div) else int
        table = _FLOAT_ARITH if kind is float else _INT_ARITH
        if type(op) not in table:
            raise self._unsupported(
                node,
                f"'{_OPERATOR_SPELLING.get(type(op), '?')}' on host scalars",
                f"not supported for Python {kind.__name__}s",
            )
        lhs, rhs = (self._scalar_value(v, kind, node) for v in (left, right))
        possible = _combine_possible(_BINARY[type(op)], left, right) if kind is int else None
        return HostScalar(self._emit(table[type(op)](lhs, rhs), node).result, example, possible)

    # ---------------------------------------------------------------- lists

    def _list_len(self, value: StagedList, node: ast.AST) -> HostScalar:
        op = self._emit(dy.ListLenOp(value.value), node)
        return HostScalar(op.result, 1)

    def _list_append(self, target: StagedList, item: Any, node: ast.AST) -> None:
        if not isinstance(item, StagedTensor | torch.Tensor):
            raise self._unsupported(
                node,
                "append",
                f"a list of tensors whose length depends "
                f"on the data cannot hold a {_describe(item)}",
            )
        item_value = self._materialize(item, "tensor", node)
        observed = target.observed_element
        if observed is not None and item_value.type != observed:
            raise self._unsupported(
                node, "append", f"item {item_value.type} differs from the earlier items {observed}"
            )
        if not dy.tensor_conforms(item_value.type, target.element_type):
            raise self._unsupported(
                node,
                "append",
                f"item {item_value.type} does not match the list's items {target.element_type}",
            )
        self.mutations.append((target, (target.value, target.observed_element)))
        target.value = self._emit(dy.ListAppendOp(target.value, item_value), node).result
        target.observed_element = item_value.type
        if target.example_item is None:
            target.example_item = item.example if isinstance(item, StagedTensor) else item

    def _list_join(self, function: Callable, items: StagedList, dim: int, node: ast.AST):
        element = items.element_type
        if not element.has_static_shape or element.element_type is None:
            raise self._unsupported(
                node, _callable_name(function), f"the list's item type {element} is not static"
            )
        item_example = items.example_item
        if item_example is None:
            item_example = torch.zeros(element.shape, dtype=torch_dtype(element.element_type))
        rank = len(element.shape)
        if function is torch.stack:
            position = dim if dim >= 0 else dim + rank + 1
            shape = list(element.shape)
            shape.insert(position, -1)
            op_type = dy.ListStackOp
            example = torch.stack([item_example], dim=dim)
        else:
            position = dim if dim >= 0 else dim + rank
            shape = list(element.shape)
            shape[position] = -1
            op_type = dy.ListCatOp
            example = torch.cat([item_example], dim=dim)
        result_type = ValueTensorType(shape, element.element_type)
        op = self._emit(op_type(items.value, position, result_type), node)
        return StagedTensor(op.result, example)

    # ---------------------------------------------------------------- expressions

    def _eval(self, node: ast.expr) -> Any:
        method = getattr(self, f"_eval_{type(node).__name__}", None)
        if method is None:
            raise self._unsupported(node, type(node).__name__, "this expression is not supported")
        return method(node)

    def _eval_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _eval_Name(self, node: ast.Name) -> Any:
        frame = self.frame
        assert frame is not None
        try:
            value = frame.lookup(node.id)
        except KeyError:
            raise self._unsupported(node, f"name '{node.id}'", "it is not defined") from None
        if isinstance(value, Undefined):
            raise self._unsupported(node, f"use of '{node.id}'", value.reason)
        return value

    def _eval_Attribute(self, node: ast.Attribute) -> Any:
        return self._get_attribute(self._eval(node.value), node.attr, node)

    def _get_attribute(self, value: Any, name: str, node: ast.AST) -> Any:
        if isinstance(value, StagedTensor):
            if name in TENSOR_STATIC_ATTRIBUTES:
                return getattr(value.example, name)
            attribute = getattr(torch.Tensor, name, None)
            if callable(attribute):
                return StagedMethod(value, name)
            return self._stage_call(node, operator.attrgetter(name), (value,), {})
        if isinstance(value, StagedList):
            return StagedMethod(value, name)
        if isinstance(value, HostScalar | Undefined | OptionalValue):
            raise self._unsupported(node, f"attribute '{name}'", f"of a {_describe(value)}")
        if isinstance(value, UserFunction):
            raise self._unsupported(node, f"attribute '{name}'", "of a nested function")
        try:
            return getattr(value, name)
        except AttributeError as error:
            raise self._unsupported(node, f"attribute '{name}'", str(error)) from None

    def _eval_Subscript(self, node: ast.Subscript) -> Any:
        value = self._eval(node.value)
        index = self._eval(node.slice)
        if isinstance(value, StagedTensor) or (
            isinstance(value, torch.Tensor) and _is_staged(index)
        ):
            return self._stage_call(node, operator.getitem, (value, index), {})
        if isinstance(value, StagedList):
            if scalar_kind(index) is not int:
                raise self._unsupported(node, "list index", "must be an int")
            index_value = self._scalar_value(index, int, node)
            op = self._emit(dy.ListGetOp(value.value, index_value), node)
            return StagedTensor(op.result, value.example_item)
        if _is_staged(index):
            raise self._unsupported(
                node, "indexing", "a Python container indexed by a value known only at run time"
            )
        try:
            return value[index]
        except Exception as error:  # noqa: BLE001 - whatever the model's own code raises
            raise self._unsupported(node, "indexing", _first_line(error)) from None

    def _eval_Slice(self, node: ast.Slice) -> slice:
        parts = [None if p is None else self._eval(p) for p in (node.lower, node.upper, node.step)]
        return slice(*parts)

    def _eval_Tuple(self, node: ast.Tuple) -> tuple:
        return tuple(self._eval_elements(node.elts))

    def _eval_List(self, node: ast.List) -> list:
        return self._eval_elements(node.elts)

    def _eval_Set(self, node: ast.Set) -> set:
        return set(self._eval_elements(node.elts))

    def _eval_elements(self, elements: list[ast.expr]) -> list:
        values = []
        for element in elements:
            if isinstance(element, ast.Starred):
                values.extend(self._static_items(self._eval(element.value), element))
            else:
                values.append(self._eval(element))
        return values

    def _eval_Dict(self, node: ast.Dict) -> dict:
        result = {}
        for key, value in zip(node.keys, node.values):
            if key is None:
                result.update(self._eval(value))
            else:
                result[self._eval(key)] = self._eval(value)
        return result

    def _eval_JoinedStr(self, node: ast.JoinedStr) -> str:
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                inner = self._eval(value.value)
                if _is_staged(inner):
                    raise self._unsupported(node, "f-string", "formats a run-time value")
                spec = self._eval(value.format_spec) if value.format_spec else ""
                converted = {-1: inner, 115: str(inner), 114: repr(inner), 97: ascii(inner)}[
                    value.conversion
                ]
                parts.append(format(converted, spec))
            else:
                parts.append(self._eval(value))
        return "".join(parts)

    def _eval_Lambda(self, node: ast.Lambda) -> UserFunction:
        frame = self.frame
        assert frame is not None
        return UserFunction(node, frame)

    def _eval_IfExp(self, node: ast.IfExp) -> Any:
        condition = self._truth(self._eval(node.test), node.test)
        if isinstance(condition, bool):
            return self._eval(node.body if condition else node.orelse)
        join = Join(self.block, self.loop_depth, carries_environment=False)
        arms = [
            lambda k, e=e: self._arrive(join, self._eval(e), node) for e in (node.body, node.orelse)
        ]
        merged = self._staged_branch(condition, arms, join, lambda: None, node)
        if not self.reachable:
            raise _PathEnded()
        return self._check_defined(merged, node)

    def _check_defined(self, value: Any, node: ast.AST) -> Any:
        if isinstance(value, Undefined):
            raise self._unsupported(node, "branch result", value.reason)
        return value

    def _eval_comprehension(self, node: ast.expr, generators: list, produce: Callable) -> None:
        frame = self.frame
        assert frame is not None
        saved = dict(frame.env)

        def run(level: int) -> None:
            if level == len(generators):
                produce()
                return
            generator = generators[level]
            if generator.is_async:
                raise self._unsupported(node, "async comprehension", "not supported")
            for item in self._static_items(self._eval(generator.iter), generator.iter):
                self._assign(generator.target, item)
                conditions = [self._truth(self._eval(c), c) for c in generator.ifs]
                if any(isinstance(c, HostScalar) for c in conditions):
                    raise self._unsupported(
                        node, "comprehension", "its filter depends on run-time values"
                    )
                if all(conditions):
                    run(level + 1)

        try:
            run(0)
        finally:
            frame.env = saved

    def _eval_ListComp(self, node: ast.ListComp) -> list:
        result: list = []
        self._eval_comprehension(node, node.generators, lambda: result.append(self._eval(node.elt)))
        return result

    def _eval_GeneratorExp(self, node: ast.GeneratorExp) -> tuple:
        result: list = []
        self._eval_comprehension(node, node.generators, lambda: result.append(self._eval(node.elt)))
        return tuple(result)

    def _eval_SetComp(self, node: ast.SetComp) -> set:
        return set(self._eval_ListComp(ast.ListComp(node.elt, node.generators)))

    def _eval_DictComp(self, node: ast.DictComp) -> dict:
        result: dict = {}

        def produce() -> None:
            result[self._eval(node.key)] = self._eval(node.value)

        self._eval_comprehension(node, node.generators, produce)
        return result

    def _eval_BinOp(self, node: ast.BinOp) -> Any:
        return self._binary(node.op, self._eval(node.left), self._eval(node.right), node)

    def _binary(
        self, op: ast.operator, left: Any, right: Any, node: ast.AST, inplace: bool = False
    ) -> Any:
        table = _INPLACE if inplace else _BINARY
        function = table.get(type(op), _BINARY[type(op)])
        if isinstance(left, StagedTensor | StagedList) or isinstance(right, StagedTensor):
            if isinstance(left, StagedList):
                raise self._unsupported(node, "operator", "on a list of run-time length")
            if not isinstance(left, StagedTensor):
                function = _BINARY[type(op)]
            return self._stage_call(node, function, (left, right), {})
        if isinstance(left, HostScalar) or isinstance(right, HostScalar):
            if isinstance(left, torch.Tensor) or isinstance(right, torch.Tensor):
                return self._stage_call(node, _BINARY[type(op)], (left, right), {})
            if scalar_kind(left) is None or scalar_kind(right) is None:
                raise self._unsupported(
                    node, "operator", f"between {_describe(left)} and {_describe(right)}"
                )
            return self._scalar_arith(op, left, right, node)
        for value in (left, right):
            if isinstance(value, Undefined):
                raise self._unsupported(node, "operator", value.reason)
            if isinstance(value, OptionalValue):
                raise self._unsupported(node, "operator", f"on a {_describe(value)}")
        return function(left, right)

    def _eval_UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self._eval(node.operand)
        if isinstance(node.op, ast.Not):
            return self._eval_not(self._truth(operand, node.operand), node)
        function = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}[
            type(node.op)
        ]
        if isinstance(operand, StagedTensor):
            return self._stage_call(node, function, (operand,), {})
        if isinstance(operand, HostScalar):
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(node.op, ast.USub) and operand.kind is not bool:
                return self._scalar_arith(
                    ast.Sub(), 0 if operand.kind is int else 0.0, operand, node
                )
            if isinstance(node.op, ast.Invert) and operand.kind is bool:
                return self._scalar_arith(ast.BitXor(), operand, True, node)
            raise self._unsupported(node, "unary operator", f"on a host {operand.kind.__name__}")
        return function(operand)

    def _eval_not(self, truth: bool | HostScalar, node: ast.AST) -> bool | HostScalar:
        if isinstance(truth, bool):
            return not truth
        true = self._scalar_value(True, bool, node)
        return HostScalar(
            self._emit(arith.XOrIOp(truth.value, true), node).result, not truth.example
        )

    def _eval_BoolOp(self, node: ast.BoolOp) -> Any:
        is_and = isinstance(node.op, ast.And)
        result: Any = None
        staged: list[HostScalar] = []
        for value_node in node.values:
            value = self._eval(value_node)
            truth = self._truth(value, value_node)
            if isinstance(truth, bool):
                if truth != is_and:
                    if not staged:
                        return value
                    staged.append(self._as_host_bool(truth, value_node))
                    break
                result = value
                continue
            staged.append(truth)
        if not staged:
            return result
        combined = staged[0]
        combine = arith.AndIOp if is_and else arith.OrIOp
        for other in staged[1:]:
            example = (
                (combined.example and other.example)
                if is_and
                else (combined.example or other.example)
            )
            combined = HostScalar(
                self._emit(combine(combined.value, other.value), node).result, example
            )
        return combined

    def _eval_Compare(self, node: ast.Compare) -> Any:
        left = self._eval(node.left)
        results = []
        for op, right_node in zip(node.ops, node.comparators):
            right = self._eval(right_node)
            results.append(self._compare(op, left, right, node))
            left = right
        if len(results) == 1:
            return results[0]
        if any(isinstance(r, StagedTensor) for r in results):
            combined = results[0]
            for other in results[1:]:
                combined = self._stage_call(node, operator.and_, (combined, other), {})
            return combined
        if all(isinstance(r, bool) for r in results):
            return all(results)
        truths = [self._as_host_bool(self._truth(r, node), node) for r in results]
        combined = truths[0]
        for other in truths[1:]:
            combined = HostScalar(
                self._emit(arith.AndIOp(combined.value, other.value), node).result,
                combined.example and other.example,
            )
        return combined

    def _compare(self, op: ast.cmpop, left: Any, right: Any, node: ast.AST) -> Any:
        if isinstance(op, ast.Is | ast.IsNot):
            optional = left if isinstance(left, OptionalValue) else right
            if isinstance(optional, OptionalValue):
                if (left if optional is right else right) is not None:
                    raise self._unsupported(
                        node, "'is'", "a value that may be None can only be compared with None"
                    )
                if isinstance(op, ast.IsNot):
                    return optional.present
                return self._eval_not(optional.present, node)
            same = left is right
            return same if isinstance(op, ast.Is) else not same
        if isinstance(op, ast.In | ast.NotIn):
            if _is_staged(left) or _is_staged(right):
                raise self._unsupported(node, "'in'", "on run-time values")
            found = left in right
            return found if isinstance(op, ast.In) else not found
        if isinstance(left, StagedTensor) or isinstance(right, StagedTensor):
            return self._stage_call(node, _COMPARE[type(op)], (left, right), {})
        if isinstance(left, HostScalar) or isinstance(right, HostScalar):
            if isinstance(left, torch.Tensor) or isinstance(right, torch.Tensor):
                return self._stage_call(node, _COMPARE[type(op)], (left, right), {})
            if scalar_kind(left) is None or scalar_kind(right) is None:
                raise self._unsupported(
                    node, "comparison", f"between {_describe(left)} and {_describe(right)}"
                )
            return self._compare_scalars(op, left, right, node)
        for value in (left, right):
            if isinstance(value, StagedList | Undefined):
                raise self._unsupported(node, "comparison", f"of a {_describe(value)}")
        return _COMPARE[type(op)](left, right)

    # ---------------------------------------------------------------- calls

    def _eval_Call(self, node: ast.Call) -> Any:
        function = self._eval(node.func)
        args: list = []
        for argument in node.args:
            if isinstance(argument, ast.Starred):
                args.extend(self._static_items(self._eval(argument.value), argument))
            else:
                args.append(self._eval(argument))
        kwargs: dict = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                kwargs.update(self._eval(keyword.value))
            else:
                kwargs[keyword.arg] = self._eval(keyword.value)
        self.node = node
        return self._call(function, tuple(args), kwargs, node)

    def _call(self, function: Any, args: tuple, kwargs: dict, node: ast.AST) -> Any:
        if isinstance(function, StagedMethod):
            return self._call_staged_method(function, args, kwargs, node)
        if isinstance(function, UserFunction):
            return self._inline_user_function(function, args, kwargs, node)
        special = self._special_call(function, args, kwargs, node)
        if special is not NotImplemented:
            return special
        if isinstance(function, nn.Module):
            return self._call_module(function, args, kwargs, node)
        if is_user_function(function):
            return self._inline(function, args, kwargs, node)
        container = getattr(function, "__self__", None)
        python_level = isinstance(container, list | dict | set) or (
            getattr(function, "__module__", None) == "builtins"
        )
        if _is_staged((args, kwargs)) and not python_level:
            module = getattr(function, "__self__", None)
            if isinstance(module, nn.Module):
                return self._stage_call(node, function, args, kwargs, module=module)
            return self._stage_call(node, function, args, kwargs)
        try:
            return function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - whatever the model's own code raises
            raise self._unsupported(
                node, f"call of {_callable_name(function)}", _first_line(error)
            ) from None

    def _call_staged_method(
        self, method: StagedMethod, args: tuple, kwargs: dict, node: ast.AST
    ) -> Any:
        receiver, name = method.receiver, method.name
        if isinstance(receiver, StagedList):
            if name == "append" and len(args) == 1 and not kwargs:
                self._list_append(receiver, args[0], node)
                return None
            raise self._unsupported(
                node,
                f"list.{name}",
                "on a list whose length depends on "
                "the data (only append, len, indexing, torch.stack/cat)",
            )
        if name == "item":
            return self._item(receiver, node)
        if name in ("tolist", "numpy", "__bool__", "__int__", "__float__"):
            raise self._unsupported(
                node,
                f".{name}()",
                "turns tensor data into Python values; use .item() in a condition",
            )
        if name in TENSOR_METADATA:
            if _is_staged((args, kwargs)):
                raise self._unsupported(node, f".{name}()", "with run-time arguments")
            return getattr(receiver.example, name)(*args, **kwargs)
        return self._stage_call(node, getattr(torch.Tensor, name), (receiver, *args), kwargs)

    def _call_module(self, module: nn.Module, args: tuple, kwargs: dict, node: ast.AST) -> Any:
        if isinstance(module, nn.Sequential):
            if len(args) != 1 or kwargs:
                raise self._unsupported(node, "nn.Sequential call", "takes exactly one input")
            value = args[0]
            for child in module:
                value = self._call(child, (value,), {}, node)
            return value
        forward = type(module).forward
        if is_user_function(forward):
            if module._forward_hooks or module._forward_pre_hooks:
                raise self._unsupported(
                    node,
                    f"call of {type(module).__name__}",
                    "modules with forward hooks are not supported",
                )
            return self._inline(module.forward, args, kwargs, node)
        if not _is_staged((args, kwargs)):
            return module(*args, **kwargs)
        return self._stage_call(node, module, args, kwargs, module=module)

    def _inline(self, function: Any, args: tuple, kwargs: dict, node: ast.AST) -> Any:
        target = getattr(function, "__func__", function)
        receiver = getattr(function, "__self__", None)
        if receiver is not None:
            args = (receiver, *args)
        join = Join(self.block, self.loop_depth, carries_environment=False)
        caller = self.frame
        frame = self._bind_frame(target, args, kwargs, join)
        return self._run_inlined(frame, frame.source.node.body, join, node, caller)

    def _inline_user_function(
        self, function: UserFunction, args: tuple, kwargs: dict, node: ast.AST
    ) -> Any:
        definition = function.node
        scope = function.scope
        env = self._bind_user_arguments(definition.args, args, kwargs, node)
        join = Join(self.block, self.loop_depth, carries_environment=False)
        frame = Frame(
            env,
            scope.globals,
            scope.source,
            {},
            parent=scope,
            return_join=join,
            class_cell=scope.class_cell,
        )
        if isinstance(definition, ast.Lambda):
            body: list[ast.stmt] = [
                ast.Return(
                    definition.body, lineno=definition.lineno, col_offset=definition.col_offset
                )
            ]
        else:
            body = definition.body
        return self._run_inlined(frame, body, join, node, self.frame)

    def _bind_user_arguments(
        self, arguments: ast.arguments, args: tuple, kwargs: dict, node: ast.AST
    ) -> dict:
        if arguments.vararg or arguments.kwarg or arguments.kwonlyargs or arguments.posonlyargs:
            raise self._unsupported(
                node, "call of a nested function", "only plain positional parameters are supported"
            )
        names = [a.arg for a in arguments.args]
        defaults = [self._eval(d) for d in arguments.defaults]
        env: dict[str, Any] = dict(zip(names[len(names) - len(defaults) :], defaults))
        if len(args) > len(names):
            raise self._unsupported(node, "call of a nested function", "too many arguments")
        env.update(zip(names, args))
        env.update(kwargs)
        missing = [n for n in names if n not in env]
        if missing:
            raise self._unsupported(
                node, "call of a nested function", f"missing argument '{missing[0]}'"
            )
        return env

    def _run_inlined(
        self, frame: Frame, body: list[ast.stmt], join: Join, node: ast.AST, caller: Frame | None
    ) -> Any:
        saved_node = self.node
        self.frame = frame
        try:
            self._exec(body, lambda: self._arrive(join, None, node))
            self.frame = caller
            result = self._resolve(join, node)
        finally:
            self.frame = caller
            self.node = saved_node
        if not self.reachable:
            raise _PathEnded()
        return self._check_defined(result, node)

    # ---------------------------------------------------------------- special callables

    def _special_call(self, function: Any, args: tuple, kwargs: dict, node: ast.AST) -> Any:
        if function is torch.cond:
            return self._torch_cond(args, kwargs, node)
        if function is getattr(torch, "while_loop", _NOT_A_FUNCTION):
            return self._torch_while_loop(args, kwargs, node)
        if (
            function in (torch.stack, torch.cat, torch.concat, torch.concatenate)
            and args
            and (isinstance(args[0], StagedList))
        ):
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            if _is_staged(dim):
                raise self._unsupported(node, _callable_name(function), "dim must be static")
            join = torch.stack if function is torch.stack else torch.cat
            return self._list_join(join, args[0], dim, node)
        if function is super and not args:
            frame = self.frame
            assert frame is not None
            receiver = frame.env.get(frame.source.node.args.args[0].arg)
            if frame.class_cell is None:
                raise self._unsupported(node, "super()", "outside a method")
            return super(frame.class_cell, receiver)
        if not isinstance(function, types.BuiltinFunctionType | type) or (
            getattr(function, "__module__", None) != "builtins"
        ):
            return NotImplemented
        if function is print:
            return None
        if function is sum and args and isinstance(args[0], list | tuple) and _is_staged(args):
            return self._builtin_on_staged(function, args, kwargs, node)
        if not any(
            isinstance(a, StagedTensor | HostScalar | StagedList) for a in (*args, *kwargs.values())
        ):
            return NotImplemented
        return self._builtin_on_staged(function, args, kwargs, node)

    def _builtin_on_staged(self, function: Any, args: tuple, kwargs: dict, node: ast.AST) -> Any:
        value = args[0] if args else None
        if function is len:
            if isinstance(value, StagedTensor):
                return len(value.example)
            if isinstance(value, StagedList):
                return self._list_len(value, node)
        if function is bool:
            return self._truth(value, node)
        if function in (int, float) and len(args) == 1:
            kind = function
            if isinstance(value, StagedTensor):
                value = self._item(value, node)
            if isinstance(value, HostScalar):
                return self._convert_scalar(value, kind, node)
        if function is isinstance:
            probe = value.example if isinstance(value, StagedTensor | HostScalar) else value
            return isinstance(probe, args[1])
        if function in (zip, enumerate, list, tuple, reversed, range) and not any(
            isinstance(a, HostScalar | StagedList) for a in args
        ):
            items = [
                self._static_items(a, node) if isinstance(a, StagedTensor) else a for a in args
            ]
            return function(*items, **kwargs)
        if function in (min, max, abs) and all(scalar_kind(a) is not None for a in args):
            return self._scalar_min_max_abs(function, args, node)
        if function is sum and isinstance(value, list | tuple):
            total: Any = args[1] if len(args) > 1 else 0
            for item in value:
                total = self._binary(ast.Add(), total, item, node)
            return total
        raise self._unsupported(node, f"{function.__name__}()", "on values known only at run time")

    def _scalar_min_max_abs(self, function: Any, args: tuple, node: ast.AST) -> Any:
        if function is abs:
            (value,) = args
            negated = self._scalar_arith(
                ast.Sub(), 0 if value.kind is not float else 0.0, value, node
            )
            negative = self._compare_scalars(ast.Lt(), value, 0, node)
            return self._select(negative, negated, value, node)
        result = args[0]
        for other in args[1:]:
            keep = self._compare_scalars(
                ast.Lt() if function is min else ast.Gt(), result, other, node
            )
            result = self._select(keep, result, other, node)
        return result

    def _select(
        self, condition: HostScalar | bool, if_true: Any, if_false: Any, node: ast.AST
    ) -> Any:
        if isinstance(condition, bool):
            return if_true if condition else if_false
        kinds = {scalar_kind(if_true), scalar_kind(if_false)}
        kind = float if float in kinds else int
        lhs = self._scalar_value(if_true, kind, node)
        rhs = self._scalar_value(if_false, kind, node)
        example = _example(if_true) if condition.example else _example(if_false)
        return HostScalar(
            self._emit(arith.SelectOp(condition.value, lhs, rhs), node).result, example
        )

    def _torch_cond(self, args: tuple, kwargs: dict, node: ast.AST) -> Any:
        names = ("pred", "true_fn", "false_fn", "operands")
        bound = dict(zip(names, args)) | kwargs
        operands = tuple(bound.get("operands", ()))
        predicate = self._truth(bound["pred"], node)
        if isinstance(predicate, bool):
            chosen = bound["true_fn"] if predicate else bound["false_fn"]
            return self._call(chosen, operands, {}, node)
        join = Join(self.block, self.loop_depth, carries_environment=False)
        arms = [
            lambda k, f=bound[name]: self._arrive(join, self._call(f, operands, {}, node), node)
            for name in ("true_fn", "false_fn")
        ]
        result = self._staged_branch(predicate, arms, join, lambda: None, node)
        if not self.reachable:
            raise _PathEnded()
        return self._check_defined(result, node)

    def _torch_while_loop(self, args: tuple, kwargs: dict, node: ast.AST) -> Any:
        names = ("cond_fn", "body_fn", "carried_inputs")
        bound = dict(zip(names, args)) | kwargs
        if bound.get("additional_inputs"):
            raise self._unsupported(node, "torch.while_loop", "additional_inputs")
        carried = tuple(bound["carried_inputs"])
        condition_function, body_function = bound["cond_fn"], bound["body_fn"]
        self.flush()
        plan = CarryPlan(columns=[[]])
        plan.template = _Container(tuple, [self._carry_node(v, plan, node) for v in carried])
        inits = [
            self._materialize(v, kind, node, t)
            for v, kind, t in zip(plan.columns[0], plan.kinds, plan.types)
        ]
        owner = self.block
        before = Block(arg_types=plan.types)
        after = Block(arg_types=plan.types)
        self.block, self.stretch = before, Stretch()
        values = self._rebuild(plan, list(before.args))
        condition = self._truth(self._call(condition_function, values, {}, node), node)
        condition = self._as_host_bool(condition, node)
        self.flush()
        self._emit(dy.ConditionOp(condition.value, *before.args), node)
        self.block, self.stretch = after, Stretch()
        values = self._rebuild(plan, list(after.args))
        self.loop_depth += 1
        try:
            results = self._call(body_function, values, {}, node)
        finally:
            self.loop_depth -= 1
        self.flush()
        leaves: list = []
        if not isinstance(results, tuple | list) or len(results) != len(carried):
            raise self._unsupported(
                node, "torch.while_loop", "body_fn must return as many values as carried_inputs"
            )
        self._collect_carried(list(results), plan.template, leaves, node)
        operands = []
        for value, kind, expected in zip(leaves, plan.kinds, plan.types):
            observed = self._leaf_type(value, kind, expected)
            if observed != expected:
                raise self._unsupported(
                    node,
                    "torch.while_loop",
                    f"a carried value changes type from {expected} to {observed}",
                )
            operands.append(self._materialize(value, kind, node, expected))
        self._emit(dy.YieldOp(*operands), node)
        self.block, self.stretch = owner, Stretch()
        loop_op = self._emit(dy.WhileOp(inits, plan.types, Region(before), Region(after)), node)
        return self._rebuild(plan, list(loop_op.results))


# --------------------------------------------------------------------------- helpers


def _as_load(target: ast.expr) -> ast.expr:
    loaded = ast.parse(ast.unparse(target), mode="eval").body
    ast.copy_location(loaded, target)
    for child in ast.walk(loaded):
        if hasattr(child, "lineno"):
            child.lineno = target.lineno
            child.col_offset = target.col_offset
    return loaded


def _is_staged(value: Any) -> bool:
    if isinstance(value, StagedTensor | HostScalar | StagedList):
        return True
    if isinstance(value, tuple | list):
        return any(_is_staged(v) for v in value)
    if isinstance(value, dict):
        return any(_is_staged(v) for v in value.values())
    if isinstance(value, slice):
        return any(_is_staged(v) for v in (value.start, value.stop, value.step))
    return False


def _same(value: Any, other: Any) -> bool:
    if value is other:
        return True
    if isinstance(value, StagedTensor | StagedList) and type(value) is type(other):
        return value.value is other.value
    if isinstance(value, HostScalar) and isinstance(other, HostScalar):
        return value.value is other.value
    simple = (bool, int, float, str, type(None), torch.dtype, torch.device)
    if type(value) is type(other) and isinstance(value, simple):
        return value == other
    return False


def _visible(value: Any, block: Block) -> bool:
    """Whether the SSA value behind `value` (if any) can be used in `block`."""
    if isinstance(value, StagedTensor | StagedList | HostScalar):
        ssa = value.value
        if not isinstance(ssa, SSAValue):
            return False
        defining = ssa.owner if isinstance(ssa, BlockArgument) else ssa.owner.parent_block()
        current: Block | None = block
        while current is not None:
            if current is defining:
                return True
            parent = current.parent_op()
            current = parent.parent_block() if parent is not None else None
        return False
    if isinstance(value, OptionalValue):
        return _visible(value.present, block) and _visible(value.value, block)
    if isinstance(value, tuple | list):
        return all(_visible(v, block) for v in value)
    if isinstance(value, dict):
        return all(_visible(v, block) for v in value.values())
    return True


def _freeze(value: Any) -> Any:
    """A snapshot of `value`: handles and containers copied, so later updates do not leak."""
    if isinstance(value, StagedTensor | StagedList):
        return value.copy()
    if isinstance(value, OptionalValue):
        return OptionalValue(value.present, _freeze(value.value))
    if isinstance(value, list):
        return [_freeze(v) for v in value]
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    if type(value) is tuple:
        return tuple(_freeze(v) for v in value)
    return value


def _clone_containers(env: dict[str, Any]) -> dict[str, Any]:
    def clone(value: Any) -> Any:
        if isinstance(value, list):
            return [clone(v) for v in value]
        if isinstance(value, dict):
            return {k: clone(v) for k, v in value.items()}
        return value

    return {name: clone(value) for name, value in env.items()}


def _discard(block: Block) -> None:
    for op in reversed(list(block.ops)):
        op.detach()
        op.erase(safe_erase=False)


def _exits(statements: Iterable[ast.stmt], in_loop: bool = False) -> set[str]:
    """The kinds of exit (return, break, continue) these statements may take to outside."""
    found: set[str] = set()
    for statement in statements:
        if isinstance(statement, ast.Return):
            found.add("return")
        elif isinstance(statement, ast.Break) and not in_loop:
            found.add("break")
        elif isinstance(statement, ast.Continue) and not in_loop:
            found.add("continue")
        elif isinstance(statement, ast.For | ast.While):
            found |= _exits(statement.body, True) | _exits(statement.orelse, in_loop)
        elif isinstance(statement, ast.If):
            found |= _exits(statement.body, in_loop) | _exits(statement.orelse, in_loop)
        elif isinstance(statement, ast.With):
            found |= _exits(statement.body, in_loop)
    return found


_MUTATING_METHODS = frozenset({"append", "extend", "insert", "pop", "remove", "clear"})


def _assigned_names(statements: list[ast.stmt]) -> set[str]:
    """Names a loop body may rebind or update in place (list methods, in-place tensor ops)."""
    names: set[str] = set()
    for statement in statements:
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and (isinstance(node.func.value, ast.Name))
            ):
                method = node.func.attr
                if method in _MUTATING_METHODS or (
                    method.endswith("_") and not method.startswith("_")
                ):
                    names.add(node.func.value.id)
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Store)
                and (isinstance(node.value, ast.Name))
            ):
                names.add(node.value.id)
    return names


def _leaf_name(names: list[str], plan: CarryPlan, index: int) -> str:
    position = 0
    assert isinstance(plan.template, _Container)
    for name, item in zip(names, plan.template.items):
        count = _count_holes(item)
        if position <= index < position + count:
            return f"'{name}'"
        position += count
    return f"#{index}"


def _count_holes(node: Any) -> int:
    if isinstance(node, _Hole):
        return 1
    if isinstance(node, _Container):
        return sum(_count_holes(item) for item in node.items)
    return 0


def _possible_values(value: Any) -> frozenset | None:
    if isinstance(value, HostScalar):
        return value.possible
    return frozenset({value})


def _possible_union(values: list) -> frozenset | None:
    union: set = set()
    for value in values:
        possible = _possible_values(value)
        if possible is None:
            return None
        union |= possible
    return frozenset(union) if len(union) <= MAX_TRACKED_VALUES else None


def _combine_possible(function: Callable, left: Any, right: Any) -> frozenset | None:
    """The values `function(left, right)` can take, when both operands' sets are known."""
    lefts, rights = _possible_values(left), _possible_values(right)
    if lefts is None or rights is None or len(lefts) * len(rights) > MAX_TRACKED_VALUES:
        return None
    try:
        return frozenset(function(a, b) for a in lefts for b in rights)
    except (ArithmeticError, TypeError):
        return None


def _example(value: Any) -> Any:
    return value.example if isinstance(value, HostScalar) else value


def _describe(value: Any) -> str:
    if isinstance(value, StagedTensor):
        return "tensor"
    if isinstance(value, HostScalar):
        return f"run-time {value.kind.__name__}"
    if isinstance(value, StagedList):
        return "list of run-time length"
    if isinstance(value, Undefined):
        return "undefined value"
    if isinstance(value, UserFunction):
        return "nested function"
    if isinstance(value, OptionalValue):
        return "value that may be None"
    if value is None:
        return "None"
    return type(value).__name__


def _callable_name(function: Any) -> str:
    if isinstance(function, nn.Module):
        return type(function).__name__
    if isinstance(function, operator.attrgetter):
        return repr(function)
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    return name or repr(function)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


_OPERATOR_SPELLING = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}

_NOT_A_FUNCTION = object()
