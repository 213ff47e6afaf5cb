// dy.call must name a dy.graph or dy.func of the module.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %y = dy.call @nowhere(%x) : (i64) -> i64
  dy.return %y : i64
}

// CHECK: {{.*}}call-unknown-symbol.mlir:5:3: error: 'dy.call' op '@nowhere' does not name a symbol in this module
