"""The one registry of passes: `opt-pipeline`, the docs and the tests all read it.

A new pass joins by adding its class to `_PASS_CLASSES` below (see docs/writing-a-pass.md).
"""

from __future__ import annotations

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
"""What `opt-pipeline` runs without `-p`: the pipeline that prepares a program for codegen."""


class PipelineError(Exception):
    """A pipeline spelling that names an unknown pass or a bad option; `column` is 1-based."""

    def __init__(self, column: int, message: str):
        super().__init__(message)
        self.column = column
        self.message = message


def build_pipeline(spec: str) -> list[ModulePass]:
    """Turn `a,b{opt=1}` into configured pass instances, in order."""
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
