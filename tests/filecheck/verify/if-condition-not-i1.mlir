// dy.if branches on a host i1; an i64 is rejected with the operand's type.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  dy.if %x {
    dy.yield
  } else {
    dy.yield
  }
  dy.return %x : i64
}

// CHECK: {{.*}}if-condition-not-i1.mlir:5:3: error: 'dy.if' op operand 'cond' at position 0 does not verify: Expected attribute i1 but got i64
