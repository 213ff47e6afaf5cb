"""Torch ops and list joins are verified against what they compute: a declared result type
that contradicts the op is a located error, while `?` dims, values known only at run time,
data-dependent sizes and ops PyTorch does not know are accepted."""

from __future__ import annotations

import pytest

import ir.torch_verify
from ir.program import IRError, parse_and_verify


def _program(body: str, args: str = "%x: !torch.vtensor<[1,8],f32>") -> str:
    lines = "\n".join(f"    {line}" for line in body.strip().splitlines())
    return f"builtin.module {{\n  dy.func @forward({args}) {{\n{lines}\n    dy.return\n  }}\n}}\n"


def _error(body: str, args: str = "%x: !torch.vtensor<[1,8],f32>") -> str:
    with pytest.raises(IRError) as caught:
        parse_and_verify(_program(body, args), "prog.mlir")
    return str(caught.value)


CONTRADICTIONS = {
    "sigmoid_declared_bool": (
        '%y = "torch.aten.sigmoid"(%x) : (!torch.vtensor<[1,8],f32>) -> !torch.vtensor<[1,8],i1>',
        "'torch.aten.sigmoid' op result #0: declared !torch.vtensor<[1,8],i1>, but the op "
        "computes f32 elements",
    ),
    "relu_changes_shape": (
        '%y = "torch.aten.relu"(%x) : (!torch.vtensor<[1,8],f32>) -> !torch.vtensor<[1,4],f32>',
        "but the op computes shape [1,8]",
    ),
    "tanh_changes_rank": (
        '%y = "torch.aten.tanh"(%x) : (!torch.vtensor<[1,8],f32>) -> !torch.vtensor<[1,8,1],f32>',
        "but the op computes shape [1,8]",
    ),
    "constant_int_holding_f32": (
        '%y = "torch.constant.int"() <{value = 1.000000e+00 : f32}> : () -> !torch.int',
        "'torch.constant.int' op needs a 'value' of the result's kind",
    ),
    "constant_bool_holding_i64": (
        '%y = "torch.constant.bool"() <{value = 1 : i64}> : () -> !torch.bool',
        "'value' must be of type i1",
    ),
    "constant_float_declared_int": (
        '%y = "torch.constant.float"() <{value = 1.0 : f64}> : () -> !torch.int',
        "result must be torch.float",
    ),
    "comparison_declared_float": (
        '%c = "torch.constant.int"() <{value = 0 : i64}> : () -> !torch.int\n'
        '%y = "torch.aten.lt.Scalar"(%x, %c) : (!torch.vtensor<[1,8],f32>, !torch.int) '
        "-> !torch.vtensor<[1,8],f32>",
        "computes i1 elements",
    ),
    "reduction_keeps_dim_it_dropped": (
        '%d = "torch.constant.int"() <{value = 1 : i64}> : () -> !torch.int\n'
        '%l = "torch.prim.ListConstruct"(%d) : (!torch.int) -> !torch.list<int>\n'
        '%k = "torch.constant.bool"() <{value = false}> : () -> !torch.bool\n'
        '%n = "torch.constant.none"() : () -> !torch.none\n'
        '%y = "torch.aten.sum.dim_IntList"(%x, %l, %k, %n) : (!torch.vtensor<[1,8],f32>, '
        "!torch.list<int>, !torch.bool, !torch.none) -> !torch.vtensor<[1,1],f32>",
        "but the op computes shape [1]",
    ),
    "max_dim_with_one_result": (
        '%d = "torch.constant.int"() <{value = 1 : i64}> : () -> !torch.int\n'
        '%k = "torch.constant.bool"() <{value = false}> : () -> !torch.bool\n'
        '%y = "torch.aten.max.dim"(%x, %d, %k) : (!torch.vtensor<[1,8],f32>, !torch.int, '
        "!torch.bool) -> !torch.vtensor<[1],f32>",
        "declares 1 result(s), aten::max returns 2",
    ),
    "literal_of_another_shape": (
        '%y = "torch.vtensor.literal"() <{value = dense<1.0> : tensor<3xf32>}> : () '
        "-> !torch.vtensor<[4],f32>",
        "a literal of shape [3] cannot be a !torch.vtensor<[4],f32>",
    ),
    "literal_of_another_dtype": (
        '%y = "torch.vtensor.literal"() <{value = dense<1> : tensor<4xi32>}> : () '
        "-> !torch.vtensor<[4],si64>",
        "a literal of i32 elements",
    ),
    "list_of_the_wrong_element": (
        '%y = "torch.prim.ListConstruct"(%x) : (!torch.vtensor<[1,8],f32>) -> !torch.list<int>',
        "element #0 of type !torch.vtensor<[1,8],f32> is not a !torch.int",
    ),
    "dynamic_operand_static_dims_still_checked": (
        '%d = "torch.constant.int"() <{value = 0 : i64}> : () -> !torch.int\n'
        '%l = "torch.prim.ListConstruct"(%d) : (!torch.int) -> !torch.list<int>\n'
        '%k = "torch.constant.bool"() <{value = false}> : () -> !torch.bool\n'
        '%n = "torch.constant.none"() : () -> !torch.none\n'
        '%y = "torch.aten.sum.dim_IntList"(%x, %l, %k, %n) : (!torch.vtensor<[?,8],f32>, '
        "!torch.list<int>, !torch.bool, !torch.none) -> !torch.vtensor<[5],f32>",
        "but the op computes shape [8]",
    ),
}


