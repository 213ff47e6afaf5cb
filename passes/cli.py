"""`opt-pipeline`: read a program, run a pass pipeline with verification after every pass,
write the result; mlir-opt's testing options (`--split-input-file`, `--verify-diagnostics`,
`--print-ir-*`, `--time-passes`, `--pass-pipeline`). Every user error is one
`FILE:LINE:COL: error: ...` line and exit code 1."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from ir.program import (
    IRError,
    call_with_deep_stack,
    parse_and_verify,
    print_module,
)
from passes.diagnostics import SEPARATOR, Chunk, check_diagnostics, expectations, split_input
from passes.pipeline import PassInstrumentation, run_pipeline
from passes.registry import DEFAULT_PIPELINE, PASSES, PipelineError, build_pipeline

PIPELINE_SOURCE = "<pipeline>"
ANCHOR = "builtin.module("
COMMENT = re.compile(r"//[^\n]*")


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opt-pipeline",
        description="Run passes over a program of the dy dialect.",
    )
    parser.add_argument("input", nargs="?", default="-", help="IR file ('-' or none: stdin)")
    parser.add_argument(
        "-o", "--output", default="-", help="where to write the IR (default: stdout)"
    )
    parser.add_argument(
        "-p",
        "--passes",
        default=None,
        help=f"pass pipeline, e.g. 'a,b{{opt=1}}'; '' only verifies (default: '{DEFAULT_PIPELINE}')",
    )
    parser.add_argument(
        "--pass-pipeline",
        default=None,
        help="the pipeline as mlir-opt spells it: 'builtin.module(a,b{opt=1})'",
    )
    parser.add_argument("--list-passes", action="store_true", help="list the registered passes")
    for when in ("before", "after"):
        parser.add_argument(
            f"--print-ir-{when}-all",
            action="store_true",
            help=f"print the IR to stderr {when} every pass",
        )
    parser.add_argument(
        "--print-ir-after-change",
        action="store_true",
        help="print the IR to stderr after every pass that changed it",
    )
    parser.add_argument(
        "--generic", action="store_true", help="print the generic op form (what MLIR tools parse)"
    )
    parser.add_argument(
        "--print-debuginfo",
        action="store_true",
        help="print every op's location as loc(...) (parsed back on input)",
    )
    parser.add_argument(
        "--split-input-file",
        action="store_true",
        help="treat each '// -----' separated part of the input as its own program",
    )
    parser.add_argument(
        "--verify-diagnostics",
        action="store_true",
        help="check the errors against the input's '// expected-error@+N {{...}}' comments",
    )
    parser.add_argument(
        "--time-passes", action="store_true", help="print a wall-time report per pass to stderr"
    )
    return parser


def _list_passes() -> str:
    lines = []
    for name, cls in sorted(PASSES.items()):
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        lines.append(f"{name:<28} {summary}")
    return "\n".join(lines) + "\n"


def _pipeline(args: argparse.Namespace) -> list[ModulePass]:
    if args.pass_pipeline is None:
        return build_pipeline(DEFAULT_PIPELINE if args.passes is None else args.passes)
    if args.passes is not None:
        raise PipelineError(1, "give the pipeline with -p or with --pass-pipeline, not both")
    spec = args.pass_pipeline.strip()
    if not (spec.startswith(ANCHOR) and spec.endswith(")")):
        raise PipelineError(1, f"expected '{ANCHOR}...)' around the passes")
    try:
        return build_pipeline(spec[len(ANCHOR) : -1])
    except PipelineError as error:
        raise PipelineError(error.column + len(ANCHOR), error.message) from None


class _Timer(PassInstrumentation):
    """Wall time of parsing, each pass (by its place in the pipeline), verification and
    output, summed over the inputs of a split file."""

    def __init__(self):
        self.rows: dict[str, float] = {}
        self._started = 0.0

    def add(self, name: str, seconds: float) -> None:
        self.rows[name] = self.rows.get(name, 0.0) + seconds

    def before_pass(self, program_pass, module) -> None:
        self._started = time.perf_counter()

    def after_pass(self, program_pass, module) -> None:
        self.add(program_pass.name, time.perf_counter() - self._started)
        self._started = time.perf_counter()

    def after_verification(self, program_pass, module) -> None:
        self.add("verifier", time.perf_counter() - self._started)

    def report(self) -> str:
        total = sum(self.rows.values())
        lines = [
            "===" + "-" * 73 + "===",
            " " * 25 + "... Execution time report ...",
            "===" + "-" * 73 + "===",
            f"  Total Execution Time: {total:.4f} seconds",
            "",
            "  ----Wall Time----  ----Name----",
        ]
        for name, seconds in [*self.rows.items(), ("Total", total)]:
            share = 100.0 * seconds / total if total else 0.0
            lines.append(f"  {seconds:9.4f} ({share:5.1f}%)  {name}")
        return "\n".join(lines) + "\n"


class _IRPrinter(PassInstrumentation):
    """`--print-ir-before-all`, `--print-ir-after-all` and `--print-ir-after-change`."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self._before = ""

    def _print(self, module: ModuleOp) -> str:
        return print_module(module, generic=self.args.generic, debuginfo=self.args.print_debuginfo)

    def before_pass(self, program_pass, module) -> None:
        if self.args.print_ir_before_all or self.args.print_ir_after_change:
            self._before = self._print(module)
        if self.args.print_ir_before_all:
            sys.stderr.write(f"// -----// IR Dump Before {program_pass.name} //----- //\n")
            sys.stderr.write(self._before)

    def after_verification(self, program_pass, module) -> None:
        after_all, after_change = self.args.print_ir_after_all, self.args.print_ir_after_change
        if not (after_all or after_change):
            return
        text = self._print(module)
        if after_all or text != self._before:
            sys.stderr.write(f"// -----// IR Dump After {program_pass.name} //----- //\n")
            sys.stderr.write(text)


