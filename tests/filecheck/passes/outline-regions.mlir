// outline-regions moves every maximal straight-line run of torch ops (and the dy.params
// they read) into a dy.graph called by dy.call; inputs and outputs follow liveness,
// constants are cloned into the graphs that use them, identical runs share one graph.
// RUN: opt-pipeline %s -p outline-regions --split-input-file --verify-diagnostics | filecheck %s
// A second run finds no tensor compute left in the host: the same output.
// RUN: opt-pipeline %s -p outline-regions,outline-regions --split-input-file --verify-diagnostics | filecheck %s

// CHECK-LABEL: dy.graph @forward_graph0(%0: !torch.vtensor<[1,4],f32>) -> (!torch.vtensor<[1,4],f32>, !torch.vtensor<[],f32>)
// CHECK-NEXT:    %w = dy.param "fc.weight"
// CHECK-NEXT:    %a = "torch.aten.mm"(%0, %w)
// CHECK-NEXT:    %b = "torch.aten.relu"(%a)
// CHECK-NEXT:    %none = "torch.constant.none"
// CHECK-NEXT:    %s = "torch.aten.sum"(%b, %none)
// CHECK-NEXT:    dy.output %b, %s
// CHECK-LABEL: dy.graph @forward_graph1(%0: !torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
// CHECK-NEXT:    %t = "torch.aten.tanh"(%0)
// CHECK-NEXT:    %u = "torch.aten.relu"(%t)
// CHECK-NEXT:    dy.output %u
// CHECK-NOT:   dy.graph
// CHECK-LABEL: dy.func @forward
// CHECK-NEXT:    %b, %s = dy.call @forward_graph0(%x)
// CHECK-NEXT:    %v = dy.item %s
// CHECK:         dy.if %c
// CHECK-NEXT:      %u = dy.call @forward_graph1(%b)
// CHECK-NEXT:      dy.yield %u
// CHECK-NEXT:    } else {
// CHECK-NEXT:      %u2 = dy.call @forward_graph1(%b)
// CHECK-NEXT:      dy.yield %u2
dy.func @forward(%x: !torch.vtensor<[1,4],f32>) -> (!torch.vtensor<[1,4],f32>) {
  %w = dy.param "fc.weight" : !torch.vtensor<[4,4],f32>
  %a = "torch.aten.mm"(%x, %w) : (!torch.vtensor<[1,4],f32>, !torch.vtensor<[4,4],f32>) -> !torch.vtensor<[1,4],f32>
  %b = "torch.aten.relu"(%a) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
  %none = "torch.constant.none"() : () -> !torch.none
  %s = "torch.aten.sum"(%b, %none) : (!torch.vtensor<[1,4],f32>, !torch.none) -> !torch.vtensor<[],f32>
  %v = dy.item %s : !torch.vtensor<[],f32> -> f64
  %zero = arith.constant 0.0 : f64
  %c = arith.cmpf ogt, %v, %zero : f64
  %r = dy.if %c -> (!torch.vtensor<[1,4],f32>) {
    %t = "torch.aten.tanh"(%b) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
    %u = "torch.aten.relu"(%t) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
    dy.yield %u : !torch.vtensor<[1,4],f32>
  } else {
    %t2 = "torch.aten.tanh"(%b) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
    %u2 = "torch.aten.relu"(%t2) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
    dy.yield %u2 : !torch.vtensor<[1,4],f32>
  }
  dy.return %r : !torch.vtensor<[1,4],f32>
}

// -----

