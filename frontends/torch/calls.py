"""Calls: inlining user code, leaf modules and library functions, methods of staged values.

Every method, function and submodule `forward` defined in user code (anything not under the
Python installation's library directories) is inlined: its body runs in a new frame whose
returns meet at a join after the call. `torch.nn` modules and library functions are leaf
operations, recorded into the current stretch when they see staged values.
"""

from __future__ import annotations

import ast
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from frontends.torch import (
    attribute_logs,
    builtin_calls,
    guards,
    higher_order,
    list_loops,
    lists,
    operators,
    recording,
    reductions,
    scalars,
    selection,
    sizes,
    sources,
    staging,
)
from frontends.torch.errors import callable_name, first_line
from frontends.torch.expressions import check_defined
from frontends.torch.joins import arrive, resolve
from frontends.torch.loops import static_items
from frontends.torch.rewrites import lower_while_returns
from frontends.torch.sources import is_user_function
from frontends.torch.state import Frame, Join, PathEnded
from frontends.torch.values import (
    TENSOR_METADATA,
    HostScalar,
    RuntimeChoice,
    StagedList,
    StagedMethod,
    StagedTensor,
    SymSize,
    UserFunction,
    is_staged,
)

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def eval_call(cx: Converter, node: ast.Call) -> Any:
    function = cx.eval(node.func)
    args: list = []
    for argument in node.args:
        if isinstance(argument, ast.Starred):
            args.extend(static_items(cx, cx.eval(argument.value), argument))
        else:
            args.append(cx.eval(argument))
    kwargs: dict = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            kwargs.update(cx.eval(keyword.value))
        else:
            kwargs[keyword.arg] = cx.eval(keyword.value)
    cx.node = node
    return cx.call(function, tuple(args), kwargs, node)


def call(cx: Converter, function: Any, args: tuple, kwargs: dict, node: ast.AST) -> Any:
    """Call `function`: user code is inlined, library code on staged values is recorded as a
    tensor call, library code on compile-time values runs now."""
    if isinstance(function, StagedMethod):
        return call_staged_method(cx, function, args, kwargs, node)
    if isinstance(function, UserFunction):
        return inline_user_function(cx, function, args, kwargs, node)
    if isinstance(function, RuntimeChoice):
        return selection.choose(cx, function, lambda f: cx.call(f, args, kwargs, node), node)
    special = special_call(cx, function, args, kwargs, node)
    if special is not NotImplemented:
        return special
    if isinstance(function, nn.Module):
        return call_module(cx, function, args, kwargs, node)
    function = sources.without_grad_mode(function)
    if is_user_function(function):
        return inline(cx, function, args, kwargs, node)
    container = getattr(function, "__self__", None)
    if isinstance(container, torch.Tensor) and is_staged((args, kwargs)):
        return _constant_tensor_method(cx, container, function.__name__, args, kwargs, node)
    python_level = (
        isinstance(container, list | dict | set)
        or getattr(function, "__module__", None) == "builtins"
        or _is_named_tuple_class(function)
        or _is_named_tuple_class(container)
        or _is_named_tuple_class(type(container))
    )
    if getattr(function, "__name__", "") == "append" and attribute_logs.is_log(cx, container):
        return attribute_logs.log_append(cx, container, args, node)
    if isinstance(container, list | dict | set) and sources.mutates(function):
        sources.check_local_update(cx, container, f"call of {callable_name(function)}", node)
    if is_staged((args, kwargs)) and not python_level:
        module = getattr(function, "__self__", None)
        if isinstance(module, nn.Module):
            return recording.stage_call(cx, node, function, args, kwargs, module=module)
        return recording.stage_call(cx, node, function, args, kwargs)
    try:
        return function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - whatever the model's own code raises
        raise cx.unsupported(
            node, f"call of {callable_name(function)}", first_line(error), error
        ) from None


def _is_named_tuple_class(function: Any) -> bool:
    """A named tuple class: building one (or `_make` / `_replace` of one) only packs its
    fields (run-time numbers stay numbers, they are not recorded as tensors of a tensor
    call)."""
    return (
        isinstance(function, type) and issubclass(function, tuple) and hasattr(function, "_fields")
    )


