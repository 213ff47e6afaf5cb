"""``python -m frontends.rules RULES.txt [--features f1,f2,...] [-o OUT.mlir]``.

Checks a rule file and prints its `dy` program (branchy; ``--if-convert`` for the batched
one). With ``--input TABLE`` (``.npy``, or ``.csv`` whose header names the features) it
runs the compiled program and prints one class per row; ``--explain`` prints, per row,
the rule that fired and why. Errors are one line, ``FILE:LINE:COL: error: ...``, exit 1.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from frontends.rules.check import parse
from frontends.rules.lower import INPUT_DTYPES
from frontends.rules.program import RuleProgram
from frontends.rules.syntax import RuleError, decode_rule_bytes, read_rule_file
from ir.program import IRError
from runtime.program import BACKENDS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m frontends.rules", description=__doc__)
    parser.add_argument("rules", type=Path, help="rule file (NeSyFOLD, FOLD-SE-M, FOLD-R++ text)")
    parser.add_argument("--features", help="input columns, comma-separated (default: the "
                        "predicates no rule defines, in order of first use)")
    parser.add_argument("--features-file", type=Path, help="input columns, one per line")
    parser.add_argument("-o", "--output", type=Path, help="write the IR here instead of stdout")
    parser.add_argument("--batch", type=int, default=1, help="rows of the printed program")
    parser.add_argument("--dtype", choices=sorted(INPUT_DTYPES), help="table dtype of the "
                        "printed program (default: float32 if the rules compare numbers)")
    parser.add_argument("--if-convert", action="store_true", help="print the batched program")
    parser.add_argument("--input", type=Path, help="a table to classify (.npy or .csv)")
    parser.add_argument("--explain", action="store_true", help="justify every row of --input")
    parser.add_argument("--backend", choices=BACKENDS, default="llvm")
    return parser


def _features(arguments: argparse.Namespace) -> list[str] | None:
    if arguments.features_file is not None:
        text = decode_rule_bytes(_read(arguments.features_file), str(arguments.features_file))
        return [line.strip() for line in text.splitlines() if line.strip()]
    if arguments.features is not None:
        return [name for name in arguments.features.split(",") if name]
    return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as failure:
        raise RuleError(str(path), 0, 0, f"cannot read ({failure.strerror})") from None


def _table(path: Path, features: list[str] | None) -> tuple[np.ndarray, list[str] | None]:
    """The input table, and the feature names a CSV header gives."""
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False), None
        except (OSError, ValueError) as failure:
            raise RuleError(str(path), 0, 0, f"cannot read the table ({failure})") from None
    rows = list(csv.reader(decode_rule_bytes(_read(path), str(path)).splitlines()))
    if not rows:
        raise RuleError(str(path), 1, 1, "empty table (expected a header of feature names)")
    header, values = [name.strip() for name in rows[0]], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise RuleError(str(path), line, 1, f"{len(row)} values for {len(header)} columns")
        try:
            values.append([_cell(cell) for cell in row])
        except ValueError as failure:
            raise RuleError(str(path), line, 1, str(failure)) from None
    table = np.array(values, dtype=np.float64).reshape(len(values), len(header))
    if features is not None:
        missing = [name for name in features if name not in header]
        if missing:
            raise RuleError(str(path), 1, 1, f"no column for feature '{missing[0]}'")
        table = table[:, [header.index(name) for name in features]]
    return table, header


def _cell(text: str) -> float:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return float(lowered == "true")
    try:
        return float(lowered)
    except ValueError:
        raise ValueError(f"not a number or true/false: {text!r}") from None


def _run(arguments: argparse.Namespace) -> None:
    features = _features(arguments)
    table = header = None
    if arguments.input is not None:
        table, header = _table(arguments.input, features)
        features = features or header
    source = str(arguments.rules)
    rule_set = parse(read_rule_file(arguments.rules), source, features)
    if arguments.input is None:
        if arguments.batch < 1:
            raise RuleError(source, 0, 0, f"--batch must be at least 1, got {arguments.batch}")
        dtype = arguments.dtype or ("float32" if rule_set.numeric else "bool")
        program = RuleProgram(rule_set, if_convert=arguments.if_convert)
        text = program.ir(arguments.batch, dtype)
        _write(arguments.output, text)
        return
    program = RuleProgram(rule_set, backend=arguments.backend, if_convert=True)
    if table.dtype != bool and not rule_set.numeric and np.isin(table, (0, 1)).all():
        table = table.astype(bool)
    if arguments.explain:
        print("\n".join(str(explanation) for explanation in program.explain(table)))
    else:
        for name in program(table):
            print("none" if name is None else name)


def _write(output: Path | None, text: str) -> None:
    if output is None:
        sys.stdout.write(text + "\n")
        return
    try:
        output.write_text(text + "\n")
    except OSError as failure:
        raise RuleError(str(output), 0, 0, f"cannot write ({failure.strerror})") from None


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        _run(arguments)
    except (RuleError, IRError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
