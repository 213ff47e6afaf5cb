"""PyTorch's higher-order control-flow ops, which torch-mlir cannot import: `torch.cond`
becomes `dy.if` over the inlined branch functions, `torch.while_loop` becomes `dy.while`."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from xdsl.ir import Block, Region

from frontends.torch import scalars, staging
from frontends.torch.branches import staged_branch
from frontends.torch.expressions import check_defined
from frontends.torch.joins import arrive
from frontends.torch.plans import (
    CarryPlan,
    Container,
    carry_node,
    collect_carried,
    leaf_type,
    materialize,
    rebuild,
)
from frontends.torch.state import PathEnded
from ir import dy

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def torch_cond(cx: Converter, args: tuple, kwargs: dict, node: ast.AST) -> Any:
    names = ("pred", "true_fn", "false_fn", "operands")
    bound = dict(zip(names, args)) | kwargs
    operands = tuple(bound.get("operands", ()))
    predicate = scalars.truth(cx, bound["pred"], node)
    if isinstance(predicate, bool):
        chosen = bound["true_fn"] if predicate else bound["false_fn"]
        return cx.call(chosen, operands, {}, node)
    join = cx.new_join(carries_environment=False)
    arms = [
        lambda k, f=bound[name]: arrive(cx, join, cx.call(f, operands, {}, node), node)
        for name in ("true_fn", "false_fn")
    ]
    result = staged_branch(cx, predicate, arms, join, lambda: None, node)
    if not cx.reachable:
        raise PathEnded()
    return check_defined(cx, result, node)


def _yield_carried(
    cx: Converter, plan: CarryPlan, carried: tuple, results: Any, node: ast.AST
) -> None:
    """End the body of a `torch.while_loop` with the values `body_fn` returned, which must
    keep the types they entered with."""
    leaves: list = []
    if not isinstance(results, tuple | list) or len(results) != len(carried):
        raise cx.unsupported(
            node, "torch.while_loop", "body_fn must return as many values as carried_inputs"
        )
    collect_carried(cx, list(results), plan.template, leaves, node)
    operands = []
    for value, kind, expected in zip(leaves, plan.kinds, plan.types):
        observed = leaf_type(cx, value, kind, expected)
        if observed != expected:
            raise cx.unsupported(
                node,
                "torch.while_loop",
                f"a carried value changes type from {expected} to {observed}",
            )
        operands.append(materialize(cx, value, kind, node, expected))
    cx.emit(dy.YieldOp(*operands), node)


def torch_while_loop(cx: Converter, args: tuple, kwargs: dict, node: ast.AST) -> Any:
    names = ("cond_fn", "body_fn", "carried_inputs")
    bound = dict(zip(names, args)) | kwargs
    if bound.get("additional_inputs"):
        raise cx.unsupported(node, "torch.while_loop", "additional_inputs")
    carried = tuple(bound["carried_inputs"])
    condition_function, body_function = bound["cond_fn"], bound["body_fn"]
    staging.flush(cx)
    plan = CarryPlan(columns=[[]])
    plan.template = Container(tuple, [carry_node(cx, v, plan, node) for v in carried])
    inits = [
        materialize(cx, v, kind, node, t)
        for v, kind, t in zip(plan.columns[0], plan.kinds, plan.types)
    ]
    before = Block(arg_types=plan.types)
    after = Block(arg_types=plan.types)
    with cx.at(before):
        values = rebuild(plan, list(before.args))
        condition = scalars.truth(cx, cx.call(condition_function, values, {}, node), node)
        condition = scalars.as_host_bool(cx, condition, node)
        staging.flush(cx)
        cx.emit(dy.ConditionOp(condition.value, *before.args), node)
    with cx.at(after):
        cx.loop_depth += 1
        try:
            results = cx.call(body_function, rebuild(plan, list(after.args)), {}, node)
        finally:
            cx.loop_depth -= 1
        staging.flush(cx)
        _yield_carried(cx, plan, carried, results, node)
    loop_op = cx.emit(dy.WhileOp(inits, plan.types, Region(before), Region(after)), node)
    return rebuild(plan, list(loop_op.results))
