"""Frozen, validated values that describe one two-photon frame: pipettes, view, optics, scan.

Everything is in the SAMPLE frame in µm (see :mod:`patchpilot.types`): x along image columns,
y along image rows, z along the optical axis positive UP; the brain surface is at z = 0 by
default with tissue below it. Brightness values are relative to the background fluorescence
(1.0 = the dye-filled medium above the brain at full laser power).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.scene._validate import SceneError, _finite, _in_range, _set, _vector
from patchpilot.scene.instrument import Acquisition, Optics, TissueMotion
from patchpilot.scene.tissue import Tissue
from patchpilot.types import pipette_axis

__all__ = [
    "POLARITY_MIX",
    "Acquisition",
    "Optics",
    "PipettePose",
    "Scene",
    "SceneError",
    "TipTruth",
    "TissueMotion",
    "View",
]

Vec3 = tuple[float, float, float]

POLARITY_MIX = {"dark": 0.0, "mixed": 0.5, "bright": 1.0}
"""How much of the lumen's dye shows for each named polarity (0 = dark shadow only)."""


@dataclass(frozen=True)
class PipettePose:
    """One dye-filled glass pipette: a cone ending at the tip, in the sample frame.

    The advance direction (toward the tip) is ``patchpilot.types.pipette_axis(pitch, yaw)``;
    the shank extends from the tip the opposite way, up and back. ``tip_um`` is the tip at
    the frame's mid-time; during the scan it moves with ``velocity_um_s``.

    Raises
    ------
    SceneError
        A field out of range (pitch outside (0, 90) degrees, non-finite position, ...).
    """

    pipette_id: str
    tip_um: Vec3
    pitch_deg: float
    yaw_deg: float
    tip_diameter_um: float = 1.5
    taper_half_angle_deg: float = 5.0
    polarity: str | float = "dark"
    """"dark" (glass excludes the dye around it), "bright" (dye-filled lumen), "mixed", or
    the lumen's visible fraction in [0, 1]."""
    plume_strength: float = 0.0
    """Peak brightness of the cloud of dye ejected at the tip (background units)."""
    velocity_um_s: Vec3 = (0.0, 0.0, 0.0)
    plume_sigma_um: float = 12.0
    lumen_brightness: float = 4.0
    """Dye brightness inside the lumen when fully visible (background units)."""
    tip_speck: float = 1.0
    """Brightness of the dye speck at the tip opening (background units)."""
    shadow_strength: float = 0.7
    """Fraction of excitation the glass above focus removes where it covers the beam."""
    wall_fraction: float = 0.3
    """Glass wall thickness as a fraction of the outer radius."""

    def __post_init__(self) -> None:
        owner = f"PipettePose {self.pipette_id!r}"
        if not isinstance(self.pipette_id, str) or not self.pipette_id:
            raise SceneError(
                f"PipettePose.pipette_id must be a non-empty string, got {self.pipette_id!r}"
            )
        _set(self, "tip_um", _vector(owner, "tip_um", self.tip_um, 3))
        _set(self, "velocity_um_s", _vector(owner, "velocity_um_s", self.velocity_um_s, 3))
        pitch = _finite(owner, "pitch_deg", self.pitch_deg)
        if not 0.0 < pitch < 90.0:
            raise SceneError(
                f"{owner}.pitch_deg must be strictly between 0 and 90 degrees below horizontal, "
                f"got {self.pitch_deg!r}"
            )
        _set(self, "pitch_deg", pitch)
        _set(self, "yaw_deg", _finite(owner, "yaw_deg", self.yaw_deg))
        _set(
            self,
            "tip_diameter_um",
            _in_range(owner, "tip_diameter_um", self.tip_diameter_um, 0.0, 20.0, open_low=True),
        )
        _set(
            self,
            "taper_half_angle_deg",
            _in_range(
                owner, "taper_half_angle_deg", self.taper_half_angle_deg, 0.0, 30.0, open_low=True
            ),
        )
        if isinstance(self.polarity, str):
            if self.polarity not in POLARITY_MIX:
                raise SceneError(
                    f"{owner}.polarity must be one of {sorted(POLARITY_MIX)} or a number in "
                    f"[0, 1], got {self.polarity!r}"
                )
        else:
            _set(self, "polarity", _in_range(owner, "polarity", self.polarity, 0.0, 1.0))
        for name, high in (
            ("plume_strength", 100.0),
            ("lumen_brightness", 1000.0),
            ("tip_speck", 1000.0),
            ("shadow_strength", 1.0),
        ):
            _set(self, name, _in_range(owner, name, getattr(self, name), 0.0, high))
        _set(
            self,
            "plume_sigma_um",
            _in_range(owner, "plume_sigma_um", self.plume_sigma_um, 0.0, 1000.0, open_low=True),
        )
        _set(self, "wall_fraction", _in_range(owner, "wall_fraction", self.wall_fraction, 0.0, 1.0))

    @property
    def axis(self) -> NDArray[np.float64]:
        """Unit advance direction (toward the tip) in the sample frame."""
        return pipette_axis(self.pitch_deg, self.yaw_deg)

    @property
    def lumen_mix(self) -> float:
        """Visible fraction of the lumen's dye: 0 for dark, 1 for bright."""
        if isinstance(self.polarity, str):
            return POLARITY_MIX[self.polarity]
        return float(self.polarity)

    def tip_at(self, dt_s: float) -> Vec3:
        """Tip position ``dt_s`` seconds after the frame's mid-time (µm)."""
        x, y, z = self.tip_um
        vx, vy, vz = self.velocity_um_s
        return (x + vx * dt_s, y + vy * dt_s, z + vz * dt_s)


