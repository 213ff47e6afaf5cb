"""The reference interpreter: runs any verified program with eager PyTorch.

It is the semantic oracle of the project: every pass must leave what it computes unchanged,
and every backend must agree with it. For speed it is a closure compiler: each op becomes a
Python function over an environment once, at load time, so running a program costs one
call per op and no IR inspection. The host runtime of the compiled backend is this same
interpreter with `dy.call`s of sub-graphs bound to compiled kernels (`graph_runner`).

Regions report how they ended as a `Signal`: fall-through `dy.yield`, or `dy.break`,
`dy.continue` and `dy.return`, which enclosing branches propagate until the loop or the
function that they target consumes them.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from xdsl.dialects import arith
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, SSAValue

from ir import dy
from ir.program import IRError, error_at
from ir.torch import ValueTensorType
from runtime.torch_ops import (
    UnsupportedTorchOp,
    python_value_of,
    torch_dtype_of,
    torch_op_function,
)

YIELD, BREAK, CONTINUE, RETURN, CONDITION = range(5)

Signal = tuple[int, tuple[Any, ...]]
"""How a region ended (one of YIELD..CONDITION) and the values its terminator carried."""

Environment = dict[int, Any]
"""Values by the slot of their SSA value (:func:`_slot`): an int hashes in C, where xDSL's
`SSAValue.__hash__` is a Python call, 6,500 of them per call of a beam search."""
Step = Callable[[Environment], Signal | None]
"""One compiled op: updates the environment; returns a signal only to leave the region."""

GraphRunner = Callable[[dy.GraphOp], Callable[..., Sequence[Any]]]
"""Makes the callable that executes one sub-graph (eagerly, or as compiled code)."""

RegionKey = tuple[Operation, int]
"""A region of a control-flow op: the op and the region's index in it."""


class ExecutionError(IRError):
    """A failure while running a program (bad input, missing parameter, failing op)."""


def _located(op: Operation, message: str) -> ExecutionError:
    error = error_at(op, message)
    return ExecutionError(error.filename, error.line, error.column, error.message)


_CMPI: dict[int, Callable[[Any, Any], bool]] = {
    0: operator.eq,
    1: operator.ne,
    2: operator.lt,
    3: operator.le,
    4: operator.gt,
    5: operator.ge,
}


def _ordered(compare: Callable[[float, float], bool]) -> Callable[[float, float], bool]:
    return lambda a, b: not (math.isnan(a) or math.isnan(b)) and compare(a, b)


def _unordered(compare: Callable[[float, float], bool]) -> Callable[[float, float], bool]:
    return lambda a, b: math.isnan(a) or math.isnan(b) or compare(a, b)


_CMPF: dict[int, Callable[[float, float], bool]] = {
    0: lambda a, b: False,
    1: _ordered(operator.eq),
    2: _ordered(operator.gt),
    3: _ordered(operator.ge),
    4: _ordered(operator.lt),
    5: _ordered(operator.le),
    6: _ordered(operator.ne),
    7: lambda a, b: not (math.isnan(a) or math.isnan(b)),
    8: _unordered(operator.eq),
    9: _unordered(operator.gt),
    10: _unordered(operator.ge),
    11: _unordered(operator.lt),
    12: _unordered(operator.le),
    13: _unordered(operator.ne),
    14: lambda a, b: math.isnan(a) or math.isnan(b),
    15: lambda a, b: True,
}


