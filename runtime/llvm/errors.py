"""Errors raised by the LLVM back end."""


class LoweringError(Exception):
    """A sub-graph could not be compiled; the caller should run it eagerly.

    The message starts with the first torch op that torch-mlir could not lower
    (for example ``torch.aten.foo: failed to legalize``) when one is known.
    """
