"""Building blocks and calibration helpers shared by the zoo models.

The data-dependent control flow of every model lives in its own file; this module holds the
straight-line layers the models are built from and the code ``make_model`` uses to calibrate
random weights so that every branch of a model is exercised on ordinary inputs.

Why calibration: with random weights a network's activations either vanish or explode with
depth and its classifiers are near-uniform, so every input would take the same path.  We fix
that the way a trained network would look: batch-norm statistics are measured on sample
inputs, and classifier temperatures, gate biases and thresholds are set from quantiles of
the values the model computes on a dedicated calibration set (never the test inputs).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

#: Seed of the inputs ``make_model`` calibrates on; tests use other seeds.
CALIBRATION_SEED = 1234


def random_images(n: int, seed: int, size: int = 32) -> list[tuple[torch.Tensor]]:
    """``n`` CIFAR-sized 1x3xHxW images of random smoothness and contrast.

    White noise alone looks the same to a random network every time; mixing coarse and fine
    noise at varied contrast gives inputs whose features differ, hence different paths.
    """
    g = torch.Generator().manual_seed(seed)
    images = []
    for _ in range(n):
        resolution = 2 ** int(torch.randint(1, 6, (1,), generator=g))
        image = torch.randn(1, 3, resolution, resolution, generator=g)
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        contrast = 0.25 + 2.0 * float(torch.rand(1, generator=g))
        images.append((contrast * image / image.std(),))
    return images


def random_token_ids(n: int, seed: int, vocab_size: int, length: int) -> list[tuple[torch.Tensor]]:
    """``n`` 1xL token-id sequences; position 0 holds the [CLS] id 0 as in BERT."""
    g = torch.Generator().manual_seed(seed)
    sequences = []
    for _ in range(n):
        ids = torch.randint(1, vocab_size, (1, length), generator=g)
        ids[0, 0] = 0
        sequences.append((ids,))
    return sequences


def stack_inputs(inputs: list[tuple[torch.Tensor, ...]]) -> torch.Tensor:
    """Concatenate the first tensor of each input tuple along the batch dimension."""
    return torch.cat([example[0] for example in inputs])


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, run_all_layers: Callable[[], object]) -> None:
    """Set every BatchNorm's running statistics to those of one batch.

    ``run_all_layers`` must push a calibration batch through every BatchNorm of ``model``;
    it runs in training mode with cumulative averaging, then the model is put back in eval.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    run_all_layers()
    model.eval()


@torch.no_grad()
def exit_temperature(logits: torch.Tensor, exits: Callable[[torch.Tensor], torch.Tensor],
                     rate: float) -> float:
    """Scale for ``logits`` under which a fraction ``rate`` of the rows satisfies ``exits``.

    ``exits(scaled_logits) -> bool per row`` must be monotone in the scale (max-softmax
    confidence above a threshold, entropy below one).  Each row's critical scale is found by
    bisection in log space; the answer is the ``rate`` quantile of those scales.
    """
    low = torch.full((logits.shape[0],), -12.0)
    high = torch.full((logits.shape[0],), 12.0)
    for _ in range(40):
        mid = (low + high) / 2
        passed = exits(logits * mid.exp()[:, None])
        high = torch.where(passed, mid, high)
        low = torch.where(passed, low, mid)
    return math.exp(float(torch.quantile(high, rate)))


def confident(threshold: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Row-wise test ``max softmax probability >= threshold``, for :func:`exit_temperature`."""
    return lambda logits: F.softmax(logits, dim=1).amax(dim=1) >= threshold


def low_entropy(threshold: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Row-wise test ``prediction entropy < threshold``, for :func:`exit_temperature`."""
    def exits(logits: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1)
        return -(log_p.exp() * log_p).sum(dim=1) < threshold
    return exits


@torch.no_grad()
def scale_linear(layer: nn.Linear, scale: float) -> None:
    """Multiply a linear layer's output by ``scale`` (a temperature baked into the weights)."""
    layer.weight.mul_(scale)
    layer.bias.mul_(scale)


def conv_bn(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
            groups: int = 1, relu: bool = True) -> nn.Sequential:
    """Convolution + BatchNorm (+ ReLU) with 'same' padding, no conv bias."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """CIFAR ResNet basic block: two 3x3 convs plus a shortcut (1x1 conv when shapes change).

    ``residual`` and ``shortcut`` are separate attributes because the skipping models
    (SkipNet, BlockDrop) replace the whole block by its shortcut.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.residual = nn.Sequential(
            conv_bn(in_channels, out_channels, stride=stride),
            conv_bn(out_channels, out_channels, relu=False),
        )
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv_bn(in_channels, out_channels, 1, stride, relu=False)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(x) + self.shortcut(x))


