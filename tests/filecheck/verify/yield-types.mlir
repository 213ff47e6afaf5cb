// A dy.yield whose values differ from the dy.if results is reported at the dy.yield.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %c = arith.constant true
  %r = dy.if %c -> (i64) {
    dy.yield %c : i1
  } else {
    dy.yield %x : i64
  }
  dy.return %r : i64
}

// CHECK: {{.*}}yield-types.mlir:7:5: error: 'dy.yield' op values do not match what 'dy.if' expects: got 1 value(s) of types (i1), expected 1 of types (i64)
