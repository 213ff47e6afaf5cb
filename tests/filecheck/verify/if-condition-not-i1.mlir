// dy.if branches on a host i1: the custom form rejects an i64 condition at the operand.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  dy.if %x {
    dy.yield
  } else {
    dy.yield
  }
  dy.return %x : i64
}

// CHECK: {{.*}}if-condition-not-i1.mlir:5:9: error: operand is used with type i1, but has been previously used or defined with type i64
