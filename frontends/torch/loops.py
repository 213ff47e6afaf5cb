"""Loops: `for` over static iterables is unrolled; `while` on staged conditions is staged.

`for` over anything whose length is known at compile time (`range`, module lists, zips,
lists, a tensor's first dimension) is unrolled (a run-time length makes it a counted
`while`, `counted_loops`); a data-dependent `break` in it becomes a
branch that skips the remaining iterations. `while` is unrolled while its condition is
static; from the first iteration whose condition depends on data the rest of the loop
becomes one `dy.while` whose carried values are the names the body updates (a `while`
with a `break` is staged at once where the body allows it).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xdsl.ir import Block, Operation, Region, SSAValue

from frontends.torch import counted_loops, recording, scalars, sizes, staging
from frontends.torch.assignment import assign
from frontends.torch.ast_facts import assigned_names, exits
from frontends.torch.constants import check_constants_unchanged, constant_versions
from frontends.torch.errors import UnsupportedError
from frontends.torch.items import cast_to
from frontends.torch.joins import (
    arrive,
    clone_containers,
    freeze,
    resolve,
    touched_handles,
)
from frontends.torch.plans import (
    CarriedNameChanged,
    CarriedNameRebound,
    CarryPlan,
    add_leaf,
    carry_plan,
    collect_carried,
    conforms,
    leaf_name,
    leaf_type,
    materialize,
    rebuild,
)
from frontends.torch.state import StagedLoop, UnrolledLoop
from frontends.torch.values import HostScalar, StagedList, StagedTensor, Undefined, join_types
from ir import dy
from ir.torch import DYNAMIC_DIM, ValueTensorType

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


MAX_UNROLLED_ITERATIONS = 10_000
MAX_UNROLLED_WHILE_ITERATIONS = 256
"""A `while` still static after this many iterations is taken as non-terminating."""
MAX_LOOP_TYPE_REFINEMENTS = 8
"""Each staging of a loop body may only widen carried types (a size becomes `?`), so a few
attempts settle them."""


def exec_for(cx: Converter, statement: ast.For, rest: Callable[[], None]) -> None:
    if statement.orelse:
        raise cx.unsupported(statement, "for ... else", "not supported")
    how = counted_loops.iteration(cx, statement)
    if how.loop is not None:
        exec_while(cx, how.loop, rest)
        return
    items = static_items(cx, how.iterable, statement.iter)

    def next_item(index: int) -> tuple[bool, Any]:
        if index < len(items):
            return True, items[index]
        return False, None

    unrolled_loop(cx, statement, next_item, rest)


def static_items(cx: Converter, iterable: Any, node: ast.AST) -> list:
    """The items of an iterable whose length is known at compile time (a tensor's rows are
    staged `getitem`s)."""
    if isinstance(iterable, StagedTensor):
        length = sizes.static_length(cx, iterable, node, "for")
        return [
            recording.stage_call(cx, node, operator.getitem, (iterable, i), {})
            for i in range(length)
        ]
    if isinstance(iterable, StagedList):
        raise cx.unsupported(
            node,
            "for",
            "iteration over a list whose length depends "
            "on the data; index it with a counted loop instead",
        )
    if isinstance(iterable, HostScalar | Undefined):
        raise cx.unsupported(node, "for", "the iterable is not known at compile time")
    try:
        items = list(iterable)
    except TypeError as error:
        raise cx.unsupported(node, "for", str(error)) from None
    if len(items) > MAX_UNROLLED_ITERATIONS:
        raise cx.unsupported(
            node, "for", f"more than {MAX_UNROLLED_ITERATIONS} iterations to unroll"
        )
    return items


def unrolled_loop(
    cx: Converter,
    statement: ast.For | ast.While,
    next_item: Callable[[int], tuple[bool | HostScalar, Any]],
    rest: Callable[[], None],
) -> None:
    """Unroll a loop whose trip count is known at compile time; a break on a staged
    condition becomes a branch that skips the remaining iterations."""
    frame = cx.frame
    assert frame is not None
    exit_join = cx.new_join(carries_environment=True)
    loop = UnrolledLoop(exit_join)
    if frame.return_join is not None and "return" in exits(statement.body):

        def after() -> None:
            frame.loops.pop()
            try:
                rest()
            finally:
                frame.loops.append(loop)

        loop.after = after
    frame.loops.append(loop)

    limit = MAX_UNROLLED_ITERATIONS
    if isinstance(statement, ast.While):
        limit = MAX_UNROLLED_WHILE_ITERATIONS

    def iteration(index: int, previous: IterationStart | None) -> None:
        if index > limit:
            raise cx.unsupported(statement, "loop", f"more than {limit} iterations to unroll")
        proceed, item = next_item(index)
        if isinstance(proceed, HostScalar):
            assert isinstance(statement, ast.While)
            frame.loops.pop()
            staged_while(cx, statement)
            frame.loops.append(loop)
            leave_unrolled(cx, loop, statement)
            return
        if not proceed:
            leave_unrolled(cx, loop, statement)
            return
        if isinstance(statement, ast.For):
            assign(cx, statement.target, item)
        start = widen_changing_sizes(cx, previous, statement)
        outer = loop.next_iteration
        loop.next_iteration = lambda: iteration(index + 1, start)
        try:
            cx.exec(statement.body, lambda: iteration(index + 1, start))
        finally:
            loop.next_iteration = outer

    iteration(0, None)
    frame.loops.pop()
    if loop.after is not None:
        cx.reachable = False
        return
    merged = resolve(cx, exit_join, statement)
    if cx.reachable:
        frame.env = merged
        rest()


@dataclass(frozen=True)
class IterationStart:
    """Where an unrolled iteration began: its tensors' types by name, how many leaf-module
    calls were recorded before it, and the modules the iteration before it called (None
    for the first)."""

    types: dict[str, Any]
    mark: int
    modules_before: frozenset[int] | None


def widen_changing_sizes(
    cx: Converter, previous: IterationStart | None, node: ast.AST
) -> IterationStart:
    """Give `?` to the sizes that grew since the previous iteration began (a sequence
    lengthened by `torch.cat` each step), so that the iterations after it share sub-graphs
    instead of compiling one per length, as torch.compile's automatic dynamic shapes do.

    Only where the last two iterations called the same leaf modules: the same code ran
    again on a longer tensor. A loop over different layers (`for layer in self.layers`,
    `self.layers[i]`) changes sizes because its layers differ; `?` there would only lose
    what the kernels specialise on. Only tensors already imported are widened (a stretch
    that runs on across iterations is one sub-graph anyway), and only sizes of at least 2:
    the unrolled iteration runs at exactly its example's sizes, and the trace of a `?`
    size takes it to be other than 1."""
    frame = cx.frame
    assert frame is not None
    mark = len(cx.called_modules)
    modules = None if previous is None else frozenset(cx.called_modules[previous.mark : mark])
    repeated = previous is not None and previous.modules_before == modules
    types: dict[str, Any] = {}
    for name, value in frame.env.items():
        if not isinstance(value, StagedTensor) or not isinstance(value.value, SSAValue):
            continue
        current = value.value.type
        before = previous.types.get(name) if repeated else None
        widened = _grown_sizes_dynamic(before, current)
        if widened != current:
            # As an in-place update: every alias sees it, and leaving the arm undoes it.
            cx.mutations.append((value, value.value))
            value.value = cast_to(cx, value.value, widened, node)
        types[name] = widened
    return IterationStart(types, mark, modules)


def _grown_sizes_dynamic(before: Any, current: Any) -> Any:
    """`current` with `?` where it grew since `before`. Only a tensor whose sizes are all
    static is widened: a batch already `?` (`dynamic=True`) keeps its length static, as
    before automatic widening. Two `?` sizes in one tensor exposed a back-end bug
    (`runtime/llvm/dynamic_views.py`, fixed); this keeps such decoders on the tested
    path."""
    if not (isinstance(before, ValueTensorType) and isinstance(current, ValueTensorType)):
        return current
    if current.shape is None or DYNAMIC_DIM in current.shape:
        return current
    if join_types(before, current) in (None, current):
        return current
    shape = [
        DYNAMIC_DIM if old != DYNAMIC_DIM and new != DYNAMIC_DIM and new > old >= 1 else new
        for old, new in zip(before.shape, current.shape)
    ]
    return ValueTensorType(shape, current.element_type)


def leave_unrolled(cx: Converter, loop: UnrolledLoop, node: ast.AST) -> None:
    """End the current path's run of an unrolled loop (its end, or a `break`)."""
    if loop.after is None:
        arrive(cx, loop.exit, None, node)
        return
    staging.flush(cx)
    loop.after()
    cx.reachable = False


