"""Linking of JIT-compiled objects into loadable shared objects.

``ExecutionEngine`` compiles position-independent code and can dump it as a
relocatable object; the system C compiler (``$CC``, default ``gcc``) links
that object into a shared object that ``ctypes`` loads. Caching the shared
object makes a warm compile a file lookup plus a ``dlopen``.
"""

import os
import pathlib
import subprocess

from .errors import LoweringError


def link_shared_object(obj: pathlib.Path, output: pathlib.Path) -> None:
    """Links `obj` into `output`. Calls of the OpenMP shim stay undefined: it is in the
    global symbol scope when a kernel is loaded (`threads`).

    ``-Bsymbolic`` binds each kernel's own symbols to itself, so kernels that
    all export the same entry name can be loaded side by side.
    """
    command = [os.environ.get("CC", "gcc"), "-shared", "-Wl,-Bsymbolic", "-o", str(output),
               str(obj), "-lm"]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise LoweringError(f"cannot run the linker {command[0]}: {error}") from None
    if completed.returncode != 0:
        raise LoweringError(f"linking the kernel failed: {completed.stderr.strip()}")
