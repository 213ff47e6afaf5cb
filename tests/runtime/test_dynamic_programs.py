"""Programs with `?` dimensions and data-dependent sizes, run by both backends; concurrent
calls of one compiled program from several threads."""

from __future__ import annotations

import threading

import pytest
import torch

from runtime.program import compile_program

T = "!torch.vtensor"

BATCH_PROGRAM = f"""
builtin.module {{
  dy.func @forward(%x: {T}<[?,4],f32>) -> ({T}<[?,4],f32>) {{
    %y, %s = dy.call @layer(%x) : ({T}<[?,4],f32>) -> ({T}<[?,4],f32>, {T}<[],f32>)
    %v = dy.item %s : {T}<[],f32> -> f64
    %zero = arith.constant 0.0 : f64
    %positive = arith.cmpf ogt, %v, %zero : f64
    %r = dy.if %positive -> ({T}<[?,4],f32>) {{
      %a, %b = dy.call @layer(%y) : ({T}<[?,4],f32>) -> ({T}<[?,4],f32>, {T}<[],f32>)
      dy.yield %a : {T}<[?,4],f32>
    }} else {{
      dy.yield %y : {T}<[?,4],f32>
    }}
    dy.return %r : {T}<[?,4],f32>
  }}
  dy.graph @layer(%x: {T}<[?,4],f32>) -> ({T}<[?,4],f32>, {T}<[],f32>) {{
    %w = dy.param "w" : {T}<[4,4],f32>
    %none = "torch.constant.none"() : () -> !torch.none
    %h = "torch.aten.mm"(%x, %w) : ({T}<[?,4],f32>, {T}<[4,4],f32>) -> {T}<[?,4],f32>
    %y = "torch.aten.tanh"(%h) : ({T}<[?,4],f32>) -> {T}<[?,4],f32>
    %s = "torch.aten.sum"(%y, %none) : ({T}<[?,4],f32>, !torch.none) -> {T}<[],f32>
    dy.output %y, %s : {T}<[?,4],f32>, {T}<[],f32>
  }}
}}
"""

PRUNING_PROGRAM = f"""
builtin.module {{
  dy.func @forward(%x: {T}<[?,4],f32>) -> ({T}<[?,4],f32>, {T}<[],f32>) {{
    %z, %t = dy.call @prune(%x) : ({T}<[?,4],f32>) -> ({T}<[?,4],f32>, {T}<[],f32>)
    dy.return %z, %t : {T}<[?,4],f32>, {T}<[],f32>
  }}
  dy.graph @prune(%x: {T}<[?,4],f32>) -> ({T}<[?,4],f32>, {T}<[],f32>) {{
    %w = dy.param "w" : {T}<[4,4],f32>
    %w2 = dy.param "w2" : {T}<[4,4],f32>
    %int0 = "torch.constant.int"() <{{value = 0 : i64}}> : () -> !torch.int
    %int1 = "torch.constant.int"() <{{value = 1 : i64}}> : () -> !torch.int
    %false = "torch.constant.bool"() <{{value = false}}> : () -> !torch.bool
    %none = "torch.constant.none"() : () -> !torch.none
    %h = "torch.aten.mm"(%x, %w) : ({T}<[?,4],f32>, {T}<[4,4],f32>) -> {T}<[?,4],f32>
    %dims = "torch.prim.ListConstruct"(%int1) : (!torch.int) -> !torch.list<int>
    %s = "torch.aten.sum.dim_IntList"(%h, %dims, %false, %none) : ({T}<[?,4],f32>, !torch.list<int>, !torch.bool, !torch.none) -> {T}<[?],f32>
    %keep = "torch.aten.gt.Scalar"(%s, %int0) : ({T}<[?],f32>, !torch.int) -> {T}<[?],i1>
    %index = "torch.prim.ListConstruct"(%keep) : ({T}<[?],i1>) -> !torch.list<vtensor>
    %kept = "torch.aten.index.Tensor_hacked_twin"(%h, %index) : ({T}<[?,4],f32>, !torch.list<vtensor>) -> {T}<[?,4],f32>
    %z = "torch.aten.mm"(%kept, %w2) : ({T}<[?,4],f32>, {T}<[4,4],f32>) -> {T}<[?,4],f32>
    %t = "torch.aten.sum"(%z, %none) : ({T}<[?,4],f32>, !torch.none) -> {T}<[],f32>
    dy.output %z, %t : {T}<[?,4],f32>, {T}<[],f32>
  }}
}}
"""


