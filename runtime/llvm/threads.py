"""Threads of the compiled kernels: MLIR's OpenMP lowering on PyTorch's own ``libgomp``.

The kernels' outer loops over images (convolutions), row blocks (matmuls) and matrices
(batch matmuls), and the large elementwise loops, are ``scf.forall`` loops;
``convert-scf-to-openmp`` turns them into ``omp.parallel`` regions, which LLVM lowers to
calls of LLVM's ``__kmpc_*`` runtime interface. GCC's ``libgomp``, the OpenMP runtime
PyTorch loads, has no ``__kmpc_*`` entry points, so ``kmpc_on_gomp.c`` implements the
few the lowering emits on top of it; gcc (the kernels' linker already) builds it once per
process. Kernels then fork from eager PyTorch's own thread pool. With a second runtime
(intel-openmp's ``libiomp5``, used before), each runtime's idle workers spun after a
region on the cores the other's next region needed: ``moe_top2`` at batch 32, which
alternates host ops and kernels, took 7.9 ms per call on libiomp5 and 4.0 ms on libgomp
(2 threads, same quiet machine, one after the other; eager 1.5-1.7 ms).
Without libgomp in the process or without a C compiler, the same loops stay sequential,
so every sub-graph still compiles and runs; ``DYNN_OPENMP=0`` asks for that.

The team size follows ``torch.get_num_threads()`` unless :func:`set_num_threads` fixed
it. It is the calling thread's own setting in the shim, apart from libgomp's, so kernels
never change eager PyTorch's thread count; :func:`prepare_calling_thread` re-applies it in
each Python thread that calls a kernel, whenever it differs from what that thread last
applied; concurrent callers each get a team of their own.

Team sizes are fixed unless ``DYNN_OMP_DYNAMIC=1`` asks for libgomp's dynamic teams (set
around each kernel region only). libgomp sizes a dynamic team as the cores less the
15-minute load average, which counts the caller itself: on the quiet 2-core machine every
team was 1 (a residual block of ``Conv2d(32, 32, 3)`` on 16x16 maps at batch 8, us per
image: 75.0 with dynamic teams of "2" threads, 69.6 with 1, 55.3 with a fixed team of 2;
eager 58.8-83.9). The dynamic schedule of every loop (``lowering.schedule_dynamically``)
still lets the calling thread take the items of a worker the OS has not run yet.

The shim is loaded into the global symbol scope (kernels' shared objects leave its
entry points undefined, so a cached kernel does not name a per-process path); it defines
only ``__kmpc_*`` and ``dynn_omp_*`` (:data:`ENTRY_POINTS`), names libgomp and libtorch
do not use.
"""

import atexit
import ctypes
import functools
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading

import torch

DYNAMIC_VARIABLE = "DYNN_OMP_DYNAMIC"
#: What kernels call to read and to set their team size: OpenMP's ``omp_get_max_threads``
#: and ``omp_set_num_threads``, on the shim's own per-thread setting.
GET_TEAM_SIZE = "dynn_omp_get_max_threads"
SET_TEAM_SIZE = "dynn_omp_set_num_threads"
SHIM_SOURCE = pathlib.Path(__file__).with_name("kmpc_on_gomp.c")
#: What the shim defines: the ``__kmpc_*`` calls of the OpenMP lowering, and the team-size
#: functions the kernels call.
ENTRY_POINTS = (
    "__kmpc_fork_call",
    "__kmpc_global_thread_num",
    "__kmpc_dispatch_init_8u",
    "__kmpc_dispatch_next_8u",
    "__kmpc_barrier",
    GET_TEAM_SIZE,
    SET_TEAM_SIZE,
)

_fixed_threads: int | None = None
_applied = threading.local()
_loading = threading.Lock()


def loaded_gomp() -> pathlib.Path | None:
    """The libgomp shared object this process has loaded (PyTorch's), if any."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = pathlib.Path(line.split(maxsplit=5)[-1].strip())
                if path.name.startswith("libgomp") and ".so" in path.name and path.is_file():
                    return path
    except OSError:
        return None
    return None


@functools.cache
def openmp_library() -> pathlib.Path | None:
    """The shim built for this process (``kmpc_on_gomp.c`` linked against the loaded
    libgomp), or None: ``DYNN_OPENMP=0``, no libgomp loaded, or no C compiler."""
    if os.environ.get("DYNN_OPENMP", "1") == "0":
        return None
    gomp = loaded_gomp()
    if gomp is None:
        return None
    directory = pathlib.Path(tempfile.mkdtemp(prefix="dynn-openmp-"))  # user-only
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    output = directory / "kmpc_on_gomp.so"
    command = [
        os.environ.get("CC", "gcc"),
        "-O2",
        "-fPIC",
        "-shared",
        "-o",
        str(output),
        str(SHIM_SOURCE),
        str(gomp),
        f"-Wl,-rpath,{gomp.parent}",
    ]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return output if completed.returncode == 0 else None


def runtime_identity() -> str:
    """What the generated code depends on, for cache keys: the runtime or its absence."""
    return "sequential" if openmp_library() is None else f"libgomp:{loaded_gomp()}"


@functools.cache
def _runtime() -> ctypes.CDLL | None:
    with _loading:
        library = openmp_library()
        return None if library is None else ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)


def load_runtime() -> None:
    """Loads the shim, if any, before a kernel that calls it is loaded."""
    _runtime()


@functools.cache
def runtime_symbols() -> dict[str, int]:
    """Addresses of the shim's entry points for the JIT to resolve the calls that the
    OpenMP lowering and the kernels emit; empty without the runtime."""
    runtime = _runtime()
    if runtime is None:
        return {}
    return {
        name: ctypes.cast(getattr(runtime, name), ctypes.c_void_p).value for name in ENTRY_POINTS
    }


def _dynamic_teams() -> bool:
    return os.environ.get(DYNAMIC_VARIABLE, "0") == "1"


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
        runtime.dynn_omp_configure(ctypes.c_int(threads), ctypes.c_int(int(_dynamic_teams())))
    _applied.threads = threads
