"""The one registry of passes: `opt-pipeline`, the runtime's codegen, the docs and the
testing kit (`passkit`) all read it.

A new pass joins by adding its class to `_PASS_CLASSES` below (see docs/writing-a-pass.md).
What the kit checks about it comes from declarations on the class, read by `declarations`:

* `idempotent: ClassVar[bool]` (default True): a second run changes nothing;
* `option_space: ClassVar[dict[str, tuple]]`: the values the kit samples for each option
  (a dataclass field); `bool` and `Literal[...]` options need none;
* `exercised_by: ClassVar[tuple[str, ...]]`: constructs (op names such as `"dy.switch"`)
  that a program must contain to give the pass work; the kit generates programs that
  contain them.
* `exercised_weights: ClassVar[dict[str, int]]`: statement and exit weights (as
  `passkit.ProgramShape.weighted` takes them) under which generated programs have the
  shape of code the pass rewrites, e.g. `{"while_": 0}`.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from xdsl.passes import ModulePass
from xdsl.utils.arg_spec import ArgSpecParseError, parse_pipeline

from passes.dead_code_elimination import DeadCodeElimination
from passes.fold_constant_branches import FoldConstantBranches
from passes.if_convert import IfConvert
from passes.outline_regions import OutlineRegions

_PASS_CLASSES: tuple[type[ModulePass], ...] = (
    FoldConstantBranches,
    DeadCodeElimination,
    OutlineRegions,
    IfConvert,
)

PASSES: dict[str, type[ModulePass]] = {cls.name: cls for cls in _PASS_CLASSES}

DEFAULT_PIPELINE = "fold-constant-branches,dce,outline-regions"
"""The codegen pipeline: what `opt-pipeline` runs without `-p`, and what
`runtime.compile_program` runs before the LLVM backend compiles the sub-graphs (so
`frontends.torch.compile` runs it). It ends with `outline-regions`, whose post-condition
(no tensor compute left in the host) the backend needs."""


class PipelineError(Exception):
    """A pipeline spelling that names an unknown pass or a bad option; `column` is 1-based."""

    def __init__(self, column: int, message: str):
        super().__init__(message)
        self.column = column
        self.message = message


def build_pipeline(spec: str) -> list[ModulePass]:
    """Turn `a,b{opt=1}` into configured pass instances, in order."""
    if spec.rstrip().endswith(","):
        raise PipelineError(len(spec.rstrip()), "expected a pass name after ','")
    try:
        specs = list(parse_pipeline(spec))
    except ArgSpecParseError as error:
        location, _, _, message = str(error).strip().splitlines()[-4:]
        column = int(location.rsplit(":", 1)[1])
        raise PipelineError(column, message.strip()) from None
    passes = []
    search_from = 0
    for pass_spec in specs:
        column = spec.find(pass_spec.name, search_from) + 1
        search_from = max(column, 0)
        if pass_spec.name not in PASSES:
            known = ", ".join(sorted(PASSES))
            raise PipelineError(column, f"unknown pass '{pass_spec.name}' (known passes: {known})")
        try:
            passes.append(PASSES[pass_spec.name].from_pass_spec(pass_spec))
        except (ValueError, TypeError) as error:
            raise PipelineError(
                column, f"bad options for pass '{pass_spec.name}': {error}"
            ) from None
    return passes


@dataclass(frozen=True)
class PassDeclarations:
    """What a pass class declares about itself for the testing kit."""

    idempotent: bool
    option_space: Mapping[str, tuple[object, ...]]
    """Every option (dataclass field) with the values to sample; an undeclared option
    that is neither `bool` nor `Literal` is sampled at its default only."""
    undeclared_options: tuple[str, ...]
    exercised_by: tuple[str, ...]
    exercised_weights: Mapping[str, int]


def _default_of(option: dataclasses.Field) -> tuple[object, ...]:
    if option.default is not dataclasses.MISSING:
        return (option.default,)
    if option.default_factory is not dataclasses.MISSING:
        return (option.default_factory(),)
    return ()


def declarations(pass_class: type[ModulePass]) -> PassDeclarations:
    """The declarations of `pass_class`, with what an undeclared one defaults to."""
    declared = dict(getattr(pass_class, "option_space", {}))
    hints = typing.get_type_hints(pass_class)
    space: dict[str, tuple[object, ...]] = {}
    undeclared = []
    for option in dataclasses.fields(pass_class):
        if option.name in declared:
            space[option.name] = tuple(declared[option.name])
        elif hints.get(option.name) is bool:
            space[option.name] = (False, True)
        elif typing.get_origin(hints.get(option.name)) is typing.Literal:
            space[option.name] = typing.get_args(hints[option.name])
        else:
            undeclared.append(option.name)
            space[option.name] = _default_of(option)
    return PassDeclarations(
        idempotent=bool(getattr(pass_class, "idempotent", True)),
        option_space=space,
        undeclared_options=tuple(undeclared),
        exercised_by=tuple(getattr(pass_class, "exercised_by", ())),
        exercised_weights=dict(getattr(pass_class, "exercised_weights", {})),
    )
