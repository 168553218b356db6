"""Training batches: random crops of normalised frames with flips and 0.9-1.1 scaling.

Frames come from a raw :class:`SampleSet` (any pixel size). Each item is the whole frame
resampled to the model's pixel size and normalised exactly as at inference, then a window of
``crop / s`` pixels (s uniform in [0.9, 1.1]) resized to ``crop`` px, flipped/transposed at
random (pipettes come from every side); the tips are mapped with it and those off the crop
are dropped. Without augmentation the window is the frame's centre (padded with the mean
where smaller).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch.utils.data import Dataset

from patchpilot.localisation.preprocess import normalise, rescale_to_model, to_scaled_px
from patchpilot.localisation.samples import SampleSet

__all__ = ["MAX_TARGET_TIPS", "CropDataset"]

MAX_TARGET_TIPS = 16
"""Padded length of the target tip arrays (scenes hold at most 16 pipettes)."""

Item = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class CropDataset(Dataset[Item]):
    """Training items from a sample set.

    Each item: image (1, C, C); required tips (16, 2) px and their valid flags (16,);
    don't-care segments (16, 4) px (out-of-focus tip to its visible end) and their flags.

    Parameters
    ----------
    samples
        Raw frames (any size and pixel size).
    pixel_size_um
        The model's pixel size (µm); frames are resampled to it.
    crop_px
        Side of the returned images.
    augment
        Random window, scale, flips (training); False gives the deterministic centre.
    seed
        Base seed; item ``i`` of epoch ``e`` always gets the same augmentation.
    scale_range
        Range of the random zoom factor.
    tip_fraction
        Share of training windows placed so that they contain a tip.
    """

    def __init__(
        self,
        samples: SampleSet,
        pixel_size_um: float,
        crop_px: int,
        *,
        augment: bool,
        seed: int = 0,
        scale_range: tuple[float, float] = (0.9, 1.1),
        normalisation: str = "zscore",
        tip_fraction: float = 0.75,
    ) -> None:
        self.samples = samples
        self.pixel_size_um = pixel_size_um
        self.crop_px = crop_px
        self.augment = augment
        self.seed = seed
        self.scale_range = scale_range
        self.normalisation = normalisation
        self.tip_fraction = tip_fraction
        self.epoch = 0
        # Resampled, normalised frames (float16) and tips, computed once per frame.
        self._prepared: dict[int, tuple[NDArray[np.float16], NDArray[np.float64]]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (call once per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item:
        image, table = self._prepare(index)
        crop = self.crop_px
        rows, cols = image.shape
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            scale = float(rng.uniform(*self.scale_range))
            window = max(8, round(crop / scale))
            x0, y0 = self._place(rng, table, window, rows, cols)
            flips = rng.integers(0, 2, size=3)
        else:
            window = crop
            x0, y0 = (cols - window) // 2, (rows - window) // 2
            flips = np.zeros(3, dtype=np.int64)
        patch = _window(image, x0, y0, window)
        if window != crop:
            tensor = torch.from_numpy(patch)[None, None]
            patch = F.interpolate(tensor, size=(crop, crop), mode="bilinear", align_corners=False)[
                0, 0
            ].numpy()
        factor = crop / window
        origin = np.array([x0, y0])
        tip_xy = (table[:, 0:2] - origin + 0.5) * factor - 0.5
        end_xy = (table[:, 4:6] - origin + 0.5) * factor - 0.5
        patch, tip_xy = _dihedral(patch, tip_xy, flips)
        _, end_xy = _dihedral(patch, end_xy, flips, already_flipped=True)
        required = table[:, 3] > 0.5
        inside = (tip_xy >= -0.5).all(axis=1) & (tip_xy <= crop - 0.5).all(axis=1)
        tips = _pad(tip_xy[required & inside], 2)
        segments = _pad(np.concatenate([tip_xy, end_xy], axis=1)[~required], 4)
        return (
            torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32))[None],
            torch.from_numpy(tips[0]),
            torch.from_numpy(tips[1]),
            torch.from_numpy(segments[0]),
            torch.from_numpy(segments[1]),
        )

    def _place(
        self,
        rng: np.random.Generator,
        table: NDArray[np.float64],
        window: int,
        rows: int,
        cols: int,
    ) -> tuple[int, int]:
        """Top-left corner of a training window: most windows hold a tip somewhere inside
        (most of a frame is background), the others are anywhere in the frame."""
        if len(table) and rng.random() < self.tip_fraction:
            x, y = table[int(rng.integers(0, len(table))), 0:2]
            margin = min(8, window // 4)
            x0 = round(x - rng.uniform(margin, window - margin))
            y0 = round(y - rng.uniform(margin, window - margin))
            # Stay on the frame where it is larger than the window.
            x0 = int(np.clip(x0, 0, cols - window)) if cols > window else (cols - window) // 2
            y0 = int(np.clip(y0, 0, rows - window)) if rows > window else (rows - window) // 2
            return x0, y0
        x0 = int(rng.integers(0, cols - window + 1)) if cols > window else (cols - window) // 2
        y0 = int(rng.integers(0, rows - window + 1)) if rows > window else (rows - window) // 2
        return x0, y0

    def _prepare(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        if index not in self._prepared:
            raw = self.samples.images[index].astype(np.float32)
            image, to_model = rescale_to_model(
                raw, float(self.samples.pixel_size_um[index]), self.pixel_size_um
            )
            image = normalise(image, self.normalisation)
            table = self.samples.tip_table(index)
            table[:, 0:2] = to_scaled_px(table[:, 0:2], to_model)
            table[:, 4:6] = to_scaled_px(table[:, 4:6], to_model)
            self._prepared[index] = (image.astype(np.float16), table)
        image16, table = self._prepared[index]
        return image16.astype(np.float32), table


def _pad(rows: NDArray[np.float64], width: int) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Rows padded with zeros to MAX_TARGET_TIPS, and which rows are real."""
    rows = rows[:MAX_TARGET_TIPS]
    padded = np.zeros((MAX_TARGET_TIPS, width), dtype=np.float32)
    padded[: len(rows)] = rows
    valid = np.zeros(MAX_TARGET_TIPS, dtype=bool)
    valid[: len(rows)] = True
    return padded, valid


def _window(image: NDArray[np.float32], x0: int, y0: int, size: int) -> NDArray[np.float32]:
    """``image[y0:y0+size, x0:x0+size]`` with zeros (the normalised mean) outside."""
    out = np.zeros((size, size), dtype=np.float32)
    rows, cols = image.shape
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(rows, y0 + size), min(cols, x0 + size)
    if ye > ys and xe > xs:
        out[ys - y0 : ye - y0, xs - x0 : xe - x0] = image[ys:ye, xs:xe]
    return out


def _dihedral(
    patch: NDArray[np.float32],
    xy: NDArray[np.float64],
    flips: NDArray[np.int64],
    already_flipped: bool = False,
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Apply horizontal flip, vertical flip and transpose (each if its flag is set) to the
    patch (unless ``already_flipped``) and to the points."""
    size = patch.shape[0]
    xy = xy.copy()
    if flips[0]:
        patch = patch if already_flipped else patch[:, ::-1]
        xy[:, 0] = size - 1 - xy[:, 0]
    if flips[1]:
        patch = patch if already_flipped else patch[::-1, :]
        xy[:, 1] = size - 1 - xy[:, 1]
    if flips[2]:
        patch = patch if already_flipped else patch.T
        xy = xy[:, ::-1]
    return patch, xy
