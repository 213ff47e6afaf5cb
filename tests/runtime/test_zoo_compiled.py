"""Compiled programs of the model zoo: LLVM backend == reference interpreter == eager.

The default run compiles three small models; `-m slow` compiles the whole zoo. Compiled
results must match the interpreter and eager PyTorch with the zoo's tolerances, every
sub-graph must compile (no silent eager fallback), and compiling twice must hit the cache.
"""

from __future__ import annotations

import time

import pytest
import torch

import examples.dynn as zoo
import frontends.torch as dynn
from examples import early_exit
from tests.frontend.conftest import assert_same, zoo_acceptance_params

FAST_MODELS = ["cond_router", "while_loop_fixed_point"]


def check_compiled(model, example, samples, cache_dir) -> None:
    compiled = dynn.compile(model, example, backend="llvm", cache_dir=cache_dir)
    reference = dynn.Program.from_conversion(compiled.conversion, "interpreter")
    assert compiled.stats.fallback == 0, compiled.stats.fallback_reasons
    assert compiled.stats.compiled > 0
    with torch.no_grad():
        for args in samples:
            expected = model(*args)
            assert_same(reference(*args), expected)
            assert_same(compiled(*args), expected)


def test_early_exit_example_compiles_and_agrees(tmp_path):
    model = early_exit.make_model()
    check_compiled(model, early_exit.make_inputs(), early_exit.sample_inputs(20), tmp_path)


def test_second_compile_hits_the_cache(tmp_path):
    model = early_exit.make_model()
    first = dynn.compile(model, early_exit.make_inputs(), backend="llvm", cache_dir=tmp_path)
    started = time.perf_counter()
    second = dynn.compile(model, early_exit.make_inputs(), backend="llvm", cache_dir=tmp_path)
    assert second.stats.compiled == first.stats.compiled
    assert second.stats.compile_seconds < first.stats.compile_seconds
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("name", FAST_MODELS)
def test_zoo_model_compiles_and_agrees(name, tmp_path):
    module = zoo.load(name)
    check_compiled(module.make_model(), module.make_inputs(), module.sample_inputs(8), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo_acceptance_params(sorted(zoo.ZOO)))
def test_every_zoo_model_compiles_and_agrees(name, tmp_path):
    module = zoo.load(name)
    check_compiled(module.make_model(), module.make_inputs(), module.sample_inputs(30), tmp_path)
