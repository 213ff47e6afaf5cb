"""CNN training strategies, single-process or under torchrun (DDP, gloo).

Strategies (``--strategy``):

``nesyfold``  cross-entropy only; the baseline of the NeSyFOLD paper.
``scratch``   cross-entropy + lambda * sparsity loss from the first epoch;
              filter ownership is drawn from the untrained network.
``finetune``  the ``nesyfold`` training, then half as many epochs more of
              cross-entropy + sparsity loss at 0.3x the learning rate, with
              ownership read off the trained network.
``warmup``    one third of the epochs cross-entropy only, then ownership is
              fixed and lambda ramps linearly from 0 to its full value over
              half of the remaining epochs.

``scratch`` and ``warmup`` train ``sparse_epochs`` epochs when it is set
(24 on mnist5k by default, see ``pipeline.DEFAULT_SPARSE_EPOCHS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, RandomSampler
from tqdm import tqdm

from frontends.nesy.data import ArrayImages, Dataset, ImageSet
from frontends.nesy.errors import NesyError
from frontends.nesy.model import CnnConfig, VggCnn, binarization_norms, filter_norms
from frontends.nesy.sparsity import (
    DEFAULT_FILTERS_PER_CLASS,
    DEFAULT_MARGIN_WEIGHT,
    DEFAULT_OFF_RATIO,
    DEFAULT_ON_RATIO,
    DEFAULT_TARGET_LEVEL,
    DEFAULT_WEIGHT,
    ClassSparsityLoss,
    assign_filters,
)

STRATEGIES = ("nesyfold", "scratch", "finetune", "warmup")
DEFAULT_STRATEGY = "warmup"
FINETUNE_LEARNING_RATE_SCALE = 0.3


@dataclass(frozen=True)
class TrainConfig:
    strategy: str = DEFAULT_STRATEGY
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 2e-3
    sparsity_weight: float = DEFAULT_WEIGHT
    filters_per_class: int = DEFAULT_FILTERS_PER_CLASS
    target_level: float = DEFAULT_TARGET_LEVEL
    margin_weight: float | None = None
    """None: ``DEFAULT_MARGIN_WEIGHT``, but 0 for ``scratch`` (see ``__post_init__``)."""
    on_ratio: float = DEFAULT_ON_RATIO
    off_ratio: float = DEFAULT_OFF_RATIO
    sparse_epochs: int | None = None
    """Epochs of ``scratch`` and ``warmup`` in place of ``epochs`` (None: ``epochs``)."""
    n_filters: int = 64
    seed: int = 0
    progress: bool = True
    workers: int = 0
    """DataLoader worker processes reading image files (folder datasets)."""

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise NesyError(f"unknown strategy '{self.strategy}' (expected one of {', '.join(STRATEGIES)})")
        if self.margin_weight is None:
            # The margin needs ownership read off a trained network: with the arbitrary
            # ownership of an untrained one (scratch) it stalls training (docs/nesy.md).
            default = 0.0 if self.strategy == "scratch" else DEFAULT_MARGIN_WEIGHT
            object.__setattr__(self, "margin_weight", default)
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise NesyError("epochs and batch size must be >= 1 and the learning rate > 0")
        if self.sparsity_weight < 0 or self.filters_per_class < 1 or self.target_level <= 0:
            raise NesyError("sparsity weight must be >= 0, filters per class >= 1 and target level > 0")
        if self.margin_weight < 0 or not 0 <= self.off_ratio <= self.on_ratio:
            raise NesyError("margin weight must be >= 0 and 0 <= off ratio <= on ratio")
        if self.sparse_epochs is not None and self.sparse_epochs < 1:
            raise NesyError("sparse epochs must be >= 1")


@dataclass(frozen=True)
class _Phase:
    """Epochs trained with one optimizer and one cosine learning-rate schedule."""

    name: str
    epochs: int
    learning_rate: float
    sparsity_weight: Callable[[int], float]
    """Lambda as a function of the epoch within the phase; 0 means CE only."""


def _phases(config: TrainConfig) -> list[_Phase]:
    weight, epochs, rate = config.sparsity_weight, config.epochs, config.learning_rate
    cross_entropy = _Phase("ce", epochs, rate, lambda epoch: 0.0)
    if config.strategy == "nesyfold":
        return [cross_entropy]
    if config.strategy != "finetune" and config.sparse_epochs:
        epochs = config.sparse_epochs
    if config.strategy == "scratch":
        return [_Phase("sparse", epochs, rate, lambda epoch: weight)]
    if config.strategy == "finetune":
        return [
            cross_entropy,
            _Phase("sparse", max(1, epochs // 2), rate * FINETUNE_LEARNING_RATE_SCALE, lambda epoch: weight),
        ]
    warm = max(1, epochs // 3)
    ramp = max(1, (epochs - warm) // 2)
    return [
        _Phase("ce", warm, rate, lambda epoch: 0.0),
        _Phase("sparse", max(1, epochs - warm), rate, lambda epoch: weight * min(1.0, (epoch + 1) / ramp)),
    ]


@dataclass
class TrainedCnn:
    model: VggCnn
    ownership: torch.Tensor | None
    """Boolean (classes x filters) filter ownership of the sparsity loss, if used."""
    history: list[dict] = field(default_factory=list)


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


@torch.no_grad()
def infer(
    model: VggCnn,
    images: np.ndarray | ImageSet,
    batch_size: int = 256,
    binarization: str = "rms",
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes and the filter norms (N, K) that ``binarization`` thresholds, in
    eval mode; an image set on disk is streamed through a loader with ``workers``."""
    was_training = model.training
    model.eval()
    predictions, norms = [], []
    if isinstance(images, ArrayImages):
        images = images.images
    if isinstance(images, np.ndarray):
        batches = (torch.from_numpy(images[s : s + batch_size]) for s in range(0, len(images), batch_size))
    else:
        batches = (batch for batch, _ in images.loader(batch_size, workers=workers))
    for batch in batches:
        logits, maps = model(batch)
        predictions.append(logits.argmax(1).numpy())
        norms.append(binarization_norms(maps, binarization).numpy())
    model.train(was_training)
    if not predictions:
        return np.zeros(0, dtype=np.int64), np.zeros((0, model.config.n_filters), np.float32)
    return np.concatenate(predictions), np.concatenate(norms)


