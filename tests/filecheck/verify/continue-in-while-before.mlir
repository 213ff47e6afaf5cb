// dy.continue may not leave a dy.while's before-region (only its do-region).
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %r = dy.while (%a = %x) : (i64) -> (i64) {
    %t = arith.constant true
    dy.if %t {
      dy.continue %a : i64
    } else {
      dy.yield
    }
    dy.condition(%t) %a : i64
  } do {
  ^bb0(%b: i64):
    dy.yield %b : i64
  }
  dy.return %r : i64
}

// CHECK: {{.*}}continue-in-while-before.mlir:8:7: error: 'dy.continue' op is not inside the body of a dy.while or dy.for
