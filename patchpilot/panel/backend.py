"""``ControllerBackend``: the panel's view of a running :class:`~patchpilot.control.Controller`.

It uses only the controller's public methods and snapshots. Frames reach it through
:meth:`ControllerBackend.on_frame` (subscribe it to the acquisition, or build the backend
with :meth:`ControllerBackend.from_experiment`).

STOP ALL sends stop to every manipulator directly (in parallel, without waiting for the
controller's lock, which a control tick may hold), then lets the controller stop its machines;
a controller that does not answer within ``stop_timeout_s`` is reported, never waited on.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from patchpilot.events import EventKind
from patchpilot.panel._protocol import (
    BackendStats,
    ClearanceWarning,
    JogAxis,
    LiveFrame,
    PipetteOverlay,
    Point,
)
from patchpilot.panel.clearance import ClearanceMonitor
from patchpilot.panel.stopping import CalibrationGuard, stop_everything

if TYPE_CHECKING:
    from patchpilot.config import NoGoZone, RigConfig
    from patchpilot.control import Controller, PipetteStatus
    from patchpilot.events import EventLog
    from patchpilot.hardware import Manipulator
    from patchpilot.types import Frame, TipDetection

__all__ = ["ControllerBackend", "ExperimentLike", "Unsupported"]

_DEVICE_AXES: dict[str, int] = {"x": 0, "y": 1, "z": 2}
_RATE_WINDOW_S = 2.0


class Unsupported(RuntimeError):
    """The controller behind the panel cannot do this (the message says what is missing)."""


@runtime_checkable
class _AxialJogger(Protocol):
    def jog_along_axis(self, name: str, step_um: float, speed_um_s: float) -> object: ...


@runtime_checkable
class _ZoneEditor(Protocol):
    def set_nogo_zones(self, zones: Sequence[NoGoZone]) -> object: ...


class _LiveViewLike(Protocol):
    @property
    def frame(self) -> Frame: ...

    @property
    def detections(self) -> Sequence[TipDetection]: ...


class ExperimentLike(Protocol):
    """What :meth:`ControllerBackend.from_experiment` uses of ``patchpilot.experiment``."""

    @property
    def controller(self) -> Controller: ...

    @property
    def manipulators(self) -> Mapping[str, Manipulator]: ...

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]: ...

    def stats(self) -> Mapping[str, float | int]: ...


def _point(value: Any) -> Point | None:
    if value is None:
        return None
    x, y, z = (float(v) for v in value)
    return (x, y, z)


def _finite_or_none(value: float | int | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class ControllerBackend:
    """Implements :class:`~patchpilot.panel.PanelBackend` on a controller.

    Parameters
    ----------
    controller
        The rig's controller.
    manipulators
        The same devices the controller drives, stopped directly by STOP ALL; None: only
        through the controller.
    extra_stats
        Returns figures such as ``localiser_latency_ms`` (``Experiment.stats``); None: the
        backend's own frame rate only.
    stop_timeout_s
        Longest wait for the controller to acknowledge a stop-all (s).
    """

    def __init__(
        self,
        controller: Controller,
        *,
        manipulators: Mapping[str, Manipulator] | None = None,
        extra_stats: Callable[[], Mapping[str, float | int]] | None = None,
        stop_timeout_s: float = 2.0,
    ) -> None:
        self.controller = controller
        self._manipulators = dict(manipulators) if manipulators is not None else None
        self._extra_stats = extra_stats
        self._stop_timeout_s = stop_timeout_s
        self._clearance = ClearanceMonitor(
            controller.config.pipettes, controller.config.safety.min_clearance_um
        )
        self._lock = threading.Lock()
        self._latest: LiveFrame | None = None
        self._frame_times: deque[float] = deque()
        self._frames_seen = 0
        self._calibrating: threading.Thread | None = None
        self._calibrating_name: str | None = None
        self._calibration_guard = CalibrationGuard(controller.log)
        self._unsubscribe: Callable[[], None] | None = None

    @classmethod
    def from_experiment(cls, experiment: ExperimentLike) -> ControllerBackend:
        """A backend on a built ``patchpilot.experiment.Experiment`` (subscribed to its frames)."""
        backend = cls(
            experiment.controller,
            manipulators=experiment.manipulators,
            extra_stats=experiment.stats,
        )

        def listener(view: _LiveViewLike) -> None:
            backend.on_frame(view.frame, view.detections)

        backend._unsubscribe = experiment.subscribe(listener)
        return backend

    def close(self) -> None:
        """Stop listening to frames (the experiment keeps running)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- frames --------------------------------------------------------------------------
    def on_frame(self, frame: Frame, detections: Sequence[TipDetection]) -> None:
        """Keep the newest localised frame (a ``FrameSubscriber``; cheap, never blocks long)."""
        now = time.monotonic()
        with self._lock:
            self._latest = LiveFrame(frame, tuple(detections))
            self._frames_seen += 1
            self._frame_times.append(now)
            while self._frame_times and self._frame_times[0] < now - _RATE_WINDOW_S:
                self._frame_times.popleft()

    def latest_frame(self) -> LiveFrame | None:
        with self._lock:
            return self._latest

    def stats(self) -> BackendStats:
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._frame_times if t >= now - _RATE_WINDOW_S]
            seen = self._frames_seen
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 else None
        if rate is not None and times[-1] < now - 1.0:
            rate = 0.0  # frames stopped coming
        latency: float | None = None
        if self._extra_stats is not None:
            with contextlib.suppress(Exception):
                extra = self._extra_stats()
                latency = _finite_or_none(extra.get("localiser_latency_ms"))
        return BackendStats(frame_rate_hz=rate, localiser_latency_ms=latency, frames_seen=seen)

    # -- snapshots -----------------------------------------------------------------------
    @property
    def config(self) -> RigConfig:
        return self.controller.config

    @property
    def log(self) -> EventLog:
        return self.controller.log

    def coordinator_state(self) -> str:
        return self.controller.state.value

    def status(self) -> Mapping[str, PipetteStatus]:
        return self.controller.status()

    def overlays(self) -> tuple[PipetteOverlay, ...]:
        status = self.controller.status()
        plans = self._plans()
        return tuple(
            PipetteOverlay(
                name=name,
                predicted_tip_um=s.position_um,
                target_um=s.target_um,
                path_um=plans.get(name, ()),
            )
            for name, s in status.items()
        )

    def _plans(self) -> dict[str, tuple[Point, ...]]:
        paths: dict[str, tuple[Point, ...]] = {}
        for name, unit in self.controller.units.items():
            plan = unit.plan
            if plan is None or unit.plan_done:
                continue
            points = [_point(plan.start_um), *(_point(w.position_um) for w in plan.waypoints)]
            paths[name] = tuple(p for p in points if p is not None)
        return paths

    def nogo_zones(self) -> tuple[NoGoZone, ...]:
        return tuple(self.controller.config.safety.nogo_zones)

    def clearance_warnings(self) -> tuple[ClearanceWarning, ...]:
        tips = {n: s.position_um for n, s in self.controller.status().items()}
        return self._clearance.warnings(tips)

    # -- commands ------------------------------------------------------------------------
    def stop_all(self) -> Mapping[str, str | None]:
        results = stop_everything(
            self.controller.stop_all,
            list(self.controller.units),
            self._manipulators,
            self.log,
            self._stop_timeout_s,
        )
        calibration, name = self._calibrating, self._calibrating_name
        if calibration is not None and self._manipulators is not None and name is not None:
            self._calibration_guard.hold(self._manipulators[name], calibration)
        return results

    def rearm(self) -> None:
        self.controller.rearm()

    def start_approach(self) -> None:
        self.controller.start_approach()

    def pause_all(self) -> None:
        self.controller.pause_all()

    def resume_all(self) -> None:
        self.controller.resume_all()

    def set_target(self, name: str, target_um: Point) -> str:
        self._known(name)
        return self.controller.set_target(name, target_um)

    def take_over(self, name: str) -> None:
        self._known(name)
        self.controller.take_over(name)

    def release(self, name: str) -> None:
        self._known(name)
        self.controller.release(name)

    def jog(self, name: str, axis: JogAxis, step_um: float, speed_um_s: float) -> None:
        self._known(name)
        if axis == "pipette":
            if not isinstance(self.controller, _AxialJogger):
                raise Unsupported(
                    "this controller cannot jog along the pipette axis "
                    "(it needs Controller.jog_along_axis); jog x, y or z"
                )
            self.controller.jog_along_axis(name, step_um, speed_um_s)
            return
        self.controller.jog(name, _DEVICE_AXES[axis], step_um, speed_um_s)

    def calibrate(self, name: str) -> None:
        self._known(name)
        with self._lock:
            if self._calibrating is not None and self._calibrating.is_alive():
                raise RuntimeError("a calibration is already running; wait for it to finish")
            if self.controller.state.value != "idle":
                raise RuntimeError(
                    f"the coordinator is {self.controller.state.value}; calibration needs it "
                    "idle (finish, or stop and re-arm first)"
                )

            def run() -> None:
                try:
                    self.controller.calibrate(name)
                except Exception as exc:  # recorded for the operator; the thread just ends
                    self.log.record(
                        EventKind.FAULT, "panel", "calibration failed", pipette=name, error=str(exc)
                    )

            self._calibrating_name = name
            self._calibrating = threading.Thread(
                target=run, name=f"panel-calibrate-{name}", daemon=True
            )
            self._calibrating.start()

    def confirm_calibration(self, name: str) -> None:
        self._known(name)
        self.controller.confirm_calibration(name)

    def retract(self, name: str) -> None:
        self._known(name)
        self.controller.retract(name)

    def home(self, name: str) -> None:
        self._known(name)
        self.controller.home(name)

    def clear_fault(self, name: str) -> None:
        self._known(name)
        self.controller.clear_fault(name)

    def add_nogo_zone(self, zone: NoGoZone) -> None:
        editor = self._zone_editor()
        editor.set_nogo_zones((*self.nogo_zones(), zone))

    def clear_nogo_zones(self) -> None:
        self._zone_editor().set_nogo_zones(())

    def _zone_editor(self) -> _ZoneEditor:
        if not isinstance(self.controller, _ZoneEditor):
            raise Unsupported(
                "this controller cannot change no-go zones while running "
                "(it needs Controller.set_nogo_zones); add them to the rig file"
            )
        return self.controller

    def capabilities(self) -> Mapping[str, bool]:
        return {
            "jog_along_axis": isinstance(self.controller, _AxialJogger),
            "edit_zones": isinstance(self.controller, _ZoneEditor),
        }

    def _known(self, name: str) -> None:
        if name not in self.controller.units:
            raise KeyError(f"no pipette {name!r}; known: {', '.join(self.controller.units)}")

    def wait_calibration(self, timeout_s: float) -> bool:
        """Wait for a calibration started from the panel; True when none is running."""
        thread = self._calibrating
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()
