"""A continuous, closed-loop pycromanager acquisition driven by the hook.

The first event is submitted with ``acquire``; from then on the hook puts the next event on
the acquisition's event queue as each frame arrives, so the acquisition runs until stopped
(or until ``max_frames``). The focus of the next events follows :attr:`LiveAcquisition.focus_um`,
which is how calibration sweeps move the focal plane (z events in the acquisition).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from patchpilot.acquisition.hook import FrameHook
from patchpilot.acquisition.pycromanager_session import AcquisitionError, PycroManagerSession
from patchpilot.events import EventKind

__all__ = ["LiveAcquisition"]

_SOURCE = "acquisition"


class LiveAcquisition:
    """Closed-loop acquisition of frames into ``hook`` until :meth:`stop`.

    Parameters
    ----------
    session
        The open pycromanager session (Python backend).
    hook
        Receives every frame; its ``next_event`` is set to this acquisition's.
    directory
        Frames are saved there through pycromanager's NDTiff storage; None keeps them in RAM.
    name
        Dataset name (pycromanager makes ``<directory>/<name>_<n>``).
    focus_um
        Focus of the first event (µm); None leaves the focus drive where it is.
    max_frames
        Finish by itself after this many frames; None runs until stopped.
    """

    def __init__(
        self,
        session: PycroManagerSession,
        hook: FrameHook,
        *,
        directory: str | Path | None = None,
        name: str = "frames",
        focus_um: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self._session = session
        self.hook = hook
        self.directory = Path(directory) if directory is not None else None
        self.name = name
        self.max_frames = max_frames
        self._lock = threading.Lock()
        self._focus_um = self._checked_focus(focus_um)
        self._next_time_index = 0
        self._stop_requested = False
        self._acquisition: Any = None
        self._start_perf_s = 0.0
        self._stop_perf_s: float | None = None

    # -- focus (z events) -------------------------------------------------------------
    @staticmethod
    def _checked_focus(focus_um: float | None) -> float | None:
        if focus_um is not None and not math.isfinite(focus_um):
            raise ValueError(f"focus must be a finite number of µm, got {focus_um}")
        return None if focus_um is None else float(focus_um)

    @property
    def focus_um(self) -> float | None:
        """Focus the next events ask for (µm), or None to leave the focus drive alone."""
        with self._lock:
            return self._focus_um

    @focus_um.setter
    def focus_um(self, value: float | None) -> None:
        checked = self._checked_focus(value)
        with self._lock:
            self._focus_um = checked

    def _event(self, time_index: int) -> dict[str, Any]:
        event: dict[str, Any] = {"axes": {"time": time_index}}
        if self._focus_um is not None:
            event["z"] = self._focus_um
        return event

    def _next_event(self, metadata: Mapping[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            if self._stop_requested:
                return None
            if self.max_frames is not None and self._next_time_index >= self.max_frames:
                return None
            event = self._event(self._next_time_index)
            self._next_time_index += 1
            return event

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Start the hook's worker and the acquisition.

        Raises
        ------
        AcquisitionError
            Already started, or pycromanager refused to start.
        """
        if self._acquisition is not None:
            raise AcquisitionError("this live acquisition was already started")
        self.hook.next_event = self._next_event
        self.hook.start()
        self._acquisition = self._session.acquisition(
            self.hook, directory=self.directory, name=self.name
        )
        self._start_perf_s = time.perf_counter()
        with self._lock:
            first = self._event(0)
            self._next_time_index = 1
        self._session.submit(self._acquisition, first)
        self.hook.log.record(
            EventKind.INFO,
            _SOURCE,
            "acquisition started",
            directory=self.directory,
            max_frames=self.max_frames,
        )

    @property
    def is_running(self) -> bool:
        acquisition = self._acquisition
        return acquisition is not None and not getattr(acquisition, "_finished", True)

    def wait(self, timeout_s: float) -> bool:
        """Wait until the acquisition has submitted its last event (``max_frames`` reached
        or stop requested); True if it had within ``timeout_s``."""
        acquisition = self._acquisition
        if acquisition is None:
            return True
        acquisition._event_thread.join(timeout_s)
        return not acquisition._event_thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the loop to end after the frame in flight, wait, and stop the worker.

        Raises
        ------
        AcquisitionError
            It did not end within ``timeout_s`` (it was then aborted) or ended in error.
        """
        acquisition = self._acquisition
        with self._lock:
            self._stop_requested = True
        if acquisition is None:
            return
        try:
            if not self.wait(timeout_s):  # no frame came to carry the stop: finish directly
                acquisition.mark_finished()
            self._session.finish(acquisition, timeout_s)
        finally:
            if self._stop_perf_s is None:
                self._stop_perf_s = time.perf_counter()
            self.hook.stop(timeout_s)
            stats = self.hook.stats
            self.hook.log.record(
                EventKind.INFO,
                _SOURCE,
                "acquisition stopped",
                frames_acquired=stats.frames_seen,
                frames_skipped=stats.frames_skipped,
                frames_rejected=stats.frames_rejected,
            )

    def abort(self, timeout_s: float = 10.0) -> None:
        """Stop at once, dropping pending events."""
        acquisition = self._acquisition
        with self._lock:
            self._stop_requested = True
        if acquisition is None:
            return
        try:
            self._session.abort(acquisition, timeout_s)
        finally:
            self._stop_perf_s = time.perf_counter()
            self.hook.stop(timeout_s)

    @property
    def elapsed_s(self) -> float:
        """Seconds from start to stop (or to now while running)."""
        if self._acquisition is None:
            return 0.0
        end = self._stop_perf_s if self._stop_perf_s is not None else time.perf_counter()
        return end - self._start_perf_s

    @property
    def dataset(self) -> Any:
        """pycromanager's dataset (NDTiff when recording), or None before start."""
        return None if self._acquisition is None else self._acquisition.get_dataset()

    @property
    def dataset_path(self) -> Path | None:
        """Folder of the NDTiff recording, when recording."""
        dataset = self.dataset
        path = getattr(dataset, "path", None)
        return Path(path) if self.directory is not None and path else None

    def __enter__(self) -> LiveAcquisition:
        self.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.stop()
        else:
            self.abort()
