// dce erases pure ops whose results nobody uses (innermost first, to a fixpoint) and
// dy.graphs that no dy.call names; ops with effects or regions stay.
// RUN: opt-pipeline %s -p dce | filecheck %s
// The default pipeline runs dce after folding, so the constant dy.if goes too.
// RUN: opt-pipeline %s | filecheck %s --check-prefix=DEFAULT

builtin.module {
  // CHECK-NOT:  @unused
  // DEFAULT-NOT: @unused
  dy.graph @unused(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
    dy.output %x : !torch.vtensor<[2],f32>
  }
  // CHECK-LABEL: dy.graph @used
  // CHECK-NEXT:    %r = "torch.aten.relu"(%x)
  // CHECK-NEXT:    dy.output %r
  dy.graph @used(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
    %dead = "torch.aten.tanh"(%x) : (!torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    %r = "torch.aten.relu"(%x) : (!torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    dy.output %r : !torch.vtensor<[2],f32>
  }
  // CHECK-LABEL: dy.func @forward
  // CHECK-NEXT:    %y = dy.call @used(%x)
  // CHECK-NEXT:    %none = "torch.constant.none"
  // CHECK-NEXT:    %noise = "torch.aten.rand_like"
  // CHECK-NEXT:    %c = arith.constant true
  // CHECK-NEXT:    dy.if %c {
  // CHECK-NEXT:      dy.yield
  // CHECK-NEXT:    } else {
  // CHECK-NEXT:      dy.yield
  // CHECK-NEXT:    }
  // CHECK-NEXT:    %c0 = arith.constant 0 : i64
  // CHECK-NEXT:    %c1 = arith.constant 1 : i64
  // CHECK-NEXT:    %n = dy.for
  // CHECK-NEXT:      dy.yield %acc
  // CHECK-NEXT:    }
  // CHECK-NEXT:    dy.return %y
  // CHECK-NEXT:  }
  // DEFAULT-LABEL: dy.func @forward
  // DEFAULT-NOT:   dy.if
  // DEFAULT:       %n = dy.for
  dy.func @forward(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
    %y = dy.call @used(%x) : (!torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    %none = "torch.constant.none"() : () -> !torch.none
    %noise = "torch.aten.rand_like"(%x, %none, %none, %none, %none, %none) : (!torch.vtensor<[2],f32>, !torch.none, !torch.none, !torch.none, !torch.none, !torch.none) -> !torch.vtensor<[2],f32>
    %s = "torch.aten.sum"(%y, %none) : (!torch.vtensor<[2],f32>, !torch.none) -> !torch.vtensor<[],f32>
    %v = dy.item %s : !torch.vtensor<[],f32> -> f64
    %l = dy.list_empty : !dy.list<!torch.vtensor<[2],f32>>
    %l2 = dy.list_append %l, %y : !dy.list<!torch.vtensor<[2],f32>>, !torch.vtensor<[2],f32>
    %c = arith.constant true
    dy.if %c {
      %inner = arith.xori %c, %c : i1
      dy.yield
    } else {
      dy.yield
    }
    %c0 = arith.constant 0 : i64
    %c1 = arith.constant 1 : i64
    %n = dy.for %i = %c0 to %c1 step %c1 iter_args(%acc = %c0) -> (i64) {
      %unused = arith.muli %acc, %i : i64
      dy.yield %acc : i64
    }
    dy.return %y : !torch.vtensor<[2],f32>
  }
}
