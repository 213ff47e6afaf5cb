"""Zoo models compiled once with `dynamic=True` (the leading dimension of every input is
dynamic) and called at batch 1, 3, 8 and 32: every call agrees with eager, and where eager
raises at a batch size (`int()` of a batch of gate choices) ours raises a located error.

`-m slow`; the models of issue 10 (more may join: a model whose inputs are all batched
image tensors fits).
"""

from __future__ import annotations

import os

import pytest
import torch

import examples.dynn as zoo
import frontends.torch as ft
from tests.frontend.conftest import assert_same

MODELS = ["moe_top2", "early_exit_batch", "hydranet", "act_rnn"]
BATCHES = (1, 3, 8, 32)
CRASHES = {
    ("act_rnn", "llvm"): "segfaults in MLIR's bufferization: a sub-graph returns one value "
    "twice after CSE (/work/notes/zoo2-bugs.md #1, runtime/llvm)",
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
@pytest.mark.parametrize("name", MODELS)
def test_compiled_once_for_any_batch(name, backend, tmp_path):
    if (name, backend) in CRASHES:
        pytest.skip(CRASHES[(name, backend)])
    module = zoo.load(name)
    model = module.make_model()
    program = ft.compile(
        model, module.make_inputs(), backend=backend, dynamic=True, cache_dir=tmp_path
    )
    assert program.stats.fallback == 0, program.stats.fallback_reasons
    rows = torch.cat([x for (x,) in module.sample_inputs(100, seed=7)])
    for batch in BATCHES:
        for start in (0, batch, 2 * batch):
            x = rows[start : start + batch]
            try:
                with torch.no_grad():
                    expected = model(x)
            except (RuntimeError, ValueError):
                with pytest.raises(Exception, match=os.path.basename(module.__file__) + r":\d+"):
                    program(x)
                break
            assert_same(program(x), expected, f"batch {batch} from row {start}")
    assert program.specializations == 1
