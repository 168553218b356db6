"""The dry-run: a whole experiment on a simulated rig, from calibration to every tip at target.

Simulated manipulators with deliberate mounting errors, drift and backlash; the simulated
two-photon microscope behind a real pycromanager acquisition; the shipped localiser; automatic
calibration of every pipette; targets chosen among the labelled nuclei of the simulated
tissue; a planned, collision-free, closed-loop approach of all pipettes. The run ends with a
report folder (``report.json``, ``report.png``, ``events.jsonl``).

Scoring reads the simulators' physical tip positions; the controller never does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.config import RigConfig
from patchpilot.control import PlanError
from patchpilot.events import EventKind
from patchpilot.experiment import Experiment
from patchpilot.types import pipette_axis

__all__ = [
    "DryRunResult",
    "Sample",
    "choose_targets",
    "quicken",
    "run_dry_run",
    "subset_pipettes",
]

_FINAL_STATES = frozenset({"at_target", "fault", "stopped", "paused", "manual"})
_PROGRESS_STATES = ("calibrating", "moving", "approaching", "correcting", "at_target")


@dataclass
class Sample:
    """One moment of the run, for the report's error plot."""

    t_s: float
    true_error_um: dict[str, float]
    states: dict[str, str]


@dataclass
class DryRunResult:
    """What happened, measured against the simulators' physical tips."""

    out_dir: Path
    targets_um: dict[str, tuple[float, float, float]]
    final_points_um: dict[str, tuple[float, float, float]]
    calibration: dict[str, dict[str, Any]]
    final_error_um: dict[str, float]
    controller_error_um: dict[str, float | None]
    final_state: dict[str, str]
    time_to_target_s: dict[str, float | None]
    corrections: dict[str, int]
    samples: list[Sample] = field(default_factory=list)
    duration_s: float = 0.0
    stats: dict[str, float | int] = field(default_factory=dict)
    min_clearance_um: float = math.inf
    """Smallest true distance between two pipette bodies seen during the approach (µm)."""
    plans: dict[str, Any] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    not_calibrated: list[str] = field(default_factory=list)
    """Pipettes whose calibration failed twice: left where they were, counted as failures."""
    approach_refused: str | None = None
    """Why the controller refused to start the approach (nothing moved), or None."""

    @property
    def succeeded(self) -> dict[str, bool]:
        reached = {
            name: self.final_state[name] == "at_target" and self.final_error_um[name] <= 2.0
            for name in self.final_state
        }
        return {**reached, **dict.fromkeys(self.not_calibrated, False)}

    def summary(self) -> dict[str, Any]:
        """The JSON summary (``report.json``)."""
        return {
            "pipettes": {
                name: {
                    "target_um": self.targets_um.get(name),
                    "final_point_um": self.final_points_um.get(name),
                    "final_state": self.final_state[name],
                    "final_error_um": _rounded(self.final_error_um[name]),
                    "controller_error_um": _rounded(self.controller_error_um.get(name)),
                    "time_to_target_s": _rounded(self.time_to_target_s.get(name)),
                    "corrections": self.corrections.get(name, 0),
                    "calibration": self.calibration.get(name, {}),
                    "succeeded": self.succeeded[name],
                }
                for name in self.final_state
            }
            | {
                name: {
                    "final_state": "not calibrated",
                    "calibration": self.calibration.get(name, {}),
                    "succeeded": False,
                }
                for name in self.not_calibrated
            },
            "success_rate": float(np.mean(list(self.succeeded.values()))),
            "final_error_um_median": _rounded(float(np.median(list(self.final_error_um.values())))),
            "final_error_um_max": _rounded(float(np.max(list(self.final_error_um.values())))),
            "min_clearance_um": _rounded(self.min_clearance_um),
            "approach_refused": self.approach_refused,
            "duration_s": _rounded(self.duration_s),
            "acquisition": self.stats,
            "faults": self.faults,
        }


