"""Reading the model's functions: which are user code (inlined) and which are library code
(opaque operations), their parsed source, and frames bound to their arguments."""

from __future__ import annotations

import ast
import inspect
import linecache
import sysconfig
import textwrap
import types
from typing import TYPE_CHECKING, Any

import torch

from frontends.torch import state
from frontends.torch.errors import UnsupportedError

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")})


_LIBRARY_ROOTS = _library_roots()


def is_user_function(function: object) -> bool:
    """Whether `function` is Python code of the model (inlined) rather than of a library
    (called as an opaque operation)."""
    target = getattr(function, "__func__", function)
    if not isinstance(target, types.FunctionType):
        return False
    module = target.__module__ or ""
    if module.split(".")[0] in ("torch", "torch_mlir", "numpy", "math", "functools"):
        return False
    filename = target.__code__.co_filename
    return not filename.startswith(_LIBRARY_ROOTS) and not filename.startswith("<")


_GRAD_MODES = (torch.no_grad, torch.enable_grad, torch.inference_mode, torch.set_grad_enabled)


def without_grad_mode(function: Any) -> Any:
    """`function` without its `@torch.no_grad()` (`enable_grad`, `inference_mode`,
    `set_grad_enabled`) decorator, bound as it was: a compiled program records no autograd
    graph, so the grad mode does not change what it computes. Anything else is returned
    as it is."""
    target = getattr(function, "__func__", function)
    wrapped = getattr(target, "__wrapped__", None)
    code = getattr(target, "__code__", None)
    if wrapped is None or code is None or code.co_name != "decorate_context":
        return function
    cells = dict(zip(code.co_freevars, target.__closure__ or ()))
    factory = cells["ctx_factory"].cell_contents if "ctx_factory" in cells else None
    if not isinstance(getattr(factory, "__self__", None), _GRAD_MODES):
        return function
    owner = getattr(function, "__self__", None)
    return types.MethodType(wrapped, owner) if owner is not None else wrapped


_MUTATING_METHODS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "remove",
        "clear",
        "sort",
        "reverse",
        "update",
        "setdefault",
        "popitem",
        "add",
        "discard",
        "__setitem__",
        "__delitem__",
    }
)


def check_local_update(cx: Converter, container: Any, what: str, node: ast.AST) -> None:
    """Refuse an update of a list, dict or set that outlives `forward` (a module-level
    container, one held by a module attribute): the program would run with the value it
    had at compile time, not keep updating it as eager PyTorch does."""
    if id(container) in _external_containers(cx):
        raise cx.unsupported(
            node,
            what,
            f"updates a {type(container).__name__} that outlives forward (module-level or a "
            "module attribute); the compiled program cannot keep such state",
        )


def mutates(function: Any) -> bool:
    return getattr(function, "__name__", "") in _MUTATING_METHODS


def _external_containers(cx: Converter) -> set[int]:
    frame = cx.frame
    found: set[int] = set()
    scopes: list[dict] = [vars(module) for module in cx.model.modules()]
    while frame is not None:
        scopes.append(frame.globals)
        frame = frame.caller
    for scope in scopes:
        key = id(scope)
        if key not in cx.external_containers:
            cx.external_containers[key] = _containers_in(scope)
        found |= cx.external_containers[key]
    return found


def _containers_in(scope: dict) -> set[int]:
    found: set[int] = set()
    for value in list(scope.values()):
        if isinstance(value, list | dict | set):
            found.add(id(value))
            items = value.values() if isinstance(value, dict) else value
            found.update(id(item) for item in items if isinstance(item, list | dict | set))
    return found


def library_call_source(model_type: type) -> state.FunctionSource:
    """The source the evaluator runs for a model that is itself a library module (a bare
    `nn.Sequential`): one call of it, which stages its layers."""
    node = ast.parse("def forward(model, *inputs):\n    return model(*inputs)\n").body[0]
    assert isinstance(node, ast.FunctionDef)
    return state.FunctionSource(node, f"<{model_type.__name__}>", 0)


def read_source(cx: Converter, function: types.FunctionType) -> state.FunctionSource:
    code = function.__code__
    if code not in cx.sources:
        if code.co_name == "<lambda>":
            node, first_line = _lambda_as_def(function), 1
        else:
            node, first_line = _function_def(function)
        cx.sources[code] = state.FunctionSource(
            node, cx.filename_of(code.co_filename), first_line - 1
        )
    return cx.sources[code]


