"""The imaging stand-in: images and tips from the simulated rig's truth (no network).

``SimImaging`` implements ``patchpilot.control.Imaging``. Each snap lets one frame period of
the ``SimClock`` pass, then reads every simulated manipulator's PHYSICAL tip (allowed here: this
plays the camera and the localiser) and

- renders each pipette as a dark glass shank on a noisy background, with the geometry of
  the two-photon image (a sharp dark band where the shank crosses the focal plane, a soft
  shadow of the glass above focus behind it, nothing where the glass is below focus), so the
  controller's depth sweep has something real to measure;
- reports a detection for each tip inside the frame and within the depth of field, at the
  true position plus Gaussian noise, sometimes missing one, sometimes adding a spurious tip.

It is fast (a benchmark of hundreds of scenarios runs in minutes) but hides how real images
and the real localiser behave: ``patchpilot.scenarios.rendered`` is the honest counterpart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from patchpilot.clock import Clock, SimClock
from patchpilot.config import checked_focus_um
from patchpilot.hardware.simulated import SimulatedManipulator
from patchpilot.types import Frame, TipDetection

__all__ = ["ImagingNoise", "SimImaging", "draw_shank"]


@dataclass(frozen=True)
class ImagingNoise:
    """How imperfect the stand-in localiser is."""

    position_sigma_um: float = 0.4
    miss_rate: float = 0.03
    spurious_rate: float = 0.03
    depth_of_field_um: float = 6.0
    background_sigma: float = 2.0


class SimImaging:
    """Frames and tips of the simulated rig (see the module docstring).

    Parameters
    ----------
    manipulators
        The simulated manipulators whose tips are imaged.
    clock
        The simulation's clock; each snap advances it by one frame period (or, on a real
        clock, waits one frame period).
    width_px, height_px, pixel_size_um, fov_center_um
        The field of view.
    frame_rate_hz
        Frames per second of clock time.
    noise
        Localiser imperfections.
    seed
        Noise seed.
    angles_deg
        Each pipette's (pitch, yaw) in degrees, for drawing its shank.

    Raises
    ------
    ValueError
        A manipulator without angles.
    """

    def __init__(
        self,
        manipulators: Mapping[str, SimulatedManipulator],
        clock: Clock,
        *,
        width_px: int = 256,
        height_px: int = 256,
        pixel_size_um: float = 1.0,
        fov_center_um: tuple[float, float] = (0.0, 0.0),
        frame_rate_hz: float = 30.0,
        focus_limits_um: tuple[float, float] = (-400.0, 400.0),
        noise: ImagingNoise | None = None,
        seed: int = 0,
        angles_deg: Mapping[str, tuple[float, float]],
    ) -> None:
        missing = sorted(set(manipulators) - set(angles_deg))
        if missing:
            raise ValueError(f"no pitch and yaw given for {missing}")
        self.manipulators = dict(manipulators)
        self.angles_deg = {name: angles_deg[name] for name in self.manipulators}
        self.clock = clock
        self.width_px = width_px
        self.height_px = height_px
        self.pixel_size_um = pixel_size_um
        self.fov_center_um = fov_center_um
        self.frame_period_s = 1.0 / frame_rate_hz
        self.focus_limits_um = focus_limits_um
        self.noise = noise or ImagingNoise()
        self._rng = np.random.default_rng(seed)
        self._focus_um = 0.0
        self._index = 0
        self._backgrounds = [
            (
                50.0 + self._rng.normal(0.0, self.noise.background_sigma, (height_px, width_px))
            ).astype(np.float32)
            for _ in range(8)
        ]
        self.snaps = 0

    @property
    def focus_um(self) -> float:
        return self._focus_um

    @focus_um.setter
    def focus_um(self, value: float) -> None:
        self._focus_um = checked_focus_um(value, self.focus_limits_um)

    def snap(self, focus_um: float | None = None) -> tuple[Frame, list[TipDetection]]:
        """Let one frame period pass, then image the tips (at ``focus_um`` if given)."""
        if focus_um is not None:
            self.focus_um = focus_um
        if isinstance(self.clock, SimClock):
            self.clock.advance(self.frame_period_s)
        else:
            self.clock.sleep(self.frame_period_s)  # real time: a camera takes its time
        return self.capture()

    def capture(self) -> tuple[Frame, list[TipDetection]]:
        """Image the tips at the current clock time and focus (no time passes)."""
        self.snaps += 1
        self._index += 1
        image = self._backgrounds[self._index % len(self._backgrounds)].copy()
        frame = Frame(
            image=image,
            index=self._index,
            timestamp_s=self.clock.now(),
            pixel_size_um=self.pixel_size_um,
            fov_center_um=self.fov_center_um,
            focus_um=self._focus_um,
        )
        detections: list[TipDetection] = []
        noise = self.noise
        for name, manipulator in self.manipulators.items():
            tip = manipulator.true_tip_sample_um()
            x_px, y_px = frame.sample_to_pixel(float(tip[0]), float(tip[1]))
            defocus_um = float(tip[2]) - self._focus_um
            draw_shank(image, frame, tip, *self.angles_deg[name])
            inside = 2.0 <= x_px <= self.width_px - 3.0 and 2.0 <= y_px <= self.height_px - 3.0
            if not inside or abs(defocus_um) > noise.depth_of_field_um:
                continue
            if self._rng.random() < noise.miss_rate:
                continue
            jitter = self._rng.normal(0.0, noise.position_sigma_um, 2)
            detections.append(self._detection(frame, tip[0] + jitter[0], tip[1] + jitter[1]))
        if self._rng.random() < noise.spurious_rate:
            x_um, y_um = frame.pixel_to_sample_um(
                self._rng.uniform(0, self.width_px - 1), self._rng.uniform(0, self.height_px - 1)
            )
            detections.append(self._detection(frame, x_um, y_um, confidence=0.55))
        self._rng.shuffle(detections)
        return frame, detections

    def _detection(
        self, frame: Frame, x_um: float, y_um: float, confidence: float = 0.9
    ) -> TipDetection:
        x_px, y_px = frame.sample_to_pixel(float(x_um), float(y_um))
        return TipDetection(
            x_px=x_px,
            y_px=y_px,
            x_um=x_px * self.pixel_size_um,
            y_um=y_px * self.pixel_size_um,
            confidence=confidence,
        )


def draw_shank(
    image: NDArray[np.float32] | NDArray[np.float64],
    frame: Frame,
    tip_um: NDArray[np.float64],
    pitch_deg: float,
    yaw_deg: float,
) -> None:
    """Darken ``image`` (in place) where a pipette's glass is, seen at ``frame.focus_um``:
    a sharp dark band where the shank crosses focus, a soft shadow of the glass above focus
    behind it, nothing where the glass lies below focus (a box around tip and shank)."""
    height_px, width_px = image.shape
    pitch, yaw = math.radians(pitch_deg), math.radians(yaw_deg)
    ux, uy = math.cos(yaw), math.sin(yaw)
    back_um, reach_um = 60.0, 10.0
    corners = [
        (tip_um[0] + a * ux + b * -uy, tip_um[1] + a * uy + b * ux)
        for a in (reach_um, -back_um)
        for b in (-reach_um, reach_um)
    ]
    pixels = np.array([frame.sample_to_pixel(float(x), float(y)) for x, y in corners])
    x0, y0 = (max(int(v), 0) for v in np.floor(pixels.min(axis=0)))
    x1 = min(width_px, int(np.ceil(pixels[:, 0].max())) + 1)
    y1 = min(height_px, int(np.ceil(pixels[:, 1].max())) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    size = frame.pixel_size_um
    xs = frame.fov_center_um[0] + (np.arange(x0, x1) - (width_px - 1) / 2) * size
    ys = frame.fov_center_um[1] + (np.arange(y0, y1) - (height_px - 1) / 2) * size
    dx = xs[None, :] - float(tip_um[0])
    dy = ys[:, None] - float(tip_um[1])
    back = -(dx * ux + dy * uy)  # projected distance back along the shank (µm)
    across = dy * ux - dx * uy
    height = float(tip_um[2]) - frame.focus_um + math.tan(pitch) * back  # axis above focus
    radius = 0.75 + 0.09 * np.maximum(back, 0.0) / math.cos(pitch)
    on_glass = 1.0 / (1.0 + np.exp(-back / 0.4))  # the cone ends at the tip
    inside = np.clip((radius - np.abs(across)) / 0.6 + 0.5, 0.0, 1.0)
    chord_um = radius / math.cos(pitch)
    exclusion = np.exp(-(height**2) / (2.0 * (1.8**2 + chord_um**2))) * inside * on_glass
    beam_um = np.hypot(0.4, 0.3 * np.maximum(height, 0.0))
    shadow = (
        0.45
        / (1.0 + np.exp(-1.7 * ((height - chord_um) / 1.8 - 1.5)))  # glass above focus
        * np.exp(-np.maximum(height, 0.0) / 80.0)
        * np.exp(-(across**2) / (2.0 * (radius**2 + beam_um**2)))
        * on_glass
    )
    factor = (1.0 - 0.85 * exclusion) * (1.0 - shadow)
    image[y0:y1, x0:x1] *= factor.astype(image.dtype)
