"""Run-time checks that eager PyTorch makes and an imported graph loses.

With `?` dimensions, a check that ATen's kernel makes on sizes (an RNN cell's input and
hidden state must have one batch size) is not in the decomposed graph: broadcasting a batch
of 1 against a batch of 3 computes *something* instead of raising. Where such sizes are
known only at run time, the program tests them on the host and traps with a located
message (`dy.trap`, as Python raises), so it never returns a value where eager raises.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from xdsl.ir import Block, Region

from frontends.torch import scalars, sizes
from frontends.torch.values import HostScalar, StagedTensor, SymSize
from ir import dy

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def trap_if(cx: Converter, condition: HostScalar | bool, message: str, node: ast.AST) -> None:
    """Stop the program with `message` (located at `node`) when `condition` holds."""
    if condition is False:
        return
    if condition is True:
        raise cx.unsupported(node, "run-time check", message)
    location = cx.location(node)
    trap, go_on = Block(), Block()
    trap.add_op(dy.TrapOp(message))
    go_on.add_op(dy.YieldOp())
    for block in (trap, go_on):
        for op in block.ops:
            op.location = location
    cx.emit(dy.IfOp(condition.value, [], Region(trap), Region(go_on)), node)


def check_rnn_cell_batch(cx: Converter, module: nn.Module, args: tuple, node: ast.AST) -> None:
    """`nn.LSTMCell` / `GRUCell` / `RNNCell`: the input's batch size must be each hidden
    state's, which ATen checks and the decomposed cell does not."""
    if not isinstance(module, nn.RNNCellBase) or len(args) < 2:
        return
    states = args[1] if isinstance(args[1], tuple | list) else (args[1],)
    batch = _batch_size(cx, args[0])
    if batch is None:
        return
    for index, state in enumerate(states):
        other = _batch_size(cx, state)
        if other is None or not (isinstance(batch, SymSize) or isinstance(other, SymSize)):
            continue
        differ = scalars.compare_scalars(
            cx, ast.NotEq(), _host(cx, batch, node), _host(cx, other, node), node
        )
        message = (
            f"{type(module).__name__}: input batch size doesn't match hidden{index} batch size"
        )
        trap_if(cx, differ, message, node)


def _batch_size(cx: Converter, value: Any) -> Any:
    if isinstance(value, StagedTensor):
        shape = sizes.shape_of(cx, value)
    elif isinstance(value, torch.Tensor):
        shape = value.shape
    else:
        return None
    return shape[0] if len(shape) == 2 else None


def _host(cx: Converter, size: Any, node: ast.AST) -> Any:
    return scalars.materialize_size(cx, size, node) if isinstance(size, SymSize) else size
