// In the generic form the operand type is spelled out, so the dy.if verifier rejects it.
// RUN: not opt-pipeline %s -p '' 2>&1 | filecheck %s

"dy.func"() <{sym_name = "forward", function_type = (i64) -> i64}> ({
^bb0(%x: i64):
  "dy.if"(%x) ({
    "dy.yield"() : () -> ()
  }, {
    "dy.yield"() : () -> ()
  }) : (i64) -> ()
  "dy.return"(%x) : (i64) -> ()
}) : () -> ()

// CHECK: {{.*}}if-condition-not-i1-generic.mlir:6:3: error: 'dy.if' op operand 'cond' at position 0 does not verify: Expected attribute i1 but got i64
