"""Frozen values that cross layer boundaries: frames and tip detections.

Conventions, used everywhere:

- Image coordinates: ``x_px`` along columns, ``y_px`` along rows, origin at the centre of the
  top-left pixel.
- Sample frame (µm): x and y parallel to the image's x and y, z along the optical axis,
  positive up (away from the tissue). ``Frame.fov_center_um`` is the sample position of the
  image centre and ``Frame.focus_um`` the sample z of the focal plane.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Frame", "TipDetection"]


@dataclass(frozen=True)
class TipDetection:
    """One pipette tip found in a frame.

    ``x_um``/``y_um`` are ``x_px``/``y_px`` times the frame's pixel size (image-relative,
    not yet in the sample frame). ``confidence`` is in [0, 1].
    """

    x_px: float
    y_px: float
    x_um: float
    y_um: float
    confidence: float


@dataclass(frozen=True)
class Frame:
    """One two-photon image with where and when it was taken."""

    image: NDArray[Any]
    index: int
    timestamp_s: float
    pixel_size_um: float
    fov_center_um: tuple[float, float] = (0.0, 0.0)
    focus_um: float = 0.0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def height_px(self) -> int:
        return int(self.image.shape[0])

    @property
    def width_px(self) -> int:
        return int(self.image.shape[1])

    def pixel_to_sample_um(self, x_px: float, y_px: float) -> tuple[float, float]:
        """Sample-frame (x, y) in µm of an image position in pixels."""
        cx = (self.width_px - 1) / 2.0
        cy = (self.height_px - 1) / 2.0
        return (
            self.fov_center_um[0] + (x_px - cx) * self.pixel_size_um,
            self.fov_center_um[1] + (y_px - cy) * self.pixel_size_um,
        )

    def sample_to_pixel(self, x_um: float, y_um: float) -> tuple[float, float]:
        """Image position in pixels of a sample-frame (x, y) in µm."""
        cx = (self.width_px - 1) / 2.0
        cy = (self.height_px - 1) / 2.0
        return (
            (x_um - self.fov_center_um[0]) / self.pixel_size_um + cx,
            (y_um - self.fov_center_um[1]) / self.pixel_size_um + cy,
        )


def pipette_axis(pitch_deg: float, yaw_deg: float) -> NDArray[np.float64]:
    """Unit vector of a pipette's advance direction in the sample frame (toward the tip).

    acq4's convention: ``[cos p cos y, cos p sin y, -sin p]``; pitch is below horizontal, so
    advancing goes down (z decreases).
    """
    pitch = np.deg2rad(pitch_deg)
    yaw = np.deg2rad(yaw_deg)
    return np.array(
        [np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), -np.sin(pitch)],
        dtype=np.float64,
    )


__all__ += ["pipette_axis"]
