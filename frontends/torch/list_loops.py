"""Python that iterates over a list whose length is known only at run time.

Comprehensions (`[f(h) for h in beams if c]`, generator expressions), the key functions of
`sorted` / `max` / `min`, and `all` / `any` / `sum` run Python code once per item, so over a
`StagedList` each becomes the loop Python itself runs, written as Python and staged like
the model's own loops (`counted_loops` turns it into a `dy.while`):

    out = []                         acc = True
    for h in beams:                  for v in items:
        if c:                            if not v:
            out.append(f(h))                 acc = False
                                             break

The names these loops bind are hidden (the comprehension's own variables are renamed, as
Python scopes them to the comprehension), so they cannot clash with the model's. `sorted`
then reorders the items by the keys with `dy.list_sort` (stable, as Python's); `max` /
`min` take the first item of the descending / ascending order, which is the first extreme
item, as Python returns. A generator expression is consumed whole: every item is computed,
also after one that decides an `all` (its items cannot have side effects here).
"""

from __future__ import annotations

import ast
import copy
import itertools
from typing import TYPE_CHECKING, Any

from frontends.torch import items, lists
from frontends.torch.values import SCALAR_KINDS, SCALAR_TYPES, StagedList, describe
from ir import dy
from ir.torch import ValueTensorType

if TYPE_CHECKING:
    from frontends.torch.converter import Converter

_counter = itertools.count()


def comprehension(
    cx: Converter, node: ast.expr, sequence: StagedList, generators: list, element: ast.expr
) -> StagedList:
    """`[element for target in sequence if ...]` for a list of run-time length."""
    if len(generators) != 1 or generators[0].is_async:
        raise cx.unsupported(
            node, "comprehension", "nested loops over a list whose length depends on the data"
        )
    generator = generators[0]
    renames = {name: _hidden_name(node, name) for name in _bound_names(generator.target)}
    target, element = _renamed(generator.target, renames), _renamed(element, renames)
    conditions = [_renamed(condition, renames) for condition in generator.ifs]
    hidden = _Hidden(cx, node)
    out, held = hidden.bind("out", []), hidden.bind("items", sequence)
    statement: ast.stmt = ast.Expr(_call(ast.Attribute(_load(out), "append", ast.Load()), element))
    for condition in reversed(conditions):
        statement = ast.If(test=condition, body=[statement], orelse=[])
    loop = ast.For(target=target, iter=_load(held), body=[statement], orelse=[])
    result = hidden.run([loop], out, [*renames.values()])
    if not isinstance(result, StagedList):
        raise cx.unsupported(node, "comprehension", f"it gave a {describe(result)}")
    return result


def sort(cx: Converter, sequence: StagedList, key: Any, reverse: Any, node: ast.AST) -> StagedList:
    """`sorted(sequence, key=key, reverse=reverse)`: `dy.list_sort` by the keys."""
    if not isinstance(reverse, bool):
        raise cx.unsupported(node, "sorted()", "reverse must be known at compile time")
    keys = sequence if key is None else _mapped(cx, sequence, key, node)
    key_type = items.list_item_type(keys)
    if isinstance(key_type, ValueTensorType) and _one_element(key_type):
        keys = _items_of(cx, keys, node)  # Python compares one-element tensors by value
        key_type = items.list_item_type(keys)
    if key_type not in SCALAR_KINDS:
        raise cx.unsupported(
            node, "sorted()", f"by keys of type {key_type}: the keys must be Python numbers"
        )
    op = cx.emit(dy.ListSortOp(sequence.value, keys.value, reverse), node)
    return StagedList(op.result, sequence.example_item, sequence.observed_element)


def extreme(cx: Converter, is_max: bool, sequence: StagedList, kwargs: dict, node: ast.AST) -> Any:
    """`max(sequence, key=...)` / `min(...)`: the first item of the stable descending /
    ascending order (out of range, a located run-time error, for an empty list)."""
    name = "max()" if is_max else "min()"
    if set(kwargs) - {"key"}:
        raise cx.unsupported(node, name, "only key= is supported for a list of run-time length")
    ordered = sort(cx, sequence, kwargs.get("key"), is_max, node)
    return lists.list_get(cx, ordered, 0, node)


def all_or_any(cx: Converter, is_all: bool, sequence: StagedList, node: ast.AST) -> Any:
    """`all(sequence)` / `any(sequence)`, stopping at the first item that decides it."""
    hidden = _Hidden(cx, node)
    accumulator, held = hidden.bind("acc", is_all), hidden.bind("items", sequence)
    item = _hidden_name(node, "item")
    test: ast.expr = _load(item)
    if is_all:
        test = ast.UnaryOp(ast.Not(), test)
    decided = ast.If(
        test=test,
        body=[ast.Assign([_store(accumulator)], ast.Constant(not is_all)), ast.Break()],
        orelse=[],
    )
    loop = ast.For(target=_store(item), iter=_load(held), body=[decided], orelse=[])
    return hidden.run([loop], accumulator, [item])


