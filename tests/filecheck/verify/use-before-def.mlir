// A value defined in a branch is not visible after it; reported at the use, not at EOF.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %c = arith.constant true
  %r = dy.if %c -> (i64) {
    %a = arith.addi %x, %x : i64
    dy.yield %a : i64
  } else {
    dy.yield %x : i64
  }
  %b = arith.addi %a, %x : i64
  dy.return %b : i64
}

// CHECK: {{.*}}use-before-def.mlir:12:3: error: use of undefined value '%a'
