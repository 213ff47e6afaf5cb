"""Branch coverage of a model's forward computation, from its source and a line trace.

``branch_arms_taken(model_file, model, inputs_list)`` answers "did these inputs drive the
model down every path its source code allows?", which is what a compiler for dynamic networks
must be tested on: a path no input takes is a path no test checks.

Arms are found by AST analysis of ``model_file``: starting from every ``forward`` method of
the file's classes, and following ``self.helper(...)`` calls and the branch functions given to
``torch.cond`` / ``torch.while_loop``, each reachable method contributes

* ``if-true`` / ``if-false`` for every ``if`` (the false arm of an ``if`` without ``else`` is
  the jump from the test to the code after the statement),
* ``loop-body`` and ``loop-exit`` (leaving through the loop condition, not ``break``) for every
  ``for`` / ``while``; ``loop-else`` instead of ``loop-exit`` when the loop has an ``else``,
* ``break``, ``continue`` and every ``return`` nested inside a compound statement,
* ``cond-true`` / ``cond-false`` for ``torch.cond`` and ``while_loop-body`` for
  ``torch.while_loop`` (the branch functions may be methods, ``self.f``, or functions defined
  inside the method, whose own statements count as part of it).

An ``if`` whose line carries the comment ``# static`` tests a Python-static condition (a
config flag, ``self.training``) that a compiler folds; its arms are marked ``static`` so that
callers can leave them out of "every arm taken" checks.

Arms are then checked against a ``sys.settrace`` trace restricted to ``model_file``.  Because
``torch.cond`` and ``torch.while_loop`` compile their branch functions (which hides their
lines from a tracer), they are replaced during the trace by their documented Python
semantics.
"""
from __future__ import annotations

import ast
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

#: Pseudo line number standing for "the function returned" in line transitions.
RETURNED = -1


@dataclass(frozen=True, order=True)
class Arm:
    """One way through a branching construct: ``kind`` at source line ``line``."""

    line: int
    kind: str
    static: bool = False
    # How the arm is observed: executing ``line``, or a jump from one of ``jump_from`` to a
    # line outside ``[span[0], span[1]]`` (or out of the function).
    jump_from: frozenset[int] = field(default=frozenset(), compare=False, repr=False)
    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.kind}@{self.line}" + (" (static)" if self.static else "")

    def taken(self, lines: set[int], jumps: set[tuple[int, int]]) -> bool:
        if not self.jump_from:
            return self.line in lines
        low, high = self.span
        return any(src in self.jump_from and not low <= dst <= high for src, dst in jumps)


def _line_arm(kind: str, node: ast.AST, static: bool = False) -> Arm:
    return Arm(node.lineno, kind, static)


def _jump_arm(kind: str, node: ast.stmt, last_line: int, static: bool = False) -> Arm:
    """Arm taken by a jump from lines ``node.lineno..last_line`` to outside ``node``."""
    return Arm(node.lineno, kind, static, frozenset(range(node.lineno, last_line + 1)),
               (node.lineno, node.end_lineno))


class _ArmFinder(ast.NodeVisitor):
    """Collects the arms of one method and the functions it hands control to."""

    def __init__(self, source_lines: list[str]):
        self.source_lines = source_lines
        self.arms: list[Arm] = []
        self.callees: set[str] = set()  # names of self.<method> called
        # (arm kind, function name) for functions handed to torch.cond / torch.while_loop
        self.branch_functions: list[tuple[str, str]] = []
        self.depth = 0  # nesting inside compound statements

    def _nested(self, nodes: Sequence[ast.stmt]) -> None:
        self.depth += 1
        for node in nodes:
            self.visit(node)
        self.depth -= 1

    def visit_If(self, node: ast.If) -> None:
        static = "# static" in self.source_lines[node.lineno - 1]
        self.visit(node.test)
        self.arms.append(_line_arm("if-true", node.body[0], static))
        if node.orelse:
            self.arms.append(_line_arm("if-false", node.orelse[0], static))
        else:
            self.arms.append(_jump_arm("if-false", node, node.test.end_lineno, static))
        self._nested(node.body)
        self._nested(node.orelse)

    def _visit_loop(self, node: ast.For | ast.While, header_end: int) -> None:
        self.arms.append(_line_arm("loop-body", node.body[0]))
        if node.orelse:
            self.arms.append(_line_arm("loop-else", node.orelse[0]))
        elif not (isinstance(node, ast.While) and isinstance(node.test, ast.Constant)
                  and node.test.value):
            self.arms.append(_jump_arm("loop-exit", node, header_end))
        self._nested(node.body)
        self._nested(node.orelse)

    def visit_For(self, node: ast.For) -> None:
        self.visit(node.iter)
        self._visit_loop(node, node.iter.end_lineno)

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        self._visit_loop(node, node.test.end_lineno)

    def visit_With(self, node: ast.With) -> None:
        self._nested(node.body)

    def visit_Break(self, node: ast.Break) -> None:
        self.arms.append(_line_arm("break", node))

    def visit_Continue(self, node: ast.Continue) -> None:
        self.arms.append(_line_arm("continue", node))

    def visit_Return(self, node: ast.Return) -> None:
        if self.depth:
            self.arms.append(_line_arm("return", node))
        if node.value is not None:
            self.visit(node.value)

    def visit_Call(self, node: ast.Call) -> None:
        func = ast.unparse(node.func)
        if func.startswith("self."):
            self.callees.add(func.removeprefix("self."))
        if func == "torch.cond" and len(node.args) >= 3:
            self._add_branch_functions(("cond-true", "cond-false"), node.args[1:3])
        if func == "torch.while_loop" and len(node.args) >= 2:
            self._add_branch_functions((None, "while_loop-body"), node.args[:2])
        self.generic_visit(node)

    def _add_branch_functions(self, kinds: tuple[str | None, ...],
                              args: Sequence[ast.expr]) -> None:
        for kind, arg in zip(kinds, args):
            name = ast.unparse(arg).removeprefix("self.")
            self.callees.add(name)
            if kind is not None:
                self.branch_functions.append((kind, name))


