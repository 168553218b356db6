"""Evaluate a localiser end to end on labelled frames: metrics, table, JSON, worst cases.

Frames go through the same :class:`Localiser` path a rig uses (resampling, tiling, merging),
and predictions are compared with the in-frame, in-focus true tips in µm using the frame's
own pixel size; out-of-focus tips are "don't care" (see :mod:`patchpilot.localisation.metrics`
for the definitions and why). ``EvaluationResult.strict`` scores the same detections with
every in-frame tip required and nothing dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.localisation.heatmap import gaussian_heatmap
from patchpilot.localisation.inference import Localiser, PreparedFrame
from patchpilot.localisation.metrics import (
    DEFAULT_THRESHOLDS_UM,
    FrameScore,
    drop_dont_care,
    score_frame,
    summarise,
    summarise_by_count,
)
from patchpilot.localisation.preprocess import to_scaled_px
from patchpilot.localisation.samples import SampleSet

__all__ = ["EvaluationResult", "evaluate", "plot_worst", "results_table"]


@dataclass
class EvaluationResult:
    """Metrics per group (``all``, ``1``, ``2``...) plus per-frame detail for worst cases."""

    groups: dict[str, dict[str, float | int | None]]
    frames: list[FrameScore]
    predictions_px: list[NDArray[np.float64]]
    gate_um: float
    info: dict[str, Any] = field(default_factory=dict)
    strict: dict[str, float | int | None] = field(default_factory=dict)
    confidences: list[NDArray[np.float64]] = field(default_factory=list)

    @property
    def overall(self) -> dict[str, float | int | None]:
        return self.groups["all"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (NaN becomes null)."""
        data: dict[str, Any] = _jsonable(
            {
                "info": self.info,
                "gate_um": self.gate_um,
                "groups": self.groups,
                "strict_all_in_frame_tips": self.strict,
            }
        )
        return data

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def evaluate(
    localiser: Localiser,
    samples: SampleSet,
    *,
    gate_um: float = 10.0,
    thresholds_um: Sequence[float] = DEFAULT_THRESHOLDS_UM,
    batch_frames: int = 8,
    heatmap_iou: bool = True,
) -> EvaluationResult:
    """Run ``localiser`` on every frame of ``samples`` and score it.

    Parameters
    ----------
    localiser
        The localiser under test.
    samples
        Labelled frames (any sizes and pixel sizes).
    gate_um
        Matches farther than this are a miss plus a false detection for precision/recall.
    thresholds_um
        Accuracy thresholds.
    batch_frames
        Frames per network call.
    heatmap_iou
        Also score the heatmap (soft IoU) where the network has one.
    """
    scores: list[FrameScore] = []
    strict: list[FrameScore] = []
    predictions: list[NDArray[np.float64]] = []
    confidences: list[NDArray[np.float64]] = []
    for first in range(0, len(samples), batch_frames):
        indices = range(first, min(first + batch_frames, len(samples)))
        prepared = [
            localiser.prepare(samples.images[i], float(samples.pixel_size_um[i])) for i in indices
        ]
        out = localiser.infer(prepared, with_heatmap=heatmap_iou)
        for i, frame, detections, heat in zip(
            indices, prepared, out.detections, out.heatmaps, strict=True
        ):
            size = float(samples.pixel_size_um[i])
            pred_px = np.array([(d.x_px, d.y_px) for d in detections]).reshape(-1, 2)
            true_px = samples.required_px(i)
            iou = None if heat is None else _heatmap_iou(frame, heat, true_px, localiser)
            kept = drop_dont_care(pred_px, true_px, samples.optional_segments_px(i), gate_um / size)
            scores.append(score_frame(kept * size, true_px * size, iou))
            strict.append(score_frame(pred_px * size, samples.tips_px[i] * size))
            predictions.append(pred_px)
            confidences.append(np.array([d.confidence for d in detections]))
    info = {
        "preset": localiser.preset.name,
        "backend": localiser.backend,
        "n_frames": len(samples),
        "data": samples.provenance,
        "checkpoint": localiser.info.get("checkpoint"),
        "thresholds_um": list(thresholds_um),
    }
    groups = summarise_by_count(scores, thresholds_um, gate_um)
    strict_summary = summarise(strict, thresholds_um, gate_um)
    return EvaluationResult(groups, scores, predictions, gate_um, info, strict_summary, confidences)


