"""The one error type the Torch frontend raises for programs it cannot convert."""

from __future__ import annotations

import operator

from torch import nn


class UnsupportedError(Exception):
    """A construct of the model that the frontend cannot turn into an equivalent program.

    Printed as `MODEL.py:LINE: unsupported: <construct>: <why>`, the place being the line of
    the user's Python source that holds the construct.
    """

    def __init__(
        self,
        filename: str,
        line: int,
        construct: str,
        why: str,
        raised: BaseException | None = None,
        raised_in: object | None = None,
    ):
        super().__init__(filename, line, construct, why)
        self.filename = filename
        self.line = line
        self.construct = construct
        self.why = why
        self.raised = raised
        """The exception the model's own code raised on the example inputs, where that is
        the reason: a `try` of the model may handle it (`exceptions`)."""
        self.raised_in = raised_in
        """The block the conversion was emitting into when it raised: a `try` handles only
        what its own block raised, not what one arm of a staged branch raised."""

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: unsupported: {self.construct}: {self.why}"


def callable_name(function: object) -> str:
    """How a diagnostic names a called function or module."""
    if isinstance(function, nn.Module):
        return type(function).__name__
    if isinstance(function, operator.attrgetter):
        return repr(function)
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    return name or repr(function)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message: enough for a one-line diagnostic."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
