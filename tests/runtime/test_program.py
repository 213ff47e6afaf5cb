"""Loading programs for execution: backends agree, parameters bind once, fallbacks are
visible, outlining is cached by program text (a damaged entry is outlined again), and the
command-line runner reports errors as one located line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import runtime.program
from ir.program import IRError, parse_and_verify, print_module
from runtime.program import (
    OUTLINED_SUBDIR,
    SubgraphFallbackWarning,
    compile_program,
    graph_as_torch_function,
)

LOOP_PROGRAM = """
builtin.module attributes {dy.params = "weights.safetensors"} {
  dy.func @forward(%x: !torch.vtensor<[1,4],f32>, %n: i64) -> (!torch.vtensor<[1,4],f32>, i64) {
    %c0 = arith.constant 0 : i64
    %c1 = arith.constant 1 : i64
    %int1 = "torch.constant.int"() <{value = 1 : i64}> : () -> !torch.int
    %r, %steps = dy.for %i = %c0 to %n step %c1 iter_args(%h = %x, %k = %c0) -> (!torch.vtensor<[1,4],f32>, i64) {
      %w = dy.param "w" : !torch.vtensor<[4,4],f32>
      %y0 = "torch.aten.mm"(%h, %w) : (!torch.vtensor<[1,4],f32>, !torch.vtensor<[4,4],f32>) -> !torch.vtensor<[1,4],f32>
      %y = "torch.aten.add.Tensor"(%y0, %h, %int1) : (!torch.vtensor<[1,4],f32>, !torch.vtensor<[1,4],f32>, !torch.int) -> !torch.vtensor<[1,4],f32>
      %none = "torch.constant.none"() : () -> !torch.none
      %s = "torch.aten.sum"(%y, %none) : (!torch.vtensor<[1,4],f32>, !torch.none) -> !torch.vtensor<[],f32>
      %v = dy.item %s : !torch.vtensor<[],f32> -> f64
      %z = arith.constant 0.0 : f64
      %positive = arith.cmpf ogt, %v, %z : f64
      %k2 = arith.addi %k, %c1 : i64
      %t = dy.if %positive -> (!torch.vtensor<[1,4],f32>) {
        %q = "torch.aten.relu"(%y) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
        dy.break %q, %k2 : !torch.vtensor<[1,4],f32>, i64
      } else {
        %q2 = "torch.aten.tanh"(%y) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
        dy.yield %q2 : !torch.vtensor<[1,4],f32>
      }
      dy.yield %t, %k2 : !torch.vtensor<[1,4],f32>, i64
    }
    dy.return %r, %steps : !torch.vtensor<[1,4],f32>, i64
  }
}
"""


def python_reference(x: torch.Tensor, n: int, w: torch.Tensor) -> tuple[torch.Tensor, int]:
    h, steps = x, 0
    for _ in range(n):
        y = h @ w + h
        steps += 1
        if y.sum().item() > 0:
            return torch.relu(y), steps
        h = torch.tanh(y)
    return h, steps


@pytest.fixture(scope="module")
def weight() -> torch.Tensor:
    return torch.randn(4, 4, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_backends_agree_with_python(backend, weight, tmp_path):
    program = compile_program(
        parse_and_verify(LOOP_PROGRAM), {"w": weight}, backend=backend, cache_dir=tmp_path
    )
    generator = torch.Generator().manual_seed(1)
    exits = set()
    for n in range(6):
        x = torch.randn(1, 4, generator=generator)
        expected, expected_steps = python_reference(x, n, weight)
        actual, steps = program(x, n)
        assert steps == expected_steps
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
        exits.add(steps < n)
    assert exits == {True, False}, "inputs must exercise both the break and the full loop"


def test_llvm_backend_compiles_every_subgraph(weight, tmp_path):
    program = compile_program(
        parse_and_verify(LOOP_PROGRAM), {"w": weight}, backend="llvm", cache_dir=tmp_path
    )
    assert program.stats.compiled == 3 and program.stats.fallback == 0
    assert "dy.graph" in program.ir


def _agrees_with_python(program, weight) -> None:
    x = torch.randn(1, 4, generator=torch.Generator().manual_seed(2))
    for n in range(4):
        expected, expected_steps = python_reference(x, n, weight)
        actual, steps = program(x, n)
        assert steps == expected_steps
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def _no_outlining(monkeypatch) -> None:
    def fail(module, pipeline):
        raise AssertionError("a hit must not outline")

    monkeypatch.setattr(runtime.program, "_run_codegen_pipeline", fail)


def test_outlining_is_cached_by_program_text(weight, tmp_path, monkeypatch):
    text = print_module(parse_and_verify(LOOP_PROGRAM))
    first = compile_program(text, {"w": weight}, backend="llvm", cache_dir=tmp_path)
    assert len(list((tmp_path / OUTLINED_SUBDIR).iterdir())) == 1
    _no_outlining(monkeypatch)
    second = compile_program(text, {"w": weight}, backend="llvm", cache_dir=tmp_path)
    assert second.ir == first.ir and "dy.graph" in second.ir
    _agrees_with_python(second, weight)


def test_a_module_is_outlined_in_place_and_stored_for_its_text(weight, tmp_path, monkeypatch):
    module = parse_and_verify(LOOP_PROGRAM)
    text = print_module(module)
    first = compile_program(module, {"w": weight}, backend="llvm", cache_dir=tmp_path)
    assert first.module is module and "dy.graph" in print_module(module)
    _no_outlining(monkeypatch)
    second = compile_program(text, {"w": weight}, backend="llvm", cache_dir=tmp_path)
    assert second.ir == first.ir


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],
        lambda text: text.replace("torch.aten.tanh", "torch.aten.sin"),
    ],
    ids=["truncated", "edited"],
)
def test_a_damaged_outlined_entry_is_outlined_again(weight, tmp_path, damage):
    text = print_module(parse_and_verify(LOOP_PROGRAM))
    first = compile_program(text, {"w": weight}, backend="llvm", cache_dir=tmp_path)
    (entry,) = (tmp_path / OUTLINED_SUBDIR).iterdir()
    intact = entry.read_text()
    entry.write_text(damage(intact))
    second = compile_program(text, {"w": weight}, backend="llvm", cache_dir=tmp_path)
    assert second.ir == first.ir
    assert entry.read_text() == intact  # written again
    _agrees_with_python(second, weight)


def test_graph_becomes_torch_function_with_trailing_params(weight):
    from ir.program import ProgramContext
    from passes.outline_regions import OutlineRegions

    module = parse_and_verify(LOOP_PROGRAM)
    OutlineRegions().apply(ProgramContext(), module)
    graph = next(op for op in module.ops if op.name == "dy.graph" and "mm" in str(op))
    function = graph_as_torch_function(graph)
    assert function.param_keys == ("w",)
    assert function.first_param_index == 1
    assert '"func.func"' in function.text and "dy.param" not in function.text


def test_unlowerable_subgraph_falls_back_with_a_warning(tmp_path):
    source = """
