// The generic form (`--generic`) of every dy op: the spelling real MLIR tools parse.
// Properties print as `<{...}>`, regions in parentheses, types as a function type.
// RUN: opt-pipeline %s -p '' --generic | filecheck %s
// RUN: opt-pipeline %s -p '' --generic | opt-pipeline -p '' --generic | filecheck %s

builtin.module attributes {dy.params = "weights.safetensors"} {
  dy.graph @g0(%x: !torch.vtensor<[1,4],f32>) -> (!torch.vtensor<[1,4],f32>) {
    %w = dy.param "fc.weight" : !torch.vtensor<[4,4],f32>
    %r = "torch.aten.mm"(%x, %w) : (!torch.vtensor<[1,4],f32>, !torch.vtensor<[4,4],f32>) -> !torch.vtensor<[1,4],f32>
    dy.output %r : !torch.vtensor<[1,4],f32>
  }
  dy.func @helper(%k: i64) -> (i64) {
    dy.return %k : i64
  }
  dy.func @forward(%x: !torch.vtensor<[1,4],f32>, %n: i64) -> (!torch.vtensor<[1,4],f32>, i64) {
    %c0 = arith.constant 0 : i64
    %c1 = arith.constant 1 : i64
    %r:2 = dy.for %i = %c0 to %n step %c1 iter_args(%h = %x, %k = %c0) -> (!torch.vtensor<[1,4],f32>, i64) {
      %y = dy.call @g0(%h) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
      %none = "torch.constant.none"() : () -> !torch.none
      %s = "torch.aten.sum"(%y, %none) : (!torch.vtensor<[1,4],f32>, !torch.none) -> !torch.vtensor<[],f32>
      %v = dy.item %s : !torch.vtensor<[],f32> -> f64
      %z = arith.constant 0.0 : f64
      %c = arith.cmpf ogt, %v, %z : f64
      %k2 = dy.call @helper(%k) : (i64) -> i64
      dy.if %c {
        dy.break %y, %k2 : !torch.vtensor<[1,4],f32>, i64
      } else {
        dy.yield
      }
      %sel = dy.switch %k2 : i64 -> (i64) case 0 {
        dy.yield %c0 : i64
      } case 1 {
        dy.return %y, %k2 : !torch.vtensor<[1,4],f32>, i64
      } default {
        dy.continue %y, %k2 : !torch.vtensor<[1,4],f32>, i64
      }
      dy.yield %y, %sel : !torch.vtensor<[1,4],f32>, i64
    }
    %w:2 = dy.while (%a = %c0, %b = %x) : (i64, !torch.vtensor<[1,4],f32>) -> (i64, !torch.vtensor<[1,4],f32>) {
      %go = arith.cmpi slt, %a, %n : i64
      dy.condition(%go) %a, %b : i64, !torch.vtensor<[1,4],f32>
    } do {
    ^bb0(%a2: i64, %b2: !torch.vtensor<[1,4],f32>):
      %a3 = arith.addi %a2, %c1 : i64
      dy.yield %a3, %b2 : i64, !torch.vtensor<[1,4],f32>
    }
    %t = dy.scalar_to_tensor %n : i64 -> !torch.vtensor<[],si64>
    %l = dy.list_empty : !dy.list<!torch.vtensor<[1,4],f32>>
    %l2 = dy.list_append %l, %x : !dy.list<!torch.vtensor<[1,4],f32>>, !torch.vtensor<[1,4],f32>
    %len = dy.list_len %l2 : !dy.list<!torch.vtensor<[1,4],f32>>
    %first = dy.list_get %l2[%c0] : !dy.list<!torch.vtensor<[1,4],f32>> -> !torch.vtensor<[1,4],f32>
    %st = dy.list_stack %l2 dim 0 : !dy.list<!torch.vtensor<[1,4],f32>> -> !torch.vtensor<[?,1,4],f32>
    %ct = dy.list_cat %l2 dim 1 : !dy.list<!torch.vtensor<[1,4],f32>> -> !torch.vtensor<[1,?],f32>
    dy.return %r#0, %r#1 : !torch.vtensor<[1,4],f32>, i64
  }
}