def cifar_resnet_blocks(blocks_per_stage: int, widths: tuple[int, ...] = (16, 32, 64)
                        ) -> list[BasicBlock]:
    """The residual blocks of a CIFAR ResNet (depth 6n+2), flattened stage after stage."""
    blocks = []
    in_channels = widths[0]
    for stage, width in enumerate(widths):
        for index in range(blocks_per_stage):
            stride = 2 if stage > 0 and index == 0 else 1
            blocks.append(BasicBlock(in_channels, width, stride))
            in_channels = width
    return blocks


class InternalClassifier(nn.Module):
    """SDN internal classifier: mixed max/avg pooling down to at most 4x4, then a linear layer.

    The pooling only applies to feature maps wider than 4: a shape check that is static for
    any one position in the network, so a compiler can fold it per call site.
    """

    def __init__(self, channels: int, spatial_size: int, num_classes: int = 10):
        super().__init__()
        self.pooled_size = min(spatial_size, 4)
        self.alpha = nn.Parameter(torch.rand(1))
        self.linear = nn.Linear(channels * self.pooled_size ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > self.pooled_size:
            x = (self.alpha * F.adaptive_max_pool2d(x, self.pooled_size)
                 + (1 - self.alpha) * F.adaptive_avg_pool2d(x, self.pooled_size))
        return self.linear(x.flatten(1))


class TransformerLayer(nn.Module):
    """Post-LayerNorm BERT encoder layer with the attention written out in plain ops."""

    def __init__(self, hidden: int, heads: int, ffn: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        context = torch.matmul(F.softmax(scores, dim=-1), v)
        context = context.transpose(1, 2).reshape(batch, length, hidden)
        x = self.norm1(x + self.out(context))
        return self.norm2(x + self.ffn(x))


class TextEmbedding(nn.Module):
    """BERT input embedding: token + learned position embeddings, then LayerNorm."""

    def __init__(self, vocab_size: int, max_length: int, hidden: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, hidden)
        self.positions = nn.Embedding(max_length, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1])
        return self.norm(self.tokens(ids) + self.positions(positions))


@torch.no_grad()
def calibrate_gate_biases(model: nn.Module, inputs: list[tuple[torch.Tensor, ...]],
                          gate_layers: list[nn.Module], keep_rate: float,
                          rounds: int = 3) -> None:
    """Shift the bias of each gate's output layer so gates open for ``keep_rate`` of inputs.

    A gate "opens" when its output logit is positive (probability > 0.5).  The model's own
    forward runs on every calibration input while hooks record each gate layer's outputs;
    each output column's bias then moves by the ``1 - keep_rate`` quantile of its logits.
    Decisions of early gates change what later gates see, so this repeats for a few rounds.
    """
    recorded: dict[nn.Module, list[torch.Tensor]] = {layer: [] for layer in gate_layers}

    def record(layer: nn.Module, args: object, output: torch.Tensor) -> None:
        recorded[layer].append(output.flatten(1))

    hooks = [layer.register_forward_hook(record) for layer in gate_layers]
    for _ in range(rounds):
        for outputs in recorded.values():
            outputs.clear()
        for example in inputs:
            model(*example)
        for layer, outputs in recorded.items():
            layer.bias -= torch.quantile(torch.cat(outputs), 1 - keep_rate, dim=0)
    for hook in hooks:
        hook.remove()


@torch.no_grad()
def calibrate_end_token(model: nn.Module, images: torch.Tensor, stop_rate: float) -> None:
    """Raise the end token's output bias until about ``stop_rate`` of captions end early.

    Used by the captioning models (attributes ``encoder``, ``init_state``, ``embed``,
    ``lstm``, ``vocab``, ``start_token``, ``end_token``, ``max_len``).  Until greedy decoding
    emits the end token, its path does not depend on that token's logit, so one batched
    rollout with the end token masked out gives, per image, the smallest bias at which it
    would be emitted within ``max_len`` steps; the bias is set to their ``stop_rate`` quantile.
    """
    h, c = model.init_state(model.encoder(images))
    token = torch.full((images.shape[0],), model.start_token)
    gaps = []
    for _ in range(model.max_len):
        h, c = model.lstm(model.embed(token), (h, c))
        logits = model.vocab(h)
        end_logit = logits[:, model.end_token].clone()
        logits[:, model.end_token] = -math.inf
        best, token = logits.max(dim=1)
        gaps.append(best - end_logit)
    needed = torch.stack(gaps, dim=1).amin(dim=1)
    model.vocab.bias[model.end_token] += torch.quantile(needed, stop_rate)
