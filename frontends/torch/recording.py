"""Recording tensor calls: a call on staged values runs on their examples (shape
propagation) and is appended to the current stretch, which `staging.flush` imports later.

Around the call itself: arguments a tensor op cannot take are refused, the example run is
watched for ops whose result size depends on data (the stretch's shapes then come from
torch-mlir), training-mode batch norm and dropout are refused, in-place updates of views
reach their roots (`views`), and a result that is an argument updated in place is that
argument's handle.
"""

from __future__ import annotations

import ast
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from frontends.torch import views
from frontends.torch.errors import callable_name, first_line
from frontends.torch.staging import constant_ref, mark_mutated, ref_of, scalar_tensor
from frontends.torch.stretch import (
    Pending,
    RecordedCall,
    Stretch,
    size_slot,
    slot,
    template,
    tensor_leaves,
)
from frontends.torch.values import (
    HostScalar,
    OptionalValue,
    SizeOf,
    SizeTerm,
    StagedList,
    StagedTensor,
    SymSize,
    Undefined,
    UserFunction,
    describe,
)

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def stage_call(
    cx: Converter,
    node: ast.AST,
    function: Callable,
    args: tuple,
    kwargs: dict,
    module: nn.Module | None = None,
) -> Any:
    """Record a call with staged tensor arguments and run it on their examples."""
    _refuse_training_mode(cx, node, function, module, args, kwargs)
    args, kwargs = _tensor_arguments(cx, node, function, (args, kwargs))
    result, staged, versions, data_dependent = _run_on_examples(cx, node, function, args, kwargs)
    mutated = [h for h, version in zip(staged, versions) if h.example._version != version]
    fresh = views.derive_before_update(cx, mutated, node)
    stretch = cx.stretch
    stretch.dynamic = stretch.dynamic or data_dependent
    if stretch.location is None:
        stretch.location = cx.location(node)

    def to_slot(value: Any) -> Any:
        if isinstance(value, StagedTensor):
            return slot(fresh.get(id(value)) or ref_of(cx, value, node))
        if isinstance(value, torch.Tensor):
            return slot(constant_ref(cx, value))
        if isinstance(value, SymSize):
            return size_slot(_replayed_term(cx, value.term, node))
        return None

    module_params = {}
    if module is not None:
        module_params = {
            name: constant_ref(cx, tensor)
            for name, tensor in [*module.named_parameters(), *module.named_buffers()]
        }
    number = len(stretch.calls)
    recorded = RecordedCall(
        function, template(args, to_slot), template(kwargs, to_slot), module, module_params
    )
    stretch.calls.append(recorded)
    if not list(tensor_leaves(result)) and not (result is None and mutated):
        stretch.calls.pop()
        raise cx.unsupported(
            node,
            f"call of {callable_name(function)}",
            f"it computes a Python {type(result).__name__} from tensor data; use "
            "tensor operations or .item() in a condition",
        )
    if module is not None:
        cx.called_modules.append(id(module))
    for handle in mutated:
        if id(handle) not in fresh:
            mark_mutated(cx, handle)
    views.after_update(cx, mutated, fresh, node)
    updated_in_place = {id(h.example): h for h in mutated}
    wrapped = wrap_result(result, (), stretch, number, updated_in_place)
    views.record_views(function, args, kwargs, wrapped)
    return wrapped


def _refuse_training_mode(
    cx: Converter, node: ast.AST, function: Callable, module: Any, args: tuple, kwargs: dict
) -> None:
    """Batch statistics, running-stat updates and dropout are not compiled: a leaf module in
    training mode whose forward depends on it, or `training=True` passed to a function
    (F.dropout, F.batch_norm), is refused rather than compiled as something else."""
    if module is not None and module.training and _reads_training(type(module)):
        raise cx.unsupported(
            node,
            f"call of {type(module).__name__}",
            "the module is in training mode (batch statistics, dropout); compile the model "
            "after model.eval()",
        )
    if _binds_training(function, args, kwargs):
        raise cx.unsupported(
            node,
            f"call of {callable_name(function)}",
            "training=True (batch statistics, dropout) is not compiled; pass training=False "
            "or compile the model after model.eval()",
        )


@functools.cache
def _reads_training(module_type: type) -> bool:
    try:
        source = inspect.getsource(module_type.forward)
    except (OSError, TypeError):
        return True
    return "training" in source


