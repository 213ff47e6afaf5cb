"""Broken model files through `python -m frontends.torch`: mutated sources of small dynamic
models. Whatever the frontend does not convert is one located line and exit 1; whatever it
converts must run and compute what eager PyTorch computes on the model's example inputs."""

from __future__ import annotations

import itertools
import pathlib
import re
import sys
import warnings

import pytest
import torch

from frontends.torch.__main__ import main as frontend_main
from frontends.torch.api import rebuild_results, result_tree
from ir.program import IRError, parse_and_verify
from runtime.program import compile_program, load_params
from tests.fuzz.conftest import InputTimeout, time_limit
from tests.fuzz.mutate import mutate_python
from tests.fuzz.programs import agree

pytestmark = pytest.mark.fuzz

SEEDS = sorted((pathlib.Path(__file__).parent / "seeds").glob("*.py"))
ERROR_LINE = re.compile(r"^[^\n]+?(?::\d+)*: (?:error|unsupported): [^\n]+\n$")
_NAMES = itertools.count()


def _eager_and_compiled(stem: str, output: pathlib.Path):
    """The mutant's result on its example inputs, eagerly and through the converted program
    (the interpreter), or None when eager PyTorch fails too."""
    module = sys.modules[stem]
    torch.manual_seed(0)
    model, inputs = module.make_model().eval(), tuple(module.make_inputs())
    with torch.no_grad():
        try:
            expected = model(*inputs)
        except Exception:  # noqa: BLE001 - the mutant's own error
            return None
    program_module = parse_and_verify(output.read_text(), str(output))
    params = load_params(output.with_suffix(".safetensors"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = compile_program(program_module, params, backend="interpreter")
        actual = rebuild_results(result_tree(program.module), program(*inputs))
    return expected, actual


def test_broken_model_files_through_the_frontend(campaign, tmp_path, capsys):
    campaign.budget *= 2  # a conversion imports every stretch through torch-mlir
    for number in campaign.inputs(minimum=len(SEEDS)):
        seed = SEEDS[number % len(SEEDS)]
        source = mutate_python(campaign.rng, seed.read_text())
        stem = f"fuzzed_model_{next(_NAMES)}"
        path, output = tmp_path / f"{stem}.py", tmp_path / f"{stem}.mlir"
        path.write_text(source)
        try:
            with time_limit():
                code = frontend_main([str(path), "-o", str(output)])
            err = capsys.readouterr().err
            if code == 0:
                outcome = _eager_and_compiled(stem, output)
        except InputTimeout as error:
            campaign.record("hang", f"{error}\n{source}")
            continue
        except IRError as error:
            campaign.record("converted but does not run", f"{error}\n{source}")
            continue
        except BaseException as error:  # noqa: BLE001 - what the fuzzer is looking for
            campaign.record("traceback", f"{type(error).__name__}: {error}\n{source}")
            continue
        finally:
            sys.modules.pop(stem, None)
        if code == 1 and ERROR_LINE.match(err):
            internal = "internal frontend error" in err
            campaign.record("internal error" if internal else "located error",
                            f"{err}\n{source}" if internal else None)
        elif code != 0:
            campaign.record(f"exit {code}" if code not in (0, 1) else "bad diagnostic",
                            f"{err!r}\n{source}")
        elif outcome is None:
            campaign.record("converted, eager fails")
        elif agree(outcome[1], outcome[0]):
            campaign.record("agrees with eager")
        else:
            campaign.record("silent difference", f"{outcome[1]} != {outcome[0]}\n{source}")
    campaign.assert_clean()
