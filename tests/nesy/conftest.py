import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def image_folder(tmp_path):
    """A Places/GTSRB-style folder: three classes of 12 small RGB images each.

    Each class has a distinct bright quadrant, so a CNN can learn it in a
    couple of epochs.
    """
    root = tmp_path / "signs"
    rng = np.random.default_rng(0)
    for label, name in enumerate(["stop", "yield", "speed limit"]):
        (root / name).mkdir(parents=True)
        for index in range(12):
            pixels = rng.integers(0, 60, size=(20, 20, 3), dtype=np.uint8)
            row, column = divmod(label, 2)
            pixels[row * 10 : row * 10 + 10, column * 10 : column * 10 + 10, label] = 250
            Image.fromarray(pixels).save(root / name / f"{index:02d}.png")
    return root