builtin.module {
  dy.func @forward(%x: !torch.vtensor<[1,4],f32>) -> (!torch.vtensor<[1,4],f32>) {
    %y = "torch.aten.digamma"(%x) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
    dy.return %y : !torch.vtensor<[1,4],f32>
  }
}
"""
    with pytest.warns(SubgraphFallbackWarning, match="torch.aten.digamma"):
        program = compile_program(parse_and_verify(source), {}, backend="llvm", cache_dir=tmp_path)
    assert program.stats.compiled == 0 and program.stats.fallback == 1
    x = torch.rand(1, 4) + 0.5
    torch.testing.assert_close(program(x)[0], torch.digamma(x))


def test_missing_parameter_is_a_located_error(tmp_path):
    with pytest.raises(IRError, match=r"parameter 'w' is not in the parameter file"):
        compile_program(
            parse_and_verify(LOOP_PROGRAM, "loop.mlir"), {}, backend="llvm", cache_dir=tmp_path
        )


def test_wrong_input_shape_is_a_located_error(weight):
    program = compile_program(
        parse_and_verify(LOOP_PROGRAM, "loop.mlir"), {"w": weight}, backend="interpreter"
    )
    with pytest.raises(
        IRError, match=r"^loop.mlir:\d+:\d+: error: .*input #0: expected shape \[1, 4\]"
    ):
        program(torch.zeros(2, 4), 1)


def test_command_line_runner(weight, tmp_path):
    program_file = tmp_path / "loop.mlir"
    program_file.write_text(LOOP_PROGRAM)
    save_file({"w": weight}, str(tmp_path / "weights.safetensors"))
    x = np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    command = [
        sys.executable,
        "-m",
        "runtime",
        str(program_file),
        "--input",
        str(tmp_path / "x.npy"),
        "--input",
        "int:3",
    ]
    subprocess.run([*command, "-o", str(out)], check=True, capture_output=True, text=True)
    expected, steps = python_reference(torch.from_numpy(x), 3, weight)
    saved = np.load(out)
    np.testing.assert_allclose(saved["out0"], expected.numpy(), rtol=1e-5, atol=1e-6)
    assert int(saved["out1"]) == steps

    failed = subprocess.run(command[:-2], capture_output=True, text=True, check=False)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    assert failed.stderr.strip().endswith("expects 2 inputs, got 1")
    assert failed.stderr.startswith(f"{program_file}:")
