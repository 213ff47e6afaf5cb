// --verify-diagnostics fails, naming both, on an error the input does not expect and on
// an expected error that does not occur; each part of a split file is checked alone.
// RUN: not opt-pipeline %s -p '' --split-input-file --verify-diagnostics 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %f = arith.constant 1.0 : f64
  // expected-error@+1 {{values do not match the results of @main}}
  dy.return %f : f64
}
// CHECK: verify-diagnostics.mlir:8:3: error: unexpected error: 'dy.return' op values do not match the results of @forward
// CHECK: verify-diagnostics.mlir:7:1: error: expected error "values do not match the results of @main" was not produced

// -----

dy.func @forward(%x: i64) -> (i64) {
  // expected-error@+1 {{this error is never reported}}
  dy.return %x : i64
}
// CHECK: verify-diagnostics.mlir:16:1: error: expected error "this error is never reported" was not produced

// -----

dy.func @forward(%x: i64) -> (i64) {
  // expected-error@-1 {{'dy.return' op values do not match}}
  %f = arith.constant 1.0 : f64
  dy.return %f : f64
}
// CHECK: verify-diagnostics.mlir:26:3: error: unexpected error
// CHECK: verify-diagnostics.mlir:24:1: error: expected error "'dy.return' op values do not match" was not produced
// CHECK-NOT: error
