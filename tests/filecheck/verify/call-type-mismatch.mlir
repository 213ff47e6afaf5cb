// dy.call operands must match the callee's inputs.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

dy.graph @g(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
  dy.output %x : !torch.vtensor<[2],f32>
}
dy.func @forward(%x: !torch.vtensor<[3],f32>) -> (!torch.vtensor<[3],f32>) {
  %y = dy.call @g(%x) : (!torch.vtensor<[3],f32>) -> !torch.vtensor<[3],f32>
  dy.return %y : !torch.vtensor<[3],f32>
}

// CHECK: {{.*}}call-type-mismatch.mlir:8:3: error: 'dy.call' op operands do not match the inputs of @g: got 1 value(s) of types (!torch.vtensor<[3],f32>), expected 1 of types (!torch.vtensor<[2],f32>)