def exec_while(cx: Converter, statement: ast.While, rest: Callable[[], None]) -> None:
    if statement.orelse:
        raise cx.unsupported(statement, "while ... else", "not supported")

    if "break" in exits(statement.body) and try_staged_while(cx, statement):
        rest()
        return

    def next_item(index: int) -> tuple[bool | HostScalar, None]:
        return probe_condition(cx, statement.test), None

    unrolled_loop(cx, statement, next_item, rest)


def probe_condition(cx: Converter, test: ast.expr) -> bool | HostScalar:
    """The loop condition if it is known at compile time; otherwise a HostScalar whose
    ops were evaluated into a scratch block (the staged loop evaluates it again)."""
    staging.flush(cx)
    scratch = Block()
    with cx.at(scratch):
        condition = scalars.truth(cx, cx.eval(test), test)
    discard(scratch)
    return condition


def try_staged_while(cx: Converter, statement: ast.While) -> bool:
    """Stage a loop with a `break` as one `dy.while` from its first iteration, so that
    each exit is one branch rather than one per unrolled iteration. Where the body needs
    its carried values at compile time (indexing a ModuleList with the counter), undo
    everything and report False: the loop is then unrolled."""
    frame = cx.frame
    assert frame is not None
    staging.flush(cx)
    owner = cx.block
    last_op = owner.last_op
    saved = (
        frame.env,
        len(frame.loops),
        cx.loop_depth,
        len(cx.mutations),
        len(cx.returns),
        len(cx.arrivals),
    )
    constants = constant_versions(cx)
    try:
        staged_while(cx, statement)
    except UnsupportedError:
        if any(tensor._version != version for tensor, version in constants):
            raise  # the attempt updated a compile-time tensor: it cannot be undone
        env, loop_count, depth, mutation_mark, returns_mark, arrivals_mark = saved
        frame.env = env
        del frame.loops[loop_count:]
        cx.loop_depth = depth
        staging.undo_mutations(cx, mutation_mark)
        del cx.returns[returns_mark:]
        del cx.arrivals[arrivals_mark:]
        erase_after(cx, owner, last_op)
        cx.continue_at(owner)
        return False
    return True


