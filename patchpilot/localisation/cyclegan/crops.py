"""Fixed-size crops around tips, and pasting processed crops back (the paper's GAN step).

A crop of side ``size_px`` around a point (x, y) starts at ``round(x) - size_px // 2`` (same
for y), so the point lies within half a pixel of crop pixel ``size_px // 2``, at
``(x - x0, y - y0)`` in crop coordinates (pixel-centre convention of
:mod:`patchpilot.types`). Parts of a crop beyond the image are filled by reflection (the
paper pads crops "when necessary"); pasting back writes only the part inside the image,
averaging where crops overlap, and leaves every pixel outside all crops untouched.

Intensities are scaled per crop for the generator: ``(crop - mean) / (3 std)`` clipped to
[-1, 1] (tanh range), and mapped back with the same crop's mean and standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["CropBatch", "crop_windows", "from_unit_range", "paste_back", "to_unit_range"]

F32 = NDArray[np.float32]
SCALE_STD = 3.0
"""Standard deviations mapped onto the generator's [-1, 1] range."""


@dataclass(frozen=True)
class CropBatch:
    """Crops (n, S, S) cut from one image and where they came from.

    ``origins_px`` (n, 2) are the (x0, y0) image pixels of each crop's top-left pixel.
    """

    crops: F32
    origins_px: NDArray[np.int64]
    size_px: int

    def to_crop_px(self, xy_px: NDArray[np.floating], index: int) -> NDArray[np.float64]:
        """Image coordinates (n, 2) -> coordinates in crop ``index``."""
        out: NDArray[np.float64] = np.asarray(xy_px, np.float64) - self.origins_px[index]
        return out

    def to_image_px(self, xy_px: NDArray[np.floating], index: int) -> NDArray[np.float64]:
        """Coordinates (n, 2) in crop ``index`` -> image coordinates."""
        out: NDArray[np.float64] = np.asarray(xy_px, np.float64) + self.origins_px[index]
        return out


def crop_windows(
    image: NDArray[np.floating], centres_px: NDArray[np.floating], size_px: int
) -> CropBatch:
    """Cut a ``size_px`` square around each (x, y) centre.

    Parameters
    ----------
    image
        2D image.
    centres_px
        (n, 2) crop centres (x_px, y_px); n may be 0.
    size_px
        Crop side (pixels).

    Raises
    ------
    ValueError
        If the image is not 2D, a centre is not finite, or ``size_px`` < 2.
    """
    if image.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {image.shape}")
    if size_px < 2:
        raise ValueError(f"crop size must be at least 2 px, got {size_px}")
    centres = np.asarray(centres_px, np.float64).reshape(-1, 2)
    if not np.isfinite(centres).all():
        raise ValueError("crop centres must be finite")
    rows, cols = image.shape
    origins = (np.round(centres) - size_px // 2).astype(np.int64)
    crops = np.empty((len(origins), size_px, size_px), np.float32)
    inside = (
        (origins >= 0).all(axis=1)
        & (origins[:, 0] + size_px <= cols)
        & (origins[:, 1] + size_px <= rows)
    )
    for i in np.flatnonzero(inside):
        x0, y0 = origins[i]
        crops[i] = image[y0 : y0 + size_px, x0 : x0 + size_px]
    if not inside.all():
        # Reflection needs pad < side; beyond that, edge replication takes over.
        pad = size_px
        source = np.asarray(image, np.float32)
        if min(rows, cols) > pad:
            padded = np.pad(source, pad, mode="reflect")
        else:
            padded = np.pad(source, pad, mode="edge")
        for i in np.flatnonzero(~inside):
            x0, y0 = origins[i]
            # Centres far outside the image get the nearest padded region (moved origin).
            xs = int(np.clip(x0 + pad, 0, cols + 2 * pad - size_px))
            ys = int(np.clip(y0 + pad, 0, rows + 2 * pad - size_px))
            crops[i] = padded[ys : ys + size_px, xs : xs + size_px]
            origins[i] = (xs - pad, ys - pad)
    return CropBatch(crops, origins, size_px)


def paste_back(image: NDArray[np.floating], batch: CropBatch, crops: F32 | None = None) -> F32:
    """A copy of ``image`` with ``crops`` (default ``batch.crops``) written where they were
    cut; overlapping crops are averaged, pixels outside every crop are unchanged.

    Raises
    ------
    ValueError
        If ``crops`` does not match the batch's shape.
    """
    values = batch.crops if crops is None else np.asarray(crops, np.float32)
    if values.shape != batch.crops.shape:
        raise ValueError(f"crops of shape {values.shape}, batch holds {batch.crops.shape}")
    out = np.array(image, dtype=np.float32, copy=True)
    if len(values) == 0:
        return out
    rows, cols = out.shape
    total = np.zeros_like(out)
    count = np.zeros_like(out)
    size = batch.size_px
    for crop, (x0, y0) in zip(values, batch.origins_px, strict=True):
        ys, xs = max(0, int(y0)), max(0, int(x0))
        ye, xe = min(rows, int(y0) + size), min(cols, int(x0) + size)
        if ye <= ys or xe <= xs:
            continue
        total[ys:ye, xs:xe] += crop[ys - y0 : ye - y0, xs - x0 : xe - x0]
        count[ys:ye, xs:xe] += 1.0
    covered = count > 0
    out[covered] = total[covered] / count[covered]
    return out


def to_unit_range(crops: F32) -> tuple[F32, F32, F32]:
    """Per-crop scaling to [-1, 1]: returns scaled crops, means (n,) and stds (n,)."""
    mean = crops.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
    std = crops.std(axis=(1, 2), dtype=np.float64).astype(np.float32)
    std = np.maximum(std, np.float32(1e-6))
    scaled = (crops - mean[:, None, None]) / (SCALE_STD * std[:, None, None])
    return np.clip(scaled, -1.0, 1.0).astype(np.float32), mean, std


def from_unit_range(scaled: F32, mean: F32, std: F32) -> F32:
    """Inverse of :func:`to_unit_range` (for generator outputs)."""
    out = scaled * (SCALE_STD * std[:, None, None]) + mean[:, None, None]
    return out.astype(np.float32)