def find_arms(model_file: str) -> set[Arm]:
    """Every arm of the methods reachable from the ``forward`` methods in ``model_file``."""
    with open(model_file) as f:
        source = f.read()
    source_lines = source.splitlines()
    tree = ast.parse(source)
    arms: set[Arm] = set()
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        methods = {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}
        todo = ["forward"] if "forward" in methods else []
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen or name not in methods:
                continue
            seen.add(name)
            finder = _ArmFinder(source_lines)
            for statement in methods[name].body:
                finder.visit(statement)
            arms.update(finder.arms)
            nested = {node.name: node for node in ast.walk(methods[name])
                      if isinstance(node, ast.FunctionDef)}
            for kind, target in finder.branch_functions:
                function = methods.get(target) or nested.get(target)
                if function is not None:
                    arms.add(_line_arm(kind, function.body[0]))
            todo.extend(finder.callees)
    return arms


def _reference_cond(pred, true_fn, false_fn, operands):
    """``torch.cond`` as documented, run eagerly so that its branches can be traced."""
    return true_fn(*operands) if bool(pred) else false_fn(*operands)


def _reference_while_loop(cond_fn, body_fn, carried_inputs):
    """``torch.while_loop`` as documented, run eagerly so that its body can be traced."""
    carried = tuple(carried_inputs)
    while bool(cond_fn(*carried)):
        carried = tuple(body_fn(*carried))
    return carried


@contextlib.contextmanager
def eager_control_flow_operators() -> Iterator[None]:
    """Temporarily replace ``torch.cond`` / ``torch.while_loop`` by their Python semantics."""
    saved = torch.cond, torch.while_loop
    torch.cond, torch.while_loop = _reference_cond, _reference_while_loop
    try:
        yield
    finally:
        torch.cond, torch.while_loop = saved


@contextlib.contextmanager
def trace_lines(model_file: str) -> Iterator[tuple[set[int], set[tuple[int, int]]]]:
    """Record executed lines and line-to-line jumps of code defined in ``model_file``.

    Yields ``(lines, jumps)``, filled while the context is active; a jump to ``RETURNED``
    means the function returned from that line.
    """
    target = os.path.realpath(model_file)
    lines: set[int] = set()
    jumps: set[tuple[int, int]] = set()
    previous: dict[object, int] = {}

    def local_trace(frame, event, arg):
        if event == "line":
            jumps.add((previous.get(frame, frame.f_code.co_firstlineno), frame.f_lineno))
            lines.add(frame.f_lineno)
            previous[frame] = frame.f_lineno
        elif event == "return":
            jumps.add((previous.pop(frame, frame.f_lineno), RETURNED))
        return local_trace

    is_target: dict[str, bool] = {}

    def global_trace(frame, event, arg):
        filename = frame.f_code.co_filename
        if filename not in is_target:
            is_target[filename] = os.path.realpath(filename) == target
        return local_trace if is_target[filename] else None

    old = sys.gettrace()
    sys.settrace(global_trace)
    try:
        yield lines, jumps
    finally:
        sys.settrace(old)


def branch_arms_taken(model_file: str, model: nn.Module,
                      inputs_list: Sequence[tuple[torch.Tensor, ...]]
                      ) -> tuple[set[Arm], set[Arm]]:
    """Run ``model`` on every input tuple and return ``(arms taken, all arms)``.

    Outputs are discarded; call the model again untraced if they are needed.
    """
    arms = find_arms(model_file)
    with torch.no_grad(), eager_control_flow_operators(), trace_lines(model_file) as (lines, jumps):
        for inputs in inputs_list:
            model(*inputs)
    return {arm for arm in arms if arm.taken(lines, jumps)}, arms
