// if-convert: a diamond with cheap pure arms becomes selects; an early-return decision list
// becomes a select chain; an arm that may fail (integer division) stays a branch; a loop
// mapping a straight-line function over the rows of a tensor becomes batched tensor code
// (the inlined function, no longer called, is removed).
// RUN: opt-pipeline %s -p if-convert | filecheck %s
// RUN: opt-pipeline %s -p 'if-convert{conjunctions=gemm}' | filecheck %s --check-prefix=GEMM

// CHECK-LABEL: dy.func @diamond
// CHECK-NEXT:    %a = arith.addi %x, %x : i64
// CHECK-NEXT:    %b = arith.muli %x, %x : i64
// CHECK-NEXT:    %r = arith.select %c, %a, %b : i64
// CHECK-NEXT:    dy.return %r : i64

// CHECK-LABEL: dy.func @exit_reads_the_branch_result
// CHECK-NEXT:    %[[R:.*]] = arith.select %c, %x, %y : i64
// CHECK-NEXT:    dy.return %[[R]] : i64

// CHECK-LABEL: dy.func @division_may_fail
// CHECK:         dy.if %c
// CHECK:         arith.divsi

// CHECK-LABEL: dy.func @forward
// CHECK-NOT:     dy.for
// CHECK-NOT:     dy.call
// CHECK:         %[[P:.*]] = "torch.aten.select.int"(%table, {{.*}}) : (!torch.vtensor<[4,2],i1>, !torch.int, !torch.int) -> !torch.vtensor<[4],i1>
// CHECK:         %[[Q:.*]] = "torch.aten.select.int"(%table, {{.*}}) : (!torch.vtensor<[4,2],i1>, !torch.int, !torch.int) -> !torch.vtensor<[4],i1>
// CHECK:         %[[NP:.*]] = "torch.aten.logical_not"(%[[P]])
// CHECK:         %[[BOTH:.*]] = "torch.aten.logical_and"(%[[NP]], %[[Q]])
// CHECK:         %[[LATER:.*]] = "torch.aten.where.self"(%[[BOTH]], {{.*}}) : {{.*}} -> !torch.vtensor<[4],si64>
// CHECK:         %out = "torch.aten.where.self"(%[[P]], {{.*}}, %[[LATER]])
// CHECK-NEXT:    dy.return %out : !torch.vtensor<[4],si64>
// CHECK-NOT:     @decision_list

// GEMM-LABEL: dy.func @forward
// GEMM:         "torch.aten.cat"
// GEMM:         "torch.vtensor.literal"() {value = dense<{{\[\[}}1.000000e+00], [-1.000000e+00]]> : tensor<2x1xf32>}
// GEMM:         "torch.aten.mm"
// GEMM:         "torch.aten.eq.Tensor"
// GEMM-NOT:     "torch.aten.logical_and"

dy.func @diamond(%c: i1, %x: i64) -> (i64) {
  %r = dy.if %c -> (i64) {
    %a = arith.addi %x, %x : i64
    dy.yield %a : i64
  } else {
    %b = arith.muli %x, %x : i64
    dy.yield %b : i64
  }
  dy.return %r : i64
}
dy.func @decision_list(%p: i1, %q: i1) -> (i64) {
  dy.if %p {
    %zero = arith.constant 0 : i64
    dy.return %zero : i64
  } else {
    dy.yield
  }
  %t = arith.constant true
  %np = arith.xori %p, %t : i1
  %both = arith.andi %np, %q : i1
  dy.if %both {
    %one = arith.constant 1 : i64
    dy.return %one : i64
  } else {
    dy.yield
  }
  %none = arith.constant -1 : i64
  dy.return %none : i64
}
dy.func @exit_reads_the_branch_result(%c: i1, %x: i64, %y: i64) -> (i64) {
  %v = dy.if %c -> (i64) {
    dy.return %x : i64
  } else {
    dy.yield %y : i64
  }
  dy.return %v : i64
}
dy.func @division_may_fail(%c: i1, %x: i64, %y: i64) -> (i64) {
  %r = dy.if %c -> (i64) {
    %d = arith.divsi %x, %y : i64
    dy.yield %d : i64
  } else {
    dy.yield %x : i64
  }
  dy.return %r : i64
}
dy.func @forward(%table: !torch.vtensor<[4,2],i1>) -> (!torch.vtensor<[4],si64>) {
  %empty = dy.list_empty : !dy.list<!torch.vtensor<[],si64>>
  %c0 = arith.constant 0 : i64
  %c4 = arith.constant 4 : i64
  %c1 = arith.constant 1 : i64
  %rows = dy.for %i = %c0 to %c4 step %c1 iter_args(%acc = %empty) -> (!dy.list<!torch.vtensor<[],si64>>) {
    %it = dy.scalar_to_tensor %i : i64 -> !torch.vtensor<[],si64>
    %index = "torch.aten.Int.Tensor"(%it) : (!torch.vtensor<[],si64>) -> !torch.int
    %dim0 = "torch.constant.int"() {value = 0 : i64} : () -> !torch.int
    %row = "torch.aten.select.int"(%table, %dim0, %index) : (!torch.vtensor<[4,2],i1>, !torch.int, !torch.int) -> !torch.vtensor<[2],i1>
    %k0 = "torch.constant.int"() {value = 0 : i64} : () -> !torch.int
    %k1 = "torch.constant.int"() {value = 1 : i64} : () -> !torch.int
    %t0 = "torch.aten.select.int"(%row, %dim0, %k0) : (!torch.vtensor<[2],i1>, !torch.int, !torch.int) -> !torch.vtensor<[],i1>
    %t1 = "torch.aten.select.int"(%row, %dim0, %k1) : (!torch.vtensor<[2],i1>, !torch.int, !torch.int) -> !torch.vtensor<[],i1>
    %p = dy.item %t0 : !torch.vtensor<[],i1> -> i1
    %q = dy.item %t1 : !torch.vtensor<[],i1> -> i1
    %k = dy.call @decision_list(%p, %q) : (i1, i1) -> i64
    %kt = dy.scalar_to_tensor %k : i64 -> !torch.vtensor<[],si64>
    %acc2 = dy.list_append %acc, %kt : !dy.list<!torch.vtensor<[],si64>>, !torch.vtensor<[],si64>
    dy.yield %acc2 : !dy.list<!torch.vtensor<[],si64>>
  }
  %out = dy.list_stack %rows dim 0 : !dy.list<!torch.vtensor<[],si64>> -> !torch.vtensor<[4],si64>
  dy.return %out : !torch.vtensor<[4],si64>
}
