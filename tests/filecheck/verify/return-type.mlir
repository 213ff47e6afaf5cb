// dy.return values must match the enclosing function's result types.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %f = arith.constant 1.0 : f64
  dy.return %f : f64
}

// CHECK: {{.*}}return-type.mlir:6:3: error: 'dy.return' op values do not match the results of @forward: got 1 value(s) of types (f64), expected 1 of types (i64)
