"""Small dynamic models, one construct each: converted programs agree with eager on inputs
that take every path, and every branch and loop region of the program runs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ir import dy
from tests.frontend.conftest import check_agreement


def scaled_inputs(count: int, *shape: int, seed: int = 0) -> list[tuple[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(*shape, generator=generator) * (0.2 + 0.4 * i),) for i in range(count)]


def ops_named(conversion, op_type) -> list:
    return [op for op in conversion.module.walk() if isinstance(op, op_type)]


class IfElifElse(nn.Module):
    """Branches on `.item()`, `bool(t)` and `.any()`; arms assign the same names."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x):
        h = self.a(x)
        if h.mean().item() > 0.3:
            y = torch.relu(h)
        elif bool(h.sum() < -1.0):
            y = self.b(h)
        elif (h > 2.0).any():
            y = h * 2
        else:
            y = -h
        return y + 1


def test_if_elif_else_on_tensor_conditions():
    conversion = check_agreement(
        IfElifElse().eval(), scaled_inputs(1, 1, 4)[0], scaled_inputs(40, 1, 4, seed=1)
    )
    assert len(ops_named(conversion, dy.IfOp)) == 3


class StaticConditions(nn.Module):
    """Flags, `self.training`, shapes and loop indices fold at compile time."""

    def __init__(self, use_bias: bool):
        super().__init__()
        self.use_bias = use_bias
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))

    def forward(self, x):
        if self.training:
            x = F.dropout(x, 0.5)
        for index, layer in enumerate(self.layers):
            if index % 2 == 0 and x.shape[-1] == 4:
                x = layer(x)
        if self.use_bias:
            x = x + 1
        return x


def test_static_conditions_fold():
    conversion = check_agreement(
        StaticConditions(True).eval(), scaled_inputs(1, 2, 4)[0], scaled_inputs(3, 2, 4, seed=2)
    )
    assert not ops_named(conversion, dy.IfOp)
    assert "dropout" not in conversion.ir
    assert conversion.ir.count('dy.param "layers.1.weight"') == 0


class EarlyExit(nn.Module):
    """SDN-style: a loop over zip(ModuleList, ModuleList) returning from inside."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(6, 6) for _ in range(3))
        self.heads = nn.ModuleList(nn.Linear(6, 3) for _ in range(3))
        self.final = nn.Linear(6, 3)

    def forward(self, x):
        for index, (block, head) in enumerate(zip(self.blocks, self.heads)):
            x = torch.tanh(block(x))
            logits = head(x) * 2.0**index
            if F.softmax(logits, dim=1).max().item() >= 0.5:
                return logits, True
        return self.final(x), False


def test_early_return_from_unrolled_loop():
    samples = scaled_inputs(60, 1, 6, seed=3)
    conversion = check_agreement(EarlyExit().eval(), samples[0], samples)
    assert len(ops_named(conversion, dy.ReturnOp)) == 4


class PatienceBreak(nn.Module):
    """PABEE-style: a counter merged from two paths and a data-dependent break out of an
    unrolled loop; `previous` is None on the first iteration only."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(4))
        self.classifiers = nn.ModuleList(nn.Linear(4, 2) for _ in range(4))

    def forward(self, x):
        counter = 0
        previous = None
        for layer, classifier in zip(self.layers, self.classifiers):
            x = layer(x)
            logits = classifier(x)
            labels = logits.argmax(dim=1)
            if previous is not None and torch.all(labels.eq(previous)):
                counter += 1
            else:
                counter = 0
            previous = labels
            if counter == 2:  # impossible before the third layer: folded away
                break
        return logits, counter


def test_break_out_of_unrolled_loop_with_merged_counter():
    samples = scaled_inputs(60, 1, 4, seed=4)
    check_agreement(PatienceBreak().eval(), samples[0], samples)


