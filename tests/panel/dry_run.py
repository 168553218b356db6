"""A running dry-run experiment with the panel, for the browser tests (real time).

``patchpilot.experiment.Experiment`` builds the whole simulated rig: simulated manipulators
on a ``RealClock``, the simulated two-photon microscope behind a REAL pycromanager
acquisition, the hook and the controller. Only the localiser is a double
(:class:`TruthLocaliser`: no trained weights ship yet, and the localiser is not what these tests
examine): it reports the tips where the simulated manipulators physically are. Calibrations
are installed from the simulators' true mountings, as a previous session's would be.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchpilot.config import MicroscopeConfig, RigConfig
from patchpilot.events import read_events
from patchpilot.experiment import Experiment
from patchpilot.hardware.simulated import SimulatedManipulator
from patchpilot.panel import PanelServer, serve_panel
from patchpilot.types import TipDetection
from tests.panel.rig import true_transform


class TruthLocaliser:
    """A localiser double: the true tips (in the field of view) of the bound manipulators."""

    def __init__(self, microscope: MicroscopeConfig) -> None:
        self.microscope = microscope
        self.manipulators: Mapping[str, SimulatedManipulator] = {}
        self.last_latency_ms = math.nan

    def localise(self, image: NDArray[Any], pixel_size_um: float) -> Sequence[TipDetection]:
        started = time.perf_counter()
        height, width = image.shape
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        x0, y0 = self.microscope.stage_position_um
        found = []
        for manipulator in self.manipulators.values():
            x_um, y_um, _z = (float(v) for v in manipulator.true_tip_sample_um())
            x_px = (x_um - x0) / pixel_size_um + cx
            y_px = (y_um - y0) / pixel_size_um + cy
            if 0 <= x_px < width and 0 <= y_px < height:
                found.append(
                    TipDetection(x_px, y_px, x_px * pixel_size_um, y_px * pixel_size_um, 0.9)
                )
        self.last_latency_ms = (time.perf_counter() - started) * 1000.0
        return found


class DryRun:
    """An experiment on ``config`` (started), its panel backend and (when served) its panel."""

    def __init__(self, config: RigConfig, out_dir: Path) -> None:
        self.config = config
        self.localiser = TruthLocaliser(config.microscope)
        self.experiment = Experiment(config, out_dir=out_dir, localiser=self.localiser)
        self.manipulators = {
            n: m
            for n, m in self.experiment.manipulators.items()
            if isinstance(m, SimulatedManipulator)
        }
        self.localiser.manipulators = self.manipulators
        self.experiment.start()
        for pipette in config.pipettes:
            self.experiment.controller.set_calibration(
                pipette.name, true_transform(pipette), uncertainty_um=2.0
            )
        self.server: PanelServer | None = None

    def serve(self, port: int = 0) -> PanelServer:
        """Serve the panel the way ``--panel`` does: ``serve_panel(experiment)``."""
        self.server = serve_panel(self.experiment, port=port, announce=False)
        return self.server

    def stop_serving(self) -> None:
        if self.server is not None:
            self.server.stop()

    def close(self) -> None:
        self.stop_serving()
        self.experiment.close()

    def position(self, name: str) -> NDArray[np.float64]:
        return np.asarray(self.manipulators[name].position_um(), dtype=np.float64)

    def state(self, name: str) -> str:
        return self.experiment.controller.status()[name].state

    def events(self) -> list[dict[str, Any]]:
        path = self.experiment.log.path
        assert path is not None
        return list(read_events(path))
