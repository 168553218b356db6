"""One experiment on one rig, wired together from its configuration (the composition root).

``Experiment`` builds, from a ``RigConfig``: the event log, the clock, a manipulator per
pipette, the localiser, the acquisition (a simulated two-photon microscope behind a real
pycromanager acquisition, or a real rig's pycromanager/pymmcore-plus acquisition) and the
controller, then connects them so data flows one way::

    camera frame -> hook -> localiser -> controller.on_frame (tracker, correction) -> drivers

The panel and the CLI only use this object's public attributes and methods.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchpilot.clock import Clock, RealClock
from patchpilot.config import RigConfig
from patchpilot.events import EventKind, EventLog
from patchpilot.hardware import Manipulator, MoveRefused, stop_all
from patchpilot.hardware.factory import create_manipulators
from patchpilot.types import Frame, TipDetection

if TYPE_CHECKING:
    from patchpilot.acquisition.hook import HookStats, TipLocaliser
    from patchpilot.acquisition.scene_source import SceneImageSource
    from patchpilot.control import Controller
    from patchpilot.hardware import DeviceInfo, MoveHandle
    from patchpilot.scene import Tissue

__all__ = ["Experiment", "ExperimentError", "LiveView", "ObserveOnlyManipulator"]

EVENTS_FILE = "events.jsonl"


class ExperimentError(RuntimeError):
    """The experiment could not be built or started; the message says which part and why."""


@dataclass(frozen=True)
class LiveView:
    """The latest localised frame: what the panel draws."""

    frame: Frame
    detections: tuple[TipDetection, ...]
    received_s: float


@dataclass
class _Rates:
    """Frame rate over the last few seconds (wall clock)."""

    times: list[float] = field(default_factory=list)

    def add(self, t: float) -> None:
        self.times.append(t)
        cutoff = t - 3.0
        while self.times and self.times[0] < cutoff:
            self.times.pop(0)

    def per_s(self) -> float:
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0


class ObserveOnlyManipulator(Manipulator):
    """Wraps a manipulator so that it reads positions but refuses every move.

    ``patchpilot run --observe-only`` uses it on a new rig: localise and track, never move.
    """

    def __init__(self, inner: Manipulator) -> None:
        super().__init__(inner.name, inner.limits, inner.max_speed_um_s, inner.log, inner.clock)
        self._inner = inner

    @property
    def n_axes(self) -> int:
        return self._inner.n_axes

    def _identify(self) -> DeviceInfo:
        return self._inner.identify()

    def _read_position_um(self) -> tuple[float, ...]:
        return self._inner.position_um()

    def _start_move(self, handle: MoveHandle) -> None:
        raise MoveRefused(f"{self.name}: observe-only mode, moves are disabled")

    def _send_stop(self) -> None:
        self._inner.stop()

    def _is_busy(self) -> bool:
        return self._inner.is_busy()

    def _close(self) -> None:
        self._inner.close()

    def check_move(self, target_um: Sequence[float], speed_um_s: float) -> tuple[float, ...]:
        raise MoveRefused(f"{self.name}: observe-only mode, moves are disabled")


def _physical(device: Manipulator) -> Manipulator:
    """The device itself behind an observe-only wrapper (where the pipette really is)."""
    return device._inner if isinstance(device, ObserveOnlyManipulator) else device


class Experiment:
    """A rig, its acquisition and its controller, started and stopped as one.

    Parameters
    ----------
    config
        The rig.
    out_dir
        Where the event log (``events.jsonl``), recordings and reports go.
    localiser
        Anything with ``localise(image, pixel_size_um)``; None loads ``config.localiser``'s
        checkpoint (or the shipped default).
    clock
        Time source of hardware, controller and log; real time by default.
    record
        Save every frame through pycromanager's storage in ``out_dir``.
    observe_only
        Localise and track, never move (every move is refused by the drivers).
    tissue
        The simulated sample (simulated rigs only); None: drawn from the config's seed.
    max_frames
        Stop the acquisition by itself after this many frames (tests).

    Raises
    ------
    ExperimentError
        A part could not be built (which, and why).
    """

    def __init__(
        self,
        config: RigConfig,
        *,
        out_dir: str | Path,
        localiser: TipLocaliser | None = None,
        clock: Clock | None = None,
        record: bool = False,
        observe_only: bool = False,
        tissue: Tissue | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.clock: Clock = clock if clock is not None else RealClock()
        self.log = EventLog(self.out_dir / EVENTS_FILE)
        self.observe_only = observe_only
        self._closers: list[Callable[[], None]] = []
        self._latest: LiveView | None = None
        self._latest_lock = threading.Lock()
        self._rates = _Rates()
        self._listeners: list[Callable[[LiveView], None]] = []
        self._started = False
        self._stop_ticks: Callable[[], None] | None = None
        try:
            self.localiser = localiser if localiser is not None else self._load_localiser()
            self.manipulators = self._build_manipulators()
            self.scene_source: SceneImageSource | None = None
            self.acquisition = self._build_acquisition(record, tissue, max_frames)
            self.controller = self._build_controller()
        except Exception as exc:
            self.log.record(EventKind.FAULT, "experiment", "could not build", error=str(exc))
            self._close_parts()
            self.log.close()
            if isinstance(exc, ExperimentError):
                raise
            raise ExperimentError(f"{type(exc).__name__}: {exc}") from exc
        self.acquisition.subscribe(self._on_frame)
        self.log.record(
            EventKind.INFO,
            "experiment",
            "built",
            rig=config.name,
            pipettes=[p.name for p in config.pipettes],
            observe_only=observe_only,
        )

    # -- construction ------------------------------------------------------------------------
    def _load_localiser(self) -> TipLocaliser:
        from patchpilot.localisation.inference import Localiser

        settings = self.config.localiser
        options: dict[str, Any] = {
            "num_threads": settings.num_threads,
            "confidence_threshold": settings.confidence_threshold,
        }
        if settings.checkpoint is None:
            return Localiser.from_pretrained(**options)
        return Localiser.from_checkpoint(settings.checkpoint, **options)

    def _build_manipulators(self) -> dict[str, Manipulator]:
        devices = create_manipulators(self.config, log=self.log, clock=self.clock)
        self._closers.extend(d.close for d in devices.values())
        if self.observe_only:
            return {name: ObserveOnlyManipulator(d) for name, d in devices.items()}
        return devices

    def _build_acquisition(
        self, record: bool, tissue: Tissue | None, max_frames: int | None
    ) -> Any:
        microscope = self.config.microscope
        record_dir = self.out_dir if record else self.config.acquisition.record_dir
        if microscope.kind == "simulated":
            from patchpilot.acquisition.scene_source import SceneImageSource
            from patchpilot.acquisition.simulated_acquisition import SimulatedAcquisition

            # The camera sees the pipettes where they physically are, observe-only or not.
            devices = {name: _physical(d) for name, d in self.manipulators.items()}
            self.scene_source = SceneImageSource.from_rig(self.config, devices, tissue=tissue)
            return SimulatedAcquisition(
                microscope,
                self.localiser,
                source=self.scene_source,
                log=self.log,
                record_dir=record_dir,
                clock=self.clock,
                focus_um=self.config.safety.tissue_surface_z_um,
                max_frames=max_frames,
                exposure_ms=self.config.acquisition.exposure_ms,
            )
        from patchpilot.acquisition.rig import RigAcquisition

        return RigAcquisition(self.config, self.localiser, log=self.log, record_dir=record_dir)

    def _build_controller(self) -> Controller:
        from patchpilot.control import Controller

        return Controller(
            self.config, self.manipulators, self.acquisition.imaging, self.log, self.clock
        )

    # -- the loop ----------------------------------------------------------------------------
    def _on_frame(self, frame: Frame, detections: Sequence[TipDetection]) -> None:
        view = LiveView(frame, tuple(detections), time.monotonic())
        with self._latest_lock:
            self._latest = view
            self._rates.add(view.received_s)
            listeners = list(self._listeners)
        try:
            self.controller.on_frame(frame, detections)
        except Exception as exc:  # a bad frame must not kill the acquisition
            self.log.record(
                EventKind.FAULT,
                "experiment",
                "frame not used",
                error=str(exc),
                frame_index=frame.index,
            )
        for listener in listeners:
            with contextlib.suppress(Exception):
                listener(view)

    def subscribe(self, listener: Callable[[LiveView], None]) -> Callable[[], None]:
        """Call ``listener(view)`` after each localised frame; returns an unsubscribe function."""
        with self._latest_lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._latest_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def latest(self) -> LiveView | None:
        """The most recent localised frame, or None before the first one."""
        with self._latest_lock:
            return self._latest

    def stats(self) -> dict[str, float | int]:
        """Frame rate (frames/s over the last seconds), localiser latency, skipped frames."""
        hook: HookStats = self.acquisition.hook.stats
        with self._latest_lock:
            rate = self._rates.per_s()
        latency = getattr(self.localiser, "last_latency_ms", None)
        return {
            "frame_rate_hz": rate,
            "localiser_latency_ms": float(latency) if latency is not None else float("nan"),
            "frames_seen": int(hook.frames_seen),
            "frames_localised": int(hook.frames_localised),
            "frames_skipped": int(hook.frames_skipped),
        }

    def wait_for_frames(self, count: int, timeout_s: float) -> bool:
        """Wait (wall clock) until ``count`` frames have been localised; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.acquisition.hook.stats.frames_localised >= count:
                return True
            time.sleep(0.02)
        return False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the acquisition and the controller's background tick (idempotent)."""
        if self._started:
            return
        try:
            self.acquisition.start()
        except Exception as exc:
            self.log.record(
                EventKind.FAULT, "experiment", "acquisition did not start", error=str(exc)
            )
            raise ExperimentError(f"acquisition did not start: {exc}") from exc
        self._started = True
        self._stop_ticks = self.controller.start_background()
        self.log.record(EventKind.INFO, "experiment", "started")

    def stop_all(self) -> dict[str, str | None]:
        """STOP ALL: every manipulator, at once, from any state (never raises)."""
        try:
            return self.controller.stop_all()
        except Exception as exc:  # fall back to the drivers directly
            self.log.record(
                EventKind.FAULT, "experiment", "controller stop-all failed", error=str(exc)
            )
            return stop_all(self.manipulators.values())

    def close(self) -> None:
        """Stop everything and release the hardware (idempotent, never hangs)."""
        if self._stop_ticks is not None:
            self._stop_ticks()
            self._stop_ticks = None
        if self._started:
            self._started = False
            try:
                self.acquisition.stop()
            except Exception as exc:  # keep closing the rest
                self.log.record(
                    EventKind.FAULT, "experiment", "acquisition stop failed", error=str(exc)
                )
        self._close_parts()
        self.log.record(EventKind.INFO, "experiment", "closed")
        self.log.close()

    def _close_parts(self) -> None:
        while self._closers:
            closer = self._closers.pop()
            with contextlib.suppress(Exception):
                closer()

    def __enter__(self) -> Experiment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pipette_names(self) -> list[str]:
        return [p.name for p in self.config.pipettes]

    def manipulator(self, name: str) -> Manipulator:
        try:
            return self.manipulators[name]
        except KeyError:
            raise ValueError(
                f"no pipette {name!r}; known: {', '.join(self.manipulators)}"
            ) from None

    def true_tips_um(self) -> Mapping[str, Any]:
        """Physical tip positions (simulated rigs only: scoring and the report, never control)."""
        tips: dict[str, Any] = {}
        for name, device in self.manipulators.items():
            true_tip = getattr(_physical(device), "true_tip_sample_um", None)
            if true_tip is not None:
                tips[name] = true_tip()
        return tips
