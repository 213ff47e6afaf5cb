"""LLVM back end: compiles one straight-line torch-dialect sub-graph to native code.

``compile_subgraph(module_text, func_name, bound_args, cache_dir)`` lowers the
function through torch-mlir to linalg, folds the bound arguments (parameters)
into the code as constants, schedules, bufferizes and JIT-compiles it, and
returns a :class:`CompiledSubgraph` called with the remaining arguments in
order. Failures raise :class:`LoweringError` naming the first torch op that
could not be lowered, so callers can fall back to eager execution.
"""

from .compiler import compile_subgraph
from .engine import CompiledSubgraph, SubgraphAssertionError
from .errors import LoweringError

__all__ = ["CompiledSubgraph", "LoweringError", "SubgraphAssertionError", "compile_subgraph"]
