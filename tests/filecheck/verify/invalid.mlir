// Verifier errors of the dy dialect, one program per '// -----' part, each stating the
// error it must produce (mlir-opt's -verify-diagnostics convention).
// RUN: opt-pipeline %s -p '' --split-input-file --verify-diagnostics

// dy.break needs an enclosing loop body; branches alone are not enough.
dy.func @forward(%x: i64) -> (i64) {
  %c = arith.constant true
  dy.if %c {
    // expected-error@+1 {{'dy.break' op is not inside the body of a dy.while or dy.for}}
    dy.break
  } else {
    dy.yield
  }
  dy.return %x : i64
}

// -----

// dy.call operands must match the callee's inputs.
dy.graph @g(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
  dy.output %x : !torch.vtensor<[2],f32>
}
dy.func @forward(%x: !torch.vtensor<[3],f32>) -> (!torch.vtensor<[3],f32>) {
  // expected-error@+1 {{'dy.call' op operands do not match the inputs of @g: got 1 value(s) of types (!torch.vtensor<[3],f32>), expected 1 of types (!torch.vtensor<[2],f32>)}}
  %y = dy.call @g(%x) : (!torch.vtensor<[3],f32>) -> !torch.vtensor<[3],f32>
  dy.return %y : !torch.vtensor<[3],f32>
}

// -----

// dy.call must name a dy.graph or dy.func of the module.
dy.func @forward(%x: i64) -> (i64) {
  // expected-error@+1 {{'dy.call' op '@nowhere' does not name a symbol in this module}}
  %y = dy.call @nowhere(%x) : (i64) -> i64
  dy.return %y : i64
}

// -----

// dy.condition only terminates a dy.while before-region.
dy.func @forward(%x: i64) -> (i64) {
  %t = arith.constant true
  // expected-error@+1 {{'dy.condition' op expects parent op 'dy.while'}}
  dy.condition(%t) %x : i64
}

// -----

// dy.continue may not leave a dy.while's before-region (only its do-region).
dy.func @forward(%x: i64) -> (i64) {
  %r = dy.while (%a = %x) : (i64) -> (i64) {
    %t = arith.constant true
    dy.if %t {
      // expected-error@+1 {{'dy.continue' op is not inside the body of a dy.while or dy.for}}
      dy.continue %a : i64
    } else {
      dy.yield
    }
    dy.condition(%t) %a : i64
  } do {
  ^bb0(%b: i64):
    dy.yield %b : i64
  }
  dy.return %r : i64
}

// -----

// A dy.graph is straight-line: no region-holding op inside.
// expected-error@+1 {{'dy.graph' op must be straight-line, but contains 'dy.if' with regions}}
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

// -----

// In the generic form the operand type is spelled out, so the dy.if verifier rejects it.
"dy.func"() <{sym_name = "forward", function_type = (i64) -> i64}> ({
^bb0(%x: i64):
  // expected-error@+1 {{'dy.if' op operand 'cond' at position 0 does not verify: Expected attribute i1 but got i64}}
  "dy.if"(%x) ({
    "dy.yield"() : () -> ()
  }, {
    "dy.yield"() : () -> ()
  }) : (i64) -> ()
  "dy.return"(%x) : (i64) -> ()
}) : () -> ()

// -----

// A dy.graph is isolated from above: it cannot use the enclosing function's values.
dy.func @forward(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
  dy.graph @g(%y: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
    // expected-error@+1 {{'torch.aten.add.Tensor' op operand #1 is used before it is defined or outside its scope}}
    %r = "torch.aten.add.Tensor"(%y, %x) : (!torch.vtensor<[2],f32>, !torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    dy.output %r : !torch.vtensor<[2],f32>
  }
  dy.return %x : !torch.vtensor<[2],f32>
}

// -----

// dy.item reads a single element; a statically larger tensor is rejected.
dy.func @forward(%x: !torch.vtensor<[2,3],f32>) -> (f64) {
  // expected-error@+1 {{'dy.item' op needs a tensor with one element, got !torch.vtensor<[2,3],f32> (6 elements)}}
  %v = dy.item %x : !torch.vtensor<[2,3],f32> -> f64
  dy.return %v : f64
}

// -----

// dy.param needs a static shape (weights are loaded by shape).
dy.func @forward(%x: i64) -> (i64) {
  // expected-error@+1 {{'dy.param' op result must have a static shape and known dtype, got !torch.vtensor<[?,4],f32>}}
  %w = dy.param "w" : !torch.vtensor<[?,4],f32>
  dy.return %x : i64
}

// -----

// dy.return values must match the enclosing function's result types.
dy.func @forward(%x: i64) -> (i64) {
  %f = arith.constant 1.0 : f64
  // expected-error@+1 {{'dy.return' op values do not match the results of @forward: got 1 value(s) of types (f64), expected 1 of types (i64)}}
  dy.return %f : f64
}

// -----

// dy.switch case values must be distinct.
dy.func @forward(%x: i64) -> (i64) {
  // expected-error@+1 {{'dy.switch' op has duplicate case values [1, 1]}}
  %r = dy.switch %x : i64 -> (i64) case 1 {
    dy.yield %x : i64
  } case 1 {
    dy.yield %x : i64
  } default {
    dy.yield %x : i64
  }
  dy.return %r : i64
}

// -----

// A dy.yield whose values differ from the dy.if results is reported at the dy.yield.
dy.func @forward(%x: i64) -> (i64) {
  %c = arith.constant true
  %r = dy.if %c -> (i64) {
    // expected-error@+1 {{'dy.yield' op values do not match what 'dy.if' expects: got 1 value(s) of types (i1), expected 1 of types (i64)}}
    dy.yield %c : i1
  } else {
    dy.yield %x : i64
  }
  dy.return %r : i64
}

// -----

// dy.yield ends a branch or a loop body; a dy.while before-region ends with dy.condition.
dy.func @forward(%x: i64) -> (i64) {
  %r = dy.while (%a = %x) : (i64) -> (i64) {
    // expected-error@+1 {{'dy.yield' op cannot terminate the before region of 'dy.while' (use 'dy.condition')}}
    dy.yield %a : i64
  } do {
  ^bb0(%b: i64):
    dy.yield %b : i64
  }
  dy.return %r : i64
}

// -----

// dy.yield belongs to a branch or a loop (HasParent), not to a function body.
dy.func @forward(%x: i64) -> (i64) {
  // expected-error@+1 {{'dy.yield' op expects parent op to be one of 'dy.if', 'dy.switch', 'dy.while', 'dy.for'}}
  dy.yield %x : i64
}

// -----

// dy.output terminates a dy.graph only.
dy.func @forward(%x: i64) -> (i64) {
  %t = arith.constant true
  dy.if %t {
    // expected-error@+1 {{'dy.output' op expects parent op 'dy.graph'}}
    dy.output %x : i64
  } else {
    dy.yield
  }
  dy.return %x : i64
}
