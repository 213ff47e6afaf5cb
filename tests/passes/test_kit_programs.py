"""The kit's generated programs as programs: printing and parsing are inverse in both
forms and with locations, real MLIR parses and verifies the generic form, and the LLVM
backend agrees with the reference interpreter (few examples: each compiles sub-graphs,
0.3-1 s apiece; `--hypothesis-profile=thorough` runs more)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passkit import ProgramShape, inputs_for, programs
from passkit.forms import check_llvm_agrees, check_mlir_accepts_generic, check_print_parse_fixpoint
from passkit.profiles import scaled

pytestmark = pytest.mark.property


@scaled(0.5)
@given(program=programs())
def test_generated_programs_print_and_parse_back(program):
    check_print_parse_fixpoint(program)


@pytest.fixture(scope="module")
def mlir_ir():
    from torch_mlir import ir
    from torch_mlir.dialects import torch as torch_dialect

    with ir.Context() as context:
        torch_dialect.register_dialect(context)
        context.allow_unregistered_dialects = True
        yield ir


@scaled(0.6)
@given(program=programs())
def test_generic_form_of_generated_programs_is_valid_mlir(mlir_ir, program):
    check_mlir_accepts_generic(program, mlir_ir)


@pytest.fixture(scope="module")
def kernel_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("kernels")


STATIC_SHAPES = ProgramShape(max_depth=2, helpers=(0, 0), batch="static").weighted(list=0)
"""Dynamic (`?`) dimensions, of inputs or of a `dy.list_stack` result, are not compiled
yet: the engine's argument check rejects a `[?,3]` tensor (found by this property, left
to the LLVM backend's owners; the frontend never feeds a list's stack to tensor compute)."""


@scaled(0.12, minimum=3)
@given(program=programs(STATIC_SHAPES), data=st.data())
def test_llvm_backend_agrees_with_the_interpreter(kernel_cache, program, data):
    more = data.draw(inputs_for(program.module()), label="more inputs")
    check_llvm_agrees(program, [program.inputs, more], kernel_cache)
