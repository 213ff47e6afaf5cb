import numpy as np
import pytest
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
