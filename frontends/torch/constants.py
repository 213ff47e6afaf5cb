"""Compile-time tensors that the model updates in place.

A tensor built from Python values in `forward` (`torch.tensor(0)`, `torch.ones(4)`) is a
compile-time constant: conversion runs the model's code on it, so `taken += 1` updates
the real tensor while converting. Where paths diverge that is wrong unless handled: a
path that reached a join or returned earlier must keep the value it had (`freeze` copies
the tensor, `FrozenConstants`), and an update inside one arm of a staged branch must not
leak into the other arms (`ConstantsAtBranch`), nor run once for a loop body that runs
any number of times (refused).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

import torch

from frontends.torch.values import OptionalValue

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


class FrozenConstants:
    """The copies `freeze` made of compile-time tensors, each with the tensor it copies and
    that tensor's version then. A copy stands for its original while the original is not
    updated in place (so paths that left it alone still agree, and keep the object); once
    it is, the copy keeps the value the path had."""

    def __init__(self, weights: dict[int, str]):
        self.weights = weights
        self.copies: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}

    def freeze(self, tensor: torch.Tensor) -> torch.Tensor:
        if id(tensor) in self.weights or id(tensor) in self.copies:
            return tensor  # weights are read-only in eval mode; a copy is frozen already
        with torch.no_grad():
            copy = tensor.clone()
        self.copies[id(copy)] = (copy, tensor, tensor._version)
        return copy

    def live(self, tensor: torch.Tensor) -> torch.Tensor:
        entry = self.copies.get(id(tensor))
        if entry is None or entry[0] is not tensor:
            return tensor
        original = entry[1]
        return original if original._version == entry[2] else tensor


def constant_versions(cx: Converter) -> list[tuple[torch.Tensor, int]]:
    """The compile-time tensors the frames' names reach (weights aside), with their
    versions: an in-place update on one path of a staged branch or loop runs at compile
    time, where it would change the tensor for every path."""
    found: dict[int, tuple[torch.Tensor, int]] = {}
    seen: set[int] = set()

    def visit(value: Any) -> None:
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, torch.Tensor):
            if id(value) not in cx.param_keys:
                found[id(value)] = (value, value._version)
        elif isinstance(value, list | tuple):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, OptionalValue):
            visit(value.value)

    frame = cx.frame
    while frame is not None:
        visit(frame.env)
        frame = frame.caller
    return list(found.values())


def check_constants_unchanged(
    cx: Converter, versions: list[tuple[torch.Tensor, int]], node: ast.AST, where: str
) -> None:
    if any(tensor._version != version for tensor, version in versions):
        raise _path_dependent_constant(cx, node, where)


class ConstantsAtBranch:
    """The compile-time tensors reachable at a staged branch, with copies of their values:
    an arm that updates one in place and then leaves (returns, breaks) only changed it for
    its own paths, so the next arm gets it back as it was; an arm that updates one and
    reaches the join would make its value depend on the path, which is refused."""

    def __init__(self, cx: Converter):
        with torch.no_grad():
            self.entries = [[t, v, t.clone()] for t, v in constant_versions(cx)]

    def after_arm(self, cx: Converter, reached_join: bool, node: ast.AST) -> None:
        for entry in self.entries:
            tensor, version, saved = entry
            if tensor._version == version:
                continue
            if reached_join:
                raise _path_dependent_constant(cx, node, "in one arm of a data-dependent branch")
            with torch.no_grad():
                tensor.copy_(saved)
            entry[1] = tensor._version


def _path_dependent_constant(cx: Converter, node: ast.AST, where: str) -> Exception:
    return cx.unsupported(
        node,
        "in-place update",
        f"of a compile-time tensor {where}: its value would depend on the path taken; "
        "derive it from an input (e.g. `torch.zeros_like(x)`) or update it out of place",
    )
