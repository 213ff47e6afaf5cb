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
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from tqdm import tqdm
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Block, Region, SSAValue

from ir import dy
from ir.program import (
    IRError,
    checked_text,
    error_at,
    parse_and_verify,
    parse_module,
    print_module,
    with_checksum,
)
from ir.torch import ValueTensorType
from passes import registry
from passes.outline_regions import verify_outlined
from passes.pipeline import run_pipeline
from runtime import segments
from runtime.files import (
    FileRefused,
    private_directory,
    read_private_file,
    read_regular_file,
    write_private_file,
)
from runtime.interpreter import Interpreter
from runtime.llvm import CompiledSubgraph, LoweringError, SubgraphAssertionError, compile_subgraph
from runtime.torch_ops import torch_dtype_of

BACKENDS = ("llvm", "interpreter")

DEFAULT_CACHE_DIR = pathlib.Path.home() / ".cache" / "dynn-compiler"
CACHE_DIR_VARIABLE = "DYNN_CACHE_DIR"
PROGRESS_VARIABLE = "DYNN_PROGRESS"
"""`DYNN_PROGRESS=0` turns the compile progress bar off (it is on only on a terminal)."""
PROGRESS_DELAY_S = 2.0
"""A compile shows its progress bar once it has taken this long."""
OUTLINED_SUBDIR = "outlined"
MAX_CACHED_PROGRAM_BYTES = 1 << 32
MAX_PARAMS_BYTES = 1 << 36

_PIPELINE_DIRS = (
    pathlib.Path(__file__).resolve().parents[1] / "ir",
    pathlib.Path(__file__).resolve().parents[1] / "passes",
)
"""The dialects and the passes: editing either may change what outlining produces."""


def default_cache_dir() -> pathlib.Path:
    """`$DYNN_CACHE_DIR` when set, else `~/.cache/dynn-compiler`."""
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    return pathlib.Path(configured) if configured else DEFAULT_CACHE_DIR


_DEFAULT = object()


def _cache_directory(cache_dir: Any) -> pathlib.Path | None:
    """`cache_dir` as a path: the default when not given, None for no cache."""
    if cache_dir is _DEFAULT:
        return default_cache_dir()
    return None if cache_dir is None else pathlib.Path(cache_dir)


class SubgraphFallbackWarning(UserWarning):
    """A sub-graph, or the ops of it that torch-mlir could not lower, run eagerly."""


