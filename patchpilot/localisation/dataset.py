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

Item = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class CropDataset(Dataset[Item]):
    """(image (1, C, C), tips (16, 2) px, valid (16,) bool) items from a sample set.

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
    ) -> None:
        self.samples = samples
        self.pixel_size_um = pixel_size_um
        self.crop_px = crop_px
        self.augment = augment
        self.seed = seed
        self.scale_range = scale_range
        self.normalisation = normalisation
        self.epoch = 0
        # Resampled, normalised frames (float16) and tips, computed once per frame.
        self._prepared: dict[int, tuple[NDArray[np.float16], NDArray[np.float64]]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (call once per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item:
        image, tips = self._prepare(index)
        crop = self.crop_px
        rows, cols = image.shape
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            scale = float(rng.uniform(*self.scale_range))
            window = max(8, round(crop / scale))
            x0 = int(rng.integers(0, cols - window + 1)) if cols > window else (cols - window) // 2
            y0 = int(rng.integers(0, rows - window + 1)) if rows > window else (rows - window) // 2
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
        xy = (tips - np.array([x0, y0]) + 0.5) * factor - 0.5
        patch, xy = _dihedral(patch, xy, flips)
        inside = (xy >= -0.5).all(axis=1) & (xy <= crop - 0.5).all(axis=1)
        xy = xy[inside][:MAX_TARGET_TIPS]
        padded = np.zeros((MAX_TARGET_TIPS, 2), dtype=np.float32)
        padded[: len(xy)] = xy
        valid = np.zeros(MAX_TARGET_TIPS, dtype=bool)
        valid[: len(xy)] = True
        return (
            torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32))[None],
            torch.from_numpy(padded),
            torch.from_numpy(valid),
        )

    def _prepare(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        if index not in self._prepared:
            raw = self.samples.images[index].astype(np.float32)
            image, to_model = rescale_to_model(
                raw, float(self.samples.pixel_size_um[index]), self.pixel_size_um
            )
            image = normalise(image, self.normalisation)
            tips = to_scaled_px(np.asarray(self.samples.tips_px[index]).reshape(-1, 2), to_model)
            self._prepared[index] = (image.astype(np.float16), tips)
        image16, tips = self._prepared[index]
        return image16.astype(np.float32), tips


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
    patch: NDArray[np.float32], xy: NDArray[np.float64], flips: NDArray[np.int64]
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Apply horizontal flip, vertical flip and transpose (each if its flag is set)."""
    size = patch.shape[0]
    xy = xy.copy()
    if flips[0]:
        patch = patch[:, ::-1]
        xy[:, 0] = size - 1 - xy[:, 0]
    if flips[1]:
        patch = patch[::-1, :]
        xy[:, 1] = size - 1 - xy[:, 1]
    if flips[2]:
        patch = patch.T
        xy = xy[:, ::-1]
    return patch, xy
