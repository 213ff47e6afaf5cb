"""Properties of programs themselves, checked on generated ones: printing and parsing are
inverse (custom and generic form, with and without locations), the generic form is valid
MLIR (torch-mlir's bindings parse and verify it), and the LLVM backend computes what the
reference interpreter computes."""

from __future__ import annotations

import pathlib

from ir.program import parse_and_verify, print_module
from passkit.oracle import outcome, outcome_difference
from passkit.programs import GENERATED_FILENAME, GeneratedProgram
from passkit.properties import PropertyFailure
from runtime.program import compile_program

LLVM_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
"""Compiled kernels sum in another order than eager PyTorch (see docs/backend.md)."""


def _reprint(text: str, *, generic: bool = False, debuginfo: bool = False) -> str:
    module = parse_and_verify(text, GENERATED_FILENAME)
    return print_module(module, generic=generic, debuginfo=debuginfo)


def check_print_parse_fixpoint(program: GeneratedProgram) -> None:
    """print(parse(text)) is a fixpoint in both forms, both forms are the same module, and
    locations printed with `loc(...)` parse back to the same locations."""
    module = program.module()
    custom = print_module(module)
    generic = print_module(module, generic=True)
    located = print_module(module, debuginfo=True)
    if _reprint(custom) != custom:
        raise PropertyFailure("the custom form is not a fixpoint of print(parse(...))")
    if _reprint(generic, generic=True) != generic:
        raise PropertyFailure("the generic form is not a fixpoint of print(parse(...))")
    if _reprint(generic) != custom:
        raise PropertyFailure("the generic form parses to another module than the custom form")
    if _reprint(located, debuginfo=True) != located:
        raise PropertyFailure("locations printed with --print-debuginfo do not parse back")


def check_mlir_accepts_generic(program: GeneratedProgram, mlir_ir) -> None:
    """torch-mlir's MLIR (`mlir_ir`: `torch_mlir.ir`, in a context with the torch dialect
    registered and unregistered dialects allowed) parses and verifies the generic form."""
    generic = print_module(program.module(), generic=True)
    try:
        module = mlir_ir.Module.parse(generic)
    except Exception as error:  # noqa: BLE001 - MLIR raises its own error types
        raise PropertyFailure(f"MLIR rejects the generic form: {error}") from None
    if not module.operation.verify():
        raise PropertyFailure("MLIR parses the generic form but does not verify it")


def check_llvm_agrees(program: GeneratedProgram, inputs_list, cache_dir: pathlib.Path) -> None:
    """The program compiled with the LLVM backend has the interpreter's outcome (numbers
    within `LLVM_TOLERANCE`) on every input set of `inputs_list`."""
    compiled = compile_program(program.text, program.params, backend="llvm", cache_dir=cache_dir)
    reference = program.module()
    for inputs in inputs_list:
        expected = outcome(reference, program.params, inputs)
        try:
            actual = "results", compiled(*inputs)
        except Exception as error:  # noqa: BLE001 - compared with the interpreter's error
            actual = "error", str(error)
        difference = outcome_difference(expected, actual, **LLVM_TOLERANCE)
        if difference is not None:
            raise PropertyFailure(f"the LLVM backend disagrees with the interpreter:\n{difference}")
