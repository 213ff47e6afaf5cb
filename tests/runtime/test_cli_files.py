"""`python -m runtime` with bad files: every malformed parameters, input or program file is
one located error line and exit status 1 (never a traceback, never a hang), and a wrong
parameter or a `?` at a compiled sub-graph's boundary is reported at its op."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from runtime.__main__ import main, read_npy

PROGRAM = """builtin.module {
  dy.func @forward(%x: !torch.vtensor<[2,3],f32>) -> !torch.vtensor<[2,3],f32> {
    %w = dy.param "w" : !torch.vtensor<[2,3],f32>
    %int1 = "torch.constant.int"() <{value = 1 : i64}> : () -> !torch.int
    %y = "torch.aten.add.Tensor"(%x, %w, %int1) : (!torch.vtensor<[2,3],f32>, !torch.vtensor<[2,3],f32>, !torch.int) -> !torch.vtensor<[2,3],f32>
    dy.return %y : !torch.vtensor<[2,3],f32>
  }
}
"""


def _safetensors(header: dict, data: bytes = b"") -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def _npy(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array, allow_pickle=True)
    return stream.getvalue()


def _valid_params() -> bytes:
    from safetensors.torch import save

    return save({"w": torch.ones(2, 3)})


BAD_PARAMS = {
    "empty": b"",
    "truncated": _valid_params()[:40],
    "random": bytes(range(256)) * 8,
    "pickle": pickle.dumps({"w": [1.0, 2.0]}),
    "text": b"root:x:0:0:root:/root:/bin/bash\n",
    "huge_header_length": struct.pack("<Q", 1 << 62) + b"{}",
    "offsets_past_end": _safetensors({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}),
    "offsets_reversed": _safetensors(
        {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [24, 0]}}, bytes(24)
    ),
    "shape_disagrees": _safetensors(
        {"w": {"dtype": "F32", "shape": [1 << 40, 3], "data_offsets": [0, 24]}}, bytes(24)
    ),
    "unknown_dtype": _safetensors(
        {"w": {"dtype": "Q7", "shape": [2, 3], "data_offsets": [0, 24]}}, bytes(24)
    ),
    "header_not_json": struct.pack("<Q", 4) + b"{{{{",
    "header_a_list": _safetensors([1, 2]),  # type: ignore[arg-type]
}

BAD_INPUTS = {
    "npz": None,
    "strings": _npy(np.array(["a", "b"])),
    "records": _npy(np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])),
    "objects": _npy(np.array([{"a": 1}], dtype=object)),
    "huge_shape": _npy(np.zeros((2, 3), "f4")).replace(b"(2, 3)", b"(99999999, 99999999)"),
    "short_data": _npy(np.zeros((2, 3), "f4"))[:-4],
    "empty": b"",
    "not_npy": b"hello",
}


def _run(args, capsys) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "prog.mlir"
    path.write_text(PROGRAM)
    save_file({"w": torch.ones(2, 3)}, str(tmp_path / "w.safetensors"))
    np.save(tmp_path / "x.npy", np.zeros((2, 3), "f4"))
    return path


def _assert_one_located_line(code: int, err: str, path) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{path}:0:0: error: "), err
    assert "internal error" not in lines[0] and "Traceback" not in err


@pytest.mark.parametrize("name", sorted(BAD_PARAMS))
def test_malformed_parameters_file(program, tmp_path, capsys, name):
    params = tmp_path / f"{name}.safetensors"
    params.write_bytes(BAD_PARAMS[name])
    code, err = _run(
        [str(program), "--params", str(params), "--input", str(tmp_path / "x.npy")], capsys
    )
    _assert_one_located_line(code, err, params)


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_malformed_input_file(program, tmp_path, capsys, name):
    path = tmp_path / f"{name}.npy"
    if name == "npz":
        np.savez(path.with_suffix(".npz"), a=np.zeros(3))
        path = path.with_suffix(".npz")
    else:
        path.write_bytes(BAD_INPUTS[name])
    code, err = _run(
        [str(program), "--params", str(tmp_path / "w.safetensors"), "--input", str(path)], capsys
    )
    _assert_one_located_line(code, err, path)


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_a_device_is_not_an_input(program, tmp_path, capsys, device):
    code, err = _run(
        [str(program), "--params", str(tmp_path / "w.safetensors"), "--input", device], capsys
    )
    _assert_one_located_line(code, err, device)


def test_a_fifo_is_refused_not_waited_on(program, tmp_path):
    fifo = tmp_path / "params.safetensors"
    os.mkfifo(fifo)
    completed = subprocess.run(
        [sys.executable, "-m", "runtime", str(program), "--params", str(fifo),
         "--input", str(tmp_path / "x.npy"), "--backend", "interpreter"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 1
    assert completed.stderr.strip() == f"{fifo}:0:0: error: cannot read parameters: not a regular file"


def test_a_parameter_of_the_wrong_shape_is_reported_at_its_op(program, tmp_path, capsys):
    params = tmp_path / "wrong.safetensors"
    save_file({"w": torch.ones(3, 2)}, str(params))
    for backend in ("llvm", "interpreter"):
        code, err = _run(
            [str(program), "--params", str(params), "--input", str(tmp_path / "x.npy"),
             "--backend", backend],
            capsys,
        )
        assert code == 1
        assert err.strip().startswith(f"{program}:3:5: error: 'dy.param' op parameter 'w'"), err
        assert len(err.strip().splitlines()) == 1, err


def test_a_dynamic_dimension_at_a_compiled_boundary_runs_on_both_backends(tmp_path, capsys):
    path = tmp_path / "dynamic.mlir"
    path.write_text(PROGRAM.replace("-> !torch.vtensor<[2,3],f32> {", "-> !torch.vtensor<[?,3],f32> {")
                    .replace("!torch.int) -> !torch.vtensor<[2,3],f32>", "!torch.int) -> !torch.vtensor<[?,3],f32>")
                    .replace("dy.return %y : !torch.vtensor<[2,3],f32>", "dy.return %y : !torch.vtensor<[?,3],f32>"))
    save_file({"w": torch.ones(2, 3)}, str(tmp_path / "w.safetensors"))
    np.save(tmp_path / "x.npy", np.ones((2, 3), "f4"))
    arguments = [str(path), "--params", str(tmp_path / "w.safetensors"), "--input",
                 str(tmp_path / "x.npy")]
    compiled_code, compiled = main(arguments), capsys.readouterr().out
    code, interpreted = main([*arguments, "--backend", "interpreter"]), capsys.readouterr().out
    assert compiled_code == 0 and code == 0 and "2." in interpreted
    assert compiled == interpreted


def test_read_npy_keeps_what_np_save_writes():
    for array in (np.arange(6, dtype=">i4").reshape(2, 3), np.asfortranarray(np.eye(3)),
                  np.array(True), np.zeros((0, 4), "f2"), np.array([1 + 2j], "c8")):
        read = read_npy(_npy(array))
        assert read.dtype == array.dtype.newbyteorder("=") and np.array_equal(read, array)
        assert read.flags.writeable and read.flags.c_contiguous
