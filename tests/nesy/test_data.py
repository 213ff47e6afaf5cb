import numpy as np
import pytest
import torch
from PIL import Image

from frontends.nesy.data import load_dataset
from frontends.nesy.errors import NesyError


def test_digits_split_is_stratified_disjoint_and_seeded():
    first = load_dataset("digits", seed=0)
    assert first.image_shape == (1, 8, 8)
    assert (len(first.train), len(first.validation), len(first.test)) == (1078, 359, 360)
    assert 0.0 <= first.train.images.min() and first.train.images.max() <= 1.0
    assert np.bincount(first.test.labels).min() >= 34
    again, other = load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert np.array_equal(first.test.images, again.test.images)
    assert not np.array_equal(first.test.images, other.test.images)
    train_rows = {row.tobytes() for row in first.train.images}
    assert sum(row.tobytes() in train_rows for row in first.test.images) < 5


def test_mnist5k_shape():
    dataset = load_dataset("mnist5k", seed=0)
    assert dataset.image_shape == (1, 28, 28)
    assert len(dataset.train) + len(dataset.validation) + len(dataset.test) == 5000


def test_image_folder_loads_classes_in_sorted_order(image_folder):
    dataset = load_dataset(f"folder:{image_folder}", seed=0, image_size=16)
    assert dataset.class_names == ("speed limit", "stop", "yield")
    assert dataset.image_shape == (3, 16, 16)
    assert len(dataset.train) + len(dataset.validation) + len(dataset.test) == 36
    assert sorted(set(dataset.test.labels.tolist())) == [0, 1, 2]


def test_grayscale_folder_has_one_channel(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for index in range(5):
            Image.fromarray(np.full((9, 9), 40 * index, np.uint8)).save(tmp_path / name / f"{index}.png")
    dataset = load_dataset(f"folder:{tmp_path}", image_size=8)
    assert dataset.image_shape == (1, 8, 8)


def test_folder_errors_name_the_path(tmp_path):
    with pytest.raises(NesyError, match=f"{tmp_path / 'missing'}: error: dataset folder does not exist"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "a").mkdir()
    with pytest.raises(NesyError, match="expected one sub-folder per class, found 1"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "b").mkdir()
    with pytest.raises(NesyError, match=f"{tmp_path / 'a'}: error: class folder holds no images"):
        load_dataset(f"folder:{tmp_path}")
    for name in ("a", "b"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name / "0.png")
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(NesyError, match=f"{tmp_path / 'b' / 'broken.png'}: error: cannot read image"):
        load_dataset(f"folder:{tmp_path}")


def test_unknown_dataset():
    with pytest.raises(NesyError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


def _save(path, value, size=(10, 10), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = size if mode == "L" else (*size, 3)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)


def test_places365_nested_class_folders(tmp_path):
    for name in ("a/airfield", "b/bathroom", "a/apartment_building/outdoor"):
        for index in range(5):
            _save(tmp_path / name / f"{index:08d}.jpg", 30 * index)
    dataset = load_dataset(f"folder:{tmp_path}", seed=0, image_size=8)
    assert dataset.class_names == ("airfield", "apartment_building/outdoor", "bathroom")
    assert len(dataset.train) + len(dataset.validation) + len(dataset.test) == 15
    images, labels = next(iter(dataset.train.loader(4, workers=2)))
    assert images.shape == (4, 3, 8, 8) and images.dtype == torch.float32 and labels.dtype == torch.int64


def test_pre_split_train_val_test_trees_are_kept(tmp_path):
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        for name in ("cat", "dog"):
            for index in range(count):
                _save(tmp_path / split / name / f"{index}.png", 50 * index, mode="L")
    dataset = load_dataset(f"folder:{tmp_path}", seed=3, image_size=8)
    assert dataset.class_names == ("cat", "dog") and dataset.image_shape == (1, 8, 8)
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (8, 4, 6)
    assert sorted(p.parent.parent.name for p in dataset.test.paths) == ["test"] * 6


def test_gtsrb_training_folders_and_test_csv(tmp_path):
    training = tmp_path / "Final_Training" / "Images"
    for class_id in (0, 1, 2):
        for index in range(4):
            _save(training / f"{class_id:05d}" / f"00000_{index:05d}.ppm", 60 * class_id)
    test = tmp_path / "Final_Test" / "Images"
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for index, class_id in enumerate([2, 0, 1, 1]):
        _save(test / f"{index:05d}.ppm", 60 * class_id)
        rows.append(f"{index:05d}.ppm;10;10;0;0;9;9;{class_id}")
    (test / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    dataset = load_dataset(f"folder:{tmp_path}", seed=0, image_size=8)
    assert dataset.class_names == ("00000", "00001", "00002")
    assert dataset.test.labels.tolist() == [2, 0, 1, 1]
    assert len(dataset.train) + len(dataset.validation) == 12 and len(dataset.validation) == 3
    images = torch.cat([batch for batch, _ in dataset.test.loader(2, workers=2)])
    assert torch.allclose(images[:, 0, 0, 0], torch.tensor([120, 0, 60, 60]) / 255.0, atol=0.02)
    (test / "GT-final_test.csv").write_text(rows[0] + "\n00000.ppm;10;10;0;0;9;9;7\n")
    with pytest.raises(NesyError, match=r"GT-final_test.csv:2:1: error: class 00007 has no training folder"):
        load_dataset(f"folder:{tmp_path}")
