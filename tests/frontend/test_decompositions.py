"""Inference batch-norm is imported in the arithmetic of PyTorch's CPU kernel, so the reference
interpreter reproduces eager bit for bit, and the LLVM backend still compiles it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from frontends.torch import compile, convert, rebuild_results
from frontends.torch.api import result_tree
from runtime.interpreter import run_program


class Net(nn.Module):
    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def randomized_batch_norms(model: nn.Module) -> nn.Module:
    """Running statistics and affine parameters far from their identity defaults."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                channels = module.num_features
                module.running_mean.copy_(torch.randn(channels, generator=generator))
                module.running_var.copy_(torch.rand(channels, generator=generator) * 3 + 0.1)
                if module.affine:
                    module.weight.copy_(torch.randn(channels, generator=generator))
                    module.bias.copy_(torch.randn(channels, generator=generator))
    return model.eval()


def conv_net(affine: bool = True) -> nn.Module:
    layers: list[nn.Module] = []
    for channels_in, channels_out in [(3, 16), (16, 16), (16, 32)]:
        layers += [
            nn.Conv2d(channels_in, channels_out, 3, padding=1),
            nn.BatchNorm2d(channels_out, affine=affine),
            nn.ReLU(),
        ]
    return randomized_batch_norms(Net(*layers))


def interpret(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    conversion = convert(model, (x,))
    results = run_program(conversion.module, conversion.params, [x])
    return rebuild_results(result_tree(conversion.module), results)


@pytest.mark.parametrize(
    "model, shape",
    [
        (conv_net(), (2, 3, 17, 17)),
        (conv_net(affine=False), (1, 3, 9, 9)),
        (randomized_batch_norms(Net(nn.Linear(8, 24), nn.BatchNorm1d(24))), (4, 8)),
    ],
    ids=["conv-bn2d", "conv-bn2d-no-affine", "linear-bn1d"],
)
def test_interpreted_batch_norm_equals_eager_bit_for_bit(model, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
    assert torch.equal(interpret(model, x), expected)


def test_batch_norm_network_compiles_without_fallback(tmp_path):
    model = conv_net()
    x = torch.randn(1, 3, 17, 17, generator=torch.Generator().manual_seed(0))
    program = compile(model, (x,), cache_dir=tmp_path)
    assert (program.stats.compiled, program.stats.fallback) == (1, 0), program.stats
    assert "torch.aten.addcmul" in program.ir
    with torch.no_grad():
        torch.testing.assert_close(program(x), model(x), rtol=1e-4, atol=1e-5)


class _Selection(nn.Module):
    """Ops with nothing to decompose: BlockDrop's condition `probs[0, t] > 0.5`."""

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return p[0, 3] * 2.0 > 0.5


class _Composite(nn.Module):
    """`reshape` and `softmax` are composite ops; `linear` is in torch-mlir's table."""

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.softmax(nn.functional.linear(x.reshape(2, 8), w), dim=-1)


class _InPlace(nn.Module):
    """An in-place op: the pass makes it functional."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2.0
        y.add_(1.0)
        return y


def _imported(program) -> str:
    import torch_mlir.fx

    from frontends.torch.decompositions import BACKEND_LEGAL_OPS

    module = torch_mlir.fx.export_and_import(program, output_type="torch", func_name="s",
                                             decomposition_table={},
                                             backend_legal_ops=BACKEND_LEGAL_OPS)
    return str(module.operation).split("{-#")[0]


def test_a_stretch_with_nothing_to_decompose_skips_the_decomposition_pass():
    """Skipping it imports the same function (it costs ~0.1 s a stretch however small)."""
    from frontends.torch.decompositions import decompose, decomposition_table

    program = torch.export.export(_Selection(), (torch.rand(1, 54),), strict=False)
    assert decompose(program) is program
    assert _imported(program) == _imported(program.run_decompositions(decomposition_table()))
    composite = torch.export.export(_Composite(), (torch.rand(16), torch.rand(4, 8)),
                                    strict=False)
    decomposed = decompose(composite)
    assert decomposed is not composite
    assert _imported(decomposed) == _imported(composite.run_decompositions(decomposition_table()))
    in_place = torch.export.export(_InPlace(), (torch.rand(4),), strict=False)
    assert decompose(in_place) is not in_place
