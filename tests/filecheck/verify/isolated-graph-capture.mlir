// A dy.graph is isolated from above: it cannot use the enclosing function's values.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.func @forward(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
  dy.graph @g(%y: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
    %r = "torch.aten.add.Tensor"(%y, %x) : (!torch.vtensor<[2],f32>, !torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    dy.output %r : !torch.vtensor<[2],f32>
  }
  dy.return %x : !torch.vtensor<[2],f32>
}

// CHECK: {{.*}}isolated-graph-capture.mlir:6:5: error: 'torch.aten.add.Tensor' op operand #1 is used before it is defined or outside its scope
