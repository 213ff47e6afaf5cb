"""Errors raised by the LLVM back end, and MLIR diagnostics turned into them."""

import re

from torch_mlir import ir
from torch_mlir.passmanager import PassManager


class LoweringError(Exception):
    """A sub-graph could not be compiled; the caller should run it eagerly.

    The message starts with the first torch op that torch-mlir could not lower
    (for example ``torch.aten.foo: failed to legalize``) when one is known.
    """


_UNKNOWN_OPERATOR_NAME = re.compile(r'name = "(torch\.[A-Za-z0-9_.]+)"')
_QUOTED_TORCH_OP = re.compile(r"'(torch\.[A-Za-z0-9_.]+)'")


def _diagnostic_messages(error: ir.MLIRError) -> list[str]:
    messages = []

    def collect(diagnostic) -> None:
        messages.append(f"{diagnostic.message} [{diagnostic.location}]")
        for note in diagnostic.notes:
            collect(note)

    for diagnostic in error.error_diagnostics:
        collect(diagnostic)
    return messages or [error.message]


def lowering_error(stage: str, error: ir.MLIRError) -> LoweringError:
    """Builds a LoweringError whose message leads with the first unlowerable torch op."""
    messages = _diagnostic_messages(error)
    details = "; ".join(messages)
    for message in messages:
        match = _UNKNOWN_OPERATOR_NAME.search(message) or _QUOTED_TORCH_OP.search(message)
        if match:
            reason = "failed to legalize" if "legalize" in message else message.split(" [")[0]
            return LoweringError(f"{match.group(1)}: {reason} ({stage}); {details}")
    return LoweringError(f"{stage} failed: {details}")


def run_pipeline(module: ir.Module, pipeline: str, stage: str) -> None:
    try:
        PassManager.parse(pipeline, context=module.context).run(module.operation)
    except ir.MLIRError as error:
        raise lowering_error(stage, error) from None
    except ValueError as error:
        raise LoweringError(f"{stage}: invalid pass pipeline: {error}") from None
