"""The "coarse learner only" ablation: tips read from the coarse heatmap's peaks.

The paper's ablation drops the fine (ResNet18) learner and reads the tips off the heatmap
with ``skimage.feature.peak_local_max(min_distance, threshold_abs=0.1)``. Here the same
readout runs inside the network's forward pass (so the model plugs into the shared
``Localiser`` and evaluation): a peak is a heatmap maximum within ``min_distance_px``,
refined to sub-pixel precision by the probability-weighted centroid of its neighbourhood,
and its probability is its presence. The weights are those of a trained coarse-to-fine
checkpoint, unchanged.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from patchpilot.localisation.checkpoint import load_model
from patchpilot.localisation.models.coarse_fine import CoarseToFine
from patchpilot.localisation.output import LocaliserOutput

__all__ = ["CoarseOnly", "coarse_only_from_checkpoint", "heatmap_peaks"]

PAPER_THRESHOLD = 0.1
"""The paper's ``threshold_abs`` for heatmap peaks."""


def heatmap_peaks(
    prob: torch.Tensor, k: int, min_distance_px: int, window_px: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """The K strongest peaks of (B, 1, H, W) probabilities at stride 1.

    Parameters
    ----------
    prob
        Heatmap probabilities in [0, 1].
    k
        Number of slots returned (clipped to H * W).
    min_distance_px
        A peak is the maximum of the (2 d + 1)^2 square around it (``peak_local_max``'s
        ``min_distance``).
    window_px
        Half-side of the square whose probability-weighted centroid refines each peak.

    Returns
    -------
    tuple of torch.Tensor
        (B, K, 2) peak positions (x_px, y_px) and (B, K) peak probabilities (0 for slots
        without a peak).
    """
    batch, _, rows, cols = prob.shape
    k = min(k, rows * cols)
    size = 2 * min_distance_px + 1
    pooled = F.max_pool2d(prob, kernel_size=size, stride=1, padding=min_distance_px)
    score_map = torch.where(prob >= pooled, prob, torch.zeros_like(prob))
    score, index = score_map.view(batch, -1).topk(k, dim=1)
    side = 2 * window_px + 1
    windows = F.unfold(prob, kernel_size=side, padding=window_px)  # (B, side^2, H*W)
    local = windows.gather(2, index.unsqueeze(1).expand(-1, side * side, -1))  # (B, side^2, K)
    weight = local / local.sum(1, keepdim=True).clamp(min=1e-6)
    steps = torch.arange(-window_px, window_px + 1, dtype=prob.dtype, device=prob.device)
    du = (weight * steps.repeat(side).view(1, -1, 1)).sum(1)
    dv = (weight * steps.repeat_interleave(side).view(1, -1, 1)).sum(1)
    x = (index % cols).to(prob.dtype) + du
    y = torch.div(index, cols, rounding_mode="floor").to(prob.dtype) + dv
    return torch.stack([x, y], dim=-1), score


class CoarseOnly(CoarseToFine):
    """A coarse-to-fine network whose tips come from heatmap peaks, not the fine learner.

    ``preset.extra`` may set ``min_distance_px`` (default: the heatmap sigma, rounded).
    """

    def forward(self, images: torch.Tensor) -> LocaliserOutput:
        heatmap_logit = self.head(self.encoder(images))
        extra = dict(self.preset.extra)
        distance = int(extra.get("min_distance_px", round(self.preset.sigma_px)))
        tips, score = heatmap_peaks(torch.sigmoid(heatmap_logit), self.preset.max_tips, distance)
        presence = torch.logit(score.clamp(1e-6, 1 - 1e-6))
        return LocaliserOutput(tips, presence, heatmap_logit=heatmap_logit, heatmap_stride=1)


def coarse_only_from_checkpoint(
    path: str | Path, min_distance_px: int | None = None, threshold: float = PAPER_THRESHOLD
) -> tuple[CoarseOnly, dict[str, Any]]:
    """The coarse learner of a trained coarse-to-fine checkpoint, reading heatmap peaks.

    Returns the model (preset named ``<preset>_coarse``, ``presence_threshold`` =
    ``threshold``) and the checkpoint's contents.

    Raises
    ------
    LocaliserError
        As :func:`patchpilot.localisation.checkpoint.load_model`.
    ValueError
        If the checkpoint is not a coarse-to-fine network.
    """
    full, data = load_model(path)
    if not isinstance(full, CoarseToFine):
        raise ValueError(
            f"checkpoint {path}: preset {full.preset.name!r} has no coarse heatmap learner "
            f"(architecture {full.preset.architecture!r})"
        )
    extra = dict(full.preset.extra)
    if min_distance_px is not None:
        extra["min_distance_px"] = int(min_distance_px)
    preset = dataclasses.replace(
        full.preset,
        name=f"{full.preset.name}_coarse",
        architecture="coarse_only",
        presence_threshold=threshold,
        extra=tuple(extra.items()),
    )
    model = CoarseOnly(preset)
    model.load_state_dict(full.state_dict())
    return model.eval(), data
