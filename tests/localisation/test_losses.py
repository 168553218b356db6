"""Loss terms: zero (or minimal) at a perfect prediction, gradients reach the network."""

from __future__ import annotations

import pytest
import torch

from patchpilot.localisation import create_localiser
from patchpilot.localisation.heatmap import gaussian_heatmap_torch
from patchpilot.localisation.losses import (
    LossSpec,
    TipTargets,
    compute_loss,
    dice_loss,
    hungarian_distance_loss,
    match_slots,
    offset_loss,
    presence_loss,
)
from patchpilot.localisation.output import LocaliserOutput

TRUE = TipTargets(
    tips_px=torch.tensor([[[10.0, 20.0], [40.0, 8.0], [0.0, 0.0]]]),
    valid=torch.tensor([[True, True, False]]),
)


def test_dice_is_zero_for_a_perfect_heatmap_and_high_for_an_empty_one() -> None:
    target = gaussian_heatmap_torch(TRUE.tips_px, TRUE.valid, (32, 64), 4.0)
    assert dice_loss(target, target).item() == pytest.approx(0.0, abs=1e-3)
    assert dice_loss(torch.zeros_like(target), target).item() > 0.9


def test_distance_loss_is_permutation_invariant_and_zero_when_exact() -> None:
    slots = torch.tensor([[[40.0, 8.0], [90.0, 90.0], [10.0, 20.0], [3.0, 3.0]]])
    pairs = match_slots(slots, TRUE, gate_px=None)
    assert hungarian_distance_loss(slots, TRUE, pairs).item() == pytest.approx(0.0, abs=1e-2)
    shifted = slots + torch.tensor([3.0, 4.0])
    pairs = match_slots(shifted, TRUE, gate_px=None)
    assert hungarian_distance_loss(shifted, TRUE, pairs).item() == pytest.approx(5.0, abs=1e-3)


def test_presence_targets_follow_the_matching() -> None:
    slots = torch.tensor([[[40.0, 8.0], [90.0, 90.0], [10.0, 20.0], [3.0, 3.0]]])
    pairs = match_slots(slots, TRUE, gate_px=None)
    right = torch.tensor([[20.0, -20.0, 20.0, -20.0]])
    wrong = -right
    assert presence_loss(right, pairs).item() < 1e-6
    assert presence_loss(wrong, pairs).item() > 10.0


def test_gate_leaves_far_slots_unmatched() -> None:
    slots = torch.tensor([[[41.0, 8.0], [70.0, 70.0]]])
    pairs = match_slots(slots, TRUE, gate_px=5.0)
    assert pairs[0][0].tolist() == [0]
    assert pairs[0][1].tolist() == [1]


def test_offset_loss_zero_at_exact_offsets() -> None:
    stride = 4
    offset = torch.zeros(1, 2, 8, 16, requires_grad=True)
    targets = TipTargets(torch.tensor([[[13.5, 9.5]]]), torch.tensor([[True]]))  # a cell centre
    with torch.no_grad():
        for dv in (-1, 0, 1):
            for du in (-1, 0, 1):
                offset[0, 0, 2 + dv, 3 + du] = -du
                offset[0, 1, 2 + dv, 3 + du] = -dv
    assert offset_loss(offset, targets, stride).item() == pytest.approx(0.0, abs=1e-6)
    loss = offset_loss(offset + 0.5, targets, stride)
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    assert offset.grad is not None and offset.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["tiny", "fast"])
def test_gradients_flow_through_every_active_term(name: str) -> None:
    torch.manual_seed(0)
    model = create_localiser(name, input_size_px=64)
    images = torch.randn(2, 1, 64, 64)
    targets = TipTargets(
        torch.tensor([[[10.0, 20.0], [40.0, 30.0]], [[50.0, 50.0], [0.0, 0.0]]]),
        torch.tensor([[True, True], [True, False]]),
    )
    spec = model.preset.loss_spec()
    parts = compute_loss(model(images), targets, spec)
    assert "total" in parts and torch.isfinite(parts["total"])
    parts["total"].backward()
    # Every trainable part (coarse and fine learner) receives gradient; some residual blocks
    # start with a zero-initialised last norm, so not every single tensor does at step 0.
    for part_name, part in model.parts().items():
        grads = [p.grad for p in part.parameters()]
        touched = sum(g is not None and g.abs().sum().item() > 0 for g in grads)
        assert touched > 0.5 * len(grads), part_name


def test_stage_terms_select_losses() -> None:
    heat = torch.zeros(1, 1, 16, 16)
    output = LocaliserOutput(torch.zeros(1, 2, 2), torch.zeros(1, 2), heatmap_logit=heat)
    spec = LossSpec(heatmap="dice", sigma_px=2.0)
    only_heat = compute_loss(output, TRUE, spec, frozenset({"heatmap"}))
    assert set(only_heat) == {"heatmap", "total"}
    no_heat = compute_loss(output, TRUE, spec, frozenset({"distance", "presence"}))
    assert set(no_heat) == {"distance", "presence", "total"}
    with pytest.raises(ValueError, match="no loss term"):
        compute_loss(output, TRUE, spec, frozenset({"offset"}))
