"""`python -m runtime PROGRAM.mlir --params P.safetensors --input x.npy [...] [-o out.npz]`:
run a program from the command line. Inputs are `.npy` files (tensors) or literals
(`int:3`, `float:0.5`, `bool:1`) for host scalar arguments; outputs are printed, or saved
as `out0`, `out1`, ... in an `.npz` file with `-o`."""

from __future__ import annotations

import argparse
import io
import os
import pathlib
import sys
import time
from typing import Any

import numpy as np
import torch

from ir.program import IRError, call_with_deep_stack, parse_and_verify
from runtime.files import FileRefused, read_regular_file
from runtime.program import BACKENDS, compile_program, load_params, params_path

MAX_PROGRAM_BYTES = 1 << 31
MAX_INPUT_BYTES = 1 << 34

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
        return torch.from_numpy(read_npy(read_regular_file(text, MAX_INPUT_BYTES)))
    except FileRefused as error:
        raise IRError(text, 0, 0, f"cannot read input: {error}") from None
    except NotAnArray as error:
        raise IRError(text, 0, 0, f"not a .npy tensor: {error}") from None


class NotAnArray(Exception):
    """The bytes are not a .npy file of a numeric or boolean array; the message says why."""


_TENSOR_KINDS = "biufc"
"""numpy dtype kinds a tensor can hold: bool, signed, unsigned, float, complex."""


def read_npy(data: bytes) -> np.ndarray:
    """The array of a .npy file, read from its bytes without trusting its header: the
    element type must be a tensor's (no strings, objects or records), and the data must
    be exactly as long as the header's shape says, so a lying header costs nothing."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise NotAnArray(f"unsupported .npy version {version[0]}.{version[1]}")
    except Exception as error:  # noqa: BLE001 - numpy's header parser raises many kinds
        raise NotAnArray(_first_line(error)) from None
    if dtype.kind not in _TENSOR_KINDS or dtype.fields is not None or dtype.subdtype:
        raise NotAnArray(f"elements of type '{dtype}' are not numbers")
    count = 1
    for size in shape:
        count *= size
    have = len(data) - stream.tell()
    if any(size < 0 for size in shape) or count * dtype.itemsize != have:
        raise NotAnArray(f"its header says shape {tuple(shape)} of {dtype}, it holds {have} bytes")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
    array = flat.reshape(shape, order="F" if fortran_order else "C")
    try:
        return np.array(array, dtype=dtype.newbyteorder("="), order="C")
    except TypeError as error:
        raise NotAnArray(_first_line(error)) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds it exactly
            value = value.float()
        return value.detach().numpy()
    if isinstance(value, tuple):
        return np.stack([_as_numpy(v) for v in value]) if value else np.zeros((0,))
    return np.asarray(value)


def run(argv: list[str] | None = None) -> int:
    args = _argument_parser().parse_args(argv)
    try:
        program_file = pathlib.Path(args.program)
        try:
            text = read_regular_file(program_file, MAX_PROGRAM_BYTES).decode("utf-8")
        except (FileRefused, UnicodeDecodeError) as error:
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
        try:
            np.savez(args.output, **{f"out{i}": _as_numpy(v) for i, v in enumerate(outputs)})
        except OSError as error:
            print(f"{args.output}:0:0: error: cannot write outputs: {error}", file=sys.stderr)
            return 1
    else:
        for index, value in enumerate(outputs):
            print(f"out{index} = {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`run`, with an unexpected failure reported as one internal-error line instead of a
    traceback (DYNN_TRACEBACK=1 asks for the traceback), and Ctrl-C as exit status 1; on a
    deep stack, so deeply nested programs are handled rather than ending in RecursionError."""
    try:
        return call_with_deep_stack(run, argv)
    except KeyboardInterrupt:
        return 1
    except Exception as error:  # noqa: BLE001 - the last line of defence of a CLI
        if os.environ.get("DYNN_TRACEBACK") == "1":
            raise
        print(
            f"<runtime>:0:0: error: internal error: {type(error).__name__}: {_first_line(error)}",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
