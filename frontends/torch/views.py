"""Views of staged tensors: in-place updates through a view reach its base, and the other
views of that base.

Inside one stretch the replay runs the model's own calls, so a view and its base alias as
in eager PyTorch. Across stretches they are separate SSA values (value semantics). So a
staged tensor that is a view records how to derive it from its root (the tensor whose
storage it shares): when a call updates the view in place, the stretch first derives the
view afresh from the root, the update flows into the root (marked updated), and every
other live view of that root is derived again from the root's new value. A view whose
derivation needs run-time values cannot be derived again; updating its base then is an
error, located at the update.
"""

from __future__ import annotations

import ast
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from frontends.torch import staging
from frontends.torch.stretch import Pending, RecordedCall, slot, template
from frontends.torch.values import StagedTensor, is_staged

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


@dataclass(eq=False)
class ViewOf:
    """The root a staged view shares storage with, and how to derive the view from it."""

    root: StagedTensor
    derive: Callable[[torch.Tensor], torch.Tensor] | None


def record_views(function: Callable, args: tuple, kwargs: dict, result: Any) -> None:
    """Mark the results of a call that are views of one of its staged arguments."""
    sources = _staged_leaves((args, kwargs))
    if not sources:
        return
    for handle in _result_handles(result):
        storage = _storage(handle.example)
        source = next((s for s in sources if _storage(s.example) == storage), None)
        if source is None or source is handle:
            continue
        parent = source.view
        root = parent.root if parent is not None else source
        others = template((args, kwargs), lambda v: 0 if v is source else None)
        derive = None
        if not is_staged(others) and (parent is None or parent.derive is not None):
            derive = _derivation(function, args, kwargs, source, parent)
        handle.view = ViewOf(root, derive)
        root.views.append(weakref.ref(handle))


def derive_before_update(cx: Converter, mutated: list[StagedTensor], node: ast.AST) -> dict:
    """For each view among `mutated` (the arguments a call is about to update in place):
    a fresh derivation from its root in the current stretch, whose name the call reads
    instead. Returns handle id -> replay name."""
    fresh = {}
    for handle in mutated:
        if handle.view is None:
            continue
        if handle.view.derive is None:
            raise cx.unsupported(
                node, "in-place update", "of a view whose extent depends on run-time values"
            )
        fresh[id(handle)] = _derive(cx, handle.view, node)
    return fresh


def after_update(cx: Converter, mutated: list[StagedTensor], fresh: dict, node: ast.AST) -> None:
    """After an in-place update: views read through their fresh derivation, their roots
    are updated, and every other live view of an updated root is derived again."""
    roots: list[StagedTensor] = []
    for handle in mutated:
        if id(handle) in fresh:
            cx.mutations.append((handle, handle.value))
            handle.value = Pending(cx.stretch, fresh[id(handle)])
            cx.stretch.track(handle)
            root = handle.view.root
            staging.mark_mutated(cx, root)
        else:
            root = handle
        if not any(r is root for r in roots):
            roots.append(root)
    for root in roots:
        for reference in list(root.views):
            view = reference()
            if view is None or any(view is h for h in mutated):
                continue
            if view.view is None or view.view.derive is None:
                raise cx.unsupported(
                    node,
                    "in-place update",
                    "of a tensor that has a view whose extent depends on run-time values",
                )
            cx.mutations.append((view, view.value))
            view.value = Pending(cx.stretch, _derive(cx, view.view, node))
            cx.stretch.track(view)


def _derive(cx: Converter, view: ViewOf, node: ast.AST) -> tuple:
    stretch = cx.stretch
    number = len(stretch.calls)
    stretch.calls.append(
        RecordedCall(view.derive, (slot(staging.ref_of(cx, view.root, node)),), {}, None, {})
    )
    return ("out", number, ())


def _derivation(
    function: Callable, args: tuple, kwargs: dict, source: StagedTensor, parent: ViewOf | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    def derive(root: torch.Tensor) -> torch.Tensor:
        base = parent.derive(root) if parent is not None else root
        call_args = template(args, lambda v: base if v is source else None)
        call_kwargs = template(kwargs, lambda v: base if v is source else None)
        return function(*call_args, **call_kwargs)

    return derive


def _staged_leaves(value: Any) -> list[StagedTensor]:
    found: list[StagedTensor] = []

    def visit(item: Any) -> Any:
        if isinstance(item, StagedTensor):
            found.append(item)
            return item
        return None

    template(value, visit)
    return found


def _result_handles(result: Any) -> list[StagedTensor]:
    if isinstance(result, StagedTensor):
        return [result]
    if isinstance(result, tuple | list):
        return [h for item in result for h in _result_handles(item)]
    return []


def _storage(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()
