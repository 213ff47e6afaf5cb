"""The one exception type the neuro-symbolic frontend raises for bad input.

Every user-facing failure (a malformed rule file, a missing dataset folder, a
tensor of the wrong shape) is reported as a ``NesyError`` whose message is a
single line naming the place, so the CLI can print it and exit without a
traceback.
"""


class NesyError(Exception):
    """A user-facing error with a one-line, location-prefixed message."""


class RuleSyntaxError(NesyError):
    """A rule text that does not parse, located as ``file:line:col``."""

    def __init__(self, source_name: str, line: int, column: int, message: str):
        self.source_name = source_name
        self.line = line
        self.column = column
        self.message = message
        super().__init__(f"{source_name}:{line}:{column}: error: {message}")
