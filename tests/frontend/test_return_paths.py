"""What each return path returns is what eager returns on it: a compile-time tensor that a
later statement updates in place keeps, on an earlier exit, the value it had there; a
value whose kind differs between paths (an exit index that is a Python int, a 0-d tensor
or the result of `np.argmax`) comes back as each path returned it."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch
from torch import nn

import frontends.torch as ft


class CounterTensorIncrementedAfterAnExit(nn.Module):
    def forward(self, x):
        taken = torch.tensor(0)
        for _ in range(3):
            x = x * 2
            if x.sum() > 1:
                return x, taken
            taken += 1
        return x, taken


class CounterBecomesATensor(nn.Module):
    def forward(self, x):
        taken = 0
        for _ in range(3):
            x = x * 2
            if x.sum() > 1:
                return x, taken
            taken += torch.tensor(1)
        return x, taken


class ExitIndexOfDifferentKinds(nn.Module):
    """The SDN `early_exit` style: the exit index is an int, then a tensor, and at the
    end the `np.argmax` over the confidences."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))

    def forward(self, x):
        outputs, confidences = [], []
        output_id = 0
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
            confidence = torch.max(torch.softmax(x[0], dim=0))
            confidences.append(confidence)
            if confidence >= 0.6:
                return x, output_id, True
            output_id += torch.tensor(1)
        best = np.argmax(confidences)
        return outputs[best], best, False


class ExitIndexThroughAWrapper(nn.Module):
    """The same method called from a wrapper's forward: the helper's returns merge at its
    return join into a union, which forward returns."""

    def __init__(self):
        super().__init__()
        self.model = ExitIndexOfDifferentKinds()

    def forward(self, x):
        return self.model.forward(x)


def _same(ours, theirs) -> None:
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
    elif isinstance(theirs, torch.Tensor):
        assert isinstance(ours, torch.Tensor)
        torch.testing.assert_close(ours, theirs)
    elif isinstance(theirs, np.integer):
        assert type(ours) is int and ours == int(theirs)
    else:
        assert type(ours) is type(theirs) and ours == theirs


@pytest.mark.parametrize(
    ("model_class", "backend"),
    [
        (CounterTensorIncrementedAfterAnExit, "interpreter"),
        (CounterTensorIncrementedAfterAnExit, "llvm"),
        (CounterBecomesATensor, "interpreter"),
        (ExitIndexOfDifferentKinds, "interpreter"),
        (ExitIndexThroughAWrapper, "interpreter"),
        (ExitIndexThroughAWrapper, "llvm"),
    ],
)
def test_each_path_returns_what_eager_returns(model_class, backend):
    torch.manual_seed(0)
    model = model_class().eval()
    program = ft.compile(model, (torch.randn(1, 4),), backend=backend, cache_dir=None)
    kinds = set()
    for scale in (0.05, 0.1, 0.3, 2.0, -1.0, 5.0, 20.0):
        x = torch.full((1, 4), scale) + torch.arange(4.0) * 0.01 * scale
        with torch.no_grad():
            expected = model(x)
            _same(program(x), expected)
        kinds.add(type(expected[1]).__name__ if isinstance(expected, tuple) else "tensor")
    if model_class in (ExitIndexOfDifferentKinds, ExitIndexThroughAWrapper):
        assert len(kinds) >= 2, kinds


class ConstantUpdatedInOneArm(nn.Module):
    def forward(self, x):
        scale = torch.ones(4)
        if x.mean() > 0:
            scale.mul_(3)
        return x * scale


class ConstantUpdatedInAStagedLoop(nn.Module):
    def forward(self, x):
        total = torch.zeros(4)
        while x.sum() < 10:
            x = x + 1
            total += 1
        return x * total


@pytest.mark.parametrize("model_class", [ConstantUpdatedInOneArm, ConstantUpdatedInAStagedLoop])
def test_updating_a_compile_time_tensor_on_one_path_is_refused(model_class):
    """Found with the cases above: the update ran at compile time, for every path."""
    with pytest.raises(ft.UnsupportedError, match="compile-time tensor"):
        ft.convert(model_class().eval(), (torch.randn(1, 4),))


Exit = namedtuple("Exit", ["logits", "layer", "confidence"])


class NamedTupleExits(nn.Module):
    """Returns a named tuple whose int field differs by exit, or `max`'s own
    `torch.return_types.max` at the end."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))

    def forward(self, x):
        for index, layer in enumerate(self.layers):
            x = layer(x)
            confidence = torch.softmax(x, dim=-1).max(dim=-1).values
            if confidence.min().item() > 0.5:
                return Exit(x, index, confidence)
        return Exit(x, len(self.layers), x.max(dim=-1))


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_named_tuples_returned_on_different_paths(backend):
    torch.manual_seed(0)
    model = NamedTupleExits().eval()
    program = ft.compile(model, (torch.randn(2, 4),), backend=backend, cache_dir=None)
    layers = set()
    for scale in (0.01, 0.1, 1.0, 3.0, 10.0, -5.0, 30.0):
        x = torch.randn(2, 4) * scale
        with torch.no_grad():
            expected = model(x)
        ours = program(x)
        assert type(ours) is Exit and ours.layer == expected.layer
        torch.testing.assert_close(ours.logits, expected.logits)
        if isinstance(expected.confidence, torch.Tensor):
            torch.testing.assert_close(ours.confidence, expected.confidence)
        else:
            assert type(ours.confidence) is type(expected.confidence)
            torch.testing.assert_close(tuple(ours.confidence), tuple(expected.confidence))
        layers.add(expected.layer)
    assert {0, 3} <= layers, layers
