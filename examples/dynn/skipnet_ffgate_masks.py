"""SkipNet ResNet-38 with feed-forward gates, ``forward`` as the SkipNet code writes it.

(Wang et al., ECCV 2018.)  Blocks, gates and downsampling shortcuts are attributes named
``group{g}_layer{i}``, ``group{g}_gate{i}`` and ``group{g}_ds{i}``, reached with ``getattr``
and format strings.  Every block runs; its gate (FFGate-II, evaluated on the previous
block's output) gives a hard 0/1 mask with the soft probability's gradient
(straight-through), and ``mask * block(x) + (1 - mask) * prev`` keeps either the block's
output or its input.  The masks are collected with ``masks.append(mask.squeeze())``; the gate
after the last block decides nothing, so its mask is removed with ``del masks[-1]``; the model
returns ``(logits, masks)``.  Which blocks count, hence the logits, depends on the input.

Control flow: nested ``for`` loops with a start that depends on the group
(``range(int(g == 0), ...)``); a static ``is not None`` test on a ``getattr`` result;
``del`` of a list item; a tuple of a tensor and a list of 0-d tensors returned.
"""
from __future__ import annotations

import torch
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    BasicBlock,
    conv_bn,
    random_images,
    recalibrate_batchnorm,
    stack_inputs,
)

BLOCKS_PER_GROUP = (6, 6, 6)
WIDTHS = (16, 32, 64)


class FeedforwardGateII(nn.Module):
    """Max pooling, a strided 3x3 convolution, global pooling and a 1x1 convolution to two
    logits (skip, execute); returns the straight-through hard mask and the log-probabilities."""

    def __init__(self, channels: int):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv1 = conv_bn(channels, channels, stride=2)
        self.avg_layer = nn.AdaptiveAvgPool2d(1)
        self.linear_layer = nn.Conv2d(channels, 2, kernel_size=1)
        self.prob_layer = nn.Softmax(dim=1)
        self.logprob = nn.LogSoftmax(dim=1)

    def forward(self, x: torch.Tensor):
        x = self.avg_layer(self.conv1(self.pool(x)))
        x = self.linear_layer(x).flatten(1)
        softmax = self.prob_layer(x)
        logprob = self.logprob(x)
        execute = softmax[:, 1]
        x = (execute > 0.5).float().detach() - execute.detach() + execute
        return x.view(x.size(0), 1, 1, 1), logprob


class ResNetFeedForwardSP(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.num_layers = BLOCKS_PER_GROUP
        self.conv1 = conv_bn(3, WIDTHS[0])
        in_planes = WIDTHS[0]
        for g, (blocks, planes) in enumerate(zip(BLOCKS_PER_GROUP, WIDTHS)):
            for i in range(blocks):
                stride = 2 if g > 0 and i == 0 else 1
                layer = BasicBlock(in_planes, planes, stride)
                downsample = None if isinstance(layer.shortcut, nn.Identity) else layer.shortcut
                setattr(self, f"group{g + 1}_ds{i}", downsample)
                setattr(self, f"group{g + 1}_layer{i}", layer)
                setattr(self, f"group{g + 1}_gate{i}", FeedforwardGateII(planes))
                in_planes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(WIDTHS[-1], num_classes)

    def forward(self, x: torch.Tensor):
        x = self.conv1(x)
        masks = []
        gprobs = []
        # The first block of the first group always runs.
        x = getattr(self, "group1_layer0")(x)
        mask, gprob = getattr(self, "group1_gate0")(x)
        gprobs.append(gprob)
        masks.append(mask.squeeze())
        prev = x
        for g in range(3):
            for i in range(int(g == 0), self.num_layers[g]):
                if getattr(self, "group{}_ds{}".format(g + 1, i)) is not None:  # static
                    prev = getattr(self, "group{}_ds{}".format(g + 1, i))(prev)
                x = getattr(self, "group{}_layer{}".format(g + 1, i))(x)
                prev = x = mask.expand_as(x) * x + (1 - mask).expand_as(prev) * prev
                mask, gprob = getattr(self, "group{}_gate{}".format(g + 1, i))(x)
                gprobs.append(gprob)
                masks.append(mask.squeeze())
        del masks[-1]
        x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        return self.fc(x), masks


@torch.no_grad()
def calibrate_gates(model: ResNetFeedForwardSP, images: list[tuple[torch.Tensor, ...]],
                    keep_rate: float, rounds: int = 3) -> None:
    """Shift each gate's "execute" bias so it opens for about ``keep_rate`` of the images.

    A gate opens when its execute logit exceeds its skip logit; hooks record that margin
    while the model's own ``forward`` runs, and the bias moves by its ``1 - keep_rate``
    quantile.  Earlier gates change what later ones see, hence a few rounds.
    """
    gates = [module.linear_layer for module in model.modules()
             if isinstance(module, FeedforwardGateII)]
    margins: dict[nn.Module, list[torch.Tensor]] = {gate: [] for gate in gates}

    def record(gate: nn.Module, args: object, output: torch.Tensor) -> None:
        margins[gate].append((output[:, 1] - output[:, 0]).flatten())

    hooks = [gate.register_forward_hook(record) for gate in gates]
    for _ in range(rounds):
        for recorded in margins.values():
            recorded.clear()
        for example in images:
            model(*example)
        for gate, recorded in margins.items():
            gate.bias[1] -= torch.quantile(torch.cat(recorded), 1 - keep_rate)
    for hook in hooks:
        hook.remove()


def make_model() -> nn.Module:
    """Random SkipNet whose gates each execute their block for about 60% of the images."""
    torch.manual_seed(0)
    model = ResNetFeedForwardSP()
    calibration = random_images(32, CALIBRATION_SEED)
    batch = stack_inputs(calibration)
    recalibrate_batchnorm(model, lambda: model(batch))
    calibrate_gates(model, calibration, 0.6)
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