def erase_after(cx: Converter, block: Block, last_op: Operation | None) -> None:
    """Erase the ops `block` gained after `last_op` (an abandoned attempt's)."""
    while block.last_op is not last_op:
        stale = block.last_op
        assert stale is not None
        stale.detach()
        stale.erase(safe_erase=False)
    cx.param_cache = {
        key: value for key, value in cx.param_cache.items() if value.owner.parent is not None
    }


@dataclass(eq=False)
class _LoopAttempt:
    """One staging of a loop's body under a guess of its carried types."""

    plan: CarryPlan
    loop: StagedLoop
    inits: list[SSAValue]
    before: Block
    after: Block


def staged_while(cx: Converter, statement: ast.While) -> None:
    """Stage the rest of a `while` loop as one `dy.while`. The names it carries are those
    its body may update that are defined before it; a list that starts empty gets its
    item type from a first pass over the body (a type refinement), so the body may be
    staged more than once."""
    frame = cx.frame
    assert frame is not None
    assigned = assigned_names(statement.body + [ast.Expr(statement.test)])
    names = [
        n for n in sorted(assigned) if n in frame.env and not isinstance(frame.env[n], Undefined)
    ]
    names += _aliases_of_carried_lists(frame.env, names)
    staging.flush(cx)
    owner = cx.block
    entry_env = frame.env
    mutation_mark = len(cx.mutations)
    constants = constant_versions(cx)
    refined: dict[int, Any] = {}
    widened: dict[int, Any] = {}
    returns_mark = len(cx.returns)
    tracking = StagedLoop(names, CarryPlan(), owner=owner)
    for _ in range(MAX_LOOP_TYPE_REFINEMENTS):
        del cx.returns[returns_mark:]
        before_inits = owner.last_op
        attempt = _stage_body(
            cx, statement, names, entry_env, refined, widened, tracking, mutation_mark
        )
        loop = attempt.loop
        check_constants_unchanged(cx, constants, statement, "in a data-dependent loop")
        relayout = loop.changed_names or loop.touched or loop.rebound_names - tracking.rebound_names
        if not loop.observed_mismatch and not relayout:
            break
        _refine_carried_types(cx, statement, attempt, entry_env, refined)
        if relayout:
            refined.clear()
            widened.update(loop.changed_names)
            tracking.rebound_names |= loop.rebound_names
            tracking.touched.extend(loop.touched)
        discard(attempt.before)
        discard(attempt.after)
        erase_after(cx, owner, before_inits)
    else:
        raise cx.unsupported(statement, "while", "loop-carried types did not settle")
    plan = attempt.plan
    loop_op = dy.WhileOp(attempt.inits, plan.types, Region(attempt.before), Region(attempt.after))
    cx.emit(loop_op, statement)
    for handle, hole in attempt.loop.handles:
        cx.mutations.append((handle, handle.value))
        handle.value = loop_op.results[hole.index]
    frame.env = entry_env
    for name, value in zip(names, rebuild(plan, list(loop_op.results))):
        frame.env[name] = value
    line = frame.source.line_offset + statement.lineno
    for name in assigned - set(names):
        frame.env[name] = Undefined(
            f"'{name}' is assigned only inside the data-dependent loop at line {line}"
        )
    cx.reachable = True


