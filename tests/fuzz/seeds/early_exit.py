import torch
from torch import nn


class EarlyExit(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(6, 8)
        self.exit = nn.Linear(8, 3)
        self.deep = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        early = self.exit(h).softmax(-1)
        if early.max() > 0.6:
            return early
        h = torch.tanh(self.deep(h)) + h
        return self.head(h).softmax(-1)


def make_model():
    torch.manual_seed(0)
    return EarlyExit()


def make_inputs():
    return (torch.randn(1, 6),)
