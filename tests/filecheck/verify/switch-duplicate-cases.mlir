// dy.switch case values must be distinct.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %r = dy.switch %x : i64 -> (i64) case 1 {
    dy.yield %x : i64
  } case 1 {
    dy.yield %x : i64
  } default {
    dy.yield %x : i64
  }
  dy.return %r : i64
}

// CHECK: {{.*}}switch-duplicate-cases.mlir:5:3: error: 'dy.switch' op has duplicate case values [1, 1]
