"""Deeply nested programs are handled, not a `RecursionError`: regions 150 deep, types 200
deep and attributes 5,000 deep parse, verify, outline and print (the command-line tools run
on a deep stack); beyond the parser's limits the error names the place."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ir.parser import MAX_ATTRIBUTE_NESTING, MAX_REGION_NESTING
from ir.program import IRError, ProgramContext, call_with_deep_stack, parse_and_verify, print_module
from passes.outline_regions import OutlineRegions

T = "!torch.vtensor<[2],f32>"


def nested_ifs(depth: int) -> str:
    lines = ["builtin.module {", "  dy.func @forward(%c: i1) -> i64 {"]
    for level in range(depth):
        lines.append(f"    %r{level} = dy.if %c -> (i64) {{")
    lines += ["    %v = arith.constant 1 : i64", "    dy.yield %v : i64"]
    for level in reversed(range(depth)):
        lines += ["    } else {", f"    %e{level} = arith.constant 0 : i64",
                  f"    dy.yield %e{level} : i64", "    }"]
        if level:
            lines.append(f"    dy.yield %r{level} : i64")
    lines += ["    dy.return %r0 : i64", "  }", "}"]
    return "\n".join(lines) + "\n"


def nested_fors(depth: int) -> str:
    lines = ["builtin.module {", f"  dy.func @forward(%x: {T}, %n: i64) -> {T} {{",
             "    %c0 = arith.constant 0 : i64", "    %c1 = arith.constant 1 : i64"]
    for level in range(depth):
        carried = "%x" if level == 0 else f"%h{level - 1}"
        lines.append(f"    %r{level} = dy.for %i{level} = %c0 to %n step %c1 "
                     f"iter_args(%h{level} = {carried}) -> ({T}) {{")
    lines += [f'    %t = "torch.aten.tanh"(%h{depth - 1}) : ({T}) -> {T}', f"    dy.yield %t : {T}"]
    for level in reversed(range(depth)):
        lines.append("    }")
        if level:
            lines.append(f"    dy.yield %r{level} : {T}")
    lines += [f"    dy.return %r0 : {T}", "  }", "}"]
    return "\n".join(lines) + "\n"


def nested_list_type(depth: int) -> str:
    inner = "vtensor<[1],f32>"
    for _ in range(depth):
        inner = f"list<{inner}>"
    return f"builtin.module {{\n  dy.func @forward(%l: !torch.{inner}) {{\n    dy.return\n  }}\n}}\n"


def nested_array_attribute(depth: int) -> str:
    return f"builtin.module attributes {{x = {'[' * depth}1{']' * depth}}} {{\n}}\n"


def nested_dense_literal(depth: int) -> str:
    body, shape = "[" * depth + "1.0" + "]" * depth, "x".join(["1"] * depth)
    result = ",".join(["1"] * depth)
    return ("builtin.module {\n  dy.func @forward() {\n"
            f'    %0 = "torch.vtensor.literal"() <{{value = dense<{body}> : tensor<{shape}xf32>}}>'
            f" : () -> !torch.vtensor<[{result}],f32>\n    dy.return\n  }}\n}}\n")


def _round_trip(text: str, outline: bool) -> None:
    module = parse_and_verify(text, "deep.mlir")
    if outline:
        OutlineRegions().apply(ProgramContext(), module)
    printed = print_module(module)
    assert print_module(parse_and_verify(printed)) == printed


@pytest.mark.parametrize(
    ("name", "text", "outline"),
    [
        ("if_150", nested_ifs(150), True),
        ("for_150", nested_fors(150), True),
        ("list_type_200", nested_list_type(200), False),
        ("array_attribute_5000", nested_array_attribute(5000), False),
        ("dense_literal_3000", nested_dense_literal(3000), False),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else "",
)
def test_deep_nesting_is_supported(name, text, outline):
    call_with_deep_stack(_round_trip, text, outline)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (nested_ifs(MAX_REGION_NESTING + 1), f"regions nest deeper than {MAX_REGION_NESTING}"),
        (nested_array_attribute(MAX_ATTRIBUTE_NESTING + 1), "types and attributes nest deeper"),
        (nested_list_type(MAX_ATTRIBUTE_NESTING + 1), "types and attributes nest deeper"),
    ],
    ids=["regions", "attribute", "type"],
)
def test_nesting_beyond_the_limits_is_a_located_error(text, message):
    with pytest.raises(IRError, match=message) as caught:
        call_with_deep_stack(parse_and_verify, text, "deep.mlir")
    assert caught.value.line > 0 and caught.value.column > 0


def test_opt_pipeline_handles_a_deep_program(tmp_path):
    path = tmp_path / "deep.mlir"
    path.write_text(nested_ifs(150))  # no torch ops: no torch import in the subprocess
    completed = subprocess.run(
        [sys.executable, "-c", "from passes.cli import main; main()", str(path)],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count("dy.if") == 150
