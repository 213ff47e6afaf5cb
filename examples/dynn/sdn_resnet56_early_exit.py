"""Shallow-Deep Network on ResNet-56, served through its ``early_exit`` method.

The layout of the SDN authors' code (Kaya et al., ICML 2019), in our own words: the
network is a list of ``layers``, each a residual block that may carry an internal
classifier (IC) and returns ``(features, is_output, output)``.  ``forward`` is the training
entry point (every IC's logits); inference uses ``early_exit``, which returns
``(logits, output_id, is_early)`` from inside the loop at the first IC whose softmax
confidence on the sample reaches the threshold, and otherwise the most confident of all
outputs, picked with ``np.argmax`` over the list of 0-d confidence tensors.  A method that
is not ``forward`` is compiled by wrapping it: ``EarlyExitWrapper.forward`` calls it.

Control flow: ``for layer in self.layers`` with a static ``if is_output`` per layer; a
``return`` of a tuple (tensor, Python int, bool) from inside the loop of a method called
from another module's ``forward``; ``np.argmax`` of a list of tensors and indexing the list
of outputs with its result.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    BasicBlock,
    InternalClassifier,
    confident,
    conv_bn,
    exit_temperature,
    random_images,
    recalibrate_batchnorm,
    scale_linear,
    stack_inputs,
)

# One flag per block of the three stages: an IC after blocks 3, 7 (stage 1), 2, 6 (stage
# 2), 1 and 5 (stage 3), roughly every 15% of the depth as in the paper.
ADD_OUTPUT = ((0, 0, 0, 1, 0, 0, 0, 1, 0), (0, 0, 1, 0, 0, 0, 1, 0, 0), (0, 1, 0, 0, 0, 1, 0, 0, 0))


class BlockWOutput(nn.Module):
    """A basic residual block, optionally followed by an internal classifier."""

    def __init__(self, in_channels: int, channels: int, stride: int, add_output: bool,
                 num_classes: int, feature_size: int):
        super().__init__()
        self.block = BasicBlock(in_channels, channels, stride)
        self.no_output = not add_output
        self.output = (InternalClassifier(channels, feature_size, num_classes)
                       if add_output else None)

    def forward(self, x: torch.Tensor):
        fwd = self.block(x)
        if self.no_output:  # static: a property of the layer
            return fwd, 0, None
        return fwd, 1, self.output(fwd)


class ResNet56SDN(nn.Module):
    def __init__(self, num_classes: int = 10, confidence_threshold: float = 0.5):
        super().__init__()
        self.confidence_threshold = confidence_threshold
        self.init_conv = conv_bn(3, 16)
        layers = []
        in_channels, feature_size = 16, 32
        for stage, flags in enumerate(ADD_OUTPUT):
            channels = 16 << stage
            for index, add_output in enumerate(flags):
                stride = 2 if stage > 0 and index == 0 else 1
                feature_size //= stride
                layers.append(BlockWOutput(in_channels, channels, stride, bool(add_output),
                                           num_classes, feature_size))
                in_channels = channels
        self.layers = nn.ModuleList(layers)
        self.end_layers = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(64, num_classes))
        self.num_output = sum(map(sum, ADD_OUTPUT)) + 1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Training: the logits of every IC and of the final classifier."""
        outputs = []
        fwd = self.init_conv(x)
        for layer in self.layers:
            fwd, is_output, output = layer(fwd)
            if is_output:  # static
                outputs.append(output)
        outputs.append(self.end_layers(fwd))
        return outputs

    def early_exit(self, x: torch.Tensor):
        """Inference on one sample: the first confident IC answers."""
        confidences = []
        outputs = []
        fwd = self.init_conv(x)
        output_id = 0
        for layer in self.layers:
            fwd, is_output, output = layer(fwd)
            if is_output:  # static
                outputs.append(output)
                confidence = torch.max(nn.functional.softmax(output[0], dim=0))
                confidences.append(confidence)
                if confidence >= self.confidence_threshold:
                    is_early = True
                    return output, output_id, is_early
                output_id += is_output
        output = self.end_layers(fwd)
        outputs.append(output)
        confidences.append(torch.max(nn.functional.softmax(output[0], dim=0)))
        max_confidence_output = np.argmax(confidences)
        is_early = False
        return outputs[max_confidence_output], max_confidence_output, is_early


class EarlyExitWrapper(nn.Module):
    """Makes the SDN's ``early_exit`` the module's ``forward``."""

    def __init__(self, sdn: ResNet56SDN):
        super().__init__()
        self.sdn = sdn

    def forward(self, x: torch.Tensor):
        return self.sdn.early_exit(x)


def make_model() -> nn.Module:
    """Random ResNet-56 SDN whose ICs each stop about a quarter of the inputs reaching them."""
    torch.manual_seed(0)
    sdn = ResNet56SDN()
    batch = stack_inputs(random_images(32, CALIBRATION_SEED))
    recalibrate_batchnorm(sdn, lambda: sdn(batch))
    with torch.no_grad():
        ics = [layer.output for layer in sdn.layers if not layer.no_output]
        for ic, logits in zip(ics, sdn(batch)):
            scale_linear(ic.linear, exit_temperature(logits, confident(sdn.confidence_threshold),
                                                     0.25))
    return EarlyExitWrapper(sdn).eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
