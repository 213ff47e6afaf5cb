"""Staging tensor code: recording calls into the current stretch and importing it.

Every tensor operation runs eagerly on example tensors (shape propagation: each staged
tensor knows its shape and dtype) and is recorded in the current `Stretch`. At a
control-flow point `flush` imports the stretch through torch-mlir and splices it into the
current block; weights and compile-time tensors reach it as `dy.param`s. See
`frontends.torch.stretch` for the replay and the import themselves.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

import torch
from xdsl.ir import Block, SSAValue

from frontends.torch.errors import UnsupportedError
from frontends.torch.stretch import (
    ImportFailure,
    LiveIn,
    Pending,
    SpliceMismatch,
    Stretch,
    example_layouts,
    import_stretch,
    splice,
    structure_key,
)
from frontends.torch.values import (
    HostScalar,
    StagedList,
    StagedTensor,
    element_type,
    tensor_type,
)
from ir import dy
from ir.torch import ValueTensorType

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def flush(cx: Converter) -> None:
    """Import the current stretch (if it produced anything still reachable) into the
    current block and give its reachable tensors their SSA values."""
    stretch = cx.stretch
    cx.stretch = Stretch()
    outputs = stretch.reachable_outputs()
    if not stretch.calls or not outputs:
        return
    refs: list = []
    for handle in outputs:
        if handle.value.ref not in refs:
            refs.append(handle.value.ref)
    key = structure_key(stretch, refs)
    exact = None if key is None else (key, example_layouts(stretch))
    imported = cx.imports.get(exact) if exact is not None else None
    if imported is None and key is not None:
        candidate = cx.imports.get(key)
        if candidate is not None and candidate.holds_for(stretch, refs):
            imported = candidate
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
        cx.imports.setdefault(key, imported)
        cx.imports[exact] = imported
    if dy.SIZE_ONE_CHECKS_ATTR in imported.function.attributes:
        cx.checks_size_one = True
    # splice() consumes the body: a memoised import is spliced as a copy.
    function = imported.function.clone() if key is not None else imported.function
    arguments = [live_in.value for live_in in stretch.live_ins]

    def make_param(index: int, type_: Any) -> SSAValue:
        key = stretch.live_ins[index].param_key
        assert key is not None
        return param_value(cx, key, type_, None)

    saved_node = cx.node
    try:
        results = splice(function, cx.block, arguments, make_param, stretch.location)
    except SpliceMismatch as error:
        raise UnsupportedError(
            stretch.location.filename.data, stretch.location.line.data, "tensor code", str(error)
        ) from None
    cx.node = saved_node
    for handle in outputs:
        handle.value = results[refs.index(handle.value.ref)]


def ref_of(cx: Converter, handle: StagedTensor, node: ast.AST) -> Any:
    """The replay-local name of a staged tensor in the current stretch (a live-in when it
    was computed before the stretch)."""
    value = handle.value
    if isinstance(value, Pending):
        assert value.stretch is cx.stretch, "a pending tensor outlived its stretch"
        return value.ref
    return cx.stretch.live_in(value, LiveIn(value, None, handle.example))


def constant_ref(cx: Converter, tensor: torch.Tensor) -> Any:
    key = constant_key(cx, tensor)
    return cx.stretch.live_in(("param", key), LiveIn(None, key, tensor.detach()))


def mark_mutated(cx: Converter, handle: StagedTensor) -> None:
    """A call updated `handle` in place: from now on it is the stretch's copy of it."""
    value = handle.value
    if isinstance(value, Pending):
        return
    ref = cx.stretch.live_in(value, LiveIn(value, None, handle.example))
    cx.stretch.mutated_live_ins.add(ref[1])
    cx.mutations.append((handle, value))
    handle.value = Pending(cx.stretch, ref)
    cx.stretch.track(handle)


def undo_mutations(cx: Converter, mark: int) -> None:
    """Give the handles updated since `mark` their earlier values back (when the evaluator
    leaves an arm of a branch, or abandons an attempt)."""
    while len(cx.mutations) > mark:
        handle, value = cx.mutations.pop()
        if isinstance(handle, StagedList):
            handle.value, handle.observed_element = value
        else:
            handle.value = value


