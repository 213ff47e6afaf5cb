// dy.item reads a single element; a statically larger tensor is rejected.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: !torch.vtensor<[2,3],f32>) -> (f64) {
  %v = dy.item %x : !torch.vtensor<[2,3],f32> -> f64
  dy.return %v : f64
}

// CHECK: {{.*}}item-multi-element.mlir:5:3: error: 'dy.item' op needs a tensor with one element, got !torch.vtensor<[2,3],f32> (6 elements)
