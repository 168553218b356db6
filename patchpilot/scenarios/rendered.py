"""The honest imaging of a scenario: the two-photon scene renderer and a real localiser,
stepped on the simulated clock (no pycromanager, no threads).

``RenderedImaging`` implements ``patchpilot.control.Imaging``. Each snap lets one frame period
of the ``SimClock`` pass, renders the tissue and the pipettes where the simulated manipulators
PHYSICALLY are (``SceneImageSource``, the dry-run's camera picture) at the current focus, and
runs the localiser on that image: the controller sees exactly what it would see in the
dry-run, only faster than real time and reproducibly.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from patchpilot.acquisition.devices import RenderRequest
from patchpilot.acquisition.hook import TipLocaliser
from patchpilot.acquisition.scene_source import SceneImageSource
from patchpilot.clock import SimClock
from patchpilot.config import RigConfig, checked_focus_um
from patchpilot.scene import Tissue
from patchpilot.types import Frame, TipDetection

__all__ = ["RenderedImaging"]


class RenderedImaging:
    """Rendered frames and the localiser's tips on a simulated clock (see the module docstring).

    Parameters
    ----------
    rig
        The simulated rig: its microscope (frame size, pixel size, stage, focus travel, frame
        rate) and pipettes (angles and tip sizes for the renderer).
    manipulators
        Simulated manipulators by pipette name (they know their physical tips).
    clock
        The scenario's clock; each snap advances it by one frame period.
    localiser
        Anything with ``localise(image, pixel_size_um)`` (the shipped ``Localiser``).
    seed
        Seed of the tissue and of the detector noise.

    Raises
    ------
    ValueError
        A pipette without a simulated manipulator.
    """

    def __init__(
        self,
        rig: RigConfig,
        manipulators: Mapping[str, Any],
        clock: SimClock,
        localiser: TipLocaliser,
        *,
        seed: int = 0,
    ) -> None:
        microscope = rig.microscope
        tissue = Tissue.random(np.random.default_rng(seed))
        self.source = SceneImageSource.from_rig(rig, manipulators, tissue=tissue, seed=seed + 1)
        self.clock = clock
        self.localiser = localiser
        self.shape_px = (microscope.frame_height_px, microscope.frame_width_px)
        self.pixel_size_um = microscope.pixel_size_um
        self.fov_center_um = (
            float(microscope.stage_position_um[0]),
            float(microscope.stage_position_um[1]),
        )
        self.focus_limits_um = microscope.focus_limits_um
        self.frame_period_s = 1.0 / microscope.frame_rate_hz
        self._focus_um = float(rig.safety.tissue_surface_z_um)
        self._index = 0
        self.snaps = 0
        self.localise_s = 0.0
        """Wall time spent in the localiser (s)."""
        self.render_s = 0.0
        """Wall time spent rendering (s)."""

    @property
    def focus_um(self) -> float:
        return self._focus_um

    @focus_um.setter
    def focus_um(self, value: float) -> None:
        self._focus_um = checked_focus_um(value, self.focus_limits_um)

    def snap(self, focus_um: float | None = None) -> tuple[Frame, list[TipDetection]]:
        """Let one frame period pass, then render and localise (at ``focus_um`` if given).

        Raises
        ------
        ValueError
            ``focus_um`` is not finite or outside the focus travel.
        """
        if focus_um is not None:
            self.focus_um = focus_um
        self.clock.advance(self.frame_period_s)
        self.snaps += 1
        self._index += 1
        request = RenderRequest(
            fov_center_um=self.fov_center_um,
            focus_um=self._focus_um,
            time_s=self.clock.now(),
            shape_px=self.shape_px,
            pixel_size_um=self.pixel_size_um,
            frame_index=self._index,
        )
        started = time.perf_counter()
        image = self.source.render(request)
        rendered = time.perf_counter()
        detections = list(self.localiser.localise(image, self.pixel_size_um))
        self.render_s += rendered - started
        self.localise_s += time.perf_counter() - rendered
        frame = Frame(
            image=image,
            index=self._index,
            timestamp_s=request.time_s,
            pixel_size_um=self.pixel_size_um,
            fov_center_um=self.fov_center_um,
            focus_um=self._focus_um,
        )
        return frame, detections
