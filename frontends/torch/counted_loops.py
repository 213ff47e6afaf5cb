"""`for` loops whose trip count is known only at run time, staged as a counted `while`.

`for i in range(n)` with a run-time `n` (`int(t)`, `x.shape[0]` of a dynamic batch), `for h in
beams` over a list whose length depends on the data, and `for row in x` over a tensor whose
first dimension is `?` cannot be unrolled. Each is rewritten into the loop Python itself runs:

    index = start                    index = 0
    while index < stop:              while index < len(sequence):
        i = index                        h = sequence[index]
        index = index + step             index = index + 1
        <body>                           <body>

`for i, h in enumerate(beams)` binds `(index, sequence[index])` the same way. The increment
comes before the body, so a `continue` in it still advances. The iterable is
evaluated once, as Python does; `len(sequence)` is read at every test, as a list iterator
does. The `while` is then staged by `loops.exec_while` like any data-dependent loop.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from frontends.torch import sizes
from frontends.torch.values import HostScalar, StagedList, StagedTensor, SymSize

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


@dataclass(frozen=True)
class Iteration:
    """What a `for` iterates: a compile-time `iterable`, or the counted `loop` to stage."""

    iterable: Any = None
    loop: ast.While | None = None


def iteration(cx: Converter, statement: ast.For) -> Iteration:
    """Evaluate the iterable of `statement` (once) and say how to run the loop."""
    node = statement.iter
    if isinstance(node, ast.Call) and not node.keywords and cx.eval(node.func) is range:
        bounds = [cx.eval(argument) for argument in node.args]
        if any(_known_at_run_time(bound) for bound in bounds):
            return Iteration(loop=_range_loop(cx, statement, bounds))
        return Iteration(iterable=range(*bounds))
    if _is_enumerate(cx, node):
        sequence = cx.eval(node.args[0])
        if isinstance(sequence, StagedList):
            return Iteration(loop=_sequence_loop(cx, statement, sequence, enumerated=True))
        return Iteration(iterable=cx.call(enumerate, (sequence,), {}, node))
    iterable = cx.eval(node)
    if isinstance(iterable, StagedList) or (
        isinstance(iterable, StagedTensor) and _first_dim_at_run_time(cx, iterable)
    ):
        return Iteration(loop=_sequence_loop(cx, statement, iterable))
    return Iteration(iterable=iterable)


def _is_enumerate(cx: Converter, node: ast.expr) -> bool:
    """`enumerate(sequence)` (one argument, no start)."""
    return (
        isinstance(node, ast.Call)
        and len(node.args) == 1
        and not node.keywords
        and not isinstance(node.args[0], ast.Starred)
        and cx.eval(node.func) is enumerate
    )


def _known_at_run_time(value: Any) -> bool:
    return isinstance(value, HostScalar | SymSize)


def _first_dim_at_run_time(cx: Converter, tensor: StagedTensor) -> bool:
    shape = sizes.shape_of(cx, tensor)
    return bool(shape) and isinstance(shape[0], SymSize)


def _range_loop(cx: Converter, statement: ast.For, bounds: list[Any]) -> ast.While:
    if not 1 <= len(bounds) <= 3:
        raise cx.unsupported(
            statement.iter, "range()", f"takes 1 to 3 arguments, got {len(bounds)}"
        )
    start, stop, step = (0, bounds[0], 1) if len(bounds) == 1 else (*bounds[:2], 1)
    if len(bounds) == 3:
        step = bounds[2]
    if not isinstance(step, int) or isinstance(step, bool):
        raise cx.unsupported(statement.iter, "range()", "a step known only at run time")
    if step == 0:
        raise cx.unsupported(statement.iter, "range()", "arg 3 must not be zero")
    index, limit = _hidden(cx, statement, "index", start), _hidden(cx, statement, "stop", stop)
    test = ast.Compare(
        left=_load(index), ops=[ast.Lt() if step > 0 else ast.Gt()], comparators=[_load(limit)]
    )
    return _counted_while(statement, test, _load(index), index, step)


def _sequence_loop(
    cx: Converter, statement: ast.For, sequence: Any, enumerated: bool = False
) -> ast.While:
    index = _hidden(cx, statement, "index", 0)
    held = _hidden(cx, statement, "sequence", sequence)
    length = ast.Call(func=ast.Name(id="len", ctx=ast.Load()), args=[_load(held)], keywords=[])
    test = ast.Compare(left=_load(index), ops=[ast.Lt()], comparators=[length])
    item: ast.expr = ast.Subscript(value=_load(held), slice=_load(index), ctx=ast.Load())
    if enumerated:
        item = ast.Tuple(elts=[_load(index), item], ctx=ast.Load())
    return _counted_while(statement, test, item, index, 1)


def _hidden(cx: Converter, statement: ast.For, role: str, value: Any) -> str:
    """Bind `value` to a name the user's code cannot spell, unique to this loop."""
    frame = cx.frame
    assert frame is not None
    name = f"for@{statement.lineno}:{statement.col_offset}:{role}"
    frame.env[name] = value
    return name


def _load(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


def _counted_while(
    statement: ast.For, test: ast.expr, item: ast.expr, index: str, step: int
) -> ast.While:
    bind_target = ast.Assign(targets=[statement.target], value=item)
    advance = ast.Assign(
        targets=[ast.Name(id=index, ctx=ast.Store())],
        value=ast.BinOp(left=_load(index), op=ast.Add(), right=ast.Constant(step)),
    )
    loop = ast.While(test=test, body=[bind_target, advance, *statement.body], orelse=[])
    for node in ast.walk(loop):
        if not hasattr(node, "lineno"):
            ast.copy_location(node, statement)
    return loop
