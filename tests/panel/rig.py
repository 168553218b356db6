"""A small simulated rig for the panel's API tests: a REAL ``Controller`` on simulated
manipulators and a ``SimClock``, imaged by the control tests' truth-based stand-in.

Calibrations are installed from the simulators' true mountings (a previous session's, in
effect), so targets, plans and jogs work at once. Time moves only when a test says so
(``PanelRig.run``), which keeps every assertion on the manipulators deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from patchpilot.clock import SimClock
from patchpilot.config import (
    MicroscopeConfig,
    NoGoZone,
    PanelConfig,
    PipetteConfig,
    RigConfig,
    SafetyConfig,
    SimulatedDriverConfig,
    SoftLimits,
)
from patchpilot.control import Controller
from patchpilot.control.geometry import ManipulatorTransform
from patchpilot.events import EventLog
from patchpilot.hardware import create_manipulators
from patchpilot.hardware.simulated import SimulatedManipulator
from patchpilot.panel import ControllerBackend
from tests.control.sim_imaging import ImagingNoise, SimImaging

_CORNERS = (  # (name, yaw, origin, n_axes)
    ("P1", 45.0, (-95.0, -95.0, 60.0), 3),
    ("P2", 135.0, (95.0, -95.0, 60.0), 3),
    ("P3", 225.0, (95.0, 95.0, 60.0), 4),
)


def rig_config(
    n_pipettes: int = 3,
    *,
    max_jogs_per_s: float = 5.0,
    fast_speed_um_s: float = 400.0,
    soft_max_um: float = 20000.0,
    origins_um: dict[str, tuple[float, float, float]] | None = None,
    zones: tuple[NoGoZone, ...] = (),
) -> RigConfig:
    """Up to three simulated pipettes from the field's corners (the third has 4 axes).

    ``origins_um`` moves tips (sample frame, at the start); ``soft_max_um`` is the upper soft
    limit of every axis (the devices start at 10000 µm).
    """
    pipettes = []
    for name, yaw, corner, n_axes in _CORNERS[:n_pipettes]:
        origin = (origins_um or {}).get(name, corner)
        start = (10000.0,) * n_axes
        pipettes.append(
            PipetteConfig(
                name=name,
                pitch_deg=30.0,
                yaw_deg=yaw,
                soft_limits=SoftLimits(min_um=(0.0,) * n_axes, max_um=(soft_max_um,) * n_axes),
                home_um=(10000.0, 10000.0, min(10400.0, soft_max_um)) + (10000.0,) * (n_axes - 3),
                fast_speed_um_s=fast_speed_um_s,
                slow_speed_um_s=10.0,
                max_speed_um_s=1000.0,
                target_standoff_um=2.0,
                driver=SimulatedDriverConfig(
                    n_axes=n_axes,
                    initial_position_um=start,
                    origin_um=origin,
                    rotation_deg=(0.5, -0.5, yaw + 2.0),
                    readout_noise_um=0.02,
                    latency_ms=2.0,
                ),
            )
        )
    return RigConfig(
        name="panel-test",
        microscope=MicroscopeConfig(focus_limits_um=(-400.0, 400.0), frame_rate_hz=30.0),
        pipettes=tuple(pipettes),
        safety=SafetyConfig(
            min_clearance_um=15.0,
            tip_lost_after_frames=15,
            safe_height_um=120.0,
            approach_distance_um=80.0,
            nogo_zones=zones,
        ),
        panel=PanelConfig(max_jogs_per_s=max_jogs_per_s),
        simulation_seed=3,
    )


def true_transform(pipette: PipetteConfig) -> ManipulatorTransform:
    return ManipulatorTransform.of_simulated(pipette)


@dataclass
class PanelRig:
    """Controller, simulators, imaging and the panel backend of one test."""

    config: RigConfig
    clock: SimClock
    log: EventLog
    manipulators: dict[str, SimulatedManipulator]
    imaging: SimImaging
    controller: Controller
    backend: ControllerBackend
    frames: int = field(default=0)

    def frame(self) -> None:
        """One frame period: image, hand it to the controller and the panel."""
        frame, detections = self.imaging.snap()
        self.controller.on_frame(frame, detections)
        self.backend.on_frame(frame, detections)
        self.frames += 1

    def run(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass, frame by frame."""
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.frame()

    def position(self, name: str) -> np.ndarray[Any, Any]:
        return np.asarray(self.manipulators[name].position_um(), dtype=np.float64)

    def positions(self) -> dict[str, np.ndarray[Any, Any]]:
        return {name: self.position(name) for name in self.manipulators}

    def true_tip(self, name: str) -> np.ndarray[Any, Any]:
        return self.manipulators[name].true_tip_sample_um()

    def close(self) -> None:
        for manipulator in self.manipulators.values():
            manipulator.close()


def build_rig(config: RigConfig | None = None, *, calibrated: bool = True) -> PanelRig:
    """A rig whose pipettes know where they are (``calibrated``) and have seen one frame."""
    config = config or rig_config()
    clock = SimClock()
    log = EventLog(tail_size=5000, clock=clock.now)
    devices = create_manipulators(config, log=log, clock=clock)
    manipulators = {n: d for n, d in devices.items() if isinstance(d, SimulatedManipulator)}
    assert len(manipulators) == len(devices)
    imaging = SimImaging(manipulators, clock, noise=ImagingNoise(miss_rate=0.0), seed=5)
    controller = Controller(config, manipulators, imaging, log, clock)
    backend = ControllerBackend(controller, manipulators=manipulators)
    rig = PanelRig(config, clock, log, manipulators, imaging, controller, backend)
    if calibrated:
        for pipette in config.pipettes:
            controller.set_calibration(pipette.name, true_transform(pipette), uncertainty_um=2.0)
    rig.frame()
    return rig
