"""The instrument: two-photon optics, the raster scan and detector chain, and tissue motion.

Defaults are those of a typical in vivo rig (25x/1.05 water objective, galvo scanning at
2 µs a pixel, GaAsP PMT, 12-bit digitiser); :func:`patchpilot.scene.random_scene` varies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from patchpilot.scene._validate import SceneError, _finite, _in_range, _set, _vector

__all__ = ["Acquisition", "Optics", "TissueMotion"]


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
    defocus_slope: float = 0.3
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
