"""`opt-pipeline`: read a program, run a pass pipeline with verification after every pass,
write the result. Every user error is one `FILE:LINE:COL: error: ...` line and exit code 1."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from ir.program import (
    IRError,
    ProgramContext,
    call_with_deep_stack,
    parse_and_verify,
    print_module,
    verify_module,
)
from passes.registry import DEFAULT_PIPELINE, PASSES, PipelineError, build_pipeline

PIPELINE_SOURCE = "<pipeline>"


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opt-pipeline",
        description="Run passes over a program of the dy dialect.",
    )
    parser.add_argument(
        "input", nargs="?", default="-", help="IR file to read ('-' or none: stdin)"
    )
    parser.add_argument(
        "-o", "--output", default="-", help="where to write the IR (default: stdout)"
    )
    parser.add_argument(
        "-p",
        "--passes",
        default=None,
        help=f"pass pipeline, e.g. 'a,b{{opt=1}}'; '' only verifies (default: '{DEFAULT_PIPELINE}')",
    )
    parser.add_argument("--list-passes", action="store_true", help="list the registered passes")
    parser.add_argument(
        "--print-ir-after-all", action="store_true", help="print the IR to stderr after every pass"
    )
    parser.add_argument(
        "--generic", action="store_true", help="print the generic op form (what MLIR tools parse)"
    )
    return parser


def _list_passes() -> str:
    lines = []
    for name, cls in sorted(PASSES.items()):
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        lines.append(f"{name:<28} {summary}")
    return "\n".join(lines) + "\n"


def run(argv: Sequence[str] | None = None) -> int:
    args = _argument_parser().parse_args(argv)
    if args.list_passes:
        sys.stdout.write(_list_passes())
        return 0
    filename = "<stdin>" if args.input == "-" else args.input
    try:
        passes = build_pipeline(DEFAULT_PIPELINE if args.passes is None else args.passes)
    except PipelineError as error:
        print(f"{PIPELINE_SOURCE}:1:{error.column}: error: {error.message}", file=sys.stderr)
        return 1
    try:
        text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"{filename}:0:0: error: cannot read input: {error}", file=sys.stderr)
        return 1
    try:
        module = parse_and_verify(text, filename)
        _apply(passes, module, args.print_ir_after_all)
    except IRError as error:
        print(error, file=sys.stderr)
        return 1
    output = print_module(module, generic=args.generic)
    if args.output == "-":
        sys.stdout.write(output)
    else:
        with open(args.output, "w", encoding="utf-8") as stream:
            stream.write(output)
    return 0


def _apply(passes, module: ModuleOp, print_after_all: bool) -> None:
    ctx = ProgramContext()
    for program_pass in passes:
        program_pass.apply(ctx, module)
        try:
            verify_module(module)
        except IRError as error:
            error.message = f"after pass '{program_pass.name}': {error.message}"
            raise
        if print_after_all:
            sys.stderr.write(f"// -----// IR Dump After {program_pass.name} //----- //\n")
            sys.stderr.write(print_module(module))


def main() -> None:
    """Console entry point; an unexpected failure is reported as an internal error, not a
    traceback, unless OPT_PIPELINE_TRACEBACK=1 asks for one. Runs on a deep stack, so deeply
    nested programs are handled rather than ending in RecursionError."""
    try:
        code = call_with_deep_stack(run)
    except KeyboardInterrupt:
        code = 1
    except Exception as error:
        if os.environ.get("OPT_PIPELINE_TRACEBACK") == "1":
            raise
        print(
            f"<opt-pipeline>:0:0: error: internal error: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
