"""Every registered pass, on generated programs, with sampled options (`passkit`): the
output verifies and prints back, computes what the input computes, is a fixpoint where the
pass declares itself idempotent, and the generator gives the pass work. Parametrized over
the registry, so a pass joining it is covered without touching this file."""

from __future__ import annotations

import pytest

from passes.registry import DEFAULT_PIPELINE, PASSES, declarations
from passkit import check_pass_gets_work, check_pass_properties, check_pipeline_properties

pytestmark = pytest.mark.property


@pytest.mark.parametrize("pass_name", sorted(PASSES))
def test_pass_preserves_semantics_verifies_and_is_idempotent(pass_name: str):
    report = check_pass_properties(PASSES[pass_name])
    assert report.tried > 0


@pytest.mark.parametrize("pass_name", sorted(PASSES))
def test_generated_programs_give_the_pass_work(pass_name: str):
    check_pass_gets_work(PASSES[pass_name])


@pytest.mark.parametrize("pass_name", sorted(PASSES))
def test_every_option_has_a_sample_space(pass_name: str):
    """Options the kit cannot sample (neither declared in `option_space` nor `bool` /
    `Literal`) would only ever be tested at their default."""
    assert declarations(PASSES[pass_name]).undeclared_options == ()


def test_default_pipeline_preserves_semantics():
    check_pipeline_properties(DEFAULT_PIPELINE)
