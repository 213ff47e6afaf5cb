// dy.condition only terminates a dy.while before-region.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %t = arith.constant true
  dy.condition(%t) %x : i64
}

// CHECK: {{.*}}condition-misplaced.mlir:6:3: error: 'dy.condition' op must terminate the before region of 'dy.while'
