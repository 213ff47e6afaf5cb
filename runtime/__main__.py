"""`python -m runtime PROGRAM.mlir --params P.safetensors --input x.npy [...] [-o out.npz]`:
run a program from the command line. Inputs are `.npy` files (tensors) or literals
(`int:3`, `float:0.5`, `bool:1`) for host scalar arguments; outputs are printed, or saved
as `out0`, `out1`, ... in an `.npz` file with `-o`."""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Any

import numpy as np
import torch

from ir.program import IRError, parse_and_verify
from runtime.program import BACKENDS, compile_program, load_params, params_path

_SCALAR_PREFIXES = {"int:": int, "float:": float, "bool:": lambda text: bool(int(text))}


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runtime", description=__doc__.splitlines()[0])
    parser.add_argument("program", help="program IR file (.mlir)")
    parser.add_argument("--params", help="parameter file (default: the one the IR names)")
    parser.add_argument(
        "--input", action="append", default=[], help="an input: FILE.npy or int:/float:/bool:VALUE"
    )
    parser.add_argument("-o", "--output", help="write outputs to this .npz file")
    parser.add_argument("--backend", choices=BACKENDS, default="llvm")
    parser.add_argument("--stats", action="store_true", help="print compile statistics and latency")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar during long compiles (also: DYNN_PROGRESS=0)")
    return parser


def _read_input(text: str) -> Any:
    for prefix, convert in _SCALAR_PREFIXES.items():
        if text.startswith(prefix):
            try:
                return convert(text[len(prefix) :])
            except ValueError:
                raise IRError(text, 0, 0, f"cannot parse {prefix[:-1]} value") from None
    try:
        return torch.from_numpy(np.load(text))
    except (OSError, ValueError) as error:
        raise IRError(text, 0, 0, f"cannot read input: {error}") from None


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    if isinstance(value, tuple):
        return np.stack([_as_numpy(v) for v in value]) if value else np.zeros((0,))
    return np.asarray(value)


def run(argv: list[str] | None = None) -> int:
    args = _argument_parser().parse_args(argv)
    try:
        program_file = pathlib.Path(args.program)
        try:
            text = program_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise IRError(args.program, 0, 0, f"cannot read program: {error}") from None
        module = parse_and_verify(text, args.program)
        parameter_file = args.params or params_path(module, program_file)
        params = load_params(parameter_file) if parameter_file else {}
        inputs = [_read_input(item) for item in args.input]
        program = compile_program(module, params, backend=args.backend,
                                  progress=False if args.no_progress else None)
        started = time.perf_counter()
        outputs = program(*inputs)
        elapsed = time.perf_counter() - started
    except IRError as error:
        print(error, file=sys.stderr)
        return 1
    if args.stats:
        print(f"// {program.stats}; first run {elapsed * 1e3:.3f} ms", file=sys.stderr)
    if args.output:
        np.savez(args.output, **{f"out{i}": _as_numpy(v) for i, v in enumerate(outputs)})
    else:
        for index, value in enumerate(outputs):
            print(f"out{index} = {value}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
