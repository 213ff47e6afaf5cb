"""The class-specific sparsity loss and filter ownership."""

import pytest
import torch

from frontends.nesy.sparsity import ClassSparsityLoss, assign_filters


def _ownership():
    ownership = torch.zeros(2, 4, dtype=torch.bool)
    ownership[0, 1] = ownership[1, 2] = ownership[1, 3] = True
    return ownership


def test_value_matches_formula():
    loss = ClassSparsityLoss(_ownership(), target_level=1.0, margin_weight=0.0)
    norms = torch.tensor([[0.5, 2.0, 0.0, 1.0], [1.0, 0.0, 0.5, 0.25]])
    labels = torch.tensor([0, 1])
    first = 0.0 + (0.5 + 0.0 + 1.0)
    second = (0.0 + (1.0 - 0.5) ** 2 + (1.0 - 0.25) ** 2) + (1.0 + 0.0)
    assert loss(norms, labels).item() == pytest.approx((first + second) / 2)


def test_is_zero_exactly_for_binary_class_specific_firing():
    loss = ClassSparsityLoss(_ownership(), target_level=0.7, margin_weight=0.0)
    labels = torch.tensor([1, 0, 1])
    norms = torch.tensor([0.7, 1.5, 3.0])[:, None] * _ownership()[labels].float()
    assert loss(norms, labels).item() == 0.0


def test_gradients_push_owned_filters_to_level_and_others_down():
    loss = ClassSparsityLoss(_ownership(), target_level=1.0, margin_weight=0.0)
    norms = torch.tensor([[0.3, 0.2, 0.4, 0.9], [0.3, 3.0, 0.4, 0.2]], requires_grad=True)
    loss(norms, torch.tensor([0, 0])).backward()
    gradient = norms.grad
    assert gradient[0, 1] < 0, "a weak owned filter is pushed up"
    assert gradient[1, 1] == 0, "a strong owned filter is left to cross-entropy"
    assert torch.allclose(gradient[:, [0, 2, 3]], torch.full((2, 3), 0.5)), "others pushed down evenly"


def test_gradcheck():
    loss = ClassSparsityLoss(_ownership(), margin_weight=2.0).double()
    norms = (torch.rand(5, 4, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    labels = torch.tensor([0, 1, 1, 0, 1])
    loss(norms.detach() * 1.5, labels)  # sets the running threshold estimate
    loss.eval()  # frozen from here on, so the loss is a function of the norms
    assert torch.autograd.gradcheck(lambda n: loss(n, labels), (norms,))


def test_threshold_estimate_follows_binarization_formula():
    loss = ClassSparsityLoss(_ownership())
    norms = torch.tensor([[0.0, 1.0, 2.0, 0.5], [2.0, 3.0, 0.0, 0.5]])
    expected = 0.6 * norms.mean(0) + 0.7 * norms.std(0, unbiased=False)
    assert torch.allclose(loss.threshold_estimate(norms), expected)
    loss.threshold_estimate(torch.zeros(2, 4))  # a later batch moves the estimate a little
    assert torch.allclose(loss.running_mean, 0.95 * norms.mean(0))
    loss.eval()
    frozen = loss.threshold_estimate(torch.zeros(2, 4))
    assert torch.equal(loss.threshold_estimate(norms), frozen)


def test_margin_term_penalizes_owned_below_and_foreign_above_threshold():
    ownership = torch.zeros(2, 3, dtype=torch.bool)
    ownership[0, 0] = ownership[1, 1] = True
    loss = ClassSparsityLoss(ownership, target_level=1e-9, margin_weight=1.0, on_ratio=2.0, off_ratio=0.5)
    loss.running_mean.fill_(1.0)  # threshold 0.6 * 1 + 0.7 * 0 = 0.6
    loss.running_square.fill_(1.0)
    loss.batches_seen.fill_(1)
    loss.eval()
    labels = torch.tensor([0])
    base = ClassSparsityLoss(ownership, target_level=1e-9, margin_weight=0.0)
    # owned 0.9 = 1.5 threshold (short of 2.0 by 0.5); class 1's filter 0.48 = 0.8 threshold (0.3 too high);
    # the unowned filter 2 is left to the L1 term
    norms = torch.tensor([[0.9, 0.48, 5.0]])
    margin = loss(norms, labels) - base(norms, labels)
    assert margin.item() == pytest.approx(0.5**2 + 0.3**2)
    clean = torch.tensor([[1.2, 0.3, 5.0]])
    assert (loss(clean, labels) - base(clean, labels)).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="off ratio"):
        ClassSparsityLoss(ownership, on_ratio=0.5, off_ratio=0.6)


def test_shapes_are_checked():
    loss = ClassSparsityLoss(_ownership())
    with pytest.raises(ValueError, match=r"norms must be \(batch, 4\)"):
        loss(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must be \(3,\)"):
        loss(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="boolean"):
        ClassSparsityLoss(torch.zeros(2, 4))


def test_assignment_is_disjoint_and_picks_selective_filters():
    means = torch.tensor([[5.0, 1.0, 1.0, 1.0, 0.5], [1.0, 1.0, 4.0, 3.0, 0.5]])
    owned = assign_filters(means, filters_per_class=2)
    assert owned.sum(1).tolist() == [2, 2]
    assert (owned.sum(0) <= 1).all()
    assert owned[0, 0] and owned[1, 2] and owned[1, 3]


def test_assignment_stops_when_filters_run_out():
    owned = assign_filters(torch.rand(4, 6), filters_per_class=3)
    assert owned.sum() == 6 and (owned.sum(0) == 1).all()
