"""passkit: property-based testing of `dy` program transforms, for pass authors.

    from passkit import check_pass_properties, check_pass_gets_work
    check_pass_properties(MyPass)     # semantics, verifier, idempotence, on generated programs
    check_pass_gets_work(MyPass)      # the generated programs give the pass work

Strategies: `programs(ProgramShape(...))` (random verified programs with parameters and
inputs), `inputs_for(module)` / `params_for(module)` (for any program). Oracle:
`outcome` (the reference interpreter) and `outcome_difference`. See docs/testing.md.
"""

from passkit import profiles
from passkit.inputs import inputs_for, params_for
from passkit.oracle import outcome, outcome_difference, same_value
from passkit.programs import GeneratedProgram, programs
from passkit.properties import (
    REPORTS,
    PassReport,
    PropertyFailure,
    check_pass_gets_work,
    check_pass_properties,
    check_pipeline_properties,
    check_transform,
    pass_instances,
    shape_for,
)
from passkit.shape import ProgramShape

__all__ = [
    "REPORTS",
    "GeneratedProgram",
    "PassReport",
    "ProgramShape",
    "PropertyFailure",
    "check_pass_gets_work",
    "check_pass_properties",
    "check_pipeline_properties",
    "check_transform",
    "inputs_for",
    "outcome",
    "outcome_difference",
    "params_for",
    "pass_instances",
    "profiles",
    "programs",
    "same_value",
    "shape_for",
]
