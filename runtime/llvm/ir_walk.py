"""Queries over MLIR modules that several lowering steps share."""

from torch_mlir import ir


def ops_named(module: ir.Module, name: str) -> list[ir.Operation]:
    """Every operation called `name` in `module`, in walk order."""
    found = []

    def visit(operation):
        if operation.operation.name == name:
            found.append(operation.operation)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return found