def class_mean_norms(model: VggCnn, images: ImageSet, n_classes: int, workers: int = 0) -> torch.Tensor:
    _, norms = infer(model, images, workers=workers)
    means = np.stack(
        [
            norms[images.labels == c].mean(0) if (images.labels == c).any() else np.zeros(norms.shape[1])
            for c in range(n_classes)
        ]
    )
    return torch.from_numpy(means)


def train_cnn(dataset: Dataset, config: TrainConfig, pretrained: VggCnn | None = None) -> TrainedCnn:
    """Trains a CNN with ``config.strategy``; DDP when torch.distributed is up.

    ``pretrained`` may only be given for ``finetune``: it is the outcome of
    the strategy's cross-entropy phase (the ``nesyfold`` model of the same seed),
    which is then not trained again.
    """
    phases = _phases(config)
    torch.manual_seed(config.seed)
    n_classes = len(dataset.class_names)
    model = VggCnn(CnnConfig(dataset.image_shape[0], n_classes, n_filters=config.n_filters))
    if pretrained is not None:
        if config.strategy != "finetune":
            raise NesyError("a pretrained model can only seed the 'finetune' strategy")
        model.load_state_dict(pretrained.state_dict())
        phases = phases[1:]
    trained = TrainedCnn(model, None)
    train_set = dataset.train
    distributed = dist.is_initialized()
    world = dist.get_world_size() if distributed else 1
    network: nn.Module = DistributedDataParallel(model) if distributed else model
    cross_entropy = nn.CrossEntropyLoss()
    for phase in phases:
        sparsity = None
        if phase.name == "sparse":
            trained.ownership = assign_filters(
                class_mean_norms(model, dataset.train, n_classes, config.workers), config.filters_per_class
            )
            sparsity = ClassSparsityLoss(
                trained.ownership,
                config.target_level,
                config.margin_weight,
                config.on_ratio,
                config.off_ratio,
            )
        sampler = (
            DistributedSampler(train_set, seed=config.seed)
            if distributed
            else RandomSampler(train_set, generator=torch.Generator().manual_seed(config.seed))
        )
        loader = train_set.loader(max(1, config.batch_size // world), sampler=sampler, workers=config.workers)
        optimizer = torch.optim.Adam(network.parameters(), lr=phase.learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, phase.epochs * len(loader))
        epochs = tqdm(
            range(phase.epochs),
            desc=f"{config.strategy}:{phase.name}",
            disable=not config.progress or _rank() != 0,
            leave=False,
        )
        for epoch in epochs:
            if distributed:
                sampler.set_epoch(epoch)
            weight = phase.sparsity_weight(epoch)
            totals = np.zeros(3)
            for images, labels in loader:
                logits, maps = network(images)
                ce_loss = cross_entropy(logits, labels)
                loss = ce_loss
                sparse_loss = torch.zeros(())
                if sparsity is not None:
                    sparse_loss = sparsity(filter_norms(maps), labels)
                    loss = ce_loss + weight * sparse_loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                totals += (ce_loss.item(), sparse_loss.item(), 1)
            record = {
                "phase": phase.name,
                "epoch": epoch,
                "sparsity_weight": weight,
                "ce_loss": totals[0] / totals[2],
                "sparsity_loss": totals[1] / totals[2],
            }
            trained.history.append(record)
            epochs.set_postfix(ce=f"{record['ce_loss']:.3f}", sparse=f"{record['sparsity_loss']:.3f}")
    model.eval()
    return trained
