"""Resolution-adaptive anytime network, RANet-style (Yang et al., CVPR 2020).

The image is first turned into features at three resolutions (32, 16 and 8 pixels).
Sub-networks run from the lowest resolution to the highest; every layer of a
higher-resolution sub-network fuses in the matching feature of the previous, coarser one
(1x1 convolution, bilinear upsampling, sum).  Two classifiers sit on each sub-network (after
its second and fourth layer), six in all.  Anytime inference returns the list of every
classifier's logits computed so far as soon as one is confident enough, with one
confidence threshold per classifier passed to ``forward`` as a Python list (as the RANet
and MSDNet dynamic-evaluation code computes them from a budget on a validation set).

Control flow: nested ``for`` loops over sub-networks and their layers; ``res.append``;
``return res`` from inside the inner loop under ``if probs.max() > threshold[classifier_idx]``
(a host counter indexing a Python-list argument); static ``is None`` and membership tests.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    confident,
    conv_bn,
    exit_temperature,
    random_images,
    recalibrate_batchnorm,
    scale_linear,
    stack_inputs,
)

#: Channels of the sub-networks, from the lowest resolution (8x8) to the highest (32x32).
CHANNELS = (64, 32, 16)
LAYERS_PER_SCALE = 4
EXIT_LAYERS = (1, 3)
#: Confidence thresholds of the six classifiers (what a budgeted evaluation would pass).
THRESHOLDS = (0.8, 0.75, 0.7, 0.65, 0.6, 0.55)


class ConvLayer(nn.Module):
    """Two 3x3 convolutions with a residual connection."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels,
                                                                       relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv(x))


class FusionLayer(ConvLayer):
    """A layer of a finer sub-network that adds the upsampled coarser feature."""

    def __init__(self, channels: int, coarse_channels: int):
        super().__init__(channels)
        self.up_conv = conv_bn(coarse_channels, channels, kernel_size=1, relu=False)

    def forward(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        coarse = F.interpolate(self.up_conv(coarse), size=x.shape[-2:], mode="bilinear",
                               align_corners=False)
        return F.relu(x + coarse + self.conv(x))


class ClassifierModule(nn.Module):
    """Strided convolutions down to 8x8, global pooling, a linear layer."""

    def __init__(self, channels: int, downsamplings: int, num_classes: int):
        super().__init__()
        layers = []
        for _ in range(downsamplings):
            layers.append(conv_bn(channels, channels * 2, stride=2))
            channels *= 2
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


class InitialLayer(nn.Module):
    """The image at 32, 16 and 8 pixels, with 16, 32 and 64 channels."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([conv_bn(3, CHANNELS[2]),
                                     conv_bn(CHANNELS[2], CHANNELS[1], stride=2),
                                     conv_bn(CHANNELS[1], CHANNELS[0], stride=2)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class RANet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.exit_layers = EXIT_LAYERS
        self.first_layer = InitialLayer()
        flows = []
        for scale, channels in enumerate(CHANNELS):
            if scale == 0:
                flows.append(nn.ModuleList(ConvLayer(channels) for _ in range(LAYERS_PER_SCALE)))
            else:
                flows.append(nn.ModuleList(FusionLayer(channels, CHANNELS[scale - 1])
                                           for _ in range(LAYERS_PER_SCALE)))
        self.scale_flows = nn.ModuleList(flows)
        self.classifiers = nn.ModuleList(
            ClassifierModule(channels, scale, num_classes)
            for scale, channels in enumerate(CHANNELS) for _ in EXIT_LAYERS)

    def forward(self, x: torch.Tensor, threshold: list[float]) -> list[torch.Tensor]:
        inputs = self.first_layer(x)  # from the highest resolution to the lowest
        res = []
        low_features = None
        classifier_idx = 0
        for scale, flow in enumerate(self.scale_flows):
            x = inputs[-1 - scale]
            features = []
            for layer_idx, layer in enumerate(flow):
                if low_features is None:  # static: the coarsest sub-network fuses nothing
                    x = layer(x)
                else:
                    x = layer(x, low_features[layer_idx])
                features.append(x)
                if layer_idx in self.exit_layers:  # static
                    logits = self.classifiers[classifier_idx](x)
                    res.append(logits)
                    probs = F.softmax(logits, dim=1)
                    if probs.max() > threshold[classifier_idx]:
                        return res
                    classifier_idx += 1
            low_features = features
        return res


def make_model() -> nn.Module:
    """Random RANet whose classifiers each answer for ~30% of the inputs reaching them.

    Classifiers are calibrated in order, each on the calibration images that the earlier
    ones (already calibrated) let through, as a cascade sees them.
    """
    torch.manual_seed(0)
    model = RANet()
    batch = stack_inputs(random_images(64, CALIBRATION_SEED))
    never = [2.0] * len(THRESHOLDS)  # no classifier is confident enough: every one runs
    recalibrate_batchnorm(model, lambda: model(batch, never))
    remaining = torch.ones(batch.shape[0], dtype=torch.bool)
    with torch.no_grad():
        all_logits = model(batch, never)
        for classifier, logits, threshold in zip(model.classifiers, all_logits, THRESHOLDS):
            scale = exit_temperature(logits[remaining], confident(threshold), 0.3)
            scale_linear(classifier.linear, scale)
            remaining &= ~confident(threshold)(logits * scale)
    return model.eval()


def make_inputs() -> tuple:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple]:
    return [(image, list(THRESHOLDS)) for (image,) in random_images(n, seed)]
