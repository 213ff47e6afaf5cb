// An unknown dy op is reported at its name.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %y = dy.foo %x : i64
  dy.return %y : i64
}

// CHECK: {{.*}}unknown-op.mlir:5:8: error: unknown operation 'dy.foo'