@dataclass(frozen=True)
class View:
    """Where the microscope looks: field of view, focal plane, pixel grid.

    Pixel <-> sample mapping equals :meth:`patchpilot.types.Frame.pixel_to_sample_um`: the
    image centre is at ``fov_center_um``, pixel coordinates have their origin at the centre of
    the top-left pixel.

    Raises
    ------
    SceneError
        Non-positive pixel size, frame size outside 8 to 8192 pixels, non-finite positions.
    """

    fov_center_um: tuple[float, float] = (0.0, 0.0)
    focus_um: float = 0.0
    width_px: int = 256
    height_px: int = 256
    pixel_size_um: float = 1.0

    def __post_init__(self) -> None:
        _set(self, "fov_center_um", _vector("View", "fov_center_um", self.fov_center_um, 2))
        _set(self, "focus_um", _finite("View", "focus_um", self.focus_um))
        _set(
            self,
            "pixel_size_um",
            _in_range("View", "pixel_size_um", self.pixel_size_um, 0.0, 50.0, open_low=True),
        )
        for name in ("width_px", "height_px"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or not 8 <= value <= 8192
            ):
                raise SceneError(f"View.{name} must be an integer from 8 to 8192, got {value!r}")
            _set(self, name, int(value))

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return (self.height_px, self.width_px)

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

    def column_x_um(self) -> NDArray[np.float64]:
        """Sample x (µm) of every column's pixel centres."""
        start = self.pixel_to_sample_um(0.0, 0.0)[0]
        return start + np.arange(self.width_px, dtype=np.float64) * self.pixel_size_um

    def row_y_um(self) -> NDArray[np.float64]:
        """Sample y (µm) of every row's pixel centres."""
        start = self.pixel_to_sample_um(0.0, 0.0)[1]
        return start + np.arange(self.height_px, dtype=np.float64) * self.pixel_size_um


@dataclass(frozen=True)
class TipTruth:
    """Where one pipette's tip really is in a rendered frame (at the frame's mid-time).

    ``x_um``/``y_um`` are sample-frame µm; ``z_offset_um`` is tip z minus focus;
    ``in_focus`` means ``|z_offset_um| <= Optics.depth_of_field_um / 2``; ``in_frame`` means
    the tip lies on the pixel grid (within half a pixel of the outer pixel centres).
    """

    pipette_id: str
    x_px: float
    y_px: float
    x_um: float
    y_um: float
    z_offset_um: float
    in_frame: bool
    in_focus: bool


@dataclass(frozen=True)
class Scene:
    """Everything one frame shows: tissue, pipettes, where the microscope looks, and when.

    ``time_s`` is the frame's mid-time (s); each pixel is sampled at its own scan time around
    it. ``clean_domain`` renders the paper's ex vivo domain instead (plain grey, high signal,
    sharp dark silhouettes).

    Raises
    ------
    SceneError
        Pipettes that are not ``PipettePose`` or share an id; more than 16 pipettes.
    """

    tissue: Tissue
    pipettes: tuple[PipettePose, ...] = ()
    view: View = field(default_factory=View)
    optics: Optics = field(default_factory=Optics)
    acquisition: Acquisition = field(default_factory=Acquisition)
    time_s: float = 0.0
    tissue_motion: TissueMotion = field(default_factory=TissueMotion)
    clean_domain: bool = False

    def __post_init__(self) -> None:
        pipettes = tuple(self.pipettes) if isinstance(self.pipettes, Sequence) else self.pipettes
        if not isinstance(pipettes, tuple):
            raise SceneError(
                f"Scene.pipettes must be a sequence of PipettePose, got {self.pipettes!r}"
            )
        for pose in pipettes:
            if not isinstance(pose, PipettePose):
                raise SceneError(f"Scene.pipettes must hold PipettePose values, got {pose!r}")
        ids = [p.pipette_id for p in pipettes]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise SceneError(f"Scene.pipettes share id(s): {', '.join(duplicates)}")
        if len(pipettes) > 16:
            raise SceneError(f"Scene.pipettes holds {len(pipettes)} pipettes; at most 16")
        _set(self, "pipettes", pipettes)
        _set(self, "time_s", _finite("Scene", "time_s", self.time_s))
        if not isinstance(self.tissue, Tissue):
            raise SceneError(f"Scene.tissue must be a Tissue, got {self.tissue!r}")
        for name, kind in (
            ("view", View),
            ("optics", Optics),
            ("acquisition", Acquisition),
            ("tissue_motion", TissueMotion),
        ):
            if not isinstance(getattr(self, name), kind):
                raise SceneError(
                    f"Scene.{name} must be a {kind.__name__}, got {getattr(self, name)!r}"
                )

    def replace(self, **changes: Any) -> Scene:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def frame_time_s(self) -> float:
        """Scan period of one frame (s)."""
        return self.acquisition.frame_time_s(self.view.height_px, self.view.width_px)

    def advanced(self, dt_s: float) -> Scene:
        """The same scene ``dt_s`` later: pipettes moved by their velocities, time advanced."""
        poses = tuple(replace(p, tip_um=p.tip_at(dt_s)) for p in self.pipettes)
        return replace(self, pipettes=poses, time_s=self.time_s + dt_s)
