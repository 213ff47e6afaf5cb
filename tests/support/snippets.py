"""Small verified programs in the custom syntax, one per dy op, each exercising that op.

Keyed by op name so that a test can check every op of the dialect has one: a new op
without a snippet fails `test_every_dy_op_has_a_snippet`.
"""

from __future__ import annotations

T = "!torch.vtensor<[1,4],f32>"
LIST = f"!dy.list<{T}>"


def _forward(body: str, args: str = f"%x: {T}", results: str = T) -> str:
    return f"dy.func @forward({args}) -> ({results}) {{\n{body}\n}}\n"


_GRAPH = f"""dy.graph @g0(%x: {T}) -> ({T}) {{
  %w = dy.param "fc.weight" : !torch.vtensor<[4,4],f32>
  %r = "torch.aten.mm"(%x, %w) : ({T}, !torch.vtensor<[4,4],f32>) -> {T}
  dy.output %r : {T}
}}
"""

_CALL = _GRAPH + _forward(f"""  %y = dy.call @g0(%x) : ({T}) -> {T}
  dy.return %y : {T}""")

_IF = _forward(
    f"""  %r = dy.if %c -> ({T}) {{
    dy.yield %x : {T}
  }} else {{
    %y = "torch.aten.relu"(%x) : ({T}) -> {T}
    dy.yield %y : {T}
  }}
  dy.return %r : {T}""",
    args=f"%x: {T}, %c: i1",
)

_SWITCH = _forward(
    """  %r = dy.switch %k : i64 -> (i64) case 0 {
    dy.yield %k : i64
  } case -3 {
    dy.return %k : i64
  } default {
    %d = arith.addi %k, %k : i64
    dy.yield %d : i64
  }
  dy.return %r : i64""",
    args="%k: i64",
    results="i64",
)

_WHILE = _forward(
    """  %c0 = arith.constant 0 : i64
  %c1 = arith.constant 1 : i64
  %r:2 = dy.while (%a = %c0, %b = %c0) : (i64, i64) -> (i64, i64) {
    %go = arith.cmpi slt, %a, %n : i64
    dy.condition(%go) %a, %b : i64, i64
  } do {
  ^bb0(%a2: i64, %b2: i64):
    %a3 = arith.addi %a2, %c1 : i64
    %odd = arith.remsi %a2, %c1 : i64
    %skip = arith.cmpi ne, %odd, %c0 : i64
    dy.if %skip {
      dy.continue %a3, %b2 : i64, i64
    } else {
      dy.yield
    }
    %b3 = arith.addi %b2, %a2 : i64
    dy.yield %a3, %b3 : i64, i64
  }
  dy.return %r#1 : i64""",
    args="%n: i64",
    results="i64",
)

_FOR = _forward(
    f"""  %c0 = arith.constant 0 : i64
  %c1 = arith.constant 1 : i64
  %c3 = arith.constant 3 : i64
  %r = dy.for %i = %c0 to %n step %c1 iter_args(%h = %x) -> ({T}) {{
    %stop = arith.cmpi sge, %i, %c3 : i64
    dy.if %stop {{
      dy.break %h : {T}
    }} else {{
      dy.yield
    }}
    %h2 = "torch.aten.tanh"(%h) : ({T}) -> {T}
    dy.yield %h2 : {T}
  }}
  dy.return %r : {T}""",
    args=f"%x: {T}, %n: i64",
)

_SCALARS = _forward(
    """  %none = "torch.constant.none"() : () -> !torch.none
  %s = "torch.aten.sum"(%x, %none) : (!torch.vtensor<[1,4],f32>, !torch.none) -> !torch.vtensor<[],f32>
  %v = dy.item %s : !torch.vtensor<[],f32> -> f64
  %t = dy.scalar_to_tensor %v : f64 -> !torch.vtensor<[],f64>
  dy.return %t : !torch.vtensor<[],f64>""",
    results="!torch.vtensor<[],f64>",
)

