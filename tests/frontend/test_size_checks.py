"""Dynamic sizes the trace decided about: a squeeze of a dimension whose size may be 1, and
code that only holds where a dynamic size is 1 (`frontends.torch.size_checks`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import frontends.torch as ft
from frontends.torch.api import convert
from tests.frontend.conftest import BACKENDS

backends = pytest.mark.parametrize("backend", BACKENDS)


class GateMasks(nn.Module):
    """SkipNet's feed-forward gates: `masks.append(mask.squeeze())` on a [batch, 1, 1, 1]."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Conv2d(4, 1, 1)

    def forward(self, x):
        masks = []
        for _ in range(2):
            mask = (torch.sigmoid(self.gate(x).mean((2, 3), keepdim=True)) > 0.5).float()
            masks.append(mask.squeeze())
            x = x * mask + torch.tanh(x) * (1 - mask)
        return x, masks


def _agree(program, model, x):
    with torch.no_grad():
        expected = model(x)
        got = program(x)
    torch.testing.assert_close(got[0], expected[0])
    assert [m.shape for m in got[1]] == [m.shape for m in expected[1]]
    for a, b in zip(got[1], expected[1]):
        torch.testing.assert_close(a, b)


@backends
def test_a_squeezed_dynamic_batch_gives_eager_ranks_at_batch_one(backend):
    model = GateMasks().eval()
    torch.manual_seed(0)
    program = ft.compile(
        model, (torch.randn(1, 4, 3, 3),), backend=backend, cache_dir=None, dynamic=True
    )
    for batch in (1, 3, 1, 8, 2):
        _agree(program, model, torch.randn(batch, 4, 3, 3) * 3)
    # batch 1 has its own specialisation (a static size of 1), every other batch shares one
    assert program.specializations == 2


def test_a_squeezed_dynamic_batch_is_asserted_in_the_ir():
    conversion = convert(GateMasks().eval(), (torch.randn(3, 4, 3, 3),), dynamic=True)
    text = conversion.ir
    assert "dy.size_one_checks" in text
    assert '"torch.aten.ne.int"' in text and '"torch.runtime.assert"' in text


class SqueezeSelected(nn.Module):
    def forward(self, x):
        rows = x[x.sum(1) > 0]
        return rows.squeeze(0) * 2


@backends
def test_a_squeezed_data_dependent_size_of_one_raises_located_otherwise_agrees(backend):
    model = SqueezeSelected().eval()
    program = ft.compile(model, (torch.randn(4, 3),), backend=backend, cache_dir=None)
    for rows in (0, 2, 3):
        x = -torch.ones(4, 3)
        x[:rows] = 1.0
        torch.testing.assert_close(program(x), model(x))
    x = -torch.ones(4, 3)
    x[2] = 1.0
    assert model(x).shape == (3,)
    with pytest.raises(Exception, match=r"test_size_checks\.py:\d+:\d+: .*squeezes") as raised:
        program(x)
    assert "\n" not in str(raised.value).strip()