def tensor_type_of(cx: Converter, value: StagedTensor | torch.Tensor) -> ValueTensorType:
    if isinstance(value, torch.Tensor):
        return tensor_type(value)
    if isinstance(value.value, Pending):
        flush(cx)
    assert isinstance(value.value, SSAValue)
    result = value.value.type
    assert isinstance(result, ValueTensorType)
    return result


def tensor_value(cx: Converter, value: StagedTensor | torch.Tensor, node: ast.AST) -> SSAValue:
    """The SSA value of a staged tensor (importing its stretch if needed), or of a
    compile-time tensor as a `dy.param` constant."""
    if isinstance(value, StagedTensor):
        if isinstance(value.value, Pending):
            flush(cx)
        return value.value
    return constant_value(cx, value, node)


def constant_value(cx: Converter, tensor: torch.Tensor, node: ast.AST) -> SSAValue:
    key = constant_key(cx, tensor)
    return param_value(cx, key, tensor_type(tensor), node)


def constant_key(cx: Converter, tensor: torch.Tensor) -> str:
    """The side-car key of a weight (its state_dict name) or of a compile-time tensor
    (`constant.N`, a new one each time the tensor was updated in place since), storing
    the tensor the first time."""
    key = cx.param_keys.get(id(tensor))
    if key is None:
        known = cx.constants.get(id(tensor))
        if known is None or known[2] != tensor._version:
            known = (f"constant.{cx.constant_count}", tensor, tensor._version)
            cx.constant_count += 1
            cx.constants[id(tensor)] = known
        key = known[0]
    if key not in cx.params:
        cx.params[key] = tensor.detach().clone().contiguous()
    return key


def param_value(cx: Converter, key: str, type_: Any, node: ast.AST | None) -> SSAValue:
    """A `dy.param` reading `key`, shared with an earlier read in this block or one that
    encloses it."""
    block: Block | None = cx.block
    while block is not None:
        cached = cx.param_cache.get((block, key))
        if cached is not None:
            return cached
        parent = block.parent_op()
        block = parent.parent_block() if parent is not None else None
    value = cx.emit(dy.ParamOp(key, type_), node).result
    cx.param_cache[(cx.block, key)] = value
    return value


def promote(cx: Converter, tensor: torch.Tensor, node: ast.AST) -> StagedTensor:
    """A tensor computed at compile time that the program then updates with run-time
    values (`out = torch.zeros(n, 2); out[idx] = logits`) becomes a staged tensor: its
    compile-time value is a constant, every name and container of the frames on the call
    stack that held it holds the staged tensor instead."""
    if id(tensor) in cx.param_keys:
        raise cx.unsupported(
            node, "in-place update", "of a parameter or buffer with values known at run time"
        )
    staged = StagedTensor(constant_value(cx, tensor, node), tensor.detach().clone())
    frame = cx.frame
    while frame is not None:
        for scope in (frame, *_closure_scopes(frame)):
            for name, value in scope.env.items():
                scope.env[name] = _replaced(value, tensor, staged)
        frame = frame.caller
    return staged


def _closure_scopes(frame: Any) -> list:
    scopes = []
    parent = frame.parent
    while parent is not None:
        scopes.append(parent)
        parent = parent.parent
    return scopes


def _replaced(value: Any, old: torch.Tensor, new: StagedTensor) -> Any:
    if value is old:
        return new
    if isinstance(value, list):
        value[:] = [_replaced(item, old, new) for item in value]
    elif isinstance(value, dict):
        for key, item in value.items():
            value[key] = _replaced(item, old, new)
    elif type(value) is tuple:
        return tuple(_replaced(item, old, new) for item in value)
    return value


def scalar_tensor(cx: Converter, scalar: HostScalar, node: ast.AST) -> StagedTensor:
    """A host scalar as a 0-d tensor, for a tensor operation that takes it."""
    dtype = {bool: torch.bool, int: torch.int64, float: torch.get_default_dtype()}[scalar.kind]
    example = torch.tensor(scalar.example, dtype=dtype)
    op = dy.ScalarToTensorOp(scalar.value, ValueTensorType([], element_type(dtype)))
    return StagedTensor(cx.emit(op, node).result, example)
