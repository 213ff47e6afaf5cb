"""Adaptive computation time, ACT (Graves, 2016) over a small CNN encoder.

A CNN turns the image into a feature vector ``u``; a GRU cell then "ponders" on it for a
number of steps that depends on the input.  After each step a halting unit (a sigmoid
layer on the state) emits a halting probability; each sample keeps stepping until its
accumulated halting probability reaches ``1 - eps`` (or ``max_steps`` is reached), and its
output is the mean of the step states weighted by the halting probabilities, with the
remainder ``R = 1 - sum(p)`` given to the last step.  As in the paper, the first step's
input carries a binary flag that the later steps do not.

Control flow: ``while (halting < 1 - self.eps).any() and n < self.max_steps`` with a
Python-int step counter; the loop state (halting probabilities, remainders, step counts,
the weighted output, the flag) is built inside ``forward`` with ``torch.zeros`` and
``torch.tensor``, and updated with masks of the still-running samples.
"""
from __future__ import annotations

import torch
from torch import nn

from ._common import CALIBRATION_SEED, conv_bn, random_images, recalibrate_batchnorm, stack_inputs


class ACTCell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, max_steps: int = 8,
                 eps: float = 0.01):
        super().__init__()
        self.hidden_size = hidden_size
        self.max_steps = max_steps
        self.eps = eps
        self.cell = nn.GRUCell(input_size + 1, hidden_size)
        self.halting_unit = nn.Linear(hidden_size, 1)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = u.shape[0]
        state = torch.zeros(batch, self.hidden_size)
        output = torch.zeros(batch, self.hidden_size)
        halting = torch.zeros(batch)
        remainders = torch.zeros(batch)
        n_updates = torch.zeros(batch)
        flag = torch.tensor([[1.0]]).expand(batch, 1)
        n = 0
        while (halting < 1 - self.eps).any() and n < self.max_steps:
            running = (halting < 1 - self.eps).float()
            state = self.cell(torch.cat([u, flag], dim=1), state)
            flag = torch.zeros(batch, 1)
            p = torch.sigmoid(self.halting_unit(state)).squeeze(1)
            if n == self.max_steps - 1:  # the last allowed step halts every sample
                new_halted = running
            else:
                new_halted = (halting + p * running >= 1 - self.eps).float() * running
            still_running = running - new_halted
            remainders = remainders + new_halted * (1 - halting)
            update_weights = p * still_running + new_halted * (1 - halting)
            halting = halting + p * still_running + new_halted * (1 - halting)
            n_updates = n_updates + running
            output = output + update_weights.unsqueeze(1) * state
            n += 1
        return output, n_updates + remainders


class ACTNet(nn.Module):
    def __init__(self, num_classes: int = 10, hidden_size: int = 64):
        super().__init__()
        self.encoder = nn.Sequential(conv_bn(3, 16), nn.MaxPool2d(2), conv_bn(16, 32),
                                     nn.MaxPool2d(2), conv_bn(32, 32), nn.AdaptiveAvgPool2d(1),
                                     nn.Flatten())
        self.act = ACTCell(32, hidden_size)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, ponder_cost = self.act(self.encoder(x))
        return self.classifier(output)


@torch.no_grad()
def calibrate_halting(model: ACTNet, images: torch.Tensor, mean_steps: float) -> None:
    """Set the halting unit's bias so that samples ponder ``mean_steps`` steps on average.

    The number of steps falls as the bias grows; bisection on the batch mean.
    """
    bias = model.act.halting_unit.bias
    low, high = -10.0, 10.0
    for _ in range(30):
        bias.fill_((low + high) / 2)
        _, ponder_cost = model.act(model.encoder(images))
        if ponder_cost.floor().mean() > mean_steps:
            low = float(bias)
        else:
            high = float(bias)


def make_model() -> nn.Module:
    """Random ACT network that ponders 1 to ``max_steps`` steps, about 3 on average."""
    torch.manual_seed(0)
    model = ACTNet()
    batch = stack_inputs(random_images(64, CALIBRATION_SEED))
    recalibrate_batchnorm(model, lambda: model.encoder(batch))
    with torch.no_grad():
        model.act.halting_unit.weight.mul_(50.0)
    calibrate_halting(model, batch, 3.0)
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
