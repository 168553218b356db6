"""Labelled frames held in memory: the unit that training and evaluation consume.

A :class:`SampleSet` holds raw frames (any size, any pixel size), their pixel sizes and one
table of in-frame tips per frame. It is built from the simulator or from a COCO keypoints
folder (:mod:`patchpilot.localisation.sources`) and saved to / loaded from a ``.npz`` cache so
a fixed training set is rendered only once.

Each tip has ``x_px, y_px`` (``patchpilot.types`` convention), ``z_um`` (height above the
focal plane, NaN if unknown), ``required`` (True when the tip is in focus and must be found)
and ``end_px``: where the pipette's visible end lies in the focal plane. For a tip below focus
that is where its shank crosses the focal plane (``|z| / tan(pitch)`` back along the shank);
otherwise it is the tip itself. Out-of-focus tips are "don't care": neither
required in evaluation nor used as positives or negatives in training, along the segment from
the tip to that visible end (see :mod:`patchpilot.localisation.metrics`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.localisation._errors import LocaliserError

__all__ = ["SampleSet", "tip_table"]


def tip_table(
    tips_px: NDArray[np.floating] | Sequence[tuple[float, float]],
    z_um: NDArray[np.floating] | None = None,
    required: NDArray[np.bool_] | None = None,
    end_px: NDArray[np.floating] | None = None,
) -> NDArray[np.float64]:
    """One frame's (k, 6) tip table (x, y, z, required, end x, end y); defaults: z unknown,
    all required, visible end = tip."""
    xy = np.asarray(tips_px, dtype=np.float64).reshape(-1, 2)
    table = np.empty((len(xy), 6))
    table[:, 0:2] = xy
    table[:, 2] = np.nan if z_um is None else np.asarray(z_um, dtype=np.float64)
    table[:, 3] = 1.0 if required is None else np.asarray(required, dtype=np.float64)
    table[:, 4:6] = xy if end_px is None else np.asarray(end_px, dtype=np.float64).reshape(-1, 2)
    return table


@dataclass
class SampleSet:
    """Frames with their true tips.

    Attributes
    ----------
    images
        One 2D array per frame (uint16 or float32).
    pixel_size_um
        (n,) µm per pixel of each frame.
    tips_px
        One (k_i, 2) array per frame: in-frame tips (x_px, y_px).
    n_pipettes
        (n,) pipettes in each scene (including tips outside the frame).
    provenance
        How the set was made (JSON-safe): source, seed ranges, counts, generator version.
    tips_z_um
        One (k_i,) array per frame: tip height above the focal plane (µm); NaN = unknown.
    tips_required
        One (k_i,) bool array per frame: True for tips that must be found (in focus);
        default all True (e.g. hand-labelled tips).
    tips_end_px
        One (k_i, 2) array per frame: the pipette's visible end in the focal plane (see the
        module docstring); default the tip itself.
    """

    images: list[NDArray[Any]]
    pixel_size_um: NDArray[np.float64]
    tips_px: list[NDArray[np.float64]]
    n_pipettes: NDArray[np.int64]
    provenance: dict[str, Any] = field(default_factory=dict)
    tips_z_um: list[NDArray[np.float64]] = field(default_factory=list)
    tips_required: list[NDArray[np.bool_]] = field(default_factory=list)
    tips_end_px: list[NDArray[np.float64]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (len(self.pixel_size_um) == len(self.tips_px) == len(self.n_pipettes) == n):
            raise LocaliserError(
                f"sample set lengths disagree: {n} images, {len(self.pixel_size_um)} pixel "
                f"sizes, {len(self.tips_px)} tip lists, {len(self.n_pipettes)} pipette counts"
            )
        self.tips_px = [np.asarray(t, dtype=np.float64).reshape(-1, 2) for t in self.tips_px]
        if not self.tips_z_um:
            self.tips_z_um = [np.full(len(t), np.nan) for t in self.tips_px]
        if not self.tips_required:
            self.tips_required = [np.ones(len(t), dtype=bool) for t in self.tips_px]
        if not self.tips_end_px:
            self.tips_end_px = [t.copy() for t in self.tips_px]
        for name in ("tips_z_um", "tips_required", "tips_end_px"):
            values = getattr(self, name)
            if len(values) != n or any(
                len(v) != len(t) for v, t in zip(values, self.tips_px, strict=True)
            ):
                raise LocaliserError(f"sample set: {name} does not match tips_px")

    def __len__(self) -> int:
        return len(self.images)

    def required_px(self, index: int) -> NDArray[np.float64]:
        """(k, 2) tips of frame ``index`` that must be found (in focus)."""
        return self.tips_px[index][self.tips_required[index]]

    def optional_segments_px(self, index: int) -> NDArray[np.float64]:
        """(k, 4) don't-care segments (tip x, y, visible end x, y) of frame ``index``."""
        keep = ~self.tips_required[index]
        return np.concatenate([self.tips_px[index][keep], self.tips_end_px[index][keep]], axis=1)

    def subset(self, indices: Sequence[int] | NDArray[np.integer]) -> SampleSet:
        """The frames at ``indices``."""
        idx = [int(i) for i in indices]
        return SampleSet(
            [self.images[i] for i in idx],
            self.pixel_size_um[idx],
            [self.tips_px[i] for i in idx],
            self.n_pipettes[idx],
            dict(self.provenance),
            [self.tips_z_um[i] for i in idx],
            [self.tips_required[i] for i in idx],
            [self.tips_end_px[i] for i in idx],
        )

    def tip_table(self, index: int) -> NDArray[np.float64]:
        """(k, 6) rows x, y, z, required, end x, end y of frame ``index``."""
        return tip_table(
            self.tips_px[index],
            self.tips_z_um[index],
            self.tips_required[index],
            self.tips_end_px[index],
        )

    @property
    def tips(self) -> list[NDArray[np.float64]]:
        """Every frame's tip table (see :meth:`tip_table`)."""
        return [self.tip_table(i) for i in range(len(self))]

    @classmethod
    def from_tables(
        cls,
        images: list[NDArray[Any]],
        pixel_size_um: NDArray[np.float64],
        tips: list[NDArray[np.float64]],
        n_pipettes: NDArray[np.int64],
        provenance: dict[str, Any] | None = None,
    ) -> SampleSet:
        """A set from per-frame (k, 6) tip tables (see :func:`tip_table`)."""
        tables = [np.asarray(t, dtype=np.float64).reshape(-1, 6) for t in tips]
        return cls(
            images,
            pixel_size_um,
            [t[:, 0:2] for t in tables],
            n_pipettes,
            dict(provenance or {}),
            [t[:, 2] for t in tables],
            [t[:, 3] > 0.5 for t in tables],
            [t[:, 4:6] for t in tables],
        )

    def save(self, path: str | Path) -> Path:
        """Write the set to one ``.npz`` file (frames flattened into one buffer)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shapes = np.array([im.shape for im in self.images], dtype=np.int64).reshape(-1, 2)
        dtype = np.result_type(*[im.dtype for im in self.images]) if self.images else np.uint16
        flat = (
            np.concatenate([im.astype(dtype).ravel() for im in self.images])
            if self.images
            else np.zeros(0, dtype)
        )
        counts = np.array([len(t) for t in self.tips_px], dtype=np.int64)
        tables = [self.tip_table(i) for i in range(len(self))]
        tips = np.concatenate(tables) if counts.sum() else np.zeros((0, 6))
        # A per-process temporary name: several ranks may fill the same cache at once.
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            flat=flat,
            shapes=shapes,
            pixel_size_um=self.pixel_size_um,
            tip_counts=counts,
            tips=tips,
            n_pipettes=self.n_pipettes,
            provenance=np.array(json.dumps(self.provenance)),
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SampleSet:
        """Read a set written by :meth:`save`.

        Raises
        ------
        LocaliserError
            If the file is missing or not a sample-set cache.
        """
        path = Path(path)
        try:
            with np.load(path) as data:
                flat, shapes = data["flat"], data["shapes"]
                counts, tips = data["tip_counts"], data["tips"]
                pixel, n_pip = data["pixel_size_um"], data["n_pipettes"]
                provenance = json.loads(str(data["provenance"]))
        except (OSError, KeyError, ValueError) as exc:
            raise LocaliserError(f"sample cache {path}: cannot be read: {exc}") from None
        sizes = shapes.prod(axis=1)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        images = [flat[starts[i] : starts[i + 1]].reshape(shapes[i]) for i in range(len(shapes))]
        tips = tips.reshape(-1, 6)
        tip_starts = np.concatenate([[0], np.cumsum(counts)])
        tables = [tips[tip_starts[i] : tip_starts[i + 1]] for i in range(len(counts))]
        return cls.from_tables(images, pixel, tables, n_pip, provenance)
