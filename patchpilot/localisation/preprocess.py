"""Frame checks and the preprocessing shared by training and inference.

Training data go through exactly the same :func:`rescale_to_model` and :func:`normalise` as
live frames, so a model sees at inference what it saw in training.

Coordinates keep the pixel-centre convention of ``patchpilot.types``: resizing a frame by a
factor s (new/old pixels) maps ``x_new = (x_old + 0.5) * s - 0.5``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from patchpilot.localisation._errors import LocaliserError

__all__ = [
    "check_frame",
    "check_pixel_size",
    "from_scaled_px",
    "normalise",
    "rescale_to_model",
    "to_scaled_px",
]


def check_frame(frame: Any, name: str = "frame") -> NDArray[np.float32]:
    """Return ``frame`` as a float32 2D array, or say what is wrong with it.

    Raises
    ------
    LocaliserError
        Not an array of numbers, not 2D, empty, or holding NaN/inf.
    """
    array = np.asarray(frame)
    if array.dtype.kind not in "uif":
        raise LocaliserError(f"{name} must hold integers or floats, got dtype {array.dtype}")
    if array.ndim != 2:
        raise LocaliserError(f"{name} must be a 2D image (rows, columns), got shape {array.shape}")
    if array.size == 0:
        raise LocaliserError(f"{name} is empty (shape {array.shape})")
    out = array.astype(np.float32, copy=False)
    if array.dtype.kind == "f" and not np.isfinite(out).all():
        raise LocaliserError(f"{name} holds NaN or infinite values")
    return out


def check_pixel_size(pixel_size_um: Any) -> float:
    """Return the pixel size as a positive finite float (µm/pixel).

    Raises
    ------
    LocaliserError
        Not a number, not finite, or not positive.
    """
    try:
        value = float(pixel_size_um)
    except (TypeError, ValueError):
        raise LocaliserError(f"pixel_size_um must be a number, got {pixel_size_um!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise LocaliserError(f"pixel_size_um must be positive and finite, got {pixel_size_um!r}")
    return value


def rescale_to_model(
    image: NDArray[np.float32], pixel_size_um: float, model_pixel_size_um: float
) -> tuple[NDArray[np.float32], tuple[float, float]]:
    """Resample a frame to the model's pixel size (bilinear, antialiased when shrinking).

    Returns
    -------
    tuple
        The resampled image and the actual (x, y) scale factors (new pixels per old pixel),
        which differ from the nominal ratio by the rounding of the new size.
    """
    factor = pixel_size_um / model_pixel_size_um
    rows, cols = image.shape
    new_rows = max(1, round(rows * factor))
    new_cols = max(1, round(cols * factor))
    if (new_rows, new_cols) == (rows, cols):
        return image, (1.0, 1.0)
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    resized = F.interpolate(
        tensor,
        size=(new_rows, new_cols),
        mode="bilinear",
        align_corners=False,
        antialias=factor < 1.0,
    )
    return resized[0, 0].numpy(), (new_cols / cols, new_rows / rows)


def to_scaled_px(xy_px: NDArray[np.float64], scale: tuple[float, float]) -> NDArray[np.float64]:
    """Map (n, 2) frame pixel coordinates into the rescaled image."""
    factors = np.asarray(scale, dtype=np.float64)
    return (np.asarray(xy_px, dtype=np.float64) + 0.5) * factors - 0.5


def from_scaled_px(xy_px: NDArray[np.float64], scale: tuple[float, float]) -> NDArray[np.float64]:
    """Map (n, 2) rescaled-image coordinates back to frame pixels."""
    factors = np.asarray(scale, dtype=np.float64)
    return (np.asarray(xy_px, dtype=np.float64) + 0.5) / factors - 0.5


def normalise(image: NDArray[np.float32], mode: str = "zscore") -> NDArray[np.float32]:
    """Per-frame normalisation (zero mean, unit standard deviation).

    Per-frame statistics make the model indifferent to gain, offset and bit depth.
    """
    if mode != "zscore":
        raise LocaliserError(f"unknown normalisation {mode!r}")
    mean = float(image.mean(dtype=np.float64))
    std = float(image.std(dtype=np.float64))
    out = image - np.float32(mean)
    if std > 1e-6:
        out = out / np.float32(std)
    return out.astype(np.float32, copy=False)
