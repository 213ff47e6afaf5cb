"""The effect facts passes ask (`passes/effects.py`, traits in `ir/effects.py`), and the
regression that motivated them: `dce` deleted a `dy.list_stack` of an empty list, turning
a located run-time error into a result."""

from __future__ import annotations

import pytest
import torch

from ir import dy
from ir.program import ProgramContext, parse_and_verify, print_module
from passes.dead_code_elimination import DeadCodeElimination
from passes.effects import is_pure, is_removable_if_unused, may_exit
from passkit import outcome

T = "!torch.vtensor<[2],f32>"

EMPTY_STACK = f"""
dy.func @forward(%x: {T}) -> ({T}) {{
  %l = dy.list_empty : !dy.list<{T}>
  %s = dy.list_stack %l dim 0 : !dy.list<{T}> -> !torch.vtensor<[?,2],f32>
  dy.return %x : {T}
}}
"""


def test_dce_keeps_a_stack_of_a_possibly_empty_list():
    module = parse_and_verify(EMPTY_STACK, "prog.mlir")
    before = outcome(module, {}, [torch.zeros(2)])
    DeadCodeElimination().apply(ProgramContext(), module)
    assert "dy.list_stack" in print_module(module)
    assert outcome(module, {}, [torch.zeros(2)]) == before
    assert before == ("error", "prog.mlir:4:3: error: 'dy.list_stack' op cannot join an empty list")


BRANCHES = f"""
dy.func @forward(%x: {T}, %c: i1, %n: i64) -> ({T}) {{
  %c0 = arith.constant 0 : i64
  %c1 = arith.constant 1 : i64
  %returns = dy.if %c -> ({T}) {{
    dy.return %x : {T}
  }} else {{
    dy.yield %x : {T}
  }}
  %loop = dy.for %i = %c0 to %n step %c1 iter_args(%h = %x) -> ({T}) {{
    %breaks = dy.if %c -> ({T}) {{
      dy.break %h : {T}
    }} else {{
      dy.yield %h : {T}
    }}
    dy.yield %breaks : {T}
  }}
  %waits = dy.while (%j = %c0) : (i64) -> (i64) {{
    %go = arith.cmpi slt, %j, %n : i64
    dy.condition(%go) %j : i64
  }} do {{
  ^bb0(%k: i64):
    dy.yield %k : i64
  }}
  %e = dy.list_empty : !dy.list<{T}>
  %one = dy.list_append %e, %x : !dy.list<{T}>, {T}
  %stack = dy.list_stack %one dim 0 : !dy.list<{T}> -> !torch.vtensor<[?,2],f32>
  %q = arith.divsi %n, %c1 : i64
  %r = arith.divsi %c1, %n : i64
  dy.return %loop : {T}
}}
"""


@pytest.fixture(scope="module")
def ops():
    module = parse_and_verify(BRANCHES)
    named = {}
    for op in module.walk():
        for result in op.results:
            if result.name_hint:
                named[result.name_hint] = op
    return named


@pytest.mark.parametrize(
    ("name", "exits", "pure"),
    [
        ("returns", True, False),  # a dy.return leaves the function through the branch
        ("breaks", True, False),  # the dy.break leaves the branch for its loop...
        ("loop", False, True),  # ...and lands in the loop: a pure counted loop
        ("waits", False, False),  # no exit, but a dy.while may not end
        ("e", False, True),
        ("stack", False, True),  # a list just appended to is not empty
        ("q", False, True),  # divisor: the constant 1
        ("r", False, False),  # divisor: %n, maybe 0
    ],
)
def test_exits_and_purity(ops, name: str, exits: bool, pure: bool):
    assert may_exit(ops[name]) is exits
    assert is_pure(ops[name]) is pure


def test_terminators_and_symbols_are_never_removable(ops):
    module = ops["loop"].parent_op().parent_op()
    kept = [op for op in module.walk() if isinstance(op, dy.YieldOp | dy.ReturnOp | dy.FuncOp)]
    assert len(kept) == 7  # the func, two dy.returns, four dy.yields
    assert not any(is_removable_if_unused(op) for op in kept)
