"""Compilation of one sub-graph to a shared object, with an on-disk cache.

The JIT of ``ExecutionEngine`` compiles the LLVM-dialect module to
position-independent machine code; we dump that object and link it into a
shared object with the system C compiler. Fresh compiles and cache hits then
load kernels the same way, and a cache hit runs no MLIR at all.
"""

import atexit
import ctypes
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

from runtime.files import (
    USER_ONLY_FILE,
    entry_digest,
    private_directory,
    read_private_file,
    write_private_file,
)

from . import lowering, native, threads
from .engine import ENTRY_PREFIX, CompiledSubgraph, Signature
from .errors import LoweringError

LLVM_OPT_LEVEL = 3


@functools.cache
def _backend_fingerprint() -> str:
    """Identifies everything besides the inputs that shapes the generated code."""
    digest = hashlib.sha256()
    for source in sorted(pathlib.Path(__file__).parent.glob("*.[pc]*")):
        digest.update(source.read_bytes())
    digest.update(importlib.metadata.version("torch-mlir").encode())
    digest.update(platform.machine().encode())
    digest.update(threads.runtime_identity().encode())
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            digest.update(next(line for line in cpuinfo if line.startswith("flags")).encode())
    except (OSError, StopIteration):
        pass
    return digest.hexdigest()


def cache_key(module_text: str, func_name: str, bound_args: Mapping[int, torch.Tensor]) -> str:
    """Content key: IR text, entry name, and which arguments are bound. Not the bound
    tensors' values: the code takes them as arguments, so sub-graphs that differ only in
    their parameters share one entry."""
    digest = hashlib.sha256()
    digest.update(_backend_fingerprint().encode())
    digest.update(func_name.encode() + b"\0" + module_text.encode())
    digest.update(f"\0bound:{sorted(bound_args)}".encode())
    return digest.hexdigest()[:40]


