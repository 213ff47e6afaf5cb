"""Reading the model's functions: which are user code (inlined) and which are library code
(opaque operations), their parsed source, and frames bound to their arguments."""

from __future__ import annotations

import ast
import inspect
import sysconfig
import textwrap
import types
from typing import TYPE_CHECKING, Any

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
        try:
            lines, first_line = inspect.getsourcelines(function)
        except (OSError, TypeError) as error:
            raise UnsupportedError(
                code.co_filename,
                code.co_firstlineno,
                f"call of {function.__qualname__}",
                f"its source is not available ({error})",
            ) from None
        tree = ast.parse(textwrap.dedent("".join(lines)))
        node = tree.body[0]
        if not isinstance(node, ast.FunctionDef):
            raise UnsupportedError(
                code.co_filename,
                first_line,
                f"call of {function.__qualname__}",
                "only functions defined with 'def' can be inlined",
            )
        cx.sources[code] = state.FunctionSource(
            node, cx.filename_of(code.co_filename), first_line - 1
        )
    return cx.sources[code]


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
    if arguments.vararg or arguments.kwarg or arguments.kwonlyargs or arguments.posonlyargs:
        raise cx.unsupported(
            node, "call of a nested function", "only plain positional parameters are supported"
        )
    names = [a.arg for a in arguments.args]
    defaults = [cx.eval(d) for d in arguments.defaults]
    env: dict[str, Any] = dict(zip(names[len(names) - len(defaults) :], defaults))
    if len(args) > len(names):
        raise cx.unsupported(node, "call of a nested function", "too many arguments")
    env.update(zip(names, args))
    env.update(kwargs)
    missing = [n for n in names if n not in env]
    if missing:
        raise cx.unsupported(node, "call of a nested function", f"missing argument '{missing[0]}'")
    return env
