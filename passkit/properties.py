"""Properties of passes, checked on generated programs with the options each pass declares.

For a pass class (registered or not):

* `check_pass_properties(cls)`: on every generated program and sampled options, the output
  verifies and prints/parses back, the reference interpreter gives the same outcome
  before and after on several inputs, and, when the pass declares itself idempotent, a
  second run changes nothing;
* `check_pass_gets_work(cls)`: the pass changes at least `MIN_CHANGED_SHARE` of the
  programs generated for it (else the properties above hold vacuously: the generator
  does not reach the pass; declare `exercised_by` on the pass);
* `check_pipeline_properties(spec)`: the same for a whole pipeline.

Programs for a pass follow `shape_for(cls)`: the default distribution, containing what the
pass declares in `exercised_by`. Each check returns a `PassReport` (programs tried and
changed), also collected in `REPORTS` for the test run's summary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, event, given, note, seed, settings
from hypothesis import strategies as st
from xdsl.passes import ModulePass

from ir.program import IRError, parse_and_verify, print_module
from passes.pipeline import run_pipeline
from passes.registry import build_pipeline, declarations
from passkit.inputs import inputs_for
from passkit.oracle import outcome, outcome_difference
from passkit.programs import GeneratedProgram, programs
from passkit.shape import ProgramShape

MIN_CHANGED_SHARE = 0.2
WORK_EXAMPLES = 40
EXTRA_INPUTS = 2
"""Input sets per program besides its own: different paths, different dynamic sizes."""


@dataclass
class PassReport:
    """How many generated programs a check tried, and how many the pass changed."""

    subject: str
    check: str
    tried: int = 0
    changed: int = 0

    def __str__(self) -> str:
        share = 100.0 * self.changed / self.tried if self.tried else 0.0
        return (
            f"{self.subject} ({self.check}): changed {self.changed} of {self.tried} "
            f"generated programs ({share:.0f}%)"
        )


REPORTS: list[PassReport] = []


def pass_instances(pass_class: type[ModulePass]) -> st.SearchStrategy[ModulePass]:
    """The pass configured with options sampled from its declared option space."""
    space = declarations(pass_class).option_space
    options = st.fixed_dictionaries(
        {name: st.sampled_from(values) for name, values in space.items()}
    )
    return options.map(lambda chosen: pass_class(**chosen))


def shape_for(pass_class: type[ModulePass]) -> ProgramShape:
    declared = declarations(pass_class)
    return ProgramShape().containing(*declared.exercised_by).weighted(**declared.exercised_weights)


class PropertyFailure(AssertionError):
    """A pass broke a property; the message says which and how."""


def apply_checked(passes: Sequence[ModulePass], module, *, reparse: bool = True) -> str:
    """Run `passes` with verification after each; the printed result, which (when
    `reparse`) must parse back to itself."""
    try:
        run_pipeline(module, passes)
    except IRError as error:
        raise PropertyFailure(f"the output does not verify: {error}") from None
    printed = print_module(module)
    if reparse and print_module(parse_and_verify(printed, "<pass output>")) != printed:
        raise PropertyFailure("the output does not print and parse back to itself")
    return printed


def check_transform(
    passes: Sequence[ModulePass],
    program: GeneratedProgram,
    extra_inputs: Sequence[list],
    idempotent: bool,
) -> bool:
    """All properties of `passes` on one program; whether the passes changed it."""
    before, after = program.module(), program.module()
    original = print_module(before)
    once = apply_checked(passes, after)
    for inputs in [program.inputs, *extra_inputs]:
        difference = outcome_difference(
            outcome(before, program.params, inputs), outcome(after, program.params, inputs)
        )
        if difference is not None:
            note(f"after the pass:\n{once}")
            raise PropertyFailure(f"the pass changed what the program computes:\n{difference}")
    if idempotent and apply_checked(passes, after, reparse=False) != once:
        note(f"after one run:\n{once}\nafter two:\n{print_module(after)}")
        raise PropertyFailure("the pass is declared idempotent, but a second run changed the IR")
    return once != original


def _hypothesis_test(
    subject: str, body: Callable, strategy_kwargs: dict, test_settings, random_seed
):
    """A hypothesis test of `body` under the current profile (or `test_settings`), with a
    database key of its own per subject."""
    wrapped = given(**strategy_kwargs)(body)
    wrapped._hypothesis_internal_add_digest = subject.encode()
    if random_seed is not None:
        wrapped = seed(random_seed)(wrapped)
    base = test_settings or settings()
    return settings(
        base,
        deadline=None,
        suppress_health_check=[
            *base.suppress_health_check,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )(wrapped)


def check_passes(
    subject: str,
    pass_lists: st.SearchStrategy[list[ModulePass]],
    idempotent: bool,
    shape: ProgramShape,
    test_settings: settings | None = None,
    random_seed: int | None = None,
) -> PassReport:
    report = PassReport(subject, "semantics, verifier" + (", idempotence" if idempotent else ""))

    def body(program: GeneratedProgram, passes: list[ModulePass], data: st.DataObject):
        module = program.module()
        extra = [data.draw(inputs_for(module), label="more inputs") for _ in range(EXTRA_INPUTS)]
        changed = check_transform(passes, program, extra, idempotent)
        report.tried += 1
        report.changed += changed
        event("changed" if changed else "unchanged")

    test = _hypothesis_test(
        subject,
        body,
        {"program": programs(shape), "passes": pass_lists, "data": st.data()},
        test_settings,
        random_seed,
    )
    test()
    REPORTS.append(report)
    return report


def check_pass_properties(
    pass_class: type[ModulePass],
    *,
    shape: ProgramShape | None = None,
    test_settings: settings | None = None,
    random_seed: int | None = None,
) -> PassReport:
    """Semantics preserved, output verified, idempotence where declared; see the module
    docstring. Raises (a shrunk counterexample) when a property fails. `test_settings`
    replaces the profile's, `random_seed` fixes hypothesis's."""
    return check_passes(
        pass_class.name,
        pass_instances(pass_class).map(lambda p: [p]),
        declarations(pass_class).idempotent,
        shape or shape_for(pass_class),
        test_settings,
        random_seed,
    )


def check_pipeline_properties(spec: str, *, shape: ProgramShape | None = None) -> PassReport:
    """`check_pass_properties` for the pipeline `spec` (idempotence is not asked)."""
    return check_passes(
        f"pipeline '{spec}'", st.just(build_pipeline(spec)), False, shape or ProgramShape()
    )


def check_pass_gets_work(
    pass_class: type[ModulePass],
    *,
    shape: ProgramShape | None = None,
    examples: int = WORK_EXAMPLES,
    min_share: float = MIN_CHANGED_SHARE,
) -> PassReport:
    """The pass (first declared options) changes at least `min_share` of `examples` programs,
    drawn deterministically so the share is the same on every run."""
    report = PassReport(pass_class.name, "gets work")
    space = declarations(pass_class).option_space
    default_instance = pass_class(**{name: values[0] for name, values in space.items()})

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(program=programs(shape or shape_for(pass_class)))
    def count(program: GeneratedProgram):
        module = program.module()
        original = print_module(module)
        run_pipeline(module, [default_instance])
        report.tried += 1
        report.changed += print_module(module) != original

    count()
    REPORTS.append(report)
    if report.changed < min_share * report.tried:
        raise PropertyFailure(
            f"{report}: under {min_share:.0%}, so the generated programs hardly reach the "
            f"pass; declare `exercised_by` on {pass_class.__name__} (constructs its programs "
            "must contain) or tune the distribution with `ProgramShape`"
        )
    return report
