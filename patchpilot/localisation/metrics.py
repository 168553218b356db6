"""Localisation metrics, in µm, with misses and spurious detections counted as errors.

Per frame the predictions are matched to the true tips by the Hungarian algorithm on
Euclidean distance (min(M, N) pairs). Then, summed over frames:

- ``mean_distance_um``: mean distance of all matched pairs (the paper's "MSE" column, which
  is a mean Euclidean distance, not a squared error).
- ``within_T_um``: pairs closer than T µm divided by sum of max(M, N) per frame; a missed tip
  or a spurious detection is therefore an error, as in the paper's accuracy.
- ``precision`` / ``recall``: pairs within the detection gate (default 10 µm) over all
  predictions / all true tips.
- ``heatmap_iou``: mean soft IoU ``sum(min(p, t)) / sum(max(p, t))`` of predicted and target
  heatmaps, where the model has a heatmap.

True tips are the in-frame tips that are in focus. An out-of-focus tip cannot be localised in
x, y from one frame (below focus its pipette seems to end where the shank crosses the focal
plane, ``|z| / tan(pitch)`` back; above focus the tip fades away), so it is "don't care": a
detection within the gate of the segment from such a tip to its visible end, and not within
the gate of a true tip, is dropped before scoring (:func:`drop_dont_care`); missing it is not
an error. :func:`summarise` of the scores made without this rule gives the strict figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from patchpilot.localisation.matching import match_points

__all__ = [
    "DEFAULT_THRESHOLDS_UM",
    "FrameScore",
    "score_frame",
    "soft_iou",
    "summarise",
    "summarise_by_count",
]

DEFAULT_THRESHOLDS_UM = (3.0, 5.0, 10.0)


@dataclass(frozen=True)
class FrameScore:
    """The matching of one frame's predictions with its true tips (µm)."""

    n_pred: int
    n_true: int
    distances_um: NDArray[np.float64]
    """Distances of the Hungarian-matched pairs (min(n_pred, n_true) values)."""
    heatmap_iou: float | None = None

    @property
    def worst_error_um(self) -> float:
        """A ranking key for worst cases: a miss or spurious tip counts as 1000 µm."""
        unmatched = abs(self.n_pred - self.n_true)
        largest = float(self.distances_um.max()) if len(self.distances_um) else 0.0
        return 1000.0 * unmatched + largest


def score_frame(
    pred_um: NDArray[np.floating] | Sequence[tuple[float, float]],
    true_um: NDArray[np.floating] | Sequence[tuple[float, float]],
    heatmap_iou: float | None = None,
) -> FrameScore:
    """Match one frame's predicted and true tip positions (both (n, 2) in µm)."""
    match = match_points(np.asarray(pred_um, float), np.asarray(true_um, float))
    return FrameScore(match.n_pred, match.n_true, match.distance, heatmap_iou)


def drop_dont_care(
    pred: NDArray[np.float64],
    true: NDArray[np.float64],
    segments: NDArray[np.float64],
    gate: float,
) -> NDArray[np.float64]:
    """Predictions (n, 2) without those explained only by a don't-care segment.

    Parameters
    ----------
    pred, true
        (n, 2) predicted and (m, 2) true tips.
    segments
        (k, 4) don't-care segments (x0, y0, x1, y1), same unit.
    gate
        Distance within which a prediction is explained by a tip or a segment.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 4)
    if len(pred) == 0 or len(segments) == 0:
        return pred
    true = np.asarray(true, dtype=np.float64).reshape(-1, 2)
    near_true = (
        np.linalg.norm(pred[:, None] - true[None], axis=-1).min(axis=1) <= gate
        if len(true)
        else np.zeros(len(pred), dtype=bool)
    )
    a, b = segments[None, :, 0:2], segments[None, :, 2:4]
    ab = b - a
    t = np.clip(((pred[:, None] - a) * ab).sum(-1) / np.maximum((ab**2).sum(-1), 1e-12), 0.0, 1.0)
    distance = np.linalg.norm(pred[:, None] - (a + t[..., None] * ab), axis=-1)
    near_segment = distance.min(axis=1) <= gate
    kept: NDArray[np.float64] = pred[near_true | ~near_segment]
    return kept


def soft_iou(pred: NDArray[np.floating], target: NDArray[np.floating]) -> float:
    """Soft IoU of two non-negative maps; 1.0 when both are empty."""
    union = float(np.maximum(pred, target).sum())
    if union <= 0:
        return 1.0
    return float(np.minimum(pred, target).sum()) / union


def summarise(
    scores: Iterable[FrameScore],
    thresholds_um: Sequence[float] = DEFAULT_THRESHOLDS_UM,
    gate_um: float = 10.0,
) -> dict[str, float | int | None]:
    """Aggregate frame scores into the metrics described in the module docstring.

    Ratios with an empty denominator are NaN (e.g. precision with no predictions).
    """
    frames = list(scores)
    n_pred = sum(s.n_pred for s in frames)
    n_true = sum(s.n_true for s in frames)
    slots = sum(max(s.n_pred, s.n_true) for s in frames)
    distances = np.concatenate([s.distances_um for s in frames]) if frames else np.zeros(0)
    gated = int((distances <= gate_um).sum())
    ious = [s.heatmap_iou for s in frames if s.heatmap_iou is not None]
    result: dict[str, float | int | None] = {
        "n_frames": len(frames),
        "n_true": n_true,
        "n_pred": n_pred,
        "mean_distance_um": float(distances.mean()) if len(distances) else float("nan"),
        "median_distance_um": float(np.median(distances)) if len(distances) else float("nan"),
        "mean_distance_gated_um": (
            float(distances[distances <= gate_um].mean()) if gated else float("nan")
        ),
    }
    for threshold in thresholds_um:
        hits = int((distances <= threshold).sum())
        result[f"within_{threshold:g}um"] = hits / slots if slots else float("nan")
    result["precision"] = gated / n_pred if n_pred else float("nan")
    result["recall"] = gated / n_true if n_true else float("nan")
    result["heatmap_iou"] = float(np.mean(ious)) if ious else None
    return result


def summarise_by_count(
    scores: Iterable[FrameScore],
    thresholds_um: Sequence[float] = DEFAULT_THRESHOLDS_UM,
    gate_um: float = 10.0,
    max_group: int = 4,
) -> dict[str, dict[str, float | int | None]]:
    """:func:`summarise` for all frames (``"all"``) and per number of true tips
    (``"0"``, ``"1"``, ..., ``"<max_group+1>+"``)."""
    frames = list(scores)
    groups: dict[str, list[FrameScore]] = defaultdict(list)
    for s in frames:
        key = str(s.n_true) if s.n_true <= max_group else f"{max_group + 1}+"
        groups[key].append(s)
    out = {"all": summarise(frames, thresholds_um, gate_um)}
    for key in sorted(groups, key=lambda k: int(k.rstrip("+"))):
        out[key] = summarise(groups[key], thresholds_um, gate_um)
    return out
