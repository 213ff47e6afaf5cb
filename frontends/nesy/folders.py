"""Image datasets on disk, in the layouts their users hold them.

* **Class folders**, flat (`root/bathroom/*.jpg`) or nested (Places365:
  `root/a/airfield/*.jpg`, `root/a/apartment_building/outdoor/*.jpg`): a class is a folder
  that directly holds images; its name is its path below the root, without Places'
  one-letter index folder (`airfield`, `apartment_building/outdoor`). Split by seed.
* **Pre-split trees**: `root/train/`, `root/val/` (or `valid`, `validation`), `root/test/`,
  each a class-folder tree; the splits are used as they are.
* **GTSRB**: `root/Final_Training/Images/000NN/*.ppm` (class folders) and
  `root/Final_Test/Images/*.ppm` labelled by `GT-final_test.csv` (`Filename;...;ClassId`,
  next to the images or in the root); the training images are split into train and
  validation by seed, the test images are the test split.

Only file names are listed and image headers read here (the mode decides grayscale vs
RGB); pixels are read when a batch is loaded (`FileImages`), by `DataLoader` workers.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frontends.nesy.errors import NesyError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".gif")
VALIDATION_NAMES = ("val", "valid", "validation")
GRAYSCALE_MODES = ("L", "1", "I;16", "I")


@dataclass(frozen=True)
class ImageFiles:
    """Image paths with labels (indices into ``class_names``)."""

    paths: tuple[Path, ...]
    labels: np.ndarray


@dataclass(frozen=True)
class FolderLayout:
    class_names: tuple[str, ...]
    splits: dict[str, ImageFiles]
    """``all`` (to be split by seed), or ``train`` and ``test`` (+ ``validation``), or
    ``train_validation`` (to be split into train and validation) and ``test``."""
    mode: str
    """``L`` when every image is grayscale, else ``RGB``."""


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_folders(root: Path) -> dict[str, list[Path]]:
    """Every folder under ``root`` that directly holds images, by class name."""
    found: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        images = _images_in(folder)
        if images:
            found[folder.relative_to(root).as_posix()] = images
    if found and all(len(name.split("/")[0]) == 1 and "/" in name for name in found):
        found = {name.split("/", 1)[1]: paths for name, paths in found.items()}
    return found


def _files(by_class: dict[str, list[Path]], class_names: list[str]) -> ImageFiles:
    paths, labels = [], []
    for name, images in by_class.items():
        paths += images
        labels += [class_names.index(name)] * len(images)
    return ImageFiles(tuple(paths), np.array(labels, dtype=np.int64))


def discover(root: Path) -> FolderLayout:
    if not root.is_dir():
        raise NesyError(f"{root}: error: dataset folder does not exist")
    if (root / "Final_Training" / "Images").is_dir():
        return _gtsrb(root)
    children = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    if "train" in children and "test" in children:
        return _pre_split(root, children)
    subfolders = sorted(p for p in root.iterdir() if p.is_dir())
    if len(subfolders) < 2 and not any(p.is_dir() for s in subfolders for p in s.iterdir()):
        raise NesyError(f"{root}: error: expected one sub-folder per class, found {len(subfolders)}")
    by_class = class_folders(root)
    empty = [p for p in subfolders if not any(p.rglob("*.*"))]
    if empty:
        raise NesyError(f"{empty[0]}: error: class folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if len(by_class) < 2:
        raise NesyError(f"{root}: error: expected one sub-folder per class, found {len(by_class)}")
    names = list(by_class)
    files = _files(by_class, names)
    return FolderLayout(tuple(names), {"all": files}, _mode(files.paths))


def _pre_split(root: Path, children: dict[str, Path]) -> FolderLayout:
    trees = {"train": children["train"], "test": children["test"]}
    for name in VALIDATION_NAMES:
        if name in children:
            trees["validation"] = children[name]
    by_split = {split: class_folders(folder) for split, folder in trees.items()}
    names = sorted(set().union(*by_split.values()))
    if len(by_split["train"]) < 2:
        raise NesyError(f"{trees['train']}: error: expected one sub-folder per class, found {len(by_split['train'])}")
    splits = {split: _files(by_class, names) for split, by_class in by_split.items()}
    return FolderLayout(tuple(names), splits, _mode([p for f in splits.values() for p in f.paths]))


def _gtsrb(root: Path) -> FolderLayout:
    training = class_folders(root / "Final_Training" / "Images")
    names = sorted(training)
    test_folder = root / "Final_Test" / "Images"
    table = next(
        (p for p in (test_folder / "GT-final_test.csv", root / "GT-final_test.csv") if p.is_file()),
        None,
    )
    if not test_folder.is_dir() or table is None:
        raise NesyError(f"{root}: error: GTSRB needs Final_Test/Images and GT-final_test.csv (with ClassId)")
    paths, labels = [], []
    with table.open(newline="") as handle:
        rows = csv.DictReader(handle, delimiter=";")
        if rows.fieldnames is None or not {"Filename", "ClassId"} <= set(rows.fieldnames):
            raise NesyError(f"{table}:1:1: error: expected the columns Filename and ClassId")
        for line, row in enumerate(rows, start=2):
            try:
                class_id = int(row["ClassId"])
            except (TypeError, ValueError):
                raise NesyError(f"{table}:{line}:1: error: ClassId is not a number") from None
            folder = f"{class_id:05d}"
            if folder not in names:
                raise NesyError(f"{table}:{line}:1: error: class {folder} has no training folder")
            path = test_folder / row["Filename"]
            if not path.is_file():
                raise NesyError(f"{table}:{line}:1: error: no image {path}")
            paths.append(path)
            labels.append(names.index(folder))
    splits = {
        "train_validation": _files(training, names),
        "test": ImageFiles(tuple(paths), np.array(labels, dtype=np.int64)),
    }
    return FolderLayout(tuple(names), splits, _mode([p for f in splits.values() for p in f.paths]))


def _mode(paths) -> str:
    """Reads every header once (which also finds files that are not images)."""
    from PIL import Image, UnidentifiedImageError

    grayscale = True
    for path in paths:
        try:
            with Image.open(path) as image:
                grayscale &= image.mode in GRAYSCALE_MODES
        except (OSError, UnidentifiedImageError) as failure:
            raise NesyError(f"{path}: error: cannot read image ({failure})") from None
    return "L" if grayscale else "RGB"
