"""Branches: `if` statements (and conditional expressions, `torch.cond`) on staged conditions.

A condition known at compile time selects one arm. A staged one becomes a `dy.if`: each arm
runs in its own block on a copy of the environment, and the arms meet at a join after the
branch (`joins`). An arm that may leave towards a point no `dy` exit reaches (a `return`
from an inlined helper, `break` of an unrolled loop) runs the rest of the code up to that
point inside itself instead, in continuation-passing style, and the arms meet there.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xdsl.ir import Block, Region

from frontends.torch import scalars, staging
from frontends.torch.ast_facts import exits
from frontends.torch.constants import ConstantsAtBranch
from frontends.torch.joins import (
    arrive,
    clone_containers,
    resolve,
)
from frontends.torch.returns import moved_block
from frontends.torch.state import Join, UnrolledLoop
from frontends.torch.values import HostScalar, OptionalValue
from ir import dy

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def exec_if(cx: Converter, statement: ast.If, rest: Callable[[], None]) -> None:
    condition = scalars.truth(cx, cx.eval(statement.test), statement.test)
    if isinstance(condition, bool):
        cx.exec(statement.body if condition else statement.orelse, rest)
        return
    frame = cx.frame
    assert frame is not None
    narrowed = narrowing(cx, statement.test)

    def arm(statements: list[ast.stmt], taken: bool, k: Callable[[], None]) -> None:
        if narrowed is not None:
            name, present_when, optional = narrowed
            frame.env[name] = optional.value if taken == present_when else None
        cx.exec(statements, k)

    if has_indirect_exit(cx, statement.body + statement.orelse):
        arms = [
            lambda k, s=s, t=t: arm(s, t, k)
            for s, t in ((statement.body, True), (statement.orelse, False))
        ]
        staged_branch(cx, condition, arms, None, rest, statement)
        return
    join = cx.new_join(carries_environment=True)
    arms = [
        lambda k, s=s, t=t: arm(s, t, lambda: arrive(cx, join, None, statement))
        for s, t in ((statement.body, True), (statement.orelse, False))
    ]
    merged = staged_branch(cx, condition, arms, join, rest, statement)
    if cx.reachable:
        frame.env = merged
        rest()


def narrowing(cx: Converter, test: ast.expr) -> tuple[str, bool, OptionalValue] | None:
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
    frame = cx.frame
    assert frame is not None
    value = frame.env.get(test.left.id)
    if not isinstance(value, OptionalValue):
        return None
    return test.left.id, isinstance(test.ops[0], ast.IsNot), value


def staged_branch(
    cx: Converter,
    condition: HostScalar,
    arms: list[Callable[[Callable[[], None]], None]],
    join: Join | None,
    rest: Callable[[], None],
    node: ast.AST,
) -> Any:
    """Build a `dy.if` whose arms run `arms`; with a `join`, resolve it and return the
    merged payload, otherwise (continuation-passing arms) hand the branch to the one outer
    join its arms reached."""

    def make_if(blocks: list[Block]) -> dy.IfOp:
        return dy.IfOp(condition.value, [], Region(blocks[0]), Region(blocks[1]))

    return _staged_regions(cx, arms, make_if, join, rest, node)


def staged_switch(
    cx: Converter,
    selector: HostScalar,
    cases: list[int],
    arms: list[Callable[[Callable[[], None]], None]],
    join: Join,
    node: ast.AST,
    out_of_range: str,
) -> Any:
    """Build a `dy.switch` on `selector` whose case `cases[i]` runs `arms[i]`; its default
    region traps with `out_of_range`. Returns the merged payload of `join`."""

    def make_switch(blocks: list[Block]) -> dy.SwitchOp:
        default = Block()
        trap = dy.TrapOp(out_of_range)
        trap.location = cx.location(node)
        default.add_op(trap)
        regions = [Region(block) for block in blocks]
        return dy.SwitchOp(selector.value, cases, [], Region(default), regions)

    return _staged_regions(cx, arms, make_switch, join, lambda: None, node)


def _staged_regions(
    cx: Converter,
    arms: list[Callable[[Callable[[], None]], None]],
    make_op: Callable[[list[Block]], dy.IfOp | dy.SwitchOp],
    join: Join | None,
    rest: Callable[[], None],
    node: ast.AST,
) -> Any:
    staging.flush(cx)
    frame = cx.frame
    assert frame is not None
    first_arrival = len(cx.arrivals)
    entry_env = frame.env
    mutation_mark = len(cx.mutations)
    constants = ConstantsAtBranch(cx)
    blocks = []
    for arm in arms:
        block = Block()
        arrivals_before = len(cx.arrivals)
        with cx.at(block):
            frame.env = clone_containers(entry_env)
            arm(rest)
            reached_join = join is not None and any(
                a.join is join for a in cx.arrivals[arrivals_before:]
            )
            cx.frame = frame
        staging.undo_mutations(cx, mutation_mark)
        constants.after_arm(cx, reached_join, node)
        blocks.append(block)
    frame.env = entry_env
    branch = make_op(blocks)
    cx.emit(branch, node)
    arrived = cx.arrivals[first_arrival:]
    if not arrived:
        hoist_last_region(cx, branch)
        cx.reachable = False
        return None
    targets = {id(a.join): a.join for a in arrived}
    if len(targets) > 1 or (join is not None and id(join) not in targets):
        raise cx.unsupported(
            node,
            "if",
            "its arms leave towards different places (e.g. both break and "
            "continue of an unrolled loop, or a return from an inlined helper)",
        )
    target = next(iter(targets.values()))
    target.pending_ifs.add(id(branch))
    if join is None:
        cx.reachable = False
        return None
    return resolve(cx, join, node)


def hoist_last_region(cx: Converter, branch: dy.IfOp | dy.SwitchOp) -> None:
    """No region of `branch` falls through: nothing follows it, yet its block needs a
    terminator. The else (or default) region's ops move after the branch, which keeps an
    empty region."""
    region = branch.else_region if isinstance(branch, dy.IfOp) else branch.default_region
    last_block = region.block
    parent = branch.parent_block()
    assert parent is not None
    for op in list(last_block.ops):
        op.detach()
        parent.add_op(op)
    moved_block(cx, last_block, parent)
    last_block.add_op(dy.YieldOp())


def has_indirect_exit(cx: Converter, statements: list[ast.stmt]) -> bool:
    """Whether these statements may leave towards a point that no `dy` exit reaches."""
    frame = cx.frame
    assert frame is not None
    found = exits(statements)
    if "return" in found and frame.return_join is not None:
        return True
    loop_exits = found & {"break", "continue"}
    return bool(loop_exits) and bool(frame.loops) and isinstance(frame.loops[-1], UnrolledLoop)