def _heatmap_iou(
    frame: PreparedFrame,
    heat: NDArray[np.float32],
    true_px: NDArray[np.float64],
    localiser: Localiser,
) -> float:
    """Soft IoU of predicted and target heatmaps over the frame's part of every tile."""
    scaled = to_scaled_px(true_px, frame.scale)
    tile_rows, tile_cols = frame.grid.shape
    stride = tile_cols // heat.shape[-1]
    inter = union = 0.0
    for index, (x0, y0) in enumerate(frame.grid.origins):
        target = gaussian_heatmap(
            scaled - np.array([x0, y0]), heat.shape[-2:], localiser.preset.sigma_px, stride
        )
        rows = math.ceil(min(tile_rows, frame.grid.rows - y0) / stride)
        cols = math.ceil(min(tile_cols, frame.grid.cols - x0) / stride)
        pred, want = heat[index, :rows, :cols], target[:rows, :cols]
        inter += float(np.minimum(pred, want).sum())
        union += float(np.maximum(pred, want).sum())
    return inter / union if union > 0 else 1.0


def results_table(results: dict[str, EvaluationResult], title: str = "Localisation") -> Any:
    """A rich table: one row per (model, pipette-count group)."""
    from rich.table import Table

    table = Table(title=title)
    for column in (
        "model",
        "pipettes",
        "frames",
        "tips",
        "mean µm",
        "≤3 µm",
        "≤5 µm",
        "≤10 µm",
        "precision",
        "recall",
        "IoU",
    ):
        table.add_column(column, justify="left" if column in ("model", "pipettes") else "right")
    for name, result in results.items():
        for group, m in result.groups.items():
            table.add_row(
                name if group == "all" else "",
                group,
                str(m["n_frames"]),
                str(m["n_true"]),
                _fmt(m["mean_distance_um"], "{:.2f}"),
                _fmt(m["within_3um"], "{:.1%}"),
                _fmt(m["within_5um"], "{:.1%}"),
                _fmt(m["within_10um"], "{:.1%}"),
                _fmt(m["precision"], "{:.1%}"),
                _fmt(m["recall"], "{:.1%}"),
                _fmt(m["heatmap_iou"], "{:.2f}"),
            )
    return table


def plot_worst(
    samples: SampleSet, result: EvaluationResult, path: str | Path, count: int = 8
) -> Path:
    """PNG of the ``count`` worst frames: true tips (green circles), out-of-focus tips with
    their don't-care segment (orange), predictions (red +)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort([-s.worst_error_um for s in result.frames], kind="stable")[:count]
    cols = min(4, max(1, len(order)))
    rows = max(1, math.ceil(len(order) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, index in zip(axes.ravel(), order, strict=False):
        score = result.frames[index]
        ax.imshow(samples.images[index], cmap="gray")
        true = samples.required_px(index)
        pred = result.predictions_px[index]
        for x0, y0, x1, y1 in samples.optional_segments_px(index):
            ax.plot([x0, x1], [y0, y1], color="orange", lw=1.0)
            ax.scatter([x0], [y0], s=60, facecolors="none", edgecolors="orange", lw=1.0)
        ax.scatter(true[:, 0], true[:, 1], s=60, facecolors="none", edgecolors="lime", lw=1.2)
        ax.scatter(pred[:, 0], pred[:, 1], s=40, marker="+", color="red", lw=1.2)
        worst = float(score.distances_um.max()) if len(score.distances_um) else 0.0
        ax.set_title(
            f"#{index}: {score.n_true} true, {score.n_pred} found\nworst pair {worst:.1f} µm",
            fontsize=8,
        )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern.format(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value
