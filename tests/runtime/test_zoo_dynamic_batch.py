"""Every zoo model compiled once with `dynamic=True` serves batches of 1, 3, 8 and 32.

A batch is made of consecutive sample inputs (their leading dimensions concatenated), so it
mixes samples that take different paths. Where eager PyTorch itself raises at a batch size
(`.item()` of a many-element tensor, a Python `if` on a many-element tensor), the compiled
program must raise too, never return a value. `-m slow`: one LLVM compile per model.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import examples.dynn as zoo
import frontends.torch as dynn
from tests.frontend.conftest import assert_same, zoo_acceptance_params

BATCH_SIZES = (1, 3, 8, 32)



def batch_of(samples: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The samples as one batch: tensors joined on their leading dimension, other
    arguments (thresholds, flags) taken from the first sample."""
    first = samples[0]
    return tuple(
        torch.cat([sample[i] for sample in samples]) if isinstance(value, torch.Tensor) else value
        for i, value in enumerate(first)
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo_acceptance_params(sorted(zoo.ZOO)))
def test_zoo_model_compiled_once_serves_every_batch_size(name, tmp_path):
    module = zoo.load(name)
    model = module.make_model()
    program = dynn.compile(
        model, module.make_inputs(), backend="llvm", cache_dir=tmp_path, dynamic=True
    )
    samples = module.sample_inputs(sum(BATCH_SIZES))
    start = 0
    for size in BATCH_SIZES:
        inputs = batch_of(samples[start : start + size])
        start += size
        with torch.no_grad():
            try:
                expected = model(*inputs)
            except Exception:  # noqa: BLE001 - eager's own refusal at this batch size
                with pytest.raises(Exception) as raised:
                    program(*inputs)
                assert "\n" not in str(raised.value).strip(), raised.value
                continue
            assert_same(program(*inputs), expected)
    assert program.stats.fallback == 0, program.stats.fallback_reasons
