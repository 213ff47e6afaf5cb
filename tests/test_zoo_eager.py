"""Eager checks of the dynamic-model zoo (``examples/dynn``) and the showcase early-exit model.

For every model, ``sample_inputs(100)`` must drive ``forward`` down every path its source
allows (every arm of every ``if``, every loop exit, every ``break`` / ``continue`` / early
``return``, both branches of ``torch.cond``), as measured by line tracing
(``examples.dynn.coverage``); and building and running the model must be deterministic.
These are the properties that make the zoo a meaningful test set for a compiler of dynamic
networks: a branch no sample input takes is a branch no compiler test checks.
"""
from __future__ import annotations

import importlib
import importlib.util
import os

import pytest
import torch

from examples.dynn import ZOO, coverage, load, model_file

NUM_INPUTS = 100
SHOWCASE = "early_exit"


def _module_and_file(name: str):
    if name == SHOWCASE:
        module = importlib.import_module(f"examples.{SHOWCASE}")
        return module, module.__file__
    return load(name), model_file(name)


@pytest.fixture(autouse=True)
def one_thread():
    """The zoo's timing targets are for one thread; it also keeps shared machines usable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", [*ZOO, SHOWCASE])
def test_sample_inputs_take_every_branch(name):
    module, path = _module_and_file(name)
    model = module.make_model()
    taken, arms = coverage.branch_arms_taken(path, model, module.sample_inputs(NUM_INPUTS))
    dynamic = {arm for arm in arms if not arm.static}
    assert dynamic, f"{name}: no data-dependent control flow found in {path}"
    missing = sorted(dynamic - taken)
    assert not missing, f"{name}: arms never taken: {', '.join(map(str, missing))}"


def _same(a, b) -> bool:
    """Exact equality of model inputs and outputs: tensors, and the tuples, lists and dicts
    of tensors and Python values that research models take and return."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("name", [*ZOO, SHOWCASE])
def test_model_and_inputs_are_deterministic(name):
    module, _ = _module_and_file(name)
    first, second = module.make_model(), module.make_model()
    assert not first.training
    for (key, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), f"{name}: make_model differs in {key}"
    inputs = module.sample_inputs(10)
    for x, y in zip(inputs, module.sample_inputs(10)):
        assert _same(x, y)
    example = module.make_inputs()
    batch = getattr(module, "BATCH", 1)  # a model served at a larger batch declares it
    assert all(t.shape[0] == batch for t in example if isinstance(t, torch.Tensor))
    with torch.no_grad():
        for example in inputs:
            expected = first(*example)
            assert _same(expected, second(*example))
            assert _same(expected, first(*example))
            # The reference semantics the coverage trace uses agree with torch's operators.
            with coverage.eager_control_flow_operators():
                torch.testing.assert_close(first(*example), expected)


def test_shared_blocks_take_every_branch():
    """The IC's shape check in ``_common`` sees maps both wider and not wider than 4."""
    module = load("sdn_vgg16")
    path = os.path.join(os.path.dirname(module.__file__), "_common.py")
    taken, arms = coverage.branch_arms_taken(path, module.make_model(),
                                             module.sample_inputs(NUM_INPUTS))
    assert arms and arms <= taken, sorted(map(str, arms - taken))


def test_coverage_finds_every_kind_of_arm():
    """``find_arms`` on the showcase: loop body and exit, both ``if`` arms, the ``break``."""
    module = importlib.import_module(f"examples.{SHOWCASE}")
    kinds = sorted(arm.kind for arm in coverage.find_arms(module.__file__))
    assert kinds == ["break", "if-false", "if-true", "loop-body", "loop-exit"]


UNCOVERED_MODEL = '''
import torch
from torch import nn


class Model(nn.Module):
    def forward(self, x):
        if x.sum() > -1e9:
            x = x + 1
        while True:
            if x.max() > 0:
                break
            x = x + 1
        for _ in range(3):
            if x.min() > 1e9:
                return x
        return x * 2
'''


def test_coverage_reports_arms_not_taken(tmp_path):
    """Arms the inputs never take are reported (the check is not vacuous)."""
    path = tmp_path / "uncovered.py"
    path.write_text(UNCOVERED_MODEL)
    spec = importlib.util.spec_from_file_location("uncovered", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    taken, arms = coverage.branch_arms_taken(str(path), module.Model(), [(torch.ones(2),)])
    # The first if is never false, nor the one that breaks the while; the for's if is
    # never true, so its return is never reached.  The while True has no loop-exit arm.
    assert sorted(map(str, arms - taken)) == ["if-false@11", "if-false@8", "if-true@16",
                                              "return@16"]
