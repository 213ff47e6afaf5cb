// A pipeline naming an unknown pass or ending with ',' is reported at its column in the
// pipeline text, before the input is read; --pass-pipeline columns count its anchor.
// (Bad options, syntax errors, a missing anchor: tests/test_opt_pipeline_cli.py.)
// RUN: not opt-pipeline %s -p 'dce,no-such-pass' 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not opt-pipeline %s -p 'dce,' 2>&1 | filecheck %s --check-prefix=TRAILING
// RUN: not opt-pipeline %s --pass-pipeline='builtin.module(dce,nope)' 2>&1 | filecheck %s --check-prefix=ANCHORED
// RUN: opt-pipeline %s --pass-pipeline='builtin.module(fold-constant-branches,dce)' | filecheck %s --check-prefix=OK

dy.func @forward(%x: i64) -> (i64) {
  dy.return %x : i64
}

// UNKNOWN: <pipeline>:1:5: error: unknown pass 'no-such-pass' (known passes: {{.*}}dce{{.*}}fold-constant-branches
// TRAILING: <pipeline>:1:4: error: expected a pass name after ','
// ANCHORED: <pipeline>:1:20: error: unknown pass 'nope'
// OK: dy.func @forward