def _stage_body(
    cx: Converter,
    statement: ast.While,
    names: list[str],
    entry_env: dict[str, Any],
    refined: dict[int, Any],
    widened: dict[int, Any],
    tracking: StagedLoop,
    mutation_mark: int,
) -> _LoopAttempt:
    """Emit the initial values of the carried names, then stage the condition into the
    loop's `before` region and the body into its `after` region."""
    frame = cx.frame
    assert frame is not None
    frame.env = clone_containers(entry_env)
    values = [frame.env[n] for n in names]
    handles, handle_names = _carried_handles(values, tracking)
    list_aliases = _list_aliases(values, tracking)
    plan = carry_plan(cx, values, statement, {}, widened, handle_names, list_aliases)
    holes = [
        add_leaf(plan, [h], "tensor", staging.tensor_type_of(cx, h), h.example) for h in handles
    ]
    for index, refined_type in refined.items():
        plan.types[index] = refined_type
    inits = [
        materialize(cx, v, kind, statement, t)
        for v, kind, t in zip(plan.columns[0], plan.kinds, plan.types)
    ]
    before = Block(arg_types=plan.types)
    after = Block(arg_types=plan.types)
    loop = StagedLoop(names, plan, handles=list(zip(handles, holes)), owner=tracking.owner)
    loop.rebound_names = set(tracking.rebound_names)
    body_mark = len(cx.mutations)
    bind_carried(cx, loop, list(before.args))
    with cx.at(before):
        condition = scalars.truth(cx, cx.eval(statement.test), statement.test)
        condition = scalars.as_host_bool(cx, condition, statement.test)
        staging.flush(cx)
        cx.emit(dy.ConditionOp(condition.value, *before.args), statement)
    bind_carried(cx, loop, list(after.args))
    with cx.at(after):
        cx.loop_depth += 1
        frame.loops.append(loop)
        loop.body_mark = body_mark
        try:
            cx.exec(statement.body, lambda: staged_loop_exit(cx, loop, dy.YieldOp, statement))
        finally:
            frame.loops.pop()
            cx.loop_depth -= 1
    staging.undo_mutations(cx, mutation_mark)
    return _LoopAttempt(plan, loop, inits, before, after)


def _aliases_of_carried_lists(env: dict[str, Any], names: list[str]) -> list[str]:
    """The other names that hold a list a loop carries (`alias = outs` before a loop that
    appends to `outs`): they are carried too, as aliases, so they see its updates."""
    carried = {id(env[n]) for n in names if isinstance(env[n], list | StagedList)}
    return sorted(
        n
        for n, value in env.items()
        if n not in names and isinstance(value, list | StagedList) and id(value) in carried
    )


