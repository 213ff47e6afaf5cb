"""The class-specific sparsity loss.

Each class ``c`` owns a small set ``S_c`` of last-layer filters (disjoint
across classes; the filters no class owns are meant to stay silent). For an
image of class ``y`` with filter norms ``n_k`` (RMS of the feature map,
:func:`frontends.nesy.model.filter_norms`)::

    L_sparse = sum_{k in S_y} max(0, tau - n_k)^2  +  sum_{k not in S_y} n_k
             + mu * ( sum_{k in S_y}      max(0, r_on  - n_k / theta_k)^2
                    + sum_{k in S_c, c != y} max(0, n_k / theta_k - r_off)^2 )

averaged over the batch; training minimizes ``CE + lambda * L_sparse``.
``theta_k`` is a running estimate (exponential moving average over training
batches, not differentiated) of the binarization threshold
``0.6 mean_k + 0.7 std_k`` that :mod:`frontends.nesy.binarize` will apply.

Why this form. Binarization with ``theta_k = 0.6 mean_k + 0.7 std_k`` loses
little when every filter's norm is two-valued: near 0 on most images and well
above the threshold on a few. The first term (a squared hinge) lifts the
owned filters of the image's class to at least ``tau``; it does not cap them,
so it never fights cross-entropy, which wants those filters large. The second
term is an L1 penalty on the other filters' norms: it pushes them down, not to
zero (docs/nesy.md has the measured share of active filter entries). Both terms are sums over filters, not means: with a
mean, each of the ~60 quiet filters would get 1/60 of the push and stay
active (measured: off-class norms kept a 95th percentile above the owned
filters' "on" level). With ``S_c`` of one filter a class needs about one
filter literal, and the threshold falls between the two levels.

The margin term (weight ``mu``) is what the first two terms miss: they act
on absolute levels, while binarization is relative to each filter's own
statistics. Without it (on mnist5k) the owned filter of another class still
crossed its threshold on 0.6-4% of the images of each class (the training
99th percentile of those norms sat at 0.8-1.4 theta), so ~13% of the test
images had two class filters on and the decision list resolved them by class
order. A stronger absolute hinge only made the network shrink all norms,
leaving the ratios unchanged. Measured against theta the margin cannot be
escaped by scaling: the owned filter must reach ``r_on`` thresholds and the
other classes' owned filters stay under ``r_off`` of theirs, with room left
for unseen images. It is tuned for ownership read off a trained network
(``warmup``); ``scratch`` uses ``mu = 0`` by default (see ``TrainConfig``).

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

from frontends.nesy.binarize import DEFAULT_ALPHA, DEFAULT_GAMMA

DEFAULT_FILTERS_PER_CLASS = 1
DEFAULT_TARGET_LEVEL = 1.0
DEFAULT_WEIGHT = 0.03
DEFAULT_MARGIN_WEIGHT = 10.0
DEFAULT_ON_RATIO = 2.0
DEFAULT_OFF_RATIO = 0.5
THRESHOLD_MOMENTUM = 0.05


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
    def __init__(
        self,
        ownership: torch.Tensor,
        target_level: float = DEFAULT_TARGET_LEVEL,
        margin_weight: float = DEFAULT_MARGIN_WEIGHT,
        on_ratio: float = DEFAULT_ON_RATIO,
        off_ratio: float = DEFAULT_OFF_RATIO,
        alpha: float = DEFAULT_ALPHA,
        gamma: float = DEFAULT_GAMMA,
    ):
        super().__init__()
        if ownership.ndim != 2 or ownership.dtype != torch.bool:
            raise ValueError("ownership must be a boolean (classes x filters) mask")
        if not 0 <= off_ratio <= on_ratio:
            raise ValueError(f"expected 0 <= off ratio <= on ratio, got {off_ratio} and {on_ratio}")
        self.register_buffer("ownership", ownership)
        self.register_buffer("owned_by_some_class", ownership.any(0))
        self.register_buffer("running_mean", torch.zeros(ownership.shape[1]))
        self.register_buffer("running_square", torch.zeros(ownership.shape[1]))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        self.target_level = target_level
        self.margin_weight = margin_weight
        self.on_ratio, self.off_ratio = on_ratio, off_ratio
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def threshold_estimate(self, norms: torch.Tensor) -> torch.Tensor:
        """Running estimate of the binarization threshold ``alpha * mean + gamma * std``.

        In training mode the batch's norms update the running mean and mean
        square first (the first batch sets them); in eval mode they are read only.
        """
        if self.training:
            momentum = 1.0 if self.batches_seen == 0 else THRESHOLD_MOMENTUM
            self.running_mean.lerp_(norms.mean(0).to(self.running_mean.dtype), momentum)
            self.running_square.lerp_(norms.pow(2).mean(0).to(self.running_square.dtype), momentum)
            self.batches_seen += 1
        std = (self.running_square - self.running_mean**2).clamp_min(0).sqrt()
        return (self.alpha * self.running_mean + self.gamma * std).clamp_min(1e-6).to(norms.dtype)

    def forward(self, norms: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if norms.ndim != 2 or norms.shape[1] != self.ownership.shape[1]:
            raise ValueError(f"norms must be (batch, {self.ownership.shape[1]}), got {tuple(norms.shape)}")
        if labels.shape != norms.shape[:1]:
            raise ValueError(f"labels must be ({norms.shape[0]},), got {tuple(labels.shape)}")
        owned = self.ownership[labels].to(norms.dtype)
        others = 1.0 - owned
        firing = (torch.relu(self.target_level - norms) ** 2 * owned).sum(1)
        quiet = (norms * others).sum(1)
        loss = firing + quiet
        if self.margin_weight:
            ratio = norms / self.threshold_estimate(norms.detach())
            foreign = self.owned_by_some_class.to(norms.dtype) * others
            below = torch.relu(self.on_ratio - ratio) ** 2 * owned
            above = torch.relu(ratio - self.off_ratio) ** 2 * foreign
            loss = loss + self.margin_weight * (below + above).sum(1)
        return loss.mean()
