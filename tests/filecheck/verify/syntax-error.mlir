// A syntax error points at the offending token.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %y = arith.addi %x, : i64
  dy.return %y : i64
}

// CHECK: {{.*}}syntax-error.mlir:5:23: error: operand expected
