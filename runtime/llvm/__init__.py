"""LLVM back end: compiles one straight-line torch-dialect sub-graph to native code.

``compile_subgraph(module_text, func_name, bound_args, cache_dir)`` lowers the
function through torch-mlir to linalg, schedules, bufferizes and JIT-compiles
it, and returns a :class:`CompiledSubgraph` called with the remaining arguments
in order. The bound arguments (parameters) stay arguments of the code, bound
and packed when it is loaded, so sub-graphs that differ only in their
parameters share one compiled artifact. Failures raise :class:`LoweringError`
naming the first torch op that could not be lowered, so callers can fall back
to eager execution.
"""

from .compiler import compile_subgraph
from .engine import CompiledSubgraph, SubgraphAssertionError
from .errors import LoweringError

__all__ = ["CompiledSubgraph", "LoweringError", "SubgraphAssertionError", "compile_subgraph"]
