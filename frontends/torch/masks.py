"""Indexing with boolean masks, as the stretches replay it.

PyTorch reads a boolean (or uint8) index tensor of k dimensions as the k integer index
tensors of its `nonzero()`, which is how `x[mask]`, `x[:, keep] = v` and friends get sizes
that depend on the data. The replay spells that out, so that torch.export sees `nonzero`
(an unbacked size) instead of a mask mixed with other indices, which its decompositions
would broadcast as if it were an integer index.
"""

from __future__ import annotations

import operator
from typing import Any

import torch


def _integer_indices(index: Any) -> Any:
    parts = index if isinstance(index, tuple) else (index,)
    if not any(_is_mask(part) for part in parts):
        return index
    converted: list = []
    for part in parts:
        if _is_mask(part):
            converted.extend(torch.nonzero(part, as_tuple=True))
        else:
            converted.append(part)
    return tuple(converted)


def _is_mask(part: Any) -> bool:
    return (
        isinstance(part, torch.Tensor)
        and part.dtype in (torch.bool, torch.uint8)
        and part.dim() > 0
    )


def getitem(tensor: torch.Tensor, index: Any) -> Any:
    """`tensor[index]`."""
    return operator.getitem(tensor, _integer_indices(index))


def setitem(tensor: torch.Tensor, index: Any, value: Any) -> None:
    """`tensor[index] = value`."""
    operator.setitem(tensor, _integer_indices(index), value)
