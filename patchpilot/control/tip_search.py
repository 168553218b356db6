"""Finding and measuring a tip with blocking snapshots (used by the calibration).

``measure_tip_3d`` looks for the tip near a guess (searching in focus), reads its depth from a
focus sweep and its x, y from the median of a few detections. ``consistent_tips`` lists the
tips seen in most of a few frames (spurious detections and misses filtered out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from patchpilot.control._protocol import Imaging
from patchpilot.control.calibration import CalibrationError
from patchpilot.control.focus import FocusError, fit_focus_peak, sweep_positions, tip_sharpness
from patchpilot.types import Frame, TipDetection

__all__ = ["CalibrationSettings", "TipMeasurement", "consistent_tips", "measure_tip_3d"]

Vector = NDArray[np.float64]


@dataclass(frozen=True)
class CalibrationSettings:
    """Step sizes, sweeps and timeouts of the calibration (µm, s, µm/s).

    Parameters
    ----------
    step_um
        Distance of each pattern point from the centre along one device axis.
    backlash_takeup_um
        Every point is approached from this far below it on every axis (must exceed the
        largest backlash).
    wiggle_um
        Step along device x used to tell this pipette's tip from the others.
    search_half_range_um, search_step_um
        Focus search for a tip that is not where it is expected.
    sweep_half_range_um, sweep_step_um
        Focus sweep for the tip's depth.
    xy_frames
        Detections averaged (median) for a tip's x, y.
    speed_um_s
        Speed of calibration moves.
    move_timeout_s
        Longest wait for one move.
    """

    step_um: float = 40.0
    backlash_takeup_um: float = 25.0
    wiggle_um: float = 12.0
    search_half_range_um: float = 150.0
    search_step_um: float = 5.0
    sweep_half_range_um: float = 8.0
    sweep_step_um: float = 1.0
    xy_frames: int = 8
    speed_um_s: float = 300.0
    move_timeout_s: float = 10.0

    @property
    def lowest_drop_um(self) -> float:
        """How far below its start the tip may go during the pattern: the pattern steps z
        upward; slack for the search's focus step and tilted x, y axes."""
        return self.search_step_um + 0.1 * self.step_um

    @property
    def reach_um(self) -> float:
        """How far from its start any axis goes during the pattern."""
        return self.step_um + self.backlash_takeup_um


@dataclass(frozen=True)
class TipMeasurement:
    """A tip located in 3-D (sample µm) and how many detections its x, y rest on."""

    position_um: Vector
    detections: int


def sample_xy(frame: Frame, detection: TipDetection) -> Vector:
    return np.asarray(frame.pixel_to_sample_um(detection.x_px, detection.y_px), dtype=np.float64)


def _nearest(
    frame: Frame,
    detections: Sequence[TipDetection],
    guess_xy: Vector,
    radius_um: float,
    exclude: Sequence[Vector] = (),
) -> Vector | None:
    best: Vector | None = None
    best_distance = radius_um
    for detection in detections:
        xy = sample_xy(frame, detection)
        if any(float(np.linalg.norm(xy - other)) < 2.0 for other in exclude):
            continue
        distance = float(np.linalg.norm(xy - guess_xy))
        if distance <= best_distance:
            best, best_distance = xy, distance
    return best


def measure_tip_3d(
    imaging: Imaging,
    guess_um: Vector,
    radius_um: float,
    settings: CalibrationSettings,
    exclude_xy: Sequence[Vector] = (),
) -> TipMeasurement:
    """Find the tip near ``guess_um`` and measure it in 3-D (blocking).

    Raises
    ------
    CalibrationError
        No tip within ``radius_um`` of the guess at any focus of the search, or a focus sweep
        without a clear peak.
    """
    found_xy: Vector | None = None
    found_focus = float(guess_um[2])
    offsets = [0.0]
    steps = int(settings.search_half_range_um // settings.search_step_um)
    for k in range(1, steps + 1):
        offsets += [k * settings.search_step_um, -k * settings.search_step_um]
    for offset in offsets:
        focus = float(guess_um[2]) + offset
        for _ in range(2):
            frame, detections = imaging.snap(focus)
            found_xy = _nearest(frame, detections, guess_um[:2], radius_um, exclude_xy)
            if found_xy is not None:
                break
        if found_xy is not None:
            found_focus = focus
            break
    if found_xy is None:
        raise CalibrationError(
            f"no tip within {radius_um:.0f} µm of ({guess_um[0]:.1f}, {guess_um[1]:.1f}) µm "
            f"at any focus within {settings.search_half_range_um:g} µm of {guess_um[2]:.1f} µm"
        )
    z_um = _sweep_depth(imaging, found_xy, found_focus, settings)
    samples: list[Vector] = []
    for _ in range(settings.xy_frames * 2):
        frame, detections = imaging.snap(z_um)
        xy = _nearest(frame, detections, found_xy, 4.0, exclude_xy)
        if xy is not None:
            samples.append(xy)
        if len(samples) >= settings.xy_frames:
            break
    if not samples:
        raise CalibrationError(f"the tip at {found_xy.round(1).tolist()} µm vanished at its focus")
    xy_um = np.median(np.array(samples), axis=0)
    return TipMeasurement(np.array([xy_um[0], xy_um[1], z_um]), len(samples))


def _sweep_depth(
    imaging: Imaging, xy_um: Vector, center_um: float, settings: CalibrationSettings
) -> float:
    """Depth of the tip at ``xy_um`` from a focus sweep; one re-centred retry."""
    for _attempt in range(3):
        focuses = sweep_positions(center_um, settings.sweep_half_range_um, settings.sweep_step_um)
        sharpness = []
        for focus in focuses:
            frame, _ = imaging.snap(focus)
            x_px, y_px = frame.sample_to_pixel(float(xy_um[0]), float(xy_um[1]))
            try:
                sharpness.append(tip_sharpness(frame.image, x_px, y_px))
            except FocusError:
                sharpness.append(math.nan)
        try:
            return fit_focus_peak(focuses, sharpness)
        except FocusError as exc:
            if "outside it" not in str(exc):
                raise CalibrationError(f"focus sweep failed: {exc}") from None
            peak = int(np.nanargmax(sharpness))
            center_um = focuses[peak]
    raise CalibrationError(f"focus sweep failed: no sharpness peak near {center_um:.1f} µm")


def consistent_tips(
    imaging: Imaging, focus: float, center_xy: Vector, radius_um: float
) -> list[Vector]:
    """Tips seen in at least two of three frames at ``focus`` within ``radius_um`` of a point."""
    seen: list[list[Vector]] = []
    for _ in range(3):
        frame, detections = imaging.snap(focus)
        points = [sample_xy(frame, d) for d in detections]
        seen.append([p for p in points if float(np.linalg.norm(p - center_xy)) <= radius_um])
    clusters: list[list[Vector]] = []
    for points in seen:
        for point in points:
            for cluster in clusters:
                if float(np.linalg.norm(cluster[0] - point)) < 2.0:
                    cluster.append(point)
                    break
            else:
                clusters.append([point])
    return [np.median(np.array(c), axis=0) for c in clusters if len(c) >= 2]
