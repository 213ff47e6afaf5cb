"""Post-training binarization of filter norms (NeSyFOLD).

A filter ``k`` is active on an image when its norm exceeds
``theta_k = alpha * mean_k + gamma * std_k``, the statistics taken over the
training set (alpha = 0.6, gamma = 0.7 as in NeSyFOLD). The norm and the comparison
depend on the binarization (:func:`frontends.nesy.model.binarization_norms`).
"""

from __future__ import annotations

import numpy as np

from frontends.nesy.errors import NesyError

DEFAULT_ALPHA = 0.6
DEFAULT_GAMMA = 0.7


def thresholds(
    train_norms: np.ndarray, alpha: float = DEFAULT_ALPHA, gamma: float = DEFAULT_GAMMA
) -> np.ndarray:
    train_norms = np.asarray(train_norms, dtype=np.float64)
    if train_norms.ndim != 2 or train_norms.shape[0] == 0:
        raise NesyError(f"filter norms must be a non-empty (images x filters) array, got {train_norms.shape}")
    return alpha * train_norms.mean(axis=0) + gamma * train_norms.std(axis=0)


def binarize(norms: np.ndarray, filter_thresholds: np.ndarray, binarization: str = "rms") -> np.ndarray:
    """Active filters: ``norm > threshold`` (ours), ``norm >= threshold`` for NeSyFOLD's
    binarization, whose code compares with ``>=``."""
    norms = np.asarray(norms)
    if norms.ndim != 2 or norms.shape[1] != filter_thresholds.shape[0]:
        raise NesyError(
            f"filter norms of shape {norms.shape} do not match {filter_thresholds.shape[0]} thresholds"
        )
    if binarization == "nesyfold":
        return norms >= filter_thresholds
    return norms > filter_thresholds