def _binds_training(function: Callable, args: tuple, kwargs: dict) -> bool:
    if kwargs.get("training") is True:
        return True
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return False
    if "training" not in signature.parameters:
        return False
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:
        return False
    return bound.arguments.get("training") is True


def _tensor_arguments(
    cx: Converter, node: ast.AST, function: Callable, arguments: tuple[tuple, dict]
) -> tuple[tuple, dict]:
    """The arguments with host scalars turned into 0-d tensors; values a tensor call cannot
    take are reported."""

    def to_tensor(value: Any) -> Any:
        if isinstance(value, HostScalar):
            return scalar_tensor(cx, value, node)
        if isinstance(value, StagedList | Undefined | UserFunction | OptionalValue):
            reason = (
                value.reason
                if isinstance(value, Undefined)
                else (f"a {describe(value)} cannot be passed to {callable_name(function)}")
            )
            raise cx.unsupported(node, f"call of {callable_name(function)}", reason)
        return None

    args, kwargs = arguments
    return template(args, to_tensor), template(kwargs, to_tensor)


def _replayed_term(cx: Converter, term: SizeTerm, node: ast.AST) -> Any:
    """A symbolic size with each measured tensor replaced by its name in the stretch."""
    if isinstance(term, SizeOf):
        return ("dim", ref_of(cx, StagedTensor(term.tensor, term.example), node), term.dim)
    if isinstance(term, tuple):
        return (term[0], *(_replayed_term(cx, operand, node) for operand in term[1:]))
    return term


class _DataDependenceProbe(TorchDispatchMode):
    """Notes whether a call ran an ATen op whose result size or value depends on tensor
    data (`nonzero`, boolean indexing, `.item()` inside a library function)."""

    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.found and _DATA_DEPENDENT_TAGS.intersection(func.tags):
            self.found = True
        return func(*args, **(kwargs or {}))


_DATA_DEPENDENT_TAGS = frozenset({torch.Tag.dynamic_output_shape, torch.Tag.data_dependent_output})


def _run_on_examples(
    cx: Converter, node: ast.AST, function: Callable, args: tuple, kwargs: dict
) -> tuple[Any, list[StagedTensor], list[int], bool]:
    """Run `function` on the examples of its staged arguments: its example result, the
    staged arguments and their versions before the call (to see in-place updates), and
    whether the result's size may depend on the data."""
    staged: list[StagedTensor] = []
    constants: list[torch.Tensor] = []

    def example_of(value: Any) -> Any:
        if isinstance(value, StagedTensor):
            staged.append(value)
            return value.example
        if isinstance(value, torch.Tensor):
            constants.append(value)
        if isinstance(value, SymSize):
            return value.example
        return None

    example_args = template(args, example_of)
    example_kwargs = template(kwargs, example_of)
    versions = [t.example._version for t in staged]
    constant_versions = [t._version for t in constants]
    probe = _DataDependenceProbe()
    try:
        with probe:
            result = function(*example_args, **example_kwargs)
    except Exception as error:  # noqa: BLE001 - whatever the model's own code raises
        raise cx.unsupported(
            node,
            f"call of {callable_name(function)}",
            f"it fails on the example inputs: {first_line(error)}",
            error,
        ) from None
    if any(t._version != v for t, v in zip(constants, constant_versions)):
        raise cx.unsupported(
            node, f"call of {callable_name(function)}", "it updates a constant tensor in place"
        )
    return result, staged, versions, probe.found


def wrap_result(
    value: Any, path: tuple, stretch: Stretch, number: int, in_place: dict | None = None
) -> Any:
    """The example result of recorded call `number` with each tensor replaced by a pending
    staged tensor of `stretch`; a result that is an argument the call updated in place
    (`z += 1`, `x.add_(1)`) is that argument's handle, as Python returns the same object."""
    if isinstance(value, torch.Tensor):
        if in_place and id(value) in in_place:
            return in_place[id(value)]
        handle = StagedTensor(Pending(stretch, ("out", number, path)), value)
        stretch.track(handle)
        return handle
    if isinstance(value, tuple | list):
        items = [wrap_result(v, (*path, i), stretch, number, in_place) for i, v in enumerate(value)]
        if isinstance(value, list):
            return items
        if hasattr(value, "_fields"):
            return type(value)(*items)
        if type(value) is not tuple:
            return type(value)(items)
        return tuple(items)
    return value
