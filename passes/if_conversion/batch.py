"""Map loops to batched tensor code: `torch.stack([f(x[i]) for i in range(N)])` -> `F(x)`.

A loop qualifies when it counts from 0 to the constant N by 1, carries only a list that
starts empty, appends exactly one value per iteration, and its result is only stacked
along dim 0; and when every op of its body (and of the straight-line functions it calls)
has a batched form below. Values that depend on the row ("varying") get a leading batch
dimension; host scalars become [N] tensors (i1 -> i1, i64 -> si64, f64 -> f64). Values that
do not depend on the row are hoisted in front of the loop. Anything else leaves the loop as
it is.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects import arith
from xdsl.dialects.builtin import FloatAttr, IntegerAttr, ModuleOp, f64, i1, i64
from xdsl.ir import Block, BlockArgument, Operation, SSAValue
from xdsl.rewriter import Rewriter

from ir import dy
from ir.canonicalization import constant_int
from ir.torch import ValueTensorType
from ir.torch_build import SI64, TorchBuilder, dtype_of, shape_of, tensor_type
from passes.effects import is_pure
from passes.if_conversion.conjunctions import rewrite_conjunctions
from passes.if_conversion.speculation import (
    ELEMENTWISE_TORCH_OPS,
    constant_torch_int,
    speculatable,
)

_HOST_TO_DTYPE = {i1: i1, i64: SI64, f64: f64}
_CMPF_TO_TORCH = {"ogt": "gt", "oge": "ge", "olt": "lt", "ole": "le", "oeq": "eq", "une": "ne"}
_CMPF_FLIPPED = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge", "eq": "eq", "ne": "ne"}
_LOGIC = {arith.AndIOp: "logical_and", arith.OrIOp: "logical_or", arith.XOrIOp: "logical_xor"}


class _NotBatchable(Exception):
    """The loop has an op without a batched form; it stays a loop."""


def batch_map_loops(module: ModuleOp, max_elements: int, conjunctions: str) -> bool:
    """Batches every map loop, innermost first (an outer loop can qualify once its inner
    loop is batched); whether any was."""
    functions = {f.sym_name.data: f for f in module.ops if isinstance(f, dy.FuncOp)}
    inlined: set[str] = set()
    batched = False
    for function in list(functions.values()):
        for loop in reversed([op for op in function.walk() if isinstance(op, dy.ForOp)]):
            try:
                batcher = _Batcher(loop, functions, max_elements)
                batcher.run()
            except _NotBatchable:
                continue
            batched = True
            inlined |= batcher.called
            rewrite_conjunctions(batcher.created, conjunctions)
    called = {call.callee.root_reference.data for call in module.walk() if isinstance(call, dy.CallOp)}
    for name in inlined - called - {dy.ENTRY_FUNCTION}:
        Rewriter.erase_op(functions[name])
    return bool(inlined) or batched


class _Batcher:
    def __init__(self, loop: dy.ForOp, functions: dict[str, dy.FuncOp], max_elements: int):
        self.loop = loop
        self.functions = functions
        self.max_elements = max_elements
        self.batched: dict[SSAValue, SSAValue] = {}
        """Varying per-row value -> its batched value."""
        self.uniform: dict[SSAValue, SSAValue] = {}
        """A value inside the loop that does not vary -> its hoisted copy."""
        self.created: list[Operation] = []
        self.called: set[str] = set()
        self.active_calls: list[str] = []
        self.pending: list[Operation] = []
        self.index_tensor: SSAValue | None = None
        self.index_int: SSAValue | None = None
        self.rows = 0

    # ------------------------------------------------------------------ driver

    def run(self) -> None:
        loop = self.loop
        if constant_int(loop.lb) != 0 or constant_int(loop.step) != 1 or len(loop.inits) != 1:
            raise _NotBatchable
        self.rows = constant_int(loop.ub) or 0
        init = loop.inits[0].owner
        if self.rows < 1 or not isinstance(init, dy.ListEmptyOp):
            raise _NotBatchable
        stacks = [use.operation for use in loop.res[0].uses]
        if not stacks or not all(isinstance(s, dy.ListStackOp) and s.dim.value.data == 0 for s in stacks):
            raise _NotBatchable
        body = loop.body.block
        induction, carried = body.args
        terminator = body.last_op
        if len(list(carried.uses)) != 1 or not isinstance(terminator, dy.YieldOp):
            raise _NotBatchable
        append = next(iter(carried.uses)).operation
        if (
            not isinstance(append, dy.ListAppendOp)
            or append.next_op is not terminator
            or terminator.operands[0] is not append.result
            or not self_contained_list(loop)
        ):
            raise _NotBatchable
        self.induction = induction
        self.lift_block(body, {}, stop=append)
        result = self.varying(append.item)
        for stack in stacks:
            if stack.result.type != result.type:
                raise _NotBatchable
        self.commit(stacks, result)

    def commit(self, stacks: list[dy.ListStackOp], result: SSAValue) -> None:
        block = self.loop.parent_block()
        for op in _host_ops_first(self.pending):
            if not op.operands and not dy.is_torch_op(op):  # host constants: out of the tensor run
                block.insert_op_before(op, block.first_op)
            else:
                block.insert_op_before(op, self.loop)
        for stack in stacks:
            stack.result.replace_all_uses_with(result)
            Rewriter.erase_op(stack)
        for op in reversed(self.pending):  # hoisted copies nothing batched needed
            if op is not result.owner and not any(r.uses for r in op.results):
                Rewriter.erase_op(op)
        init = self.loop.inits[0].owner
        bounds = [v.owner for v in (self.loop.lb, self.loop.ub, self.loop.step)]
        Rewriter.erase_op(self.loop, safe_erase=False)
        for op in dict.fromkeys([init, *bounds]):
            if op.parent is not None and not any(result.uses for result in op.results):
                Rewriter.erase_op(op)

    def emit(self, op: Operation) -> None:
        op.location = self.location
        self.pending.append(op)
        self.created.append(op)

    @property
    def torch(self) -> TorchBuilder:
        return TorchBuilder(self.emit, None)

    # ------------------------------------------------------------------ values

    def is_varying(self, value: SSAValue, env: dict) -> bool:
        value = env.get(value, value)
        return value in self.batched or value is self.induction or value in (
            self.index_tensor, self.index_int
        )

    def varying(self, value: SSAValue) -> SSAValue:
        if value not in self.batched:
            raise _NotBatchable
        return self.batched[value]

    def outside(self, value: SSAValue) -> SSAValue:
        """A value that does not vary, as seen in front of the loop."""
        if value in self.uniform:
            return self.uniform[value]
        if _defined_inside(value, self.loop):
            raise _NotBatchable
        return value

    def as_tensor(self, value: SSAValue, env: dict) -> SSAValue:
        """A varying value's batched tensor, or a uniform host scalar as a 0-d tensor."""
        value = env.get(value, value)
        if value in self.batched:
            return self.batched[value]
        uniform = self.outside(value)
        if uniform.type not in _HOST_TO_DTYPE:
            if isinstance(uniform.type, ValueTensorType):
                return uniform
            raise _NotBatchable
        owner = uniform.owner
        if isinstance(owner, arith.ConstantOp):
            constant = owner.value.value.data
            return self.torch.literal(np.array(constant), _HOST_TO_DTYPE[uniform.type])
        op = dy.ScalarToTensorOp(uniform, ValueTensorType([], _HOST_TO_DTYPE[uniform.type]))
        op.location = self.location
        self.pending.append(op)
        return op.result

    # ------------------------------------------------------------------ ops

    def lift_block(self, block: Block, env: dict[SSAValue, SSAValue], stop: Operation | None):
        for op in block.ops:
            if op is stop or op is block.last_op:
                return op
            self.location = op.location
            self.lift(op, env)
        return block.last_op

    def lift(self, op: Operation, env: dict[SSAValue, SSAValue]) -> None:
        operands = [env.get(v, v) for v in op.operands]
        if isinstance(op, dy.CallOp):
            self.inline(op, operands, env)
            return
        if not is_pure(op):  # every row runs it anyway: batching reorders, it does not speculate
            raise _NotBatchable
        if not any(self.is_varying(v, env) for v in operands):
            if not speculatable(op, self.max_elements):  # it now runs before the loop body
                raise _NotBatchable
            self.hoist(op, operands)
            return
        results = self.batched_form(op, operands, env)
        for result, batched in zip(op.results, results, strict=False):
            self.batched[result] = batched

    def hoist(self, op: Operation, operands: list[SSAValue]) -> None:
        mapping = {old: self.outside(new) for old, new in zip(op.operands, operands)}
        clone = op.clone(value_mapper=mapping)
        clone.location = op.location
        self.pending.append(clone)
        for result, copied in zip(op.results, clone.results):
            self.uniform[result] = copied

    def inline(self, call: dy.CallOp, operands: list[SSAValue], env: dict) -> None:
        callee = self.functions.get(call.callee.root_reference.data)
        if callee is None or callee.sym_name.data in self.active_calls:
            raise _NotBatchable
        body = callee.body.block
        if any(op.regions for op in body.ops):
            raise _NotBatchable
        self.active_calls.append(callee.sym_name.data)
        inner_env = dict(zip(body.args, operands))
        returned = self.lift_block(body, inner_env, stop=None)
        self.active_calls.pop()
        self.called.add(callee.sym_name.data)
        for result, value in zip(call.res, returned.operands):
            value = inner_env.get(value, value)
            if value in self.batched:
                self.batched[result] = self.batched[value]
            else:
                self.uniform[result] = self.outside(value)

    def batched_form(self, op: Operation, operands: list[SSAValue], env: dict) -> list[SSAValue]:
        if isinstance(op, dy.ScalarToTensorOp):
            if operands[0] is self.induction:
                self.index_tensor = op.result
                return []
            value = self.varying(operands[0])
            return [self.convert(value, op.result.type.element_type)]
        if dy.is_torch_op(op):
            return self.torch_form(op, operands, env)
        if isinstance(op, dy.ItemOp):
            value = self.varying(operands[0])
            if shape_of(value)[1:] not in ((), (1,)):
                raise _NotBatchable
            flat = value if len(shape_of(value)) == 1 else self.torch.select(value, 1, 0)
            return [self.convert(flat, _HOST_TO_DTYPE[op.result.type])]
        if type(op) in _LOGIC:
            return [self.logic(op, operands, env)]
        if isinstance(op, arith.CmpfOp):
            return [self.compare(op, operands, env)]
        if isinstance(op, arith.SelectOp):
            condition, if_true, if_false = (self.as_tensor(v, env) for v in operands)
            return [self.torch.where(condition, if_true, if_false)]
        raise _NotBatchable

    def convert(self, value: SSAValue, dtype) -> SSAValue:
        return value if dtype_of(value) == dtype else self.torch.to_dtype(value, dtype)

    def torch_form(self, op: Operation, operands: list[SSAValue], env: dict) -> SSAValue:
        name = dy.op_name(op)
        if name == "torch.aten.Int.Tensor" and operands[0] is self.index_tensor:
            self.index_int = op.results[0]
            return []
        if name == "torch.aten.select.int":
            return [self.select(op, operands, env)]
        if name not in ELEMENTWISE_TORCH_OPS:
            raise _NotBatchable
        varying = [self.is_varying(v, env) for v in operands]
        values = [self.varying(v) if vary else self.outside(v) for v, vary in zip(operands, varying)]
        per_row = {len(shape_of(v)) - 1 for v, vary in zip(values, varying) if vary}
        uniform_ranks = [
            len(shape_of(v)) for v, vary in zip(values, varying)
            if not vary and isinstance(v.type, ValueTensorType)
        ]
        if len(per_row) != 1 or any(rank > min(per_row) for rank in uniform_ranks):
            raise _NotBatchable
        result_type = op.results[0].type
        batched_type = tensor_type([self.rows, *result_type.shape], result_type.element_type)
        attributes = {k: v for k, v in op.attributes.items() if k != "op_name__"}
        return [self.torch.op(name, values, batched_type, attributes)]

    def select(self, op: Operation, operands: list[SSAValue], env: dict) -> SSAValue:
        tensor, dim, index = operands
        if index is self.index_int and not self.is_varying(tensor, env):
            whole = self.outside(tensor)
            if constant_torch_int(dim) != 0 or shape_of(whole)[0] != self.rows:
                raise _NotBatchable
            self.batched[op.results[0]] = whole
            return whole
        dim_value, index_value = constant_torch_int(dim), constant_torch_int(index)
        if dim_value is None or index_value is None or not self.is_varying(tensor, env):
            raise _NotBatchable
        per_row = self.varying(tensor)
        rank = len(shape_of(per_row)) - 1
        if rank < 1:
            raise _NotBatchable
        return self.torch.select(per_row, dim_value % rank + 1, index_value)

    def logic(self, op: Operation, operands: list[SSAValue], env: dict) -> SSAValue:
        left, right = operands
        if not self.is_varying(left, env):
            left, right = right, left
        constant = None if self.is_varying(right, env) else _constant_bool(self.outside(right))
        tensor = self.varying(left)
        name = _LOGIC[type(op)]
        if constant is not None:
            if name == "logical_xor":
                return self.torch.unary("logical_not", tensor) if constant else tensor
            if (name == "logical_and") == constant:
                return tensor
        return self.torch.binary(name, tensor, self.as_tensor(right, env), i1)

    def compare(self, op: arith.CmpfOp, operands: list[SSAValue], env: dict) -> SSAValue:
        name = _CMPF_TO_TORCH.get(_predicate_name(op))
        if name is None:
            raise _NotBatchable
        left, right = operands
        if not self.is_varying(left, env):
            left, right, name = right, left, _CMPF_FLIPPED[name]
        tensor = self.varying(left)
        if not self.is_varying(right, env):
            owner = self.outside(right).owner
            if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, FloatAttr):
                return self.torch.compare_scalar(name, tensor, owner.value.value.data)
        return self.torch.binary(f"{name}.Tensor", tensor, self.as_tensor(right, env), i1)


