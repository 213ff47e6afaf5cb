"""The one error type the Torch frontend raises for programs it cannot convert."""

from __future__ import annotations


class UnsupportedError(Exception):
    """A construct of the model that the frontend cannot turn into an equivalent program.

    Printed as `MODEL.py:LINE: unsupported: <construct>: <why>`, the place being the line of
    the user's Python source that holds the construct.
    """

    def __init__(self, filename: str, line: int, construct: str, why: str):
        super().__init__(filename, line, construct, why)
        self.filename = filename
        self.line = line
        self.construct = construct
        self.why = why

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: unsupported: {self.construct}: {self.why}"
