"""Running a pipeline: every pass, then the verifier, as `opt-pipeline` and the runtime's
codegen both do. Instrumentation (MLIR's `PassInstrumentation`) observes each pass: the
CLI's IR printing and timing are instrumentations."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from ir.program import IRError, ProgramContext, verify_module


class PassInstrumentation:
    """Hooks around each pass of a pipeline; the defaults do nothing."""

    def before_pass(self, program_pass: ModulePass, module: ModuleOp) -> None:
        """Called before `program_pass` runs."""

    def after_pass(self, program_pass: ModulePass, module: ModuleOp) -> None:
        """Called after `program_pass` ran, before the module is verified."""

    def after_verification(self, program_pass: ModulePass, module: ModuleOp) -> None:
        """Called once the module `program_pass` left verified."""


def run_pipeline(
    module: ModuleOp,
    passes: Sequence[ModulePass],
    instrumentations: Sequence[PassInstrumentation] = (),
) -> None:
    """Apply `passes` in order, verifying after each; a verifier failure is reported at its
    op as `after pass 'NAME': ...`."""
    ctx = ProgramContext()
    for program_pass in passes:
        for instrumentation in instrumentations:
            instrumentation.before_pass(program_pass, module)
        program_pass.apply(ctx, module)
        for instrumentation in instrumentations:
            instrumentation.after_pass(program_pass, module)
        try:
            verify_module(module)
        except IRError as error:
            error.message = f"after pass '{program_pass.name}': {error.message}"
            raise
        for instrumentation in instrumentations:
            instrumentation.after_verification(program_pass, module)
