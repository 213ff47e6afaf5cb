"""The model zoo (`examples/dynn`): every converted model agrees with eager PyTorch and every
branch and loop region of its program runs; the CLI output round-trips through opt-pipeline.

The default run covers three small models on few inputs; `-m slow` runs the acceptance check,
all models on `sample_inputs(100)`.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import examples.dynn as zoo
from tests.frontend.conftest import check_agreement, zoo_acceptance_params

FAST_MODELS = ["cond_router", "while_loop_fixed_point", "caption_resnet"]


def check_zoo_model(name: str, count: int, require_coverage: bool) -> None:
    module = zoo.load(name)
    model = module.make_model()
    check_agreement(
        model, module.make_inputs(), module.sample_inputs(count), require_coverage=require_coverage
    )


@pytest.mark.parametrize("name", FAST_MODELS)
def test_zoo_model_agrees_on_a_few_inputs(name):
    check_zoo_model(name, 12, require_coverage=False)


ACCEPTANCE_MODELS = zoo_acceptance_params(sorted(zoo.ZOO))


@pytest.mark.slow
@pytest.mark.parametrize("name", ACCEPTANCE_MODELS)
def test_zoo_model_agrees_on_100_inputs_with_every_region_run(name):
    check_zoo_model(name, 100, require_coverage=True)


def cli_round_trip(name: str) -> None:
    converted = subprocess.run(
        [sys.executable, "-m", "frontends.torch", zoo.model_file(name)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert converted.returncode == 0, converted.stderr
    verified = subprocess.run(
        [sys.executable, "-m", "passes.cli", "-p", ""],
        input=converted.stdout,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert "dy.func @forward" in verified.stdout and "dy.params" in verified.stdout


def test_cli_output_round_trips_through_opt_pipeline():
    cli_round_trip("cond_router")


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo_acceptance_params(sorted(zoo.ZOO)))
def test_cli_output_of_every_zoo_model_round_trips(name):
    cli_round_trip(name)
