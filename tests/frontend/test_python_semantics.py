"""Python's semantics where a compiler can silently get them wrong (issue 11): aliasing of
tensors and lists through control flow, in-place updates of views and inputs, state that
outlives forward, training mode, NaN in host max/min, bounded recursion."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import frontends.torch as ft
from tests.frontend.conftest import BACKENDS, check_backend

backends = pytest.mark.parametrize("backend", BACKENDS)


def signed(*shape: int) -> list[tuple]:
    return [(torch.full(shape, s),) for s in (-1.0, 0.5, 2.0)]


class WriteThroughView(nn.Module):
    def forward(self, x):
        y = x * 1
        v = y[:, :4]
        w = y[:, 2:]
        if x.sum() > 0:
            v.mul_(0)
        return y, w


class LoopThroughAlias(nn.Module):
    def forward(self, y):
        z = y
        while z.sum() < 5:
            z += 1
        return y * 1


class ListAlias(nn.Module):
    def forward(self, x):
        a = [x]
        b = a
        if x.sum() > 0:
            b.append(x * 2)
        return len(a) * x


class UpdatesItsInput(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            x.add_(1)
        return x * 2


class HelperUpdatesArgument(nn.Module):
    def bump(self, t):
        if t.sum() > 0:
            t.mul_(2)

    def forward(self, x):
        y = x + 0
        self.bump(y)
        return y


@backends
@pytest.mark.parametrize(
    "model_class",
    [WriteThroughView, LoopThroughAlias, ListAlias, UpdatesItsInput, HelperUpdatesArgument],
)
def test_aliases_see_in_place_updates_as_in_eager(model_class, backend):
    samples = signed(2, 6)
    check_backend(model_class().eval(), samples[1], samples, backend)


STATE: list = []


class AppendsToModuleState(nn.Module):
    def forward(self, x):
        STATE.append(x)
        return x * len(STATE)


class AppendsToAttributeAndReadsIt(nn.Module):
    def __init__(self):
        super().__init__()
        self.history = []

    def forward(self, x):
        self.history.append(x)
        return x * len(self.history)


class AppendsToAttributeOnOnePath(nn.Module):
    def __init__(self):
        super().__init__()
        self.history = []

    def forward(self, x):
        if x.sum() > 0:
            self.history.append(x)
        return x


@pytest.mark.parametrize(
    ("model_class", "message"),
    [
        (AppendsToModuleState, "outlives forward"),
        (AppendsToAttributeAndReadsIt, "appends to it and also reads it"),
        (AppendsToAttributeOnOnePath, "must run on every path"),
    ],
)
def test_updating_state_that_outlives_forward_is_refused(model_class, message):
    with pytest.raises(ft.UnsupportedError, match=message):
        ft.convert(model_class(), (torch.ones(2),))


class GatePolicy(nn.Module):
    """SkipNet's recurrent gate policy keeps every action it takes (`saved_actions`)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 1)
        self.saved_actions = []

    def forward(self, x):
        action = (torch.sigmoid(self.proj(x)) > 0.5).float()
        self.saved_actions.append(action)
        return action


class GatedBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.control = GatePolicy()
        self.blocks = nn.ModuleList(nn.Linear(6, 6) for _ in range(3))

    def forward(self, x):
        for block in self.blocks:
            if self.control(x).sum() > 0:
                x = torch.relu(block(x))
        return x


@backends
def test_appends_to_a_module_list_are_replayed_after_each_call(backend):
    torch.manual_seed(0)
    compiled_model, eager_model = GatedBlocks().eval(), GatedBlocks().eval()
    eager_model.load_state_dict(compiled_model.state_dict())
    samples = [torch.randn(1, 6) for _ in range(4)]
    program = ft.compile(compiled_model, (samples[0],), backend=backend, cache_dir=None)
    for sample in samples:
        with torch.no_grad():
            torch.testing.assert_close(program(sample), eager_model(sample))
    ours, theirs = compiled_model.control.saved_actions, eager_model.control.saved_actions
    assert len(ours) == len(theirs) == 3 * len(samples)
    for logged, expected in zip(ours, theirs):
        torch.testing.assert_close(logged, expected)


class ConvBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.norm(self.conv(x))


class FunctionalDropout(nn.Module):
    def forward(self, x):
        return F.dropout(x, 0.5, self.training)


@pytest.mark.parametrize("model_class", [ConvBatchNorm, FunctionalDropout])
def test_training_mode_is_refused_and_eval_mode_compiles(model_class):
    example = (torch.randn(2, 3, 8, 8),)
    with pytest.raises(ft.UnsupportedError, match=r"model\.eval\(\)"):
        ft.convert(model_class(), example)
    model = model_class().eval()
    check_backend(model, example, [example], "interpreter", require_coverage=False)


class HostMaxMin(nn.Module):
    def forward(self, t):
        total = t.sum().item()
        return torch.zeros(1) + max(total, 0.5) + min(0.5, total) + max(0.5, total)


