"""Choosing the presence threshold on the validation split (never on the test split).

A network's presence probabilities are only meaningful relative to each other; the threshold
that turns them into detections is picked after training as the one with the best F1
(precision and recall at the match gate) on validation frames, and stored in the checkpoint,
from which :class:`patchpilot.localisation.Localiser` takes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from patchpilot.localisation.checkpoint import load_checkpoint, load_model
from patchpilot.localisation.evaluation import evaluate
from patchpilot.localisation.inference import Localiser
from patchpilot.localisation.metrics import drop_dont_care, score_frame, summarise
from patchpilot.localisation.samples import SampleSet

__all__ = ["calibrate_threshold", "store_threshold"]

GRID = tuple(float(t) for t in np.round(np.arange(0.05, 0.96, 0.05), 2))


def calibrate_threshold(
    localiser: Localiser, samples: SampleSet, gate_um: float = 10.0
) -> dict[str, Any]:
    """The presence threshold with the best F1 on ``samples``, and the F1 of each candidate.

    Runs the network once with the lowest candidate threshold and re-scores the detections
    for every higher one.
    """
    original = localiser.confidence_threshold
    localiser.confidence_threshold = GRID[0]
    try:
        result = evaluate(localiser, samples, gate_um=gate_um, heatmap_iou=False)
    finally:
        localiser.confidence_threshold = original
    table = {}
    for threshold in GRID:
        scores = []
        for i, (pred, conf) in enumerate(
            zip(result.predictions_px, result.confidences, strict=True)
        ):
            size = float(samples.pixel_size_um[i])
            true = samples.required_px(i)
            kept = drop_dont_care(
                pred[conf >= threshold], true, samples.optional_segments_px(i), gate_um / size
            )
            scores.append(score_frame(kept * size, true * size))
        summary = summarise(scores, gate_um=gate_um)
        precision, recall = float(summary["precision"] or 0), float(summary["recall"] or 0)
        precision = 0.0 if np.isnan(precision) else precision
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        table[threshold] = {"f1": f1, "precision": precision, "recall": recall}
    best = max(table, key=lambda t: table[t]["f1"])
    return {"threshold": best, "f1": table[best]["f1"], "candidates": table}


def store_threshold(checkpoint: str | Path, threshold: float, details: dict[str, Any]) -> None:
    """Write the chosen threshold (and how it was chosen) into a checkpoint file."""
    from patchpilot.localisation.checkpoint import save_checkpoint

    data = load_checkpoint(checkpoint)
    model, _ = load_model(checkpoint)
    state = {
        k: v
        for k, v in data.items()
        if k
        not in (
            "format",
            "format_version",
            "preset_name",
            "preset",
            "input_size_px",
            "pixel_size_um",
            "model_state",
        )
    }
    state["presence_threshold"] = float(threshold)
    state["threshold_calibration"] = details
    save_checkpoint(checkpoint, model, **state)
