"""Compilation of one sub-graph to a shared object, with an on-disk cache.

The JIT of ``ExecutionEngine`` compiles the LLVM-dialect module to
position-independent machine code; we dump that object and link it into a
shared object with the system C compiler. Fresh compiles and cache hits then
load kernels the same way, and a cache hit runs no MLIR at all.
"""

import atexit
import functools
import hashlib
import importlib.metadata
import json
import os
import pathlib
import platform
import shutil
import tempfile
from collections.abc import Mapping

import torch
from torch_mlir import ir
from torch_mlir.execution_engine import ExecutionEngine

from . import lowering, native
from .engine import ENTRY_PREFIX, CompiledSubgraph, Signature
from .errors import LoweringError

LLVM_OPT_LEVEL = 3


@functools.cache
def _backend_fingerprint() -> str:
    """Identifies everything besides the inputs that shapes the generated code."""
    digest = hashlib.sha256()
    for source in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    digest.update(importlib.metadata.version("torch-mlir").encode())
    digest.update(platform.machine().encode())
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            digest.update(next(line for line in cpuinfo if line.startswith("flags")).encode())
    except (OSError, StopIteration):
        pass
    return digest.hexdigest()


def cache_key(module_text: str, func_name: str, bound_args: Mapping[int, torch.Tensor]) -> str:
    """Content key: IR text, entry name, and the bound tensors (they become code constants)."""
    digest = hashlib.sha256()
    digest.update(_backend_fingerprint().encode())
    digest.update(func_name.encode() + b"\0" + module_text.encode())
    for index in sorted(bound_args):
        tensor = bound_args[index].detach().cpu().contiguous()
        digest.update(f"\0{index}:{tensor.dtype}:{list(tensor.shape)}\0".encode())
        if tensor.numel():
            digest.update(tensor.view(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()[:40]


@functools.cache
def _scratch_directory() -> pathlib.Path:
    """Holds kernels when the caller gives no cache directory; removed at exit."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="dynn-llvm-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _load(library: pathlib.Path, metadata: pathlib.Path) -> CompiledSubgraph:
    return CompiledSubgraph(library, Signature.from_json(json.loads(metadata.read_text())))


def _create_engine(module: ir.Module, context: ir.Context) -> ExecutionEngine:
    """JIT-compiles `module`, turning translation diagnostics into a LoweringError."""
    diagnostics = []

    def record(diagnostic: ir.DiagnosticInfo) -> bool:
        diagnostics.append(f"{diagnostic.message} [{diagnostic.location}]")
        return True

    handler = context.attach_diagnostic_handler(record)
    try:
        return ExecutionEngine(module, opt_level=LLVM_OPT_LEVEL,
                               enable_object_dump=True, enable_pic=True)
    except RuntimeError as error:
        raise LoweringError(f"LLVM code generation failed: {'; '.join(diagnostics) or error}"
                            ) from None
    finally:
        handler.detach()


def _build(
    module_text: str,
    func_name: str,
    bound_args: Mapping[int, torch.Tensor],
    directory: pathlib.Path,
    key: str,
) -> None:
    """Compiles into `<key>.so` and `<key>.json`; the metadata file is written last,
    so a reader that sees it also sees the complete shared object."""
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        obj = pathlib.Path(scratch) / "kernel.o"
        staged_library = pathlib.Path(scratch) / "kernel.so"
        with lowering.new_context() as context:
            lowered = lowering.lower_to_llvm(module_text, func_name, bound_args, context)
            engine = _create_engine(lowered.module, context)
            if not engine.raw_lookup(ENTRY_PREFIX + func_name):
                raise LoweringError(f"LLVM code generation produced no entry @{func_name}")
            engine.dump_to_object_file(str(obj))
        native.link_shared_object(obj, staged_library)
        os.replace(staged_library, directory / f"{key}.so")
        staged_metadata = pathlib.Path(scratch) / "kernel.json"
        staged_metadata.write_text(json.dumps(lowered.signature.to_json()))
        os.replace(staged_metadata, directory / f"{key}.json")


def compile_subgraph(
    module_text: str,
    func_name: str,
    bound_args: Mapping[int, torch.Tensor],
    cache_dir: pathlib.Path | None = None,
) -> CompiledSubgraph:
    """Compiles `func_name` of `module_text` (torch dialect, static shapes).

    `bound_args` maps argument indices to tensors compiled into the code as
    constants; the returned callable takes the remaining arguments in order.
    With `cache_dir`, the result is stored there under a content key and later
    calls with the same text and bound tensors only load it. Raises
    LoweringError when the sub-graph cannot be compiled.
    """
    directory = pathlib.Path(cache_dir) if cache_dir is not None else _scratch_directory()
    directory.mkdir(parents=True, exist_ok=True)
    key = cache_key(module_text, func_name, bound_args)
    library, metadata = directory / f"{key}.so", directory / f"{key}.json"
    if not (library.exists() and metadata.exists()):
        _build(module_text, func_name, bound_args, directory, key)
    return _load(library, metadata)
