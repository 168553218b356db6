"""What the panel needs from a running experiment: ``PanelBackend``.

The panel only reads snapshots and calls commands through this protocol; it never touches
the controller's or the drivers' internals. :class:`~patchpilot.panel.backend.ControllerBackend`
implements it on top of :class:`patchpilot.control.Controller`.

Threading: every method may be called from any thread (the web server's worker threads and its
event loop). Commands validate before anything moves and raise on refusal:

- ``ValueError`` (including ``control.PlanError``): bad input or a refused plan; nothing moved.
- ``KeyError``: an unknown pipette.
- ``transitions.MachineError`` / ``RuntimeError``: the command is not valid in the current state.
- ``patchpilot.hardware.ManipulatorError`` (``MoveRefused``: outside the soft limits, a bad
  speed): the device refused or failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from patchpilot.config import NoGoZone, RigConfig
    from patchpilot.control import PipetteStatus
    from patchpilot.events import EventLog
    from patchpilot.types import Frame, TipDetection

__all__ = [
    "JOG_AXES",
    "BackendStats",
    "ClearanceWarning",
    "JogAxis",
    "LiveFrame",
    "PanelBackend",
    "PipetteOverlay",
]

JogAxis = Literal["x", "y", "z", "pipette"]
"""Device axes x, y, z, or along the pipette's own axis (positive: advance toward the tip)."""
JOG_AXES: tuple[JogAxis, ...] = ("x", "y", "z", "pipette")

Point = tuple[float, float, float]


@dataclass(frozen=True)
class LiveFrame:
    """The newest localised frame and the tips found in it."""

    frame: Frame
    detections: tuple[TipDetection, ...]


@dataclass(frozen=True)
class PipetteOverlay:
    """What to draw for one pipette (sample frame, µm)."""

    name: str
    predicted_tip_um: Point | None
    """Where the controller expects the tip (calibration and tracked offset)."""
    target_um: Point | None
    path_um: tuple[Point, ...]
    """The current plan from its start through every waypoint (empty without a plan)."""


@dataclass(frozen=True)
class ClearanceWarning:
    """Two pipette bodies closer than the warning distance (µm; below 0: touching)."""

    first: str
    second: str
    gap_um: float
    is_violation: bool
    """True below ``safety.min_clearance_um``; False when only near it."""


@dataclass(frozen=True)
class BackendStats:
    """Live figures for the panel's header."""

    frame_rate_hz: float | None
    """Localised frames per second over the last couple of seconds."""
    localiser_latency_ms: float | None
    """Median frame-ready to controller delay over recent frames."""
    frames_seen: int


@runtime_checkable
class PanelBackend(Protocol):
    """A running experiment as the panel sees it (see the module docstring)."""

    @property
    def config(self) -> RigConfig:
        """The rig: pipette names, speeds and limits, microscope, ``panel`` settings."""
        ...

    @property
    def log(self) -> EventLog:
        """The experiment's event log (tail and live subscription)."""
        ...

    # -- snapshots ---------------------------------------------------------------------
    def coordinator_state(self) -> str:
        """``idle``, ``calibrating``, ``running``, ``paused`` or ``stopped``."""
        ...

    def status(self) -> Mapping[str, PipetteStatus]:
        """One snapshot per pipette, by name, in rig order."""
        ...

    def latest_frame(self) -> LiveFrame | None:
        """The newest localised frame (None before the first)."""
        ...

    def overlays(self) -> tuple[PipetteOverlay, ...]:
        """Predicted tips, targets and planned paths of every pipette."""
        ...

    def nogo_zones(self) -> tuple[NoGoZone, ...]:
        """The no-go zones the planner currently avoids."""
        ...

    def clearance_warnings(self) -> tuple[ClearanceWarning, ...]:
        """Pairs of pipettes whose bodies are near or within the minimum clearance."""
        ...

    def stats(self) -> BackendStats: ...

    def capabilities(self) -> Mapping[str, bool]:
        """Optional commands this backend supports: ``jog_along_axis``, ``edit_zones``."""
        ...

    # -- commands ----------------------------------------------------------------------
    def stop_all(self) -> Mapping[str, str | None]:
        """Stop every manipulator now, from any state; never raises.

        Returns each pipette's stop error, or None when it stopped.
        """
        ...

    def rearm(self) -> None:
        """After a stop-all: back to ready (or idle); nothing moves."""
        ...

    def start_approach(self) -> None:
        """Plan, sequence and start every pipette with a target."""
        ...

    def pause_all(self) -> None: ...

    def resume_all(self) -> None: ...

    def set_target(self, name: str, target_um: Point) -> str:
        """Set and check a target (sample frame, µm); returns the plan it would follow."""
        ...

    def take_over(self, name: str) -> None:
        """Freeze automation for one pipette and stop it; the operator jogs it."""
        ...

    def release(self, name: str) -> None:
        """Give a manual pipette back to automation (re-planned)."""
        ...

    def jog(self, name: str, axis: JogAxis, step_um: float, speed_um_s: float) -> None:
        """Move a manual pipette by ``step_um`` along one axis at ``speed_um_s``."""
        ...

    def calibrate(self, name: str) -> None:
        """Start calibrating one pipette in the background (returns at once)."""
        ...

    def confirm_calibration(self, name: str) -> None: ...

    def retract(self, name: str) -> None: ...

    def home(self, name: str) -> None: ...

    def clear_fault(self, name: str) -> None: ...

    def add_nogo_zone(self, zone: NoGoZone) -> None:
        """Avoid one more zone from now on (plans in force are re-checked)."""
        ...

    def clear_nogo_zones(self) -> None:
        """Forget every zone drawn or configured."""
        ...
