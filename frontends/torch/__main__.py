"""`python -m frontends.torch MODEL.py [-o OUT.mlir] [--params OUT.safetensors]`.

Prints the program in the `dy` dialect (or writes it to `-o`) and writes the parameters to a
side-car safetensors file that the IR names. Diagnostics are one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import inspect
import os
import pathlib
import sys
import traceback
import warnings
from typing import Any

import torch
from xdsl.dialects.builtin import StringAttr

from frontends.torch.api import convert, default_cache_dir
from frontends.torch.errors import UnsupportedError
from ir import dy
from ir.program import IRError

CACHE_DIR = pathlib.Path.home() / ".cache" / "dynn-compiler" / "params"

DTYPES = {
    "f32": torch.float32,
    "float32": torch.float32,
    "f64": torch.float64,
    "float64": torch.float64,
    "f16": torch.float16,
    "bf16": torch.bfloat16,
    "i64": torch.int64,
    "int64": torch.int64,
    "si64": torch.int64,
    "i32": torch.int32,
    "int32": torch.int32,
    "bool": torch.bool,
    "i1": torch.bool,
}


class ModelFileError(Exception):
    """The model file cannot be loaded as the CLI needs it; the message says why."""


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m frontends.torch",
        description="Convert a dynamic PyTorch model to the dy dialect.",
    )
    parser.add_argument("model", help="Python file defining make_model() and make_inputs()")
    parser.add_argument("-o", "--output", help="write the IR here instead of stdout")
    parser.add_argument("--params", help="side-car safetensors file for the parameters")
    parser.add_argument(
        "--class",
        dest="class_name",
        help="nn.Module class to instantiate (for files without make_model)",
    )
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="SHAPE[:DTYPE]",
        help="example input such as 1x3x32x32 or 1x16:i64 (repeatable)",
    )
    parser.add_argument(
        "--dynamic",
        action="store_true",
        help="make the leading dimension of every tensor input dynamic (any batch size)",
    )
    parser.add_argument(
        "--dynamic-dim",
        action="append",
        default=[],
        metavar="INPUT:DIM",
        help="make dimension DIM of input INPUT (0-based) dynamic (repeatable)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="convert even when $DYNN_CACHE_DIR (default ~/.cache/dynn-compiler) holds this "
        "conversion, and do not store it",
    )
    return parser


def dynamic_option(arguments: argparse.Namespace) -> Any:
    """The `dynamic` argument of `convert` that --dynamic / --dynamic-dim ask for."""
    if arguments.dynamic:
        return True
    dims: dict[int, list[int]] = {}
    for spec in arguments.dynamic_dim:
        try:
            position, dim = (int(part) for part in spec.split(":"))
        except ValueError:
            raise ModelFileError(f"--dynamic-dim {spec!r}: expected INPUT:DIM, e.g. 0:0") from None
        dims.setdefault(position, []).append(dim)
    return dims or None


def load_model_file(path: pathlib.Path) -> Any:
    """Import `path` as a real module, registered in `sys.modules`: as a member of its package
    when its directory is one (so relative imports work), else under its file stem."""
    if not path.is_file():
        raise ModelFileError(f"{path}: error: no such file")
    try:
        return _import(path.resolve())
    except SyntaxError as error:
        raise ModelFileError(
            f"{path}:{error.lineno}: error: not valid Python: {error.msg}"
        ) from None
    except BaseException as error:  # noqa: BLE001 - also sys.exit() and Ctrl-C at import
        raise _user_code_error(path, "importing it", error) from None


def _call_user_function(path: pathlib.Path, name: str, function: Any) -> Any:
    """`function()` of the model file; whatever it raises (sys.exit() and Ctrl-C included)
    is the user's error, reported at the line of the model file it came from."""
    try:
        return function()
    except BaseException as error:  # noqa: BLE001 - the user's code may raise anything
        raise _user_code_error(path, f"{name}()", error) from None


def _user_code_error(path: pathlib.Path, what: str, error: BaseException) -> ModelFileError:
    """`PATH:LINE: error: WHAT raised ...`, at the innermost frame of the traceback that is
    in the model file (the line of the user's code that failed or called what failed)."""
    line = None
    resolved = str(path.resolve())
    for frame, line_number in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == resolved:
            line = line_number
    place = f"{path}:{line}" if line is not None else str(path)
    if isinstance(error, KeyboardInterrupt):
        return ModelFileError(f"{place}: error: {what} was interrupted")
    if isinstance(error, SystemExit):
        return ModelFileError(f"{place}: error: {what} called sys.exit({error.code!r})")
    return ModelFileError(
        f"{place}: error: {what} raised {type(error).__name__}: {_first_line(error)}"
    )