def test_host_max_and_min_follow_python_with_nan():
    samples = [(torch.tensor([float("nan"), 1.0]),), (torch.tensor([1.0, 2.0]),)]
    check_backend(HostMaxMin(), samples[1], samples, "interpreter", require_coverage=False)


class Recursive(nn.Module):
    def __init__(self):
        super().__init__()
        self.step = nn.Linear(4, 4)

    def refine(self, x, depth):
        if x.norm() > 1 and depth < 6:
            return self.refine(self.step(x), depth + 1)
        return x

    def forward(self, x):
        return self.refine(x, 0)


@backends
def test_recursion_bounded_by_a_static_depth_compiles(backend):
    torch.manual_seed(0)
    samples = [(torch.full((1, 4), s),) for s in (0.1, 1.0, 5.0, 50.0)]
    check_backend(Recursive().eval(), samples[1], samples, backend, require_coverage=False)


class Unbounded(nn.Module):
    def refine(self, x):
        if x.norm() > 1:
            return self.refine(x * 0.5)
        return x

    def forward(self, x):
        return self.refine(x)


def test_recursion_bounded_only_at_run_time_is_a_located_error():
    with pytest.raises(ft.UnsupportedError, match="recursion"):
        ft.convert(Unbounded(), (torch.ones(2),))


ACTIVATIONS = {"relu": lambda x: torch.relu(x), "tanh": lambda x: torch.tanh(x) * 2}
GATES = {
    "soft": lambda x, t: torch.sigmoid(x - t),
    "hard": lambda x, t: (x > t).float(),
}


class LambdasFromATable(nn.Module):
    """Activations and gates chosen by name from module-level dicts of lambdas, as
    research code configures them; two lambdas on one line, one per line in another."""

    def __init__(self):
        super().__init__()
        self.act = ACTIVATIONS["tanh"]
        self.gate = GATES["hard"]

    def forward(self, x):
        if self.gate(x, 0.0).mean() > 0.5:
            return self.act(x)
        return x - 1


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_lambdas_defined_in_a_module_level_dict(backend):
    samples = [(torch.randn(2, 3) + shift,) for shift in (-2.0, 0.0, 2.0)]
    check_backend(LambdasFromATable().eval(), samples[0], samples, backend)


class NestedHelpersWithKeywords(nn.Module):
    """Helpers defined inside forward with every kind of parameter Python has: defaults,
    `*rest`, keyword-only, `**options`, positional-only; called with keywords, a `**` dict
    and a `*` tuple, under a data-dependent branch."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 4)

    def forward(self, x):
        def block(h, *rest, scale=1.0, shift=None, **options):
            h = self.layer(h) * scale
            if shift is not None:
                h = h + shift
            for extra in rest:
                h = h + extra
            if h.sum() > 0:
                return h * options.get("gain", 1.0)
            return h

        def mix(a, b, /, weight=0.5):
            return a * weight + b * (1 - weight)

        settings = {"scale": 0.5, "gain": 2.0}
        pair = (x, x * 2)
        out = block(x, x, scale=2.0, gain=3.0) + block(x, shift=1.0) + block(x, **settings)
        return mix(*pair, weight=0.25) + out + block(*pair)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nested_helpers_bind_arguments_as_python_does(backend):
    samples = [(torch.randn(2, 4, generator=torch.Generator().manual_seed(seed)) * scale,)
               for seed, scale in enumerate((0.1, 1.0, 4.0, -4.0))]
    check_backend(NestedHelpersWithKeywords().eval(), samples[1], samples, backend)


def test_a_nested_helper_called_with_a_missing_argument_is_located():
    class Missing(nn.Module):
        def forward(self, x):
            def scaled(h, *, factor):
                return h * factor

            return scaled(x)

    with pytest.raises(ft.UnsupportedError, match=r"test_python_semantics.py:\d+: .*factor"):
        ft.compile(Missing(), (torch.randn(2),), backend="interpreter")


class DecoratedForward(nn.Module):
    """`@torch.no_grad()` on forward and `@torch.inference_mode()` on a helper, as
    research code writes its inference entry points."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))

    @torch.inference_mode()
    def confident(self, x):
        return torch.softmax(x, dim=-1).max().item() > 0.5

    @torch.no_grad()
    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
            if self.confident(x):
                break
        return x


class Wraps(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = DecoratedForward()

    def forward(self, x):
        return self.inner(x) * 2.0


@pytest.mark.parametrize("model_class", [DecoratedForward, Wraps])
def test_grad_mode_decorators_are_looked_through(model_class):
    torch.manual_seed(0)
    model = model_class().eval()
    program = ft.compile(model, (torch.randn(1, 4),), backend="interpreter", cache_dir=None)
    for scale in (0.01, 1.0, 10.0, -30.0):
        x = torch.randn(1, 4) * scale
        torch.testing.assert_close(program(x), model(x))