def _ieee_divide(a: float, b: float) -> float:
    """Float division as `arith.divf` defines it: no exception on a zero divisor."""
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _truncating_div(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


_ARITH_BINARY: dict[type[Operation], Callable[[Any, Any], Any]] = {
    arith.AddiOp: operator.add,
    arith.SubiOp: operator.sub,
    arith.MuliOp: operator.mul,
    arith.DivSIOp: _truncating_div,
    arith.RemSIOp: lambda a, b: a - b * _truncating_div(a, b),
    arith.FloorDivSIOp: operator.floordiv,
    arith.MaxSIOp: max,
    arith.MinSIOp: min,
    arith.AddfOp: operator.add,
    arith.SubfOp: operator.sub,
    arith.MulfOp: operator.mul,
    arith.DivfOp: lambda a, b: _ieee_divide(a, b),
    arith.MaximumfOp: lambda a, b: math.nan if math.isnan(a) or math.isnan(b) else max(a, b),
    arith.MinimumfOp: lambda a, b: math.nan if math.isnan(a) or math.isnan(b) else min(a, b),
    arith.AndIOp: lambda a, b: a & b,
    arith.OrIOp: lambda a, b: a | b,
    arith.XOrIOp: lambda a, b: a ^ b,
}

_ARITH_UNARY: dict[type[Operation], Callable[[Any], Any]] = {
    arith.NegfOp: operator.neg,
    arith.SIToFPOp: float,
    arith.UIToFPOp: float,
    arith.FPToSIOp: lambda a: int(a),
    arith.ExtUIOp: int,
    arith.ExtSIOp: lambda a: -1 if a is True else int(a),
    arith.TruncIOp: lambda a: bool(a & 1),
}


def _scalar_of_item(tensor: torch.Tensor) -> Any:
    value = tensor.item()
    return float(value) if isinstance(value, float) else value


class Interpreter:
    """Compiles a module's functions to closures once; `run` executes the entry function."""

    def __init__(
        self,
        module: ModuleOp,
        params: Mapping[str, torch.Tensor],
        *,
        graph_runner: GraphRunner | None = None,
        region_counts: Counter[RegionKey] | None = None,
    ):
        self.module = module
        self.params = params
        self.region_counts = region_counts
        self._symbols = {
            op.sym_name.data: op for op in module.ops if isinstance(op, dy.FuncOp | dy.GraphOp)
        }
        self._graph_runner = graph_runner or self.eager_graph
        self._functions: dict[str, Callable[..., Sequence[Any]]] = {}
        if dy.ENTRY_FUNCTION not in self._symbols:
            raise IRError("<program>", 0, 0, f"no 'dy.func @{dy.ENTRY_FUNCTION}' entry function")
        self.entry = self._symbols[dy.ENTRY_FUNCTION]
        if not isinstance(self.entry, dy.FuncOp):
            raise error_at(self.entry, f"@{dy.ENTRY_FUNCTION} must be a 'dy.func'")
        self._entry_call = self._function(dy.ENTRY_FUNCTION)
        self._input_checks = [_input_check(t) for t in self.entry.arg_types]

    def prepare_all(self) -> None:
        """Compile every function and sub-graph now instead of at its first call, so that
        load-time work (and its errors) happen before the program runs."""
        for name in self._symbols:
            self._function(name)

    def run(self, *inputs: Any) -> list[Any]:
        """Run the entry function on inputs checked against its signature."""
        self._check_inputs(inputs)
        return list(self._entry_call(*inputs))

    def _check_inputs(self, inputs: Sequence[Any]) -> None:
        expected = self.entry.arg_types
        if len(inputs) != len(expected):
            raise _located(self.entry, f"expects {len(expected)} inputs, got {len(inputs)}")
        for index, (value, check) in enumerate(zip(inputs, self._input_checks)):
            problem = check(value)
            if problem:
                raise _located(self.entry, f"input #{index}: {problem}")

    # ------------------------------------------------------------------ functions

    def _function(self, name: str) -> Callable[..., Sequence[Any]]:
        if name not in self._functions:
            target = self._symbols[name]
            if isinstance(target, dy.GraphOp):
                self._functions[name] = self._graph_runner(target)
            else:
                self._functions[name] = self._host_function(target)
        return self._functions[name]

    def _host_function(self, func: dy.FuncOp) -> Callable[..., Sequence[Any]]:
        block = func.body.block
        run_body = self._block(block)

        arguments = _slots(block.args)

        def call(*args: Any) -> Sequence[Any]:
            env: Environment = dict(zip(arguments, args))
            return run_body(env)[1]

        return call

    def eager_graph(self, graph: dy.GraphOp) -> Callable[..., Sequence[Any]]:
        """Executes a sub-graph op by op with eager PyTorch."""
        block = graph.body.block
        run_body = self._block(block)
        arguments = _slots(block.args)

        def call(*args: Any) -> Sequence[Any]:
            env: Environment = dict(zip(arguments, args))
            return run_body(env)[1]

        return call

    # ------------------------------------------------------------ regions and ops

    def _block(self, block: Block) -> Callable[[Environment], Signal]:
        *body, terminator = block.ops
        steps = [self._step(op) for op in body]
        finish = self._terminator(terminator)

        def run(env: Environment) -> Signal:
            for step in steps:
                signal = step(env)
                if signal is not None:
                    return signal
            return finish(env)

        return run

    def _region(self, op: Operation, index: int) -> Callable[[Environment], Signal]:
        run_block = self._block(op.regions[index].block)
        counts = self.region_counts
        if counts is None:
            return run_block
        key = (op, index)

        def run_counted(env: Environment) -> Signal:
            counts[key] += 1
            return run_block(env)

        return run_counted

    def _terminator(self, op: Operation) -> Callable[[Environment], Signal]:
        if isinstance(op, dy.TrapOp):
            message = op.message.data

            def trap(env: Environment) -> Signal:
                raise _located(op, message)

            return trap
        kind = {
            dy.YieldOp: YIELD,
            dy.BreakOp: BREAK,
            dy.ContinueOp: CONTINUE,
            dy.ReturnOp: RETURN,
            dy.OutputOp: RETURN,
            dy.ConditionOp: CONDITION,
        }.get(type(op))
        if kind is None:
            raise _located(op, "is not a region terminator the interpreter knows")
        operands = _slots(op.operands)
        return lambda env: (kind, tuple(env[v] for v in operands))

    def _step(self, op: Operation) -> Step:
        try:
            return self._compile_op(op)
        except UnsupportedTorchOp as error:
            raise _located(op, f"cannot be executed: {error}") from None

    def _compile_op(self, op: Operation) -> Step:
        if dy.is_torch_op(op):
            return self._torch_step(op)
        handler = _OP_COMPILERS.get(type(op))
        if handler is not None:
            return handler(self, op)
        if type(op) in _ARITH_BINARY:
            return _scalar_step(op, _ARITH_BINARY[type(op)])
        if type(op) in _ARITH_UNARY:
            return _scalar_step(op, _ARITH_UNARY[type(op)])
        raise _located(op, "is not supported by the interpreter")

    def _torch_step(self, op: Operation) -> Step:
        function = torch_op_function(op)
        operands = _slots(op.operands)
        results = _slots(op.results)

        if len(results) == 1:
            (result,) = results

            def run_one(env: Environment) -> None:
                try:
                    env[result] = function([env[v] for v in operands])
                except (RuntimeError, TypeError, ValueError, IndexError) as error:
                    raise _located(op, f"failed: {_first_line(error)}") from None

            return run_one

        def run_many(env: Environment) -> None:
            try:
                values = function([env[v] for v in operands])
            except (RuntimeError, TypeError, ValueError, IndexError) as error:
                raise _located(op, f"failed: {_first_line(error)}") from None
            env.update(zip(results, values, strict=True))

        return run_many

    def _call(self, op: dy.CallOp) -> Step:
        callee = op.callee.root_reference.data
        operands = _slots(op.arguments)
        results = _slots(op.res)
        resolved: list[Callable[..., Sequence[Any]]] = []

        def run(env: Environment) -> None:
            if not resolved:
                resolved.append(self._function(callee))
            values = resolved[0](*[env[v] for v in operands])
            env.update(zip(results, values))

        return run

    def _if(self, op: dy.IfOp) -> Step:
        then_region = self._region(op, 0)
        else_region = self._region(op, 1)
        cond = _slot(op.cond)
        results = _slots(op.res)

        def run(env: Environment) -> Signal | None:
            kind, values = (then_region if env[cond] else else_region)(env)
            if kind != YIELD:
                return kind, values
            env.update(zip(results, values))
            return None

        return run

    def _switch(self, op: dy.SwitchOp) -> Step:
        default_region = self._region(op, 0)
        cases = {value: self._region(op, 1 + i) for i, value in enumerate(op.case_values)}
        selector = _slot(op.selector)
        results = _slots(op.res)

        def run(env: Environment) -> Signal | None:
            kind, values = cases.get(env[selector], default_region)(env)
            if kind != YIELD:
                return kind, values
            env.update(zip(results, values))
            return None

        return run

    def _for(self, op: dy.ForOp) -> Step:
        body = self._region(op, 0)
        induction_variable, *carried_args = _slots(op.body.block.args)
        bounds = _slots((op.lb, op.ub, op.step))
        inits = _slots(op.inits)
        results = _slots(op.res)

        def run(env: Environment) -> Signal | None:
            lower, upper, step = (env[v] for v in bounds)
            if step <= 0:
                raise _located(op, f"step must be positive, got {step}")
            carried = tuple(env[v] for v in inits)
            for index in range(lower, upper, step):
                env[induction_variable] = index
                env.update(zip(carried_args, carried))
                kind, values = body(env)
                if kind == BREAK:
                    carried = values
                    break
                if kind == RETURN:
                    return kind, values
                carried = values
            env.update(zip(results, carried))
            return None

        return run

    def _while(self, op: dy.WhileOp) -> Step:
        before = self._region(op, 0)
        after = self._region(op, 1)
        before_args = _slots(op.before_region.block.args)
        after_args = _slots(op.after_region.block.args)
        inits = _slots(op.inits)
        results = _slots(op.res)

        def run(env: Environment) -> Signal | None:
            carried = tuple(env[v] for v in inits)
            while True:
                env.update(zip(before_args, carried))
                kind, values = before(env)
                if kind == RETURN:
                    return kind, values
                flag, *forwarded = values
                if not flag:
                    exit_values = forwarded
                    break
                env.update(zip(after_args, forwarded))
                kind, values = after(env)
                if kind == BREAK:
                    exit_values = values
                    break
                if kind == RETURN:
                    return kind, values
                carried = values
            env.update(zip(results, exit_values))
            return None

        return run

    def _param(self, op: dy.ParamOp) -> Step:
        key = op.key.data
        if key not in self.params:
            raise _located(op, f"parameter '{key}' is not in the parameter file")
        tensor = self.params[key]
        problem = _mismatch(tensor, op.result.type)
        if problem:
            raise _located(op, f"parameter '{key}': {problem}")
        result = _slot(op.result)

        def run(env: Environment) -> None:
            env[result] = tensor

        return run

    def _item(self, op: dy.ItemOp) -> Step:
        tensor, result = _slots((op.tensor, op.result))

        def run(env: Environment) -> None:
            value = env[tensor]
            if value.numel() != 1:
                raise _located(
                    op, f"needs a tensor with one element, got shape {tuple(value.shape)}"
                )
            env[result] = _scalar_of_item(value)

        return run

    def _dim(self, op: dy.DimOp) -> Step:
        (tensor, result), index = _slots((op.tensor, op.result)), op.index.value.data

        def run(env: Environment) -> None:
            env[result] = env[tensor].shape[index]

        return run

    def _scalar_to_tensor(self, op: dy.ScalarToTensorOp) -> Step:
        assert isinstance(op.result.type, ValueTensorType)
        dtype = torch_dtype_of(op.result.type)
        scalar, result = _slots((op.scalar, op.result))

        def run(env: Environment) -> None:
            env[result] = torch.tensor(env[scalar], dtype=dtype)

        return run

    def _constant(self, op: arith.ConstantOp) -> Step:
        value = python_value_of(op.value)
        if isinstance(value, int) and not isinstance(value, bool) and str(op.result.type) == "f64":
            value = float(value)
        result = _slot(op.result)

        def run(env: Environment) -> None:
            env[result] = value

        return run

    def _compare(self, op: arith.CmpiOp | arith.CmpfOp) -> Step:
        table = _CMPI if isinstance(op, arith.CmpiOp) else _CMPF
        predicate = op.predicate.value.data
        if predicate not in table:
            raise _located(op, f"predicate {predicate} is not supported")
        return _scalar_step(op, table[predicate])

    def _select(self, op: arith.SelectOp) -> Step:
        cond, if_true, if_false, result = _slots((op.cond, op.lhs, op.rhs, op.result))

        def run(env: Environment) -> None:
            env[result] = env[if_true] if env[cond] else env[if_false]

        return run

    def _list_empty(self, op: dy.ListEmptyOp) -> Step:
        result = _slot(op.result)
        return lambda env: env.__setitem__(result, ())

    def _list_append(self, op: dy.ListAppendOp) -> Step:
        items, item, result = _slots((op.list, op.item, op.result))
        return lambda env: env.__setitem__(result, env[items] + (env[item],))

    def _list_remove(self, op: dy.ListRemoveOp) -> Step:
        items, index, result = _slots((op.list, op.index, op.result))

        def run(env: Environment) -> None:
            values, position = env[items], env[index]
            if not -len(values) <= position < len(values):
                raise _located(op, f"index {position} is out of range for a list of {len(values)}")
            position %= len(values)
            env[result] = values[:position] + values[position + 1 :]

        return run

    def _list_len(self, op: dy.ListLenOp) -> Step:
        items, result = _slots((op.list, op.result))
        return lambda env: env.__setitem__(result, len(env[items]))

    def _list_get(self, op: dy.ListGetOp) -> Step:
        items, index, result = _slots((op.list, op.index, op.result))

        def run(env: Environment) -> None:
            values, position = env[items], env[index]
            if not -len(values) <= position < len(values):
                raise _located(op, f"index {position} is out of range for a list of {len(values)}")
            env[result] = values[position]

        return run

    def _list_join(self, op: dy.ListStackOp | dy.ListCatOp) -> Step:
        join = torch.stack if isinstance(op, dy.ListStackOp) else torch.cat
        (items, result), dim = _slots((op.list, op.result)), op.dim.value.data

        def run(env: Environment) -> None:
            values = env[items]
            if not values:
                raise _located(op, "cannot join an empty list")
            env[result] = join(values, dim)

        return run

    def _list_set(self, op: dy.ListSetOp) -> Step:
        items, index, item, result = _slots((op.list, op.index, op.item, op.result))

        def run(env: Environment) -> None:
            values, position = env[items], env[index]
            if not -len(values) <= position < len(values):
                raise _located(op, f"index {position} is out of range for a list of {len(values)}")
            position %= len(values)
            env[result] = values[:position] + (env[item],) + values[position + 1 :]

        return run

    def _list_slice(self, op: dy.ListSliceOp) -> Step:
        items, start, stop, result = _slots((op.list, op.start, op.stop, op.result))
        return lambda env: env.__setitem__(result, env[items][env[start] : env[stop]])

    def _list_sort(self, op: dy.ListSortOp) -> Step:
        items, keys, result = _slots((op.list, op.keys, op.result))
        descending = op.descending is not None

        def run(env: Environment) -> None:
            values, order_keys = env[items], env[keys]
            if len(values) != len(order_keys):
                raise _located(
                    op, f"{len(values)} items but {len(order_keys)} keys to sort them by"
                )
            order = sorted(range(len(values)), key=order_keys.__getitem__, reverse=descending)
            env[result] = tuple(values[i] for i in order)

        return run

    def _list_to_tensor(self, op: dy.ListToTensorOp) -> Step:
        assert isinstance(op.result.type, ValueTensorType)
        dtype = torch_dtype_of(op.result.type)
        items, result = _slots((op.list, op.result))

        def run(env: Environment) -> None:
            env[result] = torch.tensor(env[items], dtype=dtype).reshape(-1)

        return run

    def _tuple(self, op: dy.TupleOp) -> Step:
        fields, result = _slots(op.fields), _slot(op.result)
        return lambda env: env.__setitem__(result, tuple(env[f] for f in fields))

    def _tuple_get(self, op: dy.TupleGetOp) -> Step:
        (value, result), index = _slots((op.tuple, op.result)), op.index.value.data
        return lambda env: env.__setitem__(result, env[value][index])


def _slot(value: SSAValue) -> int:
    """The environment key of `value` (its identity: the module outlives the closures)."""
    return id(value)


def _slots(values: Sequence[SSAValue]) -> tuple[int, ...]:
    return tuple(map(id, values))


def _wrap_i64(value: int) -> int:
    """Two's complement wrap-around, as `arith` defines i64 arithmetic."""
    return (value + 2**63) % 2**64 - 2**63


_SCALAR_FAILURES = (ZeroDivisionError, ValueError, OverflowError)
"""What host arithmetic raises where `arith` has undefined behaviour: integer division by
zero, `fptosi` of NaN or an infinity."""


def _scalar_step(op: Operation, function: Callable[..., Any]) -> Step:
    operands = _slots(op.operands)
    convert = {"i1": bool, "i64": _wrap_i64}.get(str(op.results[0].type))
    result = _slot(op.results[0])

    def run(env: Environment) -> None:
        try:
            value = function(*[env[v] for v in operands])
        except _SCALAR_FAILURES as error:
            raise _located(op, f"failed: {type(error).__name__}: {error}") from None
        env[result] = value if convert is None else convert(value)

    return run


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


_SCALAR_KINDS = {"i1": bool, "i64": int, "f64": float}


def _input_check(expected: Any) -> Callable[[Any], str | None]:
    """`_mismatch` against `expected`, with what it reads of the IR type read once: it runs
    on every call of the program (printing the type each time cost more than the call)."""
    if isinstance(expected, ValueTensorType):
        dtype, shape = torch_dtype_of(expected), expected.shape

        def check_tensor(value: Any) -> str | None:
            if (isinstance(value, torch.Tensor) and (dtype is None or value.dtype == dtype)
                    and (shape is None or (len(shape) == value.dim() and all(
                        d in (-1, actual) for d, actual in zip(shape, value.shape))))):
                return None
            return _mismatch(value, expected)

        return check_tensor
    kind = _SCALAR_KINDS.get(str(expected))
    if kind is None:
        return lambda value: None
    accepted = kind if kind is not float else (int, float)
    return lambda value: None if isinstance(value, accepted) else _mismatch(value, expected)


def _mismatch(value: Any, expected: Any) -> str | None:
    """Why `value` cannot stand for a value of IR type `expected`, or None if it can."""
    if isinstance(expected, ValueTensorType):
        if not isinstance(value, torch.Tensor):
            return f"expected a tensor of type {expected}, got {type(value).__name__}"
        dtype = torch_dtype_of(expected)
        if dtype is not None and value.dtype != dtype:
            return f"expected dtype {dtype} ({expected}), got {value.dtype}"
        shape = expected.shape
        if shape is not None and (
            len(shape) != value.dim()
            or any(d not in (-1, actual) for d, actual in zip(shape, value.shape))
        ):
            return f"expected shape {list(shape)} ({expected}), got {list(value.shape)}"
        return None
    kind = _SCALAR_KINDS.get(str(expected))
    if kind is not None and not isinstance(value, kind if kind is not float else (int, float)):
        return f"expected a {kind.__name__} for {expected}, got {type(value).__name__}"
    return None


_OP_COMPILERS: dict[type[Operation], Callable[[Interpreter, Any], Step]] = {
    dy.CallOp: Interpreter._call,
    dy.IfOp: Interpreter._if,
    dy.SwitchOp: Interpreter._switch,
    dy.ForOp: Interpreter._for,
    dy.WhileOp: Interpreter._while,
    dy.ParamOp: Interpreter._param,
    dy.ItemOp: Interpreter._item,
    dy.DimOp: Interpreter._dim,
    dy.ScalarToTensorOp: Interpreter._scalar_to_tensor,
    dy.ListEmptyOp: Interpreter._list_empty,
    dy.ListAppendOp: Interpreter._list_append,
    dy.ListLenOp: Interpreter._list_len,
    dy.ListRemoveOp: Interpreter._list_remove,
    dy.ListGetOp: Interpreter._list_get,
    dy.ListStackOp: Interpreter._list_join,
    dy.ListCatOp: Interpreter._list_join,
    dy.ListSetOp: Interpreter._list_set,
    dy.ListSliceOp: Interpreter._list_slice,
    dy.ListSortOp: Interpreter._list_sort,
    dy.ListToTensorOp: Interpreter._list_to_tensor,
    dy.TupleOp: Interpreter._tuple,
    dy.TupleGetOp: Interpreter._tuple_get,
    arith.ConstantOp: Interpreter._constant,
    arith.CmpiOp: Interpreter._compare,
    arith.CmpfOp: Interpreter._compare,
    arith.SelectOp: Interpreter._select,
}


def run_program(
    module: ModuleOp,
    params: Mapping[str, torch.Tensor],
    inputs: Sequence[Any],
    *,
    region_counts: Counter[RegionKey] | None = None,
) -> list[Any]:
    """Run a verified program's entry function once with eager PyTorch.

    `region_counts`, when given, is incremented for every region entered, keyed by
    (op, region index): what coverage tests read to check every branch ran.
    """
    return Interpreter(module, params, region_counts=region_counts).run(*inputs)


def control_flow_regions(module: ModuleOp) -> list[RegionKey]:
    """Every region of every branch and loop op: the regions coverage must reach."""
    return [
        (op, index)
        for op in module.walk()
        if isinstance(op, dy.IfOp | dy.SwitchOp | dy.ForOp | dy.WhileOp)
        for index in range(len(op.regions))
    ]
