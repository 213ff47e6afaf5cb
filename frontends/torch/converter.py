"""The staging partial evaluator: a model's Python source -> a `dy.func` with explicit control flow.

The evaluator walks the AST of `forward` (and of every user method, function and submodule
forward it calls, which it inlines). Values it can compute while compiling stay Python values,
so configuration flags, `self.training`, shapes and the bounds of loops over `ModuleList`s fold
away. Everything that depends on tensor data is staged: tensor calls are recorded into the
current straight-line `Stretch` (`staging`); `.item()`, `bool(t)` and comparisons of host
scalars become `dy.item` and `arith` (`scalars`); a branch or loop on a staged condition
becomes `dy.if` / `dy.while` (`branches`, `loops`), whose paths meet at joins (`joins`).

`Converter` holds the state of one conversion and the three entry points every construct
module goes through: `exec` (statements, `statements`), `eval` (expressions, dispatched by
node type over `expressions`, `operators` and `calls`) and `call` (`calls`). Each construct
module is a set of functions taking the converter as `cx`; none holds state of its own.
"""

from __future__ import annotations

import ast
import json
import sys
import types
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, StringAttr, UnitAttr
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from frontends.torch import calls, expressions, operators, sources, statements
from frontends.torch.attribute_logs import AttributeList, LoggedAppend, check_logs
from frontends.torch.cache import Identity, static_fingerprint
from frontends.torch.constants import FrozenConstants
from frontends.torch.errors import UnsupportedError
from frontends.torch.returns import ReturnPath, emit_returns, record_return
from frontends.torch.state import Arrival, Frame, FunctionSource, InsertionPoint, Join
from frontends.torch.stretch import ImportedStretch, Stretch
from frontends.torch.values import StagedTensor, tensor_type
from ir import dy

