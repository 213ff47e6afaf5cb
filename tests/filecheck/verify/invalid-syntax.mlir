// Parse errors: each reported at the offending token, one program per '// -----' part.
// RUN: opt-pipeline %s -p '' --split-input-file --verify-diagnostics
// Each part keeps its line numbers in the file, and the column is the token's:
// RUN: not opt-pipeline %s -p '' --split-input-file 2>&1 | filecheck %s --check-prefix=LOC

// dy.if branches on a host i1: the custom form rejects an i64 condition at the operand.
dy.func @forward(%x: i64) -> (i64) {
  // expected-error@+1 {{operand is used with type i1, but has been previously used or defined with type i64}}
  dy.if %x {
    dy.yield
  } else {
    dy.yield
  }
  dy.return %x : i64
}

// -----

// A syntax error points at the offending token.
dy.func @forward(%x: i64) -> (i64) {
  // expected-error@+1 {{operand expected}}
  %y = arith.addi %x, : i64
  dy.return %y : i64
}

// -----

// An unknown dy op is reported at its name.
dy.func @forward(%x: i64) -> (i64) {
  // expected-error@+1 {{unknown operation 'dy.foo'}}
  %y = dy.foo %x : i64
  dy.return %y : i64
}

// -----

// A value defined in a branch is not visible after it; reported at the use, not at EOF.
dy.func @forward(%x: i64) -> (i64) {
  %c = arith.constant true
  %r = dy.if %c -> (i64) {
    %a = arith.addi %x, %x : i64
    dy.yield %a : i64
  } else {
    dy.yield %x : i64
  }
  // expected-error@+1 {{use of undefined value '%a'}}
  %b = arith.addi %a, %x : i64
  dy.return %b : i64
}

// LOC: invalid-syntax.mlir:9:9: error: operand is used with type i1, but has been previously used or defined with type i64
// LOC: invalid-syntax.mlir:22:23: error: operand expected
// LOC: invalid-syntax.mlir:31:8: error: unknown operation 'dy.foo'
// LOC: invalid-syntax.mlir:47:3: error: use of undefined value '%a'
