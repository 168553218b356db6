"""Automatic calibration of one pipette: step its axes, find its tip, fit the transform.

The procedure (blocking; every wait has a timeout):

1. Find the tip: look for tips at focus levels spreading out from the expected depth, then
   step the manipulator a little along its x axis. The tip that moved by about the step, where
   the others stayed, is this pipette's: several visible tips do not confuse it.
2. Visit a pattern of points from the start (half and full ``step_um`` along each device
   axis: x and y the way that keeps the tip in view, z upward), each approached from the same
   side so backlash is always taken up the same way. At each point, find the tip near where
   the partial fit expects it, read its depth from a focus sweep (sharpness peak) and its
   x, y from the median of a few detections.
3. Fit the transform by least squares (``fit_axes_robust``: one outlier may be left out) and
   return it with its residuals; the caller reviews it (``review_calibration``).

The whole pattern stays within ``step_um + backlash_takeup_um`` of the start on each axis and
never goes below it (``min_z_um`` is checked); the other pipettes stay parked meanwhile.

STOP ALL (a ``StopSignal``) ends a calibration at once: every move is sent through the
signal's gate and every snapshot checks it first, and a stopped calibration does not return
the pipette to its start; nothing moves until the operator re-arms.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
from numpy.typing import NDArray

from patchpilot.control._protocol import Imaging
from patchpilot.control.calibration import Calibration, CalibrationError, fit_axes_robust
from patchpilot.control.geometry import FieldOfView, ManipulatorTransform
from patchpilot.control.stop_signal import CalibrationAborted, StopSignal
from patchpilot.control.tip_search import (
    MOVED_UM,
    CalibrationSettings,
    FocusOutOfTravel,
    PipetteAngles,
    TipMeasurement,
    any_tip_near,
    consistent_tips,
    measure_tip_3d,
)
from patchpilot.events import EventKind, EventLog
from patchpilot.hardware import Manipulator, ManipulatorError, MoveStatus

__all__ = [
    "CalibrationSettings",
    "PipetteAngles",
    "TipMeasurement",
    "calibrate_pipette",
    "measure_tip_3d",
]

Vector = NDArray[np.float64]


class _Stepper:
    """Moves one manipulator and waits, with a timeout, treating anything but FINISHED as fatal.

    Moves go through the stop signal's gate: none is sent once STOP ALL was pressed.
    """

    def __init__(
        self, manipulator: Manipulator, settings: CalibrationSettings, stop: StopSignal
    ) -> None:
        self.manipulator = manipulator
        self.settings = settings
        self.stop = stop

    def go(self, target_um: Vector) -> None:
        with self.stop.gate():
            handle = self.manipulator.move_to(
                [float(v) for v in target_um[:3]], self.settings.speed_um_s
            )
        status = handle.wait(self.settings.move_timeout_s)
        self.stop.check()  # a stop ends the move INTERRUPTED: say why
        if status is not MoveStatus.FINISHED:
            if status is MoveStatus.PENDING:
                self.manipulator.stop()
            raise CalibrationError(
                f"{self.manipulator.name}: calibration move ended {status.value} "
                f"{handle.reason}".strip()
            )

    def go_backlash_free(self, target_um: Vector, approach: Vector) -> None:
        self.go(target_um + approach)
        self.go(target_um)

    def here(self) -> Vector:
        return np.asarray(self.manipulator.position_um()[:3], dtype=np.float64)


def _identify(
    imaging: Imaging,
    stepper: _Stepper,
    guess_um: Vector,
    radius_um: float,
    settings: CalibrationSettings,
) -> tuple[Vector, list[Vector], float]:
    """Find this pipette's tip among the visible ones by moving it.

    Returns its x, y (µm), the x, y of the tips that did not move, and the focus used.
    """
    focus = float(guess_um[2])
    offsets = [0.0]
    steps = int(settings.search_half_range_um // settings.search_step_um)
    for k in range(1, steps + 1):
        offsets += [k * settings.search_step_um, -k * settings.search_step_um]
    start = stepper.here()
    for offset in offsets:
        focus = float(guess_um[2]) + offset
        try:
            if not any_tip_near(imaging, focus, guess_um[:2], radius_um, stepper.stop):
                continue  # one frame says nothing is in focus here: no need for three
        except FocusOutOfTravel:
            continue  # beyond the focus drive's travel

        before = consistent_tips(imaging, focus, guess_um[:2], radius_um, stepper.stop)
        if not before:
            continue
        stepper.go(start + np.array([settings.wiggle_um, 0.0, 0.0]))
        after = consistent_tips(
            imaging, focus, guess_um[:2], radius_um + 2 * settings.wiggle_um, stepper.stop
        )
        stepper.go(start)
        moved = [b for b in before if all(float(np.linalg.norm(b - a)) > MOVED_UM for a in after)]
        arrived = [a for a in after if all(float(np.linalg.norm(a - b)) > MOVED_UM for b in before)]
        pairs = [
            (b, a)
            for b in moved
            for a in arrived
            if 0.4 * settings.wiggle_um <= float(np.linalg.norm(a - b)) <= 2.5 * settings.wiggle_um
        ]
        if len(pairs) == 1:
            tip = pairs[0][0]
            static = [b for b in before if b is not tip]
            return tip, static, focus
        if len(pairs) > 1:
            raise CalibrationError(
                f"{stepper.manipulator.name}: {len(pairs)} tips moved with the pipette; "
                "cannot tell which is its tip"
            )
    raise CalibrationError(
        f"{stepper.manipulator.name}: no tip moved with the pipette within "
        f"{settings.search_half_range_um:g} µm of focus {guess_um[2]:.1f} µm"
    )


_SHANK_SEEN_UM = 25.0
"""Length of shank behind the tip that must stay in view: the depth sweep reads the tip's
depth where the shank crosses focus, up to ~20 µm back from the tip."""


def _pattern(
    prior: ManipulatorTransform,
    tip_xy: Vector,
    view: FieldOfView | None,
    settings: CalibrationSettings,
    yaw_deg: float,
) -> tuple[list[Vector], Vector]:
    """Pattern offsets (device µm) and the backlash approach offset.

    Each axis is stepped half and full ``step_um`` in one direction, z upward (away from the
    tissue). The x and y directions, and a shift of the whole pattern by up to ``step_um``
    along device x and y, are chosen (as the prior predicts the tip's motion) to keep the tip
    and the shank behind it furthest inside the field of view: a tip near the edge of the
    field is first brought further in. Every point is approached from the same side on
    every axis, so backlash is taken up the same way.
    """
    yaw = math.radians(yaw_deg)
    behind = _SHANK_SEEN_UM * np.array([math.cos(yaw), math.sin(yaw)])

    def inside_um(xy: Vector) -> float:
        if view is None:
            return math.inf
        return min(
            min(
                view.width_um / 2 - abs(float(point[0]) - view.center_um[0]),
                view.height_um / 2 - abs(float(point[1]) - view.center_um[1]),
            )
            for point in (xy, xy - behind)
        )

    step = settings.step_um
    z_sign = math.copysign(1.0, prior.matrix[2, 2])
    best: tuple[float, list[Vector], Vector] | None = None
    shifts = (0.0, 0.5 * step, -0.5 * step, step, -step)
    for shift_x in shifts:
        for shift_y in shifts:
            for sign_x in (1.0, -1.0):
                for sign_y in (1.0, -1.0):
                    center = np.array([shift_x, shift_y, 0.0])
                    offsets = [center]
                    for axis, sign in ((0, sign_x), (1, sign_y), (2, z_sign)):
                        for fraction in (0.5, 1.0):
                            point = center.copy()
                            point[axis] += sign * fraction * step
                            offsets.append(point)
                    margin = min(inside_um(tip_xy + prior.matrix[:2] @ o) for o in offsets)
                    # Prefer no shift: 1 µm of margin is worth 0.1 µm less travel.
                    merit = min(margin, 40.0) - 0.1 * float(np.hypot(shift_x, shift_y))
                    if best is None or merit > best[0]:
                        approach = settings.backlash_takeup_um * np.array(
                            [-sign_x, -sign_y, z_sign]
                        )
                        best = (merit, offsets, approach)
    assert best is not None
    return best[1], best[2]


def calibrate_pipette(
    manipulator: Manipulator,
    imaging: Imaging,
    prior: ManipulatorTransform,
    settings: CalibrationSettings | None = None,
    *,
    search_radius_um: float = 400.0,
    min_z_um: float | None = None,
    view: FieldOfView | None = None,
    log: EventLog | None = None,
    angles: PipetteAngles | None = None,
    stop: StopSignal | None = None,
) -> Calibration:
    """Calibrate one pipette by stepping its axes and measuring its tip (blocking).

    Parameters
    ----------
    manipulator
        The pipette's manipulator, at a start position above the tissue.
    imaging
        Snapshots at a chosen focus.
    prior
        What is known so far (an earlier calibration, or the nominal mounting): used for the
        first guess of where the tip is and which way each axis goes.
    settings
        Steps, sweeps and timeouts.
    search_radius_um
        How far (x, y) from the prior's guess the first tip may be.
    min_z_um
        Lowest sample z the pattern may bring the tip to (above the tissue); a tip found
        lower is refused before the pattern starts.
    view
        The field of view; the pattern steps the way that keeps the tip in it.
    log
        Where progress is recorded.
    angles
        The pipette's pitch and yaw (its depth is read where the shank crosses focus);
        default: pitch 30 degrees, yaw from the prior's x axis.
    stop
        STOP ALL: the calibration ends at once when it is set.

    Raises
    ------
    CalibrationAborted
        STOP ALL was pressed: the pipette stays where it stopped.
    CalibrationError
        The tip could not be found or identified, a move failed, or the fit failed. The
        manipulator is returned to its start position when possible.
    """
    settings = settings or CalibrationSettings()
    name = manipulator.name
    stop = stop if stop is not None else StopSignal()
    if angles is None:
        x_axis = prior.matrix[:, 0]
        angles = PipetteAngles(30.0, math.degrees(math.atan2(x_axis[1], x_axis[0])))
    stepper = _Stepper(manipulator, settings, stop)
    start = stepper.here()
    guess = prior.to_sample(start)
    if log is not None:
        log.record(EventKind.CALIBRATION, name, "calibration started", start_um=start)
    try:
        tip_xy, static_xy, focus = _identify(imaging, stepper, guess, search_radius_um, settings)
        if min_z_um is not None and focus - settings.lowest_drop_um < min_z_um:
            raise CalibrationError(
                f"{name}: tip found at z {focus:.1f} µm; the calibration pattern would take it "
                f"below {min_z_um:.1f} µm (too close to the tissue); raise it first"
            )
        offsets, approach = _pattern(prior, tip_xy, view, settings, angles.yaw_deg)
        device_points: list[Vector] = []
        sample_points: list[Vector] = []
        center = np.array([tip_xy[0], tip_xy[1], focus])
        columns = prior.matrix.copy()  # replaced axis by axis as the pattern measures them
        for offset in offsets:
            stepper.go_backlash_free(start + offset, approach)
            here = stepper.here()
            expected = center + columns @ (here - (device_points[0] if device_points else start))
            measured = measure_tip_3d(
                imaging, expected, 0.6 * settings.step_um + 3.0, settings, angles, static_xy, stop
            )
            device_points.append(here)
            sample_points.append(measured.position_um)
            if len(sample_points) == 1:
                center = measured.position_um
            moved = here - device_points[0]
            axis = int(np.argmax(np.abs(moved)))
            if abs(float(moved[axis])) > 0.5 * settings.step_um:
                columns[:, axis] = (measured.position_um - center) / float(moved[axis])
        calibration = fit_axes_robust(name, device_points, sample_points)
    except CalibrationAborted:
        if log is not None:
            log.record(EventKind.CALIBRATION, name, "calibration stopped", reason="STOP ALL")
        raise  # nothing more may move: no return to the start
    except (CalibrationError, ManipulatorError) as exc:
        if log is not None:
            log.record(EventKind.CALIBRATION, name, "calibration failed", reason=str(exc))
        with contextlib.suppress(CalibrationError, ManipulatorError):
            stepper.go(start)  # best effort: leave the pipette where it was (not after a stop)
        if isinstance(exc, CalibrationError):
            raise
        raise CalibrationError(f"{name}: {exc}") from exc
    stepper.go(start)
    if log is not None:
        log.record(
            EventKind.CALIBRATION,
            name,
            "calibration fitted",
            rms_residual_um=calibration.rms_residual_um,
            max_residual_um=calibration.max_residual_um,
            residuals_um=calibration.residuals_um,
            matrix=calibration.transform.matrix,
            offset_um=calibration.transform.offset_um,
            dropped_point_um=calibration.dropped_um,
        )
    return calibration
