// dce erases ops whose results nobody uses when erasing them cannot change what the
// program does: pure ops (no effects, no exit landing outside, cannot fail at run time),
// uses first, to a fixpoint; then the dy.graphs that no dy.call names.
// RUN: opt-pipeline %s -p dce | filecheck %s
// The default pipeline folds first, so the constant dy.if in @forward goes as well.
// RUN: opt-pipeline %s | filecheck %s --check-prefix=DEFAULT

builtin.module {
  // CHECK-NOT:  @unused
  // DEFAULT-NOT: @unused
  dy.graph @unused(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
    dy.output %x : !torch.vtensor<[2],f32>
  }
  // A call of a graph that cannot fail is pure: unused, it goes, and then its graph.
  // CHECK-NOT:  @only_called_dead
  dy.graph @only_called_dead(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
    %r = "torch.aten.tanh"(%x) : (!torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    dy.output %r : !torch.vtensor<[2],f32>
  }
  // CHECK-LABEL: dy.graph @used
  // CHECK-NEXT:    %r = "torch.aten.relu"(%x)
  // CHECK-NEXT:    dy.output %r
  dy.graph @used(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
    %dead = "torch.aten.tanh"(%x) : (!torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    %r = "torch.aten.relu"(%x) : (!torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    dy.output %r : !torch.vtensor<[2],f32>
  }
  // Random draws, ops that may fail, loops that may not end and branches that may
  // return stay; pure ops, pure branches and counted loops go.
  // CHECK-LABEL: dy.func @forward
  // CHECK-NEXT:    %y = dy.call @used(%x)
  // CHECK-NEXT:    %none = "torch.constant.none"
  // CHECK-NEXT:    %noise = "torch.aten.rand_like"
  // CHECK-NEXT:    %c = arith.constant true
  // CHECK-NEXT:    dy.if %c {
  // CHECK-NEXT:      dy.return %y
  // CHECK-NEXT:    } else {
  // CHECK-NEXT:      dy.yield
  // CHECK-NEXT:    }
  // CHECK:         %k = dy.while
  // CHECK:         dy.return %y
  // CHECK-NEXT:  }
  // DEFAULT-LABEL: dy.func @forward
  // DEFAULT-NOT:   dy.if
  // DEFAULT:       dy.return %y
  dy.func @forward(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
    %y = dy.call @used(%x) : (!torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    %z = dy.call @only_called_dead(%x) : (!torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    %none = "torch.constant.none"() : () -> !torch.none
    %noise = "torch.aten.rand_like"(%x, %none, %none, %none, %none, %none) : (!torch.vtensor<[2],f32>, !torch.none, !torch.none, !torch.none, !torch.none, !torch.none) -> !torch.vtensor<[2],f32>
    %s = "torch.aten.sum"(%y, %none) : (!torch.vtensor<[2],f32>, !torch.none) -> !torch.vtensor<[],f32>
    %v = dy.item %s : !torch.vtensor<[],f32> -> f64
    %l = dy.list_empty : !dy.list<!torch.vtensor<[2],f32>>
    %l2 = dy.list_append %l, %y : !dy.list<!torch.vtensor<[2],f32>>, !torch.vtensor<[2],f32>
    %stacked = dy.list_stack %l2 dim 0 : !dy.list<!torch.vtensor<[2],f32>> -> !torch.vtensor<[?,2],f32>
    %c = arith.constant true
    dy.if %c {
      %inner = arith.xori %c, %c : i1
      dy.yield
    } else {
      dy.yield
    }
    dy.if %c {
      dy.return %y : !torch.vtensor<[2],f32>
    } else {
      dy.yield
    }
    %c0 = arith.constant 0 : i64
    %c1 = arith.constant 1 : i64
    %n = dy.for %i = %c0 to %c1 step %c1 iter_args(%acc = %c0) -> (i64) {
      %unused = arith.muli %acc, %i : i64
      dy.break %acc : i64
    }
    %k = dy.while (%j = %c0) : (i64) -> (i64) {
      %go = arith.cmpi slt, %j, %c1 : i64
      dy.condition(%go) %j : i64
    } do {
    ^bb0(%j2: i64):
      dy.yield %j2 : i64
    }
    dy.return %y : !torch.vtensor<[2],f32>
  }
  // Regression: `dy.list_stack` of a list that may be empty fails at run time, so it is
  // not dead even when its result is unused; nor is a `dy.list_get` (the index may be out
  // of range), a `dy.item` of a tensor of unknown size, an integer division by a value
  // that may be zero, or a counted loop whose step is not a positive constant.
  // CHECK-LABEL: dy.func @may_fail
  // CHECK-NEXT:    %stacked = dy.list_stack %l dim 0
  // CHECK-NEXT:    %cat = dy.list_cat %l dim 0
  // CHECK-NEXT:    %got = dy.list_get %l[%n]
  // CHECK-NEXT:    %v = dy.item %t
  // CHECK-NEXT:    %q = arith.divsi %n, %n
  // CHECK-NEXT:    %r = arith.floordivsi %n, %n
  // CHECK-NEXT:    %c0 = arith.constant 0 : i64
  // CHECK-NEXT:    %s = dy.for
  // CHECK:         dy.return %n : i64
  dy.func @may_fail(%l: !dy.list<!torch.vtensor<[2],f32>>, %t: !torch.vtensor<[?],f32>, %n: i64) -> (i64) {
    %stacked = dy.list_stack %l dim 0 : !dy.list<!torch.vtensor<[2],f32>> -> !torch.vtensor<[?,2],f32>
    %cat = dy.list_cat %l dim 0 : !dy.list<!torch.vtensor<[2],f32>> -> !torch.vtensor<[?],f32>
    %got = dy.list_get %l[%n] : !dy.list<!torch.vtensor<[2],f32>> -> !torch.vtensor<[2],f32>
    %v = dy.item %t : !torch.vtensor<[?],f32> -> f64
    %q = arith.divsi %n, %n : i64
    %r = arith.floordivsi %n, %n : i64
    %c0 = arith.constant 0 : i64
    %s = dy.for %i = %c0 to %n step %n iter_args(%acc = %c0) -> (i64) {
      dy.yield %acc : i64
    }
    dy.return %n : i64
  }
}
