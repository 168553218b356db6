"""Training losses: Dice or focal on the heatmap, Hungarian distance, presence, offsets.

The paper's objective is ``Dice(heatmap) + lambda * Hungarian distance`` (lambda 0.15). A
presence BCE is added so that the number of tips is predicted: slots matched to a true tip
should say "present", the others "absent". The matching is recomputed each step with
:func:`patchpilot.localisation.matching.match_points` on the detached predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from patchpilot.localisation.heatmap import gaussian_heatmap_torch
from patchpilot.localisation.matching import match_points
from patchpilot.localisation.output import LocaliserOutput

__all__ = [
    "LossSpec",
    "TipTargets",
    "compute_loss",
    "dice_loss",
    "focal_heatmap_loss",
    "hungarian_distance_loss",
    "match_slots",
    "offset_loss",
    "presence_loss",
]

HeatmapLoss = Literal["dice", "focal"]


@dataclass(frozen=True)
class LossSpec:
    """Weights of the loss terms (a term with weight 0 is skipped).

    ``match_gate_px``: matched slot/tip pairs farther apart than this (input pixels) count
    as unmatched (used by peak-based models whose slots can only move locally).
    """

    heatmap: HeatmapLoss = "dice"
    heatmap_weight: float = 1.0
    distance_weight: float = 0.15
    presence_weight: float = 1.0
    offset_weight: float = 0.0
    match_gate_px: float | None = None
    sigma_px: float = 10.0
    ignore_radius_px: float = 10.0
    """Heatmap cells this close to a don't-care segment (an out-of-focus tip) carry no loss."""


@dataclass(frozen=True)
class TipTargets:
    """Padded true tips of a batch: ``tips_px`` (B, N, 2) and ``valid`` (B, N) bool, plus
    optional don't-care segments ``ignore_px`` (B, M, 4: x0, y0, x1, y1) with flags
    ``ignore_valid`` (B, M)."""

    tips_px: torch.Tensor
    valid: torch.Tensor
    ignore_px: torch.Tensor | None = None
    ignore_valid: torch.Tensor | None = None


def dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Dice loss ``1 - (2 sum(p t) + eps) / (sum p^2 + sum t^2 + eps)``, mean over the batch.

    The squared denominator (Milletari et al.'s V-Net form) makes the loss exactly zero at
    ``p == t`` for a soft Gaussian target (the plain form would push ``p`` to a binary mask);
    ``eps`` keeps it defined, and pushing the map to zero, on frames without tips.
    """
    dims = tuple(range(1, prob.ndim))
    inter = (prob * target).sum(dims)
    total = (prob**2).sum(dims) + (target**2).sum(dims)
    return (1.0 - (2.0 * inter + eps) / (total + eps)).mean()


def focal_heatmap_loss(
    logit: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 2.0,
    beta: float = 4.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss; cells with target 1 are the positives and
    cells with ``weight`` 0 are ignored."""
    prob = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    pos = target >= 1.0
    log_p = F.logsigmoid(logit)
    log_not_p = F.logsigmoid(-logit)
    pos_loss = -((1 - prob) ** alpha) * log_p * pos
    neg_loss = -((1 - target) ** beta) * prob**alpha * log_not_p * (~pos)
    if weight is not None:
        neg_loss = neg_loss * weight
    n_pos = pos.sum().clamp(min=1)
    return (pos_loss.sum() + neg_loss.sum()) / n_pos


def match_slots(
    tips_px: torch.Tensor, targets: TipTargets, gate_px: float | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Hungarian matching of each sample's K slots to its valid true tips.

    Returns per sample (slot indices, true-tip indices), computed on detached values.
    """
    pred = tips_px.detach().float().cpu().numpy()
    true = targets.tips_px.detach().float().cpu().numpy()
    valid = targets.valid.detach().cpu().numpy()
    pairs = []
    for b in range(pred.shape[0]):
        true_index = np.flatnonzero(valid[b])
        match = match_points(pred[b], true[b, true_index], gate=gate_px)
        pairs.append((match.pred_index, true_index[match.true_index]))
    return pairs


def hungarian_distance_loss(
    tips_px: torch.Tensor,
    targets: TipTargets,
    pairs: list[tuple[np.ndarray, np.ndarray]],
) -> torch.Tensor:
    """Mean Euclidean distance (input pixels) over the matched slot/tip pairs."""
    batch, slot, tip = _pair_indices(pairs, tips_px.device)
    if batch.numel() == 0:
        return tips_px.sum() * 0.0
    diff = tips_px[batch, slot] - targets.tips_px[batch, tip].to(tips_px.dtype)
    return torch.sqrt((diff**2).sum(-1) + 1e-6).mean()


def presence_loss(
    presence_logit: torch.Tensor, pairs: list[tuple[np.ndarray, np.ndarray]]
) -> torch.Tensor:
    """BCE: matched slots are present (1), all other slots absent (0)."""
    target = torch.zeros_like(presence_logit)
    batch, slot, _ = _pair_indices(pairs, presence_logit.device)
    target[batch, slot] = 1.0
    return F.binary_cross_entropy_with_logits(presence_logit, target)


def offset_loss(offset: torch.Tensor, targets: TipTargets, stride: int) -> torch.Tensor:
    """L1 on sub-cell offsets (in cells) in the 3 x 3 cells around each true tip.

    Training the neighbours too means a peak one cell off still points at the tip.
    """
    _, _, rows, cols = offset.shape
    tips = targets.tips_px.to(offset.dtype)
    centre = (tips - (stride - 1) / 2.0) / stride  # tip position in cell units
    base = torch.round(centre)
    losses = []
    for dv in (-1, 0, 1):
        for du in (-1, 0, 1):
            cell = base + torch.tensor([du, dv], device=offset.device, dtype=offset.dtype)
            inside = (
                targets.valid
                & (cell[..., 0] >= 0)
                & (cell[..., 0] <= cols - 1)
                & (cell[..., 1] >= 0)
                & (cell[..., 1] <= rows - 1)
            )
            batch, slot = torch.nonzero(inside, as_tuple=True)
            if batch.numel() == 0:
                continue
            u = cell[batch, slot, 0].long()
            v = cell[batch, slot, 1].long()
            pred = offset[batch, :, v, u]  # (n, 2)
            want = centre[batch, slot] - cell[batch, slot]
            losses.append((pred - want).abs().sum(-1))
    if not losses:
        return offset.sum() * 0.0
    return torch.cat(losses).mean()


def compute_loss(
    output: LocaliserOutput,
    targets: TipTargets,
    spec: LossSpec,
    terms: frozenset[str] = frozenset({"heatmap", "distance", "presence", "offset"}),
) -> dict[str, torch.Tensor]:
    """All active loss terms and their weighted sum under ``"total"``.

    Parameters
    ----------
    output
        The network's forward pass on the batch.
    targets
        True tips in input pixels of the same batch.
    spec
        Term weights, heatmap loss kind, heatmap sigma and match gate.
    terms
        The terms a training stage uses (e.g. only ``heatmap`` while training the coarse
        learner alone).
    """
    parts: dict[str, torch.Tensor] = {}
    if "heatmap" in terms and output.heatmap_logit is not None and spec.heatmap_weight > 0:
        logit = output.heatmap_logit
        stride = output.heatmap_stride
        target = heatmap_target(logit.shape[-2:], targets, spec, stride)
        weight = ignore_weight(logit.shape[-2:], targets, spec.ignore_radius_px, stride)
        if spec.heatmap == "dice":
            prob = torch.sigmoid(logit.float())
            if weight is not None:
                prob, target = prob * weight, target * weight
            parts["heatmap"] = dice_loss(prob, target)
        else:
            parts["heatmap"] = focal_heatmap_loss(logit.float(), target, weight=weight)
    needs_match = ("distance" in terms and spec.distance_weight > 0) or (
        "presence" in terms and spec.presence_weight > 0
    )
    if needs_match:
        pairs = match_slots(output.tips_px, targets, spec.match_gate_px)
        if "distance" in terms and spec.distance_weight > 0:
            parts["distance"] = hungarian_distance_loss(output.tips_px.float(), targets, pairs)
        if "presence" in terms and spec.presence_weight > 0:
            parts["presence"] = presence_loss(output.presence_logit.float(), pairs)
    if "offset" in terms and output.offset is not None and spec.offset_weight > 0:
        parts["offset"] = offset_loss(output.offset.float(), targets, output.heatmap_stride)
    weights = {
        "heatmap": spec.heatmap_weight,
        "distance": spec.distance_weight,
        "presence": spec.presence_weight,
        "offset": spec.offset_weight,
    }
    if not parts:
        raise ValueError(f"no loss term is active for terms {sorted(terms)}")
    parts["total"] = sum((weights[k] * v for k, v in parts.items()), torch.zeros(()))
    return parts


def heatmap_target(
    shape: torch.Size | tuple[int, ...], targets: TipTargets, spec: LossSpec, stride: int
) -> torch.Tensor:
    """The Gaussian target at the heatmap's resolution; for focal loss the cell nearest
    each tip is set to exactly 1 (the positive)."""
    rows, cols = int(shape[0]), int(shape[1])
    target = gaussian_heatmap_torch(
        targets.tips_px, targets.valid, (rows, cols), spec.sigma_px, stride
    )
    if spec.heatmap == "focal":
        cell = torch.round((targets.tips_px - (stride - 1) / 2.0) / stride).long()
        u = cell[..., 0].clamp(0, cols - 1)
        v = cell[..., 1].clamp(0, rows - 1)
        batch, slot = torch.nonzero(targets.valid, as_tuple=True)
        target[batch, 0, v[batch, slot], u[batch, slot]] = 1.0
    return target


def ignore_weight(
    shape: torch.Size | tuple[int, ...], targets: TipTargets, radius_px: float, stride: int
) -> torch.Tensor | None:
    """(B, 1, h, w): 0 within ``radius_px`` of a don't-care segment, else 1 (None if the
    batch has no such segment)."""
    if targets.ignore_px is None or targets.ignore_valid is None or not targets.ignore_valid.any():
        return None
    rows, cols = int(shape[0]), int(shape[1])
    device = targets.ignore_px.device
    ys = torch.arange(rows, device=device, dtype=torch.float32) * stride + (stride - 1) / 2.0
    xs = torch.arange(cols, device=device, dtype=torch.float32) * stride + (stride - 1) / 2.0
    px = xs.view(1, 1, 1, cols)
    py = ys.view(1, 1, rows, 1)
    seg = targets.ignore_px.float()
    ax, ay = seg[..., 0, None, None], seg[..., 1, None, None]
    dx, dy = (
        (seg[..., 2] - seg[..., 0])[..., None, None],
        (seg[..., 3] - seg[..., 1])[..., None, None],
    )
    length2 = (dx**2 + dy**2).clamp(min=1e-9)
    t = (((px - ax) * dx + (py - ay) * dy) / length2).clamp(0.0, 1.0)
    dist2 = (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2  # (B, M, rows, cols)
    near = (dist2 <= radius_px**2) & targets.ignore_valid[..., None, None]
    return (~near.any(dim=1, keepdim=True)).float()


def _pair_indices(
    pairs: list[tuple[np.ndarray, np.ndarray]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    batch = [np.full(len(s), b) for b, (s, _) in enumerate(pairs)]
    slots = [s for s, _ in pairs]
    tips = [t for _, t in pairs]

    def cat(xs: list[np.ndarray]) -> torch.Tensor:
        return torch.as_tensor(np.concatenate(xs) if xs else np.zeros(0), device=device)

    return cat(batch).long(), cat(slots).long(), cat(tips).long()
