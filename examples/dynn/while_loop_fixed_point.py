"""Fixed-point (equilibrium-style) classifier iterated with ``torch.while_loop``.

A small CNN encodes the image into an injection vector ``u``; the hidden state follows
``z <- W z + u`` from the warm start ``z = u`` until the update is smaller than the
tolerance for every sample of the batch, or ``max_steps`` updates were made.  ``W`` is 0.9
times an orthogonal matrix, so each update shrinks by exactly 0.9 and the number of steps
grows with the log of the first update's size, which varies with the input's contrast:
some inputs make zero iterations, others a few, others reach ``max_steps``.

Control flow: ``torch.while_loop(cond_fn, body_fn, carried)`` whose functions are defined
inside ``forward`` and close over ``u``; the condition combines a counter test with ``.any()``.
"""
from __future__ import annotations

import torch
from torch import nn

from ._common import CALIBRATION_SEED, conv_bn, random_images, recalibrate_batchnorm, stack_inputs

HIDDEN = 64
CONTRACTION = 0.9


class FixedPointClassifier(nn.Module):
    def __init__(self, num_classes: int = 10, tolerance: float = 0.1, max_steps: int = 12):
        super().__init__()
        self.tolerance, self.max_steps = tolerance, max_steps
        self.encoder = nn.Sequential(conv_bn(3, 32, stride=2), conv_bn(32, 64, stride=2),
                                     conv_bn(64, 128, stride=2), nn.AdaptiveAvgPool2d(1),
                                     nn.Flatten(), nn.Linear(128, HIDDEN))
        self.recurrent = nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.classifier = nn.Linear(HIDDEN, num_classes)

    def update(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One fixed-point iteration."""
        return self.recurrent(z) + u

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.encoder(x)

        def not_converged(step, z, residual):
            return (step < self.max_steps) & (residual > self.tolerance).any()

        def iterate(step, z, residual):
            z_next = self.update(z, u)
            return step + 1, z_next, (z_next - z).norm(dim=1)

        z = u
        residual = (self.update(z, u) - z).norm(dim=1)
        _, z, _ = torch.while_loop(not_converged, iterate, (torch.tensor(0), z, residual))
        return self.classifier(z)


def make_model() -> nn.Module:
    """Random fixed-point model; the tolerance is the 15% quantile of the first update's size.

    That way about 15% of the inputs make no iteration and the rest make from one to
    ``max_steps``.
    """
    torch.manual_seed(0)
    model = FixedPointClassifier()
    batch = stack_inputs(random_images(32, CALIBRATION_SEED))
    recalibrate_batchnorm(model, lambda: model.encoder(batch))
    with torch.no_grad():
        orthogonal, _ = torch.linalg.qr(model.recurrent.weight)
        model.recurrent.weight.copy_(CONTRACTION * orthogonal)
        u = model.encoder(batch)
        residual = (model.update(u, u) - u).norm(dim=1)
    model.tolerance = float(torch.quantile(residual, 0.15))
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
