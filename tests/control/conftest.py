"""Fixtures for the control tests: the sim-4 rig on a simulated clock, with the imaging stand-in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from patchpilot.clock import SimClock
from patchpilot.config import RigConfig, load_config
from patchpilot.control import Controller, ManipulatorTransform
from patchpilot.events import EventLog
from patchpilot.hardware.factory import create_manipulators
from patchpilot.hardware.simulated import SimulatedManipulator
from tests.control.sim_imaging import SimImaging

SIM_4 = Path(__file__).resolve().parents[2] / "configs" / "sim-4.yaml"


def true_transform(rig: RigConfig, name: str) -> ManipulatorTransform:
    """The simulated mounting of ``name`` (what calibration has to discover)."""
    return ManipulatorTransform.of_simulated(rig.pipette(name))


@dataclass
class SimRig:
    config: RigConfig
    clock: SimClock
    log: EventLog
    manipulators: dict[str, SimulatedManipulator]
    imaging: SimImaging
    controller: Controller

    def run(self, seconds: float, until_idle: bool = True) -> None:
        """Feed frames for up to ``seconds`` of simulated time (or until the controller idles)."""
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            frame, detections = self.imaging.snap()
            self.controller.on_frame(frame, detections)
            if until_idle and self.controller.state.value == "idle":
                return

    def true_tip(self, name: str) -> np.ndarray:
        return self.manipulators[name].true_tip_sample_um()

    def give_true_calibration(self, uncertainty_um: float = 3.0) -> None:
        """Load each pipette's true mounting as its calibration (as if just calibrated)."""
        for name in self.manipulators:
            self.controller.set_calibration(
                name, true_transform(self.config, name), uncertainty_um=uncertainty_um
            )


@pytest.fixture
def sim4() -> RigConfig:
    return load_config(SIM_4)


def build_rig(config: RigConfig, seed: int = 3) -> SimRig:
    clock = SimClock()
    log = EventLog(tail_size=20000)
    manipulators = create_manipulators(config, log=log, clock=clock)
    sims = {n: m for n, m in manipulators.items() if isinstance(m, SimulatedManipulator)}
    imaging = SimImaging(sims, clock, seed=seed)
    controller = Controller(config, manipulators, imaging, log, clock)
    return SimRig(config, clock, log, sims, imaging, controller)


@pytest.fixture
def rig(sim4: RigConfig) -> SimRig:
    return build_rig(sim4)
