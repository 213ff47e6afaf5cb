"""`opt-pipeline` as a user meets it: inputs, outputs, options, and robustness.

The fuzz tests mutate valid programs and pipeline specs at random and demand what the tool
promises: exit 0 or 1, never a traceback, and on failure exactly one
`FILE:LINE:COL: error: ...` line. Most runs are in-process (`passes.cli.run`, where any
exception is a crash the test reports); a few go through the real console script.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ir.program import parse_and_verify, print_module
from passes.cli import run
from passes.registry import DEFAULT_PIPELINE, PASSES
from tests.support.snippets import SNIPPETS

OPT_PIPELINE = Path(sys.executable).with_name("opt-pipeline")
ERROR_LINE = re.compile(r"^(<stdin>|<pipeline>|[^:\n]+):\d+:\d+: error: [^\n]+\n$")

PROGRAM = """builtin.module {
  dy.func @forward(%x: i64) -> (i64) {
    %t = arith.constant true
    %r = dy.if %t -> (i64) {
      %a = arith.addi %x, %x : i64
      dy.yield %a : i64
    } else {
      dy.yield %x : i64
    }
    %dead = arith.muli %r, %r : i64
    dy.return %r : i64
  }
}
"""


def cli(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    """Run `opt-pipeline` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = run(argv)
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


def assert_clean_outcome(code: int, stderr: str) -> None:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert code in (0, 1)
    if code == 1:
        assert ERROR_LINE.match(stderr), repr(stderr)


# ------------------------------------------------------------------ the options


def test_reads_a_file_and_runs_the_default_pipeline(tmp_path: Path):
    source = tmp_path / "prog.mlir"
    source.write_text(PROGRAM)
    code, out, err = cli([str(source)])
    assert (code, err) == (0, "")
    assert out == cli([str(source), "-p", DEFAULT_PIPELINE])[1]
    assert "dy.if" not in out and "%dead" not in out


def test_reads_stdin_with_and_without_dash():
    assert cli(["-p", "dce"], PROGRAM) == cli(["-", "-p", "dce"], PROGRAM)
    code, out, _ = cli(["-p", "dce"], PROGRAM)
    assert code == 0 and "%dead" not in out and "dy.if" in out


def test_empty_pipeline_only_verifies_and_prints():
    code, out, err = cli(["-p", ""], PROGRAM)
    assert (code, err) == (0, "")
    assert out == print_module(parse_and_verify(PROGRAM))


def test_generic_output_parses_back_to_the_same_program():
    code, generic, _ = cli(["-p", "", "--generic"], PROGRAM)
    assert code == 0 and generic.startswith('"builtin.module"()')
    assert cli(["-p", ""], generic)[1] == cli(["-p", ""], PROGRAM)[1]


def test_output_file(tmp_path: Path):
    target = tmp_path / "out.mlir"
    code, out, _ = cli(["-p", "", "-o", str(target)], PROGRAM)
    assert (code, out) == (0, "")
    assert target.read_text() == print_module(parse_and_verify(PROGRAM))


def test_list_passes_names_every_registered_pass():
    code, out, _ = cli(["--list-passes"])
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == sorted(PASSES)


def test_print_ir_after_all_dumps_after_each_pass_in_order():
    code, out, err = cli(["-p", "fold-constant-branches,dce", "--print-ir-after-all"], PROGRAM)
    assert code == 0
    headers = re.findall(r"// -----// IR Dump After (\S+) //----- //", err)
    assert headers == ["fold-constant-branches", "dce"]
    after_fold, after_dce = err.split("// -----// IR Dump After")[1:]
    assert "%dead" in after_fold and "%dead" not in after_dce
    assert after_dce.split("\n", 1)[1] == out


def test_unreadable_input_is_one_error_line(tmp_path: Path):
    missing = tmp_path / "missing.mlir"
    code, _, err = cli([str(missing)])
    assert code == 1
    assert err.startswith(f"{missing}:0:0: error: cannot read input")
    assert_clean_outcome(code, err)


def test_error_names_the_file(tmp_path: Path):
    source = tmp_path / "bad.mlir"
    source.write_text("dy.func @forward(%x: i64) -> (i64) {\n  dy.return %x : f64\n}\n")
    code, _, err = cli([str(source), "-p", ""])
    assert code == 1
    assert err.startswith(f"{source}:2:13: error: operand is used with type f64")