// CHECK: "builtin.module"() ({
// CHECK-LABEL: "dy.graph"() <{sym_name = "g0", function_type = (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>}> ({
// CHECK-NEXT: ^bb0(%x: !torch.vtensor<[1,4],f32>):
// CHECK-NEXT: %w = "dy.param"() <{key = "fc.weight"}> : () -> !torch.vtensor<[4,4],f32>
// CHECK-NEXT: %r = "torch.aten.mm"(%x, %w) : (!torch.vtensor<[1,4],f32>, !torch.vtensor<[4,4],f32>) -> !torch.vtensor<[1,4],f32>
// CHECK-NEXT: "dy.output"(%r) : (!torch.vtensor<[1,4],f32>) -> ()
// CHECK-NEXT: }) : () -> ()
// CHECK-LABEL: "dy.func"() <{sym_name = "helper", function_type = (i64) -> i64}> ({
// CHECK-NEXT: ^bb0(%k: i64):
// CHECK-NEXT: "dy.return"(%k) : (i64) -> ()
// CHECK-NEXT: }) : () -> ()
// CHECK-LABEL: "dy.func"() <{sym_name = "forward", function_type = (!torch.vtensor<[1,4],f32>, i64) -> (!torch.vtensor<[1,4],f32>, i64)}> ({
// CHECK-NEXT: ^bb0(%x: !torch.vtensor<[1,4],f32>, %n: i64):
// CHECK-NEXT: %c0 = "arith.constant"() <{value = 0 : i64}> : () -> i64
// CHECK-NEXT: %c1 = "arith.constant"() <{value = 1 : i64}> : () -> i64
// CHECK-NEXT: %r, %r_1 = "dy.for"(%c0, %n, %c1, %x, %c0) ({
// CHECK-NEXT: ^bb0(%i: i64, %h: !torch.vtensor<[1,4],f32>, %k: i64):
// CHECK-NEXT: %y = "dy.call"(%h) <{callee = @g0}> : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
// CHECK-NEXT: %none = "torch.constant.none"() : () -> !torch.none
// CHECK-NEXT: %s = "torch.aten.sum"(%y, %none) : (!torch.vtensor<[1,4],f32>, !torch.none) -> !torch.vtensor<[],f32>
// CHECK-NEXT: %v = "dy.item"(%s) : (!torch.vtensor<[],f32>) -> f64
// CHECK-NEXT: %z = "arith.constant"() <{value = 0.000000e+00 : f64}> : () -> f64
// CHECK-NEXT: %c = "arith.cmpf"(%v, %z) <{predicate = 2 : i64, fastmath = #arith.fastmath<none>}> : (f64, f64) -> i1
// CHECK-NEXT: %k2 = "dy.call"(%k) <{callee = @helper}> : (i64) -> i64
// CHECK-NEXT: "dy.if"(%c) ({
// CHECK-NEXT: "dy.break"(%y, %k2) : (!torch.vtensor<[1,4],f32>, i64) -> ()
// CHECK-NEXT: }, {
// CHECK-NEXT: "dy.yield"() : () -> ()
// CHECK-NEXT: }) : (i1) -> ()
// CHECK-NEXT: %sel = "dy.switch"(%k2) <{cases = array<i64: 0, 1>}> ({
// CHECK-NEXT: "dy.continue"(%y, %k2) : (!torch.vtensor<[1,4],f32>, i64) -> ()
// CHECK-NEXT: }, {
// CHECK-NEXT: "dy.yield"(%c0) : (i64) -> ()
// CHECK-NEXT: }, {
// CHECK-NEXT: "dy.return"(%y, %k2) : (!torch.vtensor<[1,4],f32>, i64) -> ()
// CHECK-NEXT: }) : (i64) -> i64
// CHECK-NEXT: "dy.yield"(%y, %sel) : (!torch.vtensor<[1,4],f32>, i64) -> ()
// CHECK-NEXT: }) : (i64, i64, i64, !torch.vtensor<[1,4],f32>, i64) -> (!torch.vtensor<[1,4],f32>, i64)
// CHECK-NEXT: %w, %w_1 = "dy.while"(%c0, %x) ({
// CHECK-NEXT: ^bb0(%a: i64, %b: !torch.vtensor<[1,4],f32>):
// CHECK-NEXT: %go = "arith.cmpi"(%a, %n) <{predicate = 2 : i64}> : (i64, i64) -> i1
// CHECK-NEXT: "dy.condition"(%go, %a, %b) : (i1, i64, !torch.vtensor<[1,4],f32>) -> ()
// CHECK-NEXT: }, {
// CHECK-NEXT: ^bb0(%a2: i64, %b2: !torch.vtensor<[1,4],f32>):
// CHECK-NEXT: %a3 = "arith.addi"(%a2, %c1) <{overflowFlags = #arith.overflow<none>}> : (i64, i64) -> i64
// CHECK-NEXT: "dy.yield"(%a3, %b2) : (i64, !torch.vtensor<[1,4],f32>) -> ()
// CHECK-NEXT: }) : (i64, !torch.vtensor<[1,4],f32>) -> (i64, !torch.vtensor<[1,4],f32>)
// CHECK-NEXT: %t = "dy.scalar_to_tensor"(%n) : (i64) -> !torch.vtensor<[],si64>
// CHECK-NEXT: %l = "dy.list_empty"() : () -> !dy.list<!torch.vtensor<[1,4],f32>>
// CHECK-NEXT: %l2 = "dy.list_append"(%l, %x) : (!dy.list<!torch.vtensor<[1,4],f32>>, !torch.vtensor<[1,4],f32>) -> !dy.list<!torch.vtensor<[1,4],f32>>
// CHECK-NEXT: %len = "dy.list_len"(%l2) : (!dy.list<!torch.vtensor<[1,4],f32>>) -> i64
// CHECK-NEXT: %first = "dy.list_get"(%l2, %c0) : (!dy.list<!torch.vtensor<[1,4],f32>>, i64) -> !torch.vtensor<[1,4],f32>
// CHECK-NEXT: %st = "dy.list_stack"(%l2) <{dim = 0 : i64}> : (!dy.list<!torch.vtensor<[1,4],f32>>) -> !torch.vtensor<[?,1,4],f32>
// CHECK-NEXT: %ct = "dy.list_cat"(%l2) <{dim = 1 : i64}> : (!dy.list<!torch.vtensor<[1,4],f32>>) -> !torch.vtensor<[1,?],f32>
// CHECK-NEXT: "dy.return"(%r, %r_1) : (!torch.vtensor<[1,4],f32>, i64) -> ()
// CHECK-NEXT: }) : () -> ()
// CHECK-NEXT: }) {dy.params = "weights.safetensors"} : () -> ()
