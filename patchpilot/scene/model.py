"""Frozen, validated values that describe one two-photon frame: pipettes, view, optics, scan.

Everything is in the SAMPLE frame in µm (see :mod:`patchpilot.types`): x along image columns,
y along image rows, z along the optical axis positive UP; the brain surface is at z = 0 by
default with tissue below it. Brightness values are relative to the background fluorescence
(1.0 = the dye-filled medium above the brain at full laser power).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.types import pipette_axis

if TYPE_CHECKING:
    from patchpilot.scene.tissue import Tissue

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


class SceneError(ValueError):
    """A scene parameter that cannot be rendered; the message names the field and value."""


def _finite(owner: str, name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SceneError(f"{owner}.{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise SceneError(f"{owner}.{name} must be finite, got {value!r}")
    return number


def _in_range(
    owner: str, name: str, value: Any, low: float, high: float, *, open_low: bool = False
) -> float:
    number = _finite(owner, name, value)
    below = number <= low if open_low else number < low
    if below or number > high:
        bracket = "(" if open_low else "["
        raise SceneError(f"{owner}.{name} must be in {bracket}{low:g}, {high:g}], got {value!r}")
    return number


def _vector(owner: str, name: str, value: Any, size: int) -> tuple[float, ...]:
    try:
        items = tuple(value)
    except TypeError:
        raise SceneError(f"{owner}.{name} must be {size} numbers, got {value!r}") from None
    if len(items) != size:
        raise SceneError(f"{owner}.{name} must be {size} numbers, got {len(items)}: {value!r}")
    return tuple(_finite(owner, name, v) for v in items)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalise fields of a frozen dataclass


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
        _set(
            self,
            "pitch_deg",
            _in_range(owner, "pitch_deg", self.pitch_deg, 0.0, 89.999, open_low=True),
        )
        if self.pitch_deg >= 90.0:
            raise SceneError(f"{owner}.pitch_deg must be below 90 degrees, got {self.pitch_deg!r}")
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
class Optics:
    """The two-photon point spread function and the field's illumination.

    Defaults: a 25x/1.05 water objective, underfilled, in vivo (lateral FWHM ~0.9 µm, axial
    FWHM ~4 µm).
    """

    psf_sigma_xy_um: float = 0.4
    psf_sigma_z_um: float = 1.8
    axial_fade_um: float = 15.0
    """Decay length of out-of-focus fluorescence from dye-filled lumens (µm from focus)."""
    defocus_slope: float = 0.35
    """Growth of the excitation beam's lateral sigma per µm above focus (half the cone's
    tangent): sets how fast shank shadows widen and soften with height."""
    depth_of_field_um: float = 8.0
    """A tip within half this distance of focus is flagged in focus."""
    vignetting: float = 0.35
    """Fraction of excitation lost in the frame's corners (quadratic fall-off)."""
    illumination_tilt: tuple[float, float] = (0.0, 0.0)
    """Linear brightness change from the centre to the right and bottom edges (fractions)."""
    attenuation_length_um: float = 200.0
    """Length over which the fluorescence excited at focus falls by 1/e below the surface."""

    def __post_init__(self) -> None:
        for name, low, high in (
            ("psf_sigma_xy_um", 0.0, 20.0),
            ("psf_sigma_z_um", 0.0, 100.0),
            ("axial_fade_um", 0.0, 1e4),
            ("defocus_slope", 0.0, 5.0),
            ("depth_of_field_um", 0.0, 1e4),
            ("attenuation_length_um", 0.0, 1e6),
        ):
            _set(
                self, name, _in_range("Optics", name, getattr(self, name), low, high, open_low=True)
            )
        _set(self, "vignetting", _in_range("Optics", "vignetting", self.vignetting, 0.0, 0.95))
        tilt = _vector("Optics", "illumination_tilt", self.illumination_tilt, 2)
        if max(abs(t) for t in tilt) >= 0.9:
            raise SceneError(f"Optics.illumination_tilt must be within (-0.9, 0.9), got {tilt}")
        _set(self, "illumination_tilt", tilt)


