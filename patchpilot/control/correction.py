"""Closed-loop correction: measure the tip from the images, compare with the plan, correct.

A ``CorrectionRun`` drives one pipette to one point, frame by frame:

1. find the tip at its expected depth (searching in focus if it is not there) and take the
   median x, y of several detections matched to it by the tracker;
2. sweep the focus from a little below it to ~10 µm above and read its depth from where the
   shank crosses the focal plane (``depth.py``; inside the tissue too);
3. set the tracked offset from this 3-D measurement; if the tip is within
   ``correction_tolerance_um`` of the point, the run has converged; otherwise move toward the
   point, by at most ``max_single_correction_um``, and measure again.

It fails (and the pipette is paused for the operator) when the tip is lost, when the error
does not shrink over several corrections (it keeps growing: a wrong tip, a slipping pipette),
or after too many corrections. The run only decides; the pipette executes its requests (set
the focus, move) and tells it when a move has ended. ``line_deviation_um`` watches a pipette
between corrections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from patchpilot.control.depth import (
    DepthOutOfRange,
    DepthSettings,
    DepthSweep,
    FocusError,
    ShankOutOfView,
)
from patchpilot.control.tracking import TipMatch
from patchpilot.types import Frame

__all__ = [
    "ActionKind",
    "CorrectionAction",
    "CorrectionRun",
    "CorrectionSettings",
    "CorrectionSubject",
    "Sighting",
    "line_deviation_um",
]

Vector = NDArray[np.float64]


class CorrectionSubject(Protocol):
    """The pipette as a correction run sees it (sample frame unless said, µm)."""

    def predicted_tip_um(self) -> Vector:
        """The tip from the current reading through the calibration alone (no offset)."""
        ...

    def expected_tip_um(self) -> Vector:
        """The tip from the current reading, calibration plus tracked offset."""
        ...

    def set_tip_offset(self, offset_um: Vector, sigma_um: float) -> None: ...

    def device_target_um(self, sample_um: Vector) -> Vector:
        """Device reading that puts the tip at ``sample_um`` (calibration plus offset)."""
        ...

    def device_position_um(self) -> Vector: ...

    def device_step_to_sample_um(self, step_um: Vector) -> Vector: ...

    def sample_step_to_device_um(self, step_um: Vector) -> Vector: ...

    def search_radius_um(self) -> float:
        """How far (x, y) from its expected position the tip may be."""
        ...

    @property
    def axis(self) -> Vector:
        """Unit vector of the pipette's advance (sample frame)."""
        ...


@dataclass(frozen=True)
class Sighting:
    """What one frame shows of a pipette: the tracker's match, and every found tip that no
    well-known pipette claims (sample x, y in µm), for telling an uncertain tip apart."""

    frame: Frame
    match: TipMatch | None
    candidates_xy: tuple[Vector, ...] = ()


class ActionKind(str, Enum):
    WAIT = "wait"
    FOCUS = "focus"
    MOVE = "move"
    CONVERGED = "converged"
    FAILED = "failed"


@dataclass(frozen=True)
class CorrectionAction:
    """What the run wants next; ``error_um`` is the last measured distance to the point."""

    kind: ActionKind
    focus_um: float | None = None
    device_target_um: Vector | None = None
    correction_um: float | None = None
    error_um: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class CorrectionSettings:
    """Frame counts and sweep geometry of a correction run (µm)."""

    xy_frames: int = 6
    find_frames: int = 4
    search_step_um: float = 4.0
    search_half_range_um: float = 40.0
    depth: DepthSettings = field(default_factory=lambda: DepthSettings(frames_per_step=2))
    """The depth sweep inside the tissue (its texture needs two frames per focus)."""
    depth_above_tissue: DepthSettings = field(
        default_factory=lambda: DepthSettings(frames_per_step=1, step_um=1.5)
    )
    """The depth sweep in the bath above the tissue."""
    focus_tolerance_um: float = 0.25
    settle_frames: int = 2
    max_iterations: int = 30
    stall_iterations: int = 3
    stall_margin_um: float = 0.2
    measured_sigma_um: float = 0.3
    unswept_sigma_um: float = 2.0
    """How well the depth is known from where the tip was seen, when a measure-only run
    cannot sweep it (e.g. its shank leaves the image): the localiser finds in-focus tips."""
    recovery_radius_um: float = 25.0
    identity_step_um: float = 12.0
    identity_frames: int = 8
    identity_attempts: int = 3


