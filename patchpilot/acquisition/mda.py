"""The pymmcore-plus path: the same hook on ``core.mda.events.frameReady``.

For rigs that run pymmcore-plus (or napari-micromanager) instead of Micro-Manager's Java
GUI. :func:`connect_mda` attaches the hook to whatever MDA the rig runs;
:class:`MDALiveAcquisition` runs a continuous MDA itself, its events generated one at a
time so the focus of the next frame follows :attr:`MDALiveAcquisition.focus_um`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

from patchpilot.acquisition.hook import FrameHook
from patchpilot.acquisition.pycromanager_session import AcquisitionError
from patchpilot.events import EventKind

__all__ = ["MDALiveAcquisition", "connect_mda"]

_SOURCE = "acquisition"


def connect_mda(core: Any, hook: FrameHook) -> Callable[[], None]:
    """Feed every frame of ``core``'s MDAs to ``hook``; returns a disconnect function."""
    signal = core.mda.events.frameReady
    signal.connect(hook.on_mda_frame)

    def disconnect() -> None:
        signal.disconnect(hook.on_mda_frame)

    return disconnect


class MDALiveAcquisition:
    """A continuous pymmcore-plus MDA into ``hook`` until :meth:`stop`.

    Parameters
    ----------
    core
        A ``CMMCorePlus`` (``UniMMCore`` in simulation).
    hook
        Receives every frame.
    focus_um
        Focus of the first frames (µm); None leaves the focus drive alone.
    max_frames
        Finish by itself after this many frames; None runs until stopped.
    """

    def __init__(
        self,
        core: Any,
        hook: FrameHook,
        *,
        focus_um: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self.core = core
        self.hook = hook
        self.max_frames = max_frames
        self._lock = threading.Lock()
        self._focus_um = self._checked(focus_um)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._disconnect: Callable[[], None] | None = None

    @staticmethod
    def _checked(focus_um: float | None) -> float | None:
        if focus_um is not None and not math.isfinite(focus_um):
            raise ValueError(f"focus must be a finite number of µm, got {focus_um}")
        return None if focus_um is None else float(focus_um)

    @property
    def focus_um(self) -> float | None:
        with self._lock:
            return self._focus_um

    @focus_um.setter
    def focus_um(self, value: float | None) -> None:
        checked = self._checked(value)
        with self._lock:
            self._focus_um = checked

    def _events(self) -> Iterator[Any]:
        from useq import MDAEvent

        index = 0
        while not self._stop.is_set():
            if self.max_frames is not None and index >= self.max_frames:
                return
            with self._lock:
                focus = self._focus_um
            yield MDAEvent(index={"t": index}, z_pos=focus)
            index += 1

    def start(self) -> None:
        """Start the worker and the MDA thread.

        Raises
        ------
        AcquisitionError
            Already started, or an MDA is already running on this core.
        """
        if self._thread is not None:
            raise AcquisitionError("this MDA acquisition was already started")
        if self.core.mda.is_running():
            raise AcquisitionError("an MDA is already running on this core")
        self.hook.start()
        self._disconnect = connect_mda(self.core, self.hook)
        self._thread = self.core.run_mda(self._events())
        self.hook.log.record(EventKind.INFO, _SOURCE, "MDA started", max_frames=self.max_frames)

    def wait(self, timeout_s: float) -> bool:
        """Wait for the MDA to end (``max_frames`` or stop); True if it had."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """End the MDA after the frame in flight, then stop the worker.

        Raises
        ------
        AcquisitionError
            The MDA did not end within ``timeout_s`` (it was then cancelled).
        """
        self._stop.set()
        try:
            if not self.wait(timeout_s):
                self.core.mda.cancel()
                if not self.wait(timeout_s):
                    raise AcquisitionError(f"MDA did not end within {2 * timeout_s:g} s")
        finally:
            if self._disconnect is not None:
                self._disconnect()
                self._disconnect = None
            self.hook.stop(timeout_s)
            stats = self.hook.stats
            self.hook.log.record(
                EventKind.INFO,
                _SOURCE,
                "MDA stopped",
                frames_acquired=stats.frames_seen,
                frames_skipped=stats.frames_skipped,
            )

    def __enter__(self) -> MDALiveAcquisition:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
