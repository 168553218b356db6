"""Random closed-loop scenarios on simulated manipulators, scored on the PHYSICAL tips.

A scenario builds a random rig (2 to 4 pipettes from the field's corners, imperfect
mountings, backlash, drift, readout noise; the tips start in view), sometimes a vessel to
avoid, gives the controller either a stale calibration (the true one off by up to 50 µm and
turned by up to 3 degrees, still putting the tip in view: mode ``stale``) or lets it calibrate
itself from the images (mode ``autocal``), sets a target per pipette and runs the closed loop
on a ``SimClock`` until every pipette is at its target (or the time runs out).

The controller sees either the stand-in imaging (true tips plus localiser-like noise, fast:
``imaging="standin"``) or rendered two-photon frames and a real localiser
(``imaging="rendered"``). Scoring (``patchpilot.scenarios.scoring``) reads the simulators'
true tips every frame: final error to the standoff point, body-to-body contacts, entries of
bodies into no-go zones inside the tissue, and sideways moves inside the tissue.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np

from patchpilot.acquisition.hook import TipLocaliser
from patchpilot.clock import SimClock
from patchpilot.config import (
    CylinderZone,
    MicroscopeConfig,
    PipetteConfig,
    RigConfig,
    SafetyConfig,
    SimulatedDriverConfig,
    SoftLimits,
)
from patchpilot.control import Controller, PlanError, plan_approach, schedule_moves
from patchpilot.control.geometry import ManipulatorTransform, PipetteGeometry
from patchpilot.control.scheduling import MotionRequest
from patchpilot.events import EventLog
from patchpilot.hardware.simulated import SimulatedManipulator
from patchpilot.scenarios.rendered import RenderedImaging
from patchpilot.scenarios.scoring import ScenarioResult, score_safety
from patchpilot.scenarios.standin import ImagingNoise, SimImaging

Mode = Literal["stale", "autocal"]
ImagingKind = Literal["standin", "rendered"]
_SETTLED = {"at_target", "paused", "fault", "manual", "stopped", "idle"}


def shipped_localiser(num_threads: int = 1) -> TipLocaliser:
    """The shipped default localiser (``Localiser.from_pretrained``), for rendered imaging.

    Raises
    ------
    patchpilot.localisation.LocaliserError
        No shipped weights.
    """
    from patchpilot.localisation.inference import Localiser  # torch: only when needed

    return Localiser.from_pretrained(num_threads=num_threads)


def _random_rig(rng: np.random.Generator, n_pipettes: int, with_zone: bool) -> RigConfig:
    corners = rng.permutation([45.0, 135.0, 225.0, 315.0])[:n_pipettes]
    pipettes = []
    for index, corner in enumerate(corners):
        yaw = float(corner + rng.uniform(-10.0, 10.0))
        radians = math.radians(yaw)
        distance = rng.uniform(100.0, 130.0)
        start = (
            -distance * math.cos(radians),
            -distance * math.sin(radians),
            float(rng.uniform(45.0, 80.0)),
        )
        driver = SimulatedDriverConfig(
            origin_um=start,
            rotation_deg=(
                float(rng.uniform(-1.5, 1.5)),
                float(rng.uniform(-1.5, 1.5)),
                float(yaw + rng.uniform(-3.0, 3.0)),
            ),
            axis_scale=tuple(float(v) for v in rng.uniform(0.98, 1.02, 3)),
            axis_skew_deg=float(rng.uniform(-1.0, 1.0)),
            backlash_um=float(rng.uniform(0.0, 2.0)),
            drift_um_per_min=tuple(float(v) for v in rng.uniform(-0.5, 0.5, 3)),
            readout_noise_um=0.05,
        )
        pipettes.append(
            PipetteConfig(
                name=f"P{index + 1}",
                driver=driver,
                pitch_deg=float(rng.uniform(25.0, 40.0)),
                yaw_deg=yaw,
                soft_limits=SoftLimits(min_um=(0.0, 0.0, 0.0), max_um=(20000.0,) * 3),
                target_standoff_um=2.0,
            )
        )
    zones: tuple[CylinderZone, ...] = ()
    if with_zone:
        x, y = rng.uniform(-70.0, 70.0, 2)
        zones = (
            CylinderZone(
                name="vessel",
                center_xy_um=(float(x), float(y)),
                radius_um=float(rng.uniform(6.0, 14.0)),
                z_min_um=-400.0,
                z_max_um=0.0,
            ),
        )
    return RigConfig(
        name="scenario",
        microscope=MicroscopeConfig(focus_limits_um=(-400.0, 400.0)),
        pipettes=tuple(pipettes),
        safety=SafetyConfig(
            min_clearance_um=15.0,
            tip_lost_after_frames=15,
            safe_height_um=120.0,
            approach_distance_um=80.0,
            nogo_zones=zones,
        ),
    )


def _stale(
    truth: ManipulatorTransform, reading: np.ndarray[Any, Any], rng: np.random.Generator
) -> ManipulatorTransform:
    """The truth off by up to 50 µm at the current reading and turned by up to 3 degrees."""
    direction = rng.normal(size=3)
    offset = direction / np.linalg.norm(direction) * rng.uniform(0.0, 50.0)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = math.radians(rng.uniform(0.0, 3.0))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    turn = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k
    pivot = truth.to_sample(reading)
    matrix = turn @ truth.matrix
    return ManipulatorTransform(matrix, pivot + offset - matrix @ reading[:3])


def _targets(
    rng: np.random.Generator, controller: Controller, result: ScenarioResult
) -> dict[str, np.ndarray[Any, Any]]:
    """A reachable target per pipette that the scheduler can sequence (as an operator would
    pick another cell when told two targets block each other)."""
    safety = controller.config.safety
    for _round in range(20):
        chosen: dict[str, np.ndarray[Any, Any]] = {}
        for name in controller.units:
            for _attempt in range(60):
                target = np.array(
                    [rng.uniform(-60.0, 60.0), rng.uniform(-60.0, 60.0), rng.uniform(-110.0, -40.0)]
                )
                if any(np.linalg.norm(target[:2] - t[:2]) < 30.0 for t in chosen.values()):
                    continue
                try:
                    controller.set_target(name, [float(v) for v in target])
                except PlanError:
                    result.refused_targets += 1
                    continue
                chosen[name] = target
                break
        requests = {}
        for name, unit in controller.units.items():
            here = unit.expected_tip_um()
            plan = (
                plan_approach(unit.geometry, here, chosen[name], safety, uncertainty_um=3.0)
                if name in chosen
                else None
            )
            requests[name] = MotionRequest(unit.geometry, here, plan, 3.0, 3.0)
        try:
            schedule_moves(requests, safety.min_clearance_um)
        except PlanError:
            result.refused_targets += 1
            continue
        return chosen
    return {}


def run_scenario(
    seed: int,
    mode: Mode = "stale",
    n_pipettes: int | None = None,
    time_limit_s: float = 400.0,
    imaging: ImagingKind = "standin",
    localiser: TipLocaliser | None = None,
) -> ScenarioResult:
    """Run one random scenario to the end and score it (see the module docstring).

    Parameters
    ----------
    seed
        Everything random in the scenario (rig, calibration error, targets, noise, tissue).
    mode
        ``stale``: start from a wrong calibration; ``autocal``: calibrate from the images.
    n_pipettes
        2 to 4; None draws it.
    time_limit_s
        Simulated seconds the approach may take.
    imaging
        ``standin`` (true tips plus noise) or ``rendered`` (scene renderer plus localiser).
    localiser
        The localiser of ``rendered`` imaging (None: the shipped one).

    Raises
    ------
    ValueError
        An unknown mode or imaging, or a pipette count outside 2 to 4.
    patchpilot.localisation.LocaliserError
        ``rendered`` imaging without a localiser, and no shipped weights.
    """
    if mode not in ("stale", "autocal"):
        raise ValueError(f"mode must be 'stale' or 'autocal', got {mode!r}")
    if imaging not in ("standin", "rendered"):
        raise ValueError(f"imaging must be 'standin' or 'rendered', got {imaging!r}")
    if n_pipettes is not None and not 2 <= n_pipettes <= 4:
        raise ValueError(f"a scenario has 2 to 4 pipettes, got {n_pipettes}")
    wall = time.perf_counter()
    rng = np.random.default_rng(seed)
    count = n_pipettes or int(rng.integers(2, 5))
    rig = _random_rig(rng, count, with_zone=bool(rng.random() < 0.5))
    result = ScenarioResult(seed, mode, count, imaging=imaging)
    clock = SimClock()
    log = EventLog(tail_size=50)
    manipulators = {
        p.name: SimulatedManipulator.from_config(p, log=log, clock=clock, seed=seed * 31 + i)
        for i, p in enumerate(rig.pipettes)
    }
    camera: SimImaging | RenderedImaging
    if imaging == "rendered":
        camera = RenderedImaging(
            rig, manipulators, clock, localiser or shipped_localiser(), seed=seed
        )
    else:
        angles = {p.name: (p.pitch_deg, p.yaw_deg) for p in rig.pipettes}
        camera = SimImaging(manipulators, clock, noise=ImagingNoise(), seed=seed, angles_deg=angles)
    controller = Controller(rig, manipulators, camera, log, clock)
    if mode == "autocal":
        outcomes = controller.calibrate_all()
        for name, outcome in outcomes.items():
            if not outcome.accepted:
                result.notes.append(f"{name} calibration {outcome.verdict}: {outcome.reason}")
            elif outcome.calibration is not None:
                result.calibration_residuals_um.append(outcome.calibration.rms_residual_um)
        if any(not o.accepted for o in outcomes.values()):
            result.total_simulated_s = clock.now()
            result.wall_s = time.perf_counter() - wall
            return result
    else:
        for pipette in rig.pipettes:
            reading = np.asarray(manipulators[pipette.name].position_um()[:3])
            for _attempt in range(50):  # the operator starts with the tips in view
                stale = _stale(ManipulatorTransform.of_simulated(pipette), reading, rng)
                if controller.coordinator.view.contains(stale.to_sample(reading), 12.0):
                    break
            controller.set_calibration(pipette.name, stale, uncertainty_um=80.0)
    targets = _targets(rng, controller, result)
    geometries = {p.name: PipetteGeometry.from_config(p) for p in rig.pipettes}
    try:
        controller.start_approach()
    except PlanError as exc:
        result.notes.append(f"start refused: {exc}")
        result.total_simulated_s = clock.now()
        result.wall_s = time.perf_counter() - wall
        return result
    start_s = clock.now()
    trajectory: list[dict[str, np.ndarray[Any, Any]]] = []
    reached_at: dict[str, float] = {}
    while clock.now() - start_s < time_limit_s:
        frame, detections = camera.snap()
        controller.on_frame(frame, detections)
        trajectory.append({n: m.true_tip_sample_um() for n, m in manipulators.items()})
        for name, status in controller.status().items():
            if status.state == "at_target" and name not in reached_at:
                reached_at[name] = clock.now() - start_s
        if controller.state.value == "idle" or all(
            unit.state.value in _SETTLED for unit in controller.units.values()
        ):
            break
    result.simulated_s = clock.now() - start_s
    statuses = controller.status()
    for name, target in targets.items():
        geometry = geometries[name]
        status = statuses[name]
        result.corrections += status.corrections
        if status.state in ("paused", "fault", "manual"):
            result.interventions += 1
            result.notes.append(f"{name} {status.state}: {status.paused_because or status.fault}")
        if status.state == "at_target":
            standoff = target - geometry.axis * geometry.standoff_um
            error = float(np.linalg.norm(manipulators[name].true_tip_sample_um() - standoff))
            result.final_errors_um.append(error)
            result.times_to_target_s.append(reached_at.get(name, result.simulated_s))
            if error <= 3.0:
                result.reached += 1
            else:
                result.notes.append(f"{name} at target but {error:.1f} µm off")
        else:
            result.notes.append(f"{name} ended {status.state}")
    result.pipettes = len(targets)
    score_safety(trajectory, geometries, rig.safety, result)
    result.total_simulated_s = clock.now()
    result.wall_s = time.perf_counter() - wall
    return result
