"""Lists that `forward` appends to as a log: `self.saved_actions.append(action)`.

Research code keeps such logs on modules (SkipNet's gate policy saves every action it
takes, for a later REINFORCE update). In eager PyTorch the list grows at every call; a
compiled program cannot hold Python state, so the conversion returns each appended
tensor as an extra result of the program and the caller (`api.Program`) appends it to the
live attribute after the call, in order: the list grows exactly as in eager.

That holds when every call appends the same number of items at the same points: the
appends must run on every path (not inside a data-dependent branch or loop, not after a
path has already returned), and `forward` must not otherwise read the list (its length
or items would be those at compile time). Anything else is refused at the model line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from frontends.torch.values import StagedTensor, describe

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


@dataclass(eq=False)
class AttributeList:
    """Where a list attribute of a module was read: its owner and name."""

    owner: nn.Module
    name: str
    reads: int = 0
    appends: int = 0


@dataclass(eq=False)
class LoggedAppend:
    """One append to a log: the attribute's path from the model and the appended value."""

    path: str
    value: Any


def note_read(cx: Converter, owner: nn.Module, name: str, value: Any) -> None:
    """`owner.name` was read and is a list: count it (every read must be an append's)."""
    if not isinstance(value, list):
        return
    record = cx.attribute_lists.setdefault(id(value), AttributeList(owner, name))
    record.reads += 1


def is_log(cx: Converter, container: Any) -> bool:
    return isinstance(container, list) and id(container) in cx.attribute_lists


def log_append(cx: Converter, container: list, args: tuple, node: ast.AST) -> None:
    """`container.append(value)` on a module's list attribute, replayed after each call."""
    record = cx.attribute_lists[id(container)]
    what = f"append to '{record.name}', a list of a module that outlives forward"
    if len(args) != 1:
        raise cx.unsupported(node, what, "append takes one item")
    value = args[0]
    if not isinstance(value, StagedTensor | torch.Tensor):
        raise cx.unsupported(node, what, f"only tensors can be logged, not a {describe(value)}")
    frame = cx.frame
    assert frame is not None
    if cx.block is not cx.entry_block or cx.loop_depth or cx.returns or cx.arrivals:
        raise cx.unsupported(
            node,
            what,
            "it must run on every path (not in a data-dependent branch or loop, nor after "
            "a path has returned), so that each call appends the same number of items",
        )
    record.appends += 1
    check_only_appended(cx, record, node)
    cx.logged_appends.append(LoggedAppend(_attribute_path(cx, record), value))


def check_only_appended(cx: Converter, record: AttributeList, node: ast.AST | None) -> None:
    if record.reads != record.appends:
        raise cx.unsupported(
            node,
            f"list attribute '{record.name}'",
            "forward appends to it and also reads it; the compiled program sees it as it "
            "was at compile time, so it may only be appended to",
        )


def check_logs(cx: Converter) -> None:
    """At the end of conversion: every log was only ever appended to."""
    for record in cx.attribute_lists.values():
        if record.appends:
            check_only_appended(cx, record, None)


def _attribute_path(cx: Converter, record: AttributeList) -> str:
    for name, module in cx.model.named_modules():
        if module is record.owner:
            return f"{name}.{record.name}" if name else record.name
    raise cx.unsupported(
        cx.node, f"append to '{record.name}'", "its module is not a submodule of the model"
    )


def append_to_attributes(model: nn.Module, appended: list, results: list) -> None:
    """After a call: append each logged result to the live attribute it was logged to."""
    for path, index in appended:
        owner_path, _, name = path.rpartition(".")
        owner = model.get_submodule(owner_path) if owner_path else model
        getattr(owner, name).append(results[index])
