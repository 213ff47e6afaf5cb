"""Loading a program for execution: the host interpreter plus one executor per sub-graph.

`compile_program` is what `frontends.torch.compile` and `python -m runtime` call. With the
reference backend every sub-graph runs eagerly; with the LLVM backend the program is first
outlined (if it is not already), each `dy.graph` is converted to a torch-mlir function whose
parameters are bound once, here, and JIT-compiled. A sub-graph torch-mlir cannot lower runs
eagerly instead, with a warning naming the op; `CompiledProgram.stats` counts both kinds.
"""

from __future__ import annotations

import pathlib
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
from ir.program import IRError, ProgramContext, location_of, print_module, verify_module
from passes.outline_regions import OutlineRegions
from runtime.interpreter import Interpreter
from runtime.llvm import LoweringError, compile_subgraph

BACKENDS = ("llvm", "interpreter")

DEFAULT_CACHE_DIR = pathlib.Path.home() / ".cache" / "dynn-compiler"


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
        module: ModuleOp,
        params: Mapping[str, torch.Tensor],
        *,
        backend: str = "llvm",
        cache_dir: pathlib.Path | None = DEFAULT_CACHE_DIR,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
        self.backend = backend
        self.stats = ProgramStats()
        self.cache_dir = cache_dir
        started = time.perf_counter()
        if backend == "llvm":
            _outline_if_needed(module)
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


def _outline_if_needed(module: ModuleOp) -> None:
    OutlineRegions().apply(ProgramContext(), module)
    verify_module(module)


def compile_program(
    module: ModuleOp,
    params: Mapping[str, torch.Tensor],
    *,
    backend: str = "llvm",
    cache_dir: pathlib.Path | None = DEFAULT_CACHE_DIR,
) -> CompiledProgram:
    """Load a verified program for execution with the chosen backend."""
    return CompiledProgram(module, params, backend=backend, cache_dir=cache_dir)