def _rounded(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def subset_pipettes(config: RigConfig, count: int | None) -> RigConfig:
    """The rig with only its first ``count`` pipettes (``--pipettes N``)."""
    if count is None or count == len(config.pipettes):
        return config
    if not 1 <= count <= len(config.pipettes):
        raise ValueError(
            f"--pipettes must be between 1 and {len(config.pipettes)} for rig {config.name!r}, "
            f"got {count}"
        )
    return config.model_copy(update={"pipettes": config.pipettes[:count]})


def quicken(config: RigConfig) -> RigConfig:
    """``--fast``: the same run with a shorter, quicker approach (demo only, not a rig setting).

    The in-tissue speed rises to 30 µm/s and the axial approach starts 50 µm from the target.
    """
    pipettes = tuple(
        p.model_copy(update={"slow_speed_um_s": max(p.slow_speed_um_s, 30.0)})
        for p in config.pipettes
    )
    safety = config.safety.model_copy(
        update={"approach_distance_um": min(config.safety.approach_distance_um, 50.0)}
    )
    return config.model_copy(update={"pipettes": pipettes, "safety": safety})


def final_point_um(config: RigConfig, name: str, target_um: Sequence[float]) -> NDArray[np.float64]:
    """Where the tip should stop: the standoff short of the target along the pipette axis."""
    pipette = config.pipette(name)
    axis = pipette_axis(pipette.pitch_deg, pipette.yaw_deg)
    return np.asarray(target_um, dtype=np.float64) - axis * pipette.target_standoff_um


def choose_targets(
    experiment: Experiment,
    *,
    rng: np.random.Generator,
    depth_range_um: tuple[float, float] = (30.0, 90.0),
    min_separation_um: float = 40.0,
    names: Sequence[str] | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Pick a labelled nucleus for each pipette and aim at its membrane facing the pipette.

    Candidates lie in the central part of the field of view, ``depth_range_um`` below the
    surface; pipettes get the candidates on their own side (each pipette advances along its
    yaw), at least ``min_separation_um`` apart; only ``names`` when given (the calibrated
    ones). Each target is checked by the controller's planner; an unreachable one is skipped
    for the next candidate.

    Raises
    ------
    RuntimeError
        The scene holds too few reachable nuclei for every pipette.
    """
    source = experiment.scene_source
    if source is None:
        raise RuntimeError("targets from nuclei need a simulated scene")
    config = experiment.config
    nuclei = source.tissue.nuclei
    centers = np.asarray(nuclei.centers_um, dtype=np.float64)
    radii = np.asarray(nuclei.radii_um, dtype=np.float64)
    microscope = config.microscope
    half_x = 0.3 * microscope.frame_width_px * microscope.pixel_size_um
    half_y = 0.3 * microscope.frame_height_px * microscope.pixel_size_um
    fov_x, fov_y = microscope.stage_position_um
    surface = config.safety.tissue_surface_z_um
    depth = surface - centers[:, 2]
    inside = (
        (np.abs(centers[:, 0] - fov_x) < half_x)
        & (np.abs(centers[:, 1] - fov_y) < half_y)
        & (depth >= depth_range_um[0])
        & (depth <= depth_range_um[1])
    )
    candidates = [int(i) for i in np.flatnonzero(inside)]
    rng.shuffle(candidates)
    chosen: dict[str, tuple[float, float, float]] = {}
    used: list[NDArray[np.float64]] = []
    for pipette in config.pipettes:
        if names is not None and pipette.name not in names:
            continue
        axis = pipette_axis(pipette.pitch_deg, pipette.yaw_deg)

        # Prefer nuclei on the side the pipette comes from: behind the field centre along
        # its advance direction, so paths do not cross.
        side = (centers[:, :2] - (fov_x, fov_y)) @ axis[:2]
        for index in sorted(candidates, key=lambda i: float(side[i])):
            center = centers[index]
            if any(np.linalg.norm(center[:2] - u[:2]) < min_separation_um for u in used):
                continue
            target = center - axis * radii[index]
            point = (float(target[0]), float(target[1]), float(target[2]))
            try:
                experiment.controller.set_target(pipette.name, point)
            except PlanError as exc:
                experiment.log.record(
                    EventKind.DECISION,
                    "dry-run",
                    "nucleus skipped",
                    pipette=pipette.name,
                    nucleus=int(index),
                    reason=str(exc),
                )
                continue
            chosen[pipette.name] = point
            used.append(center)
            candidates.remove(index)
            experiment.log.record(
                EventKind.DECISION,
                "dry-run",
                "target chosen",
                pipette=pipette.name,
                nucleus=int(index),
                target_um=point,
                nucleus_radius_um=float(radii[index]),
            )
            break
        else:
            raise RuntimeError(
                f"no reachable nucleus left for {pipette.name} ({len(centers)} nuclei in the "
                "tissue); try another --seed"
            )
    return chosen


def _min_body_gap_um(config: RigConfig, tips: Mapping[str, Any]) -> float:
    """Smallest surface distance between any two pipette bodies (cones) at these tips."""
    from patchpilot.control.bodies import batch_distance_um, pipette_body
    from patchpilot.control.geometry import PipetteGeometry

    bodies = [
        pipette_body(PipetteGeometry.from_config(config.pipette(name)), tip)
        for name, tip in tips.items()
    ]
    pairs = [(a, b) for i, a in enumerate(bodies) for b in bodies[i + 1 :]]
    if not pairs:
        return math.inf
    return float(np.min(batch_distance_um(pairs)))


class _Recorder:
    """Samples true errors and states every ``period_s`` on a thread (wall clock)."""

    def __init__(
        self,
        experiment: Experiment,
        finals: Mapping[str, NDArray[np.float64]],
        period_s: float = 0.1,
    ) -> None:
        self._experiment = experiment
        self._finals = finals
        self._period_s = period_s
        self._stop = threading.Event()
        self.samples: list[Sample] = []
        self.min_body_gap_um = math.inf
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="patchpilot-dryrun-rec", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            tips = self._experiment.true_tips_um()
            states = {n: s.state for n, s in self._experiment.controller.status().items()}
            errors = {
                name: float(np.linalg.norm(np.asarray(tips[name]) - final))
                for name, final in self._finals.items()
                if name in tips
            }
            self.min_body_gap_um = min(
                self.min_body_gap_um, _min_body_gap_um(self._experiment.config, tips)
            )
            self.samples.append(Sample(time.monotonic() - self._t0, errors, states))
            self._stop.wait(self._period_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


ProgressFn = Callable[[str, Mapping[str, Any]], None]


def run_dry_run(
    config: RigConfig,
    out_dir: str | Path,
    *,
    seed: int | None = None,
    timeout_s: float = 600.0,
    progress: ProgressFn | None = None,
    on_started: Callable[[Experiment], None] | None = None,
    localiser: Any = None,
) -> DryRunResult:
    """Run the whole dry-run and write the report; returns the measured result.

    Parameters
    ----------
    config
        A simulated rig (``microscope.kind: simulated``, simulated drivers).
    out_dir
        The report folder.
    seed
        Overrides the rig's simulation seed (tissue, noise, target choice).
    timeout_s
        Wall-clock limit of the approach; pipettes not at target by then are stopped.
    progress
        Called with (stage, details) as the run advances (the CLI's console display).
    on_started
        Called with the running experiment (e.g. to serve the panel).
    localiser
        Overrides the configured localiser (tests).

    Raises
    ------
    ValueError
        The rig is not simulated.
    """
    from patchpilot.report import write_report

    if not config.is_simulated:
        raise ValueError(
            f"rig {config.name!r} is not simulated; use `patchpilot run` for real hardware"
        )
    if seed is not None:
        config = config.model_copy(update={"simulation_seed": seed})
    out = Path(out_dir)
    say = progress or (lambda stage, details: None)
    rng = np.random.default_rng(config.simulation_seed)
    started = time.monotonic()
    experiment = Experiment(config, out_dir=out, localiser=localiser)
    recorder: _Recorder | None = None
    with experiment:
        if on_started is not None:
            on_started(experiment)
        if not experiment.wait_for_frames(5, timeout_s=30.0):
            raise RuntimeError("the simulated microscope delivered no localised frame in 30 s")
        say("acquisition", experiment.stats())
        say("calibrating", {"pipettes": experiment.pipette_names})
        outcomes = dict(experiment.controller.calibrate_all())
        for name, outcome in list(outcomes.items()):
            if str(outcome.verdict) in ("failed", "refused"):  # once more, as an operator would
                say("recalibrating", {"pipette": name, "reason": outcome.reason})
                outcomes[name] = experiment.controller.calibrate(name)
        calibration = {
            name: {
                "verdict": str(outcome.verdict),
                "accepted": bool(outcome.accepted),
                "residual_um": _rounded(
                    outcome.calibration.rms_residual_um if outcome.calibration else None
                ),
                "reason": getattr(outcome, "reason", ""),
            }
            for name, outcome in outcomes.items()
        }
        say("calibrated", calibration)
        accepted = [n for n, c in calibration.items() if c["accepted"]]
        if not accepted:
            raise RuntimeError(f"no pipette could be calibrated: {calibration}")
        not_calibrated = [n for n in experiment.pipette_names if n not in accepted]
        targets = choose_targets(experiment, rng=rng, names=accepted)
        finals = {n: final_point_um(config, n, t) for n, t in targets.items()}
        say("targets", targets)
        recorder = _Recorder(experiment, finals)
        recorder.start()
        approach_started = time.monotonic()
        approach_refused: str | None = None
        try:
            experiment.controller.start_approach()
        except PlanError as exc:
            # E.g. a pipette left uncalibrated: its position is unknown, so no other pipette
            # may move near it. Nothing moved; the report says why.
            approach_refused = str(exc)
            experiment.log.record(
                EventKind.DECISION, "dry-run", "approach not started", reason=approach_refused
            )
            say("approach refused", {"reason": approach_refused})
        plans = {n: u.plan for n, u in experiment.controller.units.items() if u.plan is not None}
        reached: dict[str, float | None] = dict.fromkeys(targets)
        deadline = approach_started + (0.0 if approach_refused else timeout_s)
        while time.monotonic() < deadline:
            status = experiment.controller.status()
            for name, st in status.items():
                if st.state == "at_target" and reached.get(name) is None and name in reached:
                    reached[name] = time.monotonic() - approach_started
            say("approach", {n: s.as_dict() for n, s in status.items()})
            if all(status[n].state in _FINAL_STATES for n in targets):
                break
            time.sleep(0.25)
        else:
            if approach_refused is None:
                experiment.log.record(
                    EventKind.FAULT, "dry-run", "approach timed out", timeout_s=timeout_s
                )
                experiment.stop_all()
        time.sleep(0.3)  # a last few samples at rest
        recorder.stop()
        status = experiment.controller.status()
        tips = experiment.true_tips_um()
        result = DryRunResult(
            out_dir=out,
            targets_um=targets,
            final_points_um={n: tuple(float(v) for v in p) for n, p in finals.items()},  # type: ignore[misc]
            calibration=calibration,
            final_error_um={
                n: float(np.linalg.norm(np.asarray(tips[n]) - finals[n])) for n in targets
            },
            controller_error_um={n: status[n].final_error_um for n in targets},
            final_state={n: status[n].state for n in targets},
            time_to_target_s=reached,
            corrections={n: status[n].corrections for n in targets},
            samples=recorder.samples,
            stats=experiment.stats(),
            min_clearance_um=recorder.min_body_gap_um,
            faults=[
                f"{e['source']}: {e['message']} {e.get('reason', e.get('error', ''))}".strip()
                for e in experiment.log.tail(50, EventKind.FAULT)
            ],
            not_calibrated=not_calibrated,
            approach_refused=approach_refused,
        )
        last = experiment.latest()
        result.plans = plans
        result.duration_s = time.monotonic() - started
        write_report(result, config, last)
    say("done", result.summary())
    return result
