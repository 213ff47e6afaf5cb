"""The reference interpreter against hand-written Python equivalents.

Each program is IR text next to the Python function it must compute; hypothesis draws the
inputs. Control flow is where interpreters go wrong (which exit a branch propagates, which
values a loop carries after `dy.break` / `dy.continue`, a `dy.return` from two loops
deep), so the programs concentrate on it. Errors must be `ExecutionError`s naming the place.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ir import dy
from ir.program import parse_and_verify
from runtime.interpreter import (
    ExecutionError,
    Interpreter,
    control_flow_regions,
    run_program,
)

FAST = settings(max_examples=60, deadline=None)
T = "!torch.vtensor<[2,3],f32>"


def run(text: str, inputs, params=None):
    return run_program(parse_and_verify(text, "prog.mlir"), params or {}, inputs)


# --------------------------------------------------------------- branches and switch

BRANCHES = """
dy.func @forward(%k: i64, %f: f64) -> (i64) {
  %zero = arith.constant 0.0 : f64
  %c1 = arith.constant 1 : i64
  %c2 = arith.constant 2 : i64
  %c10 = arith.constant 10 : i64
  %positive = arith.cmpf ogt, %f, %zero : f64
  %r = dy.if %positive -> (i64) {
    %small = arith.cmpi slt, %k, %c2 : i64
    %inner = dy.if %small -> (i64) {
      %a = arith.addi %k, %c10 : i64
      dy.yield %a : i64
    } else {
      %b = arith.subi %k, %c1 : i64
      dy.yield %b : i64
    }
    dy.yield %inner : i64
  } else {
    %s = dy.switch %k : i64 -> (i64) case 0 {
      %hundred = arith.constant 100 : i64
      dy.yield %hundred : i64
    } case 1 {
      %minus = arith.constant -1 : i64
      dy.return %minus : i64
    } case -4 {
      %neg = arith.muli %k, %k : i64
      dy.yield %neg : i64
    } default {
      %d = arith.muli %k, %c2 : i64
      dy.yield %d : i64
    }
    %s2 = arith.addi %s, %c1 : i64
    dy.yield %s2 : i64
  }
  dy.return %r : i64
}
"""


def branches(k: int, f: float) -> int:
    if f > 0.0:
        return k + 10 if k < 2 else k - 1
    if k == 1:
        return -1
    selected = {0: 100, -4: k * k}.get(k, k * 2)
    return selected + 1


@FAST
@given(k=st.integers(-6, 6), f=st.floats(-2, 2, allow_nan=False))
def test_nested_branches_and_switch(k: int, f: float):
    assert run(BRANCHES, [k, f]) == [branches(k, f)]


# ------------------------------------------------------------------------ loops

LOOPS = """
dy.func @forward(%n: i64, %m: i64) -> (i64) {
  %c0 = arith.constant 0 : i64
  %c1 = arith.constant 1 : i64
  %c3 = arith.constant 3 : i64
  %c5 = arith.constant 5 : i64
  %c50 = arith.constant 50 : i64
  %c1000 = arith.constant 1000 : i64
  %acc = dy.for %i = %c0 to %n step %c1 iter_args(%a = %c0) -> (i64) {
    %stop = arith.cmpi eq, %i, %c5 : i64
    dy.if %stop {
      dy.break %a : i64
    } else {
      dy.yield
    }
    %r:2 = dy.while (%j = %c0, %b = %a) : (i64, i64) -> (i64, i64) {
      %go = arith.cmpi slt, %j, %m : i64
      dy.condition(%go) %j, %b : i64, i64
    } do {
    ^bb0(%j2: i64, %b2: i64):
      %j3 = arith.addi %j2, %c1 : i64
      %sum = arith.addi %i, %j3 : i64
      %rem = arith.remsi %sum, %c3 : i64
      %skip = arith.cmpi eq, %rem, %c0 : i64
      dy.if %skip {
        dy.continue %j3, %b2 : i64, i64
      } else {
        dy.yield
      }
      %prod = arith.muli %i, %j3 : i64
      %b3 = arith.addi %b2, %prod : i64
      %big = arith.cmpi sgt, %b3, %c50 : i64
      dy.if %big {
        %early = arith.addi %b3, %c1000 : i64
        dy.return %early : i64
      } else {
        dy.yield
      }
      dy.yield %j3, %b3 : i64, i64
    }
    dy.yield %r#1 : i64
  }
  dy.return %acc : i64
}
"""


def loops(n: int, m: int) -> int:
    acc = 0
    for i in range(n):
        if i == 5:
            break
        j = 0
        while j < m:
            j += 1
            if (i + j) % 3 == 0:
                continue
            acc += i * j
            if acc > 50:
                return acc + 1000
    return acc


@FAST
@given(n=st.integers(-1, 8), m=st.integers(-1, 8))
def test_for_and_while_with_break_continue_and_deep_return(n: int, m: int):
    assert run(LOOPS, [n, m]) == [loops(n, m)]


STEPPED_FOR = """
dy.func @forward(%lb: i64, %ub: i64, %step: i64) -> (i64, i64) {
  %c0 = arith.constant 0 : i64
  %r:2 = dy.for %i = %lb to %ub step %step iter_args(%count = %c0, %last = %c0) -> (i64, i64) {
    %c1 = arith.constant 1 : i64
    %count2 = arith.addi %count, %c1 : i64
    dy.yield %count2, %i : i64, i64
  }
  dy.return %r#0, %r#1 : i64, i64
}
"""


@FAST
@given(lb=st.integers(-5, 5), ub=st.integers(-5, 10), step=st.integers(1, 4))
def test_for_bounds_are_half_open_with_step(lb: int, ub: int, step: int):
    indices = list(range(lb, ub, step))
    assert run(STEPPED_FOR, [lb, ub, step]) == [len(indices), indices[-1] if indices else 0]


# ----------------------------------------------------------- tensors and scalars

TENSORS = f"""
builtin.module attributes {{dy.params = "p.safetensors"}} {{
  dy.func @forward(%x: {T}, %threshold: f64) -> ({T}, i64, f64) {{
    %c0 = arith.constant 0 : i64
    %c1 = arith.constant 1 : i64
    %c10 = arith.constant 10 : i64
    %w = dy.param "w" : !torch.vtensor<[3,3],f32>
    %r:2 = dy.while (%h = %x, %n = %c0) : ({T}, i64) -> ({T}, i64) {{
      %none = "torch.constant.none"() : () -> !torch.none
      %s = "torch.aten.sum"(%h, %none) : ({T}, !torch.none) -> !torch.vtensor<[],f32>
      %v = dy.item %s : !torch.vtensor<[],f32> -> f64
      %above = arith.cmpf ogt, %v, %threshold : f64
      %bounded = arith.cmpi slt, %n, %c10 : i64
      %go = arith.andi %above, %bounded : i1
      dy.condition(%go) %h, %n : {T}, i64
    }} do {{
    ^bb0(%h2: {T}, %n2: i64):
      %mm = "torch.aten.mm"(%h2, %w) : ({T}, !torch.vtensor<[3,3],f32>) -> {T}
      %t = "torch.aten.tanh"(%mm) : ({T}) -> {T}
      %n3 = arith.addi %n2, %c1 : i64
      dy.yield %t, %n3 : {T}, i64
    }}
    %nf = arith.sitofp %r#1 : i64 to f64
    %nt = dy.scalar_to_tensor %nf : f64 -> !torch.vtensor<[],f64>
    %alpha = "torch.constant.int"() <{{value = 1 : i64}}> : () -> !torch.int
    %out = "torch.aten.add.Tensor"(%r#0, %nt, %alpha) : ({T}, !torch.vtensor<[],f64>, !torch.int) -> {T}
    %relu = "torch.aten.relu"(%out) : ({T}) -> {T}
    %none2 = "torch.constant.none"() : () -> !torch.none
    %total = "torch.aten.sum"(%relu, %none2) : ({T}, !torch.none) -> !torch.vtensor<[],f32>
    %tv = dy.item %total : !torch.vtensor<[],f32> -> f64
    dy.return %relu, %r#1, %tv : {T}, i64, f64
  }}
}}
"""


def tensors(x: torch.Tensor, threshold: float, w: torch.Tensor):
    h, n = x, 0
    while h.sum().item() > threshold and n < 10:
        h, n = torch.tanh(h @ w), n + 1
    relu = torch.relu(h + float(n))
    return relu, n, relu.sum().item()


@FAST
@given(seed=st.integers(0, 2**16), threshold=st.sampled_from([-3.0, -0.5, 0.0, 0.5, 2.0]))
def test_data_dependent_while_over_tensors(seed: int, threshold: float):
    generator = torch.Generator().manual_seed(seed)
    x, w = torch.randn(2, 3, generator=generator), torch.randn(3, 3, generator=generator)
    result, count, total = run(TENSORS, [x, threshold], {"w": w})
    expected, expected_count, expected_total = tensors(x, threshold, w)
    assert count == expected_count
    assert torch.allclose(result, expected, atol=1e-5)
    assert total == pytest.approx(expected_total, abs=1e-4)
    assert isinstance(total, float)


# ------------------------------------------------------------------------- lists

LISTS = f"""
dy.func @forward(%x: {T}, %n: i64) -> (i64, !torch.vtensor<[?,2,3],f32>, !torch.vtensor<[?,3],f32>, {T}) {{
  %c0 = arith.constant 0 : i64
  %c1 = arith.constant 1 : i64
  %minus1 = arith.constant -1 : i64
  %empty = dy.list_empty : !dy.list<{T}>
  %first = dy.list_append %empty, %x : !dy.list<{T}>, {T}
  %l = dy.for %i = %c0 to %n step %c1 iter_args(%acc = %first) -> (!dy.list<{T}>) {{
    %prev = dy.list_get %acc[%minus1] : !dy.list<{T}> -> {T}
    %fi = arith.sitofp %i : i64 to f64
    %scale = dy.scalar_to_tensor %fi : f64 -> !torch.vtensor<[],f64>
    %next = "torch.aten.mul.Tensor"(%prev, %scale) : ({T}, !torch.vtensor<[],f64>) -> {T}
    %acc2 = dy.list_append %acc, %next : !dy.list<{T}>, {T}
    dy.yield %acc2 : !dy.list<{T}>
  }}
  %len = dy.list_len %l : !dy.list<{T}>
  %stacked = dy.list_stack %l dim 0 : !dy.list<{T}> -> !torch.vtensor<[?,2,3],f32>
  %joined = dy.list_cat %l dim 0 : !dy.list<{T}> -> !torch.vtensor<[?,3],f32>
  %second = dy.list_get %l[%c0] : !dy.list<{T}> -> {T}
  dy.return %len, %stacked, %joined, %second : i64, !torch.vtensor<[?,2,3],f32>, !torch.vtensor<[?,3],f32>, {T}
}}
"""


@FAST
@given(n=st.integers(0, 5), seed=st.integers(0, 2**16))
def test_lists_append_get_len_stack_cat(n: int, seed: int):
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(seed))
    items = [x]
    for i in range(n):
        items.append(items[-1] * float(i))
    length, stacked, joined, first = run(LISTS, [x, n])
    assert length == len(items)
    assert torch.equal(stacked, torch.stack(items, 0))
    assert torch.equal(joined, torch.cat(items, 0))
    assert torch.equal(first, x)


# ------------------------------------------------------------------------- calls

CALLS = f"""
builtin.module {{
  dy.graph @affine(%x: {T}, %y: {T}) -> ({T}, {T}) {{
    %alpha = "torch.constant.int"() <{{value = 1 : i64}}> : () -> !torch.int
    %s = "torch.aten.add.Tensor"(%x, %y, %alpha) : ({T}, {T}, !torch.int) -> {T}
    %p = "torch.aten.mul.Tensor"(%x, %y) : ({T}, {T}) -> {T}
    dy.output %s, %p : {T}, {T}
  }}
  dy.func @count_positive(%x: {T}, %times: i64) -> (i64) {{
    %c0 = arith.constant 0 : i64
    %c1 = arith.constant 1 : i64
    %r = dy.for %i = %c0 to %times step %c1 iter_args(%acc = %c0) -> (i64) {{
      %f = "torch.constant.float"() <{{value = 0.0 : f64}}> : () -> !torch.float
      %mask = "torch.aten.gt.Scalar"(%x, %f) : ({T}, !torch.float) -> !torch.vtensor<[2,3],i1>
      %any = "torch.aten.any"(%mask) : (!torch.vtensor<[2,3],i1>) -> !torch.vtensor<[],i1>
      %b = dy.item %any : !torch.vtensor<[],i1> -> i1
      %one = arith.extui %b : i1 to i64
      %acc2 = arith.addi %acc, %one : i64
      dy.yield %acc2 : i64
    }}
    dy.return %r : i64
  }}
  dy.func @forward(%x: {T}, %y: {T}, %times: i64) -> ({T}, {T}, i64) {{
    %s, %p = dy.call @affine(%x, %y) : ({T}, {T}) -> ({T}, {T})
    %n = dy.call @count_positive(%p, %times) : ({T}, i64) -> i64
    dy.return %s, %p, %n : {T}, {T}, i64
  }}
}}
"""


@FAST
@given(seed=st.integers(0, 2**16), times=st.integers(0, 3))
def test_calls_to_graphs_and_functions(seed: int, times: int):
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randn(2, 3, generator=generator), torch.randn(2, 3, generator=generator)
    s, p, n = run(CALLS, [x, y, times])
    assert torch.allclose(s, x + y)
    assert torch.allclose(p, x * y)
    assert n == times * int(bool((x * y > 0).any()))


# ------------------------------------------------------------------ region counts


def test_region_counts_record_every_region_entry():
    module = parse_and_verify(LOOPS)
    counts: Counter = Counter()
    assert run_program(module, {}, [3, 2], region_counts=counts) == [loops(3, 2)]
    regions = control_flow_regions(module)
    assert set(counts) <= set(regions)
    by_op = {}
    for (op, index), count in counts.items():
        by_op.setdefault(op.name, Counter())[index] += count
    assert by_op["dy.for"][0] == 3
    assert by_op["dy.while"][0] == 3 * 3
    assert by_op["dy.while"][1] == 3 * 2
    (outer_if, *_) = [op for op in module.walk() if isinstance(op, dy.IfOp)]
    assert counts[(outer_if, 0)] == 0 and counts[(outer_if, 1)] == 3


def test_control_flow_regions_lists_every_branch_and_loop_region():
    module = parse_and_verify(BRANCHES)
    regions = control_flow_regions(module)
    switch = next(op for op in module.walk() if isinstance(op, dy.SwitchOp))
    assert [(op.name, index) for op, index in regions].count(("dy.if", 0)) == 2
    assert [(op, i) for op, i in regions if op is switch] == [(switch, i) for i in range(4)]


def test_without_region_counts_nothing_is_counted():
    module = parse_and_verify(LOOPS)
    interpreter = Interpreter(module, {})
    assert interpreter.region_counts is None
    assert interpreter.run(2, 2) == [loops(2, 2)]


# ------------------------------------------------------------------------ errors

IDENTITY = f"""
dy.func @forward(%x: {T}, %n: i64) -> ({T}) {{
  dy.return %x : {T}
}}
"""


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([torch.zeros(2, 3)], "expects 2 inputs, got 1"),
        ([torch.zeros(3, 2), 1], "input #0: expected shape [2, 3]"),
        ([torch.zeros(2, 3, dtype=torch.float64), 1], "input #0: expected dtype torch.float32"),
        ([[0.0] * 6, 1], "input #0: expected a tensor"),
        ([torch.zeros(2, 3), 1.5], "input #1: expected a int for i64, got float"),
    ],
    ids=["count", "shape", "dtype", "not-a-tensor", "scalar-kind"],
)
def test_bad_inputs_are_reported_at_the_entry_function(inputs, message):
    with pytest.raises(ExecutionError) as caught:
        run(IDENTITY, inputs)
    assert str(caught.value).startswith("prog.mlir:2:1: error: 'dy.func' op ")
    assert message in caught.value.message


PARAM = f"""
dy.func @forward(%x: {T}) -> ({T}) {{
  %w = dy.param "w" : !torch.vtensor<[3,3],f32>
  %y = "torch.aten.mm"(%x, %w) : ({T}, !torch.vtensor<[3,3],f32>) -> {T}
  dy.return %y : {T}
}}
"""


def test_missing_parameter_names_key_and_place():
    with pytest.raises(ExecutionError) as caught:
        run(PARAM, [torch.zeros(2, 3)], {"other": torch.zeros(3, 3)})
    assert str(caught.value) == (
        "prog.mlir:3:3: error: 'dy.param' op parameter 'w' is not in the parameter file"
    )


def test_parameter_of_wrong_shape_is_rejected():
    with pytest.raises(ExecutionError, match=r"prog.mlir:3:3: .*parameter 'w': expected shape"):
        run(PARAM, [torch.zeros(2, 3)], {"w": torch.zeros(4, 3)})


FAILING = """
dy.func @forward(%x: !torch.vtensor<[?,3],f32>) -> (!torch.vtensor<[?,3],f32>) {
  %y = "torch.aten.mm"(%x, %x) : (!torch.vtensor<[?,3],f32>, !torch.vtensor<[?,3],f32>) -> !torch.vtensor<[?,3],f32>
  dy.return %y : !torch.vtensor<[?,3],f32>
}
"""


def test_failing_torch_op_is_reported_at_the_op():
    with pytest.raises(ExecutionError) as caught:
        run(FAILING, [torch.zeros(2, 3)])
    assert str(caught.value).startswith("prog.mlir:3:3: error: 'torch.aten.mm' op failed: ")


@pytest.mark.parametrize(
    ("body", "inputs", "message"),
    [
        (
            "  %v = dy.item %x : !torch.vtensor<[?],f32> -> f64\n  dy.return %n : i64",
            [torch.zeros(3), 0],
            "prog.mlir:3:3: error: 'dy.item' op needs a tensor with one element, got shape (3,)",
        ),
        (
            (
                "  %l = dy.list_empty : !dy.list<!torch.vtensor<[?],f32>>\n"
                "  %t = dy.list_get %l[%n] : !dy.list<!torch.vtensor<[?],f32>> -> "
                "!torch.vtensor<[?],f32>\n  dy.return %n : i64"
            ),
            [torch.zeros(3), 0],
            "prog.mlir:4:3: error: 'dy.list_get' op index 0 is out of range for a list of 0",
        ),
        (
            (
                "  %l = dy.list_empty : !dy.list<!torch.vtensor<[?],f32>>\n"
                "  %t = dy.list_stack %l dim 0 : !dy.list<!torch.vtensor<[?],f32>> -> "
                "!torch.vtensor<[?,?],f32>\n  dy.return %n : i64"
            ),
            [torch.zeros(3), 0],
            "prog.mlir:4:3: error: 'dy.list_stack' op cannot join an empty list",
        ),
        (
            (
                "  %c0 = arith.constant 0 : i64\n"
                "  dy.for %i = %c0 to %n step %c0 {\n    dy.yield\n  }\n  dy.return %n : i64"
            ),
            [torch.zeros(3), 2],
            "prog.mlir:4:3: error: 'dy.for' op step must be positive, got 0",
        ),
        (
            "  %q = arith.floordivsi %n, %n : i64\n  dy.return %q : i64",
            [torch.zeros(3), 0],
            "prog.mlir:3:3: error: 'arith.floordivsi' op failed: ZeroDivisionError: "
            "integer division or modulo by zero",
        ),
        (
            (
                "  %nan = arith.constant 0x7FF8000000000000 : f64\n"
                "  %i = arith.fptosi %nan : f64 to i64\n  dy.return %i : i64"
            ),
            [torch.zeros(3), 0],
            "prog.mlir:4:3: error: 'arith.fptosi' op failed: ValueError: "
            "cannot convert float NaN to integer",
        ),
    ],
    ids=["item-of-many", "list-index", "empty-join", "zero-step", "divide-by-zero", "nan-to-int"],
)
def test_runtime_errors_name_the_op(body: str, inputs, message: str):
    text = f"dy.func @forward(%x: !torch.vtensor<[?],f32>, %n: i64) -> (i64) {{\n{body}\n}}\n"
    with pytest.raises(ExecutionError) as caught:
        run("\n" + text, inputs)
    assert str(caught.value) == message


def test_i64_arithmetic_wraps_around_as_arith_defines_it():
    text = """
dy.func @forward(%n: i64) -> (i64, i64) {
  %max = arith.constant 9223372036854775807 : i64
  %sum = arith.addi %max, %n : i64
  %product = arith.muli %max, %max : i64
  dy.return %sum, %product : i64, i64
}
"""
    assert run(text, [1]) == [-(2**63), 1]


def test_unknown_torch_op_is_rejected_when_the_program_loads():
    text = f"""
dy.func @forward(%x: {T}) -> ({T}) {{
  %y = "torch.aten.no_such_op"(%x) : ({T}) -> {T}
  dy.return %y : {T}
}}
"""
    with pytest.raises(ExecutionError, match=r"^prog.mlir:3:3: error: 'torch.aten.no_such_op' op"):
        Interpreter(parse_and_verify(text, "prog.mlir"), {})


def test_missing_entry_function_is_an_error():
    text = "dy.func @main(%x: i64) -> (i64) {\n  dy.return %x : i64\n}\n"
    with pytest.raises(Exception, match="no 'dy.func @forward' entry function"):
        Interpreter(parse_and_verify(text), {})
