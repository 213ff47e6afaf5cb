import torch
from torch import nn


class Refine(nn.Module):
    def __init__(self):
        super().__init__()
        self.step = nn.Linear(4, 4)

    def forward(self, x):
        steps = 0
        while x.abs().sum() > 1.0 and steps < 5:
            x = torch.tanh(self.step(x)) * 0.5
            steps += 1
        return x, steps


def make_model():
    torch.manual_seed(0)
    return Refine()


def make_inputs():
    return (torch.randn(2, 4) * 3,)