class _Phase(str, Enum):
    FIND = "find"
    SWEEP = "sweep"
    MOVING = "moving"
    BACKING = "backing"  # identity check: backing out along the axis
    LOOKING = "looking"  # identity check: is a tip where ours should now be?


@dataclass
class CorrectionRun:
    """Bring one pipette's tip to ``goal_um`` by measuring and correcting (see module doc).

    Parameters
    ----------
    pipette
        Name, for messages.
    goal_um
        Where the tip must end (sample µm).
    tolerance_um
        Converged when the measured error is at most this.
    max_step_um
        Largest single correction (sample µm).
    lost_after_frames
        Frames without the tip (while looking at its depth) before the run fails.
    settings
        Frame counts and sweeps.
    measure_only
        Measure once and converge without moving (``goal_um`` is then only a guess).
    surface_z_um
        The tissue surface: a tip above it needs a shorter depth sweep.
    final
        The last correction of an approach (the standoff point). Before it, a tip whose
        shank leaves the image (no depth sweep possible) is corrected in x, y at the focus
        where it was seen, and an error that stops shrinking within twice the tolerance
        (steps lost in backlash) is good enough to go on; at the end both fail instead.
    confirm_identity
        The tip's position is too uncertain to trust the tracker's pick among several tips:
        after measuring a candidate, back the pipette out by ``identity_step_um`` along its
        axis (which can never bring it closer to anything) and keep the candidate only if a
        tip appears where it should have gone. Switched on by itself when the tracker does
        not find the tip where expected (candidates are then sought within
        ``recovery_radius_um``).
    """

    pipette: str
    goal_um: Vector
    tolerance_um: float
    max_step_um: float
    lost_after_frames: int
    settings: CorrectionSettings = field(default_factory=CorrectionSettings)
    measure_only: bool = False
    confirm_identity: bool = False
    surface_z_um: float = 0.0
    final: bool = True
    errors_um: list[float] = field(default_factory=list)
    corrections_um: list[float] = field(default_factory=list)
    _phase: _Phase = _Phase.FIND
    _focus_request: float | None = None
    _search_center: float | None = None
    _search_index: int = 0
    _misses: int = 0
    _frames_here: int = 0
    _settle: int = 0
    _xy: list[Vector] = field(default_factory=list)
    _sweep: DepthSweep | None = None
    _sweep_retries: int = 0
    _stalls: int = 0
    _candidate: Vector | None = None
    _rejected: list[Vector] = field(default_factory=list)
    _identity_attempts: int = 0
    _hits: list[Vector] = field(default_factory=list)
    _stayed: int = 0

    @property
    def phase(self) -> str:
        return self._phase.value

    def move_ended(self, finished: bool) -> CorrectionAction:
        """The correction move ended; measure again (or fail if it did not finish)."""
        if not finished:
            return self._fail("the correction move did not finish")
        if self._phase is _Phase.BACKING:
            self._phase = _Phase.LOOKING
            self._frames_here = 0
            self._hits = []
            self._stayed = 0
            self._settle = self.settings.settle_frames
            return CorrectionAction(ActionKind.WAIT)
        self._restart_find()
        self._settle = self.settings.settle_frames
        return CorrectionAction(ActionKind.WAIT)

    def _restart_find(self) -> None:
        self._phase = _Phase.FIND
        self._focus_request = None
        self._search_center = None
        self._search_index = 0
        self._frames_here = 0
        self._misses = 0
        self._xy = []

    def _fail(self, reason: str) -> CorrectionAction:
        last = self.errors_um[-1] if self.errors_um else None
        return CorrectionAction(
            ActionKind.FAILED, error_um=last, reason=f"{self.pipette}: {reason}"
        )

    def on_frame(self, sighting: Sighting, subject: CorrectionSubject) -> CorrectionAction:
        """Use one frame (taken while this run holds the focus) and say what to do next."""
        if self._phase in (_Phase.MOVING, _Phase.BACKING):
            return CorrectionAction(ActionKind.WAIT)
        if self._settle > 0:
            self._settle -= 1
            return CorrectionAction(ActionKind.WAIT)
        if self._phase is _Phase.FIND:
            return self._find(sighting, subject)
        if self._phase is _Phase.LOOKING:
            return self._look(sighting, subject)
        return self._sweep_step(sighting.frame, subject)

    def _pick(self, sighting: Sighting, subject: CorrectionSubject) -> Vector | None:
        """This frame's position of the tip: the tracker's match, or (identity unknown) the
        unclaimed tip nearest to where it is expected, consistent with earlier picks."""
        if not self.confirm_identity:
            match = sighting.match  # ambiguous too: the stall check catches a wrong tip
            return None if match is None else np.asarray(match.seen_um[:2], dtype=np.float64)
        anchor = (
            np.median(np.array(self._xy), axis=0) if self._xy else subject.expected_tip_um()[:2]
        )
        radius = (
            3.0 if self._xy else max(subject.search_radius_um(), self.settings.recovery_radius_um)
        )
        best: Vector | None = None
        for xy in sighting.candidates_xy:
            if any(float(np.linalg.norm(xy - r)) < 3.0 for r in self._rejected):
                continue
            distance = float(np.linalg.norm(xy - anchor))
            if distance <= radius:
                best, radius = xy, distance
        return best

    def _find(self, sighting: Sighting, subject: CorrectionSubject) -> CorrectionAction:
        s = self.settings
        frame = sighting.frame
        if self._focus_request is None:
            self._search_center = float(subject.expected_tip_um()[2])
            self._focus_request = self._search_center
            return CorrectionAction(ActionKind.FOCUS, focus_um=self._focus_request)
        if abs(frame.focus_um - self._focus_request) > s.focus_tolerance_um:
            return CorrectionAction(ActionKind.FOCUS, focus_um=self._focus_request)
        self._frames_here += 1
        seen = self._pick(sighting, subject)
        if seen is not None:
            self._xy.append(seen)
            self._misses = 0
        else:
            self._misses += 1
        if len(self._xy) >= s.xy_frames:
            return self._start_sweep(subject)
        if 2 * len(self._xy) < s.xy_frames and self._misses >= s.find_frames:
            self._xy = []  # a few stray sightings (a spurious tip): keep searching
        if self._xy and self._misses >= self.lost_after_frames:
            return self._fail(f"tip lost ({self._misses} frames without it)")
        if not self._xy and self._frames_here >= s.find_frames:
            if not self.confirm_identity and self._search_index == 0:
                # Not where the tracker expects it (a blind move drifted): look wider among
                # unclaimed tips, and make sure by backing out that the one picked is ours.
                self.confirm_identity = True
                self._frames_here = 0
                return CorrectionAction(ActionKind.WAIT)
            return self._next_search_focus()
        return CorrectionAction(ActionKind.WAIT)

    def _next_search_focus(self) -> CorrectionAction:
        s = self.settings
        self._search_index += 1
        k = (self._search_index + 1) // 2
        offset = k * s.search_step_um * (1 if self._search_index % 2 else -1)
        if k * s.search_step_um > s.search_half_range_um:
            return self._fail(
                f"tip lost: not seen within {s.search_half_range_um:g} µm of its expected depth"
            )
        assert self._search_center is not None
        self._focus_request = self._search_center + offset
        self._frames_here = 0
        return CorrectionAction(ActionKind.FOCUS, focus_um=self._focus_request)

    def _start_sweep(
        self, subject: CorrectionSubject, guess_um: float | None = None
    ) -> CorrectionAction:
        assert self._focus_request is not None
        self._phase = _Phase.SWEEP
        axis = subject.axis
        pitch_deg = math.degrees(math.asin(float(np.clip(-axis[2], -1.0, 1.0))))
        yaw_deg = math.degrees(math.atan2(float(axis[1]), float(axis[0])))
        xy = np.median(np.array(self._xy), axis=0)
        center = self._focus_request if guess_um is None else guess_um
        settings = self.settings
        above = center - settings.depth.search_half_range_um > self.surface_z_um
        depth = settings.depth_above_tissue if above else settings.depth
        self._sweep = DepthSweep(xy, pitch_deg, yaw_deg, center, depth)
        return CorrectionAction(ActionKind.FOCUS, focus_um=self._sweep.next_focus_um)

    def _sweep_step(self, frame: Frame, subject: CorrectionSubject) -> CorrectionAction:
        s = self.settings
        sweep = self._sweep
        assert sweep is not None
        wanted = sweep.next_focus_um
        if wanted is not None:
            if abs(frame.focus_um - wanted) > s.focus_tolerance_um:
                return CorrectionAction(ActionKind.FOCUS, focus_um=wanted)
            try:
                sweep.add(frame)
            except FocusError as exc:
                return self._fail(f"cannot measure the tip's depth: {exc}")
            following = sweep.next_focus_um
            if following is not None:
                return CorrectionAction(ActionKind.FOCUS, focus_um=following)
        xy = sweep.tip_xy_um
        sigma_um = s.measured_sigma_um
        try:
            depth_um = sweep.estimate().z_um
        except FocusError as exc:
            retry = self._sweep_retries < 2
            if retry and isinstance(exc, DepthOutOfRange):
                self._sweep_retries += 1
                shifted = sweep.guess_um + exc.direction * sweep.settings.search_half_range_um
                return self._start_sweep(subject, shifted)
            if retry and not isinstance(exc, ShankOutOfView):
                # No clear crossing: most often the tip's x, y was off (a localiser scatters
                # by a micrometre or two); find it again from fresh detections and re-sweep.
                self._sweep_retries += 1
                self._restart_find()
                return CorrectionAction(ActionKind.WAIT)
            # Near the edge of the field the shank may leave the image: on the way (not at
            # the end) the tip is then corrected sideways only, its depth swept further in.
            degraded = isinstance(exc, ShankOutOfView) and not self.final
            if not (self.measure_only or degraded):
                return self._fail(f"cannot measure the tip's depth: {exc}")
            # Only where it stands: in focus where it was found is still worth knowing.
            assert self._focus_request is not None
            depth_um, sigma_um = self._focus_request, s.unswept_sigma_um
        self._sweep_retries = 0
        measured = np.array([xy[0], xy[1], depth_um])
        if self.confirm_identity:
            return self._back_out(measured, subject)
        return self._evaluate(measured, subject, sigma_um)

    def _back_out(self, candidate: Vector, subject: CorrectionSubject) -> CorrectionAction:
        """Identity check, step 1: back out along the axis (the body only leaves space)."""
        self._candidate = candidate
        self._phase = _Phase.BACKING
        step = subject.sample_step_to_device_um(-self.settings.identity_step_um * subject.axis)
        return CorrectionAction(
            ActionKind.MOVE, device_target_um=subject.device_position_um() + step
        )

    def _look(self, sighting: Sighting, subject: CorrectionSubject) -> CorrectionAction:
        """Identity check, step 2: the candidate is ours if a tip now shows up about where the
        step took it (backlash may shorten the step) and none is left where it was (another
        pipette's tip would have stayed put)."""
        s = self.settings
        assert self._candidate is not None
        moved = self._candidate - s.identity_step_um * subject.axis
        if abs(sighting.frame.focus_um - float(moved[2])) > s.focus_tolerance_um:
            return CorrectionAction(ActionKind.FOCUS, focus_um=float(moved[2]))
        self._frames_here += 1
        reach_um = 0.4 * s.identity_step_um
        near = [
            xy for xy in sighting.candidates_xy if float(np.linalg.norm(xy - moved[:2])) < reach_um
        ]
        if near:
            self._hits.append(min(near, key=lambda xy: float(np.linalg.norm(xy - moved[:2]))))
        if any(
            float(np.linalg.norm(xy - self._candidate[:2])) < 1.5 for xy in sighting.candidates_xy
        ):
            self._stayed += 1
        if self._frames_here < s.identity_frames:
            return CorrectionAction(ActionKind.WAIT)
        if len(self._hits) >= 2 and self._stayed <= 1:
            # Ours: teach the tracker where it is, then measure it properly from here.
            xy = np.median(np.array(self._hits), axis=0)
            here = np.array([xy[0], xy[1], moved[2]])
            subject.set_tip_offset(here - subject.predicted_tip_um(), 2.0)
            self.confirm_identity = False
            self._restart_find()
            return CorrectionAction(ActionKind.WAIT)
        self._rejected.append(self._candidate[:2])
        self._identity_attempts += 1
        if self._identity_attempts >= s.identity_attempts:
            return self._fail("could not tell its tip from the others (none moved with it)")
        self._restart_find()
        return CorrectionAction(ActionKind.WAIT)

    def _evaluate(
        self, measured: Vector, subject: CorrectionSubject, sigma_um: float | None = None
    ) -> CorrectionAction:
        s = self.settings
        sigma = s.measured_sigma_um if sigma_um is None else sigma_um
        subject.set_tip_offset(measured - subject.predicted_tip_um(), sigma)
        error = float(np.linalg.norm(measured - self.goal_um))
        previous = self.errors_um[-1] if self.errors_um else math.inf
        self.errors_um.append(error)
        if error <= self.tolerance_um or self.measure_only:
            return CorrectionAction(ActionKind.CONVERGED, error_um=error)
        self._stalls = self._stalls + 1 if error > previous - s.stall_margin_um else 0
        if self._stalls >= s.stall_iterations:
            if not self.final and error <= 2.0 * self.tolerance_um:
                # Steps this small can vanish in backlash; close enough to go on, the
                # standoff point is converged within the tolerance.
                return CorrectionAction(ActionKind.CONVERGED, error_um=error)
            return self._fail(
                f"error keeps growing: {error:.1f} µm after {len(self.errors_um)} measurements "
                f"(was {min(self.errors_um):.1f} µm)"
            )
        if len(self.errors_um) > s.max_iterations:
            return self._fail(f"not converged after {s.max_iterations} corrections")
        here = subject.device_position_um()
        step = subject.device_target_um(self.goal_um) - here
        size = float(np.linalg.norm(subject.device_step_to_sample_um(step)))
        if size > self.max_step_um:
            step = step * (self.max_step_um / size)
            size = self.max_step_um
        self.corrections_um.append(size)
        self._phase = _Phase.MOVING
        return CorrectionAction(
            ActionKind.MOVE, device_target_um=here + step, correction_um=size, error_um=error
        )


def line_deviation_um(point_um: Vector, start_um: Vector, end_um: Vector) -> float:
    """Distance (µm) from ``point_um`` to the straight line through ``start_um`` and ``end_um``."""
    direction = end_um - start_um
    length = float(np.linalg.norm(direction))
    offset = point_um - start_um
    if length == 0.0:
        return float(np.linalg.norm(offset))
    unit = direction / length
    return float(np.linalg.norm(offset - (offset @ unit) * unit))