def _predicate_name(op: arith.CmpfOp) -> str:
    names = ("false", "oeq", "ogt", "oge", "olt", "ole", "one", "ord",
             "ueq", "ugt", "uge", "ult", "ule", "une", "uno", "true")
    return names[op.predicate.value.data]


def _constant_bool(value: SSAValue) -> bool | None:
    owner = value.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr) and value.type == i1:
        return bool(owner.value.value.data)
    return None


def _host_ops_first(ops: list[Operation]) -> list[Operation]:
    """``ops`` with the host ops that need no tensor op of the list moved to the front, so
    the tensor ops form one run (one sub-graph after outlining)."""
    tensor_side: set[Operation] = set()
    for op in ops:
        if dy.is_torch_op(op) or any(v.owner in tensor_side for v in op.operands):
            tensor_side.add(op)
    return [op for op in ops if op not in tensor_side] + [op for op in ops if op in tensor_side]


def self_contained_list(loop: dy.ForOp) -> bool:
    """The carried list is only appended to (no length, no reads inside the loop)."""
    carried = loop.body.block.args[1]
    return all(isinstance(use.operation, dy.ListAppendOp) for use in carried.uses)


def _defined_inside(value: SSAValue, loop: Operation) -> bool:
    owner = value.owner
    parent = owner.parent_op() if isinstance(value, BlockArgument) else owner
    while parent is not None:
        if parent is loop:
            return True
        parent = parent.parent_op()
    return False
