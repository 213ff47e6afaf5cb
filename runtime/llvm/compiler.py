"""Compilation of one sub-graph to a shared object, with an on-disk cache.

The JIT of ``ExecutionEngine`` compiles the LLVM-dialect module to
position-independent machine code; we dump that object and link it into a
shared object with the system C compiler. Fresh compiles and cache hits then
load kernels the same way, and a cache hit runs no MLIR at all.
"""

import atexit
import functools
import hashlib
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
from .engine import ENTRY_PREFIX, CompiledSubgraph, TensorSpec
from .errors import LoweringError

LLVM_OPT_LEVEL = 3

_TORCH_DTYPES = {
    "f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32, "f64": torch.float64,
    "i1": torch.bool, "i8": torch.int8, "ui8": torch.uint8, "i16": torch.int16,
    "i32": torch.int32, "i64": torch.int64,
}


@functools.cache
def _backend_fingerprint() -> str:
    """Identifies everything besides the inputs that shapes the generated code."""
    digest = hashlib.sha256()
    for source in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    digest.update(platform.machine().encode())
    try:
        cpu_flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags"))
        digest.update(cpu_flags.encode())
    except (OSError, StopIteration):
        pass
    import torch_mlir
    digest.update(str(pathlib.Path(torch_mlir.__file__).parent.stat().st_mtime).encode())
    return digest.hexdigest()


def cache_key(module_text: str, func_name: str, bound_args: Mapping[int, torch.Tensor]) -> str:
    """Content key: IR text, entry name, and the bound tensors (they become code constants)."""
    digest = hashlib.sha256()
    digest.update(_backend_fingerprint().encode())
    digest.update(func_name.encode() + b"\0" + module_text.encode())
    for index in sorted(bound_args):
        tensor = bound_args[index].detach().cpu().contiguous()
        digest.update(f"\0{index}:{tensor.dtype}:{list(tensor.shape)}\0".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()[:40]


@functools.cache
def _scratch_directory() -> pathlib.Path:
    """Holds kernels when the caller gives no cache directory; removed at exit."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="dynn-llvm-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _tensor_spec(tensor_type: ir.Type) -> TensorSpec:
    ranked = ir.RankedTensorType(tensor_type)
    element = str(ranked.element_type)
    if element not in _TORCH_DTYPES:
        raise LoweringError(f"unsupported element type {element} at the sub-graph boundary")
    return TensorSpec(tuple(ranked.shape), _TORCH_DTYPES[element])


def _signature(function) -> tuple[list[TensorSpec], list[TensorSpec]]:
    function_type = ir.FunctionType(ir.TypeAttr(function.attributes["function_type"]).value)
    return ([_tensor_spec(t) for t in function_type.inputs],
            [_tensor_spec(t) for t in function_type.results])


def _compile_to_object(module_text: str, func_name: str, bound_args: Mapping[int, torch.Tensor],
                       runtime: pathlib.Path, obj: pathlib.Path) -> dict:
    with lowering.new_context() as context:
        module = lowering.lower_to_llvm(module_text, func_name, bound_args, context,
                                        signature_callback=None)
        signature = module.signature
        try:
            engine = ExecutionEngine(module.llvm, opt_level=LLVM_OPT_LEVEL,
                                     shared_libs=[str(runtime)],
                                     enable_object_dump=True, enable_pic=True)
        except (RuntimeError, ir.MLIRError) as error:
            raise LoweringError(f"LLVM code generation failed: {error}") from None
        if not engine.raw_lookup(ENTRY_PREFIX + func_name):
            raise LoweringError(f"LLVM code generation produced no entry {func_name}")
        engine.dump_to_object_file(str(obj))
    return signature
