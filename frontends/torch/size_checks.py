"""Run-time checks that keep a trace with symbolic sizes true at the sizes it assumed.

torch.export traces a stretch whose live-ins have `?` dimensions with those sizes symbolic
and size-oblivious (see `stretch._dynamic_export`): a test `size == 1` is decided false.
For almost every op that is what eager does at any size. `squeeze` is the exception: eager
drops a dimension of size 1, the trace keeps it, so at size 1 the compiled program would
return a tensor of another rank where eager returns the squeezed one. While a stretch is
traced, `CheckedSizes` sees every symbolic size a squeeze reads:

- a size computed from data (`nonzero`'s count, unbacked) gets `torch._check(size != 1)`,
  which torch.export keeps as a run-time assertion in the graph;
- a size of a live-in (backed) is returned as `(live-in, dimension)`, and `add_size_checks`
  asserts it at the top of the imported function. `frontends.torch.compile` gives inputs
  with such a size of 1 a specialisation of their own (`dy.SIZE_ONE_CHECKS_ATTR`), as
  torch.compile specialises sizes 0 and 1;
- a size computed from live-in sizes (`2*s0`) is accepted when no small sizes make it 1,
  refused otherwise.

Where the trace needed an input size in a range (`x[1]` needs at least 2 rows, `narrow(1,
1, 2)` at least 3 columns), torch.export records the range (`range_constraints`), and the
range is asserted too: torch.export's decompositions lower `x[1]` to a slice, which would
otherwise clamp silently. And a stretch that only traces with a size of 1 (a dynamic batch
checked against a static batch of one) holds only there, so it asserts that size is 1.
A caller that can recompile gives an input size of 1 its own specialisation wherever some
check fails at 1. The same mode sees the sizes that a reduction without identity (`max`, `argmin`, ...)
reduces: eager refuses an empty one, and torch.export drops such a reduction whose result
is unused, so an input size it reduces is asserted not to be 0 (a size computed from data,
`torch._check`; a size computed from input sizes is not checked).
A failed assertion is a located run-time error (with the LLVM backend, after the eager rerun
of the sub-graph), never a value of the wrong shape.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols
from torch.overrides import TorchFunctionMode
from torch.utils._sympy.numbers import int_oo
from xdsl.dialects import func
from xdsl.dialects.builtin import StringAttr

from ir.torch import BoolType, IntType
from ir.torch_build import TorchBuilder

_SQUEEZES = (torch.squeeze, torch.Tensor.squeeze, torch.Tensor.squeeze_)
#: Reductions without identity: eager refuses an empty tensor (no `dim`) or dimension.
_REFUSING_EMPTY = {
    function: name
    for name in ("max", "min", "amax", "amin", "argmax", "argmin", "aminmax")
    for function in (getattr(torch, name), getattr(torch.Tensor, name))
}
_EMPTY_REDUCTION = "a {} over it, which eager refuses where its size is 0"


class SizeCheckError(Exception):
    """A squeeze reads a size that may be 1 at run time and cannot be checked."""


@dataclass(frozen=True)
class SizeCheck:
    """Dimension `dim` of argument `argument` must be `relation` (`eq`, `ne`, `ge`, `le`)
    `bound`; `wanted` says so in words."""

    argument: int
    dim: int
    relation: str
    bound: int
    wanted: str
    reason: str

    def holds(self, size: int) -> bool:
        return getattr(operator, self.relation)(size, self.bound)


class CheckedSizes(TorchFunctionMode):
    """Active while torch.export traces a stretch; collects the symbolic sizes squeezed
    (`symbols`: they must not be 1) and reduced without identity (`nonzero`: they must
    not be 0; torch.export drops such a reduction when its result is unused, and eager
    raises there all the same)."""

    def __init__(self) -> None:
        super().__init__()
        self.symbols: dict[Any, str] = {}
        self.nonzero: dict[Any, str] = {}
        self.data_sizes_nonzero = False

    def __torch_function__(self, function, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if args and isinstance(args[0], torch.Tensor):
            if function in _SQUEEZES:
                dims = args[1] if len(args) > 1 else kwargs.get("dim")
                self._check(args[0], dims)
            elif function in _REFUSING_EMPTY:
                self._check_reduction(args[0], _REFUSING_EMPTY[function], args[1:], kwargs)
        return function(*args, **kwargs)

    def _check_reduction(self, tensor: torch.Tensor, name: str, rest: tuple, kwargs) -> None:
        dims = rest[0] if rest else kwargs.get("dim")
        if isinstance(dims, torch.Tensor):
            return  # torch.max(a, b): elementwise
        if dims is None or dims == () or dims == []:
            dims = range(tensor.dim())
        elif isinstance(dims, int):
            dims = [dims]
        reason = _EMPTY_REDUCTION.format(name)
        for dim in dims:
            if tensor.dim() == 0 or not isinstance(dim, int):
                continue
            size = tensor.shape[dim % tensor.dim()]
            if not isinstance(size, torch.SymInt):
                continue
            if free_unbacked_symbols(size):
                torch._check(size != 0, lambda reason=reason: reason)
                self.data_sizes_nonzero = True
            elif size.node.expr.is_Symbol:
                self.nonzero.setdefault(size.node.expr, reason)

    def _check(self, tensor: torch.Tensor, dims: Any) -> None:
        rank = tensor.dim()
        if dims is None:
            dims = range(rank)
        elif isinstance(dims, int):
            dims = [dims]
        for dim in dims:
            if rank == 0 or not isinstance(dim, int):
                continue
            size = tensor.shape[dim % rank]
            if not isinstance(size, torch.SymInt):
                continue
            reason = "a squeeze of it, which eager drops where its size is 1"
            if free_unbacked_symbols(size):
                torch._check(size != 1, lambda reason=reason: reason)
                continue
            expression = size.node.expr
            if expression.is_Symbol:
                self.symbols.setdefault(expression, reason)
            elif _may_be_one(expression):
                raise SizeCheckError(
                    f"squeeze of a dimension of size {size}, which is 1 at some sizes of "
                    "its inputs; squeeze a dimension whose size is static, or reshape"
                )


def _may_be_one(expression: Any) -> bool:
    """Whether some small sizes (0 to 4) of its symbols make `expression` 1."""
    symbols = sorted(expression.free_symbols, key=str)[:3]
    for values in itertools.product(range(5), repeat=len(symbols)):
        if expression.subs(dict(zip(symbols, values))) == 1:
            return True
    return False


@dataclass(frozen=True)
class OnesTrace:
    """A stretch traced at its example's size 1 in `dims` ((argument, dim) pairs) because
    its trace at 2 failed with `failure`."""

    dims: list[tuple[int, int]]
    failure: str


def _input_sizes(program: torch.export.ExportedProgram) -> Iterator[tuple[int, int, Any]]:
    """(argument, dim, size) of every size of the program's inputs: a sympy symbol where
    it is symbolic, an int where the trace specialised it."""
    placeholders = [node for node in program.graph.nodes if node.op == "placeholder"]
    for argument, node in enumerate(placeholders):
        value = node.meta.get("val")
        if isinstance(value, torch.Tensor):
            for dim, size in enumerate(value.shape):
                yield argument, dim, size.node.expr if isinstance(size, torch.SymInt) else size


def input_checks(
    program: torch.export.ExportedProgram,
    squeezed: CheckedSizes,
    at_one: OnesTrace | None = None,
) -> list[SizeCheck]:
    """The `SizeCheck`s of the input sizes: not 1 where a squeeze read them, and within the
    range the trace refined (an index, `narrow` or slice that needs the size to be at
    least so large: torch.export records the trace's guards on input sizes as ranges).
    Of a trace `at_one`, a size the trace specialised to 1 or bounded above must be 1 (2,
    the only other size it might allow, failed)."""
    checks = []
    for argument, dim, size in _input_sizes(program):
        symbolic = getattr(size, "is_Symbol", False)
        limits = program.range_constraints.get(size) if symbolic else None
        if at_one is not None and (argument, dim) in at_one.dims:
            if limits is None or limits.upper != int_oo:
                reason = f"at other sizes its trace fails: {at_one.failure}"
                checks.append(SizeCheck(argument, dim, "eq", 1, "1", reason))
        if symbolic and size in squeezed.symbols:
            reason = squeezed.symbols[size]
            checks.append(SizeCheck(argument, dim, "ne", 1, "other than 1", reason))
        if symbolic and size in squeezed.nonzero:
            reason = squeezed.nonzero[size]
            checks.append(SizeCheck(argument, dim, "ne", 0, "other than 0", reason))
        if limits is not None:
            checks += _range_checks(argument, dim, limits.lower, limits.upper)
    symbols = {size for _, _, size in _input_sizes(program)}
    missing = set(squeezed.symbols) - symbols
    if missing:
        raise SizeCheckError(f"squeeze of a size ({sorted(map(str, missing))[0]}) of no input")
    pinned = {(c.argument, c.dim) for c in checks if c.relation == "eq"}
    if any(c.relation == "ne" and c.bound == 1 and (c.argument, c.dim) in pinned for c in checks):
        raise SizeCheckError("it squeezes a dynamic size that its trace needs to be 1")
    return checks


def _range_checks(argument: int, dim: int, low: Any, high: Any) -> list[SizeCheck]:
    bounded = high != int_oo and int(high) < _NO_LIMIT
    wanted = f"{low}..{high}" if bounded else f"at least {low}"
    checks = []
    if low > 0:
        checks.append(SizeCheck(argument, dim, "ge", int(low), wanted, _TRACED_RANGE))
    if bounded:
        checks.append(SizeCheck(argument, dim, "le", int(high), wanted, _TRACED_RANGE))
    return checks


_NO_LIMIT = 2**62
_TRACED_RANGE = (
    "the trace needs it, e.g. for an index, a narrow or a slice: eager raises at other "
    "sizes, or computes something the trace did not"
)


_DATA_SIZE_NOT_ONE = re.compile(r"expression Ne\(u\d+, 1\)")
_DATA_SIZE_NOT_ZERO = re.compile(r"expression (Ne\(u\d+, 0\)|u\d+ >= 1)\b")

SQUEEZED_DATA_SIZE = (
    "a size computed from data is 1 where the program squeezes that dimension: eager drops "
    "it, and the compiled program, whose ranks do not depend on data, holds only for other "
    "sizes"
)


EMPTY_DATA_SIZE = (
    "a size computed from data is 0 where the program reduces that dimension without an "
    "identity (max, argmin, ...): eager raises there"
)


def explain_squeeze_assertions(program: torch.export.ExportedProgram, sizes: CheckedSizes) -> None:
    """Gives torch.export's assertions that a data-dependent size is not 1 (which only the
    squeeze checks make) or not 0 (after `sizes` made such a check) a message that says
    why."""
    graph = program.graph_module.graph
    for check in graph.find_nodes(op="call_function", target=torch.ops.aten._assert_scalar.default):
        if len(check.args) > 1 and _DATA_SIZE_NOT_ONE.search(str(check.args[1])):
            check.args = (check.args[0], SQUEEZED_DATA_SIZE)
        elif (
            sizes.data_sizes_nonzero
            and len(check.args) > 1
            and _DATA_SIZE_NOT_ZERO.search(str(check.args[1]))
        ):
            check.args = (check.args[0], EMPTY_DATA_SIZE)
    program.graph_module.recompile()


def add_size_checks(function: func.FuncOp, checks: Sequence[SizeCheck]) -> None:
    """Asserts each check at the top of `function` (`torch.aten.size.int`, a comparison,
    `torch.runtime.assert`)."""
    block = function.body.block
    anchor = block.first_op
    assert anchor is not None
    builder = TorchBuilder(lambda op: block.insert_op_before(op, anchor), anchor.location)
    for check in checks:
        size = builder.op(
            "torch.aten.size.int", [block.args[check.argument], builder.int(check.dim)], IntType()
        )
        holds = builder.op(
            f"torch.aten.{check.relation}.int", [size, builder.int(check.bound)], BoolType()
        )
        builder.op("torch.runtime.assert", [holds], None, {"message": StringAttr(_message(check))})


def _message(check: SizeCheck) -> str:
    return f"this code was compiled for a run-time size of {check.wanted} here ({check.reason})"