@pytest.fixture(scope="module")
def params() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"w": torch.randn(4, 4, generator=generator),
            "w2": torch.randn(4, 4, generator=generator)}


def batch_reference(x, w):
    y = torch.tanh(x @ w)
    return torch.tanh(y @ w) if y.sum() > 0 else y


def pruning_reference(x, w, w2):
    h = x @ w
    z = h[h.sum(1) > 0] @ w2
    return z, z.sum()


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_any_batch_size_runs_one_compiled_graph(backend, params, tmp_path):
    program = compile_program(BATCH_PROGRAM, params, backend=backend, cache_dir=tmp_path)
    generator = torch.Generator().manual_seed(1)
    for size in (1, 3, 8, 32, 0):
        x = torch.randn(size, 4, generator=generator)
        (result,) = program(x)
        torch.testing.assert_close(result, batch_reference(x, params["w"]))
    if backend == "llvm":
        assert program.stats.compiled == 1 and program.stats.fallback == 0
        assert len(list(tmp_path.glob("*.so"))) == 1


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_mask_indexing_splits_the_graph_around_a_host_op(backend, params, tmp_path):
    program = compile_program(PRUNING_PROGRAM, params, backend=backend, cache_dir=tmp_path)
    generator = torch.Generator().manual_seed(2)
    sizes = set()
    for size in (1, 5, 16, 16, 16):
        x = torch.randn(size, 4, generator=generator)
        z, t = program(x)
        want_z, want_t = pruning_reference(x, params["w"], params["w2"])
        torch.testing.assert_close(z, want_z)
        torch.testing.assert_close(t, want_t)
        sizes.add(z.shape[0])
    assert len(sizes) > 2
    if backend == "llvm":
        assert program.stats.fallback == 0
        assert program.stats.host_ops == 1 and program.stats.compiled == 2


def test_concurrent_calls_agree_with_eager(params, tmp_path):
    """Four threads call one compiled program (shared kernels, thread-local descriptors);
    every output is compared with eager."""
    program = compile_program(BATCH_PROGRAM, params, backend="llvm", cache_dir=tmp_path)
    failures: list[str] = []

    def worker(seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        for call in range(150):
            x = torch.randn(1 + (seed + call) % 7, 4, generator=generator)
            (result,) = program(x)
            if not torch.allclose(result, batch_reference(x, params["w"]), rtol=1e-4, atol=1e-5):
                failures.append(f"thread {seed}, call {call}")

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:5]


UNBIND_PROGRAM = f"""
builtin.module {{
  dy.func @forward(%x: {T}<[2,4],f32>) -> ({T}<[4],f32>, {T}<[4],f32>) {{
    %a, %b = dy.call @rows(%x) : ({T}<[2,4],f32>) -> ({T}<[4],f32>, {T}<[4],f32>)
    dy.return %a, %b : {T}<[4],f32>, {T}<[4],f32>
  }}
  dy.graph @rows(%x: {T}<[2,4],f32>) -> ({T}<[4],f32>, {T}<[4],f32>) {{
    %int0 = "torch.constant.int"() <{{value = 0 : i64}}> : () -> !torch.int
    %rows = "torch.aten.unbind.int"(%x, %int0) : ({T}<[2,4],f32>, !torch.int) -> !torch.list<vtensor>
    %a, %b = "torch.prim.ListUnpack"(%rows) : (!torch.list<vtensor>) -> ({T}<[4],f32>, {T}<[4],f32>)
    dy.output %a, %b : {T}<[4],f32>, {T}<[4],f32>
  }}
}}
"""


def test_a_list_result_unpacked_into_tensors_runs_eagerly_when_it_cannot_compile(tmp_path):
    """`prim.ListUnpack` of a list-returning op (torch-mlir imports such lists when it
    cannot see their length): the interpreter's torch ops unpack it; the LLVM back end
    cannot lower it and runs the graph eagerly."""
    x = torch.randn(2, 4)
    for backend in ("interpreter", "llvm"):
        program = compile_program(UNBIND_PROGRAM, {}, backend=backend, cache_dir=tmp_path)
        first, second = program(x)
        torch.testing.assert_close(first, x[0])
        torch.testing.assert_close(second, x[1])
