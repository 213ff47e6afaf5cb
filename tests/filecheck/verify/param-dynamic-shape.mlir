// dy.param needs a static shape (weights are loaded by shape).
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: i64) -> (i64) {
  %w = dy.param "w" : !torch.vtensor<[?,4],f32>
  dy.return %x : i64
}

// CHECK: {{.*}}param-dynamic-shape.mlir:5:3: error: 'dy.param' op result must have a static shape and known dtype, got !torch.vtensor<[?,4],f32>
