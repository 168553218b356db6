"""Labelled frames held in memory: the unit that training and evaluation consume.

A :class:`SampleSet` holds raw frames (any size, any pixel size), their pixel sizes and the
in-frame true tips (pixels, ``patchpilot.types`` convention). It is built from the simulator
or from a COCO keypoints folder (:mod:`patchpilot.localisation.sources`) and saved to /
loaded from a ``.npz`` cache so a fixed training set is rendered only once.
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

__all__ = ["SampleSet"]


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
        One (k_i, 2) float array per frame: in-frame tips (x_px, y_px).
    n_pipettes
        (n,) pipettes in each scene (including tips outside the frame).
    tips_z_um
        One (k_i,) array per frame: each tip's height above the focal plane (µm), NaN where
        unknown (hand-labelled data).
    provenance
        How the set was made (JSON-safe): source, seed ranges, counts, generator version.
    """

    images: list[NDArray[Any]]
    pixel_size_um: NDArray[np.float64]
    tips_px: list[NDArray[np.float64]]
    n_pipettes: NDArray[np.int64]
    provenance: dict[str, Any] = field(default_factory=dict)
    tips_z_um: list[NDArray[np.float64]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.images)
        if not self.tips_z_um:
            self.tips_z_um = [np.full(len(t), np.nan) for t in self.tips_px]
        if len(self.tips_z_um) != n or any(
            len(z) != len(t) for z, t in zip(self.tips_z_um, self.tips_px, strict=True)
        ):
            raise LocaliserError("sample set: tips_z_um does not match tips_px")
        if not (len(self.pixel_size_um) == len(self.tips_px) == len(self.n_pipettes) == n):
            raise LocaliserError(
                f"sample set lengths disagree: {n} images, {len(self.pixel_size_um)} pixel "
                f"sizes, {len(self.tips_px)} tip lists, {len(self.n_pipettes)} pipette counts"
            )

    def __len__(self) -> int:
        return len(self.images)

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
        tips = np.concatenate(self.tips_px) if counts.sum() else np.zeros((0, 2))
        tips_z = np.concatenate(self.tips_z_um) if counts.sum() else np.zeros(0)
        # A per-process temporary name: several ranks may fill the same cache at once.
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            flat=flat,
            shapes=shapes,
            pixel_size_um=self.pixel_size_um,
            tip_counts=counts,
            tips=tips,
            tips_z=tips_z,
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
                counts, tips, tips_z = data["tip_counts"], data["tips"], data["tips_z"]
                pixel, n_pip = data["pixel_size_um"], data["n_pipettes"]
                provenance = json.loads(str(data["provenance"]))
        except (OSError, KeyError, ValueError) as exc:
            raise LocaliserError(f"sample cache {path}: cannot be read: {exc}") from None
        sizes = shapes.prod(axis=1)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        images = [flat[starts[i] : starts[i + 1]].reshape(shapes[i]) for i in range(len(shapes))]
        tip_starts = np.concatenate([[0], np.cumsum(counts)])
        tip_list = [tips[tip_starts[i] : tip_starts[i + 1]] for i in range(len(counts))]
        z_list = [tips_z[tip_starts[i] : tip_starts[i + 1]] for i in range(len(counts))]
        return cls(images, pixel, tip_list, n_pip, provenance, z_list)
