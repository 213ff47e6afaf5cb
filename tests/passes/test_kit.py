"""The kit itself (`passkit`): it covers a pass that joins the registry without any test
file being edited, catches a wrong pass on every seed and shrinks its counterexample, gives
every requested construct, draws inputs for any program, and the worked example in
docs/writing-a-pass.md passes it."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from hypothesis import Phase, given, settings
from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i1
from xdsl.ir import Region
from xdsl.passes import ModulePass

from ir import dy
from ir.canonicalization import constant_int
from ir.dy import Dy
from ir.program import parse_and_verify
from passkit import (
    ProgramShape,
    PropertyFailure,
    check_pass_gets_work,
    check_pass_properties,
    inputs_for,
    outcome,
    programs,
)
from passkit.shape import FORCED_CONSTRUCTS
from tests.support.snippets import SNIPPETS

pytestmark = pytest.mark.property

REPOSITORY = Path(__file__).resolve().parents[2]
DY_OPS = {op.name for op in Dy.operations}


# ------------------------------------------------------- a new pass is covered


@dataclass(frozen=True)
class TrueConditionsFirst(ModulePass):
    """Rewrites `dy.if` on a constant `false` as `dy.if` on `true` with the regions
    swapped (when the region that runs has at least `min_ops` ops): a correct,
    idempotent normalisation, defined here and registered by the test below only."""

    name = "true-conditions-first"
    idempotent: ClassVar[bool] = True
    option_space: ClassVar[dict[str, tuple]] = {"min_ops": (0, 1, 3)}
    exercised_by: ClassVar[tuple[str, ...]] = ("constant condition",)

    min_ops: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for branch in list(op.walk()):
            if not isinstance(branch, dy.IfOp) or constant_int(branch.cond) != 0:
                continue
            if len(branch.else_region.block.ops) < self.min_ops:
                continue
            true = arith.ConstantOp(IntegerAttr(1, i1))
            branch.parent_block().insert_op_before(true, branch)
            then_body, else_body = Region(), Region()
            branch.then_region.move_blocks(else_body)
            branch.else_region.move_blocks(then_body)
            then_body.move_blocks(branch.then_region)
            else_body.move_blocks(branch.else_region)
            branch.operands = [true.result]


def test_a_pass_joining_the_registry_is_covered_without_editing_tests():
    """Registers the pass above in a fresh interpreter and runs the registry's test files
    as they are (with the `smoke` profile's few examples): the semantic, verifier and
    idempotence property and the work check pass for it, and the FileCheck-presence test
    fails, because it has no FileCheck test."""
    driver = (
        "import sys, pytest\n"
        "from passes.registry import PASSES\n"
        "from tests.passes.test_kit import TrueConditionsFirst\n"
        "PASSES[TrueConditionsFirst.name] = TrueConditionsFirst\n"
        "sys.exit(pytest.main(['-q', '-rA', '-n', '0', '-p', 'no:cacheprovider', "
        "'--hypothesis-profile=smoke', '-k', "
        "'true-conditions-first', 'tests/passes/test_registry_properties.py', "
        "'tests/test_filecheck.py']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", driver],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    outcomes = {
        test.split("::")[1]: verdict
        for verdict, test in re.findall(r"^(PASSED|FAILED) (\S+)", result.stdout, re.MULTILINE)
    }
    name = TrueConditionsFirst.name
    assert outcomes == {
        f"test_pass_preserves_semantics_verifies_and_is_idempotent[{name}]": "PASSED",
        f"test_generated_programs_give_the_pass_work[{name}]": "PASSED",
        f"test_every_option_has_a_sample_space[{name}]": "PASSED",
        f"test_every_registered_pass_has_a_filecheck_test[{name}]": "FAILED",
    }, result.stdout[-3000:]
    assert f"pass '{name}' has no FileCheck test" in result.stdout


# --------------------------------------------------------- a wrong pass is caught


@dataclass(frozen=True)
class ReturnAsYield(ModulePass):
    """fold-constant-branches as a pass author once wrote it, following the docs: the
    terminator of the taken region is treated as a `dy.yield` even when it is a
    `dy.return`, `dy.break` or `dy.continue`, so the exit is lost."""

    name = "return-as-yield"
    exercised_by: ClassVar[tuple[str, ...]] = ("constant condition",)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for branch in list(op.walk()):
            if branch.parent is None or not isinstance(branch, dy.IfOp):
                continue
            cond = constant_int(branch.cond)
            if cond is None:
                continue
            block = (branch.then_region if cond else branch.else_region).block
            terminator, parent = block.last_op, branch.parent_block()
            for nested in list(block.ops)[:-1]:
                nested.detach()
                parent.insert_op_before(nested, branch)
            for result, value in zip(branch.results, terminator.operands):
                result.replace_all_uses_with(value)
            parent.erase_op(branch, safe_erase=False)


@pytest.mark.parametrize("seed", range(10))
def test_the_return_as_yield_mutant_is_caught_on_every_seed(seed: int):
    """Within the profile's examples (fast: 25), without shrinking (found is enough)."""
    no_shrinking = settings(settings.default, database=None, phases=[Phase.generate])
    with pytest.raises(PropertyFailure):
        check_pass_properties(ReturnAsYield, random_seed=seed, test_settings=no_shrinking)


@pytest.mark.slow
def test_a_counterexample_shrinks_to_a_few_lines():
    """Shrinking takes 2-3 minutes here (thousands of smaller programs), hence `slow`; the
    result is the 10-line program of docs/testing.md."""
    with pytest.raises(PropertyFailure) as caught:
        check_pass_properties(
            ReturnAsYield,
            random_seed=1,
            # one shrunk failure, not hypothesis's group of every distinct one (thorough)
            test_settings=settings(settings.default, database=None, report_multiple_bugs=False),
        )
    example = "\n".join(getattr(caught.value, "__notes__", []))
    body = example.split("text=", 1)[1]
    ops = [line for line in body.splitlines() if re.search(r"=|dy\.\w+|\}", line)]
    assert len(ops) <= 25, example


# ------------------------------------------------------------ the strategies


@pytest.mark.parametrize("feature", sorted(FORCED_CONSTRUCTS))
def test_a_shape_can_ask_for_any_feature(feature: str):
    seen = []

    @settings(max_examples=1, database=None)
    @given(program=programs(ProgramShape().containing(feature)))
    def draw(program):
        seen.append(program)
        if feature in DY_OPS:
            assert feature in {op.name for op in program.module().walk()}

    draw()
    assert seen and all(feature in program.features for program in seen)


def test_shape_weights_switch_constructs_off():
    shape = ProgramShape(swarm=False).weighted(if_=0, switch=0, for_=0, while_=0, list=0)

    @settings(max_examples=10, database=None)
    @given(program=programs(shape))
    def draw(program):
        names = {op.name for op in program.module().walk()}
        assert not names & {"dy.if", "dy.switch", "dy.for", "dy.while", "dy.list_empty"}

    draw()


@pytest.mark.parametrize("op", sorted(SNIPPETS))
def test_inputs_fit_any_program(op: str):
    """`inputs_for` reads the entry signature of programs it did not write."""
    module = parse_and_verify(SNIPPETS[op])
    params = {"fc.weight": torch.randn(4, 4)}

    @settings(max_examples=3, database=None)
    @given(inputs=inputs_for(module))
    def run(inputs):
        result = outcome(module, params, inputs)
        assert result[0] == "results" or "input #" not in result[1], result

    run()


# ------------------------------------------------------------- the docs example


def _python_block_defining(path: Path, name: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL)
    return next(block for block in blocks if f"class {name}(" in block)


def test_the_worked_example_of_writing_a_pass_passes_the_kit():
    doc = REPOSITORY / "docs" / "writing-a-pass.md"
    code = compile(_python_block_defining(doc, "HoistParams"), str(doc), "exec", dont_inherit=True)
    namespace: dict = {"__name__": "writing_a_pass_example"}
    exec(code, namespace)  # noqa: S102 (the docs' own code, to check it is correct)
    hoist_params = namespace["HoistParams"]
    check_pass_properties(hoist_params)
    check_pass_gets_work(hoist_params)
