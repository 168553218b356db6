"""The simulated camera's picture: the scene as it is at the moment of the snap.

:class:`SceneImageSource` asks each simulated manipulator where its tip PHYSICALLY is (and
how fast it moves, for motion blur), poses the pipettes with their configured pitch, yaw and
tip size, and renders tissue (with heartbeat/breathing motion), pipettes and detector noise
with the scene renderer at the microscope's current stage position and focus.

Only the camera (and scoring) may read the true tips; the controller sees only images.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from patchpilot.acquisition.devices import RenderRequest
from patchpilot.config import PipetteConfig, RigConfig
from patchpilot.scene import (
    Acquisition,
    Optics,
    PipettePose,
    Scene,
    TipTruth,
    Tissue,
    TissueMotion,
    View,
    render,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["PipetteGeometry", "SceneImageSource", "TruePositions"]


class TruePositions(Protocol):
    """A simulated manipulator's physical tip (``hardware.SimulatedManipulator`` fits)."""

    def true_tip_sample_um(self) -> NDArray[np.float64]: ...

    def true_velocity_sample_um_s(self) -> NDArray[np.float64]: ...


@dataclass(frozen=True)
class PipetteGeometry:
    """How a pipette looks: its name, angles and tip size."""

    name: str
    pitch_deg: float
    yaw_deg: float
    tip_diameter_um: float = 1.5
    taper_half_angle_deg: float = 5.0

    @classmethod
    def from_config(cls, pipette: PipetteConfig) -> PipetteGeometry:
        return cls(
            name=pipette.name,
            pitch_deg=pipette.pitch_deg,
            yaw_deg=pipette.yaw_deg,
            tip_diameter_um=pipette.tip_diameter_um,
            taper_half_angle_deg=pipette.taper_half_angle_deg,
        )


class SceneImageSource:
    """Renders tissue and the simulated pipettes where the manipulators really are.

    Parameters
    ----------
    pipettes
        Each pipette's geometry with the device that knows its true tip.
    tissue
        The sample (e.g. ``Tissue.random(rng)``).
    seed
        Seed of the detector noise.
    tissue_motion, optics, acquisition
        Passed to the renderer (defaults: the renderer's in vivo defaults).
    polarity
        How the pipettes' dye shows ("dark", "bright", "mixed").
    truth_history
        How many frames' true tip positions :meth:`truth` keeps (for scoring).
    """

    def __init__(
        self,
        pipettes: Sequence[tuple[PipetteGeometry, TruePositions]],
        tissue: Tissue,
        *,
        seed: int | None = 0,
        tissue_motion: TissueMotion | None = None,
        optics: Optics | None = None,
        acquisition: Acquisition | None = None,
        polarity: str = "dark",
        truth_history: int = 1000,
    ) -> None:
        names = [geometry.name for geometry, _ in pipettes]
        if len(set(names)) != len(names):
            raise ValueError(f"pipette names must be unique, got {names}")
        self._pipettes = list(pipettes)
        self.tissue = tissue
        self._rng = np.random.default_rng(seed)
        self._motion = tissue_motion if tissue_motion is not None else TissueMotion()
        self._optics = optics if optics is not None else Optics()
        self._acquisition = acquisition if acquisition is not None else Acquisition()
        self._polarity = polarity
        self._lock = threading.Lock()
        self._truth: deque[tuple[int, list[TipTruth]]] = deque(maxlen=truth_history)

    @classmethod
    def from_rig(
        cls,
        rig: RigConfig,
        manipulators: Mapping[str, Any],
        *,
        tissue: Tissue | None = None,
        **options: Any,
    ) -> SceneImageSource:
        """One source for a rig: every pipette whose manipulator knows its true tip.

        Raises
        ------
        ValueError
            A configured pipette has no manipulator, or one that cannot tell its true tip
            (only simulated manipulators can).
        """
        seed = rig.simulation_seed if rig.simulation_seed is not None else 0
        pairs: list[tuple[PipetteGeometry, TruePositions]] = []
        for pipette in rig.pipettes:
            device = manipulators.get(pipette.name)
            if device is None:
                raise ValueError(f"pipette {pipette.name!r} has no manipulator")
            if not hasattr(device, "true_tip_sample_um"):
                raise ValueError(
                    f"pipette {pipette.name!r}: a {type(device).__name__} cannot be simulated "
                    "in the camera (it has no true tip position)"
                )
            pairs.append((PipetteGeometry.from_config(pipette), device))
        if tissue is None:
            tissue = Tissue.random(np.random.default_rng(seed))
        options.setdefault("seed", seed + 1)
        return cls(pairs, tissue, **options)

    def poses(self) -> tuple[PipettePose, ...]:
        """Every pipette where it physically is now."""
        poses = []
        for geometry, device in self._pipettes:
            tip = np.asarray(device.true_tip_sample_um(), dtype=np.float64)
            velocity = np.asarray(device.true_velocity_sample_um_s(), dtype=np.float64)
            poses.append(
                PipettePose(
                    pipette_id=geometry.name,
                    tip_um=(float(tip[0]), float(tip[1]), float(tip[2])),
                    pitch_deg=geometry.pitch_deg,
                    yaw_deg=geometry.yaw_deg,
                    tip_diameter_um=geometry.tip_diameter_um,
                    taper_half_angle_deg=geometry.taper_half_angle_deg,
                    polarity=self._polarity,
                    velocity_um_s=(float(velocity[0]), float(velocity[1]), float(velocity[2])),
                )
            )
        return tuple(poses)

    def render(self, request: RenderRequest) -> NDArray[np.uint16]:
        """The frame the camera records now (called on the acquisition thread)."""
        height, width = request.shape_px
        scene = Scene(
            tissue=self.tissue,
            pipettes=self.poses(),
            view=View(
                fov_center_um=request.fov_center_um,
                focus_um=request.focus_um,
                width_px=width,
                height_px=height,
                pixel_size_um=request.pixel_size_um,
            ),
            optics=self._optics,
            acquisition=self._acquisition,
            time_s=request.time_s,
            tissue_motion=self._motion,
        )
        with self._lock:  # one noise stream, one truth history
            image, truth = render(scene, self._rng)
            self._truth.append((request.frame_index, truth))
        return image

    def truth(self, frame_index: int) -> list[TipTruth] | None:
        """Where the tips truly were in the camera's frame ``frame_index`` (if still kept)."""
        with self._lock:
            for index, truth in reversed(self._truth):
                if index == frame_index:
                    return truth
        return None