def total(cx: Converter, sequence: StagedList, start: Any, node: ast.AST) -> Any:
    """`sum(sequence, start)`. Over floats the int start 0 is carried as 0.0 (a staged loop
    carries one type; Python's `0 + x` is a float anyway): so the sum of an empty list of
    floats is 0.0 where Python gives 0. Over tensors from a number, the first item is
    peeled (`start + items[0]`, then the loop over the rest): the accumulator is a tensor
    from the start, and an empty list stops the program at `items[0]` with a located
    error (Python would give the number `start`, which no tensor result can stand for)."""
    item_type = items.list_item_type(sequence)
    if type(start) is int and item_type == SCALAR_TYPES[float]:
        start = float(start)
    hidden = _Hidden(cx, node)
    accumulator, held = hidden.bind("acc", start), hidden.bind("items", sequence)
    item = _hidden_name(node, "item")
    add = ast.Assign([_store(accumulator)], ast.BinOp(_load(accumulator), ast.Add(), _load(item)))
    if not (isinstance(item_type, ValueTensorType) and type(start) in (int, float, bool)):
        loop = ast.For(target=_store(item), iter=_load(held), body=[add], orelse=[])
        return hidden.run([loop], accumulator, [item])
    first = ast.Subscript(_load(held), ast.Constant(0), ast.Load())
    rest = ast.Subscript(_load(held), ast.Slice(ast.Constant(1), None, None), ast.Load())
    peeled = ast.Assign([_store(accumulator)], ast.BinOp(_load(accumulator), ast.Add(), first))
    loop = ast.For(target=_store(item), iter=rest, body=[add], orelse=[])
    return hidden.run([peeled, loop], accumulator, [item])


def concatenated(cx: Converter, left: Any, right: StagedList, node: ast.AST, inplace: bool) -> Any:
    """`left + right` / `left += right` where `right` has a run-time length: `left`'s items,
    then a loop appending each of `right`'s."""
    if inplace:
        lists.check_owned(cx, left, "+=", node)
    hidden = _Hidden(cx, node)
    start = (
        StagedList(left.value, left.example_item, left.observed_element)
        if isinstance(left, StagedList)
        else list(left)
    )
    out, held = hidden.bind("out", start), hidden.bind("items", right)
    item = _hidden_name(node, "item")
    append = ast.Expr(_call(ast.Attribute(_load(out), "append", ast.Load()), _load(item)))
    loop = ast.For(target=_store(item), iter=_load(held), body=[append], orelse=[])
    result = hidden.run([loop], out, [item])
    if not inplace:
        return result
    lists.list_replace(cx, left, result, node)
    return left


def _one_element(tensor: ValueTensorType) -> bool:
    return tensor.shape is not None and all(size == 1 for size in tensor.shape)


def _items_of(cx: Converter, tensors: StagedList, node: ast.AST) -> StagedList:
    """`[t.item() for t in tensors]`."""
    item = _hidden_name(node, "tensor")
    generator = ast.comprehension(target=_store(item), iter=ast.Constant(None), ifs=[], is_async=0)
    read = _call(ast.Attribute(_load(item), "item", ast.Load()))
    return comprehension(cx, node, tensors, [generator], read)


def _mapped(cx: Converter, sequence: StagedList, function: Any, node: ast.AST) -> StagedList:
    hidden = _Hidden(cx, node)
    name = hidden.bind("key", function)
    item = _hidden_name(node, "item")
    generator = ast.comprehension(target=_store(item), iter=ast.Constant(None), ifs=[], is_async=0)
    try:
        return comprehension(cx, node, sequence, [generator], _call(_load(name), _load(item)))
    finally:
        hidden.release([])


class _Hidden:
    """Names bound in the current frame for a generated loop, which the model's code
    cannot spell; released when the loop has run."""

    def __init__(self, cx: Converter, node: ast.AST):
        self.cx, self.node, self.names = cx, node, []

    def bind(self, role: str, value: Any) -> str:
        name = _hidden_name(self.node, role)
        frame = self.cx.frame
        assert frame is not None
        frame.env[name] = value
        self.names.append(name)
        return name

    def run(self, statements: list[ast.stmt], result: str, temporaries: list[str]) -> Any:
        """Stage `statements` here; the value `result` names after them."""
        cx = self.cx
        for statement in statements:
            for part in ast.walk(statement):
                if "lineno" in part._attributes and not hasattr(part, "lineno"):
                    ast.copy_location(part, self.node)
        saved_node, finished = cx.node, []
        try:
            cx.exec(statements, lambda: finished.append(True))
        finally:
            cx.node = saved_node
        if not finished:
            raise cx.unsupported(self.node, "loop", "a generated loop over a list did not end")
        frame = cx.frame
        assert frame is not None
        value = frame.env[result]
        self.release(temporaries)
        return value

    def release(self, temporaries: list[str]) -> None:
        frame = self.cx.frame
        assert frame is not None
        for name in [*self.names, *temporaries]:
            frame.env.pop(name, None)


def _hidden_name(node: ast.AST, role: str) -> str:
    place = f"{getattr(node, 'lineno', 0)}:{getattr(node, 'col_offset', 0)}"
    return f"list@{place}:{role}:{next(_counter)}"


def _bound_names(target: ast.expr) -> list[str]:
    return [part.id for part in ast.walk(target) if isinstance(part, ast.Name)]


class _Renamer(ast.NodeTransformer):
    def __init__(self, renames: dict[str, str]):
        self.renames = renames

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.copy_location(ast.Name(self.renames.get(node.id, node.id), node.ctx), node)


def _renamed(expression: ast.expr, renames: dict[str, str]) -> ast.expr:
    return _Renamer(renames).visit(copy.deepcopy(expression))


def _load(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


def _store(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Store())


def _call(function: ast.expr, *args: ast.expr) -> ast.Call:
    return ast.Call(func=function, args=list(args), keywords=[])
