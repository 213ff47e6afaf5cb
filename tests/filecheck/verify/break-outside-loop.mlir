// dy.break needs an enclosing loop body; branches alone are not enough.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %c = arith.constant true
  dy.if %c {
    dy.break
  } else {
    dy.yield
  }
  dy.return %x : i64
}

// CHECK: {{.*}}break-outside-loop.mlir:7:5: error: 'dy.break' op is not inside the body of a dy.while or dy.for
