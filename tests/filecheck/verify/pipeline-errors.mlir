// A pipeline naming an unknown pass, a known pass with a bad option, a syntax error or a
// trailing ',' is reported at its column in the pipeline text, before the input is read;
// so is a --pass-pipeline without its 'builtin.module(...)' anchor.
// RUN: not opt-pipeline %s -p 'dce,no-such-pass' 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not opt-pipeline %s -p 'dce{bogus=1}' 2>&1 | filecheck %s --check-prefix=OPTION
// RUN: not opt-pipeline %s -p 'dce{' 2>&1 | filecheck %s --check-prefix=SYNTAX
// RUN: not opt-pipeline %s -p 'dce,' 2>&1 | filecheck %s --check-prefix=TRAILING
// RUN: not opt-pipeline %s --pass-pipeline='builtin.module(dce,nope)' 2>&1 | filecheck %s --check-prefix=ANCHORED
// RUN: not opt-pipeline %s --pass-pipeline='dce' 2>&1 | filecheck %s --check-prefix=NO-ANCHOR
// RUN: opt-pipeline %s --pass-pipeline='builtin.module(fold-constant-branches,dce)' | filecheck %s --check-prefix=OK

dy.func @forward(%x: i64) -> (i64) {
  dy.return %x : i64
}

// UNKNOWN: <pipeline>:1:5: error: unknown pass 'no-such-pass' (known passes: {{.*}}dce{{.*}}fold-constant-branches
// OPTION: <pipeline>:1:1: error: bad options for pass 'dce'
// SYNTAX: <pipeline>:1:{{[0-9]+}}: error:
// TRAILING: <pipeline>:1:4: error: expected a pass name after ','
// ANCHORED: <pipeline>:1:20: error: unknown pass 'nope'
// NO-ANCHOR: <pipeline>:1:1: error: expected 'builtin.module(...)' around the passes
// OK: dy.func @forward
