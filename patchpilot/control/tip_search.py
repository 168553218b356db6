"""Finding and measuring a tip with blocking snapshots (used by the calibration).

``measure_tip_3d`` looks for the tip near a guess (searching in focus), takes its x, y from
the median of a few detections, then reads its depth from a focus sweep of the shank's
crossing of the focal plane (``depth.py``). ``consistent_tips`` lists the tips seen in most of
a few frames (spurious detections and misses filtered out). Every snapshot first checks the
STOP ALL signal, so a stopped calibration ends at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from patchpilot.control._protocol import Imaging
from patchpilot.control.calibration import CalibrationError
from patchpilot.control.depth import DepthOutOfRange, DepthSettings, DepthSweep, FocusError
from patchpilot.control.stop_signal import StopSignal
from patchpilot.types import Frame, TipDetection

__all__ = [
    "CalibrationSettings",
    "PipetteAngles",
    "TipMeasurement",
    "any_tip_near",
    "consistent_tips",
    "measure_tip_3d",
]

Vector = NDArray[np.float64]

ABOVE_TISSUE_DEPTH = DepthSettings(frames_per_step=1, step_um=1.5)
"""The depth sweep in the bath above the tissue (no texture: one frame per focus)."""


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
    depth
        Focus sweep for the tip's depth (above the tissue one frame per focus and 1.5 µm
        steps are enough: 0.3 µm median absolute error on the scene renderer).
    xy_frames
        Detections averaged (median) for a tip's x, y (the shipped localiser scatters by
        1-2 µm per frame: the median of 10 by about 0.5 µm).
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
    depth: DepthSettings = field(default_factory=lambda: ABOVE_TISSUE_DEPTH)
    xy_frames: int = 10
    speed_um_s: float = 300.0
    move_timeout_s: float = 10.0

    @property
    def lowest_drop_um(self) -> float:
        """How far below its start the tip may go during the pattern: the pattern steps z
        upward; slack for the search's focus step and tilted x, y axes (the pattern may be
        shifted by one step along each)."""
        return self.search_step_um + 0.2 * self.step_um

    @property
    def reach_um(self) -> float:
        """How far from its start any axis goes during the pattern (shift, step, take-up)."""
        return 2.0 * self.step_um + self.backlash_takeup_um


@dataclass(frozen=True)
class TipMeasurement:
    """A tip located in 3-D (sample µm) and how many detections its x, y rest on."""

    position_um: Vector
    detections: int


CONSISTENT_FRAMES = 5
CLUSTER_RADIUS_UM = 4.0
MOVED_UM = 3.0
"""A tip counts as moved by a wiggle when it is farther than this from every tip seen after
(static tips' medians scatter by about a micrometre)."""


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


@dataclass(frozen=True)
class PipetteAngles:
    """A pipette's pitch (below horizontal) and yaw (advance direction), degrees."""

    pitch_deg: float
    yaw_deg: float


class FocusOutOfTravel(CalibrationError):
    """A search or sweep asked for a focus the focus drive cannot reach (nothing moved)."""


def _snap(
    imaging: Imaging, focus_um: float, stop: StopSignal | None
) -> tuple[Frame, list[TipDetection]]:
    if stop is not None:
        stop.check()
    try:
        return imaging.snap(focus_um)
    except ValueError as exc:  # the imaging refuses a focus outside its travel
        raise FocusOutOfTravel(f"cannot image at focus {focus_um:.1f} µm: {exc}") from None


def _median_xy(
    imaging: Imaging,
    focus_um: float,
    near_xy: Vector,
    settings: CalibrationSettings,
    exclude_xy: Sequence[Vector],
    stop: StopSignal | None,
) -> tuple[Vector, int] | None:
    samples: list[Vector] = []
    for _ in range(settings.xy_frames * 2):
        frame, detections = _snap(imaging, focus_um, stop)
        xy = _nearest(frame, detections, near_xy, 4.0, exclude_xy)
        if xy is not None:
            samples.append(xy)
        if len(samples) >= settings.xy_frames:
            break
    if not samples:
        return None
    return np.median(np.array(samples), axis=0), len(samples)


def measure_tip_3d(
    imaging: Imaging,
    guess_um: Vector,
    radius_um: float,
    settings: CalibrationSettings,
    angles: PipetteAngles,
    exclude_xy: Sequence[Vector] = (),
    stop: StopSignal | None = None,
) -> TipMeasurement:
    """Find the tip near ``guess_um`` and measure it in 3-D (blocking).

    Raises
    ------
    CalibrationError
        No tip within ``radius_um`` of the guess at any focus of the search, a tip that
        vanished, or a depth sweep without a clear shank crossing.
    CalibrationAborted
        STOP ALL was pressed.
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
            try:
                frame, detections = _snap(imaging, focus, stop)
            except FocusOutOfTravel:
                break  # beyond the focus drive's travel: search the other focuses
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
    median = _median_xy(imaging, found_focus, found_xy, settings, exclude_xy, stop)
    if median is None:
        raise CalibrationError(f"the tip at {found_xy.round(1).tolist()} µm vanished")
    xy_um, count = median
    z_um = _sweep_depth(imaging, xy_um, found_focus, settings, angles, stop)
    if abs(z_um - found_focus) > 0.5 * settings.depth.min_crossing_um:
        # Seen somewhat out of focus: its x, y again where it is sharp.
        again = _median_xy(imaging, z_um, xy_um, settings, exclude_xy, stop)
        if again is not None:
            xy_um, count = again
    return TipMeasurement(np.array([xy_um[0], xy_um[1], z_um]), count)


def _sweep_depth(
    imaging: Imaging,
    xy_um: Vector,
    guess_um: float,
    settings: CalibrationSettings,
    angles: PipetteAngles,
    stop: StopSignal | None,
) -> float:
    """Depth of the tip at ``xy_um`` from a focus sweep; re-centred when it lies outside."""
    for _attempt in range(3):
        sweep = DepthSweep(xy_um, angles.pitch_deg, angles.yaw_deg, guess_um, settings.depth)
        while (focus := sweep.next_focus_um) is not None:
            frame, _ = _snap(imaging, focus, stop)
            sweep.add(frame)
        try:
            return sweep.estimate().z_um
        except DepthOutOfRange as exc:
            guess_um += exc.direction * settings.depth.search_half_range_um
        except FocusError as exc:
            raise CalibrationError(f"focus sweep failed: {exc}") from None
    raise CalibrationError(f"focus sweep failed: no shank crossing near {guess_um:.1f} µm")


def any_tip_near(
    imaging: Imaging,
    focus: float,
    center_xy: Vector,
    radius_um: float,
    stop: StopSignal | None = None,
) -> bool:
    """Whether one of two frames at ``focus`` shows a tip within ``radius_um`` of a point
    (a real localiser misses a faint tip in some frames)."""
    for _ in range(2):
        frame, detections = _snap(imaging, focus, stop)
        if any(
            float(np.linalg.norm(sample_xy(frame, d) - center_xy)) <= radius_um for d in detections
        ):
            return True
    return False


def consistent_tips(
    imaging: Imaging,
    focus: float,
    center_xy: Vector,
    radius_um: float,
    stop: StopSignal | None = None,
) -> list[Vector]:
    """Tips seen in at least two of ``CONSISTENT_FRAMES`` frames at ``focus`` within
    ``radius_um`` of a point, each the median of its detections.

    Detections of one tip scatter by a micrometre or two from frame to frame (shot noise), so
    they are grouped within ``CLUSTER_RADIUS_UM`` of the group's running median; tips closer
    than that to each other are not told apart here (the planner keeps them farther apart).
    """
    seen: list[list[Vector]] = []
    for _ in range(CONSISTENT_FRAMES):
        frame, detections = _snap(imaging, focus, stop)
        points = [sample_xy(frame, d) for d in detections]
        seen.append([p for p in points if float(np.linalg.norm(p - center_xy)) <= radius_um])
    clusters: list[list[Vector]] = []
    for points in seen:
        for point in points:
            centres = [np.median(np.array(c), axis=0) for c in clusters]
            gaps = [float(np.linalg.norm(c - point)) for c in centres]
            if gaps and min(gaps) < CLUSTER_RADIUS_UM:
                clusters[int(np.argmin(gaps))].append(point)
            else:
                clusters.append([point])
    return [np.median(np.array(c), axis=0) for c in clusters if len(c) >= 2]
