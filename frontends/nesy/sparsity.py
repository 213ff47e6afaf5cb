"""The class-specific sparsity loss.

Each class ``c`` owns a small set ``S_c`` of last-layer filters (disjoint
across classes; the filters no class owns are meant to stay silent). For an
image of class ``y`` with filter norms ``n_k`` (RMS of the feature map,
:func:`frontends.nesy.model.filter_norms`)::

    L_sparse = sum_{k in S_y} max(0, tau - n_k)^2  +  sum_{k not in S_y} n_k

averaged over the batch; training minimizes ``CE + lambda * L_sparse``.

Why this form. Binarization with ``theta_k = 0.6 mean_k + 0.7 std_k`` loses
little when every filter's norm is two-valued: near 0 on most images and well
above the threshold on a few. The first term (a squared hinge) lifts the
owned filters of the image's class to at least ``tau``; it does not cap them,
so it never fights cross-entropy, which wants those filters large. The second
term is an L1 penalty on ReLU outputs, which drives the norms of all other
filters to exactly zero. Both terms are sums over filters, not means: with a
mean, each of the ~60 quiet filters would get 1/60 of the push and stay
active (measured: off-class norms kept a 95th percentile above the owned
filters' "on" level). With ``S_c`` of one filter a class needs about one
filter literal, and the threshold falls between the two levels.

Compared with Elite BackProp (penalizing the activations of filters outside
each class's top-K), the explicit "on" term is what makes the firing
near-binary rather than merely sparse.

Ownership is fixed once, from data, when the loss is switched on:
:func:`assign_filters` gives each class the filters most selective for it
(class-mean norm over mean-of-class-means norm), greedily and without sharing.
"""

from __future__ import annotations

import torch
from torch import nn

DEFAULT_FILTERS_PER_CLASS = 1
DEFAULT_TARGET_LEVEL = 1.0
DEFAULT_WEIGHT = 0.03


def assign_filters(class_mean_norms: torch.Tensor, filters_per_class: int) -> torch.Tensor:
    """Greedy, disjoint filter ownership from a (classes x filters) table.

    Returns a boolean (classes x filters) mask with ``filters_per_class``
    filters per class (fewer only when filters run out).
    """
    n_classes, n_filters = class_mean_norms.shape
    selectivity = class_mean_norms / (class_mean_norms.mean(dim=0, keepdim=True) + 1e-8)
    owned = torch.zeros(n_classes, n_filters, dtype=torch.bool)
    filter_taken = torch.zeros(n_filters, dtype=torch.bool)
    for flat in torch.argsort(selectivity.flatten(), descending=True, stable=True).tolist():
        class_index, filter_index = divmod(flat, n_filters)
        if not filter_taken[filter_index] and owned[class_index].sum() < filters_per_class:
            owned[class_index, filter_index] = True
            filter_taken[filter_index] = True
    return owned


class ClassSparsityLoss(nn.Module):
    def __init__(self, ownership: torch.Tensor, target_level: float = DEFAULT_TARGET_LEVEL):
        super().__init__()
        if ownership.ndim != 2 or ownership.dtype != torch.bool:
            raise ValueError("ownership must be a boolean (classes x filters) mask")
        self.register_buffer("ownership", ownership)
        self.target_level = target_level

    def forward(self, norms: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if norms.ndim != 2 or norms.shape[1] != self.ownership.shape[1]:
            raise ValueError(f"norms must be (batch, {self.ownership.shape[1]}), got {tuple(norms.shape)}")
        if labels.shape != norms.shape[:1]:
            raise ValueError(f"labels must be ({norms.shape[0]},), got {tuple(labels.shape)}")
        owned = self.ownership[labels].to(norms.dtype)
        others = 1.0 - owned
        firing = (torch.relu(self.target_level - norms) ** 2 * owned).sum(1)
        quiet = (norms * others).sum(1)
        return (firing + quiet).mean()