def _unavailable(function: types.FunctionType, why: str) -> UnsupportedError:
    code = function.__code__
    return UnsupportedError(
        code.co_filename, code.co_firstlineno, f"call of {function.__qualname__}", why
    )


def _function_def(function: types.FunctionType) -> tuple[ast.FunctionDef, int]:
    try:
        lines, first_line = inspect.getsourcelines(function)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError) as error:
        raise _unavailable(function, f"its source is not available ({error})") from None
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef):
        raise _unavailable(function, "only functions defined with 'def' can be inlined")
    return node, first_line


def _lambda_as_def(function: types.FunctionType) -> ast.FunctionDef:
    """A lambda defined outside `forward` (`ACTIVATIONS = {"relu": lambda x: ...}`) as the
    `def` it means, with the file's own line numbers. `inspect` gives only the lines it
    starts on, which need not parse alone; the whole file is parsed, and of the lambdas on
    that line the one whose span holds every instruction of the code is taken."""
    code = function.__code__
    try:
        tree = ast.parse("".join(linecache.getlines(code.co_filename)))
    except SyntaxError as error:
        raise _unavailable(function, f"its source is not available ({error})") from None
    candidates = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Lambda) and node.lineno == code.co_firstlineno
    ]
    columns = [  # RESUME and the like have an empty span at column 0
        (line, column)
        for line, _, column, end_column in code.co_positions()
        if column is not None and end_column
    ]
    if len(candidates) > 1 and columns:
        candidates = [
            node
            for node in candidates
            if all(
                (node.lineno, node.col_offset) <= position <= (node.end_lineno, node.end_col_offset)
                for position in columns
            )
        ]
    if len(candidates) != 1:
        raise _unavailable(function, "its source is not available (lambda not found)")
    (lambda_node,) = candidates
    body = ast.Return(value=lambda_node.body)
    definition = ast.FunctionDef(
        name="<lambda>", args=lambda_node.args, body=[body], decorator_list=[], returns=None
    )
    for node in (body, definition):
        ast.copy_location(node, lambda_node)
    return definition


def bind_frame(
    cx: Converter,
    function: types.FunctionType,
    args: tuple,
    kwargs: dict,
    return_join: state.Join | None,
) -> state.Frame:
    source = read_source(cx, function)
    try:
        bound = inspect.signature(function).bind(*args, **kwargs)
    except TypeError as error:
        raise cx.unsupported(cx.node, f"call of {function.__qualname__}", str(error))
    bound.apply_defaults()
    closure = {}
    class_cell = None
    for name, cell in zip(function.__code__.co_freevars, function.__closure__ or ()):
        try:
            closure[name] = cell.cell_contents
        except ValueError:
            continue
        if name == "__class__":
            class_cell = cell.cell_contents
    return state.Frame(
        dict(bound.arguments),
        function.__globals__,
        source,
        closure,
        return_join=return_join,
        class_cell=class_cell,
    )


def bind_user_arguments(
    cx: Converter, arguments: ast.arguments, args: tuple, kwargs: dict, node: ast.AST
) -> dict:
    """Python's binding of a call's arguments to a nested function's or lambda's parameters
    (positional-only, defaults, `*args`, keyword-only, `**kwargs`); the defaults are
    evaluated at the call."""
    parameter = inspect.Parameter
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults = [cx.eval(default) for default in arguments.defaults]
    first_default = len(positional) - len(defaults)
    parameters = [
        parameter(
            argument.arg,
            parameter.POSITIONAL_ONLY
            if index < len(arguments.posonlyargs)
            else parameter.POSITIONAL_OR_KEYWORD,
            default=defaults[index - first_default] if index >= first_default else parameter.empty,
        )
        for index, argument in enumerate(positional)
    ]
    if arguments.vararg:
        parameters.append(parameter(arguments.vararg.arg, parameter.VAR_POSITIONAL))
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults):
        value = parameter.empty if default is None else cx.eval(default)
        parameters.append(parameter(argument.arg, parameter.KEYWORD_ONLY, default=value))
    if arguments.kwarg:
        parameters.append(parameter(arguments.kwarg.arg, parameter.VAR_KEYWORD))
    try:
        bound = inspect.Signature(parameters).bind(*args, **kwargs)
    except TypeError as error:
        raise cx.unsupported(node, "call of a nested function", str(error)) from None
    bound.apply_defaults()
    return dict(bound.arguments)
