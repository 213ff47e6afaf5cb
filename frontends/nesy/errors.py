"""The one exception type the neuro-symbolic frontend raises for bad input.

Every user-facing failure (a missing dataset folder, a tensor of the wrong
shape) is reported as a ``NesyError`` whose message is a
single line naming the place, so the CLI can print it and exit without a
traceback.
"""


class NesyError(Exception):
    """A user-facing error with a one-line, location-prefixed message."""