@dataclass(frozen=True)
class Acquisition:
    """Raster scan timing and the detector chain (PMT, digitiser).

    Expected photons per pixel = ``photon_rate_per_us * pixel_dwell_us * laser_power**2 *``
    fluorescence (background = 1). The digitiser reads ``offset_adu + detector_gain_adu *``
    (photons with PMT excess noise) + read noise, clipped to ``bit_depth`` bits.
    """

    pixel_dwell_us: float = 2.0
    line_retrace_ms: float = 0.3
    frame_flyback_ms: float = 1.0
    bidirectional: bool = False
    laser_power: float = 1.0
    """Relative to nominal; two-photon signal goes with its square."""
    photon_rate_per_us: float = 10.0
    """Detected photons per µs of dwell from background fluorescence at nominal power."""
    detector_gain_adu: float = 12.0
    """Digitiser units per detected photon."""
    excess_noise_factor: float = 1.3
    """PMT gain variance factor (1 = pure Poisson)."""
    offset_adu: float = 100.0
    read_noise_adu: float = 3.0
    bit_depth: int = 12

    def __post_init__(self) -> None:
        for name, low, high in (
            ("pixel_dwell_us", 0.0, 1e4),
            ("laser_power", 0.0, 10.0),
            ("photon_rate_per_us", 0.0, 1e6),
            ("detector_gain_adu", 0.0, 1e5),
        ):
            _set(
                self,
                name,
                _in_range("Acquisition", name, getattr(self, name), low, high, open_low=True),
            )
        for name, low, high in (
            ("line_retrace_ms", 0.0, 1e3),
            ("frame_flyback_ms", 0.0, 1e4),
            ("offset_adu", 0.0, 65535.0),
            ("read_noise_adu", 0.0, 1e4),
        ):
            _set(self, name, _in_range("Acquisition", name, getattr(self, name), low, high))
        _set(
            self,
            "excess_noise_factor",
            _in_range("Acquisition", "excess_noise_factor", self.excess_noise_factor, 1.0, 10.0),
        )
        if self.bit_depth not in (8, 10, 12, 14, 16):
            raise SceneError(
                f"Acquisition.bit_depth must be 8, 10, 12, 14 or 16, got {self.bit_depth!r}"
            )

    @property
    def max_adu(self) -> int:
        """Saturation value of the digitiser."""
        return int(2**self.bit_depth - 1)

    def line_time_s(self, width_px: int) -> float:
        """Time from the start of one line to the start of the next (s)."""
        return width_px * self.pixel_dwell_us * 1e-6 + self.line_retrace_ms * 1e-3

    def frame_time_s(self, height_px: int, width_px: int) -> float:
        """Time from the start of one frame to the start of the next (s)."""
        return height_px * self.line_time_s(width_px) + self.frame_flyback_ms * 1e-3

    def photons_per_unit(self) -> float:
        """Expected detected photons per pixel for fluorescence 1.0 (the background)."""
        return self.photon_rate_per_us * self.pixel_dwell_us * self.laser_power**2

    def background_snr(self, level: float = 1.0) -> float:
        """Shot-noise signal-to-noise ratio of a pixel at fluorescence ``level``."""
        photons = self.photons_per_unit() * level
        return math.sqrt(photons / self.excess_noise_factor) if photons > 0 else 0.0


@dataclass(frozen=True)
class TissueMotion:
    """Global tissue displacement from heartbeat and breathing (sample frame, µm).

    ``displacement(t)`` adds a heartbeat sinusoid and a breathing pulse (sharp, mostly flat)
    along ``direction_deg`` in the image plane, with ``axial_fraction`` of it along z.
    """

    heart_amplitude_um: float = 0.6
    heart_rate_hz: float = 7.0
    breath_amplitude_um: float = 1.5
    breath_rate_hz: float = 1.5
    direction_deg: float = 30.0
    axial_fraction: float = 0.3
    heart_phase: float = 0.0
    breath_phase: float = 0.0

    def __post_init__(self) -> None:
        for name in ("heart_amplitude_um", "breath_amplitude_um"):
            _set(self, name, _in_range("TissueMotion", name, getattr(self, name), 0.0, 100.0))
        for name in ("heart_rate_hz", "breath_rate_hz"):
            _set(self, name, _in_range("TissueMotion", name, getattr(self, name), 0.0, 100.0))
        for name in ("direction_deg", "heart_phase", "breath_phase"):
            _set(self, name, _finite("TissueMotion", name, getattr(self, name)))
        _set(
            self,
            "axial_fraction",
            _in_range("TissueMotion", "axial_fraction", self.axial_fraction, 0.0, 10.0),
        )

    @classmethod
    def still(cls) -> TissueMotion:
        """No motion at all."""
        return cls(heart_amplitude_um=0.0, breath_amplitude_um=0.0)

    @property
    def is_still(self) -> bool:
        return self.heart_amplitude_um == 0.0 and self.breath_amplitude_um == 0.0

    def displacement(self, t_s: NDArray[np.float64] | float) -> NDArray[np.float64]:
        """Displacement (..., 3) in µm at times ``t_s`` (s)."""
        t = np.asarray(t_s, dtype=np.float64)
        heart = self.heart_amplitude_um * np.sin(
            2 * np.pi * self.heart_rate_hz * t + self.heart_phase
        )
        pulse = 0.5 - 0.5 * np.cos(2 * np.pi * self.breath_rate_hz * t + self.breath_phase)
        breath = self.breath_amplitude_um * pulse**3
        along = heart + breath
        angle = np.deg2rad(self.direction_deg)
        return np.stack(
            [along * np.cos(angle), along * np.sin(angle), along * self.axial_fraction], axis=-1
        )


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