def _constant_tensor_method(
    cx: Converter, receiver: torch.Tensor, name: str, args: tuple, kwargs: dict, node: ast.AST
) -> Any:
    """A method of a compile-time tensor called with run-time arguments: the tensor is an
    argument of the staged call (a constant), promoted to a staged tensor first when the
    method updates it in place."""
    if name.endswith("_") and not name.startswith("_"):
        staged = staging.promote(cx, receiver, node)
        return call_staged_method(cx, StagedMethod(staged, name), args, kwargs, node)
    method = getattr(torch.Tensor, name)
    return recording.stage_call(cx, node, method, (receiver, *args), kwargs)


def call_staged_method(
    cx: Converter, method: StagedMethod, args: tuple, kwargs: dict, node: ast.AST
) -> Any:
    receiver, name = method.receiver, method.name
    if isinstance(receiver, StagedList):
        if name == "append" and len(args) == 1 and not kwargs:
            lists.list_append(cx, receiver, args[0], node)
            return None
        if name == "pop" and len(args) <= 1 and not kwargs:
            return lists.list_pop(cx, receiver, args[0] if args else -1, node)
        if name == "sort" and not args and set(kwargs) <= {"key", "reverse"}:
            ordered = list_loops.sort(
                cx, receiver, kwargs.get("key"), kwargs.get("reverse", False), node
            )
            lists.list_replace(cx, receiver, ordered, node)
            return None
        if name == "extend" and len(args) == 1 and not kwargs:
            extra = list(args[0]) if type(args[0]) is tuple else args[0]
            operators.binary(cx, ast.Add(), receiver, extra, node, inplace=True)
            return None
        if name == "copy" and not args and not kwargs:
            return StagedList(receiver.value, receiver.example_item, receiver.observed_element)
        raise cx.unsupported(
            node,
            f"list.{name}",
            "on a list whose length depends on "
            "the data (only append, extend, pop, sort, copy, del, len, indexing, slicing, "
            "torch.stack/cat/tensor)",
        )
    if name == "item":
        return scalars.item(cx, receiver, node)
    if name == "tolist" and not args and not kwargs:
        return scalars.to_list(cx, receiver, node)
    if name in ("tolist", "numpy", "__bool__", "__int__", "__float__"):
        raise cx.unsupported(
            node,
            f".{name}()",
            "turns tensor data into Python values; use .item() in a condition",
        )
    if name in TENSOR_METADATA:
        return sizes.tensor_metadata(cx, receiver, name, args, kwargs, node)
    return recording.stage_call(cx, node, getattr(torch.Tensor, name), (receiver, *args), kwargs)


def call_module(cx: Converter, module: nn.Module, args: tuple, kwargs: dict, node: ast.AST) -> Any:
    if isinstance(module, nn.Sequential):
        if len(args) != 1 or kwargs:
            raise cx.unsupported(node, "nn.Sequential call", "takes exactly one input")
        value = args[0]
        for child in module:
            value = cx.call(child, (value,), {}, node)
        return value
    forward = sources.without_grad_mode(type(module).forward)
    if is_user_function(forward):
        if module._forward_hooks or module._forward_pre_hooks:
            raise cx.unsupported(
                node,
                f"call of {type(module).__name__}",
                "modules with forward hooks are not supported",
            )
        return inline(cx, sources.without_grad_mode(module.forward), args, kwargs, node)
    if not is_staged((args, kwargs)):
        return module(*args, **kwargs)
    guards.check_rnn_cell_batch(cx, module, args, node)
    return recording.stage_call(cx, node, module, args, kwargs, module=module)


def inline(cx: Converter, function: Any, args: tuple, kwargs: dict, node: ast.AST) -> Any:
    target = getattr(function, "__func__", function)
    receiver = getattr(function, "__self__", None)
    if receiver is not None:
        args = (receiver, *args)
    join = cx.new_join(carries_environment=False)
    caller = cx.frame
    frame = sources.bind_frame(cx, target, args, kwargs, join)
    source = frame.source
    if source.inlined_node is None:
        source.inlined_node = lower_while_returns(source.node)
    return run_inlined(cx, frame, source.inlined_node.body, join, node, caller)


