"""Native helpers built with the machine's C compiler.

The torch-mlir wheel ships no MLIR C runner-utils library, yet
``finalize-memref-to-llvm`` lowers copies between non-contiguous memrefs to a
call of ``memrefCopy``. We compile that one function at first use and link
every kernel against it, so the shared objects we produce resolve it.
"""

import fcntl
import hashlib
import os
import pathlib
import subprocess
import tempfile

from .errors import LoweringError

_RUNTIME_SOURCE = r"""
#include <stdint.h>
#include <string.h>

/* The ranked descriptor layout of MLIR's memref lowering, of any rank. */
typedef struct {
  char *allocated;
  char *aligned;
  int64_t offset;
  int64_t sizes_and_strides[];
} StridedMemRef;

typedef struct {
  int64_t rank;
  StridedMemRef *descriptor;
} UnrankedMemRef;

/* Same contract as mlir/ExecutionEngine/CRunnerUtils.cpp: copy `source` into
   `target`, element by element in row-major order, for any strides. */
void memrefCopy(int64_t element_size, UnrankedMemRef *source,
                UnrankedMemRef *target) {
  int64_t rank = source->rank;
  StridedMemRef *src = source->descriptor, *dst = target->descriptor;
  const int64_t *sizes = src->sizes_and_strides;
  const int64_t *src_strides = src->sizes_and_strides + rank;
  const int64_t *dst_strides = dst->sizes_and_strides + rank;
  char *src_base = src->aligned + src->offset * element_size;
  char *dst_base = dst->aligned + dst->offset * element_size;
  for (int64_t d = 0; d < rank; ++d)
    if (sizes[d] == 0) return;
  if (rank == 0) {
    memcpy(dst_base, src_base, element_size);
    return;
  }
  int64_t index[rank];
  memset(index, 0, sizeof(index));
  int64_t src_offset = 0, dst_offset = 0;
  for (;;) {
    memcpy(dst_base + dst_offset * element_size,
           src_base + src_offset * element_size, element_size);
    int64_t d = rank - 1;
    for (; d >= 0; --d) {
      ++index[d];
      src_offset += src_strides[d];
      dst_offset += dst_strides[d];
      if (index[d] < sizes[d]) break;
      src_offset -= src_strides[d] * sizes[d];
      dst_offset -= dst_strides[d] * sizes[d];
      index[d] = 0;
    }
    if (d < 0) return;
  }
}
"""


def _compiler() -> str:
    return os.environ.get("CC", "gcc")


def _run_compiler(arguments: list[str]) -> None:
    completed = subprocess.run([_compiler(), *arguments], capture_output=True, text=True)
    if completed.returncode != 0:
        raise LoweringError(f"native link step failed: {completed.stderr.strip()}")


def runtime_library(directory: pathlib.Path) -> pathlib.Path:
    """Returns the runtime-support shared library in `directory`, building it once."""
    source_digest = hashlib.sha256(_RUNTIME_SOURCE.encode()).hexdigest()[:16]
    library = directory / f"libdynn_llvm_runtime_{source_digest}.so"
    if library.exists():
        return library
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".runtime.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not library.exists():
            with tempfile.TemporaryDirectory(dir=directory) as scratch:
                source = pathlib.Path(scratch) / "runtime.c"
                source.write_text(_RUNTIME_SOURCE)
                staged = pathlib.Path(scratch) / library.name
                _run_compiler(["-O2", "-fPIC", "-shared", "-o", str(staged), str(source)])
                os.replace(staged, library)
    return library


def link_shared_object(
    obj: pathlib.Path, output: pathlib.Path, libraries: list[pathlib.Path]
) -> None:
    """Links the JIT's relocatable object into a self-contained shared object.

    `-Bsymbolic` keeps each kernel's internal symbols bound to itself, so many
    kernels exporting the same entry name can be loaded side by side.
    """
    link_arguments = ["-shared", "-Wl,-Bsymbolic", "-o", str(output), str(obj)]
    for library in libraries:
        link_arguments += [str(library), f"-Wl,-rpath,{library.parent}"]
    _run_compiler([*link_arguments, "-lm"])
