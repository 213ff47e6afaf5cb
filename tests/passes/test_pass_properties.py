"""Every registered pass, on random verified programs: the result verifies, computes what
the original computes (the reference interpreter is the oracle), and a second application
changes nothing. Parametrized over `PASSES`, so a pass joining the registry is covered
without touching this file."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings

from ir.program import ProgramContext, parse_and_verify, print_module, verify_module
from passes.registry import DEFAULT_PIPELINE, PASSES, build_pipeline
from runtime.interpreter import ExecutionError, run_program
from tests.support.programs import GeneratedProgram, programs

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def outcome(module, program: GeneratedProgram):
    """What running the program yields: its results, or the error it stops with."""
    try:
        return "results", run_program(module, program.params, program.inputs)
    except ExecutionError as error:
        return "error", str(error)


def same_value(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and torch.allclose(a, b, equal_nan=True)
        )
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def assert_same_outcome(before, after) -> None:
    assert before[0] == after[0], f"before: {before}\nafter: {after}"
    if before[0] == "error":
        assert before[1] == after[1]
        return
    assert len(before[1]) == len(after[1])
    for index, (a, b) in enumerate(zip(before[1], after[1])):
        assert same_value(a, b), f"result #{index} differs: {a!r} vs {b!r}"


def apply(passes, module) -> None:
    for program_pass in passes:
        program_pass.apply(ProgramContext(), module)


@pytest.mark.parametrize("pass_name", sorted(PASSES))
@PROPERTY_SETTINGS
@given(program=programs())
def test_pass_preserves_verification_and_semantics(pass_name: str, program: GeneratedProgram):
    for feature in sorted(program.features):
        event(feature)
    before = parse_and_verify(program.text, "<generated>")
    after = parse_and_verify(program.text, "<generated>")
    apply([PASSES[pass_name]()], after)
    verify_module(after)
    assert_same_outcome(outcome(before, program), outcome(after, program))


@pytest.mark.parametrize("pass_name", sorted(PASSES))
@PROPERTY_SETTINGS
@given(program=programs())
def test_pass_is_idempotent(pass_name: str, program: GeneratedProgram):
    module = parse_and_verify(program.text, "<generated>")
    apply([PASSES[pass_name]()], module)
    once = print_module(module)
    apply([PASSES[pass_name]()], module)
    verify_module(module)
    assert print_module(module) == once


@PROPERTY_SETTINGS
@given(program=programs())
def test_default_pipeline_preserves_semantics(program: GeneratedProgram):
    before = parse_and_verify(program.text, "<generated>")
    after = parse_and_verify(program.text, "<generated>")
    for program_pass in build_pipeline(DEFAULT_PIPELINE):
        program_pass.apply(ProgramContext(), after)
        verify_module(after)
    assert_same_outcome(outcome(before, program), outcome(after, program))


def test_generated_programs_give_the_passes_work():
    """Guards the generator: without constant branches or dead code the properties above
    would hold vacuously for fold-constant-branches and dce."""

    changed: dict[str, int] = {name: 0 for name in ("fold-constant-branches", "dce")}

    @settings(max_examples=25, deadline=None, database=None, derandomize=True)
    @given(program=programs())
    def count(program: GeneratedProgram):
        for name in changed:
            module = parse_and_verify(program.text)
            original = print_module(module)
            apply([PASSES[name]()], module)
            changed[name] += print_module(module) != original

    count()
    assert all(count >= 8 for count in changed.values()), changed