def _list_aliases(values: list, tracking: StagedLoop) -> dict[int, int]:
    """By name position, the earlier position that holds the same list (unless the body
    was seen to rebind the name)."""
    aliases: dict[int, int] = {}
    for position, value in enumerate(values):
        if isinstance(value, list | StagedList) and position not in tracking.rebound_names:
            earlier = next(
                (i for i in range(position) if values[i] is value and i not in aliases), None
            )
            if earlier is not None:
                aliases[position] = earlier
    return aliases


def _carried_handles(values: list, tracking: StagedLoop) -> tuple[list, dict[int, int]]:
    """The tensor handles a loop carries as their own leaves: those its names refer to
    (unless the body rebinds the name) and those the body was seen to update in place;
    with, by name position, the handle each aliasing name refers to."""
    handles: list = []
    handle_names: dict[int, int] = {}
    for position, value in enumerate(values):
        if isinstance(value, StagedTensor) and position not in tracking.rebound_names:
            if not any(h is value for h in handles):
                handles.append(value)
            handle_names[position] = next(i for i, h in enumerate(handles) if h is value)
    for handle in tracking.touched:
        if not any(h is handle for h in handles):
            handles.append(handle)
    return handles, handle_names


def _refine_carried_types(
    cx: Converter,
    statement: ast.While,
    attempt: _LoopAttempt,
    entry_env: dict[str, Any],
    refined: dict[int, Any],
) -> None:
    """The body gave a carried value another type than it entered with. A tensor whose
    sizes change (a sequence grown by `torch.cat`, a shrinking batch of active samples) is
    carried with `?` where they differ, a list that entered without items gets the item
    type its body appends; anything else is an error."""
    frame = cx.frame
    assert frame is not None
    plan = attempt.plan
    for index, observed in attempt.loop.observed_mismatch:
        current = plan.types[index]
        joined = join_types(current, observed)
        if joined is None:
            frame.env = entry_env
            raise cx.unsupported(
                statement,
                "while",
                f"the loop-carried value {leaf_name(attempt.loop.names, plan, index)} "
                f"changes type from {current} to {observed} in the loop body",
            )
        refined[index] = joined


def bind_carried(cx: Converter, loop: StagedLoop, arguments: list[SSAValue]) -> None:
    """The loop's names and carried handles hold the region's block arguments."""
    frame = cx.frame
    assert frame is not None
    values = rebuild(loop.plan, arguments)
    for name, value in zip(loop.names, values):
        frame.env[name] = value
    for handle, hole in loop.handles:
        cx.mutations.append((handle, handle.value))
        handle.value = arguments[hole.index]


def staged_loop_exit(cx: Converter, loop: StagedLoop, exit_op: type, node: ast.AST) -> None:
    """End a staged loop body path with `exit_op` carrying the current loop values."""
    staging.flush(cx)
    frame = cx.frame
    assert frame is not None
    leaves: list = []
    current = [frame.env.get(n) for n in loop.names]
    try:
        collect_carried(cx, current, loop.plan.template, leaves, node)
    except CarriedNameChanged as change:
        loop.changed_names.append((change.position, freeze(change.value, cx.frozen_constants)))
        cx.reachable = False
        return
    except CarriedNameRebound as rebound:
        loop.rebound_names.update(rebound.positions)
        cx.reachable = False
        return
    carried = {id(handle) for handle, _ in loop.handles}
    touched = touched_handles(cx, loop.body_mark, loop.owner)
    fresh = [h for h, _, _ in touched.values() if id(h) not in carried and h.origin is None]
    if fresh:
        loop.touched.extend(h for h in fresh if isinstance(h, StagedTensor))
        cx.reachable = False
        return
    leaves.extend(StagedTensor(handle.value, handle.example) for handle, _ in loop.handles)
    operands = []
    for index, (value, kind, expected) in enumerate(zip(leaves, loop.plan.kinds, loop.plan.types)):
        observed = leaf_type(cx, value, kind, expected)
        if not conforms(observed, expected):
            loop.observed_mismatch.append((index, observed))
            cx.reachable = False
            return
        operands.append(materialize(cx, value, kind, node, expected))
    cx.emit(exit_op(*operands), node)
    cx.reachable = False


def discard(block: Block) -> None:
    """Erase every op of a block that will not be used (a scratch or abandoned region)."""
    for op in reversed(list(block.ops)):
        op.detach()
        op.erase(safe_erase=False)