// A constant that a host op uses directly (a loop's initial value) stays in the host as
// a value; the run that only holds constants is not outlined.
// CHECK-LABEL: dy.graph @forward_graph0(%0: !torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
// CHECK-NEXT:    %y = "torch.aten.tanh"(%0)
// CHECK-LABEL: dy.func @forward
// CHECK-NEXT:    %init = "torch.vtensor.literal"
// CHECK-NEXT:    %c0 = arith.constant 0 : i64
// CHECK:         dy.for %i = %c0 to %n step %c1 iter_args(%h = %init)
// CHECK-NEXT:      %y = dy.call @forward_graph0(%h)
dy.func @forward(%n: i64) -> (!torch.vtensor<[2],f32>) {
  %init = "torch.vtensor.literal"() <{value = dense<1.0> : tensor<2xf32>}> : () -> !torch.vtensor<[2],f32>
  %c0 = arith.constant 0 : i64
  %c1 = arith.constant 1 : i64
  %r = dy.for %i = %c0 to %n step %c1 iter_args(%h = %init) -> (!torch.vtensor<[2],f32>) {
    %y = "torch.aten.tanh"(%h) : (!torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    dy.yield %y : !torch.vtensor<[2],f32>
  }
  dy.return %r : !torch.vtensor<[2],f32>
}

// -----

// An op with effects whose result the host needs cannot be moved into a sub-graph.
dy.func @forward(%x: !torch.vtensor<[2],f32>) -> (!torch.vtensor<[2],f32>) {
  %none = "torch.constant.none"() : () -> !torch.none
  // expected-error@+1 {{'torch.aten.rand_like' op cannot be outlined: it has side effects}}
  %noise = "torch.aten.rand_like"(%x, %none, %none, %none, %none, %none) : (!torch.vtensor<[2],f32>, !torch.none, !torch.none, !torch.none, !torch.none, !torch.none) -> !torch.vtensor<[2],f32>
  dy.return %noise : !torch.vtensor<[2],f32>
}

// -----

// A `torch.tensor_static_info_cast` of a value no tensor op of its block made (a size an
// unrolled loop made `?`) stays in the host, so the sub-graph reading it takes the `?`
// type and is shared with the other iterations; a cast of a value computed in the run
// goes into the sub-graph with it.
// CHECK-LABEL: dy.graph @forward_graph0(%0: !torch.vtensor<[1,?],f32>) -> !torch.vtensor<[1,?],f32>
// CHECK-NEXT:    %t = "torch.aten.tanh"(%0)
// CHECK-NEXT:    dy.output %t
// CHECK-LABEL: dy.graph @forward_graph1(%0: !torch.vtensor<[1,3],f32>) -> !torch.vtensor<[1,?],f32>
// CHECK-NEXT:    %r = "torch.aten.relu"(%0)
// CHECK-NEXT:    %rc = "torch.tensor_static_info_cast"(%r)
// CHECK-NEXT:    %t2 = "torch.aten.tanh"(%rc)
// CHECK-NEXT:    dy.output %t2
// CHECK-LABEL: dy.func @forward
// CHECK-NEXT:    %xc = "torch.tensor_static_info_cast"(%x)
// CHECK-NEXT:    %t = dy.call @forward_graph0(%xc)
// CHECK-NEXT:    %n = arith.constant 0 : i64
// CHECK-NEXT:    %t2 = dy.call @forward_graph1(%x)
dy.func @forward(%x: !torch.vtensor<[1,3],f32>) -> (!torch.vtensor<[1,?],f32>, !torch.vtensor<[1,?],f32>) {
  %xc = "torch.tensor_static_info_cast"(%x) : (!torch.vtensor<[1,3],f32>) -> !torch.vtensor<[1,?],f32>
  %t = "torch.aten.tanh"(%xc) : (!torch.vtensor<[1,?],f32>) -> !torch.vtensor<[1,?],f32>
  %n = arith.constant 0 : i64
  %r = "torch.aten.relu"(%x) : (!torch.vtensor<[1,3],f32>) -> !torch.vtensor<[1,3],f32>
  %rc = "torch.tensor_static_info_cast"(%r) : (!torch.vtensor<[1,3],f32>) -> !torch.vtensor<[1,?],f32>
  %t2 = "torch.aten.tanh"(%rc) : (!torch.vtensor<[1,?],f32>) -> !torch.vtensor<[1,?],f32>
  dy.return %t, %t2 : !torch.vtensor<[1,?],f32>, !torch.vtensor<[1,?],f32>
}
