"""`ProgramShape`: the distribution of generated programs, tunable so a pass's pattern is
actually generated.

    shape = ProgramShape().containing("dy.switch", "constant condition")
    shape = ProgramShape(batch="dynamic").weighted(while_=4, list=3)

Weights are relative frequencies of statement kinds and exits; `require` names features
every program must contain (a statement that has them is written at the top level of
`@forward` when the random part did not produce one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

STATEMENTS: dict[str, int] = {
    "tensor": 2,
    "scalar": 1,
    "int": 1,
    "float": 1,
    "cond": 1,
    "list": 1,
    "call": 1,
    "integer tensor": 1,
    "if": 3,
    "switch": 2,
    "for": 1,
    "while": 1,
}
"""Default statement weights; `if` .. `while` only where nesting depth allows."""

SWARM_FACTORS = (1, 0, 3)
KEPT_BY_SWARM = ("tensor", "yield")
"""Kinds swarm testing never switches off: every program computes and falls through."""

EXITS: dict[str, int] = {"yield": 3, "return": 1, "break": 1, "continue": 1}
"""Default weights of how a region ends; `break` / `continue` only inside loops."""

FORCED_CONSTRUCTS: dict[str, str] = {
    "dy.if": "if",
    "dy.yield": "if",
    "constant condition": "constant if",
    "dy.switch": "switch",
    "dy.for": "for",
    "dy.while": "while",
    "dy.condition": "while",
    "early dy.return": "return",
    "dy.break": "break",
    "dy.continue": "continue",
    "dy.list_empty": "list len",
    "dy.list_append": "list len",
    "dy.list_len": "list len",
    "dy.list_get": "list get",
    "dy.list_stack": "list stack",
    "dy.list_cat": "list cat",
    "dy.call": "graph call",
    "dy.graph": "graph call",
    "dy.output": "graph call",
    "dy.func call": "func call",
    "dy.param": "param",
    "dy.item": "scalar",
    "dy.scalar_to_tensor": "scalar add",
    "integer tensor": "integer tensor",
    "dynamic shape": "dynamic shape",
}
"""What `ProgramShape.require` may name (op names, and features that are not one op:
`constant condition`, `early dy.return` (not the function's last op), `dy.func call`,
`integer tensor`, `dynamic shape`), with the construct that provides each."""


def check_feature(name: str) -> str:
    if name not in FORCED_CONSTRUCTS:
        known = ", ".join(sorted(FORCED_CONSTRUCTS))
        raise ValueError(f"unknown program feature '{name}' (known: {known})")
    return name


@dataclass(frozen=True)
class ProgramShape:
    """How generated programs are distributed (see the module docstring)."""

    statements: Mapping[str, int] = field(default_factory=lambda: dict(STATEMENTS))
    exits: Mapping[str, int] = field(default_factory=lambda: dict(EXITS))
    max_depth: int = 3
    max_loop_nesting: int = 2
    batch: Literal["static", "dynamic", "either"] = "either"
    """Whether tensors have a static batch dimension (2) or a dynamic one (`?`)."""
    helpers: tuple[int, int] = (0, 1)
    """How many helper `dy.func`s (min, max)."""
    require: tuple[str, ...] = ()
    swarm: bool = True
    """Swarm testing (Groce et al., ISSTA 2012): each program draws its own weights, every
    kind's weight times 1, 0 or 3, so some programs are made mostly of a few constructs
    (exits everywhere, loops in loops) that an even mix rarely combines."""

    def __post_init__(self):
        object.__setattr__(self, "require", tuple(check_feature(f) for f in self.require))
        unknown = (set(self.statements) - set(STATEMENTS)) | (set(self.exits) - set(EXITS))
        if unknown:
            raise ValueError(f"unknown statement or exit kinds: {sorted(unknown)}")

    def containing(self, *features: str) -> ProgramShape:
        """The same distribution, every program containing `features` too."""
        return replace(self, require=(*self.require, *features))

    def weighted(self, **weights: int) -> ProgramShape:
        """Change weights: `weighted(while_=4, return_=3)` (a trailing `_` for keywords;
        spaces as `_`, e.g. `integer_tensor=0`)."""
        statements, exits = dict(self.statements), dict(self.exits)
        for key, weight in weights.items():
            name = key.rstrip("_").replace("_", " ")
            target = exits if name in EXITS else statements
            if name not in STATEMENTS and name not in EXITS:
                raise ValueError(f"unknown statement or exit kind '{key}'")
            target[name] = weight
        return replace(self, statements=statements, exits=exits)