def _import(path: pathlib.Path) -> Any:
    parts = [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file():
        parts.insert(0, directory.name)
        directory = directory.parent
    if len(parts) > 1:
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
        return importlib.import_module(".".join(parts))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ModelFileError(f"{path}: error: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def parse_input_shape(text: str) -> torch.Tensor:
    shape_text, _, dtype_text = text.partition(":")
    try:
        shape = [int(size) for size in shape_text.split("x")]
    except ValueError:
        raise ModelFileError(
            f"error: bad --input-shape '{text}' (expected e.g. 1x3x32x32)"
        ) from None
    dtype = DTYPES.get(dtype_text or "f32")
    if dtype is None:
        raise ModelFileError(f"error: unknown dtype '{dtype_text}' in --input-shape")
    generator = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=generator).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    return torch.randint(0, 10, shape, generator=generator).to(dtype)


def model_and_inputs(
    path: pathlib.Path, class_name: str | None, input_shapes: list[str]
) -> tuple[torch.nn.Module, tuple]:
    module = load_model_file(path)
    if class_name is not None:
        model_class = getattr(module, class_name, None)
        if not (isinstance(model_class, type) and issubclass(model_class, torch.nn.Module)):
            raise ModelFileError(f"{path}: error: no nn.Module class named '{class_name}'")
        model = model_class()
    else:
        if not callable(getattr(module, "make_model", None)):
            raise ModelFileError(f"{path}: error: defines no make_model() (or pass --class)")
        model = _call_user_function(path, "make_model", module.make_model)
    if input_shapes:
        inputs = tuple(parse_input_shape(text) for text in input_shapes)
    elif callable(getattr(module, "make_inputs", None)):
        inputs = _call_user_function(path, "make_inputs", lambda: tuple(module.make_inputs()))
    else:
        raise ModelFileError(f"{path}: error: defines no make_inputs() (or pass --input-shape)")
    if not isinstance(model, torch.nn.Module):
        raise ModelFileError(
            f"{path}: error: make_model() returned a {type(model).__name__}, not an nn.Module"
        )
    _check_own_forward(path, module, model)
    return model.eval(), inputs


def _check_own_forward(path: pathlib.Path, module: Any, model: torch.nn.Module) -> None:
    """The frontend compiles the Python source of the model's own `forward`: a model that is
    a library module (a bare `nn.Sequential`, `nn.Linear`) has none to read."""
    model_class = type(model)
    if model_class.__module__.split(".")[0] != "torch":
        return
    maker = getattr(module, "make_model", None)
    try:
        line = f":{inspect.getsourcelines(maker)[1]}" if maker is not None else ""
    except (OSError, TypeError):
        line = ""
    raise ModelFileError(
        f"{path}{line}: error: the model is a {model_class.__module__}.{model_class.__qualname__}"
        ", a library module with no forward of the model's own to compile: wrap it in an "
        "nn.Module subclass whose forward calls it"
    )


def _default_params_path(model_path: pathlib.Path, output: str | None) -> pathlib.Path:
    """Next to the output file, or in a per-model cache file when printing to stdout."""
    if output is not None:
        return pathlib.Path(output).with_suffix(".safetensors")
    digest = hashlib.sha256(str(model_path.resolve()).encode()).hexdigest()[:16]
    return CACHE_DIR / f"{model_path.stem}-{digest}.safetensors"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    arguments = _argument_parser().parse_args(argv)
    path = pathlib.Path(arguments.model)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    warnings.filterwarnings("ignore")
    try:
        model, inputs = model_and_inputs(path, arguments.class_name, arguments.input_shape)
        source_names = {str(path.resolve()): str(path)}
        conversion = convert(
            model,
            inputs,
            dynamic=dynamic_option(arguments),
            source_names=source_names,
            cache_dir=None if arguments.no_cache else default_cache_dir(),
        )
    except (ModelFileError, UnsupportedError, IRError) as error:
        print(str(error), file=sys.stderr)
        return 1
    except ValueError as error:  # a --dynamic-dim naming no dimension of the inputs
        print(f"{path}: error: {_first_line(error)}", file=sys.stderr)
        return 1
    except (SystemExit, KeyboardInterrupt) as error:  # raised by the model's code meanwhile
        print(_user_code_error(path, "converting the model", error), file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - a frontend bug: one line, never a traceback
        print(
            f"{path}: error: internal frontend error: {type(error).__name__}: {_first_line(error)}",
            file=sys.stderr,
        )
        return 1
    params_path = (
        pathlib.Path(arguments.params)
        if arguments.params
        else (_default_params_path(path, arguments.output))
    )
    params_path.parent.mkdir(parents=True, exist_ok=True)
    conversion.save_params(params_path)
    if arguments.output is None:
        named = params_path.resolve()
    else:
        output = pathlib.Path(arguments.output)
        named = pathlib.Path(os.path.relpath(params_path.resolve(), output.resolve().parent))
    conversion.module.attributes[dy.PARAMS_FILE_ATTR] = StringAttr(str(named))
    if arguments.output is None:
        sys.stdout.write(conversion.ir)
    else:
        pathlib.Path(arguments.output).write_text(conversion.ir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
