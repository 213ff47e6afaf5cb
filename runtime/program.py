"""Loading a program for execution: the host interpreter plus one executor per sub-graph.

`compile_program` is what `frontends.torch.compile` and `python -m runtime` call. With the
reference backend every sub-graph runs eagerly; with the LLVM backend the program is first
outlined (if it is not already; cached by program text, see `outlined_program`), each
`dy.graph` is converted to a torch-mlir function whose parameters are bound once, here, and
JIT-compiled. A sub-graph torch-mlir cannot lower runs eagerly instead, with a warning naming
the op; `CompiledProgram.stats` counts both kinds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import pathlib
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Block, Region, SSAValue

from ir import dy
from ir.program import (
    IRError,
    ProgramContext,
    checked_text,
    error_at,
    parse_and_verify,
    parse_module,
    print_module,
    verify_module,
    with_checksum,
)
from passes.outline_regions import OutlineRegions
from runtime.files import (
    FileRefused,
    private_directory,
    read_private_file,
    read_regular_file,
    write_private_file,
)
from ir.torch import ValueTensorType
from runtime.interpreter import Interpreter
from runtime.torch_ops import torch_dtype_of
from runtime.llvm import LoweringError, compile_subgraph

BACKENDS = ("llvm", "interpreter")

DEFAULT_CACHE_DIR = pathlib.Path.home() / ".cache" / "dynn-compiler"
OUTLINED_SUBDIR = "outlined"
MAX_CACHED_PROGRAM_BYTES = 1 << 32
MAX_PARAMS_BYTES = 1 << 36

_PIPELINE_DIRS = (
    pathlib.Path(__file__).resolve().parents[1] / "ir",
    pathlib.Path(__file__).resolve().parents[1] / "passes",
)
"""The dialects and the passes: editing either may change what outlining produces."""


class SubgraphFallbackWarning(UserWarning):
    """A sub-graph runs eagerly because torch-mlir could not lower one of its ops."""


@dataclass
class ProgramStats:
    """What compilation produced: how many sub-graphs run compiled, how many fell back."""

    compiled: int = 0
    fallback: int = 0
    fallback_reasons: dict[str, str] = field(default_factory=dict)
    compile_seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.compiled} sub-graph(s) compiled, {self.fallback} eager fallback(s), "
            f"compile {self.compile_seconds:.2f} s"
        )


def load_params(path: str | pathlib.Path) -> dict[str, torch.Tensor]:
    """Read a side-car parameter file (safetensors); a missing, unreadable or malformed
    file, or anything but a regular file, is an `IRError` at line 0."""
    try:
        data = read_regular_file(path, MAX_PARAMS_BYTES)
        return load_safetensors(data)
    except FileRefused as error:
        raise IRError(str(path), 0, 0, f"cannot read parameters: {error}") from None
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError) as error:
        problem = _first_line(str(error)) or type(error).__name__
        raise IRError(str(path), 0, 0, f"not a safetensors parameter file: {problem}") from None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def params_path(module: ModuleOp, program_path: pathlib.Path | None = None) -> pathlib.Path | None:
    """The parameter file a module names, resolved relative to the program file."""
    attr = module.attributes.get(dy.PARAMS_FILE_ATTR)
    if not isinstance(attr, StringAttr):
        return None
    path = pathlib.Path(attr.data)
    if not path.is_absolute() and program_path is not None:
        path = program_path.parent / path
    return path


@dataclass(frozen=True)
class TorchFunction:
    """A `dy.graph` as the torch-mlir function `func.func @name(inputs..., params...)`."""

    text: str
    name: str
    param_keys: tuple[str, ...]
    first_param_index: int


def graph_as_torch_function(graph: dy.GraphOp) -> TorchFunction:
    """Convert a sub-graph into the module torch-mlir lowers: `dy.param`s become trailing
    function arguments (bound at load time) and `dy.output` becomes `func.return`."""
    body = graph.body.block
    params = [op for op in body.ops if isinstance(op, dy.ParamOp)]
    input_types = [*graph.arg_types, *(p.result.type for p in params)]
    entry = Block(arg_types=input_types)
    mapping: dict[SSAValue, SSAValue] = dict(zip(body.args, entry.args))
    mapping.update(zip((p.result for p in params), entry.args[len(graph.arg_types) :]))
    for op in body.ops:
        if isinstance(op, dy.ParamOp):
            continue
        if isinstance(op, dy.OutputOp):
            entry.add_op(func.ReturnOp(*[mapping[v] for v in op.values]))
            continue
        clone = op.clone(value_mapper=mapping)
        entry.add_op(clone)
        mapping.update(zip(op.results, clone.results))
    name = graph.sym_name.data
    function = func.FuncOp(name, (input_types, graph.result_types_declared), Region(entry))
    text = print_module(ModuleOp([function]), generic=True)
    return TorchFunction(text, name, tuple(p.key.data for p in params), len(graph.arg_types))


class CompiledProgram:
    """A loaded program: call it with the entry function's inputs, get its results."""

    def __init__(
        self,
        program: ModuleOp | str,
        params: Mapping[str, torch.Tensor],
        *,
        backend: str = "llvm",
        cache_dir: pathlib.Path | None = DEFAULT_CACHE_DIR,
        filename: str = "<stdin>",
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
        self.backend = backend
        self.stats = ProgramStats()
        self.cache_dir = cache_dir
        started = time.perf_counter()
        if backend == "llvm":
            module = outlined_program(program, cache_dir, filename)
        elif isinstance(program, str):
            module = parse_and_verify(program, filename)
        else:
            module = program
        self.module = module
        self.params = params
        runner = self._compiled_graph if backend == "llvm" else None
        self._interpreter = Interpreter(module, params, graph_runner=runner)
        self._interpreter.prepare_all()
        self.stats.compile_seconds = time.perf_counter() - started

    @property
    def ir(self) -> str:
        return print_module(self.module)

    def __call__(self, *inputs: Any) -> list[Any]:
        return self._interpreter.run(*inputs)

    def _compiled_graph(self, graph: dy.GraphOp) -> Callable[..., Sequence[Any]]:
        _check_static_signature(graph)
        for op in graph.body.block.ops:
            if isinstance(op, dy.ParamOp):
                _check_param(op, self.params)
        function = graph_as_torch_function(graph)
        bound = {
            function.first_param_index + i: self.params[key]
            for i, key in enumerate(function.param_keys)
        }
        try:
            kernel = compile_subgraph(function.text, function.name, bound, cache_dir=self.cache_dir)
        except LoweringError as error:
            self.stats.fallback += 1
            self.stats.fallback_reasons[function.name] = str(error)
            warnings.warn(
                f"sub-graph @{function.name} runs eagerly: {error}",
                SubgraphFallbackWarning,
                stacklevel=2,
            )
            return self._interpreter.eager_graph(graph)
        self.stats.compiled += 1
        return kernel


def _check_static_signature(graph: dy.GraphOp) -> None:
    """The LLVM backend compiles sub-graphs of static shapes: a `?` at the boundary is a
    located error here, at load time, rather than a failure inside the engine."""
    boundary = [("operand", t) for t in graph.arg_types]
    boundary += [("result", t) for t in graph.result_types_declared]
    for index, (kind, value_type) in enumerate(boundary):
        if isinstance(value_type, ValueTensorType) and not value_type.has_static_shape:
            number = index if kind == "operand" else index - len(graph.arg_types)
            raise error_at(
                graph,
                f"{kind} #{number} has a dynamic shape ({value_type}): the LLVM backend "
                "compiles static shapes only (backend='interpreter' runs it)",
            )


def _check_param(op: dy.ParamOp, params: Mapping[str, torch.Tensor]) -> None:
    """A parameter is bound into the code as a constant: it must be there, of the shape
    and dtype its `dy.param` declares."""
    key = op.key.data
    if key not in params:
        raise error_at(op, f"parameter '{key}' is not in the parameter file")
    tensor, declared = params[key], op.result.type
    if not isinstance(declared, ValueTensorType):
        return
    dtype = torch_dtype_of(declared)
    if (dtype is not None and tensor.dtype != dtype) or (
        declared.shape is not None and tuple(tensor.shape) != declared.shape
    ):
        raise error_at(
            op,
            f"parameter '{key}': expected {declared}, the parameter file holds "
            f"{tensor.dtype} {list(tensor.shape)}",
        )


def _pipeline_fingerprint() -> str:
    """Identifies the code that outlines a program: what an outlined-program entry depends
    on besides the program text."""
    digest = hashlib.sha256()
    sources = [pathlib.Path(__file__), *(path for d in _PIPELINE_DIRS for path in d.glob("*.py"))]
    for source in sorted(sources):
        digest.update(f"{source.name}\0".encode() + source.read_bytes())
    digest.update(importlib.metadata.version("xdsl").encode())
    return digest.hexdigest()


def _outline(module: ModuleOp) -> None:
    OutlineRegions().apply(ProgramContext(), module)
    verify_module(module)


def outlined_program(
    program: ModuleOp | str, cache_dir: pathlib.Path | None, filename: str = "<stdin>"
) -> ModuleOp:
    """The verified, outlined module of `program` (a verified module, or its printed text).

    Outlining is cached by content in `cache_dir / "outlined"`: an entry is keyed by the
    SHA-256 of the pipeline's code and the program text, and holds the outlined text behind
    its checksum, which binds it to the key (`ir.program.with_checksum`; the file is
    user-only, see `runtime.files`). Given text, a hit is parsed and not verified again (it
    was verified when stored, and the checksum says it is intact and this key's); a damaged
    or foreign entry is a miss and is written again. Given a module, it is outlined in place and the result
    stored for later lookups by text: looking it up would print and parse it, which costs
    as much as outlining.
    """
    text = program if isinstance(program, str) else None
    entry = key = None
    directory = private_directory(pathlib.Path(cache_dir) / OUTLINED_SUBDIR) if cache_dir else None
    if directory is not None:
        key_text = text if text is not None else print_module(program)
        key = hashlib.sha256(f"{_pipeline_fingerprint()}\0{key_text}".encode()).hexdigest()
        entry = directory / f"{key}.mlir"
    if text is not None and entry is not None:
        outlined = _cached_text(entry, key)
        if outlined is not None:
            try:
                return parse_module(outlined, str(entry))
            except IRError:
                pass  # intact but unreadable (written by other code): written again below
    module = parse_and_verify(text, filename) if text is not None else program
    _outline(module)
    if entry is not None:
        write_private_file(entry, with_checksum(print_module(module), key).encode())
    return module


def _cached_text(entry: pathlib.Path, key: str) -> str | None:
    """The outlined text stored under `key`, or None when the entry is missing, is not a
    private file of this user, or is not intact and stored under this key."""
    stored = read_private_file(entry, MAX_CACHED_PROGRAM_BYTES)
    try:
        return checked_text(stored.decode(), key) if stored is not None else None
    except UnicodeDecodeError:
        return None


def compile_program(
    program: ModuleOp | str,
    params: Mapping[str, torch.Tensor],
    *,
    backend: str = "llvm",
    cache_dir: pathlib.Path | None = DEFAULT_CACHE_DIR,
    filename: str = "<stdin>",
) -> CompiledProgram:
    """Load a verified program (a module, or its text, named `filename` in diagnostics) for
    execution with the chosen backend. With the LLVM backend a module is outlined in place;
    `CompiledProgram.module` is the module that runs either way."""
    return CompiledProgram(program, params, backend=backend, cache_dir=cache_dir, filename=filename)
