"""Mutated IR through `opt-pipeline` and the runtime (both backends, compared)."""

from __future__ import annotations

import io
import re
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest

from ir.program import IRError, parse_and_verify
from passes.cli import run as opt_pipeline
from passes.registry import DEFAULT_PIPELINE
from runtime.program import compile_program
from tests.fuzz.conftest import InputTimeout, time_limit
from tests.fuzz.mutate import mutate_lightly, mutate_text
from tests.fuzz.programs import SEEDS, has_loops, inputs_and_params
from tests.fuzz.worker import run_in_workers

pytestmark = pytest.mark.fuzz

ERROR_LINE = re.compile(r"^[^\n]+:\d+:\d+: error: [^\n]+\n$")
PIPELINES = ["", DEFAULT_PIPELINE, "outline-regions", "dce,fold-constant-branches"]


def _run_opt_pipeline(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved, sys.stdin = sys.stdin, io.StringIO("")
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = opt_pipeline(argv)
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


def test_mutated_ir_through_opt_pipeline(campaign, tmp_path):
    path = tmp_path / "mutant.mlir"
    for number in campaign.inputs(minimum=len(SEEDS)):
        text = mutate_text(campaign.rng, SEEDS[number % len(SEEDS)])
        path.write_text(text)
        argv = [str(path), "-p", campaign.rng.choice(PIPELINES)]
        if campaign.rng.random() < 0.3:
            argv.append("--generic")
        try:
            with time_limit():
                code, out, err = _run_opt_pipeline(argv)
        except InputTimeout as error:
            campaign.record("hang", f"{error}\n{text}")
            continue
        except Exception as error:  # noqa: BLE001 - what the fuzzer is looking for
            campaign.record("traceback", f"{type(error).__name__}: {error}\n{text}")
            continue
        if code == 0:
            try:
                parse_and_verify(out)
                campaign.record("accepted")
            except IRError as error:
                campaign.record("unparsable output", f"{error}\n{text}")
        elif code == 1 and ERROR_LINE.match(err) and "internal error" not in err:
            campaign.record("located error")
        else:
            campaign.record(f"exit {code}" if code not in (0, 1) else "bad diagnostic",
                            f"{err}\n{text}")
    campaign.assert_clean()


def test_mutated_ir_through_the_interpreter(campaign, tmp_path):
    for number in campaign.inputs(minimum=3):
        text = mutate_lightly(campaign.rng, SEEDS[number % len(SEEDS)])
        try:
            module = parse_and_verify(text)
        except IRError:
            campaign.record("rejected by the verifier")
            continue
        except Exception as error:  # noqa: BLE001 - what the fuzzer is looking for
            campaign.record("traceback", f"parsing: {type(error).__name__}: {error}\n{text}")
            continue
        arguments = inputs_and_params(module, campaign.rng)
        if arguments is None:
            campaign.record("no random inputs")
            continue
        inputs, params = arguments
        try:
            with time_limit(20.0):
                program = compile_program(text, params, backend="interpreter", cache_dir=None)
                program(*inputs)
            campaign.record("ran")
        except IRError:
            campaign.record("located error")
        except InputTimeout as error:
            if has_loops(module):
                campaign.record("long-running program")
            else:
                campaign.record("hang", f"{error}\n{text}")
        except Exception as error:  # noqa: BLE001 - what the fuzzer is looking for
            campaign.record("traceback", f"{type(error).__name__}: {error}\n{text}")
    campaign.assert_clean()


def test_mutated_ir_through_both_backends(campaign, tmp_path):
    """Compiled kernels run in worker processes (see `tests.fuzz.worker`)."""
    campaign.budget *= 2  # every input that runs is compiled by torch-mlir
    run_in_workers(campaign, "both_backends", tmp_path)
    campaign.assert_clean()
