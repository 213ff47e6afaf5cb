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
  inside the method, whose own statements count as part of it),
* ``dispatch[KEY]`` for every module a run-time index can pick out of a container attribute
  (``self.branches[int(choice)]``, ``self.heads[label.item()]``: ``nn.ModuleList``,
  ``nn.ModuleDict``, or a list / tuple / dict of modules); indices made only of constants and
  targets of enclosing ``for`` loops are static and give no arm.

Calls are followed within a class (``self.helper(...)``) and across classes of the file
(``self.network.early_exit(...)`` reaches every method ``early_exit`` the file defines), so a
wrapper module whose ``forward`` calls another entry point is analysed through it.  The
``forward`` of a class whose instances the inputs never run (an SDN's training ``forward``
when a wrapper serves its ``early_exit``) is dead code for the model under test and is left
out; a module reached only through an untaken arm still shows up as that arm's absence.

An ``if`` whose line carries the comment ``# static`` tests a Python-static condition (a
config flag, ``self.training``) that a compiler folds; its arms are marked ``static`` so that
callers can leave them out of "every arm taken" checks.

Arms are then checked against a ``sys.settrace`` trace restricted to ``model_file`` and, for
dispatch arms, forward pre-hooks on the container's modules (a module that is also called
from elsewhere counts as dispatched there too: line tracing cannot tell call sites apart).  Because
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


@dataclass(frozen=True)
class Observed:
    """What one traced run saw: executed lines, line-to-line jumps, the first lines of the
    functions entered, and ``(class, attribute, key)`` of every dispatched module."""

    lines: set[int] = field(default_factory=set)
    jumps: set[tuple[int, int]] = field(default_factory=set)
    entered: set[int] = field(default_factory=set)
    dispatched: set[tuple[str, str, str]] = field(default_factory=set)


@dataclass(frozen=True, order=True)
class Arm:
    """One way through a branching construct: ``kind`` at source line ``line``."""

    line: int
    kind: str
    static: bool = False
    # How the arm is observed: executing ``line``, or a jump from one of ``jump_from`` to a
    # line outside ``[span[0], span[1]]`` (or out of the function), or a call of the module
    # ``dispatch = (class, attribute, key)`` names.
    jump_from: frozenset[int] = field(default=frozenset(), compare=False, repr=False)
    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)
    dispatch: tuple[str, str, str] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.kind}@{self.line}" + (" (static)" if self.static else "")

    def taken(self, observed: Observed) -> bool:
        if self.dispatch is not None:
            return self.dispatch in observed.dispatched
        if not self.jump_from:
            return self.line in observed.lines
        low, high = self.span
        return any(src in self.jump_from and not low <= dst <= high
                   for src, dst in observed.jumps)


@dataclass(frozen=True)
class DispatchSite:
    """``self.<attribute>[<run-time index>]`` at ``line`` in a method of class ``owner``."""

    line: int
    owner: str
    attribute: str


def _line_arm(kind: str, node: ast.AST, static: bool = False) -> Arm:
    return Arm(node.lineno, kind, static)


def _jump_arm(kind: str, node: ast.stmt, last_line: int, static: bool = False) -> Arm:
    """Arm taken by a jump from lines ``node.lineno..last_line`` to outside ``node``."""
    return Arm(node.lineno, kind, static, frozenset(range(node.lineno, last_line + 1)),
               (node.lineno, node.end_lineno))


def _target_names(target: ast.expr) -> set[str]:
    return {node.id for node in ast.walk(target) if isinstance(node, ast.Name)}


def _index_names(index: ast.expr) -> set[str]:
    """Names an index reads, leaving out the functions it calls (``str`` in ``str(i)``)."""
    called = {id(node.func) for node in ast.walk(index) if isinstance(node, ast.Call)}
    return {node.id for node in ast.walk(index)
            if isinstance(node, ast.Name) and id(node) not in called}


class _ArmFinder(ast.NodeVisitor):
    """Collects the arms of one method and the functions it hands control to."""

    def __init__(self, source_lines: list[str], owner: str):
        self.source_lines = source_lines
        self.owner = owner
        self.arms: list[Arm] = []
        self.dispatch_sites: list[DispatchSite] = []
        self.callees: set[str] = set()  # <method> of self.<method>(...), a.b of self.a.b(...)
        # (arm kind, function name) for functions handed to torch.cond / torch.while_loop
        self.branch_functions: list[tuple[str, str]] = []
        self.depth = 0  # nesting inside compound statements
        self.loop_targets: list[set[str]] = []  # names bound by the enclosing for loops

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
        self.loop_targets.append(_target_names(node.target))
        self._visit_loop(node, node.iter.end_lineno)
        self.loop_targets.pop()

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

    def visit_Subscript(self, node: ast.Subscript) -> None:
        value, index = node.value, node.slice
        static_names = set().union(*self.loop_targets)
        if (isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name)
                and value.value.id == "self" and not isinstance(index, ast.Slice)
                and not _index_names(index) <= static_names):
            self.dispatch_sites.append(DispatchSite(node.lineno, self.owner, value.attr))
        self.generic_visit(node)

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


def _first_line(function: ast.FunctionDef) -> int:
    """The line a code object of ``function`` starts at (its first decorator, if any)."""
    return min([function.lineno, *(d.lineno for d in function.decorator_list)])


