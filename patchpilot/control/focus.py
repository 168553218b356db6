"""Tip depth from a focus sweep: sharpness around the tip against focus, and its peak.

A tip is sharpest when the focal plane passes through it. ``tip_sharpness`` is the local
gradient energy in a square crop around the tip's pixel position; ``fit_focus_peak`` fits a
parabola to the log of the sharpness around its maximum and returns the focus of the vertex
(the sample z of the tip, µm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["MIN_PEAK_CONTRAST", "FocusError", "fit_focus_peak", "sweep_positions", "tip_sharpness"]

MIN_PEAK_CONTRAST = 1.0
"""The peak must exceed the sweep's floor by this fraction of it; noise alone does not."""


class FocusError(ValueError):
    """A sweep from which no tip depth can be read (the message says why)."""


def tip_sharpness(image: NDArray[Any], x_px: float, y_px: float, half_width_px: int = 6) -> float:
    """Mean squared intensity gradient in a crop around ``(x_px, y_px)``.

    Parameters
    ----------
    image
        A 2-D image (any numeric dtype).
    x_px, y_px
        Crop centre (column, row).
    half_width_px
        The crop is ``2 * half_width_px + 1`` pixels wide.

    Raises
    ------
    FocusError
        The image is not 2-D, the position is not finite, or it lies within 2 pixels of the
        border (or outside).
    """
    if image.ndim != 2:
        raise FocusError(f"expected a 2-D image, got shape {image.shape}")
    if not (math.isfinite(x_px) and math.isfinite(y_px)):
        raise FocusError(f"crop centre ({x_px}, {y_px}) is not finite")
    column, row = round(x_px), round(y_px)
    height, width = image.shape
    # Near the border the crop shrinks (the same on every frame of a sweep, so comparable).
    half = min(half_width_px, column, row, width - 1 - column, height - 1 - row)
    if half < 2:
        raise FocusError(
            f"({x_px:.1f}, {y_px:.1f}) px is at or beyond the edge of the {width}x{height} image"
        )
    crop = np.asarray(
        image[row - half : row + half + 1, column - half : column + half + 1], dtype=np.float64
    )
    gradient_x = np.diff(crop, axis=1)
    gradient_y = np.diff(crop, axis=0)
    return float(np.mean(gradient_x**2) + np.mean(gradient_y**2))


def sweep_positions(center_um: float, half_range_um: float, step_um: float) -> list[float]:
    """Focus positions from ``center - half_range`` to ``center + half_range`` (µm)."""
    if not (step_um > 0 and half_range_um >= step_um):
        raise FocusError(f"bad sweep: half range {half_range_um} µm, step {step_um} µm")
    count = round(half_range_um / step_um)
    return [center_um + step_um * k for k in range(-count, count + 1)]


def fit_focus_peak(focus_um: Sequence[float], sharpness: Sequence[float]) -> float:
    """Focus (µm) where the sharpness peaks, to a fraction of the sweep step.

    Raises
    ------
    FocusError
        Fewer than 5 finite points, a flat sweep or one without a clear peak (the tip is not in
        it), the maximum at either end of the sweep (the tip lies outside it), or a fit that
        does not open downward.
    """
    z = np.asarray(focus_um, dtype=np.float64)
    s = np.asarray(sharpness, dtype=np.float64)
    if z.shape != s.shape:
        raise FocusError(f"{z.size} focus positions but {s.size} sharpness values")
    keep = np.isfinite(z) & np.isfinite(s)
    z, s = z[keep], s[keep]
    if z.size < 5:
        raise FocusError(f"need at least 5 finite sweep points, got {z.size}")
    order = np.argsort(z)
    z, s = z[order], s[order]
    floor = float(np.min(s))
    peak = int(np.argmax(s))
    height = float(s[peak]) - floor
    if height <= 1e-12 * max(abs(floor), 1.0):
        raise FocusError("the sweep is flat: no tip in the crop")
    if peak == 0 or peak == z.size - 1:
        raise FocusError(
            f"sharpness peaks at the {'start' if peak == 0 else 'end'} of the sweep "
            f"({z[peak]:.1f} µm): the tip lies outside it"
        )
    if floor > 0 and height < MIN_PEAK_CONTRAST * floor:
        raise FocusError(
            f"no clear sharpness peak (contrast {height / floor:.2f} < {MIN_PEAK_CONTRAST:g}): "
            "the tip is not in the sweep"
        )
    # The points clearly above the floor around the peak carry the shape; at least 3.
    low, high = peak - 1, peak + 1
    threshold = floor + 0.3 * height
    while low > 0 and s[low - 1] > threshold:
        low -= 1
    while high < z.size - 1 and s[high + 1] > threshold:
        high += 1
    window = slice(low, high + 1)
    values = np.log(s[window] - floor + 0.05 * height)
    a, b, _c = np.polyfit(z[window] - z[peak], values, 2)
    if a >= 0:
        raise FocusError("the sharpness does not peak (fit opens upward)")
    vertex = -b / (2.0 * a)
    step = float(np.median(np.diff(z)))
    return float(z[peak] + np.clip(vertex, -step, step))