@functools.cache
def _scratch_directory() -> pathlib.Path:
    """Holds kernels when the caller gives no cache directory; removed at exit."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="dynn-llvm-"))  # user-only
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


MAX_LIBRARY_BYTES = 1 << 32
MAX_METADATA_BYTES = 1 << 20


def _sealed_metadata(key: str, signature: dict, library: bytes) -> bytes:
    """The `.json` of an entry: its signature, the SHA-256 of its shared object, and a
    digest binding both to the key, so that a swapped, edited or truncated file of either
    kind is found out before anything is loaded."""
    fields = {**signature, "key": key, "library_sha256": hashlib.sha256(library).hexdigest()}
    body = json.dumps(fields, sort_keys=True)
    sealed = {**fields, "digest": entry_digest(key, [body.encode()])}
    return json.dumps(sealed, sort_keys=True).encode()


def _verified_signature(key: str, metadata: bytes | None, library: bytes | None) -> dict | None:
    """The signature recorded for `key`, or None unless the entry is intact and is the
    one written for this key (see `_sealed_metadata`)."""
    if metadata is None or library is None:
        return None
    try:
        sealed = json.loads(metadata)
        fields = {name: value for name, value in sealed.items() if name != "digest"}
        body = json.dumps(fields, sort_keys=True)
    except (ValueError, TypeError, AttributeError):
        return None
    if (
        sealed.get("digest") != entry_digest(key, [body.encode()])
        or fields.get("key") != key
        or fields.get("library_sha256") != hashlib.sha256(library).hexdigest()
    ):
        return None
    return fields


def _load(library: pathlib.Path, signature: dict,
          bound_args: Mapping[int, torch.Tensor]) -> CompiledSubgraph:
    return CompiledSubgraph(library, Signature.from_json(signature), bound_args)


def _load_verified(directory: pathlib.Path, key: str, func_name: str,
                   bound_args: Mapping[int, torch.Tensor]) -> CompiledSubgraph | None:
    """The cached kernel of `key`, or None when there is none or it fails verification:
    only a shared object whose bytes are the ones recorded for this key is loaded."""
    library = directory / f"{key}.so"
    signature = _verified_signature(
        key,
        read_private_file(directory / f"{key}.json", MAX_METADATA_BYTES),
        read_private_file(library, MAX_LIBRARY_BYTES),
    )
    if signature is None or signature.get("func_name") != func_name:
        return None
    return _load(library, signature, bound_args)


def _create_engine(module: ir.Module, context: ir.Context,
                   runtime_symbols: Mapping[str, int]) -> ExecutionEngine:
    """JIT-compiles `module`, turning translation diagnostics into a LoweringError;
    `runtime_symbols` (name: address) resolve the OpenMP runtime calls it makes, so the
    runtime is not loaded into the global symbol scope (see `threads`)."""
    diagnostics = []

    def record(diagnostic: ir.DiagnosticInfo) -> bool:
        diagnostics.append(f"{diagnostic.message} [{diagnostic.location}]")
        return True

    handler = context.attach_diagnostic_handler(record)
    try:
        engine = ExecutionEngine(module, opt_level=LLVM_OPT_LEVEL, enable_object_dump=True,
                                 enable_pic=True)
    except RuntimeError as error:
        raise LoweringError(f"LLVM code generation failed: {'; '.join(diagnostics) or error}"
                            ) from None
    finally:
        handler.detach()
    for name, address in runtime_symbols.items():
        engine.raw_register_runtime(name, ctypes.c_void_p(address))
    return engine


def _build(
    module_text: str,
    func_name: str,
    bound_args: Mapping[int, torch.Tensor],
    directory: pathlib.Path,
    key: str,
) -> CompiledSubgraph:
    """Compiles into `<key>.so` and `<key>.json` (user-only files, each written
    atomically; the metadata last, sealed with the library's digest) and loads the
    library just built."""
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        obj = pathlib.Path(scratch) / "kernel.o"
        staged_library = pathlib.Path(scratch) / "kernel.so"
        with lowering.new_context() as context:
            lowered = lowering.lower_to_llvm(module_text, func_name, set(bound_args), context)
            engine = _create_engine(lowered.module, context,
                                    threads.runtime_symbols() if lowered.uses_openmp else {})
            if not engine.raw_lookup(ENTRY_PREFIX + func_name):
                raise LoweringError(f"LLVM code generation produced no entry @{func_name}")
            engine.dump_to_object_file(str(obj))
        native.link_shared_object(obj, staged_library)
        os.chmod(staged_library, USER_ONLY_FILE)
        signature = lowered.signature.to_json()
        metadata = _sealed_metadata(key, signature, staged_library.read_bytes())
        library = directory / f"{key}.so"
        os.replace(staged_library, library)
        write_private_file(directory / f"{key}.json", metadata)
        return _load(library, signature, bound_args)


def compile_subgraph(
    module_text: str,
    func_name: str,
    bound_args: Mapping[int, torch.Tensor],
    cache_dir: pathlib.Path | None = None,
) -> CompiledSubgraph:
    """Compiles `func_name` of `module_text` (torch dialect, static shapes).

    `bound_args` maps argument indices to tensors (parameters) bound when the code is
    loaded: the code does not depend on their values, only on their types; the returned
    callable takes the remaining arguments in order. With `cache_dir`, the result is
    stored there under a content key and later calls with the same text and bound
    positions (whatever the bound tensors) only load it, once its bytes are verified to
    be the ones recorded for that key (anything else is compiled again; see
    `runtime.files` for what is trusted). Raises LoweringError when the sub-graph cannot
    be compiled.
    """
    directory = private_directory(cache_dir) if cache_dir is not None else None
    if directory is None:
        directory = _scratch_directory()
    key = cache_key(module_text, func_name, bound_args)
    cached = _load_verified(directory, key, func_name, bound_args)
    if cached is not None:
        return cached
    return _build(module_text, func_name, bound_args, directory, key)