def _analyse(model_file: str, entered: set[int] | None = None
             ) -> tuple[set[Arm], list[DispatchSite]]:
    """Arms and dispatch sites of the methods reachable from the ``forward`` methods of
    ``model_file``'s classes, leaving out the ``forward`` methods whose first line is not in
    ``entered`` (all are kept when it is ``None``)."""
    with open(model_file) as f:
        source = f.read()
    source_lines = source.splitlines()
    tree = ast.parse(source)
    classes = {cls.name: {node.name: node for node in cls.body
                          if isinstance(node, ast.FunctionDef)}
               for cls in tree.body if isinstance(cls, ast.ClassDef)}
    todo = [(name, "forward") for name, methods in classes.items()
            if "forward" in methods
            and (entered is None or _first_line(methods["forward"]) in entered)]
    arms: set[Arm] = set()
    sites: list[DispatchSite] = []
    seen: set[tuple[str, str]] = set()
    while todo:
        owner, name = todo.pop()
        methods = classes[owner]
        if (owner, name) in seen or name not in methods:
            continue
        seen.add((owner, name))
        finder = _ArmFinder(source_lines, owner)
        for statement in methods[name].body:
            finder.visit(statement)
        arms.update(finder.arms)
        sites.extend(finder.dispatch_sites)
        nested = {node.name: node for node in ast.walk(methods[name])
                  if isinstance(node, ast.FunctionDef)}
        for kind, target in finder.branch_functions:
            function = methods.get(target) or nested.get(target)
            if function is not None:
                arms.add(_line_arm(kind, function.body[0]))
        for callee in finder.callees:
            if "." not in callee:
                todo.append((owner, callee))
            else:  # self.<attribute>.<method>(...): a method of another module of the file
                method = callee.rpartition(".")[2]
                todo.extend((other, method) for other in classes if other != owner)
    return arms, sites


def find_arms(model_file: str) -> set[Arm]:
    """Every arm but dispatch arms (they need the model) of the methods reachable from the
    ``forward`` methods in ``model_file``."""
    return _analyse(model_file)[0]


def _containers(model: nn.Module, site: DispatchSite) -> Iterator[dict[str, nn.Module]]:
    """``key -> module`` of attribute ``site.attribute`` of every instance of ``site.owner``
    in ``model``, where that attribute holds modules."""
    for module in model.modules():
        if type(module).__name__ != site.owner:
            continue
        container = getattr(module, site.attribute, None)
        if isinstance(container, nn.ModuleDict | dict):
            items = {str(key): value for key, value in container.items()}
        elif isinstance(container, nn.ModuleList | list | tuple):
            items = {str(index): value for index, value in enumerate(container)}
        else:
            continue
        if items and all(isinstance(value, nn.Module) for value in items.values()):
            yield items


@contextlib.contextmanager
def record_dispatches(model: nn.Module, sites: Sequence[DispatchSite],
                      dispatched: set[tuple[str, str, str]]) -> Iterator[None]:
    """Add ``(class, attribute, key)`` to ``dispatched`` whenever a module a dispatch site
    can pick runs."""
    def recorder(label: tuple[str, str, str]):
        return lambda module, args: dispatched.add(label)

    handles = []
    for site in {(s.owner, s.attribute): s for s in sites}.values():
        for items in _containers(model, site):
            for key, module in items.items():
                label = (site.owner, site.attribute, key)
                handles.append(module.register_forward_pre_hook(recorder(label)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def dispatch_arms(model: nn.Module, sites: Sequence[DispatchSite]) -> set[Arm]:
    """One ``dispatch[KEY]`` arm per module each site can pick."""
    return {Arm(site.line, f"dispatch[{key}]", dispatch=(site.owner, site.attribute, key))
            for site in sites for items in _containers(model, site) for key in items}


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
def trace_lines(model_file: str, observed: Observed) -> Iterator[None]:
    """Record in ``observed`` the executed lines, line-to-line jumps and entered functions
    of code defined in ``model_file``; a jump to ``RETURNED`` means the function returned
    from that line."""
    target = os.path.realpath(model_file)
    previous: dict[object, int] = {}

    def local_trace(frame, event, arg):
        if event == "line":
            observed.jumps.add((previous.get(frame, frame.f_code.co_firstlineno),
                                frame.f_lineno))
            observed.lines.add(frame.f_lineno)
            previous[frame] = frame.f_lineno
        elif event == "return":
            observed.jumps.add((previous.pop(frame, frame.f_lineno), RETURNED))
        return local_trace

    is_target: dict[str, bool] = {}

    def global_trace(frame, event, arg):
        filename = frame.f_code.co_filename
        if filename not in is_target:
            is_target[filename] = os.path.realpath(filename) == target
        if not is_target[filename]:
            return None
        observed.entered.add(frame.f_code.co_firstlineno)
        return local_trace

    old = sys.gettrace()
    sys.settrace(global_trace)
    try:
        yield
    finally:
        sys.settrace(old)


def branch_arms_taken(model_file: str, model: nn.Module,
                      inputs_list: Sequence[tuple[object, ...]]
                      ) -> tuple[set[Arm], set[Arm]]:
    """Run ``model`` on every input tuple and return ``(arms taken, all arms)``.

    Outputs are discarded; call the model again untraced if they are needed.
    """
    _, candidate_sites = _analyse(model_file)
    observed = Observed()
    with (torch.no_grad(), eager_control_flow_operators(),
          record_dispatches(model, candidate_sites, observed.dispatched),
          trace_lines(model_file, observed)):
        for inputs in inputs_list:
            model(*inputs)
    arms, sites = _analyse(model_file, observed.entered)
    arms |= dispatch_arms(model, sites)
    return {arm for arm in arms if arm.taken(observed)}, arms