def test_pipeline_errors_are_located_in_the_pipeline_text():
    for argv, expected in [
        (["-p", "dce{bogus=1}"], "<pipeline>:1:1: error: bad options for pass 'dce'"),
        (["-p", "dce{"], "<pipeline>:1:"),
        (["-p", "dce,"], "<pipeline>:1:4: error: expected a pass name after ','"),
        (["-p", "dce,,fold-constant-branches"], "<pipeline>:1:5: error:"),
        (["--pass-pipeline", "dce"], "<pipeline>:1:1: error: expected 'builtin.module(...)'"),
        (["--pass-pipeline", "builtin.module(dce,nope)"], "<pipeline>:1:20: error: unknown pass"),
        (["-p", "dce", "--pass-pipeline", "builtin.module(dce)"], "<pipeline>:1:1: error: give"),
    ]:
        code, out, err = cli(argv, PROGRAM)
        assert (code, out) == (1, ""), argv
        assert err.startswith(expected), (argv, err)
        assert_clean_outcome(code, err)


def test_pass_pipeline_is_the_mlir_spelling_of_p():
    assert cli(["--pass-pipeline", "builtin.module(fold-constant-branches,dce)"], PROGRAM) == cli(
        ["-p", "fold-constant-branches,dce"], PROGRAM
    )


@pytest.mark.parametrize("text", ["", "\n\n", "// only a comment\n"])
def test_an_empty_input_is_an_empty_module(text: str):
    assert cli(["-p", ""], text) == (0, "builtin.module {\n}\n", "")


SPLIT = f"""{PROGRAM}
// -----
dy.func @forward(%x: i64) -> (i64) {{
  %f = arith.constant 1.0 : f64
  dy.return %f : f64
}}
// -----
builtin.module {{
}}
"""


def test_split_input_file_keeps_line_numbers_and_goes_on_after_an_error():
    code, out, err = cli(["-p", "dce", "--split-input-file"], SPLIT)
    assert code == 1
    error_line = SPLIT.splitlines().index("  dy.return %f : f64") + 1
    assert err == (
        f"<stdin>:{error_line}:3: error: 'dy.return' op values do not match the results of "
        "@forward: got 1 value(s) of types (f64), expected 1 of types (i64)\n"
    )
    first, second = out.split("// -----\n")
    assert "%dead" not in first and "dy.if" in first
    assert second == "builtin.module {\n}\n"


def test_verify_diagnostics_accepts_the_expected_errors_only():
    expecting = SPLIT.replace(
        "  dy.return %f : f64",
        "  // expected-error@+1 {{values do not match}}\n  dy.return %f : f64",
    )
    code, out, err = cli(["-p", "", "--split-input-file", "--verify-diagnostics"], expecting)
    assert (code, err) == (0, "")
    assert out.count("builtin.module") == 2
    wrong = expecting.replace("values do not match", "values match")
    code, _, err = cli(["-p", "", "--split-input-file", "--verify-diagnostics"], wrong)
    assert code == 1
    assert "error: unexpected error: 'dy.return' op values do not match" in err
    assert 'error: expected error "values match" was not produced' in err


def test_time_passes_reports_every_pass():
    code, _, err = cli(["--time-passes"], PROGRAM)
    assert code == 0
    assert "Execution time report" in err
    names = re.findall(r"^\s+\d+\.\d+ \(\s*\d+\.\d%\)\s+(\S+)$", err, re.MULTILINE)
    assert names == [
        "parser",
        "fold-constant-branches",
        "verifier",
        "dce",
        "outline-regions",
        "output",
        "Total",
    ]


def test_print_debuginfo_locations_parse_back(tmp_path: Path):
    source = tmp_path / "prog.mlir"
    source.write_text(PROGRAM)
    code, located, _ = cli([str(source), "-p", "", "--print-debuginfo"])
    assert code == 0 and f'loc("{source}":5:7)' in located
    reparsed = cli(["-p", "dce", "--print-debuginfo"], located)[1]
    assert "%r = dy.if %t -> (i64) {" in reparsed and f'loc("{source}":4:5)' in reparsed
    broken = located.replace("dy.yield %a : i64", "dy.yield %t : i1")
    code, _, err = cli(["-p", ""], broken)
    assert code == 1 and err.startswith(f"{source}:6:7: error: 'dy.yield' op")