def inline_user_function(
    cx: Converter, function: UserFunction, args: tuple, kwargs: dict, node: ast.AST
) -> Any:
    definition = function.node
    scope = function.scope
    env = sources.bind_user_arguments(cx, definition.args, args, kwargs, node)
    join = cx.new_join(carries_environment=False)
    frame = Frame(
        env,
        scope.globals,
        scope.source,
        {},
        parent=scope,
        return_join=join,
        class_cell=scope.class_cell,
    )
    if isinstance(definition, ast.Lambda):
        body: list[ast.stmt] = [
            ast.Return(definition.body, lineno=definition.lineno, col_offset=definition.col_offset)
        ]
    else:
        body = lower_while_returns(definition).body
    return run_inlined(cx, frame, body, join, node, cx.frame)


def run_inlined(
    cx: Converter,
    frame: Frame,
    body: list[ast.stmt],
    join: Join,
    node: ast.AST,
    caller: Frame | None,
) -> Any:
    saved_node = cx.node
    frame.caller = caller
    frame.depth = 1 + (caller.depth if caller is not None else 0)
    if frame.depth > MAX_INLINING_DEPTH:
        raise cx.unsupported(
            node,
            "recursion",
            f"more than {MAX_INLINING_DEPTH} nested inlined calls: a recursion whose depth "
            "is not bounded by values known at compile time",
        )
    cx.frame = frame
    try:
        cx.exec(body, lambda: arrive(cx, join, None, node))
        cx.frame = caller
        result = resolve(cx, join, node)
    finally:
        cx.frame = caller
        cx.node = saved_node
    if not cx.reachable:
        raise PathEnded()
    return check_defined(cx, result, node)


def special_call(cx: Converter, function: Any, args: tuple, kwargs: dict, node: ast.AST) -> Any:
    """Callables the evaluator gives their own meaning (higher-order ops, joins of run-time
    lists, `super()`, builtins on staged values); NotImplemented for all others."""
    if function is torch.cond:
        return higher_order.torch_cond(cx, args, kwargs, node)
    if function in (torch.equal, torch.allclose) and is_staged((args, kwargs)):
        return scalars.tensor_predicate(cx, function, args, kwargs, node)
    if (
        builtin_calls.is_math_function(function)
        and len(args) == 1
        and not kwargs
        and isinstance(args[0], HostScalar | SymSize)
    ):
        return builtin_calls.math_function(cx, function, args[0], node)
    if function in (torch.tensor, torch.as_tensor) and args and isinstance(args[0], StagedList):
        if len(args) != 1 or set(kwargs) - {"dtype", "device"} or is_staged(kwargs):
            raise cx.unsupported(
                node, callable_name(function), "only dtype= and device= are supported"
            )
        return lists.list_to_tensor(cx, args[0], kwargs.get("dtype"), node)
    reduced = reductions.reduce_list(cx, function, args, kwargs, node)
    if reduced is NotImplemented:
        reduced = reductions.tensor_of_numbers(cx, function, args, kwargs, node)
    if reduced is not NotImplemented:
        return reduced
    if function is getattr(torch, "while_loop", _NOT_A_FUNCTION):
        return higher_order.torch_while_loop(cx, args, kwargs, node)
    if (
        function in (torch.stack, torch.cat, torch.concat, torch.concatenate)
        and args
        and (isinstance(args[0], StagedList))
    ):
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        if is_staged(dim):
            raise cx.unsupported(node, callable_name(function), "dim must be static")
        join = torch.stack if function is torch.stack else torch.cat
        return lists.list_join(cx, join, args[0], dim, node)
    if function is super and not args:
        frame = cx.frame
        assert frame is not None
        receiver = frame.env.get(frame.source.node.args.args[0].arg)
        if frame.class_cell is None:
            raise cx.unsupported(node, "super()", "outside a method")
        return super(frame.class_cell, receiver)
    if not isinstance(function, types.BuiltinFunctionType | type) or (
        getattr(function, "__module__", None) != "builtins"
    ):
        return NotImplemented
    if function is print:
        return None
    if (
        function in (sum, all, any, sorted, min, max)
        and args
        and isinstance(args[0], list | tuple)
        and is_staged(args)
    ):
        return builtin_calls.call_builtin(cx, function, args, kwargs, node)
    if not any(
        isinstance(a, StagedTensor | HostScalar | StagedList | SymSize)
        for a in (*args, *kwargs.values())
    ):
        return NotImplemented
    return builtin_calls.call_builtin(cx, function, args, kwargs, node)


_NOT_A_FUNCTION = object()

MAX_INLINING_DEPTH = 256


EXPRESSIONS: dict[type[ast.expr], Callable[[Converter, Any], Any]] = {ast.Call: eval_call}
