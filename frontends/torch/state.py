"""The evaluator's bookkeeping: inlined frames, the points where paths meet, the loops being
converted, and where new ops go.

Control flow is evaluated in continuation-passing style (see `statements`). A `Join` is a
point where paths meet (after a branch, at the end of an unrolled loop or of an inlined
helper); every path that reaches it records an `Arrival` (its block and its values), and
`joins.resolve` merges them. Each `Frame` is one inlined Python function, with the stack of
loops it is inside.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xdsl.ir import Block

from frontends.torch.stretch import Stretch

if TYPE_CHECKING:
    from frontends.torch.joins import CarryPlan


@dataclass(eq=False)
class Join:
    """A point where paths meet: after a branch, at the end of an unrolled loop or of an
    inlined helper. `owner` is the block where control continues once it is resolved."""

    owner: Block
    loop_depth: int
    carries_environment: bool
    pending_ifs: set[int] = field(default_factory=set)
    mutation_mark: int = 0
    """Where `Converter.mutations` stood when the join was created: in-place updates after
    it are updates on the paths that meet here."""


@dataclass(eq=False)
class Arrival:
    """One path reaching a join: the block it ends in and what it brings (its variables, or
    the value it returns)."""

    join: Join
    block: Block
    payload: Any
    touched: dict[int, tuple[Any, Any, Any]] = field(default_factory=dict)
    """Handles that existed before the join and that this path updated in place:
    id -> (handle, value before the join, value on arrival)."""


@dataclass(eq=False)
class UnrolledLoop:
    """A loop unrolled at compile time: its exit join, and how to run the next iteration
    (what `continue` does)."""

    exit: Join
    next_iteration: Callable[[], None] | None = None
    after: Callable[[], None] | None = None
    """When set, a path that leaves the loop runs the code after it itself (continuation-
    passing) instead of meeting the other paths at `exit`: a loop of an inlined helper
    whose body returns, so that each path reaches the helper's end with what it knows."""


@dataclass(eq=False)
class StagedLoop:
    """A loop staged as `dy.while`: which names it carries and how they flatten."""

    names: list[str]
    plan: CarryPlan
    observed_mismatch: list[tuple[int, Any]] = field(default_factory=list)
    """(leaf index, type) of carried values an exit of the body gave another type."""
    changed_names: list[tuple[int, Any]] = field(default_factory=list)
    """(name position, value) of names that entered as None and left holding a value."""
    handles: list[tuple[Any, Any]] = field(default_factory=list)
    """(handle, hole) of tensor handles the loop carries: names that alias one keep
    referring to it, in-place updates in the body update it."""
    rebound_names: set[int] = field(default_factory=set)
    """Positions of names that referred to a handle and were rebound in the body."""
    touched: list[Any] = field(default_factory=list)
    """Handles defined before the loop that the body updated in place without carrying."""
    owner: Block | None = None
    """The block the loop is in."""
    body_mark: int = 0
    """Where `Converter.mutations` stood when the body started."""


@dataclass(eq=False)
class FunctionSource:
    """The parsed source of one function: its `def` node, the file diagnostics name and the
    offset of its first line in that file."""

    node: ast.FunctionDef
    filename: str
    line_offset: int
    inlined_node: ast.FunctionDef | None = None
    """The `def` as an inlined helper runs it (returns from inside loops rewritten)."""


class Frame:
    """One inlined Python function: its variables, where its code is, how it returns."""

    def __init__(
        self,
        env: dict[str, Any],
        globals_: dict[str, Any],
        source: FunctionSource,
        closure: dict[str, Any],
        parent: Frame | None = None,
        return_join: Join | None = None,
        class_cell: type | None = None,
    ):
        self.env = env
        self.globals = globals_
        self.source = source
        self.closure = closure
        self.parent = parent
        self.return_join = return_join
        self.class_cell = class_cell
        self.loops: list[UnrolledLoop | StagedLoop] = []
        self.caller: Frame | None = None
        """The frame that called this one (inlined), while this one runs."""
        self.depth = 0

    def lookup(self, name: str) -> Any:
        frame: Frame | None = self
        while frame is not None:
            if name in frame.env:
                return frame.env[name]
            if name in frame.closure:
                return frame.closure[name]
            frame = frame.parent
        if name in self.globals:
            return self.globals[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise KeyError(name)


@dataclass
class InsertionPoint:
    """Where the evaluator is: the block new ops go to, the stretch recording tensor calls
    for it, and whether any path reaches this point at all."""

    block: Block
    stretch: Stretch = field(default_factory=Stretch)
    reachable: bool = True


class PathEnded(Exception):
    """Raised inside an expression whose evaluation ended every path (nothing follows)."""
