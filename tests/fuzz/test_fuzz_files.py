"""Damaged parameter and input files through `python -m runtime`, and damaged cache entries
of all three caches under a compiled program (which must still compute what it computed)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save

from runtime.__main__ import main as runtime_main
from tests.fuzz.conftest import InputTimeout, time_limit
from tests.fuzz.mutate import mutate_bytes
from tests.fuzz.worker import run_in_workers

pytestmark = pytest.mark.fuzz

PROGRAM = """builtin.module {
  dy.func @forward(%x: !torch.vtensor<[2,3],f32>) -> !torch.vtensor<[2,3],f32> {
    %w = dy.param "w" : !torch.vtensor<[2,3],f32>
    %int1 = "torch.constant.int"() <{value = 1 : i64}> : () -> !torch.int
    %y = "torch.aten.add.Tensor"(%x, %w, %int1) : (!torch.vtensor<[2,3],f32>, !torch.vtensor<[2,3],f32>, !torch.int) -> !torch.vtensor<[2,3],f32>
    dy.return %y : !torch.vtensor<[2,3],f32>
  }
}
"""
ERROR_LINE = re.compile(r"^[^\n]+:\d+:\d+: error: [^\n]+\n$")


def _npy(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def _fuzz_runtime_file(campaign, tmp_path, capsys, seed: bytes, kind: str) -> None:
    program = tmp_path / "prog.mlir"
    program.write_text(PROGRAM)
    params, data = tmp_path / "w.safetensors", tmp_path / "x.npy"
    params.write_bytes(save({"w": torch.ones(2, 3)}))
    data.write_bytes(_npy(np.zeros((2, 3), "f4")))
    damaged = params if kind == "params" else data
    for _ in campaign.inputs(minimum=100):
        mutant = mutate_bytes(campaign.rng, seed)
        damaged.write_bytes(mutant)
        argv = [str(program), "--params", str(params), "--input", str(data),
                "--backend", "interpreter"]
        try:
            with time_limit():
                code = runtime_main(argv)
        except InputTimeout as error:
            campaign.record("hang", f"{error}: {mutant[:200]!r}")
            continue
        except BaseException as error:  # noqa: BLE001 - what the fuzzer is looking for
            campaign.record("traceback", f"{type(error).__name__}: {error}: {mutant[:200]!r}")
            continue
        err = capsys.readouterr().err
        if code == 0:
            campaign.record("ran")
        elif code == 1 and ERROR_LINE.match(err) and "internal error" not in err:
            campaign.record("located error")
        else:
            campaign.record(f"exit {code}" if code not in (0, 1) else "bad diagnostic",
                            f"{err!r}: {mutant[:200]!r}")
    campaign.assert_clean()


def test_damaged_parameter_files(campaign, tmp_path, capsys):
    seed = save({"w": torch.arange(6.0).reshape(2, 3), "unused": torch.zeros(4, dtype=torch.int64)})
    _fuzz_runtime_file(campaign, tmp_path, capsys, seed, "params")


def test_damaged_input_files(campaign, tmp_path, capsys):
    _fuzz_runtime_file(campaign, tmp_path, capsys, _npy(np.arange(6, dtype="f4").reshape(2, 3)),
                       "inputs")


def test_damaged_cache_entries(campaign, tmp_path):
    """In worker processes: a damaged kernel that got loaded could crash (see
    `tests.fuzz.worker.damaged_caches`)."""
    campaign.budget *= 2  # a damaged entry is compiled again
    run_in_workers(campaign, "damaged_caches", tmp_path)
    campaign.assert_clean()


