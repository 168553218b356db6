"""A recorded experiment on disk, and reading it back.

Layout of a recording folder (what :func:`open_recording` expects)::

    DIR/
      events.jsonl     the EventLog: every localisation (with frame index and axes),
                       match, command and fault of the run
      frames_1/        pycromanager's own NDTiff storage of every frame (NDTiff.index ...)

The frame images come from pycromanager's storage (``ndstorage``), untouched by patchpilot.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.acquisition._metadata import (
    focus_from_metadata,
    pixel_size_from_metadata,
    xy_from_metadata,
)
from patchpilot.events import EventKind, read_events
from patchpilot.types import Frame

__all__ = [
    "DATASET_NAME",
    "EVENTS_FILE",
    "RecordedLocalisation",
    "Recording",
    "RecordingError",
    "open_recording",
]

EVENTS_FILE = "events.jsonl"
DATASET_NAME = "frames"


class RecordingError(ValueError):
    """A folder that is not a readable recording; the message says what is missing."""


@dataclass(frozen=True)
class RecordedLocalisation:
    """What the live run found in one frame (from the event log)."""

    frame_index: int
    tips_px: tuple[tuple[float, float, float], ...]
    """(x_px, y_px, confidence) per tip."""
    focus_um: float | None
    fov_center_um: tuple[float, float] | None
    latency_ms: float | None


def _time_index(axes: Any) -> int | None:
    if isinstance(axes, Mapping) and isinstance(axes.get("time"), int):
        return int(axes["time"])
    return None


@dataclass
class Recording:
    """An opened recording: frames by time index, and the live run's localisations."""

    root: Path
    dataset_path: Path
    events_path: Path | None
    _dataset: Any = field(repr=False)
    localisations: dict[int, RecordedLocalisation] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def time_indices(self) -> list[int]:
        """Time indices of the stored frames, in order."""
        coordinates = self._dataset.get_image_coordinates_list()
        return sorted(int(c["time"]) for c in coordinates if "time" in c)

    def read(self, time_index: int) -> tuple[NDArray[Any], dict[str, Any]]:
        """The stored image and metadata of one frame."""
        image = np.asarray(self._dataset.read_image(time=time_index))
        metadata = dict(self._dataset.read_metadata(time=time_index))
        return image, metadata

    def frame(self, time_index: int, default_pixel_size_um: float | None = None) -> Frame:
        """One stored frame as a :class:`Frame` (pixel size, focus, stage from the metadata,
        else from the live run's record).

        Raises
        ------
        RecordingError
            The frame's metadata has no pixel size and no default was given.
        """
        image, metadata = self.read(time_index)
        recorded = self.localisations.get(time_index)
        pixel_size_um = pixel_size_from_metadata(metadata) or default_pixel_size_um
        if pixel_size_um is None:
            raise RecordingError(f"{self.dataset_path}: frame {time_index} has no pixel size")
        focus_um = focus_from_metadata(metadata)
        if focus_um is None and recorded is not None:
            focus_um = recorded.focus_um
        xy_um = xy_from_metadata(metadata)
        if xy_um is None and recorded is not None:
            xy_um = recorded.fov_center_um
        return Frame(
            image=image,
            index=time_index,
            timestamp_s=float(metadata.get("ElapsedTime-ms", 0.0)) / 1000.0,
            pixel_size_um=pixel_size_um,
            fov_center_um=xy_um if xy_um is not None else (0.0, 0.0),
            focus_um=focus_um if focus_um is not None else 0.0,
            metadata=metadata,
        )

    def frames(self, default_pixel_size_um: float | None = None) -> Iterator[Frame]:
        for time_index in self.time_indices:
            yield self.frame(time_index, default_pixel_size_um)

    def close(self) -> None:
        self._dataset.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _find_dataset(root: Path) -> Path:
    if (root / "NDTiff.index").is_file():
        return root
    candidates = sorted(p.parent for p in root.glob("*/NDTiff.index"))
    if not candidates:
        raise RecordingError(f"{root}: no NDTiff dataset (no */NDTiff.index) in this folder")
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise RecordingError(f"{root}: several datasets ({names}); pass the one to replay")
    return candidates[0]


def _localisations(events: list[dict[str, Any]]) -> dict[int, RecordedLocalisation]:
    found: dict[int, RecordedLocalisation] = {}
    for event in events:
        if event.get("kind") != EventKind.LOCALISATION.value:
            continue
        index = _time_index(event.get("axes"))
        if index is None:
            index = event.get("frame_index") if isinstance(event.get("frame_index"), int) else None
        if index is None:
            continue
        fov = event.get("fov_center_um")
        found[index] = RecordedLocalisation(
            frame_index=index,
            tips_px=tuple(
                (float(t[0]), float(t[1]), float(t[2])) for t in event.get("tips_px", [])
            ),
            focus_um=event.get("focus_um"),
            fov_center_um=(float(fov[0]), float(fov[1])) if isinstance(fov, list) else None,
            latency_ms=event.get("latency_ms"),
        )
    return found


def open_recording(path: str | Path) -> Recording:
    """Open a recording folder (or an NDTiff dataset folder directly).

    Raises
    ------
    RecordingError
        The folder does not exist, holds no (or several) NDTiff datasets, or the dataset
        cannot be read or holds no frames.
    """
    from ndstorage import NDTiffDataset

    root = Path(path)
    if not root.is_dir():
        raise RecordingError(f"{root}: not a folder")
    dataset_path = _find_dataset(root)
    events_path = next(
        (p for p in (root / EVENTS_FILE, dataset_path.parent / EVENTS_FILE) if p.is_file()),
        None,
    )
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # ndstorage prints "Reading index..."
            dataset = NDTiffDataset(str(dataset_path))
    except Exception as exc:
        raise RecordingError(f"{dataset_path}: cannot read the NDTiff dataset ({exc})") from exc
    if not dataset.get_image_coordinates_list():
        dataset.close()
        raise RecordingError(f"{dataset_path}: the NDTiff dataset holds no frames")
    events = list(read_events(events_path)) if events_path is not None else []
    return Recording(
        root=root,
        dataset_path=dataset_path,
        events_path=events_path,
        _dataset=dataset,
        localisations=_localisations(events),
        events=events,
    )