@dataclass
class ProgramStats:
    """What compilation produced: how many sub-graphs run compiled, how many fell back."""

    compiled: int = 0
    fallback: int = 0
    host_ops: int = 0
    fallback_reasons: dict[str, str] = field(default_factory=dict)
    compile_seconds: float = 0.0
    artifacts: int = 0
    """Distinct compiled shared objects behind the `compiled` call sites: sub-graphs that
    differ only in their parameters share one."""

    def __str__(self) -> str:
        return (
            f"{self.compiled} sub-graph(s) compiled ({self.artifacts} distinct), "
            f"{self.fallback} eager fallback(s), {self.host_ops} host op(s), "
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


SUBGRAPH_FUNCTION = "subgraph"
"""The name of every sub-graph's torch-mlir function: sub-graphs that differ only in their
names and parameters print the same text, so they share one compiled artifact."""


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
    name = SUBGRAPH_FUNCTION
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
        cache_dir: str | os.PathLike | None | Any = _DEFAULT,
        filename: str = "<stdin>",
        progress: bool | None = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
        self.backend = backend
        self.stats = ProgramStats()
        self.cache_dir = cache_dir = _cache_directory(cache_dir)
        self._artifacts: set[str] = set()
        started = time.perf_counter()
        if backend == "llvm":
            module = outlined_program(program, cache_dir, filename)
        elif isinstance(program, str):
            module = parse_and_verify(program, filename)
        else:
            module = program
        self.module = module
        self.params = params
        runner = None
        if backend == "llvm":
            graphs = sum(isinstance(op, dy.GraphOp) for op in module.ops)
            bar = tqdm(total=graphs, desc="compiling", unit="sub-graph", delay=PROGRESS_DELAY_S,
                       disable=_progress_disabled(progress), leave=False)
            runner = _counting(self._compiled_graph, bar)
        self._interpreter = Interpreter(module, params, graph_runner=runner)
        try:
            self._interpreter.prepare_all()
        finally:
            if runner is not None:
                bar.close()
        self.stats.artifacts = len(self._artifacts)
        self.stats.compile_seconds = time.perf_counter() - started

    @property
    def ir(self) -> str:
        return print_module(self.module)

    def __call__(self, *inputs: Any) -> list[Any]:
        return self._interpreter.run(*inputs)

    def _compiled_graph(self, graph: dy.GraphOp) -> Callable[..., Sequence[Any]]:
        """The compiled sub-graph; a graph whose sizes depend on its own data is compiled
        as two pieces, the count first (`segments.split_at_data_sizes`); where torch-mlir
        cannot lower an op, the graph is split around it (`runtime.segments`) and that op
        runs on the host; where the split does not help, the whole graph runs eagerly."""
        pieces = segments.split_at_data_sizes(graph)
        if pieces is not None:
            runners = [self._compiled_graph(piece.graph) for piece in pieces]
            return segments.run_pieces(graph, runners, pieces)
        host_names: set[str] = set()
        first_error: LoweringError | None = None
        while True:
            try:
                if not host_names:
                    runner = self._compile(graph)
                    self.stats.compiled += 1
                    return runner
                pieces = segments.split(graph, host_names)
                if all(p.on_host for p in pieces):
                    return self._eager_fallback(graph, first_error)
                runners = [self._interpreter.eager_graph(p.graph) if p.on_host
                           else self._compile(p.graph) for p in pieces]
            except LoweringError as error:
                name = _failing_op(error, graph)
                if name is None or name in host_names or len(host_names) >= segments.MAX_SPLITS:
                    return self._eager_fallback(graph, error)
                if not host_names:
                    first_error = error
                host_names.add(name)
                continue
            warnings.warn(
                f"sub-graph @{graph.sym_name.data}: {', '.join(sorted(host_names))} run(s) on "
                f"the host, the rest is compiled: {first_error}",
                SubgraphFallbackWarning, stacklevel=2)
            self.stats.compiled += sum(not p.on_host for p in pieces)
            self.stats.host_ops += sum(p.on_host for p in pieces)
            return segments.run_pieces(graph, runners, pieces)

    def _compile(self, graph: dy.GraphOp) -> Callable[..., Sequence[Any]]:
        for op in graph.body.block.ops:
            if isinstance(op, dy.ParamOp):
                _check_param(op, self.params)
        function = graph_as_torch_function(graph)
        bound = {
            function.first_param_index + i: self.params[key]
            for i, key in enumerate(function.param_keys)
        }
        kernel = compile_subgraph(function.text, function.name, bound, cache_dir=self.cache_dir)
        self._artifacts.add(str(kernel.library_path))
        return _eager_when_assertions_fail(kernel, graph, self._interpreter)

    def _eager_fallback(self, graph: dy.GraphOp, error: LoweringError):
        name = graph.sym_name.data
        self.stats.fallback += 1
        self.stats.fallback_reasons[name] = str(error)
        warnings.warn(
            f"sub-graph @{name} runs eagerly: {error}", SubgraphFallbackWarning, stacklevel=3
        )
        return self._interpreter.eager_graph(graph)


def _progress_disabled(progress: bool | None) -> bool | None:
    """tqdm's `disable`: None (on only when stderr is a terminal) unless `progress` or
    `$DYNN_PROGRESS` (0 / 1) says otherwise."""
    if progress is None and os.environ.get(PROGRESS_VARIABLE):
        progress = os.environ[PROGRESS_VARIABLE] not in ("0", "false", "no", "off")
    return None if progress is None else not progress


def _counting(runner: Callable[[dy.GraphOp], Any], bar: tqdm) -> Callable[[dy.GraphOp], Any]:
    def run(graph: dy.GraphOp) -> Any:
        try:
            return runner(graph)
        finally:
            bar.update(1)

    return run


def _failing_op(error: LoweringError, graph: dy.GraphOp) -> str | None:
    """The torch op a LoweringError names, if `graph` holds ops of that name."""
    match = re.match(r"(torch\.[\w.]+): ", str(error))
    if match is None:
        return None
    name = match.group(1)
    return name if any(dy.op_name(op) == name for op in graph.body.block.ops) else None


def _eager_when_assertions_fail(kernel: CompiledSubgraph, graph: dy.GraphOp,
                                interpreter: Interpreter) -> Callable[..., Sequence[Any]]:
    """Runs `kernel`; a call whose inputs break an assumption of the compiled code (a
    run-time assertion: e.g. two dynamic dimensions torch-mlir assumed equal, where eager
    broadcasts a size-1 one) runs eagerly instead, which computes the answer or raises
    eager's own located error."""
    eager: list[Callable[..., Sequence[Any]]] = []

    def call(*args: Any) -> Sequence[Any]:
        try:
            return kernel(*args)
        except SubgraphAssertionError:
            if not eager:
                eager.append(interpreter.eager_graph(graph))
            return eager[0](*args)

    return call


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
    and holds the outlined text behind its checksum, which binds it to the key
    (`ir.program.with_checksum`; the file is user-only, see `runtime.files`). Given text, a
    hit is parsed and not verified again (it was verified when stored, and the checksum says
    it is intact and this key's); a damaged or foreign entry is a miss and is written again.
    Given a module, it is transformed in place and the result stored for later lookups by
    text: looking it up would print and parse it, which costs as much as the pipeline.
    A module is stored under the keys of both its printed forms, with locations
    (``loc(...)``, as the frontend's cache holds it) and without (as a user prints it); the
    outlined text keeps its locations, so an error raised by a program read back from the
    cache names the model's line, not the cache file's.
    """
    pipeline = registry.DEFAULT_PIPELINE
    text = program if isinstance(program, str) else None
    directory = private_directory(pathlib.Path(cache_dir) / OUTLINED_SUBDIR) if cache_dir else None
    keys = []
    if directory is not None:
        texts = ([text] if text is not None
                 else [print_module(program), print_module(program, debuginfo=True)])
        keys = [_outlined_key(pipeline, key_text) for key_text in texts]
    if text is not None and keys:
        entry = directory / f"{keys[0]}.mlir"
        outlined = _cached_text(entry, keys[0])
        if outlined is not None:
            try:
                return parse_module(outlined, str(entry))
            except IRError:
                pass  # intact but unreadable (written by other code): written again below
    module = parse_and_verify(text, filename) if text is not None else program
    _run_codegen_pipeline(module, pipeline)
    if keys:
        outlined = print_module(module, debuginfo=True)
        for key in keys:
            write_private_file(directory / f"{key}.mlir", with_checksum(outlined, key).encode())
    return module


def _outlined_key(pipeline: str, program_text: str) -> str:
    return hashlib.sha256(
        f"{_pipeline_fingerprint()}\0{pipeline}\0{program_text}".encode()).hexdigest()


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
    cache_dir: str | os.PathLike | None | Any = _DEFAULT,
    filename: str = "<stdin>",
    progress: bool | None = None,
) -> CompiledProgram:
    """Load a verified program (a module, or its text, named `filename` in diagnostics) for
    execution with the chosen backend. With the LLVM backend a module goes through the
    codegen pipeline in place; `CompiledProgram.module` is the module that runs either way.
    `cache_dir` defaults to `default_cache_dir()` (`$DYNN_CACHE_DIR`); None: no cache.
    `progress`: a progress bar for compiles longer than `PROGRESS_DELAY_S` (default: only on
    a terminal, and not with `DYNN_PROGRESS=0`)."""
    return CompiledProgram(program, params, backend=backend, cache_dir=cache_dir,
                           filename=filename, progress=progress)