def test_print_ir_before_all_and_after_change():
    code, _, err = cli(["-p", "dce,dce", "--print-ir-before-all"], PROGRAM)
    assert code == 0
    assert re.findall(r"IR Dump (\w+) (\S+)", err) == [("Before", "dce"), ("Before", "dce")]
    code, _, err = cli(["-p", "dce,dce,fold-constant-branches", "--print-ir-after-change"], PROGRAM)
    assert re.findall(r"IR Dump (\w+) (\S+)", err) == [
        ("After", "dce"),
        ("After", "fold-constant-branches"),
    ]


# ------------------------------------------------------------------------- fuzzing

SEEDS = [PROGRAM, *dict.fromkeys(SNIPPETS.values())]
TOKENS = re.compile(r"%[\w#:]+|@\w+|\"[^\"]*\"|[\w.]+|->|!?[\w.]+<[^>]*>+|\S")
INSERTIONS = [
    "}",
    "{",
    "(",
    ")",
    ":",
    ",",
    "->",
    "%x",
    "%r",
    "@forward",
    "i64",
    "i1",
    "f64",
    "dy.yield",
    "dy.break",
    "dy.return",
    "dy.continue",
    "dy.if",
    "=",
    "0",
    "-1",
    "!torch.vtensor<[2],f32>",
    "!torch.list<int>",
    "^bb0",
    '"',
    "<{",
    "}>",
    "#",
]


@st.composite
def mutated_programs(draw) -> str:
    """A valid program with 1-3 random character or token edits, or truncated."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        tokens = [m.span() for m in TOKENS.finditer(text)]
        if not tokens:
            break
        start, end = draw(st.sampled_from(tokens))
        kind = draw(
            st.sampled_from(
                [
                    "delete char",
                    "duplicate char",
                    "delete token",
                    "duplicate token",
                    "swap tokens",
                    "insert token",
                    "truncate",
                ]
            )
        )
        if kind == "delete char":
            text = text[:start] + text[start + 1 :]
        elif kind == "duplicate char":
            text = text[:start] + text[start] + text[start:]
        elif kind == "delete token":
            text = text[:start] + text[end:]
        elif kind == "duplicate token":
            text = text[:end] + " " + text[start:end] + text[end:]
        elif kind == "swap tokens":
            other_start, other_end = draw(st.sampled_from(tokens))
            (a, b), (c, d) = sorted([(start, end), (other_start, other_end)])
            if b <= c:
                text = text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]
        elif kind == "insert token":
            text = text[:start] + draw(st.sampled_from(INSERTIONS)) + " " + text[start:]
        else:
            text = text[:start]
    return text


PIPELINES = [
    [],
    ["-p", ""],
    ["-p", "dce"],
    ["-p", "fold-constant-branches"],
    ["--generic"],
    ["--split-input-file", "--verify-diagnostics"],
    ["--print-debuginfo", "--time-passes"],
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated_programs(), options=st.sampled_from(PIPELINES))
def test_mutated_programs_never_crash(text: str, options: list[str]):
    code, _, err = cli(options, text)
    if "--verify-diagnostics" in options:  # one line per mismatch
        for line in err.splitlines(keepends=True):
            assert_clean_outcome(code, line)
        return
    assert_clean_outcome(code, err)


@settings(max_examples=150, deadline=None)
@given(
    spec=st.lists(
        st.sampled_from([*PASSES, "nope", ",", "{", "}", "=", "1", "x", " ", "opt", '"']),
        max_size=6,
    ).map("".join)
)
def test_random_pipeline_specs_never_crash(spec: str):
    code, _, err = cli(["-p", spec], PROGRAM)
    assert_clean_outcome(code, err)
    if code == 1:
        assert err.startswith("<pipeline>:1:")


@pytest.mark.parametrize(
    "text",
    [
        PROGRAM[:40],
        PROGRAM.replace("dy.yield %a", "dy.yield %t"),
        PROGRAM.replace("}", "", 1),
        "\x00\xff",
        "",
    ],
    ids=["truncated", "type-error", "unbalanced", "binary", "empty"],
)
def test_real_process_exits_cleanly(text: str):
    result = subprocess.run(
        [str(OPT_PIPELINE)], check=False, input=text, capture_output=True, text=True, timeout=60
    )
    assert_clean_outcome(result.returncode, result.stderr)
    if result.returncode == 1:
        assert result.stderr.startswith("<stdin>:")