def _parse(chunk: Chunk, filename: str) -> ModuleOp:
    """An input without ops (blank, or only comments) is an empty module, as in mlir-opt."""
    if not COMMENT.sub("", chunk.text).strip():
        return ModuleOp([])
    return parse_and_verify(chunk.text, filename)


def _process(
    chunk: Chunk,
    filename: str,
    passes: list[ModulePass],
    args: argparse.Namespace,
    timer: _Timer,
) -> tuple[str | None, list[IRError]]:
    """The printed result of one input (None if it failed) and the errors to report."""
    instrumentations = [_IRPrinter(args), timer]
    started = time.perf_counter()
    try:
        module = _parse(chunk, filename)
        timer.add("parser", time.perf_counter() - started)
        run_pipeline(module, passes, instrumentations)
        errors: list[IRError] = []
    except IRError as error:
        module, errors = None, [error]
    if args.verify_diagnostics:
        errors = check_diagnostics(filename, expectations(chunk.text), errors)
    if module is None or errors:
        return None, errors
    started = time.perf_counter()
    output = print_module(module, generic=args.generic, debuginfo=args.print_debuginfo)
    timer.add("output", time.perf_counter() - started)
    return output, []


def run(argv: Sequence[str] | None = None) -> int:
    args = _argument_parser().parse_args(argv)
    if args.list_passes:
        sys.stdout.write(_list_passes())
        return 0
    filename = "<stdin>" if args.input == "-" else args.input
    try:
        passes = _pipeline(args)
    except PipelineError as error:
        print(f"{PIPELINE_SOURCE}:1:{error.column}: error: {error.message}", file=sys.stderr)
        return 1
    try:
        text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"{filename}:0:0: error: cannot read input: {error}", file=sys.stderr)
        return 1
    chunks = split_input(text) if args.split_input_file else [Chunk(text, 1)]
    timer = _Timer()
    outputs, failed = [], False
    for chunk in chunks:
        output, errors = _process(chunk, filename, passes, args, timer)
        for error in errors:
            print(error, file=sys.stderr)
        failed |= bool(errors)
        if output is not None:
            outputs.append(output)
    if args.time_passes and not failed:
        sys.stderr.write(timer.report())
    if outputs or not failed:
        _write(args.output, SEPARATOR.join(outputs))
    return 1 if failed else 0


def _write(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
        return
    with open(target, "w", encoding="utf-8") as stream:
        stream.write(text)


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