class PermutedView(nn.Module):
    """`encoder_out.view(1, -1, dim)` of a permuted feature map (a captioner's encoder):
    eager can view it only at batch 1."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        features = self.conv(x).permute(0, 2, 3, 1)
        features = features.view(1, -1, features.size(-1))
        return features.mean(1)


@backends
def test_a_view_only_a_batch_of_one_allows_raises_at_other_batches_as_eager(backend):
    model = PermutedView().eval()
    program = ft.compile(
        model, (torch.randn(1, 3, 5, 5),), backend=backend, cache_dir=None, dynamic=True
    )
    x = torch.randn(1, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(program(x), model(x))
        with pytest.raises(RuntimeError, match="view size is not compatible"):
            model(torch.randn(3, 3, 5, 5))
        with pytest.raises(Exception, match=r"test_size_checks\.py:\d+:\d+: .*Cannot view") as raised:
            program(torch.randn(3, 3, 5, 5))
    assert "\n" not in str(raised.value).strip()


class ContiguousView(nn.Module):
    def forward(self, x):
        y = torch.relu(x).permute(0, 2, 1).contiguous()
        return y.view(y.size(0), -1).sum(1)


@backends
def test_a_view_of_a_contiguous_copy_serves_every_batch(backend):
    model = ContiguousView().eval()
    program = ft.compile(
        model, (torch.randn(1, 3, 4),), backend=backend, cache_dir=None, dynamic=True
    )
    for batch in (1, 2, 5):
        x = torch.randn(batch, 3, 4)
        torch.testing.assert_close(program(x), model(x))
    assert program.specializations == 1


class KeptRowsAsPairs(nn.Module):
    """Two returns of different structure (the program's results hold an empty placeholder
    for the one not taken) and a `view` with an inferred size of kept rows."""

    def forward(self, x):
        keep = x[x[:, 0] > 0]
        pairs = keep.view(keep.size(0), -1, 2)
        if pairs.sum() > 0:
            return pairs.sum(1)
        return pairs, keep.size(0)


@backends
def test_an_inferred_size_of_an_empty_selection_raises_as_eager(backend):
    model = KeptRowsAsPairs().eval()
    program = ft.compile(model, (torch.randn(6, 4),), backend=backend, cache_dir=None)
    torch.manual_seed(1)
    for x in (torch.randn(6, 4).abs(), -torch.randn(6, 4).abs(), torch.randn(6, 4)):
        x[0, 0] = 1.0
        expected, got = model(x), program(x)
        assert type(got) is type(expected)
        torch.testing.assert_close(got, expected)
    empty = -torch.ones(6, 4)
    with pytest.raises(RuntimeError, match="ambiguous"):
        model(empty)
    with pytest.raises(Exception, match=r"test_size_checks\.py:\d+:\d+: .*ambiguous") as raised:
        program(empty)
    assert "\n" not in str(raised.value).strip()


class FixedPositions(nn.Module):
    """Fixed indices and a narrow on dimensions of run-time size: eager raises where the
    size is too small (torch.export lowers `x[1]` to a slice, which would clamp)."""

    def forward(self, x):
        second = x[1] * 2
        before_last = x[-2] + 1
        middle = x.narrow(1, 1, 2)
        return second, before_last, middle


@backends
def test_fixed_indices_on_run_time_sizes_raise_where_eager_raises(backend):
    model = FixedPositions().eval()
    program = ft.compile(
        model, (torch.randn(3, 4),), backend=backend, cache_dir=None, dynamic={0: [0, 1]}
    )
    for shape in ((3, 4), (2, 3), (7, 5)):
        x = torch.randn(*shape)
        for got, expected in zip(program(x), model(x)):
            torch.testing.assert_close(got, expected)
    for shape in ((1, 4), (0, 4), (4, 2), (2, 1)):
        x = torch.randn(*shape)
        with pytest.raises((IndexError, RuntimeError)):
            model(x)
        with pytest.raises(Exception, match=r"test_size_checks\.py:\d+") as raised:
            program(x)
        assert "\n" not in str(raised.value).strip()


class Extremes(nn.Module):
    """Reductions without identity of a run-time-sized tensor: eager raises when it is
    empty (torch-mlir's lowering returned the initial value, `-inf` for `max()`)."""

    def __init__(self, which: str):
        super().__init__()
        self.which = which

    def forward(self, x):
        if self.which == "max":
            return x.max() * 2
        if self.which == "amin":
            return torch.amin(x, dim=0) + 1
        if self.which == "max_dim":
            return x.max(dim=0).values - 1
        return x.argmax(dim=0)


@backends
@pytest.mark.parametrize("which", ["max", "amin", "max_dim", "argmax"])
def test_reductions_without_identity_of_an_empty_batch_raise_as_eager(backend, which):
    model = Extremes(which).eval()
    program = ft.compile(
        model, (torch.randn(3, 4),), backend=backend, cache_dir=None, dynamic=True
    )
    for batch in (3, 1, 6):
        x = torch.randn(batch, 4)
        torch.testing.assert_close(program(x), model(x))
    empty = torch.randn(0, 4)
    with pytest.raises((IndexError, RuntimeError)):
        model(empty)
    with pytest.raises(Exception, match=r"test_size_checks\.py:\d+") as raised:
        program(empty)
    assert "\n" not in str(raised.value).strip()