@pytest.mark.parametrize("name", sorted(CONTRADICTIONS))
def test_a_result_type_that_contradicts_the_op_is_a_located_error(name):
    body, message = CONTRADICTIONS[name]
    args = "%x: !torch.vtensor<[?,8],f32>" if "dynamic" in name else "%x: !torch.vtensor<[1,8],f32>"
    error = _error(body, args)
    assert error.startswith("prog.mlir:"), error
    assert message in error


LIST_JOINS = {
    ("stack", 0, "[?,2,4]"): "does not fit items",
    ("stack", -1, "[1,5,?]"): "does not fit items",
    ("cat", 1, "[2,8]"): "does not fit items",
    ("cat", -1, "[1,6]"): "6 is not a multiple of 4",
}


def _join(kind: str, dim: int, result: str) -> str:
    return _program(
        "%l = dy.list_empty : !dy.list<!torch.vtensor<[1,4],f32>>\n"
        f"%t = dy.list_{kind} %l dim {dim} : !dy.list<!torch.vtensor<[1,4],f32>> "
        f"-> !torch.vtensor<{result},f32>",
        "",
    )


@pytest.mark.parametrize(("kind", "dim", "result"), sorted(LIST_JOINS))
def test_a_list_join_whose_other_dims_disagree_with_its_items_is_an_error(kind, dim, result):
    with pytest.raises(IRError, match=LIST_JOINS[(kind, dim, result)]):
        parse_and_verify(_join(kind, dim, result))


@pytest.mark.parametrize(
    ("kind", "dim", "result"),
    [("stack", 0, "[?,1,4]"), ("stack", 1, "[1,3,4]"), ("stack", -1, "[1,4,?]"),
     ("cat", 0, "[?,4]"), ("cat", 0, "[3,4]"), ("cat", 1, "[1,8]"), ("cat", 1, "[?,?]")],
)
def test_list_joins_that_fit_their_items_verify(kind, dim, result):
    parse_and_verify(_join(kind, dim, result))


