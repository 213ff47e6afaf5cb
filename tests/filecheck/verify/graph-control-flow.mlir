// A dy.graph is straight-line: no region-holding op inside.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.graph @g(%x: !torch.vtensor<[2],f32>, %c: i1) -> (!torch.vtensor<[2],f32>) {
  %r = dy.if %c -> (!torch.vtensor<[2],f32>) {
    dy.yield %x : !torch.vtensor<[2],f32>
  } else {
    dy.yield %x : !torch.vtensor<[2],f32>
  }
  dy.output %r : !torch.vtensor<[2],f32>
}
dy.func @forward(%x: i64) -> (i64) {
  dy.return %x : i64
}

// CHECK: {{.*}}graph-control-flow.mlir:4:1: error: 'dy.graph' op must be straight-line, but contains 'dy.if' with regions
