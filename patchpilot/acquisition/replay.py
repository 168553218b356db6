"""Replay a recording: localise every stored frame again, annotate it, and measure.

Writes, into the output folder, one annotated PNG per frame (``frame_00000.png``; new
detections as green circles, the live run's as red crosses, labels from an optional
labeller such as a tracker), an animated ``replay.gif`` of them, and ``metrics.json``
(agreement with the live run, tips per frame, localisation time).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.acquisition.hook import FrameSubscriber, TipLocaliser
from patchpilot.acquisition.recording import RecordedLocalisation, Recording
from patchpilot.types import Frame, TipDetection

__all__ = ["Labeller", "ReplayReport", "replay_recording", "to_display_rgb"]

Labeller = Callable[[Frame, Sequence[TipDetection]], Sequence[str]]
"""Names for a frame's detections (e.g. the tracker's pipette names), one per detection."""


@dataclass(frozen=True)
class ReplayReport:
    """Where the replay wrote its outputs, and the metrics it measured."""

    out_dir: Path
    metrics_path: Path
    gif_path: Path | None
    png_paths: tuple[Path, ...]
    metrics: dict[str, Any]


def to_display_rgb(image: NDArray[Any]) -> NDArray[np.uint8]:
    """An 8-bit RGB view of a frame, stretched between its 1st and 99.8th percentiles."""
    data = np.asarray(image, dtype=np.float32)
    low, high = np.percentile(data, (1.0, 99.8))
    scale = 255.0 / max(float(high - low), 1e-6)
    grey = np.clip((data - low) * scale, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _annotate(
    frame: Frame,
    detections: Sequence[TipDetection],
    recorded: RecordedLocalisation | None,
    labels: Sequence[str],
) -> Any:
    from PIL import Image, ImageDraw

    picture = Image.fromarray(to_display_rgb(frame.image), mode="RGB")
    draw = ImageDraw.Draw(picture)
    radius = max(3.0, min(frame.width_px, frame.height_px) / 60.0)
    if recorded is not None:
        for x, y, _ in recorded.tips_px:
            draw.line((x - radius, y - radius, x + radius, y + radius), fill=(255, 60, 60))
            draw.line((x - radius, y + radius, x + radius, y - radius), fill=(255, 60, 60))
    for i, tip in enumerate(detections):
        x, y = tip.x_px, tip.y_px
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=(60, 255, 60))
        text = labels[i] if i < len(labels) else f"{tip.confidence:.2f}"
        draw.text((x + radius + 1, y - radius), text, fill=(60, 255, 60))
    draw.text((2, 2), f"#{frame.index} z={frame.focus_um:.1f}µm", fill=(255, 255, 0))
    return picture


def _match(
    replayed: Sequence[TipDetection], recorded: RecordedLocalisation
) -> tuple[list[float], int]:
    """Distances (px) of matched replayed/recorded tips, and how many stayed unmatched."""
    from scipy.optimize import linear_sum_assignment

    if not replayed or not recorded.tips_px:
        return [], len(replayed) + len(recorded.tips_px)
    a = np.array([[d.x_px, d.y_px] for d in replayed])
    b = np.array([[t[0], t[1]] for t in recorded.tips_px])
    cost = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    distances = [float(cost[r, c]) for r, c in zip(rows, cols, strict=True)]
    return distances, len(replayed) + len(recorded.tips_px) - 2 * len(distances)


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def replay_recording(
    recording: Recording,
    localiser: TipLocaliser,
    out_dir: str | Path,
    *,
    observers: Sequence[FrameSubscriber] = (),
    labeller: Labeller | None = None,
    max_frames: int | None = None,
    write_png: bool = True,
    write_gif: bool = True,
    gif_fps: float = 10.0,
    match_radius_px: float = 2.0,
    default_pixel_size_um: float | None = None,
) -> ReplayReport:
    """Localise every stored frame again and write annotated frames and metrics.

    Parameters
    ----------
    recording
        From :func:`~patchpilot.acquisition.recording.open_recording`.
    localiser
        Run on each frame, as in the live run.
    out_dir
        Created if missing.
    observers
        Called with each ``(frame, detections)`` in order (e.g. a tracker).
    labeller
        Names drawn beside each detection.
    match_radius_px
        A replayed tip within this distance of a live-run tip counts as reproduced.

    Raises
    ------
    RecordingError
        A stored frame cannot be turned into a frame (no pixel size).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    indices = recording.time_indices
    if max_frames is not None:
        indices = indices[:max_frames]
    per_frame: list[dict[str, Any]] = []
    pictures: list[Any] = []
    png_paths: list[Path] = []
    localise_ms: list[float] = []
    distances: list[float] = []
    unmatched = 0
    reproduced_frames = 0
    compared_frames = 0
    for index in indices:
        frame = recording.frame(index, default_pixel_size_um)
        started = time.perf_counter()
        detections = list(localiser.localise(frame.image, frame.pixel_size_um))
        localise_ms.append((time.perf_counter() - started) * 1000.0)
        for observer in observers:
            observer(frame, detections)
        labels = list(labeller(frame, detections)) if labeller is not None else []
        recorded = recording.localisations.get(index)
        entry: dict[str, Any] = {
            "frame_index": index,
            "focus_um": frame.focus_um,
            "tips_px": [[d.x_px, d.y_px, d.confidence] for d in detections],
            "labels": labels,
        }
        if recorded is not None:
            compared_frames += 1
            frame_distances, frame_unmatched = _match(detections, recorded)
            distances.extend(frame_distances)
            unmatched += frame_unmatched
            same = frame_unmatched == 0 and all(d <= match_radius_px for d in frame_distances)
            reproduced_frames += int(same)
            entry["recorded_tips_px"] = [list(t) for t in recorded.tips_px]
            entry["reproduced"] = same
        per_frame.append(entry)
        if write_png or write_gif:
            picture = _annotate(frame, detections, recorded, labels)
            if write_png:
                path = out / f"frame_{index:05d}.png"
                picture.save(path)
                png_paths.append(path)
            if write_gif:
                pictures.append(picture)
    gif_path: Path | None = None
    if write_gif and pictures:
        gif_path = out / "replay.gif"
        pictures[0].save(
            gif_path,
            save_all=True,
            append_images=pictures[1:],
            duration=max(1, round(1000.0 / gif_fps)),
            loop=0,
        )
    metrics: dict[str, Any] = {
        "recording": str(recording.dataset_path),
        "frames_replayed": len(indices),
        "frames_with_live_result": compared_frames,
        "frames_reproduced": reproduced_frames,
        "tips_replayed": sum(len(e["tips_px"]) for e in per_frame),
        "tips_unmatched": unmatched,
        "match_radius_px": match_radius_px,
        "discrepancy_px_mean": float(np.mean(distances)) if distances else None,
        "discrepancy_px_max": max(distances) if distances else None,
        "localise_ms_median": _percentile(localise_ms, 50),
        "localise_ms_p99": _percentile(localise_ms, 99),
        "live_latency_ms_median": _percentile(
            [
                r.latency_ms
                for r in recording.localisations.values()
                if isinstance(r.latency_ms, (int, float)) and math.isfinite(r.latency_ms)
            ],
            50,
        ),
        "per_frame": per_frame,
    }
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    return ReplayReport(
        out_dir=out,
        metrics_path=metrics_path,
        gif_path=gif_path,
        png_paths=tuple(png_paths),
        metrics=metrics,
    )