class SkipOrRun(nn.Module):
    """A helper method with an early return, called per block."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
        self.gates = nn.ModuleList(nn.Linear(4, 1) for _ in range(2))

    def gated(self, block, gate, x):
        if torch.sigmoid(gate(x)).item() < 0.5:
            return x
        h = block(x)
        if h.abs().max() > 3:
            return h / 2
        return h

    def forward(self, x):
        for block, gate in zip(self.blocks, self.gates):
            x = self.gated(block, gate, x)
        return x


def test_helper_with_early_returns_is_inlined():
    samples = scaled_inputs(60, 1, 4, seed=5)
    check_agreement(SkipOrRun().eval(), samples[0], samples)


class Submodule(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x):
        y = self.linear(x)
        if y.sum() > 0:
            return y
        return torch.zeros_like(y)


class WithSubmodules(nn.Module):
    """Submodules whose forward has control flow; one is shared (its weights stored once)."""

    def __init__(self):
        super().__init__()
        self.shared = Submodule()
        self.other = Submodule()

    def forward(self, x):
        return self.shared(self.other(x)) + self.shared(x)


def test_submodules_with_control_flow_and_shared_parameters():
    samples = scaled_inputs(40, 1, 4, seed=6)
    conversion = check_agreement(WithSubmodules().eval(), samples[0], samples)
    assert sorted(conversion.params) == [
        "other.linear.bias",
        "other.linear.weight",
        "shared.linear.bias",
        "shared.linear.weight",
    ]


class GreedyDecoder(nn.Module):
    """Caption-style: a data-dependent while loop building a list, with a break."""

    def __init__(self):
        super().__init__()
        self.cell = nn.GRUCell(4, 8)
        self.embed = nn.Embedding(5, 4)
        self.vocab = nn.Linear(8, 5)

    def forward(self, x):
        h = torch.tanh(x)
        token = torch.zeros(1, dtype=torch.long)
        tokens = []
        while token.item() != 4:
            h = self.cell(self.embed(token), h)
            token = self.vocab(h).argmax(dim=1)
            tokens.append(token)
            if len(tokens) == 6:
                break
        return torch.stack(tokens, dim=1), len(tokens)


def test_while_loop_with_list_and_break():
    samples = scaled_inputs(60, 1, 8, seed=7)
    conversion = check_agreement(GreedyDecoder().eval(), samples[0], samples)
    assert ops_named(conversion, dy.WhileOp) and ops_named(conversion, dy.ListStackOp)


class ContinueInWhile(nn.Module):
    """A counted while loop on a host counter with `continue` and a data-dependent bound."""

    def forward(self, x):
        steps = 0
        total = x * 0
        while x.sum().item() > 0 and steps < 5:
            steps += 1
            x = x - 0.5
            if x.max() > 1.0:
                continue
            total = total + x
        return total, steps


def test_continue_in_staged_while():
    samples = [(torch.full((1, 3), 0.3 * i) + torch.arange(3.0) * 0.1,) for i in range(12)]
    check_agreement(ContinueInWhile().eval(), samples[5], samples)


class CondAndWhileLoop(nn.Module):
    """torch.cond (which torch-mlir cannot import) and torch.while_loop."""

    def __init__(self):
        super().__init__()
        self.deep = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
        self.step = nn.Linear(4, 4, bias=False)

    def forward(self, x):
        y = torch.cond(x.sum() > 0, self.deep, lambda t: t * 0.5, (x,))

        def not_done(i, z):
            return (i < 4) & (z.norm() > 0.5)

        def body(i, z):
            return i + 1, self.step(z) * 0.5

        count, z = torch.while_loop(not_done, body, (torch.tensor(0), y))
        return [z, count]


def test_torch_cond_and_while_loop():
    samples = scaled_inputs(40, 1, 4, seed=8)
    conversion = check_agreement(CondAndWhileLoop().eval(), samples[0], samples)
    assert ops_named(conversion, dy.WhileOp) and ops_named(conversion, dy.IfOp)


class TypesDifferButUnused(nn.Module):
    """`pooled` has different shapes on the two paths but is never read afterwards."""

    def forward(self, x):
        if x.sum() > 0:
            pooled = F.avg_pool1d(x, 2)
            y = pooled.sum(-1, keepdim=True)
        else:
            pooled = x
            y = x.mean(-1, keepdim=True)
        return y


def test_names_with_conflicting_types_are_fine_when_unread():
    samples = scaled_inputs(20, 1, 2, 4, seed=9)
    check_agreement(TypesDifferButUnused().eval(), samples[0], samples)


def test_compile_returns_a_program_with_the_models_output_structure():
    from frontends.torch import compile

    model = CondAndWhileLoop().eval()
    samples = scaled_inputs(6, 1, 4, seed=10)
    program = compile(model, samples[0], backend="interpreter")
    assert "dy.while" in program.ir
    for inputs in samples:
        result = program(*inputs)
        expected = model(*inputs)
        assert isinstance(result, list) and len(result) == 2
        torch.testing.assert_close(result[0], expected[0], rtol=1e-4, atol=1e-5)
        assert torch.equal(result[1], expected[1])


class SignedLinear(nn.Linear):
    """A library module subclassed: `super().forward` runs the library code with our weights."""

    def forward(self, x):
        y = super().forward(x)
        if y.sum() > 0:
            return y
        return -y


def test_super_forward_of_a_library_module():
    samples = scaled_inputs(20, 1, 4, seed=11)
    conversion = check_agreement(SignedLinear(4, 4).eval(), samples[0], samples)
    assert sorted(conversion.params) == ["bias", "weight"]
