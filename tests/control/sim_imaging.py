"""A localiser stand-in for the control tests: images and tips from the simulated rig's truth.

``SimImaging`` implements ``patchpilot.control.Imaging``. Each snap lets one frame period of
the ``SimClock`` pass, then reads every simulated manipulator's PHYSICAL tip (allowed here: this
plays the camera and the localiser) and

- renders each tip as a spot whose blur grows with its distance from the focal plane (so the
  controller's sharpness-against-focus sweep has something real to measure), on a noisy
  background;
- reports a detection for each tip inside the frame and within the depth of field, at the
  true position plus Gaussian noise, sometimes missing one, sometimes adding a spurious tip.

The real localiser (network on the simulated two-photon camera) replaces this in the
experiment wiring; the controller cannot tell them apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from patchpilot.clock import Clock, SimClock
from patchpilot.hardware.simulated import SimulatedManipulator
from patchpilot.types import Frame, TipDetection


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
    ) -> None:
        self.manipulators = dict(manipulators)
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
        low, high = self.focus_limits_um
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"focus {value} µm is not a finite value within [{low}, {high}] µm")
        self._focus_um = float(value)

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
        for manipulator in self.manipulators.values():
            tip = manipulator.true_tip_sample_um()
            x_px, y_px = frame.sample_to_pixel(float(tip[0]), float(tip[1]))
            defocus_um = float(tip[2]) - self._focus_um
            self._render_spot(image, x_px, y_px, defocus_um)
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
        self._rng.shuffle(detections)  # type: ignore[arg-type]
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

    def _render_spot(
        self, image: NDArray[np.float32], x_px: float, y_px: float, defocus_um: float
    ) -> None:
        """A Gaussian spot whose width grows and peak falls away from focus."""
        sigma0_px = 1.2
        sigma_px = math.hypot(sigma0_px, 0.45 * defocus_um / self.pixel_size_um)
        amplitude = 400.0 * (sigma0_px / sigma_px) ** 2
        reach = math.ceil(4.0 * sigma_px)
        x0, x1 = max(0, math.floor(x_px) - reach), min(self.width_px, math.floor(x_px) + reach + 1)
        y0, y1 = max(0, math.floor(y_px) - reach), min(self.height_px, math.floor(y_px) + reach + 1)
        if x0 >= x1 or y0 >= y1:
            return
        xs = np.arange(x0, x1) - x_px
        ys = np.arange(y0, y1) - y_px
        spot = amplitude * np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2.0 * sigma_px**2))
        image[y0:y1, x0:x1] += spot.astype(np.float32)
