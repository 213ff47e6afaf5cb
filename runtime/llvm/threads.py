"""Threads of the compiled kernels: MLIR's OpenMP lowering on intel-openmp's ``libiomp5``.

The kernels' outer loops over images (convolutions), row blocks (matmuls) and matrices
(batch matmuls) are ``scf.forall`` loops; ``convert-scf-to-openmp`` turns them into
``omp.parallel`` regions, which LLVM lowers to calls of the ``__kmpc_*`` runtime that
``libiomp5`` implements (the ``intel-openmp`` wheel; GCC's ``libgomp``, which torch
loads, has no ``__kmpc_*`` entry points). Without that library the same loops stay
sequential, so every sub-graph still compiles and runs.

The team size follows ``torch.get_num_threads()`` unless :func:`set_num_threads` fixed
it. OpenMP keeps the requested size per calling thread, so :func:`prepare_calling_thread`
re-applies it in each Python thread that calls a kernel, whenever it differs from what
that thread last applied; concurrent callers each get a team of their own.

``KMP_BLOCKTIME`` (how long idle workers spin before sleeping) defaults to 1 ms here
instead of 200 ms: on a machine shared with eager PyTorch's own threads, spinning
workers take the cores the next eager op needs.

Team sizes are dynamic (``omp_set_dynamic``, libiomp5's ``load_balance`` mode, which
counts the running threads of the whole machine about once a second): a parallel loop
forks only as many workers as there are idle cores. On a loaded machine a fixed team of
two waited at every join for a worker the scheduler had not run (``Conv2d(16, 16, 3)`` +
batch-norm + ReLU at batch 8, load average 4.8 on 2 cores: 497 us per image with two
threads, 131 us with one); ``DYNN_OMP_DYNAMIC=0`` keeps the team fixed.

``libiomp5`` is never loaded into the process's global symbol scope: it also defines
``GOMP_*`` and ``omp_*`` under libgomp's own symbol versions, so once it is global, the
lazily bound OpenMP calls of libtorch that run after it was loaded go to libiomp5 while
the earlier ones stay on libgomp, and eager PyTorch's 2-thread ops ran 10-70x slower. It
is loaded ``RTLD_LOCAL``; the JIT resolves its entry points from :func:`runtime_symbols`
and each kernel's shared object names it as a dependency of its own.
"""

import ctypes
import functools
import importlib.metadata
import os
import pathlib
import struct
import threading
from collections.abc import Iterator

import torch

DEFAULT_BLOCKTIME_MS = "1"
DYNAMIC_VARIABLE = "DYNN_OMP_DYNAMIC"
ENTRY_POINT_PREFIXES = ("__kmpc_", "omp_")
_ELF_DYNAMIC_SYMBOLS = 11
_ELF_FUNCTION = 2

_fixed_threads: int | None = None
_applied = threading.local()


@functools.cache
def openmp_library() -> pathlib.Path | None:
    """The ``libiomp5`` shared object of the installed ``intel-openmp`` wheel, if any;
    ``DYNN_OPENMP=0`` disables threading (kernels compile sequential)."""
    if os.environ.get("DYNN_OPENMP", "1") == "0":
        return None
    try:
        distribution = importlib.metadata.distribution("intel-openmp")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in distribution.files or ():
        if file.name == "libiomp5.so":
            path = pathlib.Path(distribution.locate_file(file)).resolve()
            if path.is_file():
                return path
    return None


@functools.cache
def _runtime() -> ctypes.CDLL | None:
    library = openmp_library()
    if library is None:
        return None
    os.environ.setdefault("KMP_BLOCKTIME", DEFAULT_BLOCKTIME_MS)
    os.environ.setdefault("KMP_DYNAMIC_MODE", "load_balance")
    return ctypes.CDLL(str(library), mode=ctypes.RTLD_LOCAL)


@functools.cache
def runtime_symbols() -> dict[str, int]:
    """Addresses of the runtime's entry points (``__kmpc_*``, ``omp_*``) for the JIT to
    resolve the calls that the OpenMP lowering emits; empty without the runtime."""
    runtime = _runtime()
    if runtime is None:
        return {}
    return {name: ctypes.cast(getattr(runtime, name), ctypes.c_void_p).value
            for name in _exported_functions(openmp_library())
            if name.startswith(ENTRY_POINT_PREFIXES)}


def _exported_functions(library: pathlib.Path) -> Iterator[str]:
    """Names of the functions an ELF64 little-endian shared object defines (its dynamic
    symbol table); nothing for other formats."""
    data = library.read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        return
    (section_offset,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + entry_size * index)
                for index in range(count)]
    for _, kind, _, _, offset, size, link, _, _, symbol_size in sections:
        if kind != _ELF_DYNAMIC_SYMBOLS or not symbol_size:
            continue
        strings = sections[link][4]
        for position in range(offset, offset + size, symbol_size):
            name, info, _, section = struct.unpack_from("<IBBH", data, position)
            if section and info & 0xF == _ELF_FUNCTION:
                start = strings + name
                yield data[start:data.index(b"\0", start)].decode()


def _dynamic_teams() -> bool:
    return os.environ.get(DYNAMIC_VARIABLE, "1") != "0"


def set_num_threads(threads: int | None) -> None:
    """Team size of every parallel kernel loop; None: follow ``torch.get_num_threads()``."""
    global _fixed_threads
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"set_num_threads: expected a positive int or None, got {threads!r}")
    _fixed_threads = threads


def num_threads() -> int:
    """The team size calls made now get."""
    return _fixed_threads if _fixed_threads is not None else torch.get_num_threads()


def prepare_calling_thread() -> None:
    """Applies :func:`num_threads` to the calling thread's next parallel regions."""
    threads = num_threads()
    if getattr(_applied, "threads", None) == threads:
        return
    runtime = _runtime()
    if runtime is not None:
        runtime.omp_set_num_threads(ctypes.c_int(threads))
        runtime.omp_set_dynamic(ctypes.c_int(int(_dynamic_teams())))
    _applied.threads = threads
