"""`try` statements: exceptions the model's own code raises while it is converted.

Conversion runs the model's Python on its example inputs, so an exception that its static
code raises (a failing call, a missing attribute, a bad index, a `raise` on a path known at
compile time) surfaces during conversion exactly where eager PyTorch would raise it. The
`try` then does what Python does: the state at the raise stays (names assigned and ops
recorded before it ran in eager too), the first matching handler runs, then `finally` and
the rest. A `try` whose body raises nothing converts as its body, `else` and `finally`.

Not handled, and reported at the model line instead: an exception raised on a
data-dependent path (inside a staged branch or loop: the handler would run on some runs
only), and an exception that compiled code raises at run time (a run-time size mismatch,
an out-of-range list index), which propagates as a located error rather than reaching
the handler.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING

from frontends.torch.ast_facts import exits
from frontends.torch.errors import UnsupportedError

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def exec_try(cx: Converter, statement: ast.Try, rest: Callable[[], None]) -> None:
    frame = cx.frame
    assert frame is not None
    if statement.finalbody and exits(statement.body + _handler_bodies(statement)):
        raise cx.unsupported(
            statement, "try", "a return, break or continue that leaves through `finally`"
        )
    entry = (cx.block, len(frame.loops), cx.loop_depth, len(cx.arrivals))
    body_done = False

    def after_body() -> None:
        nonlocal body_done
        body_done = True
        cx.exec(statement.orelse + statement.finalbody, rest)

    try:
        cx.exec(statement.body, after_body)
    except UnsupportedError as error:
        if body_done or error.raised is None:
            raise
        handler = _matching_handler(cx, statement, error.raised)
        if handler is None:
            raise
        cx.frame = frame
        raised_at = (error.raised_in, cx.block, cx.loop_depth, len(cx.arrivals))
        if raised_at != (entry[0], entry[0], entry[2], entry[3]):
            raise cx.unsupported(
                statement,
                "try",
                "its body raises on a data-dependent path (inside a staged branch or "
                f"loop), at {error.filename}:{error.line}: {error.why}",
            ) from None
        del frame.loops[entry[1] :]
        cx.reachable = True
        _run_handler(cx, statement, handler, error.raised, rest)


def _run_handler(
    cx: Converter,
    statement: ast.Try,
    handler: ast.ExceptHandler,
    raised: BaseException,
    rest: Callable[[], None],
) -> None:
    frame = cx.frame
    assert frame is not None
    if handler.name is not None:
        frame.env[handler.name] = raised

    def after_handler() -> None:
        if handler.name is not None:
            frame.env.pop(handler.name, None)  # Python unbinds the name after the handler
        cx.exec(statement.finalbody, rest)

    cx.exec(handler.body, after_handler)


def _matching_handler(
    cx: Converter, statement: ast.Try, raised: BaseException
) -> ast.ExceptHandler | None:
    for handler in statement.handlers:
        if handler.type is None:
            return handler
        caught = cx.eval(handler.type)
        classes = caught if isinstance(caught, tuple) else (caught,)
        if not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
            raise cx.unsupported(
                handler.type, "except", "the exception type must be known at compile time"
            )
        if isinstance(raised, classes):
            return handler
    return None


def _handler_bodies(statement: ast.Try) -> list[ast.stmt]:
    return [s for handler in statement.handlers for s in handler.body] + statement.orelse
