import numpy as np
import pytest
import torch

from frontends.nesy.binarize import binarize, thresholds
from frontends.nesy.errors import NesyError
from frontends.nesy.model import filter_norms


def test_thresholds_follow_nesyfold_formula():
    norms = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    expected = 0.6 * norms.mean(0) + 0.7 * norms.std(0)
    assert np.allclose(thresholds(norms), expected)
    assert binarize(norms, thresholds(norms)).tolist() == [[False, False], [False, False], [True, True]]


def test_shape_errors():
    with pytest.raises(NesyError, match="non-empty"):
        thresholds(np.zeros((0, 3)))
    with pytest.raises(NesyError, match="do not match 3 thresholds"):
        binarize(np.zeros((2, 4)), np.zeros(3))


def test_filter_norm_is_feature_map_rms():
    maps = torch.zeros(1, 2, 2, 2)
    maps[0, 0] = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    assert filter_norms(maps)[0, 0].item() == pytest.approx(np.sqrt(25 / 4))
    assert filter_norms(maps)[0, 1].item() == pytest.approx(0.0, abs=1e-5)