EXPRESSIONS = {**expressions.EXPRESSIONS, **operators.EXPRESSIONS, **calls.EXPRESSIONS}
"""The handler of every expression kind the evaluator supports, by AST node type."""


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
        self.constants: dict[int, tuple[str, torch.Tensor, int]] = {}
        """Compile-time tensors stored as `constant.N`: key, tensor, version when stored."""
        self.constant_count = 0
        self.placeholders: dict[str, torch.Tensor] = {}
        self.param_cache: dict[tuple[Block, str], SSAValue] = {}
        self.sources: dict[types.CodeType, FunctionSource] = {}
        self.imports: dict[Hashable, ImportedStretch] = {}
        """torch-mlir imports by `structure_key`: a stretch that repeats another's structure
        (a block of a deep network) reuses its import instead of another torch.export."""
        self.checks_size_one = False
        """Whether an imported stretch asserts that a dynamic size is not 1."""
        self.block = Block()
        self.entry_block = self.block
        self.stretch = Stretch()
        self.reachable = True
        self.arrivals: list[Arrival] = []
        self.mutations: list[tuple[Any, Any]] = []
        self.called_modules: list[int] = []
        """`id` of every leaf module called, in the order the calls were recorded: which
        modules an unrolled iteration ran (`loops.widen_changing_sizes`)."""
        self.loop_depth = 0
        self.frame: Frame | None = None
        self.node: ast.AST | None = None
        self.external_containers: dict[int, set[int]] = {}
        """Per scope (module globals, a module's attributes): the ids of the lists, dicts
        and sets it holds, which `forward` must not update."""
        self.returns: list[ReturnPath] = []
        self.tuple_classes: dict[Attribute, type] = {}
        """The Python class (a named tuple, or tuple) of each list item tuple type seen, to
        rebuild items of lists appended to only in staged loops."""
        self.inputs: list[tuple[int, StagedTensor]] = []
        """The program's tensor inputs: position and the handle `forward` received."""
        self.attribute_lists: dict[int, AttributeList] = {}
        """The list attributes of modules that `forward` read, by id (`attribute_logs`)."""
        self.logged_appends: list[LoggedAppend] = []
        self.frozen_constants = FrozenConstants(self.param_keys)

    # ---------------------------------------------------------------- entry point

    def convert(
        self,
        example_inputs: tuple,
        params_file: str,
        dynamic_dims: Sequence[Collection[int]] = (),
    ) -> ModuleOp:
        """The `dy` module of `forward` on inputs like `example_inputs`; input i has a `?`
        (any size) in each dimension `dynamic_dims[i]` names."""
        forward = sources.without_grad_mode(self.model.forward)
        library_model = not sources.is_user_function(forward)
        if library_model:
            source = sources.library_call_source(type(self.model))
        else:
            source = sources.read_source(self, forward.__func__)
        entry = self.block
        staged_inputs = []
        for position, example in enumerate(example_inputs):
            if not isinstance(example, torch.Tensor):
                if isinstance(static_fingerprint(example), Identity):
                    raise UnsupportedError(
                        source.filename,
                        source.line_offset + source.node.lineno,
                        "forward argument",
                        f"input {position} is a {type(example).__name__}; program inputs "
                        "are tensors, or Python numbers, strings and lists of them "
                        "(compile-time constants)",
                    )
                staged_inputs.append(example)
                continue
            dynamic = dynamic_dims[position] if position < len(dynamic_dims) else ()
            argument = entry.insert_arg(tensor_type(example, dynamic), len(entry.args))
            handle = StagedTensor(argument, example.detach().clone())
            staged_inputs.append(handle)
            self.inputs.append((position, handle))
        if library_model:
            env = {"model": self.model, "inputs": tuple(staged_inputs)}
            frame = Frame(env, {}, source, {})
        else:
            frame = sources.bind_frame(
                self, forward.__func__, (self.model, *staged_inputs), {}, None
            )
        previous_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(previous_limit, 200_000))
        try:
            self.frame = frame
            body = frame.source.node
            self.exec(body.body, lambda: record_return(self, None, body))
            self.frame = frame
            check_logs(self)
            tree, result_types, updated, appended = emit_returns(self)
        finally:
            sys.setrecursionlimit(previous_limit)
        function = dy.FuncOp(
            dy.ENTRY_FUNCTION, [a.type for a in entry.args], result_types, Region(entry)
        )
        function.attributes[dy.RESULT_TREE_ATTR] = StringAttr(tree)
        if updated:
            function.attributes[dy.UPDATED_INPUTS_ATTR] = StringAttr(json.dumps(updated))
        if appended:
            function.attributes[dy.APPENDED_ATTRIBUTES_ATTR] = StringAttr(json.dumps(appended))
        if self.checks_size_one:
            function.attributes[dy.SIZE_ONE_CHECKS_ATTR] = UnitAttr()
        function.location = self.location(source.node)
        module = ModuleOp([function])
        module.attributes[dy.PARAMS_FILE_ATTR] = StringAttr(params_file)
        return module

    def source_files(self) -> list[str]:
        """The files of every function the conversion inlined (what a cached conversion
        depends on beyond the model's attributes and weights)."""
        return sorted({code.co_filename for code in self.sources})

    # ---------------------------------------------------------------- dispatch

    def exec(self, body: list[ast.stmt], k: Callable[[], None]) -> None:
        """Run `body`, then the continuation `k` on every path that falls off its end."""
        statements.run(self, body, k)

    def eval(self, node: ast.expr) -> Any:
        handler = EXPRESSIONS.get(type(node))
        if handler is None:
            raise self.unsupported(node, type(node).__name__, "this expression is not supported")
        return handler(self, node)

    def call(self, function: Any, args: tuple, kwargs: dict, node: ast.AST) -> Any:
        return calls.call(self, function, args, kwargs, node)

    # ---------------------------------------------------------------- insertion point

    @contextmanager
    def at(self, block: Block) -> Iterator[InsertionPoint]:
        """Emit into `block` (with a fresh stretch, reachable) until the `with` ends, then
        return to where the evaluator was."""
        saved = InsertionPoint(self.block, self.stretch, self.reachable)
        self.block, self.stretch, self.reachable = block, Stretch(), True
        try:
            yield saved
        finally:
            self.block, self.stretch, self.reachable = saved.block, saved.stretch, saved.reachable

    def continue_at(self, block: Block, reachable: bool = True) -> None:
        """Go on emitting in `block` (a join's owner: where control continues)."""
        self.block, self.stretch, self.reachable = block, Stretch(), reachable

    def new_join(self, carries_environment: bool) -> Join:
        """A point where the paths that start here meet again, continuing in this block."""
        return Join(
            self.block, self.loop_depth, carries_environment, mutation_mark=len(self.mutations)
        )

    def emit(self, op: Operation, node: ast.AST | None = None) -> Operation:
        op.location = self.location(node if node is not None else self.node)
        self.block.add_op(op)
        return op

    # ---------------------------------------------------------------- diagnostics

    def unsupported(
        self,
        node: ast.AST | None,
        construct: str,
        why: str,
        raised: BaseException | None = None,
    ) -> UnsupportedError:
        frame = self.frame
        if frame is None:
            return UnsupportedError("<model>", 0, construct, why, raised, self.block)
        line = frame.source.line_offset + getattr(node, "lineno", frame.source.node.lineno)
        return UnsupportedError(frame.source.filename, line, construct, why, raised, self.block)

    def location(self, node: ast.AST | None) -> FileLineColLoc:
        frame = self.frame
        assert frame is not None
        line = frame.source.line_offset + getattr(node, "lineno", frame.source.node.lineno)
        column = getattr(node, "col_offset", 0) + 1
        return FileLineColLoc(StringAttr(frame.source.filename), IntAttr(line), IntAttr(column))
