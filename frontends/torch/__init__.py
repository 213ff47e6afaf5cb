"""Torch frontend: dynamic PyTorch programs -> the `dy` dialect (see docs/frontend.md)."""

from frontends.torch.api import (
    Conversion,
    Dynamic,
    Program,
    compile,
    convert,
    default_cache_dir,
    rebuild_results,
)
from frontends.torch.errors import UnsupportedError

__all__ = [
    "Conversion",
    "Dynamic",
    "Program",
    "UnsupportedError",
    "compile",
    "convert",
    "default_cache_dir",
    "rebuild_results",
]