_LISTS = _forward(
    f"""  %c0 = arith.constant 0 : i64
  %l = dy.list_empty : {LIST}
  %l2 = dy.list_append %l, %x : {LIST}, {T}
  %n = dy.list_len %l2 : {LIST}
  %first = dy.list_get %l2[%c0] : {LIST} -> {T}
  %st = dy.list_stack %l2 dim 0 : {LIST} -> !torch.vtensor<[?,1,4],f32>
  %ct = dy.list_cat %l2 dim -1 : {LIST} -> !torch.vtensor<[1,?],f32>
  dy.return %first : {T}""",
)

_DYNAMIC = "!torch.vtensor<[?,4],f32>"
_DIM_AND_TRAP = _forward(
    f"""  %c1 = arith.constant 1 : i64
  %n = dy.dim %x[0] : {_DYNAMIC}
  %l = dy.list_empty : !dy.list<{_DYNAMIC}>
  %l2 = dy.list_append %l, %x : !dy.list<{_DYNAMIC}>, {_DYNAMIC}
  %l3 = dy.list_remove %l2[%c1] : !dy.list<{_DYNAMIC}>
  %r = dy.switch %n : i64 -> (i64) case 1 {{
    dy.yield %n : i64
  }} default {{
    dy.trap "index out of range for a ModuleList of 1"
  }}
  dy.return %r : i64""",
    args=f"%x: {_DYNAMIC}",
    results="i64",
)

_HYP = f"tuple<!dy.list<i64>, f64, {T}>"
_HOST_LISTS = _forward(
    f"""  %c0 = arith.constant 0 : i64
  %c2 = arith.constant 2 : i64
  %s = arith.constant 1.5 : f64
  %t = dy.list_empty : !dy.list<i64>
  %t2 = dy.list_append %t, %c2 : !dy.list<i64>, i64
  %h = dy.tuple %t2, %s, %x : !dy.list<i64>, f64, {T} -> {_HYP}
  %l = dy.list_empty : !dy.list<{_HYP}>
  %l2 = dy.list_append %l, %h : !dy.list<{_HYP}>, {_HYP}
  %k = dy.list_empty : !dy.list<f64>
  %k2 = dy.list_append %k, %s : !dy.list<f64>, f64
  %l3 = dy.list_sort %l2 by %k2 descending : !dy.list<{_HYP}>, !dy.list<f64>
  %l4 = dy.list_slice %l3[%c0 : %c2] : !dy.list<{_HYP}>
  %best = dy.list_get %l4[%c0] : !dy.list<{_HYP}> -> {_HYP}
  %toks = dy.tuple_get %best[0] : {_HYP} -> !dy.list<i64>
  %toks2 = dy.list_set %toks[%c0], %c2 : !dy.list<i64>, i64
  %r = dy.list_to_tensor %toks2 : !dy.list<i64> -> !torch.vtensor<[?],si64>
  dy.return %r : !torch.vtensor<[?],si64>""",
    results="!torch.vtensor<[?],si64>",
)

SNIPPETS: dict[str, str] = {
    "dy.dim": _DIM_AND_TRAP,
    "dy.trap": _DIM_AND_TRAP,
    "dy.list_remove": _DIM_AND_TRAP,
    "dy.func": _forward(f"  dy.return %x : {T}"),
    "dy.graph": _CALL,
    "dy.output": _CALL,
    "dy.param": _CALL,
    "dy.call": _CALL,
    "dy.if": _IF,
    "dy.yield": _IF,
    "dy.switch": _SWITCH,
    "dy.return": _SWITCH,
    "dy.while": _WHILE,
    "dy.condition": _WHILE,
    "dy.continue": _WHILE,
    "dy.for": _FOR,
    "dy.break": _FOR,
    "dy.item": _SCALARS,
    "dy.scalar_to_tensor": _SCALARS,
    "dy.list_empty": _LISTS,
    "dy.list_append": _LISTS,
    "dy.list_len": _LISTS,
    "dy.list_get": _LISTS,
    "dy.list_stack": _LISTS,
    "dy.list_cat": _LISTS,
    "dy.list_set": _HOST_LISTS,
    "dy.list_slice": _HOST_LISTS,
    "dy.list_sort": _HOST_LISTS,
    "dy.list_to_tensor": _HOST_LISTS,
    "dy.tuple": _HOST_LISTS,
    "dy.tuple_get": _HOST_LISTS,
}
