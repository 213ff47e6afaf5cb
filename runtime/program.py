"""Loading a program for execution: the host interpreter plus one executor per sub-graph.

`compile_program` is what `frontends.torch.compile` and `python -m runtime` call. With the
reference backend the program runs as given, every sub-graph eagerly; with the LLVM backend
the program first goes through the codegen pipeline (`passes.registry.DEFAULT_PIPELINE`,
ending with outlining; cached by program text, see `outlined_program`), each
`dy.graph` is converted to a torch-mlir function whose parameters are bound once, here, and
JIT-compiled. A sub-graph torch-mlir cannot lower runs eagerly instead, with a warning naming
the op; `CompiledProgram.stats` counts both kinds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pathlib
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load_file
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Block, Region, SSAValue

from ir import dy
from ir.program import (
    IRError,
    checked_text,
    location_of,
    parse_and_verify,
    parse_module,
    print_module,
    with_checksum,
)
from passes import registry
from passes.outline_regions import verify_outlined
from passes.pipeline import run_pipeline
from runtime.interpreter import Interpreter
from runtime.llvm import LoweringError, compile_subgraph

BACKENDS = ("llvm", "interpreter")

DEFAULT_CACHE_DIR = pathlib.Path.home() / ".cache" / "dynn-compiler"
OUTLINED_SUBDIR = "outlined"

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
    """Read a side-car parameter file; a missing or corrupt file is an `IRError` at line 0."""
    try:
        return load_file(str(path))
    except (OSError, ValueError, RuntimeError) as error:
        raise IRError(str(path), 0, 0, f"cannot read parameters: {error}") from None


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
        function = graph_as_torch_function(graph)
        missing = [key for key in function.param_keys if key not in self.params]
        if missing:
            raise IRError(
                *location_of(graph), f"parameter '{missing[0]}' is not in the parameter file"
            )
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


def _pipeline_fingerprint() -> str:
    """Identifies the code that outlines a program: what an outlined-program entry depends
    on besides the program text."""
    digest = hashlib.sha256()
    sources = [pathlib.Path(__file__), *(path for d in _PIPELINE_DIRS for path in d.glob("*.py"))]
    for source in sorted(sources):
        digest.update(f"{source.name}\0".encode() + source.read_bytes())
    digest.update(importlib.metadata.version("xdsl").encode())
    return digest.hexdigest()


def _run_codegen_pipeline(module: ModuleOp, pipeline: str) -> None:
    """The registry's codegen pipeline, verified after every pass; what the LLVM backend
    compiles must be outlined, whatever the pipeline was edited to."""
    run_pipeline(module, registry.build_pipeline(pipeline))
    verify_outlined(module)


def outlined_program(
    program: ModuleOp | str, cache_dir: pathlib.Path | None, filename: str = "<stdin>"
) -> ModuleOp:
    """The verified module of `program` (a verified module, or its printed text) after the
    codegen pipeline (`passes.registry.DEFAULT_PIPELINE`, read when called).

    The result is cached by content in `cache_dir / "outlined"`: an entry is keyed by the
    SHA-256 of the code of the dialects and passes, the pipeline text and the program text,
    and holds the outlined text behind its checksum (`ir.program.with_checksum`). Given
    text, a hit is parsed and not verified again (it was verified when stored, and the
    checksum says it is intact); a damaged entry is a miss and is written again. Given a
    module, it is transformed in place and the result stored for later lookups by text:
    looking it up would print and parse it, which costs as much as the pipeline.
    """
    pipeline = registry.DEFAULT_PIPELINE
    text = program if isinstance(program, str) else None
    entry = None
    if cache_dir is not None:
        key_text = text if text is not None else print_module(program)
        digest = hashlib.sha256(f"{_pipeline_fingerprint()}\0{pipeline}\0{key_text}".encode())
        entry = pathlib.Path(cache_dir) / OUTLINED_SUBDIR / f"{digest.hexdigest()}.mlir"
    if text is not None and entry is not None:
        try:
            outlined = checked_text(entry.read_text())
        except (OSError, ValueError):
            outlined = None
        if outlined is not None:
            try:
                return parse_module(outlined, str(entry))
            except IRError:
                pass  # intact but unreadable (written by other code): written again below
    module = parse_and_verify(text, filename) if text is not None else program
    _run_codegen_pipeline(module, pipeline)
    if entry is not None:
        _store(entry, print_module(module))
    return module


def _store(entry: pathlib.Path, text: str) -> None:
    """Write an entry atomically (readers see a whole entry or none); a cache that cannot
    be written only costs time."""
    staging = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=entry.parent, prefix=f".{entry.name}.", delete=False
        ) as file:
            staging = pathlib.Path(file.name)
            file.write(with_checksum(text))
        os.replace(staging, entry)
    except OSError:
        if staging is not None:
            staging.unlink(missing_ok=True)


def compile_program(
    program: ModuleOp | str,
    params: Mapping[str, torch.Tensor],
    *,
    backend: str = "llvm",
    cache_dir: pathlib.Path | None = DEFAULT_CACHE_DIR,
    filename: str = "<stdin>",
) -> CompiledProgram:
    """Load a verified program (a module, or its text, named `filename` in diagnostics) for
    execution with the chosen backend. With the LLVM backend a module goes through the
    codegen pipeline in place; `CompiledProgram.module` is the module that runs either way."""
    return CompiledProgram(program, params, backend=backend, cache_dir=cache_dir, filename=filename)
