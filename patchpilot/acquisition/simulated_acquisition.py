"""Everything a dry run needs to image: simulated microscope, a REAL pycromanager
acquisition with the rig's hook, and focus snaps — opened and closed as one.

``with SimulatedAcquisition(config, localiser, source=...) as imaging_system:`` starts the
closed-loop acquisition; ``subscribe`` hands ``(frame, detections)`` to the controller and
``imaging`` serves its calibration sweeps. With ``record_dir`` the frames go to NDTiff and
the event log to ``record_dir/events.jsonl`` (a recording ``patchpilot replay`` reads).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from patchpilot.acquisition._metadata import CorePositionReader
from patchpilot.acquisition.devices import ImageSource
from patchpilot.acquisition.hook import FrameHook, FrameSubscriber, TipLocaliser
from patchpilot.acquisition.imaging import Imaging
from patchpilot.acquisition.live import LiveAcquisition
from patchpilot.acquisition.pycromanager_session import PycroManagerSession
from patchpilot.acquisition.recording import DATASET_NAME, EVENTS_FILE
from patchpilot.acquisition.simulated_microscope import SimulatedMicroscope
from patchpilot.clock import Clock
from patchpilot.config import MicroscopeConfig
from patchpilot.events import EventLog

__all__ = ["SimulatedAcquisition"]


class SimulatedAcquisition:
    """Simulated microscope + pycromanager session + hook + live acquisition + imaging.

    Parameters
    ----------
    microscope
        Frame size, pixel size, frame rate, focus travel.
    localiser
        Runs on the hook's worker thread.
    source
        Renders the frames (e.g. :class:`~patchpilot.acquisition.scene_source.SceneImageSource`);
        None: noise.
    log
        The experiment's event log; None: ``record_dir/events.jsonl`` when recording, else
        an in-memory log.
    record_dir
        Save frames (NDTiff) and, if ``log`` is None, the event log here.
    real_time
        Pace frames at the configured frame rate.
    focus_um
        Focus of the first frames (µm).
    max_frames
        Stop by itself after this many frames.
    """

    def __init__(
        self,
        microscope: MicroscopeConfig,
        localiser: TipLocaliser,
        *,
        source: ImageSource | None = None,
        log: EventLog | None = None,
        record_dir: str | Path | None = None,
        real_time: bool = True,
        clock: Clock | None = None,
        focus_um: float = 0.0,
        max_frames: int | None = None,
        exposure_ms: float = 33.0,
    ) -> None:
        self.config = microscope
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self._owns_log = log is None
        if log is None:
            log = EventLog(self.record_dir / EVENTS_FILE if self.record_dir else None)
        self.log = log
        self.microscope = SimulatedMicroscope(
            microscope, source, real_time=real_time, exposure_ms=exposure_ms
        )
        self.hook = FrameHook(
            localiser,
            positions=CorePositionReader(self.microscope.core),
            log=log,
            clock=clock,
            expected_shape_px=(microscope.frame_height_px, microscope.frame_width_px),
        )
        self.session = PycroManagerSession(self.microscope.core)
        self.live = LiveAcquisition(
            self.session,
            self.hook,
            directory=self.record_dir,
            name=DATASET_NAME,
            focus_um=focus_um,
            max_frames=max_frames,
        )
        self.imaging = Imaging(self.live, focus_limits_um=microscope.focus_limits_um)
        self._started = False
        self.frames_stored: int | None = None
        """Frames pycromanager's storage holds, counted when the acquisition stopped."""

    def subscribe(self, subscriber: FrameSubscriber) -> Callable[[], None]:
        """Hand each localised ``(frame, detections)`` to ``subscriber`` (worker thread)."""
        return self.hook.subscribe(subscriber)

    def start(self) -> None:
        self.session.__enter__()
        try:
            self.live.start()
        except Exception:
            self.session.close()
            self.microscope.close()
            raise
        self._started = True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the acquisition, the worker, the engine and the microscope (idempotent)."""
        if not self._started:
            return
        self._started = False
        try:
            self.live.stop(timeout_s)
        finally:
            dataset = self.live.dataset
            if dataset is not None:
                self.frames_stored = len(dataset.get_image_coordinates_list())
            self.imaging.close()
            with contextlib.ExitStack() as cleanup:
                cleanup.callback(self.microscope.close)
                cleanup.callback(self.session.close)
                if self._owns_log:
                    cleanup.callback(self.log.close)
                if dataset is not None:
                    cleanup.callback(dataset.close)

    def __enter__(self) -> SimulatedAcquisition:
        self.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and self._started:
            with contextlib.suppress(Exception):
                self.live.abort()
        self.stop()
