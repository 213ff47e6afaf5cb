"""`try` statements: exceptions the model's static code raises while it is converted are
handled as Python handles them; data-dependent ones are refused at the model line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import frontends.torch as ft
from frontends.torch.errors import UnsupportedError


def _agrees(model: nn.Module, backend: str = "interpreter") -> None:
    model = model.eval()
    x = torch.randn(2, 4)
    program = ft.compile(model, (x,), backend=backend, cache_dir=None)
    for sample in (x, -x, x + 3):
        with torch.no_grad():
            torch.testing.assert_close(program(sample), model(sample))


class ReshapeInATry(nn.Module):
    """The NMT Transformer's style: a reshape in a `try` whose handler only prints."""

    def forward(self, x):
        try:
            y = x.contiguous().view(-1, 2)
        except:  # noqa: E722 - as the original code writes it
            print()
        if y.sum() > 0:
            return y * 2
        return y - 1


class MissingAttribute(nn.Module):
    def forward(self, x):
        try:
            scale = self.scale
        except AttributeError:
            scale = 3.0
        return x * scale


class MissingKeyFallsBack(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = {"a": 1}

    def forward(self, x):
        try:
            shift = self.table["b"]
        except KeyError as error:
            shift = len(str(error))
        else:
            shift = -1
        return x + shift


class ElseAndFinallyRunInOrder(nn.Module):
    def forward(self, x):
        steps = []
        try:
            y = torch.relu(x)
            steps.append(1)
        except ValueError:
            steps.append(2)
        else:
            steps.append(3)
        finally:
            steps.append(4)
        return y * sum(steps) if y.mean() > 0.3 else y - len(steps)


class StaticRaiseIsHandled(nn.Module):
    def __init__(self, strict: bool):
        super().__init__()
        self.strict = strict

    def forward(self, x):
        y = x + 1
        try:
            if self.strict:
                raise ValueError("strict")
            y = y * 2
        except ValueError:
            y = y - 10
        return y


class StateBeforeTheRaiseStays(nn.Module):
    def forward(self, x):
        items = []
        try:
            y = torch.tanh(x)
            items.append(y)
            z = items[3]
            y = z
        except IndexError:
            pass
        return y + len(items)


class RaisedInAHelper(nn.Module):
    def pick(self, x, name):
        return getattr(self, name)(x)

    def forward(self, x):
        try:
            out = self.pick(x, "missing")
        except AttributeError:
            out = x.sigmoid()
        if out.max() > 0.9:
            out = out * 0
        return out


@pytest.mark.parametrize(
    "model",
    [
        ReshapeInATry(),
        MissingAttribute(),
        MissingKeyFallsBack(),
        ElseAndFinallyRunInOrder(),
        StaticRaiseIsHandled(True),
        StaticRaiseIsHandled(False),
        StateBeforeTheRaiseStays(),
        RaisedInAHelper(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_try_agrees_with_eager(model):
    _agrees(model)


def test_try_on_the_llvm_backend():
    _agrees(RaisedInAHelper(), "llvm")


class DataDependentRaise(nn.Module):
    def forward(self, x):
        try:
            if x.sum() > 0:
                raise ValueError("positive")
            y = x + 1
        except ValueError:
            y = x - 1
        return y


class UnmatchedHandler(nn.Module):
    def forward(self, x):
        try:
            y = self.missing
        except KeyError:
            y = 0
        return x + y


class ReturnThroughFinally(nn.Module):
    def forward(self, x):
        try:
            return x + 1
        finally:
            print("done")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (DataDependentRaise(), "raises on a data-dependent path"),
        (UnmatchedHandler(), "attribute 'missing'"),
        (ReturnThroughFinally(), "leaves through `finally`"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)
def test_try_that_cannot_convert_is_a_located_error(model, message):
    with pytest.raises(UnsupportedError, match=message) as info:
        ft.compile(model.eval(), (torch.randn(2, 4),), backend="interpreter", cache_dir=None)
    assert info.value.filename.endswith("test_exceptions.py")