ACCEPTED = {
    "dynamic_dims_in_and_out": (
        "%x: !torch.vtensor<[?,8],f32>",
        '%y = "torch.aten.relu"(%x) : (!torch.vtensor<[?,8],f32>) -> !torch.vtensor<[?,8],f32>',
    ),
    "dynamic_result_of_static_operand": (
        "%x: !torch.vtensor<[1,8],f32>",
        '%y = "torch.aten.relu"(%x) : (!torch.vtensor<[1,8],f32>) -> !torch.vtensor<[?,?],f32>',
    ),
    "size_known_at_run_time": (
        "%x: !torch.vtensor<[?,8],f32>",
        '%z = "torch.constant.int"() <{value = 0 : i64}> : () -> !torch.int\n'
        '%n = "torch.aten.size.int"(%x, %z) : (!torch.vtensor<[?,8],f32>, !torch.int) -> !torch.int\n'
        '%m = "torch.constant.int"() <{value = 2 : i64}> : () -> !torch.int\n'
        '%l = "torch.prim.ListConstruct"(%n, %m, %m, %m) : (!torch.int, !torch.int, !torch.int, '
        "!torch.int) -> !torch.list<int>\n"
        '%y = "torch.aten.view"(%x, %l) : (!torch.vtensor<[?,8],f32>, !torch.list<int>) '
        "-> !torch.vtensor<[?,2,2,2],f32>",
    ),
    "flatten_of_a_dynamic_dim_declared_static": (
        "%x: !torch.vtensor<[?,8],f32>",
        '%a = "torch.constant.int"() <{value = 0 : i64}> : () -> !torch.int\n'
        '%b = "torch.constant.int"() <{value = 1 : i64}> : () -> !torch.int\n'
        '%y = "torch.aten.flatten.using_ints"(%x, %a, %b) : (!torch.vtensor<[?,8],f32>, '
        "!torch.int, !torch.int) -> !torch.vtensor<[16],f32>",
    ),
    "nonzero_of_any_size": (
        "%x: !torch.vtensor<[1,8],f32>",
        '%y = "torch.aten.nonzero"(%x) : (!torch.vtensor<[1,8],f32>) -> !torch.vtensor<[?,2],si64>\n'
        '%z = "torch.aten.nonzero"(%x) : (!torch.vtensor<[1,8],f32>) -> !torch.vtensor<[3,2],si64>',
    ),
    "masked_select_and_boolean_index": (
        "%x: !torch.vtensor<[1,8],f32>, %m: !torch.vtensor<[1,8],i1>",
        '%y = "torch.aten.masked_select"(%x, %m) : (!torch.vtensor<[1,8],f32>, '
        "!torch.vtensor<[1,8],i1>) -> !torch.vtensor<[?],f32>\n"
        '%l = "torch.prim.ListConstruct"(%m) : (!torch.vtensor<[1,8],i1>) '
        "-> !torch.list<optional<vtensor>>\n"
        '%z = "torch.aten.index.Tensor"(%x, %l) : (!torch.vtensor<[1,8],f32>, '
        "!torch.list<optional<vtensor>>) -> !torch.vtensor<[?],f32>",
    ),
    "an_op_pytorch_does_not_know": (
        "%x: !torch.vtensor<[1,8],f32>",
        '%y = "torch.aten.no_such_op"(%x) : (!torch.vtensor<[1,8],f32>) -> !torch.vtensor<[3],i1>',
    ),
    "a_float_known_at_run_time": (
        "%x: !torch.vtensor<[1,8],f32>, %s: !torch.float",
        '%y = "torch.aten.mul.Scalar"(%x, %s) : (!torch.vtensor<[1,8],f32>, !torch.float) '
        "-> !torch.vtensor<[1,8],f32>",
    ),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_what_cannot_be_contradicted_verifies(name):
    args, body = ACCEPTED[name]
    parse_and_verify(_program(body, args))


def test_verdicts_are_cached_per_signature(monkeypatch):
    body = "\n".join(
        f'%y{i} = "torch.aten.gelu"(%x, %a) : (!torch.vtensor<[3,5],f32>, !torch.str) '
        "-> !torch.vtensor<[3,5],f32>"
        for i in range(50)
    )
    body = '%a = "torch.constant.str"() <{value = "tanh"}> : () -> !torch.str\n' + body
    inferences = []
    original = ir.torch_verify._infer
    monkeypatch.setattr(
        ir.torch_verify, "_infer", lambda *a: inferences.append(a) or original(*a)
    )
    program = _program(body, "%x: !torch.vtensor<[3,5],f32>")
    parse_and_verify(program)
    parse_and_verify(program)
    assert len(inferences) <= 1
