// A pipeline naming an unknown pass, or a known pass with a bad option, is reported at its
// column in the pipeline text, before the input is read.
// RUN: not opt-pipeline %s -p 'dce,no-such-pass' 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not opt-pipeline %s -p 'dce{bogus=1}' 2>&1 | filecheck %s --check-prefix=OPTION
// RUN: not opt-pipeline %s -p 'dce{' 2>&1 | filecheck %s --check-prefix=SYNTAX

dy.func @forward(%x: i64) -> (i64) {
  dy.return %x : i64
}

// UNKNOWN: <pipeline>:1:5: error: unknown pass 'no-such-pass' (known passes: {{.*}}dce{{.*}}fold-constant-branches
// OPTION: <pipeline>:1:1: error: bad options for pass 'dce'
// SYNTAX: <pipeline>:1:{{[0-9]+}}: error:
